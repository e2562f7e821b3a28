/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * key.c - master key, key slots, derived sub-keys, AEAD, MACs and signatures
 *
 * A struct key is one sodium_malloc'd region (guard pages, mlocked) holding
 * the master key, every crypto_kdf sub-key and the Ed25519 key pair. It is
 * filled once by key_derive() and then made read-only with
 * sodium_mprotect_readonly(), so a stray write faults instead of silently
 * changing a key; that is also why sharing it between threads needs no lock.
 * key_free() goes through sodium_free(), which wipes it.
 *
 * Slots are parsed field by field from the documented big-endian layout in
 * key.h, never cast to a struct. Wrapping keys live on the stack only for
 * the duration of one seal or open and are wiped with sodium_memzero().
 *
 * The per-block functions allocate nothing, but for one OpenSSL cipher
 * context per thread when built with libcrypto.
 *
 * XChaCha20-Poly1305 is the IETF construction: the sub-key is HChaCha20 of
 * the key and the nonce's first 16 bytes, and the rest is ChaCha20-Poly1305
 * (RFC 8439) under that sub-key with the nonce 0^4 || nonce[16..24]. Built
 * with OpenSSL's libcrypto (configure's default when it is found), key_seal
 * and key_open compute HChaCha20 with libsodium and hand the ChaCha20-Poly1305
 * to libcrypto, whose vectorised code is twice as fast per byte on this
 * class of CPU (doc/DESIGN.md); the bytes are the same either way, so a
 * volume written by one build is read by the other. Block ids are
 * HMAC-SHA-256, computed by libcrypto too when it is there (with the CPU's
 * SHA extensions it hashes 1.7 times as fast as libsodium's keyed BLAKE2b,
 * which is what the ids were before format 2), else by libsodium's
 * portable HMAC-SHA-256 (a fifth of that speed). Everything else stays
 * with libsodium.
 */
#include "key.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#ifdef HAVE_OPENSSL
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#endif

#include "log.h"

/* crypto_kdf context: exactly crypto_kdf_CONTEXTBYTES (8) characters. */
static const char key_kdf_context[crypto_kdf_CONTEXTBYTES] = {
    'e', 'm', 'b', 'f', 's', '-', 'v', '1',
};

/* Slot field offsets, see the layout in key.h. */
#define KEY_SLOT_KIND	      0
#define KEY_SLOT_RSV1	      1
#define KEY_SLOT_RSV2	      2
#define KEY_SLOT_MEMLIMIT     4
#define KEY_SLOT_OPSLIMIT     8
#define KEY_SLOT_SALT	      16
#define KEY_SLOT_NONCE	      32
#define KEY_SLOT_SEALED	      56
#define KEY_SLOT_RSV3	      104
#define KEY_SLOT_SALT_BYTES   16
#define KEY_SLOT_SEALED_BYTES (KEY_BYTES + KEY_TAG_BYTES)
#define KEY_SLOT_RSV3_BYTES   (KEY_SLOT_BYTES - KEY_SLOT_RSV3)
#define KEY_SLOT_AD_BYTES     32

/* Minimum key file size: anything shorter cannot carry 256 bits. */
#define KEY_FILE_MIN_BYTES 32

/* Bounds a slot may claim before we refuse to run Argon2id with them. */
#define KEY_OPS_MIN    crypto_pwhash_argon2id_OPSLIMIT_MIN
#define KEY_OPS_MAX    crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE
#define KEY_MEMKIB_MIN (crypto_pwhash_argon2id_MEMLIMIT_MIN / 1024)
#define KEY_MEMKIB_MAX (crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE / 1024)

_Static_assert(crypto_kdf_KEYBYTES == KEY_BYTES, "kdf key size");
_Static_assert(crypto_kdf_BYTES_MIN <= KEY_BYTES &&
		   crypto_kdf_BYTES_MAX >= KEY_BYTES,
	       "kdf sub-key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == KEY_BYTES,
	       "aead key size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == KEY_NONCE_BYTES,
	       "aead nonce size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == KEY_TAG_BYTES,
	       "aead tag size");
