/*
 * The generated provider feed (feed.h): the model of what is on sale, its
 * evolution between responses, and the one-pass XML writer.
 *
 * A response of 5,000 events of 200 zones is about 86 MB and one of 50,000
 * events of 20 zones about as much, so rendering reserves room for a whole
 * base element at a time and then writes with unchecked stores (no snprintf,
 * no strlen of what it wrote): one pass, and a buffer that grows
 * geometrically and is reused from one response to the next.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feed.h"

/* Per base element, 16 bytes: everything else derives from slot and versions. */
struct base {
	uint32_t slot;	     /* its identity in the model; ids and title derive from it */
	uint8_t nev;	     /* events it holds: 1 or 2 */
	uint8_t offline;     /* sell_mode="offline" since some response */
	uint8_t gone;	     /* scratch for feed_step */
	uint8_t pad;	     /* unused */
	uint32_t version[2]; /* per event: the response of its last change */
};

struct feed {
	feed_params p;
	struct base *bases; /* in feed order; at most p.events of them (each holds >= 1 event) */
	size_t nbases;
	uint64_t nevents; /* sum of nev */
	uint32_t next_slot;
	uint64_t k;
};

/* Hash tags, so that values drawn for different purposes are independent. */
enum {
	TAG_NEV = 1,
	TAG_SHARE,
	TAG_BASE,
	TAG_EVENT,
	TAG_VERSION,
	TAG_ZONE,
	TAG_ZONE_VERSION,
	TAG_CHANGE,
	TAG_GONE,
	TAG_OFFLINE,
	TAG_OFFLINE_GONE,
};

/* splitmix64's finaliser. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t hash(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b, uint64_t c)
{
	return mix(mix(mix(mix(seed ^ (tag << 56)) ^ a) ^ b) ^ c);
}

void feed_buf_fini(feed_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int buf_reserve(feed_buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < extra) {
		if (cap > SIZE_MAX / 2)
			return ENOMEM;
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* How many events base slot s holds when room allows: one in four hold two,
 * as base 322 of the plan sample does. */
static uint8_t slot_events(const feed *f, uint32_t slot)
{
	return hash(f->p.seed, TAG_NEV, slot, 0, 0) % 4 == 0 ? 2 : 1;
}

/* Appends base elements until the feed holds p.events events again; the new
 * ones are versioned k. Never grows past the array: bases <= events. */
static void fill(feed *f, uint64_t k)
{
	while (f->nevents < f->p.events) {
		struct base *b = &f->bases[f->nbases++];
		uint64_t room = f->p.events - f->nevents;
		memset(b, 0, sizeof(*b));
		b->slot = f->next_slot++;
		b->nev = slot_events(f, b->slot);
		if (b->nev > room)
			b->nev = (uint8_t)room;
		b->version[0] = b->version[1] = (uint32_t)k;
		f->nevents += b->nev;
	}
}

int feed_create(feed **out, const feed_params *params)
{
	if (params->events == 0 || params->zones == 0 || params->change_percent > 100)
		return EINVAL;
	feed *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return ENOMEM;
	f->p = *params;
	f->bases = calloc(params->events, sizeof(*f->bases));
	if (f->bases == NULL) {
		free(f);
		return ENOMEM;
	}
	int rv = feed_reset(f);
	if (rv != 0) {
		feed_destroy(f);
		return rv;
	}
	*out = f;
	return 0;
}

void feed_destroy(feed *f)
{
	if (f == NULL)
		return;
	free(f->bases);
	free(f);
}

int feed_reset(feed *f)
{
	f->nbases = 0;
	f->nevents = 0;
	f->next_slot = 0;
	f->k = 1;
	fill(f, 1);
	return 0;
}

uint64_t feed_number(const feed *f)
{
	return f->k;
}

