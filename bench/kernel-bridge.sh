#!/usr/bin/env bash
# kernel-bridge.sh - the hand-built prototype behind docs/kernel-switching.md:
# two (or three) member namespaces on a Linux bridge in a user+network
# namespace the unprivileged user owns, with the nftables bridge-family guard
# rlnet would load. No rlnet code is involved unless RLNET is set (then an
# rlnet named network with two attached members is measured beside it).
#
#   usage (as root): BENCH_USER=tester [RLNET=$PWD/target/release/rlnet] \
#                    [REPS=7] [DUR=3] bash bench/kernel-bridge.sh check|bench
#
#   check: honest traffic passes; forged IPv4/IPv6 sources (also through
#          IPV6_FREEBIND), a forged MAC, forged neighbour discovery and DAD
#          never reach the other member; no unknown unicast reaches a third.
#          Exits non-zero on any failure. NOGUARD=1 leaves the guard out
#          (the control: the forgery checks must then fail; unknown unicast
#          is kept out by the bridge port settings, not by the guard).
#          RLNET_GUARD=path/to/nft_guard (cargo build --example nft_guard)
#          loads rlnet's own guard (src/model/guard.rs) instead of nft -f.
#   bench: per repetition, back to back: loopback, a->b, b->a over the bridge
#          (and over rlnet with RLNET); ratios per repetition, medians.
#
# Traffic stays inside namespaces this script creates.
set -u -o pipefail

MODE=${1:-check}
: "${BENCH_USER:=tester}"
: "${REPS:=7}"
: "${DUR:=3}"
: "${RLNET:=}"
: "${NOGUARD:=}"
: "${RLNET_GUARD:=}"

if [ "$(id -u)" -eq 0 ] && [ "${_INNER:-}" != 1 ]; then
    exec setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups \
        env _INNER=1 RLNET="$RLNET" REPS="$REPS" DUR="$DUR" NOGUARD="$NOGUARD" \
        RLNET_GUARD="$RLNET_GUARD" PATH="$PATH" \
        unshare -Urn bash "$(readlink -f "$0")" "$MODE"
fi
if [ "${_INNER:-}" != 1 ]; then
    exec env _INNER=1 unshare -Urn bash "$(readlink -f "$0")" "$MODE"
fi

