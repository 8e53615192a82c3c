//! End-to-end harness: real user and network namespaces, real TAPs, real
//! traffic, all of it unprivileged and hermetic.
//!
//! - When the tests run as root (CI), every process is started as `nobody`
//!   through `setpriv`, so rootlessness is proven rather than assumed.
//! - Traffic goes only to loopback or into namespaces a test creates: an
//!   [`Outer`] namespace plays "the host" with an "outside" server on
//!   198.18.0.1 / 2001:db8::1 and blackhole default routes; rlnet runs inside
//!   it, so nothing it sends can leave the machine.
//! - No sleeps as synchronisation: readiness comes from pipes (`listening`
//!   lines, `--ready-fd`); every wait has a deadline.
#![allow(dead_code, unsafe_code)]

pub mod cli;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NOBODY: u32 = 65534;
pub const OUTSIDE4: &str = "198.18.0.1";
pub const OUTSIDE6: &str = "2001:db8::1";
pub const WAIT: Duration = Duration::from_secs(60);

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The rlnet under test: the one cargo built, or an installed one named by
/// `RLNET_BIN` (the Debian autopkgtest runs the suite against /usr/bin/rlnet).
pub fn rlnet_bin() -> PathBuf {
    std::env::var_os("RLNET_BIN")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_rlnet")), PathBuf::from)
}

/// The test helper built from `examples/testkit/` (cargo builds examples
/// for `cargo test`).
pub fn testkit_bin() -> PathBuf {
    let mut p = std::env::current_exe().expect("current_exe");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join("testkit")
}

/// Can this machine run the e2e tests? When it can't, the test fails if we
/// are root or `RLNET_REQUIRE_USERNS=1` (CI), and is skipped loudly otherwise.
pub fn userns_available() -> bool {
    let ok = base_cmd("unshare")
        .args(["-Urn", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let tun = std::fs::metadata("/dev/net/tun")
        .map(|m| {
            use std::os::unix::fs::PermissionsExt;
            m.permissions().mode() & 0o006 == 0o006 || !is_root()
        })
        .unwrap_or(false);
    let required = is_root() || std::env::var("RLNET_REQUIRE_USERNS").is_ok_and(|v| v == "1");
    if ok && tun {
        return true;
    }
    let why = if !ok {
        "unprivileged user namespaces are not available"
    } else {
        "/dev/net/tun is not usable by unprivileged users (run `chmod 0666 /dev/net/tun` as root)"
    };
    if required {
        panic!("e2e prerequisites missing: {why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// Macro-like guard at the top of every e2e test.
#[macro_export]
macro_rules! require_userns {
    () => {
        if !$crate::common::userns_available() {
            return;
        }
    };
}

/// A command run as `nobody` when we are root, else as ourselves.
pub fn base_cmd(prog: impl AsRef<std::ffi::OsStr>) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ]);
        c.arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

/// A child process that is killed (by PID) when dropped, with its stdout
/// lines and stderr text collected by background threads.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout_all: Arc<Mutex<Vec<String>>>,
    /// One message per output pipe that reached EOF.
    eof: Receiver<()>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Proc::from_child(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }

    pub fn from_child(mut child: Child) -> Proc {
        let (tx, rx) = channel();
        let (eof_tx, eof) = channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let all = all.clone();
            let eof_tx = eof_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    all.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
                let _ = eof_tx.send(());
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                let _ = eof_tx.send(());
            });
        }
        Proc {
            child,
            lines: rx,
            stderr,
            stdout_all: all,
            eof,
        }
    }

    /// After exit: wait (bounded) until both output pipes reached EOF, so
    /// everything the process wrote has been collected.
    pub fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.eof.recv_timeout(left).is_err() {
                return;
            }
        }
    }

    /// After exit: did both output pipes reach EOF within `timeout`? (No
    /// process left holding them: pasta's callers wait for that EOF.)
    pub fn closed_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        (0..2).all(|_| {
            let left = deadline.saturating_duration_since(Instant::now());
            self.eof.recv_timeout(left).is_ok()
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, within `timeout`.
    pub fn line(&self, timeout: Duration) -> String {
        self.lines.recv_timeout(timeout).unwrap_or_else(|_| {
            panic!(
                "no output line within {timeout:?}; stderr: {}",
                self.stderr()
            )
        })
    }

    /// The next stdout line if one comes within `timeout`.
    pub fn try_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Wait for a line starting with `prefix` and return it.
    pub fn expect_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.line(left);
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stdout_all.lock().unwrap().clone()
    }

    /// Wait for exit within `timeout`; None if still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for exit (bounded) and return the status.
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_timeout(WAIT).unwrap_or_else(|| {
            panic!(
                "process {} did not exit within {WAIT:?}; stderr: {}",
                self.pid(),
                self.stderr()
            )
        })
    }

    pub fn kill(&mut self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid().cast_signed()), sig);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Run a command to completion (bounded) and return (status, stdout, stderr).
