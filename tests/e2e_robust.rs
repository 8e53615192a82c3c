//! Bad input, hostile frames and resource use, end to end and unprivileged.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The namespace has no interface but `lo` (nothing was left behind).
fn no_tap(target: &Target) {
    let links = run_ok(target.sh("ip -o link show"));
    assert!(!links.contains("tap0"), "a TAP was left behind: {links}");
}

/// Bad command-line input: one clear line, exit status 1, and nothing left
/// behind in the target namespace.
#[test]
fn bad_input_is_refused_cleanly() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let pid = target.pid().to_string();

    // A PID that cannot exist (PIDs are below pid_max); a reaped child's
    // PID could be reused by a parallel test's process.
    let gone = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .to_string();

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&gone], "no process with PID"),
        (vec!["--cidr", "24", &pid], "invalid CIDR: 24"),
        (
            vec!["--cidr", "300.0.0.0/24", &pid],
            "invalid network address: 300.0.0.0",
        ),
        (
            vec!["--cidr", "10.0.2.0/26", &pid],
            "prefix length needs to be 1-25",
        ),
        (
            vec!["--cidr", "10.0.2.100/24", &pid],
            "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24",
        ),
        (vec!["--mtu", "0", &pid], "MTU must be a positive integer"),
        (
            vec!["--mtu", "70000", &pid],
            "MTU must be a positive integer",
        ),
        (vec!["--bogus", &pid], "unrecognized option '--bogus'"),
        (vec!["abc"], "PID must be a positive integer"),
        (
            vec!["--netns-type=path", "/nonexistent/netns", "tap0"],
            "existing path expected",
        ),
        (
            vec!["--netns-type=path", "/etc/passwd", "tap0"],
            "is not a network namespace",
        ),
    ];
    for (args, needle) in cases {
        let mut c = outer.rlnet_cmd();
        c.args(&args);
        let (st, _, err) = run(c);
        assert_eq!(st.code(), Some(1), "{args:?}: {err}");
        one_line_error(&err, needle);
        no_tap(&target);
    }

    // The process of another user: PID 1 belongs to root.
    let mut c = base_cmd(rlnet_bin());
    c.arg("1");
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1), "{err}");
    if is_root() {
        one_line_error(&err, "belongs to another user");
    }
}

/// Without access to /dev/net/tun the error says how to fix it, and the
/// command of `rlnet run` never starts.
#[test]
fn missing_tun_access_is_explained() {
    require_userns!();
    // /etc/shadow is root's and unreadable: bind it over /dev/net/tun in a
    // private mount namespace, so the device looks like a distribution's
    // 0600 one to rlnet.
    let marker = format!("/tmp/rlnet-tun-test-{}", std::process::id());
    let script = format!(
        "mount --bind /etc/shadow /dev/net/tun && exec {} run -- sh -c 'touch {marker}'",
        rlnet_bin().display()
    );
    let mut c = base_cmd("unshare");
    c.args(["-Urm", "--propagation", "private", "sh", "-c", &script]);
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1), "{err}");
    one_line_error(&err, "chmod 0666 /dev/net/tun");
    assert!(!std::path::Path::new(&marker).exists(), "the command ran");
}

/// An API socket path that is in use or not a socket is refused; a stale
/// one is replaced; the file is gone after a clean exit.
#[test]
fn api_socket_file_lifecycle() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let pid = target.pid().to_string();
    let dir = TempDir::new("api");
    let sock = dir.path("api.sock");

    let mut r = start_rlnet(outer.rlnet_cmd(), &["--api-socket", &sock, &pid]);
    // A second instance (for another namespace) on the same path: refused,
    // the first keeps it.
    let other = outer.target();
    let mut c = outer.rlnet_cmd();
    c.args(["--api-socket", &sock, &other.pid().to_string()]);
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1));
    one_line_error(&err, "in use");
    no_tap(&other);
    r.proc.kill(nix::sys::signal::Signal::SIGTERM);
    assert!(r.proc.wait().success());
    assert!(
        !std::path::Path::new(&sock).exists(),
        "socket file left behind"
    );

    // A regular file at the path is never replaced.
    std::fs::write(&sock, b"precious").unwrap();
    let mut c = outer.rlnet_cmd();
    c.args(["--api-socket", &sock, &pid]);
    let (st, _, err) = run(c);
    assert_eq!(st.code(), Some(1));
    one_line_error(&err, "not a socket");
    assert_eq!(std::fs::read(&sock).unwrap(), b"precious");
    no_tap(&target);
}

