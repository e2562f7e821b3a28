/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * store.h - the on-disk store: RocksDB column families and block segments
 *
 * A store is a directory:
 *
 *   STORE/VOLUME         identification file (magic, format version, id)
 *   STORE/db/            RocksDB: every column family of enum store_cf
 *   STORE/seg/NNNNNNNN   block segments: append-only files of sealed blocks
 *
 * Block bytes are written once, to a segment, with pwrite at an offset
 * reserved lock-free; RocksDB holds only the index (STORE_CF_LOCAL) and
 * metadata, so block bytes neither pass through the WAL nor churn through
 * compaction. Freed blocks are released with FALLOC_FL_PUNCH_HOLE, so disk
 * space comes back at once. Every record in a segment starts at a multiple
 * of STORE_SEG_ALIGN so that a keyless scan can resynchronise after a hole.
 *
 * Durability: store_sync() makes every segment byte written so far durable
 * (fdatasync) before it syncs RocksDB's WAL, so a synced batch never names
 * a block whose bytes could be lost.
 *
 * Only this file's implementation includes rocksdb/c.h. RocksDB errors are
 * mapped here: "Corruption" -> -EUCLEAN, no space -> -ENOSPC, the store's
 * lock held by another process -> -EBUSY, anything else -> -EIO.
 *
 * All functions are thread-safe on one struct store unless said otherwise;
 * a batch or an iterator belongs to one thread.
 */
#ifndef EMBASSYFS_STORE_H
#define EMBASSYFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"

/* Column families; the names on disk are in store.c and doc/FORMAT.md. */
enum store_cf {
	STORE_CF_SUPER,		/* "super": header, head, counters */
	STORE_CF_INODE,		/* "inode": ino -> attributes */
	STORE_CF_DIRENT,	/* "dirent": parent || name hash -> entry */
	STORE_CF_EXTENT,	/* "extent": ino || block index -> block ref */
	STORE_CF_BLOCK,		/* "block": id -> refcount, sizes, checksum */
	STORE_CF_XATTR,		/* "xattr": ino || name hash -> name, value */
	STORE_CF_ORPHAN,	/* "orphan": ino -> (unlinked while open) */
	STORE_CF_JOURNAL,	/* "journal": seq -> record */
	STORE_CF_LOCAL,		/* "local": this store's own: block locations, cursors */
	STORE_CF_COUNT,
};

#define STORE_SEG_ALIGN 512
#define STORE_SEG_MAX (1ull << 30)	/* roll to a new segment past 1 GiB */
#define STORE_SEG_REC_MAGIC 0x45424b31u	/* "EBK1" */
/*
 * A segment record: 48-byte header, then the sealed bytes, then zero
 * padding to STORE_SEG_ALIGN.
 *   0 u32 magic  4 u32 sealed length  8 id[32]  40 u64 XXH3-64 of id||sealed
 */
#define STORE_SEG_HDR_BYTES 48

struct store_loc {
	uint32_t seg;		/* segment number */
	uint32_t len;		/* sealed length */
	uint64_t off;		/* offset of the record header */
};

enum store_open_flags {
	STORE_RDONLY = 1 << 0,	/* no lock taken; many readers beside a writer */
	STORE_CREATE = 1 << 1,	/* create an empty store; -EEXIST if one is there */
	STORE_SHARED = 1 << 2,	/* with RDONLY: hold a shared lock (a read-only mount) */
};

struct store;
struct store_batch;
struct store_iter;

/*
 * Open the RocksDB and segments of the store directory `dir`. With
 * STORE_CREATE, dir is created (or must be empty). -ENOENT: no store there;
 * -EEXIST: STORE_CREATE on a non-empty dir; -EBUSY: held by another
 * process; -EUCLEAN: RocksDB reports corruption; -EIO otherwise.
 */
int store_open(const char *dir, enum store_open_flags flags,
	       struct store **out) MUST_CHECK;
/* Flush and close; NULL is fine. Leaves nothing to replay. */
void store_close(struct store *st);
/* -EBUSY if a writer holds the store now, else 0 (a hint: it may change). */
int store_busy(const char *dir) MUST_CHECK;
bool store_rdonly(const struct store *st);
const char *store_path(const struct store *st);

