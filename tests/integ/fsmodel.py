#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
"""fsmodel.py - model-based random test of a mounted file system.

  fsmodel.py run --seed S --ops N --state FILE [--log FILE] MNT REF
  fsmodel.py compare --state FILE MNT REF

"run" applies N random operations (chosen from a generator seeded with S)
to the tree under MNT and to a reference tree REF on a local file system,
and compares each operation's outcome (result or errno name).  Every 500
operations and at the end it compares the two trees entry by entry: type,
permission bits, size, link count and hard-link groups, symlink target,
contents, user.*/trusted.* extended attributes, and mtime where the test
set it explicitly (and nothing changed it since).  "compare" compares only.

The reference is the oracle: where it cannot do an operation itself
(fallocate modes that tmpfs lacks), the operation is emulated on it.
FILE keeps what must survive between runs (explicit mtimes).  Exit status
0 if everything matched, 1 at the first difference (after printing it and
the last operations), 2 on a usage error.
"""

import argparse
import ctypes
import errno
import hashlib
import json
import os
import random
import stat
import sys

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_MODES = [0, FALLOC_FL_KEEP_SIZE,
                FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                FALLOC_FL_ZERO_RANGE,
                FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE]

NAMES = ["a", "b", "c", "d", "e", "f", "g", "h",
         "x" * 200, "name with spaces", "\u00e9t\u00e9"]
XNAMES = ["user.a", "user.b", "user.long." + "n" * 100, "trusted.t"]
MAX_DEPTH = 3
MAX_FILE = 8 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long,
                            ctypes.c_long]
# equivalent errnos: POSIX lets rename/rmdir of a non-empty directory
# return either
EQUIV = {"EEXIST": "ENOTEMPTY"}


class Mismatch(Exception):
    pass


def ename(e):
    return errno.errorcode.get(e, str(e))


