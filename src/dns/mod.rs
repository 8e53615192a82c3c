//! The DNS stub at 10.0.2.3 / fd00::3 (UDP and TCP port 53).
//!
//! It answers the names it owns ([`records`]: the host aliases, `--add-host`
//! entries, member names of named networks) and forwards every other
//! query, unchanged but for its ID, to the host's resolvers: the servers of
//! the host's resolv.conf ([`resolv`], followed while running) or
//! `--dns-upstream`. rlnet runs in the host's network namespace, so
//! resolvers on host loopback (systemd-resolved's 127.0.0.53, a dnsmasq on
//! 127.0.0.1) work, whatever the namespace's own loopback policy.
//!
//! The engine owns the event loop and calls in:
//! - UDP datagrams to the stub arrive through [`DnsStub::udp_query`]; an
//!   immediate answer is returned, forwarded ones come back later as
//!   [`Reply`]s from [`DnsStub::event`] or [`DnsStub::run_timers`];
//! - TCP connections to the stub are terminated by the engine's stack and
//!   handed over as one end of a unix socketpair carrying the raw byte
//!   stream ([`DnsStub::tcp_connection`]); the stub reads the length-prefixed
//!   queries and writes the answers itself;
//! - every socket the stub registers uses `io.token(idx)`, and readiness on
//!   it is reported back with [`DnsStub::event`];
//! - [`DnsStub::next_deadline`] is the only timer: None when nothing is
//!   pending, so an idle stub never wakes the loop.
//!
//! Forwarding (`upstream.rs`): one connected UDP socket per upstream server
//! (an ICMP port unreachable comes back as ECONNREFUSED: immediate
//! failover), a fresh random ID per query, unique among pending ones; a
//! reply is accepted only on a socket the query was sent on, for a pending
//! ID, with QR=1, opcode QUERY and the same question, and well-formed
//! records; everything else is dropped. The reply is passed on byte for
//! byte with the requester's ID restored. TCP queries go upstream over TCP,
//! one connection per query. Timeouts, failover and limits: the constants
//! below and docs/dns.md.
//!
//! No unsafe here; nothing the namespace or an upstream sends can panic
//! (no indexing into received bytes), every loop is bounded, and log lines
//! they can trigger are rate limited.

pub mod message;
pub mod records;
pub mod resolv;
mod tcp;
mod upstream;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use slab::Slab;
use thiserror::Error;

use crate::config::AddrPlan;
pub use message::Transport;
pub use records::{NetworkId, RecordError, Records};
use tcp::TcpClient;
use upstream::{UdpPending, UdpSock, UpTcp, Upstream};

/// How long one upstream gets to answer before the query is sent to the
/// next one (the same one again if it is the only one).
pub const ATTEMPT_TIMEOUT_US: i64 = 1_000_000;
/// How long a forwarded query may take in all; then the requester gets
/// SERVFAIL. Below the 5 s that glibc and musl wait for an answer, so the
/// requester sees a definite failure rather than its own timeout.
pub const QUERY_LIFETIME_US: i64 = 4_000_000;
/// An upstream that timed out or refused is tried last for this long.
pub const PENALTY_US: i64 = 10_000_000;
/// Most UDP queries waiting for an upstream; more are dropped (the requester
/// retries).
pub const MAX_PENDING: usize = 4096;
/// Most TCP clients at once. A new one over the cap replaces the client that
/// has been idle longest (nothing in flight), or is closed if none is idle.
pub const MAX_TCP_CLIENTS: usize = 256;
/// Most TCP connections to upstreams at once (one per query in flight);
/// over the cap a TCP query gets SERVFAIL.
pub const MAX_TCP_UPSTREAM: usize = 256;
/// A TCP client with nothing in flight is closed after this long without a
/// complete query (partial bytes do not count: a slow writer is no reason to
/// keep a connection).
pub const TCP_IDLE_US: i64 = 10_000_000;
/// Queries of one TCP client forwarded at once; further pipelined queries
/// wait in the socket.
pub const MAX_TCP_INFLIGHT: u8 = 4;

/// What the stub needs to know.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Gateway and stub addresses: `host.containers.internal` etc. answer
    /// the gateway; the stub never forwards to its own addresses.
    pub plan: AddrPlan,
    /// The host's resolv.conf (`--resolv-conf`, default /etc/resolv.conf).
    pub resolv_conf: PathBuf,
    /// `--dns-upstream`: when not empty, these servers in this order and the
    /// resolv.conf is not read.
    pub upstream: Vec<SocketAddr>,
    /// `--add-host NAME:IP` entries.
    pub hosts: Vec<(String, IpAddr)>,
}

