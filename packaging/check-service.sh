#!/usr/bin/env bash
# check-service.sh [--slow] dist/simgate_<version>_<arch>.deb
#
# Runs the packaged gateway as a real systemd service and prints every check
# it makes; exits non-zero on the first failure. Root only.
#
# A throwaway copy of the Debian root that check-deb.sh uses is booted with
# systemd-nspawn (systemd as PID 1 of the container, its own network
# namespace with only loopback, cgroup v2 so that DevicePolicy= is enforced).
# Inside it the package is installed with dpkg, a simulated Quectel modem
# (modemsim, built from ./cmd/modemsim) runs as a unit of its own on a pty
# given to group dialout like a real serial port, and simgate is configured
# with its embedded MQTT broker on 127.0.0.1:1883. Then:
#   - the shipped unit runs unchanged: sandbox, user, device policy;
#   - `systemctl start` returns only after READY=1, sent once the modem is
#     initialised; STATUS= is shown by `systemctl status`;
#   - an SMS injected into the modem reaches an MQTT subscriber (the host's
#     mosquitto_sub, run in the container's network namespace) and is
#     deleted from the modem; the daemon's log is in the journal; a request
#     on sms/out is sent by the modem and reported on sms/out/result;
#   - `systemctl stop` gets STOPPING=1 and exit status 0;
#   - kill -9 is restarted (Restart=on-failure);
#   - the watchdog: keep-alives flow while healthy; a frozen process is
#     killed with SIGABRT and restarted (WatchdogSec= shortened to 4s by a
#     runtime drop-in, the only change made to the unit, so that the check
#     takes seconds instead of minutes);
#   - a bad config exits 78 and is not restarted (RestartPreventExitStatus=78);
#   - no sandbox denial shows in the daemon's log, and
#     `systemd-analyze security simgate` is within CHECK_DEB_MAX_EXPOSURE.
# --slow also hangs the simulated modem until the daemon's own health probe
# withholds keep-alives and the watchdog restarts it (about 2 minutes).
#
# It takes about a minute once the root is cached. Where it cannot run (not
# root, another architecture, no systemd-nspawn, a container that does not
# boot) it says why and exits 0, or 1 with CHECK_SERVICE_REQUIRE=1. With
# CI=true it installs systemd-container when systemd-nspawn is missing.
#
# Environment (besides test-root.sh's CHECK_DEB_ROOTFS, CHECK_DEB_ROOTFS_CACHE,
# CHECK_DEB_SUITE, DEBIAN_MIRROR):
#   CHECK_SERVICE_MODEMSIM  a static modemsim binary (default: built with go)
#   CHECK_SERVICE_REQUIRE=1 a check that cannot run fails instead of skipping
#   CHECK_SERVICE_SLOW=1    same as --slow
#   CHECK_DEB_MAX_EXPOSURE  highest acceptable exposure score (default 2.0)
#   CHECK_SERVICE_KEEP=1    leave the container root in /tmp for inspection
set -euo pipefail

slow=${CHECK_SERVICE_SLOW:-}
if [ "${1:-}" = --slow ]; then
	slow=1
	shift
fi
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: $0 [--slow] dist/simgate_<version>_<arch>.deb" >&2
	exit 2
fi
deb=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=packaging/check-lib.sh
. "$here/check-lib.sh"
on_fail() {
	if [ -n "${leader:-}" ]; then
		echo "--- journal of simgate.service (last 40 lines) ---" >&2
		cin journalctl -u simgate.service -u modemsim.service --no-pager -n 40 -o short-precise >&2 || true
	fi
}
skip() {
	if [ "${CHECK_SERVICE_REQUIRE:-}" = 1 ]; then
		fail "service check cannot run: $*"
	fi
	echo "SKIP service check: $*"
	exit 0
}
note() { printf 'note %s\n' "$*"; }
show() { sed 's/^/     | /'; }

name=$(basename "$deb")
[[ $name =~ ^simgate_[^_]+_([a-z0-9]+)\.deb$ ]] || fail "file name $name is not simgate_<version>_<arch>.deb"
arch=${BASH_REMATCH[1]}
echo "== service check: $name"
[ "$(id -u)" = 0 ] || skip "needs root (systemd-nspawn)"
command -v dpkg >/dev/null || skip "dpkg not found"
[ "$arch" = "$(dpkg --print-architecture)" ] || skip "package is $arch, this host is $(dpkg --print-architecture)"
if ! command -v systemd-nspawn >/dev/null && [ "${CI:-}" = true ] && command -v apt-get >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null
fi
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn not found (apt-get install systemd-container)"
command -v nsenter >/dev/null || skip "nsenter not found (util-linux)"

