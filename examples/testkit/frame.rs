//! Hand-built Ethernet frames: IPv4/IPv6 with TCP, UDP or ICMP inside, and
//! ARP, with checksums computed over the bytes actually present (so that
//! frames with lying length fields still pass the checksum check).

use std::net::IpAddr;

use crate::fail::{Res, usage};

pub const ETH: usize = 14;
pub const V4L4: usize = ETH + 20;
pub const V6L4: usize = ETH + 40;
pub const BCAST: [u8; 6] = [0xff; 6];

pub fn put16(f: &mut [u8], at: usize, v: u16) {
    if at + 2 <= f.len() {
        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

pub fn sum16(data: &[u8]) -> u64 {
    let mut c = data.chunks_exact(2);
    let mut s: u64 = (&mut c)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u64)
        .sum();
    if let [b] = c.remainder() {
        s += (*b as u64) << 8;
    }
    s
}

#[allow(clippy::cast_possible_truncation)] // the loop leaves s below 2^16
pub fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Offset of the checksum inside an L4 header, and whether it covers a
/// pseudo header.
pub fn l4_csum(proto: u8) -> Option<(usize, bool)> {
    match proto {
        6 => Some((16, true)),
        17 => Some((6, true)),
        1 => Some((2, false)),
        58 => Some((2, true)),
        _ => None,
    }
}

/// Recompute the IPv4 header checksum and the L4 checksum over the bytes
/// actually present, whatever the (possibly lying) length fields say.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() < ETH {
        return;
    }
    let (l4, proto, pseudo) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f.len() >= V4L4 => {
            let ihl = (f[ETH] & 0x0f) as usize * 4;
            let hl = if ihl >= 20 && ETH + ihl <= f.len() {
                ihl
            } else {
                20
            };
            put16(f, ETH + 10, 0);
            let c = fold(sum16(&f[ETH..ETH + hl]));
            put16(f, ETH + 10, c);
            if ihl != 20 {
                return;
            }
            let len = (f.len() - V4L4) as u64;
            (
                V4L4,
                f[ETH + 9],
                sum16(&f[ETH + 12..V4L4]) + f[ETH + 9] as u64 + len,
            )
        }
        0x86dd if f.len() >= V6L4 => {
            let len = (f.len() - V6L4) as u64;
            (
                V6L4,
                f[ETH + 6],
                sum16(&f[ETH + 8..V6L4]) + f[ETH + 6] as u64 + (len >> 16) + (len & 0xffff),
            )
        }
        _ => return,
    };
    let Some((pos, with_pseudo)) = l4_csum(proto) else {
        return;
    };
    if f.len() < l4 + pos + 2 {
        return;
    }
    put16(f, l4 + pos, 0);
    let mut c = fold(sum16(&f[l4..]) + if with_pseudo { pseudo } else { 0 });
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    put16(f, l4 + pos, c);
}

/// Make the IP length field match the frame.
pub fn set_ip_len(f: &mut [u8]) {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => put16(f, ETH + 2, u16::try_from(f.len() - ETH).unwrap_or(u16::MAX)),
        0x86dd => put16(
            f,
            ETH + 4,
            u16::try_from(f.len() - V6L4).unwrap_or(u16::MAX),
        ),
        _ => {}
    }
}

/// The addresses and MTU of the link frames go out on.
pub struct Link {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub mtu: usize,
}

impl Link {
    pub fn eth(&self, dst: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    pub fn v4(&self, src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let head = [0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
        self.ip(self.dst, 0x0800, &[&head, &src, &dst, l4])
    }

    pub fn v6(
        &self,
        mac: [u8; 6],
        src: [u8; 16],
        dst: [u8; 16],
        next: u8,
        hop: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let head = [0x60, 0, 0, 0, 0, 0, next, hop];
        self.ip(mac, 0x86dd, &[&head, &src, &dst, l4])
    }

    /// An IP frame of `parts`, its length field and checksums filled in.
    fn ip(&self, mac: [u8; 6], ethertype: u16, parts: &[&[u8]]) -> Vec<u8> {
        let mut f = self.eth(mac, ethertype);
        for p in parts {
            f.extend_from_slice(p);
        }
        set_ip_len(&mut f);
        fix_checksums(&mut f);
        f
    }

    pub fn arp(&self, op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = self.eth(BCAST, 0x0806);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }
}

pub fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut s = Vec::with_capacity(32);
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&[
        0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0x80, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    // MSS 1460, NOP NOP SACK-permitted, NOP wscale 7.
    s.extend_from_slice(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
    s
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = sport.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(
        &u16::try_from(8 + payload.len())
            .expect("UDP payload over 64 KiB")
            .to_be_bytes(),
    );
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

pub fn icmp(ty: u8, rest: &[u8]) -> Vec<u8> {
    let mut s = vec![ty, 0, 0, 0];
    s.extend_from_slice(rest);
    s
}

/// An Ethernet frame carrying `l4` from `src` to `dst` (same family).
pub fn ip_frame(link: &Link, src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> Res<Vec<u8>> {
    use std::net::IpAddr::{V4, V6};
    match (src, dst) {
        (V4(s), V4(d)) => Ok(link.v4(s.octets(), d.octets(), proto, l4)),
        (V6(s), V6(d)) => Ok(link.v6(link.dst, s.octets(), d.octets(), proto, 64, l4)),
        _ => Err(usage("source and destination must be the same family")),
    }
}
