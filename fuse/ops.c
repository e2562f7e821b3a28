/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * ops.c - FUSE low-level handlers: translation to fs.h, nothing more
 *
 * Each handler decodes its request, makes one fs_* call and sends exactly
 * one of the replies that fuse_lowlevel.h allows for the operation; a
 * failure goes out as fuse_reply_err(req, -rc). Inode numbers are the
 * store's (FS_ROOT_INO == FUSE_ROOT_ID) and file handles are not used: the
 * fs keeps its own open counts per inode.
 *
 * Left out on purpose: getlk/setlk/flock (the kernel then does POSIX and
 * BSD locks itself, which is right for a single-host mount),
 * access (default_permissions), ioctl, poll, bmap, copy_file_range.
 */
#include "fuse_int.h"

#include <errno.h>
#include <stdbool.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

_Static_assert(FS_ROOT_INO == FUSE_ROOT_ID, "root inode numbers differ");

static struct fs *efs_fs(fuse_req_t req)
{
	const struct efs *e = fuse_req_userdata(req);

	return e->fs;
}

/*
 * FUSE_HANDLE_KILLPRIV_V2 (init.c): the kernel leaves dropping setuid and
 * setgid to the daemon. As the VFS does: chown of a non-directory drops
 * them always; a truncate, a write that reaches the daemon uncached (the
 * kernel sends those of a setuid file so) and a fallocate drop them unless
 * the caller has CAP_FSETID. setgid goes only with group execute
 * (otherwise it marks mandatory locking). O_TRUNC must keep arriving as a
 * setattr of size (no ATOMIC_O_TRUNC, see efs_init): an open's kill flag
 * is not handled. chown(f, -1, -1) reaches the daemon as a bare ctime
 * change and keeps the bits (a gap of the protocol).
 *
 * Whether the caller has CAP_FSETID: the kernel says so in a write's
 * FUSE_WRITE_KILL_SUIDGID flag, which libfuse 3.14 does not pass on but
 * leaves in front of the data it hands to efs_write (the request's
 * fuse_write_in, checked against the call's size and offset); otherwise,
 * and for setattr and fallocate, uid 0 stands for it.
 */
static uint32_t killpriv_bits(uint32_t mode)
{
	uint32_t drop = mode & S_ISUID;

	if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		drop |= S_ISGID;
	return drop;
}

/* Add the mode change that set needs under KILLPRIV_V2 to in/set. */
static int killpriv_setattr(fuse_req_t req, uint64_t ino, struct fs_attr *in,
			    unsigned *set)
{
	const struct efs *e = fuse_req_userdata(req);
	struct fs_attr cur;
	bool chown = *set & (FS_SET_UID | FS_SET_GID);
	bool trunc = (*set & FS_SET_SIZE) && fuse_req_ctx(req)->uid != 0;
	uint32_t drop;
	int rc;

	if (!e->killpriv || (*set & FS_SET_MODE) || (!chown && !trunc))
		return 0;
	rc = fs_getattr(e->fs, ino, &cur);
	if (rc)
		return rc;
	if (S_ISDIR(cur.mode) || (!chown && !S_ISREG(cur.mode)))
		return 0;
	drop = killpriv_bits(cur.mode);
	if (drop) {
		*set |= FS_SET_MODE;
		in->mode = cur.mode & ~drop;
	}
	return 0;
}

/*
 * Drop setuid/setgid of a regular file before a change to its data by a
 * caller without CAP_FSETID, and have the kernel forget the mode it cached:
 * with the writeback cache it would trust it for the attribute timeout.
 * (Attributes only: the caller's request holds the inode lock, which this
 * does not take.)
 */
