#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1320-read-corrupt - a damaged block reads as EIO, never as wrong bytes
#
# Bytes of three sealed blocks are flipped on disk while the volume is
# unmounted: in the ciphertext of a block stored raw, in the tag of
# another, and in a compressed one. Through the mount, every read that
# touches one of them fails with EIO, by large reads (the batched path
# that reads runs of records) and by 4 KiB reads (one block at a time);
# the blocks around them and the other files read back exactly; the
# daemon's log names the damaged block and tells the operator to run fsck.
# A fourth block has only the checksum in its record's header flipped: its
# bytes are authentic (the tag holds), so both paths serve them, and the
# keyless fsck reports the record.
#
# TIMEOUT: 120 (about 5 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need sha256sum
DAMAGE="${top_builddir:?}/tests/fsck/damage"
[ -x "$DAMAGE" ] || emb_hard_error "no damage helper at $DAMAGE"

S=$T/store
M=$T/mnt
BS=16384

head -c $((64 * BS)) /dev/urandom >"$T/rand"
emb_text "a registry line that compresses well" 200000 >"$T/text"
head -c 100000 /dev/urandom >"$T/keep"

emb_mkfs "$S"
emb_mount "$S" "$M"
cp "$T/rand" "$T/text" "$T/keep" "$M/" || fail "cp"
ino_rand=$(stat -c %i "$M/rand")
ino_text=$(stat -c %i "$M/text")
emb_umount "$M"

id_of() { "$DAMAGE" "$S" extent-id "$1" "$2"; }
"$DAMAGE" "$S" flip-block "$(id_of "$ino_rand" 5)" 100 ||
	fail "flip in block 5"
# the last byte of the sealed bytes is the tag's
len=$("$DAMAGE" "$S" block-len "$(id_of "$ino_rand" 40)") ||
	fail "block-len of block 40"
"$DAMAGE" "$S" flip-block "$(id_of "$ino_rand" 40)" $((len - 1)) ||
	fail "flip in block 40"
"$DAMAGE" "$S" flip-block "$(id_of "$ino_text" 2)" 30 ||
	fail "flip in the text's block 2"
"$DAMAGE" "$S" flip-block "$(id_of "$ino_rand" 20)" -3 ||
	fail "flip in block 20's checksum"

emb_mount "$S" "$M"
log=$(emb_daemon_log "$M")

# pread_errno FILE OFF LEN: OK and the sha256 of the bytes, or the errno
pread_errno()
{
	python3 - "$@" <<'EOF'
import errno, hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
off, n, got = int(sys.argv[2]), int(sys.argv[3]), b""
if n <= 4096:
    # no read-ahead: the daemon gets this page alone (its one-block path)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
try:
    while len(got) < n:
        b = os.pread(fd, n - len(got), off + len(got))
        if not b:
            break
        got += b
    print("OK", hashlib.sha256(got).hexdigest())
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}
want()
{
	echo "OK $(tail -c +$(($2 + 1)) "$1" | head -c "$3" | sha256sum | cut -d' ' -f1)"
}

for f in rand text; do
	echo 3 >/proc/sys/vm/drop_caches
	if cat "$M/$f" >/dev/null 2>"$T/cat.err"; then
		fail "reading damaged $f whole succeeded"
	fi
	grep -q "Input/output error" "$T/cat.err" ||
		fail "reading damaged $f: $(cat "$T/cat.err")"
done
for blk in 5 40; do
	# one block at a time, then a 1 MiB read that starts two blocks before
	for r in "$((blk * BS + 8192)) 4096" "$(((blk - 2) * BS)) $((1 << 20))"; do
		set -- $r
		echo 3 >/proc/sys/vm/drop_caches
		assert_eq "$(pread_errno "$M/rand" "$1" "$2")" EIO \
			"rand block $blk, $2 bytes from $1"
	done
done
echo 3 >/proc/sys/vm/drop_caches
assert_eq "$(pread_errno "$M/text" $((2 * BS + 100)) 4096)" EIO "text block 2"
# the blocks around the damage, and the other files, are whole
for r in "0 $((5 * BS))" "$((6 * BS)) $((34 * BS))" "$((41 * BS)) $((23 * BS))" \
	"$((20 * BS + 4096)) 4096"; do
	set -- $r
	echo 3 >/proc/sys/vm/drop_caches
	assert_eq "$(pread_errno "$M/rand" "$1" "$2")" "$(want "$T/rand" "$1" "$2")" \
		"rand bytes $1+$2"
done
assert_eq "$(pread_errno "$M/text" 0 $((2 * BS)))" "$(want "$T/text" 0 $((2 * BS)))" \
	"text before the damage"
assert_eq "$(sha256sum <"$M/keep")" "$(sha256sum <"$T/keep")" "keep"

n=$(grep -c "corrupt block in store.*run fsck.embassyfs" "$log" || true)
[ "$n" -ge 3 ] || fail "the daemon logged $n corrupt-block lines, expected 3 or more"
grep -q "record checksum mismatch" "$log" ||
	fail "the log does not say the record's checksum failed"
emb_umount "$M"
rc=0
"${top_builddir:?}/fsck.embassyfs" -n "$S" >"$T/fsck.out" 2>&1 || rc=$?
[ "$rc" = 4 ] || fail "fsck -n exited $rc, expected 4: $(cat "$T/fsck.out")"
n=$(grep -c "block-record-corrupt" "$T/fsck.out" || true)
[ "$n" = 4 ] || fail "fsck reported $n corrupt records, expected 4: $(cat "$T/fsck.out")"
echo "damaged blocks read as EIO, the authentic one served; fsck found all four"
