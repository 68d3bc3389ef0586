/*
 * The provider feed's streaming parser (server/services/events/feed.h): the
 * three real consecutive responses and the real plan response give exactly
 * the events the spec's rules imply, whatever the chunking; malformed events
 * are skipped with their ids and a reason while the rest goes on; documents
 * that are not well formed, have another root or declare a DOCTYPE are
 * refused; a large generated feed parses with no allocation after the first
 * events, which is what "memory bounded by one event" means to the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/alloc.h>

#include "feed.h"

#define MAX_EVENTS 16

typedef struct got_event {
	char base_id[FEED_ID_MAX + 1], event_id[FEED_ID_MAX + 1], title[FEED_TITLE_MAX + 1];
	char starts_at[20], ends_at[20], sell_from[20], sell_to[20];
	char min_price[FEED_PRICE_MAX], max_price[FEED_PRICE_MAX];
	int sold_out;
	unsigned zones;
} got_event;

typedef struct got_skip {
	char base_id[FEED_ID_MAX + 1], event_id[FEED_ID_MAX + 1];
	unsigned long line;
	char reason[256];
} got_skip;

typedef struct collected {
	got_event ev[MAX_EVENTS];
	size_t nev;
	got_skip skip[MAX_EVENTS];
	size_t nskip;
	unsigned long count;	  /* every event, also past MAX_EVENTS */
	unsigned long stop_after; /* 0: never stop */
	feed_stats stats;
	char err[256];
} collected;

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

static int on_event(void *arg, const feed_event *ev)
{
	collected *c = arg;
	c->count++;
	if (c->nev < MAX_EVENTS) {
		got_event *g = &c->ev[c->nev++];
		copy(g->base_id, sizeof g->base_id, ev->base_id);
		copy(g->event_id, sizeof g->event_id, ev->event_id);
		copy(g->title, sizeof g->title, ev->title);
		copy(g->starts_at, sizeof g->starts_at, ev->starts_at);
		copy(g->ends_at, sizeof g->ends_at, ev->ends_at);
		copy(g->sell_from, sizeof g->sell_from, ev->sell_from);
		copy(g->sell_to, sizeof g->sell_to, ev->sell_to);
		copy(g->min_price, sizeof g->min_price, ev->min_price);
		copy(g->max_price, sizeof g->max_price, ev->max_price);
		g->sold_out = ev->sold_out;
		g->zones = ev->zones;
	}
	return c->stop_after != 0 && c->count >= c->stop_after;
}

static void on_skip(void *arg, const char *base_id, const char *event_id, unsigned long line, const char *reason)
{
	collected *c = arg;
	if (c->nskip < MAX_EVENTS) {
		got_skip *s = &c->skip[c->nskip++];
		copy(s->base_id, sizeof s->base_id, base_id);
		copy(s->event_id, sizeof s->event_id, event_id);
		copy(s->reason, sizeof s->reason, reason);
		s->line = line;
	}
}

/* Parses data fed in chunks of chunk bytes (0: at once) into c. */
static int parse_chunks(const char *data, size_t len, size_t chunk, collected *c)
{
	feed_parser *p = feed_parser_create(on_event, on_skip, c);
	assert_non_null(p);
	int rc = FEED_OK;
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t at = 0; rc == FEED_OK;) {
		size_t n = len - at < chunk ? len - at : chunk;
		rc = feed_parser_feed(p, data + at, n, at + n == len, c->err, sizeof c->err);
		at += n;
		if (at == len)
			break;
	}
	feed_parser_stats(p, &c->stats);
	feed_parser_destroy(p);
	return rc;
}

/* Parses data in two calls, cut at byte cut. */
static int parse_split(const char *data, size_t len, size_t cut, collected *c)
{
	feed_parser *p = feed_parser_create(on_event, on_skip, c);
	assert_non_null(p);
	int rc = feed_parser_feed(p, data, cut, 0, c->err, sizeof c->err);
	if (rc == FEED_OK)
		rc = feed_parser_feed(p, data + cut, len - cut, 1, c->err, sizeof c->err);
	feed_parser_stats(p, &c->stats);
	feed_parser_destroy(p);
	return rc;
}

