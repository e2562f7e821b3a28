/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass3.c - pass 3: inodes, directory entries, link counts,
 * connectivity
 *
 * Uses the clear parts only (type and link count of inodes, child and
 * type of entries), so all of it runs without the key; with the key the
 * entry names are opened too, because a bad name changes connectivity.
 *
 * Checks:
 *   - inode values are well formed (inode-malformed); the root exists
 *     (root-missing: made anew with the key) and is a directory
 *     (root-not-dir stops the run);
 *   - each entry: well formed (dirent-malformed), in an existing
 *     directory (dirent-parent-missing, dirent-parent-not-dir), naming an
 *     existing inode (dirent-dangling) other than the root
 *     (dirent-names-root), with the inode's type (dirent-type-wrong: set
 *     with the key), and no directory named twice (dir-hardlink); with the
 *     key: its name opens (dirent-seal-bad), is valid: non-empty, at most
 *     255 bytes, no '/' or NUL, not "." or ".." (dirent-name-bad), and is
 *     stored under its name's hash (dirent-hash-wrong: moved). Bad entries
 *     are deleted; the inode they named is then connected below if nothing
 *     else names it;
 *   - orphan marks name existing inodes (orphan-no-inode) and are well
 *     formed (orphan-malformed); extended attributes belong to an inode
 *     (xattr-no-inode) and are well formed (xattr-malformed);
 *   - every inode is reachable from the root or is an orphan with no link
 *     left (inode-disconnected: connected to /lost+found as "#<ino>" with
 *     the key, /lost+found made if needed); no directory loop detached
 *     from the root (dir-loop: one member moved to /lost+found);
 *   - link counts: a directory has 2 + its subdirectories, anything else
 *     the entries naming it, an orphan with no entry 0 (nlink-wrong: set
 *     with the key, as the count is bound into the inode's seal); a linked
 *     inode carries no orphan mark (orphan-stale).
 *
 * Memory: the inode table of pass 1 (64 bytes per inode) and the keys of
 * the entries found bad.
 */
#include "fsck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "fsck_int.h"

#define DIR_TYPE (S_IFDIR >> 12)
#define LNF_NAME "lost+found"

struct p3 {
	uint8_t (*bad)[FSCK_DIRENT_KEY]; /* entries judged bad, in order */
	size_t nbad, capbad;
	uint64_t lnf; /* /lost+found, 0 until known */
	bool lnf_checked;
	bool lnf_unusable;
	bool lnf_new;
};

static bool is_dir(const struct fsck_ino *e)
{
	return e->type == DIR_TYPE && !(e->flags & FSCK_INO_BAD);
}

static int add_bad(struct p3 *p, const uint8_t *k)
{
	if (p->nbad == p->capbad) {
		size_t cap = p->capbad ? 2 * p->capbad : 64;
		void *n = realloc(p->bad, cap * FSCK_DIRENT_KEY);

		if (!n)
			return -ENOMEM;
		p->bad = n;
		p->capbad = cap;
	}
	memcpy(p->bad[p->nbad++], k, FSCK_DIRENT_KEY);
	return 0;
}

static bool is_bad(const struct p3 *p, const uint8_t *k)
{
	for (size_t q = 0; q < p->nbad; q++)
		if (!memcmp(p->bad[q], k, FSCK_DIRENT_KEY))
			return true;
	return false;
}

static int txn_delete(struct fsck *f, enum store_cf cf, const uint8_t *k,
		      size_t klen)
{
	struct journal_txn *t = fsck_txn(f);

	if (!t)
		return 0;
	journal_txn_delete(t, cf, k, klen);
	return fsck_txn_added(f, 1);
}

/* Re-seal inode ino with another link count. 0, or -EUCLEAN if it cannot. */
static int inode_set_nlink(struct fsck *f, uint64_t ino, uint32_t nlink,
			   bool dry)
{
	uint8_t key[8], *val = NULL, *plain = NULL, *out = NULL;
	struct journal_txn *t;
	size_t vlen, plen, olen;
	int ret;

	put_be64(key, ino);
	ret = store_get(f->st, STORE_CF_INODE, key, 8, (void **)&val, &vlen);
	if (ret)
		return ret == -ENOENT ? -EUCLEAN : ret;
	ret = -ENOMEM;
	plain = malloc(vlen);
	out = malloc(vlen);
	if (!plain || !out)
		goto out;
	ret = fsck_inode_open(f, ino, val, vlen, plain, &plen);
	if (ret == -EUCLEAN) {
		/* Was the clear count altered? The seal knows the right one. */
		memcpy(out, val, vlen);
		put_be32(out + 4, nlink);
		ret = fsck_inode_open(f, ino, out, vlen, plain, &plen);
	}
	if (ret || dry)
		goto out;
	fsck_inode_seal(f, ino, val[1], nlink, plain, plen, out, &olen);
	t = fsck_txn(f);
	if (!t)
		goto out;
	journal_txn_put(t, STORE_CF_INODE, key, 8, out, olen);
	ret = fsck_txn_added(f, 1);
out:
	free(val);
	free(plain);
	free(out);
	return ret;
}

/* A new directory inode (root or lost+found) in the transaction. */
static int make_dir(struct fsck *f, uint64_t ino, uint32_t mode, uint32_t nlink)
{
	uint8_t plain[FSCK_INODE_PLAIN], key[8];
	uint8_t val[FSCK_INODE_CLEAR + FSCK_INODE_PLAIN + KEY_SEAL_OVERHEAD];
	struct journal_txn *t = fsck_txn(f);
	size_t vlen;

	if (!t)
		return -EROFS;
	fsck_inode_plain(plain, S_IFDIR | mode, 0, f->mounts + 1, 0);
	fsck_inode_seal(f, ino, DIR_TYPE, nlink, plain, sizeof(plain), val,
			&vlen);
	put_be64(key, ino);
	journal_txn_put(t, STORE_CF_INODE, key, 8, val, vlen);
	return fsck_txn_added(f, 1);
}

/* ---- inodes and the root ---- */

static int check_inodes(struct fsck *f)
{
	struct fsck_ino *root;
	int ret;

	for (size_t q = 0; q < f->inodes.n; q++) {
		struct fsck_ino *e = &f->inodes.tab[q];
		struct fsck_pctx pc = {.ino = e->ino,
				       .str = "length, version or type"};

		e->links = e->subdirs = 0;
		e->flags &= ~(uint16_t)(FSCK_INO_REACHED | FSCK_INO_CUT |
					FSCK_INO_VISITING);
		if (e->flags & FSCK_INO_BAD)
			fsck_problem(f, PR_3_INODE_BAD, &pc);
	}
	root = fsck_ino_find(&f->inodes, FS_ROOT_INO);
	if (!root) {
		struct fsck_pctx pc = {.ino = FS_ROOT_INO, .journaled = true};

		if (!fsck_problem(f, PR_3_ROOT_MISSING, &pc))
			return 0;
		ret = make_dir(f, FS_ROOT_INO, 0755, 2);
		if (ret)
			return ret == -EROFS ? 0 : ret;
		ret = fsck_ino_add(&f->inodes, FS_ROOT_INO, DIR_TYPE, 2,
				   FSCK_INO_NEW);
		if (ret)
			return ret;
		f->stats.inodes++;
		f->stats.dirs++;
		return 0;
	}
	if (!is_dir(root)) {
		struct fsck_pctx pc = {.ino = FS_ROOT_INO};

		fsck_problem(f, PR_3_ROOT_NOT_DIR, &pc);
	}
	return 0;
}

/* ---- entries ---- */

static bool name_valid(const char *name, size_t n, const char **why)
{
	if (n == 0)
		*why = "empty";
	else if (n > FS_NAME_MAX)
		*why = "longer than 255 bytes";
	else if (memchr(name, '\0', n))
		*why = "contains a NUL byte";
	else if (memchr(name, '/', n))
		*why = "contains '/'";
	else if ((n == 1 && name[0] == '.') ||
		 (n == 2 && name[0] == '.' && name[1] == '.'))
		*why = "'.' or '..'";
	else
		return true;
	return false;
}

/* Judge the entry; true when it is to be dropped. */
static int judge_dirent(struct fsck *f, struct p3 *p, const uint8_t *k,
			const uint8_t *v, size_t vlen, bool *drop)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_DIRENT),
			       .key = k,
			       .klen = FSCK_DIRENT_KEY,
			       .journaled = true};
	uint64_t parent = get_be64(k), child;
	struct fsck_ino *pe, *ce;
	char name[FS_NAME_MAX + 2];
	const char *why;
	size_t n;
	enum fsck_problem_id id;

	*drop = true;
	pc.ino = parent;
	if (vlen < FSCK_DIRENT_CLEAR + KEY_SEAL_OVERHEAD + 1 || v[0] != 1) {
		pc.str = vlen < FSCK_DIRENT_CLEAR ? "too short" : "bad version";
		id = PR_3_DIRENT_BAD;
		goto bad;
	}
	child = get_be64(v + 4);
	pe = fsck_ino_find(&f->inodes, parent);
	if (!pe) {
		id = PR_3_DIRENT_NO_PARENT;
		goto bad;
	}
	if (!is_dir(pe)) {
		id = PR_3_DIRENT_PARENT_NOT_DIR;
		goto bad;
	}
	if (fsck_keyed(f)) {
		if (fsck_dirent_open(f, k, v, vlen, name, &n)) {
			id = PR_3_DIRENT_SEAL;
			goto bad;
		}
		if (!name_valid(name, n, &why)) {
			pc.str = why;
			id = PR_3_DIRENT_NAME;
			goto bad;
		}
	}
	if (child == FS_ROOT_INO) {
		id = PR_3_DIRENT_ROOT;
		goto bad;
	}
	ce = fsck_ino_find(&f->inodes, child);
	if (!ce) {
		pc.n1 = child;
		id = PR_3_DIRENT_DANGLING;
		for (size_t q = 0; q < f->nlost_inos; q++)
			if (f->lost_inos[q] == child)
				pc.nofix = "the file's extents remain: check "
					   "with the key to rebuild it";
		goto bad;
	}
	if (is_dir(ce) && ce->links) {
		pc.n1 = child;
		id = PR_3_DIR_HARDLINK;
		goto bad;
	}
	*drop = false;
	return 0;
