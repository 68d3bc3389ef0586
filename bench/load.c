/*
 * rpcq-load: a closed-loop load generator for rpcq.Health/Echo, and the raw
 * nng req/rep echo it is measured against. N caller threads each make one
 * call at a time for S seconds (after a warm-up that is not counted); the
 * result is calls per second and the 50th/99th percentile latency, on one
 * line of key=value pairs that bench/run-echo.sh turns into a table row.
 *
 *   rpcq-load rpcq --url URL [-c N] [-d S] [-p BYTES]   calls through librpcq
 *   rpcq-load rpcq --url URL --method NAME --json '{...}' [-c N] [-d S]
 *                                                        any unary method
 *   rpcq-load raw  --url URL [-c N] [-d S] [-p BYTES]   bare nng REQ contexts
 *   rpcq-load raw-server --listen URL [--contexts N]    bare nng REP echo
 *
 * The raw pair is the floor rpcq adds its cost to: the same transport, the
 * same payload and the same concurrency, with nothing but nng in between.
 * Both raw sides set the options rpcq sets (REQ resend time infinite, a
 * receive size limit), and the raw server answers from nng's callbacks with
 * as many contexts as rpcqd keeps outstanding by default (128). The rpcq side
 * shares one rpcq_client across all callers, as an application would.
 *
 * With --method (rpcq mode only), every call is that method instead of Echo:
 * the request is the --json text transcoded once, at start, with
 * rpcq_json_to_payload through rpcq_method_find's descriptors, and sent with
 * rpcq_call_raw; a call counts when it answers OK with a reply that decodes
 * as the method's output type (checked on the first reply). The line then
 * ends with method= and reply_bytes= (of the first reply); payload= is the
 * request's size. bench/run-events-search.sh compares Search with Echo so.
 *
 * With --vary N as well, the --json text is a template: every "%d" in it is
 * replaced by 0..N-1, giving N requests (all transcoded at start, so the
 * calls cost no JSON); the k-th call of the run (one counter shared by all
 * callers) sends request k mod N. bench/run-vouchers.sh so spreads
 * IssueVouchers over N customers ('{"customer_id":"%d","quantity":2}')
 * instead of sending every call for one. payload= is then the first request's
 * size.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <rpcq/rpcq.h>

#define MAX_CALLERS 1024
#define RECV_MAX_BYTES (4L * 1024 * 1024 + 4096)

typedef enum mode { MODE_RPCQ, MODE_RAW } mode;

typedef struct options {
	mode mode;
	const char *url;
	int callers;
	double seconds;
	double warmup;
	size_t payload;
	const char *method;	      /* NULL: Echo */
	const rpcq_method_info *info; /* of method */
	const void *request;	      /* method's input, serialized */
	size_t request_len;
	void **requests; /* --vary: n_requests of them, or NULL */
	size_t *request_lens;
	size_t n_requests;
	atomic_size_t next_request; /* --vary: the next call's index */
	atomic_size_t reply_bytes;  /* of the first reply to method */
} options;

/* Latencies of one caller, in nanoseconds, grown by doubling. */
typedef struct samples {
	uint64_t *v;
	size_t n, cap;
} samples;

typedef struct caller {
	pthread_t thread;
	options *opt;
	rpcq_client *client; /* MODE_RPCQ: shared by all callers */
	nng_socket sock;     /* MODE_RAW: shared by all callers */
	samples lat;
	uint64_t errors;
	char first_error[256];
} caller;

static atomic_int measuring;
static atomic_int stopping;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int samples_add(samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 65536;
		uint64_t *v = realloc(s->v, cap * sizeof *v);
		if (v == NULL)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

static void note_error(caller *c, const char *fmt, ...) RPCQ_PRINTF(2, 3);

static void note_error(caller *c, const char *fmt, ...)
{
	if (c->errors++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
		va_end(ap);
	}
}

/* The payload every call sends: deterministic, not all zeros. */
static uint8_t *make_payload(size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)('a' + i % 26);
	return p;
}

/* Records one finished call if it started and ended inside the window. */
static void record(caller *c, uint64_t t0, int counted, int ok)
{
	if (!counted || atomic_load(&stopping))
		return;
	if (ok && samples_add(&c->lat, now_ns() - t0) != 0)
		note_error(c, "%s", "out of memory for latency samples");
}

