/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * check_key.c - unit tests for key.c: derivation, slots, AEAD, MAC,
 * signatures and the unkeyed hash
 *
 * Passphrase slots use KEY_COST_MIN (Argon2id with 8 KiB, one pass) except
 * where a test checks how a cost is recorded.
 */
#include "key.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TK_TIMEOUT 30

static const char tk_pass[] = "correct horse battery staple";

/* A key whose master is `fill` repeated. */
static struct key *tk_key(uint8_t fill)
{
	uint8_t master[KEY_BYTES];
	struct key *k;

	memset(master, fill, sizeof(master));
	ck_assert_int_eq(key_new_master(master, &k), 0);
	ck_assert_ptr_nonnull(k);
	return k;
}

/* Deterministic filler for key files and messages. */
static void tk_fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void tk_unhex(uint8_t *out, const char *hex, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned int v;

		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* Everything observable that depends on the master key. */
struct tk_print {
	uint8_t id[KEY_ID_BYTES];
	uint8_t name[KEY_NAME_HASH_BYTES];
	uint8_t mac[KEY_MAC_BYTES];
	uint8_t pk[KEY_PUBLIC_BYTES];
	uint8_t sig[KEY_SIG_BYTES];
};

static void tk_print(const struct key *k, struct tk_print *p)
{
	key_block_id(k, "block", 5, p->id);
	key_name_hash(k, 1, "name", 4, p->name);
	key_mac(k, "ad", 2, "m", 1, p->mac);
	key_public(k, p->pk);
	key_sign(k, "msg", 3, p->sig);
}

static void tk_same_key(const struct key *a, const struct key *b)
{
	struct tk_print pa, pb;

	tk_print(a, &pa);
	tk_print(b, &pb);
	ck_assert_mem_eq(&pa, &pb, sizeof(pa));
}

START_TEST(test_key_lib_init_idempotent)
{
	ck_assert_int_eq(key_lib_init(), 0);
	ck_assert_int_eq(key_lib_init(), 0);
}
END_TEST

START_TEST(test_key_derive_deterministic)
{
	struct key *a = tk_key(7), *b = tk_key(7);

	tk_same_key(a, b);
	key_free(a);
	key_free(b);
}
END_TEST

START_TEST(test_key_derive_differs_by_master)
{
	struct key *a = tk_key(7), *b = tk_key(8);
	struct tk_print pa, pb;

	tk_print(a, &pa);
	tk_print(b, &pb);
	ck_assert_mem_ne(pa.id, pb.id, sizeof(pa.id));
	ck_assert_mem_ne(pa.name, pb.name, sizeof(pa.name));
	ck_assert_mem_ne(pa.mac, pb.mac, sizeof(pa.mac));
	ck_assert_mem_ne(pa.pk, pb.pk, sizeof(pa.pk));
	ck_assert_mem_ne(pa.sig, pb.sig, sizeof(pa.sig));
	key_free(a);
	key_free(b);
}
END_TEST

START_TEST(test_key_derive_subkeys_independent)
{
	struct key *k = tk_key(1);
	uint8_t id[KEY_ID_BYTES], name[KEY_NAME_HASH_BYTES];
	uint8_t mac[KEY_MAC_BYTES];
	uint8_t a[5 + KEY_SEAL_OVERHEAD], out[5];

	/* The same input under different sub-keys gives unrelated outputs. */
	key_block_id(k, "", 0, id);
	key_name_hash(k, 0, "", 0, name);
	key_mac(k, "", 0, "", 0, mac);
	ck_assert_mem_ne(id, name, KEY_NAME_HASH_BYTES);
	ck_assert_mem_ne(id, mac, KEY_MAC_BYTES);
	ck_assert_mem_ne(name, mac, KEY_MAC_BYTES);
	key_seal(k, KEY_SUB_VALUE, NULL, 0, "hello", 5, a);
	ck_assert_int_eq(key_open(k, KEY_SUB_VALUE, NULL, 0, a, sizeof(a), out),
			 0);
	ck_assert_int_eq(key_open(k, KEY_SUB_BLOCK, NULL, 0, a, sizeof(a), out),
			 -EUCLEAN);
	key_free(k);
}
END_TEST

START_TEST(test_key_random_distinct)
{
	struct key *a, *b;
	struct tk_print pa, pb;

	ck_assert_int_eq(key_new_random(&a), 0);
	ck_assert_int_eq(key_new_random(&b), 0);
	tk_print(a, &pa);
	tk_print(b, &pb);
	ck_assert_mem_ne(pa.pk, pb.pk, sizeof(pa.pk));
	ck_assert_mem_ne(pa.id, pb.id, sizeof(pa.id));
	key_free(a);
	key_free(b);
}
END_TEST

START_TEST(test_key_free_null)
{
	key_free(NULL);
}
END_TEST

START_TEST(test_key_slot_passphrase_roundtrip)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k, *o;

	ck_assert_int_eq(key_new_random(&k), 0);
	ck_assert_int_eq(key_slot_seal_passphrase(k, tk_pass, strlen(tk_pass),
						  KEY_COST_MIN, slot),
			 0);
	ck_assert_uint_eq(slot[0], KEY_SLOT_PASSPHRASE);
	ck_assert_uint_eq(get_be32(slot + 4), 8); /* 8 KiB */
	ck_assert_uint_eq(get_be64(slot + 8), 1);
	ck_assert_int_eq(
	    key_slot_open_passphrase(slot, tk_pass, strlen(tk_pass), &o), 0);
	tk_same_key(k, o);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_passphrase_empty)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k = tk_key(3), *o;

	ck_assert_int_eq(key_slot_seal_passphrase(k, "", 0, KEY_COST_MIN, slot),
			 0);
	ck_assert_int_eq(key_slot_open_passphrase(slot, "", 0, &o), 0);
	tk_same_key(k, o);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_keyfile_roundtrip)
{
	uint8_t slot[KEY_SLOT_BYTES], file[4096];
	struct key *k = tk_key(4), *o;

	tk_fill(file, sizeof(file), 1);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), slot), 0);
	ck_assert_uint_eq(slot[0], KEY_SLOT_KEYFILE);
	ck_assert_uint_eq(get_be32(slot + 4), 0);
	ck_assert_uint_eq(get_be64(slot + 8), 0);
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, sizeof(file), &o),
			 0);
	tk_same_key(k, o);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_salted)
{
	uint8_t s1[KEY_SLOT_BYTES], s2[KEY_SLOT_BYTES], file[32];
	struct key *k = tk_key(5);

	tk_fill(file, sizeof(file), 2);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), s1), 0);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), s2), 0);
	ck_assert_mem_ne(s1 + 16, s2 + 16, 16); /* salt */
	ck_assert_mem_ne(s1 + 56, s2 + 56, 48); /* sealed master */
	key_free(k);
}
END_TEST

