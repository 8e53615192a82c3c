//! The seeds reach what they are for: each frame seed draws the answer it
//! asks for (so the harness's fix-ups work, DNS over TCP included), and the
//! CLI, API and spec seeds are valid inputs. `cargo test` in fuzz/ (no
//! fuzzing instrumentation needed).

use std::fs;
use std::path::{Path, PathBuf};

use smoltcp::wire::*;

use rlnet::config::AddrPlan;
use rlnet::wire::VNET_HDR_LEN;
use rlnet_fuzz::frame::Harness;

fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

/// The frames the engine sends for a frame seed.
fn run(name: &str) -> Vec<Vec<u8>> {
    let mut h = Harness::new();
    h.keep = true;
    h.run(&seed("frame", name));
    h.out
}

/// (ethertype, IP protocol, UDP/TCP source port or ICMP type, L4 payload).
fn summary(f: &[u8]) -> (EthernetProtocol, Option<IpProtocol>, u16, Vec<u8>) {
    let eth = EthernetFrame::new_checked(&f[VNET_HDR_LEN..]).unwrap();
    let (proto, l4) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let p = Ipv4Packet::new_checked(eth.payload()).unwrap();
            (p.next_header(), p.payload().to_vec())
        }
        EthernetProtocol::Ipv6 => {
            let p = Ipv6Packet::new_checked(eth.payload()).unwrap();
            (p.next_header(), p.payload().to_vec())
        }
        t => return (t, None, 0, eth.payload().to_vec()),
    };
    let (port, data) = match proto {
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(&l4[..]).unwrap();
            (u.src_port(), u.payload().to_vec())
        }
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(&l4[..]).unwrap();
            (t.src_port(), t.payload().to_vec())
        }
        _ => (u16::from(l4[0]), l4[4..].to_vec()),
    };
    (eth.ethertype(), Some(proto), port, data)
}

#[test]
fn frame_seeds_draw_their_answers() {
    let out = run("arp");
    assert!(out.iter().any(|f| summary(f).0 == EthernetProtocol::Arp));

    let out = run("ping_gateway");
    assert!(out.iter().any(|f| summary(f).2 == 0), "no echo reply");
    let out = run("ping6_gateway");
    assert!(
        out.iter().any(|f| summary(f).2 == 129),
        "no ICMPv6 echo reply"
    );

    let out = run("ndp");
    let types: Vec<u16> = out.iter().map(|f| summary(f).2).collect();
    assert!(
        types.contains(&136),
        "no neighbour advertisement: {types:?}"
    );
    assert!(types.contains(&134), "no router advertisement: {types:?}");

    // DHCP: an OFFER (53=2) and then an ACK (53=5).
    let out = run("dhcp");
    let kinds: Vec<u8> = out
        .iter()
        .map(|f| summary(f))
        .filter(|s| s.2 == 67)
        .map(|s| s.3[242])
        .collect();
    assert_eq!(kinds, [2, 5]);

    // DNS over UDP, both families: answers with the query's IDs.
    let out = run("dns_udp");
    let ids: Vec<u16> = out
        .iter()
        .map(|f| summary(f))
        .filter(|s| s.2 == 53)
        .map(|s| u16::from_be_bytes([s.3[0], s.3[1]]))
        .collect();
    assert_eq!(ids, [7, 8]);

    // The same queries in fragments: put back together, then answered.
    let out = run("dns_fragmented");
    let ids: Vec<u16> = out
        .iter()
        .map(|f| summary(f))
        .filter(|s| s.2 == 53)
        .map(|s| u16::from_be_bytes([s.3[0], s.3[1]]))
        .collect();
    assert_eq!(ids, [7, 8]);

    // DNS over TCP: handshake, query, answer (length-prefixed, ID 7).
    let out = run("dns_tcp");
    let answer = out
        .iter()
        .map(|f| summary(f))
        .find(|s| s.1 == Some(IpProtocol::Tcp) && !s.3.is_empty())
        .expect("no DNS answer over TCP");
    assert_eq!(answer.3[2..4], [0, 7], "answer {:02x?}", answer.3);

    // Refusals: a RST or ICMP error for each, never a connection.
    let out = run("refused");
    assert!(out.len() >= 3, "{} frames", out.len());
}

