#!/bin/bash
# registry-demo.sh - the main job: create a volume, mount it, write a small
# civil registry (an SQLite database and documents), unmount, remount and
# verify it, and show that the store holds no plaintext.
# Runs in a temporary directory (or DEMO_DIR) and cleans up after itself.
set -euo pipefail

say() { printf '== %s\n' "$*"; }
die() { printf 'registry-demo: %s\n' "$*" >&2; exit 1; }

for p in mkfs.embassyfs embassyfs fusermount3; do
	command -v "$p" >/dev/null || die "'$p' not found: build first (contrib/setup.sh build)"
done
[ -e /dev/fuse ] || die "/dev/fuse is missing: load the fuse module (modprobe fuse)"

work=${DEMO_DIR:-$(mktemp -d /tmp/embassyfs-demo.XXXXXX)}
store=$work/registry.store
mnt=$work/registry
pass=$work/passphrase

# The daemon closes the store after the unmount returns: wait for it.
daemon_gone() {
	local i
	for i in $(seq 300); do
		pgrep -f "embassyfs --passphrase-file $pass $store" >/dev/null || return 0
		sleep 0.1
	done
	return 1
}

unmount() {
	fusermount3 -u "$mnt"
	daemon_gone || die "the daemon did not exit 30 s after the unmount"
}

cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	daemon_gone || pkill -f "embassyfs --passphrase-file $pass $store" || true
	[ -z "${DEMO_DIR:-}" ] && rm -rf "$work"
	return 0
}
trap cleanup EXIT

mount_it() {
	embassyfs --passphrase-file "$pass" "$store" "$mnt"
	mountpoint -q "$mnt" || die "the mount did not appear at $mnt"
}

mkdir -p "$mnt"
umask 077
printf 'demo passphrase for the civil registry\n' > "$pass"

say "creating the volume $store"
mkfs.embassyfs --passphrase-file "$pass" --pbkdf-cost interactive "$store"

say "mounting it at $mnt"
mount_it

say "writing a small civil registry"
mkdir -p "$mnt/civil/births" "$mnt/civil/documents"
python3 - "$mnt/civil/births/births.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE birth (id INTEGER PRIMARY KEY, name TEXT, born TEXT, place TEXT)")
names = ["Mari", "Jaan", "Liis", "Toomas", "Kadri", "Andres", "Kristiina", "Peeter"]
with db:
    for i in range(2000):
        db.execute("INSERT INTO birth (name, born, place) VALUES (?, ?, ?)",
                   (f"{names[i % len(names)]} Tamm-{i}", f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                    ["Tallinn", "Tartu", "Narva", "Pärnu"][i % 4]))
db.close()
PY
for i in $(seq 1 50); do
	printf 'Certificate %d\nThis document certifies the birth registered under number %d.\n' "$i" "$i" \
		> "$mnt/civil/documents/certificate-$i.txt"
done
(cd "$mnt/civil" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/manifest"
echo "   $(find "$mnt/civil" -type f | wc -l) files, $(du -sh "$mnt/civil" | cut -f1)"

say "unmounting"
unmount

say "checking that the store holds ciphertext only"
if grep -r -a -q -F "Tamm-1999" "$store" || grep -r -a -q -F "certifies the birth" "$store" ||
	grep -r -a -q -F "certificate-1.txt" "$store"; then
	die "plaintext found in the store"
fi
echo "   no name, record or file name from the registry appears in $store"

say "remounting and verifying"
mount_it
(cd "$mnt/civil" && sha256sum --quiet -c "$work/manifest") || die "contents differ after remount"
count=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from birth').fetchone()[0])" "$mnt/civil/births/births.db")
[ "$count" = 2000 ] || die "expected 2000 birth records, found $count"
check=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('pragma integrity_check').fetchone()[0])" "$mnt/civil/births/births.db")
[ "$check" = ok ] || die "sqlite integrity_check says: $check"
echo "   $count birth records, integrity_check ok, all $(wc -l < "$work/manifest") files identical"
df -h "$mnt" | tail -n 1 | awk '{print "   mount: " $1 " size " $2 " used " $3}'
unmount
say "done: the registry survived unmount and remount, encrypted at rest"
