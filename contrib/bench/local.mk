# benchmark suite and its FUSE passthrough instrument
#
# contrib/bench/passthrough is the bare FUSE passthrough that the suite
# measures as the ceiling of any FUSE filesystem; it is built but not
# installed. `make bench` runs the suite against this build directory
# (BENCH_ARGS='--quick' or '--only W1,W3 --fs embassyfs,plain' to narrow
# it); it needs root, and it rewrites doc/PERFORMANCE.md in the source tree.
noinst_PROGRAMS += %D%/passthrough
%C%_passthrough_SOURCES = %D%/passthrough.c
%C%_passthrough_CFLAGS = $(AM_CFLAGS) $(FUSE_CFLAGS)
%C%_passthrough_LDADD = $(FUSE_LIBS) $(PTHREAD_LIBS)

EXTRA_DIST += %D%/run %D%/scale %D%/summarize.py %D%/blocksize %D%/fsck

BENCH_ARGS =
bench: all
	BUILD_DIR='$(abs_top_builddir)' $(BASH) '$(abs_top_srcdir)/%D%/run' $(BENCH_ARGS)
.PHONY: bench