pub fn run(cmd: Command) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(cmd);
    let st = p.wait();
    p.drain();
    (st, p.stdout().join("\n"), p.stderr())
}

/// Run and require success; returns stdout.
pub fn run_ok(cmd: Command) -> String {
    let desc = format!("{cmd:?}");
    let (st, out, err) = run(cmd);
    assert!(st.success(), "{desc} failed ({st}): {err}\n{out}");
    out
}

/// `key=value` field of a testkit output line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// A testkit result line says `ok=1`.
pub fn ok(line: &str) {
    assert_eq!(field(line, "ok"), Some("1"), "{line}");
}

/// `err` is exactly one line (blank lines aside) and it mentions `needle`.
pub fn one_line_error(err: &str, needle: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one stderr line mentioning {needle:?}, got: {err:?}"
    );
    assert!(
        lines[0].contains(needle),
        "{:?} does not mention {needle:?}",
        lines[0]
    );
}

/// A namespace holder: `unshare -Urn` running `sleep`, reporting readiness.
fn holder(mut cmd: Command) -> Proc {
    cmd.args(["-Urn", "--", "sh", "-c", "echo ready; exec sleep 3600"]);
    let p = Proc::spawn(cmd);
    p.expect_line("ready");
    p
}

fn nsenter(pid: u32, prog: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = base_cmd("nsenter");
    c.args([
        "-t",
        &pid.to_string(),
        "-U",
        "-n",
        "--preserve-credentials",
        "--",
    ]);
    c.arg(prog);
    c
}

/// The "host" of a test: a user+network namespace with loopback, an
/// outside address on `lo`, blackhole default routes, and ping sockets
/// allowed for its users. rlnet runs here.
pub struct Outer {
    holder: Proc,
}

impl Outer {
    pub fn new() -> Outer {
        let holder = holder(base_cmd("unshare"));
        let o = Outer { holder };
        let mut c = o.cmd("sh");
        c.arg("-c").arg(format!(
            "ip link set lo up && ip addr add {OUTSIDE4}/32 dev lo && ip -6 addr add {OUTSIDE6}/128 dev lo nodad \
             && ip route add blackhole default && ip -6 route add blackhole default \
             && echo '0 0' > /proc/sys/net/ipv4/ping_group_range"
        ));
        run_ok(c);
        o
    }

    pub fn pid(&self) -> u32 {
        self.holder.pid()
    }

