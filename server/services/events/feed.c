/*
 * The provider's feed as a stream (feed.h). expat calls back at each start
 * and end tag; the parser keeps the current base element's ids and title
 * and the current event's fields, and folds every zone into the event's
 * min/max price as soon as it is read, so what is held is one event whatever
 * the feed's size: a 5,000-event × 200-zone feed is 86 MB of XML and never
 * more than one event of it in memory.
 *
 * Shape: the root is eventList or planList and chooses the vocabulary. A
 * base element (base_event, base_plan) may sit anywhere under the root (the
 * real feeds wrap them in <output>), but not inside another base element;
 * its event elements (event, plan) are its children, and their zones are
 * the events' children. Anything else is an unknown element and is ignored
 * with all it holds. The first problem of an event is its skip reason;
 * zones after it are still read (the XML must still be well formed) but
 * change nothing.
 *
 * expat is created without namespace processing and with a handler that
 * stops at any DOCTYPE, so no entity can be declared (no billion laughs, no
 * external entities); an undeclared entity reference is a well-formedness
 * error of expat's own.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <expat.h>

#include <rpcq/alloc.h>

#include "datetime.h"
#include "decimal.h"
#include "feed.h"

#define FEED_REASON_MAX 256
#define FEED_ERR_MAX 256
_Static_assert(DECIMAL_TEXT_MAX <= FEED_PRICE_MAX, "a normalized price fits feed_event's");

/* Bytes of a wrong value quoted in a skip reason. */
#define FEED_QUOTE_MAX 48

/* The names of one vocabulary. */
typedef struct vocabulary {
	const char *root, *base, *base_id, *event, *event_id, *start, *end;
} vocabulary;

static const vocabulary vocab_event = {
	.root = "eventList",
	.base = "base_event",
	.base_id = "base_event_id",
	.event = "event",
	.event_id = "event_id",
	.start = "event_start_date",
	.end = "event_end_date",
};
static const vocabulary vocab_plan = {
	.root = "planList",
	.base = "base_plan",
	.base_id = "base_plan_id",
	.event = "plan",
	.event_id = "plan_id",
	.start = "plan_start_date",
	.end = "plan_end_date",
};

struct feed_parser {
	XML_Parser xp;
	feed_event_fn on_event;
	feed_skip_fn on_skip;
	void *arg;
	const vocabulary *vocab; /* NULL until the root is read */
	unsigned long depth;	 /* of the element being read; the root is 1 */
	int rc;			 /* FEED_OK, or why a handler stopped expat */
	char err[FEED_ERR_MAX];	 /* the message of a handler's FEED_MALFORMED */
	feed_stats stats;

	/* The current base element (base_depth 0: none). */
	unsigned long base_depth;
	int base_online;
	char base_id[FEED_ID_MAX + 1];
	char title[FEED_TITLE_MAX + 1];
	char base_reason[FEED_REASON_MAX]; /* "" when its events may be taken */

	/* The current event element (event_depth 0: none). */
	unsigned long event_depth;
	char event_id[FEED_ID_MAX + 1];
	char reason[FEED_REASON_MAX]; /* its first problem, "" while none */
	unsigned long reason_line;    /* where that is */
	feed_event ev;
	decimal min, max; /* ev's min_price and max_price once set */
};

/* The value of attribute name in expat's NULL-terminated name/value list. */
static const char *attr(const XML_Char **atts, const char *name)
{
	for (size_t i = 0; atts[i] != NULL; i += 2)
		if (atts[i][0] == name[0] && strcmp(atts[i], name) == 0)
			return atts[i + 1];
	return NULL;
}

/* v quoted for a message: at most FEED_QUOTE_MAX bytes, cut at a UTF-8
 * character boundary (expat hands out UTF-8), control bytes as '?'. */
