-- Vouchers (server/services/vouchers): one stock of barcodes per database,
-- the orders they are sold to, the customers' ticket counts, and the
-- imports of the seller's exports that fill them.

-- The sort key of an id: integers (digit strings) first, in numeric order,
-- then any other id by its bytes. "7" and "007" share a key; the id itself
-- breaks that tie.
-- Not STRICT, so that the planner inlines it into the expressions that use it.
CREATE FUNCTION voucher_sort_key(id text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN id ~ '^[0-9]{1,40}$' THEN '0' || lpad(ltrim(id, '0'), 40, '0') ELSE '1' || id END;

-- Orders: imported ones (import_id set) and those IssueVouchers created
-- (order ids "V<n>"). The listing index serves the voucher report in its
-- order (customer, then order) and the report of one customer.
CREATE TABLE voucher_orders (
	order_id text COLLATE "C" PRIMARY KEY,
	customer_id text COLLATE "C" NOT NULL,
	customer_key text COLLATE "C" GENERATED ALWAYS AS (voucher_sort_key(customer_id)) STORED,
	order_key text COLLATE "C" GENERATED ALWAYS AS (voucher_sort_key(order_id)) STORED,
	import_id bigint,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX voucher_orders_listing ON voucher_orders (customer_key, customer_id, order_key, order_id);

-- Barcodes: sold when order_id is set, unused when it is NULL. pos orders
-- the barcodes of an order as they came: (import id << 32) + line for
-- imported ones, the rank within the issue for issued ones. Orders are
-- never deleted and every order_id written names one (the import and
-- voucher_issue check it), so no foreign key costs a lookup per row of a
-- bulk import.
CREATE TABLE voucher_barcodes (
	barcode text COLLATE "C" PRIMARY KEY,
	order_id text COLLATE "C",
	pos bigint NOT NULL
);
-- An order's barcodes, in order (the voucher reports).
CREATE INDEX voucher_barcodes_order ON voucher_barcodes (order_id, pos) WHERE order_id IS NOT NULL;
-- The unused stock, which IssueVouchers claims from, in barcode order.
CREATE INDEX voucher_barcodes_unused ON voucher_barcodes (barcode) WHERE order_id IS NULL;

-- Sold barcodes per customer, kept with every import and issue, so the top
-- N report is the first N entries of an index, not a count of the stock.
CREATE TABLE voucher_customers (
	customer_id text COLLATE "C" PRIMARY KEY,
	customer_key text COLLATE "C" GENERATED ALWAYS AS (voucher_sort_key(customer_id)) STORED,
	tickets bigint NOT NULL CHECK (tickets >= 0)
);
CREATE INDEX voucher_customers_top ON voucher_customers (tickets DESC, customer_key, customer_id);

-- Unused and sold barcode counts, split over 64 rows so that concurrent
-- issues (each moves its quantity on the row of its backend) do not queue
-- on one row: the counts are the sums.
CREATE TABLE voucher_stock (
	slot integer PRIMARY KEY,
	unused bigint NOT NULL,
	sold bigint NOT NULL
);
INSERT INTO voucher_stock SELECT s, 0, 0 FROM generate_series(0, 63) AS s;

-- The first result of each idempotency key.
CREATE TABLE voucher_issues (
	idempotency_key text COLLATE "C" PRIMARY KEY,
	customer_id text COLLATE "C" NOT NULL,
	quantity integer NOT NULL,
	order_id text COLLATE "C" NOT NULL,
	barcodes text[] NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE voucher_order_seq;

-- One issue, in the caller's transaction (which then appends the
-- VouchersIssued message and commits). r_status:
--   'ok'        r_order_id and r_barcodes assigned;
--   'replayed'  the key's first result, nothing assigned;
--   'mismatch'  the key was first used with another customer or quantity;
--   'short'     fewer than p_quantity barcodes are unused (r_available
--               says how many): nothing assigned;
--   'busy'      enough are unused, but some are claimed by issues still in
--               flight: nothing assigned, the caller rolls back and tries
--               again (those issues may yet roll back themselves).
-- Unused barcodes are claimed with FOR UPDATE SKIP LOCKED, so concurrent
-- issues take different barcodes without waiting for one another. Two calls
-- racing with one key: the second one's insert of the key waits for the
-- first transaction and then finds its row ('replayed').
CREATE FUNCTION voucher_issue(p_customer text, p_quantity integer, p_key text,
		OUT r_status text, OUT r_order_id text, OUT r_barcodes text[], OUT r_available bigint)
	LANGUAGE plpgsql AS $$
DECLARE
	prev voucher_issues%ROWTYPE;
	n bigint;
BEGIN
	IF p_key IS NOT NULL THEN
		SELECT * INTO prev FROM voucher_issues WHERE idempotency_key = p_key;
		IF FOUND THEN
			r_status := CASE WHEN prev.customer_id = p_customer AND prev.quantity = p_quantity
				THEN 'replayed' ELSE 'mismatch' END;
			r_order_id := prev.order_id;
			r_barcodes := prev.barcodes;
			RETURN;
		END IF;
	END IF;

	SELECT array_agg(u.barcode ORDER BY u.barcode) INTO r_barcodes FROM (
		SELECT b.barcode FROM voucher_barcodes b WHERE b.order_id IS NULL
		ORDER BY b.barcode LIMIT p_quantity FOR UPDATE SKIP LOCKED) u;
	IF coalesce(cardinality(r_barcodes), 0) < p_quantity THEN
		SELECT count(*) INTO n FROM voucher_barcodes b WHERE b.order_id IS NULL;
		r_available := n;
		r_status := CASE WHEN n >= p_quantity THEN 'busy' ELSE 'short' END;
		r_barcodes := NULL;
		RETURN;
	END IF;

	IF p_key IS NOT NULL THEN
		INSERT INTO voucher_issues (idempotency_key, customer_id, quantity, order_id, barcodes)
			VALUES (p_key, p_customer, p_quantity, '', '{}') ON CONFLICT DO NOTHING;
		IF NOT FOUND THEN
			SELECT * INTO prev FROM voucher_issues WHERE idempotency_key = p_key;
			r_status := CASE WHEN prev.customer_id = p_customer AND prev.quantity = p_quantity
				THEN 'replayed' ELSE 'mismatch' END;
			r_order_id := prev.order_id;
			r_barcodes := prev.barcodes;
			RETURN;
		END IF;
	END IF;

	-- An imported order may already have taken a "V<n>" id: take the next.
	LOOP
		r_order_id := 'V' || nextval('voucher_order_seq');
		INSERT INTO voucher_orders (order_id, customer_id) VALUES (r_order_id, p_customer)
			ON CONFLICT DO NOTHING;
		EXIT WHEN FOUND;
	END LOOP;
	UPDATE voucher_barcodes b SET order_id = r_order_id, pos = k.ord
		FROM unnest(r_barcodes) WITH ORDINALITY AS k(barcode, ord) WHERE b.barcode = k.barcode;
	INSERT INTO voucher_customers AS c (customer_id, tickets) VALUES (p_customer, p_quantity)
		ON CONFLICT (customer_id) DO UPDATE SET tickets = c.tickets + excluded.tickets;
	UPDATE voucher_stock SET unused = unused - p_quantity, sold = sold + p_quantity
		WHERE slot = pg_backend_pid() % 64;
	IF p_key IS NOT NULL THEN
		UPDATE voucher_issues SET order_id = r_order_id, barcodes = r_barcodes WHERE idempotency_key = p_key;
	END IF;
	r_status := 'ok';
END
$$;
-- Its statements take the same plans whatever the arguments: planning them
-- on every call was an eighth of an issue's time.
ALTER FUNCTION voucher_issue(text, integer, text) SET plan_cache_mode = force_generic_plan;

-- Imports. Unlogged: the receiving state, the staged rows and the
-- rejection reports are rebuilt by sending the files again, so they skip
-- the WAL; a crash of PostgreSQL empties them all together (an import then
-- starts over), never one without the others. What an import applied to
-- the stock above is logged like any other write.
CREATE UNLOGGED TABLE voucher_imports (
	id bigserial PRIMARY KEY,
	key text COLLATE "C" UNIQUE,
	state smallint NOT NULL DEFAULT 1,	-- ImportState: 1 receiving, 2 applied
	created_at timestamptz NOT NULL DEFAULT now(),
	applied_at timestamptz,
	rejections bigint NOT NULL DEFAULT 0,
	orders_added bigint NOT NULL DEFAULT 0,
	orders_unchanged bigint NOT NULL DEFAULT 0,
	orders_rejected bigint NOT NULL DEFAULT 0,
	orders_without_barcodes bigint NOT NULL DEFAULT 0,
	barcodes_added bigint NOT NULL DEFAULT 0,
	barcodes_sold bigint NOT NULL DEFAULT 0,
	barcodes_unchanged bigint NOT NULL DEFAULT 0,
	barcodes_rejected bigint NOT NULL DEFAULT 0
);

-- Each file of an import as received so far (server/services/common/upload.h):
-- the next offset, the line its carry starts on, the partial last record.
CREATE UNLOGGED TABLE voucher_import_files (
	import_id bigint NOT NULL REFERENCES voucher_imports ON DELETE CASCADE,
	file smallint NOT NULL,	-- File: 1 orders, 2 barcodes
	name text NOT NULL,
	received bigint NOT NULL DEFAULT 0,
	line bigint NOT NULL DEFAULT 1,
	complete boolean NOT NULL DEFAULT false,
	header_seen boolean NOT NULL DEFAULT false,
	rows bigint NOT NULL DEFAULT 0,
	rejected bigint NOT NULL DEFAULT 0,
	carry bytea NOT NULL DEFAULT '',
	PRIMARY KEY (import_id, file)
);

-- Rows of imports not yet applied, one partition per import (created by
-- StartImport, dropped when the import is applied).
CREATE TABLE voucher_stage_orders (
	import_id bigint NOT NULL,
	line bigint NOT NULL,
	order_id text COLLATE "C" NOT NULL,
	customer_id text COLLATE "C" NOT NULL
) PARTITION BY LIST (import_id);

CREATE TABLE voucher_stage_barcodes (
	import_id bigint NOT NULL,
	line bigint NOT NULL,
	barcode text COLLATE "C" NOT NULL,
	order_id text COLLATE "C"
) PARTITION BY LIST (import_id);

CREATE FUNCTION voucher_stage_create(p_import bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS voucher_stage_orders_%s'
		' PARTITION OF voucher_stage_orders FOR VALUES IN (%s)', p_import, p_import);
	EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS voucher_stage_barcodes_%s'
		' PARTITION OF voucher_stage_barcodes FOR VALUES IN (%s)', p_import, p_import);
END
$$;

CREATE FUNCTION voucher_stage_drop(p_import bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('DROP TABLE IF EXISTS voucher_stage_orders_%s', p_import);
	EXECUTE format('DROP TABLE IF EXISTS voucher_stage_barcodes_%s', p_import);
END
$$;

-- Every rejected row of an import (and every order left without barcodes),
-- with its file and line: the import's rejection report.
CREATE UNLOGGED TABLE voucher_import_rejections (
	import_id bigint NOT NULL REFERENCES voucher_imports ON DELETE CASCADE,
	file smallint NOT NULL,
	line bigint NOT NULL,
	reason text NOT NULL
);
CREATE INDEX voucher_import_rejections_report ON voucher_import_rejections (import_id, file, line);
