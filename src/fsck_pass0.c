/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_pass0.c - pass 0: the volume, its header, the key, RocksDB
 *
 * Checks, in order:
 *   - STORE/VOLUME says "embassyfs volume" and a format we know (else the
 *     run stops: not-a-volume, format-unknown);
 *   - for a repair, no mount or receiver holds the store (store-busy);
 *   - seg/ exists, and RocksDB opens (rocksdb-open-failed: with -y, the
 *     manifest is rebuilt from the table files left, RocksDB RepairDB);
 *   - the header (super "header") is there and decodes: magic, format,
 *     slot count, block size, compression; its id is the VOLUME file's;
 *   - with --passphrase-file or --key-file: a slot opens (key-rejected
 *     stops the run), the header's MAC holds and its public key is the
 *     key's;
 *   - every column family reads to its end (cf-unreadable stops the run:
 *     repairs made on a partial view could destroy data), with keys of the
 *     lengths and kinds doc/FORMAT.md gives (key-malformed), no unknown
 *     key in super, and no run-time corruption recorded (error.last); the
 *     journal, the largest, is read by pass 4 instead, before it repairs;
 *   - every entry under seg/ is a segment file.
 *
 * Collects: the decoded header, the key and codec, the mount counter,
 * key counts per column family, segment sizes.
 */
#include "fsck.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsck_int.h"
#include "journal.h"
#include "log.h"

#define HDR_MAGIC      "EMBFSHDR"
#define HDR_BODY_BYTES (76 + VOLUME_MAX_SLOTS * KEY_SLOT_BYTES)
#define HDR_BYTES      (HDR_BODY_BYTES + KEY_MAC_BYTES)

/* The id line of STORE/VOLUME, as 16 bytes; -ENOENT if there is none. */
static int volume_file_id(const char *store, uint8_t id[VOLUME_ID_BYTES])
{
	char path[4096], line[128];
	FILE *fp;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "%s/VOLUME", store);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	while (fgets(line, sizeof(line), fp)) {
		char *h = line + 3;

		if (strncmp(line, "id ", 3))
			continue;
		for (size_t q = 0; q < VOLUME_ID_BYTES; q++) {
			unsigned v;

			if (sscanf(h + 2 * q, "%2x", &v) != 1) {
				ret = -EINVAL;
				goto out;
			}
			id[q] = (uint8_t)v;
		}
		ret = 0;
		break;
	}
out:
	fclose(fp);
	return ret;
}

static bool seg_dir_present(const char *store)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/seg", store);
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int fsck_open_store(struct fsck *f)
{
	struct fsck_pctx pc = {0};
	bool repaired = false;
	uint32_t fmt;
	int ret;

	ret = volume_probe(f->o.store, &fmt);
	if (ret == -EPROTONOSUPPORT) {
		pc.n1 = fmt;
		fsck_problem(f, PR_0_FORMAT_UNKNOWN, &pc);
		f->operational = true;
		return 0;
	}
	if (ret) {
		pc.str = ret == -EMEDIUMTYPE ? "no VOLUME file, or not ours"
					     : strerror(-ret);
		fsck_problem(f, PR_0_NOT_VOLUME, &pc);
		f->operational = true;
		return 0;
	}
	if (!seg_dir_present(f->o.store)) {
		fsck_problem(f, PR_0_SEG_DIR, &pc);
		return 0;
	}
	if (f->rw) {
		ret = store_busy(f->o.store);
		if (ret == -EBUSY) {
			fsck_problem(f, PR_0_STORE_BUSY, &pc);
			f->operational = true;
			return 0;
		}
	} else if (store_busy(f->o.store) == -EBUSY) {
		log_warn("'%s' is in use by a mount or receiver: checking "
			 "read-only; changes in flight may show as problems",
			 f->o.store);
	}
	for (;;) {
		ret = store_open(f->o.store, f->rw ? 0 : STORE_RDONLY, &f->st);
		if (ret == 0)
			break;
		if (ret == -EBUSY) {
			fsck_problem(f, PR_0_STORE_BUSY, &pc);
			f->operational = true;
			return 0;
		}
		if (ret == -ENOMEM)
			return ret;
		pc.str = strerror(-ret);
		if (repaired)
			pc.nofix = "a rebuilt store does not open either";
		if (!fsck_problem(f, PR_0_DB_OPEN, &pc) || repaired)
			return 0;
		ret = store_repair_db(f->o.store);
		if (ret) {
			f->fatal = true;
			log_err("cannot rebuild the RocksDB of '%s': %s",
				f->o.store, strerror(-ret));
			return 0;
		}
		f->modified = true;
		repaired = true;
		memset(&pc, 0, sizeof(pc));
		fsck_problem(f, PR_0_DB_REPAIRED, &pc);
	}
	return 0;
}

