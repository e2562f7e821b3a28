/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * volume.c - a volume: its store, clear header, key slots and open key
 *
 * Creation order: the store (RocksDB, segments) and its header first, the
 * VOLUME file last (written to a temporary name, synced, renamed), so a
 * directory is a volume exactly when everything under it is in place.
 *
 * Header value (super "header"), big-endian, see doc/FORMAT.md:
 *    0 "EMBFSHDR"  8 u32 format  12 id[16]  28 u32 block size
 *   32 u8 compress  33 u8 level  34 u16 slot count  36 u64 created
 *   44 public key[32]  76 slots[8][128]  1100 MAC[16] (key_mac, ad "header")
 */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define VOLUME_FILE "VOLUME"
#define VOLUME_MAGIC_LINE "embassyfs volume"
#define HDR_MAGIC "EMBFSHDR"
#define HDR_KEY "header"
#define HDR_BODY_BYTES (76 + VOLUME_MAX_SLOTS * KEY_SLOT_BYTES)
#define HDR_BYTES (HDR_BODY_BYTES + KEY_MAC_BYTES)

struct volume {
	char *dir;
	bool rdonly;
	struct store *st;
	struct volume_header hdr;
	uint8_t hdr_mac[KEY_MAC_BYTES];
	struct key *key;
	struct codec *codec;
	struct journal *journal;
};

static void hdr_encode(const struct volume_header *h, uint8_t out[HDR_BODY_BYTES])
{
	memset(out, 0, HDR_BODY_BYTES);
	memcpy(out, HDR_MAGIC, 8);
	put_be32(out + 8, h->format);
	memcpy(out + 12, h->id, VOLUME_ID_BYTES);
	put_be32(out + 28, h->block_size);
	out[32] = (uint8_t)h->compress;
	out[33] = (uint8_t)h->level;
	put_be16(out + 34, VOLUME_MAX_SLOTS);
	put_be64(out + 36, h->created);
	memcpy(out + 44, h->public_key, KEY_PUBLIC_BYTES);
	memcpy(out + 76, h->slots, sizeof(h->slots));
}

static int hdr_decode(const uint8_t *in, size_t len, struct volume_header *h)
{
	if (len != HDR_BYTES || memcmp(in, HDR_MAGIC, 8) ||
	    get_be16(in + 34) != VOLUME_MAX_SLOTS)
		return -EUCLEAN;
	h->format = get_be32(in + 8);
	memcpy(h->id, in + 12, VOLUME_ID_BYTES);
	h->block_size = get_be32(in + 28);
	h->compress = (enum codec_compress)in[32];
	h->level = in[33];
	h->created = get_be64(in + 36);
	memcpy(h->public_key, in + 44, KEY_PUBLIC_BYTES);
	memcpy(h->slots, in + 76, sizeof(h->slots));
	if (h->format != VOLUME_FORMAT)
		return -EPROTONOSUPPORT;
	if (h->block_size < VOLUME_MIN_BLOCK || h->block_size > VOLUME_MAX_BLOCK ||
	    (h->block_size & (h->block_size - 1)) ||
	    h->compress > CODEC_COMPRESS_ZSTD)
		return -EUCLEAN;
	return 0;
}

static int params_check(const struct volume_params *p)
{
	if (p->block_size < VOLUME_MIN_BLOCK || p->block_size > VOLUME_MAX_BLOCK ||
	    (p->block_size & (p->block_size - 1)))
		return -EINVAL;
	if (p->compress != CODEC_COMPRESS_NONE && p->compress != CODEC_COMPRESS_ZSTD)
		return -EINVAL;
	if (p->level < 1 || p->level > 19)
		return -EINVAL;
	return 0;
}

int volume_probe(const char *dir, uint32_t *format)
{
	char path[4096], line[128];
	struct stat sb;
	unsigned fmt;
	FILE *f;
	int ret;

	*format = 0;
	if (stat(dir, &sb))
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	snprintf(path, sizeof(path), "%s/%s", dir, VOLUME_FILE);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -EMEDIUMTYPE : -errno;
	ret = -EMEDIUMTYPE;
	if (!fgets(line, sizeof(line), f) ||
	    strcmp(line, VOLUME_MAGIC_LINE "\n"))
		goto out;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "format %u", &fmt) != 1)
		goto out;
	*format = fmt;
	ret = fmt == VOLUME_FORMAT ? 0 : -EPROTONOSUPPORT;
