//! Namespaces: find the target's user and network namespace, run a job
//! inside them in a short-lived forked agent (rlnet itself never leaves the
//! host namespaces), and create a fresh user+network namespace for
//! `rlnet run`.
//!
//! Forking is only done while rlnet is single-threaded (checked), so the
//! child may allocate and run ordinary Rust code.

use std::ffi::{CString, OsStr};
use std::io::{IoSlice, IoSliceMut};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::stat::{Mode, fstat};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getegid, geteuid, pipe2};
use thiserror::Error;

use super::helper::Helper;
use super::os;

#[derive(Debug, Error)]
pub enum NsError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error(
        "cannot open the namespaces of PID {pid}: {err}; the process belongs to another user \
         (run rlnet as the user that started it)"
    )]
    NotPermitted { pid: u32, err: nix::Error },
    #[error("cannot open {path}: {err}")]
    Open { path: String, err: nix::Error },
    #[error(
        "PID {0} is in rlnet's own network namespace; give the PID of a process inside the \
         namespace to connect (e.g. one started with `unshare -rn`)"
    )]
    OwnNamespace(u32),
    #[error("existing path expected when --netns-type=path: {path}: {err}")]
    NetnsPath { path: String, err: nix::Error },
    #[error("userns path doesn't exist: {path}: {err}")]
    UsernsPath { path: String, err: nix::Error },
    #[error("{path} is not a {kind} namespace")]
    NotANamespace { path: String, kind: &'static str },
    #[error("rlnet must be single-threaded to enter a namespace (internal error)")]
    Threads,
    #[error("{what}: {err}")]
    Sys { what: &'static str, err: nix::Error },
    #[error("{0}")]
    Agent(String),
    #[error("the namespace agent died without answering ({0})")]
    AgentDied(String),
    #[error(
        "cannot create a user namespace: {0} (check `sysctl user.max_user_namespaces` and, on Ubuntu, kernel.apparmor_restrict_unprivileged_userns)"
    )]
    Unshare(nix::Error),
    #[error("command is empty")]
    EmptyCommand,
}

fn sys(what: &'static str) -> impl Fn(nix::Error) -> NsError {
    move |err| NsError::Sys { what, err }
}

/// [`sys`] for a std I/O error (its errno, else EINVAL).
pub fn sys_io(what: &'static str) -> impl Fn(std::io::Error) -> NsError {
    move |e| NsError::Sys {
        what,
        err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
    }
}

/// Handles on the namespaces to serve, opened once and kept, so the target
/// cannot be swapped under us (PID reuse, path replaced).
#[derive(Debug)]
pub struct NsHandles {
    /// None when the target shares rlnet's user namespace (Podman runs us
    /// inside its own), in which case joining it would fail.
    pub user: Option<OwnedFd>,
    pub net: OwnedFd,
    /// PID mode: readable when the target exits.
    pub pidfd: Option<OwnedFd>,
}

impl NsHandles {
    /// (st_dev, st_ino) of the network namespace: the same for every handle
    /// on it, so one namespace is recognised however it was named.
    pub fn net_id(&self) -> nix::Result<(u64, u64)> {
        file_id(self.net.as_fd())
    }
}

/// (st_dev, st_ino): which file (here, which namespace) `fd` is.
fn file_id(fd: BorrowedFd) -> nix::Result<(u64, u64)> {
    let st = fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Asks a namespace file its type (seccomp allows it to the daemons).
pub const NS_GET_NSTYPE: libc::Ioctl = 0xb703; // _IO(0xb7, 0x3)

fn ns_type(fd: &OwnedFd) -> Option<CloneFlags> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only returns an int; on a
    // file that is not a namespace it fails with ENOTTY.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    (t > 0).then(|| CloneFlags::from_bits_truncate(t))
}

fn same_file(a: &OwnedFd, path: &str) -> bool {
    match (fstat(a.as_fd()), nix::sys::stat::stat(path)) {
        (Ok(x), Ok(y)) => x.st_ino == y.st_ino && x.st_dev == y.st_dev,
        _ => false,
    }
}

fn open_ro(path: &Path) -> nix::Result<OwnedFd> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
}

/// PID mode: the namespaces of a running process.
pub fn open_pid(pid: u32) -> Result<NsHandles, NsError> {
    let ipid = i32::try_from(pid).map_err(|_| NsError::NoSuchProcess(pid))?;
    let pidfd = os::pidfd_open(ipid).map_err(|_| NsError::NoSuchProcess(pid))?;
    let open_ns = |kind: &str| {
        open_ro(Path::new(&format!("/proc/{pid}/ns/{kind}"))).map_err(|err| match err {
            nix::Error::ENOENT | nix::Error::ESRCH => NsError::NoSuchProcess(pid),
            nix::Error::EACCES | nix::Error::EPERM => NsError::NotPermitted { pid, err },
            err => NsError::Open {
                path: format!("/proc/{pid}/ns/{kind}"),
                err,
            },
        })
    };
    let net = open_ns("net")?;
    let user = open_ns("user")?;
    // The ns files were opened through /proc/PID: if the process died in
    // between, the PID may name another process now.
    if os::pidfd_exited(&pidfd) {
        return Err(NsError::NoSuchProcess(pid));
    }
    if same_file(&net, "/proc/self/ns/net") {
        return Err(NsError::OwnNamespace(pid));
    }
    let user = (!same_file(&user, "/proc/self/ns/user")).then_some(user);
    Ok(NsHandles {
        user,
        net,
        pidfd: Some(pidfd),
    })
}