_Static_assert(crypto_sign_SEEDBYTES == KEY_BYTES, "sign seed size");
_Static_assert(crypto_sign_PUBLICKEYBYTES == KEY_PUBLIC_BYTES, "pk size");
_Static_assert(crypto_sign_BYTES == KEY_SIG_BYTES, "signature size");
_Static_assert(crypto_pwhash_SALTBYTES == KEY_SLOT_SALT_BYTES, "salt size");
_Static_assert(KEY_SLOT_SALT_BYTES >= crypto_generichash_KEYBYTES_MIN,
	       "salt too short to key BLAKE2b");
_Static_assert(KEY_SLOT_NONCE + KEY_NONCE_BYTES == KEY_SLOT_SEALED &&
		   KEY_SLOT_SEALED + KEY_SLOT_SEALED_BYTES == KEY_SLOT_RSV3,
	       "slot layout");

/*
 * Only byte arrays: sodium_malloc() returns memory aligned to the end of
 * its page, so members needing more than byte alignment are not allowed.
 */
struct key {
	uint8_t master[KEY_BYTES];
	uint8_t sub[KEY_SUB_COUNT][KEY_BYTES]; /* sub[0] unused */
	uint8_t sign_pk[KEY_PUBLIC_BYTES];
	uint8_t sign_sk[crypto_sign_SECRETKEYBYTES];
	uint8_t serial[8]; /* unique in the process: names the key to caches */
};

static atomic_uint_least64_t key_serials;

int key_lib_init(void)
{
	/* sodium_init() is itself idempotent and thread-safe. */
	if (sodium_init() < 0)
		return -EIO;
	return 0;
}

static const uint8_t *key_subkey(const struct key *k, enum key_sub sub)
{
	assert(sub > 0 && sub < KEY_SUB_COUNT);
	return k->sub[sub];
}

/* Allocate an empty key in guarded memory; sodium_malloc needs sodium_init. */
static int key_alloc(struct key **out)
{
	struct key *k;
	int ret;

	*out = NULL;
	ret = key_lib_init();
	if (ret < 0)
		return ret;
	k = sodium_malloc(sizeof(*k));
	if (!k)
		return -ENOMEM;
	sodium_memzero(k, sizeof(*k));
	*out = k;
	return 0;
}

/* Fill everything from k->master, then seal the region read-only. */
static void key_derive(struct key *k)
{
	for (int i = 1; i < KEY_SUB_COUNT; i++)
		(void)crypto_kdf_derive_from_key(k->sub[i], KEY_BYTES,
						 (uint64_t)i, key_kdf_context,
						 k->master);
	(void)crypto_sign_seed_keypair(k->sign_pk, k->sign_sk,
				       k->sub[KEY_SUB_SIGN]);
	put_be64(k->serial, atomic_fetch_add(&key_serials, 1) + 1);
	(void)sodium_mprotect_readonly(k);
}

int key_new_random(struct key **out)
{
	struct key *k;
	int ret;

	*out = NULL;
	ret = key_alloc(&k);
	if (ret < 0)
		return ret;
	randombytes_buf(k->master, KEY_BYTES);
	key_derive(k);
	*out = k;
	return 0;
}

int key_new_master(const uint8_t master[static KEY_BYTES], struct key **out)
{
	struct key *k;
	int ret;

	*out = NULL;
	ret = key_alloc(&k);
	if (ret < 0)
		return ret;
	memcpy(k->master, master, KEY_BYTES);
	key_derive(k);
	*out = k;
	return 0;
}

void key_free(struct key *k)
{
	if (k)
		sodium_free(k);
}