bad:
	if (f->state_left && id != PR_3_DIRENT_SEAL && id != PR_3_DIRENT_NAME &&
	    !pc.nofix)
		pc.nofix = FSCK_NOFIX_STATE;
	if (fsck_problem(f, id, &pc)) {
		int ret = txn_delete(f, STORE_CF_DIRENT, k, FSCK_DIRENT_KEY);

		if (ret)
			return ret;
	}
	return add_bad(p, k);
}

/* With the key: is the entry under its name's hash? Move it if not. */
static int check_hash(struct fsck *f, const uint8_t *k, const uint8_t *v,
		      size_t vlen, uint8_t *newkey, bool *moved)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_DIRENT),
			       .key = k,
			       .klen = FSCK_DIRENT_KEY,
			       .journaled = true};
	uint8_t val[FSCK_DIRENT_CLEAR + FS_NAME_MAX + KEY_SEAL_OVERHEAD];
	uint64_t parent = get_be64(k);
	char name[FS_NAME_MAX + 2];
	struct journal_txn *t;
	size_t n, nvlen, elen;
	int ret;

	*moved = false;
	if (fsck_dirent_open(f, k, v, vlen, name, &n))
		return 0;
	put_be64(newkey, parent);
	key_name_hash(f->k, parent, name, n, newkey + 8);
	if (!memcmp(newkey, k, FSCK_DIRENT_KEY))
		return 0;
	pc.ino = parent;
	ret = store_get_buf(f->st, STORE_CF_DIRENT, newkey, FSCK_DIRENT_KEY,
			    NULL, 0, &elen);
	if (ret == 0 || ret == -ENOSPC)
		pc.nofix = "another entry holds that hash";
	if (!fsck_problem(f, PR_3_DIRENT_HASH, &pc))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	fsck_dirent_seal(f, parent, name, n, get_be64(v + 4), v[1], newkey, val,
			 &nvlen);
	journal_txn_delete(t, STORE_CF_DIRENT, k, FSCK_DIRENT_KEY);
	journal_txn_put(t, STORE_CF_DIRENT, newkey, FSCK_DIRENT_KEY, val,
			nvlen);
	*moved = true;
	return fsck_txn_added(f, 2);
}

