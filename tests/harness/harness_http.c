/*
 * Test harness, HTTP side: one-shot requests through libcurl, a Server-Sent
 * Events reader on libcurl's multi interface (so a test reads a stream event
 * by event, with a deadline, and hangs up whenever it likes), and raw TCP
 * sockets for the requests that no HTTP client would send. Everything is
 * bounded in time; nothing here fails the test on what the server answers,
 * only on what the harness itself could not do, so a test can check refusals
 * and cut connections as well as successes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "harness.h"

static int64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A growable byte buffer, NUL-terminated. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (p == NULL)
			fail_msg("harness_http: out of memory (%zu bytes)", cap);
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static char *buf_take(struct buf *b)
{
	if (b->p == NULL)
		buf_add(b, "", 0);
	char *p = b->p;
	memset(b, 0, sizeof(*b));
	return p;
}

/* Splits a header block ("HTTP/1.1 200 OK\r\nName: value\r\n...") into
 * name/value pairs in a copy of its own. */
static void parse_head(const char *head, char **store, int *n, const char **names, const char **values, int max)
{
	*n = 0;
	*store = strdup(head);
	if (*store == NULL)
		fail_msg("harness_http: out of memory");
	char *line = *store;
	int first = 1;
	while (*line != '\0') {
		char *end = strchr(line, '\n');
		char *next = end ? end + 1 : line + strlen(line);
		if (end != NULL) {
			*end = '\0';
			if (end > line && end[-1] == '\r')
				end[-1] = '\0';
		}
		char *colon = strchr(line, ':');
		if (!first && colon != NULL && *n < max) {
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = strlen(v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				v[--vl] = '\0';
			names[*n] = line;
			values[*n] = v;
			(*n)++;
		}
		first = 0;
		line = next;
	}
}

static const char *find_header(int n, const char *const *names, const char *const *values, const char *name)
{
	for (int i = 0; i < n; i++) {
		if (strcasecmp(names[i], name) == 0)
			return values[i];
	}
	return NULL;
}

/* The header callback keeps only the last response's head: a 100 Continue
 * (or any 1xx) comes before the real one. */
struct head_sink {
	struct buf head;
	int done; /* the final response's blank line came */
};

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct head_sink *h = arg;
	size_t n = size * nmemb;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		h->head.len = 0;
		h->done = 0;
	}
	buf_add(&h->head, data, n);
	if ((n == 2 && data[0] == '\r' && data[1] == '\n') || (n == 1 && data[0] == '\n')) {
		/* "HTTP/1.1 1xx": another head follows. */
		int interim = h->head.len >= 12 && h->head.p[9] == '1';
		if (!interim)
			h->done = 1;
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	buf_add(arg, data, size * nmemb);
	return size * nmemb;
}

/* Request headers, plus "Expect:" (curl would otherwise send Expect:
 * 100-continue for larger bodies) unless the caller sends one. */
static struct curl_slist *request_headers(const char *const *headers)
{
	struct curl_slist *list = NULL;
	int has_expect = 0;
	for (int i = 0; headers != NULL && headers[i] != NULL; i++) {
		if (strncasecmp(headers[i], "Expect:", 7) == 0)
			has_expect = 1;
		struct curl_slist *l = curl_slist_append(list, headers[i]);
		if (l == NULL)
			fail_msg("harness_http: out of memory");
		list = l;
	}
	if (!has_expect) {
		struct curl_slist *l = curl_slist_append(list, "Expect:");
		if (l == NULL)
			fail_msg("harness_http: out of memory");
		list = l;
	}
	return list;
}

static void set_method(CURL *h, const char *method, const void *body, size_t len)
{
	if (strcmp(method, "GET") == 0 && body == NULL) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		return;
	}
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		return;
	}
	if (strcmp(method, "POST") == 0 || body != NULL) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	}
	if (strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
}

