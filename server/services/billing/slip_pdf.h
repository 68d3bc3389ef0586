/*
 * A bill's slip as a PDF: one A4 page drawn with libharu, laid out as a
 * boleto's "ficha de compensação" (the bank and the typeable line on top;
 * boxes for the place of payment, due date, beneficiary, debt, payer,
 * government id, instructions and amount; the barcode's 44 digits as
 * Interleaved 2 of 5 bars, itf.h, 103 mm by 13 mm, below). The same fields
 * as the text slip (slip.h), from the same slip_input.
 *
 * Text is set in the PDF base-14 Helvetica with WinAnsiEncoding, so no font
 * is embedded (a page is about 3 KB): characters of Windows-1252 (every
 * Latin-1 letter, so Portuguese and Spanish names) are kept, others, control
 * characters and bytes of text that is not UTF-8 are written '?'; a value
 * wider than its box is cut at the box's edge. The output is the same bytes
 * for the same input (no dates, no document id). Thread-safe: every call
 * makes its own document.
 */
#ifndef RPCQ_BILLING_SLIP_PDF_H
#define RPCQ_BILLING_SLIP_PDF_H

#include <rpcq/error.h>

#include "slip.h"
#include "strbuf.h"

/* Appends the PDF of in to b. RESOURCE_EXHAUSTED when memory runs out,
 * INTERNAL when libharu reports an error (its code in the message). */
rpcq_status slip_pdf_render(strbuf *b, const slip_input *in, rpcq_error *err);

#endif
