/*
 * Statements of rpcq.Streams. Replay reads at most `limit` messages after
 * after_seq from the (topic, seq) primary key, and keeps only as many as fit
 * the byte budget of one reply (always the first): the running total is
 * computed by PostgreSQL, so a topic of large messages never ships more than
 * one reply's worth to rpcqd. Topic names are COLLATE "C", so a prefix is a
 * key range [prefix, prefix with its last byte incremented), which the
 * primary key serves; the handler computes the bounds.
 */
#include "sql.h"

const db_stmt streams_sql_replay = {
	"streams_replay",
	"SELECT t.last_seq, t.first_retained_seq, v.seq, v.type, v.payload,"
	" (extract(epoch FROM v.published_at) * 1000)::int8"
	" FROM stream_topics t LEFT JOIN LATERAL ("
	"  SELECT seq, type, payload, published_at FROM ("
	"   SELECT l.seq, l.type, l.payload, l.published_at,"
	"    row_number() OVER w AS rn,"
	"    sum(octet_length(l.payload) + octet_length(l.type) + octet_length(l.topic) + 48) OVER w AS run"
	"   FROM (SELECT * FROM stream_log s WHERE s.topic = t.topic AND s.seq > $2::int8"
	"         ORDER BY s.seq LIMIT $3::int4) l"
	"   WINDOW w AS (ORDER BY l.seq)) x"
	"  WHERE rn = 1 OR run <= $4::int8) v ON true"
	" WHERE t.topic = $1 ORDER BY v.seq",
	4,
};

const db_stmt streams_sql_topics = {
	"streams_topics",
	"SELECT topic, last_seq, first_retained_seq FROM stream_topics"
	" WHERE topic > $1 AND topic >= $2 AND ($3 = '' OR topic < $3)"
	" ORDER BY topic LIMIT $4::int4",
	4,
};
