/*
 * Sending binary COPY data to the database (pgcopy.h): the part of pgcopy
 * that blocks, built into rpcqd_lib.
 */
#include "db/db.h"
#include "pgcopy.h"

rpcq_status pgcopy_send(dbconn *db, strbuf *b, int force, rpcq_error *err)
{
	if (b->failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for COPY data");
	if (b->len == 0 || (!force && b->len < PGCOPY_PIECE))
		return RPCQ_OK;
	rpcq_status st = db_copy_put(db, b->data, b->len, err);
	b->len = 0;
	return st;
}

rpcq_status pgcopy_finish(dbconn *db, strbuf *b, rpcq_status st, rpcq_error *err)
{
	if (st != RPCQ_OK)
		return st;
	pgcopy_be(b, 0xffff, 2);
	if ((st = pgcopy_send(db, b, 1, err)) != RPCQ_OK)
		return st;
	return db_copy_end(db, err);
}

rpcq_status pgcopy_copy(dbconn *db, const char *sql, const strbuf *b, rpcq_error *err)
{
	static const char trailer[2] = {(char)0xff, (char)0xff};
	if (b->failed)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for COPY data");
	rpcq_status st;
	if ((st = db_copy_begin(db, sql, err)) != RPCQ_OK || (st = db_copy_put(db, b->data, b->len, err)) != RPCQ_OK ||
	    (st = db_copy_put(db, trailer, sizeof(trailer), err)) != RPCQ_OK)
		return st;
	return db_copy_end(db, err);
}