/* Cost parameters of a new passphrase slot; -EINVAL for an unknown cost. */
static int key_cost_params(enum key_cost cost, unsigned long long *ops,
			   size_t *mem)
{
	switch (cost) {
	case KEY_COST_MIN:
		*ops = crypto_pwhash_argon2id_OPSLIMIT_MIN;
		*mem = crypto_pwhash_argon2id_MEMLIMIT_MIN;
		return 0;
	case KEY_COST_INTERACTIVE:
		*ops = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
		*mem = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
		return 0;
	case KEY_COST_MODERATE:
		*ops = crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
		*mem = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
		return 0;
	}
	return -EINVAL;
}

/* Argon2id fails only for want of memory once the parameters are in range. */
static int key_wrap_passphrase(const char *pass, size_t len,
			       const uint8_t salt[static KEY_SLOT_SALT_BYTES],
			       unsigned long long ops, size_t mem,
			       uint8_t wrap[static KEY_BYTES])
{
	if (crypto_pwhash(wrap, KEY_BYTES, pass, len, salt, ops, mem,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;
	return 0;
}

/*
 * The salt keys BLAKE2b rather than being hashed with the data, so the
 * wrapping key is a PRF of the file under a per-slot key.
 */
static void key_wrap_keyfile(const uint8_t *data, size_t len,
			     const uint8_t salt[static KEY_SLOT_SALT_BYTES],
			     uint8_t wrap[static KEY_BYTES])
{
	(void)crypto_generichash(wrap, KEY_BYTES, data, len, salt,
				 KEY_SLOT_SALT_BYTES);
}

/* Lay out a slot header with a fresh salt (nonce and seal come later). */
static void key_slot_header(uint8_t slot[static KEY_SLOT_BYTES],
			    enum key_slot_kind kind, uint32_t memkib,
			    uint64_t ops)
{
	memset(slot, 0, KEY_SLOT_BYTES);
	slot[KEY_SLOT_KIND] = (uint8_t)kind;
	put_be32(slot + KEY_SLOT_MEMLIMIT, memkib);
	put_be64(slot + KEY_SLOT_OPSLIMIT, ops);
	randombytes_buf(slot + KEY_SLOT_SALT, KEY_SLOT_SALT_BYTES);
}

/* Seal the master key into the slot; the AD is the slot's first 32 bytes. */
static void key_slot_wrap(const struct key *k,
			  uint8_t slot[static KEY_SLOT_BYTES],
			  const uint8_t wrap[static KEY_BYTES])
{
	randombytes_buf(slot + KEY_SLOT_NONCE, KEY_NONCE_BYTES);
	(void)crypto_aead_xchacha20poly1305_ietf_encrypt(
	    slot + KEY_SLOT_SEALED, NULL, k->master, KEY_BYTES, slot,
	    KEY_SLOT_AD_BYTES, NULL, slot + KEY_SLOT_NONCE, wrap);
}

int key_slot_seal_passphrase(const struct key *k, const char *pass, size_t len,
			     enum key_cost cost,
			     uint8_t slot[static KEY_SLOT_BYTES])
{
	uint8_t buf[KEY_SLOT_BYTES];
	uint8_t wrap[KEY_BYTES];
	unsigned long long ops;
	size_t mem;
	int ret;

	ret = key_cost_params(cost, &ops, &mem);
	if (ret < 0)
		return ret;
	key_slot_header(buf, KEY_SLOT_PASSPHRASE, (uint32_t)(mem / 1024), ops);
	ret =
	    key_wrap_passphrase(pass, len, buf + KEY_SLOT_SALT, ops, mem, wrap);
	if (ret < 0)
		goto out;
	key_slot_wrap(k, buf, wrap);
	memcpy(slot, buf, KEY_SLOT_BYTES);
	ret = 0;
out:
	sodium_memzero(wrap, sizeof(wrap));
	return ret;
}

int key_slot_seal_keyfile(const struct key *k, const uint8_t *data, size_t len,
			  uint8_t slot[static KEY_SLOT_BYTES])
{
	uint8_t buf[KEY_SLOT_BYTES];
	uint8_t wrap[KEY_BYTES];

	if (len < KEY_FILE_MIN_BYTES)
		return -EINVAL;
	key_slot_header(buf, KEY_SLOT_KEYFILE, 0, 0);
	key_wrap_keyfile(data, len, buf + KEY_SLOT_SALT, wrap);
	key_slot_wrap(k, buf, wrap);
	memcpy(slot, buf, KEY_SLOT_BYTES);
	sodium_memzero(wrap, sizeof(wrap));
	return 0;
}

/*
 * Structural checks shared by both kinds: an unknown kind or non-zero
 * reserved bytes is a malformed slot (-EUCLEAN); a well-formed slot of
 * another kind, or an empty one, simply is not ours (-EKEYREJECTED).
 */
static int key_slot_check(const uint8_t slot[static KEY_SLOT_BYTES],
			  enum key_slot_kind want)
{
	uint8_t kind = slot[KEY_SLOT_KIND];

	if (kind != KEY_SLOT_EMPTY && kind != KEY_SLOT_PASSPHRASE &&
	    kind != KEY_SLOT_KEYFILE) {
		log_dbg(LOG_DBG_KEY, "key slot has unknown kind %u", kind);
		return -EUCLEAN;
	}
	if (slot[KEY_SLOT_RSV1] != 0 || get_be16(slot + KEY_SLOT_RSV2) != 0 ||
	    !sodium_is_zero(slot + KEY_SLOT_RSV3, KEY_SLOT_RSV3_BYTES)) {
		log_dbg(LOG_DBG_KEY, "key slot has non-zero reserved bytes");
		return -EUCLEAN;
	}
	if (kind != want)
		return -EKEYREJECTED;
	return 0;
}

/* Decrypt the master key straight into guarded memory and derive. */
static int key_slot_unwrap(const uint8_t slot[static KEY_SLOT_BYTES],
			   const uint8_t wrap[static KEY_BYTES],
			   struct key **out)
{
	struct key *k = NULL;
	int ret;

	ret = key_alloc(&k);
	if (ret < 0)
		goto out;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		k->master, NULL, NULL, slot + KEY_SLOT_SEALED,
		KEY_SLOT_SEALED_BYTES, slot, KEY_SLOT_AD_BYTES,
		slot + KEY_SLOT_NONCE, wrap) != 0) {
		ret = -EKEYREJECTED;
		goto out;
	}
	key_derive(k);
	*out = k;
	k = NULL;
	ret = 0;
out:
	key_free(k);
	return ret;
}

