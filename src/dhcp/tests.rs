//! The DHCP server against byte-exact requests and replies: lease states,
//! RFC 2131's client states, option handling and malformed input.

use std::collections::BTreeMap;

use super::*;
use crate::config::Ipv4Net;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// busybox udhcpc's default parameter request list.
const UDHCPC_PRL: &[u8] = &[1, 3, 6, 12, 15, 28, 42];

fn ip(d: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 2, d)
}

fn cfg() -> DhcpConfig {
    DhcpConfig {
        plan: AddrPlan::default(),
        dns: true,
        mtu: 65520,
        lease_secs: DEFAULT_LEASE_SECS,
    }
}

fn server() -> DhcpServer {
    DhcpServer::new(cfg())
}

/// A client message, laid out like udhcpc's.
#[derive(Clone)]
struct Msg {
    op: u8,
    kind: Option<u8>,
    mac: [u8; 6],
    xid: [u8; 4],
    broadcast: bool,
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server: Option<Ipv4Addr>,
    prl: Option<Vec<u8>>,
    /// Raw option bytes inserted before END.
    extra: Vec<u8>,
}

fn msg(kind: u8, mac: [u8; 6]) -> Msg {
    Msg {
        op: BOOTREQUEST,
        kind: Some(kind),
        mac,
        xid: [0x12, 0x34, 0x56, mac[5]],
        broadcast: false,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        requested: None,
        server: None,
        prl: Some(UDHCPC_PRL.to_vec()),
        extra: Vec::new(),
    }
}

impl Msg {
    fn header(&self) -> Vec<u8> {
        let mut b = vec![self.op, 1, 6, 0];
        b.extend_from_slice(&self.xid);
        b.extend_from_slice(&[0, 3]); // secs
        b.extend_from_slice(&if self.broadcast { [0x80, 0] } else { [0, 0] });
        b.extend_from_slice(&self.ciaddr.octets());
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&self.mac);
        b.resize(FIXED_LEN, 0);
        b.extend_from_slice(&MAGIC);
        b
    }

    fn build(&self) -> Vec<u8> {
        let mut b = self.header();
        if let Some(k) = self.kind {
            b.extend_from_slice(&[53, 1, k]);
        }
        b.extend_from_slice(&[61, 7, 1]);
        b.extend_from_slice(&self.mac);
        if let Some(a) = self.requested {
            b.extend_from_slice(&[50, 4]);
            b.extend_from_slice(&a.octets());
        }
        if let Some(a) = self.server {
            b.extend_from_slice(&[54, 4]);
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&[57, 2, 0x02, 0x40]);
        b.extend_from_slice(&[60, 12]);
        b.extend_from_slice(b"udhcp 1.36.1");
        if let Some(prl) = &self.prl {
            b.extend_from_slice(&[55, u8::try_from(prl.len()).unwrap()]);
            b.extend_from_slice(prl);
        }
        b.extend_from_slice(&self.extra);
        b.push(255);
        b
    }
}

/// A reply read back by an independent (test-only) parser.
#[derive(Debug)]
struct Parsed {
    op: u8,
    xid: [u8; 4],
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: Vec<u8>,
    opts: BTreeMap<u8, Vec<u8>>,
}

impl Parsed {
    fn kind(&self) -> u8 {
        self.opts[&53][0]
    }
    fn ip(&self, code: u8) -> Option<Ipv4Addr> {
        let d = self.opts.get(&code)?;
        Some(Ipv4Addr::from(<[u8; 4]>::try_from(&d[..]).unwrap()))
    }
    fn u32(&self, code: u8) -> Option<u32> {
        let d = self.opts.get(&code)?;
        Some(u32::from_be_bytes(d[..].try_into().unwrap()))
    }
}

fn parse_reply(b: &[u8]) -> Parsed {
    assert!(b.len() >= 300, "short reply: {}", b.len());
    assert!(b.len() <= 576, "reply over 576 bytes: {}", b.len());
    assert_eq!((b[1], b[2], b[3]), (1, 6, 0));
    assert_eq!(&b[236..240], &MAGIC);
    assert!(b[44..236].iter().all(|&x| x == 0), "sname/file not zero");
    let a = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
    let mut opts = BTreeMap::new();
    let mut i = 240;
    loop {
        match b[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = usize::from(b[i + 1]);
                let old = opts.insert(code, b[i + 2..i + 2 + len].to_vec());
                assert!(old.is_none(), "option {code} twice");
                i += 2 + len;
            }
        }
    }
    assert!(b[i + 1..].iter().all(|&x| x == 0), "junk after END");
    Parsed {
        op: b[0],
        xid: b[4..8].try_into().unwrap(),
        flags: u16::from_be_bytes([b[10], b[11]]),
        ciaddr: a(12),
        yiaddr: a(16),
        siaddr: a(20),
        giaddr: a(24),
        chaddr: b[28..44].to_vec(),
        opts,
    }
}

