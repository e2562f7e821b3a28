#!/bin/bash
# t0001-lint-layers: include boundaries between layers (doc/DESIGN.md).
# - only src/store.c includes rocksdb/c.h;
# - nothing under src/ includes a fuse header;
# - fuse/ includes only src/ headers, fuse_lowlevel.h and system headers;
# - no module includes a header of a layer above it.
set -eu
src=${top_srcdir:-$(dirname "$0")/../..}
fail=0
bad() { echo "lint: $*" >&2; fail=1; }

for f in "$src"/src/*.c "$src"/src/*.h "$src"/src/cmd/*.c "$src"/fuse/*.c "$src"/fuse/*.h; do
	[ -e "$f" ] || continue
	rel=${f#"$src"/}
	if grep -q '#include <rocksdb/' "$f" && [ "$rel" != src/store.c ]; then
		bad "$rel includes rocksdb: only src/store.c may"
	fi
	case $rel in
	src/*) grep -q '#include <fuse' "$f" && bad "$rel includes a fuse header";;
	esac
done

# Layer ranks, lowest first; a file may include only headers of rank <= its own.
rank() {
	case $1 in
	compat|log) echo 0;;
	key|codec) echo 1;;
	store) echo 2;;
	journal) echo 3;;
	volume) echo 4;;
	fs|fs_int|sync|wire|fsck|fsck_int) echo 5;;
	cli|progress) echo 6;;
	*) echo 9;;
	esac
}
for f in "$src"/src/*.c "$src"/src/*.h; do
	[ -e "$f" ] || continue
	base=$(basename "$f"); mod=${base%.*}; mod=${mod%%_pass*}
	case $mod in fs_*) mod=fs;; fsck_*) mod=fsck;; esac
	r=$(rank "$mod")
	for inc in $(sed -n 's/^#include "\([a-z_]*\)\.h".*/\1/p' "$f"); do
		ri=$(rank "$inc")
		if [ "$ri" -gt "$r" ]; then
			bad "src/$base (layer $r) includes $inc.h (layer $ri)"
		fi
	done
done
if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "lint: layer boundaries ok"
