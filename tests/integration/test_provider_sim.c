/*
 * The events provider simulator (tools/provider-sim) as the fetcher sees it:
 * a real simulator process on a free loopback port, HTTP from libcurl, and
 * every feed read back with expat, the parser the ingest uses. Generated
 * feeds are checked element by element (counts, ids, dates, exact prices)
 * in both vocabularies and at the benchmark's size; the real responses
 * replay byte for byte; each failure mode, count=K, reset and /stats are
 * driven through POST /control, and the slow and hung requests are checked
 * not to hold up the simulator's other requests or its exit on SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <expat.h>
#include <jansson.h>

#include "harness.h"

#define MAX_SIMS 8
#define READY_MS 10000
#define STOP_MS 10000

typedef struct sim {
	pid_t pid;
	char url[64]; /* http://127.0.0.1:<port> */
	char log_path[256];
} sim;

static sim *live[MAX_SIMS];
static char log_dir[128];

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

static void print_log(const sim *s)
{
	char *text = harness_read_file(s->log_path, NULL);
	size_t n = strlen(text);
	print_message("--- %s (last 3000 bytes) ---\n%s\n---\n", s->log_path, n > 3000 ? text + n - 3000 : text);
	free(text);
}

/* Waits up to ms for the process to exit; its status (128+signal), or -1. */
static int wait_exit(pid_t pid, int ms)
{
	int64_t deadline = now_ms() + ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= deadline)
			return -1;
		sleep_ms(10);
	}
}

static int try_start(sim *s, const char *const *args)
{
	const char *exe = getenv("PROVIDER_SIM");
	if (exe == NULL || exe[0] == '\0')
		fail_msg("PROVIDER_SIM is not set (run the test through ctest)");
	int port = harness_free_port();
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", port);
	const char *argv[64];
	int n = 0;
	argv[n++] = exe;
	argv[n++] = "--listen";
	argv[n++] = s->url;
	for (int i = 0; args != NULL && args[i] != NULL && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;

	int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("cannot create %s: %s", s->log_path, strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(fd);
	s->pid = pid;
	int64_t deadline = now_ms() + READY_MS;
	char url[128];
	snprintf(url, sizeof(url), "%s/stats", s->url);
	while (now_ms() < deadline) {
		harness_http_reply r;
		int rv = harness_http_timeout("GET", url, NULL, NULL, 0, 500, &r);
		long status = r.status;
		harness_http_reply_free(&r);
		if (rv == 0 && status == 200)
			return 0;
		if (wait_exit(pid, 0) >= 0) {
			s->pid = 0;
			return -1;
		}
		sleep_ms(20);
	}
	print_log(s);
	fail_msg("provider-sim did not answer on %s within %d ms", s->url, READY_MS);
	return -1;
}

/* Starts the simulator on a free port with extra args (NULL-terminated, may
 * be NULL) and waits until it answers; a port taken meanwhile is retried. */
static void sim_start(sim *s, const char *const *args)
{
	static int seq;
	memset(s, 0, sizeof(*s));
	if (log_dir[0] == '\0') {
		snprintf(log_dir, sizeof(log_dir), "/tmp/rpcq-provider-sim-XXXXXX");
		if (mkdtemp(log_dir) == NULL)
			fail_msg("mkdtemp: %s", strerror(errno));
	}
	snprintf(s->log_path, sizeof(s->log_path), "%s/sim-%d.log", log_dir, ++seq);
	for (int attempt = 0; attempt < 3; attempt++) {
		if (try_start(s, args) == 0) {
			for (int i = 0; i < MAX_SIMS; i++) {
				if (live[i] == NULL) {
					live[i] = s;
					return;
				}
			}
			fail_msg("more than %d simulators at once", MAX_SIMS);
		}
	}
	print_log(s);
	fail_msg("provider-sim exited at start three times");
}

/* SIGTERM and wait; returns its exit status (or -1 when it did not exit
 * within STOP_MS: then it is killed). */
static int sim_stop(sim *s)
{
	for (int i = 0; i < MAX_SIMS; i++) {
		if (live[i] == s)
			live[i] = NULL;
	}
	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	int st = wait_exit(s->pid, STOP_MS);
	if (st < 0) {
		kill(-s->pid, SIGKILL);
		wait_exit(s->pid, STOP_MS);
	}
	s->pid = 0;
	return st;
}

static int teardown(void **state)
{
	for (int i = 0; i < MAX_SIMS; i++) {
		if (live[i] != NULL)
			(void)sim_stop(live[i]);
	}
	return 0;
}

static void remove_logs(void)
{
	if (log_dir[0] == '\0')
		return;
	const char *argv[] = {"rm", "-rf", log_dir, NULL};
	(void)harness_run(argv, NULL, NULL, NULL, 10000);
}

/*
 * HTTP helpers.
 */

static harness_http_reply get(const sim *s, const char *path)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", s->url, path);
	harness_http_reply r;
	int rv = harness_http("GET", url, NULL, NULL, 0, &r);
	if (rv != 0)
		fail_msg("GET %s: %s", url, r.error);
	return r;
}

/* The body of GET /feed, which must be a 200. */
static char *feed(const sim *s, size_t *len)
{
	harness_http_reply r = get(s, "/feed");
	if (r.status != 200)
		fail_msg("GET /feed: status %ld", r.status);
	char *body = r.body;
	*len = r.body_len;
	r.body = NULL;
	harness_http_reply_free(&r);
	return body;
}

static long control(const sim *s, const char *query)
{
	char url[256];
	snprintf(url, sizeof(url), "%s/control?%s", s->url, query);
	harness_http_reply r;
	if (harness_http("POST", url, NULL, NULL, 0, &r) != 0)
		fail_msg("POST %s: %s", url, r.error);
	long status = r.status;
	harness_http_reply_free(&r);
	return status;
}

static json_t *stats(const sim *s)
{
	harness_http_reply r = get(s, "/stats");
	assert_int_equal(r.status, 200);
	json_error_t err;
	json_t *j = json_loadb(r.body, r.body_len, 0, &err);
	if (j == NULL)
		fail_msg("/stats: not JSON (%s): %s", err.text, r.body);
	harness_http_reply_free(&r);
	return j;
}

static long long stat_int(json_t *j, const char *group, const char *key)
{
	json_t *v = group ? json_object_get(json_object_get(j, group), key) : json_object_get(j, key);
	if (!json_is_integer(v))
		fail_msg("/stats: %s%s%s is not an integer", group ? group : "", group ? "." : "", key);
	return json_integer_value(v);
}

/* A request on a thread of its own, for what must not hold up others. */
struct bg {
	pthread_t thread;
	char url[256];
	int timeout_ms;
	int rv;
	harness_http_reply reply;
};

static void *bg_main(void *arg)
{
	struct bg *b = arg;
	b->rv = harness_http_timeout("GET", b->url, NULL, NULL, 0, b->timeout_ms, &b->reply);
	return NULL;
}

static void bg_start(struct bg *b, const sim *s, const char *path, int timeout_ms)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->url, sizeof(b->url), "%s%s", s->url, path);
	b->timeout_ms = timeout_ms;
	if (pthread_create(&b->thread, NULL, bg_main, b) != 0)
		fail_msg("pthread_create failed");
}

