/*
 * `rpcqd keys create|list|revoke` (keys.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <rpcq/alloc.h>

#include "auth.h"
#include "config.h"
#include "db/db.h"
#include "db/migrate.h"
#include "dispatch.h"
#include "keys.h"
#include "services/services.h"

#define MAX_SCOPES 32

static void keys_usage(FILE *out)
{
	fprintf(out,
		"usage: rpcqd keys create NAME --scope S [--scope S]... [--expires T] [--rate R [--burst B]]\n"
		"       rpcqd keys list\n"
		"       rpcqd keys limit NAME|PREFIX --rate R [--burst B]\n"
		"       rpcqd keys revoke NAME|PREFIX\n"
		"with rpcqd's --database (or RPCQ_DATABASE_URL, or --config FILE).\n\n"
		"create   makes a key and prints it on stdout, once: only its hash is stored.\n"
		"         --scope  what the key may call (repeatable, or several separated by commas):\n"
		"                  *                 every method\n"
		"                  read              every method that changes nothing stored\n"
		"                  pkg.Service/Method  one method, e.g. rpcq.vouchers.VoucherService/IssueVouchers\n"
		"                  prefix*           methods starting so, e.g. rpcq.vesting.*\n"
		"         --expires  an ISO 8601 time (2027-01-31T00:00:00Z) or a duration from now (90d, 12h, 30m)\n"
		"         --rate     calls per second this key may make on each rpcqd (default: no limit)\n"
		"         --burst    calls it may make at once (default: the rate, rounded up)\n"
		"list     every key: name, prefix, state, scopes, limits, expiry (never a secret)\n"
		"limit    changes the active key's --rate and --burst in place (--rate 0: no limit)\n"
		"revoke   stops the active key of that name or prefix, everywhere within a second\n");
}

static int usage_error(const char *fmt, ...) RPCQ_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "rpcqd keys: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n(rpcqd keys --help for usage)\n");
	va_end(ap);
	return 2;
}

static PGconn *connect_db(const rpcq_config *cfg)
{
	rpcq_error err;
	int version = 0;
	if (migrate_check(cfg->database, &version, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcqd keys: %s\n", err.message);
		return NULL;
	}
	const char *const k[] = {"fallback_application_name", "dbname", NULL};
	const char *const v[] = {"rpcqd keys", cfg->database, NULL};
	PGconn *pg = PQconnectdbParams(k, v, 1);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "rpcqd keys: cannot connect to the database: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

static int name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}

/* Every scope names something this rpcqd serves: a typo would make a key
 * that can call nothing, found only when its first call is refused. */
static int check_scope(const dispatch *d, const char *scope)
{
	char why[300];
	if (auth_scope_valid(scope, why, sizeof(why)) != 0) {
		fprintf(stderr, "rpcqd keys: --scope: %s\n", why);
		return -1;
	}
	size_t n = 0;
	const dispatch_entry *e = dispatch_entries(d, &n);
	for (size_t i = 0; i < n; i++)
		if (auth_scope_matches(scope, e[i].full_name, e[i].read))
			return 0;
	fprintf(stderr,
		"rpcqd keys: --scope \"%s\" covers no method this rpcqd serves (`rpcq list` shows them; a service is "
		"package.Service, e.g. rpcq.vesting.VestingService/Compute or rpcq.vesting.*)\n",
		scope);
	return -1;
}

/* --rate and --burst: r calls/s (RATE_MIN..1e9, or also 0 = no limit when
 * zero_ok), b calls at once (0: the rate rounded up). 0, or -1 after a
 * usage message. */
/* The smallest --rate: one call in 11.6 days. */
#define RATE_MIN 1e-6

