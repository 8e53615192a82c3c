//! Harness for the compatibility tests with real callers: rootless Podman,
//! RootlessKit and Buildah (Debian 12's packages) driving rlnet as their
//! slirp4netns.
//!
//! - Everything the callers start runs as an unprivileged user with
//!   subordinate ids: `rlnet-ci` when the tests run as root (CI creates it in
//!   `.ci/run`), the current user otherwise.
//! - Each test gets a private [`Env`]: a short directory under /tmp holding
//!   XDG_RUNTIME_DIR, HOME, TMPDIR, containers.conf, storage.conf (vfs
//!   storage inside the directory) and a busybox image. Dropping it removes
//!   the containers, the storage (from inside the user namespace), the pause
//!   process Podman started for it, and the directory.
//! - Traffic only goes to servers on the host's 127.0.0.1 (reached from the
//!   namespaces as 10.0.2.2) and to ports published on 127.0.0.1.
//! - Every call of a caller is bounded: Podman waits forever for a helper
//!   that never signals ready.
#![allow(dead_code)]

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::common::{Proc, is_root, rlnet_bin, testkit_bin, userns_available};

/// The user CI creates for these tests (see `.ci/run`).
pub const CI_USER: &str = "rlnet-ci";
/// Upper bound for one call of podman/buildah/rootlesskit.
pub const CALL: Duration = Duration::from_secs(120);
/// Upper bound for a condition to become true (a process to go away, a
/// published port to answer).
pub const SETTLE: Duration = Duration::from_secs(60);
/// The local image every container runs (busybox-static and its applets).
pub const IMAGE: &str = "localhost/rlnet-compat";
/// PATH for the callers: they find conmon, runc, newuidmap, ip there.
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BUSYBOX: &str = "/bin/busybox";

pub const MIB: u64 = 1 << 20;

/// One test at a time per test binary: the callers are heavy and this
/// machine has two cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The unprivileged user the callers run as.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn has_subids(file: &str, u: &User) -> bool {
    std::fs::read_to_string(file)
        .map(|s| {
            s.lines().any(|l| {
                let first = l.split(':').next().unwrap_or("");
                first == u.name || first == u.uid.to_string()
            })
        })
        .unwrap_or(false)
}

/// `tool` is a name looked up in the callers' PATH, or an absolute path.
fn in_path(tool: &str) -> bool {
    if tool.starts_with('/') {
        return Path::new(tool).is_file();
    }
    BASE_PATH
        .split(':')
        .any(|d| Path::new(d).join(tool).is_file())
}

/// Can the compatibility tests run here? Returns the user to run the callers
/// as. When something is missing the test fails if we are root (CI) or
/// `RLNET_REQUIRE_COMPAT=1`, and is skipped with a message otherwise.
pub fn setup(tools: &[&str]) -> Option<User> {
    if !userns_available() {
        return None;
    }
    let required = is_root() || std::env::var("RLNET_REQUIRE_COMPAT").is_ok_and(|v| v == "1");
    match check(tools) {
        Ok(u) => Some(u),
        Err(why) if required => panic!(
            "compatibility test prerequisites missing: {why}\n\
             (.ci/run installs podman rootlesskit buildah runc uidmap busybox-static and creates \
             the user {CI_USER} with /etc/subuid and /etc/subgid ranges)"
        ),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn check(tools: &[&str]) -> Result<User, String> {
    let user = if is_root() {
        let name = std::env::var("RLNET_COMPAT_USER").unwrap_or_else(|_| CI_USER.to_string());
        let u = nix::unistd::User::from_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| format!("user {name} does not exist"))?;
        User {
            name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    } else {
        let uid = nix::unistd::getuid();
        let u = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .ok_or_else(|| format!("uid {uid} has no passwd entry"))?;
        User {
            name: u.name,
            uid: uid.as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    };
    for f in ["/etc/subuid", "/etc/subgid"] {
        if !has_subids(f, &user) {
            return Err(format!("{} has no range in {f}", user.name));
        }
    }
    for t in tools.iter().chain(&["newuidmap", "newgidmap", "tar"]) {
        if !in_path(t) {
            return Err(format!("{t} is not installed"));
        }
    }
    match std::fs::read(BUSYBOX) {
        Err(_) => return Err(format!("{BUSYBOX} (busybox-static) is not installed")),
        // The image has no libraries: a dynamically linked busybox names its
        // loader here.
        Ok(b) if b.windows(8).any(|w| w == b"/ld-linu") => {
            return Err(format!(
                "{BUSYBOX} is dynamically linked; install busybox-static"
            ));
        }
        Ok(_) => {}
    }
    for bin in [rlnet_bin(), testkit_bin()] {
        let ok = as_user(&user, "test")
            .arg("-x")
            .arg(&bin)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "{} cannot execute {} (set CARGO_TARGET_DIR to a directory it can reach, as .ci/run does)",
                user.name,
                bin.display()
            ));
        }
    }
    Ok(user)
}

