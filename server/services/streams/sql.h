/* Statements of rpcq.Streams (sql.c). */
#ifndef RPCQ_STREAMS_SQL_H
#define RPCQ_STREAMS_SQL_H

#include "db/db.h"

/* $1 topic, $2 after_seq, $3 limit, $4 byte budget. Binary results, one row
 * per message in seq order (or one row of NULL message columns when none):
 * last_seq, first_retained_seq, seq, type, payload, published_at_ms.
 * No row: the topic does not exist. */
extern const db_stmt streams_sql_replay;

/* $1 lower bound (exclusive, "" for none), $2 prefix, $3 upper bound
 * (exclusive, "" for none), $4 limit. Rows: topic, last_seq,
 * first_retained_seq, in name order. */
extern const db_stmt streams_sql_topics;

#endif
