/*
 * libFuzzer target for the vesting CSV input (server/services/vesting): any
 * bytes a client may upload are parsed into an event store, and when they are
 * valid, a schedule is computed at a precision and target date taken from the
 * first bytes. The same text split where csv_complete says a chunk
 * may end must parse to the same number of events, as an upload session
 * would. Run under ASan+UBSan: crashes, leaks and undefined behaviour are the
 * findings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "events.h"
#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses text (copied) into a new store; NULL when it is invalid. */
static vesting_events *parse(const uint8_t *data, size_t size)
{
	rpcq_error err;
	vesting_events *ev = NULL;
	char *copy = malloc(size ? size : 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, data, size);
	if (vesting_events_create(&ev, &err) != RPCQ_OK)
		goto out;
	if (vesting_events_add_csv(ev, copy, size, 1, &err) != RPCQ_OK) {
		if (err.code != RPCQ_INVALID_ARGUMENT && err.code != RPCQ_RESOURCE_EXHAUSTED)
			abort();
		vesting_events_destroy(ev);
		ev = NULL;
	}
out:
	free(copy);
	return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int precision = data[0] % 7;
	int32_t target = 18000 + (int32_t)data[1] * 10;
	data += 2;
	size -= 2;

	vesting_events *ev = parse(data, size);
	if (ev == NULL)
		return 0;
	rpcq_error err;
	vesting_plan *plan = NULL;
	int64_t *totals = calloc(ev->naward + 1, sizeof(*totals));
	if (totals && vesting_plan_create(&plan, ev, &err) == RPCQ_OK &&
	    vesting_plan_compute(plan, precision, &target, totals, &err) == RPCQ_OK) {
		size_t n;
		const uint32_t *order = vesting_plan_order(plan, &n);
		strbuf b = STRBUF_INIT;
		for (size_t i = 0; i < n; i++) {
			if (totals[order[i]] < 0)
				abort();
			vesting_write_line(&b, ev, order[i], totals[order[i]], precision);
		}
		strbuf_fini(&b);
	}

	/* Split at the carry point: the whole records, then the rest. */
	size_t cut = csv_complete((const char *)data, size);
	if (cut > size)
		abort();
	vesting_events *head = parse(data, cut);
	if (head == NULL)
		abort(); /* a prefix of valid whole records is valid */
	if (head->nev > ev->nev)
		abort();
	vesting_events_destroy(head);

	vesting_plan_destroy(plan);
	free(totals);
	vesting_events_destroy(ev);
	return 0;
}
