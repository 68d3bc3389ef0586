/*
 * `rpcq billing`: the billing service (rpcq.billing.BillingService) from
 * the command line.
 *
 *   rpcq billing import FILE [--wait bills|emails] [--json]
 *   rpcq billing status IMPORT_ID [--json]
 *   rpcq billing bill DEBT_ID [--json] [--pdf FILE]
 *   rpcq billing pay DEBT_ID --amount A [--paid-at T] [--payer P] [--json]
 *
 * An import sends the file in chunks of CHUNK bytes (fewer when the server's
 * message limit is smaller: cli_chunk_bytes) at their offsets (cut
 * anywhere: the server carries a partial record over to the next chunk),
 * the last one marked last. Its key is a UUIDv5 of the file's contents, so the
 * same command run again finds the same import: an interrupted one continues
 * from the server's received_bytes, a complete one sends nothing. The file is
 * mapped, not read, so memory stays bounded by the chunk in flight whatever
 * its size, and a resume starts at any offset without reading up to it.
 *
 * With --wait the command then follows the import's progress on its stream,
 * billing.imports.<id> (GetImport every POLL_MS when the stream cannot be
 * followed, and whenever it is quiet for STREAM_QUIET_MS), until every new
 * debt of the file has its bill (state MAILING or DONE) or every e-mail is
 * settled (DONE): sent, failed or cancelled by a payment.
 *
 * Rejected rows never fail an import: they are printed on stderr as
 * FILE:LINE: reason, then a summary of the counts, and the exit status is 0
 * once every row is imported (and what --wait asks for is done).
 */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "cli.h"

/* Bytes per ImportChunk: per-call costs (a round trip, a transaction, a
 * COPY and a merge on the server) vanish next to the rows at this size, well
 * under the 4 MiB message limit. */
#define CHUNK (1024 * 1024)
/* Chunks in flight: the server reads one while it merges the other. */
#define WINDOW 2
/* GetImport while waiting without the stream. */
#define POLL_MS 200
/* With the stream: a GetImport when no message came for this long (a
 * message lost for good, or progress the stream does not carry). */
#define STREAM_QUIET_MS 1000
/* ListRejections pages: the most the server gives. */
#define PAGE_SIZE 10000
/* Times a refused chunk makes the command re-read where to continue before
 * it gives up (the same answer twice ends it sooner). */
#define MAX_RESYNCS 16

#define STATE_RECEIVING RPCQ__BILLING__IMPORT_STATE__RECEIVING
#define STATE_BILLING RPCQ__BILLING__IMPORT_STATE__BILLING
#define STATE_MAILING RPCQ__BILLING__IMPORT_STATE__MAILING
#define STATE_DONE RPCQ__BILLING__IMPORT_STATE__DONE

/* The namespace of billing import keys: UUIDv5 of a file's contents under
 * it. Fixed: changing it would change every key, and a rerun of an
 * interrupted import would start a new one. */
static const uuid_t import_key_namespace = {0x5e, 0x0b, 0x8d, 0x31, 0xc2, 0x7a, 0x4f, 0x19,
					    0x9a, 0x64, 0x27, 0xd3, 0x81, 0xf0, 0x4c, 0x6e};

static void usage(FILE *out)
{
	fprintf(out, "usage: rpcq billing import FILE [--wait bills|emails] [--json]\n"
		     "       rpcq billing status IMPORT_ID [--json]\n"
		     "       rpcq billing bill DEBT_ID [--json] [--pdf FILE]\n"
		     "       rpcq billing pay DEBT_ID --amount A [--paid-at T] [--payer P] [--json]\n"
		     "       rpcq billing retry IMPORT_ID | --debt DEBT_ID [--email ADDRESS] [--json]\n\n"
		     "Debts imported from CSV files, one bill (a boleto-style payment slip) per debt, one e-mail\n"
		     "per bill, and payments that stop the e-mails.\n\n"
		     "import   sends a debts file (name,governmentId,email,debtAmount,debtDueDate,debtId) in\n"
		     "         chunks; rejected rows are listed on stderr as FILE:LINE: reason, then a summary.\n"
		     "         Running it again resumes an interrupted import or changes nothing. --wait bills\n"
		     "         returns once every new debt has its bill, --wait emails once every e-mail is sent\n"
		     "         or failed\n"
		     "status   an import's state and counts, its first rejections and failed e-mails\n"
		     "bill     a debt's bill: the slip, its payment code and the state of its e-mail\n"
		     "pay      records the payment of a debt (a pending e-mail of its bill is not sent)\n"
		     "retry    puts e-mails that failed for good back in the outbox\n\n"
		     "`rpcq billing COMMAND --help` describes one command.\n");
}

