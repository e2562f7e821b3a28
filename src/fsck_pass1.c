/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass1.c - pass 1: block segments, their index and checksums
 *
 * First loads the shared tables (no problems reported there except
 * malformed locations): the inode table from the inode, dirent and orphan
 * column families; the block table from the local column family ('L'
 * locations, 'F' pending releases, 'B' bad marks), the block column family
 * and the extents (reference counting).
 *
 * Then reads every segment once, sequentially, in large buffers
 * (store_seg_scan), and checks:
 *   - each record's XXH3 over id and sealed bytes; the record a location
 *     names is its block's good copy (block-record-corrupt when not: with
 *     -y recorded bad in the local column family, 'B' id, so that the data
 *     is known lost, reads keep failing with EIO and a later write of the
 *     same contents stores a fresh copy); with the key, a record whose
 *     header is whole but for its checksum and whose tag holds is kept and
 *     its header written again (block-record-checksum);
 *   - every location names a record of its id and length
 *     (loc-no-record), is well formed (loc-malformed), and is used by a
 *     block or an extent (loc-orphan: released);
 *   - a block the store holds has a location (block-no-loc) and its value
 *     agrees with its record's length and checksum (block-value-mismatch,
 *     rebuilt with the key) and is well formed (block-value-malformed);
 *   - records nothing names are garbage left by a crash (seg-record-orphan,
 *     released), unless they are the good copy a damaged or unlocated
 *     block needs (block-relocated: the location is pointed at them);
 *   - runs of bytes that are no record (seg-junk) and records cut short
 *     by the end of a segment (seg-record-short) are released, never
 *     where a location points;
 *   - marks of earlier runs ('B') that are stale (bad-mark-stale).
 *
 * With the key, each located record is also decrypted and hashed on a
 * pool of threads while the scan goes on; the verdicts are reported by
 * pass 5 (block-decrypt-bad, block-id-wrong).
 *
 * Releases (punches) are made only after the batch that stops naming the
 * record is written.
 */
#include "fsck.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "fsck_int.h"
#include "log.h"

#define P1_BUF_DEFAULT (4u << 20)
#define P1_BATCH_BYTES (8u << 20)
#define P1_BATCH_JOBS  4096

struct p1_extra {
	uint32_t seg;
	uint32_t offu;
	uint32_t len;
	uint32_t units;
	uint64_t sum; /* the record's checksum (store_rec_sum) */
	uint8_t id[KEY_ID_BYTES];
	bool ok;   /* its checksum holds */
	bool used; /* became a block's location */
};

struct p1_junk {
	uint32_t seg;
	uint64_t off;
	uint64_t span;
	bool shorty;
};

struct p1_loc {
	uint32_t seg;
	uint32_t offu;
};

struct p1_job {
	struct fsck_blk *b;
	uint8_t id[KEY_ID_BYTES];
	size_t off;
	uint32_t len;
	uint32_t res;
};

struct p1_batch {
	struct p1_job *jobs;
	size_t n;
	uint8_t *buf;
	size_t used;
	_Atomic size_t next;
	_Atomic size_t done;
	unsigned busy; /* workers inside it, under the pool lock */
};

struct p1_pool {
	struct fsck *f;
	pthread_t *th;
	size_t nth;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t idle;
	struct p1_batch batch[2];
	int fill;
	struct p1_batch *active;
	bool stop;
};

struct fsck_p1 {
	struct fsck *f;
	/* the scan thread */
	pthread_t th;
	bool running;
	atomic_bool stop;
	_Atomic uint64_t
	    shown_bytes; /* for progress, read by the main thread */
	int scan_err;
	uint32_t *bad_segs;
	size_t nbad_segs, capbad_segs;
	uint64_t records, rec_bytes;
	uint8_t (*bad_locs)[KEY_ID_BYTES]; /* malformed 'L' entries */
	size_t nbad_locs, capbad_locs;
	struct p1_extra *extras;
	size_t nextras, capextras;
	struct p1_junk *junk;
	size_t njunk, capjunk;
	struct p1_loc *frees;
	size_t nfrees, capfrees;
	struct p1_loc *missing; /* located records the scan did not meet */
	size_t nmissing, capmissing;
	struct p1_junk *punch;
	size_t npunch, cappunch;
	uint8_t last_id[KEY_ID_BYTES];
	bool have_last;
	uint64_t bytes_read, total;
	struct p1_pool *pool;
	/* keyless: the index loads on its own thread while the scan starts */
	pthread_t index_th;
	bool index_thread;	/* index_th runs load_index */
	atomic_bool index_ready;/* ...and has ended (index_ret is set) */
	bool index_joined;	/* the scan joined it and matched `early` */
	int index_ret;
	struct p1_fact *early;	/* records met before the index was ready */
	size_t nearly, capearly;
};

/* What the scan keeps of a record until the index can place it. */
struct p1_fact {
	uint8_t id[KEY_ID_BYTES];
	uint64_t sum;
	uint32_t seg, offu, len, units;
	bool ok;
};

/* Records held back at most (64 bytes each); past that the scan waits. */
#define P1_EARLY_MAX (256u * 1024)

#define GROW(arr, n, cap)                                                      \
	do {                                                                   \
		if ((n) == (cap)) {                                            \
			size_t c_ = (cap) ? 2 * (cap) : 64;                    \
			void *p_ = realloc((arr), c_ * sizeof(*(arr)));        \
			if (!p_)                                               \
				return -ENOMEM;                                \
			(arr) = p_;                                            \
			(cap) = c_;                                            \
		}                                                              \
	} while (0)

static uint64_t span_of(uint32_t len)
{
	uint64_t s = STORE_SEG_HDR_BYTES + (uint64_t)len;

	return (s + STORE_SEG_ALIGN - 1) & ~(uint64_t)(STORE_SEG_ALIGN - 1);
}

static bool blk_needed(const struct fsck_blk *b)
{
	return (b->flags & FSCK_BLK_IN_CF) || b->refs > 0;
}

/* ---- loading the tables ---- */

