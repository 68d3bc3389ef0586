/*
 * The facts of the proto3 JSON mapping that parsing (json_read.c) and writing
 * (json_write.c) both rely on, gathered here so the two directions cannot
 * drift apart: the size and kind of each protobuf-c value type, field names
 * and their JSON names, map fields, the shortest decimal of a real, and the
 * default allocator. protobuf-c 1.4 descriptors carry neither json_name nor
 * the map_entry option, so JSON names are computed from field names as protoc
 * does, and a map field is recognised by the shape protoc gives its entry
 * message (see json_field_is_map()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "json_internal.h"

/* Bytes one value of the type takes in a message or a repeated array, as
 * protobuf-c lays them out (enums are int-sized by the generator). */
size_t json_value_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	}
	return 0;
}

int json_type_is_signed(ProtobufCType type)
{
	return type == PROTOBUF_C_TYPE_INT32 || type == PROTOBUF_C_TYPE_SINT32 || type == PROTOBUF_C_TYPE_SFIXED32 ||
	       type == PROTOBUF_C_TYPE_INT64 || type == PROTOBUF_C_TYPE_SINT64 || type == PROTOBUF_C_TYPE_SFIXED64 ||
	       type == PROTOBUF_C_TYPE_ENUM;
}

int json_type_is_64bit(ProtobufCType type)
{
	return json_value_size(type) == 8 && type != PROTOBUF_C_TYPE_DOUBLE;
}

int json_type_is_integer(ProtobufCType type)
{
	return type <= PROTOBUF_C_TYPE_FIXED64;
}

char json_ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

/* Whether key is the JSON name protoc derives from the field name: each
 * underscore dropped and the letter after it upper-cased. */
int json_name_is(const char *name, const char *key)
{
	int upper = 0;
	for (; *name != '\0'; name++) {
		if (*name == '_') {
			upper = 1;
			continue;
		}
		if (*key != (upper ? json_ascii_upper(*name) : *name))
			return 0;
		upper = 0;
		key++;
	}
	return *key == '\0';
}

/* Whether protoc named entry the way it names a map field's entry message:
 * the field name in CamelCase plus "Entry", nested in the message itself. */
static int is_map_entry_name(const char *field_name, const char *entry_name)
{
	int upper = 1;
	for (; *field_name != '\0'; field_name++) {
		if (*field_name == '_') {
			upper = 1;
			continue;
		}
		if (*entry_name != (upper ? json_ascii_upper(*field_name) : *field_name))
			return 0;
		upper = 0;
		entry_name++;
	}
	return strcmp(entry_name, "Entry") == 0;
}

/* protobuf-c keeps no map_entry option, so a map field is recognised by the
 * shape protoc gives it: a repeated message field whose type is nested in the
 * containing message, is named after the field plus "Entry" and has exactly
 * key = 1 and value = 2. A hand-written message of that exact shape and name
 * is indistinguishable, and is then rendered as a map too. */
int json_field_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
		return 0;
	const ProtobufCMessageDescriptor *e = f->descriptor;
	if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 || strcmp(e->fields[0].name, "key") != 0 ||
	    strcmp(e->fields[1].name, "value") != 0 || e->fields[0].label == PROTOBUF_C_LABEL_REPEATED ||
	    e->fields[1].label == PROTOBUF_C_LABEL_REPEATED)
		return 0;
	if (!is_map_entry_name(f->name, e->short_name))
		return 0;
	size_t plen = strlen(parent->name);
	return strncmp(e->name, parent->name, plen) == 0 && e->name[plen] == '.' &&
	       strcmp(e->name + plen + 1, e->short_name) == 0;
}

static void *default_alloc(void *data, size_t size)
{
	(void)data;
	return rpcq_alloc(size);
}

static void default_free(void *data, void *ptr)
{
	(void)data;
	rpcq_free(ptr);
}

/* rpcq_alloc is malloc underneath, so what it allocates is what protobuf-c's
 * own default allocator (free) releases in protobuf_c_message_free_unpacked(msg, NULL). */
ProtobufCAllocator json_default_allocator = {default_alloc, default_free, NULL};

/* The shortest decimal (%g style) that reads back as the same float or
 * double, with a '.' whatever the locale. d is finite. A float is read back
 * the way the parser reads it, as a double rounded to float (which can differ
 * from strtof's single rounding), so that a round trip is exact. */
void json_shortest_real(char *buf, size_t size, double d, int is_float)
{
	for (int prec = is_float ? 6 : 15; prec <= (is_float ? 9 : 17); prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		double back = strtod(buf, NULL);
		if (is_float ? (float)back == (float)d : back == d)
			break;
	}
	for (char *p = buf; *p != '\0'; p++)
		if (*p == ',')
			*p = '.';
}
