#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Copyright (C) 2026 The embassyfs authors
#
# t1000-posix-basic - POSIX semantics of a mounted volume, one by one
#
# Files, directories, read/write/O_APPEND, truncate, holes, a file past
# 4 GiB, rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE, directories),
# hard links, long symlinks, fifo/device/socket nodes, chmod/chown/utimes,
# mtime/ctime rules, setuid cleared on write, sticky directories, xattrs
# and POSIX ACLs, name length limits, the usual errnos, statfs, fallocate,
# flock and POSIX locks, mmap, readdir during deletion, unlinked open
# files, then stable inode numbers and everything intact after a remount.
#
# TIMEOUT: 180 (about 20 s)

. "$(dirname "$0")/lib.sh"

emb_need_fuse
emb_need_nobody
emb_need stat truncate fallocate flock setfattr getfattr dd cmp sha256sum

S=$T/store
M=$T/mnt
R=$T/ref	# expected contents, built on the local disk
mkdir "$R"

emb_mkfs "$S"
emb_mount "$S" "$M"
assert_eq "$(emb_mount_type "$M")" fuse.embassyfs "type in /proc/mounts"

# stat field of a path (stat -c FORMAT)
sf()
{
	stat -c "$1" -- "$2"
}

# ---------------------------------------------------------------------------
# Files and directories, read, write, append

echo hello >"$M/f1"
assert_eq "$(cat "$M/f1")" hello "read back f1"
assert_eq "$(sf %s "$M/f1")" 6 "size of f1"
assert_eq "$(sf %F "$M/f1")" "regular file" "type of f1"
echo world >>"$M/f1"
assert_eq "$(cat "$M/f1")" $'hello\nworld' "append with >>"

python3 - "$M/app" <<'EOF'
import os, sys
p = sys.argv[1]
with open(p, "wb") as f:
    f.write(b"0123456789")
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"abc")            # O_APPEND: lands at the end, not at 0
os.lseek(fd, 2, os.SEEK_SET)
os.write(fd, b"def")
os.close(fd)
EOF
assert_eq "$(cat "$M/app")" 0123456789abcdef "O_APPEND writes go to the end"

mkdir "$M/d1" "$M/d1/sub"
echo x >"$M/d1/sub/x"
assert_eq "$(sf %F "$M/d1")" directory "type of d1"
assert_eq "$(cat "$M/d1/sub/x")" x "nested file"
assert_eq "$(ls "$M/d1")" sub "listing of d1"
# nlink of a directory is 2 + subdirectories, or 1 ("not counted");
# anything else makes find(1) skip subdirectories.
n=$(sf %h "$M/d1")
[ "$n" = 3 ] || [ "$n" = 1 ] || fail "nlink of d1 with one subdirectory is $n"

# overwrite in the middle; data past the write untouched
head -c 300000 /dev/urandom >"$R/mid"
cp "$R/mid" "$M/mid"
printf 'MIDDLE' | dd of="$R/mid" bs=1 seek=150001 conv=notrunc status=none
printf 'MIDDLE' | dd of="$M/mid" bs=1 seek=150001 conv=notrunc status=none
cmp "$R/mid" "$M/mid" || fail "overwrite in the middle of a file"

# ---------------------------------------------------------------------------
# truncate both ways, holes

head -c 100000 /dev/urandom >"$R/tr"
cp "$R/tr" "$M/tr"
truncate -s 1000 "$M/tr"
assert_eq "$(sf %s "$M/tr")" 1000 "size after shrinking"
cmp <(head -c 1000 "$R/tr") "$M/tr" || fail "contents after shrinking"
truncate -s 300000 "$M/tr"
assert_eq "$(sf %s "$M/tr")" 300000 "size after growing"
{ head -c 1000 "$R/tr"; head -c 299000 /dev/zero; } >"$R/tr2"
cmp "$R/tr2" "$M/tr" || fail "grown part of a file must read as zeros"
# shrink inside a block then grow again: the old tail must not come back
cp "$R/tr" "$M/tr3"
truncate -s 5000 "$M/tr3"
truncate -s 100000 "$M/tr3"
{ head -c 5000 "$R/tr"; head -c 95000 /dev/zero; } >"$R/tr3"
cmp "$R/tr3" "$M/tr3" || fail "data beyond a shrink came back after growing"
expect_errno OK ftruncate "$M/tr3" 7
assert_eq "$(sf %s "$M/tr3")" 7 "size after ftruncate"

