#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1230-apps-rsync - rsync a tree into the mount and back out
#
# A source tree (part of /usr/share/doc plus hard links, symlinks, a sparse
# file, xattrs, odd modes, old and nanosecond timestamps) goes in with
# rsync -aHX and back out again: diff -r and a manifest of every entry
# must match the source; a second rsync in and one after a remount must
# find nothing to transfer (--itemize-changes prints nothing); a changed
# source file is then the only one transferred.
#
# TIMEOUT: 300 (about 30 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need rsync diff setfattr

S=$T/store
M=$T/mnt
SRC=$T/src
mkdir -p "$SRC"
if [ -d /usr/share/doc ]; then
	# a few thousand real files, symlinks included
	(cd /usr/share/doc && find . -maxdepth 1 -name '[a-l]*' -print0 |
		xargs -0 -r cp -a --parents -t "$SRC") ||
		emb_hard_error "could not copy /usr/share/doc"
fi
mkdir -p "$SRC/special/sub"
head -c 2000000 /dev/urandom >"$SRC/special/random"
ln "$SRC/special/random" "$SRC/special/sub/hardlink"
ln -s ../random "$SRC/special/sub/symlink"
ln -s /nonexistent/absolute "$SRC/special/dangling"
printf end | dd of="$SRC/special/sparse" bs=1 seek=$((20 << 20)) status=none
echo modes >"$SRC/special/modes"
chmod 2750 "$SRC/special/modes"
chmod 1777 "$SRC/special/sub"
setfattr -n user.rsync -v "value with spaces" "$SRC/special/random"
setfattr -n user.empty "$SRC/special/modes"
touch -d '1985-10-26 01:21:00.123456789 +0000' "$SRC/special/modes"
touch -h -d '2003-03-03 03:03:03.3 +0000' "$SRC/special/sub/symlink"
: >"$SRC/special/empty"
echo "source: $(find "$SRC" | wc -l) entries, $(du -sh "$SRC" | cut -f1)"

emb_mkfs "$S"
emb_mount "$S" "$M"

RSYNC()
{
	emb_timeout 300 rsync -aHX "$@"
}
MAN()
{
	python3 "$EMB_INTEG_DIR/manifest.py" --no-root "$@"
}
MAN "$SRC" >"$T/man.src"

RSYNC "$SRC/" "$M/dst/" || fail "rsync into the mount"
diff -r --no-dereference "$SRC" "$M/dst" >&2 || fail "diff -r after rsync in"
MAN "$M/dst" >"$T/man.dst"
diff -u "$T/man.src" "$T/man.dst" | head -40 >&2 || true
cmp -s "$T/man.src" "$T/man.dst" || fail "metadata differs after rsync in"

RSYNC "$M/dst/" "$T/back/" || fail "rsync out of the mount"
diff -r --no-dereference "$SRC" "$T/back" >&2 || fail "diff -r after rsync out"
MAN "$T/back" >"$T/man.back"
cmp -s "$T/man.src" "$T/man.back" || fail "metadata differs after rsync out"

# nothing left to transfer
nothing_to_do()
{
	RSYNC --itemize-changes "$SRC/" "$M/dst/" >"$T/itemize" ||
		fail "rsync --itemize-changes"
	if [ -s "$T/itemize" ]; then
		head -20 "$T/itemize" >&2
		fail "second rsync transferred something: $1"
	fi
}
nothing_to_do "right after the first"
emb_remount "$S" "$M"
nothing_to_do "after a remount"
MAN "$M/dst" >"$T/man.dst2"
cmp -s "$T/man.src" "$T/man.dst2" || fail "metadata differs after remount"

# one changed file is the only one transferred
echo changed >>"$SRC/special/modes"
touch -d '2020-02-02 02:02:02 +0000' "$SRC/special/modes"
RSYNC --itemize-changes "$SRC/" "$M/dst/" >"$T/itemize"
assert_eq "$(grep -c . "$T/itemize")" 1 "entries transferred after one change: $(cat "$T/itemize")"
grep -q 'special/modes$' "$T/itemize" || fail "wrong file transferred: $(cat "$T/itemize")"
cmp "$SRC/special/modes" "$M/dst/special/modes" || fail "changed file"
emb_umount "$M"