int key_slot_open_passphrase(const uint8_t slot[static KEY_SLOT_BYTES],
			     const char *pass, size_t len, struct key **out)
{
	uint8_t wrap[KEY_BYTES];
	uint64_t ops;
	uint32_t memkib;
	int ret;

	*out = NULL;
	ret = key_slot_check(slot, KEY_SLOT_PASSPHRASE);
	if (ret < 0)
		return ret;
	memkib = get_be32(slot + KEY_SLOT_MEMLIMIT);
	ops = get_be64(slot + KEY_SLOT_OPSLIMIT);
	/* Refuse before Argon2id: a forged slot must not cost a GiB-hour. */
	if (ops < KEY_OPS_MIN || ops > KEY_OPS_MAX || memkib < KEY_MEMKIB_MIN ||
	    memkib > KEY_MEMKIB_MAX) {
		log_dbg(LOG_DBG_KEY,
			"key slot has out-of-range cost: ops %llu, mem %u KiB",
			(unsigned long long)ops, memkib);
		return -EUCLEAN;
	}
	ret = key_wrap_passphrase(pass, len, slot + KEY_SLOT_SALT, ops,
				  (size_t)memkib * 1024, wrap);
	if (ret < 0)
		goto out;
	ret = key_slot_unwrap(slot, wrap, out);
out:
	sodium_memzero(wrap, sizeof(wrap));
	return ret;
}