static void import_usage(FILE *out)
{
	fprintf(out,
		"usage: rpcq billing import FILE [--wait bills|emails] [--json]\n\n"
		"Imports a debts file (CSV with the header name,governmentId,email,debtAmount,debtDueDate,debtId)\n"
		"in chunks of 1 MiB. The import's key is a hash of the file's contents: the same command run\n"
		"again continues an interrupted import from where the server stopped receiving (saying\n"
		"\"resuming at byte N\" on stderr), or sends nothing and reports the import as it stands.\n"
		"A debtId imported before (by this file or another) is not a new debt; with other values it\n"
		"is rejected.\n\n"
		"  --wait bills    then wait until every new debt of the file has its bill (state MAILING)\n"
		"  --wait emails   then wait until every e-mail of those bills is sent, failed or cancelled\n"
		"                  (state DONE); a server with no mail backend sends none: bound the wait\n"
		"                  with the global --timeout MS (unbounded otherwise)\n"
		"  --json          print the final Import (GetImport's reply) as proto3 JSON on stdout\n\n"
		"On a terminal, stderr shows a progress bar: bytes sent, then bills or e-mails settled of the\n"
		"new debts. At the end every rejected row is printed on stderr as FILE:LINE: reason (FILE the\n"
		"file's base name), every e-mail that failed for good as FILE:LINE: e-mail of debt D to ADDRESS\n"
		"failed after N attempts: the sender's last answer, then a summary: rows, accepted (new debts,\n"
		"repeated), rejected, bills, e-mails sent, failed and pending.\n"
		"Exit status 0 when every row is imported (and what --wait asks for is done), even with\n"
		"rejected rows; 1 when the file cannot be read at all (e.g. \"rpcq: INVALID_ARGUMENT:\n"
		"debts.csv: line 1: ...\" for a wrong header), a call fails or --timeout passes while waiting;\n"
		"2 on a usage error.\n");
}

static void status_usage(FILE *out)
{
	fprintf(out, "usage: rpcq billing status IMPORT_ID [--json]\n\n"
		     "Prints an import's state (RECEIVING, BILLING, MAILING, DONE), the bytes received, its row\n"
		     "counts, bills and e-mails, its first rejections and its first e-mails that failed for good\n"
		     "(with the debt, the address, the attempts and the sender's last answer); with --json the\n"
		     "Import as proto3 JSON.\n");
}

static void bill_usage(FILE *out)
{
	fprintf(out, "usage: rpcq billing bill DEBT_ID [--json] [--pdf FILE]\n\n"
		     "Prints the debt's bill as its slip was rendered, then one line:\n"
		     "  payment code CODE, e-mail STATE, paid|not paid\n"
		     "STATE is pending, sent, failed (with the attempts and the last error) or cancelled (the\n"
		     "debt was paid first). --json prints the Bill as proto3 JSON instead. --pdf FILE also\n"
		     "writes the slip as a PDF (one A4 page, the barcode's bars included) to FILE; with\n"
		     "--pdf - the PDF goes to stdout, alone. Exit status 1 with NOT_FOUND for an unknown\n"
		     "debt, FAILED_PRECONDITION for a debt whose bill is not made yet.\n");
}

static void retry_usage(FILE *out)
{
	fprintf(out, "usage: rpcq billing retry IMPORT_ID [--json]\n"
		     "       rpcq billing retry --debt DEBT_ID [--email ADDRESS] [--json]\n\n"
		     "Puts the e-mails that failed for good back in the outbox, every one of the import's or the\n"
		     "debt's, once what made them fail is fixed (the SMTP server was down longer than the\n"
		     "retries last, say). They are sent as new ones: --mail-max-attempts attempts again, the same\n"
		     "Message-ID. E-mails of paid debts, and e-mails that did not fail, stay as they are. Prints\n"
		     "how many went back (--json: the reply as proto3 JSON); then `rpcq billing import FILE\n"
		     "--wait emails` with the same file, or `rpcq billing status ID`, follows them. With --email,\n"
		     "the debt's failed e-mail goes to ADDRESS from now on (a mailbox that was mistyped or has\n"
		     "moved); the debt keeps its file's address, so sending that file again finds it unchanged.\n"
		     "Exit status 1 with NOT_FOUND for an unknown import or debt, INVALID_ARGUMENT for an\n"
		     "ADDRESS that is not one.\n");
}

static void pay_usage(FILE *out)
{
	fprintf(out, "usage: rpcq billing pay DEBT_ID --amount A [--paid-at T] [--payer P] [--json]\n\n"
		     "Records the payment of a debt: A a decimal amount (up to 2 decimals), T when it was paid\n"
		     "(RFC 3339, e.g. 2024-05-01T10:00:00Z; default now), P who paid. Prints\n"
		     "  paid DEBT_ID AMOUNT at PAID_AT\n"
		     "and \"e-mail cancelled\" when the bill's e-mail had not gone out yet (it never will).\n"
		     "A debt is paid once: the same payment again changes nothing (saying so on stderr); another\n"
		     "one fails with \"rpcq: ALREADY_EXISTS: ...\" and exit status 1. --json prints the Payment\n"
		     "as proto3 JSON instead.\n");
}

/* ---- small helpers ---- */

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void free_import(Rpcq__Billing__Import *imp)
{
	if (imp)
		protobuf_c_message_free_unpacked(&imp->base, NULL);
}

static const char *state_name(Rpcq__Billing__ImportState s)
{
	switch (s) {
	case STATE_RECEIVING:
		return "RECEIVING";
	case STATE_BILLING:
		return "BILLING";
	case STATE_MAILING:
		return "MAILING";
	case STATE_DONE:
		return "DONE";
	default:
		return "UNKNOWN";
	}
}

/* E-mails of the import's bills no longer pending: sent, failed or
 * cancelled. */
static uint64_t settled(const Rpcq__Billing__Import *imp)
{
	return imp->bills > imp->emails_pending ? imp->bills - imp->emails_pending : 0;
}

/* ---- an import run ---- */

enum wait_for { WAIT_NONE, WAIT_BILLS, WAIT_EMAILS };

struct run {
	cli_globals *g;
	rpcq_client *client;
	rpcq_call_options o;
	cli_file file;
	char key[37];
	char *id;
	size_t chunk;  /* bytes a chunk carries: cli_chunk_bytes */
	uint64_t sent; /* the server has the bytes before this */
	int complete;  /* the server has the whole file */
	int sent_any;  /* this command sent a chunk */
	cli_progress progress;
};

