/*
 * Dispatch table: a sorted array searched with bsearch. Tens of methods; a
 * lookup is a handful of strcmp calls, done once per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/registry.h>

#include "dispatch.h"

struct dispatch {
	dispatch_entry *entries;
	size_t count;
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const dispatch_entry *)a)->full_name, ((const dispatch_entry *)b)->full_name);
}

static int key_cmp(const void *key, const void *entry)
{
	return strcmp(key, ((const dispatch_entry *)entry)->full_name);
}

static const method_def *find_handler(const service_def *s, const char *name)
{
	for (const method_def *m = s->methods; m->name; m++) {
		if (strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

rpcq_status dispatch_create(dispatch **out, const service_def *const *services, rpcq_error *err)
{
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	dispatch *d = rpcq_calloc(1, sizeof(*d));
	if (d == NULL)
		return rpcq_error_set(err, st, "out of memory");
	size_t total = 0;
	for (size_t i = 0; services[i]; i++)
		total += services[i]->descriptor->n_methods;
	d->entries = rpcq_calloc(total ? total : 1, sizeof(*d->entries));
	if (d->entries == NULL) {
		rpcq_error_set(err, st, "out of memory");
		goto fail;
	}
	for (size_t i = 0; services[i]; i++) {
		const service_def *s = services[i];
		const ProtobufCServiceDescriptor *sd = s->descriptor;
		for (const method_def *m = s->methods; m->name; m++) {
			int found = 0;
			for (unsigned j = 0; j < sd->n_methods; j++)
				found |= strcmp(sd->methods[j].name, m->name) == 0;
			if (!found) {
				st = rpcq_error_set(err, RPCQ_INTERNAL,
						    "service %s has a handler for %s, which its "
						    "descriptor does not declare",
						    sd->name, m->name);
				goto fail;
			}
		}
		for (unsigned j = 0; j < sd->n_methods; j++) {
			const method_def *m = find_handler(s, sd->methods[j].name);
			if (m == NULL || m->handler == NULL) {
				st = rpcq_error_set(err, RPCQ_INTERNAL, "method /%s/%s has no handler", sd->name,
						    sd->methods[j].name);
				goto fail;
			}
			dispatch_entry *e = &d->entries[d->count++];
			size_t n = strlen(sd->name) + strlen(sd->methods[j].name) + 3;
			e->full_name = rpcq_alloc(n);
			if (e->full_name == NULL) {
				rpcq_error_set(err, st, "out of memory");
				goto fail;
			}
			snprintf(e->full_name, n, "/%s/%s", sd->name, sd->methods[j].name);
			e->method = &sd->methods[j];
			e->service = s;
			e->service_index = i;
			e->handler = m->handler;
			const rpcq_method_info *info = rpcq_method_find(e->full_name);
			e->read = info && info->no_side_effects;
			for (const char *const *r = s->reads; r && *r; r++)
				e->read |= strcmp(*r, m->name) == 0;
			for (const char *const *r = s->from_memory; r && *r; r++)
				e->from_memory |= strcmp(*r, m->name) == 0;
		}
	}
	qsort(d->entries, d->count, sizeof(*d->entries), entry_cmp);
	for (size_t i = 0; i < d->count; i++)
		d->entries[i].index = i;
	for (size_t i = 1; i < d->count; i++) {
		if (strcmp(d->entries[i - 1].full_name, d->entries[i].full_name) == 0) {
			st = rpcq_error_set(err, RPCQ_INTERNAL, "method %s is registered twice",
					    d->entries[i].full_name);
			goto fail;
		}
	}
	*out = d;
	return RPCQ_OK;
fail:
	dispatch_destroy(d);
	return st;
}

void dispatch_destroy(dispatch *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; d->entries && i < d->count; i++)
		rpcq_free(d->entries[i].full_name);
	rpcq_free(d->entries);
	rpcq_free(d);
}

const dispatch_entry *dispatch_find(const dispatch *d, const char *full_name)
{
	return bsearch(full_name, d->entries, d->count, sizeof(*d->entries), key_cmp);
}

const dispatch_entry *dispatch_entries(const dispatch *d, size_t *count)
{
	*count = d->count;
	return d->entries;
}
