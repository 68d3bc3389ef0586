/*
 * The SQL of the vouchers service, one db_stmt per statement (db/db.h), all
 * in sql.c next to the schema (db/migrations/0004_vouchers.sql). Import ids
 * travel as decimal text, files as 1 (orders) and 2 (barcodes), COPY data
 * in the binary format (columns in the order the COPY names them).
 */
#ifndef RPCQ_VOUCHERS_SQL_H
#define RPCQ_VOUCHERS_SQL_H

#include "db/db.h"

/* Advisory lock key of "one import applied at a time across processes". */
#define VOUCHERS_APPLY_LOCK_KEY "7401004"

/* Imports. */
/* key (NULL: none) -> id when created (no row when the key exists) */
extern const db_stmt vouchers_sql_import_create;
/* key -> id */
extern const db_stmt vouchers_sql_import_by_key;
/* id, file, name */
extern const db_stmt vouchers_sql_file_create;
/* id: the import's staging partitions */
extern const db_stmt vouchers_sql_stage_create;
extern const db_stmt vouchers_sql_stage_drop;
/* id -> key, state, rejections, created_ms, applied_ms, the 8 counts */
extern const db_stmt vouchers_sql_import_get;
/* id -> state (locks the import row) */
extern const db_stmt vouchers_sql_import_lock;
/* id -> file, name, received, line, complete, rows, rejected */
extern const db_stmt vouchers_sql_files_get;
/* id, file -> received, line, complete, header_seen, rows, rejected, carry
 * (binary), name, state; locks the file row */
extern const db_stmt vouchers_sql_file_lock;
/* id, file, received, line, complete, header_seen, added rows, added
 * rejected, carry (binary) */
extern const db_stmt vouchers_sql_file_update;
/* id -> file, complete, name, received, rejected (locks both file rows) */
extern const db_stmt vouchers_sql_files_lock;
/* id, limit -> file, line, reason */
extern const db_stmt vouchers_sql_rejections_first;
/* id, after file, after line, limit -> file, line, reason */
extern const db_stmt vouchers_sql_rejections_page;

/* COPY targets (binary). */
#define VOUCHERS_SQL_COPY_ORDERS \
	"COPY voucher_stage_orders (import_id, line, order_id, customer_id) FROM STDIN (FORMAT binary)"
#define VOUCHERS_SQL_COPY_BARCODES \
	"COPY voucher_stage_barcodes (import_id, line, barcode, order_id) FROM STDIN (FORMAT binary)"
#define VOUCHERS_SQL_COPY_REJECTIONS \
	"COPY voucher_import_rejections (import_id, file, line, reason) FROM STDIN (FORMAT binary)"

/* Applying an import (apply.c), in this order, each with the import id
 * ($1) and, where it names files, the orders file's name ($2). */
extern const db_stmt vouchers_sql_apply_lock;
extern const char vouchers_sql_apply_settings[];
extern const db_stmt vouchers_sql_apply_orders_stage;	  /* -> temp table vo */
extern const db_stmt vouchers_sql_apply_orders_reject;	  /* -> rejected */
extern const db_stmt vouchers_sql_apply_orders_insert;	  /* -> added, unchanged */
extern const db_stmt vouchers_sql_apply_barcodes_stage;	  /* -> temp table vb */
extern const db_stmt vouchers_sql_apply_barcodes_reject;  /* $1, $2 -> rejected */
extern const db_stmt vouchers_sql_apply_barcodes_sell;	  /* $1 -> sold (temp table vs) */
extern const db_stmt vouchers_sql_apply_barcodes_lost;	  /* $1 -> rejected (sold meanwhile) */
extern const db_stmt vouchers_sql_apply_barcodes_insert;  /* $1 -> added, added unused, stored ok */
extern const db_stmt vouchers_sql_apply_without_barcodes; /* -> orders without barcodes */
/* id, rejections added, the 8 counts */
extern const db_stmt vouchers_sql_apply_done;
/* Last, just before the commit, so that the rows IssueVouchers also writes
 * are held for as short a time as can be: the customers' tickets (no
 * parameters; the customers' rows in the order voucher_issue_batch takes
 * them), then the stock's counts: unused delta, sold delta (slot 0). */
extern const db_stmt vouchers_sql_apply_tickets;
extern const db_stmt vouchers_sql_apply_stock;

/* Reports. */
/* limit, rows -> customer_id, order_id, barcode, pos (one row per barcode) */
extern const db_stmt vouchers_sql_vouchers_first;
/* after order_id, limit, rows -> same */
extern const db_stmt vouchers_sql_vouchers_after;
/* customer_id, after order_id ('' for the first page), limit, rows -> same */
extern const db_stmt vouchers_sql_vouchers_customer;
/* order_id, after pos, customer_id or '', rows -> same, of that order */
extern const db_stmt vouchers_sql_voucher_rest;
/* order_id -> customer_id (no row: no such order) */
extern const db_stmt vouchers_sql_order_customer;
/* n -> customer_id, tickets */
extern const db_stmt vouchers_sql_top;
/* -> unused, sold */
extern const db_stmt vouchers_sql_stock;

/* A batch of issues, in one autocommitted statement (voucher_issue_batch):
 * arrays of the customers, quantities, keys (NULL: none), topic, message
 * type, arrays of the packed customer_id fields and of the packed fields
 * after the barcodes (bytea) -> item (1-based), status, order_id,
 * available, seq (set when the message was appended), barcode (one row per
 * barcode, in order; one row without a barcode when none is returned), by
 * item */
extern const db_stmt vouchers_sql_issue_batch;
/* A batch of one issue, in the same shape (voucher_issue_publish, 0007,
 * which is cheaper for one than the batch's loops): customer, quantity,
 * key, topic, type, the two packed fields (binary) -> the same columns. */
extern const db_stmt vouchers_sql_issue_one;
/* Recomputes the points IssueVouchers' claims start from (after an import). */
extern const db_stmt vouchers_sql_claim_points;

#endif