static void bg_join(struct bg *b)
{
	pthread_join(b->thread, NULL);
}

/* Polls /stats until pending.<what> is n, for up to ms; returns the last value. */
static long long wait_pending(const sim *s, const char *what, long long n, int ms)
{
	int64_t deadline = now_ms() + ms;
	long long v;
	for (;;) {
		json_t *j = stats(s);
		v = stat_int(j, "pending", what);
		json_decref(j);
		if (v == n || now_ms() >= deadline)
			return v;
		sleep_ms(10);
	}
}

/*
 * The feed, read back with expat.
 */

struct pair {
	unsigned long base, event;
	/* What a response may change of the event: */
	char end[24];
	uint64_t prices, capacities; /* hashes of its zones' values, in order */
	bool offline;
};

struct scan {
	bool plan;
	int depth;
	long bases, events, zones, offline, two_event_bases;
	long cur_events;
	unsigned long cur_base;
	bool cur_offline;
	char bad[256]; /* the first problem */
	struct pair *pairs;
	size_t npairs, cap;
	bool well_formed;
};

static const char *attr(const XML_Char **a, const char *name)
{
	for (int i = 0; a[i] != NULL; i += 2) {
		if (strcmp(a[i], name) == 0)
			return a[i + 1];
	}
	return NULL;
}

static bool is_uint(const char *v)
{
	if (v == NULL || *v == '\0')
		return false;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return false;
	}
	return true;
}

/* An exact decimal with two digits: "20.00". */
static bool is_price(const char *v)
{
	if (v == NULL)
		return false;
	const char *dot = strchr(v, '.');
	if (dot == NULL || dot == v || strlen(dot) != 3)
		return false;
	for (const char *p = v; *p; p++) {
		if (p != dot && (*p < '0' || *p > '9'))
			return false;
	}
	return true;
}