    /// A command inside the outer namespace.
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        nsenter(self.pid(), prog)
    }

    /// rlnet inside the outer namespace, with every capability dropped so it
    /// has no more power there than an ordinary user process.
    pub fn rlnet_cmd(&self) -> Command {
        let mut c = self.cmd("setpriv");
        c.args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
        ]);
        c.arg(rlnet_bin());
        c
    }

    /// rlnet here with every capability dropped but CAP_SETFCAP: mapping
    /// this namespace's uid 0 (the test's user) as root of a new user
    /// namespace needs it (kernel rule since 5.12, for the parent
    /// namespace's root only; on a real host an unprivileged user maps a
    /// non-zero uid and needs nothing).
    #[allow(dead_code)] // not every test file maps users
    pub fn rlnet_setfcap_cmd(&self) -> Command {
        let mut c = self.cmd("setpriv");
        c.args([
            "--bounding-set=-all,+setfcap",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
        ]);
        c.arg(rlnet_bin());
        c
    }

    pub fn testkit(&self) -> Command {
        self.cmd(testkit_bin())
    }

    /// `testkit ARGS` here.
    pub fn testkit_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.testkit();
        c.args(args);
        c
    }

    /// Counter `name` of the `status` answer of the rlnet serving API
    /// socket `sock`.
    #[allow(dead_code)] // not every test file reads counters
    pub fn status_counter(&self, sock: &str, name: &str) -> u64 {
        let out = run_ok(self.testkit_cmd(&["api", sock, r#"{"execute":"status"}"#]));
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}: {out}"));
        v["return"]["counters"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}: {out}"))
    }

    /// A target namespace (nested in the outer user namespace, as a
    /// container's would be).
    pub fn target(&self) -> Target {
        Target::held(holder(self.cmd("unshare")))
    }

    /// Start a testkit server here and return it with its port.
    pub fn serve(&self, args: &[&str]) -> (Proc, u16) {
        serve(self.testkit(), args)
    }
}

impl Default for Outer {
    fn default() -> Self {
        Self::new()
    }
}

/// Start a testkit server from `cmd` with `args`; return it with its port
/// once it prints `listening port=P`.
pub fn serve(mut cmd: Command, args: &[&str]) -> (Proc, u16) {
    cmd.args(args);
    let p = Proc::spawn(cmd);
    let l = p.expect_line("listening");
    let port = field(&l, "port")
        .and_then(|p| p.parse().ok())
        .expect("port");
    (p, port)
}

/// A testkit server in the real host namespace (loopback only).
pub fn serve_on_host(args: &[&str]) -> (Proc, u16) {
    serve(base_cmd(testkit_bin()), args)
}

/// The namespace rlnet serves.
pub struct Target {
    holder: Proc,
    /// A process in the namespace: the holder itself, or the command a
    /// holder such as `rlnet run` started.
    pid: u32,
}

impl Target {
    fn held(holder: Proc) -> Target {
        let pid = holder.pid();
        Target { holder, pid }
    }

    /// The namespace of `pid`, which lives as long as `holder` does.
    #[allow(dead_code)] // not every test file makes such targets
    pub fn of(holder: Proc, pid: u32) -> Target {
        Target { holder, pid }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        nsenter(self.pid(), prog)
    }

    pub fn testkit(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(testkit_bin());
        c.args(args);
        c
    }

    /// Start a testkit server here and return it with its port.
    pub fn serve(&self, args: &[&str]) -> (Proc, u16) {
        serve(self.testkit(&[]), args)
    }

    pub fn sh(&self, script: &str) -> Command {
        let mut c = self.cmd("sh");
        c.arg("-c").arg(script);
        c
    }

    /// Another namespace nested in this one's user namespace: an endpoint
    /// behind a veth of this namespace (as a container behind a bridge).
    pub fn nested(&self) -> Target {
        Target::held(holder(self.cmd("unshare")))
    }

    pub fn kill(&mut self) {
        self.holder.kill(nix::sys::signal::Signal::SIGKILL);
        let _ = self.holder.wait_timeout(WAIT);
    }
}

/// A pipe whose write end a child gets as a given fd number.
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

impl Pipe {
    pub fn new() -> Pipe {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        Pipe { read, write }
    }
}

impl Default for Pipe {
    fn default() -> Self {
        Self::new()
    }
}

/// Make `fd` (ours, close-on-exec) appear as `target` in the child only.
/// Other tests' children never see it, so hang-ups are not delayed.
pub fn pass_fd(cmd: &mut Command, fd: &OwnedFd, target: i32) {
    let raw = fd.as_raw_fd();
    // SAFETY: runs in the forked child before exec; dup2 is async-signal-safe
    // and touches only the child's fd table.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The child starts with stdio only: fds above 2 that this test process
/// inherited without close-on-exec (from the shell that ran `cargo test`)
/// are closed at exec. Scripts that name fd numbers (slirp4netns's exit-fd
/// test expects its fd 10 not to be open) then see what a clean session
/// would give them.
pub fn no_inherited_fds(cmd: &mut Command) {
    // SAFETY: runs in the forked child before exec; close_range(2) is a
    // plain system call that touches only the child's fd table, and
    // CLOSE_RANGE_CLOEXEC leaves the fds open until exec (std's own
    // exec-error pipe included).
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Wait until `fd` is readable and return the bytes read (up to 16), or
/// None on timeout/EOF.
pub fn read_fd(fd: &OwnedFd, timeout: Duration) -> Option<Vec<u8>> {
    use std::os::fd::AsFd;
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(
        &mut fds,
        nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
    ) {
        Ok(n) if n > 0 => {
            let mut buf = [0u8; 16];
            match nix::unistd::read(fd.as_fd(), &mut buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            }
        }
        _ => None,
    }
}

/// A running rlnet with its ready time.
pub struct Rlnet {
    pub proc: Proc,
    pub ready: Duration,
}

/// Start rlnet from `cmd` (arguments not yet including `--ready-fd`), wait
/// for the ready fd, and return it running.
pub fn start_rlnet(mut cmd: Command, args: &[&str]) -> Rlnet {
    let pipe = Pipe::new();
    cmd.args(["--ready-fd", "3"]).args(args);
    pass_fd(&mut cmd, &pipe.write, 3);
    let t0 = Instant::now();
    let proc = Proc::spawn(cmd);
    drop(pipe.write);
    let got = read_fd(&pipe.read, WAIT);
    assert_eq!(
        got.as_deref(),
        Some(&b"1"[..]),
        "rlnet not ready; stderr: {}",
        proc.stderr()
    );
    let ready = t0.elapsed();
    start_up_dropped(proc.pid());
    Rlnet { proc, ready }
}

/// Wait (bounded by [`WAIT`]) until rlnet has dropped its start-up code,
/// which it does a moment after ready (`os::DROP_START_UP_AFTER`), closing
/// the `/proc/self/smaps` fd it kept for it: a test's fd baseline taken
/// before would count an fd that goes away on its own (under load the
/// moment comes late enough to land inside a measurement).
pub fn start_up_dropped(pid: u32) {
    let holds_smaps = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.ends_with("smaps")))
    };
    let deadline = Instant::now() + WAIT;
    while holds_smaps() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Open fds and resident memory of a process.
pub fn fds_and_rss(pid: u32) -> (usize, u64) {
    (fds_of(pid).total(), rss_kib(pid))
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:").unwrap_or(0)
}

/// A KiB figure of /proc/PID/status (`key` with its colon, e.g. "RssFile:").
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A process's open fds: pipes (rlnet's splice pipes and their pool) and
/// everything else (sockets, the TAP, pidfds, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fds {
    pub pipes: usize,
    pub other: usize,
}

