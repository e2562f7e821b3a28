/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fs.h - POSIX semantics over the store
 *
 * Inodes, directory entries, extents, hard links, symlinks, special files,
 * xattrs, rename, truncate, sparse files and fallocate, as one journaled
 * write batch per operation. Calls mirror the FUSE low-level operations so
 * that the daemon only translates. Inode numbers are the store's; the root
 * is FS_ROOT_INO (== FUSE_ROOT_ID).
 *
 * Every function returns 0 or a negative errno as Linux's filesystems
 * would (-ENOENT, -EEXIST, -ENOTEMPTY, -ENOTDIR, -EISDIR, -ENAMETOOLONG,
 * -EXDEV never, -ENODATA, -ERANGE, -E2BIG, -EFBIG, -ENOSPC, -EROFS), and
 * -EUCLEAN or -EIO when the store is damaged. All are thread-safe.
 *
 * Permission checks are the kernel's (default_permissions); fs only needs
 * the caller's uid/gid/umask to stamp new inodes.
 */
#ifndef EMBASSYFS_FS_H
#define EMBASSYFS_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "compat.h"

#define FS_ROOT_INO 1
#define FS_NAME_MAX 255
#define FS_SYMLINK_MAX 4095	/* PATH_MAX - 1 */
#define FS_XATTR_NAME_MAX 255
#define FS_XATTR_SIZE_MAX 65536
#define FS_MAX_FILE_SIZE (1ull << 50)

struct volume;
struct fs;

struct fs_attr {
	uint64_t ino;
	uint64_t generation;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units allocated (sealed bytes of the file's extents) */
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	uint32_t blksize;
};

/* Who is asking: stamps owner and applies umask on create. */
struct fs_ctx {
	uint32_t uid;
	uint32_t gid;
	uint32_t umask;
};

enum fs_set_flags {
	FS_SET_MODE = 1 << 0,
	FS_SET_UID = 1 << 1,
	FS_SET_GID = 1 << 2,
	FS_SET_SIZE = 1 << 3,
	FS_SET_ATIME = 1 << 4,
	FS_SET_MTIME = 1 << 5,
	FS_SET_ATIME_NOW = 1 << 6,
	FS_SET_MTIME_NOW = 1 << 7,
	FS_SET_CTIME = 1 << 8,
};

enum fs_open_flags {
	FS_RDONLY = 1 << 0,
};

/* rename flags, values as in <linux/fs.h> */
#define FS_RENAME_NOREPLACE (1 << 0)
#define FS_RENAME_EXCHANGE (1 << 1)

/*
 * Create the root directory of a freshly created volume (mkfs). The root
 * is owned by uid/gid with mode 0755. -EEXIST if the volume has one.
 */
int fs_format(struct volume *v, uint32_t uid, uint32_t gid) MUST_CHECK;

/*
 * Start serving an unlocked volume: recover (delete inodes orphaned by a
 * crash), load counters. The volume is borrowed and must outlive the fs.
 */
int fs_open(struct volume *v, enum fs_open_flags flags, struct fs **out) MUST_CHECK;
/* Flush every buffer, sync, sign the journal head. Returns the first error seen. */
int fs_close(struct fs *fs);

/*
 * The kernel keeps mtime and ctime of written files itself (FUSE writeback
 * cache) and sends them with a setattr: then fs_write and fs_fallocate do
 * not stamp times of their own, which would be later than the kernel's.
 */
void fs_set_kernel_cmtime(struct fs *fs, bool on);
/*
 * Keep at most about n inodes loaded once idle (default 65536); past it an
 * idle inode keeps only its kernel lookup count, 32 bytes, and is loaded
 * again when next used. Bounds the daemon's memory whatever the number of
 * files the kernel has cached.
 */
void fs_set_inode_cache(struct fs *fs, size_t n);

/* Lookups count references (nlookup) that fs_forget gives back. */
int fs_lookup(struct fs *fs, uint64_t parent, const char *name,
	      struct fs_attr *out) MUST_CHECK;
void fs_forget(struct fs *fs, uint64_t ino, uint64_t nlookup);
int fs_getattr(struct fs *fs, uint64_t ino, struct fs_attr *out) MUST_CHECK;
/* to_set: enum fs_set_flags; FS_SET_SIZE truncates or extends. */
int fs_setattr(struct fs *fs, uint64_t ino, const struct fs_attr *in,
	       unsigned to_set, struct fs_attr *out) MUST_CHECK;

/* Create a regular file, fifo, socket or device node (mode carries the type). */
int fs_mknod(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	     const char *name, uint32_t mode, uint64_t rdev,
	     struct fs_attr *out) MUST_CHECK;
int fs_mkdir(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	     const char *name, uint32_t mode, struct fs_attr *out) MUST_CHECK;
int fs_symlink(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	       const char *name, const char *target,
	       struct fs_attr *out) MUST_CHECK;
/* Copies the target and a NUL into buf; -ERANGE if cap is too small. */
int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t cap) MUST_CHECK;
int fs_link(struct fs *fs, uint64_t ino, uint64_t newparent,
	    const char *newname, struct fs_attr *out) MUST_CHECK;