int key_slot_open_keyfile(const uint8_t slot[static KEY_SLOT_BYTES],
			  const uint8_t *data, size_t len, struct key **out)
{
	uint8_t wrap[KEY_BYTES];
	int ret;

	*out = NULL;
	if (len < KEY_FILE_MIN_BYTES)
		return -EINVAL;
	ret = key_slot_check(slot, KEY_SLOT_KEYFILE);
	if (ret < 0)
		return ret;
	if (get_be32(slot + KEY_SLOT_MEMLIMIT) != 0 ||
	    get_be64(slot + KEY_SLOT_OPSLIMIT) != 0) {
		log_dbg(LOG_DBG_KEY, "key file slot has a non-zero cost");
		return -EUCLEAN;
	}
	key_wrap_keyfile(data, len, slot + KEY_SLOT_SALT, wrap);
	ret = key_slot_unwrap(slot, wrap, out);
	sodium_memzero(wrap, sizeof(wrap));
	return ret;
}

#ifdef HAVE_OPENSSL
/*
 * The cipher is fetched once and each thread keeps one context bound to
 * it: OpenSSL 3 looks a cipher up under a global lock, and the pool's
 * threads fetching it for every block ran 5% slower than libsodium alone
 * on 4 KiB files. A context keeps the last HChaCha20 sub-key it was given,
 * which opens only the one value sealed under that nonce.
 */
static pthread_once_t key_ossl_once = PTHREAD_ONCE_INIT;
static pthread_key_t key_ossl_tls;
static EVP_CIPHER *key_ossl_cipher;
static bool key_ossl_ok;
static pthread_key_t key_ossl_mac_tls;
static EVP_MAC *key_ossl_hmac;
static bool key_ossl_mac_ok;

/*
 * A thread's HMAC context holds the block-id key of the last volume it
 * hashed for (its padded states), named by the key's serial: a context is
 * keyed again when another key comes, never used with a stale one.
 */
struct key_ossl_mac {
	EVP_MAC_CTX *c;
	uint64_t serial; /* 0: not keyed */
};

static void key_ossl_ctx_free(void *c)
{
	EVP_CIPHER_CTX_free(c);
}

static void key_ossl_mac_free(void *arg)
{
	struct key_ossl_mac *m = arg;

	EVP_MAC_CTX_free(m->c);
	free(m);
}

static void key_ossl_init(void)
{
	key_ossl_cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	if (key_ossl_cipher)
		key_ossl_ok = pthread_key_create(&key_ossl_tls,
						 key_ossl_ctx_free) == 0;
	key_ossl_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (key_ossl_hmac)
		key_ossl_mac_ok = pthread_key_create(&key_ossl_mac_tls,
						     key_ossl_mac_free) == 0;
}

/* This thread's HMAC context, keyed for k's block ids; NULL: libsodium. */
static EVP_MAC_CTX *key_ossl_mac(const struct key *k)
{
	uint64_t serial = get_be64(k->serial);
	struct key_ossl_mac *m;

	(void)pthread_once(&key_ossl_once, key_ossl_init);
	if (!key_ossl_mac_ok)
		return NULL;
	m = pthread_getspecific(key_ossl_mac_tls);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return NULL;
		m->c = EVP_MAC_CTX_new(key_ossl_hmac);
		if (!m->c || pthread_setspecific(key_ossl_mac_tls, m) != 0) {
			EVP_MAC_CTX_free(m->c);
			free(m);
			return NULL;
		}
	}
	if (m->serial == serial)
		return EVP_MAC_init(m->c, NULL, 0, NULL) == 1 ? m->c : NULL;
	{
		static char digest[] = "SHA256"; /* the API takes char * */
		OSSL_PARAM p[] = {
		    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0),
		    OSSL_PARAM_construct_end(),
		};

		m->serial = 0;
		if (EVP_MAC_init(m->c, key_subkey(k, KEY_SUB_BLOCK_ID),
				 KEY_BYTES, p) != 1)
			return NULL;
	}
	m->serial = serial;
	return m->c;
}

