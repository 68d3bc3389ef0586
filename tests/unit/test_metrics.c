/*
 * Metrics: calls counted by method and code, cumulative histograms with their
 * sum and count, HTTP requests by route and code, escaped labels, the gauges,
 * exact totals under concurrent counting, and an exposition that the real
 * Prometheus parser (python3-prometheus-client) reads back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <rpcq/alloc.h>

#include "dispatch.h"
#include "metrics.h"
#include "services/health/health.h"

static const service_def *const services[] = {&health_service, &reflection_service, NULL};

typedef struct fixture {
	dispatch *d;
	metrics *m;
	const dispatch_entry *check, *echo;
	char *text;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	rpcq_error err;
	assert_int_equal(dispatch_create(&f->d, services, &err), RPCQ_OK);
	assert_int_equal(metrics_create(&f->m, f->d, &err), RPCQ_OK);
	f->check = dispatch_find(f->d, "/rpcq.Health/Check");
	f->echo = dispatch_find(f->d, "/rpcq.Health/Echo");
	assert_non_null(f->check);
	assert_non_null(f->echo);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	rpcq_free(f->text);
	metrics_destroy(f->m);
	dispatch_destroy(f->d);
	free(f);
	return 0;
}

/* Renders into f->text (freeing the previous one) and checks the length. */
static const char *render(fixture *f, const metrics_gauges *g, const char *version)
{
	rpcq_free(f->text);
	size_t len = 0;
	f->text = metrics_render(f->m, g, version, &len);
	assert_non_null(f->text);
	assert_int_equal(len, strlen(f->text));
	assert_true(len > 0 && f->text[len - 1] == '\n');
	return f->text;
}

/* Fails, printing the exposition (cmocka's print_error truncates it), unless
 * it has line as one whole line. */
static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	}
	fprintf(stderr, "no line \"%s\" in:\n%s", line, text);
	fail();
}

static void test_a_call_is_counted_under_its_method_and_code(void **state)
{
	fixture *f = *state;
	metrics_call(f->m, f->echo, RPCQ_OK, 1000);
	metrics_call(f->m, f->echo, RPCQ_OK, 1000);
	metrics_call(f->m, f->echo, RPCQ_NOT_FOUND, 1000);
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "# HELP rpcq_calls_total Calls answered, by method and status code.");
	assert_line(text, "# TYPE rpcq_calls_total counter");
	assert_line(text, "rpcq_calls_total{method=\"rpcq.Health/Echo\",code=\"OK\"} 2");
	assert_line(text, "rpcq_calls_total{method=\"rpcq.Health/Echo\",code=\"NOT_FOUND\"} 1");
	/* A method never called, and codes never seen, have no line. */
	assert_null(strstr(text, "rpcq_calls_total{method=\"rpcq.Health/Check\""));
	assert_null(strstr(text, "code=\"INTERNAL\""));
}

static void test_a_status_outside_the_table_counts_as_unknown(void **state)
{
	fixture *f = *state;
	metrics_call(f->m, f->check, (rpcq_status)99, 1000);
	metrics_call(f->m, f->check, (rpcq_status)-1, 1000);
	assert_line(render(f, NULL, "1.0"), "rpcq_calls_total{method=\"rpcq.Health/Check\",code=\"UNKNOWN\"} 2");
}

static void test_histogram_buckets_are_cumulative_with_sum_and_count(void **state)
{
	fixture *f = *state;
	metrics_call(f->m, f->echo, RPCQ_OK, 50000);		/* 50 µs */
	metrics_call(f->m, f->echo, RPCQ_OK, 100000);		/* on the 0.0001 bound: in it */
	metrics_call(f->m, f->echo, RPCQ_OK, 300000);		/* 0.0005 */
	metrics_call(f->m, f->echo, RPCQ_INTERNAL, 2000000000); /* 2.5 */
	metrics_call(f->m, f->echo, RPCQ_OK, 20000000000ULL);	/* +Inf */
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "# TYPE rpcq_call_duration_seconds histogram");
	static const struct {
		const char *le;
		int count;
	} want[] = {
		{"0.0001", 2}, {"0.00025", 2}, {"0.0005", 3}, {"0.001", 3}, {"0.0025", 3}, {"0.005", 3},
		{"0.01", 3},   {"0.025", 3},   {"0.05", 3},   {"0.1", 3},   {"0.25", 3},   {"0.5", 3},
		{"1", 3},      {"2.5", 4},     {"5", 4},      {"10", 4},    {"+Inf", 5},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char line[160];
		snprintf(line, sizeof(line),
			 "rpcq_call_duration_seconds_bucket{method=\"rpcq.Health/Echo\",le=\"%s\"} %d", want[i].le,
			 want[i].count);
		assert_line(text, line);
	}
	assert_line(text, "rpcq_call_duration_seconds_sum{method=\"rpcq.Health/Echo\"} 22.00045");
	assert_line(text, "rpcq_call_duration_seconds_count{method=\"rpcq.Health/Echo\"} 5");
}

