//! The names the stub answers itself, without asking anyone.
//!
//! - `host.containers.internal` and `host.rlnet.internal`: the gateway (A and
//!   AAAA; no AAAA record without IPv6);
//! - `--add-host NAME:IP` entries;
//! - per-network entries (member names on named networks), keyed by a
//!   [`NetworkId`] and visible only to requesters on that network.
//!
//! The stub is authoritative for the zone `rlnet.internal`: a name under it
//! that is not in the table gets NXDOMAIN (or NODATA for an empty
//! non-terminal, RFC 8020). A name outside the zone is answered only when it
//! is in the table exactly; everything else is forwarded.
//!
//! Names are compared case-insensitively, with or without a trailing dot. The
//! table key is the name's wire form (length-prefixed labels, lower-cased,
//! without the root label), so a lookup needs no allocation and labels that
//! contain dots cannot collide with two labels.
//!
//! Pure: no I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use thiserror::Error;

use crate::config::AddrPlan;

/// TTL of every local answer, in seconds: small, so that changes (a member
/// joining or leaving) show quickly, as in aardvark-dns and Docker.
pub const TTL: u32 = 5;

/// The zone the stub is authoritative for.
pub const ZONE: &str = "rlnet.internal";

/// Names of the host (the gateway address), as Podman and rlnet spell them.
pub const HOST_ALIASES: [&str; 2] = ["host.containers.internal", "host.rlnet.internal"];

/// Most addresses one name can have (per table entry, all networks).
pub const MAX_ADDRS_PER_NAME: usize = 64;

/// Most names in the table.
pub const MAX_NAMES: usize = 65536;

/// A named network, for names visible only to its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub u32);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error(
        "invalid host name {0:?}: use letters, digits, '-' and '_' in dot-separated labels of 1-63 characters, 253 at most in all"
    )]
    Name(String),
    #[error("{0:?} has too many addresses (at most {MAX_ADDRS_PER_NAME})")]
    TooManyAddrs(String),
    #[error("too many names (at most {MAX_NAMES})")]
    TooManyNames,
    #[error("{0} cannot be the address of a name")]
    Addr(IpAddr),
}

/// A lower-cased wire-format name without its root label; at most 254 bytes.
#[derive(Clone, Copy)]
pub struct Key {
    buf: [u8; 256],
    len: usize,
}

impl Key {
    /// The key of a parsed name. None for a name that is too long (hickory's
    /// parser never produces one).
    pub fn of(name: &Name) -> Option<Key> {
        let mut k = Key {
            buf: [0; 256],
            len: 0,
        };
        for label in name.iter() {
            let n = label.len();
            if n == 0 || n > 63 || k.len + 1 + n > 254 {
                return None;
            }
            let dst = k.buf.get_mut(k.len..k.len + 1 + n)?;
            let (len_byte, rest) = dst.split_first_mut()?;
            *len_byte = u8::try_from(n).ok()?;
            for (d, s) in rest.iter_mut().zip(label) {
                *d = s.to_ascii_lowercase();
            }
            k.len += 1 + n;
        }
        Some(k)
    }

    /// The key of a name given as text (configuration, API).
    pub fn parse(text: &str) -> Result<Key, RecordError> {
        let bad = || RecordError::Name(text.to_string());
        if !valid_host_name(text) {
            return Err(bad());
        }
        let name = Name::from_ascii(text).map_err(|_| bad())?;
        Key::of(&name).filter(|k| k.len > 0).ok_or_else(bad)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Offsets at which a label starts: the key's suffixes that are names.
    fn suffixes(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.as_bytes();
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            let rest = bytes.get(pos..).filter(|r| !r.is_empty())?;
            let n = usize::from(*rest.first()?);
            pos += 1 + n;
            Some(rest)
        })
    }
}

pub use crate::config::valid_host_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    net: Option<NetworkId>,
    addr: IpAddr,
}

