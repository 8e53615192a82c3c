//! The L2 switch of a named network: one port per member TAP, a MAC table,
//! and the rule that a member sends only as itself (its MAC, its addresses).
//! Frames between members are forwarded as received (virtio-net header and
//! GSO state untouched); frames for the gateway, and broadcasts, go on up to
//! the engine's own L2/L3 handling.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::OwnedFd;

use slab::Slab;
use smoltcp::wire::Ipv4Packet;
use smoltcp::wire::{ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol};

use super::NetworkSetup;
use crate::api::MemberRef;
use crate::model::ipam::Ipam;
use crate::model::member::Member;
use crate::stack::{GATEWAY_MAC, TapOut};
use crate::wire::ndp::{self, LinkAddrs, Msg};

/// One member on its port.
pub(super) struct Port {
    pub member: Member,
    /// PID mode: readable when the process exits (the attachment ends).
    pub pidfd: Option<OwnedFd>,
}

impl Port {
    /// A kernel member (docs/kernel-switching.md) is reached through the
    /// uplink TAP: its port here writes to another handle on the uplink
    /// and is never read.
    pub fn is_kernel(&self) -> bool {
        self.member.bridge_port.is_some()
    }
}

/// What becomes of a frame that came in on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not a member's port (the slirp4netns form): the engine decides.
    NotAMember,
    /// Forwarded to another member, or dropped: nothing more to do.
    Done,
    /// For the gateway (addressed to it, or a broadcast the other members
    /// got too): on to ARP and L3.
    Up,
}

pub(super) struct Switch {
    pub name: String,
    pub ipam: Ipam,
    ports: HashMap<usize, Port>,
    by_mac: HashMap<EthernetAddress, usize>,
}

/// Does a frame from member `m` carry only its own addresses?
fn source_ok(m: &Member, ethertype: EthernetProtocol, payload: &[u8]) -> bool {
    match ethertype {
        EthernetProtocol::Ipv4 => {
            Ipv4Packet::new_checked(payload).is_ok_and(|p| m.owns(IpAddr::V4(p.src_addr())))
        }
        EthernetProtocol::Ipv6 => ipv6_ok(m, payload),
        EthernetProtocol::Arp => ArpPacket::new_checked(payload).is_ok_and(|p| {
            p.source_hardware_addr() == m.mac.as_bytes()
                && p.source_protocol_addr() == m.ip4.octets()
        }),
        _ => false,
    }
}

/// Does an IPv6 packet from member `m` speak only for `m`? The same rule as
/// ARP: its own addresses (its IPv6 address and its own link-local) as the
/// source, as a neighbour advertisement's target, as the target of duplicate
/// address detection (a solicitation from `::`), and its own MAC in every
/// link-layer option. Router advertisements and redirects come only from
/// the gateway; neighbour discovery never comes in fragments (RFC 6980).
fn ipv6_ok(m: &Member, payload: &[u8]) -> bool {
    let Some(c) = ndp::claims(payload) else {
        return false;
    };
    let own = |a: Ipv6Addr| m.owns(IpAddr::V6(a));
    let unspecified = c.src.is_unspecified();
    let own_lladdr = match c.lladdr {
        LinkAddrs::None => true,
        LinkAddrs::One(mac) => mac == m.mac,
        LinkAddrs::Bad => false,
    };
    // From `::` a message may carry no link-layer option (RFC 4861 §4.3).
    let bare = c.lladdr == LinkAddrs::None;
    match c.msg {
        Msg::RouterOnly | Msg::Invalid => false,
        Msg::NeighborSolicit { target } if unspecified => own(target) && bare,
        Msg::NeighborSolicit { .. } => own(c.src) && own_lladdr,
        Msg::NeighborAdvert { target } => own(c.src) && own(target) && own_lladdr,
        Msg::RouterSolicit => (own(c.src) && own_lladdr) || (unspecified && bare),
        Msg::Mld => own(c.src) || unspecified,
        Msg::Icmp | Msg::Data => own(c.src),
    }
}

