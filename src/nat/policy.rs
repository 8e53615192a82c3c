//! Where may a packet from the namespace go? Pure decisions on addresses,
//! applied before any host socket exists. The only way to reach the host's
//! loopback is the gateway mapping (in pasta mode `--map-host-loopback`),
//! and only when it is allowed.
//!
//! Two address models (config::AddrPlan): slirp4netns's, where the subnet is
//! rlnet's own (nothing in it is a host, the gateway and the DNS stub are
//! rlnet), and pasta's, where the subnet is a copy of the host's LAN (its
//! addresses are real hosts, reached through host sockets like any other)
//! and only the mapped addresses are rlnet's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::AddrPlan;
use crate::model::ipam;
use crate::wire::Unreachable;

/// Outbound source addresses (`--outbound-addr[6]`, already resolved).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbound {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Open a host socket to this address.
    Host(SocketAddr),
    /// Port 53 on the DNS address: the DNS stub answers.
    DnsStub,
    /// Answer with an ICMP error (or RST for TCP) so the namespace fails fast.
    Refuse(Unreachable),
    /// Silently drop, as a real network does for addresses nobody owns.
    Drop,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub plan: AddrPlan,
    /// slirp4netns's model: the gateway reaches the host's loopback (pasta's
    /// model says so in `plan.shared`).
    pub host_loopback: bool,
    pub dns: bool,
    /// `--internal` network: no outbound NAT at all (the DNS stub answers
    /// local names only).
    pub internal: bool,
}

impl Policy {
    /// A source address the namespace may legitimately use.
    pub fn valid_source(&self, src: IpAddr) -> bool {
        let plan = &self.plan;
        if self.is_mapped(src) {
            return false;
        }
        match src {
            IpAddr::V4(a) => {
                plan.ipv4()
                    && !(a.is_unspecified()
                        || a.is_loopback()
                        || a.is_multicast()
                        || a.is_broadcast()
                        || a == plan.net4.broadcast()
                        || a == plan.gateway4
                        || a == plan.dns4)
            }
            IpAddr::V6(a) => {
                plan.v6.is_some_and(|v6| a != v6.gateway6 && a != v6.dns6)
                    && !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
                    && a.to_ipv4_mapped().is_none()
            }
        }
    }

    /// Is `ip` one of rlnet's own addresses on the link: the DNS stub's, or
    /// (pasta) one that maps to the host?
    fn is_mapped(&self, ip: IpAddr) -> bool {
        let plan = &self.plan;
        let dns = self.dns && plan.dns(ip.is_ipv6()) == Some(ip);
        dns || self.loopback_map(ip).is_some() || self.guest_map(ip).is_some()
    }

    /// The host loopback address that `ip` stands for, if it is mapped.
    fn loopback_map(&self, ip: IpAddr) -> Option<IpAddr> {
        let plan = &self.plan;
        let (l4, l6) = match plan.shared {
            Some(s) => (s.loopback4, s.loopback6),
            None if self.host_loopback => (Some(plan.gateway4), plan.v6.map(|v| v.gateway6)),
            None => (None, None),
        };
        match ip {
            IpAddr::V4(a) if l4 == Some(a) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            IpAddr::V6(a) if l6 == Some(a) => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            _ => None,
        }
    }

    /// pasta's `--map-guest-addr`: the host's own address `ip` stands for.
    fn guest_map(&self, ip: IpAddr) -> Option<IpAddr> {
        let s = self.plan.shared?;
        match ip {
            IpAddr::V4(a) => s.host4.filter(|h| h.0 == a).map(|h| IpAddr::V4(h.1)),
            IpAddr::V6(a) => s.host6.filter(|h| h.0 == a).map(|h| IpAddr::V6(h.1)),
        }
    }

