/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_int.h - private to fsck.c, fsck_maps.c, fsck_seal.c,
 * fsck_pass[0-5].c and fsck_compare.c
 *
 * The checker's context (struct fsck) is passed to every pass, as
 * e2fsck_t is. It holds the store, the optional key, the report state and
 * the tables the passes share:
 *
 *   blocks   one 40-byte entry per block id (open addressing, a power of
 *            two of entries at most 80% full: 50 to 100 bytes per block),
 *            the 'L' index loaded by pass 0 when the segment scan starts,
 *            the block column family and the extents by pass 1;
 *   inodes   one 64-byte entry per inode, sorted by number, built at the
 *            start of pass 1 from the inode and dirent column families.
 *
 * Pass 4 keeps its own table of every key the journal wrote (48-byte
 * entries at most 75% full) while it runs and frees it before pass 1.
 */
#ifndef EMBASSYFS_FSCK_INT_H
#define EMBASSYFS_FSCK_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "fsck.h"
#include "journal.h"
#include "key.h"
#include "store.h"
#include "volume.h"

/* ---- problems ---- */

enum fsck_sev {
	FSCK_SEV_INFO,
	FSCK_SEV_WARNING,
	FSCK_SEV_ERROR,
};

enum fsck_pflags {
	FSCK_PF_PREEN_OK = 1 << 0,
	FSCK_PF_NO_OK = 1 << 1,
	FSCK_PF_FATAL = 1 << 2,
	FSCK_PF_KEY = 1 << 3,	/* the repair needs the key */
	FSCK_PF_KEYED = 1 << 4, /* only found with the key */
};

enum fsck_problem_id {
#define FSCK_PROBLEM(sym, code, name, sev, repair, flags, msg) sym,
#include "fsck_problems.def"
#undef FSCK_PROBLEM
	FSCK_PR_COUNT,
};

struct fsck_problem_desc {
	uint32_t code;
	const char *name;
	enum fsck_sev sev;
	const char *repair;
	unsigned flags;
	const char *msg;
};

extern const struct fsck_problem_desc fsck_problems[FSCK_PR_COUNT];

/*
 * Where a problem is (e2fsprogs struct problem_context). Fields left zero
 * are not shown. n1, n2 and str fill %1, %2 and %s of the message.
 */
struct fsck_pctx {
	int cf; /* enum store_cf + 1; 0: none */
	const uint8_t *key;
	size_t klen;
	uint64_t ino;
	bool has_idx;
	uint64_t idx;	   /* block index in the file */
	const uint8_t *id; /* block id (32 bytes) */
	uint64_t seq;
	bool has_seg;
	uint32_t seg;
	uint64_t off;
	uint64_t n1, n2;
	const char *str;
	const char *nofix; /* this one cannot be repaired: why */
	bool journaled;	   /* the repair is a journaled change */
};

#define FSCK_PCTX_CF(c) ((int)(c) + 1)

/* ---- shared tables ---- */

enum fsck_blk_flags {
	FSCK_BLK_USED = 1 << 0,
	FSCK_BLK_IN_L = 1 << 1,	   /* an 'L' location is loaded */
	FSCK_BLK_IN_CF = 1 << 2,   /* the block column family has it */
	FSCK_BLK_REC_OK = 1 << 3,  /* the located record reads back good */
	FSCK_BLK_REC_BAD = 1 << 4, /* the located record is damaged */
	FSCK_BLK_COLLIDE = 1 << 5, /* two ids share a tag: not judged */
	FSCK_BLK_MARKED = 1 << 6,  /* recorded bad ('B') */
	FSCK_BLK_KEY_BAD = 1 << 7, /* keyed: fails authentication */
	FSCK_BLK_ID_BAD = 1 << 8,  /* keyed: contents hash elsewhere */
	FSCK_BLK_PENDING = 1 << 9, /* an 'F' entry releases the located copy */
	FSCK_BLK_CF_BAD = 1 << 10, /* block value malformed */
	FSCK_BLK_LOST = 1 << 11,   /* no usable copy: data lost */
	FSCK_BLK_KEY_OK = 1 << 12, /* keyed: the located copy decrypted */
	FSCK_BLK_GONE = 1 << 13,   /* released by a repair */
	FSCK_BLK_VAL_DIFF =
	    1 << 14, /* value's length or checksum is not the record's */
	FSCK_BLK_SEEN = 1 << 15,  /* the located record was met by the scan */
	FSCK_BLK_MOVED = 1 << 16, /* relocated to a good copy */
	FSCK_BLK_REPORTED = 1 << 17, /* pass 2 reported it missing */
};