START_TEST(test_key_seal_roundtrip)
{
	struct key *k = tk_key(6);
	uint8_t pt[1000], ct[sizeof(pt) + KEY_SEAL_OVERHEAD], out[sizeof(pt)];

	tk_fill(pt, sizeof(pt), 3);
	for (int sub = KEY_SUB_VALUE; sub < KEY_SUB_COUNT; sub++) {
		key_seal(k, sub, "ad", 2, pt, sizeof(pt), ct);
		memset(out, 0, sizeof(out));
		ck_assert_int_eq(key_open(k, sub, "ad", 2, ct, sizeof(ct), out),
				 0);
		ck_assert_mem_eq(out, pt, sizeof(pt));
	}
	key_free(k);
}
END_TEST

START_TEST(test_key_seal_nonce_random)
{
	struct key *k = tk_key(6);
	uint8_t a[3 + KEY_SEAL_OVERHEAD], b[3 + KEY_SEAL_OVERHEAD];

	key_seal(k, KEY_SUB_VALUE, NULL, 0, "abc", 3, a);
	key_seal(k, KEY_SUB_VALUE, NULL, 0, "abc", 3, b);
	ck_assert_mem_ne(a, b, KEY_NONCE_BYTES);
	ck_assert_mem_ne(a + KEY_NONCE_BYTES, b + KEY_NONCE_BYTES, 3);
	key_free(k);
}
END_TEST

START_TEST(test_key_mac_verify)
{
	struct key *k = tk_key(9);
	uint8_t tag[KEY_MAC_BYTES];

	key_mac(k, "inode:1", 7, "value", 5, tag);
	ck_assert_int_eq(key_mac_verify(k, "inode:1", 7, "value", 5, tag), 0);
	key_mac(k, NULL, 0, NULL, 0, tag);
	ck_assert_int_eq(key_mac_verify(k, NULL, 0, NULL, 0, tag), 0);
	key_free(k);
}
END_TEST

