//! Published ports, the I/O side: host listeners, and the two ways a
//! connection gets into the namespace.
//!
//! - Stack mode (default): the service sees the connection *from the
//!   client's real address* (a client on host loopback shows as the
//!   gateway). TCP takes the real-address splice when the namespace allows
//!   it: a socket made inside it by the socket factory binds the client's
//!   address (IP_TRANSPARENT, marked so the answers come back to it,
//!   `sys::netlink::real_address_routing`) and splice(2) moves the bytes,
//!   as in splice mode. If the namespace's firewall sends the connection on
//!   elsewhere (a DNAT to a container), the answer leaves through the TAP:
//!   rlnet sees it ([`Forwarder::escaped`]) and that service's connections
//!   become flows in the userspace stack, which connects from the client's
//!   address too. UDP always takes the stack, per client.
//! - Splice mode: a socket created inside the namespace (by the socket
//!   factory) connects to the service, and splice(2) moves the bytes.
//!
//! The target is the namespace's interface address, never its loopback: a
//! service bound only to 127.0.0.1 inside is not exposed (unless pasta's
//! `--host-lo-to-ns-lo` asks for it, for loopback clients).
//!
//! pasta mode ([`Forwarder::start_pasta`], docs/compat.md "rlnet as pasta")
//! adds: loopback clients of published ports take the splice path (as
//! pasta's), other clients the stack from their real address; `-T/-U`
//! listeners on the namespace's loopback whose connections and datagrams go
//! to the host's loopback ("reverse" listeners, sockets from the factory);
//! `all` bound best effort; and `auto` ([`super::auto`]).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd, RawFd};

use mio::Interest;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use slab::Slab;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use thiserror::Error;

use super::auto::PastaState;
use super::ports::{loopback, unspecified};
use super::spec::{Mode, Proto, PublishSpec};
use super::splice::{End, Outcome, PipePool, SpliceConn};
use super::table::{PortTable, RuleId, TableError};
use crate::config::AddrPlan;
use crate::event::{Ctx, Kind, rewatch, token};
use crate::nat::{FlowKey, Nat};
use crate::sys::ns::{Factory, FactoryOptions, FactoryStart, NsError, NsHandles, SocketKind};
use crate::sys::os::{self, FdReserve};
use crate::wire;

mod pasta;

/// Idle timeout of a published UDP client flow (RootlessKit uses 90 s).
const UDP_IDLE_US: i64 = 120_000_000;
/// Connections accepted per readiness event before other work gets a turn.
const ACCEPT_BATCH: usize = 64;
/// Limits on what clients of published ports may hold.
const MAX_SPLICE: usize = 16384;
const MAX_UDP_CLIENTS: usize = 4096;
/// Namespace sockets fetched from the factory per round trip; the next
/// batch is asked for when fewer than half are left.
pub const POOL_BATCH: usize = 32;
/// At most this many per address family wait unused: a batch that came
/// while almost half of the last was left (tests/e2e_publish.rs bounds
/// rlnet's fds by it).
pub const POOL_SPARE_MAX: usize = POOL_BATCH + POOL_BATCH / 2;

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
    #[error("no port of {option} all could be bound: they are all taken, or privileged")]
    NoneBound { option: String },
}

enum Sock {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A host port of a rule of the table, into the namespace.
    Published(RuleId),
    /// pasta's `-T/-U`: a port on the namespace's loopback, to `target`
    /// on the host's loopback.
    Reverse { target: SocketAddr },
}

struct Listener {
    role: Role,
    local: SocketAddr,
    sock: Sock,
}

/// How a UDP client's datagrams travel.
enum UdpPath {
    Stack(FlowKey),
    Socket(UdpSocket),
}

/// What [`UdpPath`] a new client gets.
enum UdpRoute {
    Stack(FlowKey),
    /// A socket inside the namespace, connected to this target.
    Ns(SocketAddr),
    /// A host socket, connected to this target (pasta's `-U`).
    Host(SocketAddr),
}

/// pasta's `-U`: a host socket connected to `target` on the host's loopback.
fn udp_host_socket(target: SocketAddr) -> Result<UdpSocket, ForwardError> {
    let err = |err| ForwardError::Bind {
        addr: target,
        proto: Proto::Udp,
        err,
    };
    let s = Socket::new(
        Domain::for_address(target),
        Type::DGRAM.nonblocking(),
        Some(Protocol::UDP),
    )
    .map_err(err)?;
    s.connect(&target.into()).map_err(err)?;
    Ok(UdpSocket::from_std(s.into()))
}

