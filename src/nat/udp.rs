//! Outbound UDP: one connected host socket per (namespace source,
//! destination) pair, so the kernel demultiplexes replies and only the
//! addressed peer can answer. Replies are rebuilt with the address the
//! namespace sent to as their source.

use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::event::Source;
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::table::{Flow, FlowTable};
use super::{FlowKey, MAX_UDP_FLOWS, bind_outbound, send_unreachable};
use crate::event::{Ctx, Kind, token};
use crate::wire::{self, Unreachable};

/// Idle timeout of a flow that never got an answer (DNS-style one-shots).
pub const IDLE_UNREPLIED_US: i64 = 30_000_000;
/// Idle timeout once the peer has answered (pasta 120 s, slirp 240 s).
pub const IDLE_REPLIED_US: i64 = 180_000_000;
/// Datagrams read per wake-up before yielding to other work.
const RECV_BATCH: usize = 64;
/// Datagrams of one run sent in one UDP_SEGMENT send: the kernel's
/// UDP_MAX_SEGMENTS was 64 before Linux 6.6.
const RUN_MAX_SEGS: usize = 64;
/// Payload bytes of one run: an IP datagram's 65,535 less its headers.
const RUN_MAX_BYTES: usize = 65_535 - 40 - 8;

/// How a datagram of `len` bytes joins a run of `count` datagrams of `seg`
/// bytes holding `bytes` (pure; UDP_SEGMENT's rules: every segment `seg`
/// long but the last, which may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// Same size: the run grows.
    Append,
    /// Shorter: it ends the run, which is sent now.
    Last,
    /// Doesn't fit (larger, empty, or the run is full): send the run first.
    SendFirst,
}

fn join(seg: usize, count: usize, bytes: usize, len: usize) -> Join {
    if count == 0 || len == 0 || count >= RUN_MAX_SEGS || bytes + len > RUN_MAX_BYTES {
        Join::SendFirst
    } else if len == seg {
        Join::Append
    } else if len < seg {
        Join::Last
    } else {
        Join::SendFirst
    }
}

/// Datagrams of one flow taken from the TAP in one batch, still to send:
/// sent together with UDP_SEGMENT, one system call and one wake-up of the
/// receiver per run instead of per datagram (per datagram, the sends and
/// the receiver preempting rlnet were where outbound UDP lost its time).
#[derive(Default)]
struct Run {
    idx: usize,
    /// Length of each datagram (the last may be shorter).
    seg: usize,
    count: usize,
    /// The payloads, back to back.
    data: Vec<u8>,
}

struct UdpFlow {
    key: FlowKey,
    port: usize,
    sock: UdpSocket,
    last: i64,
    replied: bool,
    /// UDP_SEGMENT was refused on this socket (an old kernel, a path MTU
    /// below the datagrams): its runs go one datagram at a time.
    no_gso: bool,
}

impl UdpFlow {
    fn deadline(&self) -> i64 {
        self.last
            + if self.replied {
                IDLE_REPLIED_US
            } else {
                IDLE_UNREPLIED_US
            }
    }
}

impl Flow for UdpFlow {
    type Key = FlowKey;
    fn key(&self) -> FlowKey {
        self.key
    }
    fn port(&self) -> usize {
        self.port
    }
    fn source(&mut self) -> &mut dyn Source {
        &mut self.sock
    }
}

pub struct UdpTable {
    flows: FlowTable<UdpFlow>,
    /// At most one run is open: a datagram of another flow sends it.
    run: Run,
}

impl Default for UdpTable {
    fn default() -> Self {
        UdpTable {
            flows: FlowTable::new(MAX_UDP_FLOWS),
            run: Run::default(),
        }
    }
}