for f in "$R/holes" "$M/holes"; do
	printf A | dd of="$f" bs=1 seek=0 status=none
	printf B | dd of="$f" bs=1 seek=$((1048576 + 1)) conv=notrunc status=none
	printf C | dd of="$f" bs=1 seek=$((3 * 1048576 + 77)) conv=notrunc status=none
done
assert_eq "$(sf %s "$M/holes")" $((3 * 1048576 + 78)) "size of a sparse file"
cmp "$R/holes" "$M/holes" || fail "holes must read as zeros"

# a file beyond 4 GiB (sparse): write across 4 GiB and at 5 GiB
G=$((1 << 30))
printf 'across-4G' | dd of="$M/big" bs=1 seek=$((4 * G - 4)) status=none
printf 'at-5G' | dd of="$M/big" bs=1 seek=$((5 * G)) conv=notrunc status=none
assert_eq "$(sf %s "$M/big")" $((5 * G + 5)) "size of the 5 GiB file"
got=$(dd if="$M/big" bs=1 skip=$((4 * G - 4)) count=9 status=none)
assert_eq "$got" across-4G "bytes written across 4 GiB"
got=$(dd if="$M/big" bs=1 skip=$((5 * G)) count=5 status=none)
assert_eq "$got" at-5G "bytes written at 5 GiB"
got=$(dd if="$M/big" bs=4096 skip=$((4 * G / 4096 + 100)) count=16 status=none |
	tr -d '\0' | wc -c)
assert_eq "$got" 0 "hole between 4 and 5 GiB reads as zeros"

# ---------------------------------------------------------------------------
# rename

echo src >"$M/ra"
echo dst >"$M/rb"
ino_ra=$(sf %i "$M/ra")
mv "$M/ra" "$M/rb"
[ ! -e "$M/ra" ] || fail "rename source still exists"
assert_eq "$(cat "$M/rb")" src "rename over an existing file"
assert_eq "$(sf %i "$M/rb")" "$ino_ra" "inode follows the renamed file"

echo one >"$M/n1"
echo two >"$M/n2"
expect_errno EEXIST rename_noreplace "$M/n1" "$M/n2"
assert_eq "$(cat "$M/n1")$(cat "$M/n2")" onetwo "RENAME_NOREPLACE changed nothing"
expect_errno OK rename_noreplace "$M/n1" "$M/n3"
[ ! -e "$M/n1" ] && [ "$(cat "$M/n3")" = one ] || fail "RENAME_NOREPLACE to a free name"
expect_errno OK rename_exchange "$M/n2" "$M/n3"
assert_eq "$(cat "$M/n2")/$(cat "$M/n3")" one/two "RENAME_EXCHANGE of two files"
mkdir "$M/xd"
expect_errno OK rename_exchange "$M/n2" "$M/xd"
[ -d "$M/n2" ] && [ "$(cat "$M/xd")" = one ] || fail "RENAME_EXCHANGE of a file and a directory"
expect_errno ENOENT rename_exchange "$M/n3" "$M/missing"

