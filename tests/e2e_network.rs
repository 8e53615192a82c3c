//! Named networks end to end: the Docker bridge workflow in userspace.
//! Each test has its own outer ("host") namespace and its own runtime
//! directory, so networks of parallel tests never meet; every daemon a test
//! starts is removed (and, failing that, killed by PID) when it ends.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const MIB: u64 = 1 << 20;

fn with(mut c: Command, args: &[&str]) -> Command {
    c.args(args);
    c
}

/// An outer namespace with a private `$XDG_RUNTIME_DIR` for rlnet.
struct Lab {
    outer: Outer,
    xdg: String,
    nets: Vec<String>,
}

/// A member as `attach --json` prints it.
#[derive(Debug, Clone)]
struct Member {
    ip4: String,
    ip6: String,
    mac: String,
    tap: String,
    /// A kernel member's port on the network's bridge.
    bridge_port: Option<String>,
}

impl Member {
    fn of(v: &Value) -> Member {
        Member {
            ip4: v["ipv4"].as_str().expect("ipv4").to_string(),
            ip6: v["ipv6"].as_str().expect("ipv6").to_string(),
            mac: v["mac"].as_str().expect("mac").to_string(),
            tap: v["tap"].as_str().expect("tap").to_string(),
            bridge_port: v["bridge_port"].as_str().map(str::to_string),
        }
    }
}

/// How a test's members join a network: attached from outside (a TAP on
/// the userspace switch) or started by `rlnet run --network` (a veth on the
/// network's bridge, docs/kernel-switching.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    Attach,
    Run,
}

impl Lab {
    fn new() -> Lab {
        let outer = Outer::new();
        let mut c = base_cmd("mktemp");
        c.args(["-d", "/tmp/rlnet-e2e-net.XXXXXX"]);
        let xdg = run_ok(c).trim().to_string();
        Lab {
            outer,
            xdg,
            nets: Vec::new(),
        }
    }

    fn rlnet(&self, args: &[&str]) -> Command {
        // `rlnet run` maps the caller's uid, here the outer namespace's 0,
        // which the kernel allows only with CAP_SETFCAP (a user on a real
        // host maps a non-zero uid); every other command runs without caps.
        // The network daemon maps it too, for its bridge's user namespace:
        // it keeps only CAP_SETFCAP (and drops that once set up).
        let mut c = if args.first() == Some(&"run") {
            self.outer.cmd(rlnet_bin())
        } else if args.starts_with(&["network", "create"]) {
            self.outer.rlnet_setfcap_cmd()
        } else {
            self.outer.rlnet_cmd()
        };
        c.env("XDG_RUNTIME_DIR", &self.xdg).args(args);
        c
    }

    /// Run rlnet to completion: (success, stdout, stderr).
    fn try_rlnet(&self, args: &[&str]) -> (bool, String, String) {
        let (st, out, err) = run(self.rlnet(args));
        (st.success(), out, err)
    }