static int killpriv_data(fuse_req_t req, uint64_t ino)
{
	const struct efs *e = fuse_req_userdata(req);
	struct fs_attr cur, in, out;
	uint32_t drop;
	int rc;

	rc = fs_getattr(e->fs, ino, &cur);
	if (rc)
		return rc;
	drop = S_ISREG(cur.mode) ? killpriv_bits(cur.mode) : 0;
	if (!drop)
		return 0;
	memset(&in, 0, sizeof(in));
	in.ino = ino;
	in.mode = cur.mode & ~drop;
	rc = fs_setattr(e->fs, ino, &in, FS_SET_MODE, &out);
	if (rc == 0 && e->se)
		(void)fuse_lowlevel_notify_inval_inode(e->se, ino, -1, 0);
	return rc;
}

/* Does this write, which reached the daemon uncached, drop setuid/setgid? */
static bool killpriv_write_kills(fuse_req_t req, const char *buf, size_t size,
				 off_t off, const struct fuse_file_info *fi)
{
	struct fuse_write_in w;

	if (fi->writepage)
		return false;
	memcpy(&w, buf - sizeof(w), sizeof(w));
	if (w.size == size && w.offset == (uint64_t)off)
		return w.write_flags & FUSE_WRITE_KILL_SUIDGID;
	return fuse_req_ctx(req)->uid != 0;
}

static void efs_req_ctx(fuse_req_t req, struct fs_ctx *ctx)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	ctx->uid = (uint32_t)fc->uid;
	ctx->gid = (uint32_t)fc->gid;
	ctx->umask = (uint32_t)fc->umask;
}

static void efs_attr_to_stat(const struct fs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = (ino_t)a->ino;
	st->st_mode = (mode_t)a->mode;
	st->st_nlink = (nlink_t)a->nlink;
	st->st_uid = (uid_t)a->uid;
	st->st_gid = (gid_t)a->gid;
	st->st_rdev = (dev_t)a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = (blksize_t)a->blksize;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void efs_fill_entry(struct fuse_entry_param *e, const struct fs_attr *a)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->generation;
	efs_attr_to_stat(a, &e->attr);
	e->attr_timeout = EFS_TIMEOUT;
	e->entry_timeout = EFS_TIMEOUT;
}

static void efs_reply_entry(fuse_req_t req, int rc, const struct fs_attr *a)
{
	struct fuse_entry_param e;

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	efs_fill_entry(&e, a);
	fuse_reply_entry(req, &e);
}

static void efs_reply_attr(fuse_req_t req, int rc, const struct fs_attr *a)
{
	struct stat st;

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	efs_attr_to_stat(a, &st);
	fuse_reply_attr(req, &st, EFS_TIMEOUT);
}

/*
 * The kernel takes ENOSYS from fsync, fsyncdir or flush to mean "never ask
 * again" and then reports every later call as done: silent data loss. No
 * failure of ours may read like that.
 */
static int efs_no_enosys(int rc)
{
	return rc == -ENOSYS ? -EIO : rc;
}

static void efs_init(void *userdata, struct fuse_conn_info *conn)
{
	const struct efs *e = userdata;

	/*
	 * All writes come through this mount, so the kernel may keep dirty
	 * pages and send them in large pieces; fsync still reaches fs_fsync.
	 * The kernel then owns mtime/ctime of written files.
	 */
	if (e->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		fs_set_kernel_cmtime(e->fs, true);
	} else if (e->writeback)
		log_warn("the kernel offers no writeback cache; writes go "
			 "through one by one");
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/*
	 * POSIX ACLs: the kernel enforces them from the system.posix_acl_*
	 * xattrs, while fs keeps mode and ACL in step and applies a default
	 * ACL or else the umask to new inodes, so the kernel must pass the
	 * mode unmasked (DONT_MASK) along with the caller's umask.
	 */
	if ((conn->capable & FUSE_CAP_POSIX_ACL) &&
	    (conn->capable & FUSE_CAP_DONT_MASK))
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
	/*
	 * libfuse asks for atomic O_TRUNC by default; fs_open_file() does not
	 * truncate, so have the kernel send O_TRUNC as a setattr of size 0.
	 * Setuid/setgid on write, truncate and chown: the kernel drops them
	 * (sending the mode change as a setattr), unless init.c obtained
	 * HANDLE_KILLPRIV_V2, which leaves it to killpriv_*() above; never
	 * the older HANDLE_KILLPRIV, whose rules differ.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	conn->max_write = EFS_MAX_IO;
	conn->max_readahead = EFS_MAX_IO;
	/*
	 * conn->max_read stays as the session was given it (-o max_read,
	 * unlimited by default): libfuse refuses the connection when init()
	 * changes it alone. Read size is bounded by max_readahead instead.
	 */
	log_dbg(LOG_DBG_FUSE, "fuse: protocol %u.%u, capable 0x%x, want 0x%x",
		conn->proto_major, conn->proto_minor, conn->capable,
		conn->want);
}