mkdir -p "$M/pa/d" "$M/pb"
echo payload >"$M/pa/d/file"
mv "$M/pa/d" "$M/pb/d"
[ ! -e "$M/pa/d" ] || fail "directory still in its old parent"
assert_eq "$(cat "$M/pb/d/file")" payload "directory moved across parents"
assert_eq "$(cd "$M/pb/d/.." && pwd -P)" "$M/pb" "'..' of a moved directory"
mkdir -p "$M/full/x" "$M/empty"
expect_errno ENOTEMPTY rename "$M/pb/d" "$M/full"
expect_errno OK rename "$M/pb/d" "$M/empty"
assert_eq "$(cat "$M/empty/file")" payload "rename of a directory over an empty one"
expect_errno ENOTDIR rename "$M/empty" "$M/rb"
expect_errno EISDIR rename "$M/rb" "$M/full"
expect_errno EINVAL rename "$M/full" "$M/full/x/inside"
expect_errno ENOENT rename "$M/nonexistent" "$M/whatever"

# ---------------------------------------------------------------------------
# hard links, symlinks, special files

echo linked >"$M/h1"
ln "$M/h1" "$M/d1/h2"
assert_eq "$(sf %h "$M/h1")" 2 "nlink after link"
assert_eq "$(sf %i "$M/h1")" "$(sf %i "$M/d1/h2")" "hard links share the inode"
echo more >>"$M/d1/h2"
assert_eq "$(cat "$M/h1")" $'linked\nmore' "write through one link seen by the other"
ln "$M/h1" "$M/h3"
assert_eq "$(sf %h "$M/d1/h2")" 3 "nlink after a second link"
rm "$M/h1"
assert_eq "$(sf %h "$M/h3")" 2 "nlink after unlink"
assert_eq "$(cat "$M/h3")" $'linked\nmore' "data kept while links remain"
expect_errno EEXIST link "$M/h3" "$M/d1/h2"
expect_errno EPERM link "$M/d1" "$M/dirlink"

long=$(python3 -c 'print(("abcdefghij/" * 400)[:4095], end="")')
assert_eq "${#long}" 4095 "length of the long target"
ln -s "$long" "$M/longlink"
assert_eq "$(readlink "$M/longlink")" "$long" "4095-byte symlink target"
assert_eq "$(sf %s "$M/longlink")" 4095 "size of a symlink"
ln -s f1 "$M/sl"
assert_eq "$(cat "$M/sl")" $'hello\nworld' "read through a symlink"
ln -s dangling-target "$M/dangling"
expect_errno ENOENT stat "$M/dangling"
expect_errno OK lstat "$M/dangling"
expect_errno ENAMETOOLONG symlink "${long}x" "$M/toolong"

mkfifo "$M/fifo"
assert_eq "$(sf %F "$M/fifo")" fifo "type of a fifo"
mknod "$M/chr" c 1 3
assert_eq "$(sf '%F %t %T' "$M/chr")" "character special file 1 3" "char device"
mknod "$M/blk" b 7 0
assert_eq "$(sf '%F %t %T' "$M/blk")" "block special file 7 0" "block device"
python3 - "$M/sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
a, _ = s.accept()
c.sendall(b"ping")
assert a.recv(4) == b"ping"
EOF
assert_eq "$(sf %F "$M/sock")" socket "type of a unix socket"

# ---------------------------------------------------------------------------
# chmod, chown, times

echo attrs >"$M/at"
chmod 4751 "$M/at"
assert_eq "$(sf %a "$M/at")" 4751 "mode after chmod"
chown 1234:5678 "$M/at"
assert_eq "$(sf %u:%g "$M/at")" 1234:5678 "owner after chown"
# chown of an executable drops setuid (Linux rule)
[ "$(sf %a "$M/at")" = 751 ] || fail "setuid not cleared by chown: mode $(sf %a "$M/at")"
export TZ=UTC
touch -m -d '2001-02-03 04:05:06.123456789 +0000' "$M/at"
touch -a -d '1999-12-31 23:59:58.987654321 +0000' "$M/at"
assert_eq "$(sf %y "$M/at")" "2001-02-03 04:05:06.123456789 +0000" "mtime in ns"
assert_eq "$(sf %x "$M/at")" "1999-12-31 23:59:58.987654321 +0000" "atime in ns"
touch -m -d '1960-06-01 00:00:00.5 +0000' "$M/at"
assert_eq "$(sf %y "$M/at")" "1960-06-01 00:00:00.500000000 +0000" "mtime before 1970"

