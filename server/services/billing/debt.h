/*
 * The rows of a debts file (shared/spec/billing.md), read from CSV text that
 * may be one chunk of a file among others:
 *
 *   name,governmentId,email,debtAmount,debtDueDate,debtId
 *
 * The first record of a file is its header and must name those columns, in
 * that order (case, a UTF-8 byte order mark and blanks around the names do
 * not matter); a file whose first record is anything else cannot be read.
 * After it, every record is a row, valid or rejected with a reason that
 * names the first field found wrong: a rejected row is reported and the
 * reading goes on. Around every field, spaces, tabs, '\r' (csv.h) and
 * U+00A0 NO-BREAK SPACE are ignored; a field that starts with a no-break
 * space before a '"' is not a quoted field (csv.h decides that first).
 *
 * What a valid row is:
 *  - six fields;
 *  - every field valid UTF-8 without control characters (U+0000..U+001F,
 *    U+007F);
 *  - name: 1..BILLING_NAME_MAX bytes (a boleto names its payer);
 *  - governmentId: 1..BILLING_GOVERNMENT_ID_MAX bytes, any text (the sample
 *    has 4-digit ids, not real CPF/CNPJ numbers, so no check digits);
 *  - email: an address the sender takes (mail.h, mail_addr_check with a
 *    dotted domain, the very check the sender makes), and no more than that:
 *    at most BILLING_EMAIL_MAX bytes of printable ASCII without spaces or
 *    the specials "(),:;<>[\], exactly one '@', a local part and a domain
 *    that are dot-atoms (not empty, no leading or trailing '.', no ".."), the
 *    domain holding a '.'. Whether it is deliverable is the mail server's to say;
 *  - debtAmount: a positive amount of at most 2 decimals, at most
 *    MONEY_MAX_CENTS (money.h: the largest a boleto carries), kept as cents;
 *  - debtDueDate: a real date YYYY-MM-DD (date.h), on or after
 *    BILLING_DUE_MIN_TEXT, the first due date a boleto's factor can carry;
 *  - debtId: 1..BILLING_DEBT_ID_MAX bytes, any text otherwise.
 * Duplicates need more than one row and the store, and are the import's to
 * find.
 *
 * Pure functions over memory (the text is unescaped in place, see csv.h).
 */
#ifndef RPCQ_BILLING_DEBT_H
#define RPCQ_BILLING_DEBT_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "csv.h"

#define BILLING_HEADER "name,governmentId,email,debtAmount,debtDueDate,debtId"
#define BILLING_FIELDS 6
#define BILLING_NAME_MAX 200
#define BILLING_GOVERNMENT_ID_MAX 32
#define BILLING_EMAIL_MAX 254
#define BILLING_DEBT_ID_MAX 64
/* The longest record (its '\n' included): a longer one is a rejected row,
 * however the chunks of its upload cut it (upload.h). */
#define BILLING_MAX_RECORD 8192
#define BILLING_OVERLONG_REASON "a record longer than 8192 bytes"
/* 1997-10-08, factor 0001 (0000 says "no due date"). */
#define BILLING_DUE_MIN_TEXT "1997-10-08"

typedef struct billing_row {
	uint64_t line; /* physical line where the record starts */
	/* Trimmed; point into the text; NULL (len 0) when the record has fewer
	 * fields. */
	const char *name;
	size_t name_len;
	const char *government_id;
	size_t government_id_len;
	const char *email;
	size_t email_len;
	const char *debt_id;
	size_t debt_id_len;
	const char *amount; /* the text, as given */
	size_t amount_len;
	const char *due; /* the text, as given */
	size_t due_len;
	/* Of a valid row: */
	int64_t amount_cents; /* 1..MONEY_MAX_CENTS */
	int32_t due_day;      /* days since 1970-01-01 (date.h) */
	const char *reason;   /* NULL: valid; else why it is rejected (in the reader) */
} billing_row;

typedef struct billing_reader {
	csv_reader csv;
	int header_seen;
	char reason[200];
} billing_reader;

/* Starts reading text[0..len), whose first byte is on first_line;
 * header_seen says whether an earlier chunk held the header. */
void billing_reader_init(billing_reader *r, char *text, size_t len, uint64_t first_line, int header_seen);

/* The next row: 1 with *row filled (row->reason set when it is rejected; the
 * reason lives in the reader until the next call), 0 at the end of the text,
 * -1 when the text cannot be read (malformed CSV, a wrong header) with err
 * INVALID_ARGUMENT "line N: ...". The reader's header_seen is set once the
 * header has been read. */
int billing_reader_next(billing_reader *r, billing_row *row, rpcq_error *err);

#endif
