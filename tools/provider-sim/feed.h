/*
 * The generated provider feed: a model of what the ticketing provider has on
 * sale, evolved one response at a time, and rendered as the provider's XML
 * in either vocabulary (eventList/base_event/event or planList/base_plan/
 * plan). Everything is a pure function of the parameters (seed included)
 * and the response number k: two simulators started alike serve the same
 * bytes in the same order. No I/O here.
 *
 * The model holds one small record per base element (its slot, one or two
 * events, each with the response number of its last change, and whether it
 * went offline); every value written (ids, titles, dates, zones, prices,
 * capacities) is derived from a hash of the seed, the slot and that version
 * when the feed is rendered, so memory is O(base elements) whatever the
 * zone count, and rendering is one pass into one buffer.
 */
#ifndef PROVIDER_SIM_FEED_H
#define PROVIDER_SIM_FEED_H

#include <stddef.h>
#include <stdint.h>

typedef enum feed_vocabulary {
	FEED_EVENT, /* eventList, base_event base_event_id=, event event_id= event_start_date= ... */
	FEED_PLAN,  /* planList, base_plan base_plan_id=, plan plan_id= plan_start_date= ... */
} feed_vocabulary;

typedef struct feed_params {
	feed_vocabulary vocabulary;
	uint32_t events;	 /* event elements per response (>= 1) */
	uint32_t zones;		 /* zone elements per event (>= 1) */
	uint64_t seed;		 /* everything generated derives from it */
	unsigned change_percent; /* 0..100: events changed between responses; 0: responses repeat */
} feed_params;

/* A growable byte buffer; zero-initialise, release with feed_buf_fini. */
typedef struct feed_buf {
	char *p;
	size_t len, cap;
} feed_buf;

void feed_buf_fini(feed_buf *b);

typedef struct feed feed;

/* Creates the model at response 1: exactly params->events events of
 * params->zones zones, every base element online. Sets *out only on
 * success; returns 0, or ENOMEM / EINVAL (zero events or zones). */
int feed_create(feed **out, const feed_params *params) __attribute__((warn_unused_result));
/* NULL is a no-op. */
void feed_destroy(feed *f);

/* Back to response 1 (the state feed_create made). Returns 0 or ENOMEM. */
int feed_reset(feed *f) __attribute__((warn_unused_result));

/* Advances the model from response k to k+1: about change_percent % of the
 * online events get new prices, capacities (some 0) and end times; a few base
 * elements disappear, a few go sell_mode="offline" (an offline one
 * disappears later), and new ones appear so that the feed again holds
 * params->events events. With change_percent 0 nothing changes. Returns 0
 * or ENOMEM (the model is then unchanged). */
int feed_step(feed *f) __attribute__((warn_unused_result));

/* k, the response number of the current state (1 after create or reset). */
uint64_t feed_number(const feed *f);

/* Renders the current state into *out (replacing what it held; its memory is
 * reused across calls), in one pass. Returns 0 or ENOMEM. */
int feed_render(const feed *f, feed_buf *out) __attribute__((warn_unused_result));

#endif
