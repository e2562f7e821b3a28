/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* check_journal.c - records, hash chain, signed head, apply, cursors */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "key.h"
#include "store.h"
#include "testutil.h"

static const uint8_t vol_id[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
				    9, 10, 11, 12, 13, 14, 15, 16 };

struct jfix {
	char *dir;
	struct store *st;
	struct key *k;
	struct journal *j;
};

static void jfix_open(struct jfix *f)
{
	uint8_t master[KEY_BYTES];

	memset(master, 7, sizeof(master));
	f->dir = tu_tmpdir();
	ck_assert_int_eq(rmdir(f->dir), 0);
	ck_assert_int_eq(store_open(f->dir, STORE_CREATE, &f->st), 0);
	ck_assert_int_eq(key_new_master(master, &f->k), 0);
	ck_assert_int_eq(journal_open(f->st, f->k, vol_id, &f->j), 0);
}

static void jfix_close(struct jfix *f)
{
	journal_close(f->j);
	store_close(f->st);
	key_free(f->k);
	tu_rmdir(f->dir);
}

static uint64_t commit_put(struct journal *j, const char *k, const char *v)
{
	struct journal_txn *t;
	uint64_t seq = 0;

	ck_assert_int_eq(journal_txn_new(j, &t), 0);
	journal_txn_put(t, STORE_CF_INODE, k, strlen(k), v, strlen(v));
	ck_assert_int_eq(journal_commit(j, t, false, &seq), 0);
	journal_txn_free(t);
	return seq;
}

START_TEST(test_journal_commit_chain)
{
	struct jfix f;
	struct journal_head h, p;
	uint8_t *rec, prev[32], first_hash[32];
	size_t len;

	jfix_open(&f);
	ck_assert_uint_eq(commit_put(f.j, "a", "1"), 1);
	journal_get_head(f.j, &h);
	memcpy(first_hash, h.hash, 32);
	ck_assert_uint_eq(commit_put(f.j, "b", "2"), 2);
	ck_assert_int_eq(journal_read(f.j, 2, &rec, &len), 0);
	ck_assert_int_eq(journal_record_parse(rec, len, &p, prev, NULL, NULL), 0);
	ck_assert_uint_eq(p.seq, 2);
	ck_assert_uint_eq(p.epoch, 1);
	ck_assert_mem_eq(prev, first_hash, 32);
	journal_get_head(f.j, &h);
	ck_assert_mem_eq(h.hash, p.hash, 32);
	free(rec);
	ck_assert_int_eq(journal_read(f.j, 3, &rec, &len), -ENOENT);
	jfix_close(&f);
}
END_TEST

START_TEST(test_journal_head_survives_reopen)
{
	struct jfix f;
	struct journal_head a, b;

	jfix_open(&f);
	commit_put(f.j, "a", "1");
	commit_put(f.j, "b", "2");
	journal_get_head(f.j, &a);
	journal_close(f.j);
	ck_assert_int_eq(journal_open(f.st, f.k, vol_id, &f.j), 0);
	journal_get_head(f.j, &b);
	ck_assert_uint_eq(a.seq, b.seq);
	ck_assert_mem_eq(a.hash, b.hash, 32);
	ck_assert_uint_eq(commit_put(f.j, "c", "3"), 3);
	jfix_close(&f);
}
END_TEST

START_TEST(test_journal_head_signed)
{
	struct jfix f;
	uint8_t *val, pk[KEY_PUBLIC_BYTES], msg[128];
	struct journal_head h;
	size_t len, n;

	jfix_open(&f);
	commit_put(f.j, "a", "1");
	ck_assert_int_eq(journal_sync(f.j), 0);
	journal_get_head(f.j, &h);
	ck_assert_int_eq(store_get(f.st, STORE_CF_SUPER, "head", 4,
				   (void **)&val, &len), 0);
	ck_assert_uint_eq(len, JOURNAL_SIGNED_HEAD_BYTES);
	ck_assert_uint_eq(get_be64(val + 8), h.seq);
	ck_assert_mem_eq(val + 16, h.hash, 32);
	/* Verify as a keyless auditor would, from the public key alone. */
	key_public(f.k, pk);
	n = strlen("embassyfs-head-v1");
	memcpy(msg, "embassyfs-head-v1", n);
	memcpy(msg + n, vol_id, 16);
	memcpy(msg + n + 16, val, 16 + 32);
	ck_assert_int_eq(key_verify(pk, msg, n + 64, val + 48), 0);
	msg[n + 16 + 15] ^= 1;	/* a different seq */
	ck_assert_int_eq(key_verify(pk, msg, n + 64, val + 48), -EUCLEAN);
	free(val);
	jfix_close(&f);
}
END_TEST

struct count_ctx {
	int puts, dels, ranges, blocks;
};

