-- pgbench: the bare SQL of one IssueVouchers (bench/run-vouchers.sh), the
-- statements rpcqd's issue.c sends, one round trip each: BEGIN, the
-- migration's voucher_issue() (claim with FOR UPDATE SKIP LOCKED, order,
-- sale, tickets, stock), the stream append of server/core/stream.c
-- (stmt_append: topic row lock, log row, pg_notify) with a 48-byte payload
-- (a VouchersIssued of 2 barcodes is that size), COMMIT. Run with
-- -M prepared (rpcqd prepares its statements) and
--   -D quantity=2 -D customers=N   (customers 1..N at random; N=1: one customer)
\set c random(1, :customers)
BEGIN;
SELECT * FROM voucher_issue(:c, :quantity, NULL);
WITH t AS ( INSERT INTO stream_topics AS s (topic, last_seq, first_retained_seq, updated_at) VALUES ('vouchers.issued', 1, 1, now()) ON CONFLICT (topic) DO UPDATE SET last_seq = s.last_seq + 1, updated_at = now(), xid = pg_current_xact_id() RETURNING s.last_seq), l AS ( INSERT INTO stream_log (topic, seq, type, payload, published_at) SELECT 'vouchers.issued', t.last_seq, 'rpcq.vouchers.VouchersIssued', '\x0a05563132333412063132333435361a0b31303030303030303030301a0b313030303030303030303128e8d7b5e2b433'::bytea, clock_timestamp() FROM t RETURNING seq) SELECT l.seq, pg_notify('rpcq_stream', '') FROM l;
COMMIT;