static void test_every_method_has_a_histogram_even_when_never_called(void **state)
{
	fixture *f = *state;
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "rpcq_call_duration_seconds_bucket{method=\"rpcq.Reflection/ListServices\",le=\"+Inf\"} 0");
	assert_line(text, "rpcq_call_duration_seconds_sum{method=\"rpcq.Reflection/ListServices\"} 0");
	assert_line(text, "rpcq_call_duration_seconds_count{method=\"rpcq.Health/Check\"} 0");
	assert_null(strstr(text, "method=\"unknown\""));
}

static void test_a_call_to_an_unknown_method_is_counted_as_unknown(void **state)
{
	fixture *f = *state;
	metrics_call(f->m, NULL, RPCQ_UNIMPLEMENTED, 1500000);
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "rpcq_calls_total{method=\"unknown\",code=\"UNIMPLEMENTED\"} 1");
	assert_line(text, "rpcq_call_duration_seconds_bucket{method=\"unknown\",le=\"0.001\"} 0");
	assert_line(text, "rpcq_call_duration_seconds_bucket{method=\"unknown\",le=\"0.0025\"} 1");
	assert_line(text, "rpcq_call_duration_seconds_sum{method=\"unknown\"} 0.0015");
	assert_line(text, "rpcq_call_duration_seconds_count{method=\"unknown\"} 1");
}

static void test_http_requests_are_counted_by_route_and_code(void **state)
{
	fixture *f = *state;
	metrics_http(f->m, METRICS_ROUTE_RPC, 200);
	metrics_http(f->m, METRICS_ROUTE_RPC, 200);
	metrics_http(f->m, METRICS_ROUTE_RPC, 404);
	metrics_http(f->m, METRICS_ROUTE_HEALTHZ, 200);
	metrics_http(f->m, METRICS_ROUTE_SEARCH, 100);
	metrics_http(f->m, METRICS_ROUTE_OTHER, 599);
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "# TYPE rpcq_http_requests_total counter");
	assert_line(text, "rpcq_http_requests_total{route=\"rpc\",code=\"200\"} 2");
	assert_line(text, "rpcq_http_requests_total{route=\"rpc\",code=\"404\"} 1");
	assert_line(text, "rpcq_http_requests_total{route=\"healthz\",code=\"200\"} 1");
	assert_line(text, "rpcq_http_requests_total{route=\"search\",code=\"100\"} 1");
	assert_line(text, "rpcq_http_requests_total{route=\"other\",code=\"599\"} 1");
	assert_null(strstr(text, "route=\"streams\""));
}

static void test_an_http_code_out_of_range_counts_as_500(void **state)
{
	fixture *f = *state;
	metrics_http(f->m, METRICS_ROUTE_STREAMS, 99);
	metrics_http(f->m, METRICS_ROUTE_STREAMS, 600);
	metrics_http(f->m, METRICS_ROUTE_STREAMS, -1);
	metrics_http(f->m, METRICS_ROUTE_STREAMS, 0);
	const char *text = render(f, NULL, "1.0");
	assert_line(text, "rpcq_http_requests_total{route=\"streams\",code=\"500\"} 4");
	assert_null(strstr(text, "code=\"99\""));
	assert_null(strstr(text, "code=\"600\""));
}

static void test_label_values_are_escaped(void **state)
{
	fixture *f = *state;
	const char *text = render(f, NULL, "1.0 \"beta\" C:\\rpcq\nnext");
	assert_line(text, "# TYPE rpcq_build_info gauge");
	assert_line(text, "rpcq_build_info{version=\"1.0 \\\"beta\\\" C:\\\\rpcq\\nnext\"} 1");
}

