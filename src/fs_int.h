/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fs_int.h - private to fs.c, fs_dir.c and fs_data.c
 *
 * In-memory inodes: a striped hash table of struct fs_inode holding the
 * decoded attributes, the kernel's lookup count, the open count and the
 * dirty block buffers of the file. An inode's rwlock orders everything on
 * it: reads take it shared; writes, attribute and namespace changes take it
 * exclusive. Operations that touch several inodes lock them in ascending
 * inode number (fs_lock_set), after an optimistic lookup that they verify
 * again once locked.
 *
 * Block references are counted in the "block" column family. A transaction
 * collects reference deltas (struct fs_refs) without any lock; fs_commit()
 * applies them under fs->block_lock, which covers only reading counts,
 * writing the new ones and the journal commit: sealing and segment writes
 * happen before, outside it.
 */
#ifndef EMBASSYFS_FS_INT_H
#define EMBASSYFS_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "codec.h"
#include "fs.h"
#include "journal.h"
#include "key.h"
#include "store.h"
#include "volume.h"

/* 2^16 chains: a million inodes the kernel knows make chains of 16. */
#define FS_INODE_BUCKETS_SHIFT 16
#define FS_INODE_BUCKETS (1u << FS_INODE_BUCKETS_SHIFT)
/* Loaded inodes kept past their last operation (see fs_set_inode_cache). */
#define FS_INODE_CACHE_DEFAULT 65536u
/* Dirty buffers of all inodes together; a writer past it flushes its own. */
#define FS_DIRTY_MAX_BYTES (64u << 20)

/* Decoded inode attributes (the sealed part of an inode value). */
struct fs_iattr {
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t rdev;
	uint64_t generation;
	uint64_t nextents;	/* extents present: st_blocks */
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	struct timespec btime;
};

struct fs_dirty {
	uint64_t idx;
	uint8_t *buf;		/* block_size bytes */
	bool frozen;		/* a flush is preparing it without the lock */
	uint32_t wlo, whi;	/* span of the bytes written into buf */
};

enum {
	FS_XATTRS_UNKNOWN,	/* not looked at since it was loaded */
	FS_XATTRS_NONE,
	FS_XATTRS_SOME,
};

struct fs_inode {
	uint64_t ino;
	struct fs_inode *next;	/* bucket chain */
	pthread_rwlock_t lock;
	/* Under the bucket lock: */
	uint64_t nlookup;
	uint32_t nopen;
	uint32_t pins;		/* operations in flight */
	/* Under lock: */
	bool loaded;
	bool gone;		/* deleted from the store */
	bool attr_dirty;	/* a or symlink changed but not committed */
	/*
	 * Whether it has extended attributes (FS_XATTRS_*): the kernel asks
	 * for security.capability before every write, and with none the
	 * answer needs no RocksDB read. Learnt under the read lock (by
	 * getxattr, atomically), changed under the write lock by whatever
	 * writes an attribute.
	 */
	atomic_int xattrs;
	struct fs_iattr a;
	char *symlink;
	struct fs_dirty *dirty;	/* sorted by idx */
	size_t ndirty;
	size_t capdirty;
	size_t nfrozen;		/* of them, frozen (fs_data.c) */
};

/*
 * An inode the kernel still holds lookups on, but whose loaded state was
 * let go (the cache was full): only its lookup count is kept, and the next
 * operation on it loads it again.
 */
struct fs_ghost {
	uint64_t ino;
	uint64_t nlookup;
	struct fs_ghost *next;
};

struct fs_bucket {
	pthread_mutex_t lock;
	struct fs_inode *head;
	struct fs_ghost *ghosts;
};

/*
 * Worker threads that hash and seal the blocks of a flush in parallel. One
 * job at a time; a caller that finds the pool busy runs its job alone.
 */
typedef int fs_work_fn(void *arg, size_t i);

struct fs_pool {
	pthread_mutex_t job_lock;	/* held by the one submitter */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t done;
	pthread_t *threads;
	size_t nthreads;
	bool stop;
	uint64_t gen;
	fs_work_fn *fn;
	void *arg;
	size_t n;
	size_t next;
	size_t finished;
	int err;
};

/*
 * Page-aligned buffers for the segment reads of multi-block reads (read
 * O_DIRECT): a few are kept for reuse, so that neither the heap's arenas
 * nor the page faults of a fresh mapping grow with the number of requests.
 */
#define FS_RDBUF_BYTES (2u << 20)
#define FS_RDBUF_KEEP 4
struct fs_rdbufs {
	pthread_mutex_t lock;
	void *free[FS_RDBUF_KEEP];
	size_t nfree;
};

/*
 * Plaintext of the blocks an fsync's flush just stored,
 * by id (fs_data.c): the read-modify-write of a small page that is written
 * again and again (a database's header, its index pages) then needs no
 * segment read, decryption or decompression. Direct-mapped, the buffers
 * moved in from the flush without a copy. An id is a keyed hash of its
 * plaintext, so an entry is never stale.
 */
