/*
 * JSON transcoding (include/rpcq/json.h) as the CLI and the gateway use it:
 * every field type of the test schemas (tests/unit/proto) read from JSON and
 * written back, messages built in C written as JSON and read back to the same
 * bytes, the proto3 JSON rules (names, 64-bit integers as strings, enums by
 * name, base64, maps, oneof, defaults, null), proto2 presence and defaults,
 * and the error a user sees for each kind of bad input. Out of memory at
 * every allocation must fail cleanly and free everything.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <rpcq/alloc.h>
#include <rpcq/error.h>
#include <rpcq/json.h>
#include <rpcq/registry.h>

#include "jsontest.pb-c.h"
#include "jsontest2.pb-c.h"

/* ---- helpers ---- */

static ProtobufCMessage *parse_ok(const ProtobufCMessageDescriptor *desc, const char *json)
{
	ProtobufCMessage *msg = NULL;
	rpcq_error err = {0};
	rpcq_status st = rpcq_json_to_message(desc, json, strlen(json), NULL, &msg, &err);
	if (st != RPCQ_OK)
		fail_msg("parsing %s failed: %s", json, err.message);
	assert_non_null(msg);
	return msg;
}

static Rpcq__Test__All *parse_all(const char *json)
{
	return (Rpcq__Test__All *)parse_ok(&rpcq__test__all__descriptor, json);
}

/* Parsing json must fail with status and exactly the message want. */
static void parse_fails(const ProtobufCMessageDescriptor *desc, const char *json, rpcq_status status, const char *want)
{
	ProtobufCMessage *msg = NULL;
	rpcq_error err = {0};
	rpcq_status st = rpcq_json_to_message(desc, json, strlen(json), NULL, &msg, &err);
	if (st == RPCQ_OK)
		fail_msg("parsing %s succeeded", json);
	assert_null(msg);
	assert_int_equal(st, status);
	assert_int_equal(err.code, status);
	assert_string_equal(err.message, want);
}

/* As parse_fails, for a message that starts with want_prefix. */
static void parse_fails_with_prefix(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
				    const char *want_prefix)
{
	ProtobufCMessage *msg = NULL;
	rpcq_error err = {0};
	rpcq_status st = rpcq_json_to_message(desc, json, len, NULL, &msg, &err);
	if (st == RPCQ_OK)
		fail_msg("parsing %.*s succeeded", (int)len, json);
	assert_null(msg);
	assert_int_equal(st, RPCQ_INVALID_ARGUMENT);
	if (strncmp(err.message, want_prefix, strlen(want_prefix)) != 0)
		fail_msg("error \"%s\" does not start with \"%s\"", err.message, want_prefix);
}

static void all_fails(const char *json, const char *want)
{
	parse_fails(&rpcq__test__all__descriptor, json, RPCQ_INVALID_ARGUMENT, want);
}

/* msg as JSON must be exactly want; frees msg. */
static void prints_as(ProtobufCMessage *msg, int flags, const char *want)
{
	char *json = rpcq_message_to_json(msg, flags);
	assert_non_null(json);
	assert_string_equal(json, want);
	rpcq_free(json);
	protobuf_c_message_free_unpacked(msg, NULL);
}

/* Parsing json and printing it (compact) gives want. */
static void reads_and_prints_as(const ProtobufCMessageDescriptor *desc, const char *json, const char *want)
{
	prints_as(parse_ok(desc, json), 0, want);
}

static void all_reads_and_prints_as(const char *json, const char *want)
{
	reads_and_prints_as(&rpcq__test__all__descriptor, json, want);
}

static uint8_t *pack(const ProtobufCMessage *msg, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(protobuf_c_message_pack(msg, buf), *len);
	return buf;
}

/* msg → JSON → message must give the same wire bytes, and the message read
 * back must print as the same JSON, with every combination of flags (but
 * RPCQ_JSON_EMIT_DEFAULTS when presence, as in proto2, is part of the
 * message: printing defaults makes every field present). */
static void round_trips(const ProtobufCMessage *msg, int has_presence)
{
	static const int flag_sets[] = {0, RPCQ_JSON_PRETTY, RPCQ_JSON_EMIT_DEFAULTS, RPCQ_JSON_ORIGINAL_NAMES,
					RPCQ_JSON_PRETTY | RPCQ_JSON_EMIT_DEFAULTS | RPCQ_JSON_ORIGINAL_NAMES};
	size_t want_len;
	uint8_t *want = pack(msg, &want_len);
	for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		if (has_presence && (flag_sets[i] & RPCQ_JSON_EMIT_DEFAULTS))
			continue;
		char *json = rpcq_message_to_json(msg, flag_sets[i]);
		assert_non_null(json);
		ProtobufCMessage *back = parse_ok(msg->descriptor, json);
		size_t got_len;
		uint8_t *got = pack(back, &got_len);
		if (got_len != want_len || memcmp(got, want, want_len) != 0)
			fail_msg("flags %d: %s read back to different bytes", flag_sets[i], json);
		char *again = rpcq_message_to_json(back, flag_sets[i]);
		assert_non_null(again);
		assert_string_equal(again, json);
		rpcq_free(again);
		free(got);
		protobuf_c_message_free_unpacked(back, NULL);
		rpcq_free(json);
	}
	free(want);
}

/* ---- every field type ---- */

static const char every_scalar_json[] =
	"{\"fInt32\":-42,\"fInt64\":\"-9223372036854775808\",\"fUint32\":4294967295,"
	"\"fUint64\":\"18446744073709551615\",\"fSint32\":-2147483648,\"fSint64\":\"9223372036854775807\","
	"\"fFixed32\":7,\"fFixed64\":\"8\",\"fSfixed32\":-9,\"fSfixed64\":\"-10\",\"fFloat\":0.1,"
	"\"fDouble\":2.5e-300,\"fBool\":true,\"fString\":\"h\xc3\xa9llo\",\"fBytes\":\"AAEC/w==\","
	"\"fEnum\":\"GREEN\",\"fMessage\":{\"value\":1,\"label\":\"x\"}}";

static void test_every_scalar_type_reads_from_json_and_prints_back_the_same(void **state)
{
	(void)state;
	Rpcq__Test__All *m = parse_all(every_scalar_json);
	assert_int_equal(m->f_int32, -42);
	assert_true(m->f_int64 == INT64_MIN);
	assert_true(m->f_uint32 == UINT32_MAX);
	assert_true(m->f_uint64 == UINT64_MAX);
	assert_true(m->f_sint32 == INT32_MIN);
	assert_true(m->f_sint64 == INT64_MAX);
	assert_int_equal(m->f_fixed32, 7);
	assert_int_equal(m->f_fixed64, 8);
	assert_int_equal(m->f_sfixed32, -9);
	assert_true(m->f_sfixed64 == -10);
	assert_true(m->f_float == 0.1f);
	assert_true(m->f_double == 2.5e-300);
	assert_true(m->f_bool);
	assert_string_equal(m->f_string, "h\xc3\xa9llo");
	assert_int_equal(m->f_bytes.len, 4);
	assert_memory_equal(m->f_bytes.data, "\x00\x01\x02\xff", 4);
	assert_int_equal(m->f_enum, RPCQ__TEST__COLOR__GREEN);
	assert_non_null(m->f_message);
	assert_int_equal(m->f_message->value, 1);
	assert_string_equal(m->f_message->label, "x");
	prints_as(&m->base, 0, every_scalar_json);
}

