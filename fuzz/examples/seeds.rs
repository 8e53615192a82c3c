//! Writes the seed corpora: `cargo run --example seeds` (from fuzz/) fills
//! seeds/<target>/ with a few valid inputs per target. Deterministic; the
//! files are committed, this regenerates them after a format change.

use std::fs;
use std::path::Path;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::*;

use rlnet_fuzz::frame::{self, Op, flag};

const NS_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 100);
const NS_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    };
    for (name, ops) in frame_seeds() {
        let ops: Vec<Op<'_>> = ops
            .iter()
            .map(|(f, b)| match b {
                None => Op::Turn,
                Some(b) => Op::Frame {
                    flags: *f,
                    bytes: b,
                },
            })
            .collect();
        write("frame", name, &frame::encode(&ops));
    }
    for (name, q) in dns_seeds() {
        write("dns", name, &q);
    }
    for (name, d) in dhcp_seeds() {
        write("dhcp", name, &d);
    }
    for (name, d) in frag_seeds() {
        write("frag", name, &d);
    }
    let api = [
        (
            "add_hostfwd",
            r#"{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "0.0.0.0", "host_port": 8080, "guest_port": 80}}"#,
        ),
        ("list_hostfwd", r#"{"execute": "list_hostfwd"}"#),
        (
            "remove_hostfwd",
            r#"{"execute": "remove_hostfwd", "arguments": {"id": 1}}"#,
        ),
        (
            "add_publish",
            r#"{"execute": "add_publish", "arguments": {"publish": ["127.0.0.1:8080:80/tcp", "[::1]:9000-9009:9000-9009/udp"], "mode": "splice"}}"#,
        ),
        (
            "remove_publish",
            r#"{"execute": "remove_publish", "arguments": {"ids": [2, 3]}}"#,
        ),
        ("status", "{\"execute\":\"status\"}\n"),
        (
            "attach",
            r#"{"execute": "attach", "arguments": {"pid": 1234, "name": "web", "aliases": ["www"], "publish": ["8080:80"]}}"#,
        ),
        (
            "detach",
            r#"{"execute": "detach", "arguments": {"name": "web"}}"#,
        ),
        (
            "shutdown",
            r#"{"execute": "shutdown", "arguments": {"force": true}}"#,
        ),
        ("reply_ids", r#"{"return": {"ids": [1, 2]}}"#),
        ("reply_error", r#"{"error": {"desc": "bad request"}}"#),
    ];
    for (name, text) in api {
        write("api", name, text.as_bytes());
    }
    let specs = [
        ("simple", "8080:80"),
        ("udp_range", "8000-8010:9000-9010/udp"),
        ("v4", "127.0.0.1:8080:80/tcp"),
        ("v6", "[::1]:8443:443"),
        (
            "several",
            "8080:80\n[::]:53:53/udp\n0.0.0.0:2222:22\nstack\nsplice",
        ),
    ];
    for (name, text) in specs {
        write("publish_spec", name, text.as_bytes());
    }
    let argv: &[(&str, &[&str])] = &[
        (
            "compat",
            &[
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "1234",
                "tap0",
            ],
        ),
        (
            "compat_netns",
            &[
                "--netns-type=path",
                "-c",
                "-e",
                "3",
                "-r",
                "4",
                "/run/netns/x",
                "tap0",
            ],
        ),
        (
            "compat_api",
            &[
                "-a",
                "/tmp/api.sock",
                "--enable-ipv6",
                "--cidr",
                "10.0.3.0/24",
                "--userns-path=/proc/1/ns/user",
                "1234",
            ],
        ),
        (
            "compat_publish",
            &[
                "-p",
                "8080:80",
                "--publish-mode",
                "splice",
                "--dns-upstream",
                "1.1.1.1",
                "--add-host",
                "db:10.0.2.50",
                "1234",
            ],
        ),
        (
            "run",
            &["run", "--publish", "8080:80", "--", "sh", "-c", "true"],
        ),
        (
            "run_network",
            &["run", "--network", "net1", "--name", "web", "--", "true"],
        ),
        (
            "port_add",
            &[
                "port",
                "add",
                "-a",
                "/tmp/api.sock",
                "127.0.0.1:8080:80/tcp",
            ],
        ),
        ("port_ls", &["port", "ls", "-a", "/tmp/api.sock"]),
        (
            "network_create",
            &[
                "network",
                "create",
                "--subnet",
                "10.89.0.0/24",
                "--internal",
                "net1",
            ],
        ),
        (
            "attach",
            &[
                "attach",
                "--network",
                "net1",
                "--name",
                "web",
                "--alias",
                "www",
                "-p",
                "8080:80",
                "1234",
            ],
        ),
        ("detach", &["detach", "--network", "net1", "web"]),
        ("help", &["--help"]),
        // Podman 5/6 and RootlessKit 2 calling rlnet as pasta
        // (docs/compat.md), through `rlnet pasta`.
        (
            "pasta_podman",
            &[
                "pasta",
                "--config-net",
                "--dns-forward",
                "169.254.1.1",
                "-t",
                "none",
                "-u",
                "none",
                "-T",
                "none",
                "-U",
                "none",
                "--no-map-gw",
                "--quiet",
                "--netns",
                "/run/user/1000/netns/netns-1",
                "--map-guest-addr",
                "169.254.1.2",
            ],
        ),
        (
            "pasta_rootlesskit",
            &[
                "pasta",
                "--foreground",
                "--stderr",
                "--ns-ifname=tap0",
                "--mtu=65520",
                "--no-dhcp",
                "--no-ra",
                "--address=10.0.2.100",
                "--netmask=24",
                "--gateway=10.0.2.2",
                "--dns-forward=10.0.2.3",
                "--ipv4-only",
                "--tcp-ports=auto",
                "--udp-ports=auto",
                "1234",
            ],
        ),
        (
            "pasta_command",
            &[
                "pasta",
                "-fq",
                "-a",
                "192.0.2.5/24",
                "-a",
                "2001:db8::5",
                "-g",
                "192.0.2.1",
                "--map-host-loopback",
                "192.0.2.9",
                "-t",
                "8080-8081:80-81",
                "-u",
                "5353",
                "-T",
                "auto",
                "--",
                "sh",
                "-c",
                "true",
            ],
        ),
    ];
    for (name, words) in argv {
        write("cli", name, words.join("\0").as_bytes());
    }
}

fn ipv4(dst: Ipv4Address, proto: IpProtocol, body: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: NS_IP,
        dst_addr: dst,
        next_header: proto,
        payload_len: body.len(),
        hop_limit: 64,
    };
    let mut p = vec![0u8; 20 + body.len()];
    repr.emit(
        &mut Ipv4Packet::new_unchecked(&mut p[..]),
        &ChecksumCapabilities::default(),
    );
    p[20..].copy_from_slice(body);
    p
}

fn ipv6(src: Ipv6Address, dst: Ipv6Address, proto: IpProtocol, hop: u8, body: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: body.len(),
        hop_limit: hop,
    };
    let mut p = vec![0u8; 40 + body.len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut p[..]));
    p[40..].copy_from_slice(body);
    p
}

