//! What an IPv6 packet says about who is who: its source address and, for
//! neighbour discovery, the target address and the link-layer addresses of
//! its options (what a receiver writes into its neighbour table). The
//! switch of a named network holds each member to its own (engine/switch.rs).
//! Pure: no I/O.
//!
//! Receivers act on options whatever the checksum says is not our concern:
//! a message that claims only the sender's own addresses is harmless even if
//! it is later dropped for a bad checksum, so none is verified here.

use std::net::Ipv6Addr;

use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv6Packet};

use crate::model::icmpv6::{MLD, NA, NS, OPT_SLLA, OPT_TLLA, RA, REDIRECT, RS};

/// Extension headers walked before giving up on a packet.
const MAX_EXT_HEADERS: usize = 8;

/// The message, as far as addresses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    /// Not ICMPv6, or a later fragment of anything: the source address is
    /// all it claims.
    Data,
    /// ICMPv6 other than neighbour discovery and MLD (echo, errors).
    Icmp,
    /// MLD queries and reports (may come from `::`, RFC 3810 §5.2.13).
    Mld,
    RouterSolicit,
    NeighborSolicit {
        target: Ipv6Addr,
    },
    NeighborAdvert {
        target: Ipv6Addr,
    },
    /// Router advertisements and redirects: only a router sends them.
    RouterOnly,
    /// Neighbour discovery in a fragment (never legitimate, RFC 6980), or
    /// an ICMPv6 message too short for its type.
    Invalid,
}

/// The link-layer addresses a message's options name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAddrs {
    None,
    /// One address (possibly in several options).
    One(EthernetAddress),
    /// Different addresses, a malformed option list, or a link-layer
    /// option that is not one Ethernet address.
    Bad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub src: Ipv6Addr,
    pub msg: Msg,
    pub lladdr: LinkAddrs,
}

/// What `payload` (an IPv6 packet) claims; None when it is not a
/// well-formed IPv6 packet as far as its extension headers go.
pub fn claims(payload: &[u8]) -> Option<Claims> {
    let p = Ipv6Packet::new_checked(payload).ok()?;
    let src = p.src_addr();
    let data = Claims {
        src,
        msg: Msg::Data,
        lladdr: LinkAddrs::None,
    };
    let mut next = p.next_header();
    let mut rest = p.payload();
    let mut fragmented = false;
    let mut walked = 0;
    loop {
        match next {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                let len = (usize::from(*rest.get(1)?) + 1) * 8;
                next = IpProtocol::from(*rest.first()?);
                rest = rest.get(len..)?;
            }
            IpProtocol::Ipv6Frag => {
                let h = rest.get(..8)?;
                next = IpProtocol::from(h[0]);
                if u16::from_be_bytes([h[2], h[3]]) & !7 != 0 {
                    // A later fragment: its upper layer is in the first.
                    return Some(data);
                }
                fragmented = true;
                rest = &rest[8..];
            }
            IpProtocol::Icmpv6 => break,
            _ => return Some(data),
        }
        walked += 1;
        if walked > MAX_EXT_HEADERS {
            return None;
        }
    }
    let (msg, opts) = icmp(rest, fragmented);
    Some(Claims {
        src,
        msg,
        lladdr: opts.map_or(LinkAddrs::None, link_addrs),
    })
}

/// The message of an ICMPv6 body, and its NDP options if it has any.
fn icmp(body: &[u8], fragmented: bool) -> (Msg, Option<&[u8]>) {
    let Some(&ty) = body.first() else {
        return (Msg::Invalid, None);
    };
    let target = || {
        let t: [u8; 16] = body.get(8..24)?.try_into().ok()?;
        Some(Ipv6Addr::from(t))
    };
    match ty {
        RA | REDIRECT => (Msg::RouterOnly, None),
        RS | NS | NA if fragmented => (Msg::Invalid, None),
        RS => match body.get(8..) {
            Some(opts) => (Msg::RouterSolicit, Some(opts)),
            None => (Msg::Invalid, None),
        },
        NS | NA => match (target(), body.get(24..)) {
            (Some(target), Some(opts)) if ty == NS => (Msg::NeighborSolicit { target }, Some(opts)),
            (Some(target), Some(opts)) => (Msg::NeighborAdvert { target }, Some(opts)),
            _ => (Msg::Invalid, None),
        },
        t if MLD.contains(&t) => (Msg::Mld, None),
        _ => (Msg::Icmp, None),
    }
}

