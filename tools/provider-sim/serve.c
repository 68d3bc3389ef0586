/*
 * The simulator's HTTP side (serve.h): the feed, control and stats handlers,
 * the failure modes, the worker that makes feeds, and the orderly stop.
 *
 * Locking: one mutex (s->mtx) guards the mode, the counters, the worker's
 * queue and the lists of slow jobs and hung connections; s->cv signals the
 * worker (queue not empty, or exit) and serve_destroy (a list became empty).
 * The feed model and the worker's buffer belong to the worker thread alone.
 * nng_aio_finish, nng_aio_cancel and nng_sleep_aio never call back into us
 * synchronously (nng dispatches completions to its task threads), so they
 * may be called with the mutex held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>

#include "serve.h"

#define PATH_BYTES 160

/* A feed request on its way to the worker (through a timer when slow). */
struct job {
	struct job *next;
	serve *srv;
	nng_aio *haio;	/* the handler's aio: finished exactly once */
	nng_aio *timer; /* slow only */
	serve_mode mode;
	nng_time start;
	char method[8];
	char path[PATH_BYTES];
};

/* A hijacked connection we hold without answering. */
struct hang {
	struct hang *next, *prev;
	serve *srv;
	nng_http_conn *conn; /* ours since the hijack; closed once, by whoever sets closing */
	nng_http_req *req;   /* ours as well */
	nng_aio *aio;	     /* reads (and discards) until the client hangs up */
	bool closing;
	nng_time start;
	char method[8];
	char path[PATH_BYTES];
	char buf[512];
};

struct serve {
	nng_mtx *mtx;
	nng_cv *cv;
	nng_url *url;
	nng_http_server *http;
	bool started;
	nng_thread *worker;

	/* The worker's alone. */
	feed *feed;
	const feed_buf *files;
	size_t nfiles;
	feed_buf body;

	/* Under mtx. */
	serve_mode mode;
	unsigned delay_ms;
	long remaining;		/* feed requests left in this mode; -1: until changed */
	uint64_t responses;	/* complete feeds served since start or reset: k of the last */
	uint64_t epoch;		/* bumped by each reset */
	bool reset_pending;	/* the worker resets the model before its next job */
	uint64_t feed_requests; /* since start or reset */
	uint64_t served[SERVE_MODES];
	struct job *qhead, *qtail;
	struct job *slow; /* waiting on their timers */
	size_t nslow;
	struct hang *hangs;
	size_t nhangs;
	bool stopping;
	bool worker_exit;
};

static const char *const mode_names[SERVE_MODES] = {"ok", "slow", "error", "truncated", "garbage", "hang"};

const char *serve_mode_name(serve_mode m)
{
	return (unsigned)m < SERVE_MODES ? mode_names[m] : NULL;
}

int serve_mode_parse(const char *name, serve_mode *out)
{
	for (unsigned i = 0; i < SERVE_MODES; i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*out = (serve_mode)i;
			return 0;
		}
	}
	return -1;
}

__attribute__((format(printf, 1, 2))) static void sim_log(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf of one line: one write on unbuffered stderr. */
	fprintf(stderr, "provider-sim: %s\n", line);
}

