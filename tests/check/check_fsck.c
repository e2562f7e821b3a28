/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * check_fsck.c - the checker through its API (fsck.h) on volumes made with
 * fs.h, the problem table, --compare, and the segment scan of store.h it
 * relies on. The corruption suite with real mounts is tests/fsck/.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "fsck.h"
#include "journal.h"
#include "key.h"
#include "store.h"
#include "testutil.h"
#include "volume.h"

static const uint8_t keyfile[KEY_BYTES] = "0123456789abcdef0123456789abcdef";

struct cfix {
	char *dir;
	char *out;
	size_t outlen;
};

/* A volume with a directory, two files (one of three blocks) and a link. */
static void make_volume(const char *dir)
{
	struct volume_params p = {4096, CODEC_COMPRESS_ZSTD, 1};
	uint8_t slot[KEY_SLOT_BYTES], buf[3 * 4096];
	struct fs_ctx ctx = {0, 0, 022};
	struct volume *v = NULL;
	struct fs *fs = NULL;
	struct fs_attr a, d;
	struct key *k;

	ck_assert_int_eq(key_lib_init(), 0);
	ck_assert_int_eq(key_new_random(&k), 0);
	ck_assert_int_eq(
	    key_slot_seal_keyfile(k, keyfile, sizeof(keyfile), slot), 0);
	ck_assert_int_eq(volume_create(dir, &p, k, slot, false), 0);
	key_free(k);
	ck_assert_int_eq(volume_open(dir, 0, &v), 0);
	ck_assert_int_eq(volume_unlock_keyfile(v, keyfile, sizeof(keyfile)), 0);
	ck_assert_int_eq(fs_format(v, 0, 0), 0);
	volume_close(v);
	ck_assert_int_eq(volume_open(dir, 0, &v), 0);
	ck_assert_int_eq(volume_unlock_keyfile(v, keyfile, sizeof(keyfile)), 0);
	ck_assert_int_eq(fs_open(v, 0, &fs), 0);
	ck_assert_int_eq(fs_mkdir(fs, &ctx, FS_ROOT_INO, "dir", 0755, &d), 0);
	ck_assert_int_eq(fs_create(fs, &ctx, d.ino, "big", 0644, O_RDWR, &a),
			 0);
	for (size_t q = 0; q < sizeof(buf); q++)
		buf[q] = (uint8_t)(q * 13 + q / 4096);
	ck_assert_int_eq(fs_write(fs, a.ino, buf, sizeof(buf), 0),
			 (ssize_t)sizeof(buf));
	ck_assert_int_eq(fs_release(fs, a.ino), 0);
	ck_assert_int_eq(fs_link(fs, a.ino, FS_ROOT_INO, "link", &a), 0);
	ck_assert_int_eq(
	    fs_create(fs, &ctx, FS_ROOT_INO, "small", 0644, O_RDWR, &a), 0);
	ck_assert_int_eq(fs_write(fs, a.ino, "hello", 5, 0), 5);
	ck_assert_int_eq(fs_release(fs, a.ino), 0);
	ck_assert_int_eq(fs_close(fs), 0);
	volume_close(v);
}

static void cfix_open(struct cfix *c)
{
	memset(c, 0, sizeof(*c));
	c->dir = tu_tmpdir();
	make_volume(c->dir);
}

static void cfix_close(struct cfix *c)
{
	free(c->out);
	tu_rmdir(c->dir);
}

/* Column families kept in memory by the runs; 0: the default budget. */
static size_t keep_bytes;
/* The answers of FSCK_MODE_ASK runs. */
static fsck_ask_fn *run_ask;

/* Run the checker on dir; the report lands in c->out. */
static void run(struct cfix *c, const char *dir, enum fsck_mode mode,
		bool keyed, bool json, struct fsck_result *r)
{
	struct fsck_opts o = {0};
	struct fsck *f = NULL;
	FILE *out;

	free(c->out);
	c->out = NULL;
	out = open_memstream(&c->out, &c->outlen);
	ck_assert_ptr_nonnull(out);
	o.store = dir;
	o.mode = mode;
	o.json = json;
	o.out = out;
	o.threads = 2;
	o.keep_bytes = keep_bytes;
	o.ask = run_ask;
	if (keyed) {
		o.secret_kind = FSCK_SECRET_KEYFILE;
		o.secret = keyfile;
		o.secret_len = sizeof(keyfile);
	}
	ck_assert_int_eq(fsck_new(&o, &f), 0);
	(void)fsck_run(f);
	fsck_get_result(f, r);
	fsck_finish(f, 0);
	fsck_free(f);
	fclose(out);
}