struct fsck_blk {
	uint64_t tag;  /* first 8 bytes of the id */
	uint32_t seg;  /* 'L' location: segment, */
	uint32_t offu; /* offset / STORE_SEG_ALIGN, */
	uint32_t len;  /* sealed length */
	uint32_t rc;   /* block value: reference count */
	uint32_t refs; /* extents counted */
	uint32_t flags;
	uint64_t csum; /* block value: XXH3 of id || sealed bytes */
};

struct fsck_blkmap {
	struct fsck_blk *tab;
	size_t cap;
	size_t n;
};

enum fsck_ino_flags {
	FSCK_INO_ORPHAN = 1 << 0, /* on the orphan list */
	FSCK_INO_BAD = 1 << 1,	  /* value malformed: type unknown */
	FSCK_INO_REACHED = 1 << 2,
	FSCK_INO_VISITING = 1 << 3,
	FSCK_INO_CUT = 1 << 4,	   /* not reachable from the root */
	FSCK_INO_DAMAGED = 1 << 5, /* uses a lost block (reported) */
	FSCK_INO_NEW = 1 << 6,	   /* made by this run (lost+found) */
	FSCK_INO_LEFT = 1 << 8,	   /* left disconnected by this run */
};

struct fsck_ino {
	uint64_t ino;
	uint64_t parent; /* the directory of the first entry naming it */
	uint8_t hash[KEY_NAME_HASH_BYTES]; /* that entry's name hash */
	uint32_t nlink;			   /* stored (clear) link count */
	uint32_t links;			   /* entries naming it */
	uint32_t subdirs;  /* entries in it that name directories */
	uint32_t nextents; /* extents counted */
	uint64_t maxidx;   /* highest extent index + 1 */
	uint8_t type;	   /* clear type: mode >> 12 */
	uint8_t pad;
	uint16_t flags;
	uint32_t pad2;
};

struct fsck_inomap {
	struct fsck_ino *tab; /* sorted by ino */
	size_t n;
	size_t cap;
};

/* ---- the checker ---- */

#define FSCK_LATCH_SHOW 8 /* problems of one code listed per pass */

struct fsck_latch {
	uint64_t seen;	 /* in this pass */
	uint64_t hidden; /* not listed */
	uint64_t hidden_fixed;
	int answer; /* ASK mode: -1 not asked, 0 no, 1 yes */
};

struct fsck_stats {
	uint64_t inodes, dirs, files, symlinks, others;
	uint64_t dirents, extents, xattrs, orphans;
	uint64_t blocks, block_bytes; /* sealed bytes of live blocks */
	uint64_t records, rec_bytes;  /* segment records read */
	uint64_t segments, seg_bytes; /* allocated */
	uint64_t journal_records, head_seq, signed_seq;
	uint64_t damaged_files; /* files using a lost block */
	uint64_t keys[STORE_CF_COUNT];
};

struct fsck_p1;

struct fsck_prefetch;

