#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t0110-cli-mount-errors - embassyfs refuses bad mounts and leaves the store
#
# Wrong passphrase or key (clear message, store bytes unchanged), a STORE
# that is not a volume, an unknown format number in STORE/VOLUME, a second
# mount of a mounted store (refused; the first mount keeps working), a
# missing or non-directory mountpoint, a malformed -o option.  Also the
# forms that must work: daemonizing "embassyfs" (mount live on exit),
# "mount.embassyfs STORE DIR -o passphrase_file=F", --key-file, and
# "-o ro" where every write fails with EROFS.
#
# TIMEOUT: 180 (about 15 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse

S=$T/store
M=$T/mnt
mkdir "$M"
emb_mkfs "$S"

# put something in the volume
emb_mount "$S" "$M"
echo "first contents" >"$M/file"
mkdir "$M/dir"
emb_umount "$M"
sum0=$(emb_tree_sum "$S")

# no leftovers from a refused mount: nothing mounted, no daemon
not_mounted()
{
	! emb_is_mounted "$1" || fail "$2: '$1' is mounted"
	emb_wait_no_daemons 10 || fail "$2: a daemon is still running"
}

# the passphrase must never appear in any output
no_secret_in()
{
	if grep -qF "$(cat "$EMB_PASS")" "$@"; then
		fail "the passphrase appears in $*"
	fi
}

# ---------------------------------------------------------------------------
# wrong passphrase / key

(umask 077 && printf 'not the right passphrase\n' >"$T/wrong")
expect_fail "wrong passphrase" embassyfs --passphrase-file "$T/wrong" "$S" "$M"
grep -qi passphrase "$T/out" || fail "message does not mention the passphrase: $(cat "$T/out")"
not_mounted "$M" "wrong passphrase"
assert_eq "$(emb_tree_sum "$S")" "$sum0" "store bytes after a wrong passphrase"
expect_fail "wrong passphrase (-f)" embassyfs -f --passphrase-file "$T/wrong" "$S" "$M"
grep -qi passphrase "$T/out" || fail "message does not mention the passphrase: $(cat "$T/out")"
not_mounted "$M" "wrong passphrase (-f)"
(umask 077 && head -c 32 /dev/urandom >"$T/wrongkey")
expect_fail "wrong key file" embassyfs --key-file "$T/wrongkey" "$S" "$M"
not_mounted "$M" "wrong key file"
expect_fail "missing passphrase file" embassyfs --passphrase-file "$T/nonexistent" "$S" "$M"
not_mounted "$M" "missing passphrase file"
assert_eq "$(emb_tree_sum "$S")" "$sum0" "store bytes after refused unlocks"

# ---------------------------------------------------------------------------
# not a volume

mkdir "$T/emptydir"
expect_fail "empty directory as STORE" \
	embassyfs --passphrase-file "$EMB_PASS" "$T/emptydir" "$M"
[ -s "$T/out" ] || fail "no message for an empty directory"
not_mounted "$M" "empty directory as STORE"
assert_eq "$(ls -A "$T/emptydir")" "" "refused STORE directory must stay empty"

mkdir -p "$T/random/sub"
head -c 10000 /dev/urandom >"$T/random/VOLUME.bak"
echo "hello" >"$T/random/sub/x"
sumr=$(emb_tree_sum "$T/random")
expect_fail "random directory as STORE" \
	embassyfs --passphrase-file "$EMB_PASS" "$T/random" "$M"
not_mounted "$M" "random directory as STORE"
assert_eq "$(emb_tree_sum "$T/random")" "$sumr" "random directory after a refused mount"

head -c 200 /dev/urandom >"$T/garbage"
mkdir "$T/garbvol"
cp "$T/garbage" "$T/garbvol/VOLUME"
expect_fail "garbage VOLUME file" \
	embassyfs --passphrase-file "$EMB_PASS" "$T/garbvol" "$M"
not_mounted "$M" "garbage VOLUME file"

expect_fail "nonexistent STORE" \
	embassyfs --passphrase-file "$EMB_PASS" "$T/no-such-store" "$M"
not_mounted "$M" "nonexistent STORE"
[ ! -e "$T/no-such-store" ] || fail "a refused mount created the STORE"

# ---------------------------------------------------------------------------
# unknown format version

cp "$S/VOLUME" "$T/VOLUME.orig"
sed -E -i 's/^([[:space:]]*format[^0-9]*)[0-9]+/\1999/' "$S/VOLUME"
if cmp -s "$S/VOLUME" "$T/VOLUME.orig"; then
	cat "$S/VOLUME" >&2
	emb_hard_error "no 'format N' line in STORE/VOLUME to edit; adapt this test"
