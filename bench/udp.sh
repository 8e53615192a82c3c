#!/usr/bin/env bash
# udp.sh - outbound UDP loss through rlnet and where the datagrams are lost
# (issue 15, acceptance 4): iperf3 -u from the namespace to a server on the
# host's loopback through the gateway 10.0.2.2, as peers.sh measures it.
#
#   usage (as root): RLNET=$PWD/target/release/rlnet [RATE=2G] [LEN=1400] \
#                    [DUR=3] [REPS=3] [BENCH_USER=tester] bash bench/udp.sh
#
# MODE=tcp (or tcp-R, host -> namespace) runs one bulk TCP flow the same way
# instead and prints its Gbit/s: the check that a flow still reaches full
# speed.
#
# Each repetition prints iperf3's loss and the counters that say where the
# datagrams went: the namespace's tap0 TX drops (the TAP queue was full: rlnet
# did not read fast enough) and the host side's UDP counters from
# /proc/net/snmp (SndbufErrors: rlnet's sends refused; RcvbufErrors: the
# iperf3 server's receive queue overflowed). Everything runs as BENCH_USER
# inside a private user+network namespace ("the host", only its lo); traffic
# stays on that loopback. Waits are bounded; only its own PIDs are killed.
set -u -o pipefail

: "${RLNET:?set RLNET to the rlnet binary}"
: "${BENCH_USER:=tester}"
: "${RATE:=2G}"
: "${LEN:=1400}"
: "${DUR:=3}"
: "${REPS:=3}"
: "${UDP_ARGS:=-w 4M}"
: "${MODE:=udp}"         # udp | tcp | tcp-R
: "${TXQLEN:=}"        # if set: the namespace's tap0 txqueuelen (an experiment; default rlnet's)
: "${PERF_STAT:=}"     # e.g. "-e instructions,cycles": perf stat on rlnet during each run
: "${KIND:=rlnet}"       # rlnet | pasta: RLNET is a pasta (rlnet's link or pasta itself), run as peers.sh runs it

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" RATE="$RATE" LEN="$LEN" DUR="$DUR" REPS="$REPS" \
        UDP_ARGS="$UDP_ARGS" PERF_STAT="$PERF_STAT" KIND="$KIND" TXQLEN="$TXQLEN" MODE="$MODE" PATH="$PATH" unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" != 1 ]; then
    exec env _INNER=1 unshare -rn bash "$(readlink -f "$0")"
fi

# shellcheck source=bench/lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"
bench_host udp

# udp_mib FIELD: the Udp FIELD of this namespace's /proc/net/snmp
udp_mib() { awk -v f="$1" '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c[f] }' /proc/net/snmp; }
tap_drops() { in_ns "$1" ip -j -s link show "$tapname" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["dropped"])'; }

new_ns
mkfifo "$D/ready"
if [ "$KIND" = pasta ]; then
    # As peers.sh runs pasta; ready once tap0 has its address (bounded wait).
    "$RLNET" -f -4 --config-net -a 10.0.2.100 -n 24 -g 10.0.2.2 -m 65520 -t none -u none \
        -T none -U none "$NS" > "$D/rlnet.log" 2>&1 & RL=$!; pids+=("$RL")
    for (( k = 0; k < 500; k++ )); do
        in_ns "$NS" ip -4 -o addr show 2>/dev/null | grep -q 10.0.2.100 && break
        sleep 0.02
    done
    in_ns "$NS" ip -4 -o addr show | grep -q 10.0.2.100 || { echo "pasta not ready" >&2; cat "$D/rlnet.log" >&2; exit 1; }
    tapname=$(in_ns "$NS" ip -o -4 addr show | awk '$4 ~ /^10.0.2.100/ {print $2}')
else
    "$RLNET" --mtu 65520 --ready-fd 3 "$NS" 3> "$D/ready" > "$D/rlnet.log" 2>&1 & RL=$!; pids+=("$RL")
    read -r -t 20 -N 1 _ < "$D/ready" || { echo "rlnet not ready" >&2; cat "$D/rlnet.log" >&2; exit 1; }
    tapname=tap0
fi

[ -n "$TXQLEN" ] && in_ns "$NS" ip link set "$tapname" txqueuelen "$TXQLEN"
echo "# $KIND, $tapname txqueuelen $(in_ns "$NS" ip -j link show "$tapname" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0].get("txqlen"))')"
echo "# rate=$RATE len=$LEN dur=${DUR}s args=$UDP_ARGS rlnet_pid=$RL"
echo "# rep loss_pct sent tap_tx_dropped host_sndbuf_err host_rcvbuf_err rlnet_cpu_ticks"
for r in $(seq "$REPS"); do
    # shellcheck disable=SC2086
    iperf3 -s -1 -B 127.0.0.1 -p 5201 > "$D/srv.log" 2>&1 & S=$!; pids+=("$S")
    for (( k = 0; k < 250; k++ )); do ss -Hltn 'sport = :5201' | grep -q . && break; sleep 0.02; done
    tap0=$(tap_drops "$NS"); snd0=$(udp_mib SndbufErrors); rcv0=$(udp_mib RcvbufErrors)
    cpu0=$(awk '{print $14 + $15}' "/proc/$RL/stat")
    P=""
    if [ -n "$PERF_STAT" ]; then
        # shellcheck disable=SC2086
        perf stat $PERF_STAT -p "$RL" -o "$D/perf.$r" -- sleep "$DUR" & P=$!; pids+=("$P")
    fi
    if [ "$MODE" != udp ]; then
        # shellcheck disable=SC2046
        in_ns "$NS" timeout $(( DUR + 20 )) iperf3 $([ "$MODE" = tcp-R ] && echo -R) \
            -c 10.0.2.2 -p 5201 -t "$DUR" -J > "$D/cli.json" 2>&1
        wait "$S" 2>/dev/null
        cpu1=$(awk '{print $14 + $15}' "/proc/$RL/stat")
        echo "$r $MODE $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9)' "$D/cli.json") Gbit/s, rlnet cpu ticks $(( cpu1 - cpu0 ))"
        continue
    fi
    # shellcheck disable=SC2086
    in_ns "$NS" timeout $(( DUR + 20 )) iperf3 -u -b "$RATE" -l "$LEN" $UDP_ARGS \
        -c 10.0.2.2 -p 5201 -t "$DUR" -J > "$D/cli.json" 2>&1 || { head -c 600 "$D/cli.json" >&2; cat "$D/srv.log" >&2; }
    wait "$S" 2>/dev/null
    [ -n "$P" ] && { wait "$P"; grep -E "instructions|cycles|task-clock" "$D/perf.$r" | sed 's/^/#   /'; }
    cpu1=$(awk '{print $14 + $15}' "/proc/$RL/stat")
    read -r loss sent < <(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]["sum"]
print(e.get("lost_percent"), e.get("packets"))' "$D/cli.json" 2>/dev/null || echo "null null")
    echo "$r $loss $sent $(( $(tap_drops "$NS") - tap0 )) $(( $(udp_mib SndbufErrors) - snd0 ))" \
        "$(( $(udp_mib RcvbufErrors) - rcv0 )) $(( cpu1 - cpu0 ))"
done