static int load_inode(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		      const uint8_t *v, size_t vlen)
{
	uint64_t ino;
	uint8_t type = 0;
	uint32_t nlink = 0;
	uint16_t flags = 0;
	int ret;

	(void)arg;
	if (klen != 8 || !(ino = get_be64(k)))
		return 0;
	if (vlen < FSCK_INODE_CLEAR + FSCK_INODE_PLAIN + KEY_SEAL_OVERHEAD ||
	    v[0] != 1 || !fsck_type_valid(v[1])) {
		flags = FSCK_INO_BAD;
	} else {
		type = v[1];
		nlink = get_be32(v + 4);
	}
	ret = fsck_ino_add(&f->inodes, ino, type, nlink, flags);
	if (ret)
		return ret == -EEXIST ? 0 : ret;
	f->max_ino = MAX(f->max_ino, ino);
	f->stats.inodes++;
	if (type == 004)
		f->stats.dirs++;
	else if (type == 010)
		f->stats.files++;
	else if (type == 012)
		f->stats.symlinks++;
	else
		f->stats.others++;
	return 0;
}

static int load_dirent(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		       const uint8_t *v, size_t vlen)
{
	struct fsck_ino *e;

	(void)arg;
	if (klen != FSCK_DIRENT_KEY || vlen < FSCK_DIRENT_CLEAR || v[0] != 1)
		return 0;
	e = fsck_ino_find(&f->inodes, get_be64(v + 4));
	if (e && !e->parent && get_be64(v + 4) != get_be64(k)) {
		e->parent = get_be64(k);
		memcpy(e->hash, k + 8, KEY_NAME_HASH_BYTES);
	}
	return 0;
}

static int load_orphan(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		       const uint8_t *v, size_t vlen)
{
	struct fsck_ino *e;

	(void)arg;
	(void)v;
	(void)vlen;
	if (klen == 8 && (e = fsck_ino_find(&f->inodes, get_be64(k))))
		e->flags |= FSCK_INO_ORPHAN;
	return 0;
}

static int cmp_loc(const void *a, const void *b)
{
	const struct p1_loc *x = a, *y = b;

	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->offu < y->offu ? -1 : x->offu > y->offu;
}

static bool is_pending(const struct fsck_p1 *p, uint32_t seg, uint32_t offu)
{
	struct p1_loc key = {seg, offu};

	return p->nfrees &&
	       bsearch(&key, p->frees, p->nfrees, sizeof(key), cmp_loc);
}

static int load_local(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		      const uint8_t *v, size_t vlen)
{
	struct fsck_p1 *p = arg;
	struct store_loc loc;
	struct fsck_blk *b;

	if (klen < 1)
		return 0;
	switch (k[0]) {
	case FSCK_LOCAL_BAD:
		if (klen != 1 + KEY_ID_BYTES)
			return 0;
		b = fsck_blk_get(&f->blocks, k + 1);
		if (!b)
			return -ENOMEM;
		b->flags |= FSCK_BLK_MARKED;
		return 0;
	case FSCK_LOCAL_FREE:
		if (klen != 1 + 8 + KEY_ID_BYTES ||
		    store_loc_decode(v, vlen, &loc) ||
		    loc.off % STORE_SEG_ALIGN)
			return 0;
		GROW(p->frees, p->nfrees, p->capfrees);
		p->frees[p->nfrees].seg = loc.seg;
		p->frees[p->nfrees].offu =
		    (uint32_t)(loc.off / STORE_SEG_ALIGN);
		p->nfrees++;
		return 0;
	case FSCK_LOCAL_LOC:
		break;
	default:
		return 0;
	}
	if (klen != 1 + KEY_ID_BYTES)
		return 0;
	b = fsck_blk_get(&f->blocks, k + 1);
	if (!b)
		return -ENOMEM;
	if (p->have_last && !memcmp(p->last_id, k + 1, 8) &&
	    memcmp(p->last_id, k + 1, KEY_ID_BYTES))
		b->flags |= FSCK_BLK_COLLIDE;
	memcpy(p->last_id, k + 1, KEY_ID_BYTES);
	p->have_last = true;
	if (store_loc_decode(v, vlen, &loc) || loc.off % STORE_SEG_ALIGN ||
	    loc.off / STORE_SEG_ALIGN > UINT32_MAX || loc.len == 0 ||
	    loc.off + span_of(loc.len) > STORE_SEG_MAX) {
		/* Reported by pass 1 itself, once it runs. */
		GROW(p->bad_locs, p->nbad_locs, p->capbad_locs);
		memcpy(p->bad_locs[p->nbad_locs++], k + 1, KEY_ID_BYTES);
		return 0;
	}
	b->flags |= FSCK_BLK_IN_L;
	b->seg = loc.seg;
	b->offu = (uint32_t)(loc.off / STORE_SEG_ALIGN);
	b->len = loc.len;
	if (is_pending(p, b->seg, b->offu))
		b->flags |= FSCK_BLK_PENDING;
	return 0;
}

static int load_block(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		      const uint8_t *v, size_t vlen)
{
	struct fsck_p1 *p = arg;
	struct fsck_blk *b;

	if (klen != KEY_ID_BYTES)
		return 0;
	b = fsck_blk_get(&f->blocks, k);
	if (!b)
		return -ENOMEM;
	if (p->have_last && !memcmp(p->last_id, k, 8) &&
	    memcmp(p->last_id, k, KEY_ID_BYTES))
		b->flags |= FSCK_BLK_COLLIDE;
	memcpy(p->last_id, k, KEY_ID_BYTES);
	p->have_last = true;
	b->flags |= FSCK_BLK_IN_CF;
	if (vlen != FSCK_BLOCK_VAL) {
		b->flags |= FSCK_BLK_CF_BAD;
		return 0;
	}
	b->rc = get_be32(v);
	if (!(b->flags & FSCK_BLK_IN_L))
		b->len = get_be32(v + 4);
	else if (b->len != get_be32(v + 4))
		b->flags |= FSCK_BLK_VAL_DIFF;
	/* The scan left the record's checksum in csum. */
	if ((b->flags & FSCK_BLK_REC_OK) && b->csum != get_be64(v + 8))
		b->flags |= FSCK_BLK_VAL_DIFF;
	b->csum = get_be64(v + 8);
	f->stats.blocks++;
	f->stats.block_bytes += get_be32(v + 4);
	return 0;
}

