//! rlnet as pasta end to end, without Podman (issue 12; docs/compat.md,
//! "rlnet as pasta"): the copy of a host interface, the mapped addresses,
//! DNS forwarding, published ports and the addresses their clients show,
//! -T/-U and `auto`, the process model (fork, PID file, no caller
//! descriptor kept, exit on netns-file deletion, with the PID's process,
//! with the command, on SIGTERM), confinement, and bad input.
//!
//! The "host" is the test's outer namespace given an eth0 (one end of a
//! veth pair whose other end, up and unconfigured, stays in the same
//! namespace: nothing answers there and nothing leaves) with 192.0.2.2/24
//! via 192.0.2.1 and 2001:db8:1::2/64 via 2001:db8:1::1. Servers listen on
//! the outer namespace's own addresses; a "peer" namespace behind a veth
//! (203.0.113.0/24) plays a client elsewhere on the network.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const HOST4: &str = "192.0.2.2";
const GW4: &str = "192.0.2.1";
const HOST6: &str = "2001:db8:1::2";
const GW6: &str = "2001:db8:1::1";
const PEER4: &str = "203.0.113.2";
/// What Podman passes.
const DNS_FORWARD: &str = "169.254.1.1";
const GUEST_MAP: &str = "169.254.1.2";
const MIB: u64 = 1 << 20;
/// CAP_NET_BIND_SERVICE, the only capability rlnet as pasta may keep.
const NET_BIND_SERVICE: u64 = 1 << 10;
const NET_RAW: u64 = 1 << 13;

/// The outer namespace, made a host for pasta to copy.
fn pasta_host() -> Outer {
    let o = Outer::new();
    let mut c = o.cmd("sh");
    c.arg("-c").arg(format!(
        "set -e; ip link add eth0 type veth peer name eth0peer; ip link set eth0peer up; \
         echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; \
         ip addr add {HOST4}/24 dev eth0; ip -6 addr add {HOST6}/64 dev eth0 nodad; \
         ip link set eth0 up; ip route replace default via {GW4} dev eth0; \
         ip -6 route replace default via {GW6} dev eth0"
    ));
    run_ok(c);
    o
}

/// `rlnet pasta ARGS` from `cmd` (rlnet in the outer namespace, with or
/// without its capabilities there), run to completion: the parent exits
/// once the namespace works.
fn pasta(mut cmd: Command, args: &[&str]) -> Proc {
    cmd.arg("pasta").args(args);
    let mut p = Proc::spawn(cmd);
    let st = p.wait();
    assert!(st.success(), "pasta {args:?}: {st}; stderr: {}", p.stderr());
    p
}

/// A background rlnet, known by its PID file; killed by PID when dropped
/// if it still runs.
/// `rlnet pasta --config-net -q -P FILE ARGS PID` for the target `t`, from
/// the outer namespace `o`, run to completion; the daemon its PID file
/// names, and the directory that holds the file.
fn pasta_daemon(o: &Outer, t: &Target, args: &[&str]) -> (Daemon, TempDir) {
    let dir = TempDir::new("pasta");
    let pid_file = dir.path("pid");
    let pid = t.pid().to_string();
    let mut all = vec!["--config-net", "-q", "-P", &pid_file];
    all.extend_from_slice(args);
    all.push(&pid);
    pasta(o.rlnet_cmd(), &all);
    (Daemon::from_file(&pid_file), dir)
}

struct Daemon {
    pid: u32,
    /// Its processes once it was ready (itself and its subprocesses).
    all: Vec<u32>,
}

impl Daemon {
    fn from_file(path: &str) -> Daemon {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PID file: {text:?}"));
        let mut d = Daemon { pid, all: vec![] };
        assert!(d.alive(), "the PID file names {pid}, which is not rlnet");
        d.all = d.processes();
        d
    }

    fn alive(&self) -> bool {
        runs_rlnet(self.pid)
    }

