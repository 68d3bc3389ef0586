/*
 * A program outside the tree using the installed librpcq: headers, stubs and
 * registry through <rpcq/rpcq.h>, linked through pkg-config or the CMake
 * package. It calls Echo on a port nobody listens on and expects the clear
 * UNAVAILABLE a caller would see, then checks that every generated method is
 * in the registry. Exit 0 when all holds.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/rpcq.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: consumer URL\n");
		return 2;
	}
	rpcq_client_options o = {.servers = argv[1], .timeout_ms = 300, .max_retries = -1};
	rpcq_client *c;
	rpcq_error err;
	if (rpcq_client_create(&c, &o, &err) != RPCQ_OK) {
		fprintf(stderr, "consumer: %s\n", err.message);
		return 1;
	}
	Rpcq__EchoMessage in = RPCQ__ECHO_MESSAGE__INIT;
	Rpcq__EchoMessage *out = NULL;
	rpcq_status st = rpcq_health_echo(c, &in, &out, NULL, &err);
	rpcq_client_destroy(c);
	if (st != RPCQ_UNAVAILABLE || strstr(err.message, argv[1]) == NULL) {
		fprintf(stderr, "consumer: expected UNAVAILABLE naming %s, got %s: %s\n", argv[1], rpcq_status_name(st),
			err.message);
		return 1;
	}
	size_t n;
	const rpcq_method_info *m = rpcq_methods(&n);
	if (n == 0 || rpcq_method_find("/rpcq.vesting.VestingService/Compute") == NULL) {
		fprintf(stderr, "consumer: the method registry is incomplete (%zu methods)\n", n);
		return 1;
	}
	printf("consumer: %zu methods, first %s; %s: %s\n", n, m[0].full_name, rpcq_status_name(st), err.message);
	return 0;
}
