/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_compare.c - --compare OTHER STORE: do two stores hold the same state?
 *
 * Keyless and read-only on both stores. The journals are compared record
 * by record up to the lower of the two heads (BLAKE2b of each record; the
 * first differing sequence number is reported). When both heads are equal,
 * each journaled column family (super "mounts", inode, dirent, extent,
 * block, xattr, orphan) is digested over its keys and values in key order
 * (BLAKE2b-256 of klen || key || vlen || value per entry), the digests are
 * printed and, when they differ, the first differing key is named. The
 * header, the signed head, error records and the local column family
 * differ between a volume and its replicas by design and are left out.
 * When the heads differ, the one behind is reported; it holds the same
 * state as the other had at its head if the common records agree.
 */
#include "fsck.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fsck_int.h"
#include "log.h"

struct side {
	const char *path;
	struct store *st;
	uint64_t head;
	uint8_t id[VOLUME_ID_BYTES];
	bool have_id;
};

static int side_open(struct fsck *f, struct side *s)
{
	uint8_t hdr[2048];
	uint32_t fmt;
	size_t len;
	int ret;

	ret = volume_probe(s->path, &fmt);
	if (ret) {
		log_err("cannot compare '%s': %s", s->path,
			ret == -EMEDIUMTYPE ? "not an embassyfs volume"
					    : strerror(-ret));
		f->operational = true;
		return ret;
	}
	ret = store_open(s->path, STORE_RDONLY, &s->st);
	if (ret) {
		log_err("cannot open '%s' read-only: %s; check it with "
			"fsck.embassyfs",
			s->path, strerror(-ret));
		f->operational = true;
		return ret;
	}
	if (store_get_buf(s->st, STORE_CF_SUPER, "header", 6, hdr, sizeof(hdr),
			  &len) == 0 &&
	    len > 12 + VOLUME_ID_BYTES) {
		memcpy(s->id, hdr + 12, VOLUME_ID_BYTES);
		s->have_id = true;
	}
	ret = store_last_u64(s->st, STORE_CF_JOURNAL, &s->head);
	return ret == -ENOENT ? 0 : ret;
}

static bool excluded(enum store_cf cf, const uint8_t *k, size_t klen)
{
	if (cf != STORE_CF_SUPER)
		return false;
	return !(klen == 6 && !memcmp(k, "mounts", 6));
}

static void digest_entry(crypto_generichash_state *h, const uint8_t *k,
			 size_t klen, const uint8_t *v, size_t vlen)
{
	uint8_t n[8];

	put_be64(n, klen);
	crypto_generichash_update(h, n, 8);
	crypto_generichash_update(h, k, klen);
	put_be64(n, vlen);
	crypto_generichash_update(h, n, 8);
	crypto_generichash_update(h, v, vlen);
}

static void skip_excluded(enum store_cf cf, struct store_iter *it)
{
	while (store_iter_valid(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);

		if (!excluded(cf, k, klen))
			break;
		store_iter_next(it);
	}
}

/*
 * Walk a column family of both stores in step: digests of each, and the
 * first key where they part (*diff_key, malloc'd; NULL when none).
 */
static int compare_cf(struct side *a, struct side *b, enum store_cf cf,
		      uint64_t max_seq, uint8_t da[32], uint8_t db[32],
		      uint8_t **diff_key, size_t *diff_len)
{
	crypto_generichash_state ha, hb;
	struct store_iter *ia = NULL, *ib = NULL;
	int ret;

	*diff_key = NULL;
	*diff_len = 0;
	crypto_generichash_init(&ha, NULL, 0, 32);
	crypto_generichash_init(&hb, NULL, 0, 32);
	ret = store_iter_new(a->st, cf, &ia);
	if (ret == 0)
		ret = store_iter_new(b->st, cf, &ib);
	if (ret)
		goto out;
	store_iter_seek_first(ia);
	store_iter_seek_first(ib);
	for (;;) {
		size_t ka = 0, kb = 0, va = 0, vb = 0;
		const uint8_t *pka, *pkb, *pva, *pvb;
		int c;

		skip_excluded(cf, ia);
		skip_excluded(cf, ib);
		pka = store_iter_key(ia, &ka);
		pkb = store_iter_key(ib, &kb);
		if (cf == STORE_CF_JOURNAL) {
			if (pka && (ka != 8 || get_be64(pka) > max_seq))
				pka = NULL;
			if (pkb && (kb != 8 || get_be64(pkb) > max_seq))
				pkb = NULL;
		}
		if (!pka && !pkb)
			break;
		pva = pka ? store_iter_value(ia, &va) : NULL;
		pvb = pkb ? store_iter_value(ib, &vb) : NULL;
		if (!pka)
			c = 1;
		else if (!pkb)
			c = -1;
		else {
			c = memcmp(pka, pkb, MIN(ka, kb));
			if (c == 0)
				c = ka < kb ? -1 : ka > kb;
		}
		if (c == 0 && (va != vb || memcmp(pva, pvb, va)))
			c = 2;
		if (c && !*diff_key) {
			const uint8_t *k = c == 1 ? pkb : pka;
			size_t kl = c == 1 ? kb : ka;

			*diff_key = malloc(kl ? kl : 1);
			if (!*diff_key) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(*diff_key, k, kl);
			*diff_len = kl;
		}
		if (c <= 0 || c == 2) {
			digest_entry(&ha, pka, ka, pva, va);
			store_iter_next(ia);
		}
		if (c >= 1 || c == 0) {
			digest_entry(&hb, pkb, kb, pvb, vb);
			store_iter_next(ib);
		}
	}
	ret = store_iter_status(ia);
	if (ret == 0)
		ret = store_iter_status(ib);
out:
	crypto_generichash_final(&ha, da, 32);
	crypto_generichash_final(&hb, db, 32);
	store_iter_free(ia);
	store_iter_free(ib);
	return ret;
}

