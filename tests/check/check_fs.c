/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * check_fs.c - POSIX semantics over the store, without FUSE; dedup and
 * reference counts; orphans; and the replay test: a second store rebuilt
 * only from the first store's journal holds exactly the same state.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"
#include "fsck.h"
#include "journal.h"
#include "key.h"
#include "store.h"
#include "testutil.h"
#include "volume.h"

#define PASS "correct horse"

struct ffix {
	char *dir;
	struct volume *v;
	struct fs *fs;
	struct fs_ctx ctx;
};

static void ffix_open_existing(struct ffix *f)
{
	ck_assert_int_eq(volume_open(f->dir, 0, &f->v), 0);
	ck_assert_int_eq(volume_unlock_passphrase(f->v, PASS, strlen(PASS)), 0);
	ck_assert_int_eq(fs_open(f->v, 0, &f->fs), 0);
}

static void ffix_open_bs(struct ffix *f, uint32_t bs)
{
	struct volume_params p = { bs, CODEC_COMPRESS_ZSTD, 1 };
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k;

	memset(f, 0, sizeof(*f));
	f->dir = tu_tmpdir();
	ck_assert_int_eq(key_lib_init(), 0);
	ck_assert_int_eq(key_new_random(&k), 0);
	ck_assert_int_eq(key_slot_seal_passphrase(k, PASS, strlen(PASS),
						  KEY_COST_MIN, slot), 0);
	ck_assert_int_eq(volume_create(f->dir, &p, k, slot, false), 0);
	key_free(k);
	ck_assert_int_eq(volume_open(f->dir, 0, &f->v), 0);
	ck_assert_int_eq(volume_unlock_passphrase(f->v, PASS, strlen(PASS)), 0);
	ck_assert_int_eq(fs_format(f->v, 0, 0), 0);
	volume_close(f->v);
	ffix_open_existing(f);
}

static void ffix_open(struct ffix *f)
{
	ffix_open_bs(f, 4096);
}

static void ffix_reopen(struct ffix *f)
{
	ck_assert_int_eq(fs_close(f->fs), 0);
	volume_close(f->v);
	ffix_open_existing(f);
}

static void ffix_close(struct ffix *f)
{
	ck_assert_int_eq(fs_close(f->fs), 0);
	volume_close(f->v);
	tu_rmdir(f->dir);
}

static uint64_t mkfile(struct ffix *f, uint64_t parent, const char *name)
{
	struct fs_attr a;

	ck_assert_int_eq(fs_create(f->fs, &f->ctx, parent, name, 0644, O_RDWR, &a), 0);
	ck_assert_int_eq(fs_release(f->fs, a.ino), 0);
	fs_forget(f->fs, a.ino, 1);	/* as the kernel does, eventually */
	return a.ino;
}

static uint64_t mkdir_(struct ffix *f, uint64_t parent, const char *name)
{
	struct fs_attr a;

	ck_assert_int_eq(fs_mkdir(f->fs, &f->ctx, parent, name, 0755, &a), 0);
	return a.ino;
}

static uint64_t live_blocks(struct ffix *f)
{
	struct store_iter *it;
	uint64_t n = 0;

	ck_assert_int_eq(store_iter_new(volume_store(f->v), STORE_CF_BLOCK, &it), 0);
	for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it))
		n++;
	store_iter_free(it);
	return n;
}

