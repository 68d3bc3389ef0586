/*
 * multipart/form-data bodies (RFC 7578 over RFC 2046's multipart syntax) read
 * as they arrive: a push parser fed the body in pieces of any size, down to
 * one byte, that calls back with each part's headers, with each piece of the
 * part's data as soon as it is known not to be the start of a delimiter, and
 * at each part's end. It never copies or holds part data: a piece is either
 * a run of the caller's buffer or a prefix of the delimiter that turned out
 * not to be one, so memory is the parser itself (one part's header section,
 * MULTIPART_MAX_HEAD bytes) whatever the size of the file. An HTML form's or
 * `curl -F file=@x.csv`'s upload is streamed through it into the chunked
 * import without the file ever being in memory. Pure: no I/O, no allocation,
 * no globals; one parser per body, used by one thread at a time.
 *
 * The body's grammar (RFC 2046 5.1.1) as this parser takes it:
 *
 *   body      = [preamble CRLF] "--" boundary padding CRLF part
 *               *(CRLF "--" boundary padding CRLF part)
 *               CRLF "--" boundary "--" epilogue
 *   padding   = *(SP / HTAB)          transport padding, skipped
 *   part      = *(header CRLF) CRLF data
 *
 * The CRLF before each "--" boundary belongs to the delimiter, not to the
 * data, so a part's data is exactly the file (a file that ends without a
 * newline keeps it that way). CRLF is required everywhere: every browser and
 * curl send it, and accepting a bare LF before a boundary would let this
 * parser cut a part at a different place than a proxy or a log reader that
 * follows the RFC. As the RFC's note to implementors says, "\r\n--boundary"
 * is a delimiter wherever it appears, whatever follows; if what follows is
 * neither transport padding and CRLF nor "--", the body is malformed (a part
 * may not contain its own delimiter). A preamble is skipped (at most
 * MULTIPART_MAX_PREAMBLE bytes, so a body that is not multipart fails at
 * once rather than after it was all read); the epilogue after the closing
 * delimiter is ignored, however long. A body with the closing delimiter
 * right after the first boundary has no parts and is well-formed.
 *
 * A part's header lines are "Name: value" (names lower-cased here, values
 * trimmed; folded lines are unfolded). Content-Disposition's type and its
 * name= and filename= parameters are parsed: quoted or not, parameter names
 * in any case, the first of a repeated parameter taken. Values are as sent:
 * browsers and curl (since 7.81) percent-encode '"', CR and LF in names and
 * file names (the HTML standard's rule) and leave a backslash literal, so a
 * backslash is not an escape here (`filename="C:\x.csv"` is "C:\x.csv") and
 * "%22" is not decoded. filename* (RFC 5987) is not looked at: RFC 7578 4.2
 * says senders must not use it.
 */
#ifndef RPCQ_MULTIPART_H
#define RPCQ_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/export.h>

/* RFC 2046: a boundary is 1 to 70 characters. */
#define MULTIPART_BOUNDARY_MAX 70
/* One part's header section (its lines and the empty line that ends it);
 * browsers send about 150 bytes. */
#define MULTIPART_MAX_HEAD 8192
/* Header lines in one part (browsers send two). */
#define MULTIPART_MAX_HEADERS 16
/* Bytes before the first boundary line. */
#define MULTIPART_MAX_PREAMBLE 8192

enum multipart_result {
	MULTIPART_OK = 0,      /* every byte given was used */
	MULTIPART_ERROR = -1,  /* the body is malformed: multipart_error says where and why */
	MULTIPART_STOPPED = -2 /* a callback returned non-zero */
};

typedef struct multipart_header {
	const char *name;  /* lower-case, NUL-terminated */
	const char *value; /* leading and trailing blanks removed; folded lines joined */
} multipart_header;

typedef struct multipart_part {
	int index;	 /* 0 for the first part */
	uint64_t offset; /* body offset of the part's first data byte */
	const multipart_header *headers;
	int nheaders;
	/* From Content-Disposition (NULL when it has no such header or
	 * parameter): its type ("form-data"), name= and filename=. A browser
	 * sends filename="" for a file input with no file chosen. */
	const char *disposition;
	const char *name;
	const char *filename;
	const char *content_type; /* the Content-Type header's value, NULL when absent */
} multipart_part;