/// Malformed frames from inside the namespace (truncations at every offset,
/// lying lengths, illegal addresses and ports, fragments, oversize frames)
/// sent through an AF_PACKET socket: rlnet keeps running and serving.
#[test]
fn malformed_frames_from_the_namespace() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let mut r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string()]);
    let out = run_ok(target.testkit(&["inject", "tap0", "--rounds", "3"]));
    let sent: u64 = field(&out, "sent")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(sent > 1000, "{out}");
    assert!(
        r.proc.child.try_wait().unwrap().is_none(),
        "rlnet died: {}",
        r.proc.stderr()
    );
    let (_srv, port) = outer.serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "echo"]);
    let echo = run_ok(target.testkit(&["tcp", &format!("{OUTSIDE4}:{port}"), "echo:10000000:3"]));
    assert_eq!(field(&echo, "ok"), Some("1"), "{echo}");
    let ping = run_ok(target.sh("ping -c 1 -W 10 10.0.2.2"));
    assert!(ping.contains("1 received"), "{ping}");
}

/// 1,000 concurrent outbound connections held open, then closed: rlnet's
/// open fds and resident memory return to where they were.
#[test]
fn thousand_connections_return_to_baseline() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string()]);
    let (mut srv, port) = outer.serve(&[
        "serve-tcp",
        &format!("{OUTSIDE4}:0"),
        "hold",
        "--count",
        "1000",
    ]);
    // Warm up once so lazily allocated state is part of the baseline; the
    // warm-up's own flow is gone once rlnet has seen it close (when exactly
    // is up to the scheduler), which leaves the fds held with no flow open.
    let idle = fds_of(r.proc.pid()).total();
    let _ = run_ok(target.testkit(&["hold", &format!("{OUTSIDE4}:{port}"), "1", "--timeout", "1"]));
    let fds0 = settle(r.proc.pid(), |f| f.total() <= idle).total();
    let rss0 = rss_kib(r.proc.pid());

    let mut c = target.testkit(&["hold", &format!("{OUTSIDE4}:{port}"), "1000", "--stdin"]);
    c.stdin(Stdio::piped());
    let mut holder = Proc::from_child({
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    });
    let open = holder.expect_line("open=");
    assert_eq!(field(&open, "open"), Some("1000"), "{open}");
    let (fds1, rss1) = fds_and_rss(r.proc.pid());
    assert!(fds1 >= fds0 + 1000, "fds {fds0} -> {fds1} with 1000 flows");
    drop(holder.child.stdin.take()); // EOF: close them all
    let closed = holder.expect_line("closed=");
    assert!(closed.contains("closed=1000"), "{closed}");
    holder.wait();
    let fds2 = settle(r.proc.pid(), |f| f.total() <= fds0).total();
    let rss2 = rss_kib(r.proc.pid());
    eprintln!("fds {fds0} -> {fds1} -> {fds2}; RSS KiB {rss0} -> {rss1} -> {rss2}");
    assert_eq!(fds2, fds0, "fds did not return to baseline");
    // Within 1 MiB of the baseline: the flows' buffers were given back.
    assert!(
        rss2 <= rss0 + 1024,
        "RSS {rss0} KiB -> {rss2} KiB after closing"
    );
    srv.kill(nix::sys::signal::Signal::SIGKILL);
}

/// rlnet's bounds on reassembly memory (rlnet(1), LIMITS): per namespace
/// and in total.
const REASSEMBLY_PER_NS: u64 = 1 << 20;
const REASSEMBLY_TOTAL: u64 = 8 << 20;

