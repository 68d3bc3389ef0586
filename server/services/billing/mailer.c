/*
 * The dispatcher: sends the outbox's e-mails through the sender backend
 * (mail.h: SMTP with --smtp-url, else .eml files in --mail-spool).
 *
 * A round claims up to CLAIM due e-mails (FOR UPDATE SKIP LOCKED), pushing
 * their next_at ahead by --mail-lease-s, so no other dispatcher takes them
 * meanwhile, and commits. Then, one at a time, it locks the e-mail's row
 * again, checks it is still pending, still its claim (next_at as the claim
 * set it: a round that outlived its lease may find an e-mail claimed, tried
 * and put back for a later retry by another dispatcher, and must not send
 * it before that retry's time) and its debt unpaid (a payment cancels a
 * pending e-mail under the same lock), sends it, and marks it sent in the
 * same transaction. A dispatcher killed at any moment leaves its claimed
 * e-mails pending: another dispatcher sends them once the lease has
 * passed. The one window for a duplicate is an e-mail the SMTP server has
 * accepted (its reply to the end of DATA) whose "sent" had not committed
 * yet; its Message-ID, made with the bill and stored with its e-mail
 * (what GetBill reports), is the same on the resend, whichever process
 * sends it and whatever its --mail-from is.
 * The spool backend writes each e-mail to a file named after that id, so a
 * resend replaces the file.
 *
 * A failure that may pass (no server, 4xx) is retried after
 * --mail-retry-base-ms, doubling with each attempt (with jitter, at most an
 * hour); after --mail-max-attempts the e-mail is marked failed. A failure
 * of the configuration (a login refused, a spool not writable) counts
 * against no e-mail: the round stops and the lease brings them back.
 *
 * Each step with the database (the claim, an e-mail's lock, its marking
 * once the sender has answered) has --default-deadline-ms of its own, as a
 * call that names no deadline: the send in between is bounded by
 * --mail-timeout-ms, and a step that inherited its time would find it spent
 * by a slow server and leave an e-mail it had sent unmarked, to be sent again
 * after every lease.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rpcq/alloc.h>

#include "billing_service.h"
#include "log.h"
#include "mail.h"
#include "sql.h"

#define CLAIM 100
#define MAX_IMPORTS 32

struct mailer_ctx {
	mail_sender *sender; /* NULL: no backend configured, nothing is sent */
	unsigned seed;
	strbuf message;
	strbuf slip; /* the slip of the e-mail being sent */
};

rpcq_status billing_mailer_create(billing_state *st, rpcq_error *err)
{
	struct mailer_ctx *m = rpcq_calloc(1, sizeof(*m));
	if (m == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	m->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)m;
	st->mail = m;
	const rpcq_config *cfg = st->cfg;
	if ((cfg->smtp_url == NULL || cfg->smtp_url[0] == '\0') &&
	    (cfg->mail_spool == NULL || cfg->mail_spool[0] == '\0')) {
		log_warn("billing: neither --smtp-url nor --mail-spool is set: e-mails stay in the outbox");
		return RPCQ_OK;
	}
	mail_config mc = {0};
	mc.smtp_url = cfg->smtp_url;
	mc.ca_file = cfg->smtp_ca_file;
	mc.spool_dir = cfg->mail_spool;
	mc.from = cfg->mail_from;
	mc.timeout_ms = cfg->mail_timeout_ms;
	rpcq_status s = mail_sender_create(&m->sender, &mc, err);
	if (s == RPCQ_OK)
		log_info("billing: e-mails go to %s", mail_sender_describe(m->sender));
	return s;
}

void billing_mailer_destroy(billing_state *st)
{
	struct mailer_ctx *m = st->mail;
	if (m == NULL)
		return;
	mail_sender_destroy(m->sender);
	strbuf_fini(&m->message);
	strbuf_fini(&m->slip);
	rpcq_free(m);
	st->mail = NULL;
}

typedef enum outcome {
	SENT_OR_SETTLED, /* done with this e-mail */
	STOP_ROUND,	 /* the sender cannot send anything now */
} outcome;

