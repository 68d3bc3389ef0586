/*
 * `rpcq vesting`: vesting schedules from the command line.
 *
 *   rpcq vesting FILE TARGET_DATE [PRECISION]      schedule of a CSV file
 *   rpcq vesting append LEDGER FILE [--batch-id ID]
 *   rpcq vesting schedule LEDGER TARGET_DATE [PRECISION] [--employee ID]
 *   rpcq vesting ledgers
 *
 * Schedules print exactly as the spec's stand-alone program does: one line
 * per award, "EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,QUANTITY", fields quoted as
 * RFC 4180 needs, lines separated by '\n' with none after the last. A file is
 * read and sent in chunks of CHUNK bytes (fewer when the server's message
 * limit is smaller: cli_chunk_bytes), cut anywhere (the server carries a
 * partial record over to the next chunk), so memory stays bounded by the
 * chunk whatever the file's size; a file that fits one chunk goes inline in
 * one Compute call. Append's default batch id is a 128-bit FNV-1a hash of
 * the file, so running the same append twice applies it once.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define CHUNK (512 * 1024)

static void usage(FILE *out)
{
	fprintf(out, "usage: rpcq vesting FILE TARGET_DATE [PRECISION]\n"
		     "       rpcq vesting append LEDGER FILE [--batch-id ID]\n"
		     "       rpcq vesting schedule LEDGER TARGET_DATE [PRECISION] [--employee ID]\n"
		     "       rpcq vesting ledgers\n\n"
		     "FILE is CSV without a header: ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY\n"
		     "(ACTION VEST or CANCEL, DATE YYYY-MM-DD, QUANTITY a non-negative decimal); - reads stdin.\n"
		     "Prints, for every (employee, award), the shares vested net of cancellations on or before\n"
		     "TARGET_DATE (YYYY-MM-DD), with quantities truncated to PRECISION decimals (0..6, default 0):\n"
		     "  EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,QUANTITY\n"
		     "ordered by employee id, then award id, with no line break after the last line.\n\n"
		     "append   adds FILE's events to LEDGER (created on first use). The batch id defaults to a\n"
		     "         hash of the file, so appending the same file again changes nothing.\n"
		     "schedule prints a ledger's schedule (computed by the database), optionally of one employee.\n"
		     "ledgers  lists the ledgers: name, events, batches, last update (UTC).\n\n"
		     "Bad input fails the whole command with one line on stderr, e.g.\n"
		     "  rpcq: INVALID_ARGUMENT: line 7: impossible date \"2021-02-29\"\n");
}

/* Parses PRECISION; -1 when it is not a number 0..6. */
static int parse_precision(const char *s)
{
	if (s == NULL)
		return 0;
	if (s[0] < '0' || s[0] > '6' || s[1] != '\0')
		return -1;
	return s[0] - '0';
}

static int bad_precision(const char *s)
{
	rpcq_error err;
	rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "precision \"%s\" is not an integer 0..6", s);
	return cli_fail(&err);
}

static FILE *open_input(const char *path)
{
	if (strcmp(path, "-") == 0)
		return stdin;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		rpcq_error err;
		rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "cannot open %s: %s", path, strerror(errno));
		cli_fail(&err);
	}
	return f;
}

/* Fills buf with up to chunk bytes; returns the count, or -1 on a read error. */
static long read_chunk(FILE *f, const char *path, char *buf, size_t chunk)
{
	size_t n = fread(buf, 1, chunk, f);
	if (ferror(f)) {
		rpcq_error err;
		rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "cannot read %s: %s", path, strerror(errno));
		cli_fail(&err);
		return -1;
	}
	return (long)n;
}

/* A blank the input rules trim from an unquoted field. */
static int is_edge_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Appends s to *w, quoted as RFC 4180 needs, and also when it begins or
 * ends with a blank (a name given quoted as " Ann "): read back by the
 * spec's rules, which trim unquoted fields, it is then the same name. *w
 * has room for 2 * strlen + 2. */
