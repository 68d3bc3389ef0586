/*
 * The events service as its users see it: a real PostgreSQL, real rpcqd
 * processes fetching over HTTP from the project's provider simulator
 * (tools/provider-sim, found through $PROVIDER_SIM), and the service's
 * three faces: the RPC methods through librpcq's stubs, GET /search and the
 * events.changed stream over HTTP, and the `rpcq events` command.
 *
 * The simulator serves the three real consecutive provider responses of
 * ../shared/data/events/ in order (its file mode), the real plan-vocabulary
 * response, feeds written by the tests (prices without tickets, malformed
 * and offline events), or generated feeds; it is told at run time to fail in
 * each of its ways. Each test has a database of its own in one cluster, its
 * own simulator and its own rpcqd processes, all stopped by the per-test
 * teardown whatever happened. rpcqd runs with --provider-interval-s 0 (it
 * fetches only on Sync) except where the schedule is what is tested.
 * Nothing waits a fixed time for something to happen: every wait polls with
 * a deadline (the one fixed window is the measurement of how often two
 * processes fetch).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>

#include <rpcq/rpcq.h>

#include "harness.h"
#include "public_id.h"

#define TIMEOUT_MS 1000		/* rpcqd's --provider-timeout-ms */
#define SLOW_MS 3000		/* the simulator's slow answers: past the timeout */
#define VISIBLE_MS 1000		/* a change one process writes shows in another within this */
#define FAST_SEARCH_SECONDS 0.5 /* a search while a fetch hangs answers within this */
#define MAX_SERVERS 4
#define MAX_SIMS 2

static harness_pg pg;
static int db_counter;

/* What the current test started; its teardown stops all of it. */
static harness_server *servers[MAX_SERVERS];
static rpcq_client *clients[MAX_SERVERS * 2];
static int nclients;

struct sim {
	pid_t pid;
	char url[128];	    /* http://127.0.0.1:<port> */
	char feed_url[160]; /* url/feed */
	char log[300];
};
static struct sim *sims[MAX_SIMS];

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static json_t *parse_json(const char *what, const char *text, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);
	if (j == NULL)
		fail_msg("%s: not JSON (%s at %d:%d): \"%.*s\"", what, je.text, je.line, je.column, (int)len, text);
	return j;
}

static const char *jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static char *shared_file(const char *name)
{
	char rel[256], buf[1024];
	snprintf(rel, sizeof(rel), "data/events/%s", name);
	harness_shared_path(rel, buf, sizeof(buf));
	char *p = strdup(buf);
	assert_non_null(p);
	return p;
}

