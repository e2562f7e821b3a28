/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass5.c - pass 5, with the key only: MACs, AEAD tags, decoded
 * attributes, block contents
 *
 * Checks:
 *   - every inode value opens under its `ad` ("inode" || key || clear
 *     header), so a tampered, moved or swapped value is found
 *     (inode-seal-bad); its mode's type is the clear type
 *     (inode-type-mode) and a valid mode (inode-mode-bad); its extent count
 *     is the extents stored (inode-nextents-wrong: re-sealed); no extent
 *     lies at or past ceil(size / block size) (extent-past-eof); a
 *     symbolic link's target is 1 to 4095 bytes without NUL and its size
 *     (symlink-bad);
 *   - every extent's MAC (extent-mac-bad), every block value's
 *     (block-mac-bad: rebuilt from a good record), every orphan mark's
 *     (orphan-mac-bad: rewritten), the mount counter's (mounts-mac-bad:
 *     rewritten, never below a generation in use);
 *   - every extended attribute opens (xattr-seal-bad) and holds a valid
 *     name stored under its hash (xattr-name-bad);
 *   - every located block decrypted and hashed back to its id: done by
 *     pass 1 while it read the segments, reported here (block-decrypt-bad,
 *     block-id-wrong: recorded bad, as pass 1 does).
 * Directory entry names are opened by pass 3, where they decide
 * connectivity. Problems name the file's path.
 */
#include "fsck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs.h"
#include "fsck_int.h"

struct p5 {
	uint64_t max_gen;
};

static int inode_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct p5 *p = arg;
	struct fsck_pctx pc = {.ino = klen == 8 ? get_be64(k) : 0};
	uint8_t *plain, *out = NULL;
	struct fsck_ino *e;
	uint32_t mode;
	uint64_t size, nextents, gen;
	size_t plen, olen;
	int ret = 0;

	if (klen != 8)
		return 0;
	e = fsck_ino_find(&f->inodes, pc.ino);
	if (!e || (e->flags & FSCK_INO_BAD))
		return 0;
	plain = malloc(vlen);
	if (!plain)
		return -ENOMEM;
	if (fsck_inode_open(f, pc.ino, v, vlen, plain, &plen) ||
	    plen < FSCK_INODE_PLAIN) {
		fsck_problem(f, PR_5_INODE_SEAL, &pc);
		goto out;
	}
	mode = get_be32(plain);
	size = get_be64(plain + 16);
	gen = get_be64(plain + 32);
	nextents = get_be64(plain + 40);
	p->max_gen = MAX(p->max_gen, gen);
	if ((mode >> 12) != v[1]) {
		pc.n1 = mode >> 12;
		pc.n2 = v[1];
		fsck_problem(f, PR_5_INODE_TYPE, &pc);
		goto out;
	}
	if (mode & ~(uint32_t)(S_IFMT | 07777)) {
		pc.str = "mode has unknown bits";
		fsck_problem(f, PR_5_MODE_BAD, &pc);
	}
	if (S_ISLNK(mode)) {
		size_t tlen = plen - FSCK_INODE_PLAIN;
		const uint8_t *t = plain + FSCK_INODE_PLAIN;

		pc.str = NULL;
		if (tlen == 0)
			pc.str = "empty";
		else if (tlen > FS_SYMLINK_MAX)
			pc.str = "longer than 4095 bytes";
		else if (memchr(t, '\0', tlen))
			pc.str = "contains a NUL byte";
		else if (size != tlen)
			pc.str = "its size is not its length";
		if (pc.str)
			fsck_problem(f, PR_5_SYMLINK, &pc);
	} else if (plen != FSCK_INODE_PLAIN) {
		pc.str = "trailing bytes";
		fsck_problem(f, PR_5_MODE_BAD, &pc);
	}
	if (S_ISREG(mode) && e->maxidx &&
	    e->maxidx > (size + f->hdr.block_size - 1) / f->hdr.block_size) {
		pc.has_idx = true;
		pc.idx = e->maxidx - 1;
		pc.n1 = e->maxidx - 1;
		pc.n2 = size;
		fsck_problem(f, PR_5_PAST_EOF, &pc);
		pc.has_idx = false;
	}
	if (nextents != e->nextents) {
		pc.n1 = nextents;
		pc.n2 = e->nextents;
		pc.journaled = true;
		if (fsck_problem(f, PR_5_NEXTENTS, &pc)) {
			struct journal_txn *t = fsck_txn(f);

			out = malloc(vlen);
			if (!out) {
				ret = -ENOMEM;
				goto out;
			}
			if (!t)
				goto out;
			put_be64(plain + 40, e->nextents);
			fsck_inode_seal(f, pc.ino, v[1], get_be32(v + 4), plain,
					plen, out, &olen);
			journal_txn_put(t, STORE_CF_INODE, k, klen, out, olen);
			ret = fsck_txn_added(f, 1);
		}
	}
