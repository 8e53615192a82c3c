//! An endpoint that is not on the TAP (issue 10): the namespace rlnet serves
//! (`-c --mtu 65520`) forwards for a second namespace behind a veth of a
//! smaller MTU (1500 for IPv4, 1280 for IPv6) and masquerades it out of the
//! TAP, as Docker's docker0, a Podman bridge network or a pod network do.
//! rlnet must cut its TCP segments to the MSS that endpoint advertised, not
//! to the TAP's MTU, and lower a flow's segment size when the forwarding
//! namespace reports a smaller path MTU (ICMP "fragmentation needed",
//! ICMPv6 "packet too big"). Servers live in the outer ("host") namespace,
//! clients of published ports too; rlnet and every namespace run
//! unprivileged.

mod common;

use std::process::{ChildStdin, ExitStatus, Stdio};

use common::*;

const MIB: u64 = 1 << 20;
/// Bytes per transfer, each way.
const SIZE: u64 = 4 * MIB;
const INNER4: &str = "10.1.0.2";
const INNER6: &str = "fd01::2";
/// testkit's own bounds (seconds): a stalled transfer fails with its own
/// message, well before the harness gives up on the process (`WAIT`).
const CLIENT_TIMEOUT: &str = "30";
const SERVER_TIMEOUT: &str = "45";
/// The outer namespace's loopback DNS upstream (the stub forwards to it).
const UPSTREAM: &str = "127.0.0.53";

/// The links between the served namespace ("mid") and the inner one.
#[derive(Debug, Clone, Copy)]
struct Links {
    /// MTU of the IPv4 veth pair (both ends).
    veth4: u32,
    /// MTU of the IPv6 veth pair (both ends).
    veth6: u32,
    /// A smaller, locked path MTU on mid's route to the inner address: the
    /// inner namespace advertises the MSS of its veth, and only the
    /// forwarding namespace knows the path is smaller.
    path4: Option<u32>,
    path6: Option<u32>,
}

struct Routed {
    outer: Outer,
    /// The namespace rlnet serves; it routes for `inner`.
    mid: Target,
    inner: Target,
    rlnet: Rlnet,
    sock: String,
    upstream: Option<(Proc, ChildStdin)>,
    _dir: TempDir,
}

