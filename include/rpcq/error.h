/*
 * rpcq_error: a status code with its one-line, human message. Every fallible
 * function of librpcq (and of rpcqd internally) returns an rpcq_status and, on
 * failure, fills the caller's rpcq_error (which may be NULL). The message never
 * contains SQL or a stack trace. Caller-owned, usually on the stack.
 */
#ifndef RPCQ_ERROR_H
#define RPCQ_ERROR_H

#include <stdarg.h>

#include <rpcq/export.h>
#include <rpcq/status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rpcq_error {
	rpcq_status code;
	char message[512];
} rpcq_error;

/* Sets err (NULL is allowed) and returns status, so a failure reads
 *   return rpcq_error_set(err, RPCQ_NOT_FOUND, "ledger \"%s\" not found", name); */
RPCQ_API rpcq_status rpcq_error_set(rpcq_error *err, rpcq_status status, const char *fmt, ...) RPCQ_PRINTF(3, 4);
RPCQ_API rpcq_status rpcq_error_vset(rpcq_error *err, rpcq_status status, const char *fmt, va_list ap)
	RPCQ_PRINTF(3, 0);

#ifdef __cplusplus
}
#endif
#endif