START_TEST(test_fs_create_write_read_persist)
{
	struct ffix f;
	struct fs_attr a;
	char buf[64];
	uint64_t ino;

	ffix_open(&f);
	ino = mkfile(&f, FS_ROOT_INO, "hello");
	ck_assert_int_eq(fs_write(f.fs, ino, "hello world", 11, 0), 11);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 0), 11);
	ck_assert_mem_eq(buf, "hello world", 11);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_lookup(f.fs, FS_ROOT_INO, "hello", &a), 0);
	ck_assert_uint_eq(a.ino, ino);
	ck_assert_uint_eq(a.size, 11);
	ck_assert_uint_eq(a.mode, S_IFREG | 0644);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 6), 5);
	ck_assert_mem_eq(buf, "world", 5);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_errnos)
{
	struct ffix f;
	struct fs_attr a;
	char name[300];
	uint64_t d, ino;

	ffix_open(&f);
	d = mkdir_(&f, FS_ROOT_INO, "d");
	ino = mkfile(&f, d, "f");
	ck_assert_int_eq(fs_lookup(f.fs, FS_ROOT_INO, "nope", &a), -ENOENT);
	ck_assert_int_eq(fs_mkdir(f.fs, &f.ctx, FS_ROOT_INO, "d", 0755, &a), -EEXIST);
	ck_assert_int_eq(fs_rmdir(f.fs, FS_ROOT_INO, "d"), -ENOTEMPTY);
	ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, "d"), -EISDIR);
	ck_assert_int_eq(fs_rmdir(f.fs, d, "f"), -ENOTDIR);
	ck_assert_int_eq(fs_lookup(f.fs, ino, "x", &a), -ENOTDIR);
	memset(name, 'n', 255);
	name[255] = '\0';
	ck_assert_int_eq(fs_mknod(f.fs, &f.ctx, d, name, S_IFREG | 0600, 0, &a), 0);
	name[255] = 'n';
	name[256] = '\0';
	ck_assert_int_eq(fs_mknod(f.fs, &f.ctx, d, name, S_IFREG | 0600, 0, &a),
			 -ENAMETOOLONG);
	ck_assert_int_eq(fs_link(f.fs, d, FS_ROOT_INO, "dl", &a), -EPERM);
	ck_assert_int_eq(fs_rename(f.fs, d, "f", FS_ROOT_INO, "d", 0), -EISDIR);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.none", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "bogus.ns", "v", 1, 0), -EOPNOTSUPP);
	ck_assert_int_eq(fs_write(f.fs, d, "x", 1, 0), -EISDIR);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_links_and_nlink)
{
	struct ffix f;
	struct fs_attr a;
	uint64_t d, ino;

	ffix_open(&f);
	d = mkdir_(&f, FS_ROOT_INO, "d");
	ck_assert_int_eq(fs_getattr(f.fs, FS_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ino = mkfile(&f, d, "f");
	ck_assert_int_eq(fs_link(f.fs, ino, FS_ROOT_INO, "g", &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	ck_assert_int_eq(fs_unlink(f.fs, d, "f"), 0);
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_int_eq(fs_symlink(f.fs, &f.ctx, d, "s", "../g", &a), 0);
	{
		char t[64];

		ck_assert_int_eq(fs_readlink(f.fs, a.ino, t, sizeof(t)), 0);
		ck_assert_str_eq(t, "../g");
		ck_assert_int_eq(fs_readlink(f.fs, a.ino, t, 3), -ERANGE);
	}
	ck_assert_int_eq(fs_unlink(f.fs, d, "s"), 0);
	ck_assert_int_eq(fs_rmdir(f.fs, FS_ROOT_INO, "d"), 0);
	ck_assert_int_eq(fs_getattr(f.fs, FS_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.nlink, 2);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_lookup(f.fs, FS_ROOT_INO, "g", &a), 0);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_int_eq(fs_lookup(f.fs, FS_ROOT_INO, "d", &a), -ENOENT);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_rename_flags)
{
	struct ffix f;
	struct fs_attr a;
	uint64_t d1, d2, x, y;

	ffix_open(&f);
	d1 = mkdir_(&f, FS_ROOT_INO, "d1");
	d2 = mkdir_(&f, FS_ROOT_INO, "d2");
	x = mkfile(&f, d1, "x");
	y = mkfile(&f, d2, "y");
	ck_assert_int_eq(fs_rename(f.fs, d1, "x", d2, "y", FS_RENAME_NOREPLACE), -EEXIST);
	ck_assert_int_eq(fs_rename(f.fs, d1, "x", d2, "y", FS_RENAME_EXCHANGE), 0);
	ck_assert_int_eq(fs_lookup(f.fs, d1, "x", &a), 0);
	ck_assert_uint_eq(a.ino, y);
	ck_assert_int_eq(fs_lookup(f.fs, d2, "y", &a), 0);
	ck_assert_uint_eq(a.ino, x);
	ck_assert_int_eq(fs_rename(f.fs, d1, "x", d2, "y", 0), 0);
	ck_assert_int_eq(fs_lookup(f.fs, d1, "x", &a), -ENOENT);
	ck_assert_int_eq(fs_lookup(f.fs, d2, "y", &a), 0);
	ck_assert_uint_eq(a.ino, y);
	/* A directory moves across parents: link counts follow. */
	ck_assert_int_eq(fs_rename(f.fs, FS_ROOT_INO, "d1", d2, "d1", 0), 0);
	ck_assert_int_eq(fs_getattr(f.fs, d2, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ck_assert_int_eq(fs_getattr(f.fs, FS_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.nlink, 3);
	ck_assert_int_eq(fs_rename(f.fs, FS_ROOT_INO, "nope", d2, "z", 0), -ENOENT);
	ck_assert_int_eq(fs_rename(f.fs, d2, "y", d2, "z", FS_RENAME_EXCHANGE), -ENOENT);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_sparse_truncate_punch)
{
	struct ffix f;
	struct fs_attr a, in;
	uint8_t buf[20000], zero[20000];
	uint64_t ino, off;

	ffix_open(&f);
	memset(zero, 0, sizeof(zero));
	ino = mkfile(&f, FS_ROOT_INO, "s");
	ck_assert_int_eq(fs_write(f.fs, ino, "end", 3, 5ull << 30), 3);
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, (5ull << 30) + 3);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, 10000, 1ull << 30), 10000);
	ck_assert_mem_eq(buf, zero, 10000);
	ck_assert_int_eq(fs_lseek(f.fs, ino, 0, SEEK_DATA, &off), 0);
	ck_assert_uint_eq(off, (5ull << 30) / 4096 * 4096);
	ck_assert_int_eq(fs_lseek(f.fs, ino, 0, SEEK_HOLE, &off), 0);
	ck_assert_uint_eq(off, 0);
	/* Shrink into the middle of a block, then grow: the tail reads as zeros. */
	memset(buf, 'a', sizeof(buf));
	ck_assert_int_eq(fs_write(f.fs, ino, buf, 10000, 0), 10000);
	in.size = 5000;
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_SIZE, &a), 0);
	in.size = 12000;
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_SIZE, &a), 0);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 0), 12000);
	for (int q = 0; q < 5000; q++)
		ck_assert_int_eq(buf[q], 'a');
	ck_assert_mem_eq(buf + 5000, zero, 7000);
	/* Punch a hole across blocks. */
	memset(buf, 'b', sizeof(buf));
	ck_assert_int_eq(fs_write(f.fs, ino, buf, 12000, 0), 12000);
	ck_assert_int_eq(fs_fallocate(f.fs, ino, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      100, 9000), 0);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 0), 12000);
	ck_assert_int_eq(buf[99], 'b');
	ck_assert_mem_eq(buf + 100, zero, 9000);
	ck_assert_int_eq(buf[9100], 'b');
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_uint_eq(a.size, 12000);
	ffix_close(&f);
}
END_TEST

/*
 * A partial write to a block an fsync just stored takes its plaintext from
 * the cache, with the block's bytes past its stored length zero; what is
 * read back, before and after a reopen, is what was written.
 */
START_TEST(test_fs_pcache_rmw)
{
	uint8_t model[12288], buf[12288];
	struct fs_attr a, in;
	struct ffix f;
	uint64_t ino, hits;

	ffix_open(&f);
	/* Open throughout, as a database is: an idle inode is flushed at once. */
	ck_assert_int_eq(fs_create(f.fs, &f.ctx, FS_ROOT_INO, "db", 0644, O_RDWR,
				   &a), 0);
	ino = a.ino;
	memset(model, 'a', sizeof(model));
	ck_assert_int_eq(fs_write(f.fs, ino, model, sizeof(model), 0),
			 (ssize_t)sizeof(model));
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	hits = fs_pcache_hits(f.fs);
	/* A page inside block 1, as a database rewrites its pages. */
	memset(model + 4096 + 10, 'b', 100);
	ck_assert_int_eq(fs_write(f.fs, ino, model + 4096 + 10, 100, 4096 + 10),
			 100);
	ck_assert_uint_eq(fs_pcache_hits(f.fs), hits + 1);
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	/* Block 2 cut to 1,000 bytes and grown again: the rest reads zero. */
	in.size = 8192 + 1000;
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_SIZE, &a), 0);
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	in.size = sizeof(model);
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_SIZE, &a), 0);
	memset(model + 8192 + 1000, 0, 4096 - 1000);
	memset(model + 8192 + 2000, 'x', 10);
	hits = fs_pcache_hits(f.fs);
	ck_assert_int_eq(fs_write(f.fs, ino, model + 8192 + 2000, 10, 8192 + 2000),
			 10);
	ck_assert_uint_eq(fs_pcache_hits(f.fs), hits + 1);
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 0),
			 (ssize_t)sizeof(buf));
	ck_assert_mem_eq(buf, model, sizeof(model));
	ck_assert_int_eq(fs_release(f.fs, ino), 0);
	fs_forget(f.fs, ino, 1);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_read(f.fs, ino, buf, sizeof(buf), 0),
			 (ssize_t)sizeof(buf));
	ck_assert_mem_eq(buf, model, sizeof(model));
	ffix_close(&f);
}
END_TEST

/*
 * A sequential stream whose writes do not start on a block (writeback's
 * requests): the flush a write starts leaves its half-filled last block
 * to the next write, which fills it, so no block is stored half and read
 * back to be completed. The file reads back whole.
 */
