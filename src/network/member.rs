//! A namespace on a named network: its TAP's identity on the segment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

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
    pub pidfd: Option<OwnedFd>,
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
