/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* check_store.c - unit tests of the store: families, batches, segments */
#include "store.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "testutil.h"

static char *tdir;   /* the test's own temporary directory */
static char *spath;  /* tdir/store */
static int n_errlog; /* LOG_ERR lines captured */
static char last_errlog[1024];
static char *self_exe; /* this program, for re-execution */

static void capture(int level, const char *msg, void *arg)
{
	(void)arg;
	if (level <= LOG_ERR) {
		n_errlog++;
		snprintf(last_errlog, sizeof(last_errlog), "%s", msg);
	}
}

static void setup(void)
{
	tdir = tu_tmpdir();
	ck_assert_int_gt(asprintf(&spath, "%s/store", tdir), 0);
	log_set_sink(LOG_SINK_CAPTURE, capture, NULL);
	n_errlog = 0;
	last_errlog[0] = '\0';
}

static void teardown(void)
{
	free(spath);
	spath = NULL;
	tu_rmdir(tdir);
	tdir = NULL;
}

static struct store *open_store(enum store_open_flags flags)
{
	struct store *st = NULL;

	ck_assert_int_eq(store_open(spath, flags, &st), 0);
	ck_assert_ptr_nonnull(st);
	return st;
}

/* Deterministic, incompressible bytes. */
static void fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

static void put1(struct store *st, enum store_cf cf, const void *k, size_t kl,
		 const void *v, size_t vl)
{
	struct store_batch *b;

	ck_assert_int_eq(store_batch_new(&b), 0);
	store_batch_put(b, cf, k, kl, v, vl);
	ck_assert_int_eq(store_write(st, b, false), 0);
	store_batch_free(b);
}

static void expect_val(struct store *st, enum store_cf cf, const void *k,
		       size_t kl, const void *v, size_t vl)
{
	void *got;
	size_t n;

	ck_assert_int_eq(store_get(st, cf, k, kl, &got, &n), 0);
	ck_assert_uint_eq(n, vl);
	ck_assert_mem_eq(got, v, vl);
	free(got);
}

static void expect_absent(struct store *st, enum store_cf cf, const void *k,
			  size_t kl)
{
	void *got = (void *)1;
	size_t n = 1;

	ck_assert_int_eq(store_get(st, cf, k, kl, &got, &n), -ENOENT);
	ck_assert_ptr_null(got);
	ck_assert_uint_eq(n, 0);
}

static char *seg_file(uint32_t nr)
{
	char *p;

	ck_assert_int_gt(asprintf(&p, "%s/seg/%08" PRIu32, spath, nr), 0);
	return p;
}

static unsigned long long seg_blocks(uint32_t nr)
{
	char *p = seg_file(nr);
	struct stat sb;

	ck_assert_int_eq(stat(p, &sb), 0);
	free(p);
	return (unsigned long long)sb.st_blocks * 512;
}

static void xor_byte(const char *path, off_t off, uint8_t mask)
{
	uint8_t c;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= mask;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void make_id(uint8_t id[32], uint64_t n)
{
	memset(id, 0, 32);
	put_be64(id, n);
	id[31] = 0xa5;
}

/* First file in STORE/db whose name has this prefix and suffix, or NULL. */
static char *db_file(const char *prefix, const char *suffix)
{
	char *db, *found = NULL;
	struct dirent *de;
	DIR *d;

	ck_assert_int_gt(asprintf(&db, "%s/db", spath), 0);
	d = opendir(db);
	ck_assert_ptr_nonnull(d);
	while (!found && (de = readdir(d))) {
		size_t n = strlen(de->d_name), s = strlen(suffix);

		if (n > s && !strncmp(de->d_name, prefix, strlen(prefix)) &&
		    !strcmp(de->d_name + n - s, suffix))
			ck_assert_int_gt(
			    asprintf(&found, "%s/%s", db, de->d_name), 0);
	}
	closedir(d);
	free(db);
	return found;
}

/* ---- core ---- */

START_TEST(test_store_create_reopen)
{
	struct store_batch *b;
	struct store *st;
	char val[32];
	char *p;
	struct stat sb;

	st = open_store(STORE_CREATE);
	ck_assert(!store_rdonly(st));
	ck_assert_str_eq(store_path(st), spath);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
		uint8_t k[2] = {'k', (uint8_t)cf};

		snprintf(val, sizeof(val), "value-%d", cf);
		store_batch_put(b, (enum store_cf)cf, k, sizeof(k), val,
				strlen(val));
	}
	ck_assert_uint_eq(store_batch_count(b), STORE_CF_COUNT);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);
	store_close(st);

	ck_assert_int_gt(asprintf(&p, "%s/seg", spath), 0);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	free(p);

	for (int pass = 0; pass < 2; pass++) {
		st = open_store(pass ? STORE_RDONLY : 0);
		ck_assert(store_rdonly(st) == (pass == 1));
		for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
			uint8_t k[2] = {'k', (uint8_t)cf};
			uint8_t other[2] = {
			    'k', (uint8_t)((cf + 1) % STORE_CF_COUNT)};

			snprintf(val, sizeof(val), "value-%d", cf);
			expect_val(st, (enum store_cf)cf, k, sizeof(k), val,
				   strlen(val));
			/* Families are separate key spaces. */
			expect_absent(st, (enum store_cf)cf, other,
				      sizeof(other));
		}
		store_close(st);
	}
}
END_TEST

START_TEST(test_store_close_leaves_nothing_to_replay)
{
	struct store *st;
	struct dirent *de;
	char *db;
	DIR *d;
	uint8_t k[8], v[100];
	unsigned long long wal = 0;

	st = open_store(STORE_CREATE);
	for (uint64_t i = 0; i < 100; i++) {
		put_be64(k, i);
		fill(v, sizeof(v), i);
		put1(st, STORE_CF_INODE, k, sizeof(k), v, sizeof(v));
		put1(st, STORE_CF_JOURNAL, k, sizeof(k), v, sizeof(v));
	}
	store_close(st);

	ck_assert_int_gt(asprintf(&db, "%s/db", spath), 0);
	d = opendir(db);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct stat sb;

		if (n > 4 && !strcmp(de->d_name + n - 4, ".log")) {
			ck_assert_int_eq(fstatat(dirfd(d), de->d_name, &sb, 0),
					 0);
			wal += (unsigned long long)sb.st_size;
		}
	}
	closedir(d);
	free(db);
	ck_assert_uint_eq(wal, 0);

	st = open_store(0);
	put_be64(k, 99);
	fill(v, sizeof(v), 99);
	expect_val(st, STORE_CF_JOURNAL, k, sizeof(k), v, sizeof(v));
	store_close(st);
}
END_TEST

START_TEST(test_store_close_null)
{
	store_close(NULL);
	store_batch_free(NULL);
	store_iter_free(NULL);
}
END_TEST

