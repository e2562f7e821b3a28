# fsck corruption cases
check_PROGRAMS += %D%/damage
%C%_damage_SOURCES = %D%/damage.c
%C%_damage_LDADD = $(EMB_LIBS)

FSCK_TESTS = \
	%D%/t2000-fsck-lint.sh \
	%D%/t2010-fsck-cases.sh \
	%D%/t2020-fsck-live.sh
TESTS += $(FSCK_TESTS)
FSCK_CASES = \
	%D%/f_block_del \
	%D%/f_block_flip \
	%D%/f_block_flip_keyed \
	%D%/f_block_sum_keyed \
	%D%/f_block_sum_keyless_then_keyed \
	%D%/f_clean \
	%D%/f_clean_keyed \
	%D%/f_dir_del_trimmed \
	%D%/f_dirent_del \
	%D%/f_dirent_del_trimmed \
	%D%/f_extent_del \
	%D%/f_head_tamper \
	%D%/f_head_tamper_keyed \
	%D%/f_inode_del_trimmed \
	%D%/f_inode_flip \
	%D%/f_inode_flip_trimmed \
	%D%/f_journal_del \
	%D%/f_journal_dup \
	%D%/f_journal_lost_tail \
	%D%/f_journal_swap \
	%D%/f_journal_swap_last \
	%D%/f_name_flip_trimmed \
	%D%/f_nlink_trimmed \
	%D%/f_orphan_block_trimmed \
	%D%/f_orphan_record \
	%D%/f_preen_fixes \
	%D%/f_preen_halt \
	%D%/f_redo_bad \
	%D%/f_redo_pending \
	%D%/f_refcount \
	%D%/f_refcount_keyless \
	%D%/f_refcount_trimmed \
	%D%/f_sst_delete \
	%D%/f_sst_truncate \
	%D%/f_swap_blocks \
	%D%/f_wrong_pass \
	%D%/f_xattr_flip_trimmed
EXTRA_DIST += $(FSCK_TESTS) $(FSCK_CASES) %D%/run-case.sh %D%/filter.sed


check_PROGRAMS += tests/check/check_fsck
TESTS += tests/check/check_fsck
tests_check_check_fsck_LDADD = $(CHECK_LDADD)
tests_check_check_fsck_CFLAGS = $(CHECK_CFLAGS_ALL)