/* YYYY-MM-DDTHH:MM:SS naming a real calendar day. */
static bool is_datetime(const char *v)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (v == NULL || strlen(v) != 19)
		return false;
	for (int i = 0; i < 19; i++) {
		char want = i == 4 || i == 7 ? '-' : i == 10 ? 'T' : i == 13 || i == 16 ? ':' : '0';
		if (want == '0' ? (v[i] < '0' || v[i] > '9') : v[i] != want)
			return false;
	}
	int y = (v[0] - '0') * 1000 + (v[1] - '0') * 100 + (v[2] - '0') * 10 + (v[3] - '0');
	int m = (v[5] - '0') * 10 + (v[6] - '0'), d = (v[8] - '0') * 10 + (v[9] - '0');
	int hh = (v[11] - '0') * 10 + (v[12] - '0'), mm = (v[14] - '0') * 10 + (v[15] - '0');
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || hh > 23 || mm > 59)
		return false;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return !(m == 2 && d == 29 && !leap);
}

__attribute__((format(printf, 2, 3))) static void scan_bad(struct scan *s, const char *fmt, ...)
{
	if (s->bad[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->bad, sizeof(s->bad), fmt, ap);
	va_end(ap);
}

static void on_start(void *arg, const XML_Char *name, const XML_Char **a)
{
	struct scan *s = arg;
	const char *list = s->plan ? "planList" : "eventList", *base = s->plan ? "base_plan" : "base_event",
		   *base_id = s->plan ? "base_plan_id" : "base_event_id", *child = s->plan ? "plan" : "event",
		   *child_id = s->plan ? "plan_id" : "event_id",
		   *start = s->plan ? "plan_start_date" : "event_start_date",
		   *end = s->plan ? "plan_end_date" : "event_end_date";
	int depth = s->depth++;
	if (depth == 0) {
		if (strcmp(name, list) != 0)
			scan_bad(s, "root <%s>, not <%s>", name, list);
		const char *v = attr(a, "version");
		if (v == NULL || strcmp(v, "1.0") != 0)
			scan_bad(s, "root without version=\"1.0\"");
	} else if (depth == 1) {
		if (strcmp(name, "output") != 0)
			scan_bad(s, "<%s> under the root, not <output>", name);
	} else if (depth == 2) {
		if (strcmp(name, base) != 0) {
			scan_bad(s, "<%s> in <output>, not <%s>", name, base);
			return;
		}
		const char *id = attr(a, base_id), *mode = attr(a, "sell_mode"), *title = attr(a, "title");
		if (!is_uint(id) || mode == NULL || title == NULL || title[0] == '\0')
			scan_bad(s, "<%s> %ld: bad or missing %s, sell_mode or title", base, s->bases, base_id);
		else if (strcmp(mode, "online") != 0 && strcmp(mode, "offline") != 0)
			scan_bad(s, "<%s %s=%s>: sell_mode=%s", base, base_id, id, mode);
		s->bases++;
		s->offline += mode != NULL && strcmp(mode, "offline") == 0;
		s->cur_events = 0;
		s->cur_base = id ? strtoul(id, NULL, 10) : 0;
		s->cur_offline = mode != NULL && strcmp(mode, "offline") == 0;
	} else if (depth == 3) {
		if (strcmp(name, child) != 0) {
			scan_bad(s, "<%s> in a base element, not <%s>", name, child);
			return;
		}
		const char *id = attr(a, child_id), *st = attr(a, start), *en = attr(a, end);
		const char *from = attr(a, "sell_from"), *to = attr(a, "sell_to"), *so = attr(a, "sold_out");
		if (!is_uint(id) || !is_datetime(st) || !is_datetime(en) || !is_datetime(from) || !is_datetime(to))
			scan_bad(s, "<%s> of base %lu: bad id or date", child, s->cur_base);
		else if (strcmp(en, st) < 0 || strcmp(to, st) > 0 || strcmp(from, to) > 0)
			scan_bad(s, "<%s %s=%s> of base %lu: dates out of order", child, child_id, id, s->cur_base);
		if (so == NULL || (strcmp(so, "true") != 0 && strcmp(so, "false") != 0))
			scan_bad(s, "<%s> of base %lu: sold_out", child, s->cur_base);
		s->events++;
		if (++s->cur_events == 2)
			s->two_event_bases++;
		if (s->npairs == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 1024;
			s->pairs = realloc(s->pairs, s->cap * sizeof(*s->pairs));
			assert_non_null(s->pairs);
		}
		struct pair *pr = &s->pairs[s->npairs++];
		*pr = (struct pair){
			.base = s->cur_base, .event = id ? strtoul(id, NULL, 10) : 0, .offline = s->cur_offline};
		snprintf(pr->end, sizeof(pr->end), "%s", en ? en : "");
	} else if (depth == 4) {
		if (strcmp(name, "zone") != 0) {
			scan_bad(s, "<%s> in an event, not <zone>", name);
			return;
		}
		const char *num = attr(a, "numbered"), *zname = attr(a, "name");
		if (!is_uint(attr(a, "zone_id")) || !is_uint(attr(a, "capacity")) || !is_price(attr(a, "price")) ||
		    zname == NULL || zname[0] == '\0' || num == NULL ||
		    (strcmp(num, "true") != 0 && strcmp(num, "false") != 0))
			scan_bad(s, "<zone> of base %lu: bad attribute (price=%s)", s->cur_base,
				 attr(a, "price") ? attr(a, "price") : "(none)");
		s->zones++;
		if (s->npairs > 0) {
			struct pair *pr = &s->pairs[s->npairs - 1];
			for (const char *c = attr(a, "price"); c != NULL && *c != '\0'; c++)
				pr->prices = pr->prices * 31 + (unsigned char)*c;
			for (const char *c = attr(a, "capacity"); c != NULL && *c != '\0'; c++)
				pr->capacities = pr->capacities * 31 + (unsigned char)*c;
			pr->prices = pr->prices * 31 + '|';
			pr->capacities = pr->capacities * 31 + '|';
		}
	} else {
		scan_bad(s, "<%s> nested too deep", name);
	}
}

static void on_end(void *arg, const XML_Char *name)
{
	struct scan *s = arg;
	s->depth--;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->base != y->base)
		return x->base < y->base ? -1 : 1;
	return x->event < y->event ? -1 : x->event > y->event;
}

