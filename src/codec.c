/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * codec.c - plaintext block <-> (keyed id, sealed bytes), and back
 *
 * The codec owns a pool of work contexts, each holding a zstd compression
 * context, a decompression context and one scratch buffer. A call takes a
 * context from the free list under the mutex, works without the lock, and
 * puts it back. The pool grows to the highest concurrency seen and is only
 * released by codec_free(), so in steady state sealing and opening allocate
 * nothing. zstd contexts and scratch space are created lazily, so a codec
 * that never compresses never creates a ZSTD_CCtx, and a scratch buffer
 * grows only as large as the largest block it has carried.
 *
 * Layout of the sealed bytes is in codec.h. The scratch buffer holds
 * hdr || payload, the AEAD plaintext: key_seal() and key_open() take one
 * contiguous buffer, so a stored (uncompressed) block costs one memcpy.
 */
#include "codec.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <zstd.h>

#include "log.h"

struct codec_ctx {
	struct codec_ctx *next;
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	uint8_t *buf;
	size_t bufcap;
};

struct codec {
	const struct key *k;
	enum codec_compress compress;
	int level;
	pthread_mutex_t lock;
	struct codec_ctx *free_list;
};

int codec_new(const struct key *k, enum codec_compress compress, int level,
	      struct codec **out)
{
	struct codec *c;

	*out = NULL;
	if (compress != CODEC_COMPRESS_NONE && compress != CODEC_COMPRESS_ZSTD)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return -ENOMEM;
	}
	c->k = k;
	c->compress = compress;
	c->level = level;
	*out = c;
	return 0;
}

static void codec_ctx_free(struct codec_ctx *x)
{
	if (!x)
		return;
	ZSTD_freeCCtx(x->cctx);
	ZSTD_freeDCtx(x->dctx);
	/* Scratch held plaintext. */
	if (x->buf)
		sodium_memzero(x->buf, x->bufcap);
	free(x->buf);
	free(x);
}

