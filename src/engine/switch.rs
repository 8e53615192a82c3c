//! The L2 switch of a named network: one port per member TAP, a MAC table,
//! and the rule that a member sends only as itself (its MAC, its addresses).
//! Frames between members are forwarded as received (virtio-net header and
//! GSO state untouched); frames for the gateway, and broadcasts, go on up to
//! the engine's own L2/L3 handling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

use slab::Slab;
use smoltcp::wire::{ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol};
use smoltcp::wire::{Ipv4Packet, Ipv6Packet};

use super::NetworkSetup;
use crate::api::MemberRef;
use crate::model::ipam::Ipam;
use crate::model::member::Member;
use crate::stack::{GATEWAY_MAC, TapOut};

/// One member on its port.
pub(super) struct Port {
    pub member: Member,
    /// PID mode: readable when the process exits (the attachment ends).
    pub pidfd: Option<OwnedFd>,
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
        EthernetProtocol::Ipv6 => {
            Ipv6Packet::new_checked(payload).is_ok_and(|p| m.owns(IpAddr::V6(p.src_addr())))
        }
        EthernetProtocol::Arp => ArpPacket::new_checked(payload).is_ok_and(|p| {
            p.source_hardware_addr() == m.mac.as_bytes()
                && p.source_protocol_addr() == m.ip4.octets()
        }),
        _ => false,
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
            if let Some(&to) = self.by_mac.get(&dst)
                && to != port
                && let Some(out) = outs.get_mut(to)
            {
                out.send_raw(frame);
            }
            return Verdict::Done;
        }
        // Broadcast/multicast: every other member, and us (ARP and
        // neighbour solicitations for the gateway).
        for &p in self.ports.keys().filter(|p| **p != port) {
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
                };
                sw.add(port, member, None);
                ns.push(b);
            }
            Lab { sw, outs, ns }
        }

        fn member(&self, port: usize) -> &Member {
            &self.sw.ports[&port].member
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

    impl Member {
        fn clone_id(&self) -> (EthernetAddress, Ipv4Addr) {
            (self.mac, self.ip4)
        }
    }
}