#define FS_PCACHE_BYTES (8u << 20)
struct fs_pcache_slot {
	uint8_t id[KEY_ID_BYTES];
	uint8_t *buf;		/* fs->bs bytes, NULL if empty */
	size_t len;		/* the block's stored length */
};

struct fs_pcache {
	pthread_mutex_t lock;
	struct fs_pcache_slot *slot;
	size_t nslots;
	uint64_t hits;
};

struct fs {
	struct volume *v;
	struct store *st;
	struct journal *j;
	struct codec *codec;
	const struct key *k;
	uint32_t bs;		/* block size */
	bool rdonly;
	bool kernel_cmtime;	/* see fs_set_kernel_cmtime */
	uint64_t generation;
	uint64_t reserve;	/* bytes kept free for metadata (see fs_data_flush) */
	_Atomic int64_t full_logged;	/* last "volume is full" log, seconds */
	_Atomic uint64_t dirty_bytes;	/* all inodes' dirty buffers */
	atomic_uint_fast64_t next_ino;
	_Atomic size_t ninodes;		/* struct fs_inode allocated */
	_Atomic uint64_t read_retries;	/* blocks the batched read left to block_read */
	_Atomic uint64_t rmw_reads;	/* blocks read back for a partial write */
	/*
	 * Read-only: records a crash kept from their segment, read from their
	 * redo entries instead (sorted by place; fs_redo_pending).
	 */
	struct journal_redo *redo_pending;
	size_t nredo_pending;
	struct fs_rdbufs rdbufs;
	struct fs_pcache pcache;
	size_t inode_cache;		/* idle ones kept beyond this become ghosts */
	pthread_mutex_t block_lock;
	pthread_mutex_t rename_lock;
	struct fs_pool pool;
	struct fs_bucket buckets[FS_INODE_BUCKETS];
};

/* One reference-count change of a block, within a transaction. */
struct fs_ref {
	uint8_t id[KEY_ID_BYTES];
	int64_t delta;
	bool used;
	bool appended;		/* we wrote a copy to a segment */
	struct store_loc loc;	/* of that copy */
	uint64_t csum;		/* store_rec_sum of that copy's record */
	const void *redo;	/* sealed bytes of that copy, to log for redo */
	const uint8_t *plain;	/* for a late append under the lock */
	size_t plainlen;
};

struct fs_refs {
	struct fs_ref *tab;
	size_t cap;		/* power of two */
	size_t n;
};

/* fs.c: inode table */
int fs_inode_get(struct fs *fs, uint64_t ino, struct fs_inode **out) MUST_CHECK;
/* Like fs_inode_get but with the inode locked (exclusive or shared) and loaded. */
int fs_inode_lock(struct fs *fs, uint64_t ino, bool excl,
		  struct fs_inode **out) MUST_CHECK;
void fs_inode_unlock(struct fs *fs, struct fs_inode *i);
void fs_inode_put(struct fs *fs, struct fs_inode *i);
/* Create an in-memory inode for a new ino, locked exclusive, loaded with a. */
int fs_inode_new(struct fs *fs, const struct fs_iattr *a, const char *symlink,
		 struct fs_inode **out) MUST_CHECK;
/* Lock up to 4 inodes in ascending order (duplicates and 0 ignored), exclusive. */
int fs_lock_set(struct fs *fs, const uint64_t *inos, size_t n,
		struct fs_inode **out) MUST_CHECK;
void fs_unlock_set(struct fs *fs, struct fs_inode **set, size_t n);
/* Add inode value for i (attrs + symlink) to t. */
void fs_put_inode(struct fs *fs, struct journal_txn *t, struct fs_inode *i);
void fs_attr_fill(struct fs *fs, const struct fs_inode *i, struct fs_attr *out);
void fs_now(struct timespec *ts);
/* Delete an inode with nlink 0: extents, xattrs, the inode, the orphan mark. */
int fs_inode_destroy(struct fs *fs, struct fs_inode *i) MUST_CHECK;
/* Commit t with the reference deltas of refs (may be NULL). */
int fs_commit(struct fs *fs, struct journal_txn *t, struct fs_refs *refs,
	      bool sync) MUST_CHECK;
void fs_orphan_add(struct fs *fs, struct journal_txn *t, uint64_t ino);
void fs_orphan_del(struct fs *fs, struct journal_txn *t, uint64_t ino);

/* Count a reference the kernel now holds (lookup, create) / an open. */
void fs_inode_ref(struct fs *fs, struct fs_inode *i, uint64_t nlookup,
		  int nopen);
/* Is anyone (kernel lookup or open file) still holding i? */
bool fs_inode_held(struct fs *fs, struct fs_inode *i);
/* Run fn(arg, i) for i in [0, n) on the pool and this thread; first error. */
int fs_parallel(struct fs *fs, size_t n, fs_work_fn *fn, void *arg) MUST_CHECK;
/* Is the record at loc one of fs->redo_pending (read-only mounts)? */
bool fs_redo_pending(const struct fs *fs, const struct store_loc *loc,
		     const uint8_t id[static KEY_ID_BYTES]);