static void log_request(const char *method, const char *path, serve_mode m, int status, size_t bytes, nng_time start,
			const char *note)
{
	char st[8] = "-"; /* none sent */
	if (status != 0)
		snprintf(st, sizeof(st), "%d", status);
	sim_log("%s %s mode=%s status=%s bytes=%zu ms=%" PRIu64 "%s%s", method, path, serve_mode_name(m), st, bytes,
		(uint64_t)(nng_clock() - start), note[0] ? " " : "", note);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Answers a handler's aio with status, type and body: a copy of it, or,
 * with shared, body itself (it must outlive the server: the files of the
 * command line, which a copy of a 100 MB feed would keep waiting for its
 * first byte). Returns the bytes sent (0 when even the answer failed: the
 * server then closes the connection). */
static size_t respond_body(nng_aio *aio, uint16_t status, const char *type, const void *body, size_t len, bool shared)
{
	nng_http_res *res;
	int rv = nng_http_res_alloc(&res);
	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return 0;
	}
	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", type)) != 0 ||
	    (rv = shared ? nng_http_res_set_data(res, body, len) : nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		sim_log("cannot answer: %s", nng_strerror(rv));
		nng_aio_finish(aio, rv);
		return 0;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
	return len;
}

static size_t respond(nng_aio *aio, uint16_t status, const char *type, const void *body, size_t len)
{
	return respond_body(aio, status, type, body, len, false);
}

static serve *handler_serve(nng_aio *aio)
{
	return nng_http_handler_get_data(nng_aio_get_input(aio, 1));
}

/*
 * The worker: feeds in arrival order.
 */

static void job_free(struct job *j)
{
	if (j->timer != NULL)
		nng_aio_free(j->timer);
	free(j);
}

static void enqueue_locked(serve *s, struct job *j)
{
	j->next = NULL;
	if (s->qtail != NULL)
		s->qtail->next = j;
	else
		s->qhead = j;
	s->qtail = j;
	nng_cv_wake(s->cv);
}

/* Where to cut a feed: inside the first zone (or any element) after the
 * middle, a few bytes into its attributes, so that the bytes end in the
 * middle of an element. */
static size_t cut_point(const char *p, size_t len)
{
	for (size_t i = len / 2; i + 20 < len; i++) {
		if (p[i] == '<' && p[i + 1] != '/')
			return i + 12;
	}
	return len / 2;
}

/* The bytes of the next response, from the model or the files; *number is
 * its response number. Worker thread only. */
static int make_feed(serve *s, uint64_t consumed, const char **body, size_t *len, uint64_t *number)
{
	if (s->feed == NULL) {
		size_t i = consumed < s->nfiles ? (size_t)consumed : s->nfiles - 1;
		*body = s->files[i].p;
		*len = s->files[i].len;
		*number = consumed + 1;
		return 0;
	}
	/* The model holds response `consumed` once it was served whole: step
	 * to the next. Otherwise (start, reset, or after a truncated answer)
	 * it already holds the next one. */
	if (consumed == feed_number(s->feed)) {
		int rv = feed_step(s->feed);
		if (rv != 0)
			return rv;
	}
	int rv = feed_render(s->feed, &s->body);
	if (rv != 0)
		return rv;
	*body = s->body.p;
	*len = s->body.len;
	*number = feed_number(s->feed);
	return 0;
}

static void work_one(serve *s, struct job *j, uint64_t consumed, uint64_t epoch)
{
	const char *body;
	size_t len;
	uint64_t number;
	int rv = make_feed(s, consumed, &body, &len, &number);
	if (rv != 0) {
		sim_log("cannot make response %" PRIu64 ": %s", consumed + 1, strerror(rv));
		size_t n = respond(j->haio, 500, "text/plain", "provider-sim: out of memory\n", 28);
		log_request(j->method, j->path, j->mode, 500, n, j->start, "(out of memory)");
		return;
	}
	bool whole = j->mode != SERVE_TRUNCATED;
	size_t n = whole ? len : cut_point(body, len);
	/* Counted before the answer goes out: a client that asks /stats right
	 * after its response must see it (counted after, it sometimes did not). */
	nng_mtx_lock(s->mtx);
	if (whole && s->epoch == epoch)
		s->responses = number;
	nng_mtx_unlock(s->mtx);
	size_t sent = respond_body(j->haio, 200, "application/xml", body, n, s->feed == NULL);
	char note[64];
	snprintf(note, sizeof(note), "response=%" PRIu64 "%s", number, whole ? "" : " (cut)");
	log_request(j->method, j->path, j->mode, sent ? 200 : 0, sent, j->start, note);
}

static void worker_main(void *arg)
{
	serve *s = arg;
	nng_mtx_lock(s->mtx);
	for (;;) {
		while (s->qhead == NULL && !s->worker_exit)
			nng_cv_wait(s->cv);
		struct job *j = s->qhead;
		if (j == NULL)
			break;
		s->qhead = j->next;
		if (s->qhead == NULL)
			s->qtail = NULL;
		if (s->stopping) {
			nng_mtx_unlock(s->mtx);
			nng_aio_finish(j->haio, NNG_ECLOSED);
			job_free(j);
			nng_mtx_lock(s->mtx);
			continue;
		}
		if (s->reset_pending) {
			s->reset_pending = false;
			if (s->feed != NULL && feed_reset(s->feed) != 0)
				sim_log("cannot reset the model");
		}
		uint64_t consumed = s->responses, epoch = s->epoch;
		nng_mtx_unlock(s->mtx);
		work_one(s, j, consumed, epoch);
		job_free(j);
		nng_mtx_lock(s->mtx);
	}
	nng_mtx_unlock(s->mtx);
}

/*
 * Slow: a timer, then the worker.
 */

static void slow_remove_locked(serve *s, struct job *j)
{
	for (struct job **p = &s->slow; *p != NULL; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			s->nslow--;
			return;
		}
	}
}

