#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# run-case.sh CASEDIR - run one fsck corruption case, as e2fsprogs'
# tests/run_e2fsck does for its f_* directories.
#
# CASEDIR/script is sourced and defines:
#   build()        make files in "$MNT" (a fresh volume, mounted)
#   damage()       damage ./store (unmounted) one way; `dmg ARGS` runs the
#                  damage helper on it, `sst_of CF` names its table files
#   KEEP=(paths)   files that must come through intact (checked after)
#   FSCK_OPTS=()   options for every fsck run (--passphrase-file ...)
#   FSCK_OPTS_2=() options for the second repair run only, when set (a
#                  keyless repair followed by one with the key)
#   FSCK_MODE=-y   the mode of the two repair runs (-y or -p)
#   MOUNT_AFTER=0  when the repaired store is not expected to mount
#   check_after()  optional, run with the repaired store mounted
# CASEDIR/expect.1 and expect.2 are the reports of the first and second
# `fsck.embassyfs -y` (or FSCK_MODE) runs, filtered by filter.sed, with "Exit status is N".
# Before them, `fsck.embassyfs -n` must leave every byte of the store as it
# was, and its report must match CASEDIR/expect.n where the case has one.
# FSCK_UPDATE=1 rewrites the expect files instead of comparing.
#
# TIMEOUT: about 5 s per case.
. "${top_srcdir:?}/tests/integ/lib.sh"

case_dir=$(cd "$1" && pwd)
case_name=$(basename "$case_dir")
emb_need_fuse
DAMAGE="${top_builddir:?}/tests/fsck/damage"
FILTER="$top_srcdir/tests/fsck/filter.sed"
[ -x "$DAMAGE" ] || emb_hard_error "no damage helper at $DAMAGE"

MNT="$T/mnt"
KEEP=()
FSCK_OPTS=()
unset FSCK_OPTS_2
FSCK_MODE=-y
MOUNT_AFTER=1
dmg() { "$DAMAGE" store "$@"; }
sst_of()
{
	local f
	for f in store/db/*.sst; do
		strings "$f" | grep -qx "name$1" && echo "$f"
	done
	return 0
}
# Sum of every file under the store: bytes, sizes and times.
store_sum()
{
	(cd store && find . -printf '%p %s %T@\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) |
		sha256sum | cut -d' ' -f1
}
# shellcheck source=/dev/null
. "$case_dir/script"

cd "$T"
emb_mkfs store
emb_mount store "$MNT"
build
declare -A sums=()
for k in "${KEEP[@]}"; do
	sums[$k]=$(sha256sum <"$MNT/$k" | cut -d' ' -f1)
done
emb_umount "$MNT"
damage

# -n changes nothing
before=$(store_sum)
rc=0
emb_timeout 60 fsck.embassyfs -n "${FSCK_OPTS[@]}" store >"$T/out.n" 2>&1 || rc=$?
[ "$(store_sum)" = "$before" ] || fail "$case_name: fsck -n changed the store"
[ "$rc" -lt 16 ] || { cat "$T/out.n" >&2; fail "$case_name: fsck -n exited $rc"; }
if [ -f "$case_dir/expect.n" ]; then
	echo "Exit status is $rc" >>"$T/out.n"
	sed -f "$FILTER" "$T/out.n" >"$T/out.n.f"
	if [ -n "${FSCK_UPDATE:-}" ]; then
		cp "$T/out.n.f" "$case_dir/expect.n"
	elif ! diff -u "$case_dir/expect.n" "$T/out.n.f" >&2; then
		fail "$case_name: the -n run differs from expect.n"
	fi
fi

# Kept for the report of a failure: the damaged store as the runs met it.
cp -a store "$T/store.damaged"
diagnose()
{
	echo "--- diagnosis: the damaged store before run 1 ($T/store.damaged)" >&2
	(cd "$T/store.damaged" && find . -type f -printf '%p %s %b\n' | LC_ALL=C sort) >&2
	fsck.embassyfs -n --json "${FSCK_OPTS[@]}" "$T/store.damaged" >&2 || true
	echo "--- run 1 stderr" >&2
	cat "$T/err.1" >&2
	echo "--- daemon logs" >&2
	cat "$T"/log/daemon.*.log >&2 || true
}

for run in 1 2; do
	opts=("${FSCK_OPTS[@]}")
	[ "$run" = 2 ] && [ -n "${FSCK_OPTS_2+set}" ] && opts=("${FSCK_OPTS_2[@]}")
	rc=0
	emb_timeout 120 fsck.embassyfs "$FSCK_MODE" "${opts[@]}" store \
		>"$T/out.$run" 2>"$T/err.$run" || rc=$?
	echo "Exit status is $rc" >>"$T/out.$run"
	sed -f "$FILTER" "$T/out.$run" >"$T/out.$run.f"
	if [ -n "${FSCK_UPDATE:-}" ]; then
		cp "$T/out.$run.f" "$case_dir/expect.$run"
	elif ! diff -u "$case_dir/expect.$run" "$T/out.$run.f" >&2; then
		cat "$T/err.$run" >&2
		diagnose
		fail "$case_name: run $run differs from expect.$run"
	fi
done

if [ "$MOUNT_AFTER" = 1 ]; then
	emb_mount store "$MNT"
	for k in "${KEEP[@]}"; do
		[ -f "$MNT/$k" ] || fail "$case_name: '$k' is gone after the repair"
		got=$(sha256sum <"$MNT/$k" | cut -d' ' -f1)
		[ "$got" = "${sums[$k]}" ] || fail "$case_name: '$k' changed"
	done
	if declare -F check_after >/dev/null; then
		check_after
	fi
	emb_umount "$MNT"
fi
echo "$case_name: ok"