/// A published UDP client: datagrams from `client` on listener `listener`.
struct UdpClient {
    listener: usize,
    client: SocketAddr,
    /// The address the client sent to, when the listener is a wildcard:
    /// answers leave from it.
    via: Option<IpAddr>,
    /// Stack mode: the flow as the namespace sees it (service → presented
    /// client). Otherwise a connected socket carries the datagrams:
    /// inside the namespace to the service (splice mode), or on the host to
    /// its loopback (pasta's `-U`).
    path: UdpPath,
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
    /// Bytes the splices delivered, all told.
    moved: u64,
    pipes: PipePool,
    /// Inside-namespace handles, to start the socket factory on first use.
    ns: Option<NsHandles>,
    factory: Option<Factory>,
    /// The factory forked by the caller before the TAP was made, until
    /// [`Self::start_factory`] waits for it.
    starting: Option<FactoryStart>,
    /// Sockets made inside the namespace, ready to connect: [v4, v6,
    /// real-address v4, real-address v6].
    pool: [Vec<OwnedFd>; 4],
    /// Pool slots whose next batch was asked of the factory and not yet
    /// received, in the order asked (the factory answers in that order).
    pending: VecDeque<usize>,
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
    /// pasta mode: loopback clients take the splice path.
    splice_loopback: bool,
    /// pasta mode: its options and `auto`'s state.
    pasta: Option<Box<PastaState>>,
    /// Real-address splices still connecting: (service, the client's
    /// address as bound) → splice, and back.
    real_pending: HashMap<FlowKey, usize>,
    real_by_idx: HashMap<usize, FlowKey>,
    /// (service, client address) pairs whose connections were seen leaving
    /// through the TAP: they take the userspace stack from then on.
    real_off: std::collections::HashSet<(SocketAddr, IpAddr)>,
    /// The factory could not be started on first use: not tried again.
    factory_failed: bool,
    /// Real-address splices connected, and fallen back to the stack.
    real_stats: (u64, u64),
    /// Spliced ends unwatched for reading (back-pressure), since start.
    read_pauses: u64,
}

fn bind(proto: Proto, addr: SocketAddr, ifname: Option<&str>) -> io::Result<Sock> {
    let (ty, p) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let s = Socket::new(Domain::for_address(addr), ty.nonblocking(), Some(p))?;
    listen_on(s, proto, addr, ifname)
}