static void efs_destroy(void *userdata)
{
	const struct efs *e = userdata;
	int rc;

	if (e->rdonly)
		return;
	rc = fs_sync(e->fs);
	if (rc)
		log_err("cannot sync the volume at unmount: %s", strerror(-rc));
}

static void efs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct fs_attr a;
	int rc;

	rc = fs_lookup(efs_fs(req), parent, name, &a);
	if (rc == -ENOENT) {
		/* A negative entry the kernel may cache as long as a positive
		 * one. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = EFS_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	efs_reply_entry(req, rc, &a);
}

static void efs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget(efs_fs(req), ino, nlookup);
	fuse_reply_none(req);
}

static void efs_forget_multi(fuse_req_t req, size_t count,
			     struct fuse_forget_data *forgets)
{
	struct fs *fs = efs_fs(req);

	for (size_t i = 0; i < count; i++)
		fs_forget(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void efs_getattr(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	struct fs_attr a;
	int rc;

	(void)fi;
	rc = fs_getattr(efs_fs(req), ino, &a);
	efs_reply_attr(req, rc, &a);
}

static void efs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			int to_set, struct fuse_file_info *fi)
{
	struct fs_attr in, out;
	unsigned set = 0;
	int rc;

	(void)fi; /* the size of an open file is set the same way */
	memset(&in, 0, sizeof(in));
	in.ino = ino;
	if (to_set & FUSE_SET_ATTR_MODE) {
		set |= FS_SET_MODE;
		in.mode = (uint32_t)attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		set |= FS_SET_UID;
		in.uid = (uint32_t)attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		set |= FS_SET_GID;
		in.gid = (uint32_t)attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (attr->st_size < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		set |= FS_SET_SIZE;
		in.size = (uint64_t)attr->st_size;
	}
	/* The kernel sends ATIME with ATIME_NOW (and MTIME with MTIME_NOW). */
	in.atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		set |= FS_SET_ATIME_NOW;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		set |= FS_SET_ATIME;
	in.mtime = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		set |= FS_SET_MTIME_NOW;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		set |= FS_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_CTIME) {
		set |= FS_SET_CTIME;
		in.ctime = attr->st_ctim;
	}
	rc = killpriv_setattr(req, ino, &in, &set);
	if (rc == 0)
		rc = fs_setattr(efs_fs(req), ino, &in, set, &out);
	efs_reply_attr(req, rc, &out);
}

static void efs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[FS_SYMLINK_MAX + 1];
	int rc;

	rc = fs_readlink(efs_fs(req), ino, buf, sizeof(buf));
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, buf);
}

static void efs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, dev_t rdev)
{
	struct fs_ctx ctx;
	struct fs_attr a;
	int rc;

	efs_req_ctx(req, &ctx);
	rc = fs_mknod(efs_fs(req), &ctx, parent, name, (uint32_t)mode,
		      (uint64_t)rdev, &a);
	efs_reply_entry(req, rc, &a);
}

static void efs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode)
{
	struct fs_ctx ctx;
	struct fs_attr a;
	int rc;

	efs_req_ctx(req, &ctx);
	rc = fs_mkdir(efs_fs(req), &ctx, parent, name, (uint32_t)mode, &a);
	efs_reply_entry(req, rc, &a);
}