START_TEST(test_store_batch_atomic)
{
	struct store_batch *b;
	struct store *st;
	uint8_t k[8];

	st = open_store(STORE_CREATE);
	put_be64(k, 7);
	put1(st, STORE_CF_ORPHAN, k, sizeof(k), "", 0);

	ck_assert_int_eq(store_batch_new(&b), 0);
	ck_assert_uint_eq(store_batch_count(b), 0);
	store_batch_put(b, STORE_CF_INODE, k, sizeof(k), "ino", 3);
	store_batch_put(b, STORE_CF_DIRENT, k, sizeof(k), "dent", 4);
	store_batch_put(b, STORE_CF_EXTENT, k, sizeof(k), "ext", 3);
	store_batch_put(b, STORE_CF_JOURNAL, k, sizeof(k), "rec", 3);
	store_batch_delete(b, STORE_CF_ORPHAN, k, sizeof(k));
	ck_assert_uint_eq(store_batch_count(b), 5);

	/* Nothing is visible before the write. */
	expect_absent(st, STORE_CF_INODE, k, sizeof(k));
	expect_absent(st, STORE_CF_JOURNAL, k, sizeof(k));
	expect_val(st, STORE_CF_ORPHAN, k, sizeof(k), "", 0);

	ck_assert_int_eq(store_write(st, b, true), 0);
	expect_val(st, STORE_CF_INODE, k, sizeof(k), "ino", 3);
	expect_val(st, STORE_CF_DIRENT, k, sizeof(k), "dent", 4);
	expect_val(st, STORE_CF_EXTENT, k, sizeof(k), "ext", 3);
	expect_val(st, STORE_CF_JOURNAL, k, sizeof(k), "rec", 3);
	expect_absent(st, STORE_CF_ORPHAN, k, sizeof(k));

	store_batch_clear(b);
	ck_assert_uint_eq(store_batch_count(b), 0);
	ck_assert_int_eq(store_write(st, b, false), 0);
	/* A cleared batch can be reused. */
	store_batch_put(b, STORE_CF_XATTR, k, sizeof(k), "x", 1);
	ck_assert_int_eq(store_write(st, b, false), 0);
	expect_val(st, STORE_CF_XATTR, k, sizeof(k), "x", 1);
	expect_val(st, STORE_CF_INODE, k, sizeof(k), "ino", 3);
	store_batch_free(b);
	store_close(st);
}
END_TEST

START_TEST(test_store_delete_range)
{
	struct store_batch *b;
	struct store *st;
	uint8_t k[8], e[8];

	st = open_store(STORE_CREATE);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (uint64_t i = 0; i < 100; i++) {
		put_be64(k, i);
		store_batch_put(b, STORE_CF_EXTENT, k, sizeof(k), &i,
				sizeof(i));
		store_batch_put(b, STORE_CF_INODE, k, sizeof(k), &i, sizeof(i));
	}
	ck_assert_int_eq(store_write(st, b, false), 0);
	store_batch_clear(b);
	put_be64(k, 10);
	put_be64(e, 20);
	store_batch_delete_range(b, STORE_CF_EXTENT, k, sizeof(k), e,
				 sizeof(e));
	ck_assert_uint_eq(store_batch_count(b), 1);
	ck_assert_int_eq(store_write(st, b, false), 0);
	store_batch_free(b);

	for (uint64_t i = 0; i < 100; i++) {
		put_be64(k, i);
		if (i >= 10 && i < 20)
			expect_absent(st, STORE_CF_EXTENT, k, sizeof(k));
		else
			expect_val(st, STORE_CF_EXTENT, k, sizeof(k), &i,
				   sizeof(i));
		/* Other families are untouched. */
		expect_val(st, STORE_CF_INODE, k, sizeof(k), &i, sizeof(i));
	}
	store_close(st);
}
END_TEST

START_TEST(test_store_iter_order)
{
	static const uint32_t keys[] = {
	    0x100, 0xffffffff, 1, 0x80000000, 0xff, 0x10000, 0x7fffffff};
	static const uint32_t sorted[] = {
	    1, 0xff, 0x100, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff};
	struct store_iter *it;
	struct store *st;
	const void *p;
	uint8_t k[4];
	size_t n, i;

	st = open_store(STORE_CREATE);
	for (i = 0; i < ARRAY_SIZE(keys); i++) {
		uint32_t v = keys[i] ^ 0x5a5a5a5a;

		put_be32(k, keys[i]);
		put1(st, STORE_CF_JOURNAL, k, sizeof(k), &v, sizeof(v));
	}
	/* A key in another family must not show up. */
	put_be32(k, 2);
	put1(st, STORE_CF_INODE, k, sizeof(k), "x", 1);

	ck_assert_int_eq(store_iter_new(st, STORE_CF_JOURNAL, &it), 0);
	i = 0;
	for (store_iter_seek_first(it); store_iter_valid(it);
	     store_iter_next(it)) {
		uint32_t v;

		ck_assert_uint_lt(i, ARRAY_SIZE(sorted));
		p = store_iter_key(it, &n);
		ck_assert_uint_eq(n, 4);
		ck_assert_uint_eq(get_be32(p), sorted[i]);
		p = store_iter_value(it, &n);
		ck_assert_uint_eq(n, sizeof(v));
		memcpy(&v, p, sizeof(v));
		ck_assert_uint_eq(v, sorted[i] ^ 0x5a5a5a5a);
		i++;
	}
	ck_assert_uint_eq(i, ARRAY_SIZE(sorted));
	ck_assert_int_eq(store_iter_status(it), 0);
	ck_assert_ptr_null(store_iter_key(it, &n));
	ck_assert_uint_eq(n, 0);

	put_be32(k, 0x101);
	store_iter_seek(it, k, sizeof(k));
	ck_assert(store_iter_valid(it));
	ck_assert_uint_eq(get_be32(store_iter_key(it, &n)), 0x10000);
	store_iter_prev(it);
	ck_assert_uint_eq(get_be32(store_iter_key(it, &n)), 0x100);

	put_be32(k, 0x100);
	store_iter_seek(it, k, sizeof(k));
	ck_assert_uint_eq(get_be32(store_iter_key(it, &n)), 0x100);

	store_iter_seek_last(it);
	ck_assert(store_iter_valid(it));
	ck_assert_uint_eq(get_be32(store_iter_key(it, &n)), 0xffffffff);
	store_iter_prev(it);
	ck_assert_uint_eq(get_be32(store_iter_key(it, &n)), 0x80000000);
	store_iter_seek_last(it);
	store_iter_next(it);
	ck_assert(!store_iter_valid(it));

	store_iter_seek_first(it);
	store_iter_prev(it);
	ck_assert(!store_iter_valid(it));

	/* Past every key (longer than any, sorts after 0xffffffff). */
	{
		uint8_t big[5] = {0xff, 0xff, 0xff, 0xff, 0};

		store_iter_seek(it, big, sizeof(big));
		ck_assert(!store_iter_valid(it));
	}
	ck_assert_int_eq(store_iter_status(it), 0);
	store_iter_free(it);

	/* An empty family. */
	ck_assert_int_eq(store_iter_new(st, STORE_CF_ORPHAN, &it), 0);
	store_iter_seek_first(it);
	ck_assert(!store_iter_valid(it));
	ck_assert_int_eq(store_iter_status(it), 0);
	store_iter_free(it);
	store_close(st);
}
END_TEST

