//! Address plan and allocation of a named network (pure): the network's
//! subnets, and an address and MAC for every member, like Docker's IPAM.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{AddrPlan, Ipv4Net};

/// Default subnets come from here: 10.89.N.0/24 and fd00:89:0:N::/64.
pub const POOL4: Ipv4Net = Ipv4Net {
    addr: Ipv4Addr::new(10, 89, 0, 0),
    prefix: 16,
};

/// The first two segments of every network's IPv6 prefix: fd00:89::/32.
const POOL6: [u16; 2] = [0xfd00, 0x89];

/// The IPv6 /64 that goes with an IPv4 network: fd00:89:<3rd>:<4th>::/64,
/// so two networks never share one.
pub fn v6_prefix_for(net4: Ipv4Net) -> Ipv6Addr {
    let [_, _, c, d] = net4.addr.octets();
    Ipv6Addr::new(POOL6[0], POOL6[1], u16::from(c), u16::from(d), 0, 0, 0, 0)
}

/// True for addresses of the pools named networks take their default
/// subnets from (10.89.0.0/16 and fd00:89::/32).
pub fn in_pool(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => POOL4.contains(a),
        IpAddr::V6(a) => a.segments()[..2] == POOL6,
    }
}

/// The plan of a named network: gateway N+2 (the host), DNS N+3, as in
/// the slirp4netns plan, so the same addresses mean the same things.
pub fn plan_for(net4: Ipv4Net, ipv6: bool) -> AddrPlan {
    AddrPlan::with_v6(net4, ipv6.then(|| v6_prefix_for(net4)))
}

/// The first default subnet not taken by `used`.
pub fn free_subnet(used: &[Ipv4Net]) -> Option<Ipv4Net> {
    (0..=255u32)
        .map(|n| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(POOL4.addr) | (n << 8)),
            prefix: 24,
        })
        .find(|cand| !used.iter().any(|u| overlaps(*u, *cand)))
}

pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let bits = a.prefix.min(b.prefix);
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    };
    u32::from(a.addr) & mask == u32::from(b.addr) & mask
}

/// A member's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ip4: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub mac: [u8; 6],
}

/// Addresses in use on one network; members get the lowest free one from
/// N+100 upwards, then N+4..N+99 (N+2 and N+3 are the gateway and DNS).
#[derive(Debug, Clone)]
pub struct Ipam {
    plan: AddrPlan,
    used: BTreeMap<u32, ()>,
}

impl Ipam {
    pub fn new(plan: AddrPlan) -> Ipam {
        Ipam {
            plan,
            used: BTreeMap::new(),
        }
    }

    fn candidates(&self) -> impl Iterator<Item = u32> + '_ {
        let net = u32::from(self.plan.net4.addr);
        let last = u32::from(self.plan.net4.broadcast());
        let high = (net + 100)..last;
        let low = (net + 4)..(net + 100).min(last);
        high.chain(low)
    }

    /// A new member's addresses; None when the subnet is full.
    pub fn allocate(&mut self) -> Option<Lease> {
        let ip = self.candidates().find(|ip| !self.used.contains_key(ip))?;
        self.used.insert(ip, ());
        Some(self.lease_of(Ipv4Addr::from(ip)))
    }

    /// The addresses that go with `ip4`: the IPv6 host part mirrors the
    /// IPv4 one, the MAC is locally administered and derived from it, so a
    /// member keeps the same addresses for the same IPv4 address.
    pub fn lease_of(&self, ip4: Ipv4Addr) -> Lease {
        let o = ip4.octets();
        let ip6 = self.plan.v6.map(|v6| {
            let mut s = v6.prefix.segments();
            let host_part = u32::from(ip4) & !self.plan.net4.mask();
            s[6] = (host_part >> 16) as u16;
            s[7] = (host_part & 0xFFFF) as u16;
            Ipv6Addr::from(s)
        });
        Lease {
            ip4,
            ip6,
            mac: [0x02, 0x89, o[0], o[1], o[2], o[3]],
        }
    }

    pub fn release(&mut self, ip4: Ipv4Addr) {
        self.used.remove(&u32::from(ip4));
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn plans_are_distinct_per_network() {
        let a = plan_for(net("10.89.0.0/24"), true);
        let b = plan_for(net("10.89.1.0/24"), true);
        assert_eq!(a.gateway4.to_string(), "10.89.0.2");
        assert_eq!(a.dns4.to_string(), "10.89.0.3");
        assert_ne!(a.v6.unwrap().prefix, b.v6.unwrap().prefix);
        assert_eq!(b.v6.unwrap().gateway6.to_string(), "fd00:89:1::2");
        assert!(plan_for(net("10.89.0.0/24"), false).v6.is_none());
    }

    #[test]
    fn free_subnets_skip_used_ones() {
        assert_eq!(free_subnet(&[]), Some(net("10.89.0.0/24")));
        let used = [net("10.89.0.0/24"), net("10.89.1.0/24")];
        assert_eq!(free_subnet(&used), Some(net("10.89.2.0/24")));
        // A user subnet covering the start of the pool.
        assert_eq!(
            free_subnet(&[net("10.89.0.0/23")]),
            Some(net("10.89.2.0/24"))
        );
        assert!(overlaps(net("10.0.0.0/8"), net("10.89.5.0/24")));
        assert!(!overlaps(net("10.88.0.0/16"), net("10.89.5.0/24")));
    }

    #[test]
    fn the_pool_covers_both_families() {
        let v6 = v6_prefix_for(net("10.89.200.0/24"));
        assert!(in_pool(IpAddr::V6(v6)));
        assert!(in_pool("10.89.255.1".parse().unwrap()));
        assert!(!in_pool("10.90.0.1".parse().unwrap()));
        assert!(!in_pool("fd00:88::1".parse().unwrap()));
    }

    #[test]
    fn allocation_order_release_and_exhaustion() {
        let plan = plan_for(net("10.89.7.0/24"), true);
        let mut ipam = Ipam::new(plan);
        let a = ipam.allocate().unwrap();
        let b = ipam.allocate().unwrap();
        assert_eq!(a.ip4.to_string(), "10.89.7.100");
        assert_eq!(b.ip4.to_string(), "10.89.7.101");
        assert_eq!(a.ip6.unwrap().to_string(), "fd00:89:7::64");
        assert_eq!(a.mac, [0x02, 0x89, 10, 89, 7, 100]);
        ipam.release(a.ip4);
        assert_eq!(ipam.allocate().unwrap().ip4, a.ip4);
        let mut n = ipam.in_use();
        while ipam.allocate().is_some() {
            n += 1;
            assert!(n < 300);
        }
        // .4 to .254 minus nothing reserved: 251 members.
        assert_eq!(ipam.in_use(), 251);
        let plan = plan_for(net("10.89.7.0/24"), true);
        for ip in Ipam::new(plan).candidates().take(300) {
            let ip = Ipv4Addr::from(ip);
            assert!(ip != plan.gateway4 && ip != plan.dns4 && ip != plan.net4.broadcast());
        }
    }
}