void codec_free(struct codec *c)
{
	struct codec_ctx *x;

	if (!c)
		return;
	while ((x = c->free_list)) {
		c->free_list = x->next;
		codec_ctx_free(x);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int codec_ctx_get(struct codec *c, struct codec_ctx **out)
{
	struct codec_ctx *x;

	pthread_mutex_lock(&c->lock);
	x = c->free_list;
	if (x)
		c->free_list = x->next;
	pthread_mutex_unlock(&c->lock);
	if (!x) {
		x = calloc(1, sizeof(*x));
		if (!x)
			return -ENOMEM;
	}
	x->next = NULL;
	*out = x;
	return 0;
}

static void codec_ctx_put(struct codec *c, struct codec_ctx *x)
{
	pthread_mutex_lock(&c->lock);
	x->next = c->free_list;
	c->free_list = x;
	pthread_mutex_unlock(&c->lock);
}

/* Make sure the scratch buffer holds at least n bytes. */
static int codec_ctx_reserve(struct codec_ctx *x, size_t n)
{
	uint8_t *buf;

	if (x->bufcap >= n)
		return 0;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	if (x->buf)
		sodium_memzero(x->buf, x->bufcap);
	free(x->buf);
	x->buf = buf;
	x->bufcap = n;
	return 0;
}

void codec_block_id(const struct codec *c, const void *plain, size_t len,
		    uint8_t id[static KEY_ID_BYTES])
{
	key_block_id(c->k, plain, len, id);
}

/*
 * How much is there for zstd to gain in plain? Tried on random data
 * (encrypted or already compressed), zstd costs about as much as the
 * block's encryption, and on data that is mostly random (database pages
 * holding keys, hashes or binary columns) level 1 runs at a third of the
 * speed of zstd's fast mode for 2% more ratio; this look costs a fifth of
 * an encryption. It samples a ninth of the bytes and estimates the
 * collision probability of the byte distribution without bias: sum c(c-1)
 * / (N(N-1)) is 1/256 for uniform bytes. At most 2^-7.5 means at least 7.5
 * bits of entropy per byte, where an order-0 coder saves less than 1/16:
 * not tried. At most 2^-6 (6 bits) is mostly random: the fast mode first
 * (codec_try_compress). Text and structured records measure 2^-5 and
 * above. Repetition of a high-entropy pattern inside a block escapes this
 * look; dedup still catches whole repeated blocks.
 */
#define CODEC_SAMPLE_MIN 4096	/* smaller blocks: just try zstd */
/*
 * 8 bytes of every 72: not a power of two, so that records of 2^k bytes
 * (a random key, then constant fields) are sampled at every 8-byte slot,
 * not at their keys alone. A 16 KiB block gives 1,824 samples: random
 * bytes then show about 13,000 colliding ordered pairs against the 2^-7.5
 * bound's 18,400, more than eight standard deviations (about 630) apart.
 * (Every 40 bytes cost 5% of the daemon's CPU writing random data.)
 */
#define CODEC_SAMPLE_STRIDE 72
/* zstd's fast mode for mostly random blocks, when the volume asks for speed */
#define CODEC_ZSTD_FAST_LEVEL	(-5)
#define CODEC_ZSTD_FAST_ABOVE	3	/* volumes above this level keep theirs */

enum codec_look { CODEC_LOOK_PLAIN, CODEC_LOOK_MIXED, CODEC_LOOK_RANDOM };

static enum codec_look codec_look(const uint8_t *p, size_t len)
{
	uint32_t hist[256] = {0};
	uint64_t n = 0, coll = 0;

	if (len < CODEC_SAMPLE_MIN)
		return CODEC_LOOK_PLAIN;
	for (size_t off = 0; off + 8 <= len; off += CODEC_SAMPLE_STRIDE) {
		for (size_t k = 0; k < 8; k++)
			hist[p[off + k]]++;
		n += 8;
	}
	for (size_t v = 0; v < 256; v++)
		coll += (uint64_t)hist[v] * (hist[v] ? hist[v] - 1 : 0);
	/* coll / (n (n - 1)) <= 2^-7.5, i.e. coll * 181 <= n (n - 1) */
	if (coll * 181 <= n * (n - 1))
		return CODEC_LOOK_RANDOM;
	if (coll * 64 <= n * (n - 1))
		return CODEC_LOOK_MIXED;
	return CODEC_LOOK_PLAIN;
}

/*
 * Compress plain into dst only if the result is smaller by at least 1/16.
 * Returns the payload size, or 0 to store the block as is. Giving zstd a
 * destination of exactly the acceptable size lets it do the comparison:
 * anything larger fails with dstSize_tooSmall.
 */
static size_t codec_try_compress(struct codec *c, struct codec_ctx *x,
				 const void *plain, size_t len, uint8_t *dst)
{
	enum codec_look look = codec_look(plain, len);
	int level = c->level;
	size_t r;

	if (look == CODEC_LOOK_RANDOM)
		return 0;
	if (look == CODEC_LOOK_MIXED && level <= CODEC_ZSTD_FAST_ABOVE)
		level = CODEC_ZSTD_FAST_LEVEL;
	if (!x->cctx) {
		x->cctx = ZSTD_createCCtx();
		if (!x->cctx)
			return 0;
	}
	r = ZSTD_compressCCtx(x->cctx, dst, len - len / 16, plain, len, level);
	/*
	 * The fast mode leaves literals uncompressed: a block whose only
	 * redundancy is a skewed byte distribution (base64, random printable
	 * text) gains nothing there and 20-25% at the volume's level.
	 */
	if ((ZSTD_isError(r) || r == 0) && level != c->level)
		r = ZSTD_compressCCtx(x->cctx, dst, len - len / 16, plain, len,
				      c->level);
	if (ZSTD_isError(r) || r == 0)
		return 0;
	return r;
}

int codec_seal(struct codec *c, const uint8_t id[static KEY_ID_BYTES],
	       const void *plain, size_t len, uint8_t *out, size_t *outlen)
{
	struct codec_ctx *x = NULL;
	size_t paylen = 0;
	uint8_t flags = 0;
	int ret;

	if (len == 0 || len > CODEC_MAX_BLOCK)
		return -EINVAL;
	ret = codec_ctx_get(c, &x);
	if (ret < 0)
		return ret;
	ret = codec_ctx_reserve(x, CODEC_HDR_BYTES + len);
	if (ret < 0)
		goto out;
	if (c->compress == CODEC_COMPRESS_ZSTD)
		paylen = codec_try_compress(c, x, plain, len,
					    x->buf + CODEC_HDR_BYTES);
	if (paylen) {
		flags = CODEC_F_ZSTD;
	} else {
		memcpy(x->buf + CODEC_HDR_BYTES, plain, len);
		paylen = len;
	}
	x->buf[0] = flags;
	put_be32(x->buf + 1, (uint32_t)len);
	key_seal(c->k, KEY_SUB_BLOCK, id, KEY_ID_BYTES, x->buf,
		 CODEC_HDR_BYTES + paylen, out);
	*outlen = CODEC_HDR_BYTES + paylen + KEY_SEAL_OVERHEAD;
	ret = 0;
out:
	codec_ctx_put(c, x);
	return ret;
}

static int codec_corrupt(const uint8_t id[static KEY_ID_BYTES], const char *why)
{
	char hex[2 * 8 + 1];

	log_dbg(LOG_DBG_CODEC, "block %s: %s", log_hex(hex, id, 8), why);
	return -EUCLEAN;
}

/* Where codec_open's payload goes: straight to out when it is stored raw. */
struct codec_place {
	uint8_t *out, *scratch;
	size_t cap, paylen;
	bool direct;
};

static uint8_t *codec_place(void *arg, const uint8_t *hdr)
{
	struct codec_place *p = arg;

	p->direct = hdr[0] == 0 && get_be32(hdr + 1) == p->paylen &&
		    p->paylen <= p->cap;
	return p->direct ? p->out : p->scratch;
}

int codec_open(struct codec *c, const uint8_t id[static KEY_ID_BYTES],
	       const uint8_t *sealed, size_t sealedlen, uint8_t *out,
	       size_t cap, size_t *plainlen)
{
	struct codec_ctx *x = NULL;
	struct codec_place p = { .out = out, .cap = cap };
	uint8_t hdr[CODEC_HDR_BYTES];
	struct key_split split = { hdr, sizeof(hdr), codec_place, &p };
	size_t ptlen, r;
	uint32_t plain_len;
	uint8_t flags;
	int ret;

	/*
	 * An empty payload is never produced, and a payload larger than the
	 * largest block cannot be one of ours: reject both before decrypting.
	 */
	if (sealedlen <= KEY_SEAL_OVERHEAD + CODEC_HDR_BYTES ||
	    sealedlen > CODEC_SEALED_MAX((size_t)CODEC_MAX_BLOCK))
		return codec_corrupt(id, "sealed length out of range");
	ptlen = sealedlen - KEY_SEAL_OVERHEAD;
	p.paylen = ptlen - CODEC_HDR_BYTES;
	ret = codec_ctx_get(c, &x);
	if (ret < 0)
		return ret;
	ret = codec_ctx_reserve(x, ptlen);
	if (ret < 0)
		goto out;
	p.scratch = x->buf + CODEC_HDR_BYTES;
	ret = key_open_split(c->k, KEY_SUB_BLOCK, id, KEY_ID_BYTES, sealed,
			     sealedlen, &split, x->buf);
	if (ret < 0) {
		ret = codec_corrupt(id, "authentication failed");
		goto out;
	}
	flags = hdr[0];
	plain_len = get_be32(hdr + 1);
	if (flags & ~CODEC_F_ZSTD) {
		ret = codec_corrupt(id, "unknown header flags");
		goto out;
	}
	if (plain_len == 0 || plain_len > CODEC_MAX_BLOCK) {
		ret = codec_corrupt(id, "plaintext length out of range");
		goto out;
	}
	if (!(flags & CODEC_F_ZSTD) && p.paylen != plain_len) {
		ret = codec_corrupt(id, "stored length mismatch");
		goto out;
	}
	if (cap < plain_len) {
		ret = -ENOSPC;
		goto out;
	}
	if (flags & CODEC_F_ZSTD) {
		if (!x->dctx) {
			x->dctx = ZSTD_createDCtx();
			if (!x->dctx) {
				ret = -ENOMEM;
				goto out;
			}
		}
		r = ZSTD_decompressDCtx(x->dctx, out, plain_len, p.scratch,
					p.paylen);
		if (ZSTD_isError(r) || r != plain_len) {
			ret = codec_corrupt(id, "decompression failed");
			goto out;
		}
	} else if (!p.direct) {
		memcpy(out, p.scratch, plain_len);
	}
	*plainlen = plain_len;
	ret = 0;
out:
	codec_ctx_put(c, x);
	return ret;
}
