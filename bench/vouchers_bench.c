/*
 * rpcq-vouchers-bench: the client side of bench/run-vouchers.sh, through
 * librpcq's generated stubs.
 *
 *   rpcq-vouchers-bench import --url URL --orders FILE --barcodes FILE [--chunk BYTES (1048576)]
 *       StartImport (a new import), the orders file then the barcodes file
 *       in chunks of BYTES (one call at a time, as the CLI sends them),
 *       FinishImport. Prints one line: upload_s= finish_s= total_s= and the
 *       import's counts.
 *
 *   rpcq-vouchers-bench reports --url URL [-n CALLS (20)] [--token ORDER_ID] [--customer C]
 *       Each report CALLS times in turn (after one unmeasured call of each):
 *       ListVouchers first page, ListVouchers after --token (a page in the
 *       middle), ListVouchers of --customer, TopCustomers(5), TopCustomers(100),
 *       CountUnused. Prints one line per report: report= p50_ms= min_ms= max_ms=
 *       items= (vouchers, customers or the unused count).
 *
 * Files are read whole into memory first, so the upload times no disk.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rpcq/rpcq.h>

#define CALLS_MAX 10000
#define FINISH_TIMEOUT_MS (10 * 60 * 1000)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "rpcq-vouchers-bench: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 20, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			char *b = realloc(buf, cap *= 2);
			if (b == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	if (buf == NULL || ferror(f)) {
		fprintf(stderr, "rpcq-vouchers-bench: reading %s failed\n", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

static int send_file(rpcq_client *cl, const char *id, Rpcq__Vouchers__File which, const char *data, size_t len,
		     size_t chunk)
{
	size_t off = 0;
	do {
		size_t n = len - off < chunk ? len - off : chunk;
		Rpcq__Vouchers__ImportChunkRequest req = RPCQ__VOUCHERS__IMPORT_CHUNK_REQUEST__INIT;
		req.import_id = (char *)id;
		req.file = which;
		req.offset = off;
		req.data.data = (uint8_t *)(uintptr_t)(data + off);
		req.data.len = n;
		req.last = off + n == len;
		Rpcq__Vouchers__Import *imp = NULL;
		rpcq_error err;
		rpcq_call_options o = {.timeout_ms = 60000};
		if (rpcq_voucher_import_chunk(cl, &req, &imp, &o, &err) != RPCQ_OK) {
			fprintf(stderr, "rpcq-vouchers-bench: ImportChunk at %zu: %s: %s\n", off,
				rpcq_status_name(err.code), err.message);
			return 1;
		}
		protobuf_c_message_free_unpacked(&imp->base, NULL);
		off += n;
	} while (off < len);
	return 0;
}

static int run_import(rpcq_client *cl, const char *orders, const char *barcodes, size_t chunk)
{
	size_t olen = 0, blen = 0;
	char *od = read_file(orders, &olen), *bd = od ? read_file(barcodes, &blen) : NULL;
	int rc = 1;
	if (od == NULL || bd == NULL)
		goto out;
	double t0 = now_s();
	Rpcq__Vouchers__StartImportRequest sreq = RPCQ__VOUCHERS__START_IMPORT_REQUEST__INIT;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_voucher_start_import(cl, &sreq, &imp, NULL, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcq-vouchers-bench: StartImport: %s: %s\n", rpcq_status_name(err.code), err.message);
		goto out;
	}
	char id[64];
	snprintf(id, sizeof id, "%s", imp->import_id);
	protobuf_c_message_free_unpacked(&imp->base, NULL);
	if (send_file(cl, id, RPCQ__VOUCHERS__FILE__ORDERS, od, olen, chunk) != 0 ||
	    send_file(cl, id, RPCQ__VOUCHERS__FILE__BARCODES, bd, blen, chunk) != 0)
		goto out;
	double t1 = now_s();
	Rpcq__Vouchers__FinishImportRequest freq = RPCQ__VOUCHERS__FINISH_IMPORT_REQUEST__INIT;
	freq.import_id = id;
	rpcq_call_options fo = {.timeout_ms = FINISH_TIMEOUT_MS};
	if (rpcq_voucher_finish_import(cl, &freq, &imp, &fo, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcq-vouchers-bench: FinishImport: %s: %s\n", rpcq_status_name(err.code), err.message);
		goto out;
	}
	double t2 = now_s();
	const Rpcq__Vouchers__ImportCounts *c = imp->counts;
	printf("import=%s bytes=%zu upload_s=%.3f finish_s=%.3f total_s=%.3f rejections=%" PRIu64, id, olen + blen,
	       t1 - t0, t2 - t1, t2 - t0, imp->rejections);
	if (c)
		printf(" orders_added=%" PRIu64 " orders_unchanged=%" PRIu64 " orders_rejected=%" PRIu64
		       " orders_without_barcodes=%" PRIu64 " barcodes_added=%" PRIu64 " barcodes_sold=%" PRIu64
		       " barcodes_unchanged=%" PRIu64 " barcodes_rejected=%" PRIu64,
		       c->orders_added, c->orders_unchanged, c->orders_rejected, c->orders_without_barcodes,
		       c->barcodes_added, c->barcodes_sold, c->barcodes_unchanged, c->barcodes_rejected);
	printf("\n");
	protobuf_c_message_free_unpacked(&imp->base, NULL);
	rc = 0;
out:
	free(od);
	free(bd);
	return rc;
}

typedef enum report { LIST_FIRST, LIST_MIDDLE, LIST_CUSTOMER, TOP5, TOP100, UNUSED, N_REPORTS } report;

static const char *const report_names[] = {"list_first", "list_middle", "list_customer",
					   "top5",	 "top100",	"count_unused"};

/* One call; *items: what it returned (vouchers, customers, unused). */
static int call_report(rpcq_client *cl, report r, const char *token, const char *customer, uint64_t *items)
{
	rpcq_error err;
	rpcq_status st;
	if (r <= LIST_CUSTOMER) {
		Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
		if (r == LIST_MIDDLE)
			req.page_token = (char *)token;
		if (r == LIST_CUSTOMER)
			req.customer_id = (char *)customer;
		Rpcq__Vouchers__ListVouchersResponse *out = NULL;
		if ((st = rpcq_voucher_list_vouchers(cl, &req, &out, NULL, &err)) == RPCQ_OK) {
			*items = out->n_vouchers;
			protobuf_c_message_free_unpacked(&out->base, NULL);
		}
	} else if (r == TOP5 || r == TOP100) {
		Rpcq__Vouchers__TopCustomersRequest req = RPCQ__VOUCHERS__TOP_CUSTOMERS_REQUEST__INIT;
		req.n = r == TOP5 ? 5 : 100;
		Rpcq__Vouchers__TopCustomersResponse *out = NULL;
		if ((st = rpcq_voucher_top_customers(cl, &req, &out, NULL, &err)) == RPCQ_OK) {
			*items = out->n_customers;
			protobuf_c_message_free_unpacked(&out->base, NULL);
		}
	} else {
		Rpcq__Vouchers__CountUnusedRequest req = RPCQ__VOUCHERS__COUNT_UNUSED_REQUEST__INIT;
		Rpcq__Vouchers__CountUnusedResponse *out = NULL;
		if ((st = rpcq_voucher_count_unused(cl, &req, &out, NULL, &err)) == RPCQ_OK) {
			*items = out->unused;
			protobuf_c_message_free_unpacked(&out->base, NULL);
		}
	}
	if (st != RPCQ_OK)
		fprintf(stderr, "rpcq-vouchers-bench: %s: %s: %s\n", report_names[r], rpcq_status_name(err.code),
			err.message);
	return st == RPCQ_OK ? 0 : 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_reports(rpcq_client *cl, int calls, const char *token, const char *customer)
{
	static double ms[N_REPORTS][CALLS_MAX];
	uint64_t items[N_REPORTS] = {0};
	for (int r = 0; r < N_REPORTS; r++) {
		if ((r == LIST_MIDDLE && token == NULL) || (r == LIST_CUSTOMER && customer == NULL))
			continue;
		if (call_report(cl, (report)r, token, customer, &items[r]) != 0)
			return 1;
	}
	/* Round robin, so that each report sees the same machine. */
	for (int i = 0; i < calls; i++)
		for (int r = 0; r < N_REPORTS; r++) {
			if ((r == LIST_MIDDLE && token == NULL) || (r == LIST_CUSTOMER && customer == NULL))
				continue;
			double t0 = now_s();
			if (call_report(cl, (report)r, token, customer, &items[r]) != 0)
				return 1;
			ms[r][i] = (now_s() - t0) * 1e3;
		}
	for (int r = 0; r < N_REPORTS; r++) {
		if ((r == LIST_MIDDLE && token == NULL) || (r == LIST_CUSTOMER && customer == NULL))
			continue;
		qsort(ms[r], (size_t)calls, sizeof(double), cmp_double);
		double p50 = calls % 2 ? ms[r][calls / 2] : (ms[r][calls / 2 - 1] + ms[r][calls / 2]) / 2;
		printf("report=%s calls=%d p50_ms=%.2f min_ms=%.2f max_ms=%.2f items=%" PRIu64 "\n", report_names[r],
		       calls, p50, ms[r][0], ms[r][calls - 1], items[r]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "import") != 0 && strcmp(argv[1], "reports") != 0)) {
		fprintf(stderr, "usage: rpcq-vouchers-bench import --url URL --orders FILE --barcodes FILE [--chunk "
				"BYTES]\n"
				"       rpcq-vouchers-bench reports --url URL [-n CALLS] [--token ORDER_ID] "
				"[--customer C]\n");
		return 2;
	}
	const char *url = NULL, *orders = NULL, *barcodes = NULL, *token = NULL, *customer = NULL;
	long chunk = 1 << 20, calls = 20;
	for (int i = 2; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL) {
			fprintf(stderr, "rpcq-vouchers-bench: %s needs a value\n", a);
			return 2;
		}
		if (strcmp(a, "--url") == 0)
			url = v;
		else if (strcmp(a, "--orders") == 0)
			orders = v;
		else if (strcmp(a, "--barcodes") == 0)
			barcodes = v;
		else if (strcmp(a, "--token") == 0)
			token = v;
		else if (strcmp(a, "--customer") == 0)
			customer = v;
		else if (strcmp(a, "--chunk") == 0)
			chunk = strtol(v, NULL, 10);
		else if (strcmp(a, "-n") == 0)
			calls = strtol(v, NULL, 10);
		else {
			fprintf(stderr, "rpcq-vouchers-bench: unknown option \"%s\"\n", a);
			return 2;
		}
	}
	if (url == NULL || chunk < 1 || chunk > (3 << 20) || calls < 1 || calls > CALLS_MAX ||
	    (argv[1][0] == 'i' && (orders == NULL || barcodes == NULL))) {
		fprintf(stderr, "rpcq-vouchers-bench: needs --url (and --orders, --barcodes for import); --chunk "
				"1..3 MiB, -n 1..10000\n");
		return 2;
	}
	rpcq_client_options co = {.servers = url, .timeout_ms = 60000};
	rpcq_client *cl = NULL;
	rpcq_error err;
	if (rpcq_client_create(&cl, &co, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcq-vouchers-bench: client for %s: %s\n", url, err.message);
		return 1;
	}
	int rc = argv[1][0] == 'i' ? run_import(cl, orders, barcodes, (size_t)chunk)
				   : run_reports(cl, (int)calls, token, customer);
	rpcq_client_destroy(cl);
	return rc;
}