static void test_every_repeated_type_reads_from_json_and_prints_back_the_same(void **state)
{
	(void)state;
	static const char json[] =
		"{\"rInt32\":[1,-2],\"rInt64\":[\"3\",\"-4\"],\"rUint32\":[5],\"rUint64\":[\"6\"],"
		"\"rSint32\":[-7],\"rSint64\":[\"-8\"],\"rFixed32\":[9],\"rFixed64\":[\"10\"],"
		"\"rSfixed32\":[-11],\"rSfixed64\":[\"-12\"],\"rFloat\":[1.5,-0.25],\"rDouble\":[0,\"NaN\"],"
		"\"rBool\":[true,false],\"rString\":[\"a\",\"\"],\"rBytes\":[\"\",\"AQ==\"],"
		"\"rEnum\":[\"RED\",\"COLOR_UNSPECIFIED\"],\"rMessage\":[{},{\"value\":2}],\"rUnpacked\":[0,1]}";
	Rpcq__Test__All *m = parse_all(json);
	assert_int_equal(m->n_r_int32, 2);
	assert_int_equal(m->r_int32[1], -2);
	assert_true(m->r_int64[1] == -4);
	assert_true(m->r_double[0] == 0 && isnan(m->r_double[1]));
	assert_int_equal(m->n_r_bytes, 2);
	assert_int_equal(m->r_bytes[0].len, 0);
	assert_int_equal(m->r_bytes[1].len, 1);
	assert_int_equal(m->r_bytes[1].data[0], 1);
	assert_int_equal(m->r_enum[1], RPCQ__TEST__COLOR__COLOR_UNSPECIFIED);
	assert_int_equal(m->n_r_message, 2);
	assert_int_equal(m->r_message[1]->value, 2);
	prints_as(&m->base, 0, json);
}

static void test_maps_with_every_key_type_read_from_json_and_print_back_the_same(void **state)
{
	(void)state;
	static const char json[] =
		"{\"mStringString\":{\"a\":\"1\",\"\":\"empty\"},\"mInt32Inner\":{\"-5\":{\"value\":5},\"0\":{}},"
		"\"mBoolString\":{\"true\":\"yes\",\"false\":\"no\"},"
		"\"mInt64Int64\":{\"-9223372036854775808\":\"9223372036854775807\"},"
		"\"mUint32Color\":{\"4294967295\":\"BLUE\"},\"mStringBytes\":{\"k\":\"AQI=\"},"
		"\"mSint64Double\":{\"-1\":0.5},\"mFixed32Bool\":{\"0\":false},"
		"\"mUint64Float\":{\"18446744073709551615\":1.5}}";
	Rpcq__Test__All *m = parse_all(json);
	assert_int_equal(m->n_m_string_string, 2);
	assert_string_equal(m->m_string_string[1]->key, "");
	assert_string_equal(m->m_string_string[1]->value, "empty");
	assert_int_equal(m->m_int32_inner[0]->key, -5);
	assert_int_equal(m->m_int32_inner[0]->value->value, 5);
	assert_true(m->m_bool_string[0]->key && !m->m_bool_string[1]->key);
	assert_true(m->m_int64_int64[0]->key == INT64_MIN);
	assert_true(m->m_uint32_color[0]->key == UINT32_MAX);
	assert_int_equal(m->m_uint32_color[0]->value, RPCQ__TEST__COLOR__BLUE);
	assert_true(m->m_uint64_float[0]->key == UINT64_MAX);
	prints_as(&m->base, 0, json);
}

/* Fills every field of a with a value that is not its default. */
static void fill_all(Rpcq__Test__All *a, Rpcq__Test__Inner *inner, Rpcq__Test__Inner *children[2])
{
	static int32_t i32[] = {INT32_MIN, 0, INT32_MAX};
	static int64_t i64[] = {INT64_MIN, 0, INT64_MAX};
	static uint32_t u32[] = {0, 1, UINT32_MAX};
	static uint64_t u64[] = {0, 1, UINT64_MAX};
	static float flt[] = {1e-45f, -3.4028235e38f, 0.3f};
	static double dbl[] = {5e-324, -1.7976931348623157e308, 0.1};
	static protobuf_c_boolean bools[] = {1, 0, 1};
	static char s0[] = "tab\there", s1[] = "\xe2\x82\xac \xf0\x9f\x98\x80", s2[] = "\"quoted\" \\ /";
	static char *strs[] = {s0, s1, s2};
	static uint8_t raw[] = {0, 0xff, 0xfe, 0x80, 0x7f};
	static ProtobufCBinaryData bins[] = {{5, raw}, {1, raw + 1}, {2, raw + 2}};
	static Rpcq__Test__Color colors[] = {RPCQ__TEST__COLOR__BLUE, RPCQ__TEST__COLOR__COLOR_UNSPECIFIED, 42};

	a->f_int32 = INT32_MIN;
	a->f_int64 = INT64_MIN;
	a->f_uint32 = UINT32_MAX;
	a->f_uint64 = UINT64_MAX;
	a->f_sint32 = -1;
	a->f_sint64 = INT64_MAX;
	a->f_fixed32 = 123456789;
	a->f_fixed64 = UINT64_MAX - 1;
	a->f_sfixed32 = INT32_MIN;
	a->f_sfixed64 = INT64_MIN + 1;
	a->f_float = 16777216.0f;
	a->f_double = 1.0 / 3.0;
	a->f_bool = 1;
	a->f_string = s1;
	a->f_bytes = bins[0];
	a->f_enum = RPCQ__TEST__COLOR__RED;
	a->f_message = inner;
	a->n_r_int32 = a->n_r_sint32 = a->n_r_sfixed32 = a->n_r_unpacked = 3;
	a->r_int32 = a->r_sint32 = a->r_sfixed32 = a->r_unpacked = i32;
	a->n_r_int64 = a->n_r_sint64 = a->n_r_sfixed64 = 3;
	a->r_int64 = a->r_sint64 = a->r_sfixed64 = i64;
	a->n_r_uint32 = a->n_r_fixed32 = 3;
	a->r_uint32 = a->r_fixed32 = u32;
	a->n_r_uint64 = a->n_r_fixed64 = 3;
	a->r_uint64 = a->r_fixed64 = u64;
	a->n_r_float = 3;
	a->r_float = flt;
	a->n_r_double = 3;
	a->r_double = dbl;
	a->n_r_bool = 3;
	a->r_bool = bools;
	a->n_r_string = 3;
	a->r_string = strs;
	a->n_r_bytes = 3;
	a->r_bytes = bins;
	a->n_r_enum = 3;
	a->r_enum = colors;
	a->n_r_message = 2;
	a->r_message = children;
	a->choice_case = RPCQ__TEST__ALL__CHOICE_O_INNER;
	a->o_inner = inner;
}

