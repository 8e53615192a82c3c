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

struct UdpFlow {
    key: FlowKey,
    port: usize,
    sock: UdpSocket,
    last: i64,
    replied: bool,
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
}

impl Default for UdpTable {
    fn default() -> Self {
        UdpTable {
            flows: FlowTable::new(MAX_UDP_FLOWS),
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
        }))
    }

    /// Send one datagram; returns a timer to arm when a flow was created.
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
        for _ in 0..2 {
            match flow.sock.send(payload) {
                Ok(_) => break,
                // An earlier datagram drew "port unreachable": tell the
                // namespace, then this datagram may still go through.
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    send_unreachable(ctx, port, pkt, key.dst.ip(), Unreachable::Port);
                }
                Err(e) => {
                    // A full socket buffer drops the datagram, as a full link would.
                    if let Some(kind) = super::unreachable_for(&e) {
                        send_unreachable(ctx, port, pkt, key.dst.ip(), kind);
                    }
                    break;
                }
            }
        }
        created.then(|| (flow.deadline(), token(Kind::Udp, idx).0))
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
                    let mut quote = [0u8; wire::IPV6_HDR_LEN + 8];
                    if let Some(len) = wire::flow_quote(
                        &mut quote,
                        flow.key.src,
                        flow.key.dst,
                        smoltcp::wire::IpProtocol::Udp,
                    ) {
                        send_unreachable(
                            ctx,
                            flow.port,
                            &quote[..len],
                            flow.key.dst.ip(),
                            Unreachable::Port,
                        );
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Close every flow of a port (its namespace is gone).
    pub fn drop_port(&mut self, port: usize, registry: &mio::Registry) {
        self.flows.drop_port(port, registry);
    }

    /// Timer for flow `idx` fired: close it if idle, else re-arm.
    pub fn expire(&mut self, idx: usize, _fired: i64, ctx: &mut Ctx<'_>) -> Option<(i64, usize)> {
        let flow = self.flows.get(idx)?;
        let deadline = flow.deadline();
        if deadline > ctx.now.total_micros() {
            return Some((deadline, token(Kind::Udp, idx).0));
        }
        self.flows.remove(idx, ctx.registry);
        None
    }
}
