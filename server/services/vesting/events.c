/*
 * The event store of one computation: row validation, interning of employee
 * and award ids in open-addressing hash tables (a word-at-a-time multiplicative
 * hash, linear probing, kept at most half full), and a growing array of
 * 24-byte events. A million-event file costs about 24 MB of events plus its
 * distinct ids, whatever its size as text.
 *
 * Adding a row is dominated by cache misses on the tables, not by parsing:
 * a known award costs one slot read and one read of its key text, which sits
 * with nothing else in the arena; the employee table is probed only when a
 * row brings a new award, or a name for an employee that had none.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "arena.h"
#include "csv.h"
#include "date.h"
#include "events.h"
#include "qty.h"
#include "utf8.h"

/* Ids and names longer than this are refused: no real employee id is, and it
 * bounds what one row can make the server hold. */
#define VESTING_TEXT_MAX 1024

#define HASH_SEED 0x243f6a8885a308d3ULL
#define HASH_MUL 0x9e3779b97f4a7c15ULL

static inline uint64_t hash_mix(uint64_t h, uint64_t w)
{
	h = (h ^ w) * HASH_MUL;
	return h ^ (h >> 32);
}

/* Hashes n bytes of s (and n) into h, eight bytes per step; the last partial
 * word is read as two overlapping loads, never past s + n. */
static inline uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
	uint64_t w;
	h = hash_mix(h, n);
	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = hash_mix(h, w);
	}
	if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		h = hash_mix(h, ((uint64_t)a << 32) | b);
	} else if (n > 0) {
		w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
		    (uint64_t)(unsigned char)s[n - 1] << 16;
		h = hash_mix(h, w);
	}
	return h;
}