/// Path mode: `--netns-type=path NETNS [--userns-path USERNS]`.
pub fn open_path(netns: &Path, userns: Option<&Path>) -> Result<NsHandles, NsError> {
    let show = |p: &Path| p.display().to_string();
    let net = open_ro(netns).map_err(|err| NsError::NetnsPath {
        path: show(netns),
        err,
    })?;
    if ns_type(&net) != Some(CloneFlags::CLONE_NEWNET) {
        return Err(NsError::NotANamespace {
            path: show(netns),
            kind: "network",
        });
    }
    if same_file(&net, "/proc/self/ns/net") {
        return Err(NsError::Open {
            path: show(netns),
            err: nix::Error::EINVAL,
        });
    }
    let user = match userns {
        None => None,
        Some(p) => {
            let fd = open_ro(p).map_err(|err| NsError::UsernsPath { path: show(p), err })?;
            if ns_type(&fd) != Some(CloneFlags::CLONE_NEWUSER) {
                return Err(NsError::NotANamespace {
                    path: show(p),
                    kind: "user",
                });
            }
            (!same_file(&fd, "/proc/self/ns/user")).then_some(fd)
        }
    };
    Ok(NsHandles {
        user,
        net,
        pidfd: None,
    })
}

/// The parent/child channel of a process forked to work in a namespace, after
/// checking that forking is safe at all (one thread: the child may run any
/// code).
fn fork_channel() -> Result<(OwnedFd, OwnedFd), NsError> {
    if !os::single_threaded() {
        return Err(NsError::Threads);
    }
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("socketpair"))
}

/// Run `job` inside the target namespaces in a forked agent and return the
/// fd and bytes it produced, waiting for it (for callers outside the event
/// loop). The agent exits right after; an `Err(text)` from the job comes
/// back as [`NsError::Agent`].
pub fn run_in<F>(ns: &NsHandles, job: F) -> Result<(OwnedFd, Vec<u8>), NsError>
where
    F: FnOnce() -> Result<(OwnedFd, Vec<u8>), String>,
{
    spawn_in(ns, job)?.wait()
}

/// A forked agent at work inside a namespace, not waited for: the event
/// loop watches [`Agent::pidfd`] and collects the answer with
/// [`Agent::try_finish`] once it is readable (the agent has exited, its
/// answer is queued on the socket).
#[derive(Debug)]
pub struct Agent {
    helper: Helper,
    sock: OwnedFd,
}

/// What an agent's job produced: an fd and bytes.
pub type AgentAnswer = Result<(OwnedFd, Vec<u8>), NsError>;

/// Start `job` inside the target namespaces in a forked agent and return at
/// once. The agent sends `job`'s result and exits.
pub fn spawn_in<F>(ns: &NsHandles, job: F) -> Result<Agent, NsError>
where
    F: FnOnce() -> Result<(OwnedFd, Vec<u8>), String>,
{
    fork_agent(|sock| {
        let result = enter(ns).and_then(|()| job());
        send_answer(sock, &result).is_ok()
    })
}

/// Fork an agent that runs `body` with its end of the channel (in the
/// child, which exits 0 if `body` says it answered, else 1); the parent
/// watches it through its pidfd.
fn fork_agent(body: impl FnOnce(&OwnedFd) -> bool) -> Result<Agent, NsError> {
    fork_agent_spread(None, body)
}

/// [`fork_agent`], the child kept off the parent's CPU (`spread`) so that
/// both run at once; `body` gives the child every CPU back when it wants.
fn fork_agent_spread(
    spread: Option<os::Spread>,
    body: impl FnOnce(&OwnedFd) -> bool,
) -> Result<Agent, NsError> {
    let (ours, theirs) = fork_channel()?;
    // SAFETY: rlnet is single-threaded (fork_channel checked), so the child
    // may run arbitrary code; it never returns from this branch (exit_now).
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            if let Some(s) = &spread {
                s.off_parent(Pid::from_raw(0));
            }
            drop(ours);
            os::die_with_parent();
            os::exit_now(if body(&theirs) { 0 } else { 1 })
        }
        ForkResult::Parent { child } => {
            if let Some(s) = &spread {
                s.off_parent(child);
            }
            drop(theirs);
            let helper = Helper::watch(child).map_err(sys_io("pidfd_open"))?;
            Ok(Agent { helper, sock: ours })
        }
    }
}

/// An agent that answered early (its fd and bytes) and goes on working:
/// [`EarlyAgent::finish`] waits for the rest of its job.
#[derive(Debug)]
pub struct EarlyAgent {
    agent: Agent,
    /// It stays on as the socket factory ([`spawn_in_early_with_factory`]).
    stays: bool,
}

/// What an early-answering job is given to send its fd and bytes with.
pub type Early<'a> = &'a dyn Fn(OwnedFd, Vec<u8>) -> Result<(), String>;

/// An early-answering agent just forked: [`EarlyStart::answer`] waits for
/// what it sends through its [`Early`] sender.
#[derive(Debug)]
pub struct EarlyStart {
    agent: Agent,
    stays: bool,
}

impl EarlyStart {
    /// The fd and bytes the job sent early, and the agent still at work
    /// (or the job's error, the agent reaped).
    pub fn answer(self) -> Result<(OwnedFd, Vec<u8>, EarlyAgent), NsError> {
        let EarlyStart { mut agent, stays } = self;
        match soon(|flags| receive(&agent.sock, flags)) {
            Ok(Some(Ok((fd, data)))) => Ok((fd, data, EarlyAgent { agent, stays })),
            first => {
                let status = agent.helper.wait();
                let e = answer(first, status).err();
                Err(e.unwrap_or_else(|| NsError::AgentDied("malformed reply".into())))
            }
        }
    }
}

