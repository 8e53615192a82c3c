//! slirp4netns's own test scripts (tests/test-slirp4netns-*.sh of its
//! source, v1.3.2) run against rlnet as their `slirp4netns` (issue 13
//! acceptance 3): every one must exit 0. A script that skips itself (exit
//! 77) or cannot run here fails the test with one line saying why.
//!
//! - The scripts are not part of rlnet: tests/prepare-machine.sh downloads
//!   them to [`DEFAULT_DIR`] (or point `RLNET_SLIRP4NETNS_TESTS` at a
//!   directory holding them); each file is checked against [`SCRIPTS`]'
//!   SHA-256, so what runs is upstream's text, unchanged.
//! - `slirp4netns` on their PATH is a symlink to rlnet, `udhcpc` one to
//!   busybox (the DHCP script skips itself without it).
//! - They start with stdio only: the exit-fd script passes its pipe as an
//!   argument (`10<(...)` is a word, not a redirection) and so relies on
//!   fd 10 not being open (POLLNVAL ends slirp4netns at once); an fd 10
//!   inherited from the shell that ran `cargo test` (/dev/null, say) makes
//!   slirp4netns 1.2.0 itself fail it, as it does rlnet.
//! - They run as an unprivileged user (`nobody` when the tests run as root)
//!   in a network namespace of their own with only `lo` (plus 198.18.0.1,
//!   the "first address" the outbound-addr script picks) and blackhole
//!   default routes: everything they reach is on that loopback or in the
//!   namespaces they create themselves (10.0.2.2 is the loopback as seen
//!   from those). What each script sends, checked by reading them: api-socket,
//!   cidr, configure, exit-fd, macaddress, nspath, ready-fd, sandbox,
//!   sandbox-no-unmount and seccomp nothing beyond netlink and the API
//!   socket; dhcp a DHCP exchange with rlnet; disable-dns and
//!   disable-host-loopback ping 10.0.2.2 and a TCP connect to 10.0.2.3 or
//!   10.0.2.2 that must fail; outbound-addr a TCP connection to 10.0.2.2,
//!   i.e. the namespace's own loopback, from 127.0.0.1 and 198.18.0.1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Where tests/prepare-machine.sh puts the scripts.
const DEFAULT_DIR: &str = "/var/lib/rlnet-ci/slirp4netns-v1.3.2/tests";

/// Every file the scripts need, with its SHA-256 at slirp4netns v1.3.2.
const SCRIPTS: [(&str, &str); 15] = [
    (
        "common.sh",
        "756149863c2397c09fabbc0a3234858ad4a5b2fd1480fb4646c8fa9d294c001a",
    ),
    (
        "test-slirp4netns-api-socket.sh",
        "075f43c98d9a848ab5966d515174b3c996deec8c290873d92e200dc6ceae1500",
    ),
    (
        "test-slirp4netns-cidr.sh",
        "9b99bf6e746167db8f46e52834117234b99aed0d9d6dce26e05ea692e3860d2f",
    ),
    (
        "test-slirp4netns-configure.sh",
        "cf0b659161ec1035b2d95f417dcabc6d475b07f21149673bb6a27bf9555ed3fd",
    ),
    (
        "test-slirp4netns-dhcp.sh",
        "609abef9aca72adc4be01ea94552c004d743c50e10e2efb8b4c6c4051c8f33ec",
    ),
    (
        "test-slirp4netns-disable-dns.sh",
        "0b8c047df6b40112bc30a5d683fd1cbb8fc062a5b57db78a744715c9404eef7e",
    ),
    (
        "test-slirp4netns-disable-host-loopback.sh",
        "7b3036212d656847e6cd0700bd2275762c2bce940e4ea2f3cb637e763adcadfc",
    ),
    (
        "test-slirp4netns-exit-fd.sh",
        "6eeb31dd37dd1e758d001b5047bc0f9f0697f89fecc8ee9ca4df966f31dd4dee",
    ),
    (
        "test-slirp4netns-macaddress.sh",
        "94e0b99d189936db67c6aacf0d605ebf4fc03bf72e6a609fcf2e68780067e322",
    ),
    (
        "test-slirp4netns-nspath.sh",
        "bb8b097eaada66b92f6b063c249276ae5cb4b276f24aae80407ffa91dd0d4761",
    ),
    (
        "test-slirp4netns-outbound-addr.sh",
        "7ed964ccfa844bb6b1ce460ad9d3fbd565a3d3d05d0a5e0e37619025bb5014c0",
    ),
    (
        "test-slirp4netns-ready-fd.sh",
        "ad6ed7cb6f60689ece42fd8f50455b50217bcd7d97ab84989baa4810744cfaba",
    ),
    (
        "test-slirp4netns-sandbox-no-unmount.sh",
        "b4f5b8939047f82ac95b8e22edd3b54c0dc0ec9ed567e0048f13ef5d4454d194",
    ),
    (
        "test-slirp4netns-sandbox.sh",
        "6cff8698717013c6efd701c646ca8f68dce154b4bf85a3fd3a1724e2a7788f7a",
    ),
    (
        "test-slirp4netns-seccomp.sh",
        "9a48b902590eedd106fc5eca31a0e94a499a871118880d5f06193b653bb4543f",
    ),
];

