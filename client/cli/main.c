/*
 * rpcq: the command-line client.
 *   rpcq [--server URL] [--timeout MS] [--header K=V]... [--api-key KEY]
 *        [--allow-plaintext-key] [--tls-ca FILE] [--client-cert FILE --client-key FILE]
 *        COMMAND [ARGS]
 * Global options come before the command; each command parses its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv, cli_globals *g);
	const char *summary;
};

static const struct command commands[] = {
	{"call", cli_call, "call any method with JSON input; prints the JSON reply"},
	{"list", cli_list, "list the services and methods the server offers"},
	{"health", cli_health, "check the server and its database"},
	{"subscribe", cli_subscribe, "print stream messages as JSON lines"},
	{"vesting", cli_vesting, "vesting schedules: compute a file, append to and query ledgers"},
	{"events", cli_events, "events of the ticketing provider: search, get, sync, changes"},
	{"vouchers", cli_vouchers, "vouchers: import and report the seller's exports, issue from the stock"},
	{"billing", cli_billing, "billing: import debts files, bills and their e-mails, payments"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rpcq [--server URL] [--timeout MS] [--header KEY=VALUE]... [--api-key KEY]\n"
		"            [--allow-plaintext-key] [--tls-ca FILE] [--client-cert FILE --client-key FILE]\n"
		"            COMMAND [ARGS]\n\n"
		"Global options:\n"
		"  --server URL     server URL(s), comma-separated (default: $RPCQ_SERVER or %s)\n"
		"  --timeout MS     deadline of each call in milliseconds (default 10000)\n"
		"  --header K=V     metadata sent with every call (repeatable), e.g. x-request-id=abc\n"
		"  --api-key KEY    API key sent with every call as \"authorization: Bearer KEY\"\n"
		"                   (default: $RPCQ_API_KEY, which other users cannot see in ps; \"\": none)\n"
		"  --allow-plaintext-key\n"
		"                   send the key over tcp:// or ws:// to a host that is not loopback\n"
		"                   (refused otherwise: use tls+tcp:// or wss://)\n"
		"  --tls-ca FILE    PEM CA that tls+tcp:// and wss:// servers must be signed by\n"
		"                   (default: $RPCQ_TLS_CA; without one the certificate is not checked)\n"
		"  --client-cert FILE --client-key FILE\n"
		"                   PEM certificate and key shown to stream publishers that ask for one\n"
		"                   (rpcqd --publish-client-ca)\n\n"
		"Commands:\n",
		RPCQ_DEFAULT_SERVER);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nrpcq COMMAND --help describes a command. Exit status: 0 on success, 1 when a call fails,\n"
		     "2 on a usage error.\n");
}

/* Value of a global option given as "--opt V" or "--opt=V"; advances *i. */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

int main(int argc, char **argv)
{
	cli_globals g = {0};
	int nmeta = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("rpcq %s\n", RPCQ_VERSION);
			return 0;
		} else if ((v = option_value(argc, argv, &i, "--server")) != NULL) {
			g.server = v;
		} else if ((v = option_value(argc, argv, &i, "--timeout")) != NULL) {
			char *end;
			long t = strtol(v, &end, 10);
			if (*end != '\0' || t <= 0 || t > 86400000)
				return cli_usage_error("--timeout must be a number of milliseconds, not \"%s\"", v);
			g.timeout_ms = (int)t;
		} else if ((v = option_value(argc, argv, &i, "--header")) != NULL) {
			const char *eq = strchr(v, '=');
			if (eq == NULL || eq == v)
				return cli_usage_error("--header takes KEY=VALUE, not \"%s\"", v);
			if (nmeta >= CLI_MAX_METADATA)
				return cli_usage_error("at most %d --header options", CLI_MAX_METADATA);
			char *key = strndup(v, (size_t)(eq - v));
			if (key == NULL)
				return cli_usage_error("out of memory");
			g.metadata[2 * nmeta] = key;
			g.metadata[2 * nmeta + 1] = eq + 1;
			nmeta++;
		} else if ((v = option_value(argc, argv, &i, "--api-key")) != NULL) {
			g.api_key = v;
		} else if (strcmp(argv[i], "--allow-plaintext-key") == 0) {
			g.allow_plaintext_key = 1;
		} else if ((v = option_value(argc, argv, &i, "--tls-ca")) != NULL) {
			if (*v == '\0')
				return cli_usage_error("--tls-ca takes a file name");
			g.tls_ca = v;
		} else if ((v = option_value(argc, argv, &i, "--client-cert")) != NULL) {
			if (*v == '\0')
				return cli_usage_error("--client-cert takes a file name");
			g.client_cert = v;
		} else if ((v = option_value(argc, argv, &i, "--client-key")) != NULL) {
			if (*v == '\0')
				return cli_usage_error("--client-key takes a file name");
			g.client_key = v;
		} else {
			static const char *const valued[] = {"--server", "--timeout",	  "--header",	 "--api-key",
							     "--tls-ca", "--client-cert", "--client-key"};
			for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++)
				if (strcmp(argv[i], valued[k]) == 0)
					return cli_usage_error("%s needs a value", argv[i]);
			return cli_usage_error("unknown option \"%s\"", argv[i]);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if ((g.client_cert == NULL) != (g.client_key == NULL))
		return cli_usage_error("--client-cert and --client-key go together");
	if (g.tls_ca == NULL && (g.tls_ca = getenv("RPCQ_TLS_CA")) != NULL && *g.tls_ca == '\0')
		g.tls_ca = NULL;
	int rc = -1;
	for (size_t c = 0; c < NCOMMANDS; c++) {
		if (strcmp(argv[i], commands[c].name) == 0) {
			rc = commands[c].run(argc - i, argv + i, &g);
			break;
		}
	}
	if (rc < 0)
		rc = cli_usage_error("unknown command \"%s\"", argv[i]);
	rpcq_client_destroy(g.client);
	for (int m = 0; m < nmeta; m++)
		free((void *)g.metadata[2 * m]);
	return rc;
}
