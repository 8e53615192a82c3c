//! The engine in-process, as in tests/inmem.rs: a datagram socketpair
//! stands in for the TAP and the fuzz input plays the namespace.
//!
//! Nothing a fuzz input does can reach a real address: the engine runs with
//! the policy of an `--internal` network (`internal: true`, no host
//! loopback), so every TCP, UDP and ICMP destination is refused or dropped
//! before a host socket exists (`Policy::outbound` never returns `Host`),
//! and the DNS stub has forwarding off (names it does not own get REFUSED;
//! its only upstream is 127.0.0.1:53, and it is never asked). No port is
//! published and there is no API socket. The sockets the engine opens are
//! the socketpair, its epoll set and, for DNS over TCP, unix socketpairs.
//!
//! Input: a sequence of operations, each either one frame sent to the
//! engine or one turn of its loop ([`Op`]); after the last operation the
//! loop turns until it is quiet (at most [`FINAL_TURNS`] times). Every
//! frame the engine emits is checked ([`check_output`]): well-formed
//! headers, lengths that match, checksums that hold.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use mio::Events;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use smoltcp::wire::{
    ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet,
    Ipv6Packet, TcpPacket, UdpPacket, checksum,
};

use rlnet::config::AddrPlan;
use rlnet::dns::DnsConfig;
use rlnet::engine::{Engine, Setup};
use rlnet::nat::Outbound;
use rlnet::nat::policy::{Decision, Policy};
use rlnet::stack::GATEWAY_MAC;
use rlnet::sys::tap::Tap;
use rlnet::wire::{FRAME_BUF, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};

pub const NS_MAC: EthernetAddress = EthernetAddress([0x0e, 0xd4, 0x18, 0xd9, 0x38, 0xfb]);
/// The link MTU: small enough that large TCP answers become GSO frames.
pub const MTU: u32 = 1500;
/// Frames per input; more are ignored.
pub const MAX_FRAMES: usize = 64;
/// Turns the input may ask for.
pub const MAX_TURNS: usize = 16;
/// Turns after the last operation, until no frame comes out.
pub const FINAL_TURNS: usize = 4;

/// The operation byte that means "one turn of the loop".
pub const OP_TURN: u8 = 0xff;
/// Frame flags (the operation byte of a frame).
pub mod flag {
    /// The bytes start with their own virtio-net header (else a zero one,
    /// or one with NEEDS_CSUM, is put in front).
    pub const RAW_VNET: u8 = 0x01;
    /// The bytes start with their own Ethernet header (else one from the
    /// namespace's MAC to the gateway, typed by the IP version nibble, ARP
    /// for anything else).
    pub const RAW_ETH: u8 = 0x02;
    /// The generated Ethernet header goes to the broadcast address.
    pub const BROADCAST: u8 = 0x04;
    /// Set the IPv4 total length / IPv6 payload length and the UDP length
    /// to what was sent.
    pub const FIX_LEN: u8 = 0x08;
    /// TCP: take sequence and acknowledgement numbers from what the engine
    /// last sent on this connection (its initial sequence number is random).
    pub const FIX_SEQ: u8 = 0x10;
    /// Leave checksums as they are (else IPv4 header and TCP, UDP, ICMP and
    /// ICMPv6 checksums are filled in; fuzzing builds of smoltcp accept any
    /// checksum, other builds do not).
    pub const KEEP_CSUM: u8 = 0x20;
    /// A generated virtio-net header says NEEDS_CSUM (the L4 checksum is
    /// partial, as the kernel hands over locally generated packets).
    pub const PARTIAL_CSUM: u8 = 0x40;
}

/// One step of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Frame { flags: u8, bytes: &'a [u8] },
    Turn,
}

/// Decodes an input: `0xff` is a turn; any other byte is a frame's flags,
/// followed by its length (u16, little-endian) and that many bytes (fewer
/// if the input ends).
pub fn ops(mut data: &[u8]) -> Vec<Op<'_>> {
    let mut out = Vec::new();
    while let Some((&op, rest)) = data.split_first() {
        if op == OP_TURN {
            out.push(Op::Turn);
            data = rest;
            continue;
        }
        let Some((len, rest)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        out.push(Op::Frame { flags: op, bytes });
        data = rest;
    }
    out
}

