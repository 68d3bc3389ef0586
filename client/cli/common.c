/* Shared helpers of the rpcq command: the client, call options, errors. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

rpcq_client *cli_client(cli_globals *g)
{
	if (g->client)
		return g->client;
	rpcq_client_options o = {.servers = g->server, .timeout_ms = g->timeout_ms};
	rpcq_error err;
	if (rpcq_client_create(&g->client, &o, &err) != RPCQ_OK) {
		cli_fail(&err);
		return NULL;
	}
	return g->client;
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
