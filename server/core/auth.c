/*
 * API keys in memory, their refresh, and the check of a call (auth.h).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include <rpcq/alloc.h>

#include "auth.h"
#include "call_internal.h"
#include "db/pool.h"
#include "entropy.h"
#include "log.h"

/* The one method a caller needs no key for: liveness and readiness. */
#define OPEN_METHOD "/rpcq.Health/Check"
/* With the database gone, the refresh thread retries this often. */
#define RECONNECT_MIN_MS 250
#define RECONNECT_MAX_MS 5000
/* A poll of the table on top of LISTEN, in case a notification was lost
 * with a connection. */
#define SAFETY_RELOAD_MS 30000

/* A key's rate limiter and audit-line folding. Lives as long as the auth,
 * so that its budget survives the reloads of the snapshot. */
struct limiter {
	int64_t key_id;
	auth_limiter bucket;
	_Atomic uint64_t logged_second; /* the second of the last rate-limit audit line */
	_Atomic uint64_t folded;	/* refusals since */
	struct limiter *next;
};

struct key {
	int64_t id;
	char prefix[AUTH_PREFIX_LEN + 1];
	char *name;
	char *scopes; /* space-separated, for the log */
	uint8_t hash[32];
	int64_t expires_ms; /* unix ms; 0: never */
	int revoked;
	double rate; /* calls/s (0: none) and burst, as read: for messages */
	long burst;
	uint8_t *allowed; /* per dispatch entry (entry->index) */
	struct limiter *lim;
};

struct snapshot {
	struct key *keys;
	size_t n;
	int32_t *slots; /* open addressing on the prefix: key index, -1 empty */
	uint32_t mask;
	int any; /* api_keys has rows */
	struct snapshot *retired_next;
};

struct auth {
	auth_mode mode;
	const dispatch *dispatch;
	char *conninfo;
	_Atomic(struct snapshot *) current;
	struct snapshot *retired; /* replaced, maybe still read; refresh thread only */
	struct limiter *limiters; /* refresh thread only (and destroy) */
	PGconn *pg;
	pthread_t thread;
	int thread_started;
	int wake[2];
	_Atomic int stopping;
	uint8_t dummy_hash[32];
};

/* Hazard pointers: one record per thread that ever checked a call, never
 * freed (a thread's record is reused by a later thread once it ends). */
struct hazard {
	_Atomic(struct snapshot *) snap;
	_Atomic int in_use;
	struct hazard *next;
};

static _Atomic(struct hazard *) hazards;
static pthread_key_t hazard_key;
static pthread_once_t hazard_once = PTHREAD_ONCE_INIT;
static _Thread_local struct hazard *my_hazard;

/* SHA-256 of a key. Nettle's: a plain struct on the stack, no allocation,
 * no lock. OpenSSL 3's EVP path cost a call at one caller 8% of its
 * throughput in bench/run-auth.sh (provider lookups, a context allocated
 * per digest), where the hash itself is a fraction of a microsecond. */
static void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

static void hazard_release_thread(void *arg)
{
	struct hazard *h = arg;
	atomic_store(&h->snap, NULL);
	atomic_store(&h->in_use, 0);
}

static void hazard_init(void)
{
	pthread_key_create(&hazard_key, hazard_release_thread);
}

static struct hazard *hazard_mine(void)
{
	if (my_hazard)
		return my_hazard;
	pthread_once(&hazard_once, hazard_init);
	struct hazard *h;
	for (h = atomic_load(&hazards); h; h = h->next) {
		int free_ = 0;
		if (atomic_compare_exchange_strong(&h->in_use, &free_, 1))
			break;
	}
	if (h == NULL) {
		h = rpcq_calloc(1, sizeof(*h));
		if (h == NULL)
			return NULL;
		atomic_store(&h->in_use, 1);
		struct hazard *head = atomic_load(&hazards);
		do
			h->next = head;
		while (!atomic_compare_exchange_weak(&hazards, &head, h));
	}
	pthread_setspecific(hazard_key, h);
	my_hazard = h;
	return h;
}