START_TEST(test_store_get_buf)
{
	struct store *st;
	uint8_t buf[16];
	size_t n;

	st = open_store(STORE_CREATE);
	put1(st, STORE_CF_INODE, "a", 1, "0123456789", 10);

	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(store_get_buf(st, STORE_CF_INODE, "a", 1, buf, 10, &n),
			 0);
	ck_assert_uint_eq(n, 10);
	ck_assert_mem_eq(buf, "0123456789", 10);
	ck_assert_uint_eq(buf[10], 0xee);

	n = 0;
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(store_get_buf(st, STORE_CF_INODE, "a", 1, buf, 9, &n),
			 -ENOSPC);
	ck_assert_uint_eq(n, 10);
	ck_assert_uint_eq(buf[0], 0xee);

	n = 5;
	ck_assert_int_eq(
	    store_get_buf(st, STORE_CF_INODE, "b", 1, buf, sizeof(buf), &n),
	    -ENOENT);
	ck_assert_uint_eq(n, 0);
	store_close(st);
}
END_TEST

static const size_t seg_sizes[] = {
    0,	 1,   15,  16,	 463,  464,  465,   511,    512,     513,
    975, 976, 977, 4096, 4097, 8000, 65536, 131072, 1048576, 1048579,
};

START_TEST(test_store_seg_roundtrip)
{
	struct store_loc loc[ARRAY_SIZE(seg_sizes)], more;
	uint8_t id[32], *buf, *got;
	uint64_t end = 0;
	struct store *st;

	buf = malloc(1048579);
	got = malloc(1048579);
	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(got);
	st = open_store(STORE_CREATE);
	for (size_t i = 0; i < ARRAY_SIZE(seg_sizes); i++) {
		make_id(id, i);
		fill(buf, seg_sizes[i], i);
		ck_assert_int_eq(
		    store_seg_append(st, id, buf, seg_sizes[i], &loc[i]), 0);
		ck_assert_uint_eq(loc[i].len, seg_sizes[i]);
		ck_assert_uint_eq(loc[i].off % STORE_SEG_ALIGN, 0);
		ck_assert_uint_ge(loc[i].off, end);
		end = loc[i].off + STORE_SEG_HDR_BYTES + seg_sizes[i];
		ck_assert_int_eq(store_seg_read(st, &loc[i], id, got), 0);
		ck_assert_mem_eq(got, buf, seg_sizes[i]);
	}
	ck_assert_int_eq(store_sync(st), 0);
	store_close(st);

	st = open_store(0);
	for (size_t i = 0; i < ARRAY_SIZE(seg_sizes); i++) {
		make_id(id, i);
		fill(buf, seg_sizes[i], i);
		memset(got, 0, seg_sizes[i]);
		ck_assert_int_eq(store_seg_read(st, &loc[i], id, got), 0);
		ck_assert_mem_eq(got, buf, seg_sizes[i]);
	}
	/* Appends after a reopen land after every earlier record. */
	make_id(id, 1000);
	ck_assert_int_eq(store_seg_append(st, id, "tail", 4, &more), 0);
	ck_assert_uint_eq(more.seg, loc[0].seg);
	ck_assert_uint_ge(more.off, end);
	ck_assert_uint_eq(more.off % STORE_SEG_ALIGN, 0);
	ck_assert_int_eq(store_seg_read(st, &more, id, got), 0);
	ck_assert_mem_eq(got, "tail", 4);
	store_close(st);

	/* A read-only handle reads segments too. */
	st = open_store(STORE_RDONLY);
	make_id(id, 19);
	fill(buf, seg_sizes[19], 19);
	ck_assert_int_eq(store_seg_read(st, &loc[19], id, got), 0);
	ck_assert_mem_eq(got, buf, seg_sizes[19]);
	store_close(st);
	free(buf);
	free(got);
}
END_TEST

#define SEG_THREADS    4
#define SEG_PER_THREAD 1000

struct seg_worker {
	struct store *st;
	int t;
	int err;
	struct store_loc loc[SEG_PER_THREAD];
};

static size_t worker_len(int t, int i)
{
	return (size_t)((t * 7919 + i * 37) % 3000);
}

static void *seg_worker_run(void *arg)
{
	struct seg_worker *w = arg;
	uint8_t id[32], buf[3000];

	for (int i = 0; i < SEG_PER_THREAD && !w->err; i++) {
		size_t len = worker_len(w->t, i);

		make_id(id, (uint64_t)w->t << 32 | (uint64_t)i);
		fill(buf, len, (uint64_t)w->t << 32 | (uint64_t)i);
		w->err = store_seg_append(w->st, id, buf, len, &w->loc[i]);
		if (!w->err && i % 100 == 99)
			w->err = store_sync(w->st);
	}
	return NULL;
}

