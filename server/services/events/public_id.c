/*
 * Public ids of events: UUIDv5 of (base id, event id) under the namespace
 * below, which is this project's own (a random UUID, fixed forever: changing
 * it would change every event's id).
 */
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include <rpcq/alloc.h>

#include "public_id.h"

/* 5d2b1c0e-8f7a-4c3e-9b61-0f4e2a7d9c13 */
static const uuid_t events_namespace = {0x5d, 0x2b, 0x1c, 0x0e, 0x8f, 0x7a, 0x4c, 0x3e,
					0x9b, 0x61, 0x0f, 0x4e, 0x2a, 0x7d, 0x9c, 0x13};

void event_public_id(const char *base_id, const char *event_id, char out[37])
{
	size_t nb = strlen(base_id), ne = strlen(event_id);
	char stack[256];
	char *name = nb + ne + 1 <= sizeof(stack) ? stack : rpcq_alloc(nb + ne + 1);
	uuid_t u;
	if (name == NULL) {
		/* Out of memory: ids are at most FEED_ID_MAX bytes, so never here. */
		memset(out, '0', 36);
		out[36] = '\0';
		return;
	}
	memcpy(name, base_id, nb);
	name[nb] = '\0';
	memcpy(name + nb + 1, event_id, ne);
	uuid_generate_sha1(u, events_namespace, name, nb + ne + 1);
	uuid_unparse_lower(u, out);
	if (name != stack)
		rpcq_free(name);
}

int event_public_id_valid(const char *s)
{
	uuid_t u;
	return s != NULL && strlen(s) == 36 && uuid_parse(s, u) == 0;
}