/* The current snapshot, protected from being freed until hazard_drop. */
static struct snapshot *snapshot_hold(auth *a, struct hazard *h)
{
	struct snapshot *s = atomic_load(&a->current);
	for (;;) {
		atomic_store(&h->snap, s);
		struct snapshot *again = atomic_load(&a->current);
		if (again == s)
			return s;
		s = again;
	}
}

static void hazard_drop(struct hazard *h)
{
	atomic_store(&h->snap, NULL);
}

static int snapshot_held(const struct snapshot *s)
{
	for (struct hazard *h = atomic_load(&hazards); h; h = h->next)
		if (atomic_load(&h->snap) == s)
			return 1;
	return 0;
}

static void snapshot_free(struct snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		rpcq_free(s->keys[i].name);
		rpcq_free(s->keys[i].scopes);
		rpcq_free(s->keys[i].allowed);
	}
	rpcq_free(s->keys);
	rpcq_free(s->slots);
	rpcq_free(s);
}

/* Frees the retired snapshots no reader holds; refresh thread. */
static void retired_collect(auth *a)
{
	struct snapshot **pp = &a->retired;
	while (*pp) {
		struct snapshot *s = *pp;
		if (snapshot_held(s)) {
			pp = &s->retired_next;
			continue;
		}
		*pp = s->retired_next;
		snapshot_free(s);
	}
}

int auth_parse_mode(const char *s, auth_mode *out)
{
	if (strcmp(s, "auto") == 0)
		*out = AUTH_AUTO;
	else if (strcmp(s, "on") == 0)
		*out = AUTH_ON;
	else if (strcmp(s, "off") == 0)
		*out = AUTH_OFF;
	else
		return -1;
	return 0;
}

static int64_t now_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct key *snapshot_find(const struct snapshot *s, const char *prefix)
{
	if (s->slots == NULL)
		return NULL;
	uint32_t h = auth_prefix_value(prefix) * 2654435761u;
	for (uint32_t i = h & s->mask;; i = (i + 1) & s->mask) {
		int32_t k = s->slots[i];
		if (k < 0)
			return NULL;
		if (memcmp(s->keys[k].prefix, prefix, AUTH_PREFIX_LEN) == 0)
			return &s->keys[k];
	}
}

static struct limiter *limiter_for(auth *a, int64_t id, double rate, long burst)
{
	if (!(rate > 0))
		return NULL;
	struct limiter *l;
	for (l = a->limiters; l; l = l->next)
		if (l->key_id == id)
			break;
	if (l == NULL) {
		l = rpcq_calloc(1, sizeof(*l));
		if (l == NULL)
			return NULL;
		l->key_id = id;
		l->next = a->limiters;
		a->limiters = l;
	}
	auth_limiter_set(&l->bucket, rate, burst);
	return l;
}

