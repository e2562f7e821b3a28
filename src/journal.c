/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * journal.c - operations as journaled write batches, hash chain, signed head
 *
 * Commit is the one serialisation point of the store: under j->lock a
 * transaction gets the next sequence number and the hash of the previous
 * record, and its batch (changes + record) is handed to RocksDB. Everything
 * expensive (sealing, compression, segment writes) happens before, outside
 * the lock.
 *
 * Crash ordering of freed blocks: a block's segment bytes may be punched
 * only once the record that dropped its last reference is durable (and, if
 * there are replication cursors, shipped). So the freeing transaction
 * writes a "F" entry (seq, id -> location) to the local column family in
 * the same batch, and journal_reap() punches and deletes entries whose
 * record is both synced and below every cursor. After a crash, the entries
 * of records that survived are found and reaped on the next open.
 *
 * Local column family keys:
 *   'L' id[32]            -> location (16)      where a block's bytes are
 *   'F' seq u64 id[32]    -> location (16)      freed, awaiting reap
 *
 * A freed block keeps its 'L' entry until it is reaped, so that a shipper
 * still finds the bytes of a record it has not sent yet by id. If the same
 * block is stored again meanwhile, 'L' points at the new copy and the reap
 * punches only the old one.
 *   'C' name              -> seq u64            replication cursor
 *   'W' seg u32 off u64   -> id[32] sealed      redo of a record appended
 *                                               without fdatasync
 *
 * Redo. A small flush made for an fsync appends its records with
 * store_seg_append_redo and logs their sealed bytes as 'W' entries in the
 * same batch as the 'L' entries that name them, so that the fsync waits
 * for one device flush (the WAL's) instead of two. The segments are
 * synced later, in the background (journal_redo_trim: when the entries
 * reach JOURNAL_REDO_BYTES, a few seconds after the last trim, and at
 * close), and only then are the entries deleted. After a crash,
 * journal_open() writes again every logged record that 'L' still names
 * and that did not reach its segment whole, before anything is appended.
 */
#include "journal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define HEAD_KEY "head"
#define JOURNAL_REDO_KEY_BYTES 13
/* Trim the redo entries when they hold this much, or this long after the last trim. */
#define JOURNAL_REDO_BYTES (16u << 20)
#define JOURNAL_REDO_SECS 5
#define HEAD_SIG_CONTEXT "embassyfs-head-v1"

struct journal {
	struct store *st;
	const struct key *k;
	uint8_t volume_id[16];
	pthread_mutex_t lock;		/* commit order, head */
	struct journal_head head;
	pthread_mutex_t sync_lock;	/* one syncer at a time */
	/* Records <= this are durable: written under sync_lock, read by the reaper. */
	_Atomic uint64_t synced_seq;
	uint64_t signed_seq;		/* head stored and signed at this seq */
	uint64_t min_cursor;		/* UINT64_MAX: no cursor */
	/*
	 * Reaps start past what they already deleted: seeking to the bare 'F'
	 * prefix would step over every tombstone earlier reaps left.
	 */
	pthread_mutex_t reap_lock;
	uint64_t reaped;		/* 'F' entries below this seq are gone */
	/*
	 * Reaping runs on its own thread, woken after each sync, so that the
	 * punches of a large deletion do not sit in an fsync's latency.
	 */
	pthread_t reaper;
	bool reaper_on;
	pthread_mutex_t reaper_lock;
	pthread_cond_t reaper_wake;
	bool reap_wanted;
	bool reaper_stop;
	/* Redo entries committed since the last trim (under lock). */
	uint8_t (*redo)[JOURNAL_REDO_KEY_BYTES];
	size_t nredo;
	size_t capredo;
	uint64_t redo_bytes;
	struct timespec redo_trimmed;	/* CLOCK_MONOTONIC */
	pthread_mutex_t trim_lock;	/* one trim at a time */
};

struct journal_txn {
	struct journal *j;
	struct store_batch *b;
	uint8_t *rec;
	size_t len;
	size_t cap;
	uint32_t nops;
	struct {
		uint8_t id[32];
		struct store_loc loc;
	} *frees;
	size_t nfrees;
	size_t capfrees;
	uint8_t (*redo)[JOURNAL_REDO_KEY_BYTES];
	size_t nredo;
	size_t capredo;
	uint64_t redo_bytes;
};

static int rec_reserve(struct journal_txn *t, size_t more)
{
	size_t need = t->len + more;
	uint8_t *p;

	if (need <= t->cap)
		return 0;
	if (t->cap == 0)
		t->cap = 4096;
	while (t->cap < need)
		t->cap *= 2;
	p = realloc(t->rec, t->cap);
	if (!p)
		abort();	/* see journal_txn_put: no error path by contract */
	t->rec = p;
	return 0;
}

static void rec_op(struct journal_txn *t, enum journal_op_type type,
		   enum store_cf cf, const void *key, size_t klen,
		   const void *val, size_t vlen)
{
	uint8_t *p;

	(void)rec_reserve(t, JOURNAL_OP_HDR_BYTES + klen + vlen);
	p = t->rec + t->len;
	p[0] = (uint8_t)type;
	p[1] = (uint8_t)cf;
	put_be16(p + 2, (uint16_t)klen);
	put_be32(p + 4, (uint32_t)vlen);
	memcpy(p + JOURNAL_OP_HDR_BYTES, key, klen);
	if (vlen)
		memcpy(p + JOURNAL_OP_HDR_BYTES + klen, val, vlen);
	t->len += JOURNAL_OP_HDR_BYTES + klen + vlen;
	t->nops++;
}

static void head_sig_msg(const struct journal *j, const struct journal_head *h,
			 uint8_t *msg, size_t *len)
{
	size_t n = sizeof(HEAD_SIG_CONTEXT) - 1;

	memcpy(msg, HEAD_SIG_CONTEXT, n);
	memcpy(msg + n, j->volume_id, 16);
	put_be64(msg + n + 16, h->epoch);
	put_be64(msg + n + 24, h->seq);
	memcpy(msg + n + 32, h->hash, KEY_HASH_BYTES);
	*len = n + 32 + KEY_HASH_BYTES;
}

static int load_cursors(struct journal *j)
{
	struct store_iter *it = NULL;
	uint64_t min = UINT64_MAX;
	int ret;

	ret = store_iter_new(j->st, STORE_CF_LOCAL, &it);
	if (ret)
		return ret;
	for (store_iter_seek(it, "C", 1); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (klen < 1 || k[0] != 'C')
			break;
		if (vlen != 8) {
			ret = -EUCLEAN;
			goto out;
		}
		min = MIN(min, get_be64(v));
	}
	ret = store_iter_status(it);
	j->min_cursor = min;
out:
	store_iter_free(it);
	return ret;
}

static int load_head(struct journal *j)
{
	struct store_iter *it = NULL;
	int ret;

	memset(&j->head, 0, sizeof(j->head));
	j->head.epoch = 1;
	ret = store_iter_new(j->st, STORE_CF_JOURNAL, &it);
	if (ret)
		return ret;
	store_iter_seek_last(it);
	if (store_iter_valid(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (klen != 8 || vlen < JOURNAL_HDR_BYTES ||
		    get_be64(v + 16) != get_be64(k)) {
			log_err("journal record %llu is malformed",
				klen == 8 ? (unsigned long long)get_be64(k) : 0ULL);
			ret = -EUCLEAN;
			goto out;
		}
		j->head.epoch = get_be64(v + 8);
		j->head.seq = get_be64(k);
		key_hash(v, vlen, j->head.hash);
	}
	ret = store_iter_status(it);
out:
	store_iter_free(it);
	return ret;
}

static bool redo_due(struct journal *j)
{
	struct timespec now;
	bool due;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&j->lock);
	due = j->nredo && (j->redo_bytes >= JOURNAL_REDO_BYTES ||
			   now.tv_sec - j->redo_trimmed.tv_sec >=
			   JOURNAL_REDO_SECS);
	pthread_mutex_unlock(&j->lock);
	return due;
}

static void *reaper_main(void *arg)
{
	struct journal *j = arg;

	pthread_mutex_lock(&j->reaper_lock);
	for (;;) {
		while (!j->reap_wanted && !j->reaper_stop)
			pthread_cond_wait(&j->reaper_wake, &j->reaper_lock);
		if (j->reaper_stop)
			break;
		/*
		 * Coalesce: at most one reap a second, so that punches do not
		 * contend with every fsync on the segment they touch.
		 */
		{
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			while (!j->reaper_stop &&
			       pthread_cond_timedwait(&j->reaper_wake,
						      &j->reaper_lock,
						      &until) == 0)
				;
			if (j->reaper_stop)
				break;
		}
		j->reap_wanted = false;
		pthread_mutex_unlock(&j->reaper_lock);
		if (journal_reap(j))
			log_err("cannot release the space of deleted blocks; "
				"it is retried at the next sync");
		if (redo_due(j) && journal_redo_trim(j))
			log_err("cannot sync the segments of store '%s'; "
				"their redo entries are kept", store_path(j->st));
		pthread_mutex_lock(&j->reaper_lock);
	}
	pthread_mutex_unlock(&j->reaper_lock);
	return NULL;
}

static void reaper_kick(struct journal *j)
{
	if (!j->reaper_on)
		return;
	pthread_mutex_lock(&j->reaper_lock);
	j->reap_wanted = true;
	pthread_cond_signal(&j->reaper_wake);
	pthread_mutex_unlock(&j->reaper_lock);
}

int journal_open(struct store *st, const struct key *k,
		 const uint8_t volume_id[static 16], struct journal **out)
{
	struct journal *j;
	uint8_t buf[JOURNAL_SIGNED_HEAD_BYTES];
	size_t len;
	int ret;

	*out = NULL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->st = st;
	j->k = k;
	memcpy(j->volume_id, volume_id, 16);
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->sync_lock, NULL);
	pthread_mutex_init(&j->reap_lock, NULL);
	pthread_mutex_init(&j->reaper_lock, NULL);
	pthread_mutex_init(&j->trim_lock, NULL);
	pthread_cond_init(&j->reaper_wake, NULL);
	clock_gettime(CLOCK_MONOTONIC, &j->redo_trimmed);
	ret = load_head(j);
	if (ret)
		goto out;
	ret = load_cursors(j);
	if (ret)
		goto out;
	/* Whatever RocksDB recovered is durable now. */
	atomic_init(&j->synced_seq, j->head.seq);
	ret = store_get_buf(st, STORE_CF_SUPER, HEAD_KEY, strlen(HEAD_KEY), buf,
			    sizeof(buf), &len);
	if (ret == 0 && len == sizeof(buf) &&
	    get_be64(buf + 8) == j->head.seq)
		j->signed_seq = j->head.seq;
	else if (ret && ret != -ENOENT && ret != -ENOSPC)
		goto out;
	if (!store_rdonly(st)) {
		ret = journal_redo_replay(st, JOURNAL_REDO_WRITE, NULL, NULL);
		if (ret)
			goto out;
		ret = journal_reap(j);
		if (ret)
			goto out;
		if (pthread_create(&j->reaper, NULL, reaper_main, j) == 0)
			j->reaper_on = true;
	}
	ret = 0;
	*out = j;
out:
	if (ret)
		journal_close(j);
	return ret;
}

