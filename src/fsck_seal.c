/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fsck_seal.c - MACs, sealed values and the signed head, as doc/FORMAT.md
 * defines them, for the checks and repairs that need the key
 *
 * fsck writes values of the format itself rather than through fs: a
 * repair must be able to link a directory into /lost+found, change a link
 * count without touching times, or re-store an entry under its right name
 * hash, none of which is a POSIX operation. Every `ad` starts with the
 * column family's name and the full key, as in fs.c and fs_dir.c.
 */
#include "fsck.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "fsck_int.h"

#define HEAD_CONTEXT "embassyfs-head-v1"

void fsck_mac(struct fsck *f, const char *cf, const void *key, size_t klen,
	      const void *val, size_t vlen, uint8_t tag[static KEY_MAC_BYTES])
{
	uint8_t ad[16 + 64];
	size_t n = strlen(cf);

	memcpy(ad, cf, n);
	memcpy(ad + n, key, klen);
	key_mac(f->k, ad, n + klen, val, vlen, tag);
}

int fsck_mac_check(struct fsck *f, const char *cf, const void *key, size_t klen,
		   const void *val, size_t vlen,
		   const uint8_t tag[static KEY_MAC_BYTES])
{
	uint8_t ad[16 + 64];
	size_t n = strlen(cf);

	if (klen > 64)
		return -EUCLEAN;
	memcpy(ad, cf, n);
	memcpy(ad + n, key, klen);
	return key_mac_verify(f->k, ad, n + klen, val, vlen, tag);
}

static void inode_ad(uint8_t ad[5 + 8 + FSCK_INODE_CLEAR], uint64_t ino,
		     const uint8_t *clear)
{
	memcpy(ad, "inode", 5);
	put_be64(ad + 5, ino);
	memcpy(ad + 13, clear, FSCK_INODE_CLEAR);
}

int fsck_inode_open(struct fsck *f, uint64_t ino, const uint8_t *val,
		    size_t vlen, uint8_t *plain, size_t *plen)
{
	uint8_t ad[5 + 8 + FSCK_INODE_CLEAR];

	if (vlen < FSCK_INODE_CLEAR + KEY_SEAL_OVERHEAD)
		return -EUCLEAN;
	inode_ad(ad, ino, val);
	*plen = vlen - FSCK_INODE_CLEAR - KEY_SEAL_OVERHEAD;
	return key_open(f->k, KEY_SUB_VALUE, ad, sizeof(ad),
			val + FSCK_INODE_CLEAR, vlen - FSCK_INODE_CLEAR, plain);
}

void fsck_inode_seal(struct fsck *f, uint64_t ino, uint8_t type, uint32_t nlink,
		     const uint8_t *plain, size_t plen, uint8_t *out,
		     size_t *outlen)
{
	uint8_t ad[5 + 8 + FSCK_INODE_CLEAR];

	out[0] = 1;
	out[1] = type;
	put_be16(out + 2, 0);
	put_be32(out + 4, nlink);
	inode_ad(ad, ino, out);
	key_seal(f->k, KEY_SUB_VALUE, ad, sizeof(ad), plain, plen,
		 out + FSCK_INODE_CLEAR);
	*outlen = FSCK_INODE_CLEAR + plen + KEY_SEAL_OVERHEAD;
}

static void dirent_ad(uint8_t *ad, const uint8_t *key, const uint8_t *clear)
{
	memcpy(ad, "dirent", 6);
	memcpy(ad + 6, key, FSCK_DIRENT_KEY);
	memcpy(ad + 6 + FSCK_DIRENT_KEY, clear, FSCK_DIRENT_CLEAR);
}

int fsck_dirent_open(struct fsck *f, const uint8_t *key, const uint8_t *val,
		     size_t vlen, char *name, size_t *nlen)
{
	uint8_t ad[6 + FSCK_DIRENT_KEY + FSCK_DIRENT_CLEAR];
	uint8_t plain[FS_NAME_MAX + 1];
	size_t n;

	if (vlen < FSCK_DIRENT_CLEAR + KEY_SEAL_OVERHEAD ||
	    vlen > FSCK_DIRENT_CLEAR + FS_NAME_MAX + 1 + KEY_SEAL_OVERHEAD)
		return -EUCLEAN;
	n = vlen - FSCK_DIRENT_CLEAR - KEY_SEAL_OVERHEAD;
	dirent_ad(ad, key, val);
	if (key_open(f->k, KEY_SUB_VALUE, ad, sizeof(ad),
		     val + FSCK_DIRENT_CLEAR, vlen - FSCK_DIRENT_CLEAR, plain))
		return -EUCLEAN;
	memcpy(name, plain, n);
	name[n] = '\0';
	*nlen = n;
	return 0;
}

