#!/bin/sh
# make bench: measures the simgate daemon against mosquitto and the simulated
# modem, and compares it with gammu-smsd. Writes dist/bench/results.md and
# dist/bench/results.json. Arguments pass through to the harness
# (scripts/bench): -short, -n N, -no-peer, -only STEPS, -rev REV, -keep, -v.
# BENCH_SHORT=1 is -short (idle CPU over 10 s instead of 60 s, for iterating);
# BENCH_REV=REV measures a commit instead of the work tree.
set -eu
cd "$(dirname "$0")/.."
missing=""
for t in mosquitto mosquitto_pub gammu-smsd; do
	command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || missing="$missing $t"
done
if [ -n "$missing" ]; then
	echo "bench: missing:$missing; install with: sudo apt-get install mosquitto mosquitto-clients gammu gammu-smsd" >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/bench" ./scripts/bench
"$tmp/bench" "$@"