/* Reads every key into a new snapshot; NULL (logged) on failure. */
static struct snapshot *snapshot_load(auth *a)
{
	PGresult *res = PQexec(a->pg, "SELECT id, name, prefix, hash, array_to_string(scopes, ' '),"
				      " rate_per_s, burst, coalesce((extract(epoch FROM expires_at) * 1000)::int8, 0),"
				      " revoked_at IS NOT NULL FROM api_keys ORDER BY id");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		char line[512];
		pool_message_line(line, sizeof(line), PQerrorMessage(a->pg));
		log_warn("auth: cannot read the API keys: %s", line);
		PQclear(res);
		return NULL;
	}
	size_t nentries = 0;
	const dispatch_entry *entries = dispatch_entries(a->dispatch, &nentries);
	int n = PQntuples(res);
	struct snapshot *s = rpcq_calloc(1, sizeof(*s));
	if (s == NULL)
		goto oom;
	s->any = n > 0;
	s->keys = rpcq_calloc(n ? (size_t)n : 1, sizeof(*s->keys));
	uint32_t cap = 16;
	while (cap < 2u * (uint32_t)n)
		cap *= 2;
	s->slots = rpcq_alloc(cap * sizeof(*s->slots));
	if (s->keys == NULL || s->slots == NULL)
		goto oom;
	s->mask = cap - 1;
	memset(s->slots, 0xff, cap * sizeof(*s->slots));
	for (int i = 0; i < n; i++) {
		struct key *k = &s->keys[s->n];
		const char *prefix = PQgetvalue(res, i, 2);
		size_t hlen = 0;
		unsigned char *hash = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &hlen);
		if (hash == NULL)
			goto oom;
		if (strlen(prefix) != AUTH_PREFIX_LEN || hlen != sizeof(k->hash)) {
			PQfreemem(hash);
			continue; /* the table's checks keep this from happening */
		}
		memcpy(k->hash, hash, sizeof(k->hash));
		PQfreemem(hash);
		k->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		memcpy(k->prefix, prefix, AUTH_PREFIX_LEN + 1);
		k->name = rpcq_strdup(PQgetvalue(res, i, 1));
		k->scopes = rpcq_strdup(PQgetvalue(res, i, 4));
		k->allowed = rpcq_calloc(nentries ? nentries : 1, 1);
		s->n++;
		if (k->name == NULL || k->scopes == NULL || k->allowed == NULL)
			goto oom;
		k->expires_ms = strtoll(PQgetvalue(res, i, 7), NULL, 10);
		k->revoked = PQgetvalue(res, i, 8)[0] == 't';
		/* Scopes compiled against this server's methods: one byte per method. */
		char *scopes = rpcq_strdup(k->scopes);
		if (scopes == NULL)
			goto oom;
		char *save = NULL;
		for (char *sc = strtok_r(scopes, " ", &save); sc; sc = strtok_r(NULL, " ", &save)) {
			char why[256];
			if (auth_scope_valid(sc, why, sizeof(why)) != 0) {
				log_warn("auth: key %s (rpcq_%s): %s; ignored", k->name, k->prefix, why);
				continue;
			}
			for (size_t m = 0; m < nentries; m++)
				k->allowed[m] |= (uint8_t)auth_scope_matches(sc, entries[m].full_name, entries[m].read);
		}
		rpcq_free(scopes);
		k->rate = strtod(PQgetvalue(res, i, 5), NULL);
		k->burst = strtol(PQgetvalue(res, i, 6), NULL, 10);
		k->lim = limiter_for(a, k->id, k->rate, k->burst);
		uint32_t h = auth_prefix_value(k->prefix) * 2654435761u;
		uint32_t slot = h & s->mask;
		while (s->slots[slot] >= 0)
			slot = (slot + 1) & s->mask;
		s->slots[slot] = (int32_t)(s->n - 1);
	}
	PQclear(res);
	return s;
oom:
	log_error("auth: out of memory reading the API keys");
	PQclear(res);
	snapshot_free(s);
	return NULL;
}

static const struct key *key_by_id(const struct snapshot *s, int64_t id)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->keys[i].id == id)
			return &s->keys[i];
	return NULL;
}

static const char *key_state(const struct key *k, int64_t now)
{
	if (k->revoked)
		return "revoked";
	if (k->expires_ms && k->expires_ms <= now)
		return "expired";
	return "active";
}

