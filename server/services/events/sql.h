/*
 * The SQL of the events service, one db_stmt per statement (db/db.h), all in
 * sql.c next to the schema (db/migrations/0003_events.sql). Times travel as
 * "YYYY-MM-DDTHH:MM:SS" text, prices as numeric text, ids as UUID text.
 */
#ifndef RPCQ_EVENTS_SQL_H
#define RPCQ_EVENTS_SQL_H

#include "db/db.h"

/* Advisory lock key of "one provider fetch at a time across processes". */
#define EVENTS_FETCH_LOCK_KEY "7401002"

/* -> pg_try_advisory_xact_lock */
extern const db_stmt events_sql_try_lock;
/* waits for the lock (bounded by the statement deadline) */
extern const db_stmt events_sql_lock;
/* interval_s -> one row when a scheduled fetch is due (and claims it):
 * an interval after the last one started, or after a failure the shortest
 * retry the ingest thread's backoff can make (ingest_backoff_ms), so that
 * the processes retry a failing provider as one would */
extern const db_stmt events_sql_claim_due;
/* claims a fetch on demand */
extern const db_stmt events_sql_claim_now;
/* a fetch applied */
extern const db_stmt events_sql_fetched;
/* error -> a fetch failed (nothing of it applied) */
extern const db_stmt events_sql_failed;
/* -> last_seq of events.changed (0 when none) */
extern const db_stmt events_sql_last_seq;
/* -> every event: id, base_id, event_id, title, starts_at, ends_at,
 *    sell_from, sell_to, min_price, max_price, sold_out, seq */
extern const db_stmt events_sql_load;
/* one batch: id, base_id, event_id, title, starts_at, ends_at, sell_from,
 * sell_to, min_price, max_price, sold_out as text[] each (binary, NULL
 * elements for none), then the seq before the first -> events */
extern const db_stmt events_sql_upsert;
#define EVENTS_UPSERT_COLUMNS 11

#endif