/* Writes text to a file in the cluster's directory; returns its path. */
static char *write_feed(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", pg.dir, name);
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	char *p = strdup(path);
	assert_non_null(p);
	return p;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Line i (0-based) of s, copied into buf (without its newline). */
static const char *line_of(const char *s, int i, char *buf, size_t len)
{
	for (; i > 0 && s != NULL; i--) {
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	if (s == NULL || *s == '\0')
		fail_msg("no line %d in:\n%s", i, s ? s : "");
	size_t n = strcspn(s, "\n");
	if (n >= len)
		n = len - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return buf;
}

/* ---- the provider simulator ---- */

static const char *sim_binary(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("PROVIDER_SIM");
	if (env != NULL && env[0] != '\0')
		return env;
	/* Before CTest sets PROVIDER_SIM: beside rpcqd in the same build tree
	 * (<build>/server/rpcqd, <build>/tools/provider-sim/provider-sim). */
	const char *rpcqd = getenv("RPCQD");
	if (rpcqd == NULL)
		fail_msg("neither PROVIDER_SIM nor RPCQD is set (run through ctest)");
	snprintf(path, sizeof(path), "%s", rpcqd);
	char *slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
	size_t n = strlen(path);
	snprintf(path + n, sizeof(path) - n, "/tools/provider-sim/provider-sim");
	if (access(path, X_OK) != 0)
		fail_msg("no provider simulator: PROVIDER_SIM is not set and %s is not there", path);
	return path;
}

static void sim_kill(struct sim *s)
{
	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	int64_t deadline = now_ms() + 5000;
	int status;
	for (;;) {
		pid_t w = waitpid(s->pid, &status, WNOHANG);
		if (w == s->pid || (w < 0 && errno != EINTR))
			break;
		if (now_ms() > deadline) {
			kill(s->pid, SIGKILL);
			while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		sleep_ms(10);
	}
	s->pid = 0;
}

/* The end of a log file, for a failure's story. */
static void print_log(const char *path)
{
	char *log = harness_read_file(path, NULL);
	if (log != NULL) {
		size_t n = strlen(log);
		print_message("--- %s (end)\n%s\n---\n", path, n > 6000 ? log + n - 6000 : log);
	}
	free(log);
}

static void print_server_logs(void)
{
	for (int i = 0; i < MAX_SERVERS; i++) {
		if (servers[i] != NULL && servers[i]->log_path[0] != '\0')
			print_log(servers[i]->log_path);
	}
}

static void sim_print_log(const struct sim *s)
{
	print_log(s->log);
}

/* Starts provider-sim with args (NULL-terminated) on a free port and waits
 * until GET /stats answers. */
static struct sim *sim_start(const char *const *args)
{
	struct sim *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	int slot = 0;
	while (slot < MAX_SIMS && sims[slot] != NULL)
		slot++;
	if (slot == MAX_SIMS)
		fail_msg("more than %d simulators in one test", MAX_SIMS);
	sims[slot] = s;
	const char *bin = sim_binary();
	for (int attempt = 0; attempt < 5; attempt++) {
		int port = harness_free_port();
		snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", port);
		snprintf(s->feed_url, sizeof(s->feed_url), "%s/feed", s->url);
		snprintf(s->log, sizeof(s->log), "%s/provider-sim-%d.log", pg.dir, port);
		const char *argv[64];
		int n = 0;
		argv[n++] = bin;
		argv[n++] = "--listen";
		argv[n++] = s->url;
		for (int i = 0; args != NULL && args[i] != NULL && n < 63; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		int logfd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (logfd < 0)
			fail_msg("cannot create %s: %s", s->log, strerror(errno));
		pid_t pid = fork();
		if (pid < 0)
			fail_msg("fork: %s", strerror(errno));
		if (pid == 0) {
			int nullfd = open("/dev/null", O_RDONLY);
			if (nullfd >= 0)
				dup2(nullfd, STDIN_FILENO);
			dup2(logfd, STDOUT_FILENO);
			dup2(logfd, STDERR_FILENO);
			execv(bin, (char *const *)argv);
			_exit(127);
		}
		close(logfd);
		s->pid = pid;
		char stats[200];
		snprintf(stats, sizeof(stats), "%s/stats", s->url);
		int64_t deadline = now_ms() + 10000;
		for (;;) {
			int status;
			if (waitpid(pid, &status, WNOHANG) == pid) {
				s->pid = 0;
				char *log = harness_read_file(s->log, NULL);
				int in_use = log != NULL && strstr(log, "in use") != NULL;
				free(log);
				if (in_use)
					break; /* the port was taken meanwhile: another */
				sim_print_log(s);
				fail_msg("provider-sim exited with status %d at start", status);
			}
			harness_http_reply r;
			int rc = harness_http_timeout("GET", stats, NULL, NULL, 0, 1000, &r);
			long st = r.status;
			harness_http_reply_free(&r);
			if (rc == 0 && st == 200)
				return s;
			if (now_ms() > deadline) {
				sim_print_log(s);
				fail_msg("provider-sim did not answer on %s within 10 s", s->url);
			}
			sleep_ms(20);
		}
	}
	fail_msg("provider-sim found its port taken 5 times");
	return NULL;
}

/* Serves files in order, then the last again. */
static struct sim *sim_files(const char *const *files)
{
	return sim_start(files);
}

/* POST /control?<query>; fails the test unless it is accepted. */
static void sim_control(const struct sim *s, const char *query)
{
	char u[300];
	snprintf(u, sizeof(u), "%s/control?%s", s->url, query);
	harness_http_reply r;
	if (harness_http("POST", u, NULL, "", 0, &r) != 0 || r.status != 200)
		fail_msg("POST %s: HTTP %ld %s %s", u, r.status, r.error, r.body ? r.body : "");
	harness_http_reply_free(&r);
}

/* GET /stats as JSON (json_decref it). */
static json_t *sim_stats(const struct sim *s)
{
	char u[300];
	snprintf(u, sizeof(u), "%s/stats", s->url);
	harness_http_reply r;
	if (harness_http("GET", u, NULL, NULL, 0, &r) != 0 || r.status != 200)
		fail_msg("GET %s: HTTP %ld %s", u, r.status, r.error);
	json_t *j = parse_json("simulator stats", r.body, r.body_len);
	harness_http_reply_free(&r);
	return j;
}

static long long sim_feed_requests(const struct sim *s)
{
	json_t *j = sim_stats(s);
	json_t *v = json_object_get(j, "feed_requests");
	if (!json_is_integer(v))
		fail_msg("simulator stats have no feed_requests");
	long long n = json_integer_value(v);
	json_decref(j);
	return n;
}

/* The simulator's count of requests held in a mode ("slow", "hang"). */
static long long sim_pending(const struct sim *s, const char *mode)
{
	json_t *j = sim_stats(s);
	json_t *v = json_object_get(json_object_get(j, "pending"), mode);
	long long n = json_is_integer(v) ? json_integer_value(v) : -1;
	json_decref(j);
	return n;
}

/* ---- databases, servers, clients ---- */

/* A fresh, migrated database in the group's cluster, as a harness_pg. */
static void fresh_db(harness_pg *out)
{
	char name[32], sql[64];
	snprintf(name, sizeof(name), "events_%d", ++db_counter);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	harness_sql(pg.conninfo, sql);
	*out = pg;
	const char *at = strstr(pg.conninfo, "dbname=rpcq");
	if (at == NULL)
		fail_msg("conninfo \"%s\" names no dbname=rpcq", pg.conninfo);
	snprintf(out->conninfo, sizeof(out->conninfo), "%.*sdbname=%s%s", (int)(at - pg.conninfo), pg.conninfo, name,
		 at + strlen("dbname=rpcq"));
	if (harness_migrate(out) != 0)
		fail_msg("rpcqd migrate failed on %s", out->conninfo);
}

static rpcq_client *client_of(const harness_server *s)
{
	rpcq_client_options o = {.servers = s->rpc_url, .timeout_ms = 20000};
	rpcq_client *c;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK)
		fail_msg("client for %s: %s", s->rpc_url, err.message);
	if (nclients == (int)(sizeof(clients) / sizeof(clients[0])))
		fail_msg("too many clients in one test");
	clients[nclients++] = c;
	return c;
}

/* Waits until the server's events index is loaded (Search answers). */
static void wait_ready(rpcq_client *c)
{
	int64_t deadline = now_ms() + 15000;
	for (;;) {
		Rpcq__Events__SearchRequest in = RPCQ__EVENTS__SEARCH_REQUEST__INIT;
		Rpcq__Events__SearchResponse *out = NULL;
		rpcq_error err;
		rpcq_status st = rpcq_event_search(c, &in, &out, NULL, &err);
		if (st == RPCQ_OK) {
			protobuf_c_message_free_unpacked(&out->base, NULL);
			return;
		}
		if (st != RPCQ_UNAVAILABLE || now_ms() > deadline)
			fail_msg("Search on a new server: %s: %s", rpcq_status_name(st), err.message);
		sleep_ms(50);
	}
}

/* Starts rpcqd on db fetching from feed_url every interval_s (0: on Sync
 * only), with one more flag and its value when flag is not NULL, and waits
 * until it searches. */
static harness_server *server_start_with(const harness_pg *db, const char *feed_url, int interval_s, const char *flag,
					 const char *value)
{
	int slot = 0;
	while (slot < MAX_SERVERS && servers[slot] != NULL)
		slot++;
	if (slot == MAX_SERVERS)
		fail_msg("more than %d servers in one test", MAX_SERVERS);
	harness_server *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	servers[slot] = s;
	char interval[16], timeout[16];
	snprintf(interval, sizeof(interval), "%d", interval_s);
	snprintf(timeout, sizeof(timeout), "%d", TIMEOUT_MS);
	const char *args[] = {"--provider-url",
			      feed_url,
			      "--provider-interval-s",
			      interval,
			      "--provider-timeout-ms",
			      timeout,
			      "--http-heartbeat-ms",
			      "300",
			      flag,
			      value,
			      NULL};
	harness_server_start(s, db, args);
	rpcq_client *c = client_of(s);
	wait_ready(c);
	return s;
}

static harness_server *server_start(const harness_pg *db, const char *feed_url, int interval_s)
{
	return server_start_with(db, feed_url, interval_s, NULL, NULL);
}

/* A fresh database, the simulator serving the shared data file name, and a
 * server fetching from it on Sync only, with one more flag as
 * server_start_with. */
static harness_server *serve_shared_file(harness_pg *db, const char *name, struct sim **sim, const char *flag,
					 const char *value)
{
	fresh_db(db);
	char *path = shared_file(name);
	const char *files[] = {path, NULL};
	*sim = sim_files(files);
	free(path);
	return server_start_with(db, (*sim)->feed_url, 0, flag, value);
}

static void server_stop(harness_server *s)
{
	assert_int_equal(harness_server_stop(s), 0);
}

static int pg_paused; /* the group's cluster, stopped by a test that failed before resuming it */

static int teardown_test(void **state)
{
	(void)state;
	if (pg_paused) {
		harness_pg_resume(&pg);
		pg_paused = 0;
	}
	for (int i = 0; i < nclients; i++)
		rpcq_client_destroy(clients[i]);
	nclients = 0;
	int bad = 0; /* an rpcqd that did not exit 0 (a leak under ASan) fails the test */
	for (int i = 0; i < MAX_SERVERS; i++) {
		if (servers[i] != NULL) {
			if (servers[i]->pid > 0)
				bad |= harness_server_stop(servers[i]) != 0;
			free(servers[i]);
			servers[i] = NULL;
		}
	}
	for (int i = 0; i < MAX_SIMS; i++) {
		if (sims[i] != NULL) {
			sim_kill(sims[i]);
			free(sims[i]);
			sims[i] = NULL;
		}
	}
	return bad ? -1 : 0;
}

static void kill_sims_at_exit(void)
{
	for (int i = 0; i < MAX_SIMS; i++) {
		if (sims[i] != NULL)
			sim_kill(sims[i]);
	}
}

static int setup_all(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	atexit(kill_sims_at_exit);
	harness_pg_start(&pg);
	return 0;
}

static int teardown_all(void **state)
{
	teardown_test(state);
	harness_pg_stop(&pg);
	return harness_teardown(state);
}

/* ---- calls ---- */

static Rpcq__Events__SyncResponse *sync_ok(rpcq_client *c, const char *what)
{
	Rpcq__Events__SyncRequest in = RPCQ__EVENTS__SYNC_REQUEST__INIT;
	Rpcq__Events__SyncResponse *out = NULL;
	rpcq_call_options o = {.retry = 2};
	rpcq_error err;
	rpcq_status st = rpcq_event_sync(c, &in, &out, &o, &err);
	if (st != RPCQ_OK) {
		print_server_logs();
		fail_msg("%s: Sync: %s: %s", what, rpcq_status_name(st), err.message);
	}
	return out;
}

static void expect_counts(const Rpcq__Events__SyncResponse *r, const char *what, unsigned seen, unsigned created,
			  unsigned updated, unsigned unchanged, unsigned skipped)
{
	if (r->events_seen != seen || r->created != created || r->updated != updated || r->unchanged != unchanged ||
	    r->skipped != skipped)
		fail_msg("%s: Sync counted %u seen, %u created, %u updated, %u unchanged, %u skipped; wanted %u, %u, "
			 "%u, %u, %u",
			 what, r->events_seen, r->created, r->updated, r->unchanged, r->skipped, seen, created, updated,
			 unchanged, skipped);
	if (r->n_changed != created + updated)
		fail_msg("%s: Sync listed %zu changed events for %u created and %u updated", what, r->n_changed,
			 created, updated);
}

/* Every stored event (pages of limit, 0: the server's), in order. */
struct found {
	Rpcq__Events__SearchResponse *pages[256];
	size_t npages;
	const Rpcq__Events__Event *ev[4096];
	size_t n;
};

static void found_free(struct found *f)
{
	for (size_t i = 0; i < f->npages; i++)
		protobuf_c_message_free_unpacked(&f->pages[i]->base, NULL);
	f->npages = 0;
	f->n = 0;
}

static rpcq_status search_pages(rpcq_client *c, const char *from, const char *to, uint32_t limit, struct found *f,
				rpcq_error *err)
{
	memset(f, 0, sizeof(*f));
	char token[256] = "";
	for (;;) {
		Rpcq__Events__SearchRequest in = RPCQ__EVENTS__SEARCH_REQUEST__INIT;
		in.starts_at = (char *)from;
		in.ends_at = (char *)to;
		in.limit = limit;
		in.page_token = token;
		Rpcq__Events__SearchResponse *out = NULL;
		rpcq_status st = rpcq_event_search(c, &in, &out, NULL, err);
		if (st != RPCQ_OK) {
			found_free(f);
			return st;
		}
		if (f->npages == sizeof(f->pages) / sizeof(f->pages[0]))
			fail_msg("Search gave more than %zu pages", f->npages);
		f->pages[f->npages++] = out;
		for (size_t i = 0; i < out->n_events; i++) {
			if (f->n == sizeof(f->ev) / sizeof(f->ev[0]))
				fail_msg("Search gave more than %zu events", f->n);
			f->ev[f->n++] = out->events[i];
		}
		if (limit && out->n_events > limit)
			fail_msg("Search with limit %u gave a page of %zu", limit, out->n_events);
		if (out->next_page_token == NULL || out->next_page_token[0] == '\0')
			return RPCQ_OK;
		if (out->n_events == 0)
			fail_msg("Search gave an empty page with a next_page_token");
		snprintf(token, sizeof(token), "%s", out->next_page_token);
	}
}

static void search_all(rpcq_client *c, const char *from, const char *to, uint32_t limit, struct found *f)
{
	rpcq_error err;
	rpcq_status st = search_pages(c, from, to, limit, f, &err);
	if (st != RPCQ_OK)
		fail_msg("Search(%s, %s): %s: %s", from, to, rpcq_status_name(st), err.message);
}

/* A whole Search reply as JSON text (malloc'd), to compare answers. */
static char *search_text(rpcq_client *c, const char *from, const char *to)
{
	struct found f;
	search_all(c, from, to, 0, &f);
	size_t cap = 64, len = 0;
	char *all = malloc(cap);
	assert_non_null(all);
	all[0] = '\0';
	for (size_t i = 0; i < f.n; i++) {
		char *j = rpcq_message_to_json(&f.ev[i]->base, RPCQ_JSON_EMIT_DEFAULTS);
		assert_non_null(j);
		size_t n = strlen(j);
		if (len + n + 2 > cap) {
			while (len + n + 2 > cap)
				cap *= 2;
			all = realloc(all, cap);
			assert_non_null(all);
		}
		memcpy(all + len, j, n);
		len += n;
		all[len++] = '\n';
		all[len] = '\0';
		rpcq_free(j);
	}
	found_free(&f);
	return all;
}

static uint64_t last_seq(rpcq_client *c)
{
	Rpcq__Events__ChangesRequest in = RPCQ__EVENTS__CHANGES_REQUEST__INIT;
	in.after_seq = (uint64_t)INT64_MAX - 1;
	Rpcq__Events__ChangesResponse *out = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_event_changes(c, &in, &out, NULL, &err);
	if (st != RPCQ_OK)
		fail_msg("Changes: %s: %s", rpcq_status_name(st), err.message);
	uint64_t seq = out->last_seq;
	protobuf_c_message_free_unpacked(&out->base, NULL);
	return seq;
}

/* GET <server><path>, which must answer. */
static void http_get(const harness_server *s, const char *path, harness_http_reply *r)
{
	char u[1024];
	snprintf(u, sizeof(u), "%s%s", s->http_url, path);
	if (harness_http("GET", u, NULL, NULL, 0, r) != 0)
		fail_msg("GET %s: no response: %s", u, r->error);
}

/* GET /search?query: 200, and its body (malloc'd). */
static char *http_search(const harness_server *s, const char *query)
{
	char path[512];
	snprintf(path, sizeof(path), "/search%s%s", query[0] ? "?" : "", query);
	harness_http_reply r;
	http_get(s, path, &r);
	if (r.status != 200)
		fail_msg("GET %s: HTTP %ld: %s", path, r.status, r.body);
	char *body = strdup(r.body);
	assert_non_null(body);
	harness_http_reply_free(&r);
	return body;
}

/* ---- what the rules imply ---- */

struct want {
	const char *base, *event, *title, *starts, *ends, *min, *max; /* min, max: "" for none */
	const char *sell_from, *sell_to;			      /* NULL: not checked */
};

static void public_id(const struct want *w, char id[37])
{
	event_public_id(w->base, w->event, id);
}

/* A UUID of version 5 and the RFC 4122 variant, in lower case. */
static void expect_uuidv5(const char *what, const char *id)
{
	int ok = id != NULL && strlen(id) == 36;
	for (int i = 0; ok && i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			ok = id[i] == '-';
		else
			ok = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
	}
	if (!ok || id[14] != '5' || strchr("89ab", id[19]) == NULL)
		fail_msg("%s: id \"%s\" is not a lower-case UUIDv5", what, id ? id : "(null)");
}

static void expect_event(const char *what, const Rpcq__Events__Event *e, const struct want *w)
{
	char id[37];
	public_id(w, id);
	expect_uuidv5(what, e->id);
	if (strcmp(e->id, id) != 0 || strcmp(e->base_id, w->base) != 0 || strcmp(e->event_id, w->event) != 0 ||
	    strcmp(e->title, w->title) != 0 || strcmp(e->starts_at, w->starts) != 0 ||
	    strcmp(e->ends_at, w->ends) != 0 || strcmp(e->min_price, w->min) != 0 ||
	    strcmp(e->max_price, w->max) != 0 || (w->sell_from && strcmp(e->sell_from, w->sell_from) != 0) ||
	    (w->sell_to && strcmp(e->sell_to, w->sell_to) != 0)) {
		char *j = rpcq_message_to_json(&e->base, RPCQ_JSON_EMIT_DEFAULTS);
		fail_msg("%s: got %s\nwanted id %s (base %s, event %s), \"%s\", %s..%s, min \"%s\", max \"%s\"", what,
			 j ? j : "?", id, w->base, w->event, w->title, w->starts, w->ends, w->min, w->max);
	}
}

/* Search (whole, and page by page) and GetEvent give exactly wants, in order. */
static void expect_stored(rpcq_client *c, const char *what, const struct want *wants, size_t n)
{
	struct found f;
	search_all(c, "", "", 0, &f);
	if (f.n != n) {
		for (size_t i = 0; i < f.n; i++) {
			char *j = rpcq_message_to_json(&f.ev[i]->base, 0);
			print_message("  stored: %s\n", j ? j : "?");
			rpcq_free(j);
		}
		fail_msg("%s: Search gave %zu events, wanted %zu", what, f.n, n);
	}
	char label[256];
	for (size_t i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "%s, event %zu of Search", what, i + 1);
		expect_event(label, f.ev[i], &wants[i]);
	}
	found_free(&f);
	/* One event a page: the same, in the same order. */
	search_all(c, "", "", 1, &f);
	if (f.n != n || f.npages < n)
		fail_msg("%s: Search one event a page gave %zu events in %zu pages, wanted %zu", what, f.n, f.npages,
			 n);
	for (size_t i = 0; i < n; i++) {
		snprintf(label, sizeof(label), "%s, page %zu of Search(limit 1)", what, i + 1);
		expect_event(label, f.ev[i], &wants[i]);
	}
	found_free(&f);
	for (size_t i = 0; i < n; i++) {
		char id[37];
		public_id(&wants[i], id);
		Rpcq__Events__GetEventRequest in = RPCQ__EVENTS__GET_EVENT_REQUEST__INIT;
		in.id = id;
		Rpcq__Events__Event *e = NULL;
		rpcq_error err;
		rpcq_status st = rpcq_event_get_event(c, &in, &e, NULL, &err);
		if (st != RPCQ_OK)
			fail_msg("%s: GetEvent %s (base %s, event %s): %s: %s", what, id, wants[i].base, wants[i].event,
				 rpcq_status_name(st), err.message);
		snprintf(label, sizeof(label), "%s, GetEvent of event %zu", what, i + 1);
		expect_event(label, e, &wants[i]);
		protobuf_c_message_free_unpacked(&e->base, NULL);
	}
}

static void expect_not_found(rpcq_client *c, const char *what, const char *base, const char *event)
{
	char id[37];
	event_public_id(base, event, id);
	Rpcq__Events__GetEventRequest in = RPCQ__EVENTS__GET_EVENT_REQUEST__INIT;
	in.id = id;
	Rpcq__Events__Event *e = NULL;
	rpcq_error err;
	rpcq_status st = rpcq_event_get_event(c, &in, &e, NULL, &err);
	if (st == RPCQ_OK)
		fail_msg("%s: GetEvent of (base %s, event %s) found \"%s\"", what, base, event, e->title);
	assert_int_equal(st, RPCQ_NOT_FOUND);
}

/* The real responses, as the spec's rules read them. Search order: by start. */
#define CAMELA(ends, min)                                                                                              \
	{                                                                                                              \
		"291", "291", "Camela en concierto", "2021-06-30T21:00:00", ends, min, "30.00", "2020-07-01T00:00:00", \
			"2021-06-30T20:00:00"                                                                          \
	}
#define PANTOMIMA                                                                                                \
	{                                                                                                        \
		"322", "1642", "Pantomima Full", "2021-02-10T20:00:00", "2021-02-10T21:30:00", "55.00", "55.00", \
			"2021-01-01T00:00:00", "2021-02-09T19:50:00"                                             \
	}
#define MORANCOS(ends, max)                                                                                       \
	{                                                                                                         \
		"1591", "1642", "Los Morancos", "2021-07-31T20:00:00", ends, "65.00", max, "2021-06-26T00:00:00", \
			"2021-07-31T19:50:00"                                                                     \
	}

static const struct want after_1[] = {PANTOMIMA, CAMELA("2021-06-30T22:00:00", "15.00"),
				      MORANCOS("2021-07-31T21:00:00", "75.00")};
/* 2: Pantomima gone from the feed (kept); Morancos ends 21:20 and its 75.00
 * zone has no tickets left; Camela's capacities changed but not its
 * values; base 444 is offline (and its dates impossible). */
static const struct want after_2[] = {PANTOMIMA, CAMELA("2021-06-30T22:00:00", "15.00"),
				      MORANCOS("2021-07-31T21:20:00", "65.00")};
/* 3: Camela ends 21:30 and its 15.00 zone is sold out; Morancos ends 21:00 again. */
static const struct want after_3[] = {PANTOMIMA, CAMELA("2021-06-30T21:30:00", "20.00"),
				      MORANCOS("2021-07-31T21:00:00", "65.00")};

static struct sim *sim_real_responses(void)
{
	char *r1 = shared_file("provider_v1_response_1.xml"), *r2 = shared_file("provider_v1_response_2.xml"),
	     *r3 = shared_file("provider_v1_response_3.xml");
	const char *files[] = {r1, r2, r3, NULL};
	struct sim *s = sim_files(files);
	free(r1);
	free(r2);
	free(r3);
	return s;
}

/* ---- the tests ---- */

static void test_the_three_real_responses_give_exactly_the_events_the_rules_imply(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	struct sim *sim = sim_real_responses();
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);
	expect_stored(c, "before any fetch", NULL, 0);
	assert_int_equal(sim_feed_requests(sim), 0); /* --provider-interval-s 0: nothing fetched by itself */

	Rpcq__Events__SyncResponse *r = sync_ok(c, "response 1");
	expect_counts(r, "response 1", 3, 3, 0, 0, 0);
	assert_int_equal(r->last_seq, 3);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	expect_stored(c, "after response 1", after_1, 3);

	r = sync_ok(c, "response 2");
	expect_counts(r, "response 2", 2, 0, 1, 1, 0);
	expect_event("response 2, the changed event", r->changed[0], &after_2[2]);
	assert_int_equal(r->last_seq, 4);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	expect_stored(c, "after response 2", after_2, 3);
	expect_not_found(c, "after response 2", "444", "1642");

	r = sync_ok(c, "response 3");
	expect_counts(r, "response 3", 2, 0, 2, 0, 0);
	assert_int_equal(r->last_seq, 6);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	expect_stored(c, "after response 3", after_3, 3);
	expect_not_found(c, "after response 3", "444", "1642");

	/* The last response again: nothing changes, nothing is written. */
	r = sync_ok(c, "response 3 again");
	expect_counts(r, "response 3 again", 2, 0, 0, 2, 0);
	assert_int_equal(r->last_seq, 6);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	expect_stored(c, "after response 3 again", after_3, 3);
	assert_int_equal(sim_feed_requests(sim), 4);

	/* The change log: every change once, in order, with its new values. */
	Rpcq__Events__ChangesRequest in = RPCQ__EVENTS__CHANGES_REQUEST__INIT;
	Rpcq__Events__ChangesResponse *ch = NULL;
	rpcq_error err;
	assert_int_equal(rpcq_event_changes(c, &in, &ch, NULL, &err), RPCQ_OK);
	assert_int_equal(ch->last_seq, 6);
	assert_int_equal(ch->n_changes, 6);
	const struct want *log[] = {&after_1[1], &after_1[0], &after_1[2], &after_2[2], &after_3[1], &after_3[2]};
	for (size_t i = 0; i < 6; i++) {
		char label[64];
		snprintf(label, sizeof(label), "change %zu", i + 1);
		assert_int_equal(ch->changes[i]->seq, i + 1);
		assert_non_null(ch->changes[i]->change);
		assert_int_equal(ch->changes[i]->change->kind,
				 i < 3 ? RPCQ__EVENTS__CHANGE_KIND__CREATED : RPCQ__EVENTS__CHANGE_KIND__UPDATED);
		expect_event(label, ch->changes[i]->change->event, log[i]);
		assert_true(ch->changes[i]->published_at_ms > 0);
	}
	protobuf_c_message_free_unpacked(&ch->base, NULL);
	in.after_seq = 4;
	assert_int_equal(rpcq_event_changes(c, &in, &ch, NULL, &err), RPCQ_OK);
	assert_int_equal(ch->n_changes, 2);
	assert_int_equal(ch->changes[0]->seq, 5);
	protobuf_c_message_free_unpacked(&ch->base, NULL);

	/* Searches by time range, bounds inclusive, zones ignored. */
	struct found f;
	search_all(c, "2021-06-30T21:00:00", "", 0, &f);
	assert_int_equal(f.n, 2);
	expect_event("starts_at 2021-06-30T21:00:00, first", f.ev[0], &after_3[1]);
	expect_event("starts_at 2021-06-30T21:00:00, second", f.ev[1], &after_3[2]);
	found_free(&f);
	search_all(c, "", "2021-06-30T21:30:00Z", 0, &f);
	assert_int_equal(f.n, 2);
	expect_event("ends_at 2021-06-30T21:30:00Z, first", f.ev[0], &after_3[0]);
	expect_event("ends_at 2021-06-30T21:30:00Z, second", f.ev[1], &after_3[1]);
	found_free(&f);
	search_all(c, "2021-06-30T21:00:01+02:00", "2021-07-31T21:00:00-05:00", 0, &f);
	assert_int_equal(f.n, 1);
	expect_event("2021-06-30T21:00:01+02:00..2021-07-31T21:00:00-05:00", f.ev[0], &after_3[2]);
	found_free(&f);
	search_all(c, "2021-08-01T00:00:00", "", 0, &f);
	assert_int_equal(f.n, 0);
	found_free(&f);
	rpcq_status st = search_pages(c, "2021-09-31T00:00:00", "", 0, &f, &err);
	assert_int_equal(st, RPCQ_INVALID_ARGUMENT);
}

static void test_the_plan_vocabulary_gives_its_four_plans(void **state)
{
	(void)state;
	harness_pg db;
	struct sim *sim;
	harness_server *srv = serve_shared_file(&db, "provider_v2_plans.xml", &sim, NULL, NULL);
	rpcq_client *c = client_of(srv);
	Rpcq__Events__SyncResponse *r = sync_ok(c, "the plan feed");
	expect_counts(r, "the plan feed", 4, 4, 0, 0, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	static const struct want plans_want[] = {
		PANTOMIMA,
		{"322", "1643", "Pantomima Full", "2021-02-11T20:00:00", "2021-02-11T21:30:00", "55.00", "55.00",
		 "2021-01-01T00:00:00", "2021-02-10T19:50:00"},
		CAMELA("2021-06-30T22:00:00", "15.00"),
		MORANCOS("2021-07-31T21:00:00", "75.00"),
	};
	expect_stored(c, "the plan feed", plans_want, 4);
	/* The same plans in the event vocabulary are the same events. */
	char id[37];
	event_public_id("322", "1642", id);
	char *body = http_search(srv, "");
	assert_non_null(strstr(body, id));
	free(body);
}

/* A feed written for the rules the real responses do not exercise. */
static const char rules_feed[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<eventList version=\"1.0\"><output>\n"
	"  <note>unknown elements are ignored</note>\n"
	"  <base_event base_event_id=\"900\" sell_mode=\"online\" title=\"Sold out &amp; done\" extra=\"x\">\n"
	"    <event event_start_date=\"2022-01-10T20:00:00\" event_end_date=\"2022-01-10T22:00:00\" event_id=\"1\""
	" sell_from=\"2021-12-01T00:00:00\" sell_to=\"2022-01-10T19:00:00\" sold_out=\"true\">\n"
	"      <zone zone_id=\"1\" capacity=\"0\" price=\"10.00\" name=\"A\" numbered=\"true\"/>\n"
	"      <zone zone_id=\"2\" capacity=\"0\" price=\"20.00\" name=\"B\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"901\" sell_mode=\"online\" title=\"Exact prices\">\n"
	"    <event event_start_date=\"2022-01-11T20:00:00\" event_end_date=\"2022-01-11T21:00:00\" event_id=\"1\""
	" sell_from=\"2021-12-01T00:00:00\" sell_to=\"2022-01-11T19:00:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"1\" capacity=\"5\" price=\"0.10\" name=\"A\" numbered=\"true\"/>\n"
	"      <zone zone_id=\"2\" capacity=\"0\" price=\"0.01\" name=\"B\" numbered=\"true\"/>\n"
	"      <zone zone_id=\"3\" capacity=\"7\" price=\"1234567.89\" name=\"C\" numbered=\"true\"/>\n"
	"      <zone zone_id=\"4\" capacity=\"1\" price=\"14.999\" name=\"D\" numbered=\"true\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"902\" sell_mode=\"online\" title=\"Impossible date\">\n"
	"    <event event_start_date=\"2021-09-31T20:00:00\" event_end_date=\"2021-09-31T21:00:00\" event_id=\"1\""
	" sell_from=\"2021-02-10T00:00:00\" sell_to=\"2021-09-30T19:50:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"7\" capacity=\"22\" price=\"65.00\" name=\"A\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"903\" sell_mode=\"online\" title=\"No end\">\n"
	"    <event event_start_date=\"2022-02-01T20:00:00\" event_id=\"1\" sell_from=\"2021-02-10T00:00:00\""
	" sell_to=\"2022-01-30T19:50:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"7\" capacity=\"22\" price=\"65.00\" name=\"A\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"904\" sell_mode=\"online\" title=\"Bad price\">\n"
	"    <event event_start_date=\"2022-02-02T20:00:00\" event_end_date=\"2022-02-02T21:00:00\" event_id=\"1\""
	" sell_from=\"2021-02-10T00:00:00\" sell_to=\"2022-01-30T19:50:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"7\" capacity=\"22\" price=\"12,50\" name=\"A\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"905\" sell_mode=\"offline\" title=\"Offline\">\n"
	"    <event event_start_date=\"2022-03-01T20:00:00\" event_end_date=\"2022-03-01T21:00:00\" event_id=\"1\""
	" sell_from=\"2021-02-10T00:00:00\" sell_to=\"2022-03-01T19:50:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"7\" capacity=\"22\" price=\"65.00\" name=\"A\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"  <base_event base_event_id=\"906\" sell_mode=\"online\" title=\"Two events, one without zones\">\n"
	"    <event event_start_date=\"2022-04-01T20:00:00\" event_end_date=\"2022-04-01T21:00:00\" event_id=\"1\""
	" sell_from=\"2021-02-10T00:00:00\" sell_to=\"2022-04-01T19:50:00\" sold_out=\"false\"/>\n"
	"    <event event_start_date=\"2022-04-02T20:00:00\" event_end_date=\"2022-04-02T21:00:00\" event_id=\"2\""
	" sell_from=\"2021-02-10T00:00:00\" sell_to=\"2022-04-02T19:50:00\" sold_out=\"false\">\n"
	"      <zone zone_id=\"7\" capacity=\"3\" price=\"40\" name=\"A\" numbered=\"false\"/>\n"
	"      <zone zone_id=\"8\" capacity=\"3\" price=\"9.5\" name=\"B\" numbered=\"false\"/>\n"
	"    </event>\n"
	"  </base_event>\n"
	"</output></eventList>\n";

static const struct want rules_want[] = {
	{"900", "1", "Sold out & done", "2022-01-10T20:00:00", "2022-01-10T22:00:00", "", "", NULL, NULL},
	{"901", "1", "Exact prices", "2022-01-11T20:00:00", "2022-01-11T21:00:00", "0.10", "1234567.89", NULL, NULL},
	{"906", "1", "Two events, one without zones", "2022-04-01T20:00:00", "2022-04-01T21:00:00", "", "", NULL, NULL},
	{"906", "2", "Two events, one without zones", "2022-04-02T20:00:00", "2022-04-02T21:00:00", "9.5", "40", NULL,
	 NULL},
};

/* The 1-based line of text on which needle first appears. */
static int line_of_text(const char *text, const char *needle)
{
	const char *at = strstr(text, needle);
	if (at == NULL)
		fail_msg("\"%s\" is not in the text", needle);
	int line = 1;
	for (const char *p = text; p < at; p++)
		line += *p == '\n';
	return line;
}

static void test_malformed_events_are_skipped_offline_ignored_and_prices_null_without_tickets(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *feed = write_feed("rules.xml", rules_feed);
	const char *files[] = {feed, NULL};
	struct sim *sim = sim_files(files);
	free(feed);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);
	Rpcq__Events__SyncResponse *r = sync_ok(c, "the rules feed");
	if (r->skipped != 3 || r->created != 4) {
		for (size_t i = 0; i < r->n_skipped_reasons; i++)
			print_message("  skipped: %s\n", r->skipped_reasons[i]);
	}
	expect_counts(r, "the rules feed", 4, 4, 0, 0, 3);
	/* Each skipped event is named by its ids and the line of its problem
	 * (the event's start tag for its own attributes, the zone's for a
	 * zone's), in Sync's answer and in the server's log. */
	assert_int_equal(r->n_skipped_reasons, 3);
	const char *bases[] = {"902", "903", "904"};
	const char *why[] = {"\"event_start_date\": \"2021-09-31T20:00:00\" is not a date",
			     "\"event_end_date\" is missing", "\"price\": \"12,50\" is not a price"};
	char *log = harness_read_file(srv->log_path, NULL);
	assert_non_null(log);
	for (int i = 0; i < 3; i++) {
		char base_attr[64], head[96], logged[128];
		snprintf(base_attr, sizeof(base_attr), "base_event_id=\"%s\"", bases[i]);
		int line = line_of_text(rules_feed, base_attr) + 1 + (i == 2); /* the event's, or its zone's */
		snprintf(head, sizeof(head), "line %d (base %s, event 1): ", line, bases[i]);
		snprintf(logged, sizeof(logged), "event (base %s, event 1) at line %d skipped: ", bases[i], line);
		if (strncmp(r->skipped_reasons[i], head, strlen(head)) != 0 ||
		    strstr(r->skipped_reasons[i], why[i]) == NULL)
			fail_msg("skipped reason %d \"%s\", wanted \"%s...%s...\"", i, r->skipped_reasons[i], head,
				 why[i]);
		const char *at = strstr(log, logged);
		if (at == NULL || strstr(at, why[i]) == NULL)
			fail_msg("the server log has no \"%s...%s\"", logged, why[i]);
	}
	free(log);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	expect_stored(c, "the rules feed", rules_want, 4);
	expect_not_found(c, "the rules feed", "902", "1");
	expect_not_found(c, "the rules feed", "903", "1");
	expect_not_found(c, "the rules feed", "904", "1");
	expect_not_found(c, "the rules feed", "905", "1");
}

/* ---- GET /search against the OpenAPI description ---- */

static int is_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
	}
	return 1;
}

