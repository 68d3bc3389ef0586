/*
 * JSON to protobuf-c message (rpcq_json_to_message, rpcq_json_to_payload),
 * following the proto3 JSON mapping. Input is parsed by jansson and then
 * walked against the message descriptor, so every field is checked for type
 * and range and every error names its path ('field "events.rows[2].quantity":
 * expected a string, got a number'). jansson keeps numbers as int64 or
 * double, reads only UTF-8 and refuses duplicate keys and NULs in strings.
 * The message is built in place with the caller's protobuf-c allocator; a
 * partial message is always in a state protobuf_c_message_free_unpacked()
 * can free, which is how every error path cleans up.
 */
#include <assert.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

#include "json_internal.h"

/* Room for the field path of an error (events.rows[2].quantity); a longer
 * path is cut short with "...", the error message has 512 bytes in all. */
#define PATH_CAP 320

/* Smallest magnitude a double rounds to float infinity from: halfway between
 * FLT_MAX and 2^128. Below it, a value past FLT_MAX still rounds to FLT_MAX. */
#define FLOAT_OVERFLOW 0x1.ffffffp127

static const char *const type_names[] = {
	[PROTOBUF_C_TYPE_INT32] = "int32",	 [PROTOBUF_C_TYPE_SINT32] = "sint32",
	[PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
	[PROTOBUF_C_TYPE_SINT64] = "sint64",	 [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
	[PROTOBUF_C_TYPE_UINT32] = "uint32",	 [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
	[PROTOBUF_C_TYPE_UINT64] = "uint64",	 [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
	[PROTOBUF_C_TYPE_FLOAT] = "float",	 [PROTOBUF_C_TYPE_DOUBLE] = "double",
	[PROTOBUF_C_TYPE_BOOL] = "bool",	 [PROTOBUF_C_TYPE_ENUM] = "enum",
	[PROTOBUF_C_TYPE_STRING] = "string",	 [PROTOBUF_C_TYPE_BYTES] = "bytes",
	[PROTOBUF_C_TYPE_MESSAGE] = "message",
};

/* A proto2 optional field of this type has a has_ member (pointer types
 * tell presence by NULL instead). */
static int has_presence_flag(const ProtobufCFieldDescriptor *f)
{
	return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	       f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* ---- parsing: context, paths and errors ---- */

typedef struct parse_ctx {
	ProtobufCAllocator *alloc;
	rpcq_error *err;
	int depth;
	size_t path_len;
	char path[PATH_CAP];
} parse_ctx;

static void *ctx_alloc(parse_ctx *ctx, size_t size)
{
	return ctx->alloc->alloc(ctx->alloc->allocator_data, size);
}

static void ctx_free(parse_ctx *ctx, void *ptr)
{
	if (ptr != NULL)
		ctx->alloc->free(ctx->alloc->allocator_data, ptr);
}

/* Appends a segment to the path; returns the length to restore with path_pop. */
static size_t path_push(parse_ctx *ctx, const char *fmt, ...) RPCQ_PRINTF(2, 3);
static size_t path_push(parse_ctx *ctx, const char *fmt, ...)
{
	size_t mark = ctx->path_len;
	size_t room = sizeof(ctx->path) - ctx->path_len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(ctx->path + ctx->path_len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		ctx->path[mark] = '\0';
	} else if ((size_t)n >= room) {
		ctx->path_len = sizeof(ctx->path) - 1;
		memcpy(ctx->path + ctx->path_len - 3, "...", 3);
	} else {
		ctx->path_len += (size_t)n;
	}
	return mark;
}

static size_t path_push_name(parse_ctx *ctx, const char *name)
{
	return path_push(ctx, ctx->path_len == 0 ? "%s" : ".%s", name);
}

static void path_pop(parse_ctx *ctx, size_t mark)
{
	ctx->path_len = mark;
	ctx->path[mark] = '\0';
}

/* INVALID_ARGUMENT with the current path in front of the message. */
static rpcq_status fail(parse_ctx *ctx, const char *fmt, ...) RPCQ_PRINTF(2, 3);
static rpcq_status fail(parse_ctx *ctx, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (ctx->path_len == 0)
		return rpcq_error_set(ctx->err, RPCQ_INVALID_ARGUMENT, "%s", what);
	return rpcq_error_set(ctx->err, RPCQ_INVALID_ARGUMENT, "field \"%s\": %s", ctx->path, what);
}

static rpcq_status fail_oom(parse_ctx *ctx)
{
	return rpcq_error_set(ctx->err, RPCQ_RESOURCE_EXHAUSTED, "out of memory while parsing JSON");
}

/* "a string", "an object", ... for "expected X, got Y" messages. */
static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

/* The value as it reads in the input, short, for "X is out of range". */
static void json_text(const json_t *v, char *buf, size_t size)
{
	if (json_is_integer(v))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		json_shortest_real(buf, size, json_real_value(v), 0);
	else if (json_is_string(v))
		snprintf(buf, size, "\"%.40s%s\"", json_string_value(v), json_string_length(v) > 40 ? "..." : "");
	else
		snprintf(buf, size, "%s", json_kind(v));
}

/* ---- parsing: scalars ---- */

/* A decimal integer: optional '-', digits. canonical: no leading zero and no
 * "-0", so that one number has one spelling (map keys). Returns 0 on
 * success, -1 when s is not such an integer, -2 when it exceeds 64 bits. */
static int plain_integer(const char *s, size_t n, int canonical, int *neg, uint64_t *mag)
{
	size_t i = 0;
	uint64_t m = 0;
	*neg = 0;
	if (i < n && s[i] == '-') {
		*neg = 1;
		i++;
	}
	if (i == n)
		return -1;
	if (canonical && s[i] == '0' && (n - i > 1 || *neg))
		return -1;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (m > (UINT64_MAX - d) / 10)
			return -2;
		m = m * 10 + d;
	}
	*mag = m;
	return 0;
}

/* A JSON number written inside a string ("1e3", "2.5"), parsed by jansson so
 * the grammar and locale handling are JSON's. NULL when s is no number. */
static json_t *number_in_string(const char *s, size_t n)
{
	if (n == 0 || n > 64 || strspn(s, "0123456789+-.eE") != n)
		return NULL;
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, NULL);
	if (v != NULL && !json_is_number(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* Sign and magnitude of an integer given as a JSON number or, when
 * allow_string, as a string holding one. */
static rpcq_status integer_parts(parse_ctx *ctx, const json_t *v, ProtobufCType type, int allow_string, int *neg,
				 uint64_t *mag)
{
	char text[64];
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		*neg = x < 0;
		*mag = x < 0 ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
		return RPCQ_OK;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d != trunc(d)) {
			json_text(v, text, sizeof(text));
			return fail(ctx, "expected an integer, got %s", text);
		}
		if (fabs(d) >= 18446744073709551616.0) {
			json_text(v, text, sizeof(text));
			return fail(ctx, "%s is out of range for %s", text, type_names[type]);
		}
		*neg = d < 0;
		*mag = (uint64_t)fabs(d);
		return RPCQ_OK;
	}
	if (allow_string && json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		int r = plain_integer(s, n, 0, neg, mag);
		if (r == 0)
			return RPCQ_OK;
		json_text(v, text, sizeof(text));
		if (r == -2)
			return fail(ctx, "%s is out of range for %s", text, type_names[type]);
		json_t *num = number_in_string(s, n);
		if (num == NULL)
			return fail(ctx, "expected an integer, got %s", text);
		rpcq_status st = integer_parts(ctx, num, type, 0, neg, mag);
		json_decref(num);
		return st;
	}
	return fail(ctx, "expected an integer, got %s", json_kind(v));
}

/* Checks sign and magnitude against the range of an integer type and stores
 * the value at dst. */
static rpcq_status store_integer(parse_ctx *ctx, ProtobufCType type, int neg, uint64_t mag, void *dst)
{
	int fits;
	if (type == PROTOBUF_C_TYPE_UINT32 || type == PROTOBUF_C_TYPE_FIXED32)
		fits = (!neg || mag == 0) && mag <= UINT32_MAX;
	else if (type == PROTOBUF_C_TYPE_UINT64 || type == PROTOBUF_C_TYPE_FIXED64)
		fits = !neg || mag == 0;
	else if (json_type_is_64bit(type))
		fits = neg ? mag <= (uint64_t)1 << 63 : mag <= INT64_MAX;
	else
		fits = neg ? mag <= (uint64_t)1 << 31 : mag <= INT32_MAX;
	if (!fits)
		return fail(ctx, "%s%" PRIu64 " is out of range for %s", neg ? "-" : "", mag, type_names[type]);

	if (json_type_is_signed(type)) {
		int64_t s = !neg ? (int64_t)mag : mag == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)mag;
		if (json_type_is_64bit(type))
			memcpy(dst, &s, 8);
		else {
			int32_t s32 = (int32_t)s;
			memcpy(dst, &s32, 4);
		}
	} else if (json_type_is_64bit(type)) {
		memcpy(dst, &mag, 8);
	} else {
		uint32_t u32 = (uint32_t)mag;
		memcpy(dst, &u32, 4);
	}
	return RPCQ_OK;
}

/* A float or double from a number, a numeric string or "NaN", "Infinity",
 * "-Infinity". */
static rpcq_status parse_real(parse_ctx *ctx, const json_t *v, ProtobufCType type, void *dst)
{
	double d;
	if (json_is_number(v)) {
		d = json_number_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		json_t *num;
		if (strcmp(s, "NaN") == 0) {
			d = NAN;
		} else if (strcmp(s, "Infinity") == 0) {
			d = INFINITY;
		} else if (strcmp(s, "-Infinity") == 0) {
			d = -INFINITY;
		} else if ((num = number_in_string(s, json_string_length(v))) != NULL) {
			d = json_number_value(num);
			json_decref(num);
		} else {
			char text[64];
			json_text(v, text, sizeof(text));
			return fail(ctx, "expected a number, got %s", text);
		}
	} else {
		return fail(ctx, "expected a number, got %s", json_kind(v));
	}

	if (type == PROTOBUF_C_TYPE_DOUBLE) {
		memcpy(dst, &d, sizeof(d));
		return RPCQ_OK;
	}
	if (isfinite(d) && fabs(d) > FLT_MAX) {
		if (fabs(d) >= FLOAT_OVERFLOW) {
			char text[48];
			json_shortest_real(text, sizeof(text), d, 0);
			return fail(ctx, "%s is out of range for float", text);
		}
		d = d < 0 ? -FLT_MAX : FLT_MAX;
	}
	float f = (float)d;
	memcpy(dst, &f, sizeof(f));
	return RPCQ_OK;
}

static int base64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe base64, padded or not. */
static rpcq_status parse_bytes(parse_ctx *ctx, const char *s, size_t n, ProtobufCBinaryData *out)
{
	size_t pad = 0;
	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if ((pad > 0 && (n + pad) % 4 != 0) || n % 4 == 1)
		return fail(ctx, "invalid base64: length %zu is not possible", n + pad);
	size_t len = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
	if (len == 0) {
		out->len = 0;
		out->data = NULL;
		return RPCQ_OK;
	}
	uint8_t *data = ctx_alloc(ctx, len);
	if (data == NULL)
		return fail_oom(ctx);
	uint32_t acc = 0;
	size_t bits = 0, o = 0;
	for (size_t i = 0; i < n; i++) {
		int d = base64_digit((unsigned char)s[i]);
		if (d < 0) {
			ctx_free(ctx, data);
			return fail(ctx, "invalid base64: unexpected character at offset %zu", i);
		}
		acc = (acc << 6) | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			data[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	assert(o == len);
	out->len = len;
	out->data = data;
	return RPCQ_OK;
}

static rpcq_status parse_string(parse_ctx *ctx, const char *s, size_t n, char **dst)
{
	char *copy = ctx_alloc(ctx, n + 1);
	if (copy == NULL)
		return fail_oom(ctx);
	memcpy(copy, s, n);
	copy[n] = '\0';
	*dst = copy;
	return RPCQ_OK;
}

static rpcq_status parse_enum(parse_ctx *ctx, const ProtobufCEnumDescriptor *ed, const json_t *v, void *dst)
{
	if (json_is_string(v)) {
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
		if (ev == NULL)
			return fail(ctx, "unknown value \"%.64s\" of enum %s", json_string_value(v), ed->name);
		int32_t x = ev->value;
		memcpy(dst, &x, 4);
		return RPCQ_OK;
	}
	if (!json_is_number(v))
		return fail(ctx, "expected a %s name or number, got %s", ed->name, json_kind(v));
	/* Unknown numbers are kept, as proto3 enums are open. */
	int neg;
	uint64_t mag;
	rpcq_status st = integer_parts(ctx, v, PROTOBUF_C_TYPE_ENUM, 0, &neg, &mag);
	if (st != RPCQ_OK)
		return st;
	return store_integer(ctx, PROTOBUF_C_TYPE_ENUM, neg, mag, dst);
}

static rpcq_status parse_message(parse_ctx *ctx, const ProtobufCMessageDescriptor *desc, const json_t *obj,
				 ProtobufCMessage **slot);

/* One value of a field (singular, element of an array or map value) into
 * the slot dst, which holds zero or the field's default. */
static rpcq_status parse_value(parse_ctx *ctx, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
	if (json_is_null(v))
		return fail(ctx, "null is not a valid %s", type_names[f->type]);

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: {
		int neg;
		uint64_t mag;
		rpcq_status st = integer_parts(ctx, v, f->type, 1, &neg, &mag);
		if (st != RPCQ_OK)
			return st;
		return store_integer(ctx, f->type, neg, mag, dst);
	}
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE:
		return parse_real(ctx, v, f->type, dst);
	case PROTOBUF_C_TYPE_BOOL: {
		if (!json_is_boolean(v))
			return fail(ctx, "expected true or false, got %s", json_kind(v));
		protobuf_c_boolean b = json_is_true(v);
		memcpy(dst, &b, sizeof(b));
		return RPCQ_OK;
	}
	case PROTOBUF_C_TYPE_ENUM:
		return parse_enum(ctx, f->descriptor, v, dst);
	case PROTOBUF_C_TYPE_STRING:
		if (!json_is_string(v))
			return fail(ctx, "expected a string, got %s", json_kind(v));
		return parse_string(ctx, json_string_value(v), json_string_length(v), dst);
	case PROTOBUF_C_TYPE_BYTES:
		if (!json_is_string(v))
			return fail(ctx, "expected a base64 string, got %s", json_kind(v));
		return parse_bytes(ctx, json_string_value(v), json_string_length(v), dst);
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessageDescriptor *md = f->descriptor;
		if (!json_is_object(v))
			return fail(ctx, "expected an object (%s), got %s", md->name, json_kind(v));
		return parse_message(ctx, md, v, dst);
	}
	}
	return fail(ctx, "field of unsupported type %d", (int)f->type);
}

/* A map key (always a JSON string) converted to the key field's type. */
static rpcq_status parse_map_key(parse_ctx *ctx, const ProtobufCFieldDescriptor *kf, const char *key, void *dst)
{
	size_t n = strlen(key);
	if (kf->type == PROTOBUF_C_TYPE_STRING)
		return parse_string(ctx, key, n, dst);
	if (kf->type == PROTOBUF_C_TYPE_BOOL) {
		protobuf_c_boolean b;
		if (strcmp(key, "true") == 0)
			b = 1;
		else if (strcmp(key, "false") == 0)
			b = 0;
		else
			return fail(ctx, "map key must be \"true\" or \"false\"");
		memcpy(dst, &b, sizeof(b));
		return RPCQ_OK;
	}
	if (!json_type_is_integer(kf->type))
		return fail(ctx, "map key of unsupported type %s", type_names[kf->type]);
	int neg;
	uint64_t mag;
	int r = plain_integer(key, n, 1, &neg, &mag);
	if (r == -1)
		return fail(ctx, "map key must be a decimal %s", type_names[kf->type]);
	if (r == -2)
		return fail(ctx, "map key is out of range for %s", type_names[kf->type]);
	return store_integer(ctx, kf->type, neg, mag, dst);
}

/* Marks a proto2 optional scalar present. */
static void set_has(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	if (has_presence_flag(f)) {
		protobuf_c_boolean yes = 1;
		memcpy((char *)msg + f->quantifier_offset, &yes, sizeof(yes));
	}
}

/* A JSON object into a map field: an array of entry messages. The array and
 * each entry are linked into msg before they are filled, so a failure
 * leaves nothing protobuf_c_message_free_unpacked() cannot find. */
static rpcq_status parse_map(parse_ctx *ctx, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
			     const json_t *obj)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
	if (!json_is_object(obj))
		return fail(ctx, "expected an object (map), got %s", json_kind(obj));
	size_t n = json_object_size(obj);
	if (n == 0)
		return RPCQ_OK;
	if (n > SIZE_MAX / sizeof(ProtobufCMessage *))
		return fail_oom(ctx);
	ProtobufCMessage **entries = ctx_alloc(ctx, n * sizeof(*entries));
	if (entries == NULL)
		return fail_oom(ctx);
	memset(entries, 0, n * sizeof(*entries));
	memcpy((char *)msg + f->offset, &entries, sizeof(entries));
	memcpy((char *)msg + f->quantifier_offset, &n, sizeof(n));

	size_t i = 0;
	const char *key;
	const json_t *value;
	json_object_foreach ((json_t *)obj, key, value) {
		size_t mark = path_push(ctx, "[\"%.64s\"]", key);
		ProtobufCMessage *entry = ctx_alloc(ctx, ed->sizeof_message);
		if (entry == NULL)
			return fail_oom(ctx);
		protobuf_c_message_init(ed, entry);
		entries[i++] = entry;
		rpcq_status st = parse_map_key(ctx, kf, key, (char *)entry + kf->offset);
		if (st != RPCQ_OK)
			return st;
		set_has(entry, kf);
		if (json_is_null(value))
			return fail(ctx, "map value must not be null");
		if (vf->type == PROTOBUF_C_TYPE_MESSAGE)
			ctx->depth++;
		st = parse_value(ctx, vf, value, (char *)entry + vf->offset);
		if (vf->type == PROTOBUF_C_TYPE_MESSAGE)
			ctx->depth--;
		if (st != RPCQ_OK)
			return st;
		set_has(entry, vf);
		path_pop(ctx, mark);
	}
	return RPCQ_OK;
}

/* A JSON array into a repeated field. The zeroed array is linked into msg
 * with its full count first: zero elements are what free_unpacked skips. */
static rpcq_status parse_repeated(parse_ctx *ctx, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
				  const json_t *arr)
{
	if (!json_is_array(arr))
		return fail(ctx, "expected an array, got %s", json_kind(arr));
	size_t n = json_array_size(arr);
	if (n == 0)
		return RPCQ_OK;
	size_t size = json_value_size(f->type);
	if (n > SIZE_MAX / size)
		return fail_oom(ctx);
	char *elems = ctx_alloc(ctx, n * size);
	if (elems == NULL)
		return fail_oom(ctx);
	memset(elems, 0, n * size);
	memcpy((char *)msg + f->offset, &elems, sizeof(elems));
	memcpy((char *)msg + f->quantifier_offset, &n, sizeof(n));

	for (size_t i = 0; i < n; i++) {
		size_t mark = path_push(ctx, "[%zu]", i);
		rpcq_status st = parse_value(ctx, f, json_array_get(arr, i), elems + i * size);
		if (st != RPCQ_OK)
			return st;
		path_pop(ctx, mark);
	}
	return RPCQ_OK;
}

/* The JSON value of one field of msg; null leaves the field at its default. */
static rpcq_status parse_field(parse_ctx *ctx, ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
			       const json_t *v)
{
	if (json_is_null(v))
		return RPCQ_OK;
	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return json_field_is_map(msg->descriptor, f) ? parse_map(ctx, msg, f, v)
							     : parse_repeated(ctx, msg, f, v);

	void *slot = (char *)msg + f->offset;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t which;
		memcpy(&which, (char *)msg + f->quantifier_offset, sizeof(which));
		if (which != 0) {
			const ProtobufCFieldDescriptor *other =
				protobuf_c_message_descriptor_get_field(msg->descriptor, which);
			return fail(ctx, "only one of a oneof may be set, and \"%s\" already is",
				    other != NULL ? other->name : "?");
		}
		/* Case first, on a zeroed slot: whatever parse_value leaves there
		 * on failure is then freed with the message. */
		memset(slot, 0, json_value_size(f->type));
		which = f->id;
		memcpy((char *)msg + f->quantifier_offset, &which, sizeof(which));
	}
	set_has(msg, f);
	return parse_value(ctx, f, v, slot);
}

/* The field named key (proto name or JSON name), or NULL. */
static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc, const char *key)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
	if (f != NULL)
		return f;
	for (unsigned i = 0; i < desc->n_fields; i++)
		if (json_name_is(desc->fields[i].name, key))
			return &desc->fields[i];
	return NULL;
}