/// Start `job` inside the target namespaces in a forked agent and return at
/// once; [`EarlyStart::answer`] waits only for what the job sends through
/// its [`Early`] sender (the TAP, once made); the caller goes on while the
/// agent finishes and collects the outcome with [`EarlyAgent::finish`].
pub fn spawn_in_early<F>(ns: &NsHandles, job: F) -> Result<EarlyStart, NsError>
where
    F: FnOnce(Early) -> Result<(), String>,
{
    // The parent goes on while the TAP is made.
    fork_agent_spread(os::Spread::here(), |sock| early_job(ns, sock, job).is_ok()).map(|agent| {
        EarlyStart {
            agent,
            stays: false,
        }
    })
}

/// In an early agent: enter, run `job` with the early sender, and send its
/// outcome; Ok if the job succeeded and everything was sent.
fn early_job<F>(ns: &NsHandles, sock: &OwnedFd, job: F) -> Result<(), ()>
where
    F: FnOnce(Early) -> Result<(), String>,
{
    let early = |fd: OwnedFd, data: Vec<u8>| {
        send_answer(sock, &Ok((fd, data)))
            .map(drop)
            .map_err(|e| e.to_string())
    };
    match enter(ns).and_then(|()| job(&early)) {
        // Status 2: done, nothing attached.
        Ok(()) => send_bytes(sock, &[2]).map(drop).map_err(drop),
        Err(text) => {
            let _ = send_answer(sock, &Err(text));
            Err(())
        }
    }
}

/// [`spawn_in_early`] whose agent, its job done, stays on as the socket
/// factory ([`Factory::start`] with `opts`), already inside the
/// namespaces: one process and one entry into them fewer before ready. The
/// factory's word comes on a channel of its own ([`FactoryStart::finish`]).
pub fn spawn_in_early_with_factory<F>(
    ns: &NsHandles,
    job: F,
    opts: FactoryOptions,
) -> Result<(EarlyStart, FactoryStart), NsError>
where
    F: FnOnce(Early) -> Result<(), String>,
{
    let (ours, theirs) = fork_channel()?;
    // The parent goes on while the TAP is made; the factory may run
    // anywhere after.
    let spread = os::Spread::here();
    let agent = fork_agent_spread(spread, move |sock| {
        if early_job(ns, sock, job).is_err() {
            return false;
        }
        if let Some(s) = &spread {
            s.anywhere();
        }
        be_factory(&theirs, factory_setup(&theirs, opts))
    })?;
    let factory = FactoryStart {
        sock: ours,
        pid: agent.helper.pid(),
    };
    Ok((EarlyStart { agent, stays: true }, factory))
}

impl EarlyAgent {
    /// Wait for the rest of the agent's job, and reap it; one that stays
    /// on as the socket factory is left to [`FactoryStart`] (called before
    /// [`FactoryStart::finish`], so that only one of them reaps).
    pub fn finish(self) -> Result<(), NsError> {
        let EarlyAgent { mut agent, stays } = self;
        let mut buf = [0u8; 4096];
        let got = soon(|flags| os::recv_fd(agent.sock.as_fd(), &mut buf, flags));
        if stays && matches!(got, Ok((1, None)) if buf[0] == 2) {
            // Now the socket factory: the factory's handle reaps it.
            agent.helper.release();
            return Ok(());
        }
        let status = agent.helper.wait();
        match got {
            Ok((1, None)) if buf[0] == 2 => Ok(()),
            Ok((n, _)) if n > 0 && buf[0] == 1 => Err(NsError::Agent(
                String::from_utf8_lossy(&buf[1..n]).into_owned(),
            )),
            _ => Err(died(status)),
        }
    }
}

fn send_bytes(sock: &OwnedFd, bytes: &[u8]) -> nix::Result<usize> {
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[],
        MsgFlags::empty(),
        None,
    )
}

/// In the agent: status byte 0 + data + the fd, or 1 + the error text.
fn send_answer(sock: &OwnedFd, result: &Result<(OwnedFd, Vec<u8>), String>) -> nix::Result<usize> {
    match result {
        Ok((fd, data)) => {
            let mut msg = vec![0u8];
            msg.extend_from_slice(data);
            let fds = [fd.as_raw_fd()];
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(&msg)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::empty(),
                None,
            )
        }
        Err(text) => {
            let mut msg = vec![1u8];
            msg.extend_from_slice(text.as_bytes());
            send_bytes(sock, &msg)
        }
    }
}

impl Agent {
    /// Readable once the agent has exited.
    pub fn pidfd(&self) -> &OwnedFd {
        self.helper.pidfd()
    }

    /// The answer of an agent that has exited (its pidfd is readable), and
    /// the agent reaped; None while it still runs. Never blocks.
    pub fn try_finish(&mut self) -> Option<AgentAnswer> {
        let status = self.helper.try_reap()?;
        Some(answer(receive(&self.sock, MsgFlags::MSG_DONTWAIT), status))
    }

    /// Give up on it: SIGKILL. Its pidfd turns readable when it is gone;
    /// [`Self::try_finish`] then reaps it.
    pub fn kill(&self) {
        self.helper.kill();
    }

