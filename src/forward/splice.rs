//! Published ports in splice mode: the host connection is joined to a socket
//! created inside the namespace, and bytes move between them with splice(2)
//! through a pipe per direction, never through userspace. The service sees
//! the connection coming from the namespace's own address.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use mio::net::TcpStream;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use socket2::SockRef;

/// Pipe capacity per direction: enough for several 64 KB segments in flight.
const PIPE_SIZE: usize = 256 * 1024;
/// Bytes moved per splice call.
const CHUNK: usize = PIPE_SIZE;
/// Empty pipes kept for reuse (saves two syscalls per direction per connection).
/// With no spliced connection open, rlnet holds at most this many pipes
/// (2 fds each); tests/e2e_publish.rs bounds its fds by it.
pub const POOL_MAX: usize = 64;

pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes sitting in the pipe.
    queued: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // 256 KiB fits an int.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let size = PIPE_SIZE as i32;
        // Best effort: the per-user pipe page budget may refuse it.
        let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(size));
        Ok(Pipe { r, w, queued: 0 })
    }
}

/// Reusable empty pipes.
#[derive(Default)]
pub struct PipePool {
    free: Vec<Pipe>,
}

impl PipePool {
    pub fn get(&mut self) -> io::Result<Pipe> {
        match self.free.pop() {
            Some(p) => Ok(p),
            None => Pipe::new(),
        }
    }

    /// Take a pipe back; only empty ones can be reused.
    pub fn put(&mut self, p: Pipe) {
        if p.queued == 0 && self.free.len() < POOL_MAX {
            self.free.push(p);
        }
    }
}

/// One end of a spliced connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Host,
    Ns,
}

struct Side {
    sock: TcpStream,
    readable: bool,
    writable: bool,
    /// Read returned 0: the peer sent FIN.
    eof: bool,
    /// We shut down our write side towards this peer.
    shut: bool,
}

impl Side {
    fn new(sock: TcpStream, ready: bool) -> Side {
        Side {
            sock,
            readable: ready,
            writable: ready,
            eof: false,
            shut: false,
        }
    }
}

pub struct SpliceConn {
    host: Side,
    ns: Side,
    /// host → namespace
    up: Pipe,
    /// namespace → host
    down: Pipe,
    connected: bool,
}

/// What the caller should do after servicing a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    Done,
}

enum Pump {
    Moved,
    Stuck,
    Failed,
}

/// Move bytes src → pipe → dst until one of them would block.
fn pump(src: &mut Side, pipe: &mut Pipe, dst: &mut Side) -> Pump {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let mut moved = false;
    for _ in 0..64 {
        if pipe.queued > 0 && dst.writable {
            match splice(
                pipe.r.as_fd(),
                None,
                dst.sock.as_fd(),
                None,
                pipe.queued,
                flags,
            ) {
                Ok(n) => {
                    pipe.queued -= n;
                    moved = true;
                    continue;
                }
                Err(nix::Error::EAGAIN) => dst.writable = false,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Pump::Failed,
            }
        }
        if pipe.queued < PIPE_SIZE && src.readable && !src.eof {
            match splice(src.sock.as_fd(), None, pipe.w.as_fd(), None, CHUNK, flags) {
                Ok(0) => src.eof = true,
                Ok(n) => {
                    pipe.queued += n;
                    moved = true;
                    continue;
                }
                Err(nix::Error::EAGAIN) => {
                    // Either the socket is empty or the pipe is full; only
                    // the former needs a new readiness edge.
                    if pipe.queued == 0 {
                        src.readable = false;
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Pump::Failed,
            }
        }
        break;
    }
    // Pass the FIN on once everything before it is delivered.
    if src.eof && pipe.queued == 0 && !dst.shut {
        dst.shut = true;
        let _ = dst.sock.shutdown(Shutdown::Write);
    }
    if moved { Pump::Moved } else { Pump::Stuck }
}

fn reset(sock: &TcpStream) {
    // Linger 0: close() sends RST, so the peer learns of the failure.
    let _ = SockRef::from(sock).set_linger(Some(Duration::ZERO));
}

impl SpliceConn {
    /// `host` is the accepted client connection; `ns` the socket with a
    /// non-blocking connect to the service already started: created inside
    /// the namespace (published ports), or on the host for pasta's `-T`
    /// (the client is then in the namespace).
    pub fn new(host: TcpStream, ns: TcpStream, pool: &mut PipePool) -> io::Result<SpliceConn> {
        let up = pool.get()?;
        let down = match pool.get() {
            Ok(p) => p,
            Err(e) => {
                pool.put(up);
                return Err(e);
            }
        };
        Ok(SpliceConn {
            host: Side::new(host, true),
            ns: Side::new(ns, false),
            up,
            down,
            connected: false,
        })
    }

    pub fn socket_mut(&mut self, end: End) -> &mut TcpStream {
        match end {
            End::Host => &mut self.host.sock,
            End::Ns => &mut self.ns.sock,
        }
    }

    pub fn ready(&mut self, end: End, readable: bool, writable: bool) {
        let side = match end {
            End::Host => &mut self.host,
            End::Ns => &mut self.ns,
        };
        side.readable |= readable;
        side.writable |= writable;
    }

    pub fn service(&mut self) -> Outcome {
        if !self.connected {
            if !self.ns.writable {
                // Meanwhile buffer what the client sends (up to a pipe's worth).
                return match pump(&mut self.host, &mut self.up, &mut self.ns) {
                    Pump::Failed => self.fail(),
                    _ => Outcome::Keep,
                };
            }
            match self.ns.sock.take_error() {
                Ok(None) if self.ns.sock.peer_addr().is_ok() => self.connected = true,
                Ok(None) => {
                    self.ns.writable = false;
                    return Outcome::Keep;
                }
                // Refused inside the namespace: the client gets a reset.
                _ => return self.fail(),
            }
        }
        for _ in 0..4 {
            let up = pump(&mut self.host, &mut self.up, &mut self.ns);
            let down = pump(&mut self.ns, &mut self.down, &mut self.host);
            match (up, down) {
                (Pump::Failed, _) | (_, Pump::Failed) => return self.fail(),
                (Pump::Stuck, Pump::Stuck) => break,
                _ => {}
            }
        }
        if self.host.eof && self.ns.eof && self.up.queued == 0 && self.down.queued == 0 {
            return Outcome::Done;
        }
        Outcome::Keep
    }

    fn fail(&mut self) -> Outcome {
        reset(&self.host.sock);
        reset(&self.ns.sock);
        Outcome::Done
    }

    /// Give the pipes back (the caller deregisters the sockets).
    pub fn finish(self, pool: &mut PipePool) -> (TcpStream, TcpStream) {
        pool.put(self.up);
        pool.put(self.down);
        (self.host.sock, self.ns.sock)
    }
}
