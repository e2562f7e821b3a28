/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fs.c - inodes, attributes, xattrs, commit with block references, statfs
 *
 * Value layouts (doc/FORMAT.md has them all):
 *
 * inode   key ino u64 -> u8 version(1) u8 type(mode>>12) u16 0 u32 nlink
 *         || seal(VALUE, ad = "inode" || key || first 8 bytes,
 *                 mode uid gid 0 u32, size rdev generation nextents u64,
 *                 atime mtime ctime btime (u64 s, u32 ns), symlink target)
 * block   key id[32] -> u32 refcount u32 sealed length u64 XXH3(id||sealed)
 *         || MAC("block" || key, those 16 bytes)
 * orphan  key ino u64 -> MAC("orphan" || key, "")
 * xattr   key ino u64 || name hash[16] -> u8 version(1)
 *         || seal(VALUE, ad = "xattr" || key, u8 name len, name, value)
 * super   "mounts" -> u64 count || MAC: the generation of new inodes
 *
 * nlink and type are in the clear so that a keyless fsck can check link
 * counts and directory structure; everything else about an inode is sealed.
 */
#include "fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs_int.h"
#include "log.h"

#define INODE_CLEAR_BYTES 8
#define INODE_PLAIN_BYTES 96
#define XATTR_VERSION 1

/* ---- small helpers ---- */

void fs_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

void fs_mac_value(struct fs *fs, const char *cf, const void *key, size_t klen,
		  const void *val, size_t vlen, uint8_t tag[static KEY_MAC_BYTES])
{
	uint8_t ad[16 + 64];
	size_t n = strlen(cf);

	memcpy(ad, cf, n);
	memcpy(ad + n, key, klen);
	key_mac(fs->k, ad, n + klen, val, vlen, tag);
}

int fs_mac_check(struct fs *fs, const char *cf, const void *key, size_t klen,
		 const void *val, size_t vlen,
		 const uint8_t tag[static KEY_MAC_BYTES])
{
	uint8_t ad[16 + 64];
	size_t n = strlen(cf);

	memcpy(ad, cf, n);
	memcpy(ad + n, key, klen);
	return key_mac_verify(fs->k, ad, n + klen, val, vlen, tag);
}

bool fs_log_ratelimit(struct fs *fs)
{
	int64_t now = (int64_t)time(NULL);
	int64_t last = atomic_load(&fs->full_logged);

	return now - last >= 10 &&
	       atomic_compare_exchange_strong(&fs->full_logged, &last, now);
}

void fs_corrupt(struct fs *fs, uint64_t ino, const char *what)
{
	struct store_batch *b = NULL;
	uint8_t val[16];

	log_err("store '%s' is damaged: %s (ino=%llu); run fsck.embassyfs",
		store_path(fs->st), what, (unsigned long long)ino);
	if (fs->rdonly || store_batch_new(&b))
		return;
	put_be64(val, (uint64_t)time(NULL));
	put_be64(val + 8, ino);
	store_batch_put(b, STORE_CF_SUPER, "error.last", 10, val, sizeof(val));
	if (store_write(fs->st, b, false))
		log_err("cannot record the error in the store");
	store_batch_free(b);
}

/* ---- inode values ---- */

static void ts_put(uint8_t *p, const struct timespec *ts)
{
	put_be64(p, (uint64_t)ts->tv_sec);
	put_be32(p + 8, (uint32_t)ts->tv_nsec);
}

static void ts_get(const uint8_t *p, struct timespec *ts)
{
	ts->tv_sec = (time_t)get_be64(p);
	ts->tv_nsec = get_be32(p + 8);
}

void fs_put_inode(struct fs *fs, struct journal_txn *t, struct fs_inode *i)
{
	size_t tlen = i->symlink ? strlen(i->symlink) : 0;
	size_t plen = INODE_PLAIN_BYTES + tlen;
	uint8_t key[8], ad[5 + 8 + INODE_CLEAR_BYTES];
	uint8_t plain[INODE_PLAIN_BYTES + FS_SYMLINK_MAX];
	uint8_t val[INODE_CLEAR_BYTES + INODE_PLAIN_BYTES + FS_SYMLINK_MAX +
		    KEY_SEAL_OVERHEAD];
	const struct fs_iattr *a = &i->a;

	fs_ino_key(key, i->ino);
	val[0] = 1;
	val[1] = (uint8_t)(a->mode >> 12);
	put_be16(val + 2, 0);
	put_be32(val + 4, a->nlink);
	put_be32(plain, a->mode);
	put_be32(plain + 4, a->uid);
	put_be32(plain + 8, a->gid);
	put_be32(plain + 12, 0);
	put_be64(plain + 16, a->size);
	put_be64(plain + 24, a->rdev);
	put_be64(plain + 32, a->generation);
	put_be64(plain + 40, a->nextents);
	ts_put(plain + 48, &a->atime);
	ts_put(plain + 60, &a->mtime);
	ts_put(plain + 72, &a->ctime);
	ts_put(plain + 84, &a->btime);
	if (tlen)
		memcpy(plain + INODE_PLAIN_BYTES, i->symlink, tlen);
	memcpy(ad, "inode", 5);
	memcpy(ad + 5, key, 8);
	memcpy(ad + 13, val, INODE_CLEAR_BYTES);
	key_seal(fs->k, KEY_SUB_VALUE, ad, sizeof(ad), plain, plen,
		 val + INODE_CLEAR_BYTES);
	journal_txn_put(t, STORE_CF_INODE, key, sizeof(key), val,
			INODE_CLEAR_BYTES + plen + KEY_SEAL_OVERHEAD);
	i->attr_dirty = false;
}

static int inode_load(struct fs *fs, struct fs_inode *i)
{
	uint8_t key[8], ad[5 + 8 + INODE_CLEAR_BYTES];
	uint8_t val[INODE_CLEAR_BYTES + INODE_PLAIN_BYTES + FS_SYMLINK_MAX +
		    KEY_SEAL_OVERHEAD];
	uint8_t plain[INODE_PLAIN_BYTES + FS_SYMLINK_MAX];
	struct fs_iattr *a = &i->a;
	size_t vlen, plen;
	int ret;

	fs_ino_key(key, i->ino);
	ret = store_get_buf(fs->st, STORE_CF_INODE, key, sizeof(key), val,
			    sizeof(val), &vlen);
	if (ret == -ENOSPC)
		ret = -EUCLEAN;
	if (ret)
		return ret;
	if (vlen < INODE_CLEAR_BYTES + INODE_PLAIN_BYTES + KEY_SEAL_OVERHEAD ||
	    val[0] != 1) {
		fs_corrupt(fs, i->ino, "malformed inode value");
		return -EUCLEAN;
	}
	memcpy(ad, "inode", 5);
	memcpy(ad + 5, key, 8);
	memcpy(ad + 13, val, INODE_CLEAR_BYTES);
	plen = vlen - INODE_CLEAR_BYTES - KEY_SEAL_OVERHEAD;
	ret = key_open(fs->k, KEY_SUB_VALUE, ad, sizeof(ad),
		       val + INODE_CLEAR_BYTES, vlen - INODE_CLEAR_BYTES, plain);
	if (ret) {
		fs_corrupt(fs, i->ino, "inode fails authentication");
		return -EUCLEAN;
	}
	a->nlink = get_be32(val + 4);
	a->mode = get_be32(plain);
	a->uid = get_be32(plain + 4);
	a->gid = get_be32(plain + 8);
	a->size = get_be64(plain + 16);
	a->rdev = get_be64(plain + 24);
	a->generation = get_be64(plain + 32);
	a->nextents = get_be64(plain + 40);
	ts_get(plain + 48, &a->atime);
	ts_get(plain + 60, &a->mtime);
	ts_get(plain + 72, &a->ctime);
	ts_get(plain + 84, &a->btime);
	if ((a->mode >> 12) != val[1]) {
		fs_corrupt(fs, i->ino, "inode type disagrees with its mode");
		return -EUCLEAN;
	}
	free(i->symlink);
	i->symlink = NULL;
	if (S_ISLNK(a->mode)) {
		size_t tlen = plen - INODE_PLAIN_BYTES;

		i->symlink = malloc(tlen + 1);
		if (!i->symlink)
			return -ENOMEM;
		memcpy(i->symlink, plain + INODE_PLAIN_BYTES, tlen);
		i->symlink[tlen] = '\0';
	}
	atomic_store(&i->xattrs, FS_XATTRS_UNKNOWN);
	i->loaded = true;
	return 0;
}

