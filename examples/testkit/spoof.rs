//! `spoof IFNAME SRC_IP DST_IP`: frames with a forged source (another
//! member's MAC and/or IP) carrying a marker, then optionally one honest
//! frame marking the end (`--final`, for `sniff` on the victim's side).

use std::os::fd::OwnedFd;

use crate::Command;
use crate::args::{Args, mac_opt, parse_ip};
use crate::fail::{Fail, Res, emit};
use crate::frame::{BCAST, Link, ip_frame, tcp_syn, udp};
use crate::packet::{if_info, packet_socket, send_frame};

pub const COMMAND: Command = Command::new("spoof", SYNTAX, HELP, 3..=3, run).options(
    &[
        "--dst-mac",
        "--src-mac",
        "--final",
        "--sport",
        "--dport",
        "--count",
    ],
    &["--rst", "--syn"],
);

const SYNTAX: &str = "spoof IFNAME SRC_IP DST_IP [--dst-mac MAC] [--src-mac MAC] [--rst|--syn] [--sport P] [--dport P] [--count N] [--final OWN_IP]";

const HELP: &str = "  spoof IFNAME SRC_IP DST_IP [--dst-mac MAC] [--src-mac MAC] [--rst|--syn]
        [--sport P] [--dport P] [--count N] [--final OWN_IP]
        N (100) UDP datagrams (--rst: RST segments sweeping the sequence
        space; --syn: SYNs, a flood, from source ports counting up from
        --sport and wrapping below 32768, the kernel's ephemeral ports) from
        a forged SRC_IP/--src-mac carrying a marker; --final: then one honest
        UDP datagram from OWN_IP marking the end; prints `sent=`
";

/// --syn source ports stay below the usual ephemeral range (32768-60999),
/// so a flood never takes the 4-tuple of a real client's connection.
const SYN_PORTS: std::ops::Range<u32> = 1024..32768;

/// In every forged frame.
pub const SPOOF_MARK: &[u8] = b"rlnet-spoofed-frame";
/// In the honest frame that ends a run.
pub const SPOOF_END: &[u8] = b"rlnet-spoof-end";

/// A RST|ACK segment with `seq`, carrying the marker as (diagnostic) data.
fn tcp_rst(sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    let mut s = sport.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x14, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(SPOOF_MARK);
    s
}

fn run(a: &Args) -> Res<i32> {
    let ifname = &a.pos[0];
    let (src, dst) = (parse_ip(&a.pos[1])?, parse_ip(&a.pos[2])?);
    let own = a.opt("--final").map(parse_ip).transpose()?;
    let fd = packet_socket(ifname, a.timeout)?;
    let (mac, mtu) = if_info(&fd, ifname)?;
    let dst_mac = mac_opt(a, "--dst-mac", BCAST)?;
    let src_mac = mac_opt(a, "--src-mac", mac)?;
    let (sport, dport): (u16, u16) = (a.num("--sport", 40000)?, a.num("--dport", 9)?);
    let count: u32 = a.num("--count", 100)?;
    let forged = Link {
        dst: dst_mac,
        src: src_mac,
        mtu,
    };
    let mut frames = Vec::new();
    if a.flag("--syn") {
        return syn_flood(a, &fd, &forged, (src, dst), (sport, dport), count);
    }
    for i in 0..count {
        frames.push(if a.flag("--rst") {
            // Sweep the sequence space: a switch that let these through
            // would hand the victim in-window resets.
            let seq = u32::try_from(u64::from(i) * (1u64 << 32) / u64::from(count.max(1)))
                .unwrap_or(u32::MAX);
            ip_frame(&forged, src, dst, 6, &tcp_rst(sport, dport, seq))?
        } else {
            ip_frame(&forged, src, dst, 17, &udp(sport, dport, SPOOF_MARK))?
        });
    }
    if let Some(own) = own {
        let honest = Link {
            dst: dst_mac,
            src: mac,
            mtu,
        };
        frames.push(ip_frame(
            &honest,
            own,
            dst,
            17,
            &udp(sport, dport, SPOOF_END),
        )?);
    }
    emit(&format!("sent={}", send_all(&fd, &frames)?));
    Ok(0)
}

/// `--syn`: SYNs made and sent one by one, until `count` or `--timeout`;
/// `flooding` is printed first. A frame the TAP has no room for is dropped,
/// as a wire would.
fn syn_flood(
    a: &Args,
    fd: &OwnedFd,
    link: &Link,
    (src, dst): (std::net::IpAddr, std::net::IpAddr),
    (sport, dport): (u16, u16),
    count: u32,
) -> Res<i32> {
    let t0 = std::time::Instant::now();
    let span = SYN_PORTS.end - SYN_PORTS.start;
    emit("flooding");
    let mut sent = 0u64;
    for i in 0..count {
        if t0.elapsed() > a.timeout {
            break;
        }
        let p = SYN_PORTS.start + (u32::from(sport) + i) % span;
        let mut syn = tcp_syn(u16::try_from(p).unwrap_or(u16::MAX), dport);
        // A fresh initial sequence number per SYN.
        syn[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        match send_frame(fd, &ip_frame(link, src, dst, 6, &syn)?, "spoof") {
            Ok(None) => sent += 1,
            Ok(Some(_)) | Err(Fail::Timeout(_)) => {}
            Err(e) => return Err(e),
        }
    }
    emit(&format!("sent={sent}"));
    Ok(0)
}

fn send_all(fd: &OwnedFd, frames: &[Vec<u8>]) -> Res<u64> {
    let mut sent = 0u64;
    for f in frames {
        if let Some(e) = send_frame(fd, f, "spoof")? {
            return Err(Fail::Io(format!("spoof: send: {e}")));
        }
        sent += 1;
    }
    Ok(sent)
}
