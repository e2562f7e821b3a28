/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * check_codec.c - unit tests for codec.c: block ids, sealing with and
 * without zstd, malformed and tampered blocks, the pool under threads, and
 * the keyless checksum
 */
#include "codec.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TC_TIMEOUT 30
#define TC_THREADS 4
#define TC_ROUNDS  200

enum tc_data {
	TC_ZEROS,
	TC_RANDOM,
	TC_TEXT,
};

static struct key *tc_key(uint8_t fill)
{
	uint8_t master[KEY_BYTES];
	struct key *k;

	memset(master, fill, sizeof(master));
	ck_assert_int_eq(key_new_master(master, &k), 0);
	return k;
}

static struct codec *tc_codec(const struct key *k, enum codec_compress comp)
{
	struct codec *c;

	ck_assert_int_eq(codec_new(k, comp, 1, &c), 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

static void tc_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 24);
	}
}

static void tc_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *words[] = {
	    "the ",	"journal ", "records ", "every ",   "change ",
	    "to ",	"an ",	    "inode ",	"before ",  "its ",
	    "block ",	"is ",	    "sealed. ", "A ",	    "replica ",
	    "applies ", "them ",    "in ",	"order;\n",
	};
	uint64_t x = seed + 1;
	size_t i = 0;

	while (i < n) {
		const char *w;
		size_t wl;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		w = words[(x >> 33) % ARRAY_SIZE(words)];
		wl = MIN(strlen(w), n - i);
		memcpy(p + i, w, wl);
		i += wl;
	}
}

static uint8_t *tc_data(enum tc_data kind, size_t n, uint64_t seed)
{
	uint8_t *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	switch (kind) {
	case TC_ZEROS:
		memset(p, 0, n);
		break;
	case TC_RANDOM:
		tc_random(p, n, seed);
		break;
	case TC_TEXT:
		tc_text(p, n, seed);
		break;
	}
	return p;
}

/* Seal, open, compare; returns the sealed length. */
static size_t tc_roundtrip(struct codec *c, const void *plain, size_t len)
{
	uint8_t id[KEY_ID_BYTES];
	uint8_t *sealed = malloc(CODEC_SEALED_MAX(len));
	uint8_t *out = malloc(len);
	size_t sealedlen = 0, plainlen = 0;

	ck_assert_ptr_nonnull(sealed);
	ck_assert_ptr_nonnull(out);
	codec_block_id(c, plain, len, id);
	ck_assert_int_eq(codec_seal(c, id, plain, len, sealed, &sealedlen), 0);
	ck_assert_uint_gt(sealedlen, KEY_SEAL_OVERHEAD + CODEC_HDR_BYTES);
	ck_assert_uint_le(sealedlen, CODEC_SEALED_MAX(len));
	ck_assert_int_eq(
	    codec_open(c, id, sealed, sealedlen, out, len, &plainlen), 0);
	ck_assert_uint_eq(plainlen, len);
	ck_assert_mem_eq(out, plain, len);
	free(out);
	free(sealed);
	return sealedlen;
}

/* A sealed block for the error tests; caller frees *sealed. */
static void tc_seal(struct codec *c, const void *plain, size_t len,
		    uint8_t id[static KEY_ID_BYTES], uint8_t **sealed,
		    size_t *sealedlen)
{
	*sealed = malloc(CODEC_SEALED_MAX(len));
	ck_assert_ptr_nonnull(*sealed);
	codec_block_id(c, plain, len, id);
	ck_assert_int_eq(codec_seal(c, id, plain, len, *sealed, sealedlen), 0);
}