    fn rlnet_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.try_rlnet(args);
        assert!(ok, "rlnet {args:?} failed: {err}\n{out}");
        out
    }

    fn create(&mut self, name: &str, extra: &[&str]) {
        let mut args = vec!["network", "create"];
        args.extend_from_slice(extra);
        args.push(name);
        let out = self.rlnet_ok(&args);
        assert!(out.contains(&format!("created network {name}")), "{out}");
        self.nets.push(name.to_string());
    }

    fn attach(&self, net: &str, name: &str, pid: u32, extra: &[&str]) -> Member {
        let pid = pid.to_string();
        let mut args = vec!["attach", "--json", "--network", net, "--name", name];
        args.extend_from_slice(extra);
        args.push(&pid);
        let out = self.rlnet_ok(&args);
        let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        Member::of(&v)
    }

    /// A member started with `rlnet run --network NET --name NAME EXTRA`,
    /// running until the test drops it (killing `rlnet run` ends it).
    fn run_member(&self, net: &str, name: &str, extra: &[&str]) -> (Target, Member) {
        let mut args = vec!["run", "--network", net, "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", "echo ready; exec sleep 3600"]);
        let p = Proc::spawn(self.rlnet(&args));
        p.expect_line("ready");
        let v = self.member_json(net, name);
        let pid = u32::try_from(v["pid"].as_u64().expect("pid")).expect("pid fits u32");
        (Target::of(p, pid), Member::of(&v))
    }

    /// A member, either way.
    fn join(&self, how: Join, net: &str, name: &str) -> (Target, Member) {
        match how {
            Join::Attach => {
                let t = self.outer.target();
                let m = self.attach(net, name, t.pid(), &[]);
                (t, m)
            }
            Join::Run => {
                let (t, m) = self.run_member(net, name, &[]);
                assert!(
                    m.bridge_port.is_some(),
                    "{name} is not on the bridge: {m:?}"
                );
                (t, m)
            }
        }
    }

    /// Member `name` as `network inspect --json` shows it.
    fn member_json(&self, net: &str, name: &str) -> Value {
        let v = self.inspect(net);
        let found = v["members"]
            .as_array()
            .expect("members")
            .iter()
            .find(|m| m["name"] == name)
            .cloned();
        found.unwrap_or_else(|| panic!("no member {name} on {net}: {v}"))
    }

    fn inspect(&self, net: &str) -> Value {
        let out = self.rlnet_ok(&["network", "inspect", "--json", net]);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn daemon_pid(&self, net: &str) -> u32 {
        u32::try_from(self.inspect(net)["pid"].as_u64().expect("pid")).expect("pid fits u32")
    }

    fn members(&self, net: &str) -> usize {
        self.inspect(net)["members"]
            .as_array()
            .expect("members")
            .len()
    }

    fn record_pid(&self, net: &str) -> Option<i32> {
        let text = std::fs::read_to_string(format!("{}/rlnet/{net}.json", self.xdg)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().and_then(|p| i32::try_from(p).ok())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for net in std::mem::take(&mut self.nets) {
            let pid = self.record_pid(&net);
            let (ok, _, _) = self.try_rlnet(&["network", "rm", "--force", &net]);
            if !ok && let Some(pid) = pid.filter(|p| *p > 0) {
                // Ours: started by this test through `network create`.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.xdg);
    }
}

/// `host:port` for an address of either family.
fn hostport(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A byte-exact TCP stream from `from` to a sink in `to` at `ip`.
fn stream(from: &Target, to: &Target, ip: &str, bytes: u64, seed: u64) {
    let spec = format!("sink:{bytes}:{seed}");
    let bind = if ip.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let (server, port) = to.serve(&["serve-tcp", bind, &spec]);
    let send = format!("send:{bytes}:{seed}");
    let line = run_ok(from.testkit(&["tcp", &hostport(ip, port), &send]));
    ok(&line);
    let got = server.expect_line("ok=");
    ok(&got);
    assert_eq!(
        field(&got, "digest"),
        field(&line, "digest"),
        "{got} / {line}"
    );
}

fn udp_echo(from: &Target, to: &Target, ip: &str) {
    let bind = if ip.contains(':') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let (_server, port) = to.serve(&["serve-udp", bind, "--timeout", "20"]);
    ok(&run_ok(from.testkit(&[
        "udp",
        &hostport(ip, port),
        "--count",
        "50",
    ])));
}

/// The network's DNS stub (gateway's neighbour: .3 of the member's /24)
/// answers `name` to `from` with `want` (A and AAAA); "" means no answer.
fn resolves(from: &Target, stub: &str, name: &str, want4: &str, want6: &str) {
    for (ty, want) in [("A", want4), ("AAAA", want6)] {
        let line = run_ok(from.testkit(&["dig", stub, name, ty]));
        if want.is_empty() {
            // Not a name of this network: forwarded upstream, which fails
            // in the test's sealed namespace; never a member's address.
            assert_eq!(field(&line, "answers"), Some("0"), "{name} {ty}: {line}");
        } else {
            assert_eq!(
                field(&line, "rcode"),
                Some("NOERROR"),
                "{name} {ty}: {line}"
            );
            assert_eq!(field(&line, "data"), Some(want), "{name} {ty}: {line}");
        }
    }
}

/// The stub address of a member's network: N+3.
fn stub_of(ip4: &str) -> String {
    format!("{}.3", ip4.rsplit_once('.').unwrap().0)
}

fn ping(from: &Target, ip: &str) {
    run_ok(with(from.cmd("ping"), &["-c", "2", "-W", "5", ip]));
}

/// `from` cannot reach `ip` at all: connecting fails fast, and nothing was
/// NATed to the host (an impostor listening on that very address in the
/// outer namespace sees only our own fence connection).
fn unreachable(lab: &Lab, from: &Target, ip: &str) {
    let mut c = lab.outer.cmd("ip");
    if ip.contains(':') {
        c.args([
            "-6",
            "addr",
            "add",
            &format!("{ip}/128"),
            "dev",
            "lo",
            "nodad",
        ]);
    } else {
        c.args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
    }
    run_ok(c);
    let (impostor, port) =
        lab.outer
            .serve(&["serve-tcp", &hostport(ip, 0), "echo", "--count", "1"]);
    let line = run_ok(from.testkit(&[
        "connect",
        &hostport(ip, port),
        "--expect",
        "netunreach",
        "--timeout",
        "10",
    ]));
    assert_eq!(field(&line, "result"), Some("netunreach"), "{line}");
    // Had c's connect been NATed, it would hold the impostor's only slot
    // and this echo would never come back.
    ok(&run_ok(with(
        lab.outer.testkit(),
        &["crr", &hostport(ip, port), "1"],
    )));
    ok(&impostor.expect_line("ok="));
    let mut c = lab.outer.cmd("ip");
    if ip.contains(':') {
        c.args(["-6", "addr", "del", &format!("{ip}/128"), "dev", "lo"]);
    } else {
        c.args(["addr", "del", &format!("{ip}/32"), "dev", "lo"]);
    }
    run_ok(c);
}

/// Acceptance 1: network `second` with a and b, c on another network.
#[test]
fn tutorial_two_members_and_an_outsider() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("second", &[]);
    lab.create("other", &[]);
    let (ta, tb, tc) = (lab.outer.target(), lab.outer.target(), lab.outer.target());
    let a = lab.attach("second", "a", ta.pid(), &[]);
    let b = lab.attach("second", "b", tb.pid(), &[]);
    let c = lab.attach("other", "c", tc.pid(), &[]);
    assert_ne!(a.ip4, b.ip4);
    assert_eq!(a.tap, "tap0");
    // Distinct default subnets per network.
    let sub = |ip: &str| ip.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(sub(&a.ip4), sub(&b.ip4));
    assert_ne!(sub(&a.ip4), sub(&c.ip4));
    // The member's interface is what the daemon says.
    let link = run_ok(with(ta.cmd("ip"), &["-br", "link", "show", "tap0"]));
    assert!(link.contains(&a.mac), "{link}");

    for (ip_a, ip_b) in [(&a.ip4, &b.ip4), (&a.ip6, &b.ip6)] {
        stream(&ta, &tb, ip_b, 64 * MIB, 1);
        stream(&tb, &ta, ip_a, 64 * MIB, 2);
        udp_echo(&ta, &tb, ip_b);
        udp_echo(&tb, &ta, ip_a);
        ping(&ta, ip_b);
        ping(&tb, ip_a);
    }
    // By name: the stub answers members of the same network only.
    let stub = stub_of(&a.ip4);
    resolves(&ta, &stub, "b", &b.ip4, &b.ip6);
    resolves(&tb, &stub, "a", &a.ip4, &a.ip6);
    resolves(&ta, &stub, "c", "", "");
    resolves(&tc, &stub_of(&c.ip4), "a", "", "");
    resolves(&tc, &stub_of(&c.ip4), "b", "", "");
    // And names work in practice: getent through resolv.conf, in a member
    // started with `rlnet run`, which gets the stub as its resolver.
    let tk = testkit_bin();
    let tk = tk.to_str().unwrap();
    let server = Proc::spawn(tb.testkit(&["serve-tcp", "0.0.0.0:6000", "sink:1m:4"]));
    server.expect_line("listening");
    let echo = Proc::spawn(tb.testkit(&["serve-udp", "0.0.0.0:6001", "--timeout", "30"]));
    echo.expect_line("listening");
    let script = format!(
        "set -e; ip=$(getent ahostsv4 b | head -n1 | cut -d' ' -f1); echo ip=$ip; \
         {tk} tcp $ip:6000 send:1m:4; {tk} udp $ip:7 --expect-unreachable; \
         ping -c1 -W5 b >/dev/null && echo ping=ok"
    );
    let out = lab.rlnet_ok(&[
        "run",
        "--network",
        "second",
        "--name",
        "d",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.contains(&format!("ip={}", b.ip4)), "{out}");
    assert!(out.contains("ping=ok"), "{out}");
    ok(&server.expect_line("ok="));
    for ip in [&a.ip4, &b.ip4, &a.ip6, &b.ip6] {
        unreachable(&lab, &tc, ip);
    }
    // And the other way round.
    unreachable(&lab, &ta, &c.ip4);
    unreachable(&lab, &ta, &c.ip6);
    assert_eq!(lab.members("second"), 2);
    assert_eq!(lab.members("other"), 1);
}

/// Acceptance 2 (by address; names are checked with the DNS stub): db has
/// no published port, app publishes 8080:80.
#[test]
fn app_and_db_published_port() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("leafty", &[]);
    let (tdb, tapp) = (lab.outer.target(), lab.outer.target());
    let db = lab.attach("leafty", "db", tdb.pid(), &[]);
    let app = lab.attach("leafty", "app", tapp.pid(), &["-p", "8080:80"]);
    // app → db:3306.
    let server = Proc::spawn(tdb.testkit(&["serve-tcp", "0.0.0.0:3306", "echo"]));
    server.expect_line("listening");
    ok(&run_ok(tapp.testkit(&[
        "tcp",
        &format!("{}:3306", db.ip4),
        "echo:1m:5",
    ])));
    ok(&server.expect_line("ok="));
    // db:3306 by name, from a member started with `rlnet run`.
    let server = Proc::spawn(tdb.testkit(&["serve-tcp", "0.0.0.0:3306", "echo"]));
    server.expect_line("listening");
    let tk = testkit_bin();
    let script = format!(
        "ip=$(getent ahostsv4 db | head -n1 | cut -d' ' -f1) && {} tcp $ip:3306 echo:1m:6",
        tk.display()
    );
    ok(&lab.rlnet_ok(&[
        "run",
        "--network",
        "leafty",
        "--name",
        "app2",
        "--",
        "sh",
        "-c",
        &script,
    ]));
    ok(&server.expect_line("ok="));
    // Host → app through the published port, byte-exact, both families.
    for host in ["127.0.0.1", "::1"] {
        let server = Proc::spawn(tapp.testkit(&["serve-tcp", "[::]:80", "sink:8m:7"]));
        server.expect_line("listening");
        ok(&run_ok(with(
            lab.outer.testkit(),
            &["tcp", &hostport(host, 8080), "send:8m:7"],
        )));
        ok(&server.expect_line("ok="));
    }
    // The only rule leads to app; the host has no way to db.
    let v = lab.inspect("leafty");
    let ports = v["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 1, "{v}");
    assert_eq!(ports[0]["guest_addr"], app.ip4.as_str(), "{v}");
    // (The outer namespace has no route to the network at all.)
    let line = run_ok(with(
        lab.outer.testkit(),
        &["connect", &format!("{}:3306", db.ip4), "--expect", "error"],
    ));
    assert_eq!(field(&line, "result"), Some("error"), "{line}");
    // Publishing to db later is a runtime choice, by name.
    let out = lab.rlnet_ok(&[
        "port",
        "add",
        "--network",
        "leafty",
        "--to",
        "db",
        "13306:3306",
    ]);
    assert!(out.contains("published"), "{out}");
    let server = Proc::spawn(tdb.testkit(&["serve-tcp", "0.0.0.0:3306", "sink:1m:9"]));
    server.expect_line("listening");
    ok(&run_ok(with(
        lab.outer.testkit(),
        &["tcp", "127.0.0.1:13306", "send:1m:9"],
    )));
    ok(&server.expect_line("ok="));
    // Detaching app removes its published port.
    lab.rlnet_ok(&["detach", "--network", "leafty", "app"]);
    let v = lab.inspect("leafty");
    assert_eq!(v["ports"].as_array().unwrap().len(), 1, "{v}");
    let line = run_ok(with(
        lab.outer.testkit(),
        &["connect", "127.0.0.1:8080", "--expect", "refused"],
    ));
    assert_eq!(field(&line, "result"), Some("refused"), "{line}");
    // Its TAP went away with it.
    let (st, _, _) = run(with(tapp.cmd("ip"), &["link", "show", "tap0"]));
    assert!(!st.success(), "tap0 still in app's namespace");
}

/// Acceptance 3: one namespace on two networks.
#[test]
fn namespace_on_two_networks() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("n1", &[]);
    lab.create("n2", &[]);
    let (td, te, tf) = (lab.outer.target(), lab.outer.target(), lab.outer.target());
    let d1 = lab.attach("n1", "d", td.pid(), &[]);
    let d2 = lab.attach("n2", "d", td.pid(), &[]);
    assert_eq!((d1.tap.as_str(), d2.tap.as_str()), ("tap0", "tap1"));
    let e = lab.attach("n1", "e", te.pid(), &[]);
    let f = lab.attach("n2", "f", tf.pid(), &[]);
    stream(&td, &te, &e.ip4, 16 * MIB, 1);
    stream(&td, &tf, &f.ip4, 16 * MIB, 2);
    stream(&te, &td, &d1.ip4, 16 * MIB, 3);
    stream(&tf, &td, &d2.ip6, 16 * MIB, 4);
    // d does not route between its networks, and rlnet does not either.
    unreachable(&lab, &te, &f.ip4);
    unreachable(&lab, &tf, &e.ip6);
    // Attaching the same namespace twice to one network is refused.
    let (ok_, _, err) = lab.try_rlnet(&["attach", "--network", "n1", &td.pid().to_string()]);
    assert!(!ok_ && err.contains("already on network n1"), "{err}");
}

/// Acceptance 4: 50 attach/detach cycles while two members stream.
#[test]
fn member_churn_while_streaming() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("churn", &[]);
    let (ta, tb) = (lab.outer.target(), lab.outer.target());
    let a = lab.attach("churn", "a", ta.pid(), &[]);
    let b = lab.attach("churn", "b", tb.pid(), &[]);
    let pid = lab.daemon_pid("churn");
    // Warm up (first flows, first TAP), then take the baseline.
    let spare = lab.outer.target();
    lab.attach("churn", "x", spare.pid(), &[]);
    lab.rlnet_ok(&["detach", "--network", "churn", "x"]);
    stream(&ta, &tb, &b.ip4, MIB, 9);
    let (fds0, rss0) = fds_and_rss(pid);

    let bytes = 1u64 << 30;
    let (sink_ab, port_ab) = tb.serve(&["serve-tcp", "0.0.0.0:0", &format!("sink:{bytes}:1")]);
    let (sink_ba, port_ba) = ta.serve(&["serve-tcp", "[::]:0", &format!("sink:{bytes}:2")]);
    let mut send_ab = Proc::spawn(ta.testkit(&[
        "tcp",
        &hostport(&b.ip4, port_ab),
        &format!("send:{bytes}:1"),
        "--timeout",
        "300",
    ]));
    let mut send_ba = Proc::spawn(tb.testkit(&[
        "tcp",
        &hostport(&a.ip6, port_ba),
        &format!("send:{bytes}:2"),
        "--timeout",
        "300",
    ]));
    for i in 0..50 {
        let t = lab.outer.target();
        let name = format!("m{i}");
        let m = lab.attach("churn", &name, t.pid(), &[]);
        if i % 10 == 0 {
            // A churning member is a real member while it is there.
            ping(&t, &a.ip4);
            assert!(!m.ip4.is_empty());
        }
        if i % 2 == 0 {
            lab.rlnet_ok(&["detach", "--network", "churn", &name]);
        } else {
            // The other way to leave: the process ends.
            drop(t);
        }
    }
    assert!(
        send_ab
            .wait_timeout(Duration::from_secs(300))
            .is_some_and(|s| s.success())
    );
    assert!(
        send_ba
            .wait_timeout(Duration::from_secs(300))
            .is_some_and(|s| s.success())
    );
    for (s, c) in [(&sink_ab, &send_ab), (&sink_ba, &send_ba)] {
        let got = s.expect_line("ok=");
        ok(&got);
        let sent = c.expect_line("ok=");
        assert_eq!(field(&got, "digest"), field(&sent, "digest"));
        assert_eq!(field(&got, "bytes"), Some(bytes.to_string().as_str()));
    }
    // Members that ended by exiting are gone too (pidfd), within bounds.
    let deadline = std::time::Instant::now() + WAIT;
    while lab.members("churn") != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            lab.inspect("churn")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Closing is asynchronous (a member's last flows, the agents): wait
    // (bounded) for the count to come down before comparing.
    let fds1 = settle(pid, |f| f.total() <= fds0).total();
    let rss1 = rss_kib(pid);
    eprintln!("daemon fds {fds0} -> {fds1}, RSS {rss0} -> {rss1} KiB");
    assert_eq!(fds1, fds0, "fds leaked");
    assert!(rss1 <= rss0 + 2048, "RSS grew: {rss0} -> {rss1} KiB");
}

/// Issue 11: the loop does not wait for the agents that create members'
/// TAPs. 20 cycles, each two attaches at once and then their detaches,
/// while a streams to b without a break (stream after stream, each checked
/// byte for byte): every attach gets its answer, every stream arrives whole.
#[test]
fn attach_cycles_beside_a_stream() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("beside", &[]);
    let (ta, tb) = (lab.outer.target(), lab.outer.target());
    lab.attach("beside", "a", ta.pid(), &[]);
    let b = lab.attach("beside", "b", tb.pid(), &[]);
    let (tx, ty) = (lab.outer.target(), lab.outer.target());
    // The commands of every cycle, built here: a Lab stays on this thread.
    let cycles: Vec<[Command; 4]> = (0..20)
        .map(|i| {
            let (x, y) = (format!("x{i}"), format!("y{i}"));
            let (px, py) = (tx.pid().to_string(), ty.pid().to_string());
            let attach = |name: &str, pid: &str| {
                lab.rlnet(&[
                    "attach",
                    "--json",
                    "--network",
                    "beside",
                    "--name",
                    name,
                    pid,
                ])
            };
            let detach = |name: &str| lab.rlnet(&["detach", "--network", "beside", name]);
            [attach(&x, &px), attach(&y, &py), detach(&x), detach(&y)]
        })
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let streams = std::thread::scope(|s| {
        let churn = s.spawn(|| {
            let mut answers = Vec::new();
            for [ax, ay, dx, dy] in cycles {
                // Both attaches are in the daemon at the same time.
                let (mut px, mut py) = (Proc::spawn(ax), Proc::spawn(ay));
                for p in [&mut px, &mut py] {
                    let st = p.wait();
                    p.drain();
                    let out = p.stdout().join("\n");
                    assert!(st.success(), "attach failed ({st}): {}\n{out}", p.stderr());
                    let v: Value =
                        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
                    assert!(v["ipv4"].as_str().is_some(), "{v}");
                    answers.push(v);
                }
                run_ok(dx);
                run_ok(dy);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            answers
        });
        // Streams back to back until the cycles are over: the last one
        // starts before they end, the first before they begin.
        let mut n = 0u64;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "cycles take too long");
            if churn.is_finished() {
                break;
            }
            n += 1;
            stream(&ta, &tb, &b.ip4, 32 * MIB, 100 + n);
        }
        let answers = churn.join().expect("the attach cycles failed");
        assert_eq!(answers.len(), 40);
        n
    });
    assert!(streams > 0);
    assert_eq!(lab.members("beside"), 2, "{}", lab.inspect("beside"));
}

/// Attaches in flight at the same time still get unique names and
/// namespaces: of two at once with one name (or one namespace), one wins.
#[test]
fn concurrent_attaches_stay_unique() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("race", &[]);
    let (t1, t2) = (lab.outer.target(), lab.outer.target());
    let both = |a: Command, b: Command| -> Vec<(bool, String)> {
        let (mut pa, mut pb) = (Proc::spawn(a), Proc::spawn(b));
        [&mut pa, &mut pb]
            .into_iter()
            .map(|p| {
                let st = p.wait();
                p.drain();
                (st.success(), p.stderr())
            })
            .collect()
    };
    let attach = |name: &str, t: &Target| {
        let pid = t.pid().to_string();
        lab.rlnet(&["attach", "--network", "race", "--name", name, &pid])
    };
    // One name, two namespaces.
    let got = both(attach("same", &t1), attach("same", &t2));
    let won: Vec<&(bool, String)> = got.iter().filter(|(ok, _)| *ok).collect();
    assert_eq!(won.len(), 1, "{got:?}");
    assert!(
        got.iter()
            .any(|(ok, err)| !ok && err.contains("already taken")),
        "{got:?}"
    );
    lab.rlnet_ok(&["detach", "--network", "race", "same"]);
    // One namespace, two names.
    let got = both(attach("p", &t1), attach("q", &t1));
    assert_eq!(got.iter().filter(|(ok, _)| *ok).count(), 1, "{got:?}");
    assert!(
        got.iter()
            .any(|(ok, err)| !ok && err.contains("already on network race")),
        "{got:?}"
    );
    assert_eq!(lab.members("race"), 1);
    let link = run_ok(with(t1.cmd("ip"), &["-br", "link"]));
    assert_eq!(link.matches("tap").count(), 1, "{link}");
}

