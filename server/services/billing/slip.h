/*
 * A bill's slip as plain text: UTF-8, 64 columns, the same in an e-mail body
 * and a terminal. It holds what a boleto's "ficha de compensação" prints
 * (beneficiary, payer, document, due date, amount, the typeable line and
 * the barcode's digits) in about 800 bytes, since one is stored per bill and
 * a file brings a million bills. Values longer than their column run past
 * the 64th; control characters and invalid UTF-8 are written as '?', so a
 * stored slip can never carry a terminal escape. Pure, thread-safe.
 */
#ifndef RPCQ_BILLING_SLIP_H
#define RPCQ_BILLING_SLIP_H

#include <stdint.h>

#include "boleto.h"
#include "strbuf.h"

#define SLIP_WIDTH 64

typedef struct slip_input {
	const char *beneficiary; /* the configured name, e.g. "rpcq Billing" */
	const char *payer_name;
	const char *government_id;
	const char *debt_id;
	int64_t amount_cents;
	int32_t due_day;      /* days since 1970-01-01 (date.h) */
	const boleto *boleto; /* made by boleto_make from the same amount and due day */
} slip_input;

/* Appends the slip of in to b (NUL not included). Strings are NUL-terminated
 * and only read. On allocation failure b->failed is set (strbuf.h). */
void slip_render(strbuf *b, const slip_input *in);

#endif
