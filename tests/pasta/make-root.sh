#!/usr/bin/env bash
# make-root.sh - the Debian 13 (trixie) root in which tests/compat_pasta.rs runs rootless
# Podman 5.4 and RootlessKit 2.0.2 with a pasta (the real one from passt, or rlnet's).
#
# usage (as root):  bash tests/pasta/make-root.sh
#   RLNET_DEBIAN_SUITE  the Debian suite (default trixie; `sid` has the newest Podman, 5.8.6
#                       in December 2026: the same tests then run against it, see docs/compat.md)
#   RLNET_TRIXIE_ROOT  where the root lives (default /var/lib/rlnet-ci/SUITE-root)
#   RLNET_DEBIAN_MIRROR  Debian archive (default http://deb.debian.org/debian)
#
# Debian 12 has Podman 4.3 and RootlessKit 1.1, which cannot run pasta the way current
# callers do; trixie's builds need glibc >= 2.38, so they run inside this root. The tests
# enter it with a private mount namespace and pivot_root (rootless Podman cannot run under
# plain chroot: the kernel refuses user namespaces there) and bind the host's /etc/passwd,
# /etc/group, /etc/subuid and /etc/subgid over the root's, so the root holds no users.
#
# The root is built once and reused: the stamp file records the package list it was made
# with; a root with another (or no) stamp is removed and made again. The build goes into
# ROOT.new and is renamed at the end, so an interrupted build is never reused.
set -euo pipefail

SUITE=${RLNET_DEBIAN_SUITE:-trixie}
case $SUITE in
*[!a-z]* | "") echo "make-root.sh: RLNET_DEBIAN_SUITE=$SUITE is not a Debian suite name (e.g. trixie, sid)" >&2; exit 1 ;;
esac
ROOT=${RLNET_TRIXIE_ROOT:-/var/lib/rlnet-ci/$SUITE-root}
MIRROR=${RLNET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the tests run (podman, pasta, rootlesskit; Podman's runtime runc, conmon, catatonit
# for the pause process, netavark + aardvark-dns for `podman network create` with name
# resolution, nftables because trixie's netavark drives `nft`, uidmap for newuidmap),
# busybox-static for the container image, iproute2 and util-linux (setpriv, nsenter,
# unshare) for the harness inside the root.
PACKAGES="podman passt rootlesskit runc conmon catatonit netavark aardvark-dns nftables uidmap busybox-static iproute2 util-linux"
STAMP_NAME=.rlnet-ci-root
STAMP="$SUITE minbase: $PACKAGES; image v1; hosts"
IMAGE_DIR=/opt/rlnet-ci

if [ "$(id -u)" != 0 ]; then
	echo "make-root.sh: must run as root (debootstrap)" >&2
	exit 1
fi
if [ -f "$ROOT/$STAMP_NAME" ] && [ "$(cat "$ROOT/$STAMP_NAME")" = "$STAMP" ]; then
	echo "make-root.sh: reusing $ROOT" >&2
	exit 0
fi

command -v debootstrap >/dev/null || {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends debootstrap
}

start=$(date +%s)
new=$ROOT.new
mkdir -p "$(dirname "$ROOT")"
# An interrupted debootstrap may leave its /proc and /sys mounts in the new root (the tests
# mount nothing here: their mounts live in their own mount namespaces).
awk -v p="$new/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r |
	while read -r m; do umount -l "$m"; done
rm -rf --one-file-system "$new"
log=$(dirname "$ROOT")/debootstrap.log
echo "make-root.sh: debootstrap $SUITE into $new (log: $log)" >&2
if ! debootstrap --variant=minbase --include="${PACKAGES// /,}" \
	"$SUITE" "$new" "$MIRROR" >"$log" 2>&1; then
	tail -30 "$log" >&2
	echo "make-root.sh: debootstrap failed (see $log)" >&2
	exit 1
fi

# The container image: busybox-static with its applets, plus the root's glibc loader and
# the libraries the test helper (target/debug/examples/testkit, bound into containers at
# run time) links against, so containers can run it. Imported by each test into its own
# private storage with `podman import`.
img=$(mktemp -d)
mkdir -p "$img/bin" "$img/lib64" "$img/lib/x86_64-linux-gnu" "$img/tmp" "$img/etc"
chmod 1777 "$img/tmp"
cp "$new/bin/busybox" "$img/bin/busybox"
for a in $("$new/bin/busybox" --list); do
	[ "$a" = busybox ] || ln -s busybox "$img/bin/$a"
done
lib=$new/usr/lib/x86_64-linux-gnu
cp -L "$lib/ld-linux-x86-64.so.2" "$img/lib64/"
for l in libc.so.6 libm.so.6 libgcc_s.so.1; do
	cp -L "$lib/$l" "$img/lib/x86_64-linux-gnu/"
done
mkdir -p "$new$IMAGE_DIR"
tar --owner=0 --group=0 --numeric-owner -C "$img" -cf "$new$IMAGE_DIR/image.tar" .
rm -rf "$img"

# Mount points the harness binds onto (the build directory, the pasta under test).
mkdir -p "$new/run/rlnet-build" "$new/run/rlnet-pasta"
# The harness binds its own resolv.conf over this one. debootstrap writes no /etc/hosts
# (the installer does); Podman copies it into containers, RootlessKit's child needs it.
: >"$new/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$new/etc/hosts"
# Downloaded packages are not needed any more.
rm -f "$new"/var/cache/apt/archives/*.deb "$new"/var/lib/apt/lists/*_Packages

echo "$STAMP" >"$new/$STAMP_NAME"
rm -rf --one-file-system "$ROOT"
mv "$new" "$ROOT"
chroot "$ROOT" dpkg-query -W -f '${Package} ${Version}\n' podman passt rootlesskit runc netavark >&2
echo "make-root.sh: $ROOT ready in $(($(date +%s) - start)) s ($(du -sh "$ROOT" | cut -f1))" >&2
