/*
 * The text slip (slip.h). Every line is built from a label column and a
 * value; widths count code points, not bytes, so names with accents line up.
 */
#include <string.h>

#include "date.h"
#include "money.h"
#include "slip.h"
#include "utf8.h"

#define LABEL_WIDTH 14

static const char footer[] = "Pay by the due date at any bank, lottery agent or banking app,\n"
			     "with the typeable line above or the barcode.\n";

/* Appends s sanitized; returns its width in code points. */
static size_t put_text(strbuf *b, const char *s)
{
	size_t n = strlen(s), w = 0;
	int ok = utf8_valid(s, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !ok)) {
			strbuf_putc(b, '?');
			w++;
			continue;
		}
		strbuf_putc(b, (char)ch);
		if ((ch & 0xc0) != 0x80)
			w++;
	}
	return w;
}

static void put_repeat(strbuf *b, char ch, size_t n)
{
	for (size_t i = 0; i < n; i++)
		strbuf_putc(b, ch);
}

static void put_field(strbuf *b, const char *label, const char *value)
{
	size_t w = put_text(b, label);
	put_repeat(b, ' ', w < LABEL_WIDTH ? LABEL_WIDTH - w : 1);
	put_text(b, value);
	strbuf_putc(b, '\n');
}

void slip_render(strbuf *b, const slip_input *in)
{
	const boleto *bo = in->boleto;
	char amount[MONEY_FORMAT_MAX], due[11], bank[16];
	money_format(in->amount_cents, amount);
	date_format(in->due_day, due);
	memcpy(bank, "Bank ", 5);
	memcpy(bank + 5, bo->barcode, 3);
	bank[8] = '\0';

	/* The head: beneficiary on the left, the bank on the right. */
	size_t w = put_text(b, in->beneficiary);
	put_repeat(b, ' ', w + 8 + 1 < SLIP_WIDTH ? SLIP_WIDTH - w - 8 : 1);
	strbuf_append(b, bank, 8);
	strbuf_putc(b, '\n');
	put_repeat(b, '=', SLIP_WIDTH);
	strbuf_putc(b, '\n');
	strbuf_append(b, bo->printed, strlen(bo->printed));
	strbuf_putc(b, '\n');
	put_repeat(b, '-', SLIP_WIDTH);
	strbuf_putc(b, '\n');
	put_field(b, "Beneficiary", in->beneficiary);
	put_field(b, "Payer", in->payer_name);
	put_field(b, "Government ID", in->government_id);
	put_field(b, "Debt", in->debt_id);
	put_field(b, "Due date", due);
	put_field(b, "Amount", amount);
	put_repeat(b, '-', SLIP_WIDTH);
	strbuf_putc(b, '\n');
	put_field(b, "Barcode", bo->barcode);
	put_repeat(b, '=', SLIP_WIDTH);
	strbuf_putc(b, '\n');
	strbuf_append(b, footer, sizeof(footer) - 1);
}
