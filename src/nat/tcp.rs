//! Outbound TCP: the namespace's connection is terminated in smoltcp (one
//! socket in its own socket set per flow) and relayed to a host socket.
//!
//! Connect-first: on a SYN the host `connect()` starts before smoltcp may
//! answer; the SYN-ACK is held (`pause_synack`) until the host side is
//! connected, and a refused host connect becomes a RST, so the namespace sees
//! ECONNREFUSED rather than connect-then-reset.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::time::Duration as StdDuration;

use mio::net::{TcpStream, UnixStream};
use smoltcp::iface::{PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpListenEndpoint, TcpSeqNumber};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::pmtu;
use super::table::Flow;
use super::{FlowKey, HostConnectError, bind_outbound};
use crate::event::Ctx;
use crate::stack::Dev;
use crate::stack::frames::{Current, Held};
use crate::sys::os;

/// Per-direction buffer limit of a flow. Large enough for a few 64 KB
/// segments in flight on a local link (64 KiB held about one TSO segment and
/// halved throughput; 1 MiB did not help). The window offers all of it from
/// the start, but the storage is elastic (smoltcp patch): allocated as data
/// needs room, doubling from 4 KiB, so an idle flow holds none.
pub const BUF_SIZE: usize = 256 * 1024;

/// Storage a flow's buffers hold without data is given back after this
/// long (once per period at most, so a busy flow re-grows rarely).
const TRIM_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Host connect in progress, SYN-ACK held back.
    Connecting,
    Open,
}

pub struct TcpFlow {
    pub key: FlowKey,
    /// The namespace TAP ("port") this flow lives on.
    pub port: usize,
    set: SocketSet<'static>,
    handle: SocketHandle,
    pub host: HostSock,
    phase: Phase,
    /// Edge-triggered readiness, cleared on WouldBlock (or, for reading,
    /// on a short read).
    host_readable: bool,
    host_writable: bool,
    /// epoll said the host's side has shut or failed (EPOLLRDHUP/ERR):
    /// read on to the end, a short read no longer says drained.
    host_hup: bool,
    /// The host connect is known to have completed (getpeername said so
    /// inside connect's turn): its outcome need not be asked.
    host_connected: bool,
    /// Host sent FIN (read returned 0); we closed our side in smoltcp.
    host_eof: bool,
    /// We passed the namespace's FIN on (shutdown(Write) on the host socket).
    host_shut: bool,
    /// The host connection failed or was reset.
    host_dead: bool,
    /// The smoltcp socket has left LISTEN (it took the namespace's SYN).
    left_listen: bool,
    /// The namespace closed its sending side (we saw its FIN).
    ns_fin: bool,
    /// When smoltcp wants to be polled next (`poll_at`).
    pub timer: Option<Instant>,
    /// The deadline already in the timer heap, so each is queued once.
    pub armed: Option<Instant>,
    /// Received segments not yet serviced (see `Nat::flush_dirty`).
    pub dirty: bool,
    /// The path MTU the namespace reported for this flow, below the link's
    /// (see [`super::pmtu`]); segments are cut to fit it.
    path_mtu: Option<u16>,
    /// When empty buffers give their storage back (see [`TRIM_AFTER`]).
    trim_at: Option<Instant>,
    /// In the handshake backlog under this serial (see [`super::backlog`]).
    pub half_open: Option<u64>,
    /// The host socket's readiness to read is not watched at the moment
    /// ([`TcpFlow::read_interest`]).
    host_unwatched: bool,
    /// Payload smoltcp handed over that the host socket has not taken yet.
    unsent: Rc<RefCell<Unsent>>,
}

/// The namespace's in-order payload that smoltcp counts as delivered (its
/// window stays open) but that has not reached the host socket: slices of
/// TAP frames held until the flow is serviced after the batch, then, if a
/// send took less, the rest copied. Sent before anything in smoltcp's
/// receive buffer, which only fills behind it.
#[derive(Debug, Default)]
struct Unsent {
    held: Vec<Held>,
    spilled: Vec<u8>,
    /// Write calls on the host socket for the namespace's payload, for
    /// tests ([`TcpFlow::host_writes`]).
    writes: u64,
}

/// Most slices one writev(2) takes here (a batch's worth; more go in the
/// next call).
const MAX_IOV: usize = 16;

/// The host side of a flow: a real TCP connection, or (for services rlnet
/// answers itself, like TCP DNS) one end of a unix socketpair.
pub enum HostSock {
    Tcp(TcpStream),
    Local(UnixStream),
}