    /// Its processes: itself and its subprocesses (the socket factory).
    fn processes(&self) -> Vec<u32> {
        let mut v = vec![self.pid];
        let children = format!("/proc/{0}/task/{0}/children", self.pid);
        v.extend(
            std::fs::read_to_string(children)
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        v
    }

    /// Wait (bounded) until it and its subprocesses have exited; true if
    /// they did.
    fn gone_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.all.iter().any(|&p| runs_rlnet(p)) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid.cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Is `pid` a live (not zombie) rlnet?
fn runs_rlnet(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == rlnet_bin())
        && !status(pid).get("State").is_some_and(|s| s.starts_with('Z'))
}

/// The `Key:\tvalue` lines of /proc/PID/status.
fn status(pid: u32) -> HashMap<String, String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Acceptance 5: rlnet and every process it keeps run without new
/// privileges, under seccomp, with no capability but CAP_NET_BIND_SERVICE
/// (and, for the socket factory, CAP_NET_RAW in the namespace's user
/// namespace: its real-address sockets need it), and hold no descriptor of
/// the caller's (stdio is /dev/null).
fn assert_confined(d: &Daemon) {
    let procs = d.processes();
    assert!(
        procs.len() >= 2,
        "rlnet keeps its socket factory: {procs:?}"
    );
    for pid in procs {
        let st = status(pid);
        assert_eq!(st["NoNewPrivs"], "1", "{pid}: {st:?}");
        assert_eq!(st["Seccomp"], "2", "{pid}: {st:?}");
        let allowed = if pid == d.pid {
            NET_BIND_SERVICE
        } else {
            NET_BIND_SERVICE | NET_RAW
        };
        for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            let v = u64::from_str_radix(&st[key], 16).unwrap();
            assert_eq!(v & !allowed, 0, "{pid} {key} = {v:#x}");
        }
        for fd in 0..3 {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(link.to_str(), Some("/dev/null"), "{pid} fd {fd}");
        }
    }
}

/// `testkit ARGS` in the target, bounded; its `ok=1` line.
fn in_target(t: &Target, args: &[&str]) -> String {
    let out = run_ok(t.testkit(args));
    let line = out
        .lines()
        .find(|l| l.starts_with("ok="))
        .unwrap_or("")
        .to_string();
    ok(&line);
    line
}

/// The port of the `key=ADDR:PORT` field of a result line.
fn port_of(line: &str, key: &str) -> String {
    let v = field(line, key).unwrap_or_else(|| panic!("no {key} in {line}"));
    v.rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}

fn peer_ip(line: &str) -> String {
    let p = field(line, "peer").unwrap_or_else(|| panic!("no peer in {line}"));
    let ip = p.rsplit_once(':').map_or(p, |(ip, _)| ip);
    ip.trim_start_matches('[').trim_end_matches(']').to_string()
}

/// The client's and the server's result lines agree on bytes and digest.
fn same_stream(client: &str, server: &str) {
    let n = MIB.to_string();
    assert_eq!(field(client, "bytes"), Some(n.as_str()), "{client}");
    assert_eq!(field(server, "bytes"), Some(n.as_str()), "{server}");
    let digest = field(client, "tx_digest").or(field(client, "digest"));
    assert_eq!(field(server, "digest"), digest, "{client}\n{server}");
}

/// Retry `f` every 100 ms for at most 60 s (ports appear with `auto`'s
/// next scan, once a second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not true after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// From the target: 1 MiB TCP over IPv4 and IPv6, UDP and ping to the
/// outer namespace's "outside" addresses.
fn outbound_both_families(o: &Outer, t: &Target) {
    let (down, p) = o.serve(&["serve-tcp", &format!("{OUTSIDE4}:0"), "source:1m:1"]);
    same_stream(
        &in_target(t, &["tcp", &format!("{OUTSIDE4}:{p}"), "recv:1m:1"]),
        &down.expect_line("ok="),
    );
    let (echo6, p) = o.serve(&["serve-tcp", &format!("[{OUTSIDE6}]:0"), "echo"]);
    same_stream(
        &in_target(t, &["tcp", &format!("[{OUTSIDE6}]:{p}"), "echo:1m:2"]),
        &echo6.expect_line("ok="),
    );
    let (_udp, p) = o.serve(&["serve-udp", &format!("{OUTSIDE4}:0"), "--count", "10"]);
    let c = in_target(t, &["udp", &format!("{OUTSIDE4}:{p}"), "--count", "10"]);
    assert_eq!(field(&c, "received"), Some("10"), "{c}");
    let ping = run_ok(t.sh(&format!("ping -c 1 -W 10 {OUTSIDE4}")));
    assert!(ping.contains("1 received"), "{ping}");
}

/// DNS to the forward address: the host's resolver answers (UDP, TCP).
fn dns_is_forwarded(t: &Target) {
    for extra in [&[][..], &["--tcp"]] {
        let mut args = vec!["dig", DNS_FORWARD, "tag.test", "TXT"];
        args.extend_from_slice(extra);
        let out = run_ok(t.testkit(&args));
        assert!(
            out.contains("rcode=NOERROR") && out.contains("pasta"),
            "{out}"
        );
    }
}

