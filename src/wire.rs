//! Frame layout between rlnet and the TAP: a virtio-net header, an Ethernet
//! header, then an IP packet. Parsing uses smoltcp's checked wire types (never
//! raw indexing of untrusted bytes); this module also builds the few packets
//! rlnet answers itself (ARP, NDP, ICMP echo and errors, UDP replies).
//! Pure: no I/O.

pub mod frag;
pub mod ndp;
pub mod nft;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU16, Ordering};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv6DstUnreachable,
    Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    NdiscNeighborFlags, NdiscPrefixInfoFlags, NdiscPrefixInformation, NdiscRepr, NdiscRouterFlags,
    RawHardwareAddress, UDP_HEADER_LEN, UdpPacket, checksum,
};

/// Size of `struct virtio_net_hdr` (no `num_buffers`), the tun default: the
/// header [`VnetHdr`] reads and writes, which the TAP is set up to carry.
pub const VNET_HDR_LEN: usize = 10;
pub const ETH_HDR_LEN: usize = 14;
/// Bytes in front of the IP packet in every frame.
pub const HEADROOM: usize = VNET_HDR_LEN + ETH_HDR_LEN;
/// Largest IP packet that fits a frame (IPv4 total length, IPv6 header + payload).
pub const MAX_IP_PACKET: usize = 65535 + 40;
/// Room for the largest frame, read or written.
pub const FRAME_BUF: usize = HEADROOM + MAX_IP_PACKET;
pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;
pub const HOP_LIMIT: u8 = 64;

/// virtio-net header flags and GSO types (linux/virtio_net.h).
pub const VNET_F_NEEDS_CSUM: u8 = 1;
pub const VNET_F_DATA_VALID: u8 = 2;
pub const VNET_GSO_NONE: u8 = 0;
pub const VNET_GSO_TCPV4: u8 = 1;
pub const VNET_GSO_TCPV6: u8 = 4;

/// `struct virtio_net_hdr`, little-endian on the wire (tun's legacy default
/// on little-endian hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    pub fn emit(&self, b: &mut [u8; VNET_HDR_LEN]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// The L4 checksum is partial (pseudo-header only): don't verify it.
    pub fn partial_csum(&self) -> bool {
        self.flags & VNET_F_NEEDS_CSUM != 0
    }
}

/// Checksums rlnet verifies itself on frames that carry full checksums.
pub fn verify_caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

/// Complete a frame whose IP packet of `ip_len` bytes already sits at
/// `frame[HEADROOM..]`: write the Ethernet header and a virtio-net header.
/// TCP and UDP leave the L4 checksum to the kernel (`NEEDS_CSUM` with the
/// pseudo-header sum in the checksum field). A TCP segment larger than the
/// link MTU `mtu` goes out as a GSO super-frame cut at the MSS that MTU
/// implies; the kernel delivers it whole. Returns the frame length, or `None`
/// when the packet is not something rlnet emits.
pub fn finish_frame(
    frame: &mut [u8],
    ip_len: usize,
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    mtu: usize,
) -> Option<usize> {
    finish_frame_limited(frame, ip_len, dst_mac, src_mac, mtu, SegLimit::default())
}

/// What a TCP segment into the namespace must be cut to, besides the link
/// MTU. The endpoint need not sit on the TAP: behind a bridge or veth of a
/// smaller MTU the forwarding namespace drops (DF) what exceeds its link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegLimit {
    /// Largest payload per segment (the effective MSS smoltcp computed from
    /// the peer's MSS option).
    pub mss: Option<usize>,
    /// The flow's path MTU, learnt from an ICMP error of the namespace.
    pub path_mtu: Option<u16>,
}