out:
	free(plain);
	free(out);
	return ret;
}

static int extent_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.has_idx = true};

	(void)arg;
	if (klen != 16 || vlen != FSCK_EXTENT_VAL)
		return 0;
	if (fsck_mac_check(f, "extent", k, klen, v, KEY_ID_BYTES,
			   v + KEY_ID_BYTES) == 0)
		return 0;
	pc.ino = get_be64(k);
	pc.idx = get_be64(k + 8);
	pc.id = v;
	fsck_problem(f, PR_5_EXTENT_MAC, &pc);
	return 0;
}

static int block_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.id = k, .journaled = true};
	struct fsck_blk *b;
	int ret;

	(void)arg;
	if (klen != KEY_ID_BYTES || vlen != FSCK_BLOCK_VAL)
		return 0;
	if (fsck_mac_check(f, "block", k, klen, v, 16, v + 16) == 0)
		return 0;
	b = fsck_blk_find(&f->blocks, k);
	if (!b || !(b->flags & FSCK_BLK_REC_OK))
		pc.nofix = "no good copy of the block is left";
	if (!fsck_problem(f, PR_5_BLOCK_MAC, &pc))
		return 0;
	ret = fsck_block_rewrite(f, k, b);
	return ret <= 0 ? ret : fsck_txn_added(f, 1);
}

static int orphan_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.journaled = true};
	uint8_t tag[KEY_MAC_BYTES];
	struct journal_txn *t;

	(void)arg;
	if (klen != 8 || vlen != FSCK_ORPHAN_VAL)
		return 0;
	if (fsck_mac_check(f, "orphan", k, klen, "", 0, v) == 0)
		return 0;
	pc.ino = get_be64(k);
	if (!fsck_problem(f, PR_5_ORPHAN_MAC, &pc))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	fsck_mac(f, "orphan", k, klen, "", 0, tag);
	journal_txn_put(t, STORE_CF_ORPHAN, k, klen, tag, sizeof(tag));
	return fsck_txn_added(f, 1);
}

static int xattr_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.journaled = true};
	uint8_t ad[5 + FSCK_XATTR_KEY], h[KEY_NAME_HASH_BYTES], *plain;
	enum fsck_problem_id id = PR_5_XATTR_NAME;
	size_t plen, nlen;
	int ret = 0;

	(void)arg;
	if (klen != FSCK_XATTR_KEY || vlen < 1 + KEY_SEAL_OVERHEAD + 1 ||
	    v[0] != 1)
		return 0; /* pass 3 */
	pc.ino = get_be64(k);
	plen = vlen - 1 - KEY_SEAL_OVERHEAD;
	plain = malloc(plen);
	if (!plain)
		return -ENOMEM;
	memcpy(ad, "xattr", 5);
	memcpy(ad + 5, k, FSCK_XATTR_KEY);
	if (key_open(f->k, KEY_SUB_VALUE, ad, sizeof(ad), v + 1, vlen - 1,
		     plain)) {
		id = PR_5_XATTR_SEAL;
		goto bad;
	}
	nlen = plain[0];
	if (nlen == 0 || nlen + 1 > plen) {
		pc.str = "bad name length";
		goto bad;
	}
	if (memchr(plain + 1, '\0', nlen)) {
		pc.str = "contains a NUL byte";
		goto bad;
	}
	key_name_hash(f->k, pc.ino, (const char *)plain + 1, nlen, h);
	if (memcmp(h, k + 8, KEY_NAME_HASH_BYTES)) {
		pc.str = "stored under another name's hash";
		goto bad;
	}
	goto out;
