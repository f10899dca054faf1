# shellcheck shell=bash
# check-lib.sh: the reporting helpers check-deb.sh and check-service.sh
# share. Sourced, not run. A script may define on_fail, which fail calls
# before exiting (check-service.sh shows the journal there).

checks=0

# pass WHAT: one check passed.
pass() {
	checks=$((checks + 1))
	printf 'ok   %s\n' "$*"
}

# fail WHY: report the failed check and stop.
fail() {
	printf 'FAIL %s\n' "$*" >&2
	if declare -F on_fail >/dev/null; then
		on_fail || true
	fi
	exit 1
}

# expect_eq WHAT WANT GOT
expect_eq() {
	if [ "$2" != "$3" ]; then
		fail "$1: want '$2', got '$3'"
	fi
	pass "$1: $2"
}
