-- pgbench: the bare SQL of one IssueVouchers (bench/run-vouchers.sh), the
-- statement rpcqd's issue.c sends, autocommitted, one round trip:
-- voucher_issue_publish() of migration 0007 (claim from a random point with
-- FOR UPDATE SKIP LOCKED, order, sale, tickets, stock, and the stream append:
-- topic row lock, log row, pg_notify) with the packed customer_id field and
-- the packed idempotency_key/issued_at_ms fields a VouchersIssued of 2
-- barcodes has (48 bytes in all). Run with -M prepared (rpcqd prepares its
-- statements) and
--   -D quantity=2 -D customers=N   (customers 1..N at random; N=1: one customer)
\set c random(1, :customers)
SELECT v.r_status, v.r_order_id, v.r_available, v.r_seq, k.barcode FROM voucher_issue_publish(:c, :quantity, NULL, 'vouchers.issued', 'rpcq.vouchers.VouchersIssued', '\x1206313233343536'::bytea, '\x28e8d7b5e2b433'::bytea) v LEFT JOIN LATERAL unnest(v.r_barcodes) WITH ORDINALITY AS k (barcode, ord) ON true ORDER BY k.ord;
