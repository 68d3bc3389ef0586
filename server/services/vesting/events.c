/*
 * The event store of one computation: row validation, interning of employee
 * and award ids in open-addressing hash tables (FNV-1a, linear probing, kept
 * at most half full), and a growing array of 24-byte events. A million-event
 * file costs about 24 MB of events plus its distinct ids, whatever its size
 * as text.
 */
#include <stdio.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "arena.h"
#include "csv.h"
#include "date.h"
#include "events.h"
#include "qty.h"

/* Ids and names longer than this are refused: no real employee id is, and it
 * bounds what one row can make the server hold. */
#define VESTING_TEXT_MAX 1024

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

static uint64_t award_hash(const char *emp, size_t emp_len, const char *award, size_t award_len)
{
	uint64_t h = fnv1a(FNV_BASIS, emp, emp_len);
	h = fnv1a(h ^ 0xff, "\0", 1);
	return fnv1a(h, award, award_len);
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
	       ev->cap_employee * sizeof(vesting_employee) +
	       ((size_t)ev->award_mask + 1 + (size_t)ev->employee_mask + 1) * sizeof(uint64_t) +
	       arena_used(ev->strings);
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

/* Doubles a hash table (or creates it with 1024 slots), reinserting entries. */
static int grow_slots(uint64_t **slots, uint32_t *mask)
{
	uint64_t newsize = *slots ? ((uint64_t)*mask + 1) * 2 : 1024;
	if (newsize > ((uint64_t)1 << 31))
		return -1;
	uint64_t *fresh = rpcq_calloc((size_t)newsize, sizeof(*fresh));
	if (fresh == NULL)
		return -1;
	uint32_t newmask = (uint32_t)(newsize - 1);
	if (*slots) {
		for (uint64_t i = 0; i <= *mask; i++) {
			uint64_t s = (*slots)[i];
			if (s == 0)
				continue;
			uint32_t j = (uint32_t)(s >> 32) & newmask;
			while (fresh[j])
				j = (j + 1) & newmask;
			fresh[j] = s;
		}
	}
	rpcq_free(*slots);
	*slots = fresh;
	*mask = newmask;
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

/* The employee index of id, added (with name) when new; an existing employee
 * without a name takes the first non-empty one. -1 when out of memory. */
static int64_t intern_employee(vesting_events *ev, const char *id, size_t id_len, const char *name, size_t name_len)
{
	if (ev->employee_slots == NULL || (uint64_t)(ev->nemployee + 1) * 2 > (uint64_t)ev->employee_mask + 1) {
		if (grow_slots(&ev->employee_slots, &ev->employee_mask) != 0)
			return -1;
	}
	uint64_t h = fnv1a(FNV_BASIS, id, id_len);
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
		if (e->name_len == 0 && name_len > 0) {
			char *copy = arena_strndup(ev->strings, name, name_len);
			if (copy == NULL)
				return -1;
			e->name = copy;
			e->name_len = (uint32_t)name_len;
			ev->version++;
		}
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
	ev->version++;
	return idx;
}

/* Looks up (employee, award); with add set, adds it when missing. Returns the
 * award index, -1 when missing (add 0) or out of memory. */
static int64_t lookup_award(vesting_events *ev, uint32_t employee, const char *emp, size_t emp_len, const char *award,
			    size_t award_len, int add)
{
	if (ev->award_slots == NULL) {
		if (!add || grow_slots(&ev->award_slots, &ev->award_mask) != 0)
			return -1;
	}
	if (add && (uint64_t)(ev->naward + 1) * 2 > (uint64_t)ev->award_mask + 1) {
		if (grow_slots(&ev->award_slots, &ev->award_mask) != 0)
			return -1;
	}
	uint64_t h = award_hash(emp, emp_len, award, award_len);
	uint32_t tag = (uint32_t)(h >> 32);
	uint32_t j = tag & ev->award_mask;
	for (;; j = (j + 1) & ev->award_mask) {
		uint64_t s = ev->award_slots[j];
		if (s == 0)
			break;
		if ((uint32_t)(s >> 32) != tag)
			continue;
		const vesting_award *a = &ev->awards[(uint32_t)s - 1];
		const vesting_employee *e = &ev->employees[a->employee];
		if (a->id_len == award_len && memcmp(a->id, award, award_len) == 0 && e->id_len == emp_len &&
		    memcmp(e->id, emp, emp_len) == 0)
			return (uint32_t)s - 1;
	}
	if (!add)
		return -1;
	if (ev->naward == ev->cap_award && grow_array((void **)&ev->awards, &ev->cap_award, sizeof(*ev->awards)) != 0)
		return -1;
	char *idc = arena_strndup(ev->strings, award, award_len);
	if (idc == NULL)
		return -1;
	uint32_t idx = ev->naward++;
	ev->awards[idx] = (vesting_award){idc, (uint32_t)award_len, employee};
	ev->award_slots[j] = ((uint64_t)tag << 32) | (idx + 1);
	ev->version++;
	return idx;
}

int64_t vesting_events_find_award(const vesting_events *ev, const char *employee_id, size_t employee_id_len,
				  const char *award_id, size_t award_id_len)
{
	return lookup_award((vesting_events *)ev, 0, employee_id, employee_id_len, award_id, award_id_len, 0);
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

static rpcq_status add_event(vesting_events *ev, const char *emp, size_t emp_len, const char *name, size_t name_len,
			     const char *award, size_t award_len, const vesting_event *proto, rpcq_error *err)
{
	int64_t e = intern_employee(ev, emp, emp_len, name, name_len);
	if (e < 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the employees");
	int64_t a = lookup_award(ev, (uint32_t)e, emp, emp_len, award, award_len, 1);
	if (a < 0)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for the awards");
	vesting_event x = *proto;
	x.award = (uint32_t)a;
	return push_event(ev, &x, err);
}

/* 1 if s is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* Checks one text field of a row: length, no NUL, UTF-8 when required. */
static rpcq_status check_text(const vesting_events *ev, const char *what, const char *s, size_t n, int required,
			      uint64_t line, rpcq_error *err)
{
	if (required && n == 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: empty %s", (unsigned long long)line,
				      what);
	if (n > VESTING_TEXT_MAX) {
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s longer than %d bytes",
				      (unsigned long long)line, what, VESTING_TEXT_MAX);
	}
	if (memchr(s, '\0', n) != NULL)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s contains a NUL byte",
				      (unsigned long long)line, what);
	if (ev->require_utf8 && !valid_utf8((const unsigned char *)s, n))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: %s is not valid UTF-8",
				      (unsigned long long)line, what);
	return RPCQ_OK;
}

rpcq_status vesting_events_add_row(vesting_events *ev, const vesting_row *row, uint64_t line, rpcq_error *err)
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
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: unknown action %s (expected VEST or CANCEL)",
				      ln, q);
	}
	rpcq_status st;
	if ((st = check_text(ev, "employee id", row->employee_id, row->employee_id_len, 1, line, err)) != RPCQ_OK ||
	    (st = check_text(ev, "employee name", row->employee_name, row->employee_name_len, 0, line, err)) !=
		    RPCQ_OK ||
	    (st = check_text(ev, "award id", row->award_id, row->award_id_len, 1, line, err)) != RPCQ_OK)
		return st;

	switch (vesting_date_parse(row->date, row->date_len, &e.day)) {
	case VESTING_DATE_OK:
		break;
	case VESTING_DATE_MALFORMED:
		vesting_quote_for_message(row->date, row->date_len, q);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: malformed date %s (expected YYYY-MM-DD)",
				      ln, q);
	case VESTING_DATE_IMPOSSIBLE:
		vesting_quote_for_message(row->date, row->date_len, q);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: impossible date %s", ln, q);
	}

	vesting_quote_for_message(row->quantity, row->quantity_len, q);
	switch (vesting_qty_parse(row->quantity, row->quantity_len, &e.qty)) {
	case VESTING_QTY_OK:
		break;
	case VESTING_QTY_MALFORMED:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
				      "line %llu: malformed quantity %s (expected a decimal like 1000 or 0.125)", ln, q);
	case VESTING_QTY_NEGATIVE:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: negative quantity %s", ln, q);
	case VESTING_QTY_OVERFLOW:
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "line %llu: quantity %s is too large (at most %s)", ln,
				      q, VESTING_QTY_MAX_TEXT);
	}
	return add_event(ev, row->employee_id, row->employee_id_len, row->employee_name, row->employee_name_len,
			 row->award_id, row->award_id_len, &e, err);
}

