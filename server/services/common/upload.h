/*
 * A file uploaded in chunks at byte offsets and read as CSV records: the
 * bookkeeping that the vouchers and billing imports share. The state is
 * three numbers that the service keeps with the upload (in a database row,
 * next to the carried bytes), so any process may take the next chunk and an
 * upload interrupted at any point resumes from `received`.
 *
 * upload_take decides what one chunk does:
 *  - a chunk that lies within what was received (a resend whose reply was
 *    lost) is a duplicate: nothing changes;
 *  - a chunk that starts after `received` leaves a gap: FAILED_PRECONDITION
 *    naming the offset the upload expects, which is where a client resumes;
 *  - otherwise its bytes past `received` are new: they join the partial
 *    record carried over from the previous chunk, the whole records of that
 *    text are handed out for reading (starting on the line the carry started
 *    on), and what follows the last whole record is the new carry. The chunk
 *    marked last ends the file: all of its text is records.
 *  - a carry longer than a record may be (max_carry) is not kept: the piece
 *    names the line of that record (overlong_line), which the service
 *    rejects as a record too long, and the upload skips the rest of it in
 *    the chunks that follow (skip: where its text stood at the cut), so
 *    memory stays bounded by the chunk and the record is rejected wherever
 *    the chunks cut it. Readers reject a whole record longer than max_carry
 *    the same way (csv_record.bytes), so a file cut anywhere reads as whole.
 *    A line that is only blanks so far is no record yet: it is carried as
 *    max_carry of its blanks (the lines of blanks before it dropped), which
 *    read as it would whole, a blank line skipped or a record too long.
 * Chunks may cut the file anywhere, also inside a quoted field or a CRLF.
 *
 * Pure functions over memory.
 */
#ifndef RPCQ_UPLOAD_H
#define RPCQ_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "strbuf.h"

typedef struct upload_state {
	uint64_t received; /* bytes of the file taken so far (the next offset) */
	uint64_t line;	   /* line on which the carry starts (1 before the first chunk) */
	int complete;	   /* the chunk marked last has been taken */
	int skip;	   /* 0, or skipping an overlong record: its csv_record_end state */
} upload_state;

#define UPLOAD_STATE_INIT  \
	{                  \
		0, 1, 0, 0 \
	}

typedef enum upload_action {
	UPLOAD_DUPLICATE = 0, /* nothing new: acknowledge as is */
	UPLOAD_TAKEN = 1,     /* records to read, state advanced */
} upload_action;

typedef struct upload_piece {
	upload_action action;
	char *records; /* whole records, in work (mutable, for csv_init) */
	size_t records_len;
	uint64_t first_line; /* line of records[0] */
	const char *carry;   /* the new carry, in work (after the records) */
	size_t carry_len;
	uint64_t overlong_line; /* 0, or the line of a record longer than max_carry (after the records) */
} upload_piece;

/* Takes the chunk data[0..len) at offset (last: it ends the file) into an
 * upload in state *st whose carried bytes are carry[0..carry_len). work is
 * the caller's buffer (reset here) that holds carry + new bytes afterwards;
 * *out points into it. On UPLOAD_TAKEN *st is advanced (received, the line
 * of the new carry, complete); the caller stores it with the new carry when
 * it has stored what the records hold. A carry may grow to max_carry bytes
 * (one record's length): see overlong_line above. FAILED_PRECONDITION for a gap or for new bytes after the end of the file,
 * RESOURCE_EXHAUSTED when out of memory; *st is unchanged on any error. */
rpcq_status upload_take(upload_state *st, const char *carry, size_t carry_len, uint64_t offset, const void *data,
			size_t len, int last, size_t max_carry, strbuf *work, upload_piece *out,
			rpcq_error *err) RPCQ_NODISCARD;

/* Parses an upload's id as services number them ("42": 1..INT64_MAX,
 * digits only, no sign or leading zero). 0, or -1 when text is not one. */
int upload_parse_id(const char *text, int64_t *id);

#endif