static void *rpcq_caller(void *arg)
{
	caller *c = arg;
	uint8_t *payload = make_payload(c->opt->payload);
	if (payload == NULL) {
		note_error(c, "%s", "out of memory");
		return NULL;
	}
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	in.payload.data = payload;
	in.payload.len = c->opt->payload;
	while (!atomic_load(&stopping)) {
		int counted = atomic_load(&measuring);
		uint64_t t0 = now_ns();
		Rpcq__EchoMessage *out = NULL;
		rpcq_error err;
		int ok = 0;
		if (rpcq_health_echo(c->client, &in, &out, NULL, &err) != RPCQ_OK) {
			if (counted)
				note_error(c, "%s", err.message);
		} else {
			ok = out->payload.len == in.payload.len &&
			     (in.payload.len == 0 || memcmp(out->payload.data, payload, in.payload.len) == 0);
			if (!ok && counted)
				note_error(c, "%s", "the echo came back different");
			protobuf_c_message_free_unpacked(&out->base, NULL);
		}
		record(c, t0, counted, ok);
	}
	free(payload);
	return NULL;
}

/* Calls of opt->method with its serialized request. The first OK reply is
 * checked to decode as the method's output type. */
static void *method_caller(void *arg)
{
	caller *c = arg;
	options *opt = c->opt;
	while (!atomic_load(&stopping)) {
		int counted = atomic_load(&measuring);
		uint64_t t0 = now_ns();
		void *out = NULL;
		size_t out_len = 0;
		rpcq_error err;
		int ok = 0;
		const void *req = opt->request;
		size_t req_len = opt->request_len;
		if (opt->requests) {
			size_t k = atomic_fetch_add(&opt->next_request, 1) % opt->n_requests;
			req = opt->requests[k];
			req_len = opt->request_lens[k];
		}
		if (rpcq_call_raw(c->client, opt->info->full_name, req, req_len, &out, &out_len, NULL, &err) !=
		    RPCQ_OK) {
			if (counted)
				note_error(c, "%s: %s", rpcq_status_name(err.code), err.message);
		} else {
			ok = 1;
			size_t none = 0;
			if (atomic_compare_exchange_strong(&opt->reply_bytes, &none, out_len + 1)) {
				ProtobufCMessage *m = protobuf_c_message_unpack(opt->info->output, NULL, out_len,
										(const uint8_t *)out);
				ok = m != NULL;
				if (m == NULL)
					note_error(c, "the reply does not decode as %s", opt->info->output->name);
				else
					protobuf_c_message_free_unpacked(m, NULL);
			}
			rpcq_free(out);
		}
		record(c, t0, counted, ok);
	}
	return NULL;
}

static void *raw_caller(void *arg)
{
	caller *c = arg;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	uint8_t *payload = make_payload(c->opt->payload);
	int rv;
	if (payload == NULL) {
		note_error(c, "%s", "out of memory");
		return NULL;
	}
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		note_error(c, "nng_ctx_open: %s", nng_strerror(rv));
		free(payload);
		return NULL;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		note_error(c, "nng_aio_alloc: %s", nng_strerror(rv));
		goto out;
	}
	nng_aio_set_timeout(aio, 10000);
	while (!atomic_load(&stopping)) {
		int counted = atomic_load(&measuring);
		uint64_t t0 = now_ns();
		nng_msg *msg;
		if ((rv = nng_msg_alloc(&msg, 0)) != 0 || (rv = nng_msg_append(msg, payload, c->opt->payload)) != 0) {
			note_error(c, "nng_msg_alloc: %s", nng_strerror(rv));
			break;
		}
		nng_aio_set_msg(aio, msg);
		nng_ctx_send(ctx, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) != 0) {
			nng_msg_free(nng_aio_get_msg(aio));
			if (counted)
				note_error(c, "send: %s", nng_strerror(rv));
			record(c, t0, counted, 0);
			continue;
		}
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		int ok = 0;
		if ((rv = nng_aio_result(aio)) != 0) {
			if (counted)
				note_error(c, "recv: %s", nng_strerror(rv));
		} else {
			nng_msg *reply = nng_aio_get_msg(aio);
			ok = nng_msg_len(reply) == c->opt->payload &&
			     memcmp(nng_msg_body(reply), payload, c->opt->payload) == 0;
			if (!ok && counted)
				note_error(c, "%s", "the echo came back different");
			nng_msg_free(reply);
		}
		record(c, t0, counted, ok);
	}
out:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	free(payload);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of sorted values. */
static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank == 0)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static int run_load(options *opt)
{
	int result = 1;
	rpcq_client *client = NULL;
	nng_socket sock = NNG_SOCKET_INITIALIZER;
	caller *callers = calloc((size_t)opt->callers, sizeof *callers);
	uint64_t *all = NULL;
	int started = 0;
	if (callers == NULL) {
		fprintf(stderr, "rpcq-load: out of memory\n");
		return 1;
	}
	if (opt->mode == MODE_RPCQ) {
		rpcq_client_options co = {.servers = opt->url, .timeout_ms = 10000, .max_retries = -1};
		rpcq_error err;
		if (rpcq_client_create(&client, &co, &err) != RPCQ_OK) {
			fprintf(stderr, "rpcq-load: client for %s: %s\n", opt->url, err.message);
			goto out;
		}
	} else {
		int rv = nng_req0_open(&sock);
		if (rv == 0)
			rv = nng_socket_set_ms(sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
		if (rv == 0)
			rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, (size_t)RECV_MAX_BYTES);
		if (rv == 0)
			rv = nng_dial(sock, opt->url, NULL, 0);
		if (rv != 0) {
			fprintf(stderr, "rpcq-load: raw client for %s: %s\n", opt->url, nng_strerror(rv));
			goto out;
		}
	}
	for (started = 0; started < opt->callers; started++) {
		caller *c = &callers[started];
		c->opt = opt;
		c->client = client;
		c->sock = sock;
		void *(*run)(void *) = opt->mode == MODE_RAW ? raw_caller : opt->method ? method_caller : rpcq_caller;
		if (pthread_create(&c->thread, NULL, run, c) != 0) {
			fprintf(stderr, "rpcq-load: cannot start caller thread %d\n", started);
			atomic_store(&stopping, 1);
			goto join;
		}
	}
	sleep_s(opt->warmup);
	uint64_t t0 = now_ns();
	atomic_store(&measuring, 1);
	sleep_s(opt->seconds);
	atomic_store(&stopping, 1);
	uint64_t t1 = now_ns();
	result = 0;
join:
	for (int i = 0; i < started; i++)
		pthread_join(callers[i].thread, NULL);
	if (result != 0)
		goto out;

	size_t n = 0;
	uint64_t errors = 0;
	const char *first_error = NULL;
	for (int i = 0; i < opt->callers; i++) {
		n += callers[i].lat.n;
		errors += callers[i].errors;
		if (first_error == NULL && callers[i].errors)
			first_error = callers[i].first_error;
	}
	all = malloc((n ? n : 1) * sizeof *all);
	if (all == NULL) {
		fprintf(stderr, "rpcq-load: out of memory\n");
		result = 1;
		goto out;
	}
	size_t k = 0;
	for (int i = 0; i < opt->callers; i++) {
		memcpy(all + k, callers[i].lat.v, callers[i].lat.n * sizeof *all);
		k += callers[i].lat.n;
	}
	qsort(all, n, sizeof *all, cmp_u64);
	double elapsed = (double)(t1 - t0) / 1e9;
	printf("mode=%s callers=%d payload=%zu seconds=%.2f calls=%zu calls_per_s=%.0f p50_us=%.1f p99_us=%.1f "
	       "errors=%" PRIu64,
	       opt->mode == MODE_RPCQ ? "rpcq" : "raw", opt->callers, opt->method ? opt->request_len : opt->payload,
	       elapsed, n, (double)n / elapsed, (double)percentile(all, n, 50) / 1e3,
	       (double)percentile(all, n, 99) / 1e3, errors);
	if (opt->method) {
		size_t rb = atomic_load(&opt->reply_bytes);
		printf(" method=%s reply_bytes=%zu", opt->info->full_name, rb ? rb - 1 : 0);
	}
	printf("\n");
	if (errors) {
		fprintf(stderr, "rpcq-load: %" PRIu64 " failed calls; first: %s\n", errors, first_error);
		result = 1;
	} else if (n == 0) {
		fprintf(stderr, "rpcq-load: no call completed in the measured window\n");
		result = 1;
	}
out:
	free(all);
	for (int i = 0; i < started; i++)
		free(callers[i].lat.v);
	free(callers);
	rpcq_client_destroy(client);
	if (opt->mode == MODE_RAW && nng_socket_id(sock) > 0)
		nng_close(sock);
	return result;
}

/* Raw REP echo: each context is a two-state machine (receiving, sending)
 * driven by its aio callback on nng's threads; the request message itself
 * goes back as the reply, as an echo handler that copies nothing would. */
typedef struct echo_ctx {
	nng_ctx ctx;
	nng_aio *aio;
	int sending;
} echo_ctx;

