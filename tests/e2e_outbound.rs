//! Outbound networking end to end: real namespaces, real TAP, rlnet running
//! unprivileged, servers in a hermetic outer namespace (or on loopback).

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Linux's initial SYN retransmission timeout (TCP_TIMEOUT_INIT).
const SYN_RTO_MS: f64 = 1000.0;

/// Acceptance 1: `rlnet run` as an unprivileged user reaches TCP and UDP
/// servers on the host's 127.0.0.1 / ::1 through 10.0.2.2 / [fd00::2]; 1 GiB
/// each way, byte-exact (the receiver regenerates and compares every byte).
#[test]
fn run_mode_reaches_host_loopback_1gib_each_way() {
    require_userns!();
    for (host, gw) in [("127.0.0.1", "10.0.2.2"), ("[::1]", "[fd00::2]")] {
        let (mut sink, sink_port) =
            serve_on_host(&["serve-tcp", &format!("{host}:0"), &format!("sink:{GIB}:11")]);
        let (mut source, source_port) = serve_on_host(&[
            "serve-tcp",
            &format!("{host}:0"),
            &format!("source:{GIB}:12"),
        ]);
        let (_udp, udp_port) = serve_on_host(&["serve-udp", &format!("{host}:0")]);
        let tk = testkit_bin();
        let tk = tk.display();
        let script = format!(
            "{tk} tcp {gw}:{sink_port} send:{GIB}:11 && {tk} tcp {gw}:{source_port} recv:{GIB}:12 \
             && {tk} udp {gw}:{udp_port} --count 200"
        );
        let mut cmd = base_cmd(rlnet_bin());
        cmd.args(["run", "--", "sh", "-c", &script]);
        let out = run_ok(cmd);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        for l in &lines {
            ok(l);
        }
        assert_eq!(field(lines[0], "bytes"), Some(&*GIB.to_string()));
        assert_eq!(field(lines[1], "bytes"), Some(&*GIB.to_string()));
        assert_eq!(field(lines[2], "received"), Some("200"));
        // The servers checked the bytes too.
        sink.wait();
        source.wait();
        ok(&sink.expect_line("ok"));
        ok(&source.expect_line("ok"));
        eprintln!(
            "{host}: out {} Gbit/s, in {} Gbit/s",
            field(lines[0], "gbps").unwrap_or("?"),
            field(lines[1], "gbps").unwrap_or("?")
        );
    }
}

/// `rlnet run` exits with the command's status.
#[test]
fn run_mode_exit_status() {
    require_userns!();
    let mut cmd = base_cmd(rlnet_bin());
    cmd.args(["run", "--", "sh", "-c", "exit 7"]);
    let (st, _, err) = run(cmd);
    assert_eq!(st.code(), Some(7), "{err}");
}

struct Net {
    outer: Outer,
    target: Target,
    rlnet: Rlnet,
}

/// An outer "host", a target namespace and rlnet serving it in PID mode.
fn setup(extra: &[&str]) -> Net {
    let outer = Outer::new();
    let target = outer.target();
    let pid = target.pid().to_string();
    let mut args: Vec<&str> = extra.to_vec();
    args.push(&pid);
    let rlnet = start_rlnet(outer.rlnet_cmd(), &args);
    Net {
        outer,
        target,
        rlnet,
    }
}

/// TCP both ways, UDP and ping to an outside address, IPv4 and IPv6.
#[test]
fn outside_tcp_udp_ping_v4_v6() {
    require_userns!();
    let n = setup(&[]);
    for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
        let size = 64 * MIB;
        let (mut sink, p1) =
            n.outer
                .serve(&["serve-tcp", &format!("{addr}:0"), &format!("sink:{size}:1")]);
        let (mut source, p2) = n.outer.serve(&[
            "serve-tcp",
            &format!("{addr}:0"),
            &format!("source:{size}:2"),
        ]);
        let (_udp, p3) = n.outer.serve(&["serve-udp", &format!("{addr}:0")]);
        ok(&run_ok(n.target.testkit(&[
            "tcp",
            &format!("{addr}:{p1}"),
            &format!("send:{size}:1"),
        ])));
        ok(&run_ok(n.target.testkit(&[
            "tcp",
            &format!("{addr}:{p2}"),
            &format!("recv:{size}:2"),
        ])));
        ok(&run_ok(n.target.testkit(&[
            "udp",
            &format!("{addr}:{p3}"),
            "--count",
            "100",
        ])));
        sink.wait();
        source.wait();
        let sunk = sink.expect_line("ok");
        ok(&sunk);
        // No NAT to the gateway: the outside server sees the connection
        // coming from the host (the outer namespace's own address).
        let peer = field(&sunk, "peer").unwrap_or("");
        assert!(peer.contains(OUTSIDE4) || peer.contains(OUTSIDE6), "{sunk}");
    }
    for (ping, dst) in [
        ("ping", OUTSIDE4),
        ("ping", OUTSIDE6),
        ("ping", "10.0.2.2"),
        ("ping", "fd00::2"),
        ("ping", "10.0.2.3"),
    ] {
        let out = run_ok(n.target.sh(&format!("{ping} -c 2 -W 5 {dst}")));
        assert!(out.contains("2 received"), "{dst}: {out}");
    }
}