static inline uint64_t hash_final(uint64_t h)
{
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

static inline uint64_t employee_hash(const char *emp, size_t emp_len)
{
	return hash_final(hash_bytes(HASH_SEED, emp, emp_len));
}

static inline uint64_t award_hash(const char *emp, size_t emp_len, const char *award, size_t award_len)
{
	return hash_final(hash_bytes(hash_bytes(HASH_SEED, emp, emp_len), award, award_len));
}

rpcq_status vesting_events_create(vesting_events **out, rpcq_error *err)
{
	vesting_events *ev = rpcq_calloc(1, sizeof(*ev));
	if (ev == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the events");
	ev->strings = arena_create(64 * 1024);
	if (ev->strings == NULL) {
		rpcq_free(ev);
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the events");
	}
	*out = ev;
	return RPCQ_OK;
}

void vesting_events_destroy(vesting_events *ev)
{
	if (ev == NULL)
		return;
	arena_destroy(ev->strings);
	rpcq_free(ev->ev);
	rpcq_free(ev->awards);
	rpcq_free(ev->employees);
	rpcq_free(ev->award_slots);
	rpcq_free(ev->employee_slots);
	rpcq_free(ev);
}

size_t vesting_events_bytes(const vesting_events *ev)
{
	return ev->cap_ev * sizeof(vesting_event) + ev->cap_award * sizeof(vesting_award) +
	       ev->cap_employee * sizeof(vesting_employee) + ((size_t)ev->award_mask + 1) * sizeof(vesting_award_slot) +
	       ((size_t)ev->employee_mask + 1) * sizeof(uint64_t) + arena_used(ev->strings);
}

void vesting_quote_for_message(const char *s, size_t n, char out[48])
{
	size_t k = 0;
	out[k++] = '"';
	for (size_t i = 0; i < n && i < 40; i++) {
		unsigned char ch = (unsigned char)s[i];
		out[k++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (n > 40) {
		out[k++] = '.';
		out[k++] = '.';
		out[k++] = '.';
	}
	out[k++] = '"';
	out[k] = '\0';
}

/* Doubles the employee table (or creates it with 1024 slots), reinserting
 * entries by the hash bits they keep. */
static int grow_employee_slots(vesting_events *ev)
{
	uint64_t *slots = ev->employee_slots;
	uint32_t mask = ev->employee_mask;
	uint64_t newsize = slots ? ((uint64_t)mask + 1) * 2 : 1024;
	if (newsize > ((uint64_t)1 << 31))
		return -1;
	uint64_t *fresh = rpcq_calloc((size_t)newsize, sizeof(*fresh));
	if (fresh == NULL)
		return -1;
	uint32_t newmask = (uint32_t)(newsize - 1);
	for (uint64_t i = 0; slots && i <= mask; i++) {
		uint64_t s = slots[i];
		if (s == 0)
			continue;
		uint32_t j = (uint32_t)(s >> 32) & newmask;
		while (fresh[j])
			j = (j + 1) & newmask;
		fresh[j] = s;
	}
	rpcq_free(slots);
	ev->employee_slots = fresh;
	ev->employee_mask = newmask;
	return 0;
}

/* The same for the award table. */
static int grow_award_slots(vesting_events *ev)
{
	vesting_award_slot *slots = ev->award_slots;
	uint32_t mask = ev->award_mask;
	uint64_t newsize = slots ? ((uint64_t)mask + 1) * 2 : 1024;
	if (newsize > ((uint64_t)1 << 31))
		return -1;
	vesting_award_slot *fresh = rpcq_calloc((size_t)newsize, sizeof(*fresh));
	if (fresh == NULL)
		return -1;
	uint32_t newmask = (uint32_t)(newsize - 1);
	for (uint64_t i = 0; slots && i <= mask; i++) {
		if (slots[i].index1 == 0)
			continue;
		uint32_t j = slots[i].tag & newmask;
		while (fresh[j].index1)
			j = (j + 1) & newmask;
		fresh[j] = slots[i];
	}
	rpcq_free(slots);
	ev->award_slots = fresh;
	ev->award_mask = newmask;
	return 0;
}

static int grow_array(void **arr, uint32_t *cap, size_t elem)
{
	uint32_t ncap = *cap ? *cap * 2 : 256;
	if (ncap < *cap || ncap > UINT32_MAX / 2)
		return -1;
	void *p = rpcq_realloc(*arr, (size_t)ncap * elem);
	if (p == NULL)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* Gives employee e the name when it has none yet; -1 when out of memory. */
static int name_employee(vesting_events *ev, vesting_employee *e, const char *name, size_t name_len)
{
	if (e->name_len != 0 || name_len == 0)
		return 0;
	char *copy = arena_strndup(ev->strings, name, name_len);
	if (copy == NULL)
		return -1;
	e->name = copy;
	e->name_len = (uint32_t)name_len;
	ev->unnamed--;
	ev->version++;
	return 0;
}

/* The employee index of id, added (with name) when new; an existing employee
 * without a name takes the first non-empty one. -1 when out of memory. */
static int64_t intern_employee(vesting_events *ev, const char *id, size_t id_len, const char *name, size_t name_len)
{
	if (ev->employee_slots == NULL || (uint64_t)(ev->nemployee + 1) * 2 > (uint64_t)ev->employee_mask + 1) {
		if (grow_employee_slots(ev) != 0)
			return -1;
	}
	uint64_t h = employee_hash(id, id_len);
	uint32_t tag = (uint32_t)(h >> 32);
	uint32_t j = tag & ev->employee_mask;
	for (;; j = (j + 1) & ev->employee_mask) {
		uint64_t s = ev->employee_slots[j];
		if (s == 0)
			break;
		if ((uint32_t)(s >> 32) != tag)
			continue;
		vesting_employee *e = &ev->employees[(uint32_t)s - 1];
		if (e->id_len != id_len || memcmp(e->id, id, id_len) != 0)
			continue;
		if (name_employee(ev, e, name, name_len) != 0)
			return -1;
		return (uint32_t)s - 1;
	}
	if (ev->nemployee == ev->cap_employee &&
	    grow_array((void **)&ev->employees, &ev->cap_employee, sizeof(*ev->employees)) != 0)
		return -1;
	char *idc = arena_strndup(ev->strings, id, id_len);
	char *namec = arena_strndup(ev->strings, name, name_len);
	if (idc == NULL || namec == NULL)
		return -1;
	uint32_t idx = ev->nemployee++;
	ev->employees[idx] = (vesting_employee){idc, namec, (uint32_t)id_len, (uint32_t)name_len};
	ev->employee_slots[j] = ((uint64_t)tag << 32) | (idx + 1);
	if (name_len == 0)
		ev->unnamed++;
	ev->version++;
	return idx;
}

#define KEY_PAD 7

/* 1 if a[0..n) equals b[0..n): ids are short, and a call to memcmp per row
 * costs more than comparing them inline, eight bytes at a time. */
static inline int bytes_equal(const char *a, const char *b, size_t n)
{
	uint64_t x, y;
	for (; n >= 8; a += 8, b += 8, n -= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return 0;
	}
	for (; n > 0; a++, b++, n--) {
		if (*a != *b)
			return 0;
	}
	return 1;
}

/* 1 if key (employee id, NUL, award id, NUL) names (emp, award); emp and
 * award hold no NUL. A longer emp or award differs from the key at the latest
 * in the eight bytes holding the key's NUL, and keys are allocated with
 * KEY_PAD spare bytes, so no comparison reads past a key's memory. */
static inline int key_equals(const char *key, const char *emp, size_t emp_len, const char *award, size_t award_len)
{
	return bytes_equal(key, emp, emp_len) && key[emp_len] == '\0' &&
	       bytes_equal(key + emp_len + 1, award, award_len) && key[emp_len + 1 + award_len] == '\0';
}

/* The slot of (emp, award) in the award table: the one holding it, or the
 * empty slot where it belongs. The table must exist. */
static inline vesting_award_slot *award_slot(const vesting_events *ev, uint32_t tag, const char *emp, size_t emp_len,
					     const char *award, size_t award_len)
{
	uint32_t j = tag & ev->award_mask;
	for (;; j = (j + 1) & ev->award_mask) {
		vesting_award_slot *s = &ev->award_slots[j];
		if (s->index1 == 0 || (s->tag == tag && key_equals(s->key, emp, emp_len, award, award_len)))
			return s;
	}
}

int64_t vesting_events_find_award(const vesting_events *ev, const char *employee_id, size_t employee_id_len,
				  const char *award_id, size_t award_id_len)
{
	if (ev->award_slots == NULL || memchr(employee_id, '\0', employee_id_len) != NULL ||
	    memchr(award_id, '\0', award_id_len) != NULL)
		return -1;
	uint32_t tag = (uint32_t)(award_hash(employee_id, employee_id_len, award_id, award_id_len) >> 32);
	const vesting_award_slot *s = award_slot(ev, tag, employee_id, employee_id_len, award_id, award_id_len);
	return s->index1 ? (int64_t)s->index1 - 1 : -1;
}

/* Adds the award (emp, award) whose place in the table is slot, interning
 * its employee. Returns the award index, -1 when out of memory. */
static int64_t add_award(vesting_events *ev, vesting_award_slot *slot, uint32_t tag, const char *emp, size_t emp_len,
			 const char *name, size_t name_len, const char *award, size_t award_len)
{
	int64_t e = intern_employee(ev, emp, emp_len, name, name_len);
	if (e < 0)
		return -1;
	if (ev->naward == ev->cap_award && grow_array((void **)&ev->awards, &ev->cap_award, sizeof(*ev->awards)) != 0)
		return -1;
	char *key = arena_alloc(ev->strings, emp_len + award_len + 2 + KEY_PAD);
	if (key == NULL)
		return -1;
	memcpy(key, emp, emp_len);
	key[emp_len] = '\0';
	memcpy(key + emp_len + 1, award, award_len);
	memset(key + emp_len + 1 + award_len, 0, 1 + KEY_PAD);
	uint32_t idx = ev->naward++;
	ev->awards[idx] = (vesting_award){key + emp_len + 1, (uint32_t)award_len, (uint32_t)e};
	*slot = (vesting_award_slot){key, tag, idx + 1};
	ev->version++;
	return idx;
}

static rpcq_status push_event(vesting_events *ev, const vesting_event *e, rpcq_error *err)
{
	if (ev->nev == ev->cap_ev) {
		size_t ncap = ev->cap_ev ? ev->cap_ev * 2 : 1024;
		if (ncap > UINT32_MAX) {
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "more than %lu events in one request",
					      (unsigned long)UINT32_MAX);
		}
		vesting_event *p = rpcq_realloc(ev->ev, ncap * sizeof(*p));
		if (p == NULL)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for %zu events", ncap);
		ev->ev = p;
		ev->cap_ev = ncap;
	}
	ev->ev[ev->nev++] = *e;
	ev->version++;
	return RPCQ_OK;
}

/* Adds one event of (emp, award). The award is looked up first: most rows
 * repeat a known award, whose employee exists, and needs a name only while
 * some employee has none. */
static rpcq_status add_event_tagged(vesting_events *ev, uint32_t tag, const char *emp, size_t emp_len, const char *name,
				    size_t name_len, const char *award, size_t award_len, const vesting_event *proto,
				    rpcq_error *err)
{
	if (ev->award_slots == NULL || (uint64_t)(ev->naward + 1) * 2 > (uint64_t)ev->award_mask + 1) {
		if (grow_award_slots(ev) != 0)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the awards");
	}
	vesting_award_slot *s = award_slot(ev, tag, emp, emp_len, award, award_len);
	int64_t a;
	if (s->index1 != 0) {
		a = s->index1 - 1;
		if (ev->unnamed > 0 && name_len > 0 &&
		    name_employee(ev, &ev->employees[ev->awards[a].employee], name, name_len) != 0)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the employees");
	} else {
		a = add_award(ev, s, tag, emp, emp_len, name, name_len, award, award_len);
		if (a < 0)
			return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the awards");
	}
	vesting_event x = *proto;
	x.award = (uint32_t)a;
	return push_event(ev, &x, err);
}

static uint32_t award_tag(const char *emp, size_t emp_len, const char *award, size_t award_len)
{
	return (uint32_t)(award_hash(emp, emp_len, award, award_len) >> 32);
}

static rpcq_status add_event(vesting_events *ev, const char *emp, size_t emp_len, const char *name, size_t name_len,
			     const char *award, size_t award_len, const vesting_event *proto, rpcq_error *err)
{
	return add_event_tagged(ev, award_tag(emp, emp_len, award, award_len), emp, emp_len, name, name_len, award,
				award_len, proto, err);
}

/* Checks one text field of a row: length, no NUL (unless the caller knows
 * there is none), UTF-8 when required. */
static rpcq_status check_text(const vesting_events *ev, const char *what, const char *s, size_t n, int required,
			      int nul_possible, uint64_t line, rpcq_error *err)
{
	if (required && n == 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: empty %s", (unsigned long long)line,
				      what);
	if (n > VESTING_TEXT_MAX) {
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s longer than %d bytes",
				      (unsigned long long)line, what, VESTING_TEXT_MAX);
	}
	if (nul_possible && memchr(s, '\0', n) != NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s contains a NUL byte",
				      (unsigned long long)line, what);
	if (ev->require_utf8 && !utf8_valid(s, n))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s is not valid UTF-8",
				      (unsigned long long)line, what);
	return RPCQ_OK;
}

/* vesting_events_add_row; nul_possible 0 when no field can hold a NUL byte. */
/* Validates a row into *out (award not set yet). */
static rpcq_status check_row(const vesting_events *ev, const vesting_row *row, uint64_t line, int nul_possible,
			     vesting_event *out, rpcq_error *err)
{
	char q[48];
	vesting_event e = {0};
	unsigned long long ln = (unsigned long long)line;

	if (line > UINT32_MAX)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: more than %lu lines", ln,
				      (unsigned long)UINT32_MAX);
	e.line = (uint32_t)line;
	if (row->action_len == 4 && memcmp(row->action, "VEST", 4) == 0) {
		e.action = VESTING_VEST;
	} else if (row->action_len == 6 && memcmp(row->action, "CANCEL", 6) == 0) {
		e.action = VESTING_CANCEL;
	} else {
		vesting_quote_for_message(row->action, row->action_len, q);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "line %llu: unknown action %s (expected VEST or CANCEL)", ln, q);
	}
	rpcq_status st;
	int np = nul_possible;
	if ((st = check_text(ev, "employee id", row->employee_id, row->employee_id_len, 1, np, line, err)) != RPCQ_OK ||
	    (st = check_text(ev, "employee name", row->employee_name, row->employee_name_len, 0, np, line, err)) !=
		    RPCQ_OK ||
	    (st = check_text(ev, "award id", row->award_id, row->award_id_len, 1, np, line, err)) != RPCQ_OK)
		return st;

	switch (date_parse(row->date, row->date_len, &e.day)) {
	case DATE_OK:
		break;
	case DATE_MALFORMED:
		vesting_quote_for_message(row->date, row->date_len, q);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: malformed date %s (expected YYYY-MM-DD)",
				      ln, q);
	case DATE_IMPOSSIBLE:
		vesting_quote_for_message(row->date, row->date_len, q);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: impossible date %s", ln, q);
	}

	vesting_qty_result qr = vesting_qty_parse(row->quantity, row->quantity_len, &e.qty);
	if (qr != VESTING_QTY_OK)
		vesting_quote_for_message(row->quantity, row->quantity_len, q);
	switch (qr) {
	case VESTING_QTY_OK:
		break;
	case VESTING_QTY_MALFORMED:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "line %llu: malformed quantity %s (expected a decimal like 1000 or 0.125)", ln,
				      q);
	case VESTING_QTY_NEGATIVE:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: negative quantity %s", ln, q);
	case VESTING_QTY_OVERFLOW:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: quantity %s is too large (at most %s)",
				      ln, q, VESTING_QTY_MAX_TEXT);
	}
	*out = e;
	return RPCQ_OK;
}