/* The members of obj into the fields of msg. */
static rpcq_status parse_fields(parse_ctx *ctx, ProtobufCMessage *msg, const json_t *obj)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	rpcq_status result = RPCQ_INVALID_ARGUMENT;
	/* seen[i]: 1 when field i was given as null, 2 when with a value. */
	unsigned char seen_small[64];
	unsigned char *seen = seen_small;
	if (desc->n_fields > sizeof(seen_small)) {
		seen = rpcq_calloc(desc->n_fields, 1);
		if (seen == NULL)
			return fail_oom(ctx);
	} else {
		memset(seen, 0, sizeof(seen_small));
	}

	const char *key;
	const json_t *value;
	json_object_foreach ((json_t *)obj, key, value) {
		const ProtobufCFieldDescriptor *f = find_field(desc, key);
		if (f == NULL) {
			/* Named in the message itself, so the path stops at the
			 * enclosing message: 'field "a.b": unknown field "x" in T'. */
			result = fail(ctx, "unknown field \"%.64s\" in %s", key, desc->name);
			goto out;
		}
		size_t mark = path_push_name(ctx, key);
		size_t i = (size_t)(f - desc->fields);
		if (seen[i]) {
			result = fail(ctx, "is given more than once (as \"%s\" or its JSON name)", f->name);
			goto out;
		}
		seen[i] = json_is_null(value) ? 1 : 2;
		result = parse_field(ctx, msg, f, value);
		if (result != RPCQ_OK)
			goto out;
		path_pop(ctx, mark);
	}

	for (unsigned i = 0; i < desc->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		if (f->label == PROTOBUF_C_LABEL_REQUIRED && seen[i] != 2) {
			result = fail(ctx, "missing required field \"%s\" of %s", f->name, desc->name);
			goto out;
		}
	}
	result = RPCQ_OK;