START_TEST(test_fs_flush_misaligned_stream)
{
	const size_t piece = 1u << 20, n = 16, skew = 4096;
	uint8_t *data = malloc(n * piece), *back = malloc(n * piece);
	struct fs_attr a;
	struct ffix f;
	uint64_t ino;

	ck_assert_ptr_nonnull(data);
	ck_assert_ptr_nonnull(back);
	for (size_t q = 0; q < n * piece; q++)
		data[q] = (uint8_t)(q * 2654435761u >> 13);
	ffix_open_bs(&f, 16384);
	ck_assert_int_eq(fs_create(f.fs, &f.ctx, FS_ROOT_INO, "stream", 0644,
				   O_RDWR, &a), 0);
	ino = a.ino;
	ck_assert_int_eq(fs_write(f.fs, ino, data, skew, 0), (ssize_t)skew);
	for (size_t k = 0; k < n - 1; k++)
		ck_assert_int_eq(fs_write(f.fs, ino, data + skew + k * piece,
					  piece, skew + k * piece),
				 (ssize_t)piece);
	ck_assert_int_eq(fs_write(f.fs, ino, data + skew + (n - 1) * piece,
				  piece - skew, skew + (n - 1) * piece),
			 (ssize_t)(piece - skew));
	ck_assert_uint_eq(fs_rmw_reads(f.fs), 0);
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	ck_assert_int_eq(fs_release(f.fs, ino), 0);
	fs_forget(f.fs, ino, 1);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_read(f.fs, ino, back, n * piece, 0),
			 (ssize_t)(n * piece));
	ck_assert_mem_eq(back, data, n * piece);
	ffix_close(&f);
	free(data);
	free(back);
}
END_TEST

START_TEST(test_fs_dedup_refcounts)
{
	struct ffix f;
	uint8_t *data = malloc(1 << 20);
	uint64_t inos[5];
	char name[8];

	ffix_open_bs(&f, 16384);
	for (size_t q = 0; q < (1u << 20); q++)
		data[q] = (uint8_t)(q * 2654435761u >> 13);
	for (int n = 0; n < 5; n++) {
		snprintf(name, sizeof(name), "f%d", n);
		inos[n] = mkfile(&f, FS_ROOT_INO, name);
		ck_assert_int_eq(fs_write(f.fs, inos[n], data, 1 << 20, 0), 1 << 20);
		ck_assert_int_eq(fs_flush(f.fs, inos[n]), 0);
	}
	/* 5 identical files, 64 distinct blocks at most. */
	ck_assert_uint_le(live_blocks(&f), 64);
	ck_assert_uint_gt(live_blocks(&f), 0);
	for (int n = 0; n < 5; n++) {
		snprintf(name, sizeof(name), "f%d", n);
		ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, name), 0);
	}
	ck_assert_int_eq(fs_sync(f.fs), 0);
	ck_assert_uint_eq(live_blocks(&f), 0);
	free(data);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_orphan_kept_while_open)
{
	struct ffix f;
	struct fs_attr a;
	char buf[8];

	ffix_open(&f);
	ck_assert_int_eq(fs_create(f.fs, &f.ctx, FS_ROOT_INO, "tmp", 0600, O_RDWR, &a), 0);
	ck_assert_int_eq(fs_write(f.fs, a.ino, "data", 4, 0), 4);
	ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, "tmp"), 0);
	ck_assert_int_eq(fs_read(f.fs, a.ino, buf, sizeof(buf), 0), 4);
	ck_assert_mem_eq(buf, "data", 4);
	ck_assert_int_eq(fs_release(f.fs, a.ino), 0);
	fs_forget(f.fs, a.ino, 1);
	ck_assert_int_eq(fs_getattr(f.fs, a.ino, &a), -ENOENT);
	ck_assert_uint_eq(live_blocks(&f), 0);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_xattrs)
{
	struct ffix f;
	char buf[128];
	uint64_t ino;

	ffix_open(&f);
	ino = mkfile(&f, FS_ROOT_INO, "x");
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.a", "1", 1, 0), 0);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.a", "2", 1, XATTR_CREATE), -EEXIST);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.b", "2", 1, XATTR_REPLACE), -ENODATA);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "trusted.t", "tt", 2, 0), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", NULL, 0), 1);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "trusted.t", buf, 1), -ERANGE);
	ck_assert_int_eq(fs_listxattr(f.fs, ino, NULL, 0), 17);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "trusted.t", buf, sizeof(buf)), 2);
	ck_assert_mem_eq(buf, "tt", 2);
	ck_assert_int_eq(fs_removexattr(f.fs, ino, "user.a"), 0);
	ck_assert_int_eq(fs_removexattr(f.fs, ino, "user.a"), -ENODATA);
	ck_assert_int_eq(fs_listxattr(f.fs, ino, buf, sizeof(buf)), 10);
	ck_assert_str_eq(buf, "trusted.t");
	ffix_close(&f);
}
END_TEST

/*
 * A miss is remembered per inode (the kernel asks for security.capability
 * before every write): whatever adds an attribute must make it visible.
 */
START_TEST(test_fs_xattr_miss_remembered)
{
	struct ffix f;
	struct fs_attr a;
	char buf[16];
	uint64_t ino;

	ffix_open(&f);
	/* Held open with a lookup, as the kernel does: the inode stays loaded. */
	ck_assert_int_eq(fs_create(f.fs, &f.ctx, FS_ROOT_INO, "x", 0644, O_RDWR, &a), 0);
	ino = a.ino;
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "security.capability", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.a", "1", 1, 0), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", buf, sizeof(buf)), 1);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "security.capability", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", NULL, 0), 1);
	ck_assert_int_eq(fs_removexattr(f.fs, ino, "user.a"), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.b", "22", 2, 0), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.b", buf, sizeof(buf)), 2);
	ck_assert_int_eq(fs_release(f.fs, ino), 0);
	fs_forget(f.fs, ino, 1);
	/* Loaded again: the first miss looks at the store. */
	ffix_reopen(&f);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.a", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "user.b", buf, sizeof(buf)), 2);
	ck_assert_mem_eq(buf, "22", 2);
	ffix_close(&f);
}
END_TEST

/* Little-endian ACL xattr: version 2, then (tag, perm, id) entries. */
static size_t acl_build(uint8_t *buf, const uint16_t (*e)[3], size_t n)
{
	buf[0] = 2;
	buf[1] = buf[2] = buf[3] = 0;
	for (size_t q = 0; q < n; q++) {
		uint8_t *p = buf + 4 + 8 * q;

		p[0] = (uint8_t)e[q][0];
		p[1] = (uint8_t)(e[q][0] >> 8);
		p[2] = (uint8_t)e[q][1];
		p[3] = 0;
		p[4] = (uint8_t)e[q][2];
		p[5] = (uint8_t)(e[q][2] >> 8);
		p[6] = p[7] = 0;
	}
	return 4 + 8 * n;
}