void fsck_dirent_seal(struct fsck *f, uint64_t parent, const char *name,
		      size_t nlen, uint64_t child, uint8_t type,
		      uint8_t key[static FSCK_DIRENT_KEY], uint8_t *val,
		      size_t *vlen)
{
	uint8_t ad[6 + FSCK_DIRENT_KEY + FSCK_DIRENT_CLEAR];

	put_be64(key, parent);
	key_name_hash(f->k, parent, name, nlen, key + 8);
	val[0] = 1;
	val[1] = type;
	put_be16(val + 2, 0);
	put_be64(val + 4, child);
	dirent_ad(ad, key, val);
	key_seal(f->k, KEY_SUB_VALUE, ad, sizeof(ad), name, nlen,
		 val + FSCK_DIRENT_CLEAR);
	*vlen = FSCK_DIRENT_CLEAR + nlen + KEY_SEAL_OVERHEAD;
}

int fsck_dirent_retype(struct fsck *f, const uint8_t *key, const uint8_t *val,
		       size_t vlen, uint8_t type, uint8_t *out, size_t *outlen)
{
	uint8_t ad[6 + FSCK_DIRENT_KEY + FSCK_DIRENT_CLEAR];
	char name[FS_NAME_MAX + 2];
	size_t n;
	int ret;

	ret = fsck_dirent_open(f, key, val, vlen, name, &n);
	if (ret)
		return ret;
	memcpy(out, val, FSCK_DIRENT_CLEAR);
	out[1] = type;
	dirent_ad(ad, key, out);
	key_seal(f->k, KEY_SUB_VALUE, ad, sizeof(ad), name, n,
		 out + FSCK_DIRENT_CLEAR);
	*outlen = FSCK_DIRENT_CLEAR + n + KEY_SEAL_OVERHEAD;
	return 0;
}

void fsck_inode_plain(uint8_t *plain, uint32_t mode, uint64_t size,
		      uint64_t generation, uint64_t nextents)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memset(plain, 0, FSCK_INODE_PLAIN);
	put_be32(plain, mode);
	put_be64(plain + 16, size);
	put_be64(plain + 32, generation);
	put_be64(plain + 40, nextents);
	for (int q = 0; q < 4; q++) {
		put_be64(plain + 48 + 12 * q, (uint64_t)now.tv_sec);
		put_be32(plain + 56 + 12 * q, (uint32_t)now.tv_nsec);
	}
}

void fsck_block_val(struct fsck *f, const uint8_t *id, uint32_t rc,
		    uint32_t len, uint64_t csum,
		    uint8_t out[static FSCK_BLOCK_VAL])
{
	put_be32(out, rc);
	put_be32(out + 4, len);
	put_be64(out + 8, csum);
	fsck_mac(f, "block", id, KEY_ID_BYTES, out, 16, out + 16);
}

int fsck_block_rewrite(struct fsck *f, const uint8_t *id, struct fsck_blk *b)
{
	struct store_loc loc = {.seg = b->seg,
				.len = b->len,
				.off = (uint64_t)b->offu * STORE_SEG_ALIGN};
	uint8_t val[FSCK_BLOCK_VAL], *buf;
	struct journal_txn *t;
	int ret;

	buf = malloc(b->len ? b->len : 1);
	if (!buf)
		return -ENOMEM;
	ret = store_seg_read(f->st, &loc, id, buf);
	if (ret == 0)
		b->csum = store_rec_sum(id, buf, b->len);
	free(buf);
	if (ret)
		return 0;
	t = fsck_txn(f);
	if (!t)
		return 0;
	fsck_block_val(f, id, b->refs, b->len, b->csum, val);
	journal_txn_put(t, STORE_CF_BLOCK, id, KEY_ID_BYTES, val, sizeof(val));
	b->rc = b->refs;
	return 1;
}

size_t fsck_head_msg(const uint8_t volume_id[static VOLUME_ID_BYTES],
		     const struct journal_head *h, uint8_t *msg)
{
	size_t n = sizeof(HEAD_CONTEXT) - 1;

	memcpy(msg, HEAD_CONTEXT, n);
	memcpy(msg + n, volume_id, VOLUME_ID_BYTES);
	put_be64(msg + n + 16, h->epoch);
	put_be64(msg + n + 24, h->seq);
	memcpy(msg + n + 32, h->hash, KEY_HASH_BYTES);
	return n + 32 + KEY_HASH_BYTES;
}

void fsck_sign_head(struct fsck *f, const struct journal_head *h)
{
	uint8_t msg[64 + KEY_HASH_BYTES], val[JOURNAL_SIGNED_HEAD_BYTES];
	size_t mlen;

	put_be64(val, h->epoch);
	put_be64(val + 8, h->seq);
	memcpy(val + 16, h->hash, KEY_HASH_BYTES);
	mlen = fsck_head_msg(f->hdr.id, h, msg);
	key_sign(f->k, msg, mlen, val + 16 + KEY_HASH_BYTES);
	store_batch_put(fsck_raw(f), STORE_CF_SUPER, "head", 4, val,
			sizeof(val));
}
