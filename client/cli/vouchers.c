/*
 * `rpcq vouchers`: the vouchers service (rpcq.vouchers.VoucherService) from
 * the command line.
 *
 *   rpcq vouchers import --orders FILE --barcodes FILE [--json]
 *   rpcq vouchers report [--orders FILE --barcodes FILE] [--output FILE] [--top N]
 *   rpcq vouchers list [--customer C] [--json]
 *   rpcq vouchers top [N] [--json]
 *   rpcq vouchers unused [--json]
 *   rpcq vouchers issue --customer C --quantity N [--key K] [--json]
 *   rpcq vouchers status IMPORT_ID [--json]
 *
 * An import sends the two files in chunks of CHUNK bytes (fewer when the
 * server's message limit is smaller: cli_chunk_bytes), cut anywhere (the
 * server carries a partial record over to the next chunk), the orders file
 * first, then applies them with FinishImport. Its key is derived from the two
 * files' contents, so running the same command again finds the same import:
 * an interrupted one continues from the bytes the server already has (each
 * file from its received_bytes), an applied one only prints its result. The
 * files are mapped, not read, so memory stays bounded by the chunk in flight
 * whatever their size (mapped pages are the kernel's page cache, dropped as
 * needed), and a resume starts at any offset without reading up to it.
 *
 * Rejected rows never fail an import: they are printed on stderr, one per
 * line as FILE:LINE: reason, followed by a summary of the counts, and the
 * exit status is 0 once the import is applied. A file that cannot be read at
 * all (a wrong header, a record longer than the server takes) fails the
 * command with the server's reason, prefixed by the file's path.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "cli.h"

/* Bytes per ImportChunk: large enough that per-call costs (a round trip, a
 * transaction and a COPY on the server) vanish next to the rows, well under
 * the 4 MiB message limit. */
#define CHUNK (1024 * 1024)
/* FinishImport applies millions of rows in one transaction: seconds, not the
 * 10 s of an ordinary call. */
#define FINISH_TIMEOUT_MS (10 * 60 * 1000)
/* Progress appears once an import has taken this long. */
#define PROGRESS_AFTER_MS 500
/* Pages of ListVouchers and ListRejections: the most the server gives. */
#define PAGE_SIZE 10000
/* Times the command re-reads the import's state after a refused chunk, and
 * starts over when the import vanished, before it gives up. */
#define MAX_RESYNCS 16
#define MAX_RESTARTS 2

#define FILE_ORDERS RPCQ__VOUCHERS__FILE__ORDERS
#define FILE_BARCODES RPCQ__VOUCHERS__FILE__BARCODES
#define STATE_APPLIED RPCQ__VOUCHERS__IMPORT_STATE__APPLIED

/* The namespace of import keys: UUIDv5 of the files' contents under it. A
 * random UUID of this project's own, fixed (changing it would change every
 * key, and a rerun of an interrupted import would start a new one). */
static const uuid_t import_key_namespace = {0x9c, 0x41, 0x7e, 0x2a, 0x53, 0xd8, 0x4b, 0x06,
					    0xa1, 0x7f, 0x3e, 0x95, 0x0c, 0x62, 0xd4, 0xb8};

static void usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers import --orders FILE --barcodes FILE [--json]\n"
		     "       rpcq vouchers report [--orders FILE --barcodes FILE] [--output FILE] [--top N]\n"
		     "       rpcq vouchers list [--customer C] [--json]\n"
		     "       rpcq vouchers top [N] [--json]\n"
		     "       rpcq vouchers unused [--json]\n"
		     "       rpcq vouchers issue --customer C --quantity N [--key K] [--json]\n"
		     "       rpcq vouchers status IMPORT_ID [--json]\n\n"
		     "A ticket seller's stock of barcodes, each sold one assigned to an order of a customer.\n\n"
		     "import   imports an orders export (order_id,customer_id) and a barcodes export\n"
		     "         (barcode,order_id; order_id empty: unused) into the stock; rejected rows are\n"
		     "         listed on stderr as FILE:LINE: reason. Running it again resumes an interrupted\n"
		     "         import, or prints the result of an applied one\n"
		     "report   imports the two files, then prints every voucher, the top customers and the\n"
		     "         unused barcode count\n"
		     "list     the vouchers: customer_id, order_id, [barcode1, barcode2, ...]\n"
		     "top      the N (default 5) customers with the most tickets: customer_id, tickets\n"
		     "unused   the number of unused barcodes\n"
		     "issue    sells N unused barcodes to a customer as a new order\n"
		     "status   an import's progress and result\n\n"
		     "`rpcq vouchers COMMAND --help` describes one command.\n");
}

static void import_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers import --orders FILE --barcodes FILE [--json]\n\n"
		     "Imports the two CSV files (each with its header row: order_id,customer_id and\n"
		     "barcode,order_id) into the stock, in chunks of 1 MiB, orders first. Every rejected row\n"
		     "is printed on stderr as FILE:LINE: reason (FILE the file's base name), then a summary:\n"
		     "  import ID applied: orders A added, U unchanged, R rejected, W without barcodes;\n"
		     "  barcodes A added, S sold from the stock, U unchanged, R rejected\n"
		     "The import's key is a hash of the two files' contents: the same command run again\n"
		     "continues an interrupted import from where the server stopped receiving (saying so on\n"
		     "stderr), or prints the result of the applied one and changes nothing. On a terminal,\n"
		     "an import taking more than a moment shows its progress on stderr.\n"
		     "--json prints the final Import as proto3 JSON on stdout.\n"
		     "Exit status 0 when the import is applied, even with rejected rows; 1 when a file\n"
		     "cannot be read (e.g. \"rpcq: INVALID_ARGUMENT: orders.csv: line 1: ...\" for a wrong\n"
		     "header) or a call fails.\n");
}