static int cmp_event(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	return x->event < y->event ? -1 : x->event > y->event;
}

/* Parses body as a feed of the vocabulary; fills *s (free with scan_fini). */
static void scan_feed(struct scan *s, bool plan, const char *body, size_t len)
{
	memset(s, 0, sizeof(*s));
	s->plan = plan;
	XML_Parser p = XML_ParserCreate(NULL);
	assert_non_null(p);
	XML_SetUserData(p, s);
	XML_SetElementHandler(p, on_start, on_end);
	s->well_formed = XML_Parse(p, body, (int)len, 1) == XML_STATUS_OK;
	XML_ParserFree(p);
}

static void scan_fini(struct scan *s)
{
	free(s->pairs);
	s->pairs = NULL;
}

/* Pairs (base id, event id) are unique; returns how many events share an
 * event id with an event of another base element. */
static long check_identity(struct scan *s)
{
	qsort(s->pairs, s->npairs, sizeof(*s->pairs), cmp_pair);
	for (size_t i = 1; i < s->npairs; i++) {
		if (cmp_pair(&s->pairs[i - 1], &s->pairs[i]) == 0)
			fail_msg("(base %lu, event %lu) twice", s->pairs[i].base, s->pairs[i].event);
	}
	qsort(s->pairs, s->npairs, sizeof(*s->pairs), cmp_event);
	long shared = 0;
	for (size_t i = 1; i < s->npairs; i++)
		shared += s->pairs[i - 1].event == s->pairs[i].event;
	return shared;
}

/* What changed from one response to the next, event by event. */
struct changes {
	long appeared, gone, offline, ends, prices, capacities;
};

static void count_changes(struct scan *before, struct scan *after, struct changes *c)
{
	qsort(before->pairs, before->npairs, sizeof(*before->pairs), cmp_pair);
	qsort(after->pairs, after->npairs, sizeof(*after->pairs), cmp_pair);
	size_t i = 0, j = 0;
	while (i < before->npairs || j < after->npairs) {
		int d = i == before->npairs  ? 1
			: j == after->npairs ? -1
					     : cmp_pair(&before->pairs[i], &after->pairs[j]);
		if (d < 0) {
			c->gone++;
			i++;
		} else if (d > 0) {
			c->appeared++;
			j++;
		} else {
			const struct pair *x = &before->pairs[i++], *y = &after->pairs[j++];
			c->offline += !x->offline && y->offline;
			c->ends += strcmp(x->end, y->end) != 0;
			c->prices += x->prices != y->prices;
			c->capacities += x->capacities != y->capacities;
		}
	}
}

static void assert_feed(const char *body, size_t len, bool plan, long events, long zones_per_event)
{
	struct scan s;
	scan_feed(&s, plan, body, len);
	if (!s.well_formed)
		fail_msg("the feed is not well-formed XML (%zu bytes)", len);
	if (s.bad[0] != '\0')
		fail_msg("the feed: %s", s.bad);
	assert_int_equal(s.events, events);
	assert_int_equal(s.zones, events * zones_per_event);
	scan_fini(&s);
}

