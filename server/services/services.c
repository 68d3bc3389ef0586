/*
 * The services rpcqd serves. Adding a service: its folder under services/,
 * its service_def, and one line here.
 */
#include "services.h"
#include "health/health.h"
#if __has_include("streams/streams.h")
#include "streams/streams.h"
#define HAVE_STREAMS 1
#endif
#if __has_include("vesting/vesting.h")
#include "vesting/vesting.h"
#define HAVE_VESTING 1
#endif

const service_def *const rpcqd_services[] = {
	&health_service,
	&reflection_service,
#ifdef HAVE_STREAMS
	&streams_service,
#endif
#ifdef HAVE_VESTING
	&vesting_service,
#endif
	NULL,
};