fi
sum999=$(emb_tree_sum "$S")
expect_fail "format 999" embassyfs --passphrase-file "$EMB_PASS" "$S" "$M"
grep -q 999 "$T/out" || grep -qi format "$T/out" ||
	fail "message does not say the format is unknown: $(cat "$T/out")"
not_mounted "$M" "format 999"
assert_eq "$(emb_tree_sum "$S")" "$sum999" "store bytes after refusing format 999"
# a volume of an earlier development format: refused, saying so
sed -E -i 's/^([[:space:]]*format[^0-9]*)[0-9]+/\11/' "$S/VOLUME"
sum1=$(emb_tree_sum "$S")
expect_fail "format 1" embassyfs --passphrase-file "$EMB_PASS" "$S" "$M"
grep -q 'format 1, written by an earlier development version' "$T/out" ||
	fail "message does not say the format is an earlier one: $(cat "$T/out")"
not_mounted "$M" "format 1"
assert_eq "$(emb_tree_sum "$S")" "$sum1" "store bytes after refusing format 1"
cp "$T/VOLUME.orig" "$S/VOLUME"
assert_eq "$(emb_tree_sum "$S")" "$sum0" "store restored"

# ---------------------------------------------------------------------------
# mountpoint problems, malformed options

expect_fail "missing mountpoint" \
	embassyfs --passphrase-file "$EMB_PASS" "$S" "$T/no-such-dir"
not_mounted "$T/no-such-dir" "missing mountpoint"
echo x >"$T/plainfile"
expect_fail "mountpoint is a file" \
	embassyfs --passphrase-file "$EMB_PASS" "$S" "$T/plainfile"
assert_eq "$(cat "$T/plainfile")" x "file used as a mountpoint"
not_mounted "$T/plainfile" "mountpoint is a file"
expect_fail "unknown -o option" embassyfs --passphrase-file "$EMB_PASS" \
	-o no_such_option_xyz "$S" "$M"
not_mounted "$M" "unknown -o option"
expect_fail "-o passphrase_file without a value" embassyfs \
	-o passphrase_file "$S" "$M"
not_mounted "$M" "-o passphrase_file without a value"
expect_fail "unknown long option" embassyfs --no-such-option \
	--passphrase-file "$EMB_PASS" "$S" "$M"
not_mounted "$M" "unknown long option"
expect_fail "no mountpoint" embassyfs --passphrase-file "$EMB_PASS" "$S"
expect_fail "no arguments" embassyfs
emb_try embassyfs --help
assert_eq "$EMB_RC" 0 "embassyfs --help exit status"
grep -q '^Usage:' "$T/out" || fail "embassyfs --help prints no 'Usage:' line"
assert_eq "$(emb_tree_sum "$S")" "$sum0" "store bytes after the refused mounts"

# ---------------------------------------------------------------------------
# a second mount of a mounted store is refused; the first one keeps working

emb_mount "$S" "$M"
expect_fail "second mount of the same store" \
	embassyfs --passphrase-file "$EMB_PASS" "$S" "$T/mnt2"
! emb_is_mounted "$T/mnt2" || fail "second mount of the same store appeared"
expect_fail "second mount (-f) of the same store" \
	embassyfs -f --passphrase-file "$EMB_PASS" "$S" "$T/mnt2"
! emb_is_mounted "$T/mnt2" || fail "second mount of the same store appeared"
emb_is_mounted "$M" || fail "first mount gone after a refused second mount"
assert_eq "$(cat "$M/file")" "first contents" "first mount after a refused second one"
echo "written later" >"$M/later"
sync
emb_umount "$M"
emb_mount "$S" "$M"
assert_eq "$(cat "$M/file")" "first contents" "data after remount"
assert_eq "$(cat "$M/later")" "written later" "data written after the refused mount"
emb_umount "$M"

# ---------------------------------------------------------------------------
# daemonizing form: the mount is live when the command returns

emb_try embassyfs --passphrase-file "$EMB_PASS" "$S" "$M"
assert_eq "$EMB_RC" 0 "embassyfs (daemonizing) exit status: $(cat "$T/out")"
emb_is_mounted "$M" || fail "embassyfs returned before the mount was live"
assert_eq "$(emb_mount_type "$M")" fuse.embassyfs "type in /proc/mounts"
assert_eq "$(cat "$M/later")" "written later" "data through the daemonized mount"
fusermount3 -u "$M"
emb_wait_no_daemons 60 || fail "daemon still running 60 s after unmount"

