-- Billing (server/services/billing): imports of debts files, one bill per
-- debt, one e-mail per bill through an outbox, and payments.

-- An import: one file received in chunks (server/services/common/upload.h:
-- the next offset, the line of the carried partial record, the carry) and
-- what its rows did. Logged: an upload resumes after any restart.
CREATE TABLE billing_imports (
	id bigserial PRIMARY KEY,
	key text COLLATE "C" UNIQUE,
	name text NOT NULL,
	received bigint NOT NULL DEFAULT 0,
	line bigint NOT NULL DEFAULT 1,
	complete boolean NOT NULL DEFAULT false,
	header_seen boolean NOT NULL DEFAULT false,
	carry bytea NOT NULL DEFAULT '',
	rows bigint NOT NULL DEFAULT 0,
	accepted bigint NOT NULL DEFAULT 0,
	new_debts bigint NOT NULL DEFAULT 0,
	repeated bigint NOT NULL DEFAULT 0,
	rejected bigint NOT NULL DEFAULT 0,
	-- Of the debts this import added (a repeated debt belongs to the
	-- import that brought it first): kept by the billers and dispatchers.
	bills bigint NOT NULL DEFAULT 0,
	emails_sent bigint NOT NULL DEFAULT 0,
	emails_failed bigint NOT NULL DEFAULT 0,
	emails_cancelled bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Rejected rows, with their line.
CREATE TABLE billing_rejections (
	import_id bigint NOT NULL REFERENCES billing_imports ON DELETE CASCADE,
	line bigint NOT NULL,
	reason text NOT NULL,
	PRIMARY KEY (import_id, line)
);

-- Debts, by debtId. id is the bill number that the boleto's free field
-- carries (so payment codes are unique). import_id is the import that
-- brought the debt first. The tables written a million rows at a time
-- (debts, the queue, bills, the outbox) carry no foreign keys: imports and
-- debts are never deleted and every id written comes from the row it
-- names (import.c, bills.c), so a lookup per row would buy nothing.
CREATE TABLE billing_debts (
	id bigserial PRIMARY KEY,
	debt_id text COLLATE "C" NOT NULL UNIQUE,
	name text NOT NULL,
	government_id text NOT NULL,
	email text NOT NULL,
	amount_cents bigint NOT NULL CHECK (amount_cents > 0),
	due_date date NOT NULL,
	import_id bigint NOT NULL,
	line bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
-- Debts waiting for their bill: a work queue that the billers of every
-- process claim from with FOR UPDATE SKIP LOCKED (a claimed entry is
-- deleted in the transaction that writes the bill).
CREATE TABLE billing_bill_queue (
	debt bigint PRIMARY KEY
);

-- One bill per debt (the primary key), with a unique payment code.
CREATE TABLE billing_bills (
	debt bigint PRIMARY KEY,
	barcode text COLLATE "C" NOT NULL UNIQUE,
	payment_line text NOT NULL,
	slip text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one e-mail per bill, written with the bill. A dispatcher
-- claims due ones (state 1, next_at passed) with FOR UPDATE SKIP LOCKED,
-- pushing next_at ahead by its lease, and then sends each under its row
-- lock, marking it sent in the same transaction. state is the
-- NotificationState of billing.proto: 1 pending, 2 sent, 3 failed,
-- 4 cancelled (paid first).
CREATE TABLE billing_notifications (
	debt bigint PRIMARY KEY,
	state smallint NOT NULL DEFAULT 1,
	attempts integer NOT NULL DEFAULT 0,
	next_at timestamptz NOT NULL DEFAULT now(),
	last_error text,
	message_id text NOT NULL,
	sent_at timestamptz
);
CREATE INDEX billing_notifications_due ON billing_notifications (next_at) WHERE state = 1;

CREATE TABLE billing_payments (
	debt bigint PRIMARY KEY REFERENCES billing_debts,
	paid_at timestamptz NOT NULL,
	amount_cents bigint NOT NULL CHECK (amount_cents > 0),
	payer text NOT NULL,
	recorded_at timestamptz NOT NULL DEFAULT now()
);
