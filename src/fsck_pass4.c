/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass4.c - pass 4: the journal, its hash chain, its signed head, and
 * the state it records
 *
 * Runs right after pass 0 (see fsck.c): what the journal proves is
 * restored before the structural passes judge the rest.
 *
 * Checks:
 *   - every record is stored under the key of its own sequence number
 *     (journal-record-misplaced: moved back when that key is free;
 *     journal-record-duplicate: an extra copy, deleted when identical);
 *   - every record parses (journal-record-malformed), the numbers run
 *     without gaps from the first record to the last (journal-gap), each
 *     record's previous hash is the hash of the record before it, record
 *     1's is zero (journal-chain-broken), epochs never go down
 *     (journal-epoch-backwards);
 *   - super "head" exists when there are records (head-missing), decodes
 *     (head-malformed), its Ed25519 signature verifies under the header's
 *     public key (head-signature-bad), it is not past the last record
 *     (head-ahead: records lost or rolled back), and the record at its
 *     sequence number has the signed hash and epoch (head-mismatch);
 *     records after it are reported (head-unsigned-tail, information: a
 *     crash before the next signature); with the key every head repair
 *     signs the last record;
 *   - replay: when the chain is whole from record 1 to the last and the
 *     head is not ahead, the records are replayed into a table of every
 *     key they wrote (BLAKE2b of the value, 48 bytes per key) and the
 *     journaled column families (super "mounts", inode, dirent, extent,
 *     block, xattr, orphan) are compared with it, key by key:
 *     state-value-differs and state-key-missing are restored from the
 *     record that wrote them, state-key-extra is deleted. Records hold
 *     exact values, so this repairs what no structural rule could (a
 *     deleted extent, a swapped value) and loses nothing, and it needs no
 *     key. When the chain is not whole, state-not-verified says why.
 *
 * Collects: journal statistics, f->journal_sound.
 */
#include "fsck.h"

#include <errno.h>
#include <sodium.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "fsck_int.h"
#include "log.h"

#define SEQ_MASK     ((UINT64_C(1) << 56) - 1)
#define SEQ_DEL	     (UINT64_C(1) << 63)
#define SEQ_SEEN     (UINT64_C(1) << 62)
#define SEQ_CF_SHIFT 56
#define SEQ_CF_MASK  0xfull

/* A record stored under the wrong key. */
struct jmove {
	uint64_t from; /* key it is stored under */
	uint64_t to;   /* its own sequence number */
	uint8_t *val;
	size_t len;
	bool dup;  /* another copy sits at `to`, or moves there */
	bool same; /* dup: byte for byte the same */
};

/* A key the journal wrote last at seq (or deleted). */
struct jkey {
	uint8_t kdig[16];
	uint8_t vdig[8];
	uint64_t seq; /* SEQ_MASK bits, cf, SEQ_DEL, SEQ_SEEN */
	uint64_t ino;
	uint64_t idx;
};

struct jrange {
	uint64_t ino;
	uint64_t lo, hi; /* [lo, hi) of the key's index part */
	uint64_t seq;
	uint32_t next; /* 1-based, 0 ends */
	uint8_t cf;
};

#define P4_AHEAD 8 /* replayed writes in flight to the key table */

struct p4 {
	struct fsck *f;
	uint8_t secret[XXH3_SECRET_DEFAULT_SIZE];
	/* layout */
	struct jmove *moves;
	size_t nmoves, capmoves;
	uint64_t first, last, count;
	/* chain */
	bool sound;
	bool have_prev;
	uint64_t prev_seq, prev_epoch;
	uint8_t prev_hash[KEY_HASH_BYTES];
	struct journal_head last_head;
	struct journal_head at_signed; /* record at the signed head's seq */
	bool have_at_signed;
	uint64_t signed_seq;
	/* replay */
	bool replay;
	bool state_wins; /* journal the state again (head-ahead fixed) */
	bool sign_after;
	const char *why;
	struct jkey *keys;
	size_t kcap, kn;
	/*
	 * Replayed writes wait here a few operations before they reach the
	 * table, their slot prefetched meanwhile: the table is larger than
	 * the caches and each write would otherwise stall on its miss.
	 */
	struct jkey pend[P4_AHEAD];
	unsigned npend, pend_head;
	int pend_err;
	struct jrange *ranges;
	size_t nranges, capranges;
	uint32_t *rhead; /* open addressing: (ino, cf) -> range list */
	uint64_t *rkey;
	size_t rcap, rn;
	bool range_bad[STORE_CF_COUNT];
};

static bool cf_journaled(enum store_cf cf)
{
	return cf != STORE_CF_JOURNAL && cf != STORE_CF_LOCAL;
}

/* Index parts of a key used to match range deletes. */
static void key_parts(enum store_cf cf, const uint8_t *k, size_t klen,
		      uint64_t *ino, uint64_t *idx)
{
	uint8_t pad[8] = {0};

	*ino = 0;
	*idx = 0;
	if (cf == STORE_CF_SUPER || cf == STORE_CF_BLOCK || klen < 8)
		return;
	*ino = get_be64(k);
	if (klen > 8) {
		memcpy(pad, k + 8, MIN(klen - 8, (size_t)8));
		*idx = get_be64(pad);
	}
}

/*
 * Keys and values are compared through XXH3-128 under a secret drawn at
 * random for each run, so that whoever prepared the store could not aim
 * at a collision; the chain itself is BLAKE2b.
 */