void journal_reaper_off(struct journal *j)
{
	if (!j->reaper_on)
		return;
	pthread_mutex_lock(&j->reaper_lock);
	j->reaper_stop = true;
	pthread_cond_signal(&j->reaper_wake);
	pthread_mutex_unlock(&j->reaper_lock);
	pthread_join(j->reaper, NULL);
	j->reaper_on = false;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->k && !store_rdonly(j->st) && j->signed_seq != j->head.seq)
		if (journal_sync(j))
			log_err("cannot sign the journal head at close");
	journal_reaper_off(j);
	/* Space of everything deleted comes back by the end of the unmount. */
	if (!store_rdonly(j->st) && journal_reap(j))
		log_err("cannot release the space of deleted blocks at close");
	if (!store_rdonly(j->st) && journal_redo_trim(j))
		log_err("cannot sync the segments of store '%s' at close; the "
			"next open replays their redo entries",
			store_path(j->st));
	free(j->redo);
	pthread_mutex_destroy(&j->trim_lock);
	pthread_mutex_destroy(&j->reaper_lock);
	pthread_cond_destroy(&j->reaper_wake);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->sync_lock);
	pthread_mutex_destroy(&j->reap_lock);
	free(j);
}

void journal_get_head(struct journal *j, struct journal_head *out)
{
	pthread_mutex_lock(&j->lock);
	*out = j->head;
	pthread_mutex_unlock(&j->lock);
}

