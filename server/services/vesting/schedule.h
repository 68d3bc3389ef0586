/*
 * The vesting computation over an event store (events.h): per award, the sum
 * of its VEST quantities dated on or before the target date minus the sum of
 * its CANCEL quantities dated on or before it, every quantity first truncated
 * to the precision; and the checks that depend on the precision: a CANCEL may
 * not exceed what its award had vested (net of earlier cancels) on or before
 * the cancel's own date, and no total may overflow int64 micro-shares.
 *
 * A plan is the store's events grouped by award (counting sort) and ordered
 * by (day, VEST before CANCEL, line) within each award, plus the awards in
 * output order (employee id, then award id, by bytes). It is built once per
 * store version and reused for every target date and precision: a session
 * asked for several pages or dates sorts once.
 *
 * Pure functions over memory. A plan is immutable once built and may be read
 * by several threads; it refers to the store, which must outlive it unchanged.
 */
#ifndef RPCQ_VESTING_SCHEDULE_H
#define RPCQ_VESTING_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>
#include <rpcq/export.h>

#include "strbuf.h"
#include "events.h"

typedef struct vesting_plan vesting_plan;

/* Builds the plan of ev (at its current version). *out set on success only;
 * RESOURCE_EXHAUSTED when out of memory. Free with vesting_plan_destroy. */
rpcq_status vesting_plan_create(vesting_plan **out, const vesting_events *ev, rpcq_error *err) RPCQ_NODISCARD;

void vesting_plan_destroy(vesting_plan *p);

/* The store version the plan was built from. */
uint64_t vesting_plan_version(const vesting_plan *p);

/* Awards in output order: *n entries of award indexes, owned by the plan. */
const uint32_t *vesting_plan_order(const vesting_plan *p, size_t *n);

/* Checks the CANCEL rule and overflow at precision (0..6) over every award of
 * the store and, if target_day is not NULL, writes each award's vested total
 * at *target_day into totals[award] (micro-shares, a multiple of the
 * precision's unit). INVALID_ARGUMENT naming the line of the offending event
 * ("line 7: CANCEL of 700 ..."); events without a line (already in a ledger)
 * are named by award and date. */
rpcq_status vesting_plan_compute(const vesting_plan *p, int precision, const int32_t *target_day, int64_t *totals,
				 rpcq_error *err) RPCQ_NODISCARD;

/* The number of events of award a (an upper bound of its distinct days). */
uint32_t vesting_plan_award_events(const vesting_plan *p, uint32_t a);

/* The events of award a in plan order (day, VEST before CANCEL, line), as
 * *n indexes into the store's events; owned by the plan. */
const uint32_t *vesting_plan_award_event_indexes(const vesting_plan *p, uint32_t a, uint32_t *n);

/* The running totals of award a as a ledger stores them: its distinct days
 * ascending into days[], and for each precision p (0..6) and day i the total
 * at the end of that day into cum[p * ndays + i]. Returns ndays. Both arrays
 * hold vesting_plan_award_events(p, a) days. Call only after
 * vesting_plan_compute succeeded at every precision (no overflow). */
size_t vesting_plan_award_days(const vesting_plan *p, uint32_t a, int32_t *days, int64_t *cum);

/* Appends "EMPLOYEE_ID,EMPLOYEE_NAME,AWARD_ID,QUANTITY" (fields quoted as
 * RFC 4180 needs, no line break) for award a of ev with total micro. */
void vesting_write_line(strbuf *b, const vesting_events *ev, uint32_t a, int64_t micro, int precision);

#endif
