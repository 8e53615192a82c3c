//! ICMP echo to the outside through unprivileged ping sockets (allowed when
//! the caller's group is in `net.ipv4.ping_group_range`). The kernel picks
//! the echo identifier; replies are rewritten back to the namespace's.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use mio::Interest;
use mio::event::Source;
use mio::net::UdpSocket;
use smoltcp::wire::{Icmpv4Repr, Icmpv6Repr};
use socket2::{Domain, Protocol, Socket, Type};

use super::table::{Flow, FlowTable};
use super::{MAX_ICMP_FLOWS, bind_outbound};
use crate::event::{Ctx, Kind, token};
use crate::wire;

/// pasta's ICMP_ECHO_TIMEOUT.
const IDLE_US: i64 = 60_000_000;

/// An echo request from the namespace.
#[derive(Debug, Clone, Copy)]
pub struct EchoRequest<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ident: u16,
    pub seq: u16,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ident: u16,
}

struct PingFlow {
    key: Key,
    port: usize,
    sock: UdpSocket,
    last: i64,
}

impl Flow for PingFlow {
    type Key = Key;
    fn key(&self) -> Key {
        self.key
    }
    fn port(&self) -> usize {
        self.port
    }
    fn source(&mut self) -> &mut dyn Source {
        &mut self.sock
    }
}

pub struct PingTable {
    flows: FlowTable<PingFlow>,
    buf: Vec<u8>,
}

impl Default for PingTable {
    fn default() -> Self {
        PingTable {
            flows: FlowTable::new(MAX_ICMP_FLOWS),
            buf: Vec::new(),
        }
    }
}

static WARNED: AtomicBool = AtomicBool::new(false);

impl PingTable {
    fn open(&mut self, port: usize, key: Key, host: IpAddr, ctx: &Ctx<'_>) -> io::Result<usize> {
        if self.flows.full(port, ctx.outs.len()) {
            return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
        }
        let (domain, proto) = match host {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let sock = Socket::new(domain, Type::DGRAM.nonblocking(), Some(proto))?;
        let addr = SocketAddr::new(host, 0);
        bind_outbound(&sock, addr, ctx.outbound)?;
        sock.connect(&addr.into())?;
        let mut sock = UdpSocket::from_std(sock.into());
        let idx = self.flows.next_index();
        ctx.registry
            .register(&mut sock, token(Kind::Icmp, idx), Interest::READABLE)?;
        Ok(self.flows.insert(PingFlow {
            key,
            port,
            sock,
            last: ctx.now.total_micros(),
        }))
    }

    /// Forward an echo request; returns a timer to arm for a new flow.
    pub fn send(
        &mut self,
        port: usize,
        req: EchoRequest<'_>,
        host: IpAddr,
        ctx: &mut Ctx<'_>,
    ) -> Option<(i64, usize)> {
        let key = Key {
            src: req.src,
            dst: req.dst,
            ident: req.ident,
        };
        let (idx, created) = match self.flows.find(&key) {
            Some(i) => (i, false),
            None => match self.open(port, key, host, ctx) {
                Ok(i) => (i, true),
                Err(e) => {
                    if e.kind() == io::ErrorKind::PermissionDenied
                        && !WARNED.swap(true, Ordering::Relaxed)
                    {
                        log::warn!(
                            "ping to outside addresses is unavailable: the group of rlnet's user is not in \
                             net.ipv4.ping_group_range (as root: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\")"
                        );
                    } else {
                        crate::limited!(Debug, "ping socket for {host}: {e}");
                    }
                    return None;
                }
            },
        };
        let flow = self.flows.get_mut(idx)?;
        flow.last = ctx.now.total_micros();
        // type, code, checksum and identifier are filled in by the kernel.
        let kind = if host.is_ipv4() { 8 } else { 128 };
        let mut msg = Vec::with_capacity(8 + req.data.len());
        msg.extend_from_slice(&[kind, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&req.seq.to_be_bytes());
        msg.extend_from_slice(req.data);
        let _ = flow.sock.send(&msg);
        created.then(|| (flow.last + IDLE_US, token(Kind::Icmp, idx).0))
    }

    /// Relay echo replies.
    pub fn receive(&mut self, idx: usize, ctx: &mut Ctx<'_>) {
        let Some(flow) = self.flows.get_mut(idx) else {
            return;
        };
        self.buf.resize(65536, 0);
        for _ in 0..64 {
            let n = match flow.sock.recv(&mut self.buf) {
                Ok(n) => n,
                Err(_) => return,
            };
            let Some(msg) = self.buf.get(..n) else { return };
            if msg.len() < 8 {
                continue;
            }
            let seq = u16::from_be_bytes([msg[6], msg[7]]);
            let data = &msg[8..];
            let Some(out) = ctx.outs.get_mut(flow.port) else {
                return;
            };
            let len = match (flow.key.dst, flow.key.src, msg[0]) {
                (IpAddr::V4(from), IpAddr::V4(to), 0) => {
                    let reply = Icmpv4Repr::EchoReply {
                        ident: flow.key.ident,
                        seq_no: seq,
                        data,
                    };
                    wire::icmpv4(out.ip_buf(), from, to, &reply)
                }
                (IpAddr::V6(from), IpAddr::V6(to), 129) => {
                    let reply = Icmpv6Repr::EchoReply {
                        ident: flow.key.ident,
                        seq_no: seq,
                        data,
                    };
                    wire::icmpv6(out.ip_buf(), from, to, &reply, wire::HOP_LIMIT)
                }
                _ => None,
            };
            if let Some(len) = len {
                flow.last = ctx.now.total_micros();
                out.send_ip(len);
            }
        }
    }

    /// Close every flow of a port (its namespace is gone).
    pub fn drop_port(&mut self, port: usize, registry: &mio::Registry) {
        self.flows.drop_port(port, registry);
    }

    pub fn expire(&mut self, idx: usize, _fired: i64, ctx: &mut Ctx<'_>) -> Option<(i64, usize)> {
        let flow = self.flows.get(idx)?;
        let deadline = flow.last + IDLE_US;
        if deadline > ctx.now.total_micros() {
            return Some((deadline, token(Kind::Icmp, idx).0));
        }
        self.flows.remove(idx, ctx.registry);
        None
    }
}
