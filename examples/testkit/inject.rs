//! `inject IFNAME`: malformed frames into an interface through AF_PACKET:
//! every truncation of a set of valid frames, then variants that lie in
//! one field each (lengths, versions, flags, addresses, options, extension
//! headers, fragments), ICMP errors quoting odd MTUs, and oversize frames.

use std::net::Ipv6Addr;

use crate::Command;
use crate::args::{Args, parse_mac};
use crate::fail::{Res, emit, status, usage};
use crate::frame::{
    BCAST, ETH, Link, V4L4, V6L4, fix_checksums, icmp, l4_csum, put16, set_ip_len, tcp_syn, udp,
};
use crate::packet::{if_info, packet_socket, send_frame};

pub const COMMAND: Command =
    Command::new("inject", SYNTAX, HELP, 1..=1, run).options(&["--rounds", "--dst-mac"], &[]);

const SYNTAX: &str = "inject IFNAME [--rounds R] [--dst-mac MAC]";

const HELP: &str = "  inject IFNAME [--rounds R] [--dst-mac MAC]   malformed frames via AF_PACKET;
        prints `sent= errors= frames=`
";

/// The namespace and the gateway of rlnet's default plan.
const GW4: [u8; 4] = [10, 0, 2, 2];
const ME4: [u8; 4] = [10, 0, 2, 100];

fn v6(last: u16) -> [u8; 16] {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last).octets()
}

fn run(a: &Args) -> Res<i32> {
    let ifname = &a.pos[0];
    let rounds: u64 = a.num("--rounds", 1)?;
    let dst_s = a.opt("--dst-mac").unwrap_or("52:55:0a:00:02:02");
    let dst = parse_mac(dst_s).ok_or_else(|| usage(format!("bad --dst-mac {dst_s:?}")))?;
    let fd = packet_socket(ifname, a.timeout)?;
    let (src, mtu) = if_info(&fd, ifname)?;
    let frames = build_frames(&Link { dst, src, mtu });
    let (mut sent, mut errors, mut last_err) = (0u64, 0u64, None);
    for _ in 0..rounds {
        for f in &frames {
            match send_frame(&fd, f, "inject")? {
                None => sent += 1,
                Some(e) => {
                    errors += 1;
                    last_err = Some(e);
                }
            }
        }
    }
    if sent == 0 {
        eprintln!("testkit: inject: no frame could be sent (last error: {last_err:?})");
    }
    emit(&format!(
        "sent={sent} errors={errors} frames={}",
        frames.len()
    ));
    Ok(status(sent > 0))
}

const PAYLOAD: &[u8] = b"testkit inject!!";

fn templates(link: &Link) -> Vec<Vec<u8>> {
    let echo: Vec<u8> = [&[0x12, 0x34, 0, 1][..], PAYLOAD].concat();
    let (me6, gw6) = (v6(0x100), v6(2));
    let mut ns = vec![0; 4];
    ns.extend_from_slice(&gw6);
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&link.src);
    let sn_mac = [0x33, 0x33, 0xff, 0, 0, 2];
    let sn_ip = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2).octets();
    vec![
        link.arp(1, ME4, GW4),
        link.v4(ME4, GW4, 6, &tcp_syn(40000, 9)),
        link.v4(ME4, GW4, 17, &udp(40000, 9, PAYLOAD)),
        link.v4(ME4, GW4, 1, &icmp(8, &echo)),
        link.v6(link.dst, me6, gw6, 6, 64, &tcp_syn(40000, 9)),
        link.v6(link.dst, me6, gw6, 17, 64, &udp(40000, 9, PAYLOAD)),
        link.v6(link.dst, me6, gw6, 58, 64, &icmp(128, &echo)),
        link.v6(sn_mac, me6, sn_ip, 58, 255, &icmp(135, &ns)),
    ]
}

/// Push a copy of `base` edited by `edit`, checksums fixed afterwards if `fix`.
fn variant(out: &mut Vec<Vec<u8>>, base: &[u8], fix: bool, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut m = base.to_vec();
    edit(&mut m);
    if fix {
        fix_checksums(&mut m);
    }
    out.push(m);
}