impl Switch {
    pub fn new(net: NetworkSetup) -> Switch {
        Switch {
            name: net.name,
            ipam: net.ipam,
            ports: HashMap::new(),
            by_mac: HashMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.ports.iter().map(|(&p, port)| (p, &port.member))
    }

    /// Is `name` a member's name or alias?
    pub fn name_taken(&self, name: &str) -> bool {
        self.members().any(|(_, m)| m.names().any(|n| n == name))
    }

    /// The address of the member called `name` (name or alias).
    pub fn address_of(&self, name: &str) -> Option<IpAddr> {
        self.members()
            .find(|(_, m)| m.names().any(|n| n == name))
            .map(|(_, m)| IpAddr::V4(m.ip4))
    }

    /// Is the network namespace `netns` a member already?
    pub fn has_netns(&self, netns: (u64, u64)) -> bool {
        self.members().any(|(_, m)| m.netns == netns)
    }

    /// The port of the member `who` names.
    pub fn find(&self, who: &MemberRef) -> Option<usize> {
        self.members().find_map(|(p, m)| {
            let hit = match who {
                MemberRef::Name(n) => m.name.as_deref() == Some(n.as_str()),
                MemberRef::Pid(pid) => m.pid == Some(*pid),
            };
            hit.then_some(p)
        })
    }

    pub fn add(&mut self, port: usize, member: Member, pidfd: Option<OwnedFd>) {
        self.by_mac.insert(member.mac, port);
        self.ports.insert(port, Port { member, pidfd });
    }

    /// The port of the kernel member whose MAC is `mac`: a frame read from
    /// the uplink is the frame of the kernel member it names as its source
    /// (the bridge's guard let only that member send it).
    pub fn kernel_port_of(&self, mac: EthernetAddress) -> Option<usize> {
        let &port = self.by_mac.get(&mac)?;
        self.ports.get(&port)?.is_kernel().then_some(port)
    }

    pub fn is_kernel(&self, port: usize) -> bool {
        self.ports.get(&port).is_some_and(Port::is_kernel)
    }

    pub fn remove(&mut self, port: usize) -> Option<Port> {
        let gone = self.ports.remove(&port)?;
        self.by_mac.remove(&gone.member.mac);
        Some(gone)
    }

    /// A frame that came in on `port` (`frame` is all of it, virtio-net
    /// header first): forward it to the member its MAC names, or flood a
    /// broadcast to every other member.
    pub fn forward(
        &self,
        port: usize,
        eth: &EthernetFrame<&[u8]>,
        frame: &[u8],
        outs: &mut Slab<TapOut>,
    ) -> Verdict {
        let Some(from) = self.ports.get(&port) else {
            return Verdict::NotAMember;
        };
        let m = &from.member;
        // Members send only as themselves.
        if eth.src_addr() != m.mac || !source_ok(m, eth.ethertype(), eth.payload()) {
            return Verdict::Done;
        }
        let dst = eth.dst_addr();
        if dst == GATEWAY_MAC {
            return Verdict::Up;
        }
        if dst.is_unicast() {
            // Between two kernel members the bridge has delivered it already.
            if let Some(&to) = self.by_mac.get(&dst)
                && to != port
                && !(from.is_kernel() && self.is_kernel(to))
                && let Some(out) = outs.get_mut(to)
            {
                out.send_raw(frame);
            }
            return Verdict::Done;
        }
        // Broadcast/multicast: every other member, and us (ARP and
        // neighbour solicitations for the gateway). The kernel members
        // share one wire, the uplink: it gets one copy, and none when the
        // frame came from the bridge, which flooded it to them itself.
        let mut uplink_done = from.is_kernel();
        for (&p, to) in self.ports.iter().filter(|(p, _)| **p != port) {
            if to.is_kernel() {
                if uplink_done {
                    continue;
                }
                uplink_done = true;
            }
            if let Some(out) = outs.get_mut(p) {
                out.send_raw(frame);
            }
        }
        Verdict::Up
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, RawFd};

    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use smoltcp::wire::{ArpOperation, ArpRepr, EthernetRepr, IpProtocol, Ipv4Repr};

    use super::*;
    use crate::config::Ipv4Net;
    use crate::model::ipam;
    use crate::stack::Link;
    use crate::wire::VNET_HDR_LEN;

    /// A port's wire in a test: a datagram socketpair, the other end kept
    /// to read what the switch sent.
    struct Pair(OwnedFd);

    impl AsRawFd for Pair {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl Link for Pair {
        fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(nix::unistd::read(&self.0, buf)?)
        }
        fn write(&self, frame: &[u8]) -> io::Result<usize> {
            Ok(nix::unistd::write(&self.0, frame)?)
        }
        fn name(&self) -> &str {
            "pair"
        }
    }

    struct Lab {
        sw: Switch,
        outs: Slab<TapOut>,
        /// The namespace ends, by port.
        ns: Vec<OwnedFd>,
    }

    impl Lab {
        fn new(members: usize) -> Lab {
            let net4: Ipv4Net = "10.89.9.0/24".parse().unwrap();
            let plan = ipam::plan_for(net4, true);
            let mut sw = Switch::new(NetworkSetup {
                name: "t".into(),
                ipam: Ipam::new(plan),
                kernel: None,
            });
            let mut outs = Slab::new();
            let mut ns = Vec::new();
            for i in 0..members {
                let (a, b) = socketpair(
                    AddressFamily::Unix,
                    SockType::Datagram,
                    None,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                )
                .unwrap();
                let lease = sw.ipam.allocate().unwrap();
                let mac = EthernetAddress(lease.mac);
                let port = outs.insert(TapOut::new(Box::new(Pair(a)), Some(mac), 1500));
                assert_eq!(port, i);
                let member = Member {
                    name: Some(format!("m{i}")),
                    aliases: Vec::new(),
                    mac,
                    ip4: lease.ip4,
                    ip6: lease.ip6,
                    tap: "tap0".into(),
                    pid: Some(1000 + u32::try_from(i).unwrap()),
                    netns: (1, i as u64),
                    bridge_port: None,
                };
                sw.add(port, member, None);
                ns.push(b);
            }
            Lab { sw, outs, ns }
        }

        fn member(&self, port: usize) -> &Member {
            &self.sw.ports[&port].member
        }

        /// Make `ports` kernel members (on the bridge, behind the uplink).
        fn kernel(mut self, ports: &[usize]) -> Lab {
            for &p in ports {
                let port = self.sw.ports.get_mut(&p).unwrap();
                port.member.bridge_port = Some(format!("v{p}"));
            }
            self
        }

        /// What arrived at `port`'s namespace.
        fn received(&self, port: usize) -> Vec<Vec<u8>> {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = nix::unistd::read(&self.ns[port], &mut buf) {
                got.push(buf[..n].to_vec());
            }
            got
        }

        fn send(&mut self, port: usize, frame: &[u8]) -> Verdict {
            let eth = EthernetFrame::new_checked(&frame[VNET_HDR_LEN..]).unwrap();
            self.sw.forward(port, &eth, frame, &mut self.outs)
        }
    }

    /// A frame with an IPv4/UDP header from `src` (at `src_mac`) to `dst`.
    fn ipv4_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, src: Ipv4Addr) -> Vec<u8> {
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: Ipv4Addr::new(10, 89, 9, 200),
            next_header: IpProtocol::Udp,
            payload_len: 0,
            hop_limit: 64,
        };
        let mut f = vec![0u8; VNET_HDR_LEN + 14 + ip.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[VNET_HDR_LEN..]);
        EthernetRepr {
            src_addr: src_mac,
            dst_addr: dst_mac,
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut p = Ipv4Packet::new_unchecked(eth.payload_mut());
        ip.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
        f
    }

