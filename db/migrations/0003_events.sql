-- Events of the outside provider (server/services/events, server/ingest).
-- Every event ever taken from the feed while on sale online is kept here
-- with its latest values; its public id is a UUIDv5 of (base_id, event_id).
-- Every change also goes to the stream log (topic events.changed) in the
-- same transaction, which is what each process's in-memory index follows.

CREATE TABLE events (
	id uuid PRIMARY KEY,
	base_id text COLLATE "C" NOT NULL,
	event_id text COLLATE "C" NOT NULL,
	title text NOT NULL,
	starts_at timestamp NOT NULL,
	ends_at timestamp NOT NULL,
	sell_from timestamp,
	sell_to timestamp,
	min_price numeric,	-- NULL: no zone with tickets left
	max_price numeric,
	sold_out boolean NOT NULL DEFAULT false,
	seq bigint NOT NULL,	-- of the events.changed message that wrote these values
	first_seen_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (base_id, event_id)
);

-- A search answered by the database (a process whose index is loading
-- could); the in-memory index answers the others.
CREATE INDEX events_starts_at ON events (starts_at, id);

-- One row: when a fetch of the provider last started and ended, so that
-- several processes fetch once per interval between them (the fetch takes
-- an advisory lock; this says whether the interval has passed).
CREATE TABLE events_fetch_state (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	last_started_at timestamptz,
	last_finished_at timestamptz,
	last_ok_at timestamptz,
	last_error text,
	consecutive_failures integer NOT NULL DEFAULT 0
);
INSERT INTO events_fetch_state DEFAULT VALUES;
