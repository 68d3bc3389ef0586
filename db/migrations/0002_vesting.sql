-- Vesting ledgers (server/services/vesting). Ids and names compare as bytes
-- (COLLATE "C"), which is the output order the spec asks for, so the award
-- index below also serves schedules in order, page by page.

CREATE TABLE vesting_ledgers (
	id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text COLLATE "C" NOT NULL UNIQUE,
	events bigint NOT NULL DEFAULT 0,
	batches bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- An employee's name is the first one a batch gave for that employee id.
CREATE TABLE vesting_employees (
	ledger_id integer NOT NULL REFERENCES vesting_ledgers (id) ON DELETE CASCADE,
	employee_id text COLLATE "C" NOT NULL,
	name text NOT NULL,
	PRIMARY KEY (ledger_id, employee_id)
);

-- An award is an (employee id, award id) pair of one ledger. Its running
-- totals are materialized at append time so that a schedule reads one row
-- per award: days holds its distinct event days ascending, cum its total at
-- the end of each day for precision 0..6 (cum[p * n + i] for day i of n,
-- 1-based), found with width_bucket (a binary search). The CANCEL rule holds
-- when no cum element is negative.
CREATE TABLE vesting_awards (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	ledger_id integer NOT NULL,
	employee_id text COLLATE "C" NOT NULL,
	award_id text COLLATE "C" NOT NULL,
	days integer[] NOT NULL,
	cum bigint[] NOT NULL,
	UNIQUE (ledger_id, employee_id, award_id),
	FOREIGN KEY (ledger_id, employee_id) REFERENCES vesting_employees (ledger_id, employee_id) ON DELETE CASCADE
);

-- One row per event: qty in micro-shares, positive for VEST, negative for
-- CANCEL; the source of the awards' running totals, read back by award when
-- a batch touches an award again. No
-- foreign key: events are written by COPY in the transaction that creates
-- their awards, and a per-row key check would halve the COPY rate.
CREATE TABLE vesting_events (
	award bigint NOT NULL,
	day integer NOT NULL,
	qty bigint NOT NULL
);
CREATE INDEX vesting_events_award_day ON vesting_events (award, day) INCLUDE (qty);

-- Applied batches: a resent batch_id returns this row instead of applying again.
CREATE TABLE vesting_batches (
	ledger_id integer NOT NULL REFERENCES vesting_ledgers (id) ON DELETE CASCADE,
	batch_id text NOT NULL,
	events bigint NOT NULL,
	ledger_events bigint NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (ledger_id, batch_id)
);

-- Parts of a batch not yet applied (packed rpcq.vesting.Events). Removed when
-- the batch is applied or refused; parts abandoned for a day are removed by
-- the next append. Scratch data, hence UNLOGGED (no WAL for the whole file
-- going through here) and stored uncompressed (pglz on every part cost more
-- than it saved): a crash loses the staged parts of unfinished batches,
-- whose last part is then refused as incomplete and the batch is resent.
CREATE UNLOGGED TABLE vesting_parts (
	ledger text COLLATE "C" NOT NULL,
	batch_id text NOT NULL,
	part integer NOT NULL,
	events bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (ledger, batch_id, part)
);
ALTER TABLE vesting_parts ALTER COLUMN events SET STORAGE EXTERNAL;
CREATE INDEX vesting_parts_created ON vesting_parts (created_at);
