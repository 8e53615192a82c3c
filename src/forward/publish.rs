//! Published ports, the I/O side: host listeners, and the two ways a
//! connection gets into the namespace.
//!
//! - Stack mode (default): the accepted connection becomes a flow in the
//!   userspace stack that connects to the service *from the client's real
//!   address* (a client on host loopback shows as the gateway), so the
//!   service sees who connected. UDP works the same way, per client.
//! - Splice mode: a socket created inside the namespace (by the socket
//!   factory) connects to the service, and splice(2) moves the bytes.
//!
//! The target is the namespace's interface address, never its loopback: a
//! service bound only to 127.0.0.1 inside is not exposed.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use mio::Interest;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use super::spec::{Mode, Proto, PublishSpec};
use super::splice::{End, Outcome, PipePool, SpliceConn};
use super::table::{PortTable, RuleId, TableError};
use crate::config::AddrPlan;
use crate::event::{Ctx, Kind, token};
use crate::nat::{FlowKey, Nat};
use crate::sys::ns::{Factory, NsError, NsHandles, SocketKind};
use crate::sys::os::{self, FdReserve};
use crate::wire;

/// Idle timeout of a published UDP client flow (RootlessKit uses 90 s).
const UDP_IDLE_US: i64 = 120_000_000;
/// Connections accepted per readiness event before other work gets a turn.
const ACCEPT_BATCH: usize = 64;
/// Limits on what clients of published ports may hold.
const MAX_SPLICE: usize = 16384;
const MAX_UDP_CLIENTS: usize = 4096;
/// Namespace sockets fetched from the factory per round trip; at most this
/// many per address family wait unused (tests/e2e_publish.rs bounds rlnet's
/// fds by it).
pub const POOL_BATCH: usize = 32;

#[derive(Debug, Error)]
pub enum ForwardError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(
        "host port {addr} ({proto}) is already in use: choose another host port or stop what is using it"
    )]
    InUse { addr: SocketAddr, proto: Proto },
    #[error(
        "cannot bind host port {addr} ({proto}): permission denied; ports below \
         net.ipv4.ip_unprivileged_port_start need privileges: publish a higher port, or as root run \
         `sysctl -w net.ipv4.ip_unprivileged_port_start={port}`",
        port = addr.port()
    )]
    Privileged { addr: SocketAddr, proto: Proto },
    #[error("cannot bind host port {addr} ({proto}): {err}")]
    Bind {
        addr: SocketAddr,
        proto: Proto,
        err: io::Error,
    },
    #[error(transparent)]
    Namespace(#[from] NsError),
}