static void report_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers report [--orders FILE --barcodes FILE] [--output FILE] [--top N]\n\n"
		     "Imports the two files as `rpcq vouchers import` does (rejections and summary on stderr),\n"
		     "then writes every voucher of the stock to --output FILE (default stdout), one line per\n"
		     "order, ordered by customer then order:\n"
		     "  customer_id, order_id, [barcode1, barcode2, ...]\n"
		     "and prints on stdout the N (default 5, at most 10000) customers with the most tickets\n"
		     "and the unused barcode count:\n"
		     "  Top N customers:\n"
		     "  customer_id, amount_of_tickets\n"
		     "  ...\n"
		     "  Unused barcodes: COUNT\n"
		     "with an empty line before \"Top\" when the vouchers went to stdout too. Without --orders\n"
		     "and --barcodes it reports the stock as it is.\n");
}

static void list_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers list [--customer C] [--json]\n\n"
		     "Prints the vouchers (orders with at least one barcode) of the stock, or of customer C,\n"
		     "ordered by customer then order (numerically when both are integers):\n"
		     "  customer_id, order_id, [barcode1, barcode2, ...]\n"
		     "or with --json one Voucher per line as proto3 JSON.\n");
}

static void top_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers top [N] [--json]\n\n"
		     "Prints the N (default 5, at most 10000) customers with the most sold barcodes, most\n"
		     "first, ties by customer id: customer_id, amount_of_tickets; or with --json one\n"
		     "CustomerTickets per line as proto3 JSON.\n");
}

static void unused_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers unused [--json]\n\n"
		     "Prints the number of unused barcodes; with --json {\"unused\":\"N\",\"sold\":\"M\"} (proto3\n"
		     "JSON, where 64-bit numbers are strings).\n");
}

static void issue_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers issue --customer C --quantity N [--key K] [--json]\n\n"
		     "Creates an order for customer C and assigns it N (1..10000) unused barcodes, atomically.\n"
		     "Prints the order and its barcodes:\n"
		     "  order ORDER_ID\n"
		     "  BARCODE\n"
		     "  ...\n"
		     "With --key K a repeated command returns the first one's order and sells nothing more,\n"
		     "saying so on stderr (the same key with another customer or quantity fails with\n"
		     "FAILED_PRECONDITION); without it each command is a new sale. Exit status 1 with \"rpcq: "
		     "RESOURCE_EXHAUSTED: ...\" when\n"
		     "fewer than N barcodes are unused; nothing is sold then. --json prints the reply\n"
		     "(IssueVouchersResponse) as proto3 JSON instead.\n");
}

static void status_usage(FILE *out)
{
	fprintf(out, "usage: rpcq vouchers status IMPORT_ID [--json]\n\n"
		     "Prints an import's state, what it received of each file and, once applied, its counts;\n"
		     "with --json the Import as proto3 JSON.\n");
}

/* ---- small helpers ---- */

/* Call options with a deadline of at least ms. */
static rpcq_call_options long_call_options(const cli_globals *g, int ms)
{
	rpcq_call_options o = cli_call_options(g);
	if (o.timeout_ms < ms)
		o.timeout_ms = ms;
	return o;
}

/* ---- the files of an import ---- */

struct vfile {
	cli_file file;
	Rpcq__Vouchers__File which;
	uint64_t sent; /* the server has the bytes before this */
	int complete;  /* the server has the whole file */
};

/* The import key of the two files: UUIDv5 (SHA-1) of the orders file under
 * the project's namespace, then of the barcodes file under that UUID. The
 * chain makes the key depend on both contents and on where one ends and the
 * other begins. It only has to tell apart the imports one stock sees:
 * accidental collisions of 122 bits of SHA-1 do not happen; the files are
 * the seller's own, so a crafted collision would only fool its crafter. */
static void import_key(const struct vfile *orders, const struct vfile *barcodes, char out[37])
{
	uuid_t a, b;
	uuid_generate_sha1(a, import_key_namespace, orders->file.data ? orders->file.data : "", orders->file.size);
	uuid_generate_sha1(b, a, barcodes->file.data ? barcodes->file.data : "", barcodes->file.size);
	uuid_unparse_lower(b, out);
}

/* ---- progress on a terminal ---- */

static void progress_files(cli_progress *p, const struct vfile *files)
{
	if (!p->tty)
		return;
	char line[512], a[32], b[32], c[32], d[32];
	cli_human_bytes(files[0].sent, a, sizeof(a));
	cli_human_bytes(files[0].file.size, b, sizeof(b));
	cli_human_bytes(files[1].sent, c, sizeof(c));
	cli_human_bytes(files[1].file.size, d, sizeof(d));
	snprintf(line, sizeof(line), "sending %s %s / %s, %s %s / %s", files[0].file.name, a, b, files[1].file.name, c,
		 d);
	cli_progress_draw(p, line, 1);
}

/* While FinishImport applies (seconds for millions of rows, with nothing to
 * count), a thread redraws "applying import N (Ts)" so the terminal shows the
 * command is alive. The main thread only waits in the call meanwhile, so the
 * two never write stderr at once. */
struct ticker {
	cli_progress *p;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, running;
	char what[96];
	int64_t since_ms;
	int64_t drawn_s; /* the seconds last drawn */
};

static void *ticker_main(void *arg)
{
	struct ticker *t = arg;
	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 250 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&t->cv, &t->mu, &until);
		if (t->stop)
			break;
		int64_t s = (cli_now_ms() - t->since_ms) / 1000;
		if (t->p->shown && s == t->drawn_s)
			continue;
		char line[160];
		snprintf(line, sizeof(line), "%s (%" PRId64 " s)", t->what, s);
		cli_progress_draw(t->p, line, 1);
		t->drawn_s = s;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

static void ticker_start(struct ticker *t, cli_progress *p, const char *what)
{
	memset(t, 0, sizeof(*t));
	if (!p->tty)
		return;
	t->p = p;
	snprintf(t->what, sizeof(t->what), "%s", what);
	t->since_ms = cli_now_ms();
	t->drawn_s = -1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	t->running = pthread_create(&t->thread, NULL, ticker_main, t) == 0;
	if (!t->running) {
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
	}
}

