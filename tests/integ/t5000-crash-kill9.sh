#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t5000-crash-kill9 - what fsync acknowledged survives kill -9 of the daemon
#
# Repeatedly: crashload.py writes files (new files fsynced or not, atomic
# rename replacements, in-place overwrites and truncations with fsync,
# unlinks), logging each durable state to a file outside the mount after
# fsync returned; the daemon is killed with SIGKILL at a random moment, the
# dead mount detached, the volume remounted, and every fsynced file must be
# as its last completed fsync left it (or as an atomic change started
# after it made it), and the whole tree must be walkable and readable.
# Then a clean unmount, a remount and the same checks.
# EMB_SEED replays a run; EMB_CRASH_ITERS sets the number of crashes.
#
# TIMEOUT: 600 (about 60 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse

SEED=${EMB_SEED:-5000}
ITERS=${EMB_CRASH_ITERS:-10}
S=$T/store
M=$T/mnt
LOG=$T/durable.log
echo "seed $SEED, $ITERS crashes (replay: EMB_SEED=$SEED EMB_CRASH_ITERS=$ITERS)"
RANDOM=$SEED

emb_mkfs "$S"
emb_mount "$S" "$M"

verify()
{
	emb_timeout 300 python3 "$EMB_INTEG_DIR/crashload.py" verify "$M" "$LOG" ||
		fail "after $1: a file is not as fsync left it, or the tree is unreadable"
}

for i in $(seq "$ITERS"); do
	python3 "$EMB_INTEG_DIR/crashload.py" write --seed "$((SEED + i))" \
		--prefix "c$i" "$M" "$LOG" >"$T/writer.$i.out" 2>&1 &
	writer=$!
	# 0.3 to 2.5 s of work, then SIGKILL
	ms=$((300 + RANDOM % 2200))
	sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
	_emb_pid_alive "$writer" || {
		cat "$T/writer.$i.out" >&2
		fail "the writer ended before the crash"
	}
	emb_kill9 "$M"
	_emb_wait_pid "$writer" 60 || true
	if _emb_pid_alive "$writer"; then
		fail "the writer is stuck 60 s after the daemon was killed"
	fi
	emb_mount "$S" "$M"
	echo "crash $i after ${ms} ms: $(grep -c '^done' "$LOG") durable states logged so far"
	verify "crash $i"
done

done_lines=$(grep -c '^done' "$LOG")
[ "$done_lines" -ge "$ITERS" ] ||
	fail "only $done_lines durable states in $ITERS runs: the test proved little"

# the volume still works after all that, and a clean cycle keeps it all
echo after >"$M/after-crashes"
emb_remount "$S" "$M"
verify "a clean remount"
assert_eq "$(cat "$M/after-crashes")" after "file written after the crashes"
emb_umount "$M"
