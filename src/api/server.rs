//! The API socket's I/O: a unix stream socket served from the data-plane
//! loop without ever blocking it. One request per connection; each client
//! gets a size limit ([`MAX_REQUEST`]) and a deadline, and the socket file
//! is removed on a clean exit.
//!
//! Who may connect: rlnet's own user and root, as with slirp4netns (whose
//! socket anyone who can open it may use). The socket file is mode 0600, so
//! the kernel lets only those two through; the peer check refuses anyone
//! else should the mode have been widened.
//!
//! A new client never waits behind others: at most [`MAX_CLIENTS`] are
//! served at once, and when all slots are taken the client that has waited
//! longest without a complete request is dropped for the new one.
//!
//! Both keep working inside the sandbox: the socket's directory is
//! held open from bind time (the path no longer resolves after pivot_root),
//! and peers are compared with our uid as seen *now* (SO_PEERCRED reports
//! uids as seen from the reader's current user namespace, which the
//! sandbox may have changed).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use slab::Slab;
use thiserror::Error;

use super::request::{ApiError, Framing, MAX_REQUEST, Request, framing, parse_request};
use crate::config::AddrPlan;
use crate::sys::os::{self, FdReserve};

/// A client that has not sent a complete request by then is disconnected
/// (docs/api.md).
pub const CLIENT_DEADLINE_US: i64 = 5_000_000;
/// Clients served at once; a new one beyond this replaces the one that has
/// waited longest.
pub const MAX_CLIENTS: usize = 32;
/// Connections accepted per turn of the loop before other work gets one.
const ACCEPT_BATCH: usize = 64;
/// The uid the kernel reports for a peer that rlnet's user namespace does
/// not map (/proc/sys/kernel/overflowuid, 65534 unless changed).
const OVERFLOW_UID_DEFAULT: u32 = 65534;

#[derive(Debug, Error)]
pub enum ApiSocketError {
    #[error("API socket {0} is in use by a running process; stop it or choose another path")]
    InUse(String),
    #[error("API socket path {0} exists and is not a socket; remove it or choose another path")]
    NotSocket(String),
    #[error("cannot create API socket {path}: {err}")]
    Bind { path: String, err: io::Error },
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    /// When it was accepted: the oldest waiting client gives way first.
    since: i64,
    deadline: i64,
    /// Reply bytes not yet written (a full socket buffer).
    out: Vec<u8>,
    /// An fd to pass with the reply's first bytes (SCM_RIGHTS).
    fd: Option<OwnedFd>,
    answered: bool,
    /// The request is being carried out (an attach waits for its agent):
    /// nothing more is read, and the deadline no longer applies; the
    /// engine's own deadline bounds the wait.
    held: bool,
}

pub struct ApiServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Slab<Client>,
    /// The socket's directory (O_PATH) and the socket's name in it.
    dir: OwnedFd,
    name: OsString,
    /// How an unmapped peer's uid reads (see [`ApiServer::peer_allowed`]).
    overflow_uid: u32,
    /// Clients may be left in the listener's queue (the batch ran out).
    backlog: bool,
    reserve: FdReserve,
}