    /// Does rlnet answer ARP for `ip`? In slirp4netns's model for its own
    /// addresses; in pasta's the namespace's subnet is the host's LAN, so
    /// for every address but the namespace's own (as pasta does).
    pub fn answers_arp(&self, ip: Ipv4Addr) -> bool {
        let plan = &self.plan;
        match plan.shared {
            Some(s) => s.ipv4 && ip != plan.guest4 && !ip.is_unspecified() && !ip.is_broadcast(),
            // The DNS address answers ARP even with the stub off (as
            // libslirp does): traffic to it is then dropped silently and a
            // client times out, rather than failing with "No route to host".
            None => ip == plan.gateway4 || ip == plan.dns4,
        }
    }

    /// Does rlnet answer a neighbour solicitation for `target`? As for ARP;
    /// DAD probes (from the unspecified address) are never answered.
    pub fn answers_ndp(&self, target: Ipv6Addr, src: Ipv6Addr) -> bool {
        let Some(v6) = self.plan.v6 else { return false };
        if src.is_unspecified() {
            return false;
        }
        match self.plan.shared {
            Some(_) => target != v6.guest6 && target != src && !target.is_multicast(),
            None => {
                // The DNS address too, stub or not (see `answers_arp`).
                target == v6.gateway6 || target == crate::wire::ROUTER_LL || target == v6.dns6
            }
        }
    }

    /// Does rlnet itself answer an echo request to `dst`? Its own addresses
    /// (the gateway and DNS in slirp4netns's model; pasta: the mapped
    /// ones). Every other destination is pinged from the host.
    pub fn answers_ping(&self, dst: IpAddr) -> bool {
        let plan = &self.plan;
        match plan.shared {
            Some(_) => self.is_mapped(dst),
            None => match dst {
                IpAddr::V4(a) => a == plan.gateway4 || a == plan.dns4,
                IpAddr::V6(a) => plan.v6.is_some_and(|v6| a == v6.gateway6 || a == v6.dns6),
            },
        }
    }

    /// Is `dst` an address that swallows everything? slirp4netns's model
    /// with `--disable-dns`: the DNS address answers ARP/NDP but drops
    /// every packet, ping included. (pasta: it is then just an address.)
    pub fn swallows(&self, dst: IpAddr) -> bool {
        self.plan.shared.is_none() && !self.dns && self.plan.dns(dst.is_ipv6()) == Some(dst)
    }

    /// Decide where a TCP or UDP packet to `dst` goes.
    pub fn outbound(&self, dst: SocketAddr) -> Decision {
        if dst.port() == 0 {
            return Decision::Drop;
        }
        if self.internal {
            return self.internal_outbound(dst);
        }
        let plan = &self.plan;
        let family_on = match dst.ip() {
            IpAddr::V4(_) => plan.ipv4(),
            IpAddr::V6(_) => plan.v6.is_some(),
        };
        if !family_on {
            return Decision::Drop;
        }
        if plan.dns(dst.is_ipv6()) == Some(dst.ip()) {
            match (self.dns, dst.port(), plan.shared.is_some()) {
                (true, 53, _) => return Decision::DnsStub,
                // pasta: only DNS is forwarded; the address is otherwise
                // just an address (below).
                (_, _, true) => {}
                (true, _, false) => return Decision::Refuse(Unreachable::Net),
                // Without the stub the address is just part of our subnet.
                (false, _, false) => return Decision::Drop,
            }
        }
        if let Some(lo) = self.loopback_map(dst.ip()) {
            return Decision::Host(SocketAddr::new(lo, dst.port()));
        }
        if let Some(host) = self.guest_map(dst.ip()) {
            return Decision::Host(SocketAddr::new(host, dst.port()));
        }
        if !routable(dst.ip()) {
            return Decision::Drop;
        }
        if plan.shared.is_none() {
            if dst.ip() == IpAddr::V4(plan.gateway4)
                || plan
                    .v6
                    .is_some_and(|v6| dst.ip() == IpAddr::V6(v6.gateway6))
            {
                // The gateway without the loopback mapping.
                return Decision::Refuse(Unreachable::Net);
            }
            // Never NAT into our own subnet: members are switched, not
            // routed. (pasta: the subnet is the host's LAN, its hosts real.)
            if plan.in_subnet(dst.ip()) {
                return Decision::Drop;
            }
        }
        // Never into another rlnet network (isolation between networks;
        // refused at once rather than left to time out).
        if ipam::in_pool(dst.ip()) {
            return Decision::Refuse(Unreachable::Net);
        }
        Decision::Host(dst)
    }

