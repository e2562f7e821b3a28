/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * init.c - the FUSE INIT handshake, with FUSE_HANDLE_KILLPRIV_V2
 *
 * Before each write(2) into the page cache the kernel asks whether the file
 * carries a security.capability xattr, unless the inode is marked S_NOSEC;
 * it marks inodes so only on a super block with SB_NOSEC, which FUSE sets
 * when the daemon answers INIT with FUSE_HANDLE_KILLPRIV_V2. Without it,
 * every write(2) costs a round trip to the daemon (SQLite's commits made
 * 77 of them each). libfuse 3.14 has no way to ask for the flag, so the
 * daemon serves the INIT request itself before the session loop starts:
 * libfuse builds its reply as usual, written into a pipe put in place of
 * the device for that one request; the flag is added and the reply
 * forwarded. Anything unexpected forwards the reply unchanged.
 *
 * The flag makes the daemon responsible for dropping setuid/setgid on
 * write, truncate and chown (see killpriv in ops.c); the kernel still drops
 * security.capability through removexattr, after its one question per
 * inode.
 */
#include "fuse_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * Answer INIT through libfuse into a pipe; the reply lands in out.
 * *done: libfuse has processed the request (its reply is owed).
 */
static ssize_t init_via_pipe(struct fuse_session *se, const struct fuse_buf *b,
			     uint8_t *out, size_t cap, bool *done)
{
	int fd = fuse_session_fd(se), save, p[2];
	ssize_t n;

	*done = false;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	save = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (save < 0 || dup3(p[1], fd, O_CLOEXEC) < 0) {
		n = -errno;
		if (save >= 0)
			close(save);
		close(p[0]);
		close(p[1]);
		return n;
	}
	fuse_session_process_buf(se, b);
	*done = true;
	/* The device back in its place, whatever became of the reply. */
	if (dup3(save, fd, O_CLOEXEC) < 0) {
		n = -errno;
		log_err("cannot restore the FUSE device: %s", strerror(errno));
		close(save);
		close(p[0]);
		close(p[1]);
		return n;
	}
	close(save);
	close(p[1]);
	do
		n = read(p[0], out, cap);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	close(p[0]);
	return n;
}

bool efs_init_handshake(struct fuse_session *se)
{
	const struct fuse_in_header *ih;
	const struct fuse_init_in *ii;
	struct fuse_out_header oh;
	struct fuse_init_out io;
	struct fuse_buf b = { .mem = NULL };
	uint8_t reply[512];
	bool v2 = false, done;
	ssize_t n;
	int rc;

	rc = fuse_session_receive_buf(se, &b);
	if (rc <= 0) {
		free(b.mem);
		return false;	/* the session loop meets the same end */
	}
	ih = b.mem;
	ii = (const void *)((const uint8_t *)b.mem + sizeof(*ih));
	if ((size_t)rc < sizeof(*ih) + offsetof(struct fuse_init_in, flags) +
			     sizeof(ii->flags) ||
	    ih->opcode != FUSE_INIT || ii->major != FUSE_KERNEL_VERSION ||
	    !(ii->flags & FUSE_HANDLE_KILLPRIV_V2)) {
		fuse_session_process_buf(se, &b);
		free(b.mem);
		return false;
	}
	n = init_via_pipe(se, &b, reply, sizeof(reply), &done);
	if (n <= 0 && !done) {
		log_warn("cannot answer the kernel's INIT through a pipe (%s); "
			 "each write asks for security.capability",
			 strerror((int)-n));
		fuse_session_process_buf(se, &b);
		free(b.mem);
		return false;
	}
	if (n <= 0) {
		log_err("lost the reply to the kernel's INIT: %s",
			n < 0 ? strerror((int)-n) : "empty");
		free(b.mem);
		fuse_session_exit(se);
		return false;
	}
	if ((size_t)n >= sizeof(oh) + offsetof(struct fuse_init_out, flags) +
			     sizeof(io.flags)) {
		memcpy(&oh, reply, sizeof(oh));
		memset(&io, 0, sizeof(io));
		memcpy(&io, reply + sizeof(oh),
		       MIN(sizeof(io), (size_t)n - sizeof(oh)));
		if (oh.len == (uint32_t)n && oh.error == 0 &&
		    oh.unique == ih->unique) {
			io.flags |= FUSE_HANDLE_KILLPRIV_V2;
			memcpy(reply + sizeof(oh) +
				   offsetof(struct fuse_init_out, flags),
			       &io.flags, sizeof(io.flags));
			v2 = true;
		}
	}
	free(b.mem);
	do
		rc = (int)write(fuse_session_fd(se), reply, (size_t)n);
	while (rc < 0 && errno == EINTR);
	if (rc != (int)n) {
		log_err("cannot answer the kernel's INIT: %s",
			rc < 0 ? strerror(errno) : "short write");
		fuse_session_exit(se);
		return false;
	}
	log_dbg(LOG_DBG_FUSE, "INIT answered%s", v2 ? " with HANDLE_KILLPRIV_V2" : "");
	return v2;
}
