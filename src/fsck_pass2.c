/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass2.c - pass 2: extents and reference counts
 *
 * Walks the extent column family (sorted by inode, so the inode table is
 * consulted in order) and checks:
 *   - each value is a block id and a MAC (extent-malformed: reads of it
 *     fail with EIO, the file is named);
 *   - its inode exists (extent-no-inode: with the key, a new regular file
 *     inode is made of the extents, mode 0600, owned by root, its size the
 *     blocks it spans; the entries that named the old inode keep naming
 *     it, else pass 3 connects it to /lost+found; nothing is deleted) and
 *     is a regular file (extent-not-regular);
 *   - its block is in the block column family (extent-no-block: with the
 *     key, the entry is rebuilt from the block's record when a good copy
 *     is left);
 *   - its block's data is intact (file-block-damaged, information: the
 *     block problem itself was counted by pass 1 or 5; this names the
 *     file).
 * Then, per block value: its reference count equals the extents counted
 * in pass 1 (block-refcount-wrong, set with the key, as the value carries
 * a MAC) and some extent names it (block-orphan: deleted and its record
 * released through the journal, as fs releases a block).
 *
 * Reference counts need memory per block only: the counts were made by
 * pass 1 in the block table (about 50 bytes per block).
 */
#include "fsck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "fsck_int.h"

struct p2 {
	uint64_t last_missing; /* inode reported missing last */
	uint64_t missing_n;
	uint64_t missing_max;
	uint64_t pending_ino;
};

/* Make a regular file of the extents of a lost inode (with the key). */
static int make_file(struct fsck *f, uint64_t ino, uint64_t nextents,
		     uint64_t maxidx)
{
	uint8_t plain[FSCK_INODE_PLAIN],
	    val[FSCK_INODE_CLEAR + FSCK_INODE_PLAIN + KEY_SEAL_OVERHEAD];
	struct journal_txn *t;
	uint8_t key[8];
	size_t vlen;
	int ret;

	t = fsck_txn(f);
	if (!t)
		return 0;
	fsck_inode_plain(plain, S_IFREG | 0600, maxidx * f->hdr.block_size,
			 f->mounts + 1, nextents);
	fsck_inode_seal(f, ino, S_IFREG >> 12, 0, plain, sizeof(plain), val,
			&vlen);
	put_be64(key, ino);
	journal_txn_put(t, STORE_CF_INODE, key, sizeof(key), val, vlen);
	ret = fsck_ino_add(&f->inodes, ino, S_IFREG >> 12, 0, FSCK_INO_NEW);
	if (ret)
		return ret;
	fsck_ino_find(&f->inodes, ino)->nextents = (uint32_t)nextents;
	fsck_ino_find(&f->inodes, ino)->maxidx = maxidx;
	f->max_ino = MAX(f->max_ino, ino);
	f->stats.inodes++;
	f->stats.files++;
	return fsck_txn_added(f, 1);
}

