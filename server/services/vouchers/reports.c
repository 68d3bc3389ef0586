/*
 * The reports: ListVouchers, TopCustomers and CountUnused, each one indexed
 * statement (sql.c), so none reads more of the stock than it returns: a
 * page of vouchers walks the orders' listing index and each order's
 * barcodes through theirs; the top N are the first entries of the
 * customers' index; the counts are sums over the 64 stock rows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sql.h"
#include "vouchers_service.h"

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000
#define TOP_DEFAULT 5
#define TOP_MAX 10000
/* A page ends before its reply reaches this size (the limit is 4 MiB). */
#define PAGE_BUDGET (3u << 20)

/* A page token is the last order of the page before (of the customer, for
 * one customer's vouchers): one that names no such order was not given by
 * this server. Checked only when a page comes out empty, which a token
 * that was given hardly ever makes, so paging costs no more round trips. */
static rpcq_status check_token(call *c, const char *token, const char *customer)
{
	const char *p[] = {token};
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &vouchers_sql_order_customer, p, 0, &res);
	if (st != RPCQ_OK)
		return st;
	int known = PQntuples(res) == 1 && (customer == NULL || strcmp(PQgetvalue(res, 0, 0), customer) == 0);
	PQclear(res);
	if (!known)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.64s\" is not one this server gave%s%.64s",
				 token, customer ? " for customer " : "", customer ? customer : "");
	return RPCQ_OK;
}

rpcq_status vouchers_list_vouchers(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__ListVouchersRequest *in = (const Rpcq__Vouchers__ListVouchersRequest *)msg;
	arena *ar = call_arena(c);
	rpcq_status st;
	const char *customer = in->customer_id && in->customer_id[0] ? in->customer_id : NULL;
	const char *after = in->page_token && in->page_token[0] ? in->page_token : NULL;
	if ((st = vouchers_check_text(c, "customer_id", in->customer_id, VOUCHERS_ID_MAX, 0)) != RPCQ_OK ||
	    (st = vouchers_check_text(c, "page_token", in->page_token, VOUCHERS_ID_MAX, 0)) != RPCQ_OK)
		return st;
	uint32_t size = in->page_size ? in->page_size : PAGE_DEFAULT;
	if (size > PAGE_MAX)
		size = PAGE_MAX;

	/* One order more than the page, to know whether another page follows. */
	char lim[16];
	snprintf(lim, sizeof(lim), "%u", size + 1);
	PGresult *res = NULL;
	if (customer) {
		const char *p[] = {customer, after ? after : "", lim};
		st = call_query(c, &vouchers_sql_vouchers_customer, p, 0, &res);
	} else if (after) {
		const char *p[] = {after, lim};
		st = call_query(c, &vouchers_sql_vouchers_after, p, 0, &res);
	} else {
		const char *p[] = {lim};
		st = call_query(c, &vouchers_sql_vouchers_first, p, 0, &res);
	}
	if (st != RPCQ_OK)
		return st;

	int n = PQntuples(res);
	if (n == 0 && after != NULL) {
		PQclear(res);
		res = NULL;
		if ((st = check_token(c, after, customer)) != RPCQ_OK)
			return st;
	}
	Rpcq__Vouchers__ListVouchersResponse *resp = arena_calloc(ar, 1, sizeof(*resp));
	Rpcq__Vouchers__Voucher **list = arena_calloc(ar, size + 1, sizeof(*list));
	char **codes = arena_calloc(ar, (size_t)n + 1, sizeof(*codes));
	if (resp == NULL || list == NULL || codes == NULL)
		goto oom;
	rpcq__vouchers__list_vouchers_response__init(resp);
	resp->next_page_token = "";
	size_t nv = 0, bytes = 0;
	int i = 0;
	while (i < n) {
		/* The rows of one order: i .. j-1. */
		const char *order = PQgetvalue(res, i, 1);
		int j = i;
		size_t obytes = 0;
		while (j < n && strcmp(PQgetvalue(res, j, 1), order) == 0) {
			obytes += (size_t)PQgetlength(res, j, 2) + 2;
			j++;
		}
		obytes += strlen(order) + (size_t)PQgetlength(res, i, 0) + 8;
		if (nv == size || (nv > 0 && bytes + obytes > PAGE_BUDGET)) {
			resp->next_page_token = arena_strdup(ar, list[nv - 1]->order_id);
			break;
		}
		if (obytes > PAGE_BUDGET) {
			PQclear(res);
			return call_fail(c, RPCQ_RESOURCE_EXHAUSTED,
					 "order %.64s has more barcodes than one reply can hold", order);
		}
		Rpcq__Vouchers__Voucher *v = arena_calloc(ar, 1, sizeof(*v));
		if (v == NULL)
			goto oom;
		rpcq__vouchers__voucher__init(v);
		v->customer_id = arena_strdup(ar, PQgetvalue(res, i, 0));
		v->order_id = arena_strdup(ar, order);
		v->barcodes = &codes[i];
		v->n_barcodes = (size_t)(j - i);
		for (int k = i; k < j; k++)
			if ((codes[k] = arena_strdup(ar, PQgetvalue(res, k, 2))) == NULL)
				goto oom;
		if (v->customer_id == NULL || v->order_id == NULL)
			goto oom;
		list[nv++] = v;
		bytes += obytes;
		i = j;
	}
	resp->vouchers = list;
	resp->n_vouchers = nv;
	PQclear(res);
	*out = &resp->base;
	return RPCQ_OK;
oom:
	PQclear(res);
	return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
}