# write changes mtime and ctime; chmod changes ctime only
echo t >"$M/tm"
touch -d '2000-01-01 00:00:00 +0000' "$M/tm"
c0=$(sf %.9Z "$M/tm")
sleep 0.1
echo more >>"$M/tm"
m1=$(sf %.9Y "$M/tm")
c1=$(sf %.9Z "$M/tm")
[ "${m1/./}" -gt 946684800000000000 ] || fail "write did not change mtime: $m1"
[ "${c1/./}" -gt "${c0/./}" ] || fail "write did not change ctime: $c0 -> $c1"
sleep 0.1
chmod 600 "$M/tm"
assert_eq "$(sf %.9Y "$M/tm")" "$m1" "chmod must not change mtime"
c2=$(sf %.9Z "$M/tm")
[ "${c2/./}" -gt "${c1/./}" ] || fail "chmod did not change ctime: $c1 -> $c2"
# creating and removing an entry changes the directory's mtime
mkdir "$M/dm"
touch -d '2000-01-01 00:00:00 +0000' "$M/dm"
touch "$M/dm/new"
[ "$(sf %Y "$M/dm")" -gt 946684800 ] || fail "create did not change the directory mtime"
touch -d '2000-01-01 00:00:00 +0000' "$M/dm"
rm "$M/dm/new"
[ "$(sf %Y "$M/dm")" -gt 946684800 ] || fail "unlink did not change the directory mtime"

# ---------------------------------------------------------------------------
# permissions: setuid cleared on write by another user, sticky directory

echo suid >"$M/suid"
chmod 4777 "$M/suid"
emb_as_nobody sh -c "echo written >> '$M/suid'" || fail "nobody cannot write a 0777 file"
assert_eq "$(sf %a "$M/suid")" 777 "setuid bit after a write by nobody"
assert_eq "$(tail -n1 "$M/suid")" written "write by nobody"
# setgid with group execute goes too; setgid without it (mandatory
# locking) stays; a truncate by another user drops them as a write does;
# root (CAP_FSETID) keeps them on write; chown of a directory keeps them
echo sgid >"$M/sgid"
chmod 2777 "$M/sgid"
emb_as_nobody sh -c "echo written >> '$M/sgid'" || fail "nobody cannot write a 2777 file"
assert_eq "$(sf %a "$M/sgid")" 777 "setgid bit (group x) after a write by nobody"
chmod 2767 "$M/sgid"
emb_as_nobody sh -c "echo written >> '$M/sgid'" || fail "nobody cannot write a 2767 file"
assert_eq "$(sf %a "$M/sgid")" 2767 "setgid bit without group x after a write by nobody"
echo trunc >"$M/suidt"
chmod 6777 "$M/suidt"
emb_as_nobody truncate -s 2 "$M/suidt" || fail "nobody cannot truncate a 6777 file"
assert_eq "$(sf %a:%s "$M/suidt")" 777:2 "setuid/setgid after a truncate by nobody"
chmod 4755 "$M/suidt"
echo root >>"$M/suidt"
assert_eq "$(sf %a "$M/suidt")" 4755 "setuid bit after a write by root"
chmod 4777 "$M/suidt"
emb_as_nobody fallocate -l 65536 "$M/suidt" || fail "nobody cannot fallocate a 4777 file"
assert_eq "$(sf %a:%s "$M/suidt")" 777:65536 "setuid bit after a fallocate by nobody"
mkdir "$M/sgdir"
chmod 2775 "$M/sgdir"
chown 1234:5678 "$M/sgdir"
assert_eq "$(sf %a "$M/sgdir")" 2775 "setgid of a directory after chown"