static void key_digest(const struct p4 *p, enum store_cf cf, const uint8_t *k,
		       size_t klen, uint8_t out[16])
{
	XXH128_hash_t h =
	    XXH3_128bits_withSecret(k, klen, p->secret, sizeof(p->secret));

	put_be64(out, h.high64 ^ ((uint64_t)cf + 1));
	put_be64(out + 8, h.low64);
}

static void val_digest(const struct p4 *p, const uint8_t *v, size_t vlen,
		       uint8_t out[8])
{
	XXH128_hash_t h =
	    XXH3_128bits_withSecret(v, vlen, p->secret, sizeof(p->secret));

	put_be64(out, h.high64 ^ h.low64);
}

/* ---- the key table ---- */

static int keys_grow(struct p4 *p, size_t want)
{
	size_t cap = p->kcap ? 2 * p->kcap : 4096;

	while (cap < want)
		cap *= 2;
	struct jkey *t = fsck_table_calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t q = 0; q < p->kcap; q++) {
		struct jkey *e = &p->keys[q];
		size_t s;

		if (!e->seq)
			continue;
		s = (size_t)(get_be64(e->kdig) & (cap - 1));
		while (t[s].seq)
			s = (s + 1) & (cap - 1);
		t[s] = *e;
	}
	fsck_table_free(p->keys, p->kcap, sizeof(*p->keys));
	p->keys = t;
	p->kcap = cap;
	return 0;
}

static struct jkey *keys_find(struct p4 *p, const uint8_t kdig[16], bool add)
{
	size_t s;

	if (add && (p->kn + 1) * 4 > p->kcap * 3 && keys_grow(p, 0))
		return NULL;
	if (!p->kcap)
		return NULL;
	s = (size_t)(get_be64(kdig) & (p->kcap - 1));
	for (;;) {
		struct jkey *e = &p->keys[s];

		if (!e->seq) {
			if (!add)
				return NULL;
			memcpy(e->kdig, kdig, 16);
			p->kn++;
			return e;
		}
		if (!memcmp(e->kdig, kdig, 16))
			return e;
		s = (s + 1) & (p->kcap - 1);
	}
}

/* ---- range deletes: (cf, ino) -> list ---- */

static uint64_t range_key(unsigned cf, uint64_t ino)
{
	return (ino * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)cf << 59) ^ cf;
}

static uint32_t *range_slot(struct p4 *p, uint64_t key, bool add)
{
	size_t s;

	if (add && (p->rn + 1) * 4 > p->rcap * 3) {
		size_t cap = p->rcap ? 2 * p->rcap : 256;
		uint32_t *h = calloc(cap, sizeof(*h));
		uint64_t *k = calloc(cap, sizeof(*k));

		if (!h || !k) {
			free(h);
			free(k);
			return NULL;
		}
		for (size_t q = 0; q < p->rcap; q++) {
			if (!p->rhead[q])
				continue;
			s = (size_t)(p->rkey[q] >> 7) & (cap - 1);
			while (h[s])
				s = (s + 1) & (cap - 1);
			h[s] = p->rhead[q];
			k[s] = p->rkey[q];
		}
		free(p->rhead);
		free(p->rkey);
		p->rhead = h;
		p->rkey = k;
		p->rcap = cap;
	}
	if (!p->rcap)
		return NULL;
	s = (size_t)(key >> 7) & (p->rcap - 1);
	while (p->rhead[s]) {
		if (p->rkey[s] == key)
			return &p->rhead[s];
		s = (s + 1) & (p->rcap - 1);
	}
	if (!add)
		return NULL;
	p->rkey[s] = key;
	p->rn++;
	return &p->rhead[s];
}

