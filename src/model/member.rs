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
}

impl Member {
    /// May this member send from `ip`? Its own addresses, and IPv6
    /// link-local/unspecified (neighbour discovery).
    pub fn owns(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => a == self.ip4,
            IpAddr::V6(a) => Some(a) == self.ip6 || a.is_unicast_link_local() || a.is_unspecified(),
        }
    }

    /// Names the DNS stub answers for this member.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.name
            .iter()
            .chain(self.aliases.iter())
            .map(String::as_str)
    }
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
        }
    }

    #[test]
    fn a_member_owns_its_addresses_and_link_local_only() {
        let m = member();
        assert!(m.owns("10.89.0.100".parse().unwrap()));
        assert!(!m.owns("10.89.0.101".parse().unwrap()));
        assert!(m.owns("fd00:89::64".parse().unwrap()));
        assert!(!m.owns("fd00:89::65".parse().unwrap()));
        // Neighbour discovery comes from these.
        assert!(m.owns("fe80::1".parse().unwrap()));
        assert!(m.owns("::".parse().unwrap()));
    }

    #[test]
    fn names_are_the_name_then_the_aliases() {
        let mut m = member();
        assert_eq!(m.names().collect::<Vec<_>>(), ["a", "db"]);
        m.name = None;
        assert_eq!(m.names().collect::<Vec<_>>(), ["db"]);
    }
}