struct span {
	uint32_t seg;
	uint64_t off, end;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* A batch of records: one contiguous run, split into chunks, read back. */
START_TEST(test_store_seg_append_batch)
{
	enum { N = 600 };	/* more records than one chunk holds */
	static uint8_t ids[N][32];
	const uint8_t *idp[N];
	const void *data[N];
	size_t lens[N];
	struct store_loc loc[N];
	uint8_t *bufs[N], got[20000];
	struct store *st;

	st = open_store(STORE_CREATE);
	for (size_t i = 0; i < N; i++) {
		lens[i] = 1 + (i * 7919) % 19000;
		bufs[i] = malloc(lens[i]);
		ck_assert_ptr_nonnull(bufs[i]);
		fill(bufs[i], lens[i], i);
		make_id(ids[i], 5000 + i);
		idp[i] = ids[i];
		data[i] = bufs[i];
	}
	ck_assert_int_eq(
	    store_seg_append_batch(st, N, idp, data, lens, NULL, loc), 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_uint_eq(loc[i].len, lens[i]);
		ck_assert_uint_eq(loc[i].off % STORE_SEG_ALIGN, 0);
		if (i && loc[i].seg == loc[i - 1].seg)
			ck_assert_uint_ge(loc[i].off,
					  loc[i - 1].off +
					      store_seg_span(loc[i - 1].len));
		/* within a chunk the records follow one another exactly */
		if (i % 256 && loc[i].seg == loc[i - 1].seg)
			ck_assert_uint_eq(loc[i].off,
					  loc[i - 1].off +
					      store_seg_span(loc[i - 1].len));
		ck_assert_int_eq(store_seg_read(st, &loc[i], ids[i], got), 0);
		ck_assert_mem_eq(got, bufs[i], lens[i]);
	}
	/* A single append afterwards lands past the batch. */
	{
		struct store_loc more;
		uint8_t id[32];

		make_id(id, 99);
		ck_assert_int_eq(store_seg_append(st, id, "x", 1, &more), 0);
		ck_assert_uint_ge(more.off, loc[N - 1].off +
						store_seg_span(loc[N - 1].len));
	}
	ck_assert_int_eq(
	    store_seg_append_batch(st, 0, idp, data, lens, NULL, loc), 0);
	store_close(st);
	st = open_store(STORE_RDONLY);
	ck_assert_int_eq(
	    store_seg_append_batch(st, 1, idp, data, lens, NULL, loc), -EROFS);
	store_close(st);
	for (size_t i = 0; i < N; i++)
		free(bufs[i]);
}
END_TEST

/*
 * Large chunks are written O_DIRECT from a page boundary, small ones
 * through the page cache: interleaved, every record reads back, before and
 * after a reopen, and a scan of the segment meets exactly the records
 * appended, in order, and no junk (the zeros between chunks are skipped).
 */
struct tsd_scan {
	size_t n, junk;
	struct store_loc *loc;
	uint8_t (*ids)[32];
	size_t total;
};

static int tsd_fn(void *arg, const struct store_seg_rec *r)
{
	struct tsd_scan *t = arg;

	if (r->state != STORE_REC_OK) {
		t->junk++;
		return 0;
	}
	ck_assert_uint_lt(t->n, t->total);
	ck_assert_uint_eq(r->off, t->loc[t->n].off);
	ck_assert_uint_eq(r->len, t->loc[t->n].len);
	ck_assert_mem_eq(r->id, t->ids[t->n], 32);
	t->n++;
	return 0;
}

START_TEST(test_store_seg_direct_mixed)
{
	enum { ROUNDS = 12, BIG = 6, PER = BIG + 1, N = ROUNDS * PER };
	static uint8_t ids[N][32];
	static uint8_t bufs[N][16000];
	struct store_loc loc[N];
	uint8_t got[16000];
	struct tsd_scan t = { 0, 0, loc, ids, N };
	struct store *st;

	st = open_store(STORE_CREATE);
	for (size_t r = 0; r < ROUNDS; r++) {
		const uint8_t *idp[BIG];
		const void *data[BIG];
		size_t lens[BIG], base = r * PER;

		for (size_t q = 0; q < PER; q++) {
			make_id(ids[base + q], 7000 + base + q);
			fill(bufs[base + q], sizeof(bufs[0]), base + q);
		}
		for (size_t q = 0; q < BIG; q++) {
			idp[q] = ids[base + q];
			data[q] = bufs[base + q];
			lens[q] = sizeof(bufs[0]) - 700 * (4 - r % 5) - q;
		}
		/* 79-96 KiB: direct (the lengths vary, so that each chunk pads
		 * over bytes of the one before in the reused buffer); then
		 * 100 bytes: buffered */
		ck_assert_int_eq(store_seg_append_batch(st, BIG, idp, data,
							lens, NULL, loc + base),
				 0);
		ck_assert_int_eq(store_seg_append(st, ids[base + BIG],
						  bufs[base + BIG], 100,
						  &loc[base + BIG]),
				 0);
	}
	/* Where this file system takes O_DIRECT, the large chunks went so. */
	{
		char *probe;
		int fd;

		ck_assert_int_gt(asprintf(&probe, "%s/probe", tdir), 0);
		fd = open(probe, O_RDWR | O_CREAT | O_DIRECT, 0600);
		if (fd >= 0 && sysconf(_SC_PAGESIZE) == 4096)
			for (size_t r = 0; r < ROUNDS; r++)
				ck_assert_uint_eq(loc[r * PER].off % 4096, 0);
		if (fd >= 0)
			close(fd);
		free(probe);
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < N; i++) {
			ck_assert_uint_eq(loc[i].seg, loc[0].seg);
			if (i)
				ck_assert_uint_ge(
				    loc[i].off,
				    loc[i - 1].off +
					store_seg_span(loc[i - 1].len));
			ck_assert_int_eq(store_seg_read(st, &loc[i], ids[i],
							got),
					 0);
			ck_assert_mem_eq(got, bufs[i], loc[i].len);
		}
		t.n = t.junk = 0;
		ck_assert_int_eq(store_seg_scan(st, loc[0].seg, 4u << 20,
						tsd_fn, &t, NULL),
				 0);
		ck_assert_uint_eq(t.n, N);
		ck_assert_uint_eq(t.junk, 0);
		store_close(st);
		st = open_store(0);
	}
	store_close(st);
}
END_TEST

/*
 * A record's checksum is FORMAT.md's XXH3-64 of id || sealed bytes; it is
 * in the record's header, and a sum the caller hands in is the one
 * written (so that the block value and the record agree by construction).
 */
START_TEST(test_store_rec_sum)
{
	uint8_t id[32], data[3000], cat[32 + sizeof(data)], hdr[48];
	const uint8_t *idp[2] = {id, id};
	const void *dp[2] = {data, data};
	size_t lens[2] = {sizeof(data), 100};
	uint64_t sums[2];
	struct store_loc loc[2];
	struct store *st;
	char *p;
	int fd;

	make_id(id, 7);
	fill(data, sizeof(data), 7);
	memcpy(cat, id, 32);
	memcpy(cat + 32, data, sizeof(data));
	ck_assert_uint_eq(store_rec_sum(id, data, sizeof(data)),
			  XXH3_64bits(cat, sizeof(cat)));
	ck_assert_uint_ne(store_rec_sum(id, data, sizeof(data) - 1),
			  store_rec_sum(id, data, sizeof(data)));
	id[31] ^= 1;
	ck_assert_uint_ne(store_rec_sum(id, data, sizeof(data)),
			  XXH3_64bits(cat, sizeof(cat)));
	id[31] ^= 1;

	st = open_store(STORE_CREATE);
	sums[0] = store_rec_sum(id, data, lens[0]);
	sums[1] = store_rec_sum(id, data, lens[1]) ^ 1; /* a wrong one */
	ck_assert_int_eq(store_seg_append_batch(st, 2, idp, dp, lens, sums, loc),
			 0);
	p = seg_file(loc[0].seg);
	fd = open(p, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, hdr, sizeof(hdr), (off_t)loc[0].off),
			 (ssize_t)sizeof(hdr));
	ck_assert_uint_eq(get_be64(hdr + 40), sums[0]);
	ck_assert_int_eq(pread(fd, hdr, sizeof(hdr), (off_t)loc[1].off),
			 (ssize_t)sizeof(hdr));
	ck_assert_uint_eq(get_be64(hdr + 40), sums[1]);
	close(fd);
	free(p);
	ck_assert_int_eq(store_seg_read(st, &loc[0], id, data), 0);
	ck_assert_int_eq(store_seg_read(st, &loc[1], id, data), -EUCLEAN);
	store_close(st);
}
END_TEST

START_TEST(test_store_seg_threads)
{
	static struct seg_worker w[SEG_THREADS];
	static struct span spans[SEG_THREADS * SEG_PER_THREAD];
	pthread_t th[SEG_THREADS];
	uint8_t id[32], buf[3000], got[3000];
	struct store *st;
	size_t n = 0;

	st = open_store(STORE_CREATE);
	for (int t = 0; t < SEG_THREADS; t++) {
		w[t].st = st;
		w[t].t = t;
		w[t].err = 0;
		ck_assert_int_eq(
		    pthread_create(&th[t], NULL, seg_worker_run, &w[t]), 0);
	}
	for (int t = 0; t < SEG_THREADS; t++)
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
	for (int t = 0; t < SEG_THREADS; t++)
		ck_assert_int_eq(w[t].err, 0);

	for (int t = 0; t < SEG_THREADS; t++) {
		for (int i = 0; i < SEG_PER_THREAD; i++) {
			size_t len = worker_len(t, i);
			uint64_t seed = (uint64_t)t << 32 | (uint64_t)i;

			make_id(id, seed);
			fill(buf, len, seed);
			ck_assert_uint_eq(w[t].loc[i].len, len);
			ck_assert_int_eq(
			    store_seg_read(st, &w[t].loc[i], id, got), 0);
			ck_assert_mem_eq(got, buf, len);
			spans[n].seg = w[t].loc[i].seg;
			spans[n].off = w[t].loc[i].off;
			spans[n].end =
			    w[t].loc[i].off + STORE_SEG_HDR_BYTES + len;
			n++;
		}
	}
	qsort(spans, n, sizeof(spans[0]), span_cmp);
	for (size_t i = 1; i < n; i++)
		if (spans[i].seg == spans[i - 1].seg)
			ck_assert_uint_ge(spans[i].off, spans[i - 1].end);
	store_close(st);
}
END_TEST

