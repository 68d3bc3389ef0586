/* The SQL of the vouchers service (sql.h). */
#include "sql.h"

#define MS(col) "(extract(epoch FROM " col ") * 1000)::int8"

/* Imports. */

/* A new import, unless its key has one: then nothing (and no id taken from
 * the sequence, so a run that finds its import leaves no gap before the
 * next), and the caller looks it up. ON CONFLICT covers two starts at once. */
const db_stmt vouchers_sql_import_create = {
	"vouchers_import_create",
	"INSERT INTO voucher_imports (key) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM voucher_imports WHERE key = $1)"
	" ON CONFLICT (key) DO NOTHING RETURNING id",
	1,
};

const db_stmt vouchers_sql_import_by_key = {"vouchers_import_by_key", "SELECT id FROM voucher_imports WHERE key = $1",
					    1};

const db_stmt vouchers_sql_file_create = {
	"vouchers_file_create",
	"INSERT INTO voucher_import_files (import_id, file, name) VALUES ($1::int8, $2::int2, $3)",
	3,
};

const db_stmt vouchers_sql_stage_create = {"vouchers_stage_create", "SELECT voucher_stage_create($1::int8)", 1};

const db_stmt vouchers_sql_stage_drop = {"vouchers_stage_drop", "SELECT voucher_stage_drop($1::int8)", 1};

const db_stmt vouchers_sql_import_get = {
	"vouchers_import_get",
	"SELECT coalesce(key, ''), state, rejections, " MS("created_at") ", coalesce(" MS(
		"applied_at") ", 0),"
			      " orders_added, orders_unchanged, orders_rejected, orders_without_barcodes,"
			      " barcodes_added, barcodes_sold, barcodes_unchanged, barcodes_rejected"
			      " FROM voucher_imports WHERE id = $1::int8",
	1,
};

const db_stmt vouchers_sql_import_lock = {"vouchers_import_lock",
					  "SELECT state FROM voucher_imports WHERE id = $1::int8 FOR UPDATE", 1};

const db_stmt vouchers_sql_files_get = {
	"vouchers_files_get",
	"SELECT file, name, received, line, complete, rows, rejected FROM voucher_import_files"
	" WHERE import_id = $1::int8 ORDER BY file",
	1,
};

const db_stmt vouchers_sql_file_lock = {
	"vouchers_file_lock",
	"SELECT f.received, f.line, f.complete, f.header_seen, f.rows, f.rejected, f.carry, f.name, i.state, "
	"f.skip::int8"
	" FROM voucher_import_files f JOIN voucher_imports i ON i.id = f.import_id"
	" WHERE f.import_id = $1::int8 AND f.file = $2::int2 FOR UPDATE OF f",
	2,
};

const db_stmt vouchers_sql_file_update = {
	"vouchers_file_update",
	"WITH f AS (UPDATE voucher_import_files SET received = $3::int8, line = $4::int8, complete = $5::bool,"
	" header_seen = $6::bool, rows = rows + $7::int8, rejected = rejected + $8::int8, carry = $9::bytea,"
	" skip = $10::int2 WHERE import_id = $1::int8 AND file = $2::int2 RETURNING 1)"
	" UPDATE voucher_imports SET rejections = rejections + $8::int8 WHERE id = $1::int8 AND EXISTS (SELECT 1 FROM "
	"f)",
	10,
};

const db_stmt vouchers_sql_files_lock = {
	"vouchers_files_lock",
	"SELECT file, complete, name, received, rejected FROM voucher_import_files WHERE import_id = $1::int8"
	" ORDER BY file"
	" FOR UPDATE",
	1,
};

const db_stmt vouchers_sql_rejections_first = {
	"vouchers_rejections_first",
	"SELECT file, line, reason FROM voucher_import_rejections WHERE import_id = $1::int8"
	" ORDER BY file, line LIMIT $2::int8",
	2,
};

const db_stmt vouchers_sql_rejections_page = {
	"vouchers_rejections_page",
	"SELECT file, line, reason FROM voucher_import_rejections WHERE import_id = $1::int8"
	" AND (file, line) > ($2::int2, $3::int8) ORDER BY file, line LIMIT $4::int8",
	4,
};