impl Entry {
    fn visible(&self, requester: Option<NetworkId>) -> bool {
        self.net.is_none() || self.net == requester
    }
}

/// What the table says about a name, for one requester.
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// The name is ours: its addresses (possibly none: an empty
    /// non-terminal or the zone apex gets NODATA).
    Found(Addrs<'a>),
    /// A name in our zone that does not exist.
    NxDomain,
    /// Not ours: forward it.
    NotOurs,
}

/// The addresses of a name that one requester may see.
#[derive(Debug, Clone)]
pub struct Addrs<'a> {
    entries: std::slice::Iter<'a, Entry>,
    requester: Option<NetworkId>,
}

impl Iterator for Addrs<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        let requester = self.requester;
        self.entries.find(|e| e.visible(requester)).map(|e| e.addr)
    }
}

/// The stub's name table.
#[derive(Debug, Clone, Default)]
pub struct Records {
    names: HashMap<Vec<u8>, Vec<Entry>>,
    /// Ancestors inside the zone of names in the table (empty non-terminals),
    /// with the networks that may see them; rebuilt on every change.
    ents: HashMap<Vec<u8>, Vec<Option<NetworkId>>>,
    /// Which network a stub address serves (each named network has its own
    /// subnet, hence its own stub address).
    stub_networks: Vec<(IpAddr, NetworkId)>,
    zone: Vec<u8>,
}

impl Records {
    /// The host aliases for `plan`'s host address (the gateway, or pasta's
    /// mapped address), plus `hosts` (`--add-host`).
    pub fn new(plan: &AddrPlan, hosts: &[(String, IpAddr)]) -> Result<Records, RecordError> {
        let mut r = Records::empty();
        for alias in HOST_ALIASES {
            for addr in [plan.host_addr(false), plan.host_addr(true)]
                .into_iter()
                .flatten()
            {
                r.insert(None, alias, addr)?;
            }
        }
        for (name, addr) in hosts {
            r.insert(None, name, *addr)?;
        }
        Ok(r)
    }

    /// A table without any name (not even the host aliases).
    pub fn empty() -> Records {
        let zone = Key::parse(ZONE)
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default();
        Records {
            zone,
            ..Records::default()
        }
    }

