/*
 * The bill's payment code and slip (server/services/billing/boleto.h,
 * slip.h): a published boleto reproduced digit for digit, the due-date
 * factor across FEBRABAN's 2025 restart, properties of every generated line
 * (it checks; a changed digit fails, with the one blind spot mod 11 has by
 * its rule), distinct bill numbers giving distinct codes, refused inputs,
 * and the text slip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "boleto.h"
#include "date.h"
#include "slip.h"

static int32_t day_of(const char *s)
{
	int32_t d;
	assert_int_equal(date_parse(s, strlen(s), &d), DATE_OK);
	return d;
}

/* A published example: the test of the npm package boleto_parser 0.0.1-b,
 * dist/lib/convert_barcode_to_line.spec.js
 * (https://app.unpkg.com/boleto_parser@0.0.1-b/files/dist/lib/convert_barcode_to_line.spec.js),
 * a boleto of bank 077 for 151.30 whose barcode
 * 07797900200000151300001112064449900815936556 prints as
 * 07790.00116 12064.449908 08159.365561 7 90020000015130. Its factor 9002 is
 * 2022-05-31 (and, after the 2025 restart, 2047-01-20 again). */
static void test_a_published_boleto_is_reproduced_digit_for_digit(void **state)
{
	(void)state;
	const char *bc = "07797900200000151300001112064449900815936556";
	const char *line = "07790001161206444990808159365561790020000015130";
	assert_int_equal(boleto_mod11(bc), 7);
	assert_int_equal(boleto_mod10("077900011", 9), 6);
	assert_int_equal(boleto_mod10("1206444990", 10), 8);
	assert_int_equal(boleto_mod10("0815936556", 10), 1);
	assert_true(boleto_check_line(line));
	char back[BOLETO_BARCODE_LEN + 1];
	assert_int_equal(boleto_line_to_barcode(line, back), 0);
	assert_string_equal(back, bc);
	char printed[BOLETO_PRINTED_LEN + 1];
	boleto_print_line(line, printed);
	assert_string_equal(printed, "07790.00116 12064.449908 08159.365561 7 90020000015130");

	/* The same slip from its parts: the free field 00011 | 12064449900815936556
	 * reads as our agreement and bill number. */
	static const char *const due[] = {"2022-05-31", "2047-01-20"};
	for (size_t i = 0; i < 2; i++) {
		boleto_input in = {77, 11, UINT64_C(12064449900815936556), day_of(due[i]), 15130};
		boleto b;
		rpcq_error err;
		assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
		assert_string_equal(b.barcode, bc);
		assert_string_equal(b.line, line);
		assert_string_equal(b.printed, "07790.00116 12064.449908 08159.365561 7 90020000015130");
		assert_int_equal(b.factor, 9002);
	}
}

static void test_due_date_factors_restart_at_1000_on_2025_02_22(void **state)
{
	(void)state;
	assert_int_equal(boleto_factor(day_of("1997-10-07")), 0);
	assert_int_equal(boleto_factor(day_of("1900-01-01")), 0);
	assert_int_equal(boleto_factor(day_of("1997-10-08")), 1);
	assert_int_equal(boleto_factor(day_of("2000-07-03")), 1000);
	assert_int_equal(boleto_factor(day_of("2025-02-21")), 9999);
	assert_int_equal(boleto_factor(day_of("2025-02-22")), 1000);
	assert_int_equal(boleto_factor(day_of("2025-02-23")), 1001);
	assert_int_equal(boleto_factor(day_of("2049-10-13")), 9999);
	assert_int_equal(boleto_factor(day_of("2049-10-14")), 1000);
	assert_int_equal(boleto_factor(day_of("9999-12-31")), 1000 + (DATE_DAY_MAX - day_of("2025-02-22")) % 9000);
	/* From 2000-07-03 on, the factor always has 4 digits and advances by a day. */
	for (int32_t d = day_of("2000-07-04"); d < day_of("2100-01-01"); d++) {
		unsigned f = boleto_factor(d), prev = boleto_factor(d - 1);
		assert_true(f >= 1000 && f <= 9999);
		assert_int_equal(f, prev == 9999 ? 1000 : prev + 1);
	}
}

