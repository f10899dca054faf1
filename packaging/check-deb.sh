#!/usr/bin/env bash
# check-deb.sh [--static-only] dist/simgate_<version>_<arch>.deb
#
# Checks a simgate package and prints every check it makes; exits non-zero
# on the first failure.
#
# 1. Static, any architecture, any user: control fields, conffiles, the exact
#    file list with modes and owners, maintainer scripts, the binary's ELF
#    architecture and build settings, `systemd-analyze verify` and the
#    `systemd-analyze security` exposure of the unit, the default config
#    accepted by the packaged binary (when it runs on this host).
# 2. Install, as root, when the package's architecture is this host's: a
#    throwaway copy of a minimal Debian root made with debootstrap, in which
#    the package goes through install, upgrade, remove, purge and a second
#    install and purge, checking the user, groups, directories, unit
#    enablement and what each maintainer script leaves behind.
# 3. Service, after 2: check-service.sh boots another copy of that root with
#    systemd-nspawn and runs the installed package as a service against a
#    simulated modem (about a minute; CHECK_DEB_SERVICE=0 leaves it out).
#
# Environment (not SIMGATE_*: simgate reads every SIMGATE_ variable as a
# config override and rejects unknown ones):
#   CHECK_DEB_ROOTFS        a Debian root to copy for the install test
#                         (default: built once with debootstrap into
#                         $CHECK_DEB_ROOTFS_CACHE/<suite>-<arch>)
#   CHECK_DEB_ROOTFS_CACHE  default /var/cache/simgate-test
#   CHECK_DEB_SUITE         default bookworm (Raspberry Pi OS 12's base)
#   DEBIAN_MIRROR         default http://deb.debian.org/debian
#   CHECK_DEB_MAX_EXPOSURE  highest acceptable `systemd-analyze security` score (default 2.0)
#   CHECK_DEB_REQUIRE_INSTALL=1 (implied by CI=true): an install test skipped
#                         for lack of root or debootstrap fails (one skipped
#                         because the package is for another architecture does not).
#   CHECK_DEB_SERVICE=0     skip step 3; check-service.sh documents its own
#                         variables (CHECK_SERVICE_REQUIRE=1 makes a service
#                         check that cannot run fail).
set -euo pipefail

static_only=
if [ "${1:-}" = --static-only ]; then
	static_only=1
	shift
fi
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: $0 [--static-only] dist/simgate_<version>_<arch>.deb" >&2
	if [ $# -gt 1 ]; then
		echo "(one package at a time; got $#: $*)" >&2
	fi
	exit 2
fi
deb=$(readlink -f "$1")
here=$(cd "$(dirname "$0")" && pwd)

# shellcheck source=packaging/check-lib.sh
. "$here/check-lib.sh"
# expect_file_eq WHAT WANT_FILE GOT_FILE: whole-text comparison with a diff.
expect_file_eq() {
	if ! diff -u "$2" "$3" >&2; then
		fail "$1 differs (-want +got above)"
	fi
	pass "$1"
}

work=$(mktemp -d)
root=
cleanup() {
	if [ -n "$root" ] && [ -d "$root" ]; then
		rm -rf "$root"
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# --- 1. Static checks -------------------------------------------------------
name=$(basename "$deb")
if ! [[ $name =~ ^simgate_([^_]+)_([a-z0-9]+)\.deb$ ]]; then
	fail "file name $name is not simgate_<version>_<arch>.deb"
fi
file_version=${BASH_REMATCH[1]} arch=${BASH_REMATCH[2]}
echo "== static checks: $name"

field() { dpkg-deb --field "$deb" "$1"; }
expect_eq "Package" simgate "$(field Package)"
expect_eq "Version matches the file name" "$file_version" "$(field Version)"
dpkg --validate-version "$(field Version)" || fail "Version $(field Version) is not a valid Debian version"
pass "Version is a valid Debian version"
expect_eq "Architecture" "$arch" "$(field Architecture)"
case $arch in
armhf | arm64 | amd64) pass "Architecture is one of armhf arm64 amd64" ;;
*) fail "Architecture $arch is not one simgate ships" ;;
esac
expect_eq "Depends" "adduser" "$(field Depends)"
expect_eq "Recommends" "mosquitto" "$(field Recommends)"
[ -n "$(field Maintainer)" ] || fail "Maintainer is empty"
pass "Maintainer: $(field Maintainer)"
[ -n "$(field Description)" ] || fail "Description is empty"
pass "Description present"