def outcome(fn):
    try:
        r = fn()
        return ("ok", r)
    except OSError as e:
        n = ename(e.errno)
        return ("err", EQUIV.get(n, n))


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Model:
    def __init__(self, mnt, ref, state, log):
        self.mnt = mnt
        self.ref = ref
        self.state_path = state
        self.mtimes = {}        # ref inode -> mtime_ns set by utime
        if os.path.exists(state):
            with open(state) as f:
                self.mtimes = {int(k): v for k, v in
                               json.load(f)["mtimes"].items()}
        self.log = open(log, "a") if log else None
        self.recent = []
        self.pool = []          # repeated blocks, for deduplication

    def save(self):
        with open(self.state_path, "w") as f:
            json.dump({"mtimes": self.mtimes}, f)

    def note(self, s):
        self.recent = (self.recent + [s])[-30:]
        if self.log:
            self.log.write(s + "\n")
            self.log.flush()

    # -- the tree as the reference sees it --------------------------------

    def entries(self):
        out = []
        for dp, dns, fns in os.walk(self.ref):
            for n in dns + fns:
                out.append(os.path.relpath(os.path.join(dp, n), self.ref))
        out.sort()
        return out

    def dirs(self):
        d = [""]
        for p in self.entries():
            if (os.path.isdir(os.path.join(self.ref, p)) and
                    not os.path.islink(os.path.join(self.ref, p)) and
                    p.count("/") < MAX_DEPTH - 1):
                d.append(p)
        return d

    def files(self, ents):
        return [p for p in ents
                if stat.S_ISREG(os.lstat(os.path.join(self.ref, p)).st_mode)]

    # -- random choices ---------------------------------------------------

    def any_path(self, rng, ents):
        if ents and rng.random() < 0.8:
            return rng.choice(ents)
        return self.new_path(rng)

    def new_path(self, rng):
        d = rng.choice(self.dirs())
        n = rng.choice(NAMES)
        return os.path.join(d, n) if d else n

    def file_path(self, rng, ents):
        fs = self.files(ents)
        if fs and rng.random() < 0.85:
            return rng.choice(fs)
        return self.any_path(rng, ents)

    def data(self, rng, size):
        r = rng.random()
        if r < 0.35:
            if len(self.pool) < 6:
                self.pool.append(rng.randbytes(256 << 10))
            blk = rng.choice(self.pool)
            start = rng.choice([0, 4096, 16384, 65536])
            out = blk[start:start + size]
            while len(out) < size:
                out += blk[:size - len(out)]
            return out
        if r < 0.45:
            return bytes(size)
        if r < 0.55:
            return (b"text %d " % rng.randrange(1000)) * (size // 9 + 1)
        return rng.randbytes(size)

    def size_of(self, rel):
        try:
            return os.stat(os.path.join(self.ref, rel)).st_size
        except OSError:
            return 0

    def offset(self, rng, rel):
        size = self.size_of(rel)
        r = rng.random()
        if r < 0.3:
            return rng.randrange(0, size // 4096 + 2) * 4096
        if r < 0.45:
            return rng.randrange(0, size // 65536 + 2) * 65536
        if r < 0.55:
            return size
        if r < 0.6:
            return rng.randrange(0, MAX_FILE - (256 << 10))
        return rng.randrange(0, size + 65536)

    def length(self, rng):
        r = rng.random()
        if r < 0.25:
            return rng.randint(1, 4096)
        if r < 0.5:
            return rng.choice([4096, 16384, 65536, 131072])
        if r < 0.75:
            return rng.randint(1, 16384)
        return rng.randint(1, 200 << 10)

    # -- one operation on one tree ----------------------------------------

    @staticmethod
    def do(root, op, a):
        def P(rel):
            return os.path.join(root, rel)

        if op == "write":
            fd = os.open(P(a["path"]), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                return os.pwrite(fd, a["data"], a["off"])
            finally:
                os.close(fd)
        if op == "trunc_write":
            fd = os.open(P(a["path"]),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                return os.write(fd, a["data"])
            finally:
                os.close(fd)
        if op == "append":
            fd = os.open(P(a["path"]), os.O_WRONLY | os.O_APPEND)
            try:
                return os.write(fd, a["data"])
            finally:
                os.close(fd)
        if op == "read":
            fd = os.open(P(a["path"]), os.O_RDONLY)
            try:
                return hashlib.sha256(
                    os.pread(fd, a["len"], a["off"])).hexdigest()
            finally:
                os.close(fd)
        if op == "truncate":
            return os.truncate(P(a["path"]), a["size"])
        if op == "rename":
            return os.rename(P(a["src"]), P(a["dst"]))
        if op == "link":
            return os.link(P(a["src"]), P(a["dst"]), follow_symlinks=False)
        if op == "unlink":
            return os.unlink(P(a["path"]))
        if op == "mkdir":
            return os.mkdir(P(a["path"]), a["mode"])
        if op == "rmdir":
            return os.rmdir(P(a["path"]))
        if op == "symlink":
            return os.symlink(a["target"], P(a["path"]))
        if op == "setxattr":
            return os.setxattr(P(a["path"]), a["name"], a["value"],
                               follow_symlinks=False)
        if op == "removexattr":
            return os.removexattr(P(a["path"]), a["name"],
                                  follow_symlinks=False)
        if op == "chmod":
            return os.chmod(P(a["path"]), a["mode"])
        if op == "utime":
            return os.utime(P(a["path"]), ns=(a["atime"], a["mtime"]),
                            follow_symlinks=False)
        if op == "fsync":
            fd = os.open(P(a["path"]), os.O_RDONLY)
            try:
                return os.fsync(fd)
            finally:
                os.close(fd)
        if op == "fallocate":
            fd = os.open(P(a["path"]), os.O_RDWR)
            try:
                if root == a["_ref"]:
                    return Model.emulate_fallocate(fd, a)
                return fallocate(fd, a["mode"], a["off"], a["len"])
            finally:
                os.close(fd)
        raise ValueError(op)

    @staticmethod
    def emulate_fallocate(fd, a):
        """fallocate's visible effect, done with pwrite and ftruncate."""
        mode, off, ln = a["mode"], a["off"], a["len"]
        size = os.fstat(fd).st_size
        end = off + ln
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            zend = end if not (mode & FALLOC_FL_KEEP_SIZE) else min(end, size)
            if zend > off:
                os.pwrite(fd, bytes(zend - off), off)
        elif not (mode & FALLOC_FL_KEEP_SIZE) and end > size:
            os.ftruncate(fd, end)
        return None

    # -- a random operation on both trees ---------------------------------

    def step(self, i, rng):
        ents = self.entries()
        r = rng.random()
        ops = [("write", 24), ("trunc_write", 3), ("append", 3),
               ("read", 6), ("truncate", 7), ("rename", 8), ("link", 5),
               ("unlink", 7), ("mkdir", 6), ("rmdir", 4), ("symlink", 4),
               ("setxattr", 6), ("removexattr", 2), ("fallocate", 7),
               ("chmod", 4), ("utime", 5), ("fsync", 2)]
        total = sum(w for _, w in ops)
        x = r * total
        for op, w in ops:
            x -= w
            if x < 0:
                break
        a = {"_ref": self.ref}
        touched = []            # paths whose inode's mtime may change
        if op in ("write",):
            a["path"] = self.file_path(rng, ents)
            a["off"] = self.offset(rng, a["path"])
            a["data"] = self.data(rng, self.length(rng))
            touched = [a["path"], os.path.dirname(a["path"])]
        elif op in ("trunc_write", "append"):
            a["path"] = self.file_path(rng, ents)
            a["data"] = self.data(rng, self.length(rng))
            touched = [a["path"], os.path.dirname(a["path"])]
        elif op == "read":
            a["path"] = self.file_path(rng, ents)
            a["off"] = self.offset(rng, a["path"])
            a["len"] = self.length(rng)
        elif op == "truncate":
            a["path"] = self.file_path(rng, ents)
            s = self.size_of(a["path"])
            a["size"] = rng.choice([0, s // 2, max(0, s - 1), s + 1,
                                    rng.randrange(0, 2 * s + 2),
                                    rng.randrange(0, 64) * 4096,
                                    rng.randrange(0, MAX_FILE)])
            touched = [a["path"]]
        elif op in ("rename", "link"):
            a["src"] = self.any_path(rng, ents)
            a["dst"] = self.any_path(rng, ents) if rng.random() < 0.4 \
                else self.new_path(rng)
            touched = [a["src"], a["dst"], os.path.dirname(a["src"]),
                       os.path.dirname(a["dst"])]
        elif op in ("unlink", "rmdir"):
            a["path"] = self.any_path(rng, ents)
            touched = [os.path.dirname(a["path"])]
        elif op == "mkdir":
            a["path"] = self.new_path(rng)
            a["mode"] = rng.choice([0o755, 0o700, 0o777, 0o1777, 0o2755])
            touched = [os.path.dirname(a["path"])]
        elif op == "symlink":
            a["path"] = self.new_path(rng)
            # relative, without "..": it never leads out of the tree
            t = rng.choice(NAMES)
            if rng.random() < 0.3:
                t = rng.choice(NAMES) + "/" + t
            if rng.random() < 0.1:
                t = "t" * rng.randint(1, 4000)
            a["target"] = t
            touched = [os.path.dirname(a["path"])]
        elif op in ("setxattr", "removexattr"):
            a["path"] = self.any_path(rng, ents)
            a["name"] = rng.choice(XNAMES)
            if op == "setxattr":
                n = rng.choice([0, 1, 10, 100, 255])
                a["value"] = rng.randbytes(n)
        elif op == "fallocate":
            a["path"] = self.file_path(rng, ents)
            a["mode"] = rng.choice(FALLOC_MODES)
            a["off"] = self.offset(rng, a["path"])
            a["len"] = self.length(rng)
            touched = [a["path"]]
        elif op == "chmod":
            a["path"] = self.any_path(rng, ents)
            a["mode"] = rng.choice([0o644, 0o600, 0o755, 0o4755, 0o2755,
                                    0o1777, 0o000, rng.randrange(0, 0o7777)])
        elif op == "utime":
            a["path"] = self.any_path(rng, ents)
            a["atime"] = rng.randrange(0, 2 ** 33) * 10 ** 9 + \
                rng.randrange(0, 10 ** 9)
            a["mtime"] = rng.choice([
                rng.randrange(0, 2 ** 33) * 10 ** 9 +
                rng.randrange(0, 10 ** 9),
                rng.randrange(-2 ** 31, 0) * 10 ** 9,
                1234567890 * 10 ** 9])
        elif op == "fsync":
            a["path"] = self.any_path(rng, ents)

        desc = "%d %s %s" % (i, op, " ".join(
            "%s=%s" % (k, (len(v) if isinstance(v, bytes) else
                           (v[:60] + "..." if isinstance(v, str) and
                            len(v) > 60 else v)))
            for k, v in a.items() if k != "_ref"))
        self.note(desc)

        # inodes whose mtime nobody set explicitly from now on
        for p in touched:
            self.forget_mtime(p)
        rr = outcome(lambda: self.do(self.ref, op, a))
        rm = outcome(lambda: self.do(self.mnt, op, a))
        if rr != rm:
            raise Mismatch("op %s:\n  reference: %s\n  mount:     %s"
                           % (desc, rr, rm))
        for p in touched:
            self.forget_mtime(p)
        if op == "utime" and rr[0] == "ok":
            st = os.lstat(os.path.join(self.ref, a["path"]))
            self.mtimes[st.st_ino] = st.st_mtime_ns

    def forget_mtime(self, rel):
        try:
            st = os.lstat(os.path.join(self.ref, rel))
        except OSError:
            return
        self.mtimes.pop(st.st_ino, None)

    # -- whole-tree comparison --------------------------------------------

    def describe(self, root, rel, ref_ino_mtime):
        p = os.path.join(root, rel) if rel else root
        st = os.lstat(p)
        m = st.st_mode
        d = {"type": stat.S_IFMT(m), "perm": oct(stat.S_IMODE(m))}
        if not stat.S_ISDIR(m):
            d["size"] = st.st_size
            d["nlink"] = st.st_nlink
        if stat.S_ISLNK(m):
            d["target"] = os.readlink(p)
        elif stat.S_ISREG(m):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            d["sha256"] = h.hexdigest()
        xs = {}
        for n in os.listxattr(p, follow_symlinks=False):
            if n.startswith("user.") or n.startswith("trusted."):
                xs[n] = os.getxattr(p, n, follow_symlinks=False).hex()
        d["xattr"] = xs
        if ref_ino_mtime is not None:
            d["mtime"] = st.st_mtime_ns
        return d, st.st_ino

    def compare(self):
        # explicit mtimes still in force on the reference
        for rel in [""] + self.entries():
            st = os.lstat(os.path.join(self.ref, rel) if rel else self.ref)
            want = self.mtimes.get(st.st_ino)
            if want is not None and st.st_mtime_ns != want:
                del self.mtimes[st.st_ino]
        ref_ents = self.entries()
        mnt_ents = []
        for dp, dns, fns in os.walk(self.mnt):
            names = dns + fns
            if len(set(names)) != len(names):
                raise Mismatch("duplicate names in %s" % dp)
            for n in names:
                mnt_ents.append(os.path.relpath(os.path.join(dp, n),
                                                self.mnt))
        mnt_ents.sort()
        if ref_ents != mnt_ents:
            only_r = sorted(set(ref_ents) - set(mnt_ents))[:10]
            only_m = sorted(set(mnt_ents) - set(ref_ents))[:10]
            raise Mismatch("trees differ: only in reference %s, only in "
                           "mount %s" % (only_r, only_m))
        groups_r, groups_m = {}, {}
        for rel in [""] + ref_ents:
            rst = os.lstat(os.path.join(self.ref, rel) if rel else self.ref)
            want = self.mtimes.get(rst.st_ino)
            dr, ir = self.describe(self.ref, rel, want)
            dm, im = self.describe(self.mnt, rel, want)
            if dr != dm:
                diff = {k: (dr.get(k), dm.get(k)) for k in set(dr) | set(dm)
                        if dr.get(k) != dm.get(k)}
                raise Mismatch("entry '%s' differs (reference, mount): %s"
                               % (rel, diff))
            if not stat.S_ISDIR(rst.st_mode):
                groups_r.setdefault(ir, set()).add(rel)
                groups_m.setdefault(im, set()).add(rel)
        gr = sorted(sorted(g) for g in groups_r.values())
        gm = sorted(sorted(g) for g in groups_m.values())
        if gr != gm:
            raise Mismatch("hard-link groups differ:\n  reference: %s\n"
                           "  mount: %s" % (
                               [g for g in gr if g not in gm][:5],
                               [g for g in gm if g not in gr][:5]))
        return len(ref_ents)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["run", "compare"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--state", required=True)
    ap.add_argument("--log")
    ap.add_argument("mnt")
    ap.add_argument("ref")
    a = ap.parse_args()
    m = Model(os.path.abspath(a.mnt), os.path.abspath(a.ref), a.state,
              a.log)
    try:
        if a.cmd == "run":
            rng = random.Random(a.seed)
            for i in range(a.ops):
                m.step(i, rng)
                if (i + 1) % 500 == 0:
                    n = m.compare()
                    print("fsmodel: %d ops, trees equal (%d entries)"
                          % (i + 1, n))
        n = m.compare()
        print("fsmodel: %s done, trees equal (%d entries, %d explicit "
              "mtimes)" % (a.cmd, n, len(m.mtimes)))
    except Mismatch as e:
        print("fsmodel: MISMATCH (seed %d)\n%s" % (a.seed, e))
        print("fsmodel: last operations:")
        for s in m.recent:
            print("  " + s)
        return 1
    finally:
        m.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