    /// Wait for the answer and the agent's exit.
    pub fn wait(mut self) -> AgentAnswer {
        let reply = receive(&self.sock, MsgFlags::empty());
        let status = self.helper.wait();
        answer(reply, status)
    }
}

fn answer(reply: nix::Result<Option<AgentAnswer>>, status: nix::Result<WaitStatus>) -> AgentAnswer {
    match reply {
        Ok(Some(r)) => r,
        Ok(None) | Err(_) => Err(died(status)),
    }
}

/// An agent that ended without (a well-formed) answer.
fn died(status: nix::Result<WaitStatus>) -> NsError {
    NsError::AgentDied(match status {
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
        Ok(WaitStatus::Exited(_, code)) => format!("exit status {code}"),
        other => format!("{other:?}"),
    })
}

fn enter(ns: &NsHandles) -> Result<(), String> {
    if let Some(user) = &ns.user {
        setns(user, CloneFlags::CLONE_NEWUSER)
            .map_err(|e| format!("cannot join the target's user namespace: {e}"))?;
    }
    setns(&ns.net, CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot join the target's network namespace: {e} (does it belong to another user namespace? give --userns-path)")
    })
}

/// How long start-up polls for an agent's word before it sleeps.
const SOON: std::time::Duration = std::time::Duration::from_millis(2);

/// `recv(flags)` for start-up's waits on the TAP agent, which are usually
/// over within tens of µs: tried with MSG_DONTWAIT (yielding the CPU in
/// between) for up to [`SOON`], then once more, sleeping. A sleeping rlnet
/// is woken by the agent's send, a "sync" wake-up that may queue it on the
/// agent's CPU behind the agent, now busy setting up the socket factory,
/// while the other CPU idles: 0.4-0.5 ms late in 2 of 21 instrumented
/// starts. Polling, rlnet keeps its CPU (and spares the wake of a halted
/// one).
fn soon<T>(mut recv: impl FnMut(MsgFlags) -> nix::Result<T>) -> nix::Result<T> {
    let until = std::time::Instant::now() + SOON;
    loop {
        match recv(MsgFlags::MSG_DONTWAIT) {
            Err(nix::Error::EAGAIN) if std::time::Instant::now() < until => {
                std::thread::yield_now();
            }
            Err(nix::Error::EAGAIN) => return recv(MsgFlags::empty()),
            other => return other,
        }
    }
}

fn receive(sock: &OwnedFd, flags: MsgFlags) -> nix::Result<Option<AgentAnswer>> {
    let mut buf = vec![0u8; 4096];
    let (len, fd) = os::recv_fd(sock.as_fd(), &mut buf, flags)?;
    let Some((&status, data)) = buf[..len].split_first() else {
        return Ok(None);
    };
    Ok(Some(match (status, fd) {
        (0, Some(fd)) => Ok((fd, data.to_vec())),
        (1, _) => Err(NsError::Agent(String::from_utf8_lossy(data).into_owned())),
        _ => Err(NsError::AgentDied("malformed reply".into())),
    }))
}

/// A process parked in the target namespaces that creates sockets there on
/// request (published ports in splice mode need sockets that live inside
/// the namespace). It is single-threaded, holds nothing but its socketpair
/// (stdio is /dev/null), and exits when rlnet closes it or dies. Confined
/// ([`FactoryOptions::confine`]), it has no capability, no new privileges
/// and a seccomp filter that allows little more than making sockets.
#[derive(Debug)]
pub struct Factory {
    sock: OwnedFd,
    pid: Pid,
    /// The namespace's /proc/net tables it opened, if asked.
    tables: Tables,
    /// Families [v4, v6] whose real-address sockets it can make.
    real_addr: [bool; 2],
}

/// A socket factory forked by [`Factory::start`], setting itself up.
#[derive(Debug)]
pub struct FactoryStart {
    sock: OwnedFd,
    pid: Pid,
}

impl FactoryStart {
    /// Readable once the factory's word has come (or the factory died).
    pub fn word_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Wait for the factory's word: the running factory, or its error.
    pub fn finish(self) -> Result<Factory, NsError> {
        match factory_started(&self.sock) {
            Ok((tables, real_addr)) => Ok(Factory {
                sock: self.sock,
                pid: self.pid,
                tables,
                real_addr,
            }),
            Err(e) => {
                let _ = waitpid(self.pid, None);
                Err(e)
            }
        }
    }
}

/// How to start the factory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactoryOptions {
    /// Confine it (always, in every mode).
    pub confine: bool,
    /// Open the namespace's /proc/net/{tcp,tcp6,udp,udp6} for port scans
    /// (pasta's `auto`).
    pub tables: bool,
    /// Set the namespace up for connections from clients' real addresses
    /// ([`super::netlink::real_address_routing`], given the gateways
    /// [v4, v6]) and keep CAP_NET_RAW in its user namespace to make such
    /// sockets (IP_TRANSPARENT, SO_MARK).
    pub real_addr: Option<[Option<IpAddr>; 2]>,
}

/// The /proc/net tables of a network namespace, in [`TABLES`] order
/// (None: not there, such as tcp6 without IPv6).
pub type Tables = [Option<OwnedFd>; 4];

/// /proc/net's tables of bound sockets, in the order of [`Tables`].
pub const TABLES: [&str; 4] = ["tcp", "tcp6", "udp", "udp6"];

