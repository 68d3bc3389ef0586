-- pgbench: the floor under bench/vouchers_issue.sql, its one round trip
-- (one autocommitted statement) with no work in it.
SELECT 1;