rpcq_status vesting_events_add_row(vesting_events *ev, const vesting_row *row, uint64_t line, rpcq_error *err)
{
	vesting_event e;
	rpcq_status st = check_row(ev, row, line, 1, &e, err);
	if (st != RPCQ_OK)
		return st;
	return add_event(ev, row->employee_id, row->employee_id_len, row->employee_name, row->employee_name_len,
			 row->award_id, row->award_id_len, &e, err);
}

rpcq_status vesting_events_add_parsed(vesting_events *ev, const char *employee_id, size_t employee_id_len,
				      const char *employee_name, size_t employee_name_len, const char *award_id,
				      size_t award_id_len, int action, int32_t day, int64_t qty, rpcq_error *err)
{
	vesting_event e = {.qty = qty, .day = day, .line = 0, .action = (uint8_t)action};
	return add_event(ev, employee_id, employee_id_len, employee_name, employee_name_len, award_id, award_id_len, &e,
			 err);
}

/* Rows of a CSV text are added in batches: validating a batch hashes each
 * row's award and prefetches its slot, adding the batch first prefetches the
 * keys those slots point to, then looks them up. The table is far larger than
 * the CPU's caches, so without this every row waits for two memory reads in a
 * row; with it they overlap. Rows are still validated and added in order, and
 * a bad row is reported after the valid rows before it are added. */
