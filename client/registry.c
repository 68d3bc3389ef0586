/*
 * Lookups over the generated registry. The tables are small (tens of
 * methods), so a linear scan is as fast as anything and needs no set-up.
 */
#include <string.h>

#include "registry_gen.h"

const rpcq_method_info *rpcq_methods(size_t *count)
{
	if (count)
		*count = rpcq_gen_method_count;
	return rpcq_gen_methods;
}

const rpcq_method_info *rpcq_method_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < rpcq_gen_method_count; i++) {
		const char *full = rpcq_gen_methods[i].full_name;
		if (strcmp(full, name) == 0 || (name[0] != '/' && strcmp(full + 1, name) == 0))
			return &rpcq_gen_methods[i];
	}
	return NULL;
}

const ProtobufCMessageDescriptor *rpcq_message_find(const char *full_name)
{
	if (full_name == NULL)
		return NULL;
	for (size_t i = 0; rpcq_gen_messages[i]; i++) {
		if (strcmp(rpcq_gen_messages[i]->name, full_name) == 0)
			return rpcq_gen_messages[i];
	}
	return NULL;
}
