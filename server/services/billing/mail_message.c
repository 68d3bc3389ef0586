/*
 * Composing a bill's e-mail as RFC 5322 text (mail.h): addresses checked,
 * display names and subjects as atoms, quoted strings or RFC 2047
 * encoded-words, header lines folded near 78 bytes and never past 998, a
 * Message-ID that is dot-atom-text whatever the bill's id holds, and the
 * slip as a quoted-printable body. Pure: no I/O, no clock, no locale.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "mail.h"
#include "utf8.h"

#define FOLD_AT 78	       /* folding aims at lines of this many bytes (RFC 5322 2.1.1 "should") */
#define WORD_MAX (FOLD_AT - 1) /* a word written as it is: fits a folded line of its own */
#define QP_LINE 76	       /* RFC 2045 6.7 (5) */
#define EWORD_TEXT 63	       /* 75 bytes of encoded-word minus "=?utf-8?q?" and "?=" */
#define DOMAIN_LIMIT 255       /* longest escaped Message-ID domain */

static const char hex[] = "0123456789ABCDEF";

/* A header being written: the bytes of its current line, so that the next
 * token goes on it or on a new folded line. */
typedef struct header {
	strbuf *b;
	size_t line;  /* bytes on the current line */
	size_t start; /* bytes of "Name:" */
} header;

static void header_begin(header *h, strbuf *b, const char *name)
{
	h->b = b;
	strbuf_append(b, name, strlen(name));
	strbuf_putc(b, ':');
	h->start = h->line = strlen(name) + 1;
}

/* One token (which never holds whitespace), after a space or a fold. */
static void header_token(header *h, const char *tok, size_t n)
{
	if (h->line > h->start && h->line + 1 + n > FOLD_AT) {
		strbuf_append(h->b, "\r\n", 2);
		h->line = 0;
	}
	strbuf_putc(h->b, ' ');
	strbuf_append(h->b, tok, n);
	h->line += 1 + n;
}

static void header_end(header *h)
{
	strbuf_append(h->b, "\r\n", 2);
}

/* Tokens of a text separated by single spaces (the text is normalised). */
static void header_words(header *h, const char *text)
{
	const char *p = text;
	while (*p) {
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		header_token(h, p, n);
		p += n;
		if (*p == ' ')
			p++;
	}
}

/* RFC 5322 atext. */
static int is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A copy of text with control characters as spaces, runs of spaces as one
 * and none at either end; NULL when out of memory. */
static char *normalise(const char *text)
{
	size_t n = strlen(text), o = 0;
	char *out = rpcq_alloc(n + 1);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = (char)c;
	}
	while (o > 0 && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
	return out;
}

/* Writes text as Q encoded-words (RFC 2047 4.2, with the restricted set of
 * 5.(3), valid in a phrase and in unstructured text alike), each at most 75
 * bytes and never splitting a UTF-8 sequence. */
static void header_encoded_words(header *h, const char *text)
{
	char word[80];
	size_t w = 0, n = strlen(text);
	/* The first word shares its line with the header's name: shorter. */
	size_t max = EWORD_TEXT;
	if (h->line == h->start && h->start + 1 + 12 + EWORD_TEXT > FOLD_AT)
		max = FOLD_AT - h->start - 1 - 12;
	for (size_t i = 0; i < n;) {
		/* One character: its UTF-8 sequence (text is valid UTF-8). */
		unsigned char c = (unsigned char)text[i];
		size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		char enc[12];
		size_t e = 0;
		for (size_t k = 0; k < len && i + k < n; k++) {
			unsigned char b = (unsigned char)text[i + k];
			if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
			    strchr("!*+-/", b) != NULL) {
				enc[e++] = (char)b;
			} else if (b == ' ') {
				enc[e++] = '_';
			} else {
				enc[e++] = '=';
				enc[e++] = hex[b >> 4];
				enc[e++] = hex[b & 15];
			}
		}
		if (w > 0 && w + e > max) {
			char tok[80];
			int t = snprintf(tok, sizeof(tok), "=?utf-8?q?%.*s?=", (int)w, word);
			header_token(h, tok, (size_t)t);
			w = 0;
			max = EWORD_TEXT;
		}
		memcpy(word + w, enc, e);
		w += e;
		i += len;
	}
	if (w > 0) {
		char tok[80];
		int t = snprintf(tok, sizeof(tok), "=?utf-8?q?%.*s?=", (int)w, word);
		header_token(h, tok, (size_t)t);
	}
}

