TESTS += %D%/t0001-lint-layers.sh
EXTRA_DIST += %D%/t0001-lint-layers.sh