/*
 * Point reads. *val is malloc'd (caller frees). -ENOENT if absent.
 * store_get_buf copies into buf (cap); -ENOSPC if longer, *vlen always set.
 */
int store_get(struct store *st, enum store_cf cf, const void *key, size_t klen,
	      void **val, size_t *vlen) MUST_CHECK;
int store_get_buf(struct store *st, enum store_cf cf, const void *key,
		  size_t klen, void *buf, size_t cap, size_t *vlen) MUST_CHECK;
/*
 * n point reads of one column family in one batch (RocksDB's MultiGet):
 * value k goes to vals + k * cap, its length to vlens[k], and rets[k] is
 * 0, -ENOENT or -ENOSPC (longer than cap), or -EIO. Returns the first
 * store error, else 0.
 */
int store_get_many(struct store *st, enum store_cf cf, size_t n,
		   const char *const keys[], const size_t klens[],
		   uint8_t *vals, size_t cap, size_t vlens[],
		   int rets[]) MUST_CHECK;

/* Write batches: built by one thread, written atomically. */
int store_batch_new(struct store_batch **out) MUST_CHECK;
void store_batch_free(struct store_batch *b);
void store_batch_clear(struct store_batch *b);
void store_batch_put(struct store_batch *b, enum store_cf cf, const void *key,
		     size_t klen, const void *val, size_t vlen);
void store_batch_delete(struct store_batch *b, enum store_cf cf,
			const void *key, size_t klen);
/* Delete keys in [begin, end). */
void store_batch_delete_range(struct store_batch *b, enum store_cf cf,
			      const void *begin, size_t blen, const void *end,
			      size_t elen);
size_t store_batch_count(const struct store_batch *b);
/*
 * Apply a batch atomically. With sync, segments and the WAL are made
 * durable first (store_sync semantics) -EROFS on a read-only store.
 */
int store_write(struct store *st, struct store_batch *b, bool sync) MUST_CHECK;

/* Make every write so far durable: fdatasync dirty segments, then sync the WAL. */
int store_sync(struct store *st) MUST_CHECK;

/*
 * Iterators over one column family, in key order. store_iter_seek positions
 * at the first key >= key. Keys and values are valid until the next move.
 */
int store_iter_new(struct store *st, enum store_cf cf, struct store_iter **out) MUST_CHECK;
void store_iter_free(struct store_iter *it);
void store_iter_seek(struct store_iter *it, const void *key, size_t klen);
void store_iter_seek_first(struct store_iter *it);
void store_iter_seek_last(struct store_iter *it);
/*
 * The last key of a family whose keys are big-endian u64 (inode, journal):
 * -ENOENT if the family is empty or its last key is not 8 bytes.
 */
int store_last_u64(struct store *st, enum store_cf cf,
		   uint64_t *out) MUST_CHECK;
bool store_iter_valid(const struct store_iter *it);
void store_iter_next(struct store_iter *it);
void store_iter_prev(struct store_iter *it);
const void *store_iter_key(const struct store_iter *it, size_t *klen);
const void *store_iter_value(const struct store_iter *it, size_t *vlen);
/* -EUCLEAN/-EIO if iteration stopped on an error rather than at the end. */
int store_iter_status(const struct store_iter *it) MUST_CHECK;

/*
 * Block segments. store_seg_append writes one record (header + sealed
 * bytes) and fills *loc; the bytes reach the disk at the next store_sync.
 * -ENOSPC, -EIO, -EROFS.
 */
int store_seg_append(struct store *st, const uint8_t id[static 32],
		     const void *sealed, size_t len, struct store_loc *loc) MUST_CHECK;
/*
 * Append n records in contiguous runs (chunks of at most 8 MiB; a chunk
 * written direct starts on a page boundary, so zeros may lie between two):
 * locs[q] is filled for each. sums[q], if sums is not NULL, is
 * store_rec_sum() of record q, already computed by the caller. On an
 * error none is kept.
 */
int store_seg_append_batch(struct store *st, size_t n,
			   const uint8_t *const ids[],
			   const void *const sealed[], const size_t lens[],
			   const uint64_t sums[], struct store_loc locs[]) MUST_CHECK;