#define TWO_DIGITS(p) (((p)[0] - '0') * 10 + ((p)[1] - '0'))

static void expect_date(const char *what, json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if (s == NULL || strlen(s) != 10 || !is_digits(s, 4) || s[4] != '-' || !is_digits(s + 5, 2) || s[7] != '-' ||
	    !is_digits(s + 8, 2))
		fail_msg("%s is not a date (YYYY-MM-DD): %s", what, s ? s : "(not a string)");
	int m = TWO_DIGITS(s + 5), d = TWO_DIGITS(s + 8);
	if (m < 1 || m > 12 || d < 1 || d > 31)
		fail_msg("%s is not a date: %s", what, s);
}

static void expect_time(const char *what, json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : NULL;
	if (s == NULL || strlen(s) != 8 || !is_digits(s, 2) || s[2] != ':' || !is_digits(s + 3, 2) || s[5] != ':' ||
	    !is_digits(s + 6, 2) || TWO_DIGITS(s) > 23 || TWO_DIGITS(s + 3) > 59 || TWO_DIGITS(s + 6) > 59)
		fail_msg("%s is not a time (HH:MM:SS): %s", what, s ? s : "(not a string)");
}

/* The raw JSON text of member name in the object of the event with id in
 * body (the text between the ':' and the next ',' or '}'). */