int journal_txn_new(struct journal *j, struct journal_txn **out)
{
	struct journal_txn *t;
	int ret;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->j = j;
	ret = store_batch_new(&t->b);
	if (ret) {
		free(t);
		return ret;
	}
	(void)rec_reserve(t, JOURNAL_HDR_BYTES);
	t->len = JOURNAL_HDR_BYTES;
	*out = t;
	return 0;
}

void journal_txn_free(struct journal_txn *t)
{
	if (!t)
		return;
	store_batch_free(t->b);
	free(t->rec);
	free(t->frees);
	free(t->redo);
	free(t);
}

static void txn_clear(struct journal_txn *t)
{
	store_batch_clear(t->b);
	t->len = JOURNAL_HDR_BYTES;
	t->nops = 0;
	t->nfrees = 0;
	t->nredo = 0;
	t->redo_bytes = 0;
}

void journal_txn_put(struct journal_txn *t, enum store_cf cf, const void *key,
		     size_t klen, const void *val, size_t vlen)
{
	store_batch_put(t->b, cf, key, klen, val, vlen);
	rec_op(t, JOURNAL_OP_PUT, cf, key, klen, val, vlen);
}

void journal_txn_delete(struct journal_txn *t, enum store_cf cf,
			const void *key, size_t klen)
{
	store_batch_delete(t->b, cf, key, klen);
	rec_op(t, JOURNAL_OP_DEL, cf, key, klen, NULL, 0);
}

void journal_txn_delete_range(struct journal_txn *t, enum store_cf cf,
			      const void *begin, size_t blen, const void *end,
			      size_t elen)
{
	store_batch_delete_range(t->b, cf, begin, blen, end, elen);
	rec_op(t, JOURNAL_OP_DEL_RANGE, cf, begin, blen, end, elen);
}

static void loc_key(uint8_t key[33], const uint8_t id[static 32])
{
	key[0] = 'L';
	memcpy(key + 1, id, 32);
}

void journal_txn_block(struct journal_txn *t, const uint8_t id[static 32],
		       const struct store_loc *loc)
{
	uint8_t key[33], val[STORE_LOC_BYTES];

	loc_key(key, id);
	store_loc_encode(loc, val);
	store_batch_put(t->b, STORE_CF_LOCAL, key, sizeof(key), val, sizeof(val));
	rec_op(t, JOURNAL_OP_BLOCK, STORE_CF_BLOCK, id, 32, NULL, 0);
}

static void redo_key(uint8_t key[static JOURNAL_REDO_KEY_BYTES],
		     const struct store_loc *loc)
{
	key[0] = 'W';
	put_be32(key + 1, loc->seg);
	put_be64(key + 5, loc->off);
}

