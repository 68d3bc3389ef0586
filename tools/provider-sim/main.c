/*
 * provider-sim: the events provider's XML feed over HTTP, for development
 * and tests (the real provider is not reachable from here). It serves
 * generated feeds in either vocabulary, changing between calls, or the files
 * given on its command line in order, and can be told at run time to answer
 * slowly, fail, return broken XML or hang. `provider-sim --help` documents
 * it all; feed.c makes the feeds, serve.c serves them.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <nng/nng.h>

#include "feed.h"
#include "serve.h"

#define DEFAULT_LISTEN "http://127.0.0.1:7490"
#define MAX_EVENTS 1000000u
#define MAX_ZONES 10000u
#define MAX_ZONES_TOTAL 20000000u /* events x zones: about 1.7 GB of XML */

static const char usage_text[] =
	"usage: provider-sim [OPTIONS] [FILE...]\n"
	"\n"
	"Serves the events provider's XML feed over HTTP, as the real provider would\n"
	"(see ../shared/spec/events.md, \"The provider feed\").\n"
	"\n"
	"  --listen URL          where to serve (default " DEFAULT_LISTEN ")\n"
	"  --vocabulary V        event (eventList/base_event/event, the default) or plan\n"
	"                        (planList/base_plan/plan)\n"
	"  --events N            event elements per response (default 50, at most 1000000)\n"
	"  --zones M             zones per event (default 4, at most 10000; N x M at most 20000000)\n"
	"  --seed S              everything generated derives from S (default 1)\n"
	"  --change PERCENT      events changed between responses, 0..100 (default 10)\n"
	"  --mode MODE           start in a failure mode (default ok; see below)\n"
	"  --delay-ms N          how long slow waits (default 5000)\n"
	"  --help                this text\n"
	"\n"
	"Generated mode (no FILE): response k is a pure function of the options and k.\n"
	"Response 1 holds exactly N events of M zones, all sell_mode=\"online\"; one base\n"
	"element in four holds two events, and event ids repeat across base elements (an\n"
	"event is the pair base id, event id). From one response to the next about\n"
	"PERCENT % of the events get new prices, capacities (some 0) and end times, a few\n"
	"base elements disappear, a few go sell_mode=\"offline\" (and disappear later),\n"
	"and new ones appear so that each response again holds N events. --change 0:\n"
	"every response is the same. Prices are exact decimals with two digits; dates are\n"
	"local wall-clock times (2021 and 2022). 5000 x 200 is about 86 MB.\n"
	"\n"
	"File mode (FILE... given): response k is FILE number k, byte for byte; after the\n"
	"last, the last again (so the three real responses replay in order).\n"
	"\n"
	"Endpoints:\n"
	"  GET /feed, GET /      the next response, in the current mode\n"
	"  POST /control?mode=MODE[&delay_ms=N][&count=K]\n"
	"                        MODE for the next K feed requests (then ok again), or\n"
	"                        until changed without count; delay_ms sets slow's wait\n"
	"  POST /control?reset=1 back to response 1, mode ok, counters 0 (may be combined\n"
	"                        with mode=...); answers the new state as JSON\n"
	"  GET /stats            {\"feed_requests\":N,\"served\":{\"ok\":..,\"slow\":..,\"error\":..,\n"
	"                        \"truncated\":..,\"garbage\":..,\"hang\":..},\"response\":K,\n"
	"                        \"mode\":..,\"remaining\":K|null,\"delay_ms\":..,\"pending\":{..}}\n"
	"                        (response: the number of the last complete feed served)\n"
	"\n"
	"Modes (only ok and slow consume a response number):\n"
	"  ok         the next response\n"
	"  slow       the next response, after delay_ms\n"
	"  error      HTTP 500 with a short text body\n"
	"  truncated  HTTP 200, the next response cut inside an element (the next good\n"
	"             answer serves it whole)\n"
	"  garbage    HTTP 200, 1024 bytes that are not XML\n"
	"  hang       no answer; the connection is held until the client hangs up\n"
	"\n"
	"Logs one line per request on stderr (method, path, mode, status, bytes, ms).\n"
	"SIGINT or SIGTERM stops it (exit status 0); 1 on a start-up failure, 2 on bad usage.\n";

/* "provider-sim: <what>: <arg>" and exit 2. */
static void usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "provider-sim: %s: %s\n(provider-sim --help for usage)\n", what, arg);
	exit(2);
}

static uint64_t parse_number(const char *flag, const char *v, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
	if (v[0] < '0' || v[0] > '9' || errno != 0 || *end != '\0' || n < min || n > max) {
		fprintf(stderr, "provider-sim: %s: not a number from %" PRIu64 " to %" PRIu64 ": %s\n", flag, min, max,
			v);
		exit(2);
	}
	return n;
}

static int read_file(const char *path, feed_buf *out)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	int result = -1;
	for (;;) {
		if (out->cap - out->len < 65536) {
			size_t cap = out->cap ? out->cap * 2 : 65536;
			char *p = realloc(out->p, cap);
			if (p == NULL) {
				errno = ENOMEM;
				goto out;
			}
			out->p = p;
			out->cap = cap;
		}
		size_t n = fread(out->p + out->len, 1, out->cap - out->len, f);
		out->len += n;
		if (n == 0) {
			if (ferror(f)) {
				errno = EIO;
				goto out;
			}
			break;
		}
	}
	result = 0;
out:
	fclose(f);
	return result;
}