impl HostSock {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            HostSock::Tcp(s) => (&*s).read(buf),
            HostSock::Local(s) => (&*s).read(buf),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            HostSock::Tcp(s) => (&*s).write(buf),
            HostSock::Local(s) => (&*s).write(buf),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            HostSock::Tcp(s) => s.shutdown(Shutdown::Write),
            HostSock::Local(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// The direct receive path: in-order payload from the namespace skips
    /// smoltcp's receive buffer (one copy fewer per segment) while nothing
    /// is queued before it. A slice of the TAP frame is held and sent with
    /// the batch's others in one writev(2) ([`TcpFlow::send_unsent`]);
    /// payload not in the current frame (a reassembled datagram) is sent at
    /// once. Real TCP hosts only.
    fn direct(
        &self,
        unsent: &Rc<RefCell<Unsent>>,
        current: &Rc<Current>,
    ) -> Option<tcp::RxDirect<'static>> {
        let HostSock::Tcp(s) = self else { return None };
        let fd = s.as_raw_fd();
        let (unsent, current) = (Rc::clone(unsent), Rc::clone(current));
        Some(tcp::RxDirect(Box::new(move |data| {
            // Declined (0) bytes go to smoltcp's buffer, behind these.
            let Ok(mut u) = unsent.try_borrow_mut() else {
                return 0;
            };
            if !u.spilled.is_empty() {
                return 0;
            }
            if let Some(held) = current.hold(data) {
                u.held.push(held);
                return data.len();
            }
            // Not in a TAP frame (reassembled): sent at once, in order.
            if u.held.is_empty() {
                u.writes += 1;
                os::send_some(fd, data)
            } else {
                0
            }
        })))
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            HostSock::Tcp(s) => (&*s).write_vectored(bufs),
            HostSock::Local(s) => (&*s).write_vectored(bufs),
        }
    }

    /// On close, send a RST instead of a FIN.
    fn reset_on_close(&self) {
        if let HostSock::Tcp(s) = self {
            let _ = SockRef::from(s).set_linger(Some(StdDuration::ZERO));
        }
    }

    /// Connect outcome, asked once epoll reported the socket writable:
    /// TCP reports that only after SYN-SENT (tcp_poll), so no pending
    /// error means connected.
    fn connected(&self) -> io::Result<()> {
        match self {
            HostSock::Tcp(s) => match s.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => Ok(()),
            },
            HostSock::Local(_) => Ok(()),
        }
    }
}

impl mio::event::Source for HostSock {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            HostSock::Tcp(s) => s.register(r, t, i),
            HostSock::Local(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        match self {
            HostSock::Tcp(s) => s.reregister(r, t, i),
            HostSock::Local(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        match self {
            HostSock::Tcp(s) => s.deregister(r),
            HostSock::Local(s) => s.deregister(r),
        }
    }
}

/// A flow's own socket set with its one socket.
pub struct Rings {
    set: SocketSet<'static>,
    handle: SocketHandle,
}

/// Finished flows' sockets, kept for the next flows (their buffers' storage
/// given back): smoltcp resets a socket completely on `listen`/`connect`,
/// keeping only its settings, so a short connection allocates nothing.
#[derive(Default)]
pub struct RingPool {
    free: Vec<Rings>,
}

impl RingPool {
    /// At most this many are kept.
    const MAX: usize = 4;

    pub fn take(&mut self) -> Rings {
        self.free.pop().unwrap_or_else(|| {
            let mut set = SocketSet::new(Vec::with_capacity(1));
            let handle = set.add(new_socket());
            Rings { set, handle }
        })
    }

    /// Return an unused or finished socket set.
    pub fn put(&mut self, mut r: Rings) {
        let socket = r.set.get_mut::<tcp::Socket>(r.handle);
        let reusable = !socket.is_open();
        // A closed socket gives all its storage back.
        socket.release_idle_buffers();
        if reusable && self.free.len() < Self::MAX {
            self.free.push(r);
        }
    }

    /// Give all memory back (when no flow is left).
    pub fn clear(&mut self) {
        self.free = Vec::new();
    }
}

/// The namespace-facing socket: a local link needs no congestion control,
/// Nagle or delayed ACKs (smoltcp delays ACKs by 10 ms by default, which caps
/// throughput at a window per 10 ms); the host side has its own TCP.
fn new_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(Vec::new()),
        tcp::SocketBuffer::new(Vec::new()),
    );
    socket.set_elastic(Some(tcp::Elastic {
        rx: BUF_SIZE,
        tx: BUF_SIZE,
    }));
    socket.set_congestion_control(tcp::CongestionControl::None);
    socket.set_nagle_enabled(false);
    socket.set_ack_delay(None);
    // No smoltcp timeout: it would also abort connections that are merely
    // idle (it counts from the last segment received).
    socket
}

