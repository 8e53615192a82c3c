//! The table of published-port rules (docs/api.md, "Rule ids" and
//! "Conflicts and privileged ports"): ids, conflict checks and the lookup the
//! data path does for each new inbound connection.
//!
//! Pure bookkeeping. Binding host sockets is the caller's job, done between
//! [`PortTable::check`] and [`PortTable::insert`], so a request that fails to
//! bind leaves the table (and the id counter) untouched.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

use super::spec::{Mode, Proto, PublishSpec};
use crate::config::AddrPlan;

/// Rule ids are shared by every verb (`add_hostfwd`, `add_publish`, `-p`).
pub type RuleId = u64;

/// One published port or port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: RuleId,
    pub spec: PublishSpec,
    pub mode: Mode,
    /// Explicit target address inside the namespace (`add_hostfwd`'s
    /// `guest_addr`, or a member chosen by name); `None` = the namespace's
    /// address of the listener's family.
    pub guest: Option<IpAddr>,
}

impl Rule {
    /// The namespace address that a connection accepted on `listener` goes
    /// to. `None` only for an IPv6 listener of a rule without an explicit
    /// guest when the link has no IPv6 (`--disable-ipv6`): rlnet does not
    /// translate between families behind the caller's back.
    pub fn target(&self, listener: IpAddr, plan: &AddrPlan) -> Option<IpAddr> {
        if let Some(guest) = self.guest {
            return Some(guest);
        }
        // A v4-mapped listener address carries IPv4 traffic.
        match listener.to_canonical() {
            IpAddr::V4(_) => Some(IpAddr::V4(plan.guest4)),
            IpAddr::V6(_) => plan.v6.map(|v6| IpAddr::V6(v6.guest6)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TableError {
    /// Only reachable with a hand-built spec; parsed specs are always valid.
    #[error("{0} is not a valid mapping: ports must be 1-65535 and both ranges the same length")]
    Invalid(PublishSpec),
    #[error(
        "host port {port} (in {spec}) is privileged: net.ipv4.ip_unprivileged_port_start is {start}; \
         use a host port >= {start}, or lower the limit as root: \
         sysctl -w net.ipv4.ip_unprivileged_port_start={port}"
    )]
    Privileged {
        spec: PublishSpec,
        port: u16,
        start: u16,
    },
    #[error(
        "host port {port}/{} (in {spec}) is already published by rule {id} ({existing})",
        spec.proto
    )]
    Conflict {
        spec: PublishSpec,
        port: u16,
        id: RuleId,
        existing: PublishSpec,
    },
    #[error(
        "host port {port}/{} is published twice in this request: {other} and {spec}",
        spec.proto
    )]
    ConflictInRequest {
        spec: PublishSpec,
        port: u16,
        other: PublishSpec,
    },
    #[error("no rule with id {0}")]
    UnknownId(RuleId),
    #[error("duplicate id {0}")]
    DuplicateId(RuleId),
}

/// The published-port rules of one network, in insertion order.
#[derive(Debug, Clone)]
pub struct PortTable {
    rules: Vec<Rule>,
    next_id: RuleId,
}

impl Default for PortTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PortTable {
    pub fn new() -> Self {
        PortTable {
            rules: Vec::new(),
            // slirp4netns numbers from 1; callers store the id it returns.
            next_id: 1,
        }
    }