static int dirent_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct p3 *p = arg;
	uint8_t newkey[FSCK_DIRENT_KEY];
	const uint8_t *key = k;
	struct fsck_ino *pe, *ce;
	bool drop, moved = false;
	int ret;

	if (klen != FSCK_DIRENT_KEY)
		return 0;
	f->stats.dirents++;
	ret = judge_dirent(f, p, k, v, vlen, &drop);
	if (ret || drop)
		return ret;
	if (fsck_keyed(f)) {
		ret = check_hash(f, k, v, vlen, newkey, &moved);
		if (ret)
			return ret;
		if (moved)
			key = newkey;
	}
	pe = fsck_ino_find(&f->inodes, get_be64(k));
	ce = fsck_ino_find(&f->inodes, get_be64(v + 4));
	if (!(ce->flags & FSCK_INO_BAD) && v[1] != ce->type) {
		struct fsck_pctx pc = {.ino = ce->ino,
				       .n1 = v[1],
				       .n2 = ce->type,
				       .journaled = true};
		uint8_t val[FSCK_DIRENT_CLEAR + FS_NAME_MAX + 1 +
			    KEY_SEAL_OVERHEAD];
		size_t olen = 0;

		if (fsck_keyed(f) && !moved &&
		    fsck_dirent_retype(f, k, v, vlen, ce->type, val, &olen))
			pc.nofix = "the entry fails authentication";
		if (moved)
			pc.nofix = "moved in this run; run again";
		if (fsck_problem(f, PR_3_DIRENT_TYPE, &pc)) {
			struct journal_txn *t = fsck_txn(f);

			if (t) {
				journal_txn_put(t, STORE_CF_DIRENT, k, klen,
						val, olen);
				ret = fsck_txn_added(f, 1);
				if (ret)
					return ret;
			}
		}
	}
	if (is_dir(ce) || ce->links == 0) {
		ce->parent = pe->ino;
		memcpy(ce->hash, key + 8, KEY_NAME_HASH_BYTES);
	}
	if (ce->links < UINT32_MAX)
		ce->links++;
	if (is_dir(ce))
		pe->subdirs++;
	return 0;
}

