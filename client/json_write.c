/*
 * Protobuf-c message to JSON text (rpcq_message_to_json,
 * rpcq_payload_to_json), following the proto3 JSON mapping. The text is
 * written directly into a growing buffer rather than through jansson,
 * because jansson prints every real with 17 significant digits (0.1 becomes
 * 0.10000000000000001) and a float needs its own shortest form. The writer
 * never fails midway: the first failure (out of memory, nesting too deep) is
 * remembered and every later write is skipped, so the result is either the
 * whole text or NULL.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>
#include <rpcq/json.h>

#include "json_internal.h"

enum { WRITE_OOM = 1, WRITE_TOO_DEEP = 2 };

typedef struct writer {
	char *buf;
	size_t len, cap;
	int failed; /* WRITE_OOM or WRITE_TOO_DEEP: the result is NULL */
	int flags;  /* RPCQ_JSON_* */
	int depth;  /* messages open */
} writer;

static void w_put(writer *w, const char *s, size_t n)
{
	if (w->failed)
		return;
	if (n > SIZE_MAX - w->len - 1) {
		w->failed = WRITE_OOM;
		return;
	}
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap != 0 ? w->cap : 256;
		while (cap < w->len + n + 1)
			cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
		char *buf = rpcq_realloc(w->buf, cap);
		if (buf == NULL) {
			w->failed = WRITE_OOM;
			return;
		}
		w->buf = buf;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

static void w_str(writer *w, const char *s)
{
	w_put(w, s, strlen(s));
}

/* In pretty mode: a new line indented to level. */
static void w_newline(writer *w, int level)
{
	static const char spaces[] = "                                ";
	if (!(w->flags & RPCQ_JSON_PRETTY))
		return;
	w_put(w, "\n", 1);
	for (size_t n = 2 * (size_t)level; n > 0;) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
		w_put(w, spaces, k);
		n -= k;
	}
}

/* Before a member or element: the comma and, in pretty mode, the line. */
static void w_item(writer *w, int *first, int level)
{
	if (!*first)
		w_put(w, ",", 1);
	*first = 0;
	w_newline(w, level + 1);
}

static void w_close(writer *w, int first, int level, char c)
{
	if (!first)
		w_newline(w, level);
	w_put(w, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF, as jansson checks), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return len;
}

/* A JSON string. Bytes that are not UTF-8 (a protobuf-c string field is not
 * checked when unpacked) become U+FFFD, so the output is always valid JSON. */
static void w_string(writer *w, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	w_put(w, "\"", 1);
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
			run++;
		w_put(w, (const char *)s + i, run - i);
		i = run;
		if (i == n)
			break;
		unsigned char c = s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			w_put(w, esc, 2);
			i++;
		} else if (c < 0x20) {
			const char *named = c == '\n'	? "\\n"
					    : c == '\r' ? "\\r"
					    : c == '\t' ? "\\t"
					    : c == '\b' ? "\\b"
					    : c == '\f' ? "\\f"
							: NULL;
			if (named != NULL)
				w_str(w, named);
			else {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				w_str(w, esc);
			}
			i++;
		} else {
			size_t len = utf8_sequence(s + i, n - i);
			if (len == 0) {
				w_put(w, "\xEF\xBF\xBD", 3);
				i++;
			} else {
				w_put(w, (const char *)s + i, len);
				i += len;
			}
		}
	}
	w_put(w, "\"", 1);
}

/* The field's name as a JSON string: protoc's JSON name, or the proto name. */
static void w_field_name(writer *w, const char *name)
{
	w_put(w, "\"", 1);
	if (w->flags & RPCQ_JSON_ORIGINAL_NAMES) {
		w_str(w, name);
	} else {
		int upper = 0;
		for (; *name != '\0'; name++) {
			if (*name == '_') {
				upper = 1;
				continue;
			}
			char c = upper ? json_ascii_upper(*name) : *name;
			w_put(w, &c, 1);
			upper = 0;
		}
	}
	w_put(w, "\"", 1);
}

/* The shortest decimal that reads back as the same float or double;
 * non-finite values as the strings proto3 uses. */