/* Seal a block: *sealed is malloc'd, *csum its record's store_rec_sum. */
void fs_pcache_init(struct fs *fs);
void fs_pcache_free(struct fs *fs);

int fs_block_seal(struct fs *fs, const uint8_t id[static KEY_ID_BYTES],
		  const uint8_t *plain, size_t len, uint8_t **sealed,
		  size_t *slen, uint64_t *csum) MUST_CHECK;
/* Seal and append a block's bytes: fills r->loc, r->csum, r->appended. */
int fs_block_append(struct fs *fs, struct fs_ref *r, const uint8_t *plain,
		    size_t len) MUST_CHECK;
/* Does a block with this id exist? 1 yes, 0 no, or -errno. */
int fs_block_exists(struct fs *fs, const uint8_t id[static KEY_ID_BYTES]) MUST_CHECK;
/* Seal a block's bytes now if it is probably new (outside any lock). */
int fs_block_prepare(struct fs *fs, struct fs_ref *r, const uint8_t *plain,
		     size_t len) MUST_CHECK;

/* fs_acl.c: ACLs in xattr form (little-endian, version 2). */
#define FS_ACL_ACCESS "system.posix_acl_access"
#define FS_ACL_DEFAULT "system.posix_acl_default"
/* Validate; *equiv: only the three base entries; *perm: the mode bits it implies. -EINVAL. */
int fs_acl_check(const void *val, size_t len, bool *equiv,
		 uint32_t *perm) MUST_CHECK;
/* Rewrite owner, mask (or group) and other entries from mode (validated ACL). */
void fs_acl_chmod(void *val, size_t len, uint32_t mode);
/* Mask an inherited default ACL by the creation mode; updates *mode. Returns equiv. */
bool fs_acl_create_masq(void *val, size_t len, uint32_t *mode);
/* fs.c: xattr helpers shared with fs_dir.c */
/* Read an xattr value (malloc'd); -ENODATA if absent. */
int fs_xattr_read(struct fs *fs, uint64_t ino, const char *name, uint8_t **val,
		  size_t *len) MUST_CHECK;
/*
 * Put or delete (val NULL) an xattr of i in t, i write-locked (or not yet
 * visible). -ENOMEM.
 */
int fs_xattr_put(struct fs *fs, struct journal_txn *t, struct fs_inode *i,
		 const char *name, const void *val, size_t len) MUST_CHECK;

/* fs_data.c */
void fs_refs_init(struct fs_refs *r);
void fs_refs_release(struct fs_refs *r);
struct fs_ref *fs_refs_add(struct fs_refs *r, const uint8_t id[static KEY_ID_BYTES],
			   int64_t delta);
/*
 * Commit all dirty blocks of i (locked exclusive) with its attributes.
 * for_fsync: the caller syncs the journal next; a small flush then logs
 * its blocks for redo instead of waiting for the segment's fdatasync.
 */
int fs_data_flush(struct fs *fs, struct fs_inode *i, bool for_fsync) MUST_CHECK;
/* Drop extents at or past block index `from` into t/refs; drops dirty blocks too. */
int fs_data_drop_from(struct fs *fs, struct fs_inode *i, uint64_t from,
		      struct journal_txn *t, struct fs_refs *refs) MUST_CHECK;
/* Change the size of i (locked exclusive, flushed) in t. */
int fs_data_truncate(struct fs *fs, struct fs_inode *i, uint64_t size,
		     struct journal_txn *t, struct fs_refs *refs) MUST_CHECK;
void fs_dirty_free(struct fs *fs, struct fs_inode *i);

/* Key builders. */
static inline void fs_ino_key(uint8_t k[8], uint64_t ino)
{
	put_be64(k, ino);
}

static inline void fs_extent_key(uint8_t k[16], uint64_t ino, uint64_t idx)
{
	put_be64(k, ino);
	put_be64(k + 8, idx);
}

/* Authenticated-clear values: value || MAC(ad = cf name || key, value). */
void fs_mac_value(struct fs *fs, const char *cf, const void *key, size_t klen,
		  const void *val, size_t vlen, uint8_t tag[static KEY_MAC_BYTES]);
int fs_mac_check(struct fs *fs, const char *cf, const void *key, size_t klen,
		 const void *val, size_t vlen,
		 const uint8_t tag[static KEY_MAC_BYTES]) MUST_CHECK;
/* True at most once every 10 seconds: for messages that would repeat. */
bool fs_log_ratelimit(struct fs *fs);
/* Record a run-time corruption once (log + super "errors"). */
void fs_corrupt(struct fs *fs, uint64_t ino, const char *what);

#define FS_EXTENT_VAL_BYTES (KEY_ID_BYTES + KEY_MAC_BYTES)
#define FS_BLOCK_VAL_BYTES (4 + 4 + 8 + KEY_MAC_BYTES)

#endif
