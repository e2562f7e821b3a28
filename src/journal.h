/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * journal.h - operations as journaled write batches, hash chain, signed head
 *
 * Every file-system operation is one struct journal_txn: a RocksDB write
 * batch plus a journal record listing the same changes (puts, deletes,
 * range deletes and "block added" ops that name a block id). Commit gives
 * the record the next sequence number, the epoch and the hash of the
 * previous record, and writes record and changes in one atomic batch, so
 * the store and the journal never disagree.
 *
 * A record holds the exact sealed values written, and absolute values
 * only (reference counts as numbers, not increments): applied to a
 * replica at the previous sequence number it yields the same state, and
 * applied twice it changes nothing. Block bytes are not in the record;
 * a shipper reads them from the segments by id.
 *
 * The chain head (epoch, seq, hash) is signed with the volume's Ed25519
 * key at every journal_sync() and at close, and stored in the super
 * column family under "head": anyone with the public key can check the
 * whole chain without the data key.
 *
 * Record layout (all integers big-endian), see doc/FORMAT.md:
 *   0 u8 version(1)  1 u8 0  2 u16 0  4 u32 op count
 *   8 u64 epoch  16 u64 seq  24 [32] hash of the previous record
 *  56 ops: u8 type, u8 cf, u16 klen, u32 vlen, key, value
 * hash(record) = BLAKE2b-256(all its bytes).
 */
#ifndef EMBASSYFS_JOURNAL_H
#define EMBASSYFS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "key.h"
#include "store.h"

#define JOURNAL_VERSION 1
#define JOURNAL_HDR_BYTES 56
#define JOURNAL_OP_HDR_BYTES 8

enum journal_op_type {
	JOURNAL_OP_PUT = 1,
	JOURNAL_OP_DEL = 2,
	JOURNAL_OP_DEL_RANGE = 3,	/* key = begin, value = end */
	JOURNAL_OP_BLOCK = 4,		/* key = block id: its bytes travel with the record */
};

struct journal_head {
	uint64_t epoch;
	uint64_t seq;
	uint8_t hash[KEY_HASH_BYTES];
};

/* The signed head as stored under super "head": epoch, seq, hash, signature. */
#define JOURNAL_SIGNED_HEAD_BYTES (8 + 8 + KEY_HASH_BYTES + KEY_SIG_BYTES)

struct journal;
struct journal_txn;

/*
 * Open the journal of a store: load the head. k may be NULL (keyless:
 * records can be applied and verified but the head is not re-signed).
 * volume_id binds signatures to the volume. -EUCLEAN if the head is malformed.
 */
int journal_open(struct store *st, const struct key *k,
		 const uint8_t volume_id[static 16], struct journal **out) MUST_CHECK;
/* Sign and write the head if it moved (needs the key), then free. NULL is fine. */
void journal_close(struct journal *j);
void journal_get_head(struct journal *j, struct journal_head *out);

int journal_txn_new(struct journal *j, struct journal_txn **out) MUST_CHECK;
void journal_txn_free(struct journal_txn *t);
/* Journaled changes. */
void journal_txn_put(struct journal_txn *t, enum store_cf cf, const void *key,
		     size_t klen, const void *val, size_t vlen);
void journal_txn_delete(struct journal_txn *t, enum store_cf cf,
			const void *key, size_t klen);
void journal_txn_delete_range(struct journal_txn *t, enum store_cf cf,
			      const void *begin, size_t blen, const void *end,
			      size_t elen);
/* A block whose bytes were appended to a segment at loc (records id; local put of loc). */
void journal_txn_block(struct journal_txn *t, const uint8_t id[static 32],
		       const struct store_loc *loc);
/*
 * The same for a block appended with store_seg_append_redo: its sealed
 * bytes (loc->len) are logged in the batch as a redo entry, so that the
 * WAL alone makes the record durable (see journal.c).
 */
void journal_txn_block_redo(struct journal_txn *t, const uint8_t id[static 32],
			    const struct store_loc *loc, const void *sealed);
/*
 * Sync the segments and delete the redo entries committed so far (the
 * background thread does it on its own; journal_close too). -EIO.
 */
int journal_redo_trim(struct journal *j) MUST_CHECK;
/*
 * The redo entries a crash left (journal_open replays them itself). A
 * record an entry logs is damaged when its block's 'L' entry still names
 * it and it is not whole in its segment; an entry is stale when 'L' names
 * another place or none, unusable when malformed or naming no segment.
 * Without flags nothing changes: the counts, and (list not NULL) each
 * damaged record's place and id in *list (free() it). JOURNAL_REDO_WRITE
 * writes the damaged records again, syncs and deletes every entry but the
 * unusable ones; JOURNAL_REDO_DROP_BAD deletes those. -EROFS, -EIO,
 * -ENOMEM.
 */