void fs_attr_fill(struct fs *fs, const struct fs_inode *i, struct fs_attr *out)
{
	const struct fs_iattr *a = &i->a;

	memset(out, 0, sizeof(*out));
	out->ino = i->ino;
	out->generation = a->generation;
	out->size = a->size;
	out->blocks = a->nextents * (fs->bs / 512);
	out->mode = a->mode;
	out->nlink = a->nlink;
	out->uid = a->uid;
	out->gid = a->gid;
	out->rdev = a->rdev;
	out->atime = a->atime;
	out->mtime = a->mtime;
	out->ctime = a->ctime;
	out->blksize = fs->bs;
}

/* ---- inode table ---- */

static struct fs_bucket *bucket_of(struct fs *fs, uint64_t ino)
{
	return &fs->buckets[(ino * 0x9e3779b97f4a7c15ull) >>
			    (64 - FS_INODE_BUCKETS_SHIFT)];
}

static struct fs_inode *inode_alloc(struct fs *fs, uint64_t ino)
{
	struct fs_inode *i = calloc(1, sizeof(*i));

	if (!i)
		return NULL;
	i->ino = ino;
	pthread_rwlock_init(&i->lock, NULL);
	atomic_fetch_add(&fs->ninodes, 1);
	return i;
}

static void inode_free(struct fs *fs, struct fs_inode *i)
{
	pthread_rwlock_destroy(&i->lock);
	fs_dirty_free(fs, i);
	free(i->symlink);
	free(i);
	atomic_fetch_sub(&fs->ninodes, 1);
}

/* Under the bucket lock: take the ghost of ino out; its lookups, or 0. */
static uint64_t ghost_take(struct fs_bucket *b, uint64_t ino)
{
	for (struct fs_ghost **pp = &b->ghosts; *pp; pp = &(*pp)->next)
		if ((*pp)->ino == ino) {
			struct fs_ghost *g = *pp;
			uint64_t n = g->nlookup;

			*pp = g->next;
			free(g);
			return n;
		}
	return 0;
}

void fs_set_inode_cache(struct fs *fs, size_t n)
{
	fs->inode_cache = n ? n : 1;
}

int fs_inode_get(struct fs *fs, uint64_t ino, struct fs_inode **out)
{
	struct fs_bucket *b = bucket_of(fs, ino);
	struct fs_inode *i;

	pthread_mutex_lock(&b->lock);
	for (i = b->head; i; i = i->next)
		if (i->ino == ino)
			break;
	if (!i) {
		i = inode_alloc(fs, ino);
		if (!i) {
			pthread_mutex_unlock(&b->lock);
			return -ENOMEM;
		}
		i->nlookup = ghost_take(b, ino);
		i->next = b->head;
		b->head = i;
	}
	i->pins++;
	pthread_mutex_unlock(&b->lock);
	*out = i;
	return 0;
}

/*
 * Drop a pin. The last reference to an inode with no links left deletes it
 * from the store (it was an orphan kept alive by an open or a lookup).
 */
/*
 * The kernel keeps lookups on every inode it has cached, and forgets them
 * only under memory pressure: a daemon that kept each one loaded grew with
 * the number of files a `find` had walked. Past the cache size, an idle
 * inode (its last pin going, no open file, nothing to write back) with
 * links is let go and only its lookup count kept (struct fs_ghost);
 * unlinked ones stay loaded so that their last forget still deletes them.
 * Under the bucket lock, with the caller's pin the only one: no other
 * thread holds the inode's lock or can take it meanwhile.
 */
static bool ghost_locked(struct fs_bucket *b, struct fs_inode *i,
			 struct fs_ghost **g)
{
	struct fs_inode **pp;

	if (!*g || i->pins != 1 || !i->nlookup || i->nopen || i->ndirty ||
	    i->attr_dirty || !i->loaded || i->gone || i->a.nlink == 0)
		return false;
	for (pp = &b->head; *pp; pp = &(*pp)->next)
		if (*pp == i) {
			*pp = i->next;
			break;
		}
	(*g)->ino = i->ino;
	(*g)->nlookup = i->nlookup;
	(*g)->next = b->ghosts;
	b->ghosts = *g;
	*g = NULL;
	return true;
}

void fs_inode_put(struct fs *fs, struct fs_inode *i)
{
	struct fs_bucket *b = bucket_of(fs, i->ino);
	struct fs_ghost *g = NULL;
	struct fs_inode **pp;
	bool last, destroy;

	if (atomic_load(&fs->ninodes) > fs->inode_cache)
		g = malloc(sizeof(*g));
	pthread_mutex_lock(&b->lock);
	last = i->pins == 1 && i->nlookup == 0 && i->nopen == 0;
	if (!last) {
		if (ghost_locked(b, i, &g)) {
			pthread_mutex_unlock(&b->lock);
			inode_free(fs, i);
			return;
		}
		i->pins--;
		pthread_mutex_unlock(&b->lock);
		free(g);
		return;
	}
	pthread_mutex_unlock(&b->lock);
	free(g);

	pthread_rwlock_wrlock(&i->lock);
	destroy = i->loaded && !i->gone && i->a.nlink == 0 && !fs->rdonly;
	if (destroy && fs_inode_destroy(fs, i))
		log_err("cannot delete unlinked inode ino=%llu; it stays on the orphan list",
			(unsigned long long)i->ino);
	if (!destroy && (i->ndirty || i->attr_dirty) && !fs->rdonly &&
	    fs_data_flush(fs, i, false))
		log_err("cannot write back ino=%llu", (unsigned long long)i->ino);
	pthread_rwlock_unlock(&i->lock);

	pthread_mutex_lock(&b->lock);
	if (--i->pins || i->nlookup || i->nopen || i->ndirty ||
	    (i->attr_dirty && !i->gone && !fs->rdonly)) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	for (pp = &b->head; *pp; pp = &(*pp)->next)
		if (*pp == i) {
			*pp = i->next;
			break;
		}
	pthread_mutex_unlock(&b->lock);
	inode_free(fs, i);
}

void fs_inode_ref(struct fs *fs, struct fs_inode *i, uint64_t nlookup,
		  int nopen)
{
	struct fs_bucket *b = bucket_of(fs, i->ino);

	pthread_mutex_lock(&b->lock);
	i->nlookup += nlookup;
	if (nopen < 0 && i->nopen < (uint32_t)-nopen)
		i->nopen = 0;
	else
		i->nopen += (uint32_t)nopen;
	pthread_mutex_unlock(&b->lock);
}

