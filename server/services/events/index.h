/*
 * The in-memory index of stored events that every rpcqd keeps (DESIGN.md,
 * "State held in memory"): ordered by (starts_at, id) for range searches,
 * and by id for lookups. Searches are read 1000x more than written, so
 * readers share a lock (a writer-preferring rwlock: a burst of searches
 * cannot starve the applier) and never wait on the database or provider.
 * One writer at a time (the change follower); any number of readers.
 */
#ifndef RPCQ_EVENTS_INDEX_H
#define RPCQ_EVENTS_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* One event as the index holds it. Strings are owned by the index. */
typedef struct event_rec {
	char id[37];
	char starts_at[20], ends_at[20];   /* "YYYY-MM-DDTHH:MM:SS" */
	char sell_from[20], sell_to[20];   /* may be "" */
	char min_price[32], max_price[32]; /* "" when none */
	int sold_out;
	uint64_t seq; /* of the change that wrote these values */
	char *base_id, *event_id, *title;
} event_rec;

typedef struct event_index event_index;

/* NULL when out of memory. */
event_index *event_index_create(void);
void event_index_destroy(event_index *ix);

/* Inserts rec, or replaces the event with rec->id (its position follows a
 * changed starts_at). Copies everything. O(log n). Returns 0, -1 when out
 * of memory (the index is unchanged). Writer only. */
int event_index_upsert(event_index *ix, const event_rec *rec) __attribute__((warn_unused_result));

/* The same for a change of the log: only when rec->seq is later than the
 * seq of the event the index holds with that id (or it holds none), so
 * that a change applied twice, or an older one after a newer, leaves the
 * newer values. 1 when applied, 0 when ignored (not newer), -1 when out of
 * memory (the index unchanged). Writer only. */
int event_index_upsert_newer(event_index *ix, const event_rec *rec) __attribute__((warn_unused_result));

/* A copy of rec in one allocation (rpcq_free), as the index would hold it;
 * NULL when out of memory. */
event_rec *event_rec_dup(const event_rec *rec);

/* event_index_upsert_newer of a record from event_rec_dup, which the index
 * takes over instead of copying: it is freed when not applied (0) or out
 * of memory (-1). Writer only. */
int event_index_put_newer(event_index *ix, event_rec *r) __attribute__((warn_unused_result));

/* Calls fn, under the read lock, for each event with starts_at >= from and
 * ends_at <= to (NULL or "": no bound), in (starts_at, id) order, starting
 * after the event (after_start, after_id) when after_id is given (paging),
 * until fn returns nonzero or limit events were passed (0: no limit).
 * Returns how many were passed to fn. fn must not block or call back into
 * the index. O(log n + k). Any thread. */
size_t event_index_search(event_index *ix, const char *from, const char *to, const char *after_start,
			  const char *after_id, size_t limit, int (*fn)(void *arg, const event_rec *r), void *arg);

/* Calls fn under the read lock with the event of that id and returns 1, or
 * returns 0 when there is none. Any thread. */
int event_index_get(event_index *ix, const char *id, void (*fn)(void *arg, const event_rec *r), void *arg);

/* Events held. Any thread. */
size_t event_index_count(event_index *ix);

#endif
