/* The SQL of the billing service (sql.h). */
#include "sql.h"

#define MS(col) "(extract(epoch FROM " col ") * 1000)::int8"

/* Imports. */

/* A new import, unless its key has one: then nothing (and no id taken from
 * the sequence, so a run that finds its import leaves no gap before the
 * next), and the caller looks it up. ON CONFLICT covers two starts at once. */
const db_stmt billing_sql_import_create = {
	"billing_import_create",
	"INSERT INTO billing_imports (key, name) SELECT $1, $2"
	" WHERE NOT EXISTS (SELECT 1 FROM billing_imports WHERE key = $1) ON CONFLICT (key) DO NOTHING RETURNING id",
	2,
};

const db_stmt billing_sql_import_by_key = {"billing_import_by_key", "SELECT id FROM billing_imports WHERE key = $1", 1};

const db_stmt billing_sql_import_get = {
	"billing_import_get",
	"SELECT i.id, coalesce(i.key, ''), i.name, i.received, i.complete, i.rows, i.accepted, i.new_debts, i.repeated,"
	" i.rejected, i.new_debts - coalesce((SELECT sum(r.n) FROM billing_bill_ranges r WHERE r.import_id = i.id), 0),"
	" i.emails_sent, i.emails_failed, i.emails_cancelled, " MS("i.created_at") ", " MS(
		"i.updated_at") " FROM billing_imports i WHERE i.id = $1::int8",
	1,
};

const db_stmt billing_sql_import_lock = {
	"billing_import_lock",
	"SELECT received, line, complete, header_seen, carry, name, skip::int8 FROM billing_imports WHERE id = $1::int8"
	" FOR UPDATE",
	1,
};

const db_stmt billing_sql_import_update = {
	"billing_import_update",
	"UPDATE billing_imports SET received = $2::int8, line = $3::int8, complete = $4::bool, header_seen = $5::bool,"
	" carry = $6::bytea, rows = rows + $7::int8, accepted = accepted + $8::int8, new_debts = new_debts + $9::int8,"
	" repeated = repeated + $10::int8, rejected = rejected + $11::int8, skip = $12::int2, updated_at = now()"
	" WHERE id = $1::int8",
	12,
};

const db_stmt billing_sql_rejections_first = {
	"billing_rejections_first",
	"SELECT line, reason FROM billing_rejections WHERE import_id = $1::int8 ORDER BY line LIMIT $2::int8",
	2,
};

/* A page of an import's rejections after a line: no row when the import is
 * unknown, one row of NULLs when it has none past that line. */
const db_stmt billing_sql_rejections_page = {
	"billing_rejections_page",
	"SELECT r.line, r.reason FROM billing_imports i LEFT JOIN LATERAL (SELECT line, reason FROM billing_rejections"
	" WHERE import_id = i.id AND line > $2::int8 ORDER BY line LIMIT $3::int8) r ON true WHERE i.id = $1::int8"
	" ORDER BY r.line",
	3,
};

/* The e-mails of an import's debts that failed for good, by bill number,
 * through the index of failed e-mails alone (migration 0011). */
const db_stmt billing_sql_failed_emails_page = {
	"billing_failed_emails_page",
	"SELECT n.debt, d.debt_id, d.line, coalesce(n.email, d.email), n.attempts, coalesce(n.last_error, '')"
	" FROM billing_notifications n JOIN billing_debts d ON d.id = n.debt"
	" WHERE n.state = 3 AND n.debt > $2::int8 AND d.import_id = $1::int8 ORDER BY n.debt LIMIT $3::int8",
	3,
};

/* Failed e-mails of unpaid debts back to pending, due now, with no attempt
 * counted, and their imports' failed counts lowered with them; of one debt,
 * to the address $3 when given (migration 0012). A payment
 * racing this is caught where every e-mail is: the dispatcher reads the
 * payment under the e-mail's row lock and cancels it. */
const db_stmt billing_sql_failed_emails_retry = {
	"billing_failed_emails_retry",
	"WITH r AS (UPDATE billing_notifications n SET state = 1, attempts = 0, next_at = now(), last_error = NULL,"
	" email = coalesce($3::text, n.email)"
	" FROM billing_debts d WHERE n.state = 3 AND d.id = n.debt AND ($1::int8 IS NULL OR d.import_id = $1::int8)"
	" AND ($2::text IS NULL OR d.debt_id = $2::text)"
	" AND NOT EXISTS (SELECT 1 FROM billing_payments p WHERE p.debt = n.debt) RETURNING d.import_id),"
	" c AS (SELECT import_id, count(*) AS k FROM r GROUP BY import_id)"
	" UPDATE billing_imports i SET emails_failed = i.emails_failed - c.k, updated_at = now() FROM c"
	" WHERE i.id = c.import_id RETURNING i.id, c.k",
	3,
};

const db_stmt billing_sql_merge_lock = {"billing_merge_lock",
					"SELECT pg_advisory_xact_lock(" BILLING_MERGE_LOCK_KEY ")", 0};