/// Encodes operations (for seeds and tests).
pub fn encode(ops: &[Op<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Turn => out.push(OP_TURN),
            Op::Frame { flags, bytes } => {
                assert_ne!(flags, OP_TURN, "0xff is the turn operation");
                let len = u16::try_from(bytes.len()).expect("a frame fits 64 KiB");
                out.push(flags);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// The engine's configuration: an internal network (see the module doc).
pub fn setup(tap: Tap) -> Setup {
    let plan = AddrPlan::default();
    let policy = Policy {
        plan,
        host_loopback: false,
        dns: true,
        internal: true,
    };
    Setup {
        tap: Some(tap),
        network: None,
        ns_mac: Some(NS_MAC.0),
        mtu: MTU,
        policy,
        outbound: Outbound::default(),
        signals: None,
        target: None,
        exit_fd: None,
        child: None,
        publish: Vec::new(),
        publish_mode: Default::default(),
        ns: None,
        factory: None,
        unprivileged_start: 1024,
        api: None,
        watch: None,
        pasta: None,
        dns: Some(DnsConfig {
            plan,
            resolv_conf: PathBuf::from("/nonexistent/resolv.conf"),
            upstream: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))],
            hosts: vec![
                ("db.example".into(), IpAddr::V4(Ipv4Addr::new(10, 0, 2, 50))),
                (
                    "db.example".into(),
                    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50)),
                ),
            ],
        }),
    }
}

/// Asserts the promise of [`setup`]: no destination leads to a host socket.
pub fn assert_confined(policy: &Policy) {
    let probes = [
        "10.0.2.2:80",
        "10.0.2.3:80",
        "198.18.0.1:80",
        "8.8.8.8:53",
        "[fd00::2]:80",
        "[2001:db8::1]:443",
    ];
    for p in probes {
        let d = policy.outbound(p.parse().expect("probe address"));
        assert!(
            !matches!(d, Decision::Host(_)),
            "{p} would reach the host: {d:?}"
        );
    }
}

/// The engine and the namespace's end of its TAP.
pub struct Harness {
    engine: Engine,
    ns: OwnedFd,
    events: Events,
    /// Per TCP connection (engine port, namespace port): the engine's next
    /// sequence number and its acknowledgement, from its last segment.
    tcp: HashMap<(u16, u16), (i32, Option<i32>)>,
    buf: Vec<u8>,
    frames: usize,
    turns: usize,
    /// Frames the engine sent (for tests).
    pub out: Vec<Vec<u8>>,
    /// Keep the frames in `out` (tests); fuzzing only checks them.
    pub keep: bool,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let s = setup(Tap::from_fd(a, "fuzz0".into(), true));
        assert_confined(&s.policy);
        let engine = Engine::new(s).expect("engine");
        Harness {
            engine,
            ns: b,
            events: Events::with_capacity(64),
            tcp: HashMap::new(),
            buf: vec![0; FRAME_BUF + 16],
            frames: 0,
            turns: 0,
            out: Vec::new(),
            keep: false,
        }
    }

    /// Runs one input.
    pub fn run(&mut self, data: &[u8]) {
        for op in ops(data) {
            match op {
                Op::Frame { flags, bytes } if self.frames < MAX_FRAMES => {
                    self.frames += 1;
                    self.send(flags, bytes);
                }
                Op::Turn if self.turns < MAX_TURNS => {
                    self.turns += 1;
                    self.turn();
                }
                _ => {}
            }
        }
        for _ in 0..FINAL_TURNS {
            if self.turn() == 0 {
                break;
            }
        }
    }

    /// One frame into the TAP, built from `bytes` as `flags` say.
    pub fn send(&mut self, flags: u8, bytes: &[u8]) {
        let f = build(flags, bytes, &self.tcp);
        // A full socket drops the frame, as a full TAP queue would.
        let _ = nix::unistd::write(&self.ns, &f);
    }

    /// One turn of the loop; returns how many frames came out.
    pub fn turn(&mut self) -> usize {
        self.engine
            .turn(&mut self.events, Some(Duration::ZERO))
            .expect("engine turn");
        let mut n = 0;
        while let Ok(len) = nix::unistd::read(&self.ns, &mut self.buf) {
            n += 1;
            let f = &self.buf[..len];
            if let Some((ports, next, ack)) = check_output(f) {
                self.tcp.insert(ports, (next, ack));
            }
            if self.keep {
                self.out.push(f.to_vec());
            }
        }
        n
    }
}

