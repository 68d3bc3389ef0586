/*
 * rpcq-expat-scan: the baseline of the events ingest benchmark. Reads a file
 * into memory, then runs a bare expat parse over it (empty start and end
 * element handlers, nothing else: no attributes looked at, no copies), in
 * chunks of the size libcurl hands rpcqd's ingest (256 KiB, INGEST_READ_BYTES), and
 * prints one line of key=value pairs:
 *
 *   file=PATH bytes=N read_s=S parse_s=S parse_cpu_s=S elements=N vmhwm_kb=N
 *
 *   rpcq-expat-scan [--chunk BYTES] [--repeat N] FILE
 *
 * parse_s is the parse alone, the best of --repeat runs (default 1), and
 * parse_cpu_s the CPU time of that run (less than parse_s when the machine
 * is busy and the scan waits for a core);
 * read_s the read of the file; vmhwm_kb this process's peak resident set
 * (VmHWM in /proc/self/status), which includes the file's own buffer.
 * bench/run-events-ingest.sh runs it next to rpcqd's Sync of the same
 * bytes. Exit status 0, 1 when the file cannot be read or is not
 * well-formed, 2 on bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <expat.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	(void)name;
	(void)attrs;
	(*(unsigned long *)arg)++;
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
	(void)arg;
	(void)name;
}

/* VmHWM of this process in kB, or -1. */
static long vmhwm_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmHWM:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 20, n = 0;
	char *p = malloc(cap);
	while (p != NULL) {
		if (cap - n < 65536) {
			char *q = realloc(p, cap * 2);
			if (q == NULL) {
				free(p);
				p = NULL;
				errno = ENOMEM;
				break;
			}
			p = q;
			cap *= 2;
		}
		size_t got = fread(p + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				free(p);
				p = NULL;
				errno = EIO;
			}
			break;
		}
	}
	fclose(f);
	*len = n;
	return p;
}

/* One parse of the whole buffer; the number of elements, or -1. */
static long scan(const char *data, size_t len, size_t chunk)
{
	unsigned long elements = 0;
	XML_Parser p = XML_ParserCreate(NULL);
	if (p == NULL)
		return -1;
	XML_SetUserData(p, &elements);
	XML_SetElementHandler(p, on_start, on_end);
	long result = -1;
	for (size_t off = 0;; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;
		int last = off + n >= len;
		if (XML_Parse(p, data + off, (int)n, last) != XML_STATUS_OK) {
			fprintf(stderr, "rpcq-expat-scan: not well-formed at line %lu: %s\n",
				(unsigned long)XML_GetCurrentLineNumber(p), XML_ErrorString(XML_GetErrorCode(p)));
			goto out;
		}
		if (last)
			break;
	}
	result = (long)elements;
out:
	XML_ParserFree(p);
	return result;
}

static long number(const char *flag, const char *v, long lo, long hi)
{
	char *end;
	errno = 0;
	long n = v ? strtol(v, &end, 10) : 0;
	if (v == NULL || errno != 0 || end == v || *end != '\0' || n < lo || n > hi) {
		fprintf(stderr, "rpcq-expat-scan: %s needs a number from %ld to %ld\n", flag, lo, hi);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	size_t chunk = 256 * 1024; /* INGEST_READ_BYTES */
	long repeat = 1;
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--chunk") == 0) {
			chunk = (size_t)number("--chunk", i + 1 < argc ? argv[i + 1] : NULL, 1, 1L << 30);
			i++;
		} else if (strcmp(argv[i], "--repeat") == 0) {
			repeat = number("--repeat", i + 1 < argc ? argv[i + 1] : NULL, 1, 1000);
			i++;
		} else if (argv[i][0] == '-' || path != NULL) {
			fprintf(stderr, "usage: rpcq-expat-scan [--chunk BYTES] [--repeat N] FILE\n");
			return 2;
		} else {
			path = argv[i];
		}
	}
	if (path == NULL) {
		fprintf(stderr, "usage: rpcq-expat-scan [--chunk BYTES] [--repeat N] FILE\n");
		return 2;
	}
	double t0 = now_s();
	size_t len = 0;
	char *data = read_all(path, &len);
	if (data == NULL) {
		fprintf(stderr, "rpcq-expat-scan: %s: %s\n", path, strerror(errno));
		return 1;
	}
	double read_s = now_s() - t0, best = 0, best_cpu = 0;
	long elements = 0;
	for (long r = 0; r < repeat; r++) {
		double t1 = now_s(), c1 = cpu_s();
		elements = scan(data, len, chunk);
		double s = now_s() - t1, c = cpu_s() - c1;
		if (elements < 0) {
			free(data);
			return 1;
		}
		if (r == 0 || s < best) {
			best = s;
			best_cpu = c;
		}
	}
	printf("file=%s bytes=%zu read_s=%.3f parse_s=%.3f parse_cpu_s=%.3f elements=%ld vmhwm_kb=%ld\n", path, len,
	       read_s, best, best_cpu, elements, vmhwm_kb());
	free(data);
	return 0;
}