int harness_http_timeout(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
			 int timeout_ms, harness_http_reply *out)
{
	pthread_once(&curl_once, curl_init_once);
	memset(out, 0, sizeof(*out));
	CURL *h = curl_easy_init();
	if (h == NULL)
		fail_msg("harness_http: curl_easy_init failed");
	struct head_sink hs = {0};
	struct buf bs = {0};
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *list = request_headers(headers);

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 5000 ? timeout_ms : 5000));
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	set_method(h, method, body, len);

	int64_t t0 = clock_ms();
	CURLcode rc = curl_easy_perform(h);
	out->seconds = (double)(clock_ms() - t0) / 1000.0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
	if (rc != CURLE_OK)
		snprintf(out->error, sizeof(out->error), "%s: %s", curl_easy_strerror(rc), errbuf);
	out->head = buf_take(&hs.head);
	out->body_len = bs.len;
	out->body = buf_take(&bs);
	parse_head(out->head, &out->store, &out->nheaders, out->names, out->values, HARNESS_HTTP_MAX_HEADERS);
	curl_slist_free_all(list);
	curl_easy_cleanup(h);
	return (int)rc;
}

int harness_http(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
		 harness_http_reply *out)
{
	return harness_http_timeout(method, url, headers, body, len, HARNESS_HTTP_TIMEOUT_MS, out);
}

const char *harness_http_header(const harness_http_reply *r, const char *name)
{
	return find_header(r->nheaders, r->names, r->values, name);
}

void harness_http_reply_free(harness_http_reply *r)
{
	free(r->head);
	free(r->body);
	free(r->store);
	memset(r, 0, sizeof(*r));
}

/* ---- Server-Sent Events ---- */

struct harness_sse {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *list;
	struct head_sink hs;
	struct buf body;
	size_t pos; /* bytes of body already split into lines */
	int finished;
	CURLcode result;
	char errbuf[CURL_ERROR_SIZE];
	long status;
	char *store;
	int nheaders;
	const char *names[HARNESS_HTTP_MAX_HEADERS];
	const char *values[HARNESS_HTTP_MAX_HEADERS];
	/* What the lines said so far. */
	int lines;
	char first_line[256];
	int comments;
	long retry;
	/* The event being read. */
	int has_fields;
	char id[64];
	char event[256];
	struct buf data;
	int has_data;
};

/* Runs the transfer for up to ms (0: only what is ready). */
static void sse_pump(harness_sse *s, int ms)
{
	int running = 0;
	if (s->finished)
		return;
	curl_multi_perform(s->multi, &running);
	if (running && ms > 0) {
		curl_multi_poll(s->multi, NULL, 0, ms, NULL);
		curl_multi_perform(s->multi, &running);
	}
	int left;
	CURLMsg *m;
	while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (m->msg == CURLMSG_DONE) {
			s->finished = 1;
			s->result = m->data.result;
		}
	}
	if (!running)
		s->finished = 1;
}

harness_sse *harness_sse_open(const char *url, const char *const *headers, int timeout_ms)
{
	pthread_once(&curl_once, curl_init_once);
	harness_sse *s = calloc(1, sizeof(*s));
	if (s == NULL)
		fail_msg("harness_sse_open: out of memory");
	s->retry = -1;
	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	if (s->multi == NULL || s->easy == NULL)
		fail_msg("harness_sse_open: curl init failed");
	s->list = request_headers(headers);
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->list);
	curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, &s->hs);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->body);
	curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(s->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
	curl_multi_add_handle(s->multi, s->easy);

	int64_t deadline = clock_ms() + timeout_ms;
	while (!s->hs.done && !s->finished) {
		int64_t left = deadline - clock_ms();
		if (left <= 0)
			break;
		sse_pump(s, (int)(left < 100 ? left : 100));
	}
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
	parse_head(s->hs.head.p ? s->hs.head.p : "", &s->store, &s->nheaders, s->names, s->values,
		   HARNESS_HTTP_MAX_HEADERS);
	return s;
}

