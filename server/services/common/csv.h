/*
 * CSV as the services' files use it (RFC 4180 plus the leniencies of the
 * vesting spec, which suit every export seen so far):
 * records end at '\n'; a field that starts (after blanks) with '"' is quoted,
 * may contain commas, line breaks and "" for a quote, and ends at the next
 * lone '"'; spaces, tabs and '\r' around a field are ignored (so CRLF files
 * read as LF files); lines holding nothing but those blanks are skipped. A
 * '"' inside an unquoted field is an ordinary character, as most CSV readers
 * take it. Errors: a quoted field not closed before the end of the input, and
 * text after a closing quote (other than blanks or a UTF-8 no-break space,
 * U+00A0, which spreadsheets leave there). A malformed record is reported,
 * and the reader goes on after it: the text after a closing quote is read as
 * the rest of an unquoted field (so the record ends where csv_cut and
 * csv_complete say it does), an unclosed quote takes the rest of the input.
 *
 * The reader works in place over a caller-owned, mutable buffer: quoted
 * fields are unescaped by moving bytes inside the buffer, so no field ever
 * costs an allocation. Field pointers stay valid as long as the buffer does.
 *
 * csv_cut finds where to split a file into chunks that each hold
 * whole records, by the same quoting rule, so the CLI can send a large file in
 * pieces that the server parses exactly as it would the whole file.
 *
 * Writing: csv_write_field quotes a field that contains a comma, a
 * quote or a line break, doubling its quotes, so the output reads back as CSV.
 *
 * Pure functions over memory; a reader belongs to one thread.
 */
#ifndef RPCQ_CSV_H
#define RPCQ_CSV_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "strbuf.h"

#define CSV_MAX_FIELDS 8

typedef struct csv_field {
	char *ptr;
	size_t len;
} csv_field;

typedef struct csv_record {
	/* The first CSV_MAX_FIELDS fields, blanks trimmed, unescaped. */
	csv_field field[CSV_MAX_FIELDS];
	size_t nfields; /* all fields of the record (may be more) */
	uint64_t line;	/* physical line where the record starts */
	size_t bytes;	/* of the record's text, its '\n' included */
	char bad[64];	/* when csv_next returned -1: why, without the line */
} csv_record;

typedef struct csv_reader {
	char *p; /* next unread byte */
	char *end;
	uint64_t line; /* physical line of p */
} csv_reader;

/* Starts reading buf[0..len), whose first byte is on line first_line. The
 * buffer is modified by reading (quoted fields are unescaped in place). */
void csv_init(csv_reader *r, char *buf, size_t len, uint64_t first_line);

/* Reads the next record into *rec. Returns 1 for a record, 0 at the end of
 * the input, -1 for a malformed record, with err set to INVALID_ARGUMENT
 * "line N: <rec->bad>" and rec->line set; the reader is then past that
 * record, so a caller that rejects bad rows may read on. */
int csv_next(csv_reader *r, csv_record *rec, rpcq_error *err);

/* Where to cut buf[0..len) (which starts at a record boundary) so that the
 * first piece holds whole records and at most limit bytes: the largest offset
 * <= limit just after a '\n' that ends a record, or len when len <= limit,
 * or 0 when the first record alone is longer than limit. A quoted field that
 * is never closed extends to the end of the input. *newlines (optional) gets
 * the number of '\n' bytes before the cut, so the next piece starts on line
 * first_line + *newlines. */
size_t csv_cut(const char *buf, size_t len, size_t limit, uint64_t *newlines);

/* The length of the longest prefix of buf[0..len) (which starts at a record
 * boundary) made of whole records ending in '\n': the rest may be a record
 * continued by more input. Used to carry a partial record over to the next
 * chunk of an upload. */
size_t csv_complete(const char *buf, size_t len);

/* Where the text of a record stands when it is cut (csv_record_end): at
 * the start of a field (CSV_AT_FIELD, also the record's start), inside an
 * unquoted field (or the text after a closing quote), inside a quoted
 * field, or inside one just after a '"' (which closes the field or begins
 * a "" pair, as the next byte says). Never 0, so 0 can mean "none". */
enum { CSV_AT_FIELD = 1, CSV_IN_UNQUOTED, CSV_IN_QUOTED, CSV_IN_QUOTED_QUOTE };

/* Reads buf[0..len) as the continuation of a record standing at *state, by
 * the rules of csv_next and csv_cut. 1 when the record ends in it, with
 * *end just past its '\n'; 0 when it does not, with *state where it stands
 * at len. */
int csv_record_end(const char *buf, size_t len, int *state, size_t *end);

/* Appends one field to b, quoted when it holds ',', '"', '\r' or '\n'. */
void csv_write_field(strbuf *b, const char *s, size_t n);

#endif