START_TEST(test_store_seg_free_punch)
{
	const size_t len = 4u << 20;
	struct store_loc loc, small;
	unsigned long long before, after;
	uint8_t id[32], id2[32], *buf;
	struct store *st;

	buf = malloc(len);
	ck_assert_ptr_nonnull(buf);
	fill(buf, len, 42);
	st = open_store(STORE_CREATE);
	make_id(id2, 2);
	ck_assert_int_eq(store_seg_append(st, id2, "keep", 4, &small), 0);
	make_id(id, 1);
	ck_assert_int_eq(store_seg_append(st, id, buf, len, &loc), 0);
	ck_assert_int_eq(store_sync(st), 0);
	before = seg_blocks(loc.seg);
	ck_assert_uint_ge(before, len);

	ck_assert_int_eq(store_seg_free(st, &loc), 0);
	after = seg_blocks(loc.seg);
	ck_assert_uint_le(after + len - 8192, before);
	/* Idempotent. */
	ck_assert_int_eq(store_seg_free(st, &loc), 0);
	ck_assert_uint_eq(seg_blocks(loc.seg), after);

	/* The freed record is gone; its neighbour is not. */
	n_errlog = 0;
	ck_assert_int_eq(store_seg_read(st, &loc, id, buf), -EUCLEAN);
	ck_assert_int_eq(n_errlog, 1);
	ck_assert_int_eq(store_seg_read(st, &small, id2, buf), 0);
	ck_assert_mem_eq(buf, "keep", 4);
	store_close(st);
	free(buf);
}
END_TEST

START_TEST(test_store_loc_codec)
{
	struct store_loc a = {0x01020304, 0x0a0b0c0d, 0x1112131415161718ull}, b;
	static const uint8_t want[STORE_LOC_BYTES] = {
	    0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d,
	    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
	};
	uint8_t enc[STORE_LOC_BYTES];

	store_loc_encode(&a, enc);
	ck_assert_mem_eq(enc, want, sizeof(want));
	memset(&b, 0, sizeof(b));
	ck_assert_int_eq(store_loc_decode(enc, sizeof(enc), &b), 0);
	ck_assert_uint_eq(b.seg, a.seg);
	ck_assert_uint_eq(b.len, a.len);
	ck_assert_uint_eq(b.off, a.off);
}
END_TEST

START_TEST(test_store_sync)
{
	struct store_batch *b;
	struct store_loc loc;
	uint8_t id[32], enc[STORE_LOC_BYTES], got[5];
	struct store *st;
	size_t n;

	st = open_store(STORE_CREATE);
	ck_assert_int_eq(store_sync(st), 0); /* nothing written yet */
	make_id(id, 5);
	ck_assert_int_eq(store_seg_append(st, id, "hello", 5, &loc), 0);
	store_loc_encode(&loc, enc);
	ck_assert_int_eq(store_batch_new(&b), 0);
	store_batch_put(b, STORE_CF_LOCAL, id, sizeof(id), enc, sizeof(enc));
	ck_assert_int_eq(store_write(st, b, false), 0);
	ck_assert_int_eq(store_sync(st), 0);
	ck_assert_int_eq(store_sync(st), 0);
	store_batch_clear(b);
	store_batch_put(b, STORE_CF_SUPER, "head", 4, "1", 1);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);
	store_close(st);

	st = open_store(0);
	ck_assert_int_eq(store_get_buf(st, STORE_CF_LOCAL, id, sizeof(id), enc,
				       sizeof(enc), &n),
			 0);
	ck_assert_int_eq(store_loc_decode(enc, n, &loc), 0);
	ck_assert_int_eq(store_seg_read(st, &loc, id, got), 0);
	ck_assert_mem_eq(got, "hello", 5);
	expect_val(st, STORE_CF_SUPER, "head", 4, "1", 1);
	store_close(st);
}
END_TEST

START_TEST(test_store_space)
{
	uint64_t used, avail, total, used2;
	struct store_loc loc;
	uint8_t id[32], *buf;
	struct store *st;

	st = open_store(STORE_CREATE);
	ck_assert_int_eq(store_space(st, &used, &avail, &total), 0);
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_le(avail, total);
	buf = calloc(1, 1 << 20);
	ck_assert_ptr_nonnull(buf);
	make_id(id, 1);
	ck_assert_int_eq(store_seg_append(st, id, buf, 1 << 20, &loc), 0);
	ck_assert_int_eq(store_sync(st), 0);
	ck_assert_int_eq(store_space(st, &used2, &avail, &total), 0);
	ck_assert_uint_ge(used2, used + (1 << 20));
	free(buf);
	store_close(st);
}
END_TEST

