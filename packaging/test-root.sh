# shellcheck shell=bash disable=SC2154 # $work, skip and fail are the caller's
# Sourced by check-deb.sh and check-service.sh: the minimal Debian root they
# copy for their tests, built once with debootstrap and cached.
#
#   test_root ARCH   sets $rootfs to a Debian root for ARCH holding dpkg,
#                    adduser and systemd, building it first if needed.
#                    Calls the caller's skip() when it cannot, fail() when
#                    debootstrap fails; needs the caller's $work directory.
#
# Environment:
#   CHECK_DEB_ROOTFS        a Debian root to use as is
#   CHECK_DEB_ROOTFS_CACHE  where built roots are kept (default /var/cache/simgate-test)
#   CHECK_DEB_SUITE         default bookworm (Raspberry Pi OS 12's base)
#   DEBIAN_MIRROR           default: the host's own Debian mirror (the first
#                           "URIs:" or "deb" line of its apt sources ending in
#                           /debian), else http://deb.debian.org/debian

test_root() {
	local arch=$1 suite=${CHECK_DEB_SUITE:-bookworm}
	rootfs=${CHECK_DEB_ROOTFS:-${CHECK_DEB_ROOTFS_CACHE:-/var/cache/simgate-test}/$suite-$arch}
	if [ -x "$rootfs/usr/bin/dpkg" ]; then
		return 0
	fi
	# The mirror this host installs from is the one known to be reachable.
	host_mirror() {
		local m
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v '^[[:space:]]*#' |
			grep -oE '(https?://[^ ]*/debian)/?( |$)' | head -n1 | tr -d ' ')
		echo "${m:-http://deb.debian.org/debian}"
	}
	if ! command -v debootstrap >/dev/null; then
		if [ "${CI:-}" = true ] && command -v apt-get >/dev/null; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
		else
			skip "no Debian root at $rootfs and no debootstrap (apt-get install debootstrap)"
		fi
	fi
	echo "building a minimal $suite root at $rootfs (once; it is reused)"
	mkdir -p "$(dirname "$rootfs")"
	rm -rf "$rootfs.tmp"
	# systemd: check-deb.sh verifies the unit with the root's systemd-analyze
	# and check-service.sh boots the root with it.
	debootstrap --variant=minbase --include=adduser,systemd "$suite" "$rootfs.tmp" \
		"${DEBIAN_MIRROR:-$(host_mirror)}" >"$work/debootstrap.log" 2>&1 ||
		{
			tail -20 "$work/debootstrap.log" >&2
			fail "debootstrap failed"
		}
	mv "$rootfs.tmp" "$rootfs"
}
