//! The API socket's I/O: a unix stream socket served from the data-plane
//! loop without ever blocking it. One request per connection; each client
//! gets a size limit ([`MAX_REQUEST`]) and a deadline, other uids are
//! refused, and the socket file is removed on a clean exit.
//!
//! Both keep working inside `--enable-sandbox`: the socket's directory is
//! held open from bind time (the path no longer resolves after pivot_root),
//! and peers are compared with our uid as seen *now* (SO_PEERCRED reports
//! uids as seen from the reader's current user namespace, which the
//! sandbox may have changed).

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use slab::Slab;
use thiserror::Error;

use super::request::{ApiError, Framing, MAX_REQUEST, Request, framing, parse_request};
use crate::config::AddrPlan;

/// A client that has not sent a complete request by then is disconnected
/// (docs/api.md).
pub const CLIENT_DEADLINE_US: i64 = 5_000_000;
/// Clients served at once; more are turned away at accept.
const MAX_CLIENTS: usize = 32;

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
    deadline: i64,
    /// Reply bytes not yet written (a full socket buffer).
    out: Vec<u8>,
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
        })
    }

    /// The directory fd the socket file is removed through at exit.
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    /// The listener is readable: accept clients of our own uid.
    pub fn accept(&mut self, registry: &Registry, token_of: impl Fn(usize) -> Token, now: i64) {
        for _ in 0..MAX_CLIENTS {
            let (stream, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(_) => return,
            };
            let peer =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials);
            // Our uid in the same view as the peer's (see the module docs).
            if peer.map(|c| c.uid()) != Ok(nix::unistd::geteuid().as_raw()) {
                crate::limited!(Warn, "API socket: refused a client of another user");
                continue;
            }
            if self.clients.len() >= MAX_CLIENTS {
                crate::limited!(Warn, "API socket: too many clients; one turned away");
                continue;
            }
            let entry = self.clients.vacant_entry();
            let mut c = Client {
                stream,
                buf: Vec::new(),
                deadline: now + CLIENT_DEADLINE_US,
                out: Vec::new(),
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
        let Some(c) = self.clients.get_mut(idx) else {
            return;
        };
        c.held = false;
        c.answered = true;
        c.out = body;
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
        match c.stream.write(&c.out) {
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
