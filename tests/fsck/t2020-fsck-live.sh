#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t2020-fsck-live: fsck.embassyfs beside a live mount, and --compare.
# - a mounted store is checked read-only (exit 0, a warning) and its bytes
#   are left as they were; a repair of it is refused with exit 8;
# - after the unmount, -y and -p on a clean store exit 0;
# - --compare of a store and a copy of it: 0; after one more change to
#   the copy: 4; a missing store: 8; usage errors: 16;
# - --json prints one valid document.
#
# TIMEOUT: about 10 s.
. "${top_srcdir:?}/tests/integ/lib.sh"
emb_need_fuse
cd "$T"

store_sum()
{
	(cd "$1" && find . -type f -print0 | LC_ALL=C sort -z |
		xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}

emb_mkfs store
emb_mount store mnt
mkdir mnt/d
emb_text "live data" 300000 >mnt/d/f
sync

before=$(store_sum store)
emb_try fsck.embassyfs -n store
[ "$EMB_RC" = 0 ] || { cat "$T/out"; fail "fsck -n of a mounted store exited $EMB_RC"; }
grep -q "in use by a mount" "$T/out" || fail "no warning that the store is mounted"
[ "$(store_sum store)" = "$before" ] || fail "fsck -n changed a mounted store"

emb_try fsck.embassyfs -y store
[ "$EMB_RC" = 8 ] || { cat "$T/out"; fail "a repair of a mounted store: exit $EMB_RC, want 8"; }
grep -q "0x000011 store-busy" "$T/out" || fail "no store-busy problem"
emb_umount mnt

for mode in -y -p; do
	emb_try fsck.embassyfs "$mode" --passphrase-file "$EMB_PASS" store
	[ "$EMB_RC" = 0 ] || { cat "$T/out"; fail "fsck $mode of a clean store: exit $EMB_RC"; }
done

emb_try fsck.embassyfs -n --json --passphrase-file "$EMB_PASS" store
[ "$EMB_RC" = 0 ] || fail "fsck --json exited $EMB_RC"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["keyed"] and d["exit"] == 0, d' "$T/out" ||
	fail "the JSON report does not parse"

cp -a store copy
emb_try fsck.embassyfs --compare copy store
[ "$EMB_RC" = 0 ] || { cat "$T/out"; fail "--compare of a copy: exit $EMB_RC"; }
emb_mount copy mnt
echo more >mnt/d/g
emb_umount mnt
emb_try fsck.embassyfs --compare copy store
[ "$EMB_RC" = 0 ] || { cat "$T/out"; fail "--compare with a copy ahead: exit $EMB_RC"; }
grep -q "records behind" "$T/out" || fail "--compare does not say which is behind"
cp -a store other && emb_mount other mnt && echo else >mnt/d/h && emb_umount mnt
emb_mount copy mnt && echo more2 >mnt/d/i && emb_umount mnt
emb_try fsck.embassyfs --compare copy other
[ "$EMB_RC" = 4 ] || { cat "$T/out"; fail "--compare of diverged stores: exit $EMB_RC, want 4"; }
emb_try fsck.embassyfs --compare nothing-here store
[ "$EMB_RC" = 8 ] || fail "--compare with a missing store: exit $EMB_RC, want 8"

emb_try fsck.embassyfs -n -y store
[ "$EMB_RC" = 16 ] || fail "-n -y: exit $EMB_RC, want 16"
emb_try fsck.embassyfs --bogus store
[ "$EMB_RC" = 16 ] || fail "an unknown option: exit $EMB_RC, want 16"
emb_try fsck.embassyfs store
[ "$EMB_RC" = 8 ] || fail "no mode and no terminal: exit $EMB_RC, want 8"
emb_try fsck.embassyfs -a -f -C 0 -t embassyfs store
[ "$EMB_RC" = 0 ] || { cat "$T/out"; fail "fsck(8) options: exit $EMB_RC"; }
echo "t2020: ok"