/// A reader in the namespace slower than the outside sender: every byte
/// arrives, and rlnet stops reading the host socket while the namespace
/// takes no more (`read_pauses`), then reads on (a lost wake-up would hang
/// here until the client's timeout).
#[test]
fn slow_reader_in_the_namespace_holds_the_sender_back() {
    require_userns!();
    let dir = TempDir::new("slow");
    let sock = dir.path("api.sock");
    let n = setup(&["--api-socket", &sock]);
    // Far more than the sockets and smoltcp's buffer hold.
    let size = 64 * MIB;
    let (mut source, port) = n.outer.serve(&[
        "serve-tcp",
        &format!("{OUTSIDE4}:0"),
        &format!("source:{size}:3"),
    ]);
    ok(&run_ok(n.target.testkit(&[
        "tcp",
        &format!("{OUTSIDE4}:{port}"),
        &format!("recv:{size}:3"),
        "--read",
        "512",
    ])));
    source.wait();
    ok(&source.expect_line("ok"));
    assert!(
        n.outer.status_counter(&sock, "read_pauses") > 0,
        "the sender was never held back"
    );
}

/// 1 MiB after SHUT_WR, both ways, over IPv4 and IPv6.
#[test]
fn half_close_both_ways() {
    require_userns!();
    let n = setup(&[]);
    for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
        for mode in ["halfclose-a", "halfclose-b"] {
            let spec = format!("{mode}:{MIB}:5");
            let (mut srv, port) = n.outer.serve(&["serve-tcp", &format!("{addr}:0"), &spec]);
            ok(&run_ok(n.target.testkit(&[
                "tcp",
                &format!("{addr}:{port}"),
                &spec,
            ])));
            srv.wait();
            ok(&srv.expect_line("ok"));
        }
    }
}

/// A closed port is refused at once (RST from the connect-first handshake),
/// not accepted and then reset: the namespace's first SYN is answered. An
/// answer only to a retransmitted SYN would come after the kernel's initial
/// retransmission timeout (1 s), so that is the bound, whatever the load.
#[test]
fn closed_port_is_refused_at_the_first_syn() {
    require_userns!();
    let n = setup(&[]);
    for dst in [
        format!("{OUTSIDE4}:9"),
        format!("[{OUTSIDE6}]:9"),
        "10.0.2.2:9".into(),
        "[fd00::2]:9".into(),
    ] {
        let mut worst = 0.0f64;
        for _ in 0..5 {
            let out = run_ok(n.target.testkit(&["connect", &dst, "--expect", "refused"]));
            let ms: f64 = field(&out, "ms").and_then(|m| m.parse().ok()).expect("ms");
            worst = worst.max(ms);
        }
        assert!(worst < SYN_RTO_MS, "{dst}: refused after {worst} ms");
    }
}

/// `--disable-host-loopback`: the gateway no longer reaches the host's
/// loopback (fast "Network is unreachable"), the outside still works.
#[test]
fn disable_host_loopback() {
    require_userns!();
    let n = setup(&["--disable-host-loopback"]);
    let (_lo, lport) = n.outer.serve(&["serve-tcp", "127.0.0.1:0", "echo"]);
    let (_lo6, lport6) = n.outer.serve(&["serve-tcp", "[::1]:0", "echo"]);
    run_ok(n.target.testkit(&[
        "connect",
        &format!("10.0.2.2:{lport}"),
        "--expect",
        "netunreach",
    ]));
    run_ok(n.target.testkit(&[
        "connect",
        &format!("[fd00::2]:{lport6}"),
        "--expect",
        "netunreach",
    ]));
    let (_out, oport) = n
        .outer
        .serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "echo"]);
    ok(&run_ok(n.target.testkit(&[
        "tcp",
        &format!("{OUTSIDE4}:{oport}"),
        "echo:100000:3",
    ])));

    // Without the flag the same host loopback server is reachable.
    let m = setup(&[]);
    let (_lo, lport) = m.outer.serve(&["serve-tcp", "127.0.0.1:0", "echo"]);
    ok(&run_ok(m.target.testkit(&[
        "tcp",
        &format!("10.0.2.2:{lport}"),
        "echo:100000:3",
    ])));
}

