/*
 * librpcq unary calls. One nng REQ socket per client, dialed to every server
 * URL (nng spreads requests over the connected pipes and redials by itself).
 * Each call opens its own nng context, so any number of threads share one
 * client. Resends are disabled (NNG_OPT_REQ_RESENDTIME = infinite): nng 1.5
 * keeps pending requests in one timer list, and a resend would also repeat a
 * non-idempotent call; our own retry covers UNAVAILABLE for idempotent methods.
 *
 * An API key is checked against the server URLs before anything is dialed
 * (url_check.h) and goes with every call as an "authorization" pair.
 *
 * nng error codes are translated here and nowhere else.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

#include <rpcq/alloc.h>
#include <rpcq/client.h>
#include <rpcq/registry.h>

#include "envelope.h"
#include "sockclose.h"
#include "tls_dial.h"
#include "url_check.h"

/* How long past a call's deadline the client still waits for the server's
 * own answer. The server stops at the deadline (it travels in the
 * envelope) and answers DEADLINE_EXCEEDED; a client that gave up at the same
 * instant raced that reply inside nng 1.5.2's REQ protocol, and one client
 * in a few dozen whose calls timed out so then hung for ever in nng_close or
 * crashed nng on a freed mutex (seen in test_rpc; reproduced with 300
 * clients of five timed-out calls each, none of which hangs with the grace).
 * A server that does not answer at all is given up this much later. */
#define REPLY_GRACE_MS 200

/* A call context and its aio, kept for the next call: opening and freeing
 * them was a quarter of the client's work per call. */
struct slot {
	nng_ctx ctx;
	nng_aio *aio;
	struct slot *next;
};

struct rpcq_client {
	nng_socket sock;
	nng_mtx *slots_lock;
	struct slot *slots; /* idle, LIFO */
	int sock_open;
	char *servers; /* normalized, comma-separated */
	int timeout_ms;
	int max_retries;
	long max_message_bytes;
	tls_dials tls;	     /* a configuration per TLS dialer */
	char *authorization; /* "Bearer <key>", NULL: no API key; wiped when freed */
	int connect_timeout_ms;
	nng_time connect_by;	 /* opts->connect_timeout_ms after create; 0: none */
	atomic_int connected;	 /* a pipe was connected once */
	atomic_int pipes;	 /* connected pipes now */
	atomic_uint pipe_losses; /* pipes lost since creation */
	atomic_int calls;	 /* in call_response now */
	atomic_int closing;	 /* rpcq_client_destroy has begun */
};

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpcq_client *c = arg;
	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_store(&c->connected, 1);
		atomic_fetch_add(&c->pipes, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&c->pipes, 1);
		atomic_fetch_add(&c->pipe_losses, 1);
	}
}

/* The status for an nng error met while talking to the servers. */
static rpcq_status from_nng(int rv)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return RPCQ_DEADLINE_EXCEEDED;
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT:
	case NNG_EUNREACHABLE:
	case NNG_EADDRINVAL:
		return RPCQ_UNAVAILABLE;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return RPCQ_CANCELLED;
	case NNG_ENOMEM:
	case NNG_EMSGSIZE:
		return RPCQ_RESOURCE_EXHAUSTED;
	default:
		return RPCQ_UNAVAILABLE;
	}
}

static rpcq_status dial_all(struct rpcq_client *c, const rpcq_client_options *opts, rpcq_error *err)
{
	const char *p = c->servers;
	char url[1024];
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n >= sizeof(url))
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "server URL too long");
		memcpy(url, p, n);
		url[n] = '\0';
		nng_dialer d;
		int rv = nng_dialer_create(&d, c->sock, url);
		if (rv != 0)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "server URL \"%s\": %s", url,
					      nng_strerror(rv));
		nng_dialer_set_size(d, NNG_OPT_RECVMAXSZ, (size_t)c->max_message_bytes + 4096);
		if (tls_dial_url(url)) {
			nng_tls_config *cfg;
			rpcq_status st = tls_dials_add(&c->tls, url, opts ? opts->tls_ca_file : NULL, &cfg, err);
			if (st != RPCQ_OK)
				return st;
			nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
		}
		nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 50);
		nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 2000);
		if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0)
			return rpcq_error_set(err, RPCQ_UNAVAILABLE, "server URL \"%s\": %s", url, nng_strerror(rv));
		p += n;
		if (*p == ',')
			p++;
	}
	return RPCQ_OK;
}

