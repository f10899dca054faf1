#!/bin/sh
# make soak: runs the simgate daemon for SOAK_DURATION (default 1h) against
# the simulated modem and mosquitto with a steady mix of SMS in, UDP in,
# requests out and periodic faults (unplug, hang, broker restart). Prints a
# line a minute and exits non-zero if anything was lost. Not part of CI.
# Arguments pass through to `scripts/bench soak` (-duration, -rev, -keep, -v).
set -eu
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
	echo "soak: mosquitto missing; install with: sudo apt-get install mosquitto" >&2
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bench" ./scripts/bench
"$tmp/bench" soak "$@"