START_TEST(test_fs_acl_mode_sync_and_inherit)
{
	static const uint16_t acl[][3] = {
		{ 0x01, 6, 0 }, { 0x02, 4, 65534 }, { 0x04, 4, 0 },
		{ 0x10, 7, 0 }, { 0x20, 0, 0 } };
	static const uint16_t base[][3] = {
		{ 0x01, 6, 0 }, { 0x04, 4, 0 }, { 0x20, 4, 0 } };
	uint8_t buf[64], got[64];
	struct fs_attr a, in;
	struct ffix f;
	uint64_t ino, d;
	size_t n;

	ffix_open(&f);
	ino = mkfile(&f, FS_ROOT_INO, "f");
	n = acl_build(buf, acl, 5);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "system.posix_acl_access", buf, n, 0), 0);
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_uint_eq(a.mode & 0777, 0670);	/* group bits = mask */
	in.mode = 0640;
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_MODE, &a), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "system.posix_acl_access", got, sizeof(got)), (ssize_t)n);
	ck_assert_int_eq(got[4 + 3 * 8 + 2], 4);	/* mask follows chmod */
	ck_assert_int_eq(got[4 + 4 * 8 + 2], 0);
	/* An ACL equal to the mode is not kept. */
	n = acl_build(buf, base, 3);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "system.posix_acl_access", buf, n, 0), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, ino, "system.posix_acl_access", NULL, 0), -ENODATA);
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_uint_eq(a.mode & 0777, 0644);
	/* Malformed: no other entry. */
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "system.posix_acl_access", buf, n - 8, 0), -EINVAL);
	/* Default ACLs: directories only; inherited without the umask. */
	n = acl_build(buf, acl, 5);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "system.posix_acl_default", buf, n, 0), -EACCES);
	d = mkdir_(&f, FS_ROOT_INO, "d");
	ck_assert_int_eq(fs_setxattr(f.fs, d, "system.posix_acl_default", buf, n, 0), 0);
	f.ctx.umask = 077;
	ck_assert_int_eq(fs_mknod(f.fs, &f.ctx, d, "child", S_IFREG | 0666, 0, &a), 0);
	ck_assert_uint_eq(a.mode & 0777, 0660);	/* 0666 masked by the ACL, not by 077 */
	ck_assert_int_eq(fs_getxattr(f.fs, a.ino, "system.posix_acl_access", got, sizeof(got)), (ssize_t)n);
	ck_assert_int_eq(fs_mkdir(f.fs, &f.ctx, d, "sub", 0777, &a), 0);
	ck_assert_int_eq(fs_getxattr(f.fs, a.ino, "system.posix_acl_default", got, sizeof(got)), (ssize_t)n);
	ck_assert_int_eq(fs_mknod(f.fs, &f.ctx, FS_ROOT_INO, "plain", S_IFREG | 0666, 0, &a), 0);
	ck_assert_uint_eq(a.mode & 0777, 0600);	/* no default ACL: umask */
	ffix_close(&f);
}
END_TEST

struct rd {
	int n;
	uint64_t offs[64];
	char names[64][16];
};

static int rd_fill(void *arg, const char *name, uint64_t ino, uint32_t mode,
		   uint64_t next)
{
	struct rd *r = arg;

	(void)ino;
	(void)mode;
	if (r->n == 64)
		return 1;
	snprintf(r->names[r->n], 16, "%s", name);
	r->offs[r->n++] = next;
	return 0;
}

static int rd_one(void *arg, const char *name, uint64_t ino, uint32_t mode,
		  uint64_t next)
{
	struct rd *r = arg;

	if (r->n == 1)
		return 1;
	return rd_fill(arg, name, ino, mode, next);
}

START_TEST(test_fs_readdir_stable_offsets)
{
	struct ffix f;
	struct rd all = { 0 }, part;
	char name[16];
	int seen = 0;

	ffix_open(&f);
	for (int n = 0; n < 40; n++) {
		snprintf(name, sizeof(name), "e%02d", n);
		mkfile(&f, FS_ROOT_INO, name);
	}
	ck_assert_int_eq(fs_readdir(f.fs, FS_ROOT_INO, 0, rd_fill, &all), 0);
	ck_assert_int_eq(all.n, 42);
	/* One entry at a time, deleting entries already read: no duplicate, none lost. */
	uint64_t off = 0;

	for (;;) {
		part.n = 0;
		ck_assert_int_eq(fs_readdir(f.fs, FS_ROOT_INO, off, rd_one, &part), 0);
		if (part.n == 0)
			break;
		off = part.offs[0];
		if (part.names[0][0] == 'e') {
			seen++;
			ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, part.names[0]), 0);
		}
	}
	ck_assert_int_eq(seen, 40);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_rdonly)
{
	struct ffix f;
	struct fs_attr a;
	struct volume *v;
	struct fs *fs;

	ffix_open(&f);
	mkfile(&f, FS_ROOT_INO, "f");
	ck_assert_int_eq(fs_sync(f.fs), 0);
	ck_assert_int_eq(volume_open(f.dir, VOLUME_RDONLY, &v), 0);
	ck_assert_int_eq(volume_unlock_passphrase(v, PASS, strlen(PASS)), 0);
	ck_assert_int_eq(fs_open(v, FS_RDONLY, &fs), 0);
	ck_assert_int_eq(fs_lookup(fs, FS_ROOT_INO, "f", &a), 0);
	ck_assert_int_eq(fs_mkdir(fs, &f.ctx, FS_ROOT_INO, "d", 0755, &a), -EROFS);
	ck_assert_int_eq(fs_write(fs, a.ino, "x", 1, 0), -EROFS);
	ck_assert_int_eq(fs_close(fs), 0);
	volume_close(v);
	ffix_close(&f);
}
END_TEST

START_TEST(test_fs_wrong_passphrase)
{
	struct ffix f;
	struct volume *v;

	ffix_open(&f);
	ck_assert_int_eq(fs_close(f.fs), 0);
	volume_close(f.v);
	ck_assert_int_eq(volume_open(f.dir, 0, &v), 0);
	ck_assert_int_eq(volume_unlock_passphrase(v, "wrong", 5), -EKEYREJECTED);
	volume_close(v);
	f.v = NULL;
	ffix_open_existing(&f);
	ffix_close(&f);
}
END_TEST

/*
 * A block freed and stored again while reaps run: the reap must never
 * drop the location of the new copy (it once did, under this race).
 */
struct churn {
	struct ffix *f;
	atomic_int stop;
};

static void *churn_syncs(void *arg)
{
	struct churn *c = arg;

	while (!c->stop)
		if (journal_sync(volume_journal(c->f->v)) ||
		    journal_reap(volume_journal(c->f->v)))
			break;
	return NULL;
}

