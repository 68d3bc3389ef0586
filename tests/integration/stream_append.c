/* Appending stream messages from tests (stream_append.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db/db.h"
#include "rpcq/health.pb-c.h"
#include "stream.h"
#include "stream_append.h"

uint64_t test_stream_append(pool *db, const char *topic, const char *tag, int n, int commit)
{
	dbconn *c;
	rpcq_error err;
	if (pool_acquire(db, 0, &c, &err) != RPCQ_OK)
		fail_msg("pool_acquire: %s", err.message);
	dbconn_set_deadline(c, nng_clock() + 20000);
	if (db_begin(c, &err) != RPCQ_OK)
		fail_msg("begin: %s", err.message);
	uint64_t seq = 0;
	for (int i = 0; i < n; i++) {
		char text[4096];
		int len = snprintf(text, sizeof(text), "%s-%d", tag, i);
		if (len < 0 || (size_t)len >= sizeof(text))
			fail_msg("test_stream_append: tag of %zu bytes is too long", strlen(tag));
		Rpcq__EchoMessage m = RPCQ__ECHO_MESSAGE__INIT;
		m.payload.data = (uint8_t *)text;
		m.payload.len = (size_t)len;
		if (stream_append(c, topic, &m.base, &seq, &err) != RPCQ_OK)
			fail_msg("stream_append %s: %s", topic, err.message);
	}
	if (commit) {
		if (db_commit(c, &err) != RPCQ_OK)
			fail_msg("commit: %s", err.message);
	} else {
		db_rollback(c);
	}
	pool_release(db, c);
	return seq;
}