mkdir "$M/sticky"
chmod 1777 "$M/sticky"
assert_eq "$(sf %a "$M/sticky")" 1777 "mode of the sticky directory"
echo root >"$M/sticky/rootfile"
chmod 666 "$M/sticky/rootfile"
expect_errno_nobody 'EPERM|EACCES' unlink "$M/sticky/rootfile"
expect_errno_nobody 'EPERM|EACCES' rename "$M/sticky/rootfile" "$M/sticky/stolen"
expect_errno_nobody OK open "$M/sticky/mine" 'O_WRONLY|O_CREAT'
assert_eq "$(sf %U "$M/sticky/mine")" nobody "owner of a file created by nobody"
expect_errno_nobody OK unlink "$M/sticky/mine"
[ -e "$M/sticky/rootfile" ] || fail "nobody removed root's file in a sticky directory"

echo secret >"$M/private"
chmod 600 "$M/private"
expect_errno_nobody EACCES read "$M/private"
expect_errno_nobody EACCES open "$M/d1/newfile" 'O_WRONLY|O_CREAT'
expect_errno_nobody EPERM chmod "$M/private" 644

# ---------------------------------------------------------------------------
# extended attributes and ACLs

echo x >"$M/xa"
setfattr -n user.colour -v blue "$M/xa"
setfattr -n trusted.level -v 7 "$M/xa"
setfattr -n security.label -v sec "$M/xa"
setfattr -n user.bin -v 0x00ff00fe "$M/xa"
big=$(head -c 3000 /dev/urandom | sha256sum | cut -c1-64)
big=$(printf "$big%.0s" $(seq 60))
setfattr -n user.big -v "$big" "$M/xa"
assert_eq "$(getfattr --absolute-names --only-values -n user.colour "$M/xa")" blue "user xattr"
assert_eq "$(getfattr --absolute-names --only-values -n trusted.level "$M/xa")" 7 "trusted xattr"
assert_eq "$(getfattr --absolute-names --only-values -n security.label "$M/xa")" sec "security xattr"
assert_eq "$(getfattr --absolute-names -e hex -n user.bin "$M/xa" |
	sed -n 's/^user.bin=//p')" 0x00ff00fe "binary xattr"
assert_eq "$(getfattr --absolute-names --only-values -n user.big "$M/xa")" "$big" "3840-byte xattr"
assert_eq "$(python3 "$EMB_INTEG_DIR/fsop.py" listxattr "$M/xa" | tail -n1)" \
	"security.label trusted.level user.big user.bin user.colour" "listxattr"
setfattr -n user.colour -v red "$M/xa"
assert_eq "$(getfattr --absolute-names --only-values -n user.colour "$M/xa")" red "replaced xattr"
expect_errno ENODATA getxattr "$M/xa" user.missing
expect_errno ENODATA removexattr "$M/xa" user.missing
setfattr -x user.bin "$M/xa"
expect_errno ENODATA getxattr "$M/xa" user.bin
setfattr -n user.ondir -v d "$M/d1"
assert_eq "$(getfattr --absolute-names --only-values -n user.ondir "$M/d1")" d "xattr on a directory"
setfattr -n trusted.onlink -v l -h "$M/sl"
assert_eq "$(getfattr --absolute-names -h --only-values -n trusted.onlink "$M/sl")" l "xattr on a symlink"
expect_errno_nobody 'EPERM|EACCES' setxattr "$M/xa" user.nobody v

# system.posix_acl_access: stored, listed and enforced
echo acl >"$M/acl"
chmod 644 "$M/acl"
if command -v setfacl >/dev/null; then
	setfacl -m u:nobody:---,m::rwx "$M/acl" || fail "setfacl"
	getfacl -cpE "$M/acl" >"$T/acl.out" || fail "getfacl"
	grep -qx 'user:nobody:---' "$T/acl.out" ||
		fail "getfacl lost the entry: $(cat "$T/acl.out")"
	expect_errno_nobody EACCES read "$M/acl"
	setfacl -m u:nobody:r "$M/acl"
	expect_errno_nobody OK read "$M/acl"
	mkdir "$M/acldir"
	setfacl -d -m u:nobody:rw "$M/acldir"
	touch "$M/acldir/inherits"
	getfacl -cpE "$M/acldir/inherits" | grep -qx 'user:nobody:rw-' ||
		fail "default ACL not inherited"
