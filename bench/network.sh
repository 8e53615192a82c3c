#!/usr/bin/env bash
# network.sh - member-to-member throughput on an rlnet named network, side by
# side with raw loopback in the same run (issue 5, acceptance 6).
#
#   usage (as root): RLNET=$PWD/target/release/rlnet BENCH_USER=tester \
#                    [REPS=5] [DUR=5] [KIND=attach|run] bash bench/network.sh
#
# KIND=attach (the default) attaches two namespaces from outside: their
# TAPs are switched by rlnet in userspace. KIND=run starts them with
# `rlnet run --network`: they get veths on the network's bridge and are
# switched by the kernel (docs/kernel-switching.md).
#
# Everything runs as BENCH_USER inside a private user+network namespace
# ("the host"): the network daemon, two member namespaces a and b, and the
# raw-loopback baseline. Traffic stays on loopback or between the members.
# Each repetition measures, one after the other: loopback (iperf3 client and
# server on 127.0.0.1 in the outer namespace), a -> b over the network, and
# b -> a (iperf3 -R). Medians are printed with the ratio to loopback.
set -u -o pipefail

: "${RLNET:?set RLNET to the rlnet binary}"
: "${BENCH_USER:=tester}"
: "${REPS:=5}"
: "${DUR:=5}"
: "${KIND:=attach}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" REPS="$REPS" DUR="$DUR" KIND="$KIND" PATH="$PATH" \
        unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" = 1 ] && [ "${_OUTER:-}" != 1 ]; then
    # Not root: make the outer namespace ourselves.
    if [ "$(id -u)" -ne 0 ]; then
        exec env _INNER=1 _OUTER=1 unshare -rn bash "$(readlink -f "$0")"
    fi
fi

ip link set lo up
XDG_RUNTIME_DIR=$(mktemp -d /tmp/rlnet-bench.XXXXXX)
export XDG_RUNTIME_DIR
pids=()
cleanup() {
    "$RLNET" network rm --force bench >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$XDG_RUNTIME_DIR"
}
trap cleanup EXIT

"$RLNET" network create bench >/dev/null || exit 1
member_pid() { # name: the PID of a run member's command, from the daemon
    "$RLNET" network inspect --json bench |
        jq -r --arg n "$1" '.members[] | select(.name == $n) | .pid'
}
case "$KIND" in
attach)
    unshare -Urn sleep 3600 & A=$!; pids+=("$A")
    unshare -Urn sleep 3600 & B=$!; pids+=("$B")
    # Bounded wait for both holders to be in their namespaces.
    for _ in $(seq 100); do
        [ "$(readlink /proc/$A/ns/net)" != "$(readlink /proc/self/ns/net)" ] &&
            [ "$(readlink /proc/$B/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.05
    done
    "$RLNET" attach --network bench --name a "$A" >/dev/null || exit 1
    "$RLNET" attach --network bench --name b "$B" >/dev/null || exit 1
    ;;
run)
    "$RLNET" run --network bench --name a -- sleep 3600 & pids+=("$!")
    "$RLNET" run --network bench --name b -- sleep 3600 & pids+=("$!")
    A='' B=''
    for _ in $(seq 100); do
        A=$(member_pid a) B=$(member_pid b)
        [ -n "$A" ] && [ -n "$B" ] && break
        sleep 0.05
    done
    [ -n "$A" ] && [ -n "$B" ] || { echo "run members did not join" >&2; exit 1; }
    ;;
*) echo "KIND must be attach or run, not $KIND" >&2; exit 1 ;;
esac
in_ns() { local p=$1; shift; nsenter -U -n -t "$p" --preserve-credentials "$@"; }
IPB=$(in_ns "$B" ip -4 -br addr show tap0 | awk '{print $3}' | cut -d/ -f1)

gbps() { jq -r '.end.sum_received.bits_per_second / 1e9' 2>/dev/null; }
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

iperf_server() { # ns-runner... ; starts a one-off server, prints its PID
    "$@" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    echo $!
}
wait_port() { # ns-runner... : bounded wait for 5201 to listen
    for _ in $(seq 200); do
        "$@" ss -Hltn 'sport = :5201' | grep -q . && return 0
        sleep 0.02
    done
    return 1
}

lo=() ab=() ba=()
for r in $(seq "$REPS"); do
    s=$(iperf_server env); wait_port env
    lo+=("$(iperf3 -c 127.0.0.1 -p 5201 -t "$DUR" -J | gbps)"); wait "$s" 2>/dev/null
    s=$(iperf_server in_ns "$B"); wait_port in_ns "$B"
    ab+=("$(in_ns "$A" iperf3 -c "$IPB" -p 5201 -t "$DUR" -J | gbps)"); wait "$s" 2>/dev/null
    s=$(iperf_server in_ns "$B"); wait_port in_ns "$B"
    ba+=("$(in_ns "$A" iperf3 -c "$IPB" -p 5201 -t "$DUR" -R -J | gbps)"); wait "$s" 2>/dev/null
    echo "rep $r: loopback ${lo[-1]} Gbit/s, a->b ${ab[-1]}, b->a ${ba[-1]}" >&2
done
L=$(printf '%s\n' "${lo[@]}" | median)
AB=$(printf '%s\n' "${ab[@]}" | median)
BA=$(printf '%s\n' "${ba[@]}" | median)
printf '%s members, median of %s x %ss: loopback %.2f Gbit/s; a->b %.2f (%.2fx); b->a %.2f (%.2fx)\n' \
    "$KIND" "$REPS" "$DUR" "$L" "$AB" "$(echo "$AB / $L" | bc -l)" "$BA" "$(echo "$BA / $L" | bc -l)"