static int get_import(struct run *run, Rpcq__Billing__Import **out, rpcq_error *err)
{
	Rpcq__Billing__GetImportRequest req = RPCQ__BILLING__GET_IMPORT_REQUEST__INIT;
	req.import_id = run->id;
	return rpcq_billing_get_import(run->client, &req, out, &run->o, err) == RPCQ_OK ? 0 : -1;
}

/* Takes the server's view of the upload; 0, or the exit status when it
 * cannot be this file. */
static int take_progress(struct run *run, const Rpcq__Billing__Import *imp)
{
	if (imp->received_bytes > run->file.size)
		return cli_fail_status(RPCQ_FAILED_PRECONDITION,
				       "import %s has %" PRIu64 " bytes, but %s has %zu: did it change?",
				       imp->import_id, imp->received_bytes, run->file.path, run->file.size);
	run->sent = imp->received_bytes;
	run->complete = imp->complete;
	return 0;
}

static void progress_bytes(struct run *run)
{
	char a[32], b[32], text[200];
	cli_human_bytes(run->sent, a, sizeof(a));
	cli_human_bytes(run->file.size, b, sizeof(b));
	snprintf(text, sizeof(text), "sending %s: %s / %s", run->file.name, a, b);
	/* The last piece is drawn whatever the rate limit: the bar ends at 100%. */
	cli_progress_bar(&run->progress, run->sent, run->file.size, text, run->sent >= run->file.size);
}

/* A chunk in flight: its call runs on a thread of its own. */
struct chunk_call {
	struct run *run;
	pthread_t thread;
	Rpcq__Billing__ImportChunkRequest req;
	Rpcq__Billing__Import *imp;
	rpcq_error err;
	rpcq_status st;
};

static void *chunk_call_run(void *arg)
{
	struct chunk_call *cc = arg;
	cc->st = rpcq_billing_import_chunk(cc->run->client, &cc->req, &cc->imp, &cc->run->o, &cc->err);
	return NULL;
}

/* Starts the call for the chunk at offset; 0, or -1 (err set) when no
 * thread could be made. */
static int chunk_call_start(struct run *run, struct chunk_call *cc, uint64_t offset, rpcq_error *err)
{
	size_t left = run->file.size - (size_t)offset;
	size_t n = left < run->chunk ? left : run->chunk;
	*cc = (struct chunk_call){.run = run};
	rpcq__billing__import_chunk_request__init(&cc->req);
	cc->req.import_id = run->id;
	cc->req.offset = offset;
	cc->req.data.data = (uint8_t *)(run->file.data ? run->file.data + offset : NULL);
	cc->req.data.len = n;
	cc->req.last = n == left;
	int rv = pthread_create(&cc->thread, NULL, chunk_call_run, cc);
	if (rv != 0) {
		rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot start a thread for a chunk: %s", strerror(rv));
		return -1;
	}
	return 0;
}

static void chunk_call_join(struct chunk_call *cc)
{
	pthread_join(cc->thread, NULL);
}

/* Waits for the calls in flight and drops their replies. */
static void drain(struct chunk_call *q, int *head, int *inflight)
{
	for (; *inflight > 0; (*inflight)--) {
		chunk_call_join(&q[*head]);
		if (q[*head].st == RPCQ_OK)
			free_import(q[*head].imp);
		*head = (*head + 1) % WINDOW;
	}
}

/* Sends what the server lacks of the file, WINDOW chunks in flight: the
 * server reads a chunk while the one before it is merged (upload_ahead.h
 * on the server). Replies come in order of offset; one that does not end
 * where its chunk did (a refusal, a duplicate, a server that has less)
 * drains the others and continues from what the server says it has. 0, or
 * the exit status. */
static int send_file(struct run *run)
{
	struct chunk_call q[WINDOW];
	int head = 0, inflight = 0, resyncs = 0, rc = 0;
	uint64_t next = run->sent;	  /* offset of the next chunk to start */
	uint64_t refused_at = UINT64_MAX; /* a refusal where the server then stood */
	int last_started = 0;		  /* the chunk marked last is in flight */
	while ((rc == 0 && !run->complete) || inflight > 0) {
		rpcq_error err;
		while (rc == 0 && !run->complete && !last_started && inflight < WINDOW) {
			struct chunk_call *cc = &q[(head + inflight) % WINDOW];
			if (chunk_call_start(run, cc, next, &err) != 0) {
				if (inflight == 0)
					return cli_fail(&err);
				break;
			}
			inflight++;
			next += cc->req.data.len;
			last_started = cc->req.last;
		}
		if (inflight == 0) {
			/* Every byte sent and taken, yet not complete: not a state
			 * the server leaves; say so rather than wait. */
			rc = cli_fail_status(RPCQ_INTERNAL, "%s: the server has all %" PRIu64 " bytes but not the end",
					     run->file.path, run->sent);
			break;
		}
		struct chunk_call *cc = &q[head];
		chunk_call_join(cc);
		head = (head + 1) % WINDOW;
		inflight--;
		uint64_t end = cc->req.offset + cc->req.data.len;
		if (rc != 0 || run->complete) {
			/* Draining after a failure, or after the server took it all. */
			if (cc->st == RPCQ_OK)
				free_import(cc->imp);
			continue;
		}
		if (cc->st == RPCQ_OK) {
			uint64_t was = run->sent;
			rc = take_progress(run, cc->imp);
			free_import(cc->imp);
			if (rc != 0)
				continue;
			run->sent_any = 1;
			if (run->sent > was || run->complete)
				resyncs = 0;
			else if (++resyncs > MAX_RESYNCS)
				rc = cli_fail_status(RPCQ_INTERNAL, "%s: the server takes no bytes at %" PRIu64,
						     run->file.path, run->sent);
			progress_bytes(run);
			if (run->sent != end && !run->complete) {
				/* Not where this chunk ended: the ones after it are
				 * refused or duplicates; continue from the server. */
				drain(q, &head, &inflight);
				next = run->sent;
				last_started = 0;
			}
			continue;
		}
		/* Refused or failed: let the others end, then see. */
		drain(q, &head, &inflight);
		if (cc->err.code != RPCQ_FAILED_PRECONDITION || ++resyncs > MAX_RESYNCS) {
			rc = cli_fail(&cc->err);
			continue;
		}
		/* A gap (the server has fewer bytes than this command thought,
		 * e.g. another client's upload of the same file was cut, or the
		 * chunk before this one failed, or came to the server after
		 * this one and closed the gap since) or an upload another
		 * client completed meanwhile: continue from what the server
		 * has. A chunk refused at the very offset the server has is sent
		 * once more; refused there again, it is not about where to
		 * continue. */
		int was_complete = run->complete;
		Rpcq__Billing__Import *imp = NULL;
		rpcq_error gerr;
		if (get_import(run, &imp, &gerr) != 0) {
			rc = cli_fail(&gerr);
			continue;
		}
		rc = take_progress(run, imp);
		free_import(imp);
		if (rc != 0)
			continue;
		if (run->sent == cc->req.offset && run->complete == was_complete) {
			if (refused_at == cc->req.offset) {
				rc = cli_fail(&cc->err);
				continue;
			}
			refused_at = cc->req.offset;
		}
		progress_bytes(run);
		next = run->sent;
		last_started = 0;
	}
	return rc;
}