/// [`finish_frame`], with a TCP segment cut (as a GSO frame) at the smallest
/// of `limit.mss` and the payload that the link MTU and `limit.path_mtu`
/// leave room for, whenever its payload exceeds that.
pub fn finish_frame_limited(
    frame: &mut [u8],
    ip_len: usize,
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    mtu: usize,
    limit: SegLimit,
) -> Option<usize> {
    let total = HEADROOM.checked_add(ip_len)?;
    let frame = frame.get_mut(..total)?;
    let (hdrs, ip) = frame.split_at_mut(HEADROOM);
    let (version, l4_start, proto, src, dst) = match ip.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(&*ip).ok()?;
            let hl = usize::from(p.header_len());
            (
                EthernetProtocol::Ipv4,
                hl,
                p.next_header(),
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
            )
        }
        6 => {
            let p = Ipv6Packet::new_checked(&*ip).ok()?;
            (
                EthernetProtocol::Ipv6,
                IPV6_HDR_LEN,
                p.next_header(),
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
            )
        }
        _ => return None,
    };
    let mut vnet = VnetHdr::default();
    let csum_offset = match proto {
        IpProtocol::Tcp => Some(16),
        IpProtocol::Udp => Some(6),
        _ => None,
    };
    if let Some(off) = csum_offset {
        let l4_len = ip_len.checked_sub(l4_start)?;
        let sum = checksum::pseudo_header(&src, &dst, proto, u32::try_from(l4_len).ok()?);
        let field = ip.get_mut(l4_start + off..l4_start + off + 2)?;
        field.copy_from_slice(&sum.to_be_bytes());
        vnet.flags = VNET_F_NEEDS_CSUM;
        vnet.csum_start = u16::try_from(ETH_HDR_LEN + l4_start).ok()?;
        vnet.csum_offset = u16::try_from(off).ok()?;
        if proto == IpProtocol::Tcp {
            let tcp_hl = usize::from(ip.get(l4_start + 12)? >> 4) * 4;
            let hdrs = l4_start + tcp_hl;
            if let Some(seg) = tcp_cut(ip_len.checked_sub(hdrs)?, hdrs, mtu, limit)? {
                vnet.gso_type = if version == EthernetProtocol::Ipv4 {
                    VNET_GSO_TCPV4
                } else {
                    VNET_GSO_TCPV6
                };
                vnet.gso_size = seg;
                vnet.hdr_len = u16::try_from(ETH_HDR_LEN + hdrs).ok()?;
            }
        }
    }
    let (vnet_bytes, eth) = hdrs.split_at_mut(VNET_HDR_LEN);
    vnet.emit(vnet_bytes.try_into().ok()?);
    let repr = EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: version,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(eth));
    Some(total)
}

/// Where the kernel must cut a TCP segment of `payload` bytes behind `hdrs`
/// bytes of IP and TCP headers: `Some(None)` when it goes whole,
/// `Some(Some(size))` for a GSO frame of `size`-byte segments, None when it
/// cannot be cut (a zero size would loop in the kernel: never emit one).
fn tcp_cut(payload: usize, hdrs: usize, mtu: usize, limit: SegLimit) -> Option<Option<u16>> {
    let mtu = limit.path_mtu.map_or(mtu, |p| mtu.min(usize::from(p)));
    let mut seg = mtu.saturating_sub(hdrs);
    if let Some(mss) = limit.mss {
        seg = seg.min(mss);
    }
    if payload <= seg {
        return Some(None);
    }
    u16::try_from(seg).ok().filter(|s| *s > 0).map(Some)
}

/// Write a zeroed virtio-net header and an Ethernet header in front of a
/// non-IP payload (ARP) of `payload_len` bytes at `frame[HEADROOM..]`.
pub fn finish_l2_frame(
    frame: &mut [u8],
    payload_len: usize,
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    ethertype: EthernetProtocol,
) -> Option<usize> {
    let total = HEADROOM.checked_add(payload_len)?;
    let frame = frame.get_mut(..total)?;
    let (vnet, rest) = frame.split_at_mut(VNET_HDR_LEN);
    VnetHdr::default().emit(vnet.try_into().ok()?);
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut rest[..ETH_HDR_LEN]));
    Some(total)
}

