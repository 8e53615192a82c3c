//! Process-level plumbing: resource limits, allocator tuning, pidfds,
//! signals as an fd, the ready/exit fd contract.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// One `recvmsg` on `sock` into `buf`: the bytes read and the first fd
/// the message carried (SCM_RIGHTS, close-on-exec); any more are closed.
pub fn recv_fd(
    sock: BorrowedFd,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Option<OwnedFd>)> {
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | flags,
    )?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: SCM_RIGHTS just installed `raw` in our table; we
                // are its only owner.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if fd.is_none() {
                    fd = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, fd))
}

/// One `sendmsg` of `bytes` on `sock` with `fd` passed along (SCM_RIGHTS).
pub fn send_fd(sock: BorrowedFd, bytes: &[u8], fd: BorrowedFd) -> nix::Result<usize> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[io::IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
}

/// The congestion control of a TCP socket whose peer is on this machine
/// (loopback, or inside the namespace): Reno, which every kernel has and
/// lets any user pick. A host whose default is BBR otherwise paces such a
/// connection from timers that fire on any CPU, so its segments reach the
/// peer out of order over loopback and some are sent twice; Reno sends only
/// as ACKs come and the application writes. Best effort: a kernel that
/// refuses leaves the default.
pub fn local_hop_congestion(sock: BorrowedFd) {
    let _ = socket2::SockRef::from(&sock).set_tcp_congestion(b"reno");
}

/// Raise the soft RLIMIT_NOFILE to the hard limit: every flow costs an fd,
/// and the common soft default of 1024 is what makes slirp4netns stall.
pub fn raise_nofile_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// Serve every allocation of 128 KiB or more (the per-flow socket buffers)
/// with its own mapping, returned to the kernel on free. glibc otherwise
/// raises the threshold after the first free and keeps freed buffers in the
/// heap, so RSS would never come back down after a burst of connections.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// True when the calling process has exactly one thread. fork() and
/// setns(CLONE_NEWUSER) are only sound (or allowed) then.
pub fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count() == 1)
        .unwrap_or(false)
}