impl DnsConfig {
    /// The defaults for `plan`: /etc/resolv.conf, no overrides.
    pub fn new(plan: AddrPlan) -> DnsConfig {
        DnsConfig {
            plan,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            upstream: Vec::new(),
            hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("invalid --add-host: {0}")]
    Host(#[from] RecordError),
    #[error(
        "invalid --dns-upstream {0}: the stub cannot forward to an unspecified, multicast or broadcast address, to port 0, or to itself"
    )]
    Upstream(SocketAddr),
}

/// A UDP answer for the namespace: from `server` (the stub address the
/// requester used) to `client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub bytes: Vec<u8>,
}

/// The event loop's side of a call.
pub struct DnsIo<'a> {
    pub registry: &'a mio::Registry,
    /// Monotonic time, microseconds.
    pub now_us: i64,
    /// The token for the stub's socket number `idx`.
    pub token: &'a dyn Fn(usize) -> mio::Token,
}

/// Counters, for status output and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub udp_queries: u64,
    pub tcp_queries: u64,
    /// Answered from the name table.
    pub local: u64,
    /// FORMERR, NOTIMP, REFUSED.
    pub rejected: u64,
    /// Messages dropped without a reply (too short, QR=1, table full).
    pub dropped: u64,
    /// Queries sent upstream (first attempts).
    pub forwarded: u64,
    /// Upstream answers passed on.
    pub answers: u64,
    /// SERVFAIL given because no upstream answered.
    pub servfail: u64,
    /// Upstream replies discarded: unknown ID, wrong socket or question,
    /// malformed.
    pub bad_replies: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts that failed at once (refused, unreachable).
    pub refused: u64,
    /// TCP clients now.
    pub tcp_clients: u64,
    /// TCP clients closed for idling or evicted over the cap.
    pub tcp_closed_idle: u64,
}

/// Where the upstream servers come from.
#[derive(Debug)]
enum Source {
    /// `--dns-upstream`.
    Fixed,
    Watch(resolv::Watch),
}

/// Every socket the stub registered, by token index.
enum Slot {
    /// The UDP socket for one upstream.
    Udp(UdpSock),
    /// A TCP client from the namespace (unix stream to the engine).
    Client(TcpClient),
    /// A TCP connection to an upstream for one query.
    UpTcp(UpTcp),
}

impl Slot {
    fn serial(&self) -> u32 {
        match self {
            Slot::Udp(u) => u.serial,
            Slot::Client(c) => c.serial,
            Slot::UpTcp(u) => u.serial,
        }
    }