#define JOURNAL_REDO_WRITE    1u
#define JOURNAL_REDO_DROP_BAD 2u
struct journal_redo_stats {
	size_t entries, damaged, stale, unusable;
};
struct journal_redo {
	struct store_loc loc;
	uint8_t id[32];
};
int journal_redo_replay(struct store *st, unsigned flags,
			struct journal_redo_stats *out,
			struct journal_redo **list) MUST_CHECK;
/*
 * The sealed bytes (loc->len) that the redo entry of the record at loc
 * logs for block id: what a read-only mount reads for a damaged record it
 * cannot write again. -ENOENT if no entry logs that record, -EIO, -ENOMEM.
 */
int journal_redo_get(struct store *st, const struct store_loc *loc,
		     const uint8_t id[static 32], void *sealed) MUST_CHECK;
/* Changes local to this store (STORE_CF_LOCAL), not journaled. */
void journal_txn_local_put(struct journal_txn *t, const void *key, size_t klen,
			   const void *val, size_t vlen);
void journal_txn_local_delete(struct journal_txn *t, const void *key,
			      size_t klen);
bool journal_txn_empty(const struct journal_txn *t);

/*
 * Commit atomically; *seq (may be NULL) receives the record's number.
 * With sync, the record is durable (and the head signed) on return.
 * The txn is cleared for reuse. -EROFS, -ENOSPC, -EIO.
 */
int journal_commit(struct journal *j, struct journal_txn *t, bool sync,
		   uint64_t *seq) MUST_CHECK;
/* Make every committed record durable and sign the head (group commit). */
int journal_sync(struct journal *j) MUST_CHECK;

/*
 * Replication cursors (name up to 64 bytes): a block freed at seq s is kept
 * (pinned) until every cursor has passed s. journal_cursor_set creates or
 * moves one; journal_cursor_del removes it. journal_min_cursor returns
 * UINT64_MAX when there is none.
 */
int journal_cursor_set(struct journal *j, const char *name, uint64_t seq) MUST_CHECK;
int journal_cursor_del(struct journal *j, const char *name) MUST_CHECK;
uint64_t journal_min_cursor(struct journal *j);
/*
 * Free a block's segment space at commit of t, or pin it until the
 * cursors pass the record when there are cursors.
 */
void journal_txn_release_block(struct journal_txn *t,
			       const uint8_t id[static 32],
			       const struct store_loc *loc);
/* Release pinned blocks that every cursor has passed. */
int journal_reap(struct journal *j) MUST_CHECK;
/*
 * Stop releasing blocks in the background (fsck: nothing may be punched
 * under its scan); journal_reap() and journal_close() still release them.
 */
void journal_reaper_off(struct journal *j);

/*
 * Parse one record (untrusted bytes). fn is called per op. -EUCLEAN on any
 * malformation (lengths, unknown type or cf, trailing bytes).
 */
typedef int journal_op_fn(void *arg, enum journal_op_type type,
			  enum store_cf cf, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen);
int journal_record_parse(const uint8_t *rec, size_t len,
			 struct journal_head *hdr_out, uint8_t prev[static 32],
			 journal_op_fn *fn, void *arg) MUST_CHECK;
/* The same without hashing the record: hdr_out->hash is left zero. */
int journal_record_parse_nohash(const uint8_t *rec, size_t len,
				struct journal_head *hdr_out,
				uint8_t prev[static 32], journal_op_fn *fn,
				void *arg) MUST_CHECK;

/* Read record seq of this store's journal (malloc'd). -ENOENT if trimmed or absent. */
int journal_read(struct journal *j, uint64_t seq, uint8_t **rec,
		 size_t *len) MUST_CHECK;

/*
 * Apply a record produced by another store's journal (replication, replay).
 * fetch(arg, id, &buf, &len) supplies the sealed bytes of each block op
 * (malloc'd; the journal frees). A record at or below the head is ignored
 * (idempotent); one that does not chain onto the head is -EUCLEAN.
 */
typedef int journal_fetch_fn(void *arg, const uint8_t id[static 32],
			     uint8_t **sealed, size_t *len);
int journal_apply(struct journal *j, const uint8_t *rec, size_t len,
		  journal_fetch_fn *fetch, void *arg) MUST_CHECK;

#endif
