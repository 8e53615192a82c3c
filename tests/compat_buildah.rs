//! Buildah 1.28 (Debian 12) `buildah run` with rlnet as its slirp4netns.
//!
//! Buildah 1.28 ignores containers.conf's `network_cmd_path`: it runs
//! `exec.LookPath("slirp4netns")` with `--mtu 65520 -r 3 -c PID tap0`. So the
//! test puts a `slirp4netns` wrapper that execs rlnet first in Buildah's
//! PATH (a directory private to the test).

mod common;
mod compat;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Proc, rlnet_bin};
use compat::*;

/// `buildah run` in a busybox working container reaches a server on the
/// host's 127.0.0.1 through 10.0.2.2 (1 MiB). While the run is in progress
/// (held open by a "gate" server on host loopback that the container
/// connects to last), the network helper Buildah started is rlnet with
/// Buildah's argv; it is gone once `buildah run` returns.
#[test]
fn buildah_run_uses_rlnet_and_reaches_host_loopback() {
    let Some(user) = setup(&["buildah", "runc"]) else {
        return;
    };
    let _serial = serial();
    let env = Env::new(&user);
    env.script(
        "slirp4netns",
        &format!("exec {} \"$@\"", rlnet_bin().display()),
    );
    env.make_rootfs_tar();
    let ctr = env
        .buildah(&["from", "--name", "rlnet-compat", "scratch"])
        .trim()
        .to_string();
    assert_eq!(ctr, "rlnet-compat");
    let tar = env.rootfs_tar.display().to_string();
    env.buildah(&["add", &ctr, &tar, "/"]);

    let (srv, port) = env.serve(&["serve-tcp", "127.0.0.1:0", &format!("source:{MIB}:41")]);
    let gate = TcpListener::bind("127.0.0.1:0").unwrap();
    let gate_port = gate.local_addr().unwrap().port();
    gate.set_nonblocking(true).unwrap();

    let script = format!(
        "ip -o -4 addr show tap0; nc 10.0.2.2 {port} </dev/null | wc -c; nc 10.0.2.2 {gate_port} </dev/null"
    );
    let mut cmd = env.cmd("buildah");
    env.mark_buildah_used();
    cmd.env(
        "PATH",
        format!(
            "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            env.bin.display()
        ),
    )
    .args(["run", &ctr, "--", "sh", "-c", &script]);
    let mut run = Proc::spawn(cmd);
    let buildah_pid = run.pid();

    // The container has fetched the 1 MiB and now waits on the gate.
    let deadline = Instant::now() + CALL;
    let mut conn = loop {
        match gate.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(st) = run.child.try_wait().unwrap() {
                    run.drain();
                    panic!(
                        "buildah run exited ({st}) before reaching the gate: {:?}\n{}",
                        run.stdout(),
                        run.stderr()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "the container never reached the gate: {}",
                    run.stderr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    let helper = wait_for_proc("rlnet started by buildah", |p| {
        p.comm == "rlnet" && descends_from(p, buildah_pid)
    });
    assert_rlnet(&helper);
    eprintln!("network helper {}: {:?}", helper.pid, helper.argv);
    let args: Vec<&str> = helper.argv[1..].iter().map(String::as_str).collect();
    assert!(
        args.len() == 7 && args[..5] == ["--mtu", "65520", "-r", "3", "-c"] && args[6] == "tap0",
        "unexpected argv from buildah: {args:?}"
    );
    conn.write_all(b"gate-open\n").unwrap();
    drop(conn);

    let st = run.wait_timeout(CALL).expect("buildah run did not exit");
    run.drain();
    let out = run.stdout();
    assert!(st.success(), "buildah run: {st}: {out:?}\n{}", run.stderr());
    assert!(
        out.first().is_some_and(|l| l.contains("10.0.2.100/24")),
        "{out:?}"
    );
    assert_eq!(
        out[1..],
        [MIB.to_string(), "gate-open".to_string()],
        "{out:?}"
    );
    ok(&srv.expect_line("ok="));
    let left = wait_gone(&[helper], SETTLE);
    assert!(left.is_empty(), "rlnet outlived buildah run: {left:#?}");
}