static int orphan_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_ORPHAN),
			       .key = k,
			       .klen = klen,
			       .journaled = true};
	uint8_t tag[KEY_MAC_BYTES];

	(void)arg;
	(void)v;
	if (klen != 8)
		return 0;
	f->stats.orphans++;
	pc.ino = get_be64(k);
	if (!fsck_ino_find(&f->inodes, pc.ino)) {
		if (fsck_problem(f, PR_3_ORPHAN_NO_INODE, &pc))
			return txn_delete(f, STORE_CF_ORPHAN, k, klen);
		return 0;
	}
	if (vlen != FSCK_ORPHAN_VAL) {
		pc.n1 = vlen;
		if (fsck_problem(f, PR_3_ORPHAN_BAD, &pc)) {
			struct journal_txn *t = fsck_txn(f);

			if (!t)
				return 0;
			fsck_mac(f, "orphan", k, klen, "", 0, tag);
			journal_txn_put(t, STORE_CF_ORPHAN, k, klen, tag,
					sizeof(tag));
			return fsck_txn_added(f, 1);
		}
	}
	return 0;
}

static int xattr_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_XATTR),
			       .key = k,
			       .klen = klen,
			       .journaled = true};

	(void)arg;
	if (klen != FSCK_XATTR_KEY)
		return 0;
	f->stats.xattrs++;
	pc.ino = get_be64(k);
	if (!fsck_ino_find(&f->inodes, pc.ino)) {
		if (f->state_left)
			pc.nofix = FSCK_NOFIX_STATE;
		if (fsck_problem(f, PR_3_XATTR_NO_INODE, &pc))
			return txn_delete(f, STORE_CF_XATTR, k, klen);
		return 0;
	}
	if (vlen < 1 + KEY_SEAL_OVERHEAD + 1 || v[0] != 1) {
		if (fsck_problem(f, PR_3_XATTR_BAD, &pc))
			return txn_delete(f, STORE_CF_XATTR, k, klen);
	}
	return 0;
}

/* ---- connectivity ---- */