struct fsck {
	struct fsck_prefetch *prefetch; /* reads ahead while pass 0 runs */
	struct fsck_opts o;
	FILE *out;
	bool rw; /* repairs possible */
	/* the store */
	struct store *st;
	struct journal *j; /* opened for the first journaled repair */
	int jerr;	   /* journal_open failed: repairs refused */
	/*
	 * The redo-pending repair was declined: opening the journal would
	 * replay it all the same, so journaled repairs are refused too.
	 */
	bool redo_left;
	bool have_hdr;
	struct volume_header hdr;
	uint8_t hdr_mac[KEY_MAC_BYTES];
	struct key *k;
	struct codec *codec;
	/* run state */
	unsigned pass;
	bool pass_open;
	bool json_first_pass;
	bool json_first_problem;
	struct fsck_latch latch[FSCK_PR_COUNT];
	uint64_t problems, corrected, left;
	bool modified, fatal, operational, library, cancelled, halted, differ;
	bool replay_ok;	    /* pass 4 proved the state */
	bool journal_sound; /* chain complete and unbroken */
	bool state_left;    /* pass 4 left values to restore */
	/* repairs */
	struct journal_txn *txn;
	size_t txn_ops;
	struct store_batch *raw;
	/* tables */
	struct fsck_blkmap blocks;
	struct fsck_inomap inodes;
	uint64_t max_ino;
	uint64_t mounts;     /* super "mounts" */
	uint64_t *lost_inos; /* inodes gone whose extents remain */
	size_t nlost_inos, caplost_inos;
	struct fsck_stats stats;
	struct fsck_p1 *p1; /* pass 1's scan, started by pass 0 */
	/* records the redo log holds whole, not yet written again (-n) */
	struct journal_redo *redo;
	size_t nredo;
	/* column families kept in memory for the walks after pass 1's */
	struct fsck_cf_cache {
		uint8_t *buf; /* entries: be32 klen, be32 vlen, key, value */
		size_t used, cap;
		uint64_t writes; /* f->writes when kept */
		bool on;	 /* holds the head of a walk... */
		bool whole;	 /* ...and all of it */
	} cache[STORE_CF_COUNT];
	_Atomic size_t cache_bytes; /* kept by pass 0's two walkers at once */
	uint64_t writes; /* commits that wrote something */
	/* progress */
	const char *prog_what;
	uint64_t prog_done, prog_total, prog_last;
};

/*
 * Is the record of id (len sealed bytes) at off of seg one the redo log
 * holds whole? With id NULL: does [off, off + len) lie inside one such?
 */
bool fsck_redo_covers(const struct fsck *f, uint32_t seg, uint64_t off,
		      uint64_t len, const uint8_t *id);

/* fsck.c: reporting */
void fsck_pass_begin(struct fsck *f, unsigned pass, const char *title);
void fsck_pass_end(struct fsck *f);
/*
 * Count, print and decide: true when the repair is to be made now (the
 * caller then makes it). A FATAL problem marks the run fatal.
 */
bool fsck_problem(struct fsck *f, enum fsck_problem_id id,
		  const struct fsck_pctx *pc);
/* Stop the passes? (fatal, halted, cancelled, library error) */
bool fsck_stopped(struct fsck *f);
/* A library failure: counted, reported once, the run stops. */
void fsck_lib_error(struct fsck *f, const char *what, int err);
void fsck_progress(struct fsck *f, const char *what, uint64_t done,
		   uint64_t total);
void fsck_progress_bytes(struct fsck *f, const char *what, uint64_t done,
			 uint64_t total);
void fsck_progress_end(struct fsck *f);
/* Path of ino (with the key), or NULL; buf of cap bytes. */
const char *fsck_path(struct fsck *f, uint64_t ino, char *buf, size_t cap);
const char *fsck_hex(char *buf, const void *p, size_t n);

/* fsck.c: repairs */
bool fsck_can_journal(struct fsck *f);
/* The open journaled transaction, or NULL (then the repair is refused). */
struct journal_txn *fsck_txn(struct fsck *f);
/* Note ops added to the transaction; commits when it grows large. */
int fsck_txn_added(struct fsck *f, size_t ops) MUST_CHECK;
struct store_batch *fsck_raw(struct fsck *f);
/* Write the raw batch and commit the transaction. */
int fsck_commit(struct fsck *f) MUST_CHECK;
/* Has the store a usable key (keyed checks)? */
static inline bool fsck_keyed(const struct fsck *f)
{
	return f->k != NULL;
}

