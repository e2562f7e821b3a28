# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# lib.sh - helpers sourced by every tests/integ/t*.sh
#
# Each test gets its own work directory $T (mktemp -d), removed at exit.
# lib.sh registers the only EXIT trap: it unmounts every mount under $T
# (fusermount3 -u, then -uz), sends TERM then KILL to every daemon the test
# started, and removes $T.  Exit codes follow Automake's harness: 0 pass,
# 77 skip (emb_skip), 99 hard error of the harness (emb_hard_error), any
# other value is a failure.  A stray 77 or 99 from a failing command is
# turned into 1, so that a broken test can never look skipped.
#
# Model: libfuse test/cases/lib/common.sh (fuse_mount_at, fuse_wait_mount,
# fuse_umount, _fuse_dump_fs_log, _at_exit).

set -eu
set -o pipefail
set -E

EMB_INTEG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EMB_TEST=$(basename "$0" .sh)
# Deadlines are multiplied for valgrind and sanitizer runs.
EMB_TMULT=${CK_TIMEOUT_MULTIPLIER:-1}
case $EMB_TMULT in '' | *[!0-9]*) EMB_TMULT=1 ;; esac
[ "$EMB_TMULT" -ge 1 ] || EMB_TMULT=1

T=$(mktemp -d "${TMPDIR:-/tmp}/embassyfs-$EMB_TEST.XXXXXX")
# Traversable, so that tests running as nobody reach mounts under $T.
chmod 0755 "$T"
mkdir "$T/log"

declare -A EMB_PID=()	# mountpoint -> pid of its foreground daemon
declare -A EMB_LOG=()	# mountpoint -> daemon log file
EMB_NLOG=0
_emb_status_kind=	# "skip" or "hard" when the exit code is meant
_emb_err_where=
_emb_dumped=

emb_log()
{
	printf '%s: %s\n' "$EMB_TEST" "$*" >&2
}

# ---------------------------------------------------------------------------
# Exit paths

emb_skip()
{
	echo "SKIP: $*" >&2
	_emb_status_kind=skip
	exit 77
}

emb_hard_error()
{
	echo "ERROR: $*" >&2
	_emb_dump_logs
	_emb_status_kind=hard
	exit 99
}

fail()
{
	echo "FAIL: $*" >&2
	_emb_dump_logs
	exit 1
}

_emb_dump_logs()
{
	local f
	[ -z "$_emb_dumped" ] || return 0
	_emb_dumped=1
	for f in "$T"/log/daemon.*.log; do
		[ -s "$f" ] || continue
		echo "----- $(basename "$f") -----" >&2
		tail -n 200 "$f" >&2 || true
	done
}

_emb_on_err()
{
	_emb_err_where="line ${BASH_LINENO[0]}: '$BASH_COMMAND' exited $1"
}
trap '_emb_on_err $?' ERR

_emb_pid_alive()
{
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) ||
		return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Pids of live processes started by this test (their command line names $T).
_emb_our_pids()
{
	local p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" != $$ ] || continue
		if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" |
			grep -qF -- "$T/"; then
			echo "$p"
		fi
	done
}

# Mountpoints under $T, deepest first.
_emb_our_mounts()
{
	awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts |
		sort -r
}

_emb_at_exit()
{
	local rc=$? m p
	set +eu
	trap - ERR
	if [ "$rc" = 77 ] && [ "$_emb_status_kind" != skip ]; then
		echo "FAIL: stray exit status 77 (not a skip)" >&2
		rc=1
	elif [ "$rc" = 99 ] && [ "$_emb_status_kind" != hard ]; then
		echo "FAIL: stray exit status 99 (not a harness error)" >&2
		rc=1
	fi
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -n "$_emb_err_where" ]; then
		echo "FAIL: $_emb_err_where" >&2
		_emb_dump_logs
	fi
	cd /
	for m in $(_emb_our_mounts); do
		fusermount3 -u "$m" 2>/dev/null ||
			fusermount3 -uz "$m" 2>/dev/null ||
			umount -l "$m" 2>/dev/null
	done
	for p in "${EMB_PID[@]}" $(_emb_our_pids); do
		_emb_pid_alive "$p" && kill -TERM "$p" 2>/dev/null
	done
	for _ in $(seq 50); do
		p=
		for p in "${EMB_PID[@]}" $(_emb_our_pids); do
			_emb_pid_alive "$p" && break
			p=
		done
		[ -n "$p" ] || break
		sleep 0.1
	done
	for p in "${EMB_PID[@]}" $(_emb_our_pids); do
		_emb_pid_alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	for m in $(_emb_our_mounts); do
		fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if [ -n "${EMB_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T" 2>/dev/null ||
			{ sleep 1; rm -rf "$T"; } ||
			echo "warning: could not remove $T" >&2
	fi
	exit "$rc"
}
trap _emb_at_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# Requirements