# Here: root of U_net, in N_br.
W=$(mktemp -d /tmp/kbridge.XXXXXX)
pids=()
cleanup() {
    [ -n "$RLNET" ] && XDG_RUNTIME_DIR=$W/xdg "$RLNET" network rm --force kbench >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
fail=0
say() { printf '%-58s %s\n' "$1" "$2"; [ "$2" = ok ] || fail=1; }
inn() { local p=$1; shift; nsenter -U -n -t "$p" --preserve-credentials "$@"; }
hex6() { python3 -c "import ipaddress,sys;print(hex(int(ipaddress.IPv6Address(sys.argv[1]))))" "$1"; }
mac_of() { printf '02:89:0a:59:00:%02x' "$1"; }
ll_of() { printf 'fe80::89:aff:fe59:%x' "$1"; }

ip link set lo up
# N_br's own stack stays mute: no IPv6 link-local on br0 or the veths.
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6
ip link add br0 type bridge || exit 1
ip link set br0 mtu 65520 up

# A member: its user namespace a child of U_net (as rlnet run would make it),
# its root with every network capability in its own netns.
member() { # name host-number
    local n=$1 i=$2 pid
    unshare -Urn sleep 3600 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        [ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
        sleep 0.02
    done
    ip link add "v$n" mtu 65520 type veth peer name tap0 netns "/proc/$pid/ns/net" || exit 1
    ip link set "v$n" master br0
    bridge link set dev "v$n" learning off flood off
    bridge fdb replace "$(mac_of "$i")" dev "v$n" master static
    ip link set "v$n" up
    nsenter -n -t "$pid" sh -c "ip link set lo up
        echo 0 > /proc/sys/net/ipv6/conf/tap0/addr_gen_mode
        ip link set tap0 address $(mac_of "$i") mtu 65520
        ip addr add 10.89.0.$i/24 dev tap0
        ip -6 addr add fd00:89::$i/64 dev tap0 nodad
        ip link set tap0 up" || exit 1
    eval "$n=$pid"
}

# The guard chains of one member (see docs/kernel-switching.md).
guard_chains() { # name host-number
    local n=$1 i=$2 mac g6 l6 mhex
    mac=$(mac_of "$i")
    mhex=0x${mac//:/}
    g6=$(hex6 "fd00:89::$i")
    l6=$(hex6 "$(ll_of "$i")")
    cat <<R
  chain m_$n {
    ether saddr != $mac counter drop
    ether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether $mac arp saddr ip 10.89.0.$i accept
    ether type ip ip saddr 10.89.0.$i accept
    ether type ip6 jump m6_$n
    counter drop
  }
  chain m6_$n {
    icmpv6 type { nd-router-advert, nd-redirect } counter drop
    ip6 saddr :: ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 { $g6, $l6 } ip6 length 24 accept
    ip6 saddr :: ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 { $g6, $l6 } ip6 length 32 @th,192,8 14 accept
    ip6 saddr :: ip6 nexthdr ipv6-icmp icmpv6 type nd-router-solicit ip6 length 8 accept
    ip6 saddr :: icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-reduction, mld2-listener-report } accept
    ip6 saddr != { fd00:89::$i, $(ll_of "$i") } counter drop
    icmpv6 type nd-neighbor-advert @th,64,128 != { $g6, $l6 } counter drop
    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } jump nd_$n
    icmpv6 type nd-router-solicit jump rs_$n
    accept
  }
  chain nd_$n {
    ip6 nexthdr ipv6-icmp ip6 length 24 accept
    ip6 nexthdr ipv6-icmp ip6 length 32 @th,192,16 { 0x0101, 0x0201 } @th,208,48 $mhex accept
    counter drop
  }
  chain rs_$n {
    ip6 nexthdr ipv6-icmp ip6 length 8 accept
    ip6 nexthdr ipv6-icmp ip6 length 16 @th,64,16 0x0101 @th,80,48 $mhex accept
    counter drop
  }
R
}

member a 100
member b 101
member c 102
# Bounded wait for the link-local addresses to finish DAD.
for m in "$a" "$b" "$c"; do
    for _ in $(seq 100); do
        [ -z "$(inn "$m" ip -6 addr show dev tap0 tentative)" ] && break
        sleep 0.05
    done
done
{
    echo "table bridge rlnet {"
    guard_chains a 100
    guard_chains b 101
    guard_chains c 102
    cat <<'R'
  map ports { type ifname : verdict; elements = { "va" : jump m_a, "vb" : jump m_b, "vc" : jump m_c } }
  chain pre {
    type filter hook prerouting priority -200; policy accept;
    iifname vmap @ports
    iifname != "up0" counter drop
  }
}
R
} >"$W/guard.nft"
if [ "$NOGUARD" != 1 ] && [ -n "$RLNET_GUARD" ]; then
    # rlnet's own guard (model/guard.rs, per-member base chains, no sets)
    # over NETLINK_NETFILTER instead of nft -f.
    "$RLNET_GUARD" va "$(mac_of 100)" 10.89.0.100 fd00:89::100 \
        vb "$(mac_of 101)" 10.89.0.101 fd00:89::101 \
        vc "$(mac_of 102)" 10.89.0.102 fd00:89::102 || exit 1
elif [ "$NOGUARD" != 1 ]; then
    nft -f "$W/guard.nft" || exit 1
fi

# Python helpers, run inside the members.
cat >"$W/listen.py" <<'EOF'
# UDP and TCP on [::]:9999 for argv[2] seconds; prints each peer address.
import socket, sys, select, time
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::", 9999))
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); t.bind(("::", 9999)); t.listen()
open(sys.argv[1], "w").write("up")
end = time.time() + float(sys.argv[2])
while time.time() < end:
    r, _, _ = select.select([u, t], [], [], 0.2)
    for x in r:
        print("from", (u.recvfrom(100)[1] if x is u else t.accept()[1])[0], flush=True)