bool fs_inode_held(struct fs *fs, struct fs_inode *i)
{
	struct fs_bucket *b = bucket_of(fs, i->ino);
	bool held;

	pthread_mutex_lock(&b->lock);
	held = i->nlookup || i->nopen;
	pthread_mutex_unlock(&b->lock);
	return held;
}

void fs_forget(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct fs_bucket *b = bucket_of(fs, ino);
	struct fs_inode *i;

	pthread_mutex_lock(&b->lock);
	for (i = b->head; i; i = i->next)
		if (i->ino == ino)
			break;
	if (!i) {
		/* A ghost: its count goes down, and it goes at zero. */
		for (struct fs_ghost **pp = &b->ghosts; *pp;
		     pp = &(*pp)->next) {
			struct fs_ghost *g = *pp;

			if (g->ino != ino)
				continue;
			g->nlookup = g->nlookup > nlookup ? g->nlookup - nlookup
							  : 0;
			if (!g->nlookup) {
				*pp = g->next;
				free(g);
			}
			break;
		}
		pthread_mutex_unlock(&b->lock);
		return;
	}
	i->nlookup = i->nlookup > nlookup ? i->nlookup - nlookup : 0;
	i->pins++;
	pthread_mutex_unlock(&b->lock);
	fs_inode_put(fs, i);
}

int fs_inode_lock(struct fs *fs, uint64_t ino, bool excl, struct fs_inode **out)
{
	struct fs_inode *i;
	int ret;

	*out = NULL;
	ret = fs_inode_get(fs, ino, &i);
	if (ret)
		return ret;
	/* Load under the exclusive lock, then downgrade if shared was asked. */
	if (!excl) {
		pthread_rwlock_rdlock(&i->lock);
		if (i->loaded && !i->gone) {
			*out = i;
			return 0;
		}
		pthread_rwlock_unlock(&i->lock);
	}
	pthread_rwlock_wrlock(&i->lock);
	if (i->gone) {
		ret = -ENOENT;
	} else if (!i->loaded) {
		ret = inode_load(fs, i);
	}
	if (!ret && !excl) {
		pthread_rwlock_unlock(&i->lock);
		pthread_rwlock_rdlock(&i->lock);
		if (i->gone || !i->loaded)
			ret = -ENOENT;
	}
	if (ret) {
		pthread_rwlock_unlock(&i->lock);
		fs_inode_put(fs, i);
		return ret;
	}
	*out = i;
	return 0;
}

void fs_inode_unlock(struct fs *fs, struct fs_inode *i)
{
	if (!i)
		return;
	pthread_rwlock_unlock(&i->lock);
	fs_inode_put(fs, i);
}

int fs_inode_new(struct fs *fs, const struct fs_iattr *a, const char *symlink,
		 struct fs_inode **out)
{
	uint64_t ino = atomic_fetch_add(&fs->next_ino, 1);
	struct fs_inode *i;
	int ret;

	ret = fs_inode_get(fs, ino, &i);
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&i->lock);
	i->a = *a;
	i->a.generation = fs->generation;
	if (symlink) {
		i->symlink = strdup(symlink);
		if (!i->symlink) {
			pthread_rwlock_unlock(&i->lock);
			fs_inode_put(fs, i);
			return -ENOMEM;
		}
	}
	/* A new number: its attributes went with the inode that had it. */
	atomic_store(&i->xattrs, FS_XATTRS_NONE);
	i->loaded = true;
	*out = i;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int fs_lock_set(struct fs *fs, const uint64_t *inos, size_t n,
		struct fs_inode **out)
{
	uint64_t sorted[4];
	size_t m = 0;
	int ret = 0;

	for (size_t k = 0; k < n; k++)
		out[k] = NULL;
	for (size_t k = 0; k < n; k++)
		if (inos[k])
			sorted[m++] = inos[k];
	qsort(sorted, m, sizeof(sorted[0]), cmp_u64);
	for (size_t k = 0; k < m; k++) {
		struct fs_inode *i;

		if (k && sorted[k] == sorted[k - 1])
			continue;
		ret = fs_inode_lock(fs, sorted[k], true, &i);
		if (ret)
			break;
		for (size_t q = 0; q < n; q++)
			if (inos[q] == sorted[k] && !out[q])
				out[q] = i;
	}
	if (ret)
		fs_unlock_set(fs, out, n);
	return ret;
}

void fs_unlock_set(struct fs *fs, struct fs_inode **set, size_t n)
{
	/*
	 * Unlock every inode before dropping any pin: the last pin of an
	 * orphan deletes it under its own write lock, which must not be taken
	 * while a higher inode of the set is still held (ascending order).
	 * Each distinct inode was locked once: unlock and put it once.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (size_t k = 0; k < n; k++) {
			bool seen = false;

			if (!set[k])
				continue;
			for (size_t q = 0; q < k; q++)
				if (set[q] == set[k])
					seen = true;
			if (seen)
				continue;
			if (pass == 0)
				pthread_rwlock_unlock(&set[k]->lock);
			else
				fs_inode_put(fs, set[k]);
		}
	for (size_t k = 0; k < n; k++)
		set[k] = NULL;
}

/* ---- orphans and deletion ---- */

void fs_orphan_add(struct fs *fs, struct journal_txn *t, uint64_t ino)
{
	uint8_t key[8], tag[KEY_MAC_BYTES];

	fs_ino_key(key, ino);
	fs_mac_value(fs, "orphan", key, sizeof(key), "", 0, tag);
	journal_txn_put(t, STORE_CF_ORPHAN, key, sizeof(key), tag, sizeof(tag));
}

void fs_orphan_del(struct fs *fs, struct journal_txn *t, uint64_t ino)
{
	uint8_t key[8];

	(void)fs;
	fs_ino_key(key, ino);
	journal_txn_delete(t, STORE_CF_ORPHAN, key, sizeof(key));
}

/*
 * Point deletes of every key under an inode's prefix. Not DeleteRange:
 * each range tombstone stays in the memtable until compaction and slows
 * every later read; deleting a tree of 20,000 files left 40,000 of them.
 */
static int delete_prefix(struct fs *fs, struct journal_txn *t,
			 enum store_cf cf, uint64_t ino)
{
	struct store_iter *it = NULL;
	uint8_t prefix[8];
	int ret;

	ret = store_iter_new(fs->st, cf, &it);
	if (ret)
		return ret;
	fs_ino_key(prefix, ino);
	for (store_iter_seek(it, prefix, sizeof(prefix)); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);

		if (klen < 8 || memcmp(k, prefix, 8))
			break;
		journal_txn_delete(t, cf, k, klen);
	}
	ret = store_iter_status(it);
	store_iter_free(it);
	return ret;
}

int fs_inode_destroy(struct fs *fs, struct fs_inode *i)
{
	struct journal_txn *t = NULL;
	struct fs_refs refs;
	uint8_t key[8];
	int ret;

	fs_refs_init(&refs);
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_dirty_free(fs, i);
	ret = fs_data_drop_from(fs, i, 0, t, &refs);
	if (ret)
		goto out;
	ret = delete_prefix(fs, t, STORE_CF_XATTR, i->ino);
	if (ret)
		goto out;
	fs_ino_key(key, i->ino);
	journal_txn_delete(t, STORE_CF_INODE, key, 8);
	fs_orphan_del(fs, t, i->ino);
	ret = fs_commit(fs, t, &refs, false);
	if (ret == 0)
		i->gone = true;
out:
	fs_refs_release(&refs);
	journal_txn_free(t);
	return ret;
}