static void delete_first(const char *dir, enum store_cf cf)
{
	struct store_batch *b;
	struct store_iter *it;
	struct store *st;
	size_t klen;
	const void *k;

	ck_assert_int_eq(store_open(dir, 0, &st), 0);
	ck_assert_int_eq(store_iter_new(st, cf, &it), 0);
	store_iter_seek_first(it);
	ck_assert(store_iter_valid(it));
	k = store_iter_key(it, &klen);
	ck_assert_int_eq(store_batch_new(&b), 0);
	store_batch_delete(b, cf, k, klen);
	store_iter_free(it);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);
	store_close(st);
}

static void delete_dirent_of(const char *dir, uint64_t child)
{
	struct store_batch *b;
	struct store_iter *it;
	struct store *st;
	int n = 0;

	ck_assert_int_eq(store_open(dir, 0, &st), 0);
	ck_assert_int_eq(store_iter_new(st, STORE_CF_DIRENT, &it), 0);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (store_iter_seek_first(it); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (vlen >= 12 && get_be64(v + 4) == child) {
			store_batch_delete(b, STORE_CF_DIRENT, k, klen);
			n++;
		}
	}
	store_iter_free(it);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);
	store_close(st);
}

/* Drop journal records 1..n (as a trim would). */
static void trim_journal(const char *dir, uint64_t n)
{
	uint8_t b[8], e[8];
	struct store_batch *bt;
	struct store *st;

	put_be64(b, 1);
	put_be64(e, n + 1);
	ck_assert_int_eq(store_open(dir, 0, &st), 0);
	ck_assert_int_eq(store_batch_new(&bt), 0);
	store_batch_delete_range(bt, STORE_CF_JOURNAL, b, 8, e, 8);
	ck_assert_int_eq(store_write(st, bt, true), 0);
	store_batch_free(bt);
	store_close(st);
}

START_TEST(test_fsck_clean_keyless)
{
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	run(&c, c.dir, FSCK_MODE_NO, false, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	ck_assert(!r.modified && !r.fatal && !r.operational && !r.library);
	ck_assert_ptr_nonnull(strstr(c.out, "Pass 4:"));
	ck_assert_ptr_nonnull(strstr(c.out, "clean (keyless checks)"));
	ck_assert_ptr_null(strstr(c.out, "Pass 5:"));
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_clean_keyed)
{
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	ck_assert(!r.modified && !r.fatal);
	ck_assert_ptr_nonnull(strstr(c.out, "Pass 5:"));
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_restore_from_journal)
{
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	delete_first(c.dir, STORE_CF_EXTENT);
	run(&c, c.dir, FSCK_MODE_NO, false, false, &r);
	ck_assert_uint_ge(r.left, 1);
	ck_assert(!r.modified);
	ck_assert_ptr_nonnull(strstr(c.out, "0x04000e state-key-missing"));
	run(&c, c.dir, FSCK_MODE_YES, false, false, &r);
	ck_assert_uint_eq(r.corrected, 1);
	ck_assert(r.modified);
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	cfix_close(&c);
}
END_TEST

/* Keys of a shape their column family never holds, on both walkers. */
START_TEST(test_fsck_key_malformed)
{
	static const enum store_cf cfs[] = {STORE_CF_INODE, STORE_CF_EXTENT,
					    STORE_CF_BLOCK, STORE_CF_LOCAL};
	struct store_batch *b;
	struct fsck_result r;
	struct store *st;
	struct cfix c;
	const char *at;

	cfix_open(&c);
	ck_assert_int_eq(store_open(c.dir, 0, &st), 0);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (size_t q = 0; q < sizeof(cfs) / sizeof(cfs[0]); q++)
		store_batch_put(b, cfs[q], "odd", 3, "v", 1);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);
	store_close(st);
	run(&c, c.dir, FSCK_MODE_NO, false, false, &r);
	ck_assert(!r.modified);
	ck_assert_uint_ge(r.problems, 4);
	/* Reported in column family order, whichever thread walked it. */
	at = c.out;
	for (size_t q = 0; q < sizeof(cfs) / sizeof(cfs[0]); q++) {
		at = strstr(at, "key-malformed");
		ck_assert_ptr_nonnull(at);
		at = strstr(at, store_cf_name(cfs[q]));
		ck_assert_ptr_nonnull(at);
	}
	run(&c, c.dir, FSCK_MODE_YES, false, false, &r);
	ck_assert(r.modified);
	ck_assert_uint_ge(r.corrected, 4);
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_lost_found)
{
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	trim_journal(c.dir, 2);
	delete_dirent_of(c.dir, 4); /* "small", linked once */
	run(&c, c.dir, FSCK_MODE_YES, false, false, &r);
	ck_assert_uint_ge(r.left, 1); /* needs the key */
	ck_assert_ptr_nonnull(strstr(c.out, "0x03000b inode-disconnected"));
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.left, 0);
	ck_assert_ptr_nonnull(strstr(c.out, "/lost+found created"));
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	cfix_close(&c);
}
END_TEST

