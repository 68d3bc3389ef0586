/*
 * `rpcq events`: the events service (rpcq.events.EventService) from the
 * command line.
 *
 *   rpcq events search [--from ISO] [--to ISO] [--page-size N] [--json]
 *   rpcq events get ID
 *   rpcq events sync [--json]
 *   rpcq events changes [--after SEQ] [--json]
 *
 * Events print as an aligned table (ID, START, END, MIN, MAX, TITLE) or, with
 * --json, as JSON lines: one Event's proto3 JSON per line, every field
 * present, for jq and scripts. Tables are printed page by page as the pages
 * come, so a large store never sits in memory at once; a column only ever
 * widens, so rows of later pages line up with earlier ones unless they hold
 * a wider value. Sync prints the changed events on stdout and its summary
 * (and any skipped events) on stderr, and is never retried by librpcq: one
 * command, one fetch of the provider's feed, whose failure is the answer.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: rpcq events search [--from ISO] [--to ISO] [--page-size N] [--json]\n"
		     "       rpcq events get ID\n"
		     "       rpcq events sync [--json]\n"
		     "       rpcq events changes [--after SEQ] [--json]\n\n"
		     "The events (plans) of the ticketing provider, as rpcqd stores them.\n\n"
		     "search   the stored events starting at or after --from and ending at or before --to\n"
		     "         (ISO 8601 date-times such as 2021-06-30T21:00:00; a zone suffix such as Z or\n"
		     "         +02:00 is accepted and the wall-clock part compared), ordered by start\n"
		     "get      one event by its id, as JSON\n"
		     "sync     fetches the provider's feed now; prints the events that changed, and a summary on\n"
		     "         stderr. Exit status 1 when the provider did not answer or its feed was broken\n"
		     "changes  the change log (topic events.changed) after --after SEQ (default 0), oldest first\n\n"
		     "Tables have the columns ID, START, END, MIN, MAX, TITLE (changes adds SEQ and KIND); MIN and\n"
		     "MAX are the lowest and highest price of the zones with tickets left, - when none has any.\n"
		     "--json prints one JSON object per line instead (every field present). `rpcq events COMMAND\n"
		     "--help` describes one command; `rpcq subscribe events.` follows the changes as they happen.\n");
}

static void search_usage(FILE *out)
{
	fprintf(out, "usage: rpcq events search [--from ISO] [--to ISO] [--page-size N] [--json]\n\n"
		     "Prints the stored events with start >= --from and end <= --to (either optional), ordered\n"
		     "by start then id: an aligned table with the columns ID, START, END, MIN, MAX, TITLE, or\n"
		     "with --json one Event per line as proto3 JSON. Times are the events' local wall-clock\n"
		     "times; a zone suffix on --from/--to (Z, +02:00) is accepted and ignored. Pages of\n"
		     "--page-size events (default: as many as fit in a reply) are fetched until the last.\n");
}

static void get_usage(FILE *out)
{
	fprintf(out, "usage: rpcq events get ID\n\n"
		     "Prints the event with public id ID (a UUID, as search shows it) as indented proto3 JSON.\n"
		     "Exit status 1 with \"rpcq: NOT_FOUND: ...\" when no such event is stored.\n");
}

static void sync_usage(FILE *out)
{
	fprintf(out, "usage: rpcq events sync [--json]\n\n"
		     "Asks the server to fetch the provider's feed now (after any fetch already running) and\n"
		     "prints the events it created or changed, as search does (a table, or JSON lines with\n"
		     "--json). On stderr: one line per event of the feed that was skipped as malformed, then\n"
		     "  N seen: C new, U changed, K unchanged, S skipped (last change SEQ)\n"
		     "Exit status 1 when the fetch failed, with the reason, e.g.\n"
		     "  rpcq: UNAVAILABLE: ... (the provider did not answer 200 in time)\n"
		     "  rpcq: FAILED_PRECONDITION: provider feed is not well-formed XML: ...\n"
		     "in which case nothing was applied.\n");
}

static void changes_usage(FILE *out)
{
	fprintf(out, "usage: rpcq events changes [--after SEQ] [--json]\n\n"
		     "Prints the change log of the events (topic events.changed) after SEQ (default 0: from the\n"
		     "oldest retained change), oldest first, up to the newest change there is when the command\n"
		     "starts: a table with the columns SEQ, KIND, ID, START, END, MIN, MAX, TITLE, or with --json\n"
		     "one Change per line as proto3 JSON ({\"seq\":..,\"change\":{\"kind\":..,\"event\":{..}},..}).\n"
		     "Changes after SEQ that the stream's retention has trimmed are named on stderr.\n");
}

/* ---- output ---- */