static int load_extent(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		       const uint8_t *v, size_t vlen)
{
	struct fsck_blk *b;
	struct fsck_ino *e;
	uint64_t idx;

	(void)arg;
	if (klen != 16 || vlen != FSCK_EXTENT_VAL)
		return 0;
	b = fsck_blk_get(&f->blocks, v);
	if (!b)
		return -ENOMEM;
	if (b->refs < UINT32_MAX)
		b->refs++;
	e = fsck_ino_find(&f->inodes, get_be64(k));
	if (e) {
		idx = get_be64(k + 8);
		e->nextents++;
		e->maxidx = MAX(e->maxidx, idx + 1);
	}
	f->stats.extents++;
	return 0;
}

/*
 * The block index: loaded by the scan thread before it reads segments,
 * which it matches records to, while pass 0 walks the other families.
 */
static int load_index(struct fsck *f, struct fsck_p1 *p)
{
	int ret;

	fsck_blk_release(&f->blocks);
	ret = fsck_blk_init(&f->blocks, 0);
	if (ret)
		return ret;
	/* 'F' comes before 'L' in key order: pending releases are known first.
	 */
	ret = fsck_cf_walk_stop(f, STORE_CF_LOCAL, "F", 1, load_local, p,
				       &p->stop);
	if (ret)
		return ret;
	if (p->nfrees)
		qsort(p->frees, p->nfrees, sizeof(*p->frees), cmp_loc);
	ret = fsck_cf_walk_stop(f, STORE_CF_LOCAL, "B", 1, load_local, p,
				       &p->stop);
	if (ret == 0) {
		p->have_last = false;
		ret = fsck_cf_walk_stop(f, STORE_CF_LOCAL, "L", 1, load_local, p,
				       &p->stop);
	}
	return ret;
}

/*
 * The rest, after pass 4, which may have restored values. Inodes first,
 * while the scan may still run (it owns the block table until it ends),
 * then, once it has, the block values and extents.
 */
static int load_inodes(struct fsck *f, struct fsck_p1 *p)
{
	int ret;

	fsck_ino_release(&f->inodes);
	memset(&f->stats.inodes, 0,
	       sizeof(uint64_t) * 5); /* inodes .. others */
	f->stats.blocks = f->stats.block_bytes = f->stats.extents = 0;
	f->max_ino = 0;
	fsck_progress(f, "loading inodes", 0, 0);
	ret = fsck_cf_walk(f, STORE_CF_INODE, NULL, 0, load_inode, p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_DIRENT, NULL, 0, load_dirent, p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_ORPHAN, NULL, 0, load_orphan, p);
	return ret;
}

static int load_blocks(struct fsck *f, struct fsck_p1 *p)
{
	int ret;

	fsck_progress(f, "loading block values", 0, 0);
	p->have_last = false;
	ret = fsck_cf_walk(f, STORE_CF_BLOCK, NULL, 0, load_block, p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_EXTENT, NULL, 0, load_extent, p);
	return ret;
}

/* ---- keyed verification on a pool ---- */

static uint32_t verify_block(struct fsck *f, const uint8_t *id,
			     const uint8_t *sealed, size_t len, uint8_t *plain)
{
	uint8_t got[KEY_ID_BYTES];
	size_t plen;

	if (codec_open(f->codec, id, sealed, len, plain, VOLUME_MAX_BLOCK,
		       &plen))
		return FSCK_BLK_KEY_BAD;
	codec_block_id(f->codec, plain, plen, got);
	if (memcmp(got, id, KEY_ID_BYTES))
		return FSCK_BLK_ID_BAD;
	return FSCK_BLK_KEY_OK;
}

/* Run jobs of b, whose n is fixed while it is active (n is passed in). */
static void batch_run(struct p1_pool *pl, struct p1_batch *b, size_t n,
		      uint8_t *plain)
{
	size_t i;

	while ((i = atomic_fetch_add(&b->next, 1)) < n) {
		struct p1_job *j = &b->jobs[i];

		j->res =
		    verify_block(pl->f, j->id, b->buf + j->off, j->len, plain);
		atomic_fetch_add(&b->done, 1);
	}
}

static void *pool_main(void *arg)
{
	struct p1_pool *pl = arg;
	uint8_t *plain = malloc(VOLUME_MAX_BLOCK);

	if (!plain)
		return NULL;
	pthread_mutex_lock(&pl->lock);
	for (;;) {
		struct p1_batch *b;
		size_t n;

		while (!pl->stop &&
		       (!pl->active ||
			atomic_load(&pl->active->next) >= pl->active->n))
			pthread_cond_wait(&pl->wake, &pl->lock);
		if (pl->stop)
			break;
		b = pl->active;
		n = b->n;
		b->busy++;
		pthread_mutex_unlock(&pl->lock);
		batch_run(pl, b, n, plain);
		pthread_mutex_lock(&pl->lock);
		/* The drain waits until no worker is inside the batch. */
		if (--b->busy == 0)
			pthread_cond_broadcast(&pl->idle);
	}
	pthread_mutex_unlock(&pl->lock);
	free(plain);
	return NULL;
}

/* Wait for the batch in flight and apply its verdicts. */
static void pool_drain(struct p1_pool *pl)
{
	struct p1_batch *b;

	pthread_mutex_lock(&pl->lock);
	b = pl->active;
	if (b) {
		/* Lend a hand (or do it all when no worker could start). */
		uint8_t *plain = malloc(VOLUME_MAX_BLOCK);
		size_t n = b->n;

		b->busy++;
		pthread_mutex_unlock(&pl->lock);
		if (plain)
			batch_run(pl, b, n, plain);
		free(plain);
		pthread_mutex_lock(&pl->lock);
		b->busy--;
	}
	while (b && (b->busy || (pl->nth && atomic_load(&b->done) < b->n)))
		pthread_cond_wait(&pl->idle, &pl->lock);
	pl->active = NULL;
	pthread_mutex_unlock(&pl->lock);
	if (!b)
		return;
	for (size_t q = 0; q < b->n; q++) {
		struct p1_job *j = &b->jobs[q];

		if (j->res == 0) /* not run: out of memory */
			continue;
		j->b->flags |= j->res;
		if (j->res != FSCK_BLK_KEY_OK)
			j->b->flags |= FSCK_BLK_LOST;
	}
	b->n = 0;
	b->used = 0;
}

