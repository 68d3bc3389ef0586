/* librpcq umbrella header: includes the public headers, nothing else. */
#ifndef RPCQ_RPCQ_H
#define RPCQ_RPCQ_H

#include <rpcq/alloc.h>
#include <rpcq/client.h>
#include <rpcq/error.h>
#include <rpcq/json.h>
#include <rpcq/registry.h>
#include <rpcq/status.h>
#include <rpcq/stream.h>
#include <rpcq/stubs.h>

#endif
