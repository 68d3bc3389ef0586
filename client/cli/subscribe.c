/*
 * rpcq subscribe: prints the messages of the topics under one or more
 * prefixes as JSON lines, one object per message, flushed at once so that a
 * pipe reader sees each message when it arrives:
 *   {"topic":"events.changed","seq":"42","type":"rpcq.events.Changed",
 *    "publishedAt":"2026-11-23T10:00:00.123Z","payload":{...}}
 * The payload is transcoded through the message's descriptor; a type librpcq
 * does not know is printed as "payloadBase64" instead. Messages lost to
 * retention are reported on stderr, and the stream goes on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "cli.h"

#define MAX_PREFIXES 64

static void usage(FILE *out)
{
	fprintf(out,
		"usage: rpcq subscribe [--from-seq N] [--count N] TOPIC_PREFIX...\n\n"
		"Prints every message of the topics starting with one of the prefixes (\"\" matches every\n"
		"topic), one JSON object per line, in seq order per topic and each exactly once: messages the\n"
		"network lost are fetched again from the server's log.\n\n"
		"  --from-seq N   start with the messages after seq N of every topic that exists now\n"
		"                 (0: their whole retained history); default: only new messages\n"
		"  --count N      exit (status 0) after printing N messages\n\n"
		"Output: {\"topic\":..,\"seq\":\"..\",\"type\":..,\"publishedAt\":\"RFC 3339 UTC\",\"payload\":{..}}\n"
		"(\"payloadBase64\" instead of \"payload\" for a type this rpcq does not know). Messages trimmed\n"
		"by the server's retention before they could be printed are reported on stderr.\n");
}

/* A JSON string of s; topics and type names need no escapes, but the
 * output stays valid whatever a server sends. */
static void put_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void put_base64(FILE *out, const uint8_t *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	fputc('"', out);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v =
			(uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		fputc(tab[v >> 18 & 63], out);
		fputc(tab[v >> 12 & 63], out);
		fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', out);
		fputc(i + 2 < n ? tab[v & 63] : '=', out);
	}
	fputc('"', out);
}

static void put_message(FILE *out, const rpcq_stream_message *m)
{
	char when[40];
	time_t secs = (time_t)(m->published_at_ms / 1000);
	int ms = (int)(m->published_at_ms % 1000);
	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	struct tm tm;
	if (gmtime_r(&secs, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "1970-01-01T00:00:00");

	fputs("{\"topic\":", out);
	put_string(out, m->topic);
	fprintf(out, ",\"seq\":\"%llu\",\"type\":", (unsigned long long)m->seq);
	put_string(out, m->type);
	fprintf(out, ",\"publishedAt\":\"%s.%03dZ\"", when, ms);

	ProtobufCMessage *msg = NULL;
	rpcq_error err;
	char *json = NULL;
	if (rpcq_stream_message_unpack(m, NULL, &msg, &err) == RPCQ_OK) {
		json = rpcq_message_to_json(msg, 0);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (json != NULL) {
		fprintf(out, ",\"payload\":%s}\n", json);
		rpcq_free(json);
	} else {
		fputs(",\"payloadBase64\":", out);
		put_base64(out, m->payload, m->payload_len);
		fputs("}\n", out);
	}
	fflush(out);
}

static int parse_count(const char *flag, const char *v, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (v == NULL || *v == '\0' || *v == '-')
		return cli_usage_error("%s takes a non-negative number", flag);
	*out = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0')
		return cli_usage_error("%s takes a non-negative number, not \"%s\"", flag, v);
	return 0;
}

int cli_subscribe(int argc, char **argv, cli_globals *g)
{
	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	const char *prefixes[MAX_PREFIXES];
	int nprefixes = 0;
	unsigned long long count = 0, from = 0;
	int have_count = 0, have_from = 0, rc;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--count") == 0 || strncmp(a, "--count=", 8) == 0) {
			const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
			if ((rc = parse_count("--count", v, &count)) != 0)
				return rc;
			have_count = 1;
		} else if (strcmp(a, "--from-seq") == 0 || strncmp(a, "--from-seq=", 11) == 0) {
			const char *v = a[10] == '=' ? a + 11 : (i + 1 < argc ? argv[++i] : NULL);
			if ((rc = parse_count("--from-seq", v, &from)) != 0)
				return rc;
			have_from = 1;
		} else if (strcmp(a, "--") == 0) {
			for (i++; i < argc && nprefixes < MAX_PREFIXES; i++)
				prefixes[nprefixes++] = argv[i];
		} else if (a[0] == '-' && a[1] != '\0') {
			return cli_usage_error("subscribe: unknown option \"%s\"", a);
		} else if (nprefixes < MAX_PREFIXES) {
			prefixes[nprefixes++] = a;
		} else {
			return cli_usage_error("subscribe: at most %d topic prefixes", MAX_PREFIXES);
		}
	}
	if (nprefixes == 0)
		return cli_usage_error("subscribe needs at least one TOPIC_PREFIX (\"\" for every topic)");
	if (have_count && count == 0)
		return 0;

	rpcq_client *c = cli_client(g);
	if (c == NULL)
		return 1;
	/* The calls (Endpoints, Topics, Replay) go through c and carry its API
	 * key; the SUB socket only receives, but it checks TLS the same way. */
	rpcq_subscribe_options o = {.tls_ca_file = g->tls_ca,
				    .tls_cert_file = g->client_cert,
				    .tls_key_file = g->client_key,
				    .metadata = g->metadata[0] ? g->metadata : NULL};
	if (have_from) {
		o.start = RPCQ_SUBSCRIBE_AFTER_SEQ;
		o.after_seq = from;
	}
	rpcq_subscription *s;
	rpcq_error err;
	if (rpcq_subscription_create(&s, c, prefixes, nprefixes, &o, &err) != RPCQ_OK)
		return cli_fail(&err);
	unsigned long long printed = 0;
	while (!have_count || printed < count) {
		rpcq_stream_message *m;
		rpcq_status st = rpcq_subscription_next(s, -1, &m, &err);
		if (st == RPCQ_OK) {
			if (m != NULL) {
				put_message(stdout, m);
				rpcq_stream_message_free(m);
				printed++;
			}
			continue;
		}
		/* A key that is not valid (revoked, expired) or does not cover
		 * the topics never will be by retrying: exit 1, as a failed
		 * call does. Otherwise the subscription stays usable: report,
		 * and go on (after a pause when the server is away). */
		int failed = cli_fail(&err);
		if (st == RPCQ_UNAUTHENTICATED || st == RPCQ_PERMISSION_DENIED) {
			rpcq_subscription_destroy(s);
			return failed;
		}
		if (st != RPCQ_DATA_LOSS)
			nng_msleep(1000);
	}
	rpcq_subscription_destroy(s);
	return 0;
}
