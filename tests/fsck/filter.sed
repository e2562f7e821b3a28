# filter.sed - unstable text of fsck.embassyfs reports (tests/fsck)
# Block ids and name hashes are keyed hashes (a new key per store), journal
# sequence numbers and segment offsets depend on how the kernel split the
# writes: they are masked; codes, inode numbers, paths and counts stay.
s/id [0-9a-f]\{16\}/id ID/g
s/segment [0-9]\{8\} offset [0-9]*/segment N offset N/g
s/records [0-9]\+ to [0-9]\+/records N to N/g
s/record [0-9]\+/record N/g
s/seq [0-9]\+/seq N/g
s/key [0-9a-f]\{16,\}/key KEY/g
s/a record of [0-9]\+ bytes/a record of N bytes/
s/: [0-9]\+ bytes of a segment/: N bytes of a segment/
s/at [0-9]\+ seconds since the epoch/at T seconds since the epoch/
s/^\(store: [0-9]* inodes ([^)]*)\), .*$/\1, .../
s/the journal ends at [0-9]\+/the journal ends at N/