long harness_sse_status(const harness_sse *s)
{
	return s->status;
}

const char *harness_sse_header(const harness_sse *s, const char *name)
{
	return find_header(s->nheaders, s->names, s->values, name);
}

const char *harness_sse_first_line(const harness_sse *s)
{
	return s->lines > 0 ? s->first_line : NULL;
}

int harness_sse_comments(const harness_sse *s)
{
	return s->comments;
}

long harness_sse_retry(const harness_sse *s)
{
	return s->retry;
}

const char *harness_sse_text(const harness_sse *s, size_t *len)
{
	if (len)
		*len = s->body.len;
	return s->body.p ? s->body.p : "";
}

const char *harness_sse_error(const harness_sse *s)
{
	if (!s->finished)
		return "(still open)";
	if (s->result == CURLE_OK)
		return "closed by the server";
	return s->errbuf[0] ? s->errbuf : curl_easy_strerror(s->result);
}

/* Copies v into dst, cut to len - 1 bytes. */
static void copy_field(char *dst, size_t len, const char *v)
{
	size_t n = strlen(v);
	if (n >= len)
		n = len - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* Takes one line (without its end) into the event being read; returns 1
 * when it ended an event that carried a field. */
static int sse_line(harness_sse *s, char *line)
{
	if (s->lines++ == 0)
		copy_field(s->first_line, sizeof(s->first_line), line);
	if (line[0] == '\0') {
		int had = s->has_fields;
		s->has_fields = 0;
		return had;
	}
	if (line[0] == ':') {
		s->comments++;
		return 0;
	}
	char *colon = strchr(line, ':');
	const char *value = "";
	if (colon != NULL) {
		*colon = '\0';
		value = colon + 1;
		if (*value == ' ')
			value++;
	}
	if (strcmp(line, "id") == 0) {
		copy_field(s->id, sizeof(s->id), value);
		s->has_fields = 1;
	} else if (strcmp(line, "event") == 0) {
		copy_field(s->event, sizeof(s->event), value);
		s->has_fields = 1;
	} else if (strcmp(line, "data") == 0) {
		if (s->has_data)
			buf_add(&s->data, "\n", 1);
		buf_add(&s->data, value, strlen(value));
		s->has_data = 1;
		s->has_fields = 1;
	} else if (strcmp(line, "retry") == 0) {
		char *end;
		long v = strtol(value, &end, 10);
		s->retry = *end == '\0' ? v : -2;
	}
	return 0;
}

/* Splits what has arrived into lines; 1 when an event is complete. */
static int sse_scan(harness_sse *s)
{
	while (s->pos < s->body.len) {
		char *start = s->body.p + s->pos;
		char *nl = memchr(start, '\n', s->body.len - s->pos);
		if (nl == NULL)
			return 0;
		size_t n = (size_t)(nl - start);
		char *line = malloc(n + 1);
		if (line == NULL)
			fail_msg("harness_sse: out of memory for a line of %zu bytes", n);
		memcpy(line, start, n);
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[n - 1] = '\0';
		s->pos += n + 1;
		int ended = sse_line(s, line);
		free(line);
		if (ended)
			return 1;
	}
	return 0;
}

int harness_sse_next(harness_sse *s, int timeout_ms, harness_sse_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	int64_t deadline = clock_ms() + timeout_ms;
	for (;;) {
		if (sse_scan(s)) {
			copy_field(ev->id, sizeof(ev->id), s->id);
			copy_field(ev->event, sizeof(ev->event), s->event);
			ev->data = buf_take(&s->data);
			s->id[0] = '\0';
			s->event[0] = '\0';
			s->has_data = 0;
			return 1;
		}
		if (s->finished)
			return -1;
		int64_t left = deadline - clock_ms();
		if (left <= 0)
			return 0;
		sse_pump(s, (int)(left < 100 ? left : 100));
	}
}

int harness_sse_wait_comments(harness_sse *s, int n, int timeout_ms)
{
	int64_t deadline = clock_ms() + timeout_ms;
	for (;;) {
		/* Comments are counted as lines are scanned; events met on the
		 * way stay unread only if none is pending, so this is for idle
		 * streams. */
		while (s->comments < n && sse_scan(s))
			fail_msg("harness_sse_wait_comments: an event (id %s) came while waiting for comments", s->id);
		if (s->comments >= n || s->finished)
			return s->comments;
		int64_t left = deadline - clock_ms();
		if (left <= 0)
			return s->comments;
		sse_pump(s, (int)(left < 100 ? left : 100));
	}
}

void harness_sse_event_free(harness_sse_event *ev)
{
	free(ev->data);
	ev->data = NULL;
}

void harness_sse_close(harness_sse *s)
{
	if (s == NULL)
		return;
	curl_multi_remove_handle(s->multi, s->easy);
	curl_easy_cleanup(s->easy);
	curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->list);
	free(s->hs.head.p);
	free(s->body.p);
	free(s->data.p);
	free(s->store);
	free(s);
}