int fs_unlink(struct fs *fs, uint64_t parent, const char *name) MUST_CHECK;
int fs_rmdir(struct fs *fs, uint64_t parent, const char *name) MUST_CHECK;
int fs_rename(struct fs *fs, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname,
	      unsigned flags) MUST_CHECK;

/* Open counts keep an unlinked inode alive until its last release. */
int fs_open_file(struct fs *fs, uint64_t ino, int flags) MUST_CHECK;
/* fs_mknod of a regular file + fs_open_file, with an O_EXCL-style -EEXIST. */
int fs_create(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	      const char *name, uint32_t mode, int flags,
	      struct fs_attr *out) MUST_CHECK;
/*
 * Blocks that a multi-block read could not take on its batched path and
 * read one by one (a damaged or missing record; for tests and debugging).
 */
uint64_t fs_read_retries(struct fs *fs);
/* Partial writes whose block came from the plaintext cache (for tests). */
uint64_t fs_pcache_hits(struct fs *fs);
/* Partial writes whose block was read back from the store (for tests). */
uint64_t fs_rmw_reads(struct fs *fs);
/* Read into buf; returns bytes read (short at end of file) or -errno. */
ssize_t fs_read(struct fs *fs, uint64_t ino, void *buf, size_t size,
		uint64_t off) MUST_CHECK;
/* Write buf; returns bytes written or -errno. Buffered until flush/fsync. */
ssize_t fs_write(struct fs *fs, uint64_t ino, const void *buf, size_t size,
		 uint64_t off) MUST_CHECK;
/* Commit buffered writes of the inode (not durable until fsync). */
int fs_flush(struct fs *fs, uint64_t ino) MUST_CHECK;
/* Commit, then make durable (datasync: data and size only). */
int fs_fsync(struct fs *fs, uint64_t ino, bool datasync) MUST_CHECK;
/* Drop one open count; commits buffered writes. */
int fs_release(struct fs *fs, uint64_t ino) MUST_CHECK;
/* mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, FALLOC_FL_ZERO_RANGE. -EOPNOTSUPP otherwise. */
int fs_fallocate(struct fs *fs, uint64_t ino, int mode, uint64_t off,
		 uint64_t len) MUST_CHECK;
/* SEEK_DATA / SEEK_HOLE; -ENXIO past the end. */
int fs_lseek(struct fs *fs, uint64_t ino, uint64_t off, int whence,
	     uint64_t *out) MUST_CHECK;

/*
 * Directory listing from offset `off` (0 = start; "." and ".." are
 * included). Offsets are stable while entries change: an entry's offset
 * is derived from its name hash. fn returns non-zero to stop (buffer full);
 * the entry it refused is not counted as read.
 */
typedef int fs_dirent_fn(void *arg, const char *name, uint64_t ino,
			 uint32_t mode, uint64_t next_off);
int fs_readdir(struct fs *fs, uint64_t ino, uint64_t off, fs_dirent_fn *fn,
	       void *arg) MUST_CHECK;
/*
 * Like fs_readdir, with each entry's attributes ("." and ".." carry only
 * ino and type). Every entry fn accepts (returns 0) other than "." and
 * ".." counts as a lookup, which fs_forget gives back.
 */
typedef int fs_direntplus_fn(void *arg, const char *name,
			     const struct fs_attr *attr, uint64_t next_off);
int fs_readdirplus(struct fs *fs, uint64_t ino, uint64_t off,
		   fs_direntplus_fn *fn, void *arg) MUST_CHECK;
int fs_fsyncdir(struct fs *fs, uint64_t ino) MUST_CHECK;
int fs_statfs(struct fs *fs, struct statvfs *out) MUST_CHECK;

/* flags: XATTR_CREATE / XATTR_REPLACE. */
int fs_setxattr(struct fs *fs, uint64_t ino, const char *name,
		const void *value, size_t size, int flags) MUST_CHECK;
/* cap 0 asks for the size only; returns the value's size or -errno (-ENODATA, -ERANGE). */
ssize_t fs_getxattr(struct fs *fs, uint64_t ino, const char *name, void *buf,
		    size_t cap) MUST_CHECK;
/* NUL-separated names; cap 0 asks for the size. */
ssize_t fs_listxattr(struct fs *fs, uint64_t ino, char *buf,
		     size_t cap) MUST_CHECK;
int fs_removexattr(struct fs *fs, uint64_t ino, const char *name) MUST_CHECK;

/* Commit every buffer and make the store durable (syncfs, unmount). */
int fs_sync(struct fs *fs) MUST_CHECK;

#endif