    /// Validates a request of several specs against the table and against
    /// each other; `Ok` only if every spec is acceptable (all or nothing).
    ///
    /// Host addresses overlap when they could receive the same connection:
    /// `None` overlaps everything, `0.0.0.0` every IPv4 address, `::` every
    /// IPv6 address (so the caller binds `::` with IPV6_V6ONLY), and a
    /// v4-mapped IPv6 address counts as the IPv4 address it carries.
    ///
    /// `unprivileged_start` is the value of
    /// `net.ipv4.ip_unprivileged_port_start` (it applies to IPv6 too); pass
    /// 0 when rlnet may bind low ports (CAP_NET_BIND_SERVICE).
    pub fn check(&self, specs: &[PublishSpec], unprivileged_start: u16) -> Result<(), TableError> {
        for (i, spec) in specs.iter().enumerate() {
            if !is_valid(spec) {
                return Err(TableError::Invalid(*spec));
            }
            if spec.host_ports.start < unprivileged_start {
                return Err(TableError::Privileged {
                    spec: *spec,
                    port: spec.host_ports.start,
                    start: unprivileged_start,
                });
            }
            for rule in &self.rules {
                if let Some(port) = overlap(spec, &rule.spec) {
                    return Err(TableError::Conflict {
                        spec: *spec,
                        port,
                        id: rule.id,
                        existing: rule.spec,
                    });
                }
            }
            for other in &specs[..i] {
                if let Some(port) = overlap(spec, other) {
                    return Err(TableError::ConflictInRequest {
                        spec: *spec,
                        port,
                        other: *other,
                    });
                }
            }
        }
        Ok(())
    }

    /// Inserts a spec that passed [`check`](Self::check) and whose host
    /// sockets the caller has bound; returns its new id.
    pub fn insert(&mut self, spec: PublishSpec, mode: Mode, guest: Option<IpAddr>) -> RuleId {
        let id = self.next_id;
        // Ids are never reused; 2^64 adds cannot happen, saturate instead of panicking.
        self.next_id = self.next_id.saturating_add(1);
        self.rules.push(Rule {
            id,
            spec,
            mode,
            guest,
        });
        id
    }

    pub fn remove(&mut self, id: RuleId) -> Result<Rule, TableError> {
        let pos = self
            .rules
            .iter()
            .position(|r| r.id == id)
            .ok_or(TableError::UnknownId(id))?;
        Ok(self.rules.remove(pos))
    }

    /// Removes several rules at once, all or nothing: an unknown or repeated
    /// id is an error and nothing is removed. Returns the rules in `ids` order.
    pub fn remove_many(&mut self, ids: &[RuleId]) -> Result<Vec<Rule>, TableError> {
        let mut seen = BTreeSet::new();
        for &id in ids {
            if self.get(id).is_none() {
                return Err(TableError::UnknownId(id));
            }
            if !seen.insert(id) {
                return Err(TableError::DuplicateId(id));
            }
        }
        let mut removed = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(pos) = self.rules.iter().position(|r| r.id == id) {
                removed.push(self.rules.remove(pos));
            }
        }
        Ok(removed)
    }

    pub fn get(&self, id: RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// In insertion order, as `list_hostfwd` prints them.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule serving a connection that arrived on host `local` (the
    /// accepted socket's local address), and the namespace port it maps to.
    ///
    /// `check` keeps rules from overlapping, so at most one matches; should a
    /// caller have inserted overlapping rules anyway, the most specific host
    /// address wins (exact, then family wildcard, then all addresses).
    pub fn lookup(&self, proto: Proto, local: SocketAddr) -> Option<(&Rule, u16)> {
        let ip = local.ip().to_canonical();
        let mut best: Option<(&Rule, u16, u8)> = None;
        for rule in &self.rules {
            if rule.spec.proto != proto {
                continue;
            }
            let Some(score) = host_match(rule.spec.host_ip, ip) else {
                continue;
            };
            let Some(ns_port) = rule.spec.ns_port_for(local.port()) else {
                continue;
            };
            if best.is_none_or(|(_, _, s)| score > s) {
                best = Some((rule, ns_port, score));
            }
        }
        best.map(|(rule, port, _)| (rule, port))
    }
}

fn is_valid(spec: &PublishSpec) -> bool {
    let (h, n) = (spec.host_ports, spec.ns_ports);
    !h.is_empty() && !n.is_empty() && h.start >= 1 && n.start >= 1 && h.len() == n.len()
}

/// The first host port that both specs could receive, if they overlap.
fn overlap(a: &PublishSpec, b: &PublishSpec) -> Option<u16> {
    let (x, y) = (a.host_ports, b.host_ports);
    let ports_overlap = x.start <= y.end && y.start <= x.end;
    (a.proto == b.proto && ports_overlap && hosts_overlap(a.host_ip, b.host_ip))
        .then(|| x.start.max(y.start))
}