/// A UDP header and payload (checksum filled in by the harness).
fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 8 + payload.len()];
    let mut u = UdpPacket::new_unchecked(&mut b[..]);
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len(u16::try_from(8 + payload.len()).unwrap());
    b[8..].copy_from_slice(payload);
    b
}

fn tcp(sport: u16, dport: u16, control: TcpControl, ack: bool, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: TcpSeqNumber(1000),
        ack_number: ack.then_some(TcpSeqNumber(0)),
        window_len: 64240,
        window_scale: (control == TcpControl::Syn).then_some(7),
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: control == TcpControl::Syn,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    let ip = IpAddress::Ipv4(NS_IP);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        &ip,
        &ip,
        &ChecksumCapabilities::ignored(),
    );
    b
}

fn icmp4_echo(dst: Ipv4Address) -> Vec<u8> {
    let repr = Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 1,
        data: b"rlnet fuzz",
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(&mut b[..]),
        &ChecksumCapabilities::ignored(),
    );
    ipv4(dst, IpProtocol::Icmp, &b)
}

fn icmp6(src: Ipv6Address, dst: Ipv6Address, hop: u8, repr: Icmpv6Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut b[..]),
        &ChecksumCapabilities::ignored(),
    );
    ipv6(src, dst, IpProtocol::Icmpv6, hop, &b)
}

/// A DNS query (one question, class IN), optionally with an OPT record.
fn dns_query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)]);
    for label in name.split('.') {
        m.push(u8::try_from(label.len()).unwrap());
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if edns {
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    }
    m
}

/// A DHCP client message: `kind` plus the given options.
fn dhcp_msg(mac: [u8; 6], kind: u8, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 240];
    m[..4].copy_from_slice(&[1, 1, 6, 0]);
    m[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    m[28..34].copy_from_slice(&mac);
    m[236..240].copy_from_slice(&[99, 130, 83, 99]);
    m.extend_from_slice(&[53, 1, kind]);
    m.extend_from_slice(extra);
    m.extend_from_slice(&[55, 4, 1, 3, 6, 26, 255]);
    m
}

const MAC: [u8; 6] = [0x0e, 0xd4, 0x18, 0xd9, 0x38, 0xfb];