static void on_slow_timer(void *arg)
{
	struct job *j = arg;
	serve *s = j->srv;
	int rv = nng_aio_result(j->timer);
	nng_mtx_lock(s->mtx);
	slow_remove_locked(s, j);
	if (rv != 0 || s->stopping) {
		nng_cv_wake(s->cv);
		nng_mtx_unlock(s->mtx);
		nng_aio_finish(j->haio, NNG_ECLOSED);
		log_request(j->method, j->path, j->mode, 0, 0, j->start, "(stopped while waiting)");
		/* Our own callback: the aio may not be freed here, only reaped. */
		nng_aio_reap(j->timer);
		free(j);
		return;
	}
	enqueue_locked(s, j);
	nng_mtx_unlock(s->mtx);
}

/*
 * Hang: hijack the connection and read from it until the client hangs up.
 */

static void hang_remove_locked(serve *s, struct hang *h)
{
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		s->hangs = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	s->nhangs--;
	nng_cv_wake(s->cv);
}

static void hang_read(struct hang *h)
{
	nng_iov iov = {.iov_buf = h->buf, .iov_len = sizeof(h->buf)};
	nng_aio_set_iov(h->aio, 1, &iov);
	nng_http_conn_read(h->conn, h->aio);
}

static void on_hang_read(void *arg)
{
	struct hang *h = arg;
	serve *s = h->srv;
	int rv = nng_aio_result(h->aio);
	nng_mtx_lock(s->mtx);
	if (rv == 0 && !h->closing) {
		/* The client sent more (a pipelined request): still no answer. */
		hang_read(h);
		nng_mtx_unlock(s->mtx);
		return;
	}
	bool ours = !h->closing;
	h->closing = true;
	hang_remove_locked(s, h);
	nng_mtx_unlock(s->mtx);
	if (ours)
		nng_http_conn_close(h->conn);
	nng_http_req_free(h->req);
	log_request(h->method, h->path, SERVE_HANG, 0, 0, h->start,
		    ours ? "(client hung up)" : "(closed by the simulator)");
	nng_aio_reap(h->aio);
	free(h);
}