/*
 * Delete the inodes on the orphan list: at mount (left by a crash) and at
 * unmount (kept alive by a lookup or an open until then); nobody can hold
 * them at either moment.
 */
static int fs_orphans_reap(struct fs *fs, bool at_mount)
{
	struct store_iter *it = NULL;
	uint64_t inos[256];
	size_t n = 0;
	int ret;

	ret = store_iter_new(fs->st, STORE_CF_ORPHAN, &it);
	if (ret)
		return ret;
	for (store_iter_seek_first(it); store_iter_valid(it) && n < ARRAY_SIZE(inos);
	     store_iter_next(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);

		if (klen == 8)
			inos[n++] = get_be64(k);
	}
	ret = store_iter_status(it);
	store_iter_free(it);
	for (size_t q = 0; q < n && !ret; q++) {
		struct fs_inode *i;

		ret = fs_inode_lock(fs, inos[q], true, &i);
		if (ret == -ENOENT) {
			ret = 0;
			continue;
		}
		if (ret)
			break;
		if (i->a.nlink == 0)
			ret = fs_inode_destroy(fs, i);
		fs_inode_unlock(fs, i);
		if (at_mount)
			log_info("removed orphan inode ino=%llu left by an unclean stop",
				 (unsigned long long)inos[q]);
	}
	return ret;
}

/* ---- commit with block references ---- */

static int block_val_get(struct fs *fs, const uint8_t id[static KEY_ID_BYTES],
			 uint32_t *rc, uint32_t *slen, uint64_t *csum)
{
	uint8_t val[FS_BLOCK_VAL_BYTES];
	size_t vlen;
	int ret;

	ret = store_get_buf(fs->st, STORE_CF_BLOCK, id, KEY_ID_BYTES, val,
			    sizeof(val), &vlen);
	if (ret == -ENOSPC || (ret == 0 && vlen != sizeof(val)))
		ret = -EUCLEAN;
	if (ret == 0 && fs_mac_check(fs, "block", id, KEY_ID_BYTES, val, 16,
				     val + 16))
		ret = -EUCLEAN;
	if (ret)
		return ret;
	*rc = get_be32(val);
	*slen = get_be32(val + 4);
	*csum = get_be64(val + 8);
	return 0;
}

static void block_val_put(struct fs *fs, struct journal_txn *t,
			  const uint8_t id[static KEY_ID_BYTES], uint32_t rc,
			  uint32_t slen, uint64_t csum)
{
	uint8_t val[FS_BLOCK_VAL_BYTES];

	put_be32(val, rc);
	put_be32(val + 4, slen);
	put_be64(val + 8, csum);
	fs_mac_value(fs, "block", id, KEY_ID_BYTES, val, 16, val + 16);
	journal_txn_put(t, STORE_CF_BLOCK, id, KEY_ID_BYTES, val, sizeof(val));
}

static int block_loc_get(struct fs *fs, const uint8_t id[static KEY_ID_BYTES],
			 struct store_loc *loc)
{
	uint8_t key[1 + KEY_ID_BYTES], val[STORE_LOC_BYTES];
	size_t vlen;
	int ret;

	key[0] = 'L';
	memcpy(key + 1, id, KEY_ID_BYTES);
	ret = store_get_buf(fs->st, STORE_CF_LOCAL, key, sizeof(key), val,
			    sizeof(val), &vlen);
	if (ret == -ENOSPC)
		ret = -EUCLEAN;
	return ret ? ret : store_loc_decode(val, vlen, loc);
}

int fs_block_seal(struct fs *fs, const uint8_t id[static KEY_ID_BYTES],
		  const uint8_t *plain, size_t len, uint8_t **sealed,
		  size_t *slen, uint64_t *csum)
{
	int ret;

	*sealed = malloc(CODEC_SEALED_MAX(len));
	if (!*sealed)
		return -ENOMEM;
	ret = codec_seal(fs->codec, id, plain, len, *sealed, slen);
	if (ret) {
		free(*sealed);
		*sealed = NULL;
		return ret;
	}
	*csum = store_rec_sum(id, *sealed, *slen);
	return 0;
}

int fs_block_append(struct fs *fs, struct fs_ref *r, const uint8_t *plain,
		    size_t len)
{
	uint8_t *sealed;
	uint64_t csum;
	size_t slen;
	int ret;

	ret = fs_block_seal(fs, r->id, plain, len, &sealed, &slen, &csum);
	if (ret)
		return ret;
	ret = store_seg_append_batch(fs->st, 1, (const uint8_t *const[]){r->id},
				     (const void *const[]){sealed},
				     (const size_t[]){slen},
				     (const uint64_t[]){csum}, &r->loc);
	if (ret == 0) {
		r->csum = csum;
		r->appended = true;
		r->redo = NULL;
	}
	free(sealed);
	return ret;
}

/* Has fsck recorded this block's stored copy as damaged ('B' id)? */
static bool block_marked_bad(struct fs *fs, const uint8_t id[static KEY_ID_BYTES])
{
	uint8_t key[1 + KEY_ID_BYTES];
	size_t vlen;

	key[0] = 'B';
	memcpy(key + 1, id, KEY_ID_BYTES);
	return store_get_buf(fs->st, STORE_CF_LOCAL, key, sizeof(key), NULL, 0,
			     &vlen) != -ENOENT;
}

int fs_block_exists(struct fs *fs, const uint8_t id[static KEY_ID_BYTES])
{
	uint32_t rc, slen;
	uint64_t csum;
	int ret;

	ret = block_val_get(fs, id, &rc, &slen, &csum);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	/* A damaged copy is not one to share: store the data afresh. */
	return block_marked_bad(fs, id) ? 0 : 1;
}

int fs_block_prepare(struct fs *fs, struct fs_ref *r, const uint8_t *plain,
		     size_t len)
{
	int ret;

	r->plain = plain;
	r->plainlen = len;
	if (r->appended)
		return 0;
	ret = fs_block_exists(fs, r->id);
	if (ret < 0)
		return ret;
	if (ret == 1)
		return 0;	/* a good copy exists: dedup */
	return fs_block_append(fs, r, plain, len);
}

/* Name r's new copy in t, logging its bytes for redo when the flush asked. */
static void ref_block(struct journal_txn *t, struct fs_ref *r)
{
	if (r->redo)
		journal_txn_block_redo(t, r->id, &r->loc, r->redo);
	else
		journal_txn_block(t, r->id, &r->loc);
}