static void quote(const char *v, char *out, size_t outlen)
{
	size_t n = strlen(v), cut = n, k = 0;
	if (cut > FEED_QUOTE_MAX) {
		cut = FEED_QUOTE_MAX;
		while (cut > 0 && ((unsigned char)v[cut] & 0xC0) == 0x80)
			cut--;
	}
	for (size_t i = 0; i < cut && k + 1 < outlen; i++) {
		unsigned char c = (unsigned char)v[i];
		out[k++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
	}
	if (cut < n)
		for (size_t i = 0; i < 3 && k + 1 < outlen; i++)
			out[k++] = '.';
	out[k] = '\0';
}

/* Sets the first skip reason of the current event (later ones are dropped:
 * one reason is enough to find the event in the feed). */
__attribute__((format(printf, 3, 4))) static void set_reason(char *reason, size_t len, const char *fmt, ...)
{
	if (reason[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
}

/* Stops expat with a message in p->err (line and column of the current
 * event), for problems expat itself does not see. */
__attribute__((format(printf, 2, 3))) static void stop_malformed(feed_parser *p, const char *fmt, ...)
{
	char what[FEED_ERR_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(p->err, sizeof p->err, "line %lu, column %lu: %s", (unsigned long)XML_GetCurrentLineNumber(p->xp),
		 (unsigned long)XML_GetCurrentColumnNumber(p->xp) + 1, what);
	p->rc = FEED_MALFORMED;
	XML_StopParser(p->xp, XML_FALSE);
}

/* Copies an id attribute into dst (FEED_ID_MAX + 1 bytes), or sets *reason
 * (ids stay "" then). */
static void take_id(const char *value, const char *name, char *dst, char *reason)
{
	dst[0] = '\0';
	if (value == NULL || value[0] == '\0') {
		set_reason(reason, FEED_REASON_MAX, "attribute \"%s\" is %s", name,
			   value == NULL ? "missing" : "empty");
		return;
	}
	size_t n = strlen(value);
	if (n > FEED_ID_MAX) {
		set_reason(reason, FEED_REASON_MAX, "attribute \"%s\" is longer than %d bytes", name, FEED_ID_MAX);
		return;
	}
	memcpy(dst, value, n + 1);
}

/* A required (or, with optional, an optional) date-time attribute. */
static void take_datetime(const char *value, const char *name, int optional, char dst[FEED_DATETIME_LEN + 1],
			  char *reason)
{
	char q[FEED_QUOTE_MAX + 4];
	dst[0] = '\0';
	if (value == NULL) {
		if (!optional)
			set_reason(reason, FEED_REASON_MAX, "attribute \"%s\" is missing", name);
		return;
	}
	if (datetime_local_parse(value, dst) != 0) {
		dst[0] = '\0';
		quote(value, q, sizeof q);
		set_reason(reason, FEED_REASON_MAX, "attribute \"%s\": \"%s\" is not a date", name, q);
	}
}

static void start_base(feed_parser *p, const XML_Char **atts)
{
	const char *mode = attr(atts, "sell_mode");
	p->base_depth = p->depth;
	p->base_online = mode != NULL && strcmp(mode, "online") == 0;
	p->base_id[0] = '\0';
	p->title[0] = '\0';
	p->base_reason[0] = '\0';
	if (!p->base_online) {
		p->stats.offline_bases++;
		return;
	}
	take_id(attr(atts, p->vocab->base_id), p->vocab->base_id, p->base_id, p->base_reason);
	const char *title = attr(atts, "title");
	if (title == NULL || title[0] == '\0') {
		set_reason(p->base_reason, FEED_REASON_MAX, "attribute \"title\" is %s",
			   title == NULL ? "missing" : "empty");
	} else if (strlen(title) > FEED_TITLE_MAX) {
		set_reason(p->base_reason, FEED_REASON_MAX, "attribute \"title\" is longer than %d bytes",
			   FEED_TITLE_MAX);
	} else {
		memcpy(p->title, title, strlen(title) + 1);
	}
}

static void start_event(feed_parser *p, const XML_Char **atts)
{
	feed_event *ev = &p->ev;
	const vocabulary *v = p->vocab;
	char q[FEED_QUOTE_MAX + 4];

	p->event_depth = p->depth;
	memset(ev, 0, sizeof *ev);
	ev->base_id = p->base_id;
	ev->event_id = p->event_id;
	ev->title = p->title;
	memcpy(p->reason, p->base_reason, sizeof p->reason);

	take_id(attr(atts, v->event_id), v->event_id, p->event_id, p->reason);
	take_datetime(attr(atts, v->start), v->start, 0, ev->starts_at, p->reason);
	take_datetime(attr(atts, v->end), v->end, 0, ev->ends_at, p->reason);
	take_datetime(attr(atts, "sell_from"), "sell_from", 1, ev->sell_from, p->reason);
	take_datetime(attr(atts, "sell_to"), "sell_to", 1, ev->sell_to, p->reason);
	const char *sold_out = attr(atts, "sold_out");
	if (sold_out != NULL && strcmp(sold_out, "true") == 0) {
		ev->sold_out = 1;
	} else if (sold_out != NULL && strcmp(sold_out, "false") != 0) {
		quote(sold_out, q, sizeof q);
		set_reason(p->reason, sizeof p->reason, "attribute \"sold_out\": \"%s\" is neither true nor false", q);
	}
	/* Asked only now (see feed_skip_fn): the start tag's line. */
	p->reason_line = p->reason[0] != '\0' ? (unsigned long)XML_GetCurrentLineNumber(p->xp) : 0;
}

/* 1 when s is a non-negative integer in decimal digits; *positive says
 * whether it is above zero (no conversion, so no overflow: a capacity only
 * matters as zero or not). */
static int parse_capacity(const char *s, int *positive)
{
	*positive = 0;
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (*s != '0')
			*positive = 1;
	}
	return 1;
}

/* The event's first problem, in the zone being read: "zone on line N: "
 * and the message, N (asked of expat only now) its line. */
__attribute__((format(printf, 2, 3))) static void zone_problem(feed_parser *p, const char *fmt, ...)
{
	p->reason_line = (unsigned long)XML_GetCurrentLineNumber(p->xp);
	int n = snprintf(p->reason, sizeof p->reason, "zone on line %lu: ", p->reason_line);
	if (n < 0 || (size_t)n >= sizeof p->reason)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->reason + n, sizeof p->reason - (size_t)n, fmt, ap);
	va_end(ap);
}

/* A zone: counted, and its price folded into the event's lowest and
 * highest when it has tickets left. A zone is read a million times in a
 * large feed, so its two attributes are found in one pass and its price is
 * compared where expat keeps it, and copied only when it is a new lowest or
 * highest. */
static void read_zone(feed_parser *p, const XML_Char **atts)
{
	feed_event *ev = &p->ev;
	char q[FEED_QUOTE_MAX + 4];
	int positive;

	ev->zones++;
	if (p->reason[0] != '\0')
		return;
	const char *capacity = NULL, *value = NULL;
	for (size_t i = 0; atts[i] != NULL; i += 2) {
		const char *name = atts[i];
		if (name[0] == 'c' && strcmp(name, "capacity") == 0)
			capacity = atts[i + 1];
		else if (name[0] == 'p' && strcmp(name, "price") == 0)
			value = atts[i + 1];
	}
	if (capacity == NULL || value == NULL) {
		zone_problem(p, "attribute \"%s\" is missing", capacity == NULL ? "capacity" : "price");
		return;
	}
	if (!parse_capacity(capacity, &positive)) {
		quote(capacity, q, sizeof q);
		zone_problem(p, "attribute \"capacity\": \"%s\" is not a non-negative integer", q);
		return;
	}
	decimal price;
	if (decimal_parse(value, &price) != 0) {
		quote(value, q, sizeof q);
		zone_problem(p, "attribute \"price\": \"%s\" is not a price", q);
		return;
	}
	if (!positive)
		return;
	if (ev->min_price[0] == '\0') {
		/* The first zone with tickets: both ends. */
		p->min = p->max = price;
		decimal_write(&p->min, ev->min_price, sizeof ev->min_price);
		decimal_write(&p->max, ev->max_price, sizeof ev->max_price);
		return;
	}
	if (decimal_compare(&price, &p->min) < 0) {
		p->min = price;
		decimal_write(&p->min, ev->min_price, sizeof ev->min_price);
	} else if (decimal_compare(&price, &p->max) > 0) {
		p->max = price;
		decimal_write(&p->max, ev->max_price, sizeof ev->max_price);
	}
}

static void end_event(feed_parser *p)
{
	p->event_depth = 0;
	if (p->reason[0] != '\0') {
		p->stats.skipped++;
		if (p->on_skip != NULL)
			p->on_skip(p->arg, p->base_id, p->event_id, p->reason_line, p->reason);
		return;
	}
	p->stats.events++;
	if (p->on_event(p->arg, &p->ev) != 0) {
		p->rc = FEED_STOPPED;
		snprintf(p->err, sizeof p->err, "stopped by the caller");
		XML_StopParser(p->xp, XML_FALSE);
	}
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **atts)
{
	feed_parser *p = data;
	p->depth++;
	if (p->rc != FEED_OK)
		return; /* stopped: expat may still call back (an empty element), nothing more is read */
	if (p->depth == 1) {
		if (strcmp(name, vocab_event.root) == 0) {
			p->vocab = &vocab_event;
		} else if (strcmp(name, vocab_plan.root) == 0) {
			p->vocab = &vocab_plan;
		} else {
			char q[FEED_QUOTE_MAX + 4];
			quote(name, q, sizeof q);
			stop_malformed(p, "the root element is <%s>, not eventList or planList", q);
		}
		return;
	}
	if (p->base_depth == 0) {
		if (strcmp(name, p->vocab->base) == 0)
			start_base(p, atts);
		return;
	}
	if (!p->base_online)
		return;
	if (p->event_depth == 0) {
		if (p->depth == p->base_depth + 1 && strcmp(name, p->vocab->event) == 0)
			start_event(p, atts);
		return;
	}
	if (p->depth == p->event_depth + 1 && name[0] == 'z' && strcmp(name, "zone") == 0)
		read_zone(p, atts);
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	feed_parser *p = data;
	(void)name; /* expat has checked that it matches its start tag */
	unsigned long depth = p->depth--;
	if (p->rc != FEED_OK)
		return;
	if (depth == p->event_depth)
		end_event(p);
	else if (depth == p->base_depth)
		p->base_depth = 0;
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal_subset)
{
	feed_parser *p = data;
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	stop_malformed(p, "DOCTYPE declarations are not accepted");
}

static const XML_Memory_Handling_Suite feed_memory = {rpcq_alloc, rpcq_realloc, rpcq_free};

feed_parser *feed_parser_create(feed_event_fn on_event, feed_skip_fn on_skip, void *arg)
{
	feed_parser *p = rpcq_calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->xp = XML_ParserCreate_MM(NULL, &feed_memory, NULL);
	if (p->xp == NULL) {
		rpcq_free(p);
		return NULL;
	}
	p->on_event = on_event;
	p->on_skip = on_skip;
	p->arg = arg;
	XML_SetUserData(p->xp, p);
	XML_SetElementHandler(p->xp, on_start, on_end);
	XML_SetStartDoctypeDeclHandler(p->xp, on_doctype);
	return p;
}

void feed_parser_destroy(feed_parser *p)
{
	if (p == NULL)
		return;
	XML_ParserFree(p->xp);
	rpcq_free(p);
}

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* The parse's result once expat has returned an error. */
static int failed(feed_parser *p)
{
	enum XML_Error code = XML_GetErrorCode(p->xp);
	if (p->rc != FEED_OK)
		return p->rc; /* a handler stopped it, with its message */
	if (code == XML_ERROR_NO_MEMORY) {
		snprintf(p->err, sizeof p->err, "out of memory");
		p->rc = FEED_NOMEM;
		return p->rc;
	}
	snprintf(p->err, sizeof p->err, "line %lu, column %lu: %s", (unsigned long)XML_GetCurrentLineNumber(p->xp),
		 (unsigned long)XML_GetCurrentColumnNumber(p->xp) + 1, XML_ErrorString(code));
	p->rc = FEED_MALFORMED;
	return p->rc;
}

int feed_parser_feed(feed_parser *p, const char *data, size_t len, int final, char *err, size_t errlen)
{
	set_err(err, errlen, "");
	if (p->rc != FEED_OK) {
		/* Once failed or stopped, a parser stays so. */
		set_err(err, errlen, p->err);
		return p->rc;
	}
	p->stats.bytes += len;
	/* XML_Parse takes an int length: larger chunks go in pieces. */
	do {
		size_t n = len > (size_t)INT_MAX ? (size_t)INT_MAX : len;
		int last = final && n == len;
		if (XML_Parse(p->xp, data, (int)n, last) != XML_STATUS_OK) {
			int rc = failed(p);
			set_err(err, errlen, p->err);
			return rc;
		}
		data += n;
		len -= n;
	} while (len > 0);
	return FEED_OK;
}

void feed_parser_stats(const feed_parser *p, feed_stats *out)
{
	*out = p->stats;
}
