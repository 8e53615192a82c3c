#!/usr/bin/env bash
# attach-gap.sh - does a member-to-member TCP stream keep flowing while
# members come and go? (issue 11, acceptance 3)
#
#   usage (as root): RLNET=$PWD/target/release/rlnet BENCH_USER=tester \
#                    [CYCLES=20] [REPS=3] [NICE=-15] bash bench/attach-gap.sh
#
# As bench/network.sh, everything runs as BENCH_USER inside a private
# user+network namespace ("the host"): the network daemon and the member
# namespaces a, b and c. Traffic stays between the members.
#
# a sends b a paced TCP stream (4 KiB every millisecond); b timestamps every
# read. Each repetition has two windows of the same stream: "churn", CYCLES
# times `rlnet attach` + `rlnet detach` of c, and then "quiet", as long
# again with nothing else going on. For each window it prints the longest
# gap between two received chunks, and how many gaps exceeded 5 ms; a loop
# that waits for a namespace agent shows up as a churn gap far above quiet.
# The last line gives the medians over the repetitions. As root, the whole
# run gets nice NICE (-15), so that other work on the machine (builds)
# shows up less as gaps; compare binaries in one session, interleaved.
set -u -o pipefail

: "${RLNET:?set RLNET to the rlnet binary}"
: "${BENCH_USER:=tester}"
: "${CYCLES:=20}"
: "${REPS:=3}"
: "${NICE:=-15}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec nice -n "$NICE" setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" CYCLES="$CYCLES" REPS="$REPS" PATH="$PATH" \
        unshare -rn bash "$(readlink -f "$0")"
fi
if [ "${_INNER:-}" = 1 ] && [ "${_OUTER:-}" != 1 ]; then
    # Not root: make the outer namespace ourselves.
    if [ "$(id -u)" -ne 0 ]; then
        exec env _INNER=1 _OUTER=1 unshare -rn bash "$(readlink -f "$0")"
    fi
fi

ip link set lo up
XDG_RUNTIME_DIR=$(mktemp -d /tmp/rlnet-gap.XXXXXX)
export XDG_RUNTIME_DIR
WORK=$XDG_RUNTIME_DIR/work
mkdir -p "$WORK"
pids=()
cleanup() {
    "$RLNET" network rm --force gap >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$XDG_RUNTIME_DIR"
}
trap cleanup EXIT

"$RLNET" network create gap >/dev/null || exit 1
for _ in a b c; do
    unshare -Urn sleep 3600 &
    pids+=("$!")
done
A=${pids[0]} B=${pids[1]} C=${pids[2]}
# Bounded wait for the holders to be in their namespaces.
for _ in $(seq 100); do
    n=0
    for p in "$A" "$B" "$C"; do
        [ "$(readlink "/proc/$p/ns/net")" != "$(readlink /proc/self/ns/net)" ] && n=$((n + 1))
    done
    [ "$n" = 3 ] && break
    sleep 0.05
done
"$RLNET" attach --network gap --name a "$A" >/dev/null || exit 1
"$RLNET" attach --network gap --name b "$B" >/dev/null || exit 1
in_ns() { local p=$1; shift; nsenter -U -n -t "$p" --preserve-credentials "$@"; }
IPB=$(in_ns "$B" ip -4 -br addr show tap0 | awk '{print $3}' | cut -d/ -f1)

# Receiver: one line per read, "<time> <gap since the previous read>".
RECV='use strict; use IO::Socket::INET; use IO::Handle; use Time::HiRes qw(time);
my ($port, $log) = @ARGV;
my $l = IO::Socket::INET->new(LocalAddr => "0.0.0.0", LocalPort => $port,
    Listen => 1, ReuseAddr => 1) or die "listen: $!";
open(my $o, ">", $log) or die "$log: $!";
STDOUT->autoflush(1);
print "listening\n";
my $c = $l->accept or die "accept: $!";
my ($buf, $prev, $bytes) = ("", undef, 0);
while (1) {
    my $n = sysread($c, $buf, 65536);
    last if !$n;
    my $t = time;
    printf $o "%.6f %.6f\n", $t, defined $prev ? $t - $prev : 0;
    ($prev, $bytes) = ($t, $bytes + $n);
}
close $o;
print "bytes=$bytes\n";'
# Sender: 4 KiB per millisecond until the stop file appears (at most LIMIT s),
# each write its own segment (TCP_NODELAY), so the receiver sees one chunk
# per millisecond rather than what Nagle and delayed ACKs batch up.
SEND='use strict; use IO::Socket::INET; use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);
my ($addr, $stop, $limit) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => $addr, Timeout => 10) or die "connect: $!";
setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1) or die "TCP_NODELAY: $!";
my $chunk = "x" x 4096;
my $start = time;
my ($next, $i) = ($start, 0);
while (time - $start < $limit) {
    defined(syswrite($s, $chunk)) or die "write: $!";
    $next += 0.001;
    my $d = $next - time;
    sleep($d) if $d > 0;
    last if ++$i % 100 == 0 && -e $stop;
}
close $s;'

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
# window LOG FROM TO: "max_gap_ms=M gaps_over_5ms=N" for reads in [FROM, TO].
window() {
    awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b {
            if ($2 > m) m = $2
            if ($2 > 0.005) n++
        }
        END { printf "max_gap_ms=%.1f gaps_over_5ms=%d", m * 1000, n }' "$1"
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

churn_max=() quiet_max=() cycle_ms=()
for r in $(seq "$REPS"); do
    log=$WORK/gaps.$r stop=$WORK/stop.$r out=$WORK/recv.$r
    in_ns "$B" perl -e "$RECV" 5301 "$log" >"$out" 2>&1 &
    recv=$!
    for _ in $(seq 200); do grep -q listening "$out" && break; sleep 0.02; done
    grep -q listening "$out" || { echo "receiver did not start: $(cat "$out")"; exit 1; }
    in_ns "$A" perl -e "$SEND" "$IPB:5301" "$stop" 600 &
    send=$!
    sleep 1 # the stream settles
    t0=$(now)
    for i in $(seq "$CYCLES"); do
        "$RLNET" attach --network gap --name c "$C" >/dev/null || { echo "attach $i failed"; exit 1; }
        "$RLNET" detach --network gap c >/dev/null || { echo "detach $i failed"; exit 1; }
    done
    t1=$(now)
    sleep "$(calc "$t1 - $t0")"
    t2=$(now)
    touch "$stop"
    wait "$send" || { echo "sender failed"; exit 1; }
    wait "$recv"
    churn=$(window "$log" "$t0" "$t1")
    quiet=$(window "$log" "$t1" "$t2")
    ms=$(calc "($t1 - $t0) * 1000 / $CYCLES")
    printf 'rep %d: churn %s  quiet %s  cycle_ms=%.0f  %s\n' \
        "$r" "$churn" "$quiet" "$ms" "$(tail -n1 "$out")"
    churn_max+=("$(echo "$churn" | sed 's/max_gap_ms=\([0-9.]*\).*/\1/')")
    quiet_max+=("$(echo "$quiet" | sed 's/max_gap_ms=\([0-9.]*\).*/\1/')")
    cycle_ms+=("$ms")
done
printf 'median over %d reps (%d cycles each): churn max_gap_ms=%s quiet max_gap_ms=%s cycle_ms=%.0f\n' \
    "$REPS" "$CYCLES" \
    "$(printf '%s\n' "${churn_max[@]}" | median)" \
    "$(printf '%s\n' "${quiet_max[@]}" | median)" \
    "$(printf '%s\n' "${cycle_ms[@]}" | median)"