dpkg-deb --control "$deb" "$work/control"
expect_eq "conffiles" "/etc/mosquitto/conf.d/simgate.conf
/etc/simgate/simgate.yaml" "$(sort "$work/control/conffiles")"
for s in postinst prerm postrm; do
	[ -x "$work/control/$s" ] || fail "maintainer script $s missing or not executable"
	sh -n "$work/control/$s" || fail "maintainer script $s: shell syntax error"
	cmp -s "$work/control/$s" "$here/scripts/$s" || fail "maintainer script $s differs from packaging/scripts/$s"
	pass "maintainer script $s: executable, valid sh, as in packaging/scripts/"
done
for s in preinst config templates; do
	[ ! -e "$work/control/$s" ] || fail "unexpected control file $s"
done
pass "no other maintainer scripts"

# The exact file list: every path, mode and owner. Anything missing, extra
# or different fails. Sizes and dates are left out.
dpkg-deb --contents "$deb" | awk '{ print $1, $2, $6 }' | sort -k3 >"$work/contents.got"
sort -k3 >"$work/contents.want" <<'EOF'
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/mosquitto/
drwxr-xr-x root/root ./etc/mosquitto/conf.d/
-rw-r--r-- root/root ./etc/mosquitto/conf.d/simgate.conf
drwxr-xr-x root/root ./etc/simgate/
-rw-r--r-- root/root ./etc/simgate/simgate.yaml
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/simgate-cloud.service
-rw-r--r-- root/root ./lib/systemd/system/simgate.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/simgate
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/simgate/
-rw-r--r-- root/root ./usr/share/doc/simgate/README.install.md
-rw-r--r-- root/root ./usr/share/doc/simgate/copyright
drwxr-xr-x root/root ./usr/share/doc/simgate/examples/
-rw-r--r-- root/root ./usr/share/doc/simgate/examples/70-simgate-modem.rules
-rw-r--r-- root/root ./usr/share/doc/simgate/examples/simgate.yaml
EOF
expect_file_eq "file list, modes and owners ($(wc -l <"$work/contents.want") entries)" "$work/contents.want" "$work/contents.got"

dpkg-deb --extract "$deb" "$work/fs"
for f in lib/systemd/system/simgate.service:systemd/simgate.service \
	lib/systemd/system/simgate-cloud.service:systemd/simgate-cloud.service \
	etc/simgate/simgate.yaml:packaging/simgate.yaml \
	etc/mosquitto/conf.d/simgate.conf:packaging/mosquitto-simgate.conf \
	usr/share/doc/simgate/examples/70-simgate-modem.rules:packaging/70-simgate-modem.rules; do
	if [ -f "$here/../${f#*:}" ]; then
		cmp -s "$work/fs/${f%%:*}" "$here/../${f#*:}" || fail "/${f%%:*} differs from ${f#*:}"
		pass "/${f%%:*} is ${f#*:}"
	fi
done
# The snippet must be one mosquitto accepts: a bad line there would stop the
# broker from starting at all.
if mq=$(command -v mosquitto || ls /usr/sbin/mosquitto 2>/dev/null); then
	port=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
	printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser %s\ninclude_dir %s\n' "$port" "$(id -un)" "$work/fs/etc/mosquitto/conf.d" >"$work/mosquitto.conf"
	timeout 2 "$mq" -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 && rc=0 || rc=$?
	# 124: still running when timeout stopped it, i.e. the config was taken.
	[ "$rc" = 124 ] || fail "mosquitto rejects the packaged conf.d snippet (exit $rc): $(cat "$work/mosquitto.out")"
	grep -qi 'error' "$work/mosquitto.out" && fail "mosquitto complains about the packaged conf.d snippet: $(cat "$work/mosquitto.out")"
	pass "mosquitto starts with /etc/mosquitto/conf.d/simgate.conf"
else
	echo "note mosquitto not found: conf.d snippet not tried"
fi
grep -q 'linked into\|statically linked' "$work/fs/usr/share/doc/simgate/copyright" ||
	fail "copyright does not list the linked modules"
pass "copyright lists the code linked into the binary"