static void pool_submit(struct p1_pool *pl)
{
	struct p1_batch *b = &pl->batch[pl->fill];

	if (!b->n)
		return;
	pool_drain(pl);
	atomic_store(&b->next, 0);
	atomic_store(&b->done, 0);
	pthread_mutex_lock(&pl->lock);
	pl->active = b;
	pthread_cond_broadcast(&pl->wake);
	pthread_mutex_unlock(&pl->lock);
	pl->fill ^= 1;
}

static int pool_add(struct p1_pool *pl, struct fsck_blk *blk, const uint8_t *id,
		    const uint8_t *sealed, uint32_t len)
{
	struct p1_batch *b = &pl->batch[pl->fill];
	struct p1_job *j;

	if (b->n == P1_BATCH_JOBS || b->used + len > P1_BATCH_BYTES)
		pool_submit(pl);
	b = &pl->batch[pl->fill];
	if (len > P1_BATCH_BYTES)
		return 0; /* cannot be a block: left to its checksum */
	j = &b->jobs[b->n++];
	j->b = blk;
	memcpy(j->id, id, KEY_ID_BYTES);
	j->off = b->used;
	j->len = len;
	j->res = 0;
	memcpy(b->buf + b->used, sealed, len);
	b->used += len;
	return 0;
}

static void pool_free(struct p1_pool *pl)
{
	if (!pl)
		return;
	pthread_mutex_lock(&pl->lock);
	pl->stop = true;
	pthread_cond_broadcast(&pl->wake);
	pthread_mutex_unlock(&pl->lock);
	for (size_t q = 0; q < pl->nth; q++)
		pthread_join(pl->th[q], NULL);
	for (int q = 0; q < 2; q++) {
		free(pl->batch[q].jobs);
		free(pl->batch[q].buf);
	}
	free(pl->th);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->wake);
	pthread_cond_destroy(&pl->idle);
	free(pl);
}

static int pool_new(struct fsck *f, struct p1_pool **out)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = f->o.threads ? f->o.threads
				   : (size_t)(cpus > 0 ? MIN(cpus, 16) : 1);
	struct p1_pool *pl;

	*out = NULL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->f = f;
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->wake, NULL);
	pthread_cond_init(&pl->idle, NULL);
	for (int q = 0; q < 2; q++) {
		pl->batch[q].jobs =
		    calloc(P1_BATCH_JOBS, sizeof(struct p1_job));
		pl->batch[q].buf = malloc(P1_BATCH_BYTES);
		if (!pl->batch[q].jobs || !pl->batch[q].buf) {
			pool_free(pl);
			return -ENOMEM;
		}
	}
	pl->th = calloc(want, sizeof(*pl->th));
	if (!pl->th) {
		pool_free(pl);
		return -ENOMEM;
	}
	for (size_t q = 0; q < want; q++) {
		if (pthread_create(&pl->th[q], NULL, pool_main, pl))
			break;
		pl->nth++;
	}
	*out = pl;
	return 0;
}

/* ---- the scan ---- */

/* Match a record to the index; sealed (for the pool) may be NULL. */
static int scan_match(struct fsck_p1 *p, const struct p1_fact *r,
		      const uint8_t *sealed)
{
	struct fsck *f = p->f;
	struct fsck_blk *b = fsck_blk_find(&f->blocks, r->id);

	if (b && (b->flags & FSCK_BLK_IN_L) && b->seg == r->seg &&
	    b->offu == r->offu) {
		/* The located record met twice is not a second copy. */
		if (b->flags & FSCK_BLK_SEEN)
			return 0;
		b->flags |= FSCK_BLK_SEEN;
		if (!r->ok || r->len != b->len) {
			b->flags |= FSCK_BLK_REC_BAD;
			return 0;
		}
		b->flags |= FSCK_BLK_REC_OK;
		b->csum = r->sum; /* compared when values load */
		if (p->pool && sealed)
			return pool_add(p->pool, b, r->id, sealed, r->len);
		return 0;
	}
	if (is_pending(p, r->seg, r->offu))
		return 0; /* released once its record is synced */
	GROW(p->extras, p->nextras, p->capextras);
	p->extras[p->nextras].seg = r->seg;
	p->extras[p->nextras].offu = r->offu;
	p->extras[p->nextras].len = r->len;
	p->extras[p->nextras].units = r->units;
	p->extras[p->nextras].sum = r->sum;
	memcpy(p->extras[p->nextras].id, r->id, KEY_ID_BYTES);
	p->extras[p->nextras].ok = r->ok;
	p->extras[p->nextras].used = false;
	p->nextras++;
	return 0;
}

/* Wait for the index thread, then place the records held back. */
static int index_join(struct fsck_p1 *p)
{
	int ret = 0;

	if (!p->index_thread)
		return 0;
	if (p->index_joined)
		return p->index_ret; /* a failed index fails every later call */
	pthread_join(p->index_th, NULL);
	p->index_joined = true;
	if (p->index_ret == 0)
		for (size_t q = 0; q < p->nearly && ret == 0; q++)
			ret = scan_match(p, &p->early[q], NULL);
	free(p->early);
	p->early = NULL;
	p->nearly = p->capearly = 0;
	return p->index_ret ? p->index_ret : ret;
}