/// Issue 13, finding 7, the bounds: fragments that never complete a
/// datagram, IPv4 and IPv6, until six times the total bound has reached
/// rlnet. What rlnet holds stays within the per-namespace bound (its status
/// counters say so, and its memory does not grow with the flood);
/// fragmented UDP, TCP and ping from the same namespace still work
/// throughout; and what is held is dropped at the reassembly timeout
/// (30 s), by timer.
#[test]
fn fragment_flood_stays_bounded() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let dir = TempDir::new("frag");
    let sock = dir.path("api.sock");
    let pid = target.pid().to_string();
    let r = start_rlnet(
        outer.rlnet_cmd(),
        &["--mtu", "1500", "--api-socket", &sock, &pid],
    );
    let counter = |name: &str| -> u64 {
        let out = run_ok(outer.testkit_cmd(&["api", &sock, r#"{"execute":"status"}"#]));
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {out}"));
        v["return"]["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}: {out}"))
    };
    let (_u4, p4) = outer.serve(&["serve-udp", &format!("{OUTSIDE4}:0")]);
    let (_u6, p6) = outer.serve(&["serve-udp", &format!("[{OUTSIDE6}]:0")]);
    let (_tcp, pt) = outer.serve(&[
        "serve-tcp",
        &format!("{OUTSIDE4}:0"),
        "echo",
        "--count",
        "1000",
    ]);
    let others = || {
        for addr in [format!("{OUTSIDE4}:{p4}"), format!("[{OUTSIDE6}]:{p6}")] {
            ok(&run_ok(target.testkit(&[
                "udp",
                &addr,
                "--size",
                "3000",
                "--count",
                "3",
                "--timeout",
                "30",
            ])));
        }
        let echo = run_ok(target.testkit(&["tcp", &format!("{OUTSIDE4}:{pt}"), "echo:100000:7"]));
        ok(&echo);
        let ping = run_ok(target.sh("ping -c 1 -W 10 10.0.2.2"));
        assert!(ping.contains("1 received"), "{ping}");
    };
    // Warm up: what the first datagrams allocate, later ones reuse.
    others();
    let rss0 = rss_kib(r.proc.pid());
    let in0 = counter("bytes_in");
    let mut round = 0u32;
    let mut most = 0;
    loop {
        let first = (round * 200).to_string();
        let out = run_ok(target.testkit(&[
            "frag-flood",
            "tap0",
            "--datagrams",
            "200",
            "--fragments",
            "40",
            "--first-id",
            &first,
        ]));
        assert!(field(&out, "sent").is_some_and(|n| n != "0"), "{out}");
        let held = counter("reassembly_bytes");
        assert!(held <= REASSEMBLY_PER_NS, "{held} bytes held");
        most = most.max(held);
        others();
        if counter("bytes_in") - in0 >= 6 * REASSEMBLY_TOTAL {
            break;
        }
        round += 1;
        assert!(round < 100, "the flood did not reach rlnet");
    }
    assert!(
        most > REASSEMBLY_PER_NS / 2,
        "the flood held only {most} bytes"
    );
    let rss1 = rss_kib(r.proc.pid());
    eprintln!(
        "fragment flood: {} rounds, at most {most} bytes held, RSS {rss0} -> {rss1} KiB",
        round + 1
    );
    // The bound, plus room for the allocator's own slack.
    assert!(
        rss1 <= rss0 + REASSEMBLY_PER_NS / 1024 + 16 * 1024,
        "RSS {rss0} KiB -> {rss1} KiB"
    );
    // Nothing completes them: the timer drops them all (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(90);
    while counter("reassembly_datagrams") > 0 {
        assert!(Instant::now() < deadline, "fragments held past the timeout");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(counter("reassembly_bytes"), 0);
}

/// Once ready, rlnet drops the start-up code it will not run again (a
/// moment after the ready word, off the path of the first connections):
/// its file-backed memory falls from ~4.8 MiB at ready to under 1 MiB.
#[test]
fn start_up_code_is_dropped_after_ready() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string()]);
    let pid = r.proc.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut kib = status_kib(pid, "RssFile:").unwrap_or(u64::MAX);
    while kib > 2048 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        kib = status_kib(pid, "RssFile:").unwrap_or(u64::MAX);
    }
    eprintln!("rlnet RssFile after ready: {kib} KiB");
    assert!(
        kib <= 2048,
        "rlnet still maps {kib} KiB of files 10 s after ready"
    );
}

/// No busy polling: with no flows, rlnet sleeps in epoll_wait: no CPU and
/// no timer wake-ups over 10 s (acceptance: "measure over 10 s").
#[test]
fn idle_means_asleep() {
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string()]);
    // Some traffic first, so timers and flows have existed and gone.
    let (_srv, port) = outer.serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "echo"]);
    run_ok(target.testkit(&["tcp", &format!("{OUTSIDE4}:{port}"), "echo:1000:1"]));
    run_ok(target.sh("ping -c 1 -W 10 10.0.2.2"));
    let pid = r.proc.pid();
    // The namespace's own start-up chatter (MLD reports) also wakes rlnet;
    // wait until it has been quiet for 2 s (bounded), then measure.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = switches(pid);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(200));
        let now = switches(pid);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    let (before, cpu0) = (switches(pid), cpu_ticks(pid));
    std::thread::sleep(Duration::from_secs(10));
    let (after, cpu1) = (switches(pid), cpu_ticks(pid));
    eprintln!(
        "idle 10 s: {} wake-ups, {} CPU ticks",
        after - before,
        cpu1 - cpu0
    );
    assert_eq!(after - before, 0, "rlnet woke while idle");
    assert_eq!(cpu1 - cpu0, 0, "rlnet used CPU while idle");
}

