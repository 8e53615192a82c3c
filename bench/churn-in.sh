#!/usr/bin/env bash
# churn-in.sh - connection churn into a published port, sustained: one
# client on the host's loopback makes N connections one after another
# (connect, 64-byte echo, close) to a port published into the namespace, for
# each helper in HELPERS. Prints the rate, the failures, and how many
# TIME_WAIT sockets the namespace holds afterwards: a spliced connection is
# made by a socket inside the namespace to the namespace's own address, so
# each one the client closes leaves a TIME_WAIT there, keyed by a port of the
# namespace's ephemeral range (28,232 by default, for 60 s), and the
# namespace's connects slow down as that range fills.
#
#   usage (as root): TESTKIT=$PWD/target/release/examples/testkit \
#                    HELPERS="rlnet:$PWD/target/release/rlnet pasta:/tmp/pasta-link/pasta \
#                             pasta:/opt/peers-sid/bin/pasta" \
#                    [N=100000] [SECS=25] [EXTRA_PASTA=] [REPS=1] \
#                    [BENCH_USER=tester] bash bench/churn-in.sh
#
# KIND:BIN: `rlnet` runs BIN --publish 127.0.0.1:17000:7000 (the stack
# path: the service sees the client's address); `pasta` runs BIN as pasta
# with -t 127.0.0.1/17000:7000 (a loopback client takes the splice path),
# plus EXTRA_PASTA (e.g. --host-lo-to-ns-lo, --no-splice). Each run stops
# after N connections or SECS seconds, whichever comes first.
#
# Everything runs as BENCH_USER inside a private user+network namespace
# ("the host", only its lo); traffic stays on that loopback and in the
# namespaces made here. Waits are bounded; only its own PIDs are killed.
set -u -o pipefail

: "${TESTKIT:?set TESTKIT to the testkit example binary}"
: "${HELPERS:?set HELPERS to KIND:BIN ...}"
: "${BENCH_USER:=tester}"
: "${N:=100000}"
: "${SECS:=25}"
: "${EXTRA_PASTA:=}"
: "${REPS:=1}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 TESTKIT="$TESTKIT" HELPERS="$HELPERS" N="$N" SECS="$SECS" \
        EXTRA_PASTA="$EXTRA_PASTA" REPS="$REPS" PATH="$PATH" unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" != 1 ]; then
    exec env _INNER=1 unshare -rn bash "$(readlink -f "$0")"
fi

# shellcheck source=bench/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_host churnin

one() { # KIND BIN -> "kind bin conns failed secs per_s ns_time_wait"
    local kind=$1 bin=$2 ns h k out tw
    new_ns; ns=$NS
    in_ns "$ns" ip link set lo up
    in_ns "$ns" "$TESTKIT" serve-tcp 0.0.0.0:7000 echo --count "$(( N + 200 ))" --timeout 600 > "$D/srv" 2>&1 &
    pids+=("$!")
    wait_line "$D/srv" "listening port=" || { echo "server did not start" >&2; return 1; }
    case "$kind" in
    rlnet) "$bin" --mtu 65520 --publish 127.0.0.1:17000:7000 "$ns" > "$D/helper.log" 2>&1 & h=$! ;;
    # shellcheck disable=SC2086
    pasta) "$bin" -f -4 --config-net -a 10.0.2.100 -n 24 -g 10.0.2.2 -m 65520 \
               -t 127.0.0.1/17000:7000 -u none -T none -U none $EXTRA_PASTA "$ns" > "$D/helper.log" 2>&1 & h=$! ;;
    *) echo "unknown kind $kind" >&2; return 1 ;;
    esac
    pids+=("$h")
    # Ready: one cycle through the published port (bounded; the server
    # serves N + 200, so the probes leave it N).
    for (( k = 0; k < 200; k++ )); do
        "$TESTKIT" crr 127.0.0.1:17000 1 --timeout 2 > /dev/null 2>&1 && break
        sleep 0.05
    done
    out=$(timeout $(( SECS + 30 )) "$TESTKIT" crr 127.0.0.1:17000 "$N" --keep-going \
        --timeout 5 --max-secs "$SECS" 2>&1 | grep -m1 'ok=')
    tw=$(in_ns "$ns" ss -Htan state time-wait | wc -l)
    echo "$kind $(basename "$(dirname "$bin")")/$(basename "$bin") $(echo "$out" | sed -n 's/.*n=\([0-9]*\).*failed=\([0-9]*\).*secs=\([0-9.]*\).*per_s=\([0-9.]*\).*/\1 \2 \3 \4/p') $tw"
    kill "$h" "$ns" 2>/dev/null
    wait "$h" "$ns" 2>/dev/null
    kill "${pids[@]}" 2>/dev/null
    pids=()
}

echo "# kind helper conns failed secs per_s ns_time_wait (N=$N, at most ${SECS}s; pasta extra: ${EXTRA_PASTA:-none})"
for r in $(seq "$REPS"); do
    for spec in $HELPERS; do
        one "${spec%%:*}" "${spec#*:}" || exit 1
    done
done