# ELF e_machine (offset 18, little-endian) of the binary.
bin="$work/fs/usr/bin/simgate"
machine=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n')
case $arch in
amd64) want_machine=3e00 ;;
arm64) want_machine=b700 ;;
armhf) want_machine=2800 ;;
esac
expect_eq "ELF machine of /usr/bin/simgate" "$want_machine" "$machine"
if command -v go >/dev/null; then
	info=$(go version -m "$bin")
	grep -q $'\tbuild\tCGO_ENABLED=0' <<<"$info" || fail "binary not built with CGO_ENABLED=0"
	pass "binary built with CGO_ENABLED=0 (static, runs on any libc)"
	grep -q $'\tbuild\t-trimpath=true' <<<"$info" || fail "binary not built with -trimpath"
	pass "binary built with -trimpath"
	if [ "$arch" = armhf ]; then
		grep -q $'\tbuild\tGOARM=6' <<<"$info" || fail "armhf binary is not GOARM=6 (Pi Zero/1 need ARMv6)"
		pass "armhf binary is GOARM=6 (ARMv6: Pi Zero/1 and up)"
	fi
else
	echo "note go not found: build settings not checked"
fi

host_arch=$(dpkg --print-architecture)
if [ "$arch" = "$host_arch" ]; then
	out=$(env -i "$bin" check-config -config "$work/fs/etc/simgate/simgate.yaml" 2>&1) ||
		fail "packaged binary rejects the packaged config: $out"
	expect_eq "packaged binary accepts the packaged config" ok "$out"
	"$bin" version | grep -q '^simgate ' || fail "simgate version: unexpected output"
	pass "simgate version: $("$bin" version)"
fi

if command -v systemd-analyze >/dev/null; then
	# verify needs ExecStart's binary to exist: point it at the extracted one.
	sed "s#^ExecStart=/usr/bin/simgate#ExecStart=$bin#" \
		"$work/fs/lib/systemd/system/simgate.service" >"$work/simgate.service"
	if ! out=$(cd "$work" && systemd-analyze verify ./simgate.service 2>&1) || [ -n "$out" ]; then
		fail "systemd-analyze verify: $out"
	fi
	pass "systemd-analyze verify: clean"
	if score=$(cd "$work" && systemd-analyze security --offline=true ./simgate.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for simgate.service: \([0-9.]*\).*/\1/p') && [ -n "$score" ]; then
		max=${CHECK_DEB_MAX_EXPOSURE:-2.0}
		awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' ||
			fail "systemd-analyze security exposure $score > $max"
		pass "systemd-analyze security exposure $score (<= $max)"
	else
		echo "note systemd-analyze security --offline unsupported here: exposure not checked"
	fi
else
	echo "note systemd-analyze not found: unit not verified"
fi

# --- 2. Install test in a throwaway Debian root ----------------------------
require=${CHECK_DEB_REQUIRE_INSTALL:-}
if [ "${CI:-}" = true ]; then
	require=1
fi
skip() {
	if [ -n "$require" ] && [ -z "$static_only" ]; then
		fail "install test cannot run: $*"
	fi
	echo "SKIP install test: $*"
	echo "== $checks checks passed (static only)"
	exit 0
}
[ -z "$static_only" ] || skip "--static-only"
[ "$(id -u)" = 0 ] || skip "needs root (chroot, chown)"
if [ "$arch" != "$host_arch" ]; then
	# Not a failure even when required: only the host's architecture can be
	# installed and run here; the static checks above cover the others.
	echo "SKIP install test: package is $arch, this host is $host_arch"
	echo "== $checks checks passed (static only)"
	exit 0
fi

# shellcheck source=packaging/test-root.sh
. "$here/test-root.sh"
test_root "$arch"

echo "== install test in a copy of $rootfs"
root=$(mktemp -d /tmp/simgate-root.XXXXXX)
cp -a "$rootfs/." "$root/"
# No service may start inside the test root, whatever a script asks.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/simgate.deb"
# An upgrade: the same package under a higher version.
dpkg-deb --raw-extract "$deb" "$work/up"
sed -i "s/^Version: .*/Version: ${file_version}+up1/" "$work/up/DEBIAN/control"
dpkg-deb --root-owner-group --build "$work/up" "$root/tmp/simgate-up.deb" >/dev/null

# A clean environment: nothing of the caller's (SIMGATE_* overrides above
# all) leaks into the test root.
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C chroot "$root" "$@"; }
stat_of() { in_root stat -c '%A %U:%G' "$1"; }
exists() { [ -e "$root$1" ] || [ -L "$root$1" ]; }
has_user() { in_root getent passwd simgate >/dev/null; }
has_group() { in_root getent group "$1" >/dev/null; }
wants=/etc/systemd/system/multi-user.target.wants/simgate.service

