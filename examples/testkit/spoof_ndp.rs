//! `spoof-ndp IFNAME KIND SRC`: IPv6 neighbour-discovery frames (and plain
//! UDP from any source) claiming whatever the caller says: a target address,
//! a link-layer address, a router's role. Each carries the spoof marker, so
//! `sniff` on another member counts the ones a switch let through.

use std::net::{IpAddr, Ipv6Addr};

use crate::Command;
use crate::args::{Args, mac_opt, parse_ip, parse_mac};
use crate::fail::{Fail, Res, emit, usage};
use crate::frame::{Link, udp};
use crate::packet::{if_info, packet_socket, send_frame};
use crate::spoof::SPOOF_MARK;

pub const COMMAND: Command = Command::new("spoof-ndp", SYNTAX, HELP, 3..=3, run).options(
    &["--target", "--lladdr", "--dst", "--dst-mac", "--count"],
    &[],
);

const SYNTAX: &str = "spoof-ndp IFNAME na|ns|rs|ra|redirect|udp|na-frag|na-dstopts SRC \
                      [--target IP] [--lladdr MAC|none] [--dst IP] [--dst-mac MAC] [--count N]";

const HELP: &str = "  spoof-ndp IFNAME KIND SRC [--target IP] [--lladdr MAC|none] [--dst IP]
        [--dst-mac MAC] [--count N]
        N (1) IPv6 frames from SRC carrying the spoof marker: a neighbour
        advertisement (override) or solicitation for --target, a router
        solicitation or advertisement, a redirect, UDP, or an advertisement
        in a first fragment / behind destination options. --lladdr (default:
        the interface's MAC) goes in the link-layer option; --dst defaults to
        ff02::1; prints `sent=`
";

/// ICMPv6 types and NDP options (RFC 4861).
const RS: u8 = 133;
const RA: u8 = 134;
const NS: u8 = 135;
const NA: u8 = 136;
const REDIRECT: u8 = 137;
const OPT_SLLA: u8 = 1;
const OPT_TLLA: u8 = 2;
/// An option type for experiments (RFC 4727): receivers skip it.
const OPT_MARK: u8 = 253;

fn v6(s: &str) -> Res<Ipv6Addr> {
    match parse_ip(s)? {
        IpAddr::V6(a) => Ok(a),
        IpAddr::V4(_) => Err(usage(format!("{s}: an IPv6 address is needed"))),
    }
}

/// The marker as an NDP option, padded to 8-byte units.
fn mark_option() -> Vec<u8> {
    let len = (2 + SPOOF_MARK.len()).div_ceil(8) * 8;
    let mut o = vec![OPT_MARK, u8::try_from(len / 8).unwrap_or(u8::MAX)];
    o.extend_from_slice(SPOOF_MARK);
    o.resize(len, 0);
    o
}

/// An NDP message: type, 4 bytes of flags/reserved, the target (if any),
/// the link-layer option (if any), then the marker.
fn ndp(ty: u8, flags: u8, target: Option<Ipv6Addr>, ll: Option<(u8, [u8; 6])>) -> Vec<u8> {
    let mut b = vec![ty, 0, 0, 0, flags, 0, 0, 0];
    if let Some(t) = target {
        b.extend_from_slice(&t.octets());
    }
    if ty == REDIRECT {
        // The redirect's destination after its target.
        b.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    }
    if let Some((opt, mac)) = ll {
        b.extend_from_slice(&[opt, 1]);
        b.extend_from_slice(&mac);
    }
    b.extend_from_slice(&mark_option());
    b
}

fn run(a: &Args) -> Res<i32> {
    let ifname = &a.pos[0];
    let kind = a.pos[1].as_str();
    let src = v6(&a.pos[2])?;
    let dst = v6(a.opt("--dst").unwrap_or("ff02::1"))?;
    let fd = packet_socket(ifname, a.timeout)?;
    let (mac, mtu) = if_info(&fd, ifname)?;
    let dst_mac = match (a.opt("--dst-mac"), dst.is_multicast()) {
        (Some(_), _) => mac_opt(a, "--dst-mac", mac)?,
        (None, true) => {
            let o = dst.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
        (None, false) => return Err(usage("--dst-mac is needed for a unicast --dst")),
    };
    let lladdr = match a.opt("--lladdr") {
        Some("none") => None,
        Some(v) => Some(parse_mac(v).ok_or_else(|| usage(format!("bad --lladdr {v:?}")))?),
        None => Some(mac),
    };
    let target = a.opt("--target").map(v6).transpose()?;
    let need_target = || target.ok_or_else(|| usage(format!("{kind} needs --target")));
    let count: u32 = a.num("--count", 1)?;
    let link = Link {
        dst: dst_mac,
        src: mac,
        mtu,
    };
    // (next header after the fixed one, hop limit, what follows)
    let (next, hop, body) = match kind {
        "na" => (
            58,
            255,
            ndp(
                NA,
                0x20,
                Some(need_target()?),
                lladdr.map(|m| (OPT_TLLA, m)),
            ),
        ),
        "ns" => (
            58,
            255,
            ndp(NS, 0, Some(need_target()?), lladdr.map(|m| (OPT_SLLA, m))),
        ),
        "rs" => (58, 255, ndp(RS, 0, None, lladdr.map(|m| (OPT_SLLA, m)))),
        "ra" => (
            58,
            255,
            // Hop limit 64, lifetime 1800 s (bytes 4..8 of an RA).
            {
                let mut b = ndp(RA, 64, None, lladdr.map(|m| (OPT_SLLA, m)));
                b[6..8].copy_from_slice(&1800u16.to_be_bytes());
                b
            },
        ),
        "redirect" => (
            58,
            255,
            ndp(
                REDIRECT,
                0,
                Some(need_target()?),
                lladdr.map(|m| (OPT_TLLA, m)),
            ),
        ),
        "udp" => (17, 64, udp(40000, 9, SPOOF_MARK)),
        "na-frag" => {
            let na = ndp(
                NA,
                0x20,
                Some(need_target()?),
                lladdr.map(|m| (OPT_TLLA, m)),
            );
            // A first fragment (offset 0, more to come), id 7.
            (44, 255, [&[58u8, 0, 0, 1, 0, 0, 0, 7][..], &na].concat())
        }
        "na-dstopts" => {
            let na = ndp(
                NA,
                0x20,
                Some(need_target()?),
                lladdr.map(|m| (OPT_TLLA, m)),
            );
            // Destination options: one PadN filling the 8 bytes.
            (60, 255, [&[58u8, 0, 1, 4, 0, 0, 0, 0][..], &na].concat())
        }
        _ => return Err(usage(format!("bad KIND {kind:?}; usage: testkit {SYNTAX}"))),
    };
    let frame = link.v6(dst_mac, src.octets(), dst.octets(), next, hop, &body);
    let mut sent = 0u32;
    for _ in 0..count {
        if let Some(e) = send_frame(&fd, &frame, "spoof-ndp")? {
            return Err(Fail::Io(format!("spoof-ndp: send: {e}")));
        }
        sent += 1;
    }
    emit(&format!("sent={sent}"));
    Ok(0)
}