fn hosts_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (a, b) = (a.to_canonical(), b.to_canonical());
    a.is_ipv4() == b.is_ipv4() && (a == b || a.is_unspecified() || b.is_unspecified())
}

/// How specifically a rule's host address matches `local` (already
/// canonical): 2 exact, 1 family wildcard, 0 all addresses; `None` no match.
fn host_match(rule: Option<IpAddr>, local: IpAddr) -> Option<u8> {
    let Some(rule) = rule else {
        return Some(0);
    };
    let rule = rule.to_canonical();
    if rule == local {
        Some(2)
    } else if rule.is_unspecified() && rule.is_ipv4() == local.is_ipv4() {
        Some(1)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::spec::PortRange;

    fn p(s: &str) -> PublishSpec {
        s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn table(specs: &[&str]) -> PortTable {
        let mut t = PortTable::new();
        for s in specs {
            let spec = p(s);
            t.check(&[spec], 0).unwrap();
            t.insert(spec, Mode::Stack, None);
        }
        t
    }

    fn conflict(existing: &str, new: &str) -> bool {
        table(&[existing]).check(&[p(new)], 0).is_err()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ids_count_from_one_and_are_never_reused() {
        let mut t = PortTable::new();
        assert_eq!(t.insert(p("8080:80"), Mode::Stack, None), 1);
        assert_eq!(t.insert(p("8081:80"), Mode::Splice, None), 2);
        // A failed add (check refuses it) consumes no id.
        assert!(t.check(&[p("8080:90")], 0).is_err());
        assert_eq!(t.insert(p("8082:80"), Mode::Stack, None), 3);
        assert_eq!(t.remove(3).unwrap().spec, p("8082:80"));
        assert_eq!(t.remove(3), Err(TableError::UnknownId(3)));
        assert_eq!(t.insert(p("8082:80"), Mode::Stack, None), 4);
        let ids: Vec<_> = t.rules().iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 4]);
        assert_eq!(t.get(2).unwrap().mode, Mode::Splice);
        assert!(t.get(3).is_none());
        assert_eq!(t.len(), 3);
        assert!(PortTable::default().is_empty());
    }

    #[test]
    fn conflicts_by_proto_and_port() {
        assert!(conflict("8080:80", "8080:80"));
        assert!(
            conflict("8080:80", "8080:81"),
            "same host port, other ns port"
        );
        assert!(!conflict("8080:80", "8080:80/udp"), "other proto");
        assert!(!conflict("8080:80", "8081:80"), "same ns port is fine");
        assert!(conflict("8000-8010:9000-9010", "8010-8020:1-11"));
        assert!(conflict("8005:80", "8000-8010:9000-9010"));
        assert!(!conflict("8000-8010:9000-9010", "8011-8020:1-10"));
        assert!(!conflict("8000-8010:9000-9010/udp", "7990-7999:1-10/udp"));
    }

    #[test]
    fn conflicts_by_host_address() {
        for (a, b, want) in [
            ("0.0.0.0:8080:80", "127.0.0.1:8080:80", true),
            ("127.0.0.1:8080:80", "0.0.0.0:8080:80", true),
            ("127.0.0.1:8080:80", "127.0.0.2:8080:80", false),
            ("127.0.0.1:8080:80", "127.0.0.1:8080:80", true),
            ("0.0.0.0:8080:80", "[::1]:8080:80", false),
            ("0.0.0.0:8080:80", "[::]:8080:80", false),
            ("[::]:8080:80", "[::1]:8080:80", true),
            ("[::1]:8080:80", "[fd00::1]:8080:80", false),
            ("[::ffff:127.0.0.1]:8080:80", "127.0.0.1:8080:80", true),
            ("[::ffff:127.0.0.1]:8080:80", "0.0.0.0:8080:80", true),
            ("[::ffff:127.0.0.1]:8080:80", "[::]:8080:80", false),
            ("8080:80", "127.0.0.1:8080:80", true),
            ("8080:80", "[::1]:8080:80", true),
            ("8080:80", "0.0.0.0:8080:80", true),
            ("[::]:8080:80", "8080:80", true),
            ("192.0.2.1:8080:80", "8080:80", true),
            ("8080:80", "8080:80/udp", false),
        ] {
            assert_eq!(conflict(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn conflict_messages_name_both_sides() {
        let t = table(&["0.0.0.0:8000-8010:9000-9010"]);
        let e = t.check(&[p("127.0.0.1:8005-8020:1-16")], 0).unwrap_err();
        assert_eq!(
            e,
            TableError::Conflict {
                spec: p("127.0.0.1:8005-8020:1-16"),
                port: 8005,
                id: 1,
                existing: p("0.0.0.0:8000-8010:9000-9010"),
            }
        );
        assert_eq!(
            e.to_string(),
            "host port 8005/tcp (in 127.0.0.1:8005-8020:1-16/tcp) is already published by rule 1 \
             (0.0.0.0:8000-8010:9000-9010/tcp)"
        );
    }

    #[test]
    fn conflicts_within_one_request_are_all_or_nothing() {
        let t = PortTable::new();
        assert_eq!(t.check(&[p("8080:80"), p("8081:80")], 0), Ok(()));
        let e = t
            .check(&[p("8080:80"), p("9000:90/udp"), p("[::1]:8080:81")], 0)
            .unwrap_err();
        assert_eq!(
            e,
            TableError::ConflictInRequest {
                spec: p("[::1]:8080:81"),
                port: 8080,
                other: p("8080:80"),
            }
        );
        assert_eq!(
            e.to_string(),
            "host port 8080/tcp is published twice in this request: 8080:80/tcp and [::1]:8080:81/tcp"
        );
        // The same spec twice is a conflict too.
        assert!(t.check(&[p("8080:80"), p("8080:80")], 0).is_err());
        // One bad spec anywhere refuses the whole request.
        let t = table(&["9000:90/udp"]);
        assert!(t.check(&[p("8080:80"), p("9000:90/udp")], 0).is_err());
    }

    #[test]
    fn privileged_ports_name_the_sysctl_and_the_fix() {
        let t = PortTable::new();
        let e = t
            .check(&[p("8080:80"), p("80-90:8080-8090")], 1024)
            .unwrap_err();
        assert_eq!(
            e,
            TableError::Privileged {
                spec: p("80-90:8080-8090"),
                port: 80,
                start: 1024
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains("net.ipv4.ip_unprivileged_port_start is 1024"),
            "{msg}"
        );
        assert!(msg.contains("use a host port >= 1024"), "{msg}");
        assert!(
            msg.contains("sysctl -w net.ipv4.ip_unprivileged_port_start=80"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        assert_eq!(t.check(&[p("1024:80")], 1024), Ok(()));
        assert_eq!(t.check(&[p("1:80")], 0), Ok(()));
        // The namespace port may be low: only host binds need privilege.
        assert_eq!(t.check(&[p("8080:22")], 1024), Ok(()));
    }

    #[test]
    fn hand_built_invalid_specs_are_refused() {
        let good = p("8080:80");
        for bad in [
            PublishSpec {
                host_ports: PortRange::single(0),
                ..good
            },
            PublishSpec {
                ns_ports: PortRange::single(0),
                ..good
            },
            PublishSpec {
                host_ports: PortRange { start: 9, end: 1 },
                ..good
            },
            PublishSpec {
                ns_ports: PortRange { start: 80, end: 81 },
                ..good
            },
        ] {
            assert_eq!(
                PortTable::new().check(&[bad], 0),
                Err(TableError::Invalid(bad))
            );
        }
    }

    #[test]
    fn remove_many_is_all_or_nothing() {
        let mut t = table(&["8080:80", "8081:80", "8082:80"]);
        assert_eq!(t.remove_many(&[1, 9]), Err(TableError::UnknownId(9)));
        assert_eq!(t.remove_many(&[3, 1, 3]), Err(TableError::DuplicateId(3)));
        assert_eq!(t.remove_many(&[9, 9]), Err(TableError::UnknownId(9)));
        assert_eq!(t.len(), 3);
        let removed = t.remove_many(&[3, 1]).unwrap();
        let ids: Vec<_> = removed.iter().map(|r| r.id).collect();
        assert_eq!(ids, [3, 1]);
        assert_eq!(t.rules().len(), 1);
        assert_eq!(t.rules()[0].id, 2);
        assert_eq!(t.remove_many(&[]), Ok(vec![]));
        assert_eq!(t.remove_many(&[1]), Err(TableError::UnknownId(1)));
        assert_eq!(TableError::DuplicateId(3).to_string(), "duplicate id 3");
    }

    #[test]
    fn lookup_maps_ranges_position_wise() {
        let t = table(&[
            "127.0.0.1:8000-8010:9000-9010",
            "0.0.0.0:8000-8010:100-110/udp",
            "[::1]:8000:22",
            "7000-7001:70-71",
        ]);
        let hit = |proto, addr: &str| t.lookup(proto, sa(addr)).map(|(r, port)| (r.id, port));
        assert_eq!(hit(Proto::Tcp, "127.0.0.1:8000"), Some((1, 9000)));
        assert_eq!(hit(Proto::Tcp, "127.0.0.1:8010"), Some((1, 9010)));
        assert_eq!(hit(Proto::Tcp, "127.0.0.1:8011"), None);
        assert_eq!(hit(Proto::Tcp, "127.0.0.2:8005"), None);
        assert_eq!(hit(Proto::Tcp, "[::ffff:127.0.0.1]:8005"), Some((1, 9005)));
        assert_eq!(hit(Proto::Udp, "192.0.2.7:8003"), Some((2, 103)));
        assert_eq!(hit(Proto::Udp, "[::1]:8003"), None);
        assert_eq!(hit(Proto::Tcp, "[::1]:8000"), Some((3, 22)));
        assert_eq!(hit(Proto::Tcp, "[::1]:8001"), None);
        assert_eq!(hit(Proto::Tcp, "[fd00::5]:7001"), Some((4, 71)));
        assert_eq!(hit(Proto::Tcp, "10.1.1.1:7000"), Some((4, 70)));
        assert_eq!(hit(Proto::Udp, "10.1.1.1:7000"), None);
    }

    #[test]
    fn lookup_prefers_the_most_specific_rule() {
        // Only reachable when a caller skipped check(); still deterministic.
        let mut t = PortTable::new();
        t.insert(p("8080:80"), Mode::Stack, None);
        t.insert(p("0.0.0.0:8080:81"), Mode::Stack, None);
        t.insert(p("127.0.0.1:8080:82"), Mode::Stack, None);
        let port = |a: &str| t.lookup(Proto::Tcp, sa(a)).map(|(_, p)| p);
        assert_eq!(port("127.0.0.1:8080"), Some(82));
        assert_eq!(port("10.0.0.1:8080"), Some(81));
        assert_eq!(port("[::1]:8080"), Some(80));
    }

    #[test]
    fn targets_follow_the_listener_family() {
        let plan = AddrPlan::default();
        let no_v6 = AddrPlan::new(crate::config::default_net4(), false);
        let rule = |guest: Option<&str>| Rule {
            id: 1,
            spec: p("8080:80"),
            mode: Mode::Stack,
            guest: guest.map(|g| g.parse().unwrap()),
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = rule(None);
        assert_eq!(r.target(ip("0.0.0.0"), &plan), Some(ip("10.0.2.100")));
        assert_eq!(r.target(ip("::"), &plan), Some(ip("fd00::100")));
        assert_eq!(
            r.target(ip("::ffff:1.2.3.4"), &plan),
            Some(ip("10.0.2.100"))
        );
        assert_eq!(r.target(ip("::1"), &no_v6), None);
        let r = rule(Some("10.0.2.101"));
        assert_eq!(r.target(ip("127.0.0.1"), &plan), Some(ip("10.0.2.101")));
    }
}
