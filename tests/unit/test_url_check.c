/*
 * Server URL classification (client/url_check.h): which URLs would carry an
 * API key in plain text to another machine. Loopback in every spelling nng
 * accepts, other hosts and names, IPv6 in brackets, the local and encrypted
 * transports, and URLs whose host cannot be read. Pure: no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "url_check.h"

static void test_plain_urls_to_loopback_are_loopback(void **state)
{
	(void)state;
	assert_int_equal(url_classify("tcp://127.0.0.1:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp://127.255.3.4:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp4://127.0.0.1:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp://localhost:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("TCP://LocalHost:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp6://[::1]:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp://[::1]:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp://[0:0:0:0:0:0:0:1]:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("tcp://[::ffff:127.0.0.1]:7400"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("ws://127.0.0.1:8080/rpcq"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("ws://localhost/rpcq"), URL_PLAIN_LOOPBACK);
	assert_int_equal(url_classify("ws6://[::1]:8080/a/b?x=1"), URL_PLAIN_LOOPBACK);
}

static void test_plain_urls_to_other_hosts_are_remote(void **state)
{
	(void)state;
	assert_int_equal(url_classify("tcp://10.1.2.3:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://192.0.2.1:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://128.0.0.1:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://0.0.0.0:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp6://[2001:db8::1]:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://[::2]:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://[::ffff:10.0.0.1]:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://[fe80::1%eth0]:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("ws://10.1.2.3:8080/rpcq"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("ws4://api.example.com/rpcq"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://rpcq.internal:7400"), URL_PLAIN_REMOTE);
}

static void test_names_that_only_look_like_loopback_are_remote(void **state)
{
	(void)state;
	/* Names are not resolved: only "localhost" itself counts as loopback. */
	assert_int_equal(url_classify("tcp://127.0.0.1.example.com:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://localhost.example.com:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://mylocalhost:7400"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("tcp://127.1:7400"), URL_PLAIN_REMOTE);
	/* What a ws:// path or user information says is not the host. */
	assert_int_equal(url_classify("ws://10.0.0.5:80/127.0.0.1"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("ws://localhost@10.0.0.5/rpcq"), URL_PLAIN_REMOTE);
	assert_int_equal(url_classify("ws://10.0.0.5@127.0.0.1/rpcq"), URL_PLAIN_LOOPBACK);
}

static void test_local_transports_are_local(void **state)
{
	(void)state;
	assert_int_equal(url_classify("ipc:///tmp/rpcq.sock"), URL_LOCAL);
	assert_int_equal(url_classify("inproc://rpcq-test"), URL_LOCAL);
	assert_int_equal(url_classify("unix:///run/rpcq.sock"), URL_LOCAL);
	assert_int_equal(url_classify("abstract://rpcq"), URL_LOCAL);
}

static void test_encrypted_transports_are_encrypted_whatever_the_host(void **state)
{
	(void)state;
	assert_int_equal(url_classify("tls+tcp://192.0.2.1:7400"), URL_ENCRYPTED);
	assert_int_equal(url_classify("tls+tcp://127.0.0.1:7400"), URL_ENCRYPTED);
	assert_int_equal(url_classify("tls+tcp4://rpcq.example.com:7400"), URL_ENCRYPTED);
	assert_int_equal(url_classify("tls+tcp6://[2001:db8::1]:7400"), URL_ENCRYPTED);
	assert_int_equal(url_classify("wss://api.example.com/rpcq"), URL_ENCRYPTED);
	assert_int_equal(url_classify("wss://10.1.2.3:8443/rpcq"), URL_ENCRYPTED);
	assert_int_equal(url_classify("WSS://10.1.2.3:8443"), URL_ENCRYPTED);
}

static void test_urls_whose_host_cannot_be_read_are_invalid(void **state)
{
	(void)state;
	assert_int_equal(url_classify(NULL), URL_INVALID);
	assert_int_equal(url_classify(""), URL_INVALID);
	assert_int_equal(url_classify("127.0.0.1:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp:/127.0.0.1:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://"), URL_INVALID);
	assert_int_equal(url_classify("tcp://:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://127.0.0.1:"), URL_INVALID);
	assert_int_equal(url_classify("tcp://127.0.0.1:74x0"), URL_INVALID);
	assert_int_equal(url_classify("tcp://127.0.0.1:65536"), URL_INVALID);
	assert_int_equal(url_classify("tcp://127.0.0.1:0"), URL_INVALID);
	/* A bare IPv6 address: "::1:7400" could be ::1 port 7400 or ::1:7400. */
	assert_int_equal(url_classify("tcp://::1:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://[::1:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://[::1]7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://[]:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://[localhost]:7400"), URL_INVALID);
	assert_int_equal(url_classify("tcp://local host:7400"), URL_INVALID);
	assert_int_equal(url_classify("tls+tcp://:7400"), URL_INVALID);
	assert_int_equal(url_classify("ws:///rpcq"), URL_INVALID);
	assert_int_equal(url_classify("ipc://"), URL_INVALID);
	/* Schemes nng 1.5 does not dial, or that rpcq cannot judge. */
	assert_int_equal(url_classify("http://127.0.0.1:7400"), URL_INVALID);
	assert_int_equal(url_classify("zt://8056c2e21c000001.7400"), URL_INVALID);
	assert_int_equal(url_classify("tcpx://127.0.0.1:7400"), URL_INVALID);
}

/* The host a TLS dialer checks the certificate against. */
static void test_the_host_of_a_url_is_read_without_port_or_brackets(void **state)
{
	(void)state;
	char host[256];
	assert_int_equal(url_host("tls+tcp://localhost:7400", host, sizeof(host)), 1);
	assert_string_equal(host, "localhost");
	assert_int_equal(url_host("wss://user@rpcq.example.com:443/rpcq", host, sizeof(host)), 1);
	assert_string_equal(host, "rpcq.example.com");
	assert_int_equal(url_host("tls+tcp://[::1]:7400", host, sizeof(host)), 2);
	assert_string_equal(host, "::1");
	assert_true(url_host_is_address("::1"));
	assert_true(url_host_is_address("127.0.0.1"));
	assert_false(url_host_is_address("localhost"));
	assert_int_equal(url_host("tls+tcp://[::1:7400", host, sizeof(host)), -1);
	assert_int_equal(url_host("tls+tcp://:7400", host, sizeof(host)), -1);
	assert_int_equal(url_host("ipc:///tmp/x", host, sizeof(host)), -1);
	assert_int_equal(url_host("tls+tcp://localhost:7400", host, 4), -1); /* no room */
}

static void test_a_host_longer_than_a_dns_name_is_invalid(void **state)
{
	(void)state;
	char url[400] = "tcp://";
	size_t n = 6;
	while (n < 6 + 300)
		url[n++] = 'a';
	url[n] = '\0';
	assert_int_equal(url_classify(url), URL_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_urls_to_loopback_are_loopback),
		cmocka_unit_test(test_plain_urls_to_other_hosts_are_remote),
		cmocka_unit_test(test_names_that_only_look_like_loopback_are_remote),
		cmocka_unit_test(test_local_transports_are_local),
		cmocka_unit_test(test_encrypted_transports_are_encrypted_whatever_the_host),
		cmocka_unit_test(test_urls_whose_host_cannot_be_read_are_invalid),
		cmocka_unit_test(test_the_host_of_a_url_is_read_without_port_or_brackets),
		cmocka_unit_test(test_a_host_longer_than_a_dns_name_is_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
