#!/usr/bin/env bash
# Offline checks of the files in systemd/ (no running systemd needed, PID 1 can be anything).
#
#   systemd/verify.sh            # exit 0 = all good; any failure or warning exits 1
#   VERBOSE=1 systemd/verify.sh  # also print the `systemd-analyze security` summary
#
# 1. `systemd-analyze verify` of dovecot.service + dovecot.socket, and again with the example
#    drop-in (examples/dovecot.service.d/mariadb.conf) against a stub mariadb.service. It runs
#    with --root=<temp dir> holding stub executables at the ExecStart/ExecReload/ExecStop paths
#    and a copy of the host's system units, so neither Dovecot nor dovecote must be installed.
#    systemd-analyze only *warns* (rc 0) about unknown keys and bad values, so any stderr output
#    is a failure.
# 2. `systemd-sysusers --root=<temp dir>` on sysusers.d/dovecot.conf: users/groups as intended.
# 3. `systemd-tmpfiles --root=<same dir> --create` on tmpfiles.d/dovecot.conf: nothing on
#    stderr, directories with the intended modes and owners.
# Needs: systemd (systemd-analyze, systemd-sysusers, systemd-tmpfiles), coreutils. Not root.
set -u
here=$(cd "$(dirname "$0")" && pwd)
fail=0
err() { echo "verify.sh: FAIL: $*" >&2; fail=1; }
ok() { echo "verify.sh: ok: $*"; }

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
    command -v "$tool" >/dev/null || { echo "verify.sh: $tool not found (apt-get install systemd)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dovecote-systemd.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- 1. systemd-analyze verify ------------------------------------------------------------
make_root() { # $1 = root dir
    local r=$1 unitdir=/usr/lib/systemd/system
    mkdir -p "$r/etc/systemd/system" "$r/usr/lib/systemd" "$r/bin"
    [ -d "$unitdir" ] || unitdir=/lib/systemd/system
    cp -a "$unitdir" "$r/usr/lib/systemd/"
    # Every executable our units (and the stub below) reference, as stubs.
    local exe
    for exe in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' \
                    "$here/dovecot.service" "$here/dovecot.socket") /bin/true; do
        mkdir -p "$r$(dirname "$exe")"
        printf '#!/bin/sh\nexit 0\n' >"$r$exe"
        chmod 0755 "$r$exe"
    done
    cp "$here/dovecot.service" "$here/dovecot.socket" "$r/etc/systemd/system/"
}

run_verify() { # $1 = label, $2 = root, rest = units
    local label=$1 r=$2; shift 2
    local out rc
    out=$(systemd-analyze verify --man=no --generators=no --root="$r" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        err "systemd-analyze verify ($label) rc=$rc:"
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        return 1
    fi
    ok "systemd-analyze verify ($label): rc=0, nothing on stderr"
}

r1=$tmp/root-plain
make_root "$r1"
run_verify "dovecot.service dovecot.socket" "$r1" dovecot.service dovecot.socket

r2=$tmp/root-mariadb
make_root "$r2"
mkdir -p "$r2/etc/systemd/system/dovecot.service.d"
cp "$here/examples/dovecot.service.d/mariadb.conf" "$r2/etc/systemd/system/dovecot.service.d/"
printf '[Unit]\nDescription=stub MariaDB for verify.sh\n[Service]\nExecStart=/bin/true\n' \
    >"$r2/etc/systemd/system/mariadb.service"
run_verify "dovecot.service + mariadb.conf drop-in" "$r2" dovecot.service dovecot.socket

# Self-test of the harness: a warning-only mistake must be caught.
r3=$tmp/root-selftest
make_root "$r3"
echo 'ProtectSystem=bogus' >>"$r3/etc/systemd/system/dovecot.service"
if (run_verify "self-test, must fail" "$r3" dovecot.service >/dev/null 2>&1); then
    err "harness self-test: a bad value was not reported on stderr by systemd-analyze"
else
    ok "harness self-test: a bad value is caught"
fi

if [ "${VERBOSE:-0}" = 1 ]; then
    systemd-analyze security --offline=yes --root="$r1" dovecot.service 2>&1 | tail -n 1
fi

# --- 2. sysusers ----------------------------------------------------------------------------
sr=$tmp/root-users
mkdir -p "$sr/etc"
out=$(systemd-sysusers --root="$sr" "$here/sysusers.d/dovecot.conf" 2>&1); rc=$?
# systemd-sysusers logs each "Creating user/group ..." on stderr; anything else is a problem.
bad=$(printf '%s\n' "$out" | grep -v -e '^Creating group ' -e '^Creating user ' -e '^$')
if [ $rc -ne 0 ] || [ -n "$bad" ]; then
    err "systemd-sysusers rc=$rc:"; printf '%s\n' "$out" | sed 's/^/    /' >&2
else
    ok "systemd-sysusers: rc=0"
fi
pw() { awk -F: -v n="$1" -v f="$2" '$1 == n { print $f }' "$sr/etc/passwd"; }
gr() { awk -F: -v n="$1" -v f="$2" '$1 == n { print $f }' "$sr/etc/group"; }
[ "$(pw dovecot 3)" = 97 ] && [ "$(pw dovecot 4)" = "$(gr dovecot 3)" ] && [ "$(gr dovecot 3)" = 97 ] \
    && ok "sysusers: dovecot 97:97 (group dovecot)" || err "sysusers: dovecot is $(pw dovecot 3):$(pw dovecot 4), want 97:97"
dn_gid=$(gr dovenull 3)
[ -n "$(pw dovenull 3)" ] && [ -n "$dn_gid" ] && [ "$(pw dovenull 4)" = "$dn_gid" ] && [ "$dn_gid" != 97 ] \
    && ok "sysusers: dovenull $(pw dovenull 3):$dn_gid (own group dovenull)" \
    || err "sysusers: dovenull is $(pw dovenull 3):$(pw dovenull 4), want its own group"
grep -q '^vmail:' "$sr/etc/passwd" && err "sysusers: vmail must be left to the administrator"
mkdir -p "$tmp/root-dry/etc"
dry=$(systemd-sysusers --dry-run --root="$tmp/root-dry" "$here/sysusers.d/dovecot.conf" 2>&1 >/dev/null | grep -v -e '^Creating ' -e '^Would write ')
[ -z "$dry" ] || err "systemd-sysusers --dry-run: unexpected output: $dry"

# --- 3. tmpfiles (uses the users created above) ----------------------------------------------
out=$(systemd-tmpfiles --root="$sr" --create "$here/tmpfiles.d/dovecot.conf" 2>&1); rc=$?
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    err "systemd-tmpfiles --create rc=$rc:"; printf '%s\n' "$out" | sed 's/^/    /' >&2
else
    ok "systemd-tmpfiles --create: rc=0, nothing on stderr"
fi
want() { # path mode uid gid
    local got
    got=$(stat -c '%a %u %g' "$sr$1" 2>/dev/null)
    [ "$got" = "$2 $3 $4" ] && ok "tmpfiles: $1 $got" || err "tmpfiles: $1 is '${got:-missing}', want '$2 $3 $4'"
}
dc_uid=$(pw dovecot 3); dc_gid=$(gr dovecot 3)
want /run/dovecot 755 0 "$dc_gid"
want /run/dovecot/login 750 0 "$dn_gid"
want /run/dovecot/token-login 750 0 "$dn_gid"
want /run/dovecot/empty 755 0 0
want /var/lib/dovecot 750 "$dc_uid" "$dc_gid"

if [ $fail -ne 0 ]; then echo "verify.sh: FAILED" >&2; exit 1; fi
echo "verify.sh: all checks passed"