/// PID form, as RootlessKit runs it (rlnet without capabilities in its
/// namespace): the copy of the host's interface, outbound TCP/UDP/ping
/// over both families, --map-guest-addr, the gateway as the host's
/// loopback, --dns-forward answered from the host's resolver; confined;
/// it ends with the target process.
#[test]
fn pasta_copies_the_host_and_maps_addresses() {
    require_userns!();
    let o = pasta_host();
    let mut t = o.target();
    let dir = TempDir::new("pasta-copy");
    let pid_file = dir.path("pid");
    let (dns, _) = o.serve(&[
        "serve-dns",
        "127.0.0.1:53",
        "--tag",
        "pasta",
        "--timeout",
        "120",
    ]);
    let pid = t.pid().to_string();
    pasta(
        o.rlnet_cmd(),
        &[
            "--config-net",
            "--quiet",
            "--pid",
            &pid_file,
            "--dns-forward",
            DNS_FORWARD,
            "--dns-host",
            "127.0.0.1",
            "--map-guest-addr",
            GUEST_MAP,
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            &pid,
        ],
    );
    let d = Daemon::from_file(&pid_file);
    assert_confined(&d);

    // (Not /sys/class/net: that sysfs is the host's.)
    let ip = run_ok(t.sh("ip -o link show eth0; ip -o addr show eth0; ip route; ip -6 route"));
    for want in [
        format!("inet {HOST4}/24"),
        format!("inet6 {HOST6}/64"),
        format!("default via {GW4} dev eth0"),
        format!("default via {GW6} dev eth0"),
        "mtu 65520".to_string(),
    ] {
        assert!(ip.contains(&want), "{want:?} not in:\n{ip}");
    }

    outbound_both_families(&o, &t);

    // --map-guest-addr reaches the host's own address; the gateway (no
    // --no-map-gw) the host's loopback.
    let (own, p) = o.serve(&["serve-tcp", &format!("{HOST4}:0"), "echo"]);
    let c = in_target(&t, &["tcp", &format!("{GUEST_MAP}:{p}"), "echo:1m:3"]);
    same_stream(&c, &own.expect_line("ok="));
    let (lo, p) = o.serve(&["serve-tcp", "127.0.0.1:0", "echo"]);
    let c = in_target(&t, &["tcp", &format!("{GW4}:{p}"), "echo:1m:4"]);
    same_stream(&c, &lo.expect_line("ok="));

    dns_is_forwarded(&t);
    drop(dns);

    // The PID form ends with its process.
    t.kill();
    assert!(d.gone_within(WAIT), "rlnet outlived its target");
}

/// A client elsewhere on the network: a namespace behind a veth from the
/// outer one, 203.0.113.2/24 via 203.0.113.1.
fn peer(o: &Outer) -> Target {
    let p = o.target();
    run_ok({
        let mut c = o.cmd("sh");
        c.arg("-c").arg(format!(
            "set -e; ip link add lan0 type veth peer name lan1 netns {}; \
             ip addr add 203.0.113.1/24 dev lan0; ip link set lan0 up",
            p.pid()
        ));
        c
    });
    run_ok(p.sh(&format!(
        "set -e; ip link set lo up; ip addr add {PEER4}/24 dev lan1; ip link set lan1 up; \
         ip route add default via 203.0.113.1"
    )));
    p
}

