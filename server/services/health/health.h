/* Built-in services: rpcq.Health (Check, Echo) and rpcq.Reflection. */
#ifndef RPCQ_HEALTH_H
#define RPCQ_HEALTH_H

#include "service.h"

extern const service_def health_service;
extern const service_def reflection_service;

#endif