/* The API key of opts, else $RPCQ_API_KEY, as c->authorization, once every
 * server URL is known not to carry it in plain text to another machine (or
 * the caller allowed that). Runs before the socket is opened, so a refused
 * key has not been offered to anyone. No message names the key. */
static rpcq_status api_key_setup(struct rpcq_client *c, const rpcq_client_options *opts, rpcq_error *err)
{
	const char *key = opts && opts->api_key ? opts->api_key : getenv("RPCQ_API_KEY");
	const char *from = opts && opts->api_key ? "" : " in $RPCQ_API_KEY";
	if (key == NULL || *key == '\0')
		return RPCQ_OK;
	/* A space or a control character is a pasted line end or a typo, and
	 * would make "Bearer <key>" read as something else: visible ASCII only. */
	for (const char *k = key; *k; k++) {
		if ((unsigned char)*k <= ' ' || (unsigned char)*k >= 0x7f)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "the API key%s has a space, a control character or a non-ASCII byte",
					      from);
	}
	const char *p = c->servers;
	char url[1024];
	while (*p && !(opts && opts->allow_plaintext_key)) {
		size_t n = strcspn(p, ",");
		if (n >= sizeof(url))
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "server URL too long");
		memcpy(url, p, n);
		url[n] = '\0';
		url_class cls = url_classify(url);
		if (cls == URL_PLAIN_REMOTE)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "refusing to send an API key over plain %s (not loopback); use %s or set "
					      "allow_plaintext_key (rpcq --allow-plaintext-key)",
					      url, strncasecmp(url, "ws", 2) == 0 ? "wss://" : "tls+tcp://");
		if (cls == URL_INVALID)
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "refusing to send an API key to \"%s\": not a URL rpcq can tell is "
					      "tls+tcp://, wss://, ipc://, inproc:// or plain text to loopback; set "
					      "allow_plaintext_key (rpcq --allow-plaintext-key) to send it anyway",
					      url);
		p += n;
		if (*p == ',')
			p++;
	}
	size_t len = strlen(key);
	c->authorization = rpcq_alloc(sizeof("Bearer ") + len);
	if (c->authorization == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	memcpy(c->authorization, "Bearer ", 7);
	memcpy(c->authorization + 7, key, len + 1);
	return RPCQ_OK;
}

/* Zeroes s (through a volatile pointer, which the compiler may not drop as a
 * dead store) and frees it. NULL is a no-op. */
static void free_secret(char *s)
{
	if (s == NULL)
		return;
	for (volatile char *v = s; *v; v++)
		*v = '\0';
	rpcq_free(s);
}

/* "a, b c" -> "a,b,c"; NULL when empty or out of memory. */
static char *normalize_servers(const char *s)
{
	size_t len = strlen(s);
	char *out = rpcq_alloc(len + 1);
	if (out == NULL)
		return NULL;
	size_t o = 0;
	while (*s) {
		s += strspn(s, ", \t\n");
		size_t n = strcspn(s, ", \t\n");
		if (n == 0)
			break;
		if (o)
			out[o++] = ',';
		memcpy(out + o, s, n);
		o += n;
		s += n;
	}
	out[o] = '\0';
	if (o == 0) {
		rpcq_free(out);
		return NULL;
	}
	return out;
}

rpcq_status rpcq_client_create(rpcq_client **out, const rpcq_client_options *opts, rpcq_error *err)
{
	rpcq_status st;
	struct rpcq_client *c = rpcq_calloc(1, sizeof(*c));
	if (c == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	const char *servers = opts && opts->servers && *opts->servers ? opts->servers : getenv("RPCQ_SERVER");
	if (servers == NULL || *servers == '\0')
		servers = RPCQ_DEFAULT_SERVER;
	c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
	c->max_retries = opts && opts->max_retries != 0 ? (opts->max_retries < 0 ? 0 : opts->max_retries) : 3;
	c->max_message_bytes = opts && opts->max_message_bytes > 0 ? opts->max_message_bytes : RPCQ_DEFAULT_MAX_MESSAGE;
	if (opts && opts->connect_timeout_ms > 0) {
		c->connect_timeout_ms = opts->connect_timeout_ms;
		c->connect_by = nng_clock() + (nng_time)opts->connect_timeout_ms;
	}
	c->servers = normalize_servers(servers);
	if (c->servers == NULL) {
		st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "no server URL given");
		goto fail;
	}
	if ((st = api_key_setup(c, opts, err)) != RPCQ_OK)
		goto fail;
	int rv = nng_mtx_alloc(&c->slots_lock);
	if (rv == 0 && (rv = nng_req0_open(&c->sock)) == 0)
		c->sock_open = 1;
	if (rv != 0) {
		st = rpcq_error_set(err, RPCQ_INTERNAL, "cannot open a request socket: %s", nng_strerror(rv));
		goto fail;
	}
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, (size_t)c->max_message_bytes + 4096);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, on_pipe, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, on_pipe, c);
	if ((st = dial_all(c, opts, err)) != RPCQ_OK)
		goto fail;
	*out = c;
	return RPCQ_OK;
