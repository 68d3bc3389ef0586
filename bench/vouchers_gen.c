/*
 * rpcq-vouchers-gen: a seller's exports for the vouchers benchmark
 * (bench/run-vouchers.sh), orders.csv (order_id,customer_id) and
 * barcodes.csv (barcode,order_id), deterministic for a seed.
 *
 *   rpcq-vouchers-gen [--orders N (1000000)] [--barcodes M (5000000)]
 *                     [--customers C (200000)] [--seed S (1)] [--out DIR (.)]
 *                     [--unused-pct P (10)] [--dup-pct P (1)]
 *                     [--no-barcodes-pct P (0.5)] [--first-barcode B]
 *
 * orders.csv: order ids 1..N in order; customers drawn from 1..C with a skew
 * (a customer's chance falls with its number: u^1.5 over the range, so the
 * first thousand customers hold about 3.5% of the orders, as regulars do).
 * 0.01% more rows repeat an earlier order id, half of them with the same
 * customer, half with another (rejected by the import).
 *
 * barcodes.csv: exactly M rows. Most are the barcodes of the orders, order by
 * order (1..N), every order but --no-barcodes-pct of them getting at least
 * one and the rest spread at random (about 4.5 per order at the defaults);
 * --unused-pct of the rows, interleaved at random, have an empty order_id.
 * Barcodes are 11 digits starting at --first-barcode (default 10000000000),
 * in a scrambled order (an odd multiplier modulo 2^36: no index sees them
 * arrive sorted). --dup-pct of the rows repeat an earlier row's barcode:
 *   40% the same row again (sold or unused),
 *   30% a sold barcode repeated as unused (the sold row wins),
 *   20% an unused barcode repeated as unused,
 *   10% a sold barcode given to a different order (every occurrence rejected).
 * 0.01% of the rows name an order that is not in orders.csv (rejected).
 *
 * Prints a summary on stderr. A pure-unused stock for IssueVouchers is
 * `--orders 0 --unused-pct 100 --dup-pct 0 --first-barcode B` with a B past
 * the first file's barcodes (10000000000 + 2^36 is past any of them).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: small, fast, and the same on every machine. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rnd01(void)
{
	return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n), n > 0. */
static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

/* The i-th barcode: a bijection of [0, 2^36) (odd multiplier), offset. */
static uint64_t barcode_of(uint64_t first, uint64_t i)
{
	return first + ((i * 0x5deece66du) & ((UINT64_C(1) << 36) - 1));
}

typedef struct row {
	uint64_t barcode;
	uint32_t order; /* 0: unused */
} row;

static int fail(const char *what)
{
	fprintf(stderr, "rpcq-vouchers-gen: %s: %s\n", what, strerror(errno));
	return 1;
}