/* Whether normalised text can go as it is: printable ASCII words no longer
 * than WORD_MAX (a longer one would make a line past FOLD_AT: encoded-words
 * split it) that a reader would not take for an encoded-word; with
 * atoms_only, every byte also atext (a phrase of atoms). */
static int plain_ascii(const char *text, int atoms_only)
{
	if (strstr(text, "=?") != NULL)
		return 0;
	size_t word = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == ' ') {
			word = 0;
			continue;
		}
		if (*p < 0x21 || *p > 0x7e || (atoms_only && !is_atext(*p)) || ++word > WORD_MAX)
			return 0;
	}
	return 1;
}

/* A display name (RFC 5322 phrase) of normalised text: atoms as they are,
 * other ASCII as one quoted string, anything else as encoded-words. */
static void header_phrase(header *h, strbuf *scratch, const char *name)
{
	if (plain_ascii(name, 1)) {
		header_words(h, name);
		return;
	}
	size_t quoted = strlen(name) + 2;
	for (const char *p = name; *p; p++)
		quoted += *p == '"' || *p == '\\';
	if (plain_ascii(name, 0) && quoted <= WORD_MAX) {
		scratch->len = 0;
		strbuf_putc(scratch, '"');
		for (const char *p = name; *p; p++) {
			if (*p == '"' || *p == '\\')
				strbuf_putc(scratch, '\\');
			strbuf_putc(scratch, *p);
		}
		strbuf_putc(scratch, '"');
		if (!scratch->failed)
			header_token(h, scratch->data, scratch->len);
		return;
	}
	header_encoded_words(h, name);
}

int mail_addr_valid(const char *a)
{
	return mail_addr_check(a, strlen(a), 1);
}

size_t mail_mailbox_addr(const char *mailbox, char *buf, size_t cap)
{
	const char *lt = strrchr(mailbox, '<'), *s = mailbox, *e;
	if (lt != NULL) {
		s = lt + 1;
		e = strchr(s, '>');
		if (e == NULL)
			return 0;
	} else {
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	}
	size_t n = (size_t)(e - s);
	if (n == 0 || n >= cap)
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return n;
}

/* The display name part of a mailbox, or "" (into a copy the caller frees;
 * NULL when out of memory). Surrounding double quotes are taken off. */
static char *mailbox_name(const char *mailbox)
{
	const char *lt = strrchr(mailbox, '<');
	size_t n = lt ? (size_t)(lt - mailbox) : 0;
	while (n > 0 && (mailbox[n - 1] == ' ' || mailbox[n - 1] == '\t'))
		n--;
	const char *s = mailbox;
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
		s++, n -= 2;
	return rpcq_strndup(s, n);
}

static uint64_t fnv1a64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	}
	return h;
}

/* Appends id to buf[at..] as dot-atom-text (mail.h, mail_message_key) of at
 * most limit bytes in all, NUL-terminated; returns the new length. buf holds
 * limit + 1 bytes. */
static size_t escape_atom(const char *id, char *buf, size_t at, size_t limit)
{
	size_t o = at, n = strlen(id);
	size_t cut = limit - 18; /* room for "==" and 16 hex digits */
	size_t keep = 0;	 /* length when the output last fitted under cut */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		int literal = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			      c == '-' || (c == '.' && o > 0 && buf[o - 1] != '.' && i + 1 < n);
		size_t need = literal ? 1 : 3;
		if (o + need > limit) {
			/* Too long: the part that fits and a hash of the whole. */
			o = keep;
			o += (size_t)snprintf(buf + o, limit + 1 - o, "==%016llx", (unsigned long long)fnv1a64(id));
			return o;
		}
		if (literal) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '=';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
		if (o <= cut)
			keep = o;
		buf[o] = '\0';
	}
	buf[o] = '\0';
	return o;
}

size_t mail_message_key(const mail_message *m, char *buf)
{
	const char *id = m->id ? m->id : m->debt_id ? m->debt_id : "";
	memcpy(buf, "bill-", 5);
	return escape_atom(id, buf, 5, MAIL_KEY_LIMIT);
}

/* The Message-ID's domain as given, else the From address's, else localhost. */
static const char *id_domain(const mail_message *m, char *addr, size_t cap)
{
	if (m->domain && m->domain[0])
		return m->domain;
	if (mail_mailbox_addr(m->from ? m->from : MAIL_DEFAULT_FROM, addr, cap) > 0) {
		const char *at = strrchr(addr, '@');
		if (at && at[1])
			return at + 1;
	}
	return "localhost";
}