else
	setfattr -n system.posix_acl_access \
		-v 0x0200000001000600ffffffff04000400ffffffff10000600ffffffff20000400ffffffff \
		"$M/acl" || fail "set system.posix_acl_access"
	getfattr --absolute-names -n system.posix_acl_access "$M/acl" >/dev/null ||
		fail "get system.posix_acl_access"
fi

# ---------------------------------------------------------------------------
# names and errnos

n255=$(printf 'n%.0s' $(seq 255))
n256=${n255}x
touch "$M/$n255"
# shellcheck disable=SC2010 # readdir itself is under test
assert_eq "$(ls -f "$M" | grep -c "^$n255\$")" 1 "255-byte name listed"
expect_errno ENAMETOOLONG open "$M/$n256" 'O_WRONLY|O_CREAT'
expect_errno ENAMETOOLONG mkdir "$M/$n256"
u255="$(printf 'é%.0s' $(seq 127))a"	# 2-byte characters, 255 bytes
mkdir "$M/$u255"
[ -d "$M/$u255" ] || fail "255-byte UTF-8 name"
expect_errno ENAMETOOLONG mkdir "$M/${u255}b"
touch "$M/sp ace" "$M/tab	and
newline" "$M/-dash" "$M/.hidden" "$M/\\back"
for n in "sp ace" "tab	and
newline" "-dash" ".hidden" "\\back"; do
	[ -f "$M/$n" ] || fail "name '$n'"
done

expect_errno ENOTEMPTY rmdir "$M/d1"
expect_errno EISDIR unlink "$M/d1"
expect_errno EEXIST mkdir "$M/d1"
expect_errno EEXIST mkdir "$M/f1"
expect_errno EEXIST open "$M/f1" 'O_WRONLY|O_CREAT|O_EXCL'
expect_errno ENOENT stat "$M/no/such"
expect_errno ENOENT stat "$M/nosuch"
expect_errno ENOENT unlink "$M/nosuch"
expect_errno ENOENT rmdir "$M/nosuch"
expect_errno ENOTDIR rmdir "$M/f1"
expect_errno ENOTDIR stat "$M/f1/x"
expect_errno ENOTDIR open "$M/f1/x" 'O_WRONLY|O_CREAT'
expect_errno EISDIR open "$M/d1" O_WRONLY
expect_errno ENOTDIR open "$M/f1" 'O_RDONLY|O_DIRECTORY'
expect_errno EINVAL rmdir "$M/d1/."
[ -d "$M/d1" ] || fail "d1 disappeared"

# ---------------------------------------------------------------------------
# statfs

read -r blocks bavail bsize namemax <<<"$(stat -f -c '%b %a %S %l' "$M")"
[ "$blocks" -gt 0 ] && [ "$bavail" -gt 0 ] && [ "$bsize" -gt 0 ] ||
	fail "statfs: blocks=$blocks avail=$bavail bsize=$bsize"
assert_eq "$namemax" 255 "statfs name length"
df -P "$M" | awk 'NR == 2 { exit !($2 > 0 && $4 > 0) }' ||
	fail "df shows no space: $(df -P "$M")"

# ---------------------------------------------------------------------------
# fallocate: allocate, keep size, punch a hole, zero a range

fallocate -l 1048576 "$M/fa"
assert_eq "$(sf %s "$M/fa")" 1048576 "size after fallocate -l"
cmp "$M/fa" <(head -c 1048576 /dev/zero) || fail "fallocated space reads as zeros"
echo tiny >"$M/fk"
fallocate -n -l 2097152 "$M/fk"
assert_eq "$(sf %s "$M/fk")" 5 "fallocate --keep-size changed the size"
assert_eq "$(cat "$M/fk")" tiny "fallocate --keep-size changed the data"

