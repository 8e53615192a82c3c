//! One frame from a namespace, taken apart: L2 (the switch of a named
//! network, ARP, DHCP), then IPv4/IPv6 (neighbour discovery, router
//! advertisements, ICMP echo, "packet too big" about rlnet's TCP segments)
//! and the transport, which goes to the flows (`nat/`), a published port's
//! client or the DNS stub. Anything malformed is dropped here, before it can
//! reach smoltcp or a host socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mio::Registry;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet,
    Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket,
    UdpPacket,
};

use super::Dp;
use super::switch::Verdict;
use crate::nat::FlowKey;
use crate::nat::icmp::EchoRequest;
use crate::nat::pmtu;
use crate::nat::policy::Decision;
use crate::wire::VNET_HDR_LEN;
use crate::wire::frag::Push;
use crate::wire::{self, VnetHdr};

/// Router advertisements: the default route's lifetime, and how often it
/// is renewed once the namespace asked for a router (as radvd: a third).
const RA_ROUTER_LIFETIME_S: u64 = 1800;
const RA_INTERVAL_US: i64 = 600_000_000;

/// All IPv6 nodes: where unsolicited advertisements go.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An IP packet from the namespace, checked as far as the transport header.
#[derive(Clone, Copy)]
struct Ip<'a> {
    port: usize,
    /// The whole packet (IP header included).
    pkt: &'a [u8],
    /// The transport header and payload.
    body: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    vnet: VnetHdr,
}

/// An ICMP or ICMPv6 echo request's fields.
struct Echo<'a> {
    ident: u16,
    seq_no: u16,
    data: &'a [u8],
}

impl Dp {
    /// Build a packet in `port`'s frame buffer and send it.
    fn send_built(&mut self, port: usize, build: impl FnOnce(&mut [u8]) -> Option<usize>) {
        if let Some(out) = self.outs.get_mut(port)
            && let Some(len) = build(out.ip_buf())
        {
            out.send_ip(len);
        }
    }