START_TEST(test_fs_reap_races_readd)
{
	enum { NB = 64, BS = 16384 };
	struct ffix f;
	struct churn c = { &f, 0 };
	uint8_t *data = malloc(NB * BS), *back = malloc(NB * BS);
	pthread_t th;
	struct fs_attr a;

	ffix_open_bs(&f, BS);
	for (size_t q = 0; q < NB * BS; q++)
		data[q] = (uint8_t)(q / BS + 1);
	ck_assert_int_eq(pthread_create(&th, NULL, churn_syncs, &c), 0);
	for (int n = 0; n < 150; n++) {
		ck_assert_int_eq(fs_create(f.fs, &f.ctx, FS_ROOT_INO, "x", 0644, O_RDWR, &a), 0);
		ck_assert_int_eq(fs_write(f.fs, a.ino, data, NB * BS, 0), NB * BS);
		ck_assert_int_eq(fs_release(f.fs, a.ino), 0);
		fs_forget(f.fs, a.ino, 1);
		ck_assert_int_eq(fs_read(f.fs, a.ino, back, NB * BS, 0), NB * BS);
		ck_assert_mem_eq(back, data, NB * BS);
		ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, "x"), 0);
	}
	c.stop = 1;
	pthread_join(th, NULL);
	free(data);
	free(back);
	ffix_close(&f);
}
END_TEST

/*
 * Flushes that prepare blocks without the inode's lock (fs_write's, every
 * megabyte) while other threads write the same blocks, read, sync and
 * resize: two writers own the two halves of every block and write them in
 * rounds, so a block a flush has frozen is often written by the other;
 * a third reads, fsyncs and flushes; a fourth moves the size up and down
 * above the written range (each truncate flushes synchronously, frozen
 * blocks included). The file ends with each half's last round, the same
 * after a remount, and a keyed fsck finds nothing to report.
 */
enum { HB_BS = 16384, HB_NB = 256, HB_ROUNDS = 5 };

struct halves {
	struct ffix *f;
	uint64_t ino;
	int role;		/* 0, 1: the halves; 2 reader; 3 resizer */
	atomic_int *writing;	/* writers still running */
	int err;
};

static uint8_t half_byte(int half, uint64_t blk, int round)
{
	return (uint8_t)(1 + half * 97 + blk * 7 + (uint64_t)round * 31);
}

static void *halves_main(void *arg)
{
	struct halves *h = arg;
	struct fs *fs = h->f->fs;
	unsigned seed = (unsigned)h->role;
	uint8_t *buf = malloc(1 << 20);

	if (!buf) {
		h->err = ENOMEM;
		return NULL;
	}
	if (h->role < 2) {
		for (int r = 0; r < HB_ROUNDS && !h->err; r++)
			for (uint64_t b = 0; b < HB_NB && !h->err; b++) {
				uint64_t off = b * HB_BS + h->role * (HB_BS / 2);

				memset(buf, half_byte(h->role, b, r), HB_BS / 2);
				if (fs_write(fs, h->ino, buf, HB_BS / 2, off) !=
				    HB_BS / 2)
					h->err = EIO;
			}
		atomic_fetch_sub(h->writing, 1);
	}
	for (int n = 1; h->role >= 2 && atomic_load(h->writing) && !h->err; n++) {
		struct fs_attr in, a;

		if (h->role == 3) {
			in.size = (uint64_t)HB_NB * HB_BS + (uint64_t)(rand_r(&seed) % (4 * HB_BS));
			if (fs_setattr(fs, h->ino, &in, FS_SET_SIZE, &a))
				h->err = EIO;
			continue;
		}
		if (fs_read(fs, h->ino, buf, 1 << 20,
			    (uint64_t)(rand_r(&seed) % (HB_NB * HB_BS))) < 0)
			h->err = EIO;
		if (n % 8 == 0 && fs_fsync(fs, h->ino, true))
			h->err = EIO;
		if (n % 13 == 0 && fs_flush(fs, h->ino))
			h->err = EIO;
	}
	free(buf);
	return NULL;
}

static void fsck_clean(const char *dir)
{
	struct fsck_opts o = {0};
	struct fsck_result r;
	struct fsck *k;
	char *report = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&report, &len);

	ck_assert_ptr_nonnull(out);
	o.store = dir;
	o.mode = FSCK_MODE_NO;
	o.secret_kind = FSCK_SECRET_PASSPHRASE;
	o.secret = (const uint8_t *)PASS;
	o.secret_len = strlen(PASS);
	o.out = out;
	ck_assert_int_eq(fsck_new(&o, &k), 0);
	ck_assert_int_eq(fsck_run(k), 0);
	fsck_get_result(k, &r);
	fsck_finish(k, r.problems ? 4 : 0);
	fsck_free(k);
	fclose(out);
	if (r.problems)
		fprintf(stderr, "%s", report);
	ck_assert_uint_eq(r.problems, 0);
	free(report);
}

/* Close f, check its store with the key (nothing to report), remove it. */
static void ffix_close_fsck(struct ffix *f)
{
	ck_assert_int_eq(fs_close(f->fs), 0);
	volume_close(f->v);
	fsck_clean(f->dir);
	tu_rmdir(f->dir);
}

START_TEST(test_fs_flush_unlocked_races)
{
	struct ffix f;
	struct halves h[4];
	pthread_t th[4];
	atomic_int writing = 2;
	uint8_t *back = malloc(HB_BS);
	struct fs_attr a;
	uint64_t ino;

	ffix_open_bs(&f, HB_BS);
	ino = mkfile(&f, FS_ROOT_INO, "halves");
	for (int k = 0; k < 4; k++) {
		h[k] = (struct halves){ &f, ino, k, &writing, 0 };
		ck_assert_int_eq(pthread_create(&th[k], NULL, halves_main, &h[k]), 0);
	}
	for (int k = 0; k < 4; k++) {
		pthread_join(th[k], NULL);
		ck_assert_int_eq(h[k].err, 0);
	}
	ck_assert_int_eq(fs_sync(f.fs), 0);
	for (int pass = 0; pass < 2; pass++) {
		ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
		ck_assert_uint_ge(a.size, (uint64_t)HB_NB * HB_BS);
		for (uint64_t b = 0; b < HB_NB; b++) {
			ck_assert_int_eq(fs_read(f.fs, ino, back, HB_BS, b * HB_BS), HB_BS);
			for (int half = 0; half < 2; half++)
				for (size_t q = 0; q < HB_BS / 2; q++)
					ck_assert_uint_eq(back[half * (HB_BS / 2) + q],
							  half_byte(half, b, HB_ROUNDS - 1));
		}
		ffix_reopen(&f);
	}
	free(back);
	ffix_close_fsck(&f);
}
END_TEST

/*
 * The same stages under writes that shrink into the data: two writers
 * overwrite random ranges while a third truncates, punches holes and
 * fsyncs. The contents are whatever won; the store must stay whole (a
 * keyed fsck finds nothing) and read back entire.
 */
struct churner {
	struct ffix *f;
	uint64_t ino;
	int role;		/* 0, 1 writers; 2 truncates and punches */
	int err;
};

enum { CH_SPAN = 4 << 20, CH_OPS = 400 };

