-- pgbench: one IssueVouchers as rpcqd sent it before migration 0007, four
-- round trips: BEGIN; voucher_issue() (0007's: random claim start, free
-- counter slot); the stream append as its own statement; COMMIT. What the
-- round trips and the topic lock held across one of them cost, next to
-- bench/vouchers_issue.sql. Same -D options.
\set c random(1, :customers)
BEGIN;
SELECT * FROM voucher_issue(:c, :quantity, NULL);
SELECT stream_append('vouchers.issued', 'rpcq.vouchers.VouchersIssued', '\x0a05563132333412063132333435361a0b31303030303030303030301a0b313030303030303030303128e8d7b5e2b433'::bytea);
COMMIT;
