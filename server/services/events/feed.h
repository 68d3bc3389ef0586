/*
 * The provider's feed, parsed as a stream (expat): bytes in as they arrive
 * from the network, one callback per complete event out, in either
 * vocabulary (eventList/base_event/event or planList/base_plan/plan; both
 * with zone elements). Memory is bounded by one event whatever the feed's
 * size: zones are folded into the event's min/max price as they are read.
 * Only base elements with sell_mode="online" yield events; unknown
 * elements and attributes are ignored. A malformed event (a date such as
 * 2021-09-31, a missing attribute, a bad price or capacity) is reported to
 * on_skip with its ids and the reason, and the rest goes on. Pure: no I/O,
 * no globals; one parser per feed, one thread at a time.
 */
#ifndef RPCQ_EVENTS_FEED_H
#define RPCQ_EVENTS_FEED_H

#include <stddef.h>

#define FEED_ID_MAX 64	     /* base and event ids, bytes */
#define FEED_TITLE_MAX 512   /* bytes of UTF-8 */
#define FEED_PRICE_MAX 32    /* decimal text */
#define FEED_DATETIME_LEN 19 /* "YYYY-MM-DDTHH:MM:SS" */

typedef struct feed_event {
	const char *base_id; /* as in the feed */
	const char *event_id;
	const char *title;		       /* the base element's */
	char starts_at[FEED_DATETIME_LEN + 1]; /* validated local wall-clock time */
	char ends_at[FEED_DATETIME_LEN + 1];
	char sell_from[FEED_DATETIME_LEN + 1]; /* "" when absent */
	char sell_to[FEED_DATETIME_LEN + 1];
	/* Lowest and highest zone price among zones with capacity > 0, as
	 * exact decimal text (decimal_normalize); "" when no zone has tickets. */
	char min_price[FEED_PRICE_MAX];
	char max_price[FEED_PRICE_MAX];
	int sold_out;	/* the sold_out attribute ("true") */
	unsigned zones; /* zone elements read */
} feed_event;

/* Called for each valid online event; ev and its strings are valid only
 * during the call. Returns 0 to go on, nonzero to stop the parse (which
 * then returns FEED_STOPPED). */
typedef int (*feed_event_fn)(void *arg, const feed_event *ev);

/* Called for each skipped event: ids may be "" when missing; reason says
 * what and where ('attribute "event_start_date": "2021-09-31T20:00:00" is
 * not a date'); line is where its first problem is: the event element's
 * line for one in its own or its base's attributes, the zone's for a
 * zone's. Only skipped events get a line: expat counts lines by reading
 * every byte again up to where it is asked, which asked for every event
 * was a tenth of a repeat ingest's time. */
typedef void (*feed_skip_fn)(void *arg, const char *base_id, const char *event_id, unsigned long line,
			     const char *reason);

typedef struct feed_parser feed_parser;

typedef struct feed_stats {
	unsigned long events;	     /* valid online events reported */
	unsigned long skipped;	     /* malformed events */
	unsigned long offline_bases; /* base elements ignored for their sell_mode */
	unsigned long bytes;
} feed_stats;

enum { FEED_OK = 0, FEED_MALFORMED = -1, FEED_STOPPED = -2, FEED_NOMEM = -3 };

/* A parser for one feed; NULL when out of memory. on_skip may be NULL. */
feed_parser *feed_parser_create(feed_event_fn on_event, feed_skip_fn on_skip, void *arg);
void feed_parser_destroy(feed_parser *p);

/* Feeds the next len bytes (final: these are the last). FEED_OK, or
 * FEED_MALFORMED with err (errlen bytes) saying where and what: "line 3,
 * column 7: mismatched tag" — also for a document whose root is neither
 * eventList nor planList, that declares a DOCTYPE (entities are refused),
 * or that ends early (final with the root still open). */
int feed_parser_feed(feed_parser *p, const char *data, size_t len, int final, char *err, size_t errlen);

void feed_parser_stats(const feed_parser *p, feed_stats *out);

#endif