/// -t/-u as Podman passes them: byte-exact from every kind of client; the
/// service sees the real address of a client elsewhere, the namespace's
/// own for a loopback client (pasta's splice path) and --map-guest-addr's
/// for the host's own address; a port bound to 127.0.0.1 only refuses
/// others; UDP from loopback and from elsewhere.
#[test]
fn pasta_published_ports_show_who_connects() {
    require_userns!();
    let o = pasta_host();
    let t = o.target();
    let far = peer(&o);
    let (web, _) = t.serve(&[
        "serve-tcp",
        "0.0.0.0:80",
        "echo",
        "--count",
        "4",
        "--timeout",
        "120",
    ]);
    let (udp, _) = t.serve(&["serve-udp", "0.0.0.0:53", "--timeout", "120"]);
    let (_d, _dir) = pasta_daemon(
        &o,
        &t,
        &[
            "-t",
            "18080-18080:80-80",
            "-t",
            "127.0.0.1/18081-18081:80-80",
            "-u",
            "5353-5353:53-53",
            "-T",
            "none",
            "-U",
            "none",
            "--no-map-gw",
            "--map-guest-addr",
            GUEST_MAP,
        ],
    );
    let mut seen = Vec::new();
    for (from_peer, addr, seed) in [
        (false, "127.0.0.1:18080", "11"),
        (false, "192.0.2.2:18080", "12"),
        (true, "192.0.2.2:18080", "13"),
        (false, "127.0.0.1:18081", "14"),
    ] {
        let mode = format!("echo:1m:{seed}");
        let cmd = if from_peer {
            far.testkit(&["tcp", addr, &mode])
        } else {
            o.testkit_cmd(&["tcp", addr, &mode])
        };
        let c = run_ok(cmd);
        let s = web.expect_line("ok=");
        let ok = c.lines().find(|l| l.starts_with("ok=")).unwrap_or("");
        same_stream(ok, &s);
        seen.push(peer_ip(&s));
        if addr.starts_with("127.") {
            // Spliced from the client's own port number, so the
            // namespace's TIME_WAIT of an earlier connection from it is
            // taken over instead of filling its port range under churn.
            assert_eq!(port_of(&s, "peer"), port_of(ok, "local"), "{ok}\n{s}");
        }
    }
    assert_eq!(
        seen,
        [HOST4, GUEST_MAP, PEER4, HOST4],
        "peers seen by the service"
    );
    let out = run_ok(far.testkit(&["connect", "192.0.2.2:18081", "--expect", "refused"]));
    assert!(out.contains("result=refused"), "{out}");

    let c = run_ok(far.testkit(&["udp", "192.0.2.2:5353", "--count", "10"]));
    assert!(c.contains("received=10"), "{c}");
    assert_eq!(peer_ip(&udp.expect_line("peer=")), PEER4);
    let c = run_ok(o.testkit_cmd(&["udp", "127.0.0.1:5353", "--count", "10"]));
    assert!(c.contains("received=10"), "{c}");
}