fn send(s: &mut DhcpServer, m: &Msg, now: u64) -> Option<(DhcpReply, Parsed)> {
    let r = s.handle(&m.build(), m.mac, now)?;
    let p = parse_reply(&r.payload);
    assert_eq!(p.op, BOOTREPLY);
    assert_eq!(p.xid, m.xid);
    assert_eq!(&p.chaddr[..6], &m.mac);
    assert_eq!(p.giaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(p.siaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(p.ip(54), Some(s.cfg.plan.gateway4));
    Some((r, p))
}

/// DISCOVER + REQUEST the way udhcpc does; returns the leased address.
fn lease(s: &mut DhcpServer, mac: [u8; 6], now: u64) -> Option<Ipv4Addr> {
    let (_, offer) = send(s, &msg(msg::DISCOVER, mac), now)?;
    assert_eq!(offer.kind(), msg::OFFER);
    let mut req = msg(msg::REQUEST, mac);
    req.requested = Some(offer.yiaddr);
    req.server = Some(s.cfg.plan.gateway4);
    let (_, ack) = send(s, &req, now)?;
    assert_eq!(ack.kind(), msg::ACK);
    assert_eq!(ack.yiaddr, offer.yiaddr);
    Some(ack.yiaddr)
}

fn renew(s: &mut DhcpServer, mac: [u8; 6], addr: Ipv4Addr, now: u64) -> Parsed {
    let mut m = msg(msg::REQUEST, mac);
    m.ciaddr = addr;
    send(s, &m, now).unwrap().1
}

/// Deterministic xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    #[allow(clippy::cast_possible_truncation)] // the remainder is below n, a usize
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_be_bytes();
        // Locally administered unicast, never MAC_A/MAC_B.
        [b[0] & 0xfc | 0x02, b[1], b[2], b[3], b[4], b[5] | 1]
    }
}

fn assert_bounded(s: &DhcpServer) {
    assert_eq!(s.slots.len(), POOL_SIZE);
    assert!(s.slots.capacity() <= POOL_SIZE);
    for (i, slot) in s.slots.iter().enumerate() {
        assert_eq!(slot.addr, ip(15 + u8::try_from(i).unwrap()));
    }
}

#[test]
fn udhcpc_sequence_leases_n_plus_15_with_all_options() {
    let mut s = server();
    let (r, offer) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 100).unwrap();
    assert_eq!(offer.kind(), msg::OFFER);
    assert_eq!(offer.yiaddr, ip(15));
    assert_eq!(offer.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.flags, 0);
    // No broadcast flag: unicast to the offered address at the client's MAC.
    assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
    assert_eq!(s.lease(MAC_A, 100), None, "an offer is not a lease");

    let mut req = msg(msg::REQUEST, MAC_A);
    req.requested = Some(ip(15));
    req.server = Some(GW);
    let (r, ack) = send(&mut s, &req, 101).unwrap();
    assert_eq!(ack.kind(), msg::ACK);
    assert_eq!(ack.yiaddr, ip(15));
    assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
    for p in [&offer, &ack] {
        assert_eq!(p.u32(51), Some(86400));
        assert_eq!(p.u32(58), Some(43200));
        assert_eq!(p.u32(59), Some(75600));
        assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(p.ip(3), Some(GW));
        assert_eq!(p.ip(6), Some(ip(3)));
        assert_eq!(p.ip(28), Some(ip(255)));
        // Not in udhcpc's list: left out.
        assert!(!p.opts.contains_key(&26));
        // RFC 6842 echo.
        assert_eq!(p.opts[&61], [&[1u8][..], &MAC_A].concat());
        let keys: Vec<u8> = p.opts.keys().copied().collect();
        assert_eq!(keys, [1, 3, 6, 28, 51, 53, 54, 58, 59, 61]);
    }
    assert_eq!(s.lease(MAC_A, 101), Some(ip(15)));
    assert_eq!(s.lease(MAC_A, 101 + 86400), None);
    assert_eq!(s.dropped(), 0);
}