static int range_add(struct p4 *p, enum store_cf cf, const uint8_t *b,
		     size_t blen, const uint8_t *e, size_t elen, uint64_t seq)
{
	uint64_t ino, lo, eino, hi;
	uint32_t *head;
	struct jrange *r;
	bool tail_zero = true;

	if (cf == STORE_CF_SUPER || cf == STORE_CF_BLOCK || blen < 8 ||
	    elen < 8 || blen > 24 || elen > 24) {
		p->range_bad[cf] = true;
		return 0;
	}
	key_parts(cf, b, blen, &ino, &lo);
	key_parts(cf, e, elen, &eino, &hi);
	for (size_t q = 8; q < elen; q++)
		tail_zero &= e[q] == 0;
	if (eino == ino + 1 && tail_zero) {
		hi = UINT64_MAX;
	} else if (eino != ino || elen > 16 || blen > 16) {
		p->range_bad[cf] = true;
		return 0;
	}
	if (p->nranges == p->capranges) {
		size_t cap = p->capranges ? 2 * p->capranges : 256;
		struct jrange *n = realloc(p->ranges, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->ranges = n;
		p->capranges = cap;
	}
	head = range_slot(p, range_key(cf, ino), true);
	if (!head)
		return -ENOMEM;
	r = &p->ranges[p->nranges++];
	r->ino = ino;
	r->lo = lo;
	r->hi = hi;
	r->seq = seq;
	r->cf = (uint8_t)cf;
	r->next = *head;
	*head = (uint32_t)p->nranges;
	return 0;
}

/* Was the key (last written at seq) deleted by a later range? */
static bool range_deleted(struct p4 *p, unsigned cf, uint64_t ino, uint64_t idx,
			  uint64_t seq)
{
	uint32_t *head;

	if (!p->rcap)
		return false;
	head = range_slot(p, range_key(cf, ino), false);
	for (uint32_t i = head ? *head : 0; i; i = p->ranges[i - 1].next) {
		const struct jrange *r = &p->ranges[i - 1];

		if (r->cf == cf && r->ino == ino && r->seq > seq &&
		    idx >= r->lo && idx < r->hi)
			return true;
	}
	return false;
}

struct replay_arg {
	struct p4 *p;
	uint64_t seq;
	int err;
};

/* The oldest replayed write into the key table: 0 or -ENOMEM. */
static int pend_apply_one(struct p4 *p)
{
	const struct jkey *w = &p->pend[p->pend_head];
	struct jkey *e = keys_find(p, w->kdig, true);

	p->pend_head = (p->pend_head + 1) % P4_AHEAD;
	p->npend--;
	if (!e)
		return -ENOMEM;
	memcpy(e->vdig, w->vdig, sizeof(e->vdig));
	e->seq = w->seq;
	e->ino = w->ino;
	e->idx = w->idx;
	return 0;
}

/* Every replayed write into the table, in order: 0 or -ENOMEM. */
static int pend_drain(struct p4 *p)
{
	while (p->npend)
		if (pend_apply_one(p))
			p->pend_err = -ENOMEM;
	return p->pend_err;
}

static int replay_op(void *arg, enum journal_op_type type, enum store_cf cf,
		     const uint8_t *key, size_t klen, const uint8_t *val,
		     size_t vlen)
{
	struct replay_arg *a = arg;
	struct p4 *p = a->p;
	struct jkey *w;

	if (type == JOURNAL_OP_BLOCK)
		return 0;
	if (type == JOURNAL_OP_DEL_RANGE) {
		a->err = pend_drain(p);
		if (a->err == 0)
			a->err = range_add(p, cf, key, klen, val, vlen, a->seq);
		return a->err;
	}
	if (p->npend == P4_AHEAD && pend_apply_one(p))
		p->pend_err = -ENOMEM;
	if (p->pend_err) {
		a->err = p->pend_err;
		return a->err;
	}
	w = &p->pend[(p->pend_head + p->npend++) % P4_AHEAD];
	key_digest(p, cf, key, klen, w->kdig);
	if (p->kcap)
		__builtin_prefetch(
		    &p->keys[get_be64(w->kdig) & (p->kcap - 1)], 1);
	w->seq = (a->seq & SEQ_MASK) | ((uint64_t)cf << SEQ_CF_SHIFT);
	key_parts(cf, key, klen, &w->ino, &w->idx);
	if (type == JOURNAL_OP_DEL) {
		w->seq |= SEQ_DEL;
		memset(w->vdig, 0, sizeof(w->vdig));
	} else {
		val_digest(p, val, vlen, w->vdig);
	}
	return 0;
}

/* ---- reading records through the corrected layout ---- */

static struct jmove *move_to(struct p4 *p, uint64_t seq)
{
	for (size_t q = 0; q < p->nmoves; q++)
		if (p->moves[q].to == seq && !p->moves[q].dup)
			return &p->moves[q];
	return NULL;
}

static bool is_source(struct p4 *p, uint64_t key)
{
	for (size_t q = 0; q < p->nmoves; q++)
		if (p->moves[q].from == key)
			return true;
	return false;
}

/* Record seq as it is or will be once moved; *val malloc'd. -ENOENT. */
static int record_get(struct p4 *p, uint64_t seq, uint8_t **val, size_t *len)
{
	struct jmove *m = move_to(p, seq);
	uint8_t key[8];

	if (m) {
		*val = malloc(m->len);
		if (!*val)
			return -ENOMEM;
		memcpy(*val, m->val, m->len);
		*len = m->len;
		return 0;
	}
	if (is_source(p, seq))
		return -ENOENT;
	put_be64(key, seq);
	return store_get(p->f->st, STORE_CF_JOURNAL, key, 8, (void **)val, len);
}

/* ---- layout: records under the wrong key ---- */

static int layout_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		     const uint8_t *v, size_t vlen)
{
	struct p4 *p = arg;
	uint64_t kseq, vseq;
	struct jmove *m;

	if (klen != 8 || get_be64(k) == 0) {
		struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_JOURNAL),
				       .key = k,
				       .klen = klen,
				       .str = "journal"};

		if (fsck_problem(f, PR_0_KEY_MALFORMED, &pc))
			store_batch_delete(fsck_raw(f), STORE_CF_JOURNAL, k,
					   klen);
		return 0;
	}
	kseq = get_be64(k);
	f->stats.keys[STORE_CF_JOURNAL]++;
	if (!p->count++)
		p->first = kseq;
	p->last = kseq;
	if (vlen < JOURNAL_HDR_BYTES)
		return 0; /* malformed: reported by the chain walk */
	vseq = get_be64(v + 16);
	if (vseq == kseq || vseq == 0)
		return 0;
	if (p->nmoves == p->capmoves) {
		size_t cap = p->capmoves ? 2 * p->capmoves : 16;
		struct jmove *n = realloc(p->moves, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->moves = n;
		p->capmoves = cap;
	}
	m = &p->moves[p->nmoves];
	memset(m, 0, sizeof(*m));
	m->val = malloc(vlen);
	if (!m->val)
		return -ENOMEM;
	memcpy(m->val, v, vlen);
	m->len = vlen;
	m->from = kseq;
	m->to = vseq;
	p->nmoves++;
	return 0;
}

