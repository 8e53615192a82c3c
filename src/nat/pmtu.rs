//! Path MTU for TCP segments into a namespace. The endpoint need not sit on
//! the TAP: behind a bridge or veth (Docker's docker0, a Podman bridge
//! network, a pod network) the namespace forwards rlnet's segments over a
//! smaller link, and when one does not fit it answers with ICMP
//! "fragmentation needed" (IPv4, type 3 code 4) or ICMPv6 "packet too big".
//! This module reads those errors and decides the flow's new path MTU; the
//! flow checks that the error is about a segment it has in flight
//! ([`super::tcp::TcpFlow::too_big`]) and `TapOut` cuts its segments to fit.
//! Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use smoltcp::wire::{
    Icmpv4Message, Icmpv4Packet, Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, TcpSeqNumber,
};

use crate::wire::{IPV4_HDR_LEN, IPV6_HDR_LEN};

/// Smallest path MTU believed (RFC 1191 names 576 for IPv4 links that
/// cannot say; IPv6 links carry at least 1280, RFC 8200): anything smaller
/// in an error is a lie or a broken router, and would shrink segments to
/// nothing.
pub const MIN_MTU_V4: u16 = 576;
pub const MIN_MTU_V6: u16 = 1280;

/// ICMP "fragmentation needed and DF set" (RFC 792 type 3 code 4).
const FRAG_NEEDED: u8 = 4;
/// Bytes of the transport header every error quotes (RFC 792): the TCP
/// ports and sequence number.
const QUOTED_L4: usize = 8;

/// A "too big" error about one of rlnet's TCP segments, as quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig {
    /// The quoted segment's source: rlnet's end of the flow as the
    /// namespace sees it (the remote or the presented client).
    pub from: SocketAddr,
    /// The quoted segment's destination: the namespace's end.
    pub to: SocketAddr,
    pub seq: TcpSeqNumber,
    /// The MTU the namespace can forward (not yet bounded: see [`lowered`]).
    pub mtu: u32,
}

/// An ICMP message sent from the namespace to `dst`: a "fragmentation
/// needed" about a TCP segment that `dst` sent, or None.
pub fn parse_v4(icmp: &[u8], dst: Ipv4Addr) -> Option<TooBig> {
    let p = Icmpv4Packet::new_checked(icmp).ok()?;
    if p.msg_type() != Icmpv4Message::DstUnreachable
        || p.msg_code() != FRAG_NEEDED
        || !p.verify_checksum()
    {
        return None;
    }
    // The next-hop MTU sits in the low half of the "unused" word (RFC 1191).
    let mtu = u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?);
    let quoted = p.data();
    if quoted.len() < IPV4_HDR_LEN {
        return None;
    }
    // Not `new_checked`: the quote is cut short of the packet's total length.
    let ip = Ipv4Packet::new_unchecked(quoted);
    let hl = usize::from(ip.header_len());
    if ip.version() != 4
        || hl < IPV4_HDR_LEN
        || ip.next_header() != IpProtocol::Tcp
        || ip.frag_offset() != 0
        || ip.src_addr() != dst
    {
        return None;
    }
    let tcp = TcpPacket::new_unchecked(quoted.get(hl..hl + QUOTED_L4)?);
    Some(TooBig {
        from: SocketAddr::new(IpAddr::V4(ip.src_addr()), tcp.src_port()),
        to: SocketAddr::new(IpAddr::V4(ip.dst_addr()), tcp.dst_port()),
        seq: tcp.seq_number(),
        mtu: u32::from(mtu),
    })
}