#[test]
fn options_follow_config_and_request_list() {
    let mut s = DhcpServer::new(DhcpConfig {
        dns: false,
        mtu: 1500,
        lease_secs: 3600,
        ..cfg()
    });
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.prl = None;
    let (_, p) = send(&mut s, &m, 0).unwrap();
    assert!(!p.opts.contains_key(&6), "no DNS without the stub");
    assert_eq!(p.opts[&26], 1500u16.to_be_bytes());
    assert_eq!(p.ip(28), Some(ip(255)));
    assert_eq!(p.u32(51), Some(3600));
    assert_eq!(p.u32(58), Some(1800));
    assert_eq!(p.u32(59), Some(3150));

    // Asked for the MTU only: the essentials come anyway.
    m.prl = Some(vec![26]);
    let (_, p) = send(&mut s, &m, 0).unwrap();
    let keys: Vec<u8> = p.opts.keys().copied().collect();
    assert_eq!(keys, [1, 3, 26, 51, 53, 54, 58, 59, 61]);

    // An MTU that option 26 cannot carry is left out.
    for mtu in [0, 67, 65536, u32::MAX] {
        let mut s = DhcpServer::new(DhcpConfig { mtu, ..cfg() });
        m.prl = None;
        let (_, p) = send(&mut s, &m, 0).unwrap();
        assert!(!p.opts.contains_key(&26), "mtu {mtu}");
    }
}

#[test]
fn broadcast_flag_gets_broadcast_replies() {
    let mut s = server();
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.broadcast = true;
    let (r, p) = send(&mut s, &m, 0).unwrap();
    assert_eq!((r.dst_ip, r.dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
    assert_eq!(p.flags, 0x8000);
    m.kind = Some(msg::REQUEST);
    m.requested = Some(p.yiaddr);
    m.server = Some(GW);
    let (r, p) = send(&mut s, &m, 0).unwrap();
    assert_eq!(p.kind(), msg::ACK);
    assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST);
}

#[test]
fn second_client_gets_next_address_and_pool_has_16() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(16)));
    for i in 2..16u8 {
        assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 0), Some(ip(15 + i)));
    }
    // Pool exhausted: silence, and nothing grows.
    assert!(send(&mut s, &msg(msg::DISCOVER, [2, 0, 0, 0, 2, 0]), 0).is_none());
    assert_bounded(&s);
    // Existing clients still renew.
    assert_eq!(renew(&mut s, MAC_B, ip(16), 10).kind(), msg::ACK);
    // A discover from a bound client offers its address and keeps the lease.
    let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 20).unwrap();
    assert_eq!(p.yiaddr, ip(16));
    assert_eq!(s.lease(MAC_B, 1000), Some(ip(16)));
    assert_eq!(s.dropped(), 0);
}

#[test]
fn renew_and_rebind_extend_the_lease() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    // RENEWING at T1: unicast, ciaddr echoed, no option 50.
    let mut m = msg(msg::REQUEST, MAC_A);
    m.ciaddr = ip(15);
    let (r, p) = send(&mut s, &m, 43200).unwrap();
    assert_eq!(p.kind(), msg::ACK);
    assert_eq!((p.yiaddr, p.ciaddr), (ip(15), ip(15)));
    assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
    assert_eq!(s.lease(MAC_A, 86400 + 1), Some(ip(15)));
    // REBINDING (broadcast flag): ciaddr still wins (RFC 2131 §4.1).
    m.broadcast = true;
    let (r, p) = send(&mut s, &m, 80000).unwrap();
    assert_eq!(p.kind(), msg::ACK);
    assert_eq!(r.dst_ip, ip(15));
    assert_eq!(s.lease(MAC_A, 80000 + 86399), Some(ip(15)));
    assert_eq!(s.lease(MAC_A, 80000 + 86400), None);
}

#[test]
fn expired_client_regains_its_address() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    let later = 86400 + 5;
    assert_eq!(s.lease(MAC_A, later), None);
    // A new client takes a never-leased address, not A's old one.
    assert_eq!(lease(&mut s, MAC_B, later), Some(ip(16)));
    assert_eq!(lease(&mut s, MAC_A, later + 1), Some(ip(15)));
    // Renewing after expiry (nobody took it) is fine too.
    let p = renew(&mut s, MAC_A, ip(15), later + 2 * 86400);
    assert_eq!(p.kind(), msg::ACK);
}

#[test]
fn release_frees_and_address_is_reused() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    let mut rel = msg(msg::RELEASE, MAC_A);
    rel.ciaddr = ip(15);
    rel.server = Some(GW);
    assert!(send(&mut s, &rel, 10).is_none());
    assert_eq!(s.lease(MAC_A, 10), None);
    // Same client again: same address.
    assert_eq!(lease(&mut s, MAC_A, 20), Some(ip(15)));
    assert!(send(&mut s, &rel, 30).is_none());
    // Fill every other address; the released one is reused by another client.
    for i in 1..16u8 {
        assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 40), Some(ip(15 + i)));
    }
    assert_eq!(lease(&mut s, MAC_B, 50), Some(ip(15)));
    assert_eq!(s.dropped(), 0);
}

