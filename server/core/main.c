/*
 * rpcqd: the rpcq daemon.
 *   rpcqd [serve] [options]   serve calls and streams until SIGTERM/SIGINT
 *   rpcqd migrate [options]   apply pending database migrations and exit
 *   rpcqd keys ...            create, list and revoke API keys (keys.h)
 * Signals are blocked in every thread and taken by the main thread with
 * sigwait, so no handler ever runs on an nng or worker thread.
 */
#include <malloc.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "db/migrate.h"
#include "keys.h"
#include "log.h"
#include "server.h"
#include "services/services.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: rpcqd [serve] [options]\n"
		     "       rpcqd migrate [options]\n"
		     "       rpcqd keys create|list|limit|revoke ... [options]   (rpcqd keys --help)\n"
		     "       rpcqd --help | --version\n\n"
		     "serve    serve calls (req/rep) and update streams (pub/sub) until SIGTERM or SIGINT,\n"
		     "         then finish in-flight calls (bounded by --drain-timeout-ms) and exit 0\n"
		     "migrate  apply pending migrations to --database and exit; safe to run concurrently\n"
		     "keys     manage the API keys callers present (--auth): create NAME --scope S, list, limit,\n"
		     "         revoke\n\n");
	config_print_help(out);
}

static int cmd_migrate(rpcq_config *cfg)
{
	rpcq_error err;
	int applied = 0;
	if (migrate_apply(cfg->database, &applied, &err) != RPCQ_OK) {
		log_error("migrate: %s", err.message);
		return 1;
	}
	log_info("migrate: %d migration(s) applied; schema at version %d", applied, migrate_latest_version());
	return 0;
}

static int cmd_serve(rpcq_config *cfg)
{
#ifdef M_MMAP_THRESHOLD
	/* Requests and replies of a few MiB (vesting chunks, schedule pages)
	 * are allocated and freed on every call; by default glibc maps and
	 * unmaps each one and the page faults of refilling them cost more than
	 * the work. Keep them on the heap, and give memory back only past
	 * 128 MiB of free space. */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
#endif
	rpcq_error err;
	int version = 0;
	rpcq_status st = migrate_check(cfg->database, &version, &err);
	if (st != RPCQ_OK) {
		log_error("%s", err.message);
		return 1;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	server *srv;
	if (server_create(&srv, cfg, rpcqd_services, &err) != RPCQ_OK) {
		log_error("cannot start: %s", err.message);
		return 1;
	}
	log_info("rpcqd %s serving (schema version %d, %d workers, %d contexts)", RPCQ_VERSION, version, cfg->workers,
		 cfg->contexts);
	int sig = 0;
	sigwait(&set, &sig);
	log_info("received %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stats stats;
	server_destroy(srv, &stats);
	/* nng frees closed sockets, listeners and the connections they were
	 * still negotiating on threads of its own: a moment for them, so that
	 * exit (and the leak checker) finds nothing half torn down. Not
	 * nng_fini: in nng 1.5.2 it orphans a connection still negotiating
	 * (seen under LeakSanitizer in the rpcq command, 12 runs in 100). */
	nng_msleep(100);
	log_info("stopped after %llu calls (%llu failed, %llu replies to departed callers dropped)",
		 (unsigned long long)stats.calls, (unsigned long long)stats.failed,
		 (unsigned long long)stats.replies_dropped);
	return 0;
}

int main(int argc, char **argv)
{
	int first = 1;
	int migrate = 0;
	if (argc > 1 && strcmp(argv[1], "keys") == 0)
		return keys_main(argc - 2, argv + 2);
	if (argc > 1 && strcmp(argv[1], "serve") == 0) {
		first = 2;
	} else if (argc > 1 && strcmp(argv[1], "migrate") == 0) {
		first = 2;
		migrate = 1;
	}
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("rpcqd %s\n", RPCQ_VERSION);
			return 0;
		}
	}
	rpcq_config cfg;
	rpcq_error err;
	if (config_load(&cfg, argc - first, argv + first, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcqd: %s\n", err.message);
		config_fini(&cfg);
		return 2;
	}
	log_level level;
	if (log_parse_level(cfg.log_level, &level) != 0) {
		fprintf(stderr, "rpcqd: --log-level must be debug, info, warn or error, not \"%s\"\n", cfg.log_level);
		config_fini(&cfg);
		return 2;
	}
	log_set_level(level);
	int rc = migrate ? cmd_migrate(&cfg) : cmd_serve(&cfg);
	config_fini(&cfg);
	return rc;
}