static void format_field(char **w, const char *s)
{
	size_t n = strlen(s);
	char *p = *w;
	int edge_blank = n > 0 && (is_edge_blank(s[0]) || is_edge_blank(s[n - 1]));
	if (!edge_blank && strpbrk(s, ",\"\r\n") == NULL) {
		memcpy(p, s, n);
		*w = p + n;
		return;
	}
	*p++ = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			*p++ = '"';
		*p++ = s[i];
	}
	*p++ = '"';
	*w = p;
}

/* Prints a page of entries, formatted into one buffer and written with one
 * fwrite: pages hold tens of thousands of lines, and a stdio call per field
 * costs more than the formatting. *first tracks whether a line was printed
 * yet (the output has no final newline, as the spec's examples). Returns 0,
 * or -1 when out of memory. */
static int print_page(const Rpcq__Vesting__ScheduleResponse *r, int *first)
{
	size_t cap = 1;
	for (size_t i = 0; i < r->n_entries; i++) {
		const Rpcq__Vesting__ScheduleEntry *e = r->entries[i];
		cap += 2 * (strlen(e->employee_id) + strlen(e->employee_name) + strlen(e->award_id)) + 6 +
		       strlen(e->quantity) + 4;
	}
	char *buf = malloc(cap);
	if (buf == NULL)
		return -1;
	char *w = buf;
	for (size_t i = 0; i < r->n_entries; i++) {
		const Rpcq__Vesting__ScheduleEntry *e = r->entries[i];
		if (!*first)
			*w++ = '\n';
		*first = 0;
		format_field(&w, e->employee_id);
		*w++ = ',';
		format_field(&w, e->employee_name);
		*w++ = ',';
		format_field(&w, e->award_id);
		*w++ = ',';
		size_t q = strlen(e->quantity);
		memcpy(w, e->quantity, q);
		w += q;
	}
	fwrite(buf, 1, (size_t)(w - buf), stdout);
	free(buf);
	return 0;
}

/* One page of a schedule, from Compute or from a ledger's Schedule. */
typedef rpcq_status (*fetch_page_fn)(void *arg, const char *token, Rpcq__Vesting__ScheduleResponse **resp,
				     rpcq_error *err);

/* Fetches and prints every page; returns the exit status. */
static int print_all_pages(fetch_page_fn fetch, void *arg)
{
	int first = 1, rc = 0;
	char *token = NULL;
	rpcq_error err;
	for (;;) {
		Rpcq__Vesting__ScheduleResponse *resp = NULL;
		if (fetch(arg, token ? token : "", &resp, &err) != RPCQ_OK) {
			rc = cli_fail(&err);
			break;
		}
		int printed = print_page(resp, &first);
		free(token);
		token = resp->next_page_token[0] ? strdup(resp->next_page_token) : NULL;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		if (printed != 0) {
			rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED, "out of memory printing the schedule");
			rc = cli_fail(&err);
			break;
		}
		if (token == NULL)
			break;
	}
	free(token);
	fflush(stdout);
	return rc;
}

struct compute_fetch {
	rpcq_client *client;
	const rpcq_call_options *opts;
	Rpcq__Vesting__ComputeRequest *req;
};

static rpcq_status fetch_compute(void *arg, const char *token, Rpcq__Vesting__ScheduleResponse **resp, rpcq_error *err)
{
	struct compute_fetch *f = arg;
	f->req->page_token = (char *)token;
	return rpcq_vesting_compute(f->client, f->req, resp, f->opts, err);
}

struct schedule_fetch {
	rpcq_client *client;
	const rpcq_call_options *opts;
	Rpcq__Vesting__ScheduleRequest *req;
};

static rpcq_status fetch_schedule(void *arg, const char *token, Rpcq__Vesting__ScheduleResponse **resp, rpcq_error *err)
{
	struct schedule_fetch *f = arg;
	f->req->page_token = (char *)token;
	return rpcq_vesting_schedule(f->client, f->req, resp, f->opts, err);
}