static void test_message_with_every_field_set_round_trips_through_json_to_the_same_bytes(void **state)
{
	(void)state;
	Rpcq__Test__Inner leaf = RPCQ__TEST__INNER__INIT, sibling = RPCQ__TEST__INNER__INIT;
	Rpcq__Test__Inner inner = RPCQ__TEST__INNER__INIT;
	leaf.value = -1;
	leaf.label = "leaf";
	sibling.label = "sibling";
	Rpcq__Test__Inner *children[2] = {&leaf, &sibling};
	inner.value = 7;
	inner.child = &leaf;
	inner.n_children = 2;
	inner.children = children;

	Rpcq__Test__All__MStringStringEntry ss[2] = {RPCQ__TEST__ALL__MSTRING_STRING_ENTRY__INIT,
						     RPCQ__TEST__ALL__MSTRING_STRING_ENTRY__INIT};
	ss[0].key = "k\xc3\xa9y";
	ss[0].value = "v";
	Rpcq__Test__All__MStringStringEntry *ssp[2] = {&ss[0], &ss[1]};
	Rpcq__Test__All__MInt32InnerEntry ii = RPCQ__TEST__ALL__MINT32_INNER_ENTRY__INIT;
	ii.key = INT32_MIN;
	ii.value = &inner;
	Rpcq__Test__All__MInt32InnerEntry *iip[1] = {&ii};
	Rpcq__Test__All__MBoolStringEntry bs[2] = {RPCQ__TEST__ALL__MBOOL_STRING_ENTRY__INIT,
						   RPCQ__TEST__ALL__MBOOL_STRING_ENTRY__INIT};
	bs[0].key = 1;
	bs[0].value = "t";
	Rpcq__Test__All__MBoolStringEntry *bsp[2] = {&bs[0], &bs[1]};
	Rpcq__Test__All__MInt64Int64Entry i64 = RPCQ__TEST__ALL__MINT64_INT64_ENTRY__INIT;
	i64.key = INT64_MAX;
	i64.value = INT64_MIN;
	Rpcq__Test__All__MInt64Int64Entry *i64p[1] = {&i64};
	Rpcq__Test__All__MUint32ColorEntry uc = RPCQ__TEST__ALL__MUINT32_COLOR_ENTRY__INIT;
	uc.key = 9;
	uc.value = RPCQ__TEST__COLOR__GREEN;
	Rpcq__Test__All__MUint32ColorEntry *ucp[1] = {&uc};
	static uint8_t raw[] = {0xde, 0xad};
	Rpcq__Test__All__MStringBytesEntry sb = RPCQ__TEST__ALL__MSTRING_BYTES_ENTRY__INIT;
	sb.key = "b";
	sb.value.len = 2;
	sb.value.data = raw;
	Rpcq__Test__All__MStringBytesEntry *sbp[1] = {&sb};
	Rpcq__Test__All__MSint64DoubleEntry sd = RPCQ__TEST__ALL__MSINT64_DOUBLE_ENTRY__INIT;
	sd.key = -3;
	sd.value = INFINITY;
	Rpcq__Test__All__MSint64DoubleEntry *sdp[1] = {&sd};
	Rpcq__Test__All__MFixed32BoolEntry fb = RPCQ__TEST__ALL__MFIXED32_BOOL_ENTRY__INIT;
	fb.key = UINT32_MAX;
	fb.value = 1;
	Rpcq__Test__All__MFixed32BoolEntry *fbp[1] = {&fb};
	Rpcq__Test__All__MUint64FloatEntry uf = RPCQ__TEST__ALL__MUINT64_FLOAT_ENTRY__INIT;
	uf.key = UINT64_MAX;
	uf.value = -INFINITY;
	Rpcq__Test__All__MUint64FloatEntry *ufp[1] = {&uf};

	Rpcq__Test__All nested = RPCQ__TEST__ALL__INIT;
	nested.f_string = "inside";
	nested.choice_case = RPCQ__TEST__ALL__CHOICE_O_COLOR;
	nested.o_color = RPCQ__TEST__COLOR__COLOR_UNSPECIFIED;

	Rpcq__Test__All a = RPCQ__TEST__ALL__INIT;
	fill_all(&a, &inner, children);
	a.n_m_string_string = 2;
	a.m_string_string = ssp;
	a.n_m_int32_inner = 1;
	a.m_int32_inner = iip;
	a.n_m_bool_string = 2;
	a.m_bool_string = bsp;
	a.n_m_int64_int64 = 1;
	a.m_int64_int64 = i64p;
	a.n_m_uint32_color = 1;
	a.m_uint32_color = ucp;
	a.n_m_string_bytes = 1;
	a.m_string_bytes = sbp;
	a.n_m_sint64_double = 1;
	a.m_sint64_double = sdp;
	a.n_m_fixed32_bool = 1;
	a.m_fixed32_bool = fbp;
	a.n_m_uint64_float = 1;
	a.m_uint64_float = ufp;
	a.recursive = &nested;
	round_trips(&a.base, 0);

	/* Each member of the oneof, each at its default value, which a oneof
	 * still prints: its presence is the information. */
	Rpcq__Test__All o = RPCQ__TEST__ALL__INIT;
	o.choice_case = RPCQ__TEST__ALL__CHOICE_O_STRING;
	o.o_string = "";
	round_trips(&o.base, 0);
	o.choice_case = RPCQ__TEST__ALL__CHOICE_O_INT64;
	o.o_int64 = 0;
	round_trips(&o.base, 0);
	o.choice_case = RPCQ__TEST__ALL__CHOICE_O_BYTES;
	o.o_bytes.len = 0;
	o.o_bytes.data = NULL;
	round_trips(&o.base, 0);
	o.choice_case = RPCQ__TEST__ALL__CHOICE_O_DOUBLE;
	o.o_double = NAN;
	round_trips(&o.base, 0);
	char *json = rpcq_message_to_json(&o.base, 0);
	assert_string_equal(json, "{\"oDouble\":\"NaN\"}");
	rpcq_free(json);
}

static void test_proto2_message_round_trips_with_presence_and_defaults(void **state)
{
	(void)state;
	Rpcq__Test2__Legacy next = RPCQ__TEST2__LEGACY__INIT;
	next.id = "n";
	Rpcq__Test2__Legacy__CountsEntry ce = RPCQ__TEST2__LEGACY__COUNTS_ENTRY__INIT;
	ce.key = "c";
	ce.has_value = 1;
	ce.value = -3;
	Rpcq__Test2__Legacy__CountsEntry *cep[1] = {&ce};
	char *tags[] = {"t1", "t2"};
	Rpcq__Test2__Legacy l = RPCQ__TEST2__LEGACY__INIT;
	l.id = "";
	l.has_count = 1;
	l.count = 0;
	l.has_blob = 1;
	l.has_level = 1;
	l.level = RPCQ__TEST2__LEVEL__LOW;
	l.has_ratio = 1;
	l.ratio = -0.5;
	l.has_flag = 1;
	l.next = &next;
	l.n_counts = 1;
	l.counts = cep;
	l.n_tags = 2;
	l.tags = tags;
	round_trips(&l.base, 1);
	char *json = rpcq_message_to_json(&l.base, 0);
	assert_string_equal(json, "{\"id\":\"\",\"count\":0,\"blob\":\"\",\"level\":\"LOW\",\"ratio\":-0.5,"
				  "\"flag\":false,\"next\":{\"id\":\"n\"},\"counts\":{\"c\":-3},"
				  "\"tags\":[\"t1\",\"t2\"]}");
	rpcq_free(json);
}

/* ---- the proto3 JSON rules ---- */

static void test_integers_are_read_from_numbers_or_strings_and_64_bit_ones_printed_as_strings(void **state)
{
	(void)state;
	all_reads_and_prints_as("{\"fInt64\":9223372036854775807,\"fUint64\":123,\"fSint64\":-5,\"fInt32\":\"-7\","
				"\"fUint32\":\"8\",\"fFixed64\":0}",
				"{\"fInt32\":-7,\"fInt64\":\"9223372036854775807\",\"fUint32\":8,\"fUint64\":\"123\","
				"\"fSint64\":\"-5\"}");
	/* Exponents and integral reals name integers too. */
	all_reads_and_prints_as("{\"fInt32\":1e3,\"fInt64\":\"2.0\",\"fUint32\":\"1E2\",\"fSfixed64\":-3.0}",
				"{\"fInt32\":1000,\"fInt64\":\"2\",\"fUint32\":100,\"fSfixed64\":\"-3\"}");
}