START_TEST(test_store_rdonly_beside_writer)
{
	struct store *w, *r;
	struct store_batch *b;
	struct store_loc loc, l2;
	struct store_iter *it;
	uint8_t id[32], got[8];
	size_t n;

	w = open_store(STORE_CREATE);
	make_id(id, 9);
	ck_assert_int_eq(store_seg_append(w, id, "sealed!", 7, &loc), 0);
	put1(w, STORE_CF_INODE, "ino1", 4, "attr", 4); /* not synced */
	ck_assert_int_eq(store_batch_new(&b), 0);
	store_batch_put(b, STORE_CF_DIRENT, "d1", 2, "ent", 3);
	ck_assert_int_eq(store_write(w, b, true), 0);

	r = open_store(STORE_RDONLY);
	ck_assert(store_rdonly(r));
	expect_val(r, STORE_CF_INODE, "ino1", 4, "attr", 4);
	expect_val(r, STORE_CF_DIRENT, "d1", 2, "ent", 3);
	ck_assert_int_eq(store_seg_read(r, &loc, id, got), 0);
	ck_assert_mem_eq(got, "sealed!", 7);
	ck_assert_int_eq(store_iter_new(r, STORE_CF_INODE, &it), 0);
	store_iter_seek_first(it);
	ck_assert(store_iter_valid(it));
	ck_assert_mem_eq(store_iter_key(it, &n), "ino1", 4);
	store_iter_free(it);

	ck_assert_int_eq(store_write(r, b, false), -EROFS);
	ck_assert_int_eq(store_write(r, b, true), -EROFS);
	ck_assert_int_eq(store_seg_append(r, id, "x", 1, &l2), -EROFS);
	ck_assert_int_eq(store_seg_free(r, &loc), -EROFS);
	ck_assert_int_eq(store_compact(r), -EROFS);
	ck_assert_int_eq(store_sync(r), 0);

	/* The writer carries on while the reader is open. */
	put1(w, STORE_CF_INODE, "ino2", 4, "attr2", 5);
	expect_val(w, STORE_CF_INODE, "ino2", 4, "attr2", 5);
	store_close(r);
	store_batch_free(b);
	store_close(w);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_store_seg_roll)
{
	struct store_loc a, b, c, d, e;
	uint8_t id[32], got[1000], buf[1000], zeros[512] = {0};
	struct store *st;
	char *p;
	int fd;

	st = open_store(STORE_CREATE);
	store_close(st);
	/*
	 * Make segment 1 nearly full without writing a gigabyte: a sparse
	 * file whose last unit before the tail is written (zeros). A hole
	 * there would read as space allocated ahead and left by a crash.
	 */
	p = seg_file(1);
	ck_assert_int_eq(truncate(p, (off_t)(STORE_SEG_MAX - 1024)), 0);
	fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, zeros, sizeof(zeros),
				(off_t)(STORE_SEG_MAX - 1024 - sizeof(zeros))),
			 (ssize_t)sizeof(zeros));
	close(fd);
	free(p);

	st = open_store(0);
	fill(buf, sizeof(buf), 3);
	make_id(id, 1);
	ck_assert_int_eq(store_seg_append(st, id, buf, 100, &a), 0);
	ck_assert_uint_eq(a.seg, 1);
	ck_assert_uint_eq(a.off, STORE_SEG_MAX - 1024);
	ck_assert_int_eq(store_seg_append(st, id, buf, 1000, &b), 0);
	ck_assert_uint_eq(b.seg, 2);
	ck_assert_uint_eq(b.off, 0);
	/* A record of exactly one alignment unit still fits nowhere in 1. */
	ck_assert_int_eq(store_seg_append(st, id, buf, 464, &c), 0);
	ck_assert_uint_eq(c.seg, 2);
	ck_assert_uint_eq(c.off, 1536);
	ck_assert_int_eq(store_seg_read(st, &a, id, got), 0);
	ck_assert_mem_eq(got, buf, 100);
	ck_assert_int_eq(store_seg_read(st, &b, id, got), 0);
	ck_assert_mem_eq(got, buf, 1000);
	ck_assert_int_eq(store_seg_read(st, &c, id, got), 0);
	ck_assert_mem_eq(got, buf, 464);
	store_close(st);

	/* Reopening continues in the highest segment. */
	st = open_store(0);
	ck_assert_int_eq(store_seg_append(st, id, buf, 10, &d), 0);
	ck_assert_uint_eq(d.seg, 2);
	ck_assert_uint_eq(d.off, 2048);
	ck_assert_int_eq(store_seg_read(st, &a, id, got), 0);
	ck_assert_mem_eq(got, buf, 100);
	ck_assert_int_eq(store_seg_read(st, &d, id, got), 0);
	ck_assert_mem_eq(got, buf, 10);
	ck_assert_int_eq(store_seg_free(st, &a), 0);
	ck_assert_int_eq(store_seg_append(st, id, buf, 10, &e), 0);
	ck_assert_uint_eq(e.seg, 2);
	store_close(st);
}
END_TEST

/*
 * The active segment is allocated ahead of its appends; a clean close
 * gives the space back, and so does the next open after a crash left it.
 */
START_TEST(test_store_seg_prealloc)
{
	struct store_loc loc[8], after;
	uint8_t id[32], got[20000], buf[20000];
	struct store *st;
	struct stat sb;
	char *p = NULL;
	int fd;

	st = open_store(STORE_CREATE);
	make_id(id, 7);
	for (int q = 0; q < 8; q++) {
		fill(buf, sizeof(buf), (uint64_t)q);
		ck_assert_int_eq(store_seg_append(st, id, buf, sizeof(buf),
						  &loc[q]), 0);
	}
	p = seg_file(loc[0].seg);
	ck_assert_int_eq(stat(p, &sb), 0);
	if ((uint64_t)sb.st_size == loc[7].off + store_seg_span(loc[7].len)) {
		/* The file system allocates nothing ahead: nothing to test. */
		store_close(st);
		free(p);
		return;
	}
	ck_assert_uint_gt((uint64_t)sb.st_size,
			  loc[7].off + store_seg_span(loc[7].len));
	store_close(st);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_uint_eq((uint64_t)sb.st_size,
			  loc[7].off + store_seg_span(loc[7].len));

	/* A crash after allocating ahead: 64 MiB of it left past the end. */
	fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fallocate(fd, 0, sb.st_size, 64 << 20), 0);
	close(fd);
	st = open_store(0);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_uint_le((uint64_t)sb.st_size,
			  (loc[7].off + store_seg_span(loc[7].len) + 4095) /
			      4096 * 4096);
	ck_assert_int_eq(store_seg_append(st, id, buf, 100, &after), 0);
	ck_assert_uint_eq(after.seg, loc[0].seg);
	ck_assert_uint_ge(after.off, loc[7].off + store_seg_span(loc[7].len));
	ck_assert_uint_lt(after.off, (uint64_t)sb.st_size + 4096);
	for (int q = 0; q < 8; q++) {
		fill(buf, sizeof(buf), (uint64_t)q);
		ck_assert_int_eq(store_seg_read(st, &loc[q], id, got), 0);
		ck_assert_mem_eq(got, buf, sizeof(buf));
	}
	store_close(st);
	free(p);
}
END_TEST

START_TEST(test_store_seg_too_big)
{
	struct store_loc loc;
	uint8_t id[32] = {0};
	struct store *st;

	st = open_store(STORE_CREATE);
	/* Rejected before the buffer is read. */
	ck_assert_int_eq(
	    store_seg_append(st, id, id,
			     STORE_SEG_MAX - STORE_SEG_HDR_BYTES + 1, &loc),
	    -EINVAL);
	store_close(st);
}
END_TEST

START_TEST(test_store_empty_value)
{
	struct store *st;
	void *v;
	size_t n;
	uint8_t buf[1];

	st = open_store(STORE_CREATE);
	put1(st, STORE_CF_ORPHAN, "o", 1, NULL, 0);
	ck_assert_int_eq(store_get(st, STORE_CF_ORPHAN, "o", 1, &v, &n), 0);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, 0);
	free(v);
	ck_assert_int_eq(store_get_buf(st, STORE_CF_ORPHAN, "o", 1, buf, 0, &n),
			 0);
	ck_assert_uint_eq(n, 0);
	store_close(st);
}
END_TEST

START_TEST(test_store_big_batch)
{
	struct store_batch *b;
	struct store_iter *it;
	struct store *st;
	uint8_t k[8], v[200];
	size_t count = 0;

	st = open_store(STORE_CREATE);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (uint64_t i = 0; i < 20000; i++) {
		put_be64(k, i);
		fill(v, sizeof(v), i);
		store_batch_put(b, STORE_CF_BLOCK, k, sizeof(k), v, sizeof(v));
	}
	ck_assert_uint_eq(store_batch_count(b), 20000);
	ck_assert_int_eq(store_write(st, b, true), 0);
	store_batch_free(b);

	ck_assert_int_eq(store_iter_new(st, STORE_CF_BLOCK, &it), 0);
	for (store_iter_seek_first(it); store_iter_valid(it);
	     store_iter_next(it)) {
		size_t n;

		ck_assert_uint_eq(get_be64(store_iter_key(it, &n)), count);
		count++;
	}
	ck_assert_int_eq(store_iter_status(it), 0);
	store_iter_free(it);
	ck_assert_uint_eq(count, 20000);
	put_be64(k, 12345);
	fill(v, sizeof(v), 12345);
	expect_val(st, STORE_CF_BLOCK, k, sizeof(k), v, sizeof(v));
	store_close(st);
}
END_TEST