static int scan_fn(void *arg, const struct store_seg_rec *r)
{
	struct fsck_p1 *p = arg;
	struct p1_fact fact;
	int ret;

	if ((++p->records & 0xff) == 0) {
		atomic_store(&p->shown_bytes, p->bytes_read);
		if (atomic_load(&p->stop))
			return -ECANCELED;
	}
	if (r->state == STORE_REC_JUNK || r->state == STORE_REC_SHORT) {
		GROW(p->junk, p->njunk, p->capjunk);
		p->junk[p->njunk].seg = r->seg;
		p->junk[p->njunk].off = r->off;
		p->junk[p->njunk].span = r->span;
		p->junk[p->njunk].shorty = r->state == STORE_REC_SHORT;
		p->njunk++;
		return 0;
	}
	p->rec_bytes += r->len;
	memcpy(fact.id, r->id, KEY_ID_BYTES);
	fact.sum = r->rec_sum;
	fact.seg = r->seg;
	fact.offu = (uint32_t)(r->off / STORE_SEG_ALIGN);
	fact.len = r->len;
	fact.units = (uint32_t)(r->span / STORE_SEG_ALIGN);
	fact.ok = r->state == STORE_REC_OK;
	if (p->index_thread && !p->index_joined) {
		if (!atomic_load(&p->index_ready) && p->nearly < P1_EARLY_MAX) {
			GROW(p->early, p->nearly, p->capearly);
			p->early[p->nearly++] = fact;
			return 0;
		}
		ret = index_join(p);
		if (ret)
			return ret;
	}
	return scan_match(p, &fact, r->sealed);
}

static void *index_main(void *arg)
{
	struct fsck_p1 *p = arg;

	p->index_ret = load_index(p->f, p);
	atomic_store(&p->index_ready, true);
	return NULL;
}

static void *scan_main(void *arg)
{
	struct fsck_p1 *p = arg;
	struct fsck *f = p->f;
	struct store_seg_info *segs = NULL;
	size_t n = 0, stray;
	double t0 = fsck_now();
	int ret = 0;

	/*
	 * Without the key, records need the index only to be placed: the
	 * scan starts at once and holds back what it meets until the index
	 * is loaded. With the key, the pool needs the index to check blocks
	 * while their bytes are in the buffer.
	 */
	if (!p->pool && pthread_create(&p->index_th, NULL, index_main, p) == 0)
		p->index_thread = true;
	else
		ret = load_index(f, p);
	if (ret == 0)
		ret = store_seg_list(f->st, &segs, &n, &stray);
	for (size_t q = 0; q < n && ret == 0; q++) {
		if (atomic_load(&p->stop))
			break;
		ret = store_seg_scan(f->st, segs[q].nr,
				     f->o.read_buffer ? f->o.read_buffer
						      : P1_BUF_DEFAULT,
				     scan_fn, p, &p->bytes_read);
		/* Without its index the scan means nothing: the pass fails. */
		if (p->index_joined && p->index_ret) {
			ret = p->index_ret;
			break;
		}
		if (ret == -ECANCELED) {
			ret = 0;
			break;
		}
		if (ret && ret != -ENOMEM) {
			if (p->nbad_segs == p->capbad_segs) {
				size_t cap =
				    p->capbad_segs ? 2 * p->capbad_segs : 8;
				uint32_t *b =
				    realloc(p->bad_segs, cap * sizeof(*b));

				if (!b) {
					ret = -ENOMEM;
					break;
				}
				p->bad_segs = b;
				p->capbad_segs = cap;
			}
			p->bad_segs[p->nbad_segs++] = segs[q].nr;
			ret = 0;
		}
	}
	if (p->pool) {
		pool_submit(p->pool);
		pool_drain(p->pool);
	}
	/* A store too small for the index to lose the race. */
	if (p->index_thread) {
		int iret = index_join(p);

		if (ret == 0)
			ret = iret;
	}
	free(segs);
	log_dbg(LOG_DBG_FSCK,
		"segment scan: %.3f s from %.3f s (this thread's CPU %.3f s)",
		fsck_now() - t0, t0, fsck_cpu());
	p->scan_err = ret;
	atomic_store(&p->shown_bytes, p->bytes_read);
	return NULL;
}

int fsck_pass1_start(struct fsck *f)
{
	struct store_seg_info *segs = NULL;
	struct fsck_p1 *p;
	size_t n, stray;
	int ret;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->f = f;
	f->p1 = p;
	ret = store_seg_list(f->st, &segs, &n, &stray);
	if (ret)
		return ret;
	for (size_t q = 0; q < n; q++)
		p->total += segs[q].alloc;
	free(segs);
	if (fsck_keyed(f)) {
		ret = pool_new(f, &p->pool);
		if (ret)
			return ret;
	}
	if (pthread_create(&p->th, NULL, scan_main, p))
		return -EAGAIN;
	p->running = true;
	return 0;
}

void fsck_pass1_stop(struct fsck *f)
{
	struct fsck_p1 *p = f->p1;

	if (!p)
		return;
	if (p->running) {
		atomic_store(&p->stop, true);
		pthread_join(p->th, NULL);
	}
	pool_free(p->pool);
	free(p->extras);
	free(p->junk);
	free(p->frees);
	free(p->missing);
	free(p->punch);
	free(p->bad_segs);
	free(p->bad_locs);
	free(p);
	f->p1 = NULL;
}

/* Wait for the scan, showing its progress. */
static int scan_wait(struct fsck *f, struct fsck_p1 *p)
{
	int ret;

	/* Woken by the scan's end, or every 50 ms to show its progress. */
	for (;;) {
		struct timespec ts;

		fsck_progress_bytes(f, "reading segments",
				    atomic_load(&p->shown_bytes), p->total);
		if (fsck_stopped(f))
			atomic_store(&p->stop, true);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000 * 1000;
		if (ts.tv_nsec >= 1000 * 1000 * 1000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000 * 1000 * 1000;
		}
		ret = pthread_timedjoin_np(p->th, NULL, &ts);
		if (ret == 0)
			break;
		if (ret != ETIMEDOUT) {
			pthread_join(p->th, NULL);
			break;
		}
	}
	p->running = false;
	pool_free(p->pool);
	p->pool = NULL;
	fsck_progress_bytes(f, "reading segments", p->bytes_read, p->total);
	f->stats.records = p->records;
	f->stats.rec_bytes = p->rec_bytes;
	for (size_t q = 0; q < p->nbad_segs; q++) {
		struct fsck_pctx pc = {.has_seg = true,
				       .seg = p->bad_segs[q],
				       .n1 = p->bad_segs[q]};

		fsck_problem(f, PR_1_SEG_READ, &pc);
	}
	return p->scan_err;
}