/* Whether imp has reached what the wait asks for. */
static int wait_done(const Rpcq__Billing__Import *imp, enum wait_for w)
{
	if (w == WAIT_BILLS)
		return imp->state == STATE_MAILING || imp->state == STATE_DONE;
	return imp->state == STATE_DONE;
}

static void progress_wait(struct run *run, const Rpcq__Billing__Import *imp, enum wait_for w)
{
	char text[200];
	uint64_t done;
	if (w == WAIT_BILLS || imp->state == STATE_BILLING) {
		done = imp->bills;
		snprintf(text, sizeof(text), "bills %" PRIu64 " / %" PRIu64, imp->bills, imp->new_debts);
	} else {
		done = settled(imp);
		snprintf(text, sizeof(text), "e-mails %" PRIu64 " / %" PRIu64 " (%" PRIu64 " sent, %" PRIu64 " failed)",
			 done, imp->new_debts, imp->emails_sent, imp->emails_failed);
	}
	cli_progress_bar(&run->progress, done, imp->new_debts, text, done >= imp->new_debts);
}

/* A stream message of the import's own topic as its Import (freed by the
 * caller with its container *holder), or NULL. */
static const Rpcq__Billing__Import *stream_import(const rpcq_stream_message *m, const char *topic,
						  ProtobufCMessage **holder)
{
	*holder = NULL;
	if (strcmp(m->topic, topic) != 0)
		return NULL;
	rpcq_error err;
	if (rpcq_stream_message_unpack(m, NULL, holder, &err) != RPCQ_OK)
		return NULL;
	if ((*holder)->descriptor != &rpcq__billing__import_progress__descriptor ||
	    ((Rpcq__Billing__ImportProgress *)*holder)->import == NULL) {
		protobuf_c_message_free_unpacked(*holder, NULL);
		*holder = NULL;
		return NULL;
	}
	return ((Rpcq__Billing__ImportProgress *)*holder)->import;
}

/* Waits until the import reaches what w asks for, bounded by the global
 * --timeout (when given). 0, or the exit status. */
static int wait_for_import(struct run *run, enum wait_for w)
{
	char topic[96];
	snprintf(topic, sizeof(topic), "billing.imports.%s", run->id);
	const char *prefixes[] = {topic};
	rpcq_subscription *sub = NULL;
	rpcq_error err;
	rpcq_subscribe_options so = {.tls_ca_file = run->g->tls_ca,
				     .tls_cert_file = run->g->client_cert,
				     .tls_key_file = run->g->client_key};
	/* Before the first GetImport, so no progress falls between the two. */
	if (rpcq_subscription_create(&sub, run->client, prefixes, 1, &so, &err) != RPCQ_OK)
		sub = NULL; /* no stream: poll */
	int64_t deadline = run->g->timeout_ms > 0 ? cli_now_ms() + run->g->timeout_ms : 0;
	Rpcq__Billing__Import *imp = NULL;
	int rc = 0;
	int64_t last_read = 0;
	for (;;) {
		int64_t now = cli_now_ms();
		if (imp == NULL || now - last_read >= (sub ? STREAM_QUIET_MS : POLL_MS)) {
			Rpcq__Billing__Import *fresh = NULL;
			if (get_import(run, &fresh, &err) != 0) {
				rc = cli_fail(&err);
				break;
			}
			free_import(imp);
			imp = fresh;
			last_read = cli_now_ms();
		}
		progress_wait(run, imp, w);
		if (wait_done(imp, w))
			break;
		now = cli_now_ms();
		if (deadline && now >= deadline) {
			cli_progress_clear(&run->progress);
			rc = cli_fail_status(RPCQ_DEADLINE_EXCEEDED,
					     "import %s is %s after %d ms: %" PRIu64 " of %" PRIu64 " bills, %" PRIu64
					     " e-mails settled",
					     run->id, state_name(imp->state), run->g->timeout_ms, imp->bills,
					     imp->new_debts, settled(imp));
			break;
		}
		int64_t wait = (sub ? STREAM_QUIET_MS : POLL_MS) - (now - last_read);
		if (deadline && deadline - now < wait)
			wait = deadline - now;
		if (wait < 1)
			wait = 1;
		if (sub == NULL) {
			sleep_ms((int)wait);
			continue;
		}
		rpcq_stream_message *m = NULL;
		if (rpcq_subscription_next(sub, (int)wait, &m, &err) != RPCQ_OK) {
			/* Lost messages, or a Replay that failed: GetImport says
			 * where the import is. */
			last_read = 0;
			sleep_ms(POLL_MS);
			continue;
		}
		if (m == NULL)
			continue;
		ProtobufCMessage *holder = NULL;
		const Rpcq__Billing__Import *p = stream_import(m, topic, &holder);
		if (p != NULL) {
			/* The counts as of that message: enough to draw and to
			 * know when to stop (the final reply is a GetImport's).
			 * A message older than the last GetImport is skipped. */
			if (p->updated_at_ms >= imp->updated_at_ms && p->state >= imp->state) {
				imp->state = p->state;
				imp->bills = p->bills;
				imp->emails_sent = p->emails_sent;
				imp->emails_failed = p->emails_failed;
				imp->emails_pending = p->emails_pending;
				imp->new_debts = p->new_debts;
				imp->updated_at_ms = p->updated_at_ms;
			}
			protobuf_c_message_free_unpacked(holder, NULL);
		}
		rpcq_stream_message_free(m);
	}
	cli_progress_clear(&run->progress);
	free_import(imp);
	rpcq_subscription_destroy(sub);
	return rc;
}