START_TEST(test_key_name_hash)
{
	struct key *k = tk_key(10);
	uint8_t a[KEY_NAME_HASH_BYTES], b[KEY_NAME_HASH_BYTES];

	key_name_hash(k, 2, "file", 4, a);
	key_name_hash(k, 2, "file", 4, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	key_name_hash(k, 3, "file", 4, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	key_name_hash(k, 2, "filf", 4, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	key_name_hash(k, 2, "file", 3, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	key_free(k);
}
END_TEST

START_TEST(test_key_block_id)
{
	struct key *k = tk_key(11);
	uint8_t a[KEY_ID_BYTES], b[KEY_ID_BYTES], h[KEY_HASH_BYTES];

	key_block_id(k, "data", 4, a);
	key_block_id(k, "data", 4, b);
	ck_assert_mem_eq(a, b, sizeof(a));
	key_block_id(k, "datb", 4, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	/* Keyed: not the public hash of the data. */
	key_hash("data", 4, h);
	ck_assert_mem_ne(a, h, sizeof(a));
	key_free(k);
}
END_TEST

START_TEST(test_key_sign_verify)
{
	struct key *k = tk_key(12);
	uint8_t pk[KEY_PUBLIC_BYTES], sig[KEY_SIG_BYTES];

	key_public(k, pk);
	key_sign(k, "journal head", 12, sig);
	ck_assert_int_eq(key_verify(pk, "journal head", 12, sig), 0);
	key_sign(k, NULL, 0, sig);
	ck_assert_int_eq(key_verify(pk, NULL, 0, sig), 0);
	key_free(k);
}
END_TEST

START_TEST(test_key_hash_known_answer)
{
	static const char *blake2b_256_empty =
	    "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
	uint8_t want[KEY_HASH_BYTES], h[KEY_HASH_BYTES];

	tk_unhex(want, blake2b_256_empty, sizeof(want));
	key_hash("", 0, h);
	ck_assert_mem_eq(h, want, sizeof(h));
	key_hash("a", 1, h);
	ck_assert_mem_ne(h, want, sizeof(h));
}
END_TEST

START_TEST(test_key_seal_zero_length)
{
	struct key *k = tk_key(13);
	uint8_t ct[KEY_SEAL_OVERHEAD], out[1] = {0xAA};

	key_seal(k, KEY_SUB_VALUE, "ad", 2, "", 0, ct);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "ad", 2, ct, sizeof(ct), out), 0);
	ck_assert_uint_eq(out[0], 0xAA);
	ct[KEY_SEAL_OVERHEAD - 1] ^= 1;
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "ad", 2, ct, sizeof(ct), out), -EUCLEAN);
	key_free(k);
}
END_TEST

START_TEST(test_key_seal_large)
{
	const size_t n = 1u << 20;
	struct key *k = tk_key(14);
	uint8_t *pt = malloc(n), *ct = malloc(n + KEY_SEAL_OVERHEAD);
	uint8_t *out = malloc(n);

	ck_assert_ptr_nonnull(pt);
	ck_assert_ptr_nonnull(ct);
	ck_assert_ptr_nonnull(out);
	tk_fill(pt, n, 4);
	key_seal(k, KEY_SUB_BLOCK, NULL, 0, pt, n, ct);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_BLOCK, NULL, 0, ct, n + KEY_SEAL_OVERHEAD, out),
	    0);
	ck_assert_mem_eq(out, pt, n);
	free(out);
	free(ct);
	free(pt);
	key_free(k);
}
END_TEST