static void ticker_stop(struct ticker *t)
{
	if (!t->running)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->thread, NULL);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	t->running = 0;
}

/* ---- printing an import ---- */

static const char *state_name(Rpcq__Vouchers__ImportState s)
{
	return s == RPCQ__VOUCHERS__IMPORT_STATE__RECEIVING ? "RECEIVING" : s == STATE_APPLIED ? "APPLIED" : "UNKNOWN";
}

/* The summary line of an applied import (stderr). */
static void print_summary(const Rpcq__Vouchers__Import *imp, int already)
{
	static const Rpcq__Vouchers__ImportCounts none = RPCQ__VOUCHERS__IMPORT_COUNTS__INIT;
	const Rpcq__Vouchers__ImportCounts *c = imp->counts ? imp->counts : &none;
	fprintf(stderr,
		"import %s %s: orders %" PRIu64 " added, %" PRIu64 " unchanged, %" PRIu64 " rejected, %" PRIu64
		" without barcodes; barcodes %" PRIu64 " added, %" PRIu64 " sold from the stock, %" PRIu64
		" unchanged, %" PRIu64 " rejected\n",
		imp->import_id, already ? "was already applied" : "applied", c->orders_added, c->orders_unchanged,
		c->orders_rejected, c->orders_without_barcodes, c->barcodes_added, c->barcodes_sold,
		c->barcodes_unchanged, c->barcodes_rejected);
}

static const char *file_label(const Rpcq__Vouchers__Rejection *r, const struct vfile *files)
{
	if (r->file_name != NULL && r->file_name[0] != '\0')
		return r->file_name;
	if (files != NULL)
		return r->file == FILE_BARCODES ? files[1].file.name : files[0].file.name;
	return r->file == FILE_BARCODES ? "barcodes.csv" : "orders.csv";
}

/* Rejections as FILE:LINE: reason lines, formatted into one buffer and
 * written at once (stderr is unbuffered: a write per line would cost more
 * than the page's call). Returns 0, or the exit status. */
static int print_rejections_page(Rpcq__Vouchers__Rejection *const *r, size_t n, const struct vfile *files)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (m == NULL)
		return cli_out_of_memory();
	for (size_t i = 0; i < n; i++) {
		/* One line each, whatever the reason holds. */
		fprintf(m, "%s:%" PRIu64 ": ", file_label(r[i], files), r[i]->line);
		for (const char *s = r[i]->reason ? r[i]->reason : ""; *s; s++)
			fputc(*s == '\n' || *s == '\r' ? ' ' : *s, m);
		fputc('\n', m);
	}
	if (fclose(m) != 0) {
		free(buf);
		return cli_out_of_memory();
	}
	fwrite(buf, 1, len, stderr);
	free(buf);
	return 0;
}

struct rejections_listing {
	rpcq_client *client;
	const rpcq_call_options *o;
	char *import_id;
	const struct vfile *files;
};