# Install ---------------------------------------------------------------
out=$(in_root dpkg -i /tmp/simgate.deb 2>&1) || fail "dpkg -i failed: $out"
pass "dpkg -i: installed into a fresh copy of $rootfs"
grep -q 'sudo systemctl start simgate' <<<"$out" || fail "postinst did not tell the admin how to start simgate: $out"
pass "postinst tells the admin how to start it"
expect_eq "dpkg status" "install ok installed" "$(in_root dpkg-query -W -f="\${Status}" simgate)"
expect_eq "conffiles registered" "/etc/mosquitto/conf.d/simgate.conf
/etc/simgate/simgate.yaml" \
	"$(in_root dpkg-query -W -f="\${Conffiles}" simgate | awk 'NF { print $1 }' | sort)"
has_user || fail "user simgate not created"
pw=$(in_root getent passwd simgate)
IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
[ "$uid" -lt 1000 ] || fail "simgate uid $uid is not a system uid"
pass "user simgate is a system user (uid $uid)"
expect_eq "home of simgate" /var/lib/simgate "$home"
expect_eq "shell of simgate" /usr/sbin/nologin "$shell"
expect_eq "groups of simgate" "simgate dialout" "$(in_root id -nG simgate)"
expect_eq "/var/lib/simgate" "drwxr-x--- simgate:simgate" "$(stat_of /var/lib/simgate)"
expect_eq "/etc/simgate/simgate.yaml" "-rw-r--r-- root:root" "$(stat_of /etc/simgate/simgate.yaml)"
expect_eq "unit enabled: $wants ->" /lib/systemd/system/simgate.service "$(readlink "$root$wants")"
expect_eq "systemctl is-enabled" enabled "$(in_root systemctl is-enabled simgate.service 2>/dev/null)"
expect_eq "simgate user reads and accepts the default config" ok \
	"$(in_root runuser -u simgate -- simgate check-config 2>&1)"
if ! out=$(in_root systemd-analyze verify /lib/systemd/system/simgate.service 2>&1) || [ -n "$out" ]; then
	fail "systemd-analyze verify of the installed unit: $out"
fi
pass "systemd-analyze verify of the installed unit (User=simgate exists, binary in place): clean"

# Upgrade keeps the admin's edits and choices -----------------------------
echo "# local edit" >>"$root/etc/simgate/simgate.yaml"
in_root runuser -u simgate -- sh -c 'echo queued > /var/lib/simgate/queue.db'
in_root systemctl disable simgate.service >/dev/null 2>&1
out=$(in_root dpkg -i /tmp/simgate-up.deb 2>&1) || fail "upgrade failed: $out"
pass "dpkg -i of version ${file_version}+up1: upgraded"
! grep -q 'sudo systemctl start simgate' <<<"$out" || fail "postinst printed the first-install message on upgrade"
pass "upgrade does not repeat the first-install message"
grep -q '^# local edit$' "$root/etc/simgate/simgate.yaml" || fail "upgrade lost the admin's config edit"
pass "upgrade keeps the edited conffile"
exists $wants && fail "upgrade re-enabled a unit the admin had disabled"
pass "upgrade keeps the unit disabled as the admin left it"
expect_eq "queue survives the upgrade" queued "$(cat "$root/var/lib/simgate/queue.db")"
in_root systemctl enable simgate.service >/dev/null 2>&1

# Remove keeps config, state and user -------------------------------------
echo "secret" >"$root/etc/simgate/mqtt-password"
out=$(in_root dpkg -r simgate 2>&1) || fail "dpkg -r failed: $out"
pass "dpkg -r: removed"
for f in /usr/bin/simgate /lib/systemd/system/simgate.service; do
	exists "$f" && fail "$f left after remove"
done
pass "binary and unit gone after remove"
exists /etc/simgate/simgate.yaml || fail "remove deleted the conffile"
pass "remove keeps /etc/simgate/simgate.yaml"
exists /etc/mosquitto/conf.d/simgate.conf || fail "remove deleted the mosquitto snippet"
pass "remove keeps /etc/mosquitto/conf.d/simgate.conf"
expect_eq "remove keeps the queue" queued "$(cat "$root/var/lib/simgate/queue.db")"
has_user || fail "remove deleted the simgate user"
pass "remove keeps the simgate user"
expect_eq "dpkg status after remove" "deinstall ok config-files" "$(in_root dpkg-query -W -f="\${Status}" simgate)"
expect_eq "unit masked after remove" /dev/null "$(readlink "$root/etc/systemd/system/simgate.service")"