fn switches(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| {
            l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches")
        })
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// An outer namespace, a target and rlnet with an API socket.
fn with_api(args: &[&str]) -> (Outer, Target, Rlnet, TempDir, String) {
    let outer = Outer::new();
    let target = outer.target();
    let dir = TempDir::new("robust-api");
    let sock = dir.path("api.sock");
    let pid = target.pid().to_string();
    let mut all = vec!["--api-socket", &sock];
    all.extend_from_slice(args);
    all.push(&pid);
    let r = start_rlnet(outer.rlnet_cmd(), &all);
    (outer, target, r, dir, sock)
}

const NOT_OBJECT: &str = r#"{"error":{"desc":"bad request: json_object() failed"}}"#;
const LIST: &str = r#"{"execute":"list_hostfwd"}"#;

/// Issue 13 finding 3a: a request that is a complete JSON value but not an
/// object (`42`, `null`) is answered at once with slirp4netns's error body,
/// even while the client keeps its write side open. (A server that waited
/// for more would cut the client off at its deadline without an answer.)
#[test]
fn api_non_object_request_is_answered_at_once() {
    require_userns!();
    let (outer, _target, _r, _dir, sock) = with_api(&[]);
    for req in ["42", "null", "true", "-7.5e3"] {
        let out =
            run_ok(outer.testkit_cmd(&["api", &sock, req, "--no-shutdown", "--timeout", "30"]));
        assert_eq!(out.lines().next(), Some(NOT_OBJECT), "{req}: {out}");
    }
}