static void w_real(writer *w, double d, int is_float)
{
	if (isnan(d)) {
		w_str(w, "\"NaN\"");
		return;
	}
	if (isinf(d)) {
		w_str(w, d < 0 ? "\"-Infinity\"" : "\"Infinity\"");
		return;
	}
	if (d == 0) {
		/* "-0" would read back as the integer 0 and lose the sign. */
		w_str(w, signbit(d) ? "-0.0" : "0");
		return;
	}
	char buf[48];
	json_shortest_real(buf, sizeof(buf), d, is_float);
	w_str(w, buf);
}

static void w_base64(writer *w, const uint8_t *data, size_t len)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	w_put(w, "\"", 1);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		char q[4] = {digits[(v >> 18) & 63], digits[(v >> 12) & 63], i + 1 < len ? digits[(v >> 6) & 63] : '=',
			     i + 2 < len ? digits[v & 63] : '='};
		w_put(w, q, 4);
	}
	w_put(w, "\"", 1);
}

/* An integer slot as decimal digits (quoted when quote). */
static void w_integer(writer *w, ProtobufCType type, const void *p, int quote)
{
	char buf[32];
	if (json_type_is_64bit(type)) {
		if (json_type_is_signed(type)) {
			int64_t v;
			memcpy(&v, p, 8);
			snprintf(buf, sizeof(buf), quote ? "\"%" PRId64 "\"" : "%" PRId64, v);
		} else {
			uint64_t v;
			memcpy(&v, p, 8);
			snprintf(buf, sizeof(buf), quote ? "\"%" PRIu64 "\"" : "%" PRIu64, v);
		}
	} else if (json_type_is_signed(type)) {
		int32_t v;
		memcpy(&v, p, 4);
		snprintf(buf, sizeof(buf), quote ? "\"%" PRId32 "\"" : "%" PRId32, v);
	} else {
		uint32_t v;
		memcpy(&v, p, 4);
		snprintf(buf, sizeof(buf), quote ? "\"%" PRIu32 "\"" : "%" PRIu32, v);
	}
	w_str(w, buf);
}

static void emit_message(writer *w, const ProtobufCMessage *msg, int level);

/* One value of field f from the slot p. */
static void emit_value(writer *w, const ProtobufCFieldDescriptor *f, const void *p, int level)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		w_integer(w, f->type, p, 0);
		return;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		w_integer(w, f->type, p, 1);
		return;
	case PROTOBUF_C_TYPE_FLOAT: {
		float v;
		memcpy(&v, p, sizeof(v));
		w_real(w, v, 1);
		return;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double v;
		memcpy(&v, p, sizeof(v));
		w_real(w, v, 0);
		return;
	}
	case PROTOBUF_C_TYPE_BOOL: {
		protobuf_c_boolean v;
		memcpy(&v, p, sizeof(v));
		w_str(w, v ? "true" : "false");
		return;
	}
	case PROTOBUF_C_TYPE_ENUM: {
		int32_t v;
		memcpy(&v, p, 4);
		const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
		if (ev != NULL)
			w_string(w, ev->name, strlen(ev->name));
		else
			w_integer(w, PROTOBUF_C_TYPE_INT32, p, 0);
		return;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s;
		memcpy(&s, p, sizeof(s));
		w_string(w, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
		return;
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData b;
		memcpy(&b, p, sizeof(b));
		w_base64(w, b.data, b.data != NULL ? b.len : 0);
		return;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m;
		memcpy(&m, p, sizeof(m));
		if (m != NULL)
			emit_message(w, m, level);
		else
			w_str(w, "{}");
		return;
	}
	}
	w_str(w, "null");
}

/* A map key, for finding repeated keys. */
typedef struct map_key {
	size_t index;
	int is_string, is_signed;
	const char *s;
	int64_t i;
	uint64_t u;
} map_key;