impl UdpTable {
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    fn open(
        &mut self,
        port: usize,
        key: FlowKey,
        addr: SocketAddr,
        ctx: &Ctx<'_>,
    ) -> io::Result<usize> {
        if self.flows.full(port, ctx.outs.len()) {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        let sock = Socket::new(
            Domain::for_address(addr),
            Type::DGRAM.nonblocking(),
            Some(Protocol::UDP),
        )?;
        bind_outbound(&sock, addr, ctx.outbound)?;
        sock.connect(&addr.into())?;
        let mut sock = UdpSocket::from_std(sock.into());
        let idx = self.flows.next_index();
        ctx.registry
            .register(&mut sock, token(Kind::Udp, idx), Interest::READABLE)?;
        Ok(self.flows.insert(UdpFlow {
            key,
            port,
            sock,
            last: ctx.now.total_micros(),
            replied: false,
            no_gso: false,
        }))
    }

    /// Take one datagram for the host: it joins the open run of its flow
    /// (sent by [`UdpTable::flush`], which the engine calls after each batch
    /// of frames). Returns a timer to arm when a flow was created.
    pub fn send(
        &mut self,
        port: usize,
        pkt: &[u8],
        key: FlowKey,
        addr: SocketAddr,
        payload: &[u8],
        ctx: &mut Ctx<'_>,
    ) -> Option<(i64, usize)> {
        let (idx, created) = match self.flows.find(&key) {
            Some(idx) => (idx, false),
            None => match self.open(port, key, addr, ctx) {
                Ok(idx) => (idx, true),
                Err(e) => {
                    crate::limited!(Debug, "UDP to {addr}: {e}");
                    if let Some(kind) = super::unreachable_for(&e) {
                        send_unreachable(ctx, port, pkt, key.dst.ip(), kind);
                    }
                    return None;
                }
            },
        };
        let flow = self.flows.get_mut(idx)?;
        flow.last = ctx.now.total_micros();
        let timer = created.then(|| (flow.deadline(), token(Kind::Udp, idx).0));
        let run = &self.run;
        let open = run.count > 0 && run.idx == idx;
        let how = if open {
            join(run.seg, run.count, run.data.len(), payload.len())
        } else {
            Join::SendFirst
        };
        if how == Join::SendFirst {
            self.flush(ctx);
            if payload.is_empty() {
                // Nothing to segment: on its own, now.
                if let Some(flow) = self.flows.get(idx) {
                    send_one(flow, payload, ctx);
                }
                return timer;
            }
            self.run.idx = idx;
            self.run.seg = payload.len();
        }
        self.run.count += 1;
        self.run.data.extend_from_slice(payload);
        if how == Join::Last {
            self.flush(ctx);
        }
        timer
    }

    /// Send the open run, if any.
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        if self.run.count == 0 {
            return;
        }
        let mut run = std::mem::take(&mut self.run);
        let (idx, seg) = (run.idx, run.seg);
        if run.count == 1 || !self.send_gso(idx, &run.data, seg, ctx) {
            self.send_each(idx, &run.data, seg, ctx);
        }
        // The storage (at most one run's worth) serves the next run.
        run.data.clear();
        run.count = 0;
        self.run = run;
    }