work=$(mktemp -d)
root=
nspawn=
leader=
machine=simgate-check
cleanup() {
	set +e
	if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
		# SIGTERM asks nspawn to shut the container down cleanly; a
		# second signal would cut it short.
		kill -TERM "$nspawn"
		for _ in $(seq 100); do
			kill -0 "$nspawn" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$nspawn" 2>/dev/null; then
			echo "container did not stop within 20s; killing it" >&2
			kill -KILL "$nspawn"
		fi
		wait "$nspawn" 2>/dev/null
	fi
	# nspawn leaves its mount propagation directory behind when /run is
	# not a tmpfs (a host without systemd as PID 1).
	rm -rf "/run/systemd/nspawn/propagate/$machine"
	if [ -n "$root" ] && [ -d "$root" ]; then
		if [ "${CHECK_SERVICE_KEEP:-}" = 1 ]; then
			echo "kept the container root: $root"
		else
			rm -rf "$root"
		fi
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# One container of this name at a time: the machine name, and on a host
# without systemd as PID 1 the cgroup nspawn runs in, are shared.
lockdir=/run/lock
[ -d "$lockdir" ] || lockdir=/tmp
exec 9>"$lockdir/simgate-check-service.lock"
flock -w 600 9 || fail "another check-service.sh has held $lockdir/simgate-check-service.lock for 10 minutes"

# A static modemsim: the Debian root has no Go and no libc of ours to count on.
modemsim=${CHECK_SERVICE_MODEMSIM:-}
if [ -z "$modemsim" ]; then
	command -v go >/dev/null || skip "no modemsim: set CHECK_SERVICE_MODEMSIM or install Go to build ./cmd/modemsim"
	modemsim=$work/modemsim
	(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -o "$modemsim" ./cmd/modemsim) ||
		fail "go build ./cmd/modemsim failed"
fi
[ -x "$modemsim" ] || fail "modemsim $modemsim is not executable"

# shellcheck source=packaging/test-root.sh
. "$here/test-root.sh"
test_root "$arch"
[ -x "$rootfs/lib/systemd/systemd" ] || skip "$rootfs has no systemd to boot (rebuild it: debootstrap --include=adduser,systemd)"

root=$(mktemp -d /tmp/simgate-service.XXXXXX)
cp -a "$rootfs/." "$root/"
install -m 0755 "$modemsim" "$root/usr/local/bin/modemsim"
# /root, not /tmp: systemd-tmpfiles empties /tmp at boot.
cp "$deb" "$root/root/simgate.deb"
# The pty modemsim makes is root:tty 0620; a real modem's port is
# root:dialout 0660 (udev), which is what the unit's SupplementaryGroups=
# relies on. modemsim-ready makes the pty look like that.
cat >"$root/usr/local/bin/modemsim-ready" <<'EOF'
#!/bin/sh
set -e
i=0
until [ -e /run/modemsim/tty ] && [ -S /run/modemsim/ctl ]; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "modemsim made no pty at /run/modemsim/tty" >&2
		exit 1
	fi
	sleep 0.1
done
pts=$(readlink -f /run/modemsim/tty)
chgrp dialout "$pts"
chmod 0660 "$pts"
EOF
chmod 0755 "$root/usr/local/bin/modemsim-ready"
cat >"$root/etc/systemd/system/modemsim.service" <<'EOF'
[Unit]
Description=Simulated Quectel modem for check-service.sh

[Service]
Type=exec
RuntimeDirectory=modemsim
ExecStart=/usr/local/bin/modemsim -link /run/modemsim/tty -profile quectel -control /run/modemsim/ctl
ExecStartPost=/usr/local/bin/modemsim-ready
EOF

# --- Boot ---------------------------------------------------------------------
# cgroup v2 in the container even on a hybrid host, and bpf() allowed, so
# that the container's systemd can apply DevicePolicy= (BPF device programs);
# with cgroup v1 inside nspawn the devices controller is read-only and the
# device policy would silently not apply.
nspawn_args=(-q -b -D "$root" -M "$machine" --private-network --system-call-filter=bpf --console=pipe)
if [ ! -d /run/systemd/system ]; then
	# No systemd as PID 1 on this host: no machined to register with and
	# no manager to make a scope unit.
	nspawn_args+=(--register=no --keep-unit)
fi
echo "booting $root with systemd-nspawn ${nspawn_args[*]}"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn "${nspawn_args[@]}" </dev/null >"$work/nspawn.log" 2>&1 &
nspawn=$!

# cin runs a command inside the container (all its namespaces), with a clean
# environment: nothing of the caller's, SIMGATE_* above all, leaks in.
cin() { env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C nsenter -t "$leader" -a "$@"; }
boot_failed() {
	echo "--- systemd-nspawn output ---"
	cat "$work/nspawn.log"
	skip "the container did not boot ($1); see the systemd-nspawn output above"
}
for _ in $(seq 100); do
	kill -0 "$nspawn" 2>/dev/null || boot_failed "systemd-nspawn exited"
	leader=$(cat /proc/"$nspawn"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
	[ -n "$leader" ] && [ "$(cat /proc/"$leader"/comm 2>/dev/null)" = systemd ] && break
	leader=
	sleep 0.1
done
[ -n "$leader" ] || boot_failed "no systemd in the container after 10s"
# systemctl talks to PID 1 over /run/systemd/private, made early in boot.
for _ in $(seq 100); do
	cin test -S /run/systemd/private && break
	kill -0 "$nspawn" 2>/dev/null || boot_failed "systemd-nspawn exited"
	sleep 0.1
done
state=$(timeout 60 env -i PATH=/usr/bin:/bin nsenter -t "$leader" -a systemctl is-system-running --wait 2>&1) || true
case $state in
running) ;;
degraded) note "container is degraded: $(cin systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')" ;;
*) boot_failed "is-system-running: ${state:-timed out}" ;;
esac
pass "container booted: $(cin systemctl --version | head -1) is PID 1 (is-system-running: $state)"
expect_cgroup=$(cin stat -f -c %T /sys/fs/cgroup)
[ "$expect_cgroup" = cgroup2fs ] || fail "container has no unified cgroup hierarchy (/sys/fs/cgroup is $expect_cgroup)"
pass "container runs on cgroup v2"
# systemd's own debug log records every sd_notify message it gets
# ("Got notification message from PID ... (READY=1)"), which the checks
# below read.
cin systemd-analyze log-level debug

