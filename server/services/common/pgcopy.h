/*
 * PostgreSQL's binary COPY format (COPY ... FROM STDIN (FORMAT binary)),
 * written into a strbuf: no escaping or decimal text to write, and none to
 * parse on the server. A stream is the header, rows (a field count, then
 * each field as a length and its bytes, -1 for NULL, big-endian), and the
 * trailer. pgcopy_send sends what has been written to an open COPY on a
 * connection once there is enough of it, so data of any size goes in
 * pieces. The encoders are pure; pgcopy_send and pgcopy_finish block on
 * the database (rpcqd_lib only).
 */
#ifndef RPCQ_PGCOPY_H
#define RPCQ_PGCOPY_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "strbuf.h"

/* Data is sent to the server in pieces of about this size. */
#define PGCOPY_PIECE (256 * 1024)

void pgcopy_header(strbuf *b);
/* A big-endian integer of 1..8 bytes (field counts, lengths, values). */
void pgcopy_be(strbuf *b, uint64_t v, int bytes);
/* Starts a row of n fields. */
void pgcopy_row(strbuf *b, int n);
/* A field of bytes (text, bytea). */
void pgcopy_bytes(strbuf *b, const void *s, size_t n);
void pgcopy_null(strbuf *b);
void pgcopy_bool(strbuf *b, int v);
void pgcopy_int2(strbuf *b, int16_t v);
void pgcopy_int4(strbuf *b, int32_t v);
void pgcopy_int8(strbuf *b, int64_t v);

struct dbconn;
/* Sends b to the COPY open on db when it holds PGCOPY_PIECE bytes or more
 * (always with force), then empties it. RESOURCE_EXHAUSTED when b failed. */
rpcq_status pgcopy_send(struct dbconn *db, strbuf *b, int force, rpcq_error *err) RPCQ_NODISCARD;
/* When st is OK: the trailer, the rest of b, and the end of the COPY
 * (which reports the COPY's errors). Returns st otherwise. */
rpcq_status pgcopy_finish(struct dbconn *db, strbuf *b, rpcq_status st, rpcq_error *err) RPCQ_NODISCARD;
/* One whole COPY (sql: COPY ... FROM STDIN (FORMAT binary)) of the rows
 * built in b, then its trailer; b is left as it was, so the same rows can
 * be sent again in another transaction. RESOURCE_EXHAUSTED when b failed. */
rpcq_status pgcopy_copy(struct dbconn *db, const char *sql, const strbuf *b, rpcq_error *err) RPCQ_NODISCARD;

#endif