static void test_non_integers_and_out_of_range_integers_are_refused_naming_the_field(void **state)
{
	(void)state;
	all_fails("{\"fInt64\":1.5}", "field \"fInt64\": expected an integer, got 1.5");
	all_fails("{\"fInt32\":\"12abc\"}", "field \"fInt32\": expected an integer, got \"12abc\"");
	all_fails("{\"fInt64\":\" 1\"}", "field \"fInt64\": expected an integer, got \" 1\"");
	all_fails("{\"fUint64\":true}", "field \"fUint64\": expected an integer, got a boolean");
	all_fails("{\"fInt32\":2147483648}", "field \"fInt32\": 2147483648 is out of range for int32");
	all_fails("{\"fSint32\":-2147483649}", "field \"fSint32\": -2147483649 is out of range for sint32");
	all_fails("{\"fUint32\":-1}", "field \"fUint32\": -1 is out of range for uint32");
	all_fails("{\"fFixed32\":\"4294967296\"}", "field \"fFixed32\": 4294967296 is out of range for fixed32");
	all_fails("{\"fUint64\":\"18446744073709551616\"}",
		  "field \"fUint64\": \"18446744073709551616\" is out of range for uint64");
	all_fails("{\"fInt64\":\"-9223372036854775809\"}",
		  "field \"fInt64\": -9223372036854775809 is out of range for int64");
	all_fails("{\"fInt64\":\"9223372036854775808\"}",
		  "field \"fInt64\": 9223372036854775808 is out of range for int64");
	all_fails("{\"fUint64\":1e20}", "field \"fUint64\": 1e+20 is out of range for uint64");
	all_fails("{\"rSfixed32\":[1,2,1e10]}", "field \"rSfixed32[2]\": 10000000000 is out of range for sfixed32");
	/* A JSON number past int64 is refused by the JSON reader itself: such
	 * values travel as strings, as the output writes them. */
	parse_fails_with_prefix(&rpcq__test__all__descriptor, "{\"fUint64\":18446744073709551615}", 32,
				"invalid JSON at line 1");
}

static void test_floats_and_doubles_read_and_print_nan_infinity_and_shortest_forms(void **state)
{
	(void)state;
	Rpcq__Test__All *m = parse_all("{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\",\"rFloat\":[\"Infinity\","
				       "\"-Infinity\",\"1.5\",3.4028235e38,-1e-45],\"rDouble\":[\"NaN\",\"1e300\"]}");
	assert_true(isnan(m->f_float));
	assert_true(isinf(m->f_double) && m->f_double < 0);
	assert_true(isinf(m->r_float[0]) && m->r_float[0] > 0);
	assert_true(m->r_float[2] == 1.5f);
	assert_true(m->r_float[3] == 3.4028235e38f);
	prints_as(&m->base, 0,
		  "{\"fFloat\":\"NaN\",\"fDouble\":\"-Infinity\",\"rFloat\":[\"Infinity\",\"-Infinity\",1.5,"
		  "3.4028235e+38,-1.4013e-45],\"rDouble\":[\"NaN\",1e+300]}");
	all_reads_and_prints_as("{\"fFloat\":0.1,\"fDouble\":0.1,\"rDouble\":[-0.0,123456789012345678]}",
				"{\"fFloat\":0.1,\"fDouble\":0.1,\"rDouble\":[-0.0,1.2345678901234568e+17]}");
	all_fails("{\"fFloat\":1e39}", "field \"fFloat\": 1e+39 is out of range for float");
	all_fails("{\"fDouble\":\"abc\"}", "field \"fDouble\": expected a number, got \"abc\"");
	all_fails("{\"fDouble\":\"nan\"}", "field \"fDouble\": expected a number, got \"nan\"");
	all_fails("{\"rFloat\":[1,{}]}", "field \"rFloat[1]\": expected a number, got an object");
}

static void test_strings_keep_utf8_and_escapes_and_read_surrogate_pairs(void **state)
{
	(void)state;
	Rpcq__Test__All *m =
		parse_all("{\"fString\":\"a\\\"b\\\\c\\n\\t\\u00e9\\ud83d\\ude00\\u0001\\/\\b\\f\\r\\u007f\"}");
	assert_string_equal(m->f_string, "a\"b\\c\n\t\xc3\xa9\xf0\x9f\x98\x80\x01/\b\f\r\x7f");
	prints_as(&m->base, 0, "{\"fString\":\"a\\\"b\\\\c\\n\\t\xc3\xa9\xf0\x9f\x98\x80\\u0001/\\b\\f\\r\x7f\"}");
	/* A lone surrogate and bytes that are not UTF-8 are not text. */
	parse_fails_with_prefix(&rpcq__test__all__descriptor, "{\"fString\":\"\\ud800\"}", 19,
				"invalid JSON at line 1");
	parse_fails_with_prefix(&rpcq__test__all__descriptor, "{\"fString\":\"\xff\"}", 15, "invalid JSON");
	parse_fails_with_prefix(&rpcq__test__all__descriptor, "{\"fString\":\"a\\u0000b\"}", 21, "invalid JSON");
}

static void test_string_bytes_that_are_not_utf8_print_as_replacement_characters(void **state)
{
	(void)state;
	Rpcq__Test__All a = RPCQ__TEST__ALL__INIT;
	a.f_string = "ok\xff\xc3(\xed\xa0\x80!";
	char *json = rpcq_message_to_json(&a.base, 0);
	assert_string_equal(json, "{\"fString\":\"ok\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!\"}");
	rpcq_free(json);
}

static void test_bytes_read_standard_and_url_safe_base64_and_print_standard(void **state)
{
	(void)state;
	static const char *const spellings[] = {"AAEC/w==", "AAEC/w", "AAEC_w==", "AAEC_w"};
	for (size_t i = 0; i < 4; i++) {
		char json[64];
		snprintf(json, sizeof(json), "{\"fBytes\":\"%s\",\"rBytes\":[\"-_8=\"]}", spellings[i]);
		all_reads_and_prints_as(json, "{\"fBytes\":\"AAEC/w==\",\"rBytes\":[\"+/8=\"]}");
	}
	all_reads_and_prints_as("{\"fBytes\":\"YQ\",\"rBytes\":[\"YWI\",\"YWJj\",\"\"]}",
				"{\"fBytes\":\"YQ==\",\"rBytes\":[\"YWI=\",\"YWJj\",\"\"]}");
	all_fails("{\"fBytes\":\"AAA*\"}", "field \"fBytes\": invalid base64: unexpected character at offset 3");
	all_fails("{\"fBytes\":\"A\"}", "field \"fBytes\": invalid base64: length 1 is not possible");
	all_fails("{\"fBytes\":\"AA=\"}", "field \"fBytes\": invalid base64: length 3 is not possible");
	all_fails("{\"fBytes\":\"A=AA\"}", "field \"fBytes\": invalid base64: unexpected character at offset 1");
	all_fails("{\"rBytes\":[\"\",3]}", "field \"rBytes[1]\": expected a base64 string, got a number");
}