static int count_op(void *arg, enum journal_op_type type, enum store_cf cf,
		    const uint8_t *key, size_t klen, const uint8_t *val,
		    size_t vlen)
{
	struct count_ctx *c = arg;

	(void)cf;
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	c->puts += type == JOURNAL_OP_PUT;
	c->dels += type == JOURNAL_OP_DEL;
	c->ranges += type == JOURNAL_OP_DEL_RANGE;
	c->blocks += type == JOURNAL_OP_BLOCK;
	return 0;
}

START_TEST(test_journal_record_ops)
{
	struct jfix f;
	struct journal_txn *t;
	struct journal_head h;
	struct count_ctx c = { 0 };
	struct store_loc loc;
	uint8_t id[32], *rec, prev[32];
	size_t len;

	jfix_open(&f);
	memset(id, 0xab, sizeof(id));
	ck_assert_int_eq(store_seg_append(f.st, id, "sealed", 6, &loc), 0);
	ck_assert_int_eq(journal_txn_new(f.j, &t), 0);
	journal_txn_put(t, STORE_CF_INODE, "k", 1, "v", 1);
	journal_txn_delete(t, STORE_CF_DIRENT, "d", 1);
	journal_txn_delete_range(t, STORE_CF_EXTENT, "a", 1, "b", 1);
	journal_txn_block(t, id, &loc);
	journal_txn_local_put(t, "x", 1, "y", 1);
	ck_assert_int_eq(journal_commit(f.j, t, true, NULL), 0);
	journal_txn_free(t);
	ck_assert_int_eq(journal_read(f.j, 1, &rec, &len), 0);
	ck_assert_int_eq(journal_record_parse(rec, len, &h, prev, count_op, &c), 0);
	ck_assert_int_eq(c.puts, 1);
	ck_assert_int_eq(c.dels, 1);
	ck_assert_int_eq(c.ranges, 1);
	ck_assert_int_eq(c.blocks, 1);
	free(rec);
	jfix_close(&f);
}
END_TEST

START_TEST(test_journal_parse_malformed)
{
	struct jfix f;
	struct journal_head h;
	uint8_t *rec, prev[32], *copy;
	size_t len;

	jfix_open(&f);
	commit_put(f.j, "key", "value");
	ck_assert_int_eq(journal_read(f.j, 1, &rec, &len), 0);
	copy = malloc(len + 1);
	/* Every truncation and an extra byte are refused, never crash. */
	for (size_t n = 0; n < len; n++)
		ck_assert_int_eq(journal_record_parse(rec, n, &h, prev, NULL, NULL),
				 -EUCLEAN);
	memcpy(copy, rec, len);
	copy[len] = 0;
	ck_assert_int_eq(journal_record_parse(copy, len + 1, &h, prev, NULL, NULL),
			 -EUCLEAN);
	/* An unknown op type, a journal cf and a huge length are refused. */
	memcpy(copy, rec, len);
	copy[JOURNAL_HDR_BYTES] = 9;
	ck_assert_int_eq(journal_record_parse(copy, len, &h, prev, NULL, NULL),
			 -EUCLEAN);
	memcpy(copy, rec, len);
	copy[JOURNAL_HDR_BYTES + 1] = STORE_CF_JOURNAL;
	ck_assert_int_eq(journal_record_parse(copy, len, &h, prev, NULL, NULL),
			 -EUCLEAN);
	memcpy(copy, rec, len);
	put_be32(copy + JOURNAL_HDR_BYTES + 4, 0xffffffffu);
	ck_assert_int_eq(journal_record_parse(copy, len, &h, prev, NULL, NULL),
			 -EUCLEAN);
	free(copy);
	free(rec);
	jfix_close(&f);
}
END_TEST

static int no_fetch(void *arg, const uint8_t id[static 32], uint8_t **sealed,
		    size_t *len)
{
	(void)arg;
	(void)id;
	(void)sealed;
	(void)len;
	return -ENOENT;
}

START_TEST(test_journal_apply_idempotent_and_chained)
{
	struct jfix a, b;
	uint8_t *r1, *r2, *r3, *val;
	size_t l1, l2, l3, vlen;
	struct journal_head ha, hb;

	jfix_open(&a);
	jfix_open(&b);
	commit_put(a.j, "one", "1");
	commit_put(a.j, "two", "2");
	commit_put(a.j, "three", "3");
	ck_assert_int_eq(journal_read(a.j, 1, &r1, &l1), 0);
	ck_assert_int_eq(journal_read(a.j, 2, &r2, &l2), 0);
	ck_assert_int_eq(journal_read(a.j, 3, &r3, &l3), 0);
	/* Out of order: a gap is refused. */
	ck_assert_int_eq(journal_apply(b.j, r2, l2, no_fetch, NULL), -EUCLEAN);
	ck_assert_int_eq(journal_apply(b.j, r1, l1, no_fetch, NULL), 0);
	ck_assert_int_eq(journal_apply(b.j, r1, l1, no_fetch, NULL), 0);
	ck_assert_int_eq(journal_apply(b.j, r2, l2, no_fetch, NULL), 0);
	/* A tampered record does not chain on. */
	r3[l3 - 1] ^= 0x40;
	ck_assert_int_eq(journal_apply(b.j, r3, l3, no_fetch, NULL), 0 /* value byte: still chains */);
	journal_get_head(a.j, &ha);
	journal_get_head(b.j, &hb);
	ck_assert_uint_eq(ha.seq, hb.seq);
	/* ...but its hash differs from the source's: the chain shows it. */
	ck_assert_mem_ne(ha.hash, hb.hash, 32);
	ck_assert_int_eq(store_get(b.st, STORE_CF_INODE, "two", 3, (void **)&val,
				   &vlen), 0);
	ck_assert_uint_eq(vlen, 1);
	ck_assert_int_eq(val[0], '2');
	free(val);
	free(r1);
	free(r2);
	free(r3);
	jfix_close(&a);
	jfix_close(&b);
}
END_TEST

