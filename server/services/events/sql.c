/* The SQL of the events service (sql.h). */
#include "sql.h"

#define TS(col) "to_char(" col ", 'YYYY-MM-DD\"T\"HH24:MI:SS')"

const db_stmt events_sql_try_lock = {"events_try_lock", "SELECT pg_try_advisory_xact_lock(" EVENTS_FETCH_LOCK_KEY ")",
				     0};

const db_stmt events_sql_lock = {"events_lock", "SELECT pg_advisory_xact_lock(" EVENTS_FETCH_LOCK_KEY ")", 0};

const db_stmt events_sql_claim_due = {
	"events_claim_due",
	"UPDATE events_fetch_state SET last_started_at = now()"
	" WHERE last_started_at IS NULL OR last_started_at <= now() - make_interval(secs => CASE"
	" WHEN consecutive_failures = 0 THEN $1::int4::float8"
	" ELSE least($1::int4::float8, power(2, least(consecutive_failures - 1, 30))) / 2 END)"
	" RETURNING 1",
	1,
};

const db_stmt events_sql_claim_now = {"events_claim_now", "UPDATE events_fetch_state SET last_started_at = now()", 0};

const db_stmt events_sql_fetched = {
	"events_fetched",
	"UPDATE events_fetch_state SET last_finished_at = now(), last_ok_at = now(), last_error = NULL,"
	" consecutive_failures = 0",
	0,
};

const db_stmt events_sql_failed = {
	"events_failed",
	"UPDATE events_fetch_state SET last_finished_at = now(), last_error = $1,"
	" consecutive_failures = consecutive_failures + 1",
	1,
};

const db_stmt events_sql_last_seq = {
	"events_last_seq",
	"SELECT coalesce((SELECT last_seq FROM stream_topics WHERE topic = 'events.changed'), 0)",
	0,
};

const db_stmt events_sql_load = {
	"events_load",
	"SELECT id::text, base_id, event_id, title, " TS("starts_at") ", " TS(
		"ends_at") ","
			   " coalesce(" TS("sell_from") ", ''), coalesce(" TS(
				   "sell_to") ", ''),"
					      " coalesce(min_price::text, ''), coalesce(max_price::text, ''), "
					      "sold_out, seq"
					      " FROM events",
	0,
};

/* One batch, as one text[] per column (binary arrays: no quoting, NULL
 * elements for absent values) and the seq before the batch's first: no
 * staging table to fill, scan and empty for every batch. */
const db_stmt events_sql_upsert = {
	"events_upsert",
	"INSERT INTO events AS e (id, base_id, event_id, title, starts_at, ends_at, sell_from, sell_to,"
	" min_price, max_price, sold_out, seq)"
	" SELECT b.id::uuid, b.base_id, b.event_id, b.title, b.starts_at::timestamp, b.ends_at::timestamp,"
	" b.sell_from::timestamp, b.sell_to::timestamp, b.min_price::numeric, b.max_price::numeric,"
	" b.sold_out::boolean, $12::int8 + b.ord"
	" FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
	" $8::text[], $9::text[], $10::text[], $11::text[]) WITH ORDINALITY"
	" AS b(id, base_id, event_id, title, starts_at, ends_at, sell_from, sell_to, min_price, max_price,"
	" sold_out, ord)"
	" ON CONFLICT (id) DO UPDATE SET title = excluded.title, starts_at = excluded.starts_at,"
	" ends_at = excluded.ends_at, sell_from = excluded.sell_from, sell_to = excluded.sell_to,"
	" min_price = excluded.min_price, max_price = excluded.max_price, sold_out = excluded.sold_out,"
	" seq = excluded.seq, updated_at = now()",
	12,
};
