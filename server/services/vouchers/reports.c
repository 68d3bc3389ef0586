/*
 * The reports: ListVouchers, TopCustomers and CountUnused, each one indexed
 * statement (sql.c), so none reads more of the stock than it returns: a
 * page of vouchers walks the orders' listing index and each order's
 * barcodes through theirs; the top N are the first entries of the
 * customers' index; the counts are sums over the 64 stock rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql.h"
#include "vouchers_service.h"

#define PAGE_DEFAULT 1000
#define PAGE_MAX 10000
#define TOP_DEFAULT 5
#define TOP_MAX 10000
/* A page ends before its reply reaches this size (the limit is 4 MiB). */
#define PAGE_BUDGET (3u << 20)
/* The barcodes a page reads at most (one row more tells whether its last
 * order goes on): rpcqd's memory for a page, whatever the orders' sizes. */
#define PAGE_ROWS 100000
/* In a token that continues an order, between the order and the position
 * of its last barcode listed (order ids hold no control characters). */
#define TOKEN_SEP '\x1f'

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

/* Splits a page token into its order (NULL: none) and, for an order that
 * the page before left unfinished, the position of its last barcode listed
 * (0 otherwise). */
static rpcq_status parse_token(call *c, const char *token, char **order, int64_t *pos)
{
	*order = NULL;
	*pos = 0;
	if (token == NULL || token[0] == '\0')
		return RPCQ_OK;
	const char *sep = strchr(token, TOKEN_SEP);
	size_t n = sep ? (size_t)(sep - token) : strlen(token);
	char *o = arena_strndup(call_arena(c), token, n);
	if (o == NULL)
		return call_fail(c, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq_status st = vouchers_check_text(c, "page_token", o, VOUCHERS_ID_MAX, 0);
	if (st != RPCQ_OK)
		return st;
	if (sep != NULL) {
		char *end;
		errno = 0;
		long long p = strtoll(sep + 1, &end, 10);
		if (n == 0 || sep[1] < '0' || sep[1] > '9' || *end != '\0' || errno != 0 || p == LLONG_MAX)
			return call_fail(c, RPCQ_INVALID_ARGUMENT, "page_token \"%.64s\" is not one this server gave",
					 o);
		*pos = p + 1; /* 0 stays "after the whole order" */
	}
	*order = n > 0 ? o : NULL;
	return RPCQ_OK;
}

/* The voucher of rows i..k-1 of res (one order's barcodes), its barcodes
 * in codes[i..k-1]; NULL when out of memory. */
static Rpcq__Vouchers__Voucher *voucher_of(arena *ar, const PGresult *res, int i, int k, char **codes)
{
	Rpcq__Vouchers__Voucher *v = arena_calloc(ar, 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	rpcq__vouchers__voucher__init(v);
	v->customer_id = arena_strdup(ar, PQgetvalue(res, i, 0));
	v->order_id = arena_strdup(ar, PQgetvalue(res, i, 1));
	v->barcodes = &codes[i];
	v->n_barcodes = (size_t)(k - i);
	for (int r = i; r < k; r++)
		if ((codes[r] = arena_strdup(ar, PQgetvalue(res, r, 2))) == NULL)
			return NULL;
	return v->customer_id && v->order_id ? v : NULL;
}

/* The rows of the page: the rest of an unfinished order (*rest set), or
 * the orders after the token's. */
static rpcq_status page_rows(call *c, const char *customer, const char *after, int64_t after_pos, uint32_t size,
			     PGresult **res, int *rest)
{
	char lim[16], rows[16], pos[24];
	snprintf(lim, sizeof(lim), "%u", size + 1); /* one order more: does another page follow? */
	snprintf(rows, sizeof(rows), "%d", PAGE_ROWS + 1);
	rpcq_status st;
	*rest = 0;
	if (after_pos > 0) {
		snprintf(pos, sizeof(pos), "%" PRId64, after_pos - 1);
		const char *p[] = {after, pos, customer ? customer : "", rows};
		if ((st = call_query(c, &vouchers_sql_voucher_rest, p, 0, res)) != RPCQ_OK)
			return st;
		if (PQntuples(*res) > 0) {
			*rest = 1;
			return RPCQ_OK;
		}
		/* It ended where the page before stopped: go on after it. */
		PQclear(*res);
		*res = NULL;
	}
	if (customer) {
		const char *p[] = {customer, after ? after : "", lim, rows};
		return call_query(c, &vouchers_sql_vouchers_customer, p, 0, res);
	}
	if (after) {
		const char *p[] = {after, lim, rows};
		return call_query(c, &vouchers_sql_vouchers_after, p, 0, res);
	}
	const char *p[] = {lim, rows};
	return call_query(c, &vouchers_sql_vouchers_first, p, 0, res);
}

rpcq_status vouchers_list_vouchers(call *c, const ProtobufCMessage *msg, ProtobufCMessage **out)
{
	const Rpcq__Vouchers__ListVouchersRequest *in = (const Rpcq__Vouchers__ListVouchersRequest *)msg;
	arena *ar = call_arena(c);
	rpcq_status st;
	const char *customer = in->customer_id && in->customer_id[0] ? in->customer_id : NULL;
	char *after;
	int64_t after_pos;
	if ((st = vouchers_check_text(c, "customer_id", in->customer_id, VOUCHERS_ID_MAX, 0)) != RPCQ_OK ||
	    (st = parse_token(c, in->page_token, &after, &after_pos)) != RPCQ_OK)
		return st;
	uint32_t size = in->page_size ? in->page_size : PAGE_DEFAULT;
	if (size > PAGE_MAX)
		size = PAGE_MAX;

	PGresult *res = NULL;
	int rest;
	if ((st = page_rows(c, customer, after, after_pos, size, &res, &rest)) != RPCQ_OK)
		return st;
	int n = PQntuples(res);
	if (n == 0 && after != NULL) {
		PQclear(res);
		res = NULL;
		if ((st = check_token(c, after, customer)) != RPCQ_OK)
			return st;
	}
	/* A row past PAGE_ROWS: more follow, perhaps of the last order read. */
	int more = n > PAGE_ROWS;
	if (more)
		n = PAGE_ROWS;
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
		size_t head = strlen(order) + (size_t)PQgetlength(res, i, 0) + 8;
		obytes += head;
		int whole = !(j == n && more && strcmp(PQgetvalue(res, n, 1), order) == 0);
		if (nv == size || (nv > 0 && (!whole || bytes + obytes > PAGE_BUDGET))) {
			resp->next_page_token = arena_strdup(ar, list[nv - 1]->order_id);
			break;
		}
		if (!whole || obytes > PAGE_BUDGET) {
			/* The page's first order is longer than a page: as many of
			 * its barcodes as fit, the rest from the next page on. */
			int k = i + 1;
			for (size_t b = head + (size_t)PQgetlength(res, i, 2) + 2;
			     k < j && b + (size_t)PQgetlength(res, k, 2) + 2 <= PAGE_BUDGET; k++)
				b += (size_t)PQgetlength(res, k, 2) + 2;
			Rpcq__Vouchers__Voucher *v = voucher_of(ar, res, i, k, codes);
			if (v == NULL)
				goto oom;
			v->continues = 1;
			list[nv++] = v;
			resp->next_page_token = arena_printf(ar, "%s%c%s", order, TOKEN_SEP, PQgetvalue(res, k - 1, 3));
			if (resp->next_page_token == NULL)
				goto oom;
			break;
		}
		Rpcq__Vouchers__Voucher *v = voucher_of(ar, res, i, j, codes);
		if (v == NULL)
			goto oom;
		list[nv++] = v;
		bytes += obytes;
		i = j;
	}
	/* Every order read is listed whole, and more follow: the last one of
	 * an unfinished order's rest, or orders past the rows read. */
	if (i == n && nv > 0 && (rest || more))
		resp->next_page_token = arena_strdup(ar, list[nv - 1]->order_id);
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
