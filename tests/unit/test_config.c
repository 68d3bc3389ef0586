/*
 * rpcqd configuration: defaults, config file, RPCQ_* environment and flags,
 * in rising precedence, and errors that name the flag, variable or file line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char file_path[64];

static const char *write_file(const char *text)
{
	snprintf(file_path, sizeof(file_path), "/tmp/rpcq-config-XXXXXX");
	int fd = mkstemp(file_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return file_path;
}

static int clear_env(void **state)
{
	(void)state;
	unsetenv("RPCQ_LISTEN");
	unsetenv("RPCQ_WORKERS");
	unsetenv("RPCQ_DATABASE_URL");
	unsetenv("RPCQ_CONFIG");
	return 0;
}

static void test_defaults_apply_without_any_setting(void **state)
{
	(void)state;
	rpcq_config cfg;
	rpcq_error err;
	char *argv[] = {NULL};
	assert_int_equal(config_load(&cfg, 0, argv, &err), RPCQ_OK);
	assert_int_equal(cfg.nlisten, 1);
	assert_string_equal(cfg.listen[0], "tcp://127.0.0.1:7400");
	assert_string_equal(cfg.publish[0], "tcp://127.0.0.1:7401");
	assert_int_equal(cfg.max_message_bytes, 4194304);
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.nhttp, 1);
	assert_string_equal(cfg.http[0], "http://127.0.0.1:7480");
	assert_int_equal(cfg.http_max_connections, 1024);
	assert_int_equal(cfg.http_read_timeout_ms, 10000);
	assert_int_equal(cfg.http_idle_timeout_ms, 60000);
	assert_int_equal(cfg.http_heartbeat_ms, 15000);
	config_fini(&cfg);
}

static void test_an_empty_http_url_turns_http_off(void **state)
{
	(void)state;
	rpcq_config cfg;
	rpcq_error err;
	char *argv[] = {"--http", "", NULL};
	assert_int_equal(config_load(&cfg, 2, argv, &err), RPCQ_OK);
	assert_int_equal(cfg.nhttp, 0);
	config_fini(&cfg);
	setenv("RPCQ_HTTP", "http://127.0.0.1:1,https://127.0.0.1:2", 1);
	assert_int_equal(config_load(&cfg, 0, argv + 2, &err), RPCQ_OK);
	assert_int_equal(cfg.nhttp, 2);
	assert_string_equal(cfg.http[1], "https://127.0.0.1:2");
	config_fini(&cfg);
	/* Empty in the environment is empty too, as the flag's "" is. */
	setenv("RPCQ_HTTP", "", 1);
	assert_int_equal(config_load(&cfg, 0, argv + 2, &err), RPCQ_OK);
	assert_int_equal(cfg.nhttp, 0);
	config_fini(&cfg);
	/* ... and a flag beats it. */
	char *again[] = {"--http", "http://127.0.0.1:3", NULL};
	assert_int_equal(config_load(&cfg, 2, again, &err), RPCQ_OK);
	assert_int_equal(cfg.nhttp, 1);
	config_fini(&cfg);
	unsetenv("RPCQ_HTTP");
}

static void test_flag_beats_environment_beats_file(void **state)
{
	(void)state;
	const char *path = write_file("# a comment\nworkers = 2\ndatabase = host=/from/file\n"
				      "pool-max = 3  # trailing comment\n");
	setenv("RPCQ_WORKERS", "5", 1);
	char cfgflag[96];
	snprintf(cfgflag, sizeof(cfgflag), "--config=%s", path);
	char *argv[] = {cfgflag, "--workers", "7", NULL};
	rpcq_config cfg;
	rpcq_error err;
	assert_int_equal(config_load(&cfg, 3, argv, &err), RPCQ_OK);
	assert_int_equal(cfg.workers, 7);
	assert_string_equal(cfg.database, "host=/from/file");
	assert_int_equal(cfg.pool_max, 3);
	config_fini(&cfg);

	char *argv2[] = {cfgflag, NULL};
	assert_int_equal(config_load(&cfg, 1, argv2, &err), RPCQ_OK);
	assert_int_equal(cfg.workers, 5);
	config_fini(&cfg);
	unlink(path);
}

static void test_a_list_given_higher_replaces_the_lower_one(void **state)
{
	(void)state;
	setenv("RPCQ_LISTEN", "ipc:///tmp/a.sock", 1);
	char *argv[] = {"--listen", "tcp://127.0.0.1:1", "--listen=tcp://127.0.0.1:2", NULL};
	rpcq_config cfg;
	rpcq_error err;
	assert_int_equal(config_load(&cfg, 3, argv, &err), RPCQ_OK);
	assert_int_equal(cfg.nlisten, 2);
	assert_string_equal(cfg.listen[0], "tcp://127.0.0.1:1");
	assert_string_equal(cfg.listen[1], "tcp://127.0.0.1:2");
	config_fini(&cfg);

	assert_int_equal(config_load(&cfg, 0, argv, &err), RPCQ_OK);
	assert_int_equal(cfg.nlisten, 1);
	assert_string_equal(cfg.listen[0], "ipc:///tmp/a.sock");
	config_fini(&cfg);
}