static void echo_cb(void *arg)
{
	echo_ctx *e = arg;
	int rv = nng_aio_result(e->aio);
	if (e->sending) {
		if (rv != 0)
			nng_msg_free(nng_aio_get_msg(e->aio));
		e->sending = 0;
		nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED)
			nng_ctx_recv(e->ctx, e->aio);
		return;
	}
	e->sending = 1;
	nng_ctx_send(e->ctx, e->aio);
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

static int run_raw_server(const char *url, int contexts)
{
	int result = 1;
	nng_socket sock;
	echo_ctx *ctxs = calloc((size_t)contexts, sizeof *ctxs);
	int opened = 0;
	int rv;
	if (ctxs == NULL) {
		fprintf(stderr, "rpcq-load: out of memory\n");
		return 1;
	}
	if ((rv = nng_rep0_open(&sock)) != 0) {
		fprintf(stderr, "rpcq-load: nng_rep0_open: %s\n", nng_strerror(rv));
		free(ctxs);
		return 1;
	}
	nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, (size_t)RECV_MAX_BYTES);
	for (opened = 0; opened < contexts; opened++) {
		echo_ctx *e = &ctxs[opened];
		if ((rv = nng_aio_alloc(&e->aio, echo_cb, e)) != 0)
			break;
		if ((rv = nng_ctx_open(&e->ctx, sock)) != 0) {
			nng_aio_free(e->aio);
			break;
		}
	}
	if (rv != 0) {
		fprintf(stderr, "rpcq-load: raw server contexts: %s\n", nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_listen(sock, url, NULL, 0)) != 0) {
		fprintf(stderr, "rpcq-load: listen on %s: %s\n", url, nng_strerror(rv));
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (int i = 0; i < contexts; i++)
		nng_ctx_recv(ctxs[i].ctx, ctxs[i].aio);
	fprintf(stderr, "rpcq-load: raw echo server on %s with %d contexts\n", url, contexts);
	while (!got_signal)
		pause();
	result = 0;
out:
	nng_close(sock);
	for (int i = 0; i < opened; i++) {
		nng_aio_stop(ctxs[i].aio);
		nng_aio_free(ctxs[i].aio);
	}
	free(ctxs);
	return result;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: rpcq-load rpcq|raw --url URL [-c CALLERS] [-d SECONDS] [-w WARMUP] [-p BYTES]\n"
		"       rpcq-load rpcq --url URL --method NAME --json '{...}' [-c CALLERS] [-d SECONDS] [-w WARMUP]\n"
		"       rpcq-load raw-server --listen URL [--contexts N]\n"
		"  rpcq        closed-loop calls of rpcq.Health/Echo through one shared rpcq_client\n"
		"  raw         the same load over bare nng REQ contexts (against raw-server)\n"
		"  raw-server  an nng REP echo answering from N contexts (default 128) until SIGTERM\n"
		"  -c callers (default 1, at most %d), -d measured seconds (default 5),\n"
		"  -w warm-up seconds, not measured (default 1), -p payload bytes (default 200)\n"
		"  --method NAME (\"pkg.Service/Method\") --json TEXT: call that method with that request\n"
		"  (proto3 JSON) instead of Echo; payload= is then the request's bytes\n"
		"  --vary N (with --method): every %%d in the JSON becomes 0..N-1, N requests sent in turn\n"
		"Prints one line: mode= callers= payload= seconds= calls= calls_per_s= p50_us= p99_us= errors=\n"
		"(and method= reply_bytes= with --method)\n",
		MAX_CALLERS);
}

/* A number in [lo, hi] from text, or -1 with a message naming the flag. */
static double number(const char *flag, const char *text, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = text ? strtod(text, &end) : 0;
	if (text == NULL || errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "rpcq-load: %s needs a number from %g to %g, not \"%s\"\n", flag, lo, hi,
			text ? text : "");
		return -1;
	}
	return v;
}