size_t mail_message_id(const mail_message *m, char *buf)
{
	char addr[512], domain[DOMAIN_LIMIT + 1];
	buf[0] = '<';
	size_t n = 1 + mail_message_key(m, buf + 1);
	buf[n++] = '@';
	size_t d = escape_atom(id_domain(m, addr, sizeof(addr)), domain, 0, DOMAIN_LIMIT);
	memcpy(buf + n, domain, d);
	n += d;
	buf[n++] = '>';
	buf[n] = '\0';
	return n;
}

/* 1 if s[0..n) is RFC 5322 dot-atom-text: atext runs joined by single dots. */
static int dot_atom_text(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(is_atext((unsigned char)s[i]) || (s[i] == '.' && s[i + 1] != '.')))
			return 0;
	return 1;
}

/* 1 if id is a Message-ID mail_compose writes as it is: "<" dot-atom-text
 * "@" dot-atom-text ">" (the form mail_message_id makes), shorter than
 * MAIL_MESSAGE_ID_MAX, so that no stored value can break the header. */
static int message_id_valid(const char *id)
{
	size_t n = strlen(id);
	if (n < 5 || n >= MAIL_MESSAGE_ID_MAX || id[0] != '<' || id[n - 1] != '>')
		return 0;
	const char *at = memchr(id, '@', n);
	if (at == NULL)
		return 0;
	size_t left = (size_t)(at - id) - 1, right = n - 2 - left - 1;
	return dot_atom_text(id + 1, left) && dot_atom_text(at + 1, right);
}