static int check_layout(struct p4 *p)
{
	struct fsck *f = p->f;
	int ret;

	ret = fsck_cf_walk(f, STORE_CF_JOURNAL, NULL, 0, layout_fn, p);
	if (ret && ret != -ENOMEM && ret != -ECANCELED) {
		struct fsck_pctx pc = {.str = "journal", .n2 = p->count};

		fsck_problem(f, PR_0_CF_UNREADABLE, &pc);
		return 0;
	}
	if (ret)
		return ret;
	for (size_t q = 0; q < p->nmoves; q++) {
		struct jmove *m = &p->moves[q];
		uint8_t key[8], *cur = NULL;
		size_t clen;

		/* A correct record at `to`, or an earlier mover, wins. */
		put_be64(key, m->to);
		ret = store_get(f->st, STORE_CF_JOURNAL, key, 8, (void **)&cur,
				&clen);
		if (ret == 0 && clen >= JOURNAL_HDR_BYTES &&
		    get_be64(cur + 16) == m->to) {
			m->dup = true;
			m->same = clen == m->len && !memcmp(cur, m->val, clen);
		} else {
			for (size_t r = 0; r < q; r++)
				if (p->moves[r].to == m->to &&
				    !p->moves[r].dup) {
					m->dup = true;
					m->same = p->moves[r].len == m->len &&
						  !memcmp(p->moves[r].val,
							  m->val, m->len);
				}
		}
		free(cur);
		if (ret && ret != -ENOENT)
			return ret;
	}
	for (size_t q = 0; q < p->nmoves; q++) {
		struct jmove *m = &p->moves[q];
		struct fsck_pctx pc = {.n1 = m->to, .n2 = m->from};
		uint8_t key[8];

		if (m->dup) {
			if (!m->same)
				pc.nofix = "the copy differs from the record";
			if (fsck_problem(f, PR_4_REC_DUP, &pc)) {
				put_be64(key, m->from);
				if (!move_to(p, m->from))
					store_batch_delete(fsck_raw(f),
							   STORE_CF_JOURNAL,
							   key, 8);
			}
			continue;
		}
		if (fsck_problem(f, PR_4_REC_MISPLACED, &pc)) {
			put_be64(key, m->to);
			store_batch_put(fsck_raw(f), STORE_CF_JOURNAL, key, 8,
					m->val, m->len);
			put_be64(key, m->from);
			if (!move_to(p, m->from))
				store_batch_delete(fsck_raw(f),
						   STORE_CF_JOURNAL, key, 8);
		}
	}
	/* Moves land before anything opens the journal (fsck_can_journal). */
	return 0;
}

/* ---- the chain ---- */

static void unverified(struct p4 *p, const char *why)
{
	if (p->replay) {
		p->replay = false;
		p->why = why;
	}
}

/* What parsing a record found; its hash may come later (pipeline). */
struct rec_facts {
	uint64_t key;
	int ret;
	struct journal_head h;
	uint8_t prev[KEY_HASH_BYTES];
};

static int parse_record(struct p4 *p, uint64_t key, const uint8_t *rec,
			size_t len, struct rec_facts *r)
{
	struct replay_arg a = {.p = p, .seq = key};

	/*
	 * In the pipeline a break in the chain is judged up to two batches
	 * after the records behind it were replayed: harmless, as a chain that
	 * is not whole skips the state comparison that reads the table.
	 */
	r->key = key;
	r->ret = journal_record_parse_nohash(rec, len, &r->h, r->prev,
					     p->replay ? replay_op : NULL, &a);
	return a.err == -ENOMEM ? -ENOMEM : 0;
}

/* The checks of one record, in order, once its hash is known. */
static void judge_record(struct p4 *p, const struct rec_facts *r)
{
	struct fsck *f = p->f;
	struct fsck_pctx pc = {0};
	static const uint8_t zero[KEY_HASH_BYTES];
	uint64_t key = r->key;

	f->stats.journal_records++;
	if (r->ret || r->h.seq != key) {
		pc.n1 = key;
		fsck_problem(f, PR_4_REC_BAD, &pc);
		p->sound = false;
		unverified(p, "a journal record is malformed");
		p->have_prev = false;
		return;
	}
	if (p->have_prev && key != p->prev_seq + 1) {
		pc.n1 = p->prev_seq + 1;
		pc.n2 = key - 1;
		fsck_problem(f, PR_4_GAP, &pc);
		p->sound = false;
		unverified(p, "journal records are missing");
	} else if (p->have_prev &&
		   memcmp(r->prev, p->prev_hash, KEY_HASH_BYTES)) {
		pc.n1 = key;
		pc.n2 = p->prev_seq;
		fsck_problem(f, PR_4_CHAIN, &pc);
		p->sound = false;
		unverified(p, "the hash chain is broken");
	} else if (!p->have_prev && key == 1 &&
		   memcmp(r->prev, zero, KEY_HASH_BYTES)) {
		pc.n1 = key;
		pc.n2 = 0;
		fsck_problem(f, PR_4_CHAIN, &pc);
		p->sound = false;
		unverified(p, "the hash chain is broken");
	}
	if (p->have_prev && r->h.epoch < p->prev_epoch) {
		pc.n1 = key;
		pc.n2 = p->prev_epoch;
		fsck_problem(f, PR_4_EPOCH, &pc);
		p->sound = false;
	}
	p->have_prev = true;
	p->prev_seq = key;
	p->prev_epoch = r->h.epoch;
	memcpy(p->prev_hash, r->h.hash, KEY_HASH_BYTES);
	p->last_head = r->h;
	if (key == p->signed_seq) {
		p->at_signed = r->h;
		p->have_at_signed = true;
	}
	if ((f->stats.journal_records & 0x3ff) == 0)
		fsck_progress(f, "journal records", f->stats.journal_records,
			      p->count);
}

static int check_record(struct p4 *p, uint64_t key, const uint8_t *rec,
			size_t len)
{
	struct rec_facts r;
	int ret;

	ret = parse_record(p, key, rec, len, &r);
	if (ret)
		return ret;
	if (r.ret == 0)
		key_hash(rec, len, r.h.hash);
	judge_record(p, &r);
	return 0;
}

