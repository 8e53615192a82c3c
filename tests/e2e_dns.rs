//! The DNS stub end to end (issue 4): real namespaces, rlnet unprivileged,
//! and fake upstream servers (`testkit serve-dns`) that the tests start in
//! the outer "host" namespace, on its loopback (127.0.0.53, ::1) and on the
//! non-loopback test address 198.18.0.53.
//!
//! Nothing here may reach the machine's resolver: every rlnet gets
//! `--dns-upstream` or a `--resolv-conf` file that lists test servers only,
//! `rlnet run` runs inside the outer namespace (blackhole default routes),
//! and the machine's /etc/resolv.conf is never given to rlnet (one test
//! reads it, only to check that its servers appear nowhere).

mod common;

use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// The fake upstream on the outer namespace's loopback (systemd-resolved's
/// address: all of 127.0.0.0/8 is on `lo`).
const UP_LO: &str = "127.0.0.53";
/// The fake upstream on a non-loopback test address (added to `lo`).
const UP_NET: &str = "198.18.0.53";
const STUB4: &str = "10.0.2.3";
const STUB6: &str = "fd00::3";
/// What the stub promises for failover (issue 4: "second answers within 2 s").
const FAILOVER_BOUND_MS: f64 = 2000.0;
/// The documented idle timeout of TCP clients (docs/dns.md, `TCP_IDLE_US`).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often the stub looks at the resolv.conf at most (docs/dns.md).
const RESOLV_CHECK: Duration = Duration::from_secs(1);

// ------------------------------------------------------------------ helpers

/// An outer namespace with the test address 198.18.0.53 on `lo` too.
fn outer() -> Outer {
    let o = Outer::new();
    let mut c = o.cmd("ip");
    c.args(["addr", "add", &format!("{UP_NET}/32"), "dev", "lo"]);
    run_ok(c);
    o
}

/// A fake upstream (`testkit serve-dns`) in the outer namespace. It stops
/// when its stdin closes and then reports how many queries it got.
struct Upstream {
    proc: Proc,
    stdin: Option<ChildStdin>,
}

impl Upstream {
    /// `serve-dns ADDR` (ADDR as `IP:PORT` or `[IPv6]:PORT`) with `extra`
    /// options (`--tag T`, `--silent`).
    fn start(outer: &Outer, addr: &str, extra: &[&str]) -> Upstream {
        let mut c = outer.testkit();
        c.args(["serve-dns", addr, "--stdin", "--timeout", "600"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn serve-dns {addr}: {e}"));
        let stdin = child.stdin.take();
        let proc = Proc::from_child(child);
        let l = proc.expect_line("listening");
        assert!(l.contains("port="), "{l}");
        Upstream { proc, stdin }
    }

    /// Stop it and return the number of queries it received.
    fn stop(mut self) -> u64 {
        drop(self.stdin.take());
        let st = self.proc.wait();
        self.proc.drain();
        assert!(st.success(), "serve-dns: {st}: {}", self.proc.stderr());
        let out = self.proc.stdout();
        let line = out
            .iter()
            .find(|l| l.starts_with("queries="))
            .unwrap_or_else(|| panic!("serve-dns printed no count: {out:?}"));
        field(line, "queries")
            .and_then(|n| n.parse().ok())
            .expect("queries=N")
    }

    /// Kill it (a dead server: its ports are closed afterwards).
    fn kill(&mut self) {
        self.proc.kill(Signal::SIGKILL);
        self.proc.wait();
    }
}

/// A target namespace served by rlnet (PID mode) with `args`.
struct Net {
    target: Target,
    rlnet: Rlnet,
}

fn attach(outer: &Outer, args: &[&str]) -> Net {
    let target = outer.target();
    let pid = target.pid().to_string();
    let mut all = args.to_vec();
    all.push(&pid);
    let rlnet = start_rlnet(outer.rlnet_cmd(), &all);
    Net { target, rlnet }
}

/// An outer namespace, a fake upstream on `ip`:53 there, and a target
/// served by rlnet with that upstream (and `extra` options).
fn stub_with_upstream(ip: &str, extra: &[&str]) -> (Outer, Upstream, Net) {
    let outer = outer();
    let up = Upstream::start(&outer, &format!("{ip}:53"), &[]);
    let mut args = vec!["--dns-upstream", ip];
    args.extend_from_slice(extra);
    let n = attach(&outer, &args);
    (outer, up, n)
}

/// `testkit dig`'s one-query result.
#[derive(Debug)]
struct Answer {
    line: String,
    rcode: String,
    answers: u32,
    tc: bool,
    /// The first answer's value (may contain spaces: SRV, MX).
    data: String,
    ms: f64,
    /// How many times dig sent the query (UDP resends after 1 s each).
    tries: u64,
}

fn parse_answer(line: &str) -> Answer {
    let data = line
        .split_once(" data=")
        .map(|(_, r)| r.rsplit_once(" ms=").map_or(r, |(d, _)| d))
        .unwrap_or_default();
    Answer {
        line: line.to_string(),
        rcode: field(line, "rcode").unwrap_or("?").to_string(),
        answers: field(line, "answers")
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX),
        tc: field(line, "tc") == Some("1"),
        data: data.to_string(),
        ms: field(line, "ms")
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN),
        tries: field(line, "tries")
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX),
    }
}

