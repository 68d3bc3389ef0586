/*
 * The PDF slip (slip_pdf.h). Coordinates are PDF points (1/72 inch) from the
 * page's bottom left corner; the slip fills the top of an A4 page.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <hpdf.h>

#include "date.h"
#include "itf.h"
#include "money.h"
#include "slip_pdf.h"
#include "utf8.h"

#define PAGE_TOP 842.0f
#define LEFT 40.0f
#define WIDTH 515.0f
#define RIGHT_BOX 150.0f /* the right column: due date, debt, government id, amount */
#define ROW 26.0f
#define LABEL_SIZE 6.0f
#define VALUE_SIZE 10.0f
#define PAD 3.0f
/* FEBRABAN's barcode: a narrow module of 0.254 mm (wide ones 3 of those), 13 mm high. */
#define MODULE (0.254f * 72.0f / 25.4f)
#define BAR_HEIGHT (13.0f * 72.0f / 25.4f)
/* One value of the slip in Windows-1252, cut at this many bytes. */
#define TEXT_MAX 256

typedef struct pdf_errors {
	HPDF_STATUS code, detail;
} pdf_errors;

/* libharu calls this for every error; the first one is reported. */
static void on_error(HPDF_STATUS code, HPDF_STATUS detail, void *user)
{
	pdf_errors *e = user;
	if (e->code == 0) {
		e->code = code;
		e->detail = detail;
	}
}

/* The Windows-1252 byte of code point cp, or '?'. */
static char winansi(uint32_t cp)
{
	static const struct {
		uint16_t cp;
		unsigned char byte;
	} high[] = {{0x20ac, 0x80}, {0x201a, 0x82}, {0x0192, 0x83}, {0x201e, 0x84}, {0x2026, 0x85}, {0x2020, 0x86},
		    {0x2021, 0x87}, {0x02c6, 0x88}, {0x2030, 0x89}, {0x0160, 0x8a}, {0x2039, 0x8b}, {0x0152, 0x8c},
		    {0x017d, 0x8e}, {0x2018, 0x91}, {0x2019, 0x92}, {0x201c, 0x93}, {0x201d, 0x94}, {0x2022, 0x95},
		    {0x2013, 0x96}, {0x2014, 0x97}, {0x02dc, 0x98}, {0x2122, 0x99}, {0x0161, 0x9a}, {0x203a, 0x9b},
		    {0x0153, 0x9c}, {0x017e, 0x9e}, {0x0178, 0x9f}};
	if ((cp >= 0x20 && cp < 0x7f) || (cp >= 0xa0 && cp <= 0xff))
		return (char)cp;
	for (size_t i = 0; i < sizeof(high) / sizeof(high[0]); i++)
		if (high[i].cp == cp)
			return (char)high[i].byte;
	return '?';
}

/* s as NUL-terminated Windows-1252 in out[TEXT_MAX + 1]. */
static const char *to_winansi(const char *s, char *out)
{
	size_t n = strlen(s), k = 0;
	int ok = utf8_valid(s, n);
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end && k < TEXT_MAX) {
		uint32_t cp = *p;
		if (!ok || cp < 0x80) {
			p++;
			out[k++] = cp < 0x80 ? winansi(cp) : '?';
			continue;
		}
		int more = cp < 0xe0 ? 1 : cp < 0xf0 ? 2 : 3;
		cp &= 0x3fu >> more;
		for (int i = 1; i <= more; i++)
			cp = cp << 6 | (p[i] & 0x3fu);
		p += 1 + more;
		out[k++] = winansi(cp);
	}
	out[k] = '\0';
	return out;
}

typedef struct page {
	HPDF_Page pg;
	HPDF_Font regular, bold;
} page;

/* Writes text (Windows-1252) at x, y, cut to width. */
static void text_at(const page *p, HPDF_Font font, float size, float x, float y, float width, const char *text)
{
	HPDF_UINT n = HPDF_Font_MeasureText(font, (const HPDF_BYTE *)text, (HPDF_UINT)strlen(text), width, size, 0, 0,
					    HPDF_FALSE, NULL);
	char cut[TEXT_MAX + 1];
	if (n > TEXT_MAX)
		n = TEXT_MAX;
	memcpy(cut, text, n);
	cut[n] = '\0';
	HPDF_Page_BeginText(p->pg);
	HPDF_Page_SetFontAndSize(p->pg, font, size);
	HPDF_Page_TextOut(p->pg, x, y, cut);
	HPDF_Page_EndText(p->pg);
}

/* One box of the form: its outline, a small label on top, the value below
 * (UTF-8, converted here). */
static void box(const page *p, float x, float top, float w, const char *label, const char *value, int bold)
{
	char text[TEXT_MAX + 1];
	HPDF_Page_Rectangle(p->pg, x, top - ROW, w, ROW);
	HPDF_Page_Stroke(p->pg);
	text_at(p, p->regular, LABEL_SIZE, x + PAD, top - PAD - LABEL_SIZE, w - 2 * PAD, label);
	text_at(p, bold ? p->bold : p->regular, VALUE_SIZE, x + PAD, top - ROW + PAD + 2, w - 2 * PAD,
		to_winansi(value, text));
}