static int parse_text(const char *text, collected *c)
{
	memset(c, 0, sizeof *c);
	return parse_chunks(text, strlen(text), 0, c);
}

/* A file of ../shared/data/events/, which CTest names in RPCQ_SHARED_DIR. */
static char *read_shared(const char *name, size_t *len)
{
	const char *dir = getenv("RPCQ_SHARED_DIR");
	char path[1024];
	assert_non_null(dir);
	snprintf(path, sizeof path, "%s/data/events/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	char *buf = malloc(1 << 16);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 16, f);
	assert_true(*len > 0 && *len < (1 << 16));
	fclose(f);
	return buf;
}

static void assert_event(const got_event *g, const char *base_id, const char *event_id, const char *title,
			 const char *starts_at, const char *ends_at, const char *min_price, const char *max_price)
{
	assert_string_equal(g->base_id, base_id);
	assert_string_equal(g->event_id, event_id);
	assert_string_equal(g->title, title);
	assert_string_equal(g->starts_at, starts_at);
	assert_string_equal(g->ends_at, ends_at);
	assert_string_equal(g->min_price, min_price);
	assert_string_equal(g->max_price, max_price);
}

static void parse_file(const char *name, collected *c)
{
	size_t len;
	char *data = read_shared(name, &len);
	memset(c, 0, sizeof *c);
	assert_int_equal(parse_chunks(data, len, 0, c), FEED_OK);
	assert_int_equal(c->stats.bytes, len);
	free(data);
}

static void test_the_first_response_yields_its_three_online_events(void **state)
{
	(void)state;
	collected c;
	parse_file("provider_v1_response_1.xml", &c);
	assert_int_equal(c.nev, 3);
	assert_int_equal(c.nskip, 0);
	assert_event(&c.ev[0], "291", "291", "Camela en concierto", "2021-06-30T21:00:00", "2021-06-30T22:00:00",
		     "15.00", "30.00");
	assert_string_equal(c.ev[0].sell_from, "2020-07-01T00:00:00");
	assert_string_equal(c.ev[0].sell_to, "2021-06-30T20:00:00");
	assert_int_equal(c.ev[0].sold_out, 0);
	assert_int_equal(c.ev[0].zones, 3);
	assert_event(&c.ev[1], "322", "1642", "Pantomima Full", "2021-02-10T20:00:00", "2021-02-10T21:30:00", "55.00",
		     "55.00");
	assert_int_equal(c.ev[1].zones, 1);
	/* The same event id under another base is another event. */
	assert_event(&c.ev[2], "1591", "1642", "Los Morancos", "2021-07-31T20:00:00", "2021-07-31T21:00:00", "65.00",
		     "75.00");
	assert_int_equal(c.ev[2].zones, 2);
	assert_int_equal(c.stats.events, 3);
	assert_int_equal(c.stats.skipped, 0);
	assert_int_equal(c.stats.offline_bases, 0);
}

static void test_the_second_response_ignores_the_offline_base_and_zones_without_tickets(void **state)
{
	(void)state;
	collected c;
	parse_file("provider_v1_response_2.xml", &c);
	/* 444 is offline: its 2021-09-31 is never looked at, so nothing is skipped. */
	assert_int_equal(c.nev, 2);
	assert_int_equal(c.nskip, 0);
	assert_event(&c.ev[0], "291", "291", "Camela en concierto", "2021-06-30T21:00:00", "2021-06-30T22:00:00",
		     "15.00", "30.00");
	/* The 75.00 zone has capacity 0. */
	assert_event(&c.ev[1], "1591", "1642", "Los Morancos", "2021-07-31T20:00:00", "2021-07-31T21:20:00", "65.00",
		     "65.00");
	assert_int_equal(c.ev[1].zones, 2);
	assert_int_equal(c.stats.offline_bases, 1);
	assert_int_equal(c.stats.skipped, 0);
}

static void test_the_third_response_has_the_latest_end_times_and_prices(void **state)
{
	(void)state;
	collected c;
	parse_file("provider_v1_response_3.xml", &c);
	assert_int_equal(c.nev, 2);
	assert_int_equal(c.nskip, 0);
	/* The 15.00 zone is sold out now. */
	assert_event(&c.ev[0], "291", "291", "Camela en concierto", "2021-06-30T21:00:00", "2021-06-30T21:30:00",
		     "20.00", "30.00");
	assert_event(&c.ev[1], "1591", "1642", "Los Morancos", "2021-07-31T20:00:00", "2021-07-31T21:00:00", "65.00",
		     "65.00");
	assert_int_equal(c.stats.offline_bases, 1);
}

static void test_the_plan_vocabulary_yields_every_plan_of_each_base(void **state)
{
	(void)state;
	collected c;
	parse_file("provider_v2_plans.xml", &c);
	assert_int_equal(c.nev, 4);
	assert_int_equal(c.nskip, 0);
	assert_event(&c.ev[0], "291", "291", "Camela en concierto", "2021-06-30T21:00:00", "2021-06-30T22:00:00",
		     "15.00", "30.00");
	assert_event(&c.ev[1], "322", "1642", "Pantomima Full", "2021-02-10T20:00:00", "2021-02-10T21:30:00", "55.00",
		     "55.00");
	assert_event(&c.ev[2], "322", "1643", "Pantomima Full", "2021-02-11T20:00:00", "2021-02-11T21:30:00", "55.00",
		     "55.00");
	assert_string_equal(c.ev[2].sell_to, "2021-02-10T19:50:00");
	assert_event(&c.ev[3], "1591", "1642", "Los Morancos", "2021-07-31T20:00:00", "2021-07-31T21:00:00", "65.00",
		     "75.00");
}

static void assert_same(const collected *a, const collected *b)
{
	assert_int_equal(a->nev, b->nev);
	assert_int_equal(a->nskip, b->nskip);
	assert_memory_equal(a->ev, b->ev, a->nev * sizeof a->ev[0]);
	assert_memory_equal(a->skip, b->skip, a->nskip * sizeof a->skip[0]);
	assert_memory_equal(&a->stats, &b->stats, sizeof a->stats);
}

static void test_every_split_of_every_real_file_gives_the_same_events(void **state)
{
	(void)state;
	static const char *const files[] = {"provider_v1_response_1.xml", "provider_v1_response_2.xml",
					    "provider_v1_response_3.xml", "provider_v2_plans.xml"};
	static collected whole, part;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		size_t len;
		char *data = read_shared(files[f], &len);
		memset(&whole, 0, sizeof whole);
		assert_int_equal(parse_chunks(data, len, 0, &whole), FEED_OK);
		for (size_t cut = 0; cut <= len; cut++) {
			memset(&part, 0, sizeof part);
			assert_int_equal(parse_split(data, len, cut, &part), FEED_OK);
			assert_same(&whole, &part);
		}
		memset(&part, 0, sizeof part);
		assert_int_equal(parse_chunks(data, len, 1, &part), FEED_OK);
		assert_same(&whole, &part);
		free(data);
	}
}

