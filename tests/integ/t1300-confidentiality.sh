#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1300-confidentiality - no plaintext reaches the store
#
# Distinctive random markers go into file and directory names, xattr names
# and values, symlink targets and file contents (once, in the middle of
# random data, and repeated so that compression sees them), the passphrase
# is known, and then grep -r -a -F over STORE must find none of them:
# first with the daemon killed right after fsync (everything still in
# RocksDB's write-ahead log, never compacted), then after a clean
# unmount.  The daemon's log must not show them either.  Both with zstd
# and with compression off.
#
# TIMEOUT: 180 (about 15 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need grep xxd setfattr

marker()
{
	printf '%s%s' "$1" "$(head -c 12 /dev/urandom | xxd -p)"
}

run()
{
	local S=$T/store-$1 M=$T/mnt-$1 m
	shift
	local -a marks=()
	local name dir xname xval target body mid rep inline
	name=$(marker N)
	dir=$(marker D)
	xname=$(marker X)
	xval=$(marker V)
	target=$(marker L)
	body=$(marker B)
	mid=$(marker I)
	rep=$(marker R)
	inline=$(marker S)
	marks=("$name" "$dir" "$xname" "$xval" "$target" "$body" "$mid" "$rep"
		"$inline" "$(cat "$EMB_PASS")")

	emb_mkfs "$S" "$@"
	emb_mount "$S" "$M"
	mkdir "$M/dir-$dir"
	echo "small file: $body" >"$M/dir-$dir/file-$name"
	{ head -c 100000 /dev/urandom; printf '%s' "$mid"; head -c 100000 /dev/urandom; } \
		>"$M/dir-$dir/middle"
	emb_text "line with $rep in it" 4000000 >"$M/repeated"
	printf '%s' "$inline" >"$M/tiny"
	setfattr -n "user.$xname" -v "$xval" "$M/dir-$dir/file-$name"
	setfattr -n user.plain -v "$xval$xval" "$M/dir-$dir"
	ln -s "target-$target" "$M/link"
	python3 - "$M" <<'EOF'
import os, sys
for dp, dns, fns in os.walk(sys.argv[1]):
    for n in fns:
        p = os.path.join(dp, n)
        if not os.path.islink(p):
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    fd = os.open(dp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
EOF
	# Killed: what fsync made durable is in the write-ahead log only.
	emb_kill9 "$M"
	for m in "${marks[@]}"; do
		if grep -r -a -F -q -- "$m" "$S"; then
			fail "plaintext '$m' found in the store after fsync + kill -9: $(grep -r -a -F -l -- "$m" "$S" | head -3)"
		fi
	done
	emb_mount "$S" "$M"
	assert_eq "$(cat "$M/dir-$dir/file-$name")" "small file: $body" "file after kill -9"
	assert_eq "$(readlink "$M/link")" "target-$target" "symlink after kill -9"
	emb_umount "$M"
	for m in "${marks[@]}"; do
		if grep -r -a -F -q -- "$m" "$S"; then
			fail "plaintext '$m' found in the store after unmount: $(grep -r -a -F -l -- "$m" "$S" | head -3)"
		fi
		if grep -a -F -q -- "$m" "$T"/log/daemon.*.log; then
			fail "plaintext '$m' found in the daemon's log"
		fi
	done
	# the markers are there, in the clear, when mounted
	emb_mount "$S" "$M"
	assert_eq "$(getfattr --absolute-names --only-values -n "user.$xname" \
		"$M/dir-$dir/file-$name")" "$xval" "xattr value"
	grep -q -F -- "$rep" "$M/repeated" || fail "repeated marker not readable"
	grep -q -F -- "$mid" "$M/dir-$dir/middle" || fail "middle marker not readable"
	assert_eq "$(cat "$M/tiny")" "$inline" "tiny file"
	emb_umount "$M"
}

run zstd
run none --compress none