/// The ARP reply for a request asking for `answer_ip`, or None if `arp` is
/// not a well-formed request for it. The reply goes into `out` (ARP payload
/// only); returns its length.
pub fn arp_reply(
    arp: &[u8],
    answer_ip: impl Fn(Ipv4Addr) -> bool,
    our_mac: EthernetAddress,
    out: &mut [u8],
) -> Option<(usize, EthernetAddress)> {
    let pkt = ArpPacket::new_checked(arp).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&pkt).ok()?
    else {
        return None;
    };
    if operation != ArpOperation::Request
        || !answer_ip(target_protocol_addr)
        || !source_hardware_addr.is_unicast()
    {
        return None;
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: our_mac,
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let len = reply.buffer_len();
    reply.emit(&mut ArpPacket::new_unchecked(out.get_mut(..len)?));
    Some((len, source_hardware_addr))
}

/// IPv4 identification for the next packet rlnet builds: a counter from
/// an unpredictable start (RFC 7739), so nobody off the path can aim
/// fragments at a datagram in reassembly.
fn next_ident() -> u16 {
    static START: OnceLock<u16> = OnceLock::new();
    static COUNT: AtomicU16 = AtomicU16::new(0);
    let start = *START.get_or_init(|| {
        let h = RandomState::new().hash_one(0u8).to_le_bytes();
        u16::from_le_bytes([h[0], h[1]])
    });
    start.wrapping_add(COUNT.fetch_add(1, Ordering::Relaxed))
}

fn emit_ipv4(
    ip: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    payload_len: usize,
) -> Option<()> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len,
        hop_limit: HOP_LIMIT,
    };
    let buf = ip.get_mut(..IPV4_HDR_LEN + payload_len)?;
    let mut packet = Ipv4Packet::new_unchecked(buf);
    repr.emit(&mut packet, &ChecksumCapabilities::default());
    // What rlnet builds itself (UDP, ICMP; TCP comes from smoltcp) may be
    // fragmented on the way: the namespace may forward it over a smaller
    // link than the TAP (a bridge, a veth) and would drop it with DF set, as
    // smoltcp sets it. Fragmentable datagrams need distinct identifications
    // (RFC 6864), or the receiver mixes up the pieces of two of them.
    packet.set_dont_frag(false);
    packet.set_ident(next_ident());
    packet.fill_checksum();
    Some(())
}

fn emit_ipv6(
    ip: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: IpProtocol,
    payload_len: usize,
) -> Option<()> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len,
        hop_limit: HOP_LIMIT,
    };
    let buf = ip.get_mut(..IPV6_HDR_LEN + payload_len)?;
    repr.emit(&mut Ipv6Packet::new_unchecked(buf));
    Some(())
}

/// An ICMPv4 message into `ip` (a whole IPv4 packet); returns its length.
pub fn icmpv4(ip: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, msg: &Icmpv4Repr) -> Option<usize> {
    let len = msg.buffer_len();
    emit_ipv4(ip, src, dst, IpProtocol::Icmp, len)?;
    let body = ip.get_mut(IPV4_HDR_LEN..IPV4_HDR_LEN + len)?;
    msg.emit(
        &mut Icmpv4Packet::new_unchecked(body),
        &ChecksumCapabilities::default(),
    );
    Some(IPV4_HDR_LEN + len)
}

/// An ICMPv6 message into `ip` (a whole IPv6 packet); returns its length.
pub fn icmpv6(
    ip: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    msg: &Icmpv6Repr,
    hop_limit: u8,
) -> Option<usize> {
    let len = msg.buffer_len();
    emit_ipv6(ip, src, dst, IpProtocol::Icmpv6, len)?;
    Ipv6Packet::new_unchecked(&mut ip[..IPV6_HDR_LEN]).set_hop_limit(hop_limit);
    let body = ip.get_mut(IPV6_HDR_LEN..IPV6_HDR_LEN + len)?;
    msg.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(body),
        &ChecksumCapabilities::default(),
    );
    Some(IPV6_HDR_LEN + len)
}