/* /lost+found: find it, or make it (with fix). 0 when unusable. */
static uint64_t lost_found(struct fsck *f, struct p3 *p, bool make)
{
	uint8_t key[FSCK_DIRENT_KEY],
	    val[FSCK_DIRENT_CLEAR + FS_NAME_MAX + KEY_SEAL_OVERHEAD];
	struct fsck_ino *root, *e;
	struct journal_txn *t;
	size_t vlen;
	int ret;

	if (p->lnf || p->lnf_unusable || !f->k)
		return p->lnf;
	if (!p->lnf_checked) {
		p->lnf_checked = true;
		put_be64(key, FS_ROOT_INO);
		key_name_hash(f->k, FS_ROOT_INO, LNF_NAME, strlen(LNF_NAME),
			      key + 8);
		ret = store_get_buf(f->st, STORE_CF_DIRENT, key, sizeof(key),
				    val, sizeof(val), &vlen);
		if (ret == 0 && vlen >= FSCK_DIRENT_CLEAR && !is_bad(p, key)) {
			e = fsck_ino_find(&f->inodes, get_be64(val + 4));
			if (e && is_dir(e)) {
				p->lnf = e->ino;
				return p->lnf;
			}
			fsck_problem(f, PR_3_LNF_NOT_DIR,
				     &(struct fsck_pctx){.ino = FS_ROOT_INO});
			p->lnf_unusable = true;
			return 0;
		}
	}
	root = fsck_ino_find(&f->inodes, FS_ROOT_INO);
	if (!make || !root || !is_dir(root))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	p->lnf = f->max_ino + 1;
	f->max_ino = p->lnf;
	fsck_dirent_seal(f, FS_ROOT_INO, LNF_NAME, strlen(LNF_NAME), p->lnf,
			 DIR_TYPE, key, val, &vlen);
	journal_txn_put(t, STORE_CF_DIRENT, key, sizeof(key), val, vlen);
	if (fsck_txn_added(f, 1))
		return 0;
	if (fsck_ino_add(&f->inodes, p->lnf, DIR_TYPE, 2, FSCK_INO_NEW))
		return 0;
	e = fsck_ino_find(&f->inodes, p->lnf);
	e->links = 1;
	e->parent = FS_ROOT_INO;
	memcpy(e->hash, key + 8, KEY_NAME_HASH_BYTES);
	root = fsck_ino_find(&f->inodes, FS_ROOT_INO);
	/* The root gains a subdirectory: its count follows, if it was right. */
	if (root->nlink == 2 + root->subdirs &&
	    inode_set_nlink(f, FS_ROOT_INO, root->nlink + 1, false) == 0)
		root->nlink++;
	root->subdirs++;
	p->lnf_new = true;
	f->stats.inodes++;
	f->stats.dirs++;
	fsck_problem(f, PR_3_LNF_CREATED, &(struct fsck_pctx){.ino = p->lnf});
	return p->lnf;
}

/* Link e into /lost+found as "#ino" (the fix is decided by the caller). */
static int connect(struct fsck *f, struct p3 *p, struct fsck_ino *e)
{
	uint8_t key[FSCK_DIRENT_KEY],
	    val[FSCK_DIRENT_CLEAR + 32 + KEY_SEAL_OVERHEAD];
	struct journal_txn *t;
	struct fsck_ino *lnf;
	char name[32];
	uint64_t ino = e->ino;
	size_t vlen;
	int n;

	if (!lost_found(f, p, true))
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	n = snprintf(name, sizeof(name), "#%" PRIu64, ino);
	fsck_dirent_seal(f, p->lnf, name, (size_t)n, ino, e->type, key, val,
			 &vlen);
	journal_txn_put(t, STORE_CF_DIRENT, key, sizeof(key), val, vlen);
	/* The table may have grown: find both again. */
	e = fsck_ino_find(&f->inodes, ino);
	lnf = fsck_ino_find(&f->inodes, p->lnf);
	e->links++;
	e->parent = p->lnf;
	memcpy(e->hash, key + 8, KEY_NAME_HASH_BYTES);
	if (is_dir(e))
		lnf->subdirs++;
	if (e->flags & FSCK_INO_ORPHAN) {
		uint8_t okey[8];

		put_be64(okey, ino);
		journal_txn_delete(t, STORE_CF_ORPHAN, okey, 8);
		e->flags &= ~(uint16_t)FSCK_INO_ORPHAN;
	}
	return fsck_txn_added(f, 2);
}

