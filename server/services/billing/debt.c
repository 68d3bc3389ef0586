/*
 * Reading the rows of a debts file (debt.h). Each record goes through the
 * shared CSV reader, has its no-break spaces trimmed here (csv.c trims the
 * ASCII blanks), and is checked column by column; the first field found
 * wrong gives the row its reason, named as the header names it.
 */
#include <stdio.h>
#include <string.h>

#include "date.h"
#include "debt.h"
#include "address.h"
#include "money.h"
#include "utf8.h"

static const char *const column[BILLING_FIELDS] = {
	"name", "governmentId", "email", "debtAmount", "debtDueDate", "debtId",
};

void billing_reader_init(billing_reader *r, char *text, size_t len, uint64_t first_line, int header_seen)
{
	memset(r, 0, sizeof(*r));
	csv_init(&r->csv, text, len, first_line);
	r->header_seen = header_seen;
}

static int is_blank(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

/* Trims ASCII blanks and no-break spaces (utf8.h) from both ends of f. */
static void trim(csv_field *f)
{
	char *p = f->ptr, *e = f->ptr + f->len;
	size_t k;
	for (;;) {
		if (p < e && is_blank((unsigned char)*p))
			p++;
		else if ((k = utf8_nbsp_at(p, e)) != 0)
			p += k;
		else
			break;
	}
	for (;;) {
		if (e > p && is_blank((unsigned char)e[-1]))
			e--;
		else if ((k = utf8_nbsp_before(p, e)) != 0)
			e -= k;
		else
			break;
	}
	f->ptr = p;
	f->len = (size_t)(e - p);
}

static int names_equal(const csv_field *f, const char *name)
{
	size_t n = strlen(name);
	if (f->len != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char a = f->ptr[i], b = name[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

static int read_header(billing_reader *r, csv_record *rec, rpcq_error *err)
{
	csv_field *first = &rec->field[0];
	int ok = rec->nfields == BILLING_FIELDS;
	/* Spreadsheets save UTF-8 with a byte order mark. */
	if (first->len >= 3 && memcmp(first->ptr, "\xef\xbb\xbf", 3) == 0) {
		first->ptr += 3;
		first->len -= 3;
	}
	for (size_t i = 0; ok && i < BILLING_FIELDS; i++) {
		trim(&rec->field[i]);
		ok = names_equal(&rec->field[i], column[i]);
	}
	if (ok) {
		r->header_seen = 1;
		return 0;
	}
	char q[64];
	trim(first);
	utf8_quote(first->ptr, first->len, q, sizeof(q));
	rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
		       "line %llu: the header must be " BILLING_HEADER " (found %zu field(s), the first %s)",
		       (unsigned long long)rec->line, rec->nfields, q);
	return -1;
}

/* Why a field's text cannot be stored, or NULL. */
static const char *check_text(const csv_field *f)
{
	for (size_t i = 0; i < f->len; i++) {
		unsigned char ch = (unsigned char)f->ptr[i];
		if (ch < 0x20 || ch == 0x7f)
			return "holds a control character";
	}
	if (!utf8_valid(f->ptr, f->len))
		return "is not valid UTF-8";
	return NULL;
}

/* Why the text of an id-like field (1..max bytes) is refused, or NULL. */
static const char *check_sized(const csv_field *f, size_t max, char *buf, size_t cap)
{
	if (f->len == 0)
		return "is empty";
	if (f->len > max) {
		snprintf(buf, cap, "is longer than %zu bytes", max);
		return buf;
	}
	return NULL;
}

/* 1 if the e-mail address is one the sender takes (debt.h): the sender's
 * own check (address.h), so no imported debt has an e-mail that cannot go. */
static int looks_like_address(const char *s, size_t n)
{
	return mail_addr_check(s, n, 1);
}

/* Checks the six trimmed fields of rec into row; returns the reason or NULL. */
static const char *check_row(billing_reader *r, const csv_record *rec, billing_row *row)
{
	char why[48], q[64];
	const char *w = NULL;
	size_t col;
	for (col = 0; col < BILLING_FIELDS && w == NULL; col++)
		w = check_text(&rec->field[col]);
	if (w != NULL) {
		snprintf(r->reason, sizeof(r->reason), "%s %s", column[col - 1], w);
		return r->reason;
	}
	const csv_field *f = rec->field;
	if ((w = check_sized(&f[0], BILLING_NAME_MAX, why, sizeof(why))) != NULL) {
		col = 0;
	} else if ((w = check_sized(&f[1], BILLING_GOVERNMENT_ID_MAX, why, sizeof(why))) != NULL) {
		col = 1;
	} else if (!looks_like_address(f[2].ptr, f[2].len)) {
		col = 2;
		if (f[2].len == 0) {
			w = "is empty";
		} else {
			utf8_quote(f[2].ptr, f[2].len, q, sizeof(q));
			snprintf(r->reason, sizeof(r->reason), "email %s is not an address", q);
			return r->reason;
		}
	}
	if (w != NULL) {
		snprintf(r->reason, sizeof(r->reason), "%s %s", column[col], w);
		return r->reason;
	}

	money_result m = money_parse(f[3].ptr, f[3].len, &row->amount_cents);
	if (m == MONEY_EMPTY)
		return "debtAmount is empty";
	if (m != MONEY_OK) {
		utf8_quote(f[3].ptr, f[3].len, q, sizeof(q));
		snprintf(r->reason, sizeof(r->reason), "debtAmount %s %s", q, money_result_phrase(m));
		return r->reason;
	}

	if (f[4].len == 0)
		return "debtDueDate is empty";
	date_result d = date_parse(f[4].ptr, f[4].len, &row->due_day);
	if (d == DATE_OK && row->due_day < date_from_civil(1997, 10, 8))
		w = "is before " BILLING_DUE_MIN_TEXT ", the first due date a boleto carries";
	else if (d == DATE_MALFORMED)
		w = "is not a date YYYY-MM-DD";
	else if (d == DATE_IMPOSSIBLE)
		w = "is not a date";
	if (w != NULL) {
		utf8_quote(f[4].ptr, f[4].len, q, sizeof(q));
		snprintf(r->reason, sizeof(r->reason), "debtDueDate %s %s", q, w);
		return r->reason;
	}

	if ((w = check_sized(&f[5], BILLING_DEBT_ID_MAX, why, sizeof(why))) != NULL) {
		snprintf(r->reason, sizeof(r->reason), "debtId %s", w);
		return r->reason;
	}
	return NULL;
}

int billing_reader_next(billing_reader *r, billing_row *row, rpcq_error *err)
{
	csv_record rec;
	int k;
	for (;;) {
		k = csv_next(&r->csv, &rec, err);
		if (k == 0 || (k < 0 && !r->header_seen))
			return k;
		if (r->header_seen)
			break;
		if (rec.bytes > BILLING_MAX_RECORD) {
			rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: the header is %s",
				       (unsigned long long)rec.line, BILLING_OVERLONG_REASON);
			return -1;
		}
		if (read_header(r, &rec, err) < 0)
			return -1;
	}
	memset(row, 0, sizeof(*row));
	row->line = rec.line;
	if (rec.bytes > BILLING_MAX_RECORD) {
		row->reason = BILLING_OVERLONG_REASON;
		return 1;
	}
	if (k < 0) {
		/* Malformed CSV after the header: a row rejected like any other. */
		snprintf(r->reason, sizeof(r->reason), "%s", rec.bad);
		row->reason = r->reason;
		return 1;
	}
	size_t n = rec.nfields < BILLING_FIELDS ? rec.nfields : BILLING_FIELDS;
	for (size_t i = 0; i < n; i++)
		trim(&rec.field[i]);
	const char **ptr[BILLING_FIELDS] = {&row->name,	  &row->government_id, &row->email,
					    &row->amount, &row->due,	       &row->debt_id};
	size_t *len[BILLING_FIELDS] = {&row->name_len,	 &row->government_id_len, &row->email_len,
				       &row->amount_len, &row->due_len,		  &row->debt_id_len};
	for (size_t i = 0; i < n; i++) {
		*ptr[i] = rec.field[i].ptr;
		*len[i] = rec.field[i].len;
	}
	if (rec.nfields != BILLING_FIELDS) {
		snprintf(r->reason, sizeof(r->reason), "expected %d fields (" BILLING_HEADER "), found %zu",
			 BILLING_FIELDS, rec.nfields);
		row->reason = r->reason;
		return 1;
	}
	row->reason = check_row(r, &rec, row);
	if (row->reason != NULL) {
		row->amount_cents = 0;
		row->due_day = 0;
	}
	return 1;
}
