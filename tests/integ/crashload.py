#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
"""crashload.py - a writer to crash, and a checker of what fsync promised.

  crashload.py write --seed S --prefix P MNT LOG
  crashload.py verify MNT LOG

"write" runs a mixed workload under MNT until an operation fails (the
daemon was killed): new files (fsynced or not), atomic replacement by
rename, in-place overwrites and truncation followed by fsync, unlinks.
Before each change it appends "intent" to LOG, and once the change is
durable (fsync of the file and of its directory returned) "done"; LOG is
outside the mount and fsynced after each line, so it survives whatever
happens to the mount.

"verify" checks, for every name that has a "done" line, that the file is
in a state that the log allows: the last "done" state, or, when an
atomic change (rename, unlink) was started after it, that change's state.
A non-atomic change started after the last "done" leaves the file
unconstrained.  It also walks the whole tree (stat and read of every
entry) and fails on any error.  Exit 0 when all holds, 1 otherwise.
"""

import argparse
import hashlib
import os
import random
import sys

ABSENT = "absent"


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Log:
    def __init__(self, path):
        self.f = open(path, "a")

    def put(self, *fields):
        self.f.write(" ".join(fields) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())


def fsync_path(p, flags=os.O_RDONLY):
    fd = os.open(p, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(a):
    rng = random.Random(a.seed)
    log = Log(a.log)
    mnt = a.mnt
    os.makedirs(os.path.join(mnt, "d"), exist_ok=True)
    fsync_path(os.path.join(mnt, "d"))
    fsync_path(mnt)
    pool = [rng.randbytes(64 << 10) for _ in range(4)]
    mine = []                   # files created by this run
    n = 0

    def data():
        size = rng.choice([1, 100, 4096, 16384, 65536, 200000, 1 << 20,
                           rng.randint(1, 3 << 20)])
        if rng.random() < 0.3:
            b = rng.choice(pool)
            return (b * (size // len(b) + 1))[:size]
        return rng.randbytes(size)

    while True:
        n += 1
        r = rng.random()
        if r < 0.35 or not mine:
            # a new file, fsynced (and its directory) or not
            name = "d/%s-%d" % (a.prefix, n)
            p = os.path.join(mnt, name)
            b = data()
            sync = rng.random() < 0.7
            log.put("intent", "partial", name, sha(b))
            with open(p, "wb") as f:
                for i in range(0, len(b), 65536):
                    f.write(b[i:i + 65536])
                if sync:
                    f.flush()
                    os.fsync(f.fileno())
            if sync:
                fsync_path(os.path.join(mnt, "d"))
                log.put("done", name, sha(b))
            mine.append(name)
        elif r < 0.55:
            # atomic replacement: write a temporary file, rename over
            name = "d/%s-r%d" % (a.prefix, rng.randrange(5))
            p = os.path.join(mnt, name)
            b = data()
            tmp = p + ".tmp"
            with open(tmp, "wb") as f:
                f.write(b)
                f.flush()
                os.fsync(f.fileno())
            log.put("intent", "atomic", name, sha(b))
            os.rename(tmp, p)
            fsync_path(os.path.join(mnt, "d"))
            log.put("done", name, sha(b))
        elif r < 0.75:
            # in-place overwrite of part of a file, then fsync
            name = rng.choice(mine)
            p = os.path.join(mnt, name)
            if not os.path.exists(p):
                continue
            with open(p, "rb") as f:
                old = f.read()
            off = rng.randrange(0, len(old) + 1)
            patch = data()[:rng.randint(1, 300000)]
            new = old[:off] + patch + old[off + len(patch):]
            log.put("intent", "partial", name, sha(new))
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(patch)
                f.flush()
                os.fsync(f.fileno())
            fsync_path(os.path.join(mnt, "d"))
            log.put("done", name, sha(new))
        elif r < 0.85:
            # truncate, then fsync
            name = rng.choice(mine)
            p = os.path.join(mnt, name)
            if not os.path.exists(p):
                continue
            with open(p, "rb") as f:
                old = f.read()
            size = rng.randrange(0, len(old) + 100000)
            new = old[:size] + bytes(max(0, size - len(old)))
            log.put("intent", "partial", name, sha(new))
            with open(p, "r+b") as f:
                f.truncate(size)
                os.fsync(f.fileno())
            fsync_path(os.path.join(mnt, "d"))
            log.put("done", name, sha(new))
        else:
            # unlink, then fsync the directory
            name = rng.choice(mine)
            mine.remove(name)
            p = os.path.join(mnt, name)
            if not os.path.exists(p):
                continue
            log.put("intent", "atomic", name, ABSENT)
            os.unlink(p)
            fsync_path(os.path.join(mnt, "d"))
            log.put("done", name, ABSENT)


def verify(a):
    # name -> (last done state, [states of atomic intents after it], free)
    state = {}
    with open(a.log) as f:
        lines = f.read().splitlines()
    for ln in lines:
        w = ln.split()
        if len(w) == 3 and w[0] == "done":
            state[w[1]] = [w[2], [], False]
        elif len(w) == 4 and w[0] == "intent":
            s = state.get(w[2])
            if s is None:
                continue
            if w[1] == "atomic":
                s[1].append(w[3])
            else:
                s[2] = True
        # a torn last line (the writer was killed mid-write) is ignored
    bad = 0
    checked = 0
    for name, (done, later, free) in sorted(state.items()):
        if free:
            continue
        p = os.path.join(a.mnt, name)
        try:
            with open(p, "rb") as f:
                cur = sha(f.read())
        except FileNotFoundError:
            cur = ABSENT
        except OSError as e:
            print("verify: %s: %s" % (name, e))
            bad += 1
            continue
        checked += 1
        if cur != done and cur not in later:
            print("verify: %s is %s, fsync promised %s%s" % (
                name, cur[:16], done[:16],
                (" or " + ", ".join(x[:16] for x in later)) if later else ""))
            bad += 1
    # the whole tree is walkable and readable
    entries = 0
    for dp, dns, fns in os.walk(a.mnt, onerror=lambda e: (_ for _ in ()).throw(e)):
        for n in dns + fns:
            p = os.path.join(dp, n)
            entries += 1
            try:
                st = os.lstat(p)
                if os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as f:
                        got = len(f.read())
                    if got != st.st_size:
                        print("verify: %s: read %d bytes, size %d" % (
                            p, got, st.st_size))
                        bad += 1
            except OSError as e:
                print("verify: %s: %s" % (p, e))
                bad += 1
    print("verify: %d durable files checked, %d entries walked, %d problems"
          % (checked, entries, bad))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["write", "verify"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="f")
    ap.add_argument("mnt")
    ap.add_argument("log")
    a = ap.parse_args()
    if a.cmd == "write":
        try:
            write(a)
        except OSError as e:
            # the expected end: the daemon was killed under us
            print("write: stopped by %s" % e)
            return 0
        return 0
    try:
        return verify(a)
    except OSError as e:
        print("verify: walking the tree failed: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
