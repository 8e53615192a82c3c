//! Where may a packet from the namespace go? Pure decisions on addresses,
//! applied before any host socket exists. The only way to reach the host's
//! loopback is the gateway mapping, and only when it is allowed.

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
    pub host_loopback: bool,
    pub dns: bool,
    /// `--internal` network: no outbound NAT at all (the DNS stub answers
    /// local names only).
    pub internal: bool,
}

impl Policy {
    /// A source address the namespace may legitimately use.
    pub fn valid_source(&self, src: IpAddr) -> bool {
        match src {
            IpAddr::V4(a) => {
                !(a.is_unspecified()
                    || a.is_loopback()
                    || a.is_multicast()
                    || a.is_broadcast()
                    || a == self.plan.net4.broadcast()
                    || a == self.plan.gateway4
                    || a == self.plan.dns4)
            }
            IpAddr::V6(a) => {
                self.plan
                    .v6
                    .is_some_and(|v6| a != v6.gateway6 && a != v6.dns6)
                    && !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
                    && a.to_ipv4_mapped().is_none()
            }
        }
    }

    /// Decide where a TCP or UDP packet to `dst` goes.
    pub fn outbound(&self, dst: SocketAddr) -> Decision {
        if dst.port() == 0 || !routable(dst.ip()) {
            return Decision::Drop;
        }
        if self.internal {
            let plan = &self.plan;
            let to_dns = match dst.ip() {
                IpAddr::V4(a) => a == plan.dns4,
                IpAddr::V6(a) => plan.v6.is_some_and(|v6| a == v6.dns6),
            };
            return match (to_dns, self.dns, dst.port()) {
                (true, true, 53) => Decision::DnsStub,
                // --disable-dns: the address swallows everything.
                (true, false, _) => Decision::Drop,
                _ => Decision::Refuse(Unreachable::Net),
            };
        }
        let plan = &self.plan;
        let (is_gw, is_dns, loopback) = match dst.ip() {
            IpAddr::V4(a) => (
                a == plan.gateway4,
                a == plan.dns4,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ),
            IpAddr::V6(a) => match plan.v6 {
                Some(v6) => (
                    a == v6.gateway6,
                    a == v6.dns6,
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ),
                None => return Decision::Drop,
            },
        };
        if is_gw {
            return if self.host_loopback {
                Decision::Host(SocketAddr::new(loopback, dst.port()))
            } else {
                Decision::Refuse(Unreachable::Net)
            };
        }
        if is_dns {
            return match (self.dns, dst.port()) {
                (true, 53) => Decision::DnsStub,
                (true, _) => Decision::Refuse(Unreachable::Net),
                // Without the stub the address is just part of our subnet.
                (false, _) => Decision::Drop,
            };
        }
        // Never NAT into an rlnet network: not our own (members are
        // switched, not routed), not another one (isolation between
        // networks; refused at once rather than left to time out).
        if plan.in_subnet(dst.ip()) {
            return Decision::Drop;
        }
        if ipam::in_pool(dst.ip()) {
            return Decision::Refuse(Unreachable::Net);
        }
        Decision::Host(dst)
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
}