/* HMAC-SHA-256 through libcrypto: 0, or -1 (then libsodium does it). */
static int key_block_id_ossl(const struct key *k, const void *data,
			     size_t len, uint8_t id[static KEY_ID_BYTES])
{
	EVP_MAC_CTX *c = key_ossl_mac(k);
	size_t outl = 0;

	if (!c)
		return -1;
	if (EVP_MAC_update(c, data, len) != 1 ||
	    EVP_MAC_final(c, id, &outl, KEY_ID_BYTES) != 1 ||
	    outl != KEY_ID_BYTES)
		return -1;
	return 0;
}

/* This thread's context, or NULL (then libsodium does the work). */
static EVP_CIPHER_CTX *key_ossl_ctx(void)
{
	EVP_CIPHER_CTX *c;

	(void)pthread_once(&key_ossl_once, key_ossl_init);
	if (!key_ossl_ok)
		return NULL;
	c = pthread_getspecific(key_ossl_tls);
	if (c)
		return c;
	c = EVP_CIPHER_CTX_new();
	if (!c)
		return NULL;
	if (EVP_CipherInit_ex(c, key_ossl_cipher, NULL, NULL, NULL, 1) != 1 ||
	    pthread_setspecific(key_ossl_tls, c) != 0) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	return c;
}

/*
 * The RFC 8439 half of XChaCha20-Poly1305 in libcrypto. Returns 1 when the
 * bytes were sealed (or opened and authenticated), 0 when the tag did not
 * match, -1 when libcrypto could not do it (no memory): the caller then
 * falls back to libsodium, which computes the same bytes (also for
 * small values, see KEY_BULK_MIN). With split (opens only), the plaintext
 * goes to split->head and then where split->place says (out is unused);
 * unless 1 is returned, neither buffer keeps any of it.
 */
static int key_aead_ossl(bool seal, const uint8_t key[static KEY_BYTES],
			 const uint8_t nonce[static KEY_NONCE_BYTES],
			 const void *ad, size_t adlen, const uint8_t *in,
			 size_t len, uint8_t *out,
			 uint8_t tag[static KEY_TAG_BYTES],
			 const struct key_split *split)
{
	uint8_t sub[KEY_BYTES], n12[12] = {0}, *rest = NULL;
	EVP_CIPHER_CTX *c;
	size_t first = split ? split->headlen : len, whole = len;
	int n, ret = -1;

	if (len < KEY_BULK_MIN || len > INT_MAX / 2 || adlen > INT_MAX / 2 ||
	    first > len)
		return -1;
	c = key_ossl_ctx();
	if (!c)
		return -1;
	(void)crypto_core_hchacha20(sub, nonce, key, NULL);
	memcpy(n12 + 4, nonce + 16, 8);
	if (EVP_CipherInit_ex(c, NULL, NULL, sub, n12, seal ? 1 : 0) != 1)
		goto out;
	if (!seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG,
					 KEY_TAG_BYTES, tag) != 1)
		goto out;
	if (adlen && EVP_CipherUpdate(c, NULL, &n, ad, (int)adlen) != 1)
		goto out;
	if (EVP_CipherUpdate(c, split ? split->head : out, &n, in,
			     (int)first) != 1 || (size_t)n != first)
		goto out;
	if (split) {
		/* The stream cipher hands out every byte at once. */
		out = rest = split->place(split->arg, split->head);
		if (EVP_CipherUpdate(c, out, &n, in + first,
				     (int)(len - first)) != 1 ||
		    (size_t)n != len - first)
			goto out;
		len -= first;
	}
	if (EVP_CipherFinal_ex(c, out + len, &n) != 1) {
		ret = seal ? -1 : 0;
		goto out;
	}
	if (seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG,
					KEY_TAG_BYTES, tag) != 1)
		goto out;
	ret = 1;