static int rejections_page(void *arg, const char *token, char **next)
{
	const struct rejections_listing *l = arg;
	Rpcq__Vouchers__ListRejectionsRequest req = RPCQ__VOUCHERS__LIST_REJECTIONS_REQUEST__INIT;
	req.import_id = l->import_id;
	req.page_size = PAGE_SIZE;
	req.page_token = (char *)token;
	Rpcq__Vouchers__ListRejectionsResponse *r = NULL;
	rpcq_error err;
	if (rpcq_voucher_list_rejections(l->client, &req, &r, l->o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = print_rejections_page(r->rejections, r->n_rejections, l->files);
	if (rc == 0)
		rc = cli_next_page(next, r->next_page_token);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* Every rejection of an applied import on stderr: the first ones come with
 * the import; more are paged through ListRejections. */
static int print_rejections(rpcq_client *client, const rpcq_call_options *o, const Rpcq__Vouchers__Import *imp,
			    const struct vfile *files)
{
	if (imp->rejections <= imp->n_first_rejections)
		return print_rejections_page(imp->first_rejections, imp->n_first_rejections, files);
	struct rejections_listing l = {client, o, imp->import_id, files};
	return cli_each_page(rejections_page, &l);
}

/* ---- running an import ---- */

struct import_run {
	cli_globals *g;
	rpcq_client *client;
	rpcq_call_options o;
	size_t chunk;	       /* bytes a chunk carries: cli_chunk_bytes */
	struct vfile files[2]; /* orders, barcodes */
	char key[37];
	char *id;    /* the import's id, once started */
	int already; /* StartImport found it applied: nothing was sent */
	cli_progress progress;
};

static void free_import(Rpcq__Vouchers__Import *imp)
{
	if (imp)
		protobuf_c_message_free_unpacked(&imp->base, NULL);
}

/* Takes the server's view of the two files (where to continue); 0, or the
 * exit status when it cannot be these files. */
static int take_progress(struct import_run *run, const Rpcq__Vouchers__Import *imp)
{
	const Rpcq__Vouchers__FileProgress *fp[2] = {imp->orders, imp->barcodes};
	for (int i = 0; i < 2; i++) {
		struct vfile *f = &run->files[i];
		uint64_t received = fp[i] ? fp[i]->received_bytes : 0;
		if (received > f->file.size)
			return cli_fail_status(RPCQ_FAILED_PRECONDITION,
					       "import %s has %" PRIu64 " bytes of %s, but %s has %zu: did it change?",
					       imp->import_id, received, f->file.name, f->file.path, f->file.size);
		f->sent = received;
		f->complete = fp[i] ? fp[i]->complete : 0;
	}
	return 0;
}

static int start_import(struct import_run *run, Rpcq__Vouchers__Import **out)
{
	Rpcq__Vouchers__StartImportRequest req = RPCQ__VOUCHERS__START_IMPORT_REQUEST__INIT;
	req.key = run->key;
	req.orders_name = (char *)run->files[0].file.name;
	req.barcodes_name = (char *)run->files[1].file.name;
	rpcq_error err;
	if (rpcq_voucher_start_import(run->client, &req, out, &run->o, &err) != RPCQ_OK)
		return cli_fail(&err);
	free(run->id);
	if ((run->id = strdup((*out)->import_id)) == NULL) {
		free_import(*out);
		*out = NULL;
		return cli_out_of_memory();
	}
	return 0;
}

static int get_import(struct import_run *run, Rpcq__Vouchers__Import **out, rpcq_error *err)
{
	Rpcq__Vouchers__GetImportRequest req = RPCQ__VOUCHERS__GET_IMPORT_REQUEST__INIT;
	req.import_id = run->id;
	return rpcq_voucher_get_import(run->client, &req, out, &run->o, err) == RPCQ_OK ? 0 : -1;
}

/* A failed chunk or finish: the server's reason, naming the file when it is
 * about one and does not already. */
static int chunk_fail(const struct vfile *f, const rpcq_error *err)
{
	if (f == NULL || strstr(err->message, f->file.name) != NULL)
		return cli_fail(err);
	return cli_fail_status(err->code, "%s: %s", f->file.path, err->message);
}

/* Outcome of sending: done (files complete), applied (by someone else
 * meanwhile: *applied holds it), vanished (the import is gone: start over),
 * or failed (the exit status). */
enum send_result { SEND_DONE, SEND_APPLIED, SEND_VANISHED, SEND_FAILED };

/* Sends what the server lacks of both files, orders first. */
static enum send_result send_files(struct import_run *run, Rpcq__Vouchers__Import **applied, int *rc)
{
	Rpcq__Vouchers__ImportChunkRequest req = RPCQ__VOUCHERS__IMPORT_CHUNK_REQUEST__INIT;
	req.import_id = run->id;
	int resyncs = 0;
	for (int i = 0; i < 2; i++) {
		struct vfile *f = &run->files[i];
		while (!f->complete) {
			size_t left = f->file.size - (size_t)f->sent;
			size_t n = left < run->chunk ? left : run->chunk;
			req.file = f->which;
			req.offset = f->sent;
			req.data.data = (uint8_t *)(f->file.data ? f->file.data + f->sent : NULL);
			req.data.len = n;
			req.last = f->sent + n == f->file.size;
			Rpcq__Vouchers__Import *imp = NULL;
			rpcq_error err;
			if (rpcq_voucher_import_chunk(run->client, &req, &imp, &run->o, &err) == RPCQ_OK) {
				int bad = take_progress(run, imp);
				free_import(imp);
				if (bad) {
					*rc = bad;
					return SEND_FAILED;
				}
				if (f->sent > req.offset || f->complete) {
					resyncs = 0;
				} else if (++resyncs > MAX_RESYNCS) {
					/* Taken, but the server does not move on. */
					*rc = cli_fail_status(RPCQ_INTERNAL,
							      "%s: the server takes no bytes at %" PRIu64, f->file.path,
							      f->sent);
					return SEND_FAILED;
				}
				progress_files(&run->progress, run->files);
				continue;
			}
			if (err.code == RPCQ_NOT_FOUND)
				return SEND_VANISHED;
			if (err.code != RPCQ_FAILED_PRECONDITION || ++resyncs > MAX_RESYNCS) {
				*rc = chunk_fail(f, &err);
				return SEND_FAILED;
			}
			/* A gap (the server has fewer bytes than this command thought)
			 * or a file another client completed or applied meanwhile:
			 * continue from what the server says it has. The same answer
			 * twice means the refusal is not about where to continue. */
			uint64_t was_sent = f->sent;
			int was_complete = f->complete;
			rpcq_error gerr;
			if (get_import(run, &imp, &gerr) != 0) {
				*rc = gerr.code == RPCQ_NOT_FOUND ? 0 : cli_fail(&gerr);
				return gerr.code == RPCQ_NOT_FOUND ? SEND_VANISHED : SEND_FAILED;
			}
			if (imp->state == STATE_APPLIED) {
				*applied = imp;
				return SEND_APPLIED;
			}
			int bad = take_progress(run, imp);
			free_import(imp);
			if (bad) {
				*rc = bad;
				return SEND_FAILED;
			}
			if (f->sent == was_sent && f->complete == was_complete) {
				*rc = chunk_fail(f, &err);
				return SEND_FAILED;
			}
			i = -1; /* from the orders file again: either may have moved */
			break;
		}
	}
	return SEND_DONE;
}

/* Runs the import of run->files to its applied result (*out, freed by the
 * caller); 0, or the exit status after the error. */
static int run_import(struct import_run *run, Rpcq__Vouchers__Import **out)
{
	*out = NULL;
	import_key(&run->files[0], &run->files[1], run->key);
	cli_progress_start(&run->progress);
	int rc = 0;
	for (int restarts = 0;; restarts++) {
		Rpcq__Vouchers__Import *imp = NULL;
		if ((rc = start_import(run, &imp)) != 0)
			return rc;
		if (imp->state == STATE_APPLIED) {
			run->already = 1;
			*out = imp;
			return 0;
		}
		rc = take_progress(run, imp);
		if (rc == 0 && (run->files[0].sent > 0 || run->files[1].sent > 0))
			fprintf(stderr,
				"rpcq: resuming import %s: %s from byte %" PRIu64 " of %zu, %s from byte %" PRIu64
				" of %zu\n",
				imp->import_id, run->files[0].file.name, run->files[0].sent, run->files[0].file.size,
				run->files[1].file.name, run->files[1].sent, run->files[1].file.size);
		free_import(imp);
		if (rc != 0)
			return rc;
		progress_files(&run->progress, run->files);

		Rpcq__Vouchers__Import *applied = NULL;
		enum send_result sr = send_files(run, &applied, &rc);
		if (sr == SEND_FAILED) {
			cli_progress_clear(&run->progress);
			return rc;
		}
		if (sr == SEND_APPLIED) {
			cli_progress_clear(&run->progress);
			*out = applied;
			return 0;
		}
		if (sr == SEND_VANISHED) {
			if (restarts < MAX_RESTARTS)
				continue;
			cli_progress_clear(&run->progress);
			return cli_fail_status(RPCQ_ABORTED, "import %s vanished on the server %d times", run->id,
					       restarts + 1);
		}

		char what[96];
		snprintf(what, sizeof(what), "applying import %s", run->id);
		struct ticker ticker;
		ticker_start(&ticker, &run->progress, what);
		Rpcq__Vouchers__FinishImportRequest fin = RPCQ__VOUCHERS__FINISH_IMPORT_REQUEST__INIT;
		fin.import_id = run->id;
		rpcq_call_options lo = long_call_options(run->g, FINISH_TIMEOUT_MS);
		rpcq_error err;
		rpcq_status st = rpcq_voucher_finish_import(run->client, &fin, &imp, &lo, &err);
		ticker_stop(&ticker);
		cli_progress_clear(&run->progress);
		if (st == RPCQ_NOT_FOUND && restarts < MAX_RESTARTS)
			continue;
		if (st != RPCQ_OK)
			return cli_fail(&err);
		if (imp->state != STATE_APPLIED) {
			rc = cli_fail_status(RPCQ_INTERNAL, "import %s is %s after FinishImport, not APPLIED",
					     imp->import_id, state_name(imp->state));
			free_import(imp);
			return rc;
		}
		*out = imp;
		return 0;
	}
}

/* Parses --orders and --barcodes (and what extra accepts, which returns 1
 * for an option it took, 0 for one it does not know, or an exit status +
 * 2); opens and maps the files into run. Returns 0, or the exit status. */
static int import_args(int argc, char **argv, const char **orders, const char **barcodes,
		       int (*extra)(int argc, char **argv, int *i, void *arg), void *arg, const char *syntax)
{
	*orders = *barcodes = NULL;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--orders", &missing)) != NULL) {
			*orders = v;
		} else if ((v = cli_option(argc, argv, &i, "--barcodes", &missing)) != NULL) {
			*barcodes = v;
		} else if (missing) {
			return cli_usage_error("%s needs a value", argv[i]);
		} else {
			int r = extra ? extra(argc, argv, &i, arg) : 0;
			if (r == 1)
				continue;
			if (r > 1)
				return r - 2;
			return cli_usage_error("vouchers %s takes %s, not \"%s\"", argv[0], syntax, argv[i]);
		}
	}
	return 0;
}

static int open_run(struct import_run *run, cli_globals *g, const char *orders, const char *barcodes)
{
	run->g = g;
	run->files[0] = (struct vfile){.which = FILE_ORDERS};
	run->files[1] = (struct vfile){.which = FILE_BARCODES};
	cli_file_init(&run->files[0].file, orders);
	cli_file_init(&run->files[1].file, barcodes);
	int rc = cli_file_open(&run->files[0].file);
	if (rc == 0)
		rc = cli_file_open(&run->files[1].file);
	if (rc != 0)
		return rc;
	cli_keep_buffers_on_heap();
	if ((run->client = cli_client(g)) == NULL)
		return 1;
	run->o = cli_call_options(g);
	run->chunk = cli_chunk_bytes(g, CHUNK);
	return 0;
}

static void close_run(struct import_run *run)
{
	cli_file_close(&run->files[0].file);
	cli_file_close(&run->files[1].file);
	free(run->id);
	run->id = NULL;
}

/* Imports, then prints the rejections and the summary on stderr. */
static int import_and_report(struct import_run *run, Rpcq__Vouchers__Import **out)
{
	int rc = run_import(run, out);
	if (rc != 0)
		return rc;
	fflush(stdout);
	rc = print_rejections(run->client, &run->o, *out, run->files);
	print_summary(*out, run->already);
	return rc;
}

static int json_flag(int argc, char **argv, int *i, void *arg)
{
	(void)argc;
	if (strcmp(argv[*i], "--json") != 0)
		return 0;
	*(int *)arg = 1;
	return 1;
}

static int cmd_import(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		import_usage(stdout);
		return 0;
	}
	const char *orders, *barcodes;
	int as_json = 0;
	struct import_run run = {0};
	int rc = import_args(argc, argv, &orders, &barcodes, json_flag, &as_json,
			     "--orders FILE --barcodes FILE [--json]");
	if (rc != 0)
		return rc;
	if (orders == NULL || barcodes == NULL)
		return cli_usage_error("vouchers import needs --orders FILE and --barcodes FILE");
	Rpcq__Vouchers__Import *imp = NULL;
	rc = open_run(&run, g, orders, barcodes);
	if (rc == 0)
		rc = import_and_report(&run, &imp);
	if (rc == 0 && as_json)
		rc = cli_print_json(&imp->base, 1);
	free_import(imp);
	close_run(&run);
	fflush(stdout);
	return rc;
}

