/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/* testutil.h - temporary directories and fast keys for the Check suites */
#ifndef EMBASSYFS_TESTUTIL_H
#define EMBASSYFS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct store;

/* mkdtemp under $TMPDIR (or /tmp); aborts the test on failure. Caller frees. */
char *tu_tmpdir(void);
/* rm -rf dir and free the string; NULL is fine. */
void tu_rmdir(char *dir);
/* Total bytes of regular files under dir. */
unsigned long long tu_du(const char *dir);
/* Does any file under dir contain the byte string needle? */
int tu_grep_tree(const char *dir, const void *needle, size_t len);
/*
 * XOR mask into byte `at` of the segment record of block idx of inode ino
 * in the store st at dir (as bit rot or a power cut would); its id to id.
 */
void tu_damage_block(struct store *st, const char *dir, uint64_t ino,
		     uint64_t idx, off_t at, uint8_t mask, uint8_t id[32]);

#endif