/// Issue 13 finding 3b: 100 clients that connect and send nothing do not
/// make the next client wait: it is answered while they all still hold
/// their connections.
#[test]
fn api_idle_clients_do_not_hold_up_a_new_client() {
    require_userns!();
    let (outer, _target, mut r, _dir, sock) = with_api(&["-p", "38301:7301"]);
    for _ in 0..3 {
        let out =
            run_ok(outer.testkit_cmd(&["api", &sock, LIST, "--idle", "100", "--timeout", "30"]));
        let reply = out.lines().next().unwrap_or("");
        assert!(reply.contains(r#""host_port":38301"#), "{out}");
    }
    assert!(
        r.proc.child.try_wait().unwrap().is_none(),
        "rlnet died: {}",
        r.proc.stderr()
    );
}

/// Issue 13 finding 3c: root is served, as slirp4netns serves it (root can
/// open the 0600 socket anyway); another user is still refused if the
/// socket's mode is widened to let it connect. Needs root to act as root:
/// CI runs the suite as root.
#[test]
fn api_serves_root() {
    require_userns!();
    if !is_root() {
        eprintln!("api_serves_root: runs as root only (the test acts as root)");
        return;
    }
    let (_outer, _target, _r, _dir, sock) = with_api(&["-p", "38302:7302"]);
    let mut c = std::process::Command::new(testkit_bin());
    c.args(["api", &sock, LIST, "--timeout", "30"]);
    let out = run_ok(c);
    assert!(out.contains(r#""host_port":38302"#), "root: {out}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65533", "--regid=65533", "--clear-groups", "--"]);
    c.arg(testkit_bin());
    c.args(["api", &sock, LIST, "--timeout", "30"]);
    let (_, out, _) = run(c);
    assert!(!out.contains("entries"), "another user was served: {out}");
}

/// Issue 13 finding 4: with rlnet out of file descriptors (`ulimit -n 256`)
/// during a flood of 2,000 parallel connections through a published port,
/// the port works again once the flood is over. (The listener used to stop
/// for good: connections it could not accept filled its queue, and a full
/// queue drops new SYNs, so it was never woken again.) rlnet's fds return
/// to their baseline, plus what its pools keep for reuse.
#[test]
fn published_port_recovers_after_fd_exhaustion() {
    use rlnet::forward::{publish::POOL_SPARE_MAX, splice::POOL_MAX};
    require_userns!();
    let outer = Outer::new();
    let target = outer.target();
    let (_svc, _) = target.serve(&[
        "serve-tcp",
        "0.0.0.0:7400",
        "echo",
        "--count",
        "100000",
        "--timeout",
        "300",
    ]);
    // soft = hard = 256: rlnet cannot raise it.
    let mut c = outer.cmd("prlimit");
    c.args(["--nofile=256:256", "--", "setpriv"]);
    c.args([
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--ambient-caps=-all",
    ]);
    c.args(["--no-new-privs", "--"]);
    c.arg(rlnet_bin());
    let r = start_rlnet(c, &["-p", "38400:7400", &target.pid().to_string()]);
    let addr = format!("{OUTSIDE4}:38400");
    let pid = r.proc.pid();
    // Warm up once; the baseline is after that flow is gone.
    let idle = fds_of(pid).total();
    ok(&run_ok(outer.testkit_cmd(&["tcp", &addr, "echo:100000:1"])));
    let base = settle(pid, |f| f.total() <= idle).total();

    // The flood: 2,000 connections opened at once, held, then closed (when
    // all are open, or when hold gives up; either ends it).
    let (_, out, err) = run(outer.testkit_cmd(&["hold", &addr, "2000", "--timeout", "10"]));
    assert!(
        r.proc.stderr().contains("Too many open files"),
        "rlnet never ran out of fds: {out} {err}; rlnet: {}",
        r.proc.stderr()
    );
    // Published connections splice (the real-address splice): pipes and
    // namespace sockets made ahead are kept for reuse, up to a bound.
    let spare = 2 * POOL_MAX + POOL_SPARE_MAX;
    let after = settle(pid, |f| f.total() <= base + spare).total();
    assert!(
        after <= base + spare,
        "fds {base} before the flood, {after} after (more than {spare} kept for reuse)"
    );
    // A new connection through the same port.
    let (st, out, err) =
        run(outer.testkit_cmd(&["tcp", &addr, "echo:100000:1", "--timeout", "30"]));
    assert!(
        st.success(),
        "published port dead after the flood: {out} {err}"
    );
    ok(&out);
}

/// Outbound churn: 10,000 connections one after the other (connect, echo,
/// close) from the namespace; rlnet's fds return to where they were.
/// rlnet serving a namespace, and a TCP server (`serve-tcp MODE --count
/// COUNT`) at OUTSIDE4 in the outer namespace; the last item is its port.
fn with_outside_server(mode: &str, count: &str) -> (Outer, Target, Rlnet, Proc, u16) {
    let outer = Outer::new();
    let target = outer.target();
    let r = start_rlnet(outer.rlnet_cmd(), &[&target.pid().to_string()]);
    let (srv, port) = outer.serve(&[
        "serve-tcp",
        &format!("{OUTSIDE4}:0"),
        mode,
        "--count",
        count,
        "--timeout",
        "300",
    ]);
    (outer, target, r, srv, port)
}

#[test]
fn outbound_churn_returns_to_baseline() {
    require_userns!();
    let (_outer, target, r, _srv, port) = with_outside_server("echo", "10100");
    let pid = r.proc.pid();
    let addr = format!("{OUTSIDE4}:{port}");
    let idle = fds_of(pid).total();
    ok(&run_ok(target.testkit(&["crr", &addr, "100"])));
    let base = settle(pid, |f| f.total() <= idle).total();
    let out = run_ok(target.testkit(&["crr", &addr, "10000", "--timeout", "120"]));
    ok(&out);
    let after = settle(pid, |f| f.total() <= base).total();
    eprintln!("{out}; fds {idle} idle, {base} before, {after} after");
    assert!(after <= base, "fds {base} before the churn, {after} after");
}

/// Issue 13, acceptance 5 (found measuring it): SYNs from the namespace's
/// own address but from ports with no socket behind them, as a SYN flood
/// sends. rlnet connects to the host for each and answers SYN-ACK; the
/// namespace's kernel resets every one, and smoltcp puts each socket back
/// to LISTEN. Those flows held their host connection for good: after a
/// flood rlnet stayed at its fd limit. Now they end, and the fds return to
/// what they were.
#[test]
fn syn_flood_reset_by_the_namespace_returns_fds_to_baseline() {
    require_userns!();
    let (_outer, target, r, _srv, port) = with_outside_server("hold", "100000");
    let pid = r.proc.pid();
    let addr = format!("{OUTSIDE4}:{port}");
    let idle = fds_of(pid).total();
    // One real connection first, so the baseline includes what the first
    // flow allocates for good.
    run_ok(target.testkit(&["connect", &addr]));
    let base = settle(pid, |f| f.total() <= idle).total();
    let out = run_ok(target.testkit(&[
        "spoof",
        "tap0",
        "10.0.2.100",
        OUTSIDE4,
        "--syn",
        "--dport",
        &port.to_string(),
        "--dst-mac",
        "52:55:0a:00:02:02",
        "--count",
        "2000",
        "--timeout",
        "60",
    ]));
    assert!(out.contains("sent="), "{out}");
    let after = settle(pid, |f| f.total() <= base).total();
    eprintln!("{out}; fds {idle} idle, {base} before, {after} after");
    assert!(
        after <= base,
        "fds {base} before the SYN flood, {after} after"
    );
}