out:
	/* An open that did not prove its bytes leaves none of them. */
	if (split && ret != 1) {
		sodium_memzero(split->head, first);
		if (rest)
			sodium_memzero(rest, whole - first);
	}
	sodium_memzero(sub, sizeof(sub));
	return ret;
}

#endif

void key_seal(const struct key *k, enum key_sub sub, const void *ad,
	      size_t adlen, const void *pt, size_t ptlen, uint8_t *out)
{
	/* Random 192-bit nonces: no counter state to keep or lose. */
	randombytes_buf(out, KEY_NONCE_BYTES);
#ifdef HAVE_OPENSSL
	if (key_aead_ossl(true, key_subkey(k, sub), out, ad, adlen, pt, ptlen,
			  out + KEY_NONCE_BYTES,
			  out + KEY_NONCE_BYTES + ptlen, NULL) == 1)
		return;
#endif
	(void)crypto_aead_xchacha20poly1305_ietf_encrypt(
	    out + KEY_NONCE_BYTES, NULL, pt, ptlen, ad, adlen, NULL, out,
	    key_subkey(k, sub));
}

int key_open(const struct key *k, enum key_sub sub, const void *ad,
	     size_t adlen, const uint8_t *ct, size_t ctlen, uint8_t *out)
{
	if (ctlen < KEY_SEAL_OVERHEAD)
		return -EUCLEAN;
#ifdef HAVE_OPENSSL
	{
		size_t len = ctlen - KEY_SEAL_OVERHEAD;
		uint8_t tag[KEY_TAG_BYTES];
		int r;

		/* libcrypto decrypts before it checks: wipe on a bad tag. */
		memcpy(tag, ct + KEY_NONCE_BYTES + len, KEY_TAG_BYTES);
		r = key_aead_ossl(false, key_subkey(k, sub), ct, ad, adlen,
				  ct + KEY_NONCE_BYTES, len, out, tag, NULL);
		if (r == 0) {
			sodium_memzero(out, len);
			return -EUCLEAN;
		}
		if (r == 1)
			return 0;
	}
#endif
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		out, NULL, NULL, ct + KEY_NONCE_BYTES, ctlen - KEY_NONCE_BYTES,
		ad, adlen, ct, key_subkey(k, sub)) != 0)
		return -EUCLEAN;
	return 0;
}

int key_open_split(const struct key *k, enum key_sub sub, const void *ad,
		   size_t adlen, const uint8_t *ct, size_t ctlen,
		   const struct key_split *split, uint8_t *scratch)
{
	size_t len = ctlen - KEY_SEAL_OVERHEAD;
	uint8_t *rest;
	int ret;

	if (ctlen < KEY_SEAL_OVERHEAD || split->headlen > len)
		return -EUCLEAN;
#ifdef HAVE_OPENSSL
	{
		uint8_t tag[KEY_TAG_BYTES];
		int r;

		/* Wiped by key_aead_ossl unless it returns 1. */
		memcpy(tag, ct + KEY_NONCE_BYTES + len, KEY_TAG_BYTES);
		r = key_aead_ossl(false, key_subkey(k, sub), ct, ad, adlen,
				  ct + KEY_NONCE_BYTES, len, NULL, tag, split);
		if (r == 1)
			return 0;
		if (r == 0)
			return -EUCLEAN;
	}
#endif
	ret = key_open(k, sub, ad, adlen, ct, ctlen, scratch);
	if (ret < 0)
		return ret;
	memcpy(split->head, scratch, split->headlen);
	rest = split->place(split->arg, split->head);
	if (rest != scratch + split->headlen)
		memcpy(rest, scratch + split->headlen, len - split->headlen);
	return 0;
}

