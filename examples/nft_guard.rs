//! Loads rlnet's kernel-bridge guard (model/guard.rs → wire/nft.rs →
//! sys/nft.rs) into the current network namespace, for checking it by hand
//! with `bench/kernel-bridge.sh check` (`RLNET_GUARD=path/to/nft_guard`).
//!
//!   usage: nft_guard PORT MAC IPV4 [IPV6|-] [PORT MAC IPV4 [IPV6|-]] ...
//!
//! The link-local address is the EUI-64 one of MAC, as rlnet configures it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;

use rlnet::model::guard::{self, GuardMember};
use rlnet::sys::nft::apply;
use rlnet::wire::nft::batch;

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 2,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

fn member(args: &[String]) -> Option<GuardMember> {
    let mac = parse_mac(args.get(1)?)?;
    Some(GuardMember {
        port: args.first()?.clone(),
        mac,
        ip4: args.get(2)?.parse::<Ipv4Addr>().ok()?,
        ip6: match args.get(3)?.as_str() {
            "-" => None,
            s => Some(s.parse().ok()?),
        },
        link_local: link_local(mac),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ops = guard::table();
    for chunk in args.chunks(4) {
        let Some(m) = member(chunk) else {
            eprintln!("usage: nft_guard PORT MAC IPV4 IPV6|- ... (bad: {chunk:?})");
            return ExitCode::from(2);
        };
        match guard::try_add_member(&m) {
            Ok(add) => ops.extend(add),
            Err(e) => {
                eprintln!("nft_guard: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if args.is_empty() {
        eprintln!("usage: nft_guard PORT MAC IPV4 IPV6|- ...");
        return ExitCode::from(2);
    }
    match apply(&batch(&ops, 1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nft_guard: {e}");
            ExitCode::FAILURE
        }
    }
}