START_TEST(test_key_mac_boundary)
{
	struct key *k = tk_key(15);
	uint8_t a[KEY_MAC_BYTES], b[KEY_MAC_BYTES];

	/* Moving bytes between ad and m must change the tag. */
	key_mac(k, "ab", 2, "c", 1, a);
	key_mac(k, "a", 1, "bc", 2, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	key_mac(k, "", 0, "abc", 3, b);
	ck_assert_mem_ne(a, b, sizeof(a));
	ck_assert_int_eq(key_mac_verify(k, "a", 1, "bc", 2, a), -EUCLEAN);
	key_free(k);
}
END_TEST

START_TEST(test_key_keyfile_min_length)
{
	uint8_t slot[KEY_SLOT_BYTES], file[32];
	struct key *k = tk_key(16), *o;

	tk_fill(file, sizeof(file), 5);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, 32, slot), 0);
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, 32, &o), 0);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_cost_recorded)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k = tk_key(17), *o;

	ck_assert_int_eq(key_slot_seal_passphrase(k, tk_pass, strlen(tk_pass),
						  KEY_COST_INTERACTIVE, slot),
			 0);
	ck_assert_uint_eq(get_be32(slot + 4), 64 * 1024); /* 64 MiB */
	ck_assert_uint_eq(get_be64(slot + 8), 2);
	ck_assert_int_eq(
	    key_slot_open_passphrase(slot, tk_pass, strlen(tk_pass), &o), 0);
	tk_same_key(k, o);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_cost_unknown)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k = tk_key(18);

	memset(slot, 0x55, sizeof(slot));
	ck_assert_int_eq(
	    key_slot_seal_passphrase(k, "x", 1, (enum key_cost)99, slot),
	    -EINVAL);
	ck_assert_uint_eq(slot[0], 0x55); /* untouched on failure */
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_wrong_passphrase)
{
	uint8_t slot[KEY_SLOT_BYTES];
	struct key *k = tk_key(19), *o = NULL;

	ck_assert_int_eq(key_slot_seal_passphrase(k, tk_pass, strlen(tk_pass),
						  KEY_COST_MIN, slot),
			 0);
	ck_assert_int_eq(key_slot_open_passphrase(slot, "wrong", 5, &o),
			 -EKEYREJECTED);
	ck_assert_ptr_null(o);
	/* A prefix of the right passphrase is a different passphrase. */
	ck_assert_int_eq(
	    key_slot_open_passphrase(slot, tk_pass, strlen(tk_pass) - 1, &o),
	    -EKEYREJECTED);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_wrong_keyfile)
{
	uint8_t slot[KEY_SLOT_BYTES], file[64];
	struct key *k = tk_key(20), *o = NULL;

	tk_fill(file, sizeof(file), 6);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), slot), 0);
	file[63] ^= 1;
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, sizeof(file), &o),
			 -EKEYREJECTED);
	ck_assert_ptr_null(o);
	file[63] ^= 1;
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, 63, &o),
			 -EKEYREJECTED);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_wrong_kind)
{
	uint8_t ps[KEY_SLOT_BYTES], fs[KEY_SLOT_BYTES], empty[KEY_SLOT_BYTES];
	uint8_t file[32];
	struct key *k = tk_key(21), *o = NULL;

	/* The key file's bytes as the passphrase and vice versa. */
	tk_fill(file, sizeof(file), 7);
	ck_assert_int_eq(key_slot_seal_passphrase(k, (const char *)file,
						  sizeof(file), KEY_COST_MIN,
						  ps),
			 0);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), fs), 0);
	ck_assert_int_eq(key_slot_open_keyfile(ps, file, sizeof(file), &o),
			 -EKEYREJECTED);
	ck_assert_int_eq(
	    key_slot_open_passphrase(fs, (const char *)file, sizeof(file), &o),
	    -EKEYREJECTED);
	memset(empty, 0, sizeof(empty));
	ck_assert_int_eq(key_slot_open_passphrase(empty, "", 0, &o),
			 -EKEYREJECTED);
	ck_assert_int_eq(key_slot_open_keyfile(empty, file, sizeof(file), &o),
			 -EKEYREJECTED);
	ck_assert_ptr_null(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_tampered_cost)
{
	uint8_t slot[KEY_SLOT_BYTES], bad[KEY_SLOT_BYTES];
	struct key *k = tk_key(22), *o = NULL;

	ck_assert_int_eq(key_slot_seal_passphrase(k, tk_pass, strlen(tk_pass),
						  KEY_COST_MIN, slot),
			 0);
	/* In range, but bound by the AD. */
	memcpy(bad, slot, sizeof(bad));
	put_be64(bad + 8, 2);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EKEYREJECTED);
	memcpy(bad, slot, sizeof(bad));
	put_be32(bad + 4, 16);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EKEYREJECTED);
	/* Out of range: refused before Argon2id runs. */
	memcpy(bad, slot, sizeof(bad));
	put_be64(bad + 8, 1000000);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EUCLEAN);
	memcpy(bad, slot, sizeof(bad));
	put_be64(bad + 8, 0);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EUCLEAN);
	memcpy(bad, slot, sizeof(bad));
	put_be32(bad + 4, 0xFFFFFFFFu);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EUCLEAN);
	memcpy(bad, slot, sizeof(bad));
	put_be32(bad + 4, 4);
	ck_assert_int_eq(
	    key_slot_open_passphrase(bad, tk_pass, strlen(tk_pass), &o),
	    -EUCLEAN);
	ck_assert_ptr_null(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_tampered_body)
{
	uint8_t slot[KEY_SLOT_BYTES], file[48];
	struct key *k = tk_key(23), *o = NULL;

	/* Salt, nonce, sealed master and tag: every byte is covered. */
	tk_fill(file, sizeof(file), 8);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), slot), 0);
	for (size_t i = 16; i < 104; i++) {
		slot[i] ^= 0x20;
		ck_assert_int_eq(
		    key_slot_open_keyfile(slot, file, sizeof(file), &o),
		    -EKEYREJECTED);
		slot[i] ^= 0x20;
	}
	ck_assert_ptr_null(o);
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, sizeof(file), &o),
			 0);
	key_free(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_slot_malformed)
{
	static const size_t reserved[] = {1, 2, 3, 104, 127};
	uint8_t slot[KEY_SLOT_BYTES], bad[KEY_SLOT_BYTES], file[32];
	struct key *k = tk_key(24), *o = NULL;

	tk_fill(file, sizeof(file), 9);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, sizeof(file), slot), 0);
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
		memcpy(bad, slot, sizeof(bad));
		bad[reserved[i]] = 1;
		ck_assert_int_eq(
		    key_slot_open_keyfile(bad, file, sizeof(file), &o),
		    -EUCLEAN);
		ck_assert_int_eq(key_slot_open_passphrase(bad, "", 0, &o),
				 -EUCLEAN);
	}
	memcpy(bad, slot, sizeof(bad));
	bad[0] = 3;
	ck_assert_int_eq(key_slot_open_keyfile(bad, file, sizeof(file), &o),
			 -EUCLEAN);
	ck_assert_int_eq(key_slot_open_passphrase(bad, "", 0, &o), -EUCLEAN);
	bad[0] = 0xFF;
	ck_assert_int_eq(key_slot_open_keyfile(bad, file, sizeof(file), &o),
			 -EUCLEAN);
	/* A key file slot carries no Argon2id cost. */
	memcpy(bad, slot, sizeof(bad));
	put_be64(bad + 8, 1);
	ck_assert_int_eq(key_slot_open_keyfile(bad, file, sizeof(file), &o),
			 -EUCLEAN);
	memcpy(bad, slot, sizeof(bad));
	put_be32(bad + 4, 8);
	ck_assert_int_eq(key_slot_open_keyfile(bad, file, sizeof(file), &o),
			 -EUCLEAN);
	ck_assert_ptr_null(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_keyfile_short)
{
	uint8_t slot[KEY_SLOT_BYTES], file[32];
	struct key *k = tk_key(25), *o = NULL;

	tk_fill(file, sizeof(file), 10);
	memset(slot, 0x55, sizeof(slot));
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, 31, slot), -EINVAL);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, 0, slot), -EINVAL);
	ck_assert_uint_eq(slot[0], 0x55);
	ck_assert_int_eq(key_slot_seal_keyfile(k, file, 32, slot), 0);
	ck_assert_int_eq(key_slot_open_keyfile(slot, file, 31, &o), -EINVAL);
	ck_assert_ptr_null(o);
	key_free(k);
}
END_TEST