/*
 * The tests.
 */

static void test_a_generated_event_feed_is_well_formed_with_the_right_counts(void **state)
{
	sim s;
	const char *args[] = {"--events", "50", "--zones", "4", "--seed", "7", NULL};
	sim_start(&s, args);
	size_t len;
	char *body = feed(&s, &len);
	struct scan sc;
	scan_feed(&sc, false, body, len);
	assert_true(sc.well_formed);
	if (sc.bad[0] != '\0')
		fail_msg("%s", sc.bad);
	assert_int_equal(sc.events, 50);
	assert_int_equal(sc.zones, 200);
	assert_int_equal(sc.offline, 0);
	assert_true(sc.two_event_bases >= 1); /* some base elements hold two events */
	assert_true(sc.bases == 50 - sc.two_event_bases);
	assert_true(check_identity(&sc) >= 1); /* event ids repeat across base elements */
	scan_fini(&sc);
	assert_non_null(strstr(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<eventList "));
	assert_non_null(strstr(body, "sell_mode=\"online\""));
	free(body);

	/* GET / is the feed as well (the next response). */
	harness_http_reply r = get(&s, "/");
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(harness_http_header(&r, "Content-Type"), "xml"));
	assert_feed(r.body, r.body_len, false, 50, 4);
	harness_http_reply_free(&r);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_a_generated_plan_feed_is_well_formed_with_the_right_counts(void **state)
{
	sim s;
	const char *args[] = {"--vocabulary", "plan", "--events", "30", "--zones", "3", NULL};
	sim_start(&s, args);
	size_t len;
	char *body = feed(&s, &len);
	struct scan sc;
	scan_feed(&sc, true, body, len);
	assert_true(sc.well_formed);
	if (sc.bad[0] != '\0')
		fail_msg("%s", sc.bad);
	assert_int_equal(sc.events, 30);
	assert_int_equal(sc.zones, 90);
	(void)check_identity(&sc);
	scan_fini(&sc);
	assert_null(strstr(body, "event"));
	free(body);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_responses_change_between_calls_and_repeat_for_the_same_seed(void **state)
{
	sim a, b;
	const char *args[] = {"--events", "200", "--zones", "5", "--seed", "42", NULL};
	sim_start(&a, args);
	sim_start(&b, args);
	char *ra[6];
	size_t la[6];
	long offline_seen = 0;
	struct scan prev = {0};
	struct changes ch = {0};
	for (int k = 0; k < 6; k++) {
		ra[k] = feed(&a, &la[k]);
		size_t lb;
		char *rb = feed(&b, &lb);
		/* Response k is a function of the options and k. */
		assert_int_equal(la[k], lb);
		assert_memory_equal(ra[k], rb, lb);
		free(rb);
		struct scan sc;
		scan_feed(&sc, false, ra[k], la[k]);
		assert_true(sc.well_formed);
		if (sc.bad[0] != '\0')
			fail_msg("response %d: %s", k + 1, sc.bad);
		assert_int_equal(sc.events, 200); /* appearing ones make up for those gone */
		offline_seen += sc.offline;
		if (k > 0) {
			count_changes(&prev, &sc, &ch);
			scan_fini(&prev);
		}
		prev = sc;
		if (k > 0)
			assert_true(la[k] != la[k - 1] || memcmp(ra[k], ra[k - 1], la[k]) != 0);
	}
	scan_fini(&prev);
	assert_true(offline_seen > 0);
	/* Over five steps, every kind of change the provider makes. */
	print_message("5 steps of 200 events: %ld appeared, %ld gone, %ld went offline, %ld end times, %ld prices, "
		      "%ld capacities changed\n",
		      ch.appeared, ch.gone, ch.offline, ch.ends, ch.prices, ch.capacities);
	assert_true(ch.appeared > 0 && ch.gone > 0 && ch.offline > 0);
	assert_true(ch.ends > 0 && ch.prices > 0 && ch.capacities > 0);
	for (int k = 0; k < 6; k++)
		free(ra[k]);
	json_t *j = stats(&a);
	assert_int_equal(stat_int(j, NULL, "response"), 6);
	json_decref(j);
	assert_int_equal(sim_stop(&a), 0);
	assert_int_equal(sim_stop(&b), 0);

	/* --change 0: nothing changes. */
	const char *still[] = {"--change", "0", NULL};
	sim_start(&a, still);
	size_t l1, l2;
	char *r1 = feed(&a, &l1), *r2 = feed(&a, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(r1, r2, l1);
	free(r1);
	free(r2);
	assert_int_equal(sim_stop(&a), 0);
}

static void test_a_feed_of_5000_events_of_200_zones_is_served_whole(void **state)
{
	sim s;
	const char *args[] = {"--events", "5000", "--zones", "200", NULL};
	sim_start(&s, args);
	int64_t t0 = now_ms();
	size_t len;
	char *body = feed(&s, &len);
	print_message("5000 x 200: %zu bytes in %lld ms\n", len, (long long)(now_ms() - t0));
	assert_true(len > 80u * 1000 * 1000);
	assert_feed(body, len, false, 5000, 200);
	free(body);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_file_mode_replays_the_real_responses_in_order(void **state)
{
	char paths[3][512];
	const char *args[4];
	char *want[3];
	size_t want_len[3];
	for (int i = 0; i < 3; i++) {
		char rel[64];
		snprintf(rel, sizeof(rel), "data/events/provider_v1_response_%d.xml", i + 1);
		harness_shared_path(rel, paths[i], sizeof(paths[i]));
		args[i] = paths[i];
		want[i] = harness_read_file(paths[i], &want_len[i]);
	}
	args[3] = NULL;
	sim s;
	sim_start(&s, args);
	for (int k = 0; k < 5; k++) {
		int i = k < 3 ? k : 2; /* then the last one again */
		size_t len;
		char *body = feed(&s, &len);
		assert_int_equal(len, want_len[i]);
		assert_memory_equal(body, want[i], len);
		free(body);
	}
	/* Reset: from the first file again. */
	assert_int_equal(control(&s, "reset=1"), 200);
	size_t len;
	char *body = feed(&s, &len);
	assert_int_equal(len, want_len[0]);
	assert_memory_equal(body, want[0], len);
	free(body);
	for (int i = 0; i < 3; i++)
		free(want[i]);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_error_mode_answers_500_for_count_requests_then_ok(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=error&count=2"), 200);
	for (int i = 0; i < 2; i++) {
		harness_http_reply r = get(&s, "/feed");
		assert_int_equal(r.status, 500);
		assert_true(r.body_len > 0 && r.body_len < 200);
		harness_http_reply_free(&r);
	}
	size_t len;
	char *body = feed(&s, &len);
	assert_feed(body, len, false, 50, 4);
	free(body);
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, NULL, "feed_requests"), 3);
	assert_int_equal(stat_int(j, "served", "error"), 2);
	assert_int_equal(stat_int(j, "served", "ok"), 1);
	assert_int_equal(stat_int(j, NULL, "response"), 1); /* errors consume no response */
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "ok");
	json_decref(j);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_garbage_mode_answers_200_with_bytes_that_are_not_xml(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=garbage"), 200);
	for (int i = 0; i < 2; i++) {
		harness_http_reply r = get(&s, "/feed");
		assert_int_equal(r.status, 200);
		assert_true(r.body_len > 0);
		struct scan sc;
		scan_feed(&sc, false, r.body, r.body_len);
		assert_false(sc.well_formed);
		assert_int_equal(sc.events, 0);
		scan_fini(&sc);
		harness_http_reply_free(&r);
	}
	/* Until changed. */
	json_t *j = stats(&s);
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "garbage");
	assert_int_equal(stat_int(j, "served", "garbage"), 2);
	json_decref(j);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_truncated_mode_cuts_the_next_response_inside_an_element(void **state)
{
	sim s;
	const char *args[] = {"--events", "40", NULL};
	sim_start(&s, args);
	size_t l1;
	char *r1 = feed(&s, &l1);
	assert_int_equal(control(&s, "mode=truncated&count=1"), 200);
	harness_http_reply r = get(&s, "/feed");
	assert_int_equal(r.status, 200);
	struct scan sc;
	scan_feed(&sc, false, r.body, r.body_len);
	assert_false(sc.well_formed);
	scan_fini(&sc);
	/* Cut inside a tag: after the last '<' there is no '>'. */
	char *lt = NULL;
	for (size_t i = 0; i < r.body_len; i++) {
		if (r.body[i] == '<')
			lt = r.body + i;
	}
	assert_non_null(lt);
	assert_null(memchr(lt, '>', r.body_len - (size_t)(lt - r.body)));
	/* It was response 2 cut short; the next good answer serves it whole. */
	size_t l2;
	char *r2 = feed(&s, &l2);
	assert_feed(r2, l2, false, 40, 4);
	assert_true(r.body_len < l2);
	assert_memory_equal(r.body, r2, r.body_len);
	assert_true(l1 != l2 || memcmp(r1, r2, l1) != 0);
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, NULL, "response"), 2);
	assert_int_equal(stat_int(j, "served", "truncated"), 1);
	json_decref(j);
	harness_http_reply_free(&r);
	free(r1);
	free(r2);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_slow_mode_answers_late_without_holding_up_other_requests(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=slow&delay_ms=800&count=1"), 200);
	int64_t t0 = now_ms();
	struct bg b;
	bg_start(&b, &s, "/feed", 10000);
	assert_int_equal(wait_pending(&s, "slow", 1, 2000), 1);
	/* Meanwhile the simulator answers: /stats, and the next feed (ok again). */
	int64_t t1 = now_ms();
	size_t len;
	char *body = feed(&s, &len);
	free(body);
	assert_true(now_ms() - t1 < 500);
	bg_join(&b);
	assert_int_equal(b.rv, 0);
	assert_int_equal(b.reply.status, 200);
	assert_true(now_ms() - t0 >= 800);
	assert_feed(b.reply.body, b.reply.body_len, false, 50, 4);
	harness_http_reply_free(&b.reply);
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, "served", "slow"), 1);
	assert_int_equal(stat_int(j, "served", "ok"), 1);
	assert_int_equal(stat_int(j, NULL, "response"), 2);
	assert_int_equal(stat_int(j, "pending", "slow"), 0);
	json_decref(j);
	assert_int_equal(sim_stop(&s), 0);

	/* --mode slow --delay-ms at start. */
	const char *args[] = {"--mode", "slow", "--delay-ms", "300", NULL};
	sim_start(&s, args);
	t0 = now_ms();
	body = feed(&s, &len);
	assert_true(now_ms() - t0 >= 300);
	free(body);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_hang_mode_holds_the_request_until_the_client_gives_up(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=hang&count=2"), 200);
	struct bg b1, b2;
	bg_start(&b1, &s, "/feed", 600);
	bg_start(&b2, &s, "/", 1500);
	assert_int_equal(wait_pending(&s, "hang", 2, 2000), 2);
	/* Others are answered meanwhile. */
	int64_t t0 = now_ms();
	size_t len;
	char *body = feed(&s, &len);
	free(body);
	assert_true(now_ms() - t0 < 500);
	bg_join(&b1);
	assert_true(b1.rv != 0);
	assert_int_equal(b1.reply.status, 0);
	harness_http_reply_free(&b1.reply);
	/* The simulator lets go of a connection once its client hung up. */
	assert_int_equal(wait_pending(&s, "hang", 1, 2000), 1);
	bg_join(&b2);
	assert_true(b2.rv != 0);
	harness_http_reply_free(&b2.reply);
	assert_int_equal(wait_pending(&s, "hang", 0, 2000), 0);
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, "served", "hang"), 2);
	assert_int_equal(stat_int(j, "served", "ok"), 1);
	assert_int_equal(stat_int(j, NULL, "feed_requests"), 3);
	json_decref(j);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_reset_goes_back_to_response_one_and_mode_ok(void **state)
{
	sim s;
	sim_start(&s, NULL);
	size_t l1, l2, l3;
	char *r1 = feed(&s, &l1), *r2 = feed(&s, &l2);
	assert_true(l1 != l2 || memcmp(r1, r2, l1) != 0);
	assert_int_equal(control(&s, "mode=error"), 200);
	assert_int_equal(control(&s, "reset=1"), 200);
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, NULL, "feed_requests"), 0);
	assert_int_equal(stat_int(j, NULL, "response"), 0);
	json_decref(j);
	char *r3 = feed(&s, &l3);
	assert_int_equal(l3, l1);
	assert_memory_equal(r3, r1, l1);
	free(r1);
	free(r2);
	free(r3);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_stats_count_every_feed_request_by_mode(void **state)
{
	sim s;
	sim_start(&s, NULL);
	const struct {
		const char *control;
		int requests;
		long status;
	} steps[] = {
		{NULL, 3, 200},
		{"mode=error&count=2", 2, 500},
		{"mode=garbage&count=1", 1, 200},
		{"mode=truncated&count=1", 1, 200},
		{"mode=slow&delay_ms=50&count=2", 2, 200},
		{NULL, 1, 200},
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i].control != NULL)
			assert_int_equal(control(&s, steps[i].control), 200);
		for (int n = 0; n < steps[i].requests; n++) {
			harness_http_reply r = get(&s, "/feed");
			assert_int_equal(r.status, steps[i].status);
			harness_http_reply_free(&r);
		}
	}
	json_t *j = stats(&s);
	assert_int_equal(stat_int(j, NULL, "feed_requests"), 10);
	assert_int_equal(stat_int(j, "served", "ok"), 4);
	assert_int_equal(stat_int(j, "served", "error"), 2);
	assert_int_equal(stat_int(j, "served", "garbage"), 1);
	assert_int_equal(stat_int(j, "served", "truncated"), 1);
	assert_int_equal(stat_int(j, "served", "slow"), 2);
	assert_int_equal(stat_int(j, "served", "hang"), 0);
	assert_int_equal(stat_int(j, NULL, "response"), 6); /* ok and slow */
	json_decref(j);
	assert_int_equal(sim_stop(&s), 0);
}

