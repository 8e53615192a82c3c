//! Forwarding to the upstream servers: UDP queries over one connected UDP
//! socket per server, TCP queries over one TCP connection per query.
//!
//! Failover, for both: the first server in order that has not failed
//! recently ([`super::PENALTY_US`]) is asked; an attempt that fails at once
//! (ECONNREFUSED from an ICMP port unreachable, a refused TCP connect,
//! network unreachable) moves to the next server immediately, an attempt
//! without an answer after [`super::ATTEMPT_TIMEOUT_US`] too (for UDP, a
//! late answer to an earlier attempt is still taken). After
//! [`super::QUERY_LIFETIME_US`], or when every server has refused this
//! query, the requester gets SERVFAIL.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use super::message::{self, ParsedQuery};
use super::{
    ATTEMPT_TIMEOUT_US, DnsIo, DnsStub, MAX_PENDING, MAX_TCP_UPSTREAM, PENALTY_US,
    QUERY_LIFETIME_US, Reply, Slot, Timer,
};

/// Datagrams read from one upstream socket per event before yielding.
const UDP_BATCH: usize = 256;
/// Attempts remembered per UDP query (answers are accepted on these).
const SENT_SLOTS: usize = 8;

/// One upstream server.
#[derive(Debug)]
pub(super) struct Upstream {
    pub addr: SocketAddr,
    /// Its UDP socket (slot index, generation), created on first use.
    pub udp: Option<(usize, u32)>,
    /// Tried last until then.
    pub penalty_until: i64,
}

impl Upstream {
    pub fn new(addr: SocketAddr) -> Upstream {
        Upstream {
            addr,
            udp: None,
            penalty_until: 0,
        }
    }
}

pub(super) struct UdpSock {
    pub sock: mio::net::UdpSocket,
    pub serial: u32,
    pub addr: SocketAddr,
}

/// A UDP query waiting for an upstream's answer, keyed by the ID it was
/// sent with.
pub(super) struct UdpPending {
    pub serial: u32,
    client: SocketAddr,
    server: SocketAddr,
    /// The requester's ID, question and EDNS.
    pq: ParsedQuery,
    /// The query as received, with our ID.
    query: Vec<u8>,
    /// Sockets (slot, generation) it was sent on, the latest last.
    sent: [(usize, u32); SENT_SLOTS],
    n_sent: usize,
    /// Upstream index of the latest attempt, and servers that refused it:
    /// valid while `epoch` is the stub's.
    last: Option<usize>,
    refused: u32,
    epoch: u32,
    started: i64,
    pub deadline: i64,
}

impl UdpPending {
    fn sent_on(&self, slot: (usize, u32)) -> bool {
        self.sent
            .iter()
            .take(self.n_sent.min(SENT_SLOTS))
            .any(|s| *s == slot)
    }

    fn latest(&self) -> Option<(usize, u32)> {
        if self.n_sent == 0 {
            return None;
        }
        self.sent.get((self.n_sent - 1) % SENT_SLOTS).copied()
    }

    fn record_send(&mut self, slot: (usize, u32)) {
        if let Some(s) = self.sent.get_mut(self.n_sent % SENT_SLOTS) {
            *s = slot;
        }
        self.n_sent += 1;
    }
}

/// A TCP query forwarded over its own TCP connection.
pub(super) struct UpTcp {
    pub serial: u32,
    sock: Option<mio::net::TcpStream>,
    /// The TCP client (slot, generation) that asked.
    client: (usize, u32),
    pq: ParsedQuery,
    /// Length prefix + query with our ID.
    msg: Vec<u8>,
    our_id: u16,
    written: usize,
    connected: bool,
    /// The answer as received so far, length prefix included.
    rbuf: Vec<u8>,
    last: Option<usize>,
    refused: u32,
    epoch: u32,
    started: i64,
    pub deadline: i64,
}

fn new_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    // Bursts of answers must not be lost in the socket.
    let _ = s.set_recv_buffer_size(1 << 20);
    s.connect(&addr.into())?;
    Ok(s.into())
}

fn new_tcp(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    let _ = s.set_tcp_nodelay(true);
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(s.into())
}

