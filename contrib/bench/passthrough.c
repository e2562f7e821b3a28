/*
 * passthrough: a bare low-level FUSE passthrough, the measuring instrument
 * of contrib/bench/run. It adds nothing to the kernel's round trip but a
 * system call on the source directory, so what it reaches is the ceiling
 * of any FUSE filesystem on this kernel and machine: multi-threaded loop,
 * writeback cache, 1 MiB requests, splice where libfuse offers it.
 *
 *   passthrough [-f] [-s] [-o allow_other,...] SOURCE MOUNTPOINT
 *
 * Own options: -o timeout=SECONDS (entry and attribute cache, default
 * 86400 as embassyfs: every change passes through this mount),
 * -o no_writeback (disable the writeback cache).
 *
 * Inodes are identified by (st_ino, st_dev) of the source and held as
 * O_PATH descriptors. The kernel forgets inodes only under memory
 * pressure, and this machine's hard limit on open files is 20,000, while
 * the benchmark creates 10,000 and extracts about 20,000 files in one
 * mount. So the descriptors are a cache: the soft limit is raised to the
 * hard one, at most three quarters of it are kept as O_PATH descriptors
 * (least recently used first out), and an inode whose descriptor was
 * closed keeps a file handle (name_to_handle_at) from which
 * open_by_handle_at reopens it when the kernel asks for it again. That
 * needs CAP_DAC_READ_SEARCH, i.e. root, as the benchmark runs. The
 * common path pays no extra system call; only inodes evicted from the
 * cache pay one open_by_handle_at.
 *
 * Ownership of new files is the daemon's (root): the benchmark runs as
 * root; this is not a general-purpose multi-user passthrough.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define FUSE_USE_VERSION 34

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define PT_MAX_IO (1u << 20)
#define PT_HASH_BITS 16
#define PT_HASH_SIZE (1u << PT_HASH_BITS)

struct pt_inode {
	struct pt_inode *hnext;	  /* hash chain, under pt.lock */
	struct pt_inode *lprev;	  /* LRU of inodes with an fd, under pt.lock */
	struct pt_inode *lnext;
	ino_t ino;
	dev_t dev;
	uint64_t nlookup; /* kernel references, under pt.lock */
	int fd;		  /* O_PATH descriptor or -1, under pt.lock */
	int users;	  /* requests using fd right now, under pt.lock */
	struct file_handle *fh; /* set when fd was closed by eviction */
};

struct pt {
	pthread_mutex_t lock;
	struct pt_inode root;
	struct pt_inode *hash[PT_HASH_SIZE];
	struct pt_inode lru; /* sentinel: lnext is most recent */
	long nfds;	     /* O_PATH descriptors held */
	long fd_budget;
	int mount_fd; /* for open_by_handle_at: the source root, O_RDONLY */
	double timeout;
	int writeback;
	char *source;
};

struct pt_opts {
	double timeout;
	int no_writeback;
	char *source;
};

static const struct fuse_opt pt_opt_spec[] = {
	{ "timeout=%lf", offsetof(struct pt_opts, timeout), 0 },
	{ "no_writeback", offsetof(struct pt_opts, no_writeback), 1 },
	FUSE_OPT_END
};

static struct pt *pt_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct pt_inode *pt_inode(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &pt_of(req)->root;
	return (struct pt_inode *)(uintptr_t)ino;
}

static unsigned pt_hash(ino_t ino, dev_t dev)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (unsigned)(h >> (64 - PT_HASH_BITS));
}

/* LRU list helpers, under pt.lock */
static void lru_unlink(struct pt_inode *in)
{
	if (!in->lprev)
		return;
	in->lprev->lnext = in->lnext;
	in->lnext->lprev = in->lprev;
	in->lprev = in->lnext = NULL;
}

static void lru_push(struct pt *pt, struct pt_inode *in)
{
	in->lnext = pt->lru.lnext;
	in->lprev = &pt->lru;
	pt->lru.lnext->lprev = in;
	pt->lru.lnext = in;
}

/*
 * Close the least recently used descriptors nobody is using until the
 * budget holds. Each keeps a handle to be reopened from. Under pt.lock.
 */
