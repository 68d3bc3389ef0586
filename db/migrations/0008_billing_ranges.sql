-- Billing at a million debts (bench/README.md, "Billing"): the bill queue
-- as ranges of debt ids, bill counts without a write to the import's row,
-- and slips rendered from the bill instead of stored with it.

-- Debts waiting for their bill, as ranges of debt ids [lo, hi] of one
-- import, of at most --billing-batch debts each (n of them: a range may
-- have gaps, ids that no debt took). A chunk's merge writes a few of these
-- instead of a queue entry per debt; a biller claims one (FOR UPDATE SKIP
-- LOCKED) and deletes it in the transaction that writes its bills. A range
-- holds only debts of the merge that wrote it: debts are inserted by the
-- merge alone, under its advisory lock, so the ids one merge takes from the
-- sequence are greater than every id before and smaller than every id
-- after.
CREATE TABLE billing_bill_ranges (
	lo bigint PRIMARY KEY,
	hi bigint NOT NULL CHECK (hi >= lo),
	n integer NOT NULL CHECK (n > 0),
	import_id bigint NOT NULL
);
CREATE INDEX billing_bill_ranges_import ON billing_bill_ranges (import_id);

-- The entries queued before: runs of consecutive ids of one import become
-- ranges (of at most 5,000, the default batch), so no range covers a debt
-- that was already billed.
INSERT INTO billing_bill_ranges (lo, hi, n, import_id)
SELECT min(debt), max(debt), count(*), import_id
FROM (SELECT debt, import_id, island,
	     (row_number() OVER (PARTITION BY import_id, island ORDER BY debt) - 1) / 5000 AS piece
      FROM (SELECT q.debt, d.import_id, q.debt - row_number() OVER (PARTITION BY d.import_id ORDER BY q.debt) AS island
	    FROM billing_bill_queue q JOIN billing_debts d ON d.id = q.debt) runs) pieces
GROUP BY import_id, island, piece;
DROP TABLE billing_bill_queue;

-- An import's bills are its new debts less those still in its ranges
-- (GetImport counts them), so billers no longer update the import's row,
-- which every chunk of a running upload holds locked through its merge.
ALTER TABLE billing_imports DROP COLUMN bills;

-- A slip is a pure function of its bill and debt (server/services/billing/
-- slip.c): a bill now keeps the layout it was rendered with, and the slip
-- is rendered again when read (GetBill, the e-mail). Slips stored before
-- stay in stored_slip and are returned as stored. The rename is on
-- purpose: an rpcqd older than this migration reads "slip" to send an
-- e-mail, and must fail loudly rather than send a bill's e-mail without
-- its slip (README, "Upgrading").
ALTER TABLE billing_bills RENAME COLUMN slip TO stored_slip;
ALTER TABLE billing_bills ALTER COLUMN stored_slip DROP NOT NULL;
ALTER TABLE billing_bills ADD COLUMN slip_layout smallint NOT NULL DEFAULT 1;

-- The barcode's own unique index goes: a barcode is unique by construction
-- (boleto.h: the free field carries the bill number, which is the debt's
-- id, the primary key), nothing looks a bill up by it, and inserting a
-- million random 44-digit keys into it took 12.5 of the 16.3 s a COPY of
-- a million bills took (bench/README.md, "Billing").
ALTER TABLE billing_bills DROP CONSTRAINT billing_bills_barcode_key;
