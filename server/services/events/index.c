/*
 * The in-memory index of events (index.h): a B+ tree of record pointers
 * ordered by (starts_at, id), byte comparison of the two strings, and an
 * open-addressing hash map id -> record for get and for finding an event's
 * old position on upsert.
 *
 * Why a B+ tree. The workload is about 100,000 events, searches returning
 * about 20 events at thousands per second per core, and ingests upserting
 * up to 50,000 events in a burst. Every structure with O(log n) updates and
 * O(log n + k) scans does that on paper; what differs is cache misses. A
 * binary tree (AVL, red-black) is 17 levels deep at 100,000 events, one
 * node (one likely miss) per level and one more per successor step; a skip
 * list is as deep and chases as many pointers, in random order. A B+ tree
 * with 32-way nodes is 4 levels deep, searched by binary search inside each
 * node, and a scan of 20 events reads one or two leaves, which are arrays
 * linked left to right. A leaf entry holds copies of the event's start and
 * end beside the record pointer, so a walk touches only the records it
 * passes to the callback (this made searches 1.7 times faster than
 * pointers alone: the records, 100,000 of them, do not stay in cache).
 * Updates cost the same O(log n) with fewer allocations: a node every 16 or
 * so inserts instead of one per event. Inner nodes hold copies of their
 * separator keys (a separator may outlive the event it was copied from).
 *
 * Events that end before they start. A search passes events with
 * starts_at >= from and ends_at <= to. For an event with ends_at >=
 * starts_at, starts_at > to implies ends_at > to, so the walk in start order
 * may stop at the first start past `to`: that early stop is what makes a
 * search O(log n + k). An event whose end precedes its start can match with
 * a start past `to`, so that stop would miss it. Nothing upstream checks
 * that an event ends after it starts (the feed validates each date alone),
 * so such events live in a second tree of the same kind, which a search
 * walks from the same lower bound to its end, merged in (starts_at, id)
 * order with the first: correct for any data, O(log n + k + m) with m such
 * events past the lower bound, and free while there are none.
 *
 * Out of memory. An upsert allocates everything it may need before it
 * changes anything: the copy of the record, a larger hash table when the
 * table would pass its load factor, and enough spare nodes for a split on
 * every level (kept between calls, so this rarely allocates). Deletes only
 * free nodes. So a failed upsert leaves the index as it was.
 *
 * Locking. One pthread rwlock preferring writers: a burst of searches does
 * not starve the applier, and the applier takes the lock once per event, so
 * a 50,000-event burst lets searches in between events. Readers run their
 * callbacks under the read lock; records are freed only after the write
 * lock that replaced them is released, when no reader can still hold them.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: writer preference */

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rpcq/alloc.h>

#include "index.h"

enum {
	LEAF_CAP = 32, /* records per leaf */
	LEAF_MIN = LEAF_CAP / 2,
	INNER_CAP = 32, /* children per inner node */
	INNER_MIN = INNER_CAP / 2,
	SPARES_MAX = 16,  /* freed nodes kept for later splits, of each kind */
	HEIGHT_MAX = 16,  /* inner levels; 16-way at least, 2^64 records need fewer */
	HASH_INITIAL = 64 /* slots; a power of two */
};

/* A separator in an inner node: a copy of a (starts_at, id) key. */
typedef struct ix_key {
	char start[sizeof(((event_rec *)0)->starts_at)];
	char id[sizeof(((event_rec *)0)->id)];
} ix_key;

/* A record in a leaf, with copies of the times a search compares: a walk
 * reads only its leaves and the records it passes to the callback. */
typedef struct entry {
	char start[sizeof(((event_rec *)0)->starts_at)];
	char end[sizeof(((event_rec *)0)->ends_at)];
	event_rec *r;
} entry;

typedef struct leaf {
	int n;
	struct leaf *next; /* the leaf to the right, NULL for the last */
	entry e[LEAF_CAP];
} leaf;

/* Child i holds the keys k[i-1] <= key < k[i]. */
typedef struct inner {
	int n; /* children; n - 1 keys */
	ix_key k[INNER_CAP - 1];
	void *c[INNER_CAP]; /* inner nodes, or leaves on the lowest inner level */
} inner;