int fs_commit(struct fs *fs, struct journal_txn *t, struct fs_refs *refs,
	      bool sync)
{
	bool locked = false;
	int ret = 0;

	if (refs && refs->n) {
		pthread_mutex_lock(&fs->block_lock);
		locked = true;
		for (size_t q = 0; q < refs->cap && !ret; q++) {
			struct fs_ref *r = &refs->tab[q];
			uint32_t rc, slen;
			uint64_t csum;
			int64_t n;
			int g;

			if (!r->used || r->delta == 0)
				continue;
			g = block_val_get(fs, r->id, &rc, &slen, &csum);
			if (g == -ENOENT) {
				if (r->delta < 0) {
					fs_corrupt(fs, 0, "reference to a missing block");
					continue;
				}
				if (!r->appended) {
					if (!r->plain) {
						ret = -EUCLEAN;
						break;
					}
					ret = fs_block_append(fs, r, r->plain,
							      r->plainlen);
					if (ret)
						break;
				}
				block_val_put(fs, t, r->id, (uint32_t)r->delta,
					      r->loc.len, r->csum);
				ref_block(t, r);
				r->appended = false;	/* now owned by the store */
				continue;
			}
			if (g) {
				ret = g;
				break;
			}
			n = (int64_t)rc + r->delta;
			if (n > 0 && r->appended && block_marked_bad(fs, r->id)) {
				/*
				 * The stored copy was recorded damaged and we
				 * have a fresh one: it heals every file that
				 * shares the block; the bad copy is released.
				 */
				uint8_t bkey[1 + KEY_ID_BYTES];
				struct store_loc old;

				if (block_loc_get(fs, r->id, &old) == 0)
					journal_txn_release_block(t, r->id, &old);
				block_val_put(fs, t, r->id, (uint32_t)n,
					      r->loc.len, r->csum);
				ref_block(t, r);
				bkey[0] = 'B';
				memcpy(bkey + 1, r->id, KEY_ID_BYTES);
				journal_txn_local_delete(t, bkey, sizeof(bkey));
				r->appended = false;
				log_notice("damaged block %02x%02x%02x%02x stored "
					   "again from new data: its files read "
					   "whole again", r->id[0], r->id[1],
					   r->id[2], r->id[3]);
			} else if (n > 0) {
				block_val_put(fs, t, r->id, (uint32_t)n, slen,
					      csum);
			} else {
				struct store_loc loc;

				if (n < 0)
					fs_corrupt(fs, 0, "block reference count below zero");
				journal_txn_delete(t, STORE_CF_BLOCK, r->id,
						   KEY_ID_BYTES);
				if (block_loc_get(fs, r->id, &loc) == 0)
					journal_txn_release_block(t, r->id, &loc);
			}
		}
	}
	if (ret == 0)
		ret = journal_commit(fs->j, t, false, NULL);
	if (locked)
		pthread_mutex_unlock(&fs->block_lock);
	/* Copies sealed in vain (the block existed after all) are garbage. */
	if (refs)
		for (size_t q = 0; q < refs->cap; q++)
			if (refs->tab[q].used && refs->tab[q].appended) {
				if (store_seg_free(fs->st, &refs->tab[q].loc))
					log_warn("cannot release an unused block copy");
				refs->tab[q].appended = false;
			}
	if (ret == 0 && sync)
		ret = journal_sync(fs->j);
	return ret;
}

/* ---- worker pool ---- */

static void *pool_main(void *arg)
{
	struct fs_pool *p = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && (p->gen == seen || p->next >= p->n))
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stop)
			break;
		seen = p->gen;
		while (p->next < p->n) {
			size_t i = p->next++;
			int ret;

			pthread_mutex_unlock(&p->lock);
			ret = p->fn(p->arg, i);
			pthread_mutex_lock(&p->lock);
			if (ret && !p->err)
				p->err = ret;
			if (++p->finished == p->n)
				pthread_cond_broadcast(&p->done);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int fs_parallel(struct fs *fs, size_t n, fs_work_fn *fn, void *arg)
{
	struct fs_pool *p = &fs->pool;
	int ret = 0;

	if (n < 2 || !p->nthreads || pthread_mutex_trylock(&p->job_lock)) {
		for (size_t i = 0; i < n && !ret; i++)
			ret = fn(arg, i);
		return ret;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->next = 0;
	p->finished = 0;
	p->err = 0;
	p->gen++;
	pthread_cond_broadcast(&p->wake);
	while (p->next < p->n) {
		size_t i = p->next++;
		int r;

		pthread_mutex_unlock(&p->lock);
		r = fn(arg, i);
		pthread_mutex_lock(&p->lock);
		if (r && !p->err)
			p->err = r;
		p->finished++;
	}
	while (p->finished < p->n)
		pthread_cond_wait(&p->done, &p->lock);
	ret = p->err;
	p->n = 0;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->job_lock);
	return ret;
}

static void pool_start(struct fs_pool *p)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cpus > 1 ? (size_t)MIN(cpus - 1, 7) : 0;

	pthread_mutex_init(&p->job_lock, NULL);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	p->threads = calloc(want ? want : 1, sizeof(*p->threads));
	if (!p->threads)
		return;	/* no helpers: flushes run on the caller alone */
	for (size_t q = 0; q < want; q++) {
		if (pthread_create(&p->threads[q], NULL, pool_main, p))
			break;
		p->nthreads++;
	}
}

static void pool_stop(struct fs_pool *p)
{
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (size_t q = 0; q < p->nthreads; q++)
		pthread_join(p->threads[q], NULL);
	free(p->threads);
	pthread_mutex_destroy(&p->job_lock);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
}

/* ---- lifecycle ---- */

static int load_generation(struct fs *fs)
{
	struct journal_txn *t = NULL;
	uint8_t val[8 + KEY_MAC_BYTES];
	size_t vlen;
	uint64_t mounts = 0;
	int ret;

	ret = store_get_buf(fs->st, STORE_CF_SUPER, "mounts", 6, val, sizeof(val),
			    &vlen);
	if (ret == 0 && vlen == sizeof(val) &&
	    fs_mac_check(fs, "super", "mounts", 6, val, 8, val + 8) == 0)
		mounts = get_be64(val);
	else if (ret && ret != -ENOENT)
		return ret;
	fs->generation = mounts + 1;
	if (fs->rdonly)
		return 0;
	put_be64(val, mounts + 1);
	fs_mac_value(fs, "super", "mounts", 6, val, 8, val + 8);
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		return ret;
	journal_txn_put(t, STORE_CF_SUPER, "mounts", 6, val, sizeof(val));
	ret = journal_commit(fs->j, t, false, NULL);
	journal_txn_free(t);
	return ret;
}

static int load_next_ino(struct fs *fs)
{
	uint64_t last = 0;
	int ret;

	ret = store_last_u64(fs->st, STORE_CF_INODE, &last);
	if (ret && ret != -ENOENT)
		return ret;
	atomic_store(&fs->next_ino, MAX(FS_ROOT_INO + 1, last + 1));
	return 0;
}

static int fs_new(struct volume *v, bool rdonly, struct fs **out)
{
	struct fs *fs;

	*out = NULL;
	if (!volume_key(v))
		return -EKEYREJECTED;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->v = v;
	fs->st = volume_store(v);
	fs->j = volume_journal(v);
	fs->codec = volume_codec(v);
	fs->k = volume_key(v);
	fs->bs = volume_header(v)->block_size;
	fs->rdonly = rdonly || volume_rdonly(v);
	pthread_mutex_init(&fs->block_lock, NULL);
	pthread_mutex_init(&fs->rename_lock, NULL);
	for (size_t q = 0; q < FS_INODE_BUCKETS; q++)
		pthread_mutex_init(&fs->buckets[q].lock, NULL);
	fs->inode_cache = FS_INODE_CACHE_DEFAULT;
	pthread_mutex_init(&fs->rdbufs.lock, NULL);
	fs_pcache_init(fs);
	pool_start(&fs->pool);
	*out = fs;
	return 0;
}

static int redo_cmp(const void *a, const void *b)
{
	const struct journal_redo *x = a, *y = b;

	if (x->loc.seg != y->loc.seg)
		return x->loc.seg < y->loc.seg ? -1 : 1;
	if (x->loc.off != y->loc.off)
		return x->loc.off < y->loc.off ? -1 : 1;
	return 0;
}

bool fs_redo_pending(const struct fs *fs, const struct store_loc *loc,
		     const uint8_t id[static KEY_ID_BYTES])
{
	struct journal_redo want = { .loc = *loc }, *r;

	if (!fs->nredo_pending)
		return false;
	r = bsearch(&want, fs->redo_pending, fs->nredo_pending,
		    sizeof(*fs->redo_pending), redo_cmp);
	return r && r->loc.len == loc->len &&
	       !memcmp(r->id, id, KEY_ID_BYTES);
}

