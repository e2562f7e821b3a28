/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* testutil.c - temporary directories and fast keys for the Check suites */
#include "testutil.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat.h"
#include "store.h"

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	ck_assert_int_gt(asprintf(&path, "%s/embassyfs-check.XXXXXX", base), 0);
	ck_assert_ptr_nonnull(mkdtemp(path));
	return path;
}

static int tu_rm_one(const char *path, const struct stat *sb, int type,
		     struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

void tu_rmdir(char *dir)
{
	if (!dir)
		return;
	nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static unsigned long long tu_du_total;

static int tu_du_one(const char *path, const struct stat *sb, int type,
		     struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F)
		tu_du_total += (unsigned long long)sb->st_blocks * 512;
	return 0;
}

unsigned long long tu_du(const char *dir)
{
	tu_du_total = 0;
	nftw(dir, tu_du_one, 16, FTW_PHYS);
	return tu_du_total;
}

static const void *tu_needle;
static size_t tu_needle_len;

static int tu_grep_one(const char *path, const struct stat *sb, int type,
		       struct FTW *ftw)
{
	char *buf;
	ssize_t n;
	int fd, found = 0;

	(void)ftw;
	if (type != FTW_F || sb->st_size == 0)
		return 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	buf = malloc((size_t)sb->st_size);
	n = buf ? read(fd, buf, (size_t)sb->st_size) : -1;
	if (n > 0 && memmem(buf, (size_t)n, tu_needle, tu_needle_len))
		found = 1;
	free(buf);
	close(fd);
	return found;
}

int tu_grep_tree(const char *dir, const void *needle, size_t len)
{
	tu_needle = needle;
	tu_needle_len = len;
	return nftw(dir, tu_grep_one, 16, FTW_PHYS) == 1;
}

void tu_damage_block(struct store *st, const char *dir, uint64_t ino,
		     uint64_t idx, off_t at, uint8_t mask, uint8_t id[32])
{
	struct store_loc loc;
	uint8_t ekey[16], lkey[33], *val, b;
	char seg[4096];
	size_t vlen;
	int fd;

	put_be64(ekey, ino);
	put_be64(ekey + 8, idx);
	ck_assert_int_eq(store_get(st, STORE_CF_EXTENT, ekey, sizeof(ekey),
				   (void **)&val, &vlen), 0);
	ck_assert_uint_ge(vlen, 32);
	memcpy(id, val, 32);
	free(val);
	lkey[0] = 'L';
	memcpy(lkey + 1, id, 32);
	ck_assert_int_eq(store_get(st, STORE_CF_LOCAL, lkey, sizeof(lkey),
				   (void **)&val, &vlen), 0);
	ck_assert_int_eq(store_loc_decode(val, vlen, &loc), 0);
	free(val);
	snprintf(seg, sizeof(seg), "%s/seg/%08u", dir, loc.seg);
	fd = open(seg, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)loc.off + at), 1);
	b ^= mask;
	ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)loc.off + at), 1);
	close(fd);
}