/* The barcode's bars from x at y (their bottom). */
static void bars(const page *p, float x, float y, const char *digits)
{
	unsigned char w[ITF_ELEMENTS(BOLETO_BARCODE_LEN)];
	size_t n = itf_encode(digits, strlen(digits), w, sizeof(w));
	HPDF_Page_SetGrayFill(p->pg, 0);
	for (size_t i = 0; i < n; i++) {
		if (i % 2 == 0)
			HPDF_Page_Rectangle(p->pg, x, y, w[i] * MODULE, BAR_HEIGHT);
		x += w[i] * MODULE;
	}
	if (n > 0)
		HPDF_Page_Fill(p->pg);
}

static void draw(const page *p, const slip_input *in)
{
	const boleto *bo = in->boleto;
	char amount[MONEY_FORMAT_MAX], due[11], bank[16], title[TEXT_MAX + 1];
	money_format(in->amount_cents, amount);
	date_format(in->due_day, due);
	snprintf(bank, sizeof(bank), "Bank %.3s", bo->barcode);

	float top = PAGE_TOP - 60;
	/* The head: beneficiary, bank, typeable line, over a thick rule. */
	text_at(p, p->bold, 13, LEFT, top - 16, 130, to_winansi(in->beneficiary, title));
	text_at(p, p->bold, 13, LEFT + 135, top - 16, 65, bank);
	text_at(p, p->bold, 10.5f, LEFT + 200, top - 16, WIDTH - 200, bo->printed);
	HPDF_Page_SetLineWidth(p->pg, 1.5f);
	HPDF_Page_MoveTo(p->pg, LEFT, top - 22);
	HPDF_Page_LineTo(p->pg, LEFT + WIDTH, top - 22);
	HPDF_Page_Stroke(p->pg);
	HPDF_Page_SetLineWidth(p->pg, 0.5f);

	top -= 22;
	float lw = WIDTH - RIGHT_BOX, rx = LEFT + lw;
	box(p, LEFT, top, lw, "Place of payment", "Any bank, lottery agent or banking app, by the due date", 0);
	box(p, rx, top, RIGHT_BOX, "Due date", due, 1);
	top -= ROW;
	box(p, LEFT, top, lw, "Beneficiary", in->beneficiary, 0);
	box(p, rx, top, RIGHT_BOX, "Amount", amount, 1);
	top -= ROW;
	box(p, LEFT, top, lw, "Payer", in->payer_name, 0);
	box(p, rx, top, RIGHT_BOX, "Government ID", in->government_id, 0);
	top -= ROW;
	box(p, LEFT, top, WIDTH, "Debt", in->debt_id, 0);
	top -= ROW;
	box(p, LEFT, top, WIDTH, "Instructions", "Pay with the typeable line above or the barcode below.", 0);
	top -= ROW;

	bars(p, LEFT, top - 8 - BAR_HEIGHT, bo->barcode);
	text_at(p, p->regular, 7, LEFT, top - 8 - BAR_HEIGHT - 10, WIDTH, bo->barcode);
	text_at(p, p->regular, LABEL_SIZE, LEFT + WIDTH - 90, top - 8 - BAR_HEIGHT - 10, 90,
		to_winansi("Ficha de compensa\xc3\xa7\xc3\xa3o", title));
}

rpcq_status slip_pdf_render(strbuf *b, const slip_input *in, rpcq_error *err)
{
	pdf_errors e = {0, 0};
	HPDF_Doc pdf = HPDF_New(on_error, &e);
	if (pdf == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a PDF slip");
	char title[TEXT_MAX + 1], text[TEXT_MAX + 1];
	snprintf(title, sizeof(title), "Bill of debt %s", to_winansi(in->debt_id, text));
	HPDF_SetCompressionMode(pdf, HPDF_COMP_ALL);
	HPDF_SetInfoAttr(pdf, HPDF_INFO_TITLE, title);
	HPDF_SetInfoAttr(pdf, HPDF_INFO_CREATOR, "rpcq billing");
	page p = {HPDF_AddPage(pdf), HPDF_GetFont(pdf, "Helvetica", "WinAnsiEncoding"),
		  HPDF_GetFont(pdf, "Helvetica-Bold", "WinAnsiEncoding")};
	if (e.code == 0) {
		HPDF_Page_SetSize(p.pg, HPDF_PAGE_SIZE_A4, HPDF_PAGE_PORTRAIT);
		draw(&p, in);
	}
	if (e.code == 0)
		HPDF_SaveToStream(pdf);
	HPDF_UINT32 size = e.code == 0 ? HPDF_GetStreamSize(pdf) : 0;
	if (e.code == 0 && strbuf_reserve(b, size) == 0) {
		HPDF_UINT32 got = size;
		HPDF_STATUS r = HPDF_ReadFromStream(pdf, (HPDF_BYTE *)b->data + b->len, &got);
		if (r == HPDF_STREAM_EOF && got == size && e.code == HPDF_STREAM_EOF)
			e.code = 0; /* read to its end, which libharu reports as an error */
		if (e.code == 0)
			b->len += got;
	}
	HPDF_Free(pdf);
	if (e.code == HPDF_FAILD_TO_ALLOC_MEM || (e.code == 0 && b->failed))
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory for a PDF slip");
	if (e.code != 0)
		return rpcq_error_set(err, RPCQ_INTERNAL,
				      "making the PDF slip failed: libharu error 0x%04X (detail %u)", (unsigned)e.code,
				      (unsigned)e.detail);
	return RPCQ_OK;
}
