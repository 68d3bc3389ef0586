-- IssueVouchers in one statement (server/services/vouchers/issue.c): the
-- issue and its stream message in one autocommitted call of
-- voucher_issue_publish, one round trip instead of four (BEGIN, the issue,
-- the append, COMMIT); claims that start at a random point of the unused
-- stock instead of its head; a counter row that no other issue holds.

-- As 0004 defines it today, restated for databases that ran 0004 before
-- it lost STRICT: without STRICT the planner inlines the CASE into the
-- generated columns instead of calling a SQL function per row. The result
-- is the same for every input, NULL included (the CASE gives NULL for
-- NULL), so the keys already stored and the indexes over them stay valid.
CREATE OR REPLACE FUNCTION voucher_sort_key(id text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN id ~ '^[0-9]{1,40}$' THEN '0' || lpad(ltrim(id, '0'), 40, '0') ELSE '1' || id END;

-- The sort keys become plain columns that their writers fill with
-- voucher_sort_key (the import's statements in server/services/vouchers/
-- sql.c and voucher_issue_publish below): a stored generated column costs
-- every INSERT or UPDATE statement an expression built at its start (the
-- function's body parsed and planned again), 35 us of an issue's two
-- single-row writes; a key written in the statement is planned once with
-- it. The values stay what they were; NOT NULL refuses a writer that
-- forgets them (an rpcqd older than this migration importing: it fails
-- instead of storing orders the reports cannot place).
ALTER TABLE voucher_orders ALTER COLUMN customer_key DROP EXPRESSION;
ALTER TABLE voucher_orders ALTER COLUMN order_key DROP EXPRESSION;
ALTER TABLE voucher_orders ALTER COLUMN customer_key SET NOT NULL;
ALTER TABLE voucher_orders ALTER COLUMN order_key SET NOT NULL;
ALTER TABLE voucher_customers ALTER COLUMN customer_key DROP EXPRESSION;
ALTER TABLE voucher_customers ALTER COLUMN customer_key SET NOT NULL;

-- stream_append (server/core/stream.c) as a function, so that a statement
-- of a service can append in the same round trip as its change: bumps the
-- topic's last_seq under its row lock (held to the commit: seqs gap-free
-- and visible in order), inserts the message with that seq, and wakes the
-- publishers (one payload-free NOTIFY per transaction). Returns the seq.
-- stream.c's stream_append calls it; keep stream_append_batch in step.
-- p_notify false leaves the NOTIFY to the caller's process (publisher_kick
-- in server/core/publisher.h): a NOTIFY is made at the commit, under the
-- topic's row lock, and serialises with every other NOTIFY of the cluster,
-- so the hottest topic's appends are cheaper without it.
CREATE FUNCTION stream_append(p_topic text, p_type text, p_payload bytea, p_notify boolean DEFAULT true)
	RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	s bigint;
BEGIN
	WITH t AS (
		INSERT INTO stream_topics AS t (topic, last_seq, first_retained_seq, updated_at)
		VALUES (p_topic, 1, 1, now())
		ON CONFLICT (topic) DO UPDATE SET last_seq = t.last_seq + 1, updated_at = now(), xid = pg_current_xact_id()
		RETURNING t.last_seq),
	l AS (
		INSERT INTO stream_log (topic, seq, type, payload, published_at)
		SELECT p_topic, t.last_seq, p_type, p_payload, clock_timestamp() FROM t
		RETURNING seq)
	SELECT l.seq INTO s FROM l;
	IF p_notify THEN
		PERFORM pg_notify('rpcq_stream', '');
	END IF;
	RETURN s;
END
$$;

-- Where claims start: up to 256 barcodes spread evenly over the unused
-- stock (pos: the fraction of the unused barcodes below each). An issue
-- starts its claim at the point at or below a random fraction, so that
-- concurrent issues claim in different parts of the index instead of all
-- at its lowest key, where they would skip each other's locked rows and
-- walk past the index entries of every barcode sold since the last vacuum.
-- Only speed depends on the points: a claim that finds too few after its
-- start wraps around to the lowest barcode, so stale points (the stock
-- changes with every issue) never hide a barcode.
CREATE TABLE voucher_claim_points (
	pos double precision PRIMARY KEY,
	barcode text COLLATE "C" NOT NULL
);

-- Recomputes the points from the unused stock: one pass over its index.
-- FinishImport runs it after every import that changed the stock.
CREATE FUNCTION voucher_claim_points_refresh() RETURNS void
	LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	-- Two imports finishing at once: one refresh after the other.
	PERFORM pg_advisory_xact_lock(hashtext('voucher_claim_points'));
	SELECT count(*) INTO n FROM voucher_barcodes WHERE order_id IS NULL;
	DELETE FROM voucher_claim_points;
	IF n = 0 THEN
		RETURN;
	END IF;
	INSERT INTO voucher_claim_points (pos, barcode)
		SELECT min(r.k)::double precision / n, min(r.barcode)
		FROM (SELECT b.barcode, row_number() OVER (ORDER BY b.barcode) - 1 AS k
			FROM voucher_barcodes b WHERE b.order_id IS NULL) r
		GROUP BY r.k * 256 / n;
