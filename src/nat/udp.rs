//! Outbound UDP: one connected host socket per (namespace source,
//! destination) pair, so the kernel demultiplexes replies and only the
//! addressed peer can answer. Replies are rebuilt with the address the
//! namespace sent to as their source.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use mio::Interest;
use mio::net::UdpSocket;
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use super::{Ctx, FlowKey, Kind, MAX_UDP_FLOWS, bind_outbound, send_unreachable, token};
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

#[derive(Default)]
pub struct UdpTable {
    flows: Slab<UdpFlow>,
    per_port: super::PortCount,
    index: HashMap<FlowKey, usize>,
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
        if self.flows.len() >= MAX_UDP_FLOWS
            || self.per_port.full(port, MAX_UDP_FLOWS, ctx.outs.len())
        {
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
        let entry = self.flows.vacant_entry();
        let idx = entry.key();
        ctx.registry
            .register(&mut sock, token(Kind::Udp, idx), Interest::READABLE)?;
        self.per_port.add(port);
        entry.insert(UdpFlow {
            key,
            port,
            sock,
            last: ctx.now.total_micros(),
            replied: false,
        });
        self.index.insert(key, idx);
        Ok(idx)
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
        let (idx, created) = match self.index.get(&key) {
            Some(&idx) => (idx, false),
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
        let gone: Vec<usize> = self
            .flows
            .iter()
            .filter(|(_, f)| f.port == port)
            .map(|(i, _)| i)
            .collect();
        for idx in gone {
            self.remove(idx, registry);
        }
    }

    /// Forget flow `idx`: its slot, its share of the port's quota, its
    /// epoll registration and its key (the socket closes on drop).
    fn remove(&mut self, idx: usize, registry: &mio::Registry) {
        let mut flow = self.flows.remove(idx);
        self.per_port.sub(flow.port);
        let _ = registry.deregister(&mut flow.sock);
        self.index.remove(&flow.key);
    }

    /// Timer for flow `idx` fired: close it if idle, else re-arm.
    pub fn expire(&mut self, idx: usize, _fired: i64, ctx: &mut Ctx<'_>) -> Option<(i64, usize)> {
        let flow = self.flows.get(idx)?;
        let deadline = flow.deadline();
        if deadline > ctx.now.total_micros() {
            return Some((deadline, token(Kind::Udp, idx).0));
        }
        self.remove(idx, ctx.registry);
        None
    }
}