const char billing_sql_stage_create[] =
	"CREATE TEMP TABLE IF NOT EXISTS billing_stage (line bigint, first bigint, same boolean, debt_id text COLLATE "
	"\"C\", name text, government_id text, email text, amount_cents bigint, due_date date) ON COMMIT DELETE ROWS";

/* A chunk's staged rows against the stored debts and each other, under
 * the merge lock (so the snapshot holds every debt stored before). The
 * stage marks each debtId's first row in the chunk (first = line), and
 * each later row that has its first row's values (same); the first rows
 * are inserted unless the debtId is stored (ON CONFLICT: one index
 * operation a row, where a probe and then an insert took two), in debtId
 * order (the key's pages visited in order; so a chunk's ids, the bill
 * numbers, follow its debtIds rather than its lines), and the new debts
 * are queued for their bills as ranges: the new ids in each aligned block
 * of $2 ids (one merge's ids are consecutive but for conflicts, so a chunk
 * makes about chunk/$2 + 1 ranges, with no sort). The rows left over are
 * the later rows of a debtId in the chunk (a few in a hundred in real
 * files) and the first rows of stored debtIds, looked for only when fewer
 * than the chunk's $3 distinct debtIds were inserted. They are compared
 * with the stored debt, or else (same) with the chunk's first row: the
 * same values are a repeat, others a rejection. Those are looked up by the
 * debt_id index, one probe each (the OFFSET 0 keeps the planner from
 * hashing the whole table, which grows with every file). */
const db_stmt billing_sql_merge = {
	"billing_merge",
	"WITH ins AS (INSERT INTO billing_debts (debt_id, name, government_id, email, amount_cents, due_date,"
	" import_id, line) SELECT debt_id, name, government_id, email, amount_cents, due_date, $1::int8, line"
	" FROM billing_stage WHERE line = first ORDER BY debt_id ON CONFLICT (debt_id) DO NOTHING RETURNING id, line),"
	" n AS (SELECT count(*) AS n FROM ins),"
	" q AS (INSERT INTO billing_bill_ranges (lo, hi, n, import_id)"
	" SELECT min(id), max(id), count(*), $1::int8 FROM ins GROUP BY id / $2::int8),"
	" rest AS (SELECT s.* FROM billing_stage s WHERE s.line <> s.first UNION ALL SELECT s.* FROM billing_stage s"
	" WHERE (SELECT n FROM n) < $3::int8 AND s.line = s.first AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.line = "
	"s.line)),"
	" c AS (SELECT rest.*, d.id AS stored, d.import_id AS stored_import, d.line AS stored_line,"
	" CASE WHEN d.id IS NOT NULL AND (d.name, d.government_id, d.email, d.amount_cents, d.due_date)"
	" = (rest.name, rest.government_id, rest.email, rest.amount_cents, rest.due_date) THEN 1"
	" WHEN d.id IS NULL AND rest.same THEN 1"
	" ELSE 2 END AS kind"
	" FROM rest LEFT JOIN LATERAL (SELECT x.id, x.import_id, x.line, x.name, x.government_id, x.email,"
	" x.amount_cents, x.due_date FROM billing_debts x WHERE x.debt_id = rest.debt_id OFFSET 0) d ON true),"
	" rej AS (INSERT INTO billing_rejections (import_id, line, reason)"
	" SELECT $1::int8, line, CASE WHEN stored IS NOT NULL AND stored_import <> $1::int8"
	" THEN 'debtId ' || debt_id || ' is known with other values (line ' || stored_line || ' of import '"
	" || stored_import || ')'"
	" ELSE 'debtId ' || debt_id || ' repeats line ' || coalesce(stored_line, first) || ' with other values' END"
	" FROM c WHERE kind = 2 RETURNING 1)"
	" SELECT (SELECT n FROM n), (SELECT count(*) FROM c WHERE kind = 1), (SELECT count(*) FROM rej)",
	3,
}; /* run with db_exec_fresh: billing_debts grows from empty within a connection's life */

/* Bills. */

/* One range of queued debts, the lowest not claimed by another biller;
 * deleted with the bills' transaction. The ARRAY makes the delete probe
 * the primary key (an IN subquery was planned as a hash join over the
 * whole queue). */
const db_stmt billing_sql_claim_range = {
	"billing_claim_range",
	"DELETE FROM billing_bill_ranges WHERE lo = ANY (ARRAY(SELECT lo FROM billing_bill_ranges ORDER BY lo"
	" LIMIT 1 FOR UPDATE SKIP LOCKED)) RETURNING lo, hi, import_id",
	0,
};

/* The debts of a claimed range, by constants: joined to the range in one
 * statement, the bounds were unknown to the planner, which guessed a third
 * of the table per bound and scanned all of it for every range (up to 3 s
 * a claim at a million debts). Run with db_exec_fresh, so that a plan made
 * while the table was small is not kept. Only what a bill is made of (the
 * boleto: number, amount, due date; the Message-ID: the number) and what
 * names the debt in an error: the slip is rendered when read. */
