#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1220-apps-tar - extract a real tree with tar and compare
#
# A tarball of a system tree (/usr/include, else /usr/share/doc) plus a few
# special entries (hard links, a sparse file, a fifo, xattrs, odd modes and
# old timestamps) is extracted both into the mount and onto the local disk;
# diff -r and a manifest of every entry (type, mode, owner, size, nlink,
# mtime, target, contents, xattrs) must match, before and after a remount,
# and a tarball made from the mount must extract to the same tree.
#
# TIMEOUT: 600 (about 60 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need tar diff

src=
for d in /usr/include /usr/share/doc; do
	if [ -d "$d" ] && [ "$(find "$d" -maxdepth 2 | wc -l)" -gt 100 ]; then
		src=$d
		break
	fi
done
[ -n "$src" ] || emb_skip "no system tree to tar (/usr/include, /usr/share/doc)"

S=$T/store
M=$T/mnt
X=$T/extra
mkdir -p "$X/d/e"
echo "hard" >"$X/d/h1"
ln "$X/d/h1" "$X/d/h2"
ln "$X/d/h1" "$X/d/e/h3"
printf end | dd of="$X/sparse" bs=1 seek=$((50 << 20)) status=none
mkfifo "$X/fifo"
echo odd >"$X/modes"
chmod 4710 "$X/modes"
chmod 1750 "$X/d/e"
chown 4321:8765 "$X/d/h1"
setfattr -n user.tarred -v yes "$X/d/h1" 2>/dev/null || true
ln -s ../d/e "$X/d/e/uplink"
touch -h -d '1999-09-09 09:09:09.5 +0000' "$X/d/e/uplink"
touch -d '1975-01-01 00:00:00 +0000' "$X/sparse"
touch -d '2100-01-01 00:00:00 +0000' "$X/d"

emb_timeout 300 tar --sparse --xattrs --xattrs-include='user.*' -cf "$T/src.tar" \
	-C "$(dirname "$src")" "$(basename "$src")" -C "$T" extra ||
	emb_hard_error "could not build the tarball"
echo "tarball: $src + extra, $(du -h "$T/src.tar" | cut -f1), $(tar -tf "$T/src.tar" | wc -l) entries"

mkdir "$T/ref"
emb_timeout 300 tar --xattrs --xattrs-include='user.*' --warning=no-timestamp -xpf "$T/src.tar" \
	-C "$T/ref" || emb_hard_error "extracting on the local disk failed"

emb_mkfs "$S"
emb_mount "$S" "$M"
root0=$(ls -A "$M")
mkdir "$M/x"
emb_timeout 600 tar --xattrs --xattrs-include='user.*' --warning=no-timestamp -xpf "$T/src.tar" \
	-C "$M/x" || fail "tar -x into the mount failed"

MAN()
{
	python3 "$EMB_INTEG_DIR/manifest.py" --no-root "$@"
}
compare()
{
	diff -r --no-dereference -x fifo "$T/ref" "$M/x" >&2 || fail "diff -r: $1"
	MAN "$T/ref" >"$T/man.ref"
	MAN "$M/x" >"$T/man.mnt"
	diff -u "$T/man.ref" "$T/man.mnt" | head -50 >&2 || true
	cmp -s "$T/man.ref" "$T/man.mnt" || fail "modes, owners, times or xattrs differ: $1"
}
compare "after extraction"

# a tarball made from the mount extracts to the same tree
emb_timeout 300 tar --sparse --xattrs --xattrs-include='user.*' -cf "$T/back.tar" \
	-C "$M/x" . || fail "tar -c out of the mount failed"
mkdir "$T/back"
tar --xattrs --xattrs-include='user.*' --warning=no-timestamp -xpf "$T/back.tar" \
	-C "$T/back" || fail "extracting the tarball made from the mount"
MAN "$T/back" >"$T/man.back"
diff -u "$T/man.ref" "$T/man.back" | head -50 >&2 || true
cmp -s "$T/man.ref" "$T/man.back" || fail "tarball made from the mount differs"

emb_remount "$S" "$M"
compare "after remount"
rm -rf "$M/x"
assert_eq "$(ls -A "$M")" "$root0" "root directory after rm -rf"
emb_umount "$M"
