#!/bin/bash
# t0200-cli-demo: the README's main job (contrib/demo/registry-demo.sh)
# runs to the end and exits 0: volume created, registry written, store
# free of plaintext, contents identical after remount.
# TIMEOUT: 120
. "$(dirname "$0")/lib.sh"
emb_need_fuse
emb_need python3 sqlite3 mountpoint

DEMO_DIR=$T/demo
mkdir -p "$DEMO_DIR"
export DEMO_DIR
emb_timeout 120 "$top_srcdir/contrib/demo/registry-demo.sh" >"$T/demo.out" 2>&1 ||
	{ cat "$T/demo.out" >&2; fail "the demo failed"; }
grep -q "^== done" "$T/demo.out" || { cat "$T/demo.out" >&2; fail "the demo did not finish"; }
grep -q "2000 birth records, integrity_check ok" "$T/demo.out" ||
	fail "the demo did not verify the registry"
emb_wait_no_daemons 30 || fail "the demo left a daemon running"
echo "ok: demo"