fail:
	rpcq_client_destroy(c);
	return st;
}

/* How long destroy waits for the calls in flight to return. */
#define DESTROY_WAIT_MS 10000

void rpcq_client_destroy(rpcq_client *c)
{
	if (c == NULL)
		return;
	/* Calls still running fail with CANCELLED once the socket closes
	 * (none retries then); they are waited out before anything they use
	 * is freed. */
	atomic_store(&c->closing, 1);
	if (c->sock_open)
		sock_close_bounded(c->sock);
	for (nng_time until = nng_clock() + DESTROY_WAIT_MS; atomic_load(&c->calls) > 0; nng_msleep(1)) {
		/* A call held by a close that nng never ends (sockclose.h):
		 * the client is left to it, a leak rather than a use after free. */
		if (nng_clock() > until)
			return;
	}
	while (c->slots) {
		struct slot *sl = c->slots;
		c->slots = sl->next;
		nng_aio_free(sl->aio);
		rpcq_free(sl);
	}
	if (c->slots_lock)
		nng_mtx_free(c->slots_lock);
	tls_dials_free(&c->tls);
	free_secret(c->authorization);
	rpcq_free(c->servers);
	rpcq_free(c);
}

const char *rpcq_client_servers(const rpcq_client *c)
{
	return c->servers;
}

long rpcq_client_max_message_bytes(const rpcq_client *c)
{
	return c->max_message_bytes;
}

/* An idle slot, or a new one; NULL with err set when nng cannot make one. */
static struct slot *slot_get(struct rpcq_client *c, rpcq_error *err)
{
	nng_mtx_lock(c->slots_lock);
	struct slot *sl = c->slots;
	if (sl)
		c->slots = sl->next;
	nng_mtx_unlock(c->slots_lock);
	if (sl)
		return sl;
	sl = rpcq_calloc(1, sizeof(*sl));
	if (sl == NULL) {
		rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a call context");
		return NULL;
	}
	int rv = nng_aio_alloc(&sl->aio, NULL, NULL);
	if (rv == 0 && (rv = nng_ctx_open(&sl->ctx, c->sock)) != 0)
		nng_aio_free(sl->aio);
	if (rv != 0) {
		rpcq_free(sl);
		rpcq_error_set(err, from_nng(rv), "cannot open a call context: %s", nng_strerror(rv));
		return NULL;
	}
	return sl;
}

/* Back to the idle list after a clean exchange; closed after a failed one,
 * whose request nng may still be holding. */
static void slot_put(struct rpcq_client *c, struct slot *sl, int clean)
{
	if (!clean) {
		nng_ctx_close(sl->ctx);
		nng_aio_free(sl->aio);
		rpcq_free(sl);
		return;
	}
	nng_mtx_lock(c->slots_lock);
	sl->next = c->slots;
	c->slots = sl;
	nng_mtx_unlock(c->slots_lock);
}

/* One attempt: send, wait for the reply until deadline. On OK *reply holds the
 * reply message (caller frees). nng 1.5 has no nng_ctx_sendmsg, so the
 * exchange goes through the slot's aio. */