/* ---- verdicts ---- */

static int add_punch(struct fsck_p1 *p, uint32_t seg, uint64_t off,
		     uint64_t len)
{
	GROW(p->punch, p->npunch, p->cappunch);
	p->punch[p->npunch].seg = seg;
	p->punch[p->npunch].off = off;
	p->punch[p->npunch].span =
	    (len + STORE_SEG_ALIGN - 1) & ~(uint64_t)(STORE_SEG_ALIGN - 1);
	p->npunch++;
	return 0;
}

/* Check a located record the scan did not meet (hidden or missing). */
static int recheck_located(struct fsck *f, struct fsck_p1 *p, const uint8_t *id,
			   struct fsck_blk *b, const char **why)
{
	struct store_loc loc = {.seg = b->seg,
				.len = b->len,
				.off = (uint64_t)b->offu * STORE_SEG_ALIGN};
	uint8_t *buf;
	int ret;

	buf = malloc(b->len ? b->len : 1);
	if (!buf)
		return -ENOMEM;
	ret = store_seg_read(f->st, &loc, id, buf);
	if (ret == 0) {
		b->flags |= FSCK_BLK_REC_OK | FSCK_BLK_SEEN;
		if ((b->flags & FSCK_BLK_IN_CF) &&
		    !(b->flags & FSCK_BLK_CF_BAD) &&
		    b->csum != store_rec_sum(id, buf, b->len))
			b->flags |= FSCK_BLK_VAL_DIFF;
		if (fsck_keyed(f)) {
			uint8_t *plain = malloc(VOLUME_MAX_BLOCK);
			uint32_t res;

			if (!plain) {
				free(buf);
				return -ENOMEM;
			}
			res = verify_block(f, id, buf, b->len, plain);
			b->flags |= res;
			if (res != FSCK_BLK_KEY_OK)
				b->flags |= FSCK_BLK_LOST;
			free(plain);
		}
	} else {
		*why = "no record there";
		GROW(p->missing, p->nmissing, p->capmissing);
		p->missing[p->nmissing].seg = b->seg;
		p->missing[p->nmissing].offu = b->offu;
		p->nmissing++;
	}
	free(buf);
	return 0;
}

/* An unlocated good copy of the block `id` needs, or NULL. */
static struct p1_extra *find_copy(struct fsck_p1 *p, const uint8_t *id,
				  const struct fsck_blk *b)
{
	for (size_t q = 0; q < p->nextras; q++) {
		struct p1_extra *x = &p->extras[q];

		if (!x->ok || x->used || memcmp(x->id, id, KEY_ID_BYTES))
			continue;
		if ((b->flags & FSCK_BLK_IN_CF) &&
		    !(b->flags & FSCK_BLK_CF_BAD) &&
		    (x->len != b->len || x->sum != b->csum))
			continue;
		return x;
	}
	return NULL;
}

static void relocate(struct fsck *f, struct fsck_p1 *p, const uint8_t *id,
		     struct fsck_blk *b, struct p1_extra *x, bool had_loc)
{
	struct fsck_pctx pc = {.id = id,
			       .has_seg = true,
			       .seg = x->seg,
			       .off = (uint64_t)x->offu * STORE_SEG_ALIGN};
	uint8_t key[1 + KEY_ID_BYTES], val[STORE_LOC_BYTES];
	struct store_loc loc = {.seg = x->seg,
				.len = x->len,
				.off = (uint64_t)x->offu * STORE_SEG_ALIGN};

	x->used = true; /* never released, fixed or not */
	if (!fsck_problem(f, PR_1_RELOCATE, &pc))
		return;
	key[0] = FSCK_LOCAL_LOC;
	memcpy(key + 1, id, KEY_ID_BYTES);
	store_loc_encode(&loc, val);
	store_batch_put(fsck_raw(f), STORE_CF_LOCAL, key, sizeof(key), val,
			sizeof(val));
	if (had_loc && (b->flags & FSCK_BLK_SEEN))
		(void)add_punch(p, b->seg, (uint64_t)b->offu * STORE_SEG_ALIGN,
				span_of(b->len));
	b->flags = (b->flags & ~(FSCK_BLK_REC_BAD | FSCK_BLK_LOST)) |
		   FSCK_BLK_IN_L | FSCK_BLK_REC_OK | FSCK_BLK_MOVED;
	b->seg = x->seg;
	b->offu = x->offu;
	b->len = x->len;
	if (!(b->flags & FSCK_BLK_IN_CF))
		b->csum = x->sum;
	else if (b->csum != x->sum)
		b->flags |= FSCK_BLK_VAL_DIFF;
}

static void mark_bad(struct fsck *f, const uint8_t *id)
{
	uint8_t key[1 + KEY_ID_BYTES], val[8];

	key[0] = FSCK_LOCAL_BAD;
	memcpy(key + 1, id, KEY_ID_BYTES);
	put_be64(val, (uint64_t)time(NULL));
	store_batch_put(fsck_raw(f), STORE_CF_LOCAL, key, sizeof(key), val,
			sizeof(val));
}

/*
 * With the key, a located record that failed its checksum may still be
 * authentic: if its header is otherwise whole and the tag holds (and the
 * id recomputes), only the stored checksum is damaged, and writing the
 * header again keeps the block. 0 if so (reported), 1 if not, -errno.
 */
static int keep_authentic(struct fsck *f, const uint8_t *id,
			  struct fsck_blk *b, const struct fsck_pctx *pc)
{
	struct store_loc loc = {.seg = b->seg,
				.len = b->len,
				.off = (uint64_t)b->offu * STORE_SEG_ALIGN};
	uint8_t *buf, *plain;
	int ret = 1;

