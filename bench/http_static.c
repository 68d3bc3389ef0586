/*
 * rpcq-http-static: the ceiling the HTTP gateway is measured against. nng's
 * own HTTP server (the one rpcqd's gateway is built on) answering
 * POST /rpc/rpcq.Health/Echo with a fixed application/json body, without
 * dispatch, workers, JSON or protobuf: the request body is collected (as the
 * gateway must) and thrown away, and the same bytes are sent every time.
 *
 *   rpcq-http-static --listen http://127.0.0.1:PORT (--body FILE | --size BYTES)
 *                    [--path /rpc/rpcq.Health/Echo]
 *
 * --body sends the contents of FILE (bench/run-http.sh passes the gateway's
 * own reply to the benchmark's request, so both servers send the same bytes);
 * --size sends {"payload":"AAAA..."} padded to exactly BYTES bytes (at least
 * 14). Runs until SIGINT or SIGTERM. Exit status 0 after a signal, 1 on error.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#define MAX_BODY_BYTES (4L * 1024 * 1024)
#define MAX_REQUEST_BYTES (4L * 1024 * 1024 + 4096)

/* The reply body, shared read-only by every request. */
static char *reply;
static size_t reply_len;

static void usage(void)
{
	fprintf(stderr, "usage: rpcq-http-static --listen http://127.0.0.1:PORT (--body FILE | --size BYTES)"
			" [--path /rpc/rpcq.Health/Echo]\n");
	exit(2);
}

static void die(const char *what, int rv)
{
	fprintf(stderr, "rpcq-http-static: %s: %s\n", what, rv ? nng_strerror(rv) : strerror(errno));
	exit(1);
}

static int load_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	reply = malloc(MAX_BODY_BYTES);
	if (reply == NULL) {
		fclose(f);
		return -1;
	}
	reply_len = fread(reply, 1, MAX_BODY_BYTES, f);
	int err = ferror(f) ? EIO : !feof(f) && fgetc(f) != EOF ? EFBIG : 0;
	fclose(f);
	errno = err;
	return err ? -1 : 0;
}

/* {"payload":"AAA...A"} of exactly n bytes. */
static int make_body(size_t n)
{
	static const char head[] = "{\"payload\":\"", tail[] = "\"}";
	size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
	if (n < fixed || n > (size_t)MAX_BODY_BYTES) {
		errno = EINVAL;
		return -1;
	}
	reply = malloc(n);
	if (reply == NULL)
		return -1;
	memcpy(reply, head, sizeof(head) - 1);
	memset(reply + sizeof(head) - 1, 'A', n - fixed);
	memcpy(reply + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	reply_len = n;
	return 0;
}

static void echo_static(nng_aio *aio)
{
	nng_http_res *res;
	int rv = nng_http_res_alloc(&res);
	if (rv != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	/* set_data does not copy: the static buffer outlives the server. */
	if ((rv = nng_http_res_set_header(res, "Content-Type", "application/json")) != 0 ||
	    (rv = nng_http_res_set_data(res, reply, reply_len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

int main(int argc, char **argv)
{
	const char *listen = NULL, *body = NULL, *size = NULL, *path = "/rpc/rpcq.Health/Echo";
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage();
		if (strcmp(argv[i], "--listen") == 0)
			listen = argv[++i];
		else if (strcmp(argv[i], "--body") == 0)
			body = argv[++i];
		else if (strcmp(argv[i], "--size") == 0)
			size = argv[++i];
		else if (strcmp(argv[i], "--path") == 0)
			path = argv[++i];
		else
			usage();
	}
	if (listen == NULL || (body == NULL) == (size == NULL))
		usage();
	if (body != NULL) {
		if (load_file(body) != 0)
			die(body, 0);
	} else {
		char *end;
		errno = 0;
		unsigned long n = strtoul(size, &end, 10);
		if (errno != 0 || end == size || *end != '\0' || n > SIZE_MAX || make_body((size_t)n) != 0) {
			fprintf(stderr, "rpcq-http-static: --size: not a size from 14 to %ld: %s\n", MAX_BODY_BYTES,
				size);
			return 2;
		}
	}

	/* nng's threads inherit this mask, so the signals reach sigwait below. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0)
		die("pthread_sigmask", 0);

	nng_url *url;
	nng_http_server *srv;
	nng_http_handler *h;
	int rv;
	if ((rv = nng_url_parse(&url, listen)) != 0)
		die(listen, rv);
	if ((rv = nng_http_server_hold(&srv, url)) != 0)
		die("nng_http_server_hold", rv);
	if ((rv = nng_http_handler_alloc(&h, path, echo_static)) != 0)
		die("nng_http_handler_alloc", rv);
	if ((rv = nng_http_handler_set_method(h, "POST")) != 0)
		die("nng_http_handler_set_method", rv);
	if ((rv = nng_http_handler_collect_body(h, true, MAX_REQUEST_BYTES)) != 0)
		die("nng_http_handler_collect_body", rv);
	if ((rv = nng_http_server_add_handler(srv, h)) != 0)
		die("nng_http_server_add_handler", rv);
	if ((rv = nng_http_server_start(srv)) != 0)
		die(listen, rv);
	fprintf(stderr, "rpcq-http-static: POST %s on %s, %zu-byte application/json reply\n", path, listen, reply_len);

	int sig;
	while (sigwait(&stop, &sig) != 0)
		;
	nng_http_server_stop(srv);
	nng_http_server_release(srv);
	nng_url_free(url);
	free(reply);
	return 0;
}