static rpcq_status exchange(struct rpcq_client *c, nng_msg *req, nng_time deadline, nng_msg **reply, rpcq_error *err)
{
	struct slot *sl = slot_get(c, err);
	if (sl == NULL) {
		nng_msg_free(req);
		return err->code;
	}
	unsigned losses = atomic_load(&c->pipe_losses);
	nng_time now = nng_clock();
	/* Never connected yet: the send (which waits for a pipe) waits until
	 * connect_by at most. */
	nng_time send_by = deadline;
	int first = c->connect_by != 0 && !atomic_load(&c->connected) && c->connect_by < deadline;
	if (first)
		send_by = c->connect_by;
	nng_aio_set_timeout(sl->aio, send_by > now ? (nng_duration)(send_by - now) : 1);
	nng_aio_set_msg(sl->aio, req);
	nng_ctx_send(sl->ctx, sl->aio);
	nng_aio_wait(sl->aio);
	int rv = nng_aio_result(sl->aio);
	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(sl->aio));
		goto failed;
	}
	now = nng_clock();
	nng_aio_set_timeout(sl->aio, (deadline > now ? (nng_duration)(deadline - now) : 1) + REPLY_GRACE_MS);
	nng_ctx_recv(sl->ctx, sl->aio);
	nng_aio_wait(sl->aio);
	rv = nng_aio_result(sl->aio);
	if (rv == 0) {
		*reply = nng_aio_get_msg(sl->aio);
		slot_put(c, sl, 1);
		return RPCQ_OK;
	}
failed:
	slot_put(c, sl, 0);
	if (rv == NNG_ETIMEDOUT && first && !atomic_load(&c->connected))
		return rpcq_error_set(err, RPCQ_UNAVAILABLE,
				      "no server reachable at %s: nothing answered there within %d ms (is rpcqd "
				      "running, and is that its --listen address?)",
				      c->servers, c->connect_timeout_ms);
	if (rv == NNG_ETIMEDOUT && atomic_load(&c->pipes) == 0) {
		if (atomic_load(&c->pipe_losses) != losses)
			return rpcq_error_set(err, RPCQ_UNAVAILABLE,
					      "the server closed the connection during the call (a message over "
					      "its size limit is refused this way)");
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "no server reachable at %s", c->servers);
	}
	if (rv == NNG_ETIMEDOUT)
		return rpcq_error_set(err, RPCQ_DEADLINE_EXCEEDED, "no reply within the deadline");
	return rpcq_error_set(err, from_nng(rv), "call failed: %s", nng_strerror(rv));
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* The call's metadata, with the client's authorization pair appended unless
 * the call has its own "authorization" (which then wins). *out is either md
 * itself or buf, which has room for 2 * ENVELOPE_MAX_PAIRS + 1 entries: no
 * allocation per call. */
static rpcq_status call_metadata(const struct rpcq_client *c, const char *const *md, const char **buf,
				 const char *const **out, rpcq_error *err)
{
	*out = md;
	if (c->authorization == NULL)
		return RPCQ_OK;
	size_t n = 0;
	for (; md && md[2 * n] && md[2 * n + 1]; n++) {
		if (strcasecmp(md[2 * n], "authorization") == 0)
			return RPCQ_OK;
	}
	if (n >= ENVELOPE_MAX_PAIRS)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "%zu metadata pairs and the API key's authorization; at most %d are allowed", n,
				      ENVELOPE_MAX_PAIRS);
	if (n)
		memcpy(buf, md, 2 * n * sizeof(*buf));
	buf[2 * n] = "authorization";
	buf[2 * n + 1] = c->authorization;
	buf[2 * n + 2] = NULL;
	*out = buf;
	return RPCQ_OK;
}

static rpcq_status cancelled(rpcq_error *err)
{
	return rpcq_error_set(err, RPCQ_CANCELLED, "the client was destroyed during the call");
}