typedef struct tree {
	void *root; /* never NULL: an empty tree is an empty leaf */
	int height; /* inner levels above the leaves (0: the root is a leaf) */
} tree;

/* A position in a tree's leaves; l is NULL past the end. */
typedef struct cursor {
	leaf *l;
	int i;
} cursor;

struct event_index {
	pthread_rwlock_t lock;
	int lock_ok;
	tree t[2];	     /* 0: ends_at >= starts_at; 1: events ending before they start */
	event_rec **slots;   /* hash map by id, linear probing; no deletes */
	uint32_t *tags;	     /* of each slot's id: a probe reads a record only when its tag matches */
	size_t cap;	     /* slots, a power of two */
	size_t n;	     /* events */
	leaf *spare_leaves;  /* linked by next */
	inner *spare_inners; /* linked by c[0] */
	int n_spare_leaves, n_spare_inners;
};

static int key_cmp(const char *s1, const char *i1, const char *s2, const char *i2)
{
	int c = strcmp(s1, s2);
	return c != 0 ? c : strcmp(i1, i2);
}

static int rec_inverted(const event_rec *r)
{
	return strcmp(r->ends_at, r->starts_at) < 0;
}

/* Entries order by (start, id); the id is read only for equal starts. */
static int entry_cmp(const entry *e, const char *start, const char *id)
{
	int c = strcmp(e->start, start);
	return c != 0 ? c : strcmp(e->r->id, id);
}

static void entry_set(entry *e, event_rec *r)
{
	memcpy(e->start, r->starts_at, sizeof(e->start));
	memcpy(e->end, r->ends_at, sizeof(e->end));
	e->r = r;
}

static void key_set(ix_key *k, const entry *e)
{
	memcpy(k->start, e->start, sizeof(k->start));
	memcpy(k->id, e->r->id, sizeof(k->id));
}

/* The child of in whose range holds (start, id): the number of separators
 * <= the key. */
