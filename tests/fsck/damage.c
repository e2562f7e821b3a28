/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * damage.c - damage an unmounted store one precise way, for tests/fsck
 *
 *   damage STORE list CF [PREFIX]          keys and values, hex
 *   damage STORE get CF KEY                value, hex
 *   damage STORE put CF KEY VALUE          (hex value)
 *   damage STORE del CF KEY
 *   damage STORE flip CF KEY OFFSET        xor one byte of the value with 0x5a
 *                                          (a negative offset counts from
 *                                          the end)
 *   damage STORE swap CF KEY1 KEY2         exchange two values
 *   damage STORE copy CF FROM TO           copy a value to another key
 *   damage STORE setbyte CF KEY OFFSET BYTE
 *   damage STORE extent-id INO IDX         the block id an extent names
 *   damage STORE dirent-of CHILD           keys of the entries naming CHILD
 *   damage STORE flip-block ID OFFSET      xor a byte of a block's sealed bytes
 *                                          (-48..-1: of its record's header;
 *                                          -8..-1 is the XXH3 checksum)
 *   damage STORE block-len ID              the length of a block's sealed bytes
 *   damage STORE orphan-record             append a record nothing names
 *   damage STORE junk SEG                  append 1 KiB of junk to a segment
 *   damage STORE last-seq                  the journal's last sequence number
 *   damage STORE trim N                    delete journal records 1..N
 *   damage STORE redo-cut ID               what a power cut after an fsync
 *                                          leaves: the block's record logged
 *                                          for redo, its segment bytes zeros
 *
 * KEY is hex, or s:TEXT for a text key (super "head"), or u64:N for an
 * 8-byte big-endian number (inode, orphan, journal keys).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static struct store *st;

static NORETURN PRINTF_LIKE(1, 2) void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "damage: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	store_close(st);
	exit(2);
}

static enum store_cf parse_cf(const char *s)
{
	for (int cf = 0; cf < STORE_CF_COUNT; cf++)
		if (!strcmp(store_cf_name((enum store_cf)cf), s))
			return (enum store_cf)cf;
	die("unknown column family '%s'", s);
}

static size_t parse_bytes(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	if (!strncmp(s, "s:", 2)) {
		n = strlen(s + 2);
		if (n > cap)
			die("key too long: '%s'", s);
		memcpy(out, s + 2, n);
		return n;
	}
	if (!strncmp(s, "u64:", 4)) {
		put_be64(out, strtoull(s + 4, NULL, 10));
		return 8;
	}
	if (strlen(s) % 2)
		die("odd hex '%s'", s);
	for (; s[2 * n]; n++) {
		unsigned v;

		if (n == cap || sscanf(s + 2 * n, "%2x", &v) != 1)
			die("bad hex '%s'", s);
		out[n] = (uint8_t)v;
	}
	return n;
}

static void print_hex(const uint8_t *p, size_t n)
{
	for (size_t q = 0; q < n; q++)
		printf("%02x", p[q]);
}

static void get(enum store_cf cf, const uint8_t *k, size_t klen, uint8_t **v,
		size_t *vlen)
{
	if (store_get(st, cf, k, klen, (void **)v, vlen))
		die("no such key");
}

static void put(enum store_cf cf, const uint8_t *k, size_t klen,
		const uint8_t *v, size_t vlen, bool del)
{
	struct store_batch *b;

	if (store_batch_new(&b))
		die("out of memory");
	if (del)
		store_batch_delete(b, cf, k, klen);
	else
		store_batch_put(b, cf, k, klen, v, vlen);
	if (store_write(st, b, true))
		die("cannot write");
	store_batch_free(b);
}

static int list(enum store_cf cf, const uint8_t *prefix, size_t plen)
{
	struct store_iter *it;

	if (store_iter_new(st, cf, &it))
		return 1;
	for (plen ? store_iter_seek(it, prefix, plen)
		  : store_iter_seek_first(it);
	     store_iter_valid(it); store_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);

		if (plen && (klen < plen || memcmp(k, prefix, plen)))
			break;
		print_hex(k, klen);
		putchar(' ');
		print_hex(v, vlen);
		putchar('\n');
	}
	store_iter_free(it);
	return 0;
}