/*
 * "link" (three blocks) is written again and fsynced by a process that
 * dies at once: its records are logged for redo. Block 0's record is then
 * damaged in its segment, as a power cut can leave it. The new bytes of
 * block 0 go to *data.
 */
static void crash_after_fsync(const char *dir, uint8_t data[4096])
{
	struct store *st;
	uint8_t id[32];
	pid_t pid;
	int status;

	for (size_t q = 0; q < 4096; q++)
		data[q] = (uint8_t)(q * 7 + 3);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct volume *v = NULL;
		struct fs *fs = NULL;
		struct fs_attr a;

		if (volume_open(dir, 0, &v) ||
		    volume_unlock_keyfile(v, keyfile, sizeof(keyfile)) ||
		    fs_open(v, 0, &fs) ||
		    fs_lookup(fs, FS_ROOT_INO, "link", &a) ||
		    fs_write(fs, a.ino, data, 4096, 0) != 4096 ||
		    fs_fsync(fs, a.ino, false))
			_exit(1);
		_exit(0);	/* a crash: no close, no trim */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* "big" is ino 3 (make_volume): its block 0's record. */
	ck_assert_int_eq(store_open(dir, STORE_RDONLY, &st), 0);
	tu_damage_block(st, dir, 3, 0, 60, 0x5a, id);
	store_close(st);
}

static size_t redo_damaged(const char *dir)
{
	struct journal_redo_stats rs;
	struct store *st;

	ck_assert_int_eq(store_open(dir, STORE_RDONLY, &st), 0);
	ck_assert_int_eq(journal_redo_replay(st, 0, &rs, NULL), 0);
	store_close(st);
	return rs.damaged;
}

static bool ask_no_redo(void *arg, const char *question)
{
	(void)arg;
	return !strstr(question, "redo");
}

/*
 * Declining to write the records pending redo again, in an interactive
 * run, leaves them as they are: opening the journal for another repair
 * would replay them all the same, so journaled repairs wait too.
 */