EOF
cat >"$W/freebind.py" <<'EOF'
# Sends UDP and tries TCP to argv[2]:9999 from argv[1] with IP(V6)_FREEBIND.
import socket, sys
v6 = ":" in sys.argv[1]
for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, kind)
    s.setsockopt(socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP, 78 if v6 else 15, 1)
    s.settimeout(1)
    try:
        s.bind((sys.argv[1], 0))
        if kind == socket.SOCK_DGRAM: s.sendto(b"x", (sys.argv[2], 9999))
        else: s.connect((sys.argv[2], 9999))
    except OSError:
        pass
EOF
cat >"$W/nd.py" <<'EOF'
# Neighbour-discovery forgeries from a over a raw ICMPv6 socket, tagged in the
# flags/reserved word (tag 1 is honest: own source, target and MAC).
import socket, struct, ipaddress
A, B = bytes.fromhex("02890a590064"), bytes.fromhex("02890a590065")
A6, B6, ALL = "fd00:89::100", "fd00:89::101", "fe80::89:aff:fe59:64"
ip = lambda a: ipaddress.IPv6Address(a).packed
opt = lambda t, m: bytes([t, 1]) + m
na = lambda tag, tgt, o: bytes([136, 0, 0, 0]) + struct.pack("!I", 0x20000000 | tag) + ip(tgt) + o
ns = lambda tag, tgt, o: bytes([135, 0, 0, 0]) + struct.pack("!I", tag) + ip(tgt) + o
ra = lambda tag: bytes([134, 0, 0, 0, 64, 0, 0, tag]) + struct.pack("!II", 0, 0) + opt(1, A)
idx = socket.if_nametoindex("tap0")
for src, msg in [(A6, na(1, A6, opt(2, A))), (A6, na(2, B6, opt(2, A))),
                 (A6, na(3, A6, opt(2, B))), (A6, ns(4, B6, opt(1, B))),
                 (A6, ns(5, B6, opt(1, A) + opt(1, B))), (ALL, ra(6))]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.bind((src, 0, 0, idx))
    s.sendto(msg, ("ff02::1", 0, 0, idx))
EOF
cat >"$W/sniff.py" <<'EOF'
# argv: ready-file seconds src-mac [dst-mac|from]. Prints the ND messages
# from src-mac (type tag source target, one a line), or counts the frames to
# dst-mac, or ("from") the frames from src-mac.
import socket, sys, select, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind(("tap0", 0))
open(sys.argv[1], "w").write("up")
src = bytes.fromhex(sys.argv[3].replace(":", ""))
mode = sys.argv[4] if len(sys.argv) > 4 else None
dst = bytes.fromhex(mode.replace(":", "")) if mode not in (None, "from") else None
end, seen, n = time.time() + float(sys.argv[2]), set(), 0
while time.time() < end:
    if not select.select([s], [], [], 0.2)[0]: continue
    f, addr = s.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING: continue
    if mode == "from":
        n += f[6:12] == src
    elif dst is not None:
        n += f[:6] == dst
    elif f[6:12] == src and f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] in (134, 135, 136):
        tgt = socket.inet_ntop(socket.AF_INET6, f[62:78]) if f[54] != 134 else "-"
        seen.add("%d %d %s %s" % (f[54], f[61], socket.inet_ntop(socket.AF_INET6, f[22:38]), tgt))
print(n if mode is not None else "\n".join(sorted(seen)))
EOF

# Start a helper in member $1 that writes $W/up when ready; its PID in HP.
ready_helper() { # member out script args...
    local m=$1 out=$2
    shift 2
    rm -f "$W/up"
    inn "$m" python3 "$@" >"$out" 2>&1 &
    HP=$!
    for _ in $(seq 100); do [ -e "$W/up" ] && break; sleep 0.05; done
}

