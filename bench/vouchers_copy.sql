-- The baseline of the vouchers import benchmark (bench/run-vouchers.sh): the
-- tables a bare COPY of orders.csv and barcodes.csv goes into, with the
-- indexes of the service's voucher_orders and voucher_barcodes
-- (db/migrations/0004_vouchers.sql): the same columns, the same generated
-- sort keys, the same index definitions. The files repeat order ids and
-- barcodes, so the two primary keys are plain (non-unique) btrees here;
-- pos, which the service computes from the line, comes from a sequence.
-- Logged tables, like the stock.
DROP TABLE IF EXISTS bench_copy_orders, bench_copy_barcodes;
DROP SEQUENCE IF EXISTS bench_copy_pos;
CREATE SEQUENCE bench_copy_pos;
CREATE TABLE bench_copy_orders (
	order_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL,
	customer_key text COLLATE "C" GENERATED ALWAYS AS (voucher_sort_key(customer_id)) STORED,
	order_key text COLLATE "C" GENERATED ALWAYS AS (voucher_sort_key(order_id)) STORED,
	import_id bigint,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON bench_copy_orders (order_id);
CREATE INDEX ON bench_copy_orders (customer_key, customer_id, order_key, order_id);
CREATE TABLE bench_copy_barcodes (
	barcode text COLLATE "C" NOT NULL,
	order_id text COLLATE "C",
	pos bigint NOT NULL DEFAULT nextval('bench_copy_pos')
);
CREATE INDEX ON bench_copy_barcodes (barcode);
CREATE INDEX ON bench_copy_barcodes (order_id, pos) WHERE order_id IS NOT NULL;
CREATE INDEX ON bench_copy_barcodes (barcode) WHERE order_id IS NULL;
