/*
 * The SQL of the vesting ledgers, one db_stmt per statement (db/db.h), all in
 * sql.c so the schema (db/migrations/0002_vesting.sql) and every query that
 * touches it can be read together. Parameters are text; day numbers and
 * micro-share quantities travel as decimal integers; COPY data is in the
 * binary format (columns in the order the COPY names them).
 */
#ifndef RPCQ_VESTING_SQL_H
#define RPCQ_VESTING_SQL_H

#include "db/db.h"

/* name -> id; creates the ledger when missing. */
extern const db_stmt vesting_sql_ledger_create;
/* name -> id, events; locks the ledger row until the transaction ends. */
extern const db_stmt vesting_sql_ledger_lock;
/* name -> id */
extern const db_stmt vesting_sql_ledger_find;
/* id, added events -> events (after) */
extern const db_stmt vesting_sql_ledger_bump;
/* -> name, events, batches, created_ms, updated_ms */
extern const db_stmt vesting_sql_ledger_list;

/* ledger name, batch_id -> events, ledger_events */
extern const db_stmt vesting_sql_batch_find;
/* ledger_id, batch_id, events, ledger_events */
extern const db_stmt vesting_sql_batch_insert;

/* ledger, batch_id, part, events (bytea) */
extern const db_stmt vesting_sql_part_insert;
/* ledger, batch_id -> part, events */
extern const db_stmt vesting_sql_part_list;
/* ledger, batch_id */
extern const db_stmt vesting_sql_part_delete;
/* parts older than a day */
extern const db_stmt vesting_sql_part_expire;

/* The per-append scratch table, dropped at commit. */
#define VESTING_SQL_TMP_CREATE                                                                                 \
	"CREATE TEMP TABLE vesting_tmp (employee_id text COLLATE \"C\" NOT NULL, award_id text COLLATE \"C\" " \
	"NOT NULL, name text NOT NULL, days integer[], cum bigint[]) ON COMMIT DROP"
#define VESTING_SQL_TMP_COPY_KEYS "COPY vesting_tmp (employee_id, award_id, name) FROM STDIN (FORMAT binary)"
#define VESTING_SQL_TMP_COPY_ALL "COPY vesting_tmp (employee_id, award_id, name, days, cum) FROM STDIN (FORMAT binary)"
#define VESTING_SQL_TMP_TRUNCATE "TRUNCATE vesting_tmp"
/* ledger_id -> employee_id, award_id, day, qty: the stored events of the
 * awards in vesting_tmp */
extern const db_stmt vesting_sql_tmp_events;
/* ledger_id: employees of vesting_tmp, keeping stored names */
extern const db_stmt vesting_sql_employees_upsert;
/* ledger_id -> id, employee_id, award_id: awards of vesting_tmp with their
 * new running totals */
extern const db_stmt vesting_sql_awards_upsert;
/* COPY target for events (binary: award int8, day int4, qty int8). */
#define VESTING_SQL_COPY_EVENTS "COPY vesting_events (award, day, qty) FROM STDIN (FORMAT binary)"

/* ledger_id, target day, unit, after employee, after award, limit ->
 * employee_id, name, award_id, total */
extern const db_stmt vesting_sql_schedule;
/* same plus employee_id */
extern const db_stmt vesting_sql_schedule_employee;

#endif
