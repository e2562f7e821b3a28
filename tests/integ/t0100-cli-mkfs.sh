#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t0100-cli-mkfs - mkfs.embassyfs: help, usage errors, refusal to overwrite
#
# --help and --version exit 0; unknown options and a missing STORE exit 16
# with a pointer to --help; an existing volume (or any non-empty directory)
# is refused without --force and left byte for byte as it was; --force
# recreates it; bad --block-size, --compress and --pbkdf-cost values are
# refused without creating anything; every accepted block size and
# compression gives a volume that mounts and round-trips a file (when FUSE
# is usable).
#
# TIMEOUT: 120 (about 10 s)

. "$(dirname "$0")/lib.sh"

emb_need mkfs.embassyfs timeout sha256sum

MKFS=(mkfs.embassyfs --pbkdf-cost min --passphrase-file "$EMB_PASS")

# --help, --version
emb_try mkfs.embassyfs --help
assert_eq "$EMB_RC" 0 "mkfs.embassyfs --help exit status"
grep -q '^Usage:' "$T/out" || fail "--help prints no 'Usage:' line"
grep -q -- '--block-size' "$T/out" || fail "--help does not list --block-size"
emb_try mkfs.embassyfs -h
assert_eq "$EMB_RC" 0 "mkfs.embassyfs -h exit status"
emb_try mkfs.embassyfs --version
assert_eq "$EMB_RC" 0 "mkfs.embassyfs --version exit status"
[ -s "$T/out" ] || fail "--version printed nothing"

# usage errors: 16, one line and a pointer to --help, nothing created
emb_try "${MKFS[@]}" --no-such-option "$T/u1"
assert_eq "$EMB_RC" 16 "exit status for an unknown option"
grep -q -- "--help" "$T/out" || fail "usage error does not mention --help: $(cat "$T/out")"
[ ! -e "$T/u1" ] || fail "a usage error created the store"
emb_try "${MKFS[@]}"
assert_eq "$EMB_RC" 16 "exit status without STORE"
emb_try "${MKFS[@]}" "$T/u2" "$T/u3"
assert_eq "$EMB_RC" 16 "exit status with two STOREs"
if [ -e "$T/u2" ] || [ -e "$T/u3" ]; then
	fail "a usage error created a store"
fi

# a new volume
emb_mkfs "$T/s"
[ -f "$T/s/VOLUME" ] || fail "no STORE/VOLUME after mkfs"
[ -d "$T/s/db" ] || fail "no STORE/db after mkfs"
if grep -qF "$(cat "$EMB_PASS")" "$T/log/mkfs.out"; then
	fail "mkfs printed the passphrase"
fi
sum0=$(emb_tree_sum "$T/s")
vol0=$(sha256sum <"$T/s/VOLUME")

# existing volume: refused without --force, store unchanged
emb_try "${MKFS[@]}" "$T/s"
assert_eq "$EMB_RC" 8 "mkfs over an existing volume without --force"
[ -s "$T/out" ] || fail "refusal without a message"
assert_eq "$(emb_tree_sum "$T/s")" "$sum0" "store bytes after a refused mkfs"
emb_try "${MKFS[@]}" --block-size 4096 "$T/s"
[ "$EMB_RC" != 0 ] || fail "mkfs with other options over a volume without --force"
assert_eq "$(emb_tree_sum "$T/s")" "$sum0" "store bytes after a refused mkfs"

# --force: a new volume (new id) in the same place
emb_try "${MKFS[@]}" --force "$T/s"
assert_eq "$EMB_RC" 0 "mkfs --force over an existing volume"
[ "$(sha256sum <"$T/s/VOLUME")" != "$vol0" ] || fail "--force left the old VOLUME (same id)"

# a directory holding anything else is refused too, and left alone
mkdir "$T/busy"
echo precious >"$T/busy/file"
sumb=$(emb_tree_sum "$T/busy")
emb_try "${MKFS[@]}" "$T/busy"
[ "$EMB_RC" != 0 ] || fail "mkfs into a non-empty directory without --force"
assert_eq "$(emb_tree_sum "$T/busy")" "$sumb" "non-empty directory after a refused mkfs"

