#!/usr/bin/env bash
# deb-version.sh DESCRIBE [YYYYMMDD]
#
# Turns `git describe --tags --always --dirty` output into a Debian version
# that sorts the way releases do:
#   v1.2.3                -> 1.2.3
#   v1.2.3-rc1            -> 1.2.3~rc1            (before 1.2.3)
#   v1.2.3-4-gabc1234     -> 1.2.3+4.gabc1234     (after 1.2.3, before 1.2.4)
#   abc1234 (no tag yet)  -> 0.0.0~git20250101.abc1234 (before any release)
#   v1.2.3-dirty          -> 1.2.3+0.dirty        (after 1.2.3, before 1.2.3+1.g...)
#   ...-4-gabc1234-dirty  -> ...+4.gabc1234.dirty
# YYYYMMDD (default: today, UTC) dates untagged builds; build-deb.sh passes
# the commit date so the version does not depend on when it is built.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
	echo "usage: $0 DESCRIBE [YYYYMMDD]" >&2
	exit 2
fi
describe=$1
date=${2:-$(date -u +%Y%m%d)}
if ! [[ $date =~ ^[0-9]{8}$ ]]; then
	echo "$0: date must be YYYYMMDD, got '$date'" >&2
	exit 2
fi

dirty=
if [[ $describe == *-dirty ]]; then
	dirty=1
	describe=${describe%-dirty}
fi
describe=${describe#v}

# Debian upstream versions without a revision may hold only these.
clean() { printf '%s' "$1" | tr -c 'A-Za-z0-9.+~' '.'; }

if [[ $describe =~ ^[0-9a-f]{7,40}$ ]] || ! [[ $describe =~ ^[0-9] ]]; then
	# No tag: a commit id, or something else such as "dev".
	version="0.0.0~git${date}.$(clean "$describe")"
elif [[ $describe =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
	base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} sha=${BASH_REMATCH[3]}
	version="$(clean "${base/-/\~}")+${n}.g${sha}"
else
	# An exact tag; a pre-release suffix (1.2.3-rc1) sorts before 1.2.3.
	version=$(clean "${describe/-/\~}")
fi

if [ -n "$dirty" ]; then
	# Uncommitted changes sort just after what they were based on: an exact
	# tag gets "+0.dirty", which sorts before the next commit's "+1.g...".
	if [[ $version == *+* || $version == *~git* ]]; then
		version="${version}.dirty"
	else
		version="${version}+0.dirty"
	fi
fi
printf '%s\n' "$version"
