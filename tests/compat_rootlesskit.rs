//! RootlessKit 1.1 (Debian 12) with `--net=slirp4netns
//! --slirp4netns-binary=<rlnet>`, as an unprivileged user: every combination
//! of port driver (builtin, slirp4netns), `--slirp4netns-sandbox=true
//! --slirp4netns-seccomp=true` (on/off) and `--disable-host-loopback`
//! (on/off). RootlessKit creates and configures tap0 itself and passes the
//! PID of its child; rlnet must attach to the existing TAP, and RootlessKit
//! stops it with SIGKILL.

mod common;
mod compat;

use common::{Proc, field, rlnet_bin, testkit_bin};
use compat::*;

fn case(driver: &str, sandbox: bool, no_loopback: bool) {
    let Some(user) = setup(&["rootlesskit", "rootlessctl", "ip", "nsenter"]) else {
        return;
    };
    let _serial = serial();
    let env = Env::new(&user);
    let tk = testkit_bin().display().to_string();
    let state = env.dir.join("st");

    // The host's loopback server the child reaches through 10.0.2.2.
    let (host_srv, host_port) =
        env.serve(&["serve-tcp", "127.0.0.1:0", &format!("source:{MIB}:31")]);
    let outbound = if no_loopback {
        format!("{tk} connect 10.0.2.2:{host_port} --expect netunreach")
    } else {
        format!("{tk} tcp 10.0.2.2:{host_port} recv:{MIB}:31")
    };
    // The child: outbound check, then a service on port 80 for one
    // published connection; RootlessKit exits when it does.
    let script = format!(
        "set -e; echo \"tap0-addr $(ip -o -4 addr show tap0)\"; {outbound}; exec {tk} serve-tcp 0.0.0.0:80 source:{MIB}:32"
    );
    let mut cmd = env.cmd("rootlesskit");
    cmd.arg("--net=slirp4netns")
        .arg(format!("--slirp4netns-binary={}", rlnet_bin().display()))
        .arg(format!("--port-driver={driver}"))
        .arg(format!("--state-dir={}", state.display()));
    if sandbox {
        cmd.args(["--slirp4netns-sandbox=true", "--slirp4netns-seccomp=true"]);
    }
    if no_loopback {
        cmd.arg("--disable-host-loopback");
    }
    cmd.args(["--", "sh", "-c", &script]);
    let mut rk = Proc::spawn(cmd);

    // RootlessKit's child configured tap0 itself (no -c to rlnet).
    let addr = rk.expect_line("tap0-addr");
    assert!(addr.contains("10.0.2.100/24"), "{addr}");
    if no_loopback {
        let l = rk.expect_line("result=");
        assert_eq!(field(&l, "result"), Some("netunreach"), "{l}");
        assert!(
            !host_srv.stdout().iter().any(|l| l.starts_with("ok=")),
            "the host server got a connection with --disable-host-loopback"
        );
    } else {
        let l = rk.expect_line("ok=");
        ok(&l);
        let s = host_srv.expect_line("ok=");
        ok(&s);
        assert_eq!(field(&l, "digest"), field(&s, "digest"));
        assert!(
            field(&s, "peer").is_some_and(|p| p.starts_with("127.0.0.1:")),
            "{s}"
        );
    }
    rk.expect_line("listening port=80");

    // The network helper is rlnet, started by RootlessKit with the flags
    // this configuration implies.
    let rk_pid = rk.pid();
    let helper = wait_for_proc("rlnet child of rootlesskit", |p| {
        p.ppid == rk_pid && p.comm != "exe" && p.argv.iter().any(|a| a == "tap0")
    });
    assert_rlnet(&helper);
    eprintln!("network helper {}: {:?}", helper.pid, helper.argv);
    assert!(
        !helper.has("-c"),
        "RootlessKit configures tap0 itself: {helper:#?}"
    );
    assert_eq!(helper.has("--enable-sandbox"), sandbox, "{helper:#?}");
    assert_eq!(helper.has("--enable-seccomp"), sandbox, "{helper:#?}");
    assert_eq!(
        helper.has("--disable-host-loopback"),
        no_loopback,
        "{helper:#?}"
    );
    assert_eq!(
        helper.has("--api-socket"),
        driver == "slirp4netns",
        "{helper:#?}"
    );

    // Publish at runtime through RootlessKit's API, then fetch 1 MiB.
    let hp = free_port();
    let sock = state.join("api.sock").display().to_string();
    env.run_ok(
        "rootlessctl",
        &[
            "--socket",
            &sock,
            "add-ports",
            &format!("127.0.0.1:{hp}:80/tcp"),
        ],
    );
    let got = env.run_ok(
        &tk,
        &["tcp", &format!("127.0.0.1:{hp}"), &format!("recv:{MIB}:32")],
    );
    let got = got.lines().find(|l| l.starts_with("ok=")).unwrap_or("");
    ok(got);
    let served = rk.expect_line("ok=");
    ok(&served);
    assert_eq!(field(got, "digest"), field(&served, "digest"));

    let st = rk.wait_timeout(CALL).expect("rootlesskit did not exit");
    assert!(st.success(), "rootlesskit: {st}; stderr: {}", rk.stderr());
    let left = wait_gone(&[helper], SETTLE);
    assert!(left.is_empty(), "rlnet outlived rootlesskit: {left:#?}");
}

