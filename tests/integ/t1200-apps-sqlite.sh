#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1200-apps-sqlite - SQLite databases on a mounted volume
#
# 10,000 inserts in 100 transactions, in rollback-journal mode and in WAL
# mode (which maps its -shm file shared), then updates, deletes and a
# VACUUM; PRAGMA integrity_check must say "ok" and the aggregates must be
# exact, before and after a remount.
#
# TIMEOUT: 300 (about 30 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need sqlite3 awk

S=$T/store
M=$T/mnt
emb_mkfs "$S"
emb_mount "$S" "$M"

# BEGIN; 100 INSERTs; COMMIT; x 100
gen_inserts()
{
	awk 'BEGIN {
		print "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT, b BLOB);"
		print "CREATE INDEX tv ON t (v);"
		for (i = 1; i <= 10000; i++) {
			if (i % 100 == 1) print "BEGIN;"
			printf "INSERT INTO t VALUES (%d, printf(\"value-%%08d\", %d), randomblob(%d));\n", i, i * 7919 % 10007, i % 500
			if (i % 100 == 0) print "COMMIT;"
		}
	}'
}

sql()
{
	emb_timeout 120 sqlite3 -batch -bail "$@"
}

# count, sum of keys, total blob length, checksum of the text column
summary()
{
	sql "$1" "SELECT count(*), sum(k), sum(length(b)), sum(unicode(substr(v, 7, 1)) * k) FROM t;"
}

check_db()
{
	local db=$1 want=$2 got
	got=$(sql "$db" 'PRAGMA integrity_check;') ||
		fail "integrity_check could not run on $db"
	assert_eq "$got" ok "PRAGMA integrity_check of $(basename "$db")"
	got=$(summary "$db") || fail "query on $db"
	assert_eq "$got" "$want" "contents of $(basename "$db")"
}

for mode in delete wal; do
	db=$M/test-$mode.db
	{
		echo "PRAGMA journal_mode=$mode;"
		gen_inserts
	} | sql "$db" >/dev/null || fail "inserts into $db (journal_mode=$mode)"
done
# the same statements on the local disk give the expected summary
gen_inserts | sql "$T/ref.db" >/dev/null
want1=$(summary "$T/ref.db")
echo "reference summary: $want1"
case $want1 in 10000\|50005000\|*) ;; *) fail "reference database: $want1" ;; esac
for mode in delete wal; do
	check_db "$M/test-$mode.db" "$want1"
	assert_eq "$(sql "$M/test-$mode.db" 'PRAGMA journal_mode;')" "$mode" "journal mode"
done

# a second round: updates, deletes, a rolled-back transaction, VACUUM
round2()
{
	sql "$1" <<'EOF'
BEGIN;
UPDATE t SET v = 'updated-' || k, b = zeroblob(1000) WHERE k % 10 = 0;
DELETE FROM t WHERE k % 7 = 0;
COMMIT;
BEGIN;
DELETE FROM t;
ROLLBACK;
VACUUM;
EOF
}
round2 "$T/ref.db" || fail "round 2 on the reference"
want2=$(summary "$T/ref.db")
echo "reference summary after round 2: $want2"
for mode in delete wal; do
	round2 "$M/test-$mode.db" || fail "round 2 on $mode"
	check_db "$M/test-$mode.db" "$want2"
done

emb_remount "$S" "$M"
for mode in delete wal; do
	check_db "$M/test-$mode.db" "$want2"
done
# still writable after the remount
sql "$M/test-wal.db" "INSERT INTO t VALUES (20000, 'after', x'00'); PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
assert_eq "$(sql "$M/test-wal.db" 'SELECT v FROM t WHERE k = 20000;')" after "insert after remount"
emb_umount "$M"
