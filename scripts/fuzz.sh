#!/usr/bin/env bash
# Runs every fuzz target in the module for a bounded time each.
# usage: scripts/fuzz.sh [DURATION]   (default 10s per target)
# DURATION is a Go duration (5s, 1m30s, 500ms) or, as for -fuzztime, a
# count of executions (1000x).
#
# The time limit is an interrupt (SIGINT), not go test -fuzztime: with a
# -fuzztime duration, Go's fuzzing coordinator (internal/fuzz, Go 1.26) can
# report its own deadline as a failure, "context deadline exceeded" with no
# failing input, when the machine is loaded at the moment the time is up.
# An interrupt ends fuzzing the way Ctrl-C does, which it reports as a pass;
# a failing input found before it still fails the run and is written to
# testdata/fuzz as usual. The test binary is built first, so the time is
# spent fuzzing, not compiling.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}

# seconds converts a Go duration made of h, m, s and ms parts to seconds,
# the form timeout(1) takes.
seconds() {
	local rest=$1 total=0 num unit
	while [[ $rest =~ ^([0-9]+(\.[0-9]+)?)(ms|h|m|s)(.*)$ ]]; do
		num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[3]} rest=${BASH_REMATCH[4]}
		case $unit in
		h) total=$(awk -v t="$total" -v n="$num" 'BEGIN { print t + n * 3600 }') ;;
		m) total=$(awk -v t="$total" -v n="$num" 'BEGIN { print t + n * 60 }') ;;
		s) total=$(awk -v t="$total" -v n="$num" 'BEGIN { print t + n }') ;;
		ms) total=$(awk -v t="$total" -v n="$num" 'BEGIN { print t + n / 1000 }') ;;
		esac
	done
	if [[ -n $rest || $1 == "" ]]; then
		echo "fuzz.sh: duration $1: want a Go duration of h, m, s and ms (10s, 1m30s) or a count (1000x)" >&2
		return 1
	fi
	echo "$total"
}

# interruptAfter SECONDS CMD... runs CMD and interrupts it (SIGINT) once
# SECONDS have passed, then every second until it exits; one still running
# a minute later is killed. The interrupt goes to CMD alone, the fuzzing
# coordinator, which stops its workers itself: a worker interrupted
# directly while it runs an input is reported as a crash on that input.
# CMD starts with SIGINT ignored, so one that comes before the coordinator
# listens for it (a loaded machine starting slowly) is dropped, not fatal;
# the next one ends the run. Returns CMD's exit status.
interruptAfter() {
	local secs=$1 pid watcher rc=0
	shift
	(
		trap '' INT
		exec "$@"
	) &
	pid=$!
	(
		sleep "$secs"
		for _ in $(seq 60); do
			kill -INT "$pid" 2>/dev/null || exit 0
			sleep 1
		done
		echo "fuzz.sh: $1 did not stop when interrupted; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
	) &
	watcher=$!
	wait "$pid" || rc=$?
	kill "$watcher" 2>/dev/null || true
	wait "$watcher" 2>/dev/null || true
	return "$rc"
}

if [[ $fuzztime =~ ^[0-9]+x$ ]]; then
	limit=(-test.fuzztime "$fuzztime") # a count has no deadline to race
	stopper=()
else
	limit=()
	stopper=(interruptAfter "$(seconds "$fuzztime")")
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cache="$(go env GOCACHE)/fuzz"
failed=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	dir=$(dirname "$file")
	pkg=./$dir
	echo "== $pkg $name ($fuzztime)"
	# -fuzz at build time adds the coverage instrumentation fuzzing needs.
	if ! go test -c -fuzz "^${name}\$" -o "$bin/$name.test" "$pkg"; then
		failed=1
		continue
	fi
	importpath=$(go list -f '{{.ImportPath}}' "$pkg")
	# In the package directory, as go test runs it (testdata/fuzz), with the
	# corpus go test keeps in the build cache.
	if ! (cd "$dir" && "${stopper[@]}" "$bin/$name.test" -test.run '^$' \
		-test.fuzz "^${name}\$" "${limit[@]}" -test.fuzzcachedir "$cache/$importpath"); then
		failed=1
	fi
done < <(git ls-files '*_test.go' | xargs grep -n '^func Fuzz' /dev/null)
exit $failed
