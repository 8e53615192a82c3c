//! Published ports end to end: host ports into the namespace in both modes,
//! the API socket as Podman and RootlessKit use it, and every bad input.
//! Clients run in the outer ("host") namespace, services in the target.

mod common;

use common::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// A second outside address: clients that use it are not on loopback.
const CLIENT4: &str = "198.18.0.2";
const CLIENT6: &str = "2001:db8::2";

struct Pub {
    outer: Outer,
    target: Target,
    rlnet: Rlnet,
    sock: String,
    _dir: TempDir,
}

/// An outer namespace with two outside addresses, a target, and rlnet with
/// an API socket and `args`.
fn setup(args: &[&str]) -> Pub {
    let outer = Outer::new();
    let mut c = outer.cmd("sh");
    c.arg("-c").arg(format!(
        "ip addr add {CLIENT4}/32 dev lo && ip -6 addr add {CLIENT6}/128 dev lo nodad"
    ));
    run_ok(c);
    let target = outer.target();
    let dir = TempDir::new("pub");
    let sock = dir.path("api.sock");
    let pid = target.pid().to_string();
    let mut all: Vec<&str> = vec!["--api-socket", &sock];
    all.extend_from_slice(args);
    all.push(&pid);
    let rlnet = start_rlnet(outer.rlnet_cmd(), &all);
    Pub {
        outer,
        target,
        rlnet,
        sock,
        _dir: dir,
    }
}

impl Pub {
    /// A raw API request from inside the outer namespace (same user as
    /// rlnet, as real callers are); returns the reply line.
    fn api(&self, req: &str) -> String {
        let out = run_ok(self.outer.testkit_cmd(&["api", &self.sock, req]));
        out.lines().next().unwrap_or("").to_string()
    }