void journal_txn_block_redo(struct journal_txn *t, const uint8_t id[static 32],
			    const struct store_loc *loc, const void *sealed)
{
	uint8_t *val;

	if (t->nredo == t->capredo) {
		size_t cap = t->capredo ? 2 * t->capredo : 16;
		void *p = realloc(t->redo, cap * sizeof(*t->redo));

		if (!p)
			abort();	/* see journal_txn_put */
		t->redo = p;
		t->capredo = cap;
	}
	val = malloc(32 + (size_t)loc->len);
	if (!val)
		abort();
	memcpy(val, id, 32);
	memcpy(val + 32, sealed, loc->len);
	redo_key(t->redo[t->nredo], loc);
	store_batch_put(t->b, STORE_CF_LOCAL, t->redo[t->nredo],
			JOURNAL_REDO_KEY_BYTES, val, 32 + (size_t)loc->len);
	free(val);
	t->nredo++;
	t->redo_bytes += 32 + (uint64_t)loc->len;
	journal_txn_block(t, id, loc);
}

int journal_redo_get(struct store *st, const struct store_loc *loc,
		     const uint8_t id[static 32], void *sealed)
{
	uint8_t key[JOURNAL_REDO_KEY_BYTES], *val;
	size_t vlen;
	int ret;

	redo_key(key, loc);
	val = malloc(32 + (size_t)loc->len);
	if (!val)
		return -ENOMEM;
	ret = store_get_buf(st, STORE_CF_LOCAL, key, sizeof(key), val,
			    32 + (size_t)loc->len, &vlen);
	if (ret == -ENOSPC || (ret == 0 && (vlen != 32 + (size_t)loc->len ||
					    memcmp(val, id, 32))))
		ret = -ENOENT;	/* logs another record: not this one's */
	if (ret == 0)
		memcpy(sealed, val + 32, loc->len);
	free(val);
	return ret;
}

/* Keep the keys of a committed txn's redo entries for the next trim (under lock). */
static void txn_keep_redo(struct journal *j, struct journal_txn *t)
{
	if (!t->nredo)
		return;
	if (j->nredo + t->nredo > j->capredo) {
		size_t cap = j->capredo ? j->capredo : 64;
		void *p;

		while (cap < j->nredo + t->nredo)
			cap *= 2;
		p = realloc(j->redo, cap * sizeof(*j->redo));
		if (!p)
			abort();
		j->redo = p;
		j->capredo = cap;
	}
	memcpy(j->redo + j->nredo, t->redo, t->nredo * sizeof(*t->redo));
	j->nredo += t->nredo;
	j->redo_bytes += t->redo_bytes;
}

int journal_redo_trim(struct journal *j)
{
	struct store_batch *b = NULL;
	uint8_t (*keys)[JOURNAL_REDO_KEY_BYTES];
	uint64_t bytes;
	size_t n;
	int ret;

	if (store_rdonly(j->st))
		return 0;
	pthread_mutex_lock(&j->trim_lock);
	pthread_mutex_lock(&j->lock);
	keys = j->redo;
	n = j->nredo;
	bytes = j->redo_bytes;
	j->redo = NULL;
	j->nredo = j->capredo = 0;
	j->redo_bytes = 0;
	clock_gettime(CLOCK_MONOTONIC, &j->redo_trimmed);
	pthread_mutex_unlock(&j->lock);
	ret = 0;
	if (n == 0)
		goto out;
	/* The records these entries log are on disk before the entries go. */
	ret = store_seg_sync_all(j->st);
	if (ret == 0)
		ret = store_batch_new(&b);
	if (ret == 0) {
		for (size_t q = 0; q < n; q++)
			store_batch_delete(b, STORE_CF_LOCAL, keys[q],
					   JOURNAL_REDO_KEY_BYTES);
		ret = store_write(j->st, b, false);
	}
	log_dbg(LOG_DBG_JOURNAL, "redo trim entries=%zu rc=%d", n, ret);
	if (ret) {
		/* Keep them for the next trim (or the replay at the next open). */
		struct journal_txn back = {
			.redo = keys, .nredo = n, .redo_bytes = bytes };

		pthread_mutex_lock(&j->lock);
		txn_keep_redo(j, &back);
		pthread_mutex_unlock(&j->lock);
	}
out:
	pthread_mutex_unlock(&j->trim_lock);
	store_batch_free(b);
	free(keys);
	return ret;
}

/*
 * After a crash: each logged record that its block's 'L' entry still names
 * and that did not reach its segment whole is damaged; see journal.h.
 */
int journal_redo_replay(struct store *st, unsigned flags,
			struct journal_redo_stats *out,
			struct journal_redo **list)
{
	bool write = flags & JOURNAL_REDO_WRITE;
	struct store_iter *it = NULL;
	struct store_batch *b = NULL;
	struct journal_redo_stats n = {0};
	size_t cap = 0;
	int ret;

	if (list)
		*list = NULL;
	if ((flags & (JOURNAL_REDO_WRITE | JOURNAL_REDO_DROP_BAD)) &&
	    store_rdonly(st))
		return -EROFS;
	ret = store_iter_new(st, STORE_CF_LOCAL, &it);
	if (ret == 0)
		ret = store_batch_new(&b);
	if (ret)
		goto out;
	for (store_iter_seek(it, "W", 1); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen, vlen, llen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);
		uint8_t lkey[33], lval[STORE_LOC_BYTES];
		struct store_loc loc, cur;
		int r;