/* Applying an import, with nested loops off: the statements join whole
 * files against whole tables, and estimates of the scratch tables' groups
 * made the planner pick millions of index probes (82 s of a 5M-barcode
 * import, 37 s with hash joins). The scratch tables: vo, every row of the orders file
 * with the first line of its order_id and the stored order's customer; vb,
 * every barcode of the barcodes file once, with its occurrences summed up
 * (the lowest and highest order given to it, how many rows, the winning
 * row's line) and what the stock and the orders say of it. */

const db_stmt vouchers_sql_apply_lock = {"vouchers_apply_lock",
					 "SELECT pg_advisory_xact_lock(" VOUCHERS_APPLY_LOCK_KEY ")", 0};

const char vouchers_sql_apply_settings[] =
	"SET LOCAL work_mem = '256MB'; SET LOCAL enable_nestloop = off;"
	" CREATE TEMP TABLE vo (order_id text COLLATE \"C\", customer_id text COLLATE \"C\", line bigint,"
	" first bigint, stored text COLLATE \"C\") ON COMMIT DROP;"
	" CREATE TEMP TABLE vb (barcode text COLLATE \"C\", o1 text COLLATE \"C\", o2 text COLLATE \"C\","
	" n bigint, line bigint, sold_line bigint, stored boolean, stored_order text COLLATE \"C\","
	" order_state smallint, known boolean GENERATED ALWAYS AS (order_state = 0) STORED) ON COMMIT DROP;"
	" CREATE TEMP TABLE vs (barcode text COLLATE \"C\", order_id text COLLATE \"C\") ON COMMIT DROP";

const db_stmt vouchers_sql_apply_orders_stage = {
	"vouchers_apply_orders_stage",
	"INSERT INTO vo (order_id, customer_id, line, first, stored)"
	" SELECT s.order_id, s.customer_id, s.line, min(s.line) OVER (PARTITION BY s.order_id), o.customer_id"
	" FROM voucher_stage_orders s LEFT JOIN voucher_orders o ON o.order_id = s.order_id"
	" WHERE s.import_id = $1::int8",
	1,
};

const db_stmt vouchers_sql_apply_orders_reject = {
	"vouchers_apply_orders_reject",
	"INSERT INTO voucher_import_rejections (import_id, file, line, reason)"
	" SELECT $1::int8, 1, line, CASE WHEN line > first THEN 'order_id ' || order_id || ' repeats line ' || first"
	" ELSE 'order_id ' || order_id || ' is already in the stock, for customer ' || stored END"
	" FROM vo WHERE line > first OR stored <> customer_id",
	1,
};

const db_stmt vouchers_sql_apply_orders_insert = {
	"vouchers_apply_orders_insert",
	"WITH ins AS (INSERT INTO voucher_orders (order_id, customer_id, customer_key, order_key, import_id)"
	" SELECT order_id, customer_id, voucher_sort_key(customer_id), voucher_sort_key(order_id), $1::int8"
	" FROM vo WHERE line = first AND stored IS NULL RETURNING 1)"
	" SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM vo WHERE line = first AND stored = customer_id)",
	1,
};

const db_stmt vouchers_sql_apply_barcodes_stage = {
	"vouchers_apply_barcodes_stage",
	"INSERT INTO vb (barcode, o1, o2, n, line, sold_line, stored, stored_order, order_state)"
	" SELECT g.barcode, g.o1, g.o2, g.n, coalesce(g.sold_line, g.first_line), g.sold_line,"
	" b.barcode IS NOT NULL, b.order_id,"
	" CASE WHEN g.o1 IS NULL THEN 0 WHEN o.order_id IS NULL THEN 1 WHEN bad.order_id IS NOT NULL THEN 2 ELSE 0 END"
	" FROM (SELECT barcode, min(order_id) AS o1, max(order_id) AS o2, count(*) AS n,"
	" min(line) FILTER (WHERE order_id IS NOT NULL) AS sold_line, min(line) AS first_line"
	" FROM voucher_stage_barcodes WHERE import_id = $1::int8 GROUP BY barcode) g"
	" LEFT JOIN voucher_barcodes b ON b.barcode = g.barcode"
	" LEFT JOIN (SELECT DISTINCT order_id FROM vo) o ON o.order_id = g.o1"
	" LEFT JOIN (SELECT DISTINCT order_id FROM vo WHERE line = first AND stored <> customer_id) bad"
	" ON bad.order_id = g.o1",
	1,
};

