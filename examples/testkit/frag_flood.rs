//! `frag-flood IFNAME`: IP fragments that never complete a datagram (every
//! fragment says more follow), to the gateway, IPv4 and IPv6 in turn: what
//! a namespace would send to exhaust a reassembler's memory.

use crate::Command;
use crate::args::{Args, mac_opt};
use crate::fail::{Fail, Res, emit, usage};
use crate::frame::{ETH, fold, sum16};
use crate::packet::{if_info, packet_socket, send_frame};

pub const COMMAND: Command = Command::new("frag-flood", SYNTAX, HELP, 1..=1, run).options(
    &[
        "--datagrams",
        "--fragments",
        "--size",
        "--dst-mac",
        "--first-id",
    ],
    &[],
);

const SYNTAX: &str = "frag-flood IFNAME [--datagrams N] [--fragments K] [--size S] \
                      [--first-id I] [--dst-mac MAC]";

const HELP: &str = "  frag-flood IFNAME [--datagrams N] [--fragments K] [--size S] [--first-id I]
        N (1000) incomplete datagrams of K (40) fragments of S (1400) bytes,
        10.0.2.100 -> 198.18.0.1 and fd00::100 -> 2001:db8::1 in turn, ids from
        I (0), none of them the last fragment; prints `sent= errors=`
";

/// The gateway of rlnet's default plan.
const GW_MAC: &str = "52:55:0a:00:02:02";

/// `offset` and `data`'s length are bounded by `run` (at most 60,000).
fn ipv4_fragment(dst: [u8; 6], src: [u8; 6], id: u16, offset: u16, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH + 20 + data.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = u16::try_from(20 + data.len()).unwrap_or(u16::MAX);
    // More fragments, the offset in 8-byte units.
    let flags = 0x2000 | (offset / 8);
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&[64, 17, 0, 0, 10, 0, 2, 100, 198, 18, 0, 1]);
    let c = fold(sum16(&h));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(data);
    f
}

fn ipv6_fragment(dst: [u8; 6], src: [u8; 6], id: u32, offset: u16, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH + 48 + data.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(
        &u16::try_from(8 + data.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    f.extend_from_slice(&[44, 64]);
    f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    f.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[17, 0]);
    f.extend_from_slice(&(offset | 1).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(data);
    f
}

fn run(a: &Args) -> Res<i32> {
    let ifname = &a.pos[0];
    let datagrams: u32 = a.num("--datagrams", 1000)?;
    let fragments: usize = a.num("--fragments", 40)?;
    let size: usize = a.num("--size", 1400)?;
    let first: u32 = a.num("--first-id", 0)?;
    if size == 0 || !size.is_multiple_of(8) || size > 1400 || fragments * size > 60000 {
        return Err(usage(
            "--size must be a multiple of 8 up to 1400, and K*S at most 60000",
        ));
    }
    let fd = packet_socket(ifname, a.timeout)?;
    let (mac, _) = if_info(&fd, ifname)?;
    let dst = mac_opt(
        a,
        "--dst-mac",
        crate::args::parse_mac(GW_MAC).unwrap_or([0; 6]),
    )?;
    let data = vec![0x5a; size];
    let (mut sent, mut errors) = (0u64, 0u64);
    for d in 0..datagrams {
        let id = first.wrapping_add(d);
        for k in 0..fragments {
            let offset = u16::try_from(k * size).map_err(|_| usage("offset past 65535"))?;
            let f = if d % 2 == 0 {
                let id16 = u16::try_from(id % 65536).unwrap_or(0);
                ipv4_fragment(dst, mac, id16, offset, &data)
            } else {
                ipv6_fragment(dst, mac, id, offset, &data)
            };
            match send_frame(&fd, &f, "frag-flood") {
                Ok(None) => sent += 1,
                Ok(Some(_)) => errors += 1,
                Err(Fail::Timeout(_)) => errors += 1,
                Err(e) => return Err(e),
            }
        }
    }
    emit(&format!("sent={sent} errors={errors}"));
    Ok(0)
}