#[test]
fn frag_seeds_complete_or_are_forgotten() {
    use rlnet::wire::frag::{LIMITS, Push, Reassembler};
    for (name, complete) in [
        ("v4", true),
        ("v4_small_limits", true),
        ("v6_reversed", true),
        ("v6_port_leaves", false),
    ] {
        let data = seed("frag", name);
        let mut r = Reassembler::new(LIMITS);
        let mut rest = &data[1..];
        let mut done = 0;
        while let Some((&[op, _, l0, l1], tail)) = rest.split_first_chunk::<4>() {
            let (pkt, tail) = tail.split_at(usize::from(u16::from_le_bytes([l0, l1])));
            rest = tail;
            let push = match op & 3 {
                0 => r.ipv4(usize::from(op >> 2), pkt, 0),
                1 => r.ipv6(usize::from(op >> 2), pkt, 0),
                _ => {
                    r.drop_port(usize::from(op >> 2));
                    Push::Held
                }
            };
            if let Push::Complete(w) = push {
                assert!(w.len() > 3000, "{name}: {} bytes", w.len());
                done += 1;
            }
        }
        assert_eq!(done, usize::from(complete), "{name}");
        assert!(r.is_empty(), "{name}: datagrams left");
    }
}

#[test]
fn cli_seeds_parse() {
    for p in seeds("cli") {
        let data = fs::read(&p).unwrap();
        let argv = std::iter::once("rlnet".to_string()).chain(
            rlnet_fuzz::words(&data, 64)
                .into_iter()
                .map(|w| String::from_utf8(w.to_vec()).unwrap()),
        );
        let pasta = p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pasta");
        match rlnet::cli::parse_args(argv) {
            Ok(inv) if pasta => assert!(
                matches!(inv.command, rlnet::cli::Command::Pasta(_)),
                "{}: {:?}",
                p.display(),
                inv.command
            ),
            Ok(_) | Err(rlnet::cli::CliExit::Print(_)) => {}
            Err(e) => panic!("{}: {e:?}", p.display()),
        }
    }
}

#[test]
fn api_and_spec_seeds_parse() {
    let plan = AddrPlan::default();
    for p in seeds("api") {
        let data = fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_str().unwrap();
        if name == "reply_ids" {
            let reply = rlnet::api::client::parse_reply(&data).unwrap();
            assert_eq!(rlnet::api::client::reply_ids(&reply).unwrap().len(), 2);
        } else if name == "reply_error" {
            rlnet::api::client::parse_reply(&data).unwrap_err();
        } else if let Err(e) = rlnet::api::request::parse_request(&data, &plan) {
            panic!("{name}: {e:?}");
        }
    }
    for p in seeds("publish_spec") {
        let text = fs::read_to_string(&p).unwrap();
        for line in text.lines().filter(|l| !matches!(*l, "stack" | "splice")) {
            line.parse::<rlnet::forward::spec::PublishSpec>()
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}

#[test]
fn dns_seeds_are_answered_locally_or_forwarded() {
    use rlnet::dns::message::{Action, Transport, classify};
    let records = rlnet_fuzz::dns::records();
    let kinds: Vec<(String, &str)> = seeds("dns")
        .iter()
        .map(|p| {
            let q = fs::read(p).unwrap();
            let net = Some(rlnet_fuzz::dns::NET);
            let kind = match classify(&q, &records, net, Transport::Udp) {
                Action::Answer(_) => "answer",
                Action::Forward(_) => "forward",
                Action::Reject(_) => "reject",
                Action::Drop => "drop",
            };
            (p.file_name().unwrap().to_str().unwrap().to_string(), kind)
        })
        .collect();
    let want = [
        ("a_host", "answer"),
        ("aaaa_edns", "answer"),
        ("axfr", "reject"),
        ("forward", "forward"),
        ("many", "answer"),
        ("network_name", "answer"),
        ("nxdomain", "answer"),
        ("reply", "drop"),
    ];
    let want: Vec<(String, &str)> = want.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    assert_eq!(kinds, want);
}