/*
 * The hash chain in a pipeline: hashing (BLAKE2b, the larger part of the
 * chain walk's time) runs on a helper thread, one batch of records behind
 * the walk, which meanwhile reads, parses and replays the next batch; the
 * checks then run in record order as before. Used when no record has to
 * be moved (the layout is clean), which is every healthy store.
 */
#define HB_BYTES (4u << 20)
#define HB_RECS	 8192

struct hbatch {
	uint8_t *buf;
	size_t used;
	struct rec_facts *r;
	size_t *off, *len;
	size_t n;
};

struct hasher {
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hbatch b[2];
	int fill;	/* the batch the walk fills */
	bool busy;	/* the other one is being hashed */
	bool stop;
	bool on;
};

static void hash_batch(struct hbatch *b)
{
	for (size_t q = 0; q < b->n; q++)
		if (b->r[q].ret == 0)
			key_hash(b->buf + b->off[q], b->len[q], b->r[q].h.hash);
}

static void *hasher_main(void *arg)
{
	struct hasher *hs = arg;

	pthread_mutex_lock(&hs->lock);
	for (;;) {
		while (!hs->busy && !hs->stop)
			pthread_cond_wait(&hs->cond, &hs->lock);
		if (!hs->busy)
			break;
		pthread_mutex_unlock(&hs->lock);
		hash_batch(&hs->b[1 - hs->fill]);
		pthread_mutex_lock(&hs->lock);
		hs->busy = false;
		pthread_cond_broadcast(&hs->cond);
	}
	pthread_mutex_unlock(&hs->lock);
	return NULL;
}

static void hasher_wait(struct hasher *hs)
{
	pthread_mutex_lock(&hs->lock);
	while (hs->busy)
		pthread_cond_wait(&hs->cond, &hs->lock);
	pthread_mutex_unlock(&hs->lock);
}

/* Judge the batch the helper hashed, then hand it the one just filled. */
static void hasher_swap(struct p4 *p, struct hasher *hs)
{
	struct hbatch *done;

	hasher_wait(hs);
	done = &hs->b[1 - hs->fill];
	for (size_t q = 0; q < done->n; q++)
		judge_record(p, &done->r[q]);
	done->n = 0;
	done->used = 0;
	pthread_mutex_lock(&hs->lock);
	hs->fill = 1 - hs->fill;
	hs->busy = true;
	pthread_cond_broadcast(&hs->cond);
	pthread_mutex_unlock(&hs->lock);
}

static void hasher_free(struct hasher *hs)
{
	if (hs->on) {
		pthread_mutex_lock(&hs->lock);
		hs->stop = true;
		pthread_cond_broadcast(&hs->cond);
		pthread_mutex_unlock(&hs->lock);
		pthread_join(hs->th, NULL);
		pthread_mutex_destroy(&hs->lock);
		pthread_cond_destroy(&hs->cond);
	}
	for (int q = 0; q < 2; q++) {
		free(hs->b[q].buf);
		free(hs->b[q].r);
		free(hs->b[q].off);
		free(hs->b[q].len);
	}
}

static int hasher_init(struct hasher *hs)
{
	memset(hs, 0, sizeof(*hs));
	for (int q = 0; q < 2; q++) {
		hs->b[q].buf = malloc(HB_BYTES);
		hs->b[q].r = malloc(HB_RECS * sizeof(*hs->b[q].r));
		hs->b[q].off = malloc(HB_RECS * sizeof(size_t));
		hs->b[q].len = malloc(HB_RECS * sizeof(size_t));
		if (!hs->b[q].buf || !hs->b[q].r || !hs->b[q].off ||
		    !hs->b[q].len)
			return -ENOMEM;
	}
	pthread_mutex_init(&hs->lock, NULL);
	pthread_cond_init(&hs->cond, NULL);
	if (pthread_create(&hs->th, NULL, hasher_main, hs)) {
		pthread_mutex_destroy(&hs->lock);
		pthread_cond_destroy(&hs->cond);
		return -EAGAIN;
	}
	hs->on = true;
	return 0;
}

struct chain_walk {
	struct p4 *p;
	struct hasher *hs; /* NULL: hash in line */
	size_t ti; /* next target (moves sorted by `to`) */
	struct jmove **targets;
	size_t ntargets;
};

static int emit_targets_below(struct chain_walk *c, uint64_t below)
{
	int ret;

	while (c->ti < c->ntargets && c->targets[c->ti]->to < below) {
		struct jmove *m = c->targets[c->ti++];

		ret = check_record(c->p, m->to, m->val, m->len);
		if (ret)
			return ret;
	}
	return 0;
}

/* chain_fn with the hasher: records too big for a batch go alone. */
static int chain_fn_piped(struct chain_walk *c, uint64_t key, const uint8_t *v,
			  size_t vlen)
{
	struct hasher *hs = c->hs;
	struct hbatch *b = &hs->b[hs->fill];
	int ret;

	if (vlen > HB_BYTES) {
		hasher_swap(c->p, hs);	/* judge what came before, in order */
		hasher_swap(c->p, hs);
		return check_record(c->p, key, v, vlen);
	}
	if (b->n == HB_RECS || b->used + vlen > HB_BYTES) {
		hasher_swap(c->p, hs);
		b = &hs->b[hs->fill];
	}
	memcpy(b->buf + b->used, v, vlen);
	b->off[b->n] = b->used;
	b->len[b->n] = vlen;
	ret = parse_record(c->p, key, b->buf + b->used, vlen, &b->r[b->n]);
	b->used += vlen;
	b->n++;
	return ret;
}

