/*
 * HTTP/1.1 request framing: bytes from a connection in, one request out
 * (method, target, path, query, headers, body), with the limits a server
 * needs against hostile clients. A thin layer over http-parser, which does
 * the grammar (including chunked bodies); this file adds the limits, the
 * lower-casing of header names and the percent-decoding of the path. Pure:
 * no I/O, no globals; one reader per connection, used by one thread at a time.
 */
#ifndef RPCQ_HTTP_PARSE_H
#define RPCQ_HTTP_PARSE_H

#include <stddef.h>

#include <http_parser.h>

#define HTTP_MAX_HEADERS 64

typedef struct http_header {
	const char *name;  /* lower-case, NUL-terminated */
	const char *value; /* leading and trailing blanks removed */
} http_header;

typedef struct http_request {
	const char *method; /* "GET", "POST", ... (http-parser's names) */
	const char *target; /* as sent: "/rpc/rpcq.Health/Echo?x=1" */
	const char *path;   /* target without the query, percent-decoded: "/rpc/rpcq.Health/Echo" */
	const char *query;  /* after '?', not decoded; "" when there is none */
	http_header headers[HTTP_MAX_HEADERS];
	int nheaders;
	const char *body; /* NUL-terminated after body_len bytes (the body itself may hold NULs) */
	size_t body_len;
	int http_minor;	     /* 1.0 or 1.1 */
	int keep_alive;	     /* the connection may carry another request afterwards */
	int expect_continue; /* "Expect: 100-continue" was sent */
} http_request;

/* Streamed bodies: a request for which stream_body(method, path) says 1 is
 * handed out at the end of its head (HTTP_READ_HEAD), and its body, of any
 * size, goes to the sink given with http_reader_set_sink as it arrives
 * (chunked transfer coding decoded) instead of into the request. */
typedef int (*http_stream_fn)(const char *method, const char *path);
typedef int (*http_sink_fn)(void *arg, const char *data, size_t len); /* nonzero: stop */

typedef struct http_limits {
	size_t max_head_bytes;	    /* request line and headers together */
	size_t max_body_bytes;	    /* of a body that is not streamed */
	http_stream_fn stream_body; /* NULL: no request streams its body */
} http_limits;

enum http_read_result {
	HTTP_READ_MORE = 0, /* every byte given was used; feed more */
	HTTP_READ_DONE = 1, /* a whole request is ready; *used bytes were consumed */
	HTTP_READ_ERROR = -1,
	HTTP_READ_HEAD = 2, /* a streamed request's head is ready after *used bytes */
};

typedef struct http_reader {
	http_parser parser;
	http_limits limits;
	http_request req;
	/* Private: the buffer that holds the request's strings and body, and
	 * their offsets in it while it may still move (realloc). */
	char *buf;
	size_t len, cap;
	size_t head_bytes;		/* bytes of the head read so far */
	int state;			/* which string the last callback added to */
	size_t at[HTTP_MAX_HEADERS][2]; /* offsets of each header's name and value */
	size_t target_at, target_len, path_at, query_at, body_at;
	int headers_done;
	int streaming;	/* the body goes to sink */
	int head_ready; /* streaming: the head was just completed */
	http_sink_fn sink;
	void *sink_arg;
	int sink_stopped;
	int too_many; /* headers past HTTP_MAX_HEADERS: skipped, refused at the head's end */
	int done;
	int error_status; /* 400, 413, 431, 500, 501, 505 */
	char error[160];  /* what and where */
} http_reader;

/* Prepares r for the first request of a connection. */
void http_reader_init(http_reader *r, const http_limits *limits);

/* Frees what the reader allocated. */
void http_reader_fini(http_reader *r);

/* Forgets the last request (its strings become invalid) and gets ready
 * for the next one on the same connection. */
void http_reader_reset(http_reader *r);

/* Feeds len bytes. HTTP_READ_MORE: all used, the request is not complete.
 * HTTP_READ_DONE: a request is complete after *used bytes (the rest belong
 * to the next request; pass them after http_reader_reset). HTTP_READ_ERROR:
 * the request is bad; http_reader_error says the HTTP status to answer
 * (400 malformed, 413 body over the limit, 431 head over the limit, 501
 * a transfer coding other than chunked, 505 not HTTP/1.x, 500 out of
 * memory) and why. After an error the connection must be closed. Does not
 * block. */
int http_reader_feed(http_reader *r, const char *data, size_t len, size_t *used);

/* After HTTP_READ_HEAD: where the body goes. Feeding on then passes the
 * body to sink and returns HTTP_READ_MORE until the body has ended
 * (HTTP_READ_DONE; the request then has an empty body), or HTTP_READ_ERROR
 * (a malformed body, or the sink asked to stop: http_reader_error says 499
 * then). */
void http_reader_set_sink(http_reader *r, http_sink_fn sink, void *arg);

/* After HTTP_READ_DONE or HTTP_READ_HEAD: the request (valid until reset,
 * fini or, for a streamed body, until the body is done). */
const http_request *http_reader_request(const http_reader *r);

/* After HTTP_READ_MORE: 1 when the head of the request is complete, it sent
 * "Expect: 100-continue" and none of its body has arrived yet; the moment to
 * answer "HTTP/1.1 100 Continue" (once) if the server means to read it. */
int http_reader_expects_continue(const http_reader *r);

/* After HTTP_READ_ERROR: the status to answer and a message. */
int http_reader_error(const http_reader *r, const char **message);

/* The value of a header (name lower-case), or NULL. When a header is sent
 * more than once, the first. */
const char *http_request_header(const http_request *req, const char *name);

#endif