/// MTU 1500 and 65520: the link gets it, transfers are byte-exact.
#[test]
fn mtu_1500_and_65520() {
    require_userns!();
    for mtu in ["1500", "65520"] {
        let n = setup(&["--mtu", mtu]);
        // (/sys shows the namespace of whoever mounted it; ask netlink.)
        let link = run_ok(n.target.sh("ip -o link show tap0"));
        assert!(link.contains(&format!(" mtu {mtu} ")), "{link}");
        for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
            let size = 32 * MIB;
            let (mut srv, port) = n.outer.serve(&["serve-tcp", &format!("{addr}:0"), "echo"]);
            ok(&run_ok(n.target.testkit(&[
                "tcp",
                &format!("{addr}:{port}"),
                &format!("echo:{size}:9"),
            ])));
            srv.wait();
        }
    }
}

/// Issue 13, finding 5: with `--disable-dns`, everything sent to the DNS
/// address is dropped silently, as docs/compat.md says and slirp4netns's
/// own `disable-dns` test expects (`ncat` reports a connection timeout):
/// the address answers ARP and neighbour solicitations (as libslirp's
/// does), so a client waits for its own timeout instead of failing with
/// "No route to host" after its ARP gave up (about 3 s); no ICMP error, no
/// RST, no echo reply, on any port, over IPv4 and IPv6.
#[test]
fn disable_dns_drops_silently() {
    require_userns!();
    let n = setup(&["--disable-dns"]);
    // Longer than the namespace's address resolution takes to give up.
    let wait = "6";
    for addr in [
        "10.0.2.3:53",
        "10.0.2.3:80",
        "[fd00::3]:53",
        "[fd00::3]:443",
    ] {
        let (_, out, err) =
            run(n
                .target
                .testkit(&["connect", addr, "--expect", "timeout", "--timeout", wait]));
        assert_eq!(
            field(&out, "result"),
            Some("timeout"),
            "TCP {addr}: {out} {err}"
        );
    }
    for addr in ["10.0.2.3:53", "[fd00::3]:53", "10.0.2.3:5353"] {
        let (_, out, err) =
            run(n
                .target
                .testkit(&["udp", addr, "--expect-unreachable", "--timeout", wait]));
        assert_eq!(
            field(&out, "result"),
            Some("timeout"),
            "UDP {addr}: {out} {err}"
        );
    }
    for dst in ["10.0.2.3", "fd00::3"] {
        let (st, out, err) = run(n.target.sh(&format!("ping -c 2 -W 3 {dst}")));
        assert!(
            !st.success() && out.contains(" 0 received") && !out.contains("nreachable"),
            "ping {dst}: {out} {err}"
        );
    }
    // slirp4netns's test-slirp4netns-disable-dns.sh checks ncat's verdict
    // (there with ncat's 10 s default connect timeout).
    let (_, out, err) = run(n.target.sh(&format!(
        "echo 'should fail' | ncat -v -w {wait} 10.0.2.3 53 2>&1"
    )));
    assert!(
        out.contains("TIMEOUT") || out.contains("Connection timed out"),
        "ncat: {out} {err}"
    );
    // The rest of the network is unaffected.
    let out = run_ok(n.target.sh("ping -c 1 -W 10 10.0.2.2"));
    assert!(out.contains("1 received"), "{out}");
}

