/* The services rpcqd serves: one line each in services.c. */
#ifndef RPCQ_SERVICES_H
#define RPCQ_SERVICES_H

#include "service.h"

/* NULL-terminated. */
extern const service_def *const rpcqd_services[];

#endif