#define NCOLS 8

enum { COL_SEQ, COL_KIND, COL_ID, COL_START, COL_END, COL_MIN, COL_MAX, COL_TITLE };

static const char *const col_names[NCOLS] = {"SEQ", "KIND", "ID", "START", "END", "MIN", "MAX", "TITLE"};

/* A table printed page by page: widths grow, never shrink. */
struct table {
	int with_change; /* SEQ and KIND columns */
	int header_done;
	size_t width[NCOLS];
};

struct row {
	char seq[24];
	const char *kind;
	const Rpcq__Events__Event *e;
};

static const char *or_dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

static const char *cell(const struct row *r, int col)
{
	switch (col) {
	case COL_SEQ:
		return r->seq;
	case COL_KIND:
		return r->kind;
	case COL_ID:
		return or_dash(r->e->id);
	case COL_START:
		return or_dash(r->e->starts_at);
	case COL_END:
		return or_dash(r->e->ends_at);
	case COL_MIN:
		return or_dash(r->e->min_price);
	case COL_MAX:
		return or_dash(r->e->max_price);
	default:
		return or_dash(r->e->title);
	}
}

static int first_col(const struct table *t)
{
	return t->with_change ? COL_SEQ : COL_ID;
}

/* The title with control characters (tabs, newlines) shown as spaces, so a
 * row stays one line. */
static void put_title(const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, stdout);
}

static void put_line(const struct table *t, const char *const *cells)
{
	for (int c = first_col(t); c < NCOLS; c++) {
		if (c == COL_TITLE) {
			put_title(cells[c]);
			break;
		}
		/* Right-aligned numbers, left-aligned text. */
		int right = c == COL_SEQ || c == COL_MIN || c == COL_MAX;
		fprintf(stdout, right ? "%*s  " : "%-*s  ", (int)t->width[c], cells[c]);
	}
	fputc('\n', stdout);
}

/* Prints one page of rows (widening columns for it first). */
static void table_page(struct table *t, const struct row *rows, size_t n)
{
	if (!t->header_done) {
		for (int c = 0; c < NCOLS; c++)
			t->width[c] = strlen(col_names[c]);
	}
	for (size_t i = 0; i < n; i++) {
		for (int c = first_col(t); c < COL_TITLE; c++) {
			size_t w = strlen(cell(&rows[i], c));
			if (w > t->width[c])
				t->width[c] = w;
		}
	}
	if (!t->header_done) {
		put_line(t, col_names);
		t->header_done = 1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *cells[NCOLS];
		for (int c = 0; c < NCOLS; c++)
			cells[c] = c >= first_col(t) ? cell(&rows[i], c) : "";
		put_line(t, cells);
	}
}

/* One message as a JSON line on stdout; -1 when out of memory. */
static int json_line(const ProtobufCMessage *m)
{
	char *json = rpcq_message_to_json(m, RPCQ_JSON_EMIT_DEFAULTS);
	if (json == NULL)
		return -1;
	fputs(json, stdout);
	fputc('\n', stdout);
	rpcq_free(json);
	return 0;
}

/* Events as table rows or JSON lines; returns 0, or the exit status. */
static int print_events(struct table *t, int as_json, Rpcq__Events__Event *const *events, size_t n)
{
	if (as_json) {
		for (size_t i = 0; i < n; i++) {
			if (json_line(&events[i]->base) != 0)
				return cli_out_of_memory();
		}
		return 0;
	}
	struct row *rows = calloc(n ? n : 1, sizeof(*rows));
	if (rows == NULL)
		return cli_out_of_memory();
	for (size_t i = 0; i < n; i++)
		rows[i].e = events[i];
	table_page(t, rows, n);
	free(rows);
	return 0;
}

/* A search shown page by page. */
struct search {
	rpcq_client *client;
	const rpcq_call_options *o;
	Rpcq__Events__SearchRequest *req;
	int as_json;
	struct table t;
};