static int header_decode(struct fsck *f, const uint8_t *in, size_t len)
{
	struct volume_header *h = &f->hdr;
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_SUPER),
			       .key = (const uint8_t *)"header",
			       .klen = 6};

	if (len != HDR_BYTES) {
		pc.str = "wrong length";
		goto bad;
	}
	if (memcmp(in, HDR_MAGIC, 8)) {
		pc.str = "bad magic";
		goto bad;
	}
	if (get_be16(in + 34) != VOLUME_MAX_SLOTS) {
		pc.str = "wrong slot count";
		goto bad;
	}
	h->format = get_be32(in + 8);
	if (h->format != VOLUME_FORMAT) {
		pc.n1 = h->format;
		fsck_problem(f, PR_0_HEADER_FORMAT, &pc);
		return 0;
	}
	memcpy(h->id, in + 12, VOLUME_ID_BYTES);
	h->block_size = get_be32(in + 28);
	h->compress = (enum codec_compress)in[32];
	h->level = in[33];
	h->created = get_be64(in + 36);
	memcpy(h->public_key, in + 44, KEY_PUBLIC_BYTES);
	memcpy(h->slots, in + 76, sizeof(h->slots));
	memcpy(f->hdr_mac, in + HDR_BODY_BYTES, KEY_MAC_BYTES);
	if (h->block_size < VOLUME_MIN_BLOCK ||
	    h->block_size > VOLUME_MAX_BLOCK ||
	    (h->block_size & (h->block_size - 1))) {
		pc.str = "bad block size";
		goto bad;
	}
	if (h->compress > CODEC_COMPRESS_ZSTD) {
		pc.str = "unknown compression";
		goto bad;
	}
	f->have_hdr = true;
	return 0;
bad:
	fsck_problem(f, PR_0_HEADER_BAD, &pc);
	return 0;
}

static int check_header(struct fsck *f)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_SUPER)};
	uint8_t buf[HDR_BYTES], id[VOLUME_ID_BYTES];
	size_t len;
	int ret;

	ret = store_get_buf(f->st, STORE_CF_SUPER, "header", 6, buf,
			    sizeof(buf), &len);
	if (ret == -ENOENT) {
		fsck_problem(f, PR_0_HEADER_MISSING, &pc);
		return 0;
	}
	if (ret == -ENOSPC) {
		pc.str = "too long";
		fsck_problem(f, PR_0_HEADER_BAD, &pc);
		return 0;
	}
	if (ret) {
		pc.str = "super";
		fsck_problem(f, PR_0_CF_UNREADABLE, &pc);
		return 0;
	}
	ret = header_decode(f, buf, len);
	if (ret || !f->have_hdr)
		return ret;
	if (volume_file_id(f->o.store, id) == 0 &&
	    memcmp(id, f->hdr.id, VOLUME_ID_BYTES))
		fsck_problem(f, PR_0_VOLUME_ID, &pc);
	return 0;
}