#[test]
fn release_of_someone_elses_address_is_ignored() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    let mut rel = msg(msg::RELEASE, MAC_B);
    rel.ciaddr = ip(15);
    assert!(send(&mut s, &rel, 1).is_none());
    // Same with a spoofed chaddr from B's frame: dropped before that.
    let mut spoof = msg(msg::RELEASE, MAC_A);
    spoof.ciaddr = ip(15);
    assert!(s.handle(&spoof.build(), MAC_B, 2).is_none());
    assert_eq!(s.lease(MAC_A, 3), Some(ip(15)));
    // Release naming another server: not for us.
    let mut other = msg(msg::RELEASE, MAC_A);
    other.ciaddr = ip(15);
    other.server = Some(ip(99));
    assert!(send(&mut s, &other, 4).is_none());
    assert_eq!(s.lease(MAC_A, 5), Some(ip(15)));
}

#[test]
fn nak_for_addresses_we_cannot_give() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
    for (want, selecting) in [
        (ip(100), false),                       // in the subnet, not in the pool
        (Ipv4Addr::new(192, 168, 1, 5), false), // another network
        (ip(15), false),                        // B's lease (INIT-REBOOT)
        (ip(15), true),                         // B's lease (SELECTING)
        (ip(31), true),                         // just past the pool
        (ip(2), false),                         // the gateway
    ] {
        let mut m = msg(msg::REQUEST, MAC_A);
        m.requested = Some(want);
        m.server = selecting.then_some(GW);
        let (r, p) = send(&mut s, &m, 1).unwrap();
        assert_eq!(p.kind(), msg::NAK, "{want}");
        assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!((r.dst_ip, r.dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
        let keys: Vec<u8> = p.opts.keys().copied().collect();
        assert_eq!(keys, [53, 54, 56, 61]);
    }
    // A renewal of an address that is someone else's.
    let mut m = msg(msg::REQUEST, MAC_A);
    m.ciaddr = ip(15);
    assert_eq!(send(&mut s, &m, 2).unwrap().1.kind(), msg::NAK);
    assert_eq!(s.lease(MAC_B, 3), Some(ip(15)));
    assert_eq!(s.lease(MAC_A, 3), None);
    // INIT-REBOOT for a free pool address is simply granted.
    let mut m = msg(msg::REQUEST, MAC_A);
    m.requested = Some(ip(20));
    assert_eq!(send(&mut s, &m, 4).unwrap().1.kind(), msg::ACK);
    assert_eq!(s.lease(MAC_A, 5), Some(ip(20)));
}

#[test]
fn request_naming_another_server_withdraws_our_offer() {
    let mut s = server();
    let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
    assert_eq!(p.yiaddr, ip(15));
    let mut m = msg(msg::REQUEST, MAC_A);
    m.requested = Some(ip(15));
    m.server = Some(Ipv4Addr::new(10, 0, 2, 254));
    assert!(send(&mut s, &m, 1).is_none());
    assert_eq!(s.slots[0].state, State::Free);
    // The address goes straight to the next client.
    let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 2).unwrap();
    assert_eq!(p.yiaddr, ip(15));
}

#[test]
fn requests_without_an_address_are_dropped() {
    let mut s = server();
    let mut m = msg(msg::REQUEST, MAC_A);
    assert!(send(&mut s, &m, 0).is_none());
    m.server = Some(GW);
    assert!(send(&mut s, &m, 0).is_none());
    assert_eq!(s.dropped(), 2);
    // DECLINE without option 50 as well.
    assert!(send(&mut s, &msg(msg::DECLINE, MAC_A), 0).is_none());
    assert_eq!(s.dropped(), 3);
}

#[test]
fn offers_are_held_briefly_then_reused() {
    let mut s = server();
    let (_, a) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
    let (_, b) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 1).unwrap();
    assert_eq!((a.yiaddr, b.yiaddr), (ip(15), ip(16)));
    // A repeats its DISCOVER: same offer.
    let (_, a2) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 2).unwrap();
    assert_eq!(a2.yiaddr, ip(15));
    // A's offer lapses; a third client gets .15.
    let c = [2, 0, 0, 0, 0, 0xcc];
    assert_eq!(lease(&mut s, c, 2 + OFFER_HOLD_SECS), Some(ip(15)));
    // A's late REQUEST for .15 is NAKed (now leased); B's offer has
    // lapsed too, so a new round gives A .16.
    let mut m = msg(msg::REQUEST, MAC_A);
    m.requested = Some(ip(15));
    m.server = Some(GW);
    assert_eq!(send(&mut s, &m, 13).unwrap().1.kind(), msg::NAK);
    assert_eq!(lease(&mut s, MAC_A, 14), Some(ip(16)));
}