/// Open the tables of the calling task's network namespace (through
/// /proc/self: opened files stay bound to this namespace).
pub fn open_tables() -> Tables {
    TABLES.map(|t| {
        open(
            format!("/proc/self/net/{t}").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()
    })
}

/// What is reachable to the socket factory once confined: with `raw`,
/// CAP_NET_RAW in the namespace's user namespace (IP_TRANSPARENT and
/// SO_MARK need it), else no capability.
fn confine_factory(raw: bool) -> Result<(), String> {
    let filters = super::seccomp::compile_factory().map_err(|e| e.to_string())?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    let keep = raw.then_some(caps::Capability::CAP_NET_RAW);
    super::sandbox::drop_capabilities_but(keep).map_err(|e| e.to_string())?;
    filters.apply().map_err(|e| e.to_string())
}

/// In the factory: stdio from and to /dev/null (a caller waits for EOF on
/// the pipes it gave rlnet).
fn null_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// The factory's set-up after fork, inside the namespaces: "ok" and the
/// tables on `sock`, or the error text. Returns its /proc/self/smaps, opened
/// before confinement and read after the "ok" (not on rlnet's path to
/// ready), for [`os::drop_start_up`].
fn factory_start(
    ns: &NsHandles,
    sock: &OwnedFd,
    opts: FactoryOptions,
) -> Result<Option<std::fs::File>, String> {
    enter(ns)?;
    factory_setup(sock, opts)
}

/// [`factory_start`] once inside the namespaces.
fn factory_setup(sock: &OwnedFd, opts: FactoryOptions) -> Result<Option<std::fs::File>, String> {
    // Keep nothing of the parent's but our socketpair end.
    os::close_all_except(&[sock.as_raw_fd()]);
    null_stdio();
    let tables = if opts.tables {
        open_tables()
    } else {
        Default::default()
    };
    let smaps = os::own_smaps();
    let real = opts
        .real_addr
        .map_or([false; 2], super::netlink::real_address_routing);
    if opts.confine {
        confine_factory(real.contains(&true))?;
    }
    let mask: u8 = (0..4)
        .filter(|&i| tables[i].is_some())
        .map(|i| 1 << i)
        .sum();
    let real_mask = u8::from(real[0]) | u8::from(real[1]) << 1;
    let raw: Vec<RawFd> = tables.iter().flatten().map(|f| f.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&[b'o', b'k', mask, real_mask])],
        &cmsgs,
        MsgFlags::empty(),
        None,
    )
    .map(|_| smaps)
    .map_err(|e| e.to_string())
}

/// In the factory, after its set-up (`setup`): serve the sockets until
/// rlnet closes `sock` (true), or send the set-up's error (false).
fn be_factory(sock: &OwnedFd, setup: Result<Option<std::fs::File>, String>) -> bool {
    match setup {
        Ok(smaps) => {
            os::drop_start_up(smaps);
            serve_sockets(sock);
            true
        }
        Err(text) => {
            let _ = nix::unistd::write(sock, text.as_bytes());
            false
        }
    }
}

/// The parent's side of the start: the factory's "ok", tables and
/// real-address families, or its error.
fn factory_started(sock: &OwnedFd) -> Result<(Tables, [bool; 2]), NsError> {
    let mut buf = [0u8; 512];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("socket factory"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(sys("socket factory"))? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS just installed these fds; we own them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    let data = &buf[..n];
    if n != 4 || &data[..2] != b"ok" {
        return Err(NsError::Agent(String::from_utf8_lossy(data).into_owned()));
    }
    let mut tables: Tables = Default::default();
    let mut fds = fds.into_iter();
    for (i, t) in tables.iter_mut().enumerate() {
        if data[2] & (1 << i) != 0 {
            *t = fds.next();
        }
    }
    Ok((tables, [data[3] & 1 != 0, data[3] & 2 != 0]))
}

/// What to create: a TCP or UDP socket of the given family; with `real`, a
/// TCP socket that may bind a client's address (IP_TRANSPARENT) and is
/// marked [`super::netlink::REAL_ADDR_MARK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketKind {
    pub v6: bool,
    pub udp: bool,
    pub real: bool,
}

/// Most fds one SCM_RIGHTS message may carry is 253; stay well below.
pub const MAX_BATCH: usize = 64;