/// The link-layer addresses NDP options name (RFC 4861 §4.6.1): every
/// source/target link-layer option must be one Ethernet address (length
/// 1), and every option well-formed (no zero length, none past the end).
fn link_addrs(mut opts: &[u8]) -> LinkAddrs {
    let mut found = LinkAddrs::None;
    while !opts.is_empty() {
        let (Some(&ty), Some(&units)) = (opts.first(), opts.get(1)) else {
            return LinkAddrs::Bad;
        };
        let len = usize::from(units) * 8;
        let Some(opt) = opts.get(..len).filter(|_| len > 0) else {
            return LinkAddrs::Bad;
        };
        if ty == OPT_SLLA || ty == OPT_TLLA {
            let Some(mac) = opt.get(2..8).filter(|_| units == 1) else {
                return LinkAddrs::Bad;
            };
            let mac = EthernetAddress::from_bytes(mac);
            found = match found {
                LinkAddrs::None => LinkAddrs::One(mac),
                LinkAddrs::One(m) if m == mac => found,
                _ => return LinkAddrs::Bad,
            };
        }
        opts = &opts[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x89, 1, 0, 0, 0, 0, 0x64);
    const B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x89, 1, 0, 0, 0, 0, 0x65);
    const MAC_A: [u8; 6] = [2, 0x89, 10, 89, 1, 100];
    const MAC_B: [u8; 6] = [2, 0x89, 10, 89, 1, 101];

    /// An IPv6 packet from `src`: `ext` (extension headers, their own next
    /// header bytes included) then `l4` with protocol `next`.
    fn packet(src: Ipv6Addr, first: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&u16::try_from(ext.len() + l4.len()).unwrap().to_be_bytes());
        b.extend_from_slice(&[first, 255]);
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
        b.extend_from_slice(ext);
        b.extend_from_slice(l4);
        b
    }

    fn ndp(ty: u8, target: Option<Ipv6Addr>, opts: &[&[u8]]) -> Vec<u8> {
        let mut b = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        if let Some(t) = target {
            b.extend_from_slice(&t.octets());
        }
        for o in opts {
            b.extend_from_slice(o);
        }
        b
    }

    fn ll(ty: u8, mac: [u8; 6]) -> Vec<u8> {
        let mut o = vec![ty, 1];
        o.extend_from_slice(&mac);
        o
    }

    fn icmp6(src: Ipv6Addr, l4: &[u8]) -> Claims {
        claims(&packet(src, 58, &[], l4)).unwrap()
    }

    #[test]
    fn neighbour_messages_name_their_target_and_link_addresses() {
        let na = icmp6(A, &ndp(NA, Some(B), &[&ll(OPT_TLLA, MAC_A)]));
        assert_eq!(na.src, A);
        assert_eq!(na.msg, Msg::NeighborAdvert { target: B });
        assert_eq!(na.lladdr, LinkAddrs::One(EthernetAddress(MAC_A)));
        let ns = icmp6(
            A,
            &ndp(
                NS,
                Some(B),
                &[&ll(OPT_SLLA, MAC_A), &[200, 1, 0, 0, 0, 0, 0, 0]],
            ),
        );
        assert_eq!(ns.msg, Msg::NeighborSolicit { target: B });
        assert_eq!(ns.lladdr, LinkAddrs::One(EthernetAddress(MAC_A)));
        let rs = icmp6(A, &ndp(RS, None, &[]));
        assert_eq!((rs.msg, rs.lladdr), (Msg::RouterSolicit, LinkAddrs::None));
        for ty in [RA, REDIRECT] {
            assert_eq!(icmp6(A, &ndp(ty, Some(B), &[])).msg, Msg::RouterOnly);
        }
        assert_eq!(icmp6(A, &[128, 0, 0, 0, 0, 1, 0, 1]).msg, Msg::Icmp);
        assert_eq!(icmp6(A, &[143, 0, 0, 0, 0, 0, 0, 0]).msg, Msg::Mld);
    }

    #[test]
    fn option_lists_that_could_hide_an_address_are_bad() {
        for opts in [
            // Two different addresses; a link-layer option of length 2; a
            // zero-length option; an option past the end.
            vec![ll(OPT_SLLA, MAC_A), ll(OPT_SLLA, MAC_B)],
            vec![ll(OPT_TLLA, MAC_A), ll(OPT_SLLA, MAC_B)],
            vec![vec![
                OPT_SLLA, 2, 2, 0x89, 10, 89, 1, 100, 0, 0, 0, 0, 0, 0, 0, 0,
            ]],
            vec![vec![7, 0, 0, 0, 0, 0, 0, 0]],
            vec![vec![7, 3, 0, 0, 0, 0, 0, 0]],
            vec![vec![7]],
        ] {
            let refs: Vec<&[u8]> = opts.iter().map(Vec::as_slice).collect();
            let c = icmp6(A, &ndp(NA, Some(A), &refs));
            assert_eq!(c.lladdr, LinkAddrs::Bad, "{opts:?}");
        }
        // The same address twice is one address.
        let c = icmp6(
            A,
            &ndp(NA, Some(A), &[&ll(OPT_TLLA, MAC_A), &ll(OPT_SLLA, MAC_A)]),
        );
        assert_eq!(c.lladdr, LinkAddrs::One(EthernetAddress(MAC_A)));
    }

    #[test]
    fn extension_headers_and_fragments_hide_nothing() {
        let na = ndp(NA, Some(B), &[&ll(OPT_TLLA, MAC_B)]);
        // Behind hop-by-hop and destination options.
        let ext = [[60, 0, 1, 4, 0, 0, 0, 0], [58, 0, 1, 4, 0, 0, 0, 0]].concat();
        let c = claims(&packet(A, 0, &ext, &na)).unwrap();
        assert_eq!(c.msg, Msg::NeighborAdvert { target: B });
        assert_eq!(c.lladdr, LinkAddrs::One(EthernetAddress(MAC_B)));
        // In a first fragment: never legitimate; a later fragment claims
        // only its source.
        let first = [58, 0, 0, 1, 0, 0, 0, 9];
        assert_eq!(
            claims(&packet(A, 44, &first, &na)).unwrap().msg,
            Msg::Invalid
        );
        let later = [58, 0, 0, 8, 0, 0, 0, 9];
        assert_eq!(claims(&packet(A, 44, &later, &na)).unwrap().msg, Msg::Data);
        // Echo in a first fragment is fine.
        let echo = [128, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(
            claims(&packet(A, 44, &first, &echo)).unwrap().msg,
            Msg::Icmp
        );
        // Truncated extension headers, and too many of them: not a packet.
        assert!(claims(&packet(A, 0, &[58, 3, 0, 0], &[])).is_none());
        let many = [[60, 0, 1, 4, 0, 0, 0, 0]; 9].concat();
        assert!(claims(&packet(A, 60, &many, &na)).is_none());
        // Cut-short messages.
        assert_eq!(icmp6(A, &[]).msg, Msg::Invalid);
        assert_eq!(icmp6(A, &ndp(NA, None, &[])).msg, Msg::Invalid);
        // UDP: only the source.
        let udp = claims(&packet(A, 17, &[], &[0; 8])).unwrap();
        assert_eq!((udp.src, udp.msg), (A, Msg::Data));
    }

    #[test]
    fn every_truncation_is_safe() {
        let na = ndp(NA, Some(B), &[&ll(OPT_TLLA, MAC_B)]);
        let p = packet(A, 0, &[58, 0, 1, 4, 0, 0, 0, 0], &na);
        for n in 0..p.len() {
            let mut cut = p[..n].to_vec();
            if n >= 6 {
                // Keep the length field honest so the walk is what is cut.
                let l = u16::try_from(n.saturating_sub(40)).unwrap();
                cut[4..6].copy_from_slice(&l.to_be_bytes());
            }
            let _ = claims(&cut);
        }
    }
}