check() {
    local r nd dad
    for dst in 10.89.0.101 fd00:89::101 "$(ll_of 101)%tap0"; do
        inn "$a" ping -c1 -W2 "$dst" >/dev/null && r=ok || r=FAIL
        say "honest ping a -> $dst" "$r"
    done
    # Forged sources: a gives itself .77 and b's address, sends with freebind.
    inn "$a" ip addr add 10.89.0.77/32 dev tap0
    ready_helper "$b" "$W/listen.out" "$W/listen.py" "$W/up" 4
    inn "$a" ping -c1 -W1 -I 10.89.0.77 10.89.0.101 >/dev/null
    inn "$a" python3 "$W/freebind.py" fd00:89::77 fd00:89::101
    inn "$a" python3 "$W/freebind.py" fd00:89::101 fd00:89::101
    inn "$a" python3 "$W/freebind.py" fd00:89::100 fd00:89::101
    wait "$HP"
    grep -q 'fd00:89::100' "$W/listen.out" && r=ok || r=FAIL
    say "honest freebind from fd00:89::100 reaches b" "$r"
    grep -Eq 'fd00:89::(77|101)' "$W/listen.out" && r=FAIL || r=ok
    say "IPv6 from fd00:89::77 / b's own address reaches b: no" "$r"
    # Forged MAC: b never gets a frame with its own MAC as the source.
    ready_helper "$b" "$W/mac.out" "$W/sniff.py" "$W/up" 2 "$(mac_of 101)" from
    inn "$a" ip link set tap0 address "$(mac_of 101)"
    inn "$a" ping -c2 -i0.2 -W1 10.89.0.101 >/dev/null
    wait "$HP"
    [ "$(cat "$W/mac.out")" = 0 ] && r=ok || r=FAIL
    say "frames with b's MAC as source seen by b: $(cat "$W/mac.out")" "$r"
    inn "$a" ip link set tap0 address "$(mac_of 100)"
    inn "$a" ping -c1 -W2 10.89.0.101 >/dev/null && r=ok || r=FAIL
    say "a with its own MAC again reaches b" "$r"
    # Neighbour discovery: only the honest tag-1 advertisement gets through.
    ready_helper "$b" "$W/nd.out" "$W/sniff.py" "$W/up" 3 "$(mac_of 100)"
    inn "$a" python3 "$W/nd.py"
    wait "$HP"
    # The kernel's own neighbour probes carry tag 0: not ours.
    nd=$(awk '$2 != 0' "$W/nd.out" | tr '\n' ';')
    [ "$nd" = "136 1 fd00:89::100 fd00:89::100;" ] && r=ok || r=FAIL
    say "forged ND from a seen by b: ${nd:-none}" "$r"
    # DAD: for its own address it passes, for b's it does not.
    ready_helper "$b" "$W/dad.out" "$W/sniff.py" "$W/up" 3 "$(mac_of 100)"
    inn "$a" sh -c 'ip -6 addr del fd00:89::100/64 dev tap0; ip -6 addr add fd00:89::100/64 dev tap0
        ip -6 addr add fd00:89::101/64 dev tap0'
    wait "$HP"
    dad=$(awk '$3 == "::"' "$W/dad.out" | tr '\n' ';')
    [ "$dad" = "135 0 :: fd00:89::100;" ] && r=ok || r=FAIL
    say "DAD from a seen by b: ${dad:-none}" "$r"
    inn "$b" ip -6 neigh show dev tap0 | grep -v "$(mac_of 100)" | grep -q 'fd00:89::100' && r=FAIL || r=ok
    say "b's neighbour table keeps a on a's MAC" "$r"
    # Unknown unicast: nothing for a MAC nobody has reaches c.
    ready_helper "$c" "$W/uu.out" "$W/sniff.py" "$W/up" 2 "$(mac_of 100)" 02:89:0a:59:00:c8
    inn "$a" ip neigh replace 10.89.0.200 lladdr 02:89:0a:59:00:c8 dev tap0
    inn "$a" ping -c3 -i0.2 -W1 10.89.0.200 >/dev/null
    wait "$HP"
    [ "$(cat "$W/uu.out")" = 0 ] && r=ok || r=FAIL
    say "frames to an unknown MAC seen by c: $(cat "$W/uu.out")" "$r"
    echo "guard drops:"
    nft list ruleset | grep 'counter packets [1-9]' | sed 's/^\s*/  /'
    return $fail
}