static double number(const char *flag, const char *text, double lo, double hi, int *bad)
{
	char *end;
	errno = 0;
	double v = text ? strtod(text, &end) : 0;
	if (text == NULL || errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "rpcq-vouchers-gen: %s needs a number from %g to %g\n", flag, lo, hi);
		*bad = 1;
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t n_orders = 1000000, n_rows = 5000000, n_customers = 200000, seed = 1;
	uint64_t first = UINT64_C(10000000000);
	double unused_pct = 10, dup_pct = 1, nobc_pct = 0.5;
	const char *out = ".";
	int bad = 0;
	for (int i = 1; i < argc && !bad; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--orders") == 0)
			n_orders = (uint64_t)number(a, v, 0, 4e9, &bad);
		else if (strcmp(a, "--barcodes") == 0)
			n_rows = (uint64_t)number(a, v, 0, 1e9, &bad);
		else if (strcmp(a, "--customers") == 0)
			n_customers = (uint64_t)number(a, v, 1, 4e9, &bad);
		else if (strcmp(a, "--seed") == 0)
			seed = (uint64_t)number(a, v, 0, 1e18, &bad);
		else if (strcmp(a, "--unused-pct") == 0)
			unused_pct = number(a, v, 0, 100, &bad);
		else if (strcmp(a, "--dup-pct") == 0)
			dup_pct = number(a, v, 0, 50, &bad);
		else if (strcmp(a, "--no-barcodes-pct") == 0)
			nobc_pct = number(a, v, 0, 100, &bad);
		else if (strcmp(a, "--first-barcode") == 0)
			first = (uint64_t)number(a, v, 1e10, 8e10, &bad);
		else if (strcmp(a, "--out") == 0 && v)
			out = v;
		else {
			fprintf(stderr,
				"rpcq-vouchers-gen: unknown or incomplete option \"%s\" (see the source's "
				"comment)\n",
				a);
			bad = 1;
		}
	}
	if (bad)
		return 2;
	if (n_orders == 0 && unused_pct < 100) {
		fprintf(stderr, "rpcq-vouchers-gen: --orders 0 needs --unused-pct 100\n");
		return 2;
	}
	rng_state = seed * 0x2545f4914f6cdd1du + 1;

	char path[4096];
	snprintf(path, sizeof path, "%s/orders.csv", out);
	FILE *fo = fopen(path, "w");
	if (fo == NULL)
		return fail(path);
	snprintf(path, sizeof path, "%s/barcodes.csv", out);
	FILE *fb = fopen(path, "w");
	if (fb == NULL)
		return fail(path);
	static char bufo[1 << 20], bufb[1 << 20];
	setvbuf(fo, bufo, _IOFBF, sizeof bufo);
	setvbuf(fb, bufb, _IOFBF, sizeof bufb);

	/* Orders, with their customers kept for the repeats. */
	uint32_t *customer = malloc((n_orders + 1) * sizeof *customer);
	uint32_t *count = calloc(n_orders + 1, sizeof *count);
	if (customer == NULL || count == NULL)
		return fail("memory");
	uint64_t order_dups = 0;
	fputs("order_id,customer_id\n", fo);
	for (uint64_t o = 1; o <= n_orders; o++) {
		customer[o] = 1 + (uint32_t)((double)n_customers * pow(rnd01(), 1.5));
		if (customer[o] > n_customers)
			customer[o] = (uint32_t)n_customers;
		fprintf(fo, "%" PRIu64 ",%" PRIu32 "\n", o, customer[o]);
		if (o > 1 && rnd_below(10000) == 0) {
			uint64_t p = 1 + rnd_below(o);
			uint32_t c = rnd_below(2) ? customer[p] : 1 + (uint32_t)rnd_below(n_customers);
			fprintf(fo, "%" PRIu64 ",%" PRIu32 "\n", p, c);
			order_dups++;
		}
	}

	/* How many rows of each kind, and the barcodes per order. */
	uint64_t n_dups = (uint64_t)((double)n_rows * dup_pct / 100.0);
	uint64_t base = n_rows - n_dups;
	uint64_t unused = n_orders ? (uint64_t)((double)base * unused_pct / 100.0) : base;
	uint64_t sold = base - unused, with = 0;
	for (uint64_t o = 1; o <= n_orders; o++)
		if (rnd01() * 100.0 >= nobc_pct && with < sold) {
			count[o] = 1;
			with++;
		}
	if (with == 0 && sold > 0) {
		fprintf(stderr, "rpcq-vouchers-gen: no order gets a barcode\n");
		return 2;
	}
	for (uint64_t k = with; k < sold; k++) {
		uint64_t o;
		do
			o = 1 + rnd_below(n_orders);
		while (count[o] == 0);
		count[o]++;
	}

	row *rows = malloc((n_rows ? n_rows : 1) * sizeof *rows);
	if (rows == NULL)
		return fail("memory");
	fputs("barcode,order_id\n", fb);
	uint64_t next = 0, emitted = 0, cur = 1, left_in_cur = n_orders ? count[1] : 0;
	uint64_t unused_left = unused, sold_left = sold, dup_left = n_dups, unknown = 0;
	uint64_t kinds[4] = {0};
	while (emitted < n_rows) {
		row r;
		uint64_t rest = unused_left + sold_left + dup_left;
		uint64_t pick = rnd_below(rest);
		if (pick < dup_left && emitted > 0) {
			dup_left--;
			row p = rows[rnd_below(emitted)];
			unsigned kind = (unsigned)rnd_below(10);
			r.barcode = p.barcode;
			if (kind < 4) { /* the same row again */
				r.order = p.order;
				kinds[0]++;
			} else if (kind < 7 && p.order) { /* sold, repeated as unused */
				r.order = 0;
				kinds[1]++;
			} else if (kind < 9 || p.order == 0 || n_orders < 2) { /* unused repeated, or as it was */
				r.order = p.order;
				kinds[2]++;
			} else { /* another order: the owner is unknown */
				r.order = (uint32_t)(1 + (p.order + rnd_below(n_orders - 1)) % n_orders);
				if (r.order == p.order)
					r.order = (uint32_t)(p.order % n_orders + 1);
				kinds[3]++;
			}
		} else if (pick < dup_left + unused_left || sold_left == 0) {
			if (pick < dup_left)
				dup_left--; /* the very first row cannot repeat one */
			else
				unused_left--;
			r.barcode = barcode_of(first, next++);
			r.order = 0;
		} else {
			sold_left--;
			while (left_in_cur == 0)
				left_in_cur = count[++cur];
			left_in_cur--;
			r.barcode = barcode_of(first, next++);
			r.order = (uint32_t)cur;
		}
		rows[emitted++] = r;
		if (r.order && rnd_below(10000) == 0) {
			fprintf(fb, "%" PRIu64 ",%" PRIu64 "\n", r.barcode, n_orders + 1 + rnd_below(1000));
			unknown++;
		} else if (r.order) {
			fprintf(fb, "%" PRIu64 ",%" PRIu32 "\n", r.barcode, r.order);
		} else {
			fprintf(fb, "%" PRIu64 ",\n", r.barcode);
		}
	}
	if (fclose(fo) != 0 || fclose(fb) != 0)
		return fail("writing the files");
	uint64_t without = 0;
	for (uint64_t o = 1; o <= n_orders; o++)
		without += count[o] == 0;
	fprintf(stderr,
		"rpcq-vouchers-gen: seed %" PRIu64 ": orders.csv %" PRIu64 " rows (%" PRIu64
		" repeated order ids), %" PRIu64 " customers at most; barcodes.csv %" PRIu64 " rows: %" PRIu64
		" distinct barcodes, %" PRIu64 " sold rows, %" PRIu64 " unused rows, %" PRIu64 " repeats (same %" PRIu64
		", sold as unused %" PRIu64 ", unused again %" PRIu64 ", other order %" PRIu64 "), %" PRIu64
		" with an unknown order; %" PRIu64 " orders without barcodes\n",
		seed, n_orders + order_dups, order_dups, n_customers, n_rows, next, sold, unused, n_dups, kinds[0],
		kinds[1], kinds[2], kinds[3], unknown, without);
	free(rows);
	free(count);
	free(customer);
	return 0;
}