static int search_page(void *arg, const char *token, char **next)
{
	struct search *s = arg;
	s->req->page_token = (char *)token;
	Rpcq__Events__SearchResponse *r = NULL;
	rpcq_error err;
	if (rpcq_event_search(s->client, s->req, &r, s->o, &err) != RPCQ_OK) {
		/* The server names the request's field; the user typed the flag. */
		const char *flag = strncmp(err.message, "starts_at ", 10) == 0 ? "--from"
				   : strncmp(err.message, "ends_at ", 8) == 0  ? "--to"
									       : NULL;
		if (err.code == RPCQ_INVALID_ARGUMENT && flag != NULL)
			return cli_fail_status(err.code, "%s: %s", flag, err.message);
		return cli_fail(&err);
	}
	int rc = print_events(&s->t, s->as_json, r->events, r->n_events);
	if (rc == 0)
		rc = cli_next_page(next, r->next_page_token);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

/* ---- commands ---- */

static int cmd_search(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		search_usage(stdout);
		return 0;
	}
	const char *from = "", *to = "";
	uint64_t page_size = 0;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--from", &missing)) != NULL) {
			from = v;
		} else if ((v = cli_option(argc, argv, &i, "--to", &missing)) != NULL) {
			to = v;
		} else if ((v = cli_option(argc, argv, &i, "--page-size", &missing)) != NULL) {
			if (cli_parse_uint(v, 1, UINT32_MAX, &page_size) != 0)
				return cli_usage_error("--page-size takes a positive number, not \"%s\"", v);
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (missing) {
			return cli_usage_error("%s needs a value", argv[i]);
		} else {
			return cli_usage_error("events search takes [--from ISO] [--to ISO] [--page-size N] "
					       "[--json], not \"%s\"",
					       argv[i]);
		}
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Events__SearchRequest req = RPCQ__EVENTS__SEARCH_REQUEST__INIT;
	req.starts_at = (char *)from;
	req.ends_at = (char *)to;
	req.limit = (uint32_t)page_size;
	struct search s = {.client = client, .o = &o, .req = &req, .as_json = as_json};
	int rc = cli_each_page(search_page, &s);
	if (rc == 0 && !as_json && !s.t.header_done)
		table_page(&s.t, NULL, 0); /* no events: the header alone */
	fflush(stdout);
	return rc;
}

