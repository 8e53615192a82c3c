//! Outbound NAT: flows from the namespace to host sockets. One table per
//! protocol (slab + hash index), one timer heap, O(1) work per packet.

pub mod backlog;
pub mod icmp;
pub mod pmtu;
pub mod policy;
pub mod table;
pub mod tcp;
pub mod udp;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::{Interest, Registry, Token};
use smoltcp::iface::SocketSet;
use socket2::Socket;

use crate::event::{Ctx, Kind, from_token, rewatch, token};
use crate::stack::Dev;
use crate::wire::{self, Unreachable};
use backlog::Backlog;
use policy::Decision;
pub use policy::Outbound;
use table::FlowTable;
use tcp::{After, RingPool, TcpFlow};

/// Limits on what one namespace may hold open: untrusted flows must not
/// exhaust rlnet's memory or fds.
pub const MAX_TCP_FLOWS: usize = 65536;
pub const MAX_TCP_CONNECTING: usize = 4096;
pub const MAX_UDP_FLOWS: usize = 16384;
pub const MAX_ICMP_FLOWS: usize = 1024;

/// A flow as the namespace sees it: its own address and the destination it
/// addressed (before any translation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// What epoll said of a host socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
    /// Its peer shut its sending side, or the socket failed.
    pub hup: bool,
}

#[derive(Debug)]
pub enum HostConnectError {
    Socket(io::Error),
    Bind(io::Error),
    Connect(io::Error),
    Listen,
}

impl HostConnectError {
    fn io(&self) -> Option<&io::Error> {
        match self {
            HostConnectError::Socket(e)
            | HostConnectError::Bind(e)
            | HostConnectError::Connect(e) => Some(e),
            HostConnectError::Listen => None,
        }
    }
}

/// Bind a host socket to the configured outbound address of its family.
pub fn bind_outbound(sock: &Socket, dst: SocketAddr, outbound: Outbound) -> io::Result<()> {
    let src = if dst.is_ipv4() {
        outbound.v4
    } else {
        outbound.v6
    };
    if let Some(src) = src {
        crate::sys::os::bind_address_no_port(sock);
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    Ok(())
}

/// Which ICMP error mirrors a failed host operation; None means "refused"
/// (a RST for TCP, port unreachable for UDP).
pub fn unreachable_for(err: &io::Error) -> Option<Unreachable> {
    match err.raw_os_error() {
        Some(libc::ENETUNREACH) | Some(libc::EINVAL) => Some(Unreachable::Net),
        Some(libc::EHOSTUNREACH) | Some(libc::ETIMEDOUT) | Some(libc::EHOSTDOWN) => {
            Some(Unreachable::Host)
        }
        Some(libc::EACCES) | Some(libc::EPERM) => Some(Unreachable::Prohibited),
        _ => None,
    }
}

/// ICMP error about a flow whose packet we no longer hold (a TCP flow's
/// SYN, a UDP flow's earlier datagram): quote a header rebuilt from the
/// flow key (enough for the namespace to match its socket).
fn send_unreachable_for_flow(
    key: &FlowKey,
    proto: smoltcp::wire::IpProtocol,
    port: usize,
    kind: Unreachable,
    ctx: &mut Ctx<'_>,
) {
    let mut quote = [0u8; wire::IPV6_HDR_LEN + 8];
    if let Some(len) = wire::flow_quote(&mut quote, key.src, key.dst, proto) {
        send_unreachable(ctx, port, &quote[..len], key.dst.ip(), kind);
    }
}

/// Send "destination unreachable" about `orig` (a packet from the
/// namespace). The error comes from the gateway, as a router would send it.
pub fn send_unreachable(
    ctx: &mut Ctx<'_>,
    port: usize,
    orig: &[u8],
    dst: IpAddr,
    kind: Unreachable,
) {
    let plan = &ctx.policy.plan;
    let from = match dst {
        IpAddr::V4(_) => IpAddr::V4(plan.gateway4),
        IpAddr::V6(_) => match plan.v6 {
            Some(v6) => IpAddr::V6(v6.gateway6),
            None => return,
        },
    };
    let Some(out) = ctx.out(port) else { return };
    if let Some(len) = wire::unreachable(out.ip_buf(), from, orig, kind) {
        out.send_ip(len);
    }
}

/// The backlog's question about an entry: is flow `idx` still in its
/// handshake under `serial` (not finished, removed, or its slot reused)?
fn half_open_in(tcp: &FlowTable<TcpFlow>) -> impl Fn(usize, u64) -> bool + '_ {
    |idx, serial| tcp.get(idx).and_then(|f| f.half_open) == Some(serial)
}