# Purge removes everything ------------------------------------------------
purge_check() {
	out=$(in_root dpkg -P simgate 2>&1) || fail "dpkg -P failed: $out"
	pass "dpkg -P: purged ($1)"
	for f in /etc/simgate /etc/mosquitto/conf.d/simgate.conf /var/lib/simgate /etc/systemd/system/simgate.service $wants \
		/var/lib/systemd/deb-systemd-helper-enabled/simgate.service.dsh-also \
		/var/lib/systemd/deb-systemd-helper-masked/simgate.service; do
		exists "$f" && fail "$f left after purge ($1)"
	done
	pass "purge removed /etc/simgate, /var/lib/simgate, enable/mask state ($1)"
	has_user && fail "user simgate left after purge ($1)"
	has_group simgate && fail "group simgate left after purge ($1)"
	pass "purge removed user and group simgate ($1)"
	has_group dialout || fail "purge removed the system group dialout ($1)"
	pass "dialout group untouched ($1)"
	if in_root dpkg-query -W simgate >/dev/null 2>&1; then
		fail "dpkg still knows simgate after purge ($1): $(in_root dpkg-query -W -f="\${Status}" simgate)"
	fi
	pass "dpkg has forgotten simgate ($1)"
}
purge_check "after remove"

# A second life: a user made by hand beforehand, then purge from installed --
in_root adduser --quiet --system --no-create-home simgate >/dev/null
out=$(in_root dpkg -i /tmp/simgate.deb 2>&1) || fail "install with a pre-existing user failed: $out"
pass "dpkg -i with a pre-existing simgate user (no own group, not in dialout)"
in_root id -nG simgate | tr ' ' '\n' | grep -qx dialout || fail "postinst did not add the existing user to dialout"
pass "postinst added the existing user to dialout"
expect_eq "/var/lib/simgate for a pre-existing user" "drwxr-x--- simgate:$(in_root id -gn simgate)" "$(stat_of /var/lib/simgate)"
purge_check "straight from installed"

# What the scripts ask of a running systemd -----------------------------------
# No systemd runs in the test root, so the scripts skip their systemctl calls.
# Pretend one runs (/run/systemd/system) with a systemctl that records every
# call and answers the rest (is-enabled, enable...) from the unit files
# (--root=/: the real one would look for systemd on D-Bus).
mkdir -p "$root/run/systemd/system"
mv "$root/usr/bin/systemctl" "$root/usr/bin/systemctl.real"
cat >"$root/usr/bin/systemctl" <<'EOF'
#!/bin/sh
echo "$*" >>/tmp/systemctl.log
case " $* " in
*" start "* | *" stop "* | *" restart "* | *" try-restart "* | *" daemon-reload "* | *" reload "*) exit 0 ;;
esac
exec /usr/bin/systemctl.real --root=/ "$@"
EOF
chmod 0755 "$root/usr/bin/systemctl"
rm "$root/usr/sbin/policy-rc.d"
calls() { grep -E "$1" "$root/tmp/systemctl.log" 2>/dev/null || true; }
run_step() {
	: >"$root/tmp/systemctl.log"
	out=$(in_root "$@" 2>&1) || fail "$* (systemd running): $out"
}
run_step dpkg -i /tmp/simgate.deb
[ -n "$(calls 'daemon-reload')" ] || fail "install did not reload systemd"
[ -z "$(calls 'start|restart')" ] || fail "first install started the service: $(calls 'start|restart')"
pass "install with systemd running: daemon-reload, and the service is not started"
run_step dpkg -i /tmp/simgate-up.deb
expect_eq "upgrade with systemd running restarts a running service" "try-restart simgate.service" "$(calls 'start|restart')"
run_step dpkg -r simgate
expect_eq "remove with systemd running stops the service" "stop simgate.service" "$(calls 'start|stop')"
run_step dpkg -P simgate
[ -z "$(calls 'start|restart')" ] || fail "purge started something: $(calls 'start|restart')"
[ -n "$(calls 'daemon-reload')" ] || fail "purge did not reload systemd"
pass "purge with systemd running: daemon-reload, nothing started"

echo "== $checks checks passed"

# --- 3. The package as a running service ------------------------------------
# The same package booted under a real systemd, with a simulated modem.
if [ "${CHECK_DEB_SERVICE:-1}" != 0 ]; then
	"$here/check-service.sh" "$deb" || fail "service check failed (packaging/check-service.sh $deb)"
fi