# STORE is a regular file
echo x >"$T/afile"
emb_try "${MKFS[@]}" "$T/afile"
[ "$EMB_RC" != 0 ] || fail "mkfs on a regular file"
assert_eq "$(cat "$T/afile")" x "regular file after a refused mkfs"

# bad parameter values: refused, nothing created
for bs in 0 1000 2048 3000 12288 2097152 abc -4096 4096k ''; do
	emb_try "${MKFS[@]}" --block-size "$bs" "$T/bs"
	[ "$EMB_RC" != 0 ] || fail "--block-size '$bs' accepted"
	[ ! -e "$T/bs/VOLUME" ] || fail "--block-size '$bs' created a volume"
	rm -rf "$T/bs"
done
emb_try "${MKFS[@]}" --compress lz4-or-whatever "$T/bc"
[ "$EMB_RC" != 0 ] || fail "--compress with an unknown method accepted"
[ ! -e "$T/bc/VOLUME" ] || fail "bad --compress created a volume"
emb_try "${MKFS[@]}" --pbkdf-cost extreme "$T/bp"
[ "$EMB_RC" != 0 ] || fail "unknown --pbkdf-cost accepted"
[ ! -e "$T/bp/VOLUME" ] || fail "bad --pbkdf-cost created a volume"
emb_try mkfs.embassyfs --pbkdf-cost min --passphrase-file "$T/no-such-file" "$T/bf"
[ "$EMB_RC" != 0 ] || fail "missing passphrase file accepted"
[ ! -e "$T/bf/VOLUME" ] || fail "missing passphrase file created a volume"
: >"$T/empty-pass"
emb_try mkfs.embassyfs --pbkdf-cost min --passphrase-file "$T/empty-pass" "$T/be"
[ "$EMB_RC" != 0 ] || fail "empty passphrase accepted"
[ ! -e "$T/be/VOLUME" ] || fail "empty passphrase created a volume"
emb_try mkfs.embassyfs --pbkdf-cost min --passphrase-file "$EMB_PASS" \
	--key-file "$EMB_PASS" "$T/bk"
[ "$EMB_RC" != 0 ] || fail "--passphrase-file together with --key-file accepted"
# no passphrase source and no terminal: refuse, do not hang
emb_try mkfs.embassyfs --pbkdf-cost min "$T/bn"
[ "$EMB_RC" != 0 ] || fail "mkfs without a passphrase and without a terminal"

# accepted parameters make volumes that mount and work
can_mount=1
{ [ -c /dev/fuse ] && [ "$(id -u)" = 0 ] && command -v embassyfs >/dev/null &&
	command -v fusermount3 >/dev/null; } || can_mount=0
[ "$can_mount" = 1 ] || echo "note: FUSE unusable, volumes are not mounted" >&2
head -c 300000 /dev/urandom >"$T/data"
i=0
for opts in "--block-size 4096 --compress none" \
	"--block-size 1048576 --compress zstd" \
	"--block-size 65536" "--compress none"; do
	i=$((i + 1))
	# shellcheck disable=SC2086
	emb_mkfs "$T/v$i" $opts
	[ "$can_mount" = 1 ] || continue
	emb_mount "$T/v$i" "$T/m$i"
	cp "$T/data" "$T/m$i/data"
	emb_text "compressible line $i" 2000000 >"$T/m$i/text"
	emb_umount "$T/m$i"
	emb_mount "$T/v$i" "$T/m$i"
	cmp "$T/data" "$T/m$i/data" || fail "data on a volume made with $opts"
	cmp <(emb_text "compressible line $i" 2000000) "$T/m$i/text" ||
		fail "text on a volume made with $opts"
	emb_umount "$T/m$i"
done

# a key file instead of a passphrase
head -c 64 /dev/urandom >"$T/keyfile"
emb_try mkfs.embassyfs --key-file "$T/keyfile" "$T/vk"
assert_eq "$EMB_RC" 0 "mkfs with --key-file"
[ -f "$T/vk/VOLUME" ] || fail "no VOLUME after mkfs --key-file"
exit 0