/* Rejected rows of the barcodes file: the losing occurrences of a repeated
 * barcode, every occurrence of one given to different orders (the reason
 * names the lowest and highest, and "..." when there are more orders, not
 * merely more rows), and winners whose order is unknown or which the stock
 * has sold to another order. */
const db_stmt vouchers_sql_apply_barcodes_reject = {
	"vouchers_apply_barcodes_reject",
	"WITH r AS (SELECT s.line AS at, s.order_id, g.barcode, g.o1, g.o2, g.line, g.sold_line"
	" FROM voucher_stage_barcodes s JOIN vb g ON g.barcode = s.barcode"
	" WHERE s.import_id = $1::int8 AND g.n > 1 AND (g.o1 <> g.o2 OR s.line <> g.line)),"
	" d AS (SELECT barcode, count(DISTINCT order_id) AS orders FROM r WHERE o1 <> o2 GROUP BY barcode)"
	" INSERT INTO voucher_import_rejections (import_id, file, line, reason)"
	" SELECT $1::int8, 2, r.at, CASE WHEN r.o1 <> r.o2"
	" THEN 'barcode ' || r.barcode || ' is given to different orders (' || r.o1 || ', ' || r.o2 ||"
	" CASE WHEN d.orders > 2 THEN ', ...' ELSE '' END || '): its owner is unknown'"
	" ELSE 'barcode ' || r.barcode || ' repeats line ' || r.line ||"
	" CASE WHEN r.sold_line IS NOT NULL THEN ', where it is sold to order ' || r.o1 ELSE '' END END"
	" FROM r LEFT JOIN d ON d.barcode = r.barcode"
	" UNION ALL"
	" SELECT $1::int8, 2, g.line, CASE WHEN g.order_state = 1 THEN 'order_id ' || g.o1 || ' is not in ' || $2::text"
	" WHEN g.order_state = 2 THEN 'order_id ' || g.o1 || ' is rejected in ' || $2::text"
	" ELSE 'barcode ' || g.barcode || ' is already sold to order ' || g.stored_order END"
	" FROM vb g WHERE (g.o1 IS NULL OR g.o1 = g.o2)"
	" AND (NOT g.known OR (g.o1 IS NOT NULL AND g.stored_order IS NOT NULL AND g.stored_order <> g.o1))",
	2,
};

/* The stock's unused barcodes that the file sells (the barcode, its order)
 * go into vs. The row lock makes the UPDATE check again that the barcode
 * is unused: an issue may have sold it since vb was made, and then it is
 * not in vs (vouchers_sql_apply_barcodes_lost). */
#define SELLABLE " g.stored AND g.stored_order IS NULL AND g.o1 IS NOT NULL AND g.o1 = g.o2 AND g.known"

const db_stmt vouchers_sql_apply_barcodes_sell = {
	"vouchers_apply_barcodes_sell",
	"WITH up AS (UPDATE voucher_barcodes b SET order_id = g.o1, pos = ($1::int8 << 32) + g.line FROM vb g"
	" WHERE b.barcode = g.barcode AND" SELLABLE " AND b.order_id IS NULL RETURNING b.barcode, b.order_id)"
	" INSERT INTO vs (barcode, order_id) SELECT barcode, order_id FROM up",
	1,
};

/* The barcodes to sell that an issue sold while this import applied (a
 * statement of its own, whose snapshot sees that issue's commit): each
 * winning row is rejected, and vb records the new owner, so the barcode
 * counts neither as sold nor as unchanged. */
const db_stmt vouchers_sql_apply_barcodes_lost = {
	"vouchers_apply_barcodes_lost",
	"WITH l AS (UPDATE vb g SET stored_order = b.order_id FROM voucher_barcodes b"
	" WHERE b.barcode = g.barcode AND" SELLABLE " AND b.order_id IS DISTINCT FROM g.o1"
	" AND NOT EXISTS (SELECT 1 FROM vs WHERE vs.barcode = g.barcode) RETURNING g.line, g.barcode, b.order_id)"
	" INSERT INTO voucher_import_rejections (import_id, file, line, reason)"
	" SELECT $1::int8, 2, line, 'barcode ' || barcode || ' was sold to order ' || order_id ||"
	" ' while this import applied' FROM l",
	1,
};