/// Acceptance 5: a member forging another member's MAC, IP or a RST with
/// its 4-tuple disturbs nothing.
#[test]
fn spoofing_is_refused() {
    spoofing(Join::Attach);
}

/// The same forgeries from members on the bridge: the guard drops them.
#[test]
fn spoofing_is_refused_on_the_bridge() {
    spoofing(Join::Run);
}

fn spoofing(how: Join) {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("spoof", &[]);
    let (ta, a) = lab.join(how, "spoof", "a");
    let (tb, b) = lab.join(how, "spoof", "b");
    let (tm, m) = lab.join(how, "spoof", "m");
    // A long a → b stream, paced by the receiver: it is open throughout.
    let bytes = 512 * MIB;
    let sink = Proc::spawn(tb.testkit(&["serve-tcp", "0.0.0.0:7000", &format!("sink:{bytes}:3")]));
    sink.expect_line("listening");
    let mut sender = Proc::spawn(ta.testkit(&[
        "tcp",
        &format!("{}:7000", b.ip4),
        &format!("send:{bytes}:3"),
        "--timeout",
        "120",
    ]));
    // The stream's 4-tuple, as a's kernel has it.
    let deadline = std::time::Instant::now() + WAIT;
    let sport = loop {
        let out = run_ok(with(ta.cmd("ss"), &["-Htn", "state", "established"]));
        if let Some(p) = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{}:", a.ip4)))
        {
            break p.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no established stream"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The end marker is an honest frame from m, sent after the frames
    // under test on the same TAP (so behind them); resent until the
    // sniffer has it, since the stream may crowd a frame out of b's queue.
    let finish = |sniff: &Proc| -> String {
        for _ in 0..60 {
            run_ok(tm.testkit(&[
                "spoof",
                "tap0",
                &m.ip4,
                &b.ip4,
                "--count",
                "0",
                "--final",
                &m.ip4,
                "--dst-mac",
                &b.mac,
            ]));
            if let Some(l) = sniff.try_line(Duration::from_secs(1)) {
                return l;
            }
        }
        panic!("the end marker never reached b: {}", sniff.stderr());
    };
    // Control: marked frames from m as itself do reach b (the sniffer
    // sees what the switch forwards).
    let sniff = Proc::spawn(tb.testkit(&["sniff", "tap0"]));
    sniff.expect_line("listening");
    run_ok(tm.testkit(&[
        "spoof",
        "tap0",
        &m.ip4,
        &b.ip4,
        "--count",
        "50",
        "--dst-mac",
        &b.mac,
    ]));
    let control = finish(&sniff);
    let seen: u32 = field(&control, "spoofed").unwrap().parse().unwrap();
    assert!(
        seen > 0,
        "the sniffer saw none of m's honest frames: {control}"
    );
    // Now the forgeries.
    let sniff = Proc::spawn(tb.testkit(&["sniff", "tap0"]));
    sniff.expect_line("listening");
    for extra in [
        // a's IP from m's MAC; a's MAC and IP.
        &["--sport", &sport, "--dport", "7000"][..],
        &["--src-mac", &a.mac, "--sport", &sport, "--dport", "7000"],
    ] {
        let mut args = vec!["spoof", "tap0", &a.ip4, &b.ip4, "--dst-mac", &b.mac];
        args.extend_from_slice(extra);
        run_ok(with(tm.testkit(&args), &["--count", "2000"]));
        args.push("--rst");
        run_ok(with(tm.testkit(&args), &["--count", "2000"]));
        // Broadcast too.
        let mut args = vec!["spoof", "tap0", &a.ip4, &b.ip4];
        args.extend_from_slice(extra);
        run_ok(tm.testkit(&args));
    }
    // m's own IP with a's MAC, and IPv6 forgeries.
    run_ok(tm.testkit(&[
        "spoof",
        "tap0",
        &m.ip4,
        &b.ip4,
        "--dst-mac",
        &b.mac,
        "--src-mac",
        &a.mac,
    ]));
    run_ok(tm.testkit(&[
        "spoof",
        "tap0",
        &a.ip6,
        &b.ip6,
        "--dst-mac",
        &b.mac,
        "--rst",
        "--sport",
        &sport,
        "--dport",
        "7000",
    ]));
    let got = finish(&sniff);
    assert_eq!(got, "spoofed=0", "forged frames reached b");
    assert!(
        sender
            .wait_timeout(Duration::from_secs(120))
            .is_some_and(|s| s.success())
    );
    let sent = sender.expect_line("ok=");
    let got = sink.expect_line("ok=");
    ok(&got);
    assert_eq!(field(&got, "digest"), field(&sent, "digest"));
}

/// The link-local address the kernel derives from `mac` (EUI-64).
fn eui64(mac: &str) -> String {
    let b: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let ll = std::net::Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        b[0] ^ 2,
        b[1],
        b[2],
        0xff,
        0xfe,
        b[3],
        b[4],
        b[5],
    ]);
    ll.to_string()
}