/// Seconds one script may take (the slowest waits out a 10 s connect).
const SCRIPT_TIMEOUT: &str = "240";
/// The scripts' "skipped" exit status (automake's).
const SKIP: i32 = 77;

/// The scripts' directory; panics with one line when they are missing or
/// not upstream's.
fn scripts_dir() -> PathBuf {
    let dir = std::env::var_os("RLNET_SLIRP4NETNS_TESTS")
        .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    for (name, want) in SCRIPTS {
        let path = dir.join(name);
        let out = Command::new("sha256sum").arg(&path).output();
        let got = out
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                panic!(
                    "slirp4netns's test scripts are not in {}: run tests/prepare-machine.sh as root \
                     (it downloads them) or set RLNET_SLIRP4NETNS_TESTS to their directory",
                    dir.display()
                )
            });
        assert_eq!(
            got,
            want,
            "{} is not slirp4netns v1.3.2's (SHA-256 {got}); run tests/prepare-machine.sh again",
            path.display()
        );
    }
    dir
}

/// A directory holding `slirp4netns` (rlnet) and `udhcpc` (busybox).
fn bin_dir(scratch: &TempDir) -> PathBuf {
    let bin = scratch.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(rlnet_bin(), bin.join("slirp4netns")).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is not installed (tests/prepare-machine.sh installs busybox-static)");
    std::os::unix::fs::symlink(busybox, bin.join("udhcpc")).unwrap();
    bin
}

/// Where the scripts run: a network namespace with only `lo`, held open by
/// a process. As root, a namespace of the host's user namespace, so the
/// scripts run as `nobody` exactly as an unprivileged user would; otherwise
/// an [`Outer`] (they are then root of its user namespace).
enum Net {
    Root(Proc),
    User(Outer),
}

impl Net {
    fn new() -> Net {
        if !is_root() {
            return Net::User(Outer::new());
        }
        let mut c = Command::new("unshare");
        c.args(["-n", "--", "sh", "-c"]).arg(format!(
            "set -e; ip link set lo up; ip addr add {OUTSIDE4}/32 dev lo; \
             ip route add blackhole default; ip -6 route add blackhole default; \
             echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range; \
             echo ready; exec sleep 3600"
        ));
        let p = Proc::spawn(c);
        p.expect_line("ready");
        Net::Root(p)
    }

    /// `prog` in the namespace, as the scripts' user.
    fn cmd(&self, prog: &str) -> Command {
        match self {
            Net::Root(holder) => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &holder.pid().to_string(), "-n", "--", "setpriv"]);
                c.args([
                    format!("--reuid={NOBODY}"),
                    format!("--regid={NOBODY}"),
                    "--clear-groups".into(),
                    "--".into(),
                ]);
                c.arg(prog);
                c
            }
            Net::User(outer) => outer.cmd(prog),
        }
    }
}

/// Run one script; None when it passed, else one line saying how it ended.
fn run_script(net: &Net, dir: &Path, name: &str) -> Option<String> {
    let scratch = TempDir::new("s4n-script");
    let bin = bin_dir(&scratch);
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    );
    let mut c = net.cmd("env");
    c.arg(format!("PATH={path}"));
    c.arg(format!("HOME={}", scratch.0.display()));
    c.args(["timeout", "-k", "10", SCRIPT_TIMEOUT, "bash"]);
    c.arg(dir.join(name));
    c.current_dir(&scratch.0);
    no_inherited_fds(&mut c);
    // Output goes to files: a process the script leaves behind would hold
    // pipes open and a read to EOF would never end.
    let (out_path, err_path) = (scratch.0.join("stdout"), scratch.0.join("stderr"));
    let file = |p: &Path| std::fs::File::create(p).expect("script output file");
    c.stdin(std::process::Stdio::null())
        .stdout(file(&out_path))
        .stderr(file(&err_path));
    let mut child = c.spawn().expect("spawn the script");
    // nsenter, setpriv and env exec: `timeout` keeps this pid and leads
    // the process group the script and everything it starts run in.
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let st = child.wait().expect("wait for the script");
    // A script that fails before it sets its cleanup trap leaves its
    // slirp4netns and namespace holder running: they are in that group.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let (out, err) = (read(&out_path), read(&err_path));
    let last = |text: &str| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    };
    eprintln!("==== {name}: {st}\n{out}\n{err}");
    match st.code() {
        Some(0) => None,
        Some(SKIP) => Some(format!("{name}: skipped itself: {}", last(&out))),
        Some(124 | 137) => Some(format!("{name}: did not end within {SCRIPT_TIMEOUT} s")),
        _ => Some(format!("{name}: {st}: {}", last(&err))),
    }
}

#[test]
fn upstream_slirp4netns_scripts_pass() {
    require_userns!();
    let dir = scripts_dir();
    let net = Net::new();
    let failed: Vec<String> = SCRIPTS
        .iter()
        .map(|(name, _)| *name)
        .filter(|n| n.starts_with("test-slirp4netns-"))
        .filter_map(|n| run_script(&net, &dir, n))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} upstream scripts failed:\n{}",
        failed.len(),
        SCRIPTS.len() - 1,
        failed.join("\n")
    );
}