static void raw_member(const char *body, const char *id, const char *name, char *out, size_t len)
{
	char key[64];
	snprintf(key, sizeof(key), "\"id\":\"%s\"", id);
	const char *at = strstr(body, key);
	if (at == NULL)
		fail_msg("no event %s in %s", id, body);
	const char *start = at;
	while (start > body && *start != '{')
		start--;
	/* The object's end: the first '}' outside a string. */
	const char *end = start + 1;
	for (int in_string = 0; *end && (in_string || *end != '}'); end++) {
		if (in_string && *end == '\\' && end[1])
			end++;
		else if (*end == '"')
			in_string = !in_string;
	}
	char member[64];
	snprintf(member, sizeof(member), "\"%s\":", name);
	const char *m = strstr(start, member);
	if (m == NULL || m > end)
		fail_msg("event %s has no %s in %.*s", id, name, (int)(end - start + 1), start);
	m += strlen(member);
	while (*m == ' ')
		m++;
	size_t n = strcspn(m, ",} ");
	if (n >= len)
		n = len - 1;
	memcpy(out, m, n);
	out[n] = '\0';
}

static int json_number_text(const char *s)
{
	/* JSON's number grammar, as the OpenAPI "type: number" needs. */
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* A 200 body of GET /search checked against search-openapi.yaml and wants. */
static void expect_search_body(const char *what, const char *body, const struct want *wants, size_t n)
{
	json_t *j = parse_json(what, body, strlen(body));
	if (!json_is_object(j) || json_object_size(j) != 2 || json_object_get(j, "data") == NULL ||
	    !json_is_null(json_object_get(j, "error")))
		fail_msg("%s: the top level is not exactly {\"data\":..,\"error\":null}: %s", what, body);
	json_t *data = json_object_get(j, "data");
	json_t *events = json_object_get(data, "events");
	if (!json_is_object(data) || json_object_size(data) != 1 || !json_is_array(events))
		fail_msg("%s: data is not exactly {\"events\":[..]}: %s", what, body);
	if (json_array_size(events) != n)
		fail_msg("%s: %zu events, wanted %zu: %s", what, json_array_size(events), n, body);
	static const char *const keys[] = {"id",       "title",	   "start_date", "start_time",
					   "end_date", "end_time", "min_price",	 "max_price"};
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(events, i);
		char label[300];
		if (!json_is_object(e) || json_object_size(e) != 8)
			fail_msg("%s: event %zu is not an object of exactly the 8 fields: %s", what, i, body);
		for (size_t k = 0; k < 8; k++) {
			if (json_object_get(e, keys[k]) == NULL)
				fail_msg("%s: event %zu has no %s", what, i, keys[k]);
		}
		char id[37];
		public_id(&wants[i], id);
		snprintf(label, sizeof(label), "%s, event %zu id", what, i);
		expect_uuidv5(label, jstr(e, "id"));
		if (strcmp(jstr(e, "id"), id) != 0)
			fail_msg("%s: event %zu is %s, wanted %s (base %s, event %s)", what, i, jstr(e, "id"), id,
				 wants[i].base, wants[i].event);
		if (jstr(e, "title") == NULL || strcmp(jstr(e, "title"), wants[i].title) != 0)
			fail_msg("%s: event %zu title %s, wanted %s", what, i, jstr(e, "title"), wants[i].title);
		const char *fields[4] = {"start_date", "start_time", "end_date", "end_time"};
		for (int k = 0; k < 4; k++) {
			snprintf(label, sizeof(label), "%s, event %zu %s", what, i, fields[k]);
			if (k % 2 == 0)
				expect_date(label, json_object_get(e, fields[k]));
			else
				expect_time(label, json_object_get(e, fields[k]));
		}
		char want_when[32];
		snprintf(want_when, sizeof(want_when), "%sT%s", jstr(e, "start_date"), jstr(e, "start_time"));
		if (strcmp(want_when, wants[i].starts) != 0)
			fail_msg("%s: event %zu starts %s, wanted %s", what, i, want_when, wants[i].starts);
		snprintf(want_when, sizeof(want_when), "%sT%s", jstr(e, "end_date"), jstr(e, "end_time"));
		if (strcmp(want_when, wants[i].ends) != 0)
			fail_msg("%s: event %zu ends %s, wanted %s", what, i, want_when, wants[i].ends);
		const char *prices[2] = {"min_price", "max_price"};
		const char *wanted[2] = {wants[i].min, wants[i].max};
		for (int k = 0; k < 2; k++) {
			json_t *v = json_object_get(e, prices[k]);
			char raw[64];
			raw_member(body, id, prices[k], raw, sizeof(raw));
			if (wanted[k][0] == '\0') {
				if (!json_is_null(v))
					fail_msg("%s: event %zu %s is %s, wanted null", what, i, prices[k], raw);
				continue;
			}
			if (!json_is_number(v) || !json_number_text(raw))
				fail_msg("%s: event %zu %s is %s, not a JSON number", what, i, prices[k], raw);
			/* The exact decimal, digit for digit: "15.00", not 15 or 14.999999. */
			if (strcmp(raw, wanted[k]) != 0)
				fail_msg("%s: event %zu %s is %s, wanted exactly %s", what, i, prices[k], raw,
					 wanted[k]);
		}
	}
	json_decref(j);
}

/* An error of GET /search (status) in the OpenAPI's error shape. */
static void expect_search_error(const harness_server *srv, const char *query, long status)
{
	char path[512];
	snprintf(path, sizeof(path), "/search?%s", query);
	harness_http_reply r;
	http_get(srv, path, &r);
	if (r.status != status)
		fail_msg("GET %s: HTTP %ld, wanted %ld: %s", path, r.status, status, r.body);
	const char *ct = harness_http_header(&r, "Content-Type");
	if (ct == NULL || strncmp(ct, "application/json", 16) != 0)
		fail_msg("GET %s: Content-Type %s", path, ct ? ct : "(none)");
	json_t *j = parse_json(path, r.body, r.body_len);
	json_t *e = json_object_get(j, "error");
	if (!json_is_object(j) || json_object_size(j) != 2 || !json_is_null(json_object_get(j, "data")) ||
	    !json_is_object(e) || json_object_size(e) != 2 || jstr(e, "code") == NULL || jstr(e, "message") == NULL ||
	    jstr(e, "code")[0] == '\0' || jstr(e, "message")[0] == '\0')
		fail_msg("GET %s: not {\"data\":null,\"error\":{\"code\":string,\"message\":string}}: %s", path,
			 r.body);
	json_decref(j);
	harness_http_reply_free(&r);
}

static void expect_search_400(const harness_server *srv, const char *query)
{
	expect_search_error(srv, query, 400);
}

/* Anything but a malformed parameter is a 500 in the same shape: here the
 * index of a server whose first load waits for a lock the test holds on
 * the events table (Search answers UNAVAILABLE until the load is done). */
static void test_get_search_answers_500_in_the_error_shape_until_the_index_is_loaded(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	harness_hold *h = harness_hold_start(
		db.conninfo, "LOCK TABLE events IN ACCESS EXCLUSIVE MODE",
		"SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass", 2000, 20000);
	int slot = 0;
	while (servers[slot] != NULL)
		slot++;
	harness_server *srv = servers[slot] = calloc(1, sizeof(*srv));
	assert_non_null(srv);
	const char *args[] = {"--provider-interval-s", "0", NULL};
	harness_server_start(srv, &db, args);
	/* While the load waits: 500, in the error shape, however often asked. */
	expect_search_error(srv, "", 500);
	expect_search_error(srv, "starts_at=2021-01-01T00:00:00", 500);
	if (!harness_hold_finish(h))
		fail_msg("the server's index load never waited for the lock on events");
	/* Loaded: 200 and no events. */
	int64_t deadline = now_ms() + 10000;
	for (;;) {
		harness_http_reply r;
		http_get(srv, "/search", &r);
		long status = r.status;
		int empty = r.body != NULL && strstr(r.body, "\"events\":[]") != NULL;
		harness_http_reply_free(&r);
		if (status == 200 && empty)
			break;
		if (now_ms() > deadline)
			fail_msg("GET /search: HTTP %ld 10 s after the lock was released", status);
		sleep_ms(50);
	}
}

static void test_get_search_answers_field_by_field_as_the_openapi_description_says(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *r1 = shared_file("provider_v1_response_1.xml");
	char *rules = write_feed("rules-openapi.xml", rules_feed);
	const char *files[] = {r1, rules, NULL};
	struct sim *sim = sim_files(files);
	free(r1);
	free(rules);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);

	char *body = http_search(srv, "");
	expect_search_body("GET /search, nothing stored", body, NULL, 0);
	assert_string_equal(body, "{\"data\":{\"events\":[]},\"error\":null}");
	free(body);

	protobuf_c_message_free_unpacked(&sync_ok(c, "response 1")->base, NULL);
	protobuf_c_message_free_unpacked(&sync_ok(c, "the rules feed")->base, NULL);
	const struct want all[] = {after_1[0],	  after_1[1],	 after_1[2],   rules_want[0],
				   rules_want[1], rules_want[2], rules_want[3]};
	body = http_search(srv, "");
	expect_search_body("GET /search", body, all, 7);
	free(body);
	/* With a 2 KB message limit Search answers in pages of five events:
	 * /search joins them into the same body. */
	harness_server *small = server_start_with(&db, sim->feed_url, 0, "--max-message-bytes", "2048");
	body = http_search(small, "");
	expect_search_body("GET /search in pages of a 2 KB message limit", body, all, 7);
	free(body);
	struct found pages = {0};
	search_all(client_of(small), NULL, NULL, 0, &pages);
	if (pages.npages < 2)
		fail_msg("Search with a 2 KB message limit gave %zu page(s)", pages.npages);
	found_free(&pages);
	harness_http_reply r;
	http_get(srv, "/search", &r);
	const char *ct = harness_http_header(&r, "Content-Type");
	if (ct == NULL || strncmp(ct, "application/json", 16) != 0)
		fail_msg("GET /search: Content-Type %s", ct ? ct : "(none)");
	harness_http_reply_free(&r);

	/* Bounds: start >= starts_at, end <= ends_at, inclusive; a zone suffix
	 * is accepted and the wall-clock part compared. */
	body = http_search(srv, "starts_at=2021-06-30T21:00:00Z&ends_at=2021-07-31T21:00:00Z");
	expect_search_body("starts_at=..Z&ends_at=..Z", body, &all[1], 2);
	free(body);
	body = http_search(srv, "starts_at=2021-06-30T21:00:00%2B02:00&ends_at=2021-07-31T20:59:59-03:00");
	expect_search_body("starts_at=..+02:00&ends_at=..-03:00", body, &all[1], 1);
	free(body);
	body = http_search(srv, "starts_at=2022-01-11T20:00:00");
	expect_search_body("starts_at only", body, &all[4], 3);
	free(body);
	body = http_search(srv, "ends_at=2021-02-10T21:30:00.000Z");
	expect_search_body("ends_at only, with fractions", body, &all[0], 1);
	free(body);
	/* A bare date: starts_at its 00:00:00, ends_at its whole day. */
	body = http_search(srv, "ends_at=2021-02-10");
	expect_search_body("ends_at a bare date", body, &all[0], 1);
	free(body);
	body = http_search(srv, "starts_at=2021-02-10&ends_at=2021-02-10");
	expect_search_body("starts_at and ends_at the same bare date", body, &all[0], 1);
	free(body);
	body = http_search(srv, "starts_at=2017-07-21T17:32:28Z&ends_at=2021-07-21T17:32:28Z");
	expect_search_body("the OpenAPI's examples", body, &all[0], 2);
	free(body);
	body = http_search(srv, "starts_at=2030-01-01T00:00:00Z");
	expect_search_body("nothing that late", body, NULL, 0);
	free(body);

	/* Malformed parameters: 400 in the error shape. */
	expect_search_400(srv, "starts_at=2021-13-01T00:00:00");
	expect_search_400(srv, "starts_at=yesterday");
	expect_search_400(srv, "ends_at=2021-09-31T20:00:00");
	expect_search_400(srv, "ends_at=2021-06-30T25:00:00Z");
	expect_search_400(srv, "starts_at=2021-06-30T21:00:00%2B99:00");
	expect_search_400(srv, "starts_at=");
	/* A search never calls the provider. */
	assert_int_equal(sim_feed_requests(sim), 2);
}

/* ---- failures of the provider ---- */

struct pending_sync {
	rpcq_client *c;
	rpcq_status st;
	char message[512];
	pthread_t thread;
};

static void *sync_thread(void *arg)
{
	struct pending_sync *p = arg;
	Rpcq__Events__SyncRequest in = RPCQ__EVENTS__SYNC_REQUEST__INIT;
	Rpcq__Events__SyncResponse *out = NULL;
	rpcq_call_options o = {.retry = 2};
	rpcq_error err;
	p->st = rpcq_event_sync(p->c, &in, &out, &o, &err);
	if (p->st == RPCQ_OK)
		protobuf_c_message_free_unpacked(&out->base, NULL);
	else
		snprintf(p->message, sizeof(p->message), "%s", err.message);
	return NULL;
}

/* While the provider holds a fetch (the simulator's pending count of kind
 * held is at least 1), GET /search answers at once, with want. */
