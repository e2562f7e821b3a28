/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * key.h - master key, key slots, derived sub-keys, AEAD, MACs and signatures
 *
 * A volume has one random 32-byte master key. It is stored only wrapped in
 * key slots: each slot is the master key sealed (XChaCha20-Poly1305) under a
 * wrapping key derived from a passphrase (Argon2id) or from a key file
 * (keyed BLAKE2b of the file's bytes). Every other key is derived from the
 * master with crypto_kdf: value sealing, block sealing, block ids, name
 * hashes, MACs of clear values, and the Ed25519 signing seed. All key
 * material lives in sodium_malloc'd, mlocked memory and is wiped on free,
 * with two exceptions in a build with libcrypto, each in a thread's own
 * context until the thread ends: the HChaCha20 sub-key of the last value
 * the thread sealed or opened, and the block-id sub-key (libcrypto's HMAC
 * keeps a copy of it and its padded states), which lets one compute ids,
 * not read data.
 *
 * All functions are thread-safe on a shared struct key (it is read-only
 * after construction).
 */
#ifndef EMBASSYFS_KEY_H
#define EMBASSYFS_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"

#define KEY_BYTES 32
#define KEY_ID_BYTES 32		/* block id: HMAC-SHA-256 */
#define KEY_NAME_HASH_BYTES 16	/* keyed hash of a directory entry name */
#define KEY_MAC_BYTES 16	/* tag of an authenticated clear value */
#define KEY_NONCE_BYTES 24
#define KEY_TAG_BYTES 16
#define KEY_SEAL_OVERHEAD (KEY_NONCE_BYTES + KEY_TAG_BYTES)
#define KEY_PUBLIC_BYTES 32	/* Ed25519 public key */
#define KEY_SIG_BYTES 64	/* Ed25519 signature */
#define KEY_HASH_BYTES 32	/* unkeyed BLAKE2b-256 (journal chain) */

/*
 * A key slot as stored in the volume header: 128 bytes.
 *   0  u8   kind (KEY_SLOT_PASSPHRASE, KEY_SLOT_KEYFILE; 0 = empty)
 *   1  u8   reserved (0)
 *   2  u16  reserved (0)
 *   4  u32  Argon2id memlimit in KiB (0 for key files)
 *   8  u64  Argon2id opslimit (0 for key files)
 *  16  16   salt
 *  32  24   nonce
 *  56  48   sealed master key (32 + 16 tag)
 * 104  24   reserved (0)
 * All integers big-endian. The AD of the seal is the first 32 bytes of the
 * slot, so its cost parameters cannot be changed without detection.
 */
#define KEY_SLOT_BYTES 128

enum key_slot_kind {
	KEY_SLOT_EMPTY = 0,
	KEY_SLOT_PASSPHRASE = 1,
	KEY_SLOT_KEYFILE = 2,
};

/* Argon2id cost of a new passphrase slot. */
enum key_cost {
	KEY_COST_MIN,		/* tests only: the smallest cost libsodium allows */
	KEY_COST_INTERACTIVE,	/* about 70 ms here */
	KEY_COST_MODERATE,	/* about 460 ms here: the default */
};

/* Sub-keys, derived with crypto_kdf from the master key. */
enum key_sub {
	KEY_SUB_VALUE = 1,	/* AEAD of metadata values */
	KEY_SUB_BLOCK = 2,	/* AEAD of block contents */
	KEY_SUB_BLOCK_ID = 3,	/* keyed hash: plaintext block -> id */
	KEY_SUB_NAME = 4,	/* keyed hash: (parent, name) -> dirent key */
	KEY_SUB_MAC = 5,	/* MAC of values stored in the clear */
	KEY_SUB_SIGN = 6,	/* Ed25519 seed */
	KEY_SUB_COUNT,
};

struct key;

/* Create a new random master key. -ENOMEM. */
int key_new_random(struct key **out) MUST_CHECK;
/* Build a key from known master bytes (tests, promotion). -ENOMEM. */
int key_new_master(const uint8_t master[static KEY_BYTES], struct key **out) MUST_CHECK;
/* Wipe and free; NULL is fine. */
void key_free(struct key *k);

/*
 * Wrap the master key into a slot with a passphrase. -EINVAL if the cost
 * is unknown, -ENOMEM if Argon2id cannot get its memory.
 */
int key_slot_seal_passphrase(const struct key *k, const char *pass, size_t len,
			     enum key_cost cost,
			     uint8_t slot[static KEY_SLOT_BYTES]) MUST_CHECK;
/* Wrap the master key into a slot with the bytes of a key file (>= 32 bytes). -EINVAL if shorter. */
int key_slot_seal_keyfile(const struct key *k, const uint8_t *data, size_t len,
			  uint8_t slot[static KEY_SLOT_BYTES]) MUST_CHECK;
/*
 * Unwrap a slot. -EKEYREJECTED if the passphrase or key file does not
 * open it (or the slot kind does not match), -EUCLEAN if the slot is
 * malformed, -ENOMEM.
 */
int key_slot_open_passphrase(const uint8_t slot[static KEY_SLOT_BYTES],
			     const char *pass, size_t len, struct key **out) MUST_CHECK;
int key_slot_open_keyfile(const uint8_t slot[static KEY_SLOT_BYTES],
			  const uint8_t *data, size_t len, struct key **out) MUST_CHECK;

/*
 * Seal ptlen bytes of pt into out (ptlen + KEY_SEAL_OVERHEAD bytes:
 * nonce || ciphertext || tag) with sub-key `sub`, binding `ad`.
 * Random 192-bit nonce. Cannot fail for sub in range.
 */
void key_seal(const struct key *k, enum key_sub sub, const void *ad,
	      size_t adlen, const void *pt, size_t ptlen, uint8_t *out);
/* Open a sealed value into out (ctlen - KEY_SEAL_OVERHEAD bytes). -EUCLEAN on a bad tag or short input. */
int key_open(const struct key *k, enum key_sub sub, const void *ad, size_t adlen,
	     const uint8_t *ct, size_t ctlen, uint8_t *out) MUST_CHECK;
/*
 * key_open for a value whose first headlen plaintext bytes say where the
 * rest belongs: they are decrypted into head, then place(arg, head) returns
 * the buffer for the other ctlen - KEY_SEAL_OVERHEAD - headlen bytes. This
 * saves a copy when the rest can go straight to its final place. Nothing is
 * authentic before the call returns 0: place must only choose a buffer, and
 * on -EUCLEAN neither buffer holds plaintext. scratch (ctlen -
 * KEY_SEAL_OVERHEAD bytes) is used when libcrypto does not do the work;
 * place may return scratch + headlen.
 */
struct key_split {
	uint8_t *head;
	size_t headlen;
	uint8_t *(*place)(void *arg, const uint8_t *head);
	void *arg;
};
int key_open_split(const struct key *k, enum key_sub sub, const void *ad,
		   size_t adlen, const uint8_t *ct, size_t ctlen,
		   const struct key_split *split, uint8_t *scratch) MUST_CHECK;

/*
 * Values of at least KEY_BULK_MIN bytes are sealed and opened through
 * OpenSSL's libcrypto when the build has it (same bytes as libsodium's);
 * key_bulk_libcrypto() says whether this thread does so. Below it,
 * libcrypto's per-call set-up costs more than its faster loop saves: with
 * a context kept per thread, 64 bytes take 0.5-0.8 us against libsodium's
 * 0.4-0.5, the two break even near 768 bytes, and 2 KiB take 1.0-1.2 us
 * against 1.7-2.0.
 */
#define KEY_BULK_MIN 1024
bool key_bulk_libcrypto(void);

/* MAC of (ad, m) under KEY_SUB_MAC. */
void key_mac(const struct key *k, const void *ad, size_t adlen, const void *m,
	     size_t mlen, uint8_t tag[static KEY_MAC_BYTES]);
/* Constant-time check. -EUCLEAN on mismatch. */
int key_mac_verify(const struct key *k, const void *ad, size_t adlen,
		   const void *m, size_t mlen,
		   const uint8_t tag[static KEY_MAC_BYTES]) MUST_CHECK;

/*
 * Block id: HMAC-SHA-256 of the plaintext under KEY_SUB_BLOCK_ID, through
 * libcrypto where the build has it (SHA-NI), else through libsodium; the
 * same bytes either way.
 */
void key_block_id(const struct key *k, const void *data, size_t len,
		  uint8_t id[static KEY_ID_BYTES]);
/* Keyed hash of (parent inode, name) under KEY_SUB_NAME. */
void key_name_hash(const struct key *k, uint64_t parent, const char *name,
		   size_t len, uint8_t h[static KEY_NAME_HASH_BYTES]);

/* The volume's Ed25519 public key. */
void key_public(const struct key *k, uint8_t pk[static KEY_PUBLIC_BYTES]);
/* Sign m with the volume's Ed25519 secret key. */
void key_sign(const struct key *k, const void *m, size_t mlen,
	      uint8_t sig[static KEY_SIG_BYTES]);
/* Verify a signature without any secret. -EUCLEAN if it does not verify. */
int key_verify(const uint8_t pk[static KEY_PUBLIC_BYTES], const void *m,
	       size_t mlen, const uint8_t sig[static KEY_SIG_BYTES]) MUST_CHECK;

/* Unkeyed BLAKE2b-256 (journal hash chain; verifiable without the key). */
void key_hash(const void *m, size_t mlen, uint8_t h[static KEY_HASH_BYTES]);

/* Initialise libsodium once per process. -EIO if it cannot. Thread-safe. */
int key_lib_init(void) MUST_CHECK;

#endif