START_TEST(test_key_open_tampered)
{
	struct key *k = tk_key(26);
	uint8_t pt[33], ct[sizeof(pt) + KEY_SEAL_OVERHEAD], out[sizeof(pt)];

	/* Nonce, ciphertext and tag: a flipped bit anywhere is caught. */
	tk_fill(pt, sizeof(pt), 11);
	key_seal(k, KEY_SUB_VALUE, "ad", 2, pt, sizeof(pt), ct);
	for (size_t i = 0; i < sizeof(ct); i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			ct[i] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(key_open(k, KEY_SUB_VALUE, "ad", 2, ct,
						  sizeof(ct), out),
					 -EUCLEAN);
			ct[i] ^= (uint8_t)(1u << bit);
		}
	}
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "ad", 2, ct, sizeof(ct), out), 0);
	key_free(k);
}
END_TEST

/*
 * key_open_split gives the bytes key_open gives, wherever place puts the
 * rest (its own buffer or the scratch), on both sides of KEY_BULK_MIN; it
 * calls place once, with the head already decrypted; a flipped bit leaves
 * no plaintext in either buffer.
 */
struct tk_split {
	uint8_t *rest, *scratch;
	size_t headlen, calls;
	const uint8_t *want;
};

static uint8_t *tk_place(void *arg, const uint8_t *head)
{
	struct tk_split *t = arg;

	t->calls++;
	ck_assert_mem_eq(head, t->want, t->headlen);
	return t->rest ? t->rest : t->scratch + t->headlen;
}

static bool tk_only(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0 && p[i] != 0xAA)
			return false;
	return true;
}

START_TEST(test_key_open_split)
{
	static const size_t lens[] = { 1, 5, 6, 100, KEY_BULK_MIN - 1,
				       KEY_BULK_MIN, KEY_BULK_MIN + 5, 4096,
				       65536 + 5 };
	static const size_t heads[] = { 0, 1, 5 };
	struct key *k = tk_key(27);
	size_t max = 65536 + 5;
	uint8_t *pt = malloc(max), *ct = malloc(max + KEY_SEAL_OVERHEAD);
	uint8_t *rest = malloc(max), *scratch = malloc(max), head[8];

	ck_assert(pt && ct && rest && scratch);
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		size_t len = lens[l], clen = len + KEY_SEAL_OVERHEAD;

		tk_fill(pt, len, len);
		key_seal(k, KEY_SUB_BLOCK, "id", 2, pt, len, ct);
		for (size_t h = 0; h < 3 && heads[h] <= len; h++) {
			for (int own = 0; own < 2; own++) {
				struct tk_split t = { own ? rest : NULL,
						      scratch, heads[h], 0,
						      pt };
				struct key_split sp = { head, heads[h],
							tk_place, &t };
				const uint8_t *got =
				    own ? rest : scratch + heads[h];

				memset(rest, 0xAA, max);
				ck_assert_int_eq(
				    key_open_split(k, KEY_SUB_BLOCK, "id", 2,
						   ct, clen, &sp, scratch),
				    0);
				ck_assert_uint_eq(t.calls, 1);
				ck_assert_mem_eq(head, pt, heads[h]);
				ck_assert_mem_eq(got, pt + heads[h],
						 len - heads[h]);

				ct[clen / 2] ^= 0x10;
				memset(head, 0xAA, sizeof(head));
				memset(rest, 0xAA, max);
				memset(scratch, 0xAA, max);
				ck_assert_int_eq(
				    key_open_split(k, KEY_SUB_BLOCK, "id", 2,
						   ct, clen, &sp, scratch),
				    -EUCLEAN);
				ct[clen / 2] ^= 0x10;
				ck_assert(tk_only(head, heads[h]));
				ck_assert(tk_only(rest, len));
				ck_assert(tk_only(scratch, len));
			}
		}
	}
	free(pt);
	free(ct);
	free(rest);
	free(scratch);
	key_free(k);
}
END_TEST

/*
 * Whichever library key_seal uses, its bytes are FORMAT.md's: libsodium's
 * XChaCha20-Poly1305-IETF under the sub-key crypto_kdf derives, both ways,
 * on both sides of KEY_BULK_MIN and up to the largest block (1 MiB).
 */