impl Fds {
    pub fn total(self) -> usize {
        self.pipes + self.other
    }
}

pub fn fds_of(pid: u32) -> Fds {
    let mut f = Fds { pipes: 0, other: 0 };
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        match std::fs::read_link(e.path()) {
            Ok(t) if t.to_string_lossy().starts_with("pipe:") => f.pipes += 1,
            Ok(_) => f.other += 1,
            Err(_) => {} // closed meanwhile
        }
    }
    f
}

/// Wait (bounded by [`WAIT`]) until `done` holds for a process's fds, and
/// return the last reading whether it holds or not (the caller asserts).
/// Closing is asynchronous: rlnet closes a flow's sockets once it has seen
/// both sides finish, which load can delay; it never has to happen by a
/// given time, only eventually.
pub fn settle(pid: u32, done: impl Fn(Fds) -> bool) -> Fds {
    let deadline = Instant::now() + WAIT;
    loop {
        let f = fds_of(pid);
        if done(f) || Instant::now() > deadline {
            return f;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait (bounded) until a process's fd count is at most `want`, then read
/// fds and RSS.
pub fn settle_fds(pid: u32, want: Option<usize>) -> (usize, u64) {
    let f = settle(pid, |f| want.is_none_or(|w| f.total() <= w));
    (f.total(), rss_kib(pid))
}

/// User + system CPU time of a process (all threads), in clock ticks
/// (USER_HZ, 100 per second).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A world-writable scratch directory (rlnet and the namespaces run as
/// `nobody`), removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = PathBuf::from(format!(
            "/tmp/rlnet-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        TempDir(p)
    }

    /// The path of `name` inside it.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
