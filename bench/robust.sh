#!/usr/bin/env bash
# robust.sh - rlnet under load and abuse (issue 13, acceptance 5):
#   held   for each OUT:IN in HELD, OUT outbound flows (namespace -> a server
#          on the host's loopback via 10.0.2.2) and IN inbound flows (host ->
#          a published port -> a server in the namespace) opened and held at
#          once: seconds until each side is open, rlnet's memory (VmRSS, VmHWM; rlnet and its children) idle
#          and while held, its fds and its tcp_flows counter, fds after.
#   churn  `testkit crr` (connect, 64-byte echo, close) out of the namespace
#          for CHURN_SECS by CLIENTS clients: connections/s, failures, rlnet's
#          fds before, at the peak and at the end of churn, and after (with
#          the seconds until back to the baseline).
#   syn    a SYN flood from the namespace (`testkit spoof tap0 ... --syn`,
#          raw SYNs from thousands of source ports to a host server through
#          the gateway) while a legitimate `testkit crr --keep-going` from
#          the namespace connects: ok/failed attempts, success %, SYNs sent,
#          rlnet's RSS and fds during and after, and the namespace TAP's
#          tx/dropped counters (a frame the TAP has no room for is dropped
#          by the namespace's own kernel before any helper can read it).
#   synnet the same flood from member a of a named network while a client
#          in member b connects through b's gateway: what the flood costs
#          the other namespaces the daemon serves.
#
#   usage (as root): RLNET=$PWD/target/release/rlnet \
#                    TESTKIT=$PWD/target/release/examples/testkit \
#                    [PHASES="held churn syn synnet"] [REPS=1] [HELD="10000:10000"] \
#                    [CHURN_SECS=60] [CLIENTS=1] [CHURN_PORTS=8] [SYN_TRIES=200] \
#                    [SYN_TIMEOUT=2] [NOFILE=<the hard limit>] \
#                    [BENCH_USER=tester] bash bench/robust.sh
#
# Each held flow costs rlnet one fd on the host side, so 10,000 each way at
# once needs NOFILE above 20,000 plus rlnet's own few dozen; where the hard
# limit is lower and cannot be raised (no CAP_SYS_RESOURCE), measure each way
# alone and both at once as close as the limit allows, e.g.
# HELD="10000:0 0:10000 9950:9950".
#
# Everything runs as BENCH_USER inside a private user+network namespace
# ("the host", only its lo): the servers, rlnet, and a namespace per run that
# rlnet serves (with the clients or servers inside it). Traffic stays on that
# loopback and in that namespace. Every wait and loop is bounded in count and
# time; only PIDs this script started are killed. RLIMIT_NOFILE is NOFILE for
# all of it (prlimit). A bench, not a test: it prints figures and fails only
# when a run cannot be set up or does not finish.
set -u -o pipefail

: "${RLNET:?set RLNET to the rlnet binary}"
: "${TESTKIT:?set TESTKIT to the testkit example binary}"
: "${BENCH_USER:=tester}"
: "${PHASES:=held churn syn synnet}"
: "${REPS:=1}"
: "${HELD:=10000:10000}"
: "${CHURN_SECS:=60}"
: "${CLIENTS:=1}"
: "${CHURN_PORTS:=8}"
: "${SYN_TRIES:=200}"
: "${SYN_TIMEOUT:=2}"
: "${NOFILE:=$(ulimit -Hn)}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec prlimit --nofile="$NOFILE:$NOFILE" -- \
        setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" TESTKIT="$TESTKIT" PHASES="$PHASES" REPS="$REPS" \
        HELD="$HELD" CHURN_SECS="$CHURN_SECS" CLIENTS="$CLIENTS" CHURN_PORTS="$CHURN_PORTS" \
        SYN_TRIES="$SYN_TRIES" SYN_TIMEOUT="$SYN_TIMEOUT" NOFILE="$NOFILE" VERBOSE="${VERBOSE:-}" \
        PATH="$PATH" unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" != 1 ]; then
    exec env _INNER=1 unshare -rn bash "$(readlink -f "$0")"