enum Sock {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

struct Listener {
    rule: RuleId,
    local: SocketAddr,
    sock: Sock,
}

/// A published UDP client: datagrams from `client` on listener `listener`.
struct UdpClient {
    listener: usize,
    client: SocketAddr,
    /// Stack mode: the flow as the namespace sees it (service → presented client).
    key: FlowKey,
    /// Splice mode: a socket inside the namespace connected to the service.
    ns: Option<UdpSocket>,
    last: i64,
}

pub struct Forwarder {
    pub table: PortTable,
    plan: AddrPlan,
    /// `--publish-mode`: what rules without an explicit mode use.
    mode: Mode,
    unprivileged_start: u16,
    listeners: Slab<Listener>,
    splices: Slab<SpliceConn>,
    pipes: PipePool,
    /// Inside-namespace handles, to start the socket factory on first use.
    ns: Option<NsHandles>,
    factory: Option<Factory>,
    /// Sockets made inside the namespace, ready to connect: [v4, v6].
    pool: [Vec<OwnedFd>; 2],
    udp: Slab<UdpClient>,
    udp_by_client: HashMap<(usize, SocketAddr), usize>,
    udp_by_key: HashMap<FlowKey, usize>,
    /// Listeners with connections/datagrams left after a bounded batch.
    again: Vec<usize>,
    /// (deadline, udp client) for idle expiry; stale entries are skipped.
    timers: Vec<(i64, usize)>,
    /// Datagrams from published UDP ports land here first.
    scratch: Box<[u8]>,
    /// Lets a listener drain its queue when rlnet is out of descriptors.
    reserve: FdReserve,
}

fn bind(proto: Proto, addr: SocketAddr) -> io::Result<Sock> {
    let (ty, p) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let s = Socket::new(Domain::for_address(addr), ty.nonblocking(), Some(p))?;
    if addr.is_ipv6() {
        // `[::]` means IPv6 only; IPv4 gets its own socket, as with Docker.
        s.set_only_v6(true)?;
    }
    if proto == Proto::Tcp {
        // Rebind at once after a restart (TIME_WAIT), never over a listener.
        s.set_reuse_address(true)?;
    }
    s.bind(&SockAddr::from(addr))?;
    Ok(match proto {
        Proto::Tcp => {
            s.listen(1024)?;
            Sock::Tcp(TcpListener::from_std(s.into()))
        }
        Proto::Udp => Sock::Udp(UdpSocket::from_std(s.into())),
    })
}

/// The host addresses a spec binds for one port.
fn host_addrs(spec: &PublishSpec, port: u16) -> Vec<(SocketAddr, bool)> {
    match spec.host_ip {
        Some(ip) => vec![(SocketAddr::new(ip, port), false)],
        // All IPv4 and IPv6 addresses; the IPv6 wildcard may be missing on
        // hosts without IPv6 (the `true` marks it optional).
        None => vec![
            (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
                false,
            ),
            (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
                true,
            ),
        ],
    }
}

impl Forwarder {
    pub fn new(
        plan: AddrPlan,
        unprivileged_start: u16,
        mode: Mode,
        ns: Option<NsHandles>,
    ) -> Forwarder {
        Forwarder {
            table: PortTable::new(),
            plan,
            mode,
            unprivileged_start,
            listeners: Slab::new(),
            splices: Slab::new(),
            pipes: PipePool::default(),
            ns,
            factory: None,
            pool: [Vec::new(), Vec::new()],
            udp: Slab::new(),
            udp_by_client: HashMap::new(),
            udp_by_key: HashMap::new(),
            again: Vec::new(),
            timers: Vec::new(),
            scratch: Box::default(),
            reserve: FdReserve::new(),
        }
    }

    pub fn default_mode(&self) -> Mode {
        self.mode
    }

    /// Publish `specs`: all of them or, on any error, none.
    pub fn publish(
        &mut self,
        specs: &[PublishSpec],
        mode: Mode,
        guest: Option<IpAddr>,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<RuleId>, ForwardError> {
        self.table.check(specs, self.unprivileged_start)?;
        let mut bound: Vec<(usize, SocketAddr, Sock)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for port in spec.host_ports.iter() {
                for (addr, optional) in host_addrs(spec, port) {
                    // Without IPv6 in the namespace the IPv6 wildcard has no target.
                    if optional && self.plan.v6.is_none() {
                        continue;
                    }
                    match bind(spec.proto, addr) {
                        Ok(s) => bound.push((i, addr, s)),
                        Err(e)
                            if optional
                                && matches!(
                                    e.raw_os_error(),
                                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                                ) => {}
                        // Dropping `bound` closes everything bound so far.
                        Err(e) => return Err(bind_error(addr, spec.proto, e)),
                    }
                }
            }
        }
        let ids: Vec<RuleId> = specs
            .iter()
            .map(|s| self.table.insert(*s, mode, guest))
            .collect();
        for (i, local, sock) in bound {
            let entry = self.listeners.vacant_entry();
            let t = token(Kind::Listener, entry.key());
            let mut l = Listener {
                rule: ids[i],
                local,
                sock,
            };
            let r = match &mut l.sock {
                Sock::Tcp(s) => ctx.registry.register(s, t, Interest::READABLE),
                Sock::Udp(s) => ctx.registry.register(s, t, Interest::READABLE),
            };
            if let Err(e) = r {
                log::warn!("cannot watch listener {local}: {e}");
            }
            entry.insert(l);
        }
        for id in &ids {
            if let Some(rule) = self.table.get(*id) {
                log::info!("published {} ({:?} mode)", rule.spec, rule.mode);
            }
        }
        Ok(ids)
    }

