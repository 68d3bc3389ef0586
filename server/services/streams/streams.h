/* rpcq.Streams: the read side of update streams (Replay, Endpoints, Topics). */
#ifndef RPCQ_STREAMS_H
#define RPCQ_STREAMS_H

#include "service.h"

extern const service_def streams_service;

#endif