type Seed = (&'static str, Vec<(u8, Option<Vec<u8>>)>);

fn frame_seeds() -> Vec<Seed> {
    let gw = Ipv4Address::new(10, 0, 2, 2);
    let dns = Ipv4Address::new(10, 0, 2, 3);
    let far = Ipv4Address::new(198, 18, 0, 1);
    let gw6 = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    let dns6 = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
    let ll = Ipv6Address::new(0xfe80, 0, 0, 0, 0xcd4, 0x18ff, 0xfed9, 0x38fb);
    let all_routers = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let solicited = Ipv6Address::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);

    let arp = {
        let repr = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(MAC),
            source_protocol_addr: NS_IP,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: gw,
        };
        let mut p = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut p[..]));
        p
    };
    let discover = {
        let mut p = ipv4(
            Ipv4Address::BROADCAST,
            IpProtocol::Udp,
            &udp(68, 67, &dhcp_msg(MAC, 1, &[])),
        );
        Ipv4Packet::new_unchecked(&mut p[..]).set_src_addr(Ipv4Address::UNSPECIFIED);
        p
    };
    let request = {
        let mut p = ipv4(
            Ipv4Address::BROADCAST,
            IpProtocol::Udp,
            &udp(
                68,
                67,
                &dhcp_msg(MAC, 3, &[50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2]),
            ),
        );
        Ipv4Packet::new_unchecked(&mut p[..]).set_src_addr(Ipv4Address::UNSPECIFIED);
        p
    };
    let q = dns_query(7, "host.containers.internal", 1, false);
    let q6 = dns_query(8, "db.example", 28, true);
    let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let ns = icmp6(
        ll,
        solicited,
        255,
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: gw6,
            lladdr: Some(RawHardwareAddress::from_bytes(&MAC)),
        }),
    );
    let rs = icmp6(
        ll,
        all_routers,
        255,
        Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit {
            lladdr: Some(RawHardwareAddress::from_bytes(&MAC)),
        }),
    );
    let echo6 = icmp6(
        NS_IP6,
        gw6,
        64,
        Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"rlnet fuzz",
        },
    );
    let fragment = {
        let mut p = ipv4(far, IpProtocol::Udp, &udp(4000, 9, &[0x55; 64]));
        let mut h = Ipv4Packet::new_unchecked(&mut p[..]);
        h.set_more_frags(true);
        h.set_ident(77);
        p
    };
    // The DNS queries again, cut into 16-byte fragments by rlnet's own
    // `fragment`: the stub answers once they are put back together.
    let cut = |pkt: Vec<u8>, mtu: usize| {
        let mut v = Vec::new();
        rlnet::wire::frag::fragment(&pkt, mtu, 99, |p| v.push((0, Some(p.to_vec())))).unwrap();
        v
    };
    let mut dns_fragmented = cut(ipv4(dns, IpProtocol::Udp, &udp(5355, 53, &q)), 36);
    dns_fragmented.extend(cut(
        ipv6(NS_IP6, dns6, IpProtocol::Udp, 64, &udp(5356, 53, &q6)),
        64,
    ));
    let g = 0; // generated vnet and Ethernet headers, checksums filled in
    let b = flag::BROADCAST;
    let turn = (0, None);
    vec![
        ("arp", vec![(b, Some(arp))]),
        ("ping_gateway", vec![(g, Some(icmp4_echo(gw)))]),
        ("ping6_gateway", vec![(g, Some(echo6))]),
        ("ndp", vec![(b, Some(ns)), (b, Some(rs))]),
        (
            "dhcp",
            vec![(b, Some(discover)), turn.clone(), (b, Some(request))],
        ),
        (
            "dns_udp",
            vec![
                (g, Some(ipv4(dns, IpProtocol::Udp, &udp(5353, 53, &q)))),
                (
                    g,
                    Some(ipv6(NS_IP6, dns6, IpProtocol::Udp, 64, &udp(5354, 53, &q6))),
                ),
            ],
        ),
        (
            "dns_tcp",
            vec![
                (
                    g,
                    Some(ipv4(
                        dns,
                        IpProtocol::Tcp,
                        &tcp(40000, 53, TcpControl::Syn, false, &[]),
                    )),
                ),
                turn.clone(),
                (
                    flag::FIX_SEQ,
                    Some(ipv4(
                        dns,
                        IpProtocol::Tcp,
                        &tcp(40000, 53, TcpControl::None, true, &[]),
                    )),
                ),
                (
                    flag::FIX_SEQ,
                    Some(ipv4(
                        dns,
                        IpProtocol::Tcp,
                        &tcp(40000, 53, TcpControl::Psh, true, &framed),
                    )),
                ),
                turn.clone(),
                turn.clone(),
                (
                    flag::FIX_SEQ,
                    Some(ipv4(
                        dns,
                        IpProtocol::Tcp,
                        &tcp(40000, 53, TcpControl::Fin, true, &[]),
                    )),
                ),
                turn,
            ],
        ),
        (
            "refused",
            vec![
                (
                    g,
                    Some(ipv4(
                        far,
                        IpProtocol::Tcp,
                        &tcp(40001, 80, TcpControl::Syn, false, &[]),
                    )),
                ),
                (
                    g,
                    Some(ipv4(
                        gw,
                        IpProtocol::Tcp,
                        &tcp(40002, 22, TcpControl::Syn, false, &[]),
                    )),
                ),
                (g, Some(ipv4(far, IpProtocol::Udp, &udp(4000, 9, b"x")))),
                (g, Some(icmp4_echo(far))),
            ],
        ),
        ("fragment", vec![(g, Some(fragment))]),
        ("dns_fragmented", dns_fragmented),
    ]
}

