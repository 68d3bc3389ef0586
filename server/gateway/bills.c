/*
 * GET /billing/bills/<debtId>: a debt's bill (GetBill) as JSON, and
 * GET /billing/bills/<debtId>/slip.pdf: its slip as a PDF (GetBill with
 * pdf), served as application/pdf for a browser to show or a client to
 * save. The debtId is the path's rest, percent-decoded (so an id with a '/'
 * is sent as %2F); one that itself ends in "/slip.pdf" is reached only
 * through GetBill. Errors are Connect's JSON, as on every route.
 */
#include <string.h>

#include "gateway_internal.h"
#include "rpcq/billing.pb-c.h"

#define BILLS_PREFIX "/billing/bills/"
#define PDF_SUFFIX "/slip.pdf"

static void bill_run(server_job *job, arena *ar)
{
	conn *c = conn_of_job(job);
	const char *rest = c->req->path + strlen(BILLS_PREFIX);
	size_t n = strlen(rest), sn = strlen(PDF_SUFFIX);
	int pdf = n > sn && strcmp(rest + n - sn, PDF_SUFFIX) == 0;
	Rpcq__Billing__GetBillRequest in = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
	in.debt_id = pdf ? arena_strndup(ar, rest, n - sn) : (char *)rest;
	in.pdf = pdf;
	call_result res = {.status = RPCQ_RESOURCE_EXHAUSTED, .message = "out of memory"};
	if (in.debt_id != NULL)
		gw_call(c, ar, "/rpcq.billing.BillingService/GetBill", 0, c->received, c->received_ns, &in.base, &res);
	if (res.status == RPCQ_OK && pdf) {
		const Rpcq__Billing__Bill *b = (const Rpcq__Billing__Bill *)res.output;
		conn_respond(c, 200, "application/pdf", "Cache-Control: no-store\r\n", b->slip_pdf.data,
			     b->slip_pdf.len);
	} else {
		gw_respond_json(c, &res);
	}
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

void bills_route(conn *c)
{
	conn_submit(c, bill_run);
}
