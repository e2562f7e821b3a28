# fsck.embassyfs: library passes and the tool (owned by the fsck work)
src_libembassy_a_SOURCES += \
	%D%/fsck.c %D%/fsck.h %D%/fsck_int.h %D%/fsck_problems.def \
	%D%/fsck_maps.c %D%/fsck_seal.c %D%/fsck_compare.c \
	%D%/fsck_pass0.c %D%/fsck_pass1.c %D%/fsck_pass2.c \
	%D%/fsck_pass3.c %D%/fsck_pass4.c %D%/fsck_pass5.c \
	%D%/progress.c %D%/progress.h

sbin_PROGRAMS += fsck.embassyfs
fsck_embassyfs_SOURCES = %D%/cmd/fsck.c
fsck_embassyfs_LDADD = $(EMB_LIBS)

dist_man_MANS += doc/fsck.embassyfs.8