/* Mutex held. Finishes aio in every case. */
static void start_hang_locked(serve *s, nng_aio *aio, const char *method, const char *path, nng_time start)
{
	struct hang *h = calloc(1, sizeof(*h));
	if (h == NULL || nng_aio_alloc(&h->aio, on_hang_read, h) != 0) {
		free(h);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	h->srv = s;
	h->req = nng_aio_get_input(aio, 0);
	h->conn = nng_aio_get_input(aio, 2);
	h->start = start;
	copy_str(h->method, sizeof(h->method), method);
	copy_str(h->path, sizeof(h->path), path);
	/* From here the connection and the request are ours; finishing the
	 * handler's aio without a response lets the server forget them. */
	if (nng_http_hijack(h->conn) != 0) {
		nng_aio_free(h->aio);
		free(h);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, NULL);
	nng_aio_finish(aio, 0);
	h->next = s->hangs;
	if (s->hangs != NULL)
		s->hangs->prev = h;
	s->hangs = h;
	s->nhangs++;
	hang_read(h);
}

/*
 * The handlers.
 */

static const char error_body[] = "provider-sim: simulated provider failure\n";

/* Not XML from the first byte on (a NUL, then binary), deterministic. */
static void garbage(char *p, size_t n)
{
	static const char head[] = "\0\x89GARBAGE{{ not xml <<&&";
	uint64_t x = 0x2545f4914f6cdd1dULL;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = i < sizeof(head) - 1 ? head[i] : (char)(x & 0xff);
	}
}