# A negative control: a unit with DevicePolicy=closed must not open a device
# outside its list. Without this, "simgate opened its port" below would
# prove nothing about the unit's DeviceAllow=.
cin sh -c 'cat >/run/systemd/system/simgate-check-devices.service' <<'EOF'
[Service]
Type=oneshot
DevicePolicy=closed
ExecStart=/bin/sh -c 'exec 2>/run/simgate-check-devices.err 3<>/dev/net/tun'
EOF
cin systemctl daemon-reload
if cin systemctl start simgate-check-devices.service 2>/dev/null; then
	fail "DevicePolicy=closed is not enforced in the container: a closed unit opened /dev/net/tun"
fi
denied=$(cin cat /run/simgate-check-devices.err)
grep -q 'Operation not permitted' <<<"$denied" || fail "the device-policy control unit failed for another reason: $denied"
pass "DevicePolicy=closed is enforced in the container (control unit: $denied)"

# journal helpers: mark returns a cursor; since CURSOR prints simgate's
# journal after it: the daemon's lines and systemd's lines about the unit,
# without their time/host/tag prefix. Not `journalctl -u simgate.service
# --after-cursor=`: with systemd 252 that leaves out the first matching
# entry whenever the cursor's own entry does not match -u (seen here: the
# "Watchdog timeout" line right after the mark never showed), so the unit's
# lines are picked out of the whole journal instead.
# Its output is searched as a here-string, never piped into grep -q or -m1:
# with pipefail, a grep that stops reading early makes the pipeline fail.
mark() { cin journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'; }
since() {
	cin journalctl --after-cursor="$1" -o short-iso --no-pager |
		grep -E '^[^ ]+ [^ ]+ (simgate\[[0-9]+\]: |systemd\[1\]: ([A-Za-z]+ )?simgate\.service)' |
		sed -E 's/^[^ ]+ [^ ]+ [^ ]+ //' || true
}
# has CURSOR TEXT: the journal after CURSOR has a line containing TEXT.
has() { grep -qF -- "$2" <<<"$(since "$1")"; }
# first CURSOR REGEX: the first match of REGEX (grep -o) after CURSOR, or "".
first() { grep -m1 -o -- "$2" <<<"$(since "$1")" || true; }
# journal_has CURSOR TEXT, for wait_for (which runs it in a loop).
journal_has() { has "$1" "$2"; }
prop() { cin systemctl show simgate.service -P "$1"; }
# wait_for SECONDS DESCRIPTION COMMAND...: polls until COMMAND succeeds.
wait_for() {
	local limit=$1 what=$2 i
	shift 2
	for ((i = 0; i < limit * 5; i++)); do
		if "$@"; then
			return 0
		fi
		sleep 0.2
	done
	fail "timed out after ${limit}s waiting for: $what"
}
is_state() { [ "$(prop ActiveState)" = "$1" ]; }
restarted_from() { [ "$(prop NRestarts)" -gt "$1" ] && is_state active && [ "$(prop MainPID)" != "$2" ]; }
# line_of CURSOR PATTERN: the line number of the first match in since CURSOR.
line_of() { grep -n -m1 -F -- "$2" <<<"$(since "$1")" | cut -d: -f1 || true; }

# --- Install -------------------------------------------------------------------
out=$(cin dpkg -i /root/simgate.deb 2>&1) || fail "dpkg -i in the booted container: $out"
# shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
pass "dpkg -i with systemd running: $(cin dpkg-query -W -f='${Package} ${Version}' simgate)"
expect_eq "systemctl is-enabled simgate" enabled "$(cin systemctl is-enabled simgate.service)"
expect_eq "first install leaves it stopped: is-active" inactive "$(cin systemctl is-active simgate.service || true)"
expect_eq "unit loaded from" /lib/systemd/system/simgate.service "$(prop FragmentPath)"
[ -z "$(prop DropInPaths)" ] || fail "the unit has drop-ins before the checks: $(prop DropInPaths)"
pass "no drop-ins: the shipped unit runs as packaged"

sec=$(cin systemd-analyze security simgate.service --no-pager 2>&1) || fail "systemd-analyze security: $sec"
score=$(sed -n 's/.*Overall exposure level for simgate.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[ -n "$score" ] || fail "no exposure score in: $sec"
max=${CHECK_DEB_MAX_EXPOSURE:-2.0}
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' || fail "systemd-analyze security exposure $score > $max"
pass "systemd-analyze security simgate (installed, online): $(grep 'Overall exposure' <<<"$sec") (<= $max)"

# --- Configure -----------------------------------------------------------------
cin sh -c 'cat >/etc/simgate/simgate.yaml' <<'EOF'
# check-service.sh: the simulated modem, and the embedded broker in the
# container's own network namespace.
modem:
  port: /run/modemsim/tty
mqtt:
  url: tcp://127.0.0.1:1883
  embedded: true
EOF
expect_eq "simgate check-config as user simgate" ok "$(cin runuser -u simgate -- simgate check-config 2>&1)"

# --- Ready only once the modem is initialised ------------------------------------
# The modem is not there yet: the start job must wait, not finish.
c=$(mark)
cin systemctl start --no-block simgate.service
has_main_pid() { [ "$(prop MainPID)" != 0 ]; }
wait_for 10 "simgate's main process" has_main_pid
sleep 2
expect_eq "without a modem, 2s after start: ActiveState/SubState" activating/start "$(prop ActiveState)/$(prop SubState)"
if has "$c" "(READY=1)"; then
	fail "READY=1 sent without a modem"
fi
pass "no READY=1 while the modem is missing; daemon says: $(first "$c" 'msg="[^"]*" .*err="[^"]*"' | cut -c1-150)"
cin systemctl start modemsim.service
pts=$(cin readlink -f /run/modemsim/tty)
pass "modemsim running, pty $pts: $(cin stat -c '%A %U:%G' "$pts")"
out=$(cin timeout 90 systemctl start simgate.service 2>&1) || fail "systemctl start simgate (joins the pending start job): $out"
expect_eq "after the modem appeared: ActiveState/SubState" active/running "$(prop ActiveState)/$(prop SubState)"
pid=$(prop MainPID)
ready=$(line_of "$c" "Got notification message from PID $pid (READY=1)")
started=$(line_of "$c" "Started simgate.service")
[ -n "$ready" ] || fail "no READY=1 from PID $pid in the journal"
if [ -z "$started" ] || [ "$ready" -gt "$started" ]; then
	fail "\"Started simgate.service\" (line ${started:-none}) does not follow READY=1 (line $ready)"
fi
pass "READY=1 from the main process (PID $pid) came before systemd's \"Started simgate.service\""
# creds PID: "user group supplementary,groups" of a process, by name.
# shellcheck disable=SC2016 # expanded by the inner shell
creds() {
	cin sh -c 'set -e
		n() { getent "$1" "$2" | cut -d: -f1; }
		u=$(awk "/^Uid:/ { print \$2 }" /proc/$0/status)
		g=$(awk "/^Gid:/ { print \$2 }" /proc/$0/status)
		s=$(for x in $(awk "/^Groups:/ { \$1 = \"\"; print }" /proc/$0/status); do n group "$x"; done | sort | paste -sd,)
		echo "$(n passwd "$u") $(n group "$g") $s"' "$1"
}
expect_eq "main process user, group, supplementary groups" "simgate simgate dialout,simgate" "$(creds "$pid")"
grep -q " -> $pts\$" <<<"$(cin ls -l "/proc/$pid/fd")" || fail "PID $pid does not hold $pts open"
pass "the daemon holds the modem's pty $pts open under DevicePolicy=closed (char-pts is in closed's base list)"
expect_eq "queue in StateDirectory" "-rw------- simgate:simgate" "$(cin stat -c '%A %U:%G' /var/lib/simgate/queue.db)"

# STATUS= in systemctl status. The broker connection is reported on the
# next status refresh (every 10s at most).
status_ok() { grep -q '^registered (roaming) on .*, signal -[0-9]* dBm, broker connected, 0 queued$' <<<"$(prop StatusText)"; }
wait_for 20 "STATUS= saying registered and broker connected (now: $(prop StatusText))" status_ok
st=$(cin systemctl status simgate.service --no-pager -n 0 | grep '^ *Status:') || fail "systemctl status shows no Status: line"
pass "systemctl status shows STATUS=: $(xargs <<<"$st")"

# --- An SMS Command reaches MQTT ---------------------------------------------------
# A persistent subscription (clean session off, QoS 1) is made first, so
# the message waits in the broker whatever the timing, then collected.
if command -v mosquitto_sub >/dev/null; then
	sub=(nsenter -t "$leader" -n mosquitto_sub -h 127.0.0.1 -p 1883 -i simgate-check -c -q 1 -t 'supersim/+/sms/in' -v)
	"${sub[@]}" -E || fail "mosquitto_sub could not subscribe to the embedded broker"
	text="check-service $$ hello"
	cin modemsim sms -control /run/modemsim/ctl "$text" >/dev/null
	msg=$("${sub[@]}" -C 1 -W 30) || fail "no message on supersim/+/sms/in within 30s"
	echo "$msg" | show
	for want in '"channel":"sms"' '"from":"000"' "\"payload\":\"$text\"" '"encoding":"text"' '"parts":1'; do
		grep -qF "$want" <<<"$msg" || fail "sms/in message lacks $want: $msg"
	done
	pass "SMS injected into the modem arrived on $(cut -d' ' -f1 <<<"$msg")"
	id=$(grep -o '"id":"[^"]*"' <<<"$msg" | cut -d'"' -f4)
	sms_gone() { [[ $(cin modemsim state -control /run/modemsim/ctl | tr -d ' \n') == *'"stored":[]'* ]]; }
	wait_for 10 "the SMS deleted from the modem" sms_gone
	pass "the SMS is no longer stored in the modem (deleted after it was stored durably)"
	log=$(grep -m1 "msg=\"SMS received\".*id=$id" <<<"$(cin journalctl -u simgate.service -o cat --no-pager)") ||
		fail "journalctl -u simgate has no \"SMS received\" line for $id"
	pass "journalctl -u simgate: $(cut -c1-160 <<<"$log")"

	# And back: a request on sms/out is sent by the modem and answered on
	# sms/out/result.
	prefix=${msg%%/sms/in *}
	res=(nsenter -t "$leader" -n mosquitto_sub -h 127.0.0.1 -p 1883 -i simgate-check-out -c -q 1 -t "$prefix/sms/out/result" -v)
	"${res[@]}" -E || fail "mosquitto_sub could not subscribe to sms/out/result"
	reply="check-service-$$-reply" # no spaces: the state JSON is compared with them removed
	nsenter -t "$leader" -n mosquitto_pub -h 127.0.0.1 -p 1883 -q 1 -t "$prefix/sms/out" \
		-m "{\"id\":\"check-$$\",\"payload\":\"$reply\"}" || fail "mosquitto_pub to $prefix/sms/out failed"
	result=$("${res[@]}" -C 1 -W 60) || fail "no message on $prefix/sms/out/result within 60s"
	echo "$result" | show
	for want in "\"id\":\"check-$$\"" '"status":"sent"'; do
		grep -qF "$want" <<<"$result" || fail "sms/out/result lacks $want: $result"
	done
	sent=$(cin modemsim state -control /run/modemsim/ctl | tr -d ' \n')
	[[ $sent == *"\"to\":\"000\",\"text\":\"$reply\""* ]] || fail "the modem did not send \"$reply\" to 000: $sent"
	pass "a request on $prefix/sms/out was sent by the modem to 000 and reported sent"
else
	note "mosquitto_sub not found (apt-get install mosquitto-clients): SMS to and from MQTT not checked"
fi

# --- Clean stop -------------------------------------------------------------------
c=$(mark)
cin systemctl stop simgate.service
stopping=$(line_of "$c" "Got notification message from PID $pid (STOPPING=1)")
gone=$(line_of "$c" "Deactivated successfully")
[ -n "$stopping" ] || fail "no STOPPING=1 from PID $pid on stop"
if [ -z "$gone" ] || [ "$stopping" -gt "$gone" ]; then
	fail "STOPPING=1 did not come before the unit deactivated"
fi
pass "systemctl stop: STOPPING=1 from the daemon, then \"Deactivated successfully\""
expect_eq "after stop: ActiveState Result ExecMainStatus" "inactive success 0" "$(prop ActiveState) $(prop Result) $(prop ExecMainStatus)"
has "$c" 'msg="simgate stopped"' || fail "the daemon did not log a clean stop"
pass "daemon logged: simgate stopped"

# --- kill -9 is restarted ----------------------------------------------------------
cin timeout 90 systemctl start simgate.service || fail "start after stop failed"
pid=$(prop MainPID) n=$(prop NRestarts)
c=$(mark)
cin sh -c "kill -KILL $pid"
# A process killed outright leaves its serial port in exclusive mode
# (TIOCEXCL, set by go.bug.st/serial). A real ttyUSB/ttyAMA forgets that when
# its last user is gone, but a pty keeps it while the master (modemsim)
# stays open, so a restarted simgate would find it busy. A fresh modemsim
# gives it a fresh pty, as a real port would be.
cin systemctl restart modemsim.service
wait_for 30 "a restart after kill -9 (RestartSec=5s)" restarted_from "$n" "$pid"
has "$c" 'Main process exited, code=killed, status=9/KILL' || fail "journal lacks the SIGKILL exit"
pass "kill -9 $pid: $(first "$c" 'Scheduled restart job.*'); active again as PID $(prop MainPID)"

# --- Watchdog -----------------------------------------------------------------------
# The shipped WatchdogSec=3min would make this take minutes; a runtime
# drop-in (gone at the container's reboot) shortens it for the check only.
cin sh -c 'mkdir -p /run/systemd/system/simgate.service.d && printf "[Service]\nWatchdogSec=4s\n" >/run/systemd/system/simgate.service.d/50-check-watchdog.conf'
cin systemctl daemon-reload
cin timeout 90 systemctl restart simgate.service || fail "restart with WatchdogSec=4s failed"
expect_eq "WatchdogUSec with the check's drop-in" 4s "$(prop WatchdogUSec)"
pid=$(prop MainPID) n=$(prop NRestarts)
c=$(mark)
# Three watchdog periods: a daemon that did not send keep-alives would be
# killed in this time.
sleep 12
expect_eq "healthy daemon with WatchdogSec=4s, 12s later: MainPID NRestarts" "$pid $n" "$(prop MainPID) $(prop NRestarts)"
pets=$(grep -cF "Got notification message from PID $pid (WATCHDOG=1)" <<<"$(since "$c")" || true)
[ "$pets" -ge 3 ] || fail "only $pets WATCHDOG=1 in 12s"
pass "$pets keep-alives (WATCHDOG=1) in 12s while the health probe passes"
c=$(mark)
cin sh -c "kill -STOP $pid"
wait_for 30 "systemd's watchdog timeout for the frozen process" journal_has "$c" "Watchdog timeout"
cin systemctl restart modemsim.service # the pty is left exclusive, as after kill -9
wait_for 30 "a restart after the watchdog timeout" restarted_from "$n" "$pid"
j=$(since "$c")
for want in "Watchdog timeout (limit 4s)!" "Killing process $pid (simgate) with signal SIGABRT" "SIGABRT: abort" "Failed with result 'watchdog'" "Scheduled restart job"; do
	grep -qF "$want" <<<"$j" || fail "journal after the freeze lacks: $want"
done
pass "frozen (SIGSTOP) process: Watchdog timeout (limit 4s) -> SIGABRT with goroutine dump ($(grep -c '^goroutine ' <<<"$j") goroutines) -> restarted as PID $(prop MainPID)"

if [ -n "$slow" ]; then
	# The daemon's own probe: the modem stops answering, simgate's recovery
	# cannot bring it back, the probe fails and keep-alives stop. The probe
	# tolerates 2 polls + 30s (90s) of silence, so this takes about 2 minutes.
	cin sh -c 'printf "[Service]\nWatchdogSec=10s\n" >/run/systemd/system/simgate.service.d/50-check-watchdog.conf'
	cin systemctl daemon-reload
	cin timeout 90 systemctl restart simgate.service || fail "restart with WatchdogSec=10s failed"
	pid=$(prop MainPID) n=$(prop NRestarts)
	c=$(mark)
	t0=$(date +%s)
	cin modemsim hang -control /run/modemsim/ctl -for 170s >/dev/null
	wait_for 180 "the watchdog to end a daemon whose modem hangs" journal_has "$c" "Watchdog timeout"
	elapsed=$(($(date +%s) - t0))
	cin systemctl restart modemsim.service
	wait_for 30 "a restart after the watchdog timeout" restarted_from "$n" "$pid"
	grep 'level=WARN' <<<"$(since "$c")" | grep -E 'timed out|session ended|withholding' | cut -c1-200 | show || true
	pass "modem hung: health probe failed, watchdog (10s) killed PID $pid ${elapsed}s after the hang began; restarted as PID $(prop MainPID)"
fi

cin systemctl stop simgate.service
cin rm -r /run/systemd/system/simgate.service.d
cin systemctl daemon-reload
# (WatchdogUSec would still say 4s: systemd shows the value the service was
# last started with.)
expect_eq "check's drop-in removed: DropInPaths" "" "$(prop DropInPaths)"

# --- Nothing the sandbox refused ---------------------------------------------------
denials=$(cin journalctl _SYSTEMD_UNIT=simgate.service -o cat --no-pager | grep -iE 'permission denied|operation not permitted|read-only file system' || true)
[ -z "$denials" ] || fail "the daemon's log shows sandbox denials:
$denials"
pass "no permission/read-only errors in the daemon's log across all runs"

# --- Bad config: exit 78, no restart loop -----------------------------------------
cin sh -c 'printf "bogus_key: 1\n" >>/etc/simgate/simgate.yaml'
c=$(mark)
if out=$(cin timeout 60 systemctl start simgate.service 2>&1); then
	fail "systemctl start succeeded with a bad config"
fi
pass "systemctl start with a bad config fails: $(head -1 <<<"$out")"
expect_eq "ActiveState Result ExecMainStatus" "failed exit-code 78" "$(prop ActiveState) $(prop Result) $(prop ExecMainStatus)"
n=$(prop NRestarts) # a start by hand resets the counter
line=$(first "$c" '.*bogus_key.*')
[ -n "$line" ] || fail "the journal does not say what is wrong with the config"
pass "journal names the problem: $line"
# RestartSec=5s: a restart would have happened by now.
sleep 8
expect_eq "8s later (RestartSec=5s): ActiveState NRestarts" "failed $n" "$(prop ActiveState) $(prop NRestarts)"
if has "$c" 'Scheduled restart job'; then
	fail "a restart was scheduled after exit 78"
fi
pass "no restart after exit 78 (RestartPreventExitStatus=78)"

echo "== $checks checks passed (systemd $(cin systemctl --version | awk 'NR == 1 { print $2 }') in systemd-nspawn)"
