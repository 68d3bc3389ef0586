/* What the import commands share (cli.h): the mapped file they send and
 * the progress line they draw on a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cli.h"

/* ---- the file ---- */

void cli_file_init(cli_file *f, const char *path)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->path = path;
	const char *slash = strrchr(path, '/');
	f->name = slash && slash[1] ? slash + 1 : path;
}

int cli_file_open(cli_file *f)
{
	if (strcmp(f->path, "-") == 0)
		return cli_fail_status(RPCQ_INVALID_ARGUMENT, "an import reads a regular file, not stdin");
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return cli_fail_status(RPCQ_INVALID_ARGUMENT, "cannot open %s: %s", f->path, strerror(errno));
	struct stat st;
	if (fstat(f->fd, &st) != 0)
		return cli_fail_status(RPCQ_INVALID_ARGUMENT, "cannot read %s: %s", f->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cli_fail_status(RPCQ_INVALID_ARGUMENT,
				       "%s is not a regular file (an import maps its file to resume at any offset)",
				       f->path);
	f->size = (size_t)st.st_size;
	if (f->size == 0)
		return 0;
	void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	if (p == MAP_FAILED)
		return cli_fail_status(RPCQ_INVALID_ARGUMENT, "cannot map %s: %s", f->path, strerror(errno));
	madvise(p, f->size, MADV_SEQUENTIAL);
	f->data = p;
	return 0;
}

void cli_file_close(cli_file *f)
{
	if (f->data)
		munmap((void *)f->data, f->size);
	if (f->fd >= 0)
		close(f->fd);
	f->data = NULL;
	f->fd = -1;
}

void cli_keep_buffers_on_heap(void)
{
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
#endif
}

/* ---- progress on a terminal ---- */

#define BAR_WIDTH 24

void cli_progress_start(cli_progress *p)
{
	memset(p, 0, sizeof(*p));
	p->tty = isatty(STDERR_FILENO);
	p->start_ms = cli_now_ms();
}

void cli_progress_draw(cli_progress *p, const char *text, int now)
{
	if (!p->tty)
		return;
	int64_t t = cli_now_ms();
	if (!p->shown && t - p->start_ms < CLI_PROGRESS_AFTER_MS)
		return;
	if (p->shown && (strcmp(text, p->last) == 0 || (!now && t - p->drawn_ms < 100)))
		return;
	size_t n = strlen(text);
	fprintf(stderr, "\r%s%*s", text, p->width > n ? (int)(p->width - n) : 0, "");
	if (p->width > n)
		fprintf(stderr, "\r%s", text);
	snprintf(p->last, sizeof(p->last), "%s", text);
	p->width = n;
	p->shown = 1;
	p->drawn_ms = t;
}

void cli_progress_bar(cli_progress *p, uint64_t done, uint64_t total, const char *text, int now)
{
	if (!p->tty)
		return;
	unsigned pct = total ? (unsigned)(done >= total ? 100 : done * 100 / total) : 100;
	char bar[BAR_WIDTH + 1];
	size_t fill = (size_t)pct * BAR_WIDTH / 100;
	for (size_t i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[BAR_WIDTH] = '\0';
	char line[sizeof(p->last)];
	snprintf(line, sizeof(line), "[%s] %3u%% %s", bar, pct, text);
	cli_progress_draw(p, line, now);
}

void cli_progress_clear(cli_progress *p)
{
	if (!p->shown)
		return;
	fprintf(stderr, "\r%*s\r", (int)p->width, "");
	p->shown = 0;
	p->width = 0;
	p->last[0] = '\0';
}
