#!/bin/bash
# contrib/setup.sh - install what is missing, build, and run the demo or the tests.
#
# Usage: contrib/setup.sh demo    build, then run contrib/demo/registry-demo.sh
#        contrib/setup.sh test    build, then run the whole test suite
#        contrib/setup.sh build   build only
# Environment: BUILD_DIR (default _build), CONFIGURE_FLAGS (extra flags),
#              NO_APT=1 to skip package installation.
set -euo pipefail

mode=${1:-test}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/_build}

# Build dependencies, then the programs the integration tests drive.
packages=(
	build-essential autoconf automake autoconf-archive pkg-config
	libfuse3-dev fuse3 libsodium-dev librocksdb-dev libxxhash-dev
	libzstd-dev libssl-dev check
	python3 sqlite3 git rsync attr acl fio tar xz-utils util-linux
	procps psmisc
)

install_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "setup: installing ${missing[*]}" >&2
	local sudo=
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
}

build() {
	cd "$top"
	[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
	mkdir -p "$build"
	cd "$build"
	if [ ! -f Makefile ]; then
		# shellcheck disable=SC2086
		"$top/configure" --enable-werror ${CONFIGURE_FLAGS:-}
	fi
	make -j"$(nproc)"
}

[ "${NO_APT:-0}" = 1 ] || install_packages
build
case $mode in
build) ;;
demo) PATH="$build:$PATH" "$top/contrib/demo/registry-demo.sh" ;;
test) cd "$build" && make -j"$(nproc)" check ;;
*) echo "setup: unknown mode '$mode' (demo, test or build)" >&2; exit 2 ;;
esac