/* A database step's deadline, from now. */
static void db_step(const billing_state *st, dbconn *db)
{
	dbconn_set_deadline(db, nng_clock() + (nng_time)st->cfg->default_deadline_ms);
}

static void note_import(int64_t *imports, int *n, int64_t id)
{
	for (int i = 0; i < *n; i++)
		if (imports[i] == id)
			return;
	if (*n < MAX_IMPORTS)
		imports[(*n)++] = id;
}

/* Sends one claimed e-mail under its row lock. */
static outcome send_one(billing_state *st, dbconn *db, const char *debt, const char *claimed, int64_t *imports,
			int *nimports)
{
	struct mailer_ctx *m = st->mail;
	rpcq_error err;
	PGresult *res = NULL;
	const char *p[] = {debt, claimed};
	outcome result = SENT_OR_SETTLED;
	if (db_begin(db, &err) != RPCQ_OK)
		return STOP_ROUND;
	if (db_exec(db, &billing_sql_mail_lock, p, &res, &err) != RPCQ_OK) {
		db_rollback(db);
		return STOP_ROUND;
	}
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "1") != 0 || PQgetvalue(res, 0, 14)[0] != 't') {
		/* Sent, failed or cancelled meanwhile, or no longer ours: our
		 * lease ran out while earlier e-mails of the round were sent, and
		 * another dispatcher claimed it, and may have tried it and
		 * scheduled its retry, which sending now would come before. */
		PQclear(res);
		db_rollback(db);
		return SENT_OR_SETTLED;
	}
	int attempts = (int)strtol(PQgetvalue(res, 0, 1), NULL, 10);
	const char *import = PQgetvalue(res, 0, 7);
	note_import(imports, nimports, strtoll(import, NULL, 10));
	const char *state = "2", *error = NULL;
	char why[sizeof(err.message) + 32];
	rpcq_status s = RPCQ_OK;
	if (PQgetvalue(res, 0, 8)[0] == 't') {
		state = "4"; /* paid before its e-mail went out */
	} else {
		char id[32];
		snprintf(id, sizeof(id), "%s", debt);
		mail_message msg = {0};
		msg.from = st->cfg->mail_from;
		msg.to_name = PQgetvalue(res, 0, 4);
		msg.to_addr = PQgetvalue(res, 0, 5);
		msg.debt_id = PQgetvalue(res, 0, 3);
		msg.id = id;
		/* The Message-ID made with the bill, which GetBill reports: a
		 * resend carries the first send's, whichever --mail-from this
		 * process has. */
		msg.message_id = PQgetvalue(res, 0, 2);
		msg.date = (int64_t)time(NULL);
		if (PQgetvalue(res, 0, 9)[0] == 't') {
			msg.body = PQgetvalue(res, 0, 6);
			msg.body_len = (size_t)PQgetlength(res, 0, 6);
		} else {
			billing_bill_source src = {strtoll(debt, NULL, 10),
						   msg.debt_id,
						   msg.to_name,
						   PQgetvalue(res, 0, 11),
						   strtoll(PQgetvalue(res, 0, 12), NULL, 10),
						   PQgetvalue(res, 0, 13)};
			boleto bo;
			m->slip.len = 0;
			if (billing_bill_render(&src, (int)strtol(PQgetvalue(res, 0, 10), NULL, 10), &bo, &m->slip,
						&err) != RPCQ_OK) {
				log_warn("billing: the e-mail of debt %s waits: %s", msg.debt_id, err.message);
				PQclear(res);
				db_rollback(db);
				return STOP_ROUND;
			}
			msg.body = m->slip.data;
			msg.body_len = m->slip.len;
		}
		char key[MAIL_KEY_MAX];
		mail_message_key(&msg, key);
		mail_envelope env = {NULL, msg.to_addr, key};
		m->message.len = 0;
		s = mail_compose(&msg, &m->message, &err);
		if (s == RPCQ_OK)
			s = mail_send(m->sender, &env, m->message.data, m->message.len, &err);
		db_step(st, db);
		if (s != RPCQ_OK) {
			snprintf(why, sizeof(why), "%s: %s", rpcq_status_name(s), err.message);
			error = why;
			if (s == RPCQ_PERMISSION_DENIED) {
				/* The configuration, not this e-mail: nothing counts. */
				log_warn("billing: the mail sender is refused (%s); e-mails wait", why);
				PQclear(res);
				db_rollback(db);
				return STOP_ROUND;
			}
			if (mail_error_is_temporary(s) && attempts + 1 < st->cfg->mail_max_attempts) {
				char delay[24];
				snprintf(delay, sizeof(delay), "%lld",
					 mail_retry_delay_ms(st->cfg->mail_retry_base_ms, attempts + 1,
							     (unsigned)rand_r(&m->seed)));
				const char *pr[] = {debt, delay, why};
				PQclear(res);
				if (db_exec(db, &billing_sql_mail_retry, pr, NULL, &err) != RPCQ_OK ||
				    db_commit(db, &err) != RPCQ_OK)
					db_rollback(db);
				/* One server down is every e-mail's: end the round. */
				return s == RPCQ_UNAVAILABLE ? STOP_ROUND : SENT_OR_SETTLED;
			}
			state = "3";
			log_warn("billing: e-mail of debt %s failed for good after %d attempt(s): %s",
				 PQgetvalue(res, 0, 3), attempts + 1, why);
		}
	}
	char import_id[24];
	snprintf(import_id, sizeof(import_id), "%s", import);
	PQclear(res);
	const char *pd[] = {debt, import_id, state, error};
	if (db_exec(db, &billing_sql_mail_done, pd, NULL, &err) != RPCQ_OK || db_commit(db, &err) != RPCQ_OK) {
		/* Sent but not marked: the lease brings it back (the duplicate
		 * window described above). */
		log_warn("billing: marking e-mail of debt %s failed: %s", debt, err.message);
		db_rollback(db);
		result = STOP_ROUND;
	}
	return result;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int billing_mail_round(billing_state *st)
{
	struct mailer_ctx *m = st->mail;
	if (m == NULL || m->sender == NULL)
		return 0;
	dbconn *db;
	rpcq_error err;
	PGresult *res = NULL;
	int more = 0;
	if (pool_acquire(server_pool(st->srv), nng_clock() + 10000, &db, &err) != RPCQ_OK)
		return 0;
	db_step(st, db);
	char limit[16], lease[16];
	snprintf(limit, sizeof(limit), "%d", CLAIM);
	snprintf(lease, sizeof(lease), "%d", st->cfg->mail_lease_s);
	const char *p[] = {limit, lease};
	if (db_exec(db, &billing_sql_claim_mail, p, &res, &err) != RPCQ_OK) {
		pool_release(server_pool(st->srv), db);
		return 0;
	}
	int n = PQntuples(res);
	int64_t imports[MAX_IMPORTS];
	int nimports = 0, done = 0;
	for (int i = 0; i < n && !atomic_load(&st->stopping); i++, done++) {
		db_step(st, db);
		if (send_one(st, db, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), imports, &nimports) == STOP_ROUND)
			break;
	}
	PQclear(res);
	/* The imports' progress, once per round, each topic's row locked in
	 * the order of their ids, as every other round locks them: two rounds
	 * that met the same imports in another order would deadlock. */
	qsort(imports, (size_t)nimports, sizeof(imports[0]), cmp_id);
	db_step(st, db);
	if (nimports > 0 && db_begin(db, &err) == RPCQ_OK) {
		rpcq_status s = RPCQ_OK;
		for (int i = 0; i < nimports && s == RPCQ_OK; i++)
			s = billing_publish_progress(db, imports[i], &err);
		if (s != RPCQ_OK || db_commit(db, &err) != RPCQ_OK)
			db_rollback(db);
	}
	pool_release(server_pool(st->srv), db);
	more = n == CLAIM && done == n;
	return more && !atomic_load(&st->stopping);
}