bad:
	if (fsck_problem(f, id, &pc)) {
		struct journal_txn *t = fsck_txn(f);

		if (t) {
			journal_txn_delete(t, STORE_CF_XATTR, k, klen);
			ret = fsck_txn_added(f, 1);
		}
	}
out:
	free(plain);
	return ret;
}

static int loc_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		  const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.id = k + 1};
	enum fsck_problem_id id;
	struct fsck_blk *b;
	uint8_t key[1 + KEY_ID_BYTES], val[8];

	(void)arg;
	(void)v;
	(void)vlen;
	if (klen != 1 + KEY_ID_BYTES)
		return 0;
	b = fsck_blk_find(&f->blocks, k + 1);
	if (!b ||
	    (b->flags &
	     (FSCK_BLK_MARKED | FSCK_BLK_COLLIDE | FSCK_BLK_MOVED)) ||
	    !(b->flags & FSCK_BLK_IN_L))
		return 0;
	if (b->flags & FSCK_BLK_KEY_BAD)
		id = PR_5_BLOCK_AEAD;
	else if (b->flags & FSCK_BLK_ID_BAD)
		id = PR_5_BLOCK_ID;
	else
		return 0;
	pc.has_seg = true;
	pc.seg = b->seg;
	pc.off = (uint64_t)b->offu * STORE_SEG_ALIGN;
	if (fsck_problem(f, id, &pc)) {
		key[0] = FSCK_LOCAL_BAD;
		memcpy(key + 1, k + 1, KEY_ID_BYTES);
		put_be64(val, (uint64_t)time(NULL));
		store_batch_put(fsck_raw(f), STORE_CF_LOCAL, key, sizeof(key),
				val, sizeof(val));
	}
	return 0;
}

static int check_mounts(struct fsck *f, struct p5 *p)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_SUPER),
			       .key = (const uint8_t *)"mounts",
			       .klen = 6,
			       .journaled = true};
	uint8_t val[8 + KEY_MAC_BYTES + 1];
	struct journal_txn *t;
	uint64_t mounts = 0;
	size_t len;
	int ret;

	ret = store_get_buf(f->st, STORE_CF_SUPER, "mounts", 6, val,
			    sizeof(val), &len);
	if (ret == -ENOENT)
		return 0;
	if (ret == 0 && len == 8 + KEY_MAC_BYTES) {
		mounts = get_be64(val);
		if (fsck_mac_check(f, "super", "mounts", 6, val, 8, val + 8) ==
		    0)
			return 0;
	} else if (ret && ret != -ENOSPC) {
		return ret;
	}
	if (!fsck_problem(f, PR_5_MOUNTS_MAC, &pc))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	put_be64(val, MAX(mounts, p->max_gen));
	fsck_mac(f, "super", "mounts", 6, val, 8, val + 8);
	journal_txn_put(t, STORE_CF_SUPER, "mounts", 6, val, 8 + KEY_MAC_BYTES);
	return fsck_txn_added(f, 1);
}

int fsck_pass5(struct fsck *f)
{
	struct p5 p = {0};
	int ret;

	fsck_progress(f, "opening inodes", 0, 0);
	ret = fsck_cf_walk(f, STORE_CF_INODE, NULL, 0, inode_fn, &p);
	if (ret == 0) {
		fsck_progress(f, "checking MACs", 0, 0);
		ret = fsck_cf_walk(f, STORE_CF_EXTENT, NULL, 0, extent_fn, &p);
	}
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_BLOCK, NULL, 0, block_fn, &p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_ORPHAN, NULL, 0, orphan_fn, &p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_XATTR, NULL, 0, xattr_fn, &p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_LOCAL, "L", 1, loc_fn, &p);
	if (ret == 0)
		ret = check_mounts(f, &p);
	return ret;
}