/* New barcodes: added, sold or unused. */
#define INSERTED " NOT g.stored AND (g.o1 IS NULL OR g.o1 = g.o2) AND g.known"

const db_stmt vouchers_sql_apply_barcodes_insert = {
	"vouchers_apply_barcodes_insert",
	"WITH ins AS (INSERT INTO voucher_barcodes (barcode, order_id, pos)"
	" SELECT barcode, o1, ($1::int8 << 32) + line FROM vb g WHERE" INSERTED " ORDER BY barcode RETURNING order_id)"
	" SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM ins WHERE order_id IS NULL),"
	" (SELECT count(*) FROM vb g WHERE g.stored AND (g.o1 IS NULL OR g.o1 = g.o2) AND g.known"
	" AND (g.o1 IS NULL OR g.stored_order IS NULL OR g.stored_order = g.o1))",
	1,
};

const db_stmt vouchers_sql_apply_without_barcodes = {
	"vouchers_apply_without_barcodes",
	"INSERT INTO voucher_import_rejections (import_id, file, line, reason)"
	" SELECT $1::int8, 1, v.line, 'order_id ' || v.order_id || ' has no barcodes: left out of the vouchers'"
	" FROM vo v WHERE v.line = v.first AND (v.stored IS NULL OR v.stored = v.customer_id)"
	" AND NOT EXISTS (SELECT 1 FROM voucher_barcodes b WHERE b.order_id = v.order_id)",
	1,
};

/* The customers' tickets: what the file sold from the stock (vs) and its
 * new sold barcodes, one upsert per customer in the order of the customer
 * ids, compared as voucher_issue_batch (0009) compares them (text in the
 * database's default collation), which also takes the customers' rows in
 * that order: the two wait for each other, they cannot deadlock. */
const db_stmt vouchers_sql_apply_tickets = {
	"vouchers_apply_tickets",
	"INSERT INTO voucher_customers AS vc (customer_id, customer_key, tickets)"
	" SELECT o.customer_id, voucher_sort_key(o.customer_id), count(*)"
	" FROM (SELECT order_id FROM vs UNION ALL SELECT g.o1 FROM vb g WHERE" INSERTED " AND g.o1 IS NOT NULL) s"
	" JOIN voucher_orders o USING (order_id) GROUP BY o.customer_id ORDER BY o.customer_id COLLATE \"default\""
	" ON CONFLICT (customer_id) DO UPDATE SET tickets = vc.tickets + excluded.tickets",
	0,
};

const db_stmt vouchers_sql_apply_stock = {
	"vouchers_apply_stock",
	"UPDATE voucher_stock SET unused = unused + $1::int8, sold = sold + $2::int8 WHERE slot = 0",
	2,
};

const db_stmt vouchers_sql_apply_done = {
	"vouchers_apply_done",
	"UPDATE voucher_imports SET state = 2, applied_at = clock_timestamp(), rejections = rejections + $2::int8,"
	" orders_added = $3::int8, orders_unchanged = $4::int8, orders_rejected = $5::int8,"
	" orders_without_barcodes = $6::int8, barcodes_added = $7::int8, barcodes_sold = $8::int8,"
	" barcodes_unchanged = $9::int8, barcodes_rejected = $10::int8 WHERE id = $1::int8",
	10,
};

/* Reports. A page of vouchers is a page of orders that have a barcode (in
 * the listing index's order), then their barcodes with their positions, one
 * row each, at most a given number of rows (the last order of a result
 * that has that many may go on past it). A page token (the previous page's
 * last order) that names no order, or none of the customer's, gives no rows
 * (reports.c then refuses it). The rest of one order, after a position, is
 * read through its own index for an order longer than a page. */