static void test_enums_print_by_name_and_read_by_name_or_number(void **state)
{
	(void)state;
	all_reads_and_prints_as("{\"fEnum\":3,\"rEnum\":[\"RED\",2,0,42],\"oColor\":\"BLUE\"}",
				"{\"fEnum\":\"BLUE\",\"rEnum\":[\"RED\",\"GREEN\",\"COLOR_UNSPECIFIED\",42],"
				"\"oColor\":\"BLUE\"}");
	all_fails("{\"fEnum\":\"PURPLE\"}", "field \"fEnum\": unknown value \"PURPLE\" of enum rpcq.test.Color");
	all_fails("{\"fEnum\":\"1\"}", "field \"fEnum\": unknown value \"1\" of enum rpcq.test.Color");
	all_fails("{\"fEnum\":1.5}", "field \"fEnum\": expected an integer, got 1.5");
	all_fails("{\"fEnum\":true}", "field \"fEnum\": expected a rpcq.test.Color name or number, got a boolean");
	all_fails("{\"rEnum\":[1,4294967296]}", "field \"rEnum[1]\": 4294967296 is out of range for enum");
}

static void test_map_keys_must_be_canonical_for_their_type(void **state)
{
	(void)state;
	all_fails("{\"mBoolString\":{\"yes\":\"x\"}}",
		  "field \"mBoolString[\"yes\"]\": map key must be \"true\" or \"false\"");
	all_fails("{\"mInt32Inner\":{\"01\":{}}}", "field \"mInt32Inner[\"01\"]\": map key must be a decimal int32");
	all_fails("{\"mInt32Inner\":{\"-0\":{}}}", "field \"mInt32Inner[\"-0\"]\": map key must be a decimal int32");
	all_fails("{\"mInt32Inner\":{\"2147483648\":{}}}",
		  "field \"mInt32Inner[\"2147483648\"]\": 2147483648 is out of range for int32");
	all_fails("{\"mUint32Color\":{\"-1\":\"RED\"}}",
		  "field \"mUint32Color[\"-1\"]\": -1 is out of range for uint32");
	all_fails("{\"mUint64Float\":{\"99999999999999999999\":1}}",
		  "field \"mUint64Float[\"99999999999999999999\"]\": map key is out of range for uint64");
	all_fails("{\"mStringString\":{\"a\":null}}", "field \"mStringString[\"a\"]\": map value must not be null");
	all_fails("{\"mStringString\":{\"a\":1}}", "field \"mStringString[\"a\"]\": expected a string, got a number");
	all_fails("{\"mStringString\":[]}", "field \"mStringString\": expected an object (map), got an array");
	all_fails("{\"mInt32Inner\":{\"1\":{\"valu\":1}}}",
		  "field \"mInt32Inner[\"1\"]\": unknown field \"valu\" in rpcq.test.Inner");
}

static void test_a_map_with_a_repeated_key_prints_the_last_value_once(void **state)
{
	(void)state;
	Rpcq__Test__All__MStringStringEntry e[3] = {RPCQ__TEST__ALL__MSTRING_STRING_ENTRY__INIT,
						    RPCQ__TEST__ALL__MSTRING_STRING_ENTRY__INIT,
						    RPCQ__TEST__ALL__MSTRING_STRING_ENTRY__INIT};
	e[0].key = "k";
	e[0].value = "first";
	e[1].key = "other";
	e[1].value = "x";
	e[2].key = "k";
	e[2].value = "last";
	Rpcq__Test__All__MStringStringEntry *ep[3] = {&e[0], &e[1], &e[2]};
	Rpcq__Test__All a = RPCQ__TEST__ALL__INIT;
	a.n_m_string_string = 3;
	a.m_string_string = ep;
	char *json = rpcq_message_to_json(&a.base, 0);
	assert_string_equal(json, "{\"mStringString\":{\"other\":\"x\",\"k\":\"last\"}}");
	rpcq_free(json);

	/* The same for signed and unsigned integer keys; an entry with no key
	 * (NULL string) or no message value prints its default. */
	Rpcq__Test__All__MInt64Int64Entry s[3] = {RPCQ__TEST__ALL__MINT64_INT64_ENTRY__INIT,
						  RPCQ__TEST__ALL__MINT64_INT64_ENTRY__INIT,
						  RPCQ__TEST__ALL__MINT64_INT64_ENTRY__INIT};
	s[0].key = -1;
	s[0].value = 1;
	s[1].key = -1;
	s[1].value = 2;
	s[2].key = INT64_MIN;
	Rpcq__Test__All__MInt64Int64Entry *sp[3] = {&s[0], &s[1], &s[2]};
	Rpcq__Test__All__MUint32ColorEntry u[2] = {RPCQ__TEST__ALL__MUINT32_COLOR_ENTRY__INIT,
						   RPCQ__TEST__ALL__MUINT32_COLOR_ENTRY__INIT};
	u[0].key = u[1].key = 7;
	u[1].value = RPCQ__TEST__COLOR__RED;
	Rpcq__Test__All__MUint32ColorEntry *up[2] = {&u[0], &u[1]};
	Rpcq__Test__All__MUint64FloatEntry f[2] = {RPCQ__TEST__ALL__MUINT64_FLOAT_ENTRY__INIT,
						   RPCQ__TEST__ALL__MUINT64_FLOAT_ENTRY__INIT};
	f[0].key = UINT64_MAX;
	f[1].key = 1;
	Rpcq__Test__All__MUint64FloatEntry *fp[2] = {&f[0], &f[1]};
	Rpcq__Test__All__MInt32InnerEntry i = RPCQ__TEST__ALL__MINT32_INNER_ENTRY__INIT;
	i.key = 3;
	Rpcq__Test__All__MInt32InnerEntry *ip[1] = {&i};
	e[0].key = NULL;
	a.n_m_string_string = 1;
	a.n_m_int64_int64 = 3;
	a.m_int64_int64 = sp;
	a.n_m_uint32_color = 2;
	a.m_uint32_color = up;
	a.n_m_uint64_float = 2;
	a.m_uint64_float = fp;
	a.n_m_int32_inner = 1;
	a.m_int32_inner = ip;
	json = rpcq_message_to_json(&a.base, 0);
	assert_string_equal(json, "{\"mStringString\":{\"\":\"first\"},\"mInt32Inner\":{\"3\":{}},"
				  "\"mInt64Int64\":{\"-1\":\"2\",\"-9223372036854775808\":\"0\"},"
				  "\"mUint32Color\":{\"7\":\"RED\"},"
				  "\"mUint64Float\":{\"18446744073709551615\":0,\"1\":0}}");
	rpcq_free(json);
}

static void test_only_one_member_of_a_oneof_may_be_given(void **state)
{
	(void)state;
	all_reads_and_prints_as("{\"oString\":\"\"}", "{\"oString\":\"\"}");
	all_reads_and_prints_as("{\"oString\":null,\"oInt64\":5}", "{\"oInt64\":\"5\"}");
	all_reads_and_prints_as("{\"oInner\":{}}", "{\"oInner\":{}}");
	all_fails("{\"oString\":\"a\",\"oInt64\":\"1\"}",
		  "field \"oInt64\": only one of a oneof may be set, and \"o_string\" already is");
	all_fails("{\"oBytes\":\"*A==\"}", "field \"oBytes\": invalid base64: unexpected character at offset 0");
}