rpcq_status vouchers_top_customers(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__TopCustomersRequest *in = (const Rpcq__Vouchers__TopCustomersRequest *)msg;
	arena *ar = call_arena(c);
	uint32_t n = in->n ? in->n : TOP_DEFAULT;
	if (n > TOP_MAX)
		return call_fail(c, RPCQ_INVALID_ARGUMENT, "n is at most %d", TOP_MAX);
	char lim[16];
	snprintf(lim, sizeof(lim), "%u", n);
	const char *p[] = {lim};
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &vouchers_sql_top, p, 0, &res);
	if (st != RPCQ_OK)
		return st;
	int rows = PQntuples(res);
	Rpcq__Vouchers__TopCustomersResponse *resp = arena_calloc(ar, 1, sizeof(*resp));
	Rpcq__Vouchers__CustomerTickets *t = arena_calloc(ar, (size_t)rows + 1, sizeof(*t));
	Rpcq__Vouchers__CustomerTickets **list = arena_calloc(ar, (size_t)rows + 1, sizeof(*list));
	if (resp == NULL || t == NULL || list == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__vouchers__top_customers_response__init(resp);
	for (int i = 0; i < rows; i++) {
		rpcq__vouchers__customer_tickets__init(&t[i]);
		t[i].customer_id = arena_strdup(ar, PQgetvalue(res, i, 0));
		t[i].tickets = (uint64_t)vouchers_int(res, i, 1);
		list[i] = &t[i];
	}
	resp->customers = list;
	resp->n_customers = (size_t)rows;
	PQclear(res);
	*out = &resp->base;
	return RPCQ_OK;
}

rpcq_status vouchers_count_unused(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	(void)msg;
	PGresult *res = NULL;
	rpcq_status st = call_query(c, &vouchers_sql_stock, NULL, 0, &res);
	if (st != RPCQ_OK)
		return st;
	Rpcq__Vouchers__CountUnusedResponse *resp = arena_calloc(call_arena(c), 1, sizeof(*resp));
	if (resp == NULL) {
		PQclear(res);
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	}
	rpcq__vouchers__count_unused_response__init(resp);
	resp->unused = (uint64_t)vouchers_int(res, 0, 0);
	resp->sold = (uint64_t)vouchers_int(res, 0, 1);
	PQclear(res);
	*out = &resp->base;
	return RPCQ_OK;
}