# mount.embassyfs STORE DIR -o passphrase_file=F (the mount(8) helper form)
mkdir "$T/bin"
ln -s "$(command -v embassyfs)" "$T/bin/mount.embassyfs"
emb_try "$T/bin/mount.embassyfs" "$S" "$M" -o "passphrase_file=$EMB_PASS"
assert_eq "$EMB_RC" 0 "mount.embassyfs exit status: $(cat "$T/out")"
emb_is_mounted "$M" || fail "mount.embassyfs returned before the mount was live"
assert_eq "$(cat "$M/file")" "first contents" "data through mount.embassyfs"
echo helper >"$M/helper"
fusermount3 -u "$M"
emb_wait_no_daemons 60 || fail "daemon still running 60 s after unmount"
emb_try "$T/bin/mount.embassyfs" "$S" "$M" -o "rw,passphrase_file=$T/wrong"
[ "$EMB_RC" != 0 ] || fail "mount.embassyfs with a wrong passphrase succeeded"
not_mounted "$M" "mount.embassyfs with a wrong passphrase"

# ---------------------------------------------------------------------------
# read-only mount: reads work, every write is EROFS, nothing changes

emb_mount "$S" "$M" -o ro
grep -E "^[^ ]+ $M [^ ]+ ([^ ]*,)?ro[, ]" /proc/mounts >/dev/null ||
	fail "-o ro mount not read-only in /proc/mounts: $(grep " $M " /proc/mounts)"
assert_eq "$(cat "$M/helper")" helper "read through a ro mount"
expect_errno EROFS open "$M/new" 'O_WRONLY|O_CREAT'
expect_errno EROFS open "$M/file" O_WRONLY
expect_errno EROFS open "$M/file" O_RDWR
expect_errno EROFS mkdir "$M/newdir"
expect_errno EROFS rmdir "$M/dir"
expect_errno EROFS unlink "$M/file"
expect_errno EROFS rename "$M/file" "$M/moved"
expect_errno EROFS link "$M/file" "$M/hard"
expect_errno EROFS symlink file "$M/sym"
expect_errno EROFS chmod "$M/file" 600
expect_errno EROFS chown "$M/file" 1 1
expect_errno EROFS truncate "$M/file" 0
expect_errno EROFS setxattr "$M/file" user.x y
expect_errno EROFS utime "$M/file" 0 0
expect_errno EROFS mknod "$M/fifo" p
# A read-only mount shares the volume with other read-only mounts only:
# a writer beside it would change the volume under its frozen view.
emb_mount "$S" "$T/ro2" -o ro
assert_eq "$(cat "$T/ro2/file")" "first contents" "second ro mount"
expect_fail "read-write mount beside a read-only one" \
	embassyfs -f --passphrase-file "$EMB_PASS" "$S" "$T/rw2"
! emb_is_mounted "$T/rw2" || fail "a read-write mount beside a read-only one was made"
emb_umount "$T/ro2"
emb_umount "$M"
emb_mount "$S" "$M"
expect_fail "read-only mount beside a read-write one" \
	embassyfs -f -o ro --passphrase-file "$EMB_PASS" "$S" "$T/ro3"
! emb_is_mounted "$T/ro3" || fail "a read-only mount beside a read-write one was made"
assert_eq "$(cat "$M/file")" "first contents" "file after the ro mount"
[ ! -e "$M/new" ] && [ -d "$M/dir" ] || fail "ro mount changed the tree"
emb_umount "$M"

# ---------------------------------------------------------------------------
# a volume made with a key file opens with that key file only

(umask 077 && head -c 64 /dev/urandom >"$T/keyfile")
emb_try mkfs.embassyfs --key-file "$T/keyfile" "$T/kstore"
assert_eq "$EMB_RC" 0 "mkfs --key-file: $(cat "$T/out")"
expect_fail "key-file volume opened with a passphrase" \
	embassyfs --passphrase-file "$EMB_PASS" "$T/kstore" "$M"
not_mounted "$M" "key-file volume opened with a passphrase"
emb_try embassyfs --key-file "$T/keyfile" "$T/kstore" "$M"
assert_eq "$EMB_RC" 0 "mount with --key-file: $(cat "$T/out")"
echo keyed >"$M/k"
fusermount3 -u "$M"
emb_wait_no_daemons 60 || fail "daemon still running 60 s after unmount"
emb_try embassyfs --key-file "$T/keyfile" "$T/kstore" "$M"
assert_eq "$EMB_RC" 0 "remount with --key-file"
assert_eq "$(cat "$M/k")" keyed "data on the key-file volume"
fusermount3 -u "$M"
emb_wait_no_daemons 60 || fail "daemon still running 60 s after unmount"

no_secret_in "$T"/log/* "$T/out"
exit 0