static int parse_limits(const char *rate, const char *burst, int zero_ok, double *r, long *b)
{
	*r = 0;
	*b = 0;
	if (rate) {
		char *end;
		*r = strtod(rate, &end);
		if (end == rate || *end || !isfinite(*r) || *r < 0 || (*r == 0 && !zero_ok) ||
		    (*r > 0 && *r < RATE_MIN) || *r > 1e9) {
			usage_error("--rate \"%s\" must be a number of calls per second from 0.000001 (one call in "
				    "11.6 days) to 1e9%s",
				    rate, zero_ok ? " (0: no limit)" : "");
			return -1;
		}
	}
	if (burst) {
		char *end;
		errno = 0;
		*b = strtol(burst, &end, 10);
		if (end == burst || *end || errno || *b < 1 || *b > 1000000000) {
			usage_error("--burst \"%s\" must be a whole number of calls, at least 1", burst);
			return -1;
		}
		if (!rate) {
			usage_error("%s", "--burst needs --rate");
			return -1;
		}
	}
	return 0;
}

/* "90d", "12h", "30m", "45s" as an interval; 0 when s is not one. */
static int duration(const char *s, char *out, size_t n)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (end == s || errno || v <= 0 || end[0] == '\0' || end[1] != '\0')
		return 0;
	const char *unit = *end == 'd'	 ? "days"
			   : *end == 'h' ? "hours"
			   : *end == 'm' ? "minutes"
			   : *end == 's' ? "seconds"
					 : NULL;
	if (unit == NULL)
		return 0;
	snprintf(out, n, "%ld %s", v, unit);
	return 1;
}

static int cmd_create(const rpcq_config *cfg, const char *name, char **scopes, int nscopes, const char *expires,
		      const char *rate, const char *burst)
{
	if (!name_valid(name))
		return usage_error("NAME \"%s\" must be 1 to 64 of A-Z a-z 0-9 _ . @ -", name);
	if (nscopes == 0)
		return usage_error("%s", "create needs at least one --scope (--scope read, --scope '*', ...)");
	double r = 0;
	long b = 0;
	if (parse_limits(rate, burst, 0, &r, &b) != 0)
		return 2;
	rpcq_error err;
	dispatch *d = NULL;
	if (dispatch_create(&d, rpcqd_services, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcqd keys: %s\n", err.message);
		return 1;
	}
	for (int i = 0; i < nscopes; i++) {
		if (check_scope(d, scopes[i]) != 0) {
			dispatch_destroy(d);
			return 2;
		}
	}
	dispatch_destroy(d);
	PGconn *pg = connect_db(cfg);
	if (pg == NULL)
		return 1;
	db_array scope_list = {0};
	for (int i = 0; i < nscopes; i++)
		db_array_text(&scope_list, scopes[i]);
	const char *arr = db_array_end(&scope_list);
	if (arr == NULL) {
		db_array_free(&scope_list);
		PQfinish(pg);
		fprintf(stderr, "rpcqd keys create: out of memory\n");
		return 1;
	}
	char shown[MAX_SCOPES * 210 + 8];
	size_t sl = 0;
	shown[0] = '\0';
	for (int i = 0; i < nscopes; i++)
		sl += (size_t)snprintf(shown + sl, sizeof(shown) - sl, "%s%s", i ? " " : "", scopes[i]);
	char interval[64] = "";
	const char *exp_param = NULL;
	int exp_is_interval = 0;
	if (expires) {
		exp_is_interval = duration(expires, interval, sizeof(interval));
		exp_param = exp_is_interval ? interval : expires;
	}
	char rtext[32], btext[32];
	snprintf(rtext, sizeof(rtext), "%.17g", r);
	snprintf(btext, sizeof(btext), "%ld", b);
	static const char sql[] =
		"INSERT INTO api_keys (name, prefix, hash, scopes, rate_per_s, burst, expires_at)"
		" SELECT $1, $2, decode($3, 'hex'), $4::text[], $5::float8, $6::int4, e FROM (SELECT CASE"
		" WHEN $7::text IS NULL THEN NULL WHEN $8 THEN now() + $7::interval ELSE $7::timestamptz END AS e) x"
		" WHERE e IS NULL OR e > now() RETURNING coalesce(to_char(expires_at AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'never')";
	int rc = 1;
	for (int attempt = 0; attempt < 5; attempt++) {
		char key[AUTH_KEY_LEN + 1], prefix[AUTH_PREFIX_LEN + 1], hex[65];
		uint8_t hash[32];
		if (auth_key_generate(key, prefix, hash) != 0) {
			fprintf(stderr, "rpcqd keys: the system gave no random bytes for a key\n");
			break;
		}
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", hash[i]);
		const char *values[8] = {name, prefix, hex, arr, rtext, btext, exp_param, exp_is_interval ? "t" : "f"};
		PGresult *res = PQexecParams(pg, sql, 8, NULL, values, NULL, NULL, 0);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *constraint = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0) {
			fprintf(stderr, "rpcqd keys: --expires %s is not in the future\n", expires);
			PQclear(res);
			rc = 2;
			break;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			printf("%s\n", key);
			fflush(stdout);
			fprintf(stderr,
				"created key %s (prefix rpcq_%s): scopes %s; expires %s; %s.\n"
				"The key above is shown only now: store it where its caller reads it (RPCQ_API_KEY).\n",
				name, prefix, shown, PQgetvalue(res, 0, 0), rate ? "rate limited" : "no rate limit");
			rc = 0;
		} else if (state && strcmp(state, "23505") == 0 && constraint &&
			   strcmp(constraint, "api_keys_prefix_key") == 0) {
			explicit_bzero(key, sizeof(key));
			PQclear(res);
			continue; /* another key has this prefix: draw again */
		} else if (state && strcmp(state, "23505") == 0) {
			fprintf(stderr,
				"rpcqd keys: an active key is named %s already (revoke it, or choose another name)\n",
				name);
		} else if (state && (strncmp(state, "22", 2) == 0)) {
			fprintf(stderr,
				"rpcqd keys: --expires \"%s\" is neither a time (2027-01-31T00:00:00Z) nor a duration "
				"(90d, "
				"12h, 30m, 45s)\n",
				expires);
			rc = 2;
		} else {
			fprintf(stderr, "rpcqd keys: cannot create the key: %s", PQresultErrorMessage(res));
		}
		explicit_bzero(key, sizeof(key));
		PQclear(res);
		break;
	}
	db_array_free(&scope_list);
	PQfinish(pg);
	return rc;
}