static int inner_child(const inner *in, const char *start, const char *id)
{
	int lo = 0, hi = in->n - 1;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (key_cmp(in->k[mid].start, in->k[mid].id, start, id) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first index of l whose key is >= (start, id), or > when strict. */
static int leaf_lower(const leaf *l, const char *start, const char *id, int strict)
{
	int lo = 0, hi = l->n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		int c = entry_cmp(&l->e[mid], start, id);
		if (c < 0 || (strict && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void cursor_fix(cursor *c)
{
	while (c->l != NULL && c->i >= c->l->n) {
		c->l = c->l->next;
		c->i = 0;
	}
}

/* The first record >= (start, id), or > when strict. */
static cursor tree_seek(const tree *t, const char *start, const char *id, int strict)
{
	void *node = t->root;
	for (int h = t->height; h > 0; h--) {
		inner *in = node;
		node = in->c[inner_child(in, start, id)];
	}
	cursor c = {node, leaf_lower(node, start, id, strict)};
	cursor_fix(&c);
	return c;
}

/* Spare nodes: splits take them, merges give them back. */

static leaf *take_leaf(event_index *ix)
{
	leaf *l = ix->spare_leaves;
	assert(l != NULL);
	ix->spare_leaves = l->next;
	ix->n_spare_leaves--;
	l->n = 0;
	l->next = NULL;
	return l;
}

static inner *take_inner(event_index *ix)
{
	inner *in = ix->spare_inners;
	assert(in != NULL);
	ix->spare_inners = in->c[0];
	ix->n_spare_inners--;
	in->n = 0;
	return in;
}

static void put_leaf(event_index *ix, leaf *l)
{
	if (ix->n_spare_leaves >= SPARES_MAX) {
		rpcq_free(l);
		return;
	}
	l->next = ix->spare_leaves;
	ix->spare_leaves = l;
	ix->n_spare_leaves++;
}

static void put_inner(event_index *ix, inner *in)
{
	if (ix->n_spare_inners >= SPARES_MAX) {
		rpcq_free(in);
		return;
	}
	in->c[0] = ix->spare_inners;
	ix->spare_inners = in;
	ix->n_spare_inners++;
}

/* Enough spares for an insert into either tree: a leaf and one inner node
 * per level plus a new root. 0, or -1 when out of memory. */
static int spares_reserve(event_index *ix)
{
	int h = ix->t[0].height > ix->t[1].height ? ix->t[0].height : ix->t[1].height;
	while (ix->n_spare_leaves < 1) {
		leaf *l = rpcq_alloc(sizeof(*l));
		if (l == NULL)
			return -1;
		put_leaf(ix, l);
	}
	while (ix->n_spare_inners < h + 1) {
		inner *in = rpcq_alloc(sizeof(*in));
		if (in == NULL)
			return -1;
		put_inner(ix, in);
	}
	return 0;
}

/* Inserts r (whose key is not in t). Needs spares_reserve first. */
static void tree_insert(event_index *ix, tree *t, event_rec *r)
{
	inner *path[HEIGHT_MAX];
	int pos[HEIGHT_MAX];
	void *node = t->root;
	for (int d = 0; d < t->height; d++) {
		path[d] = node;
		pos[d] = inner_child(path[d], r->starts_at, r->id);
		node = path[d]->c[pos[d]];
	}
	leaf *l = node;
	int i = leaf_lower(l, r->starts_at, r->id, 0);
	if (l->n < LEAF_CAP) {
		memmove(&l->e[i + 1], &l->e[i], (size_t)(l->n - i) * sizeof(l->e[0]));
		entry_set(&l->e[i], r);
		l->n++;
		return;
	}

	/* Split the full leaf: 16 records stay, 17 move to a new right leaf. */
	entry all[LEAF_CAP + 1];
	memcpy(all, l->e, (size_t)i * sizeof(all[0]));
	entry_set(&all[i], r);
	memcpy(&all[i + 1], &l->e[i], (size_t)(LEAF_CAP - i) * sizeof(all[0]));
	leaf *nl = take_leaf(ix);
	l->n = (LEAF_CAP + 1) / 2;
	nl->n = LEAF_CAP + 1 - l->n;
	memcpy(l->e, all, (size_t)l->n * sizeof(all[0]));
	memcpy(nl->e, &all[l->n], (size_t)nl->n * sizeof(all[0]));
	nl->next = l->next;
	l->next = nl;
	ix_key sep;
	key_set(&sep, &nl->e[0]);
	void *child = nl;

	/* Insert (sep, child) right of pos[d] in each parent, splitting full ones. */
	for (int d = t->height - 1; d >= 0; d--) {
		inner *in = path[d];
		int ci = pos[d] + 1; /* the new child's index; its key is ci - 1 */
		if (in->n < INNER_CAP) {
			memmove(&in->k[ci], &in->k[ci - 1], (size_t)(in->n - ci) * sizeof(in->k[0]));
			memmove(&in->c[ci + 1], &in->c[ci], (size_t)(in->n - ci) * sizeof(in->c[0]));
			in->k[ci - 1] = sep;
			in->c[ci] = child;
			in->n++;
			return;
		}
		ix_key keys[INNER_CAP];
		void *kids[INNER_CAP + 1];
		memcpy(keys, in->k, (size_t)(ci - 1) * sizeof(keys[0]));
		keys[ci - 1] = sep;
		memcpy(&keys[ci], &in->k[ci - 1], (size_t)(INNER_CAP - ci) * sizeof(keys[0]));
		memcpy(kids, in->c, (size_t)ci * sizeof(kids[0]));
		kids[ci] = child;
		memcpy(&kids[ci + 1], &in->c[ci], (size_t)(INNER_CAP - ci) * sizeof(kids[0]));
		/* 33 children: 16 stay, 17 move right, the key between them goes up. */
		inner *ni = take_inner(ix);
		in->n = (INNER_CAP + 1) / 2;
		ni->n = INNER_CAP + 1 - in->n;
		memcpy(in->k, keys, (size_t)(in->n - 1) * sizeof(keys[0]));
		memcpy(in->c, kids, (size_t)in->n * sizeof(kids[0]));
		memcpy(ni->k, &keys[in->n], (size_t)(ni->n - 1) * sizeof(keys[0]));
		memcpy(ni->c, &kids[in->n], (size_t)ni->n * sizeof(kids[0]));
		sep = keys[in->n - 1];
		child = ni;
	}

	/* The root split: a new root above the two halves. */
	assert(t->height < HEIGHT_MAX);
	inner *root = take_inner(ix);
	root->n = 2;
	root->k[0] = sep;
	root->c[0] = t->root;
	root->c[1] = child;
	t->root = root;
	t->height++;
}

/* Removes key ki and child ki + 1 of p. */
static void inner_remove(inner *p, int ki)
{
	memmove(&p->k[ki], &p->k[ki + 1], (size_t)(p->n - 2 - ki) * sizeof(p->k[0]));
	memmove(&p->c[ki + 1], &p->c[ki + 2], (size_t)(p->n - 2 - ki) * sizeof(p->c[0]));
	p->n--;
}

/* Refills leaf l = p->c[ci], which has LEAF_MIN - 1 records, from a
 * sibling. Returns 1 when p lost a child (a merge), 0 otherwise. */
static int leaf_rebalance(event_index *ix, inner *p, int ci, leaf *l)
{
	if (ci > 0) {
		leaf *left = p->c[ci - 1];
		if (left->n > LEAF_MIN) {
			memmove(&l->e[1], &l->e[0], (size_t)l->n * sizeof(l->e[0]));
			l->e[0] = left->e[--left->n];
			l->n++;
			key_set(&p->k[ci - 1], &l->e[0]);
			return 0;
		}
		memcpy(&left->e[left->n], l->e, (size_t)l->n * sizeof(l->e[0]));
		left->n += l->n;
		left->next = l->next;
		put_leaf(ix, l);
		inner_remove(p, ci - 1);
		return 1;
	}
	leaf *right = p->c[1];
	if (right->n > LEAF_MIN) {
		l->e[l->n++] = right->e[0];
		memmove(&right->e[0], &right->e[1], (size_t)(right->n - 1) * sizeof(right->e[0]));
		right->n--;
		key_set(&p->k[0], &right->e[0]);
		return 0;
	}
	memcpy(&l->e[l->n], right->e, (size_t)right->n * sizeof(right->e[0]));
	l->n += right->n;
	l->next = right->next;
	put_leaf(ix, right);
	inner_remove(p, 0);
	return 1;
}

/* The same for inner node in = p->c[ci] with INNER_MIN - 1 children. */
static int inner_rebalance(event_index *ix, inner *p, int ci, inner *in)
{
	if (ci > 0) {
		inner *left = p->c[ci - 1];
		if (left->n > INNER_MIN) {
			memmove(&in->k[1], &in->k[0], (size_t)(in->n - 1) * sizeof(in->k[0]));
			memmove(&in->c[1], &in->c[0], (size_t)in->n * sizeof(in->c[0]));
			in->k[0] = p->k[ci - 1];
			in->c[0] = left->c[left->n - 1];
			p->k[ci - 1] = left->k[left->n - 2];
			left->n--;
			in->n++;
			return 0;
		}
		left->k[left->n - 1] = p->k[ci - 1];
		memcpy(&left->k[left->n], in->k, (size_t)(in->n - 1) * sizeof(in->k[0]));
		memcpy(&left->c[left->n], in->c, (size_t)in->n * sizeof(in->c[0]));
		left->n += in->n;
		put_inner(ix, in);
		inner_remove(p, ci - 1);
		return 1;
	}
	inner *right = p->c[1];
	if (right->n > INNER_MIN) {
		in->k[in->n - 1] = p->k[0];
		in->c[in->n] = right->c[0];
		in->n++;
		p->k[0] = right->k[0];
		memmove(&right->k[0], &right->k[1], (size_t)(right->n - 2) * sizeof(right->k[0]));
		memmove(&right->c[0], &right->c[1], (size_t)(right->n - 1) * sizeof(right->c[0]));
		right->n--;
		return 0;
	}
	in->k[in->n - 1] = p->k[0];
	memcpy(&in->k[in->n], right->k, (size_t)(right->n - 1) * sizeof(right->k[0]));
	memcpy(&in->c[in->n], right->c, (size_t)right->n * sizeof(right->c[0]));
	in->n += right->n;
	put_inner(ix, right);
	inner_remove(p, 0);
	return 1;
}

/* Removes r (which is in t). Never allocates. */
static void tree_delete(event_index *ix, tree *t, const event_rec *r)
{
	inner *path[HEIGHT_MAX];
	int pos[HEIGHT_MAX];
	void *node = t->root;
	for (int d = 0; d < t->height; d++) {
		path[d] = node;
		pos[d] = inner_child(path[d], r->starts_at, r->id);
		node = path[d]->c[pos[d]];
	}
	leaf *l = node;
	int i = leaf_lower(l, r->starts_at, r->id, 0);
	assert(i < l->n && l->e[i].r == r);
	memmove(&l->e[i], &l->e[i + 1], (size_t)(l->n - i - 1) * sizeof(l->e[0]));
	l->n--;
	if (t->height == 0 || l->n >= LEAF_MIN)
		return;
	int d = t->height - 1;
	if (!leaf_rebalance(ix, path[d], pos[d], l))
		return;
	for (; d > 0; d--) {
		if (path[d]->n >= INNER_MIN)
			return;
		if (!inner_rebalance(ix, path[d - 1], pos[d - 1], path[d]))
			return;
	}
	inner *root = t->root;
	if (root->n == 1) {
		t->root = root->c[0];
		t->height--;
		put_inner(ix, root);
	}
}

/* Puts r where old is (same key). */
static void tree_replace(tree *t, const event_rec *old, event_rec *r)
{
	cursor c = tree_seek(t, old->starts_at, old->id, 0);
	assert(c.l != NULL && c.l->e[c.i].r == old);
	if (c.l == NULL) /* the hash map and the tree disagree: never */
		return;
	entry_set(&c.l->e[c.i], r);
}

static void tree_free(void *node, int height)
{
	if (height > 0) {
		inner *in = node;
		for (int i = 0; i < in->n; i++)
			tree_free(in->c[i], height - 1);
	}
	rpcq_free(node);
}

/* The hash map. */

/* FNV-1a of an id: its low bits choose the slot, its high 32 are the tag. */
static uint64_t id_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static uint32_t hash_tag(uint64_t h)
{
	return (uint32_t)(h >> 32);
}

/* The slot holding id, or the empty slot where it would go, and id's tag
 * in *tag. A repeat ingest looks up every event of the feed, and a record
 * is a cache miss: the tags, beside the slots, keep the probes from
 * reading the records of other ids. */
static size_t hash_slot(const event_index *ix, const char *id, uint32_t *tag_out)
{
	uint64_t h = id_hash(id);
	uint32_t tag = hash_tag(h);
	*tag_out = tag;
	size_t mask = ix->cap - 1, i = (size_t)h & mask;
	while (ix->slots[i] != NULL && (ix->tags[i] != tag || strcmp(ix->slots[i]->id, id) != 0))
		i = (i + 1) & mask;
	return i;
}

static void hash_set(event_index *ix, size_t slot, event_rec *r, uint32_t tag)
{
	ix->slots[slot] = r;
	ix->tags[slot] = tag;
}

/* Room for n events at a load of at most 0.7. 0, or -1 when out of memory
 * (the map unchanged). */
static int hash_reserve(event_index *ix, size_t n)
{
	if (n * 10 <= ix->cap * 7)
		return 0;
	size_t cap = ix->cap;
	while (n * 10 > cap * 7)
		cap *= 2;
	event_rec **slots = rpcq_calloc(cap, sizeof(*slots));
	uint32_t *tags = rpcq_calloc(cap, sizeof(*tags));
	if (slots == NULL || tags == NULL) {
		rpcq_free(slots);
		rpcq_free(tags);
		return -1;
	}
	for (size_t i = 0; i < ix->cap; i++) {
		if (ix->slots[i] == NULL)
			continue;
		size_t j = (size_t)id_hash(ix->slots[i]->id) & (cap - 1);
		while (slots[j] != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = ix->slots[i];
		tags[j] = ix->tags[i];
	}
	rpcq_free(ix->slots);
	rpcq_free(ix->tags);
	ix->slots = slots;
	ix->tags = tags;
	ix->cap = cap;
	return 0;
}

/* One allocation: the record, then its three strings. */
static event_rec *rec_copy(const event_rec *src)
{
	const char *b = src->base_id != NULL ? src->base_id : "";
	const char *e = src->event_id != NULL ? src->event_id : "";
	const char *t = src->title != NULL ? src->title : "";
	size_t lb = strlen(b) + 1, le = strlen(e) + 1, lt = strlen(t) + 1;
	event_rec *r = rpcq_alloc(sizeof(*r) + lb + le + lt);
	if (r == NULL)
		return NULL;
	*r = *src;
	r->id[sizeof(r->id) - 1] = '\0';
	r->starts_at[sizeof(r->starts_at) - 1] = '\0';
	r->ends_at[sizeof(r->ends_at) - 1] = '\0';
	r->sell_from[sizeof(r->sell_from) - 1] = '\0';
	r->sell_to[sizeof(r->sell_to) - 1] = '\0';
	r->min_price[sizeof(r->min_price) - 1] = '\0';
	r->max_price[sizeof(r->max_price) - 1] = '\0';
	char *p = (char *)(r + 1);
	r->base_id = memcpy(p, b, lb);
	r->event_id = memcpy(p + lb, e, le);
	r->title = memcpy(p + lb + le, t, lt);
	return r;
}

event_index *event_index_create(void)
{
	event_index *ix = rpcq_calloc(1, sizeof(*ix));
	if (ix == NULL)
		return NULL;
	pthread_rwlockattr_t attr;
	if (pthread_rwlockattr_init(&attr) != 0)
		goto fail;
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ix->lock_ok = pthread_rwlock_init(&ix->lock, &attr) == 0;
	pthread_rwlockattr_destroy(&attr);
	if (!ix->lock_ok)
		goto fail;
	for (int i = 0; i < 2; i++) {
		ix->t[i].root = rpcq_calloc(1, sizeof(leaf));
		if (ix->t[i].root == NULL)
			goto fail;
	}
	ix->cap = HASH_INITIAL;
	ix->slots = rpcq_calloc(ix->cap, sizeof(*ix->slots));
	ix->tags = rpcq_calloc(ix->cap, sizeof(*ix->tags));
	if (ix->slots == NULL || ix->tags == NULL)
		goto fail;
	return ix;
fail:
	event_index_destroy(ix);
	return NULL;
}

void event_index_destroy(event_index *ix)
{
	if (ix == NULL)
		return;
	if (ix->slots != NULL) {
		for (size_t i = 0; i < ix->cap; i++)
			rpcq_free(ix->slots[i]);
		rpcq_free(ix->slots);
	}
	rpcq_free(ix->tags);
	for (int i = 0; i < 2; i++) {
		if (ix->t[i].root != NULL)
			tree_free(ix->t[i].root, ix->t[i].height);
	}
	while (ix->spare_leaves != NULL) {
		leaf *l = ix->spare_leaves;
		ix->spare_leaves = l->next;
		rpcq_free(l);
	}
	while (ix->spare_inners != NULL) {
		inner *in = ix->spare_inners;
		ix->spare_inners = in->c[0];
		rpcq_free(in);
	}
	if (ix->lock_ok)
		pthread_rwlock_destroy(&ix->lock);
	rpcq_free(ix);
}

/* Puts r (owned) in place of the event with its id. newer_only: not when
 * the index holds that event at r->seq or later (then r is freed, 0). 1
 * when put, -1 when out of memory (r freed, the index unchanged). */
static int put(event_index *ix, event_rec *r, int newer_only)
{
	int result = -1;
	pthread_rwlock_wrlock(&ix->lock);
	uint32_t tag;
	size_t s = hash_slot(ix, r->id, &tag);
	event_rec *old = ix->slots[s];
	int which = rec_inverted(r);
	if (newer_only && old != NULL && old->seq >= r->seq) {
		result = 0;
		goto out;
	}
	if (old != NULL && rec_inverted(old) == which && strcmp(old->starts_at, r->starts_at) == 0) {
		tree_replace(&ix->t[which], old, r); /* same key, same place */
	} else {
		if (old == NULL) {
			if (hash_reserve(ix, ix->n + 1) != 0)
				goto out;
			s = hash_slot(ix, r->id, &tag);
		}
		if (spares_reserve(ix) != 0)
			goto out;
		if (old != NULL)
			tree_delete(ix, &ix->t[rec_inverted(old)], old);
		else
			ix->n++;
		tree_insert(ix, &ix->t[which], r);
	}
	hash_set(ix, s, r, tag);
	r = old; /* freed below, once no reader can hold it */
	result = 1;
out:
	pthread_rwlock_unlock(&ix->lock);
	rpcq_free(r);
	return result;
}

int event_index_upsert(event_index *ix, const event_rec *rec)
{
	assert(ix != NULL && rec != NULL);
	event_rec *r = rec_copy(rec);
	if (r == NULL)
		return -1;
	return put(ix, r, 0) < 0 ? -1 : 0;
}

event_rec *event_rec_dup(const event_rec *rec)
{
	assert(rec != NULL);
	return rec_copy(rec);
}

int event_index_put_newer(event_index *ix, event_rec *r)
{
	assert(ix != NULL && r != NULL);
	return put(ix, r, 1);
}

int event_index_upsert_newer(event_index *ix, const event_rec *rec)
{
	assert(ix != NULL && rec != NULL);
	event_rec *r = rec_copy(rec);
	if (r == NULL)
		return -1;
	return put(ix, r, 1);
}

/* Where a search starts in t: at the first start >= from, or just after
 * (after_start, after_id) when that is later. */
static cursor search_start(const tree *t, const char *from, const char *after_start, const char *after_id)
{
	if (after_id != NULL && after_id[0] != '\0') {
		const char *as = after_start != NULL ? after_start : "";
		if (from == NULL || key_cmp(as, after_id, from, "") >= 0)
			return tree_seek(t, as, after_id, 1);
	}
	return tree_seek(t, from != NULL ? from : "", "", 0);
}

size_t event_index_search(event_index *ix, const char *from, const char *to, const char *after_start,
			  const char *after_id, size_t limit, int (*fn)(void *arg, const event_rec *r), void *arg)
{
	assert(ix != NULL && fn != NULL);
	if (from != NULL && from[0] == '\0')
		from = NULL;
	if (to != NULL && to[0] == '\0')
		to = NULL;
	size_t passed = 0;
	pthread_rwlock_rdlock(&ix->lock);
	cursor c[2] = {search_start(&ix->t[0], from, after_start, after_id),
		       search_start(&ix->t[1], from, after_start, after_id)};
	for (;;) {
		const entry *a = c[0].l != NULL ? &c[0].l->e[c[0].i] : NULL;
		const entry *b = c[1].l != NULL ? &c[1].l->e[c[1].i] : NULL;
		/* Tree 0 ends at the first start past `to` (its events end no
		 * earlier than they start); tree 1 is walked to its end. */
		if (a != NULL && to != NULL && strcmp(a->start, to) > 0) {
			c[0].l = NULL;
			a = NULL;
		}
		if (a == NULL && b == NULL)
			break;
		int w = a == NULL ? 1 : b == NULL ? 0 : entry_cmp(a, b->start, b->r->id) > 0;
		const entry *e = w == 0 ? a : b;
		c[w].i++;
		cursor_fix(&c[w]);
		if (to != NULL && strcmp(e->end, to) > 0)
			continue;
		passed++;
		if (fn(arg, e->r) != 0 || passed == limit)
			break;
	}
	pthread_rwlock_unlock(&ix->lock);
	return passed;
}

int event_index_get(event_index *ix, const char *id, void (*fn)(void *arg, const event_rec *r), void *arg)
{
	uint32_t tag;
	pthread_rwlock_rdlock(&ix->lock);
	event_rec *r = ix->slots[hash_slot(ix, id, &tag)];
	if (r != NULL)
		fn(arg, r);
	pthread_rwlock_unlock(&ix->lock);
	return r != NULL;
}

size_t event_index_count(event_index *ix)
{
	pthread_rwlock_rdlock(&ix->lock);
	size_t n = ix->n;
	pthread_rwlock_unlock(&ix->lock);
	return n;
}