/* One base with one event around the given event attributes and zones. */
#define FEED_HEAD "<eventList><output>"
#define FEED_TAIL "</output></eventList>"
#define GOOD_EVENT                                                                                               \
	"<event event_id=\"9\" event_start_date=\"2021-01-01T10:00:00\" event_end_date=\"2021-01-01T11:00:00\">" \
	"<zone capacity=\"1\" price=\"5\"/></event>"

static void test_malformed_events_are_skipped_with_their_ids_and_reason(void **state)
{
	(void)state;
	collected c;
	const char *text = FEED_HEAD
		"<base_event base_event_id=\"444\" sell_mode=\"online\" title=\"T\">\n"
		"<event event_id=\"1\" event_start_date=\"2021-09-31T20:00:00\" "
		"event_end_date=\"2021-10-01T21:00:00\"/>\n"
		"<event event_id=\"2\" event_start_date=\"2021-09-30T20:00:00\"/>\n"
		"<event event_id=\"3\" event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\">"
		"<zone capacity=\"5\" price=\"1.5.0\"/></event>\n"
		"<event event_id=\"4\" event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\">"
		"<zone capacity=\"-1\" price=\"10\"/></event>\n"
		"<event event_id=\"5\" event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\""
		" sold_out=\"maybe\"/>\n"
		"<event event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\"/>\n"
		"<event event_id=\"7\" event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\""
		" sell_to=\"2021-02-29T00:00:00\"/>\n"
		"<event event_id=\"8\" event_start_date=\"2021-09-30T20:00:00\" event_end_date=\"2021-09-30T21:00:00\">"
		"<zone price=\"10\"/></event>\n" GOOD_EVENT "</base_event>\n"
		"<base_event sell_mode=\"online\" title=\"No id\">" GOOD_EVENT "</base_event>\n"
		"<base_event base_event_id=\"10\" sell_mode=\"online\">" GOOD_EVENT "</base_event>\n" FEED_TAIL;
	assert_int_equal(parse_text(text, &c), FEED_OK);
	assert_int_equal(c.nev, 1);
	assert_string_equal(c.ev[0].event_id, "9");
	assert_string_equal(c.ev[0].min_price, "5");
	assert_int_equal(c.nskip, 10);
	assert_int_equal(c.stats.skipped, 10);
	assert_int_equal(c.stats.events, 1);

	assert_string_equal(c.skip[0].base_id, "444");
	assert_string_equal(c.skip[0].event_id, "1");
	assert_int_equal(c.skip[0].line, 2);
	assert_string_equal(c.skip[0].reason, "attribute \"event_start_date\": \"2021-09-31T20:00:00\" is not a date");
	assert_string_equal(c.skip[1].reason, "attribute \"event_end_date\" is missing");
	assert_string_equal(c.skip[2].reason, "zone on line 4: attribute \"price\": \"1.5.0\" is not a price");
	assert_int_equal(c.skip[2].line, 4); /* a zone's problem: the zone's line */
	assert_string_equal(c.skip[3].reason,
			    "zone on line 5: attribute \"capacity\": \"-1\" is not a non-negative integer");
	assert_string_equal(c.skip[4].reason, "attribute \"sold_out\": \"maybe\" is neither true nor false");
	assert_string_equal(c.skip[5].event_id, "");
	assert_string_equal(c.skip[5].reason, "attribute \"event_id\" is missing");
	assert_string_equal(c.skip[6].reason, "attribute \"sell_to\": \"2021-02-29T00:00:00\" is not a date");
	assert_string_equal(c.skip[7].reason, "zone on line 9: attribute \"capacity\" is missing");
	assert_string_equal(c.skip[8].base_id, "");
	assert_string_equal(c.skip[8].event_id, "9");
	assert_string_equal(c.skip[8].reason, "attribute \"base_event_id\" is missing");
	assert_int_equal(c.skip[8].line, 11); /* a base's problem: the event element's line */
	assert_string_equal(c.skip[9].base_id, "10");
	assert_string_equal(c.skip[9].reason, "attribute \"title\" is missing");
}

