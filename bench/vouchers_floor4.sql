-- pgbench: the floor under bench/vouchers_issue4.sql, its four round trips
-- (BEGIN, two statements, COMMIT) with no work in them.
BEGIN;
SELECT 1;
SELECT 1;
COMMIT;