static bool disconnect_ok(const struct fsck_ino *e)
{
	/* Unlinked while open: deleted at the next mount, as it should be. */
	return (e->flags & FSCK_INO_ORPHAN) && e->nlink == 0 && e->links == 0;
}

/* Decide reachability of every directory by its parent chain. */
static void reach_dirs(struct fsck *f)
{
	for (size_t q = 0; q < f->inodes.n; q++)
		f->inodes.tab[q].flags &=
		    ~(uint16_t)(FSCK_INO_REACHED | FSCK_INO_VISITING |
				FSCK_INO_CUT);
	for (size_t q = 0; q < f->inodes.n; q++) {
		struct fsck_ino *e = &f->inodes.tab[q], *cur = e, *next;
		uint16_t verdict;

		if (!is_dir(e) ||
		    (e->flags & (FSCK_INO_REACHED | FSCK_INO_CUT)))
			continue;
		if (e->flags & FSCK_INO_LEFT) {
			e->flags |= FSCK_INO_CUT;
			continue;
		}
		for (;;) {
			if (cur->ino == FS_ROOT_INO) {
				verdict = FSCK_INO_REACHED;
				break;
			}
			cur->flags |= FSCK_INO_VISITING;
			next = cur->parent
				   ? fsck_ino_find(&f->inodes, cur->parent)
				   : NULL;
			if (!next ||
			    (next->flags & (FSCK_INO_VISITING | FSCK_INO_CUT |
					    FSCK_INO_LEFT))) {
				verdict = FSCK_INO_CUT;
				break;
			}
			if (next->flags & FSCK_INO_REACHED) {
				verdict = FSCK_INO_REACHED;
				break;
			}
			cur = next;
		}
		/* Stamp the chain walked. */
		for (cur = e; cur && (cur->flags & FSCK_INO_VISITING);
		     cur = cur->parent ? fsck_ino_find(&f->inodes, cur->parent)
				       : NULL) {
			cur->flags &= ~(uint16_t)FSCK_INO_VISITING;
			cur->flags |= verdict;
		}
		if (e->ino == FS_ROOT_INO)
			e->flags |= FSCK_INO_REACHED;
	}
}

static int check_connectivity(struct fsck *f, struct p3 *p)
{
	int ret;

	/* Tops: directories no entry names, others with no entry at all. */
	for (size_t q = 0; q < f->inodes.n && !fsck_stopped(f); q++) {
		struct fsck_ino *e = &f->inodes.tab[q];
		struct fsck_pctx pc = {.ino = e->ino, .journaled = true};
		uint64_t ino = e->ino;

		if (ino == FS_ROOT_INO || (e->flags & FSCK_INO_BAD) ||
		    ino == p->lnf)
			continue;
		if (e->links != 0)
			continue;
		if (disconnect_ok(e))
			continue;
		if (p->lnf_unusable)
			pc.nofix = "/lost+found is not a directory";
		if (fsck_problem(f, PR_3_DISCONNECTED, &pc)) {
			ret = connect(f, p, e);
			if (ret)
				return ret;
			e = fsck_ino_find(&f->inodes, ino);
		}
		if (!e->links)
			e->flags |= FSCK_INO_LEFT; /* left as is */
	}
	/* What is still cut off is in a loop of directories. */
	reach_dirs(f);
	for (size_t q = 0; q < f->inodes.n && !fsck_stopped(f); q++) {
		struct fsck_ino *e = &f->inodes.tab[q];
		struct fsck_pctx pc = {.ino = e->ino, .journaled = true};
		uint64_t parent;
		uint8_t key[FSCK_DIRENT_KEY];

		if (!is_dir(e) || !(e->flags & FSCK_INO_CUT) || !e->links ||
		    (e->flags & FSCK_INO_LEFT))
			continue;
		if (p->lnf_unusable)
			pc.nofix = "/lost+found is not a directory";
		if (fsck_problem(f, PR_3_DIR_LOOP, &pc)) {
			struct journal_txn *t = fsck_txn(f);
			struct fsck_ino *old;

			if (!t)
				continue;
			parent = e->parent;
			put_be64(key, parent);
			memcpy(key + 8, e->hash, KEY_NAME_HASH_BYTES);
			journal_txn_delete(t, STORE_CF_DIRENT, key,
					   sizeof(key));
			old = fsck_ino_find(&f->inodes, parent);
			if (old && old->subdirs)
				old->subdirs--;
			e->links = 0;
			e->parent = 0;
			ret = connect(f, p, e);
			if (ret)
				return ret;
			reach_dirs(f);
		} else {
			/* Report each loop once: its members are left. */
			for (struct fsck_ino *c = e;
			     c && !(c->flags & FSCK_INO_LEFT);
			     c = fsck_ino_find(&f->inodes, c->parent))
				c->flags |= FSCK_INO_LEFT;
		}
	}
	return 0;
}