static void test_control_refuses_bad_requests(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=sometimes"), 400);
	assert_int_equal(control(&s, "mode=slow&delay_ms=soon"), 400);
	assert_int_equal(control(&s, "mode=error&count=-1"), 400);
	assert_int_equal(control(&s, "colour=blue"), 400);
	assert_int_equal(control(&s, "reset=maybe"), 400);
	/* Nothing applied: still ok. */
	json_t *j = stats(&s);
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "ok");
	json_decref(j);
	harness_http_reply r = get(&s, "/control?mode=error");
	assert_int_equal(r.status, 405);
	harness_http_reply_free(&r);
	r = get(&s, "/nowhere");
	assert_int_equal(r.status, 404);
	harness_http_reply_free(&r);
	assert_int_equal(sim_stop(&s), 0);

	/* Bad flags: exit status 2. */
	const char *exe = getenv("PROVIDER_SIM");
	assert_non_null(exe);
	const char *bad[] = {exe, "--events", "lots", NULL};
	char *err = NULL;
	assert_int_equal(harness_run(bad, NULL, NULL, &err, 10000), 2);
	assert_non_null(strstr(err, "--events"));
	free(err);
	const char *help[] = {exe, "--help", NULL};
	char *out = NULL;
	assert_int_equal(harness_run(help, NULL, &out, NULL, 10000), 0);
	assert_non_null(strstr(out, "/control"));
	free(out);
}

