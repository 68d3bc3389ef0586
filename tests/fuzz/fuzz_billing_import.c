/*
 * libFuzzer target for the billing import (server/services/billing/debt.h
 * through server/services/common/upload.h): any bytes a client may send as
 * a debts file. The first byte picks a chunk size; the rest is the file.
 * Read whole, and read in chunks through upload_take with the carry kept
 * between them as the service keeps it (a record too long to carry
 * rejected as the service rejects it), the file must give the same rows
 * with the same reasons, or fail on the same line, wherever it is cut. Every row has a line;
 * a valid row has its fields within the limits, an amount of 1 cent to
 * MONEY_MAX_CENTS that formats back to a valid amount, a due date a boleto
 * carries, and a boleto whose typeable line passes its own check. Run under
 * ASan+UBSan: crashes, leaks and undefined behaviour are the findings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boleto.h"
#include "date.h"
#include "debt.h"
#include "fuzz_hash.h"
#include "money.h"
#include "upload.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A digest of the rows read: FNV-1a over every field and reason of each,
 * and the error when the text cannot be read. */
typedef struct digest {
	uint64_t h;
	uint64_t rows;
	int failed;
	uint64_t fail_line;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
	d->h = fuzz_hash_field(d->h, p, n);
}

static void check_text(const char *s, size_t n, size_t max)
{
	if (s == NULL || n == 0 || n > max || !utf8_valid(s, n))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

/* What every valid row must be (debt.h), and its bill must be made. */
static void check_valid(const billing_row *row)
{
	check_text(row->name, row->name_len, BILLING_NAME_MAX);
	check_text(row->government_id, row->government_id_len, BILLING_GOVERNMENT_ID_MAX);
	check_text(row->email, row->email_len, BILLING_EMAIL_MAX);
	check_text(row->debt_id, row->debt_id_len, BILLING_DEBT_ID_MAX);
	if (memchr(row->email, '@', row->email_len) == NULL || memchr(row->email, ' ', row->email_len) != NULL)
		abort();
	if (row->amount_cents < 1 || row->amount_cents > MONEY_MAX_CENTS)
		abort();
	char amount[MONEY_FORMAT_MAX];
	int64_t back;
	size_t n = money_format(row->amount_cents, amount);
	if (money_parse(amount, n, &back) != MONEY_OK || back != row->amount_cents)
		abort();
	int32_t day;
	if (date_parse(row->due, row->due_len, &day) != DATE_OK || day != row->due_day)
		abort();
	boleto_input in = {1, 12345, row->line, row->due_day, row->amount_cents};
	boleto b;
	rpcq_error err;
	if (boleto_make(&in, &b, &err) != RPCQ_OK || !boleto_check_line(b.line))
		abort();
}

static void add_row(digest *d, const billing_row *row)
{
	d->rows++;
	mix(d, &row->line, sizeof(row->line));
	mix(d, row->name, row->name_len);
	mix(d, row->government_id, row->government_id_len);
	mix(d, row->email, row->email_len);
	mix(d, row->amount, row->amount_len);
	mix(d, row->due, row->due_len);
	mix(d, row->debt_id, row->debt_id_len);
	mix(d, &row->amount_cents, sizeof(row->amount_cents));
	mix(d, &row->due_day, sizeof(row->due_day));
	if (row->reason)
		mix(d, row->reason, strlen(row->reason));
}

/* Reads text into d; 0 at its end, -1 when it could not be read. */
static int read_into(digest *d, char *text, size_t len, uint64_t line, int *header)
{
	billing_reader r;
	billing_row row;
	rpcq_error err;
	int k;
	billing_reader_init(&r, text, len, line, *header);
	while ((k = billing_reader_next(&r, &row, &err)) == 1) {
		if (row.line < line)
			abort();
		if (row.reason == NULL)
			check_valid(&row);
		else if (row.amount_cents != 0 || row.due_day != 0)
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
	size_t chunk = 1 + data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	digest whole = {1469598103934665603ull, 0, 0, 0};
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, text, len);
	int header = 0;
	read_into(&whole, copy, len, 1, &header);
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
					    BILLING_MAX_RECORD, &work, &pc, &err);
		if (s != RPCQ_OK || pc.action != UPLOAD_TAKEN)
			abort();
		if (read_into(&cut, pc.records, pc.records_len, pc.first_line, &header) < 0)
			break;
		if (pc.overlong_line != 0) {
			/* What the service does with it: the header's error, or a
			 * rejected row like the one the reader makes of it whole. */
			if (!header) {
				cut.failed = 1;
				cut.fail_line = pc.overlong_line;
				break;
			}
			billing_row row = {0};
			row.line = pc.overlong_line;
			row.reason = BILLING_OVERLONG_REASON;
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