#define BATCH 16

typedef struct pending_row {
	vesting_row row;
	vesting_event e;
	uint32_t tag;
} pending_row;

static rpcq_status add_batch(vesting_events *ev, const pending_row *b, size_t n, rpcq_error *err)
{
	if (ev->award_slots != NULL && (uint64_t)(ev->naward + n) * 2 <= (uint64_t)ev->award_mask + 1) {
		for (size_t i = 0; i < n; i++) {
			const vesting_award_slot *s = &ev->award_slots[b[i].tag & ev->award_mask];
			if (s->index1)
				__builtin_prefetch(s->key);
		}
	}
	for (size_t i = 0; i < n; i++) {
		const vesting_row *r = &b[i].row;
		rpcq_status st = add_event_tagged(ev, b[i].tag, r->employee_id, r->employee_id_len, r->employee_name,
						  r->employee_name_len, r->award_id, r->award_id_len, &b[i].e, err);
		if (st != RPCQ_OK)
			return st;
	}
	return RPCQ_OK;
}

rpcq_status vesting_events_add_csv(vesting_events *ev, char *buf, size_t len, uint64_t first_line, rpcq_error *err)
{
	csv_reader r;
	csv_record rec;
	pending_row batch[BATCH];
	size_t n = 0;
	rpcq_status st;
	/* One vectorised scan of the text spares three per-row scans of fields
	 * for a byte that real files never hold. */
	int nul_possible = memchr(buf, '\0', len) != NULL;
	/* A UTF-8 byte order mark opening the file (spreadsheets write one)
	 * is no part of its first row, as in billing's and vouchers' files. */
	if (first_line == 1 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
		buf += 3;
		len -= 3;
	}
	csv_init(&r, buf, len, first_line);
	for (;;) {
		int got = csv_next(&r, &rec, err);
		if (got < 0)
			st = RPCQ_INVALID_ARGUMENT;
		else if (got == 0)
			st = RPCQ_OK;
		else if (rec.nfields != 6)
			st = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					    "line %llu: %zu fields, expected 6 "
					    "(ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY)",
					    (unsigned long long)rec.line, rec.nfields);
		if (got <= 0 || rec.nfields != 6) {
			/* The end, or a bad record: the rows before it go first. */
			rpcq_status added = add_batch(ev, batch, n, err);
			return added != RPCQ_OK ? added : st;
		}
		const csv_field *f = rec.field;
		pending_row *p = &batch[n];
		p->row = (vesting_row){f[0].ptr, f[0].len, f[1].ptr, f[1].len, f[2].ptr, f[2].len,
				       f[3].ptr, f[3].len, f[4].ptr, f[4].len, f[5].ptr, f[5].len};
		st = check_row(ev, &p->row, rec.line, nul_possible, &p->e, err);
		if (st != RPCQ_OK) {
			rpcq_status added = add_batch(ev, batch, n, err);
			return added != RPCQ_OK ? added : st;
		}
		p->tag = award_tag(p->row.employee_id, p->row.employee_id_len, p->row.award_id, p->row.award_id_len);
		if (ev->award_slots != NULL)
			__builtin_prefetch(&ev->award_slots[p->tag & ev->award_mask]);
		if (++n == BATCH) {
			if ((st = add_batch(ev, batch, n, err)) != RPCQ_OK)
				return st;
			n = 0;
		}
	}
}
