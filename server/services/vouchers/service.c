/*
 * The vouchers service's definition: its method table, and the start and
 * stop hooks of its one piece of state in the process, issue.c's batches
 * (everything else is in PostgreSQL).
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "vouchers_service.h"

rpcq_status vouchers_check_text(call *c, const char *field, const char *s, size_t max, int required)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0)
		return required ? call_fail(c, RPCQ_INVALID_ARGUMENT, "%s is required", field) : RPCQ_OK;
	if (n > max)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "%s is longer than %zu bytes", field, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "%s holds a control character", field);
	}
	if (!utf8_valid(s, n))
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "%s is not valid UTF-8", field);
	return RPCQ_OK;
}

int64_t vouchers_int(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static rpcq_status start(server *srv, void **state, rpcq_error *err)
{
	(void)srv;
	return vouchers_issuer_create((vouchers_issuer **)state, err);
}

static void stop(void *state)
{
	vouchers_issuer_destroy(state);
}

static const method_def methods[] = {
	{"StartImport", vouchers_start_import},
	{"ImportChunk", vouchers_import_chunk},
	{"FinishImport", vouchers_finish_import},
	{"GetImport", vouchers_get_import},
	{"ListRejections", vouchers_list_rejections},
	{"ListVouchers", vouchers_list_vouchers},
	{"TopCustomers", vouchers_top_customers},
	{"CountUnused", vouchers_count_unused},
	{"IssueVouchers", vouchers_issue},
	{NULL, NULL},
};

const service_def vouchers_service = {
	.descriptor = &rpcq__vouchers__voucher_service__descriptor,
	.methods = methods,
	.start = start,
	.stop = stop,
};