impl DnsStub {
    /// The upstream to try next for a query whose latest attempt went to
    /// `after`, skipping those in `refused`: the first in order (from
    /// `after`'s successor) without a penalty, else the one whose penalty
    /// ends first.
    fn pick(&self, after: Option<usize>, refused: u32, now: i64) -> Option<usize> {
        let n = self.upstreams.len();
        let start = after.map_or(0, |a| (a + 1) % n.max(1));
        let order = (0..n)
            .map(move |k| (start + k) % n)
            .filter(move |&i| i >= 32 || refused & (1 << i) == 0);
        let penalty = |i: usize| self.upstreams.get(i).map_or(i64::MAX, |u| u.penalty_until);
        order
            .clone()
            .find(|&i| penalty(i) <= now)
            .or_else(|| order.min_by_key(|&i| penalty(i)))
    }

    fn penalise(&mut self, ui: usize, now: i64) {
        if let Some(u) = self.upstreams.get_mut(ui) {
            u.penalty_until = now.saturating_add(PENALTY_US);
        }
    }

    /// The UDP socket of upstream `ui`, created and registered on first use.
    fn udp_socket(&mut self, ui: usize, io: &mut DnsIo<'_>) -> Option<(usize, u32)> {
        let u = self.upstreams.get(ui)?;
        if let Some((idx, serial)) = u.udp
            && self.slots.get(idx).is_some_and(|s| s.serial() == serial)
        {
            return Some((idx, serial));
        }
        let addr = u.addr;
        let std = match new_udp(addr) {
            Ok(s) => s,
            Err(e) => {
                crate::limited!(Warn, "DNS: cannot open a socket to upstream {addr}: {e}");
                return None;
            }
        };
        let mut sock = mio::net::UdpSocket::from_std(std);
        let serial = self.new_serial();
        let entry = self.slots.vacant_entry();
        let idx = entry.key();
        if let Err(e) = io
            .registry
            .register(&mut sock, (io.token)(idx), Interest::READABLE)
        {
            crate::limited!(
                Warn,
                "DNS: cannot register the socket to upstream {addr}: {e}"
            );
            return None;
        }
        entry.insert(Slot::Udp(UdpSock { sock, serial, addr }));
        if let Some(u) = self.upstreams.get_mut(ui) {
            u.udp = Some((idx, serial));
        }
        Some((idx, serial))
    }

    /// Forwards a UDP query; returns an immediate reply (SERVFAIL when no
    /// upstream can be tried) or None.
    pub(super) fn forward_udp(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        msg: &[u8],
        pq: ParsedQuery,
        io: &mut DnsIo<'_>,
    ) -> Option<Vec<u8>> {
        if self.upstreams.is_empty() {
            self.stats.servfail += 1;
            crate::limited!(Debug, "DNS: no upstream server: SERVFAIL");
            return Some(message::servfail(msg, &pq));
        }
        if self.pending.len() >= MAX_PENDING {
            self.stats.dropped += 1;
            crate::limited!(
                Debug,
                "DNS: {MAX_PENDING} queries pending: dropping one from {client}"
            );
            return None;
        }
        let id = (0..64)
            .map(|_| self.ids.next())
            .find(|id| !self.pending.contains_key(id))?;
        let mut query = self.buffer();
        query.extend_from_slice(msg);
        message::set_id(&mut query, id);
        let serial = self.new_serial();
        self.pending.insert(
            id,
            UdpPending {
                serial,
                client,
                server,
                pq,
                query,
                sent: [(usize::MAX, 0); SENT_SLOTS],
                n_sent: 0,
                last: None,
                refused: 0,
                epoch: self.epoch,
                started: io.now_us,
                deadline: 0,
            },
        );
        self.stats.forwarded += 1;
        if self.udp_attempt(id, io) {
            None
        } else {
            self.udp_fail(id).map(|r| r.bytes)
        }
    }

