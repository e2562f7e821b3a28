#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1100-posix-random - random operations, checked against a local reference
#
# fsmodel.py applies the same random operations (writes at random offsets,
# aligned and not, repeated blocks for dedup, truncate, rename, link,
# unlink, mkdir, rmdir, symlink, xattrs, fallocate modes, chmod, utime,
# fsync) to the mount and to a plain directory under $T, compares every
# result and errno, and compares the whole trees every 500 operations.
# The volume is remounted halfway and at the end, and the trees compared
# again each time.  The seed is printed; set EMB_SEED to replay a run and
# EMB_OPS to change the number of operations; EMB_MOUNT_OPTS adds mount
# options (t1110 runs it with a tiny inode cache).
#
# TIMEOUT: 600 (about 60 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse

SEED=${EMB_SEED:-20261123}
OPS=${EMB_OPS:-3000}
S=$T/store
M=$T/mnt
REF=$T/ref
mkdir "$REF"
# the reference needs user.* and trusted.* xattrs (tmpfs before Linux 6.6
# has no user.*)
python3 -c 'import os, sys
os.setxattr(sys.argv[1], "user.probe", b"1")
os.setxattr(sys.argv[1], "trusted.probe", b"1")
os.removexattr(sys.argv[1], "user.probe")
os.removexattr(sys.argv[1], "trusted.probe")' "$REF" 2>/dev/null ||
	emb_skip "the file system of $T has no user.*/trusted.* xattrs for the reference"
echo "seed $SEED, $OPS operations (replay: EMB_SEED=$SEED EMB_OPS=$OPS)"

emb_mkfs "$S"
emb_mount "$S" "$M" ${EMB_MOUNT_OPTS:-}

model()
{
	emb_timeout 600 python3 "$EMB_INTEG_DIR/fsmodel.py" "$@" \
		--state "$T/state.json" --log "$T/ops.log" "$M" "$REF" ||
		fail "fsmodel.py $1 (seed $SEED): see above"
}

half=$((OPS / 2))
model run --seed "$SEED" --ops "$half"
emb_remount "$S" "$M" ${EMB_MOUNT_OPTS:-}
model compare
model run --seed "$((SEED + 1))" --ops "$((OPS - half))"
emb_remount "$S" "$M" ${EMB_MOUNT_OPTS:-}
model compare
emb_umount "$M"
