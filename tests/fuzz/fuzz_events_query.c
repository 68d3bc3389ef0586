/*
 * libFuzzer target for the query of GET /search
 * (server/services/events/search_query.h) and the date-time parsers under it
 * (datetime.h): any query a client may put after "/search?". The input, up
 * to its first NUL, is both the query and a bound on its own. A query that
 * parses gives bounds that are "" or valid local times; one that does not
 * says why, naming the parameter; a bound that parses is a valid local time,
 * and a valid local time is a bound that parses to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datetime.h"
#include "search_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_local(const char *s)
{
	char out[20];
	if (s[0] != '\0' && (datetime_local_parse(s, out) != 0 || strcmp(out, s) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';

	search_bounds b;
	char why[256], small[8];
	if (search_query_parse(s, &b, why, sizeof why) == 0) {
		check_local(b.starts_at);
		check_local(b.ends_at);
	} else {
		if (b.starts_at[0] != '\0' || b.ends_at[0] != '\0')
			abort();
		if (strncmp(why, "starts_at", 9) != 0 && strncmp(why, "ends_at", 7) != 0 &&
		    strncmp(why, "the query", 9) != 0)
			abort();
		/* A short buffer gets the same message, cut. */
		if (search_query_parse(s, &b, small, sizeof small) != -1 || strncmp(small, why, sizeof small - 1) != 0)
			abort();
	}

	char out[20], local[20];
	if (datetime_bound_parse(s, out, why, sizeof why) == 0) {
		check_local(out);
	} else if (why[0] == '\0') {
		abort();
	}
	if (datetime_local_parse(s, local) == 0) {
		if (strcmp(local, s) != 0 || datetime_bound_parse(s, out, NULL, 0) != 0 || strcmp(out, s) != 0)
			abort();
	}
	free(s);
	return 0;
}