/* What the parser calls, each with the arg given to multipart_feed; any may
 * be NULL. A callback returns 0 to go on; any other value stops the parser
 * (multipart_feed returns MULTIPART_STOPPED, now and after). on_data is
 * never called with len 0; data points into the caller's buffer or into the
 * parser, valid only during the call. Concatenated, a part's on_data pieces
 * are exactly its content. on_part_end follows when the delimiter after the
 * part is seen. The part given to on_part, and its strings, stay valid until
 * on_part_end returns (the parser's memory: copy what must outlive it). */
typedef struct multipart_callbacks {
	int (*on_part)(void *arg, const multipart_part *part);
	int (*on_data)(void *arg, const char *data, size_t len);
	int (*on_part_end)(void *arg, const multipart_part *part);
} multipart_callbacks;

typedef struct multipart_parser {
	/* Private. The delimiter "\r\n--" boundary, and how many of its
	 * bytes the input has matched so far: those bytes are held back (they
	 * are delim[0..matched), so the parser need not keep them). */
	char delim[4 + MULTIPART_BOUNDARY_MAX + 1];
	size_t delim_len;
	size_t matched;
	int state;
	int held_from_before; /* the bytes matched began in an earlier feed */
	uint64_t offset;      /* bytes fed so far */
	uint64_t head_at;     /* body offset of head[0] */
	multipart_part part;  /* the part being read */
	size_t head_len;      /* bytes of the header section read so far */
	char head[MULTIPART_MAX_HEAD];
	char params[MULTIPART_MAX_HEAD]; /* Content-Disposition's values, unquoted */
	multipart_header headers[MULTIPART_MAX_HEADERS];
	uint64_t error_offset;
	char error[192];
} multipart_parser;

/* Extracts the boundary parameter from a Content-Type header value
 * ("multipart/form-data; boundary=----x", the type and the parameter name
 * in any case, the value a token or a quoted string) into out (cap bytes,
 * NUL-terminated; MULTIPART_BOUNDARY_MAX + 1 always suffice). Returns 0, or
 * -1 with a message in err (errlen bytes) when the type is not multipart (any subtype),
 * the parameters are malformed, there is no boundary or more than one, or
 * the boundary is not 1 to 70 of RFC 2046's characters (letters, digits,
 * space and '()+_,-./:=?, not ending in a space), or does not fit in out. */
int multipart_boundary(const char *content_type, char *out, size_t cap, char *err, size_t errlen) RPCQ_NODISCARD;

/* Prepares mp (the caller's memory; nothing to free) for one body with this
 * boundary (as multipart_boundary gives it). Returns 0, or -1 when the
 * boundary is not a valid one (multipart_error says why; mp then refuses
 * every feed). */
int multipart_init(multipart_parser *mp, const char *boundary) RPCQ_NODISCARD;

/* Feeds the next len bytes of the body, calling cb's functions with arg for
 * what they complete. Returns MULTIPART_OK when all were used,
 * MULTIPART_ERROR when the body is malformed (the first bad byte's offset
 * and why in multipart_error), MULTIPART_STOPPED when a callback stopped it;
 * after either, every later feed returns the same without calling back.
 * Bytes after the closing delimiter are ignored. Does not block. */
int multipart_feed(multipart_parser *mp, const void *data, size_t len, const multipart_callbacks *cb,
		   void *arg) RPCQ_NODISCARD;

/* At the end of the body: 0 when it ended properly (the closing delimiter
 * was seen), -1 otherwise (no boundary line at all, or the body ended inside
 * a part; or an earlier error or stop), with multipart_error saying why. */
int multipart_finish(multipart_parser *mp) RPCQ_NODISCARD;

/* 1 once the closing delimiter has been seen (the rest is epilogue). */
int multipart_done(const multipart_parser *mp);

/* After an error: what and where ("byte 1234: part 2: ..."), and the body
 * offset of the offending byte in *offset (when not NULL). "" when none. */
const char *multipart_error(const multipart_parser *mp, uint64_t *offset);

/* 1 when part is the uploaded file as the gateway takes it: its
 * Content-Disposition has a filename (even "") or is name="file". */
int multipart_is_file(const multipart_part *part);

#endif