static void on_feed(nng_aio *aio)
{
	serve *s = handler_serve(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	nng_time start = nng_clock();
	/* Copies: the request is the server's again once the aio is finished. */
	char method[8], path[PATH_BYTES];
	copy_str(method, sizeof(method), nng_http_req_get_method(req));
	copy_str(path, sizeof(path), nng_http_req_get_uri(req));

	nng_mtx_lock(s->mtx);
	if (s->stopping) {
		nng_mtx_unlock(s->mtx);
		nng_aio_finish(aio, NNG_ECLOSED);
		return;
	}
	serve_mode m = s->mode;
	unsigned delay = s->delay_ms;
	s->feed_requests++;
	s->served[m]++;
	if (s->remaining > 0 && --s->remaining == 0) {
		s->mode = SERVE_OK;
		s->remaining = -1;
	}
	if (m == SERVE_HANG) {
		start_hang_locked(s, aio, method, path, start);
		nng_mtx_unlock(s->mtx);
		return;
	}
	if (m == SERVE_ERROR || m == SERVE_GARBAGE) {
		nng_mtx_unlock(s->mtx);
		size_t n;
		if (m == SERVE_ERROR) {
			n = respond(aio, 500, "text/plain", error_body, sizeof(error_body) - 1);
		} else {
			char junk[1024];
			garbage(junk, sizeof(junk));
			n = respond(aio, 200, "application/xml", junk, sizeof(junk));
		}
		log_request(method, path, m, n ? (m == SERVE_ERROR ? 500 : 200) : 0, n, start, "");
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL || (m == SERVE_SLOW && nng_aio_alloc(&j->timer, on_slow_timer, j) != 0)) {
		nng_mtx_unlock(s->mtx);
		free(j);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	j->srv = s;
	j->haio = aio;
	j->mode = m;
	j->start = start;
	copy_str(j->method, sizeof(j->method), method);
	copy_str(j->path, sizeof(j->path), path);
	if (m == SERVE_SLOW) {
		j->next = s->slow;
		s->slow = j;
		s->nslow++;
		nng_sleep_aio((nng_duration)delay, j->timer);
	} else {
		enqueue_locked(s, j);
	}
	nng_mtx_unlock(s->mtx);
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out)
{
	if (*v < '0' || *v > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n > max)
		return -1;
	*out = n;
	return 0;
}

/* Mutex held. */
static void state_json_locked(serve *s, char *out, size_t cap)
{
	char remaining[24];
	if (s->remaining < 0)
		snprintf(remaining, sizeof(remaining), "null");
	else
		snprintf(remaining, sizeof(remaining), "%ld", s->remaining);
	snprintf(out, cap,
		 "{\"feed_requests\":%" PRIu64 ",\"served\":{\"ok\":%" PRIu64 ",\"slow\":%" PRIu64 ",\"error\":%" PRIu64
		 ",\"truncated\":%" PRIu64 ",\"garbage\":%" PRIu64 ",\"hang\":%" PRIu64 "},\"response\":%" PRIu64
		 ",\"mode\":\"%s\",\"remaining\":%s,\"delay_ms\":%u"
		 ",\"pending\":{\"slow\":%zu,\"hang\":%zu}}\n",
		 s->feed_requests, s->served[SERVE_OK], s->served[SERVE_SLOW], s->served[SERVE_ERROR],
		 s->served[SERVE_TRUNCATED], s->served[SERVE_GARBAGE], s->served[SERVE_HANG], s->responses,
		 serve_mode_name(s->mode), remaining, s->delay_ms, s->nslow, s->nhangs);
}

/* POST /control?mode=M&delay_ms=N&count=K, POST /control?reset=1. Every
 * parameter is checked before any applies. */
static void on_control(nng_aio *aio)
{
	serve *s = handler_serve(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	nng_time start = nng_clock();
	char uri[512], query[512], err[160] = "", body[640];
	bool too_long = strlen(nng_http_req_get_uri(req)) >= sizeof(uri);
	copy_str(uri, sizeof(uri), nng_http_req_get_uri(req));
	const char *q = strchr(uri, '?');
	bool has_mode = false, has_delay = false, reset = false;
	serve_mode mode = SERVE_OK;
	unsigned long delay = 0, count = 0;

	copy_str(query, sizeof(query), q != NULL ? q + 1 : "");
	if (too_long)
		snprintf(err, sizeof(err), "query too long");
	char *save = NULL;
	for (char *kv = strtok_r(query, "&", &save); kv != NULL && err[0] == '\0'; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		const char *v = "";
		if (eq != NULL) {
			*eq = '\0';
			v = eq + 1;
		}
		if (strcmp(kv, "mode") == 0) {
			has_mode = true;
			if (serve_mode_parse(v, &mode) != 0)
				snprintf(err, sizeof(err),
					 "mode: not one of ok|slow|error|truncated|garbage|hang: %.40s", v);
		} else if (strcmp(kv, "delay_ms") == 0) {
			has_delay = true;
			if (parse_uint(v, SERVE_MAX_DELAY_MS, &delay) != 0)
				snprintf(err, sizeof(err), "delay_ms: not a number of ms up to %u: %.40s",
					 SERVE_MAX_DELAY_MS, v);
		} else if (strcmp(kv, "count") == 0) {
			if (parse_uint(v, 1000000000ul, &count) != 0)
				snprintf(err, sizeof(err), "count: not a number: %.40s", v);
		} else if (strcmp(kv, "reset") == 0) {
			if (strcmp(v, "1") != 0 && strcmp(v, "true") != 0)
				snprintf(err, sizeof(err), "reset: only reset=1: %.40s", v);
			reset = true;
		} else {
			snprintf(err, sizeof(err), "unknown parameter: %.40s", kv);
		}
	}
	if (err[0] == '\0' && !has_mode && !has_delay && !reset && count == 0)
		snprintf(err, sizeof(err), "nothing to do: give mode=, delay_ms=, count= or reset=1");
	if (err[0] != '\0') {
		snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", err);
		size_t n = respond(aio, 400, "application/json", body, strlen(body));
		nng_mtx_lock(s->mtx);
		serve_mode cur = s->mode;
		nng_mtx_unlock(s->mtx);
		log_request("POST", uri, cur, 400, n, start, err);
		return;
	}

	nng_mtx_lock(s->mtx);
	if (reset) {
		s->mode = SERVE_OK;
		s->remaining = -1;
		s->responses = 0;
		s->epoch++;
		s->reset_pending = true;
		s->feed_requests = 0;
		memset(s->served, 0, sizeof(s->served));
	}
	if (has_delay)
		s->delay_ms = (unsigned)delay;
	if (has_mode) {
		s->mode = mode;
		s->remaining = -1;
	}
	if (count > 0)
		s->remaining = s->mode == SERVE_OK ? -1 : (long)count;
	serve_mode cur = s->mode;
	state_json_locked(s, body, sizeof(body));
	nng_mtx_unlock(s->mtx);
	size_t n = respond(aio, 200, "application/json", body, strlen(body));
	log_request("POST", uri, cur, 200, n, start, "");
}

static void on_stats(nng_aio *aio)
{
	serve *s = handler_serve(aio);
	nng_http_req *req = nng_aio_get_input(aio, 0);
	nng_time start = nng_clock();
	char body[640], method[8], path[PATH_BYTES];
	copy_str(method, sizeof(method), nng_http_req_get_method(req));
	copy_str(path, sizeof(path), nng_http_req_get_uri(req));
	nng_mtx_lock(s->mtx);
	serve_mode cur = s->mode;
	state_json_locked(s, body, sizeof(body));
	nng_mtx_unlock(s->mtx);
	size_t n = respond(aio, 200, "application/json", body, strlen(body));
	log_request(method, path, cur, 200, n, start, "");
}

/*
 * Start and stop.
 */

static int add_handler(serve *s, const char *path, const char *method, void (*cb)(nng_aio *))
{
	nng_http_handler *h;
	int rv = nng_http_handler_alloc(&h, path, cb);
	if (rv != 0)
		return rv;
	if ((rv = nng_http_handler_set_method(h, method)) != 0 || (rv = nng_http_handler_set_data(h, s, NULL)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, 4096)) != 0 ||
	    (rv = nng_http_server_add_handler(s->http, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}

int serve_create(serve **out, const serve_config *cfg)
{
	serve *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NNG_ENOMEM;
	s->feed = cfg->feed;
	s->files = cfg->files;
	s->nfiles = cfg->nfiles;
	s->mode = cfg->mode;
	s->delay_ms = cfg->delay_ms;
	s->remaining = -1;
	int rv;
	if ((rv = nng_mtx_alloc(&s->mtx)) != 0 || (rv = nng_cv_alloc(&s->cv, s->mtx)) != 0 ||
	    (rv = nng_thread_create(&s->worker, worker_main, s)) != 0)
		goto fail;
	nng_thread_set_name(s->worker, "provider-sim:feed");
	if ((rv = nng_url_parse(&s->url, cfg->listen)) != 0 || (rv = nng_http_server_hold(&s->http, s->url)) != 0)
		goto fail;
	if ((rv = add_handler(s, "/feed", "GET", on_feed)) != 0 || (rv = add_handler(s, "/", "GET", on_feed)) != 0 ||
	    (rv = add_handler(s, "/control", "POST", on_control)) != 0 ||
	    (rv = add_handler(s, "/stats", "GET", on_stats)) != 0 || (rv = nng_http_server_start(s->http)) != 0)
		goto fail;
	s->started = true;
	*out = s;
	return 0;
fail:
	serve_destroy(s);
	return rv;
}

void serve_destroy(serve *s)
{
	if (s == NULL)
		return;
	if (s->mtx != NULL) {
		nng_mtx_lock(s->mtx);
		s->stopping = true;
		for (struct job *j = s->slow; j != NULL; j = j->next)
			nng_aio_cancel(j->timer);
		/* Close the hung connections one at a time, outside the lock. */
		for (;;) {
			struct hang *h = s->hangs;
			while (h != NULL && h->closing)
				h = h->next;
			if (h == NULL)
				break;
			h->closing = true;
			nng_http_conn *conn = h->conn;
			nng_mtx_unlock(s->mtx);
			nng_http_conn_close(conn);
			nng_mtx_lock(s->mtx);
		}
		while (s->slow != NULL || s->hangs != NULL)
			nng_cv_wait(s->cv);
		s->worker_exit = true;
		nng_cv_wake(s->cv);
		nng_mtx_unlock(s->mtx);
	}
	if (s->worker != NULL)
		nng_thread_destroy(s->worker);
	if (s->http != NULL) {
		if (s->started)
			nng_http_server_stop(s->http);
		nng_http_server_release(s->http);
	}
	if (s->url != NULL)
		nng_url_free(s->url);
	feed_buf_fini(&s->body);
	if (s->cv != NULL)
		nng_cv_free(s->cv);
	if (s->mtx != NULL)
		nng_mtx_free(s->mtx);
	free(s);
}