/// `prog` as `user` (through setpriv when we are root).
fn as_user(user: &User, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .args(["--clear-groups", "--"])
            .arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

/// Output of a finished command.
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A private, disposable environment for one test.
pub struct Env {
    pub user: User,
    /// /tmp/rlc.XXXXXX (short: Podman's API socket lives below it).
    pub dir: PathBuf,
    /// XDG_RUNTIME_DIR (0700, owned by the user).
    pub run: PathBuf,
    pub home: PathBuf,
    /// Container storage (vfs).
    pub storage: PathBuf,
    /// For helper scripts (wrappers around rlnet).
    pub bin: PathBuf,
    pub containers_conf: PathBuf,
    pub storage_conf: PathBuf,
    /// busybox rootfs as a tarball (see [`Env::make_rootfs_tar`]).
    pub rootfs_tar: PathBuf,
    podman_used: Cell<bool>,
    buildah_used: Cell<bool>,
}

impl Env {
    pub fn new(user: &User) -> Env {
        let dir = nix::unistd::mkdtemp("/tmp/rlc.XXXXXX").expect("mkdtemp");
        let e = Env {
            user: user.clone(),
            run: dir.join("r"),
            home: dir.join("h"),
            storage: dir.join("s"),
            bin: dir.join("bin"),
            containers_conf: dir.join("containers.conf"),
            storage_conf: dir.join("storage.conf"),
            rootfs_tar: dir.join("rootfs.tar"),
            dir,
            podman_used: Cell::new(false),
            buildah_used: Cell::new(false),
        };
        for d in [
            &e.dir,
            &e.run,
            &e.home,
            &e.storage,
            &e.bin,
            &e.dir.join("tmp"),
        ] {
            std::fs::create_dir_all(d).unwrap();
            let mode = if d == &e.run || d == &e.dir {
                0o700
            } else {
                0o755
            };
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
            e.give(d);
        }
        let run_sock = e
            .run
            .join("libpod/tmp")
            .join(format!("{}.net", "0".repeat(64)));
        assert!(
            run_sock.as_os_str().len() < 108,
            "runtime dir too long for Podman's API socket: {}",
            run_sock.display()
        );
        e.write_storage_conf();
        e.write_containers_conf(None);
        e
    }

    /// chown to the user (when we are root).
    fn give(&self, p: &Path) {
        if is_root() {
            std::os::unix::fs::lchown(p, Some(self.user.uid), Some(self.user.gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        }
    }

    pub fn write_file(&self, p: &Path, text: &str, mode: u32) {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        self.give(p);
    }

    fn write_storage_conf(&self) {
        let s = self.storage.display();
        let text = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{r}/storage\"\ngraphroot = \"{s}\"\n\
             rootless_storage_path = \"{s}\"\n",
            r = self.run.display()
        );
        self.write_file(&self.storage_conf, &text, 0o644);
    }

    /// containers.conf for this machine (runc: crun fails on the hybrid
    /// cgroup layout; no systemd), with `network_cmd_path` when given.
    pub fn write_containers_conf(&self, network_cmd_path: Option<&Path>) {
        self.write_containers_conf_with(network_cmd_path, &[]);
    }

    /// [`Self::write_containers_conf`] with `network_cmd_options` (Podman
    /// passes them to its slirp4netns, the rootless-netns one included).
    pub fn write_containers_conf_with(&self, network_cmd_path: Option<&Path>, options: &[&str]) {
        let mut text = String::from(
            "[containers]\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\n",
        );
        if let Some(p) = network_cmd_path {
            text.push_str(&format!("network_cmd_path = \"{}\"\n", p.display()));
        }
        if !options.is_empty() {
            let list: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
            text.push_str(&format!("network_cmd_options = [{}]\n", list.join(", ")));
        }
        self.write_file(&self.containers_conf, &text, 0o644);
    }

    /// A shell script in the private bin directory.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.bin.join(name);
        self.write_file(&p, &format!("#!/bin/sh\n{body}\n"), 0o755);
        p
    }

    /// `prog` as the user, with this environment only.
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = as_user(&self.user, prog);
        c.env_clear()
            .env("PATH", BASE_PATH)
            .env("HOME", &self.home)
            .env("USER", &self.user.name)
            .env("LOGNAME", &self.user.name)
            .env("LANG", "C")
            .env("TMPDIR", self.dir.join("tmp"))
            .env("XDG_RUNTIME_DIR", &self.run)
            .env("CONTAINERS_CONF", &self.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .current_dir(&self.dir);
        c
    }

    /// Run `cmd` to completion within `limit`; on timeout its whole process
    /// group (it gets a new one) is killed and the test fails.
    pub fn run_cmd(&self, mut cmd: Command, limit: Duration) -> Out {
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

    pub fn run(&self, prog: &str, args: &[&str]) -> Out {
        match prog {
            "podman" => self.podman_used.set(true),
            "buildah" => self.buildah_used.set(true),
            _ => {}
        }
        let mut c = self.cmd(prog);
        c.args(args);
        self.run_cmd(c, CALL)
    }

    /// Run and require exit status 0; returns stdout.
    pub fn run_ok(&self, prog: &str, args: &[&str]) -> String {
        let o = self.run(prog, args);
        assert!(
            o.status.success(),
            "{prog} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    pub fn podman(&self, args: &[&str]) -> String {
        self.run_ok("podman", args)
    }

    pub fn buildah(&self, args: &[&str]) -> String {
        self.run_ok("buildah", args)
    }

    pub fn mark_buildah_used(&self) {
        self.buildah_used.set(true);
    }

    /// Start a testkit server as the user on the host; returns it and its
    /// port once it listens.
    pub fn serve(&self, args: &[&str]) -> (Proc, u16) {
        crate::common::serve(self.cmd(testkit_bin()), args)
    }

    /// A rootfs of busybox-static with its applets as symlinks in /bin,
    /// owned by root, as a tarball (for `podman import` / `buildah add`).
    pub fn make_rootfs_tar(&self) {
        let root = self.dir.join("rootfs");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
        let list = Command::new(BUSYBOX).arg("--list").output().unwrap();
        assert!(list.status.success(), "busybox --list failed");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        let st = Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&self.rootfs_tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
        std::fs::set_permissions(&self.rootfs_tar, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.give(&self.rootfs_tar);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The local image, imported without any registry.
    pub fn import_image(&self) {
        self.make_rootfs_tar();
        let tar = self.rootfs_tar.display().to_string();
        self.podman(&["import", "--quiet", &tar, IMAGE]);
    }

    /// The rlnet process Podman started for container `id` (matched by the
    /// container's network namespace path on rlnet's command line).
    pub fn podman_helper(&self, id: &str) -> PInfo {
        let netns = self
            .podman(&["inspect", "--format", "{{.NetworkSettings.SandboxKey}}", id])
            .trim()
            .to_string();
        assert!(
            netns.starts_with(&self.run.display().to_string()),
            "unexpected netns path {netns:?}"
        );
        let all: Vec<PInfo> = procs()
            .into_iter()
            .filter(|p| p.state != 'Z' && p.argv.iter().any(|a| a == &netns))
            .collect();
        // rlnet's own helper processes (the splice socket factory, forked
        // before the sandbox) are children of the helper, not other helpers.
        let mine: Vec<PInfo> = all
            .iter()
            .filter(|p| !all.iter().any(|q| q.pid == p.ppid))
            .cloned()
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "expected exactly one network helper for {netns}: {mine:#?}"
        );
        let h = mine.into_iter().next().unwrap();
        assert_rlnet(&h);
        eprintln!("network helper {}: {:?}", h.pid, h.argv);
        h
    }

    /// Live processes (not zombies) whose command line mentions this
    /// environment's directory and that are rlnet or slirp4netns.
    pub fn helpers_left(&self) -> Vec<PInfo> {
        let d = self.dir.display().to_string();
        procs()
            .into_iter()
            .filter(|p| {
                p.state != 'Z'
                    && (p.comm == "rlnet"
                        || p.comm == "slirp4netns"
                        || p.argv.first().is_some_and(|a| a.ends_with("rlnet")))
                    && p.argv.iter().any(|a| a.contains(&d))
            })
            .collect()
    }
}

impl Env {
    /// Wait (bounded) until no helper of this environment runs; returns
    /// those still running at the deadline.
    pub fn wait_no_helpers(&self, limit: Duration) -> Vec<PInfo> {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.helpers_left();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let quiet = |e: &Env, prog: &str, args: &[&str]| {
            let mut c = e.cmd(prog);
            c.args(args).process_group(0);
            let mut p = Proc::spawn(c);
            if p.wait_timeout(CALL).is_none() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(p.pid().cast_signed()),
                    nix::sys::signal::Signal::SIGKILL,
                );
                eprintln!("cleanup: {prog} {args:?} timed out");
            }
        };
        let storage = self.storage.display().to_string();
        let dot_local = self.home.join(".local").display().to_string();
        if self.podman_used.get() {
            quiet(self, "podman", &["rm", "--force", "--all", "--time", "0"]);
        }
        if self.buildah_used.get() {
            quiet(self, "buildah", &["rm", "--all"]);
        }
        // Storage files belong to subordinate ids: remove them from inside
        // the user namespace.
        if self.podman_used.get() {
            quiet(
                self,
                "podman",
                &["unshare", "rm", "-rf", &storage, &dot_local],
            );
        } else if self.buildah_used.get() {
            quiet(
                self,
                "buildah",
                &["unshare", "rm", "-rf", &storage, &dot_local],
            );
        }
        // The pause process Podman started to keep its user namespace.
        let pause = self.run.join("libpod/tmp/pause.pid");
        if let Some(pid) = std::fs::read_to_string(&pause)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            && let Some(p) = procs().into_iter().find(|p| p.pid == pid.cast_unsigned())
            && (p.comm == "catatonit" || p.comm == "podman")
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Anything else still running for this environment is a leak: report
        // it and kill it (by PID; its command line names our directory).
        let d = self.dir.display().to_string();
        for p in procs() {
            if p.state != 'Z' && p.argv.iter().any(|a| a.contains(&d)) {
                eprintln!("cleanup: killing leftover {} {:?}", p.pid, p.argv);
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid.cast_signed()),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup: removing {}: {e}", self.dir.display());
        }
    }
}

/// A process as /proc shows it.
#[derive(Clone, Debug)]
pub struct PInfo {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    pub comm: String,
    pub start: u64,
    pub argv: Vec<String>,
}

impl PInfo {
    pub fn has(&self, arg: &str) -> bool {
        self.argv.iter().any(|a| a == arg)
    }
}

pub fn proc_info(pid: u32) -> Option<PInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    let argv = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(PInfo {
        pid,
        ppid,
        state,
        comm,
        start,
        argv,
    })
}

pub fn procs() -> Vec<PInfo> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_info)
        .collect()
}