/* ---- voucher lines ---- */

/* A page of vouchers as "customer_id, order_id, [b1, b2, ...]" lines, into
 * one buffer written with one fwrite (pages hold thousands of lines, and a
 * stdio call per barcode costs more than formatting them). An order longer
 * than a page comes in parts (Voucher.continues): *open says that the line
 * of the page before's last one is still open, and the part that goes on
 * with it adds its barcodes to that line. 0, or -1 when out of memory or the
 * write failed. */
static int write_vouchers(FILE *out, Rpcq__Vouchers__Voucher *const *v, size_t n, int *open)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++) {
		cap += strlen(v[i]->customer_id) + strlen(v[i]->order_id) + 8;
		for (size_t k = 0; k < v[i]->n_barcodes; k++)
			cap += strlen(v[i]->barcodes[k]) + 2;
	}
	char *buf = malloc(cap);
	if (buf == NULL)
		return -1;
	char *w = buf;
	for (size_t i = 0; i < n; i++) {
		int more = *open; /* barcodes of this order are on the line already */
		if (!*open) {
			size_t l = strlen(v[i]->customer_id);
			memcpy(w, v[i]->customer_id, l);
			w += l;
			*w++ = ',';
			*w++ = ' ';
			l = strlen(v[i]->order_id);
			memcpy(w, v[i]->order_id, l);
			w += l;
			*w++ = ',';
			*w++ = ' ';
			*w++ = '[';
		}
		for (size_t k = 0; k < v[i]->n_barcodes; k++) {
			if (k > 0 || more) {
				*w++ = ',';
				*w++ = ' ';
			}
			size_t l = strlen(v[i]->barcodes[k]);
			memcpy(w, v[i]->barcodes[k], l);
			w += l;
		}
		*open = v[i]->continues;
		if (!*open) {
			*w++ = ']';
			*w++ = '\n';
		}
	}
	size_t len = (size_t)(w - buf);
	size_t wrote = fwrite(buf, 1, len, out);
	free(buf);
	return wrote == len ? 0 : -1;
}