    /// One frame from the namespace on `port`.
    pub(super) fn frame(&mut self, port: usize, frame: &[u8], registry: &Registry) {
        let Some(vnet) = VnetHdr::parse(frame) else {
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(&frame[VNET_HDR_LEN..]) else {
            return;
        };
        let src_mac = eth.src_addr();
        let dst_mac = eth.dst_addr();
        let ours = self.l2.mac;
        if !src_mac.is_unicast() || src_mac == ours {
            return;
        }
        // From the bridge: the frame of the kernel member it names, or none.
        let port = match (&self.kernel, &self.switch) {
            (Some(k), Some(sw)) if k.uplink == port => match sw.kernel_port_of(src_mac) {
                Some(p) => p,
                None => return,
            },
            _ => port,
        };
        let verdict = match &self.switch {
            Some(sw) => sw.forward(port, &eth, frame, &mut self.outs),
            None => Verdict::NotAMember,
        };
        match verdict {
            Verdict::Done => return,
            Verdict::Up => {}
            Verdict::NotAMember => {
                if dst_mac.is_unicast() && dst_mac != ours {
                    return;
                }
                let Some(out) = self.outs.get_mut(port) else {
                    return;
                };
                if out.ns_mac != Some(src_mac) {
                    out.ns_mac = Some(src_mac);
                }
            }
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.arp(port, eth.payload()),
            EthernetProtocol::Ipv4 if dst_mac == ours => {
                self.ipv4(port, eth.payload(), vnet, registry)
            }
            // DHCP discovers/requests are broadcast before the client has
            // an address; nothing else broadcast is for us. (Members of a
            // named network have static addresses.)
            EthernetProtocol::Ipv4 if self.switch.is_none() && self.l2.dhcp => {
                self.dhcp(port, eth.payload(), src_mac)
            }
            EthernetProtocol::Ipv6 => self.ipv6(port, eth.payload(), vnet, dst_mac, registry),
            _ => {}
        }
    }

    fn dhcp(&mut self, port: usize, payload: &[u8], src_mac: EthernetAddress) {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return;
        };
        let Ok(repr) = Ipv4Repr::parse(&ip, &wire::verify_caps()) else {
            return;
        };
        let to_us =
            repr.dst_addr == Ipv4Addr::BROADCAST || repr.dst_addr == self.policy.plan.gateway4;
        if repr.next_header != IpProtocol::Udp || !to_us {
            return;
        }
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return;
        };
        if udp.dst_port() != crate::dhcp::SERVER_PORT || udp.src_port() != crate::dhcp::CLIENT_PORT
        {
            return;
        }
        let now = u64::try_from(self.now.total_micros() / 1_000_000).unwrap_or(0);
        let Some(reply) = self.dhcp.handle(udp.payload(), src_mac.0, now) else {
            return;
        };
        let server = SocketAddr::new(
            IpAddr::V4(self.policy.plan.gateway4),
            crate::dhcp::SERVER_PORT,
        );
        let client = SocketAddr::new(IpAddr::V4(reply.dst_ip), crate::dhcp::CLIENT_PORT);
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        let off = wire::udp_payload_offset(false);
        let buf = out.ip_buf();
        let Some(room) = buf.get_mut(off..off + reply.payload.len()) else {
            return;
        };
        room.copy_from_slice(&reply.payload);
        if let Some(len) = wire::udp_headers(buf, server, client, reply.payload.len()) {
            out.send_ip_to(len, EthernetAddress(reply.dst_mac));
        }
    }

    fn arp(&mut self, port: usize, arp: &[u8]) {
        let policy = &self.policy;
        let ours = |ip| policy.answers_arp(ip);
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        if let Some((len, to)) = wire::arp_reply(arp, ours, self.l2.mac, out.ip_buf()) {
            out.send_l2(len, EthernetProtocol::Arp, to);
        }
    }

    fn ipv4(&mut self, port: usize, payload: &[u8], vnet: VnetHdr, registry: &Registry) {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return;
        };
        if ip.more_frags() || ip.frag_offset() != 0 {
            // Only sources the namespace may use get reassembly memory.
            if self.policy.valid_source(IpAddr::V4(ip.src_addr()))
                && let Push::Complete(whole) =
                    self.frag.ipv4(port, payload, self.now.total_micros())
            {
                // Rebuilt: full checksums, no offload state.
                self.ipv4(port, &whole, VnetHdr::default(), registry);
            }
            return;
        }
        // Header checksum checked (fragments were taken care of above).
        let Ok(repr) = Ipv4Repr::parse(&ip, &wire::verify_caps()) else {
            return;
        };
        let Some(pkt) = payload.get(..usize::from(ip.total_len())) else {
            return;
        };
        let (src, dst) = (repr.src_addr.into(), repr.dst_addr.into());
        if !self.policy.valid_source(src) {
            return;
        }
        let ip4 = Ip {
            port,
            pkt,
            body: ip.payload(),
            src,
            dst,
            vnet,
        };
        match repr.next_header {
            IpProtocol::Icmp => {
                if let Some(err) = pmtu::parse_v4(ip4.body, repr.dst_addr) {
                    let (mut ctx, nat, _) = self.split(registry);
                    nat.too_big(port, err, &mut ctx);
                    return;
                }
                let Ok(icmp) = Icmpv4Packet::new_checked(ip4.body) else {
                    return;
                };
                if let Ok(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }) = Icmpv4Repr::parse(&icmp, &wire::verify_caps())
                {
                    let echo = Echo {
                        ident,
                        seq_no,
                        data,
                    };
                    self.echo(ip4, echo, registry);
                }
            }
            next => self.transport(next, ip4, registry),
        }
    }

    fn ipv6(
        &mut self,
        port: usize,
        payload: &[u8],
        vnet: VnetHdr,
        dst_mac: EthernetAddress,
        registry: &Registry,
    ) {
        if self.policy.plan.v6.is_none() {
            return;
        }
        let Ok(ip) = Ipv6Packet::new_checked(payload) else {
            return;
        };
        let Ok(repr) = Ipv6Repr::parse(&ip) else {
            return;
        };
        let Some(pkt) = payload.get(..wire::IPV6_HDR_LEN + repr.payload_len) else {
            return;
        };
        if repr.next_header == IpProtocol::Icmpv6
            && self.neighbour_discovery(port, &repr, ip.payload())
        {
            return;
        }
        if dst_mac != self.l2.mac {
            return;
        }
        if !self.policy.valid_source(IpAddr::V6(repr.src_addr)) {
            return;
        }
        if repr.next_header == IpProtocol::Ipv6Frag {
            match self.frag.ipv6(port, pkt, self.now.total_micros()) {
                Push::Complete(whole) => self.ipv6_whole(port, &whole, registry),
                // Not a fragment after all: a header rlnet does not handle.
                Push::NotFragment | Push::Held | Push::Dropped(_) => {}
            }
            return;
        }
        self.ipv6_transport(port, pkt, &repr, vnet, registry);
    }

    /// A datagram rebuilt from fragments (or an atomic fragment): straight
    /// to the transport, past neighbour discovery (which never comes
    /// fragmented, RFC 6980).
    fn ipv6_whole(&mut self, port: usize, pkt: &[u8], registry: &Registry) {
        let Ok(ip) = Ipv6Packet::new_checked(pkt) else {
            return;
        };
        let Ok(repr) = Ipv6Repr::parse(&ip) else {
            return;
        };
        self.ipv6_transport(port, pkt, &repr, VnetHdr::default(), registry);
    }

    /// An IPv6 packet for the gateway from a valid source: echo, or on to
    /// the transport.
    fn ipv6_transport(
        &mut self,
        port: usize,
        pkt: &[u8],
        repr: &Ipv6Repr,
        vnet: VnetHdr,
        registry: &Registry,
    ) {
        let Some(body) = pkt.get(wire::IPV6_HDR_LEN..) else {
            return;
        };
        let ip6 = Ip {
            port,
            pkt,
            body,
            src: repr.src_addr.into(),
            dst: repr.dst_addr.into(),
            vnet,
        };
        match repr.next_header {
            IpProtocol::Icmpv6 => {
                if let Some(err) = pmtu::parse_v6(body, repr.src_addr, repr.dst_addr) {
                    let (mut ctx, nat, _) = self.split(registry);
                    nat.too_big(port, err, &mut ctx);
                    return;
                }
                let Ok(icmp) = Icmpv6Packet::new_checked(body) else {
                    return;
                };
                if let Ok(Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }) =
                    Icmpv6Repr::parse(&repr.src_addr, &repr.dst_addr, &icmp, &wire::verify_caps())
                {
                    let echo = Echo {
                        ident,
                        seq_no,
                        data,
                    };
                    self.echo(ip6, echo, registry);
                }
            }
            next => self.transport(next, ip6, registry),
        }
    }

    /// Neighbour solicitations for our addresses and router solicitations;
    /// true when `body` was one of those (and is dealt with).
    fn neighbour_discovery(&mut self, port: usize, repr: &Ipv6Repr, body: &[u8]) -> bool {
        if self.policy.plan.v6.is_none() {
            return true;
        }
        let mac = self.l2.mac;
        if let Some(target) =
            wire::neighbor_solicit_target(body, repr.src_addr, repr.dst_addr, repr.hop_limit)
        {
            // Answer only for our own addresses (pasta's model: every other
            // one); real neighbours answer for themselves.
            if self.l2.ndp && self.policy.answers_ndp(target, repr.src_addr) {
                self.send_built(port, |b| {
                    wire::neighbor_advert(b, target, repr.src_addr, mac)
                });
            }
            return true;
        }
        // SLAAC (RootlessKit --ipv6 leaves tap0 to it), in the one-namespace
        // form: members of named networks have fixed addresses.
        let is_rs = wire::is_router_solicit(body, repr.src_addr, repr.dst_addr, repr.hop_limit);
        if is_rs && !(self.l2.ndp && self.l2.ra) {
            return true;
        }
        if self.switch.is_none() && is_rs {
            let to = if repr.src_addr.is_unspecified() {
                ALL_NODES
            } else {
                repr.src_addr
            };
            self.router_advert(port, to);
            // From now on the namespace relies on our advertisements:
            // renew them well before the router lifetime runs out.
            self.ra_port = Some(port);
            self.ra_due = Some(self.now.total_micros() + RA_INTERVAL_US);
            return true;
        }
        false
    }

    /// An echo request: rlnet's own addresses (the gateway and DNS ones;
    /// pasta's mapped ones) answer ping themselves; other destinations get
    /// a ping socket. The DNS address with the stub off drops everything.
    fn echo(&mut self, ip: Ip<'_>, e: Echo<'_>, registry: &Registry) {
        if self.policy.swallows(ip.dst) {
            return;
        }
        let local = self.policy.answers_ping(ip.dst);
        match (ip.src, ip.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) if local => {
                let reply = Icmpv4Repr::EchoReply {
                    ident: e.ident,
                    seq_no: e.seq_no,
                    data: e.data,
                };
                self.send_built(ip.port, |b| wire::icmpv4(b, dst, src, &reply));
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) if local => {
                let reply = Icmpv6Repr::EchoReply {
                    ident: e.ident,
                    seq_no: e.seq_no,
                    data: e.data,
                };
                self.send_built(ip.port, |b| {
                    wire::icmpv6(b, dst, src, &reply, wire::HOP_LIMIT)
                });
            }
            _ => {
                let req = EchoRequest {
                    src: ip.src,
                    dst: ip.dst,
                    ident: e.ident,
                    seq: e.seq_no,
                    data: e.data,
                };
                let (mut ctx, nat, _) = self.split(registry);
                nat.ping(ip.port, req, &mut ctx);
            }
        }
    }

    fn transport(&mut self, next: IpProtocol, ip: Ip<'_>, registry: &Registry) {
        match next {
            IpProtocol::Tcp => self.tcp(ip, registry),
            IpProtocol::Udp => self.udp(ip, registry),
            _ => {}
        }
    }

    fn tcp(&mut self, ip: Ip<'_>, registry: &Registry) {
        let Ok(tcp) = TcpPacket::new_checked(ip.body) else {
            return;
        };
        if !ip.vnet.partial_csum()
            && !tcp.verify_checksum(&IpAddress::from(ip.src), &IpAddress::from(ip.dst))
        {
            return;
        }
        if tcp.src_port() == 0 || tcp.dst_port() == 0 {
            return;
        }
        let key = FlowKey {
            src: (ip.src, tcp.src_port()).into(),
            dst: (ip.dst, tcp.dst_port()).into(),
        };
        let syn_only = tcp.syn() && !tcp.ack() && !tcp.rst() && !tcp.fin();
        let rst = tcp.rst();
        if tcp.syn() && tcp.ack() && self.fwd.real_pending() {
            // The answer to a real-address splice, routed out instead of
            // delivered: its client takes the stack.
            let (mut ctx, nat, fwd) = self.split(registry);
            if fwd.escaped(&key, nat, &mut ctx) {
                return;
            }
        }
        if syn_only && self.dns.is_some() && self.policy.outbound(key.dst) == Decision::DnsStub {
            let (mut ctx, nat, _) = self.split(registry);
            if let Some(stream) = nat.open_local_tcp(ip.port, ip.pkt, key, &mut ctx) {
                self.dns_tcp_connection(stream, key.dst, registry);
            }
            return;
        }
        let (mut ctx, nat, _) = self.split(registry);
        nat.tcp_segment(ip.port, ip.pkt, key, syn_only, rst, &mut ctx);
    }

    fn udp(&mut self, ip: Ip<'_>, registry: &Registry) {
        let Ok(udp) = UdpPacket::new_checked(ip.body) else {
            return;
        };
        if !ip.vnet.partial_csum() {
            let zero_ok = ip.src.is_ipv4() && udp.checksum() == 0;
            if !zero_ok && !udp.verify_checksum(&IpAddress::from(ip.src), &IpAddress::from(ip.dst))
            {
                return;
            }
        }
        if udp.src_port() == 0 || udp.dst_port() == 0 {
            return;
        }
        let key = FlowKey {
            src: (ip.src, udp.src_port()).into(),
            dst: (ip.dst, udp.dst_port()).into(),
        };
        // Answers to published-port clients go back out the listener.
        if self
            .fwd
            .udp_reply(&key, udp.payload(), self.now.total_micros())
        {
            return;
        }
        if self.dns.is_some() && self.policy.outbound(key.dst) == Decision::DnsStub {
            self.dns_udp_query(ip.port, key, udp.payload(), registry);
            return;
        }
        let (mut ctx, nat, _) = self.split(registry);
        nat.udp_datagram(ip.port, ip.pkt, key, udp.payload(), &mut ctx);
    }

    fn router_advert(&mut self, port: usize, to: Ipv6Addr) {
        let Some(v6) = self.policy.plan.v6 else {
            return;
        };
        let (mtu, mac) = (self.mtu, self.l2.mac);
        self.send_built(port, |b| {
            wire::router_advert(b, to, mac, v6.prefix, mtu, RA_ROUTER_LIFETIME_S)
        });
    }

    /// The periodic unsolicited advertisement, once SLAAC is in use.
    pub(super) fn ra_timer(&mut self) {
        let now = self.now.total_micros();
        if let (Some(due), Some(port)) = (self.ra_due, self.ra_port)
            && due <= now
        {
            self.router_advert(port, ALL_NODES);
            self.ra_due = Some(now + RA_INTERVAL_US);
        }
    }
}