int feed_step(feed *f)
{
	uint64_t k = f->k + 1;
	uint64_t seed = f->p.seed;
	unsigned pct = f->p.change_percent;
	f->k = k;
	if (pct == 0)
		return 0;

	/* Offline base elements stay a response or two, then go. */
	for (size_t i = 0; i < f->nbases; i++) {
		struct base *b = &f->bases[i];
		if (b->offline) {
			b->gone = hash(seed, TAG_OFFLINE_GONE, k, b->slot, 0) & 1;
			continue;
		}
		for (unsigned e = 0; e < b->nev; e++) {
			if (hash(seed, TAG_CHANGE, k, b->slot, e) % 10000 < pct * 100u)
				b->version[e] = (uint32_t)k;
		}
	}
	/* A few disappear and a few go offline: a tenth of the change rate, at least one. */
	size_t few = f->nbases * pct / 1000;
	if (few == 0)
		few = 1;
	for (size_t j = 0; j < few && f->nbases > 1; j++)
		f->bases[hash(seed, TAG_GONE, k, j, 0) % f->nbases].gone = 1;
	for (size_t j = 0; j < few; j++) {
		struct base *b = &f->bases[hash(seed, TAG_OFFLINE, k, j, 0) % f->nbases];
		if (!b->gone)
			b->offline = 1;
	}
	size_t n = 0;
	f->nevents = 0;
	for (size_t i = 0; i < f->nbases; i++) {
		if (f->bases[i].gone)
			continue;
		f->bases[n] = f->bases[i];
		f->nevents += f->bases[n].nev;
		n++;
	}
	f->nbases = n;
	fill(f, k);
	return 0;
}

/*
 * The writer. Each put_* stores at w and returns the end; the caller has
 * reserved room for the whole base element.
 */

#define PUT(w, lit) (memcpy((w), (lit), sizeof(lit) - 1), (w) + sizeof(lit) - 1)

static char *put_str(char *w, const char *s, size_t n)
{
	memcpy(w, s, n);
	return w + n;
}

static char *put_u64(char *w, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*w++ = tmp[--n];
	return w;
}

static char *put_2(char *w, unsigned v)
{
	w[0] = (char)('0' + v / 10 % 10);
	w[1] = (char)('0' + v % 10);
	return w + 2;
}

/* Cents as an exact decimal with two digits: 2000 -> "20.00". */
static char *put_price(char *w, uint64_t cents)
{
	w = put_u64(w, cents / 100);
	*w++ = '.';
	return put_2(w, (unsigned)(cents % 100));
}

/* Attribute text with XML's five escapes; at most 6 bytes out per byte in. */
static char *put_esc(char *w, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			w = PUT(w, "&amp;");
			break;
		case '<':
			w = PUT(w, "&lt;");
			break;
		case '>':
			w = PUT(w, "&gt;");
			break;
		case '"':
			w = PUT(w, "&quot;");
			break;
		case '\'':
			w = PUT(w, "&apos;");
			break;
		default:
			*w++ = *s;
		}
	}
	return w;
}

/* Days since 1970-01-01 of a civil date, and back (Howard Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS" of minutes since 1970-01-01 (local wall-clock time, no zone). */
static char *put_datetime(char *w, int64_t minutes)
{
	int64_t z = minutes / 1440 + 719468;
	unsigned mod = (unsigned)(minutes % 1440);
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
	w = put_2(w, (unsigned)(y / 100));
	w = put_2(w, (unsigned)(y % 100));
	*w++ = '-';
	w = put_2(w, m);
	*w++ = '-';
	w = put_2(w, d);
	*w++ = 'T';
	w = put_2(w, mod / 60);
	*w++ = ':';
	w = put_2(w, mod % 60);
	return PUT(w, ":00");
}