    fn list(&self) -> String {
        self.api(r#"{"execute":"list_hostfwd"}"#)
    }

    /// Publish two ports, (host port, namespace port) each, in `mode`.
    fn publish_two(&self, ports: [(u16, u16); 2], mode: &str) {
        let [(hp, sp), (hq, qp)] = ports;
        let req = format!(
            r#"{{"execute":"add_publish","arguments":{{"publish":["{hp}:{sp}","{hq}:{qp}"],"mode":"{mode}"}}}}"#
        );
        let reply = self.api(&req);
        assert!(reply.contains(r#""ids""#), "{reply}");
    }

    /// One of rlnet's `status` counters.
    fn counter(&self, name: &str) -> u64 {
        self.outer.status_counter(&self.sock, name)
    }

    /// A service inside the namespace.
    fn serve(&self, args: &[&str]) -> (Proc, u16) {
        self.target.serve(args)
    }

    /// A client in the outer namespace.
    fn client(&self, args: &[&str]) -> (std::process::ExitStatus, String, String) {
        run(self.outer.testkit_cmd(args))
    }
}

/// 1 GiB each way through a published TCP port, in stack mode (the
/// default) and in splice mode; the service sees the client's real address
/// in stack mode and the namespace's own address in splice mode.
#[test]
fn tcp_1gib_each_way_both_modes() {
    require_userns!();
    let p = setup(&[]);
    for (round, (mode, expect_peer)) in [("stack", CLIENT4), ("splice", "10.0.2.100")]
        .into_iter()
        .enumerate()
    {
        let (mut sink, sport) = p.serve(&["serve-tcp", "0.0.0.0:0", &format!("sink:{GIB}:21")]);
        let (mut source, qport) = p.serve(&["serve-tcp", "0.0.0.0:0", &format!("source:{GIB}:22")]);
        let hp = 30000 + 10 * u16::try_from(round).unwrap();
        let hq = hp + 1;
        p.publish_two([(hp, sport), (hq, qport)], mode);
        let (st, out, err) =
            p.client(&["tcp", &format!("{CLIENT4}:{hp}"), &format!("send:{GIB}:21")]);
        assert!(st.success(), "{mode} send: {err}");
        ok(&out);
        let (st, out, err) =
            p.client(&["tcp", &format!("{CLIENT4}:{hq}"), &format!("recv:{GIB}:22")]);
        assert!(st.success(), "{mode} recv: {err}");
        ok(&out);
        sink.wait();
        source.wait();
        let got = sink.expect_line("ok");
        ok(&got);
        ok(&source.expect_line("ok"));
        let peer = field(&got, "peer").unwrap_or("");
        assert!(
            peer.starts_with(&format!("{expect_peer}:")),
            "{mode}: the service saw {peer}"
        );
    }
}

/// Readers slower than their senders, both ways, in stack mode (the
/// real-address splice) and splice mode: every byte arrives, and the
/// spliced connection stops reading the sender's end while the reader's
/// side is full (`read_pauses`), then reads on (a lost wake-up would
/// hang here until the clients' timeouts).
#[test]
fn slow_readers_hold_the_sender_back_without_loss() {
    require_userns!();
    let p = setup(&[]);
    // Far more than every buffer on the way (sockets, pipe) holds.
    let size = 64 * MIB;
    for (round, mode) in ["stack", "splice"].into_iter().enumerate() {
        let sink_spec = format!("sink:{size}:31");
        let (mut sink, sport) = p.serve(&["serve-tcp", "0.0.0.0:0", &sink_spec, "--read", "512"]);
        let (mut source, qport) =
            p.serve(&["serve-tcp", "0.0.0.0:0", &format!("source:{size}:32")]);
        let hp = 30100 + 10 * u16::try_from(round).unwrap();
        let hq = hp + 1;
        p.publish_two([(hp, sport), (hq, qport)], mode);
        let before = p.counter("read_pauses");
        let (st, out, err) = p.client(&[
            "tcp",
            &format!("{CLIENT4}:{hp}"),
            &format!("send:{size}:31"),
        ]);
        assert!(st.success(), "{mode} send: {err}");
        ok(&out);
        sink.wait();
        ok(&sink.expect_line("ok"));
        let sent = p.counter("read_pauses");
        assert!(sent > before, "{mode}: the client was never held back");
        let (st, out, err) = p.client(&[
            "tcp",
            &format!("{CLIENT4}:{hq}"),
            &format!("recv:{size}:32"),
            "--read",
            "512",
        ]);
        assert!(st.success(), "{mode} recv: {err}");
        ok(&out);
        source.wait();
        ok(&source.expect_line("ok"));
        assert!(
            p.counter("read_pauses") > sent,
            "{mode}: the service was never held back"
        );
    }
}

/// TCP and UDP, IPv4 and IPv6, the client's real address, half-close both
/// ways, and a host-loopback client shown as the gateway.
#[test]
fn tcp_udp_v4_v6_addresses_and_half_close() {
    require_userns!();
    let p = setup(&[
        "-p",
        "32001:7001",
        "-p",
        "32002:7002/udp",
        "-p",
        "32003:7003",
    ]);
    // Dual-stack services ([::] takes IPv4 too).
    let (_echo, _) = p.serve(&["serve-tcp", "[::]:7001", "echo", "--count", "100"]);
    let (_udp, _) = p.serve(&["serve-udp", "[::]:7002"]);
    for host in [
        CLIENT4.to_string(),
        format!("[{CLIENT6}]"),
        "127.0.0.1".into(),
        "[::1]".into(),
    ] {
        let (st, out, err) = p.client(&[
            "tcp",
            &format!("{host}:32001"),
            &format!("echo:{}:5", 8 * MIB),
        ]);
        assert!(st.success(), "{host}: {err}");
        ok(&out);
        let (st, out, err) = p.client(&["udp", &format!("{host}:32002"), "--count", "50"]);
        assert!(st.success(), "{host} udp: {err}");
        ok(&out);
    }
    // Who the service sees: the real client, or the gateway for loopback.
    for (host, seen) in [
        (CLIENT4.to_string(), CLIENT4.to_string()),
        (format!("[{CLIENT6}]"), CLIENT6.to_string()),
        ("127.0.0.1".into(), "10.0.2.2".into()),
        ("[::1]".into(), "fd00::2".into()),
    ] {
        let (mut sink, _) = p.serve(&["serve-tcp", "[::]:7003", "sink:1000:1"]);
        let (st, _, err) = p.client(&["tcp", &format!("{host}:32003"), "send:1000:1"]);
        assert!(st.success(), "{host}: {err}");
        sink.wait();
        let line = sink.expect_line("ok");
        let peer = field(&line, "peer").unwrap_or("");
        assert!(
            peer.contains(&seen),
            "{host}: service saw {peer}, expected {seen}"
        );
    }
    // Every one of those TCP connections (the 4 echoes, the 4 above) took
    // the real-address splice, none fell back to the userspace stack.
    assert!(
        p.counter("real_address_splices") >= 8,
        "{}",
        p.api(r#"{"execute":"status"}"#)
    );
    assert_eq!(p.counter("real_address_fallbacks"), 0);
    for mode in ["halfclose-a", "halfclose-b"] {
        let spec = format!("{mode}:{MIB}:6");
        let (mut srv, _) = p.serve(&["serve-tcp", "0.0.0.0:7003", &spec]);
        let (st, out, err) = p.client(&["tcp", &format!("{CLIENT4}:32003"), &spec]);
        assert!(st.success(), "{mode}: {err}");
        ok(&out);
        srv.wait();
        ok(&srv.expect_line("ok"));
    }
}

/// A range of 100 ports is one rule, and every port of it works.
#[test]
fn port_range_of_100() {
    require_userns!();
    let p = setup(&["-p", "33000-33099:8000-8099"]);
    let list = p.list();
    assert_eq!(
        list.matches(r#""id""#).count(),
        2,
        "one rule (listed in both shapes): {list}"
    );
    for port in [8000u16, 8049, 8099] {
        let (_srv, _) = p.serve(&["serve-tcp", &format!("0.0.0.0:{port}"), "echo"]);
        let host = 33000 + (port - 8000);
        let (st, out, err) = p.client(&["tcp", &format!("{CLIENT4}:{host}"), "echo:100000:2"]);
        assert!(st.success(), "{port}: {err}");
        ok(&out);
    }
}

/// Only the namespace's interface address is the target: a service bound to
/// its 127.0.0.1 is not reachable (the connection is reset, no data: the
/// client fails with an I/O error, not its own timeout), one bound to
/// 0.0.0.0 is.
#[test]
fn loopback_only_service_is_not_exposed() {
    require_userns!();
    for mode in ["stack", "splice"] {
        let p = setup(&["--publish-mode", mode, "-p", "34001:9001"]);
        let (lo, _) = p.serve(&["serve-tcp", "127.0.0.1:9001", "echo"]);
        let (st, out, err) = p.client(&[
            "tcp",
            &format!("{CLIENT4}:34001"),
            "echo:1000:1",
            "--timeout",
            "60",
        ]);
        assert!(
            !st.success(),
            "{mode}: loopback-only service reached: {out}"
        );
        // testkit exits 1 on a failure, 3 when it gave up waiting: the
        // connection was cut, not left hanging.
        assert_eq!(st.code(), Some(1), "{mode}: not refused: {err}");
        drop(lo);
        let (_any, _) = p.serve(&["serve-tcp", "0.0.0.0:9001", "echo"]);
        let (st, out, err) = p.client(&["tcp", &format!("{CLIENT4}:34001"), "echo:1000:1"]);
        assert!(st.success(), "{mode}: {err}");
        ok(&out);
    }
}

/// Bad publish specs on the command line: one clear line, exit 1.
#[test]
fn bad_publish_specs_on_the_command_line() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let pid = target.pid().to_string();
    for (spec, needle) in [
        ("0:80", "0"),
        ("65536:80", "65536"),
        ("70000:80", "70000"),
        ("-1:80", "-1"),
        ("8080.5:80", "8080.5"),
        ("8080", "8080"),
        ("a:b", "a"),
        ("8000-8010:80-81", "length"),
        ("8080:80/sctp", "sctp"),
        ("::1:8080:80", "bracket"),
    ] {
        let mut c = outer.rlnet_cmd();
        c.args(["-p", spec, &pid]);
        let (st, _, err) = run(c);
        assert_eq!(st.code(), Some(1), "{spec}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{spec}: {err}");
        assert!(
            lines[0].to_lowercase().contains(&needle.to_lowercase()),
            "{spec}: {err}"
        );
    }
    // Ports below net.ipv4.ip_unprivileged_port_start: the message names it.
    let mut c = outer.rlnet_cmd();
    c.args(["-p", "80:80", &pid]);
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("ip_unprivileged_port_start"), "{err}");
    // A host port someone else holds.
    let (_other, taken) = outer.serve(&["serve-tcp", "0.0.0.0:0", "echo"]);
    let mut c = outer.rlnet_cmd();
    c.args(["-p", &format!("{taken}:80"), &pid]);
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("in use") && err.contains(&taken.to_string()),
        "{err}"
    );
}

/// Bad API requests get slirp4netns's error bodies and change nothing; a
/// multi-port request binds all or none; slow and oversized clients do not
/// block anything.
#[test]
fn bad_api_requests_change_nothing() {
    require_userns!();
    let mut p = setup(&["-p", "35001:7001"]);
    let before = p.list();
    let (_other, taken) = p.outer.serve(&["serve-tcp", "0.0.0.0:0", "echo"]);
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "bad request: cannot parse JSON"),
        (r#"{"execute":"add_hos"#.into(), "bad request: cannot parse JSON"),
        ("[1]".into(), "bad request: json_object() failed"),
        (r#""str""#.into(), "bad request: json_object() failed"),
        (r#"{"arguments":{}}"#.into(), "bad request: no execute found"),
        (r#"{"execute":42}"#.into(), "bad request: no execute found"),
        (r#"{"execute":"frobnicate"}"#.into(), "bad request: unknown execute"),
        (r#"{"execute":"add_hostfwd"}"#.into(), "bad request: add_hostfwd: bad arguments.proto"),
        (
            r#"{"execute":"add_hostfwd","arguments":{"host_port":8080,"guest_port":80}}"#.into(),
            "bad request: add_hostfwd: bad arguments.proto",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":8080,"guest_port":80}}"#.into(),
            "bad arguments.proto",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":70000,"guest_port":80}}"#.into(),
            "bad arguments.host_port",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080.5,"guest_port":80}}"#.into(),
            "bad arguments.host_port",
        ),
        (
            format!(r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_port":{taken},"guest_port":80}}}}"#),
            "slirp_add_hostfwd failed",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":35001,"guest_port":80}}"#.into(),
            "slirp_add_hostfwd failed",
        ),
        (r#"{"execute":"remove_hostfwd","arguments":{"id":99}}"#.into(), "bad arguments.id"),
        (r#"{"execute":"remove_publish","arguments":{"ids":[1,1]}}"#.into(), "duplicate id 1"),
        // All or none: the second spec conflicts, so 35010 is not bound either.
        (
            r#"{"execute":"add_publish","arguments":{"publish":["35010:80","35001:81"]}}"#.into(),
            "35001",
        ),
    ];
    for (req, desc) in cases {
        let reply = p.api(&req);
        assert!(reply.starts_with(r#"{"error":{"desc":"#), "{req}: {reply}");
        assert!(reply.contains(desc), "{req}: {reply} lacks {desc}");
        assert_eq!(p.list(), before, "{req} changed the table");
    }
    // 35010 was not left bound by the failed all-or-none request.
    let (_srv, _) = p.outer.serve(&["serve-tcp", "0.0.0.0:35010", "echo"]);

    // 1 MiB request: "too large", promptly.
    let big = run_ok(
        p.outer
            .testkit_cmd(&["api", &p.sock, "x", "--repeat", "1048576"]),
    );
    assert!(big.contains("bad request: too large message"), "{big}");

    // A client sending 1 byte/s, and one that never finishes: neither
    // blocks the data path or other clients, and both are cut off. rlnet
    // gives a client 5 s for its request; left alone, they would hang on
    // for their own 30 s --timeout.
    let (_e, _) = p.serve(&["serve-tcp", "0.0.0.0:7001", "echo"]);
    let mut slow = Proc::spawn(p.outer.testkit_cmd(&[
        "api",
        &p.sock,
        r#"{"execute":"list_hostfwd"}"#,
        "--trickle",
        "1000",
        "--timeout",
        "30",
    ]));
    let mut idle = Proc::spawn(p.outer.testkit_cmd(&[
        "api",
        &p.sock,
        "{",
        "--no-shutdown",
        "--timeout",
        "30",
    ]));
    assert_eq!(p.list(), before);
    let (st, out, _) = p.client(&["tcp", &format!("{CLIENT4}:35001"), "echo:1000000:1"]);
    assert!(st.success(), "data path blocked by a slow API client");
    ok(&out);
    // Done while both were still held: had rlnet waited for them, nothing
    // would have moved until it cut them off.
    for (what, c) in [("slow", &mut slow), ("idle", &mut idle)] {
        assert!(
            c.child.try_wait().unwrap().is_none(),
            "the {what} API client was gone before the other work was done"
        );
    }
    for (what, mut c) in [("slow", slow), ("idle", idle)] {
        c.wait();
        c.drain();
        let held: f64 = c
            .stdout()
            .iter()
            .find_map(|l| l.strip_prefix("ms=")?.parse().ok())
            .unwrap_or_else(|| panic!("{what}: no ms= in {:?}", c.stdout()));
        assert!(
            held < 20_000.0,
            "the {what} API client was held for {held} ms, not cut off"
        );
    }
    assert!(
        p.rlnet.proc.child.try_wait().unwrap().is_none(),
        "rlnet died"
    );
}

/// Podman's and RootlessKit's exact requests, byte for byte, and the reply
/// shapes they parse.
#[test]
fn api_is_byte_compatible_with_callers() {
    require_userns!();
    let p = setup(&[]);
    let podman = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"tcp\",\"host_addr\":\"0.0.0.0\",\"host_port\":36001,\"guest_addr\":\"\",\"guest_port\":80}}\n";
    assert_eq!(p.api(podman), r#"{"return":{"id":1}}"#);
    let rootlesskit = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"tcp\",\"host_addr\":\"127.0.0.1\",\"host_port\":36002,\"guest_addr\":\"10.0.2.100\",\"guest_port\":80}}\n";
    assert_eq!(p.api(rootlesskit), r#"{"return":{"id":2}}"#);
    let list: serde_json::Value = serde_json::from_str(&p.list()).unwrap();
    assert_eq!(list["entries"].as_array().map(|a| a.len()), Some(2));
    assert_eq!(list["return"]["entries"][1]["host_addr"], "127.0.0.1");
    assert_eq!(
        p.api(r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#),
        r#"{"return":{}}"#
    );
    // Removed: new connections are refused at once.
    let (st, _, _) = p.client(&["connect", "127.0.0.1:36001", "--expect", "refused"]);
    assert!(st.success());
}

/// Ports added and removed at runtime while traffic flows on another port:
/// the transfer is untouched; a removed port refuses new connections at once.
#[test]
fn runtime_add_remove_during_traffic() {
    require_userns!();
    let p = setup(&["-p", "37001:7001"]);
    let (mut sink, _) = p.serve(&[
        "serve-tcp",
        "0.0.0.0:7001",
        &format!("sink:{}:9", 512 * MIB),
    ]);
    let mut transfer = Proc::spawn(p.outer.testkit_cmd(&[
        "tcp",
        &format!("{CLIENT4}:37001"),
        &format!("send:{}:9", 512 * MIB),
    ]));
    let (_b, _) = p.serve(&["serve-tcp", "0.0.0.0:7002", "echo", "--count", "100"]);
    for round in 0..5 {
        let port = 37100 + round;
        let mut c = p.outer.cmd(rlnet_bin());
        c.args(["port", "add", "-a", &p.sock, &format!("{port}:7002")]);
        let out = run_ok(c);
        let id = out.split_whitespace().last().unwrap_or("").to_string();
        let (st, out, err) = p.client(&["tcp", &format!("{CLIENT4}:{port}"), "echo:100000:1"]);
        assert!(st.success(), "{err}");
        ok(&out);
        let mut c = p.outer.cmd(rlnet_bin());
        c.args(["port", "rm", "-a", &p.sock, &id]);
        run_ok(c);
        let (st, out, _) = p.client(&[
            "connect",
            &format!("{CLIENT4}:{port}"),
            "--expect",
            "refused",
        ]);
        assert!(
            st.success(),
            "port {port} still accepts after removal: {out}"
        );
    }
    let st = transfer.wait();
    assert!(st.success(), "{}", transfer.stderr());
    ok(&transfer.expect_line("ok"));
    sink.wait();
    ok(&sink.expect_line("ok"));
}

/// 10,000 connect/request/close cycles through a published port: no fd or
/// memory leak. Afterwards rlnet holds what it held idle plus at most its
/// pools, whose sizes rlnet documents: in splice mode up to `POOL_MAX`
/// spare pipes (2 fds each) and up to `POOL_SPARE_MAX` namespace sockets
/// (one address family here); nothing in stack mode. How full the pipe pool
/// is depends on how many connections overlapped, which the scheduler
/// decides, so it is bounded, not compared with the warm-up.
#[test]
fn ten_thousand_cycles_return_to_baseline() {
    use rlnet::forward::{publish::POOL_SPARE_MAX, splice::POOL_MAX};
    require_userns!();
    for mode in ["stack", "splice"] {
        let p = setup(&["--publish-mode", mode, "-p", "38001:7001"]);
        let (_srv, _) = p.serve(&["serve-tcp", "0.0.0.0:7001", "echo", "--count", "10100"]);
        let pid = p.rlnet.proc.pid();
        // Both modes splice (stack mode from the client's real address):
        // pipes and sockets made ahead are kept for reuse, up to a bound.
        let (spare_pipes, spare_sockets) = (2 * POOL_MAX, POOL_SPARE_MAX);
        let idle = fds_of(pid);
        // Warm-up: what is made once (the socket factory) exists from here on.
        let (st, _, err) = p.client(&["crr", &format!("{CLIENT4}:38001"), "100"]);
        assert!(st.success(), "{err}");
        let (warm, rss0) = (fds_of(pid), rss_kib(pid));
        let (st, out, err) = p.client(&[
            "crr",
            &format!("{CLIENT4}:38001"),
            "10000",
            "--timeout",
            "120",
        ]);
        assert!(st.success(), "{mode}: {err}");
        ok(&out);
        let bounded =
            |f: Fds| f.pipes <= idle.pipes + spare_pipes && f.other <= warm.other + spare_sockets;
        let after = settle(pid, bounded);
        let rss1 = rss_kib(pid);
        eprintln!(
            "{mode}: {out}; fds idle {idle:?}, after the warm-up {warm:?}, at the end {after:?}; \
             RSS KiB {rss0} -> {rss1}"
        );
        assert!(
            bounded(after),
            "{mode}: fds {after:?}: more than idle ({idle:?}) plus {spare_pipes} pipe fds, or \
             more than after the warm-up ({warm:?}) plus {spare_sockets} sockets"
        );
        assert!(rss1 <= rss0 + 1024, "{mode}: RSS {rss0} KiB -> {rss1} KiB");
    }
}

/// `testkit hold ... --stdin` started by `c`, once its connection is open.
fn holding(mut c: std::process::Command) -> Proc {
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let held = Proc::from_child(c.spawn().unwrap());
    held.expect_line("open=1");
    held
}

/// Close a [`holding`] client's stdin, which ends it, and reap it.
fn release(mut held: Proc) {
    drop(held.child.stdin.take());
    held.wait();
}

/// The congestion control `ss -tin` shows for the established TCP socket
/// whose `side` (`sport` or `dport`) is `port`, run by `cmd()`; asked
/// until that socket exists (rlnet makes it when it gets to the
/// connection), for at most 60 s.
fn congestion_of(cmd: impl Fn() -> std::process::Command, side: &str, port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = cmd();
        c.args([
            "-Htin",
            "state",
            "established",
            &format!("( {side} = :{port} )"),
        ]);
        let out = run_ok(c);
        // Each socket: an address line, then its info line, which starts
        // with the algorithm's name.
        let name = out
            .lines()
            .filter(|l| l.starts_with(char::is_whitespace))
            .find_map(|l| l.split_whitespace().next());
        if let Some(name) = name {
            return name.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no socket with {side} {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// rlnet's sockets whose peer is on this machine use Reno, whatever the
/// host's default: the splice's socket to a service in the namespace, the
/// accepted connection of a loopback client, and an outbound connection to
/// the host's loopback. (A BBR default paces them from timers on any CPU:
/// segments out of order over loopback, and some sent twice.) A client
/// from another address keeps the host's default.
#[test]
fn local_hops_use_reno() {
    require_userns!();
    let p = setup(&["-p", "32005:7005", "-p", "32006:7006"]);
    let (_svc, _) = p.serve(&["serve-tcp", "[::]:7005", "hold"]);
    let (_other, _) = p.serve(&["serve-tcp", "[::]:7006", "hold"]);
    let in_ns = || p.target.cmd("ss");
    let on_host = || p.outer.cmd("ss");
    let held = holding(
        p.outer
            .testkit_cmd(&["hold", "127.0.0.1:32005", "1", "--stdin"]),
    );
    // Inside the namespace: rlnet's socket to the service (it exists once
    // rlnet has taken the client's connection)...
    assert_eq!(congestion_of(in_ns, "dport", 7005), "reno");
    // ... and on the host the connection it accepted from the client.
    assert_eq!(congestion_of(on_host, "sport", 32005), "reno");
    release(held);
    // A client from another address: the accepted connection keeps the
    // default (which may be Reno too).
    let default = run_ok({
        let mut c = p.outer.cmd("cat");
        c.arg("/proc/sys/net/ipv4/tcp_congestion_control");
        c
    });
    let client4 = format!("{CLIENT4}:32006");
    let held = holding(p.outer.testkit_cmd(&["hold", &client4, "1", "--stdin"]));
    assert_eq!(congestion_of(in_ns, "dport", 7006), "reno");
    let seen = congestion_of(on_host, "sport", 32006);
    assert_eq!(seen, default.trim());
    release(held);
    // Outbound to the host's loopback (10.0.2.2): rlnet's host socket,
    // connected before the namespace's client got its SYN-ACK.
    let (_out, port) = p.outer.serve(&["serve-tcp", "127.0.0.1:0", "hold"]);
    let gateway = format!("10.0.2.2:{port}");
    let held = holding(p.target.testkit(&["hold", &gateway, "1", "--stdin"]));
    assert_eq!(congestion_of(on_host, "dport", port), "reno");
    release(held);
}