/* The mod 11 remainder of a barcode, computed here apart from boleto.c. */
static unsigned remainder11(const char *bc)
{
	static const unsigned w[8] = {2, 3, 4, 5, 6, 7, 8, 9};
	unsigned sum = 0, k = 0;
	for (int i = 43; i >= 0; i--)
		if (i != 4)
			sum += (unsigned)(bc[i] - '0') * w[k++ % 8];
	return sum % 11;
}

static uint64_t next_random(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_every_generated_line_checks_and_a_changed_digit_fails(void **state)
{
	(void)state;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int32_t first = day_of("1997-10-08"), last = day_of("2100-12-31");
	size_t blind = 0;
	for (int n = 0; n < 2000; n++) {
		boleto_input in;
		in.bank = (unsigned)(next_random(&seed) % 1000);
		in.agreement = (unsigned)(next_random(&seed) % (BOLETO_AGREEMENT_MAX + 1));
		in.number = next_random(&seed) >> (next_random(&seed) % 64);
		in.due_day = first + (int32_t)(next_random(&seed) % (uint64_t)(last - first + 1));
		in.amount_cents = (int64_t)(next_random(&seed) % (uint64_t)(BOLETO_AMOUNT_MAX + 1));
		boleto b;
		rpcq_error err;
		assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
		assert_int_equal(strlen(b.barcode), BOLETO_BARCODE_LEN);
		assert_int_equal(strlen(b.line), BOLETO_LINE_LEN);
		assert_int_equal(strlen(b.printed), BOLETO_PRINTED_LEN);
		assert_true(boleto_check_line(b.line));
		/* The general digit: 11 - remainder, 0, 10 and 11 written as 1. */
		unsigned r = remainder11(b.barcode), dv = 11 - r;
		assert_int_equal(b.barcode[4] - '0', dv >= 10 ? 1 : dv);
		char back[BOLETO_BARCODE_LEN + 1];
		assert_int_equal(boleto_line_to_barcode(b.line, back), 0);
		assert_string_equal(back, b.barcode);
		/* Any one digit changed: fields 1-3 by their mod 10, field 4 and 5
		 * by the mod 11, except where that rule writes three remainders
		 * (0, 1 and 10) as the same digit 1. */
		for (size_t pos = 0; pos < BOLETO_LINE_LEN; pos++) {
			for (char d = '0'; d <= '9'; d++) {
				if (d == b.line[pos])
					continue;
				char changed[BOLETO_LINE_LEN + 1];
				memcpy(changed, b.line, sizeof(changed));
				changed[pos] = d;
				if (!boleto_check_line(changed))
					continue;
				char cbc[BOLETO_BARCODE_LEN + 1];
				assert_int_equal(boleto_line_to_barcode(changed, cbc), 0);
				assert_true(pos >= 33);
				unsigned rc = remainder11(cbc);
				assert_true((rc <= 1 || rc == 10) && (r <= 1 || r == 10));
				blind++;
			}
		}
	}
	/* The blind spot exists: a line's remainder is one of the three 3 times
	 * in 11, and a change then lands on one of the other two about 2 times
	 * in 10, so about 5.5% of the changes to field 5 pass. */
	print_message("%zu of %d changes to field 5 pass the check digits\n", blind, 2000 * 14 * 9);
	assert_true(blind > 2000 * 14 * 9 / 25 && blind < 2000 * 14 * 9 / 12);

	/* Not 47 digits. */
	assert_false(boleto_check_line(""));
	assert_false(boleto_check_line("0779000116120644499080815936556179002000001513"));
	assert_false(boleto_check_line("077900011612064449908081593655617900200000151300"));
	assert_false(boleto_check_line("07790.00116 12064.449908 08159.365561 7 90020000015130"));
	assert_false(boleto_check_line("0779000116120644499080815936556179002000001513a"));
}

static void test_distinct_bill_numbers_give_distinct_codes(void **state)
{
	(void)state;
	static const uint64_t numbers[] = {0, 1, 10, 99999, 100000, UINT64_C(12345678901234567890), UINT64_MAX};
	char seen[sizeof(numbers) / sizeof(numbers[0])][BOLETO_LINE_LEN + 1];
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		boleto_input in = {1, 4321, numbers[i], day_of("2024-01-19"), 781100};
		boleto b;
		rpcq_error err;
		assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
		char free_field[26];
		snprintf(free_field, sizeof(free_field), "04321%020llu", (unsigned long long)numbers[i]);
		assert_memory_equal(b.barcode + 19, free_field, 25);
		assert_memory_equal(b.barcode, "0019", 4);
		assert_memory_equal(b.barcode + 5, "96000000781100", 14); /* factor 9600 */
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(seen[j], b.line);
		memcpy(seen[i], b.line, sizeof(seen[i]));
	}
}

