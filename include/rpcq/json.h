/*
 * JSON transcoding of protobuf-c messages, by descriptor, following the
 * proto3 JSON mapping: lowerCamelCase field names on output (original names
 * also accepted on input), 64-bit integers as strings, enums by name, bytes as
 * base64, maps as objects. Unknown fields are rejected, naming the field.
 * Used by `rpcq call` (a method's input from JSON, its reply to JSON, with
 * the descriptors of rpcq_method_find) and by the HTTP gateway. Every
 * function is thread-safe and never blocks; nothing here keeps state.
 */
#ifndef RPCQ_JSON_H
#define RPCQ_JSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include <rpcq/error.h>
#include <rpcq/export.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	RPCQ_JSON_PRETTY = 1 << 0,	   /* one member per line, indented by two spaces */
	RPCQ_JSON_EMIT_DEFAULTS = 1 << 1,  /* include fields with default values */
	RPCQ_JSON_ORIGINAL_NAMES = 1 << 2, /* proto field names instead of lowerCamelCase */
};

/* Parses json (len bytes, not necessarily NUL-terminated) as a message of
 * type desc. On OK, *out is allocated with alloc (NULL: the default
 * allocator) and is freed with protobuf_c_message_free_unpacked(*out, alloc)
 * (NULL for the default allocator too); *out is set only on OK.
 *
 * Accepted: lowerCamelCase or .proto field names; null for any field (its
 * default); integers as numbers (also 1e3, 2.0) or strings ("-12"); enums by
 * name or number; floats as numbers, numeric strings, "NaN", "Infinity",
 * "-Infinity"; bytes as standard or URL-safe base64, padded or not; maps as
 * objects with keys "true"/"false" or decimal integers for non-string keys.
 * Limits: messages nested at most 64 deep; a JSON number must fit in int64
 * (larger uint64 values are given as strings, as the output writes them).
 *
 * Errors, every one naming what and where:
 *   INVALID_ARGUMENT 'field "rows[3].quantity": expected an integer, got a string'
 *   INVALID_ARGUMENT 'unknown field "foo" in rpcq.EchoMessage'
 *   INVALID_ARGUMENT 'field "count": 4294967296 is out of range for int32'
 *   INVALID_ARGUMENT 'invalid JSON at line 1, column 9: ...' (syntax, bad UTF-8)
 *   RESOURCE_EXHAUSTED when out of memory.
 * Thread-safe; does not block. */
RPCQ_API rpcq_status rpcq_json_to_message(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
					  ProtobufCAllocator *alloc, ProtobufCMessage **out,
					  rpcq_error *err) RPCQ_NODISCARD;

/* The message as a NUL-terminated JSON text (allocated; free with
 * rpcq_free or free), or NULL when out of memory or when messages are nested
 * deeper than 64 levels. flags: RPCQ_JSON_*. Output: lowerCamelCase names
 * (RPCQ_JSON_ORIGINAL_NAMES: .proto names), fields at their default omitted
 * (proto3) or unset omitted (proto2) unless RPCQ_JSON_EMIT_DEFAULTS, 64-bit
 * integers as strings, enums by name (a number unknown to the enum as a
 * number), bytes as padded standard base64, floats in the shortest form that
 * reads back to the same value, NaN and infinities as strings, string bytes
 * that are not UTF-8 as U+FFFD. Thread-safe; does not block. */
RPCQ_API char *rpcq_message_to_json(const ProtobufCMessage *msg, int flags);

/* Serialized forms, for callers of rpcq_call_raw (CLI, HTTP gateway). */

/* Parses json as rpcq_json_to_message does and serializes the message: on OK
 * *out (free with rpcq_free; set only on OK) holds *out_len bytes of protobuf
 * wire format. Errors as rpcq_json_to_message. Thread-safe; does not block. */
RPCQ_API rpcq_status rpcq_json_to_payload(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
					  void **out, size_t *out_len, rpcq_error *err) RPCQ_NODISCARD;

/* Decodes len bytes of wire format as a desc and writes it as JSON text: on
 * OK *out (NUL-terminated, free with rpcq_free; set only on OK) holds it.
 * INVALID_ARGUMENT when the bytes are not a valid desc or nest deeper than
 * 64 messages, RESOURCE_EXHAUSTED when out of memory. Thread-safe; does not
 * block. */
RPCQ_API rpcq_status rpcq_payload_to_json(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
					  int flags, char **out, rpcq_error *err) RPCQ_NODISCARD;

#ifdef __cplusplus
}
#endif
#endif