    #[test]
    fn unicast_goes_to_the_owner_of_the_mac_only() {
        let mut lab = Lab::new(3);
        let (a, b) = (lab.member(0).mac, lab.member(1).mac);
        let f = ipv4_frame(a, b, lab.member(0).ip4);
        assert_eq!(lab.send(0, &f), Verdict::Done);
        assert_eq!(lab.received(1), [f]);
        assert!(lab.received(2).is_empty() && lab.received(0).is_empty());
        // To an unknown MAC: nowhere.
        let f = ipv4_frame(a, EthernetAddress([2, 0, 0, 0, 0, 9]), lab.member(0).ip4);
        assert_eq!(lab.send(0, &f), Verdict::Done);
        assert!((0..3).all(|p| lab.received(p).is_empty()));
    }

    #[test]
    fn broadcasts_reach_the_others_and_the_gateway() {
        let mut lab = Lab::new(3);
        let f = ipv4_frame(
            lab.member(1).mac,
            EthernetAddress::BROADCAST,
            lab.member(1).ip4,
        );
        assert_eq!(lab.send(1, &f), Verdict::Up);
        assert_eq!(lab.received(0), std::slice::from_ref(&f));
        assert_eq!(lab.received(2), [f]);
        assert!(lab.received(1).is_empty());
        let to_gw = ipv4_frame(lab.member(1).mac, GATEWAY_MAC, lab.member(1).ip4);
        assert_eq!(lab.send(1, &to_gw), Verdict::Up);
        assert!((0..3).all(|p| lab.received(p).is_empty()));
    }