static void block_loc(const uint8_t *id, struct store_loc *loc)
{
	uint8_t key[33], *v;
	size_t vlen;

	key[0] = 'L';
	memcpy(key + 1, id, 32);
	get(STORE_CF_LOCAL, key, 33, &v, &vlen);
	if (store_loc_decode(v, vlen, loc))
		die("bad location");
	free(v);
}

static int seg_fd(const char *store, uint32_t seg)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/seg/%08" PRIu32, store, seg);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("cannot open segment %s", path);
	return fd;
}

int main(int argc, char **argv)
{
	uint8_t k1[256], k2[256], val[65536], *v = NULL, *v2 = NULL;
	size_t l1, l2, vlen, vlen2;
	const char *cmd;
	enum store_cf cf;

	if (argc < 3) {
		fprintf(stderr, "usage: damage STORE COMMAND ARGS...\n");
		return 2;
	}
	if (store_open(argv[1], 0, &st)) {
		fprintf(stderr, "damage: cannot open store '%s'\n", argv[1]);
		return 2;
	}
	cmd = argv[2];
	if (!strcmp(cmd, "list") && argc >= 4) {
		cf = parse_cf(argv[3]);
		l1 = argc > 4 ? parse_bytes(argv[4], k1, sizeof(k1)) : 0;
		list(cf, k1, l1);
	} else if (!strcmp(cmd, "get") && argc == 5) {
		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		get(cf, k1, l1, &v, &vlen);
		print_hex(v, vlen);
		putchar('\n');
	} else if (!strcmp(cmd, "put") && argc == 6) {
		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		vlen = parse_bytes(argv[5], val, sizeof(val));
		put(cf, k1, l1, val, vlen, false);
	} else if (!strcmp(cmd, "del") && argc == 5) {
		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		get(cf, k1, l1, &v, &vlen);
		put(cf, k1, l1, NULL, 0, true);
	} else if ((!strcmp(cmd, "flip") && argc == 6) ||
		   (!strcmp(cmd, "setbyte") && argc == 7)) {
		long off;

		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		get(cf, k1, l1, &v, &vlen);
		off = strtol(argv[5], NULL, 10);
		if (off < 0)
			off += (long)vlen;
		if (off < 0 || (size_t)off >= vlen)
			die("offset out of range: %s", argv[5]);
		if (!strcmp(cmd, "flip"))
			v[off] ^= 0x5a;
		else
			v[off] = (uint8_t)strtoul(argv[6], NULL, 0);
		put(cf, k1, l1, v, vlen, false);
	} else if (!strcmp(cmd, "swap") && argc == 6) {
		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		l2 = parse_bytes(argv[5], k2, sizeof(k2));
		get(cf, k1, l1, &v, &vlen);
		get(cf, k2, l2, &v2, &vlen2);
		put(cf, k1, l1, v2, vlen2, false);
		put(cf, k2, l2, v, vlen, false);
	} else if (!strcmp(cmd, "copy") && argc == 6) {
		cf = parse_cf(argv[3]);
		l1 = parse_bytes(argv[4], k1, sizeof(k1));
		l2 = parse_bytes(argv[5], k2, sizeof(k2));
		get(cf, k1, l1, &v, &vlen);
		put(cf, k2, l2, v, vlen, false);
	} else if (!strcmp(cmd, "extent-id") && argc == 5) {
		put_be64(k1, strtoull(argv[3], NULL, 10));
		put_be64(k1 + 8, strtoull(argv[4], NULL, 10));
		get(STORE_CF_EXTENT, k1, 16, &v, &vlen);
		print_hex(v, 32);
		putchar('\n');
	} else if (!strcmp(cmd, "dirent-of") && argc == 4) {
		struct store_iter *it;
		uint64_t child = strtoull(argv[3], NULL, 10);

		if (store_iter_new(st, STORE_CF_DIRENT, &it))
			die("cannot iterate");
		for (store_iter_seek_first(it); store_iter_valid(it);
		     store_iter_next(it)) {
			size_t klen, dl;
			const uint8_t *k = store_iter_key(it, &klen);
			const uint8_t *d = store_iter_value(it, &dl);

			if (dl >= 12 && get_be64(d + 4) == child) {
				print_hex(k, klen);
				putchar('\n');
			}
		}
		store_iter_free(it);
	} else if (!strcmp(cmd, "block-len") && argc == 4) {
		struct store_loc loc;

		if (parse_bytes(argv[3], k1, sizeof(k1)) != 32)
			die("a block id is 32 bytes: '%s'", argv[3]);
		block_loc(k1, &loc);
		printf("%" PRIu32 "\n", loc.len);
	} else if (!strcmp(cmd, "flip-block") && argc == 5) {
		struct store_loc loc;
		uint8_t b;
		long off;
		int fd;

		if (parse_bytes(argv[3], k1, sizeof(k1)) != 32)
			die("a block id is 32 bytes: '%s'", argv[3]);
		block_loc(k1, &loc);
		off = strtol(argv[4], NULL, 10);
		if (off < -48 || off >= (long)loc.len)
			die("offset out of range: %s", argv[4]);
		fd = seg_fd(argv[1], loc.seg);
		if (pread(fd, &b, 1, (off_t)loc.off + 48 + off) != 1)
			die("cannot read");
		b ^= 0x5a;
		if (pwrite(fd, &b, 1, (off_t)loc.off + 48 + off) != 1)
			die("cannot write");
		close(fd);
	} else if (!strcmp(cmd, "redo-cut") && argc == 4) {
		struct store_loc loc;
		struct store_batch *b;
		uint8_t key[13];
		int fd;

		if (parse_bytes(argv[3], k1, sizeof(k1)) != 32)
			die("a block id is 32 bytes: '%s'", argv[3]);
		block_loc(k1, &loc);
		if (32 + (size_t)loc.len > sizeof(val) ||
		    store_seg_span(loc.len) > sizeof(val))
			die("record too large for this helper");
		memcpy(val, k1, 32);
		if (store_seg_read(st, &loc, k1, val + 32))
			die("cannot read the block's record");
		key[0] = 'W';
		put_be32(key + 1, loc.seg);
		put_be64(key + 5, loc.off);
		if (store_batch_new(&b))
			die("out of memory");
		store_batch_put(b, STORE_CF_LOCAL, key, sizeof(key), val,
				32 + (size_t)loc.len);
		if (store_write(st, b, true))
			die("cannot write the redo entry");
		store_batch_free(b);
		fd = seg_fd(argv[1], loc.seg);
		memset(val, 0, store_seg_span(loc.len));
		if (pwrite(fd, val, store_seg_span(loc.len), (off_t)loc.off) !=
		    (ssize_t)store_seg_span(loc.len))
			die("cannot write");
		close(fd);
	} else if (!strcmp(cmd, "orphan-record") && argc == 3) {
		struct store_loc loc;

		for (size_t q = 0; q < 32; q++)
			k1[q] = (uint8_t)(0xa0 + q);
		for (size_t q = 0; q < 3000; q++)
			val[q] = (uint8_t)(q * 7 + 1);
		if (store_seg_append(st, k1, val, 3000, &loc) || store_sync(st))
			die("cannot append");
	} else if (!strcmp(cmd, "junk") && argc == 4) {
		off_t end;
		int fd = seg_fd(argv[1], (uint32_t)strtoul(argv[3], NULL, 10));

		end = lseek(fd, 0, SEEK_END);
		end = (end + 511) / 512 * 512;
		memset(val, 0x6b, 1024);
		if (pwrite(fd, val, 1024, end) != 1024)
			die("cannot write");
		close(fd);
	} else if (!strcmp(cmd, "last-seq") && argc == 3) {
		struct store_iter *it;
		size_t klen;
		const uint8_t *k;

		if (store_iter_new(st, STORE_CF_JOURNAL, &it))
			die("cannot iterate");
		store_iter_seek_last(it);
		k = store_iter_key(it, &klen);
		printf("%" PRIu64 "\n", k && klen == 8 ? get_be64(k) : 0);
		store_iter_free(it);
	} else if (!strcmp(cmd, "trim") && argc == 4) {
		struct store_batch *b;

		put_be64(k1, 1);
		put_be64(k2, strtoull(argv[3], NULL, 10) + 1);
		if (store_batch_new(&b))
			die("out of memory");
		store_batch_delete_range(b, STORE_CF_JOURNAL, k1, 8, k2, 8);
		if (store_write(st, b, true))
			die("cannot write");
		store_batch_free(b);
	} else {
		fprintf(stderr, "damage: bad command '%s'\n", cmd);
		store_close(st);
		return 2;
	}
	free(v);
	free(v2);
	store_close(st);
	return 0;
}