/* "--flag value" or "--flag=value"; NULL when argv[*i] is not flag. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
	size_t n = strlen(flag);
	if (strncmp(argv[*i], flag, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		usage_error("needs a value", flag);
	return argv[++*i];
}

int main(int argc, char **argv)
{
	const char *listen = DEFAULT_LISTEN;
	feed_params fp = {.vocabulary = FEED_EVENT, .events = 50, .zones = 4, .seed = 1, .change_percent = 10};
	serve_config cfg = {.mode = SERVE_OK, .delay_ms = SERVE_DEFAULT_DELAY_MS};
	const char **names = calloc((size_t)argc + 1, sizeof(*names));
	size_t nfiles = 0;
	int status = 1;
	feed *f = NULL;
	feed_buf *files = NULL;
	serve *s = NULL;
	if (names == NULL) {
		fprintf(stderr, "provider-sim: out of memory\n");
		return 1;
	}

	int only_files = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (only_files || argv[i][0] != '-') {
			names[nfiles++] = argv[i];
		} else if (strcmp(argv[i], "--") == 0) {
			only_files = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			free(names);
			return 0;
		} else if ((v = flag_value(argc, argv, &i, "--listen")) != NULL) {
			listen = v;
		} else if ((v = flag_value(argc, argv, &i, "--vocabulary")) != NULL) {
			if (strcmp(v, "event") == 0 || strcmp(v, "events") == 0)
				fp.vocabulary = FEED_EVENT;
			else if (strcmp(v, "plan") == 0 || strcmp(v, "plans") == 0)
				fp.vocabulary = FEED_PLAN;
			else
				usage_error("--vocabulary: event or plan, not", v);
		} else if ((v = flag_value(argc, argv, &i, "--events")) != NULL) {
			fp.events = (uint32_t)parse_number("--events", v, 1, MAX_EVENTS);
		} else if ((v = flag_value(argc, argv, &i, "--zones")) != NULL) {
			fp.zones = (uint32_t)parse_number("--zones", v, 1, MAX_ZONES);
		} else if ((v = flag_value(argc, argv, &i, "--seed")) != NULL) {
			fp.seed = parse_number("--seed", v, 0, UINT64_MAX);
		} else if ((v = flag_value(argc, argv, &i, "--change")) != NULL) {
			fp.change_percent = (unsigned)parse_number("--change", v, 0, 100);
		} else if ((v = flag_value(argc, argv, &i, "--mode")) != NULL) {
			if (serve_mode_parse(v, &cfg.mode) != 0)
				usage_error("--mode: one of ok|slow|error|truncated|garbage|hang, not", v);
		} else if ((v = flag_value(argc, argv, &i, "--delay-ms")) != NULL) {
			cfg.delay_ms = (unsigned)parse_number("--delay-ms", v, 0, SERVE_MAX_DELAY_MS);
		} else {
			usage_error("unknown option", argv[i]);
		}
	}
	if ((uint64_t)fp.events * fp.zones > MAX_ZONES_TOTAL) {
		fprintf(stderr, "provider-sim: --events x --zones: at most %u zones in all\n", MAX_ZONES_TOTAL);
		free(names);
		return 2;
	}

	/* nng's threads inherit this mask, so the signals reach sigwait below. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
		fprintf(stderr, "provider-sim: pthread_sigmask failed\n");
		goto out;
	}
	/* A client that hangs up mid-answer must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	if (nfiles > 0) {
		files = calloc(nfiles, sizeof(*files));
		if (files == NULL) {
			fprintf(stderr, "provider-sim: out of memory\n");
			goto out;
		}
		for (size_t i = 0; i < nfiles; i++) {
			if (read_file(names[i], &files[i]) != 0) {
				fprintf(stderr, "provider-sim: %s: %s\n", names[i], strerror(errno));
				goto out;
			}
		}
		cfg.files = files;
		cfg.nfiles = nfiles;
	} else {
		int rv = feed_create(&f, &fp);
		if (rv != 0) {
			fprintf(stderr, "provider-sim: cannot make the feed: %s\n", strerror(rv));
			goto out;
		}
		cfg.feed = f;
	}
	cfg.listen = listen;
	int rv = serve_create(&s, &cfg);
	if (rv != 0) {
		fprintf(stderr, "provider-sim: --listen %s: %s\n", listen, nng_strerror(rv));
		goto out;
	}
	if (nfiles > 0)
		fprintf(stderr, "provider-sim: serving %zu file(s) in order on %s/feed (mode %s)\n", nfiles, listen,
			serve_mode_name(cfg.mode));
	else
		fprintf(stderr,
			"provider-sim: serving generated feeds on %s/feed: vocabulary %s, %" PRIu32 " events x %" PRIu32
			" zones, seed %" PRIu64 ", change %u%% (mode %s)\n",
			listen, fp.vocabulary == FEED_PLAN ? "plan" : "event", fp.events, fp.zones, fp.seed,
			fp.change_percent, serve_mode_name(cfg.mode));

	int sig = 0;
	if (sigwait(&stop, &sig) != 0) {
		fprintf(stderr, "provider-sim: sigwait failed\n");
		goto out;
	}
	fprintf(stderr, "provider-sim: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	status = 0;
out:
	serve_destroy(s);
	feed_destroy(f);
	for (size_t i = 0; files != NULL && i < nfiles; i++)
		feed_buf_fini(&files[i]);
	free(files);
	free(names);
	return status;
}