/* Computes every page of a Compute request (inline or session) and prints. */
static int compute_pages(rpcq_client *client, const rpcq_call_options *o, Rpcq__Vesting__ComputeRequest *req)
{
	/* Pages as large as the server allows (it also ends a page before the
	 * message limit): fewer round trips. */
	req->page_size = UINT32_MAX;
	struct compute_fetch f = {client, o, req};
	return print_all_pages(fetch_compute, &f);
}

/* Sends a new session's first chunk. A session lives in the memory of the
 * rpcqd that opened it, so with several servers all of its calls go to one:
 * a client of that server alone, the first that takes the chunk (the next
 * is tried when one cannot be reached). *session_client is that client, or
 * the shared one with a single server. */
static rpcq_status upload_first(const cli_globals *g, rpcq_client *client, const rpcq_call_options *o,
				Rpcq__Vesting__UploadRequest *up, Rpcq__Vesting__UploadResponse **ur,
				rpcq_client **session_client, rpcq_error *err)
{
	int n = cli_server_count(client);
	if (n == 1) {
		*session_client = client;
		return rpcq_vesting_upload(client, up, ur, o, err);
	}
	rpcq_status st = RPCQ_UNAVAILABLE;
	for (int i = 0; i < n; i++) {
		rpcq_client *one = NULL;
		if ((st = cli_client_of_server(g, client, i, &one, err)) != RPCQ_OK)
			return st;
		st = rpcq_vesting_upload(one, up, ur, o, err);
		if (st == RPCQ_OK) {
			*session_client = one;
			return st;
		}
		rpcq_client_destroy(one);
		if (st != RPCQ_UNAVAILABLE && st != RPCQ_DEADLINE_EXCEEDED)
			break;
	}
	return st;
}

