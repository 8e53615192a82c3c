//! The anti-spoofing guard of a kernel-switched named network as nf_tables
//! operations (docs/kernel-switching.md): what `engine/switch.rs`'s
//! `source_ok`/`ipv6_ok` enforce on a member, for a member whose link is a
//! veth port of a Linux bridge. `wire/nft.rs` turns these into netlink bytes
//! and `sys/nft.rs` sends them. Pure: no I/O.
//!
//! No sets and no maps, to keep the encoder small: each member has its own
//! base chain at bridge prerouting whose first rule lets through (to the
//! other members' chains) every frame not from its own port, so each base
//! chain judges only its own member's frames, and a drop in any of them
//! drops the frame. Sets of addresses become one rule per address.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::icmpv6::{MLD, NA, NS, OPT_NONCE, OPT_SLLA, OPT_TLLA, RA, REDIRECT, RS};

/// The table's name; family bridge.
pub const TABLE: &str = "rlnet";
/// The kernel's interface-name size (IFNAMSIZ, with the NUL).
pub const IFNAMSIZ: usize = 16;
/// Longest chain name this guard makes (the kernel's limit was 31 bytes
/// before Linux 4.14; keep within it).
pub const CHAIN_MAX: usize = 31;

/// One kernel member, as the guard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardMember {
    /// The bridge-side veth's name (at most 15 bytes, e.g. "v7"); the
    /// member's chains are named after it.
    pub port: String,
    pub mac: [u8; 6],
    pub ip4: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// Its EUI-64 link-local address (`Member::link_local`).
    pub link_local: Ipv6Addr,
}

impl GuardMember {
    /// The guard's view of the member with these addresses on `port`.
    pub fn new(port: &str, mac: [u8; 6], ip4: Ipv4Addr, ip6: Option<Ipv6Addr>) -> GuardMember {
        GuardMember {
            port: port.to_string(),
            mac,
            ip4,
            ip6,
            link_local: super::member::link_local_of(mac),
        }
    }
}

/// One change to the table; a batch of them commits atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    NewTable,
    /// A base chain is `type filter hook prerouting priority -200; policy
    /// accept`; any other is a regular chain (a jump or goto target).
    NewChain {
        name: String,
        base: bool,
    },
    /// Appended at the end of `chain`.
    NewRule {
        chain: String,
        exprs: Vec<Expr>,
    },
    /// Deletes every rule of the chain.
    FlushChain {
        name: String,
    },
    DelChain {
        name: String,
    },
}

/// The few nf_tables expressions the guard needs. Loads go into register 1,
/// comparisons read register 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta {
        key: MetaKey,
    },
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
    },
    Cmp {
        op: CmpOp,
        data: Vec<u8>,
    },
    Verdict(Verdict),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// skb->protocol: the ethertype, 2 bytes, network order.
    Protocol,
    /// The input interface's name, IFNAMSIZ bytes.
    IifName,
    /// The transport protocol after IPv6 extension headers, 1 byte
    /// (`nft` loads this for `icmpv6 type`).
    L4Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    Link,
    Network,
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(String),
    Goto(String),
}

/// Why a member cannot be guarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error(
        "bridge port name {0:?} is not an interface name (1 to 15 bytes, no NUL, '/' or space)"
    )]
    PortName(String),
}

const ETH_ARP: u16 = 0x0806;
const ETH_IP: u16 = 0x0800;
const ETH_IP6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
/// A source / target link-layer address option of one Ethernet address
/// (type, length in units of 8 bytes).
const OPT_SLLA_ONE: [u8; 2] = [OPT_SLLA, 1];
const OPT_TLLA_ONE: [u8; 2] = [OPT_TLLA, 1];

/// Creates the (empty) table; creating it again is harmless.
pub fn table() -> Vec<Op> {
    vec![Op::NewTable]
}

/// Can `port` name a bridge port and its chains?
pub fn check_port(port: &str) -> Result<(), GuardError> {
    let ok = !port.is_empty()
        && port.len() < IFNAMSIZ
        && !port
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(GuardError::PortName(port.to_string()))
    }
}

/// The chains of the member on `port`, the base chain first.
pub fn chains(port: &str) -> [String; 5] {
    [
        port.to_string(),
        format!("{port}_6"),
        format!("{port}_6s"),
        format!("{port}_nd"),
        format!("{port}_rs"),
    ]
}