/// Deadlines in micros since engine start; stale entries are skipped.
type TimerHeap = BinaryHeap<Reverse<(i64, usize)>>;

pub struct Nat {
    tcp: FlowTable<TcpFlow>,
    connecting: usize,
    /// Outbound flows in their handshake, oldest first.
    backlog: Backlog,
    udp: udp::UdpTable,
    icmp: icmp::PingTable,
    timers: TimerHeap,
    /// Flows that could not send because the TAP was full.
    blocked: Vec<usize>,
    /// Flows that received segments in the current batch of frames.
    dirty: Vec<usize>,
    /// Flows with readable host sockets left over from a bounded batch.
    again: Vec<Token>,
    /// Socket set with no sockets: smoltcp answers RST for segments of
    /// unknown connections.
    no_flow: SocketSet<'static>,
    /// Sockets of finished flows, for reuse.
    rings: RingPool,
    /// Host sockets unwatched for reading (back-pressure), since start.
    read_pauses: u64,
}

impl Default for Nat {
    fn default() -> Self {
        Self::new()
    }
}

impl Nat {
    pub fn new() -> Nat {
        Nat {
            tcp: FlowTable::new(MAX_TCP_FLOWS),
            connecting: 0,
            backlog: Backlog::default(),
            udp: udp::UdpTable::default(),
            icmp: icmp::PingTable::default(),
            timers: BinaryHeap::new(),
            blocked: Vec::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            no_flow: SocketSet::new(Vec::new()),
            rings: RingPool::default(),
            read_pauses: 0,
        }
    }

    pub fn tcp_flows(&self) -> usize {
        self.tcp.len()
    }

    /// Bytes of buffer storage all TCP flows hold (for tests and status).
    pub fn tcp_buffer_bytes(&mut self) -> usize {
        self.tcp.iter_mut().map(TcpFlow::buffer_bytes).sum()
    }

    /// Write calls on host sockets for namespaces' TCP payload, over the
    /// flows open now (tests).
    pub fn tcp_host_writes(&self) -> u64 {
        self.tcp.iter().map(TcpFlow::host_writes).sum()
    }

    pub fn udp_flows(&self) -> usize {
        self.udp.len()
    }

    /// Remove every flow of a port (its namespace left the network).
    pub fn drop_port(&mut self, port: usize, registry: &Registry) {
        for idx in self.tcp.of_port(port) {
            self.remove_tcp(idx, registry);
        }
        self.backlog.drop_port(port);
        self.udp.drop_port(port, registry);
        self.icmp.drop_port(port, registry);
    }

    /// A TCP segment from the namespace (`pkt` is the whole IP packet).
    pub fn tcp_segment(
        &mut self,
        port: usize,
        pkt: &[u8],
        key: FlowKey,
        syn_only: bool,
        rst: bool,
        ctx: &mut Ctx<'_>,
    ) {
        if let Some(idx) = self.tcp.find(&key) {
            if let Some(flow) = self.tcp.get_mut(idx) {
                flow.ingress(pkt, ctx);
                // Serviced once after the whole batch of frames: one host
                // send and one ACK for several segments.
                if !flow.dirty {
                    flow.dirty = true;
                    self.dirty.push(idx);
                }
            }
            return;
        }
        if !syn_only {
            if !rst {
                self.reset(port, pkt, ctx);
            }
            return;
        }
        match ctx.policy.outbound(key.dst) {
            Decision::Host(addr) => self.open_tcp(port, pkt, key, addr, ctx),
            Decision::Refuse(kind) => send_unreachable(ctx, port, pkt, key.dst.ip(), kind),
            // The engine hands these to the DNS stub (see `open_local_tcp`);
            // without one, refuse rather than hang.
            Decision::DnsStub => self.reset(port, pkt, ctx),
            Decision::Drop => {}
        }
    }

    fn reset(&mut self, port: usize, pkt: &[u8], ctx: &mut Ctx<'_>) {
        let Some(out) = ctx.outs.get_mut(port) else {
            return;
        };
        let mut dev = Dev::new(Some(pkt), out, ctx.caps);
        ctx.iface
            .poll_ingress_single(ctx.now, &mut dev, &mut self.no_flow);
    }