    /// The run as one UDP_SEGMENT send. False: not sent, send it datagram
    /// by datagram (the socket refused segmentation).
    fn send_gso(&mut self, idx: usize, data: &[u8], seg: usize, ctx: &mut Ctx<'_>) -> bool {
        let Some(flow) = self.flows.get_mut(idx) else {
            return true;
        };
        if flow.no_gso {
            return false;
        }
        let Ok(seg16) = u16::try_from(seg) else {
            return false;
        };
        for _ in 0..2 {
            match crate::sys::os::send_segments(&flow.sock, data, seg16) {
                Ok(_) => return true,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    unreachable(flow, Unreachable::Port, ctx);
                }
                Err(e) if gso_refused(&e) => {
                    flow.no_gso = true;
                    return false;
                }
                Err(e) => {
                    // A full socket buffer drops the run, as a full link would.
                    failed(flow, &e, ctx);
                    return true;
                }
            }
        }
        true
    }

    /// The datagrams of a run (each `seg` long, the last maybe shorter),
    /// one send each.
    fn send_each(&self, idx: usize, data: &[u8], seg: usize, ctx: &mut Ctx<'_>) {
        let Some(flow) = self.flows.get(idx) else {
            return;
        };
        for payload in data.chunks(seg.max(1)) {
            send_one(flow, payload, ctx);
        }
    }

    /// Relay replies to the namespace. True when the batch limit was hit and
    /// more may be waiting.
    pub fn receive(&mut self, idx: usize, ctx: &mut Ctx<'_>) -> bool {
        let Some(flow) = self.flows.get_mut(idx) else {
            return false;
        };
        let v6 = flow.key.src.is_ipv6();
        let off = wire::udp_payload_offset(v6);
        let max = wire::max_udp_payload(v6);
        for _ in 0..RECV_BATCH {
            let Some(out) = ctx.outs.get_mut(flow.port) else {
                return false;
            };
            let buf = out.ip_buf();
            let Some(room) = buf.get_mut(off..off + max) else {
                return false;
            };
            match flow.sock.recv(room) {
                Ok(n) => {
                    flow.replied = true;
                    flow.last = ctx.now.total_micros();
                    if let Some(len) =
                        wire::udp_headers(out.ip_buf(), flow.key.dst, flow.key.src, n)
                    {
                        out.send_ip(len);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    unreachable(flow, Unreachable::Port, ctx);
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Close every flow of a port (its namespace is gone).
    pub fn drop_port(&mut self, port: usize, registry: &mio::Registry) {
        if self.run.count > 0 && self.flows.get(self.run.idx).is_none_or(|f| f.port == port) {
            self.run.count = 0;
            self.run.data.clear();
        }
        self.flows.drop_port(port, registry);
    }

    /// Timer for flow `idx` fired: close it if idle, else re-arm.
    pub fn expire(&mut self, idx: usize, _fired: i64, ctx: &mut Ctx<'_>) -> Option<(i64, usize)> {
        let flow = self.flows.get(idx)?;
        let deadline = flow.deadline();
        if deadline > ctx.now.total_micros() {
            return Some((deadline, token(Kind::Udp, idx).0));
        }
        if self.run.idx == idx {
            self.flush(ctx);
        }
        self.flows.remove(idx, ctx.registry);
        None
    }
}

fn send_one(flow: &UdpFlow, payload: &[u8], ctx: &mut Ctx<'_>) {
    for _ in 0..2 {
        match flow.sock.send(payload) {
            Ok(_) => break,
            // An earlier datagram drew "port unreachable": tell the
            // namespace, then this datagram may still go through.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                unreachable(flow, Unreachable::Port, ctx);
            }
            Err(e) => {
                // A full socket buffer drops the datagram, as a full link would.
                failed(flow, &e, ctx);
                break;
            }
        }
    }
}

/// Tell the namespace its flow's datagrams are undeliverable (quoting a
/// header rebuilt from the flow): "port unreachable" when a send or a
/// receive reports that an earlier datagram drew one.
fn unreachable(flow: &UdpFlow, kind: Unreachable, ctx: &mut Ctx<'_>) {
    super::send_unreachable_for_flow(
        &flow.key,
        smoltcp::wire::IpProtocol::Udp,
        flow.port,
        kind,
        ctx,
    );
}

/// A send failed for good: an ICMP error when the error has one.
fn failed(flow: &UdpFlow, e: &io::Error, ctx: &mut Ctx<'_>) {
    if let Some(kind) = super::unreachable_for(e) {
        unreachable(flow, kind, ctx);
    }
}

/// Errors that mean "this socket can't segment" (no UDP_SEGMENT before
/// Linux 4.18, a segment larger than the path MTU, no checksum offload on
/// the way out), not that the datagrams are undeliverable.
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::EMSGSIZE | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_udp_segment_rules() {
        // The first datagram always opens a run.
        assert_eq!(join(0, 0, 0, 1400), Join::SendFirst);
        assert_eq!(join(1400, 1, 1400, 1400), Join::Append);
        assert_eq!(join(1400, 3, 4200, 600), Join::Last);
        assert_eq!(join(1400, 3, 4200, 1401), Join::SendFirst);
        assert_eq!(join(1400, 3, 4200, 0), Join::SendFirst);
        assert_eq!(join(100, RUN_MAX_SEGS, 6400, 100), Join::SendFirst);
        assert_eq!(join(1400, 46, 64_400, 1400), Join::SendFirst);
        assert_eq!(join(1400, 45, 63_000, 1400), Join::Append);
    }
}