fi

ip link set lo up
D=$(mktemp -d /tmp/rlnet-robust.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$D"
}
trap cleanup EXIT

GATEWAY_MAC=52:55:0a:00:02:02 # rlnet's MAC on the link (rlnet::stack::GATEWAY_MAC)
GUEST=10.0.2.100              # the namespace's address
NS_PORT=7400                  # the server in the namespace
PUB_PORT=28400                # published on the host as this (+1 per held run;
                              # below the ephemeral ports, which churn leaves
                              # in TIME_WAIT)

# "${NSENTER[@]}" PID CMD...: CMD in PID's namespaces. Started with & it is
# the very process $! names (nsenter execs CMD, no fork), so killing $! kills
# CMD; in_ns, a function, does the same in the foreground.
NSENTER=(nsenter -F -U -n --preserve-credentials -t)
in_ns() { "${NSENTER[@]}" "$@"; }
now() { echo "$EPOCHREALTIME"; }
since() { printf '%.2f' "$(echo "$(now) - $1" | bc -l)"; }

# mem PID: "rss_kib hwm_kib" summed over PID and its children
mem() {
    local p r=0 h=0 v
    for p in "$1" $(cat "/proc/$1/task/"*/children 2>/dev/null); do
        v=$(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r+0, h+0}' "/proc/$p/status" 2>/dev/null) || continue
        r=$(( r + ${v% *} )); h=$(( h + ${v#* } ))
    done
    echo "$r $h"
}
# fds PID: open fds of rlnet (the process itself, not its children)
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
# settle PID LIMIT SECS: bounded wait until fds <= LIMIT; prints "fds secs"
settle() {
    local t0 f end=$(( SECONDS + $3 ))
    t0=$(now)
    while (( SECONDS < end )); do
        f=$(fds "$1")
        [ "$f" -le "$2" ] && break
        sleep 0.02
    done
    echo "$(fds "$1") $(since "$t0")"
}
# field LINE NAME: the value of NAME= in LINE
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<< "$1"; }
# status NAME: a counter from rlnet's API (empty if it does not answer)
status() {
    timeout 2 "$TESTKIT" api "$D/api.sock" '{"execute":"status"}' 2>/dev/null |
        sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" | head -1
}
# wait_line FILE PATTERN [SECS]: bounded wait (default 20 s) for a line in FILE
wait_line() {
    local k
    for (( k = 0; k < ${3:-20} * 50; k++ )); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.02
    done
    return 1
}
# serve NAME ARGS...: a testkit server on the host; sets $port
serve() {
    local name=$1; shift
    rm -f "$D/$name"
    "$TESTKIT" "$@" > "$D/$name" 2>&1 &
    pids+=($!)
    wait_line "$D/$name" "listening port=" || { echo "$name did not start" >&2; cat "$D/$name" >&2; return 1; }
    port=$(sed -n 's/.*listening port=\([0-9]*\).*/\1/p' "$D/$name")
}
# target [RLNET ARGS...]: a namespace and rlnet serving it; sets $ns $rl
target() {
    local k
    unshare -Urn sleep 3600 & ns=$!; pids+=("$ns")
    for (( k = 0; k < 100; k++ )); do
        [ "$(readlink "/proc/$ns/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.02
    done
    rm -f "$D/ready" "$D/api.sock"; mkfifo "$D/ready"
    "$RLNET" --mtu 65520 --ready-fd 3 --api-socket "$D/api.sock" "$@" "$ns" \
        3> "$D/ready" > "$D/rlnet.log" 2>&1 & rl=$!
    pids+=("$rl")
    read -r -t 20 -N 1 _ < "$D/ready" || { echo "rlnet not ready" >&2; sleep 1; cat "$D/rlnet.log" >&2; return 1; }
}
stop_all() {
    local p kids end
    kids=$(cat "/proc/${rl:-0}/task/"*/children 2>/dev/null)
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    pids=()
    end=$(( SECONDS + 10 ))
    for p in $kids; do
        while [ -e "/proc/$p" ] && (( SECONDS < end )); do sleep 0.05; done
        [ -e "/proc/$p" ] && echo "# rlnet's child $p still there 10 s after rlnet was stopped" >&2
    done
    rl=""
}

# held OUT IN: OUT outbound and IN inbound flows opened at once and held;
# prints "held OUT IN out_open_s in_open_s all_open_s idle_rss rss hwm
#         idle_fds fds tcp_flows fds_after"
held() {
    local no=$1 ni=$2 t0 k out_s=- in_s=- all_s rss hwm idle idle_fds f flows after
    local wo wi want="" got
    serve held-srv serve-tcp 127.0.0.1:0 hold --count "$(( no > 0 ? no : 1 ))" --timeout 300 || return 1
    PUB_PORT=$(( PUB_PORT + 1 ))
    target -p "$PUB_PORT:$NS_PORT" || return 1
    rm -f "$D/held-nsrv"
    "${NSENTER[@]}" "$ns" "$TESTKIT" serve-tcp "0.0.0.0:$NS_PORT" hold --count "$(( ni > 0 ? ni : 1 ))" \
        --timeout 300 > "$D/held-nsrv" 2>&1 &
    pids+=($!)
    wait_line "$D/held-nsrv" "listening port=" || { echo "server in the namespace did not start" >&2; return 1; }
    sleep 1
    idle=$(mem "$rl"); idle=${idle% *}; idle_fds=$(fds "$rl")

    rm -f "$D/out" "$D/in" "$D/out.in" "$D/in.in"; mkfifo "$D/out.in" "$D/in.in"
    t0=$(now)
    if (( no > 0 )); then
        "${NSENTER[@]}" "$ns" "$TESTKIT" hold "10.0.2.2:$port" "$no" --stdin --timeout 300 \
            < "$D/out.in" > "$D/out" 2>&1 &
        pids+=($!); out_s=""; want+="open=$no "
        exec {wo}> "$D/out.in"
    fi
    if (( ni > 0 )); then
        "$TESTKIT" hold "127.0.0.1:$PUB_PORT" "$ni" --stdin --timeout 300 \
            < "$D/in.in" > "$D/in" 2>&1 &
        pids+=($!); in_s=""; want+="open=$ni "
        exec {wi}> "$D/in.in"
    fi
    for (( k = 0; k < 120 * 50; k++ )); do
        [ -z "$out_s" ] && grep -q -s "^open=" "$D/out" && out_s=$(since "$t0")
        [ -z "$in_s" ] && grep -q -s "^open=" "$D/in" && in_s=$(since "$t0")
        [ -n "$out_s" ] && [ -n "$in_s" ] && break
        grep -q -i -s "error\|fail" "$D/out" "$D/in" && break
        sleep 0.02
    done
    all_s=$(since "$t0")
    got=$(grep -h -s '^open=' "$D/out" "$D/in" | tr '\n' ' ')
    if [ "$got" != "$want" ]; then
        echo "held $no $ni: not all open: out: $(cat "$D/out" 2>/dev/null) in: $(cat "$D/in" 2>/dev/null)" >&2
        stop_all
        return 1
    fi
    sleep 1 # let the last ACKs land before measuring
    read -r rss hwm < <(mem "$rl")
    f=$(fds "$rl")
    flows=$(status tcp_flows)
    (( no > 0 )) && exec {wo}>&-
    (( ni > 0 )) && exec {wi}>&-
    (( no > 0 )) && wait_line "$D/out" "^closed=" 60
    (( ni > 0 )) && wait_line "$D/in" "^closed=" 60
    after=$(settle "$rl" "$idle_fds" 30)
    printf 'held %s %s %s %s %.2f %s %s %s %s %s %s %s\n' "$no" "$ni" "$out_s" "$in_s" "$all_s" \
        "$idle" "$rss" "$hwm" "$idle_fds" "$f" "${flows:-?}" "${after% *}"
    stop_all
}

# churn: prints "churn clients conns secs per_s failed fds_before fds_peak
#                fds_end fds_after secs_to_baseline"
# Each connection a client closes leaves a TIME_WAIT socket in the
# namespace's kernel for 60 s (rlnet's stack sends no TCP timestamps, so
# tcp_tw_reuse cannot help), and a 4-tuple in TIME_WAIT cannot be used again:
# with one server port and the default 28,232 ephemeral ports the client runs
# out after ~10,000 connections and slows to a few hundred a second, whatever
# carries the traffic. So the churn namespace gets ephemeral ports 1024-65535
# and the clients spread over CHURN_PORTS echo servers.
churn() {
    local base peak=0 f t0 t1 k c total=0 failed=0 secs end after ports=() line
    for (( k = 0; k < CHURN_PORTS; k++ )); do
        serve "churn-srv.$k" serve-tcp 127.0.0.1:0 echo --count 100000000 --timeout 120 || return 1
        ports+=("$port")
    done
    target || return 1
    in_ns "$ns" sh -c 'echo "1024 65535" > /proc/sys/net/ipv4/ip_local_port_range' ||
        { echo "churn: cannot set the namespace's ephemeral ports" >&2; return 1; }
    in_ns "$ns" "$TESTKIT" crr "10.0.2.2:${ports[0]}" 100 > /dev/null 2>&1 || { echo "churn: warm-up failed" >&2; return 1; }
    sleep 1
    base=$(fds "$rl")
    # Each client: crr batches of 2,000, each to the next server, until
    # CHURN_SECS have passed (at most 1,000 batches); one line per batch.
    t0=$(now)
    for (( c = 0; c < CLIENTS; c++ )); do
        "${NSENTER[@]}" "$ns" bash -c '
            tk=$1 secs=$2 c=$3; shift 3
            end=$(( SECONDS + secs ))
            for (( b = 0; b < 1000 && SECONDS < end; b++ )); do
                p=${@:$(( (b + c) % $# + 1 )):1}
                "$tk" crr "10.0.2.2:$p" 2000 --keep-going --timeout 5 2>&1 | tail -1
            done' _ "$TESTKIT" "$CHURN_SECS" "$c" "${ports[@]}" > "$D/churn.$c" 2>&1 &
        pids+=($!)
    done
    # Sample rlnet's fds while the clients run (bounded: CHURN_SECS + 120 s).
    end=$(( SECONDS + CHURN_SECS + 120 ))
    while (( SECONDS < end )); do
        f=$(fds "$rl"); (( f > peak )) && peak=$f
        local running=0
        for (( c = 0; c < CLIENTS; c++ )); do
            kill -0 "${pids[-1 - c]}" 2>/dev/null && running=1
        done
        [ "$running" = 0 ] && break
        sleep 0.2
    done
    t1=$(now)
    end=$(fds "$rl")
    secs=$(echo "$t1 - $t0" | bc -l)
    for (( c = 0; c < CLIENTS; c++ )); do
        while read -r line; do
            total=$(( total + $(field "$line" n) ))
            failed=$(( failed + $(field "$line" failed) ))
            [ -n "${VERBOSE:-}" ] && echo "# churn client $c: $line" >&2
        done < <(grep '^ok=' "$D/churn.$c")
        grep -v '^ok=' "$D/churn.$c" >&2
    done
    after=$(settle "$rl" "$base" 60)
    printf 'churn %s %s %.1f %.0f %s %s %s %s %s\n' "$CLIENTS" "$total" "$secs" \
        "$(echo "$total / $secs" | bc -l)" "$failed" "$base" "$peak" "$end" "$after"
    stop_all
}

# flood_servers: the flood's victim (accepts and holds every connection) and
# the legitimate client's echo server on the host; sets $vport $eport
flood_servers() {
    serve syn-victim serve-tcp 127.0.0.1:0 hold --count 100000000 --timeout 600 || return 1
    vport=$port
    serve syn-echo serve-tcp 127.0.0.1:0 echo --count 100000 --timeout 600 || return 1
    eport=$port
}
# start_flood NS SRC GW: raw SYNs from SRC (the namespace's own address) to
# the victim through GW, from NS's tap0; sets $fl, returns once it floods
start_flood() {
    rm -f "$D/flood"
    "${NSENTER[@]}" "$1" "$TESTKIT" spoof tap0 "$2" "$3" --syn --dport "$vport" \
        --dst-mac "$GATEWAY_MAC" --count 4000000000 \
        --timeout $(( SYN_TRIES * SYN_TIMEOUT + 60 )) > "$D/flood" 2>&1 &
    fl=$!; pids+=("$fl")
    wait_line "$D/flood" "^flooding" || { echo "flood did not start" >&2; cat "$D/flood" >&2; return 1; }
}
# tap_counts NS: "tx_packets tx_dropped" of NS's tap0 (what its kernel
# queued to the helper, and dropped because the queue was full)
tap_counts() { in_ns "$1" awk '$1 == "tap0:" {print $11, $13}' /proc/net/dev; }

# syn: prints "syn tries ok failed ok_pct syns_sent frames_in idle_rss rss
#              fds_before fds_during fds_after rss_after"
syn() {
    local txp txd vport eport fl base idle fin0 fin1 k out okc n failed rss f flows after rss_after t0
    flood_servers || return 1
    target || return 1
    in_ns "$ns" "$TESTKIT" crr "10.0.2.2:$eport" 10 > /dev/null 2>&1 || { echo "syn: warm-up failed" >&2; return 1; }
    sleep 1
    base=$(fds "$rl"); idle=$(mem "$rl"); idle=${idle% *}
    fin0=$(status frames_in)
    start_flood "$ns" "$GUEST" 10.0.2.2 || return 1
    t0=$(now)
    # The flood is reaching rlnet before the client starts (bounded: 20 s).
    k=$(( SECONDS + 20 ))
    while (( SECONDS < k )); do
        fin1=$(status frames_in)
        [ -n "$fin1" ] && [ "$fin1" -ge $(( ${fin0:-0} + 10000 )) ] && break
        sleep 0.1
    done
    out=$(in_ns "$ns" "$TESTKIT" crr "10.0.2.2:$eport" "$SYN_TRIES" --keep-going \
        --timeout "$SYN_TIMEOUT" 2>&1 | tail -1)
    kill -0 "$fl" 2>/dev/null || echo "syn: the flood ended before the client did: $(cat "$D/flood")" >&2
    read -r rss _ < <(mem "$rl")
    f=$(fds "$rl")
    flows=$(status tcp_flows)
    t0=$(since "$t0")
    kill "$fl" 2>/dev/null; wait "$fl" 2>/dev/null
    read -r txp txd < <(tap_counts "$ns")
    sleep 1
    fin1=$(status frames_in)
    after=$(settle "$rl" "$base" 30)
    read -r rss_after _ < <(mem "$rl")
    n=$(field "$out" n); failed=$(field "$out" failed)
    if [ -z "$n" ] || [ -z "$failed" ]; then echo "syn: client: $out" >&2; return 1; fi
    okc=$(( n - failed ))
    printf 'syn %s %s %s %.1f %s %s %s %s %s %s %s %s %s %s %s %s\n' "$n" "$okc" "$failed" \
        "$(echo "100 * $okc / $n" | bc -l)" "$t0" \
        "$( [ -n "$fin1" ] && [ -n "$fin0" ] && echo $(( fin1 - fin0 )) || echo ?)" \
        "$idle" "$rss" "$base" "$f" "${flows:-?}" "$after" "$rss_after" \
        "$(grep -c -i 'too many open files' "$D/rlnet.log")" "${txp:-?}" "${txd:-?}"
    stop_all
}

# synnet: the same flood from member a of a named network while a
# legitimate client in member b (another namespace the same daemon serves)
# connects to a host server through b's gateway. Prints "synnet tries ok
# failed ok_pct flood_s daemon_fds_before daemon_fds_during daemon_fds_after
# a_tap_tx a_tap_dropped".
synnet() {
    local vport eport a b ipa gw dpid fl t0 k txp txd out n failed base f after
    flood_servers || return 1
    export XDG_RUNTIME_DIR="$D/xdg"; mkdir -p "$XDG_RUNTIME_DIR"
    "$RLNET" network create flood > /dev/null || { echo "synnet: network create failed" >&2; return 1; }
    dpid=$("$RLNET" network inspect flood | sed -n 's/.*daemon PID \([0-9]*\).*/\1/p' | head -1)
    unshare -Urn sleep 3600 & a=$!; pids+=("$a")
    unshare -Urn sleep 3600 & b=$!; pids+=("$b")
    for (( k = 0; k < 100; k++ )); do
        [ "$(readlink "/proc/$a/ns/net")" != "$(readlink /proc/self/ns/net)" ] &&
            [ "$(readlink "/proc/$b/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.02
    done
    "$RLNET" attach --network flood --name a "$a" > /dev/null &&
        "$RLNET" attach --network flood --name b "$b" > /dev/null ||
        { echo "synnet: attach failed" >&2; "$RLNET" network rm --force flood; return 1; }
    ipa=$(in_ns "$a" ip -4 -br addr show tap0 | awk '{print $3}' | cut -d/ -f1)
    gw=$(in_ns "$b" ip -4 route show default | awk '{print $3; exit}')
    in_ns "$b" "$TESTKIT" crr "$gw:$eport" 10 > /dev/null 2>&1 || echo "synnet: warm-up failed" >&2
    base=$(fds "$dpid")
    start_flood "$a" "$ipa" "$gw" || return 1
    t0=$(now)
    # The flood is filling a's TAP before the client starts (bounded: 20 s).
    for (( k = 0; k < 200; k++ )); do
        read -r txp txd < <(tap_counts "$a")
        [ $(( ${txp:-0} + ${txd:-0} )) -ge 100000 ] && break
        sleep 0.1
    done
    out=$(in_ns "$b" "$TESTKIT" crr "$gw:$eport" "$SYN_TRIES" --keep-going \
        --timeout "$SYN_TIMEOUT" 2>&1 | tail -1)
    f=$(fds "$dpid")
    t0=$(since "$t0")
    read -r txp txd < <(tap_counts "$a")
    kill "$fl" 2>/dev/null; wait "$fl" 2>/dev/null
    after=$(settle "$dpid" "$base" 30)
    "$RLNET" network rm --force flood > /dev/null 2>&1
    n=$(field "$out" n); failed=$(field "$out" failed)
    if [ -z "$n" ] || [ -z "$failed" ]; then echo "synnet: client: $out" >&2; return 1; fi
    printf 'synnet %s %s %s %.1f %s %s %s %s %s %s\n' "$n" "$(( n - failed ))" "$failed" \
        "$(echo "100 * ($n - $failed) / $n" | bc -l)" "$t0" "$base" "$f" "${after% *}" \
        "${txp:-?}" "${txd:-?}"
    stop_all
}

echo "# nofile $(ulimit -n); $(nproc) cpus; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# held out in out_open_s in_open_s all_open_s idle_rss_kib rss_kib hwm_kib idle_fds fds tcp_flows fds_after"
echo "# churn clients conns secs per_s failed fds_before fds_peak fds_end fds_after secs_to_baseline"
echo "# synnet tries ok failed ok_pct flood_s daemon_fds_before daemon_fds_during daemon_fds_after a_tap_tx a_tap_dropped"
echo "# syn tries ok failed ok_pct flood_s frames_in idle_rss_kib rss_kib fds_before fds_during tcp_flows_during fds_after secs_to_baseline rss_after_kib emfile_log_lines tap_tx tap_tx_dropped"
for r in $(seq "$REPS"); do
    for p in $PHASES; do
        case $p in
            held) for h in $HELD; do held "${h%:*}" "${h#*:}" || { stop_all; exit 1; }; done ;;
            churn|syn|synnet) "$p" || { stop_all; exit 1; } ;;
            *) echo "unknown phase $p" >&2; exit 2 ;;
        esac
    done
done
