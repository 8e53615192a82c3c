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

/// Pipe capacities tried per direction, largest first: a bigger pipe moves
/// more per splice call (fewer calls and wakeups per GB). 1 MiB is the
/// default `fs.pipe-max-size` an unprivileged process may ask for; when the
/// per-user pipe budget refuses it, the next size is tried, and the kernel's
/// default (64 KiB) is kept when all are refused.
const PIPE_SIZES: [usize; 2] = [1024 * 1024, 256 * 1024];
/// The kernel's default pipe capacity, in pages.
const DEFAULT_PIPE_PAGES: usize = 16;
/// Empty pipes kept for reuse (saves two syscalls per direction per connection).
/// With no spliced connection open, rlnet holds at most this many pipes
/// (2 fds each); tests/e2e_publish.rs bounds its fds by it.
pub const POOL_MAX: usize = 64;

pub struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    /// Bytes sitting in the pipe.
    queued: usize,
    /// Capacity in bytes.
    cap: usize,
    /// Capacity in buffers (pages): a splice into the pipe also stops when
    /// they run out, whatever the bytes.
    slots: usize,
    /// The last read nearly filled the pipe: the source has more, so the
    /// write tells TCP so (SPLICE_F_MORE, as MSG_MORE) and it builds full
    /// segments instead of sending the pipe's tail as a short one.
    more: bool,
}

impl Pipe {
    /// A pipe of the largest of [`PIPE_SIZES`] that fits in `max_pages`
    /// (any, with None), else of the kernel's default size.
    fn new(max_pages: Option<usize>) -> io::Result<Pipe> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let mut cap = None;
        let fits = |bytes: usize| max_pages.is_none_or(|m| bytes / page_size() <= m);
        for want in PIPE_SIZES.into_iter().filter(|&b| fits(b)) {
            let Ok(want) = i32::try_from(want) else {
                continue;
            };
            // The budget may refuse it; the kernel answers the size it set.
            if let Ok(got) = fcntl(&w, FcntlArg::F_SETPIPE_SZ(want)) {
                cap = usize::try_from(got).ok();
                break;
            }
        }
        let cap = match cap {
            Some(c) => c,
            None => usize::try_from(fcntl(&w, FcntlArg::F_GETPIPE_SZ)?).unwrap_or(0),
        };
        let slots = cap / page_size();
        Ok(Pipe {
            r,
            w,
            queued: 0,
            cap,
            slots,
            more: false,
        })
    }
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// Whether a read of `got` bytes into a pipe that was empty shows the socket
/// drained, so that the read which would only say EAGAIN can be skipped (one
/// syscall of three per direction of a request/response). It does when the
/// read stopped short of both of the pipe's limits: fewer bytes than asked,
/// and fewer bytes than the pipe has buffers (each buffer holds at least one
/// byte, so the buffers did not run out either). Edge-triggered readiness
/// reports data that arrives later. A FIN or error already reported with the
/// event gets no further edge, so then the caller reads on until EOF/EAGAIN.
fn drained(was_empty: bool, got: usize, asked: usize, slots: usize, closed_seen: bool) -> bool {
    was_empty && !closed_seen && got < asked && got < slots
}

/// Reusable empty pipes, and the pages of every pipe rlnet holds: the
/// kernel counts pipe capacity per user (`fs.pipe-user-pages-soft`, 16,384
/// pages by default), and once a user is over it, every new pipe of theirs
/// (rlnet's, and their other programs') gets 2 pages.
#[derive(Default)]
pub struct PipePool {
    free: Vec<Pipe>,
    /// Capacity of the pipes rlnet holds (free or in use), in pages.
    live_pages: usize,
    /// What rlnet lets itself hold (None: no limit).
    budget_pages: Option<usize>,
}

impl PipePool {
    /// `budget_pages`: at most this much pipe capacity, a share of the
    /// user's soft limit ([`crate::sys::os::pipe_budget_pages`]).
    pub fn new(budget_pages: Option<usize>) -> PipePool {
        PipePool {
            budget_pages,
            ..PipePool::default()
        }
    }