/// The member's chains and rules (after [`table`]). A port that is not an
/// interface name ([`check_port`]) gets a base chain that drops every
/// frame on the bridge: loud, never open. [`try_add_member`] reports it.
pub fn add_member(m: &GuardMember) -> Vec<Op> {
    match try_add_member(m) {
        Ok(ops) => ops,
        Err(_) => vec![
            Op::NewChain {
                name: m.port.clone(),
                base: true,
            },
            Op::NewRule {
                chain: m.port.clone(),
                exprs: vec![Expr::Verdict(Verdict::Drop)],
            },
        ],
    }
}

/// [`add_member`], refusing a port that is not an interface name.
pub fn try_add_member(m: &GuardMember) -> Result<Vec<Op>, GuardError> {
    check_port(&m.port)?;
    let [base, v6, v6s, nd, rs] = chains(&m.port);
    let mut ops = vec![Op::NewChain {
        name: base.clone(),
        base: true,
    }];
    for name in [&v6, &v6s, &nd, &rs] {
        ops.push(Op::NewChain {
            name: name.clone(),
            base: false,
        });
    }
    let rules = [
        (&base, base_rules(m, &v6)),
        (&v6, v6_rules(m, &v6s)),
        (&v6s, own_source_rules(m, &nd, &rs)),
        (&nd, nd_rules(m)),
        (&rs, rs_rules(m)),
    ];
    for (chain, list) in rules {
        for exprs in list {
            ops.push(Op::NewRule {
                chain: chain.clone(),
                exprs,
            });
        }
    }
    Ok(ops)
}

/// Deletes every chain of the member on `port`: all flushed first, so no
/// rule still jumps to a chain when it goes (the kernel refuses to delete a
/// chain in use), then deleted, all in one batch.
pub fn remove_member(port: &str) -> Vec<Op> {
    let names = chains(port);
    let flush = names.iter().map(|n| Op::FlushChain { name: n.clone() });
    let del = names.iter().map(|n| Op::DelChain { name: n.clone() });
    flush.chain(del).collect()
}

/// The member's IPv6 addresses: its IPv6 address if any, its link-local.
fn own6(m: &GuardMember) -> Vec<Ipv6Addr> {
    let mut v: Vec<Ipv6Addr> = m.ip6.into_iter().collect();
    if !v.contains(&m.link_local) {
        v.push(m.link_local);
    }
    v
}

fn cmp(data: &[u8]) -> Expr {
    Expr::Cmp {
        op: CmpOp::Eq,
        data: data.to_vec(),
    }
}

fn load(base: PayloadBase, offset: u32, len: u32) -> Expr {
    Expr::Payload { base, offset, len }
}

fn verdict(v: Verdict) -> Expr {
    Expr::Verdict(v)
}

/// `ether type T` (as nft emits it in the bridge family).
fn ether_type(t: u16) -> Vec<Expr> {
    vec![load(PayloadBase::Link, 12, 2), cmp(&t.to_be_bytes())]
}

/// `meta protocol ip6`, which nft puts before an `ip6 …` match.
fn proto6() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::Protocol,
        },
        cmp(&ETH_IP6.to_be_bytes()),
    ]
}

/// `icmpv6 type T`: nft's dependency (ether type ip6, meta l4proto
/// ipv6-icmp) then the type at the transport header.
fn icmp6_type(t: u8) -> Vec<Expr> {
    let mut e = ether_type(ETH_IP6);
    e.extend([
        Expr::Meta {
            key: MetaKey::L4Proto,
        },
        cmp(&[ICMPV6]),
        load(PayloadBase::Transport, 0, 1),
        cmp(&[t]),
    ]);
    e
}

/// `ip6 saddr A` (after [`proto6`]).
fn saddr6(a: Ipv6Addr) -> Vec<Expr> {
    vec![load(PayloadBase::Network, 8, 16), cmp(&a.octets())]
}

/// `ip6 nexthdr ipv6-icmp ip6 length LEN`: one 3-byte load of the payload
/// length and the next header, as nft merges them. No extension header.
fn icmp6_len(len: u16) -> Vec<Expr> {
    let [hi, lo] = len.to_be_bytes();
    vec![load(PayloadBase::Network, 4, 3), cmp(&[hi, lo, ICMPV6])]
}

