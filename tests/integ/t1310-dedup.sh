#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1310-dedup - identical data is stored once, and freed when deleted
#
# 64 MiB of random data written as 10 identical files (by cp, and one by
# small unaligned writes) must grow the store by less than 1.5 copies
# (du: blocks on disk, not apparent size); the copies read back intact
# across a remount; once all are deleted and the volume unmounted, the
# store's disk usage must fall back near where it started (segment space
# is released by punching holes).
#
# TIMEOUT: 300 (about 30 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need du cmp

S=$T/store
M=$T/mnt
MIB=$((1 << 20))
SIZE=$((64 * MIB))
head -c "$SIZE" /dev/urandom >"$T/data"

emb_mkfs "$S"
emb_mount "$S" "$M"
echo "small" >"$M/keep"
emb_umount "$M"
base=$(emb_du "$S")
echo "store after mkfs: $((base / MIB)) MiB"

emb_mount "$S" "$M"
for i in 0 1 2 3 4 5 6 7 8; do
	emb_timeout 120 cp "$T/data" "$M/copy$i" || fail "cp copy$i"
done
# the tenth copy by 1000-byte writes, so no write is block-aligned
emb_timeout 120 python3 - "$T/data" "$M/copy9" <<'EOF' || fail "writing copy9"
import sys
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb", buffering=0) as dst:
    while True:
        b = src.read(1000)
        if not b:
            break
        dst.write(b)
EOF
sync
emb_umount "$M"
full=$(emb_du "$S")
growth=$((full - base))
echo "store with 10 copies: $((full / MIB)) MiB, growth $((growth / MIB)) MiB for 640 MiB written"
[ "$growth" -lt $((SIZE * 3 / 2)) ] ||
	fail "10 identical 64 MiB files grew the store by $((growth / MIB)) MiB (limit 96 MiB)"
[ "$growth" -ge $((SIZE * 9 / 10)) ] ||
	fail "the store grew by $((growth / MIB)) MiB only: where are 64 MiB of random data?"

emb_mount "$S" "$M"
for i in 0 5 9; do
	cmp "$T/data" "$M/copy$i" || fail "copy$i differs from the data"
done
rm -f "$M"/copy*
assert_eq "$(cat "$M/keep")" small "other file after deleting the copies"
emb_umount "$M"
after=$(emb_du "$S")
echo "store after deleting them: $((after / MIB)) MiB (started at $((base / MIB)) MiB)"
[ "$after" -lt $((base + SIZE / 4)) ] ||
	fail "deleting every copy left the store at $((after / MIB)) MiB (started at $((base / MIB)) MiB, limit +16 MiB)"

emb_mount "$S" "$M"
assert_eq "$(cat "$M/keep")" small "other file after remount"
! compgen -G "$M/copy*" >/dev/null || fail "deleted copies came back"
emb_umount "$M"