impl Factory {
    /// Fork the factory into `ns`. It sets itself up while the caller goes
    /// on (making the TAP, say); [`FactoryStart::finish`] waits for its word.
    pub fn start(ns: &NsHandles, opts: FactoryOptions) -> Result<FactoryStart, NsError> {
        let (ours, theirs) = fork_channel()?;
        // SAFETY: single-threaded (fork_channel checked); the child never
        // returns from this branch.
        match unsafe { fork() }.map_err(sys("fork"))? {
            ForkResult::Child => {
                drop(ours);
                os::die_with_parent();
                let served = be_factory(&theirs, factory_start(ns, &theirs, opts));
                os::exit_now(if served { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                drop(theirs);
                Ok(FactoryStart {
                    sock: ours,
                    pid: child,
                })
            }
        }
    }

    /// Start the factory process inside `ns` and wait until it is ready.
    pub fn spawn(ns: &NsHandles, opts: FactoryOptions) -> Result<Factory, NsError> {
        Self::start(ns, opts)?.finish()
    }

    /// The factory's process.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Whether it makes real-address sockets of the family.
    pub fn real_addr(&self, v6: bool) -> bool {
        self.real_addr[usize::from(v6)]
    }

    /// The namespace's /proc/net tables it opened (once).
    pub fn take_tables(&mut self) -> Tables {
        std::mem::take(&mut self.tables)
    }

    /// Up to `n` new non-blocking sockets created inside the namespace.
    pub fn sockets(&self, kind: SocketKind, n: usize) -> Result<Vec<OwnedFd>, NsError> {
        self.request(kind, n)?;
        let fds = self.receive(true)?.unwrap_or_default();
        if fds.is_empty() {
            return Err(NsError::Agent(
                "the socket factory could not create sockets".into(),
            ));
        }
        Ok(fds)
    }

    /// Ask for up to `n` sockets; [`Self::receive`] takes them, replies
    /// come in the order of the requests.
    pub fn request(&self, kind: SocketKind, n: usize) -> Result<(), NsError> {
        #[allow(clippy::cast_possible_truncation)] // MAX_BATCH (64) fits a u8
        let n = n.clamp(1, MAX_BATCH) as u8;
        let what = if kind.udp { 1 } else { 2 * u8::from(kind.real) };
        let req = [u8::from(kind.v6), what, n];
        nix::unistd::write(&self.sock, &req).map_err(sys("socket factory"))?;
        Ok(())
    }

    /// The sockets of the oldest request not yet received (empty if the
    /// factory could make none); `None` if `wait` is false and the reply
    /// has not come yet.
    pub fn receive(&self, wait: bool) -> Result<Option<Vec<OwnedFd>>, NsError> {
        let mut buf = [0u8; 8];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_BATCH]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = if wait {
            MsgFlags::MSG_CMSG_CLOEXEC
        } else {
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT
        };
        let msg = match recvmsg::<()>(self.sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
            Ok(m) => m,
            Err(nix::Error::EAGAIN) if !wait => return Ok(None),
            Err(e) => return Err(sys("socket factory")(e)),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(sys("socket factory"))? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                for fd in raw {
                    // SAFETY: SCM_RIGHTS just installed `fd`; we own it.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Ok(Some(fds))
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        // Closing our end makes the factory exit; reap it.
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let _ = waitpid(self.pid, None);
    }
}

/// The factory's loop: each request is [v6, what, count], what being 0
/// for TCP, 1 for UDP, 2 for real-address TCP; the reply carries the
/// sockets (or none, on error).
fn serve_sockets(sock: &OwnedFd) {
    use nix::sys::socket::{SockProtocol, socket};
    let mut req = [0u8; 3];
    loop {
        match nix::unistd::read(sock.as_fd(), &mut req) {
            Ok(3) => {}
            Err(nix::Error::EINTR) => continue,
            _ => return,
        }
        let family = if req[0] == 1 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let real = req[1] == 2;
        let (ty, proto) = if req[1] == 1 {
            (SockType::Datagram, SockProtocol::Udp)
        } else {
            (SockType::Stream, SockProtocol::Tcp)
        };
        let made: Vec<OwnedFd> = (0..usize::from(req[2]).min(MAX_BATCH))
            .map_while(|_| {
                let fd = socket(
                    family,
                    ty,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    proto,
                )
                .ok()?;
                if ty == SockType::Stream {
                    // Set here, off rlnet's path: system calls fewer per
                    // spliced connection there. SO_REUSEADDR: rlnet binds
                    // them to a port whose earlier connection may be in
                    // TIME_WAIT (see forward/publish.rs).
                    let _ = nix::sys::socket::setsockopt(
                        &fd,
                        nix::sys::socket::sockopt::TcpNoDelay,
                        &true,
                    );
                    let _ = nix::sys::socket::setsockopt(
                        &fd,
                        nix::sys::socket::sockopt::ReuseAddr,
                        &true,
                    );
                    // Its peer is a service in the namespace.
                    super::os::local_hop_congestion(fd.as_fd());
                }
                if real {
                    real_address_socket(&fd, req[0] == 1).ok()?;
                }
                Some(fd)
            })
            .collect();
        let raw: Vec<RawFd> = made.iter().map(|f| f.as_raw_fd()).collect();
        let cmsgs = if raw.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(&raw)]
        };
        let status = [u8::from(raw.is_empty())];
        if sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&status)],
            &cmsgs,
            MsgFlags::empty(),
            None,
        )
        .is_err()
        {
            return;
        }
    }
}

/// Let `fd` bind a client's address and mark what it sends, so that the
/// service's answers come back to it ([`super::netlink::real_address_routing`]).
fn real_address_socket(fd: &OwnedFd, v6: bool) -> std::io::Result<()> {
    let s = socket2::SockRef::from(fd);
    if v6 {
        s.set_ip_transparent_v6(true)?;
    } else {
        s.set_ip_transparent_v4(true)?;
    }
    s.set_mark(super::netlink::REAL_ADDR_MARK)
}

/// The process of `rlnet run`: a fresh user+network namespace, holding
/// COMMAND until rlnet has its network ready.
#[derive(Debug)]
pub struct RunChild {
    pub pid: Pid,
    pidfd: Option<OwnedFd>,
    go: Option<OwnedFd>,
}

impl RunChild {
    /// Let COMMAND start.
    pub fn go(&mut self) -> Result<(), NsError> {
        if let Some(go) = self.go.take() {
            nix::unistd::write(&go, b"g").map_err(sys("starting the command"))?;
        }
        Ok(())
    }

    /// The pidfd, for the event loop to watch (once).
    pub fn take_pidfd(&mut self) -> Option<OwnedFd> {
        self.pidfd.take()
    }