#define TK_FMT_MAX (1u << 20)

struct tk_fmt {
	struct key *k;
	uint8_t sub[KEY_BYTES];
	int failures;
};

static int tk_fmt_one(struct tk_fmt *x, const uint8_t *pt, size_t n,
		      uint8_t *ct, uint8_t *out)
{
	static const uint8_t ad[40] = {7};

	key_seal(x->k, KEY_SUB_BLOCK, ad, sizeof(ad), pt, n, ct);
	memset(out, 0xa5, n);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		out, NULL, NULL, ct + KEY_NONCE_BYTES, n + KEY_TAG_BYTES, ad,
		sizeof(ad), ct, x->sub) != 0 ||
	    (n && memcmp(out, pt, n)))
		return 1;

	randombytes_buf(ct, KEY_NONCE_BYTES);
	(void)crypto_aead_xchacha20poly1305_ietf_encrypt(
	    ct + KEY_NONCE_BYTES, NULL, pt, n, ad, sizeof(ad), NULL, ct, x->sub);
	memset(out, 0xa5, n);
	if (key_open(x->k, KEY_SUB_BLOCK, ad, sizeof(ad), ct,
		     n + KEY_SEAL_OVERHEAD, out) != 0 ||
	    (n && memcmp(out, pt, n)))
		return 2;

	/* A bad tag leaves no unauthenticated plaintext behind. */
	ct[KEY_NONCE_BYTES + n] ^= 1;
	memset(out, 0xa5, n);
	if (key_open(x->k, KEY_SUB_BLOCK, ad, sizeof(ad), ct,
		     n + KEY_SEAL_OVERHEAD, out) != -EUCLEAN)
		return 3;
	for (size_t j = 0; j < n; j++)
		if (out[j] != 0 && out[j] != 0xa5)
			return 4;
	return 0;
}

static const size_t tk_fmt_sizes[] = {
    0, 1, 63, 64, 65, KEY_BULK_MIN - 1, KEY_BULK_MIN, KEY_BULK_MIN + 1,
    4096, 16384, 65536, 65537, TK_FMT_MAX,
};

static void *tk_fmt_thread(void *arg)
{
	struct tk_fmt *x = arg;
	uint8_t *pt = malloc(TK_FMT_MAX);
	uint8_t *ct = malloc(TK_FMT_MAX + KEY_SEAL_OVERHEAD);
	uint8_t *out = malloc(TK_FMT_MAX);

	if (!pt || !ct || !out) {
		x->failures = -1;
		goto out;
	}
	tk_fill(pt, TK_FMT_MAX, 12);
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < ARRAY_SIZE(tk_fmt_sizes); i++)
			if (tk_fmt_one(x, pt, tk_fmt_sizes[i], ct, out))
				x->failures++;
out:
	free(pt);
	free(ct);
	free(out);
	return NULL;
}

START_TEST(test_key_seal_matches_format)
{
	struct tk_fmt x[4];
	pthread_t th[ARRAY_SIZE(x)];
	uint8_t master[KEY_BYTES];
	struct key *k;

#ifdef HAVE_OPENSSL
	ck_assert(key_bulk_libcrypto());
#else
	ck_assert(!key_bulk_libcrypto());
#endif
	memset(master, 28, sizeof(master));
	ck_assert_int_eq(key_new_master(master, &k), 0);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++) {
		x[t].k = k;
		x[t].failures = 0;
		ck_assert_int_eq(crypto_kdf_derive_from_key(
				     x[t].sub, sizeof(x[t].sub), KEY_SUB_BLOCK,
				     "embfs-v1", master),
				 0);
	}
	/* Once on this thread, then on four at once. */
	tk_fmt_thread(&x[0]);
	ck_assert_int_eq(x[0].failures, 0);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, tk_fmt_thread,
						&x[t]),
				 0);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_int_eq(x[t].failures, 0);
		sodium_memzero(x[t].sub, sizeof(x[t].sub));
	}
	key_free(k);
}
END_TEST

/*
 * Block ids are FORMAT.md's HMAC-SHA-256 under the BLOCK_ID sub-key,
 * whichever library computes them; a thread that hashes for two volumes
 * in turn (two keys) gets each one's ids, also for a key made after
 * another was freed.
 */
struct tk_id {
	struct key *k[2];
	uint8_t sub[2][KEY_BYTES];
	int failures;
};

static void *tk_id_thread(void *arg)
{
	struct tk_id *x = arg;
	uint8_t *pt = malloc(TK_FMT_MAX);
	uint8_t got[KEY_ID_BYTES], want[KEY_ID_BYTES];

	if (!pt) {
		x->failures = -1;
		return NULL;
	}
	tk_fill(pt, TK_FMT_MAX, 13);
	/* The two keys in turn (re-keyed each time), then each one alone. */
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < ARRAY_SIZE(tk_fmt_sizes); i++)
			for (int w = 0; w < 2; w++) {
				size_t n = tk_fmt_sizes[i];
				int kw = round == 0 ? w : round - 1;

				key_block_id(x->k[kw], pt, n, got);
				crypto_auth_hmacsha256(want, pt, n, x->sub[kw]);
				if (memcmp(got, want, sizeof(got)))
					x->failures++;
			}
	free(pt);
	return NULL;
}