#define VOUCHER_ORDER "o.customer_key, o.customer_id, o.order_key, o.order_id"
#define HAS_BARCODE " EXISTS (SELECT 1 FROM voucher_barcodes x WHERE x.order_id = o.order_id)"
#define VOUCHER_ROWS(where, limit, rows)                                                                             \
	"SELECT o.customer_id, o.order_id, b.barcode, b.pos FROM (SELECT o.order_id, o.customer_id,"                 \
	" o.customer_key, o.order_key FROM voucher_orders o WHERE " where " ORDER BY " VOUCHER_ORDER " LIMIT " limit \
	") o JOIN voucher_barcodes b ON b.order_id = o.order_id ORDER BY " VOUCHER_ORDER ", b.pos"                   \
	" LIMIT " rows

const db_stmt vouchers_sql_vouchers_first = {
	"vouchers_vouchers_first",
	VOUCHER_ROWS(HAS_BARCODE, "$1::int8", "$2::int8"),
	2,
};

const db_stmt vouchers_sql_vouchers_after = {
	"vouchers_vouchers_after",
	VOUCHER_ROWS("(" VOUCHER_ORDER ") > (SELECT p.customer_key, p.customer_id, p.order_key, p.order_id"
		     " FROM voucher_orders p WHERE p.order_id = $1) AND" HAS_BARCODE,
		     "$2::int8", "$3::int8"),
	3,
};

const db_stmt vouchers_sql_vouchers_customer = {
	"vouchers_vouchers_customer",
	VOUCHER_ROWS("o.customer_key = voucher_sort_key($1) AND o.customer_id = $1 AND ($2 = ''"
		     " OR ((o.order_key, o.order_id) > (voucher_sort_key($2), $2) AND EXISTS (SELECT 1"
		     " FROM voucher_orders p WHERE p.order_id = $2 AND p.customer_id = $1))) AND" HAS_BARCODE,
		     "$3::int8", "$4::int8"),
	4,
};

/* The barcodes of order $1 after position $2 (of customer $3 when not
 * empty), at most $4. */
const db_stmt vouchers_sql_voucher_rest = {
	"vouchers_voucher_rest",
	"SELECT o.customer_id, o.order_id, b.barcode, b.pos FROM voucher_orders o JOIN voucher_barcodes b"
	" ON b.order_id = o.order_id WHERE o.order_id = $1 AND b.pos > $2::int8 AND ($3 = '' OR o.customer_id = $3)"
	" ORDER BY b.pos LIMIT $4::int8",
	4,
};

const db_stmt vouchers_sql_order_customer = {"vouchers_order_customer",
					     "SELECT customer_id FROM voucher_orders WHERE order_id = $1", 1};

const db_stmt vouchers_sql_top = {
	"vouchers_top",
	"SELECT customer_id, tickets FROM voucher_customers WHERE tickets > 0"
	" ORDER BY tickets DESC, customer_key, customer_id LIMIT $1::int8",
	1,
};

const db_stmt vouchers_sql_stock = {"vouchers_stock",
				    "SELECT coalesce(sum(unused), 0), coalesce(sum(sold), 0) FROM voucher_stock", 0};

const db_stmt vouchers_sql_issue_one = {
	"vouchers_issue_one",
	"SELECT 1, v.r_status, v.r_order_id, v.r_available, v.r_seq, k.barcode"
	" FROM voucher_issue_publish($1, $2::int4, $3, $4, $5, $6, $7) v"
	" LEFT JOIN LATERAL unnest(v.r_barcodes) WITH ORDINALITY AS k (barcode, ord) ON true ORDER BY k.ord",
	7,
};

const db_stmt vouchers_sql_issue_batch = {
	"vouchers_issue_batch",
	"SELECT v.r_item, v.r_status, v.r_order_id, v.r_available, v.r_seq, k.barcode"
	" FROM voucher_issue_batch($1::text[], $2::int4[], $3::text[], $4, $5, $6::bytea[], $7::bytea[]) v"
	" LEFT JOIN LATERAL unnest(v.r_barcodes) WITH ORDINALITY AS k (barcode, ord) ON true"
	" ORDER BY v.r_item, k.ord",
	7,
};

const db_stmt vouchers_sql_claim_points = {"vouchers_claim_points", "SELECT voucher_claim_points_refresh()", 0};
