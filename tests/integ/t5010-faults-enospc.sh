#!/bin/bash
# t5010-faults-enospc: a full disk under the store.
# The store lives on a 96 MiB tmpfs made for this test. Writing more than
# fits must fail with ENOSPC at fsync or close (never silently), files
# written before stay intact, unlink still works to free space, a new write
# then succeeds, and the volume unmounts cleanly and remounts consistent.
# TIMEOUT: 60
. "$(dirname "$0")/lib.sh"
emb_need_fuse
emb_need python3

mkdir "$T/small"
mount -t tmpfs -o size=96M,mode=0755 tmpfs "$T/small" ||
	emb_skip "cannot mount a tmpfs for the full-disk test"
S=$T/small/store
M=$T/mnt
emb_mkfs "$S"
emb_mount "$S" "$M"

head -c 3000000 /dev/urandom >"$T/keep.src"
cp "$T/keep.src" "$M/keep"
sync -f "$M/keep"

# Incompressible and distinct data (identical chunks would dedup), more
# than the tmpfs holds: the error must surface.
rc=0
python3 - "$M/fill" <<'PY' || rc=$?
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    for _ in range(200):
        os.write(fd, os.urandom(1 << 20))
    os.fsync(fd)
    os.close(fd)
except OSError as e:
    print("write failed:", errno.errorcode.get(e.errno, e.errno), file=sys.stderr)
    sys.exit(3 if e.errno == errno.ENOSPC else 4)
sys.exit(0)
PY
[ "$rc" = 3 ] || fail "filling the disk: expected ENOSPC (exit 3), got exit $rc"

cmp "$T/keep.src" "$M/keep" || fail "a file written before the disk filled changed"
rm "$M/fill" || fail "unlink on a full volume failed"
# fsync of the new file itself: syncfs (sync -f) would report, once, the
# writeback errors the kernel recorded for the volume while it was full.
python3 - "$M/after" <<'PY' || fail "writing after freeing space failed"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"after\n")
os.fsync(fd)
os.close(fd)
PY

emb_umount "$M"
emb_mount "$S" "$M"
cmp "$T/keep.src" "$M/keep" || fail "keep differs after remount"
[ "$(cat "$M/after")" = after ] || fail "after differs after remount"
[ ! -e "$M/fill" ] || fail "the unlinked file came back"
find "$M" -type f -exec cat {} + >/dev/null || fail "tree not readable after remount"
emb_umount "$M"
echo "ok: ENOSPC reported, nothing lost, volume consistent"