static void efs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			const char *name)
{
	struct fs_ctx ctx;
	struct fs_attr a;
	int rc;

	efs_req_ctx(req, &ctx);
	rc = fs_symlink(efs_fs(req), &ctx, parent, name, link, &a);
	efs_reply_entry(req, rc, &a);
}

static void efs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		     const char *newname)
{
	struct fs_attr a;
	int rc;

	rc = fs_link(efs_fs(req), ino, newparent, newname, &a);
	efs_reply_entry(req, rc, &a);
}

static void efs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fs_unlink(efs_fs(req), parent, name));
}

static void efs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -fs_rmdir(efs_fs(req), parent, name));
}

static void efs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		       fuse_ino_t newparent, const char *newname,
		       unsigned int flags)
{
	fuse_reply_err(req, -fs_rename(efs_fs(req), parent, name, newparent,
				       newname, flags));
}

static void efs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int rc;

	rc = fs_open_file(efs_fs(req), ino, fi->flags);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* Every write comes through this mount: the page cache stays valid. */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void efs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct fs_ctx ctx;
	struct fs_attr a;
	int rc;

	efs_req_ctx(req, &ctx);
	rc = fs_create(efs_fs(req), &ctx, parent, name, (uint32_t)mode,
		       fi->flags, &a);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	efs_fill_entry(&e, &a);
	fi->keep_cache = 1;
	fuse_reply_create(req, &e, fi);
}

static void efs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n;
	char *buf;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_read(efs_fs(req), ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void efs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		      size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = 0;
	if (((const struct efs *)fuse_req_userdata(req))->killpriv &&
	    killpriv_write_kills(req, buf, size, off, fi))
		n = killpriv_data(req, ino);
	if (n == 0)
		n = fs_write(efs_fs(req), ino, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void efs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -efs_no_enosys(fs_flush(efs_fs(req), ino)));
}

static void efs_release(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(req, -fs_release(efs_fs(req), ino));
}

static void efs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi)
{
	(void)fi;
	fuse_reply_err(
	    req, -efs_no_enosys(fs_fsync(efs_fs(req), ino, datasync != 0)));
}

static void efs_opendir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi)
{
	/* Nothing to hold: fs_readdir() resumes from the offset alone. */
	(void)ino;
	fuse_reply_open(req, fi);
}

struct efs_dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t len;
};

static int efs_dirbuf_add(void *arg, const char *name, uint64_t ino,
			  uint32_t mode, uint64_t next_off)
{
	struct efs_dirbuf *d = arg;
	struct stat st;
	size_t n;

	/* fuse_add_direntry() uses only st_ino and the type bits of st_mode. */
	memset(&st, 0, sizeof(st));
	st.st_ino = (ino_t)ino;
	st.st_mode = (mode_t)mode;
	n = fuse_add_direntry(d->req, d->buf + d->len, d->size - d->len, name,
			      &st, (off_t)next_off);
	if (n > d->size - d->len)
		return 1; /* full: this entry is left for the next call */
	d->len += n;
	return 0;
}

static int efs_dirbuf_add_plus(void *arg, const char *name,
			       const struct fs_attr *a, uint64_t next_off)
{
	struct efs_dirbuf *d = arg;
	struct fuse_entry_param e;
	size_t n;

	efs_fill_entry(&e, a);
	n = fuse_add_direntry_plus(d->req, d->buf + d->len, d->size - d->len,
				   name, &e, (off_t)next_off);
	if (n > d->size - d->len)
		return 1; /* full: left for the next call, no lookup counted */
	d->len += n;
	return 0;
}

/*
 * readdir and readdirplus: fill a buffer of the kernel's size. readdirplus
 * entries carry attributes, so ls -l, find, du and rsync skip a lookup each.
 */
