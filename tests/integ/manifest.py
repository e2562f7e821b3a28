#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
"""manifest.py - print a sorted, comparable description of a tree.

  manifest.py [--ino] [--ctime] [--no-owner] [--no-mtime] [--no-nlink]
              [--max-hash BYTES] [--no-root] DIR

One line per entry below DIR (DIR itself as "."): path, type, mode, owner,
nlink, size, mtime (ns), symlink target, sha256 of regular file contents and
every extended attribute (name=hex value).  Two trees are equal when their
manifests are.  atime is never listed; directory sizes neither (they are
file-system specific).  Files larger than --max-hash are listed by size only.
"""

import argparse
import hashlib
import os
import stat
import sys


def file_hash(path, size, max_hash):
    if size > max_hash:
        return "unhashed"
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return "xattr-error"
    out = []
    for n in sorted(names):
        try:
            v = os.getxattr(path, n, follow_symlinks=False).hex()
        except OSError as e:
            v = "err%d" % e.errno
        out.append("%s=%s" % (n, v))
    return ",".join(out)


def describe(root, rel, a):
    p = os.path.join(root, rel) if rel != "." else root
    st = os.lstat(p)
    m = st.st_mode
    f = [rel, stat.filemode(m), "%o" % stat.S_IMODE(m)]
    if not a.no_owner:
        f.append("%d:%d" % (st.st_uid, st.st_gid))
    if not a.no_nlink and not stat.S_ISDIR(m):
        f.append("n%d" % st.st_nlink)
    if not stat.S_ISDIR(m):
        f.append("s%d" % st.st_size)
    if not a.no_mtime and not stat.S_ISLNK(m):
        f.append("m%d" % st.st_mtime_ns)
    if a.ctime:
        f.append("c%d" % st.st_ctime_ns)
    if a.ino:
        f.append("i%d" % st.st_ino)
    if stat.S_ISLNK(m):
        f.append("->" + os.readlink(p))
    elif stat.S_ISREG(m):
        f.append(file_hash(p, st.st_size, a.max_hash))
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        f.append("dev%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    f.append("x[" + xattrs(p) + "]")
    return " ".join(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ino", action="store_true")
    ap.add_argument("--ctime", action="store_true")
    ap.add_argument("--no-owner", action="store_true")
    ap.add_argument("--no-mtime", action="store_true")
    ap.add_argument("--no-nlink", action="store_true")
    ap.add_argument("--max-hash", type=int, default=1 << 62)
    ap.add_argument("--no-root", action="store_true",
                    help="leave out DIR itself")
    ap.add_argument("dir")
    a = ap.parse_args()
    rels = [] if a.no_root else ["."]
    for dp, dns, fns in os.walk(a.dir):
        for n in dns + fns:
            rels.append(os.path.relpath(os.path.join(dp, n), a.dir))
    for rel in sorted(rels):
        print(describe(a.dir, rel, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