static void *churner_main(void *arg)
{
	struct churner *h = arg;
	struct fs *fs = h->f->fs;
	unsigned seed = 7u + (unsigned)h->role;
	uint8_t *buf = malloc(256 << 10);

	if (!buf) {
		h->err = ENOMEM;
		return NULL;
	}
	memset(buf, 'a' + h->role, 256 << 10);
	for (int n = 0; n < CH_OPS && !h->err; n++) {
		uint64_t off = (uint64_t)(rand_r(&seed) % CH_SPAN);
		size_t len = 1 + (size_t)(rand_r(&seed) % (256 << 10));
		struct fs_attr in, a;

		if (h->role < 2) {
			if (fs_write(fs, h->ino, buf, len, off) != (ssize_t)len)
				h->err = EIO;
			continue;
		}
		in.size = off;
		if (n % 3 == 0 && fs_setattr(fs, h->ino, &in, FS_SET_SIZE, &a))
			h->err = EIO;
		if (n % 3 == 1 &&
		    fs_fallocate(fs, h->ino,
				 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 off, len))
			h->err = EIO;
		if (n % 3 == 2 && fs_fsync(fs, h->ino, true))
			h->err = EIO;
	}
	free(buf);
	return NULL;
}

START_TEST(test_fs_flush_unlocked_shrinks)
{
	struct ffix f;
	struct churner h[3];
	pthread_t th[3];
	uint8_t *back = malloc(CH_SPAN + (256 << 10));
	struct fs_attr a;
	uint64_t ino;

	ffix_open_bs(&f, HB_BS);
	ino = mkfile(&f, FS_ROOT_INO, "churn");
	for (int k = 0; k < 3; k++) {
		h[k] = (struct churner){ &f, ino, k, 0 };
		ck_assert_int_eq(pthread_create(&th[k], NULL, churner_main, &h[k]), 0);
	}
	for (int k = 0; k < 3; k++) {
		pthread_join(th[k], NULL);
		ck_assert_int_eq(h[k].err, 0);
	}
	ck_assert_int_eq(fs_sync(f.fs), 0);
	ffix_reopen(&f);
	ck_assert_int_eq(fs_getattr(f.fs, ino, &a), 0);
	ck_assert_int_eq(fs_read(f.fs, ino, back, CH_SPAN + (256 << 10), 0),
			 (ssize_t)a.size);
	free(back);
	ffix_close_fsck(&f);
}
END_TEST

/*
 * Flip bits (mask) of the byte at offset at of the stored record of block
 * idx of ino, as bit rot would; id receives the block's id.
 */
static void damage_block(struct ffix *f, uint64_t ino, uint64_t idx,
			 off_t at, uint8_t mask, uint8_t id[32])
{
	tu_damage_block(volume_store(f->v), f->dir, ino, idx, at, mask, id);
}

/*
 * A block fsck recorded as damaged ('B' in the local column family) is
 * not shared by new writes of the same data: the fresh copy replaces it,
 * and the file that held the damaged copy reads whole again.
 */
START_TEST(test_fs_bad_block_healed_by_new_copy)
{
	struct ffix f;
	uint8_t data[16384], back[16384], id[32], key[33];
	uint64_t a, b;
	size_t klen;

	ffix_open_bs(&f, 16384);
	for (size_t q = 0; q < sizeof(data); q++)
		data[q] = (uint8_t)(q * 7 + 3);
	a = mkfile(&f, FS_ROOT_INO, "a");
	ck_assert_int_eq(fs_write(f.fs, a, data, sizeof(data), 0), (ssize_t)sizeof(data));
	ck_assert_int_eq(fs_sync(f.fs), 0);
	/* Damage the stored copy and mark it, as fsck -y does. */
	damage_block(&f, a, 0, 100, 0xff, id);
	key[0] = 'B';
	memcpy(key + 1, id, 32);
	{
		struct store_batch *sb;

		ck_assert_int_eq(store_batch_new(&sb), 0);
		store_batch_put(sb, STORE_CF_LOCAL, key, 33, "\0\0\0\0\0\0\0\1", 8);
		ck_assert_int_eq(store_write(volume_store(f.v), sb, true), 0);
		store_batch_free(sb);
	}
	ck_assert_int_eq(fs_read(f.fs, a, back, sizeof(back), 0), -EIO);
	b = mkfile(&f, FS_ROOT_INO, "b");
	ck_assert_int_eq(fs_write(f.fs, b, data, sizeof(data), 0), (ssize_t)sizeof(data));
	ck_assert_int_eq(fs_sync(f.fs), 0);
	ck_assert_int_eq(fs_read(f.fs, a, back, sizeof(back), 0), (ssize_t)sizeof(back));
	ck_assert_mem_eq(back, data, sizeof(data));
	ck_assert_int_eq(store_get_buf(volume_store(f.v), STORE_CF_LOCAL, key, 33,
				       NULL, 0, &klen), -ENOENT);
	ffix_close(&f);
}
END_TEST

/*
 * A read of many whole blocks takes the batched path (one extent walk, one
 * location lookup, one pread per run of records): holes, blocks shared
 * within the file, records of one file scattered among another's, and
 * partial head and tail blocks all read back as written; a damaged record
 * in the middle fails the read with EIO, and ranges around it still read.
 */
START_TEST(test_fs_read_many_blocks)
{
	enum { NB = 40, BS = 16384 };
	struct ffix f;
	uint8_t *data = calloc(NB, BS), *back = malloc(NB * BS), id[32];
	uint64_t a, b;

	ffix_open_bs(&f, BS);
	for (size_t blk = 0; blk < NB; blk++) {
		if (blk % 7 == 3)
			continue;	/* a hole */
		for (size_t q = 0; q < BS; q++)
			data[blk * BS + q] = (uint8_t)((blk % 9 == 2 ? 2 : blk) * 31 +
						       q * 13 + 1);
	}
	a = mkfile(&f, FS_ROOT_INO, "a");
	b = mkfile(&f, FS_ROOT_INO, "b");
	/* Odd blocks first, each followed by a block of b, then even blocks. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t blk = (size_t)(1 - pass); blk < NB; blk += 2) {
			ck_assert_int_eq(fs_write(f.fs, a, data + blk * BS, BS, blk * BS), BS);
			ck_assert_int_eq(fs_write(f.fs, b, back, BS, blk * BS), BS);
			ck_assert_int_eq(fs_sync(f.fs), 0);
		}
	}
	memset(back, 0xee, NB * BS);
	ck_assert_int_eq(fs_read(f.fs, a, back, NB * BS, 0), NB * BS);
	ck_assert_mem_eq(back, data, NB * BS);
	ck_assert_int_eq(fs_read(f.fs, a, back, 5 * BS + 100, BS / 2), 5 * BS + 100);
	ck_assert_mem_eq(back, data + BS / 2, 5 * BS + 100);
	ck_assert_uint_eq(fs_read_retries(f.fs), 0);

	/* Damage block 21's record: a read over it fails, reads beside it do not. */
	damage_block(&f, a, 21, 200, 0x10, id);
	ck_assert_int_eq(fs_read(f.fs, a, back, NB * BS, 0), -EIO);
	ck_assert_uint_eq(fs_read_retries(f.fs), 1);
	ck_assert_int_eq(fs_read(f.fs, a, back, 21 * BS, 0), 21 * BS);
	ck_assert_mem_eq(back, data, 21 * BS);
	ck_assert_int_eq(fs_read(f.fs, a, back, 18 * BS, 22 * BS), 18 * BS);
	ck_assert_mem_eq(back, data + 22 * BS, 18 * BS);
	ck_assert_uint_eq(fs_read_retries(f.fs), 1);
	free(data);
	free(back);
	ffix_close(&f);
}
END_TEST