static int cmd_list(const rpcq_config *cfg)
{
	PGconn *pg = connect_db(cfg);
	if (pg == NULL)
		return 1;
	PGresult *res = PQexec(
		pg, "SELECT name, 'rpcq_' || prefix, CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
		    " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END,"
		    " array_to_string(scopes, ','),"
		    " CASE WHEN rate_per_s > 0 THEN rate_per_s::text || '/s burst ' || CASE WHEN burst > 0 THEN burst"
		    " ELSE ceil(rate_per_s)::int END ELSE '-' END,"
		    " coalesce(to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'),"
		    " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		    " FROM api_keys ORDER BY revoked_at IS NOT NULL, name, created_at");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "rpcqd keys: cannot list the keys: %s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(pg);
		return 1;
	}
	static const char *const head[] = {"NAME", "PREFIX", "STATE", "SCOPES", "RATE", "EXPIRES", "CREATED"};
	int n = PQntuples(res);
	int width[7];
	for (int j = 0; j < 7; j++) {
		width[j] = (int)strlen(head[j]);
		for (int i = 0; i < n; i++) {
			int w = (int)strlen(PQgetvalue(res, i, j));
			width[j] = w > width[j] ? w : width[j];
		}
	}
	for (int j = 0; j < 7; j++)
		printf(j < 6 ? "%-*s  " : "%-*s\n", width[j], head[j]);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < 7; j++)
			printf(j < 6 ? "%-*s  " : "%-*s\n", width[j], PQgetvalue(res, i, j));
	if (n == 0)
		fprintf(stderr, "no API keys: auth is off under --auth auto until `rpcqd keys create` makes one\n");
	PQclear(res);
	PQfinish(pg);
	return 0;
}

/* The active key of that name or prefix: one statement, so that a name
 * that is also another key's prefix is refused as ambiguous. $1 the text
 * given, $2 without rpcq_. */
