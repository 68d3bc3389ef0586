/* Shared helpers of the rpcq command: the client, call options, errors,
 * options, JSON output. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

rpcq_client *cli_client(cli_globals *g)
{
	if (g->client)
		return g->client;
	rpcq_client_options o = {.servers = g->server,
				 .timeout_ms = g->timeout_ms,
				 .tls_ca_file = g->tls_ca,
				 .api_key = g->api_key,
				 .allow_plaintext_key = g->allow_plaintext_key,
				 .connect_timeout_ms = CLI_CONNECT_TIMEOUT_MS};
	rpcq_error err;
	if (rpcq_client_create(&g->client, &o, &err) != RPCQ_OK) {
		cli_fail(&err);
		return NULL;
	}
	return g->client;
}

int cli_server_count(const rpcq_client *c)
{
	int n = 1;
	for (const char *p = rpcq_client_servers(c); *p; p++)
		n += *p == ',';
	return n;
}

rpcq_status cli_client_of_server(const cli_globals *g, const rpcq_client *all, int index, rpcq_client **out,
				 rpcq_error *err)
{
	const char *p = rpcq_client_servers(all);
	for (int i = 0; i < index && p != NULL; i++)
		if ((p = strchr(p, ',')) != NULL)
			p++;
	if (p == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "no server %d in %s", index + 1,
				      rpcq_client_servers(all));
	char *url = strndup(p, strcspn(p, ","));
	if (url == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	rpcq_client_options o = {.servers = url,
				 .timeout_ms = g->timeout_ms,
				 .tls_ca_file = g->tls_ca,
				 .api_key = g->api_key,
				 .allow_plaintext_key = g->allow_plaintext_key,
				 .connect_timeout_ms = CLI_CONNECT_TIMEOUT_MS};
	rpcq_status st = rpcq_client_create(out, &o, err);
	free(url);
	return st;
}

size_t cli_chunk_bytes(cli_globals *g, size_t preferred)
{
	if (g->chunk_bytes != 0)
		return g->chunk_bytes;
	g->chunk_bytes = preferred;
	rpcq_client *c = cli_client(g);
	Rpcq__CheckRequest in = RPCQ__CHECK_REQUEST__INIT;
	Rpcq__CheckResponse *out = NULL;
	rpcq_call_options o = cli_call_options(g);
	rpcq_error err;
	if (c == NULL || rpcq_health_check(c, &in, &out, &o, &err) != RPCQ_OK)
		return g->chunk_bytes; /* the upload's own call says what is wrong */
	uint64_t limit = out->max_message_bytes;
	protobuf_c_message_free_unpacked(&out->base, NULL);
	/* Room for the envelope (method, metadata, the call's other fields):
	 * an eighth of the limit, at least 8 KiB when the limit allows. */
	uint64_t room = limit / 8 > 8192 ? limit / 8 : limit / 2 < 8192 ? limit / 2 : 8192;
	if (limit != 0 && limit - room < preferred)
		g->chunk_bytes = (size_t)(limit - room);
	return g->chunk_bytes;
}

rpcq_call_options cli_call_options(const cli_globals *g)
{
	rpcq_call_options o = {.timeout_ms = g->timeout_ms, .metadata = g->metadata[0] ? g->metadata : NULL};
	return o;
}

int cli_fail(const rpcq_error *err)
{
	fprintf(stderr, "rpcq: %s: %s\n", rpcq_status_name(err->code), err->message);
	return 1;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rpcq: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see --help)\n", stderr);
	va_end(ap);
	return 2;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		if (strcmp(argv[i], "--") == 0)
			return 0;
	}
	return 0;
}

const char *cli_option(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

int cli_fail_status(rpcq_status code, const char *fmt, ...)
{
	rpcq_error err;
	va_list ap;
	va_start(ap, fmt);
	rpcq_error_vset(&err, code, fmt, ap);
	va_end(ap);
	return cli_fail(&err);
}

int cli_print_json(const ProtobufCMessage *m, int pretty)
{
	char *json = rpcq_message_to_json(m, RPCQ_JSON_EMIT_DEFAULTS | (pretty ? RPCQ_JSON_PRETTY : 0));
	if (json == NULL)
		return cli_out_of_memory();
	fputs(json, stdout);
	fputc('\n', stdout);
	rpcq_free(json);
	return 0;
}

int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_human_bytes(uint64_t n, char *out, size_t len)
{
	if (n < 10 * 1024)
		snprintf(out, len, "%" PRIu64 " B", n);
	else if (n < 1024 * 1024)
		snprintf(out, len, "%.1f KiB", (double)n / 1024);
	else if (n < 1024ULL * 1024 * 1024)
		snprintf(out, len, "%.1f MiB", (double)n / (1024 * 1024));
	else
		snprintf(out, len, "%.2f GiB", (double)n / (1024 * 1024 * 1024));
}

int cli_out_of_memory(void)
{
	return cli_fail_status(RPCQ_RESOURCE_EXHAUSTED, "out of memory");
}

void cli_format_ms(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	snprintf(out, len, "-");
	if (ms > 0 && gmtime_r(&t, &tm))
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cli_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (s[0] < '0' || s[0] > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cli_next_page(char **token, const char *next)
{
	free(*token);
	*token = NULL;
	if (next == NULL || next[0] == '\0')
		return 0;
	*token = strdup(next);
	return *token ? 0 : cli_out_of_memory();
}

int cli_each_page(cli_page_fn page, void *arg)
{
	char *token = NULL;
	int rc;
	do {
		char *next = NULL;
		rc = page(arg, token ? token : "", &next);
		free(token);
		token = next;
	} while (rc == 0 && token != NULL);
	free(token);
	return rc;
}

int cli_arg_and_json(int argc, char **argv, const char *what, const char *arg, const char **out, int *as_json)
{
	*out = NULL;
	*as_json = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*as_json = 1;
		else if (*out == NULL && argv[i][0] != '-')
			*out = argv[i];
		else
			return cli_usage_error("%s takes %s [--json], not \"%s\"", what, arg, argv[i]);
	}
	if (*out == NULL)
		return cli_usage_error("%s takes %s [--json]", what, arg);
	return 0;
}
