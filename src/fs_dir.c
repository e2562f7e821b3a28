/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fs_dir.c - names: lookup, create, link, unlink, rmdir, rename, readdir
 *
 * dirent  key parent u64 || keyed hash(parent, name)[16]
 *         -> u8 version(1) u8 type(mode>>12) u16 0 u64 child
 *         || seal(VALUE, ad = "dirent" || key || first 12 bytes, name)
 *
 * The child inode and its type are clear so that a keyless fsck can walk
 * the tree and count links; the name is sealed. Entries sort by name hash,
 * and a readdir offset is derived from the hash, so offsets stay valid
 * while other entries come and go.
 *
 * Every operation here is one transaction: the directory entry, the inodes
 * whose link count, size or times change, and orphan marks for inodes that
 * lose their last link while still open.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"
#include "log.h"

#define DIRENT_CLEAR_BYTES 12
#define DIRENT_KEY_BYTES (8 + KEY_NAME_HASH_BYTES)
#define DIRENT_VAL_MAX (DIRENT_CLEAR_BYTES + FS_NAME_MAX + KEY_SEAL_OVERHEAD)
#define LINK_MAX_COUNT 65000
#define OFF_FIRST 3	/* 0 ".", 1 "..", 2 first entry */

struct dent {
	uint64_t ino;
	uint32_t type;		/* mode >> 12 */
};