		if (klen < 1 || k[0] != 'W')
			break;
		n.entries++;
		if (klen != JOURNAL_REDO_KEY_BYTES || vlen < 32 ||
		    vlen - 32 > UINT32_MAX) {
			n.unusable++;
			goto unusable;
		}
		loc.seg = get_be32(k + 1);
		loc.off = get_be64(k + 5);
		loc.len = (uint32_t)(vlen - 32);
		loc_key(lkey, v);
		ret = store_get_buf(st, STORE_CF_LOCAL, lkey, sizeof(lkey),
				    lval, sizeof(lval), &llen);
		if (ret == 0)
			ret = store_loc_decode(lval, llen, &cur);
		if (ret == -ENOENT || (ret == 0 &&
		    (cur.seg != loc.seg || cur.off != loc.off ||
		     cur.len != loc.len))) {
			n.stale++;	/* released, or stored again elsewhere */
			if (write)
				store_batch_delete(b, STORE_CF_LOCAL, k, klen);
			ret = 0;
			continue;
		}
		if (ret == -ENOSPC || ret == -EUCLEAN) {
			n.unusable++;	/* a malformed 'L': fsck's business */
			ret = 0;
			goto unusable;
		}
		if (ret)
			goto out;
		r = store_seg_rec_whole(st, &loc, v);
		if (r == -EUCLEAN) {
			n.unusable++;	/* no such segment, or a bad place */
			ret = 0;
			goto unusable;
		}
		if (r < 0) {
			ret = r;
			goto out;
		}
		if (r == 0) {
			if (write) {
				r = store_seg_redo(st, &loc, v, v + 32);
				if (r < 0) {
					ret = r;
					goto out;
				}
			}
			if (list) {
				if (n.damaged == cap) {
					void *p;

					cap = cap ? 2 * cap : 16;
					p = realloc(*list, cap * sizeof(**list));
					if (!p) {
						ret = -ENOMEM;
						goto out;
					}
					*list = p;
				}
				(*list)[n.damaged].loc = loc;
				memcpy((*list)[n.damaged].id, v, 32);
			}
			n.damaged++;
		}
		if (write)
			store_batch_delete(b, STORE_CF_LOCAL, k, klen);
		continue;
unusable:
		if (flags & JOURNAL_REDO_DROP_BAD)
			store_batch_delete(b, STORE_CF_LOCAL, k, klen);
	}
	ret = store_iter_status(it);
	if (ret || store_batch_count(b) == 0)
		goto out;
	if (write)
		ret = store_seg_sync_all(st);
	if (ret == 0)
		ret = store_write(st, b, true);
	if (ret == 0 && write && n.damaged)
		log_notice("store '%s': %zu block(s) of synchronous writes that "
			   "a crash kept from their segment were written again "
			   "from the redo log", store_path(st), n.damaged);
out:
	if (ret == 0 && n.unusable && !(flags & JOURNAL_REDO_DROP_BAD) &&
	    (flags & JOURNAL_REDO_WRITE))
		log_warn("store '%s': %zu redo entr%s cannot be replayed; run "
			 "fsck.embassyfs", store_path(st), n.unusable,
			 n.unusable == 1 ? "y" : "ies");
	log_dbg(LOG_DBG_JOURNAL, "redo flags=%u entries=%zu damaged=%zu "
		"stale=%zu unusable=%zu rc=%d", flags, n.entries, n.damaged,
		n.stale, n.unusable, ret);
	store_batch_free(b);
	store_iter_free(it);
	if (ret && list) {
		free(*list);
		*list = NULL;
	}
	if (out)
		*out = n;
	return ret;
}

void journal_txn_local_put(struct journal_txn *t, const void *key, size_t klen,
			   const void *val, size_t vlen)
{
	store_batch_put(t->b, STORE_CF_LOCAL, key, klen, val, vlen);
}

void journal_txn_local_delete(struct journal_txn *t, const void *key,
			      size_t klen)
{
	store_batch_delete(t->b, STORE_CF_LOCAL, key, klen);
}

bool journal_txn_empty(const struct journal_txn *t)
{
	return t->nops == 0 && store_batch_count(t->b) == 0;
}

void journal_txn_release_block(struct journal_txn *t,
			       const uint8_t id[static 32],
			       const struct store_loc *loc)
{
	if (t->nfrees == t->capfrees) {
		size_t cap = t->capfrees ? 2 * t->capfrees : 16;
		void *p = realloc(t->frees, cap * sizeof(*t->frees));

		if (!p)
			abort();
		t->frees = p;
		t->capfrees = cap;
	}
	memcpy(t->frees[t->nfrees].id, id, 32);
	t->frees[t->nfrees].loc = *loc;
	t->nfrees++;
}

/* The "F" entries need the record's seq, known only under the lock. */
static void txn_add_frees(struct journal_txn *t, uint64_t seq)
{
	uint8_t key[1 + 8 + 32], val[STORE_LOC_BYTES];

	key[0] = 'F';
	put_be64(key + 1, seq);
	for (size_t i = 0; i < t->nfrees; i++) {
		memcpy(key + 9, t->frees[i].id, 32);
		store_loc_encode(&t->frees[i].loc, val);
		store_batch_put(t->b, STORE_CF_LOCAL, key, sizeof(key), val,
				sizeof(val));
	}
}

