# shellcheck shell=bash
# lib.sh - what the bench scripts share, sourced once they run as
# BENCH_USER inside their private user+network namespace ("the host", only
# its lo): `bench_host TAG` brings lo up, makes the work directory $D and
# kills the PIDs in $pids (only those the script started) at exit.

bench_host() {
    ip link set lo up
    D=$(mktemp -d "/tmp/rlnet-$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$D"
}

# in_ns PID CMD...: CMD in the user+network namespace of PID
in_ns() { local p=$1; shift; nsenter -U -n -t "$p" --preserve-credentials "$@"; }

# wait_line FILE PATTERN: bounded wait (20 s) until FILE has a line matching PATTERN
wait_line() {
    local k
    for (( k = 0; k < 1000; k++ )); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.02
    done
    return 1
}

# new_ns: a holder in a fresh user+network namespace (the one a helper
# serves), in $NS and $pids, once its namespace exists (bounded wait)
new_ns() {
    local k
    unshare -Urn sleep 3600 & NS=$!; pids+=("$NS")
    for (( k = 0; k < 100; k++ )); do
        [ "$(readlink "/proc/$NS/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.02
    done
}