/*
 * Like store_seg_append_batch, for a caller that logs each record's sealed
 * bytes in the batch that names it (a redo entry, written to the WAL): the
 * durability syncs (store_sync, store_write with sync) do not wait for
 * these appends; store_seg_sync_all does, and must before the redo entries
 * are deleted.
 */
int store_seg_append_redo(struct store *st, size_t n,
			  const uint8_t *const ids[],
			  const void *const sealed[], const size_t lens[],
			  const uint64_t sums[], struct store_loc locs[]) MUST_CHECK;
/* fdatasync every segment with any unsynced append. -EIO. */
int store_seg_sync_all(struct store *st) MUST_CHECK;
/*
 * A record's checksum: XXH3-64 of id || sealed bytes. It is in the
 * record's header and, as the block's checksum, in its block value.
 */
uint64_t store_rec_sum(const uint8_t id[static 32], const void *sealed,
		       size_t len);
/* 1 if the record at loc is whole (header, id, XXH3), 0 if not; -EUCLEAN, -EIO. */
int store_seg_rec_whole(struct store *st, const struct store_loc *loc,
			const uint8_t id[static 32]) MUST_CHECK;
/*
 * Replay one redo entry: if the record at loc is not whole (a crash cut
 * the segment short), write it again from id and sealed (loc->len bytes)
 * and keep later appends past it. 1 if written, 0 if it was whole,
 * -EUCLEAN (no such segment), -EIO, -ENOSPC, -EROFS. Sync with
 * store_seg_sync_all.
 */
int store_seg_redo(struct store *st, const struct store_loc *loc,
		   const uint8_t id[static 32], const void *sealed) MUST_CHECK;
/*
 * Read the sealed bytes at loc into buf (loc->len bytes), checking the
 * record header: magic, id and XXH3 checksum. -EUCLEAN on a mismatch, -EIO.
 */
int store_seg_read(struct store *st, const struct store_loc *loc,
		   const uint8_t id[static 32], void *buf) MUST_CHECK;
/*
 * store_seg_read for a caller that authenticates the sealed bytes itself
 * (an AEAD open): the header is checked, the XXH3 checksum is not, since
 * the tag covers every byte it does. When the open then fails, read the
 * block again with store_seg_read to log what is wrong.
 */
int store_seg_read_authed(struct store *st, const struct store_loc *loc,
			  const uint8_t id[static 32], void *buf) MUST_CHECK;
/*
 * Read len raw bytes of a segment from first's offset: a run of records
 * that lie back to back (bytes past the end of the file read as zeros).
 * Check each record in buf with store_seg_rec_check before using it.
 * -EUCLEAN (no such segment), -EINVAL, -EIO.
 */
int store_seg_read_run(struct store *st, const struct store_loc *first,
		       size_t len, void *buf) MUST_CHECK;
/*
 * Check the header of the record rec (read by store_seg_read_run) against
 * loc and id: magic, length and id, not the XXH3 checksum. The caller
 * authenticates the payload (its AEAD tag covers every byte the checksum
 * does, and more), so summing it again would only cost time. -EUCLEAN, not
 * logged: on any failure, header or tag, the caller reads the block again
 * alone (store_seg_read_authed, then store_seg_read to report).
 */
int store_seg_rec_check(const struct store_loc *loc,
			const uint8_t id[static 32], const uint8_t *rec) MUST_CHECK;
/* Release the record's space (punch a hole). Idempotent. */
int store_seg_free(struct store *st, const struct store_loc *loc) MUST_CHECK;
/* Bytes a record of sealed length len occupies in its segment. */
static inline uint64_t store_seg_span(uint32_t len)
{
	uint64_t n = STORE_SEG_HDR_BYTES + (uint64_t)len;

	return (n + STORE_SEG_ALIGN - 1) / STORE_SEG_ALIGN * STORE_SEG_ALIGN;
}
/*
 * Release bytes [off, off + bytes) of segment seg: several adjacent freed
 * records at once. bytes is a multiple of STORE_SEG_ALIGN. -EINVAL,
 * -EUCLEAN (no such segment), -EIO.
 */
int store_seg_free_range(struct store *st, uint32_t seg, uint64_t off,
			 uint64_t bytes) MUST_CHECK;
