#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t2000-fsck-lint: the problem codes of src/fsck_problems.def are unique,
# each documented in doc/fsck.embassyfs.8 with its name; every corruption
# case has its four files and is listed in tests/fsck/local.mk.
# Model: git Documentation/lint-fsck-msgids.perl.
set -eu
src=${top_srcdir:-$(dirname "$0")/../..}
def=$src/src/fsck_problems.def
man=$src/doc/fsck.embassyfs.8
mk=$src/tests/fsck/local.mk
fail=0
bad() { echo "lint: $*" >&2; fail=1; }

# "FSCK_PROBLEM(SYM, 0x010001, "name"," -> "0x010001 name"
entries=$(sed -n 's/^FSCK_PROBLEM([A-Z0-9_]*, *\(0x[0-9A-Fa-f]\{6\}\), *"\([a-z0-9-]*\)".*/\1 \2/p' "$def")
n=$(printf '%s\n' "$entries" | grep -c .)
[ "$n" = "$(grep -c '^FSCK_PROBLEM(' "$def")" ] ||
	bad "some FSCK_PROBLEM lines of $def do not parse as (SYM, 0xPPNNNN, \"name\", ...)"
dup=$(printf '%s\n' "$entries" | awk '{print tolower($1)}' | sort | uniq -d)
[ -z "$dup" ] || bad "codes used twice: $dup"
dup=$(printf '%s\n' "$entries" | awk '{print $2}' | sort | uniq -d)
[ -z "$dup" ] || bad "names used twice: $dup"

while read -r code name; do
	lc=$(printf '%s' "$code" | tr 'A-F' 'a-f')
	pass=$((lc >> 16))
	[ "$pass" -le 5 ] || bad "$code $name: pass $pass does not exist"
	# In the man page as ".B 0x010001 block\-record\-corrupt"
	mname=$(printf '%s' "$name" | sed 's/-/\\\\-/g')
	grep -q "^\.B $lc $mname\$" "$man" ||
		bad "$code $name is not documented in doc/fsck.embassyfs.8"
done <<<"$entries"

for c in "$src"/tests/fsck/f_*/; do
	c=${c%/}
	name=$(basename "$c")
	for f in name script expect.1 expect.2; do
		[ -s "$c/$f" ] || bad "case $name has no $f"
	done
	grep -q "%D%/$name\\b" "$mk" || bad "case $name is not in tests/fsck/local.mk"
done

[ "$fail" = 0 ] || exit 1
echo "lint: $n fsck problem codes documented"