/* Logs what changed between two snapshots: the audit trail of every process. */
static void log_changes(const auth *a, const struct snapshot *old, const struct snapshot *s)
{
	int64_t now = now_unix_ms();
	size_t active = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct key *k = &s->keys[i];
		const struct key *o = key_by_id(old, k->id);
		const char *st = key_state(k, now);
		active += strcmp(st, "active") == 0;
		if (old == NULL)
			continue;
		if (o == NULL)
			log_info("auth: key %s (rpcq_%s) added: %s, scopes %s", k->name, k->prefix, st, k->scopes);
		else if (strcmp(key_state(o, now), st) != 0 || strcmp(o->scopes, k->scopes) != 0)
			log_info("auth: key %s (rpcq_%s) changed: %s, scopes %s", k->name, k->prefix, st, k->scopes);
	}
	for (size_t i = 0; old && i < old->n; i++)
		if (key_by_id(s, old->keys[i].id) == NULL)
			log_info("auth: key %s (rpcq_%s) deleted", old->keys[i].name, old->keys[i].prefix);
	int was = old && (a->mode == AUTH_ON || old->any);
	int is = a->mode == AUTH_ON || s->any;
	if (old == NULL || was != is)
		log_info("auth: %s (--auth %s; %zu API keys, %zu active)",
			 is ? "on: every call but /rpcq.Health/Check needs an API key" : "off until a key is created",
			 a->mode == AUTH_ON ? "on" : "auto", s->n, active);
	if (old == NULL && is && active == 0)
		log_warn("auth: no active API key: create one with `rpcqd keys create NAME --scope ...`");
}

/* Replaces the snapshot with a fresh read; refresh thread (or create). */
static int reload(auth *a)
{
	struct snapshot *s = snapshot_load(a);
	if (s == NULL)
		return -1;
	struct snapshot *old = atomic_exchange(&a->current, s);
	log_changes(a, old, s);
	if (old) {
		old->retired_next = a->retired;
		a->retired = old;
	}
	retired_collect(a);
	return 0;
}

static int db_open(auth *a)
{
	const char *const keys[] = {"fallback_application_name", "connect_timeout", "dbname", NULL};
	const char *const vals[] = {"rpcqd-auth", "5", a->conninfo, NULL};
	a->pg = PQconnectdbParams(keys, vals, 1);
	PGresult *res = NULL;
	if (PQstatus(a->pg) == CONNECTION_OK)
		res = PQexec(a->pg, "LISTEN rpcq_api_keys");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		PQfinish(a->pg);
		a->pg = NULL;
		return -1;
	}
	PQclear(res);
	return 0;
}

static void *refresh_main(void *arg)
{
	auth *a = arg;
	int backoff = 0;
	int outage_logged = 0;
	nng_time next_reload = nng_clock() + SAFETY_RELOAD_MS;
	while (!atomic_load(&a->stopping)) {
		if (a->pg == NULL) {
			if (db_open(a) != 0 || reload(a) != 0) {
				if (!outage_logged)
					log_warn("auth: lost the database; keeping the keys read last, retrying");
				outage_logged = 1;
				PQfinish(a->pg);
				a->pg = NULL;
				backoff = backoff ? (backoff * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : backoff * 2)
						  : RECONNECT_MIN_MS;
				struct pollfd w = {.fd = a->wake[0], .events = POLLIN};
				poll(&w, 1, backoff);
				continue;
			}
			if (outage_logged)
				log_info("auth: connected to the database again; keys reread");
			outage_logged = 0;
			backoff = 0;
		}
		nng_time now = nng_clock();
		int timeout = a->retired ? 10 : (int)(next_reload > now ? next_reload - now : 0);
		struct pollfd pfd[2] = {{.fd = a->wake[0], .events = POLLIN},
					{.fd = PQsocket(a->pg), .events = POLLIN}};
		int r = poll(pfd, 2, timeout);
		if (r < 0 && errno != EINTR)
			break;
		int changed = 0;
		if (r > 0 && pfd[1].revents) {
			if (!PQconsumeInput(a->pg)) {
				PQfinish(a->pg);
				a->pg = NULL;
				continue;
			}
			PGnotify *n;
			while ((n = PQnotifies(a->pg)) != NULL) {
				changed = 1;
				PQfreemem(n);
			}
		}
		if (changed || nng_clock() >= next_reload) {
			next_reload = nng_clock() + SAFETY_RELOAD_MS;
			if (reload(a) != 0) {
				PQfinish(a->pg);
				a->pg = NULL;
			}
		}
		retired_collect(a);
	}
	return NULL;
}