/// rlnet serving `mid` with `-c --mtu 65520` (IPv6 on, the DNS stub
/// forwarding to a fake upstream in the outer namespace), and `inner`
/// behind two veth pairs: masqueraded out of tap0, and every new TCP
/// connection into mid (a published port, either mode) DNATed to inner.
fn setup(links: Links, extra: &[&str]) -> Routed {
    let outer = Outer::new();
    let mut up = outer.testkit();
    up.args([
        "serve-dns",
        &format!("{UPSTREAM}:53"),
        "--stdin",
        "--timeout",
        "600",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = up.spawn().expect("spawn serve-dns");
    let stdin = child.stdin.take().expect("serve-dns stdin");
    let upstream = Proc::from_child(child);
    upstream.expect_line("listening");

    let mid = outer.target();
    let inner = mid.nested();
    let dir = TempDir::new("routed");
    let sock = dir.path("api.sock");
    let pid = mid.pid().to_string();
    let mut args = vec![
        "-c",
        "--mtu",
        "65520",
        "--enable-ipv6",
        "--dns-upstream",
        UPSTREAM,
        "--api-socket",
        &sock,
    ];
    args.extend_from_slice(extra);
    args.push(&pid);
    let rlnet = start_rlnet(outer.rlnet_cmd(), &args);
    let Links {
        veth4,
        veth6,
        path4,
        path6,
    } = links;
    let ipid = inner.pid();
    let mut script = format!(
        "set -e
         sysctl -qw net.ipv4.ip_forward=1
         sysctl -qw net.ipv6.conf.all.forwarding=1
         ip link add in4 mtu {veth4} type veth peer name up4 mtu {veth4} netns {ipid}
         ip link add in6 mtu {veth6} type veth peer name up6 mtu {veth6} netns {ipid}
         ip link set in4 up
         ip link set in6 up
         ip addr add 10.1.0.1/24 dev in4
         ip -6 addr add fd01::1/64 dev in6 nodad
         iptables -t nat -A POSTROUTING -s 10.1.0.0/24 -o tap0 -j MASQUERADE
         ip6tables -t nat -A POSTROUTING -s fd01::/64 -o tap0 -j MASQUERADE
         iptables -t nat -A PREROUTING -i tap0 -p tcp -j DNAT --to-destination {INNER4}
         ip6tables -t nat -A PREROUTING -i tap0 -p tcp -j DNAT --to-destination {INNER6}
         iptables -t nat -A OUTPUT -d 10.0.2.100 -p tcp -j DNAT --to-destination {INNER4}
         ip6tables -t nat -A OUTPUT -d fd00::100 -p tcp -j DNAT --to-destination {INNER6}
        "
    );
    // Forwarding honours a route's MTU only when it is locked (IPv6).
    if let Some(m) = path4 {
        script.push_str(&format!("ip route add {INNER4}/32 dev in4 mtu lock {m}\n"));
    }
    if let Some(m) = path6 {
        script.push_str(&format!(
            "ip -6 route add {INNER6}/128 dev in6 mtu lock {m}\n"
        ));
    }
    run_ok(mid.sh(&script));
    run_ok(inner.sh(&format!(
        "set -e
         ip link set lo up
         ip link set up4 up
         ip link set up6 up
         ip addr add {INNER4}/24 dev up4
         ip -6 addr add {INNER6}/64 dev up6 nodad
         ip route add default via 10.1.0.1
         ip -6 route add default via fd01::1"
    )));
    Routed {
        outer,
        mid,
        inner,
        rlnet,
        sock,
        upstream: Some((upstream, stdin)),
        _dir: dir,
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        // Its stdin closing ends the fake upstream.
        if let Some((mut p, stdin)) = self.upstream.take() {
            drop(stdin);
            let _ = p.wait_timeout(WAIT);
        }
    }
}

/// What [`run`] returns: status, stdout, stderr.
type Ran = (ExitStatus, String, String);

/// `SIZE` bytes from a client to a server and `SIZE` bytes back on a second
/// connection, each verified byte for byte by its receiver; `serve` starts
/// a server (`serve-tcp LISTEN MODE`) and returns the port to connect to,
/// `client` runs a testkit command.
fn both_ways(
    what: &str,
    seed: u64,
    serve: &dyn Fn(&[&str]) -> (Proc, u16),
    listen: &str,
    client: &dyn Fn(&[&str]) -> Ran,
    connect: &str,
) {
    for (server_mode, client_mode, seed) in [("sink", "send", seed), ("source", "recv", seed + 1)] {
        let spec = format!("{SIZE}:{seed}");
        let (mut srv, port) = serve(&[
            "serve-tcp",
            listen,
            &format!("{server_mode}:{spec}"),
            "--timeout",
            SERVER_TIMEOUT,
        ]);
        let (st, out, err) = client(&[
            "tcp",
            &format!("{connect}:{port}"),
            &format!("{client_mode}:{spec}"),
            "--timeout",
            CLIENT_TIMEOUT,
        ]);
        assert!(st.success(), "{what} {client_mode}: {err}{out}");
        ok(&out);
        assert_eq!(
            field(&out, "bytes"),
            Some(&*SIZE.to_string()),
            "{what}: {out}"
        );
        srv.wait();
        ok(&srv.expect_line("ok"));
    }
}

impl Routed {
    fn api(&self, req: &str) -> String {
        let out = run_ok(self.outer.testkit_cmd(&["api", &self.sock, req]));
        out.lines().next().unwrap_or("").to_string()
    }

    /// One of rlnet's `status` counters.
    fn counter(&self, name: &str) -> u64 {
        self.outer.status_counter(&self.sock, name)
    }

    /// Outbound: the inner namespace downloads from and uploads to servers
    /// on the host's loopback (through the gateway) and on an outside
    /// address, over IPv4 and IPv6.
    fn outbound(&self) {
        let cases = [
            ("127.0.0.1:0", "10.0.2.2"),
            (&*format!("{OUTSIDE4}:0"), OUTSIDE4),
            ("[::1]:0", "[fd00::2]"),
            (&*format!("[{OUTSIDE6}]:0"), &*format!("[{OUTSIDE6}]")),
        ];
        for ((listen, connect), i) in cases.iter().zip(0u64..) {
            let seed = 100 + 10 * i;
            both_ways(
                &format!("outbound to {connect}"),
                seed,
                &|a| self.outer.serve(a),
                listen,
                &|a| run(self.inner.testkit(a)),
                connect,
            );
        }
    }

    /// Inbound: a published port (stack or splice mode) forwards to mid's
    /// address, which mid DNATs to the inner namespace; clients on outside
    /// addresses, over IPv4 and IPv6.
    fn inbound(&self, mode: &str, host_port: u16) {
        for ((listen, connect), i) in [
            ("0.0.0.0:0", OUTSIDE4),
            ("[::]:0", &*format!("[{OUTSIDE6}]")),
        ]
        .into_iter()
        .zip(0u16..)
        {
            let seed = 200 + 10 * u64::from(i);
            let serve = |a: &[&str]| {
                let (p, port) = self.inner.serve(a);
                // A host port per family and direction.
                let hp = host_port + 10 * i + u16::from(a[2].starts_with("source"));
                let req = format!(
                    r#"{{"execute":"add_publish","arguments":{{"publish":["{hp}:{port}"],"mode":"{mode}"}}}}"#
                );
                let reply = self.api(&req);
                assert!(reply.contains(r#""ids""#), "{reply}");
                (p, hp)
            };
            both_ways(
                &format!("inbound ({mode}) from {connect}"),
                seed,
                &serve,
                listen,
                &|a| run(self.outer.testkit_cmd(a)),
                connect,
            );
        }
    }

    /// The DNS stub over TCP: a 2,000-byte answer, larger than the inner
    /// namespace's MSS, over both stub addresses; and over UDP (EDNS 4096)
    /// through the 1500-byte IPv4 link, which mid has to fragment.
    fn dns(&self) {
        for (server, extra) in [
            ("10.0.2.3", &["--tcp"][..]),
            ("fd00::3", &["--tcp"][..]),
            ("10.0.2.3", &["--edns", "4096"][..]),
        ] {
            let mut args = vec!["dig", server, "big.test", "TXT"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--timeout", "30"]);
            let out = run_ok(self.inner.testkit(&args));
            let line = out.lines().last().unwrap_or("");
            assert_eq!(
                field(line, "rcode"),
                Some("NOERROR"),
                "{server} {extra:?}: {line}"
            );
            assert_eq!(field(line, "tc"), Some("0"), "{server} {extra:?}: {line}");
            let data = line.split_once(" data=").map(|(_, d)| d).unwrap_or("");
            let data = data.rsplit_once(" ms=").map_or(data, |(d, _)| d);
            assert_eq!(data.len(), 2000, "{server} {extra:?}: {line}");
        }
    }
}

/// Acceptance 1 of issue 10: 4 MiB each way, byte-exact, between the inner
/// namespace (behind a 1500-byte IPv4 and a 1280-byte IPv6 veth) and
/// servers outside, through published ports in both modes, and the DNS
/// stub's answers larger than one segment (TCP) or than the inner link
/// (UDP over IPv4, which mid fragments), and echo replies larger than the
/// inner link.
#[test]
fn inner_namespace_behind_a_smaller_link() {
    require_userns!();
    let r = setup(
        Links {
            veth4: 1500,
            veth6: 1280,
            path4: None,
            path6: None,
        },
        &[],
    );
    r.outbound();
    r.inbound("stack", 31000);
    // Stack mode's connections went to mid's address, which mid DNATs on
    // to the inner namespace: the real-address splice saw the answers
    // leave through the TAP and gave those clients to the userspace stack,
    // which delivered the bytes above.
    assert!(
        r.counter("real_address_fallbacks") >= 2,
        "{}",
        r.api(r#"{"execute":"status"}"#)
    );
    r.inbound("splice", 31100);
    r.dns();
    // Echo replies larger than the inner link (mid fragments the requests,
    // rlnet reassembles them; mid fragments the replies).
    for dst in ["10.0.2.2", OUTSIDE4] {
        let out = run_ok(r.inner.sh(&format!("ping -c 2 -W 10 -s 3000 {dst}")));
        assert!(out.contains("2 received"), "{dst}: {out}");
    }
}

/// The path is smaller than the MSS the inner namespace advertised (mid's
/// route to it has a locked MTU of 1400 / 1280 under 1500-byte veths): the
/// namespace reports it with ICMP, rlnet lowers the flow's segment size and
/// the transfers complete.
#[test]
fn path_mtu_below_the_inner_mss() {
    require_userns!();
    let r = setup(
        Links {
            veth4: 1500,
            veth6: 1500,
            path4: Some(1400),
            path6: Some(1280),
        },
        &["--log-level", "debug"],
    );
    // Check the premise: mid reports the smaller MTU for the inner address.
    let got = run_ok(r.mid.sh(&format!(
        "ip -o route get {INNER4}; ip -o -6 route get {INNER6}"
    )));
    assert!(
        got.contains("mtu lock 1400") && got.contains("mtu lock 1280"),
        "{got}"
    );
    r.outbound();
    r.inbound("stack", 32000);
    // And that it is the ICMP path that made them complete: rlnet lowered
    // flows to those MTUs (it says so at debug level, once per flow).
    let log = r.rlnet.proc.stderr();
    for mtu in [1400, 1280] {
        assert!(
            log.lines()
                .any(|l| l.contains("path MTU of the flow") && l.ends_with(&format!(" is {mtu}"))),
            "no flow lowered to {mtu}: {}",
            log.lines()
                .filter(|l| l.contains("MTU"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