/* s on one line (its line breaks as spaces), then a newline. */
static void put_line(FILE *m, const char *s)
{
	for (s = s ? s : ""; *s; s++)
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, m);
	fputc('\n', m);
}

/* Closes the memory stream m and writes what it holds to stderr at once
 * (stderr is unbuffered). 0, or the exit status. */
static int write_stderr(FILE *m, char **buf, size_t *len)
{
	if (fclose(m) != 0) {
		free(*buf);
		return cli_out_of_memory();
	}
	fwrite(*buf, 1, *len, stderr);
	free(*buf);
	return 0;
}

/* Rejections as FILE:LINE: reason lines on stderr. 0, or the exit
 * status. */
static int print_rejections_page(Rpcq__Billing__Rejection *const *r, size_t n, const char *name)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (m == NULL)
		return cli_out_of_memory();
	for (size_t i = 0; i < n; i++) {
		fprintf(m, "%s:%" PRIu64 ": ", name, r[i]->line);
		put_line(m, r[i]->reason);
	}
	return write_stderr(m, &buf, &len);
}

/* A listing of an import's rejections or failed e-mails, on stderr. */
struct listing {
	rpcq_client *client;
	const rpcq_call_options *o;
	char *import_id;
	const char *name;
};

static int rejections_page(void *arg, const char *token, char **next)
{
	const struct listing *l = arg;
	Rpcq__Billing__ListRejectionsRequest req = RPCQ__BILLING__LIST_REJECTIONS_REQUEST__INIT;
	req.import_id = l->import_id;
	req.page_size = PAGE_SIZE;
	req.page_token = (char *)token;
	Rpcq__Billing__ListRejectionsResponse *r = NULL;
	rpcq_error err;
	if (rpcq_billing_list_rejections(l->client, &req, &r, l->o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = print_rejections_page(r->rejections, r->n_rejections, l->name);
	if (rc == 0)
		rc = cli_next_page(next, r->next_page_token);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* Every rejection of the import on stderr: the first ones come with it, all
 * of them through ListRejections when there are more. */
static int print_rejections(rpcq_client *client, const rpcq_call_options *o, const Rpcq__Billing__Import *imp,
			    const char *name)
{
	if (imp->rejected <= imp->n_first_rejections)
		return print_rejections_page(imp->first_rejections, imp->n_first_rejections, name);
	struct listing l = {client, o, imp->import_id, name};
	return cli_each_page(rejections_page, &l);
}

/* Failed e-mails as FILE:LINE: e-mail of debt D to ADDRESS failed after N
 * attempt(s): ERROR lines on stderr. 0, or the exit status. */
static int print_failed_page(Rpcq__Billing__FailedEmail *const *f, size_t n, const char *name)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (m == NULL)
		return cli_out_of_memory();
	for (size_t i = 0; i < n; i++) {
		fprintf(m, "%s:%" PRIu64 ": e-mail of debt %s to %s failed after %" PRIu32 " attempt%s: ", name,
			f[i]->line, f[i]->debt_id, f[i]->email, f[i]->attempts, f[i]->attempts == 1 ? "" : "s");
		put_line(m, f[i]->last_error);
	}
	return write_stderr(m, &buf, &len);
}

static int failed_page(void *arg, const char *token, char **next)
{
	const struct listing *l = arg;
	Rpcq__Billing__ListFailedEmailsRequest req = RPCQ__BILLING__LIST_FAILED_EMAILS_REQUEST__INIT;
	req.import_id = l->import_id;
	req.page_size = PAGE_SIZE;
	req.page_token = (char *)token;
	Rpcq__Billing__ListFailedEmailsResponse *r = NULL;
	rpcq_error err;
	if (rpcq_billing_list_failed_emails(l->client, &req, &r, l->o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = print_failed_page(r->failed_emails, r->n_failed_emails, l->name);
	if (rc == 0)
		rc = cli_next_page(next, r->next_page_token);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* Every failed e-mail of the import's bills on stderr: the first ones come
 * with it, all of them through ListFailedEmails when there are more. */
static int print_failed_emails(rpcq_client *client, const rpcq_call_options *o, const Rpcq__Billing__Import *imp,
			       const char *name)
{
	if (imp->emails_failed <= imp->n_first_failed_emails)
		return print_failed_page(imp->first_failed_emails, imp->n_first_failed_emails, name);
	struct listing l = {client, o, imp->import_id, name};
	return cli_each_page(failed_page, &l);
}

/* The summary of an import (stderr). */
static void print_summary(const Rpcq__Billing__Import *imp, const char *verb)
{
	fprintf(stderr,
		"import %s of %s %s (%s): %" PRIu64 " rows, %" PRIu64 " accepted (%" PRIu64 " new debts, %" PRIu64
		" repeated), %" PRIu64 " rejected; %" PRIu64 " bills; e-mails %" PRIu64 " sent, %" PRIu64
		" failed, %" PRIu64 " pending\n",
		imp->import_id, imp->name, verb, state_name(imp->state), imp->rows, imp->accepted, imp->new_debts,
		imp->repeated, imp->rejected, imp->bills, imp->emails_sent, imp->emails_failed, imp->emails_pending);
}

static int cmd_import(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		import_usage(stdout);
		return 0;
	}
	const char *path = NULL;
	enum wait_for w = WAIT_NONE;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--wait", &missing)) != NULL) {
			if (strcmp(v, "bills") == 0)
				w = WAIT_BILLS;
			else if (strcmp(v, "emails") == 0 || strcmp(v, "e-mails") == 0)
				w = WAIT_EMAILS;
			else
				return cli_usage_error("--wait takes bills or emails, not \"%s\"", v);
		} else if (missing) {
			return cli_usage_error("%s needs a value (bills or emails)", argv[i]);
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (strcmp(argv[i], "--") == 0 && i + 1 < argc && path == NULL) {
			path = argv[++i];
		} else if (path == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
			path = argv[i];
		} else {
			return cli_usage_error("billing import takes FILE [--wait bills|emails] [--json], not \"%s\"",
					       argv[i]);
		}
	}
	if (path == NULL)
		return cli_usage_error("billing import needs a FILE");

	struct run run = {0};
	run.g = g;
	Rpcq__Billing__Import *imp = NULL;
	cli_file_init(&run.file, path);
	cli_progress_start(&run.progress);
	int rc = cli_file_open(&run.file);
	if (rc != 0)
		goto out;
	cli_keep_buffers_on_heap();
	if ((run.client = cli_client(g)) == NULL) {
		rc = 1;
		goto out;
	}
	run.o = cli_call_options(g);
	run.chunk = cli_chunk_bytes(g, CHUNK);
	uuid_t key;
	uuid_generate_sha1(key, import_key_namespace, run.file.data ? run.file.data : "", run.file.size);
	uuid_unparse_lower(key, run.key);

	Rpcq__Billing__StartImportRequest sreq = RPCQ__BILLING__START_IMPORT_REQUEST__INIT;
	sreq.key = run.key;
	sreq.name = (char *)run.file.name;
	rpcq_error err;
	if (rpcq_billing_start_import(run.client, &sreq, &imp, &run.o, &err) != RPCQ_OK) {
		rc = cli_fail(&err);
		goto out;
	}
	if ((run.id = strdup(imp->import_id)) == NULL) {
		rc = cli_out_of_memory();
		goto out;
	}
	if ((rc = take_progress(&run, imp)) != 0)
		goto out;
	int was_complete = run.complete;
	if (!run.complete && run.sent > 0)
		fprintf(stderr, "rpcq: resuming import %s of %s at byte %" PRIu64 " of %zu\n", run.id, run.file.name,
			run.sent, run.file.size);
	free_import(imp);
	imp = NULL;
	if (!run.complete) {
		progress_bytes(&run);
		rc = send_file(&run);
		cli_progress_clear(&run.progress);
		if (rc != 0)
			goto out;
	}
	if (w != WAIT_NONE && (rc = wait_for_import(&run, w)) != 0) {
		if (get_import(&run, &imp, &err) == 0)
			print_summary(imp, "so far");
		goto out;
	}
	/* The final state, with the first rejections. */
	if (get_import(&run, &imp, &err) != 0) {
		rc = cli_fail(&err);
		goto out;
	}
	fflush(stdout);
	rc = print_rejections(run.client, &run.o, imp, run.file.name);
	if (rc == 0)
		rc = print_failed_emails(run.client, &run.o, imp, run.file.name);
	print_summary(imp, was_complete ? "was already received" : "imported");
	if (rc == 0 && as_json)
		rc = cli_print_json(&imp->base, 1);
out:
	cli_progress_clear(&run.progress);
	free_import(imp);
	free(run.id);
	cli_file_close(&run.file);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

/* ---- status ---- */

static int cmd_status(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		status_usage(stdout);
		return 0;
	}
	const char *id;
	int as_json;
	int rc = cli_arg_and_json(argc, argv, "billing status", "IMPORT_ID", &id, &as_json);
	if (rc != 0)
		return rc;
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Billing__GetImportRequest req = RPCQ__BILLING__GET_IMPORT_REQUEST__INIT;
	req.import_id = (char *)id;
	Rpcq__Billing__Import *imp = NULL;
	rpcq_error err;
	if (rpcq_billing_get_import(client, &req, &imp, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	if (as_json) {
		rc = cli_print_json(&imp->base, 1);
	} else {
		char created[32], updated[32], bytes[32];
		cli_format_ms(imp->created_at_ms, created, sizeof(created));
		cli_format_ms(imp->updated_at_ms, updated, sizeof(updated));
		cli_human_bytes(imp->received_bytes, bytes, sizeof(bytes));
		printf("import %s: %s\n", imp->import_id, state_name(imp->state));
		printf("file:     %s\n", imp->name);
		if (imp->key && imp->key[0])
			printf("key:      %s\n", imp->key);
		printf("received: %" PRIu64 " bytes (%s)%s\n", imp->received_bytes, bytes,
		       imp->complete ? ", complete" : ", receiving");
		printf("rows:     %" PRIu64 " read, %" PRIu64 " accepted (%" PRIu64 " new debts, %" PRIu64
		       " repeated), %" PRIu64 " rejected\n",
		       imp->rows, imp->accepted, imp->new_debts, imp->repeated, imp->rejected);
		printf("bills:    %" PRIu64 " of %" PRIu64 "\n", imp->bills, imp->new_debts);
		printf("e-mails:  %" PRIu64 " sent, %" PRIu64 " failed, %" PRIu64 " pending\n", imp->emails_sent,
		       imp->emails_failed, imp->emails_pending);
		printf("created:  %s, updated %s\n", created, updated);
		if (imp->n_first_rejections > 0) {
			printf("rejections%s:\n", imp->rejected > imp->n_first_rejections ? " (the first)" : "");
			for (size_t i = 0; i < imp->n_first_rejections; i++)
				printf("  %s:%" PRIu64 ": %s\n", imp->name, imp->first_rejections[i]->line,
				       imp->first_rejections[i]->reason);
		}
		if (imp->n_first_failed_emails > 0) {
			printf("failed e-mails%s:\n",
			       imp->emails_failed > imp->n_first_failed_emails ? " (the first)" : "");
			for (size_t i = 0; i < imp->n_first_failed_emails; i++) {
				const Rpcq__Billing__FailedEmail *f = imp->first_failed_emails[i];
				printf("  %s:%" PRIu64 ": debt %s to %s, %" PRIu32 " attempt%s: %s\n", imp->name,
				       f->line, f->debt_id, f->email, f->attempts, f->attempts == 1 ? "" : "s",
				       f->last_error);
			}
		}
	}
	free_import(imp);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

/* ---- bill ---- */

/* Writes the PDF to path ("-": stdout) whole, or fails naming path. */
static int write_pdf(const char *path, const ProtobufCBinaryData *pdf)
{
	int to_stdout = strcmp(path, "-") == 0;
	FILE *f = to_stdout ? stdout : fopen(path, "wb");
	if (f == NULL)
		return cli_fail_status(RPCQ_INVALID_ARGUMENT, "cannot write %s: %s", path, strerror(errno));
	int ok = fwrite(pdf->data, 1, pdf->len, f) == pdf->len;
	ok = (to_stdout ? fflush(f) : fclose(f)) == 0 && ok;
	if (!ok)
		return cli_fail_status(RPCQ_INTERNAL, "cannot write %s: %s", to_stdout ? "stdout" : path,
				       strerror(errno));
	return 0;
}

static int cmd_bill(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		bill_usage(stdout);
		return 0;
	}
	const char *debt = NULL, *pdf = NULL;
	int as_json = 0, rc = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--pdf", &missing)) != NULL)
			pdf = v;
		else if (missing)
			return cli_usage_error("%s needs a value", argv[i]);
		else if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (debt == NULL && argv[i][0] != '-')
			debt = argv[i];
		else
			return cli_usage_error("billing bill takes DEBT_ID [--json] [--pdf FILE], not \"%s\"", argv[i]);
	}
	if (debt == NULL)
		return cli_usage_error("billing bill takes DEBT_ID [--json] [--pdf FILE]");
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Billing__GetBillRequest req = RPCQ__BILLING__GET_BILL_REQUEST__INIT;
	req.debt_id = (char *)debt;
	req.pdf = pdf != NULL;
	Rpcq__Billing__Bill *b = NULL;
	rpcq_error err;
	if (rpcq_billing_get_bill(client, &req, &b, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	if (pdf != NULL && (rc = write_pdf(pdf, &b->slip_pdf)) != 0) {
		protobuf_c_message_free_unpacked(&b->base, NULL);
		return rc;
	}
	int pdf_only = pdf != NULL && strcmp(pdf, "-") == 0; /* stdout holds the PDF alone */
	if (as_json && !pdf_only) {
		rc = cli_print_json(&b->base, 1);
	} else if (!pdf_only) {
		size_t n = strlen(b->slip);
		fputs(b->slip, stdout);
		if (n > 0 && b->slip[n - 1] != '\n')
			fputc('\n', stdout);
		char mail[700];
		switch (b->notification) {
		case RPCQ__BILLING__NOTIFICATION_STATE__PENDING:
			if (b->attempts > 0)
				snprintf(mail, sizeof(mail), "pending (%u attempts, last: %s)", b->attempts,
					 b->last_error ? b->last_error : "");
			else
				snprintf(mail, sizeof(mail), "pending");
			break;
		case RPCQ__BILLING__NOTIFICATION_STATE__SENT:
			snprintf(mail, sizeof(mail), "sent");
			break;
		case RPCQ__BILLING__NOTIFICATION_STATE__FAILED:
			snprintf(mail, sizeof(mail), "failed (%u attempts, last: %s)", b->attempts,
				 b->last_error ? b->last_error : "");
			break;
		case RPCQ__BILLING__NOTIFICATION_STATE__CANCELLED:
			snprintf(mail, sizeof(mail), "cancelled");
			break;
		default:
			snprintf(mail, sizeof(mail), "unknown");
			break;
		}
		printf("payment code %s, e-mail %s, %s\n", b->payment_code, mail, b->paid ? "paid" : "not paid");
	}
	protobuf_c_message_free_unpacked(&b->base, NULL);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

/* ---- retry ---- */

static int cmd_retry(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		retry_usage(stdout);
		return 0;
	}
	const char *import = NULL, *debt = NULL, *email = NULL;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--debt", &missing)) != NULL)
			debt = v;
		else if (missing)
			return cli_usage_error("%s needs a DEBT_ID", argv[i]);
		else if ((v = cli_option(argc, argv, &i, "--email", &missing)) != NULL)
			email = v;
		else if (missing)
			return cli_usage_error("%s needs an ADDRESS", argv[i]);
		else if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (import == NULL && argv[i][0] != '-')
			import = argv[i];
		else
			return cli_usage_error("billing retry takes IMPORT_ID or --debt DEBT_ID [--email ADDRESS] "
					       "[--json], not \"%s\"",
					       argv[i]);
	}
	if ((import == NULL) == (debt == NULL))
		return cli_usage_error("billing retry needs IMPORT_ID or --debt DEBT_ID (one of them)");
	if (email != NULL && debt == NULL)
		return cli_usage_error(
			"billing retry --email corrects one debt's address: give --debt DEBT_ID with it");
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Billing__RetryFailedEmailsRequest req = RPCQ__BILLING__RETRY_FAILED_EMAILS_REQUEST__INIT;
	req.import_id = (char *)(import ? import : "");
	req.debt_id = (char *)(debt ? debt : "");
	req.email = (char *)(email ? email : "");
	Rpcq__Billing__RetryFailedEmailsResponse *r = NULL;
	rpcq_error err;
	if (rpcq_billing_retry_failed_emails(client, &req, &r, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = 0;
	if (as_json)
		rc = cli_print_json(&r->base, 1);
	else if (import != NULL)
		printf("import %s: %" PRIu64 " failed e-mail%s back in the outbox\n", import, r->retried,
		       r->retried == 1 ? "" : "s");
	else if (email != NULL)
		printf("debt %s: %s%s\n", debt,
		       r->retried ? "its failed e-mail is back in the outbox, to " : "no failed e-mail to retry",
		       r->retried ? email : "; its address is unchanged");
	else
		printf("debt %s: %s\n", debt,
		       r->retried ? "its failed e-mail is back in the outbox" : "no failed e-mail to retry");
	protobuf_c_message_free_unpacked(&r->base, NULL);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

/* ---- pay ---- */

static int cmd_pay(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		pay_usage(stdout);
		return 0;
	}
	const char *debt = NULL, *amount = NULL, *paid_at = "", *payer = "";
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--amount", &missing)) != NULL)
			amount = v;
		else if (!missing && (v = cli_option(argc, argv, &i, "--paid-at", &missing)) != NULL)
			paid_at = v;
		else if (!missing && (v = cli_option(argc, argv, &i, "--payer", &missing)) != NULL)
			payer = v;
		else if (missing)
			return cli_usage_error("%s needs a value", argv[i]);
		else if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else if (debt == NULL && argv[i][0] != '-')
			debt = argv[i];
		else
			return cli_usage_error(
				"billing pay takes DEBT_ID --amount A [--paid-at T] [--payer P] [--json], not \"%s\"",
				argv[i]);
	}
	if (debt == NULL || amount == NULL)
		return cli_usage_error("billing pay needs DEBT_ID and --amount A");
	/* Without --paid-at the payment is now, as this command sees it, not as
	 * the server does when the call arrives: RecordPayment is idempotent and
	 * may go twice (the client library resends it when a reply is lost), and
	 * only the same paid_at makes the second one a replay of the first
	 * rather than another payment (ALREADY_EXISTS). */
	char now[32];
	if (paid_at[0] == '\0') {
		struct timespec ts;
		struct tm tm;
		char secs[24];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(now, sizeof(now), "%s.%03dZ", secs, (int)(ts.tv_nsec / 1000000));
		paid_at = now;
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Billing__RecordPaymentRequest req = RPCQ__BILLING__RECORD_PAYMENT_REQUEST__INIT;
	req.debt_id = (char *)debt;
	req.amount = (char *)amount;
	req.paid_at = (char *)paid_at;
	req.payer = (char *)payer;
	Rpcq__Billing__Payment *p = NULL;
	rpcq_error err;
	if (rpcq_billing_record_payment(client, &req, &p, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = 0;
	if (as_json) {
		rc = cli_print_json(&p->base, 1);
	} else {
		printf("paid %s %s at %s\n", p->debt_id, p->amount, p->paid_at);
		if (p->cancelled_notification)
			printf("e-mail cancelled\n");
		if (p->replayed)
			fprintf(stderr, "rpcq: this payment was recorded before; nothing changed\n");
	}
	protobuf_c_message_free_unpacked(&p->base, NULL);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail_status(RPCQ_INTERNAL, "cannot write stdout: %s", strerror(errno));
	return rc;
}

int cli_billing(int argc, char **argv, cli_globals *g)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv, cli_globals *g);
	} cmds[] = {
		{"import", cmd_import}, {"status", cmd_status}, {"bill", cmd_bill},
		{"pay", cmd_pay},	{"retry", cmd_retry},
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].run(argc - 1, argv + 1, g);
	}
	return cli_usage_error("unknown billing command \"%s\"", argv[1]);
}