static int chain_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct chain_walk *c = arg;
	uint64_t key;
	int ret;

	(void)f;
	if (klen != 8)
		return 0;
	key = get_be64(k);
	if (c->hs)
		return chain_fn_piped(c, key, v, vlen);
	ret = emit_targets_below(c, key);
	if (ret)
		return ret;
	if (is_source(c->p, key))
		return 0;
	return check_record(c->p, key, v, vlen);
}

static int cmp_move_to(const void *a, const void *b)
{
	const struct jmove *x = *(struct jmove *const *)a;
	const struct jmove *y = *(struct jmove *const *)b;

	return x->to < y->to ? -1 : x->to > y->to;
}

static int check_chain(struct p4 *p)
{
	struct chain_walk c = {.p = p};
	struct hasher hs;
	int ret;

	c.targets = calloc(p->nmoves ? p->nmoves : 1, sizeof(*c.targets));
	if (!c.targets)
		return -ENOMEM;
	for (size_t q = 0; q < p->nmoves; q++)
		if (!p->moves[q].dup)
			c.targets[c.ntargets++] = &p->moves[q];
	qsort(c.targets, c.ntargets, sizeof(*c.targets), cmp_move_to);
	if (p->nmoves == 0 && hasher_init(&hs) == 0)
		c.hs = &hs;
	ret = fsck_cf_walk(p->f, STORE_CF_JOURNAL, NULL, 0, chain_fn, &c);
	/* What was read is judged even if the walk stopped on an error. */
	if (c.hs && ret != -ECANCELED) {
		hasher_swap(p, &hs);	/* the last batch... */
		hasher_swap(p, &hs);	/* ...and judged */
	}
	/* Records moved past the last key are replayed here, last. */
	if (ret == 0)
		ret = emit_targets_below(&c, UINT64_MAX);
	/* Every replayed write in the table before anything reads it. */
	if (pend_drain(p) && ret == 0)
		ret = -ENOMEM;
	if (c.hs || p->nmoves == 0)
		hasher_free(&hs);
	free(c.targets);
	return ret;
}

/* ---- the signed head ---- */

static void check_head(struct p4 *p)
{
	struct fsck *f = p->f;
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_SUPER),
			       .key = (const uint8_t *)"head",
			       .klen = 4};
	uint8_t val[JOURNAL_SIGNED_HEAD_BYTES + 1], msg[64 + KEY_HASH_BYTES];
	struct journal_head h;
	size_t len, mlen;
	bool sign = false;
	int ret;

	f->stats.head_seq = p->have_prev ? p->last_head.seq : 0;
	ret = store_get_buf(f->st, STORE_CF_SUPER, "head", 4, val, sizeof(val),
			    &len);
	if (ret == -ENOENT) {
		if (!p->have_prev)
			return;
		if (!p->sound)
			pc.nofix = "the chain is not whole";
		sign = fsck_problem(f, PR_4_HEAD_MISSING, &pc);
		goto out;
	}
	if (ret == -ENOSPC || (ret == 0 && len != JOURNAL_SIGNED_HEAD_BYTES)) {
		pc.n1 = len;
		if (!p->sound)
			pc.nofix = "the chain is not whole";
		sign = fsck_problem(f, PR_4_HEAD_BAD, &pc);
		goto out;
	}
	if (ret)
		return;
	h.epoch = get_be64(val);
	h.seq = get_be64(val + 8);
	memcpy(h.hash, val + 16, KEY_HASH_BYTES);
	f->stats.signed_seq = h.seq;
	mlen = fsck_head_msg(f->hdr.id, &h, msg);
	if (key_verify(f->hdr.public_key, msg, mlen,
		       val + 16 + KEY_HASH_BYTES)) {
		pc.n1 = h.seq;
		if (!p->sound)
			pc.nofix = "the chain is not whole";
		sign = fsck_problem(f, PR_4_HEAD_SIG, &pc);
		goto out;
	}
	if (!p->have_prev || h.seq > p->last_head.seq) {
		pc.n1 = h.seq;
		pc.n2 = p->have_prev ? p->last_head.seq : 0;
		if (!p->sound)
			pc.nofix = "the chain is not whole";
		if (fsck_problem(f, PR_4_HEAD_AHEAD, &pc) && p->replay) {
			/* Replayed below with the state as the reference. */
			p->state_wins = true;
			p->sign_after = true;
			return;
		}
		unverified(p, "records after the state were lost");
		return;
	}
	if (h.seq && (!p->have_at_signed || p->at_signed.epoch != h.epoch ||
		      memcmp(p->at_signed.hash, h.hash, KEY_HASH_BYTES))) {
		pc.n1 = h.seq;
		fsck_problem(f, PR_4_HEAD_MISMATCH, &pc);
		p->sound = false;
		unverified(p, "the journal differs from what its head signed");
		return;
	}
	if (h.seq < p->last_head.seq) {
		pc.n1 = h.seq;
		pc.n2 = p->last_head.seq - h.seq;
		if (!p->sound)
			pc.nofix = "the chain is not whole";
		sign = fsck_problem(f, PR_4_HEAD_UNSIGNED, &pc);
	}
out:
	if (sign && p->have_prev) {
		fsck_sign_head(f, &p->last_head);
		f->stats.signed_seq = p->last_head.seq;
	}
}

/* ---- the state against the replay ---- */

/* Find the last op of record seq on (cf, kdig): key and value (pointers into
 * rec). */
struct find_arg {
	const struct p4 *p;
	enum store_cf cf;
	const uint8_t *kdig;
	const uint8_t *key, *val;
	size_t klen, vlen;
	bool found, del;
};

