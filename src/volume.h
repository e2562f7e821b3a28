/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * volume.h - a volume: its store, clear header, key slots and open key
 *
 * STORE/VOLUME is a small text file that says "this directory is an
 * embassyfs volume of format N" before RocksDB is touched, so that a wrong
 * directory or an unknown format is refused without changing anything.
 * The authoritative header (format, volume id, block size, compression,
 * public signing key, key slots) is the "header" value of the super column
 * family; a MAC under the volume's key protects it once unlocked.
 */
#ifndef EMBASSYFS_VOLUME_H
#define EMBASSYFS_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "compat.h"
#include "key.h"
#include "store.h"

#define VOLUME_FORMAT 2
#define VOLUME_ID_BYTES 16
#define VOLUME_MAX_SLOTS 8
#define VOLUME_MIN_BLOCK 4096u
#define VOLUME_MAX_BLOCK (1u << 20)
#define VOLUME_DEFAULT_BLOCK 16384u

struct volume_params {
	uint32_t block_size;		/* power of two, 4 KiB .. 1 MiB */
	enum codec_compress compress;
	int level;			/* zstd level */
};

struct volume_header {
	uint32_t format;
	uint8_t id[VOLUME_ID_BYTES];
	uint32_t block_size;
	enum codec_compress compress;
	int level;
	uint64_t created;		/* seconds since the epoch */
	uint8_t public_key[KEY_PUBLIC_BYTES];
	uint8_t slots[VOLUME_MAX_SLOTS][KEY_SLOT_BYTES];
};

enum volume_open_flags {
	VOLUME_RDONLY = 1 << 0,
	/*
	 * With RDONLY: hold a shared lock, so that no writer can change the
	 * volume under a read-only mount (whose view would silently freeze),
	 * and refuse (-EBUSY) while one holds it. Without: no lock (fsck -n).
	 */
	VOLUME_SHARED = 1 << 1,
};

struct volume;
struct journal;

/*
 * Create a new volume in dir (created if missing; must be empty unless
 * force, in which case an existing volume there is destroyed first).
 * slot is the first key slot, sealed by the caller from k.
 * -EEXIST: dir holds a volume (or anything) and !force; -EINVAL: bad params;
 * -EBUSY: the volume there is mounted; -EIO, -ENOSPC.
 */
int volume_create(const char *dir, const struct volume_params *p,
		  const struct key *k, const uint8_t slot[static KEY_SLOT_BYTES],
		  bool force) MUST_CHECK;

/*
 * Read STORE/VOLUME only. -ENOENT: dir missing; -ENOTDIR; -EMEDIUMTYPE:
 * not an embassyfs volume; -EPROTONOSUPPORT: a format this build does not
 * know (*format says which).
 */
int volume_probe(const char *dir, uint32_t *format) MUST_CHECK;

/*
 * Open the volume keyless: probe, open the store, read the header.
 * Errors of volume_probe and store_open, -EUCLEAN for a malformed header.
 */
int volume_open(const char *dir, enum volume_open_flags flags,
		struct volume **out) MUST_CHECK;
/* Close the journal (signing its head when unlocked), the store; NULL is fine. */
void volume_close(struct volume *v);

/* Try each slot. -EKEYREJECTED when none opens; -EUCLEAN if the header MAC fails after unlock. */
int volume_unlock_passphrase(struct volume *v, const char *pass, size_t len) MUST_CHECK;
int volume_unlock_keyfile(struct volume *v, const uint8_t *data, size_t len) MUST_CHECK;

/* Accessors; volume_key/codec are NULL until unlocked. */
const struct volume_header *volume_header(const struct volume *v);
struct store *volume_store(struct volume *v);
const struct key *volume_key(const struct volume *v);
struct codec *volume_codec(struct volume *v);
struct journal *volume_journal(struct volume *v);
bool volume_rdonly(const struct volume *v);

#endif