    /// The deadline its current timer was armed for.
    fn timer_at(&self) -> Option<i64> {
        match self {
            Slot::Udp(_) => None,
            Slot::Client(c) => Some(c.timer_at),
            Slot::UpTcp(u) => Some(u.deadline),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Attempt deadline of a pending UDP query.
    Udp { id: u16, serial: u32 },
    /// Idle deadline of a TCP client, attempt deadline of an upstream TCP
    /// connection.
    Slot { idx: usize, serial: u32 },
}

/// Random 16-bit query IDs: SipHash-1-3 with the process's random keys over
/// a counter.
struct IdGen {
    keys: RandomState,
    n: u64,
}

impl IdGen {
    #[allow(clippy::cast_possible_truncation)] // any 16 bits of the hash will do
    fn next(&mut self) -> u16 {
        self.n = self.n.wrapping_add(1);
        self.keys.hash_one(self.n) as u16
    }
}

/// The DNS stub. See the module documentation.
pub struct DnsStub {
    plan: AddrPlan,
    records: Records,
    source: Source,
    upstreams: Vec<Upstream>,
    /// Bumped whenever `upstreams` changes: indexes into it stored
    /// elsewhere are only valid for their epoch.
    epoch: u32,
    slots: Slab<Slot>,
    pending: HashMap<u16, UdpPending>,
    /// Reusable query buffers.
    bufs: Vec<Vec<u8>>,
    ids: IdGen,
    timers: BinaryHeap<Reverse<(i64, Timer)>>,
    next_serial: u32,
    clients: usize,
    up_tcp: usize,
    /// Receive buffer shared by every socket.
    scratch: Vec<u8>,
    /// False on a network without egress: names that are not local get
    /// REFUSED and nothing goes upstream.
    forward: bool,
    stats: DnsStats,
}

impl DnsStub {
    /// Builds the name table and reads the resolv.conf (unless
    /// `--dns-upstream` was given). Opens no socket: upstream sockets are
    /// created on first use.
    pub fn new(cfg: DnsConfig) -> Result<DnsStub, DnsError> {
        let records = Records::new(&cfg.plan, &cfg.hosts)?;
        if let Some(bad) = cfg
            .upstream
            .iter()
            .find(|a| !resolv::usable_upstream(a, &cfg.plan))
        {
            return Err(DnsError::Upstream(*bad));
        }
        let (source, servers) = if cfg.upstream.is_empty() {
            let w = resolv::Watch::new(&cfg.resolv_conf);
            let servers = w.servers().to_vec();
            (Source::Watch(w), servers)
        } else {
            (Source::Fixed, cfg.upstream.clone())
        };
        let mut stub = DnsStub {
            plan: cfg.plan,
            records,
            source,
            upstreams: Vec::new(),
            epoch: 0,
            slots: Slab::new(),
            pending: HashMap::with_capacity(64),
            bufs: Vec::new(),
            ids: IdGen {
                keys: RandomState::new(),
                n: 0,
            },
            timers: BinaryHeap::new(),
            next_serial: 0,
            clients: 0,
            up_tcp: 0,
            scratch: vec![0; 65536],
            forward: true,
            stats: DnsStats::default(),
        };
        stub.set_upstreams(servers, None);
        if let Source::Fixed = stub.source {
            log::info!(
                "DNS: upstream servers (--dns-upstream): {}",
                stub.upstream_text()
            );
        }
        Ok(stub)
    }

    /// A UDP query from `client` to the stub address `server`. Returns the
    /// answer if there is one right away (local names, errors, SERVFAIL when
    /// no upstream is known); a forwarded query's answer comes later from
    /// [`DnsStub::event`] or [`DnsStub::run_timers`].
    pub fn udp_query(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        query: &[u8],
        io: &mut DnsIo<'_>,
    ) -> Option<Vec<u8>> {
        self.stats.udp_queries += 1;
        self.refresh_upstreams(io);
        let net = self.records.network_of_stub(server.ip().to_canonical());
        let out = match message::classify(query, &self.records, net, Transport::Udp) {
            message::Action::Answer(b) => {
                self.stats.local += 1;
                Some(b)
            }
            message::Action::Reject(b) => {
                self.stats.rejected += 1;
                crate::limited!(
                    Debug,
                    "DNS: rejected a malformed or refused query from {client}"
                );
                Some(b)
            }
            message::Action::Drop => {
                self.stats.dropped += 1;
                crate::limited!(Debug, "DNS: dropped a non-query from {client}");
                None
            }
            message::Action::Forward(pq) if !self.forward => {
                self.stats.rejected += 1;
                Some(message::refused(query, &pq))
            }
            message::Action::Forward(pq) => self.forward_udp(client, server, query, pq, io),
        };
        self.prune();
        out
    }

    /// Serves a TCP client: `stream` carries the connection's bytes.
    /// Requesters see the global names only; see
    /// [`DnsStub::tcp_connection_from`].
    pub fn tcp_connection(&mut self, stream: mio::net::UnixStream, io: &mut DnsIo<'_>) {
        self.add_client(stream, None, io);
        self.prune();
    }

    /// [`DnsStub::tcp_connection`] for a connection to stub address
    /// `server`, so that names scoped to that address's network are visible.
    pub fn tcp_connection_from(
        &mut self,
        stream: mio::net::UnixStream,
        server: SocketAddr,
        io: &mut DnsIo<'_>,
    ) {
        let net = self.records.network_of_stub(server.ip().to_canonical());
        self.add_client(stream, net, io);
        self.prune();
    }

    /// Readiness of the stub's socket `idx`. The flags are hints: every
    /// socket is serviced until it would block, so an error-only event works
    /// too.
    pub fn event(
        &mut self,
        idx: usize,
        readable: bool,
        writable: bool,
        io: &mut DnsIo<'_>,
    ) -> Vec<Reply> {
        let _ = (readable, writable);
        let mut out = Vec::new();
        match self.slots.get(idx) {
            Some(Slot::Udp(_)) => self.udp_readable(idx, io, &mut out),
            Some(Slot::Client(_)) => self.service_client(idx, io),
            Some(Slot::UpTcp(_)) => self.up_tcp_event(idx, io),
            None => {}
        }
        self.prune();
        out
    }

    /// The earliest deadline, in the loop's microseconds; None when nothing
    /// is pending.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Runs every timer that is due: upstream failover, SERVFAIL for queries
    /// no upstream answered, idle TCP clients.
    pub fn run_timers(&mut self, io: &mut DnsIo<'_>) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if at > io.now_us {
                break;
            }
            self.timers.pop();
            if !self.timer_live(at, timer) {
                continue;
            }
            match timer {
                Timer::Udp { id, .. } => self.udp_timeout(id, io, &mut out),
                Timer::Slot { idx, .. } => match self.slots.get(idx) {
                    Some(Slot::Client(_)) => self.client_timer(idx, io),
                    Some(Slot::UpTcp(_)) => self.up_tcp_timeout(idx, io),
                    _ => {}
                },
            }
        }
        self.prune();
        out
    }

