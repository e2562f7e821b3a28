/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * store.c - the on-disk store: RocksDB column families and block segments
 *
 * This file owns STORE/db and STORE/seg. It is the only file that includes
 * rocksdb/c.h, and the only place where a RocksDB status string becomes an
 * errno.
 *
 * Segments. Each record starts at a multiple of STORE_SEG_ALIGN. Appenders
 * reserve their range with one atomic fetch_add on the active segment's
 * tail (a direct append: a compare-and-swap to the next page boundary) and
 * then write holding only the segment's edge lock shared (see
 * store_punch_edges); a reservation that would run past
 * STORE_SEG_MAX rolls to the next segment number under seg_lock. A range
 * reserved by an append that failed is left as a hole (punched, best
 * effort) and is never named by a location. Segment descriptors live in a
 * two-level table that only grows; entries are published with release
 * stores and read without a lock, so reads and appends never contend on
 * anything but the segment files themselves.
 *
 * Crash ordering: a record's bytes are durable only after the fdatasync done
 * by store_sync() or store_write(..., sync=true), and those always sync the
 * segments before the RocksDB WAL, so a durable batch never names a record
 * that could be lost. Each segment counts finished appends (wgen) and the
 * appends covered by a completed fdatasync (sgen); a sync that finds
 * sgen < wgen does its own fdatasync, so two threads syncing at once can
 * never return before the bytes either of them wrote are on disk. Appends
 * made with store_seg_append_redo are the exception: their caller logs the
 * sealed bytes in the batch that names them (the journal's redo entries),
 * so the WAL alone makes them durable, and the durability syncs skip a
 * segment whose only unsynced appends are such (dgen: the wgen of its last
 * other append); store_seg_sync_all covers them too. A new
 * segment's directory entry is made durable (fsync of seg/) before any
 * record is written into it.
 *
 * Freeing punches a hole at once. The caller must free a record only after
 * the batch that drops its last reference is durable, or a crash leaves a
 * location pointing at a hole (read as -EUCLEAN).
 *
 * Batches are recorded in a private buffer and replayed into a RocksDB
 * write batch at store_write(): store_batch_new() takes no store, so the
 * column family handles a RocksDB batch needs are not known until then.
 */
#include "store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <rocksdb/c.h>
/*
 * Inlined: the record checksum runs over every byte appended and read, and
 * the library's out-of-line XXH3 ran at a third of the inlined speed (19
 * against 53 GB/s over 16 KiB here). The same function, the same sums.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "log.h"

#define STORE_MAX_OPEN_FILES	  512
#define STORE_CACHE_BYTES	  (64u << 20)
#define STORE_WRITE_BUFFER_BYTES  (32u << 20)
/*
 * All memtables together: without a cap each busy family may hold two
 * 32 MiB memtables, and at scale (a million files) the daemon's peak
 * memory passed its 256 MiB bound. Past the cap the largest is flushed.
 */
#define STORE_DB_WRITE_BUFFER_BYTES (64u << 20)
#define STORE_MAX_TOTAL_WAL_BYTES (256ull << 20)
#define STORE_BACKGROUND_JOBS	  2
#define STORE_BLOOM_BITS	  10.0
#define STORE_MEMTABLE_BLOOM	  0.01
#define STORE_INFO_LOG_KEEP	  4
#define STORE_INFO_LOG_BYTES	  (8u << 20)

/* Segment table: STORE_SEG_CHUNKS chunks of STORE_SEG_CHUNK entries. */
#define STORE_SEG_CHUNK_BITS 10
#define STORE_SEG_CHUNK	     (1u << STORE_SEG_CHUNK_BITS)
#define STORE_SEG_CHUNKS     4096u
#define STORE_SEG_NR_MAX     (STORE_SEG_CHUNK * STORE_SEG_CHUNKS)
#define STORE_SEG_NAME_BYTES 16
/* Short hex of a block id in log lines. */
#define STORE_ID_LOG_BYTES 8

/* Names on disk; index 0 is RocksDB's own "default", then enum store_cf. */
static const char *const store_cf_names[1 + STORE_CF_COUNT] = {
    "default", "super", "inode",  "dirent",  "extent",
    "block",   "xattr", "orphan", "journal", "local",
};

/* Column families read by point lookups get a Bloom filter. */
static const bool store_cf_bloom[1 + STORE_CF_COUNT] = {
    [1 + STORE_CF_INODE] = true,  [1 + STORE_CF_DIRENT] = true,
    [1 + STORE_CF_EXTENT] = true, [1 + STORE_CF_BLOCK] = true,
    [1 + STORE_CF_LOCAL] = true,
};

static const uint8_t store_zero[STORE_SEG_ALIGN];

/*
 * Direct appends: a flush's chunk of at least STORE_DIRECT_MIN bytes is
 * copied into an aligned buffer and written O_DIRECT at a page-aligned
 * offset (see store_seg_append_chunk). STORE_STAGE_KEEP such buffers of
 * STORE_STAGE_BYTES are kept between appends: the pages the largest chunk
 * so far touched stay resident, 32 MiB at worst (a flush's chunks are
 * about 1 MiB when files are written sequentially).
 */
#define STORE_PAGE	  4096u
#define STORE_DIRECT_MIN  (64u << 10)
#define STORE_STAGE_KEEP  4
/* A chunk: up to 8 MiB of records plus the one that crossed it, padded. */
#define STORE_STAGE_BYTES ((8u << 20) + 2 * STORE_PAGE)

/*
 * The active segment is allocated this far ahead of its appends
 * (fallocate, which also moves the file's end). An append inside the
 * file is no extending write: ext4 then lets direct appends proceed under
 * its inode lock shared, where extending ones queue on it exclusively,
 * each for a whole device write (measured: 1 GiB written in 4 MiB
 * flushes, 5-10% faster). The space beyond the appends is given back
 * when the segment rolls or the store closes, and at open after a crash
 * (store_seg_find_tail).
 */
#define STORE_PREALLOC_BYTES (64ull << 20)
/*
 * ...only while the file system keeps this much free after it: the space
 * ahead counts as used, and the mount's full-disk guard (2% of the disk,
 * 8 to 256 MiB, fs_data.c) must find it free for RocksDB.
 */
#define STORE_PREALLOC_FLOOR (1ull << 30)

struct store_seg {
	int fd;
	_Atomic int dfd;	/* O_DIRECT descriptor: -2 not yet opened, -1 none */
	atomic_bool direct_refused;	/* O_DIRECT refused: at open, or an aligned I/O */
	uint32_t nr;
	_Atomic uint64_t tail; /* next offset to reserve */
	_Atomic uint64_t wgen; /* appends finished */
	_Atomic uint64_t sgen; /* appends covered by a finished fdatasync */
	_Atomic uint64_t dgen; /* wgen of the last append not logged for redo */
	_Atomic uint64_t unstarted; /* bytes appended since writeback was started */
	/* Appends hold it shared while writing; a free that merges pages exclusive. */
	pthread_rwlock_t edge;
	pthread_mutex_t alloc_lock;	/* store_seg_prealloc */
	_Atomic uint64_t alloc_end;	/* allocated ahead of appends up to here */
	bool alloc_refused;		/* fallocate not supported */
	bool retired;			/* rolled away from: no more ahead */
};

struct store_seg_chunk {
	_Atomic(struct store_seg *) seg[STORE_SEG_CHUNK];
};

struct store {
	char *path;
	bool rdonly;
	rocksdb_t *db;
	rocksdb_column_family_handle_t *cf[1 + STORE_CF_COUNT];
	rocksdb_cache_t *cache;
	rocksdb_readoptions_t *ro;
	rocksdb_writeoptions_t *wo;
	rocksdb_writeoptions_t *wo_sync;

	int lock_fd; /* flock on seg/: one writer per store */
	int seg_dirfd;
	pthread_mutex_t seg_lock; /* table inserts and rolls */
	bool seg_lock_init;
	_Atomic(struct store_seg_chunk *) *seg_tab;
	_Atomic uint32_t seg_end; /* highest segment number in the table + 1 */
	/*
	 * The first failed segment fdatasync, kept: Linux reports a writeback
	 * error once, and a later fdatasync that succeeds proves nothing
	 * about the pages lost, so no sync succeeds after it in this open.
	 */
	_Atomic int seg_sync_err;
	_Atomic(struct store_seg *) active;
	atomic_flag punch_warned;
	/* Aligned buffers of direct appends, kept for the next (see there). */
	pthread_mutex_t stage_lock;
	void *stage[STORE_STAGE_KEEP];
	int nstage;
};

enum store_op_type {
	STORE_OP_PUT,
	STORE_OP_DELETE,
	STORE_OP_DELETE_RANGE,
};

/* One recorded operation, followed in the buffer by a[alen] and b[blen]. */
struct store_op {
	uint8_t type;
	uint8_t cf;
	uint32_t alen;
	uint32_t blen;
};

struct store_batch {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t count;
	int err; /* sticky: reported by store_write */
};

struct store_iter {
	struct store *st;
	rocksdb_iterator_t *it;
};

static uint64_t store_round_up(uint64_t v)
{
	return (v + STORE_SEG_ALIGN - 1) & ~(uint64_t)(STORE_SEG_ALIGN - 1);
}

static rocksdb_column_family_handle_t *store_cfh(const struct store *st,
						 enum store_cf cf)
{
	assert((unsigned)cf < STORE_CF_COUNT);
	return st->cf[1 + cf];
}

static int store_errno_io(int err)
{
	return (err == ENOSPC || err == EDQUOT) ? -ENOSPC : -EIO;
}

/* Map a RocksDB status string to an errno, log it once, free it. */
static int store_err(const char *path, const char *what, char *err)
{
	int ret = -EIO;

	if (!strncmp(err, "Corruption", strlen("Corruption")))
		ret = -EUCLEAN;
	else if (strstr(err, "No space") || strstr(err, "ENOSPC"))
		ret = -ENOSPC;
	if (ret == -EUCLEAN)
		log_err("%s '%s': %s; run fsck.embassyfs", what, path, err);
	else
		log_err("%s '%s': %s", what, path, err);
	rocksdb_free(err);
	return ret;
}

/* As store_err, with the cases only opening can meet. */
static int store_open_err(const char *path, char *err)
{
	if (!strncmp(err, "IO error", strlen("IO error")) &&
	    (strstr(err, "lock") ||
	     strstr(err, "Resource temporarily unavailable"))) {
		log_err("cannot open store '%s': it is in use by another "
			"process or handle (mounted?): %s",
			path, err);
		rocksdb_free(err);
		return -EBUSY;
	}
	if (!strncmp(err, "Invalid argument", strlen("Invalid argument")) &&
	    strstr(err, "does not exist")) {
		log_err("cannot open store '%s': %s", path, err);
		rocksdb_free(err);
		return -ENOENT;
	}
	return store_err(path, "cannot open store", err);
}

static char *store_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int store_fsync_path(const char *path)
{
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = store_errno_io(errno);
	close(fd);
	return ret;
}

/* 1 if dir has no entries, 0 if it has some, -errno. */
static int store_dir_empty(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int ret = 1;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Create dir (or take an empty one), dir/db and dir/seg, durably. */
static int store_mkdirs(const char *dir)
{
	char *db = NULL, *seg = NULL, *parent = NULL, *slash;
	bool made = false;
	int ret;

	if (mkdir(dir, 0700) == 0) {
		made = true;
	} else if (errno != EEXIST) {
		ret = -errno;
		log_err("cannot create store directory '%s': %s", dir,
			strerror(-ret));
		goto out;
	} else {
		ret = store_dir_empty(dir);
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = -EEXIST;
			goto out;
		}
	}

	ret = -ENOMEM;
	db = store_join(dir, "db");
	seg = store_join(dir, "seg");
	if (!db || !seg)
		goto out;
	if (mkdir(db, 0700) < 0 || mkdir(seg, 0700) < 0) {
		ret = -errno;
		log_err("cannot create store directory '%s': %s", dir,
			strerror(-ret));
		goto out;
	}
	ret = store_fsync_path(dir);
	if (ret < 0)
		goto out;
	if (made) {
		parent = strdup(dir);
		if (!parent) {
			ret = -ENOMEM;
			goto out;
		}
		slash = strrchr(parent, '/');
		if (!slash)
			strcpy(parent, ".");
		else if (slash == parent)
			slash[1] = '\0';
		else
			*slash = '\0';
		ret = store_fsync_path(parent);
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	free(parent);
	free(seg);
	free(db);
	return ret;
}

/* -ENOENT unless dir/db is a directory; -EUCLEAN if dir/seg is missing. */
static int store_check_dirs(const char *dir)
{
	char *db = NULL, *seg = NULL;
	struct stat sb;
	int ret = -ENOMEM;

	db = store_join(dir, "db");
	seg = store_join(dir, "seg");
	if (!db || !seg)
		goto out;
	if (stat(db, &sb) < 0) {
		ret = (errno == ENOENT || errno == ENOTDIR) ? -ENOENT : -errno;
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		ret = -ENOENT;
		goto out;
	}
	if (stat(seg, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		log_err("store '%s' has no seg directory; run fsck.embassyfs",
			dir);
		ret = -EUCLEAN;
		goto out;
	}
	ret = 0;
out:
	free(seg);
	free(db);
	return ret;
}

/*
 * Options for one column family (index 0 doubles as the DB options).
 * Values are ciphertext, random ids or small counters: SST compression
 * would cost CPU for nothing, and key prefixes are already delta-encoded
 * in data blocks.
 */
static rocksdb_options_t *store_options(const struct store *st, bool bloom,
					enum store_open_flags flags)
{
	rocksdb_block_based_table_options_t *t;
	rocksdb_options_t *o;

	o = rocksdb_options_create();
	t = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(t, st->cache);
	/*
	 * Bound index and filter memory by the cache, not by open files, and
	 * partition both: with one filter block per table, once a large volume's
	 * filters no longer stayed in the cache every point read (a create's
	 * name and block lookups) read and checksummed a whole filter of a
	 * megabyte or more again, and the create rate fell by a third past
	 * 300,000-500,000 files. A partition is 4 KiB; the small top level
	 * of each table stays pinned.
	 */
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(
	    t, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
	    t, 1);
	rocksdb_block_based_options_set_index_type(
	    t, rocksdb_block_based_table_index_type_two_level_index_search);
	rocksdb_block_based_options_set_partition_filters(t, 1);
	rocksdb_block_based_options_set_metadata_block_size(t, 4096);
	rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
	if (bloom)
		rocksdb_block_based_options_set_filter_policy(
		    t,
		    rocksdb_filterpolicy_create_bloom_full(STORE_BLOOM_BITS));
	rocksdb_options_set_block_based_table_factory(o, t);
	rocksdb_block_based_options_destroy(t);

	rocksdb_options_set_compression(o, rocksdb_no_compression);
	rocksdb_options_set_write_buffer_size(o, STORE_WRITE_BUFFER_BYTES);
	rocksdb_options_set_db_write_buffer_size(o, STORE_DB_WRITE_BUFFER_BYTES);
	/*
	 * Most point reads of a write miss: is this block id stored yet, had
	 * this block index an extent. A Bloom filter over the memtable's keys
	 * answers them without a search of its skip list (STORE_MEMTABLE_BLOOM
	 * of the memtable's size: a few hundred KiB).
	 */
	if (bloom) {
		rocksdb_options_set_memtable_whole_key_filtering(o, 1);
		rocksdb_options_set_memtable_prefix_bloom_size_ratio(
		    o, STORE_MEMTABLE_BLOOM);
	}
	rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);

	/*
	 * A read-only handle opens every table file at once so that it keeps
	 * a consistent view while a live writer compacts files away.
	 */
	rocksdb_options_set_max_open_files(
	    o, (flags & STORE_RDONLY) ? -1 : STORE_MAX_OPEN_FILES);
	rocksdb_options_set_max_background_jobs(o, STORE_BACKGROUND_JOBS);
	/* A rarely written family must not pin old WAL files for long. */
	rocksdb_options_set_max_total_wal_size(o, STORE_MAX_TOTAL_WAL_BYTES);
	rocksdb_options_set_keep_log_file_num(o, STORE_INFO_LOG_KEEP);
	rocksdb_options_set_max_log_file_size(o, STORE_INFO_LOG_BYTES);
	if (flags & STORE_CREATE) {
		rocksdb_options_set_create_if_missing(o, 1);
		rocksdb_options_set_create_missing_column_families(o, 1);
		rocksdb_options_set_error_if_exists(o, 1);
	}
	return o;
}

static int store_db_open(struct store *st, enum store_open_flags flags)
{
	rocksdb_options_t *opts[1 + STORE_CF_COUNT] = {NULL};
	char *db = NULL, *err = NULL;
	int ret = -ENOMEM;

	db = store_join(st->path, "db");
	if (!db)
		goto out;
	st->cache = rocksdb_cache_create_lru(STORE_CACHE_BYTES);
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		opts[i] = store_options(st, store_cf_bloom[i], flags);

	if (flags & STORE_RDONLY)
		st->db = rocksdb_open_for_read_only_column_families(
		    opts[0], db, (int)ARRAY_SIZE(store_cf_names),
		    store_cf_names, (const rocksdb_options_t *const *)opts,
		    st->cf, 0, &err);
	else
		st->db = rocksdb_open_column_families(
		    opts[0], db, (int)ARRAY_SIZE(store_cf_names),
		    store_cf_names, (const rocksdb_options_t *const *)opts,
		    st->cf, &err);
	if (err) {
		st->db = NULL;
		memset(st->cf, 0, sizeof(st->cf));
		ret = store_open_err(st->path, err);
		goto out;
	}

	st->ro = rocksdb_readoptions_create();
	st->wo = rocksdb_writeoptions_create();
	st->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo_sync, 1);
	ret = 0;
out:
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (opts[i])
			rocksdb_options_destroy(opts[i]);
	free(db);
	return ret;
}

static struct store_seg *store_seg_peek(struct store *st, uint32_t nr)
{
	struct store_seg_chunk *c;

	c = atomic_load_explicit(&st->seg_tab[nr >> STORE_SEG_CHUNK_BITS],
				 memory_order_acquire);
	if (!c)
		return NULL;
	return atomic_load_explicit(&c->seg[nr & (STORE_SEG_CHUNK - 1)],
				    memory_order_acquire);
}

/*
 * Find segment nr, opening it (and with create, creating it durably) on a
 * miss; seg_lock held. -ENOENT if it does not exist and create is false.
 */
static int store_seg_get_locked(struct store *st, uint32_t nr, bool create,
				struct store_seg **out)
{
	struct store_seg_chunk *c;
	struct store_seg *s;
	char name[STORE_SEG_NAME_BYTES];
	struct stat sb;
	int fd = -1, flags, ret;

	if (nr >= STORE_SEG_NR_MAX)
		return -ERANGE;
	s = store_seg_peek(st, nr);
	if (s) {
		*out = s;
		return 0;
	}
	snprintf(name, sizeof(name), "%08" PRIu32, nr);
	flags = (st->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (create)
		flags |= O_CREAT;
	fd = openat(st->seg_dirfd, name, flags, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret != -ENOENT)
			log_err("cannot open segment '%s/seg/%s': %s", st->path,
				name, strerror(-ret));
		goto out;
	}
	/* The name must be durable before a synced batch can point into it. */
	if (create && fsync(st->seg_dirfd) < 0) {
		ret = store_errno_io(errno);
		log_err("cannot sync directory '%s/seg': %s", st->path,
			strerror(errno));
		goto out;
	}
	if (fstat(fd, &sb) < 0) {
		ret = -EIO;
		goto out;
	}

	ret = -ENOMEM;
	c = atomic_load_explicit(&st->seg_tab[nr >> STORE_SEG_CHUNK_BITS],
				 memory_order_relaxed);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			goto out;
		atomic_store_explicit(&st->seg_tab[nr >> STORE_SEG_CHUNK_BITS],
				      c, memory_order_release);
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->fd = fd;
	atomic_init(&s->dfd, -2);
	atomic_init(&s->direct_refused, false);
	s->nr = nr;
	pthread_rwlock_init(&s->edge, NULL);
	pthread_mutex_init(&s->alloc_lock, NULL);
	atomic_init(&s->alloc_end, (uint64_t)sb.st_size);
	atomic_init(&s->tail, store_round_up((uint64_t)sb.st_size));
	atomic_init(&s->wgen, 0);
	atomic_init(&s->sgen, 0);
	atomic_init(&s->dgen, 0);
	atomic_init(&s->unstarted, 0);
	fd = -1;
	atomic_store_explicit(&c->seg[nr & (STORE_SEG_CHUNK - 1)], s,
			      memory_order_release);
	if (nr >= atomic_load_explicit(&st->seg_end, memory_order_relaxed))
		atomic_store_explicit(&st->seg_end, nr + 1,
				      memory_order_release);
	*out = s;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* As store_seg_get_locked, lock-free when the segment is already open. */
static int store_seg_get(struct store *st, uint32_t nr, bool create,
			 struct store_seg **out)
{
	struct store_seg *s;
	int ret;

	if (nr >= STORE_SEG_NR_MAX)
		return -ERANGE;
	s = store_seg_peek(st, nr);
	if (s) {
		*out = s;
		return 0;
	}
	pthread_mutex_lock(&st->seg_lock);
	ret = store_seg_get_locked(st, nr, create, out);
	pthread_mutex_unlock(&st->seg_lock);
	return ret;
}

/*
 * Allocate s ahead of an append that reaches need (advice: an append the
 * space could not be allocated for extends the file as it writes).
 */
static void store_seg_prealloc(struct store *st, struct store_seg *s,
			       uint64_t need)
{
	uint64_t end;

	pthread_mutex_lock(&s->alloc_lock);
	end = atomic_load_explicit(&s->alloc_end, memory_order_relaxed);
	if (need > end && !s->alloc_refused && !s->retired) {
		uint64_t want = MIN(STORE_SEG_MAX, need + STORE_PREALLOC_BYTES);
		struct statvfs sv;
		int r;

		if (fstatvfs(s->fd, &sv) < 0 ||
		    (uint64_t)sv.f_bavail * sv.f_frsize <
			STORE_PREALLOC_FLOOR + (want - end)) {
			pthread_mutex_unlock(&s->alloc_lock);
			return;	/* the append extends the file */
		}
		do {
			r = fallocate(s->fd, 0, (off_t)end, (off_t)(want - end));
		} while (r < 0 && errno == EINTR);
		if (r < 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
			s->alloc_refused = true;
			log_dbg(LOG_DBG_STORE, "store '%s': segment %08" PRIu32
				" cannot be allocated ahead", st->path, s->nr);
		}
		/* Not retried before the next window, even after ENOSPC. */
		atomic_store_explicit(&s->alloc_end, want, memory_order_relaxed);
	}
	pthread_mutex_unlock(&s->alloc_lock);
}

/* Cut s's file at end, giving back what lies past it: false if refused. */
static bool store_seg_cut(struct store *st, struct store_seg *s, uint64_t end)
{
	if (ftruncate(s->fd, (off_t)end) < 0) {
		log_warn("store '%s': cannot give back the space allocated "
			 "ahead in segment %08" PRIu32 ": %s",
			 st->path, s->nr, strerror(errno));
		return false;
	}
	atomic_store_explicit(&s->alloc_end, end, memory_order_relaxed);
	return true;
}

/*
 * Give back what s holds allocated beyond its appends, and allocate no
 * more ahead in it (it rolled away, or the store closes). Exclusive on the
 * edge lock, so no append is between its reservation and its write: one
 * reserved later lies past the new end and writes it again.
 */
static void store_seg_trim(struct store *st, struct store_seg *s)
{
	uint64_t tail;

	pthread_rwlock_wrlock(&s->edge);
	pthread_mutex_lock(&s->alloc_lock);
	s->retired = true;
	tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
	if (atomic_load_explicit(&s->alloc_end, memory_order_relaxed) > tail)
		(void)store_seg_cut(st, s, tail);
	pthread_mutex_unlock(&s->alloc_lock);
	pthread_rwlock_unlock(&s->edge);
}

/*
 * Where appends to s resume when it is opened for writing: after the last
 * byte written, not at the end of space allocated ahead and left unused by
 * a crash (it reads as a hole; only the last two windows can be such).
 * A record that its location names and that did not reach the disk is
 * either in no durable batch, or logged for redo, and writing it again
 * moves the tail past it (store_seg_redo). Where the file system cannot
 * tell holes from data, the end of the file is the answer, as before.
 */
static void store_seg_find_tail(struct store *st, struct store_seg *s)
{
	uint64_t size = atomic_load_explicit(&s->alloc_end,
					     memory_order_relaxed);
	uint64_t from = size > 2 * STORE_PREALLOC_BYTES
			    ? size - 2 * STORE_PREALLOC_BYTES
			    : 0;
	uint64_t end = from;
	off_t pos = (off_t)from;

	/* The extent map settled: whatever the page cache holds is on disk. */
	if (fdatasync(s->fd) < 0)
		return;
	while ((uint64_t)pos < size) {
		off_t d = lseek(s->fd, pos, SEEK_DATA), h;

		if (d < 0) {
			if (errno != ENXIO)
				end = size;
			break;
		}
		h = lseek(s->fd, d, SEEK_HOLE);
		if (h < 0) {
			end = size;
			break;
		}
		end = (uint64_t)h;
		pos = h;
	}
	end = store_round_up(end);
	if (end >= size || !store_seg_cut(st, s, end))
		return;
	log_info("store '%s': segment %08" PRIu32 " gave back %" PRIu64
		 " bytes allocated ahead of appends before a crash",
		 st->path, s->nr, size - end);
	atomic_store_explicit(&s->tail, end, memory_order_relaxed);
}

/* Find the highest segment and make it the active one (writable stores). */
static int store_seg_init(struct store *st)
{
	struct store_seg *s;
	struct dirent *de;
	uint32_t hi = 0;
	DIR *d;
	char *p;
	int fd, ret;

	st->seg_tab = calloc(STORE_SEG_CHUNKS, sizeof(*st->seg_tab));
	if (!st->seg_tab)
		return -ENOMEM;
	p = store_join(st->path, "seg");
	if (!p)
		return -ENOMEM;
	st->seg_dirfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(p);
	if (st->seg_dirfd < 0) {
		log_err("cannot open '%s/seg': %s", st->path, strerror(errno));
		return -EIO;
	}
	if (st->rdonly)
		return 0;

	fd = dup(st->seg_dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		unsigned long v;

		if (strlen(de->d_name) != 8 ||
		    strspn(de->d_name, "0123456789") != 8)
			continue;
		v = strtoul(de->d_name, NULL, 10);
		if (v < STORE_SEG_NR_MAX && v > hi)
			hi = (uint32_t)v;
	}
	closedir(d);
	if (hi == 0)
		hi = 1; /* numbering starts at 1: a zeroed loc is never valid */
	ret = store_seg_get(st, hi, true, &s);
	if (ret < 0)
		return ret == -ERANGE ? -EUCLEAN : ret;
	store_seg_find_tail(st, s);
	atomic_store_explicit(&st->active, s, memory_order_release);
	return 0;
}

/*
 * fdatasync every segment with appends not yet covered by an fdatasync:
 * all of them, or (all false) only those whose durability rests on it.
 */
static int store_seg_sync_some(struct store *st, bool all)
{
	uint32_t end;
	int ret;

	if (!st->seg_tab)
		return 0;
	ret = atomic_load_explicit(&st->seg_sync_err, memory_order_acquire);
	if (ret)
		return ret;
	end = atomic_load_explicit(&st->seg_end, memory_order_acquire);
	for (uint32_t nr = 0; nr < end; nr++) {
		struct store_seg *s = store_seg_peek(st, nr);
		uint64_t g, cur;

		if (!s)
			continue;
		g = atomic_load_explicit(all ? &s->wgen : &s->dgen,
					 memory_order_acquire);
		if (atomic_load_explicit(&s->sgen, memory_order_acquire) >= g)
			continue;
		g = atomic_load_explicit(&s->wgen, memory_order_acquire);
		if (fdatasync(s->fd) < 0) {
			int zero = 0;

			ret = store_errno_io(errno);
			if (atomic_compare_exchange_strong(&st->seg_sync_err,
							   &zero, ret))
				log_err("cannot sync segment '%s/seg/%08" PRIu32
					"': %s; every sync of this store now "
					"fails until it is opened again (what "
					"fsync acknowledged stays in its redo "
					"log)", st->path, nr, strerror(errno));
			return ret;
		}
		cur = atomic_load_explicit(&s->sgen, memory_order_relaxed);
		while (cur < g && !atomic_compare_exchange_weak_explicit(
				      &s->sgen, &cur, g, memory_order_release,
				      memory_order_relaxed))
			;
	}
	return ret;
}

static int store_seg_sync(struct store *st)
{
	return store_seg_sync_some(st, false);
}

int store_seg_sync_all(struct store *st)
{
	if (st->rdonly)
		return 0;
	return store_seg_sync_some(st, true);
}

static void store_free(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(st->cf); i++)
		if (st->cf[i])
			rocksdb_column_family_handle_destroy(st->cf[i]);
	if (st->db)
		rocksdb_close(st->db);
	if (st->lock_fd >= 0)
		close(st->lock_fd);	/* releases the flock, after RocksDB's */
	if (st->ro)
		rocksdb_readoptions_destroy(st->ro);
	if (st->wo)
		rocksdb_writeoptions_destroy(st->wo);
	if (st->wo_sync)
		rocksdb_writeoptions_destroy(st->wo_sync);
	if (st->cache)
		rocksdb_cache_destroy(st->cache);
	if (st->seg_tab) {
		for (uint32_t i = 0; i < STORE_SEG_CHUNKS; i++) {
			struct store_seg_chunk *c =
			    atomic_load(&st->seg_tab[i]);

			if (!c)
				continue;
			for (uint32_t j = 0; j < STORE_SEG_CHUNK; j++) {
				struct store_seg *s = atomic_load(&c->seg[j]);

				if (!s)
					continue;
				close(s->fd);
				if (atomic_load(&s->dfd) >= 0)
					close(atomic_load(&s->dfd));
				pthread_rwlock_destroy(&s->edge);
				pthread_mutex_destroy(&s->alloc_lock);
				free(s);
			}
			free(c);
		}
		free(st->seg_tab);
	}
	if (st->seg_dirfd >= 0)
		close(st->seg_dirfd);
	if (st->seg_lock_init) {
		pthread_mutex_destroy(&st->seg_lock);
		pthread_mutex_destroy(&st->stage_lock);
	}
	for (int q = 0; q < st->nstage; q++)
		free(st->stage[q]);
	free(st->path);
	free(st);
}

/*
 * Our own lock, taken before RocksDB is opened: a second writer is refused
 * without RocksDB touching any of the holder's files (it would rotate the
 * info log before finding its LOCK taken).
 */
static int store_lock(const char *dir, bool shared, int *fdp)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/seg", dir);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
		int err = errno;

		close(fd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	*fdp = fd;
	return 0;
}

int store_busy(const char *dir)
{
	int fd = -1, ret;

	ret = store_lock(dir, false, &fd);
	if (ret == 0)
		close(fd);
	return ret == -ENOENT ? 0 : ret;
}

int store_open(const char *dir, enum store_open_flags flags, struct store **out)
{
	struct store *st = NULL;
	int ret = -EINVAL;

	*out = NULL;
	if ((flags & STORE_RDONLY) && (flags & STORE_CREATE))
		goto out;
	ret = -ENOMEM;
	st = calloc(1, sizeof(*st));
	if (!st)
		goto out;
	st->seg_dirfd = -1;
	st->lock_fd = -1;
	st->rdonly = flags & STORE_RDONLY;
	atomic_flag_clear(&st->punch_warned);
	st->path = strdup(dir);
	if (!st->path)
		goto out;
	ret = -pthread_mutex_init(&st->seg_lock, NULL);
	if (ret < 0)
		goto out;
	ret = -pthread_mutex_init(&st->stage_lock, NULL);
	if (ret < 0) {
		pthread_mutex_destroy(&st->seg_lock);
		goto out;
	}
	st->seg_lock_init = true;

	if (flags & STORE_CREATE)
		ret = store_mkdirs(dir);
	else
		ret = store_check_dirs(dir);
	if (ret < 0)
		goto out;
	if (!st->rdonly || (flags & STORE_SHARED)) {
		ret = store_lock(dir, st->rdonly, &st->lock_fd);
		if (ret < 0)
			goto out;
	}
	ret = store_db_open(st, flags);
	if (ret < 0)
		goto out;
	ret = store_seg_init(st);
	if (ret < 0)
		goto out;
	log_dbg(LOG_DBG_STORE, "opened store '%s'%s", dir,
		st->rdonly ? " read-only" : "");
	*out = st;
	st = NULL;
	ret = 0;
out:
	store_free(st);
	return ret;
}

void store_close(struct store *st)
{
	rocksdb_flushoptions_t *fo;
	char *err = NULL;

	if (!st)
		return;
	if (st->db && !st->rdonly) {
		/* Segments, then the WAL, then memtables: nothing to replay */
		if (store_seg_sync(st) < 0)
			log_err("closing store '%s': segments not synced",
				st->path);
		if (atomic_load(&st->active))
			store_seg_trim(st, atomic_load(&st->active));
		rocksdb_flush_wal(st->db, 1, &err);
		if (err) {
			(void)store_err(st->path,
					"cannot sync the WAL of store", err);
			err = NULL;
		}
		fo = rocksdb_flushoptions_create();
		rocksdb_flushoptions_set_wait(fo, 1);
		for (size_t i = 0; i < ARRAY_SIZE(st->cf); i++) {
			rocksdb_flush_cf(st->db, fo, st->cf[i], &err);
			if (err) {
				(void)store_err(st->path, "cannot flush store",
						err);
				err = NULL;
			}
		}
		rocksdb_flushoptions_destroy(fo);
	}
	log_dbg(LOG_DBG_STORE, "closing store '%s'", st->path);
	store_free(st);
}

bool store_rdonly(const struct store *st)
{
	return st->rdonly;
}

const char *store_path(const struct store *st)
{
	return st->path;
}

int store_get(struct store *st, enum store_cf cf, const void *key, size_t klen,
	      void **val, size_t *vlen)
{
	rocksdb_pinnableslice_t *ps;
	const char *v;
	char *err = NULL;
	void *copy;
	size_t n;

	*val = NULL;
	*vlen = 0;
	ps = rocksdb_get_pinned_cf(st->db, st->ro, store_cfh(st, cf), key, klen,
				   &err);
	if (err)
		return store_err(st->path, "cannot read store", err);
	if (!ps)
		return -ENOENT;
	v = rocksdb_pinnableslice_value(ps, &n);
	copy = malloc(n ? n : 1);
	if (!copy) {
		rocksdb_pinnableslice_destroy(ps);
		return -ENOMEM;
	}
	memcpy(copy, v, n);
	rocksdb_pinnableslice_destroy(ps);
	*val = copy;
	*vlen = n;
	return 0;
}

int store_get_buf(struct store *st, enum store_cf cf, const void *key,
		  size_t klen, void *buf, size_t cap, size_t *vlen)
{
	rocksdb_pinnableslice_t *ps;
	const char *v;
	char *err = NULL;
	size_t n;
	int ret = 0;

	*vlen = 0;
	ps = rocksdb_get_pinned_cf(st->db, st->ro, store_cfh(st, cf), key, klen,
				   &err);
	if (err)
		return store_err(st->path, "cannot read store", err);
	if (!ps)
		return -ENOENT;
	v = rocksdb_pinnableslice_value(ps, &n);
	*vlen = n;
	if (n > cap)
		ret = -ENOSPC;
	else if (n)
		memcpy(buf, v, n);
	rocksdb_pinnableslice_destroy(ps);
	return ret;
}

int store_get_many(struct store *st, enum store_cf cf, size_t n,
		   const char *const keys[], const size_t klens[],
		   uint8_t *vals, size_t cap, size_t vlens[], int rets[])
{
	rocksdb_pinnableslice_t **ps;
	char **errs;
	int ret = 0;

	ps = calloc(n, sizeof(*ps));
	errs = calloc(n, sizeof(*errs));
	if (!ps || !errs) {
		free(ps);
		free(errs);
		return -ENOMEM;
	}
	rocksdb_batched_multi_get_cf(st->db, st->ro, store_cfh(st, cf), n,
				     keys, klens, ps, errs, false);
	for (size_t k = 0; k < n; k++) {
		const char *v;
		size_t len = 0;

		vlens[k] = 0;
		if (errs[k]) {
			rets[k] = -EIO;
			if (ret == 0)
				ret = store_err(st->path, "cannot read store",
						errs[k]);
			else
				free(errs[k]);
		} else if (!ps[k]) {
			rets[k] = -ENOENT;
		} else {
			v = rocksdb_pinnableslice_value(ps[k], &len);
			vlens[k] = len;
			rets[k] = len > cap ? -ENOSPC : 0;
			if (len <= cap && len)
				memcpy(vals + k * cap, v, len);
		}
		if (ps[k])
			rocksdb_pinnableslice_destroy(ps[k]);
	}
	free(ps);
	free(errs);
	return ret;
}

int store_batch_new(struct store_batch **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

void store_batch_clear(struct store_batch *b)
{
	b->len = 0;
	b->count = 0;
	b->err = 0;
}

static void store_batch_add(struct store_batch *b, enum store_op_type type,
			    enum store_cf cf, const void *a, size_t alen,
			    const void *bb, size_t blen)
{
	struct store_op op;
	size_t need;

	assert((unsigned)cf < STORE_CF_COUNT);
	if (b->err)
		return;
	if (alen > UINT32_MAX || blen > UINT32_MAX) {
		b->err = -EINVAL;
		return;
	}
	need = sizeof(op) + alen + blen;
	if (need > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *p;

		while (cap - b->len < need) {
			if (cap > SIZE_MAX / 2) {
				b->err = -ENOMEM;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->buf, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->buf = p;
		b->cap = cap;
	}
	op.type = (uint8_t)type;
	op.cf = (uint8_t)cf;
	op.alen = (uint32_t)alen;
	op.blen = (uint32_t)blen;
	memcpy(b->buf + b->len, &op, sizeof(op));
	b->len += sizeof(op);
	if (alen)
		memcpy(b->buf + b->len, a, alen);
	b->len += alen;
	if (blen)
		memcpy(b->buf + b->len, bb, blen);
	b->len += blen;
	b->count++;
}

void store_batch_put(struct store_batch *b, enum store_cf cf, const void *key,
		     size_t klen, const void *val, size_t vlen)
{
	store_batch_add(b, STORE_OP_PUT, cf, key, klen, val, vlen);
}

void store_batch_delete(struct store_batch *b, enum store_cf cf,
			const void *key, size_t klen)
{
	store_batch_add(b, STORE_OP_DELETE, cf, key, klen, NULL, 0);
}

void store_batch_delete_range(struct store_batch *b, enum store_cf cf,
			      const void *begin, size_t blen, const void *end,
			      size_t elen)
{
	store_batch_add(b, STORE_OP_DELETE_RANGE, cf, begin, blen, end, elen);
}

size_t store_batch_count(const struct store_batch *b)
{
	return b->count;
}

static rocksdb_writebatch_t *store_batch_build(const struct store *st,
					       const struct store_batch *b)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	size_t pos = 0;

	while (pos < b->len) {
		struct store_op op;
		const char *a, *bb;
		rocksdb_column_family_handle_t *h;

		memcpy(&op, b->buf + pos, sizeof(op));
		pos += sizeof(op);
		a = (const char *)b->buf + pos;
		bb = a + op.alen;
		pos += (size_t)op.alen + op.blen;
		h = store_cfh(st, (enum store_cf)op.cf);
		switch (op.type) {
		case STORE_OP_PUT:
			rocksdb_writebatch_put_cf(wb, h, a, op.alen, bb,
						  op.blen);
			break;
		case STORE_OP_DELETE:
			rocksdb_writebatch_delete_cf(wb, h, a, op.alen);
			break;
		case STORE_OP_DELETE_RANGE:
			rocksdb_writebatch_delete_range_cf(wb, h, a, op.alen,
							   bb, op.blen);
			break;
		default:
			assert(0);
		}
	}
	return wb;
}

int store_write(struct store *st, struct store_batch *b, bool sync)
{
	rocksdb_writebatch_t *wb = NULL;
	char *err = NULL;
	int ret;

	if (st->rdonly)
		return -EROFS;
	if (b->err)
		return b->err;
	if (sync) {
		ret = store_seg_sync(st);
		if (ret < 0)
			return ret;
	}
	wb = store_batch_build(st, b);
	rocksdb_write(st->db, sync ? st->wo_sync : st->wo, wb, &err);
	rocksdb_writebatch_destroy(wb);
	if (err)
		return store_err(st->path, "cannot write to store", err);
	return 0;
}

int store_sync(struct store *st)
{
	char *err = NULL;
	int ret;

	if (st->rdonly)
		return 0;
	ret = store_seg_sync(st);
	if (ret < 0)
		return ret;
	rocksdb_flush_wal(st->db, 1, &err);
	if (err)
		return store_err(st->path, "cannot sync the WAL of store", err);
	return 0;
}

int store_iter_new(struct store *st, enum store_cf cf, struct store_iter **out)
{
	struct store_iter *it;

	*out = NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->st = st;
	it->it = rocksdb_create_iterator_cf(st->db, st->ro, store_cfh(st, cf));
	*out = it;
	return 0;
}

void store_iter_free(struct store_iter *it)
{
	if (!it)
		return;
	rocksdb_iter_destroy(it->it);
	free(it);
}

void store_iter_seek(struct store_iter *it, const void *key, size_t klen)
{
	rocksdb_iter_seek(it->it, key, klen);
}

void store_iter_seek_first(struct store_iter *it)
{
	rocksdb_iter_seek_to_first(it->it);
}

int store_last_u64(struct store *st, enum store_cf cf, uint64_t *out)
{
	struct store_iter *it = NULL;
	int ret;

	ret = store_iter_new(st, cf, &it);
	if (ret)
		return ret;
	store_iter_seek_last(it);
	ret = -ENOENT;
	if (store_iter_valid(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);

		if (klen == 8) {
			*out = get_be64(k);
			ret = 0;
		}
	}
	if (store_iter_status(it))
		ret = store_iter_status(it);
	store_iter_free(it);
	return ret;
}

void store_iter_seek_last(struct store_iter *it)
{
	rocksdb_iter_seek_to_last(it->it);
}

bool store_iter_valid(const struct store_iter *it)
{
	return rocksdb_iter_valid(it->it) != 0;
}

void store_iter_next(struct store_iter *it)
{
	if (rocksdb_iter_valid(it->it))
		rocksdb_iter_next(it->it);
}

void store_iter_prev(struct store_iter *it)
{
	if (rocksdb_iter_valid(it->it))
		rocksdb_iter_prev(it->it);
}

const void *store_iter_key(const struct store_iter *it, size_t *klen)
{
	*klen = 0;
	if (!rocksdb_iter_valid(it->it))
		return NULL;
	return rocksdb_iter_key(it->it, klen);
}

const void *store_iter_value(const struct store_iter *it, size_t *vlen)
{
	*vlen = 0;
	if (!rocksdb_iter_valid(it->it))
		return NULL;
	return rocksdb_iter_value(it->it, vlen);
}

int store_iter_status(const struct store_iter *it)
{
	char *err = NULL;

	rocksdb_iter_get_error(it->it, &err);
	if (err)
		return store_err(it->st->path, "cannot iterate over store",
				 err);
	return 0;
}

uint64_t store_rec_sum(const uint8_t id[static 32], const void *sealed,
		      size_t len)
{
	XXH3_state_t xs;

	XXH3_INITSTATE(&xs);
	XXH3_64bits_reset(&xs);
	XXH3_64bits_update(&xs, id, 32);
	XXH3_64bits_update(&xs, sealed, len);
	return XXH3_64bits_digest(&xs);
}

static void *store_unconst(const void *p)
{
	return (void *)(uintptr_t)p;
}

/* pwritev all of iov at off; -ENOSPC or -EIO. */
static int store_pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, iov, cnt, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return store_errno_io(errno);
		}
		if (n == 0)
			return -ENOSPC;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int store_punch(int fd, uint64_t off, uint64_t len)
{
	int r;

	do {
		r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len);
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

/* Take a full segment out of service: the first caller rolls to the next. */
static int store_seg_roll(struct store *st, struct store_seg *full)
{
	struct store_seg *s;
	int ret = 0;

	pthread_mutex_lock(&st->seg_lock);
	if (atomic_load_explicit(&st->active, memory_order_acquire) != full)
		goto out;
	ret = store_seg_get_locked(st, full->nr + 1, true, &s);
	if (ret == -ERANGE)
		ret = -ENOSPC;
	if (ret < 0)
		goto out;
	atomic_store_explicit(&st->active, s, memory_order_release);
	log_dbg(LOG_DBG_STORE, "store '%s': new segment %08" PRIu32, st->path,
		s->nr);
	store_seg_trim(st, full);
out:
	pthread_mutex_unlock(&st->seg_lock);
	return ret;
}

int store_seg_append(struct store *st, const uint8_t id[static 32],
		     const void *sealed, size_t len, struct store_loc *loc)
{
	if (st->rdonly)
		return -EROFS;
	if (len > STORE_SEG_MAX - STORE_SEG_HDR_BYTES)
		return -EINVAL;
	return store_seg_append_batch(st, 1, &id, &sealed, &len, NULL, loc);
}

/*
 * Records of one flush go to one contiguous run of the active segment with
 * one pwritev per chunk: the pool threads that sealed them no longer queue
 * on the segment file's inode lock, and only the chunk's last page is
 * partial (the kernel zeroes the rest of a page it has to create).
 */
#define STORE_BATCH_RECS  256	/* 3 iovecs each: under IOV_MAX */
#define STORE_BATCH_BYTES (8u << 20)

/*
 * Write-behind: once this much has been appended to a segment, its
 * writeback is started (without waiting). Otherwise the kernel keeps
 * appended bytes dirty until its background threshold (gigabytes here),
 * and the fsync that ends a large write then writes them all while the
 * writer waits, instead of while it was still sealing.
 */
#define STORE_WRITE_BEHIND_BYTES (8u << 20)

static void store_seg_write_behind(struct store_seg *s, uint64_t bytes)
{
	uint64_t n = atomic_fetch_add_explicit(&s->unstarted, bytes,
					       memory_order_relaxed) + bytes;

	if (n < STORE_WRITE_BEHIND_BYTES)
		return;
	if (!atomic_compare_exchange_strong_explicit(&s->unstarted, &n, 0,
						     memory_order_relaxed,
						     memory_order_relaxed))
		return;	/* another append got there first */
	/* Advice only: fdatasync stays what makes the bytes durable. */
	(void)sync_file_range(s->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void store_rec_header(uint8_t hdr[static STORE_SEG_HDR_BYTES],
			     const uint8_t id[static 32], size_t len,
			     uint64_t sum)
{
	put_be32(hdr, STORE_SEG_REC_MAGIC);
	put_be32(hdr + 4, (uint32_t)len);
	memcpy(hdr + 8, id, 32);
	put_be64(hdr + 40, sum);
}

static int store_seg_direct(struct store *st, struct store_seg *s);

/*
 * Whether appends to the active segment may go direct: the file system
 * takes O_DIRECT there, and pages are STORE_PAGE bytes, so that a direct
 * chunk never shares a page-cache page with a buffered record (with larger
 * pages the kernel could keep a stale copy of what the direct write put
 * on disk, and store_punch_edges would judge a page by it).
 */
static bool store_direct_appends(struct store *st)
{
	static long page;
	struct store_seg *s;

	if (!page)
		page = sysconf(_SC_PAGESIZE);
	if (page != (long)STORE_PAGE)
		return false;
	s = atomic_load_explicit(&st->active, memory_order_acquire);
	return store_seg_direct(st, s) >= 0 &&
	       !atomic_load_explicit(&s->direct_refused, memory_order_relaxed);
}

static void *store_stage_get(struct store *st)
{
	void *p = NULL;

	pthread_mutex_lock(&st->stage_lock);
	if (st->nstage > 0)
		p = st->stage[--st->nstage];
	pthread_mutex_unlock(&st->stage_lock);
	if (!p && posix_memalign(&p, STORE_PAGE, STORE_STAGE_BYTES) != 0)
		p = NULL;
	return p;
}

static void store_stage_put(struct store *st, void *p)
{
	pthread_mutex_lock(&st->stage_lock);
	if (st->nstage < STORE_STAGE_KEEP) {
		st->stage[st->nstage++] = p;
		p = NULL;
	}
	pthread_mutex_unlock(&st->stage_lock);
	free(p);
}

/*
 * Write a chunk's records, laid out in buf (len bytes, page-aligned), at
 * off through the segment's O_DIRECT descriptor. 1 if written, 0 if this
 * file system or this I/O cannot go direct (nothing is lost: the caller
 * writes the same bytes through the page cache), -ENOSPC, -EIO.
 */
static int store_write_direct(struct store *st, struct store_seg *s,
			      const uint8_t *buf, size_t len, uint64_t off)
{
	int fd = store_seg_direct(st, s);
	size_t done = 0;

	if (fd < 0)
		return 0;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done,
				   (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == EOPNOTSUPP ||
			      errno == ENOTSUP)) {
			atomic_store(&s->direct_refused, true);
			return 0;
		}
		if (n < 0)
			return store_errno_io(errno);
		if (n == 0)
			return -ENOSPC;
		if ((size_t)n % STORE_PAGE && (size_t)n < len - done)
			return 0;	/* a short write left unaligned */
		done += (size_t)n;
	}
	return 1;
}

/*
 * Reserve span bytes of s for an append, on a page boundary if paged:
 * false if they would run past STORE_SEG_MAX (the segment must roll).
 */
static bool store_seg_reserve(struct store_seg *s, uint64_t span, bool paged,
			      uint64_t *off)
{
	uint64_t cur;

	if (!paged) {
		*off = atomic_fetch_add_explicit(&s->tail, span,
						 memory_order_relaxed);
		return *off + span <= STORE_SEG_MAX;
	}
	cur = atomic_load_explicit(&s->tail, memory_order_relaxed);
	do {
		*off = (cur + STORE_PAGE - 1) / STORE_PAGE * STORE_PAGE;
		if (*off + span > STORE_SEG_MAX)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(
	    &s->tail, &cur, *off + span, memory_order_relaxed,
	    memory_order_relaxed));
	return true;
}

/*
 * A chunk of records goes to one contiguous run of the active segment.
 * Large chunks not logged for redo go O_DIRECT: copied into an aligned
 * buffer (a memcpy costs a fraction of the kernel's copy into the page
 * cache and its writeback), written at a page-aligned offset and padded to
 * a whole page; the zeros before and after are what a keyless scan skips
 * anyway. The rest, and every chunk where O_DIRECT is refused, go through
 * the page cache with one pwritev.
 */
static int store_seg_append_chunk(struct store *st, size_t n,
				  const uint8_t *const ids[],
				  const void *const sealed[],
				  const size_t lens[], const uint64_t sums[],
				  struct store_loc locs[], bool redo)
{
	uint64_t g;

	uint8_t (*hdr)[STORE_SEG_HDR_BYTES];
	struct iovec *iov;
	struct store_seg *s;
	uint64_t total = 0, off, pos, span;
	uint8_t *stage = NULL;
	bool direct;
	int ret;

	hdr = malloc(n * sizeof(*hdr));
	iov = malloc(3 * n * sizeof(*iov));
	if (!hdr || !iov) {
		free(hdr);
		free(iov);
		return -ENOMEM;
	}
	for (size_t q = 0; q < n; q++) {
		span = store_round_up(STORE_SEG_HDR_BYTES + lens[q]);
		store_rec_header(hdr[q], ids[q], lens[q],
				 sums ? sums[q]
				      : store_rec_sum(ids[q], sealed[q], lens[q]));
		iov[3 * q].iov_base = hdr[q];
		iov[3 * q].iov_len = STORE_SEG_HDR_BYTES;
		iov[3 * q + 1].iov_base = store_unconst(sealed[q]);
		iov[3 * q + 1].iov_len = lens[q];
		iov[3 * q + 2].iov_base = store_unconst(store_zero);
		iov[3 * q + 2].iov_len = span - STORE_SEG_HDR_BYTES - lens[q];
		total += span;
	}
	span = total;
	if (!redo && total >= STORE_DIRECT_MIN &&
	    total <= STORE_STAGE_BYTES - STORE_PAGE && store_direct_appends(st))
		stage = store_stage_get(st);
	if (stage) {
		uint8_t *p = stage;

		span = (total + STORE_PAGE - 1) / STORE_PAGE * STORE_PAGE;
		for (size_t q = 0; q < 3 * n; q++) {
			memcpy(p, iov[q].iov_base, iov[q].iov_len);
			p += iov[q].iov_len;
		}
		memset(p, 0, span - total);
	}
	for (;;) {
		s = atomic_load_explicit(&st->active, memory_order_acquire);
		pthread_rwlock_rdlock(&s->edge);
		if (stage && atomic_load_explicit(&s->direct_refused,
						  memory_order_relaxed)) {
			store_stage_put(st, stage);	/* rolled to such a one */
			stage = NULL;
			span = total;
		}
		if (store_seg_reserve(s, span, stage != NULL, &off)) {
			if (off + span > atomic_load_explicit(
						  &s->alloc_end,
						  memory_order_relaxed))
				store_seg_prealloc(st, s, off + span);
			break;
		}
		pthread_rwlock_unlock(&s->edge);
		ret = store_seg_roll(st, s);
		if (ret < 0)
			goto out;
	}
	ret = stage ? store_write_direct(st, s, stage, span, off) : 0;
	direct = ret > 0;
	if (direct)
		ret = 0;
	else if (ret == 0)	/* not direct, or refused: the same bytes */
		ret = store_pwritev_all(s->fd, iov, (int)(3 * n), off);
	pthread_rwlock_unlock(&s->edge);
	if (ret < 0) {
		log_err("cannot write segment '%s/seg/%08" PRIu32
			"' at %" PRIu64 ": %s",
			st->path, s->nr, off, strerror(-ret));
		(void)store_punch(s->fd, off, span);
		goto out;
	}
	if (!direct)
		store_seg_write_behind(s, total);
	g = atomic_fetch_add_explicit(&s->wgen, 1, memory_order_release) + 1;
	if (!redo) {
		uint64_t cur = atomic_load_explicit(&s->dgen,
						    memory_order_relaxed);

		while (cur < g && !atomic_compare_exchange_weak_explicit(
				      &s->dgen, &cur, g, memory_order_release,
				      memory_order_relaxed))
			;
	}
	pos = off;
	for (size_t q = 0; q < n; q++) {
		locs[q].seg = s->nr;
		locs[q].len = (uint32_t)lens[q];
		locs[q].off = pos;
		pos += store_round_up(STORE_SEG_HDR_BYTES + lens[q]);
	}
out:
	if (stage)
		store_stage_put(st, stage);
	free(hdr);
	free(iov);
	return ret;
}

static int store_seg_append_many(struct store *st, size_t n,
				 const uint8_t *const ids[],
				 const void *const sealed[], const size_t lens[],
				 const uint64_t sums[], struct store_loc locs[],
				 bool redo)
{
	size_t q = 0;

	if (st->rdonly)
		return -EROFS;
	for (size_t k = 0; k < n; k++)
		if (lens[k] > STORE_BATCH_BYTES)
			return -EINVAL;
	while (q < n) {
		size_t m = 0;
		uint64_t bytes = 0;
		int ret;

		while (q + m < n && m < STORE_BATCH_RECS &&
		       bytes + lens[q + m] <= STORE_BATCH_BYTES) {
			bytes += store_round_up(STORE_SEG_HDR_BYTES +
						lens[q + m]);
			m++;
		}
		if (m == 0)
			m = 1;
		ret = store_seg_append_chunk(st, m, ids + q, sealed + q,
					     lens + q, sums ? sums + q : NULL,
					     locs + q, redo);
		if (ret) {
			/* Nothing is kept: the caller names no record. */
			for (size_t k = 0; k < q; k++)
				if (store_seg_free(st, &locs[k]))
					break;	/* garbage for fsck */
			return ret;
		}
		q += m;
	}
	return 0;
}

int store_seg_append_batch(struct store *st, size_t n,
			   const uint8_t *const ids[],
			   const void *const sealed[], const size_t lens[],
			   const uint64_t sums[], struct store_loc locs[])
{
	return store_seg_append_many(st, n, ids, sealed, lens, sums, locs,
				     false);
}

int store_seg_append_redo(struct store *st, size_t n,
			  const uint8_t *const ids[],
			  const void *const sealed[], const size_t lens[],
			  const uint64_t sums[], struct store_loc locs[])
{
	return store_seg_append_many(st, n, ids, sealed, lens, sums, locs,
				     true);
}

/* Validate a location against the segment table; -EUCLEAN if it cannot be. */
static int store_loc_check(struct store *st, const struct store_loc *loc,
			   struct store_seg **s)
{
	int ret;

	if (loc->off % STORE_SEG_ALIGN ||
	    loc->len > STORE_SEG_MAX - STORE_SEG_HDR_BYTES ||
	    loc->off > STORE_SEG_MAX - STORE_SEG_HDR_BYTES - loc->len) {
		log_err("store '%s': bad block location seg %08" PRIu32
			" off %" PRIu64 " len %" PRIu32 "; run fsck.embassyfs",
			st->path, loc->seg, loc->off, loc->len);
		return -EUCLEAN;
	}
	ret = store_seg_get(st, loc->seg, false, s);
	if (ret == -ENOENT || ret == -ERANGE) {
		log_err("store '%s': segment %08" PRIu32 " is missing; "
			"run fsck.embassyfs",
			st->path, loc->seg);
		return -EUCLEAN;
	}
	return ret < 0 ? -EIO : 0;
}

/*
 * What is wrong with a record, checked against the location and id that
 * name it: its header and, if sum, its XXH3 checksum. got is how many of
 * the record's bytes were read. NULL if nothing.
 */
static const char *store_rec_why(const struct store_loc *loc,
				 const uint8_t id[static 32],
				 const uint8_t *hdr, const uint8_t *sealed,
				 size_t got, bool sum)
{
	if (got < STORE_SEG_HDR_BYTES + (size_t)loc->len)
		return "record runs past the end of the segment";
	if (get_be32(hdr) != STORE_SEG_REC_MAGIC)
		return "bad record magic";
	if (get_be32(hdr + 4) != loc->len)
		return "record length differs from its location";
	if (memcmp(hdr + 8, id, 32))
		return "record holds another block id";
	if (sum && get_be64(hdr + 40) != store_rec_sum(id, sealed, loc->len))
		return "record checksum mismatch";
	return NULL;
}

/* store_rec_why, logged: -EUCLEAN on a mismatch. */
static int store_rec_check(struct store *st, const struct store_loc *loc,
			   const uint8_t id[static 32], const uint8_t *hdr,
			   const uint8_t *sealed, size_t got, bool sum)
{
	char hex[2 * STORE_ID_LOG_BYTES + 1];
	const char *why = store_rec_why(loc, id, hdr, sealed, got, sum);

	if (!why)
		return 0;
	log_err("corrupt block in store '%s' seg %08" PRIu32 " off %" PRIu64
		" id %s: %s; run fsck.embassyfs",
		st->path, loc->seg, loc->off,
		log_hex(hex, id, STORE_ID_LOG_BYTES), why);
	return -EUCLEAN;
}

/*
 * pread fd until len bytes or the end of the file; returns the bytes read.
 * -EINVAL is returned unlogged (an O_DIRECT read the file system refuses).
 */
static ssize_t store_seg_pread_fd(struct store *st, struct store_seg *s,
				  int fd, const struct iovec *iov0, int cnt,
				  uint64_t off, size_t len)
{
	struct iovec iov[2];
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		size_t skip = got;
		int k = 0;

		for (int q = 0; q < cnt; q++) {
			if (skip >= iov0[q].iov_len) {
				skip -= iov0[q].iov_len;
				continue;
			}
			iov[k].iov_base = (uint8_t *)iov0[q].iov_base + skip;
			iov[k++].iov_len = iov0[q].iov_len - skip;
			skip = 0;
		}
		n = preadv(fd, iov, k, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && fd != s->fd)
			return -EINVAL;
		if (n < 0) {
			log_err("cannot read segment '%s/seg/%08" PRIu32
				"' at %" PRIu64 ": %s",
				st->path, s->nr, off + got, strerror(errno));
			return -EIO;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static ssize_t store_seg_pread(struct store *st, struct store_seg *s,
			       const struct iovec *iov, int cnt, uint64_t off,
			       size_t len)
{
	return store_seg_pread_fd(st, s, s->fd, iov, cnt, off, len);
}

/*
 * Runs of records are read O_DIRECT, and large appends written so: the
 * page cache above the mount holds the plaintext, and a second copy of the
 * ciphertext below it costs a copy per byte and memory. -1 where the file
 * system refuses O_DIRECT (at open, or later an I/O whose buffer, offset
 * and length are all page-aligned), or where no descriptor is to be had
 * just now.
 */
static int store_seg_direct(struct store *st, struct store_seg *s)
{
	char name[16];
	int fd = atomic_load_explicit(&s->dfd, memory_order_acquire), want = -2;

	if (fd != -2)
		return fd;
	snprintf(name, sizeof(name), "%08" PRIu32, s->nr);
	fd = openat(st->seg_dirfd, name,
		    (st->rdonly ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno != EINVAL)
		return -1;	/* out of descriptors, say: try again later */
	if (fd < 0) {
		fd = -1;
		atomic_store(&s->direct_refused, true);
	}
	if (!atomic_compare_exchange_strong(&s->dfd, &want, fd)) {
		if (fd >= 0)
			close(fd);
		fd = want;
	}
	return fd;
}

static int store_seg_read_sum(struct store *st, const struct store_loc *loc,
			      const uint8_t id[static 32], void *buf, bool sum)
{
	uint8_t hdr[STORE_SEG_HDR_BYTES];
	struct store_seg *s;
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { buf, loc->len } };
	ssize_t got;
	int ret;

	ret = store_loc_check(st, loc, &s);
	if (ret < 0)
		return ret;
	got = store_seg_pread(st, s, iov, 2, loc->off,
			      STORE_SEG_HDR_BYTES + (size_t)loc->len);
	if (got < 0)
		return (int)got;
	return store_rec_check(st, loc, id, hdr, buf, (size_t)got, sum);
}

int store_seg_read(struct store *st, const struct store_loc *loc,
		   const uint8_t id[static 32], void *buf)
{
	return store_seg_read_sum(st, loc, id, buf, true);
}

int store_seg_read_authed(struct store *st, const struct store_loc *loc,
			  const uint8_t id[static 32], void *buf)
{
	return store_seg_read_sum(st, loc, id, buf, false);
}

int store_seg_rec_whole(struct store *st, const struct store_loc *loc,
			const uint8_t id[static 32])
{
	uint8_t hdr[STORE_SEG_HDR_BYTES], *cur;
	struct iovec iov[2];
	struct store_seg *s;
	ssize_t got;
	int ret;

	ret = store_loc_check(st, loc, &s);
	if (ret < 0)
		return ret;
	cur = malloc(loc->len ? loc->len : 1);
	if (!cur)
		return -ENOMEM;
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ cur, loc->len };
	got = store_seg_pread(st, s, iov, 2, loc->off,
			      STORE_SEG_HDR_BYTES + (size_t)loc->len);
	ret = got < 0 ? (int)got
		      : !store_rec_why(loc, id, hdr, cur, (size_t)got,
						 true);
	free(cur);
	return ret;
}

int store_seg_redo(struct store *st, const struct store_loc *loc,
		   const uint8_t id[static 32], const void *sealed)
{
	uint8_t hdr[STORE_SEG_HDR_BYTES];
	struct iovec iov[3];
	struct store_seg *s;
	uint64_t span = store_seg_span(loc->len), tail;
	int ret;

	if (st->rdonly)
		return -EROFS;
	ret = store_seg_rec_whole(st, loc, id);
	if (ret)
		return ret < 0 ? ret : 0;	/* whole: nothing to write */
	ret = store_loc_check(st, loc, &s);
	if (ret < 0)
		return ret;
	store_rec_header(hdr, id, loc->len,
			 store_rec_sum(id, sealed, loc->len));
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ store_unconst(sealed), loc->len };
	iov[2] = (struct iovec){ store_unconst(store_zero),
				 span - STORE_SEG_HDR_BYTES - loc->len };
	pthread_rwlock_rdlock(&s->edge);
	ret = store_pwritev_all(s->fd, iov, 3, loc->off);
	pthread_rwlock_unlock(&s->edge);
	if (ret < 0) {
		log_err("cannot write segment '%s/seg/%08" PRIu32
			"' at %" PRIu64 ": %s",
			st->path, s->nr, loc->off, strerror(-ret));
		return ret;
	}
	atomic_fetch_add_explicit(&s->wgen, 1, memory_order_release);
	/* A crash may have cut the file short: appends go past this record. */
	tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
	while (tail < loc->off + span &&
	       !atomic_compare_exchange_weak_explicit(&s->tail, &tail,
						      loc->off + span,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
	return 1;
}

int store_seg_read_run(struct store *st, const struct store_loc *first,
		       size_t len, void *buf)
{
	struct iovec iov = { buf, len };
	struct store_seg *s;
	ssize_t got;
	int ret;

	ret = store_loc_check(st, first, &s);
	if (ret < 0)
		return ret;
	if (len > STORE_SEG_MAX - first->off)
		return -EINVAL;
	got = -EINVAL;
	if ((uintptr_t)buf % 4096 == 0 && len % STORE_SEG_ALIGN == 0 &&
	    !atomic_load_explicit(&s->direct_refused, memory_order_relaxed)) {
		int dfd = store_seg_direct(st, s);

		if (dfd >= 0)
			got = store_seg_pread_fd(st, s, dfd, &iov, 1, first->off,
						 len);
		if (got == -EINVAL && first->off % 4096 == 0 && len % 4096 == 0)
			atomic_store(&s->direct_refused, true);
	}
	if (got == -EINVAL)
		got = store_seg_pread(st, s, &iov, 1, first->off, len);
	if (got < 0)
		return (int)got;
	if ((size_t)got < len)
		memset((uint8_t *)buf + got, 0, len - (size_t)got);
	return 0;
}

int store_seg_rec_check(const struct store_loc *loc,
			const uint8_t id[static 32], const uint8_t *rec)
{
	const char *why = store_rec_why(loc, id, rec, rec + STORE_SEG_HDR_BYTES,
					STORE_SEG_HDR_BYTES + (size_t)loc->len,
					false);

	return why ? -EUCLEAN : 0;
}

/*
 * A punch frees only the whole pages inside a record; the pages it shares
 * with its neighbours are merely zeroed. Once a neighbour is freed too, the
 * shared page reads as all zeros and can be released: punching a page of
 * zeros changes no byte, so this is safe whatever the page holds. Appends
 * are held off meanwhile, so none lands in a page between check and punch.
 */
static int store_punch_edges(struct store_seg *s, uint64_t off, uint64_t span)
{
	const uint64_t page = 4096;
	uint64_t edges[2] = { off / page * page, (off + span) / page * page };
	uint8_t buf[4096];
	int ret = 0;

	pthread_rwlock_wrlock(&s->edge);
	for (int e = 0; e < 2 && ret == 0; e++) {
		ssize_t n;
		bool zero = true;

		if ((e == 0 && off % page == 0) ||
		    (e == 1 && (off + span) % page == 0) ||
		    (e == 1 && edges[1] == edges[0] && off % page))
			continue;	/* aligned, or the same page as the head */
		n = pread(s->fd, buf, sizeof(buf), (off_t)edges[e]);
		if (n <= 0)
			continue;
		for (ssize_t q = 0; q < n && zero; q++)
			zero = buf[q] == 0;
		if (zero)
			ret = store_punch(s->fd, edges[e], page);
	}
	pthread_rwlock_unlock(&s->edge);
	return ret;
}

int store_seg_free_range(struct store *st, uint32_t seg, uint64_t off,
			 uint64_t bytes)
{
	struct store_loc loc = { .seg = seg, .len = 0, .off = off };
	struct store_seg *s;
	int ret;

	if (st->rdonly)
		return -EROFS;
	if (bytes == 0 || bytes % STORE_SEG_ALIGN || bytes > STORE_SEG_MAX ||
	    off > STORE_SEG_MAX - bytes)
		return -EINVAL;
	ret = store_loc_check(st, &loc, &s);
	if (ret < 0)
		return ret;
	ret = store_punch(s->fd, off, bytes);
	if (ret == 0)
		ret = store_punch_edges(s, off, bytes);
	if (ret == -EOPNOTSUPP) {
		if (!atomic_flag_test_and_set(&st->punch_warned))
			log_warn("store '%s': the filesystem cannot punch "
				 "holes; freed blocks keep their space",
				 st->path);
		return 0;
	}
	if (ret < 0) {
		log_err("cannot free block space in '%s/seg/%08" PRIu32
			"' at %" PRIu64 ": %s",
			st->path, seg, off, strerror(-ret));
		return -EIO;
	}
	return 0;
}

int store_seg_free(struct store *st, const struct store_loc *loc)
{
	struct store_seg *s;
	int ret;

	if (st->rdonly)
		return -EROFS;
	ret = store_loc_check(st, loc, &s);
	if (ret < 0)
		return ret;
	return store_seg_free_range(st, loc->seg, loc->off,
				    store_seg_span(loc->len));
}

void store_loc_encode(const struct store_loc *loc,
		      uint8_t out[static STORE_LOC_BYTES])
{
	put_be32(out, loc->seg);
	put_be32(out + 4, loc->len);
	put_be64(out + 8, loc->off);
}

int store_loc_decode(const void *buf, size_t len, struct store_loc *loc)
{
	const uint8_t *p = buf;

	if (len != STORE_LOC_BYTES)
		return -EUCLEAN;
	loc->seg = get_be32(p);
	loc->len = get_be32(p + 4);
	loc->off = get_be64(p + 8);
	return 0;
}

int store_compact(struct store *st)
{
	if (st->rdonly)
		return -EROFS;
	for (size_t i = 0; i < ARRAY_SIZE(st->cf); i++)
		rocksdb_compact_range_cf(st->db, st->cf[i], NULL, 0, NULL, 0);
	return 0;
}

/* Bytes allocated to the regular files directly under dir. */
static int store_dir_bytes(const char *dir, uint64_t *bytes)
{
	struct dirent *de;
	struct stat sb;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* deleted by a compaction meanwhile */
		if (S_ISREG(sb.st_mode))
			*bytes += (uint64_t)sb.st_blocks * 512;
	}
	closedir(d);
	return 0;
}

int store_avail(struct store *st, uint64_t *avail, uint64_t *total)
{
	struct statvfs sv;

	if (fstatvfs(st->seg_dirfd, &sv) < 0)
		return -errno;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}

int store_space(struct store *st, uint64_t *used, uint64_t *avail,
		uint64_t *total)
{
	static const char *const subdirs[] = {"db", "seg"};
	struct statvfs sv;
	uint64_t bytes = 0;
	char *p;
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
		p = store_join(st->path, subdirs[i]);
		if (!p)
			return -ENOMEM;
		ret = store_dir_bytes(p, &bytes);
		free(p);
		if (ret < 0)
			return -EIO;
	}
	if (statvfs(st->path, &sv) < 0)
		return -EIO;
	*used = bytes;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	*total = (uint64_t)sv.f_blocks * sv.f_frsize;
	return 0;
}

/* ---- fsck: segment listing, sequential scan, punch, RocksDB repair ---- */

#define STORE_SCAN_MIN_BUF (4u << 20)

const char *store_cf_name(enum store_cf cf)
{
	assert((unsigned)cf < STORE_CF_COUNT);
	return store_cf_names[1 + cf];
}

static int store_seg_info_cmp(const void *a, const void *b)
{
	const struct store_seg_info *x = a, *y = b;

	return x->nr < y->nr ? -1 : x->nr > y->nr;
}

int store_seg_list(struct store *st, struct store_seg_info **out, size_t *n,
		   size_t *stray)
{
	struct store_seg_info *v = NULL, *p;
	struct dirent *de;
	size_t cnt = 0, cap = 0;
	struct stat sb;
	DIR *d;
	int fd, ret = 0;

	*out = NULL;
	*n = 0;
	*stray = 0;
	fd = dup(st->seg_dirfd);
	if (fd < 0)
		return -EIO;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -EIO;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		unsigned long nr;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strlen(de->d_name) != 8 ||
		    strspn(de->d_name, "0123456789") != 8 ||
		    fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(sb.st_mode)) {
			(*stray)++;
			continue;
		}
		nr = strtoul(de->d_name, NULL, 10);
		if (nr >= STORE_SEG_NR_MAX) {
			(*stray)++;
			continue;
		}
		if (cnt == cap) {
			cap = cap ? 2 * cap : 16;
			p = realloc(v, cap * sizeof(*v));
			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			v = p;
		}
		v[cnt].nr = (uint32_t)nr;
		v[cnt].size = (uint64_t)sb.st_size;
		v[cnt].alloc = (uint64_t)sb.st_blocks * 512;
		cnt++;
	}
	qsort(v, cnt, sizeof(*v), store_seg_info_cmp);
	*out = v;
	*n = cnt;
	v = NULL;
out:
	closedir(d);
	free(v);
	return ret;
}

/*
 * A scan's bytes. Buffered, [bstart, bend) of the file is at buf and each
 * fill reads what the parser needs next, with the kernel's read-ahead
 * keeping the disk busy. Direct (O_DIRECT, where the file system allows
 * it), the bytes go from the disk straight into a ring that a reader
 * thread keeps full ahead of the parser: no page-cache copy, no page-cache
 * memory, and the disk is never idle while a window is checked. The ring
 * is mapped twice back to back, so any window of it is contiguous.
 */
#define STORE_DIO_ALIGN	   4096u
#define STORE_AHEAD_CHUNK  (8u << 20)
#define STORE_AHEAD_THREADS 3	/* reads in flight: the disk wants a queue */
#define STORE_AHEAD_DONE   16	/* reads landed past one still in flight */

struct store_ahead {
	pthread_t th[STORE_AHEAD_THREADS];
	int nth;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd;
	uint8_t *ring;		/* 2 * rsize bytes of address space */
	size_t rsize;
	uint64_t size;
	uint64_t end;		/* no reads from here: size, or a short read */
	uint64_t low;		/* the parser needs nothing below this */
	uint64_t next;		/* [low, next) of the file is in the ring */
	uint64_t claim;		/* [next, claim) is being read */
	struct {
		uint64_t off, len;
		bool shorty;
	} done[STORE_AHEAD_DONE]; /* read, past a read still in flight */
	int ndone, inflight;
	uint64_t gen;		/* bumped by a seek: reads in flight are void */
	int err;		/* errno of a failed read */
	bool eof, stop;
	bool seeking;		/* no new reads until those in flight land */
};

struct store_scan {
	int fd;
	struct store_ahead *ra;	/* direct: the ring and its readers */
	uint8_t *buf;
	size_t cap;
	uint64_t size;		/* of the file */
	uint64_t bstart;	/* file offset of buf[0] */
	uint64_t bend;		/* file offset just past the buffered bytes */
	uint64_t counted;	/* read bytes added to *bytes_read up to here */
	uint64_t *bytes_read;
};

static ssize_t store_ahead_pread(struct store_ahead *ra, uint64_t off,
				 size_t len)
{
	uint8_t *dst = ra->ring + off % ra->rsize;
	size_t got = 0;
	ssize_t r;

	/*
	 * Past the ring's end the second mapping takes the bytes. Short only
	 * at the end of the file: a short read before it is continued.
	 */
	while (got < len) {
		r = pread(ra->fd, dst + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		/* Misaligned for this file system after all: read buffered. */
		if (r < 0 && errno == EINVAL &&
		    (fcntl(ra->fd, F_GETFL) & O_DIRECT) &&
		    fcntl(ra->fd, F_SETFL,
			  fcntl(ra->fd, F_GETFL) & ~O_DIRECT) == 0)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Move next over the reads that have landed in order. */
static void store_ahead_advance(struct store_ahead *ra)
{
	for (int q = 0; q < ra->ndone;) {
		if (ra->done[q].off != ra->next) {
			q++;
			continue;
		}
		ra->next += ra->done[q].len;
		if (ra->done[q].shorty)
			ra->eof = true;
		ra->done[q] = ra->done[--ra->ndone];
		q = 0;
	}
}

/* The next read: a chunk, or what is left of the file, aligned. */
static size_t store_ahead_len(const struct store_ahead *ra)
{
	uint64_t left = ra->end - ra->claim;

	left = (left + STORE_DIO_ALIGN - 1) & ~(uint64_t)(STORE_DIO_ALIGN - 1);
	return (size_t)MIN((uint64_t)STORE_AHEAD_CHUNK, left);
}

static void *store_ahead_main(void *arg)
{
	struct store_ahead *ra = arg;

	pthread_mutex_lock(&ra->lock);
	for (;;) {
		uint64_t off, gen;
		size_t len;
		ssize_t r;
		int e;

		/* Whole chunks only, into room the parser has let go of. */
		while (!ra->stop &&
		       (ra->eof || ra->err || ra->seeking ||
			ra->claim >= ra->end ||
			ra->ndone + ra->inflight >= STORE_AHEAD_DONE ||
			ra->low + ra->rsize - ra->claim < store_ahead_len(ra)))
			pthread_cond_wait(&ra->cond, &ra->lock);
		if (ra->stop)
			break;
		off = ra->claim;
		gen = ra->gen;
		len = store_ahead_len(ra);
		ra->claim += len;
		ra->inflight++;
		pthread_mutex_unlock(&ra->lock);
		r = store_ahead_pread(ra, off, len);
		e = r < 0 ? errno : 0;
		pthread_mutex_lock(&ra->lock);
		ra->inflight--;
		if (gen != ra->gen) {
			pthread_cond_broadcast(&ra->cond);
			continue;
		}
		if (r < 0) {
			ra->err = e ? e : EIO;
		} else {
			if ((size_t)r < len)
				ra->end = MIN(ra->end, off + (uint64_t)r);
			ra->done[ra->ndone].off = off;
			ra->done[ra->ndone].len = (uint64_t)r;
			ra->done[ra->ndone].shorty = (size_t)r < len;
			ra->ndone++;
			store_ahead_advance(ra);
		}
		pthread_cond_broadcast(&ra->cond);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

static void store_ahead_free(struct store_ahead *ra)
{
	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->stop = true;
	pthread_cond_broadcast(&ra->cond);
	pthread_mutex_unlock(&ra->lock);
	for (int q = 0; q < ra->nth; q++)
		pthread_join(ra->th[q], NULL);
	pthread_mutex_destroy(&ra->lock);
	pthread_cond_destroy(&ra->cond);
	munmap(ra->ring, 2 * ra->rsize);
	free(ra);
}

/* A reader for fd (opened O_DIRECT) whose ring holds at least want bytes. */
static struct store_ahead *store_ahead_new(int fd, uint64_t size, size_t want)
{
	struct store_ahead *ra = calloc(1, sizeof(*ra));
	size_t rsize = (want + STORE_DIO_ALIGN - 1) & ~(size_t)(STORE_DIO_ALIGN - 1);
	uint8_t *ring;
	int mfd;

	if (!ra)
		return NULL;
	mfd = memfd_create("embassyfs-scan", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)rsize) < 0)
		goto fail;
	ring = mmap(NULL, 2 * rsize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (ring == MAP_FAILED)
		goto fail;
	if (mmap(ring, rsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 mfd, 0) == MAP_FAILED ||
	    mmap(ring + rsize, rsize, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, mfd, 0) == MAP_FAILED) {
		munmap(ring, 2 * rsize);
		goto fail;
	}
	close(mfd);
	ra->fd = fd;
	ra->ring = ring;
	ra->rsize = rsize;
	ra->size = ra->end = size;
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->cond, NULL);
	for (int q = 0; q < STORE_AHEAD_THREADS; q++) {
		if (pthread_create(&ra->th[q], NULL, store_ahead_main, ra))
			break;
		ra->nth++;
	}
	if (!ra->nth) {
		store_ahead_free(ra);
		return NULL;
	}
	return ra;
fail:
	if (mfd >= 0)
		close(mfd);
	free(ra);
	return NULL;
}

/* Direct: wait until the ring holds [pos, pos + need) or the file's end. */
static int store_ahead_fill(struct store_scan *sc, uint64_t pos, size_t need)
{
	struct store_ahead *ra = sc->ra;
	uint64_t base = pos & ~(uint64_t)(STORE_DIO_ALIGN - 1);
	uint64_t want = MIN(pos + need, sc->size);
	int err;

	pthread_mutex_lock(&ra->lock);
	if (base < ra->low || base > ra->next) {
		/*
		 * A jump (over a hole): start reading afresh at base, once
		 * the reads in flight have landed, as their bytes would
		 * overwrite the new ones where the ring wraps.
		 */
		ra->gen++;
		ra->seeking = true;
		while (ra->inflight)
			pthread_cond_wait(&ra->cond, &ra->lock);
		ra->seeking = false;
		ra->low = ra->next = ra->claim = base;
		ra->ndone = 0;
		ra->end = ra->size;
		ra->eof = false;
		sc->counted = base;
	} else {
		ra->low = base;
	}
	pthread_cond_broadcast(&ra->cond);
	while (ra->next < want && !ra->err && !ra->eof)
		pthread_cond_wait(&ra->cond, &ra->lock);
	/* A failed read further ahead waits until the parser gets there. */
	err = ra->next < want ? ra->err : 0;
	sc->bstart = ra->low;
	sc->bend = ra->next;
	pthread_mutex_unlock(&ra->lock);
	sc->buf = ra->ring + sc->bstart % ra->rsize;
	if (sc->bend > sc->counted) {
		if (sc->bytes_read)
			*sc->bytes_read += sc->bend - sc->counted;
		sc->counted = sc->bend;
	}
	if (err) {
		errno = err;
		return -EIO;
	}
	return 0;
}

/* Make [pos, pos + need) buffered (need <= cap); short only at end of file. */
#define STORE_SCAN_AHEAD 4

static int store_scan_fill(struct store_scan *sc, uint64_t pos, size_t need)
{
	if (pos >= sc->bstart && pos + need <= sc->bend)
		return 0;
	if (sc->ra)
		return store_ahead_fill(sc, pos, need);
	if (pos >= sc->bstart && pos < sc->bend) {
		memmove(sc->buf, sc->buf + (pos - sc->bstart),
			(size_t)(sc->bend - pos));
		sc->bstart = pos;
	} else {
		sc->bstart = sc->bend = pos;
	}
	while (sc->bend - sc->bstart < need && sc->bend < sc->size) {
		size_t room = sc->cap - (size_t)(sc->bend - sc->bstart);
		ssize_t r;

		r = pread(sc->fd, sc->buf + (sc->bend - sc->bstart), room,
			  (off_t)sc->bend);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -EIO;
		}
		if (r == 0)
			break;
		sc->bend += (uint64_t)r;
		if (sc->bytes_read)
			*sc->bytes_read += (uint64_t)r;
	}
	/*
	 * The next windows are read by the kernel while this one is checked:
	 * several, so that the disk always has requests queued.
	 */
	if (sc->bend < sc->size)
		(void)posix_fadvise(sc->fd, (off_t)sc->bend,
				    (off_t)(STORE_SCAN_AHEAD * sc->cap),
				    POSIX_FADV_WILLNEED);
	return 0;
}

static bool store_unit_zero(const uint8_t *p, size_t n)
{
	return !memcmp(p, store_zero, n);
}

int store_seg_scan(struct store *st, uint32_t nr, size_t bufsize,
		   store_seg_scan_fn *fn, void *arg, uint64_t *bytes_read)
{
	struct store_scan sc = { .fd = -1, .bytes_read = bytes_read };
	struct store_seg_rec r;
	char name[STORE_SEG_NAME_BYTES];
	uint64_t pos = 0, shadow_end = 0, junk_start = 0, junk_end = 0;
	struct stat sb;
	void *mem = NULL;
	bool direct;
	int ret;

	if (bufsize < STORE_SCAN_MIN_BUF)
		bufsize = STORE_SCAN_MIN_BUF;
	snprintf(name, sizeof(name), "%08" PRIu32, nr);
	sc.fd = openat(st->seg_dirfd, name, O_RDONLY | O_CLOEXEC | O_DIRECT);
	direct = sc.fd >= 0;
	if (sc.fd < 0 && errno == EINVAL)
		sc.fd = openat(st->seg_dirfd, name, O_RDONLY | O_CLOEXEC);
	if (sc.fd < 0)
		return errno == ENOENT ? -ENOENT : -EIO;
	ret = -EIO;
	if (fstat(sc.fd, &sb) < 0)
		goto out;
	sc.size = (uint64_t)sb.st_size;
	sc.cap = bufsize;
	/* A window being checked, and reads landing past it. */
	if (direct)
		sc.ra = store_ahead_new(sc.fd, sc.size,
					bufsize + STORE_AHEAD_THREADS *
							      STORE_AHEAD_CHUNK);
	if (direct && !sc.ra &&
	    fcntl(sc.fd, F_SETFL, fcntl(sc.fd, F_GETFL) & ~O_DIRECT) < 0)
		goto out;
	if (!sc.ra) {
		(void)posix_fadvise(sc.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		ret = -ENOMEM;
		if (posix_memalign(&mem, STORE_DIO_ALIGN, bufsize))
			goto out;
		sc.buf = mem;
	}

#define STORE_SCAN_FLUSH_JUNK()                                               \
	do {                                                                  \
		if (junk_end > junk_start) {                                  \
			memset(&r, 0, sizeof(r));                             \
			r.seg = nr;                                           \
			r.off = junk_start;                                   \
			r.span = junk_end - junk_start;                       \
			r.state = STORE_REC_JUNK;                             \
			ret = fn(arg, &r);                                    \
			if (ret)                                              \
				goto out;                                     \
		}                                                             \
		junk_start = junk_end = 0;                                    \
	} while (0)

	while (pos < sc.size) {
		size_t unit = (size_t)MIN((uint64_t)STORE_SEG_ALIGN,
					  sc.size - pos);
		const uint8_t *p;
		uint32_t len;
		bool shadow = pos < shadow_end;

		ret = store_scan_fill(&sc, pos, unit);
		if (ret)
			goto out;
		if (sc.bend <= pos)
			break;
		/* The file ended early (it shrank): go by what was read. */
		if (sc.bend < pos + unit) {
			sc.size = sc.bend;
			unit = (size_t)(sc.size - pos);
		}
		p = sc.buf + (pos - sc.bstart);
		if (store_unit_zero(p, unit)) {
			STORE_SCAN_FLUSH_JUNK();
			pos += STORE_SEG_ALIGN;
			/* Past the buffered bytes: jump over a punched hole. */
			if (pos >= sc.bend && pos < sc.size) {
				off_t d = lseek(sc.fd, (off_t)pos, SEEK_DATA);

				if (d < 0 && errno == ENXIO)
					pos = sc.size;
				else if (d > 0 && (uint64_t)d > pos)
					pos = (uint64_t)d &
					      ~(uint64_t)(STORE_SEG_ALIGN - 1);
			}
			continue;
		}
		len = unit >= 8 ? get_be32(p + 4) : 0;
		if (unit >= STORE_SEG_HDR_BYTES &&
		    get_be32(p) == STORE_SEG_REC_MAGIC && len > 0 &&
		    len <= bufsize - STORE_SEG_HDR_BYTES - STORE_SEG_ALIGN &&
		    pos + STORE_SEG_HDR_BYTES + len <= STORE_SEG_MAX) {
			uint64_t span =
			    store_round_up(STORE_SEG_HDR_BYTES + (uint64_t)len);

			memset(&r, 0, sizeof(r));
			r.seg = nr;
			r.off = pos;
			r.len = len;
			if (pos + STORE_SEG_HDR_BYTES + len > sc.size) {
				if (!shadow) {
					STORE_SCAN_FLUSH_JUNK();
					r.state = STORE_REC_SHORT;
					r.span = sc.size - pos;
					ret = fn(arg, &r);
					if (ret)
						goto out;
					shadow_end = sc.size;
				}
				pos += STORE_SEG_ALIGN;
				continue;
			}
			ret = store_scan_fill(&sc, pos, STORE_SEG_HDR_BYTES + len);
			if (ret)
				goto out;
			if (sc.bend < pos + STORE_SEG_HDR_BYTES + len) {
				sc.size = sc.bend; /* shrank: a short record */
				continue;
			}
			p = sc.buf + (pos - sc.bstart);
			r.id = p + 8;
			r.sealed = p + STORE_SEG_HDR_BYTES;
			r.rec_sum = get_be64(p + 40);
			r.state = store_rec_sum(r.id, r.sealed, len) == r.rec_sum
					  ? STORE_REC_OK
					  : STORE_REC_BAD_SUM;
			if (r.state == STORE_REC_OK || !shadow) {
				STORE_SCAN_FLUSH_JUNK();
				r.span = span;
				ret = fn(arg, &r);
				if (ret)
					goto out;
			}
			if (r.state == STORE_REC_OK) {
				shadow_end = 0;
				pos += span;
			} else {
				if (!shadow)
					shadow_end = pos + span;
				pos += STORE_SEG_ALIGN;
			}
			continue;
		}
		if (!shadow) {
			if (junk_end != pos)
				STORE_SCAN_FLUSH_JUNK();
			if (junk_end == 0)
				junk_start = pos;
			junk_end = pos + STORE_SEG_ALIGN;
		}
		pos += STORE_SEG_ALIGN;
	}
	STORE_SCAN_FLUSH_JUNK();
#undef STORE_SCAN_FLUSH_JUNK
	ret = 0;
out:
	if (ret == -EIO)
		log_err("cannot read segment '%s/seg/%s': %s", st->path, name,
			strerror(errno));
	store_ahead_free(sc.ra);
	free(mem);
	close(sc.fd);
	return ret;
}

int store_seg_punch(struct store *st, uint32_t nr, uint64_t off, uint64_t len)
{
	struct store_seg *s;
	int ret;

	if (st->rdonly)
		return -EROFS;
	if (off % STORE_SEG_ALIGN || len % STORE_SEG_ALIGN || len == 0 ||
	    off > STORE_SEG_MAX || len > STORE_SEG_MAX - off)
		return -EINVAL;
	ret = store_seg_get(st, nr, false, &s);
	if (ret)
		return ret == -ENOENT ? -ENOENT : -EIO;
	ret = store_punch(s->fd, off, len);
	if (ret == 0)
		ret = store_punch_edges(s, off, len);
	if (ret == -EOPNOTSUPP)
		return 0;
	if (ret) {
		log_err("cannot punch '%s/seg/%08" PRIu32 "' at %" PRIu64
			": %s",
			st->path, nr, off, strerror(-ret));
		return -EIO;
	}
	return 0;
}

int store_repair_db(const char *dir)
{
	rocksdb_options_t *o;
	struct store tmp;
	char *db = NULL, *err = NULL;
	int lockfd = -1, ret;

	ret = store_lock(dir, false, &lockfd);
	if (ret)
		return ret == -EBUSY ? ret : -EIO;
	db = store_join(dir, "db");
	if (!db) {
		ret = -ENOMEM;
		goto out;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.cache = rocksdb_cache_create_lru(STORE_CACHE_BYTES);
	o = store_options(&tmp, false, 0);
	rocksdb_repair_db(o, db, &err);
	rocksdb_options_destroy(o);
	ret = err ? store_err(dir, "cannot repair the RocksDB of store", err)
		  : 0;
	if (ret == 0) {
		/* A family whose every table was lost comes back empty. */
		rocksdb_options_t *opts[1 + STORE_CF_COUNT];

		for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
			opts[i] = store_options(&tmp, store_cf_bloom[i], 0);
		rocksdb_options_set_create_missing_column_families(opts[0], 1);
		tmp.db = rocksdb_open_column_families(
		    opts[0], db, (int)ARRAY_SIZE(store_cf_names),
		    store_cf_names, (const rocksdb_options_t *const *)opts,
		    tmp.cf, &err);
		if (err) {
			ret = store_err(dir, "cannot open the repaired store",
					err);
		} else {
			for (size_t i = 0; i < ARRAY_SIZE(tmp.cf); i++)
				rocksdb_column_family_handle_destroy(tmp.cf[i]);
			rocksdb_close(tmp.db);
		}
		for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
			rocksdb_options_destroy(opts[i]);
	}
	rocksdb_cache_destroy(tmp.cache);
	if (ret == 0)
		log_info("store '%s': RocksDB manifest rebuilt from its table "
			 "files",
			 dir);
out:
	free(db);
	close(lockfd);
	return ret;
}

#define STORE_SCAN_READAHEAD (2u << 20)

int store_iter_new_scan(struct store *st, enum store_cf cf,
			struct store_iter **out)
{
	rocksdb_readoptions_t *ro;
	struct store_iter *it;

	*out = NULL;
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	/* Per thread: no statistics counted on every step of the walk. */
	rocksdb_set_perf_level(rocksdb_disable);
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_fill_cache(ro, 0);
	rocksdb_readoptions_set_readahead_size(ro, STORE_SCAN_READAHEAD);
	it->st = st;
	/* The iterator keeps its own copy of the options. */
	it->it = rocksdb_create_iterator_cf(st->db, ro, store_cfh(st, cf));
	rocksdb_readoptions_destroy(ro);
	*out = it;
	return 0;
}
