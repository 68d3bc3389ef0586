/* Chunks of an upload read ahead of their turn (upload_ahead.h). */
#include "upload_ahead.h"

#include <string.h>

#include <rpcq/alloc.h>

#define AHEAD_UPLOADS 16 /* uploads followed at a time */
#define AHEAD_CHUNKS 4	 /* chunks of one upload in hands at a time */

typedef struct ahead_upload {
	int64_t id; /* 0: a free entry */
	uint64_t used;
	int has_spec;
	upload_spec spec;
	struct {
		uint64_t offset, end;
		int used;
	} chunks[AHEAD_CHUNKS];
} ahead_upload;

struct upload_ahead {
	nng_mtx *lock;
	nng_cv *changed; /* any entry changed */
	uint64_t clock;
	ahead_upload up[AHEAD_UPLOADS];
};

upload_ahead *upload_ahead_create(void)
{
	upload_ahead *a = rpcq_calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	if (nng_mtx_alloc(&a->lock) != 0) {
		rpcq_free(a);
		return NULL;
	}
	if (nng_cv_alloc(&a->changed, a->lock) != 0) {
		nng_mtx_free(a->lock);
		rpcq_free(a);
		return NULL;
	}
	return a;
}

void upload_ahead_destroy(upload_ahead *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < AHEAD_UPLOADS; i++)
		strbuf_fini(&a->up[i].spec.carry);
	nng_cv_free(a->changed);
	nng_mtx_free(a->lock);
	rpcq_free(a);
}

static int busy(const ahead_upload *u)
{
	for (int i = 0; i < AHEAD_CHUNKS; i++)
		if (u->chunks[i].used)
			return 1;
	return 0;
}

/* The entry of id, or NULL; with make, a new one in place of a free or the
 * least recently used idle entry (NULL when every entry is busy). */
static ahead_upload *find(upload_ahead *a, int64_t id, int make)
{
	ahead_upload *victim = NULL;
	for (int i = 0; i < AHEAD_UPLOADS; i++) {
		ahead_upload *u = &a->up[i];
		if (u->id == id) {
			u->used = ++a->clock;
			return u;
		}
		if (make && !busy(u) && (victim == NULL || u->used < victim->used))
			victim = u;
	}
	if (victim == NULL)
		return NULL;
	victim->id = id;
	victim->used = ++a->clock;
	victim->has_spec = 0;
	return victim;
}

void upload_ahead_enter(upload_ahead *a, int64_t id, uint64_t offset, uint64_t end)
{
	nng_mtx_lock(a->lock);
	ahead_upload *u = find(a, id, 1);
	for (int i = 0; u != NULL && i < AHEAD_CHUNKS; i++) {
		if (!u->chunks[i].used) {
			u->chunks[i].offset = offset;
			u->chunks[i].end = end;
			u->chunks[i].used = 1;
			break;
		}
	}
	nng_mtx_unlock(a->lock);
}

void upload_ahead_leave(upload_ahead *a, int64_t id, uint64_t offset)
{
	nng_mtx_lock(a->lock);
	ahead_upload *u = find(a, id, 0);
	for (int i = 0; u != NULL && i < AHEAD_CHUNKS; i++) {
		if (u->chunks[i].used && u->chunks[i].offset == offset) {
			u->chunks[i].used = 0;
			break;
		}
	}
	nng_cv_wake(a->changed);
	nng_mtx_unlock(a->lock);
}

/* Whether a chunk in hands ends at offset (the one before it). */
static int predecessor_here(const ahead_upload *u, uint64_t offset)
{
	for (int i = 0; i < AHEAD_CHUNKS; i++)
		if (u->chunks[i].used && u->chunks[i].end == offset && u->chunks[i].offset < offset)
			return 1;
	return 0;
}

int upload_ahead_get(upload_ahead *a, int64_t id, uint64_t offset, nng_time until, upload_spec *out)
{
	int found = 0;
	out->carry.len = 0;
	nng_mtx_lock(a->lock);
	for (;;) {
		ahead_upload *u = find(a, id, 0);
		if (u == NULL)
			break;
		if (u->has_spec && u->spec.st.received == offset) {
			out->st = u->spec.st;
			out->header_seen = u->spec.header_seen;
			strbuf_append(&out->carry, u->spec.carry.data, u->spec.carry.len);
			found = !out->carry.failed;
			break;
		}
		if (!predecessor_here(u, offset) || nng_cv_until(a->changed, until) == NNG_ETIMEDOUT)
			break;
	}
	nng_mtx_unlock(a->lock);
	return found;
}

void upload_ahead_put(upload_ahead *a, int64_t id, const upload_state *st, int header_seen, const char *carry,
		      size_t carry_len)
{
	nng_mtx_lock(a->lock);
	ahead_upload *u = find(a, id, 1);
	if (u != NULL) {
		u->spec.st = *st;
		u->spec.header_seen = header_seen;
		u->spec.carry.len = 0;
		strbuf_append(&u->spec.carry, carry, carry_len);
		u->has_spec = !u->spec.carry.failed;
	}
	nng_cv_wake(a->changed);
	nng_mtx_unlock(a->lock);
}

void upload_ahead_forget(upload_ahead *a, int64_t id)
{
	nng_mtx_lock(a->lock);
	ahead_upload *u = find(a, id, 0);
	if (u != NULL)
		u->has_spec = 0;
	nng_cv_wake(a->changed);
	nng_mtx_unlock(a->lock);
}

int upload_ahead_wait_for(upload_ahead *a, int64_t id, uint64_t offset, nng_time arrive, nng_time until)
{
	int was = 0;
	nng_mtx_lock(a->lock);
	for (;;) {
		ahead_upload *u = find(a, id, 0);
		int here = 0;
		for (int i = 0; u != NULL && i < AHEAD_CHUNKS; i++)
			if (u->chunks[i].used && u->chunks[i].offset == offset)
				here = 1;
		if (here)
			was = 1;
		else if (was)
			break; /* it came and left */
		if (nng_cv_until(a->changed, here ? until : arrive) == NNG_ETIMEDOUT)
			break;
	}
	nng_mtx_unlock(a->lock);
	return was;
}