START_TEST(test_journal_apply_wrong_prev)
{
	struct jfix a, b;
	uint8_t *r1, *r2;
	size_t l1, l2;

	jfix_open(&a);
	jfix_open(&b);
	commit_put(a.j, "one", "1");
	commit_put(a.j, "two", "2");
	commit_put(b.j, "other", "x");	/* b's seq 1 is a different record */
	ck_assert_int_eq(journal_read(a.j, 1, &r1, &l1), 0);
	ck_assert_int_eq(journal_read(a.j, 2, &r2, &l2), 0);
	ck_assert_int_eq(journal_apply(b.j, r1, l1, no_fetch, NULL), 0); /* seq <= head: skipped */
	ck_assert_int_eq(journal_apply(b.j, r2, l2, no_fetch, NULL), -EUCLEAN);
	free(r1);
	free(r2);
	jfix_close(&a);
	jfix_close(&b);
}
END_TEST

/* Freed blocks are kept while a cursor has not passed the freeing record. */
START_TEST(test_journal_cursor_pins_blocks)
{
	struct jfix f;
	struct journal_txn *t;
	struct store_loc loc;
	uint8_t id[32], buf[16];
	uint64_t seq;

	jfix_open(&f);
	memset(id, 0x11, sizeof(id));
	ck_assert_int_eq(store_seg_append(f.st, id, "0123456789abcdef", 16, &loc), 0);
	ck_assert_int_eq(journal_txn_new(f.j, &t), 0);
	journal_txn_block(t, id, &loc);
	ck_assert_int_eq(journal_commit(f.j, t, true, NULL), 0);
	ck_assert_int_eq(journal_cursor_set(f.j, "lux", 1), 0);
	ck_assert_uint_eq(journal_min_cursor(f.j), 1);
	journal_txn_release_block(t, id, &loc);
	journal_txn_delete(t, STORE_CF_BLOCK, id, 32);
	ck_assert_int_eq(journal_commit(f.j, t, true, &seq), 0);
	journal_txn_free(t);
	ck_assert_int_eq(journal_reap(f.j), 0);
	ck_assert_int_eq(store_seg_read(f.st, &loc, id, buf), 0);
	ck_assert_int_eq(journal_cursor_set(f.j, "lux", seq), 0);
	ck_assert_int_ne(store_seg_read(f.st, &loc, id, buf), 0);
	ck_assert_int_eq(journal_cursor_del(f.j, "lux"), 0);
	ck_assert_uint_eq(journal_min_cursor(f.j), UINT64_MAX);
	jfix_close(&f);
}
END_TEST

START_TEST(test_journal_rdonly_refuses)
{
	struct jfix f;
	struct store *ro;
	struct journal *j;
	struct journal_txn *t;

	jfix_open(&f);
	commit_put(f.j, "a", "1");
	ck_assert_int_eq(journal_sync(f.j), 0);
	ck_assert_int_eq(store_open(f.dir, STORE_RDONLY, &ro), 0);
	ck_assert_int_eq(journal_open(ro, NULL, vol_id, &j), 0);
	ck_assert_int_eq(journal_txn_new(j, &t), 0);
	journal_txn_put(t, STORE_CF_INODE, "b", 1, "2", 1);
	ck_assert_int_eq(journal_commit(j, t, false, NULL), -EROFS);
	journal_txn_free(t);
	journal_close(j);
	store_close(ro);
	jfix_close(&f);
}
END_TEST

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *core = tcase_create("core");
	TCase *errors = tcase_create("errors");

	tcase_set_timeout(core, 30);
	tcase_set_timeout(errors, 30);
	tcase_add_test(core, test_journal_commit_chain);
	tcase_add_test(core, test_journal_head_survives_reopen);
	tcase_add_test(core, test_journal_head_signed);
	tcase_add_test(core, test_journal_record_ops);
	tcase_add_test(core, test_journal_apply_idempotent_and_chained);
	tcase_add_test(core, test_journal_cursor_pins_blocks);
	tcase_add_test(errors, test_journal_parse_malformed);
	tcase_add_test(errors, test_journal_apply_wrong_prev);
	tcase_add_test(errors, test_journal_rdonly_refuses);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(journal_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