static int cmd_get(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		get_usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("events get takes one event ID");
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Events__GetEventRequest req = RPCQ__EVENTS__GET_EVENT_REQUEST__INIT;
	req.id = argv[1];
	Rpcq__Events__Event *e = NULL;
	rpcq_error err;
	if (rpcq_event_get_event(client, &req, &e, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	char *json = rpcq_message_to_json(&e->base, RPCQ_JSON_PRETTY | RPCQ_JSON_EMIT_DEFAULTS);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	if (json == NULL)
		return cli_out_of_memory();
	printf("%s\n", json);
	rpcq_free(json);
	return 0;
}

static int cmd_sync(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		sync_usage(stdout);
		return 0;
	}
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			as_json = 1;
		else
			return cli_usage_error("events sync takes no arguments but --json, not \"%s\"", argv[i]);
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	o.retry = 2; /* a failed fetch is the answer, not a reason to fetch again */
	Rpcq__Events__SyncRequest req = RPCQ__EVENTS__SYNC_REQUEST__INIT;
	Rpcq__Events__SyncResponse *r = NULL;
	rpcq_error err;
	if (rpcq_event_sync(client, &req, &r, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	struct table t = {0};
	int rc = r->n_changed ? print_events(&t, as_json, r->changed, r->n_changed) : 0;
	fflush(stdout);
	for (size_t i = 0; i < r->n_skipped_reasons; i++)
		fprintf(stderr, "rpcq: skipped %s\n", r->skipped_reasons[i]);
	if (r->skipped > r->n_skipped_reasons)
		fprintf(stderr, "rpcq: %u more skipped events are in the server's log\n",
			r->skipped - (unsigned)r->n_skipped_reasons);
	uint32_t changed = r->created + r->updated;
	if (changed > r->n_changed)
		fprintf(stderr,
			"rpcq: the first %zu of %u changed events are listed; `rpcq events changes --after "
			"%" PRIu64 "` has them all\n",
			r->n_changed, changed, r->last_seq >= changed ? r->last_seq - changed : 0);
	fprintf(stderr, "%u seen: %u new, %u changed, %u unchanged, %u skipped (last change %" PRIu64 ")\n",
		r->events_seen, r->created, r->updated, r->unchanged, r->skipped, r->last_seq);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return rc;
}

static const char *kind_name(Rpcq__Events__ChangeKind k)
{
	return k == RPCQ__EVENTS__CHANGE_KIND__CREATED	 ? "created"
	       : k == RPCQ__EVENTS__CHANGE_KIND__UPDATED ? "updated"
							 : "?";
}

static int print_changes(struct table *t, int as_json, const Rpcq__Events__ChangesResponse *r)
{
	if (as_json) {
		for (size_t i = 0; i < r->n_changes; i++) {
			if (json_line(&r->changes[i]->base) != 0)
				return cli_out_of_memory();
		}
		return 0;
	}
	static const Rpcq__Events__Event empty = RPCQ__EVENTS__EVENT__INIT;
	struct row *rows = calloc(r->n_changes ? r->n_changes : 1, sizeof(*rows));
	if (rows == NULL)
		return cli_out_of_memory();
	for (size_t i = 0; i < r->n_changes; i++) {
		const Rpcq__Events__Change *ch = r->changes[i];
		snprintf(rows[i].seq, sizeof(rows[i].seq), "%" PRIu64, ch->seq);
		rows[i].kind = ch->change ? kind_name(ch->change->kind) : "?";
		rows[i].e = ch->change && ch->change->event ? ch->change->event : &empty;
	}
	table_page(t, rows, r->n_changes);
	free(rows);
	return 0;
}

static int cmd_changes(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		changes_usage(stdout);
		return 0;
	}
	uint64_t after = 0;
	int as_json = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int missing = 0;
		if ((v = cli_option(argc, argv, &i, "--after", &missing)) != NULL) {
			if (cli_parse_uint(v, 0, INT64_MAX, &after) != 0)
				return cli_usage_error("--after takes a change seq (a number), not \"%s\"", v);
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (missing) {
			return cli_usage_error("%s needs a value", argv[i]);
		} else {
			return cli_usage_error("events changes takes [--after SEQ] [--json], not \"%s\"", argv[i]);
		}
	}
	rpcq_client *client = cli_client(g);
	if (client == NULL)
		return 1;
	rpcq_call_options o = cli_call_options(g);
	Rpcq__Events__ChangesRequest req = RPCQ__EVENTS__CHANGES_REQUEST__INIT;
	struct table t = {.with_change = 1};
	uint64_t until = 0; /* the newest change when the command started */
	int rc = 0;
	for (int page = 0;; page++) {
		Rpcq__Events__ChangesResponse *r = NULL;
		rpcq_error err;
		req.after_seq = after;
		if (rpcq_event_changes(client, &req, &r, &o, &err) != RPCQ_OK) {
			rc = cli_fail(&err);
			break;
		}
		if (page == 0)
			until = r->last_seq;
		size_t n = r->n_changes;
		/* The log has no gaps: a jump is what retention trimmed. */
		if (n > 0 && r->changes[0]->seq > after + 1)
			fprintf(stderr,
				"rpcq: changes %llu to %llu are no longer kept (trimmed by the stream's retention)\n",
				(unsigned long long)after + 1, (unsigned long long)r->changes[0]->seq - 1);
		rc = print_changes(&t, as_json, r);
		if (n > 0)
			after = r->changes[n - 1]->seq;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (rc != 0 || n == 0 || after >= until)
			break;
	}
	if (rc == 0 && !as_json && !t.header_done)
		table_page(&t, NULL, 0); /* no changes: the header alone */
	fflush(stdout);
	return rc;
}

int cli_events(int argc, char **argv, cli_globals *g)
{
	if (argc < 2 || ((strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "search") == 0)
		return cmd_search(argc - 1, argv + 1, g);
	if (strcmp(argv[1], "get") == 0)
		return cmd_get(argc - 1, argv + 1, g);
	if (strcmp(argv[1], "sync") == 0)
		return cmd_sync(argc - 1, argv + 1, g);
	if (strcmp(argv[1], "changes") == 0)
		return cmd_changes(argc - 1, argv + 1, g);
	return cli_usage_error("unknown events command \"%s\"", argv[1]);
}