/// The MAC `t`'s neighbour table holds for `ip` on tap0 ("" if none).
fn neighbour_mac(t: &Target, ip: &str) -> String {
    let out = run_ok(with(
        t.cmd("ip"),
        &["-6", "neigh", "show", ip, "dev", "tap0"],
    ));
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or("")
        .to_string()
}

/// Issue 13, finding 1: on a named network a member speaks only for its own
/// IPv6 addresses (its global address and the link-local address of its
/// MAC), as the source, as a neighbour advertisement's target, in duplicate
/// address detection and in link-layer options; router advertisements and
/// redirects from members go nowhere. None of m's forgeries reaches b, and
/// b's neighbour table still maps a and the gateway to their own MACs.
#[test]
fn ipv6_neighbour_spoofing_on_named_networks() {
    neighbour_spoofing(Join::Attach);
}

/// The same forgeries from members on the bridge: the guard drops them.
#[test]
fn ipv6_neighbour_spoofing_on_the_bridge() {
    neighbour_spoofing(Join::Run);
}

fn neighbour_spoofing(how: Join) {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("nd", &[]);
    let (ta, a) = lab.join(how, "nd", "a");
    let (tb, b) = lab.join(how, "nd", "b");
    let (tm, m) = lab.join(how, "nd", "m");
    // Each member's link-local address is its MAC's EUI-64.
    for (t, who) in [(&ta, &a), (&tb, &b), (&tm, &m)] {
        let out = run_ok(with(
            t.cmd("ip"),
            &["-6", "-o", "addr", "show", "dev", "tap0", "scope", "link"],
        ));
        assert!(out.contains(&format!("{}/64", eui64(&who.mac))), "{out}");
    }
    let (a_ll, m_ll) = (eui64(&a.mac), eui64(&m.mac));
    let route = run_ok(with(tb.cmd("ip"), &["-6", "route", "show", "default"]));
    let gw6 = route
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .expect("b's IPv6 default route")
        .to_string();
    // b learns a's and the gateway's MACs the honest way.
    ping(&tb, &a.ip6);
    ping(&tb, &gw6);
    let gw_mac = neighbour_mac(&tb, &gw6);
    assert_eq!(neighbour_mac(&tb, &a.ip6), a.mac);
    assert!(!gw_mac.is_empty() && gw_mac != m.mac);
    let spoof = |args: &[&str]| {
        let mut all = vec!["spoof-ndp", "tap0"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--count", "3"]);
        run_ok(tm.testkit(&all));
    };
    // The end marker: an honest frame from m, sent after the frames under
    // test on the same TAP (so behind them).
    let finish = |sniff: &Proc| -> String {
        for _ in 0..60 {
            run_ok(tm.testkit(&[
                "spoof",
                "tap0",
                &m.ip4,
                &b.ip4,
                "--count",
                "0",
                "--final",
                &m.ip4,
                "--dst-mac",
                &b.mac,
            ]));
            if let Some(l) = sniff.try_line(Duration::from_secs(1)) {
                return l;
            }
        }
        panic!("the end marker never reached b: {}", sniff.stderr());
    };
    // Control: what m may say about itself reaches b.
    let sniff = Proc::spawn(tb.testkit(&["sniff", "tap0"]));
    sniff.expect_line("listening");
    spoof(&["na", &m.ip6, "--target", &m.ip6]);
    spoof(&["ns", &m_ll, "--target", &b.ip6]);
    spoof(&["udp", &m_ll]);
    let control = finish(&sniff);
    let seen: u32 = field(&control, "spoofed").unwrap().parse().unwrap();
    assert!(
        seen > 0,
        "the sniffer saw none of m's honest frames: {control}"
    );
    // The forgeries.
    let sniff = Proc::spawn(tb.testkit(&["sniff", "tap0"]));
    sniff.expect_line("listening");
    let forged: [&[&str]; 16] = [
        // Advertisements for a's address and link-local, the gateway's
        // addresses, with m's MAC; its own address with a's MAC; from a's.
        &["na", &m.ip6, "--target", &a.ip6],
        &["na", &m_ll, "--target", &a_ll],
        &["na", &m.ip6, "--target", &gw6],
        &["na", &m_ll, "--target", "fe80::2"],
        &["na", &m.ip6, "--target", &m.ip6, "--lladdr", &a.mac],
        &["na", &a.ip6, "--target", &a.ip6],
        // Solicitations from a's addresses (b would take m's MAC for a's),
        // naming a's MAC, and duplicate address detection for a's address.
        &["ns", &a.ip6, "--target", &b.ip6],
        &["ns", &a_ll, "--target", &b.ip6],
        &["ns", &m_ll, "--target", &b.ip6, "--lladdr", &a.mac],
        &["ns", "::", "--target", &a.ip6, "--lladdr", "none"],
        // Any other source: another link-local, a's.
        &["udp", "fe80::1234"],
        &["udp", &a_ll],
        // A router's messages.
        &["ra", &m_ll],
        &["redirect", &m_ll, "--target", &gw6],
        // An advertisement in a fragment, and behind destination options.
        &["na-frag", &m.ip6, "--target", &a.ip6],
        &["na-dstopts", &m.ip6, "--target", &a.ip6],
    ];
    for args in forged {
        spoof(args);
    }
    let got = finish(&sniff);
    assert_eq!(got, "spoofed=0", "forged frames reached b");
    // b's neighbour table was not poisoned.
    assert_eq!(neighbour_mac(&tb, &a.ip6), a.mac, "a's entry at b");
    assert_eq!(neighbour_mac(&tb, &gw6), gw_mac, "the gateway's entry at b");
    // And IPv6 between the members still works.
    udp_echo(&ta, &tb, &b.ip6);
}

/// Acceptance 7: bad input changes nothing.
#[test]
fn bad_input() {
    require_userns!();
    let mut lab = Lab::new();
    let t = lab.outer.target();
    let pid = t.pid().to_string();
    // Attach to a missing network.
    let (ok_, _, err) = lab.try_rlnet(&["attach", "--network", "nope", "--name", "a", &pid]);
    assert!(!ok_ && err.contains("no network named \"nope\""), "{err}");
    lab.create("base", &["--subnet", "10.89.7.0/24"]);
    lab.attach("base", "a", t.pid(), &[]);
    // Duplicate name (also as an alias).
    let t2 = lab.outer.target();
    let pid2 = t2.pid().to_string();
    for args in [
        &["attach", "--network", "base", "--name", "a", &pid2][..],
        &[
            "attach",
            "--network",
            "base",
            "--name",
            "z",
            "--alias",
            "a",
            &pid2,
        ],
    ] {
        let (ok_, _, err) = lab.try_rlnet(args);
        assert!(!ok_ && err.contains("already taken"), "{err}");
    }
    let (st, _, _) = run(with(t2.cmd("ip"), &["link", "show", "tap0"]));
    assert!(!st.success(), "a refused attach left a TAP behind");
    // PID gone.
    let mut gone = lab.outer.target();
    let gone_pid = gone.pid().to_string();
    gone.kill();
    let (ok_, _, err) = lab.try_rlnet(&["attach", "--network", "base", "--name", "g", &gone_pid]);
    assert!(!ok_ && err.contains(&gone_pid), "{err}");
    // A bad publish spec, and a port that is taken: nothing attached.
    let (ok_, _, err) = lab.try_rlnet(&[
        "attach",
        "--network",
        "base",
        "--name",
        "p",
        "-p",
        "99999:80",
        &pid2,
    ]);
    assert!(!ok_ && err.contains("99999"), "{err}");
    let _holder = lab.outer.serve(&["serve-tcp", "0.0.0.0:9090", "hold"]);
    let (ok_, _, err) = lab.try_rlnet(&[
        "attach",
        "--network",
        "base",
        "--name",
        "p",
        "-p",
        "9090:80",
        &pid2,
    ]);
    assert!(!ok_ && err.contains("9090"), "{err}");
    assert_eq!(lab.members("base"), 1);
    let (st, _, _) = run(with(t2.cmd("ip"), &["link", "show", "tap0"]));
    assert!(!st.success(), "a refused attach left a TAP behind");
    // Overlapping subnet, duplicate network, bad names: nothing created.
    for (args, needle) in [
        (
            &["network", "create", "--subnet", "10.89.6.0/23", "x"][..],
            "overlaps network \"base\"",
        ),
        (
            &["network", "create", "--subnet", "10.89.0.0/16", "x"],
            "overlaps network \"base\"",
        ),
        (&["network", "create", "base"], "already exists"),
        (
            &["network", "create", "--subnet", "10.1.0.0/25", "x"],
            "too small",
        ),
        (&["network", "create", "a/b"], "not a valid network name"),
        (&["network", "inspect", "x"], "no network named \"x\""),
        (&["network", "rm", "x"], "no network named \"x\""),
        (&["detach", "--network", "base", "zz"], "no such member"),
        (
            &["port", "add", "--network", "base", "8081:80"],
            "say which member",
        ),
    ] {
        let (ok_, _, err) = lab.try_rlnet(args);
        assert!(!ok_ && err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let ls = lab.rlnet_ok(&["network", "ls", "--json"]);
    let v: Value = serde_json::from_str(ls.trim()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    // rm of a network with members: refused (documented), nothing changes;
    // --force detaches them.
    let (ok_, _, err) = lab.try_rlnet(&["network", "rm", "base"]);
    assert!(
        !ok_ && err.contains("1 member(s) (a)") && err.contains("force"),
        "{err}"
    );
    assert_eq!(lab.members("base"), 1);
    run_ok(with(t.cmd("ip"), &["link", "show", "tap0"]));
    lab.rlnet_ok(&["network", "rm", "--force", "base"]);
    lab.nets.clear();
    let (st, _, _) = run(with(t.cmd("ip"), &["link", "show", "tap0"]));
    assert!(!st.success(), "tap0 outlived its network");
    let ls = lab.rlnet_ok(&["network", "ls", "--json"]);
    assert_eq!(ls.trim(), "[]");
}

/// `rlnet run --network`: the member lives as long as COMMAND, and rlnet
/// exits with COMMAND's status.
#[test]
fn run_on_a_network() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("runs", &[]);
    let t = lab.outer.target();
    let a = lab.attach("runs", "a", t.pid(), &[]);
    let server = Proc::spawn(t.testkit(&["serve-tcp", "0.0.0.0:5000", "sink:4m:1"]));
    server.expect_line("listening");
    let tk = testkit_bin();
    let tk = tk.to_str().unwrap();
    let dest = format!("{}:5000", a.ip4);
    let out = lab.rlnet_ok(&[
        "run",
        "--network",
        "runs",
        "--name",
        "r",
        "--",
        tk,
        "tcp",
        &dest,
        "send:4m:1",
    ]);
    ok(&out);
    ok(&server.expect_line("ok="));
    let (st, _, _) = run(lab.rlnet(&["run", "--network", "runs", "--", "sh", "-c", "exit 7"]));
    assert_eq!(st.code(), Some(7));
    assert_eq!(
        lab.members("runs"),
        1,
        "run members leave with their command"
    );
    let (ok_, _, err) = lab.try_rlnet(&["run", "--network", "runs", "--mtu", "1500", "true"]);
    assert!(!ok_ && err.contains("--mtu does not apply"), "{err}");
}

/// The kind of `tap0` in a member's namespace: "veth" on the bridge, "tun"
/// on a TAP.
fn link_kind(t: &Target) -> String {
    let out = run_ok(with(t.cmd("ip"), &["-d", "-o", "link", "show", "tap0"]));
    for kind in ["veth", "tun"] {
        if out.contains(&format!(" {kind} ")) {
            return kind.to_string();
        }
    }
    panic!("tap0 is neither a veth nor a TAP: {out}")
}

/// Issue 15 acceptance 5: members started with `rlnet run --network` are
/// switched by the kernel (a veth on the network's bridge) and reach each
/// other, a member attached from outside (on a TAP), the DNS stub, the
/// outside through NAT and a published port; they leave with their
/// command, and members of another network stay unreachable.
#[test]
fn run_members_are_switched_in_the_kernel() {
    require_userns!();
    let mut lab = Lab::new();
    lab.create("kn", &[]);
    lab.create("far", &[]);
    let (ta, a) = lab.run_member("kn", "a", &["-p", "18080:5000"]);
    let (tb, b) = lab.run_member("kn", "b", &[]);
    let tc = lab.outer.target();
    let c = lab.attach("kn", "c", tc.pid(), &[]);
    let (tf, f) = lab.run_member("far", "f", &[]);
    assert!(
        a.bridge_port.is_some() && b.bridge_port.is_some(),
        "{a:?} {b:?}"
    );
    assert_ne!(a.bridge_port, b.bridge_port);
    assert_eq!(c.bridge_port, None, "{c:?}");
    assert_eq!(
        (link_kind(&ta), link_kind(&tb)),
        ("veth".into(), "veth".into())
    );
    assert_eq!(link_kind(&tc), "tun");
    let link = run_ok(with(ta.cmd("ip"), &["-br", "link", "show", "tap0"]));
    assert!(link.contains(&a.mac), "{link}");
    // Kernel to kernel, both families, both ways.
    for (ip_a, ip_b) in [(&a.ip4, &b.ip4), (&a.ip6, &b.ip6)] {
        stream(&ta, &tb, ip_b, 64 * MIB, 11);
        stream(&tb, &ta, ip_a, 64 * MIB, 12);
        udp_echo(&ta, &tb, ip_b);
        ping(&ta, ip_b);
        ping(&tb, ip_a);
    }
    // Kernel to TAP and back: through the uplink and the userspace switch.
    for (ip_a, ip_c) in [(&a.ip4, &c.ip4), (&a.ip6, &c.ip6)] {
        stream(&ta, &tc, ip_c, 16 * MIB, 13);
        stream(&tc, &ta, ip_a, 16 * MIB, 14);
        udp_echo(&tc, &ta, ip_a);
        ping(&tc, ip_a);
    }
    // Names, from the stub.
    let stub = stub_of(&a.ip4);
    resolves(&ta, &stub, "b", &b.ip4, &b.ip6);
    resolves(&ta, &stub, "c", &c.ip4, &c.ip6);
    resolves(&tc, &stub, "a", &a.ip4, &a.ip6);
    resolves(&ta, &stub, "f", "", "");
    // Out through NAT, both families.
    for ip in [OUTSIDE4, OUTSIDE6] {
        let (server, port) = lab
            .outer
            .serve(&["serve-tcp", &hostport(ip, 0), "sink:8m:15"]);
        ok(&run_ok(ta.testkit(&[
            "tcp",
            &hostport(ip, port),
            "send:8m:15",
        ])));
        ok(&server.expect_line("ok="));
    }
    // a's published port, from the outer namespace.
    let (server, _) = ta.serve(&["serve-tcp", "0.0.0.0:5000", "sink:4m:16"]);
    ok(&run_ok(lab.outer.testkit_cmd(&[
        "tcp",
        "127.0.0.1:18080",
        "send:4m:16",
    ])));
    ok(&server.expect_line("ok="));
    // Another network's members stay out of reach, both ways.
    for ip in [&a.ip4, &b.ip4, &a.ip6] {
        unreachable(&lab, &tf, ip);
    }
    unreachable(&lab, &ta, &f.ip4);
    // a leaves with its command; its port goes, and a new member still
    // reaches b (bridge ports are never reused).
    drop(ta);
    let deadline = std::time::Instant::now() + WAIT;
    while lab.members("kn") != 2 {
        assert!(std::time::Instant::now() < deadline, "a never left kn");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (td, d) = lab.run_member("kn", "d", &[]);
    assert!(
        d.bridge_port.is_some() && d.bridge_port != a.bridge_port,
        "{d:?} {a:?}"
    );
    stream(&td, &tb, &b.ip4, 16 * MIB, 17);
    ping(&tb, &d.ip6);
}

/// A network whose bridge is disabled (or that the kernel refused) still
/// runs `rlnet run --network` members, on TAPs.
#[test]
fn run_members_fall_back_to_taps() {
    require_userns!();
    let mut lab = Lab::new();
    let mut c = lab.rlnet(&["network", "create", "taps"]);
    c.env("RLNET_KERNEL_SWITCH", "0");
    let out = run_ok(c);
    assert!(out.contains("created network taps"), "{out}");
    lab.nets.push("taps".into());
    let (ta, a) = lab.run_member("taps", "a", &[]);
    let (tb, b) = lab.run_member("taps", "b", &[]);
    assert_eq!(
        (a.bridge_port.as_deref(), b.bridge_port.as_deref()),
        (None, None)
    );
    assert_eq!(link_kind(&ta), "tun");
    stream(&ta, &tb, &b.ip4, 16 * MIB, 21);
    ping(&tb, &a.ip6);
    // And the API says why `rlnet run` made no namespace under the network.
    let sock = format!("{}/rlnet/taps.sock", lab.xdg);
    let out = run_ok(
        lab.outer
            .testkit_cmd(&["api", &sock, r#"{"execute":"network_userns"}"#]),
    );
    assert!(out.contains("no kernel switch"), "{out}");
}
