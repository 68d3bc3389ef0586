/*
 * The generic commands of rpcq, which work for every service without code of
 * their own: `call` (JSON in, JSON out, through the registry of the methods
 * compiled into librpcq), `list` (what the server says it serves, through
 * rpcq.Reflection) and `health`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "readall.h"

/* JSON text of a request: a JSON rendering of a message is a few times its
 * wire size, and the wire size is bounded by the message limit. */
#define REQUEST_MAX (64L * 1024 * 1024)

/* The request JSON named by arg: literal text, @FILE, or - for stdin (at
 * most a message's worth). Freed with rpcq_free; NULL with errno set. */
static char *request_text(const char *arg, size_t *len)
{
	if (arg == NULL)
		arg = "{}";
	if (strcmp(arg, "-") == 0)
		return readall_stream(stdin, REQUEST_MAX, len);
	if (arg[0] == '@') {
		FILE *f = fopen(arg + 1, "rb");
		if (f == NULL)
			return NULL;
		char *text = readall_stream(f, REQUEST_MAX, len);
		fclose(f);
		return text;
	}
	*len = strlen(arg);
	return rpcq_strdup(arg);
}

static void call_usage(FILE *out)
{
	fprintf(out, "usage: rpcq call METHOD [JSON | @FILE | -]\n\n"
		     "Calls METHOD (\"rpcq.Health/Echo\" or \"/rpcq.Health/Echo\") with the request given as\n"
		     "JSON text, read from FILE, or read from stdin (-); no request means {}. Field names may\n"
		     "be lowerCamelCase or as in the .proto. Prints the reply as JSON on stdout.\n"
		     "`rpcq list` shows the methods.\n");
}

int cli_call(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		call_usage(stdout);
		return 0;
	}
	if (argc < 2 || argc > 3)
		return cli_usage_error("call takes METHOD and at most one request argument");
	const char *method = argv[1];
	const rpcq_method_info *mi = rpcq_method_find(method);
	if (mi == NULL) {
		rpcq_error err;
		rpcq_error_set(&err, RPCQ_UNIMPLEMENTED,
			       "no method \"%s\" in the services this rpcq knows (see `rpcq list`)", method);
		return cli_fail(&err);
	}
	size_t len = 0;
	char *text = request_text(argc == 3 ? argv[2] : NULL, &len);
	if (text == NULL) {
		fprintf(stderr, "rpcq: cannot read the request from %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	rpcq_error err;
	ProtobufCMessage *in = NULL;
	ProtobufCMessage *out = NULL;
	int rc = 1;
	if (rpcq_json_to_message(mi->input, text, len, NULL, &in, &err) != RPCQ_OK) {
		rc = cli_fail(&err);
		goto out;
	}
	rpcq_client *c = cli_client(g);
	if (c == NULL)
		goto out;
	rpcq_call_options opts = cli_call_options(g);
	if (rpcq_call(c, mi->full_name, in, mi->output, &out, &opts, &err) != RPCQ_OK) {
		rc = cli_fail(&err);
		goto out;
	}
	char *json = rpcq_message_to_json(out, RPCQ_JSON_PRETTY);
	if (json == NULL) {
		fprintf(stderr, "rpcq: INTERNAL: cannot print the reply as JSON\n");
		goto out;
	}
	printf("%s\n", json);
	free(json);
	rc = 0;
out:
	if (in)
		protobuf_c_message_free_unpacked(in, NULL);
	if (out)
		protobuf_c_message_free_unpacked(out, NULL);
	rpcq_free(text);
	return rc;
}

int cli_list(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: rpcq list [--json]\n\nLists the services the server serves, their methods and "
		       "message types;\nmethods marked (idempotent) are retried automatically when a server is "
		       "unavailable.\n");
		return 0;
	}
	int as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
	if (argc > 2 || (argc == 2 && !as_json))
		return cli_usage_error("list takes no arguments but --json");
	rpcq_client *c = cli_client(g);
	if (c == NULL)
		return 1;
	Rpcq__ListServicesRequest in = RPCQ__LIST_SERVICES_REQUEST__INIT;
	Rpcq__ListServicesResponse *out;
	rpcq_error err;
	rpcq_call_options opts = cli_call_options(g);
	if (rpcq_reflection_list_services(c, &in, &out, &opts, &err) != RPCQ_OK)
		return cli_fail(&err);
	if (as_json) {
		char *json = rpcq_message_to_json(&out->base, RPCQ_JSON_PRETTY);
		if (json)
			printf("%s\n", json);
		free(json);
	} else {
		for (size_t i = 0; i < out->n_services; i++) {
			const Rpcq__ServiceInfo *s = out->services[i];
			printf("%s\n", s->name);
			for (size_t m = 0; m < s->n_methods; m++) {
				const Rpcq__MethodInfo *mi = s->methods[m];
				printf("  %s(%s) returns (%s)%s\n", mi->full_name, mi->input_type, mi->output_type,
				       mi->idempotent ? " (idempotent)" : "");
			}
		}
	}
	protobuf_c_message_free_unpacked(&out->base, NULL);
	return 0;
}

int cli_health(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: rpcq health [--json]\n\nPrints the server's serving status, version, uptime, database "
		       "status and call counters\n(--json: the rpcq.CheckResponse as JSON).\nExit status 0 when it "
		       "is serving with its database reachable, 1 otherwise.\n");
		return 0;
	}
	int as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
	if (argc != 1 && !as_json)
		return cli_usage_error("health takes no arguments but --json");
	rpcq_client *c = cli_client(g);
	if (c == NULL)
		return 1;
	Rpcq__CheckRequest in = RPCQ__CHECK_REQUEST__INIT;
	Rpcq__CheckResponse *out;
	rpcq_error err;
	rpcq_call_options opts = cli_call_options(g);
	if (rpcq_health_check(c, &in, &out, &opts, &err) != RPCQ_OK)
		return cli_fail(&err);
	int rc = out->status == RPCQ__CHECK_RESPONSE__SERVING_STATUS__SERVING && out->database_ok ? 0 : 1;
	if (as_json) {
		if (cli_print_json(&out->base, 1) != 0)
			rc = 1;
		protobuf_c_message_free_unpacked(&out->base, NULL);
		return rc;
	}
	const ProtobufCEnumValue *status =
		protobuf_c_enum_descriptor_get_value(&rpcq__check_response__serving_status__descriptor, out->status);
	printf("status: %s\nversion: %s\nuptime_ms: %llu\ndatabase: %s%s%s\npool: %u in use, %u idle\n"
	       "calls: %llu answered, %llu failed, %u in flight, %llu replies to departed callers dropped\n",
	       status ? status->name : "UNKNOWN", out->version, (unsigned long long)out->uptime_ms,
	       out->database_ok ? "ok" : "unavailable", out->database_ok ? "" : ": ",
	       out->database_ok ? "" : out->database_message, out->pool_in_use, out->pool_idle,
	       (unsigned long long)out->calls, (unsigned long long)out->calls_failed, out->in_flight,
	       (unsigned long long)out->replies_dropped);
	char limit[32];
	cli_human_bytes(out->max_message_bytes, limit, sizeof(limit));
	printf("max message: %s (%llu bytes)\n", limit, (unsigned long long)out->max_message_bytes);
	protobuf_c_message_free_unpacked(&out->base, NULL);
	return rc;
}
