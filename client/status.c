/* The status table: names and descriptions from RPCQ_STATUS_LIST. */
#include <stdlib.h>
#include <string.h>

#include <rpcq/status.h>

static const char *const status_names[RPCQ_STATUS_COUNT] = {
#define NAME_(name, code, desc) [code] = #name,
	RPCQ_STATUS_LIST(NAME_)
#undef NAME_
};

static const char *const status_descriptions[RPCQ_STATUS_COUNT] = {
#define DESC_(name, code, desc) [code] = desc,
	RPCQ_STATUS_LIST(DESC_)
#undef DESC_
};

const char *rpcq_status_name(rpcq_status status)
{
	if ((unsigned)status >= RPCQ_STATUS_COUNT)
		return "UNKNOWN";
	return status_names[status];
}

const char *rpcq_status_describe(rpcq_status status)
{
	if ((unsigned)status >= RPCQ_STATUS_COUNT)
		return status_descriptions[RPCQ_UNKNOWN];
	return status_descriptions[status];
}

int rpcq_status_parse(const char *text, rpcq_status *out)
{
	if (text == NULL || *text == '\0')
		return -1;
	for (int i = 0; i < RPCQ_STATUS_COUNT; i++) {
		if (strcmp(text, status_names[i]) == 0) {
			*out = (rpcq_status)i;
			return 0;
		}
	}
	char *end;
	long n = strtol(text, &end, 10);
	if (*end != '\0' || n < 0 || n >= RPCQ_STATUS_COUNT)
		return -1;
	*out = (rpcq_status)n;
	return 0;
}