/// Whole UDP datagrams (IPv4 and IPv6) cut by rlnet's own `fragment`, as
/// frag-target records (op, wait, length, packet); out of order in one.
fn frag_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dst4 = Ipv4Address::new(198, 18, 0, 1);
    let dst6 = Ipv6Address::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let v4 = ipv4(dst4, IpProtocol::Udp, &udp(4000, 9, &payload));
    let v6 = ipv6(NS_IP6, dst6, IpProtocol::Udp, 64, &udp(4000, 9, &payload));
    let pieces = |pkt: &[u8], mtu: usize| {
        let mut v = Vec::new();
        rlnet::wire::frag::fragment(pkt, mtu, 7, |p| v.push(p.to_vec())).unwrap();
        v
    };
    let records = |mode: u8, op: u8, pieces: &[Vec<u8>]| {
        let mut r = vec![mode];
        for p in pieces {
            r.extend_from_slice(&[op, 1]);
            r.extend_from_slice(&u16::try_from(p.len()).unwrap().to_le_bytes());
            r.extend_from_slice(p);
        }
        r
    };
    let mut reversed = pieces(&v6, 1280);
    reversed.reverse();
    vec![
        ("v4", records(0, 0, &pieces(&v4, 1500))),
        ("v4_small_limits", records(1, 0, &pieces(&v4, 576))),
        ("v6_reversed", records(0, 1, &reversed)),
        // Port 1, then the port leaves (op 3 | port 1 << 2).
        ("v6_port_leaves", {
            let mut r = records(1, 1 | 4, &pieces(&v6, 1280)[..1]);
            r.extend_from_slice(&[3 | 4, 0, 0, 0]);
            r
        }),
    ]
}

fn dns_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut axfr = dns_query(3, "rlnet.internal", 252, false);
    axfr[2] = 0;
    let mut reply = dns_query(9, "example.com", 1, false);
    reply[2] |= 0x80;
    reply[7] = 1;
    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    vec![
        ("a_host", dns_query(1, "host.containers.internal", 1, false)),
        ("aaaa_edns", dns_query(2, "db.example", 28, true)),
        ("many", dns_query(4, "many.example", 28, false)),
        ("nxdomain", dns_query(5, "nope.rlnet.internal", 1, true)),
        ("network_name", dns_query(6, "web", 1, false)),
        ("forward", dns_query(7, "example.com", 1, true)),
        ("axfr", axfr),
        ("reply", reply),
    ]
}

fn dhcp_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let rec = |sel: u8, wait: u8, msg: &[u8]| {
        let mut r = vec![sel, wait];
        r.extend_from_slice(&u16::try_from(msg.len()).unwrap().to_le_bytes());
        r.extend_from_slice(msg);
        r
    };
    let req = [50, 4, 10, 0, 2, 15, 54, 4, 10, 0, 2, 2];
    let mut full = rec(0x80, 0, &dhcp_msg(MAC, 1, &[]));
    full.extend(rec(0x80, 1, &dhcp_msg(MAC, 3, &req)));
    full.extend(rec(0x80, 200, &dhcp_msg(MAC, 3, &req)));
    full.extend(rec(0x80, 1, &dhcp_msg(MAC, 7, &[])));
    let mut other = rec(
        0x80,
        0,
        &dhcp_msg([2, 0, 0, 0, 0, 9], 1, &[61, 7, 1, 2, 0, 0, 0, 0, 9]),
    );
    other.extend(rec(
        0x80,
        0,
        &dhcp_msg([2, 0, 0, 0, 0, 9], 4, &[50, 4, 10, 0, 2, 15]),
    ));
    other.extend(rec(0x80, 0, &dhcp_msg([2, 0, 0, 0, 0, 9], 8, &[])));
    vec![("lease", full), ("decline_inform", other)]
}
