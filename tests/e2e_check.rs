//! `rlnet check` end to end: on this host (which the other e2e tests need to
//! work, so it passes here), as an unprivileged user and as root, and where
//! it must fail: no TUN device, a TUN device the user may not open, no user
//! namespaces left. Everything that changes the host's view happens in a
//! private mount or user namespace of the test's own.

mod common;

use std::process::Command;

use common::*;

const LEVELS: [&str; 4] = ["ok   ", "note ", "warn ", "FAIL "];

/// Every line is one finding: a level, a topic, the text.
fn well_formed(out: &str) {
    assert!(out.lines().count() >= 6, "{out}");
    for line in out.lines() {
        assert!(
            LEVELS.iter().any(|l| line.starts_with(l)) && line.contains(": "),
            "not a finding: {line:?}"
        );
    }
}

fn has(out: &str, start: &str) {
    assert!(
        out.lines().any(|l| l.starts_with(start)),
        "no line starting {start:?} in:\n{out}"
    );
}

#[test]
fn check_passes_as_an_unprivileged_user() {
    require_userns!();
    let mut c = base_cmd(rlnet_bin());
    c.arg("check");
    let (st, out, err) = run(c);
    assert_eq!(st.code(), Some(0), "{out}{err}");
    well_formed(&out);
    has(&out, "ok   user namespaces: ");
    has(&out, "ok   /dev/net/tun: readable and writable");
    assert!(!out.contains("FAIL"), "{out}");
    if is_root() {
        // base_cmd ran it as nobody: no root note.
        assert!(!out.contains("running as root"), "{out}");
    }
}

#[test]
fn check_as_root() {
    require_userns!();
    if !is_root() {
        eprintln!("check_as_root: runs as root only (the test acts as root)");
        return;
    }
    let mut c = Command::new(rlnet_bin());
    c.arg("check");
    let (st, out, err) = run(c);
    assert_eq!(st.code(), Some(0), "{out}{err}");
    well_formed(&out);
    has(&out, "note user: running as root");
    has(&out, "ok   user namespaces: ");
    has(&out, "ok   published ports: root may publish any host port");
}

/// In a private mount namespace, /dev/null over /dev/net/tun: opens fine,
/// but is no TUN device.
#[test]
fn check_fails_when_dev_net_tun_is_not_the_device() {
    require_userns!();
    let script = format!(
        "mount --bind /dev/null /dev/net/tun && exec {} check",
        rlnet_bin().display()
    );
    let mut c = base_cmd("unshare");
    c.args(["-Urm", "--propagation", "private", "sh", "-c", &script]);
    let (st, out, err) = run(c);
    assert_eq!(st.code(), Some(1), "{out}{err}");
    well_formed(&out);
    has(&out, "FAIL /dev/net/tun: is not the TUN/TAP device");
    assert!(out.contains("fix: as root, recreate it"), "{out}");
}

/// The real device, mode 0600 (a fresh node in a private mount namespace,
/// so the host's stays as it is): the user may not open it. Making a device
/// node needs root.
#[test]
fn check_fails_when_dev_net_tun_is_not_open_to_the_user() {
    require_userns!();
    if !is_root() {
        eprintln!("check_fails_when_dev_net_tun_is_not_open_to_the_user: runs as root only");
        return;
    }
    let dir = TempDir::new("check-tun");
    let script = format!(
        "mount -t tmpfs -o mode=0755 none {d} && mknod -m 0600 {d}/tun c 10 200 \
         && mount --bind {d}/tun /dev/net/tun \
         && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- {} check",
        rlnet_bin().display(),
        d = dir.0.display()
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let (st, out, err) = run(c);
    assert_eq!(st.code(), Some(1), "{out}{err}");
    well_formed(&out);
    has(
        &out,
        "FAIL /dev/net/tun: not readable and writable by uid 65534 (mode 0600): Permission denied",
    );
    assert!(
        out.contains("fix: as root, chmod 0666 /dev/net/tun"),
        "{out}"
    );
}

/// In a user namespace that allows no more user namespaces below it.
#[test]
fn check_fails_without_user_namespaces() {
    require_userns!();
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec {} check",
        rlnet_bin().display()
    );
    let mut c = base_cmd("unshare");
    c.args(["-Ur", "sh", "-c", &script]);
    let (st, out, err) = run(c);
    assert_eq!(st.code(), Some(1), "{out}{err}");
    well_formed(&out);
    has(
        &out,
        "FAIL user namespaces: no more user namespaces may be created (user.max_user_namespaces is 0",
    );
    assert!(
        out.contains("fix: as root, sysctl -w user.max_user_namespaces="),
        "{out}"
    );
    // No namespace, so no TAP was tried: said so.
    assert!(
        out.contains("whether a TAP can be created was not checked"),
        "{out}"
    );
}