/// ICMP "destination unreachable" quoting `orig` (the offending IP packet,
/// as received), from `src` to the original sender. Quotes at most the IP
/// header and 8 bytes, as RFC 792 asks; enough for the sender to match it.
pub fn unreachable(ip: &mut [u8], src: IpAddr, orig: &[u8], kind: Unreachable) -> Option<usize> {
    match (src, orig.first()? >> 4) {
        (IpAddr::V4(src), 4) => {
            let p = Ipv4Packet::new_checked(orig).ok()?;
            let hdr = Ipv4Repr::parse(&p, &ChecksumCapabilities::ignored()).ok()?;
            let data = p.payload().get(..8.min(p.payload().len()))?;
            let reason = match kind {
                Unreachable::Net => Icmpv4DstUnreachable::NetUnreachable,
                Unreachable::Host => Icmpv4DstUnreachable::HostUnreachable,
                Unreachable::Port => Icmpv4DstUnreachable::PortUnreachable,
                Unreachable::Prohibited => Icmpv4DstUnreachable::HostProhibited,
            };
            let msg = Icmpv4Repr::DstUnreachable {
                reason,
                header: Ipv4Repr {
                    payload_len: data.len(),
                    ..hdr
                },
                data,
            };
            icmpv4(ip, src, hdr.src_addr, &msg)
        }
        (IpAddr::V6(src), 6) => {
            let p = Ipv6Packet::new_checked(orig).ok()?;
            let hdr = Ipv6Repr::parse(&p).ok()?;
            let data = p.payload().get(..8.min(p.payload().len()))?;
            let reason = match kind {
                Unreachable::Net => Icmpv6DstUnreachable::NoRoute,
                Unreachable::Host => Icmpv6DstUnreachable::AddrUnreachable,
                Unreachable::Port => Icmpv6DstUnreachable::PortUnreachable,
                Unreachable::Prohibited => Icmpv6DstUnreachable::AdminProhibit,
            };
            let msg = Icmpv6Repr::DstUnreachable {
                reason,
                header: Ipv6Repr {
                    payload_len: data.len(),
                    ..hdr
                },
                data,
            };
            icmpv6(ip, src, hdr.src_addr, &msg, HOP_LIMIT)
        }
        _ => None,
    }
}

/// Which "destination unreachable" to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// ENETUNREACH in the namespace ("Network is unreachable").
    Net,
    /// EHOSTUNREACH.
    Host,
    /// ECONNREFUSED for UDP.
    Port,
    /// EACCES-like: policy forbids it.
    Prohibited,
}

/// The neighbour advertisement answering a solicitation for `target`, sent
/// from `target` to the soliciting address. `ns_src` is the solicitation's
/// source (unspecified during DAD: answer to all-nodes then).
pub fn neighbor_advert(
    ip: &mut [u8],
    target: Ipv6Addr,
    ns_src: Ipv6Addr,
    our_mac: EthernetAddress,
) -> Option<usize> {
    let (dst, flags) = if ns_src.is_unspecified() {
        (
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            NdiscNeighborFlags::ROUTER | NdiscNeighborFlags::OVERRIDE,
        )
    } else {
        (
            ns_src,
            NdiscNeighborFlags::ROUTER
                | NdiscNeighborFlags::SOLICITED
                | NdiscNeighborFlags::OVERRIDE,
        )
    };
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags,
        target_addr: target,
        lladdr: Some(RawHardwareAddress::from(our_mac)),
    });
    // NDP messages must carry hop limit 255 (RFC 4861 §7.1.2).
    icmpv6(ip, target, dst, &msg, 255)
}