END
$$;
SELECT voucher_claim_points_refresh();

-- A protobuf length-delimited field: its tag (field number < 16, wire type
-- 2), the length as a varint (under 2^21 bytes) and the bytes.
CREATE FUNCTION voucher_pb_bytes(p_field integer, p_value bytea) RETURNS bytea
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN set_byte('\x00'::bytea, 0, p_field * 8 + 2)
		|| CASE WHEN length(p_value) < 128 THEN set_byte('\x00'::bytea, 0, length(p_value))
			WHEN length(p_value) < 16384 THEN set_byte(set_byte('\x0000'::bytea, 0,
				length(p_value) % 128 + 128), 1, length(p_value) / 128)
			ELSE set_byte(set_byte(set_byte('\x000000'::bytea, 0, length(p_value) % 128 + 128),
				1, length(p_value) / 128 % 128 + 128), 2, length(p_value) / 16384) END
		|| p_value;

-- One issue and its VouchersIssued message on p_topic (type p_type), in the
-- caller's transaction; rpcqd runs it as a statement of its own
-- (autocommit), so the issue and its message commit together, in one round
-- trip. r_status as in 0004:
--   'ok'        r_order_id and r_barcodes (ascending) assigned; r_seq is the
--               message's seq (none without p_topic);
--   'replayed'  the key's first result, nothing assigned;
--   'mismatch'  the key was first used with another customer or quantity;
--   'short'     fewer than p_quantity barcodes are unused (r_available
--               says how many): nothing assigned;
--   'busy'      enough are unused, but some are claimed by issues still in
--               flight: nothing assigned, the caller tries again.
--
-- The key is stored first: a second call with it waits for this one's
-- transaction and then answers 'replayed' (a short or busy issue deletes
-- it again, so that the key can be retried). The claim takes the lowest
-- unused barcodes at or above a random claim point with FOR UPDATE SKIP
-- LOCKED and sells them in the same statement when it found enough; if it
-- found too few, it looks again from the lowest barcode, so the whole
-- unused stock is looked at whatever the point. Then the order, the
-- customer's tickets, the stock's counts (on a voucher_stock row no other
-- transaction holds: SKIP LOCKED from the backend's slot on) and the key's
-- result in one statement, and the stream append last, so that the topic's
-- row lock, which every issue takes, is held only from the append to the
-- commit. The append makes no NOTIFY (that would be made under the lock,
-- and serialise with every NOTIFY of the cluster): rpcqd kicks its own
-- publisher after the commit, which notifies the others. Concurrent issues
-- wait for each other only on the same customer's voucher_customers row
-- (and that moment on the topic's).
--
-- The message is packed by rpcqd except for the two fields only the
-- database knows: p_customer_field is VouchersIssued's field 2 (customer_id)
-- packed, p_rest fields 4 and 5 (idempotency_key, issued_at_ms); order_id
-- (1) and barcodes (3) go in between, so the payload is byte for byte what
-- protobuf-c packs for the whole message.
--
-- Generic plans: the statements plan the same whatever the arguments, and
-- planning them on every call was an eighth of an issue's time.
CREATE FUNCTION voucher_issue_publish(p_customer text, p_quantity integer, p_key text, p_topic text,
		p_type text, p_customer_field bytea, p_rest bytea,
		OUT r_status text, OUT r_order_id text, OUT r_barcodes text[], OUT r_available bigint,
		OUT r_seq bigint)
	LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
	prev voucher_issues%ROWTYPE;
	n bigint;
	v_more text[];
	v_slot integer := pg_backend_pid() % 64;
	v_counted bigint;
BEGIN
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

	-- An imported order may already have this "V<n>" id: see below.
	r_order_id := 'V' || nextval('voucher_order_seq');
	WITH c AS MATERIALIZED (
		SELECT b.ctid AS t, b.barcode FROM voucher_barcodes b
		WHERE b.order_id IS NULL AND b.barcode >= coalesce((SELECT p.barcode FROM voucher_claim_points p
			WHERE p.pos <= random() ORDER BY p.pos DESC LIMIT 1), '')
		ORDER BY b.barcode LIMIT p_quantity FOR UPDATE SKIP LOCKED),
	u AS (
		-- By the claimed rows' ctids (a join would be planned as a hash of
		-- the whole table); pos is the barcode's rank in the issue.
		UPDATE voucher_barcodes b SET order_id = r_order_id,
			pos = (SELECT count(*) FROM c WHERE c.barcode <= b.barcode)
		WHERE b.ctid = ANY (ARRAY(SELECT c.t FROM c)) AND (SELECT count(*) FROM c) = p_quantity
		RETURNING 1)
	SELECT (SELECT array_agg(c.barcode ORDER BY c.barcode) FROM c), (SELECT count(*) FROM u)
		INTO r_barcodes, n;
	IF n < p_quantity THEN
		-- Too few from the claim point on: the lowest ones not yet claimed.
		SELECT array_agg(u.barcode ORDER BY u.barcode) INTO v_more FROM (
			SELECT b.barcode FROM voucher_barcodes b
			WHERE b.order_id IS NULL AND b.barcode <> ALL (coalesce(r_barcodes, '{}'))
			ORDER BY b.barcode LIMIT p_quantity - coalesce(cardinality(r_barcodes), 0)
			FOR UPDATE SKIP LOCKED) u;
		r_barcodes := coalesce(r_barcodes, '{}') || coalesce(v_more, '{}');
		IF cardinality(r_barcodes) < p_quantity THEN
			SELECT count(*) INTO n FROM voucher_barcodes b WHERE b.order_id IS NULL;
			r_available := n;
			r_status := CASE WHEN n >= p_quantity THEN 'busy' ELSE 'short' END;
			r_barcodes := NULL;
			r_order_id := NULL;
			IF p_key IS NOT NULL THEN
				DELETE FROM voucher_issues WHERE idempotency_key = p_key;
			END IF;
			RETURN;
		END IF;
		SELECT array_agg(x ORDER BY x) INTO r_barcodes FROM unnest(r_barcodes) x;
		UPDATE voucher_barcodes b SET order_id = r_order_id, pos = k.ord
			FROM unnest(r_barcodes) WITH ORDINALITY AS k(barcode, ord) WHERE b.barcode = k.barcode;
	END IF;

	WITH o AS (
		INSERT INTO voucher_orders (order_id, customer_id, customer_key, order_key)
			VALUES (r_order_id, p_customer, voucher_sort_key(p_customer), voucher_sort_key(r_order_id))
			ON CONFLICT DO NOTHING RETURNING 1),
	c AS (
		INSERT INTO voucher_customers AS c (customer_id, customer_key, tickets)
			VALUES (p_customer, voucher_sort_key(p_customer), p_quantity)
			ON CONFLICT (customer_id) DO UPDATE SET tickets = c.tickets + excluded.tickets),
	k AS (
		UPDATE voucher_issues SET order_id = r_order_id, barcodes = r_barcodes
			WHERE p_key IS NOT NULL AND idempotency_key = p_key),
	-- The backend's slot or the next one nobody holds (an import holds slot
	-- 0 to its commit).
	s AS (
		UPDATE voucher_stock SET unused = unused - p_quantity, sold = sold + p_quantity
			WHERE slot = (SELECT s.slot FROM voucher_stock s WHERE s.slot >= v_slot
				ORDER BY s.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING 1)
	SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM s) INTO n, v_counted;
	IF v_counted = 0 THEN
		-- Every slot from the backend's on is held: the lowest free one, or
		-- wait for slot 0.
		UPDATE voucher_stock SET unused = unused - p_quantity, sold = sold + p_quantity
			WHERE slot = coalesce((SELECT s.slot FROM voucher_stock s
				ORDER BY s.slot LIMIT 1 FOR UPDATE SKIP LOCKED), 0);
	END IF;
	WHILE n = 0 LOOP
		-- The id was an imported order's: the barcodes and the key move to
		-- the next free one.
		r_order_id := 'V' || nextval('voucher_order_seq');
		INSERT INTO voucher_orders (order_id, customer_id, customer_key, order_key)
			VALUES (r_order_id, p_customer, voucher_sort_key(p_customer), voucher_sort_key(r_order_id))
			ON CONFLICT DO NOTHING;
		IF FOUND THEN
			n := 1;
			UPDATE voucher_barcodes SET order_id = r_order_id WHERE barcode = ANY (r_barcodes);
			UPDATE voucher_issues SET order_id = r_order_id WHERE p_key IS NOT NULL AND idempotency_key = p_key;
		END IF;
	END LOOP;

	IF p_topic IS NOT NULL THEN
		r_seq := stream_append(p_topic, p_type, voucher_pb_bytes(1, convert_to(r_order_id, 'UTF8'))
			|| p_customer_field || (SELECT string_agg(voucher_pb_bytes(3, convert_to(k.b, 'UTF8')), ''::bytea
				ORDER BY k.o) FROM unnest(r_barcodes) WITH ORDINALITY AS k(b, o)) || p_rest, false);
	END IF;
	r_status := 'ok';
END
$$;

-- 0004's voucher_issue, now voucher_issue_publish without the message (for
-- callers that append it themselves, as rpcqd did before 0007).
CREATE OR REPLACE FUNCTION voucher_issue(p_customer text, p_quantity integer, p_key text,
		OUT r_status text, OUT r_order_id text, OUT r_barcodes text[], OUT r_available bigint)
	LANGUAGE sql AS $$
	SELECT i.r_status, i.r_order_id, i.r_barcodes, i.r_available
	FROM voucher_issue_publish(p_customer, p_quantity, p_key, NULL, NULL, NULL, NULL) i
$$;