START_TEST(test_codec_roundtrip_zeros)
{
	const size_t n = 65536;
	struct key *k = tc_key(1);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t *p = tc_data(TC_ZEROS, n, 0);

	ck_assert_uint_lt(tc_roundtrip(c, p, n), 256);
	free(p);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_roundtrip_random)
{
	const size_t n = 65536;
	struct key *k = tc_key(2);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t *p = tc_data(TC_RANDOM, n, 1);

	/* Incompressible: stored, so exactly the worst case. */
	ck_assert_uint_eq(tc_roundtrip(c, p, n), n + 5 + 40);
	free(p);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_roundtrip_text)
{
	const size_t n = 16384;
	struct key *k = tc_key(3);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t *p = tc_data(TC_TEXT, n, 2);

	ck_assert_uint_lt(tc_roundtrip(c, p, n), n / 2);
	free(p);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_compress_none)
{
	const size_t n = 16384;
	struct key *k = tc_key(4);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_NONE);
	struct codec *z = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *p = tc_data(TC_ZEROS, n, 0), *s, *out;
	size_t slen, plen;

	ck_assert_uint_eq(tc_roundtrip(c, p, n), n + 5 + 40);
	/* A codec that does not compress still opens compressed blocks. */
	tc_seal(z, p, n, id, &s, &slen);
	ck_assert_uint_lt(slen, 256);
	out = malloc(n);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(codec_open(c, id, s, slen, out, n, &plen), 0);
	ck_assert_uint_eq(plen, n);
	ck_assert_mem_eq(out, p, n);
	free(out);
	free(s);
	free(p);
	codec_free(z);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_level)
{
	static const int levels[] = {-5, 1, 3, 19};
	const size_t n = 16384;
	struct key *k = tc_key(5);
	uint8_t *p = tc_data(TC_TEXT, n, 3);

	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		struct codec *c;

		ck_assert_int_eq(
		    codec_new(k, CODEC_COMPRESS_ZSTD, levels[i], &c), 0);
		ck_assert_uint_lt(tc_roundtrip(c, p, n), n);
		codec_free(c);
	}
	free(p);
	key_free(k);
}
END_TEST