    #[test]
    fn kernel_members_get_from_the_switch_only_what_the_bridge_cannot_give() {
        // 0 and 1 on the bridge (their ports share the uplink), 2 and 3 on TAPs.
        let mut lab = Lab::new(4).kernel(&[0, 1]);
        let m = |lab: &Lab, p| (lab.member(p).mac, lab.member(p).ip4);
        let ((k0, k0ip), (k1, _), (t2, t2ip)) = (m(&lab, 0), m(&lab, 1), m(&lab, 2));
        // Kernel to kernel: the bridge delivered it; not again.
        assert_eq!(lab.send(0, &ipv4_frame(k0, k1, k0ip)), Verdict::Done);
        assert!((0..4).all(|p| lab.received(p).is_empty()));
        // Kernel to a TAP member: switched.
        let f = ipv4_frame(k0, t2, k0ip);
        assert_eq!(lab.send(0, &f), Verdict::Done);
        assert_eq!(lab.received(2), [f]);
        // A TAP member to a kernel member: out through the uplink.
        let f = ipv4_frame(t2, k1, t2ip);
        assert_eq!(lab.send(2, &f), Verdict::Done);
        assert_eq!(lab.received(1), [f]);
        // A kernel member's broadcast: to the TAP members only (the bridge
        // flooded it to the other kernel members).
        let f = ipv4_frame(k0, EthernetAddress::BROADCAST, k0ip);
        assert_eq!(lab.send(0, &f), Verdict::Up);
        assert!(lab.received(0).is_empty() && lab.received(1).is_empty());
        assert_eq!(lab.received(2), std::slice::from_ref(&f));
        assert_eq!(lab.received(3), [f]);
        // A TAP member's broadcast: once to the uplink, and to the others.
        let f = ipv4_frame(t2, EthernetAddress::BROADCAST, t2ip);
        assert_eq!(lab.send(2, &f), Verdict::Up);
        let uplink = lab.received(0).len() + lab.received(1).len();
        assert_eq!(uplink, 1);
        assert_eq!(lab.received(3), [f]);
        // Who a frame read from the uplink belongs to: kernel members only.
        assert_eq!(lab.sw.kernel_port_of(k1), Some(1));
        assert_eq!(lab.sw.kernel_port_of(t2), None);
        assert_eq!(
            lab.sw.kernel_port_of(EthernetAddress([2, 0, 0, 0, 0, 9])),
            None
        );
        // A forged source is dropped from a kernel member too.
        assert_eq!(lab.send(0, &ipv4_frame(k0, t2, t2ip)), Verdict::Done);
        assert!(lab.received(2).is_empty());
    }