    fn open_tcp(
        &mut self,
        port: usize,
        pkt: &[u8],
        key: FlowKey,
        addr: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) {
        if self.backlog.full(port) {
            let oldest = self.backlog.oldest(port, half_open_in(&self.tcp));
            if let Some(old) = oldest {
                crate::limited!(
                    Warn,
                    "{} TCP handshakes from one namespace not completed; giving up the oldest",
                    backlog::MAX_HALF_OPEN
                );
                if let Some(f) = self.tcp.get(old) {
                    f.give_up();
                }
                self.remove_tcp(old, ctx.registry);
            }
        }
        if self.connecting >= MAX_TCP_CONNECTING || self.tcp.full(port, ctx.outs.len()) {
            crate::limited!(
                Warn,
                "too many TCP flows; refusing a connection to {}",
                key.dst
            );
            self.reset(port, pkt, ctx);
            return;
        }
        let rings = self.rings.take();
        let mut flow = match TcpFlow::connect(key, port, addr, rings, ctx) {
            Ok(f) => f,
            Err((e, rings)) => {
                self.rings.put(rings);
                crate::limited!(Debug, "connect to {addr} failed at once: {e:?}");
                match e.io().and_then(unreachable_for) {
                    Some(kind) => send_unreachable(ctx, port, pkt, key.dst.ip(), kind),
                    None => self.reset(port, pkt, ctx),
                }
                return;
            }
        };
        let idx = self.tcp.next_index();
        if let Err(e) = ctx.registry.register(
            &mut flow.host,
            token(Kind::Tcp, idx),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::limited!(Warn, "cannot watch a host socket: {e}");
            self.reset(port, pkt, ctx);
            return;
        }
        flow.ingress(pkt, ctx);
        flow.half_open = Some(self.backlog.push(port, idx, half_open_in(&self.tcp)));
        self.tcp.insert(flow);
        self.connecting += 1;
        self.service_tcp(idx, ctx);
    }