/* Report the run of extents of a missing inode once, when it ends. */
static int flush_missing(struct fsck *f, struct p2 *p)
{
	struct fsck_pctx pc = {.ino = p->pending_ino, .journaled = true};

	if (!p->pending_ino)
		return 0;
	pc.n1 = p->missing_n;
	pc.cf = FSCK_PCTX_CF(STORE_CF_EXTENT);
	if (fsck_problem(f, PR_2_EXTENT_NO_INODE, &pc)) {
		int ret =
		    make_file(f, p->pending_ino, p->missing_n, p->missing_max);

		if (ret)
			return ret;
	} else {
		/* Pass 3 keeps the entries that name it. */
		if (f->nlost_inos == f->caplost_inos) {
			size_t cap = f->caplost_inos ? 2 * f->caplost_inos : 16;
			uint64_t *n = realloc(f->lost_inos, cap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			f->lost_inos = n;
			f->caplost_inos = cap;
		}
		f->lost_inos[f->nlost_inos++] = p->pending_ino;
	}
	p->pending_ino = 0;
	p->missing_n = p->missing_max = 0;
	return 0;
}

static int rebuild_block(struct fsck *f, const uint8_t *id, struct fsck_blk *b)
{
	int ret = fsck_block_rewrite(f, id, b);

	if (ret <= 0)
		return ret;
	b->flags |= FSCK_BLK_IN_CF;
	f->stats.blocks++;
	f->stats.block_bytes += b->len;
	return fsck_txn_added(f, 1);
}

static int extent_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct p2 *p = arg;
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_EXTENT),
			       .key = k,
			       .klen = klen,
			       .has_idx = true};
	struct fsck_ino *e;
	struct fsck_blk *b;
	uint64_t ino;
	int ret;

	if (klen != 16)
		return 0;
	ino = get_be64(k);
	pc.ino = ino;
	pc.idx = get_be64(k + 8);
	if (p->pending_ino && p->pending_ino != ino) {
		ret = flush_missing(f, p);
		if (ret)
			return ret;
	}
	if (vlen != FSCK_EXTENT_VAL) {
		pc.n1 = vlen;
		fsck_problem(f, PR_2_EXTENT_BAD, &pc);
		return 0;
	}
	e = fsck_ino_find(&f->inodes, ino);
	if (!e) {
		p->pending_ino = ino;
		p->missing_n++;
		p->missing_max = MAX(p->missing_max, pc.idx + 1);
		return 0;
	}
	if (!(e->flags & FSCK_INO_BAD) && e->type != (S_IFREG >> 12) &&
	    !(e->flags & FSCK_INO_NEW)) {
		if (fsck_problem(f, PR_2_EXTENT_NOT_REG,
				 &(struct fsck_pctx){
				     .ino = ino,
				     .has_idx = true,
				     .idx = pc.idx,
				     .journaled = true,
				     .nofix = f->state_left ? FSCK_NOFIX_STATE
							    : NULL})) {
			struct journal_txn *t = fsck_txn(f);

			if (!t)
				return 0;
			journal_txn_delete(t, STORE_CF_EXTENT, k, klen);
			b = fsck_blk_find(&f->blocks, v);
			if (b && b->refs)
				b->refs--;
			if (e->nextents)
				e->nextents--;
			return fsck_txn_added(f, 1);
		}
		return 0;
	}
	b = fsck_blk_find(&f->blocks, v);
	if (!b || (b->flags & FSCK_BLK_COLLIDE))
		return 0;
	pc.cf = 0;
	pc.id = v;
	if (!(b->flags & FSCK_BLK_IN_CF)) {
		if (b->flags & FSCK_BLK_REPORTED)
			return 0;
		b->flags |= FSCK_BLK_REPORTED;
		pc.journaled = true;
		if (!(b->flags & FSCK_BLK_REC_OK))
			pc.nofix = "no copy of the block is left";
		if (fsck_problem(f, PR_2_EXTENT_NO_BLOCK, &pc))
			return rebuild_block(f, v, b);
		return 0;
	}
	if (b->flags & FSCK_BLK_LOST) {
		pc.n1 = pc.idx;
		if (!(e->flags & FSCK_INO_DAMAGED))
			f->stats.damaged_files++;
		e->flags |= FSCK_INO_DAMAGED;
		fsck_problem(f, PR_2_FILE_DAMAGED, &pc);
	}
	return 0;
}

static int block_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.id = k, .journaled = true};
	struct journal_txn *t;
	struct fsck_blk *b;
	uint8_t val[FSCK_BLOCK_VAL];

	(void)arg;
	(void)v;
	if (klen != KEY_ID_BYTES || vlen != FSCK_BLOCK_VAL)
		return 0;
	b = fsck_blk_find(&f->blocks, k);
	if (!b || (b->flags & (FSCK_BLK_COLLIDE | FSCK_BLK_CF_BAD)))
		return 0;
	if (b->refs == 0) {
		pc.n1 = b->rc;
		if (f->state_left)
			pc.nofix = FSCK_NOFIX_STATE;
		if (!fsck_problem(f, PR_2_BLOCK_ORPHAN, &pc))
			return 0;
		t = fsck_txn(f);
		if (!t)
			return 0;
		journal_txn_delete(t, STORE_CF_BLOCK, k, klen);
		if (b->flags & FSCK_BLK_IN_L) {
			struct store_loc loc = {.seg = b->seg,
						.len = b->len,
						.off = (uint64_t)b->offu *
						       STORE_SEG_ALIGN};

			journal_txn_release_block(t, k, &loc);
		}
		b->flags |= FSCK_BLK_GONE;
		b->flags &= ~(uint32_t)FSCK_BLK_IN_CF;
		return fsck_txn_added(f, 1);
	}
	if (b->rc == b->refs)
		return 0;
	pc.n1 = b->rc;
	pc.n2 = b->refs;
	if (!fsck_problem(f, PR_2_REFCOUNT, &pc))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	fsck_block_val(f, k, b->refs, get_be32(v + 4), get_be64(v + 8), val);
	journal_txn_put(t, STORE_CF_BLOCK, k, klen, val, sizeof(val));
	b->rc = b->refs;
	return fsck_txn_added(f, 1);
}

int fsck_pass2(struct fsck *f)
{
	struct p2 p = {0};
	int ret;

	fsck_progress(f, "checking extents", 0, 0);
	ret = fsck_cf_walk(f, STORE_CF_EXTENT, NULL, 0, extent_fn, &p);
	if (ret == 0)
		ret = flush_missing(f, &p);
	if (ret || fsck_stopped(f))
		return ret;
	ret = fsck_commit(f);
	if (ret)
		return ret;
	fsck_progress(f, "checking reference counts", 0, 0);
	return fsck_cf_walk(f, STORE_CF_BLOCK, NULL, 0, block_fn, &p);
}