head -c 1048576 /dev/urandom >"$R/fp"
cp "$R/fp" "$M/fp"
cp "$R/fp" "$M/fz"
fallocate -p -o 4096 -l 65536 "$M/fp"
fallocate -p -o 200000 -l 3000 "$M/fp"	# not block aligned
fallocate -z -o 500001 -l 70000 "$M/fz"
cp "$R/fp" "$R/fp.exp"
dd if=/dev/zero of="$R/fp.exp" bs=1 seek=4096 count=65536 conv=notrunc status=none
dd if=/dev/zero of="$R/fp.exp" bs=1 seek=200000 count=3000 conv=notrunc status=none
cp "$R/fp" "$R/fz.exp"
dd if=/dev/zero of="$R/fz.exp" bs=1 seek=500001 count=70000 conv=notrunc status=none
assert_eq "$(sf %s "$M/fp")" 1048576 "size after punching holes"
cmp "$R/fp.exp" "$M/fp" || fail "punched ranges must read as zeros, the rest unchanged"
cmp "$R/fz.exp" "$M/fz" || fail "zeroed range must read as zeros, the rest unchanged"
fallocate -z -o 1048000 -l 10000 "$M/fz"
assert_eq "$(sf %s "$M/fz")" 1058000 "zero range past the end extends the file"

# ---------------------------------------------------------------------------
# locks: flock(2) and POSIX record locks between processes

echo lock >"$M/lk"
python3 - "$M/lk" "$T/lk.ready" "$T/lk.stop" <<'EOF' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
fd2 = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd2, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
t = time.time()
while not os.path.exists(sys.argv[3]) and time.time() - t < 60:
    time.sleep(0.02)
EOF
holder=$!
for _ in $(seq 500); do
	[ ! -e "$T/lk.ready" ] || break
	sleep 0.02
done
[ -e "$T/lk.ready" ] || fail "lock holder did not start"
expect_errno 'EAGAIN|EACCES' lockf "$M/lk"
expect_errno 'EAGAIN|EWOULDBLOCK' flock "$M/lk"
rc=0
flock -n -E 42 "$M/lk" true || rc=$?
assert_eq "$rc" 42 "flock(1) -n on a locked file"
touch "$T/lk.stop"
wait "$holder" || fail "lock holder failed"
expect_errno OK lockf "$M/lk"
expect_errno OK flock "$M/lk"

# ---------------------------------------------------------------------------
# mmap

head -c 1048576 /dev/urandom >"$R/mm"
cp "$R/mm" "$M/mm"
for f in "$R/mm" "$M/mm"; do
	python3 - "$f" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0)
assert m[100:200] == os.pread(fd, 100, 100), "mmap read differs from read()"
m[0:5] = b"START"
m[524286:524292] = b"MIDDLE"
m[-3:] = b"END"
m.flush()
m.close()
os.close(fd)
EOF
done
cmp "$R/mm" "$M/mm" || fail "mmap writes read back with read()"
# mmap write, no msync, munmap, then read() through a fresh descriptor
python3 - "$M/mm2" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 65536)
m = mmap.mmap(fd, 65536)
m[1000:1004] = b"MMAP"
m.close()
os.close(fd)
with open(sys.argv[1], "rb") as f:
    d = f.read()
assert len(d) == 65536 and d[1000:1004] == b"MMAP" and d.count(0) == 65532, "mmap2"
EOF

# ---------------------------------------------------------------------------
# readdir: 1000 entries, and deletion during iteration

mkdir "$M/many"
(cd "$M/many" && seq -f 'entry-%04g' 0 999 | xargs touch)
# shellcheck disable=SC2010 # readdir itself is under test
assert_eq "$(ls -f "$M/many" | grep -c '^entry-')" 1000 "entries listed"
assert_eq "$(ls -f "$M/many" | sort | uniq -d | wc -l)" 0 "duplicate entries"
python3 - "$M/many" <<'EOF'
import os, sys
d = sys.argv[1]
names = {"entry-%04d" % i for i in range(1000)}
doomed = {"entry-%04d" % i for i in range(0, 1000, 3)}
seen = []
with os.scandir(d) as it:
    for n, e in enumerate(it):
        seen.append(e.name)
        if n == 100:
            for x in doomed:
                os.unlink(os.path.join(d, x))