fn l4_mutations(f: &[u8], off: usize, proto: u8, out: &mut Vec<Vec<u8>>) {
    // A broken L4 checksum (everything else valid).
    if let Some((pos, _)) = l4_csum(proto) {
        variant(out, f, false, |m| m[off + pos] ^= 0x5a);
    }
    if matches!(proto, 6 | 17) {
        for (sp, dp) in [(0, 9), (40000, 0), (0, 0)] {
            variant(out, f, true, |m| {
                put16(m, off, sp);
                put16(m, off + 2, dp);
            });
        }
    }
    match proto {
        6 => tcp_mutations(f, off, out),
        17 => {
            let real = f.len() - off;
            for len in [0, 7, 8, real - 1, real + 1, 65535] {
                variant(out, f, true, |m| {
                    put16(m, off + 4, u16::try_from(len).unwrap_or(u16::MAX))
                });
            }
            variant(out, f, false, |m| {
                fix_checksums(m);
                put16(m, off + 6, 0);
            });
        }
        1 | 58 => {
            let types: &[(u8, u8)] = if proto == 1 {
                &[
                    (0, 0),
                    (3, 3),
                    (3, 4),
                    (5, 0),
                    (11, 0),
                    (13, 0),
                    (255, 255),
                    (8, 255),
                ]
            } else {
                &[
                    (129, 0),
                    (1, 4),
                    (2, 0),
                    (3, 0),
                    (133, 0),
                    (134, 0),
                    (136, 0),
                    (137, 0),
                    (255, 255),
                    (128, 1),
                ]
            };
            for &(ty, code) in types {
                variant(out, f, true, |m| {
                    m[off] = ty;
                    m[off + 1] = code;
                });
            }
        }
        _ => {}
    }
}

/// Data offsets, flag combinations, option lengths and a window of 0 in the
/// TCP header at `off`, and trailing bytes past it.
fn tcp_mutations(f: &[u8], off: usize, out: &mut Vec<Vec<u8>>) {
    for doff in [0u8, 4, 15] {
        variant(out, f, true, |m| m[off + 12] = doff << 4);
    }
    for flags in [
        0x03u8, 0x06, 0xff, 0x00, 0x10, 0x04, 0x01, 0x12, 0x22, 0xc2, 0x29,
    ] {
        variant(out, f, true, |m| m[off + 13] = flags);
    }
    variant(out, f, true, |m| {
        m[off + 12] |= 1;
        m[off + 13] = 0xff;
    });
    // Option lengths: MSS (len at 21), SACK-permitted (27), wscale (30).
    for at in [21, 27, 30] {
        for len in [0u8, 1, 255] {
            variant(out, f, true, |m| m[off + at] = len);
        }
    }
    variant(out, f, true, |m| m[off + 20] = 0xfe);
    variant(out, f, true, |m| put16(m, off + 14, 0));
    variant(out, f, true, |m| {
        m.extend_from_slice(&[0xab; 100]);
        set_ip_len(m);
    });
}

fn v4_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let real = f.len() - ETH;
    let proto = f[ETH + 9];
    for tl in [0, 1, 19, real - 1, real + 1, 65535] {
        variant(out, f, true, |m| {
            put16(m, ETH + 2, u16::try_from(tl).unwrap_or(u16::MAX))
        });
    }
    for b in [0x40u8, 0x44, 0x4f, 0x05, 0x65, 0xf5] {
        variant(out, f, true, |m| m[ETH] = b); // IHL 0/4/15; version 0/6/15
    }
    variant(out, f, true, |m| m[ETH + 8] = 0); // TTL 0
    variant(out, f, false, |m| m[ETH + 10] ^= 0xff); // bad header checksum
    // Fragments: MF at offset 0, MF at 8, last fragment at 8, max offset,
    // DF+MF, the reserved bit.
    for fo in [0x2000u16, 0x2001, 0x0001, 0x1fff, 0x3fff, 0x6000, 0x8000] {
        variant(out, f, true, |m| put16(m, ETH + 6, fo));
    }
    for src in [[0u8; 4], [255; 4], [127, 0, 0, 1], GW4, [224, 0, 0, 1], ME4] {
        variant(out, f, true, |m| {
            m[ETH + 12..ETH + 16].copy_from_slice(&src)
        });
    }
    for dst in [
        [0u8; 4],
        [255; 4],
        [224, 0, 0, 1],
        [10, 0, 2, 255],
        [127, 0, 0, 1],
        ME4,
    ] {
        variant(out, f, true, |m| {
            m[ETH + 16..ETH + 20].copy_from_slice(&dst)
        });
    }
    for p in [0u8, 1, 6, 17, 58, 253, 255] {
        if p != proto {
            variant(out, f, true, |m| m[ETH + 9] = p);
        }
    }
    l4_mutations(f, V4L4, proto, out);
}