static int map_key_cmp(const void *a, const void *b)
{
	const map_key *x = a, *y = b;
	int c;
	if (x->is_string)
		c = strcmp(x->s, y->s);
	else if (x->is_signed)
		c = (x->i > y->i) - (x->i < y->i);
	else
		c = (x->u > y->u) - (x->u < y->u);
	return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

static void read_map_key(const ProtobufCFieldDescriptor *kf, const ProtobufCMessage *entry, size_t index, map_key *k)
{
	const char *p = (const char *)entry + kf->offset;
	memset(k, 0, sizeof(*k));
	k->index = index;
	if (kf->type == PROTOBUF_C_TYPE_STRING) {
		k->is_string = 1;
		memcpy(&k->s, p, sizeof(k->s));
		if (k->s == NULL)
			k->s = "";
	} else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
		protobuf_c_boolean b;
		memcpy(&b, p, sizeof(b));
		k->u = b != 0;
	} else if (json_type_is_signed(kf->type)) {
		k->is_signed = 1;
		if (json_type_is_64bit(kf->type)) {
			memcpy(&k->i, p, 8);
		} else {
			int32_t v;
			memcpy(&v, p, 4);
			k->i = v;
		}
	} else if (json_type_is_64bit(kf->type)) {
		memcpy(&k->u, p, 8);
	} else {
		uint32_t v;
		memcpy(&v, p, 4);
		k->u = v;
	}
}

/* skip[i] = 1 for every entry whose key comes again later: as on the wire,
 * the last one wins. Sorting keeps this O(n log n) for big maps. */
static int find_repeated_keys(const ProtobufCFieldDescriptor *kf, ProtobufCMessage *const *entries, size_t n,
			      unsigned char *skip)
{
	map_key *keys = rpcq_calloc(n, sizeof(*keys));
	if (keys == NULL)
		return -1;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (entries[i] != NULL)
			read_map_key(kf, entries[i], i, &keys[m++]);
	qsort(keys, m, sizeof(*keys), map_key_cmp);
	for (size_t i = 0; i + 1 < m; i++) {
		map_key a = keys[i], b = keys[i + 1];
		a.index = b.index = 0;
		if (map_key_cmp(&a, &b) == 0)
			skip[keys[i].index] = 1;
	}
	rpcq_free(keys);
	return 0;
}

/* A map field as a JSON object, in entry order, each key once. */
static void emit_map(writer *w, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries, size_t n,
		     int level)
{
	const ProtobufCMessageDescriptor *ed = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
	unsigned char *skip = NULL;
	if (n > 1) {
		skip = rpcq_calloc(n, 1);
		if (skip == NULL || find_repeated_keys(kf, entries, n, skip) != 0) {
			rpcq_free(skip);
			w->failed = WRITE_OOM;
			return;
		}
	}
	int first = 1;
	w_put(w, "{", 1);
	for (size_t i = 0; i < n && !w->failed; i++) {
		if (entries[i] == NULL || (skip != NULL && skip[i]))
			continue;
		const char *e = (const char *)entries[i];
		w_item(w, &first, level);
		if (kf->type == PROTOBUF_C_TYPE_STRING) {
			const char *s;
			memcpy(&s, e + kf->offset, sizeof(s));
			w_string(w, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
		} else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
			protobuf_c_boolean b;
			memcpy(&b, e + kf->offset, sizeof(b));
			w_str(w, b ? "\"true\"" : "\"false\"");
		} else if (json_type_is_integer(kf->type)) {
			w_integer(w, kf->type, e + kf->offset, 1);
		} else {
			w_str(w, "\"\"");
		}
		w_str(w, w->flags & RPCQ_JSON_PRETTY ? ": " : ":");
		emit_value(w, vf, e + vf->offset, level + 1);
	}
	w_close(w, first, level, '}');
	rpcq_free(skip);
}

static void emit_array(writer *w, const ProtobufCFieldDescriptor *f, const char *elems, size_t n, int level)
{
	size_t size = json_value_size(f->type);
	int first = 1;
	w_put(w, "[", 1);
	for (size_t i = 0; i < n && !w->failed; i++) {
		w_item(w, &first, level);
		emit_value(w, f, elems + i * size, level + 1);
	}
	w_close(w, first, level, ']');
}

/* Whether the slot holds its type's zero value: what proto3 omits. */
static int is_zero(ProtobufCType type, const void *p)
{
	switch (type) {
	case PROTOBUF_C_TYPE_FLOAT: {
		float v;
		memcpy(&v, p, sizeof(v));
		return v == 0;
	}
	case PROTOBUF_C_TYPE_DOUBLE: {
		double v;
		memcpy(&v, p, sizeof(v));
		return v == 0;
	}
	case PROTOBUF_C_TYPE_STRING: {
		const char *s;
		memcpy(&s, p, sizeof(s));
		return s == NULL || s[0] == '\0';
	}
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData b;
		memcpy(&b, p, sizeof(b));
		return b.len == 0;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const void *m;
		memcpy(&m, p, sizeof(m));
		return m == NULL;
	}
	default: {
		static const char zeros[8];
		return memcmp(p, zeros, json_value_size(type)) == 0;
	}
	}
}