/// A spliced connection goes from the client's port number inside the
/// namespace (so the namespace's TIME_WAIT of an earlier connection from it
/// is taken over); when that four-tuple is live — the same client port to
/// the same service through two published ports — the namespace picks a
/// port instead, and the second connection works byte-exact.
#[test]
fn pasta_splice_from_a_client_port_in_use_inside() {
    require_userns!();
    let o = pasta_host();
    let t = o.target();
    let (web, _) = t.serve(&[
        "serve-tcp",
        "0.0.0.0:80",
        "echo",
        "--count",
        "2",
        "--timeout",
        "120",
    ]);
    let (_d, _dir) = pasta_daemon(
        &o,
        &t,
        &[
            "-t",
            "18083-18083:80-80",
            "-t",
            "18084-18084:80-80",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            "-4",
        ],
    );
    const SPORT: &str = "41234";
    let mut c = o.testkit_cmd(&["hold", "127.0.0.1:18083", "1", "--stdin", "--sport", SPORT]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut holder = Proc::from_child(c.spawn().unwrap());
    holder.expect_line("open=1");
    let out = run_ok(o.testkit_cmd(&["tcp", "127.0.0.1:18084", "echo:1m:51", "--sport", SPORT]));
    let ok = out.lines().find(|l| l.starts_with("ok=")).unwrap_or("");
    let second = web.expect_line("ok=");
    same_stream(ok, &second);
    assert_ne!(port_of(&second, "peer"), SPORT, "{second}");
    drop(holder.child.stdin.take()); // EOF: the held connection closes
    let first = web.expect_line("ok=");
    assert_eq!(port_of(&first, "peer"), SPORT, "{first}");
    holder.wait();
}

/// pasta's `--host-lo-to-ns-lo`: loopback clients of published ports reach
/// the namespace's loopback, so services bound only there answer (TCP
/// byte-exact, UDP) and see the client as 127.0.0.1. (Without it they reach
/// the namespace's address: `pasta_published_ports_show_who_connects`.)
#[test]
fn pasta_host_lo_to_ns_lo() {
    require_userns!();
    let o = pasta_host();
    let t = o.target();
    let (web, _) = t.serve(&[
        "serve-tcp",
        "127.0.0.1:80",
        "echo",
        "--count",
        "1",
        "--timeout",
        "120",
    ]);
    let (udp, _) = t.serve(&["serve-udp", "127.0.0.1:53", "--timeout", "120"]);
    let (_d, _dir) = pasta_daemon(
        &o,
        &t,
        &[
            "-t",
            "18090-18090:80-80",
            "-u",
            "5354-5354:53-53",
            "-T",
            "none",
            "-U",
            "none",
            "--host-lo-to-ns-lo",
        ],
    );
    let c = run_ok(o.testkit_cmd(&["tcp", "127.0.0.1:18090", "echo:1m:31"]));
    let s = web.expect_line("ok=");
    same_stream(c.lines().find(|l| l.starts_with("ok=")).unwrap_or(""), &s);
    assert_eq!(peer_ip(&s), "127.0.0.1", "{s}");
    let c = run_ok(o.testkit_cmd(&["udp", "127.0.0.1:5354", "--count", "10"]));
    assert!(c.contains("received=10"), "{c}");
    assert_eq!(peer_ip(&udp.expect_line("peer=")), "127.0.0.1");
}

/// -T/-U: the namespace's loopback ports reach the host's loopback; `auto`
/// (RootlessKit's -t auto, and -T auto) follows what is bound on the other
/// side, both ways, and stops forwarding what is no longer bound.
#[test]
fn pasta_namespace_loopback_and_auto() {
    require_userns!();
    let o = pasta_host();
    let t = o.target();
    let (host_tcp, p_tcp) = o.serve(&["serve-tcp", "127.0.0.1:0", "echo", "--count", "2"]);
    let (_host_udp, p_udp) = o.serve(&["serve-udp", "127.0.0.1:0", "--timeout", "120"]);
    let t_spec = format!("{p_tcp}");
    let u_spec = format!("{p_udp}");
    let (d, _dir) = pasta_daemon(
        &o,
        &t,
        &[
            "-t", "auto", "-u", "none", "-T", &t_spec, "-U", &u_spec, "-4",
        ],
    );
    assert_confined(&d);
    let c = in_target(&t, &["tcp", &format!("127.0.0.1:{p_tcp}"), "echo:1m:21"]);
    same_stream(&c, &host_tcp.expect_line("ok="));
    let c = in_target(&t, &["udp", &format!("127.0.0.1:{p_udp}"), "--count", "10"]);
    assert_eq!(field(&c, "received"), Some("10"), "{c}");

    // -t auto: a service that starts listening in the namespace is
    // published on the host (every address), and unpublished once it
    // stops.
    // A port outside the ephemeral range: `auto` never forwards those.
    let (svc, port) = t.serve(&[
        "serve-tcp",
        "0.0.0.0:18093",
        "echo",
        "--count",
        "1",
        "--timeout",
        "120",
    ]);
    let addr = format!("127.0.0.1:{port}");
    eventually("the auto-published port answers", || {
        run(o.testkit_cmd(&["connect", &addr, "--expect", "ok"]))
            .0
            .success()
    });
    drop(svc);
    eventually("the auto-published port closes", || {
        run(o.testkit_cmd(&["connect", &addr, "--expect", "refused"]))
            .0
            .success()
    });
    drop(d);
}

/// The netns-path form as Podman drives it: rlnet (root with capabilities
/// in its user namespace) configures, forks, and the parent exits 0 with
/// its output pipes closed (no process keeps them); the PID file names the
/// daemon; deleting the netns file ends it within 2 s.
#[test]
fn pasta_lifetime_follows_the_netns_file() {
    require_userns!();
    let o = pasta_host();
    let dir = TempDir::new("pasta-life");
    let (ns, pid_file) = (dir.path("netns"), dir.path("pid"));
    let mut c = o.cmd("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "set -e; touch {ns}; unshare --net={ns} true; exec {} pasta --config-net --quiet \
         --pid {pid_file} -t none -u none -T none -U none --netns {ns}",
            rlnet_bin().display()
        ));
    let mut p = Proc::spawn(c);
    let st = p.wait();
    assert!(st.success(), "{st}: {}", p.stderr());
    assert!(
        p.closed_within(WAIT),
        "a process kept the caller's output pipes open"
    );
    assert_eq!(p.stderr(), "", "--quiet");
    let d = Daemon::from_file(&pid_file);
    assert_confined(&d);
    // Deleted from outside the daemon's mount namespace (which detaches
    // the mount, as Podman's unmount and delete do).
    std::fs::remove_file(&ns).unwrap();
    let t0 = Instant::now();
    assert!(
        d.gone_within(Duration::from_secs(2)),
        "rlnet still runs {:?} after its netns file was deleted",
        t0.elapsed()
    );

    // A /proc/PID/ns/net path (procfs tells no deletion): rlnet ends with
    // the process instead.
    let mut t = o.target();
    let pid_file = dir.path("pid2");
    let (net, user) = (
        format!("/proc/{}/ns/net", t.pid()),
        format!("/proc/{}/ns/user", t.pid()),
    );
    pasta(
        o.rlnet_cmd(),
        &[
            "--config-net",
            "-q",
            "-P",
            &pid_file,
            "-t",
            "none",
            "-u",
            "none",
            "-T",
            "none",
            "-U",
            "none",
            "--netns",
            &net,
            "--userns",
            &user,
        ],
    );
    let d = Daemon::from_file(&pid_file);
    t.kill();
    assert!(
        d.gone_within(WAIT),
        "rlnet outlived the process of its /proc netns"
    );
}