static int cmd_file(int argc, char **argv, cli_globals *g)
{
	if (argc < 3 || argc > 4)
		return cli_usage_error("vesting takes FILE TARGET_DATE [PRECISION]");
	const char *path = argv[1];
	int precision = parse_precision(argc > 3 ? argv[3] : NULL);
	if (precision < 0)
		return bad_precision(argv[3]);
	cli_keep_buffers_on_heap();
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	rpcq_error err;
	int rc = 1;
	size_t chunk_bytes = cli_chunk_bytes(g, CHUNK);
	char *buf = malloc(chunk_bytes);
	char *next = malloc(chunk_bytes);
	char *session = NULL;
	rpcq_client *session_client = NULL; /* where the session lives */
	FILE *f = NULL;
	if (buf == NULL || next == NULL) {
		rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		rc = cli_fail(&err);
		goto out;
	}
	if ((f = open_input(path)) == NULL)
		goto out;
	long n = read_chunk(f, path, buf, chunk_bytes);
	if (n < 0)
		goto out;
	Rpcq__Vesting__Events events = RPCQ__VESTING__EVENTS__INIT;
	Rpcq__Vesting__ComputeRequest req = RPCQ__VESTING__COMPUTE_REQUEST__INIT;
	req.target_date = argv[2];
	req.precision = (uint32_t)precision;
	long more = (size_t)n == chunk_bytes ? read_chunk(f, path, next, chunk_bytes) : 0;
	if (more < 0)
		goto out;
	if (more == 0) {
		/* The whole file fits one message: one call. */
		events.csv.data = (uint8_t *)buf;
		events.csv.len = (size_t)n;
		req.events = &events;
		rc = compute_pages(client, &o, &req);
		goto out;
	}
	/* Upload in chunks, then compute the session page by page, all on
	 * the one server that opened it. */
	Rpcq__Vesting__UploadRequest up = RPCQ__VESTING__UPLOAD_REQUEST__INIT;
	up.events = &events;
	for (uint32_t chunk = 0; n > 0; chunk++) {
		Rpcq__Vesting__UploadResponse *ur = NULL;
		up.session_id = session ? session : "";
		up.chunk = chunk;
		events.csv.data = (uint8_t *)buf;
		events.csv.len = (size_t)n;
		rpcq_status st = chunk == 0 ? upload_first(g, client, &o, &up, &ur, &session_client, &err)
					    : rpcq_vesting_upload(session_client, &up, &ur, &o, &err);
		if (st != RPCQ_OK) {
			rc = cli_fail(&err);
			goto out;
		}
		if (session == NULL)
			session = strdup(ur->session_id);
		protobuf_c_message_free_unpacked(&ur->base, NULL);
		if (session == NULL) {
			rpcq_error_set(&err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
			rc = cli_fail(&err);
			goto out;
		}
		char *t = buf;
		buf = next;
		next = t;
		n = more;
		more = (size_t)n == chunk_bytes ? read_chunk(f, path, next, chunk_bytes) : 0;
		if (more < 0)
			goto out;
	}
	req.session_id = session;
	rc = compute_pages(session_client, &o, &req);
out:
	if (session) {
		Rpcq__Vesting__CloseSessionRequest cr = RPCQ__VESTING__CLOSE_SESSION_REQUEST__INIT;
		Rpcq__Vesting__CloseSessionResponse *cresp = NULL;
		cr.session_id = session;
		if (rpcq_vesting_close_session(session_client, &cr, &cresp, &o, &err) == RPCQ_OK)
			protobuf_c_message_free_unpacked(&cresp->base, NULL);
		free(session);
	}
	if (session_client != NULL && session_client != client)
		rpcq_client_destroy(session_client);
	if (f && f != stdin)
		fclose(f);
	free(buf);
	free(next);
	return rc;
}

/* FNV-1a over 128 bits (prime 2^88 + 0x13b) of the whole file, as hex. */
static int hash_file(const char *path, char out[40])
{
	FILE *f = open_input(path);
	if (f == NULL)
		return -1;
	unsigned __int128 h = ((unsigned __int128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
	const unsigned __int128 prime = ((unsigned __int128)1 << 88) | 0x13b;
	unsigned char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		for (size_t i = 0; i < n; i++) {
			h ^= buf[i];
			h *= prime;
		}
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		rpcq_error err;
		rpcq_error_set(&err, RPCQ_INVALID_ARGUMENT, "cannot read %s", path);
		cli_fail(&err);
		return -1;
	}
	snprintf(out, 40, "f%016llx%016llx", (unsigned long long)(h >> 64), (unsigned long long)h);
	return 0;
}

static int cmd_append(int argc, char **argv, cli_globals *g)
{
	const char *pos[2] = {NULL, NULL};
	const char *batch = NULL;
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--batch-id") == 0 && i + 1 < argc)
			batch = argv[++i];
		else if (strncmp(argv[i], "--batch-id=", 11) == 0)
			batch = argv[i] + 11;
		else if (npos < 2 && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
			pos[npos++] = argv[i];
		else
			return cli_usage_error("vesting append takes LEDGER FILE [--batch-id ID]");
	}
	if (npos != 2)
		return cli_usage_error("vesting append takes LEDGER FILE [--batch-id ID]");
	char hash[40];
	if (batch == NULL) {
		if (strcmp(pos[1], "-") == 0)
			return cli_usage_error("appending from stdin needs --batch-id");
		if (hash_file(pos[1], hash) != 0)
			return 1;
		batch = hash;
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	rpcq_error err;
	int rc = 1;
	size_t chunk_bytes = cli_chunk_bytes(g, CHUNK);
	char *buf = malloc(chunk_bytes), *next = malloc(chunk_bytes);
	FILE *f = NULL;
	if (buf == NULL || next == NULL || (f = open_input(pos[1])) == NULL)
		goto out;
	Rpcq__Vesting__Events events = RPCQ__VESTING__EVENTS__INIT;
	Rpcq__Vesting__AppendEventsRequest req = RPCQ__VESTING__APPEND_EVENTS_REQUEST__INIT;
	req.ledger = (char *)pos[0];
	req.batch_id = (char *)batch;
	req.events = &events;
	long n = read_chunk(f, pos[1], buf, chunk_bytes);
	if (n < 0)
		goto out;
	for (uint32_t part = 0;; part++) {
		long more = (size_t)n == chunk_bytes ? read_chunk(f, pos[1], next, chunk_bytes) : 0;
		if (more < 0)
			goto out;
		Rpcq__Vesting__AppendEventsResponse *r = NULL;
		events.csv.data = (uint8_t *)buf;
		events.csv.len = (size_t)n;
		req.part = part;
		req.last = more == 0;
		if (rpcq_vesting_append_events(client, &req, &r, &o, &err) != RPCQ_OK) {
			rc = cli_fail(&err);
			goto out;
		}
		int done = r->duplicate || req.last;
		if (done) {
			if (r->duplicate)
				printf("batch %s was already applied to ledger %s (%llu events); the ledger has %llu "
				       "events\n",
				       r->batch_id, r->ledger, (unsigned long long)r->events,
				       (unsigned long long)r->ledger_events);
			else
				printf("appended %llu events to ledger %s (batch %s); the ledger has %llu events\n",
				       (unsigned long long)r->events, r->ledger, r->batch_id,
				       (unsigned long long)r->ledger_events);
		}
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (done)
			break;
		char *t = buf;
		buf = next;
		next = t;
		n = more;
	}
	rc = 0;
out:
	if (f && f != stdin)
		fclose(f);
	free(buf);
	free(next);
	return rc;
}

static int cmd_schedule(int argc, char **argv, cli_globals *g)
{
	const char *pos[3] = {NULL, NULL, NULL};
	const char *employee = "";
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--employee") == 0 && i + 1 < argc)
			employee = argv[++i];
		else if (strncmp(argv[i], "--employee=", 11) == 0)
			employee = argv[i] + 11;
		else if (npos < 3 && argv[i][0] != '-')
			pos[npos++] = argv[i];
		else
			return cli_usage_error("vesting schedule takes LEDGER TARGET_DATE [PRECISION] [--employee ID]");
	}
	if (npos < 2)
		return cli_usage_error("vesting schedule takes LEDGER TARGET_DATE [PRECISION] [--employee ID]");
	int precision = parse_precision(pos[2]);
	if (precision < 0)
		return bad_precision(pos[2]);
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vesting__ScheduleRequest req = RPCQ__VESTING__SCHEDULE_REQUEST__INIT;
	req.ledger = (char *)pos[0];
	req.target_date = (char *)pos[1];
	req.precision = (uint32_t)precision;
	req.employee_id = (char *)employee;
	req.page_size = UINT32_MAX;
	struct schedule_fetch f = {client, &o, &req};
	return print_all_pages(fetch_schedule, &f);
}

static int cmd_ledgers(int argc, char **argv, cli_globals *g)
{
	if (argc != 1)
		return cli_usage_error("vesting ledgers takes no arguments");
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Vesting__ListLedgersRequest req = RPCQ__VESTING__LIST_LEDGERS_REQUEST__INIT;
	Rpcq__Vesting__ListLedgersResponse *r = NULL;
	rpcq_error err;
	if (rpcq_vesting_list_ledgers(client, &req, &r, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	for (size_t i = 0; i < r->n_ledgers; i++) {
		const Rpcq__Vesting__LedgerInfo *l = r->ledgers[i];
		time_t t = (time_t)(l->updated_at_ms / 1000);
		struct tm tm;
		char when[32] = "";
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%s\t%llu events\t%llu batches\t%s\n", l->name, (unsigned long long)l->events,
		       (unsigned long long)l->batches, when);
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return 0;
}

int cli_vesting(int argc, char **argv, cli_globals *g)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "append") == 0)
		return cmd_append(argc - 1, argv + 1, g);
	if (strcmp(argv[1], "schedule") == 0)
		return cmd_schedule(argc - 1, argv + 1, g);
	if (strcmp(argv[1], "ledgers") == 0)
		return cmd_ledgers(argc - 1, argv + 1, g);
	return cmd_file(argc, argv, g);
}
