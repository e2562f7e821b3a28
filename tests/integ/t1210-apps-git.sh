#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1210-apps-git - a git repository on a mounted volume
#
# git init, commit a tree of about 200 files (text, binary, executable,
# symlinks, nested directories), a second commit, git gc (repacks, renames
# and deletes many files), git fsck --full --strict clean every time, a
# clone out of the mount identical to the work tree, and all of it again
# after a remount (status clean, same HEAD).
#
# TIMEOUT: 300 (about 20 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need git diff

S=$T/store
M=$T/mnt
emb_mkfs "$S"
emb_mount "$S" "$M"

export HOME=$T GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org \
	GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org \
	GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
G()
{
	emb_timeout 120 git "$@"
}

G init -q "$M/repo"
python3 - "$M/repo" <<'EOF'
import os, random, sys
r = random.Random(1210)
root = sys.argv[1]
for d in range(10):
    dp = os.path.join(root, "dir%02d" % d, "sub%d" % (d % 3))
    os.makedirs(dp)
    for f in range(20):
        p = os.path.join(dp, "file%02d.%s" % (f, ["txt", "bin", "c", "sh"][f % 4]))
        if f % 4 == 1:
            data = r.randbytes(r.randint(1, 300000))
        else:
            data = ("line %d of %s\n" % (r.randint(0, 99), p)).encode() * r.randint(1, 3000)
        with open(p, "wb") as fh:
            fh.write(data)
        if f % 4 == 3:
            os.chmod(p, 0o755)
    os.symlink("sub%d/file00.txt" % (d % 3), os.path.join(root, "dir%02d" % d, "link"))
with open(os.path.join(root, "empty"), "w"):
    pass
EOF
(cd "$M/repo" && G add -A && G commit -q -m first) || fail "first commit"
n=$(cd "$M/repo" && git ls-files | wc -l)
[ "$n" -ge 200 ] || fail "only $n files committed"

fsck_clean()
{
	local out
	out=$(cd "$1" && G fsck --full --strict --no-dangling 2>&1) ||
		fail "git fsck in $1 failed: $out"
	[ -z "$out" ] || fail "git fsck in $1 reported: $out"
}
fsck_clean "$M/repo"

# second commit: modify, delete, rename, add
(cd "$M/repo" &&
	echo changed >>dir00/sub0/file00.txt &&
	git rm -q dir01/sub1/file01.bin &&
	git mv dir02/sub2/file02.c dir02/moved.c &&
	head -c 100000 /dev/urandom >dir03/new.bin &&
	G add -A && G commit -q -m second) || fail "second commit"
assert_eq "$(cd "$M/repo" && git rev-list --count HEAD)" 2 "number of commits"
head=$(cd "$M/repo" && git rev-parse HEAD)
fsck_clean "$M/repo"

(cd "$M/repo" && G gc -q --aggressive --prune=now) || fail "git gc"
fsck_clean "$M/repo"
assert_eq "$(cd "$M/repo" && git status --porcelain)" "" "status after gc"

G clone -q --no-local "$M/repo" "$T/clone" || fail "clone out of the mount"
fsck_clean "$T/clone"
assert_eq "$(cd "$T/clone" && git rev-parse HEAD)" "$head" "HEAD of the clone"
diff -r --no-dereference -x .git "$M/repo" "$T/clone" >&2 ||
	fail "clone differs from the work tree"

# clone into the mount from the local clone, with hard links refused
G clone -q --no-local "$T/clone" "$M/clone2" || fail "clone into the mount"
fsck_clean "$M/clone2"
diff -r --no-dereference -x .git "$T/clone" "$M/clone2" >&2 ||
	fail "clone in the mount differs"

emb_remount "$S" "$M"
fsck_clean "$M/repo"
fsck_clean "$M/clone2"
assert_eq "$(cd "$M/repo" && git rev-parse HEAD)" "$head" "HEAD after remount"
assert_eq "$(cd "$M/repo" && git status --porcelain)" "" "status after remount"
diff -r --no-dereference -x .git "$M/repo" "$T/clone" >&2 ||
	fail "work tree differs after remount"
(cd "$M/repo" && git checkout -q HEAD~1 && git checkout -q -) ||
	fail "checkout after remount"
assert_eq "$(cd "$M/repo" && git status --porcelain)" "" "status after checkouts"
emb_umount "$M"
