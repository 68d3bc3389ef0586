/*
 * Binary COPY encoding (pgcopy.h).
 */
#include "pgcopy.h"

static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

void pgcopy_header(strbuf *b)
{
	strbuf_append(b, header, sizeof(header));
}

void pgcopy_be(strbuf *b, uint64_t v, int bytes)
{
	char t[8];
	for (int i = 0; i < bytes; i++)
		t[i] = (char)(v >> (8 * (bytes - 1 - i)));
	strbuf_append(b, t, (size_t)bytes);
}

void pgcopy_row(strbuf *b, int n)
{
	pgcopy_be(b, (uint64_t)n, 2);
}

void pgcopy_bytes(strbuf *b, const void *s, size_t n)
{
	pgcopy_be(b, n, 4);
	strbuf_append(b, s, n);
}

void pgcopy_null(strbuf *b)
{
	pgcopy_be(b, 0xffffffffu, 4);
}

void pgcopy_bool(strbuf *b, int v)
{
	pgcopy_be(b, 1, 4);
	pgcopy_be(b, v != 0, 1);
}

void pgcopy_int2(strbuf *b, int16_t v)
{
	pgcopy_be(b, 2, 4);
	pgcopy_be(b, (uint16_t)v, 2);
}

void pgcopy_int4(strbuf *b, int32_t v)
{
	pgcopy_be(b, 4, 4);
	pgcopy_be(b, (uint32_t)v, 4);
}

void pgcopy_int8(strbuf *b, int64_t v)
{
	pgcopy_be(b, 8, 4);
	pgcopy_be(b, (uint64_t)v, 8);
}