	buf = malloc(b->len ? b->len : 1);
	plain = malloc(VOLUME_MAX_BLOCK);
	if (!buf || !plain) {
		ret = -ENOMEM;
		goto out;
	}
	if (store_seg_read_authed(f->st, &loc, id, buf) ||
	    verify_block(f, id, buf, b->len, plain) != FSCK_BLK_KEY_OK)
		goto out;
	ret = 0;
	b->flags = (b->flags & ~FSCK_BLK_REC_BAD) | FSCK_BLK_REC_OK |
		   FSCK_BLK_KEY_OK;
	if ((b->flags & FSCK_BLK_IN_CF) && !(b->flags & FSCK_BLK_CF_BAD) &&
	    b->csum != store_rec_sum(id, buf, b->len))
		b->flags |= FSCK_BLK_VAL_DIFF;
	if (fsck_problem(f, PR_1_REC_SUM, pc)) {
		ret = store_seg_redo(f->st, &loc, id, buf);
		if (ret > 0)
			f->modified = true;
		ret = ret < 0 ? ret : 0;
	}
out:
	free(buf);
	free(plain);
	return ret;
}

static int judge_loc(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct fsck_p1 *p = arg;
	const uint8_t *id = k + 1;
	struct fsck_blk *b;
	struct p1_extra *x;
	const char *why = NULL;
	struct fsck_pctx pc = {.id = id};
	int ret;

	(void)v;
	(void)vlen;
	if (klen != 1 + KEY_ID_BYTES)
		return 0;
	b = fsck_blk_find(&f->blocks, id);
	if (!b || !(b->flags & FSCK_BLK_IN_L) || (b->flags & FSCK_BLK_COLLIDE))
		return 0;
	pc.has_seg = true;
	pc.seg = b->seg;
	pc.off = (uint64_t)b->offu * STORE_SEG_ALIGN;
	if (!(b->flags & FSCK_BLK_SEEN) && blk_needed(b) &&
	    fsck_redo_covers(f, b->seg, pc.off, b->len, id))
		return 0; /* whole in the redo log: redo-pending */
	if (!(b->flags & FSCK_BLK_SEEN)) {
		ret = recheck_located(f, p, id, b, &why);
		if (ret)
			return ret;
	}
	if (!blk_needed(b)) {
		if (b->flags & FSCK_BLK_PENDING)
			return 0;
		if (fsck_problem(f, PR_1_LOC_ORPHAN, &pc)) {
			store_batch_delete(fsck_raw(f), STORE_CF_LOCAL, k,
					   klen);
			if (b->flags & FSCK_BLK_SEEN)
				return add_punch(p, b->seg, pc.off,
						 span_of(b->len));
		}
		return 0;
	}
	if (b->flags & FSCK_BLK_REC_OK)
		return 0;
	/* The located copy is damaged or absent: another good one? */
	x = find_copy(p, id, b);
	if (x) {
		relocate(f, p, id, b, x, true);
		return 0;
	}
	if (fsck_redo_covers(f, b->seg, pc.off, b->len, id))
		return 0; /* whole in the redo log: redo-pending */
	if ((b->flags & FSCK_BLK_REC_BAD) && fsck_keyed(f)) {
		ret = keep_authentic(f, id, b, &pc);
		if (ret <= 0)
			return ret;
	}
	b->flags |= FSCK_BLK_LOST;
	if (b->flags & FSCK_BLK_MARKED)
		return 0; /* reported with its mark */
	if (b->flags & FSCK_BLK_REC_BAD) {
		if (fsck_problem(f, PR_1_REC_CORRUPT, &pc))
			mark_bad(f, id);
	} else {
		pc.str = why ? why : "no record there";
		if (fsck_problem(f, PR_1_LOC_NO_REC, &pc))
			mark_bad(f, id);
	}
	return 0;
}

static int judge_mark(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		      const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.id = k + 1};
	struct fsck_blk *b;

	(void)arg;
	(void)v;
	(void)vlen;
	if (klen != 1 + KEY_ID_BYTES)
		return 0;
	b = fsck_blk_find(&f->blocks, k + 1);
	if (!b)
		return 0;
	if (!blk_needed(b) ||
	    ((b->flags & FSCK_BLK_REC_OK) &&
	     !(b->flags & (FSCK_BLK_KEY_BAD | FSCK_BLK_ID_BAD)))) {
		if (fsck_problem(f, PR_1_BAD_MARK_STALE, &pc))
			store_batch_delete(fsck_raw(f), STORE_CF_LOCAL, k,
					   klen);
		b->flags &= ~(uint32_t)FSCK_BLK_MARKED;
		return 0;
	}
	b->flags |= FSCK_BLK_LOST;
	fsck_problem(f, PR_1_KNOWN_BAD, &pc);
	return 0;
}

/* Re-read a block's located record and rebuild its value (with the key). */
static int rebuild_value(struct fsck *f, const uint8_t *id, struct fsck_blk *b)
{
	int ret = fsck_block_rewrite(f, id, b);

	if (ret <= 0)
		return ret;
	b->flags &= ~(uint32_t)(FSCK_BLK_VAL_DIFF | FSCK_BLK_CF_BAD);
	return fsck_txn_added(f, 1);
}

static int judge_block(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		       const uint8_t *v, size_t vlen)
{
	struct fsck_p1 *p = arg;
	struct fsck_pctx pc = {.id = k, .journaled = true};
	struct fsck_blk *b;
	struct p1_extra *x;

	(void)v;
	if (klen != KEY_ID_BYTES)
		return 0;
	b = fsck_blk_find(&f->blocks, k);
	if (!b || (b->flags & FSCK_BLK_COLLIDE))
		return 0;
	if (!(b->flags & FSCK_BLK_IN_L)) {
		x = find_copy(p, k, b);
		if (x) {
			relocate(f, p, k, b, x, false);
		} else if (b->refs > 0 && !(b->flags & FSCK_BLK_MARKED)) {
			b->flags |= FSCK_BLK_LOST;
			pc.journaled = false;
			if (fsck_problem(f, PR_1_BLOCK_NO_LOC, &pc))
				mark_bad(f, k);
			return 0;
		} else {
			b->flags |= FSCK_BLK_LOST;
			return 0;
		}
	}
	if (!(b->flags & FSCK_BLK_REC_OK))
		return 0;
	if (b->flags & FSCK_BLK_CF_BAD) {
		pc.n1 = vlen;
		if (fsck_problem(f, PR_1_BLOCK_VAL_BAD, &pc))
			return rebuild_value(f, k, b);
	} else if (b->flags & FSCK_BLK_VAL_DIFF) {
		pc.str = get_be32(v + 4) != b->len ? "length" : "checksum";
		if (fsck_problem(f, PR_1_BLOCK_VAL_DIFF, &pc))
			return rebuild_value(f, k, b);
	}
	return 0;
}