/// One query from the target namespace: `dig SERVER NAME TYPE [extra]`.
fn dig(target: &Target, server: &str, name: &str, rtype: &str, extra: &[&str]) -> Answer {
    let mut args = vec!["dig", server, name, rtype];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--timeout", "30"]);
    let out = run_ok(target.testkit(&args));
    parse_answer(out.lines().last().unwrap_or(""))
}

/// Assert a NOERROR answer with exactly one record whose value is `data`.
fn expect_data(a: &Answer, data: &str) {
    assert_eq!(a.rcode, "NOERROR", "{}", a.line);
    assert_eq!(a.answers, 1, "{}", a.line);
    assert!(!a.tc, "{}", a.line);
    assert_eq!(a.data, data, "{}", a.line);
}

/// The TXT value the upstream tagged `tag` gives for tag.test.
fn asked(target: &Target, server: &str, tcp: bool) -> Answer {
    let extra: &[&str] = if tcp { &["--tcp"] } else { &[] };
    dig(target, server, "tag.test", "TXT", extra)
}

/// Replace `name` in `dir` the way resolvconf and NetworkManager do: write
/// a new file, rename it over the old one (a new inode). Its path.
fn replace_file(dir: &TempDir, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.path(&format!(".{name}.new"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path(name);
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// Context switches of the main thread (each epoll_wait that slept is one).
fn wakeups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

fn sleep_until(t: Instant) {
    std::thread::sleep(t.saturating_duration_since(Instant::now()));
}

/// Most CPU rlnet may use in the 2 s window that starts 2 s after a burst:
/// 2 ticks (20 ms, 1 % of a core). A stub that spins or polls burns ~200.
const IDLE_TICKS: u64 = 2;

/// The "CPU returns to idle within 2 s" after a burst that ended
/// at `end`: CPU in the 2 s after it (printed), then in the next 2 s
/// (asserted idle). Returns the first figure.
fn assert_idle_after(pid: u32, end: Instant, what: &str) -> u64 {
    let c0 = cpu_ticks(pid);
    sleep_until(end + Duration::from_secs(2));
    let (c1, w1) = (cpu_ticks(pid), wakeups(pid));
    sleep_until(end + Duration::from_secs(4));
    let (c2, w2) = (cpu_ticks(pid), wakeups(pid));
    eprintln!(
        "{what}: rlnet CPU {} ms in the 2 s after the burst, then {} ms and {} wake-ups in the next 2 s",
        (c1 - c0) * 10,
        (c2 - c1) * 10,
        w2 - w1
    );
    assert!(
        c2 - c1 <= IDLE_TICKS,
        "{what}: rlnet still used {} ms of CPU 2-4 s after the burst",
        (c2 - c1) * 10
    );
    c1 - c0
}

/// `rlnet run ARGS -- sh -c SCRIPT` inside the outer namespace (so that
/// nothing COMMAND sends can leave the machine). Every capability is
/// dropped but CAP_SETFCAP: mapping the outer namespace's uid 0 (the
/// test's `nobody`) as root of COMMAND's user namespace needs it there
/// (kernel rule since 5.12, for the parent namespace's root only; on the
/// real host an unprivileged user needs nothing).
fn rlnet_run(outer: &Outer, args: &[&str], script: &str) -> (ExitStatus, String, String) {
    let mut c: Command = outer.rlnet_setfcap_cmd();
    c.arg("run").args(args).args(["--", "sh", "-c", script]);
    run(c)
}

/// The nameservers of the machine's own resolv.conf (only read, to prove
/// they appear nowhere).
fn machine_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

// -------------------------------------------------------------------- tests

/// Acceptance 1: A, AAAA, TXT, SRV, MX and NXDOMAIN through the stub (both
/// stub addresses, UDP and TCP) from an upstream on the host's loopback
/// (127.0.0.53 and ::1) and on a non-loopback address; the upstream's
/// records arrive unchanged. A >512-byte answer over UDP comes with TC=1
/// (without EDNS and with EDNS 1232), the TCP retry gets all of it, and
/// with a large enough EDNS size it fits in UDP.
#[test]
fn forwards_record_types_from_loopback_and_outside_upstreams() {
    require_userns!();
    let outer = outer();
    for (bind, upstream, tag) in [
        (format!("{UP_LO}:53"), UP_LO, "loopback4"),
        (format!("{UP_NET}:53"), UP_NET, "testaddr"),
        ("[::1]:53".to_string(), "::1", "loopback6"),
    ] {
        let up = Upstream::start(&outer, &bind, &["--tag", tag]);
        let n = attach(&outer, &["--dns-upstream", upstream]);
        let t = &n.target;
        let mut sent = 0u64;
        for stub in [STUB4, STUB6] {
            for tcp in [false, true] {
                let x: &[&str] = if tcp { &["--tcp"] } else { &[] };
                expect_data(&dig(t, stub, "a.test", "A", x), "198.18.0.10");
                expect_data(&dig(t, stub, "aaaa.test", "AAAA", x), "2001:db8::10");
                expect_data(&dig(t, stub, "txt.test", "TXT", x), "hello");
                expect_data(&dig(t, stub, "srv.test", "SRV", x), "10 5 5060 sip.test.");
                expect_data(&dig(t, stub, "mx.test", "MX", x), "10 mail.test.");
                expect_data(&dig(t, stub, "tag.test", "TXT", x), tag);
                // The question's case is passed on as asked (the upstream
                // matches it case-insensitively, the stub checks the reply's
                // question the same way).
                expect_data(&dig(t, stub, "A.TeSt", "A", x), "198.18.0.10");
                let nx = dig(t, stub, "nothing-here.test", "A", x);
                assert_eq!(nx.rcode, "NXDOMAIN", "{}", nx.line);
                assert_eq!(nx.answers, 0, "{}", nx.line);
                // A name that exists, a type it has not: NODATA.
                let nodata = dig(t, stub, "a.test", "MX", x);
                assert_eq!(nodata.rcode, "NOERROR", "{}", nodata.line);
                assert_eq!(nodata.answers, 0, "{}", nodata.line);
                sent += 9;
            }
            // Over 512 bytes: TC over UDP, without EDNS and with a size
            // that is still too small; the retry over TCP gets it all.
            for edns in [None, Some("1232")] {
                let x: Vec<&str> = edns.map(|s| vec!["--edns", s]).unwrap_or_default();
                let udp = dig(t, stub, "big.test", "TXT", &x);
                assert_eq!(udp.rcode, "NOERROR", "{}", udp.line);
                assert!(udp.tc, "no TC over UDP: {}", udp.line);
                assert_eq!(udp.answers, 0, "{}", udp.line);
                let mut xt = x.clone();
                xt.push("--tcp");
                let tcp = dig(t, stub, "big.test", "TXT", &xt);
                assert_eq!(tcp.rcode, "NOERROR", "{}", tcp.line);
                assert!(!tcp.tc, "TC over TCP: {}", tcp.line);
                assert_eq!(tcp.answers, 1, "{}", tcp.line);
                assert_eq!(tcp.data.len(), 2000, "{}", tcp.line);
                assert!(tcp.data.starts_with("00x") && tcp.data.contains("19x"));
                sent += 2;
            }
            // Room for it over UDP with EDNS 4096: no TC.
            let fits = dig(t, stub, "big.test", "TXT", &["--edns", "4096"]);
            assert!(!fits.tc, "{}", fits.line);
            assert_eq!(fits.data.len(), 2000, "{}", fits.line);
            sent += 1;
        }
        let got = up.stop();
        eprintln!("upstream {upstream}: {sent} queries asked, {got} reached it");
        // Every query was forwarded (the stub has no cache); a UDP resend
        // after a lost datagram may add one.
        assert!(
            got >= sent,
            "only {got} of {sent} queries reached {upstream}"
        );
    }
}

/// Acceptance 1: the `--resolv-conf` file replaced (renamed over) while
/// rlnet runs: the next query goes to the new server, over UDP and TCP;
/// an in-place edit too. With and without `--enable-sandbox` (the sandbox
/// must keep the file's directory visible).
#[test]
fn resolv_conf_replaced_while_running() {
    require_userns!();
    let outer = outer();
    let old = Upstream::start(&outer, &format!("{UP_LO}:53"), &["--tag", "old"]);
    let new = Upstream::start(&outer, &format!("{UP_NET}:53"), &["--tag", "new"]);
    let dir = TempDir::new("resolv");
    let old_text = format!("# test servers only\nnameserver {UP_LO}\n");
    let new_text = format!("# test servers only, replaced\nnameserver {UP_NET}\n");
    for extra in [&[][..], &["--enable-sandbox"][..]] {
        let path = replace_file(&dir, "resolv.conf", &old_text);
        let mut args = vec!["--resolv-conf", &path];
        args.extend_from_slice(extra);
        let n = attach(&outer, &args);
        let t = &n.target;
        for tcp in [false, true] {
            expect_data(&asked(t, STUB4, tcp), "old");
        }
        // Replaced by rename. The stub looks at the file when a query needs
        // the servers, at most once a second (documented); its last look
        // was before the query above returned, so wait out that second
        // (this is the documented rule, not a guess at readiness).
        let looked = Instant::now();
        replace_file(&dir, "resolv.conf", &new_text);
        sleep_until(looked + RESOLV_CHECK + Duration::from_millis(100));
        let next = asked(t, STUB4, false);
        expect_data(&next, "new");
        expect_data(&asked(t, STUB6, true), "new");
        eprintln!("{extra:?}: after the rename, the next query went to the new server");

        // Edited in place (same inode).
        let looked = Instant::now();
        std::fs::write(&path, &old_text).unwrap();
        sleep_until(looked + RESOLV_CHECK + Duration::from_millis(100));
        expect_data(&asked(t, STUB4, true), "old");
        expect_data(&asked(t, STUB6, false), "old");
        let err = n.rlnet.proc.stderr();
        assert!(!err.contains("panicked"), "{err}");
    }
    let (o, w) = (old.stop(), new.stop());
    eprintln!("queries: old server {o}, new server {w}");
    assert!(o >= 8 && w >= 4, "old {o}, new {w}");
}

/// Acceptance 1: the first upstream dead, the second answers within 2 s
/// (measured by the client, `dig`'s ms=): a server that was answering and
/// is then killed (closed port: immediate failover), and a server that
/// never answers (the 1 s attempt timeout), over UDP and over TCP.
#[test]
fn failover_to_second_upstream_within_2s() {
    require_userns!();
    let outer = outer();
    let ups = ["--dns-upstream", UP_NET, "--dns-upstream", UP_LO];
    let mut first = Upstream::start(&outer, &format!("{UP_NET}:53"), &["--tag", "first"]);
    let second = Upstream::start(&outer, &format!("{UP_LO}:53"), &["--tag", "second"]);
    let mut report = Vec::new();

    // Killed while rlnet runs.
    let n = attach(&outer, &ups);
    for tcp in [false, true] {
        expect_data(&asked(&n.target, STUB4, tcp), "first");
    }
    first.kill();
    for tcp in [false, true] {
        let a = asked(&n.target, STUB4, tcp);
        expect_data(&a, "second");
        report.push(format!(
            "killed/{}: {:.1} ms",
            if tcp { "tcp" } else { "udp" },
            a.ms
        ));
        assert!(
            a.ms < FAILOVER_BOUND_MS,
            "failover after a killed upstream took {} ms: {}",
            a.ms,
            a.line
        );
    }
    drop(n);

    // Never answers (a black hole): a fresh rlnet per transport, since a
    // failed server is tried last for 10 s.
    let silent = Upstream::start(&outer, &format!("{UP_NET}:53"), &["--silent"]);
    for tcp in [false, true] {
        let n = attach(&outer, &ups);
        let a = asked(&n.target, STUB4, tcp);
        expect_data(&a, "second");
        report.push(format!(
            "silent/{}: {:.1} ms",
            if tcp { "tcp" } else { "udp" },
            a.ms
        ));
        assert!(
            a.ms < FAILOVER_BOUND_MS,
            "failover after a silent upstream took {} ms: {}",
            a.ms,
            a.line
        );
        // Then the silent one is skipped: the next query is answered at once
        // (well under the 1 s attempt timeout).
        let b = asked(&n.target, STUB4, tcp);
        expect_data(&b, "second");
        report.push(format!("  next: {:.1} ms", b.ms));
        assert!(
            b.ms < 1000.0,
            "the failed server was asked again: {}",
            b.line
        );
    }
    eprintln!(
        "failover (bound {FAILOVER_BOUND_MS} ms): {}",
        report.join(", ")
    );
    // The silent server was asked first, once per transport.
    let asked_silent = silent.stop();
    assert!(
        asked_silent >= 2,
        "the silent upstream got {asked_silent} queries"
    );
    assert!(second.stop() >= 6);
}

/// Acceptance 2: host.containers.internal (and host.rlnet.internal) is the
/// gateway, answered by the stub itself (the upstream gets nothing); a TCP
/// connection to it reaches the host's loopback; by name with `rlnet run`
/// (glibc's resolver, the stub's resolv.conf). With
/// --disable-host-loopback the name still resolves but the host is not
/// reachable.
#[test]
fn host_containers_internal_is_the_gateway_and_reaches_the_host() {
    require_userns!();
    let (outer, up, n) = stub_with_upstream(UP_LO, &[]);
    let t = &n.target;
    for name in [
        "host.containers.internal",
        "host.rlnet.internal",
        "HOST.Containers.Internal.",
    ] {
        for stub in [STUB4, STUB6] {
            for tcp in [false, true] {
                let x: &[&str] = if tcp { &["--tcp"] } else { &[] };
                expect_data(&dig(t, stub, name, "A", x), "10.0.2.2");
                expect_data(&dig(t, stub, name, "AAAA", x), "fd00::2");
            }
        }
    }
    // Connect to what the name resolved to: the host's loopback answers.
    let (mut srv, port) = outer.serve(&["serve-tcp", "[::]:0", "echo", "--count", "2"]);
    for rtype in ["A", "AAAA"] {
        let ip = dig(t, STUB4, "host.containers.internal", rtype, &[]).data;
        let addr = if rtype == "A" {
            format!("{ip}:{port}")
        } else {
            format!("[{ip}]:{port}")
        };
        let out = run_ok(t.testkit(&["tcp", &addr, "echo:100000:3"]));
        assert_eq!(field(&out, "ok"), Some("1"), "{out}");
    }
    srv.wait();
    srv.drain();
    let peers: Vec<String> = srv.stdout();
    assert!(
        peers
            .iter()
            .any(|l| l.contains("peer=127.0.0.1:") || l.contains("peer=[::ffff:127.0.0.1]:"))
            && peers.iter().any(|l| l.contains("peer=[::1]:")),
        "the host saw {peers:?}"
    );
    assert_eq!(up.stop(), 0, "a local name was forwarded upstream");

    // Without host loopback: resolves, but the connection is refused.
    let up = Upstream::start(&outer, &format!("{UP_LO}:53"), &[]);
    let m = attach(
        &outer,
        &["--dns-upstream", UP_LO, "--disable-host-loopback"],
    );
    expect_data(
        &dig(&m.target, STUB4, "host.containers.internal", "A", &[]),
        "10.0.2.2",
    );
    let (_srv, port) = outer.serve(&["serve-tcp", "127.0.0.1:0", "echo"]);
    run_ok(m.target.testkit(&[
        "connect",
        &format!("10.0.2.2:{port}"),
        "--expect",
        "netunreach",
    ]));
    assert_eq!(up.stop(), 0);

    // By name, through glibc: rlnet run gives COMMAND the stub's resolv.conf.
    let up = Upstream::start(&outer, &format!("{UP_LO}:53"), &[]);
    let (mut src, port) = outer.serve(&["serve-tcp", "[::]:0", "source:1000:7"]);
    let script = format!(
        "getent hosts host.containers.internal && \
         exec bash -c 'exec 3<>/dev/tcp/host.containers.internal/{port} && wc -c <&3'"
    );
    let (st, out, err) = rlnet_run(&outer, &["--dns-upstream", UP_LO], &script);
    assert!(st.success(), "rlnet run: {st}: {err}\n{out}");
    assert!(
        out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 2
                && (w[0] == "10.0.2.2" || w[0] == "fd00::2")
                && w[1] == "host.containers.internal"
        }),
        "{out}"
    );
    assert_eq!(out.lines().last().map(str::trim), Some("1000"), "{out}");
    src.wait();
    let got = src.expect_line("ok");
    let peer = field(&got, "peer").unwrap_or("");
    assert!(
        peer.contains("127.0.0.1") || peer.starts_with("[::1]"),
        "{got}"
    );
    eprintln!(
        "rlnet run: `{}` and a connection by name from {peer}",
        out.lines().next().unwrap_or("")
    );
    assert_eq!(up.stop(), 0, "a local name was forwarded upstream");
}

/// `rlnet run`: COMMAND sees a resolv.conf pointing at the stub, so
/// `getent hosts NAME` works through the fake upstream, given by
/// --dns-upstream or listed in a --resolv-conf file. The machine's
/// resolv.conf is neither shown to COMMAND nor used.
#[test]
fn rlnet_run_command_resolves_through_the_stub() {
    require_userns!();
    let outer = outer();
    let dir = TempDir::new("run");
    let conf = replace_file(
        &dir,
        "resolv.conf",
        &format!("# test servers only\nnameserver {UP_NET}\n"),
    );
    let script = "cat /etc/resolv.conf; getent hosts a.test; getent hosts aaaa.test; \
                  getent hosts nothing-here.test || echo nx=$?";
    let machine = machine_nameservers();
    for (bind, args) in [
        (format!("{UP_LO}:53"), vec!["--dns-upstream", UP_LO]),
        (format!("{UP_NET}:53"), vec!["--resolv-conf", conf.as_str()]),
    ] {
        let up = Upstream::start(&outer, &bind, &[]);
        let (st, out, err) = rlnet_run(&outer, &args, script);
        assert!(st.success(), "{args:?}: {st}: {err}\n{out}");
        assert!(
            !err.contains("keeps the host's /etc/resolv.conf"),
            "{args:?}: {err}"
        );
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let has = |w: &[&str]| lines.iter().any(|l| l.as_slice() == w);
        assert!(
            has(&["nameserver", STUB4]),
            "{args:?}: COMMAND's resolv.conf: {out}"
        );
        assert!(has(&["nameserver", STUB6]), "{args:?}: {out}");
        let servers = lines
            .iter()
            .filter(|l| l.first() == Some(&"nameserver"))
            .count();
        assert_eq!(servers, 2, "{args:?}: {out}");
        for m in &machine {
            assert!(
                !out.contains(m.as_str()),
                "{args:?}: the machine's resolver {m} shows: {out}"
            );
        }
        assert!(has(&["198.18.0.10", "a.test"]), "{args:?}: {out}");
        assert!(has(&["2001:db8::10", "aaaa.test"]), "{args:?}: {out}");
        // getent: 2 = not found (NXDOMAIN), not a failure to ask.
        assert!(has(&["nx=2"]), "{args:?}: {out}");
        let got = up.stop();
        eprintln!("rlnet run {args:?}: getent answered; upstream got {got} queries");
        assert!(got >= 3, "{args:?}: the upstream got {got} queries");
    }
}

/// Acceptance 3: bad input. Truncated headers, lying counts, compression
/// loops get FORMERR; QR=1 reflections are dropped; a 64 KiB TCP length
/// prefix then EOF is closed without an answer; 1,000 TCP queries cut
/// short then RST; 1,000 idle TCP clients (256 kept, the idlest evicted
/// beyond that, the rest closed after the 10 s idle timeout). Nothing
/// malformed reaches the upstream, rlnet answers normally throughout, and
/// its CPU is idle again within 2 s of each burst.
#[test]
fn bad_input_is_refused_and_rlnet_stays_responsive_and_idle() {
    require_userns!();
    let (_outer, up, n) = stub_with_upstream(UP_NET, &[]);
    let t = &n.target;
    let pid = n.rlnet.proc.pid();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "rlnet", "not rlnet's PID");
    // Good queries, and how many times they were sent (a UDP query is sent
    // again after 1 s without an answer, which a loaded machine can cause).
    let (mut legit, mut sends) = (0u64, 0u64);
    let ok_query = |tcp: bool, (legit, sends): (&mut u64, &mut u64)| {
        let x: &[&str] = if tcp { &["--tcp"] } else { &[] };
        let a = dig(t, STUB4, "a.test", "A", x);
        expect_data(&a, "198.18.0.10");
        *legit += 1;
        *sends += a.tries;
        a.ms
    };
    ok_query(false, (&mut legit, &mut sends));

    // UDP: each message gets FORMERR, or nothing (too short, QR=1).
    let abuse = |mode: &str| -> String {
        let out = run_ok(t.testkit(&["dns-abuse", STUB4, mode, "--timeout", "30"]));
        eprintln!("{mode}: {out}");
        out
    };
    let num =
        |l: &str, k: &str| -> u64 { field(l, k).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX) };
    for (mode, replies) in [
        // Every prefix of a 35-byte query; those under 12 bytes are dropped.
        ("truncated", 23),
        ("lying-counts", 7),
        ("compression-loop", 7),
        ("qr1", 0),
    ] {
        let l = abuse(mode);
        // The good query that closes each batch (answered by the upstream).
        legit += 1;
        sends += 1;
        assert_eq!(num(&l, "replies"), replies, "{mode}: {l}");
        assert_eq!(
            num(&l, "formerr") + num(&l, "refused"),
            replies,
            "{mode}: {l}"
        );
    }
    // Zone transfers (AXFR; IXFR is type 251) are refused, over UDP and
    // TCP, and never forwarded.
    for rtype in ["AXFR", "251"] {
        for x in [&[][..], &["--tcp"][..]] {
            let a = dig(t, STUB4, "a.test", rtype, x);
            assert_eq!(a.rcode, "REFUSED", "{}", a.line);
            assert_eq!(a.answers, 0, "{}", a.line);
        }
    }
    // TCP: the 64 KiB prefix alone closes the connection, nothing answered.
    let l = abuse("tcp-64k-eof");
    assert_eq!(field(&l, "result"), Some("closed"), "{l}");
    assert_eq!(field(&l, "bytes"), Some("0"), "{l}");
    // 1,000 queries cut short, then RST.
    let l = abuse("tcp-cut-rst");
    assert_eq!(field(&l, "done"), Some("1000"), "{l}");
    assert_eq!(field(&l, "errors"), Some("0"), "{l}");
    let end = Instant::now();
    let ms_udp = ok_query(false, (&mut legit, &mut sends));
    let ms_tcp = ok_query(true, (&mut legit, &mut sends));
    eprintln!(
        "after the UDP modes, 64k-EOF and 1000 cut+RST: answered in {ms_udp} ms (UDP), {ms_tcp} ms (TCP)"
    );
    assert_idle_after(pid, end, "after 1000 cut+RST");

    // 1,000 idle TCP clients. rlnet accepts the last of them between
    // `spawned` and `opened`, and closes them 10 s later: load only delays
    // what we see, so the lower bound counts from `spawned`, the upper one
    // from `opened`.
    let mut idle = t.testkit(&["dns-abuse", STUB4, "tcp-idle", "1000", "--timeout", "60"]);
    idle.stdin(Stdio::null());
    let spawned = Instant::now();
    let mut idle = Proc::spawn(idle);
    let open = idle.expect_line("open=");
    let opened = Instant::now();
    assert_eq!(field(&open, "open"), Some("1000"), "{open}");
    // Responsive while they are held: UDP, and a new TCP client (which
    // takes the place of the idlest one).
    let ms_udp = ok_query(false, (&mut legit, &mut sends));
    let ms_tcp = ok_query(true, (&mut legit, &mut sends));
    eprintln!("with 1000 idle TCP clients: answered in {ms_udp} ms (UDP), {ms_tcp} ms (TCP)");
    let done = idle.expect_line("closed=");
    let (closed_after, since_spawn) = (opened.elapsed(), spawned.elapsed());
    let st = idle.wait();
    assert!(st.success(), "{st}: {}", idle.stderr());
    let end = Instant::now();
    assert_eq!(field(&done, "closed"), Some("1000"), "{done}");
    eprintln!(
        "1000 idle TCP clients: all closed by rlnet {:.2} s after the last one connected ({done})",
        closed_after.as_secs_f64()
    );
    // The last 256 stay for the idle timeout, not forever (nor much less).
    assert!(
        since_spawn >= TCP_IDLE - Duration::from_secs(1)
            && closed_after <= TCP_IDLE + Duration::from_secs(10),
        "idle clients closed {closed_after:?} after the last connected \
         ({since_spawn:?} after the first)"
    );
    ok_query(false, (&mut legit, &mut sends));
    ok_query(true, (&mut legit, &mut sends));
    assert_idle_after(pid, end, "after 1000 idle TCP clients");
    ok_query(false, (&mut legit, &mut sends));

    // Nothing malformed was forwarded: the upstream saw only the good
    // queries (each at least once, a resent one at most as often as sent).
    let got = up.stop();
    eprintln!("upstream got {got} queries for {legit} good ones, sent {sends} times");
    assert!(
        got >= legit && got <= sends,
        "upstream got {got}, good queries {legit} (sent {sends} times)"
    );
}