START_TEST(test_fsck_redo_declined)
{
	uint8_t data[4096], back[4096];
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	crash_after_fsync(c.dir, data);
	trim_journal(c.dir, 2);
	delete_dirent_of(c.dir, 4); /* "small": a journaled repair */
	ck_assert_uint_eq(redo_damaged(c.dir), 1);
	run_ask = ask_no_redo;
	run(&c, c.dir, FSCK_MODE_ASK, true, false, &r);
	run_ask = NULL;
	ck_assert_ptr_nonnull(strstr(c.out, "0x000013 redo-pending"));
	ck_assert_ptr_nonnull(strstr(c.out, "0x03000b inode-disconnected"));
	ck_assert_ptr_nonnull(strstr(c.out, "must be written again first"));
	ck_assert_uint_ge(r.left, 2);
	ck_assert_uint_eq(redo_damaged(c.dir), 1);
	/* -y writes them again and then repairs the rest. */
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.left, 0);
	ck_assert_uint_eq(redo_damaged(c.dir), 0);
	run(&c, c.dir, FSCK_MODE_YES, true, false, &r);
	ck_assert_uint_eq(r.problems, 0);
	{
		struct volume *v = NULL;
		struct fs *fs = NULL;
		struct fs_attr a;

		ck_assert_int_eq(volume_open(c.dir, 0, &v), 0);
		ck_assert_int_eq(volume_unlock_keyfile(v, keyfile,
						       sizeof(keyfile)), 0);
		ck_assert_int_eq(fs_open(v, FS_RDONLY, &fs), 0);
		ck_assert_int_eq(fs_lookup(fs, FS_ROOT_INO, "link", &a), 0);
		ck_assert_int_eq(fs_read(fs, a.ino, back, sizeof(back), 0),
				 (ssize_t)sizeof(back));
		ck_assert_mem_eq(back, data, sizeof(data));
		ck_assert_int_eq(fs_close(fs), 0);
		volume_close(v);
	}
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_json_document)
{
	struct fsck_result r;
	struct cfix c;

	cfix_open(&c);
	run(&c, c.dir, FSCK_MODE_NO, true, true, &r);
	ck_assert_int_eq(c.out[0], '{');
	ck_assert_ptr_nonnull(strstr(c.out, "\"keyed\":true"));
	ck_assert_ptr_nonnull(strstr(c.out, "\"summary\":{"));
	ck_assert_ptr_nonnull(strstr(c.out, "\"exit\":0\n}\n"));
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_problem_table)
{
	size_t n = fsck_problem_count();
	uint32_t code, code2;
	const char *name, *name2, *msg;

	ck_assert_uint_gt(n, 50);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(fsck_problem_info(i, &code, &name, &msg), 0);
		ck_assert_uint_le(code >> 16, 5);
		ck_assert_uint_eq(
		    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-"),
		    strlen(name));
		ck_assert(msg[0] < 'A' || msg[0] > 'Z');
		for (size_t j = 0; j < i; j++) {
			ck_assert_int_eq(
			    fsck_problem_info(j, &code2, &name2, &msg), 0);
			ck_assert_uint_ne(code, code2);
			ck_assert_str_ne(name, name2);
		}
	}
	ck_assert_int_eq(fsck_problem_info(n, &code, &name, &msg), -ERANGE);
}
END_TEST

START_TEST(test_fsck_compare)
{
	struct fsck_opts o = {0};
	struct fsck_result r;
	struct fsck *f;
	struct cfix c;
	char *copy, cmd[4096];
	FILE *out;

	cfix_open(&c);
	copy = tu_tmpdir();
	snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", c.dir, copy);
	ck_assert_int_eq(system(cmd), 0);
	out = open_memstream(&c.out, &c.outlen);
	o.store = c.dir;
	o.compare = copy;
	o.out = out;
	ck_assert_int_eq(fsck_new(&o, &f), 0);
	ck_assert_int_eq(fsck_run(f), 0);
	fsck_get_result(f, &r);
	ck_assert(!r.differ && !r.operational);
	fsck_free(f);
	fclose(out);
	free(c.out);
	c.out = NULL;

	delete_first(copy, STORE_CF_EXTENT);
	out = open_memstream(&c.out, &c.outlen);
	o.out = out;
	ck_assert_int_eq(fsck_new(&o, &f), 0);
	ck_assert_int_eq(fsck_run(f), 0);
	fsck_get_result(f, &r);
	ck_assert(r.differ);
	fsck_finish(f, 4);
	fsck_free(f);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(c.out, "first difference"));
	tu_rmdir(copy);
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_not_a_volume)
{
	struct fsck_result r;
	struct cfix c;
	char *empty = tu_tmpdir();

	memset(&c, 0, sizeof(c));
	run(&c, empty, FSCK_MODE_NO, false, false, &r);
	ck_assert(r.operational && r.fatal);
	ck_assert_ptr_nonnull(strstr(c.out, "0x000001 not-a-volume"));
	free(c.out);
	tu_rmdir(empty);
}
END_TEST

START_TEST(test_fsck_wrong_key)
{
	struct fsck_opts o = {0};
	struct fsck_result r;
	struct fsck *f;
	struct cfix c;
	uint8_t wrong[KEY_BYTES] = {1};
	FILE *out;

	cfix_open(&c);
	out = open_memstream(&c.out, &c.outlen);
	o.store = c.dir;
	o.out = out;
	o.secret_kind = FSCK_SECRET_KEYFILE;
	o.secret = wrong;
	o.secret_len = sizeof(wrong);
	ck_assert_int_eq(fsck_new(&o, &f), 0);
	(void)fsck_run(f);
	fsck_get_result(f, &r);
	ck_assert(r.operational);
	ck_assert(!r.modified);
	fsck_free(f);
	fclose(out);
	ck_assert_ptr_nonnull(strstr(c.out, "0x00000c key-rejected"));
	cfix_close(&c);
}
END_TEST