fn rule(parts: &[&[Expr]], v: Verdict) -> Vec<Expr> {
    let mut e: Vec<Expr> = parts.iter().flat_map(|p| p.iter().cloned()).collect();
    e.push(verdict(v));
    e
}

/// The base chain: only frames from the member's port; its MAC as the
/// source; ARP and IPv4 only as itself; IPv6 on to `v6`; nothing else.
fn base_rules(m: &GuardMember, v6: &str) -> Vec<Vec<Expr>> {
    let mut ifname = [0u8; IFNAMSIZ];
    for (d, s) in ifname.iter_mut().zip(m.port.bytes()) {
        *d = s;
    }
    let mut arp_sender = m.mac.to_vec();
    arp_sender.extend_from_slice(&m.ip4.octets());
    let iif = Expr::Meta {
        key: MetaKey::IifName,
    };
    let not = |data: &[u8]| Expr::Cmp {
        op: CmpOp::Neq,
        data: data.to_vec(),
    };
    vec![
        vec![iif, not(&ifname), verdict(Verdict::Accept)],
        vec![
            load(PayloadBase::Link, 6, 6),
            not(&m.mac),
            verdict(Verdict::Drop),
        ],
        // htype 1, ptype ip; hlen 6, plen 4; sender MAC and IPv4 (the
        // three loads nft merges the six matches into).
        rule(
            &[
                &ether_type(ETH_ARP),
                &[load(PayloadBase::Network, 0, 4), cmp(&[0, 1, 8, 0])],
                &[load(PayloadBase::Network, 4, 2), cmp(&[6, 4])],
                &[load(PayloadBase::Network, 8, 10), cmp(&arp_sender)],
            ],
            Verdict::Accept,
        ),
        rule(
            &[
                &ether_type(ETH_IP),
                &[load(PayloadBase::Network, 12, 4), cmp(&m.ip4.octets())],
            ],
            Verdict::Accept,
        ),
        rule(&[&ether_type(ETH_IP6)], Verdict::Goto(v6.to_string())),
        vec![verdict(Verdict::Drop)],
    ]
}

/// IPv6, before the source check: router-only messages dropped; what may
/// come from `::` (DAD for its own address, a bare RS, MLD); then only its
/// own sources, on to `v6s`.
fn v6_rules(m: &GuardMember, v6s: &str) -> Vec<Vec<Expr>> {
    let own = own6(m);
    let unspec = saddr6(Ipv6Addr::UNSPECIFIED);
    let mut r = vec![
        rule(&[&icmp6_type(RA)], Verdict::Drop),
        rule(&[&icmp6_type(REDIRECT)], Verdict::Drop),
    ];
    let ty = |t: u8| [load(PayloadBase::Transport, 0, 1), cmp(&[t])];
    let target = |a: &Ipv6Addr| [load(PayloadBase::Transport, 8, 16), cmp(&a.octets())];
    // DAD: no option, or only the nonce option (RFC 7527).
    for a in &own {
        let dad = [&proto6()[..], &unspec, &icmp6_len(24), &ty(NS), &target(a)];
        r.push(rule(&dad, Verdict::Accept));
    }
    for a in &own {
        let nonce = [load(PayloadBase::Transport, 24, 1), cmp(&[OPT_NONCE])];
        let dad = [
            &proto6()[..],
            &unspec,
            &icmp6_len(32),
            &ty(NS),
            &target(a),
            &nonce,
        ];
        r.push(rule(&dad, Verdict::Accept));
    }
    r.push(rule(
        &[&proto6(), &unspec, &icmp6_len(8), &ty(RS)],
        Verdict::Accept,
    ));
    let l4 = [
        Expr::Meta {
            key: MetaKey::L4Proto,
        },
        cmp(&[ICMPV6]),
    ];
    for t in MLD {
        r.push(rule(&[&proto6(), &unspec, &l4, &ty(t)], Verdict::Accept));
    }
    for a in &own {
        r.push(rule(
            &[&proto6(), &saddr6(*a)],
            Verdict::Goto(v6s.to_string()),
        ));
    }
    r.push(vec![verdict(Verdict::Drop)]);
    r
}

