/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Copyright (C) 2026 The embassyfs authors */
/*
 * fuse_int.h - private header of the embassyfs daemon (fuse/main.c, ops.c)
 *
 * main.c parses the command line, opens and unlocks the volume, mounts and
 * runs the session loop; ops.c translates each FUSE low-level request into
 * one fs_* call. They share the session's user data, struct efs.
 */
#ifndef EMBASSYFS_FUSE_INT_H
#define EMBASSYFS_FUSE_INT_H

/* libfuse 3.14, Debian 12: the fuse_loop_cfg_* interface of 3.12 and later */
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <stdbool.h>

#include "fs.h"

/*
 * Attribute and entry timeout, in seconds. Every change to a volume at
 * home goes through this one mount, so the kernel's cache never goes stale.
 */
#define EFS_TIMEOUT 86400.0

/* Largest read and write request asked of the kernel. */
#define EFS_MAX_IO (1u << 20)

/*
 * The session's user data. fs is set before the session is mounted and
 * stays valid until after fuse_session_destroy() has run destroy().
 */
struct efs {
	struct fs *fs;
	struct fuse_session *se; /* for notifications to the kernel */
	bool rdonly;
	bool writeback; /* ask for the kernel's writeback cache */
	/* INIT answered with FUSE_HANDLE_KILLPRIV_V2: setuid/setgid are ours to drop */
	bool killpriv;
};

/*
 * Serve the kernel's INIT request (the first one) before the session loop,
 * adding FUSE_HANDLE_KILLPRIV_V2 to libfuse's reply when the kernel offers
 * it; true if it was added. See init.c.
 */
bool efs_init_handshake(struct fuse_session *se);

/* One handler per low-level operation; see ops.c. */
extern const struct fuse_lowlevel_ops efs_ops;

#endif
