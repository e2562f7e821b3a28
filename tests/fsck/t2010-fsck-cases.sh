#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t2010-fsck-cases: every corruption case under tests/fsck/f_*/ (see
# run-case.sh), two at a time. Skips when FUSE cannot be mounted.
#
# TIMEOUT: about 60 s in all.
set -u
src=${top_srcdir:?}/tests/fsck
cases=("$src"/f_*/)
[ -e "${cases[0]}" ] || { echo "no cases under $src" >&2; exit 99; }
logdir=$(mktemp -d "${TMPDIR:-/tmp}/embassyfs-t2010.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
jobs_max=${FSCK_CASE_JOBS:-2}

run_one()
{
	local c=$1 name
	name=$(basename "$c")
	timeout -k 10 $((180 * ${CK_TIMEOUT_MULTIPLIER:-1})) \
		bash "$src/run-case.sh" "$c" >"$logdir/$name.log" 2>&1
	echo $? >"$logdir/$name.rc"
}

for c in "${cases[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
		wait -n
	done
	run_one "$c" &
done
wait

pass=0 fail=0 skip=0
for c in "${cases[@]}"; do
	name=$(basename "$c")
	rc=$(cat "$logdir/$name.rc")
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skip=$((skip + 1)); tail -n 1 "$logdir/$name.log" ;;
	*)
		fail=$((fail + 1))
		echo "----- $name: exit $rc -----"
		cat "$logdir/$name.log"
		;;
	esac
done
echo "fsck cases: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ] || exit 1
[ "$pass" != 0 ] || exit 77
exit 0