rpcq_status auth_create(auth **out, const rpcq_config *cfg, const dispatch *d, rpcq_error *err)
{
	*out = NULL;
	auth_mode mode;
	if (auth_parse_mode(cfg->auth, &mode) != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "--auth must be auto, on or off, not \"%s\"",
				      cfg->auth);
	if (mode == AUTH_OFF) {
		log_warn("auth: off (--auth off): anyone who reaches a listener may call every method");
		return RPCQ_OK;
	}
	auth *a = rpcq_calloc(1, sizeof(*a));
	if (a == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	a->mode = mode;
	a->dispatch = d;
	a->wake[0] = a->wake[1] = -1;
	a->conninfo = rpcq_strdup(cfg->database);
	if (a->conninfo == NULL || pipe(a->wake) != 0) {
		auth_destroy(a);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot set up the key refresh: %s",
				      strerror(errno));
	}
	if (entropy_bytes(a->dummy_hash, sizeof(a->dummy_hash)) != 0)
		memset(a->dummy_hash, 0x5a, sizeof(a->dummy_hash));
	if (db_open(a) != 0 || reload(a) != 0) {
		auth_destroy(a);
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "cannot read the API keys from the database");
	}
	if (pthread_create(&a->thread, NULL, refresh_main, a) != 0) {
		auth_destroy(a);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot start the key refresh thread");
	}
	a->thread_started = 1;
	*out = a;
	return RPCQ_OK;
}

void auth_destroy(auth *a)
{
	if (a == NULL)
		return;
	atomic_store(&a->stopping, 1);
	if (a->thread_started) {
		ssize_t w = write(a->wake[1], "x", 1);
		(void)w;
		pthread_join(a->thread, NULL);
	}
	if (a->pg)
		PQfinish(a->pg);
	for (int i = 0; i < 2; i++)
		if (a->wake[i] >= 0)
			close(a->wake[i]);
	snapshot_free(atomic_load(&a->current));
	while (a->retired) {
		struct snapshot *s = a->retired;
		a->retired = s->retired_next;
		snapshot_free(s);
	}
	while (a->limiters) {
		struct limiter *l = a->limiters;
		a->limiters = l->next;
		rpcq_free(l);
	}
	rpcq_free(a->conninfo);
	rpcq_free(a);
}

static void refuse(auth_verdict *v, rpcq_status st, const char *reason, const char *message)
{
	v->status = st;
	v->reason = reason;
	snprintf(v->message, sizeof(v->message), "%s", message);
}

/* A rate-limit refusal: logged at most once a second per key, with the
 * number of those not logged since. */
static void fold(struct limiter *l, uint64_t now_ns, auth_verdict *v)
{
	uint64_t second = now_ns / 1000000000u;
	uint64_t last = atomic_load_explicit(&l->logged_second, memory_order_relaxed);
	if (last != second && atomic_compare_exchange_strong(&l->logged_second, &last, second)) {
		v->folded = atomic_exchange(&l->folded, 0);
		return;
	}
	atomic_fetch_add_explicit(&l->folded, 1, memory_order_relaxed);
	v->quiet = 1;
}