out:
	fclose(f);
	return ret;
}

static int write_volume_file(const char *dir, const struct volume_header *h)
{
	char path[4096], tmp[4096], hex[2 * VOLUME_ID_BYTES + 1];
	int fd, ret = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, VOLUME_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, VOLUME_FILE);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -errno;
	}
	fprintf(f, "%s\nformat %u\nid %s\n", VOLUME_MAGIC_LINE, h->format,
		log_hex(hex, h->id, VOLUME_ID_BYTES));
	if (fflush(f) || fsync(fd))
		ret = -errno;
	if (fclose(f) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (!ret) {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	if (ret)
		unlink(tmp);
	return ret;
}

static int rm_one(const char *path, const struct stat *sb, int type,
		  struct FTW *ftw)
{
	(void)sb;
	if (ftw->level == 0)
		return 0;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Remove everything inside dir, keeping dir itself. */
static int empty_dir(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) ? -errno : 0;
}

static bool dir_is_empty(const char *dir)
{
	struct dirent *de;
	bool empty = true;
	DIR *d = opendir(dir);

	if (!d)
		return true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

int volume_create(const char *dir, const struct volume_params *p,
		  const struct key *k, const uint8_t slot[static KEY_SLOT_BYTES],
		  bool force)
{
	struct volume_header h;
	struct store *st = NULL;
	struct store_batch *b = NULL;
	uint8_t buf[HDR_BYTES];
	uint32_t fmt;
	int ret;

	ret = params_check(p);
	if (ret)
		return ret;
	ret = volume_probe(dir, &fmt);
	if (ret == -ENOTDIR)
		return ret;
	if (ret != -ENOENT && !dir_is_empty(dir)) {
		if (ret != 0 && ret != -EPROTONOSUPPORT)
			return -ENOTEMPTY;	/* never wipe what is not ours */
		if (!force)
			return -EEXIST;
		/* Refuse to destroy a volume that a mount or receiver holds. */
		ret = store_open(dir, 0, &st);
		if (ret == -EBUSY)
			return ret;
		store_close(st);
		st = NULL;
		ret = empty_dir(dir);
		if (ret)
			return ret;
	}

	memset(&h, 0, sizeof(h));
	h.format = VOLUME_FORMAT;
	randombytes_buf(h.id, sizeof(h.id));
	h.block_size = p->block_size;
	h.compress = p->compress;
	h.level = p->level;
	h.created = (uint64_t)time(NULL);
	key_public(k, h.public_key);
	memcpy(h.slots[0], slot, KEY_SLOT_BYTES);

	ret = store_open(dir, STORE_CREATE, &st);
	if (ret)
		return ret;
	hdr_encode(&h, buf);
	key_mac(k, HDR_KEY, strlen(HDR_KEY), buf, HDR_BODY_BYTES,
		buf + HDR_BODY_BYTES);
	ret = store_batch_new(&b);
	if (ret)
		goto out;
	store_batch_put(b, STORE_CF_SUPER, HDR_KEY, strlen(HDR_KEY), buf,
			sizeof(buf));
	ret = store_write(st, b, true);
	if (ret)
		goto out;
	store_close(st);
	st = NULL;
	ret = write_volume_file(dir, &h);
out:
	store_batch_free(b);
	store_close(st);
	if (ret)
		empty_dir(dir);
	return ret;
}

int volume_open(const char *dir, enum volume_open_flags flags,
		struct volume **out)
{
	struct volume *v;
	uint8_t buf[HDR_BYTES];
	uint32_t fmt;
	size_t len;
	int ret;

	*out = NULL;
	ret = volume_probe(dir, &fmt);
	if (ret)
		return ret;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->rdonly = flags & VOLUME_RDONLY;
	v->dir = strdup(dir);
	if (!v->dir) {
		ret = -ENOMEM;
		goto out;
	}
	/*
	 * Refuse a busy store early, then read the header through a read-only
	 * open, which writes nothing: a wrong passphrase leaves every byte of
	 * the store as it was. A writer reopens read-write once unlocked.
	 */
	if (!v->rdonly) {
		ret = store_busy(dir);
		if (ret)
			goto out;
	}
	ret = store_open(dir, STORE_RDONLY |
			 ((flags & VOLUME_SHARED) && v->rdonly ? STORE_SHARED : 0),
			 &v->st);
	if (ret)
		goto out;
	ret = store_get_buf(v->st, STORE_CF_SUPER, HDR_KEY, strlen(HDR_KEY), buf,
			    sizeof(buf), &len);
	if (ret == -ENOENT || ret == -ENOSPC)
		ret = -EUCLEAN;
	if (ret)
		goto out;
	ret = hdr_decode(buf, len, &v->hdr);
	if (ret) {
		log_err("volume header of '%s' is malformed", dir);
		goto out;
	}
	memcpy(v->hdr_mac, buf + HDR_BODY_BYTES, KEY_MAC_BYTES);
	ret = journal_open(v->st, NULL, v->hdr.id, &v->journal);
	if (ret)
		goto out;
	*out = v;
out:
	if (ret)
		volume_close(v);
	return ret;
}

void volume_close(struct volume *v)
{
	if (!v)
		return;
	journal_close(v->journal);
	codec_free(v->codec);
	store_close(v->st);
	key_free(v->key);
	free(v->dir);
	free(v);
}

/* A slot opened: check the header under the key, then arm codec and journal. */
static int volume_arm(struct volume *v, struct key *k)
{
	uint8_t buf[HDR_BODY_BYTES];
	int ret;

	hdr_encode(&v->hdr, buf);
	ret = key_mac_verify(k, HDR_KEY, strlen(HDR_KEY), buf, sizeof(buf),
			     v->hdr_mac);
	if (ret) {
		log_err("volume header of '%s' fails its MAC: it was altered",
			v->dir);
		goto out;
	}
	ret = codec_new(k, v->hdr.compress, v->hdr.level, &v->codec);
	if (ret)
		goto out;
	journal_close(v->journal);
	v->journal = NULL;
	if (!v->rdonly) {
		store_close(v->st);
		v->st = NULL;
		ret = store_open(v->dir, 0, &v->st);
		if (ret)
			goto out;
	}
	ret = journal_open(v->st, k, v->hdr.id, &v->journal);
	if (ret)
		goto out;
	v->key = k;
	k = NULL;
out:
	key_free(k);
	return ret;
}

int volume_unlock_passphrase(struct volume *v, const char *pass, size_t len)
{
	struct key *k = NULL;

	if (v->key)
		return 0;
	for (int i = 0; i < VOLUME_MAX_SLOTS; i++) {
		if (v->hdr.slots[i][0] != KEY_SLOT_PASSPHRASE)
			continue;
		if (key_slot_open_passphrase(v->hdr.slots[i], pass, len, &k) == 0)
			return volume_arm(v, k);
	}
	return -EKEYREJECTED;
}

int volume_unlock_keyfile(struct volume *v, const uint8_t *data, size_t len)
{
	struct key *k = NULL;

	if (v->key)
		return 0;
	for (int i = 0; i < VOLUME_MAX_SLOTS; i++) {
		if (v->hdr.slots[i][0] != KEY_SLOT_KEYFILE)
			continue;
		if (key_slot_open_keyfile(v->hdr.slots[i], data, len, &k) == 0)
			return volume_arm(v, k);
	}
	return -EKEYREJECTED;
}

const struct volume_header *volume_header(const struct volume *v)
{
	return &v->hdr;
}

struct store *volume_store(struct volume *v)
{
	return v->st;
}

const struct key *volume_key(const struct volume *v)
{
	return v->key;
}

struct codec *volume_codec(struct volume *v)
{
	return v->codec;
}

struct journal *volume_journal(struct volume *v)
{
	return v->journal;
}

bool volume_rdonly(const struct volume *v)
{
	return v->rdonly;
}
