/*
 * rpcq-billing-gen: a debts file for the billing benchmark
 * (bench/run-billing.sh), in the shape of ../shared/data/billing/debts_sample.csv:
 *
 *   name,governmentId,email,debtAmount,debtDueDate,debtId
 *
 *   rpcq-billing-gen [--rows N (1100000)] [--seed S (1)] [--repeat-pct P (2.63)]
 *                    [--decimal-pct P (5)] [--unique] [--out FILE (stdout)]
 *
 * N data rows after the header (about 95 bytes a row: 1.1M rows are about
 * 105 MB). Each distinct debt is a pure function of the seed and its number,
 * so a repeat is the same bytes again:
 *   - name: "First Last" from lists of common names, some with a title
 *     (Mr., Mrs., Ms., Miss, Dr.) or a suffix (MD, DDS, PhD, DVM, Jr., II);
 *   - governmentId: 4 digits (1000-9999), as in the sample;
 *   - email: a local part made of other names and digits (janet95,
 *     linmichael, urangel) at example.com, .net or .org;
 *   - debtAmount: whole 1000-9999, --decimal-pct of them with 2 decimals;
 *   - debtDueDate: a calendar date in 2022-2025;
 *   - debtId: a random (version 4) UUID.
 *
 * Repeats as the sample has them (54 of its 2,053 rows: runs of 7 to 15
 * consecutive rows sent again a few hundred rows later, a quarter of them
 * three more times back to back): --repeat-pct of the rows repeat an earlier
 * row identically, in runs of 7-15 rows copied from among the last 1,000
 * distinct rows, 1 or (a quarter of the runs) 3 copies. No row is in two runs,
 * so a row occurs once, twice or four times. --unique writes the distinct
 * rows only (the same debts, the same order, no repeats): the file a bare COPY
 * into a debt_id primary key can load.
 *
 * A summary goes to stderr: rows, distinct debts, repeated rows, runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rng {
	uint64_t s;
} rng;

/* splitmix64: small, fast, and the same on every machine. */
static uint64_t rnd(rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static double rnd01(rng *r)
{
	return (double)(rnd(r) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t rnd_below(rng *r, uint64_t n)
{
	return rnd(r) % n;
}

static const char *const first_names[] = {
	"James",     "Mary",	  "Robert",  "Patricia",  "John",	 "Jennifer",   "Michael",   "Linda",
	"David",     "Elizabeth", "William", "Barbara",	  "Richard",	 "Susan",      "Joseph",    "Jessica",
	"Thomas",    "Sarah",	  "Charles", "Karen",	  "Christopher", "Lisa",       "Daniel",    "Nancy",
	"Matthew",   "Betty",	  "Anthony", "Margaret",  "Mark",	 "Sandra",     "Donald",    "Ashley",
	"Steven",    "Kimberly",  "Paul",    "Emily",	  "Andrew",	 "Donna",      "Joshua",    "Michelle",
	"Kenneth",   "Carol",	  "Kevin",   "Amanda",	  "Brian",	 "Melissa",    "George",    "Deborah",
	"Timothy",   "Stephanie", "Ronald",  "Rebecca",	  "Edward",	 "Sharon",     "Jason",	    "Laura",
	"Jeffrey",   "Cynthia",	  "Ryan",    "Kathleen",  "Jacob",	 "Amy",	       "Gary",	    "Angela",
	"Nicholas",  "Shirley",	  "Eric",    "Anna",	  "Jonathan",	 "Brenda",     "Stephen",   "Pamela",
	"Larry",     "Emma",	  "Justin",  "Nicole",	  "Scott",	 "Helen",      "Brandon",   "Samantha",
	"Benjamin",  "Katherine", "Samuel",  "Christine", "Gregory",	 "Debra",      "Alexander", "Rachel",
	"Frank",     "Carolyn",	  "Patrick", "Janet",	  "Raymond",	 "Catherine",  "Jack",	    "Maria",
	"Dennis",    "Heather",	  "Jerry",   "Diane",	  "Tyler",	 "Ruth",       "Aaron",	    "Julie",
	"Jose",	     "Olivia",	  "Adam",    "Joyce",	  "Nathan",	 "Virginia",   "Henry",	    "Victoria",
	"Douglas",   "Kelly",	  "Zachary", "Lauren",	  "Peter",	 "Christina",  "Kyle",	    "Joan",
	"Ethan",     "Evelyn",	  "Walter",  "Judith",	  "Noah",	 "Megan",      "Jeremy",    "Andrea",
	"Christian", "Cheryl",	  "Keith",   "Hannah",	  "Roger",	 "Jacqueline", "Terry",	    "Martha",
	"Gerald",    "Gloria",	  "Harold",  "Teresa",	  "Sean",	 "Ann",	       "Austin",    "Sara",
	"Carl",	     "Madison",	  "Arthur",  "Frances",	  "Lawrence",	 "Kathryn",    "Dylan",	    "Janice",
	"Jesse",     "Jean",	  "Jordan",  "Abigail",	  "Bryan",	 "Alice",      "Billy",	    "Julia",
	"Joe",	     "Judy",	  "Bruce",   "Sophia",	  "Gabriel",	 "Grace",      "Logan",	    "Denise",
	"Albert",    "Amber",	  "Willie",  "Doris",	  "Alan",	 "Marilyn",    "Juan",	    "Danielle",
	"Wayne",     "Beverly",	  "Elijah",  "Isabella",  "Randy",	 "Theresa",    "Roy",	    "Diana",
	"Vincent",   "Natalie",	  "Ralph",   "Brittany",  "Eugene",	 "Charlotte",  "Russell",   "Marie",
	"Bobby",     "Kayla",	  "Mason",   "Alexis",	  "Philip",	 "Lori",       "Leslie",    "Crystal",
	"Chris",     "Carrie",	  "Deanna",  "Tara",	  "Shelby",	 "Cory",       "Kristen",
};

static const char *const last_names[] = {
	"Smith",      "Johnson",  "Williams",	"Brown",    "Jones",	 "Garcia",    "Miller",	   "Davis",
	"Rodriguez",  "Martinez", "Hernandez",	"Lopez",    "Gonzalez",	 "Wilson",    "Anderson",  "Thomas",
	"Taylor",     "Moore",	  "Jackson",	"Martin",   "Lee",	 "Perez",     "Thompson",  "White",
	"Harris",     "Sanchez",  "Clark",	"Ramirez",  "Lewis",	 "Robinson",  "Walker",	   "Young",
	"Allen",      "King",	  "Wright",	"Scott",    "Torres",	 "Nguyen",    "Hill",	   "Flores",
	"Green",      "Adams",	  "Nelson",	"Baker",    "Hall",	 "Rivera",    "Campbell",  "Mitchell",
	"Carter",     "Roberts",  "Gomez",	"Phillips", "Evans",	 "Turner",    "Diaz",	   "Parker",
	"Cruz",	      "Edwards",  "Collins",	"Reyes",    "Stewart",	 "Morris",    "Morales",   "Murphy",
	"Cook",	      "Rogers",	  "Gutierrez",	"Ortiz",    "Morgan",	 "Cooper",    "Peterson",  "Bailey",
	"Reed",	      "Kelly",	  "Howard",	"Ramos",    "Kim",	 "Cox",	      "Ward",	   "Richardson",
	"Watson",     "Brooks",	  "Chavez",	"Wood",	    "James",	 "Bennett",   "Gray",	   "Mendoza",
	"Ruiz",	      "Hughes",	  "Price",	"Alvarez",  "Castillo",	 "Sanders",   "Patel",	   "Myers",
	"Long",	      "Ross",	  "Foster",	"Jimenez",  "Powell",	 "Jenkins",   "Perry",	   "Russell",
	"Sullivan",   "Bell",	  "Coleman",	"Butler",   "Henderson", "Barnes",    "Gonzales",  "Fisher",
	"Vasquez",    "Simmons",  "Romero",	"Jordan",   "Patterson", "Alexander", "Hamilton",  "Graham",
	"Reynolds",   "Griffin",  "Wallace",	"Moreno",   "West",	 "Cole",      "Hayes",	   "Bryant",
	"Herrera",    "Gibson",	  "Ellis",	"Tran",	    "Medina",	 "Aguilar",   "Stevens",   "Murray",
	"Ford",	      "Castro",	  "Marshall",	"Owens",    "Harrison",	 "Fernandez", "Mcdonald",  "Woods",
	"Washington", "Kennedy",  "Wells",	"Vargas",   "Henry",	 "Chen",      "Freeman",   "Webb",
	"Tucker",     "Guzman",	  "Burns",	"Crawford", "Olson",	 "Simpson",   "Porter",	   "Hunter",
	"Gordon",     "Mendez",	  "Silva",	"Shaw",	    "Snyder",	 "Mason",     "Dixon",	   "Munoz",
	"Hunt",	      "Hicks",	  "Holmes",	"Palmer",   "Wagner",	 "Black",     "Robertson", "Boyd",
	"Rose",	      "Stone",	  "Salazar",	"Fox",	    "Warren",	 "Mills",     "Meyer",	   "Rice",
	"Schmidt",    "Garza",	  "Daniels",	"Ferguson", "Nichols",	 "Stephens",  "Soto",	   "Weaver",
	"Ryan",	      "Gardner",  "Payne",	"Grant",    "Dunn",	 "Kelley",    "Spencer",   "Hawkins",
	"Santos",     "Orr",	  "Villarreal", "Fields",   "Aguirre",	 "Bridges",   "Vega",	   "Leonard",
	"Wolfe",      "Rangel",	  "Macias",	"Shepard",  "Massey",	 "Hodges",    "Barr",	   "Houston",
};

static const char *const titles[] = {"Mr.", "Mrs.", "Ms.", "Miss", "Dr."};
static const char *const suffixes[] = {"MD", "DDS", "PhD", "DVM", "Jr.", "II"};
static const char *const domains[] = {"example.com", "example.net", "example.org"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(r, a) ((a)[rnd_below((r), COUNT(a))])

/* A row under construction (every field is short: 256 bytes is plenty). */
typedef struct row {
	char b[256];
	size_t n;
} row;

static void put(row *w, const char *s)
{
	size_t l = strlen(s);
	memcpy(w->b + w->n, s, l);
	w->n += l;
}

static void put_c(row *w, char c)
{
	w->b[w->n++] = c;
}

static void put_lower(row *w, const char *s)
{
	for (; *s; s++)
		w->b[w->n++] = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
}

/* v >= 0, at least `width` digits (zero-padded). */
static void put_uint(row *w, uint64_t v, int width)
{
	char d[24];
	int i = 0;
	do {
		d[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (i < width)
		d[i++] = '0';
	while (i > 0)
		w->b[w->n++] = d[--i];
}

static void put_email(row *w, rng *r)
{
	const char *f = PICK(r, first_names), *l = PICK(r, last_names);
	switch (rnd_below(r, 6)) {
	case 0: /* janet95 */
		put_lower(w, f);
		put_uint(w, rnd_below(r, 100), 2);
		break;
	case 1: /* linmichael */
		put_lower(w, l);
		put_lower(w, f);
		break;
	case 2: /* russellwolfe */
		put_lower(w, f);
		put_lower(w, l);
		break;
	case 3: /* urangel */
		put_c(w, (char)('a' + rnd_below(r, 26)));
		put_lower(w, l);
		break;
	case 4: /* rschmidt, with digits */
		put_c(w, (char)('a' + rnd_below(r, 26)));
		put_lower(w, l);
		put_uint(w, rnd_below(r, 100), 1);
		break;
	default: /* masondavid */
		put_lower(w, l);
		put_lower(w, PICK(r, first_names));
		break;
	}
	put_c(w, '@');
	put(w, PICK(r, domains));
}

static int days_in(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return d[m - 1];
}

static void put_uuid(row *w, rng *r)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = rnd(r), b = rnd(r);
	a = (a & ~(uint64_t)0xf000) | 0x4000;			  /* version 4 */
	b = (b & ~((uint64_t)0xc << 60)) | ((uint64_t)0x8 << 60); /* variant 10 */
	for (int i = 0; i < 32; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			put_c(w, '-');
		uint64_t v = i < 16 ? a : b;
		put_c(w, hex[(v >> (60 - 4 * (i % 16))) & 0xf]);
	}
}

/* Distinct debt number k of the file made with seed: always the same bytes. */
static void make_row(uint64_t seed, uint64_t k, double decimal_frac, row *w)
{
	rng r0 = {seed * 0xd1342543de82ef95u + 1};
	rng r = {rnd(&r0) ^ (k * 0x9e3779b97f4a7c15u)};
	rnd(&r);
	w->n = 0;
	double u = rnd01(&r);
	if (u < 0.03) {
		put(w, PICK(&r, titles));
		put_c(w, ' ');
	}
	put(w, PICK(&r, first_names));
	put_c(w, ' ');
	put(w, PICK(&r, last_names));
	if (u > 0.96) {
		put_c(w, ' ');
		put(w, PICK(&r, suffixes));
	}
	put_c(w, ',');
	put_uint(w, 1000 + rnd_below(&r, 9000), 1);
	put_c(w, ',');
	put_email(w, &r);
	put_c(w, ',');
	put_uint(w, 1000 + rnd_below(&r, 9000), 1);
	if (rnd01(&r) < decimal_frac) {
		put_c(w, '.');
		put_uint(w, rnd_below(&r, 100), 2);
	}
	put_c(w, ',');
	int y = 2022 + (int)rnd_below(&r, 4), m = 1 + (int)rnd_below(&r, 12);
	int d = 1 + (int)rnd_below(&r, (uint64_t)days_in(y, m));
	put_uint(w, (uint64_t)y, 4);
	put_c(w, '-');
	put_uint(w, (uint64_t)m, 2);
	put_c(w, '-');
	put_uint(w, (uint64_t)d, 2);
	put_c(w, ',');
	put_uuid(w, &r);
	put_c(w, '\n');
}

typedef struct out {
	FILE *f;
	char buf[1 << 20];
	size_t n;
	int failed;
} out;

static void out_write(out *o, const char *p, size_t n)
{
	if (o->n + n > sizeof(o->buf)) {
		if (fwrite(o->buf, 1, o->n, o->f) != o->n)
			o->failed = 1;
		o->n = 0;
	}
	memcpy(o->buf + o->n, p, n);
	o->n += n;
}

static int parse_num(const char *s, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	return errno == 0 && end != s && *end == '\0' && *v >= 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: rpcq-billing-gen [--rows N (1100000)] [--seed S (1)] [--repeat-pct P (2.63)]\n"
			"                        [--decimal-pct P (5)] [--unique] [--out FILE (stdout)]\n");
	exit(2);
}

static out o;

int main(int argc, char **argv)
{
	double rows_d = 1100000, seed_d = 1, repeat_pct = 54.0 * 100 / 2053, decimal_pct = 5;
	int unique = 0;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		double *num = NULL;
		if (strcmp(a, "--unique") == 0) {
			unique = 1;
			continue;
		}
		if (strcmp(a, "--rows") == 0)
			num = &rows_d;
		else if (strcmp(a, "--seed") == 0)
			num = &seed_d;
		else if (strcmp(a, "--repeat-pct") == 0)
			num = &repeat_pct;
		else if (strcmp(a, "--decimal-pct") == 0)
			num = &decimal_pct;
		else if (strcmp(a, "--out") != 0)
			usage();
		if (i + 1 >= argc)
			usage();
		if (num == NULL)
			path = argv[++i];
		else if (!parse_num(argv[++i], num))
			usage();
	}
	if (repeat_pct >= 50 || decimal_pct > 100)
		usage();
	uint64_t rows = (uint64_t)rows_d, seed = (uint64_t)seed_d;
	o.f = stdout;
	if (path != NULL && (o.f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "rpcq-billing-gen: %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* A run adds 11 rows a copy on average, 1.5 copies: blocks per distinct
	 * row so that repeat_pct of all rows are copies. */
	double f = repeat_pct / 100, per_row = f / (16.5 * (1 - f)), dec = decimal_pct / 100;
	rng r = {seed ^ 0x5851f42d4c957f2du};
	static const char header[] = "name,governmentId,email,debtAmount,debtDueDate,debtId\n";
	out_write(&o, header, sizeof(header) - 1);
	uint64_t k = 0, total = 0, copies = 0, runs = 0, src_end = 0, bytes = sizeof(header) - 1;
	row w;
	while (total < rows) {
		if (k >= 16 && rnd01(&r) < per_row) {
			uint64_t len = 7 + rnd_below(&r, 9), times = rnd01(&r) < 0.25 ? 3 : 1;
			uint64_t lo = k > 1000 ? k - 1000 : 0, hi = k - len;
			if (lo < src_end)
				lo = src_end;
			if (lo <= hi) {
				uint64_t j = lo + rnd_below(&r, hi - lo + 1);
				src_end = j + len;
				runs++;
				for (uint64_t t = 0; t < times; t++)
					for (uint64_t i = 0; i < len && total < rows; i++) {
						total++;
						copies++;
						if (unique)
							continue;
						make_row(seed, j + i, dec, &w);
						out_write(&o, w.b, w.n);
						bytes += w.n;
					}
				continue;
			}
		}
		make_row(seed, k++, dec, &w);
		out_write(&o, w.b, w.n);
		bytes += w.n;
		total++;
	}
	if (o.n > 0 && fwrite(o.buf, 1, o.n, o.f) != o.n)
		o.failed = 1;
	if (fflush(o.f) != 0 || o.failed || (path != NULL && fclose(o.f) != 0)) {
		fprintf(stderr, "rpcq-billing-gen: writing %s failed: %s\n", path ? path : "stdout", strerror(errno));
		return 1;
	}
	fprintf(stderr,
		"rpcq-billing-gen: %" PRIu64 " rows written (%" PRIu64 " bytes), %" PRIu64 " distinct debts, %" PRIu64
		" repeated rows in %" PRIu64 " runs%s\n",
		unique ? k : total, bytes, k, copies, runs, unique ? " (left out: --unique)" : "");
	return 0;
}
