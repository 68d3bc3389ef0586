-- Update streams (server/core/stream.c, server/core/publisher.c,
-- server/services/streams): the persisted log every PUB message comes from
-- and Streams/Replay serves. Topic names compare as bytes (COLLATE "C") so
-- that a prefix is a contiguous key range for Topics.

-- One row per topic. last_seq is bumped by every append under the row's lock,
-- which makes seqs gap-free and visible in order. first_retained_seq is where
-- the log starts after retention trimmed older messages (last_seq + 1 when
-- all were trimmed). xid is the transaction that last appended (or trimmed):
-- a publisher asks for the topics changed by transactions not yet finished at
-- its previous look (xid >= that snapshot's xmin), which finds every commit
-- exactly, however long the transaction ran, without scanning every topic.
CREATE TABLE stream_topics (
	topic text COLLATE "C" PRIMARY KEY,
	last_seq bigint NOT NULL CHECK (last_seq >= 1),
	first_retained_seq bigint NOT NULL DEFAULT 1 CHECK (first_retained_seq >= 1),
	updated_at timestamptz NOT NULL DEFAULT now(),
	xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
	CHECK (first_retained_seq <= last_seq + 1)
);

CREATE INDEX stream_topics_xid ON stream_topics (xid);

-- The messages. published_at is clock_timestamp() taken under the topic's
-- row lock, so it grows with seq within a topic: trimming by age deletes a
-- prefix of each topic, found through the published_at index.
CREATE TABLE stream_log (
	topic text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	type text NOT NULL,
	payload bytea NOT NULL,
	published_at timestamptz NOT NULL,
	PRIMARY KEY (topic, seq)
);

CREATE INDEX stream_log_published_at ON stream_log (published_at);