static void tk_id_master(uint8_t master[static KEY_BYTES], int fill,
			 struct key **k, uint8_t sub[static KEY_BYTES])
{
	memset(master, fill, KEY_BYTES);
	ck_assert_int_eq(key_new_master(master, k), 0);
	ck_assert_int_eq(crypto_kdf_derive_from_key(sub, KEY_BYTES,
						    KEY_SUB_BLOCK_ID,
						    "embfs-v1", master),
			 0);
}

START_TEST(test_key_block_id_matches_format)
{
	struct tk_id x[4];
	pthread_t th[ARRAY_SIZE(x)];
	uint8_t master[KEY_BYTES], id[KEY_ID_BYTES], want[KEY_ID_BYTES];
	struct key *a, *b;
	uint8_t sa[KEY_BYTES], sb[KEY_BYTES];

	tk_id_master(master, 31, &a, sa);
	tk_id_master(master, 32, &b, sb);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++) {
		x[t].k[0] = a;
		x[t].k[1] = b;
		memcpy(x[t].sub[0], sa, KEY_BYTES);
		memcpy(x[t].sub[1], sb, KEY_BYTES);
		x[t].failures = 0;
	}
	tk_id_thread(&x[0]);
	ck_assert_int_eq(x[0].failures, 0);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, tk_id_thread,
						&x[t]),
				 0);
	for (size_t t = 0; t < ARRAY_SIZE(x); t++) {
		ck_assert_int_eq(pthread_join(th[t], NULL), 0);
		ck_assert_int_eq(x[t].failures, 0);
	}
	/* A new key, perhaps where a freed one was: its own ids. */
	key_block_id(a, "data", 4, id);
	key_free(a);
	tk_id_master(master, 33, &a, sa);
	key_block_id(a, "data", 4, id);
	crypto_auth_hmacsha256(want, (const uint8_t *)"data", 4, sa);
	ck_assert_mem_eq(id, want, sizeof(id));
	sodium_memzero(sa, sizeof(sa));
	sodium_memzero(sb, sizeof(sb));
	sodium_memzero(x, sizeof(x));
	key_free(a);
	key_free(b);
}
END_TEST

START_TEST(test_key_open_short)
{
	struct key *k = tk_key(27);
	uint8_t ct[KEY_SEAL_OVERHEAD + 4], out[4];

	key_seal(k, KEY_SUB_VALUE, NULL, 0, "abcd", 4, ct);
	ck_assert_int_eq(key_open(k, KEY_SUB_VALUE, NULL, 0, ct, 0, out),
			 -EUCLEAN);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, NULL, 0, ct, KEY_SEAL_OVERHEAD - 1, out),
	    -EUCLEAN);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, NULL, 0, ct, sizeof(ct) - 1, out),
	    -EUCLEAN);
	key_free(k);
}
END_TEST

START_TEST(test_key_open_wrong_ad)
{
	struct key *k = tk_key(28);
	uint8_t a[5 + KEY_SEAL_OVERHEAD], b[5 + KEY_SEAL_OVERHEAD], out[5];

	/* Two records' values swapped between their keys. */
	key_seal(k, KEY_SUB_VALUE, "inode/1", 7, "value", 5, a);
	key_seal(k, KEY_SUB_VALUE, "inode/2", 7, "value", 5, b);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "inode/2", 7, a, sizeof(a), out),
	    -EUCLEAN);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "inode/1", 7, b, sizeof(b), out),
	    -EUCLEAN);
	ck_assert_int_eq(key_open(k, KEY_SUB_VALUE, NULL, 0, a, sizeof(a), out),
			 -EUCLEAN);
	ck_assert_int_eq(
	    key_open(k, KEY_SUB_VALUE, "inode/1", 7, a, sizeof(a), out), 0);
	key_free(k);
}
END_TEST

START_TEST(test_key_open_wrong_sub)
{
	struct key *k = tk_key(29);
	uint8_t ct[5 + KEY_SEAL_OVERHEAD], out[5];

	key_seal(k, KEY_SUB_VALUE, NULL, 0, "value", 5, ct);
	for (int sub = KEY_SUB_BLOCK; sub < KEY_SUB_COUNT; sub++)
		ck_assert_int_eq(key_open(k, sub, NULL, 0, ct, sizeof(ct), out),
				 -EUCLEAN);
	key_free(k);
}
END_TEST

START_TEST(test_key_open_wrong_key)
{
	struct key *a = tk_key(30), *b = tk_key(31);
	uint8_t ct[5 + KEY_SEAL_OVERHEAD], out[5];

	key_seal(a, KEY_SUB_BLOCK, NULL, 0, "block", 5, ct);
	ck_assert_int_eq(
	    key_open(b, KEY_SUB_BLOCK, NULL, 0, ct, sizeof(ct), out), -EUCLEAN);
	key_free(a);
	key_free(b);
}
END_TEST