/// Bind `s` to `addr` (on `ifname` only, if given) and, for TCP, listen.
fn listen_on(s: Socket, proto: Proto, addr: SocketAddr, ifname: Option<&str>) -> io::Result<Sock> {
    if let Some(name) = ifname {
        s.bind_device(Some(name.as_bytes()))?;
    }
    if addr.is_ipv6() {
        // `[::]` means IPv6 only; IPv4 gets its own socket, as with Docker.
        s.set_only_v6(true)?;
    }
    if proto == Proto::Udp && addr.ip().is_unspecified() {
        // Answers must leave from the address the client sent to, which
        // the route back to the client need not pick.
        want_destination(&s, addr.is_ipv6())?;
    }
    if proto == Proto::Tcp {
        // Rebind at once after a restart (TIME_WAIT), never over a listener.
        s.set_reuse_address(true)?;
        // Accepted connections inherit it: one setsockopt per listener
        // instead of one per connection.
        s.set_tcp_nodelay(true)?;
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

/// How the socket factory of a namespace with addresses `plan` starts:
/// confined, with the namespace's /proc/net tables if `tables` (pasta's
/// `auto`), set up for real client addresses shown as `plan`'s gateways.
pub fn factory_options(plan: &AddrPlan, tables: bool) -> FactoryOptions {
    FactoryOptions {
        confine: true,
        tables,
        real_addr: Some([
            Some(IpAddr::V4(plan.gateway4)),
            plan.v6.map(|v6| IpAddr::V6(v6.gateway6)),
        ]),
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
            moved: 0,
            pipes: PipePool::new(os::pipe_budget_pages()),
            ns,
            factory: None,
            starting: None,
            pool: Default::default(),
            pending: VecDeque::new(),
            udp: Slab::new(),
            udp_by_client: HashMap::new(),
            udp_by_key: HashMap::new(),
            again: Vec::new(),
            timers: Vec::new(),
            scratch: Box::default(),
            reserve: FdReserve::new(),
            splice_loopback: false,
            pasta: None,
            real_pending: HashMap::new(),
            real_by_idx: HashMap::new(),
            real_off: std::collections::HashSet::new(),
            factory_failed: false,
            real_stats: (0, 0),
            read_pauses: 0,
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
        self.publish_on(specs, mode, guest, None, ctx)
    }

    /// [`Self::publish`], listening on interface `ifname` only if given.
    fn publish_on(
        &mut self,
        specs: &[PublishSpec],
        mode: Mode,
        guest: Option<IpAddr>,
        ifname: Option<&str>,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<RuleId>, ForwardError> {
        self.table.check(specs, self.unprivileged_start)?;
        let mut bound: Vec<(usize, SocketAddr, Sock)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            for port in spec.host_ports.iter() {
                for (addr, s) in self.bind_port(spec, port, ifname)? {
                    bound.push((i, addr, s));
                }
            }
        }
        let ids: Vec<RuleId> = specs
            .iter()
            .map(|s| self.table.insert(*s, mode, guest))
            .collect();
        for (i, local, sock) in bound {
            self.add_listener(Role::Published(ids[i]), local, sock, ctx);
        }
        for id in &ids {
            if let Some(rule) = self.table.get(*id) {
                log::info!("published {} ({:?} mode)", rule.spec, rule.mode);
            }
        }
        Ok(ids)
    }

    /// The host sockets of one port of `spec`: every address it stands
    /// for (the IPv6 wildcard only with IPv6, and optional), or the error.
    fn bind_port(
        &self,
        spec: &PublishSpec,
        port: u16,
        ifname: Option<&str>,
    ) -> Result<Vec<(SocketAddr, Sock)>, ForwardError> {
        let mut out = Vec::new();
        for (addr, optional) in host_addrs(spec, port) {
            // Without an address family in the namespace its wildcard has no target.
            if optional && self.plan.v6.is_none()
                || addr.is_ipv4() && !self.plan.ipv4() && spec.host_ip.is_none()
            {
                continue;
            }
            match bind(spec.proto, addr, ifname) {
                Ok(s) => out.push((addr, s)),
                Err(e)
                    if optional
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                        ) => {}
                // Dropping `out` closes everything bound so far.
                Err(e) => return Err(bind_error(addr, spec.proto, e)),
            }
        }
        Ok(out)
    }

    fn add_listener(&mut self, role: Role, local: SocketAddr, sock: Sock, ctx: &Ctx<'_>) {
        let entry = self.listeners.vacant_entry();
        let t = token(Kind::Listener, entry.key());
        let mut l = Listener { role, local, sock };
        let r = match &mut l.sock {
            Sock::Tcp(s) => ctx.registry.register(s, t, Interest::READABLE),
            Sock::Udp(s) => ctx.registry.register(s, t, Interest::READABLE),
        };
        if let Err(e) = r {
            log::warn!("cannot watch listener {local}: {e}");
        }
        entry.insert(l);
    }

    /// Close the listeners `gone` picks, and forget their UDP clients (the
    /// slab may give a listener's index to a new one).
    fn remove_listeners(&mut self, gone: impl Fn(&Listener) -> bool, ctx: &Ctx<'_>) {
        let gone: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, l)| gone(l))
            .map(|(i, _)| i)
            .collect();
        for &i in &gone {
            let mut l = self.listeners.remove(i);
            let _ = match &mut l.sock {
                Sock::Tcp(s) => ctx.registry.deregister(s),
                Sock::Udp(s) => ctx.registry.deregister(s),
            };
        }
        let clients: Vec<usize> = self
            .udp
            .iter()
            .filter(|(_, c)| gone.contains(&c.listener))
            .map(|(i, _)| i)
            .collect();
        for c in clients {
            self.drop_udp_client(c, ctx);
        }
    }

    fn drop_udp_client(&mut self, c: usize, ctx: &Ctx<'_>) {
        let Some(mut uc) = self.udp.try_remove(c) else {
            return;
        };
        match &mut uc.path {
            UdpPath::Socket(s) => {
                let _ = ctx.registry.deregister(s);
            }
            UdpPath::Stack(key) => {
                self.udp_by_key.remove(key);
            }
        }
        self.udp_by_client.remove(&(uc.listener, uc.client));
    }

    /// Unpublish: listeners close at once; established connections live on.
    pub fn unpublish(&mut self, ids: &[RuleId], ctx: &Ctx<'_>) -> Result<(), ForwardError> {
        let removed = self.table.remove_many(ids)?;
        self.remove_listeners(
            |l| removed.iter().any(|r| l.role == Role::Published(r.id)),
            ctx,
        );
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
    /// namespace) shows as the gateway. pasta's model: the host's own
    /// address (which is the namespace's too) shows as the
    /// `--map-guest-addr` address, loopback as the `--map-host-loopback`
    /// one (else the gateway); the subnet is real, its clients show as
    /// themselves.
    fn present(&self, client: IpAddr, target: IpAddr) -> IpAddr {
        let plan = &self.plan;
        let gw = match (target, plan.v6) {
            (IpAddr::V6(_), Some(v6)) => IpAddr::V6(v6.gateway6),
            _ => IpAddr::V4(plan.gateway4),
        };
        let same_family = client.is_ipv4() == target.is_ipv4();
        if !same_family || client.is_unspecified() {
            return gw;
        }
        let Some(shared) = plan.shared else {
            return if client.is_loopback() || plan.in_subnet(client) {
                gw
            } else {
                client
            };
        };
        let (own, host_map, lo_map) = match client {
            IpAddr::V4(a) => (
                a == plan.guest4,
                shared.host4.map(|h| IpAddr::V4(h.0)),
                shared.loopback4.map(IpAddr::V4),
            ),
            IpAddr::V6(a) => (
                plan.v6.is_some_and(|v6| a == v6.guest6),
                shared.host6.map(|h| IpAddr::V6(h.0)),
                shared.loopback6.map(IpAddr::V6),
            ),
        };
        if client.is_loopback() {
            lo_map.unwrap_or(gw)
        } else if own {
            host_map.unwrap_or(gw)
        } else {
            client
        }
    }

    /// Readiness on a listener or a spliced connection: (readable, writable,
    /// closed: a FIN or an error was reported).
    pub fn event(
        &mut self,
        kind: Kind,
        idx: usize,
        (readable, writable, closed): (bool, bool, bool),
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
                    c.ready(end, readable, writable, closed);
                    let before = c.moved();
                    let done = c.service() == Outcome::Done;
                    self.moved += c.moved() - before;
                    if !done {
                        self.read_pauses += watch_splice(c, idx, ctx.registry);
                    }
                    // Connected: no longer waiting for an answer (an end
                    // before that is settled by end_splice).
                    if c.connected() && !self.real_by_idx.is_empty() && self.real_settled(idx) {
                        self.real_stats.0 += 1;
                    }
                    if done {
                        self.end_splice(idx);
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
            self.event(Kind::Listener, idx, (true, false, false), nat, ctx);
        }
    }

    /// Accept or receive what is waiting; true if the batch limit was hit.
    fn listener_ready(&mut self, idx: usize, nat: &mut Nat, ctx: &mut Ctx<'_>) -> bool {
        for _ in 0..ACCEPT_BATCH {
            let Some(l) = self.listeners.get(idx) else {
                return false;
            };
            let (local, role) = (l.local, l.role);
            match &l.sock {
                Sock::Tcp(s) => match s.accept() {
                    Ok((stream, client)) => match role {
                        Role::Published(_) => {
                            if client.ip().is_loopback() {
                                os::local_hop_congestion(stream.as_fd());
                            }
                            self.accepted(local, stream, client, nat, ctx);
                        }
                        Role::Reverse { target } => {
                            // The client is in the namespace.
                            os::local_hop_congestion(stream.as_fd());
                            if let Err(e) = self.splice_out(stream, target, ctx) {
                                crate::limited!(Warn, "forwarded port {local}: {e}");
                            }
                        }
                    },
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
                    match recv_with_dst(s, &mut self.scratch) {
                        Ok((n, client, via)) => self.udp_in(idx, local, (client, via), n, ctx),
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
        match self.mode_for(rule.mode, client.ip()) {
            Mode::Stack => {
                let presented = self.present(client.ip(), target);
                let key = FlowKey {
                    src: SocketAddr::new(target, ns_port),
                    dst: SocketAddr::new(presented, client.port()),
                };
                // No namespace owns the target (it left the network): the
                // client's connection just closes.
                let Some(port) = ctx.port_for(target) else {
                    return;
                };
                let stream = match self.splice_real(stream, key, ctx) {
                    Ok(()) => return,
                    Err(stream) => stream,
                };
                nat.inbound_tcp(key, port, stream, ctx);
            }
            Mode::Splice => {
                let to = SocketAddr::new(self.splice_target(target, client.ip()), ns_port);
                if let Err(e) = self.splice_to(stream, to, client.port(), ctx) {
                    crate::limited!(Warn, "published port {local}: {e}");
                }
            }
        }
    }

    /// How a client's connection enters: pasta's loopback clients take the
    /// splice path (the namespace socket connects from the namespace's own
    /// address, as pasta's does), every other client the rule's.
    fn mode_for(&self, mode: Mode, client: IpAddr) -> Mode {
        if self.splice_loopback && client.is_loopback() {
            Mode::Splice
        } else {
            mode
        }
    }

    /// Where a spliced client's namespace socket connects: the target, or
    /// with pasta's `--host-lo-to-ns-lo` the namespace's loopback for a
    /// loopback client (then services bound to the namespace's loopback
    /// only are reachable too, and the namespace's TIME_WAIT ports are
    /// reused after a second, as `net.ipv4.tcp_tw_reuse` allows on
    /// loopback).
    fn splice_target(&self, target: IpAddr, client: IpAddr) -> IpAddr {
        let ns_lo = self.pasta.as_ref().is_some_and(|p| p.opts.ns_lo);
        if ns_lo && client.is_loopback() {
            loopback(target.is_ipv6())
        } else {
            target
        }
    }

    /// A socket inside the namespace, from the pool. The next batch is
    /// asked for when the pool is half used and taken when it has come, so
    /// a connection rarely waits for the factory (that wait was the slow
    /// connection in every batch).
    fn ns_socket(&mut self, v6: bool, udp: bool, real: bool) -> Result<OwnedFd, ForwardError> {
        if udp {
            // Asked one at a time, after what is already on its way.
            self.collect(true)?;
            let kind = SocketKind {
                v6,
                udp,
                real: false,
            };
            return self.factory()?.sockets(kind, 1)?.pop().ok_or_else(|| {
                ForwardError::Namespace(NsError::Agent("no socket from the namespace".into()))
            });
        }
        let slot = usize::from(v6) + 2 * usize::from(real);
        self.collect(false)?;
        if self.pool[slot].is_empty() {
            self.ask(slot)?;
            self.collect(true)?;
        }
        let sock = self.pool[slot].pop().ok_or_else(|| {
            ForwardError::Namespace(NsError::Agent("no socket from the namespace".into()))
        })?;
        if self.pool[slot].len() < POOL_BATCH / 2 {
            self.ask(slot)?;
        }
        Ok(sock)
    }

    /// Ask the factory for a batch for pool `slot`, unless one is coming.
    fn ask(&mut self, slot: usize) -> Result<(), ForwardError> {
        if !self.pending.contains(&slot) {
            let kind = SocketKind {
                v6: slot % 2 == 1,
                udp: false,
                real: slot >= 2,
            };
            self.factory()?.request(kind, POOL_BATCH)?;
            self.pending.push_back(slot);
        }
        Ok(())
    }

    /// Take the batches that have come (`wait`: every one asked for).
    fn collect(&mut self, wait: bool) -> Result<(), ForwardError> {
        while let Some(&slot) = self.pending.front() {
            let got = self.factory()?.receive(wait);
            // A broken channel answers nothing more: forget what was asked.
            let Some(fds) = got.inspect_err(|_| self.pending.clear())? else {
                break;
            };
            self.pending.pop_front();
            self.pool[slot].extend(fds);
        }
        Ok(())
    }

    /// The socket factory the caller forked already ([`factory_options`]
    /// of this plan, with tables if pasta's `auto` scans the namespace).
    pub fn adopt_factory(&mut self, started: Option<FactoryStart>) {
        self.starting = started;
    }

    /// The channel of the socket factory forked during start-up, until
    /// [`Self::start_factory`] takes its word.
    pub fn factory_word_fd(&self) -> Option<RawFd> {
        self.starting.as_ref().map(FactoryStart::word_fd)
    }

    /// Start the socket factory now rather than on first use: once rlnet
    /// is confined (by default; pasta mode always) it can
    /// no longer fork into the namespace; the factory is confined too.
    /// Nothing to do without namespace handles.
    pub fn start_factory(&mut self) -> Result<(), ForwardError> {
        let Some(ns) = self.ns.as_ref() else {
            return Ok(());
        };
        if self.factory.is_none() {
            let tables = self.pasta.as_ref().is_some_and(|p| p.scans_ns());
            let mut f = match self.starting.take() {
                Some(started) => started.finish()?,
                None => Factory::spawn(ns, factory_options(&self.plan, tables))?,
            };
            if let Some(p) = self.pasta.as_mut() {
                p.set_ns_tables(f.take_tables());
            }
            self.factory = Some(f);
        }
        Ok(())
    }

    fn factory(&mut self) -> Result<&Factory, ForwardError> {
        if self.factory.is_none() {
            if self.ns.is_none() {
                return Err(NsError::Agent("splice mode needs the namespace".into()).into());
            }
            // Started late (rlnet itself is not confined): confined anyway,
            // it needs nothing but socket(2). The one started early, if
            // any, is the one taken.
            self.start_factory()?;
        }
        self.factory
            .as_ref()
            .ok_or_else(|| ForwardError::Namespace(NsError::Agent("no socket factory".into())))
    }

    /// The socket factory's process, if it runs (tests check that it is
    /// confined).
    pub fn factory_pid(&self) -> Option<u32> {
        self.factory
            .as_ref()
            .and_then(|f| u32::try_from(f.pid().as_raw()).ok())
    }

    /// A client connection into the namespace: a socket made inside it
    /// connects to `target`, splice(2) joins the two.
    fn splice_to(
        &mut self,
        host: TcpStream,
        target: SocketAddr,
        client_port: u16,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        if self.splices.len() >= MAX_SPLICE {
            return Err(too_many_splices());
        }
        let v6 = target.is_ipv6();
        let sock = Socket::from(self.ns_socket(v6, false, false)?);
        // From the client's own port number when it is free: connect(2)
        // takes over a TIME_WAIT of the same four-tuple for an explicitly
        // bound port (timestamps keep that safe), where an ephemeral port
        // skips it. Under churn every spliced connection leaves a TIME_WAIT
        // in the namespace, and ephemeral connects slow to a crawl as they
        // fill its range (bench/churn-in.sh); the client's port, which its
        // own kernel reuses as fast as it may, avoids that. (The factory
        // sets SO_REUSEADDR, which binding over a TIME_WAIT needs.)
        let any = SocketAddr::new(unspecified(v6), client_port);
        if sock.bind(&any.into()).is_err() {
            return self.splice(host, sock, target, false, ctx).map(drop);
        }
        match start_connect(&sock, target) {
            // The four-tuple is taken by a live connection: a fresh socket,
            // and the namespace picks the port.
            Err(ForwardError::Bind { err, .. })
                if err.raw_os_error() == Some(libc::EADDRNOTAVAIL) =>
            {
                let sock = Socket::from(self.ns_socket(v6, false, false)?);
                self.splice(host, sock, target, false, ctx).map(drop)
            }
            started => {
                started?;
                self.join(host, sock, target, false, ctx).map(drop)
            }
        }
    }

    /// A stack-mode client connection through the real-address splice:
    /// a socket inside the namespace bound to the client's address as the
    /// service is to see it (`key.dst`; its port too when free) connects
    /// to the service (`key.src`). The client's bytes wait in its socket
    /// until the connection is made, so that [`Self::escaped`] can still
    /// hand it to the stack. The stream comes back when this path is not
    /// open to it: no factory (none could be started: no namespace of its
    /// own, or rlnet confined without one), a family the namespace could
    /// not be set up for, the pipe budget spent, a (service, client
    /// address) seen routed on, or a socket that could not be made or bound.
    fn splice_real(
        &mut self,
        host: TcpStream,
        key: FlowKey,
        ctx: &Ctx<'_>,
    ) -> Result<(), TcpStream> {
        let v6 = key.src.is_ipv6();
        // Past the pipe budget, connections take the stack, which holds
        // tens of thousands without a pipe.
        if self.splices.len() >= MAX_SPLICE
            || !self.pipes.has_room_for_two()
            || self.real_off.contains(&(key.src, key.dst.ip()))
        {
            return Err(host);
        }
        // Started on first use when rlnet is not confined (or has no
        // namespace: a named network's daemon, whose members take the stack).
        if self.factory.is_none() && !self.factory_failed && self.factory().is_err() {
            self.factory_failed = true;
        }
        if !self.factory.as_ref().is_some_and(|f| f.real_addr(v6)) {
            return Err(host);
        }
        let Ok(fd) = self.ns_socket(v6, false, true) else {
            return Err(host);
        };
        let sock = Socket::from(fd);
        let any = SocketAddr::new(key.dst.ip(), 0);
        if sock.bind(&key.dst.into()).is_err() && sock.bind(&any.into()).is_err() {
            return Err(host);
        }
        let Some(bound) = sock.local_addr().ok().and_then(|a| a.as_socket()) else {
            return Err(host);
        };
        match self.splice(host, sock, key.src, true, ctx) {
            // Connected already: delivered inside the namespace, so no
            // answer of it can leave through the TAP.
            Ok(Some(idx)) if self.splices.get(idx).is_some_and(SpliceConn::connected) => {
                self.real_stats.0 += 1;
            }
            Ok(Some(idx)) => {
                let k = FlowKey {
                    src: key.src,
                    dst: bound,
                };
                self.real_pending.insert(k, idx);
                self.real_by_idx.insert(idx, k);
            }
            Ok(None) => {}
            Err(e) => crate::limited!(Warn, "published port to {}: {e}", key.src),
        }
        Ok(())
    }

    /// True while some real-address splice is connecting: only then can a
    /// frame from the namespace be one of their answers.
    pub fn real_pending(&self) -> bool {
        !self.real_pending.is_empty()
    }

    /// A SYN-ACK `key` (service → client) came out of the namespace's TAP.
    /// If it answers a real-address splice that is connecting, the
    /// namespace routes that connection on instead of delivering the answer
    /// to the splice's socket (its firewall sent it to a container behind a
    /// bridge, or the client's address is in one of its subnets): the
    /// splice is dropped, its client connection becomes a stack flow (from
    /// another port of the client's address: the namespace's connection
    /// tracking still holds the abandoned one), and later connections from
    /// that address to that service take the stack.
    /// True if `key` was such an answer (the frame is then consumed).
    pub fn escaped(&mut self, key: &FlowKey, nat: &mut Nat, ctx: &mut Ctx<'_>) -> bool {
        let Some(idx) = self.real_pending.remove(key) else {
            return false;
        };
        self.real_by_idx.remove(&idx);
        self.real_stats.1 += 1;
        if self.real_off.insert((key.src, key.dst.ip())) {
            crate::limited!(
                Info,
                "published connections from {} to {} are routed on inside the namespace; \
                 they take rlnet's userspace stack",
                key.dst.ip(),
                key.src
            );
        }
        let Some(c) = self.splices.try_remove(idx) else {
            return true;
        };
        let (mut host, ns) = c.finish(&mut self.pipes);
        drop(ns);
        let _ = ctx.registry.deregister(&mut host);
        if let Some(port) = ctx.port_for(key.src.ip()) {
            let mut k = *key;
            k.dst.set_port(fallback_port(key.dst.port()));
            nat.inbound_tcp(k, port, host, ctx);
        }
        true
    }

    /// Splice `idx` connected or ended: no longer waiting for an answer.
    /// True if it was.
    fn real_settled(&mut self, idx: usize) -> bool {
        let Some(k) = self.real_by_idx.remove(&idx) else {
            return false;
        };
        self.real_pending.remove(&k);
        true
    }

    /// Real-address splices connected, and fallen back to the stack, since
    /// start.
    pub fn real_stats(&self) -> (u64, u64) {
        self.real_stats
    }

    /// See [`crate::api::reply::Counters::read_pauses`].
    pub fn read_pauses(&self) -> u64 {
        self.read_pauses
    }

    /// Bytes spliced between host and namespace sockets since start.
    pub fn spliced_bytes(&self) -> u64 {
        self.moved
    }

    /// pasta's `-T`: a client in the namespace, to `target` on the host's
    /// loopback from a host socket.
    fn splice_out(
        &mut self,
        client: TcpStream,
        target: SocketAddr,
        ctx: &Ctx<'_>,
    ) -> Result<(), ForwardError> {
        if self.splices.len() >= MAX_SPLICE {
            return Err(too_many_splices());
        }
        let sock = Socket::new(
            Domain::for_address(target),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )
        .map_err(|err| ForwardError::Bind {
            addr: target,
            proto: Proto::Tcp,
            err,
        })?;
        let _ = sock.set_tcp_nodelay(true);
        os::local_hop_congestion(sock.as_fd());
        self.splice(client, sock, target, false, ctx).map(drop)
    }

    /// Connect `sock` to `target` and splice it with the accepted `client`
    /// (`hold`: read nothing from the client until connected). The
    /// splice's index, unless it ended at once.
    fn splice(
        &mut self,
        client: TcpStream,
        sock: Socket,
        target: SocketAddr,
        hold: bool,
        ctx: &Ctx<'_>,
    ) -> Result<Option<usize>, ForwardError> {
        start_connect(&sock, target)?;
        self.join(client, sock, target, hold, ctx)
    }

    /// Splice the accepted `host` connection with `sock`, whose connect to
    /// `target` has started.
    fn join(
        &mut self,
        host: TcpStream,
        sock: Socket,
        target: SocketAddr,
        hold: bool,
        ctx: &Ctx<'_>,
    ) -> Result<Option<usize>, ForwardError> {
        let ns = TcpStream::from_std(sock.into());
        let conn =
            SpliceConn::new(host, ns, hold, &mut self.pipes).map_err(|err| ForwardError::Bind {
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
        let done = conn.service() == Outcome::Done;
        self.moved += conn.moved();
        if done {
            self.end_splice(idx);
            return Ok(None);
        }
        self.read_pauses += watch_splice(conn, idx, ctx.registry);
        Ok(Some(idx))
    }

    /// Close a spliced connection. Its sockets are not deregistered first:
    /// rlnet holds the only descriptor of each (the factory closes its
    /// copy once sent), so close(2) takes them out of epoll, and two
    /// epoll_ctl calls per connection are saved.
    fn end_splice(&mut self, idx: usize) {
        let _ = self.real_settled(idx);
        if let Some(c) = self.splices.try_remove(idx) {
            drop(c.finish(&mut self.pipes));
        }
    }

    /// A datagram of `n` bytes from `client` on UDP listener `idx`, already
    /// sitting in the frame buffer at the maximal UDP payload offset.
    fn udp_in(
        &mut self,
        idx: usize,
        local: SocketAddr,
        (client, via): (SocketAddr, Option<IpAddr>),
        n: usize,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(cidx) = self.udp_client(idx, local, (client, via), ctx) else {
            return;
        };
        let Some(uc) = self.udp.get_mut(cidx) else {
            return;
        };
        uc.last = ctx.now.total_micros();
        let Some(payload) = self.scratch.get(..n) else {
            return;
        };
        match &uc.path {
            UdpPath::Socket(sock) => {
                let _ = sock.send(payload);
            }
            UdpPath::Stack(key) => {
                // Synthesise the datagram from the presented client.
                let Some(port) = ctx.port_for(key.src.ip()) else {
                    return;
                };
                let Some(out) = ctx.out(port) else { return };
                let off = wire::udp_payload_offset(key.src.is_ipv6());
                let buf = out.ip_buf();
                let Some(room) = buf.get_mut(off..off + n) else {
                    return;
                };
                room.copy_from_slice(payload);
                if let Some(len) = wire::udp_headers(buf, key.dst, key.src, n) {
                    out.send_ip(len);
                }
            }
        }
    }

    /// How datagrams of `client` on listener `idx` (at `local`) travel,
    /// before any socket exists: None when the port is not published (any
    /// more) or the target has no address.
    fn udp_route(&self, idx: usize, local: SocketAddr, client: SocketAddr) -> Option<UdpRoute> {
        if let Role::Reverse { target } = self.listeners.get(idx)?.role {
            return Some(UdpRoute::Host(target));
        }
        let (r, ns_port) = self.table.lookup(Proto::Udp, local)?;
        let target = r.target(local.ip(), &self.plan)?;
        Some(match self.mode_for(r.mode, client.ip()) {
            Mode::Stack => UdpRoute::Stack(FlowKey {
                src: SocketAddr::new(target, ns_port),
                dst: SocketAddr::new(self.present(client.ip(), target), client.port()),
            }),
            Mode::Splice => UdpRoute::Ns(SocketAddr::new(
                self.splice_target(target, client.ip()),
                ns_port,
            )),
        })
    }

    /// The UDP client `client` of listener `idx` (published at `local`):
    /// the one known, or a new one (with its connected socket, unless the
    /// stack carries it). `None` when the port is not published (any more),
    /// the target has no address, the clients are at their cap, or the
    /// socket fails.
    fn udp_client(
        &mut self,
        idx: usize,
        local: SocketAddr,
        (client, via): (SocketAddr, Option<IpAddr>),
        ctx: &mut Ctx<'_>,
    ) -> Option<usize> {
        let route = self.udp_route(idx, local, client)?;
        if let Some(&c) = self.udp_by_client.get(&(idx, client)) {
            return Some(c);
        }
        if self.udp.len() >= MAX_UDP_CLIENTS {
            return None;
        }
        let socket = match route {
            UdpRoute::Stack(key) => Ok(UdpPath::Stack(key)),
            UdpRoute::Ns(target) => self.udp_ns_socket(target).map(UdpPath::Socket),
            UdpRoute::Host(target) => udp_host_socket(target).map(UdpPath::Socket),
        };
        let path = match socket {
            Ok(p) => p,
            Err(e) => {
                crate::limited!(Warn, "forwarded UDP port {local}: {e}");
                return None;
            }
        };
        let now = ctx.now.total_micros();
        let entry = self.udp.vacant_entry();
        let c = entry.key();
        let uc = entry.insert(UdpClient {
            listener: idx,
            client,
            via,
            path,
            last: now,
        });
        match &mut uc.path {
            UdpPath::Socket(s) => {
                let _ = ctx
                    .registry
                    .register(s, token(Kind::UdpNs, c), Interest::READABLE);
            }
            UdpPath::Stack(key) => {
                self.udp_by_key.insert(*key, c);
            }
        }
        self.udp_by_client.insert((idx, client), c);
        self.timers.push((now + UDP_IDLE_US, c));
        Some(c)
    }

    fn udp_ns_socket(&mut self, target: SocketAddr) -> Result<UdpSocket, ForwardError> {
        let fd = self.ns_socket(target.is_ipv6(), true, false)?;
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
        let UdpPath::Socket(ns) = &uc.path else {
            return;
        };
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
                    send_from(l, &self.scratch[..n], uc.client, uc.via);
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
            send_from(l, payload, uc.client, uc.via);
        }
        true
    }

    pub fn next_deadline(&self) -> Option<i64> {
        let auto = self.pasta.as_ref().and_then(|p| p.next_deadline());
        self.timers.iter().map(|(t, _)| *t).chain(auto).min()
    }

    /// Expire idle UDP clients; pasta's `auto` scan when due.
    pub fn run_timers(&mut self, ctx: &Ctx<'_>) {
        self.rescan(ctx);
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
            self.drop_udp_client(c, ctx);
        }
        self.timers = keep;
    }

    /// Counters for `status`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.listeners.len(), self.splices.len(), self.udp.len())
    }
}

/// Ask for each datagram's destination address (IP_PKTINFO).
fn want_destination(s: &Socket, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let r = if v6 {
        setsockopt(s, sockopt::Ipv6RecvPacketInfo, &true)
    } else {
        setsockopt(s, sockopt::Ipv4PacketInfo, &true)
    };
    r.map_err(io::Error::from)
}

/// A datagram, its sender, and (on a wildcard listener) the address it
/// was sent to.
fn recv_with_dst(s: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg =
        recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
    let from = msg.address.and_then(|a| {
        a.as_sockaddr_in()
            .map(|v4| SocketAddr::from(*v4))
            .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6)))
    });
    let Some(from) = from else {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    };
    let mut via = None;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4PacketInfo(i) => {
                via = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    i.ipi_spec_dst.s_addr,
                ))))
            }
            ControlMessageOwned::Ipv6PacketInfo(i) => {
                via = Some(IpAddr::V6(Ipv6Addr::from(i.ipi6_addr.s6_addr)))
            }
            _ => {}
        }
    }
    Ok((msg.bytes, from, via))
}