static bool overlaps_missing(const struct fsck_p1 *p, uint32_t seg,
			     uint64_t off, uint64_t span)
{
	for (size_t q = 0; q < p->nmissing; q++) {
		uint64_t m = (uint64_t)p->missing[q].offu * STORE_SEG_ALIGN;

		if (p->missing[q].seg == seg && m >= off && m < off + span)
			return true;
	}
	return false;
}

static int judge_garbage(struct fsck *f, struct fsck_p1 *p)
{
	for (size_t q = 0; q < p->njunk && !fsck_stopped(f); q++) {
		struct p1_junk *j = &p->junk[q];
		struct fsck_pctx pc = {.has_seg = true,
				       .seg = j->seg,
				       .off = j->off,
				       .n1 = j->span};

		if (fsck_redo_covers(f, j->seg, j->off, j->span, NULL))
			continue; /* a record cut short: redo-pending */
		if (overlaps_missing(p, j->seg, j->off, j->span))
			pc.nofix = "a location points into it";
		if (fsck_problem(f, j->shorty ? PR_1_REC_SHORT : PR_1_JUNK,
				 &pc) &&
		    add_punch(p, j->seg, j->off, j->span))
			return -ENOMEM;
	}
	for (size_t q = 0; q < p->nextras && !fsck_stopped(f); q++) {
		struct p1_extra *x = &p->extras[q];
		struct fsck_pctx pc = {.has_seg = true,
				       .seg = x->seg,
				       .off =
					   (uint64_t)x->offu * STORE_SEG_ALIGN,
				       .n1 = x->len,
				       .id = x->id};
		struct fsck_blk *b;

		if (x->used)
			continue;
		b = fsck_blk_find(&f->blocks, x->id);
		if (b && (b->flags & FSCK_BLK_COLLIDE))
			continue;
		/*
		 * Never the record a location names, whatever the scan made
		 * of it: judge_loc has judged that one.
		 */
		if (b && (b->flags & FSCK_BLK_IN_L) && b->seg == x->seg &&
		    b->offu == x->offu) {
			log_dbg(LOG_DBG_FSCK,
				"pass 1: the located record at segment %" PRIu32
				" unit %" PRIu32 " was not matched by the scan",
				x->seg, x->offu);
			continue;
		}
		if (b && blk_needed(b) && !(b->flags & FSCK_BLK_REC_OK) &&
		    x->ok) {
			/* The copy an extent needs and no value names yet. */
			relocate(f, p, x->id, b, x, false);
			continue;
		}
		if (fsck_problem(f, PR_1_REC_ORPHAN, &pc) &&
		    add_punch(p, x->seg, pc.off,
			      (uint64_t)x->units * STORE_SEG_ALIGN))
			return -ENOMEM;
	}
	return 0;
}

static int apply_punches(struct fsck *f, struct fsck_p1 *p)
{
	int ret;

	if (!p->npunch || !f->rw)
		return 0;
	ret = fsck_commit(f);
	if (ret == 0)
		ret = store_sync(f->st);
	if (ret)
		return ret;
	for (size_t q = 0; q < p->npunch; q++) {
		ret = store_seg_punch(f->st, p->punch[q].seg, p->punch[q].off,
				      p->punch[q].span);
		if (ret && ret != -ENOENT)
			return ret;
		f->modified = true;
	}
	return 0;
}

int fsck_pass1(struct fsck *f)
{
	struct fsck_p1 *p = f->p1;
	double t0;
	int ret;

	if (!p)
		return 0;
	ret = load_inodes(f, p);
	if (ret || fsck_stopped(f))
		goto out;
	/*
	 * While the scan reads on, the families that the walks of this pass
	 * and the next two read again are read into memory.
	 */
	ret = fsck_cf_keep(f, STORE_CF_BLOCK);
	if (ret == 0)
		ret = fsck_cf_keep(f, STORE_CF_EXTENT);
	if (ret == 0)
		ret = fsck_cf_keep(f, STORE_CF_DIRENT);
	if (ret || fsck_stopped(f))
		goto out;
	ret = scan_wait(f, p);
	if (ret || fsck_stopped(f))
		goto out;
	t0 = fsck_now();
	/* The index was loaded by the scan thread: its malformed entries. */
	for (size_t q = 0; q < p->nbad_locs; q++) {
		struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_LOCAL),
				       .id = p->bad_locs[q]};
		uint8_t key[1 + KEY_ID_BYTES];

		key[0] = FSCK_LOCAL_LOC;
		memcpy(key + 1, p->bad_locs[q], KEY_ID_BYTES);
		if (fsck_problem(f, PR_1_LOC_BAD, &pc))
			store_batch_delete(fsck_raw(f), STORE_CF_LOCAL, key,
					   sizeof(key));
	}
	ret = load_blocks(f, p);
	if (ret || fsck_stopped(f))
		goto out;
	fsck_progress(f, "judging blocks", 0, 0);
	ret = fsck_cf_walk(f, STORE_CF_LOCAL, "L", 1, judge_loc, p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_LOCAL, "B", 1, judge_mark, p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_BLOCK, NULL, 0, judge_block, p);
	if (ret == 0)
		ret = judge_garbage(f, p);
	if (ret == 0)
		ret = apply_punches(f, p);
	log_dbg(LOG_DBG_FSCK, "pass 1: %.3f s after the scan", fsck_now() - t0);
out:
	fsck_pass1_stop(f);
	return ret == -ECANCELED ? 0 : ret;
}