/// The frame `flags` and `bytes` describe (see [`flag`]).
pub fn build(flags: u8, bytes: &[u8], tcp: &HashMap<(u16, u16), (i32, Option<i32>)>) -> Vec<u8> {
    let mut f = Vec::with_capacity(VNET_HDR_LEN + 14 + bytes.len());
    if flags & flag::RAW_VNET == 0 {
        let vnet = VnetHdr {
            flags: if flags & flag::PARTIAL_CSUM != 0 {
                VNET_F_NEEDS_CSUM
            } else {
                0
            },
            ..VnetHdr::default()
        };
        let mut h = [0u8; VNET_HDR_LEN];
        vnet.emit(&mut h);
        f.extend_from_slice(&h);
    }
    if flags & flag::RAW_ETH == 0 {
        let (vnet_len, body) = if flags & flag::RAW_VNET != 0 {
            (
                VNET_HDR_LEN.min(bytes.len()),
                &bytes[VNET_HDR_LEN.min(bytes.len())..],
            )
        } else {
            (0, bytes)
        };
        f.extend_from_slice(&bytes[..vnet_len]);
        let dst = if flags & flag::BROADCAST != 0 {
            EthernetAddress::BROADCAST
        } else {
            GATEWAY_MAC
        };
        let ethertype = match body.first().map(|b| b >> 4) {
            Some(4) => EthernetProtocol::Ipv4,
            Some(6) => EthernetProtocol::Ipv6,
            _ => EthernetProtocol::Arp,
        };
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&NS_MAC.0);
        f.extend_from_slice(&u16::from(ethertype).to_be_bytes());
        f.extend_from_slice(body);
    } else {
        f.extend_from_slice(bytes);
    }
    if let Some(eth) = f.get_mut(VNET_HDR_LEN..) {
        fix_ip(flags, eth, tcp);
    }
    f
}

