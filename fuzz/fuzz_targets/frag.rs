//! IP fragments from namespaces into the reassembler (IPv4 and IPv6, four
//! ports, time passing, expiry, a port leaving), with its bounds checked
//! after every step; every rebuilt datagram is cut again with `fragment`
//! and put back together by a fresh reassembler, which must give the same
//! datagram.
//!
//! Input: a limits byte (bit 0: small limits, so inputs reach them), then
//! records of [op][wait][length u16 LE][packet]; op bits 0-1: 0 IPv4,
//! 1 IPv6, 2 expire, 3 the port leaves; bits 2-3: the port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlnet::wire::frag::{self, LIMITS, Limits, Push, Reassembler};
use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, checksum};

const SMALL: Limits = Limits {
    port_bytes: 4096,
    port_datagrams: 4,
    total_bytes: 8192,
    total_datagrams: 6,
    fragments: 8,
    timeout_us: 1_000_000,
};
const PORTS: usize = 4;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let limits = if mode & 1 != 0 { SMALL } else { LIMITS };
    let mut r = Reassembler::new(limits);
    let mut now = 0i64;
    for _ in 0..256 {
        let Some((&[op, wait, l0, l1], tail)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([l0, l1])).min(tail.len());
        let (pkt, tail) = tail.split_at(len);
        rest = tail;
        // Up to 25.5 s a step: both timeouts are reachable.
        now += i64::from(wait) * 100_000;
        let port = usize::from(op >> 2 & 3);
        let push = match op & 3 {
            0 => r.ipv4(port, pkt, now),
            1 => r.ipv6(port, pkt, now),
            2 => {
                r.expire(now);
                Push::Held
            }
            _ => {
                r.drop_port(port);
                assert_eq!(r.port_bytes(port), 0, "a port left memory behind");
                Push::Held
            }
        };
        assert!(r.bytes() <= limits.total_bytes, "{} bytes held", r.bytes());
        assert!(r.len() <= limits.total_datagrams, "{} datagrams", r.len());
        for p in 0..PORTS {
            assert!(
                r.port_bytes(p) <= limits.port_bytes,
                "port {p}: {} bytes",
                r.port_bytes(p)
            );
        }
        if let Push::Complete(whole) = push {
            check_whole(&whole);
            round_trip(&whole, usize::from(wait) * 4 + 576, now);
        }
    }
    r.expire(i64::MAX);
    assert!(r.is_empty(), "datagrams left after expiry");
    assert_eq!(r.bytes(), 0, "bytes left after expiry");
    for p in 0..PORTS {
        assert_eq!(r.port_bytes(p), 0);
    }
});

/// A rebuilt datagram is one unfragmented packet whose lengths add up.
fn check_whole(w: &[u8]) {
    match w.first().map(|b| b >> 4) {
        Some(4) => {
            let p = Ipv4Packet::new_checked(w).expect("rebuilt IPv4 header");
            assert_eq!(usize::from(p.total_len()), w.len(), "total length");
            assert!(!p.more_frags() && p.frag_offset() == 0, "still a fragment");
            let hl = usize::from(p.header_len());
            assert_eq!(checksum::data(&w[..hl]), !0, "header checksum");
        }
        Some(6) => {
            let p = Ipv6Packet::new_checked(w).expect("rebuilt IPv6 header");
            assert_eq!(usize::from(p.payload_len()) + 40, w.len(), "payload length");
            assert_ne!(p.next_header(), IpProtocol::Ipv6Frag, "still a fragment");
        }
        v => panic!("rebuilt datagram of IP version {v:?}"),
    }
}

/// `fragment` then a fresh reassembler gives back the same addresses,
/// protocol and payload.
fn round_trip(whole: &[u8], mtu: usize, now: i64) {
    let v6 = whole[0] >> 4 == 6;
    let mut pieces = Vec::new();
    let Some(n) = frag::fragment(whole, mtu, 0x1234_5678, |p| pieces.push(p.to_vec())) else {
        return;
    };
    assert_eq!(n, pieces.len());
    let mut r = Reassembler::new(LIMITS);
    let mut got = None;
    for (i, p) in pieces.iter().enumerate() {
        assert!(
            p.len() <= mtu,
            "a fragment of {} bytes for MTU {mtu}",
            p.len()
        );
        let push = if v6 {
            r.ipv6(0, p, now)
        } else {
            r.ipv4(0, p, now)
        };
        match push {
            Push::Complete(w) if i + 1 == n => got = Some(w),
            Push::NotFragment if n == 1 && !v6 => got = Some(p.clone()),
            Push::Held if i + 1 < n => {}
            other => panic!("piece {i} of {n}: {other:?}"),
        }
    }
    let got = got.expect("the pieces made no datagram");
    let hl = if v6 {
        40
    } else {
        usize::from(whole[0] & 0xf) * 4
    };
    assert_eq!(got[hl..], whole[hl..], "payload differs after a round trip");
    let (a, b) = if v6 { (8..40, 6..7) } else { (12..20, 9..10) };
    assert_eq!(got[a.clone()], whole[a], "addresses differ");
    assert_eq!(got[b.clone()], whole[b], "protocol differs");
}