    /// Namespace handles of the child, for [`run_in`].
    pub fn handles(&self) -> Result<NsHandles, NsError> {
        let pid = self.pid.as_raw().cast_unsigned();
        let mut h = open_pid(pid)?;
        h.pidfd = None;
        Ok(h)
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        // Not started: closing the pipe makes the child exit on its own.
        if self.go.take().is_some() {
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Fork the `rlnet run` child: new user namespace (the caller mapped to
/// root, like `unshare -r`) and network namespace. It waits for
/// [`RunChild::go`] before exec'ing `argv`. With `resolv`, the child also
/// gets its own mount namespace in which /etc/resolv.conf has that content
/// (pointing at the DNS stub); the host's file is untouched.
///
/// With `parent_userns` (a kernel member of a named network: the network's
/// user namespace, U_net), the child first joins that user namespace and
/// creates its own as a child of it, mapping uid and gid 0 to 0 of U_net
/// (the caller, through U_net's map): U_net's root can then move a link into
/// the child's network namespace. The fd is not inherited by `argv`.
pub fn spawn_run(
    argv: &[String],
    resolv: Option<&str>,
    parent_userns: Option<&OwnedFd>,
) -> Result<RunChild, NsError> {
    if argv.is_empty() {
        return Err(NsError::EmptyCommand);
    }
    if !os::single_threaded() {
        return Err(NsError::Threads);
    }
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(OsStr::new(a).as_bytes()).map_err(|_| NsError::EmptyCommand))
        .collect::<Result<_, _>>()?;
    let (uid, gid) = (geteuid(), getegid());
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: single-threaded (checked above); the child only runs code in
    // this branch and ends in exec or exit_now.
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let ids = (uid.as_raw(), gid.as_raw());
            let parent = parent_userns.map(AsFd::as_fd);
            run_child(&cargs, &argv[0], (ids, parent), resolv, ready_w, go_r)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(go_r);
            await_run_child(child, ready_r, go_w)
        }
    }
}

/// The `rlnet run` child after fork: set up its namespaces, report on
/// `ready_w`, wait for the go on `go_r`, exec `cargs`. Never returns.
fn run_child(
    cargs: &[CString],
    argv0: &str,
    (ids, parent_userns): ((u32, u32), Option<BorrowedFd>),
    resolv: Option<&str>,
    ready_w: OwnedFd,
    go_r: OwnedFd,
) -> ! {
    os::die_with_parent();
    let setup = join_parent_userns(parent_userns, ids).and_then(|(uid, gid)| {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
            .map_err(|e| NsError::Unshare(e).to_string())
            .and_then(|()| write_id_maps(uid, gid))
    });
    if setup.is_ok()
        && let Some(text) = resolv
        && let Err(e) = private_resolv_conf(text)
    {
        // Name resolution then uses the host's file; say so, go on.
        eprintln!("rlnet: warning: COMMAND keeps the host's /etc/resolv.conf: {e}");
    }
    let report = match &setup {
        Ok(()) => b"ok".to_vec(),
        Err(text) => text.as_bytes().to_vec(),
    };
    let _ = nix::unistd::write(&ready_w, &report);
    drop(ready_w);
    if setup.is_err() {
        os::exit_now(1);
    }
    let mut b = [0u8; 1];
    match nix::unistd::read(go_r.as_fd(), &mut b) {
        Ok(1) => {}
        _ => os::exit_now(1),
    }
    drop(go_r);
    os::reset_signals_for_exec();
    let err = nix::unistd::execvp(&cargs[0], cargs).unwrap_err();
    eprintln!("rlnet: cannot run {argv0}: {err}");
    os::exit_now(if err == nix::Error::ENOENT { 127 } else { 126 })
}

/// In the `rlnet run` child: join `parent` (U_net), if given, and return
/// the ids to map to 0 in the child's own user namespace: the caller's
/// (`ids`) without a parent, else the child's ids inside U_net, taken
/// after the setns (0 and 0: the caller is root there).
fn join_parent_userns(parent: Option<BorrowedFd>, ids: (u32, u32)) -> Result<(u32, u32), String> {
    let Some(fd) = parent else {
        return Ok(ids);
    };
    // COMMAND must not hold U_net: close it at exec whatever the caller's
    // flags were.
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("cannot mark the network's user namespace fd close-on-exec: {e}"))?;
    setns(fd, CloneFlags::CLONE_NEWUSER).map_err(|e| {
        format!(
            "cannot join the network's user namespace: {e} (it must belong to the user \
             running rlnet, and rlnet must be single-threaded)"
        )
    })?;
    Ok((geteuid().as_raw(), getegid().as_raw()))
}

/// The parent's side: the child's report on `ready_r`, then its pidfd. On
/// failure the child is reaped (closing `go_w` makes it exit).
fn await_run_child(child: Pid, ready_r: OwnedFd, go_w: OwnedFd) -> Result<RunChild, NsError> {
    let mut buf = [0u8; 512];
    let n = read_all(&ready_r, &mut buf);
    let report = &buf[..n];
    if report != b"ok" {
        drop(go_w);
        let _ = waitpid(child, None);
        let text = String::from_utf8_lossy(report);
        return Err(NsError::Agent(if text.is_empty() {
            "the command's namespace could not be created".into()
        } else {
            text.into_owned()
        }));
    }
    let pidfd = match os::pidfd_open(child.as_raw()) {
        Ok(fd) => fd,
        Err(e) => {
            drop(go_w);
            let _ = waitpid(child, None);
            return Err(sys_io("pidfd_open")(e));
        }
    };
    Ok(RunChild {
        pid: child,
        pidfd: Some(pidfd),
        go: Some(go_w),
    })
}

