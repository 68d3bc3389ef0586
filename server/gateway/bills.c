/*
 * GET /billing/bills/<debtId>: a debt's bill (GetBill) as JSON, and
 * GET /billing/bills/<debtId>/slip.pdf: its slip as a PDF (GetBill with
 * pdf), served as application/pdf for a browser to show or a client to
 * save. The debtId is the path's rest, percent-decoded (so an id with a '/'
 * is sent as %2F); one that itself ends in "/slip.pdf" is reached only
 * through GetBill. Errors are Connect's JSON, as on every route.
 */
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

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
	call_result res;
	if (in.debt_id == NULL) {
		conn_respond_error(c, 503, "resource_exhausted", "out of memory");
		goto out;
	}
	gw_call(c, ar, "/rpcq.billing.BillingService/GetBill", 0, c->received, c->received_ns, &in.base, &res);
	if (res.status != RPCQ_OK) {
		conn_respond_error(c, gateway_http_status(res.status), gateway_connect_code(res.status), res.message);
	} else if (pdf) {
		const Rpcq__Billing__Bill *b = (const Rpcq__Billing__Bill *)res.output;
		conn_respond(c, 200, "application/pdf", "Cache-Control: no-store\r\n", b->slip_pdf.data,
			     b->slip_pdf.len);
	} else {
		char *json = rpcq_message_to_json(res.output, 0);
		if (json == NULL)
			conn_respond_error(c, 500, "internal", "the reply does not convert to JSON");
		else
			conn_respond(c, 200, "application/json", NULL, json, strlen(json));
		rpcq_free(json);
	}
out:
	nng_mtx_lock(c->lock);
	conn_release_unlock(c);
}

void bills_route(conn *c)
{
	conn_submit(c, bill_run);
}