static void test_errors_name_the_flag_variable_or_file_line(void **state)
{
	(void)state;
	rpcq_config cfg;
	rpcq_error err;
	char *bad_flag[] = {"--workers", "many", NULL};
	assert_int_equal(config_load(&cfg, 2, bad_flag, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "--workers"));
	config_fini(&cfg);

	char *unknown[] = {"--wrokers=3", NULL};
	assert_int_equal(config_load(&cfg, 1, unknown, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "--wrokers"));
	config_fini(&cfg);

	char *missing[] = {"--database", NULL};
	assert_int_equal(config_load(&cfg, 1, missing, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "needs a value"));
	config_fini(&cfg);

	setenv("RPCQ_WORKERS", "0", 1);
	char *none[] = {NULL};
	assert_int_equal(config_load(&cfg, 0, none, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "RPCQ_WORKERS"));
	config_fini(&cfg);
	unsetenv("RPCQ_WORKERS");

	const char *path = write_file("workers = 2\n\nno equals sign here\n");
	char flag[96];
	snprintf(flag, sizeof(flag), "--config=%s", path);
	char *file[] = {flag, NULL};
	assert_int_equal(config_load(&cfg, 1, file, &err), RPCQ_INVALID_ARGUMENT);
	char where[96];
	snprintf(where, sizeof(where), "%s:3", path);
	assert_non_null(strstr(err.message, where));
	config_fini(&cfg);
	unlink(path);

	char *pool[] = {"--pool-min", "9", "--pool-max", "2", NULL};
	assert_int_equal(config_load(&cfg, 4, pool, &err), RPCQ_INVALID_ARGUMENT);
	assert_non_null(strstr(err.message, "pool-min"));
	config_fini(&cfg);

	char *no_file[] = {"--workers", "2", "--config", NULL};
	assert_int_equal(config_load(&cfg, 3, no_file, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "option --config needs a value");
	config_fini(&cfg);

	/* A word knob's bad word, named where it was given. */
	path = write_file("# levels\nlog-level = verbose\n");
	snprintf(flag, sizeof(flag), "--config=%s", path);
	assert_int_equal(config_load(&cfg, 1, file, &err), RPCQ_INVALID_ARGUMENT);
	snprintf(where, sizeof(where), "%s:2: log-level must be debug, info, warn or error, not \"verbose\"", path);
	assert_string_equal(err.message, where);
	config_fini(&cfg);
	unlink(path);
	char *auth[] = {"--auth", "of", NULL};
	assert_int_equal(config_load(&cfg, 2, auth, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "--auth: auth must be auto, on or off, not \"of\"");
	config_fini(&cfg);
}

/* '#' starts a comment at the start of a line or after a blank only. */
static void test_a_hash_inside_a_value_is_kept(void **state)
{
	(void)state;
	rpcq_config cfg;
	rpcq_error err;
	const char *path = write_file("  # a comment\n"
				      "database = host=db password=se#cret # the database\n"
				      "mail-from = Billing#2 <b@example.com>\t# tab before\n");
	char flag[96];
	snprintf(flag, sizeof(flag), "--config=%s", path);
	char *file[] = {flag, NULL};
	assert_int_equal(config_load(&cfg, 1, file, &err), RPCQ_OK);
	assert_string_equal(cfg.database, "host=db password=se#cret");
	assert_string_equal(cfg.mail_from, "Billing#2 <b@example.com>");
	config_fini(&cfg);
	unlink(path);
}

static void test_smtp_ca_file_defaults_to_the_system_store_and_help_names_every_smtp_url(void **state)
{
	(void)state;
	rpcq_config cfg;
	rpcq_error err;
	char *none[] = {NULL};
	assert_int_equal(config_load(&cfg, 0, none, &err), RPCQ_OK);
	assert_string_equal(cfg.smtp_ca_file, ""); /* "": libcurl's default, the system's bundle */
	config_fini(&cfg);

	setenv("RPCQ_SMTP_CA_FILE", "/env/ca.pem", 1);
	assert_int_equal(config_load(&cfg, 0, none, &err), RPCQ_OK);
	assert_string_equal(cfg.smtp_ca_file, "/env/ca.pem");
	config_fini(&cfg);
	char *flag[] = {"--smtp-url", "smtps://127.0.0.1:465", "--smtp-ca-file", "/flag/ca.pem", NULL};
	assert_int_equal(config_load(&cfg, 4, flag, &err), RPCQ_OK);
	assert_string_equal(cfg.smtp_url, "smtps://127.0.0.1:465");
	assert_string_equal(cfg.smtp_ca_file, "/flag/ca.pem");
	config_fini(&cfg);
	unsetenv("RPCQ_SMTP_CA_FILE");

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	assert_non_null(f);
	config_print_help(f);
	assert_int_equal(fclose(f), 0);
	const char *url = strstr(text, "--smtp-url");
	assert_non_null(url);
	const char *end = strstr(url + 1, "\n  --"); /* the next knob */
	assert_non_null(end);
	const char *forms[] = {"smtp://", "smtp+starttls://", "smtps://"};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		const char *at = strstr(url, forms[i]);
		if (at == NULL || at > end)
			fail_msg("--smtp-url's help does not name %s:\n%.*s", forms[i], (int)(end - url), url);
	}
	assert_non_null(strstr(text, "--smtp-ca-file"));
	assert_non_null(strstr(text, "RPCQ_SMTP_CA_FILE"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults_apply_without_any_setting, clear_env),
		cmocka_unit_test_setup(test_flag_beats_environment_beats_file, clear_env),
		cmocka_unit_test_setup(test_an_empty_http_url_turns_http_off, clear_env),
		cmocka_unit_test_setup(test_a_list_given_higher_replaces_the_lower_one, clear_env),
		cmocka_unit_test_setup(test_errors_name_the_flag_variable_or_file_line, clear_env),
		cmocka_unit_test_setup(test_a_hash_inside_a_value_is_kept, clear_env),
		cmocka_unit_test_setup(test_smtp_ca_file_defaults_to_the_system_store_and_help_names_every_smtp_url,
				       clear_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