static void test_field_names_print_in_lower_camel_case_or_as_in_the_proto(void **state)
{
	(void)state;
	Rpcq__Test__All *m = parse_all("{\"f_int32\":1,\"rString\":[\"a\"],\"m_bool_string\":{\"true\":\"t\"},"
				       "\"fMessage\":{\"children\":[{\"label\":\"c\"}]}}");
	char *camel = rpcq_message_to_json(&m->base, 0);
	assert_string_equal(camel, "{\"fInt32\":1,\"fMessage\":{\"children\":[{\"label\":\"c\"}]},"
				   "\"rString\":[\"a\"],\"mBoolString\":{\"true\":\"t\"}}");
	prints_as(&m->base, RPCQ_JSON_ORIGINAL_NAMES,
		  "{\"f_int32\":1,\"f_message\":{\"children\":[{\"label\":\"c\"}]},"
		  "\"r_string\":[\"a\"],\"m_bool_string\":{\"true\":\"t\"}}");
	rpcq_free(camel);
	all_fails("{\"fInt32\":1,\"f_int32\":2}",
		  "field \"f_int32\": is given more than once (as \"f_int32\" or its JSON name)");
	all_fails("{\"fint32\":1}", "unknown field \"fint32\" in rpcq.test.All");
	all_fails("{\"FInt32\":1}", "unknown field \"FInt32\" in rpcq.test.All");
}

static void test_unknown_fields_are_refused_naming_the_field_and_the_message(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *echo = rpcq_message_find("rpcq.EchoMessage");
	assert_non_null(echo);
	parse_fails(echo, "{\"payload\":\"\",\"foo\":1}", RPCQ_INVALID_ARGUMENT,
		    "unknown field \"foo\" in rpcq.EchoMessage");
	all_fails("{\"fMessage\":{\"value\":1,\"bogus\":null}}",
		  "field \"fMessage\": unknown field \"bogus\" in rpcq.test.Inner");
	all_fails("{\"rMessage\":[{},{\"child\":{\"x\":1}}]}",
		  "field \"rMessage[1].child\": unknown field \"x\" in rpcq.test.Inner");
}

static void test_wrong_types_are_refused_naming_the_field_path(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *events = rpcq_message_find("rpcq.vesting.Events");
	assert_non_null(events);
	parse_fails(events, "{\"rows\":[{},{},{},{\"quantity\":5}]}", RPCQ_INVALID_ARGUMENT,
		    "field \"rows[3].quantity\": expected a string, got a number");
	all_fails("{\"fString\":[]}", "field \"fString\": expected a string, got an array");
	all_fails("{\"fBool\":\"true\"}", "field \"fBool\": expected true or false, got a string");
	all_fails("{\"fBool\":1}", "field \"fBool\": expected true or false, got a number");
	all_fails("{\"fMessage\":5}", "field \"fMessage\": expected an object (rpcq.test.Inner), got a number");
	all_fails("{\"rInt32\":5}", "field \"rInt32\": expected an array, got a number");
	all_fails("{\"rInt32\":[1,null]}", "field \"rInt32[1]\": null is not a valid int32");
	all_fails("{\"rMessage\":[null]}", "field \"rMessage[0]\": null is not a valid message");
	all_fails("{\"recursive\":{\"recursive\":{\"fMessage\":{\"children\":[{\"value\":\"x\"}]}}}}",
		  "field \"recursive.recursive.fMessage.children[0].value\": expected an integer, got \"x\"");
}

static void test_default_values_are_omitted_unless_asked_for(void **state)
{
	(void)state;
	all_reads_and_prints_as("{\"fInt32\":0,\"fInt64\":\"0\",\"fString\":\"\",\"fBool\":false,\"fBytes\":\"\","
				"\"fEnum\":\"COLOR_UNSPECIFIED\",\"fDouble\":-0.0,\"rInt32\":[],"
				"\"mStringString\":{},\"fMessage\":{}}",
				"{\"fMessage\":{}}");
	Rpcq__Test__All a = RPCQ__TEST__ALL__INIT;
	char *json = rpcq_message_to_json(&a.base, RPCQ_JSON_EMIT_DEFAULTS);
	assert_non_null(json);
	static const char *const present[] = {
		"{\"fInt32\":0,\"fInt64\":\"0\",\"fUint32\":0,\"fUint64\":\"0\",",
		"\"fFloat\":0,\"fDouble\":0,",
		"\"fBool\":false,\"fString\":\"\",\"fBytes\":\"\",\"fEnum\":\"COLOR_UNSPECIFIED\",\"rInt32\":[],",
		"\"rMessage\":[],",
		"\"mStringString\":{},",
		"\"mUint64Float\":{}}"};
	for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
		if (strstr(json, present[i]) == NULL)
			fail_msg("%s lacks %s", json, present[i]);
	/* Unset messages and an unset oneof have no default to show. */
	assert_null(strstr(json, "fMessage"));
	assert_null(strstr(json, "recursive"));
	assert_null(strstr(json, "oString"));
	rpcq_free(json);
}

static void test_proto2_prints_set_fields_and_declared_defaults(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *d = &rpcq__test2__legacy__descriptor;
	Rpcq__Test2__Legacy *l = (Rpcq__Test2__Legacy *)parse_ok(d, "{\"id\":\"x\"}");
	assert_false(l->has_count);
	assert_string_equal(l->name, "anon");
	assert_int_equal(l->level, RPCQ__TEST2__LEVEL__HIGH);
	char *json = rpcq_message_to_json(&l->base, RPCQ_JSON_EMIT_DEFAULTS);
	assert_string_equal(json, "{\"id\":\"x\",\"count\":0,\"name\":\"anon\",\"blob\":\"\",\"level\":\"HIGH\","
				  "\"ratio\":0,\"flag\":false,\"counts\":{},\"tags\":[]}");
	rpcq_free(json);
	prints_as(&l->base, 0, "{\"id\":\"x\"}");

	/* A field given at its default is present in proto2, and prints. */
	l = (Rpcq__Test2__Legacy *)parse_ok(d, "{\"id\":\"x\",\"count\":0,\"name\":\"anon\",\"flag\":false,"
					       "\"level\":\"LOW\",\"counts\":{\"a\":1}}");
	assert_true(l->has_count && l->has_flag && l->has_level);
	assert_true(l->counts[0]->has_value);
	prints_as(&l->base, 0,
		  "{\"id\":\"x\",\"count\":0,\"name\":\"anon\",\"level\":\"LOW\",\"flag\":false,"
		  "\"counts\":{\"a\":1}}");
	reads_and_prints_as(d, "{\"id\":\"x\",\"count\":null,\"next\":null}", "{\"id\":\"x\"}");
}

static void test_proto2_required_fields_must_be_given(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *d = &rpcq__test2__legacy__descriptor;
	parse_fails(d, "{}", RPCQ_INVALID_ARGUMENT, "missing required field \"id\" of rpcq.test2.Legacy");
	parse_fails(d, "{\"id\":null}", RPCQ_INVALID_ARGUMENT, "missing required field \"id\" of rpcq.test2.Legacy");
	parse_fails(d, "{\"id\":\"a\",\"next\":{\"name\":\"b\"}}", RPCQ_INVALID_ARGUMENT,
		    "field \"next\": missing required field \"id\" of rpcq.test2.Legacy");
	parse_fails(d, "{\"id\":\"a\",\"level\":\"MEDIUM\"}", RPCQ_INVALID_ARGUMENT,
		    "field \"level\": unknown value \"MEDIUM\" of enum rpcq.test2.Level");
}