#[test]
fn discover_honours_a_free_requested_address() {
    let mut s = server();
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.requested = Some(ip(22));
    assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(22));
    // Taken or outside the pool: the usual choice.
    let mut m = msg(msg::DISCOVER, MAC_B);
    m.requested = Some(ip(22));
    assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(15));
    let mut m = msg(msg::DISCOVER, [2, 0, 0, 0, 0, 0xcc]);
    m.requested = Some(ip(100));
    assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(16));
}

#[test]
fn client_moving_to_another_address_frees_the_old_one() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    let mut m = msg(msg::REQUEST, MAC_A);
    m.requested = Some(ip(20));
    assert_eq!(send(&mut s, &m, 1).unwrap().1.kind(), msg::ACK);
    assert_eq!(s.lease(MAC_A, 2), Some(ip(20)));
    let held = s.slots.iter().filter(|x| x.held_by(MAC_A)).count();
    assert_eq!(held, 1);
    assert_eq!(lease(&mut s, MAC_B, 3), Some(ip(15)));
}

#[test]
fn decline_takes_the_address_out_for_a_while() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    let mut d = msg(msg::DECLINE, MAC_A);
    d.requested = Some(ip(15));
    d.server = Some(GW);
    assert!(send(&mut s, &d, 1).is_none());
    assert_eq!(s.lease(MAC_A, 1), None);
    assert_eq!(lease(&mut s, MAC_A, 2), Some(ip(16)));
    // Nobody gets .15, not even by asking.
    let mut m = msg(msg::REQUEST, MAC_B);
    m.requested = Some(ip(15));
    assert_eq!(send(&mut s, &m, 3).unwrap().1.kind(), msg::NAK);
    assert_eq!(lease(&mut s, MAC_B, 4), Some(ip(17)));
    // Back in the pool afterwards.
    let c = [2, 0, 0, 0, 0, 0xcc];
    assert_eq!(lease(&mut s, c, 1 + DECLINE_HOLD_SECS), Some(ip(15)));
    // Declining an address one does not hold changes nothing.
    let mut d = msg(msg::DECLINE, MAC_B);
    d.requested = Some(ip(16));
    assert!(send(&mut s, &d, 400).is_none());
    assert_eq!(s.lease(MAC_A, 400), Some(ip(16)));
}

#[test]
fn inform_gets_configuration_without_lease() {
    let mut s = server();
    let mut m = msg(msg::INFORM, MAC_A);
    m.ciaddr = ip(100);
    let (r, p) = send(&mut s, &m, 0).unwrap();
    assert_eq!(p.kind(), msg::ACK);
    assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(p.ciaddr, ip(100));
    assert_eq!((r.dst_ip, r.dst_mac), (ip(100), MAC_A));
    for code in [51, 58, 59] {
        assert!(!p.opts.contains_key(&code));
    }
    assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(p.ip(3), Some(GW));
    assert_eq!(p.ip(6), Some(ip(3)));
    assert!(s.slots.iter().all(|x| x.state == State::Free));
    // Without ciaddr: broadcast.
    m.ciaddr = Ipv4Addr::UNSPECIFIED;
    let (r, _) = send(&mut s, &m, 0).unwrap();
    assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST);
}

#[test]
fn cidr_plan_leases_from_network_plus_15() {
    let net4 = Ipv4Net {
        addr: Ipv4Addr::new(10, 0, 135, 128),
        prefix: 25,
    };
    let mut s = DhcpServer::new(DhcpConfig {
        plan: AddrPlan::new(net4, false),
        ..cfg()
    });
    let a = |d: u8| Ipv4Addr::new(10, 0, 135, d);
    let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
    assert_eq!(p.yiaddr, a(143));
    assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 128)));
    assert_eq!(p.ip(3), Some(a(130)));
    assert_eq!(p.ip(54), Some(a(130)));
    assert_eq!(p.ip(6), Some(a(131)));
    assert_eq!(p.ip(28), Some(a(255)));
    assert_eq!(lease(&mut s, MAC_A, 0), Some(a(143)));
    for i in 1..16u8 {
        assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 0), Some(a(143 + i)));
    }
    assert!(send(&mut s, &msg(msg::DISCOVER, MAC_B), 0).is_none());
    // The old default network's addresses are someone else's.
    let mut m = msg(msg::REQUEST, MAC_B);
    m.requested = Some(ip(15));
    assert_eq!(send(&mut s, &m, 0).unwrap().1.kind(), msg::NAK);
}