static void expect_search_while_held(const harness_server *srv, struct sim *sim, const char *held, const char *want,
				     const char *what)
{
	int64_t deadline = now_ms() + 5000;
	while (sim_pending(sim, held) < 1) {
		if (now_ms() > deadline)
			fail_msg("%s: the simulator never held a request", what);
		sleep_ms(10);
	}
	char u[300];
	snprintf(u, sizeof(u), "%s/search", srv->http_url);
	harness_http_reply r;
	assert_int_equal(harness_http("GET", u, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	if (r.seconds > FAST_SEARCH_SECONDS)
		fail_msg("%s: GET /search took %.3f s while a fetch was held", what, r.seconds);
	assert_string_equal(r.body, want);
	harness_http_reply_free(&r);
}

/* Search and GET /search answer from memory: with the database down they
 * still answer at once, the same. */
static void test_search_answers_from_memory_while_the_database_is_down(void **state)
{
	(void)state;
	harness_pg db;
	struct sim *sim;
	harness_server *srv = serve_shared_file(&db, "provider_v1_response_1.xml", &sim, NULL, NULL);
	rpcq_client *c = client_of(srv);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 1")->base, NULL);
	char *rpc_before = search_text(c, "", ""), *http_before = http_search(srv, "");

	harness_pg_pause(&pg);
	pg_paused = 1;
	for (int i = 0; i < 3; i++) {
		int64_t t0 = now_ms();
		char *rpc = search_text(c, "", "");
		int64_t rpc_ms = now_ms() - t0;
		char u[300];
		snprintf(u, sizeof(u), "%s/search?starts_at=2021-01-01T00:00:00", srv->http_url);
		harness_http_reply r;
		assert_int_equal(harness_http("GET", u, NULL, NULL, 0, &r), 0);
		if (r.status != 200 || rpc_ms > FAST_SEARCH_SECONDS * 1000 || r.seconds > FAST_SEARCH_SECONDS)
			fail_msg("with the database down: Search took %lld ms, GET /search %.3f s and answered %ld",
				 (long long)rpc_ms, r.seconds, r.status);
		assert_string_equal(rpc, rpc_before);
		assert_string_equal(r.body, http_before);
		free(rpc);
		harness_http_reply_free(&r);
		expect_stored(c, "with the database down", after_1, 3);
	}
	harness_pg_resume(&pg);
	pg_paused = 0;
	free(rpc_before);
	free(http_before);
}

struct plain_sync {
	rpcq_client *c;
	rpcq_status st;
	pthread_t thread;
};

/* One Sync, not retried. */
static void *plain_sync_thread(void *arg)
{
	struct plain_sync *p = arg;
	Rpcq__Events__SyncRequest in = RPCQ__EVENTS__SYNC_REQUEST__INIT;
	Rpcq__Events__SyncResponse *out = NULL;
	rpcq_error err;
	p->st = rpcq_event_sync(p->c, &in, &out, NULL, &err);
	if (p->st == RPCQ_OK)
		protobuf_c_message_free_unpacked(&out->base, NULL);
	return NULL;
}

/* Syncs asked of two processes at the same moment fetch one after the
 * other: the provider never holds two of their requests at once. */
static void test_syncs_on_two_servers_at_once_fetch_one_at_a_time(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "5", "--zones", "2", "--mode", "hang", NULL};
	struct sim *sim = sim_start(args);
	harness_server *a = server_start(&db, sim->feed_url, 0);
	harness_server *b = server_start(&db, sim->feed_url, 0);
	struct plain_sync p[2] = {{.c = client_of(a)}, {.c = client_of(b)}};
	for (int i = 0; i < 2; i++)
		if (pthread_create(&p[i].thread, NULL, plain_sync_thread, &p[i]) != 0)
			fail_msg("pthread_create");
	/* Each fetch hangs until the provider timeout (TIMEOUT_MS): watch both. */
	long long most = 0;
	int64_t end = now_ms() + 2 * TIMEOUT_MS + 1500;
	while (now_ms() < end && sim_feed_requests(sim) < 2) {
		long long held = sim_pending(sim, "hang");
		if (held > most)
			most = held;
		sleep_ms(10);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(p[i].thread, NULL);
	long long held = sim_pending(sim, "hang");
	if (held > most)
		most = held;
	if (most != 1 || sim_feed_requests(sim) != 2) {
		sim_print_log(sim);
		fail_msg("two Syncs at once: the provider held %lld requests at most and got %lld, wanted 1 and 2",
			 most, sim_feed_requests(sim));
	}
	for (int i = 0; i < 2; i++)
		if (p[i].st != RPCQ_UNAVAILABLE)
			fail_msg("Sync %d against a hanging provider: %s, wanted UNAVAILABLE", i,
				 rpcq_status_name(p[i].st));
}

/* A Sync that waited for another process's fetch finds its index behind
 * that fetch's changes and waits for them (a catch-up job, or its
 * publisher's messages): with --workers 1 its own wait holds the only
 * worker, and a spare thread runs the catch-up in its stead
 * (server_wait_begin). Before, the Sync gave up after 5 s with
 * UNAVAILABLE, "the events index has not caught up". */
static void test_a_sync_after_another_process_fetch_succeeds_with_one_worker(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "50", "--zones", "2", NULL};
	struct sim *sim = sim_start(args);
	harness_server *a = server_start(&db, sim->feed_url, 0);
	harness_server *b = server_start_with(&db, sim->feed_url, 0, "--workers", "1");
	sim_control(sim, "mode=slow&delay_ms=600&count=1");
	struct plain_sync p[2] = {{.c = client_of(a)}, {.c = client_of(b)}};
	if (pthread_create(&p[0].thread, NULL, plain_sync_thread, &p[0]) != 0)
		fail_msg("pthread_create");
	/* B's Sync waits for A's fetch, which the provider answers late. */
	while (sim_pending(sim, "slow") == 0)
		sleep_ms(5);
	if (pthread_create(&p[1].thread, NULL, plain_sync_thread, &p[1]) != 0)
		fail_msg("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(p[i].thread, NULL);
	for (int i = 0; i < 2; i++)
		if (p[i].st != RPCQ_OK)
			fail_msg("Sync %d: %s, wanted OK", i, rpcq_status_name(p[i].st));
}

/* Searches pipelined on one connection, a bad one between two good ones,
 * are answered in order, each with its own body: the next one may start on
 * another thread as soon as the one before is answered (a TSan run checks
 * that nothing of the first is touched after its answer). */
static void test_pipelined_searches_are_answered_in_order(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	/* More events than the first page that runs inline: the rest is
	 * written on a worker. */
	const char *args[] = {"--events", "600", "--zones", "2", NULL};
	struct sim *sim = sim_start(args);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);
	protobuf_c_message_free_unpacked(&sync_ok(c, "600 events")->base, NULL);
	char *all = http_search(srv, "starts_at=2000-01-01T00:00:00Z&ends_at=2100-01-01T00:00:00Z");
	const char *q = "GET /search?starts_at=2000-01-01T00:00:00Z&ends_at=2100-01-01T00:00:00Z HTTP/1.1\r\n"
			"Host: t\r\n\r\n"
			"GET /search?starts_at=2021-13-01 HTTP/1.1\r\nHost: t\r\n\r\n"
			"GET /search?starts_at=2000-01-01T00:00:00Z&ends_at=2100-01-01T00:00:00Z HTTP/1.1\r\n"
			"Host: t\r\nConnection: close\r\n\r\n";
	for (int round = 0; round < 20; round++) {
		size_t len;
		int closed;
		char *out = harness_raw_exchange(srv->http_url, q, strlen(q), 5000, &len, &closed);
		const char *a = strstr(out, all);
		const char *bad = strstr(out, "HTTP/1.1 400");
		const char *b = a ? strstr(a + strlen(all), all) : NULL;
		if (a == NULL || bad == NULL || b == NULL || !(a < bad && bad < b) || !closed)
			fail_msg("three pipelined searches got (%s):\n%.2000s", closed ? "closed" : "left open", out);
		free(out);
	}
	free(all);
}

/* GET /search needs no worker (Search answers from memory, and its first
 * page runs on the thread that read the request): with the one worker of
 * --workers 1 held by a Sync whose fetch the provider hangs, it still
 * answers at once, the same. */
static void test_get_search_answers_while_every_worker_is_busy(void **state)
{
	(void)state;
	harness_pg db;
	struct sim *sim;
	harness_server *srv = serve_shared_file(&db, "provider_v1_response_1.xml", &sim, "--workers", "1");
	rpcq_client *c = client_of(srv);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 1")->base, NULL);
	char *before = http_search(srv, "");

	sim_control(sim, "mode=hang");
	struct pending_sync p = {.c = c};
	if (pthread_create(&p.thread, NULL, sync_thread, &p) != 0)
		fail_msg("pthread_create");
	expect_search_while_held(srv, sim, "hang", before, "the only worker waiting for a fetch");
	pthread_join(p.thread, NULL);
	if (p.st != RPCQ_UNAVAILABLE)
		fail_msg("Sync against a hanging provider: %s (%s), wanted UNAVAILABLE", rpcq_status_name(p.st),
			 p.message);
	free(before);
}

static void test_every_failure_of_the_provider_leaves_the_stored_events_and_search_as_they_were(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *r1 = shared_file("provider_v1_response_1.xml"), *r3 = shared_file("provider_v1_response_3.xml");
	const char *files[] = {r1, r3, NULL};
	struct sim *sim = sim_files(files);
	free(r1);
	free(r3);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 1")->base, NULL);
	char *rpc_before = search_text(c, "", "");
	char *http_before = http_search(srv, "");
	expect_stored(c, "after response 1", after_1, 3);

	struct {
		const char *query;
		rpcq_status want; /* RPCQ_OK: either UNAVAILABLE or FAILED_PRECONDITION */
		const char *held; /* pending count that shows the request is held, or NULL */
	} modes[] = {
		{"mode=error", RPCQ_UNAVAILABLE, NULL},
		{"mode=garbage", RPCQ_FAILED_PRECONDITION, NULL},
		{"mode=truncated", RPCQ_OK, NULL},
		{"mode=slow&delay_ms="
		 "3000",
		 RPCQ_UNAVAILABLE, "slow"},
		{"mode=hang", RPCQ_UNAVAILABLE, "hang"},
	};
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		const char *what = modes[m].query;
		sim_control(sim, modes[m].query);
		long long before = sim_feed_requests(sim);
		struct pending_sync p = {.c = c};
		int64_t started = now_ms();
		if (pthread_create(&p.thread, NULL, sync_thread, &p) != 0)
			fail_msg("pthread_create");
		if (modes[m].held != NULL) {
			expect_search_while_held(srv, sim, modes[m].held, http_before, what);
			char *during = search_text(c, "", "");
			assert_string_equal(during, rpc_before);
			free(during);
		}
		pthread_join(p.thread, NULL);
		int64_t took = now_ms() - started;
		if (p.st == RPCQ_OK)
			fail_msg("%s: Sync succeeded", what);
		if (modes[m].want != RPCQ_OK ? p.st != modes[m].want
					     : p.st != RPCQ_UNAVAILABLE && p.st != RPCQ_FAILED_PRECONDITION)
			fail_msg("%s: Sync failed with %s (%s), wanted %s", what, rpcq_status_name(p.st), p.message,
				 modes[m].want != RPCQ_OK ? rpcq_status_name(modes[m].want)
							  : "UNAVAILABLE or FAILED_PRECONDITION");
		if (modes[m].held != NULL && took > TIMEOUT_MS + 2000)
			fail_msg("%s: Sync took %lld ms with --provider-timeout-ms %d", what, (long long)took,
				 TIMEOUT_MS);
		print_message("%s: %s: %s (%lld ms)\n", what, rpcq_status_name(p.st), p.message, (long long)took);
		/* One fetch, no retry of it behind the caller's back. */
		assert_int_equal(sim_feed_requests(sim), before + 1);
		/* Nothing applied: the same events, the same answers, no change logged. */
		char *rpc_after = search_text(c, "", "");
		char *http_after = http_search(srv, "");
		assert_string_equal(rpc_after, rpc_before);
		assert_string_equal(http_after, http_before);
		free(rpc_after);
		free(http_after);
		assert_int_equal(last_seq(c), 3);
		expect_stored(c, what, after_1, 3);
		sim_control(sim, "mode=ok");
	}
	/* The provider is back: the next fetch applies. */
	Rpcq__Events__SyncResponse *r = sync_ok(c, "response 3 after the failures");
	expect_counts(r, "response 3 after the failures", 2, 0, 2, 0, 0);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	const struct want after_1_then_3[] = {PANTOMIMA, CAMELA("2021-06-30T21:30:00", "20.00"),
					      MORANCOS("2021-07-31T21:00:00", "65.00")};
	expect_stored(c, "response 3 after the failures", after_1_then_3, 3);
	assert_int_equal(last_seq(c), 5);
	free(rpc_before);
	free(http_before);
}

/* ---- several processes ---- */

static void test_two_servers_on_one_database_fetch_once_per_interval_between_them(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "30", "--zones", "3", "--seed", "7", "--change", "20", NULL};
	struct sim *sim = sim_start(args);
	harness_server *a = server_start(&db, sim->feed_url, 2);
	harness_server *b = server_start(&db, sim->feed_url, 2);
	rpcq_client *ca = client_of(a), *cb = client_of(b);
	/* The first scheduled fetch. */
	int64_t deadline = now_ms() + 10000;
	while (sim_feed_requests(sim) < 1) {
		if (now_ms() > deadline)
			fail_msg("no scheduled fetch within 10 s of starting two servers with an interval of 2 s");
		sleep_ms(50);
	}
	/* A measurement window: every process alone would fetch 3 or 4 times
	 * in it; two uncoordinated ones 7. */
	long long n0 = sim_feed_requests(sim);
	int64_t t0 = now_ms();
	while (now_ms() - t0 < 7000)
		sleep_ms(100);
	long long fetches = sim_feed_requests(sim) - n0;
	print_message("two servers, interval 2 s: %lld fetches in 7 s\n", fetches);
	if (fetches < 2 || fetches > 5) {
		print_server_logs();
		sim_print_log(sim);
		fail_msg("two servers with --provider-interval-s 2 fetched %lld times in 7 s, wanted 2..5 (once per "
			 "interval between them)",
			 fetches);
	}
	/* Both answer the same, once the latest change has reached both. */
	const char *windows[][2] = {{"", ""}, {"2021-06-01T00:00:00", ""}, {"", "2022-01-01T00:00:00Z"}};
	for (size_t w = 0; w < 3; w++) {
		deadline = now_ms() + 10000;
		for (;;) {
			char *ta = search_text(ca, windows[w][0], windows[w][1]);
			char *tb = search_text(cb, windows[w][0], windows[w][1]);
			int same = strcmp(ta, tb) == 0 && ta[0] != '\0';
			int nevents = count_lines(ta);
			free(ta);
			free(tb);
			if (same) {
				if (w == 0 && nevents < 30)
					fail_msg("the servers hold %d events, wanted at least the 30 of one response",
						 nevents);
				break;
			}
			if (now_ms() > deadline)
				fail_msg("the two servers kept answering Search(%s, %s) differently for 10 s",
					 windows[w][0], windows[w][1]);
			sleep_ms(20);
		}
		deadline = now_ms() + 10000;
		char q[200];
		snprintf(q, sizeof(q), "%s%s%s%s", windows[w][0][0] ? "starts_at=" : "", windows[w][0],
			 windows[w][0][0] && windows[w][1][0] ? "&" : "", windows[w][1][0] ? "ends_at=" : "");
		size_t ql = strlen(q);
		snprintf(q + ql, sizeof(q) - ql, "%s", windows[w][1]);
		for (;;) {
			char *ha = http_search(a, q), *hb = http_search(b, q);
			int same = strcmp(ha, hb) == 0;
			free(ha);
			free(hb);
			if (same)
				break;
			if (now_ms() > deadline)
				fail_msg("the two servers kept answering GET /search?%s differently for 10 s", q);
			sleep_ms(20);
		}
	}
}

