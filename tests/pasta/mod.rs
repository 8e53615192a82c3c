//! Harness for the pasta compatibility tests (issue 12, acceptance 1 and 2): rootless
//! Podman 5.4 and RootlessKit 2.0.2 from a Debian 13 root (`tests/pasta/make-root.sh`)
//! running "the pasta under test".
//!
//! - The pasta under test is `RLNET_PASTA_UNDER_TEST` (a path on this machine, e.g.
//!   `$RLNET_TRIXIE_ROOT/usr/bin/pasta` for the real one, the oracle) or, by default, rlnet's
//!   own binary. Podman finds it as `pasta` in a private `helper_binaries_dir`: a symlink
//!   named `pasta` (or, with `RLNET_PASTA_TRACE=FILE`, a bash wrapper that records the
//!   argv, descriptors and environment the caller gives it into FILE, then execs it).
//! - Each test gets a [`Lab`]: an "internet" network namespace (192.0.2.1/24,
//!   2001:db8:1::1/64 on eth0, no other route) joined by a veth pair to a "host" network
//!   namespace (192.0.2.2/24 via 192.0.2.1, 2001:db8:1::2/64 via 2001:db8:1::1, eth0) with a
//!   private mount namespace pivoted into the Debian 13 root. Podman and RootlessKit run
//!   there as the unprivileged user `rlnet-ci`; their /etc/resolv.conf names 127.0.0.1, where
//!   a test may start a DNS server in the host namespace. Traffic never leaves these
//!   namespaces.
//! - Dropping the lab removes the containers and the storage (from inside the user
//!   namespace), then kills by PID what is left of the lab (every process in its host
//!   namespace or Podman's user namespace), the namespace holders, and its directory.
//! - Every call is bounded; readiness comes from output lines (`listening port=`), never
//!   from a sleep.
#![allow(dead_code)]

use std::cell::Cell;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::{Proc, field, is_root, rlnet_bin, testkit_bin, userns_available};
use crate::compat::{CI_USER, Out, PInfo, User, alive, proc_info, procs};

/// Upper bound for one call of podman/rootlesskit (Podman waits forever for a pasta
/// that never exits or keeps its output pipe open).
pub const CALL: Duration = Duration::from_secs(120);
/// Upper bound for a condition to become true (a process to go away, a port to answer).
pub const SETTLE: Duration = Duration::from_secs(60);
pub const MIB: u64 = 1 << 20;

pub const INET4: &str = "192.0.2.1";
pub const HOST4: &str = "192.0.2.2";
pub const INET6: &str = "2001:db8:1::1";
pub const HOST6: &str = "2001:db8:1::2";
/// The host's default-route interface (pasta copies its name).
pub const HOST_IF: &str = "eth0";

/// Where make-root.sh puts the root unless `RLNET_TRIXIE_ROOT` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/rlnet-ci/trixie-root";
/// make-root.sh writes it last: a root without it is incomplete.
const STAMP: &str = ".rlnet-ci-root";
/// Inside the root: busybox-static and glibc, imported as [`IMAGE`].
const IMAGE_TAR: &str = "/opt/rlnet-ci/image.tar";
pub const IMAGE: &str = "localhost/rlnet-pasta";
/// Inside the root: the build directory (target/debug), read-only.
const IN_BUILD: &str = "/run/rlnet-build";
/// Inside the root: the directory of the pasta under test, read-only.
const IN_PASTA: &str = "/run/rlnet-pasta";
/// Where containers find the test helper (bound from the build directory).
pub const TESTKIT: &str = "/testkit";
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NOBODY: u32 = 65534;

