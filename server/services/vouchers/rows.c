/*
 * Reading the rows of orders.csv and barcodes.csv (rows.h).
 */
#include <stdio.h>
#include <string.h>

#include "rows.h"
#include "utf8.h"

static const char *const column[3][2] = {
	{"", ""},
	{"order_id", "customer_id"},
	{"barcode", "order_id"},
};

const char *vouchers_file_header(vouchers_file file)
{
	return file == VOUCHERS_ORDERS ? "order_id,customer_id" : "barcode,order_id";
}

void vouchers_reader_init(vouchers_reader *r, vouchers_file file, char *text, size_t len, uint64_t first_line,
			  int header_seen)
{
	memset(r, 0, sizeof(*r));
	csv_init(&r->csv, text, len, first_line);
	r->file = file;
	r->header_seen = header_seen;
}

static int names_equal(const csv_field *f, const char *name)
{
	size_t n = strlen(name);
	if (f->len != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = f->ptr[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (ch != name[i])
			return 0;
	}
	return 1;
}

static int read_header(vouchers_reader *r, csv_record *rec, rpcq_error *err)
{
	const char *const *want = column[r->file];
	/* Spreadsheets save UTF-8 with a byte order mark. */
	csv_field *first_field = &rec->field[0];
	if (first_field->len >= 3 && memcmp(first_field->ptr, "\xef\xbb\xbf", 3) == 0) {
		first_field->ptr += 3;
		first_field->len -= 3;
	}
	if (rec->nfields == 2 && names_equal(&rec->field[0], want[0]) && names_equal(&rec->field[1], want[1])) {
		r->header_seen = 1;
		return 0;
	}
	char q[64];
	const char *first = rec->field[0].ptr;
	size_t n = rec->field[0].len;
	utf8_quote(first, n, q, sizeof(q));
	rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
		       "line %llu: the header must be %s (found %zu field(s), the first %s)",
		       (unsigned long long)rec->line, vouchers_file_header(r->file), rec->nfields, q);
	return -1;
}

/* Why the value of a column is refused, or NULL. */
static const char *check_id(const csv_field *f, int required)
{
	if (f->len == 0)
		return required ? "is empty" : NULL;
	if (f->len > VOUCHERS_ID_MAX)
		return "is longer than 64 bytes";
	for (size_t i = 0; i < f->len; i++) {
		unsigned char ch = (unsigned char)f->ptr[i];
		if (ch < 0x20 || ch == 0x7f)
			return "holds a control character";
	}
	if (!utf8_valid(f->ptr, f->len))
		return "is not valid UTF-8";
	return NULL;
}

int vouchers_reader_next(vouchers_reader *r, vouchers_row *row, rpcq_error *err)
{
	csv_record rec;
	int k;
	for (;;) {
		k = csv_next(&r->csv, &rec, err);
		if (k == 0 || (k < 0 && !r->header_seen))
			return k;
		if (r->header_seen)
			break;
		if (rec.bytes > VOUCHERS_MAX_RECORD) {
			rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: the header is %s",
				       (unsigned long long)rec.line, VOUCHERS_OVERLONG_REASON);
			return -1;
		}
		if (read_header(r, &rec, err) < 0)
			return -1;
	}
	memset(row, 0, sizeof(*row));
	row->line = rec.line;
	if (rec.bytes > VOUCHERS_MAX_RECORD) {
		row->a = "";
		row->reason = VOUCHERS_OVERLONG_REASON;
		return 1;
	}
	row->a = rec.field[0].ptr;
	row->a_len = rec.field[0].len;
	if (k < 0) {
		/* Malformed CSV after the header: a row rejected like any other. */
		snprintf(r->reason, sizeof(r->reason), "%s", rec.bad);
		row->reason = r->reason;
		return 1;
	}
	if (rec.nfields != 2) {
		snprintf(r->reason, sizeof(r->reason), "expected 2 fields (%s), found %zu",
			 vouchers_file_header(r->file), rec.nfields);
		row->reason = r->reason;
		return 1;
	}
	row->b = rec.field[1].ptr;
	row->b_len = rec.field[1].len;
	const char *const *name = column[r->file];
	const char *why;
	int col = 0;
	if ((why = check_id(&rec.field[0], 1)) == NULL) {
		col = 1;
		why = check_id(&rec.field[1], r->file == VOUCHERS_ORDERS);
	}
	if (why != NULL) {
		snprintf(r->reason, sizeof(r->reason), "%s %s", name[col], why);
		row->reason = r->reason;
	}
	return 1;
}
