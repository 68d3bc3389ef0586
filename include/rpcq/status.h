/*
 * Status codes of rpcq: gRPC numbering, one table. RPCQ_STATUS_LIST yields the
 * enum, the names and the descriptions; proto/rpcq/rpc.proto's StatusCode has
 * the same numbers (checked by a unit test).
 */
#ifndef RPCQ_STATUS_H
#define RPCQ_STATUS_H

#include <rpcq/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RPCQ_STATUS_LIST(X)                                                            \
	X(OK, 0, "success")                                                            \
	X(CANCELLED, 1, "the operation was cancelled")                                 \
	X(UNKNOWN, 2, "unknown error")                                                 \
	X(INVALID_ARGUMENT, 3, "the request is invalid")                               \
	X(DEADLINE_EXCEEDED, 4, "the deadline expired before the operation completed") \
	X(NOT_FOUND, 5, "the requested entity was not found")                          \
	X(ALREADY_EXISTS, 6, "the entity already exists")                              \
	X(PERMISSION_DENIED, 7, "the caller may not do this")                          \
	X(RESOURCE_EXHAUSTED, 8, "a limit was reached")                                \
	X(FAILED_PRECONDITION, 9, "the system is not in a state for this operation")   \
	X(ABORTED, 10, "the operation was aborted by a conflict; retry it")            \
	X(OUT_OF_RANGE, 11, "a value is out of range")                                 \
	X(UNIMPLEMENTED, 12, "the operation is not implemented")                       \
	X(INTERNAL, 13, "internal error")                                              \
	X(UNAVAILABLE, 14, "the service is unavailable; retry later")                  \
	X(DATA_LOSS, 15, "unrecoverable data loss")                                    \
	X(UNAUTHENTICATED, 16, "the caller is not authenticated")

typedef enum rpcq_status {
#define RPCQ_STATUS_ENUM_(name, code, desc) RPCQ_##name = code,
	RPCQ_STATUS_LIST(RPCQ_STATUS_ENUM_)
#undef RPCQ_STATUS_ENUM_
} rpcq_status;

#define RPCQ_STATUS_COUNT 17

/* "INVALID_ARGUMENT"; "UNKNOWN" for a number outside the table. Static storage. */
RPCQ_API const char *rpcq_status_name(rpcq_status status);

/* One sentence describing the code. Static storage. */
RPCQ_API const char *rpcq_status_describe(rpcq_status status);

/* Parses a name ("NOT_FOUND") or a number ("5"). Returns 0 and sets *out on
 * success, -1 if the text names no status. */
RPCQ_API int rpcq_status_parse(const char *text, rpcq_status *out);

#ifdef __cplusplus
}
#endif
#endif