    /// A free pipe, or a new one as large as the budget allows (the
    /// kernel's default size once it is spent).
    pub fn get(&mut self) -> io::Result<Pipe> {
        if let Some(p) = self.free.pop() {
            return Ok(p);
        }
        let left = self.budget_pages.map(|b| b.saturating_sub(self.live_pages));
        let p = Pipe::new(left)?;
        self.live_pages += p.slots;
        Ok(p)
    }

    /// True if two more pipes of at least the kernel's default size fit in
    /// the budget (a connection's worth), or free ones wait.
    pub fn has_room_for_two(&self) -> bool {
        let new = 2usize.saturating_sub(self.free.len());
        self.budget_pages
            .is_none_or(|b| self.live_pages + new * DEFAULT_PIPE_PAGES <= b)
    }

    /// Take a pipe back; only empty ones can be reused.
    pub fn put(&mut self, p: Pipe) {
        if p.queued == 0 && self.free.len() < POOL_MAX {
            self.free.push(p);
        } else {
            self.live_pages = self.live_pages.saturating_sub(p.slots);
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
    /// An event reported a FIN or an error: read until EOF/EAGAIN.
    closed: bool,
}

impl Side {
    fn new(sock: TcpStream, ready: bool) -> Side {
        Side {
            sock,
            readable: ready,
            writable: ready,
            eof: false,
            shut: false,
            closed: false,
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
    /// Bytes delivered either way, for the loop's idea of how busy it is.
    moved: u64,
    /// Read nothing from the client before the connection is made (so the
    /// client can still be handed to another path).
    hold: bool,
    /// Ends (Host, Ns) whose readiness to read is not watched at the moment
    /// ([`SpliceConn::read_interest`]).
    unwatched: [bool; 2],
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

/// Move bytes src → pipe → dst until one of them would block;
/// `moved_bytes` counts the bytes delivered to dst.
fn pump(src: &mut Side, pipe: &mut Pipe, dst: &mut Side, moved_bytes: &mut u64) -> Pump {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    let mut moved = false;
    for _ in 0..64 {
        if pipe.queued > 0 && dst.writable {
            let flags = if pipe.more {
                flags | SpliceFFlags::SPLICE_F_MORE
            } else {
                flags
            };
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
                    *moved_bytes += n as u64;
                    moved = true;
                    continue;
                }
                Err(nix::Error::EAGAIN) => dst.writable = false,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Pump::Failed,
            }
        }
        // While the destination refuses more, what the pipe holds is
        // enough: the source's bytes wait in its socket and are read in
        // one large piece once the destination takes data again (small
        // reads as each segment arrives would cost a splice and a window
        // update, an ACK, apiece).
        let room = dst.writable || pipe.queued == 0;
        if room && pipe.queued < pipe.cap && src.readable && !src.eof {
            let asked = pipe.cap - pipe.queued;
            let was_empty = pipe.queued == 0;
            match splice(src.sock.as_fd(), None, pipe.w.as_fd(), None, asked, flags) {
                Ok(0) => {
                    src.eof = true;
                    pipe.more = false;
                }
                Ok(n) => {
                    pipe.queued += n;
                    let empty = drained(was_empty, n, asked, pipe.slots, src.closed);
                    pipe.more = !empty && n >= asked / 10 * 9;
                    if empty {
                        src.readable = false;
                    }
                    moved = true;
                    continue;
                }
                Err(nix::Error::EAGAIN) => {
                    // Either the socket is empty or the pipe is full; only
                    // the former needs a new readiness edge.
                    if pipe.queued == 0 {
                        src.readable = false;
                        pipe.more = false;
                    }
                }
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Pump::Failed,
            }
        }
        break;
    }
    // Pass the FIN on once everything before it is delivered. When the
    // destination has sent its own FIN, everything it sent was read (EOF),
    // so close(2), which ends the connection as soon as the other pipe is
    // empty too, sends the FIN: no shutdown(2) first.
    if src.eof && pipe.queued == 0 && !dst.shut {
        dst.shut = true;
        if !dst.eof {
            let _ = dst.sock.shutdown(Shutdown::Write);
        }
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
    /// (the client is then in the namespace). `hold`: read nothing from
    /// the client until connected.
    pub fn new(
        host: TcpStream,
        ns: TcpStream,
        hold: bool,
        pool: &mut PipePool,
    ) -> io::Result<SpliceConn> {
        let up = pool.get()?;
        let down = match pool.get() {
            Ok(p) => p,
            Err(e) => {
                pool.put(up);
                return Err(e);
            }
        };
        // A local service's handshake completes inside connect(2) (the
        // loopback device delivers at once): then splice from the first
        // turn, not after a wait for epoll to report the socket writable.
        let connected = ns.peer_addr().is_ok();
        let mut ns = Side::new(ns, false);
        ns.writable = connected;
        Ok(SpliceConn {
            host: Side::new(host, true),
            ns,
            up,
            down,
            connected,
            moved: 0,
            hold,
            unwatched: [false; 2],
        })
    }

    /// The connection to the service is made.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Bytes delivered so far, both ways.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    pub fn socket_mut(&mut self, end: End) -> &mut TcpStream {
        match end {
            End::Host => &mut self.host.sock,
            End::Ns => &mut self.ns.sock,
        }
    }

    /// Whether `end`'s readiness to read should be watched, when that
    /// changes (and then it is taken as done): not while what the end sent
    /// fills its pipe and the other end takes no more. Its bytes wait in its
    /// socket meanwhile, and each segment arriving would otherwise wake
    /// the loop for nothing; the other end's readiness to write ends the
    /// wait. Readiness to write is always watched.
    pub fn read_interest(&mut self, end: End) -> Option<bool> {
        let (pipe, dst, i) = match end {
            End::Host => (&self.up, &self.ns, 0),
            End::Ns => (&self.down, &self.host, 1),
        };
        let watch = !(self.connected && pipe.queued > 0 && !dst.writable);
        (watch == self.unwatched[i]).then(|| {
            self.unwatched[i] = !watch;
            watch
        })
    }

    /// Readiness of one end; `closed`: the event reported a FIN or an error.
    pub fn ready(&mut self, end: End, readable: bool, writable: bool, closed: bool) {
        let side = match end {
            End::Host => &mut self.host,
            End::Ns => &mut self.ns,
        };
        side.readable |= readable || closed;
        side.writable |= writable;
        side.closed |= closed;
    }

    pub fn service(&mut self) -> Outcome {
        if !self.connected {
            if !self.ns.writable {
                if self.hold {
                    return Outcome::Keep;
                }
                // Meanwhile buffer what the client sends (up to a pipe's worth).
                return match pump(&mut self.host, &mut self.up, &mut self.ns, &mut self.moved) {
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
            let up = pump(&mut self.host, &mut self.up, &mut self.ns, &mut self.moved);
            let down = pump(
                &mut self.ns,
                &mut self.down,
                &mut self.host,
                &mut self.moved,
            );
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

    /// Give the pipes back; the sockets close when the caller drops them.
    pub fn finish(self, pool: &mut PipePool) -> (TcpStream, TcpStream) {
        pool.put(self.up);
        pool.put(self.down);
        (self.host.sock, self.ns.sock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream as StdStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn drained_only_when_short_of_every_limit() {
        // A 64-byte request into an empty 1 MiB pipe (256 buffers).
        assert!(drained(true, 64, 1 << 20, 256, false));
        // The pipe held bytes before: its buffers in use are unknown.
        assert!(!drained(false, 64, 1 << 20, 256, false));
        // As many bytes as buffers: they may have run out (1 byte each).
        assert!(!drained(true, 256, 1 << 20, 256, false));
        // Filled what was asked: more may wait.
        assert!(!drained(true, 4096, 4096, 256, false));
        // A FIN was reported with the event: read on until EOF.
        assert!(!drained(true, 64, 1 << 20, 256, true));
    }

    #[test]
    fn pipe_gets_a_large_capacity_and_counts_its_buffers() {
        let p = Pipe::new(None).unwrap();
        assert!(p.cap >= 64 * 1024, "pipe capacity {}", p.cap);
        assert_eq!(p.slots, p.cap / page_size());
    }

    #[test]
    fn pipes_stay_within_the_budget() {
        if page_size() != 4096 {
            return; // the sizes below are in 4 KiB pages
        }
        let mut pool = PipePool::new(Some(100));
        // 1 MiB (256 pages) does not fit: 256 KiB (64 pages).
        let a = pool.get().unwrap();
        assert_eq!(a.slots, 64);
        // 36 pages left: the kernel's default (16).
        let b = pool.get().unwrap();
        assert_eq!(b.slots, DEFAULT_PIPE_PAGES);
        // 20 left: not two more pipes.
        assert!(!pool.has_room_for_two());
        // A free pipe and one new default one fit.
        pool.put(a);
        assert!(pool.has_room_for_two());
        // Beyond the budget a pipe is still made (splice mode has no other
        // path), of the default size, and counted.
        let c = pool.get().unwrap();
        let d = pool.get().unwrap();
        assert_eq!(d.slots, DEFAULT_PIPE_PAGES);
        assert_eq!(pool.live_pages, 64 + 16 + 16);
        // Dropped once the free list is full, given back to the budget.
        for p in [b, c, d] {
            pool.put(p);
        }
        assert_eq!(pool.free.len(), 3);
        assert!(PipePool::new(None).has_room_for_two());
    }

    /// Wait (bounded) until `s` has something to read.
    fn wait_readable(s: &impl AsFd) {
        let mut fds = [nix::poll::PollFd::new(
            s.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).unwrap();
        assert_eq!(n, 1, "nothing to read within 10 s");
    }

    /// (client, spliced connection, service), both over loopback: the
    /// connection to the service is made when the splice is.
    fn made(hold: bool) -> (StdStream, SpliceConn, StdStream) {
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let back = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = StdStream::connect(front.local_addr().unwrap()).unwrap();
        let (host, _) = front.accept().unwrap();
        let ns = StdStream::connect(back.local_addr().unwrap()).unwrap();
        let (service, _) = back.accept().unwrap();
        host.set_nonblocking(true).unwrap();
        ns.set_nonblocking(true).unwrap();
        service
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut pool = PipePool::default();
        let c = SpliceConn::new(
            TcpStream::from_std(host),
            TcpStream::from_std(ns),
            hold,
            &mut pool,
        )
        .unwrap();
        (client, c, service)
    }

    /// (client, spliced connection, service): the client's bytes go through
    /// the connection to the service.
    fn joined() -> (StdStream, SpliceConn, StdStream) {
        let (client, mut c, service) = made(false);
        c.ready(End::Ns, false, true, false);
        assert_eq!(c.service(), Outcome::Keep);
        (client, c, service)
    }

    /// The pipe towards the service holds `byte`, which the service's side
    /// did not take: that destination is full.
    fn stall_up(c: &mut SpliceConn, byte: u8) {
        assert_eq!(nix::unistd::write(&c.up.w, &[byte]).unwrap(), 1);
        c.up.queued = 1;
        c.ns.writable = false;
    }

    /// The service receives `first`, then 100 bytes of `then`, in order.
    fn expect_101(service: &mut StdStream, first: u8, then: u8) {
        let mut got = [0u8; 101];
        service.read_exact(&mut got).unwrap();
        assert_eq!(got[0], first);
        assert_eq!(got[1..], [then; 100]);
    }

    #[test]
    fn a_service_connected_within_connect_is_spliced_from_the_first_turn() {
        // Loopback completes the handshake inside connect(2): no writable
        // event is needed before the client's bytes flow.
        let (mut client, mut c, mut service) = made(true);
        assert!(c.connected());
        client.write_all(&[9; 64]).unwrap();
        wait_readable(&c.host.sock);
        assert_eq!(c.service(), Outcome::Keep);
        let mut got = [0u8; 64];
        service.read_exact(&mut got).unwrap();
        assert_eq!(got, [9; 64]);
        // A socket whose connect has not completed waits for its event.
        let idle =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        idle.set_nonblocking(true).unwrap();
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client2 = StdStream::connect(front.local_addr().unwrap()).unwrap();
        let (host2, _) = front.accept().unwrap();
        host2.set_nonblocking(true).unwrap();
        let c2 = SpliceConn::new(
            TcpStream::from_std(host2),
            TcpStream::from_std(idle.into()),
            true,
            &mut PipePool::default(),
        )
        .unwrap();
        assert!(!c2.connected());
    }

    #[test]
    fn small_request_is_delivered_without_reading_to_eagain() {
        let (mut client, mut c, mut service) = joined();
        for round in 0..3u8 {
            client.write_all(&[round; 64]).unwrap();
            wait_readable(&c.host.sock);
            c.ready(End::Host, true, false, false);
            assert_eq!(c.service(), Outcome::Keep);
            let mut got = [0u8; 64];
            service.read_exact(&mut got).unwrap();
            assert_eq!(got, [round; 64]);
            // Drained by the short read: the next edge says when more comes.
            assert!(!c.host.readable, "round {round}: still marked readable");
        }
    }

    #[test]
    fn source_waits_in_its_socket_while_the_destination_is_full() {
        let (mut client, mut c, mut service) = joined();
        stall_up(&mut c, b'x');
        client.write_all(&[7; 100]).unwrap();
        wait_readable(&c.host.sock);
        c.ready(End::Host, true, false, false);
        assert_eq!(c.service(), Outcome::Keep);
        let mut peek = [0u8; 200];
        let n = nix::sys::socket::recv(
            c.host.sock.as_raw_fd(),
            &mut peek,
            nix::sys::socket::MsgFlags::MSG_PEEK,
        )
        .unwrap();
        assert_eq!(n, 100, "read while the destination was full");
        assert!(c.host.readable, "the unread bytes need no new edge");
        // Room again: the pipe's byte, then the client's, in order.
        c.ready(End::Ns, false, true, false);
        assert_eq!(c.service(), Outcome::Keep);
        expect_101(&mut service, b'x', 7);
    }

    #[test]
    fn a_full_destination_unwatches_the_source_until_it_takes_data() {
        let (mut client, mut c, mut service) = joined();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Nothing waits: both ends stay watched as registered.
        assert_eq!(c.read_interest(End::Host), None);
        assert_eq!(c.read_interest(End::Ns), None);
        stall_up(&mut c, b'x');
        assert_eq!(c.read_interest(End::Host), Some(false));
        assert_eq!(c.read_interest(End::Host), None, "said once");
        assert_eq!(c.read_interest(End::Ns), None, "the other way is free");
        // Meanwhile the client's bytes wait in the host socket.
        client.write_all(&[9; 100]).unwrap();
        wait_readable(&c.host.sock);
        // Room again: the pipe drains and the host end is watched again
        // (re-registering reports the bytes waiting).
        c.ready(End::Ns, false, true, false);
        assert_eq!(c.service(), Outcome::Keep);
        assert_eq!(c.read_interest(End::Host), Some(true));
        c.ready(End::Host, true, false, false);
        assert_eq!(c.service(), Outcome::Keep);
        expect_101(&mut service, b'x', 9);
        // The namespace's end the same way, towards a full host end.
        assert_eq!(nix::unistd::write(&c.down.w, b"y").unwrap(), 1);
        c.down.queued = 1;
        c.host.writable = false;
        assert_eq!(c.read_interest(End::Ns), Some(false));
        c.ready(End::Host, false, true, false);
        assert_eq!(c.service(), Outcome::Keep);
        assert_eq!(c.read_interest(End::Ns), Some(true));
        let mut y = [0u8; 1];
        client.read_exact(&mut y).unwrap();
        assert_eq!(&y, b"y");
    }

    #[test]
    fn fin_reported_with_the_data_is_passed_on() {
        let (mut client, mut c, mut service) = joined();
        client.write_all(b"bye").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        wait_readable(&c.host.sock);
        // The one event for data and FIN: no later edge will come.
        c.ready(End::Host, true, false, true);
        assert_eq!(c.service(), Outcome::Keep);
        let mut got = Vec::new();
        service.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
    }
}