static void test_pretty_output_indents_two_spaces_per_level(void **state)
{
	(void)state;
	ProtobufCMessage *m = parse_ok(&rpcq__test__all__descriptor,
				       "{\"fInt32\":1,\"fMessage\":{\"children\":[{\"label\":\"a\"},{}],"
				       "\"child\":{\"value\":2}},\"rInt32\":[1,2],\"rString\":[],"
				       "\"mStringString\":{\"k\":\"v\"}}");
	prints_as(m, RPCQ_JSON_PRETTY,
		  "{\n"
		  "  \"fInt32\": 1,\n"
		  "  \"fMessage\": {\n"
		  "    \"children\": [\n"
		  "      {\n"
		  "        \"label\": \"a\"\n"
		  "      },\n"
		  "      {}\n"
		  "    ],\n"
		  "    \"child\": {\n"
		  "      \"value\": 2\n"
		  "    }\n"
		  "  },\n"
		  "  \"rInt32\": [\n"
		  "    1,\n"
		  "    2\n"
		  "  ],\n"
		  "  \"mStringString\": {\n"
		  "    \"k\": \"v\"\n"
		  "  }\n"
		  "}");
	Rpcq__Test__All empty = RPCQ__TEST__ALL__INIT;
	char *json = rpcq_message_to_json(&empty.base, RPCQ_JSON_PRETTY);
	assert_string_equal(json, "{}");
	rpcq_free(json);
}

static void test_null_for_any_field_means_its_default(void **state)
{
	(void)state;
	Rpcq__Test__All *m = parse_all("{\"fInt32\":null,\"fMessage\":null,\"rInt32\":null,\"mStringString\":null,"
				       "\"oString\":null,\"fEnum\":null,\"fBytes\":null,\"fString\":null,"
				       "\"recursive\":null}");
	assert_int_equal(m->choice_case, RPCQ__TEST__ALL__CHOICE__NOT_SET);
	assert_null(m->f_message);
	assert_int_equal(m->n_r_int32, 0);
	prints_as(&m->base, 0, "{}");
}

static void test_text_that_is_not_a_json_object_is_refused(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *d = &rpcq__test__all__descriptor;
	parse_fails_with_prefix(d, "", 0, "invalid JSON at line 1");
	parse_fails_with_prefix(d, "{\"fInt32\":1,}", 13, "invalid JSON at line 1, column 13");
	parse_fails_with_prefix(d, "{}\n{}", 5, "invalid JSON at line 2");
	parse_fails_with_prefix(d, "{\"fInt32\":1,\"fInt32\":2}", 23, "invalid JSON");
	parse_fails(d, "[1]", RPCQ_INVALID_ARGUMENT, "expected a JSON object (rpcq.test.All), got an array");
	parse_fails(d, "null", RPCQ_INVALID_ARGUMENT, "expected a JSON object (rpcq.test.All), got null");
	parse_fails(d, "\"x\"", RPCQ_INVALID_ARGUMENT, "expected a JSON object (rpcq.test.All), got a string");
	/* Only len bytes are read: the text need not be NUL-terminated. */
	ProtobufCMessage *m = NULL;
	assert_int_equal(rpcq_json_to_message(d, "{\"fInt32\":5}garbage", 12, NULL, &m, NULL), RPCQ_OK);
	assert_int_equal(((Rpcq__Test__All *)m)->f_int32, 5);
	protobuf_c_message_free_unpacked(m, NULL);
}

/* {"child":{"child":...{}...}} with n messages in all. */
static char *nested_json(int n)
{
	size_t cap = (size_t)n * 12 + 8, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	for (int i = 1; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len, "{\"child\":");
	len += (size_t)snprintf(s + len, cap - len, "{}");
	for (int i = 1; i < n; i++)
		s[len++] = '}';
	s[len] = '\0';
	return s;
}

