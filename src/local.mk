noinst_LIBRARIES += %D%/libembassy.a
%C%_libembassy_a_CFLAGS = $(AM_CFLAGS) $(SODIUM_CFLAGS) $(ROCKSDB_CFLAGS) \
	$(ZSTD_CFLAGS) $(XXHASH_CFLAGS) $(CRYPTO_CFLAGS)
%C%_libembassy_a_SOURCES = \
	%D%/compat.h \
	%D%/log.c %D%/log.h \
	%D%/key.c %D%/key.h \
	%D%/codec.c %D%/codec.h \
	%D%/store.c %D%/store.h \
	%D%/journal.c %D%/journal.h \
	%D%/volume.c %D%/volume.h \
	%D%/fs.c %D%/fs.h %D%/fs_int.h %D%/fs_data.c %D%/fs_dir.c %D%/fs_acl.c \
	%D%/cli.c %D%/cli.h

sbin_PROGRAMS += mkfs.embassyfs
mkfs_embassyfs_SOURCES = %D%/cmd/mkfs.c
mkfs_embassyfs_LDADD = $(EMB_LIBS)
include %D%/fsck.mk
