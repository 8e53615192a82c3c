//! A namespace on a named network: its TAP's identity on the segment (pure:
//! the switch keeps the member's fds beside it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use smoltcp::wire::EthernetAddress;

/// What the switch knows and enforces about one port.
#[derive(Debug)]
pub struct Member {
    pub name: Option<String>,
    pub aliases: Vec<String>,
    pub mac: EthernetAddress,
    pub ip4: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// The TAP's name inside the namespace (tap0, tap1 … when a namespace
    /// is on several networks).
    pub tap: String,
    /// The process the attachment follows, if any; it ends when it exits.
    pub pid: Option<u32>,
    /// (st_dev, st_ino) of its network namespace.
    pub netns: (u64, u64),
    /// A kernel member's port on the network's bridge
    /// (docs/kernel-switching.md); None for a member on a TAP.
    pub bridge_port: Option<String>,
}

impl Member {
    /// Is `ip` this member's? Its IPv4 and IPv6 addresses, and its own
    /// link-local address (never `::`, nor another link-local).
    pub fn owns(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => a == self.ip4,
            IpAddr::V6(a) => Some(a) == self.ip6 || a == self.link_local(),
        }
    }

    /// The member's link-local address: fe80::/64 with the modified EUI-64
    /// of its MAC (RFC 4291 appendix A), which the kernel derives itself
    /// because rlnet sets the TAP's `addr_gen_mode` to 0 (EUI-64) when it
    /// configures it.
    pub fn link_local(&self) -> Ipv6Addr {
        link_local_of(self.mac.0)
    }

    /// Names the DNS stub answers for this member.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.name
            .iter()
            .chain(self.aliases.iter())
            .map(String::as_str)
    }
}

/// The link-local address of a link with MAC `mac` (see [`Member::link_local`]).
pub fn link_local_of(mac: [u8; 6]) -> Ipv6Addr {
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
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            name: Some("a".into()),
            aliases: vec!["db".into()],
            mac: EthernetAddress([0x02, 0x89, 10, 89, 0, 100]),
            ip4: Ipv4Addr::new(10, 89, 0, 100),
            ip6: Some("fd00:89::64".parse().unwrap()),
            tap: "tap0".into(),
            pid: None,
            netns: (1, 2),
            bridge_port: None,
        }
    }

    #[test]
    fn a_member_owns_its_addresses_and_link_local_only() {
        let m = member();
        assert!(m.owns("10.89.0.100".parse().unwrap()));
        assert!(!m.owns("10.89.0.101".parse().unwrap()));
        assert!(m.owns("fd00:89::64".parse().unwrap()));
        assert!(!m.owns("fd00:89::65".parse().unwrap()));
        // Its own link-local only: not another, not the unspecified address.
        assert_eq!(m.link_local().to_string(), "fe80::89:aff:fe59:64");
        assert!(m.owns("fe80::89:aff:fe59:64".parse().unwrap()));
        assert!(!m.owns("fe80::1".parse().unwrap()));
        assert!(!m.owns("fe80::2".parse().unwrap()));
        assert!(!m.owns("::".parse().unwrap()));
    }

    #[test]
    fn names_are_the_name_then_the_aliases() {
        let mut m = member();
        assert_eq!(m.names().collect::<Vec<_>>(), ["a", "db"]);
        m.name = None;
        assert_eq!(m.names().collect::<Vec<_>>(), ["db"]);
    }
}