#[test]
fn odd_plans_never_lease_network_broadcast_gateway_or_dns() {
    // A pool start too close to the end of the network.
    let mut plan = AddrPlan {
        dhcp_start4: ip(250),
        dns4: ip(252),
        ..AddrPlan::default()
    };
    let mut s = DhcpServer::new(DhcpConfig { plan, ..cfg() });
    let addrs: Vec<Ipv4Addr> = s.slots.iter().map(|x| x.addr).collect();
    assert_eq!(addrs, [ip(250), ip(251), ip(253), ip(254)]);
    for i in 0..4u8 {
        assert!(lease(&mut s, [2, 0, 0, 0, 1, i], 0).is_some());
    }
    assert!(send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).is_none());
    // Pool start at the top of the address space: no overflow.
    plan.dhcp_start4 = Ipv4Addr::new(255, 255, 255, 250);
    let s = DhcpServer::new(DhcpConfig { plan, ..cfg() });
    assert!(s.slots.is_empty());
}

#[test]
fn spoofed_or_bad_senders_are_dropped() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    // B sends A's chaddr: renewing A's lease, stealing its offer, anything.
    for kind in [msg::DISCOVER, msg::REQUEST, msg::INFORM] {
        let mut m = msg(kind, MAC_A);
        m.ciaddr = ip(15);
        assert!(s.handle(&m.build(), MAC_B, 1).is_none());
    }
    // Group and null source MACs, even when chaddr agrees.
    for mac in [[0xff; 6], [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
        assert!(s.handle(&msg(msg::DISCOVER, mac).build(), mac, 1).is_none());
    }
    assert_eq!(s.dropped(), 6);
    assert_eq!(s.lease(MAC_A, 1), Some(ip(15)));
}

#[test]
fn wrong_header_fields_are_dropped() {
    let mut s = server();
    let good = msg(msg::DISCOVER, MAC_A).build();
    let cases: [(usize, u8); 7] = [
        (0, BOOTREPLY), // op
        (0, 0),
        (1, 6),      // htype: IEEE 802
        (2, 16),     // hlen
        (236, 0x64), // magic
        (24, 10),    // giaddr: a relay
        (27, 1),
    ];
    for (at, v) in cases {
        let mut b = good.clone();
        b[at] = v;
        assert!(s.handle(&b, MAC_A, 0).is_none(), "byte {at} = {v}");
    }
    // Server-side and unknown message types.
    for kind in [msg::OFFER, msg::ACK, msg::NAK, 0, 9, 200] {
        assert!(send(&mut s, &msg(kind, MAC_A), 0).is_none(), "type {kind}");
    }
    // No message type: BOOTP.
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.kind = None;
    assert!(send(&mut s, &m, 0).is_none());
    assert_eq!(s.dropped(), 14);
    assert!(s.slots.iter().all(|x| x.state == State::Free));
    // The untouched message still works.
    assert!(s.handle(&good, MAC_A, 0).is_some());
}

#[test]
fn every_truncation_is_dropped_without_effect() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
    let mut req = msg(msg::REQUEST, MAC_A);
    req.requested = Some(ip(16));
    req.server = Some(GW);
    let mut rel = msg(msg::RELEASE, MAC_B);
    rel.ciaddr = ip(15);
    let mut inform = msg(msg::INFORM, MAC_A);
    inform.ciaddr = ip(100);
    for m in [msg(msg::DISCOVER, MAC_A), req, rel, inform] {
        let full = m.build();
        for len in 0..full.len() {
            let before = s.slots.clone();
            assert!(s.handle(&full[..len], m.mac, 1).is_none(), "len {len}");
            assert_eq!(s.slots, before, "len {len}");
        }
    }
    assert_eq!(s.lease(MAC_B, 1), Some(ip(15)));
    assert!(s.slots[1..].iter().all(|x| x.state == State::Free));
}