    /// Sends pending query `id` to the next upstream. False when no upstream
    /// is left to try.
    fn udp_attempt(&mut self, id: u16, io: &mut DnsIo<'_>) -> bool {
        let now = io.now_us;
        for _ in 0..=self.upstreams.len() {
            let Some(p) = self.pending.get(&id) else {
                return false;
            };
            let (after, refused) = if p.epoch == self.epoch {
                (p.last, p.refused)
            } else {
                (None, 0)
            };
            let Some(ui) = self.pick(after, refused, now) else {
                return false;
            };
            let Some(slot) = self.udp_socket(ui, io) else {
                self.stats.refused += 1;
                self.udp_refused(id, ui, now);
                continue;
            };
            let (Some(Slot::Udp(u)), Some(p)) = (self.slots.get(slot.0), self.pending.get_mut(&id))
            else {
                return false;
            };
            let mut sent = u.sock.send(&p.query);
            if matches!(&sent, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused) {
                // An error left from an earlier query's ICMP: try once more.
                sent = u.sock.send(&p.query);
            }
            match sent {
                // A full socket buffer loses the datagram like the network
                // would: the timeout resends it.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    crate::limited!(Debug, "DNS: sending to upstream {}: {e}", u.addr);
                    self.stats.refused += 1;
                    self.udp_refused(id, ui, now);
                    continue;
                }
            }
            if p.epoch != self.epoch {
                p.refused = 0;
                p.epoch = self.epoch;
            }
            p.last = Some(ui);
            p.record_send(slot);
            p.deadline = now
                .saturating_add(ATTEMPT_TIMEOUT_US)
                .min(p.started.saturating_add(QUERY_LIFETIME_US));
            let (deadline, serial) = (p.deadline, p.serial);
            self.arm(deadline, Timer::Udp { id, serial });
            return true;
        }
        false
    }

    /// Upstream `ui` refused query `id`.
    fn udp_refused(&mut self, id: u16, ui: usize, now: i64) {
        self.penalise(ui, now);
        let epoch = self.epoch;
        if let Some(p) = self.pending.get_mut(&id) {
            if p.epoch != epoch {
                p.refused = 0;
                p.epoch = epoch;
            }
            if ui < 32 {
                p.refused |= 1 << ui;
            }
            p.last = Some(ui);
        }
    }

    /// Gives up on query `id`: SERVFAIL for its requester.
    fn udp_fail(&mut self, id: u16) -> Option<Reply> {
        let p = self.pending.remove(&id)?;
        self.stats.servfail += 1;
        crate::limited!(
            Debug,
            "DNS: no upstream answered {} {}: SERVFAIL",
            p.pq.query.name(),
            p.pq.query.query_type()
        );
        let bytes = message::servfail(&p.query, &p.pq);
        Some(self.reply_to(p, bytes))
    }

    /// The answer for a finished query, whose buffer goes back to the pool.
    fn reply_to(&mut self, p: UdpPending, bytes: Vec<u8>) -> Reply {
        self.recycle(p.query);
        Reply {
            client: p.client,
            server: p.server,
            bytes,
        }
    }

    pub(super) fn udp_timeout(&mut self, id: u16, io: &mut DnsIo<'_>, out: &mut Vec<Reply>) {
        let now = io.now_us;
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        self.stats.timeouts += 1;
        let expired = now >= p.started.saturating_add(QUERY_LIFETIME_US);
        if let (Some(ui), true) = (p.last, p.epoch == self.epoch) {
            self.penalise(ui, now);
        }
        if expired || !self.udp_attempt(id, io) {
            out.extend(self.udp_fail(id));
        }
    }

    /// Reads the answers waiting on upstream socket `idx`.
    pub(super) fn udp_readable(&mut self, idx: usize, io: &mut DnsIo<'_>, out: &mut Vec<Reply>) {
        let mut buf = std::mem::take(&mut self.scratch);
        if buf.len() < 65536 {
            buf.resize(65536, 0);
        }
        let mut drained = false;
        for _ in 0..UDP_BATCH {
            let Some(Slot::Udp(u)) = self.slots.get(idx) else {
                drained = true;
                break;
            };
            let slot = (idx, u.serial);
            match u.sock.recv(&mut buf) {
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    out.extend(self.udp_answer(slot, data));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.udp_error(slot, &e, io, out),
            }
        }
        if !drained && let Some(Slot::Udp(u)) = self.slots.get_mut(idx) {
            // More to read: have the loop report the socket again.
            let _ = io
                .registry
                .reregister(&mut u.sock, (io.token)(idx), Interest::READABLE);
        }
        self.scratch = buf;
    }

    /// An upstream's datagram: the answer for its requester, if it is one.
    fn udp_answer(&mut self, slot: (usize, u32), data: &[u8]) -> Option<Reply> {
        let checked = message::id(data)
            .filter(|_| message::is_response(data))
            .and_then(|id| self.pending.get(&id).map(|p| (id, p)))
            .filter(|(_, p)| p.sent_on(slot))
            .map(|(id, p)| (id, message::check_reply(data, &p.pq.query)));
        let (id, question_end) = match checked {
            Some((id, Ok(end))) => (id, end),
            Some((_, Err(why))) => {
                self.stats.bad_replies += 1;
                crate::limited!(Debug, "DNS: dropped an upstream reply: {why:?}");
                return None;
            }
            None => {
                self.stats.bad_replies += 1;
                crate::limited!(Debug, "DNS: dropped an unexpected upstream datagram");
                return None;
            }
        };
        let p = self.pending.remove(&id)?;
        let mut bytes = if data.len() > message::udp_limit(p.pq.edns) {
            crate::limited!(
                Debug,
                "DNS: an upstream answer exceeds the requester's size: sent with TC"
            );
            message::truncated(data, question_end, p.pq.edns)
        } else {
            data.to_vec()
        };
        message::set_id(&mut bytes, p.pq.id);
        for u in &mut self.upstreams {
            if u.udp == Some(slot) {
                u.penalty_until = 0;
            }
        }
        self.stats.answers += 1;
        Some(self.reply_to(p, bytes))
    }

    /// An error on an upstream socket (ECONNREFUSED after an ICMP port
    /// unreachable, host unreachable): the queries last sent there move on.
    fn udp_error(
        &mut self,
        slot: (usize, u32),
        e: &io::Error,
        io: &mut DnsIo<'_>,
        out: &mut Vec<Reply>,
    ) {
        let now = io.now_us;
        let ui = self.upstreams.iter().position(|u| u.udp == Some(slot));
        crate::limited!(
            Debug,
            "DNS: upstream {}: {e}",
            ui.and_then(|i| self.upstreams.get(i))
                .map_or_else(|| "(gone)".to_string(), |u| u.addr.to_string())
        );
        let ids: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.latest() == Some(slot))
            .map(|(id, _)| *id)
            .collect();
        let Some(ui) = ui else {
            return;
        };
        self.penalise(ui, now);
        for id in ids {
            self.stats.refused += 1;
            self.udp_refused(id, ui, now);
            if !self.udp_attempt(id, io) {
                out.extend(self.udp_fail(id));
            }
        }
    }

    // ------------------------------------------------------------- TCP

    /// Forwards a TCP client's query over TCP. `Err` is the reply to give
    /// at once (SERVFAIL).
    pub(super) fn start_up_tcp(
        &mut self,
        client: (usize, u32),
        msg: &[u8],
        pq: ParsedQuery,
        io: &mut DnsIo<'_>,
    ) -> Result<(), Vec<u8>> {
        if self.upstreams.is_empty() || self.up_tcp >= MAX_TCP_UPSTREAM {
            self.stats.servfail += 1;
            crate::limited!(
                Debug,
                "DNS: no upstream server or too many TCP queries: SERVFAIL"
            );
            return Err(message::servfail(msg, &pq));
        }
        // Clients' queries are at most MAX_QUERY bytes; a longer one cannot be framed.
        let Ok(len) = u16::try_from(msg.len()) else {
            self.stats.servfail += 1;
            return Err(message::servfail(msg, &pq));
        };
        let our_id = self.ids.next();
        let mut buf = Vec::with_capacity(2 + msg.len());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(msg);
        if let Some(b) = buf.get_mut(2..) {
            message::set_id(b, our_id);
        }
        let serial = self.new_serial();
        let idx = self.slots.insert(Slot::UpTcp(UpTcp {
            serial,
            sock: None,
            client,
            pq,
            msg: buf,
            our_id,
            written: 0,
            connected: false,
            rbuf: Vec::new(),
            last: None,
            refused: 0,
            epoch: self.epoch,
            started: io.now_us,
            deadline: 0,
        }));
        self.up_tcp += 1;
        self.stats.forwarded += 1;
        if self.up_tcp_attempt(idx, io) {
            return Ok(());
        }
        self.stats.servfail += 1;
        Err(match self.remove_up_tcp(idx, io) {
            Some(u) => message::servfail(u.msg.get(2..).unwrap_or_default(), &u.pq),
            // Not reached: the slot was inserted above.
            None => message::error_reply(msg, 0, None, message::Rcode::ServFail, None),
        })
    }

    /// Connects upstream TCP query `idx` to the next upstream. False when
    /// none is left.
    fn up_tcp_attempt(&mut self, idx: usize, io: &mut DnsIo<'_>) -> bool {
        let now = io.now_us;
        for _ in 0..=self.upstreams.len() {
            let Some(Slot::UpTcp(u)) = self.slots.get_mut(idx) else {
                return false;
            };
            if let Some(mut old) = u.sock.take() {
                let _ = io.registry.deregister(&mut old);
            }
            if u.epoch != self.epoch {
                u.epoch = self.epoch;
                u.refused = 0;
                u.last = None;
            }
            let (after, refused) = (u.last, u.refused);
            let Some(ui) = self.pick(after, refused, now) else {
                return false;
            };
            let Some(addr) = self.upstreams.get(ui).map(|u| u.addr) else {
                return false;
            };
            let connected = new_tcp(addr)
                .map(mio::net::TcpStream::from_std)
                .and_then(|mut s| {
                    io.registry
                        .register(
                            &mut s,
                            (io.token)(idx),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .map(|()| s)
                });
            let Some(Slot::UpTcp(u)) = self.slots.get_mut(idx) else {
                return false;
            };
            u.last = Some(ui);
            match connected {
                Ok(s) => {
                    u.sock = Some(s);
                    u.connected = false;
                    u.written = 0;
                    u.rbuf.clear();
                    u.deadline = now
                        .saturating_add(ATTEMPT_TIMEOUT_US)
                        .min(u.started.saturating_add(QUERY_LIFETIME_US));
                    let (deadline, serial) = (u.deadline, u.serial);
                    self.arm(deadline, Timer::Slot { idx, serial });
                    return true;
                }
                Err(e) => {
                    crate::limited!(Debug, "DNS: TCP to upstream {addr}: {e}");
                    if ui < 32 {
                        u.refused |= 1 << ui;
                    }
                    self.stats.refused += 1;
                    self.penalise(ui, now);
                }
            }
        }
        false
    }

    fn remove_up_tcp(&mut self, idx: usize, io: &mut DnsIo<'_>) -> Option<UpTcp> {
        if !matches!(self.slots.get(idx), Some(Slot::UpTcp(_))) {
            return None;
        }
        let Slot::UpTcp(mut u) = self.slots.remove(idx) else {
            return None;
        };
        if let Some(mut s) = u.sock.take() {
            let _ = io.registry.deregister(&mut s);
        }
        self.up_tcp = self.up_tcp.saturating_sub(1);
        Some(u)
    }

    /// Closes upstream TCP queries of TCP client `client`.
    pub(super) fn cancel_up_tcp(&mut self, client: (usize, u32), io: &mut DnsIo<'_>) {
        let idxs: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::UpTcp(u) if u.client == client))
            .map(|(i, _)| i)
            .collect();
        for idx in idxs {
            self.remove_up_tcp(idx, io);
        }
    }

    /// The attempt of `idx` failed: next upstream, or SERVFAIL.
    fn up_tcp_failed(&mut self, idx: usize, refused: bool, io: &mut DnsIo<'_>) {
        let now = io.now_us;
        if let Some(Slot::UpTcp(u)) = self.slots.get_mut(idx)
            && let Some(ui) = u.last
            && u.epoch == self.epoch
        {
            if refused && ui < 32 {
                u.refused |= 1 << ui;
            }
            self.penalise(ui, now);
        }
        let expired = matches!(self.slots.get(idx),
            Some(Slot::UpTcp(u)) if now >= u.started.saturating_add(QUERY_LIFETIME_US));
        if !expired && self.up_tcp_attempt(idx, io) {
            return;
        }
        if let Some(u) = self.remove_up_tcp(idx, io) {
            self.stats.servfail += 1;
            crate::limited!(
                Debug,
                "DNS: no upstream answered {} {} over TCP: SERVFAIL",
                u.pq.query.name(),
                u.pq.query.query_type()
            );
            let reply = message::servfail(u.msg.get(2..).unwrap_or_default(), &u.pq);
            self.deliver_tcp(u.client, reply, io);
        }
    }

    pub(super) fn up_tcp_timeout(&mut self, idx: usize, io: &mut DnsIo<'_>) {
        self.stats.timeouts += 1;
        self.up_tcp_failed(idx, false, io);
    }

    /// Progress on upstream TCP query `idx`: connect, write, read.
    pub(super) fn up_tcp_event(&mut self, idx: usize, io: &mut DnsIo<'_>) {
        let mut buf = std::mem::take(&mut self.scratch);
        let result = self.up_tcp_progress(idx, &mut buf);
        self.scratch = buf;
        match result {
            Progress::Wait => {}
            Progress::Failed { refused } => self.up_tcp_failed(idx, refused, io),
            Progress::Done => {
                let good = match self.slots.get(idx) {
                    Some(Slot::UpTcp(u)) => {
                        let reply = u.rbuf.get(2..).unwrap_or_default();
                        if message::id(reply) == Some(u.our_id) {
                            message::check_reply(reply, &u.pq.query).map(|_| ())
                        } else {
                            Err(message::BadReply::Id)
                        }
                    }
                    _ => return,
                };
                if let Err(why) = good {
                    self.stats.bad_replies += 1;
                    crate::limited!(Debug, "DNS: dropped an upstream TCP reply: {why:?}");
                    self.up_tcp_failed(idx, false, io);
                    return;
                }
                let Some(u) = self.remove_up_tcp(idx, io) else {
                    return;
                };
                if let Some(ui) = u.last.filter(|_| u.epoch == self.epoch)
                    && let Some(up) = self.upstreams.get_mut(ui)
                {
                    up.penalty_until = 0;
                }
                let mut bytes = u.rbuf;
                bytes.drain(..2.min(bytes.len()));
                message::set_id(&mut bytes, u.pq.id);
                self.stats.answers += 1;
                self.deliver_tcp(u.client, bytes, io);
            }
        }
    }

    fn up_tcp_progress(&mut self, idx: usize, buf: &mut [u8]) -> Progress {
        let Some(Slot::UpTcp(u)) = self.slots.get_mut(idx) else {
            return Progress::Wait;
        };
        let Some(sock) = u.sock.as_mut() else {
            return Progress::Wait;
        };
        if !u.connected {
            match sock.take_error() {
                Ok(None) => {}
                Ok(Some(_)) | Err(_) => return Progress::Failed { refused: true },
            }
            match sock.peer_addr() {
                Ok(_) => u.connected = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Progress::Wait,
                Err(_) => return Progress::Failed { refused: true },
            }
        }
        // Bounded: every pass moves bytes or returns.
        loop {
            match u.msg.get(u.written..) {
                Some(rest) if !rest.is_empty() => match sock.write(rest) {
                    Ok(0) => return Progress::Failed { refused: false },
                    Ok(n) => {
                        u.written += n;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Progress::Failed { refused: false },
                },
                _ => {}
            }
            let want = match message::length_prefix(&u.rbuf) {
                None => 2 - u.rbuf.len().min(2),
                Some(len) => {
                    if len < message::HEADER_LEN {
                        return Progress::Failed { refused: false };
                    }
                    (2 + len).saturating_sub(u.rbuf.len())
                }
            };
            if want == 0 {
                return Progress::Done;
            }
            let chunk = want.min(buf.len());
            let Some(dst) = buf.get_mut(..chunk) else {
                return Progress::Failed { refused: false };
            };
            match sock.read(dst) {
                Ok(0) => return Progress::Failed { refused: false },
                Ok(n) => u.rbuf.extend_from_slice(dst.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Failed { refused: false },
            }
        }
    }
}

enum Progress {
    Wait,
    Done,
    Failed { refused: bool },
}