static size_t count_redo(struct store *st)
{
	struct store_iter *it;
	size_t n = 0, klen;

	ck_assert_int_eq(store_iter_new(st, STORE_CF_LOCAL, &it), 0);
	for (store_iter_seek(it, "W", 1); store_iter_valid(it);
	     store_iter_next(it)) {
		const uint8_t *k = store_iter_key(it, &klen);

		if (k[0] != 'W')
			break;
		ck_assert_uint_eq(klen, 13);
		n++;
	}
	store_iter_free(it);
	return n;
}

/*
 * An fsync of a few blocks logs their sealed bytes for redo in its batch
 * instead of waiting for the segment's fdatasync. A crash that keeps the
 * records from their segment (here: the process dies, then their bytes are
 * damaged, as a power cut would leave them) loses nothing: the next open
 * writes them again from the log, and the entries are gone after it.
 */
START_TEST(test_fs_fsync_redo_replayed)
{
	enum { NB = 3, BS = 16384 };
	struct ffix f;
	uint8_t data[NB * BS], back[NB * BS], id[32];
	struct journal_redo_stats rs;
	uint64_t ino;
	pid_t pid;
	int status;

	for (size_t q = 0; q < sizeof(data); q++)
		data[q] = (uint8_t)(q * 29 + q / 977);
	ffix_open_bs(&f, BS);
	ino = mkfile(&f, FS_ROOT_INO, "db");
	ck_assert_int_eq(fs_close(f.fs), 0);
	volume_close(f.v);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct fs_attr a;

		ffix_open_existing(&f);
		/* Held by a lookup, as the kernel holds an open file's inode. */
		if (fs_lookup(f.fs, FS_ROOT_INO, "db", &a) != 0)
			_exit(4);
		if (fs_write(f.fs, ino, data, sizeof(data), 0) != (ssize_t)sizeof(data))
			_exit(1);
		if (fs_fsync(f.fs, ino, false) != 0)
			_exit(2);
		if (count_redo(volume_store(f.v)) != NB)
			_exit(3);
		_exit(0);	/* a crash: no close, no trim */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);

	/* A read-only open replays nothing; the records are damaged under it. */
	ck_assert_int_eq(volume_open(f.dir, VOLUME_RDONLY, &f.v), 0);
	ck_assert_uint_eq(count_redo(volume_store(f.v)), NB);
	for (uint64_t blk = 0; blk < NB; blk++)
		damage_block(&f, ino, blk, 60 + (off_t)blk, 0x5a, id);
	ck_assert_int_eq(journal_redo_replay(volume_store(f.v), 0, &rs, NULL), 0);
	ck_assert_uint_eq(rs.damaged, NB);
	ck_assert_uint_eq(rs.entries, NB);
	/*
	 * A read-only mount cannot write them again: it reads them from their
	 * redo entries, and changes nothing.
	 */
	ck_assert_int_eq(volume_unlock_passphrase(f.v, PASS, strlen(PASS)), 0);
	ck_assert_int_eq(fs_open(f.v, FS_RDONLY, &f.fs), 0);
	memset(back, 0, sizeof(back));
	ck_assert_int_eq(fs_read(f.fs, ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
	ck_assert_mem_eq(back, data, sizeof(data));
	ck_assert_int_eq(fs_read(f.fs, ino, back, BS, BS), BS);
	ck_assert_mem_eq(back, data + BS, BS);
	ck_assert_int_eq(fs_close(f.fs), 0);
	ck_assert_uint_eq(count_redo(volume_store(f.v)), NB);
	ck_assert_int_eq(journal_redo_replay(volume_store(f.v), 0, &rs, NULL), 0);
	ck_assert_uint_eq(rs.damaged, NB);
	volume_close(f.v);

	ffix_open_existing(&f);
	ck_assert_uint_eq(count_redo(volume_store(f.v)), 0);
	{
		struct fs_attr a;

		ck_assert_int_eq(fs_lookup(f.fs, FS_ROOT_INO, "db", &a), 0);
	}
	ck_assert_int_eq(fs_read(f.fs, ino, back, sizeof(back), 0), (ssize_t)sizeof(back));
	ck_assert_mem_eq(back, data, sizeof(data));
	ck_assert_uint_eq(fs_read_retries(f.fs), 0);

	/* A clean close leaves no entry either. */
	ck_assert_int_eq(fs_write(f.fs, ino, data + 5, BS, 0), BS);
	ck_assert_int_eq(fs_fsync(f.fs, ino, false), 0);
	ck_assert_uint_eq(count_redo(volume_store(f.v)), 1);
	fs_forget(f.fs, ino, 1);
	ffix_reopen(&f);
	ck_assert_uint_eq(count_redo(volume_store(f.v)), 0);
	ck_assert_int_eq(fs_read(f.fs, ino, back, BS, 0), BS);
	ck_assert_mem_eq(back, data + 5, BS);
	ffix_close(&f);
}
END_TEST

/* ---- replay ---- */

struct fetch_ctx {
	struct store *src;
};

static int fetch_block(void *arg, const uint8_t id[static 32], uint8_t **sealed,
		       size_t *len)
{
	struct fetch_ctx *c = arg;
	uint8_t key[33], *val;
	struct store_loc loc;
	size_t vlen;
	int ret;

	key[0] = 'L';
	memcpy(key + 1, id, 32);
	ret = store_get(c->src, STORE_CF_LOCAL, key, sizeof(key), (void **)&val, &vlen);
	if (ret)
		return ret;
	ret = store_loc_decode(val, vlen, &loc);
	free(val);
	if (ret)
		return ret;
	*sealed = malloc(loc.len);
	*len = loc.len;
	return store_seg_read(c->src, &loc, id, *sealed);
}

/* Compare every journaled column family of a and b, key by key, value by value. */
static void assert_same_state(struct store *a, struct store *b)
{
	static const enum store_cf cfs[] = { STORE_CF_INODE, STORE_CF_DIRENT,
		STORE_CF_EXTENT, STORE_CF_BLOCK, STORE_CF_XATTR, STORE_CF_ORPHAN,
		STORE_CF_JOURNAL, STORE_CF_SUPER };

	for (size_t c = 0; c < sizeof(cfs) / sizeof(cfs[0]); c++) {
		struct store_iter *ia, *ib;
		size_t n = 0;

		ck_assert_int_eq(store_iter_new(a, cfs[c], &ia), 0);
		ck_assert_int_eq(store_iter_new(b, cfs[c], &ib), 0);
		store_iter_seek_first(ia);
		store_iter_seek_first(ib);
		for (;;) {
			size_t ka, kb, va, vb;
			const void *pa, *pb;

			/* super: header and head are written outside the journal. */
			while (cfs[c] == STORE_CF_SUPER && store_iter_valid(ia)) {
				pa = store_iter_key(ia, &ka);
				if ((ka == 6 && !memcmp(pa, "header", 6)) ||
				    (ka == 4 && !memcmp(pa, "head", 4)))
					store_iter_next(ia);
				else
					break;
			}
			while (cfs[c] == STORE_CF_SUPER && store_iter_valid(ib)) {
				pb = store_iter_key(ib, &kb);
				if ((kb == 6 && !memcmp(pb, "header", 6)) ||
				    (kb == 4 && !memcmp(pb, "head", 4)))
					store_iter_next(ib);
				else
					break;
			}
			if (!store_iter_valid(ia) || !store_iter_valid(ib))
				break;
			pa = store_iter_key(ia, &ka);
			pb = store_iter_key(ib, &kb);
			ck_assert_uint_eq(ka, kb);
			ck_assert_mem_eq(pa, pb, ka);
			pa = store_iter_value(ia, &va);
			pb = store_iter_value(ib, &vb);
			ck_assert_uint_eq(va, vb);
			ck_assert_mem_eq(pa, pb, va);
			store_iter_next(ia);
			store_iter_next(ib);
			n++;
		}
		ck_assert_msg(store_iter_valid(ia) == store_iter_valid(ib),
			      "column family %zu: one store has more keys", c);
		store_iter_free(ia);
		store_iter_free(ib);
	}
}

START_TEST(test_fs_replay_rebuilds_same_state)
{
	struct ffix f;
	struct fs_attr a, in;
	struct store *dst;
	struct journal *dj;
	struct journal_head h, hd;
	struct fetch_ctx fc;
	uint8_t *data = malloc(300000);
	char *dstdir;
	uint64_t d, ino;

	ffix_open(&f);
	/* A cursor pins blocks freed along the way, as an embassy would. */
	ck_assert_int_eq(journal_cursor_set(volume_journal(f.v), "replica", 0), 0);
	for (size_t q = 0; q < 300000; q++)
		data[q] = (uint8_t)((q / 7) ^ (q >> 11));
	d = mkdir_(&f, FS_ROOT_INO, "dir");
	ino = mkfile(&f, d, "big");
	ck_assert_int_eq(fs_write(f.fs, ino, data, 300000, 0), 300000);
	ck_assert_int_eq(fs_flush(f.fs, ino), 0);
	ck_assert_int_eq(fs_write(f.fs, ino, "patch", 5, 8190), 5);
	ck_assert_int_eq(fs_flush(f.fs, ino), 0);
	in.size = 100000;
	ck_assert_int_eq(fs_setattr(f.fs, ino, &in, FS_SET_SIZE, &a), 0);
	ck_assert_int_eq(fs_link(f.fs, ino, FS_ROOT_INO, "hard", &a), 0);
	ck_assert_int_eq(fs_setxattr(f.fs, ino, "user.k", "v", 1, 0), 0);
	ck_assert_int_eq(fs_symlink(f.fs, &f.ctx, d, "sym", "big", &a), 0);
	ino = mkfile(&f, FS_ROOT_INO, "gone");
	ck_assert_int_eq(fs_write(f.fs, ino, data + 5000, 50000, 0), 50000);
	ck_assert_int_eq(fs_flush(f.fs, ino), 0);
	ck_assert_int_eq(fs_unlink(f.fs, FS_ROOT_INO, "gone"), 0);
	fs_forget(f.fs, ino, 1);
	ck_assert_int_eq(fs_rename(f.fs, d, "sym", FS_ROOT_INO, "sym2", 0), 0);
	ck_assert_int_eq(fs_sync(f.fs), 0);

	dstdir = tu_tmpdir();
	ck_assert_int_eq(rmdir(dstdir), 0);
	ck_assert_int_eq(store_open(dstdir, STORE_CREATE, &dst), 0);
	ck_assert_int_eq(journal_open(dst, NULL, volume_header(f.v)->id, &dj), 0);
	journal_get_head(volume_journal(f.v), &h);
	fc.src = volume_store(f.v);
	for (uint64_t s = 1; s <= h.seq; s++) {
		uint8_t *rec;
		size_t len;

		ck_assert_int_eq(journal_read(volume_journal(f.v), s, &rec, &len), 0);
		ck_assert_int_eq(journal_apply(dj, rec, len, fetch_block, &fc), 0);
		/* Applying twice changes nothing. */
		ck_assert_int_eq(journal_apply(dj, rec, len, fetch_block, &fc), 0);
		free(rec);
	}
	journal_get_head(dj, &hd);
	ck_assert_uint_eq(hd.seq, h.seq);
	ck_assert_mem_eq(hd.hash, h.hash, 32);
	assert_same_state(volume_store(f.v), dst);
	journal_close(dj);
	store_close(dst);
	tu_rmdir(dstdir);
	free(data);
	ffix_close(&f);
}
END_TEST

static Suite *fs_suite(void)
{
	Suite *s = suite_create("fs");
	TCase *core = tcase_create("core");
	TCase *errors = tcase_create("errors");
	TCase *replay = tcase_create("replay");

	tcase_set_timeout(core, 60);
	tcase_set_timeout(errors, 60);
	tcase_set_timeout(replay, 60);
	tcase_add_test(core, test_fs_create_write_read_persist);
	tcase_add_test(core, test_fs_links_and_nlink);
	tcase_add_test(core, test_fs_rename_flags);
	tcase_add_test(core, test_fs_sparse_truncate_punch);
	tcase_add_test(core, test_fs_pcache_rmw);
	tcase_add_test(core, test_fs_flush_misaligned_stream);
	tcase_add_test(core, test_fs_dedup_refcounts);
	tcase_add_test(core, test_fs_orphan_kept_while_open);
	tcase_add_test(core, test_fs_xattrs);
	tcase_add_test(core, test_fs_xattr_miss_remembered);
	tcase_add_test(core, test_fs_acl_mode_sync_and_inherit);
	tcase_add_test(core, test_fs_readdir_stable_offsets);
	tcase_add_test(core, test_fs_read_many_blocks);
	tcase_add_test(core, test_fs_rdonly);
	tcase_add_test(core, test_fs_reap_races_readd);
	tcase_add_test(core, test_fs_flush_unlocked_races);
	tcase_add_test(core, test_fs_flush_unlocked_shrinks);
	tcase_add_test(core, test_fs_bad_block_healed_by_new_copy);
	tcase_add_test(core, test_fs_fsync_redo_replayed);
	tcase_add_test(errors, test_fs_errnos);
	tcase_add_test(errors, test_fs_wrong_passphrase);
	tcase_add_test(replay, test_fs_replay_rebuilds_same_state);
	suite_add_tcase(s, core);
	suite_add_tcase(s, errors);
	suite_add_tcase(s, replay);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fs_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