    #[test]
    fn forged_sources_are_dropped() {
        let mut lab = Lab::new(2);
        let (a, b) = (lab.member(0).clone_id(), lab.member(1).clone_id());
        // b's IP from a's MAC; b's MAC from a's port; a non-IP ethertype.
        for f in [
            ipv4_frame(a.0, b.0, b.1),
            ipv4_frame(b.0, b.0, a.1),
            ipv4_frame(a.0, EthernetAddress::BROADCAST, b.1),
        ] {
            assert_eq!(lab.send(0, &f), Verdict::Done);
        }
        assert!(lab.received(1).is_empty());
        // ARP must name the sender's own MAC and IP.
        let arp = |mac, ip| {
            let repr = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: mac,
                source_protocol_addr: ip,
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(10, 89, 9, 2),
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf));
            buf
        };
        let m = lab.member(0);
        assert!(source_ok(m, EthernetProtocol::Arp, &arp(a.0, a.1)));
        assert!(!source_ok(m, EthernetProtocol::Arp, &arp(a.0, b.1)));
        assert!(!source_ok(m, EthernetProtocol::Arp, &arp(b.0, a.1)));
        assert!(!source_ok(m, EthernetProtocol::Unknown(0x88b5), &[]));
    }

    #[test]
    fn the_table_follows_members() {
        let mut lab = Lab::new(2);
        assert_eq!(lab.sw.find(&MemberRef::Name("m1".into())), Some(1));
        assert_eq!(lab.sw.find(&MemberRef::Pid(1000)), Some(0));
        assert!(lab.sw.name_taken("m0") && !lab.sw.name_taken("x"));
        assert_eq!(lab.sw.address_of("m1"), Some(IpAddr::V4(lab.member(1).ip4)));
        assert!(lab.sw.has_netns((1, 1)));
        let b = lab.member(1).mac;
        let gone = lab.sw.remove(1).unwrap();
        assert_eq!(gone.member.mac, b);
        // Frames for the departed MAC go nowhere.
        let f = ipv4_frame(lab.member(0).mac, b, lab.member(0).ip4);
        assert_eq!(lab.send(0, &f), Verdict::Done);
        assert!(lab.received(1).is_empty());
        assert_eq!(lab.send(1, &f), Verdict::NotAMember);
        assert!(lab.sw.remove(1).is_none());
    }

    /// Who a member is on IPv6: its MAC, global and link-local addresses.
    #[derive(Clone, Copy)]
    struct Id6 {
        mac: EthernetAddress,
        ip6: Ipv6Addr,
        ll: Ipv6Addr,
    }

    impl Lab {
        fn id6(&self, port: usize) -> Id6 {
            let m = self.member(port);
            // The kernel's EUI-64 link-local (spelled out here, not taken
            // from `Member`, so the test says what the address is).
            let [a, b, c, d, e, f] = m.mac.0;
            let ll = [
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
            ];
            Id6 {
                mac: m.mac,
                ip6: m.ip6.unwrap(),
                ll: Ipv6Addr::from(ll),
            }
        }
    }

    const ALL_NODES_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);

    /// A frame from `mac` to `dst_mac` carrying an IPv6 packet from `src`
    /// (hop limit 255, to all-nodes): `first` is the next header after the
    /// fixed one, `rest` what follows it.
    fn ipv6_frame(
        mac: EthernetAddress,
        dst_mac: EthernetAddress,
        src: Ipv6Addr,
        first: u8,
        rest: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0u8; VNET_HDR_LEN];
        f.extend_from_slice(dst_mac.as_bytes());
        f.extend_from_slice(mac.as_bytes());
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
        f.extend_from_slice(&[first, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets());
        f.extend_from_slice(rest);
        f
    }

    /// An NDP message of type `ty` with `target` (if the type has one) and
    /// one link-layer option (`opt` 1 source, 2 target) naming `ll`.
    fn ndp(ty: u8, target: Option<Ipv6Addr>, opt: Option<(u8, EthernetAddress)>) -> Vec<u8> {
        let mut b = vec![ty, 0, 0, 0, 0, 0, 0, 0];
        if let Some(t) = target {
            b.extend_from_slice(&t.octets());
        }
        if let Some((o, mac)) = opt {
            b.extend_from_slice(&[o, 1]);
            b.extend_from_slice(mac.as_bytes());
        }
        b
    }

    /// Issue 13, finding 1: a member speaks only for itself on IPv6 too.
    #[test]
    fn ipv6_neighbour_spoofing_on_named_networks() {
        let mut lab = Lab::new(3);
        let (a, m) = (lab.id6(0), lab.id6(2));
        let net4: Ipv4Net = "10.89.9.0/24".parse().unwrap();
        let gw6 = ipam::plan_for(net4, true).v6.unwrap().gateway6;
        let (na, ns, rs, ra, redirect) = (136, 135, 133, 134, 137);
        let udp = [0x9c, 0x40, 0, 9, 0, 8, 0, 0];
        let frag_first = |body: &[u8]| [&[58u8, 0, 0, 1, 0, 0, 0, 7][..], body].concat();
        let dest_opts = |body: &[u8]| [&[58u8, 0, 1, 4, 0, 0, 0, 0][..], body].concat();
        let forged: Vec<(&str, Vec<u8>)> = vec![
            (
                "NA for a's address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    58,
                    &ndp(na, Some(a.ip6), Some((2, m.mac))),
                ),
            ),
            (
                "NA for a's link-local",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(na, Some(a.ll), Some((2, m.mac))),
                ),
            ),
            (
                "NA for the gateway",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    58,
                    &ndp(na, Some(gw6), Some((2, m.mac))),
                ),
            ),
            (
                "NA for the router's link-local",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(na, Some(crate::wire::ROUTER_LL), None),
                ),
            ),
            (
                "NA for its own address with a's MAC",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    58,
                    &ndp(na, Some(m.ip6), Some((2, a.mac))),
                ),
            ),
            (
                "NA from a's address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    a.ip6,
                    58,
                    &ndp(na, Some(a.ip6), Some((2, m.mac))),
                ),
            ),
            (
                "NS from a's address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    a.ip6,
                    58,
                    &ndp(ns, Some(gw6), Some((1, m.mac))),
                ),
            ),
            (
                "NS from a's link-local",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    a.ll,
                    58,
                    &ndp(ns, Some(gw6), Some((1, m.mac))),
                ),
            ),
            (
                "NS naming a's MAC",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(ns, Some(a.ip6), Some((1, a.mac))),
                ),
            ),
            (
                "DAD for a's address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    Ipv6Addr::UNSPECIFIED,
                    58,
                    &ndp(ns, Some(a.ip6), None),
                ),
            ),
            (
                "DAD with a link-layer option",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    Ipv6Addr::UNSPECIFIED,
                    58,
                    &ndp(ns, Some(m.ip6), Some((1, m.mac))),
                ),
            ),
            (
                "UDP from another link-local",
                ipv6_frame(m.mac, a.mac, "fe80::1234".parse().unwrap(), 17, &udp),
            ),
            (
                "UDP from a's link-local",
                ipv6_frame(m.mac, a.mac, a.ll, 17, &udp),
            ),
            (
                "UDP from ::",
                ipv6_frame(m.mac, a.mac, Ipv6Addr::UNSPECIFIED, 17, &udp),
            ),
            (
                "router advertisement",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(ra, None, Some((1, m.mac))),
                ),
            ),
            (
                "redirect",
                ipv6_frame(m.mac, a.mac, m.ll, 58, &ndp(redirect, Some(gw6), None)),
            ),
            (
                "NA for a's address in a fragment",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    44,
                    &frag_first(&ndp(na, Some(a.ip6), None)),
                ),
            ),
            (
                "NA for a's address behind destination options",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    60,
                    &dest_opts(&ndp(na, Some(a.ip6), None)),
                ),
            ),
        ];
        for (what, f) in &forged {
            assert_eq!(lab.send(2, f), Verdict::Done, "{what}");
            assert!(
                lab.received(0).is_empty() && lab.received(1).is_empty(),
                "{what} was delivered"
            );
        }
        // What m may say about itself still goes through.
        let honest: Vec<(&str, Vec<u8>)> = vec![
            (
                "NA for its own address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ip6,
                    58,
                    &ndp(na, Some(m.ip6), Some((2, m.mac))),
                ),
            ),
            (
                "NA for its own link-local",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(na, Some(m.ll), Some((2, m.mac))),
                ),
            ),
            (
                "NS for a's address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(ns, Some(a.ip6), Some((1, m.mac))),
                ),
            ),
            (
                "DAD for its own address",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    Ipv6Addr::UNSPECIFIED,
                    58,
                    &ndp(ns, Some(m.ip6), None),
                ),
            ),
            (
                "router solicitation",
                ipv6_frame(
                    m.mac,
                    ALL_NODES_MAC,
                    m.ll,
                    58,
                    &ndp(rs, None, Some((1, m.mac))),
                ),
            ),
            (
                "UDP from its link-local",
                ipv6_frame(m.mac, ALL_NODES_MAC, m.ll, 17, &udp),
            ),
        ];
        for (what, f) in &honest {
            assert_eq!(lab.send(2, f), Verdict::Up, "{what}");
            assert_eq!(lab.received(0), std::slice::from_ref(f), "{what}");
            assert_eq!(lab.received(1), std::slice::from_ref(f), "{what}");
        }
    }

    impl Member {
        fn clone_id(&self) -> (EthernetAddress, Ipv4Addr) {
            (self.mac, self.ip4)
        }
    }
}