emb_need()
{
	local p
	for p; do
		command -v "$p" >/dev/null 2>&1 || emb_skip "'$p' is not installed"
	done
}

emb_need_fuse()
{
	[ -c /dev/fuse ] || emb_skip "no /dev/fuse"
	[ "$(id -u)" = 0 ] || emb_skip "not root (mounts use allow_other)"
	emb_need fusermount3 mkfs.embassyfs embassyfs timeout python3
	if [ ! -r /dev/fuse ] || [ ! -w /dev/fuse ]; then
		emb_skip "/dev/fuse not usable"
	fi
}

# A python3 that user nobody can run (pyenv shims under /root cannot).
EMB_PY_NOBODY=
emb_need_nobody()
{
	local py
	emb_need setpriv
	getent passwd nobody >/dev/null || emb_skip "no user nobody"
	for py in "$(command -v python3)" /usr/bin/python3 /usr/local/bin/python3; do
		[ -x "$py" ] || continue
		if emb_as_nobody "$py" -c 'pass' 2>/dev/null; then
			EMB_PY_NOBODY=$py
			return 0
		fi
	done
	emb_skip "no python3 runnable by user nobody"
}

emb_as_nobody()
{
	setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
		--inh-caps=-all -- "$@"
}

# timeout(1) scaled by CK_TIMEOUT_MULTIPLIER
emb_timeout()
{
	local s=$1
	shift
	timeout -k 10 $((s * EMB_TMULT)) "$@"
}

# ---------------------------------------------------------------------------
# Volumes and mounts

EMB_PASS="$T/pass"
(umask 077 && printf 'embassyfs test passphrase %s\n' "$(basename "$T")" \
	>"$EMB_PASS")

# emb_mkfs STORE [mkfs options...]
emb_mkfs()
{
	local store=$1 rc=0
	shift
	emb_timeout 120 mkfs.embassyfs --passphrase-file "$EMB_PASS" \
		--pbkdf-cost min "$@" "$store" >"$T/log/mkfs.out" 2>&1 || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$T/log/mkfs.out" >&2
		emb_hard_error "mkfs.embassyfs $* $store exited $rc"
	fi
}

_emb_abs()
{
	realpath -m -- "$1"
}

emb_is_mounted()
{
	local m
	m=$(_emb_abs "$1")
	awk -v m="$m" '$2 == m && $3 ~ /^fuse/ { f = 1 } END { exit !f }' \
		/proc/mounts
}

# Type of the mount at $1 as /proc/mounts shows it.
emb_mount_type()
{
	local m
	m=$(_emb_abs "$1")
	awk -v m="$m" '$2 == m { t = $3 } END { print t }' /proc/mounts
}

# emb_mount STORE MNT [embassyfs options...]
# Starts "embassyfs -f" in the background, waits for the mount; a daemon
# that dies first, or a mount that never appears, is a harness error (99).
emb_mount()
{
	local store=$1 mnt pid log deadline rc
	mnt=$(_emb_abs "$2")
	shift 2
	mkdir -p "$mnt"
	if emb_is_mounted "$mnt"; then
		emb_hard_error "'$mnt' is already mounted"
	fi
	EMB_NLOG=$((EMB_NLOG + 1))
	log="$T/log/daemon.$EMB_NLOG.log"
	echo "+ embassyfs -f --passphrase-file $EMB_PASS $* $store $mnt" >"$log"
	embassyfs -f --passphrase-file "$EMB_PASS" "$@" "$store" "$mnt" \
		>>"$log" 2>&1 </dev/null &
	pid=$!
	EMB_PID[$mnt]=$pid
	EMB_LOG[$mnt]=$log
	deadline=$((SECONDS + 20 * EMB_TMULT))
	while ! emb_is_mounted "$mnt"; do
		if ! _emb_pid_alive "$pid"; then
			rc=0
			wait "$pid" || rc=$?
			unset "EMB_PID[$mnt]"
			emb_hard_error "embassyfs died (exit $rc) before '$mnt' was mounted"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			emb_hard_error "'$mnt' did not appear in /proc/mounts within $((20 * EMB_TMULT)) s"
		fi
		sleep 0.05
	done
}

