/*
 * What the two directions of librpcq's JSON transcoding share
 * (client/json_read.c: JSON to message, client/json_write.c: message to
 * JSON), implemented in client/json_mapping.c: how protobuf-c lays out a
 * value, the JSON name protoc derives from a field name, how a map field is
 * recognised, the shortest decimal of a float or double, and the allocator
 * used when the caller gives none. Internal to librpcq; the public contract
 * is include/rpcq/json.h. The json_ prefix is shared with jansson, whose
 * names (json_t, json_is_integer, ...) none of these take. Every function is
 * pure, thread-safe and never blocks.
 */
#ifndef RPCQ_JSON_INTERNAL_H
#define RPCQ_JSON_INTERNAL_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

/* Deepest message nesting accepted on input and written on output. */
#define JSON_MAX_DEPTH 64

/* Bytes one value of the type takes in a message or a repeated array. */
size_t json_value_size(ProtobufCType type);

/* Whether the type is a signed integer (enums included), a 64-bit integer,
 * or any integer type (not bool, enum or floating point). */
int json_type_is_signed(ProtobufCType type);
int json_type_is_64bit(ProtobufCType type);
int json_type_is_integer(ProtobufCType type);

/* c upper-cased when it is an ASCII lower-case letter, whatever the locale. */
char json_ascii_upper(char c);

/* Whether key is the lowerCamelCase JSON name protoc derives from the field
 * name (underscores dropped, the letter after each upper-cased). */
int json_name_is(const char *name, const char *key);

/* Whether field f of parent is a map field, judged by the shape protoc gives
 * a map's entry message (protobuf-c keeps no map_entry option). When it is,
 * f->descriptor has the key as fields[0] and the value as fields[1]. */
int json_field_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f);

/* Writes to buf (size bytes) the shortest %g decimal of the finite d that
 * reads back as the same double, or as the same float when is_float, with a
 * '.' as decimal point whatever the locale. */
void json_shortest_real(char *buf, size_t size, double d, int is_float);

/* rpcq_alloc/rpcq_free as a protobuf-c allocator: what it allocates may also
 * be freed by protobuf-c's default allocator (free). Never modified. */
extern ProtobufCAllocator json_default_allocator;

#endif