START_TEST(test_key_mac_mismatch)
{
	struct key *k = tk_key(32), *other = tk_key(33);
	uint8_t tag[KEY_MAC_BYTES];

	key_mac(k, "ad", 2, "value", 5, tag);
	ck_assert_int_eq(key_mac_verify(k, "ad", 2, "valuf", 5, tag), -EUCLEAN);
	ck_assert_int_eq(key_mac_verify(k, "ae", 2, "value", 5, tag), -EUCLEAN);
	ck_assert_int_eq(key_mac_verify(k, "ad", 2, "valu", 4, tag), -EUCLEAN);
	ck_assert_int_eq(key_mac_verify(other, "ad", 2, "value", 5, tag),
			 -EUCLEAN);
	tag[KEY_MAC_BYTES - 1] ^= 0x80;
	ck_assert_int_eq(key_mac_verify(k, "ad", 2, "value", 5, tag), -EUCLEAN);
	key_free(other);
	key_free(k);
}
END_TEST

START_TEST(test_key_verify_tampered)
{
	struct key *k = tk_key(34), *other = tk_key(35);
	uint8_t pk[KEY_PUBLIC_BYTES], opk[KEY_PUBLIC_BYTES];
	uint8_t sig[KEY_SIG_BYTES];

	key_public(k, pk);
	key_public(other, opk);
	key_sign(k, "message", 7, sig);
	ck_assert_int_eq(key_verify(pk, "messagf", 7, sig), -EUCLEAN);
	ck_assert_int_eq(key_verify(pk, "messag", 6, sig), -EUCLEAN);
	ck_assert_int_eq(key_verify(opk, "message", 7, sig), -EUCLEAN);
	for (size_t i = 0; i < sizeof(sig); i += 9) {
		sig[i] ^= 1;
		ck_assert_int_eq(key_verify(pk, "message", 7, sig), -EUCLEAN);
		sig[i] ^= 1;
	}
	ck_assert_int_eq(key_verify(pk, "message", 7, sig), 0);
	key_free(other);
	key_free(k);
}
END_TEST

Suite *key_suite(void);

Suite *key_suite(void)
{
	Suite *s = suite_create("key");
	TCase *tc;

	tc = tcase_create("core");
	tcase_set_timeout(tc, TK_TIMEOUT);
	tcase_add_test(tc, test_key_lib_init_idempotent);
	tcase_add_test(tc, test_key_derive_deterministic);
	tcase_add_test(tc, test_key_derive_differs_by_master);
	tcase_add_test(tc, test_key_derive_subkeys_independent);
	tcase_add_test(tc, test_key_random_distinct);
	tcase_add_test(tc, test_key_free_null);
	tcase_add_test(tc, test_key_slot_passphrase_roundtrip);
	tcase_add_test(tc, test_key_slot_passphrase_empty);
	tcase_add_test(tc, test_key_slot_keyfile_roundtrip);
	tcase_add_test(tc, test_key_slot_salted);
	tcase_add_test(tc, test_key_seal_roundtrip);
	tcase_add_test(tc, test_key_seal_nonce_random);
	tcase_add_test(tc, test_key_mac_verify);
	tcase_add_test(tc, test_key_name_hash);
	tcase_add_test(tc, test_key_block_id);
	tcase_add_test(tc, test_key_sign_verify);
	tcase_add_test(tc, test_key_hash_known_answer);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, TK_TIMEOUT);
	tcase_add_test(tc, test_key_seal_zero_length);
	tcase_add_test(tc, test_key_seal_large);
	tcase_add_test(tc, test_key_mac_boundary);
	tcase_add_test(tc, test_key_keyfile_min_length);
	tcase_add_test(tc, test_key_slot_cost_recorded);
	tcase_add_test(tc, test_key_slot_cost_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_set_timeout(tc, TK_TIMEOUT);
	tcase_add_test(tc, test_key_slot_wrong_passphrase);
	tcase_add_test(tc, test_key_slot_wrong_keyfile);
	tcase_add_test(tc, test_key_slot_wrong_kind);
	tcase_add_test(tc, test_key_slot_tampered_cost);
	tcase_add_test(tc, test_key_slot_tampered_body);
	tcase_add_test(tc, test_key_slot_malformed);
	tcase_add_test(tc, test_key_keyfile_short);
	tcase_add_test(tc, test_key_open_tampered);
	tcase_add_test(tc, test_key_open_split);
	tcase_add_test(tc, test_key_seal_matches_format);
	tcase_add_test(tc, test_key_block_id_matches_format);
	tcase_add_test(tc, test_key_open_short);
	tcase_add_test(tc, test_key_open_wrong_ad);
	tcase_add_test(tc, test_key_open_wrong_sub);
	tcase_add_test(tc, test_key_open_wrong_key);
	tcase_add_test(tc, test_key_mac_mismatch);
	tcase_add_test(tc, test_key_verify_tampered);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (key_lib_init() < 0)
		return EXIT_FAILURE;
	sr = srunner_create(key_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
