/*
 * The events of one computation (a Compute request, an upload session, a
 * ledger batch with the ledger's existing events of the touched awards),
 * validated and stored compactly: employee and award ids are interned in
 * open-addressing hash tables (strings copied once into an arena), and each
 * event is 24 bytes (quantity in micro-shares, award index, day number, line,
 * action). An award is an (employee id, award id) pair: two employees may use
 * the same award id without mixing their shares. An employee's name is the
 * first non-empty name given for that employee id.
 *
 * The award table is the hot path (every row looks its award up; the files
 * the spec names have ten rows per award): a slot carries the award's key
 * text, so a row of a known award costs one slot and one key read, and the
 * employee table is consulted only for new awards and while some employee
 * still lacks a name.
 *
 * Validation (per row, with the row's line number in every message):
 * the number of fields, the action, non-empty ids, the date, the quantity.
 * The CANCEL rule and overflow of totals are checked when a schedule is
 * computed (schedule.h), because they depend on the precision.
 *
 * Not thread-safe: one store, one thread at a time (sessions lock around it).
 */
#ifndef RPCQ_VESTING_EVENTS_H
#define RPCQ_VESTING_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>
#include <rpcq/export.h>

enum { VESTING_VEST = 0, VESTING_CANCEL = 1 };

/* Line 0 marks an event that is already in a ledger (it has no line). */
typedef struct vesting_event {
	int64_t qty;	/* micro-shares, >= 0 */
	uint32_t award; /* award index */
	int32_t day;	/* days since 1970-01-01 */
	uint32_t line;
	uint8_t action; /* VESTING_VEST or VESTING_CANCEL */
} vesting_event;

typedef struct vesting_award {
	const char *id;
	uint32_t id_len;
	uint32_t employee; /* employee index */
} vesting_award;

/* A slot of the award table: the award's key text (employee id, NUL, award
 * id, NUL; ids never hold a NUL), 32 bits of its hash, and its index + 1
 * (0: the slot is empty). */
typedef struct vesting_award_slot {
	const char *key;
	uint32_t tag;
	uint32_t index1;
} vesting_award_slot;

typedef struct vesting_employee {
	const char *id;
	const char *name;
	uint32_t id_len;
	uint32_t name_len;
} vesting_employee;

/* Text of one row, fields already trimmed; the parsed form is a vesting_event. */
typedef struct vesting_row {
	const char *action;
	size_t action_len;
	const char *employee_id;
	size_t employee_id_len;
	const char *employee_name;
	size_t employee_name_len;
	const char *award_id;
	size_t award_id_len;
	const char *date;
	size_t date_len;
	const char *quantity;
	size_t quantity_len;
} vesting_row;

typedef struct vesting_events {
	struct arena *strings; /* ids and names */
	vesting_event *ev;
	size_t nev, cap_ev;
	vesting_award *awards;
	uint32_t naward, cap_award;
	vesting_employee *employees;
	uint32_t nemployee, cap_employee;
	/* Hash tables, power-of-two sizes, at most half full; employee slots
	 * are (32 bits of hash, index + 1). */
	vesting_award_slot *award_slots;
	uint32_t award_mask;
	uint64_t *employee_slots;
	uint32_t employee_mask;
	uint32_t unnamed; /* employees whose name is still empty */
	/* Bumped on every change, so derived orders know when to rebuild. */
	uint64_t version;
	/* 1 to require valid UTF-8 without NUL in ids and names (ledgers). */
	int require_utf8;
} vesting_events;

/* Creates an empty store; *out set only on success (RESOURCE_EXHAUSTED when
 * out of memory). Free with vesting_events_destroy. */
rpcq_status vesting_events_create(vesting_events **out, rpcq_error *err) RPCQ_NODISCARD;

/* Frees the store and everything it holds. NULL is a no-op. */
void vesting_events_destroy(vesting_events *ev);

/* Parses CSV text (csv.h) whose first byte is on line first_line and adds
 * its events. buf is modified (unescaped in place) and not referenced after
 * the call. INVALID_ARGUMENT "line N: reason" on the first bad row; the rows
 * before it stay added (callers discard the store on failure). */
rpcq_status vesting_events_add_csv(vesting_events *ev, char *buf, size_t len, uint64_t first_line,
				   rpcq_error *err) RPCQ_NODISCARD;

/* Validates and adds one row given as text, numbered line. */
rpcq_status vesting_events_add_row(vesting_events *ev, const vesting_row *row, uint64_t line,
				   rpcq_error *err) RPCQ_NODISCARD;

/* Adds an already validated event (from a ledger) with line 0. */
rpcq_status vesting_events_add_parsed(vesting_events *ev, const char *employee_id, size_t employee_id_len,
				      const char *employee_name, size_t employee_name_len, const char *award_id,
				      size_t award_id_len, int action, int32_t day, int64_t qty,
				      rpcq_error *err) RPCQ_NODISCARD;

/* The index of an award, or -1 if the store has no such award. */
int64_t vesting_events_find_award(const vesting_events *ev, const char *employee_id, size_t employee_id_len,
				  const char *award_id, size_t award_id_len);

/* Bytes of memory the store holds (for the sessions' memory cap). */
size_t vesting_events_bytes(const vesting_events *ev);

/* A string quoted for an error message: at most 40 bytes of s, non-printable
 * bytes as '?', in double quotes, written to out (NUL-terminated). */
void vesting_quote_for_message(const char *s, size_t n, char out[48]);

#endif