static void test_messages_nested_deeper_than_64_levels_are_refused(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *d = &rpcq__test__inner__descriptor;
	char *ok = nested_json(64);
	ProtobufCMessage *m = parse_ok(d, ok);
	char *json = rpcq_message_to_json(m, 0);
	assert_string_equal(json, ok);
	rpcq_free(json);
	/* One level more than the limit, built in C, does not print. */
	Rpcq__Test__Inner top = RPCQ__TEST__INNER__INIT;
	top.child = (Rpcq__Test__Inner *)m;
	assert_null(rpcq_message_to_json(&top.base, 0));
	size_t len;
	uint8_t *wire = pack(&top.base, &len);
	char *text = NULL;
	rpcq_error err = {0};
	assert_int_equal(rpcq_payload_to_json(d, wire, len, 0, &text, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "rpcq.test.Inner nests messages deeper than 64 levels");
	assert_null(text);
	free(wire);
	protobuf_c_message_free_unpacked(m, NULL);
	free(ok);

	char *deep = nested_json(65);
	ProtobufCMessage *none = NULL;
	assert_int_equal(rpcq_json_to_message(d, deep, strlen(deep), NULL, &none, &err), RPCQ_INVALID_ARGUMENT);
	assert_null(none);
	assert_true(strstr(err.message, "messages nested deeper than 64 levels") != NULL);
	free(deep);

	/* Deeply nested arrays stop in the JSON reader, without a crash. */
	size_t n = 100000;
	char *arrays = malloc(n + 16);
	assert_non_null(arrays);
	memcpy(arrays, "{\"rInt32\":", 10);
	memset(arrays + 10, '[', n);
	parse_fails_with_prefix(&rpcq__test__all__descriptor, arrays, n + 10, "invalid JSON");
	free(arrays);
}

static void test_a_message_with_more_than_64_fields_reads_and_refuses_repeats(void **state)
{
	(void)state;
	const ProtobufCMessageDescriptor *d = &rpcq__test__wide__descriptor;
	reads_and_prints_as(d, "{\"w70\":1,\"w_1\":2,\"w65\":null}", "{\"w1\":2,\"w70\":1}");
	parse_fails(d, "{\"w_70\":1,\"w70\":2}", RPCQ_INVALID_ARGUMENT,
		    "field \"w70\": is given more than once (as \"w_70\" or its JSON name)");
	parse_fails(d, "{\"w71\":1}", RPCQ_INVALID_ARGUMENT, "unknown field \"w71\" in rpcq.test.Wide");
	ProtobufCMessage *m = NULL;
	rpcq_error err = {0};
	rpcq_alloc_fail_after(1); /* the message, then not the table of fields seen */
	rpcq_status st = rpcq_json_to_message(d, "{\"w1\":1}", 8, NULL, &m, &err);
	rpcq_alloc_fail_after(-1);
	assert_int_equal(st, RPCQ_RESOURCE_EXHAUSTED);
	assert_null(m);
}

/* ---- memory ---- */

/* An allocator over rpcq_alloc (so the fail-after hook applies) that counts
 * the blocks it has out. */
static long live_blocks;

static void *counting_alloc(void *data, size_t size)
{
	(void)data;
	void *p = rpcq_alloc(size);
	if (p != NULL)
		live_blocks++;
	return p;
}

static void counting_free(void *data, void *ptr)
{
	(void)data;
	if (ptr != NULL)
		live_blocks--;
	rpcq_free(ptr);
}

static void test_a_caller_allocator_gets_every_block_back(void **state)
{
	(void)state;
	ProtobufCAllocator counting = {counting_alloc, counting_free, NULL};
	ProtobufCMessage *m = NULL;
	assert_int_equal(rpcq_json_to_message(&rpcq__test__all__descriptor, every_scalar_json,
					      strlen(every_scalar_json), &counting, &m, NULL),
			 RPCQ_OK);
	assert_true(live_blocks > 0);
	protobuf_c_message_free_unpacked(m, &counting);
	assert_int_equal(live_blocks, 0);
}

static void test_out_of_memory_at_any_allocation_fails_cleanly(void **state)
{
	(void)state;
	static const char json[] =
		"{\"fString\":\"s\",\"fBytes\":\"AQID\",\"fMessage\":{\"label\":\"l\",\"children\":[{},{}]},"
		"\"rString\":[\"a\",\"b\"],\"rBytes\":[\"AA==\"],\"mStringString\":{\"k\":\"v\",\"k2\":\"v2\"},"
		"\"mInt32Inner\":{\"1\":{\"label\":\"x\"}},\"oString\":\"o\",\"recursive\":{\"rInt64\":[\"1\"]}}";
	ProtobufCAllocator counting = {counting_alloc, counting_free, NULL};
	int succeeded = 0;
	for (long n = 0; n < 1000 && !succeeded; n++) {
		ProtobufCMessage *m = NULL;
		rpcq_error err = {0};
		rpcq_alloc_fail_after(n);
		rpcq_status st =
			rpcq_json_to_message(&rpcq__test__all__descriptor, json, strlen(json), &counting, &m, &err);
		rpcq_alloc_fail_after(-1);
		if (st == RPCQ_OK) {
			succeeded = 1;
			char *text = NULL;
			for (long k = 0; text == NULL; k++) {
				rpcq_alloc_fail_after(k);
				text = rpcq_message_to_json(m, RPCQ_JSON_PRETTY);
				rpcq_alloc_fail_after(-1);
			}
			rpcq_free(text);
			protobuf_c_message_free_unpacked(m, &counting);
		} else {
			assert_int_equal(st, RPCQ_RESOURCE_EXHAUSTED);
			assert_string_equal(err.message, "out of memory while parsing JSON");
			assert_null(m);
		}
		assert_int_equal(live_blocks, 0);
	}
	assert_true(succeeded);
}

/* ---- serialized forms, as the CLI and gateway use them ---- */

static void test_json_for_a_method_input_becomes_its_payload_and_a_reply_payload_becomes_json(void **state)
{
	(void)state;
	const rpcq_method_info *mi = rpcq_method_find("rpcq.Health/Echo");
	assert_non_null(mi);
	static const char json[] = "{\"payload\":\"aGk=\",\"delay_ms\":5}";
	void *payload = NULL;
	size_t len = 0;
	rpcq_error err = {0};
	assert_int_equal(rpcq_json_to_payload(mi->input, json, strlen(json), &payload, &len, &err), RPCQ_OK);
	assert_int_equal(len, 6);
	assert_memory_equal(payload, "\x0a\x02hi\x10\x05", 6);
	char *text = NULL;
	assert_int_equal(rpcq_payload_to_json(mi->output, payload, len, 0, &text, &err), RPCQ_OK);
	assert_string_equal(text, "{\"payload\":\"aGk=\",\"delayMs\":5}");
	rpcq_free(text);
	rpcq_free(payload);

	text = NULL;
	assert_int_equal(rpcq_payload_to_json(mi->output, NULL, 0, RPCQ_JSON_PRETTY, &text, &err), RPCQ_OK);
	assert_string_equal(text, "{}");
	rpcq_free(text);

	payload = NULL;
	assert_int_equal(rpcq_json_to_payload(mi->input, "{\"payload\":1}", 13, &payload, &len, &err),
			 RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "field \"payload\": expected a base64 string, got a number");
	assert_null(payload);
	text = NULL;
	assert_int_equal(rpcq_payload_to_json(mi->output, "\x0a\x09hi", 4, 0, &text, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "4 bytes are not a valid rpcq.EchoMessage (or memory ran out)");
	assert_null(text);

	/* Out of memory anywhere: a clean failure, nothing set. */
	rpcq_status st = RPCQ_RESOURCE_EXHAUSTED;
	for (long n = 0; st != RPCQ_OK; n++) {
		payload = NULL;
		rpcq_alloc_fail_after(n);
		st = rpcq_json_to_payload(mi->input, json, strlen(json), &payload, &len, &err);
		rpcq_alloc_fail_after(-1);
		if (st != RPCQ_OK) {
			assert_int_equal(st, RPCQ_RESOURCE_EXHAUSTED);
			assert_null(payload);
		}
	}
	st = RPCQ_RESOURCE_EXHAUSTED;
	for (long n = 0; st != RPCQ_OK; n++) {
		text = NULL;
		rpcq_alloc_fail_after(n);
		st = rpcq_payload_to_json(mi->output, payload, len, 0, &text, &err);
		rpcq_alloc_fail_after(-1);
		if (st != RPCQ_OK)
			assert_null(text);
	}
	assert_string_equal(text, "{\"payload\":\"aGk=\",\"delayMs\":5}");
	rpcq_free(text);
	rpcq_free(payload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_scalar_type_reads_from_json_and_prints_back_the_same),
		cmocka_unit_test(test_every_repeated_type_reads_from_json_and_prints_back_the_same),
		cmocka_unit_test(test_maps_with_every_key_type_read_from_json_and_print_back_the_same),
		cmocka_unit_test(test_message_with_every_field_set_round_trips_through_json_to_the_same_bytes),
		cmocka_unit_test(test_proto2_message_round_trips_with_presence_and_defaults),
		cmocka_unit_test(test_integers_are_read_from_numbers_or_strings_and_64_bit_ones_printed_as_strings),
		cmocka_unit_test(test_non_integers_and_out_of_range_integers_are_refused_naming_the_field),
		cmocka_unit_test(test_floats_and_doubles_read_and_print_nan_infinity_and_shortest_forms),
		cmocka_unit_test(test_strings_keep_utf8_and_escapes_and_read_surrogate_pairs),
		cmocka_unit_test(test_string_bytes_that_are_not_utf8_print_as_replacement_characters),
		cmocka_unit_test(test_bytes_read_standard_and_url_safe_base64_and_print_standard),
		cmocka_unit_test(test_enums_print_by_name_and_read_by_name_or_number),
		cmocka_unit_test(test_map_keys_must_be_canonical_for_their_type),
		cmocka_unit_test(test_a_map_with_a_repeated_key_prints_the_last_value_once),
		cmocka_unit_test(test_only_one_member_of_a_oneof_may_be_given),
		cmocka_unit_test(test_field_names_print_in_lower_camel_case_or_as_in_the_proto),
		cmocka_unit_test(test_unknown_fields_are_refused_naming_the_field_and_the_message),
		cmocka_unit_test(test_wrong_types_are_refused_naming_the_field_path),
		cmocka_unit_test(test_default_values_are_omitted_unless_asked_for),
		cmocka_unit_test(test_proto2_prints_set_fields_and_declared_defaults),
		cmocka_unit_test(test_proto2_required_fields_must_be_given),
		cmocka_unit_test(test_pretty_output_indents_two_spaces_per_level),
		cmocka_unit_test(test_null_for_any_field_means_its_default),
		cmocka_unit_test(test_text_that_is_not_a_json_object_is_refused),
		cmocka_unit_test(test_messages_nested_deeper_than_64_levels_are_refused),
		cmocka_unit_test(test_a_message_with_more_than_64_fields_reads_and_refuses_repeats),
		cmocka_unit_test(test_a_caller_allocator_gets_every_block_back),
		cmocka_unit_test(test_out_of_memory_at_any_allocation_fails_cleanly),
		cmocka_unit_test(test_json_for_a_method_input_becomes_its_payload_and_a_reply_payload_becomes_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