/// Acceptance 3: idle TCP clients are closed after the documented timeout
/// (10 s after the last complete query or answer; partial bytes do not
/// count), measured on a few clients below the cap.
#[test]
fn idle_tcp_clients_are_closed_after_10s() {
    require_userns!();
    let (_outer, up, n) = stub_with_upstream(UP_NET, &[]);
    let out = run_ok(
        n.target
            .testkit(&["dns-abuse", STUB4, "tcp-idle", "5", "--timeout", "60"]),
    );
    let line = out.lines().last().unwrap_or("");
    let ms: f64 = field(line, "ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    eprintln!("5 idle TCP clients: {out:?}; closed after {ms:.0} ms (documented: {TCP_IDLE:?})");
    assert_eq!(field(line, "closed"), Some("5"), "{out}");
    let idle_ms = TCP_IDLE.as_millis() as f64;
    // testkit's ms= counts from before it connected: load can only add.
    assert!(
        ms >= idle_ms - 500.0 && ms <= idle_ms + 10_000.0,
        "closed after {ms} ms"
    );
    // Still serving afterwards.
    expect_data(
        &dig(&n.target, STUB4, "a.test", "A", &["--tcp"]),
        "198.18.0.10",
    );
    assert!(up.stop() >= 1);
}

/// Acceptance 4: 10,000 queries/s for 5 s from inside the namespace
/// against the fake upstream, asked directly (the same path through rlnet,
/// NAT instead of the stub) and through the stub. What the stub adds is its
/// own work per query: rlnet's CPU time per answered query through the
/// stub, less that through NAT, is at most 100 µs (CPU time, unlike
/// latency, does not grow when other work shares the machine). Latencies
/// and losses at a fixed offered rate are printed, not asserted: on a
/// loaded machine rlnet waits for a CPU, queries queue and overflow, and
/// the figures measure the machine as much as rlnet.
#[test]
fn load_10k_qps_for_5s() {
    require_userns!();
    let (outer, up, n) = stub_with_upstream(UP_NET, &[]);
    let t = &n.target;
    let pid = n.rlnet.proc.pid();
    expect_data(&dig(t, STUB4, "a.test", "A", &[]), "198.18.0.10");
    expect_data(&dig(t, UP_NET, "a.test", "A", &[]), "198.18.0.10");
    let args = |server: &'static str| {
        [
            "dig",
            server,
            "a.test",
            "A",
            "--count",
            "50000",
            "--rate",
            "10000",
            "--timeout",
            "60",
        ]
    };
    // (sent, received, p50 µs, p99 µs, rlnet CPU ms)
    let load_with = |cmd: Command, server: &str| -> (u64, u64, u64, u64, u64) {
        let (t0, c0) = (Instant::now(), cpu_ticks(pid));
        let (_, out, err) = run(cmd);
        let cpu_ms = (cpu_ticks(pid) - c0) * 10;
        let l = out.lines().last().unwrap_or("");
        let num = |k: &str| -> u64 {
            field(l, k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{server}: no {k} in {out:?}; {err}"))
        };
        eprintln!(
            "  {server}: {l} ({:.2} s, rlnet CPU {cpu_ms} ms)",
            t0.elapsed().as_secs_f64()
        );
        (
            num("sent"),
            num("received"),
            num("p50_us"),
            num("p99_us"),
            cpu_ms,
        )
    };
    let load = |server: &'static str| load_with(t.testkit(&args(server)), server);
    // Direct, through the stub, and again each way.
    let mut direct = Vec::new();
    let mut stub = Vec::new();
    for _ in 0..2 {
        direct.push(load(UP_NET));
        stub.push(load(STUB4));
    }
    // For reference only: the upstream asked from the host itself (no
    // namespace, no TAP, no rlnet at all).
    let mut host = outer.testkit();
    host.args(args(UP_NET));
    let host = load_with(host, "host");
    eprintln!(
        "host -> upstream directly: p50={} us p99={} us lost={}",
        host.2,
        host.3,
        host.0 - host.1
    );
    for (what, runs) in [("direct", &direct), ("stub", &stub)] {
        for (s, r, p50, p99, cpu) in runs.iter() {
            eprintln!(
                "{what}: sent={s} received={r} lost={} p50={p50} us p99={p99} us rlnet CPU={cpu} ms",
                s - r
            );
        }
    }
    let p50_direct = direct.iter().map(|r| r.2).min().unwrap();
    let p50_stub = stub.iter().map(|r| r.2).min().unwrap();
    eprintln!(
        "p50 (better of two runs): direct {p50_direct} us, through the stub {p50_stub} us: \
         added {} us",
        i64::try_from(p50_stub).unwrap() - i64::try_from(p50_direct).unwrap()
    );
    // rlnet's CPU per answered query, in µs.
    let per_query = |runs: &[(u64, u64, u64, u64, u64)]| {
        let cpu_ms: u64 = runs.iter().map(|r| r.4).sum();
        let answered: u64 = runs.iter().map(|r| r.1).sum();
        cpu_ms as f64 * 1000.0 / answered.max(1) as f64
    };
    let (cost_direct, cost_stub) = (per_query(&direct), per_query(&stub));
    eprintln!(
        "rlnet CPU per answered query: direct (NAT) {cost_direct:.1} us, stub {cost_stub:.1} us"
    );
    for r in &stub {
        assert_eq!(r.0, 50000);
    }
    assert!(
        cost_stub - cost_direct <= 100.0,
        "the stub costs {:.1} us of CPU per query more than NAT",
        cost_stub - cost_direct
    );
    let asked = up.stop();
    let answered: u64 = stub.iter().chain(&direct).map(|r| r.1).sum();
    eprintln!("upstream got {asked} queries; {answered} answers arrived");
    assert!(
        asked >= answered,
        "upstream got {asked} queries, {answered} answered"
    );
}

/// `--add-host NAME:IP` (IPv4, IPv6, host-gateway) is answered by the stub
/// itself; `--disable-dns`: the stub address answers nothing, over UDP or
/// TCP.
#[test]
fn add_host_and_disable_dns() {
    require_userns!();
    let (outer, up, n) = stub_with_upstream(
        UP_LO,
        &[
            "--add-host",
            "db.example:198.18.0.99",
            "--add-host",
            "db.example:2001:db8::99",
            "--add-host",
            "gw.example:host-gateway",
        ],
    );
    let t = &n.target;
    let mut sends = 0;
    for x in [&[][..], &["--tcp"][..]] {
        expect_data(&dig(t, STUB4, "db.example", "A", x), "198.18.0.99");
        expect_data(&dig(t, STUB6, "DB.example.", "AAAA", x), "2001:db8::99");
        expect_data(&dig(t, STUB4, "gw.example", "A", x), "10.0.2.2");
        expect_data(&dig(t, STUB4, "gw.example", "AAAA", x), "fd00::2");
        // Forwarded names still work next to them.
        let a = dig(t, STUB4, "a.test", "A", x);
        expect_data(&a, "198.18.0.10");
        sends += a.tries;
    }
    // Only a.test (UDP, TCP) goes upstream: twice, or as often as it was
    // sent (dig resends a UDP query after 1 s without an answer).
    let got = up.stop();
    assert!(
        got >= 2 && got <= sends,
        "{got} queries upstream, a.test sent {sends} times"
    );

    // --disable-dns (no upstream option: nothing would read it).
    let up = Upstream::start(&outer, &format!("{UP_LO}:53"), &[]);
    let m = attach(&outer, &["--disable-dns"]);
    // Nothing answers there: no reply over UDP (the address answers ARP,
    // then drops everything silently) ...
    let (st, out, err) = run(m
        .target
        .testkit(&["dig", STUB4, "a.test", "A", "--timeout", "2"]));
    assert!(
        !st.success() && !out.contains("rcode="),
        "an answer with --disable-dns: {out} {err}"
    );
    // ... and no TCP connection.
    let (_, out, err) = run(m.target.testkit(&[
        "connect",
        &format!("{STUB4}:53"),
        "--expect",
        "timeout",
        "--timeout",
        "2",
    ]));
    assert!(
        field(&out, "result") == Some("timeout"),
        "TCP to the stub address with --disable-dns: {out} {err}"
    );
    // The stub address is not the host either: nothing reached the upstream.
    assert_eq!(up.stop(), 0);
}