/// What the engine should do after an API event.
pub enum ApiEvent {
    /// Client `idx` asked for this; answer with [`ApiServer::reply`].
    Request(usize, Result<Request, ApiError>),
    Nothing,
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

impl ApiServer {
    /// Create the socket at `path` (mode 0600). A stale socket left by a
    /// killed process is replaced; a live one or another file is refused.
    pub fn bind(path: &Path) -> Result<ApiServer, ApiSocketError> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(ApiSocketError::NotSocket(show(path)));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ApiSocketError::InUse(show(path)));
            }
            let _ = std::fs::remove_file(path);
        }
        // The umask makes the socket 0600 from the moment it exists.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound.map_err(|err| ApiSocketError::Bind {
            path: show(path),
            err,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|err| {
            let _ = std::fs::remove_file(path);
            ApiSocketError::Bind {
                path: show(path),
                err: err.into(),
            }
        })?;
        Ok(ApiServer {
            listener,
            path: path.to_path_buf(),
            clients: Slab::new(),
            dir,
            name: path.file_name().unwrap_or(path.as_os_str()).to_os_string(),
            overflow_uid: std::fs::read_to_string("/proc/sys/kernel/overflowuid")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(OVERFLOW_UID_DEFAULT),
            backlog: false,
            reserve: FdReserve::new(),
        })
    }

    /// The directory fd the socket file is removed through at exit.
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    /// The listener is readable: accept what is queued (a batch of it; the
    /// rest on the next turn, see [`Self::has_backlog`]).
    pub fn accept(&mut self, registry: &Registry, token_of: impl Fn(usize) -> Token, now: i64) {
        self.backlog = false;
        for _ in 0..ACCEPT_BATCH {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if os::accept_retry(&e) => continue,
                Err(e) if os::out_of_fds(&e) => {
                    // Left queued, it would stall the listener (FdReserve).
                    crate::limited!(Warn, "API socket: {e}; a client was turned away");
                    match self.reserve.shed(|| self.listener.accept()) {
                        Ok(()) => continue,
                        Err(e) if os::accept_retry(&e) => continue,
                        Err(_) => return,
                    }
                }
                Err(e) => {
                    crate::limited!(Warn, "API socket: accept: {e}");
                    return;
                }
            };
            let peer =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials);
            if !peer.is_ok_and(|c| self.peer_allowed(c.uid())) {
                crate::limited!(Warn, "API socket: refused a client of another user");
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS && !self.evict_oldest(registry) {
                crate::limited!(Warn, "API socket: too many clients; one turned away");
                continue;
            }
            let entry = self.clients.vacant_entry();
            let mut c = Client {
                stream,
                buf: Vec::new(),
                since: now,
                deadline: now + CLIENT_DEADLINE_US,
                out: Vec::new(),
                fd: None,
                answered: false,
                held: false,
            };
            if registry
                .register(
                    &mut c.stream,
                    token_of(entry.key()),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok()
            {
                entry.insert(c);
            }
        }
        self.backlog = true;
    }

    /// True if the listener may still have clients queued: the loop should
    /// come back to [`Self::accept`] without sleeping.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// rlnet's own user and root; uids are as seen from rlnet's user
    /// namespace now. A peer that namespace does not map (host root, when
    /// rlnet runs in a user namespace or its sandbox) reads as the overflow
    /// uid, like every other unmapped user: it is let in while the socket
    /// file grants nothing to group and others, because then the kernel
    /// only let it connect as our user or with privilege over our user.
    fn peer_allowed(&self, uid: u32) -> bool {
        let own = nix::unistd::geteuid().as_raw();
        if uid == own || uid == 0 {
            return true;
        }
        uid == self.overflow_uid && self.file_is_private()
    }

    /// The socket file is still ours alone (mode 0600 or narrower).
    fn file_is_private(&self) -> bool {
        nix::sys::stat::fstatat(
            &self.dir,
            self.name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| st.st_mode & 0o077 == 0)
    }

    /// Drop the client that has waited longest for a request of its own
    /// (held ones are being answered); false when every slot is held.
    fn evict_oldest(&mut self, registry: &Registry) -> bool {
        let oldest = self
            .clients
            .iter()
            .filter(|(_, c)| !c.held)
            .min_by_key(|(_, c)| c.since)
            .map(|(i, _)| i);
        match oldest {
            Some(i) => {
                self.close(i, registry);
                true
            }
            None => false,
        }
    }

    /// A client is readable or writable.
    pub fn client_event(&mut self, idx: usize, registry: &Registry, plan: &AddrPlan) -> ApiEvent {
        let Some(c) = self.clients.get_mut(idx) else {
            return ApiEvent::Nothing;
        };
        if c.held {
            return ApiEvent::Nothing;
        }
        if c.answered {
            if flush(c) {
                self.close(idx, registry);
            }
            return ApiEvent::Nothing;
        }
        let mut eof = false;
        let mut chunk = [0u8; 1024];
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    // Keep at most MAX_REQUEST bytes; more means "too large".
                    let room = MAX_REQUEST.saturating_sub(c.buf.len());
                    c.buf.extend_from_slice(&chunk[..n.min(room)]);
                    if n > room || c.buf.len() >= MAX_REQUEST {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(idx, registry);
                    return ApiEvent::Nothing;
                }
            }
        }
        match framing(&c.buf) {
            Framing::TooLarge => ApiEvent::Request(idx, Err(ApiError::TooLarge)),
            Framing::Ready => ApiEvent::Request(idx, parse_request(&c.buf, plan)),
            Framing::NeedMore if eof => ApiEvent::Request(idx, parse_request(&c.buf, plan)),
            Framing::NeedMore => ApiEvent::Nothing,
        }
    }

    /// The request of client `idx` will be answered later, with
    /// [`Self::reply`]; until then the client is kept (and its slot with it).
    pub fn hold(&mut self, idx: usize) {
        if let Some(c) = self.clients.get_mut(idx) {
            c.held = true;
        }
    }

    /// Send the reply and close (once written).
    pub fn reply(&mut self, idx: usize, body: Vec<u8>, registry: &Registry) {
        self.reply_with(idx, body, None, registry);
    }

    /// [`Self::reply`], passing `fd` along with the reply's first bytes.
    pub fn reply_with(
        &mut self,
        idx: usize,
        body: Vec<u8>,
        fd: Option<OwnedFd>,
        registry: &Registry,
    ) {
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        c.held = false;
        c.answered = true;
        c.out = body;
        c.fd = fd;
        if flush(c) {
            self.close(idx, registry);
        }
    }

    fn close(&mut self, idx: usize, registry: &Registry) {
        if let Some(mut c) = self.clients.try_remove(idx) {
            let _ = c.stream.shutdown(Shutdown::Both);
            let _ = registry.deregister(&mut c.stream);
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.clients
            .iter()
            .filter(|(_, c)| !c.held)
            .map(|(_, c)| c.deadline)
            .min()
    }

    /// Disconnect clients past their deadline (a 1 byte/s trickler, an idle
    /// connection): they never hold up anything else.
    pub fn expire(&mut self, now: i64, registry: &Registry) {
        let late: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now && !c.held)
            .map(|(i, _)| i)
            .collect();
        for i in late {
            self.close(i, registry);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Write what is pending; true when all is written (or the client is gone).
fn flush(c: &mut Client) -> bool {
    while !c.out.is_empty() {
        let written = match c.fd.as_ref() {
            Some(fd) => os::send_fd(c.stream.as_fd(), &c.out, fd.as_fd()).map_err(io::Error::from),
            None => c.stream.write(&c.out),
        };
        if matches!(written, Ok(n) if n > 0) {
            // The fd went with these bytes.
            c.fd = None;
        }
        match written {
            Ok(0) => return true,
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = nix::unistd::unlinkat(
            &self.dir,
            self.name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
}