/* ---- link counts ---- */

static int check_nlinks(struct fsck *f, struct p3 *p)
{
	int ret;

	for (size_t q = 0; q < f->inodes.n && !fsck_stopped(f); q++) {
		struct fsck_ino *e = &f->inodes.tab[q];
		struct fsck_pctx pc = {.ino = e->ino, .journaled = true};
		uint32_t want;

		if (e->flags & FSCK_INO_BAD)
			continue;
		if (is_dir(e))
			want = 2 + e->subdirs;
		else
			want = e->links;
		if (disconnect_ok(e) || (e->flags & FSCK_INO_LEFT))
			want = e->nlink; /* left disconnected */
		if ((e->flags & FSCK_INO_ORPHAN) && want > 0 && e->links > 0) {
			struct fsck_pctx po = {.ino = e->ino,
					       .journaled = true};
			uint8_t key[8];

			if (fsck_problem(f, PR_3_ORPHAN_STALE, &po)) {
				put_be64(key, e->ino);
				ret = txn_delete(f, STORE_CF_ORPHAN, key, 8);
				if (ret)
					return ret;
			}
		}
		if (e->flags & FSCK_INO_NEW) {
			/* Made by this run: written once, with its final count.
			 */
			if (e->ino == p->lnf && p->lnf_new) {
				ret = make_dir(f, e->ino, 0700, want);
				if (ret && ret != -EROFS)
					return ret;
				e->nlink = want;
				continue;
			}
			/* Made by pass 2 for lost extents: no problem of its
			 * own. */
			if (e->nlink != want &&
			    inode_set_nlink(f, e->ino, want, !f->rw) == 0 &&
			    f->rw)
				e->nlink = want;
			continue;
		}
		if (e->nlink == want)
			continue;
		pc.n1 = e->nlink;
		pc.n2 = want;
		if (f->k && inode_set_nlink(f, e->ino, want, true))
			pc.nofix = "the inode fails authentication";
		if (!fsck_problem(f, PR_3_NLINK, &pc))
			continue;
		ret = inode_set_nlink(f, e->ino, want, false);
		if (ret && ret != -EUCLEAN)
			return ret;
		e->nlink = want;
	}
	return 0;
}

int fsck_pass3(struct fsck *f)
{
	struct p3 p = {0};
	int ret;

	fsck_progress(f, "checking inodes", 0, 0);
	ret = check_inodes(f);
	if (ret || fsck_stopped(f))
		goto out;
	fsck_progress(f, "checking directory entries", 0, 0);
	f->stats.dirents = f->stats.orphans = f->stats.xattrs = 0;
	ret = fsck_cf_walk(f, STORE_CF_DIRENT, NULL, 0, dirent_fn, &p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_ORPHAN, NULL, 0, orphan_fn, &p);
	if (ret == 0)
		ret = fsck_cf_walk(f, STORE_CF_XATTR, NULL, 0, xattr_fn, &p);
	if (ret || fsck_stopped(f))
		goto out;
	/* Entries fixed above are in the store before names are added. */
	ret = fsck_commit(f);
	if (ret)
		goto out;
	fsck_progress(f, "checking connectivity", 0, 0);
	ret = check_connectivity(f, &p);
	if (ret == 0 && !fsck_stopped(f))
		ret = check_nlinks(f, &p);
out:
	free(p.bad);
	return ret;
}