/// The target of a well-formed neighbour solicitation, or None.
pub fn neighbor_solicit_target(
    icmp: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
) -> Option<Ipv6Addr> {
    if hop_limit != 255 {
        return None;
    }
    let pkt = Icmpv6Packet::new_checked(icmp).ok()?;
    match Icmpv6Repr::parse(&src, &dst, &pkt, &verify_caps()).ok()? {
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. }) => Some(target_addr),
        _ => None,
    }
}

/// The gateway's link-local address: the router of router advertisements
/// (slirp4netns's too).
pub const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

/// Is this a well-formed router solicitation?
pub fn is_router_solicit(icmp: &[u8], src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> bool {
    if hop_limit != 255 {
        return false;
    }
    let Ok(pkt) = Icmpv6Packet::new_checked(icmp) else {
        return false;
    };
    matches!(
        Icmpv6Repr::parse(&src, &dst, &pkt, &verify_caps()),
        Ok(Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit { .. }))
    )
}

/// A router advertisement from [`ROUTER_LL`] to `dst`: we are the default
/// router (lifetime `router_secs`), `prefix`/64 is on-link and for SLAAC.
pub fn router_advert(
    ip: &mut [u8],
    dst: Ipv6Addr,
    our_mac: EthernetAddress,
    prefix: Ipv6Addr,
    mtu: u32,
    router_secs: u64,
) -> Option<usize> {
    let msg = Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert {
        hop_limit: HOP_LIMIT,
        flags: NdiscRouterFlags::empty(),
        router_lifetime: smoltcp::time::Duration::from_secs(router_secs),
        reachable_time: smoltcp::time::Duration::ZERO,
        retrans_time: smoltcp::time::Duration::ZERO,
        lladdr: Some(RawHardwareAddress::from(our_mac)),
        mtu: Some(mtu),
        prefix_info: Some(NdiscPrefixInformation {
            prefix_len: 64,
            flags: NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF,
            valid_lifetime: smoltcp::time::Duration::from_secs(u64::from(u32::MAX)),
            preferred_lifetime: smoltcp::time::Duration::from_secs(u64::from(u32::MAX)),
            prefix,
        }),
    });
    icmpv6(ip, ROUTER_LL, dst, &msg, 255)
}

/// Headers of a UDP datagram whose `payload_len` bytes already sit where
/// [`udp_payload_offset`] says. Returns the IP packet length.
pub fn udp_headers(
    ip: &mut [u8],
    src: SocketAddr,
    dst: SocketAddr,
    payload_len: usize,
) -> Option<usize> {
    let udp_len = UDP_HEADER_LEN.checked_add(payload_len)?;
    let hdr_len = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            emit_ipv4(ip, s, d, IpProtocol::Udp, udp_len)?;
            IPV4_HDR_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            emit_ipv6(ip, s, d, IpProtocol::Udp, udp_len)?;
            IPV6_HDR_LEN
        }
        _ => return None,
    };
    let mut udp = UdpPacket::new_unchecked(ip.get_mut(hdr_len..hdr_len + udp_len)?);
    udp.set_src_port(src.port());
    udp.set_dst_port(dst.port());
    udp.set_len(u16::try_from(udp_len).ok()?);
    udp.set_checksum(0); // finish_frame puts the pseudo-header sum here
    Some(hdr_len + udp_len)
}

/// An IP header plus the first 8 bytes of a transport header carrying the
/// ports: what an ICMP error quotes, rebuilt for a flow whose original packet
/// is gone. The namespace matches errors on exactly these fields.
pub fn flow_quote(
    buf: &mut [u8],
    src: SocketAddr,
    dst: SocketAddr,
    proto: IpProtocol,
) -> Option<usize> {
    let hdr_len = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            emit_ipv4(buf, s, d, proto, 8)?;
            IPV4_HDR_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            emit_ipv6(buf, s, d, proto, 8)?;
            IPV6_HDR_LEN
        }
        _ => return None,
    };
    let ports = buf.get_mut(hdr_len..hdr_len + 8)?;
    ports[..2].copy_from_slice(&src.port().to_be_bytes());
    ports[2..4].copy_from_slice(&dst.port().to_be_bytes());
    ports[4..].fill(0);
    Some(hdr_len + 8)
}