/* fsck_maps.c */
/* Monotonic seconds since the last check began, for the debug timings. */
double fsck_now(void);
/* The calling thread's CPU time, s. */
double fsck_cpu(void);
/* Zeroed tables; large ones on huge pages. Free with the same n and size. */
void *fsck_table_calloc(size_t n, size_t size);
void fsck_table_free(void *p, size_t n, size_t size);
int fsck_blk_init(struct fsck_blkmap *m, size_t expect) MUST_CHECK;
void fsck_blk_release(struct fsck_blkmap *m);
struct fsck_blk *fsck_blk_find(const struct fsck_blkmap *m, const uint8_t *id);
/* Find or add; NULL on -ENOMEM. */
struct fsck_blk *fsck_blk_get(struct fsck_blkmap *m, const uint8_t *id);
uint64_t fsck_blk_tag(const uint8_t *id);

int fsck_ino_add(struct fsck_inomap *m, uint64_t ino, uint8_t type,
		 uint32_t nlink, uint16_t flags) MUST_CHECK;
struct fsck_ino *fsck_ino_find(const struct fsck_inomap *m, uint64_t ino);
void fsck_ino_release(struct fsck_inomap *m);

/* fsck_seal.c: values as fs writes them (doc/FORMAT.md), for repairs */
#define FSCK_INODE_CLEAR  8
#define FSCK_INODE_PLAIN  96
#define FSCK_DIRENT_CLEAR 12
#define FSCK_DIRENT_KEY	  (8 + KEY_NAME_HASH_BYTES)
#define FSCK_XATTR_KEY	  (8 + KEY_NAME_HASH_BYTES)
#define FSCK_EXTENT_VAL	  (KEY_ID_BYTES + KEY_MAC_BYTES)
#define FSCK_BLOCK_VAL	  (16 + KEY_MAC_BYTES)
#define FSCK_ORPHAN_VAL	  KEY_MAC_BYTES

void fsck_mac(struct fsck *f, const char *cf, const void *key, size_t klen,
	      const void *val, size_t vlen, uint8_t tag[static KEY_MAC_BYTES]);
int fsck_mac_check(struct fsck *f, const char *cf, const void *key, size_t klen,
		   const void *val, size_t vlen,
		   const uint8_t tag[static KEY_MAC_BYTES]) MUST_CHECK;
/* Open an inode value: plain gets vlen - 8 - overhead bytes. -EUCLEAN. */
int fsck_inode_open(struct fsck *f, uint64_t ino, const uint8_t *val,
		    size_t vlen, uint8_t *plain, size_t *plen) MUST_CHECK;
/* Seal an inode value (out: FSCK_INODE_CLEAR + plen + overhead bytes). */
void fsck_inode_seal(struct fsck *f, uint64_t ino, uint8_t type, uint32_t nlink,
		     const uint8_t *plain, size_t plen, uint8_t *out,
		     size_t *outlen);
/* Open a dirent's name into name (FS name max + 1 bytes, NUL ended). */
int fsck_dirent_open(struct fsck *f, const uint8_t *key, const uint8_t *val,
		     size_t vlen, char *name, size_t *nlen) MUST_CHECK;
/* Key and value of a new dirent. */
void fsck_dirent_seal(struct fsck *f, uint64_t parent, const char *name,
		      size_t nlen, uint64_t child, uint8_t type,
		      uint8_t key[static FSCK_DIRENT_KEY], uint8_t *val,
		      size_t *vlen);
/* Re-seal an existing dirent with another clear type. */
int fsck_dirent_retype(struct fsck *f, const uint8_t *key, const uint8_t *val,
		       size_t vlen, uint8_t type, uint8_t *out,
		       size_t *outlen) MUST_CHECK;
/* Plaintext of a new inode (FSCK_INODE_PLAIN bytes): times now, uid/gid 0. */
void fsck_inode_plain(uint8_t *plain, uint32_t mode, uint64_t size,
		      uint64_t generation, uint64_t nextents);
