-- IssueVouchers in batches (server/services/vouchers/issue.c): the issues
-- that reach one rpcqd process at the same moment are made by one
-- statement, voucher_issue_batch, in one transaction. What an issue cost
-- the database was mostly per statement, not per barcode (the round trip,
-- PL/pgSQL and executor start-up of six statements, the commit, and the
-- topic's row, which every issue updated and held to its commit); a batch
-- pays those once for all its issues.

-- n messages of one type in the caller's transaction: the topic's last_seq
-- moves by n under its row lock (held to the commit: seqs gap-free and
-- visible in order) and the messages take the seqs below it in order.
-- Returns the last seq (NULL for no messages). p_notify as for
-- stream_append (0007). server/core/stream.c's stream_append_batch calls it.
CREATE FUNCTION stream_append_batch(p_topic text, p_type text, p_payloads bytea[], p_notify boolean DEFAULT true)
	RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	m bigint := coalesce(cardinality(p_payloads), 0);
	s bigint;
BEGIN
	IF m = 0 THEN
		RETURN NULL;
	END IF;
	WITH t AS (
		INSERT INTO stream_topics AS t (topic, last_seq, first_retained_seq, updated_at)
		VALUES (p_topic, m, 1, now())
		ON CONFLICT (topic) DO UPDATE SET last_seq = t.last_seq + m, updated_at = now(), xid = pg_current_xact_id()
		RETURNING t.last_seq),
	l AS (
		INSERT INTO stream_log (topic, seq, type, payload, published_at)
		SELECT p_topic, t.last_seq - m + k.ord, p_type, k.payload, clock_timestamp()
		FROM t, unnest(p_payloads) WITH ORDINALITY AS k(payload, ord)
		RETURNING seq)
	SELECT max(l.seq) INTO s FROM l;
	IF p_notify THEN
		PERFORM pg_notify('rpcq_stream', '');
	END IF;
	RETURN s;
END
$$;

-- Issues p_customers[i] p_quantities[i] barcodes with key p_keys[i] (NULL:
-- none), for every i, and appends one VouchersIssued per issue made to
-- p_topic (type p_type; none without p_topic) without a NOTIFY, all in the
-- caller's transaction; rpcqd runs it as a statement of its own
-- (autocommit). One row per item, in order: r_item (1-based), and r_status,
-- r_order_id, r_barcodes, r_available, r_seq as voucher_issue_publish (0007)
-- answers for one issue. The keys of one batch must differ (rpcqd puts a
-- key's second call in the next batch, where it is replayed).
--
-- The keys are stored first, in key order (two batches with keys in common
-- wait for each other instead of deadlocking): an item whose key is stored
-- already is a replay (or a mismatch), after the first call's transaction.
-- Then one claim of all the barcodes the rest ask for, from a random claim
-- point (0007) and, when too few were found, from the lowest barcode; the
-- items take them in order, each its quantity, and an item for which too
-- few are left gets nothing ('short', or 'busy' when enough are unused but
-- held by issues in flight) while the rest go on. Then the orders, the
-- barcodes' sale, the customers' tickets (one upsert per customer, in
-- customer order), the keys' results, one stock counter update, and the
-- messages last, so that the topic's row is held only from the append to
-- the commit.
--
-- p_customer_fields[i] and p_rests[i] are the packed fields of item i's
-- message around order_id (1) and barcodes (3), as voucher_issue_publish
-- takes them: the payload is byte for byte what protobuf-c packs.
CREATE FUNCTION voucher_issue_batch(p_customers text[], p_quantities integer[], p_keys text[], p_topic text,
		p_type text, p_customer_fields bytea[], p_rests bytea[])
	RETURNS TABLE (r_item integer, r_status text, r_order_id text, r_barcodes text[], r_available bigint,
		r_seq bigint)
	LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
	n integer := coalesce(cardinality(p_customers), 0);
	prev voucher_issues%ROWTYPE;
	v_new text[];            -- the keys this batch stored
	v_status text[] := array_fill(NULL::text, ARRAY[n]);
	v_order text[] := array_fill(NULL::text, ARRAY[n]);
	v_first integer[] := array_fill(NULL::integer, ARRAY[n]); -- an issued item's first in a_code
	v_want bigint := 0;      -- barcodes the items to issue ask for
	v_codes text[];          -- claimed
	v_more text[];
	v_taken integer := 0;    -- claimed barcodes handed to items so far
	a_code text[] := '{}';   -- per sold barcode: the barcode, its item, its rank in the item
	a_item integer[] := '{}';
	a_pos integer[] := '{}';
	v_issued integer := 0;
	v_sold bigint := 0;
	v_placed text[] := '{}';
	v_unused bigint;
	v_slot integer := pg_backend_pid() % 64;
	v_counted bigint;
	v_last bigint;
	v_total integer;
	q integer;
BEGIN
	WITH k AS (
		INSERT INTO voucher_issues (idempotency_key, customer_id, quantity, order_id, barcodes)
		SELECT u.k, u.c, u.q, '', '{}' FROM unnest(p_keys, p_customers, p_quantities) AS u(k, c, q)
		WHERE u.k IS NOT NULL ORDER BY u.k
		ON CONFLICT DO NOTHING RETURNING idempotency_key)
	SELECT coalesce(array_agg(k.idempotency_key), '{}') INTO v_new FROM k;

	FOR i IN 1..n LOOP
		IF p_keys[i] IS NOT NULL AND p_keys[i] <> ALL (v_new) THEN
			v_status[i] := 'replay';
		ELSE
			v_want := v_want + p_quantities[i];
		END IF;
	END LOOP;

	IF v_want > 0 THEN
		SELECT array_agg(c.barcode ORDER BY c.barcode) INTO v_codes FROM (
			SELECT b.barcode FROM voucher_barcodes b
			WHERE b.order_id IS NULL AND b.barcode >= coalesce((SELECT p.barcode FROM voucher_claim_points p
				WHERE p.pos <= random() ORDER BY p.pos DESC LIMIT 1), '')
			ORDER BY b.barcode LIMIT v_want FOR UPDATE SKIP LOCKED) c;
		v_codes := coalesce(v_codes, '{}');
		IF cardinality(v_codes) < v_want THEN
			-- Too few from the claim point on: the lowest ones not yet claimed.
			SELECT array_agg(u.barcode ORDER BY u.barcode) INTO v_more FROM (
				SELECT b.barcode FROM voucher_barcodes b
				WHERE b.order_id IS NULL AND b.barcode <> ALL (v_codes)
				ORDER BY b.barcode LIMIT v_want - cardinality(v_codes) FOR UPDATE SKIP LOCKED) u;
			v_codes := v_codes || coalesce(v_more, '{}');
		END IF;
	END IF;

	-- The items take the claimed barcodes in order, each its quantity in
	-- ascending order.
	FOR i IN 1..n LOOP
		CONTINUE WHEN v_status[i] IS NOT NULL;
		q := p_quantities[i];
		IF cardinality(v_codes) - v_taken < q THEN
			v_status[i] := 'short';
			CONTINUE;
		END IF;
		v_first[i] := cardinality(a_code) + 1;
		a_code := a_code || ARRAY(SELECT x FROM unnest(v_codes[v_taken + 1 : v_taken + q]) x ORDER BY x);
		a_item := a_item || array_fill(i, ARRAY[q]);
		a_pos := a_pos || ARRAY(SELECT generate_series(1, q));
		v_taken := v_taken + q;
		v_status[i] := 'ok';
		-- An imported order may already have this "V<n>" id: see below.
		v_order[i] := 'V' || nextval('voucher_order_seq');
		v_issued := v_issued + 1;
		v_sold := v_sold + q;
	END LOOP;

	IF v_issued > 0 THEN
		LOOP
			WITH o AS (
				INSERT INTO voucher_orders (order_id, customer_id, customer_key, order_key)
				SELECT u.o, u.c, voucher_sort_key(u.c), voucher_sort_key(u.o)
				FROM unnest(v_order, p_customers) AS u(o, c)
				WHERE u.o IS NOT NULL AND u.o <> ALL (v_placed)
				ON CONFLICT DO NOTHING RETURNING order_id)
			SELECT v_placed || coalesce(array_agg(o.order_id), '{}') INTO v_placed FROM o;
			EXIT WHEN cardinality(v_placed) = v_issued;
			-- An imported order had the id: the item takes the next one.
			FOR i IN 1..n LOOP
				IF v_order[i] IS NOT NULL AND v_order[i] <> ALL (v_placed) THEN
					v_order[i] := 'V' || nextval('voucher_order_seq');
				END IF;
			END LOOP;
		END LOOP;

		UPDATE voucher_barcodes b SET order_id = v_order[a.i], pos = a.p
			FROM unnest(a_code, a_item, a_pos) AS a(code, i, p) WHERE b.barcode = a.code;
		INSERT INTO voucher_customers AS c (customer_id, customer_key, tickets)
			SELECT u.c, voucher_sort_key(u.c), sum(u.q)
			FROM unnest(p_customers, p_quantities, v_order) AS u(c, q, o)
			WHERE u.o IS NOT NULL GROUP BY u.c ORDER BY u.c
			ON CONFLICT (customer_id) DO UPDATE SET tickets = c.tickets + excluded.tickets;
		UPDATE voucher_issues k SET order_id = v_order[u.i],
				barcodes = a_code[v_first[u.i] : v_first[u.i] + p_quantities[u.i] - 1]
			FROM unnest(p_keys) WITH ORDINALITY AS u(key, i)
			WHERE u.key IS NOT NULL AND v_order[u.i] IS NOT NULL AND k.idempotency_key = u.key;
		-- The backend's slot or the next one nobody holds (an import holds
		-- slot 0 to its commit); every slot from it on held: the lowest free
		-- one, or wait for slot 0.
		WITH s AS (
			UPDATE voucher_stock SET unused = unused - v_sold, sold = sold + v_sold
				WHERE slot = (SELECT s.slot FROM voucher_stock s WHERE s.slot >= v_slot
					ORDER BY s.slot LIMIT 1 FOR UPDATE SKIP LOCKED)
				RETURNING 1)
		SELECT count(*) INTO v_counted FROM s;
		IF v_counted = 0 THEN
			UPDATE voucher_stock SET unused = unused - v_sold, sold = sold + v_sold
				WHERE slot = coalesce((SELECT s.slot FROM voucher_stock s
					ORDER BY s.slot LIMIT 1 FOR UPDATE SKIP LOCKED), 0);
		END IF;
	END IF;

	IF 'short' = ANY (v_status) THEN
		-- Keys of items that got nothing can be retried.
		DELETE FROM voucher_issues k USING unnest(p_keys, v_status) AS u(key, st)
			WHERE u.st = 'short' AND k.idempotency_key = u.key;
		SELECT count(*) INTO v_unused FROM voucher_barcodes b WHERE b.order_id IS NULL;
	END IF;

	IF p_topic IS NOT NULL AND v_issued > 0 THEN
		v_last := stream_append_batch(p_topic, p_type, ARRAY(
			SELECT voucher_pb_bytes(1, convert_to(v_order[i], 'UTF8')) || p_customer_fields[i]
				|| (SELECT string_agg(voucher_pb_bytes(3, convert_to(x.b, 'UTF8')), ''::bytea ORDER BY x.o)
					FROM unnest(a_code[v_first[i] : v_first[i] + p_quantities[i] - 1]) WITH ORDINALITY AS x(b, o))
				|| p_rests[i]
			FROM generate_series(1, n) AS i WHERE v_order[i] IS NOT NULL ORDER BY i), false);
	END IF;

	v_total := v_issued;
	v_issued := 0;
	FOR i IN 1..n LOOP
		r_item := i;
		r_order_id := NULL;
		r_barcodes := NULL;
		r_available := NULL;
		r_seq := NULL;
		IF v_status[i] = 'ok' THEN
			v_issued := v_issued + 1;
			r_status := 'ok';
			r_order_id := v_order[i];
			r_barcodes := a_code[v_first[i] : v_first[i] + p_quantities[i] - 1];
			r_seq := v_last - v_total + v_issued;
		ELSIF v_status[i] = 'short' THEN
			r_available := v_unused;
			r_status := CASE WHEN v_unused >= p_quantities[i] THEN 'busy' ELSE 'short' END;
		ELSE
			SELECT * INTO prev FROM voucher_issues WHERE idempotency_key = p_keys[i];
			IF NOT FOUND THEN
				-- The first call got nothing and gave the key up: try again.
				r_status := 'busy';
			ELSE
				r_status := CASE WHEN prev.customer_id = p_customers[i] AND prev.quantity = p_quantities[i]
					THEN 'replayed' ELSE 'mismatch' END;
				r_order_id := prev.order_id;
				r_barcodes := prev.barcodes;
			END IF;
		END IF;
		RETURN NEXT;
	END LOOP;
END
$$;