void auth_check(auth *a, const char *method, const dispatch_entry *e, const char *authorization, int charge,
		auth_verdict *v)
{
	v->status = RPCQ_OK;
	v->message[0] = '\0';
	v->reason = "";
	v->prefix[0] = '\0';
	v->retry_after_ms = 0;
	v->quiet = 0;
	v->folded = 0;
	if (a == NULL || strcmp(method, OPEN_METHOD) == 0)
		return;
	struct hazard *h = hazard_mine();
	if (h == NULL) {
		refuse(v, RPCQ_UNAVAILABLE, "out of memory", "out of memory checking the API key");
		return;
	}
	const struct snapshot *s = snapshot_hold(a, h);
	if (a->mode == AUTH_AUTO && !s->any)
		goto out;
	const char *key = NULL;
	switch (auth_parse_bearer(authorization, v->prefix, &key)) {
	case AUTH_PARSE_MISSING:
		refuse(v, RPCQ_UNAUTHENTICATED, "no key", "this call needs an API key (authorization: Bearer <key>)");
		goto out;
	case AUTH_PARSE_MALFORMED:
		v->prefix[0] = '\0';
		refuse(v, RPCQ_UNAUTHENTICATED, "malformed authorization",
		       "authorization is not \"Bearer rpcq_<prefix>_<secret>\"");
		goto out;
	case AUTH_PARSE_OK:
		break;
	}
	/* The same work whether the prefix is known or not: hash, compare. */
	const struct key *k = snapshot_find(s, v->prefix);
	uint8_t md[SHA256_DIGEST_SIZE];
	sha256(key, AUTH_KEY_LEN, md);
	int same = memeql_sec(md, k ? k->hash : a->dummy_hash, sizeof(md));
	int64_t now = now_unix_ms();
	const char *reason = k == NULL				       ? "unknown key"
			     : !same				       ? "wrong secret"
			     : k->revoked			       ? "revoked"
			     : (k->expires_ms && k->expires_ms <= now) ? "expired"
								       : NULL;
	if (reason) {
		refuse(v, RPCQ_UNAUTHENTICATED, reason, "the API key is not valid");
		goto out;
	}
	if (e == NULL)
		goto out; /* no such method: the caller hears UNIMPLEMENTED */
	if (!k->allowed[e->index]) {
		v->status = RPCQ_PERMISSION_DENIED;
		v->reason = "scope";
		snprintf(v->message, sizeof(v->message), "this API key's scopes do not cover %.150s", e->full_name);
		goto out;
	}
	if (k->lim && charge) {
		uint64_t now_ns = call_clock_ns(), retry_ns = 0;
		if (!auth_limiter_take(&k->lim->bucket, now_ns, &retry_ns)) {
			v->status = RPCQ_RESOURCE_EXHAUSTED;
			v->reason = "rate limit";
			v->retry_after_ms = (retry_ns + 999999) / 1000000;
			snprintf(v->message, sizeof(v->message),
				 "this API key's rate limit (%g calls/s, bursts of %ld) is reached; retry in %llu ms",
				 k->rate, k->burst > 0 ? k->burst : (long)ceil(k->rate),
				 (unsigned long long)v->retry_after_ms);
			fold(k->lim, now_ns, v);
		}
	}
out:
	hazard_drop(h);
}

static void base64url(const uint8_t *in, size_t n, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = alphabet[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = alphabet[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

int auth_key_generate(char key[AUTH_KEY_LEN + 1], char prefix[AUTH_PREFIX_LEN + 1], uint8_t hash[32])
{
	uint8_t rnd[4 + 32];
	if (entropy_bytes(rnd, sizeof(rnd)) != 0)
		return -1;
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 4; i++) {
		prefix[2 * i] = hex[rnd[i] >> 4];
		prefix[2 * i + 1] = hex[rnd[i] & 15];
	}
	prefix[AUTH_PREFIX_LEN] = '\0';
	memcpy(key, "rpcq_", 5);
	memcpy(key + 5, prefix, AUTH_PREFIX_LEN);
	key[5 + AUTH_PREFIX_LEN] = '_';
	base64url(rnd + 4, 32, key + 5 + AUTH_PREFIX_LEN + 1);
	explicit_bzero(rnd, sizeof(rnd));
	sha256(key, AUTH_KEY_LEN, hash);
	return 0;
}
