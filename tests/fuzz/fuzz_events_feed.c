/*
 * libFuzzer target for the provider feed's streaming parser
 * (server/services/events/feed.h): any bytes the provider, or something in
 * between, may answer. The first input byte picks a chunk size (0: the rest
 * in one piece), and the rest is fed in chunks of that size, as the fetcher
 * feeds what libcurl hands it; the same bytes in one piece must give the
 * same events, skips and result: an event must not depend on how the
 * network cut the response. Every event reported must hold what feed.h
 * promises (ids within their limits, valid local times, normalized prices
 * with min <= max). Run under ASan+UBSan: crashes, leaks and undefined
 * behaviour are the findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datetime.h"
#include "decimal.h"
#include "feed.h"
#include "fuzz_hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one run saw: a hash of every callback, in order, and the counts. */
typedef struct outcome {
	uint64_t hash;
	unsigned long events, skips;
} outcome;

static void mix(uint64_t *h, const void *p, size_t n)
{
	*h = fuzz_hash_field(*h, p, n);
}

static void mix_str(uint64_t *h, const char *s)
{
	mix(h, s, strlen(s));
}

static void check_time(const char *s, int optional)
{
	char out[20];
	if (optional && s[0] == '\0')
		return;
	if (datetime_local_parse(s, out) != 0 || strcmp(out, s) != 0)
		abort();
}

static void check_price(const char *s)
{
	char out[FEED_PRICE_MAX];
	if (decimal_normalize(s, out, sizeof out) != 0 || strcmp(out, s) != 0)
		abort();
}

static int on_event(void *arg, const feed_event *ev)
{
	outcome *o = arg;
	size_t nb = strlen(ev->base_id), ne = strlen(ev->event_id), nt = strlen(ev->title);
	if (nb == 0 || nb > FEED_ID_MAX || ne == 0 || ne > FEED_ID_MAX || nt == 0 || nt > FEED_TITLE_MAX)
		abort();
	check_time(ev->starts_at, 0);
	check_time(ev->ends_at, 0);
	check_time(ev->sell_from, 1);
	check_time(ev->sell_to, 1);
	if ((ev->min_price[0] == '\0') != (ev->max_price[0] == '\0'))
		abort();
	if (ev->min_price[0] != '\0') {
		check_price(ev->min_price);
		check_price(ev->max_price);
		if (decimal_cmp(ev->min_price, ev->max_price) > 0 || ev->zones == 0)
			abort();
	}
	if (ev->sold_out != 0 && ev->sold_out != 1)
		abort();
	o->events++;
	mix_str(&o->hash, ev->base_id);
	mix_str(&o->hash, ev->event_id);
	mix_str(&o->hash, ev->title);
	mix_str(&o->hash, ev->starts_at);
	mix_str(&o->hash, ev->ends_at);
	mix_str(&o->hash, ev->sell_from);
	mix_str(&o->hash, ev->sell_to);
	mix_str(&o->hash, ev->min_price);
	mix_str(&o->hash, ev->max_price);
	mix(&o->hash, &ev->sold_out, sizeof ev->sold_out);
	mix(&o->hash, &ev->zones, sizeof ev->zones);
	return 0;
}

static void on_skip(void *arg, const char *base_id, const char *event_id, unsigned long line, const char *reason)
{
	outcome *o = arg;
	if (strlen(base_id) > FEED_ID_MAX || strlen(event_id) > FEED_ID_MAX || reason[0] == '\0')
		abort();
	o->skips++;
	mix_str(&o->hash, base_id);
	mix_str(&o->hash, event_id);
	mix_str(&o->hash, reason);
	mix(&o->hash, &line, sizeof line);
}

/* Parses data in pieces of chunk bytes (0: one piece). */
static int run(const char *data, size_t size, size_t chunk, outcome *o)
{
	char err[256];
	memset(o, 0, sizeof *o);
	feed_parser *p = feed_parser_create(on_event, on_skip, o);
	if (p == NULL)
		abort();
	if (chunk == 0)
		chunk = size ? size : 1;
	int rc = FEED_OK;
	size_t at = 0;
	do {
		size_t n = size - at < chunk ? size - at : chunk;
		rc = feed_parser_feed(p, data + at, n, at + n == size, err, sizeof err);
		at += n;
	} while (rc == FEED_OK && at < size);
	if (rc != FEED_OK && rc != FEED_MALFORMED)
		abort();
	if (rc == FEED_MALFORMED && strncmp(err, "line ", 5) != 0)
		abort();
	feed_stats st;
	feed_parser_stats(p, &st);
	if (st.events != o->events || st.skipped != o->skips || st.bytes != at)
		abort();
	feed_parser_destroy(p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunk = data[0];
	const char *text = (const char *)data + 1;
	size--;

	outcome pieces, whole;
	int rc = run(text, size, chunk, &pieces);
	if (chunk != 0) {
		int rc_whole = run(text, size, 0, &whole);
		if (rc != rc_whole || pieces.hash != whole.hash || pieces.events != whole.events ||
		    pieces.skips != whole.skips)
			abort();
	}
	return 0;
}