/* Encode/decode a location as the 16-byte STORE_CF_LOCAL value. */
#define STORE_LOC_BYTES 16
void store_loc_encode(const struct store_loc *loc, uint8_t out[static STORE_LOC_BYTES]);
int store_loc_decode(const void *buf, size_t len, struct store_loc *loc) MUST_CHECK;

/* Free and total bytes of the filesystem below the store: one fstatvfs, cheap. */
int store_avail(struct store *st, uint64_t *avail, uint64_t *total) MUST_CHECK;

/* Compact every column family (space back after deletes). */
int store_compact(struct store *st) MUST_CHECK;

/* Space figures for statfs: bytes used by the db and segments, bytes free on the filesystem below. */
int store_space(struct store *st, uint64_t *used, uint64_t *avail,
		uint64_t *total) MUST_CHECK;

/*
 * Segment scan and repair helpers for fsck.embassyfs.
 *
 * store_seg_list fills *out (malloc'd, caller frees) with the segment
 * files of the store in ascending number: apparent size and bytes
 * allocated (holes left by freed records do not count). *stray counts
 * other entries under seg/ that are not segment files. -EIO, -ENOMEM.
 */
struct store_seg_info {
	uint32_t nr;
	uint64_t size;
	uint64_t alloc;
};
int store_seg_list(struct store *st, struct store_seg_info **out, size_t *n,
		   size_t *stray) MUST_CHECK;

enum store_rec_state {
	STORE_REC_OK,		/* magic, plausible length, checksum all good */
	STORE_REC_BAD_SUM,	/* a plausible header whose checksum fails */
	STORE_REC_SHORT,	/* a header whose record runs past the end of the file */
	STORE_REC_JUNK,		/* non-zero 512-byte units that hold no record */
};

/*
 * One record (or run of junk) met by store_seg_scan. id, sealed and the
 * sums are set for OK and BAD_SUM only; pointers are valid only during
 * the callback. span is the number of bytes from off that the item covers
 * (the record rounded up to STORE_SEG_ALIGN, or the junk run).
 */
struct store_seg_rec {
	uint32_t seg;
	uint64_t off;
	uint64_t span;
	enum store_rec_state state;
	uint32_t len;			/* sealed length in the header */
	const uint8_t *id;		/* 32 bytes */
	const uint8_t *sealed;		/* len bytes */
	uint64_t rec_sum;		/* stored XXH3-64 of id || sealed */
};
typedef int store_seg_scan_fn(void *arg, const struct store_seg_rec *r);

/*
 * Read segment nr sequentially with a buffer of bufsize bytes (at least
 * 4 MiB; larger reads go faster), skipping punched holes and zeroed units,
 * and call fn for every record and every run of junk, in offset order.
 * After a record whose checksum fails, the units it claims are searched
 * only for records whose checksum holds (its length may be the damaged
 * part), so a damaged header neither hides good records nor reports the
 * body of one record as junk. *bytes_read (may be NULL) is advanced as
 * data is read, for progress. A non-zero return of fn stops the scan and
 * is returned. Works on read-only stores. -ENOENT, -EIO, -ENOMEM.
 */
int store_seg_scan(struct store *st, uint32_t nr, size_t bufsize,
		   store_seg_scan_fn *fn, void *arg,
		   uint64_t *bytes_read) MUST_CHECK;

/*
 * Release the span [off, off + len) of segment nr (punch a hole), whatever
 * it holds: for junk and records that no location names. Both must be
 * multiples of STORE_SEG_ALIGN. -EROFS, -EINVAL, -EIO.
 */
int store_seg_punch(struct store *st, uint32_t nr, uint64_t off,
		    uint64_t len) MUST_CHECK;

/*
 * Rebuild RocksDB's manifest of dir/db from the table files present
 * (RocksDB RepairDB), keeping every column family. Keys in lost or
 * truncated table files are gone; everything else is kept. The store
 * must not be open. -EBUSY if another process holds it, -EIO.
 */
int store_repair_db(const char *dir) MUST_CHECK;

/* Name of a column family on disk ("inode", ...). */
const char *store_cf_name(enum store_cf cf);

/*
 * An iterator for one pass over a whole column family: blocks it reads do
 * not displace the block cache, and table files are read ahead. Same use
 * and release as store_iter_new().
 */
int store_iter_new_scan(struct store *st, enum store_cf cf,
			struct store_iter **out) MUST_CHECK;

#endif