dups = {x for x in seen if seen.count(x) > 1}
assert not dups, "duplicates during deletion: %s" % sorted(dups)[:5]
extra = set(seen) - names
assert not extra, "unknown names: %s" % sorted(extra)[:5]
missing = (names - doomed) - set(seen)
assert not missing, "entries not deleted were skipped: %d, e.g. %s" % (
    len(missing), sorted(missing)[:5])
left = set(os.listdir(d))
assert left == names - doomed, "after deletion: %d entries" % len(left)
EOF

# ---------------------------------------------------------------------------
# an unlinked file stays readable while open

python3 - "$M/ghost" "$M/ghost2" <<'EOF'
import os, sys
p, q = sys.argv[1], sys.argv[2]
data = os.urandom(200000)
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, data)
os.unlink(p)
assert not os.path.exists(p)
assert os.fstat(fd).st_nlink == 0, "nlink of an unlinked open file"
assert os.pread(fd, len(data), 0) == data, "unlinked file not readable"
os.pwrite(fd, b"later", 300000)
assert os.pread(fd, 5, 300000) == b"later"
assert os.fstat(fd).st_size == 300005
# rename over an open file: the old inode stays readable too
with open(q, "wb") as f:
    f.write(b"old contents")
fd2 = os.open(q, os.O_RDONLY)
with open(q + ".new", "wb") as f:
    f.write(b"new")
os.rename(q + ".new", q)
assert os.pread(fd2, 100, 0) == b"old contents", "replaced file not readable"
os.close(fd2)
os.close(fd)
EOF
[ "$(cat "$M/ghost2")" = new ] || fail "rename over an open file"

# ---------------------------------------------------------------------------
# everything persists across a remount; inode numbers are stable

sync
MAN=(python3 "$EMB_INTEG_DIR/manifest.py" --ino --ctime --max-hash 67108864)
"${MAN[@]}" "$M" >"$T/before" || fail "manifest before remount"
emb_umount "$M"
emb_mount "$S" "$M"
# As root the daemon raises its mount's read-ahead after INIT (which would
# cap it at max_readahead): four 1 MiB reads in flight.
if [ "$(id -u)" = 0 ]; then
	assert_eq "$(cat "/sys/class/bdi/$(mountpoint -d "$M")/read_ahead_kb")" 4096 \
		"read_ahead_kb of the mount"
fi
"${MAN[@]}" "$M" >"$T/after" || fail "manifest after remount"
diff -u "$T/before" "$T/after" >&2 || fail "tree changed across a remount"
got=$(dd if="$M/big" bs=1 skip=$((5 * G)) count=5 status=none)
assert_eq "$got" at-5G "bytes at 5 GiB after remount"
assert_eq "$(sf %s "$M/big")" $((5 * G + 5)) "size of the 5 GiB file after remount"
cmp "$R/holes" "$M/holes" || fail "holes after remount"
cmp "$R/fp.exp" "$M/fp" || fail "punched file after remount"
cmp "$R/mm" "$M/mm" || fail "mmap'd file after remount"
assert_eq "$(readlink "$M/longlink")" "$long" "long symlink after remount"
assert_eq "$(getfattr --absolute-names --only-values -n user.big "$M/xa")" "$big" "xattr after remount"
assert_eq "$(sf '%F %t %T' "$M/chr")" "character special file 1 3" "char device after remount"
# shellcheck disable=SC2010 # readdir itself is under test
assert_eq "$(ls -f "$M/many" | grep -c '^entry-')" 666 "entries after remount"
emb_umount "$M"