START_TEST(test_fsck_busy_refuses_repair)
{
	struct fsck_result r;
	struct store *st;
	struct cfix c;

	cfix_open(&c);
	ck_assert_int_eq(store_open(c.dir, 0, &st), 0);
	run(&c, c.dir, FSCK_MODE_YES, false, false, &r);
	ck_assert(r.operational);
	ck_assert_ptr_nonnull(strstr(c.out, "0x000011 store-busy"));
	/* Beside a writer, a read-only check still runs. */
	run(&c, c.dir, FSCK_MODE_NO, false, false, &r);
	ck_assert(!r.operational && !r.fatal);
	store_close(st);
	cfix_close(&c);
}
END_TEST

/* ---- the segment scan of store.h ---- */

struct scan_seen {
	int ok, bad, junk, shorty;
	uint64_t last_off;
	bool ordered;
};

static int scan_cb(void *arg, const struct store_seg_rec *r)
{
	struct scan_seen *s = arg;

	if (r->off < s->last_off)
		s->ordered = false;
	s->last_off = r->off;
	switch (r->state) {
	case STORE_REC_OK:
		s->ok++;
		ck_assert_uint_eq(r->rec_sum,
				  store_rec_sum(r->id, r->sealed, r->len));
		break;
	case STORE_REC_BAD_SUM:
		s->bad++;
		break;
	case STORE_REC_JUNK:
		s->junk++;
		break;
	case STORE_REC_SHORT:
		s->shorty++;
		break;
	}
	return 0;
}