/* The times (now_ms) at which the simulator's count of feed requests went
 * up after this call, polled every 10 ms, from the first such request on for
 * ms (at most 10 s to wait for that one): their number, at most max. */
static int watch_requests(const struct sim *sim, int ms, int64_t *at, int max)
{
	int n = 0;
	long long seen = sim_feed_requests(sim);
	int64_t first_by = now_ms() + 10000, end = 0;
	for (;;) {
		sleep_ms(10);
		int64_t t = now_ms();
		long long c = sim_feed_requests(sim);
		for (; seen < c && n < max; seen++)
			at[n++] = t;
		seen = c;
		if (n > 0 && end == 0)
			end = at[0] + ms;
		if (n == 0 && t > first_by)
			fail_msg("no scheduled fetch within 10 s");
		if (end != 0 && t >= end)
			return n;
	}
}

static void test_a_failing_provider_is_retried_on_one_backoff_between_two_servers(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "5", "--zones", "2", NULL};
	struct sim *sim = sim_start(args);
	harness_server *a = server_start(&db, sim->feed_url, 4);
	harness_server *b = server_start(&db, sim->feed_url, 4);
	/* The first scheduled fetch applies; then the provider fails. */
	int64_t deadline = now_ms() + 10000;
	while (harness_sql_scalar(db.conninfo, "SELECT (last_ok_at IS NOT NULL)::int FROM events_fetch_state") != 1) {
		if (now_ms() > deadline)
			fail_msg("no scheduled fetch applied within 10 s");
		sleep_ms(20);
	}
	sim_control(sim, "mode=error");
	/* A failure is retried after 1, 2, 4, 4... s less up to half of it
	 * (jitter), the interval being 4 s, by whichever process comes first:
	 * the k-th retry comes at least 0.5, 1, 2, 2... s after the failure
	 * before it, so at most 5 requests in the 6.5 s from the first failed
	 * one. Two processes each on its own backoff make about 8, some of
	 * them close together. */
	int64_t at[64];
	int n = watch_requests(sim, 6500, at, 64);
	print_message("a failing provider, two servers, interval 4 s: %d requests in 6.5 s\n", n);
	for (int k = 1; k < n; k++) {
		int64_t least = 500LL << (k - 1 < 2 ? k - 1 : 2);
		if (at[k] - at[k - 1] < least - 100) {
			print_server_logs();
			sim_print_log(sim);
			fail_msg("retry %d came %lld ms after the request before it, wanted at least %lld ms (the "
				 "backoff of %d failures between the two servers)",
				 k, (long long)(at[k] - at[k - 1]), (long long)least, k);
		}
	}
	if (n < 3 || n > 5) {
		print_server_logs();
		sim_print_log(sim);
		fail_msg("%d requests to a failing provider in 6.5 s, wanted 3..5: retries sooner than the interval, "
			 "on one backoff between the servers",
			 n);
	}
	/* The shared state says why, and how many in a row. */
	assert_true(harness_sql_scalar(db.conninfo, "SELECT consecutive_failures FROM events_fetch_state") >= n - 1);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT (last_error LIKE '%answered HTTP 500%')::int FROM "
							 "events_fetch_state"),
			 1);
	/* Once the provider answers again, the next fetch applies and resets the count. */
	sim_control(sim, "mode=ok");
	deadline = now_ms() + 10000;
	while (harness_sql_scalar(db.conninfo, "SELECT consecutive_failures FROM events_fetch_state") != 0) {
		if (now_ms() > deadline)
			fail_msg("no successful fetch within 10 s of the provider answering again");
		sleep_ms(50);
	}
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT (last_error IS NULL)::int FROM events_fetch_state"),
			 1);
	(void)a;
	(void)b;
}

/* Polls c's Search until it answers want (as search_text), within ms;
 * returns how long it took. */
static int64_t wait_search(rpcq_client *c, const char *want, int ms, const char *what)
{
	int64_t start = now_ms(), deadline = start + ms;
	for (;;) {
		char *got = search_text(c, "", "");
		int same = strcmp(got, want) == 0;
		if (same) {
			free(got);
			return now_ms() - start;
		}
		if (now_ms() > deadline)
			fail_msg("%s: not visible within %d ms; the other server answers\n%s\nwanted\n%s", what, ms,
				 got, want);
		free(got);
		sleep_ms(10);
	}
}

static void test_a_change_one_server_ingests_shows_in_the_other_within_a_second(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	struct sim *sim = sim_real_responses();
	harness_server *a = server_start(&db, sim->feed_url, 0);
	harness_server *b = server_start(&db, sim->feed_url, 0);
	rpcq_client *ca = client_of(a), *cb = client_of(b);
	const char *steps[] = {"response 1 through the first server", "response 2 through the second server",
			       "response 3 through the first server"};
	const struct want *wants[] = {after_1, after_2, after_3};
	for (int i = 0; i < 3; i++) {
		rpcq_client *writer = i % 2 == 0 ? ca : cb, *reader = i % 2 == 0 ? cb : ca;
		protobuf_c_message_free_unpacked(&sync_ok(writer, steps[i])->base, NULL);
		expect_stored(writer, steps[i], wants[i], 3);
		char *want = search_text(writer, "", "");
		int64_t took = wait_search(reader, want, VISIBLE_MS, steps[i]);
		print_message("%s: visible in the other after %lld ms\n", steps[i], (long long)took);
		free(want);
		expect_stored(reader, steps[i], wants[i], 3);
		char *ha = http_search(a, ""), *hb = http_search(b, "");
		assert_string_equal(ha, hb);
		free(ha);
		free(hb);
	}
}

/* The highest seq among the events c's Search returns. */
static uint64_t max_event_seq(rpcq_client *c)
{
	struct found f;
	search_all(c, "", "", 0, &f);
	uint64_t m = 0;
	for (size_t i = 0; i < f.n; i++)
		if (f.ev[i]->seq > m)
			m = f.ev[i]->seq;
	found_free(&f);
	return m;
}

/* A fetch applies its own changes to its process's index at the commit,
 * and that process's follower then meets them again in the log; the other
 * process gets them only from the log. Feeds of a few thousand changes (a
 * few batches each), Synced through each server in turn: the writer holds
 * its own changes when Sync answers, the other converges, and both hold
 * what a server that loads the database afresh holds. */
/* GET /search with no bounds gives the events of Search, in its order:
 * more than the first page that the gateway answers on the connection's
 * thread (256 events, search.c), the rest continued on a worker. */
static void expect_http_search_as_rpc(const harness_server *srv, rpcq_client *c, const char *what)
{
	struct found f;
	search_all(c, NULL, NULL, 0, &f);
	if (f.n <= 256)
		fail_msg("%s: Search found %zu events, wanted more than one inline page", what, f.n);
	char *body = http_search(srv, "");
	json_error_t jerr;
	json_t *root = json_loads(body, 0, &jerr);
	if (root == NULL)
		fail_msg("%s: GET /search is not JSON: %s", what, jerr.text);
	json_t *events = json_object_get(json_object_get(root, "data"), "events");
	if (!json_is_array(events) || json_array_size(events) != f.n)
		fail_msg("%s: GET /search gave %zu events, Search %zu", what, json_array_size(events), f.n);
	for (size_t i = 0; i < f.n; i++) {
		const char *id = json_string_value(json_object_get(json_array_get(events, i), "id"));
		if (id == NULL || strcmp(id, f.ev[i]->id) != 0)
			fail_msg("%s: event %zu of GET /search is %s, of Search %s", what, i, id ? id : "(none)",
				 f.ev[i]->id);
	}
	json_decref(root);
	free(body);
	found_free(&f);
}

static void test_syncs_of_thousands_of_changes_through_either_server_converge_on_the_database(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "2200", "--zones", "1", "--seed", "11", "--change", "60", NULL};
	struct sim *sim = sim_start(args);
	harness_server *a = server_start(&db, sim->feed_url, 0);
	harness_server *b = server_start(&db, sim->feed_url, 0);
	rpcq_client *ca = client_of(a), *cb = client_of(b);
	for (int i = 0; i < 4; i++) {
		rpcq_client *writer = i % 2 == 0 ? ca : cb, *reader = i % 2 == 0 ? cb : ca;
		char what[64];
		snprintf(what, sizeof(what), "response %d through server %c", i + 1, i % 2 == 0 ? 'a' : 'b');
		Rpcq__Events__SyncResponse *r = sync_ok(writer, what);
		if (r->created + r->updated < (i == 0 ? 2000u : 1000u))
			fail_msg("%s: %u created and %u updated, wanted more than one batch", what, r->created,
				 r->updated);
		uint64_t last = r->last_seq;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		/* Read your writes: the last change is in the writer's index. */
		uint64_t held = max_event_seq(writer);
		if (held != last)
			fail_msg("%s: Sync answered last_seq %llu, the writer's Search then held changes up to %llu",
				 what, (unsigned long long)last, (unsigned long long)held);
		char *want = search_text(writer, "", "");
		int64_t took = wait_search(reader, want, VISIBLE_MS, what);
		print_message("%s: visible in the other after %lld ms\n", what, (long long)took);
		free(want);
	}
	harness_server *c = server_start(&db, sim->feed_url, 0);
	char *loaded = search_text(client_of(c), "", "");
	char *ta = search_text(ca, "", ""), *tb = search_text(cb, "", "");
	if (count_lines(loaded) < 2200)
		fail_msg("a fresh server loaded %d events, wanted at least 2200", count_lines(loaded));
	if (strcmp(ta, loaded) != 0 || strcmp(tb, loaded) != 0)
		fail_msg("after four Syncs the servers' indexes differ from what a fresh server loads");
	expect_http_search_as_rpc(a, ca, "server a");
	expect_http_search_as_rpc(c, client_of(c), "a fresh server");
	free(loaded);
	free(ta);
	free(tb);
}

static void test_ids_are_uuidv5_of_base_and_event_and_the_same_after_a_restart_and_elsewhere(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	struct sim *sim = sim_real_responses();
	harness_server *a = server_start(&db, sim->feed_url, 0);
	rpcq_client *ca = client_of(a);
	protobuf_c_message_free_unpacked(&sync_ok(ca, "response 1")->base, NULL);
	char *before = search_text(ca, "", "");
	char *http_before = http_search(a, "");
	/* (322, 1642) and (1591, 1642) share an event id and are two events. */
	char id1[37], id2[37];
	event_public_id("322", "1642", id1);
	event_public_id("1591", "1642", id2);
	assert_string_not_equal(id1, id2);
	assert_non_null(strstr(before, id1));
	assert_non_null(strstr(before, id2));

	/* Restarted: the index is loaded from the database, the same ids. */
	server_stop(a);
	harness_server *a2 = server_start(&db, sim->feed_url, 0);
	rpcq_client *ca2 = client_of(a2);
	char *after = search_text(ca2, "", "");
	assert_string_equal(after, before);
	char *http_after = http_search(a2, "");
	assert_string_equal(http_after, http_before);
	expect_stored(ca2, "after a restart", after_1, 3);

	/* Another process on another database, fed the same response, derives
	 * the same ids on its own. */
	harness_pg db2;
	fresh_db(&db2);
	char *r1 = shared_file("provider_v1_response_1.xml");
	const char *files[] = {r1, NULL};
	struct sim *sim2 = sim_files(files);
	free(r1);
	harness_server *other = server_start(&db2, sim2->feed_url, 0);
	rpcq_client *co = client_of(other);
	protobuf_c_message_free_unpacked(&sync_ok(co, "response 1 elsewhere")->base, NULL);
	char *elsewhere = http_search(other, "");
	assert_string_equal(elsewhere, http_before);
	free(before);
	free(after);
	free(http_before);
	free(http_after);
	free(elsewhere);
}

/* ---- the change stream ---- */

static harness_sse *sse_open(const harness_server *s, const char *path, const char *last_event_id)
{
	char u[512], h[128];
	snprintf(u, sizeof(u), "%s%s", s->http_url, path);
	const char *hdrs[3] = {"Accept: text/event-stream", NULL, NULL};
	if (last_event_id != NULL) {
		snprintf(h, sizeof(h), "Last-Event-ID: %s", last_event_id);
		hdrs[1] = h;
	}
	harness_sse *e = harness_sse_open(u, hdrs, 5000);
	if (harness_sse_status(e) != 200) {
		size_t n;
		const char *t = harness_sse_text(e, &n);
		fail_msg("GET %s: HTTP %ld (%s) %.*s", path, harness_sse_status(e), harness_sse_error(e), (int)n, t);
	}
	return e;
}

/* Reads the stream's next event, which must be change seq with want's
 * values and kind. */