/* Open a key slot with the secret, then check the header under the key. */
static int unlock(struct fsck *f)
{
	struct fsck_pctx pc = {0};
	enum key_slot_kind kind = f->o.secret_kind == FSCK_SECRET_KEYFILE
				      ? KEY_SLOT_KEYFILE
				      : KEY_SLOT_PASSPHRASE;
	uint8_t body[HDR_BODY_BYTES], pk[KEY_PUBLIC_BYTES];
	struct key *k = NULL;
	int ret = -EKEYREJECTED;

	for (int i = 0; i < VOLUME_MAX_SLOTS && !k; i++) {
		if (f->hdr.slots[i][0] != kind)
			continue;
		if (kind == KEY_SLOT_KEYFILE)
			ret = key_slot_open_keyfile(
			    f->hdr.slots[i], f->o.secret, f->o.secret_len, &k);
		else
			ret = key_slot_open_passphrase(
			    f->hdr.slots[i], (const char *)f->o.secret,
			    f->o.secret_len, &k);
		if (ret == -ENOMEM)
			return ret;
	}
	if (!k) {
		pc.str = kind == KEY_SLOT_KEYFILE ? "key file" : "passphrase";
		fsck_problem(f, PR_0_KEY_REJECTED, &pc);
		f->operational = true;
		return 0;
	}
	f->k = k;
	pc.cf = FSCK_PCTX_CF(STORE_CF_SUPER);
	pc.key = (const uint8_t *)"header";
	pc.klen = 6;
	{
		/* The MAC covers the header bytes as stored. */
		uint8_t raw[HDR_BYTES];
		size_t len;

		ret = store_get_buf(f->st, STORE_CF_SUPER, "header", 6, raw,
				    sizeof(raw), &len);
		if (ret)
			return ret == -ENOMEM ? ret : 0;
		memcpy(body, raw, HDR_BODY_BYTES);
	}
	if (key_mac_verify(k, "header", 6, body, sizeof(body), f->hdr_mac))
		fsck_problem(f, PR_0_HEADER_MAC, &pc);
	key_public(k, pk);
	if (memcmp(pk, f->hdr.public_key, KEY_PUBLIC_BYTES))
		fsck_problem(f, PR_0_PUBKEY, &pc);
	return codec_new(k, f->hdr.compress, f->hdr.level ? f->hdr.level : 1,
			 &f->codec);
}

/* Is klen/key a key of the shape column family cf holds? */
static bool key_shape_ok(enum store_cf cf, const uint8_t *k, size_t klen)
{
	switch (cf) {
	case STORE_CF_SUPER:
		return true; /* checked by name */
	case STORE_CF_INODE:
	case STORE_CF_ORPHAN:
		return klen == 8 && get_be64(k) != 0;
	case STORE_CF_DIRENT:
	case STORE_CF_XATTR:
		return klen == 8 + KEY_NAME_HASH_BYTES && get_be64(k) != 0;
	case STORE_CF_EXTENT:
		return klen == 16 && get_be64(k) != 0;
	case STORE_CF_BLOCK:
		return klen == KEY_ID_BYTES;
	case STORE_CF_JOURNAL:
		return klen == 8 && get_be64(k) != 0;
	case STORE_CF_LOCAL:
		if (klen < 1)
			return false;
		switch (k[0]) {
		case FSCK_LOCAL_LOC:
		case FSCK_LOCAL_BAD:
			return klen == 1 + KEY_ID_BYTES;
		case FSCK_LOCAL_FREE:
			return klen == 1 + 8 + KEY_ID_BYTES;
		case FSCK_LOCAL_CURSOR:
			return klen >= 2 && klen <= 65;
		case FSCK_LOCAL_REDO:
			return klen == 1 + 4 + 8;
		default:
			return false;
		}
	default:
		return false;
	}
}

/*
 * The column families are walked by two threads at once, each family by
 * one: what a walk finds is kept, and reported by the main thread once
 * both are done, in column family order, as if one thread had walked.
 * What they read is kept in memory too, as far as fsck_cf_walk_keep's
 * budget goes, for the passes that walk the same families again.
 */
struct walk0_bad {
	uint8_t *key;
	size_t klen;
};

struct walk0 {
	struct fsck *f;
	enum store_cf cf;
	bool main;		/* the main thread: shows progress */
	uint64_t n;
	int ret;		/* the walk's end */
	struct walk0_bad *bad;	/* malformed keys */
	size_t nbad, capbad;
};

static int walk0_super(struct fsck *f, struct walk0 *w, const uint8_t *k,
		       size_t klen, const uint8_t *v, size_t vlen)
{
	struct fsck_pctx pc = {
	    .cf = FSCK_PCTX_CF(w->cf), .key = k, .klen = klen};

	if (klen == 6 && !memcmp(k, "header", 6))
		return 0;
	if (klen == 4 && !memcmp(k, "head", 4))
		return 0;
	if (klen == 6 && !memcmp(k, "mounts", 6)) {
		if (vlen == 8 + KEY_MAC_BYTES)
			f->mounts = get_be64(v);
		return 0;
	}
	if (klen == 10 && !memcmp(k, "error.last", 10)) {
		if (vlen == 16) {
			pc.n1 = get_be64(v + 8);
			pc.n2 = get_be64(v);
		}
		if (fsck_problem(f, PR_0_RUNTIME_ERROR, &pc))
			store_batch_delete(fsck_raw(f), STORE_CF_SUPER, k,
					   klen);
		return 0;
	}
	if (fsck_problem(f, PR_0_SUPER_UNKNOWN, &pc))
		store_batch_delete(fsck_raw(f), STORE_CF_SUPER, k, klen);
	return 0;
}