#define ACTIVE_KEY \
	"WITH m AS (SELECT id FROM api_keys WHERE revoked_at IS NULL AND (name = $1 OR prefix = $2) FOR UPDATE)"

/* Reports what a statement over ACTIVE_KEY found: 0 when it changed one
 * key (column 0 the matches, 1 and 2 its name and prefix). */
static int one_key_changed(PGresult *res, const char *which, const char *what)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "rpcqd keys: cannot %s: %s", what, PQresultErrorMessage(res));
	} else if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		fprintf(stderr, "rpcqd keys: no active key is named or prefixed \"%s\" (rpcqd keys list shows them)\n",
			which);
	} else if (strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
		fprintf(stderr, "rpcqd keys: \"%s\" is a name and another key's prefix: use rpcq_<prefix>\n", which);
	} else {
		return 0;
	}
	return 1;
}

static int cmd_limit(const rpcq_config *cfg, const char *which, const char *rate, const char *burst)
{
	double r;
	long b;
	if (!rate)
		return usage_error("%s", "limit needs --rate (0: no limit)");
	if (parse_limits(rate, burst, 1, &r, &b) != 0)
		return 2;
	PGconn *pg = connect_db(cfg);
	if (pg == NULL)
		return 1;
	char rtext[32], btext[32];
	snprintf(rtext, sizeof(rtext), "%.17g", r);
	snprintf(btext, sizeof(btext), "%ld", b);
	const char *p = strncmp(which, "rpcq_", 5) == 0 ? which + 5 : which;
	const char *values[4] = {which, p, rtext, btext};
	PGresult *res =
		PQexecParams(pg,
			     ACTIVE_KEY ", u AS (UPDATE api_keys k SET rate_per_s = $3::float8, burst = $4::int4"
					" FROM m WHERE k.id = m.id AND (SELECT count(*) FROM m) = 1"
					" RETURNING k.name, k.prefix)"
					" SELECT (SELECT count(*) FROM m), name, prefix FROM (SELECT 1) one"
					" LEFT JOIN u ON true",
			     4, NULL, values, NULL, NULL, 0);
	int rc = one_key_changed(res, which, "change the limit");
	if (rc == 0) {
		if (r > 0)
			fprintf(stderr,
				"key %s (prefix rpcq_%s): %g calls/s, bursts of %s, on every rpcqd within a second\n",
				PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), r, burst ? burst : "the rate");
		else
			fprintf(stderr, "key %s (prefix rpcq_%s): no rate limit, on every rpcqd within a second\n",
				PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	PQfinish(pg);
	return rc;
}

static int cmd_revoke(const rpcq_config *cfg, const char *which)
{
	PGconn *pg = connect_db(cfg);
	if (pg == NULL)
		return 1;
	const char *p = strncmp(which, "rpcq_", 5) == 0 ? which + 5 : which;
	const char *values[2] = {which, p};
	/* One statement: a name that is also another key's prefix is refused
	 * as ambiguous rather than revoking either. */
	PGresult *res = PQexecParams(
		pg,
		"WITH m AS (SELECT id FROM api_keys WHERE revoked_at IS NULL AND (name = $1 OR prefix = $2)"
		" FOR UPDATE), u AS (UPDATE api_keys k SET revoked_at = now() FROM m WHERE k.id = m.id"
		" AND (SELECT count(*) FROM m) = 1 RETURNING k.name, k.prefix)"
		" SELECT (SELECT count(*) FROM m), name, prefix FROM (SELECT 1) one LEFT JOIN u ON true",
		2, NULL, values, NULL, NULL, 0);
	int rc = 1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "rpcqd keys: cannot revoke: %s", PQresultErrorMessage(res));
	} else if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		fprintf(stderr, "rpcqd keys: no active key is named or prefixed \"%s\" (rpcqd keys list shows them)\n",
			which);
	} else if (strcmp(PQgetvalue(res, 0, 0), "1") != 0) {
		fprintf(stderr, "rpcqd keys: \"%s\" is a name and another key's prefix: revoke by rpcq_<prefix>\n",
			which);
	} else {
		fprintf(stderr, "revoked key %s (prefix rpcq_%s): refused by every rpcqd within a second\n",
			PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		rc = 0;
	}
	PQclear(res);
	PQfinish(pg);
	return rc;
}