int journal_commit(struct journal *j, struct journal_txn *t, bool sync,
		   uint64_t *seqp)
{
	uint8_t key[8], hash[KEY_HASH_BYTES];
	uint64_t seq;
	int ret;

	if (store_rdonly(j->st))
		return -EROFS;
	if (journal_txn_empty(t))
		return 0;
	pthread_mutex_lock(&j->lock);
	seq = j->head.seq + 1;
	t->rec[0] = JOURNAL_VERSION;
	t->rec[1] = 0;
	put_be16(t->rec + 2, 0);
	put_be32(t->rec + 4, t->nops);
	put_be64(t->rec + 8, j->head.epoch);
	put_be64(t->rec + 16, seq);
	memcpy(t->rec + 24, j->head.hash, KEY_HASH_BYTES);
	key_hash(t->rec, t->len, hash);
	put_be64(key, seq);
	store_batch_put(t->b, STORE_CF_JOURNAL, key, sizeof(key), t->rec, t->len);
	txn_add_frees(t, seq);
	ret = store_write(j->st, t->b, false);
	if (ret == 0) {
		j->head.seq = seq;
		memcpy(j->head.hash, hash, KEY_HASH_BYTES);
		txn_keep_redo(j, t);
	}
	pthread_mutex_unlock(&j->lock);
	log_dbg(LOG_DBG_JOURNAL, "commit seq=%llu ops=%u bytes=%zu rc=%d",
		(unsigned long long)seq, t->nops, t->len, ret);
	txn_clear(t);
	if (ret)
		return ret;
	if (seqp)
		*seqp = seq;
	if (sync)
		ret = journal_sync(j);
	return ret;
}

int journal_sync(struct journal *j)
{
	struct store_batch *b = NULL;
	struct journal_head h;
	uint8_t msg[64 + KEY_HASH_BYTES], val[JOURNAL_SIGNED_HEAD_BYTES];
	size_t mlen;
	int ret;

	if (store_rdonly(j->st))
		return 0;
	pthread_mutex_lock(&j->sync_lock);
	journal_get_head(j, &h);
	if (h.seq == atomic_load(&j->synced_seq) &&
	    (!j->k || h.seq == j->signed_seq)) {
		/* Nothing journaled since; data-only syncs still need the segments. */
		ret = store_sync(j->st);
		goto out;
	}
	if (j->k) {
		ret = store_batch_new(&b);
		if (ret)
			goto out;
		put_be64(val, h.epoch);
		put_be64(val + 8, h.seq);
		memcpy(val + 16, h.hash, KEY_HASH_BYTES);
		head_sig_msg(j, &h, msg, &mlen);
		key_sign(j->k, msg, mlen, val + 16 + KEY_HASH_BYTES);
		store_batch_put(b, STORE_CF_SUPER, HEAD_KEY, strlen(HEAD_KEY), val,
				sizeof(val));
		ret = store_write(j->st, b, true);
		if (ret == 0)
			j->signed_seq = h.seq;
	} else {
		ret = store_sync(j->st);
	}
	if (ret == 0)
		atomic_store(&j->synced_seq, h.seq);
out:
	pthread_mutex_unlock(&j->sync_lock);
	store_batch_free(b);
	if (ret == 0)
		reaper_kick(j);
	return ret;
}

/* Put (val) or delete (val NULL) cursor name, then reload the minimum. */
static int cursor_write(struct journal *j, const char *name,
			const uint8_t *val)
{
	struct store_batch *b = NULL;
	uint8_t key[65];
	size_t n = strlen(name);
	int ret;

	if (n == 0 || n > 64)
		return -EINVAL;
	key[0] = 'C';
	memcpy(key + 1, name, n);
	ret = store_batch_new(&b);
	if (ret)
		return ret;
	if (val)
		store_batch_put(b, STORE_CF_LOCAL, key, n + 1, val, 8);
	else
		store_batch_delete(b, STORE_CF_LOCAL, key, n + 1);
	ret = store_write(j->st, b, true);
	store_batch_free(b);
	if (ret)
		return ret;
	pthread_mutex_lock(&j->lock);
	ret = load_cursors(j);
	pthread_mutex_unlock(&j->lock);
	if (ret == 0)
		ret = journal_reap(j);
	return ret;
}

int journal_cursor_set(struct journal *j, const char *name, uint64_t seq)
{
	uint8_t val[8];

	put_be64(val, seq);
	return cursor_write(j, name, val);
}

int journal_cursor_del(struct journal *j, const char *name)
{
	return cursor_write(j, name, NULL);
}

uint64_t journal_min_cursor(struct journal *j)
{
	uint64_t v;

	pthread_mutex_lock(&j->lock);
	v = j->min_cursor;
	pthread_mutex_unlock(&j->lock);
	return v;
}

/* Drop the 'L' entry of a reaped block unless it names a newer copy. */
static int reap_index(struct journal *j, struct store_batch *b,
		      const uint8_t id[static 32], const struct store_loc *loc)
{
	uint8_t key[33], val[STORE_LOC_BYTES];
	struct store_loc cur;
	size_t len;
	int ret;

	loc_key(key, id);
	ret = store_get_buf(j->st, STORE_CF_LOCAL, key, sizeof(key), val,
			    sizeof(val), &len);
	if (ret == -ENOENT)
		return 0;
	if (ret == 0)
		ret = store_loc_decode(val, len, &cur);
	if (ret)
		return ret;
	if (cur.seg == loc->seg && cur.off == loc->off)
		store_batch_delete(b, STORE_CF_LOCAL, key, sizeof(key));
	return 0;
}