static void pt_evict(struct pt *pt)
{
	struct pt_inode *in = pt->lru.lprev;

	while (pt->nfds > pt->fd_budget && in != &pt->lru) {
		struct pt_inode *prev = in->lprev;

		if (in->users == 0 && in != &pt->root) {
			if (!in->fh) {
				int mnt;
				struct file_handle *fh =
					malloc(sizeof(*fh) + MAX_HANDLE_SZ);

				if (!fh)
					break;
				fh->handle_bytes = MAX_HANDLE_SZ;
				if (name_to_handle_at(in->fd, "", fh, &mnt,
						      AT_EMPTY_PATH) != 0) {
					free(fh);
					in = prev;
					continue;
				}
				in->fh = fh;
			}
			close(in->fd);
			in->fd = -1;
			pt->nfds--;
			lru_unlink(in);
		}
		in = prev;
	}
}

/* A usable O_PATH descriptor of in; give it back with pt_put(). */
static int pt_get(struct pt *pt, struct pt_inode *in)
{
	int fd;

	pthread_mutex_lock(&pt->lock);
	if (in->fd < 0) {
		pthread_mutex_unlock(&pt->lock);
		if (!in->fh)
			return -ESTALE;
		fd = open_by_handle_at(pt->mount_fd, in->fh, O_PATH);
		if (fd < 0)
			return -errno;
		pthread_mutex_lock(&pt->lock);
		if (in->fd < 0) {
			in->fd = fd;
			pt->nfds++;
			lru_push(pt, in);
			pt_evict(pt);
		} else {
			close(fd);
		}
	} else if (in != &pt->root) {
		lru_unlink(in);
		lru_push(pt, in);
	}
	in->users++;
	fd = in->fd;
	pthread_mutex_unlock(&pt->lock);
	return fd;
}

static void pt_put(struct pt *pt, struct pt_inode *in)
{
	pthread_mutex_lock(&pt->lock);
	in->users--;
	pthread_mutex_unlock(&pt->lock);
}

static void proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static void pt_init(void *userdata, struct fuse_conn_info *conn)
{
	struct pt *pt = userdata;

	if (pt->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/*
	 * No splice: for the small requests that dominate metadata and
	 * random I/O it costs more than the copy it saves (libfuse's own
	 * default; -o splice_read,splice_write,splice_move turn it on).
	 */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	conn->max_write = PT_MAX_IO;
	conn->max_readahead = PT_MAX_IO;
}

static void pt_destroy(void *userdata)
{
	struct pt *pt = userdata;

	for (unsigned i = 0; i < PT_HASH_SIZE; i++) {
		struct pt_inode *in = pt->hash[i];

		while (in) {
			struct pt_inode *next = in->hnext;

			if (in->fd >= 0)
				close(in->fd);
			free(in->fh);
			free(in);
			in = next;
		}
		pt->hash[i] = NULL;
	}
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	struct stat st;
	int fd, rc;

	if (fi) {
		rc = fstat((int)fi->fh, &st);
	} else {
		fd = pt_get(pt, in);
		if (fd < 0) {
			fuse_reply_err(req, -fd);
			return;
		}
		rc = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		pt_put(pt, in);
	}
	if (rc != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, pt->timeout);
}

/* Find or add the inode of an O_PATH fd; takes over fd. */
static struct pt_inode *pt_intern(struct pt *pt, int fd, const struct stat *st)
{
	unsigned h = pt_hash(st->st_ino, st->st_dev);
	struct pt_inode *in;

	pthread_mutex_lock(&pt->lock);
	for (in = pt->hash[h]; in; in = in->hnext)
		if (in->ino == st->st_ino && in->dev == st->st_dev)
			break;
	if (in) {
		in->nlookup++;
		if (in->fd < 0) {
			in->fd = fd;
			pt->nfds++;
			lru_push(pt, in);
			pt_evict(pt);
		} else {
			close(fd);
		}
		pthread_mutex_unlock(&pt->lock);
		return in;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&pt->lock);
		close(fd);
		return NULL;
	}
	in->ino = st->st_ino;
	in->dev = st->st_dev;
	in->nlookup = 1;
	in->fd = fd;
	in->hnext = pt->hash[h];
	pt->hash[h] = in;
	pt->nfds++;
	lru_push(pt, in);
	pt_evict(pt);
	pthread_mutex_unlock(&pt->lock);
	return in;
}