# Wait up to $2 seconds for pid $1 to end; return its exit status, or 124.
_emb_wait_pid()
{
	local pid=$1 deadline=$((SECONDS + $2)) rc=0
	while _emb_pid_alive "$pid"; do
		[ "$SECONDS" -lt "$deadline" ] || return 124
		sleep 0.05
	done
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# emb_umount MNT: clean unmount; the daemon must exit 0.
emb_umount()
{
	local mnt pid rc=0
	mnt=$(_emb_abs "$1")
	pid=${EMB_PID[$mnt]:-}
	for _ in $(seq 100); do
		fusermount3 -u "$mnt" 2>"$T/log/fusermount.err" && break
		if ! emb_is_mounted "$mnt"; then
			fail "'$mnt' vanished before emb_umount (daemon crashed?)"
		fi
		# EBUSY while a lingering process still holds a file open
		sleep 0.1
	done
	if emb_is_mounted "$mnt"; then
		cat "$T/log/fusermount.err" >&2
		fail "could not unmount '$mnt'"
	fi
	[ -n "$pid" ] || return 0
	_emb_wait_pid "$pid" $((60 * EMB_TMULT)) || rc=$?
	if [ "$rc" = 124 ]; then
		fail "embassyfs (pid $pid) still running 60 s after unmounting '$mnt'"
	fi
	unset "EMB_PID[$mnt]"
	[ "$rc" = 0 ] || fail "embassyfs exited $rc after a clean unmount of '$mnt'"
}

# emb_remount STORE MNT [options...]
emb_remount()
{
	emb_umount "$2"
	emb_mount "$@"
}

# emb_kill9 MNT: SIGKILL the daemon, then detach the dead mount.
emb_kill9()
{
	local mnt pid
	mnt=$(_emb_abs "$1")
	pid=${EMB_PID[$mnt]:-}
	[ -n "$pid" ] || emb_hard_error "no daemon known for '$mnt'"
	# no "Killed" job report from bash; the status is not wanted
	disown "$pid" 2>/dev/null || true
	kill -KILL "$pid" 2>/dev/null || true
	_emb_wait_pid "$pid" $((30 * EMB_TMULT)) || true
	unset "EMB_PID[$mnt]"
	fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null ||
		true
	! emb_is_mounted "$mnt" || emb_hard_error "'$mnt' still mounted after kill -9"
}

# Daemon log of the mount at $1
emb_daemon_log()
{
	local mnt
	mnt=$(_emb_abs "$1")
	echo "${EMB_LOG[$mnt]}"
}

# ---------------------------------------------------------------------------
# Assertions

# expect_errno NAME[|NAME...] OP ARGS...  (OK means success; see fsop.py)
expect_errno()
{
	local want=$1 got
	shift
	got=$(python3 "$EMB_INTEG_DIR/fsop.py" "$@") ||
		fail "fsop.py $* could not run"
	got=${got%%$'\n'*}
	case "|$want|" in
	*"|$got|"*) ;;
	*) fail "$*: expected $want, got $got" ;;
	esac
}

# The same, as user nobody (emb_need_nobody first)
expect_errno_nobody()
{
	local want=$1 got
	shift
	got=$(emb_as_nobody "$EMB_PY_NOBODY" "$EMB_INTEG_DIR/fsop.py" "$@") ||
		fail "fsop.py $* (as nobody) could not run"
	got=${got%%$'\n'*}
	case "|$want|" in
	*"|$got|"*) ;;
	*) fail "$* (as nobody): expected $want, got $got" ;;
	esac
}

assert_eq()
{
	[ "$1" = "$2" ] || fail "${3:-values differ}: expected '$2', got '$1'"
}

# check MSG CMD...: run CMD, fail with MSG if it fails
check()
{
	local msg=$1
	shift
	"$@" || fail "$msg (command: $*)"
}

# Checksum of a tree: every entry's name, type and size, every regular
# file's contents.
emb_tree_sum()
{
	(cd "$1" && find . -printf '%p %y %s\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z |
		xargs -0 -r sha256sum) | sha256sum | cut -d' ' -f1
}

# emb_try CMD...: run CMD with a 60 s deadline, stdin from /dev/null and
# stdout+stderr in $T/out; its exit status goes to EMB_RC.  A hang fails.
EMB_RC=0
emb_try()
{
	EMB_RC=0
	emb_timeout 60 "$@" >"$T/out" 2>&1 </dev/null || EMB_RC=$?
	if [ "$EMB_RC" = 124 ] || [ "$EMB_RC" = 137 ]; then
		cat "$T/out" >&2
		fail "'$*' hung (killed after 60 s)"
	fi
	return 0
}

# expect_fail WHAT CMD...: CMD must exit non-zero (not by a signal).
expect_fail()
{
	local what=$1
	shift
	emb_try "$@"
	if [ "$EMB_RC" = 0 ]; then
		cat "$T/out" >&2
		fail "$what: '$*' succeeded"
	fi
	if [ "$EMB_RC" -gt 128 ]; then
		cat "$T/out" >&2
		fail "$what: '$*' died of signal $((EMB_RC - 128))"
	fi
}

# Wait until no process started by this test (detached daemons included)
# is left, for at most $1 seconds.
emb_wait_no_daemons()
{
	local deadline=$((SECONDS + $1 * EMB_TMULT))
	while [ -n "$(_emb_our_pids)" ]; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.1
	done
}

# emb_text LINE BYTES: LINE repeated, cut at BYTES (compressible data)
emb_text()
{
	{ yes "$1" || true; } | head -c "$2"
}

# Bytes the tree occupies on disk (not apparent size).
emb_du()
{
	du -sB1 "$1" | cut -f1
}