static void print_key(struct fsck *f, bool json, enum store_cf cf,
		      const uint8_t *k, size_t klen)
{
	char hex[2 * 64 + 1];

	if (cf == STORE_CF_JOURNAL && klen == 8) {
		fprintf(f->out, json ? "\"seq\":%" PRIu64 : "seq %" PRIu64,
			get_be64(k));
		return;
	}
	fprintf(f->out, json ? "\"key\":\"%s\"" : "key %s",
		fsck_hex(hex, k, MIN(klen, (size_t)64)));
}

int fsck_compare(struct fsck *f)
{
	static const enum store_cf cfs[] = {
	    STORE_CF_JOURNAL, STORE_CF_SUPER, STORE_CF_INODE, STORE_CF_DIRENT,
	    STORE_CF_EXTENT,  STORE_CF_BLOCK, STORE_CF_XATTR, STORE_CF_ORPHAN,
	};
	struct side a = {.path = f->o.store}, b = {.path = f->o.compare};
	bool json = f->o.json, first = true;
	uint64_t common;
	int ret;

	ret = side_open(f, &a);
	if (ret == 0)
		ret = side_open(f, &b);
	if (ret)
		goto out;
	common = MIN(a.head, b.head);
	if (json) {
		fprintf(f->out,
			"\n  {\"compare\":{\"heads\":{\"store\":%" PRIu64
			",\"other\":%" PRIu64 "},\"same_volume\":%s,\"cfs\":[",
			a.head, b.head,
			a.have_id && b.have_id &&
				!memcmp(a.id, b.id, VOLUME_ID_BYTES)
			    ? "true"
			    : "false");
	} else {
		fprintf(f->out, "Comparing '%s' with '%s'\n", b.path, a.path);
		fprintf(f->out,
			"journal heads: %s at %" PRIu64 ", %s at %" PRIu64 "\n",
			a.path, a.head, b.path, b.head);
		if (!a.have_id || !b.have_id ||
		    memcmp(a.id, b.id, VOLUME_ID_BYTES))
			fprintf(f->out, "note: the volume ids differ\n");
	}
	for (size_t q = 0; q < ARRAY_SIZE(cfs); q++) {
		enum store_cf cf = cfs[q];
		uint8_t da[32], db[32], *dk = NULL;
		char ha[65], hb[65];
		size_t dl;

		if (cf != STORE_CF_JOURNAL && a.head != b.head)
			break;
		fsck_progress(f, "comparing", q, ARRAY_SIZE(cfs));
		ret = compare_cf(&a, &b, cf, common, da, db, &dk, &dl);
		if (ret)
			goto out;
		if (dk)
			f->differ = true;
		fsck_hex(ha, da, 32);
		fsck_hex(hb, db, 32);
		if (json) {
			fprintf(f->out,
				"%s\n    {\"cf\":\"%s\",\"store\":\"%s\","
				"\"other\":\"%s\",\"same\":%s",
				first ? "" : ",", store_cf_name(cf), ha, hb,
				dk ? "false" : "true");
			if (dk) {
				fputs(",\"first_difference\":{", f->out);
				print_key(f, true, cf, dk, dl);
				fputc('}', f->out);
			}
			fputc('}', f->out);
		} else {
			fprintf(f->out, "%-8s %s %s\n",
				cf == STORE_CF_JOURNAL ? "journal"
						       : store_cf_name(cf),
				ha, dk ? "differs" : "same");
			if (dk) {
				fprintf(f->out,
					"         first difference at ");
				print_key(f, false, cf, dk, dl);
				fputc('\n', f->out);
			}
		}
		first = false;
		free(dk);
	}
	if (json)
		fputs("]}}", f->out);
	else if (a.head != b.head)
		fprintf(f->out,
			"%s is %" PRIu64 " records behind: its state is "
			"compared through the journal only\n",
			a.head < b.head ? a.path : b.path,
			a.head < b.head ? b.head - a.head : a.head - b.head);
out:
	if (ret && !f->operational)
		fsck_lib_error(f, "cannot compare the stores", ret);
	store_close(a.st);
	store_close(b.st);
	return ret;
}