out:
	if (seen != seen_small)
		rpcq_free(seen);
	return result;
}

/* A new message of type desc at *slot (linked before it is filled, so a
 * failure leaves it to the caller's free), filled from obj. */
static rpcq_status parse_message(parse_ctx *ctx, const ProtobufCMessageDescriptor *desc, const json_t *obj,
				 ProtobufCMessage **slot)
{
	if (ctx->depth >= JSON_MAX_DEPTH)
		return fail(ctx, "messages nested deeper than %d levels", JSON_MAX_DEPTH);
	ProtobufCMessage *msg = ctx_alloc(ctx, desc->sizeof_message);
	if (msg == NULL)
		return fail_oom(ctx);
	if (desc->message_init != NULL) {
		protobuf_c_message_init(desc, msg);
	} else {
		memset(msg, 0, desc->sizeof_message);
		msg->descriptor = desc;
	}
	*slot = msg;
	ctx->depth++;
	rpcq_status st = parse_fields(ctx, msg, obj);
	ctx->depth--;
	return st;
}

rpcq_status rpcq_json_to_message(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
				 ProtobufCAllocator *alloc, ProtobufCMessage **out, rpcq_error *err)
{
	assert(desc != NULL && out != NULL && (json != NULL || len == 0));
	json_error_t jerr;
	json_t *root = json_loadb(json != NULL ? json : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "invalid JSON at line %d, column %d: %s", jerr.line,
				      jerr.column, jerr.text);
	if (!json_is_object(root)) {
		rpcq_status st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "expected a JSON object (%s), got %s",
						desc->name, json_kind(root));
		json_decref(root);
		return st;
	}

	parse_ctx ctx = {.alloc = alloc != NULL ? alloc : &json_default_allocator, .err = err};
	ProtobufCMessage *msg = NULL;
	rpcq_status st = parse_message(&ctx, desc, root, &msg);
	json_decref(root);
	if (st != RPCQ_OK) {
		protobuf_c_message_free_unpacked(msg, ctx.alloc);
		return st;
	}
	*out = msg;
	return RPCQ_OK;
}

/* ---- serialized forms ---- */

rpcq_status rpcq_json_to_payload(const ProtobufCMessageDescriptor *desc, const char *json, size_t len, void **out,
				 size_t *out_len, rpcq_error *err)
{
	assert(out != NULL && out_len != NULL);
	ProtobufCMessage *msg = NULL;
	rpcq_status st = rpcq_json_to_message(desc, json, len, &json_default_allocator, &msg, err);
	if (st != RPCQ_OK)
		return st;
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = rpcq_alloc(n);
	if (buf == NULL) {
		protobuf_c_message_free_unpacked(msg, &json_default_allocator);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory serializing a %s", desc->name);
	}
	size_t packed = protobuf_c_message_pack(msg, buf);
	assert(packed == n);
	(void)packed;
	protobuf_c_message_free_unpacked(msg, &json_default_allocator);
	*out = buf;
	*out_len = n;
	return RPCQ_OK;
}