/// The fix-ups `flags` ask for, on an Ethernet frame.
fn fix_ip(flags: u8, eth: &mut [u8], tcp: &HashMap<(u16, u16), (i32, Option<i32>)>) {
    let Some(ethertype) = eth.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])) else {
        return;
    };
    let ip = &mut eth[14..];
    let fix_csum = flags & flag::KEEP_CSUM == 0;
    let (proto, src, dst, l4) = match EthernetProtocol::from(ethertype) {
        EthernetProtocol::Ipv4 => {
            let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else {
                return;
            };
            if flags & flag::FIX_LEN != 0 {
                let len = u16::try_from(p.as_ref().len()).unwrap_or(u16::MAX);
                p.set_total_len(len);
                let Ok(q) = Ipv4Packet::new_checked(p.into_inner()) else {
                    return;
                };
                p = q;
            }
            if fix_csum {
                p.fill_checksum();
            }
            let hl = usize::from(p.header_len());
            let end = usize::from(p.total_len()).min(p.as_ref().len());
            let (proto, src, dst) = (
                p.next_header(),
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
            );
            let Some(l4) = ip.get_mut(hl..end.max(hl)) else {
                return;
            };
            (proto, src, dst, l4)
        }
        EthernetProtocol::Ipv6 => {
            let Ok(mut p) = Ipv6Packet::new_checked(&mut *ip) else {
                return;
            };
            if flags & flag::FIX_LEN != 0 {
                let len = p.as_ref().len().saturating_sub(40);
                p.set_payload_len(u16::try_from(len).unwrap_or(u16::MAX));
            }
            let end = (40 + usize::from(p.payload_len())).min(p.as_ref().len());
            let (proto, src, dst) = (
                p.next_header(),
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
            );
            let Some(l4) = ip.get_mut(40..end.max(40)) else {
                return;
            };
            (proto, src, dst, l4)
        }
        _ => return,
    };
    let len = l4.len();
    match proto {
        IpProtocol::Tcp => {
            let Ok(mut t) = TcpPacket::new_checked(l4) else {
                return;
            };
            if flags & flag::FIX_SEQ != 0
                && let Some(&(next, ack)) = tcp.get(&(t.dst_port(), t.src_port()))
            {
                if let Some(ack) = ack {
                    t.set_seq_number(smoltcp::wire::TcpSeqNumber(ack));
                }
                t.set_ack_number(smoltcp::wire::TcpSeqNumber(next));
            }
            if fix_csum {
                t.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Udp => {
            let Ok(mut u) = UdpPacket::new_checked(l4) else {
                return;
            };
            if flags & flag::FIX_LEN != 0 {
                u.set_len(u16::try_from(len).unwrap_or(u16::MAX));
            }
            if fix_csum {
                u.fill_checksum(&src, &dst);
            }
        }
        IpProtocol::Icmp if fix_csum => {
            if let Ok(mut i) = smoltcp::wire::Icmpv4Packet::new_checked(l4) {
                i.fill_checksum();
            }
        }
        IpProtocol::Icmpv6 if fix_csum => {
            if let (Ok(mut i), IpAddress::Ipv6(s), IpAddress::Ipv6(d)) =
                (smoltcp::wire::Icmpv6Packet::new_checked(l4), src, dst)
            {
                i.fill_checksum(&s, &d);
            }
        }
        _ => {}
    }
}

/// Checks a frame the engine sent into the namespace; for a TCP segment
/// returns (its ports, the next sequence number after it, its ACK).
///
/// Panics (a fuzz finding) when the frame is not what rlnet promises to
/// emit: a virtio-net header, an Ethernet header from the gateway's MAC,
/// then ARP or an IP packet whose lengths match the frame and whose
/// checksums hold (TCP and UDP ones completed as the kernel completes a
/// NEEDS_CSUM frame).
pub fn check_output(f: &[u8]) -> Option<((u16, u16), i32, Option<i32>)> {
    assert!(f.len() <= FRAME_BUF, "frame of {} bytes", f.len());
    let vnet = VnetHdr::parse(f).expect("frame shorter than the virtio-net header");
    let eth = EthernetFrame::new_checked(&f[VNET_HDR_LEN..]).expect("Ethernet header");
    assert_eq!(eth.src_addr(), GATEWAY_MAC, "frame not from the gateway");
    let payload = eth.payload();
    let (proto, src, dst, l4) = match eth.ethertype() {
        EthernetProtocol::Arp => {
            ArpPacket::new_checked(payload).expect("ARP packet");
            return None;
        }
        EthernetProtocol::Ipv4 => {
            let p = Ipv4Packet::new_checked(payload).expect("IPv4 header");
            assert_eq!(
                usize::from(p.total_len()),
                payload.len(),
                "IPv4 total length"
            );
            let hl = usize::from(p.header_len());
            assert_eq!(checksum::data(&payload[..hl]), !0, "IPv4 header checksum");
            (
                p.next_header(),
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
                &payload[hl..],
            )
        }
        EthernetProtocol::Ipv6 => {
            let p = Ipv6Packet::new_checked(payload).expect("IPv6 header");
            assert_eq!(
                usize::from(p.payload_len()) + 40,
                payload.len(),
                "IPv6 payload length"
            );
            (
                p.next_header(),
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
                &payload[40..],
            )
        }
        other => panic!("engine sent ethertype {other}"),
    };
    let mut l4 = l4.to_vec();
    if vnet.flags & VNET_F_NEEDS_CSUM != 0 {
        // What the kernel does with the frame: sum from csum_start (counted
        // from the Ethernet header) to the end, store the complement.
        let l4_start = f.len() - VNET_HDR_LEN - l4.len();
        let start = usize::from(vnet.csum_start);
        assert_eq!(start, l4_start, "csum_start is not the L4 header");
        let at = usize::from(vnet.csum_offset);
        assert!(at + 2 <= l4.len(), "csum_offset past the segment");
        let sum = !checksum::data(&l4);
        l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    let len = u32::try_from(l4.len()).expect("L4 length");
    let pseudo = checksum::pseudo_header(&src, &dst, proto, len);
    let full = checksum::combine(&[pseudo, checksum::data(&l4)]);
    match proto {
        IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Icmpv6 => {
            assert_eq!(full, !0, "{proto} checksum");
        }
        IpProtocol::Icmp => assert_eq!(checksum::data(&l4), !0, "ICMP checksum"),
        other => panic!("engine sent IP protocol {other}"),
    }
    if proto == IpProtocol::Udp {
        let u = UdpPacket::new_checked(&l4[..]).expect("UDP header");
        assert_eq!(usize::from(u.len()), l4.len(), "UDP length");
    }
    if proto != IpProtocol::Tcp {
        return None;
    }
    let t = TcpPacket::new_checked(&l4[..]).expect("TCP header");
    let data_len = l4.len() - usize::from(t.header_len());
    let next = t
        .seq_number()
        .0
        .wrapping_add(i32::try_from(data_len).ok()?)
        .wrapping_add(i32::from(t.syn()) + i32::from(t.fin()));
    let ack = t.ack().then(|| t.ack_number().0);
    Some(((t.src_port(), t.dst_port()), next, ack))
}