static void test_the_gauges_appear_with_their_values(void **state)
{
	fixture *f = *state;
	metrics_gauges g = {
		.calls_in_flight = 3,
		.replies_dropped = 4,
		.pool_idle = 5,
		.pool_active = 6,
		.pool_connecting = 7,
		.pool_acquire_waits = 8,
		.pool_acquire_timeouts = 9,
		.stream_published = 10,
		.stream_subscribers = 11,
		.sse_subscribers = 12,
		.http_connections = 13,
		.start_time_seconds = 1712345678.25,
	};
	const char *text = render(f, &g, "1.0");
	static const char *const lines[] = {
		"# TYPE rpcq_calls_in_flight gauge",
		"rpcq_calls_in_flight 3",
		"# TYPE rpcq_replies_dropped_total counter",
		"rpcq_replies_dropped_total 4",
		"# TYPE rpcq_pool_connections gauge",
		"rpcq_pool_connections{state=\"idle\"} 5",
		"rpcq_pool_connections{state=\"active\"} 6",
		"rpcq_pool_connections{state=\"connecting\"} 7",
		"# TYPE rpcq_pool_acquire_waits_total counter",
		"rpcq_pool_acquire_waits_total 8",
		"# TYPE rpcq_pool_acquire_timeouts_total counter",
		"rpcq_pool_acquire_timeouts_total 9",
		"# TYPE rpcq_stream_messages_published_total counter",
		"rpcq_stream_messages_published_total 10",
		"# TYPE rpcq_stream_subscribers gauge",
		"rpcq_stream_subscribers{transport=\"nng\"} 11",
		"rpcq_stream_subscribers{transport=\"sse\"} 12",
		"# TYPE rpcq_http_connections gauge",
		"rpcq_http_connections 13",
		"rpcq_build_info{version=\"1.0\"} 1",
		"# TYPE process_start_time_seconds gauge",
		"process_start_time_seconds 1712345678.25",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_line(text, lines[i]);
}

static void test_every_family_has_help_and_type_once_before_its_samples(void **state)
{
	fixture *f = *state;
	metrics_call(f->m, f->echo, RPCQ_OK, 1000);
	metrics_http(f->m, METRICS_ROUTE_RPC, 200);
	const char *text = render(f, NULL, "1.0");
	static const char *const families[] = {
		"rpcq_calls_total",
		"rpcq_call_duration_seconds",
		"rpcq_calls_in_flight",
		"rpcq_replies_dropped_total",
		"rpcq_http_requests_total",
		"rpcq_pool_connections",
		"rpcq_pool_acquire_waits_total",
		"rpcq_pool_acquire_timeouts_total",
		"rpcq_stream_messages_published_total",
		"rpcq_stream_subscribers",
		"rpcq_http_connections",
		"rpcq_build_info",
		"process_start_time_seconds",
	};
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		char help[128], type[128];
		snprintf(help, sizeof(help), "# HELP %s ", families[i]);
		snprintf(type, sizeof(type), "\n# TYPE %s ", families[i]);
		const char *h = strstr(text, help), *t = strstr(text, type);
		assert_non_null(h);
		assert_non_null(t);
		assert_null(strstr(h + 1, help));
		assert_null(strstr(t + 1, type));
		/* TYPE follows HELP directly, and the first sample follows TYPE. */
		assert_ptr_equal(strchr(h, '\n'), t);
		char sample[128];
		snprintf(sample, sizeof(sample), "\n%s", families[i]);
		const char *s = strstr(text, sample);
		assert_non_null(s);
		assert_true(s > t);
	}
}

static void test_creating_and_rendering_fail_cleanly_when_out_of_memory(void **state)
{
	fixture *f = *state;
	for (long n = 0; n < 8; n++) {
		metrics *m = (metrics *)f;
		rpcq_error err;
		rpcq_alloc_fail_after(n);
		rpcq_status st = metrics_create(&m, f->d, &err);
		rpcq_alloc_fail_after(-1);
		if (st == RPCQ_OK) {
			metrics_destroy(m);
			continue;
		}
		assert_int_equal(st, RPCQ_RESOURCE_EXHAUSTED);
		assert_ptr_equal(m, (metrics *)f);
	}
	size_t len = 12345;
	rpcq_alloc_fail_after(0);
	char *text = metrics_render(f->m, NULL, "1.0", &len);
	rpcq_alloc_fail_after(-1);
	assert_null(text);
}

#define THREADS 4
#define CALLS_PER_THREAD 100000

typedef struct worker {
	fixture *f;
	unsigned id;
} worker;

static void *count_calls(void *arg)
{
	worker *w = arg;
	for (unsigned i = 0; i < CALLS_PER_THREAD; i++) {
		metrics_call(w->f->m, w->id % 2 ? w->f->echo : w->f->check, RPCQ_OK, (uint64_t)(i % 1000) * 1000);
		if (i % 1000 == 0)
			metrics_http(w->f->m, METRICS_ROUTE_RPC, 200);
	}
	return NULL;
}