/* Whether field f of msg appears in the output. */
static int is_emitted(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, int emit_defaults)
{
	const char *m = (const char *)msg;
	const void *slot = m + f->offset;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
		uint32_t which;
		memcpy(&which, m + f->quantifier_offset, sizeof(which));
		return which == f->id;
	}
	if (f->label == PROTOBUF_C_LABEL_REPEATED) {
		size_t n;
		memcpy(&n, m + f->quantifier_offset, sizeof(n));
		return emit_defaults || n > 0;
	}
	if (f->type == PROTOBUF_C_TYPE_MESSAGE) /* has presence: never a default to emit */
		return !is_zero(f->type, slot);
	if (f->label == PROTOBUF_C_LABEL_REQUIRED || emit_defaults)
		return 1;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			const char *s;
			memcpy(&s, slot, sizeof(s));
			return s != NULL && s != f->default_value;
		}
		protobuf_c_boolean has;
		memcpy(&has, m + f->quantifier_offset, sizeof(has));
		return has != 0;
	}
	return !is_zero(f->type, slot);
}

static void emit_message(writer *w, const ProtobufCMessage *msg, int level)
{
	if (w->depth >= JSON_MAX_DEPTH) {
		w->failed = WRITE_TOO_DEEP;
		return;
	}
	w->depth++;
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	int first = 1;
	w_put(w, "{", 1);
	for (unsigned i = 0; i < desc->n_fields && !w->failed; i++) {
		const ProtobufCFieldDescriptor *f = &desc->fields[i];
		if (!is_emitted(msg, f, w->flags & RPCQ_JSON_EMIT_DEFAULTS))
			continue;
		w_item(w, &first, level);
		w_field_name(w, f->name);
		w_str(w, w->flags & RPCQ_JSON_PRETTY ? ": " : ":");
		const char *slot = (const char *)msg + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n;
			const char *elems;
			memcpy(&n, (const char *)msg + f->quantifier_offset, sizeof(n));
			memcpy(&elems, slot, sizeof(elems));
			if (elems == NULL)
				n = 0;
			if (json_field_is_map(desc, f))
				emit_map(w, f, (ProtobufCMessage *const *)(const void *)elems, n, level + 1);
			else
				emit_array(w, f, elems, n, level + 1);
		} else {
			emit_value(w, f, slot, level + 1);
		}
	}
	w_close(w, first, level, '}');
	w->depth--;
}

/* The JSON text of msg, or NULL with *failed set to WRITE_OOM or WRITE_TOO_DEEP. */
static char *write_json(const ProtobufCMessage *msg, int flags, int *failed)
{
	writer w = {.flags = flags};
	emit_message(&w, msg, 0);
	w_put(&w, "", 0);
	*failed = w.failed;
	if (w.failed) {
		rpcq_free(w.buf);
		return NULL;
	}
	w.buf[w.len] = '\0';
	return w.buf;
}

char *rpcq_message_to_json(const ProtobufCMessage *msg, int flags)
{
	assert(msg != NULL && msg->descriptor != NULL);
	int failed;
	return write_json(msg, flags, &failed);
}

/* ---- serialized form ---- */

rpcq_status rpcq_payload_to_json(const ProtobufCMessageDescriptor *desc, const void *data, size_t len, int flags,
				 char **out, rpcq_error *err)
{
	assert(desc != NULL && out != NULL && (data != NULL || len == 0));
	ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &json_default_allocator, len, data);
	if (msg == NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%zu bytes are not a valid %s (or memory ran out)",
				      len, desc->name);
	int failed;
	char *text = write_json(msg, flags, &failed);
	protobuf_c_message_free_unpacked(msg, &json_default_allocator);
	if (text == NULL && failed == WRITE_TOO_DEEP)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "%s nests messages deeper than %d levels", desc->name,
				      JSON_MAX_DEPTH);
	if (text == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory writing a %s as JSON", desc->name);
	*out = text;
	return RPCQ_OK;
}