/// In a new mount namespace, cover /etc/resolv.conf (or the file its
/// symlink points to) with a file holding `text`. The file is created in a
/// temporary directory, bind-mounted, and unlinked at once: nothing is left
/// behind, and the mount keeps it alive for COMMAND's lifetime.
fn private_resolv_conf(text: &str) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    super::sandbox::private_mount_namespace().map_err(|(what, e)| format!("{what}: {e}"))?;
    let dirs = [
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_default(),
        "/tmp".to_string(),
    ];
    let mut last = String::from("no usable temporary directory");
    for dir in dirs.iter().filter(|d| !d.is_empty()) {
        let path = format!("{dir}/.rlnet-resolv-{}", std::process::id());
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = written {
            last = format!("{path}: {e}");
            continue;
        }
        let bound = mount(
            Some(path.as_str()),
            "/etc/resolv.conf",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        );
        let _ = std::fs::remove_file(&path);
        return bound.map_err(|e| format!("bind /etc/resolv.conf: {e}"));
    }
    Err(last)
}

fn read_all(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd.as_fd(), &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        }
    }
    n
}

/// Asks a user namespace file for its parent user namespace (a new fd).
pub const NS_GET_PARENT: libc::Ioctl = 0xb702; // _IO(0xb7, 0x2)

/// Whether `child_userns` is a user namespace whose parent is `parent`
/// (compared by (st_dev, st_ino), so any handle on either will do). A
/// namespace whose parent lies outside the caller's user namespace (the
/// initial one, or one of another subtree) is no child of a namespace the
/// caller can name: `Ok(false)`. An fd that is not a user namespace is an
/// error (EINVAL or ENOTTY).
pub fn userns_is_child_of(child_userns: BorrowedFd, parent: BorrowedFd) -> nix::Result<bool> {
    // SAFETY: NS_GET_PARENT takes no argument; it only returns an int, on
    // success a new fd for the parent namespace that nothing else owns.
    let fd = unsafe { libc::ioctl(child_userns.as_raw_fd(), NS_GET_PARENT) };
    if fd < 0 {
        return match nix::Error::last() {
            nix::Error::EPERM => Ok(false),
            e => Err(e),
        };
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    let up = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(file_id(up.as_fd())? == file_id(parent)?)
}

/// A named network's own namespaces: a new user namespace (U_net, the
/// caller's uid and gid mapped to 0, setgroups denied, as `unshare -r`)
/// and a network namespace it owns (N_br). A forked child makes them and
/// exits once rlnet has opened its `ns/user` and `ns/net`: those nsfs fds
/// alone keep both alive, no process stays inside. Agents then work there
/// with [`spawn_in`]; `rlnet run` members are made children of U_net with
/// [`spawn_run`]. rlnet must be single-threaded.
pub fn create_network_ns() -> Result<NsHandles, NsError> {
    if !os::single_threaded() {
        return Err(NsError::Threads);
    }
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (done_r, done_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: single-threaded (checked above); the child only runs code in
    // this branch and ends in exit_now.
    match unsafe { fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop((ready_r, done_w));
            os::die_with_parent();
            let report = match unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET) {
                Err(e) => [b"u".as_slice(), &(e as i32).to_ne_bytes()].concat(),
                Ok(()) => match write_id_maps(uid, gid) {
                    Ok(()) => b"ok".to_vec(),
                    Err(text) => text.into_bytes(),
                },
            };
            let ok = report == b"ok";
            let _ = nix::unistd::write(&ready_w, &report);
            drop(ready_w);
            // Stay until the parent has opened our namespaces (or died).
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(done_r.as_fd(), &mut b);
            os::exit_now(if ok { 0 } else { 1 })
        }
        ForkResult::Parent { child } => {
            drop((ready_w, done_r));
            let mut buf = [0u8; 512];
            let n = read_all(&ready_r, &mut buf);
            let opened = network_ns_opened(child, &buf[..n]);
            drop(done_w);
            let _ = waitpid(child, None);
            opened
        }
    }
}

/// [`create_network_ns`]'s parent side: the child's report, then its
/// namespaces.
fn network_ns_opened(child: Pid, report: &[u8]) -> Result<NsHandles, NsError> {
    match report {
        b"ok" => {}
        [b'u', e @ ..] if e.len() == 4 => {
            let errno = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            return Err(NsError::Unshare(nix::Error::from_raw(errno)));
        }
        [] => {
            return Err(NsError::AgentDied(
                "the network's namespaces could not be created".into(),
            ));
        }
        text => return Err(NsError::Agent(String::from_utf8_lossy(text).into_owned())),
    }
    let open_ns = |kind: &str| {
        let path = format!("/proc/{child}/ns/{kind}");
        open_ro(Path::new(&path)).map_err(|err| NsError::Open { path, err })
    };
    let user = open_ns("user")?;
    let net = open_ns("net")?;
    Ok(NsHandles {
        user: Some(user),
        net,
        pidfd: None,
    })
}

fn write_id_maps(uid: u32, gid: u32) -> Result<(), String> {
    let w = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {path}: {e}"))
    };
    w("/proc/self/uid_map", format!("0 {uid} 1"))?;
    // Required before an unprivileged process may write gid_map.
    w("/proc/self/setgroups", "deny".into())?;
    w("/proc/self/gid_map", format!("0 {gid} 1"))
}