static void fs_free(struct fs *fs)
{
	pool_stop(&fs->pool);
	for (size_t q = 0; q < FS_INODE_BUCKETS; q++) {
		struct fs_inode *i = fs->buckets[q].head;
		struct fs_ghost *g = fs->buckets[q].ghosts;

		while (i) {
			struct fs_inode *next = i->next;

			inode_free(fs, i);
			i = next;
		}
		while (g) {
			struct fs_ghost *next = g->next;

			free(g);
			g = next;
		}
		pthread_mutex_destroy(&fs->buckets[q].lock);
	}
	pthread_mutex_destroy(&fs->block_lock);
	pthread_mutex_destroy(&fs->rename_lock);
	free(fs->redo_pending);
	for (size_t q = 0; q < fs->rdbufs.nfree; q++)
		munmap(fs->rdbufs.free[q], FS_RDBUF_BYTES);
	pthread_mutex_destroy(&fs->rdbufs.lock);
	fs_pcache_free(fs);
	free(fs);
}

int fs_format(struct volume *v, uint32_t uid, uint32_t gid)
{
	struct journal_txn *t = NULL;
	struct fs_inode *root = NULL;
	struct fs *fs = NULL;
	struct fs_iattr a;
	uint8_t key[8];
	size_t vlen;
	int ret;

	ret = fs_new(v, false, &fs);
	if (ret)
		return ret;
	fs_ino_key(key, FS_ROOT_INO);
	ret = store_get_buf(fs->st, STORE_CF_INODE, key, 8, NULL, 0, &vlen);
	if (ret == 0 || ret == -ENOSPC) {
		ret = -EEXIST;
		goto out;
	}
	ret = load_generation(fs);
	if (ret)
		goto out;
	memset(&a, 0, sizeof(a));
	a.mode = S_IFDIR | 0755;
	a.nlink = 2;
	a.uid = uid;
	a.gid = gid;
	fs_now(&a.mtime);
	a.atime = a.ctime = a.btime = a.mtime;
	atomic_store(&fs->next_ino, FS_ROOT_INO);
	ret = fs_inode_new(fs, &a, NULL, &root);
	if (ret)
		goto out;
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_put_inode(fs, t, root);
	ret = fs_commit(fs, t, NULL, true);
out:
	journal_txn_free(t);
	if (root)
		fs_inode_unlock(fs, root);
	if (fs)
		fs_free(fs);
	return ret;
}

int fs_open(struct volume *v, enum fs_open_flags flags, struct fs **out)
{
	struct fs *fs = NULL;
	struct fs_inode *root;
	int ret;

	*out = NULL;
	ret = fs_new(v, flags & FS_RDONLY, &fs);
	if (ret)
		return ret;
	ret = load_generation(fs);
	if (ret)
		goto out;
	ret = load_next_ino(fs);
	if (ret)
		goto out;
	{
		uint64_t avail, total;

		/* 2% of the disk, within [8 MiB, 256 MiB]: room for unlink. */
		ret = store_avail(fs->st, &avail, &total);
		if (ret)
			goto out;
		fs->reserve = MIN(MAX(total / 50, 8ull << 20), 256ull << 20);
	}
	ret = fs_inode_lock(fs, FS_ROOT_INO, false, &root);
	if (ret) {
		log_err("volume '%s' has no readable root directory",
			store_path(fs->st));
		if (ret == -ENOENT)
			ret = -EUCLEAN;
		goto out;
	}
	fs_inode_unlock(fs, root);
	if (fs->rdonly) {
		struct journal_redo_stats rs;

		/* Nothing can be written again here: read them from the log. */
		ret = journal_redo_replay(fs->st, 0, &rs, &fs->redo_pending);
		if (ret) {
			/* The mount that looks at a damaged volume still opens. */
			log_warn("volume '%s': cannot list the blocks pending "
				 "redo (%s); those a crash kept from their "
				 "segment read as EIO on this mount",
				 store_path(fs->st), strerror(-ret));
			ret = 0;
		} else if (rs.damaged) {
			fs->nredo_pending = rs.damaged;
			qsort(fs->redo_pending, rs.damaged,
			      sizeof(*fs->redo_pending), redo_cmp);
			log_notice("volume '%s': %zu block(s) written for an "
				   "fsync before a crash are not whole in "
				   "their segment; this read-only mount reads "
				   "them from the redo log, and the next "
				   "read-write mount (or fsck.embassyfs -y) "
				   "writes them again", store_path(fs->st),
				   rs.damaged);
		}
	} else {
		ret = fs_orphans_reap(fs, true);
		if (ret)
			goto out;
		ret = journal_sync(fs->j);
		if (ret)
			goto out;
	}
	*out = fs;
	fs = NULL;
out:
	if (fs)
		fs_free(fs);
	return ret;
}

/* Flush every inode that holds dirty blocks or unsaved attributes. */
static int fs_flush_all(struct fs *fs)
{
	int first = 0;

	for (size_t q = 0; q < FS_INODE_BUCKETS; q++) {
		struct fs_bucket *b = &fs->buckets[q];
		uint64_t inos[64];
		size_t n;
		bool more;

		do {
			struct fs_inode *i;

			n = 0;
			more = false;
			pthread_mutex_lock(&b->lock);
			for (i = b->head; i; i = i->next)
				if (i->ndirty || i->attr_dirty) {
					if (n == ARRAY_SIZE(inos)) {
						more = true;
						break;
					}
					inos[n++] = i->ino;
				}
			pthread_mutex_unlock(&b->lock);
			for (size_t k = 0; k < n; k++) {
				int ret = fs_inode_lock(fs, inos[k], true, &i);

				if (ret == 0) {
					if (i->ndirty || i->attr_dirty)
						ret = fs_data_flush(fs, i, false);
					fs_inode_unlock(fs, i);
				}
				if (ret && ret != -ENOENT && !first)
					first = ret;
			}
		} while (more && !first);
	}
	return first;
}

int fs_sync(struct fs *fs)
{
	int ret;

	if (fs->rdonly)
		return 0;
	ret = fs_flush_all(fs);
	if (ret == 0)
		ret = journal_sync(fs->j);
	return ret;
}

int fs_close(struct fs *fs)
{
	int ret;

	if (!fs)
		return 0;
	ret = fs_flush_all(fs);
	if (ret == 0 && !fs->rdonly)
		ret = fs_orphans_reap(fs, false);
	if (ret == 0)
		ret = fs_sync(fs);
	if (ret)
		log_err("cannot write back every buffer at close: %s",
			strerror(-ret));
	fs_free(fs);
	return ret;
}

void fs_set_kernel_cmtime(struct fs *fs, bool on)
{
	fs->kernel_cmtime = on;
}

/* ---- attributes ---- */

int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *out)
{
	struct fs_inode *i;
	int ret;

	ret = fs_inode_lock(fs, ino, false, &i);
	if (ret)
		return ret;
	fs_attr_fill(fs, i, out);
	fs_inode_unlock(fs, i);
	return 0;
}

/* The times a setattr asks for; any change moves ctime. to_set != 0. */
static void set_times(struct fs_inode *i, const struct fs_attr *in,
		      unsigned to_set, const struct timespec *now)
{
	if (to_set & FS_SET_ATIME_NOW)
		i->a.atime = *now;
	else if (to_set & FS_SET_ATIME)
		i->a.atime = in->atime;
	if (to_set & FS_SET_MTIME_NOW)
		i->a.mtime = *now;
	else if (to_set & FS_SET_MTIME)
		i->a.mtime = in->mtime;
	i->a.ctime = (to_set & FS_SET_CTIME) ? in->ctime : *now;
}

