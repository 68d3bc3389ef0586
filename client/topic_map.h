/*
 * A hash map from topic name to a fixed-size record, for the two places that
 * keep state per stream topic: rpcqd's publisher (the last seq it published)
 * and a subscription (the last seq it queued and delivered); any short
 * string key will do (billing's chunk import maps debtIds to their first
 * row with it). Topics number in
 * the thousands (billing.imports.<id>), and every frame looks its topic up,
 * so lookups are O(1): open addressing with linear probing, grown at 50% load.
 * Entries are never removed. Not locked: each map belongs to one thread.
 */
#ifndef RPCQ_TOPIC_MAP_H
#define RPCQ_TOPIC_MAP_H

#include <stddef.h>

typedef struct topic_map topic_map;

/* A map whose records have value_size bytes (zeroed on insertion); NULL when
 * out of memory. */
topic_map *topic_map_create(size_t value_size);

/* Frees the map, its keys and records. NULL is a no-op. */
void topic_map_destroy(topic_map *m);

/* The record of topic[0..len), or NULL if absent. Records and keys stay
 * where they are until the map is destroyed. */
void *topic_map_get(const topic_map *m, const char *topic, size_t len);

/* The record of topic[0..len), inserted (zeroed) if absent; *inserted
 * (optional) says which. NULL when out of memory. */
void *topic_map_put(topic_map *m, const char *topic, size_t len, int *inserted);

/* The key (NUL-terminated) of a record returned by get or put. */
const char *topic_map_key(const topic_map *m, const void *value);

size_t topic_map_count(const topic_map *m);

/* Iteration: for (size_t i = 0; (i = topic_map_next(m, i, &key, &value)) != 0;)
 * visits every entry once, in no particular order. Returns 0 at the end.
 * The map must not change during the iteration. */
size_t topic_map_next(const topic_map *m, size_t i, const char **key, void **value);

#endif