const db_stmt billing_sql_range_debts = {
	"billing_range_debts",
	"SELECT d.id, d.debt_id, d.amount_cents, d.due_date::text, d.import_id"
	" FROM billing_debts d WHERE d.id BETWEEN $1::int8 AND $2::int8 ORDER BY d.id",
	2,
};

const db_stmt billing_sql_bill_get = {
	"billing_bill_get",
	"SELECT d.debt_id, d.name, d.government_id, coalesce(n.email, d.email), d.amount_cents, d.due_date::text,"
	" b.barcode,"
	" b.payment_line, b.stored_slip, " MS(
		"b.created_at") ", n.state, n.attempts, coalesce(n.last_error, ''),"
				" n.message_id, p.debt IS NOT NULL, d.id, b.slip_layout, b.stored_slip IS NOT NULL"
				" FROM billing_debts d JOIN billing_bills b ON b.debt = d.id JOIN "
				"billing_notifications n ON n.debt = d.id"
				" LEFT JOIN billing_payments p ON p.debt = d.id WHERE d.debt_id = $1",
	1,
};

const db_stmt billing_sql_debt_exists = {"billing_debt_exists", "SELECT id FROM billing_debts WHERE debt_id = $1", 1};

/* E-mails. */

const db_stmt billing_sql_claim_mail = {
	"billing_claim_mail",
	"UPDATE billing_notifications n SET next_at = now() + make_interval(secs => $2::int4)"
	" WHERE n.debt IN (SELECT debt FROM billing_notifications WHERE state = 1 AND next_at <= now()"
	" ORDER BY next_at LIMIT $1::int8 FOR UPDATE SKIP LOCKED) RETURNING n.debt, n.next_at",
	2,
};

const db_stmt billing_sql_mail_lock = {
	"billing_mail_lock",
	"SELECT n.state, n.attempts, n.message_id, d.debt_id, d.name, coalesce(n.email, d.email), b.stored_slip,"
	" d.import_id,"
	" p.debt IS NOT NULL, b.stored_slip IS NOT NULL, b.slip_layout, d.government_id, d.amount_cents,"
	" d.due_date::text, n.next_at = $2::timestamptz"
	" FROM billing_notifications n JOIN billing_debts d ON d.id = n.debt JOIN billing_bills b ON b.debt = n.debt"
	" LEFT JOIN billing_payments p ON p.debt = n.debt WHERE n.debt = $1::int8 FOR UPDATE OF n",
	2,
};

/* debt, import, new state (2 sent, 3 failed, 4 cancelled), error */
const db_stmt billing_sql_mail_done = {
	"billing_mail_done",
	"WITH n AS (UPDATE billing_notifications SET state = $3::int2, attempts = attempts + 1,"
	" sent_at = CASE WHEN $3::int2 = 2 THEN clock_timestamp() END, last_error = $4"
	" WHERE debt = $1::int8 RETURNING 1)"
	" UPDATE billing_imports SET emails_sent = emails_sent + (CASE WHEN $3::int2 = 2 THEN 1 ELSE 0 END),"
	" emails_failed = emails_failed + (CASE WHEN $3::int2 = 3 THEN 1 ELSE 0 END),"
	" emails_cancelled = emails_cancelled + (CASE WHEN $3::int2 = 4 THEN 1 ELSE 0 END), updated_at = now()"
	" WHERE id = $2::int8 AND EXISTS (SELECT 1 FROM n)",
	4,
};

/* debt, delay ms, error. The delay and sent_at (mail_done) count from
 * the sender's answer (clock_timestamp), not from the transaction's start
 * (now), which came before the lock and the whole send. */
const db_stmt billing_sql_mail_retry = {
	"billing_mail_retry",
	"UPDATE billing_notifications SET attempts = attempts + 1, last_error = $3,"
	" next_at = clock_timestamp() + make_interval(secs => $2::int8 / 1000.0) WHERE debt = $1::int8",
	3,
};

/* Payments. */

const db_stmt billing_sql_payment_insert = {
	"billing_payment_insert",
	"INSERT INTO billing_payments (debt, paid_at, amount_cents, payer) VALUES ($1::int8, $2::timestamptz,"
	" $3::int8, $4) ON CONFLICT (debt) DO NOTHING RETURNING 1",
	4,
};

const db_stmt billing_sql_payment_get = {
	"billing_payment_get",
	"SELECT to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), amount_cents, payer,"
	" paid_at = $2::timestamptz AND amount_cents = $3::int8 AND payer = $4 FROM billing_payments WHERE debt = "
	"$1::int8",
	4,
};

/* debt -> import_id of the cancelled notification (no row: it was not pending) */
const db_stmt billing_sql_mail_cancel = {
	"billing_mail_cancel",
	"WITH n AS (UPDATE billing_notifications SET state = 4 WHERE debt = $1::int8 AND state = 1 RETURNING debt)"
	" UPDATE billing_imports i SET emails_cancelled = emails_cancelled + 1, updated_at = now()"
	" FROM n JOIN billing_debts d ON d.id = n.debt WHERE i.id = d.import_id RETURNING i.id",
	1,
};