int fs_setattr(struct fs *fs, uint64_t ino, const struct fs_attr *in,
	       unsigned to_set, struct fs_attr *out)
{
	struct journal_txn *t = NULL;
	struct fs_inode *i = NULL;
	struct fs_refs refs;
	struct timespec now;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	fs_refs_init(&refs);
	ret = fs_inode_lock(fs, ino, true, &i);
	if (ret)
		return ret;
	fs_now(&now);
	if (!to_set) {
		fs_attr_fill(fs, i, out);	/* nothing asked: nothing to commit */
		goto out;
	}
	/*
	 * Times alone (the kernel sends them after writes, utimensat) ride on
	 * the inode's next commit, like buffered data: no durability is owed
	 * before fsync, and it saves a commit per written file.
	 */
	if (to_set && !(to_set & ~(unsigned)(FS_SET_ATIME | FS_SET_MTIME |
					   FS_SET_ATIME_NOW | FS_SET_MTIME_NOW |
					   FS_SET_CTIME))) {
		set_times(i, in, to_set, &now);
		i->attr_dirty = true;
		fs_attr_fill(fs, i, out);
		goto out;
	}
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	if (to_set & FS_SET_SIZE) {
		if (S_ISDIR(i->a.mode)) {
			ret = -EISDIR;
			goto out;
		}
		if (!S_ISREG(i->a.mode)) {
			ret = -EINVAL;
			goto out;
		}
		if (in->size > FS_MAX_FILE_SIZE) {
			ret = -EFBIG;
			goto out;
		}
		ret = fs_data_truncate(fs, i, in->size, t, &refs);
		if (ret)
			goto out;
		i->a.mtime = now;
		i->a.ctime = now;
	}
	if (to_set & FS_SET_MODE) {
		uint8_t *acl = NULL;
		size_t alen;

		i->a.mode = (i->a.mode & S_IFMT) | (in->mode & 07777);
		ret = S_ISLNK(i->a.mode) ? -ENODATA :
			fs_xattr_read(fs, ino, FS_ACL_ACCESS, &acl, &alen);
		if (ret == 0) {
			bool equiv;
			uint32_t perm;

			if (fs_acl_check(acl, alen, &equiv, &perm) == 0) {
				fs_acl_chmod(acl, alen, i->a.mode);
				ret = fs_xattr_put(fs, t, i, FS_ACL_ACCESS, acl,
						   alen);
			}
		} else if (ret == -ENODATA) {
			ret = 0;
		}
		free(acl);
		if (ret) {
			i->loaded = false;
			goto out;
		}
	}
	if (to_set & FS_SET_UID)
		i->a.uid = in->uid;
	if (to_set & FS_SET_GID)
		i->a.gid = in->gid;
	if (to_set)
		set_times(i, in, to_set, &now);
	fs_put_inode(fs, t, i);
	ret = fs_commit(fs, t, &refs, false);
	if (ret == 0)
		fs_attr_fill(fs, i, out);
out:
	fs_refs_release(&refs);
	journal_txn_free(t);
	fs_inode_unlock(fs, i);
	return ret;
}

/* ---- extended attributes ---- */

static bool xattr_name_ok(const char *name)
{
	static const char *const ns[] = { "user.", "trusted.", "security.",
					  "system.posix_acl_access",
					  "system.posix_acl_default" };

	for (size_t q = 0; q < ARRAY_SIZE(ns); q++)
		if (!strncmp(name, ns[q], strlen(ns[q])))
			return q < 3 ? name[strlen(ns[q])] != '\0'
				     : name[strlen(ns[q])] == '\0';
	return false;
}

static void xattr_key(struct fs *fs, uint64_t ino, const char *name,
		      uint8_t key[8 + KEY_NAME_HASH_BYTES])
{
	put_be64(key, ino);
	key_name_hash(fs->k, ino, name, strlen(name), key + 8);
}

/* Read an xattr value: *val malloc'd (plaintext: u8 nlen, name, value). */
static int xattr_get_plain(struct fs *fs, const uint8_t *key, uint8_t **plain,
			   size_t *plen, uint64_t ino)
{
	uint8_t ad[5 + 8 + KEY_NAME_HASH_BYTES];
	uint8_t *val = NULL;
	size_t vlen;
	int ret;

	*plain = NULL;
	ret = store_get(fs->st, STORE_CF_XATTR, key, 8 + KEY_NAME_HASH_BYTES,
			(void **)&val, &vlen);
	if (ret)
		return ret == -ENOENT ? -ENODATA : ret;
	ret = -EUCLEAN;
	if (vlen < 1 + KEY_SEAL_OVERHEAD + 1 || val[0] != XATTR_VERSION)
		goto out;
	memcpy(ad, "xattr", 5);
	memcpy(ad + 5, key, 8 + KEY_NAME_HASH_BYTES);
	*plen = vlen - 1 - KEY_SEAL_OVERHEAD;
	*plain = malloc(*plen);
	if (!*plain) {
		ret = -ENOMEM;
		goto out;
	}
	ret = key_open(fs->k, KEY_SUB_VALUE, ad, sizeof(ad), val + 1, vlen - 1,
		       *plain);
	if (ret == 0 && (size_t)(*plain)[0] + 1 > *plen)
		ret = -EUCLEAN;
out:
	if (ret == -EUCLEAN)
		fs_corrupt(fs, ino, "extended attribute fails authentication");
	if (ret) {
		free(*plain);
		*plain = NULL;
	}
	free(val);
	return ret;
}

int fs_xattr_read(struct fs *fs, uint64_t ino, const char *name, uint8_t **val,
		  size_t *len)
{
	uint8_t key[8 + KEY_NAME_HASH_BYTES];
	uint8_t *plain = NULL;
	size_t plen, nlen;
	int ret;

	*val = NULL;
	xattr_key(fs, ino, name, key);
	ret = xattr_get_plain(fs, key, &plain, &plen, ino);
	if (ret)
		return ret;
	nlen = plain[0];
	if (nlen != strlen(name) || memcmp(plain + 1, name, nlen)) {
		free(plain);
		return -ENODATA;	/* a hash collision: not this name */
	}
	*len = plen - 1 - nlen;
	memmove(plain, plain + 1 + nlen, *len);
	*val = plain;
	return 0;
}

int fs_xattr_put(struct fs *fs, struct journal_txn *t, struct fs_inode *i,
		 const char *name, const void *value, size_t size)
{
	uint8_t key[8 + KEY_NAME_HASH_BYTES], ad[5 + sizeof(key)];
	size_t nlen = strlen(name), plen = 1 + nlen + size;
	uint8_t *plain, *val;

	atomic_store(&i->xattrs, value ? FS_XATTRS_SOME : FS_XATTRS_UNKNOWN);
	xattr_key(fs, i->ino, name, key);
	if (!value) {
		journal_txn_delete(t, STORE_CF_XATTR, key, sizeof(key));
		return 0;
	}
	plain = malloc(plen);
	val = malloc(1 + plen + KEY_SEAL_OVERHEAD);
	if (!plain || !val) {
		free(plain);
		free(val);
		return -ENOMEM;
	}
	plain[0] = (uint8_t)nlen;
	memcpy(plain + 1, name, nlen);
	if (size)
		memcpy(plain + 1 + nlen, value, size);
	memcpy(ad, "xattr", 5);
	memcpy(ad + 5, key, sizeof(key));
	val[0] = XATTR_VERSION;
	key_seal(fs->k, KEY_SUB_VALUE, ad, sizeof(ad), plain, plen, val + 1);
	journal_txn_put(t, STORE_CF_XATTR, key, sizeof(key), val,
			1 + plen + KEY_SEAL_OVERHEAD);
	free(plain);
	free(val);
	return 0;
}