macro_rules! cases {
    ($($name:ident: $driver:literal, sandbox=$sb:literal, no_loopback=$nl:literal;)*) => {$(
        #[test]
        fn $name() {
            case($driver, $sb, $nl);
        }
    )*};
}

cases! {
    rootlesskit_builtin: "builtin", sandbox=false, no_loopback=false;
    rootlesskit_builtin_no_host_loopback: "builtin", sandbox=false, no_loopback=true;
    rootlesskit_builtin_sandbox_seccomp: "builtin", sandbox=true, no_loopback=false;
    rootlesskit_builtin_sandbox_seccomp_no_host_loopback: "builtin", sandbox=true, no_loopback=true;
    rootlesskit_slirp4netns: "slirp4netns", sandbox=false, no_loopback=false;
    rootlesskit_slirp4netns_no_host_loopback: "slirp4netns", sandbox=false, no_loopback=true;
    rootlesskit_slirp4netns_sandbox_seccomp: "slirp4netns", sandbox=true, no_loopback=false;
    rootlesskit_slirp4netns_sandbox_seccomp_no_host_loopback: "slirp4netns", sandbox=true, no_loopback=true;
}

/// RootlessKit's `--ipv6` passes `--enable-ipv6` and leaves IPv6 on tap0 to
/// SLAAC: rlnet answers router solicitations with a router advertisement
/// for fd00::/64 (address and default route via fe80::2), as slirp4netns.
#[test]
fn rootlesskit_ipv6_slaac() {
    let Some(user) = setup(&["rootlesskit", "ip", "nsenter"]) else {
        return;
    };
    let _serial = serial();
    let env = Env::new(&user);
    let tk = testkit_bin().display().to_string();
    let (srv, port) = env.serve(&["serve-tcp", "[::1]:0", "source:64k:33"]);
    // Wait (bounded) for SLAAC, then fetch from the host's ::1 via fd00::2.
    let script = format!(
        "i=0; until ip -6 addr show tap0 | grep -q 'inet6 fd00:'; do i=$((i+1)); \
         [ $i -gt 600 ] && break; sleep 0.1; done; ip -6 route; \
         exec {tk} tcp [fd00::2]:{port} recv:64k:33"
    );
    let mut cmd = env.cmd("rootlesskit");
    cmd.arg("--net=slirp4netns")
        .arg(format!("--slirp4netns-binary={}", rlnet_bin().display()))
        .arg("--ipv6")
        .arg(format!("--state-dir={}", env.dir.join("st").display()))
        .args(["--", "sh", "-c", &script]);
    let out = env.run_cmd(cmd, CALL);
    assert!(out.status.success(), "{}", out.all());
    ok(out
        .stdout
        .lines()
        .find(|l| l.starts_with("ok="))
        .unwrap_or(""));
    ok(&srv.expect_line("ok="));
}
