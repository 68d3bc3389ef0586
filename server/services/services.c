/*
 * The services rpcqd serves. Adding a service: its folder under services/,
 * its service_def, and one line here.
 */
#include "services.h"
#include "billing/billing_service.h"
#include "events/events_service.h"
#include "health/health.h"
#include "streams/streams.h"
#include "vesting/vesting.h"
#include "vouchers/vouchers_service.h"

const service_def *const rpcqd_services[] = {
	&health_service, &reflection_service, &streams_service, &vesting_service,
	&events_service, &vouchers_service,   &billing_service, NULL,
};