START_TEST(test_store_seg_scan)
{
	struct scan_seen s = {.ordered = true};
	struct store_seg_info *segs;
	struct store_loc loc[4];
	uint8_t id[32] = {0}, data[3000], junk[700];
	size_t n, stray;
	struct store *st;
	char *dir = tu_tmpdir(), path[4096];
	uint64_t bytes = 0;
	int fd;

	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(store_open(dir, STORE_CREATE, &st), 0);
	for (int q = 0; q < 4; q++) {
		id[0] = (uint8_t)q;
		memset(data, 'a' + q, sizeof(data));
		ck_assert_int_eq(
		    store_seg_append(st, id, data, sizeof(data), &loc[q]), 0);
	}
	ck_assert_int_eq(store_seg_free(st, &loc[1]), 0);
	ck_assert_int_eq(store_sync(st), 0);
	ck_assert_int_eq(store_seg_list(st, &segs, &n, &stray), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(stray, 0);
	snprintf(path, sizeof(path), "%s/seg/%08u", dir, segs[0].nr);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	/* A flipped byte in record 2, junk past the end. */
	ck_assert_int_eq(pwrite(fd, "Z", 1, (off_t)loc[2].off + 100), 1);
	memset(junk, 0x77, sizeof(junk));
	ck_assert_int_eq(
	    pwrite(fd, junk, sizeof(junk), (off_t)segs[0].size + 512),
	    (ssize_t)sizeof(junk));
	close(fd);
	ck_assert_int_eq(store_seg_scan(st, segs[0].nr, 0, scan_cb, &s, &bytes),
			 0);
	ck_assert_int_eq(s.ok, 2);
	ck_assert_int_eq(s.bad, 1);
	ck_assert_int_eq(s.junk, 1);
	ck_assert(s.ordered);
	ck_assert_uint_gt(bytes, 0);
	ck_assert_int_eq(store_seg_punch(st, segs[0].nr, loc[2].off, 3072), 0);
	ck_assert_int_eq(store_seg_punch(st, segs[0].nr, 1, 512), -EINVAL);
	memset(&s, 0, sizeof(s));
	s.ordered = true;
	ck_assert_int_eq(store_seg_scan(st, segs[0].nr, 0, scan_cb, &s, NULL),
			 0);
	ck_assert_int_eq(s.ok, 2);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(store_seg_scan(st, 999, 0, scan_cb, &s, NULL),
			 -ENOENT);
	free(segs);
	store_close(st);
	tu_rmdir(dir);
}
END_TEST

/*
 * A segment larger than the scan's read-ahead: records straddle its reads
 * and a punched hole makes it jump; each record is seen once, whole.
 */
START_TEST(test_store_seg_scan_large)
{
	enum { NREC = 48, HOLE_FIRST = 10, HOLE_LAST = 29 };
	struct scan_seen s = {.ordered = true};
	struct store_seg_info *segs;
	struct store_loc loc[NREC];
	uint8_t id[32] = {0};
	size_t n, stray, maxlen = 1100 * 1024;
	uint8_t *data = malloc(maxlen);
	struct store *st;
	char *dir = tu_tmpdir();
	uint64_t bytes = 0, hole_lo, hole_hi;

	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(rmdir(dir), 0);
	ck_assert_int_eq(store_open(dir, STORE_CREATE, &st), 0);
	for (int q = 0; q < NREC; q++) {
		size_t len = 700 * 1024 + (size_t)q * 8191;

		id[0] = (uint8_t)q;
		for (size_t b = 0; b < len; b++)
			data[b] = (uint8_t)(b * 31 + (size_t)q);
		ck_assert_int_eq(store_seg_append(st, id, data, len, &loc[q]),
				 0);
	}
	ck_assert_int_eq(store_sync(st), 0);
	ck_assert_int_eq(store_seg_list(st, &segs, &n, &stray), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_gt(segs[0].size, 32u << 20);
	hole_lo = loc[HOLE_FIRST].off;
	hole_hi = loc[HOLE_LAST + 1].off;
	ck_assert_int_eq(
	    store_seg_punch(st, segs[0].nr, hole_lo, hole_hi - hole_lo), 0);
	ck_assert_int_eq(store_seg_scan(st, segs[0].nr, 0, scan_cb, &s, &bytes),
			 0);
	ck_assert_int_eq(s.ok, NREC - (HOLE_LAST - HOLE_FIRST + 1));
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(s.junk, 0);
	ck_assert_int_eq(s.shorty, 0);
	ck_assert(s.ordered);
	ck_assert_uint_eq(s.last_off, loc[NREC - 1].off);
	ck_assert_uint_ge(bytes, segs[0].size - (hole_hi - hole_lo));
	free(segs);
	free(data);
	store_close(st);
	tu_rmdir(dir);
}
END_TEST

/*
 * The same runs with a budget that keeps only a few keys of each family:
 * walks go from memory to RocksDB part way, with and without a prefix.
 */
static void keep_little(void)
{
	keep_bytes = 300;
}

static void keep_default(void)
{
	keep_bytes = 0;
}

static Suite *fsck_suite(void)
{
	Suite *s = suite_create("fsck");
	TCase *core = tcase_create("core");
	TCase *errors = tcase_create("errors");
	TCase *scan = tcase_create("scan");
	TCase *kept = tcase_create("kept-little");

	tcase_add_test(core, test_fsck_clean_keyless);
	tcase_add_test(core, test_fsck_clean_keyed);
	tcase_add_test(core, test_fsck_restore_from_journal);
	tcase_add_test(core, test_fsck_lost_found);
	tcase_add_test(core, test_fsck_redo_declined);
	tcase_add_test(core, test_fsck_key_malformed);
	tcase_add_test(core, test_fsck_json_document);
	tcase_add_test(core, test_fsck_problem_table);
	tcase_add_test(core, test_fsck_compare);
	tcase_add_test(errors, test_fsck_not_a_volume);
	tcase_add_test(errors, test_fsck_wrong_key);
	tcase_add_test(errors, test_fsck_busy_refuses_repair);
	tcase_add_test(scan, test_store_seg_scan);
	tcase_add_test(scan, test_store_seg_scan_large);
	tcase_set_timeout(core, 60);
	tcase_set_timeout(errors, 60);
	tcase_set_timeout(scan, 30);
	tcase_add_checked_fixture(kept, keep_little, keep_default);
	tcase_add_test(kept, test_fsck_clean_keyless);
	tcase_add_test(kept, test_fsck_clean_keyed);
	tcase_add_test(kept, test_fsck_restore_from_journal);
	tcase_add_test(kept, test_fsck_lost_found);
	tcase_add_test(kept, test_fsck_key_malformed);
	suite_add_tcase(s, core);
	suite_add_tcase(s, kept);
	suite_add_tcase(s, errors);
	suite_add_tcase(s, scan);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fsck_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