static void test_ids_and_titles_over_their_limits_skip_the_event(void **state)
{
	(void)state;
	collected c;
	char id[FEED_ID_MAX + 2], title[FEED_TITLE_MAX + 2], text[4096];
	memset(id, '7', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	memset(title, 'x', sizeof title - 1);
	title[sizeof title - 1] = '\0';
	snprintf(text, sizeof text,
		 FEED_HEAD
		 "<base_event base_event_id=\"1\" sell_mode=\"online\" title=\"t\">"
		 "<event event_id=\"%s\" event_start_date=\"2021-01-01T10:00:00\""
		 " event_end_date=\"2021-01-01T11:00:00\"/></base_event>"
		 "<base_event base_event_id=\"%s\" sell_mode=\"online\" title=\"t\">" GOOD_EVENT "</base_event>"
		 "<base_event base_event_id=\"2\" sell_mode=\"online\" title=\"%s\">" GOOD_EVENT "</base_event>"
		 "<base_event base_event_id=\"3\" sell_mode=\"online\" title=\"%.*s\">" GOOD_EVENT
		 "</base_event>" FEED_TAIL,
		 id, id, title, FEED_TITLE_MAX, title);
	assert_int_equal(parse_text(text, &c), FEED_OK);
	assert_int_equal(c.nskip, 3);
	assert_string_equal(c.skip[0].event_id, "");
	assert_string_equal(c.skip[0].reason, "attribute \"event_id\" is longer than 64 bytes");
	assert_string_equal(c.skip[1].base_id, "");
	assert_string_equal(c.skip[1].reason, "attribute \"base_event_id\" is longer than 64 bytes");
	assert_string_equal(c.skip[2].reason, "attribute \"title\" is longer than 512 bytes");
	/* Exactly at the limit is fine. */
	assert_int_equal(c.nev, 1);
	assert_string_equal(c.ev[0].base_id, "3");
	assert_int_equal(strlen(c.ev[0].title), FEED_TITLE_MAX);
}

static void test_an_event_without_tickets_left_has_no_prices(void **state)
{
	(void)state;
	collected c;
	const char *text = FEED_HEAD
		"<base_event base_event_id=\"1\" sell_mode=\"online\" title=\"Caf&#xe9; &amp; co\">"
		"<event event_id=\"1\" event_start_date=\"2024-02-29T10:00:00\" event_end_date=\"2024-02-29T11:00:00\""
		" sold_out=\"true\"><zone capacity=\"0\" price=\"20.00\"/><zone capacity=\"000\" price=\"1\"/></event>"
		"<event event_id=\"2\" event_start_date=\"2024-02-29T10:00:00\" "
		"event_end_date=\"2024-02-29T11:00:00\"/>"
		"<event event_id=\"3\" event_start_date=\"2024-02-29T10:00:00\" event_end_date=\"2024-02-29T11:00:00\">"
		"<zone capacity=\"007\" price=\"007.50\"/><zone capacity=\"1\" price=\"7.5\"/>"
		"<zone capacity=\"1\" price=\"100\"/><zone capacity=\"1\" price=\"99.999\"/></event>"
		"</base_event>" FEED_TAIL;
	assert_int_equal(parse_text(text, &c), FEED_OK);
	assert_int_equal(c.nev, 3);
	assert_string_equal(c.ev[0].title, "Caf\xc3\xa9 & co");
	assert_int_equal(c.ev[0].sold_out, 1);
	assert_string_equal(c.ev[0].min_price, "");
	assert_string_equal(c.ev[0].max_price, "");
	assert_int_equal(c.ev[0].zones, 2);
	assert_string_equal(c.ev[0].sell_from, "");
	assert_int_equal(c.ev[1].zones, 0);
	assert_string_equal(c.ev[1].min_price, "");
	/* Normalized, and the first of equal prices kept. */
	assert_string_equal(c.ev[2].min_price, "7.50");
	assert_string_equal(c.ev[2].max_price, "100");
}

static void test_unknown_elements_and_the_other_vocabulary_are_ignored(void **state)
{
	(void)state;
	collected c;
	const char *text =
		"<?xml version=\"1.0\"?>\n<eventList version=\"1.0\" xmlns:xsi=\"x\"><meta><base_event "
		"base_event_id=\"0\" sell_mode=\"online\" title=\"deep\">" GOOD_EVENT "</base_event></meta>"
		"<output><base_plan base_plan_id=\"5\" sell_mode=\"online\" title=\"plan\">"
		"<plan plan_id=\"1\" plan_start_date=\"2021-01-01T10:00:00\" plan_end_date=\"2021-01-01T11:00:00\"/>"
		"</base_plan>"
		"<base_event base_event_id=\"1\" sell_mode=\"online\" title=\"t\" extra=\"y\"><note>hi</note>"
		"<wrapper>" GOOD_EVENT "</wrapper>"
		"<event event_id=\"2\" event_start_date=\"2021-01-01T10:00:00\" event_end_date=\"2021-01-01T11:00:00\">"
		"<zone capacity=\"3\" price=\"4\" numbered=\"true\"/><more><zone capacity=\"3\" price=\"1\"/></more>"
		"<event event_id=\"3\"/><base_event base_event_id=\"x\"/>text</event>"
		"</base_event><base_event base_event_id=\"2\" title=\"no mode\">" GOOD_EVENT "</base_event>"
		"</output><!-- a comment --></eventList>\n";
	assert_int_equal(parse_text(text, &c), FEED_OK);
	/* The base under <meta> is a base: bases may sit anywhere under the root. */
	assert_int_equal(c.nev, 2);
	assert_string_equal(c.ev[0].base_id, "0");
	assert_string_equal(c.ev[1].base_id, "1");
	assert_string_equal(c.ev[1].event_id, "2");
	assert_string_equal(c.ev[1].min_price, "4");
	assert_int_equal(c.ev[1].zones, 1);
	assert_int_equal(c.nskip, 0);
	assert_int_equal(c.stats.offline_bases, 1);
}

static void assert_malformed(const char *text, const char *want_err)
{
	collected c;
	assert_int_equal(parse_text(text, &c), FEED_MALFORMED);
	if (want_err != NULL)
		assert_string_equal(c.err, want_err);
	else
		assert_memory_equal(c.err, "line ", 5);
}

static void test_documents_that_are_not_well_formed_are_malformed(void **state)
{
	(void)state;
	assert_malformed("", "line 1, column 1: no element found");
	assert_malformed("\x89PNG\r\n\x1a\n garbage", NULL);
	assert_malformed("{\"events\": []}", "line 1, column 1: not well-formed (invalid token)");
	assert_malformed("<eventList><output></eventList>", "line 1, column 22: mismatched tag");
	assert_malformed("<eventList>&undefined;</eventList>", NULL);
	assert_malformed("<eventList></eventList><eventList/>", "line 1, column 24: junk after document element");
	assert_malformed("<eventList><base_event a=\"1\" a=\"2\"/></eventList>", NULL);
}

static void test_a_truncated_response_is_malformed_at_its_end(void **state)
{
	(void)state;
	size_t len;
	char *data = read_shared("provider_v1_response_1.xml", &len);
	for (size_t cut = 0; cut < len; cut += 7) {
		collected c;
		memset(&c, 0, sizeof c);
		feed_parser *p = feed_parser_create(on_event, on_skip, &c);
		assert_non_null(p);
		/* Not final: nothing is wrong yet. */
		assert_int_equal(feed_parser_feed(p, data, cut, 0, c.err, sizeof c.err), FEED_OK);
		assert_int_equal(feed_parser_feed(p, NULL, 0, 1, c.err, sizeof c.err), FEED_MALFORMED);
		assert_memory_equal(c.err, "line ", 5);
		feed_parser_destroy(p);
	}
	/* The last bytes of the file are a closing tag. */
	collected c;
	memset(&c, 0, sizeof c);
	assert_int_equal(parse_split(data, len - 1, len - 1, &c), FEED_MALFORMED);
	assert_int_equal(c.nev, 3);
	free(data);
}

static void test_another_root_element_is_malformed(void **state)
{
	(void)state;
	assert_malformed("<?xml version=\"1.0\"?>\n<html><base_event/></html>",
			 "line 2, column 1: the root element is <html>, not eventList or planList");
	assert_malformed("<eventlist/>",
			 "line 1, column 1: the root element is <eventlist>, not eventList or planList");
}

static void test_a_doctype_is_refused_before_any_entity_is_declared(void **state)
{
	(void)state;
	assert_malformed("<?xml version=\"1.0\"?>\n<!DOCTYPE eventList [<!ENTITY a \"aaaaaaaaaa\">"
			 "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n<eventList>&b;</eventList>",
			 "line 2, column 21: DOCTYPE declarations are not accepted");
	assert_malformed("<!DOCTYPE eventList SYSTEM \"file:///etc/passwd\"><eventList/>",
			 "line 1, column 48: DOCTYPE declarations are not accepted");
}

static void test_a_callback_can_stop_the_parse_for_good(void **state)
{
	(void)state;
	size_t len;
	char *data = read_shared("provider_v2_plans.xml", &len);
	collected c;
	memset(&c, 0, sizeof c);
	c.stop_after = 2;
	feed_parser *p = feed_parser_create(on_event, NULL, &c);
	assert_non_null(p);
	assert_int_equal(feed_parser_feed(p, data, len / 2 + 200, 0, c.err, sizeof c.err), FEED_STOPPED);
	assert_int_equal(c.nev, 2);
	assert_int_equal(feed_parser_feed(p, data + len / 2 + 200, len - len / 2 - 200, 1, c.err, sizeof c.err),
			 FEED_STOPPED);
	assert_int_equal(c.nev, 2);
	feed_parser_destroy(p);
	free(data);
}

static void test_every_failed_allocation_is_reported_as_out_of_memory(void **state)
{
	(void)state;
	size_t len;
	char *data = read_shared("provider_v1_response_1.xml", &len);
	int succeeded = 0;
	for (long n = 0; n < 1000 && !succeeded; n++) {
		collected c;
		memset(&c, 0, sizeof c);
		rpcq_alloc_fail_after(n);
		feed_parser *p = feed_parser_create(on_event, on_skip, &c);
		if (p == NULL) {
			rpcq_alloc_fail_after(-1);
			continue;
		}
		int rc = FEED_OK;
		for (size_t at = 0; at < len && rc == FEED_OK; at += 100) {
			size_t k = len - at < 100 ? len - at : 100;
			rc = feed_parser_feed(p, data + at, k, at + k == len, c.err, sizeof c.err);
		}
		rpcq_alloc_fail_after(-1);
		if (rc == FEED_OK) {
			assert_int_equal(c.nev, 3);
			succeeded = 1;
		} else {
			assert_int_equal(rc, FEED_NOMEM);
		}
		feed_parser_destroy(p);
	}
	assert_true(succeeded);
	free(data);
}

/* A feed of n events of zones zones each, written into the parser as it is
 * generated, in 4096-byte chunks; after warm events, no allocation may
 * succeed: the parser must not need one. */
static void feed_generated(feed_parser *p, unsigned long n, unsigned zones, unsigned long warm, collected *c)
{
	static char chunk[4096];
	char item[512];
	size_t fill = 0;
	int plan = 0;
	unsigned long i = 0;
	unsigned z = 0;
	int stage = 0; /* 0 head, 1 event start, 2 zones, 3 event end, 4 tail, 5 done */
	while (stage != 5) {
		int k = 0;
		switch (stage) {
		case 0:
			k = snprintf(item, sizeof item, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<%s><output>\n",
				     plan ? "planList" : "eventList");
			stage = 1;
			break;
		case 1:
			if (i == warm)
				rpcq_alloc_fail_after(0);
			k = snprintf(
				item, sizeof item,
				"<base_event base_event_id=\"%lu\" sell_mode=\"%s\" title=\"Event n&#xba; %lu\">\n"
				"<event event_start_date=\"2021-06-30T21:00:00\" event_end_date=\"2021-06-30T22:00:00\""
				" event_id=\"%lu\" sell_from=\"2020-07-01T00:00:00\" sell_to=\"2021-06-30T20:00:00\""
				" sold_out=\"false\">\n",
				i, i % 10 == 9 ? "offline" : "online", i, i % 7);
			z = 0;
			stage = 2;
			break;
		case 2:
			k = snprintf(item, sizeof item,
				     "<zone zone_id=\"%u\" capacity=\"%u\" price=\"%u.%02u\" name=\"Zone %u\""
				     " numbered=\"true\" />\n",
				     z, (z + (unsigned)i) % 3, 10 + z, z % 100, z);
			if (++z == zones)
				stage = 3;
			break;
		case 3:
			k = snprintf(item, sizeof item, "</event>\n</base_event>\n");
			stage = ++i == n ? 4 : 1;
			break;
		default:
			k = snprintf(item, sizeof item, "</output></eventList>\n");
			stage = 5;
			break;
		}
		assert_true(k > 0 && (size_t)k < sizeof item);
		for (size_t at = 0; at < (size_t)k;) {
			size_t m = (size_t)k - at < sizeof chunk - fill ? (size_t)k - at : sizeof chunk - fill;
			memcpy(chunk + fill, item + at, m);
			fill += m;
			at += m;
			if (fill == sizeof chunk) {
				assert_int_equal(feed_parser_feed(p, chunk, fill, 0, c->err, sizeof c->err), FEED_OK);
				fill = 0;
			}
		}
	}
	assert_int_equal(feed_parser_feed(p, chunk, fill, 1, c->err, sizeof c->err), FEED_OK);
}

static void test_a_large_feed_parses_without_allocating_after_the_first_events(void **state)
{
	(void)state;
	static collected c;
	memset(&c, 0, sizeof c);
	feed_parser *p = feed_parser_create(on_event, on_skip, &c);
	assert_non_null(p);
	unsigned long before = rpcq_alloc_count();
	feed_generated(p, 2000, 50, 20, &c);
	rpcq_alloc_fail_after(-1);
	unsigned long during = rpcq_alloc_count() - before;
	feed_parser_stats(p, &c.stats);
	feed_parser_destroy(p);
	assert_int_equal(c.stats.events, 1800);
	assert_int_equal(c.count, 1800);
	assert_int_equal(c.stats.offline_bases, 200);
	assert_int_equal(c.stats.skipped, 0);
	assert_true(c.stats.bytes > 2000 * 50 * 60);
	/* Zones with capacity 1 and 2: prices of every third zone are left out. */
	assert_string_equal(c.ev[0].min_price, "11.01");
	assert_string_equal(c.ev[0].max_price, "59.49");
	/* A handful of expat's buffers, all made while the first events were read. */
	assert_true(during < 64);
}

/* A test that fails while allocations are made to fail leaves them working. */
static int allocations_work_again(void **state)
{
	(void)state;
	rpcq_alloc_fail_after(-1);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_first_response_yields_its_three_online_events),
		cmocka_unit_test(test_the_second_response_ignores_the_offline_base_and_zones_without_tickets),
		cmocka_unit_test(test_the_third_response_has_the_latest_end_times_and_prices),
		cmocka_unit_test(test_the_plan_vocabulary_yields_every_plan_of_each_base),
		cmocka_unit_test(test_every_split_of_every_real_file_gives_the_same_events),
		cmocka_unit_test(test_malformed_events_are_skipped_with_their_ids_and_reason),
		cmocka_unit_test(test_ids_and_titles_over_their_limits_skip_the_event),
		cmocka_unit_test(test_an_event_without_tickets_left_has_no_prices),
		cmocka_unit_test(test_unknown_elements_and_the_other_vocabulary_are_ignored),
		cmocka_unit_test(test_documents_that_are_not_well_formed_are_malformed),
		cmocka_unit_test(test_a_truncated_response_is_malformed_at_its_end),
		cmocka_unit_test(test_another_root_element_is_malformed),
		cmocka_unit_test(test_a_doctype_is_refused_before_any_entity_is_declared),
		cmocka_unit_test(test_a_callback_can_stop_the_parse_for_good),
		cmocka_unit_test_teardown(test_every_failed_allocation_is_reported_as_out_of_memory,
					  allocations_work_again),
		cmocka_unit_test_teardown(test_a_large_feed_parses_without_allocating_after_the_first_events,
					  allocations_work_again),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