/* The parts of an order longer than a page (Voucher.continues), joined so
 * that --json prints one object an order, as the lines do: one order's
 * barcodes held at a time. */
typedef struct voucher_parts {
	Rpcq__Vouchers__Voucher v; /* its strings and array owned here; order_id NULL: empty */
	size_t cap;
} voucher_parts;

static int parts_add(voucher_parts *p, const Rpcq__Vouchers__Voucher *v)
{
	if (p->v.order_id == NULL) {
		rpcq__vouchers__voucher__init(&p->v);
		p->v.customer_id = strdup(v->customer_id);
		p->v.order_id = strdup(v->order_id);
		if (p->v.customer_id == NULL || p->v.order_id == NULL)
			return -1;
	}
	if (p->v.n_barcodes + v->n_barcodes > p->cap) {
		size_t cap = (p->v.n_barcodes + v->n_barcodes) * 2;
		char **b = realloc(p->v.barcodes, cap * sizeof(*b));
		if (b == NULL)
			return -1;
		p->v.barcodes = b;
		p->cap = cap;
	}
	for (size_t k = 0; k < v->n_barcodes; k++) {
		char *code = strdup(v->barcodes[k]);
		if (code == NULL)
			return -1;
		p->v.barcodes[p->v.n_barcodes++] = code;
	}
	return 0;
}

static void parts_clear(voucher_parts *p)
{
	for (size_t k = 0; k < p->v.n_barcodes; k++)
		free(p->v.barcodes[k]);
	free(p->v.barcodes);
	free(p->v.customer_id);
	free(p->v.order_id);
	memset(p, 0, sizeof(*p));
}

/* A page of vouchers as JSON lines on stdout, parts of one order joined. */
static int print_vouchers_json(Rpcq__Vouchers__Voucher *const *v, size_t n, voucher_parts *p)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!v[i]->continues && p->v.order_id == NULL) {
			rc = cli_print_json(&v[i]->base, 0);
			continue;
		}
		if (parts_add(p, v[i]) != 0)
			return cli_fail_status(RPCQ_RESOURCE_EXHAUSTED, "out of memory joining the parts of order %s",
					       v[i]->order_id);
		if (!v[i]->continues) {
			rc = cli_print_json(&p->v.base, 0);
			parts_clear(p);
		}
	}
	return rc;
}

struct vouchers_listing {
	rpcq_client *client;
	const rpcq_call_options *o;
	const char *customer;
	FILE *out;
	int as_json;
	int *write_failed;
	int open; /* write_vouchers' line of an order left open */
	voucher_parts parts;
};