static void test_sigterm_ends_slow_and_hung_requests_and_exits_0(void **state)
{
	sim s;
	sim_start(&s, NULL);
	assert_int_equal(control(&s, "mode=slow&delay_ms=60000&count=1"), 200);
	struct bg slow, hung;
	bg_start(&slow, &s, "/feed", 20000);
	assert_int_equal(wait_pending(&s, "slow", 1, 2000), 1);
	assert_int_equal(control(&s, "mode=hang"), 200);
	bg_start(&hung, &s, "/feed", 20000);
	assert_int_equal(wait_pending(&s, "hang", 1, 2000), 1);
	int64_t t0 = now_ms();
	assert_int_equal(sim_stop(&s), 0);
	assert_true(now_ms() - t0 < 3000);
	bg_join(&slow);
	bg_join(&hung);
	assert_true(now_ms() - t0 < 5000);
	assert_true(slow.rv != 0 || slow.reply.status != 200);
	assert_true(hung.rv != 0 || hung.reply.status != 200);
	harness_http_reply_free(&slow.reply);
	harness_http_reply_free(&hung.reply);
	char *log = harness_read_file(s.log_path, NULL);
	assert_non_null(strstr(log, "stopping"));
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_a_generated_event_feed_is_well_formed_with_the_right_counts, teardown),
		cmocka_unit_test_teardown(test_a_generated_plan_feed_is_well_formed_with_the_right_counts, teardown),
		cmocka_unit_test_teardown(test_responses_change_between_calls_and_repeat_for_the_same_seed, teardown),
		cmocka_unit_test_teardown(test_a_feed_of_5000_events_of_200_zones_is_served_whole, teardown),
		cmocka_unit_test_teardown(test_file_mode_replays_the_real_responses_in_order, teardown),
		cmocka_unit_test_teardown(test_error_mode_answers_500_for_count_requests_then_ok, teardown),
		cmocka_unit_test_teardown(test_garbage_mode_answers_200_with_bytes_that_are_not_xml, teardown),
		cmocka_unit_test_teardown(test_truncated_mode_cuts_the_next_response_inside_an_element, teardown),
		cmocka_unit_test_teardown(test_slow_mode_answers_late_without_holding_up_other_requests, teardown),
		cmocka_unit_test_teardown(test_hang_mode_holds_the_request_until_the_client_gives_up, teardown),
		cmocka_unit_test_teardown(test_reset_goes_back_to_response_one_and_mode_ok, teardown),
		cmocka_unit_test_teardown(test_stats_count_every_feed_request_by_mode, teardown),
		cmocka_unit_test_teardown(test_control_refuses_bad_requests, teardown),
		cmocka_unit_test_teardown(test_sigterm_ends_slow_and_hung_requests_and_exits_0, teardown),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	remove_logs();
	return failed;
}
