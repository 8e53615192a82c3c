#!/usr/bin/env bash
# CI's packaging check (`make packaging-check`), as root on Debian 12:
#   man page lint; AppArmor profile parse; SELinux module compile; RPM spec
#   parse and source RPM from the vendored tarball; the .deb built, linted,
#   installed, its binary smoke-tested as an unprivileged user (network,
#   man page, completions), then purged so the machine is as before.
# The release build inside dpkg-buildpackage is the slow part (minutes);
# the build-root tests are skipped there (DEB_BUILD_OPTIONS=nocheck) because
# CI runs the whole suite with `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
    echo "packaging/ci/check.sh: must run as root (installs and removes the .deb)" >&2
    exit 1
fi

tools=(dpkg-dev debhelper dh-apparmor fakeroot lintian apparmor checkpolicy semodule-utils
       selinux-policy-dev rpm mandoc groff-base man-db bash-completion)
missing=()
for p in "${tools[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

step() { echo; echo "=== $*"; }

step "man page: mandoc -Tlint, groff -ww"
mandoc -Tlint -W warning man/rlnet.1
out=$(groff -ww -z -t -man man/rlnet.1 2>&1)
[ -z "$out" ] || { echo "$out"; echo "groff warned about man/rlnet.1" >&2; exit 1; }

step "AppArmor profile: apparmor_parser -Q -K ($(apparmor_parser --version | head -n 1))"
abi=3.0
[ -e /etc/apparmor.d/abi/4.0 ] && abi=4.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh packaging/apparmor/install-profile.sh packaging/apparmor/usr.bin.rlnet /usr/bin/rlnet "$abi" > "$tmp/usr.bin.rlnet"
apparmor_parser -Q -K "$tmp/usr.bin.rlnet"
echo "ABI $abi profile accepted"

step "SELinux module: checkmodule + semodule_package (make selinux)"
make --no-print-directory selinux
ls -l build/selinux/rlnet.pp

step "RPM: rpmspec -P, rpmbuild -bs from the vendored tarball (make srpm)"
rpmspec -P packaging/rpm/rlnet.spec > /dev/null
make --no-print-directory srpm
ls -l build/rpm/*.src.rpm
rpm -qpl build/rpm/*.src.rpm

step ".deb: make deb (dpkg-buildpackage -us -uc -b)"
make --no-print-directory deb DEB_BUILD_OPTIONS=nocheck
deb=$(ls build/deb/rlnet_*.deb)

step "lintian: no errors"
lintian --fail-on error --display-info "$deb" build/deb/*.changes

step "install the .deb"
apt-get -o DPkg::Lock::Timeout=600 install -y "./$deb"
trap 'apt-get -o DPkg::Lock::Timeout=600 purge -y rlnet >/dev/null || true; rm -rf "$tmp"' EXIT
dpkg -L rlnet
test "$(readlink -f /usr/libexec/rlnet/pasta)" = /usr/bin/rlnet
test "$(readlink -f /usr/libexec/rlnet/slirp4netns)" = /usr/bin/rlnet
apparmor_parser -Q -K /etc/apparmor.d/usr.bin.rlnet

step "smoke test: rlnet run as an unprivileged user, in a network namespace of its own"
# The outer namespace has only lo: rlnet answers the gateway's ping itself
# and nothing can leave the machine.
id rlnet-ci >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/sh rlnet-ci
uid=$(id -u rlnet-ci) gid=$(id -g rlnet-ci)
timeout 60 unshare --net -- setpriv --reuid="$uid" --regid="$gid" --init-groups -- \
    env -i PATH=/usr/bin:/bin HOME=/tmp \
    rlnet run -- sh -c 'ip -brief addr show tap0 && ping -c 1 -W 10 10.0.2.2'

step "man rlnet renders"
MANWIDTH=80 man rlnet > "$tmp/man.txt" 2> "$tmp/man.err"
[ ! -s "$tmp/man.err" ] || { cat "$tmp/man.err"; exit 1; }
# Not `tr | grep -q`: grep stopping at the match would leave tr to die of
# SIGPIPE, which pipefail turns into a failure (exit 141 on a loaded machine).
tr -s ' ' < "$tmp/man.txt" > "$tmp/man.squeezed"
grep -q 'rlnet - user-mode networking' "$tmp/man.squeezed"
head -n 8 "$tmp/man.txt"

step "bash completion: bash -n, and 'rlnet net<TAB>' completes to network"
bash -n /usr/share/bash-completion/completions/rlnet
words=$(bash -c '
    source /usr/share/bash-completion/bash_completion
    source /usr/share/bash-completion/completions/rlnet
    fn=$(complete -p rlnet | sed -n "s/.*-F \([^ ]*\).*/\1/p")
    COMP_WORDS=(rlnet net); COMP_CWORD=1; COMP_LINE="rlnet net"; COMP_POINT=${#COMP_LINE}
    "$fn" rlnet net rlnet
    printf "%s\n" "${COMPREPLY[@]}"')
echo "completions for 'rlnet net': $words"
grep -qx network <<< "$words"
test -s /usr/share/zsh/vendor-completions/_rlnet
test -s /usr/share/fish/vendor_completions.d/rlnet.fish

step "purge the .deb"
apt-get -o DPkg::Lock::Timeout=600 purge -y rlnet
trap 'rm -rf "$tmp"' EXIT
! test -e /usr/bin/rlnet
echo "packaging check passed"