static int find_op(void *arg, enum journal_op_type type, enum store_cf cf,
		   const uint8_t *key, size_t klen, const uint8_t *val,
		   size_t vlen)
{
	struct find_arg *a = arg;
	uint8_t kd[16];

	if (cf != a->cf || type == JOURNAL_OP_BLOCK ||
	    type == JOURNAL_OP_DEL_RANGE)
		return 0;
	key_digest(a->p, cf, key, klen, kd);
	if (memcmp(kd, a->kdig, 16))
		return 0;
	a->found = true;
	a->del = type == JOURNAL_OP_DEL;
	a->key = key;
	a->klen = klen;
	a->val = val;
	a->vlen = vlen;
	return 0;
}

static void state_pctx(struct fsck_pctx *pc, enum store_cf cf, const uint8_t *k,
		       size_t klen)
{
	pc->cf = FSCK_PCTX_CF(cf);
	pc->key = k;
	pc->klen = klen;
	switch (cf) {
	case STORE_CF_INODE:
	case STORE_CF_ORPHAN:
		if (klen == 8)
			pc->ino = get_be64(k);
		break;
	case STORE_CF_EXTENT:
		if (klen == 16) {
			pc->ino = get_be64(k);
			pc->has_idx = true;
			pc->idx = get_be64(k + 8);
		}
		break;
	case STORE_CF_DIRENT:
	case STORE_CF_XATTR:
		if (klen >= 8)
			pc->ino = get_be64(k);
		break;
	case STORE_CF_BLOCK:
		if (klen == KEY_ID_BYTES)
			pc->id = k;
		break;
	default:
		break;
	}
}

/* Restore (cf, key) from record seq; the record is read again. */
static int restore(struct p4 *p, enum store_cf cf, const uint8_t kdig[16],
		   uint64_t seq, enum fsck_problem_id id)
{
	struct fsck *f = p->f;
	struct find_arg a = {.p = p, .cf = cf, .kdig = kdig};
	struct fsck_pctx pc = {.seq = 0, .journaled = true};
	struct journal_head h;
	uint8_t prev[KEY_HASH_BYTES], *rec = NULL;
	struct journal_txn *t;
	size_t len;
	int ret;

	ret = record_get(p, seq, &rec, &len);
	if (ret == 0)
		ret = journal_record_parse(rec, len, &h, prev, find_op, &a);
	if (ret == -ENOMEM)
		goto out;
	if (ret || !a.found || a.del) {
		ret = 0; /* cannot happen with a sound chain */
		goto out;
	}
	state_pctx(&pc, cf, a.key, a.klen);
	pc.n1 = seq;
	pc.journaled = true;
	if (!fsck_problem(f, p->state_wins ? PR_4_REJOURNAL : id, &pc)) {
		f->state_left = true;
	} else {
		t = fsck_txn(f);
		if (!t)
			goto out;
		if (p->state_wins)
			journal_txn_delete(t, cf, a.key, a.klen);
		else
			journal_txn_put(t, cf, a.key, a.klen, a.val, a.vlen);
		ret = fsck_txn_added(f, 1);
	}
out:
	free(rec);
	return ret;
}

/* An extra or differing key: deleted, or journaled as it is (state_wins). */
static int state_keep(struct p4 *p, enum store_cf cf, const uint8_t *k,
		      size_t klen, const uint8_t *v, size_t vlen,
		      enum fsck_problem_id id, struct fsck_pctx *pc)
{
	struct fsck *f = p->f;
	struct journal_txn *t;

	if (!fsck_problem(f, p->state_wins ? PR_4_REJOURNAL : id, pc)) {
		f->state_left = true;
		return 0;
	}
	t = fsck_txn(f);
	if (!t)
		return 0;
	if (p->state_wins)
		journal_txn_put(t, cf, k, klen, v, vlen);
	else
		journal_txn_delete(t, cf, k, klen);
	return fsck_txn_added(f, 1);
}

struct state_arg {
	struct p4 *p;
	enum store_cf cf;
	uint64_t n;
};

static int state_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct state_arg *s = arg;
	struct p4 *p = s->p;
	struct fsck_pctx pc = {.journaled = true};
	uint8_t kd[16], vd[8];
	struct jkey *e;
	uint64_t ino, idx;
	char why[64];

	if (s->cf == STORE_CF_SUPER && !(klen == 6 && !memcmp(k, "mounts", 6)))
		return 0;
	if ((++s->n & 0x3fff) == 0)
		fsck_progress(f, "comparing the state with the journal", s->n,
			      0);
	key_digest(p, s->cf, k, klen, kd);
	e = keys_find(p, kd, false);
	if (e) {
		e->seq |= SEQ_SEEN;
		key_parts(s->cf, k, klen, &ino, &idx);
		if (!(e->seq & SEQ_DEL) &&
		    range_deleted(p, s->cf, ino, idx, e->seq & SEQ_MASK)) {
			snprintf(why, sizeof(why), "deleted by a later record");
			goto extra;
		}
		if (e->seq & SEQ_DEL) {
			snprintf(why, sizeof(why), "deleted by record %" PRIu64,
				 e->seq & SEQ_MASK);
			goto extra;
		}
		val_digest(p, v, vlen, vd);
		if (!memcmp(vd, e->vdig, 8))
			return 0;
		if (p->state_wins) {
			state_pctx(&pc, s->cf, k, klen);
			pc.n1 = e->seq & SEQ_MASK;
			return state_keep(p, s->cf, k, klen, v, vlen,
					  PR_4_STATE_DIFF, &pc);
		}
		return restore(p, s->cf, kd, e->seq & SEQ_MASK,
			       PR_4_STATE_DIFF);
	}
	snprintf(why, sizeof(why), "never written");