    /// Turns forwarding off (a network without egress, `--internal`):
    /// queries for names that are not local get REFUSED and nothing is sent
    /// upstream. On by default.
    pub fn set_forwarding(&mut self, on: bool) {
        self.forward = on;
    }

    /// The name table, for named networks.
    pub fn records_mut(&mut self) -> &mut Records {
        &mut self.records
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    pub fn stats(&self) -> DnsStats {
        DnsStats {
            tcp_clients: self.clients as u64,
            ..self.stats
        }
    }

    /// The upstream servers in use, in order of preference.
    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.upstreams.iter().map(|u| u.addr).collect()
    }

    /// UDP queries waiting for an upstream.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn upstream_text(&self) -> String {
        if self.upstreams.is_empty() {
            return "none".into();
        }
        self.upstreams
            .iter()
            .map(|u| u.addr.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn new_serial(&mut self) -> u32 {
        self.next_serial = self.next_serial.wrapping_add(1);
        self.next_serial
    }

    fn arm(&mut self, at: i64, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    fn timer_live(&self, at: i64, timer: Timer) -> bool {
        match timer {
            Timer::Udp { id, serial } => self
                .pending
                .get(&id)
                .is_some_and(|p| p.serial == serial && p.deadline == at),
            Timer::Slot { idx, serial } => self
                .slots
                .get(idx)
                .is_some_and(|s| s.serial() == serial && s.timer_at() == Some(at)),
        }
    }

    /// Drops dead timers from the top of the heap, so that
    /// [`DnsStub::next_deadline`] does not wake the loop for nothing.
    fn prune(&mut self) {
        while let Some(&Reverse((at, timer))) = self.timers.peek() {
            if self.timer_live(at, timer) {
                break;
            }
            self.timers.pop();
        }
        if self.timers.is_empty() && self.timers.capacity() > 1024 {
            self.timers.shrink_to(64);
        }
    }

    /// Re-reads resolv.conf if it changed (checked at most once a second).
    fn refresh_upstreams(&mut self, io: &mut DnsIo<'_>) {
        let Source::Watch(w) = &mut self.source else {
            return;
        };
        if w.poll(io.now_us) {
            let servers = w.servers().to_vec();
            self.set_upstreams(servers, Some(io.registry));
        }
    }

    /// Takes `servers` as the upstream list: usable ones only, at most
    /// [`resolv::MAX_UPSTREAMS`]. Sockets and health of servers that stay are
    /// kept; the sockets of the others are closed.
    fn set_upstreams(&mut self, servers: Vec<SocketAddr>, registry: Option<&mio::Registry>) {
        let mut old = std::mem::take(&mut self.upstreams);
        let mut new: Vec<Upstream> = Vec::new();
        for addr in servers {
            if new.len() == resolv::MAX_UPSTREAMS
                || !resolv::usable_upstream(&addr, &self.plan)
                || new.iter().any(|u| u.addr == addr)
            {
                continue;
            }
            match old.iter().position(|u| u.addr == addr) {
                Some(i) => new.push(old.swap_remove(i)),
                None => new.push(Upstream::new(addr)),
            }
        }
        for u in old {
            if let Some((idx, serial)) = u.udp
                && self.slots.get(idx).is_some_and(|s| s.serial() == serial)
                && let Slot::Udp(mut s) = self.slots.remove(idx)
                && let Some(r) = registry
            {
                let _ = r.deregister(&mut s.sock);
            }
        }
        self.upstreams = new;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// A buffer for a query copy.
    fn buffer(&mut self) -> Vec<u8> {
        self.bufs.pop().unwrap_or_default()
    }

    /// Returns a query buffer to the pool (small ones only, a bounded number).
    fn recycle(&mut self, mut b: Vec<u8>) {
        if b.capacity() <= 512 && self.bufs.len() < 256 {
            b.clear();
            self.bufs.push(b);
        }
    }
}

#[cfg(test)]
mod tests;