static int name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || strchr(name, '/'))
		return -EINVAL;
	if (n > FS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

static void dirent_key(struct fs *fs, uint64_t parent, const char *name,
		       uint8_t key[DIRENT_KEY_BYTES])
{
	put_be64(key, parent);
	key_name_hash(fs->k, parent, name, strlen(name), key + 8);
}

static void dirent_ad(uint8_t *ad, const uint8_t *key, const uint8_t *clear)
{
	memcpy(ad, "dirent", 6);
	memcpy(ad + 6, key, DIRENT_KEY_BYTES);
	memcpy(ad + 6 + DIRENT_KEY_BYTES, clear, DIRENT_CLEAR_BYTES);
}

static void dirent_put(struct fs *fs, struct journal_txn *t, uint64_t parent,
		       const char *name, uint64_t child, uint32_t mode)
{
	uint8_t key[DIRENT_KEY_BYTES], val[DIRENT_VAL_MAX];
	uint8_t ad[6 + DIRENT_KEY_BYTES + DIRENT_CLEAR_BYTES];
	size_t n = strlen(name);

	dirent_key(fs, parent, name, key);
	val[0] = 1;
	val[1] = (uint8_t)(mode >> 12);
	put_be16(val + 2, 0);
	put_be64(val + 4, child);
	dirent_ad(ad, key, val);
	key_seal(fs->k, KEY_SUB_VALUE, ad, sizeof(ad), name, n,
		 val + DIRENT_CLEAR_BYTES);
	journal_txn_put(t, STORE_CF_DIRENT, key, sizeof(key), val,
			DIRENT_CLEAR_BYTES + n + KEY_SEAL_OVERHEAD);
}

static void dirent_del(struct fs *fs, struct journal_txn *t, uint64_t parent,
		       const char *name)
{
	uint8_t key[DIRENT_KEY_BYTES];

	dirent_key(fs, parent, name, key);
	journal_txn_delete(t, STORE_CF_DIRENT, key, sizeof(key));
}

/*
 * Decode a dirent value: child, type, and the name (into name, NUL ended,
 * FS_NAME_MAX + 1 bytes) when name is not NULL.
 */
static int dirent_decode(struct fs *fs, const uint8_t *key, const uint8_t *val,
			 size_t vlen, struct dent *d, char *name)
{
	uint8_t ad[6 + DIRENT_KEY_BYTES + DIRENT_CLEAR_BYTES];
	uint8_t plain[FS_NAME_MAX];
	size_t n;

	if (vlen < DIRENT_CLEAR_BYTES + 1 + KEY_SEAL_OVERHEAD ||
	    vlen > DIRENT_VAL_MAX || val[0] != 1)
		return -EUCLEAN;
	d->type = val[1];
	d->ino = get_be64(val + 4);
	if (!name)
		return 0;
	dirent_ad(ad, key, val);
	n = vlen - DIRENT_CLEAR_BYTES - KEY_SEAL_OVERHEAD;
	if (key_open(fs->k, KEY_SUB_VALUE, ad, sizeof(ad),
		     val + DIRENT_CLEAR_BYTES, vlen - DIRENT_CLEAR_BYTES, plain))
		return -EUCLEAN;
	memcpy(name, plain, n);
	name[n] = '\0';
	return 0;
}

/* Look a name up in parent: -ENOENT, or the entry (name checked). */
static int dirent_get(struct fs *fs, uint64_t parent, const char *name,
		      struct dent *d)
{
	uint8_t key[DIRENT_KEY_BYTES], val[DIRENT_VAL_MAX];
	char found[FS_NAME_MAX + 1];
	size_t vlen;
	int ret;

	dirent_key(fs, parent, name, key);
	ret = store_get_buf(fs->st, STORE_CF_DIRENT, key, sizeof(key), val,
			    sizeof(val), &vlen);
	if (ret == -ENOSPC)
		ret = -EUCLEAN;
	if (ret == 0)
		ret = dirent_decode(fs, key, val, vlen, d, found);
	if (ret == -EUCLEAN)
		fs_corrupt(fs, parent, "directory entry fails authentication");
	if (ret == 0 && strcmp(found, name))
		ret = -ENOENT;
	return ret;
}

static int dir_is_empty(struct fs *fs, uint64_t ino)
{
	struct store_iter *it = NULL;
	uint8_t prefix[8];
	int ret;

	ret = store_iter_new(fs->st, STORE_CF_DIRENT, &it);
	if (ret)
		return ret;
	put_be64(prefix, ino);
	store_iter_seek(it, prefix, sizeof(prefix));
	if (store_iter_valid(it)) {
		size_t klen;
		const uint8_t *k = store_iter_key(it, &klen);

		if (klen >= 8 && !memcmp(k, prefix, 8))
			ret = -ENOTEMPTY;
	}
	if (ret == 0)
		ret = store_iter_status(it);
	store_iter_free(it);
	return ret;
}

int fs_lookup(struct fs *fs, uint64_t parent, const char *name,
	      struct fs_attr *out)
{
	struct fs_inode *dir = NULL, *i = NULL;
	struct dent d;
	int ret;

	ret = name_check(name);
	if (ret)
		return ret;
	ret = fs_inode_lock(fs, parent, false, &dir);
	if (ret)
		return ret;
	if (!S_ISDIR(dir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	ret = dirent_get(fs, parent, name, &d);
	if (ret)
		goto out;
	ret = fs_inode_lock(fs, d.ino, false, &i);
	if (ret == -ENOENT) {
		fs_corrupt(fs, parent, "directory entry names a missing inode");
		ret = -EUCLEAN;
	}
	if (ret)
		goto out;
	fs_attr_fill(fs, i, out);
	fs_inode_ref(fs, i, 1, 0);
	fs_inode_unlock(fs, i);
out:
	fs_inode_unlock(fs, dir);
	return ret;
}

/* Shared by mknod, mkdir, symlink and create. */
static int make_node(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
		     const char *name, uint32_t mode, uint64_t rdev,
		     const char *target, bool open, struct fs_attr *out)
{
	struct journal_txn *t = NULL;
	struct fs_inode *dir = NULL, *i = NULL;
	uint8_t *dacl = NULL, *acl = NULL;
	bool acl_equiv = true;
	size_t dlen = 0;
	struct fs_iattr a;
	struct dent d;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	ret = name_check(name);
	if (ret)
		return ret;
	ret = fs_inode_lock(fs, parent, true, &dir);
	if (ret)
		return ret;
	if (!S_ISDIR(dir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (dir->a.nlink == 0) {
		ret = -ENOENT;
		goto out;
	}
	ret = dirent_get(fs, parent, name, &d);
	if (ret == 0)
		ret = -EEXIST;
	if (ret != -ENOENT)
		goto out;
	if (S_ISDIR(mode) && dir->a.nlink >= LINK_MAX_COUNT) {
		ret = -EMLINK;
		goto out;
	}
	/*
	 * A default ACL on the directory is inherited, masked by the mode,
	 * and the umask is not applied; otherwise the umask is.
	 */
	if (!target) {
		ret = fs_xattr_read(fs, parent, FS_ACL_DEFAULT, &dacl, &dlen);
		if (ret && ret != -ENODATA)
			goto out;
		ret = 0;
	}
	if (dacl) {
		bool equiv;
		uint32_t perm;

		if (fs_acl_check(dacl, dlen, &equiv, &perm)) {
			free(dacl);
			dacl = NULL;
		} else {
			uint32_t bits = mode & 0777;

			acl = malloc(dlen);
			if (!acl) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(acl, dacl, dlen);
			acl_equiv = fs_acl_create_masq(acl, dlen, &bits);
			mode = (mode & ~0777u) | bits;
		}
	}
	if (!dacl && !target)
		mode &= ~(ctx->umask & 0777);
	memset(&a, 0, sizeof(a));
	a.mode = mode;
	a.nlink = S_ISDIR(mode) ? 2 : 1;
	a.uid = ctx->uid;
	a.gid = ctx->gid;
	if (dir->a.mode & S_ISGID) {
		a.gid = dir->a.gid;
		if (S_ISDIR(mode))
			a.mode |= S_ISGID;
	}
	a.rdev = rdev;
	if (target)
		a.size = strlen(target);
	fs_now(&a.mtime);
	a.atime = a.ctime = a.btime = a.mtime;
	ret = fs_inode_new(fs, &a, target, &i);
	if (ret)
		goto out;
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_put_inode(fs, t, i);
	if (acl && !acl_equiv)
		ret = fs_xattr_put(fs, t, i, FS_ACL_ACCESS, acl, dlen);
	if (ret == 0 && dacl && S_ISDIR(mode))
		ret = fs_xattr_put(fs, t, i, FS_ACL_DEFAULT, dacl, dlen);
	if (ret) {
		i->gone = true;
		goto out;
	}
	dirent_put(fs, t, parent, name, i->ino, a.mode);
	if (S_ISDIR(mode))
		dir->a.nlink++;
	dir->a.mtime = dir->a.ctime = a.mtime;
	fs_put_inode(fs, t, dir);
	ret = fs_commit(fs, t, NULL, false);
	if (ret) {
		/* Not in the store: make sure nothing deletes or flushes it. */
		i->gone = true;
		if (S_ISDIR(mode))
			dir->a.nlink--;
		dir->loaded = false;
		goto out;
	}
	fs_attr_fill(fs, i, out);
	fs_inode_ref(fs, i, 1, open ? 1 : 0);
out:
	free(dacl);
	free(acl);
	journal_txn_free(t);
	fs_inode_unlock(fs, i);
	fs_inode_unlock(fs, dir);
	return ret;
}

int fs_mknod(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	     const char *name, uint32_t mode, uint64_t rdev, struct fs_attr *out)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
	case S_IFCHR:
	case S_IFBLK:
		break;
	case 0:
		mode |= S_IFREG;
		break;
	default:
		return -EINVAL;
	}
	if (!S_ISCHR(mode) && !S_ISBLK(mode))
		rdev = 0;
	return make_node(fs, ctx, parent, name, mode, rdev, NULL, false, out);
}

int fs_mkdir(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	     const char *name, uint32_t mode, struct fs_attr *out)
{
	return make_node(fs, ctx, parent, name, S_IFDIR | (mode & 07777), 0,
			 NULL, false, out);
}

int fs_symlink(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	       const char *name, const char *target, struct fs_attr *out)
{
	size_t n = strlen(target);

	if (n == 0)
		return -ENOENT;
	if (n > FS_SYMLINK_MAX)
		return -ENAMETOOLONG;
	return make_node(fs, ctx, parent, name, S_IFLNK | 0777, 0, target,
			 false, out);
}

int fs_create(struct fs *fs, const struct fs_ctx *ctx, uint64_t parent,
	      const char *name, uint32_t mode, int flags, struct fs_attr *out)
{
	(void)flags;
	return make_node(fs, ctx, parent, name, S_IFREG | (mode & 07777), 0,
			 NULL, true, out);
}

int fs_readlink(struct fs *fs, uint64_t ino, char *buf, size_t cap)
{
	struct fs_inode *i;
	size_t n;
	int ret;

	ret = fs_inode_lock(fs, ino, false, &i);
	if (ret)
		return ret;
	if (!S_ISLNK(i->a.mode) || !i->symlink) {
		ret = -EINVAL;
	} else {
		n = strlen(i->symlink);
		if (n + 1 > cap) {
			ret = -ERANGE;
		} else {
			memcpy(buf, i->symlink, n + 1);
		}
	}
	fs_inode_unlock(fs, i);
	return ret;
}

int fs_link(struct fs *fs, uint64_t ino, uint64_t newparent,
	    const char *newname, struct fs_attr *out)
{
	uint64_t inos[2] = { newparent, ino };
	struct fs_inode *set[2];
	struct journal_txn *t = NULL;
	struct fs_inode *dir, *i;
	struct timespec now;
	struct dent d;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	ret = name_check(newname);
	if (ret)
		return ret;
	ret = fs_lock_set(fs, inos, 2, set);
	if (ret)
		return ret;
	dir = set[0];
	i = set[1];
	if (!S_ISDIR(dir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (S_ISDIR(i->a.mode)) {
		ret = -EPERM;
		goto out;
	}
	if (i->a.nlink == 0 || dir->a.nlink == 0) {
		ret = -ENOENT;
		goto out;
	}
	if (i->a.nlink >= LINK_MAX_COUNT) {
		ret = -EMLINK;
		goto out;
	}
	ret = dirent_get(fs, newparent, newname, &d);
	if (ret == 0)
		ret = -EEXIST;
	if (ret != -ENOENT)
		goto out;
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_now(&now);
	i->a.nlink++;
	i->a.ctime = now;
	dir->a.mtime = dir->a.ctime = now;
	dirent_put(fs, t, newparent, newname, ino, i->a.mode);
	fs_put_inode(fs, t, i);
	fs_put_inode(fs, t, dir);
	ret = fs_commit(fs, t, NULL, false);
	if (ret) {
		i->loaded = dir->loaded = false;
		goto out;
	}
	fs_attr_fill(fs, i, out);
	fs_inode_ref(fs, i, 1, 0);
out:
	journal_txn_free(t);
	fs_unlock_set(fs, set, 2);
	return ret;
}

/* Take one link from i (its entry is being removed) in t. */
static void drop_link(struct fs *fs, struct journal_txn *t, struct fs_inode *i,
		      const struct timespec *now)
{
	if (S_ISDIR(i->a.mode))
		i->a.nlink = 0;
	else if (i->a.nlink)
		i->a.nlink--;
	i->a.ctime = *now;
	fs_put_inode(fs, t, i);
	/*
	 * Keep it until the last holder lets go (fs_inode_put deletes it);
	 * the orphan mark makes the next mount delete it after a crash.
	 */
	if (i->a.nlink == 0)
		fs_orphan_add(fs, t, i->ino);
}

static int remove_entry(struct fs *fs, uint64_t parent, const char *name,
			bool want_dir)
{
	struct fs_inode *set[2];
	struct journal_txn *t = NULL;
	struct fs_inode *dir, *i;
	struct timespec now;
	struct dent d;
	int ret;

	if (fs->rdonly)
		return -EROFS;
	ret = name_check(name);
	if (ret)
		return ret;
	for (;;) {
		uint64_t inos[2];
		struct dent again;

		ret = dirent_get(fs, parent, name, &d);
		if (ret)
			return ret;
		inos[0] = parent;
		inos[1] = d.ino;
		ret = fs_lock_set(fs, inos, 2, set);
		if (ret)
			return ret;
		ret = dirent_get(fs, parent, name, &again);
		if (ret == 0 && again.ino == d.ino)
			break;
		fs_unlock_set(fs, set, 2);
		if (ret)
			return ret;
	}
	dir = set[0];
	i = set[1];
	if (!S_ISDIR(dir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (want_dir && !S_ISDIR(i->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (!want_dir && S_ISDIR(i->a.mode)) {
		ret = -EISDIR;
		goto out;
	}
	if (want_dir) {
		ret = dir_is_empty(fs, i->ino);
		if (ret)
			goto out;
	}
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_now(&now);
	dirent_del(fs, t, parent, name);
	drop_link(fs, t, i, &now);
	if (want_dir)
		dir->a.nlink--;
	dir->a.mtime = dir->a.ctime = now;
	fs_put_inode(fs, t, dir);
	ret = fs_commit(fs, t, NULL, false);
	if (ret)
		i->loaded = dir->loaded = false;
out:
	journal_txn_free(t);
	fs_unlock_set(fs, set, 2);
	return ret;
}

int fs_unlink(struct fs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, false);
}

int fs_rmdir(struct fs *fs, uint64_t parent, const char *name)
{
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	return remove_entry(fs, parent, name, true);
}

static int do_rename(struct fs *fs, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname, unsigned flags)
{
	struct fs_inode *set[4] = { NULL };
	struct fs_inode *sdir, *ddir, *src, *dst;
	struct journal_txn *t = NULL;
	struct dent sd, dd;
	struct timespec now;
	uint64_t inos[4];
	bool have_dst;
	int ret;

	ret = dirent_get(fs, parent, name, &sd);
	if (ret)
		return ret;
	ret = dirent_get(fs, newparent, newname, &dd);
	if (ret && ret != -ENOENT)
		return ret;
	have_dst = ret == 0;
	inos[0] = parent;
	inos[1] = newparent;
	inos[2] = sd.ino;
	inos[3] = have_dst ? dd.ino : 0;
	ret = fs_lock_set(fs, inos, 4, set);
	if (ret)
		return ret;
	sdir = set[0];
	ddir = set[1];
	src = set[2];
	dst = set[3];
	/* The names cannot move under rename_lock, but check the entries anyway. */
	{
		struct dent a, b;
		int r2;

		ret = dirent_get(fs, parent, name, &a);
		r2 = dirent_get(fs, newparent, newname, &b);
		if (ret || a.ino != sd.ino || (have_dst ? (r2 || b.ino != dd.ino)
							: r2 != -ENOENT)) {
			ret = ret ? ret : -EAGAIN;
			goto out;
		}
	}
	if (!S_ISDIR(sdir->a.mode) || !S_ISDIR(ddir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (ddir->a.nlink == 0) {
		ret = -ENOENT;
		goto out;
	}
	if (flags & FS_RENAME_EXCHANGE) {
		if (!have_dst) {
			ret = -ENOENT;
			goto out;
		}
	} else if (have_dst) {
		if (flags & FS_RENAME_NOREPLACE) {
			ret = -EEXIST;
			goto out;
		}
		if (dst == src) {
			ret = 0;	/* two links to one inode: nothing to do */
			goto out;
		}
		if (S_ISDIR(src->a.mode) && !S_ISDIR(dst->a.mode)) {
			ret = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(src->a.mode) && S_ISDIR(dst->a.mode)) {
			ret = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dst->a.mode)) {
			ret = dir_is_empty(fs, dst->ino);
			if (ret)
				goto out;
		}
	}
	ret = journal_txn_new(fs->j, &t);
	if (ret)
		goto out;
	fs_now(&now);
	if (flags & FS_RENAME_EXCHANGE) {
		dirent_put(fs, t, parent, name, dst->ino, dst->a.mode);
		dirent_put(fs, t, newparent, newname, src->ino, src->a.mode);
		if (sdir != ddir) {
			if (S_ISDIR(src->a.mode)) {
				sdir->a.nlink--;
				ddir->a.nlink++;
			}
			if (S_ISDIR(dst->a.mode)) {
				ddir->a.nlink--;
				sdir->a.nlink++;
			}
		}
		dst->a.ctime = now;
		fs_put_inode(fs, t, dst);
	} else {
		dirent_del(fs, t, parent, name);
		dirent_put(fs, t, newparent, newname, src->ino, src->a.mode);
		if (have_dst) {
			drop_link(fs, t, dst, &now);
			if (S_ISDIR(dst->a.mode))
				ddir->a.nlink--;
		}
		if (S_ISDIR(src->a.mode) && sdir != ddir) {
			sdir->a.nlink--;
			ddir->a.nlink++;
		}
	}
	src->a.ctime = now;
	fs_put_inode(fs, t, src);
	sdir->a.mtime = sdir->a.ctime = now;
	ddir->a.mtime = ddir->a.ctime = now;
	fs_put_inode(fs, t, sdir);
	if (ddir != sdir)
		fs_put_inode(fs, t, ddir);
	ret = fs_commit(fs, t, NULL, false);
	if (ret)
		for (int k = 0; k < 4; k++)
			if (set[k])
				set[k]->loaded = false;
out:
	journal_txn_free(t);
	fs_unlock_set(fs, set, 4);
	return ret;
}

int fs_rename(struct fs *fs, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned flags)
{
	int ret;

	if (fs->rdonly)
		return -EROFS;
	if (flags & ~(unsigned)(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE) ||
	    (flags & FS_RENAME_NOREPLACE && flags & FS_RENAME_EXCHANGE))
		return -EINVAL;
	ret = name_check(name);
	if (ret == 0)
		ret = name_check(newname);
	if (ret)
		return ret;
	pthread_mutex_lock(&fs->rename_lock);
	do
		ret = do_rename(fs, parent, name, newparent, newname, flags);
	while (ret == -EAGAIN);
	pthread_mutex_unlock(&fs->rename_lock);
	return ret;
}

int fs_open_file(struct fs *fs, uint64_t ino, int flags)
{
	struct fs_inode *i;
	int ret;

	(void)flags;
	ret = fs_inode_lock(fs, ino, false, &i);
	if (ret)
		return ret;
	if (S_ISDIR(i->a.mode) && (flags & O_ACCMODE) != O_RDONLY)
		ret = -EISDIR;
	else
		fs_inode_ref(fs, i, 0, 1);
	fs_inode_unlock(fs, i);
	return ret;
}

int fs_release(struct fs *fs, uint64_t ino)
{
	struct fs_inode *i;
	int ret;

	ret = fs_inode_lock(fs, ino, true, &i);
	if (ret)
		return ret;
	if (i->ndirty || i->attr_dirty)
		ret = fs_data_flush(fs, i, false);
	fs_inode_ref(fs, i, 0, -1);
	fs_inode_unlock(fs, i);
	return ret;
}

static uint64_t hash_off(const uint8_t *h)
{
	return (get_be64(h) >> 2) + OFF_FIRST;
}

int fs_readdir(struct fs *fs, uint64_t ino, uint64_t off, fs_dirent_fn *fn,
	       void *arg)
{
	struct store_iter *it = NULL;
	struct fs_inode *dir;
	uint8_t seek[16];
	int ret;

	ret = fs_inode_lock(fs, ino, false, &dir);
	if (ret)
		return ret;
	if (!S_ISDIR(dir->a.mode)) {
		ret = -ENOTDIR;
		goto out;
	}
	if (off == 0 && fn(arg, ".", ino, S_IFDIR, 1))
		goto out;
	if (off <= 1 && fn(arg, "..", ino == FS_ROOT_INO ? ino : FS_ROOT_INO,
			   S_IFDIR, 2))
		goto out;
	ret = store_iter_new(fs->st, STORE_CF_DIRENT, &it);
	if (ret)
		goto out;
	put_be64(seek, ino);
	put_be64(seek + 8, off < OFF_FIRST ? 0 : (off - OFF_FIRST) << 2);
	for (store_iter_seek(it, seek, sizeof(seek)); store_iter_valid(it);
	     store_iter_next(it)) {
		char name[FS_NAME_MAX + 1];
		size_t klen, vlen;
		const uint8_t *k = store_iter_key(it, &klen);
		const uint8_t *v = store_iter_value(it, &vlen);
		struct dent d;

		if (klen != DIRENT_KEY_BYTES || memcmp(k, seek, 8))
			break;
		if (hash_off(k + 8) < off)
			continue;
		ret = dirent_decode(fs, k, v, vlen, &d, name);
		if (ret) {
			fs_corrupt(fs, ino, "directory entry fails authentication");
			goto out;
		}
		if (fn(arg, name, d.ino, d.type << 12, hash_off(k + 8) + 1))
			break;
	}
	ret = store_iter_status(it);
out:
	store_iter_free(it);
	fs_inode_unlock(fs, dir);
	return ret;
}

/*
 * readdirplus in two steps: names under the directory's lock, then each
 * child's attributes after it is released. Locking a child while holding
 * the directory could deadlock with unlink, which locks by inode number.
 */
#define PLUS_BATCH 128

struct plus_ent {
	char name[FS_NAME_MAX + 1];
	uint64_t ino;
	uint32_t mode;
	uint64_t next;
};

struct plus_ctx {
	struct plus_ent *e;
	size_t n;
};

static int plus_gather(void *arg, const char *name, uint64_t ino,
		       uint32_t mode, uint64_t next)
{
	struct plus_ctx *c = arg;

	if (c->n == PLUS_BATCH)
		return 1;
	snprintf(c->e[c->n].name, sizeof(c->e[c->n].name), "%s", name);
	c->e[c->n].ino = ino;
	c->e[c->n].mode = mode;
	c->e[c->n].next = next;
	c->n++;
	return 0;
}

int fs_readdirplus(struct fs *fs, uint64_t ino, uint64_t off,
		   fs_direntplus_fn *fn, void *arg)
{
	struct plus_ctx c = { NULL, 0 };
	int ret;

	c.e = malloc(PLUS_BATCH * sizeof(*c.e));
	if (!c.e)
		return -ENOMEM;
	for (;;) {
		size_t q;

		c.n = 0;
		ret = fs_readdir(fs, ino, off, plus_gather, &c);
		if (ret || c.n == 0)
			break;
		for (q = 0; q < c.n; q++) {
			struct plus_ent *e = &c.e[q];
			struct fs_attr a;
			struct fs_inode *i;
			int full;

			if (!strcmp(e->name, ".") || !strcmp(e->name, "..")) {
				memset(&a, 0, sizeof(a));
				a.ino = e->ino;
				a.mode = e->mode;
				full = fn(arg, e->name, &a, e->next);
			} else {
				ret = fs_inode_lock(fs, e->ino, false, &i);
				if (ret == -ENOENT) {
					/* Removed meanwhile: skip it. */
					off = e->next;
					ret = 0;
					continue;
				}
				if (ret)
					goto out;
				fs_attr_fill(fs, i, &a);
				full = fn(arg, e->name, &a, e->next);
				if (!full)
					fs_inode_ref(fs, i, 1, 0);
				fs_inode_unlock(fs, i);
			}
			if (full)
				goto out;
			off = e->next;
		}
		if (c.n < PLUS_BATCH)
			break;
	}
out:
	free(c.e);
	return ret;
}

int fs_fsyncdir(struct fs *fs, uint64_t ino)
{
	(void)ino;
	if (fs->rdonly)
		return 0;
	return journal_sync(fs->j);
}