void fsck_block_val(struct fsck *f, const uint8_t *id, uint32_t rc,
		    uint32_t len, uint64_t csum,
		    uint8_t out[static FSCK_BLOCK_VAL]);
/*
 * Write block id's value afresh from its located record, with the
 * references counted (b->refs): 1 when the put is in the repair
 * transaction (the caller counts it with fsck_txn_added), 0 when the record
 * cannot be read or no repair can be journaled, or -ENOMEM.
 */
int fsck_block_rewrite(struct fsck *f, const uint8_t *id,
		       struct fsck_blk *b) MUST_CHECK;
/* Sign and store the journal head (raw batch). */
void fsck_sign_head(struct fsck *f, const struct journal_head *h);
/* The signed-head message; returns its length. */
size_t fsck_head_msg(const uint8_t volume_id[static VOLUME_ID_BYTES],
		     const struct journal_head *h, uint8_t *msg);

/* The passes; each returns 0 or a library error (also recorded in f). */
int fsck_pass0(struct fsck *f);
int fsck_pass1(struct fsck *f);
int fsck_pass2(struct fsck *f);
int fsck_pass3(struct fsck *f);
int fsck_pass4(struct fsck *f);
int fsck_pass5(struct fsck *f);
/* Load the block index and start reading segments in a thread (pass 0). */
int fsck_pass1_start(struct fsck *f) MUST_CHECK;
/* Stop and forget the scan; NULL-safe. */
void fsck_pass1_stop(struct fsck *f);
/* Pass 0 helpers used by fsck.c before the passes. */
int fsck_open_store(struct fsck *f) MUST_CHECK;
/* fsck_compare.c: --compare, instead of the passes. */
int fsck_compare(struct fsck *f);

/* Iterate a column family; fn gets key/value; non-zero stops (returned). */
typedef int fsck_cf_fn(struct fsck *f, void *arg, const uint8_t *key,
		       size_t klen, const uint8_t *val, size_t vlen);
int fsck_cf_walk(struct fsck *f, enum store_cf cf, const void *prefix,
		 size_t plen, fsck_cf_fn *fn, void *arg) MUST_CHECK;
/*
 * The same for a background thread: it checks *stop instead of the run's
 * state, which the main thread owns.
 */
int fsck_cf_walk_stop(struct fsck *f, enum store_cf cf, const void *prefix,
		      size_t plen, fsck_cf_fn *fn, void *arg,
		      const atomic_bool *stop) MUST_CHECK;

/*
 * Keep cf's keys and values in memory (up to a budget shared by all
 * families), so that the next whole walks of cf read memory instead of
 * RocksDB; pass 1 does it while it waits for the segment scan. A kept
 * family is used only while no commit has written since. 0, or
 * -ECANCELED; a failed read is left for the walk that needs it to report.
 */
int fsck_cf_keep(struct fsck *f, enum store_cf cf) MUST_CHECK;
void fsck_cf_unkeep(struct fsck *f);
/*
 * fsck_cf_walk_stop that also keeps what it reads, as far as the budget
 * goes (pass 0, which reads every family first).
 */
int fsck_cf_walk_keep(struct fsck *f, enum store_cf cf, fsck_cf_fn *fn,
		      void *arg, const atomic_bool *stop) MUST_CHECK;

/* Why a destructive repair waits while pass 4 left values unrestored. */
#define FSCK_NOFIX_STATE "restore the values the journal holds first"

/* Local column family keys. */
#define FSCK_LOCAL_LOC	  'L'
#define FSCK_LOCAL_FREE	  'F'
#define FSCK_LOCAL_CURSOR 'C'
#define FSCK_LOCAL_BAD	  'B' /* 'B' id[32] -> u64 time: recorded bad by fsck */
#define FSCK_LOCAL_REDO	  'W' /* 'W' seg u32 off u64 -> id[32] sealed: redo */

/* Text for a clear type (mode >> 12). */
const char *fsck_type_name(unsigned type);
bool fsck_type_valid(unsigned type);

#endif