static int walk0_fn(struct fsck *f, void *arg, const uint8_t *k, size_t klen,
		    const uint8_t *v, size_t vlen)
{
	struct walk0 *w = arg;
	struct walk0_bad *b;

	w->n++;
	if (w->main && (w->n & 0xffff) == 0)
		fsck_progress(f, "reading column families", w->n, 0);
	if (w->cf == STORE_CF_SUPER)
		return walk0_super(f, w, k, klen, v, vlen);
	if (key_shape_ok(w->cf, k, klen))
		return 0;
	if (w->nbad == w->capbad) {
		size_t cap = w->capbad ? 2 * w->capbad : 16;

		b = realloc(w->bad, cap * sizeof(*b));
		if (!b)
			return -ENOMEM;
		w->bad = b;
		w->capbad = cap;
	}
	b = &w->bad[w->nbad];
	b->key = malloc(klen ? klen : 1);
	if (!b->key)
		return -ENOMEM;
	memcpy(b->key, k, klen);
	b->klen = klen;
	w->nbad++;
	return 0;
}

struct walk0_helper {
	struct walk0 *w;
	size_t n;
	atomic_bool stop;	/* set by the main thread if the run stops */
};

static void *walk0_main(void *arg)
{
	struct walk0_helper *h = arg;

	for (size_t q = 0; q < h->n; q++) {
		struct walk0 *w = &h->w[q];

		w->ret = fsck_cf_walk_keep(w->f, w->cf, walk0_fn, w, &h->stop);
	}
	return NULL;
}

/* The helper's share: block values and locations, about half the bytes. */
static bool walk0_helper_cf(enum store_cf cf)
{
	return cf == STORE_CF_LOCAL || cf == STORE_CF_BLOCK;
}

static int check_cfs(struct fsck *f)
{
	struct walk0 w[STORE_CF_COUNT];
	struct walk0_helper h = {.w = w};
	pthread_t th;
	bool helper;
	int ret = 0;

	memset(w, 0, sizeof(w));
	for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
		w[cf].f = f;
		w[cf].cf = (enum store_cf)cf;
		w[cf].main = true;
	}
	/* The helper walks w[0..h.n): its families, moved to the front. */
	for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
		if (walk0_helper_cf((enum store_cf)cf)) {
			struct walk0 t = w[h.n];

			w[h.n] = w[cf];
			w[cf] = t;
			w[h.n++].main = false;
		}
	}
	helper = pthread_create(&th, NULL, walk0_main, &h) == 0;
	for (size_t q = helper ? h.n : 0; q < STORE_CF_COUNT; q++) {
		/* Read whole by pass 4 first thing, with the same checks. */
		if (w[q].cf == STORE_CF_JOURNAL || fsck_stopped(f))
			continue;
		w[q].ret = fsck_cf_walk_keep(f, w[q].cf, walk0_fn, &w[q], NULL);
	}
	if (helper) {
		if (fsck_stopped(f))
			atomic_store(&h.stop, true);
		pthread_join(th, NULL);
	}
	for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
		struct walk0 *x = NULL;
		struct fsck_pctx pc = {0};

		for (size_t q = 0; q < STORE_CF_COUNT; q++)
			if (w[q].cf == (enum store_cf)cf)
				x = &w[q];
		if (cf == STORE_CF_JOURNAL)
			continue;
		for (size_t q = 0; q < x->nbad && !fsck_stopped(f); q++) {
			struct fsck_pctx bpc = {.cf = FSCK_PCTX_CF(x->cf),
						.key = x->bad[q].key,
						.klen = x->bad[q].klen,
						.str = store_cf_name(x->cf)};

			if (fsck_problem(f, PR_0_KEY_MALFORMED, &bpc))
				store_batch_delete(fsck_raw(f), x->cf,
						   x->bad[q].key,
						   x->bad[q].klen);
		}
		for (size_t q = 0; q < x->nbad; q++)
			free(x->bad[q].key);
		free(x->bad);
		f->stats.keys[cf] = x->n;
		if (x->ret == -ECANCELED || ret)
			continue;
		if (x->ret == -ENOMEM) {
			ret = x->ret;
		} else if (x->ret) {
			pc.str = store_cf_name(x->cf);
			pc.n2 = x->n;
			fsck_problem(f, PR_0_CF_UNREADABLE, &pc);
		}
	}
	return ret;
}