#[test]
fn malformed_and_overflowing_options() {
    let mut s = server();
    let with_extra = |extra: &[u8]| {
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.extra = extra.to_vec();
        m.build()
    };
    let base = msg(msg::DISCOVER, MAC_A).build();
    let end = base.len() - 1;
    let bad: Vec<Vec<u8>> = vec![
        // An option whose length runs past the payload (with and without END).
        [&base[..end], &[43, 200, 1, 2, 3, 255][..]].concat(),
        [&base[..end], &[43, 255][..]].concat(),
        // An option code as the very last byte, no length.
        [&base[..end], &[43][..]].concat(),
        // No END at all, with and without trailing PADs.
        base[..end].to_vec(),
        [&base[..end], &[0; 100][..]].concat(),
        // Bad lengths for options we read.
        with_extra(&[53, 2, 1, 1]),
        with_extra(&[53, 0]),
        with_extra(&[53, 1, 3]), // a second, conflicting type
        with_extra(&[53, 1, 1]), // even the same type twice
        with_extra(&[50, 3, 10, 0, 2]),
        with_extra(&[50, 5, 10, 0, 2, 20, 0]),
        with_extra(&[54, 0]),
        with_extra(&[61, 1, 1]),
    ];
    for b in &bad {
        assert!(s.handle(b, MAC_A, 0).is_none(), "{:?}", &b[240..]);
    }
    assert_eq!(s.dropped(), bad.len() as u64);
    assert!(s.slots.iter().all(|x| x.state == State::Free));

    // Well-formed options beyond the 312-byte field (RFC 2131 §2 sizes
    // the field for replies, not requests): served, the extra ignored.
    let mut big = Vec::new();
    for _ in 0..4 {
        big.extend_from_slice(&[43, 255]);
        big.extend_from_slice(&[0xa5; 255]);
    }
    let b = with_extra(&big);
    assert!(b.len() - 240 > 312 * 3);
    let r = s.handle(&b, MAC_A, 0).unwrap();
    parse_reply(&r.payload);
    // Bytes after END (dhclient pads to 300; here junk) are not read.
    let b = [&base[..], &[53, 1, 7, 43, 200][..]].concat();
    assert_eq!(
        parse_reply(&s.handle(&b, MAC_A, 0).unwrap().payload).kind(),
        msg::OFFER
    );
    // A second requested address or parameter list: the first wins.
    let mut m = msg(msg::DISCOVER, MAC_B);
    m.requested = Some(ip(25));
    m.prl = None;
    m.extra = vec![50, 4, 10, 0, 2, 26, 55, 1, 26];
    let p = send(&mut s, &m, 0).unwrap().1;
    assert_eq!(p.yiaddr, ip(25));
    assert!(p.opts.contains_key(&26));
    // A maximal client identifier is echoed and the reply stays in 576 bytes.
    let mut m = msg(msg::DISCOVER, [2, 0, 0, 0, 0, 0xcc]);
    let mut id = vec![61, 255, 0xff];
    id.extend_from_slice(&[0x5a; 254]);
    m.extra = id.clone();
    // (the builder's own option 61 comes first and wins; drop it)
    let mut b = m.build();
    let at = 243;
    assert_eq!(&b[at..at + 2], &[61, 7]);
    b.drain(at..at + 9);
    let p = parse_reply(&s.handle(&b, m.mac, 0).unwrap().payload);
    assert_eq!(p.opts[&61], id[2..]);
}

#[test]
fn option_overload_is_not_followed() {
    let mut s = server();
    // Message type only inside `file`, announced by option 52: dropped.
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.kind = None;
    m.extra = vec![52, 1, 3];
    let mut b = m.build();
    b[108..111].copy_from_slice(&[53, 1, 1]);
    b[111] = 255;
    b[44..47].copy_from_slice(&[53, 1, 1]);
    b[47] = 255;
    assert!(s.handle(&b, MAC_A, 0).is_none());
    // Overload announced, sname/file full of junk and bogus options: the
    // real options are served and the reply's sname/file stay empty.
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.extra = vec![52, 1, 3];
    let mut b = m.build();
    for (i, x) in b[44..236].iter_mut().enumerate() {
        *x = if i % 2 == 0 { 50 } else { 255 };
    }
    let r = s.handle(&b, MAC_A, 0).unwrap();
    let p = parse_reply(&r.payload);
    assert_eq!((p.kind(), p.yiaddr), (msg::OFFER, ip(15)));
    // Overload with a bad length is malformed like any other option.
    let mut m = msg(msg::DISCOVER, MAC_A);
    m.extra = vec![52, 9];
    assert!(send(&mut s, &m, 0).is_none());
}

