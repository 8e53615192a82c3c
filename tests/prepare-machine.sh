#!/usr/bin/env bash
# Prepare a Debian 12 machine for rlnet's full test suite, the way a
# distribution would have it: install the tools the tests drive, make
# /dev/net/tun usable by users and create the unprivileged user the
# compatibility tests run Podman, RootlessKit and Buildah as.
#
# Run as root. `make test` runs this, then the suite; `.ci/run` runs
# `make test`. Idempotent: a second run installs and changes nothing.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "tests/prepare-machine.sh: must run as root (it installs packages and creates a user): sudo make test" >&2
    exit 1
fi

# iproute2/util-linux/iputils-ping: namespaces, addresses and ping in the e2e
# tests; the peers (slirp4netns, passt, rootlesskit, podman) and iperf3,
# socat, ncat, jq for the compatibility and benchmark scripts; podman, runc,
# catatonit, netavark, buildah, rootlesskit, uidmap and busybox-static for the
# compatibility tests with real callers (tests/compat_*.rs; crun fails on this
# machine's hybrid cgroup layout, so they use runc; catatonit and netavark are
# only recommended by podman, and the tests need Podman's usual setup;
# Debian 12's netavark drives iptables, which nothing else pulls in without
# recommends: without it every bridge-network `podman run` fails); curl to
# download slirp4netns's test scripts (below).
packages=(
    iproute2 util-linux iputils-ping procps
    iperf3 socat ncat jq busybox-static uidmap
    slirp4netns passt rootlesskit podman runc catatonit netavark iptables buildah
    curl ca-certificates
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

# Distributions ship /dev/net/tun world read/write; some machines have 0600.
chmod 0666 /dev/net/tun

# The compatibility tests run Podman, RootlessKit and Buildah as this
# unprivileged user, which needs subordinate uid/gid ranges (useradd adds them
# on Debian; otherwise a range above SUB_UID_MAX, which useradd never hands out).
if ! id rlnet-ci >/dev/null 2>&1; then
    useradd --create-home --user-group --shell /bin/sh rlnet-ci
fi
for f in /etc/subuid /etc/subgid; do
    grep -q '^rlnet-ci:' "$f" 2>/dev/null || echo 'rlnet-ci:700000000:65536' >> "$f"
done
# The pasta compatibility tests (tests/compat_pasta.rs, issue 12): Podman 5.4 and
# RootlessKit 2.0.2 run pasta the way current callers do; Debian 12 has neither, so
# they come from a Debian 13 root that tests/pasta/make-root.sh makes with debootstrap
# (about 3 minutes and 320 MB the first time, at /var/lib/rlnet-ci/trixie-root or
# RLNET_TRIXIE_ROOT) and reuses while its package list is unchanged.
for p in debootstrap debian-archive-keyring; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends debootstrap debian-archive-keyring
        break
    fi
done
bash "$(dirname "$0")/pasta/make-root.sh"

# slirp4netns's own test scripts (tests/compat_slirp4netns_scripts.rs runs
# them against rlnet): upstream's tests/ at v1.3.2, checked file by file
# against the SHA-256 sums that test holds. They come from Debian's archive
# (CI reaches the package registries only, not GitHub): the source tarball of
# Debian's slirp4netns 1.3.3, whose tests/ is v1.3.2's unchanged, checked
# against its own SHA-256 first.
s4n_dir=/var/lib/rlnet-ci/slirp4netns-v1.3.2
s4n_tar=slirp4netns_1.3.3.orig.tar.gz
s4n_sum=2422cd6869da0374943ba8f01425fe50a49a29138ddead0e0fedbe3aa22aa483
if [ ! -f "$s4n_dir/tests/common.sh" ]; then
    tmp=$(mktemp -d)
    curl -fsSL --retry 3 -o "$tmp/$s4n_tar" "http://deb.debian.org/debian/pool/main/s/slirp4netns/$s4n_tar"
    echo "$s4n_sum  $tmp/$s4n_tar" | sha256sum -c --quiet -
    mkdir -p "$s4n_dir"
    tar -xzf "$tmp/$s4n_tar" -C "$s4n_dir" --strip-components=1 --wildcards '*/tests/*'
    rm -rf "$tmp"
    chmod -R a+rX "$s4n_dir"
fi

echo "tests/prepare-machine.sh: machine ready (test tools installed, /dev/net/tun 0666, user rlnet-ci with subordinate ids, the Debian 13 root, slirp4netns's test scripts in $s4n_dir)"