/// From its own source: an NA only for its own target; NS/NA on to `nd`,
/// RS on to `rs` (their link-layer options); anything else passes.
fn own_source_rules(m: &GuardMember, nd: &str, rs: &str) -> Vec<Vec<Expr>> {
    let mut r = Vec::new();
    for a in own6(m) {
        let target = [load(PayloadBase::Transport, 8, 16), cmp(&a.octets())];
        r.push(rule(
            &[&icmp6_type(NA), &target],
            Verdict::Goto(nd.to_string()),
        ));
    }
    r.push(rule(&[&icmp6_type(NA)], Verdict::Drop));
    r.push(rule(&[&icmp6_type(NS)], Verdict::Goto(nd.to_string())));
    r.push(rule(&[&icmp6_type(RS)], Verdict::Goto(rs.to_string())));
    r.push(vec![verdict(Verdict::Accept)]);
    r
}

/// The option `opt` holding the member's MAC, as 8 bytes.
fn lla(opt: [u8; 2], mac: [u8; 6]) -> Vec<u8> {
    let mut v = opt.to_vec();
    v.extend_from_slice(&mac);
    v
}

/// NS/NA: no option, or exactly one SLLA/TLLA holding its MAC (the shapes
/// Linux sends; stricter than `ipv6_ok`, which walks any option list).
fn nd_rules(m: &GuardMember) -> Vec<Vec<Expr>> {
    let opt = |o: [u8; 2]| [load(PayloadBase::Transport, 24, 8), cmp(&lla(o, m.mac))];
    vec![
        rule(&[&proto6(), &icmp6_len(24)], Verdict::Accept),
        rule(
            &[&proto6(), &icmp6_len(32), &opt(OPT_SLLA_ONE)],
            Verdict::Accept,
        ),
        rule(
            &[&proto6(), &icmp6_len(32), &opt(OPT_TLLA_ONE)],
            Verdict::Accept,
        ),
        vec![verdict(Verdict::Drop)],
    ]
}

