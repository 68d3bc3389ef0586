/*
 * libFuzzer target for the CSV reader every import shares
 * (server/services/common/csv.h), on its own: the service targets
 * (fuzz_vesting_csv, fuzz_vouchers_import, fuzz_billing_import) drive it
 * through their row rules, this one through its own promises. The first two
 * bytes pick a chunk limit; the rest is the file.
 *
 * - Cut where csv_cut says (the CLI's chunks), the two pieces read as the
 *   whole does: the same records, fields, lines and errors.
 * - csv_complete's prefix is made of whole records of the text.
 * - A record written back with csv_write_field reads as the same fields.
 * - A field that date_parse takes formats back to itself; utf8_quote of any
 *   field fits its buffer.
 *
 * Run under ASan+UBSan: crashes, leaks and undefined behaviour are findings,
 * and a broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "date.h"
#include "fuzz_hash.h"
#include "strbuf.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a over what a reading gave, record by record. */
typedef struct digest {
	uint64_t h, records;
} digest;

static void mix(digest *d, const void *p, size_t n)
{
	d->h = fuzz_hash(d->h, p, n);
}

static void mix_record(digest *d, int k, const csv_record *rec)
{
	mix(d, &k, sizeof(k));
	mix(d, &rec->line, sizeof(rec->line));
	if (k < 0) {
		mix(d, rec->bad, strlen(rec->bad));
		return;
	}
	mix(d, &rec->nfields, sizeof(rec->nfields));
	size_t n = rec->nfields < CSV_MAX_FIELDS ? rec->nfields : CSV_MAX_FIELDS;
	for (size_t i = 0; i < n; i++) {
		mix(d, &rec->field[i].len, sizeof(rec->field[i].len));
		mix(d, rec->field[i].ptr, rec->field[i].len);
	}
}

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A record csv_write_field can give back as it is: every field, none
 * with blanks around it (a writer keeps them only inside quotes, and quotes
 * only for ',', '"' and line breaks), and not one empty field (a blank
 * line, which a reader skips). */
static int writable(const csv_record *rec)
{
	if (rec->nfields > CSV_MAX_FIELDS || (rec->nfields == 1 && rec->field[0].len == 0))
		return 0;
	for (size_t i = 0; i < rec->nfields; i++) {
		const csv_field *f = &rec->field[i];
		if (f->len > 0 && (blank(f->ptr[0]) || blank(f->ptr[f->len - 1])))
			return 0;
	}
	return 1;
}

static void check_write_back(const csv_record *rec)
{
	strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < rec->nfields; i++) {
		if (i > 0)
			strbuf_putc(&b, ',');
		csv_write_field(&b, rec->field[i].ptr, rec->field[i].len);
	}
	strbuf_putc(&b, '\n');
	if (b.failed) {
		strbuf_fini(&b);
		return;
	}
	csv_reader r;
	csv_record back;
	rpcq_error err;
	csv_init(&r, b.data, b.len, 1);
	if (csv_next(&r, &back, &err) != 1 || back.nfields != rec->nfields)
		abort();
	for (size_t i = 0; i < rec->nfields; i++)
		if (back.field[i].len != rec->field[i].len ||
		    memcmp(back.field[i].ptr, rec->field[i].ptr, rec->field[i].len) != 0)
			abort();
	if (csv_next(&r, &back, &err) != 0)
		abort();
	strbuf_fini(&b);
}

static void check_field(const csv_field *f)
{
	int32_t day;
	if (date_parse(f->ptr, f->len, &day) == DATE_OK) {
		if (day < DATE_DAY_MIN || day > DATE_DAY_MAX)
			abort();
		char out[11];
		date_format(day, out);
		if (f->len != 10 || memcmp(out, f->ptr, 10) != 0)
			abort();
	}
	char q[64];
	utf8_quote(f->ptr, f->len, q, sizeof(q));
	if (memchr(q, '\0', sizeof(q)) == NULL)
		abort();
}

/* Reads text[0..len) (copied: reading unescapes in place) from first_line
 * into d; with checks, also checks each record's promises. */
static void read_all(const char *text, size_t len, uint64_t first_line, digest *d, int checks)
{
	char *copy = malloc(len ? len : 1);
	if (copy == NULL)
		abort();
	memcpy(copy, text, len);
	csv_reader r;
	csv_record rec;
	rpcq_error err;
	int k;
	csv_init(&r, copy, len, first_line);
	while ((k = csv_next(&r, &rec, &err)) != 0) {
		if (k < 0 && err.code != RPCQ_INVALID_ARGUMENT)
			abort();
		mix_record(d, k, &rec);
		d->records++;
		if (checks && k == 1) {
			size_t n = rec.nfields < CSV_MAX_FIELDS ? rec.nfields : CSV_MAX_FIELDS;
			for (size_t i = 0; i < n; i++)
				check_field(&rec.field[i]);
			if (writable(&rec))
				check_write_back(&rec);
		}
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t limit = (size_t)data[0] << 8 | data[1];
	const char *text = (const char *)data + 2;
	size -= 2;

	digest whole = {FUZZ_HASH_INIT, 0};
	read_all(text, size, 1, &whole, 1);

	uint64_t newlines = 0;
	size_t cut = csv_cut(text, size, limit, &newlines);
	if (cut > size || (size <= limit && cut != size) || (size > limit && cut > limit))
		abort();
	if (cut > 0 && cut < size && text[cut - 1] != '\n')
		abort();
	if (cut > 0) {
		digest pieces = {FUZZ_HASH_INIT, 0};
		read_all(text, cut, 1, &pieces, 0);
		read_all(text + cut, size - cut, 1 + newlines, &pieces, 0);
		if (pieces.h != whole.h || pieces.records != whole.records)
			abort();
	}

	size_t complete = csv_complete(text, size);
	if (complete > size || (complete > 0 && text[complete - 1] != '\n'))
		abort();
	digest head = {FUZZ_HASH_INIT, 0};
	read_all(text, complete, 1, &head, 0);
	if (head.records > whole.records)
		abort();
	return 0;
}
