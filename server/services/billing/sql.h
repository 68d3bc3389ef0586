/*
 * The SQL of the billing service, one db_stmt per statement (db/db.h), all
 * in sql.c next to the schema (db/migrations/0005_billing.sql). Ids travel
 * as decimal text, amounts as integer cents, dates as YYYY-MM-DD; COPY data
 * in the binary format (columns in the order the COPY names them).
 */
#ifndef RPCQ_BILLING_SQL_H
#define RPCQ_BILLING_SQL_H

#include "db/db.h"

/* Advisory lock of "one chunk merged into the debts at a time": a debtId
 * new to two concurrent imports becomes one debt, compared once. */
#define BILLING_MERGE_LOCK_KEY "7401005"

/* key (NULL: none), name -> id when created */
extern const db_stmt billing_sql_import_create;
/* key -> id */
extern const db_stmt billing_sql_import_by_key;
/* id -> id, key, name, received, complete, rows, accepted, new_debts,
 * repeated, rejected, bills (new debts not in a queued range), emails_sent, emails_failed, emails_cancelled,
 * created_ms, updated_ms */
extern const db_stmt billing_sql_import_get;
/* id -> received, line, complete, header_seen, carry, name (binary; locks) */
extern const db_stmt billing_sql_import_lock;
/* id, received, line, complete, header_seen, carry (binary), rows,
 * accepted, new, repeated, rejected (added) */
extern const db_stmt billing_sql_import_update;
/* id, limit -> line, reason */
extern const db_stmt billing_sql_rejections_first;
/* id, after line, limit -> line, reason */
extern const db_stmt billing_sql_rejections_page;
/* id, after bill number, limit -> bill number, debt_id, line, email,
 * attempts, last_error */
extern const db_stmt billing_sql_failed_emails_page;
/* import id or NULL, debt_id or NULL -> import id, e-mails retried (a row
 * per import) */
extern const db_stmt billing_sql_failed_emails_retry;

extern const db_stmt billing_sql_merge_lock;
extern const char billing_sql_stage_create[];
#define BILLING_SQL_COPY_STAGE                                                                                      \
	"COPY billing_stage (line, first, same, debt_id, name, government_id, email, amount_cents, due_date) FROM " \
	"STDIN (FORMAT binary)"
#define BILLING_SQL_COPY_REJECTIONS "COPY billing_rejections (import_id, line, reason) FROM STDIN (FORMAT binary)"
/* import id, range size -> new, repeated, rejected */
extern const db_stmt billing_sql_merge;

/* -> lo, hi, import_id of one queued range (claimed: the caller's
 * transaction owns it) */
extern const db_stmt billing_sql_claim_range;
/* lo, hi -> id, debt_id, amount_cents, due date, import_id */
extern const db_stmt billing_sql_range_debts;
#define BILLING_SQL_COPY_BILLS "COPY billing_bills (debt, barcode, payment_line) FROM STDIN (FORMAT binary)"
#define BILLING_SQL_COPY_NOTIFICATIONS "COPY billing_notifications (debt, message_id) FROM STDIN (FORMAT binary)"
/* debt_id -> debt_id, name, government_id, email, amount_cents, due,
 * barcode, payment_line, stored slip, created_ms, state, attempts,
 * last_error, message_id, paid, id, slip layout, slip stored */
extern const db_stmt billing_sql_bill_get;
/* debt_id -> id */
extern const db_stmt billing_sql_debt_exists;

/* limit, lease s -> debt, next_at (claimed: next_at pushed ahead by the
 * lease; the value marks the claim) */
extern const db_stmt billing_sql_claim_mail;
/* debt, next_at of the claim -> state, attempts, message_id, debt_id, name,
 * email, stored slip, import_id, paid, slip stored, slip layout,
 * government_id, amount_cents, due, claim still held (next_at unchanged:
 * no other dispatcher claimed it after the lease, nor scheduled a retry)
 * (locks the notification) */
extern const db_stmt billing_sql_mail_lock;
/* debt, import, state, error */
extern const db_stmt billing_sql_mail_done;
/* debt, delay ms, error */
extern const db_stmt billing_sql_mail_retry;

/* debt, paid_at, cents, payer -> a row when recorded */
extern const db_stmt billing_sql_payment_insert;
/* debt, paid_at, cents, payer -> paid_at, cents, payer, same */
extern const db_stmt billing_sql_payment_get;
/* debt -> import id when a pending e-mail was cancelled */
extern const db_stmt billing_sql_mail_cancel;

#endif