/// Is this very process still running (same start time, not a zombie)?
pub fn alive(p: &PInfo) -> bool {
    proc_info(p.pid).is_some_and(|q| q.start == p.start && q.state != 'Z')
}

/// Wait (bounded) until none of `ps` runs; returns those still running.
pub fn wait_gone(ps: &[PInfo], limit: Duration) -> Vec<PInfo> {
    let deadline = Instant::now() + limit;
    loop {
        let left: Vec<PInfo> = ps.iter().filter(|p| alive(p)).cloned().collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait (bounded) for a live process matching `f`.
pub fn wait_for_proc(what: &str, f: impl Fn(&PInfo) -> bool) -> PInfo {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(p) = procs().into_iter().find(|p| p.state != 'Z' && f(p)) {
            return p;
        }
        assert!(Instant::now() < deadline, "no process found: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Is `p` a descendant of `ancestor` (within a few generations)?
pub fn descends_from(p: &PInfo, ancestor: u32) -> bool {
    let mut cur = p.ppid;
    for _ in 0..8 {
        if cur == ancestor {
            return true;
        }
        match proc_info(cur) {
            Some(q) if q.ppid != 0 => cur = q.ppid,
            _ => return false,
        }
    }
    false
}

/// `p` is the rlnet under test, not slirp4netns: its executable name and
/// argv[0] are rlnet's.
pub fn assert_rlnet(p: &PInfo) {
    let bin = rlnet_bin().display().to_string();
    assert_eq!(p.comm, "rlnet", "network helper is not rlnet: {p:#?}");
    assert_eq!(
        p.argv.first().map(String::as_str),
        Some(bin.as_str()),
        "network helper is not {bin}: {p:#?}"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:port; retried (bounded) until a
/// complete `200` answer arrives, as the service may still be starting.
/// Returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + SETTLE;
    loop {
        let last = match http_once(addr, path) {
            Ok((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if len.is_none_or(|n| n == body.len()) {
                    return body;
                }
                format!("short body: {} of {len:?} bytes", body.len())
            }
            Ok((head, _)) => format!("answer: {head:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "GET http://127.0.0.1:{port}{path} failed until the deadline; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_once(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let t = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&addr, t)?;
    s.set_read_timeout(Some(t))?;
    s.set_write_timeout(Some(t))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let text = String::from_utf8_lossy(&all).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((h, b)) => Ok((h.to_string(), b.to_string())),
        None => Ok((text, String::new())),
    }
}

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use crate::common::ok;
