/*
 * The rows of the seller's two exports (shared/spec/vouchers.md), read from
 * CSV text that may be one chunk of a file among others:
 *
 *   orders.csv    order_id,customer_id
 *   barcodes.csv  barcode,order_id        (order_id empty: unused)
 *
 * The first record of a file is its header and must name those columns, in
 * that order (case and blanks around the names do not matter); a file whose
 * first record is anything else cannot be read. After it, every record is a
 * row, valid or rejected with a reason: a row rejected here is reported and
 * the reading goes on. What is checked: two fields; the ids present (all but
 * a barcode's order_id), at most VOUCHERS_ID_MAX bytes, valid UTF-8 without
 * control characters. Duplicates and unknown orders need both whole files,
 * and are the import's to find (import.c).
 *
 * Pure functions over memory (the text is unescaped in place, see csv.h).
 */
#ifndef RPCQ_VOUCHERS_ROWS_H
#define RPCQ_VOUCHERS_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "csv.h"

#define VOUCHERS_ID_MAX 64
/* The longest record (its '\n' included): a longer one is a rejected row,
 * however the chunks of its upload cut it (upload.h). */
#define VOUCHERS_MAX_RECORD 4096
#define VOUCHERS_OVERLONG_REASON "a record longer than 4096 bytes"

typedef enum vouchers_file {
	VOUCHERS_ORDERS = 1, /* the values of rpcq.vouchers.File */
	VOUCHERS_BARCODES = 2,
} vouchers_file;

typedef struct vouchers_row {
	uint64_t line;
	/* orders: order_id, customer_id; barcodes: barcode, order_id (b_len 0:
	 * unused). Trimmed; point into the text. */
	const char *a;
	size_t a_len;
	const char *b;
	size_t b_len;
	const char *reason; /* NULL: valid; else why it is rejected (in the reader) */
} vouchers_row;

typedef struct vouchers_reader {
	csv_reader csv;
	vouchers_file file;
	int header_seen;
	char reason[200];
} vouchers_reader;

/* The header of a file, as it must read. */
const char *vouchers_file_header(vouchers_file file);

/* Starts reading text[0..len) of file, whose first byte is on first_line;
 * header_seen says whether an earlier chunk held the header. */
void vouchers_reader_init(vouchers_reader *r, vouchers_file file, char *text, size_t len, uint64_t first_line,
			  int header_seen);

/* The next row: 1 with *row filled (row->reason set when it is rejected),
 * 0 at the end of the text, -1 when the text cannot be read (malformed CSV,
 * a wrong header) with err INVALID_ARGUMENT "line N: ...". The reader's
 * header_seen is set once the header has been read. */
int vouchers_reader_next(vouchers_reader *r, vouchers_row *row, rpcq_error *err);

#endif
