/* rpcq_error: formatting of status messages. */
#include <stdio.h>

#include <rpcq/error.h>

rpcq_status rpcq_error_vset(rpcq_error *err, rpcq_status status, const char *fmt, va_list ap)
{
	if (err != NULL) {
		err->code = status;
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
	}
	return status;
}

rpcq_status rpcq_error_set(rpcq_error *err, rpcq_status status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rpcq_error_vset(err, status, fmt, ap);
	va_end(ap);
	return status;
}