static int vouchers_page(void *arg, const char *token, char **next)
{
	struct vouchers_listing *l = arg;
	Rpcq__Vouchers__ListVouchersRequest req = RPCQ__VOUCHERS__LIST_VOUCHERS_REQUEST__INIT;
	req.customer_id = (char *)l->customer;
	req.page_size = PAGE_SIZE;
	req.page_token = (char *)token;
	Rpcq__Vouchers__ListVouchersResponse *r = NULL;
	rpcq_error err;
	if (rpcq_voucher_list_vouchers(l->client, &req, &r, l->o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = 0;
	if (l->as_json) {
		rc = print_vouchers_json(r->vouchers, r->n_vouchers, &l->parts);
	} else if (write_vouchers(l->out, r->vouchers, r->n_vouchers, &l->open) != 0) {
		*l->write_failed = 1;
		rc = 1;
	}
	if (rc == 0)
		rc = cli_next_page(next, r->next_page_token);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* Every voucher (of customer, when not empty) to out as lines, or with
 * as_json as JSON lines on stdout, page by page. Returns 0, or the exit
 * status; *write_failed is set when writing out failed. */
static int list_vouchers(rpcq_client *client, const rpcq_call_options *o, const char *customer, FILE *out, int as_json,
			 int *write_failed)
{
	struct vouchers_listing l = {.client = client,
				     .o = o,
				     .customer = customer,
				     .out = out,
				     .as_json = as_json,
				     .write_failed = write_failed};
	int rc = cli_each_page(vouchers_page, &l);
	parts_clear(&l.parts);
	return rc;
}

static int get_top(rpcq_client *client, const rpcq_call_options *o, uint64_t n,
		   Rpcq__Vouchers__TopCustomersResponse **out)
{
	Rpcq__Vouchers__TopCustomersRequest req = RPCQ__VOUCHERS__TOP_CUSTOMERS_REQUEST__INIT;
	req.n = (uint32_t)n;
	rpcq_error err;
	if (rpcq_voucher_top_customers(client, &req, out, o, &err) != RPCQ_OK)
		return cli_fail(&err);
	return 0;
}

static int get_unused(rpcq_client *client, const rpcq_call_options *o, Rpcq__Vouchers__CountUnusedResponse **out)
{
	Rpcq__Vouchers__CountUnusedRequest req = RPCQ__VOUCHERS__COUNT_UNUSED_REQUEST__INIT;
	rpcq_error err;
	if (rpcq_voucher_count_unused(client, &req, out, o, &err) != RPCQ_OK)
		return cli_fail(&err);
	return 0;
}

static void print_top_lines(const Rpcq__Vouchers__TopCustomersResponse *t)
{
	for (size_t i = 0; i < t->n_customers; i++)
		printf("%s, %" PRIu64 "\n", t->customers[i]->customer_id, t->customers[i]->tickets);
}

/* ---- report, list, top, unused ---- */

struct report_opts {
	const char *output;
	uint64_t top;
};

static int report_extra(int argc, char **argv, int *i, void *arg)
{
	struct report_opts *r = arg;
	const char *v;
	int missing = 0;
	if ((v = cli_option(argc, argv, i, "--output", &missing)) != NULL) {
		r->output = v;
		return 1;
	}
	if (!missing && (v = cli_option(argc, argv, i, "--top", &missing)) != NULL) {
		if (cli_parse_uint(v, 1, 10000, &r->top) != 0)
			return cli_usage_error("--top takes a number 1..10000, not \"%s\"", v) + 2;
		return 1;
	}
	if (missing)
		return cli_usage_error("%s needs a value", argv[*i]) + 2;
	return 0;
}

static int cmd_report(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		report_usage(stdout);
		return 0;
	}
	const char *orders, *barcodes;
	struct report_opts ro = {NULL, 5};
	struct import_run run = {0};
	int rc = import_args(argc, argv, &orders, &barcodes, report_extra, &ro,
			     "[--orders FILE --barcodes FILE] [--output FILE] [--top N]");
	if (rc != 0)
		return rc;
	if ((orders == NULL) != (barcodes == NULL))
		return cli_usage_error("vouchers report needs both --orders FILE and --barcodes FILE, or neither");
	Rpcq__Vouchers__Import *imp = NULL;
	Rpcq__Vouchers__TopCustomersResponse *top = NULL;
	Rpcq__Vouchers__CountUnusedResponse *unused = NULL;
	FILE *out = NULL;
	rpcq_client *client;
	rpcq_call_options o;
	int to_stdout = ro.output == NULL || strcmp(ro.output, "-") == 0, write_failed = 0;
	if (orders != NULL) {
		if ((rc = open_run(&run, g, orders, barcodes)) != 0 || (rc = import_and_report(&run, &imp)) != 0)
			goto out;
		client = run.client;
		o = run.o;
	} else {
		if ((client = cli_client(g)) == NULL) {
			rc = 1;
			goto out;
		}
		o = cli_call_options(g);
	}
	if (to_stdout) {
		out = stdout;
	} else if ((out = fopen(ro.output, "w")) == NULL) {
		rc = cli_fail_status(RPCQ_INVALID_ARGUMENT, "cannot create %s: %s", ro.output, strerror(errno));
		goto out;
	}
	rc = list_vouchers(client, &o, "", out, 0, &write_failed);
	if (out != stdout) {
		if (fclose(out) != 0)
			write_failed = 1;
		out = NULL;
	}
	if (write_failed) {
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write %s: %s", to_stdout ? "the vouchers" : ro.output,
				     strerror(errno));
		goto out;
	}
	if (rc != 0 || (rc = get_top(client, &o, ro.top, &top)) != 0 || (rc = get_unused(client, &o, &unused)) != 0)
		goto out;
	if (to_stdout)
		fputc('\n', stdout);
	printf("Top %lu customers:\n", ro.top);
	print_top_lines(top);
	printf("Unused barcodes: %" PRIu64 "\n", unused->unused);
out:
	if (out != NULL && out != stdout)
		fclose(out);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	if (top)
		protobuf_c_message_free_unpacked(&top->base, NULL);
	if (unused)
		protobuf_c_message_free_unpacked(&unused->base, NULL);
	free_import(imp);
	close_run(&run);
	return rc;
}

static int cmd_list(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		list_usage(stdout);
		return 0;
	}
	const char *customer = "";
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--customer", &missing)) != NULL)
			customer = v;
		else if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (missing)
			return cli_usage_error("%s needs a value", argv[i]);
		else
			return cli_usage_error("vouchers list takes [--customer C] [--json], not \"%s\"", argv[i]);
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	int write_failed = 0;
	int rc = list_vouchers(client, &o, customer, stdout, as_json, &write_failed);
	if ((fflush(stdout) != 0 || write_failed) && rc <= 1)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

/* rc, or 1 with an error line when what went to stdout could not all be
 * written (a full disk, a closed pipe): the command did not do its job. */
static int stdout_written(int rc)
{
	if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

static int cmd_top(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		top_usage(stdout);
		return 0;
	}
	uint64_t n = 5;
	int as_json = 0, have_n = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (!have_n && argv[i][0] != '-' && cli_parse_uint(argv[i], 1, 10000, &n) == 0)
			have_n = 1;
		else if (!have_n && argv[i][0] != '-')
			return cli_usage_error("vouchers top takes a number 1..10000, not \"%s\"", argv[i]);
		else
			return cli_usage_error("vouchers top takes [N] [--json], not \"%s\"", argv[i]);
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vouchers__TopCustomersResponse *top = NULL;
	int rc = get_top(client, &o, n, &top);
	if (rc != 0)
		return rc;
	if (as_json) {
		for (size_t i = 0; i < top->n_customers && rc == 0; i++)
			rc = cli_print_json(&top->customers[i]->base, 0);
	} else {
		print_top_lines(top);
	}
	protobuf_c_message_free_unpacked(&top->base, NULL);
	return stdout_written(rc);
}

static int cmd_unused(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		unused_usage(stdout);
		return 0;
	}
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else
			return cli_usage_error("vouchers unused takes no arguments but --json, not \"%s\"", argv[i]);
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vouchers__CountUnusedResponse *r = NULL;
	int rc = get_unused(client, &o, &r);
	if (rc != 0)
		return rc;
	if (as_json) {
		rc = cli_print_json(&r->base, 0);
	} else {
		printf("%" PRIu64 "\n", r->unused);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return stdout_written(rc);
}

/* ---- issue ---- */

static int cmd_issue(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		issue_usage(stdout);
		return 0;
	}
	const char *customer = NULL, *key = NULL;
	uint64_t quantity = 0;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if ((v = cli_option(argc, argv, &i, "--customer", &missing)) != NULL) {
			customer = v;
		} else if ((v = cli_option(argc, argv, &i, "--quantity", &missing)) != NULL) {
			if (cli_parse_uint(v, 1, 10000, &quantity) != 0)
				return cli_usage_error("--quantity takes a number 1..10000, not \"%s\"", v);
		} else if ((v = cli_option(argc, argv, &i, "--key", &missing)) != NULL) {
			key = v;
		} else if (missing) {
			return cli_usage_error("%s needs a value", argv[i]);
		} else {
			return cli_usage_error(
				"vouchers issue takes --customer C --quantity N [--key K] [--json], not \"%s\"",
				argv[i]);
		}
	}
	if (customer == NULL || customer[0] == '\0' || quantity == 0)
		return cli_usage_error("vouchers issue needs --customer C and --quantity N");
	if (key != NULL && (key[0] == '\0' || strlen(key) > 128))
		return cli_usage_error("--key takes 1 to 128 bytes");
	/* Without a key of the caller's, one of its own: a resend of this very
	 * call (by the transport, or by a library that retries it one day) is
	 * then answered with the first result instead of selling twice. */
	char random_key[37];
	if (key == NULL) {
		uuid_t u;
		uuid_generate_random(u);
		uuid_unparse_lower(u, random_key);
		key = random_key;
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vouchers__IssueVouchersRequest req = RPCQ__VOUCHERS__ISSUE_VOUCHERS_REQUEST__INIT;
	req.customer_id = (char *)customer;
	req.quantity = (uint32_t)quantity;
	req.idempotency_key = (char *)key;
	Rpcq__Vouchers__IssueVouchersResponse *r = NULL;
	rpcq_error err;
	if (rpcq_voucher_issue_vouchers(client, &req, &r, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	if (r->replayed)
		fprintf(stderr, "rpcq: key %s was used before: this is its order; nothing more was sold\n", key);
	if (as_json) {
		int rc = cli_print_json(&r->base, 1);
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rc;
	}
	printf("order %s\n", r->order_id);
	for (size_t i = 0; i < r->n_barcodes; i++)
		printf("%s\n", r->barcodes[i]);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (fflush(stdout) != 0)
		return cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return 0;
}

/* ---- status ---- */

static void print_file_progress(const char *what, const Rpcq__Vouchers__FileProgress *f)
{
	if (f == NULL) {
		printf("%s: nothing received\n", what);
		return;
	}
	printf("%s: %" PRIu64 " bytes received%s, %" PRIu64 " lines, %" PRIu64 " rows, %" PRIu64
	       " rejected while reading\n",
	       f->name && f->name[0] ? f->name : what, f->received_bytes, f->complete ? " (complete)" : "", f->lines,
	       f->rows, f->rejected);
}

static int cmd_status(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		status_usage(stdout);
		return 0;
	}
	const char *id;
	int as_json;
	int rc = cli_arg_and_json(argc, argv, "vouchers status", "IMPORT_ID", &id, &as_json);
	if (rc != 0)
		return rc;
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vouchers__GetImportRequest req = RPCQ__VOUCHERS__GET_IMPORT_REQUEST__INIT;
	req.import_id = (char *)id;
	Rpcq__Vouchers__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_voucher_get_import(client, &req, &imp, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	if (as_json) {
		rc = cli_print_json(&imp->base, 1);
	} else {
		char created[32], applied[32];
		cli_format_ms(imp->created_at_ms, created, sizeof(created));
		cli_format_ms(imp->applied_at_ms, applied, sizeof(applied));
		printf("import %s: %s, created %s%s%s\n", imp->import_id, state_name(imp->state), created,
		       imp->state == STATE_APPLIED ? ", applied " : "", imp->state == STATE_APPLIED ? applied : "");
		if (imp->key && imp->key[0])
			printf("key: %s\n", imp->key);
		print_file_progress("orders", imp->orders);
		print_file_progress("barcodes", imp->barcodes);
		if (imp->state == STATE_APPLIED && imp->counts) {
			const Rpcq__Vouchers__ImportCounts *c = imp->counts;
			printf("orders: %" PRIu64 " added, %" PRIu64 " unchanged, %" PRIu64 " rejected, %" PRIu64
			       " without barcodes\n",
			       c->orders_added, c->orders_unchanged, c->orders_rejected, c->orders_without_barcodes);
			printf("barcodes: %" PRIu64 " added, %" PRIu64 " sold from the stock, %" PRIu64
			       " unchanged, %" PRIu64 " rejected\n",
			       c->barcodes_added, c->barcodes_sold, c->barcodes_unchanged, c->barcodes_rejected);
		}
		printf("rejections: %" PRIu64 "\n", imp->rejections);
	}
	free_import(imp);
	return stdout_written(rc);
}

int cli_vouchers(int argc, char **argv, cli_globals *g)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv, cli_globals *g);
	} cmds[] = {
		{"import", cmd_import}, {"report", cmd_report}, {"list", cmd_list},	{"top", cmd_top},
		{"unused", cmd_unused}, {"issue", cmd_issue},	{"status", cmd_status},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1, g);
	}
	return cli_usage_error("unknown vouchers command \"%s\"", argv[1]);
}
