#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1110-inode-cache - inodes let go while the kernel still holds them
#
# With -o inode_cache=2 nearly every idle inode the kernel has looked up
# keeps only its lookup count in the daemon and is loaded again on its next
# use. First the random test of t1100 (another seed) runs on such a mount;
# then files are looked up in bulk, renamed, hard-linked, and one is
# unlinked while open: its data must stay readable through the descriptor
# and its space come back once it is closed and forgotten.
#
# TIMEOUT: 600 (about 60 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse

EMB_MOUNT_OPTS="-o inode_cache=2" EMB_SEED=${EMB_SEED:-20261124} \
	EMB_OPS=${EMB_OPS:-2000} bash "$(dirname "$0")/t1100-posix-random.sh" ||
	fail "the random test with a 2-inode cache failed"

S=$T/store
M=$T/mnt
emb_mkfs "$S"
emb_mount "$S" "$M" -o inode_cache=2
mkdir "$M/d" "$M/e"
for n in $(seq 200); do
	printf 'file %d\n' "$n" >"$M/d/f$n"
done
# every file looked up, then each used again after the others were let go
ls -l "$M/d" >/dev/null
for n in $(seq 200); do
	[ "$(cat "$M/d/f$n")" = "file $n" ] || fail "d/f$n reads wrong"
done
for n in $(seq 1 2 200); do
	ln "$M/d/f$n" "$M/e/l$n"
	mv "$M/d/f$((n + 1))" "$M/e/m$n"
done
ls -l "$M/e" >/dev/null
[ "$(stat -c %h "$M/d/f1")" = 2 ] || fail "link count of d/f1 is not 2"
[ "$(cat "$M/e/l199")" = "file 199" ] || fail "e/l199 reads wrong"
[ "$(cat "$M/e/m199")" = "file 200" ] || fail "e/m199 reads wrong"
chmod 600 "$M/d/f3"
[ "$(stat -c %a "$M/e/l3")" = 600 ] || fail "mode change not seen through the link"

# unlinked while open: readable through the descriptor, gone after close
head -c 4000000 /dev/urandom >"$T/big.ref"
cp "$T/big.ref" "$M/big"
before=$(emb_du "$S")
exec 7<"$M/big"
rm "$M/big"
ls -l "$M" >/dev/null
cmp - "$T/big.ref" <&7 || fail "an unlinked open file lost its data"
exec 7<&-
emb_remount "$S" "$M" -o inode_cache=2
after=$(emb_du "$S")
[ "$after" -lt "$before" ] || fail "space of the unlinked file did not come back ($before -> $after)"
[ ! -e "$M/big" ] || fail "big is back after the remount"
[ "$(cat "$M/e/m1")" = "file 2" ] || fail "e/m1 reads wrong after the remount"
emb_umount "$M"
echo "ok"