static int check_segments(struct fsck *f)
{
	struct store_seg_info *segs = NULL;
	struct fsck_pctx pc = {0};
	size_t n, stray;
	int ret;

	ret = store_seg_list(f->st, &segs, &n, &stray);
	if (ret)
		return ret;
	f->stats.segments = n;
	for (size_t q = 0; q < n; q++)
		f->stats.seg_bytes += segs[q].alloc;
	if (stray) {
		pc.n1 = stray;
		fsck_problem(f, PR_0_SEG_STRAY, &pc);
	}
	free(segs);
	return 0;
}

bool fsck_redo_covers(const struct fsck *f, uint32_t seg, uint64_t off,
		      uint64_t len, const uint8_t *id)
{
	for (size_t q = 0; q < f->nredo; q++) {
		const struct store_loc *l = &f->redo[q].loc;

		if (l->seg != seg)
			continue;
		if (id ? l->off == off && l->len == len &&
			     !memcmp(f->redo[q].id, id, 32)
		       : off >= l->off &&
			     off + len <= l->off + store_seg_span(l->len))
			return true;
	}
	return false;
}

/*
 * Records that an fsync logged for redo and a crash kept from their
 * segment: written again before the scan (what the next read-write mount
 * would do); under -n, known, so that pass 1 does not call them lost.
 * Entries that cannot be replayed are reported and deleted.
 */
static int check_redo(struct fsck *f)
{
	struct fsck_pctx pc = {.cf = FSCK_PCTX_CF(STORE_CF_LOCAL)};
	struct journal_redo_stats rs;
	int ret;

	ret = journal_redo_replay(f->st, 0, &rs, &f->redo);
	if (ret || (!rs.damaged && !rs.unusable))
		return ret;
	f->nredo = rs.damaged;
	if (rs.unusable) {
		pc.n1 = rs.unusable;
		if (fsck_problem(f, PR_0_REDO_BAD, &pc) && f->rw) {
			ret = journal_redo_replay(f->st, JOURNAL_REDO_DROP_BAD,
						  NULL, NULL);
			if (ret)
				return ret;
			f->modified = true;
		}
	}
	if (!rs.damaged)
		return 0;
	pc.n1 = rs.damaged;
	if (!fsck_problem(f, PR_0_REDO_PENDING, &pc)) {
		f->redo_left = f->rw;
		return 0;
	}
	if (!f->rw)
		return 0;
	ret = journal_redo_replay(f->st, JOURNAL_REDO_WRITE, NULL, NULL);
	if (ret)
		return ret;
	f->modified = true;
	free(f->redo);
	f->redo = NULL;
	f->nredo = 0;
	return 0;
}

int fsck_pass0(struct fsck *f)
{
	int ret;

	fsck_pass_begin(f, 0,
			"checking the volume, its header and column "
			"families");
	ret = fsck_open_store(f);
	if (ret || !f->st || fsck_stopped(f))
		goto out;
	ret = check_header(f);
	if (ret || !f->have_hdr || fsck_stopped(f))
		goto out;
	if (f->o.secret_kind != FSCK_SECRET_NONE) {
		ret = unlock(f);
		if (ret || fsck_stopped(f))
			goto out;
	}
	ret = check_redo(f);
	if (ret || fsck_stopped(f))
		goto out;
	/* Blocks are read in the background while passes 0 and 4 run. */
	ret = fsck_pass1_start(f);
	if (ret || fsck_stopped(f))
		goto out;
	ret = check_cfs(f);
	if (ret || fsck_stopped(f))
		goto out;
	ret = check_segments(f);
out:
	if (ret)
		fsck_lib_error(f, "pass 0 failed", ret);
	fsck_progress_end(f);
	fsck_pass_end(f);
	return ret;
}