    /// `--internal`: only the DNS stub.
    fn internal_outbound(&self, dst: SocketAddr) -> Decision {
        let to_dns = self.plan.dns(dst.is_ipv6()) == Some(dst.ip());
        if to_dns && self.dns && dst.port() == 53 {
            Decision::DnsStub
        } else if to_dns && !self.dns {
            // --disable-dns: the address swallows everything.
            Decision::Drop
        } else if !routable(dst.ip()) {
            Decision::Drop
        } else {
            Decision::Refuse(Unreachable::Net)
        }
    }
}

/// Unicast addresses a host socket may be pointed at from the namespace.
fn routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_unicast_link_local()
                || a.to_ipv4_mapped().is_some()
                // IPv4-compatible (::a.b.c.d), deprecated but still parsed by some stacks.
                || (a.segments()[..6] == [0; 6]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AddrPlan, default_net4};

    fn policy(host_loopback: bool, dns: bool) -> Policy {
        Policy {
            plan: AddrPlan::default(),
            host_loopback,
            dns,
            internal: false,
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_maps_to_loopback_only_when_allowed() {
        let p = policy(true, true);
        assert_eq!(
            p.outbound(sa("10.0.2.2:80")),
            Decision::Host(sa("127.0.0.1:80"))
        );
        assert_eq!(
            p.outbound(sa("[fd00::2]:80")),
            Decision::Host(sa("[::1]:80"))
        );
        let p = policy(false, true);
        assert_eq!(
            p.outbound(sa("10.0.2.2:80")),
            Decision::Refuse(Unreachable::Net)
        );
        assert_eq!(
            p.outbound(sa("[fd00::2]:80")),
            Decision::Refuse(Unreachable::Net)
        );
    }

    #[test]
    fn loopback_is_never_reachable_directly() {
        let p = policy(true, true);
        for d in [
            "127.0.0.1:80",
            "127.1.2.3:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::127.0.0.1]:80",
            "0.0.0.0:80",
            "[::]:80",
            "255.255.255.255:80",
            "10.0.2.255:80",
            "224.0.0.1:80",
            "[ff02::1]:80",
            "[fe80::1]:80",
            "169.254.1.1:80",
            "198.18.0.1:0",
        ] {
            assert_eq!(p.outbound(sa(d)), Decision::Drop, "{d}");
        }
    }

    #[test]
    fn dns_address_and_subnet() {
        let p = policy(true, true);
        assert_eq!(p.outbound(sa("10.0.2.3:53")), Decision::DnsStub);
        assert_eq!(
            p.outbound(sa("10.0.2.3:80")),
            Decision::Refuse(Unreachable::Net)
        );
        assert_eq!(p.outbound(sa("10.0.2.50:80")), Decision::Drop);
        assert_eq!(p.outbound(sa("[fd00::50]:80")), Decision::Drop);
        let p = policy(true, false);
        for d in [
            "10.0.2.3:53",
            "10.0.2.3:80",
            "[fd00::3]:53",
            "[fd00::3]:443",
        ] {
            assert_eq!(p.outbound(sa(d)), Decision::Drop, "{d}");
        }
        assert_eq!(
            p.outbound(sa("198.18.0.1:53")),
            Decision::Host(sa("198.18.0.1:53"))
        );
        assert_eq!(
            p.outbound(sa("[2001:db8::1]:443")),
            Decision::Host(sa("[2001:db8::1]:443"))
        );
    }

    #[test]
    fn other_networks_and_internal() {
        let p = policy(true, true);
        assert_eq!(
            p.outbound(sa("10.89.3.100:80")),
            Decision::Refuse(Unreachable::Net)
        );
        assert_eq!(
            p.outbound(sa("[fd00:89:3::64]:80")),
            Decision::Refuse(Unreachable::Net)
        );
        let internal = Policy {
            internal: true,
            ..policy(true, true)
        };
        assert_eq!(
            internal.outbound(sa("198.18.0.1:80")),
            Decision::Refuse(Unreachable::Net)
        );
        assert_eq!(
            internal.outbound(sa("10.0.2.2:80")),
            Decision::Refuse(Unreachable::Net)
        );
        assert_eq!(internal.outbound(sa("10.0.2.3:53")), Decision::DnsStub);
        let no_dns = Policy {
            dns: false,
            ..internal
        };
        for d in ["10.0.2.3:53", "10.0.2.3:80", "[fd00::3]:53"] {
            assert_eq!(no_dns.outbound(sa(d)), Decision::Drop, "{d}");
        }
    }

    #[test]
    fn ipv6_disabled_drops_v6() {
        let p = Policy {
            plan: AddrPlan::new(default_net4(), false),
            host_loopback: true,
            dns: true,
            internal: false,
        };
        assert_eq!(p.outbound(sa("[2001:db8::1]:443")), Decision::Drop);
        assert!(!p.valid_source("fd00::100".parse().unwrap()));
    }

    #[test]
    fn sources() {
        let p = policy(true, true);
        assert!(p.valid_source("10.0.2.100".parse().unwrap()));
        assert!(p.valid_source("fd00::100".parse().unwrap()));
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.0.2.255",
            "224.0.0.1",
            "10.0.2.2",
            "::",
            "ff02::1",
            "::ffff:10.0.2.100",
        ] {
            assert!(!p.valid_source(bad.parse().unwrap()), "{bad}");
        }
    }
    /// pasta's model as Podman drives it: the host's 192.0.2.2/24 via
    /// 192.0.2.1, --no-map-gw, --dns-forward 169.254.1.1, --map-guest-addr
    /// 169.254.1.2.
    fn podman() -> Policy {
        use crate::config::{Ipv4Net, Shared, V6Plan};
        let ip4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let ip6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        Policy {
            plan: AddrPlan {
                net4: Ipv4Net {
                    addr: ip4("192.0.2.0"),
                    prefix: 24,
                },
                gateway4: ip4("192.0.2.1"),
                dns4: ip4("169.254.1.1"),
                guest4: ip4("192.0.2.2"),
                dhcp_start4: ip4("192.0.2.2"),
                v6: Some(V6Plan {
                    prefix: ip6("2001:db8:1::"),
                    prefix_len: 64,
                    gateway6: ip6("2001:db8:1::1"),
                    dns6: Ipv6Addr::UNSPECIFIED,
                    guest6: ip6("2001:db8:1::2"),
                }),
                shared: Some(Shared {
                    ipv4: true,
                    loopback4: None,
                    loopback6: None,
                    host4: Some((ip4("169.254.1.2"), ip4("192.0.2.2"))),
                    host6: None,
                }),
            },
            host_loopback: false,
            dns: true,
            internal: false,
        }
    }

    #[test]
    fn pasta_subnet_is_the_hosts_lan() {
        let p = podman();
        for d in [
            "192.0.2.1:80",
            "192.0.2.77:80",
            "[2001:db8:1::1]:80",
            "198.51.100.1:443",
        ] {
            assert_eq!(p.outbound(sa(d)), Decision::Host(sa(d)), "{d}");
        }
        assert_eq!(p.outbound(sa("169.254.1.1:53")), Decision::DnsStub);
        // Only DNS: other ports of the forward address are just link-local.
        assert_eq!(p.outbound(sa("169.254.1.1:80")), Decision::Drop);
        assert_eq!(
            p.outbound(sa("169.254.1.2:8080")),
            Decision::Host(sa("192.0.2.2:8080"))
        );
        // No loopback mapping with --no-map-gw; loopback never directly.
        for d in [
            "127.0.0.1:80",
            "[::1]:80",
            "169.254.2.2:80",
            "[fe80::1]:80",
            "[::]:53",
        ] {
            assert_eq!(p.outbound(sa(d)), Decision::Drop, "{d}");
        }
        assert_eq!(
            p.outbound(sa("10.89.0.5:80")),
            Decision::Refuse(Unreachable::Net),
            "named networks stay isolated"
        );
        let mut gw = podman();
        if let Some(s) = gw.plan.shared.as_mut() {
            s.loopback4 = Some("192.0.2.1".parse().unwrap());
            s.loopback6 = Some("2001:db8:1::1".parse().unwrap());
        }
        assert_eq!(
            gw.outbound(sa("192.0.2.1:80")),
            Decision::Host(sa("127.0.0.1:80"))
        );
        assert_eq!(
            gw.outbound(sa("[2001:db8:1::1]:80")),
            Decision::Host(sa("[::1]:80"))
        );
        // IPv4 off (-6): nothing IPv4 goes anywhere.
        if let Some(s) = gw.plan.shared.as_mut() {
            s.ipv4 = false;
        }
        assert_eq!(gw.outbound(sa("198.51.100.1:443")), Decision::Drop);
        assert!(!gw.valid_source("192.0.2.2".parse().unwrap()));
        assert!(!gw.answers_arp("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn pasta_neighbours_and_ping() {
        let p = podman();
        let ip4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let ip6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        for a in ["192.0.2.1", "192.0.2.200", "169.254.1.1", "10.0.0.1"] {
            assert!(p.answers_arp(ip4(a)), "{a}");
        }
        assert!(!p.answers_arp(ip4("192.0.2.2")), "the namespace's own");
        assert!(!p.answers_arp(ip4("0.0.0.0")));
        let me = ip6("2001:db8:1::2");
        assert!(p.answers_ndp(ip6("2001:db8:1::1"), me));
        assert!(p.answers_ndp(ip6("fe80::1"), ip6("fe80::5")));
        assert!(!p.answers_ndp(me, ip6("fe80::5")), "the namespace's own");
        assert!(
            !p.answers_ndp(ip6("2001:db8:1::1"), Ipv6Addr::UNSPECIFIED),
            "DAD"
        );
        assert!(p.answers_ping("169.254.1.1".parse().unwrap()));
        assert!(p.answers_ping("169.254.1.2".parse().unwrap()));
        assert!(
            !p.answers_ping("192.0.2.1".parse().unwrap()),
            "the real gateway"
        );
        assert!(p.valid_source("192.0.2.2".parse().unwrap()));
        assert!(p.valid_source("2001:db8:1::2".parse().unwrap()));
        assert!(!p.valid_source("169.254.1.2".parse().unwrap()));
        assert!(!p.valid_source("192.0.2.1".parse().unwrap()));
        // slirp4netns's model answers for its own addresses only.
        let s = policy(true, true);
        assert!(s.answers_arp(ip4("10.0.2.2")) && s.answers_arp(ip4("10.0.2.3")));
        assert!(!s.answers_arp(ip4("10.0.2.50")));
        assert!(s.answers_ndp(ip6("fd00::2"), ip6("fd00::100")));
        assert!(s.answers_ndp(crate::wire::ROUTER_LL, ip6("fe80::5")));
        assert!(!s.answers_ndp(ip6("fd00::50"), ip6("fd00::100")));
        assert!(s.answers_ping("10.0.2.2".parse().unwrap()));
        assert!(!s.answers_ping("198.18.0.1".parse().unwrap()));
        assert!(!s.swallows("10.0.2.3".parse().unwrap()));
        // --disable-dns: the DNS address still answers ARP/NDP (a client
        // times out rather than failing at once) and swallows everything.
        let off = policy(true, false);
        assert!(off.answers_arp(ip4("10.0.2.3")));
        assert!(off.answers_ndp(ip6("fd00::3"), ip6("fd00::100")));
        for a in ["10.0.2.3", "fd00::3"] {
            assert!(off.swallows(a.parse().unwrap()), "{a}");
        }
        assert!(!off.swallows("10.0.2.2".parse().unwrap()));
        // pasta's model: with the stub off the address is just an address.
        let mut pasta = podman();
        pasta.dns = false;
        assert!(!pasta.swallows("169.254.1.1".parse().unwrap()));
    }
}
