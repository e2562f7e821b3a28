TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = $(BASH)
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	PATH='$(abs_top_builddir):$(PATH)'; export PATH; \
	CK_TIMEOUT_MULTIPLIER=$${CK_TIMEOUT_MULTIPLIER:-1}; export CK_TIMEOUT_MULTIPLIER;

include %D%/check/local.mk
include %D%/integ/local.mk
include %D%/lint/local.mk

check-valgrind:
	$(MAKE) $(AM_MAKEFLAGS) check TESTS='$(CHECK_SUITES)' \
		LOG_COMPILER='env CK_FORK=no valgrind --error-exitcode=99 --leak-check=full -q' \
		CK_TIMEOUT_MULTIPLIER=20
.PHONY: check-valgrind
include %D%/fsck/local.mk