# "Gbit/s CPU-s/GB": CPU is iperf3's own getrusage of sender + receiver,
# which includes the softirq work done in their context; it moves far less
# with load than the throughput does.
gbps() {
    jq -r '.end | "\(.sum_received.bits_per_second / 1e9) \((.cpu_utilization_percent.host_total
        + .cpu_utilization_percent.remote_total) / 100 * .sum_received.seconds
        / (.sum_received.bytes / 1e9))"'
}
median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
wait_port() {
    for _ in $(seq 200); do
        "$@" ss -Hltn 'sport = :5201' | grep -q . && return 0
        sleep 0.02
    done
    return 1
}
iperf() { # server-member|- client-member|- dst [iperf3 options]
    local s=$1 c=$2 d=$3 run_s=() run_c=()
    shift 3
    [ "$s" != - ] && run_s=(inn "$s")
    [ "$c" != - ] && run_c=(inn "$c")
    "${run_s[@]}" iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    local sp=$!
    wait_port "${run_s[@]}"
    "${run_c[@]}" iperf3 -c "$d" -p 5201 -t "$DUR" -J "$@" | gbps
    wait "$sp" 2>/dev/null
}

bench() {
    local ra rb ipb lo kab kba rab rba
    if [ -n "$RLNET" ]; then
        mkdir -p "$W/xdg"
        export XDG_RUNTIME_DIR=$W/xdg
        "$RLNET" network create kbench >/dev/null || return 1
        unshare -Urn sleep 3600 & ra=$!; pids+=("$ra")
        unshare -Urn sleep 3600 & rb=$!; pids+=("$rb")
        for _ in $(seq 100); do
            [ "$(readlink /proc/$rb/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
            sleep 0.02
        done
        "$RLNET" attach --network kbench --name a "$ra" >/dev/null || return 1
        "$RLNET" attach --network kbench --name b "$rb" >/dev/null || return 1
        ipb=$(inn "$rb" ip -4 -br addr show tap0 | awk '{print $3}' | cut -d/ -f1)
    fi
    : >"$W/ratios"
    : >"$W/cpu"
    for r in $(seq "$REPS"); do
        read -r lo lo_cpu <<<"$(iperf - - 127.0.0.1)"
        read -r kab kab_cpu <<<"$(iperf "$b" "$a" 10.89.0.101)"
        read -r kba kba_cpu <<<"$(iperf "$b" "$a" 10.89.0.101 -R)"
        echo "$lo_cpu $kab_cpu $kba_cpu" >>"$W/cpu"
        line="rep $r load $(cut -d' ' -f1 /proc/loadavg): loopback $lo, bridge a->b $kab, b->a $kba"
        row="$(echo "$kab / $lo" | bc -l) $(echo "$kba / $lo" | bc -l)"
        if [ -n "$RLNET" ]; then
            read -r rab _ <<<"$(iperf "$rb" "$ra" "$ipb")"
            read -r rba _ <<<"$(iperf "$rb" "$ra" "$ipb" -R)"
            line="$line, rlnet a->b $rab, b->a $rba"
            row="$row $(echo "$rab / $lo" | bc -l) $(echo "$rba / $lo" | bc -l)"
        fi
        echo "$line (Gbit/s)"
        echo "$row" >>"$W/ratios"
    done
    printf 'median of %s per-repetition ratios to loopback: bridge a->b %.2fx, b->a %.2fx' "$REPS" \
        "$(cut -d' ' -f1 "$W/ratios" | median)" "$(cut -d' ' -f2 "$W/ratios" | median)"
    [ -n "$RLNET" ] && printf '; rlnet a->b %.2fx, b->a %.2fx' \
        "$(cut -d' ' -f3 "$W/ratios" | median)" "$(cut -d' ' -f4 "$W/ratios" | median)"
    echo
    printf 'median CPU s/GB (iperf3 sender + receiver): loopback %.3f, bridge a->b %.3f, b->a %.3f\n' \
        "$(cut -d' ' -f1 "$W/cpu" | median)" "$(cut -d' ' -f2 "$W/cpu" | median)" \
        "$(cut -d' ' -f3 "$W/cpu" | median)"
}

case "$MODE" in
check) check ;;
bench) bench ;;
*) echo "usage: bench/kernel-bridge.sh check|bench" >&2; exit 2 ;;
esac
