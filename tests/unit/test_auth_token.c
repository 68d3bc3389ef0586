/*
 * Access control's pure parts (server/core/auth_token.h): the Authorization
 * value, scope patterns and their matching, and the rate limiter's token
 * bucket, driven by a clock of the test's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth_token.h"

#define KEY "rpcq_0a1b2c3d_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234"

static void test_a_bearer_key_is_read_with_its_prefix(void **state)
{
	(void)state;
	assert_int_equal(strlen(KEY), AUTH_KEY_LEN);
	const char *values[] = {"Bearer " KEY, "bearer " KEY, "BEARER\t" KEY, "  Bearer   " KEY "  "};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char prefix[AUTH_PREFIX_LEN + 1] = "";
		const char *key = NULL;
		assert_int_equal(auth_parse_bearer(values[i], prefix, &key), AUTH_PARSE_OK);
		assert_string_equal(prefix, "0a1b2c3d");
		assert_memory_equal(key, KEY, AUTH_KEY_LEN);
	}
	assert_int_equal(auth_prefix_value("0a1b2c3d"), 0x0a1b2c3du);
	assert_int_equal(auth_prefix_value("ffffffff"), 0xffffffffu);
}

static void test_no_value_is_missing_and_anything_else_malformed(void **state)
{
	(void)state;
	char prefix[AUTH_PREFIX_LEN + 1];
	const char *key;
	assert_int_equal(auth_parse_bearer(NULL, prefix, &key), AUTH_PARSE_MISSING);
	assert_int_equal(auth_parse_bearer("", prefix, &key), AUTH_PARSE_MISSING);
	assert_int_equal(auth_parse_bearer("   ", prefix, &key), AUTH_PARSE_MISSING);
	const char *bad[] = {
		"Basic dXNlcjpwYXNz",
		"Bearer",
		"Bearer ",
		"Bearer" KEY,
		KEY,
		"Bearer rpcq_0A1B2C3D_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234",  /* upper-case hex */
		"Bearer rpcq_0a1b2c3_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_012345",  /* 7-digit prefix */
		"Bearer rpcq_0a1b2c3d_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123",   /* short secret */
		"Bearer rpcq_0a1b2c3d_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_012345", /* long secret */
		"Bearer rpcq_0a1b2c3d_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ+/01234",  /* base64, not base64url */
		"Bearer rpcq-0a1b2c3d_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234",
		"Bearer " KEY " extra",
		"Bearer " KEY ",Bearer " KEY,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (auth_parse_bearer(bad[i], prefix, &key) != AUTH_PARSE_MALFORMED)
			fail_msg("\"%s\" was not malformed", bad[i]);
	}
}