/// RS: no option, or exactly one SLLA holding its MAC.
fn rs_rules(m: &GuardMember) -> Vec<Vec<Expr>> {
    let opt = [
        load(PayloadBase::Transport, 8, 8),
        cmp(&lla(OPT_SLLA_ONE, m.mac)),
    ];
    vec![
        rule(&[&proto6(), &icmp6_len(8)], Verdict::Accept),
        rule(&[&proto6(), &icmp6_len(16), &opt], Verdict::Accept),
        vec![verdict(Verdict::Drop)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(ip6: Option<Ipv6Addr>) -> GuardMember {
        GuardMember {
            port: "v7".into(),
            mac: [0x02, 0x89, 0x0a, 0x59, 0x00, 0x64],
            ip4: Ipv4Addr::new(10, 89, 0, 100),
            ip6,
            link_local: "fe80::89:aff:fe59:64".parse().unwrap(),
        }
    }

    fn rules_of<'a>(ops: &'a [Op], chain: &str) -> Vec<&'a [Expr]> {
        ops.iter()
            .filter_map(|op| match op {
                Op::NewRule { chain: c, exprs } if c == chain => Some(exprs.as_slice()),
                _ => None,
            })
            .collect()
    }

    fn created(ops: &[Op]) -> Vec<(&str, bool)> {
        ops.iter()
            .filter_map(|op| match op {
                Op::NewChain { name, base } => Some((name.as_str(), *base)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_member_gets_one_base_chain_and_four_regular_ones() {
        let ops = add_member(&member(Some("fd00:89::100".parse().unwrap())));
        assert_eq!(
            created(&ops),
            [
                ("v7", true),
                ("v7_6", false),
                ("v7_6s", false),
                ("v7_nd", false),
                ("v7_rs", false)
            ]
        );
        // Every chain exists before the first rule (rules jump to them).
        let first_rule = ops.iter().position(|o| matches!(o, Op::NewRule { .. }));
        assert_eq!(first_rule, Some(5));
        let count = |c| rules_of(&ops, c).len();
        // base: iifname, ether saddr, ARP, IPv4, IPv6, drop.
        assert_eq!(count("v7"), 6);
        // RA, redirect, 2 × DAD bare, 2 × DAD nonce, RS, 4 × MLD, 2 × source, drop.
        assert_eq!(count("v7_6"), 14);
        // 2 × NA target, NA drop, NS, RS, accept.
        assert_eq!(count("v7_6s"), 6);
        assert_eq!(count("v7_nd"), 4);
        assert_eq!(count("v7_rs"), 3);
        // Every rule ends in a verdict and has nothing after it.
        for op in &ops {
            if let Op::NewRule { exprs, .. } = op {
                assert!(matches!(exprs.last(), Some(Expr::Verdict(_))), "{exprs:?}");
                let verdicts = exprs.iter().filter(|e| matches!(e, Expr::Verdict(_)));
                assert_eq!(verdicts.count(), 1);
            }
        }
    }

    #[test]
    fn the_base_chain_judges_only_its_own_port_and_ends_in_drop() {
        let ops = add_member(&member(None));
        let base = rules_of(&ops, "v7");
        let mut ifname = b"v7".to_vec();
        ifname.resize(IFNAMSIZ, 0);
        assert_eq!(
            base[0],
            [
                Expr::Meta {
                    key: MetaKey::IifName
                },
                Expr::Cmp {
                    op: CmpOp::Neq,
                    data: ifname
                },
                Expr::Verdict(Verdict::Accept)
            ]
        );
        assert_eq!(
            base[1][1],
            Expr::Cmp {
                op: CmpOp::Neq,
                data: vec![0x02, 0x89, 0x0a, 0x59, 0x00, 0x64]
            }
        );
        assert_eq!(base.last().unwrap(), &[Expr::Verdict(Verdict::Drop)]);
        for c in ["v7_6", "v7_nd", "v7_rs"] {
            assert_eq!(
                rules_of(&ops, c).last().unwrap(),
                &[Expr::Verdict(Verdict::Drop)]
            );
        }
    }

    #[test]
    fn without_ipv6_only_the_link_local_is_the_members() {
        let ops = add_member(&member(None));
        // One DAD rule of each shape, one source rule, one NA target rule.
        assert_eq!(rules_of(&ops, "v7_6").len(), 11);
        assert_eq!(rules_of(&ops, "v7_6s").len(), 5);
        let ll = member(None).link_local.octets().to_vec();
        let compares: Vec<&Vec<u8>> = ops
            .iter()
            .filter_map(|o| match o {
                Op::NewRule { exprs, .. } => Some(exprs),
                _ => None,
            })
            .flatten()
            .filter_map(|e| match e {
                Expr::Cmp { data, .. } if data.len() == 16 && data[0] != b'v' => Some(data),
                _ => None,
            })
            .collect();
        // Every 16-byte comparison is `::` or the link-local address.
        assert!(!compares.is_empty());
        for d in compares {
            assert!(*d == ll || *d == [0; 16], "{d:?}");
        }
    }

    #[test]
    fn remove_member_flushes_then_deletes_every_chain_add_member_made() {
        let m = member(Some("fd00:89::100".parse().unwrap()));
        let add = add_member(&m);
        let made: Vec<&str> = created(&add).iter().map(|(n, _)| *n).collect();
        let rm = remove_member("v7");
        let flushed: Vec<&str> = rm
            .iter()
            .filter_map(|o| match o {
                Op::FlushChain { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let deleted: Vec<&str> = rm
            .iter()
            .filter_map(|o| match o {
                Op::DelChain { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(flushed, made);
        assert_eq!(deleted, made);
        // All flushes come before the first delete.
        assert!(
            rm[..made.len()]
                .iter()
                .all(|o| matches!(o, Op::FlushChain { .. }))
        );
        // Every jump/goto target is one of the member's chains.
        for op in &add {
            if let Op::NewRule { exprs, .. } = op
                && let Some(Expr::Verdict(Verdict::Goto(t) | Verdict::Jump(t))) = exprs.last()
            {
                assert!(made.contains(&t.as_str()), "{t}");
            }
        }
    }

    #[test]
    fn names_stay_within_the_limits() {
        let mut m = member(None);
        m.port = "v".repeat(15);
        assert!(try_add_member(&m).is_ok());
        for n in chains(&m.port) {
            assert!(n.len() <= CHAIN_MAX, "{n}");
        }
        for bad in ["", "v1234567890123456", "a/b", "a b", "a\0"] {
            m.port = bad.into();
            assert_eq!(try_add_member(&m), Err(GuardError::PortName(bad.into())));
            // Never an open port: a base chain that drops everything.
            assert_eq!(
                rules_of(&add_member(&m), bad),
                [[Expr::Verdict(Verdict::Drop)].as_slice()]
            );
        }
        assert_eq!(table(), [Op::NewTable]);
    }
}
