/*
 * rpcq-stubgen: reads the descriptor set protoc wrote for proto/ and writes
 *   stubs.h / stubs.c  one typed client function per method of every service:
 *                      rpcq_<service>_<method>(client, in, &out, opts, err)
 *   registry.c         the tables behind include/rpcq/registry.h: every
 *                      method (with its idempotency option) and every message
 * so that adding a method or a service to a .proto needs no hand-written
 * client code. C names follow protoc-c's own rules (FullNameToC and
 * FullNameToLower in protoc-c's c_helpers.cc), so the generated code refers to
 * the symbols protoc-c generated.
 *
 * Usage: rpcq-stubgen DESCRIPTOR_SET OUT_DIR
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorSet FileSet;
typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MessageProto;
typedef Google__Protobuf__ServiceDescriptorProto ServiceProto;
typedef Google__Protobuf__MethodDescriptorProto MethodProto;

/* A growable string; generation aborts the program when out of memory. */
struct buf {
	char *data;
	size_t len, cap;
};

static void die(const char *what)
{
	fprintf(stderr, "rpcq-stubgen: %s\n", what);
	exit(1);
}

static void buf_add(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
		if (b->data == NULL)
			die("out of memory");
	}
	memcpy(b->data + b->len, s, n + 1);
	b->len += n;
}

static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("cannot format generated code");
	char *tmp = malloc((size_t)n + 1);
	if (tmp == NULL)
		die("out of memory");
	va_start(ap, fmt);
	vsnprintf(tmp, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, tmp);
	free(tmp);
}

/* protoc-c ToCamel: "foo_bar" -> "FooBar". */
static void to_camel(struct buf *b, const char *s)
{
	int upper = 1;
	for (; *s; s++) {
		char c[2] = {*s, 0};
		if (*s == '_') {
			upper = 1;
			continue;
		}
		if (upper)
			c[0] = (char)toupper((unsigned char)*s);
		upper = 0;
		buf_add(b, c);
	}
}

/* protoc-c CamelToLower: "FooBar" -> "foo_bar". */
static void camel_to_lower(struct buf *b, const char *s)
{
	for (int i = 0; s[i]; i++) {
		char c[3] = {0};
		if (i > 0 && isupper((unsigned char)s[i])) {
			c[0] = '_';
			c[1] = (char)tolower((unsigned char)s[i]);
		} else {
			c[0] = (char)tolower((unsigned char)s[i]);
		}
		buf_add(b, c);
	}
}

/* Applies fn to each dot-separated piece of a full name, joined by "__". */
static char *full_name_to(const char *full, void (*fn)(struct buf *, const char *))
{
	struct buf out = {0};
	char *copy = strdup(full);
	if (copy == NULL)
		die("out of memory");
	char *save = NULL;
	for (char *p = strtok_r(copy, ".", &save); p; p = strtok_r(NULL, ".", &save)) {
		if (out.len)
			buf_add(&out, "__");
		fn(&out, p);
	}
	free(copy);
	if (out.data == NULL)
		buf_add(&out, "");
	return out.data;
}

/* "Rpcq__Vesting__ComputeRequest" for ".rpcq.vesting.ComputeRequest". */
static char *c_type(const char *full)
{
	return full_name_to(full, to_camel);
}

/* "rpcq__vesting__compute_request__descriptor". */
static char *c_descriptor(const char *full)
{
	char *lower = full_name_to(full, camel_to_lower);
	struct buf b = {0};
	buf_addf(&b, "%s__descriptor", lower);
	free(lower);
	return b.data;
}

/* The stub's name: rpcq_<service without "Service", snake>_<method, snake>. */
static char *stub_name(const char *service, const char *method)
{
	struct buf b = {0};
	size_t n = strlen(service);
	char *svc = strdup(service);
	if (svc == NULL)
		die("out of memory");
	if (n > 7 && strcmp(svc + n - 7, "Service") == 0)
		svc[n - 7] = '\0';
	buf_add(&b, "rpcq_");
	camel_to_lower(&b, svc);
	buf_add(&b, "_");
	camel_to_lower(&b, method);
	free(svc);
	return b.data;
}

static int idempotent(const MethodProto *m)
{
	return m->options && m->options->has_idempotency_level &&
	       m->options->idempotency_level !=
		       GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__IDEMPOTENCY_UNKNOWN;
}

static int no_side_effects(const MethodProto *m)
{
	return m->options && m->options->has_idempotency_level &&
	       m->options->idempotency_level == GOOGLE__PROTOBUF__METHOD_OPTIONS__IDEMPOTENCY_LEVEL__NO_SIDE_EFFECTS;
}

/* "rpcq/vesting.proto" -> "rpcq/vesting.pb-c.h". */
static char *pbc_header(const char *proto)
{
	struct buf b = {0};
	size_t n = strlen(proto);
	if (n < 6 || strcmp(proto + n - 6, ".proto") != 0)
		die("proto file name must end in .proto");
	char *base = strndup(proto, n - 6);
	buf_addf(&b, "%s.pb-c.h", base);
	free(base);
	return b.data;
}

/* Messages, nested ones included, as "<descriptor symbol>" lines of the registry. */
static void add_messages(struct buf *reg, const char *scope, MessageProto *const *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const MessageProto *m = msgs[i];
		struct buf full = {0};
		buf_addf(&full, "%s.%s", scope, m->name);
		if (m->options && m->options->has_map_entry && m->options->map_entry) {
			free(full.data);
			continue;
		}
		char *desc = c_descriptor(full.data);
		buf_addf(reg, "\t&%s,\n", desc);
		free(desc);
		add_messages(reg, full.data, m->nested_type, m->n_nested_type);
		free(full.data);
	}
}

