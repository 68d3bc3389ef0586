/*
 * libFuzzer target for the vouchers import (server/services/vouchers/rows.h
 * through server/services/common/upload.h): any bytes a client may send as
 * an orders or barcodes file. The first byte picks the file and a chunk
 * size; the rest is the file. Read whole, and read in chunks through
 * upload_take with the carry kept between them as the service keeps it,
 * the file must give the same rows with the same reasons, or fail on the
 * same line; every row has a line, valid rows have ids within the limits.
 * Run under ASan+UBSan: crashes, leaks and undefined behaviour are the
 * findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_hash.h"
#include "rows.h"
#include "upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A digest of the rows read: FNV-1a over "line a b reason" of each, and the
 * error when the text cannot be read. */
typedef struct digest {
	uint64_t h;
	uint64_t rows;
	int failed;
	uint64_t fail_line;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
	d->h = fuzz_hash(d->h, p, n);
}

static void add_row(digest *d, const vouchers_row *row)
{
	d->rows++;
	mix(d, &row->line, sizeof(row->line));
	mix(d, row->a, row->a_len);
	mix(d, "|", 1);
	if (row->b)
		mix(d, row->b, row->b_len);
	mix(d, "|", 1);
	if (row->reason)
		mix(d, row->reason, strlen(row->reason));
}

/* Reads text into d; 0 at its end, -1 when it could not be read. */
static int read_into(digest *d, vouchers_file file, char *text, size_t len, uint64_t line, int *header)
{
	vouchers_reader r;
	vouchers_row row;
	rpcq_error err;
	int k;
	vouchers_reader_init(&r, file, text, len, line, *header);
	while ((k = vouchers_reader_next(&r, &row, &err)) == 1) {
		if (row.line < line)
			abort();
		if (row.reason == NULL && (row.a_len == 0 || row.a_len > VOUCHERS_ID_MAX ||
					   row.b_len > VOUCHERS_ID_MAX || (file == VOUCHERS_ORDERS && row.b_len == 0)))
			abort();
		add_row(d, &row);
	}
	*header = r.header_seen;
	if (k < 0) {
		d->failed = 1;
		if (sscanf(err.message, "line %llu", (unsigned long long *)&d->fail_line) != 1)
			abort();
	}
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	vouchers_file file = (data[0] & 1) ? VOUCHERS_BARCODES : VOUCHERS_ORDERS;
	size_t chunk = 1 + (data[0] >> 1);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	digest whole = {1469598103934665603ull, 0, 0, 0};
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, text, len);
	int header = 0;
	read_into(&whole, file, copy, len, 1, &header);
	free(copy);

	digest cut = {1469598103934665603ull, 0, 0, 0};
	upload_state st = UPLOAD_STATE_INIT;
	strbuf work = STRBUF_INIT, carry = STRBUF_INIT;
	size_t off = 0;
	header = 0;
	do {
		size_t k = len - off < chunk ? len - off : chunk;
		upload_piece pc;
		rpcq_error err;
		rpcq_status s = upload_take(&st, carry.data, carry.len, off, text + off, k, off + k == len,
					    VOUCHERS_MAX_RECORD, &work, &pc, &err);
		if (s != RPCQ_OK || pc.action != UPLOAD_TAKEN)
			abort();
		if (read_into(&cut, file, pc.records, pc.records_len, pc.first_line, &header) < 0)
			break;
		if (pc.overlong_line != 0) {
			/* What the service does with it: the header's error, or a
			 * rejected row like the one the reader makes of it whole. */
			if (!header) {
				cut.failed = 1;
				cut.fail_line = pc.overlong_line;
				break;
			}
			vouchers_row row = {0};
			row.line = pc.overlong_line;
			row.a = "";
			row.reason = VOUCHERS_OVERLONG_REASON;
			add_row(&cut, &row);
		}
		carry.len = 0;
		strbuf_append(&carry, pc.carry, pc.carry_len);
		off += k;
	} while (off < len);
	strbuf_fini(&work);
	strbuf_fini(&carry);
	if (whole.failed != cut.failed)
		abort();
	if (whole.failed ? whole.fail_line != cut.fail_line : (whole.h != cut.h || whole.rows != cut.rows))
		abort();
	return 0;
}