/// Send `data` to `to` from the listener `l`, leaving from `via` if given.
fn send_from(l: &UdpSocket, data: &[u8], to: SocketAddr, via: Option<IpAddr>) {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, SockaddrIn6, sendmsg};
    use std::os::fd::AsRawFd;
    let iov = [io::IoSlice::new(data)];
    let fd = l.as_raw_fd();
    let _ = match (to, via) {
        (SocketAddr::V4(to), Some(IpAddr::V4(from))) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(from).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            sendmsg(
                fd,
                &iov,
                &cmsg,
                MsgFlags::MSG_DONTWAIT,
                Some(&SockaddrIn::from(to)),
            )
        }
        (SocketAddr::V6(to), Some(IpAddr::V6(from))) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: from.octets(),
                },
                ipi6_ifindex: 0,
            };
            let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
            sendmsg(
                fd,
                &iov,
                &cmsg,
                MsgFlags::MSG_DONTWAIT,
                Some(&SockaddrIn6::from(to)),
            )
        }
        _ => l
            .send_to(data, to)
            .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(0))),
    };
}

/// The client port a stack flow uses after an abandoned real-address
/// splice from `p`: another one, 16384 away.
fn fallback_port(p: u16) -> u16 {
    if p >= 49152 { p - 16384 } else { p + 16384 }
}

/// Start a non-blocking connect (in progress is a start).
fn start_connect(sock: &Socket, target: SocketAddr) -> Result<(), ForwardError> {
    match sock.connect(&target.into()) {
        Err(err) if err.raw_os_error() != Some(libc::EINPROGRESS) => Err(ForwardError::Bind {
            addr: target,
            proto: Proto::Tcp,
            err,
        }),
        _ => Ok(()),
    }
}

fn too_many_splices() -> ForwardError {
    ForwardError::Namespace(NsError::Agent("too many spliced connections".into()))
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

/// Watch the ends of spliced connection `idx` for what it waits for now
/// ([`SpliceConn::read_interest`]); the number of ends no longer read.
fn watch_splice(c: &mut SpliceConn, idx: usize, registry: &mio::Registry) -> u64 {
    let mut paused = 0;
    for (end, kind) in [(End::Host, Kind::SpliceHost), (End::Ns, Kind::SpliceNs)] {
        if let Some(read) = c.read_interest(end) {
            paused += rewatch(registry, c.socket_mut(end), token(kind, idx), read);
        }
    }
    paused
}