/// TCP flows leave the table through [`super::table::FlowTable::take`]:
/// their rings go back to the pool before the socket is deregistered.
impl Flow for TcpFlow {
    type Key = FlowKey;
    fn key(&self) -> FlowKey {
        self.key
    }
    fn port(&self) -> usize {
        self.port
    }
    fn source(&mut self) -> &mut dyn mio::event::Source {
        &mut self.host
    }
}

/// What the caller should do with the flow after servicing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Keep,
    Remove,
}

/// A non-blocking connect to the host-side destination.
fn host_connect(host_addr: SocketAddr, ctx: &Ctx<'_>) -> Result<TcpStream, HostConnectError> {
    let sock = Socket::new(
        Domain::for_address(host_addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(HostConnectError::Socket)?;
    // The namespace already coalesced its writes; don't delay them again.
    let _ = sock.set_tcp_nodelay(true);
    if host_addr.ip().is_loopback() {
        os::local_hop_congestion(sock.as_fd());
    }
    bind_outbound(&sock, host_addr, ctx.outbound).map_err(HostConnectError::Bind)?;
    match sock.connect(&host_addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(HostConnectError::Connect(e)),
    }
    Ok(TcpStream::from_std(sock.into()))
}

impl TcpFlow {
    /// Start the host connect and create the held smoltcp listener. The SYN
    /// itself is fed by the caller afterwards.
    pub fn connect(
        key: FlowKey,
        port: usize,
        host_addr: SocketAddr,
        rings: Rings,
        ctx: &Ctx<'_>,
    ) -> Result<TcpFlow, (HostConnectError, Rings)> {
        let host = match host_connect(host_addr, ctx) {
            Ok(h) => h,
            Err(e) => return Err((e, rings)),
        };
        let mut rings = rings;
        let socket = rings.set.get_mut::<tcp::Socket>(rings.handle);
        socket.pause_synack(true);
        let endpoint = IpListenEndpoint {
            addr: Some(key.dst.ip().into()),
            port: key.dst.port(),
        };
        if socket.listen(endpoint).is_err() {
            return Err((HostConnectError::Listen, rings));
        }
        // A local service's handshake completes inside connect(2) (the
        // loopback device delivers at once): then the namespace's SYN is
        // answered in this turn, not after a wait for epoll to say so.
        let established = host.peer_addr().is_ok();
        let mut flow = Self::with(key, port, rings, HostSock::Tcp(host), Phase::Connecting);
        flow.host_writable = established;
        flow.host_connected = established;
        Ok(flow)
    }

    /// A connection the namespace makes to a service rlnet itself provides
    /// (the DNS stub over TCP): accepted at once, relayed over `local`.
    pub fn local(
        key: FlowKey,
        port: usize,
        local: UnixStream,
        mut rings: Rings,
    ) -> Option<TcpFlow> {
        let socket = rings.set.get_mut::<tcp::Socket>(rings.handle);
        socket.pause_synack(false);
        let endpoint = IpListenEndpoint {
            addr: Some(key.dst.ip().into()),
            port: key.dst.port(),
        };
        socket.listen(endpoint).ok()?;
        let mut flow = Self::with(key, port, rings, HostSock::Local(local), Phase::Open);
        flow.host_readable = true;
        flow.host_writable = true;
        Some(flow)
    }

    /// A published-port connection already accepted on the host: smoltcp
    /// connects to the namespace service from the client's (presented)
    /// address, so the service sees who connected. `key.src` is the
    /// namespace service, `key.dst` the presented client.
    pub fn inbound(
        key: FlowKey,
        port: usize,
        host: TcpStream,
        mut rings: Rings,
        ctx: &mut Ctx<'_>,
    ) -> Option<TcpFlow> {
        let socket = rings.set.get_mut::<tcp::Socket>(rings.handle);
        socket.pause_synack(false);
        socket.connect(ctx.iface.context(), key.src, key.dst).ok()?;
        let mut flow = Self::with(key, port, rings, HostSock::Tcp(host), Phase::Open);
        let direct = flow.host.direct(&flow.unsent, ctx.current);
        flow.socket().set_rx_direct(direct);
        // Accepted sockets are ready both ways; epoll reports edges only.
        flow.host_readable = true;
        flow.host_writable = true;
        Some(flow)
    }

    fn with(key: FlowKey, port: usize, rings: Rings, host: HostSock, phase: Phase) -> TcpFlow {
        TcpFlow {
            key,
            port,
            set: rings.set,
            handle: rings.handle,
            host,
            phase,
            host_readable: false,
            host_writable: false,
            host_hup: false,
            host_connected: false,
            host_eof: false,
            host_shut: false,
            host_dead: false,
            left_listen: false,
            half_open: None,
            ns_fin: false,
            timer: None,
            armed: None,
            dirty: false,
            path_mtu: None,
            trim_at: None,
            host_unwatched: false,
            unsent: Rc::default(),
        }
    }

    /// Feed one segment from the namespace into this flow's socket set.
    pub fn ingress(&mut self, pkt: &[u8], ctx: &mut Ctx<'_>) {
        let Some(out) = ctx.outs.get_mut(self.port) else {
            return;
        };
        let mut dev = Dev::new(Some(pkt), out, ctx.caps).with_path_mtu(self.path_mtu);
        ctx.iface
            .poll_ingress_single(ctx.now, &mut dev, &mut self.set);
    }

    /// The namespace could not forward a segment of this flow starting at
    /// `seq` and says `mtu` fits: lower the flow's path MTU if `seq` is in
    /// flight and `mtu` is believable ([`pmtu::lowered`]). True if lowered.
    pub fn too_big(&mut self, seq: TcpSeqNumber, mtu: u32, link_mtu: usize) -> bool {
        if !pmtu::in_flight(seq, self.socket().unacked()) {
            crate::limited!(
                Debug,
                "ignored a path MTU of {mtu} for {}: sequence number not in flight",
                self.key.src
            );
            return false;
        }
        let v6 = self.key.src.is_ipv6();
        let Some(new) = pmtu::lowered(self.path_mtu, link_mtu, mtu, v6) else {
            return false;
        };
        crate::limited!(
            Debug,
            "path MTU of the flow {} <-> {} is {new}",
            self.key.src,
            self.key.dst
        );
        self.path_mtu = Some(new);
        true
    }

    /// Host socket readiness from epoll; `hup`: its peer shut its side
    /// (or the socket failed).
    pub fn host_ready(&mut self, readable: bool, writable: bool, hup: bool) {
        self.host_readable |= readable;
        self.host_writable |= writable;
        self.host_hup |= hup;
    }

    /// Payload from the namespace waits for the host socket.
    pub fn has_unsent(&self) -> bool {
        !self.all_sent()
    }

    /// Whether the host socket's readiness to read should be watched, when
    /// that changes (and then it is taken as done): not while it holds
    /// bytes smoltcp has no room for (the namespace reads slower than the
    /// host sends). They wait in the socket meanwhile, and each segment
    /// arriving there would otherwise wake the loop for nothing; the
    /// namespace's ACKs, which make room, come through the TAP.
    pub fn read_interest(&mut self) -> Option<bool> {
        let full = self.phase == Phase::Open
            && self.host_readable
            && !self.host_eof
            && !self.host_dead
            && !self.socket().can_send();
        (full != self.host_unwatched).then(|| {
            self.host_unwatched = full;
            !full
        })
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.set.get_mut::<tcp::Socket>(self.handle)
    }

    /// Move whatever can move, emit what smoltcp wants to send, and say
    /// whether the flow is finished. Called after every event on the flow.
    pub fn service(&mut self, ctx: &mut Ctx<'_>) -> After {
        if self.trim_at.is_some_and(|t| t <= ctx.now) {
            self.trim_at = None;
            self.socket().release_idle_buffers();
        }
        if self.phase == Phase::Connecting && self.host_writable {
            let outcome = if self.host_connected {
                Ok(())
            } else {
                self.host.connected()
            };
            match outcome {
                Ok(()) => {
                    self.phase = Phase::Open;
                    let direct = self.host.direct(&self.unsent, ctx.current);
                    let socket = self.socket();
                    socket.pause_synack(false);
                    socket.set_rx_direct(direct);
                }
                Err(e) => return self.connect_failed(e, ctx),
            }
        }
        if self.phase == Phase::Open && !self.host_dead {
            self.ns_to_host();
            self.host_to_ns();
        }
        if self.host_dead {
            *self.unsent.borrow_mut() = Unsent::default();
            self.socket().abort();
        }
        self.egress(ctx);
        self.finish_or_keep(ctx)
    }

    /// Namespace → host: drain smoltcp's receive buffer into the host socket.
    fn ns_to_host(&mut self) {
        if !self.send_unsent() {
            return;
        }
        let mut rounds = 0;
        while self.host_writable && rounds < 4 {
            rounds += 1;
            let host = &self.host;
            let sock = self.set.get_mut::<tcp::Socket>(self.handle);
            if !sock.can_recv() {
                break;
            }
            self.unsent.borrow_mut().writes += 1;
            let res = sock.recv(|buf| match host.write(buf) {
                Ok(n) => (n, Ok(n)),
                Err(e) => (0, Err(e)),
            });
            match res {
                Ok(written) => {
                    if self.took(written).is_none() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let state = self.socket().state();
        if matches!(
            state,
            tcp::State::CloseWait
                | tcp::State::LastAck
                | tcp::State::Closing
                | tcp::State::TimeWait
        ) {
            self.ns_fin = true;
        }
        // The namespace half-closed and everything it sent is delivered:
        // pass the FIN on.
        if self.ns_fin && !self.host_shut && self.socket().recv_queue() == 0 && self.all_sent() {
            self.host_shut = true;
            self.host.shutdown_write();
        }
    }

    /// What smoltcp handed over directly goes first: the held slices in
    /// writev(2) calls, what they did not take copied (the frames are
    /// reused), then that copy. True when nothing is left.
    fn send_unsent(&mut self) -> bool {
        let unsent = Rc::clone(&self.unsent);
        let mut u = unsent.borrow_mut();
        let Unsent {
            held,
            spilled,
            writes,
        } = &mut *u;
        while !held.is_empty() {
            let n = held.len().min(MAX_IOV);
            let mut sent = 0;
            if self.host_writable && spilled.is_empty() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                for (slot, h) in iov.iter_mut().zip(&held[..n]) {
                    *slot = IoSlice::new(h.bytes());
                }
                *writes += 1;
                match self.took(self.host.write_vectored(&iov[..n])) {
                    Some(k) => sent = k,
                    None => return false,
                }
            }
            for h in held.drain(..n) {
                let bytes = h.bytes();
                let taken = sent.min(bytes.len());
                sent -= taken;
                if taken < bytes.len() {
                    spilled.extend_from_slice(&bytes[taken..]);
                }
            }
        }
        while !spilled.is_empty() && self.host_writable {
            *writes += 1;
            match self.host.write(spilled) {
                Ok(0) => self.host_writable = false,
                written => match self.took(written) {
                    Some(k) => drop(spilled.drain(..k)),
                    None => return false,
                },
            }
        }
        if spilled.is_empty() && spilled.capacity() > 0 {
            // Back-pressure is over: give the copy's memory back.
            *spilled = Vec::new();
        }
        spilled.is_empty()
    }

    /// What a write to the host socket means for the flow: the bytes taken
    /// (0 when it would block, which clears `host_writable`, or was
    /// interrupted); None when the connection failed (`host_dead`).
    fn took(&mut self, written: io::Result<usize>) -> Option<usize> {
        match written {
            Ok(k) => Some(k),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.host_writable = false;
                Some(0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Some(0),
            Err(_) => {
                self.host_dead = true;
                None
            }
        }
    }

    /// Write calls on the host socket for the namespace's payload so far.
    pub fn host_writes(&self) -> u64 {
        self.unsent.borrow().writes
    }

    /// Nothing handed over by smoltcp waits for the host socket.
    fn all_sent(&self) -> bool {
        let u = self.unsent.borrow();
        u.held.is_empty() && u.spilled.is_empty()
    }

    /// Host → namespace: read straight into smoltcp's transmit buffer.
    fn host_to_ns(&mut self) {
        let mut rounds = 0;
        while self.host_readable && !self.host_eof && rounds < 4 {
            rounds += 1;
            let host = &self.host;
            let sock = self.set.get_mut::<tcp::Socket>(self.handle);
            if !sock.can_send() {
                break;
            }
            let res = sock.send(|buf| {
                let room = buf.len();
                match host.read(buf) {
                    Ok(n) => (n, Ok((n, room))),
                    Err(e) => (0, Err(e)),
                }
            });
            match res {
                Ok(Ok((0, _))) => {
                    self.host_eof = true;
                    self.socket().close();
                }
                // A stream socket that filled less than the room had no
                // more: no read for WouldBlock (a response's turn is one
                // call shorter). Epoll reports whatever comes after, and
                // a FIN that came before (hup) is read to the end.
                Ok(Ok((n, room))) if n < room && !self.host_hup => self.host_readable = false,
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => self.host_readable = false,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => {
                    self.host_dead = true;
                    return;
                }
                Err(_) => break,
            }
        }
    }

    /// Emit everything smoltcp has queued (one segment per socket per call).
    pub fn egress(&mut self, ctx: &mut Ctx<'_>) {
        for _ in 0..1024 {
            let Some(out) = ctx.outs.get_mut(self.port) else {
                break;
            };
            let mut dev = Dev::new(None, out, ctx.caps).with_path_mtu(self.path_mtu);
            if ctx.iface.poll_egress(ctx.now, &mut dev, &mut self.set) == PollResult::None {
                break;
            }
        }
        // "Now" after a full egress means smoltcp has nothing it may send
        // yet (a held SYN-ACK, a full TAP queue, which has its own wake-up):
        // only future deadlines are timers.
        let poll_at = ctx
            .iface
            .poll_at(ctx.now, &self.set)
            .filter(|t| *t > ctx.now);
        // Armed once and kept until it fires: one deadline per period.
        if self.trim_at.is_none() && self.socket().has_idle_buffers() {
            self.trim_at = Some(ctx.now + TRIM_AFTER);
        }
        self.timer = poll_at.into_iter().chain(self.trim_at).min();
    }

    /// Bytes of buffer storage the flow holds.
    pub fn buffer_bytes(&mut self) -> usize {
        self.socket().buffers_allocated()
    }

    fn connect_failed(&mut self, err: io::Error, ctx: &mut Ctx<'_>) -> After {
        crate::limited!(Debug, "connect to {} failed: {err}", self.key.dst);
        self.host_dead = true;
        let kind = super::unreachable_for(&err);
        match kind {
            // ECONNREFUSED and friends: a RST, so connect() fails at once.
            None => {
                self.socket().abort();
                self.egress(ctx);
            }
            Some(kind) => {
                // The namespace sees the same errno the host saw.
                super::send_unreachable_for_flow(
                    &self.key,
                    smoltcp::wire::IpProtocol::Tcp,
                    self.port,
                    kind,
                    ctx,
                );
            }
        }
        After::Remove
    }

    fn finish_or_keep(&mut self, _ctx: &mut Ctx<'_>) -> After {
        let state = self.socket().state();
        if state != tcp::State::Listen {
            self.left_listen = true;
        } else if self.left_listen {
            // The namespace reset the handshake (smoltcp puts a socket
            // reset in SYN-RECEIVED back to LISTEN): no one will complete
            // it. A SYN flood from forged sources leaves only these, each
            // holding a host connection, which must not outlive it.
            if !self.host_dead {
                self.host.reset_on_close();
            }
            return After::Remove;
        }
        match state {
            tcp::State::Closed | tcp::State::TimeWait => {
                let clean = self.ns_fin && self.host_eof;
                if state == tcp::State::TimeWait
                    && (self.socket().recv_queue() > 0 || !self.all_sent())
                    && !self.host_dead
                {
                    // Data for the host still buffered: keep draining.
                    return After::Keep;
                }
                if !clean && !self.host_dead {
                    // Reset or timed out on the namespace side: reset the host too.
                    self.host.reset_on_close();
                } else if !self.host_shut {
                    self.host.shutdown_write();
                }
                After::Remove
            }
            _ if self.host_dead => After::Remove,
            _ => After::Keep,
        }
    }

    /// Tear down: the host socket (for the caller to deregister and close)
    /// and the socket set back to the pool.
    pub fn finish(mut self, pool: &mut RingPool) -> HostSock {
        // The hook holds the host socket's number, which is about to close.
        self.socket().set_rx_direct(None);
        pool.put(Rings {
            set: self.set,
            handle: self.handle,
        });
        self.host
    }

    /// Host connect still in progress.
    pub fn connecting(&self) -> bool {
        self.phase == Phase::Connecting
    }

    /// The namespace side is past its handshake (or never had one here).
    pub fn handshake_over(&mut self) -> bool {
        !matches!(
            self.socket().state(),
            tcp::State::Listen | tcp::State::SynReceived
        )
    }

    /// Given up from the backlog: the host connection is reset, not closed
    /// in order, so neither end keeps state for it.
    pub fn give_up(&self) {
        self.host.reset_on_close();
    }
}