static int is_ours(const FileProto *f)
{
	return f->package && strncmp(f->package, "rpcq", 4) == 0 && (f->package[4] == '\0' || f->package[4] == '.');
}

static void write_file(const char *dir, const char *name, const struct buf *b)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
		fprintf(stderr, "rpcq-stubgen: cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "rpcq-stubgen: cannot open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	char chunk[65536];
	size_t n;
	*len = 0;
	unsigned char *data = NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		data = realloc(data, *len + n);
		if (data == NULL)
			die("out of memory");
		memcpy(data + *len, chunk, n);
		*len += n;
	}
	fclose(f);
	return data;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: rpcq-stubgen DESCRIPTOR_SET OUT_DIR\n");
		return 2;
	}
	size_t len;
	unsigned char *data = read_all(argv[1], &len);
	FileSet *set = google__protobuf__file_descriptor_set__unpack(NULL, len, data);
	if (set == NULL)
		die("descriptor set does not decode");

	struct buf h = {0}, c = {0}, reg = {0}, methods = {0}, messages = {0};
	buf_add(&h, "/* Generated by rpcq-stubgen from proto/: typed client stubs. Do not edit. */\n"
		    "#ifndef RPCQ_STUBS_H\n#define RPCQ_STUBS_H\n\n#include <rpcq/client.h>\n");
	buf_add(&c, "/* Generated by rpcq-stubgen from proto/. Do not edit. */\n#include <rpcq/stubs.h>\n\n");
	buf_add(&reg, "/* Generated by rpcq-stubgen from proto/: the registry's tables. Do not edit. */\n"
		      "#include <stddef.h>\n\n#include \"registry_gen.h\"\n");
	size_t nmethods = 0;

	for (size_t i = 0; i < set->n_file; i++) {
		const FileProto *f = set->file[i];
		if (!is_ours(f))
			continue;
		char *hdr = pbc_header(f->name);
		/* stubs.h needs the files that declare services (their imports
		 * come with them); rpc.proto's envelope stays private. */
		if (f->n_service > 0)
			buf_addf(&h, "#include <%s>\n", hdr);
		buf_addf(&reg, "#include <%s>\n", hdr);
		free(hdr);
		char scope[512];
		snprintf(scope, sizeof(scope), ".%s", f->package);
		add_messages(&messages, scope, f->message_type, f->n_message_type);
	}
	buf_add(&h, "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n");

	for (size_t i = 0; i < set->n_file; i++) {
		const FileProto *f = set->file[i];
		if (!is_ours(f))
			continue;
		for (size_t s = 0; s < f->n_service; s++) {
			const ServiceProto *svc = f->service[s];
			struct buf full = {0};
			buf_addf(&full, ".%s.%s", f->package, svc->name);
			char *svc_desc = c_descriptor(full.data);
			buf_addf(&h, "\n/* %s (%s) */\n", full.data + 1, f->name);
			for (size_t m = 0; m < svc->n_method; m++) {
				const MethodProto *mp = svc->method[m];
				if (mp->client_streaming || mp->server_streaming)
					die("streaming methods are not supported: use rpcq streams");
				char *name = stub_name(svc->name, mp->name);
				char *in = c_type(mp->input_type);
				char *out = c_type(mp->output_type);
				char *out_desc = c_descriptor(mp->output_type);
				buf_addf(&h,
					 "\n/* /%s/%s%s. On OK *out is freed with\n"
					 " * protobuf_c_message_free_unpacked(&(*out)->base, NULL). */\n"
					 "RPCQ_API rpcq_status %s(rpcq_client *c, const %s *in, %s **out,\n"
					 "\tconst rpcq_call_options *opts, rpcq_error *err) RPCQ_NODISCARD;\n",
					 full.data + 1, mp->name, idempotent(mp) ? " (idempotent)" : "", name, in, out);
				buf_addf(&c,
					 "rpcq_status %s(rpcq_client *c, const %s *in, %s **out,\n"
					 "\tconst rpcq_call_options *opts, rpcq_error *err)\n{\n"
					 "\treturn rpcq_call(c, \"/%s/%s\", &in->base, &%s,\n"
					 "\t\t(ProtobufCMessage **)out, opts, err);\n}\n\n",
					 name, in, out, full.data + 1, mp->name, out_desc);
				char *in_desc = c_descriptor(mp->input_type);
				buf_addf(&methods, "\t{\"/%s/%s\", &%s, %zu, &%s, &%s, %d, %d},\n", full.data + 1,
					 mp->name, svc_desc, m, in_desc, out_desc, idempotent(mp), no_side_effects(mp));
				free(in_desc);
				nmethods++;
				free(name);
				free(in);
				free(out);
				free(out_desc);
			}
			free(svc_desc);
			free(full.data);
		}
	}
	buf_add(&h, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
	buf_addf(&reg,
		 "\nconst rpcq_method_info rpcq_gen_methods[] = {\n%s};\nconst size_t rpcq_gen_method_count = %zu;\n",
		 methods.data ? methods.data : "", nmethods);
	buf_addf(&reg, "\nconst ProtobufCMessageDescriptor *const rpcq_gen_messages[] = {\n%s\tNULL\n};\n",
		 messages.data ? messages.data : "");

	write_file(argv[2], "stubs.h", &h);
	write_file(argv[2], "stubs.c", &c);
	write_file(argv[2], "registry.c", &reg);
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
	free(data);
	free(h.data);
	free(c.data);
	free(reg.data);
	free(methods.data);
	free(messages.data);
	return 0;
}