/// Where a UDP payload starts inside an IP packet of this family.
pub fn udp_payload_offset(v6: bool) -> usize {
    (if v6 { IPV6_HDR_LEN } else { IPV4_HDR_LEN }) + UDP_HEADER_LEN
}

/// A payload parked here can be moved to the offset of either family.
pub const HEADROOM_UDP_MAX: usize = IPV6_HDR_LEN + UDP_HEADER_LEN;

/// Largest UDP payload rlnet will synthesise for the family.
pub fn max_udp_payload(v6: bool) -> usize {
    if v6 {
        65535 - UDP_HEADER_LEN
    } else {
        65535 - IPV4_HDR_LEN - UDP_HEADER_LEN
    }
}

/// A MAC address as `ip link` writes it (smoltcp's `Display` uses dashes).
pub fn mac_text(mac: EthernetAddress) -> String {
    let b = mac.as_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{TcpPacket, UdpRepr};

    const GW: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
    const NS: EthernetAddress = EthernetAddress([0x0e, 0xd4, 0x18, 0xd9, 0x38, 0xfb]);

    #[test]
    fn vnet_roundtrip() {
        let h = VnetHdr {
            flags: 1,
            gso_type: 4,
            hdr_len: 86,
            gso_size: 1440,
            csum_start: 54,
            csum_offset: 16,
        };
        let mut b = [0u8; VNET_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(VnetHdr::parse(&b[..9]), None);
    }

    #[test]
    fn udp_frame_gets_partial_checksum_that_completes_correctly() {
        let mut frame = vec![0u8; 256];
        let src: SocketAddr = "10.0.2.2:53".parse().unwrap();
        let dst: SocketAddr = "10.0.2.100:40000".parse().unwrap();
        let off = HEADROOM + udp_payload_offset(false);
        frame[off..off + 5].copy_from_slice(b"hello");
        let ip_len = udp_headers(&mut frame[HEADROOM..], src, dst, 5).unwrap();
        let total = finish_frame(&mut frame, ip_len, NS, GW, 1500).unwrap();
        assert_eq!(total, HEADROOM + 20 + 8 + 5);
        let vnet = VnetHdr::parse(&frame).unwrap();
        assert!(vnet.partial_csum());
        assert_eq!(usize::from(vnet.csum_start), ETH_HDR_LEN + 20);
        // Complete the checksum the way the kernel would and verify it.
        let l4 = usize::from(vnet.csum_start) + VNET_HDR_LEN;
        let sum = !checksum::data(&frame[l4..total]);
        frame[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
        let ip = Ipv4Packet::new_checked(&frame[HEADROOM..total]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let repr = UdpRepr::parse(
            &udp,
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr()),
            &ChecksumCapabilities::default(),
        )
        .unwrap();
        assert_eq!((repr.src_port, repr.dst_port), (53, 40000));
        assert_eq!(udp.payload(), b"hello");
        let eth = EthernetFrame::new_checked(&frame[VNET_HDR_LEN..total]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (NS, GW));
    }

    #[test]
    fn udp_and_icmp_may_be_fragmented_on_the_way_with_distinct_idents() {
        let src: SocketAddr = "10.0.2.3:53".parse().unwrap();
        let dst: SocketAddr = "10.1.0.2:40000".parse().unwrap();
        let mut idents = Vec::new();
        for _ in 0..2 {
            let mut ip = vec![0u8; 3000];
            let len = udp_headers(&mut ip, src, dst, 2900).unwrap();
            let p = Ipv4Packet::new_checked(&ip[..len]).unwrap();
            assert!(!p.dont_frag() && !p.more_frags() && p.frag_offset() == 0);
            assert!(p.verify_checksum());
            idents.push(p.ident());
        }
        let mut ip = [0u8; 128];
        let len = icmpv4(
            &mut ip,
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::new(10, 1, 0, 2),
            &Icmpv4Repr::EchoReply {
                ident: 1,
                seq_no: 1,
                data: b"ping",
            },
        )
        .unwrap();
        let p = Ipv4Packet::new_checked(&ip[..len]).unwrap();
        assert!(!p.dont_frag() && p.verify_checksum());
        idents.push(p.ident());
        idents.dedup();
        assert_eq!(idents.len(), 3, "{idents:?}");
    }

    #[test]
    fn tcp_gso_fields() {
        // A minimal IPv6 + TCP packet with 2000 bytes of payload.
        let mut frame = vec![0u8; HEADROOM + 40 + 20 + 2000];
        let ip_len = 40 + 20 + 2000;
        emit_ipv6(
            &mut frame[HEADROOM..],
            "fd00::2".parse().unwrap(),
            "fd00::100".parse().unwrap(),
            IpProtocol::Tcp,
            20 + 2000,
        )
        .unwrap();
        let mut tcp = TcpPacket::new_unchecked(&mut frame[HEADROOM + 40..]);
        tcp.set_header_len(20);
        let total = finish_frame(&mut frame, ip_len, NS, GW, 1500).unwrap();
        let vnet = VnetHdr::parse(&frame[..total]).unwrap();
        assert_eq!(vnet.gso_type, VNET_GSO_TCPV6);
        assert_eq!(vnet.gso_size, 1500 - 40 - 20);
        assert_eq!(vnet.hdr_len, 14 + 40 + 20);
        assert_eq!(vnet.csum_offset, 16);
    }

    /// An IPv4 + TCP packet (20-byte header) with `payload` bytes in a frame.
    fn tcp4_frame(payload: usize) -> (Vec<u8>, usize) {
        let ip_len = 20 + 20 + payload;
        let mut frame = vec![0u8; HEADROOM + ip_len];
        emit_ipv4(
            &mut frame[HEADROOM..],
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::new(10, 0, 2, 100),
            IpProtocol::Tcp,
            20 + payload,
        )
        .unwrap();
        TcpPacket::new_unchecked(&mut frame[HEADROOM + 20..]).set_header_len(20);
        (frame, ip_len)
    }

    #[test]
    fn tcp_segments_are_cut_at_the_peer_mss_not_only_the_link_mtu() {
        // Issue 10: a 3000-byte segment on a 65520 link to a peer whose MSS
        // is 1460 (it sits behind a 1500 veth) is cut at 1460.
        let (mut frame, ip_len) = tcp4_frame(3000);
        let mss = SegLimit {
            mss: Some(1460),
            path_mtu: None,
        };
        let total = finish_frame_limited(&mut frame, ip_len, NS, GW, 65520, mss).unwrap();
        let vnet = VnetHdr::parse(&frame[..total]).unwrap();
        assert_eq!((vnet.gso_type, vnet.gso_size), (VNET_GSO_TCPV4, 1460));
        assert_eq!(vnet.hdr_len, 14 + 20 + 20);
        // Without the peer's MSS only the link MTU counts: one whole frame.
        let (mut frame, ip_len) = tcp4_frame(3000);
        let total = finish_frame(&mut frame, ip_len, NS, GW, 65520).unwrap();
        let vnet = VnetHdr::parse(&frame[..total]).unwrap();
        assert_eq!((vnet.gso_type, vnet.gso_size), (VNET_GSO_NONE, 0));
        // A segment within the MSS is not cut.
        let (mut frame, ip_len) = tcp4_frame(1460);
        let total = finish_frame_limited(&mut frame, ip_len, NS, GW, 65520, mss).unwrap();
        assert_eq!(
            VnetHdr::parse(&frame[..total]).unwrap().gso_type,
            VNET_GSO_NONE
        );
    }

    #[test]
    fn a_path_mtu_cuts_below_the_mss_and_the_link() {
        let limit = |mss, path_mtu| SegLimit { mss, path_mtu };
        let cut = |payload, mtu, l: SegLimit| {
            let (mut frame, ip_len) = tcp4_frame(payload);
            let total = finish_frame_limited(&mut frame, ip_len, NS, GW, mtu, l).unwrap();
            VnetHdr::parse(&frame[..total]).unwrap().gso_size
        };
        // Path MTU 1400 under an MSS of 1460: 1360-byte segments, even for
        // a segment the peer's MSS alone would let through whole.
        assert_eq!(cut(3000, 65520, limit(Some(1460), Some(1400))), 1360);
        assert_eq!(cut(1460, 65520, limit(Some(1460), Some(1400))), 1360);
        assert_eq!(cut(1360, 65520, limit(Some(1460), Some(1400))), 0);
        // Never above the MSS, whatever the path MTU says.
        assert_eq!(cut(3000, 65520, limit(Some(1200), Some(9000))), 1200);
        // Nor above the link MTU.
        assert_eq!(cut(3000, 1500, limit(None, Some(9000))), 1460);
    }

    #[test]
    fn arp_answers_only_the_asked_addresses() {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: NS,
            source_protocol_addr: Ipv4Addr::new(10, 0, 2, 100),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 2, 2),
        };
        let mut buf = [0u8; 28];
        req.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        let mut out = [0u8; 64];
        let gw = |ip: Ipv4Addr| ip == Ipv4Addr::new(10, 0, 2, 2);
        let (len, to) = arp_reply(&buf, gw, GW, &mut out).unwrap();
        assert_eq!(to, NS);
        let reply = ArpRepr::parse(&ArpPacket::new_checked(&out[..len]).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        } = reply
        else {
            panic!()
        };
        assert_eq!(operation, ArpOperation::Reply);
        assert_eq!(source_hardware_addr, GW);
        assert_eq!(source_protocol_addr, Ipv4Addr::new(10, 0, 2, 2));
        // Another address: no answer; every truncation: no answer, no panic.
        assert!(arp_reply(&buf, |ip| ip == Ipv4Addr::new(10, 0, 2, 3), GW, &mut out).is_none());
        for cut in 0..buf.len() {
            assert!(arp_reply(&buf[..cut], gw, GW, &mut out).is_none());
        }
    }

    #[test]
    fn unreachable_quotes_header_and_8_bytes() {
        let mut orig = vec![0u8; 20 + 40];
        emit_ipv4(
            &mut orig,
            Ipv4Addr::new(10, 0, 2, 100),
            Ipv4Addr::new(10, 0, 2, 2),
            IpProtocol::Udp,
            40,
        )
        .unwrap();
        let mut ip = [0u8; 128];
        let len = unreachable(
            &mut ip,
            IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)),
            &orig,
            Unreachable::Port,
        )
        .unwrap();
        assert_eq!(len, 20 + 8 + 20 + 8);
        let p = Ipv4Packet::new_checked(&ip[..len]).unwrap();
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 2, 100));
        let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
        assert!(icmp.verify_checksum());
        for cut in 0..orig.len() {
            // Truncated quotes never panic; short ones are refused.
            let _ = unreachable(
                &mut ip,
                IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)),
                &orig[..cut],
                Unreachable::Net,
            );
        }
    }

    #[test]
    fn neighbor_advert_roundtrip() {
        let mut ip = [0u8; 128];
        let target: Ipv6Addr = "fd00::2".parse().unwrap();
        let len = neighbor_advert(&mut ip, target, "fd00::100".parse().unwrap(), GW).unwrap();
        let p = Ipv6Packet::new_checked(&ip[..len]).unwrap();
        assert_eq!(p.hop_limit(), 255);
        let icmp = Icmpv6Packet::new_checked(p.payload()).unwrap();
        let repr = Icmpv6Repr::parse(&p.src_addr(), &p.dst_addr(), &icmp, &verify_caps()).unwrap();
        assert!(
            matches!(repr, Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { target_addr, .. }) if target_addr == target)
        );
    }
}