rpcq_status vesting_events_add_parsed(vesting_events *ev, const char *employee_id, size_t employee_id_len,
				      const char *employee_name, size_t employee_name_len, const char *award_id,
				      size_t award_id_len, int action, int32_t day, int64_t qty, rpcq_error *err)
{
	vesting_event e = {.qty = qty, .day = day, .line = 0, .action = (uint8_t)action};
	return add_event(ev, employee_id, employee_id_len, employee_name, employee_name_len, award_id, award_id_len,
			 &e, err);
}

rpcq_status vesting_events_add_csv(vesting_events *ev, char *buf, size_t len, uint64_t first_line, rpcq_error *err)
{
	vesting_csv_reader r;
	vesting_csv_record rec;
	vesting_csv_init(&r, buf, len, first_line);
	for (;;) {
		int got = vesting_csv_next(&r, &rec, err);
		if (got < 0)
			return RPCQ_INVALID_ARGUMENT;
		if (got == 0)
			return RPCQ_OK;
		if (rec.nfields != 6) {
			return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					      "line %llu: %zu fields, expected 6 "
					      "(ACTION,EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,DATE,QUANTITY)",
					      (unsigned long long)rec.line, rec.nfields);
		}
		const vesting_csv_field *f = rec.field;
		vesting_row row = {f[0].ptr, f[0].len, f[1].ptr, f[1].len, f[2].ptr, f[2].len,
				   f[3].ptr, f[3].len, f[4].ptr, f[4].len, f[5].ptr, f[5].len};
		rpcq_status st = vesting_events_add_row(ev, &row, rec.line, err);
		if (st != RPCQ_OK)
			return st;
	}
}
