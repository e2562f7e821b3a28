INTEG_TESTS = \
	%D%/t0100-cli-mkfs.sh \
	%D%/t0110-cli-mount-errors.sh \
	%D%/t0200-cli-demo.sh \
	%D%/t1000-posix-basic.sh \
	%D%/t1100-posix-random.sh \
	%D%/t1110-inode-cache.sh \
	%D%/t1200-apps-sqlite.sh \
	%D%/t1210-apps-git.sh \
	%D%/t1220-apps-tar.sh \
	%D%/t1230-apps-rsync.sh \
	%D%/t1300-confidentiality.sh \
	%D%/t1310-dedup.sh \
	%D%/t1320-read-corrupt.sh \
	%D%/t5000-crash-kill9.sh \
	%D%/t5010-faults-enospc.sh
TESTS += $(INTEG_TESTS)
EXTRA_DIST += $(INTEG_TESTS) %D%/lib.sh %D%/fsop.py %D%/manifest.py \
	%D%/fsmodel.py %D%/crashload.py