static void expect_change(harness_sse *e, const char *what, uint64_t seq, const char *kind, const struct want *w)
{
	harness_sse_event ev;
	int rc = harness_sse_next(e, 5000, &ev);
	if (rc != 1)
		fail_msg("%s: waiting for change %llu: %s", what, (unsigned long long)seq,
			 rc == 0 ? "nothing came within 5 s" : harness_sse_error(e));
	char want_id[24];
	snprintf(want_id, sizeof(want_id), "%llu", (unsigned long long)seq);
	if (strcmp(ev.id, want_id) != 0)
		fail_msg("%s: got change %s (%s), wanted %s", what, ev.id, ev.data ? ev.data : "", want_id);
	if (strcmp(ev.event, "rpcq.events.EventChanged") != 0)
		fail_msg("%s: change %s has type \"%s\"", what, ev.id, ev.event);
	json_t *j = parse_json(what, ev.data, strlen(ev.data));
	json_t *e2 = json_object_get(j, "event");
	char id[37];
	public_id(w, id);
	const char *min = jstr(e2, "minPrice"), *max = jstr(e2, "maxPrice");
	if (jstr(j, "kind") == NULL || strcmp(jstr(j, "kind"), kind) != 0 || jstr(e2, "id") == NULL ||
	    strcmp(jstr(e2, "id"), id) != 0 || strcmp(jstr(e2, "title"), w->title) != 0 ||
	    strcmp(jstr(e2, "startsAt"), w->starts) != 0 || strcmp(jstr(e2, "endsAt"), w->ends) != 0 ||
	    strcmp(min ? min : "", w->min) != 0 || strcmp(max ? max : "", w->max) != 0)
		fail_msg("%s: change %s is %s, wanted %s of %s (%s) ending %s, %s..%s", what, ev.id, ev.data, kind, id,
			 w->title, w->ends, w->min, w->max);
	/* The event's seq is the change that wrote these values: this one. */
	const char *eseq = jstr(e2, "seq");
	if (eseq == NULL || strcmp(eseq, want_id) != 0)
		fail_msg("%s: change %s carries an event of seq %s", what, ev.id, eseq ? eseq : "(none)");
	json_decref(j);
	harness_sse_event_free(&ev);
}

static void expect_quiet(harness_sse *e, const char *what)
{
	harness_sse_event ev;
	int rc = harness_sse_next(e, 700, &ev);
	if (rc == 1)
		fail_msg("%s: an extra change %s: %s", what, ev.id, ev.data);
}

static void test_the_change_stream_carries_each_change_once_in_order_across_a_subscriber_restart(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *r1 = shared_file("provider_v1_response_1.xml"), *r2 = shared_file("provider_v1_response_2.xml"),
	     *r3 = shared_file("provider_v1_response_3.xml");
	/* A fourth response: Pantomima back on sale with a zone sold out. */
	char *r4 = write_feed("response-4.xml",
			      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<eventList version=\"1.0\"><output>\n"
			      "<base_event base_event_id=\"322\" sell_mode=\"online\" title=\"Pantomima Full\">\n"
			      "<event event_start_date=\"2021-02-10T20:00:00\" event_end_date=\"2021-02-10T21:30:00\" "
			      "event_id=\"1642\" sell_from=\"2021-01-01T00:00:00\" sell_to=\"2021-02-09T19:50:00\" "
			      "sold_out=\"false\">\n"
			      "<zone zone_id=\"311\" capacity=\"0\" price=\"55.00\" name=\"A42\" numbered=\"true\"/>\n"
			      "<zone zone_id=\"312\" capacity=\"4\" price=\"45.50\" name=\"A43\" numbered=\"true\"/>\n"
			      "</event></base_event></output></eventList>\n");
	const char *files[] = {r1, r2, r3, r4, NULL};
	struct sim *sim = sim_files(files);
	free(r1);
	free(r2);
	free(r3);
	free(r4);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);

	harness_sse *e = sse_open(srv, "/streams/events.changed?after_seq=0", NULL);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 1")->base, NULL);
	expect_change(e, "live, response 1", 1, "CREATED", &after_1[1]);
	expect_change(e, "live, response 1", 2, "CREATED", &after_1[0]);
	expect_change(e, "live, response 1", 3, "CREATED", &after_1[2]);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 2")->base, NULL);
	expect_change(e, "live, response 2", 4, "UPDATED", &after_2[2]);
	expect_quiet(e, "after response 2");
	harness_sse_close(e);

	/* Missed while away, then resumed with Last-Event-ID. */
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 3")->base, NULL);
	e = sse_open(srv, "/streams/events.changed", "4");
	expect_change(e, "resumed, response 3", 5, "UPDATED", &after_3[1]);
	expect_change(e, "resumed, response 3", 6, "UPDATED", &after_3[2]);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 3 again")->base, NULL);
	protobuf_c_message_free_unpacked(&sync_ok(c, "response 4")->base, NULL);
	const struct want pantomima_4 = {
		"322", "1642", "Pantomima Full", "2021-02-10T20:00:00", "2021-02-10T21:30:00", "45.50", "45.50",
		NULL,  NULL};
	expect_change(e, "live after resuming, response 4", 7, "UPDATED", &pantomima_4);
	expect_quiet(e, "after response 4");
	harness_sse_close(e);

	/* The whole log again from the start, as a new subscriber sees it. */
	e = sse_open(srv, "/streams/events.changed?after_seq=0", NULL);
	expect_change(e, "replayed", 1, "CREATED", &after_1[1]);
	expect_change(e, "replayed", 2, "CREATED", &after_1[0]);
	expect_change(e, "replayed", 3, "CREATED", &after_1[2]);
	expect_change(e, "replayed", 4, "UPDATED", &after_2[2]);
	expect_change(e, "replayed", 5, "UPDATED", &after_3[1]);
	expect_change(e, "replayed", 6, "UPDATED", &after_3[2]);
	expect_change(e, "replayed", 7, "UPDATED", &pantomima_4);
	expect_quiet(e, "after the replay");
	harness_sse_close(e);

	/* rpcq subscribe over nng sees the same, in order. */
	char *out = NULL, *err = NULL;
	const char *sub[] = {"subscribe", "--from-seq", "0", "--count", "7", "events.", NULL};
	int rc = harness_cli(srv->rpc_url, sub, NULL, &out, &err);
	if (rc != 0)
		fail_msg("rpcq subscribe: exit %d: %s", rc, err);
	assert_int_equal(count_lines(out), 7);
	for (int i = 0; i < 7; i++) {
		char line[4096], seq[8];
		line_of(out, i, line, sizeof(line));
		json_t *j = parse_json("rpcq subscribe line", line, strlen(line));
		snprintf(seq, sizeof(seq), "%d", i + 1);
		assert_string_equal(jstr(j, "seq"), seq);
		assert_string_equal(jstr(j, "topic"), "events.changed");
		json_decref(j);
	}
	free(out);
	free(err);
}

/* A feed that lists one event twice: the later values win, it is counted
 * once, and the next syncs find nothing changed (the earlier copy, which
 * differs from what is stored, used to be written on every other sync). */