static int pt_do_lookup(struct pt *pt, struct pt_inode *dir, const char *name,
			struct fuse_entry_param *e)
{
	struct pt_inode *in;
	int dfd, fd, err;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = pt->timeout;
	e->entry_timeout = pt->timeout;
	dfd = pt_get(pt, dir);
	if (dfd < 0)
		return -dfd;
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	pt_put(pt, dir);
	if (fd < 0)
		return err;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		err = errno;
		close(fd);
		return err;
	}
	in = pt_intern(pt, fd, &e->attr);
	if (!in)
		return ENOMEM;
	e->ino = (uintptr_t)in;
	return 0;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = pt_do_lookup(pt_of(req), pt_inode(req, parent), name, &e);

	if (err == ENOENT) {
		/* negative entry, cached like positive ones */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = pt_of(req)->timeout;
		fuse_reply_entry(req, &e);
	} else if (err) {
		fuse_reply_err(req, err);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void pt_forget_one(struct pt *pt, fuse_ino_t ino, uint64_t n)
{
	struct pt_inode *in, **pp;

	if (ino == FUSE_ROOT_ID)
		return;
	in = (struct pt_inode *)(uintptr_t)ino;
	pthread_mutex_lock(&pt->lock);
	in->nlookup -= n < in->nlookup ? n : in->nlookup;
	if (in->nlookup) {
		pthread_mutex_unlock(&pt->lock);
		return;
	}
	pp = &pt->hash[pt_hash(in->ino, in->dev)];
	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = in->hnext;
	lru_unlink(in);
	if (in->fd >= 0) {
		close(in->fd);
		pt->nfds--;
	}
	pthread_mutex_unlock(&pt->lock);
	free(in->fh);
	free(in);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	pt_forget_one(pt_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		pt_forget_one(pt_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	char path[64];
	int fd, rc = 0;

	fd = pt_get(pt, in);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	proc_path(path, sizeof(path), fd);
	if (valid & FUSE_SET_ATTR_MODE) {
		rc = fi ? fchmod((int)fi->fh, attr->st_mode)
			: chmod(path, attr->st_mode);
		if (rc)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid
							: (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid
							: (gid_t)-1;

		rc = fchownat(fd, "", uid, gid,
			      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (rc)
			goto out;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		rc = fi ? ftruncate((int)fi->fh, attr->st_size)
			: truncate(path, attr->st_size);
		if (rc)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		     FUSE_SET_ATTR_CTIME)) {
		struct timespec tv[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (tv[0].tv_nsec != UTIME_OMIT || tv[1].tv_nsec != UTIME_OMIT) {
			if (fi)
				rc = futimens((int)fi->fh, tv);
			else
				rc = utimensat(AT_FDCWD, path, tv, 0);
			if (rc)
				goto out;
		}
	}
out:
	if (rc) {
		int err = errno;

		pt_put(pt, in);
		fuse_reply_err(req, err);
		return;
	}
	pt_put(pt, in);
	pt_getattr(req, ino, fi);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t n;
	int fd = pt_get(pt, in);

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	n = readlinkat(fd, "", buf, sizeof(buf));
	pt_put(pt, in);
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* mknod, mkdir, symlink: make the node, then look it up. */
static void pt_make(fuse_req_t req, fuse_ino_t parent, const char *name,
		    mode_t mode, dev_t rdev, const char *link)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *dir = pt_inode(req, parent);
	struct fuse_entry_param e;
	int dfd, rc, err;

	dfd = pt_get(pt, dir);
	if (dfd < 0) {
		fuse_reply_err(req, -dfd);
		return;
	}
	if (link)
		rc = symlinkat(link, dfd, name);
	else if (S_ISDIR(mode))
		rc = mkdirat(dfd, name, mode & 07777);
	else
		rc = mknodat(dfd, name, mode, rdev);
	err = errno;
	pt_put(pt, dir);
	if (rc) {
		fuse_reply_err(req, err);
		return;
	}
	err = pt_do_lookup(pt, dir, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	pt_make(req, parent, name, mode, rdev, NULL);
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	pt_make(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	pt_make(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		    const char *name)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	struct pt_inode *dir = pt_inode(req, parent);
	struct fuse_entry_param e;
	char path[64];
	int fd, dfd, rc, err;

	fd = pt_get(pt, in);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	dfd = pt_get(pt, dir);
	if (dfd < 0) {
		pt_put(pt, in);
		fuse_reply_err(req, -dfd);
		return;
	}
	proc_path(path, sizeof(path), fd);
	rc = linkat(AT_FDCWD, path, dfd, name, AT_SYMLINK_FOLLOW);
	err = errno;
	pt_put(pt, dir);
	pt_put(pt, in);
	if (rc) {
		fuse_reply_err(req, err);
		return;
	}
	err = pt_do_lookup(pt, dir, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

static void pt_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
		      int flags)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *dir = pt_inode(req, parent);
	int dfd = pt_get(pt, dir), rc, err;

	if (dfd < 0) {
		fuse_reply_err(req, -dfd);
		return;
	}
	rc = unlinkat(dfd, name, flags);
	err = errno;
	pt_put(pt, dir);
	fuse_reply_err(req, rc ? err : 0);
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pt_remove(req, parent, name, 0);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	pt_remove(req, parent, name, AT_REMOVEDIR);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *a = pt_inode(req, parent);
	struct pt_inode *b = pt_inode(req, newparent);
	int afd, bfd, rc, err;

	afd = pt_get(pt, a);
	if (afd < 0) {
		fuse_reply_err(req, -afd);
		return;
	}
	bfd = pt_get(pt, b);
	if (bfd < 0) {
		pt_put(pt, a);
		fuse_reply_err(req, -bfd);
		return;
	}
	rc = renameat2(afd, name, bfd, newname, flags);
	err = errno;
	pt_put(pt, b);
	pt_put(pt, a);
	fuse_reply_err(req, rc ? err : 0);
}

/* Flags for opening the backing file of an open or create request. */
static int pt_open_flags(const struct pt *pt, int flags)
{
	/*
	 * With the writeback cache the kernel reads pages around partial
	 * writes, even of files opened write-only, and handles O_APPEND
	 * itself.
	 */
	if (pt->writeback) {
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return (flags & ~O_NOFOLLOW) | O_CLOEXEC;
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *dir = pt_inode(req, parent);
	struct fuse_entry_param e;
	int dfd, fd, err;

	dfd = pt_get(pt, dir);
	if (dfd < 0) {
		fuse_reply_err(req, -dfd);
		return;
	}
	fd = openat(dfd, name, pt_open_flags(pt, fi->flags) | O_CREAT, mode);
	err = errno;
	pt_put(pt, dir);
	if (fd < 0) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)fd;
	err = pt_do_lookup(pt, dir, name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	fuse_reply_create(req, &e, fi);
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	char path[64];
	int ifd, fd, err;

	ifd = pt_get(pt, in);
	if (ifd < 0) {
		fuse_reply_err(req, -ifd);
		return;
	}
	proc_path(path, sizeof(path), ifd);
	fd = open(path, pt_open_flags(pt, fi->flags) & ~O_CREAT);
	err = errno;
	pt_put(pt, in);
	if (fd < 0) {
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)fd;
	fuse_reply_open(req, fi);
}

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void pt_write_buf(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	(void)ino;
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = (int)fi->fh;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() semantics: a dup is closed, the descriptor stays */
	int fd = dup((int)fi->fh);

	(void)ino;
	if (fd < 0 || close(fd) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void pt_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	int rc;

	(void)ino;
	rc = datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh);
	fuse_reply_err(req, rc ? errno : 0);
}

static void pt_fallocate(fuse_req_t req, fuse_ino_t ino, int mode,
			 off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)ino;
	if (fallocate((int)fi->fh, mode, off, len) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	struct statvfs sv;
	int fd = pt_get(pt, in), rc;

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	rc = fstatvfs(fd, &sv);
	pt_put(pt, in);
	if (rc)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

struct pt_dir {
	DIR *dp;
	struct dirent *ent; /* read but not yet returned */
	off_t off;
};

static void pt_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct pt *pt = pt_of(req);
	struct pt_inode *in = pt_inode(req, ino);
	struct pt_dir *d = calloc(1, sizeof(*d));
	int ifd, fd, err;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	ifd = pt_get(pt, in);
	if (ifd < 0) {
		free(d);
		fuse_reply_err(req, -ifd);
		return;
	}
	fd = openat(ifd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = errno;
	pt_put(pt, in);
	if (fd < 0) {
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		err = errno;
		close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uintptr_t)d;
	fuse_reply_open(req, fi);
}

static bool dot_or_dotdot(const char *s)
{
	return s[0] == '.' && (!s[1] || (s[1] == '.' && !s[2]));
}

static void pt_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi, bool plus)
{
	struct pt *pt = pt_of(req);
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p;
	size_t rem = size;
	int err = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (off != d->off) {
		seekdir(d->dp, off);
		d->ent = NULL;
		d->off = off;
	}
	for (;;) {
		size_t sz;
		fuse_ino_t got = 0;

		if (!d->ent) {
			errno = 0;
			d->ent = readdir(d->dp);
			if (!d->ent) {
				err = errno;
				break;
			}
		}
		if (plus) {
			struct fuse_entry_param e;

			if (dot_or_dotdot(d->ent->d_name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->ent->d_ino;
				e.attr.st_mode = (mode_t)d->ent->d_type << 12;
			} else {
				err = pt_do_lookup(pt, pt_inode(req, ino),
						   d->ent->d_name, &e);
				if (err)
					break;
				got = e.ino;
			}
			sz = fuse_add_direntry_plus(req, p, rem, d->ent->d_name,
						    &e, d->ent->d_off);
		} else {
			struct stat st = {
				.st_ino = d->ent->d_ino,
				.st_mode = (mode_t)d->ent->d_type << 12,
			};

			sz = fuse_add_direntry(req, p, rem, d->ent->d_name,
					       &st, d->ent->d_off);
		}
		if (sz > rem) {
			if (got)
				pt_forget_one(pt, got, 1);
			break;
		}
		p += sz;
		rem -= sz;
		d->off = d->ent->d_off;
		d->ent = NULL;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	pt_do_readdir(req, ino, size, off, fi, true);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct pt_dir *d = (struct pt_dir *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp), rc;

	(void)ino;
	rc = datasync ? fdatasync(fd) : fsync(fd);
	fuse_reply_err(req, rc ? errno : 0);
}

static const struct fuse_lowlevel_ops pt_ops = {
	.init = pt_init,
	.destroy = pt_destroy,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.create = pt_create,
	.open = pt_open,
	.read = pt_read,
	.write_buf = pt_write_buf,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.fallocate = pt_fallocate,
	.statfs = pt_statfs,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
};

/* The first non-option argument is the source; the rest go to libfuse. */
static int pt_opt_proc(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct pt_opts *o = data;

	(void)outargs;
	if (key == FUSE_OPT_KEY_NONOPT && !o->source) {
		o->source = realpath(arg, NULL);
		if (!o->source) {
			fprintf(stderr, "passthrough: %s: %s\n", arg,
				strerror(errno));
			return -1;
		}
		return 0;
	}
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [options] SOURCE MOUNTPOINT\n"
	       "  -o timeout=SECONDS   entry/attribute timeout (86400)\n"
	       "  -o no_writeback      no writeback cache\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct pt_opts o = { .timeout = 86400.0 };
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config *cfg;
	struct fuse_session *se;
	struct rlimit rl;
	struct stat st;
	static struct pt pt;
	int ret = 1;

	if (fuse_opt_parse(&args, &o, pt_opt_spec, pt_opt_proc) != 0)
		return 1;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (opts.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (opts.show_version) {
		printf("FUSE library version %s\n", fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (!o.source || !opts.mountpoint) {
		usage(argv[0]);
		goto out_args;
	}

	/* descriptors: the soft limit up to the hard one, 3/4 as a cache */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	} else {
		rl.rlim_cur = 1024;
	}
	pthread_mutex_init(&pt.lock, NULL);
	pt.fd_budget = (long)(rl.rlim_cur / 4 * 3);
	if (pt.fd_budget < 64)
		pt.fd_budget = 64;
	pt.lru.lnext = pt.lru.lprev = &pt.lru;
	pt.timeout = o.timeout;
	pt.writeback = !o.no_writeback;
	pt.source = o.source;
	pt.root.nlookup = 2;
	pt.root.fd = open(o.source, O_PATH | O_CLOEXEC);
	if (pt.root.fd < 0 || fstat(pt.root.fd, &st) != 0 ||
	    !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "passthrough: %s: not a directory\n", o.source);
		goto out_args;
	}
	pt.root.ino = st.st_ino;
	pt.root.dev = st.st_dev;
	/* open_by_handle_at() refuses an O_PATH descriptor as mount_fd */
	pt.mount_fd = open(o.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pt.mount_fd < 0) {
		fprintf(stderr, "passthrough: %s: %s\n", o.source,
			strerror(errno));
		goto out_args;
	}

	se = fuse_session_new(&args, &pt_ops, sizeof(pt_ops), &pt);
	if (!se)
		goto out_args;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_signals;
	fuse_daemonize(opts.foreground);
	if (opts.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, (unsigned)opts.clone_fd);
		fuse_loop_cfg_set_max_threads(cfg, opts.max_threads);
		fuse_loop_cfg_set_idle_threads(cfg, opts.max_idle_threads == UINT_MAX
							       ? 10
							       : opts.max_idle_threads);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_args:
	free(opts.mountpoint);
	free(o.source);
	fuse_opt_free_args(&args);
	if (pt.root.fd > 0)
		close(pt.root.fd);
	if (pt.mount_fd > 0)
		close(pt.mount_fd);
	return ret ? 1 : 0;
}