/// Issue 13, finding 7: UDP datagrams larger than the MTU (`--mtu 1500`)
/// go through byte-exact, 3,000 and 60,000 bytes, IPv4 and IPv6: from the
/// namespace to an outside server and back (rlnet reassembles the
/// namespace's fragments and fragments the replies), and from an outside
/// client through a published UDP port to a service in the namespace and
/// back. Large pings work too.
#[test]
fn udp_datagrams_larger_than_the_mtu() {
    require_userns!();
    let n = setup(&["--mtu", "1500", "-p", "32005:7005/udp"]);
    let (_svc, _) = n.target.serve(&["serve-udp", "[::]:7005"]);
    for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
        let (_srv, port) = n.outer.serve(&["serve-udp", &format!("{addr}:0")]);
        for size in ["3000", "60000"] {
            let out = run_ok(n.target.testkit(&[
                "udp",
                &format!("{addr}:{port}"),
                "--size",
                size,
                "--count",
                "5",
                "--timeout",
                "30",
            ]));
            ok(&out);
            let out = run_ok(n.outer.testkit_cmd(&[
                "udp",
                &format!("{addr}:32005"),
                "--size",
                size,
                "--count",
                "5",
                "--timeout",
                "30",
            ]));
            ok(&out);
        }
    }
    // Echo requests and replies of 3,000 bytes, answered by the gateway
    // and by outside hosts.
    for dst in ["10.0.2.2", "fd00::2", OUTSIDE4, OUTSIDE6] {
        let out = run_ok(n.target.sh(&format!("ping -c 2 -s 3000 -W 5 {dst}")));
        assert!(out.contains("2 received"), "{dst}: {out}");
    }
    // The namespace cut its datagrams, and rlnet cut what it sent in:
    // the namespace put fragments together, in both families.
    let v4 = run_ok(n.target.sh("grep '^Ip:' /proc/net/snmp"));
    let keys: Vec<&str> = v4.lines().next().unwrap_or("").split_whitespace().collect();
    let vals: Vec<&str> = v4.lines().nth(1).unwrap_or("").split_whitespace().collect();
    let v4_stat = |k: &str| -> u64 {
        keys.iter()
            .position(|x| *x == k)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let v6 = run_ok(n.target.sh("cat /proc/net/snmp6"));
    let v6_stat = |k: &str| -> u64 {
        v6.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for (what, got) in [
        ("IPv4 FragCreates", v4_stat("FragCreates")),
        ("IPv4 ReasmOKs", v4_stat("ReasmOKs")),
        ("Ip6FragCreates", v6_stat("Ip6FragCreates ")),
        ("Ip6ReasmOKs", v6_stat("Ip6ReasmOKs ")),
    ] {
        assert!(got > 0, "{what} is 0 in the namespace:\n{v4}\n{v6}");
    }
}

/// Bursts of datagrams from the namespace, which rlnet sends on as one
/// segmented send (UDP_SEGMENT) per burst: every echo comes back whole and
/// its own length, IPv4 and IPv6. Then with the outside reached over a
/// 1,500-byte MTU, where the kernel refuses to segment datagrams larger than
/// that: rlnet sends them one by one (fragmented) and they still arrive.
#[test]
fn udp_bursts_arrive_as_the_datagrams_sent() {
    require_userns!();
    let n = setup(&[]);
    let burst = |addr: &str, port: u16, size: &str| {
        let out = run_ok(n.target.testkit(&[
            "udp",
            &format!("{addr}:{port}"),
            "--burst",
            "32",
            "--count",
            "256",
            "--size",
            size,
            "--timeout",
            "60",
        ]));
        ok(&out);
    };
    for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
        let (_srv, port) = n.outer.serve(&["serve-udp", &format!("{addr}:0")]);
        burst(&addr, port, "1200");
    }
    let mut c = n.outer.cmd("ip");
    c.args(["link", "set", "lo", "mtu", "1500"]);
    run_ok(c);
    for addr in [OUTSIDE4.to_string(), format!("[{OUTSIDE6}]")] {
        let (_srv, port) = n.outer.serve(&["serve-udp", &format!("{addr}:0")]);
        burst(&addr, port, "3000");
    }
}

/// Path mode: `--netns-type=path` with `--userns-path`.
#[test]
fn path_mode() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let netns = format!("/proc/{}/ns/net", target.pid());
    let userns = format!("/proc/{}/ns/user", target.pid());
    let _r = start_rlnet(
        outer.rlnet_cmd(),
        &[
            "--netns-type=path",
            &format!("--userns-path={userns}"),
            &netns,
            "tap0",
        ],
    );
    let (_srv, port) = outer.serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "echo"]);
    ok(&run_ok(target.testkit(&[
        "tcp",
        &format!("{OUTSIDE4}:{port}"),
        "echo:1000000:4",
    ])));
}