    /// Unpublish: listeners close at once; established connections live on.
    pub fn unpublish(&mut self, ids: &[RuleId], ctx: &Ctx<'_>) -> Result<(), ForwardError> {
        let removed = self.table.remove_many(ids)?;
        let gone: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, l)| removed.iter().any(|r| r.id == l.rule))
            .map(|(i, _)| i)
            .collect();
        for i in gone {
            let mut l = self.listeners.remove(i);
            let _ = match &mut l.sock {
                Sock::Tcp(s) => ctx.registry.deregister(s),
                Sock::Udp(s) => ctx.registry.deregister(s),
            };
        }
        Ok(())
    }

    /// Unpublish every rule that targets `guest` (a member that left).
    pub fn unpublish_guest(&mut self, guest: IpAddr, ctx: &Ctx<'_>) {
        let ids: Vec<RuleId> = self
            .table
            .rules()
            .iter()
            .filter(|r| r.guest == Some(guest))
            .map(|r| r.id)
            .collect();
        if !ids.is_empty() {
            let _ = self.unpublish(&ids, ctx);
        }
    }

    /// The source address the namespace sees for `client`: the real one,
    /// except host loopback (and anything that would be ambiguous inside the
    /// namespace) shows as the gateway.
    fn present(&self, client: IpAddr, target: IpAddr) -> IpAddr {
        let gw = match (target, self.plan.v6) {
            (IpAddr::V6(_), Some(v6)) => IpAddr::V6(v6.gateway6),
            _ => IpAddr::V4(self.plan.gateway4),
        };
        let same_family = client.is_ipv4() == target.is_ipv4();
        if !same_family
            || client.is_loopback()
            || client.is_unspecified()
            || self.plan.in_subnet(client)
        {
            gw
        } else {
            client
        }
    }

    /// Readiness on a listener or a spliced connection.
    pub fn event(
        &mut self,
        kind: Kind,
        idx: usize,
        readable: bool,
        writable: bool,
        nat: &mut Nat,
        ctx: &mut Ctx<'_>,
    ) {
        match kind {
            Kind::Listener if readable && self.listener_ready(idx, nat, ctx) => {
                self.again.push(idx)
            }
            Kind::SpliceHost | Kind::SpliceNs => {
                let end = if kind == Kind::SpliceHost {
                    End::Host
                } else {
                    End::Ns
                };
                if let Some(c) = self.splices.get_mut(idx) {
                    c.ready(end, readable, writable);
                    if c.service() == Outcome::Done {
                        self.end_splice(idx, ctx);
                    }
                }
            }
            Kind::UdpNs => self.udp_ns_ready(idx, ctx),
            _ => {}
        }
    }

    /// True if the loop should come back without sleeping.
    pub fn has_backlog(&self) -> bool {
        !self.again.is_empty()
    }

    pub fn run_backlog(&mut self, nat: &mut Nat, ctx: &mut Ctx<'_>) {
        for idx in std::mem::take(&mut self.again) {
            self.event(Kind::Listener, idx, true, false, nat, ctx);
        }
    }

    /// Accept or receive what is waiting; true if the batch limit was hit.
    fn listener_ready(&mut self, idx: usize, nat: &mut Nat, ctx: &mut Ctx<'_>) -> bool {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get(idx) else {
                return false;
            };
            let local = l.local;
            match &l.sock {
                Sock::Tcp(s) => match s.accept() {
                    Ok((stream, client)) => self.accepted(local, stream, client, nat, ctx),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if os::accept_retry(&e) => {}
                    Err(e) if os::out_of_fds(&e) => {
                        // Left queued, the connection would never be
                        // taken (see FdReserve): close it now instead.
                        crate::limited!(
                            Warn,
                            "published port {local}: {e}; closing new connections until \
                             descriptors are free (raise the limit: ulimit -n)"
                        );
                        match self.reserve.shed(|| s.accept()) {
                            Ok(()) => {}
                            Err(e) if os::accept_retry(&e) => {}
                            Err(_) => return false,
                        }
                    }
                    Err(e) => {
                        crate::limited!(Warn, "accept on {local}: {e}");
                        return false;
                    }
                },
                Sock::Udp(s) => {
                    if self.scratch.is_empty() {
                        self.scratch = vec![0u8; 65536].into_boxed_slice();
                    }
                    match s.recv_from(&mut self.scratch) {
                        Ok((n, client)) => self.udp_in(idx, local, client, n, ctx),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                        Err(_) => return false,
                    }
                }
            }
        }
        true
    }

    fn accepted(
        &mut self,
        local: SocketAddr,
        stream: TcpStream,
        client: SocketAddr,
        nat: &mut Nat,
        ctx: &mut Ctx<'_>,
    ) {
        let Some((rule, ns_port)) = self
            .table
            .lookup(Proto::Tcp, local)
            .map(|(r, p)| (r.clone(), p))
        else {
            return;
        };
        let Some(target) = rule.target(local.ip(), &self.plan) else {
            return;
        };
        let _ = stream.set_nodelay(true);
        match rule.mode {
            Mode::Stack => {
                let presented = self.present(client.ip(), target);
                let key = FlowKey {
                    src: SocketAddr::new(target, ns_port),
                    dst: SocketAddr::new(presented, client.port()),
                };
                // No namespace owns the target (it left the network): the
                // client's connection just closes.
                if let Some(port) = ctx.port_for(target) {
                    nat.inbound_tcp(key, port, stream, ctx);
                }
            }
            Mode::Splice => {
                if let Err(e) = self.splice_to(stream, SocketAddr::new(target, ns_port), ctx) {
                    crate::limited!(Warn, "published port {local}: {e}");
                }
            }
        }
    }

    /// A socket inside the namespace, from the pool (refilled in batches).
    fn ns_socket(&mut self, v6: bool, udp: bool) -> Result<OwnedFd, ForwardError> {
        if udp {
            return self
                .factory()?
                .sockets(SocketKind { v6, udp }, 1)?
                .pop()
                .ok_or_else(|| {
                    ForwardError::Namespace(NsError::Agent("no socket from the namespace".into()))
                });
        }
        let slot = usize::from(v6);
        if self.pool[slot].is_empty() {
            let fresh = self
                .factory()?
                .sockets(SocketKind { v6, udp: false }, POOL_BATCH)?;
            self.pool[slot] = fresh;
        }
        self.pool[slot].pop().ok_or_else(|| {
            ForwardError::Namespace(NsError::Agent("no socket from the namespace".into()))
        })
    }

    /// Start the socket factory now rather than on first use: once rlnet
    /// is confined (--enable-sandbox/--enable-seccomp) it can no longer
    /// fork into the namespace. Nothing to do without namespace handles.
    pub fn start_factory(&mut self) -> Result<(), ForwardError> {
        if self.ns.is_some() {
            self.factory()?;
        }
        Ok(())
    }

    fn factory(&mut self) -> Result<&Factory, ForwardError> {
        if self.factory.is_none() {
            let ns = self
                .ns
                .as_ref()
                .ok_or_else(|| NsError::Agent("splice mode needs the namespace".into()))?;
            self.factory = Some(Factory::spawn(ns)?);
        }
        self.factory
            .as_ref()
            .ok_or_else(|| ForwardError::Namespace(NsError::Agent("no socket factory".into())))
    }

    fn splice_to(
        &mut self,
        host: TcpStream,
        target: SocketAddr,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        if self.splices.len() >= MAX_SPLICE {
            return Err(ForwardError::Namespace(NsError::Agent(
                "too many spliced connections".into(),
            )));
        }
        let fd = self.ns_socket(target.is_ipv6(), false)?;
        let sock = Socket::from(fd);
        let _ = sock.set_tcp_nodelay(true);
        match sock.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                return Err(ForwardError::Bind {
                    addr: target,
                    proto: Proto::Tcp,
                    err: e,
                });
            }
        }
        let ns = TcpStream::from_std(sock.into());
        let conn =
            SpliceConn::new(host, ns, &mut self.pipes).map_err(|err| ForwardError::Bind {
                addr: target,
                proto: Proto::Tcp,
                err,
            })?;
        let entry = self.splices.vacant_entry();
        let idx = entry.key();
        let conn = entry.insert(conn);
        let both = Interest::READABLE | Interest::WRITABLE;
        let _ = ctx.registry.register(
            conn.socket_mut(End::Host),
            token(Kind::SpliceHost, idx),
            both,
        );
        let _ = ctx
            .registry
            .register(conn.socket_mut(End::Ns), token(Kind::SpliceNs, idx), both);
        if conn.service() == Outcome::Done {
            self.end_splice(idx, ctx);
        }
        Ok(())
    }

    fn end_splice(&mut self, idx: usize, ctx: &Ctx<'_>) {
        if let Some(c) = self.splices.try_remove(idx) {
            let (mut host, mut ns) = c.finish(&mut self.pipes);
            let _ = ctx.registry.deregister(&mut host);
            let _ = ctx.registry.deregister(&mut ns);
        }
    }

    /// A datagram of `n` bytes from `client` on UDP listener `idx`, already
    /// sitting in the frame buffer at the maximal UDP payload offset.
    fn udp_in(
        &mut self,
        idx: usize,
        local: SocketAddr,
        client: SocketAddr,
        n: usize,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(cidx) = self.udp_client(idx, local, client, ctx) else {
            return;
        };
        let Some(uc) = self.udp.get_mut(cidx) else {
            return;
        };
        uc.last = ctx.now.total_micros();
        let Some(payload) = self.scratch.get(..n) else {
            return;
        };
        match uc.ns.as_ref() {
            Some(ns) => {
                let _ = ns.send(payload);
            }
            None => {
                // Synthesise the datagram from the presented client.
                let Some(port) = ctx.port_for(uc.key.src.ip()) else {
                    return;
                };
                let Some(out) = ctx.out(port) else { return };
                let off = wire::udp_payload_offset(uc.key.src.is_ipv6());
                let buf = out.ip_buf();
                let Some(room) = buf.get_mut(off..off + n) else {
                    return;
                };
                room.copy_from_slice(payload);
                if let Some(len) = wire::udp_headers(buf, uc.key.dst, uc.key.src, n) {
                    out.send_ip(len);
                }
            }
        }
    }

    /// The UDP client `client` of listener `idx` (published at `local`):
    /// the one known, or a new one (with its namespace socket in splice
    /// mode). `None` when the port is not published (any more), the target
    /// has no address, the clients are at their cap, or the socket fails.
    fn udp_client(
        &mut self,
        idx: usize,
        local: SocketAddr,
        client: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) -> Option<usize> {
        let (r, ns_port) = self
            .table
            .lookup(Proto::Udp, local)
            .map(|(r, p)| (r.clone(), p))?;
        let target = r.target(local.ip(), &self.plan)?;
        if let Some(&c) = self.udp_by_client.get(&(idx, client)) {
            return Some(c);
        }
        if self.udp.len() >= MAX_UDP_CLIENTS {
            return None;
        }
        let presented = self.present(client.ip(), target);
        let key = FlowKey {
            src: SocketAddr::new(target, ns_port),
            dst: SocketAddr::new(presented, client.port()),
        };
        let ns = match r.mode {
            Mode::Stack => None,
            Mode::Splice => match self.udp_ns_socket(SocketAddr::new(target, ns_port)) {
                Ok(s) => Some(s),
                Err(e) => {
                    crate::limited!(Warn, "published UDP port {local}: {e}");
                    return None;
                }
            },
        };
        let now = ctx.now.total_micros();
        let entry = self.udp.vacant_entry();
        let c = entry.key();
        let uc = entry.insert(UdpClient {
            listener: idx,
            client,
            key,
            ns,
            last: now,
        });
        if let Some(s) = uc.ns.as_mut() {
            let _ = ctx
                .registry
                .register(s, token(Kind::UdpNs, c), Interest::READABLE);
        }
        self.udp_by_client.insert((idx, client), c);
        if uc.ns.is_none() {
            self.udp_by_key.insert(key, c);
        }
        self.timers.push((now + UDP_IDLE_US, c));
        Some(c)
    }

    fn udp_ns_socket(&mut self, target: SocketAddr) -> Result<UdpSocket, ForwardError> {
        let fd = self.ns_socket(target.is_ipv6(), true)?;
        let sock = Socket::from(fd);
        sock.connect(&target.into())
            .map_err(|err| ForwardError::Bind {
                addr: target,
                proto: Proto::Udp,
                err,
            })?;
        Ok(UdpSocket::from_std(sock.into()))
    }

    /// Splice-mode UDP: replies from the service go back to the client from
    /// the published address.
    fn udp_ns_ready(&mut self, cidx: usize, ctx: &mut Ctx<'_>) {
        let Some(uc) = self.udp.get_mut(cidx) else {
            return;
        };
        let Some(ns) = uc.ns.as_ref() else { return };
        let Some(Listener {
            sock: Sock::Udp(l), ..
        }) = self.listeners.get(uc.listener)
        else {
            return;
        };
        if self.scratch.is_empty() {
            self.scratch = vec![0u8; 65536].into_boxed_slice();
        }
        for _ in 0..64 {
            match ns.recv(&mut self.scratch) {
                Ok(n) => {
                    let _ = l.send_to(&self.scratch[..n], uc.client);
                    uc.last = ctx.now.total_micros();
                }
                Err(_) => return,
            }
        }
    }

    /// A UDP datagram from the namespace: if it answers a published-port
    /// client, send it to that client from the published address.
    pub fn udp_reply(&mut self, key: &FlowKey, payload: &[u8], now: i64) -> bool {
        let Some(&c) = self.udp_by_key.get(key) else {
            return false;
        };
        let Some(uc) = self.udp.get_mut(c) else {
            return false;
        };
        uc.last = now;
        if let Some(Listener {
            sock: Sock::Udp(l), ..
        }) = self.listeners.get(uc.listener)
        {
            let _ = l.send_to(payload, uc.client);
        }
        true
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.iter().map(|(t, _)| *t).min()
    }

    /// Expire idle UDP clients.
    pub fn run_timers(&mut self, ctx: &Ctx<'_>) {
        let now = ctx.now.total_micros();
        if self.timers.iter().all(|(t, _)| *t > now) {
            return;
        }
        let mut keep = Vec::with_capacity(self.timers.len());
        for (t, c) in std::mem::take(&mut self.timers) {
            if t > now {
                keep.push((t, c));
                continue;
            }
            let Some(uc) = self.udp.get(c) else { continue };
            let deadline = uc.last + UDP_IDLE_US;
            if deadline > now {
                keep.push((deadline, c));
                continue;
            }
            let mut uc = self.udp.remove(c);
            if let Some(s) = uc.ns.as_mut() {
                let _ = ctx.registry.deregister(s);
            }
            self.udp_by_client.remove(&(uc.listener, uc.client));
            self.udp_by_key.remove(&uc.key);
        }
        self.timers = keep;
    }

    /// Counters for `status`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.listeners.len(), self.splices.len(), self.udp.len())
    }
}

fn bind_error(addr: SocketAddr, proto: Proto, err: io::Error) -> ForwardError {
    match err.raw_os_error() {
        Some(libc::EADDRINUSE) => ForwardError::InUse { addr, proto },
        Some(libc::EACCES) | Some(libc::EPERM) => ForwardError::Privileged { addr, proto },
        _ => ForwardError::Bind { addr, proto, err },
    }
}

/// `net.ipv4.ip_unprivileged_port_start`, or 0 when we may bind anything.
pub fn unprivileged_port_start() -> u16 {
    if nix::unistd::geteuid().is_root() {
        return 0;
    }
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}