    /// A SYN for a service rlnet answers itself (the DNS stub): the flow is
    /// relayed over a socketpair; returns the other end for the service.
    pub fn open_local_tcp(
        &mut self,
        port: usize,
        pkt: &[u8],
        key: FlowKey,
        ctx: &mut Ctx<'_>,
    ) -> Option<mio::net::UnixStream> {
        if let Some(idx) = self.tcp.find(&key) {
            // A retransmitted SYN of a connection we already have.
            if let Some(flow) = self.tcp.get_mut(idx) {
                flow.ingress(pkt, ctx);
                self.service_tcp(idx, ctx);
            }
            return None;
        }
        if self.tcp.at_max() {
            self.reset(port, pkt, ctx);
            return None;
        }
        let Ok((ours, theirs)) = mio::net::UnixStream::pair() else {
            self.reset(port, pkt, ctx);
            return None;
        };
        let rings = self.rings.take();
        let Some(mut flow) = TcpFlow::local(key, port, ours, rings) else {
            self.reset(port, pkt, ctx);
            return None;
        };
        let idx = self.tcp.next_index();
        if ctx
            .registry
            .register(
                &mut flow.host,
                token(Kind::Tcp, idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.reset(port, pkt, ctx);
            return None;
        }
        flow.ingress(pkt, ctx);
        self.tcp.insert(flow);
        self.service_tcp(idx, ctx);
        Some(theirs)
    }

    /// A connection accepted on a published port (stack mode): smoltcp
    /// connects to the service as `key.dst` (the presented client).
    pub fn inbound_tcp(
        &mut self,
        mut key: FlowKey,
        port: usize,
        mut host: mio::net::TcpStream,
        ctx: &mut Ctx<'_>,
    ) {
        if self.tcp.at_max() {
            crate::limited!(
                Warn,
                "too many TCP flows; refusing a published-port connection"
            );
            return;
        }
        // Loopback clients all show as the gateway: give the presented port
        // another value if that 4-tuple is taken.
        let mut tries = 0u16;
        while self.tcp.contains(&key) {
            tries += 1;
            if tries > 64 {
                return;
            }
            let p = key.dst.port();
            key.dst
                .set_port(if p >= 65000 { 32768 + tries } else { p + 1 });
        }
        let idx = self.tcp.next_index();
        if ctx
            .registry
            .register(
                &mut host,
                token(Kind::Tcp, idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            return;
        }
        let rings = self.rings.take();
        let Some(flow) = TcpFlow::inbound(key, port, host, rings, ctx) else {
            return;
        };
        self.tcp.insert(flow);
        self.service_tcp(idx, ctx);
    }

    fn service_tcp(&mut self, idx: usize, ctx: &mut Ctx<'_>) {
        let Some(flow) = self.tcp.get_mut(idx) else {
            return;
        };
        let was_connecting = flow.connecting();
        let after = flow.service(ctx);
        // Leaving these states by removal is counted in `remove_tcp`.
        if was_connecting && !flow.connecting() {
            self.connecting = self.connecting.saturating_sub(1);
        }
        if flow.half_open.is_some() && flow.handshake_over() {
            flow.half_open = None;
            self.backlog.done(flow.port);
        }
        if ctx.blocked(flow.port) {
            self.blocked.push(idx);
        }
        match after {
            After::Remove => self.remove_tcp(idx, ctx.registry),
            After::Keep => {
                if let Some(read) = flow.read_interest() {
                    let t = token(Kind::Tcp, idx);
                    self.read_pauses += rewatch(ctx.registry, &mut flow.host, t, read);
                }
                if let Some(t) = flow.timer
                    && flow.armed != Some(t)
                {
                    flow.armed = Some(t);
                    self.timers
                        .push(Reverse((t.total_micros(), token(Kind::Tcp, idx).0)));
                }
            }
        }
    }

    fn remove_tcp(&mut self, idx: usize, registry: &Registry) {
        if let Some(flow) = self.tcp.take(idx) {
            if flow.connecting() {
                self.connecting = self.connecting.saturating_sub(1);
            }
            if flow.half_open.is_some() {
                self.backlog.done(flow.port);
            }
            let mut host = flow.finish(&mut self.rings);
            let _ = registry.deregister(&mut host);
        }
        if self.tcp.is_empty() {
            self.rings.clear();
            // Deadlines of closed flows would still wake the loop once each.
            self.timers
                .retain(|Reverse((_, t))| !matches!(from_token(Token(*t)), Some((Kind::Tcp, _))));
            // After a burst of connections, give the tables' memory back.
            self.tcp.shrink_to_fit();
            self.timers.shrink_to_fit();
        }
    }

    /// An ICMP "fragmentation needed" / "packet too big" from the namespace
    /// on `port`: the flow it quotes sends smaller segments from now on, if
    /// that flow lives on this port and has the quoted segment in flight
    /// (so a member of a named network cannot shrink another's flows, nor
    /// anyone a flow whose sequence numbers they do not see).
    pub fn too_big(&mut self, port: usize, err: pmtu::TooBig, ctx: &mut Ctx<'_>) {
        let key = FlowKey {
            src: err.to,
            dst: err.from,
        };
        let Some(idx) = self.tcp.find(&key) else {
            return;
        };
        let Some(link_mtu) = ctx.outs.get(port).map(|o| o.mtu()) else {
            return;
        };
        let Some(flow) = self.tcp.get_mut(idx) else {
            return;
        };
        if flow.port != port || !flow.too_big(err.seq, err.mtu, link_mtu) {
            return;
        }
        // Send what is due with the new size; smoltcp retransmits the lost
        // segment itself (duplicate ACKs or its timer).
        self.service_tcp(idx, ctx);
    }

    /// A UDP datagram from the namespace.
    pub fn udp_datagram(
        &mut self,
        port: usize,
        pkt: &[u8],
        key: FlowKey,
        payload: &[u8],
        ctx: &mut Ctx<'_>,
    ) {
        match ctx.policy.outbound(key.dst) {
            Decision::Host(addr) => {
                if let Some(deadline) = self.udp.send(port, pkt, key, addr, payload, ctx) {
                    self.timers.push(Reverse(deadline));
                }
            }
            Decision::Refuse(kind) => send_unreachable(ctx, port, pkt, key.dst.ip(), kind),
            // The engine gives these to the DNS stub; without one (the
            // stub is off), fail fast instead of timing out.
            Decision::DnsStub => send_unreachable(ctx, port, pkt, key.dst.ip(), Unreachable::Port),
            Decision::Drop => {}
        }
    }

    /// An ICMP echo request to an address other than the gateway/DNS.
    pub fn ping(&mut self, port: usize, req: icmp::EchoRequest<'_>, ctx: &mut Ctx<'_>) {
        let dst = SocketAddr::new(req.dst, 1);
        if let Decision::Host(addr) = ctx.policy.outbound(dst)
            && let Some(deadline) = self.icmp.send(port, req, addr.ip(), ctx)
        {
            self.timers.push(Reverse(deadline));
        }
    }

    /// See [`crate::api::reply::Counters::read_pauses`].
    pub fn read_pauses(&self) -> u64 {
        self.read_pauses
    }

    /// Readiness of a host socket.
    pub fn host_event(&mut self, t: Token, ready: Ready, ctx: &mut Ctx<'_>) {
        let Some((kind, idx)) = from_token(t) else {
            return;
        };
        let Ready {
            readable,
            writable,
            hup,
        } = ready;
        match kind {
            Kind::Tcp => {
                if let Some(flow) = self.tcp.get_mut(idx) {
                    flow.host_ready(readable, writable, hup);
                    self.service_tcp(idx, ctx);
                }
            }
            Kind::Udp if readable && self.udp.receive(idx, ctx) => self.again.push(t),
            Kind::Icmp if readable => self.icmp.receive(idx, ctx),
            _ => {}
        }
    }

    /// End of a batch of frames: send the open UDP run, service the TCP
    /// flows that received segments.
    pub fn flush_dirty(&mut self, ctx: &mut Ctx<'_>) {
        self.udp.flush(ctx);
        let mut list = std::mem::take(&mut self.dirty);
        // Payload for the host first (a request someone waits on), then
        // the rest (ACKs, FINs, flows that are done): closing a finished
        // connection's socket must not delay the next one's request.
        for payload_first in [true, false] {
            for &idx in &list {
                if let Some(flow) = self.tcp.get_mut(idx)
                    && flow.dirty
                    && (!payload_first || flow.has_unsent())
                {
                    flow.dirty = false;
                    self.service_tcp(idx, ctx);
                }
            }
        }
        list.clear();
        self.dirty = list;
    }

    /// Work left from bounded batches; true if the loop should not sleep.
    pub fn has_backlog(&self) -> bool {
        !self.again.is_empty()
    }

    pub fn run_backlog(&mut self, ctx: &mut Ctx<'_>) {
        for t in std::mem::take(&mut self.again) {
            let ready = Ready {
                readable: true,
                writable: false,
                hup: false,
            };
            self.host_event(t, ready, ctx);
        }
    }

    /// The TAP accepts writes again: let blocked flows send.
    pub fn tap_drained(&mut self, ctx: &mut Ctx<'_>) {
        let mut list = std::mem::take(&mut self.blocked);
        list.sort_unstable();
        list.dedup();
        for idx in list {
            let port = self.tcp.get(idx).map(|f| f.port);
            if port.is_some_and(|p| ctx.blocked(p)) {
                self.blocked.push(idx);
                continue;
            }
            self.service_tcp(idx, ctx);
        }
    }

    /// Earliest timer deadline (micros since start), if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Fire due timers.
    pub fn run_timers(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now.total_micros();
        let mut fired = 0;
        while let Some(&Reverse((t, tok))) = self.timers.peek() {
            if t > now || fired > 4096 {
                break;
            }
            self.timers.pop();
            fired += 1;
            match from_token(Token(tok)) {
                // Only the flow's current deadline counts; older ones are stale.
                Some((Kind::Tcp, idx)) => {
                    let current = self
                        .tcp
                        .get(idx)
                        .and_then(|f| f.timer)
                        .map(|x| x.total_micros());
                    if current == Some(t) {
                        if let Some(f) = self.tcp.get_mut(idx) {
                            f.armed = None;
                        }
                        self.service_tcp(idx, ctx);
                    }
                }
                Some((Kind::Udp, idx)) => {
                    if let Some(next) = self.udp.expire(idx, t, ctx) {
                        self.timers.push(Reverse(next));
                    }
                }
                Some((Kind::Icmp, idx)) => {
                    if let Some(next) = self.icmp.expire(idx, t, ctx) {
                        self.timers.push(Reverse(next));
                    }
                }
                _ => {}
            }
        }
    }
}