/// `pidfd_open(2)`: a handle on the process that can't be confused by PID
/// reuse; it becomes readable when the process exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success the kernel
    // returns a new fd that nothing else owns.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel returns an int-sized fd widened to a long.
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` is a fresh, valid descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// True when the process behind `pidfd` has exited.
pub fn pidfd_exited(pidfd: &OwnedFd) -> bool {
    pidfd_wait(pidfd, std::time::Duration::ZERO)
}

/// Waits up to `timeout` for the process behind `pidfd` to exit; true if
/// it has.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = nix::poll::PollTimeout::try_from(left.as_millis().min(60_000) as i32)
            .unwrap_or(nix::poll::PollTimeout::ZERO);
        let mut fds = [nix::poll::PollFd::new(
            pidfd_borrow(pidfd),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ if left.is_zero() => return false,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

fn pidfd_borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// The signals rlnet handles in its event loop (blocked, read via signalfd).
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}

/// Block the handled signals and return a signalfd for them. Children must
/// call [`reset_signals_for_exec`] before exec, since masks are inherited.
pub fn signal_fd() -> io::Result<SignalFd> {
    let set = handled_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(io::Error::from)
}

/// In a child about to exec: an empty signal mask and default dispositions
/// for the signals a parent might have changed.
pub fn reset_signals_for_exec() {
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for s in [
        Signal::SIGPIPE,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        // SAFETY: restoring the default disposition installs no handler code.
        unsafe {
            let _ = nix::sys::signal::signal(s, nix::sys::signal::SigHandler::SigDfl);
        }
    }
}

/// Ask the kernel to SIGKILL us when the parent dies (agents, run children).
pub fn die_with_parent() {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
}

/// Where a process about to fork runs and may run: the CPU and the set of
/// CPUs, for [`Spread`].
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    all: nix::sched::CpuSet,
    others: nix::sched::CpuSet,
}

impl Spread {
    /// Taken in the parent right before fork(); None if the process may
    /// use one CPU only (or the calls failed).
    pub fn here() -> Option<Spread> {
        use nix::sched::{CpuSet, sched_getaffinity, sched_getcpu};
        let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let mut others = all;
        others.unset(sched_getcpu().ok()?).ok()?;
        (0..CpuSet::count())
            .any(|c| others.is_set(c).unwrap_or(false))
            .then_some(Spread { all, others })
    }

    /// Keep `pid` (the child, or 0 for the caller) off the parent's CPU.
    /// A new child runs on its parent's CPU, and a runnable process is
    /// moved to an idle CPU only at a scheduler tick: measured at start-up,
    /// rlnet and its TAP agent took turns on one vCPU while the other
    /// idled. Both sides call this (whichever runs first).
    pub fn off_parent(&self, pid: Pid) {
        let _ = nix::sched::sched_setaffinity(pid, &self.others);
    }

    /// Give the caller every CPU back.
    pub fn anywhere(&self) {
        let _ = nix::sched::sched_setaffinity(Pid::from_raw(0), &self.all);
    }
}

/// Take ownership of an fd number handed to us on the command line, if it
/// is open.
pub fn take_inherited_fd(fd: RawFd) -> Option<OwnedFd> {
    // Raw fcntl: nix's takes a borrowed fd, which cannot soundly be made for
    // a number that may be closed.
    // SAFETY: F_GETFD only queries flags; it fails with EBADF for closed fds.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    if !open {
        return None;
    }
    // SAFETY: the fd is open, was given to us by the caller for exactly this
    // use, and nothing else in rlnet refers to it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `--ready-fd`: write "1" and close. Errors are ignored, as slirp4netns does
/// (a closed pipe just means nobody waits).
pub fn signal_ready(fd: OwnedFd) {
    while let Err(nix::Error::EINTR) = nix::unistd::write(&fd, b"1") {}
}

/// Close every fd except stdio and `keep` (negative numbers mean none).
/// Callers: a long-lived forked helper, which must not hold copies of the
/// parent's sockets (a copy of a host connection would keep it open after
/// the parent closed it; a listener would stay bound); and `--enable-sandbox`
/// at start-up, before rlnet opens anything, keeping the ready and exit fds
/// (an inherited directory fd would reach around the new root, and callers
/// are known to leak fds: passt closes them for the same reason).
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from = 3;
    for k in keep {
        if from < k {
            close_range(from, k - 1);
        }
        match k.checked_add(1) {
            Some(next) => from = next,
            None => return,
        }
    }
    close_range(from, RawFd::MAX);
}

fn close_range(first: RawFd, last: RawFd) {
    // SAFETY: close_range takes integer arguments. The callers own the fd
    // table: a single-threaded forked child, or start-up before rlnet has
    // opened anything, so no live owner of these fds exists.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first.cast_unsigned(),
            last.cast_unsigned(),
            0,
        );
    }
}

/// fork(2), only while single-threaded (so the child may run ordinary Rust
/// code). `None` in the child, the child's PID in the parent.
pub fn fork() -> nix::Result<Option<nix::unistd::Pid>> {
    if !single_threaded() {
        return Err(nix::Error::EINVAL);
    }
    // SAFETY: the process has one thread (checked above), so no lock can be
    // held by a thread that does not exist in the child.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

/// A daemon's stdio: stdin from /dev/null, stdout and stderr appended to
/// `log` (created 0600). Failures leave stdio as it was.
pub fn redirect_stdio(log: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
    {
        let _ = nix::unistd::dup2_stdout(&f);
        let _ = nix::unistd::dup2_stderr(&f);
    }
}

/// A daemon's stdio, opened while the filesystem is still visible (before
/// the sandbox): /dev/null, and the log file if there is one.
#[derive(Debug)]
pub struct DaemonStdio {
    null: std::fs::File,
    log: Option<std::fs::File>,
}

impl DaemonStdio {
    /// `log` is appended to (created 0600).
    pub fn open(log: Option<&std::path::Path>) -> io::Result<DaemonStdio> {
        use std::os::unix::fs::OpenOptionsExt;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        let log = match log {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?,
            ),
            None => None,
        };
        Ok(DaemonStdio { null, log })
    }

    /// stdin from /dev/null, stdout and stderr to the log file (else
    /// /dev/null): no descriptor of the caller's stays open.
    pub fn apply(self) {
        let _ = nix::unistd::dup2_stdin(&self.null);
        let out = self.log.as_ref().unwrap_or(&self.null);
        let _ = nix::unistd::dup2_stdout(out);
        let _ = nix::unistd::dup2_stderr(out);
    }

    /// Only the log file (a foreground rlnet keeps its stdin and stdout).
    pub fn apply_log(self) {
        if let Some(log) = &self.log {
            let _ = nix::unistd::dup2_stderr(log);
        }
    }
}

/// Leave the caller's session and process group (a daemon must not get
/// the caller's terminal signals or be killed with its process group).
pub fn new_session() {
    let _ = nix::unistd::setsid();
}

/// Exit immediately without running destructors or atexit handlers (used in
/// forked children that must not touch the parent's state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// `IP_BIND_ADDRESS_NO_PORT`: bind only the source address now and pick the
/// port at connect time, so `--outbound-addr` doesn't exhaust ports early.
pub fn bind_address_no_port(sock: &socket2::Socket) {
    let _ =
        nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::IpBindAddressNoPort, &true);
}

/// One `sendmsg` of `data` as datagrams of `seg` bytes each (the last may
/// be shorter): UDP_SEGMENT, Linux 4.18+.
pub fn send_segments(sock: &impl AsRawFd, data: &[u8], seg: u16) -> io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [io::IoSlice::new(data)];
    let cmsg = [ControlMessage::UdpGsoSegments(&seg)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_DONTWAIT, None)
        .map_err(io::Error::from)
}

/// A non-blocking `send` on a socket known only by number: the direct
/// receive path of a TCP flow (`nat::tcp`) writes from inside smoltcp, where
/// the flow's own socket object can't be borrowed. Returns the bytes taken;
/// any error counts as 0, and the buffered path that follows sees it again.
pub fn send_some(fd: RawFd, data: &[u8]) -> usize {
    use nix::sys::socket::{MsgFlags, send};
    // The fd is only a number to the kernel (a stale one fails with EBADF),
    // and callers clear the hook before closing the socket.
    send(fd, data, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL).unwrap_or(0)
}

/// One descriptor held in reserve for listeners: when accept(2) fails with
/// EMFILE/ENFILE, the pending connection can't be taken, so it would sit in
/// the listen queue, and with edge-triggered readiness the listener would
/// never be woken again once the queue is full (a new SYN is dropped, not
/// queued). Releasing the reserve lets the listener take that connection
/// and close it at once: the queue drains, the client learns at once, and
/// the next connection after fds free up is accepted normally.
///
/// The reserve is a unix datagram socket: socket(2) works inside the
/// sandbox and under the seccomp filter, where no file can be opened.
#[derive(Debug)]
pub struct FdReserve(Option<OwnedFd>);

impl FdReserve {
    pub fn new() -> FdReserve {
        FdReserve(spare_fd())
    }

    /// Take one connection with `accept` while out of descriptors and
    /// close it at once. `accept`'s error (WouldBlock: the queue is empty)
    /// is returned as is; the caller's loop decides when to stop.
    pub fn shed<T>(&mut self, accept: impl FnOnce() -> io::Result<T>) -> io::Result<()> {
        if self.0.is_none() {
            // Made at start; lost only if re-taking it failed last time.
            self.0 = spare_fd();
        }
        if self.0.take().is_none() {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        let got = accept().map(drop);
        self.0 = spare_fd();
        got
    }
}

impl Default for FdReserve {
    fn default() -> Self {
        FdReserve::new()
    }
}

fn spare_fd() -> Option<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()
}

/// True for accept(2) errors that mean "no descriptor for it now".
pub fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// True for accept(2) errors about one connection only (it was aborted
/// while queued, a signal came): the next one may still be taken.
pub fn accept_retry(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED) | Some(libc::EINTR) | Some(libc::EPROTO) | Some(libc::EPERM)
    )
}

/// The pipe capacity (pages) rlnet lets itself hold for spliced
/// connections: a quarter of the user's soft limit
/// (`fs.pipe-user-pages-soft`, read once at start), which the user's other
/// programs share; None when there is no limit (0) or it cannot be read.
pub fn pipe_budget_pages() -> Option<usize> {
    let soft: usize = std::fs::read_to_string("/proc/sys/fs/pipe-user-pages-soft")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (soft > 0).then_some(soft / 4)
}

/// This process's /proc/self/smaps, opened now to be read later by
/// [`drop_start_up`]: once confined, /proc may be out of reach and
/// opening files forbidden. None if it cannot be opened (the drop is advice).
pub fn own_smaps() -> Option<std::fs::File> {
    std::fs::File::open("/proc/self/smaps").ok()
}

/// The clean file mappings of this process, from its smaps (see
/// [`drop_mappings`]), read right before the drop (rlnet: a moment after
/// the ready word, [`drop_start_up`]; the socket factory: right after its
/// word): nothing may be unmapped and mapped again in a range between this
/// read and the drop. Read with read(2) alone, so it may run under a
/// seccomp filter that kills on anything else; the file is closed on
/// return.
fn clean_file_mappings(smaps: Option<std::fs::File>) -> Vec<(usize, usize)> {
    use std::io::Read;
    let Some(mut smaps) = smaps else {
        return Vec::new();
    };
    let mut text = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match smaps.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Vec::new(),
        }
    }
    clean_file_ranges(&String::from_utf8_lossy(&text))
}

/// How long after the ready word rlnet drops its start-up code
/// ([`drop_start_up`]): reading smaps takes ~0.5 ms, which the first
/// connections after ready (a caller's readiness probe) should not wait for.
pub const DROP_START_UP_AFTER: std::time::Duration = std::time::Duration::from_millis(20);

/// [`drop_mappings`] of [`clean_file_mappings`]: read and dropped at once,
/// so no range can change in between.
pub fn drop_start_up(smaps: Option<std::fs::File>) {
    drop_mappings(&clean_file_mappings(smaps));
}

/// Unmap the clean file pages this process has faulted in: code and
/// read-only data of rlnet and its libraries, which stay in the page cache,
/// shared with rlnet. Start-up (argument parsing, netlink, the namespace's
/// set-up) runs code the loop never runs again: once ready, rlnet and the
/// socket factory (a fork, which would otherwise count its parent's image a
/// second time) drop it, and the loop refaults the few pages it runs.
/// `ranges` come from [`clean_file_mappings`]: mappings that are not
/// writable cannot gain a copied page since. Advice only: failures are
/// ignored.
fn drop_mappings(ranges: &[(usize, usize)]) {
    for &(start, len) in ranges {
        // SAFETY: MADV_DONTNEED on a private file mapping that is not
        // writable and holds no anonymous (written, copied) page only drops
        // page-table entries: the next access refaults the same bytes
        // from the file. Mappings with copied pages (RELRO after
        // relocation, breakpoints) are skipped, as their copies would be lost.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// The (start, length) of every file-backed mapping in a /proc/PID/smaps
/// text that is not writable and has no anonymous page.
fn clean_file_ranges(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping being read: its range, if it qualifies so far.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            let anon = kb.trim().trim_end_matches("kB").trim() != "0";
            if let Some(r) = current.take().filter(|_| !anon) {
                out.push(r);
            }
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // A header line: range, perms, offset, device, inode, path.
        let path = f.nth(3).unwrap_or("");
        current = (path.starts_with('/') && !perms.contains('w') && b > a).then_some((a, b - a));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn reserve_sheds_one_connection_and_is_taken_again() {
        let dir = std::env::temp_dir().join(format!("rlnet-reserve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let mut reserve = FdReserve::new();
        assert!(reserve.0.is_some());
        let mut client = UnixStream::connect(&path).unwrap();
        reserve.shed(|| listener.accept()).unwrap();
        assert!(reserve.0.is_some(), "the reserve was not taken again");
        // The client sees its connection closed, not a hang.
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(client.read(&mut buf).unwrap(), 0);
        // An empty queue: accept's own error comes back.
        let e = reserve.shed(|| listener.accept()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(reserve.0.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn accept_errors_are_classified() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert!(out_of_fds(&e(libc::EMFILE)) && out_of_fds(&e(libc::ENFILE)));
        assert!(!out_of_fds(&e(libc::EAGAIN)));
        assert!(accept_retry(&e(libc::ECONNABORTED)) && !accept_retry(&e(libc::EMFILE)));
    }

    #[test]
    fn clean_file_ranges_keeps_only_unwritten_read_only_file_mappings() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1234 /usr/bin/rlnet
Size:               1024 kB
Anonymous:             0 kB
55d0a0100000-55d0a0300000 r-xp 00100000 fd:01 1234 /usr/bin/rlnet
Size:               2048 kB
Anonymous:             0 kB
55d0a0300000-55d0a0310000 r--p 00300000 fd:01 1234 /usr/bin/rlnet
Anonymous:            64 kB
55d0a0310000-55d0a0320000 rw-p 00310000 fd:01 1234 /usr/bin/rlnet
Anonymous:             0 kB
55d0a1000000-55d0a1021000 rw-p 00000000 00:00 0 [heap]
Anonymous:           132 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(
            clean_file_ranges(smaps),
            vec![
                (0x55d0_a000_0000, 0x10_0000),
                (0x55d0_a010_0000, 0x20_0000),
                (0x7f00_0000_0000, 0x1000),
            ]
        );
        // A header without its Anonymous line (cut short) is not taken.
        assert!(clean_file_ranges("7f0000000000-7f0000001000 r-xp 0 fd:01 9 /lib/x").is_empty());
    }
}