struct reap_ent {
	struct store_loc loc;
	uint8_t id[32];
};

static int reap_cmp(const void *a, const void *b)
{
	const struct store_loc *x = &((const struct reap_ent *)a)->loc;
	const struct store_loc *y = &((const struct reap_ent *)b)->loc;

	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

#define REAP_BATCH 65536

/*
 * Punch what a batch of 'F' entries freed, merging records that lie next
 * to each other (a deleted file's blocks usually do) into one punch.
 */
static int reap_punch(struct journal *j, struct reap_ent *e, size_t n)
{
	size_t q = 0;
	int ret = 0;

	qsort(e, n, sizeof(*e), reap_cmp);
	while (q < n && ret == 0) {
		uint32_t seg = e[q].loc.seg;
		uint64_t off = e[q].loc.off;
		uint64_t end = off + store_seg_span(e[q].loc.len);

		while (++q < n && e[q].loc.seg == seg && e[q].loc.off <= end)
			end = MAX(end, e[q].loc.off + store_seg_span(e[q].loc.len));
		ret = store_seg_free_range(j->st, seg, off, end - off);
	}
	return ret;
}

int journal_reap(struct journal *j)
{
	struct store_iter *it = NULL;
	struct store_batch *b = NULL;
	struct reap_ent *e = NULL;
	uint8_t start[9];
	uint64_t limit, next;
	size_t n = 0;
	bool more = false;
	int ret;

	if (store_rdonly(j->st))
		return 0;
	pthread_mutex_lock(&j->lock);
	limit = MIN(atomic_load(&j->synced_seq), j->min_cursor);
	pthread_mutex_unlock(&j->lock);
	pthread_mutex_lock(&j->reap_lock);
	if (limit < j->reaped) {
		pthread_mutex_unlock(&j->reap_lock);
		return 0;
	}
	next = j->reaped;
	ret = -ENOMEM;
	e = malloc(REAP_BATCH * sizeof(*e));
	if (!e)
		goto out;
	ret = store_iter_new(j->st, STORE_CF_LOCAL, &it);
	if (ret)
		goto out;
	ret = store_batch_new(&b);
	if (ret)
		goto out;
	start[0] = 'F';
	put_be64(start + 1, j->reaped);
	for (store_iter_seek(it, start, sizeof(start)); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (klen != 41 || k[0] != 'F' || get_be64(k + 1) > limit)
			break;
		if (n == REAP_BATCH) {
			more = true;	/* the rest on the next pass */
			break;
		}
		ret = store_loc_decode(v, vlen, &e[n].loc);
		if (ret)
			goto out;
		memcpy(e[n].id, k + 9, 32);
		n++;
		next = get_be64(k + 1);
		store_batch_delete(b, STORE_CF_LOCAL, k, klen);
	}
	ret = store_iter_status(it);
	if (ret)
		goto out;
	/* Punch first: a crash before the write leaves entries to punch again. */
	ret = reap_punch(j, e, n);
	if (ret)
		goto out;
	/*
	 * Under the commit lock: a commit that stores one of these blocks again
	 * points its 'L' entry at the new copy; checking and deleting 'L' must
	 * not straddle such a commit.
	 */
	pthread_mutex_lock(&j->lock);
	for (size_t q = 0; q < n && ret == 0; q++)
		ret = reap_index(j, b, e[q].id, &e[q].loc);
	if (ret == 0 && store_batch_count(b))
		ret = store_write(j->st, b, false);
	pthread_mutex_unlock(&j->lock);
	/* Entries of records up to limit are gone; later ones may come. */
	if (ret == 0)
		j->reaped = more ? next : (limit == UINT64_MAX ? next : limit + 1);
out:
	pthread_mutex_unlock(&j->reap_lock);
	store_batch_free(b);
	store_iter_free(it);
	free(e);
	if (ret == 0 && more)
		return journal_reap(j);
	return ret;
}

int journal_record_parse(const uint8_t *rec, size_t len,
			 struct journal_head *hdr, uint8_t prev[static 32],
			 journal_op_fn *fn, void *arg)
{
	int ret = journal_record_parse_nohash(rec, len, hdr, prev, fn, arg);

	if (ret == 0)
		key_hash(rec, len, hdr->hash);
	return ret;
}

int journal_record_parse_nohash(const uint8_t *rec, size_t len,
				struct journal_head *hdr,
				uint8_t prev[static 32], journal_op_fn *fn,
				void *arg)
{
	size_t off = JOURNAL_HDR_BYTES;
	uint32_t nops;
	int ret;

	if (len < JOURNAL_HDR_BYTES || rec[0] != JOURNAL_VERSION || rec[1] ||
	    get_be16(rec + 2))
		return -EUCLEAN;
	nops = get_be32(rec + 4);
	hdr->epoch = get_be64(rec + 8);
	hdr->seq = get_be64(rec + 16);
	memcpy(prev, rec + 24, 32);
	memset(hdr->hash, 0, sizeof(hdr->hash));
	for (uint32_t i = 0; i < nops; i++) {
		uint8_t type, cf;
		size_t klen, vlen;

		if (len - off < JOURNAL_OP_HDR_BYTES)
			return -EUCLEAN;
		type = rec[off];
		cf = rec[off + 1];
		klen = get_be16(rec + off + 2);
		vlen = get_be32(rec + off + 4);
		off += JOURNAL_OP_HDR_BYTES;
		if (klen > len - off || vlen > len - off - klen)
			return -EUCLEAN;
		if (type < JOURNAL_OP_PUT || type > JOURNAL_OP_BLOCK ||
		    cf >= STORE_CF_COUNT || cf == STORE_CF_JOURNAL ||
		    cf == STORE_CF_LOCAL)
			return -EUCLEAN;
		if (type == JOURNAL_OP_BLOCK && (klen != 32 || vlen != 0 ||
						 cf != STORE_CF_BLOCK))
			return -EUCLEAN;
		if (type == JOURNAL_OP_DEL && vlen != 0)
			return -EUCLEAN;
		if (fn) {
			ret = fn(arg, (enum journal_op_type)type,
				 (enum store_cf)cf, rec + off, klen,
				 rec + off + klen, vlen);
			if (ret)
				return ret;
		}
		off += klen + vlen;
	}
	return off == len ? 0 : -EUCLEAN;
}

int journal_read(struct journal *j, uint64_t seq, uint8_t **rec, size_t *len)
{
	uint8_t key[8];

	put_be64(key, seq);
	return store_get(j->st, STORE_CF_JOURNAL, key, sizeof(key),
			 (void **)rec, len);
}

struct apply_ctx {
	struct journal *j;
	struct journal_txn *t;
	journal_fetch_fn *fetch;
	void *arg;
};

static int apply_op(void *arg, enum journal_op_type type, enum store_cf cf,
		    const uint8_t *key, size_t klen, const uint8_t *val,
		    size_t vlen)
{
	struct apply_ctx *c = arg;
	uint8_t lkey[33], lval[STORE_LOC_BYTES];
	struct store_loc loc;
	uint8_t *sealed = NULL;
	size_t len;
	int ret;

	switch (type) {
	case JOURNAL_OP_PUT:
		store_batch_put(c->t->b, cf, key, klen, val, vlen);
		return 0;
	case JOURNAL_OP_DEL:
		store_batch_delete(c->t->b, cf, key, klen);
		if (cf != STORE_CF_BLOCK || klen != 32)
			return 0;
		/* The block's last reference went: release our copy too. */
		loc_key(lkey, key);
		ret = store_get_buf(c->j->st, STORE_CF_LOCAL, lkey, sizeof(lkey),
				    lval, sizeof(lval), &len);
		if (ret == -ENOENT)
			return 0;
		if (ret == 0)
			ret = store_loc_decode(lval, len, &loc);
		if (ret == 0)
			journal_txn_release_block(c->t, key, &loc);
		return ret;
	case JOURNAL_OP_DEL_RANGE:
		store_batch_delete_range(c->t->b, cf, key, klen, val, vlen);
		return 0;
	case JOURNAL_OP_BLOCK:
		loc_key(lkey, key);
		ret = store_get_buf(c->j->st, STORE_CF_LOCAL, lkey, sizeof(lkey),
				    lval, sizeof(lval), &len);
		if (ret == 0)
			return 0;	/* already here */
		if (ret != -ENOENT)
			return ret;
		ret = c->fetch(c->arg, key, &sealed, &len);
		if (ret)
			return ret;
		ret = store_seg_append(c->j->st, key, sealed, len, &loc);
		free(sealed);
		if (ret)
			return ret;
		store_loc_encode(&loc, lval);
		store_batch_put(c->t->b, STORE_CF_LOCAL, lkey, sizeof(lkey),
				lval, sizeof(lval));
		return 0;
	}
	return -EUCLEAN;
}

int journal_apply(struct journal *j, const uint8_t *rec, size_t len,
		  journal_fetch_fn *fetch, void *arg)
{
	struct apply_ctx c = { .j = j, .fetch = fetch, .arg = arg };
	struct journal_head h;
	uint8_t prev[32], key[8];
	int ret;

	if (store_rdonly(j->st))
		return -EROFS;
	ret = journal_record_parse(rec, len, &h, prev, NULL, NULL);
	if (ret)
		return ret;
	ret = journal_txn_new(j, &c.t);
	if (ret)
		return ret;
	pthread_mutex_lock(&j->lock);
	if (h.seq <= j->head.seq) {
		ret = 0;	/* applied before */
		goto out;
	}
	if (h.seq != j->head.seq + 1 || h.epoch < j->head.epoch ||
	    memcmp(prev, j->head.hash, 32)) {
		log_err("journal record %llu does not follow head %llu",
			(unsigned long long)h.seq,
			(unsigned long long)j->head.seq);
		ret = -EUCLEAN;
		goto out;
	}
	ret = journal_record_parse(rec, len, &h, prev, apply_op, &c);
	if (ret)
		goto out;
	put_be64(key, h.seq);
	store_batch_put(c.t->b, STORE_CF_JOURNAL, key, sizeof(key), rec, len);
	txn_add_frees(c.t, h.seq);
	ret = store_write(j->st, c.t->b, false);
	if (ret == 0)
		j->head = h;
out:
	pthread_mutex_unlock(&j->lock);
	journal_txn_free(c.t);
	return ret;
}