/* RFC 5322 date-time in UTC: "Wed, 12 Oct 2022 10:00:00 +0000". */
static void header_date(header *h, int64_t t)
{
	static const char *const wday[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t mo = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (mo <= 2);
	int64_t wd = ((days % 7) + 7) % 7;
	char text[64];
	int n = snprintf(text, sizeof(text), "%s, %02d %s %04lld %02d:%02d:%02d +0000", wday[wd], (int)d, mon[mo - 1],
			 (long long)y, (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
	strbuf_append(h->b, " ", 1);
	strbuf_append(h->b, text, (size_t)n);
}

/* The body as quoted-printable (RFC 2045 6.7): LF and CRLF are line breaks,
 * written CRLF; lines at most 76 bytes with soft breaks; '=', bytes outside
 * printable ASCII, a lone CR and whitespace ending a line as =XX. */
static void body_qp(strbuf *b, const char *body, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *nl = memchr(body + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - body) : n;
		size_t line_end = end;
		if (line_end > i && body[line_end - 1] == '\r')
			line_end--;
		size_t col = 0;
		for (size_t k = i; k < line_end; k++) {
			unsigned char c = (unsigned char)body[k];
			int last = k + 1 == line_end;
			int literal = (c >= 0x21 && c <= 0x7e && c != '=') || ((c == ' ' || c == '\t') && !last);
			size_t need = literal ? 1 : 3;
			if (col + need > (last ? QP_LINE : QP_LINE - 1)) {
				strbuf_append(b, "=\r\n", 3);
				col = 0;
			}
			if (literal) {
				strbuf_putc(b, (char)c);
			} else {
				char e[3] = {'=', hex[c >> 4], hex[c & 15]};
				strbuf_append(b, e, 3);
			}
			col += need;
		}
		strbuf_append(b, "\r\n", 2);
		i = nl ? end + 1 : n;
	}
}

rpcq_status mail_compose(const mail_message *m, strbuf *out, rpcq_error *err)
{
	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	char *from_name = NULL, *to_name = NULL, *subject = NULL, *default_subject = NULL;
	strbuf scratch = STRBUF_INIT;
	const char *from = m->from ? m->from : MAIL_DEFAULT_FROM;
	char from_addr[256], id[MAIL_MESSAGE_ID_MAX];

	if (m->to_addr == NULL || !mail_addr_valid(m->to_addr)) {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "recipient \"%.200s\" is not an address",
					m->to_addr ? m->to_addr : "");
		goto out;
	}
	if (mail_mailbox_addr(from, from_addr, sizeof(from_addr)) == 0 ||
	    !mail_addr_check(from_addr, strlen(from_addr), 0)) {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "From \"%.200s\" has no address", from);
		goto out;
	}
	if (m->message_id != NULL && !message_id_valid(m->message_id)) {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "Message-ID \"%.200s\" is not <id@domain>",
					m->message_id);
		goto out;
	}
	const char *texts[] = {from, m->to_name, m->subject, m->debt_id, m->id, m->body};
	size_t lens[] = {0, 0, 0, 0, 0, m->body_len};
	for (size_t k = 0; k < sizeof(texts) / sizeof(texts[0]); k++) {
		size_t len = k == 5 ? lens[k] : texts[k] ? strlen(texts[k]) : 0;
		if (texts[k] && !utf8_valid(texts[k], len)) {
			result =
				rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "the message's %s is not UTF-8",
					       (const char *[]){"From", "name", "subject", "debt id", "id", "body"}[k]);
			goto out;
		}
	}
	if (m->subject == NULL) {
		const char *debt = m->debt_id ? m->debt_id : "";
		size_t len = strlen(debt) + 32;
		default_subject = rpcq_alloc(len);
		if (default_subject == NULL)
			goto out;
		snprintf(default_subject, len, "Your bill for debt %s", debt);
	}
	from_name = mailbox_name(from);
	char *fn = from_name ? normalise(from_name) : NULL;
	rpcq_free(from_name);
	from_name = fn;
	to_name = normalise(m->to_name ? m->to_name : "");
	subject = normalise(m->subject ? m->subject : default_subject);
	if (from_name == NULL || to_name == NULL || subject == NULL)
		goto out;

	header h;
	header_begin(&h, out, "From");
	if (from_name[0])
		header_phrase(&h, &scratch, from_name);
	scratch.len = 0;
	strbuf_putc(&scratch, '<');
	strbuf_append(&scratch, from_addr, strlen(from_addr));
	strbuf_putc(&scratch, '>');
	if (from_name[0] && !scratch.failed)
		header_token(&h, scratch.data, scratch.len);
	else
		header_token(&h, from_addr, strlen(from_addr));
	header_end(&h);

	header_begin(&h, out, "To");
	if (to_name[0]) {
		header_phrase(&h, &scratch, to_name);
		scratch.len = 0;
		strbuf_putc(&scratch, '<');
		strbuf_append(&scratch, m->to_addr, strlen(m->to_addr));
		strbuf_putc(&scratch, '>');
		if (!scratch.failed)
			header_token(&h, scratch.data, scratch.len);
	} else {
		header_token(&h, m->to_addr, strlen(m->to_addr));
	}
	header_end(&h);

	header_begin(&h, out, "Subject");
	if (plain_ascii(subject, 0))
		header_words(&h, subject);
	else
		header_encoded_words(&h, subject);
	header_end(&h);

	header_begin(&h, out, "Date");
	header_date(&h, m->date);
	header_end(&h);

	header_begin(&h, out, "Message-ID");
	if (m->message_id != NULL)
		header_token(&h, m->message_id, strlen(m->message_id));
	else
		header_token(&h, id, mail_message_id(m, id));
	header_end(&h);

	static const char mime[] = "MIME-Version: 1.0\r\n"
				   "Content-Type: text/plain; charset=utf-8\r\n"
				   "Content-Transfer-Encoding: quoted-printable\r\n"
				   "\r\n";
	strbuf_append(out, mime, sizeof(mime) - 1);
	body_qp(out, m->body ? m->body : "", m->body ? m->body_len : 0);
	if (out->failed || scratch.failed)
		goto out;
	result = RPCQ_OK;
out:
	if (result == RPCQ_RESOURCE_EXHAUSTED)
		rpcq_error_set(err, result, "out of memory composing an e-mail");
	strbuf_fini(&scratch);
	rpcq_free(default_subject);
	rpcq_free(subject);
	rpcq_free(to_name);
	rpcq_free(from_name);
	return result;
}

int mail_error_is_temporary(rpcq_status code)
{
	return code == RPCQ_UNAVAILABLE || code == RPCQ_RESOURCE_EXHAUSTED || code == RPCQ_PERMISSION_DENIED;
}

long long mail_retry_delay_ms(int base_ms, int attempts, unsigned jitter)
{
	long long d = base_ms > 0 ? base_ms : 0;
	for (int i = 1; i < attempts && d > 0 && d < MAIL_RETRY_MAX_MS; i++)
		d *= 2;
	if (d > MAIL_RETRY_MAX_MS)
		d = MAIL_RETRY_MAX_MS;
	return d - (long long)(jitter % (unsigned)(d / 3 + 1));
}