fn v6_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let real = f.len() - V6L4;
    let next = f[ETH + 6];
    for pl in [0, real - 1, real + 1, 65535] {
        variant(out, f, true, |m| {
            put16(m, ETH + 4, u16::try_from(pl).unwrap_or(u16::MAX))
        });
    }
    for b in [0x40u8, 0x00, 0xf0] {
        variant(out, f, true, |m| m[ETH] = b);
    }
    variant(out, f, true, |m| m[ETH + 7] = 0); // hop limit 0
    let ll1 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets();
    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    for a in [
        [0u8; 16],
        Ipv6Addr::LOCALHOST.octets(),
        all,
        ll1,
        v6(2),
        v6(0x100),
    ] {
        variant(out, f, true, |m| m[ETH + 8..ETH + 24].copy_from_slice(&a));
        variant(out, f, true, |m| m[ETH + 24..V6L4].copy_from_slice(&a));
    }
    for p in [0u8, 43, 44, 59, 60, 253, 6, 17, 58] {
        if p != next {
            variant(out, f, true, |m| m[ETH + 6] = p);
        }
    }
    // Extension headers spliced in front of the (valid) L4 segment:
    // fragments (first with MF, middle, last, atomic), hop-by-hop (valid
    // PadN, length past the frame, unknown option with a huge length),
    // two hop-by-hops in a row, routing type 0.
    let ext: [(u8, Vec<u8>); 9] = [
        (44, vec![next, 0, 0x00, 0x01, 0, 0, 0, 1]),
        (44, vec![next, 0, 0x00, 0x09, 0, 0, 0, 2]),
        (44, vec![next, 0, 0x00, 0x08, 0, 0, 0, 3]),
        (44, vec![next, 0, 0x00, 0x00, 0, 0, 0, 4]),
        (0, vec![next, 0, 1, 4, 0, 0, 0, 0]),
        (0, vec![next, 255, 1, 4, 0, 0, 0, 0]),
        (0, vec![next, 0, 0xfe, 255, 0, 0, 0, 0]),
        (0, vec![0, 0, 1, 4, 0, 0, 0, 0, next, 0, 1, 4, 0, 0, 0, 0]),
        (
            43,
            vec![
                next, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
    ];
    for (nh, hdr) in ext {
        variant(out, f, false, |m| {
            m.splice(V6L4..V6L4, hdr);
            m[ETH + 6] = nh;
            set_ip_len(m);
        });
    }
    l4_mutations(f, V6L4, next, out);
    if next == 58 && f[V6L4] == 135 {
        // NS: option length 0 (the classic parser loop) and 255, hop limit
        // not 255, multicast target, DAD source with an SLLA option.
        variant(out, f, true, |m| m[V6L4 + 25] = 0);
        variant(out, f, true, |m| m[V6L4 + 25] = 255);
        variant(out, f, true, |m| m[ETH + 7] = 64);
        variant(out, f, true, |m| {
            m[V6L4 + 8..V6L4 + 24].copy_from_slice(&all)
        });
        variant(out, f, true, |m| m[ETH + 8..ETH + 24].fill(0));
    }
}

fn arp_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let a = ETH;
    let edits: [(usize, &[u8]); 20] = [
        (a, &[0, 0]),
        (a, &[0xff, 0xff]),
        (a + 2, &[0x86, 0xdd]),
        (a + 2, &[0, 0]),
        (a + 4, &[0]),
        (a + 4, &[255]),
        (a + 4, &[16]),
        (a + 5, &[0]),
        (a + 5, &[255]),
        (a + 5, &[16]),
        (a + 6, &[0, 0]),
        (a + 6, &[0, 2]),
        (a + 6, &[0, 3]),
        (a + 6, &[0xff, 0xff]),
        (a + 24, &ME4),
        (a + 24, &[0, 0, 0, 0]),
        (a + 24, &[255, 255, 255, 255]),
        (a + 14, &[0, 0, 0, 0]),
        (a + 14, &GW4),
        (a + 8, &BCAST),
    ];
    for (at, bytes) in edits {
        variant(out, f, false, |m| {
            m[at..at + bytes.len()].copy_from_slice(bytes)
        });
    }
    variant(out, f, false, |m| m[a + 14..a + 18].copy_from_slice(&ME4)); // gratuitous
    variant(out, f, false, |m| m.truncate(ETH + 8)); // header only
}

