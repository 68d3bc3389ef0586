/*
 * Topic map: open addressing with linear probing over a power-of-two table
 * of slots, each pointing at one allocation holding the record, then the
 * NUL-terminated key. FNV-1a hashes the key (topics are short).
 */
#include <stdint.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "topic_map.h"

struct slot {
	uint64_t hash;
	size_t len;
	char *entry; /* record (value_size bytes, aligned), then key; NULL: empty */
};

struct topic_map {
	struct slot *slots;
	size_t cap; /* power of two */
	size_t count;
	size_t value_size; /* rounded up to keep the key after an aligned record */
};

static uint64_t hash_of(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

topic_map *topic_map_create(size_t value_size)
{
	topic_map *m = rpcq_calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->cap = 64;
	m->value_size = (value_size + 15) & ~(size_t)15;
	m->slots = rpcq_calloc(m->cap, sizeof(*m->slots));
	if (m->slots == NULL) {
		rpcq_free(m);
		return NULL;
	}
	return m;
}

void topic_map_destroy(topic_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++)
		rpcq_free(m->slots[i].entry);
	rpcq_free(m->slots);
	rpcq_free(m);
}

static struct slot *find(const topic_map *m, const char *topic, size_t len, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct slot *s = &m->slots[i];
		if (s->entry == NULL)
			return s;
		if (s->hash == h && s->len == len && memcmp(s->entry + m->value_size, topic, len) == 0)
			return s;
	}
}

void *topic_map_get(const topic_map *m, const char *topic, size_t len)
{
	struct slot *s = find(m, topic, len, hash_of(topic, len));
	return s->entry;
}

static int grow(topic_map *m)
{
	size_t cap = m->cap * 2;
	struct slot *slots = rpcq_calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct slot *s = &m->slots[i];
		if (s->entry == NULL)
			continue;
		size_t j = (size_t)s->hash & (cap - 1);
		while (slots[j].entry != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	rpcq_free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

void *topic_map_put(topic_map *m, const char *topic, size_t len, int *inserted)
{
	uint64_t h = hash_of(topic, len);
	struct slot *s = find(m, topic, len, h);
	if (inserted != NULL)
		*inserted = 0;
	if (s->entry != NULL)
		return s->entry;
	if ((m->count + 1) * 2 > m->cap) {
		if (grow(m) != 0)
			return NULL;
		s = find(m, topic, len, h);
	}
	char *e = rpcq_calloc(1, m->value_size + len + 1);
	if (e == NULL)
		return NULL;
	memcpy(e + m->value_size, topic, len);
	s->hash = h;
	s->len = len;
	s->entry = e;
	m->count++;
	if (inserted != NULL)
		*inserted = 1;
	return e;
}

const char *topic_map_key(const topic_map *m, const void *value)
{
	return (const char *)value + m->value_size;
}

size_t topic_map_count(const topic_map *m)
{
	return m->count;
}

size_t topic_map_next(const topic_map *m, size_t i, const char **key, void **value)
{
	for (; i < m->cap; i++) {
		const struct slot *s = &m->slots[i];
		if (s->entry != NULL) {
			*key = s->entry + m->value_size;
			*value = s->entry;
			return i + 1;
		}
	}
	return 0;
}