/* call_response's attempts. */
static rpcq_status call_attempts(rpcq_client *c, const char *method, const void *in, size_t in_len,
				 const rpcq_call_options *opts, Rpcq__Response **resp, rpcq_error *err)
{
	char name[512];
	if (envelope_method_name(method, name, sizeof(name)) != 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "method \"%s\" is not of the form package.Service/Method", method ? method : "");
	int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : c->timeout_ms;
	int retry = 0;
	if (opts == NULL || opts->retry <= 0) {
		const rpcq_method_info *mi = rpcq_method_find(name);
		retry = mi && mi->idempotent;
	} else {
		retry = opts->retry == 1;
	}
	const char *mdbuf[2 * ENVELOPE_MAX_PAIRS + 1];
	const char *const *md;
	rpcq_status st = call_metadata(c, opts ? opts->metadata : NULL, mdbuf, &md, err);
	if (st != RPCQ_OK)
		return st;
	nng_time deadline = nng_clock() + (nng_time)timeout;
	int backoff = 25;
	for (int attempt = 0;; attempt++) {
		nng_time now = nng_clock();
		uint32_t left = deadline > now ? (uint32_t)(deadline - now) : 1;
		nng_msg *req;
		st = envelope_pack_request(&req, name, in, in_len, left, md, c->max_message_bytes, err);
		if (st != RPCQ_OK)
			return st;
		nng_msg *reply = NULL;
		st = exchange(c, req, deadline, &reply, err);
		if (st == RPCQ_OK) {
			st = envelope_parse_response(NULL, nng_msg_body(reply), nng_msg_len(reply), resp, err);
			nng_msg_free(reply);
			if (st != RPCQ_OK)
				return st;
			st = (rpcq_status)(*resp)->code;
			if (st == RPCQ_OK) {
				if (err) {
					err->code = RPCQ_OK;
					err->message[0] = '\0';
				}
				return RPCQ_OK;
			}
			rpcq_error_set(err, st, "%s", (*resp)->message ? (*resp)->message : "");
			rpcq__response__free_unpacked(*resp, NULL);
			*resp = NULL;
		}
		if (st != RPCQ_OK && atomic_load(&c->closing))
			return cancelled(err);
		if (st != RPCQ_UNAVAILABLE || !retry || attempt >= c->max_retries ||
		    nng_clock() + (nng_time)backoff >= deadline)
			return st;
		if (c->connect_by != 0 && !atomic_load(&c->connected) && nng_clock() >= c->connect_by)
			return st; /* never connected, and no longer waiting for it */
		sleep_ms(backoff);
		backoff *= 2;
	}
}

/* The call with its retries. On OK *resp is the server's OK Response
 * (free with rpcq__response__free_unpacked(*resp, NULL)); its payload is the
 * serialized output, which the two public calls use without another copy.
 * Counted in c->calls, which rpcq_client_destroy waits out. */
static rpcq_status call_response(rpcq_client *c, const char *method, const void *in, size_t in_len,
				 const rpcq_call_options *opts, Rpcq__Response **resp, rpcq_error *err)
{
	atomic_fetch_add(&c->calls, 1);
	rpcq_status st =
		atomic_load(&c->closing) ? cancelled(err) : call_attempts(c, method, in, in_len, opts, resp, err);
	atomic_fetch_sub(&c->calls, 1);
	return st;
}

rpcq_status rpcq_call_raw(rpcq_client *c, const char *method, const void *in, size_t in_len, void **out,
			  size_t *out_len, const rpcq_call_options *opts, rpcq_error *err)
{
	Rpcq__Response *resp;
	rpcq_status st = call_response(c, method, in, in_len, opts, &resp, err);
	if (st != RPCQ_OK)
		return st;
	/* An empty reply is a valid message (all defaults). */
	*out = rpcq_alloc(resp->payload.len ? resp->payload.len : 1);
	if (*out == NULL) {
		st = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte reply",
				    resp->payload.len);
	} else {
		if (resp->payload.len)
			memcpy(*out, resp->payload.data, resp->payload.len);
		*out_len = resp->payload.len;
	}
	rpcq__response__free_unpacked(resp, NULL);
	return st;
}

rpcq_status rpcq_call(rpcq_client *c, const char *method, const ProtobufCMessage *in,
		      const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out, const rpcq_call_options *opts,
		      rpcq_error *err)
{
	size_t in_len = protobuf_c_message_get_packed_size(in);
	uint8_t stackbuf[512];
	uint8_t *buf = in_len <= sizeof(stackbuf) ? stackbuf : rpcq_alloc(in_len);
	if (buf == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a %zu-byte request", in_len);
	protobuf_c_message_pack(in, buf);
	Rpcq__Response *resp;
	rpcq_status st = call_response(c, method, buf, in_len, opts, &resp, err);
	if (buf != stackbuf)
		rpcq_free(buf);
	if (st != RPCQ_OK)
		return st;
	ProtobufCMessage *msg = protobuf_c_message_unpack(out_desc, NULL, resp->payload.len, resp->payload.data);
	rpcq__response__free_unpacked(resp, NULL);
	if (msg == NULL)
		return rpcq_error_set(err, RPCQ_INTERNAL, "reply does not decode as %s", out_desc->name);
	*out = msg;
	return RPCQ_OK;
}