extra:
	state_pctx(&pc, s->cf, k, klen);
	pc.str = why;
	return state_keep(p, s->cf, k, klen, v, vlen, PR_4_STATE_EXTRA, &pc);
}

static int cmp_jkey(const void *a, const void *b)
{
	const struct jkey *x = *(struct jkey *const *)a;
	const struct jkey *y = *(struct jkey *const *)b;
	uint64_t cx = x->seq >> SEQ_CF_SHIFT & SEQ_CF_MASK;
	uint64_t cy = y->seq >> SEQ_CF_SHIFT & SEQ_CF_MASK;

	if (cx != cy)
		return cx < cy ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return memcmp(x->kdig, y->kdig, sizeof(x->kdig));
}

static int check_state(struct p4 *p)
{
	struct fsck *f = p->f;
	struct jkey **miss = NULL;
	size_t nmiss = 0, capmiss = 0;
	int ret;

	for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
		struct state_arg s = {.p = p, .cf = (enum store_cf)cf};

		if (!cf_journaled((enum store_cf)cf) || p->range_bad[cf])
			continue;
		ret = fsck_cf_walk(f, (enum store_cf)cf, NULL, 0, state_fn, &s);
		if (ret)
			return ret;
	}
	/* Keys the journal holds that the state lacks, in key order. */
	for (size_t q = 0; q < p->kcap; q++) {
		struct jkey *e = &p->keys[q];
		unsigned cf;

		if (!e->seq || (e->seq & (SEQ_SEEN | SEQ_DEL)))
			continue;
		cf = (unsigned)((e->seq >> SEQ_CF_SHIFT) & SEQ_CF_MASK);
		if (cf >= STORE_CF_COUNT || p->range_bad[cf] ||
		    range_deleted(p, cf, e->ino, e->idx, e->seq & SEQ_MASK))
			continue;
		if (nmiss == capmiss) {
			size_t cap = capmiss ? 2 * capmiss : 64;
			struct jkey **n = realloc(miss, cap * sizeof(*n));

			if (!n) {
				free(miss);
				return -ENOMEM;
			}
			miss = n;
			capmiss = cap;
		}
		miss[nmiss++] = e;
	}
	if (nmiss)
		qsort(miss, nmiss, sizeof(*miss), cmp_jkey);
	for (size_t q = 0; q < nmiss && !fsck_stopped(f); q++) {
		struct jkey *e = miss[q];

		ret = restore(
		    p, (enum store_cf)((e->seq >> SEQ_CF_SHIFT) & SEQ_CF_MASK),
		    e->kdig, e->seq & SEQ_MASK, PR_4_STATE_MISSING);
		if (ret)
			break;
	}
	free(miss);
	return ret;
}

int fsck_pass4(struct fsck *f)
{
	struct p4 p = {.f = f, .sound = true, .replay = true};
	struct fsck_pctx pc = {0};
	uint8_t hv[JOURNAL_SIGNED_HEAD_BYTES];
	size_t hl;
	double t0;
	int ret;

	if (store_get_buf(f->st, STORE_CF_SUPER, "head", 4, hv, sizeof(hv),
			  &hl) == 0 &&
	    hl == sizeof(hv))
		p.signed_seq = get_be64(hv + 8);
	randombytes_buf(p.secret, sizeof(p.secret));
	{
		/* Every live key at least, and as many gone: one table. */
		uint64_t live = 0;

		for (int cf = 0; cf < STORE_CF_COUNT; cf++)
			if (cf_journaled((enum store_cf)cf))
				live += f->stats.keys[cf];
		if (live &&
		    keys_grow(&p, (size_t)MIN(live * 2, (uint64_t)1 << 28)))
			return -ENOMEM;
	}
	t0 = fsck_now();
	ret = check_layout(&p);
	log_dbg(LOG_DBG_FSCK, "pass 4: layout %.3f s", fsck_now() - t0);
	if (ret || fsck_stopped(f))
		goto out;
	if (p.count == 0) {
		p.sound = false;
		unverified(&p, "the journal is empty");
		if (f->stats.keys[STORE_CF_INODE]) {
			pc.n1 = f->stats.keys[STORE_CF_INODE];
			fsck_problem(f, PR_4_EMPTY, &pc);
		}
	} else if (p.first > 1 && !move_to(&p, 1)) {
		unverified(&p, "the journal was trimmed");
	}
	t0 = fsck_now();
	ret = check_chain(&p);
	log_dbg(LOG_DBG_FSCK, "pass 4: chain and replay %.3f s", fsck_now() - t0);
	if (ret || fsck_stopped(f))
		goto out;
	check_head(&p);
	f->journal_sound = p.sound;
	if (!p.replay) {
		memset(&pc, 0, sizeof(pc));
		pc.str = p.why;
		fsck_problem(f, PR_4_UNVERIFIED, &pc);
		goto out;
	}
	t0 = fsck_now();
	ret = check_state(&p);
	log_dbg(LOG_DBG_FSCK, "pass 4: state %.3f s", fsck_now() - t0);
	if (ret == 0)
		f->replay_ok = true;
	/* The new records, if any, are signed again when the journal closes. */
	if (ret == 0 && p.sign_after)
		fsck_sign_head(f, &p.last_head);
out:
	for (size_t q = 0; q < p.nmoves; q++)
		free(p.moves[q].val);
	free(p.moves);
	fsck_table_free(p.keys, p.kcap, sizeof(*p.keys));
	free(p.ranges);
	free(p.rhead);
	free(p.rkey);
	return ret;
}