/// One test at a time per test binary: the callers are heavy and this machine has two
/// cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn trixie_root() -> PathBuf {
    std::env::var_os("RLNET_TRIXIE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// The directory cargo built rlnet and the examples in (target/debug).
fn build_dir() -> PathBuf {
    let bin = rlnet_bin();
    let dir = bin.parent().expect("rlnet binary has a directory");
    dir.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// (device, inode) of a file, following symlinks.
fn file_id(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// The pasta the tests exercise.
#[derive(Clone, Debug)]
pub struct PastaUnderTest {
    /// Canonical path on this machine.
    pub path: PathBuf,
    /// The same file as the lab's root sees it.
    pub inside: PathBuf,
    /// The executable and its `.avx2` sibling, which pasta re-executes on CPUs that have
    /// AVX2: a helper process "is" the pasta under test when /proc/PID/exe is one of them.
    ids: Vec<(u64, u64)>,
    /// Is it rlnet (checks that only rlnet promises are made only for it)?
    pub is_rlnet: bool,
}

impl PastaUnderTest {
    fn find() -> Result<PastaUnderTest, String> {
        let given = std::env::var_os("RLNET_PASTA_UNDER_TEST").map(PathBuf::from);
        let p = given.clone().unwrap_or_else(rlnet_bin);
        let path = p.canonicalize().map_err(|e| match &given {
            Some(_) => format!(
                "RLNET_PASTA_UNDER_TEST={}: {e} (give the path of a pasta executable, e.g. \
                 {}/usr/bin/pasta for Debian 13's)",
                p.display(),
                trixie_root().display()
            ),
            None => format!("{}: {e} (build rlnet first)", p.display()),
        })?;
        let m = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !m.is_file() || m.permissions().mode() & 0o005 != 0o005 {
            return Err(format!(
                "{} is not an executable file that {CI_USER} can run (mode {:o})",
                path.display(),
                m.permissions().mode()
            ));
        }
        let name = path.file_name().expect("canonical path has a name");
        let inside = Path::new(IN_PASTA).join(name);
        let mut ids = vec![(m.dev(), m.ino())];
        let mut avx2 = path.clone().into_os_string();
        avx2.push(".avx2");
        ids.extend(file_id(Path::new(&avx2)));
        let is_rlnet = file_id(&rlnet_bin()).is_some_and(|id| ids.contains(&id));
        Ok(PastaUnderTest {
            path,
            inside,
            ids,
            is_rlnet,
        })
    }

    /// Is process `pid` running the pasta under test?
    pub fn runs_in(&self, pid: u32) -> bool {
        file_id(Path::new(&format!("/proc/{pid}/exe"))).is_some_and(|id| self.ids.contains(&id))
    }
}

/// What the tests need, checked once per test.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub user: User,
    pub root: PathBuf,
    pub pasta: PastaUnderTest,
}

/// Can the pasta compatibility tests run here? As root (CI) or with
/// `RLNET_REQUIRE_COMPAT=1`, anything missing fails the test; otherwise it is skipped
/// with a message (the tests need root: veth pairs, pivot_root).
pub fn setup() -> Option<Ctx> {
    if !userns_available() {
        return None;
    }
    let required = is_root() || std::env::var("RLNET_REQUIRE_COMPAT").is_ok_and(|v| v == "1");
    match check() {
        Ok(c) => {
            eprintln!(
                "pasta under test: {}{}",
                c.pasta.path.display(),
                if c.pasta.is_rlnet { " (rlnet)" } else { "" }
            );
            Some(c)
        }
        Err(why) if required => panic!("pasta compatibility test prerequisites missing: {why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn has_subids(file: &str, u: &User) -> bool {
    std::fs::read_to_string(file).is_ok_and(|s| {
        s.lines().any(|l| {
            let first = l.split(':').next().unwrap_or("");
            first == u.name || first == u.uid.to_string()
        })
    })
}

fn check() -> Result<Ctx, String> {
    if !is_root() {
        return Err(
            "these tests run as root: they join network namespaces with a veth pair \
                    and pivot_root into the Debian 13 root"
                .into(),
        );
    }
    let root = trixie_root();
    if !root.join(STAMP).is_file() {
        return Err(format!(
            "no complete Debian 13 root at {} (run `bash tests/pasta/make-root.sh` as root, \
             as .ci/run does; RLNET_TRIXIE_ROOT moves it)",
            root.display()
        ));
    }
    for f in [
        "usr/bin/podman",
        "usr/bin/pasta",
        "usr/bin/rootlesskit",
        "usr/sbin/runc",
        "usr/bin/conmon",
        "usr/bin/newuidmap",
        "usr/lib/podman/netavark",
        "usr/lib/podman/aardvark-dns",
        "usr/sbin/nft",
        "usr/bin/setpriv",
        &IMAGE_TAR[1..],
    ] {
        if !root.join(f).exists() {
            return Err(format!(
                "{} lacks /{f}: remove it and run tests/pasta/make-root.sh again",
                root.display()
            ));
        }
    }
    let name = std::env::var("RLNET_COMPAT_USER").unwrap_or_else(|_| CI_USER.to_string());
    let u = nix::unistd::User::from_name(&name)
        .ok()
        .flatten()
        .ok_or_else(|| format!("user {name} does not exist (.ci/run creates {CI_USER})"))?;
    let user = User {
        name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    };
    for f in ["/etc/subuid", "/etc/subgid"] {
        if !has_subids(f, &user) {
            return Err(format!("{} has no range in {f}", user.name));
        }
    }
    for tool in ["unshare", "nsenter", "setpriv", "ip", "mount", "pivot_root"] {
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|d| Path::new(d).join(tool).is_file());
        if !found {
            return Err(format!("{tool} is not installed (util-linux, iproute2)"));
        }
    }
    let build = build_dir();
    let tk = testkit_bin();
    if !tk.starts_with(&build) || !tk.is_file() {
        return Err(format!("{} is missing (cargo builds it)", tk.display()));
    }
    for p in [build.clone(), build.join("examples"), tk.clone()] {
        let mode = std::fs::metadata(&p)
            .map_err(|e| format!("{}: {e}", p.display()))?
            .permissions()
            .mode();
        if mode & 0o005 != 0o005 {
            return Err(format!(
                "{} (mode {mode:o}) is not readable and executable for {}: the lab binds the \
                 build directory into the root for it",
                p.display(),
                user.name
            ));
        }
    }
    let pasta = PastaUnderTest::find()?;
    Ok(Ctx { user, root, pasta })
}

/// Run `cmd` to completion within `limit` in a new process group; on timeout the group
/// is killed and the test fails.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Out {
    cmd.process_group(0);
    let desc = format!("{cmd:?}");
    let mut p = Proc::spawn(cmd);
    match p.wait_timeout(limit) {
        Some(status) => {
            p.drain();
            Out {
                status,
                stdout: p.stdout().join("\n"),
                stderr: p.stderr(),
            }
        }
        None => {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(p.pid().cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = p.wait_timeout(Duration::from_secs(10));
            p.drain();
            panic!(
                "timed out after {limit:?}: {desc}\nstdout: {}\nstderr: {}",
                p.stdout().join("\n"),
                p.stderr()
            );
        }
    }
}

/// Require exit status 0; returns stdout.
pub fn ok_out(what: &str, o: Out) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        o.stdout,
        o.stderr
    );
    o.stdout
}

/// The `ok=` line of a testkit client's output, which must say `ok=1`.
pub fn ok_line(out: &str) -> String {
    let l = out
        .lines()
        .find(|l| l.starts_with("ok="))
        .unwrap_or_else(|| panic!("no result line in: {out}"))
        .to_string();
    assert_eq!(field(&l, "ok"), Some("1"), "{l}");
    l
}

/// A namespace holder prints `ready` once set up, then sleeps until killed.
fn holder(mut cmd: Command, what: &str) -> Proc {
    let p = Proc::spawn({
        cmd.process_group(0);
        cmd
    });
    let l = p.line(SETTLE);
    assert_eq!(l, "ready", "{what}: {}", p.stderr());
    p
}

/// Mounts for the host namespace, then pivot_root into the Debian 13 root. Runs as root
/// in a fresh mount namespace (propagation private), with this machine's tools.
/// Arguments: ROOT LABDIR BUILDDIR PASTADIR.
const PIVOT: &str = r#"set -e
R=$1 D=$2 B=$3 P=$4
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
mount --bind /tmp "$R/tmp"
mount --bind "$D/vartmp" "$R/var/tmp"
mount --bind -o ro "$B" "$R/run/rlnet-build"
mount --bind -o ro "$P" "$R/run/rlnet-pasta"
for f in passwd group subuid subgid; do mount --bind -o ro "/etc/$f" "$R/etc/$f"; done
mount --bind -o ro "$D/resolv.conf" "$R/etc/resolv.conf"
cd "$R"
pivot_root . .
umount -l .
cd /
mount --make-rshared /
echo ready
exec sleep 7200
"#;

/// One test's world: namespaces, the pivoted root, Podman's private configuration.
pub struct Lab {
    pub user: User,
    pub root: PathBuf,
    pub pasta: PastaUnderTest,
    /// /tmp/rlp.XXXXXX, the same path inside the root.
    pub dir: PathBuf,
    /// XDG_RUNTIME_DIR.
    pub run: PathBuf,
    pub home: PathBuf,
    /// Container storage (vfs).
    pub storage: PathBuf,
    /// helper_binaries_dir: holds `pasta`.
    pub bin: PathBuf,
    /// The `pasta` Podman runs (in `bin`).
    pub helper: PathBuf,
    inet: Option<Proc>,
    host: Option<Proc>,
    host_netns: String,
    trace: Option<PathBuf>,
    podman_used: Cell<bool>,
}

impl Lab {
    pub fn new(ctx: &Ctx) -> Lab {
        let dir = nix::unistd::mkdtemp("/tmp/rlp.XXXXXX").expect("mkdtemp");
        let mut lab = Lab {
            user: ctx.user.clone(),
            root: ctx.root.clone(),
            pasta: ctx.pasta.clone(),
            run: dir.join("r"),
            home: dir.join("h"),
            storage: dir.join("s"),
            bin: dir.join("bin"),
            helper: dir.join("bin/pasta"),
            dir,
            inet: None,
            host: None,
            host_netns: String::new(),
            trace: std::env::var_os("RLNET_PASTA_TRACE").map(PathBuf::from),
            podman_used: Cell::new(false),
        };
        lab.write_files();

        // The "internet": only its own addresses, no default route.
        let mut c = Command::new("unshare");
        c.args(["--net", "--", "sh", "-c", "echo ready; exec sleep 7200"]);
        lab.inet = Some(holder(c, "internet namespace"));

        let pasta_dir = lab.pasta.path.parent().expect("pasta has a directory");
        let mut c = Command::new("unshare");
        c.args(["--net", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", PIVOT, "pivot"])
            .arg(&lab.root)
            .arg(&lab.dir)
            .arg(build_dir())
            .arg(pasta_dir);
        lab.host = Some(holder(c, "host namespace in the Debian 13 root"));
        lab.host_netns = netns_of(lab.host_pid()).expect("host holder's netns");

        // eth0 <-> eth0, then addresses. DAD off so that addresses work at once.
        let veth = format!(
            "ip link add eth0 type veth peer name eth0 netns {}",
            lab.host_pid()
        );
        ok_out("veth", run_bounded(lab.inet_root_sh(&veth), CALL));
        let common = "set -e; ip link set lo up; echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad; \
                      echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range; ";
        let inet = format!(
            "{common} ip addr add {INET4}/24 dev eth0; ip -6 addr add {INET6}/64 dev eth0 nodad; \
             ip link set eth0 up"
        );
        ok_out(
            "internet addresses",
            run_bounded(lab.inet_root_sh(&inet), CALL),
        );
        // ping_group_range as distributions set it (systemd's sysctl defaults): pasta
        // answers echo requests through ping sockets.
        let host = format!(
            "{common} ip addr add {HOST4}/24 dev eth0; ip -6 addr add {HOST6}/64 dev eth0 nodad; \
             ip link set eth0 up; ip route add default via {INET4}; \
             ip -6 route add default via {INET6}"
        );
        ok_out("host addresses", run_bounded(lab.host_root_sh(&host), CALL));
        lab
    }

    fn write_files(&self) {
        let conf = self.home.join(".config/containers");
        for (d, mode) in [
            (&self.dir, 0o700),
            (&self.run, 0o700),
            (&self.home, 0o755),
            (&self.home.join(".config"), 0o755),
            (&conf, 0o755),
            (&self.storage, 0o700),
            (&self.bin, 0o755),
            (&self.dir.join("tmp"), 0o700),
            (&self.dir.join("vartmp"), 0o1777),
        ] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
            self.give(d);
        }
        // Podman's API socket lives below the runtime dir: unix paths are short.
        let sock = self
            .run
            .join("libpod/tmp")
            .join(format!("{}.net", "0".repeat(64)));
        assert!(
            sock.as_os_str().len() < 108,
            "runtime dir too long: {}",
            sock.display()
        );

        // Podman's user configuration: the helper directory first (then Podman's own
        // defaults, where netavark and aardvark-dns live). runc: crun refuses this
        // machine's hybrid cgroup layout (and the root has no crun); no systemd: cgroupfs.
        // Everything else is Podman's default (Debian 13's /usr/share/containers).
        let helpers = [
            self.bin.display().to_string(),
            "/usr/local/libexec/podman".into(),
            "/usr/local/lib/podman".into(),
            "/usr/libexec/podman".into(),
            "/usr/lib/podman".into(),
        ]
        .map(|d| format!("{d:?}"))
        .join(", ");
        self.write(
            &conf.join("containers.conf"),
            &format!(
                "[engine]\nhelper_binaries_dir = [{helpers}]\nruntime = \"runc\"\n\
                 cgroup_manager = \"cgroupfs\"\n"
            ),
            0o644,
        );
        self.write(
            &conf.join("storage.conf"),
            &format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}/storage\"\ngraphroot = \"{}\"\n",
                self.run.display(),
                self.storage.display()
            ),
            0o644,
        );
        // The host's resolver is on its own loopback (see [`Lab::serve_dns`]).
        self.write(
            &self.dir.join("resolv.conf"),
            "nameserver 127.0.0.1\n",
            0o644,
        );

        match &self.trace {
            None => std::os::unix::fs::symlink(&self.pasta.inside, &self.helper).unwrap(),
            Some(_) => {
                let log = self.dir.join("pasta-trace");
                let script = format!(
                    r#"#!/bin/bash
# Records how the caller runs pasta, then runs the pasta under test (same argv[0]).
L={log}
ls -l /proc/$$/fd/ > "$L.fds.$$" 2>&1
{{
  echo "=== pid=$$ caller=$(cat /proc/$PPID/comm) uid=$(id -u) uid_map=$(tr -s ' ' < /proc/$$/uid_map | tr '\n' ';') cwd=$PWD"
  printf 'argv:'; printf ' %q' "$@"; echo
  echo "fds (255: bash reading this script):"; sed -n 's/.* \([0-9]*\) -> /  \1 -> /p' "$L.fds.$$"
  echo "env (bash adds PWD, SHLVL):"; env | sort | grep -v '^_=' | sed 's/^/  /'
}} >> "$L.log" 2>&1
rm -f "$L.fds.$$"
exec -a "$0" {inside} "$@"
"#,
                    log = log.display(),
                    inside = self.pasta.inside.display()
                );
                self.write(&self.helper, &script, 0o755);
            }
        }
        std::os::unix::fs::lchown(&self.helper, Some(self.user.uid), Some(self.user.gid)).unwrap();
    }

    fn give(&self, p: &Path) {
        std::os::unix::fs::lchown(p, Some(self.user.uid), Some(self.user.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
    }

    fn write(&self, p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        self.give(p);
    }

    pub fn host_pid(&self) -> u32 {
        self.host.as_ref().expect("host holder").pid()
    }

    pub fn inet_pid(&self) -> u32 {
        self.inet.as_ref().expect("internet holder").pid()
    }

    fn nsenter(pid: u32, root: bool) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(pid.to_string()).arg("-n");
        if root {
            c.args(["-m", "-r", "-w"]);
        }
        c.arg("--").current_dir("/");
        c
    }

    fn inet_root_sh(&self, script: &str) -> Command {
        let mut c = Lab::nsenter(self.inet_pid(), false);
        c.args(["sh", "-c", script]);
        c
    }

    fn host_root_sh(&self, script: &str) -> Command {
        let mut c = Lab::nsenter(self.host_pid(), false);
        c.args(["sh", "-c", script]);
        c
    }

    /// `prog` as the user inside the Debian 13 root, in the host namespace, with a clean
    /// environment: how Podman and RootlessKit are run.
    pub fn user_cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Lab::nsenter(self.host_pid(), true);
        c.arg("setpriv")
            .arg(format!("--reuid={}", self.user.uid))
            .arg(format!("--regid={}", self.user.gid))
            .args(["--clear-groups", "--"])
            .arg(prog);
        c.env_clear()
            .env("PATH", ROOT_PATH)
            .env("HOME", &self.home)
            .env("USER", &self.user.name)
            .env("LOGNAME", &self.user.name)
            .env("LANG", "C")
            .env("TMPDIR", self.dir.join("tmp"))
            .env("XDG_RUNTIME_DIR", &self.run)
            // This machine has the hybrid cgroup layout; Podman 5 warns on every call.
            .env("PODMAN_IGNORE_CGROUPSV1_WARNING", "1");
        c
    }

    fn nobody(mut c: Command, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        c.arg("setpriv")
            .arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .args(["--clear-groups", "--"])
            .arg(prog);
        c
    }

    /// testkit as nobody in the host namespace (this machine's filesystem).
    pub fn host_testkit(&self, args: &[&str]) -> Command {
        let mut c = Lab::nobody(Lab::nsenter(self.host_pid(), false), testkit_bin());
        c.args(args);
        c
    }

    /// testkit as nobody in the internet namespace.
    pub fn inet_testkit(&self, args: &[&str]) -> Command {
        let mut c = Lab::nobody(Lab::nsenter(self.inet_pid(), false), testkit_bin());
        c.args(args);
        c
    }

    /// A testkit server; returns it and its port once it listens.
    pub fn serve(cmd: Command) -> (Proc, u16) {
        let p = Proc::spawn(cmd);
        let l = p.expect_line("listening");
        let port = field(&l, "port")
            .and_then(|p| p.parse().ok())
            .expect("port");
        (p, port)
    }

    pub fn serve_inet(&self, args: &[&str]) -> (Proc, u16) {
        Lab::serve(self.inet_testkit(args))
    }

    pub fn serve_host(&self, args: &[&str]) -> (Proc, u16) {
        Lab::serve(self.host_testkit(args))
    }

    /// The host's resolver: testkit's fake DNS server on 127.0.0.1:53 (UDP and TCP) in
    /// the host namespace, as root there (port 53).
    pub fn serve_dns(&self, tag: &str) -> Proc {
        let mut c = Lab::nsenter(self.host_pid(), false);
        c.arg(testkit_bin()).args([
            "serve-dns",
            "127.0.0.1:53",
            "--tag",
            tag,
            "--timeout",
            "600",
        ]);
        Lab::serve(c).0
    }

    /// A testkit client in the host namespace, bounded; must succeed. Returns its `ok=` line.
    pub fn host_client(&self, args: &[&str]) -> String {
        ok_line(&ok_out(
            &format!("host: testkit {args:?}"),
            run_bounded(self.host_testkit(args), CALL),
        ))
    }

    pub fn inet_client(&self, args: &[&str]) -> String {
        ok_line(&ok_out(
            &format!("internet: testkit {args:?}"),
            run_bounded(self.inet_testkit(args), CALL),
        ))
    }

    // ------------------------------------------------------------ podman

    pub fn podman_out(&self, args: &[&str]) -> Out {
        self.podman_used.set(true);
        let mut c = self.user_cmd("podman");
        c.args(args);
        run_bounded(c, CALL)
    }

    /// Run podman (bounded) and require success; returns stdout.
    pub fn podman(&self, args: &[&str]) -> String {
        ok_out(&format!("podman {args:?}"), self.podman_out(args))
    }

    /// Start podman attached (e.g. `podman run` whose output tells when the container's
    /// service listens). Every wait on it is bounded; dropping it kills the client only.
    pub fn podman_spawn(&self, args: &[&str]) -> Proc {
        self.podman_used.set(true);
        let mut c = self.user_cmd("podman");
        c.args(args).process_group(0);
        Proc::spawn(c)
    }

    pub fn import_image(&self) {
        self.podman(&["import", "--quiet", IMAGE_TAR, IMAGE]);
    }

    /// `-v` for the test helper: containers run it as [`TESTKIT`].
    pub fn testkit_volume(&self) -> String {
        format!("{}:{TESTKIT}:ro", self.testkit_inside())
    }

    /// The test helper's path inside the root (for RootlessKit's child).
    pub fn testkit_inside(&self) -> String {
        let rel = testkit_bin()
            .strip_prefix(build_dir())
            .expect("testkit in the build directory")
            .to_path_buf();
        format!("{IN_BUILD}/{}", rel.display())
    }

    /// Arguments for `podman run` of IMAGE with the test helper: OPTIONS, then `sh -c SCRIPT`.
    pub fn run_args(&self, options: &[&str], script: &str) -> Vec<String> {
        let mut a: Vec<String> = ["run", "--pull=never", "-v"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(self.testkit_volume());
        a.extend(options.iter().map(|s| s.to_string()));
        a.extend([
            IMAGE.to_string(),
            "sh".into(),
            "-c".into(),
            script.to_string(),
        ]);
        a
    }

    /// `podman exec ID sh -c SCRIPT`, bounded, must succeed.
    pub fn exec(&self, id: &str, script: &str) -> String {
        self.podman(&["exec", id, "sh", "-c", script])
    }

    /// The netns path Podman gave the container's network helper.
    pub fn sandbox_key(&self, id: &str) -> String {
        let k = self
            .podman(&["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", id])
            .trim()
            .to_string();
        assert!(
            k.starts_with(&self.run.display().to_string()),
            "unexpected netns path {k:?}"
        );
        k
    }

    /// Podman's run root (the rootless netns and its pasta's pid file live below it).
    pub fn run_root(&self) -> PathBuf {
        PathBuf::from(
            self.podman(&["info", "--format", "{{.Store.RunRoot}}"])
                .trim(),
        )
    }

    // ------------------------------------------------------------ processes

    /// Live processes of this lab: those in its host network namespace (Podman, conmon,
    /// RootlessKit, every pasta).
    pub fn lab_procs(&self) -> Vec<PInfo> {
        procs()
            .into_iter()
            .filter(|p| p.state != 'Z' && netns_of(p.pid).as_deref() == Some(&self.host_netns))
            .collect()
    }

    /// Live processes of this lab running the pasta under test: those in its host
    /// network namespace and every other one of the lab's user (a helper's subprocess
    /// lives in the container's namespace, such as rlnet's splice socket factory; an
    /// orphan is no child of anything of the lab's). The compatibility tests run one
    /// lab at a time and rlnet's other tests run it as `nobody`.
    pub fn helpers(&self) -> Vec<PInfo> {
        procs()
            .into_iter()
            .filter(|p| {
                p.state != 'Z'
                    && self.pasta.runs_in(p.pid)
                    && (netns_of(p.pid).as_deref() == Some(&self.host_netns)
                        || real_uid(p.pid) == Some(self.user.uid))
            })
            .collect()
    }

    /// `p` is the pasta under test (/proc/PID/exe is its file).
    pub fn assert_pasta(&self, p: &PInfo) {
        assert!(
            self.pasta.runs_in(p.pid),
            "the network helper is not the pasta under test ({}): /proc/{}/exe -> {:?}, {p:#?}",
            self.pasta.path.display(),
            p.pid,
            std::fs::read_link(format!("/proc/{}/exe", p.pid))
        );
    }

    /// The network helper serving `netns` (a path on its command line, as Podman passes
    /// it): exactly one process of the lab names it (children of that one, such as a
    /// helper's own subprocesses, aside), and it is the pasta under test.
    pub fn helper_for_netns(&self, netns: &str) -> PInfo {
        let deadline = Instant::now() + SETTLE;
        loop {
            let all: Vec<PInfo> = self
                .lab_procs()
                .into_iter()
                .filter(|p| p.argv.iter().any(|a| a == netns))
                .collect();
            let outer: Vec<PInfo> = all
                .iter()
                .filter(|p| !all.iter().any(|q| q.pid == p.ppid))
                .cloned()
                .collect();
            if outer.len() == 1 {
                let h = outer.into_iter().next().unwrap();
                self.assert_pasta(&h);
                eprintln!("network helper {}: {:?}", h.pid, h.argv);
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "expected one network helper for {netns}, found {outer:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The network helper of container `id`.
    pub fn helper_for(&self, id: &str) -> PInfo {
        let k = self.sandbox_key(id);
        self.helper_for_netns(&k)
    }

    /// Wait (bounded) until no process of the lab runs the pasta under test; returns
    /// those still running at the deadline.
    pub fn wait_no_helpers(&self, limit: Duration) -> Vec<PInfo> {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.helpers();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Remove every container and require that nothing of the helper is left.
    pub fn remove_all_and_check(&self) {
        self.podman(&["rm", "--force", "--all", "--time", "10"]);
        assert_eq!(self.podman(&["ps", "-a", "-q"]).trim(), "");
        let left = self.wait_no_helpers(SETTLE);
        assert!(left.is_empty(), "pasta left after podman rm: {left:#?}");
    }

    /// SIGKILL each (if still the same process). Podman's pause process stays by design;
    /// anything else is reported once.
    fn kill_left(&self, pids: &[PInfo], reported: &mut std::collections::HashSet<u32>) {
        for p in pids {
            if !alive(p) {
                continue;
            }
            let pause = p.comm == "catatonit" && p.has("-P");
            if !pause && reported.insert(p.pid) {
                eprintln!("cleanup: killing leftover {} {:?}", p.pid, p.argv);
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid.cast_signed()),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn cleanup_podman(&self) {
        let quiet = |args: &[&str]| {
            let mut c = self.user_cmd("podman");
            c.args(args).process_group(0);
            let mut p = Proc::spawn(c);
            if p.wait_timeout(CALL).is_none() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(p.pid().cast_signed()),
                    nix::sys::signal::Signal::SIGKILL,
                );
                eprintln!("cleanup: podman {args:?} timed out");
            }
        };
        quiet(&["rm", "--force", "--all", "--time", "0"]);
        // Storage files belong to subordinate ids: remove them inside the user namespace.
        let storage = self.storage.display().to_string();
        let dot_local = self.home.join(".local").display().to_string();
        quiet(&["unshare", "rm", "-rf", &storage, &dot_local]);
    }

    /// Processes in Podman's user namespace (containers, conmon, pasta, the pause
    /// process): found through the pause process Podman records.
    fn podman_userns_procs(&self) -> Vec<PInfo> {
        let pause = self.run.join("libpod/tmp/pause.pid");
        let Some(pid) = std::fs::read_to_string(&pause)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        // Only a pause process of this lab, in a user namespace that is not ours.
        if netns_of(pid).as_deref() != Some(&self.host_netns) {
            return Vec::new();
        }
        let Some(userns) = userns_of(pid) else {
            return Vec::new();
        };
        if Some(&userns) == userns_of(std::process::id()).as_ref() {
            return Vec::new();
        }
        procs()
            .into_iter()
            .filter(|p| p.state != 'Z' && userns_of(p.pid).as_ref() == Some(&userns))
            .collect()
    }
}

fn ns_link(pid: u32, ns: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// The real uid of `pid` (as this process's user namespace sees it).
pub fn real_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn netns_of(pid: u32) -> Option<String> {
    ns_link(pid, "net")
}

pub fn userns_of(pid: u32) -> Option<String> {
    ns_link(pid, "user")
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.host.is_some() && self.podman_used.get() {
            self.cleanup_podman();
        }
        if self.host.is_some() {
            // Whatever is left of the lab, by PID: Podman's user namespace, then the host
            // namespace (but its holder, which goes last).
            let holder = self.host_pid();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut reported = std::collections::HashSet::new();
            loop {
                let mut left = self.podman_userns_procs();
                left.extend(self.lab_procs().into_iter().filter(|p| p.pid != holder));
                let d = self.dir.display().to_string();
                left.extend(procs().into_iter().filter(|p| {
                    p.state != 'Z'
                        && p.pid != holder
                        && p.pid != std::process::id()
                        && p.argv.iter().any(|a| a.contains(&d))
                }));
                if left.is_empty() || Instant::now() >= deadline {
                    break;
                }
                self.kill_left(&left, &mut reported);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for h in [self.host.take(), self.inet.take()].into_iter().flatten() {
            let info = proc_info(h.pid());
            drop(h);
            if let Some(i) = info {
                let _ = crate::compat::wait_gone(&[i], Duration::from_secs(10));
            }
        }
        if let Some(out) = &self.trace
            && let Ok(log) = std::fs::read_to_string(self.dir.join("pasta-trace.log"))
        {
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(out)
                .unwrap_or_else(|e| panic!("RLNET_PASTA_TRACE={}: {e}", out.display()));
            let _ = write!(f, "##### {test}\n{log}\n");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup: removing {}: {e}", self.dir.display());
        }
    }
}

/// Wait (bounded) until `f` holds, retrying every 100 ms; `what` names the condition.
pub fn eventually<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: still failing after {limit:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