static void test_inputs_a_boleto_cannot_carry_are_refused(void **state)
{
	(void)state;
	boleto b;
	rpcq_error err;
	boleto_input ok = {341, 0, 7, day_of("2024-01-19"), BOLETO_AMOUNT_MAX};
	assert_int_equal(boleto_make(&ok, &b, &err), RPCQ_OK);
	assert_memory_equal(b.barcode + 9, "9999999999", 10);
	boleto_input in = ok;
	in.amount_cents = BOLETO_AMOUNT_MAX + 1;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "amount of 10000000000 cents does not fit the boleto's 10 digits");
	in.amount_cents = -1;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_INVALID_ARGUMENT);
	in = ok;
	in.due_day = day_of("1997-10-07");
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_INVALID_ARGUMENT);
	assert_string_equal(err.message, "a due date before 1997-10-08 has no boleto factor");
	in = ok;
	in.bank = 1000;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_INVALID_ARGUMENT);
	in = ok;
	in.agreement = BOLETO_AGREEMENT_MAX + 1;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_INVALID_ARGUMENT);
}

static void test_the_slip_is_compact_text_with_every_field(void **state)
{
	(void)state;
	boleto_input in = {1, 4321, 42, day_of("2024-01-19"), 781100};
	boleto b;
	rpcq_error err;
	assert_int_equal(boleto_make(&in, &b, &err), RPCQ_OK);
	slip_input s = {"rpcq Billing", "Elijah Santos", "9558", "ea23f2ca-663a-4266-a742-9da4c9f4fcb3",
			781100,		in.due_day,	 &b};
	strbuf buf = STRBUF_INIT;
	slip_render(&buf, &s);
	strbuf_putc(&buf, '\0');
	assert_false(buf.failed);
	char expect[2048];
	snprintf(expect, sizeof(expect),
		 "rpcq Billing                                            Bank 001\n"
		 "================================================================\n"
		 "%s\n"
		 "----------------------------------------------------------------\n"
		 "Beneficiary   rpcq Billing\n"
		 "Payer         Elijah Santos\n"
		 "Government ID 9558\n"
		 "Debt          ea23f2ca-663a-4266-a742-9da4c9f4fcb3\n"
		 "Due date      2024-01-19\n"
		 "Amount        7811.00\n"
		 "----------------------------------------------------------------\n"
		 "Barcode       %s\n"
		 "================================================================\n"
		 "Pay by the due date at any bank, lottery agent or banking app,\n"
		 "with the typeable line above or the barcode.\n",
		 b.printed, b.barcode);
	assert_string_equal(buf.data, expect);
	assert_true(buf.len - 1 < 1024);
	/* No line is wider than the slip. */
	for (const char *p = buf.data; *p;) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true(nl - p <= SLIP_WIDTH);
		p = nl + 1;
	}
	strbuf_fini(&buf);

	/* Accents count as one column; control bytes and broken UTF-8 never
	 * reach the text. */
	s.beneficiary = "Cobran\xc3\xa7"
			"as";
	s.payer_name = "Jo\xc3\xa3o \x1b[31m";
	s.debt_id = "d\xff";
	slip_render(&buf, &s);
	strbuf_putc(&buf, '\0');
	assert_memory_equal(buf.data,
			    "Cobran\xc3\xa7"
			    "as",
			    10);
	assert_int_equal(strchr(buf.data, '\n') - buf.data, SLIP_WIDTH + 1);
	assert_non_null(strstr(buf.data, "Payer         Jo\xc3\xa3o ?[31m\n"));
	assert_non_null(strstr(buf.data, "Debt          d?\n"));
	assert_null(strchr(buf.data, '\x1b'));
	strbuf_fini(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_published_boleto_is_reproduced_digit_for_digit),
		cmocka_unit_test(test_due_date_factors_restart_at_1000_on_2025_02_22),
		cmocka_unit_test(test_every_generated_line_checks_and_a_changed_digit_fails),
		cmocka_unit_test(test_distinct_bill_numbers_give_distinct_codes),
		cmocka_unit_test(test_inputs_a_boleto_cannot_carry_are_refused),
		cmocka_unit_test(test_the_slip_is_compact_text_with_every_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
