#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
"""fsop.py - run one file-system call and print OK or the errno name.

Used by expect_errno in lib.sh:  fsop.py OP ARGS...
Prints "OK" (plus a value for the calls that return one, on a second line)
or the symbolic errno, e.g. "ENOTEMPTY", and exits 0; exit 2 is a usage
error of this helper.
"""

import ctypes
import errno
import os
import sys

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    f = _libc.renameat2
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                  ctypes.c_char_p, ctypes.c_uint]
    if f(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _open_flags(s):
    v = 0
    for name in s.split("|"):
        v |= getattr(os, name)
    return v


def op_open(path, flags="O_RDONLY", mode="644"):
    os.close(os.open(path, _open_flags(flags), int(mode, 8)))


def op_write(path, data, flags="O_WRONLY"):
    fd = os.open(path, _open_flags(flags))
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def op_read(path):
    with open(path, "rb") as f:
        f.read()


def op_truncate(path, length):
    os.truncate(path, int(length))


def op_ftruncate(path, length):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, int(length))
    finally:
        os.close(fd)


def op_mkdir(path, mode="755"):
    os.mkdir(path, int(mode, 8))


def op_mknod(path, kind="f", major="0", minor="0"):
    import stat
    t = {"f": stat.S_IFREG, "p": stat.S_IFIFO, "c": stat.S_IFCHR,
         "b": stat.S_IFBLK}[kind]
    os.mknod(path, t | 0o644, os.makedev(int(major), int(minor)))


def op_rename_noreplace(a, b):
    renameat2(a, b, RENAME_NOREPLACE)


def op_rename_exchange(a, b):
    renameat2(a, b, RENAME_EXCHANGE)


def op_chmod(path, mode):
    os.chmod(path, int(mode, 8))


def op_chown(path, uid, gid):
    os.chown(path, int(uid), int(gid))


def op_setxattr(path, name, value):
    os.setxattr(path, name, value.encode(), follow_symlinks=False)


def op_getxattr(path, name):
    return os.getxattr(path, name, follow_symlinks=False).decode(
        errors="replace")


def op_removexattr(path, name):
    os.removexattr(path, name, follow_symlinks=False)


def op_listxattr(path):
    return " ".join(sorted(os.listxattr(path, follow_symlinks=False)))


def op_readlink(path):
    return os.readlink(path)


def op_utime(path, atime_ns, mtime_ns):
    os.utime(path, ns=(int(atime_ns), int(mtime_ns)))


def op_fallocate(path, mode, offset, length):
    # mode: 0, or 3 = PUNCH_HOLE|KEEP_SIZE, 16 = ZERO_RANGE, 1 = KEEP_SIZE
    fd = os.open(path, os.O_RDWR)
    try:
        r = _libc.fallocate(ctypes.c_int(fd), ctypes.c_int(int(mode)),
                            ctypes.c_long(int(offset)),
                            ctypes.c_long(int(length)))
        if r != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    finally:
        os.close(fd)


def op_lockf(path):
    """Non-blocking exclusive POSIX lock, held until stdin closes."""
    import fcntl
    fd = os.open(path, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def op_flock(path):
    import fcntl
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


OPS = {
    "stat": lambda p: os.stat(p) and None,
    "lstat": lambda p: os.lstat(p) and None,
    "open": op_open,
    "read": op_read,
    "write": op_write,
    "truncate": op_truncate,
    "ftruncate": op_ftruncate,
    "mkdir": op_mkdir,
    "rmdir": os.rmdir,
    "unlink": os.unlink,
    "rename": os.rename,
    "rename_noreplace": op_rename_noreplace,
    "rename_exchange": op_rename_exchange,
    "link": os.link,
    "symlink": os.symlink,
    "readlink": op_readlink,
    "mknod": op_mknod,
    "chmod": op_chmod,
    "chown": op_chown,
    "setxattr": op_setxattr,
    "getxattr": op_getxattr,
    "removexattr": op_removexattr,
    "listxattr": op_listxattr,
    "utime": op_utime,
    "fallocate": op_fallocate,
    "lockf": op_lockf,
    "flock": op_flock,
    "listdir": lambda p: " ".join(sorted(os.listdir(p))),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in OPS:
        sys.stderr.write("usage: fsop.py {%s} ARGS...\n" % ",".join(OPS))
        return 2
    try:
        r = OPS[argv[1]](*argv[2:])
    except TypeError as e:
        sys.stderr.write("fsop.py: %s\n" % e)
        return 2
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        return 0
    print("OK")
    if isinstance(r, str):
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