/* ---- raw sockets ---- */

int harness_url_port(const char *url)
{
	const char *colon = strrchr(url, ':');
	char *end = NULL;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (colon == NULL || end == colon + 1 || (*end != '\0' && *end != '/') || port <= 0 || port > 65535)
		fail_msg("harness: no port in URL \"%s\"", url);
	return (int)port;
}

int harness_raw_connect(const char *url)
{
	int port = harness_url_port(url);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail_msg("harness_raw_connect: socket: %s", strerror(errno));
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		fail_msg("harness_raw_connect: connect 127.0.0.1:%d: %s", port, strerror(e));
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int harness_raw_send(int fd, const void *data, size_t len)
{
	const char *p = data;
	size_t off = 0;
	int64_t deadline = clock_ms() + HARNESS_HTTP_TIMEOUT_MS;
	while (off < len) {
		ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t left = deadline - clock_ms();
			if (left <= 0)
				return -1;
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			poll(&pfd, 1, (int)(left < 100 ? left : 100));
			continue;
		}
		return -1;
	}
	return 0;
}

/* Whether buf holds one whole response: a head, and as many body bytes
 * as its Content-Length says (no Content-Length: only the head). */
static int response_complete(const char *buf, size_t len)
{
	const char *end = NULL;
	for (size_t i = 0; i + 3 < len; i++) {
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0) {
			end = buf + i + 4;
			break;
		}
	}
	if (end == NULL)
		return 0;
	size_t head = (size_t)(end - buf);
	long cl = 0;
	for (const char *p = buf; p < end; p++) {
		if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
			cl = strtol(p + 15, NULL, 10);
			break;
		}
	}
	return len >= head + (size_t)(cl > 0 ? cl : 0);
}

char *harness_raw_read(int fd, int timeout_ms, int until_response, size_t *len, int *closed)
{
	struct buf b = {0};
	int64_t deadline = clock_ms() + timeout_ms;
	int peer_closed = 0;
	buf_add(&b, "", 0);
	for (;;) {
		if (until_response && response_complete(b.p, b.len))
			break;
		int64_t left = deadline - clock_ms();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)(left < 100 ? left : 100));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		char chunk[16384];
		ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n > 0) {
			buf_add(&b, chunk, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		peer_closed = 1; /* EOF or reset */
		break;
	}
	if (len)
		*len = b.len;
	if (closed)
		*closed = peer_closed;
	return buf_take(&b);
}

char *harness_raw_exchange(const char *url, const void *req, size_t req_len, int timeout_ms, size_t *len, int *closed)
{
	int fd = harness_raw_connect(url);
	/* A send cut short is no failure: the server may answer and close
	 * before taking everything, and the answer is what the test checks. */
	(void)harness_raw_send(fd, req, req_len);
	char *out = harness_raw_read(fd, timeout_ms, 0, len, closed);
	close(fd);
	return out;
}