/* --vary: the n requests of the template json, each "%d" replaced by 0..n-1. */
static int make_requests(options *opt, const char *json, size_t n)
{
	size_t holes = 0;
	for (const char *p = json; (p = strstr(p, "%d")) != NULL; p += 2)
		holes++;
	size_t cap = strlen(json) + holes * 20 + 1;
	char *text = malloc(cap);
	opt->requests = calloc(n, sizeof *opt->requests);
	opt->request_lens = calloc(n, sizeof *opt->request_lens);
	if (text == NULL || opt->requests == NULL || opt->request_lens == NULL) {
		fprintf(stderr, "rpcq-load: out of memory\n");
		free(text);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char *w = text;
		for (const char *p = json; *p;) {
			if (p[0] == '%' && p[1] == 'd') {
				w += snprintf(w, cap - (size_t)(w - text), "%zu", i);
				p += 2;
			} else {
				*w++ = *p++;
			}
		}
		*w = '\0';
		rpcq_error err;
		if (rpcq_json_to_payload(opt->info->input, text, strlen(text), &opt->requests[i], &opt->request_lens[i],
					 &err) != RPCQ_OK) {
			fprintf(stderr, "rpcq-load: --json with %zu is not a %s: %s\n", i, opt->info->input->name,
				err.message);
			free(text);
			return -1;
		}
		opt->n_requests = i + 1;
	}
	free(text);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	options opt = {.callers = 1, .seconds = 5, .warmup = 1, .payload = 200};
	const char *listen = NULL;
	const char *json = NULL;
	long vary = 0;
	int contexts = 128;
	int server = strcmp(argv[1], "raw-server") == 0;
	if (strcmp(argv[1], "rpcq") == 0) {
		opt.mode = MODE_RPCQ;
	} else if (strcmp(argv[1], "raw") == 0) {
		opt.mode = MODE_RAW;
	} else if (!server) {
		fprintf(stderr, "rpcq-load: unknown mode \"%s\" (rpcq, raw or raw-server)\n", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		double x = 0;
		if (strcmp(a, "--url") == 0 && v) {
			opt.url = v;
		} else if (strcmp(a, "--listen") == 0 && v) {
			listen = v;
		} else if (strcmp(a, "--method") == 0 && v) {
			opt.method = v;
		} else if (strcmp(a, "--json") == 0 && v) {
			json = v;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--callers") == 0) {
			if ((x = number(a, v, 1, MAX_CALLERS)) < 0)
				return 2;
			opt.callers = (int)x;
		} else if (strcmp(a, "-d") == 0 || strcmp(a, "--seconds") == 0) {
			if ((x = number(a, v, 0.1, 3600)) < 0)
				return 2;
			opt.seconds = x;
		} else if (strcmp(a, "-w") == 0 || strcmp(a, "--warmup") == 0) {
			if ((x = number(a, v, 0, 600)) < 0)
				return 2;
			opt.warmup = x;
		} else if (strcmp(a, "-p") == 0 || strcmp(a, "--payload") == 0) {
			if ((x = number(a, v, 0, 1024 * 1024)) < 0)
				return 2;
			opt.payload = (size_t)x;
		} else if (strcmp(a, "--vary") == 0) {
			if ((x = number(a, v, 1, 10000000)) < 0)
				return 2;
			vary = (long)x;
		} else if (strcmp(a, "--contexts") == 0) {
			if ((x = number(a, v, 1, 65536)) < 0)
				return 2;
			contexts = (int)x;
		} else {
			fprintf(stderr, "rpcq-load: unknown or incomplete option \"%s\"\n", a);
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (server) {
		if (listen == NULL) {
			fprintf(stderr, "rpcq-load: raw-server needs --listen URL\n");
			return 2;
		}
		return run_raw_server(listen, contexts);
	}
	if (opt.url == NULL) {
		fprintf(stderr, "rpcq-load: %s needs --url URL\n", argv[1]);
		return 2;
	}
	if ((opt.method != NULL) != (json != NULL) || (opt.method != NULL && opt.mode != MODE_RPCQ)) {
		fprintf(stderr, "rpcq-load: --method and --json go together, in rpcq mode only\n");
		return 2;
	}
	void *request = NULL;
	if (opt.method) {
		if ((opt.info = rpcq_method_find(opt.method)) == NULL) {
			fprintf(stderr, "rpcq-load: no method \"%s\" (pkg.Service/Method)\n", opt.method);
			return 2;
		}
		rpcq_error err;
		if (rpcq_json_to_payload(opt.info->input, json, strlen(json), &request, &opt.request_len, &err) !=
		    RPCQ_OK) {
			fprintf(stderr, "rpcq-load: --json is not a %s: %s\n", opt.info->input->name, err.message);
			return 2;
		}
		opt.request = request;
	}
	if (vary && opt.method == NULL) {
		fprintf(stderr, "rpcq-load: --vary goes with --method and --json\n");
		rpcq_free(request);
		return 2;
	}
	int rc = 2;
	if (vary && make_requests(&opt, json, (size_t)vary) != 0)
		goto out;
	rc = run_load(&opt);
out:
	for (size_t i = 0; opt.requests && i < opt.n_requests; i++)
		rpcq_free(opt.requests[i]);
	free(opt.requests);
	free(opt.request_lens);
	rpcq_free(request);
	return rc;
}
