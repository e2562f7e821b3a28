EXTRA_DIST += %D%/fstab.example %D%/systemd/embassyfs@.service \
	%D%/demo/registry-demo.sh
include %D%/bench/local.mk