/// An ICMPv6 message from `src` to `dst`: a "packet too big" about a TCP
/// segment that `dst` sent, or None. rlnet's segments carry no extension
/// headers, so the quote has TCP right after the fixed header.
pub fn parse_v6(icmp: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> Option<TooBig> {
    let p = Icmpv6Packet::new_checked(icmp).ok()?;
    if p.msg_type() != Icmpv6Message::PktTooBig
        || p.msg_code() != 0
        || !p.verify_checksum(&src, &dst)
    {
        return None;
    }
    let quoted = p.payload();
    if quoted.len() < IPV6_HDR_LEN + QUOTED_L4 {
        return None;
    }
    let ip = Ipv6Packet::new_unchecked(quoted);
    if ip.version() != 6 || ip.next_header() != IpProtocol::Tcp || ip.src_addr() != dst {
        return None;
    }
    let tcp = TcpPacket::new_unchecked(quoted.get(IPV6_HDR_LEN..IPV6_HDR_LEN + QUOTED_L4)?);
    Some(TooBig {
        from: SocketAddr::new(IpAddr::V6(ip.src_addr()), tcp.src_port()),
        to: SocketAddr::new(IpAddr::V6(ip.dst_addr()), tcp.dst_port()),
        seq: tcp.seq_number(),
        mtu: p.pkt_too_big_mtu(),
    })
}

/// The flow's path MTU after an error reporting `reported`, or None when it
/// changes nothing: below the family's minimum it is ignored, and a path
/// MTU only ever shrinks (from the flow's current one, else the link's).
/// Segments never grow past the peer's MSS either way: the cut is the
/// smaller of the two (`wire::SegLimit`).
pub fn lowered(current: Option<u16>, link_mtu: usize, reported: u32, v6: bool) -> Option<u16> {
    let floor = if v6 { MIN_MTU_V6 } else { MIN_MTU_V4 };
    let reported = u16::try_from(reported).ok()?;
    if reported < floor {
        return None;
    }
    let now = current.map_or(link_mtu, usize::from);
    (usize::from(reported) < now).then_some(reported)
}

/// Is `seq` sent and not yet acknowledged (`una..nxt`)? An error about any
/// other sequence number is stale or forged (RFC 5927 section 4.1).
pub fn in_flight(seq: TcpSeqNumber, (una, nxt): (TcpSeqNumber, TcpSeqNumber)) -> bool {
    una <= seq && seq < nxt
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{Ipv4Repr, Ipv6Repr};

    const REMOTE4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const NS4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
    const REMOTE6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const NS6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);

    /// The first bytes of a TCP/IP segment from the remote to the
    /// namespace of `total` bytes, as a router quotes it (cut at `quote`).
    fn segment(v6: bool, seq: u32, total: usize, quote: usize) -> Vec<u8> {
        let mut pkt = vec![0u8; total];
        let l4 = if v6 {
            let repr = Ipv6Repr {
                src_addr: REMOTE6,
                dst_addr: NS6,
                next_header: IpProtocol::Tcp,
                payload_len: total - IPV6_HDR_LEN,
                hop_limit: 64,
            };
            repr.emit(&mut Ipv6Packet::new_unchecked(&mut pkt[..]));
            IPV6_HDR_LEN
        } else {
            let repr = Ipv4Repr {
                src_addr: REMOTE4,
                dst_addr: NS4,
                next_header: IpProtocol::Tcp,
                payload_len: total - IPV4_HDR_LEN,
                hop_limit: 64,
            };
            repr.emit(
                &mut Ipv4Packet::new_unchecked(&mut pkt[..]),
                &ChecksumCapabilities::default(),
            );
            IPV4_HDR_LEN
        };
        let mut tcp = TcpPacket::new_unchecked(&mut pkt[l4..]);
        tcp.set_src_port(8000);
        tcp.set_dst_port(34530);
        tcp.set_seq_number(TcpSeqNumber(i32::from_be_bytes(seq.to_be_bytes())));
        pkt.truncate(quote);
        pkt
    }

    /// "Fragmentation needed" quoting `quoted` as it is.
    fn frag_needed(quoted: &[u8], mtu: u16) -> Vec<u8> {
        let mut buf = vec![3, FRAG_NEEDED, 0, 0, 0, 0];
        buf.extend_from_slice(&mtu.to_be_bytes());
        buf.extend_from_slice(quoted);
        Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
        buf
    }

    /// "Packet too big" from the namespace to the remote.
    fn too_big6(quoted: &[u8], mtu: u32) -> Vec<u8> {
        let mut buf = vec![2, 0, 0, 0];
        buf.extend_from_slice(&mtu.to_be_bytes());
        buf.extend_from_slice(quoted);
        Icmpv6Packet::new_unchecked(&mut buf[..]).fill_checksum(&NS6, &REMOTE6);
        buf
    }

    #[test]
    fn frag_needed_quoting_a_cut_segment_names_the_flow() {
        // A 5040-byte segment quoted in 548 bytes, as captured (issue 10).
        let icmp = frag_needed(&segment(false, 720_561_122, 5040, 548), 1500);
        let tb = parse_v4(&icmp, REMOTE4).expect("parsed");
        assert_eq!(tb.from, "10.0.2.2:8000".parse().unwrap());
        assert_eq!(tb.to, "10.0.2.100:34530".parse().unwrap());
        assert_eq!(tb.seq, TcpSeqNumber(720_561_122));
        assert_eq!(tb.mtu, 1500);
        // The minimal quote (header and 8 bytes) is enough.
        let icmp = frag_needed(&segment(false, 1, 5040, 28), 1400);
        assert_eq!(parse_v4(&icmp, REMOTE4).map(|t| t.mtu), Some(1400));
    }

    #[test]
    fn frag_needed_refused_unless_well_formed_and_ours() {
        let good = frag_needed(&segment(false, 1, 5040, 548), 1500);
        // Sent to another address than the quoted source.
        assert_eq!(parse_v4(&good, Ipv4Addr::new(10, 0, 2, 3)), None);
        // A bad checksum.
        let mut bent = good.clone();
        bent[100] ^= 1;
        assert_eq!(parse_v4(&bent, REMOTE4), None);
        // Another code (port unreachable) or type.
        let mut other = good.clone();
        other[1] = 3;
        Icmpv4Packet::new_unchecked(&mut other[..]).fill_checksum();
        assert_eq!(parse_v4(&other, REMOTE4), None);
        // A quote shorter than the header and 8 bytes.
        assert_eq!(
            parse_v4(&frag_needed(&segment(false, 1, 5040, 27), 1500), REMOTE4),
            None
        );
        // Not TCP.
        let mut udp = segment(false, 1, 5040, 548);
        udp[9] = 17;
        let icmp = frag_needed(&udp, 1500);
        assert_eq!(parse_v4(&icmp, REMOTE4), None);
        // Every truncation: no panic, and nothing accepted without the quote.
        for cut in 0..good.len() {
            let r = parse_v4(&good[..cut], REMOTE4);
            assert!(r.is_none() || cut >= 8 + 28, "{cut}");
        }
    }

    #[test]
    fn packet_too_big_names_the_flow() {
        let quoted = segment(true, 99, 9000, 1232);
        let icmp = too_big6(&quoted, 1280);
        let tb = parse_v6(&icmp, NS6, REMOTE6).expect("parsed");
        assert_eq!(tb.from, "[fd00::2]:8000".parse().unwrap());
        assert_eq!(tb.to, "[fd00::100]:34530".parse().unwrap());
        assert_eq!((tb.seq, tb.mtu), (TcpSeqNumber(99), 1280));
        // The checksum covers the addresses: from elsewhere it fails.
        assert_eq!(parse_v6(&icmp, NS6, Ipv6Addr::LOCALHOST), None);
        assert_eq!(parse_v6(&icmp, REMOTE6, REMOTE6), None);
        for cut in 0..icmp.len() {
            let r = parse_v6(&icmp[..cut], NS6, REMOTE6);
            assert!(r.is_none() || cut >= 8 + 48, "{cut}");
        }
    }

    #[test]
    fn path_mtu_only_shrinks_and_has_a_floor() {
        assert_eq!(lowered(None, 65520, 1500, false), Some(1500));
        assert_eq!(lowered(Some(1500), 65520, 1400, false), Some(1400));
        // Never grows, never equal.
        assert_eq!(lowered(Some(1400), 65520, 1500, false), None);
        assert_eq!(lowered(Some(1400), 65520, 1400, false), None);
        assert_eq!(lowered(None, 1500, 1500, false), None);
        assert_eq!(lowered(None, 1500, 9000, false), None);
        // Floors: 576 for IPv4, 1280 for IPv6; 0 (pre-RFC 1191 routers) too.
        assert_eq!(lowered(None, 65520, 575, false), None);
        assert_eq!(lowered(None, 65520, 576, false), Some(576));
        assert_eq!(lowered(None, 65520, 0, false), None);
        assert_eq!(lowered(None, 65520, 1279, true), None);
        assert_eq!(lowered(None, 65520, 1280, true), Some(1280));
        assert_eq!(lowered(None, 65520, 100_000, true), None);
    }

    #[test]
    fn only_unacknowledged_sequence_numbers_count() {
        let w = (TcpSeqNumber(1000), TcpSeqNumber(5000));
        assert!(in_flight(TcpSeqNumber(1000), w));
        assert!(in_flight(TcpSeqNumber(4999), w));
        assert!(!in_flight(TcpSeqNumber(999), w));
        assert!(!in_flight(TcpSeqNumber(5000), w));
        // Across the wrap of the sequence space.
        let wrap = (TcpSeqNumber(i32::MAX - 10), TcpSeqNumber(i32::MIN + 10));
        assert!(in_flight(TcpSeqNumber(i32::MAX), wrap));
        assert!(in_flight(TcpSeqNumber(i32::MIN), wrap));
        assert!(!in_flight(TcpSeqNumber(i32::MIN + 10), wrap));
        // Nothing in flight: nothing matches.
        let idle = (TcpSeqNumber(7), TcpSeqNumber(7));
        assert!(!in_flight(TcpSeqNumber(7), idle));
    }
}