int fs_setxattr(struct fs *fs, uint64_t ino, const char *name,
		const void *value, size_t size, int flags)
{
	struct journal_txn *t = NULL;
	struct fs_inode *i = NULL;
	uint8_t *old = NULL;
	size_t oldlen;
	bool equiv = false, is_access = !strcmp(name, FS_ACL_ACCESS);
	uint32_t perm = 0;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	if (strlen(name) > FS_XATTR_NAME_MAX)
		return -ERANGE;
	if (size > FS_XATTR_SIZE_MAX)
		return -E2BIG;
	if (!xattr_name_ok(name))
		return -EOPNOTSUPP;
	if (is_access || !strcmp(name, FS_ACL_DEFAULT)) {
		ret = fs_acl_check(value, size, &equiv, &perm);
		if (ret)
			return ret;
	}
	ret = fs_inode_lock(fs, ino, true, &i);
	if (ret)
		return ret;
	if (!strcmp(name, FS_ACL_DEFAULT) && !S_ISDIR(i->a.mode)) {
		ret = -EACCES;
		goto out;
	}
	ret = fs_xattr_read(fs, ino, name, &old, &oldlen);
	if (ret && ret != -ENODATA)
		goto out;
	if (ret == 0 && (flags & XATTR_CREATE)) {
		ret = -EEXIST;
		goto out;
	}
	if (ret == -ENODATA && (flags & XATTR_REPLACE))
		goto out;
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	if (is_access) {
		/* The ACL sets the permission bits; one equal to them is not kept. */
		i->a.mode = (i->a.mode & ~0777u) | perm;
		ret = fs_xattr_put(fs, t, i, name, equiv ? NULL : value, size);
	} else {
		ret = fs_xattr_put(fs, t, i, name, value, size);
	}
	if (ret)
		goto out;
	fs_now(&i->a.ctime);
	fs_put_inode(fs, t, i);
	ret = fs_commit(fs, t, NULL, false);
	if (ret)
		i->loaded = false;
out:
	journal_txn_free(t);
	free(old);
	fs_inode_unlock(fs, i);
	return ret;
}

/* 1 if ino has no extended attribute at all, 0 if it has, or -errno. */
static int xattr_none(struct fs *fs, uint64_t ino)
{
	struct store_iter *it = NULL;
	uint8_t prefix[8];
	size_t klen;
	int ret;

	ret = store_iter_new(fs->st, STORE_CF_XATTR, &it);
	if (ret)
		return ret;
	put_be64(prefix, ino);
	store_iter_seek(it, prefix, 8);
	if (store_iter_valid(it)) {
		const uint8_t *k = store_iter_key(it, &klen);

		ret = !(klen >= 8 && !memcmp(k, prefix, 8));
	} else {
		ret = store_iter_status(it);
		if (ret == 0)
			ret = 1;
	}
	store_iter_free(it);
	return ret;
}

ssize_t fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf,
		    size_t cap)
{
	struct fs_inode *i = NULL;
	uint8_t *val = NULL;
	size_t vlen;
	ssize_t ret;

	if (strlen(name) > FS_XATTR_NAME_MAX)
		return -ERANGE;
	ret = fs_inode_lock(fs, ino, false, &i);
	if (ret)
		return ret;
	if (atomic_load(&i->xattrs) == FS_XATTRS_NONE) {
		ret = -ENODATA;
		goto out;
	}
	ret = fs_xattr_read(fs, ino, name, &val, &vlen);
	if (ret == 0) {
		atomic_store(&i->xattrs, FS_XATTRS_SOME);
	} else if (ret == -ENODATA &&
		   atomic_load(&i->xattrs) == FS_XATTRS_UNKNOWN) {
		int none = xattr_none(fs, ino);

		if (none >= 0)
			atomic_store(&i->xattrs, none ? FS_XATTRS_NONE
						      : FS_XATTRS_SOME);
	}
	if (ret)
		goto out;
	ret = (ssize_t)vlen;
	if (cap) {
		if (cap < vlen)
			ret = -ERANGE;
		else
			memcpy(buf, val, vlen);
	}
out:
	free(val);
	fs_inode_unlock(fs, i);
	return ret;
}

ssize_t fs_listxattr(struct fs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct store_iter *it = NULL;
	struct fs_inode *i = NULL;
	uint8_t prefix[8];
	size_t total = 0;
	ssize_t ret;

	ret = fs_inode_lock(fs, ino, false, &i);
	if (ret)
		return ret;
	ret = store_iter_new(fs->st, STORE_CF_XATTR, &it);
	if (ret)
		goto out;
	put_be64(prefix, ino);
	for (store_iter_seek(it, prefix, 8); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);
		uint8_t *plain = NULL;
		size_t plen, nlen;

		if (klen != 8 + KEY_NAME_HASH_BYTES || memcmp(k, prefix, 8))
			break;
		ret = xattr_get_plain(fs, k, &plain, &plen, ino);
		if (ret)
			goto out;
		nlen = plain[0];
		if (cap && total + nlen + 1 > cap) {
			free(plain);
			ret = -ERANGE;
			goto out;
		}
		if (cap) {
			memcpy(buf + total, plain + 1, nlen);
			buf[total + nlen] = '\0';
		}
		total += nlen + 1;
		free(plain);
	}
	ret = store_iter_status(it);
	if (ret == 0)
		ret = (ssize_t)total;
out:
	store_iter_free(it);
	fs_inode_unlock(fs, i);
	return ret;
}

int fs_removexattr(struct fs *fs, uint64_t ino, const char *name)
{
	struct journal_txn *t = NULL;
	struct fs_inode *i = NULL;
	uint8_t *val = NULL;
	size_t vlen;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	if (strlen(name) > FS_XATTR_NAME_MAX)
		return -ERANGE;
	ret = fs_inode_lock(fs, ino, true, &i);
	if (ret)
		return ret;
	ret = fs_xattr_read(fs, ino, name, &val, &vlen);
	if (ret)
		goto out;
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	ret = fs_xattr_put(fs, t, i, name, NULL, 0);
	if (ret)
		goto out;
	fs_now(&i->a.ctime);
	fs_put_inode(fs, t, i);
	ret = fs_commit(fs, t, NULL, false);
out:
	journal_txn_free(t);
	free(val);
	fs_inode_unlock(fs, i);
	return ret;
}

int fs_statfs(struct fs *fs, struct statvfs *out)
{
	uint64_t used, avail, total;
	int ret;

	ret = store_space(fs->st, &used, &avail, &total);
	if (ret)
		return ret;
	memset(out, 0, sizeof(*out));
	out->f_bsize = fs->bs;
	out->f_frsize = fs->bs;
	out->f_blocks = (used + avail) / fs->bs;
	out->f_bfree = avail / fs->bs;
	out->f_bavail = avail / fs->bs;
	out->f_files = atomic_load(&fs->next_ino) + avail / fs->bs;
	out->f_ffree = avail / fs->bs;
	out->f_favail = out->f_ffree;
	out->f_namemax = FS_NAME_MAX;
	(void)total;
	return 0;
}