bool key_bulk_libcrypto(void)
{
#ifdef HAVE_OPENSSL
	/* key_ossl_ctx() runs the initialisation that sets key_ossl_mac_ok. */
	return key_ossl_ctx() != NULL && key_ossl_mac_ok;
#else
	return false;
#endif
}

void key_mac(const struct key *k, const void *ad, size_t adlen, const void *m,
	     size_t mlen, uint8_t tag[static KEY_MAC_BYTES])
{
	crypto_generichash_state st;
	uint8_t be_adlen[8];

	/* The length prefix fixes the (ad, m) boundary. */
	put_be64(be_adlen, adlen);
	(void)crypto_generichash_init(&st, key_subkey(k, KEY_SUB_MAC),
				      KEY_BYTES, KEY_MAC_BYTES);
	(void)crypto_generichash_update(&st, be_adlen, sizeof(be_adlen));
	(void)crypto_generichash_update(&st, ad, adlen);
	(void)crypto_generichash_update(&st, m, mlen);
	(void)crypto_generichash_final(&st, tag, KEY_MAC_BYTES);
	sodium_memzero(&st, sizeof(st));
}

int key_mac_verify(const struct key *k, const void *ad, size_t adlen,
		   const void *m, size_t mlen,
		   const uint8_t tag[static KEY_MAC_BYTES])
{
	uint8_t want[KEY_MAC_BYTES];

	key_mac(k, ad, adlen, m, mlen, want);
	if (sodium_memcmp(want, tag, KEY_MAC_BYTES) != 0)
		return -EUCLEAN;
	return 0;
}

_Static_assert(crypto_auth_hmacsha256_BYTES == KEY_ID_BYTES &&
		   crypto_auth_hmacsha256_KEYBYTES == KEY_BYTES,
	       "block id: HMAC-SHA-256 under a 32-byte sub-key");

void key_block_id(const struct key *k, const void *data, size_t len,
		  uint8_t id[static KEY_ID_BYTES])
{
#ifdef HAVE_OPENSSL
	if (key_block_id_ossl(k, data, len, id) == 0)
		return;
#endif
	(void)crypto_auth_hmacsha256(id, data, len,
				     key_subkey(k, KEY_SUB_BLOCK_ID));
}

void key_name_hash(const struct key *k, uint64_t parent, const char *name,
		   size_t len, uint8_t h[static KEY_NAME_HASH_BYTES])
{
	crypto_generichash_state st;
	uint8_t be_parent[8];

	put_be64(be_parent, parent);
	(void)crypto_generichash_init(&st, key_subkey(k, KEY_SUB_NAME),
				      KEY_BYTES, KEY_NAME_HASH_BYTES);
	(void)crypto_generichash_update(&st, be_parent, sizeof(be_parent));
	(void)crypto_generichash_update(&st, (const uint8_t *)name, len);
	(void)crypto_generichash_final(&st, h, KEY_NAME_HASH_BYTES);
	sodium_memzero(&st, sizeof(st));
}

void key_public(const struct key *k, uint8_t pk[static KEY_PUBLIC_BYTES])
{
	memcpy(pk, k->sign_pk, KEY_PUBLIC_BYTES);
}

void key_sign(const struct key *k, const void *m, size_t mlen,
	      uint8_t sig[static KEY_SIG_BYTES])
{
	(void)crypto_sign_detached(sig, NULL, m, mlen, k->sign_sk);
}

int key_verify(const uint8_t pk[static KEY_PUBLIC_BYTES], const void *m,
	       size_t mlen, const uint8_t sig[static KEY_SIG_BYTES])
{
	if (crypto_sign_verify_detached(sig, m, mlen, pk) != 0)
		return -EUCLEAN;
	return 0;
}

void key_hash(const void *m, size_t mlen, uint8_t h[static KEY_HASH_BYTES])
{
	(void)crypto_generichash(h, KEY_HASH_BYTES, m, mlen, NULL, 0);
}