START_TEST(test_codec_block_id)
{
	struct key *k = tc_key(6), *other = tc_key(7);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	struct codec *o = tc_codec(other, CODEC_COMPRESS_ZSTD);
	uint8_t a[KEY_ID_BYTES], b[KEY_ID_BYTES];

	codec_block_id(c, "block", 5, a);
	key_block_id(k, "block", 5, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	codec_block_id(c, "block", 5, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	codec_block_id(c, "blocl", 5, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	codec_block_id(o, "block", 5, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	codec_free(o);
	codec_free(c);
	key_free(other);
	key_free(k);
}
END_TEST

START_TEST(test_codec_seal_nonce_random)
{
	struct key *k = tc_key(8);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *a, *b;
	size_t alen, blen;

	tc_seal(c, "same block", 10, id, &a, &alen);
	tc_seal(c, "same block", 10, id, &b, &blen);
	ck_assert_uint_eq(alen, blen);
	ck_assert_mem_ne(a, b, alen);
	free(b);
	free(a);
	codec_free(c);
	key_free(k);
}
END_TEST

struct tc_thread {
	struct codec *c;
	unsigned int seed;
	int failures;
};

static void *tc_thread_main(void *arg)
{
	struct tc_thread *t = arg;
	const size_t max = 65536;
	uint8_t id[KEY_ID_BYTES], id2[KEY_ID_BYTES];
	uint8_t *plain = malloc(max), *out = malloc(max);
	uint8_t *sealed = malloc(CODEC_SEALED_MAX(max));
	size_t slen, plen;

	if (!plain || !out || !sealed) {
		t->failures++;
		goto out;
	}
	for (unsigned int r = 0; r < TC_ROUNDS; r++) {
		uint64_t seed = (uint64_t)t->seed * 100000 + r;
		size_t len = 1 + (size_t)(seed * 2654435761u % max);

		switch (r % 3) {
		case 0:
			tc_random(plain, len, seed);
			break;
		case 1:
			tc_text(plain, len, seed);
			break;
		default:
			memset(plain, (int)(seed & 0xff), len);
			break;
		}
		codec_block_id(t->c, plain, len, id);
		if (codec_seal(t->c, id, plain, len, sealed, &slen) != 0 ||
		    codec_open(t->c, id, sealed, slen, out, max, &plen) != 0 ||
		    plen != len || memcmp(out, plain, len) != 0)
			t->failures++;
		codec_block_id(t->c, out, len, id2);
		if (memcmp(id, id2, sizeof(id)) != 0)
			t->failures++;
	}
out:
	free(sealed);
	free(out);
	free(plain);
	return NULL;
}

START_TEST(test_codec_threads)
{
	struct key *k = tc_key(9);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	struct tc_thread t[TC_THREADS];
	pthread_t tid[TC_THREADS];

	for (int i = 0; i < TC_THREADS; i++) {
		t[i] = (struct tc_thread){.c = c, .seed = (unsigned int)i};
		ck_assert_int_eq(
		    pthread_create(&tid[i], NULL, tc_thread_main, &t[i]), 0);
	}
	for (int i = 0; i < TC_THREADS; i++) {
		ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
		ck_assert_int_eq(t[i].failures, 0);
	}
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_free_null)
{
	codec_free(NULL);
}
END_TEST

START_TEST(test_codec_sizes)
{
	static const size_t sizes[] = {
	    1, 2, 15, 16, 17, 4096, 16384, CODEC_MAX_BLOCK,
	};
	struct key *k = tc_key(10);
	struct codec *z = tc_codec(k, CODEC_COMPRESS_ZSTD);
	struct codec *n = tc_codec(k, CODEC_COMPRESS_NONE);

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (int kind = TC_ZEROS; kind <= TC_TEXT; kind++) {
			uint8_t *p = tc_data(kind, sizes[i], i);

			tc_roundtrip(z, p, sizes[i]);
			ck_assert_uint_eq(tc_roundtrip(n, p, sizes[i]),
					  CODEC_SEALED_MAX(sizes[i]));
			free(p);
		}
	}
	codec_free(n);
	codec_free(z);
	key_free(k);
}
END_TEST

START_TEST(test_codec_compress_threshold)
{
	const size_t n = 65536;
	struct key *k = tc_key(11);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t *p = malloc(n);

	/* 1/8 compressible: worth it. 1/32: less than 1/16 saved, stored. */
	ck_assert_ptr_nonnull(p);
	tc_random(p, n, 5);
	memset(p + n - n / 8, 0, n / 8);
	ck_assert_uint_lt(tc_roundtrip(c, p, n), n - n / 16 + 45);
	tc_random(p, n, 5);
	memset(p + n - n / 32, 0, n / 32);
	ck_assert_uint_eq(tc_roundtrip(c, p, n), n + 45);
	free(p);
	codec_free(c);
	key_free(k);
}
END_TEST

/*
 * Bytes drawn from 64 values carry 6 bits each: not random-looking, so
 * zstd is tried (and its entropy coder saves a quarter). Bytes drawn from
 * all 256 values are not tried and stored as is. Records whose random keys
 * fall on a power-of-two stride are not mistaken for random bytes.
 */
START_TEST(test_codec_compress_skewed_bytes)
{
	const size_t n = 16384;
	struct key *k = tc_key(13);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	tc_random(p, n, 6);
	for (size_t q = 0; q < n; q++)
		p[q] &= 63;
	ck_assert_uint_lt(tc_roundtrip(c, p, n), n - n / 8);
	tc_random(p, n, 6);
	ck_assert_uint_eq(tc_roundtrip(c, p, n), n + 45);
	/* 64-byte records, a random 8-byte key and constant fields. */
	tc_random(p, n, 7);
	for (size_t q = 0; q < n; q++)
		if (q % 64 >= 8)
			p[q] = (uint8_t)(q % 64);
	ck_assert_uint_lt(tc_roundtrip(c, p, n), n / 2);
	/*
	 * Database rows: 176 random bytes (a key, a digest, a binary column)
	 * and 80 of text fields each. Mostly random, so zstd's fast mode:
	 * still stored compressed (the stored worst case is n + 45).
	 */
	tc_random(p, n, 8);
	for (size_t q = 0; q + 256 <= n; q += 256)
		snprintf((char *)p + q + 176, 80, "name-%06zu|19%02zu-01-%02zu|"
			 "place-%04zu|registered|valid", q / 256, q % 97,
			 q % 28 + 1, q % 5000);
	ck_assert_uint_lt(tc_roundtrip(c, p, n), n);
	/*
	 * base64 of random bytes: 6 bits per byte, no repeats. Its only gain
	 * is in the literals, which zstd's fast mode leaves as they are: the
	 * volume's level still saves a fifth.
	 */
	tc_random(p, n, 9);
	for (size_t q = 0; q < n; q++)
		p[q] = (uint8_t)("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				 "0123456789+/")[p[q] % 64];
	ck_assert_uint_lt(tc_roundtrip(c, p, n), n - n / 6);
	free(p);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_bad_length)
{
	struct key *k = tc_key(12);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES] = {0}, out[64];
	size_t slen = 12345;

	ck_assert_int_eq(codec_seal(c, id, "x", 0, out, &slen), -EINVAL);
	ck_assert_int_eq(
	    codec_seal(c, id, "x", CODEC_MAX_BLOCK + 1, out, &slen), -EINVAL);
	ck_assert_uint_eq(slen, 12345);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_cap_small)
{
	const size_t n = 4096;
	struct key *k = tc_key(13);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *s, out[4096];
	size_t slen, plen;

	for (int kind = TC_ZEROS; kind <= TC_RANDOM; kind++) {
		uint8_t *p = tc_data(kind, n, 6);

		tc_seal(c, p, n, id, &s, &slen);
		ck_assert_int_eq(codec_open(c, id, s, slen, out, n - 1, &plen),
				 -ENOSPC);
		ck_assert_int_eq(codec_open(c, id, s, slen, out, 0, &plen),
				 -ENOSPC);
		ck_assert_int_eq(codec_open(c, id, s, slen, out, n, &plen), 0);
		ck_assert_uint_eq(plen, n);
		ck_assert_mem_eq(out, p, n);
		free(s);
		free(p);
	}
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_new_bad_compress)
{
	struct key *k = tc_key(14);
	struct codec *c = (struct codec *)1;

	ck_assert_int_eq(codec_new(k, (enum codec_compress)7, 1, &c), -EINVAL);
	ck_assert_ptr_null(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_wrong_id)
{
	struct key *k = tc_key(15);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t ida[KEY_ID_BYTES], idb[KEY_ID_BYTES], *a, *b, out[64];
	size_t alen, blen, plen;

	/* Two blocks' sealed bytes swapped between their ids. */
	tc_seal(c, "block a", 7, ida, &a, &alen);
	tc_seal(c, "block b", 7, idb, &b, &blen);
	ck_assert_int_eq(codec_open(c, idb, a, alen, out, sizeof(out), &plen),
			 -EUCLEAN);
	ck_assert_int_eq(codec_open(c, ida, b, blen, out, sizeof(out), &plen),
			 -EUCLEAN);
	ck_assert_int_eq(codec_open(c, ida, a, alen, out, sizeof(out), &plen),
			 0);
	free(b);
	free(a);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_wrong_key)
{
	struct key *k = tc_key(16), *other = tc_key(17);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	struct codec *o = tc_codec(other, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *s, out[64];
	size_t slen, plen;

	tc_seal(c, "block", 5, id, &s, &slen);
	ck_assert_int_eq(codec_open(o, id, s, slen, out, sizeof(out), &plen),
			 -EUCLEAN);
	free(s);
	codec_free(o);
	codec_free(c);
	key_free(other);
	key_free(k);
}
END_TEST

START_TEST(test_codec_flipped_bytes)
{
	const size_t n = 2000;
	struct key *k = tc_key(18);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *s, *out = malloc(n);
	size_t slen, plen;

	/* Compressed (text) and stored (random) blocks, every byte. */
	ck_assert_ptr_nonnull(out);
	for (int kind = TC_RANDOM; kind <= TC_TEXT; kind++) {
		uint8_t *p = tc_data(kind, n, 7);

		tc_seal(c, p, n, id, &s, &slen);
		for (size_t i = 0; i < slen; i++) {
			s[i] ^= 0x01;
			ck_assert_int_eq(
			    codec_open(c, id, s, slen, out, n, &plen),
			    -EUCLEAN);
			s[i] ^= 0x01;
		}
		for (size_t i = 0; i < KEY_ID_BYTES; i++) {
			id[i] ^= 0x80;
			ck_assert_int_eq(
			    codec_open(c, id, s, slen, out, n, &plen),
			    -EUCLEAN);
			id[i] ^= 0x80;
		}
		ck_assert_int_eq(codec_open(c, id, s, slen, out, n, &plen), 0);
		free(s);
		free(p);
	}
	free(out);
	codec_free(c);
	key_free(k);
}
END_TEST

START_TEST(test_codec_truncated)
{
	struct key *k = tc_key(19);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t id[KEY_ID_BYTES], *s, *big, out[64];
	size_t slen, plen;

	tc_seal(c, "a block of some length", 22, id, &s, &slen);
	ck_assert_int_eq(codec_open(c, id, s, 0, out, sizeof(out), &plen),
			 -EUCLEAN);
	ck_assert_int_eq(
	    codec_open(c, id, s, KEY_SEAL_OVERHEAD, out, sizeof(out), &plen),
	    -EUCLEAN);
	ck_assert_int_eq(codec_open(c, id, s,
				    KEY_SEAL_OVERHEAD + CODEC_HDR_BYTES, out,
				    sizeof(out), &plen),
			 -EUCLEAN);
	ck_assert_int_eq(
	    codec_open(c, id, s, slen - 1, out, sizeof(out), &plen), -EUCLEAN);
	/* Longer than any block can seal to. */
	big = calloc(1, CODEC_SEALED_MAX(CODEC_MAX_BLOCK) + 1);
	ck_assert_ptr_nonnull(big);
	memcpy(big, s, slen);
	ck_assert_int_eq(
	    codec_open(c, id, big, slen + 1, out, sizeof(out), &plen),
	    -EUCLEAN);
	ck_assert_int_eq(codec_open(c, id, big,
				    CODEC_SEALED_MAX(CODEC_MAX_BLOCK) + 1, out,
				    sizeof(out), &plen),
			 -EUCLEAN);
	free(big);
	free(s);
	codec_free(c);
	key_free(k);
}
END_TEST

/*
 * Authentic but malformed: seal a hand-made hdr || payload under the
 * block sub-key, as a buggy or hostile writer holding the key could.
 */
static int tc_open_forged(struct codec *c, const struct key *k, uint8_t flags,
			  uint32_t plain_len, const void *payload,
			  size_t paylen, size_t cap)
{
	uint8_t id[KEY_ID_BYTES], *pt, *s, *out;
	size_t plen;
	int ret;

	memset(id, 0x42, sizeof(id));
	pt = malloc(CODEC_HDR_BYTES + paylen);
	s = malloc(CODEC_HDR_BYTES + paylen + KEY_SEAL_OVERHEAD);
	out = malloc(cap);
	ck_assert_ptr_nonnull(pt);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(out);
	pt[0] = flags;
	put_be32(pt + 1, plain_len);
	if (paylen)
		memcpy(pt + CODEC_HDR_BYTES, payload, paylen);
	key_seal(k, KEY_SUB_BLOCK, id, sizeof(id), pt, CODEC_HDR_BYTES + paylen,
		 s);
	ret = codec_open(c, id, s, CODEC_HDR_BYTES + paylen + KEY_SEAL_OVERHEAD,
			 out, cap, &plen);
	free(out);
	free(s);
	free(pt);
	return ret;
}

START_TEST(test_codec_malformed_header)
{
	struct key *k = tc_key(20);
	struct codec *c = tc_codec(k, CODEC_COMPRESS_ZSTD);
	uint8_t zeros[4096] = {0}, frame[256], pt[CODEC_HDR_BYTES + 256];
	uint8_t id[KEY_ID_BYTES], *s;
	size_t slen, flen;

	/* Sanity: a well-formed forged stored block opens. */
	ck_assert_int_eq(tc_open_forged(c, k, 0, 4, "abcd", 4, 64), 0);
	ck_assert_int_eq(tc_open_forged(c, k, 0x02, 4, "abcd", 4, 64),
			 -EUCLEAN);
	ck_assert_int_eq(
	    tc_open_forged(c, k, 0x80 | CODEC_F_ZSTD, 4, "abcd", 4, 64),
	    -EUCLEAN);
	ck_assert_int_eq(tc_open_forged(c, k, 0, 0, "abcd", 4, 64), -EUCLEAN);
	ck_assert_int_eq(
	    tc_open_forged(c, k, 0, CODEC_MAX_BLOCK + 1, "abcd", 4, 64),
	    -EUCLEAN);
	ck_assert_int_eq(tc_open_forged(c, k, 0, 3, "abcd", 4, 64), -EUCLEAN);
	ck_assert_int_eq(tc_open_forged(c, k, 0, 5, "abcd", 4, 64), -EUCLEAN);
	ck_assert_int_eq(tc_open_forged(c, k, CODEC_F_ZSTD, 4, "abcd", 4, 64),
			 -EUCLEAN);

	/* A real zstd frame of 4096 zeros, then with the wrong plain_len. */
	tc_seal(c, zeros, sizeof(zeros), id, &s, &slen);
	flen = slen - KEY_SEAL_OVERHEAD - CODEC_HDR_BYTES;
	ck_assert_uint_le(flen, sizeof(frame));
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_BLOCK, id, sizeof(id), s, slen, pt), 0);
	free(s);
	ck_assert_uint_eq(pt[0], CODEC_F_ZSTD);
	ck_assert_uint_eq(get_be32(pt + 1), sizeof(zeros));
	memcpy(frame, pt + CODEC_HDR_BYTES, flen);
	ck_assert_int_eq(
	    tc_open_forged(c, k, CODEC_F_ZSTD, 4096, frame, flen, 4096), 0);
	ck_assert_int_eq(
	    tc_open_forged(c, k, CODEC_F_ZSTD, 4095, frame, flen, 8192),
	    -EUCLEAN);
	ck_assert_int_eq(
	    tc_open_forged(c, k, CODEC_F_ZSTD, 4097, frame, flen, 8192),
	    -EUCLEAN);
	ck_assert_int_eq(
	    tc_open_forged(c, k, CODEC_F_ZSTD, 4096, frame, flen - 1, 8192),
	    -EUCLEAN);
	codec_free(c);
	key_free(k);
}
END_TEST

Suite *codec_suite(void);

Suite *codec_suite(void)
{
	Suite *s = suite_create("codec");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, TC_TIMEOUT);
	tcase_add_test(tc, test_codec_roundtrip_zeros);
	tcase_add_test(tc, test_codec_roundtrip_random);
	tcase_add_test(tc, test_codec_roundtrip_text);
	tcase_add_test(tc, test_codec_compress_none);
	tcase_add_test(tc, test_codec_level);
	tcase_add_test(tc, test_codec_block_id);
	tcase_add_test(tc, test_codec_seal_nonce_random);
	tcase_add_test(tc, test_codec_threads);
	tcase_add_test(tc, test_codec_free_null);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, TC_TIMEOUT);
	tcase_add_test(tc, test_codec_sizes);
	tcase_add_test(tc, test_codec_compress_threshold);
	tcase_add_test(tc, test_codec_compress_skewed_bytes);
	tcase_add_test(tc, test_codec_bad_length);
	tcase_add_test(tc, test_codec_cap_small);
	tcase_add_test(tc, test_codec_new_bad_compress);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_set_timeout(tc, TC_TIMEOUT);
	tcase_add_test(tc, test_codec_wrong_id);
	tcase_add_test(tc, test_codec_wrong_key);
	tcase_add_test(tc, test_codec_flipped_bytes);
	tcase_add_test(tc, test_codec_truncated);
	tcase_add_test(tc, test_codec_malformed_header);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (key_lib_init() < 0)
		return EXIT_FAILURE;
	sr = srunner_create(codec_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
