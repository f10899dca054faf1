#!/usr/bin/env bash
# build-deb.sh [ARCH...]   ARCH: armhf arm64 amd64 (default: all three)
#
# Builds dist/simgate_<version>_<arch>.deb from ./cmd/simgate with nfpm,
# replacing any older simgate package of that architecture in dist/.
# Run from anywhere; `make deb` calls it. Environment (all optional):
#   VERSION   git describe output to stamp (default: git describe --tags --always --dirty)
#   COMMIT    commit id to stamp (default: git rev-parse --short=12 HEAD)
#   DIST      output directory (default: dist)
#   NFPM      nfpm command (default: nfpm v2.43.0, installed into a temp dir with go install)
#   PKG_MAINTAINER  the deb's Maintainer field
#
# armhf is built for ARMv6 (GOARM=6) so one package runs on every Raspberry
# Pi, the Zero and 1 included; Debian's armhf nominally means ARMv7, but
# Raspberry Pi OS's armhf is ARMv6, and ARMv6 code runs on ARMv7 too.
set -euo pipefail
cd "$(dirname "$0")/.."

archs=("$@")
if [ ${#archs[@]} -eq 0 ]; then
	archs=(armhf arm64 amd64)
fi
for a in "${archs[@]}"; do
	case $a in
	armhf | arm64 | amd64) ;;
	*)
		echo "build-deb.sh: unsupported architecture '$a' (want armhf, arm64 or amd64)" >&2
		exit 2
		;;
	esac
done

GO=${GO:-go}
DIST=${DIST:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
# Dates and mtimes come from the commit, not the clock, so rebuilding the
# same commit gives the same version and (nearly) the same bytes.
commit_date=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d 2>/dev/null || date -u +%Y%m%d)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export PKG_VERSION
PKG_VERSION=$(packaging/deb-version.sh "$VERSION" "$commit_date")
export PKG_MAINTAINER=${PKG_MAINTAINER:-"simgate maintainers <maintainers@simgate.invalid>"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "${NFPM:-}" ]; then
	echo "installing nfpm v2.43.0"
	GOBIN="$work/bin" "$GO" install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.43.0
	NFPM="$work/bin/nfpm"
fi

# copyright writes the package's copyright file: simgate's own terms, then
# the license (and NOTICE, where there is one) of the Go standard library and
# of every module linked into the binary, as listed by `go version -m`:
# a static binary carries their code, so it carries their terms.
copyright() {
	local bin=$1 modcache goroot
	modcache=$("$GO" env GOMODCACHE)
	goroot=$("$GO" env GOROOT)
	printf 'simgate\nSource: https://github.com/simgate/simgate\n\n'
	if [ -f LICENSE ]; then
		cat LICENSE
	else
		printf 'The simgate source tree does not carry a LICENSE file yet;\nsee https://github.com/simgate/simgate for its terms.\n'
	fi
	printf '\n\n/usr/bin/simgate is statically linked and contains code from the\nfollowing projects, under the terms reproduced below.\n'
	printf '\n==== Go standard library %s ====\n\n' "$("$GO" env GOVERSION)"
	cat "$goroot/LICENSE"
	local path ver dir lic found
	"$GO" version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r path ver; do
		# The module cache spells capitals as !lower.
		dir="$modcache/$(printf '%s' "$path" | sed 's/[A-Z]/!\L&/g')@$ver"
		printf '\n==== Go module %s %s ====\n' "$path" "$ver"
		found=
		while IFS= read -r lic; do
			printf '\n'
			cat "$lic"
			found=1
		done < <(find "$dir" -maxdepth 1 -type f \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' -o -iname 'NOTICE*' \) 2>/dev/null | sort)
		if [ -z "$found" ]; then
			echo "build-deb.sh: no license file for $path@$ver in $dir" >&2
			return 1
		fi
	done
}

mkdir -p "$DIST"
echo "simgate $VERSION (commit $COMMIT) -> Debian version $PKG_VERSION"
for arch in "${archs[@]}"; do
	goarch=$arch goarm='' nfpmarch=$arch
	if [ "$arch" = armhf ]; then
		goarch=arm goarm=6 nfpmarch=arm6
	fi
	mkdir -p "$work/$arch"
	export PKG_BIN="$work/$arch/simgate" PKG_COPYRIGHT="$work/$arch/copyright" PKG_ARCH=$nfpmarch
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
		-o "$PKG_BIN" ./cmd/simgate
	copyright "$PKG_BIN" >"$PKG_COPYRIGHT"
	out="$DIST/simgate_${PKG_VERSION}_${arch}.deb"
	# Only the package just built stays, so dist/simgate_*_amd64.deb names one file.
	rm -f "$DIST"/simgate_*_"${arch}".deb
	"$NFPM" package -f packaging/nfpm.yaml -p deb -t "$out" >/dev/null
	printf '%-48s %8d bytes  (binary %d bytes, GOARCH=%s%s)\n' "$out" "$(stat -c %s "$out")" \
		"$(stat -c %s "$PKG_BIN")" "$goarch" "${goarm:+ GOARM=$goarm}"
done