static void test_scopes_are_star_read_methods_and_prefixes(void **state)
{
	(void)state;
	char why[256];
	const char *good[] = {"*",
			      "read",
			      "rpcq.vesting.*",
			      "rpcq.vouchers.VoucherService/IssueVouchers",
			      "/rpcq.vouchers.VoucherService/IssueVouchers",
			      "rpcq.billing.BillingService/Get*",
			      "rpcq.*"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (auth_scope_valid(good[i], why, sizeof(why)) != 0)
			fail_msg("\"%s\" refused: %s", good[i], why);
	}
	const char *bad[] = {"",  "**",	       "rpcq.vesting", "a/b/c", "rpcq.vesting.*.x", "rpcq vesting", "rpcq/",
			     "/", "*.Service", "rpcq.x/*/y",   "Read"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (auth_scope_valid(bad[i], why, sizeof(why)) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_true(why[0] != '\0');
	}
	/* The message says what to write instead. */
	assert_int_equal(auth_scope_valid("rpcq.vesting.VestingService", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "rpcq.vesting.VestingService/Method"));
}

static void test_a_scope_covers_the_methods_it_names(void **state)
{
	(void)state;
	const char *issue = "/rpcq.vouchers.VoucherService/IssueVouchers";
	const char *compute = "/rpcq.vesting.VestingService/Compute";
	assert_true(auth_scope_matches("*", issue, 0));
	assert_true(auth_scope_matches("read", compute, 1));
	assert_false(auth_scope_matches("read", issue, 0));
	assert_true(auth_scope_matches("rpcq.vesting.*", compute, 1));
	assert_false(auth_scope_matches("rpcq.vesting.*", issue, 0));
	assert_true(auth_scope_matches("rpcq.vouchers.VoucherService/IssueVouchers", issue, 0));
	assert_true(auth_scope_matches("/rpcq.vouchers.VoucherService/IssueVouchers", issue, 0));
	assert_false(auth_scope_matches("rpcq.vouchers.VoucherService/Issue", issue, 0));
	assert_false(auth_scope_matches("rpcq.vouchers.VoucherService/IssueVouchersToo", issue, 0));
	assert_true(auth_scope_matches("rpcq.vouchers.VoucherService/Issue*", issue, 0));
	/* A prefix is a prefix of the whole name: rpcq.vest* covers
	 * rpcq.vesting, but rpcq.vesting.* does not cover rpcq.vestingx. */
	assert_false(auth_scope_matches("rpcq.vesting.*", "/rpcq.vestingx.S/M", 0));
}

static void test_the_bucket_allows_a_burst_then_the_rate(void **state)
{
	(void)state;
	auth_limiter l = {0};
	auth_limiter_set(&l, 5, 3); /* one token every 200 ms, three at once */
	uint64_t t = 1000000000000u, retry = 0;
	for (int i = 0; i < 3; i++)
		assert_true(auth_limiter_take(&l, t, &retry));
	assert_false(auth_limiter_take(&l, t, &retry));
	assert_int_equal(retry, 200000000u);
	/* Half a token later: still refused, and told the rest. */
	assert_false(auth_limiter_take(&l, t + 100000000u, &retry));
	assert_int_equal(retry, 100000000u);
	/* One token refilled, one call. */
	assert_true(auth_limiter_take(&l, t + 200000000u, &retry));
	assert_false(auth_limiter_take(&l, t + 200000000u, &retry));
	/* Idle for long: the burst again, never more. */
	t += 10000000000u;
	int allowed = 0;
	for (int i = 0; i < 10; i++)
		allowed += auth_limiter_take(&l, t, &retry);
	assert_int_equal(allowed, 3);
	/* Over a second at a steady pace: the rate. */
	allowed = 0;
	for (uint64_t at = t + 10000000u; at <= t + 1000000000u; at += 10000000u)
		allowed += auth_limiter_take(&l, at, &retry);
	assert_int_equal(allowed, 5);
}

static void test_no_rate_is_no_limit_and_limits_change_in_place(void **state)
{
	(void)state;
	auth_limiter l = {0};
	uint64_t retry = 0;
	auth_limiter_set(&l, 0, 0);
	for (int i = 0; i < 1000; i++)
		assert_true(auth_limiter_take(&l, 42, &retry));
	/* burst 0: the rate rounded up (2.5/s: 3 at once). */
	auth_limiter_set(&l, 2.5, 0);
	int allowed = 0;
	for (int i = 0; i < 10; i++)
		allowed += auth_limiter_take(&l, 5000000000u, &retry);
	assert_int_equal(allowed, 3);
	/* Below one call a second: one at a time. */
	auth_limiter l2 = {0};
	auth_limiter_set(&l2, 0.5, 0);
	assert_true(auth_limiter_take(&l2, 5000000000u, &retry));
	assert_false(auth_limiter_take(&l2, 5000000000u, &retry));
	assert_int_equal(retry, 2000000000u);
}

/* A rate whose interval would not fit 64 bits is still a limit: one call,
 * then none for decades (a burst adds at most one). */
static void test_a_vanishingly_small_rate_is_still_a_limit(void **state)
{
	(void)state;
	const double rates[] = {1e-11, 1e-300, 5e-324};
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		for (long burst = 0; burst <= 1000000; burst += 1000000) {
			auth_limiter l = {0};
			uint64_t retry = 0, t = 5000000000u;
			auth_limiter_set(&l, rates[i], burst);
			assert_true(auth_limiter_take(&l, t, &retry));
			int allowed = 0;
			for (int k = 1; k <= 100; k++)
				allowed += auth_limiter_take(&l, t + (uint64_t)k * 1000000000u, &retry);
			assert_true(allowed <= (burst > 1 ? 1 : 0));
			assert_true(retry >= 1000000000000000000u - 200000000000u); /* decades */
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_bearer_key_is_read_with_its_prefix),
		cmocka_unit_test(test_no_value_is_missing_and_anything_else_malformed),
		cmocka_unit_test(test_scopes_are_star_read_methods_and_prefixes),
		cmocka_unit_test(test_a_scope_covers_the_methods_it_names),
		cmocka_unit_test(test_the_bucket_allows_a_burst_then_the_rate),
		cmocka_unit_test(test_no_rate_is_no_limit_and_limits_change_in_place),
		cmocka_unit_test(test_a_vanishingly_small_rate_is_still_a_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