    /// Adds `addr` to `name` for requesters on `net` (None: everyone).
    /// Adding an address twice is a no-op.
    pub fn insert(
        &mut self,
        net: Option<NetworkId>,
        name: &str,
        addr: IpAddr,
    ) -> Result<(), RecordError> {
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(RecordError::Addr(addr));
        }
        let key = Key::parse(name)?;
        let entry = Entry { net, addr };
        if !self.names.contains_key(key.as_bytes()) && self.names.len() >= MAX_NAMES {
            return Err(RecordError::TooManyNames);
        }
        let entries = self.names.entry(key.as_bytes().to_vec()).or_default();
        if entries.contains(&entry) {
            return Ok(());
        }
        if entries.len() >= MAX_ADDRS_PER_NAME {
            return Err(RecordError::TooManyAddrs(name.to_string()));
        }
        entries.push(entry);
        self.rebuild_ents();
        Ok(())
    }

    /// Removes every address of `name` for `net` (exactly: None removes the
    /// global entries only). Returns how many were removed.
    pub fn remove(&mut self, net: Option<NetworkId>, name: &str) -> usize {
        let Ok(key) = Key::parse(name) else {
            return 0;
        };
        let Some(entries) = self.names.get_mut(key.as_bytes()) else {
            return 0;
        };
        let before = entries.len();
        entries.retain(|e| e.net != net);
        let removed = before - entries.len();
        if entries.is_empty() {
            self.names.remove(key.as_bytes());
        }
        if removed > 0 {
            self.rebuild_ents();
        }
        removed
    }

    /// Forgets every name of `net` and its stub addresses.
    pub fn remove_network(&mut self, net: NetworkId) {
        self.names.retain(|_, entries| {
            entries.retain(|e| e.net != Some(net));
            !entries.is_empty()
        });
        self.stub_networks.retain(|(_, n)| *n != net);
        self.rebuild_ents();
    }

    /// Requests to stub address `stub` come from `net` (None: from the
    /// unnamed network, which sees only global names).
    pub fn set_stub_network(&mut self, stub: IpAddr, net: Option<NetworkId>) {
        self.stub_networks.retain(|(ip, _)| *ip != stub);
        if let Some(net) = net {
            self.stub_networks.push((stub, net));
        }
    }

    /// The network whose requesters use stub address `stub`.
    pub fn network_of_stub(&self, stub: IpAddr) -> Option<NetworkId> {
        self.stub_networks
            .iter()
            .find(|(ip, _)| *ip == stub)
            .map(|(_, n)| *n)
    }

    /// Number of names in the table.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// What to answer `requester` about `name`.
    pub fn lookup(&self, requester: Option<NetworkId>, name: &Name) -> Lookup<'_> {
        match Key::of(name) {
            Some(key) => self.lookup_key(requester, &key),
            None => Lookup::NotOurs,
        }
    }

    /// [`Records::lookup`] for a name given as text (tests, API).
    pub fn lookup_str(&self, requester: Option<NetworkId>, name: &str) -> Lookup<'_> {
        match Name::from_ascii(name).ok().as_ref().and_then(Key::of) {
            Some(key) => self.lookup_key(requester, &key),
            None => Lookup::NotOurs,
        }
    }

    fn lookup_key(&self, requester: Option<NetworkId>, key: &Key) -> Lookup<'_> {
        let bytes = key.as_bytes();
        if let Some(entries) = self.names.get(bytes)
            && entries.iter().any(|e| e.visible(requester))
        {
            return Lookup::Found(Addrs {
                entries: entries.iter(),
                requester,
            });
        }
        if !self.in_zone(key) {
            return Lookup::NotOurs;
        }
        let ent = bytes == self.zone.as_slice()
            || self
                .ents
                .get(bytes)
                .is_some_and(|nets| nets.iter().any(|n| n.is_none() || *n == requester));
        if ent {
            Lookup::Found(Addrs {
                entries: [].iter(),
                requester,
            })
        } else {
            Lookup::NxDomain
        }
    }

    fn in_zone(&self, key: &Key) -> bool {
        !self.zone.is_empty() && key.suffixes().any(|s| s == self.zone.as_slice())
    }

    fn rebuild_ents(&mut self) {
        self.ents.clear();
        for (name, entries) in &self.names {
            let mut key = Key {
                buf: [0; 256],
                len: 0,
            };
            let Some(dst) = key.buf.get_mut(..name.len()) else {
                continue;
            };
            dst.copy_from_slice(name);
            key.len = name.len();
            if !self.in_zone(&key) {
                continue;
            }
            // Every proper ancestor down to (not including) the apex.
            for suffix in key.suffixes().skip(1) {
                if suffix.len() <= self.zone.len() {
                    break;
                }
                let nets = self.ents.entry(suffix.to_vec()).or_default();
                for e in entries {
                    if !nets.contains(&e.net) {
                        nets.push(e.net);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AddrPlan, default_net4};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn addrs(l: Lookup<'_>) -> Option<Vec<IpAddr>> {
        match l {
            Lookup::Found(a) => Some(a.collect()),
            _ => None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_aliases_answer_the_gateway() {
        let r = Records::new(&AddrPlan::default(), &[]).unwrap();
        for name in [
            "host.containers.internal",
            "host.containers.internal.",
            "HOST.Containers.INTERNAL",
            "host.rlnet.internal",
            "Host.Rlnet.Internal.",
        ] {
            assert_eq!(
                addrs(r.lookup_str(None, name)),
                Some(vec![ip("10.0.2.2"), ip("fd00::2")]),
                "{name}"
            );
        }
        // Without IPv6 only the IPv4 gateway.
        let r = Records::new(&AddrPlan::new(default_net4(), false), &[]).unwrap();
        assert_eq!(
            addrs(r.lookup_str(None, "host.rlnet.internal")),
            Some(vec![ip("10.0.2.2")])
        );
        // --cidr moves it.
        let plan = AddrPlan::new("10.9.0.0/24".parse().unwrap(), true);
        let r = Records::new(&plan, &[]).unwrap();
        assert_eq!(
            addrs(r.lookup_str(Some(NetworkId(3)), "host.containers.internal")),
            Some(vec![ip("10.9.0.2"), ip("fd00::2")])
        );
    }

    #[test]
    fn zone_gives_nxdomain_and_nodata() {
        let r = Records::new(&AddrPlan::default(), &[]).unwrap();
        assert!(matches!(
            r.lookup_str(None, "nope.rlnet.internal"),
            Lookup::NxDomain
        ));
        assert!(matches!(
            r.lookup_str(None, "a.host.rlnet.internal"),
            Lookup::NxDomain
        ));
        assert_eq!(addrs(r.lookup_str(None, "rlnet.internal.")), Some(vec![]));
        assert_eq!(addrs(r.lookup_str(None, "RLNET.internal")), Some(vec![]));
        // Not in the zone: forwarded.
        for name in [
            "example.com",
            "internal",
            "xrlnet.internal",
            "rlnet.internal.example",
            "other.containers.internal",
            "containers.internal",
        ] {
            assert!(
                matches!(r.lookup_str(None, name), Lookup::NotOurs),
                "{name}"
            );
        }
    }

    #[test]
    fn add_host_entries() {
        let hosts = vec![
            ("db".to_string(), ip("192.0.2.7")),
            ("db".to_string(), ip("2001:db8::7")),
            ("db".to_string(), ip("192.0.2.7")),
            ("Web.Example.COM.".to_string(), ip("198.51.100.1")),
        ];
        let r = Records::new(&AddrPlan::default(), &hosts).unwrap();
        assert_eq!(
            addrs(r.lookup_str(None, "DB.")),
            Some(vec![ip("192.0.2.7"), ip("2001:db8::7")])
        );
        assert_eq!(
            addrs(r.lookup_str(None, "web.example.com")),
            Some(vec![ip("198.51.100.1")])
        );
        // Only the exact name outside the zone.
        assert!(matches!(
            r.lookup_str(None, "x.web.example.com"),
            Lookup::NotOurs
        ));
        assert!(matches!(r.lookup_str(None, "example.com"), Lookup::NotOurs));
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn bad_names_and_addresses() {
        let mut r = Records::empty();
        for bad in [
            "",
            ".",
            "a..b",
            "-a",
            "a-",
            "a b",
            "a/b",
            "ä",
            &"a".repeat(64),
            &["a"; 128].join("."),
        ] {
            assert!(
                matches!(
                    r.insert(None, bad, ip("192.0.2.1")),
                    Err(RecordError::Name(_))
                ),
                "{bad:?}"
            );
        }
        assert!(r.insert(None, &"a".repeat(63), ip("192.0.2.1")).is_ok());
        assert!(r.insert(None, "_srv_ok", ip("192.0.2.1")).is_ok());
        assert_eq!(
            r.insert(None, "x", ip("0.0.0.0")),
            Err(RecordError::Addr(ip("0.0.0.0")))
        );
        assert!(r.insert(None, "x", ip("ff02::1")).is_err());
        for i in 0..MAX_ADDRS_PER_NAME {
            r.insert(
                None,
                "many",
                IpAddr::V4(Ipv4Addr::from(u32::try_from(i).unwrap() + 1)),
            )
            .unwrap();
        }
        assert!(matches!(
            r.insert(None, "many", ip("10.255.0.1")),
            Err(RecordError::TooManyAddrs(_))
        ));
    }

    #[test]
    fn network_scoping() {
        let (a, b) = (NetworkId(1), NetworkId(2));
        let mut r = Records::new(&AddrPlan::default(), &[]).unwrap();
        r.insert(Some(a), "db", ip("10.89.1.10")).unwrap();
        r.insert(Some(b), "db", ip("10.89.2.10")).unwrap();
        r.insert(Some(a), "web.a.rlnet.internal", ip("10.89.1.11"))
            .unwrap();
        r.insert(None, "shared", ip("192.0.2.9")).unwrap();
        assert_eq!(
            addrs(r.lookup_str(Some(a), "db")),
            Some(vec![ip("10.89.1.10")])
        );
        assert_eq!(
            addrs(r.lookup_str(Some(b), "db")),
            Some(vec![ip("10.89.2.10")])
        );
        // The unnamed network resolves no member names.
        assert!(matches!(r.lookup_str(None, "db"), Lookup::NotOurs));
        assert_eq!(
            addrs(r.lookup_str(Some(b), "shared")),
            Some(vec![ip("192.0.2.9")])
        );
        // In-zone member names: another network gets NXDOMAIN, the empty
        // non-terminal is NODATA for members only.
        assert_eq!(
            addrs(r.lookup_str(Some(a), "web.a.rlnet.internal")),
            Some(vec![ip("10.89.1.11")])
        );
        assert!(matches!(
            r.lookup_str(Some(b), "web.a.rlnet.internal"),
            Lookup::NxDomain
        ));
        assert_eq!(
            addrs(r.lookup_str(Some(a), "a.rlnet.internal")),
            Some(vec![])
        );
        assert!(matches!(
            r.lookup_str(Some(b), "a.rlnet.internal"),
            Lookup::NxDomain
        ));
        // Stub addresses map requesters to networks.
        r.set_stub_network(ip("10.89.1.3"), Some(a));
        r.set_stub_network(ip("10.89.2.3"), Some(b));
        assert_eq!(r.network_of_stub(ip("10.89.1.3")), Some(a));
        assert_eq!(r.network_of_stub(ip("10.0.2.3")), None);
        r.set_stub_network(ip("10.89.2.3"), None);
        assert_eq!(r.network_of_stub(ip("10.89.2.3")), None);
        // Removal.
        assert_eq!(r.remove(Some(b), "db"), 1);
        assert!(matches!(r.lookup_str(Some(b), "db"), Lookup::NotOurs));
        r.remove_network(a);
        assert!(matches!(r.lookup_str(Some(a), "db"), Lookup::NotOurs));
        assert!(matches!(
            r.lookup_str(Some(a), "a.rlnet.internal"),
            Lookup::NxDomain
        ));
        assert_eq!(r.network_of_stub(ip("10.89.1.3")), None);
        assert_eq!(r.remove(None, "shared"), 1);
        assert_eq!(r.remove(None, "shared"), 0);
        assert_eq!(r.remove(None, "in valid"), 0);
    }

    #[test]
    fn keys_do_not_confuse_dots_in_labels() {
        let mut r = Records::empty();
        r.insert(None, "a.b", ip("192.0.2.1")).unwrap();
        let one_label = Name::from_labels(vec![b"a.b".to_vec()]).unwrap();
        assert!(matches!(r.lookup(None, &one_label), Lookup::NotOurs));
        let two = Name::from_labels(vec![b"A".to_vec(), b"b".to_vec()]).unwrap();
        assert_eq!(addrs(r.lookup(None, &two)), Some(vec![ip("192.0.2.1")]));
        assert!(matches!(r.lookup(None, &Name::root()), Lookup::NotOurs));
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        r.insert(None, "lo6", v6).unwrap();
        assert_eq!(addrs(r.lookup_str(None, "lo6")), Some(vec![v6]));
    }
}
