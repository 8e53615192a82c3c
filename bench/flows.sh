#!/usr/bin/env bash
# flows.sh - what rlnet costs per held TCP flow (issue 15, acceptance 6):
# N outbound connections opened at once from the namespace to a server on
# the host's loopback and held; prints the time until all are open and
# rlnet's memory (VmRSS, VmHWM; rlnet and its children) while they are held.
#
#   usage (as root): RLNET=$PWD/target/release/rlnet \
#                    TESTKIT=$PWD/target/release/examples/testkit \
#                    [COUNTS="1000 5000 10000"] [REPS=1] [NOFILE=19000] \
#                    [BENCH_USER=tester] bash bench/flows.sh
#
# Everything runs as BENCH_USER inside a private user+network namespace
# ("the host", only its lo): the server (`testkit serve-tcp ... hold`), rlnet,
# and a namespace per count holding the clients (`testkit hold`). Traffic
# stays on that loopback. Every wait is bounded; only PIDs this script
# started are killed. RLIMIT_NOFILE is NOFILE for all of it (prlimit).
set -u -o pipefail

: "${RLNET:?set RLNET to the rlnet binary}"
: "${TESTKIT:?set TESTKIT to the testkit example binary}"
: "${BENCH_USER:=tester}"
: "${COUNTS:=1000 5000 10000}"
: "${REPS:=1}"
: "${NOFILE:=19000}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec prlimit --nofile="$NOFILE:$NOFILE" -- \
        setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" TESTKIT="$TESTKIT" COUNTS="$COUNTS" REPS="$REPS" \
        NOFILE="$NOFILE" PATH="$PATH" unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" != 1 ]; then
    exec env _INNER=1 unshare -rn bash "$(readlink -f "$0")"
fi

# shellcheck source=bench/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_host flows

# mem PID: "rss_kib hwm_kib" summed over PID and its children
mem() {
    local p r=0 h=0 v
    for p in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        v=$(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r+0, h+0}' "/proc/$p/status" 2>/dev/null) || continue
        r=$(( r + ${v% *} )); h=$(( h + ${v#* } ))
    done
    echo "$r $h"
}

one() { # N -> prints "N open_s rss_kib hwm_kib idle_rss_kib"
    local n=$1 ns rl srv port k t0 t1 line idle
    "$TESTKIT" serve-tcp 127.0.0.1:0 hold --count "$n" --timeout 120 > "$D/srv" 2>&1 & srv=$!
    pids+=("$srv")
    wait_line "$D/srv" "listening port=" || { echo "server did not start" >&2; return 1; }
    port=$(sed -n 's/.*listening port=\([0-9]*\).*/\1/p' "$D/srv")

    new_ns; ns=$NS
    rm -f "$D/ready"; mkfifo "$D/ready"
    "$RLNET" --mtu 65520 --ready-fd 3 "$ns" 3> "$D/ready" > "$D/rlnet.log" 2>&1 & rl=$!
    pids+=("$rl")
    read -r -t 20 -N 1 _ < "$D/ready" || { echo "rlnet not ready" >&2; sleep 1; cat "$D/rlnet.log" >&2; return 1; }
    idle=$(mem "$rl"); idle=${idle% *}

    coproc HOLD { in_ns "$ns" "$TESTKIT" hold "10.0.2.2:$port" "$n" --stdin --timeout 120 2>&1; }
    t0=$EPOCHREALTIME
    read -r -t 120 -u "${HOLD[0]}" line || line=""
    t1=$EPOCHREALTIME
    [ "$line" = "open=$n" ] || { echo "hold: ${line:-no answer}" >&2; return 1; }
    read -r rss hwm < <(mem "$rl")
    printf '%s %.3f %s %s %s\n' "$n" "$(echo "$t1 - $t0" | bc -l)" "$rss" "$hwm" "$idle"
    exec {HOLD[1]}>&-
    read -r -t 60 -u "${HOLD[0]}" line || true
    wait "$HOLD_PID" 2>/dev/null
    kill "$rl" "$ns" "$srv" 2>/dev/null
    wait "$rl" "$ns" "$srv" 2>/dev/null
    pids=()
}

echo "# flows open_s rss_kib hwm_kib idle_rss_kib (nofile $(ulimit -n))"
for r in $(seq "$REPS"); do
    for n in $COUNTS; do
        one "$n" || exit 1
    done
done