/* Names of the kind the real responses carry (and a few that need escaping). */
static const char *const artists[] = {
	"Camela",
	"Pantomima Full",
	"Los Morancos",
	"Tributo a Juanito Valderrama",
	"Estopa",
	"Rosalía",
	"Mecano & Amigos",
	"Orquesta Sinfónica de Barcelona",
	"El Consorcio",
	"La Oreja de Van Gogh",
	"Joaquín Sabina",
	"Ópera \"Carmen\"",
	"Monólogos <en vivo>",
	"Ballet Nacional",
	"Dani Martín",
	"Love of Lesbian",
};
static const char *const suffixes[] = {
	"", " en concierto", " - Gira 2021", " (acústico)", ": la revancha", " en familia",
};
static const char *const zone_names[] = {
	"Platea", "Grada 1", "Grada 2", "A28",	      "A42",	       "Amfiteatre",  "Anfiteatro",
	"Palco",  "Pista",   "VIP",	"Preferente", "Tribuna Norte", "Tribuna Sur", "General",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_NAME_BYTES 64 /* longest of the lists above, with room */
#define ZONE_BYTES (160 + 6 * MAX_NAME_BYTES)
#define EVENT_BYTES 512
#define BASE_BYTES (256 + 6 * 2 * MAX_NAME_BYTES)

/* The element and attribute names of one vocabulary. */
struct word {
	const char *s;
	size_t n;
};
enum { WD_LIST, WD_BASE, WD_BASE_ID, WD_CHILD, WD_START, WD_END, WD_CHILD_ID, WD_SCHEMA, WD_COUNT };

#define W(s)                     \
	{                        \
		s, sizeof(s) - 1 \
	}
static const struct word event_words[WD_COUNT] = {
	W("eventList"),	       W("base_event"),	    W("base_event_id"), W("event"),
	W("event_start_date"), W("event_end_date"), W("event_id"),	W("eventList.xsd"),
};
static const struct word plan_words[WD_COUNT] = {
	W("planList"),	      W("base_plan"),	  W("base_plan_id"), W("plan"),
	W("plan_start_date"), W("plan_end_date"), W("plan_id"),	     W("planList.xsd"),
};
#undef W

#define PUTW(w, words, i) put_str((w), (words)[i].s, (words)[i].n)

static int64_t epoch_2021_days(void)
{
	return days_from_civil(2021, 1, 1);
}

/* One event element and its zones. */
static char *put_event(char *w, const feed *f, const struct base *b, unsigned e, const struct word *words)
{
	uint64_t seed = f->p.seed;
	uint32_t s = b->slot, v = b->version[e];
	uint64_t hs = hash(seed, TAG_EVENT, s, e, 0);
	uint64_t hv = hash(seed, TAG_VERSION, s, e, v);
	int64_t day = epoch_2021_days() + (int64_t)(hs % 540);
	int64_t start = day * 1440 + (int64_t)(17 + (hs >> 16) % 5) * 60 + (int64_t)((hs >> 24) & 1) * 30;
	int64_t end = start + 30 + (int64_t)(hv % 10) * 15;
	int64_t sell_from = (day - 30 - (int64_t)((hs >> 32) % 300)) * 1440;
	int64_t sell_to = start - 10;
	int sold_out = (hv >> 8) % 16 == 0;
	/* Event ids repeat across base elements, as 1642 does in the real
	 * responses: one base slot in four reuses its predecessor's. */
	uint32_t group = s > 0 && hash(seed, TAG_SHARE, s, 0, 0) % 4 == 0 ? s - 1 : s;
	uint64_t zone_id = 1 + (hs >> 40) % 400;

	w = PUT(w, "         <");
	w = PUTW(w, words, WD_CHILD);
	*w++ = ' ';
	w = PUTW(w, words, WD_START);
	w = PUT(w, "=\"");
	w = put_datetime(w, start);
	w = PUT(w, "\" ");
	w = PUTW(w, words, WD_END);
	w = PUT(w, "=\"");
	w = put_datetime(w, end);
	w = PUT(w, "\" ");
	w = PUTW(w, words, WD_CHILD_ID);
	w = PUT(w, "=\"");
	w = put_u64(w, 1000 + 2 * (uint64_t)group + e);
	w = PUT(w, "\" sell_from=\"");
	w = put_datetime(w, sell_from);
	w = PUT(w, "\" sell_to=\"");
	w = put_datetime(w, sell_to);
	w = sold_out ? PUT(w, "\" sold_out=\"true\">\n") : PUT(w, "\" sold_out=\"false\">\n");
	for (uint32_t j = 0; j < f->p.zones; j++) {
		uint64_t hz = hash(seed, TAG_ZONE, s, e, j);
		uint64_t hzv = hash(seed, TAG_ZONE_VERSION, s, ((uint64_t)e << 32) | j, v);
		uint64_t capacity = sold_out || hzv % 8 == 0 ? 0 : 1 + (hzv >> 8) % 400;
		uint64_t cents = 500 + ((hzv >> 24) % 191) * 50 + ((hzv >> 40) % 7 == 0 ? 49 : 0);
		w = PUT(w, "            <zone zone_id=\"");
		w = put_u64(w, zone_id + j);
		w = PUT(w, "\" capacity=\"");
		w = put_u64(w, capacity);
		w = PUT(w, "\" price=\"");
		w = put_price(w, cents);
		w = PUT(w, "\" name=\"");
		w = put_esc(w, zone_names[hz % COUNT(zone_names)]);
		w = (hz >> 32) & 1 ? PUT(w, "\" numbered=\"true\" />\n") : PUT(w, "\" numbered=\"false\" />\n");
	}
	w = PUT(w, "         </");
	w = PUTW(w, words, WD_CHILD);
	return PUT(w, ">\n");
}

int feed_render(const feed *f, feed_buf *out)
{
	const struct word *words = f->p.vocabulary == FEED_PLAN ? plan_words : event_words;
	uint64_t seed = f->p.seed;
	size_t per_event = EVENT_BYTES + (size_t)f->p.zones * ZONE_BYTES;

	out->len = 0;
	/* A guess at the whole (about 90 bytes a zone) saves the doublings. */
	if (buf_reserve(out, (size_t)f->nevents * (300 + (size_t)f->p.zones * 96) + 1024) != 0)
		return ENOMEM;
	if (buf_reserve(out, 1024) != 0)
		return ENOMEM;
	char *w = out->p;
	w = PUT(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
	w = PUTW(w, words, WD_LIST);
	w = PUT(w, " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.0\" "
		   "xsi:noNamespaceSchemaLocation=\"");
	w = PUTW(w, words, WD_SCHEMA);
	w = PUT(w, "\">\n   <output>\n");
	out->len = (size_t)(w - out->p);

	for (size_t i = 0; i < f->nbases; i++) {
		const struct base *b = &f->bases[i];
		if (buf_reserve(out, BASE_BYTES + b->nev * per_event) != 0)
			return ENOMEM;
		w = out->p + out->len;
		uint64_t hb = hash(seed, TAG_BASE, b->slot, 0, 0);
		w = PUT(w, "      <");
		w = PUTW(w, words, WD_BASE);
		*w++ = ' ';
		w = PUTW(w, words, WD_BASE_ID);
		w = PUT(w, "=\"");
		w = put_u64(w, 100 + 4 * (uint64_t)b->slot + (hb >> 48) % 4);
		w = b->offline ? PUT(w, "\" sell_mode=\"offline\"") : PUT(w, "\" sell_mode=\"online\"");
		if (hb % 3 != 0) {
			w = PUT(w, " organizer_company_id=\"");
			w = put_u64(w, 1 + (hb >> 8) % 5);
			*w++ = '"';
		}
		w = PUT(w, " title=\"");
		w = put_esc(w, artists[(hb >> 16) % COUNT(artists)]);
		w = put_esc(w, suffixes[(hb >> 32) % COUNT(suffixes)]);
		w = PUT(w, "\">\n");
		for (unsigned e = 0; e < b->nev; e++)
			w = put_event(w, f, b, e, words);
		w = PUT(w, "      </");
		w = PUTW(w, words, WD_BASE);
		w = PUT(w, ">\n");
		out->len = (size_t)(w - out->p);
	}

	if (buf_reserve(out, 256) != 0)
		return ENOMEM;
	w = out->p + out->len;
	w = PUT(w, "   </output>\n</");
	w = PUTW(w, words, WD_LIST);
	*w++ = '>';
	out->len = (size_t)(w - out->p);
	return 0;
}
