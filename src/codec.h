/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * codec.h - plaintext block <-> (keyed id, sealed bytes), and back
 *
 * Sealing a block: id = HMAC-SHA-256(plaintext); the payload is the
 * zstd-compressed plaintext when that is smaller by at least 1/16, the
 * plaintext otherwise; the sealed bytes are
 *
 *     nonce(24) || XChaCha20-Poly1305(hdr || payload) || tag(16)
 *     hdr = flags u8 (CODEC_F_ZSTD) || plain_len u32 be
 *
 * with the block id as associated data, so a block cannot be moved under
 * another id. (The non-secret checksum that a keyless verifier uses to
 * find bit rot is the segment record's, store_rec_sum().) A struct codec
 * is thread-safe: it keeps a small pool of zstd contexts behind a mutex.
 */
#ifndef EMBASSYFS_CODEC_H
#define EMBASSYFS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "key.h"

#define CODEC_HDR_BYTES 5
#define CODEC_F_ZSTD 0x01
#define CODEC_MAX_BLOCK (1u << 20)
/* Worst case sealed size of a block of n plaintext bytes. */
#define CODEC_SEALED_MAX(n) ((n) + CODEC_HDR_BYTES + KEY_SEAL_OVERHEAD)

enum codec_compress {
	CODEC_COMPRESS_NONE = 0,
	CODEC_COMPRESS_ZSTD = 1,
};

struct codec;

/* k is borrowed and must outlive the codec. level: zstd level (1 is the default). -ENOMEM. */
int codec_new(const struct key *k, enum codec_compress compress, int level,
	      struct codec **out) MUST_CHECK;
void codec_free(struct codec *c);

/* Only the id of a plaintext block (no sealing). */
void codec_block_id(const struct codec *c, const void *plain, size_t len,
		    uint8_t id[static KEY_ID_BYTES]);

/*
 * Seal len (1..CODEC_MAX_BLOCK) bytes of plain whose id the caller already
 * computed with codec_block_id(). out must hold CODEC_SEALED_MAX(len) bytes;
 * *outlen receives the sealed length. -EINVAL on a bad length, -ENOMEM.
 */
int codec_seal(struct codec *c, const uint8_t id[static KEY_ID_BYTES],
	       const void *plain, size_t len, uint8_t *out, size_t *outlen) MUST_CHECK;

/*
 * Open sealed bytes of block id into out (cap bytes); *plainlen receives
 * the plaintext length. -EUCLEAN on a bad tag, a malformed header or
 * decompression failure; -ENOSPC if cap is too small. out must not overlap
 * sealed, and its bytes are undefined after an error: a block stored raw is
 * decrypted straight into it.
 */
int codec_open(struct codec *c, const uint8_t id[static KEY_ID_BYTES],
	       const uint8_t *sealed, size_t sealedlen, uint8_t *out, size_t cap,
	       size_t *plainlen) MUST_CHECK;

#endif