static void efs_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			       off_t off, bool plus)
{
	struct efs_dirbuf d;
	int rc;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	d.req = req;
	d.size = size;
	d.len = 0;
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus)
		rc = fs_readdirplus(efs_fs(req), ino, (uint64_t)off,
				    efs_dirbuf_add_plus, &d);
	else
		rc = fs_readdir(efs_fs(req), ino, (uint64_t)off, efs_dirbuf_add,
				&d);
	/*
	 * An error after some entries: send those; the next call, from the
	 * last offset, meets the error again and reports it.
	 */
	if (rc < 0 && d.len == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.len);
	free(d.buf);
}

static void efs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)fi;
	efs_readdir_common(req, ino, size, off, false);
}

static void efs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	efs_readdir_common(req, ino, size, off, true);
}

static void efs_releasedir(fuse_req_t req, fuse_ino_t ino,
			   struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void efs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			 struct fuse_file_info *fi)
{
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -efs_no_enosys(fs_fsyncdir(efs_fs(req), ino)));
}

static void efs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;
	int rc;

	(void)ino;
	memset(&st, 0, sizeof(st));
	rc = fs_statfs(efs_fs(req), &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &st);
}

static void efs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 const char *value, size_t size, int flags)
{
	fuse_reply_err(
	    req, -fs_setxattr(efs_fs(req), ino, name, value, size, flags));
}

/* Reply to getxattr/listxattr: size 0 asked for the size only. */
static void efs_reply_xattr(fuse_req_t req, size_t size, ssize_t n,
			    const char *buf)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void efs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			 size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (size) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = fs_getxattr(efs_fs(req), ino, name, buf, size);
	efs_reply_xattr(req, size, n, buf);
	free(buf);
}

static void efs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (size) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = fs_listxattr(efs_fs(req), ino, buf, size);
	efs_reply_xattr(req, size, n, buf);
	free(buf);
}

static void efs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, -fs_removexattr(efs_fs(req), ino, name));
}

static void efs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			  off_t offset, off_t length, struct fuse_file_info *fi)
{
	const struct efs *e = fuse_req_userdata(req);
	int rc = 0;

	(void)fi;
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (e->killpriv && fuse_req_ctx(req)->uid != 0)
		rc = killpriv_data(req, ino);
	if (rc == 0)
		rc = fs_fallocate(efs_fs(req), ino, mode, (uint64_t)offset,
				  (uint64_t)length);
	fuse_reply_err(req, -rc);
}

static void efs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	uint64_t out;
	int rc;

	(void)fi;
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	rc = fs_lseek(efs_fs(req), ino, (uint64_t)off, whence, &out);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_lseek(req, (off_t)out);
}

const struct fuse_lowlevel_ops efs_ops = {
    .init = efs_init,
    .destroy = efs_destroy,
    .lookup = efs_lookup,
    .forget = efs_forget,
    .forget_multi = efs_forget_multi,
    .getattr = efs_getattr,
    .setattr = efs_setattr,
    .readlink = efs_readlink,
    .mknod = efs_mknod,
    .mkdir = efs_mkdir,
    .unlink = efs_unlink,
    .rmdir = efs_rmdir,
    .symlink = efs_symlink,
    .rename = efs_rename,
    .link = efs_link,
    .open = efs_open,
    .read = efs_read,
    .write = efs_write,
    .flush = efs_flush,
    .release = efs_release,
    .fsync = efs_fsync,
    .opendir = efs_opendir,
    .readdir = efs_readdir,
    .readdirplus = efs_readdirplus,
    .releasedir = efs_releasedir,
    .fsyncdir = efs_fsyncdir,
    .statfs = efs_statfs,
    .setxattr = efs_setxattr,
    .getxattr = efs_getxattr,
    .listxattr = efs_listxattr,
    .removexattr = efs_removexattr,
    .create = efs_create,
    .fallocate = efs_fallocate,
    .lseek = efs_lseek,
};