int keys_main(int argc, char **argv)
{
	if (argc < 1) {
		keys_usage(stderr);
		return 2;
	}
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			keys_usage(stdout);
			return 0;
		}
	}
	const char *cmd = argv[0];
	char *scopes[MAX_SCOPES];
	int nscopes = 0;
	const char *expires = NULL, *rate = NULL, *burst = NULL, *name = NULL;
	/* What is not ours is rpcqd's (--database, --config): config_load's. */
	char **rest = rpcq_calloc((size_t)argc + 1, sizeof(*rest));
	char *scope_copy[MAX_SCOPES];
	int ncopies = 0;
	if (rest == NULL)
		return 1;
	int nrest = 0, rc = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = NULL;
		const char *opt = NULL;
		static const char *const ours[] = {"--scope", "--expires", "--rate", "--burst"};
		for (size_t k = 0; k < sizeof(ours) / sizeof(ours[0]); k++) {
			size_t n = strlen(ours[k]);
			if (strncmp(a, ours[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
				opt = ours[k];
				v = a[n] == '=' ? a + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
			}
		}
		if (opt == NULL) {
			if (a[0] != '-' && name == NULL && strcmp(cmd, "list") != 0) {
				name = a;
			} else {
				/* Every rpcqd option takes a value: "--database X"
				 * passes X on with it, never as NAME. */
				rest[nrest++] = argv[i];
				if (strncmp(a, "--", 2) == 0 && strchr(a, '=') == NULL && i + 1 < argc)
					rest[nrest++] = argv[++i];
			}
			continue;
		}
		if (v == NULL) {
			rc = usage_error("%s needs a value", opt);
			goto out;
		}
		if (strcmp(opt, "--scope") == 0) {
			char *copy = rpcq_strdup(v), *save = NULL;
			if (copy == NULL || ncopies == MAX_SCOPES) {
				rpcq_free(copy);
				rc = usage_error("%s", "too many --scope values");
				goto out;
			}
			scope_copy[ncopies++] = copy;
			for (char *s = strtok_r(copy, ", ", &save); s; s = strtok_r(NULL, ", ", &save)) {
				if (nscopes == MAX_SCOPES) {
					rc = usage_error("%s", "at most 32 scopes");
					goto out;
				}
				scopes[nscopes++] = s;
			}
		} else if (strcmp(opt, "--expires") == 0) {
			expires = v;
		} else if (strcmp(opt, "--rate") == 0) {
			rate = v;
		} else {
			burst = v;
		}
	}
	rpcq_config cfg;
	rpcq_error err;
	if (config_load(&cfg, nrest, rest, &err) != RPCQ_OK) {
		fprintf(stderr, "rpcqd keys: %s\n", err.message);
		config_fini(&cfg);
		goto out;
	}
	if (strcmp(cmd, "create") == 0) {
		rc = name ? cmd_create(&cfg, name, scopes, nscopes, expires, rate, burst)
			  : usage_error("%s", "create needs a NAME");
	} else if (strcmp(cmd, "list") == 0) {
		rc = cmd_list(&cfg);
	} else if (strcmp(cmd, "revoke") == 0) {
		rc = name ? cmd_revoke(&cfg, name) : usage_error("%s", "revoke needs a NAME or PREFIX");
	} else if (strcmp(cmd, "limit") == 0) {
		rc = name ? cmd_limit(&cfg, name, rate, burst) : usage_error("%s", "limit needs a NAME or PREFIX");
	} else {
		rc = usage_error("unknown command \"%s\": create, list, limit or revoke", cmd);
	}
	config_fini(&cfg);
out:
	for (int i = 0; i < ncopies; i++)
		rpcq_free(scope_copy[i]);
	rpcq_free(rest);
	return rc;
}