START_TEST(test_store_compact_shrinks)
{
	struct store_batch *b;
	struct store *st;
	uint8_t k[8], e[8], v[1000];
	unsigned long long full, empty;
	char *db;

	ck_assert_int_gt(asprintf(&db, "%s/db", spath), 0);
	st = open_store(STORE_CREATE);
	ck_assert_int_eq(store_batch_new(&b), 0);
	for (uint64_t i = 0; i < 20000; i++) {
		put_be64(k, i);
		fill(v, sizeof(v), i);
		store_batch_put(b, STORE_CF_EXTENT, k, sizeof(k), v, sizeof(v));
		if (i % 1000 == 999) {
			ck_assert_int_eq(store_write(st, b, false), 0);
			store_batch_clear(b);
		}
	}
	ck_assert_int_eq(store_compact(st), 0);
	full = tu_du(db);
	ck_assert_uint_gt(full, 20000ull * 1000);

	put_be64(k, 0);
	put_be64(e, 20000);
	store_batch_delete_range(b, STORE_CF_EXTENT, k, sizeof(k), e,
				 sizeof(e));
	ck_assert_int_eq(store_write(st, b, false), 0);
	store_batch_free(b);
	ck_assert_int_eq(store_compact(st), 0);
	empty = tu_du(db);
	ck_assert_uint_lt(empty * 4, full);
	put_be64(k, 5);
	expect_absent(st, STORE_CF_EXTENT, k, sizeof(k));
	store_close(st);
	free(db);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_store_create_nonempty)
{
	struct store *st = (struct store *)1;
	char *f;
	int fd;

	ck_assert_int_eq(mkdir(spath, 0700), 0);
	ck_assert_int_gt(asprintf(&f, "%s/junk", spath), 0);
	fd = open(f, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(store_open(spath, STORE_CREATE, &st), -EEXIST);
	ck_assert_ptr_null(st);
	ck_assert_int_eq(unlink(f), 0);
	free(f);

	/* An empty existing directory is taken. */
	st = open_store(STORE_CREATE);
	store_close(st);
	/* A store is not created twice. */
	ck_assert_int_eq(store_open(spath, STORE_CREATE, &st), -EEXIST);
	ck_assert_ptr_null(st);
}
END_TEST

START_TEST(test_store_open_missing)
{
	struct store *st = (struct store *)1;

	ck_assert_int_eq(store_open(spath, 0, &st), -ENOENT);
	ck_assert_ptr_null(st);
	ck_assert_int_eq(store_open(spath, STORE_RDONLY, &st), -ENOENT);
	ck_assert_int_eq(mkdir(spath, 0700), 0);
	ck_assert_int_eq(store_open(spath, 0, &st), -ENOENT);
	ck_assert_int_eq(store_open(spath, STORE_RDONLY, &st), -ENOENT);
	ck_assert_ptr_null(st);
	ck_assert_int_eq(store_open(spath, STORE_RDONLY | STORE_CREATE, &st),
			 -EINVAL);
}
END_TEST

START_TEST(test_store_open_busy_same_process)
{
	struct store *st, *st2 = (struct store *)1, *r;

	char log_path[PATH_MAX];
	struct stat before, after;

	st = open_store(STORE_CREATE);
	/* Refused by our lock before RocksDB touches the holder's files. */
	snprintf(log_path, sizeof(log_path), "%s/db/LOG", spath);
	ck_assert_int_eq(stat(log_path, &before), 0);
	n_errlog = 0;
	ck_assert_int_eq(store_open(spath, 0, &st2), -EBUSY);
	ck_assert_ptr_null(st2);
	ck_assert_int_eq(n_errlog, 0);
	ck_assert_int_eq(stat(log_path, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	ck_assert_int_eq(store_busy(spath), -EBUSY);
	r = open_store(STORE_RDONLY);
	store_close(r);
	store_close(st);
	/* Released on close. */
	st = open_store(0);
	store_close(st);
}
END_TEST

/*
 * The other process is this program re-executed with --hold-store, so that
 * it starts without the RocksDB state (thread pool, lock table) of this one.
 */
START_TEST(test_store_open_busy_other_process)
{
	struct store *st = (struct store *)1;
	int up[2], down[2], status;
	pid_t pid;
	char c;

	st = open_store(STORE_CREATE);
	store_close(st);
	ck_assert_int_eq(pipe(up), 0);
	ck_assert_int_eq(pipe(down), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (dup2(down[0], 0) < 0 || dup2(up[1], 1) < 0)
			_exit(126);
		close(down[1]);
		close(up[0]);
		execl(self_exe, "check_store", "--hold-store", spath,
		      (char *)NULL);
		_exit(127);
	}
	close(down[0]);
	close(up[1]);
	ck_assert_int_eq(read(up[0], &c, 1), 1);
	ck_assert_int_eq(store_open(spath, 0, &st), -EBUSY);
	ck_assert_ptr_null(st);
	st = open_store(STORE_RDONLY);
	store_close(st);
	close(down[1]); /* the holder closes the store and exits */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	close(up[0]);
	st = open_store(0);
	store_close(st);
}
END_TEST

START_TEST(test_store_seg_wrong_id)
{
	struct store_loc loc, bad;
	uint8_t id[32], other[32], got[100];
	char hex[17];
	struct store *st;

	st = open_store(STORE_CREATE);
	make_id(id, 1);
	make_id(other, 2);
	ck_assert_int_eq(store_seg_append(st, id, "data", 4, &loc), 0);
	n_errlog = 0;
	ck_assert_int_eq(store_seg_read(st, &loc, other, got), -EUCLEAN);
	ck_assert_int_eq(n_errlog, 1);
	/* The log names the place and the id in short hex. */
	ck_assert_ptr_nonnull(strstr(last_errlog, log_hex(hex, other, 8)));
	ck_assert_ptr_nonnull(strstr(last_errlog, "00000001"));
	bad = loc;
	bad.len = 5;
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	ck_assert_int_eq(store_seg_read(st, &loc, id, got), 0);
	store_close(st);
}
END_TEST

START_TEST(test_store_seg_flipped_byte)
{
	struct store_loc loc;
	uint8_t id[32], buf[1000], got[1000];
	struct store *st;
	/* In the sealed bytes, the stored id, the checksum, the magic. */
	static const off_t where[] = {STORE_SEG_HDR_BYTES + 500, 8 + 3, 40, 0,
				      STORE_SEG_HDR_BYTES + 999};
	char *p;

	st = open_store(STORE_CREATE);
	fill(buf, sizeof(buf), 8);
	make_id(id, 8);
	ck_assert_int_eq(store_seg_append(st, id, buf, sizeof(buf), &loc), 0);
	ck_assert_int_eq(store_sync(st), 0);
	p = seg_file(loc.seg);

	for (size_t i = 0; i < ARRAY_SIZE(where); i++) {
		xor_byte(p, (off_t)loc.off + where[i], 0x10);
		n_errlog = 0;
		ck_assert_int_eq(store_seg_read(st, &loc, id, got), -EUCLEAN);
		ck_assert_int_eq(n_errlog, 1);
		/* Logs carry no block bytes. */
		ck_assert_ptr_null(strstr(last_errlog, (const char *)buf));
		xor_byte(p, (off_t)loc.off + where[i], 0x10);
		ck_assert_int_eq(store_seg_read(st, &loc, id, got), 0);
		ck_assert_mem_eq(got, buf, sizeof(buf));
	}
	free(p);
	store_close(st);
}
END_TEST

START_TEST(test_store_seg_bad_loc)
{
	struct store_loc loc, bad;
	uint8_t id[32], got[64];
	struct store *st;

	st = open_store(STORE_CREATE);
	make_id(id, 1);
	ck_assert_int_eq(store_seg_append(st, id, "abc", 3, &loc), 0);

	bad = loc;
	bad.seg = 77; /* no such segment */
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	ck_assert_int_eq(store_seg_free(st, &bad), -EUCLEAN);
	bad.seg = 0xffffffff;
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	bad = loc;
	bad.off += 1; /* not aligned */
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	ck_assert_int_eq(store_seg_free(st, &bad), -EUCLEAN);
	bad = loc;
	bad.off += 1u << 20; /* past the end of the file */
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	bad.off = STORE_SEG_MAX; /* past the end of any segment */
	ck_assert_int_eq(store_seg_read(st, &bad, id, got), -EUCLEAN);
	ck_assert_int_eq(store_seg_read(st, &loc, id, got), 0);
	store_close(st);
}
END_TEST

START_TEST(test_store_loc_decode_bad_len)
{
	uint8_t buf[STORE_LOC_BYTES + 1] = {0};
	struct store_loc loc;

	ck_assert_int_eq(store_loc_decode(buf, STORE_LOC_BYTES - 1, &loc),
			 -EUCLEAN);
	ck_assert_int_eq(store_loc_decode(buf, STORE_LOC_BYTES + 1, &loc),
			 -EUCLEAN);
	ck_assert_int_eq(store_loc_decode(buf, 0, &loc), -EUCLEAN);
}
END_TEST

START_TEST(test_store_corrupt_sst)
{
	struct store_iter *it;
	struct store *st;
	uint8_t k[8], v[100];
	void *val;
	size_t n;
	char *sst;

	st = open_store(STORE_CREATE);
	for (uint64_t i = 0; i < 1000; i++) {
		put_be64(k, i);
		fill(v, sizeof(v), i);
		put1(st, STORE_CF_INODE, k, sizeof(k), v, sizeof(v));
	}
	store_close(st); /* flushes the memtable into an SST */
	sst = db_file("", ".sst");
	ck_assert_ptr_nonnull(sst);
	xor_byte(sst, 100, 0x01); /* inside the first data block */
	free(sst);

	st = open_store(0);
	put_be64(k, 0);
	n_errlog = 0;
	ck_assert_int_eq(store_get(st, STORE_CF_INODE, k, sizeof(k), &val, &n),
			 -EUCLEAN);
	ck_assert_int_eq(n_errlog, 1);
	ck_assert_ptr_nonnull(strstr(last_errlog, spath));
	ck_assert_int_eq(store_iter_new(st, STORE_CF_INODE, &it), 0);
	store_iter_seek_first(it);
	ck_assert(!store_iter_valid(it));
	ck_assert_int_eq(store_iter_status(it), -EUCLEAN);
	store_iter_free(it);
	store_close(st);
}
END_TEST

START_TEST(test_store_corrupt_manifest)
{
	struct store *st = (struct store *)1;
	struct stat sb;
	char *man;

	st = open_store(STORE_CREATE);
	put1(st, STORE_CF_INODE, "k", 1, "v", 1);
	store_close(st);
	man = db_file("MANIFEST-", "");
	ck_assert_ptr_nonnull(man);
	ck_assert_int_eq(stat(man, &sb), 0);
	ck_assert_int_gt(sb.st_size, 16);
	/* Break the checksum of the first log record. */
	xor_byte(man, 10, 0xff);
	ck_assert_int_eq(store_open(spath, 0, &st), -EUCLEAN);
	ck_assert_ptr_null(st);
	free(man);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc;

	tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_create_reopen);
	tcase_add_test(tc, test_store_close_leaves_nothing_to_replay);
	tcase_add_test(tc, test_store_close_null);
	tcase_add_test(tc, test_store_batch_atomic);
	tcase_add_test(tc, test_store_delete_range);
	tcase_add_test(tc, test_store_iter_order);
	tcase_add_test(tc, test_store_get_buf);
	tcase_add_test(tc, test_store_seg_roundtrip);
	tcase_add_test(tc, test_store_seg_append_batch);
	tcase_add_test(tc, test_store_seg_direct_mixed);
	tcase_add_test(tc, test_store_rec_sum);
	tcase_add_test(tc, test_store_seg_threads);
	tcase_add_test(tc, test_store_seg_free_punch);
	tcase_add_test(tc, test_store_loc_codec);
	tcase_add_test(tc, test_store_sync);
	tcase_add_test(tc, test_store_space);
	tcase_add_test(tc, test_store_rdonly_beside_writer);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_seg_roll);
	tcase_add_test(tc, test_store_seg_prealloc);
	tcase_add_test(tc, test_store_seg_too_big);
	tcase_add_test(tc, test_store_empty_value);
	tcase_add_test(tc, test_store_big_batch);
	tcase_add_test(tc, test_store_compact_shrinks);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_store_create_nonempty);
	tcase_add_test(tc, test_store_open_missing);
	tcase_add_test(tc, test_store_open_busy_same_process);
	tcase_add_test(tc, test_store_open_busy_other_process);
	tcase_add_test(tc, test_store_seg_wrong_id);
	tcase_add_test(tc, test_store_seg_flipped_byte);
	tcase_add_test(tc, test_store_seg_bad_loc);
	tcase_add_test(tc, test_store_loc_decode_bad_len);
	tcase_add_test(tc, test_store_corrupt_sst);
	tcase_add_test(tc, test_store_corrupt_manifest);
	suite_add_tcase(s, tc);
	return s;
}

/* Helper mode for the busy test: hold a store open until stdin closes. */
static int hold_store(const char *path)
{
	struct store *st;
	char c;

	if (store_open(path, 0, &st) < 0)
		return 2;
	if (write(1, "x", 1) != 1)
		return 3;
	while (read(0, &c, 1) > 0)
		;
	store_close(st);
	return 0;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	if (argc == 3 && !strcmp(argv[1], "--hold-store"))
		return hold_store(argv[2]);
	/* argv[0] first: under valgrind /proc/self/exe is valgrind itself. */
	self_exe =
	    realpath(strchr(argv[0], '/') ? argv[0] : "/proc/self/exe", NULL);
	if (!self_exe) {
		perror(argv[0]);
		return EXIT_FAILURE;
	}
	sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	free(self_exe);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