#[test]
fn random_inputs_never_panic_and_state_stays_bounded() {
    let mut s = server();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let templates: Vec<Vec<u8>> = {
        let mut req = msg(msg::REQUEST, MAC_A);
        req.requested = Some(ip(15));
        req.server = Some(GW);
        let mut renew = msg(msg::REQUEST, MAC_A);
        renew.ciaddr = ip(15);
        let mut rel = msg(msg::RELEASE, MAC_A);
        rel.ciaddr = ip(15);
        let mut dec = msg(msg::DECLINE, MAC_A);
        dec.requested = Some(ip(15));
        vec![
            msg(msg::DISCOVER, MAC_A).build(),
            req.build(),
            renew.build(),
            rel.build(),
            dec.build(),
            msg(msg::INFORM, MAC_A).build(),
        ]
    };
    let mut replies = 0;
    for round in 0..30_000u64 {
        let now = round / 100;
        let b = match rng.below(3) {
            // Pure noise.
            0 => {
                let len = rng.below(700);
                (0..len).map(|_| rng.byte()).collect()
            }
            // A valid header, random options.
            1 => {
                let mut b = templates[0][..240].to_vec();
                let len = rng.below(400);
                b.extend((0..len).map(|_| match rng.below(8) {
                    0 => 255,
                    1 => 53,
                    2 => 1 + u8::try_from(rng.below(8)).unwrap(),
                    3 => 4,
                    _ => rng.byte(),
                }));
                b
            }
            // A valid message with a few bytes mutated or cut.
            _ => {
                let mut b = templates[rng.below(templates.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.byte();
                }
                if rng.below(4) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            }
        };
        if let Some(r) = s.handle(&b, MAC_A, now) {
            replies += 1;
            let p = parse_reply(&r.payload);
            assert!(matches!(p.kind(), msg::OFFER | msg::ACK | msg::NAK));
            assert_eq!(&p.chaddr[..6], &MAC_A);
        }
        assert_bounded(&s);
        assert!(s.slots.iter().filter(|x| x.held_by(MAC_A)).count() <= 1);
    }
    // Mutations of valid messages do get through sometimes.
    assert!(replies > 100, "{replies}");
    // And the client still gets its lease afterwards.
    let later = 30_000 / 100 + DECLINE_HOLD_SECS + 86400;
    assert!(lease(&mut s, MAC_A, later).is_some());
    assert!(lease(&mut s, MAC_B, later).is_some());
}

#[test]
fn discover_storm_cannot_starve_a_client() {
    let mut s = server();
    // A client leased before the storm.
    assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
    let mut rng = Rng(42);
    let mut answered = 0;
    for i in 0..10_000u64 {
        let mac = rng.mac();
        let now = i / 1000; // ten seconds of 1000 DISCOVERs/s
        if send(&mut s, &msg(msg::DISCOVER, mac), now).is_some() {
            answered += 1;
        }
        assert_bounded(&s);
        // The real client's interleaved DISCOVER/REQUEST: the storm keeps
        // taking its offer away, its REQUEST succeeds anyway.
        if i == 5000 {
            let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), now).unwrap();
            for _ in 0..100 {
                send(&mut s, &msg(msg::DISCOVER, rng.mac()), now).unwrap();
            }
            assert!(!s.slots.iter().any(|x| x.held_by(MAC_A)));
            let mut m = msg(msg::REQUEST, MAC_A);
            m.requested = Some(p.yiaddr);
            m.server = Some(GW);
            assert_eq!(send(&mut s, &m, now).unwrap().1.kind(), msg::ACK);
        }
    }
    // Every DISCOVER got an offer (the oldest one rotates).
    assert_eq!(answered, 10_000);
    let bound = |s: &DhcpServer| {
        s.slots
            .iter()
            .filter(|x| matches!(x.state, State::Bound { .. }))
            .count()
    };
    assert_eq!(bound(&s), 2);
    // The leases survived the storm and renew.
    let a = s.lease(MAC_A, 10).unwrap();
    assert_eq!(renew(&mut s, MAC_A, a, 10).kind(), msg::ACK);
    assert_eq!(renew(&mut s, MAC_B, ip(15), 10).kind(), msg::ACK);
    // A client arriving right after the storm gets a lease at once.
    let c = [2, 0, 0, 0, 0, 0xcc];
    assert!(lease(&mut s, c, 10).is_some());
}

#[test]
fn bound_storm_keeps_known_client_and_recovers_after_expiry() {
    let mut s = server();
    assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
    // 10k clients completing DISCOVER + REQUEST: the 15 free addresses
    // go, the rest hear nothing (or a NAK).
    let mut rng = Rng(7);
    let mut leased = 0;
    for i in 0..10_000u64 {
        let now = 1 + i / 1000;
        if lease(&mut s, rng.mac(), now).is_some() {
            leased += 1;
        }
        assert_bounded(&s);
    }
    assert_eq!(leased, 15);
    // The known client keeps renewing through it.
    assert_eq!(renew(&mut s, MAC_A, ip(15), 20).kind(), msg::ACK);
    // A newcomer waits for leases to expire, then gets one.
    assert!(lease(&mut s, MAC_B, 30).is_none());
    assert_eq!(s.lease(MAC_B, 30), None);
    assert!(lease(&mut s, MAC_B, 11 + 86400).is_some());
    assert_eq!(s.lease(MAC_A, 11 + 86400), Some(ip(15)));
    // A's lease lapses too (no renewal); it regains .15.
    assert_eq!(lease(&mut s, MAC_A, 20 + 2 * 86400), Some(ip(15)));
}