fn build_frames(link: &Link) -> Vec<Vec<u8>> {
    let t = templates(link);
    let mut out = Vec::new();
    for f in &t {
        out.extend((0..=f.len()).map(|len| f[..len].to_vec()));
    }
    for f in &t {
        variant(&mut out, f, false, |m| {
            m[6..12].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1])
        });
        match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => v4_mutations(f, &mut out),
            0x86dd => v6_mutations(f, &mut out),
            _ => arp_mutations(f, &mut out),
        }
    }
    let syn = &t[1];
    // Unknown / odd EtherTypes (802.3 length, VLAN, QinQ, MPLS) over a SYN.
    for et in [
        0x88b5u16, 0xffff, 0x0000, 0x05dc, 0x0600, 0x8100, 0x88a8, 0x8847,
    ] {
        variant(&mut out, syn, false, |m| put16(m, 12, et));
    }
    variant(&mut out, syn, false, |m| {
        m.splice(12..12, [0x81, 0x00, 0x00, 0x01]);
    });
    for dst in [
        BCAST,
        [0; 6],
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        link.src,
    ] {
        variant(&mut out, syn, false, |m| m[..6].copy_from_slice(&dst));
    }
    variant(&mut out, syn, false, |m| m[6..12].fill(0));
    icmp_errors(link, &t, &mut out);
    oversize(link, &t, &mut out);
    out
}

/// ICMP errors from the namespace quoting a segment rlnet could have sent
/// (gateway:9 -> us:40000): frag-needed / packet-too-big with odd MTUs,
/// port unreachable.
fn icmp_errors(link: &Link, t: &[Vec<u8>], out: &mut Vec<Vec<u8>>) {
    let quote = |f: &[u8], l4: usize, alen: usize| {
        let mut q = f[ETH..l4 + 8].to_vec();
        let (s, d) = (l4 - ETH - 2 * alen, l4 - ETH - alen);
        let src: Vec<u8> = q[s..d].to_vec();
        q.copy_within(d..d + alen, s);
        q[d..d + alen].copy_from_slice(&src);
        let h = l4 - ETH;
        q.copy_within(h..h + 2, h + 2);
        q[h..h + 2].copy_from_slice(&9u16.to_be_bytes());
        q[h + 2..h + 4].copy_from_slice(&40000u16.to_be_bytes());
        q
    };
    for (code, mtu) in [(4u8, 0u16), (4, 68), (4, 65535), (3, 0)] {
        let mut msg = vec![3, code, 0, 0, 0, 0];
        msg.extend_from_slice(&mtu.to_be_bytes());
        msg.extend_from_slice(&quote(&t[1], V4L4, 4));
        out.push(link.v4(ME4, GW4, 1, &msg));
    }
    for mtu in [0u32, 1280, u32::MAX] {
        let mut msg = vec![2, 0, 0, 0];
        msg.extend_from_slice(&mtu.to_be_bytes());
        msg.extend_from_slice(&quote(&t[4], V6L4, 16));
        out.push(link.v6(link.dst, v6(0x100), v6(2), 58, 64, &msg));
    }
}

/// Oversize: IPv4/UDP and IPv6/UDP at and beyond what the link allows.
fn oversize(link: &Link, t: &[Vec<u8>], out: &mut Vec<Vec<u8>>) {
    for size in [
        link.mtu + ETH,
        link.mtu + ETH + 1,
        link.mtu + ETH + 4,
        link.mtu + ETH + 18,
        65535 + ETH,
        65535 + ETH + 1000,
    ] {
        for base in [&t[2], &t[5]] {
            variant(out, base, true, |m| {
                let l4 = if base[12] == 0x08 { V4L4 } else { V6L4 };
                m.resize(size, 0xcd);
                put16(m, l4 + 4, u16::try_from(size - l4).unwrap_or(u16::MAX));
                set_ip_len(m);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{fold, sum16};

    #[test]
    fn inject_templates_have_valid_checksums() {
        let link = Link {
            dst: [0x52, 0x55, 10, 0, 2, 2],
            src: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        };
        for f in templates(&link) {
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0800 => {
                    assert_eq!(fold(sum16(&f[ETH..V4L4])), 0);
                    assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - ETH);
                    let len = (f.len() - V4L4) as u64;
                    let pseudo = if f[ETH + 9] == 1 {
                        0
                    } else {
                        sum16(&f[26..34]) + f[ETH + 9] as u64 + len
                    };
                    assert_eq!(fold(sum16(&f[V4L4..]) + pseudo), 0);
                }
                0x86dd => {
                    let len = (f.len() - V6L4) as u64;
                    assert_eq!(
                        fold(sum16(&f[V6L4..]) + sum16(&f[22..54]) + f[20] as u64 + len),
                        0
                    );
                }
                et => assert_eq!(et, 0x0806),
            }
        }
        let frames = build_frames(&link);
        assert!(frames.len() > 500, "{}", frames.len());
        assert!(frames.iter().any(|f| f.len() > 65535));
    }
}
