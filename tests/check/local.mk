CHECK_SUITES = \
	%D%/check_key \
	%D%/check_codec \
	%D%/check_store \
	%D%/check_journal \
	%D%/check_fs
check_PROGRAMS += $(CHECK_SUITES)
TESTS += $(CHECK_SUITES)
noinst_LIBRARIES += %D%/libtestutil.a
%C%_libtestutil_a_SOURCES = %D%/testutil.c %D%/testutil.h
%C%_libtestutil_a_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
CHECK_LDADD = %D%/libtestutil.a $(EMB_LIBS) $(CHECK_LIBS)
CHECK_CFLAGS_ALL = $(AM_CFLAGS) $(CHECK_CFLAGS) $(SODIUM_CFLAGS)
%C%_check_key_LDADD = $(CHECK_LDADD)
%C%_check_key_CFLAGS = $(CHECK_CFLAGS_ALL)
%C%_check_codec_LDADD = $(CHECK_LDADD)
%C%_check_codec_CFLAGS = $(CHECK_CFLAGS_ALL)
%C%_check_store_LDADD = $(CHECK_LDADD)
%C%_check_store_CFLAGS = $(CHECK_CFLAGS_ALL)
%C%_check_journal_LDADD = $(CHECK_LDADD)
%C%_check_journal_CFLAGS = $(CHECK_CFLAGS_ALL)
%C%_check_fs_LDADD = $(CHECK_LDADD)
%C%_check_fs_CFLAGS = $(CHECK_CFLAGS_ALL)
