/*
 * Chunks of an upload read ahead of their turn, so that a client with two
 * chunks in flight has the second one read (and staged) while the first
 * one's transaction still runs. A chunk's records can be read only from
 * the state its predecessor leaves (the line, the carried partial record,
 * upload.h); the database row holds that state once the predecessor
 * commits. This per-process table holds it as soon as the predecessor has
 * read its chunk: each chunk publishes the state after it (put), and the
 * next one reads from that (get), then checks it against the row when it
 * holds the row's lock. A state that the row does not confirm (the
 * predecessor failed, or another process took a chunk) is thrown away and
 * the chunk is read again from the row, so the table changes nothing a
 * chunk does, only when it can start reading.
 *
 * It also says which chunks are in this process's hands (enter, leave), so
 * that a chunk that reached the row's lock before its predecessor (two
 * requests handed to two workers in either order) waits for it instead of
 * being refused as a gap (wait_gone).
 *
 * Bounded: a few uploads at a time; others are simply not read ahead.
 */
#ifndef RPCQ_UPLOAD_AHEAD_H
#define RPCQ_UPLOAD_AHEAD_H

#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "strbuf.h"
#include "upload.h"

typedef struct upload_ahead upload_ahead;

/* The state a chunk at st.received starts from. */
typedef struct upload_spec {
	upload_state st;
	int header_seen;
	strbuf carry;
} upload_spec;

upload_ahead *upload_ahead_create(void);
void upload_ahead_destroy(upload_ahead *a);

/* Chunk [offset, end) of upload id is in this process's hands until
 * upload_ahead_leave. */
void upload_ahead_enter(upload_ahead *a, int64_t id, uint64_t offset, uint64_t end);
void upload_ahead_leave(upload_ahead *a, int64_t id, uint64_t offset);

/* Copies into *out (its carry reset first) the state published for a chunk
 * at offset: 1, or 0 when there is none. While a chunk ending at offset is
 * in hands here and has not published, waits for it until the absolute
 * time until (nng_clock). */
int upload_ahead_get(upload_ahead *a, int64_t id, uint64_t offset, nng_time until, upload_spec *out);

/* Publishes the state after a chunk (a copy is kept). */
void upload_ahead_put(upload_ahead *a, int64_t id, const upload_state *st, int header_seen, const char *carry,
		      size_t carry_len);

/* Forgets what was published for upload id (its chunk failed). */
void upload_ahead_forget(upload_ahead *a, int64_t id);

/* Waits for the chunk starting at offset: until it comes into this
 * process's hands (at most until arrive, absolute nng_clock time) and then
 * until it leaves (at most until until). 1 when it was in hands here, 0
 * when it did not come. */
int upload_ahead_wait_for(upload_ahead *a, int64_t id, uint64_t offset, nng_time arrive, nng_time until);

#endif