/// The command form (like `rlnet run`: COMMAND's exit status, the copy of
/// the host configured for it), and a foreground rlnet ending cleanly on
/// SIGTERM.
#[test]
fn pasta_command_form_and_sigterm() {
    require_userns!();
    let o = pasta_host();
    // Mapping its own uid to root in the command's new user namespace
    // takes CAP_SETFCAP (Linux 5.12), as for `rlnet run`.
    let mut c = o.rlnet_setfcap_cmd();
    c.args([
        "pasta",
        "--config-net",
        "--",
        "sh",
        "-c",
        "ip -o addr show eth0; exit 7",
    ]);
    let mut p = Proc::spawn(c);
    assert_eq!(p.wait().code(), Some(7), "stderr: {}", p.stderr());
    p.drain();
    assert!(
        p.stdout()
            .iter()
            .any(|l| l.contains(&format!("inet {HOST4}/24"))),
        "{:?}",
        p.stdout()
    );

    let t = o.target();
    let mut c = o.rlnet_cmd();
    c.args([
        "pasta",
        "-f",
        "--config-net",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
    ]);
    c.arg(t.pid().to_string());
    let mut p = Proc::spawn(c);
    eventually("the namespace is configured", || {
        run(t.sh("ip -o addr show eth0")).1.contains(HOST4)
    });
    p.kill(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(p.wait().code(), Some(0), "stderr: {}", p.stderr());
}

/// Bad input through the binary: as `pasta` (argv[0]) and as `rlnet
/// pasta`, one line on stderr and exit 1, for the command line and for what
/// only running can find out; nothing is left running.
#[test]
fn pasta_refuses_bad_input() {
    require_userns!();
    let o = pasta_host();
    let dir = TempDir::new("pasta-bad");
    let link = dir.path("pasta");
    std::os::unix::fs::symlink(rlnet_bin(), &link).unwrap();
    let (_busy, port) = o.serve(&["serve-tcp", "0.0.0.0:0", "hold"]);
    let busy = format!("{port}");
    let t = o.target();
    let pid = t.pid().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unrecognized option '--bogus'"),
        (&["-t"], "option requires an argument -- 't'"),
        (&["-t", "bogus"], "invalid port specifier 'bogus'"),
        (&["-a", "1.2.3"], "invalid address '1.2.3'"),
        (&["--netns", "/nonexistent/netns"], "/nonexistent/netns"),
        (&["-i", "nosuch0", &pid], "nosuch0"),
        (&["2147483647"], "2147483647"),
        (
            &["-t", &busy, "-u", "none", "-T", "none", "-U", "none", &pid],
            "already in use",
        ),
    ];
    for (args, needle) in cases {
        for named in [true, false] {
            let mut c = if named {
                o.cmd(&link)
            } else {
                let mut c = o.cmd(rlnet_bin());
                c.arg("pasta");
                c
            };
            c.args(*args);
            let mut p = Proc::spawn(c);
            let st = p.wait();
            p.drain();
            assert_eq!(st.code(), Some(1), "{args:?}: {}", p.stderr());
            one_line_error(&p.stderr(), needle);
            let prefix = if named {
                format!("{link}: ")
            } else {
                "rlnet: ".into()
            };
            assert!(p.stderr().starts_with(&prefix), "{args:?}: {}", p.stderr());
        }
    }
    // Nothing started is left: no rlnet in the outer namespace but none.
    let mine = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|e| e == rlnet_bin())
                && std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains(&*pid) && c.contains("pasta"))
        })
        .count();
    assert_eq!(mine, 0, "an rlnet of a refused start is left");
}