/// PID mode: rlnet exits within 2 s of the target's exit, with status 0.
#[test]
fn exits_when_target_exits() {
    require_userns!();
    let mut n = setup(&[]);
    // From the moment the target is gone (kill() waits until it is reaped).
    n.target.kill();
    let t0 = Instant::now();
    let st = n
        .rlnet
        .proc
        .wait_timeout(Duration::from_secs(10))
        .expect("rlnet still running");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert!(st.success(), "{st}");
}

/// SIGTERM and SIGINT: clean exit 0.
#[test]
fn sigterm_exits_zero() {
    require_userns!();
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut n = setup(&[]);
        n.rlnet.proc.kill(sig);
        let st = n.rlnet.proc.wait();
        assert_eq!(st.code(), Some(0), "{sig}: {st}");
    }
}

/// Exit fd: data written into the pipe does not end rlnet; closing the
/// write end does; an fd that is not open ends it at once (slirp4netns).
#[test]
fn exit_fd_semantics() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let pid = target.pid().to_string();

    let exit = Pipe::new();
    let mut cmd = outer.rlnet_cmd();
    cmd.args(["--exit-fd", "4"]);
    pass_fd(&mut cmd, &exit.read, 4);
    let mut r = start_rlnet(cmd, &[&pid]);
    drop(exit.read);
    nix::unistd::write(&exit.write, b"data").unwrap();
    // A flow served after the data was written: rlnet has seen the data by
    // then (its loop took the readable exit fd before the flow's frames).
    let (_srv, port) = outer.serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "echo"]);
    ok(&run_ok(target.testkit(&[
        "tcp",
        &format!("{OUTSIDE4}:{port}"),
        "echo:1000:4",
    ])));
    assert!(r.proc.child.try_wait().unwrap().is_none(), "exited on data");
    let t0 = Instant::now();
    drop(exit.write);
    let st = r.proc.wait();
    assert!(st.success(), "{st}");
    assert!(t0.elapsed() < Duration::from_secs(2));

    // An exit fd that is not open: exit promptly, status 0.
    let mut cmd = outer.rlnet_cmd();
    cmd.args(["--exit-fd", "9", &pid]);
    let (st, _, err) = run(cmd);
    assert!(st.success(), "{st} {err}");
}

/// The ready fd gets exactly "1", once the namespace can reach the gateway.
#[test]
fn ready_fd_means_reachable() {
    require_userns!();
    let n = setup(&[]);
    // No retry loop: the first attempt right after ready must work.
    let out = run_ok(n.target.sh("ping -c 1 -W 10 10.0.2.2"));
    assert!(out.contains("1 received"), "{out}");
    eprintln!("ready after {:?}", n.rlnet.ready);
}

/// A TAP the caller made (RootlessKit's way) is attached, not configured;
/// DHCP on it leases network+15 like slirp4netns (the upstream dhcp test).
#[test]
fn precreated_tap_and_dhcp() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    run_ok(target.sh("ip tuntap add tap0 mode tap && ip link set tap0 up"));
    let _r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string(), "tap0"]);
    // Not configured by rlnet: no address yet.
    let addrs = run_ok(target.sh("ip -o -4 addr show tap0"));
    assert!(
        addrs.trim().is_empty(),
        "rlnet configured a caller's TAP: {addrs}"
    );
    let out = run_ok(target.sh("busybox udhcpc -q -n -i tap0 -s /bin/true 2>&1"));
    assert!(out.contains("lease of 10.0.2.15 obtained"), "{out}");
}

/// `-c --macaddress` sets the MAC; `--cidr` moves the plan (network+100).
#[test]
fn configure_with_mac_and_cidr() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let _r = start_rlnet(
        outer.rlnet_cmd(),
        &[
            "-c",
            "--macaddress",
            "0e:d4:18:d9:38:fb",
            "--cidr",
            "10.0.135.128/25",
            &target.pid().to_string(),
        ],
    );
    let link = run_ok(target.sh("ip -o link show tap0"));
    assert!(link.contains("0e:d4:18:d9:38:fb"), "{link}");
    let addr = run_ok(target.sh("ip -o -4 addr show tap0"));
    assert!(addr.contains("10.0.135.228/25"), "{addr}");
    let ping = run_ok(target.sh("ping -c 1 -W 10 10.0.135.130"));
    assert!(ping.contains("1 received"), "{ping}");
}
