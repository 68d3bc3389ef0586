/*
 * The allocation seam: thin wrappers over the C allocator with a fail-after
 * counter for tests. The counter is atomic so tests of threaded code work.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

static atomic_long fail_after = -1;
static atomic_ulong allocations;

/* True when the allocation about to happen must fail (test hook). */
static int should_fail(void)
{
	long n = atomic_load_explicit(&fail_after, memory_order_relaxed);
	if (n < 0)
		return 0;
	while (n > 0) {
		if (atomic_compare_exchange_weak(&fail_after, &n, n - 1))
			return 0;
		if (n < 0)
			return 0;
	}
	return 1;
}

void *rpcq_alloc(size_t size)
{
	if (should_fail())
		return NULL;
	void *p = malloc(size ? size : 1);
	if (p)
		atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
	return p;
}

void *rpcq_calloc(size_t n, size_t size)
{
	if (should_fail())
		return NULL;
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p)
		atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
	return p;
}

void *rpcq_realloc(void *ptr, size_t size)
{
	if (should_fail())
		return NULL;
	return realloc(ptr, size ? size : 1);
}

void rpcq_free(void *ptr)
{
	free(ptr);
}

char *rpcq_strndup(const char *s, size_t n)
{
	char *p = rpcq_alloc(n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *rpcq_strdup(const char *s)
{
	return rpcq_strndup(s, strlen(s));
}

void rpcq_alloc_fail_after(long n)
{
	atomic_store(&fail_after, n < 0 ? -1 : n);
}

unsigned long rpcq_alloc_count(void)
{
	return atomic_load(&allocations);
}