static void test_an_event_listed_twice_in_a_feed_takes_its_later_values_once(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *twice = write_feed(
		"twice.xml",
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<eventList version=\"1.0\"><output>\n"
		"<base_event base_event_id=\"5\" sell_mode=\"online\" title=\"Twice\">\n"
		"<event event_start_date=\"2021-07-01T10:00:00\" event_end_date=\"2021-07-01T12:00:00\" event_id=\"1\" "
		"sold_out=\"false\"><zone zone_id=\"1\" capacity=\"3\" price=\"1.00\" name=\"A\" numbered=\"true\"/>"
		"</event>\n"
		"<event event_start_date=\"2021-07-01T10:00:00\" event_end_date=\"2021-07-01T12:00:00\" event_id=\"1\" "
		"sold_out=\"false\"><zone zone_id=\"1\" capacity=\"3\" price=\"2.00\" name=\"A\" numbered=\"true\"/>"
		"</event>\n"
		"<event event_start_date=\"2021-07-02T10:00:00\" event_end_date=\"2021-07-02T12:00:00\" event_id=\"2\" "
		"sold_out=\"false\"><zone zone_id=\"1\" capacity=\"3\" price=\"3.00\" name=\"A\" numbered=\"true\"/>"
		"</event>\n"
		"</base_event></output></eventList>\n");
	const char *files[] = {twice, NULL};
	struct sim *sim = sim_files(files);
	free(twice);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	rpcq_client *c = client_of(srv);

	Rpcq__Events__SyncResponse *r = sync_ok(c, "the first sync");
	expect_counts(r, "the first sync", 2, 2, 0, 0, 0);
	assert_int_equal(r->last_seq, 2);
	int found = 0;
	for (size_t i = 0; i < r->n_changed; i++) {
		if (strcmp(r->changed[i]->event_id, "1") == 0) {
			found = 1;
			assert_string_equal(r->changed[i]->min_price, "2.00");
		}
	}
	assert_true(found);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	for (int i = 0; i < 2; i++) {
		r = sync_ok(c, "a later sync");
		expect_counts(r, "a later sync", 2, 0, 0, 2, 0);
		assert_int_equal(r->last_seq, 2);
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
}

/* ---- the CLI ---- */

static int cli(const harness_server *s, const char *const *args, char **out, char **err)
{
	*out = NULL;
	*err = NULL;
	return harness_cli(s->rpc_url, args, NULL, out, err);
}

/* Column offsets of a table's header line, by name. */
static int column_at(const char *header, const char *name)
{
	const char *p = strstr(header, name);
	if (p == NULL)
		fail_msg("table header \"%s\" has no column %s", header, name);
	return (int)(p - header);
}

/* Row fields start where their header's names do. */
static void expect_table(const char *what, const char *out, const struct want *wants, size_t n)
{
	if (count_lines(out) != (int)n + 1)
		fail_msg("%s: %d lines, wanted a header and %zu rows:\n%s", what, count_lines(out), n, out);
	char header[1024];
	line_of(out, 0, header, sizeof(header));
	const char *names[] = {"ID", "START", "END", "MIN", "MAX", "TITLE"};
	int at[6];
	for (int k = 0; k < 6; k++)
		at[k] = column_at(header, names[k]);
	assert_int_equal(at[0], 0);
	for (int k = 1; k < 6; k++)
		assert_true(at[k] > at[k - 1]);
	for (size_t i = 0; i < n; i++) {
		char row[1024], id[37];
		line_of(out, (int)i + 1, row, sizeof(row));
		public_id(&wants[i], id);
		const char *values[6] = {id,
					 wants[i].starts,
					 wants[i].ends,
					 wants[i].min[0] ? wants[i].min : "-",
					 wants[i].max[0] ? wants[i].max : "-",
					 wants[i].title};
		for (int k = 0; k < 6; k++) {
			/* Text columns start where their header does; numbers (MIN,
			 * MAX) are right-aligned, header and all, so they end where
			 * their header ends. */
			int right = k == 3 || k == 4;
			int pos = right ? at[k] + (int)strlen(names[k]) - (int)strlen(values[k]) : at[k];
			if (pos < 0 || (size_t)pos > strlen(row) ||
			    strncmp(row + pos, values[k], strlen(values[k])) != 0)
				fail_msg("%s: row %zu \"%s\" has no %s \"%s\" under its header at %d:\n%s", what, i + 1,
					 row, names[k], values[k], pos, out);
		}
	}
}

static void expect_json_lines(const char *what, const char *out, const struct want *wants, size_t n)
{
	if (count_lines(out) != (int)n)
		fail_msg("%s: %d lines, wanted %zu:\n%s", what, count_lines(out), n, out);
	for (size_t i = 0; i < n; i++) {
		char line[4096], id[37];
		line_of(out, (int)i, line, sizeof(line));
		json_t *j = parse_json(what, line, strlen(line));
		public_id(&wants[i], id);
		if (jstr(j, "id") == NULL || strcmp(jstr(j, "id"), id) != 0 ||
		    strcmp(jstr(j, "title"), wants[i].title) || strcmp(jstr(j, "baseId"), wants[i].base) ||
		    strcmp(jstr(j, "eventId"), wants[i].event) || strcmp(jstr(j, "startsAt"), wants[i].starts) ||
		    strcmp(jstr(j, "endsAt"), wants[i].ends) || jstr(j, "minPrice") == NULL ||
		    strcmp(jstr(j, "minPrice"), wants[i].min) || jstr(j, "maxPrice") == NULL ||
		    strcmp(jstr(j, "maxPrice"), wants[i].max))
			fail_msg("%s: line %zu is %s, wanted %s (%s)", what, i + 1, line, id, wants[i].title);
		json_decref(j);
	}
}

static void expect_cli(const char *what, int rc, int want_rc, const char *out, const char *err)
{
	if (rc != want_rc)
		fail_msg("%s: exit status %d, wanted %d\nstdout:\n%s\nstderr:\n%s", what, rc, want_rc, out ? out : "",
			 err ? err : "");
}

/* `rpcq events sync` says why the provider gave nothing, also when it
 * does not answer within the call's own time, and when nothing listens. */
static void test_the_cli_sync_names_a_hung_or_unreachable_provider(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	const char *args[] = {"--events", "5", "--zones", "2", "--mode", "hang", NULL};
	struct sim *sim = sim_start(args);
	/* The provider's timeout is longer than the call's: the fetch stops
	 * with time left to answer why. */
	harness_server *srv = server_start_with(&db, sim->feed_url, 0, "--provider-timeout-ms", "10000");
	char *out, *err;
	int64_t t0 = now_ms();
	int rc = cli(srv, (const char *[]){"--timeout", "3000", "events", "sync", NULL}, &out, &err);
	int64_t took = now_ms() - t0;
	expect_cli("sync, provider hanging, --timeout 3000", rc, 1, out, err);
	const char *p = strstr(err, ": no whole answer within ");
	long ms = p != NULL ? strtol(p + strlen(": no whole answer within "), NULL, 10) : -1;
	/* At most the call's 3000 ms less the reply's margin (250 ms), less
	 * however long the call took to reach rpcqd. */
	if (strncmp(err, "rpcq: UNAVAILABLE: provider ", 28) != 0 || ms <= 0 || ms > 2750)
		fail_msg("sync, provider hanging, --timeout 3000: stderr %s (wanted UNAVAILABLE, the provider's "
			 "timeout cut to what the call's 3000 ms leave)",
			 err);
	/* The reason above, not DEADLINE_EXCEEDED, says the answer came in the
	 * call's time; and well before the provider's own 10 s. */
	if (took > 8000)
		fail_msg("sync, provider hanging, --timeout 3000: took %lld ms", (long long)took);
	assert_string_equal(out, "");
	free(out);
	free(err);
	assert_int_equal(
		harness_sql_scalar(db.conninfo,
				   "SELECT (consecutive_failures = 1 AND last_error LIKE '%no whole answer%')::int"
				   " FROM events_fetch_state"),
		1);

	/* Nothing listening at the provider's address. */
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/feed", harness_free_port());
	harness_server *lone = server_start(&db, url, 0);
	rc = cli(lone, (const char *[]){"events", "sync", NULL}, &out, &err);
	expect_cli("sync, nothing listening", rc, 1, out, err);
	if (strncmp(err, "rpcq: UNAVAILABLE: provider http://127.0.0.1:", 45) != 0 || strstr(err, "onnect") == NULL)
		fail_msg("sync, nothing listening: stderr %s (wanted UNAVAILABLE and the failed connection)", err);
	free(out);
	free(err);
	/* Search answers all the same, from what is stored (nothing). */
	rc = cli(lone, (const char *[]){"events", "search", "--json", NULL}, &out, &err);
	expect_cli("search after the failed syncs", rc, 0, out, err);
	assert_string_equal(out, "");
	free(out);
	free(err);
	assert_int_equal(harness_sql_scalar(db.conninfo, "SELECT consecutive_failures FROM events_fetch_state"), 2);
}

static void test_the_cli_searches_gets_syncs_and_lists_changes(void **state)
{
	(void)state;
	harness_pg db;
	fresh_db(&db);
	char *r1 = shared_file("provider_v1_response_1.xml"), *r3 = shared_file("provider_v1_response_3.xml");
	const char *files[] = {r1, r3, NULL};
	struct sim *sim = sim_files(files);
	free(r1);
	free(r3);
	harness_server *srv = server_start(&db, sim->feed_url, 0);
	char *out, *err;
	int rc;

	/* --help of every command. */
	const char *helps[][4] = {{"events", "--help", NULL, NULL},
				  {"events", "search", "--help", NULL},
				  {"events", "get", "--help", NULL},
				  {"events", "sync", "--help", NULL},
				  {"events", "changes", "--help", NULL}};
	for (size_t i = 0; i < 5; i++) {
		rc = cli(srv, helps[i], &out, &err);
		expect_cli("--help", rc, 0, out, err);
		if (strstr(out, "usage: rpcq events") == NULL)
			fail_msg("rpcq %s %s --help printed no usage:\n%s", helps[i][0], helps[i][1], out);
		free(out);
		free(err);
	}
	rc = cli(srv, (const char *[]){"--help", NULL}, &out, &err);
	expect_cli("rpcq --help", rc, 0, out, err);
	assert_non_null(strstr(out, "events"));
	free(out);
	free(err);
	/* Usage errors: status 2. */
	const char *bad[][4] = {{"events", NULL, NULL, NULL},	       {"events", "frobnicate", NULL, NULL},
				{"events", "search", "--from", NULL},  {"events", "get", NULL, NULL},
				{"events", "changes", "--after", "x"}, {"events", "sync", "extra", NULL}};
	for (size_t i = 0; i < 6; i++) {
		rc = cli(srv, bad[i], &out, &err);
		expect_cli("a usage error", rc, 2, out, err);
		free(out);
		free(err);
	}

	/* Nothing stored yet: the header alone. */
	rc = cli(srv, (const char *[]){"events", "search", NULL}, &out, &err);
	expect_cli("search, nothing stored", rc, 0, out, err);
	expect_table("search, nothing stored", out, NULL, 0);
	free(out);
	free(err);

	/* sync: the changed events on stdout, the summary on stderr. */
	rc = cli(srv, (const char *[]){"events", "sync", NULL}, &out, &err);
	expect_cli("sync of response 1", rc, 0, out, err);
	const struct want created[] = {after_1[1], after_1[0], after_1[2]}; /* feed order */
	expect_table("sync of response 1", out, created, 3);
	if (strstr(err, "3 seen: 3 new, 0 changed, 0 unchanged, 0 skipped") == NULL)
		fail_msg("sync of response 1: summary on stderr: %s", err);
	free(out);
	free(err);

	/* search: table, JSON lines, bounds, pages. */
	rc = cli(srv, (const char *[]){"events", "search", NULL}, &out, &err);
	expect_cli("search", rc, 0, out, err);
	expect_table("search", out, after_1, 3);
	assert_string_equal(err, "");
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "search", "--json", NULL}, &out, &err);
	expect_cli("search --json", rc, 0, out, err);
	expect_json_lines("search --json", out, after_1, 3);
	char *all_json = out;
	free(err);
	rc = cli(srv, (const char *[]){"events", "search", "--page-size", "1", "--json", NULL}, &out, &err);
	expect_cli("search --page-size 1 --json", rc, 0, out, err);
	assert_string_equal(out, all_json);
	free(out);
	free(err);
	free(all_json);
	rc = cli(srv,
		 (const char *[]){"events", "search", "--from", "2021-06-30T21:00:00Z",
				  "--to=2021-07-01T00:00:00+02:00", "--json", NULL},
		 &out, &err);
	expect_cli("search --from --to", rc, 0, out, err);
	expect_json_lines("search --from --to", out, &after_1[1], 1);
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "search", "--from", "2021-02-30T00:00:00", NULL}, &out, &err);
	expect_cli("search --from 2021-02-30", rc, 1, out, err);
	if (strncmp(err, "rpcq: INVALID_ARGUMENT: --from: starts_at \"2021-02-30T00:00:00\": ", 65) != 0)
		fail_msg("search --from 2021-02-30: stderr %s", err);
	free(out);
	free(err);

	/* get: pretty JSON; unknown and malformed ids fail. */
	char id[37];
	public_id(&after_1[2], id);
	rc = cli(srv, (const char *[]){"events", "get", id, NULL}, &out, &err);
	expect_cli("get", rc, 0, out, err);
	json_t *j = parse_json("get", out, strlen(out));
	assert_string_equal(jstr(j, "id"), id);
	assert_string_equal(jstr(j, "title"), "Los Morancos");
	assert_string_equal(jstr(j, "minPrice"), "65.00");
	assert_string_equal(jstr(j, "maxPrice"), "75.00");
	assert_string_equal(jstr(j, "endsAt"), "2021-07-31T21:00:00");
	assert_true(count_lines(out) > 5); /* indented, one member a line */
	json_decref(j);
	free(out);
	free(err);
	char missing[37];
	event_public_id("444", "1642", missing);
	rc = cli(srv, (const char *[]){"events", "get", missing, NULL}, &out, &err);
	expect_cli("get of an id never stored", rc, 1, out, err);
	if (strncmp(err, "rpcq: NOT_FOUND: ", 17) != 0)
		fail_msg("get of an id never stored: stderr %s", err);
	assert_string_equal(out, "");
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "get", "not-a-uuid", NULL}, &out, &err);
	expect_cli("get not-a-uuid", rc, 1, out, err);
	if (strncmp(err, "rpcq: INVALID_ARGUMENT: ", 24) != 0)
		fail_msg("get not-a-uuid: stderr %s", err);
	free(out);
	free(err);

	/* sync failing: exit 1 with the reason, nothing printed on stdout. */
	sim_control(sim, "mode=error");
	rc = cli(srv, (const char *[]){"events", "sync", NULL}, &out, &err);
	expect_cli("sync, provider answering 500", rc, 1, out, err);
	if (strncmp(err, "rpcq: UNAVAILABLE: ", 19) != 0)
		fail_msg("sync, provider answering 500: stderr %s", err);
	assert_string_equal(out, "");
	free(out);
	free(err);
	sim_control(sim, "mode=garbage");
	rc = cli(srv, (const char *[]){"events", "sync", "--json", NULL}, &out, &err);
	expect_cli("sync, provider answering garbage", rc, 1, out, err);
	if (strncmp(err, "rpcq: FAILED_PRECONDITION: ", 27) != 0)
		fail_msg("sync, provider answering garbage: stderr %s", err);
	assert_string_equal(out, "");
	free(out);
	free(err);
	sim_control(sim, "mode=ok");

	rc = cli(srv, (const char *[]){"events", "sync", "--json", NULL}, &out, &err);
	expect_cli("sync --json of response 3", rc, 0, out, err);
	const struct want changed[] = {CAMELA("2021-06-30T21:30:00", "20.00"),
				       MORANCOS("2021-07-31T21:00:00", "65.00")};
	expect_json_lines("sync --json of response 3", out, changed, 2);
	if (strstr(err, "2 seen: 0 new, 2 changed, 0 unchanged, 0 skipped") == NULL)
		fail_msg("sync of response 3: summary on stderr: %s", err);
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "sync", NULL}, &out, &err);
	expect_cli("sync with nothing new", rc, 0, out, err);
	assert_string_equal(out, "");
	if (strstr(err, "2 seen: 0 new, 0 changed, 2 unchanged, 0 skipped") == NULL)
		fail_msg("sync with nothing new: summary on stderr: %s", err);
	free(out);
	free(err);

	/* changes: the log, as a table and as JSON lines. */
	rc = cli(srv, (const char *[]){"events", "changes", NULL}, &out, &err);
	expect_cli("changes", rc, 0, out, err);
	if (count_lines(out) != 6)
		fail_msg("changes: wanted a header and 5 rows:\n%s", out);
	char line[1024];
	line_of(out, 0, line, sizeof(line));
	assert_non_null(strstr(line, "SEQ"));
	assert_non_null(strstr(line, "KIND"));
	line_of(out, 1, line, sizeof(line));
	assert_non_null(strstr(line, "created"));
	line_of(out, 5, line, sizeof(line));
	assert_non_null(strstr(line, "updated"));
	assert_non_null(strstr(line, "Los Morancos"));
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "changes", "--after", "3", "--json", NULL}, &out, &err);
	expect_cli("changes --after 3 --json", rc, 0, out, err);
	assert_int_equal(count_lines(out), 2);
	for (int i = 0; i < 2; i++) {
		line_of(out, i, line, sizeof(line));
		j = parse_json("changes --json", line, strlen(line));
		char seq[8];
		snprintf(seq, sizeof(seq), "%d", 4 + i);
		assert_string_equal(jstr(j, "seq"), seq);
		json_t *change = json_object_get(j, "change");
		assert_string_equal(jstr(change, "kind"), "UPDATED");
		public_id(&changed[i], id);
		assert_string_equal(jstr(json_object_get(change, "event"), "id"), id);
		json_decref(j);
	}
	free(out);
	free(err);
	rc = cli(srv, (const char *[]){"events", "changes", "--after", "5", NULL}, &out, &err);
	expect_cli("changes --after 5", rc, 0, out, err);
	assert_int_equal(count_lines(out), 1); /* the header alone */
	free(out);
	free(err);

	/* Changes that retention trimmed are said to be gone, not skipped over
	 * in silence. */
	harness_sql(db.conninfo, "DELETE FROM stream_log WHERE topic = 'events.changed' AND seq <= 2");
	harness_sql(db.conninfo, "UPDATE stream_topics SET first_retained_seq = 3 WHERE topic = 'events.changed'");
	rc = cli(srv, (const char *[]){"events", "changes", NULL}, &out, &err);
	if (rc != 0 || count_lines(out) != 4 ||
	    strstr(err, "rpcq: changes 1 to 2 are no longer kept (trimmed by the stream's retention)") == NULL)
		fail_msg("changes after a trim: exit %d, stdout:\n%s\nstderr:\n%s", rc, out, err);
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_the_three_real_responses_give_exactly_the_events_the_rules_imply,
					  teardown_test),
		cmocka_unit_test_teardown(test_the_plan_vocabulary_gives_its_four_plans, teardown_test),
		cmocka_unit_test_teardown(
			test_malformed_events_are_skipped_offline_ignored_and_prices_null_without_tickets,
			teardown_test),
		cmocka_unit_test_teardown(test_get_search_answers_field_by_field_as_the_openapi_description_says,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_every_failure_of_the_provider_leaves_the_stored_events_and_search_as_they_were,
			teardown_test),
		cmocka_unit_test_teardown(test_get_search_answers_while_every_worker_is_busy, teardown_test),
		cmocka_unit_test_teardown(test_pipelined_searches_are_answered_in_order, teardown_test),
		cmocka_unit_test_teardown(test_get_search_answers_500_in_the_error_shape_until_the_index_is_loaded,
					  teardown_test),
		cmocka_unit_test_teardown(test_search_answers_from_memory_while_the_database_is_down, teardown_test),
		cmocka_unit_test_teardown(test_syncs_on_two_servers_at_once_fetch_one_at_a_time, teardown_test),
		cmocka_unit_test_teardown(test_a_sync_after_another_process_fetch_succeeds_with_one_worker,
					  teardown_test),
		cmocka_unit_test_teardown(test_a_failing_provider_is_retried_on_one_backoff_between_two_servers,
					  teardown_test),
		cmocka_unit_test_teardown(test_two_servers_on_one_database_fetch_once_per_interval_between_them,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_syncs_of_thousands_of_changes_through_either_server_converge_on_the_database,
			teardown_test),
		cmocka_unit_test_teardown(test_a_change_one_server_ingests_shows_in_the_other_within_a_second,
					  teardown_test),
		cmocka_unit_test_teardown(
			test_ids_are_uuidv5_of_base_and_event_and_the_same_after_a_restart_and_elsewhere,
			teardown_test),
		cmocka_unit_test_teardown(
			test_the_change_stream_carries_each_change_once_in_order_across_a_subscriber_restart,
			teardown_test),
		cmocka_unit_test_teardown(test_an_event_listed_twice_in_a_feed_takes_its_later_values_once,
					  teardown_test),
		cmocka_unit_test_teardown(test_the_cli_searches_gets_syncs_and_lists_changes, teardown_test),
		cmocka_unit_test_teardown(test_the_cli_sync_names_a_hung_or_unreachable_provider, teardown_test),
	};
	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