static void test_concurrent_calls_are_all_counted_exactly(void **state)
{
	fixture *f = *state;
	pthread_t threads[THREADS];
	worker workers[THREADS];
	for (unsigned i = 0; i < THREADS; i++) {
		workers[i] = (worker){f, i};
		assert_int_equal(pthread_create(&threads[i], NULL, count_calls, &workers[i]), 0);
	}
	/* Scrapes while counting: they must neither race nor block the workers. */
	for (int i = 0; i < 5; i++) {
		size_t len;
		char *text = metrics_render(f->m, NULL, "1.0", &len);
		assert_non_null(text);
		rpcq_free(text);
	}
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(threads[i], NULL), 0);

	const char *text = render(f, NULL, "1.0");
	/* Each method got two threads' calls; each thread's durations sum to
	 * 100 rounds of 0 + 1 + ... + 999 µs = 49.95 s, so two threads 99.9 s. */
	assert_line(text, "rpcq_calls_total{method=\"rpcq.Health/Check\",code=\"OK\"} 200000");
	assert_line(text, "rpcq_calls_total{method=\"rpcq.Health/Echo\",code=\"OK\"} 200000");
	assert_line(text, "rpcq_call_duration_seconds_count{method=\"rpcq.Health/Echo\"} 200000");
	assert_line(text, "rpcq_call_duration_seconds_sum{method=\"rpcq.Health/Echo\"} 99.9");
	/* Durations 0..100 µs (101 of each 1000) fall in the first bucket. */
	assert_line(text, "rpcq_call_duration_seconds_bucket{method=\"rpcq.Health/Check\",le=\"0.0001\"} 20200");
	assert_line(text, "rpcq_http_requests_total{route=\"rpc\",code=\"200\"} 400");
}

static int python_has_prometheus_client(void)
{
	return system("/usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1") == 0;
}

/* Checks the exposition with prometheus_client's text parser: it must parse,
 * and three chosen samples must read back with their values and labels. */
static const char parse_script[] =
	"import sys\n"
	"from prometheus_client.parser import text_string_to_metric_families as p\n"
	"fams = list(p(open(sys.argv[1]).read()))\n"
	"s = {(x.name, tuple(sorted(x.labels.items()))): x.value for f in fams for x in f.samples}\n"
	"want = [\n"
	"  (('rpcq_calls_total', (('code', 'OK'), ('method', 'rpcq.Health/Echo'))), 3.0),\n"
	"  (('rpcq_call_duration_seconds_bucket', (('le', '0.005'), ('method', 'rpcq.Health/Echo'))), 2.0),\n"
	"  (('rpcq_call_duration_seconds_sum', (('method', 'rpcq.Health/Echo'),)), 1.0035),\n"
	"  (('rpcq_build_info', (('version', '1.0 \"x\" \\\\ \\n'),)), 1.0),\n"
	"  (('process_start_time_seconds', ()), 1712345678.125),\n"
	"]\n"
	"bad = [(k, v, s.get(k)) for k, v in want if s.get(k) != v]\n"
	"types = {f.name: f.type for f in fams}\n"
	"if types.get('rpcq_call_duration_seconds') != 'histogram': bad.append(types)\n"
	"if bad: print(bad); sys.exit(1)\n";

static void test_the_exposition_reads_back_with_the_prometheus_parser(void **state)
{
	fixture *f = *state;
	if (!python_has_prometheus_client())
		skip();
	metrics_call(f->m, f->echo, RPCQ_OK, 1000000);
	metrics_call(f->m, f->echo, RPCQ_OK, 2500000);
	metrics_call(f->m, f->echo, RPCQ_OK, 1000000000);
	metrics_call(f->m, NULL, RPCQ_UNIMPLEMENTED, 1000);
	metrics_http(f->m, METRICS_ROUTE_METRICS, 200);
	metrics_gauges g = {.calls_in_flight = 1, .start_time_seconds = 1712345678.125};
	const char *text = render(f, &g, "1.0 \"x\" \\ \n");

	char data[] = "/tmp/rpcq-metrics-XXXXXX", script[] = "/tmp/rpcq-metrics-py-XXXXXX";
	int fd = mkstemp(data), sfd = mkstemp(script);
	assert_true(fd >= 0 && sfd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(write(sfd, parse_script, strlen(parse_script)), (ssize_t)strlen(parse_script));
	close(fd);
	close(sfd);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s", script, data);
	int rc = system(cmd);
	unlink(data);
	unlink(script);
	if (rc != 0)
		fprintf(stderr, "the parser rejected or misread:\n%s", text);
	assert_true(WIFEXITED(rc));
	assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_call_is_counted_under_its_method_and_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_status_outside_the_table_counts_as_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_histogram_buckets_are_cumulative_with_sum_and_count, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_every_method_has_a_histogram_even_when_never_called, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_call_to_an_unknown_method_is_counted_as_unknown, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_http_requests_are_counted_by_route_and_code, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_http_code_out_of_range_counts_as_500, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_values_are_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_gauges_appear_with_their_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_family_has_help_and_type_once_before_its_samples, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_creating_and_rendering_fail_cleanly_when_out_of_memory, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_calls_are_all_counted_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_exposition_reads_back_with_the_prometheus_parser, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
