//! rtnetlink, synchronously: configure the link inside the current network
//! namespace ([`configure_link`]; pasta mode's copy of the host's interface,
//! [`configure_copy`]), and read the host's links, addresses and routes
//! ([`host_net`], pasta's template). One NETLINK_ROUTE socket, one request
//! at a time, each ACKed. No `ip` processes, threads or async runtime: this
//! is on the start-up path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload, NlasIterator,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

/// Upper bounds so a confused or hostile peer cannot keep us looping.
const MAX_RECVS: usize = 1024;
const MAX_MESSAGES: usize = 16384;
/// Frames the namespace's TAP queues for rlnet (the kernel's default is
/// 1000). When rlnet waits for a CPU, a UDP sender at 2 Gbit/s (178,000
/// datagrams/s) fills 1000 in under 6 ms and the kernel drops the rest;
/// 16384 rides out ~90 ms. The ring holds pointers (8 bytes a slot); what
/// sits in it is the namespace's own traffic, and each TCP flow's share is
/// bounded by the window rlnet offers.
pub const TAP_TXQUEUELEN: u32 = 16384;
/// NLMSGERR_ATTR_MSG: the kernel's extended-ACK text ("MTU greater than device maximum").
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLM_F_ACK_TLVS: u16 = 0x200;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open rtnetlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink I/O failed while trying to {op}: {source}")]
    Io { op: String, source: std::io::Error },
    #[error("cannot {op}: {}{}", .errno.desc(), .detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Kernel {
        op: String,
        errno: Errno,
        detail: Option<String>,
    },
    #[error("interface {0} does not exist")]
    NoSuchLink(String),
    #[error("unexpected netlink reply while trying to {op}: {reason}")]
    Protocol { op: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Sysctl {
        path: String,
        source: std::io::Error,
    },
}

pub struct LinkSetup<'a> {
    pub ifname: &'a str,
    pub mtu: u32,
    pub mac: Option<[u8; 6]>,
    /// (address, prefix length, default gateway)
    pub v4: Option<(Ipv4Addr, u8, Ipv4Addr)>,
    pub v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    /// Keep a default route the namespace already has (it joined another
    /// network first, as with Docker) instead of replacing it.
    pub keep_default_route: bool,
}

/// A NETLINK_ROUTE socket in the netns of the thread that created it
/// (`sys/bridge.rs` speaks through it too).
pub(super) struct Rtnl {
    sock: Socket,
    seq: u32,
    ext_ack: bool,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl Rtnl {
    pub(super) fn open() -> Result<Self, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        sock.bind_auto().map_err(NetlinkError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        // Capped ACKs keep error replies small; extended ACKs add the kernel's reason text.
        let ext_ack = sock
            .set_cap_ack(true)
            .and_then(|()| sock.set_ext_ack(true))
            .is_ok();
        // 32 KiB holds any single link/addr/route message; dumps span several recvs.
        Ok(Self {
            sock,
            seq: 0,
            ext_ack,
            tx: Vec::with_capacity(256),
            rx: vec![0; 32 * 1024],
        })
    }

    /// Send one request and collect its replies until the ACK (or NLMSG_DONE for dumps).
    pub(super) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        hdr.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        nl.finalize();
        self.tx.resize(nl.buffer_len(), 0);
        nl.serialize(&mut self.tx);
        let io = |source| NetlinkError::Io { op: op(), source };
        self.sock.send(&self.tx, 0).map_err(io)?;

        let proto = |reason: String| NetlinkError::Protocol { op: op(), reason };
        let mut out = Vec::new();
        let mut seen = 0;
        for _ in 0..MAX_RECVS {
            // MSG_TRUNC makes recv report the real size so truncation is detectable.
            let n = self
                .sock
                .recv(&mut &mut self.rx[..], libc::MSG_TRUNC)
                .map_err(io)?;
            if n > self.rx.len() {
                return Err(proto(format!("reply of {n} bytes truncated")));
            }
            let mut off = 0;
            while off < n {
                seen += 1;
                if seen > MAX_MESSAGES {
                    return Err(proto("too many reply messages".into()));
                }
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.rx[off..n])
                    .map_err(|e| proto(e.to_string()))?;
                let len = m.header.length as usize;
                if len < 16 {
                    return Err(proto(format!("bad message length {len}")));
                }
                off = off.saturating_add((len + 3) & !3);
                if m.header.sequence_number != self.seq {
                    continue; // stale reply to an earlier request or a notification
                }
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(code) => {
                            let detail = if self.ext_ack && m.header.flags & NLM_F_ACK_TLVS != 0 {
                                ext_ack_msg(e.header.get(16..).unwrap_or_default())
                            } else {
                                None
                            };
                            let errno = Errno::from_raw(code.get().saturating_neg());
                            return Err(NetlinkError::Kernel {
                                op: op(),
                                errno,
                                detail,
                            });
                        }
                    },
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
            }
        }
        Err(proto("no acknowledgement".into()))
    }

    /// The index of `name`, which must exist.
    pub(super) fn index_of(&mut self, name: &str) -> Result<u32, NetlinkError> {
        match self.get_link(name)? {
            Some(l) if l.header.index != 0 => Ok(l.header.index),
            _ => Err(NetlinkError::NoSuchLink(name.into())),
        }
    }

    /// RTM_GETLINK by name; `None` if the kernel says ENODEV.
    pub(super) fn get_link(&mut self, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        let op = || format!("look up interface {name}");
        match self.request(RouteNetlinkMessage::GetLink(msg), 0, op) {
            Err(NetlinkError::Kernel {
                errno: Errno::ENODEV,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
        }
    }

    /// A request whose only reply is the ACK.
    pub(super) fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: impl Fn() -> String,
    ) -> Result<(), NetlinkError> {
        self.request(msg, flags, op).map(drop)
    }

    /// RTM_SETLINK on `index`, or on `name` when `index` is 0 (the kernel resolves it).
    pub(super) fn set_link(
        &mut self,
        index: u32,
        name: &str,
        what: &str,
        edit: impl FnOnce(&mut LinkMessage),
    ) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        if index == 0 {
            msg.attributes.push(LinkAttribute::IfName(name.into()));
        }
        edit(&mut msg);
        self.ack(RouteNetlinkMessage::SetLink(msg), 0, || {
            format!("{what} on {name}")
        })
    }

    /// The link-layer address of `index` (or of `name`, index 0).
    fn set_mac(&mut self, index: u32, name: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
        let [a, b, c, d, e, f] = mac;
        let what = format!("set MAC {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}");
        self.set_link(index, name, &what, |m| {
            m.attributes.push(LinkAttribute::Address(mac.into()))
        })
    }

    /// Address `addr/prefix` on `index`, then the default route via `gw` out of it.
    fn add_ip(
        &mut self,
        index: u32,
        name: &str,
        addr: IpAddr,
        prefix: u8,
        gw: IpAddr,
        keep_default: bool,
    ) -> Result<(), NetlinkError> {
        self.add_addr(index, name, addr, prefix)?;
        let route = Route {
            dst: unspecified(gw),
            prefix: 0,
            gateway: Some(gw),
            onlink: false,
        };
        if keep_default {
            return match self.add_route(index, name, &route, NLM_F_CREATE | NLM_F_EXCL) {
                Err(NetlinkError::Kernel {
                    errno: nix::errno::Errno::EEXIST,
                    ..
                }) => Ok(()),
                other => other,
            };
        }
        self.add_route(index, name, &route, NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// Address `addr/prefix` on `index` (IPv6 without DAD).
    fn add_addr(
        &mut self,
        index: u32,
        name: &str,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family_of(addr);
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        match addr {
            IpAddr::V4(a) if prefix < 31 => {
                let host = u32::MAX.checked_shr(prefix.into()).unwrap_or(0);
                let brd = Ipv4Addr::from(u32::from(a) | host);
                msg.attributes.push(AddressAttribute::Broadcast(brd));
            }
            // Usable at once: no tentative state while DAD would run.
            IpAddr::V6(_) => msg.header.flags = AddressHeaderFlags::Nodad,
            IpAddr::V4(_) => {}
        }
        // REPLACE: configuring twice (e.g. a restart) updates instead of failing with EEXIST.
        let flags = NLM_F_CREATE | NLM_F_REPLACE;
        let op = || format!("add address {addr}/{prefix} to {name}");
        self.ack(RouteNetlinkMessage::NewAddress(msg), flags, op)
    }

    /// A main-table route out of `index`.
    fn add_route(
        &mut self,
        index: u32,
        name: &str,
        r: &Route,
        flags: u16,
    ) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(r.dst);
        msg.header.destination_prefix_length = r.prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot; // what `ip route add` uses
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = match r.gateway {
            Some(_) => RouteScope::Universe,
            None => RouteScope::Link,
        };
        if r.onlink {
            msg.header.flags = RouteFlags::Onlink;
        }
        if r.prefix != 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(r.dst)));
        }
        if let Some(gw) = r.gateway {
            msg.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        let op = || match r.gateway {
            Some(gw) if r.prefix == 0 => format!("add default route via {gw} dev {name}"),
            Some(gw) => format!("add route {}/{} via {gw} dev {name}", r.dst, r.prefix),
            None => format!("add route {}/{} dev {name}", r.dst, r.prefix),
        };
        self.ack(RouteNetlinkMessage::NewRoute(msg), flags, op)
    }

    /// Every message of a dump request.
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.request(msg, NLM_F_DUMP, || format!("list the host's {what}"))
    }
}

/// One route to add.
struct Route {
    dst: IpAddr,
    prefix: u8,
    gateway: Option<IpAddr>,
    /// The gateway is outside every subnet of the link: take it as on-link.
    onlink: bool,
}

fn family_of(ip: IpAddr) -> AddressFamily {
    family(ip.is_ipv6())
}

fn family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

pub(super) fn link_up(msg: &mut LinkMessage) {
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
}

/// Extract the NLMSGERR_ATTR_MSG text from the TLVs after a capped error's header.
fn ext_ack_msg(tlvs: &[u8]) -> Option<String> {
    let nla = NlasIterator::new(tlvs)
        .flatten()
        .find(|n| n.kind() == NLMSGERR_ATTR_MSG)?;
    let text = nla.value().split(|&b| b == 0).next().unwrap_or_default();
    Some(String::from_utf8_lossy(text).into_owned()).filter(|s| !s.is_empty())
}

/// Write an IPv6 sysctl of `ifname` ([`net_sysctl`]).
pub(super) fn ipv6_sysctl(
    ifname: &str,
    key: &str,
    value: &str,
    missing_ok: bool,
) -> Result<(), NetlinkError> {
    match net_sysctl(&format!("/proc/sys/net/ipv6/conf/{ifname}/{key}"), value) {
        // No IPv6 in this kernel: nothing to disable.
        Err(NetlinkError::Sysctl { source, .. })
            if missing_ok && source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Firewall mark of the sockets rlnet makes inside a namespace to connect
/// to a published service from the client's real address ("rlnt").
pub const REAL_ADDR_MARK: u32 = 0x726c_6e74;
/// The routing table that delivers packets with that mark locally.
pub const REAL_ADDR_TABLE: u32 = 0x726c;
/// The preference of the first of the rules that send marked packets to
/// it: before `main` (32766) and the default rules other software adds.
pub const REAL_ADDR_RULE_PREF: u32 = 100;

/// Write `value` to the sysctl at `path` (in the calling task's netns).
/// Opened write-only, neither created nor truncated: a named network's
/// daemon, whose seccomp filter its attach agents inherit, allows no more.
fn net_sysctl(path: &str, value: &str) -> Result<(), NetlinkError> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| NetlinkError::Sysctl {
            path: path.into(),
            source,
        })
}

/// In the current netns, what lets a socket that rlnet connects from a
/// client's real address (IP_TRANSPARENT, marked [`REAL_ADDR_MARK`]) get
/// the service's answers: connections accepted from a marked SYN take its
/// mark (`net.ipv4.tcp_fwmark_accept`, which serves IPv6 too), resets and
/// ICMP errors answering marked packets are marked (`fwmark_reflect`), and
/// marked packets are delivered locally, where `main` has no more specific
/// route than its default one:
///
/// ```text
/// ip rule add fwmark MARK to GATEWAY lookup TABLE pref 100
/// ip rule add fwmark MARK lookup main suppress_prefixlength 0 pref 101
/// ip rule add fwmark MARK lookup TABLE pref 102
/// ip route add local default dev lo table TABLE
/// ```
///
/// `lo` is set up first: IPv6 refuses a route through a device that is
/// down ("Nexthop device is not up"), and the socket factory runs this
/// while the TAP, and `lo` with it, is still being set up.
///
/// So a connection the namespace's firewall sends on to a container (a
/// DNAT to an address behind a bridge) goes there, and its answer, routed
/// out of the TAP, shows rlnet that this path is not open to it. The
/// gateway (`gateways`: how host loopback clients show) is in the TAP's
/// subnet, yet delivered locally. Unmarked traffic is untouched. Which
/// families are ready, [v4, v6]; a family whose set-up failed keeps the
/// userspace path.
pub fn real_address_routing(gateways: [Option<IpAddr>; 2]) -> [bool; 2] {
    let Ok(mut nl) = Rtnl::open() else {
        return [false; 2];
    };
    let Ok(lo) = nl.index_of("lo") else {
        return [false; 2];
    };
    if let Err(e) = nl.set_link(lo, "lo", "set link up", link_up) {
        log::debug!("published ports keep the userspace path: {e}");
        return [false; 2];
    }
    if let Err(e) = net_sysctl("/proc/sys/net/ipv4/tcp_fwmark_accept", "1") {
        log::debug!("published ports keep the userspace path: {e}");
        return [false; 2];
    }
    [false, true].map(|v6| {
        let ip = if v6 { "ipv6" } else { "ipv4" };
        let gw = gateways[usize::from(v6)].filter(|g| g.is_ipv6() == v6);
        let main = u32::from(RouteHeader::RT_TABLE_MAIN);
        // (preference offset, to, table, suppress_prefixlength); the first
        // only with a gateway of this family.
        let rules = [
            gw.map(|g| (0, Some(g), REAL_ADDR_TABLE, None)),
            Some((1, None, main, Some(0))),
            Some((2, None, REAL_ADDR_TABLE, None)),
        ];
        let ready = net_sysctl(&format!("/proc/sys/net/{ip}/fwmark_reflect"), "1")
            .and_then(|()| nl.add_local_table(lo, v6))
            .and_then(|()| {
                for (n, to, table, suppress) in rules.into_iter().flatten() {
                    nl.add_mark_rule(v6, REAL_ADDR_RULE_PREF + n, to, table, suppress)?;
                }
                Ok(())
            });
        if let Err(e) = &ready {
            log::debug!("published ports over {ip} keep the userspace path: {e}");
        }
        ready.is_ok()
    })
}

/// Already there (a second rlnet in the same namespace): fine.
fn or_exists(r: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match r {
        Err(NetlinkError::Kernel {
            errno: Errno::EEXIST,
            ..
        }) => Ok(()),
        r => r,
    }
}

impl Rtnl {
    /// `ip route add local default dev lo table REAL_ADDR_TABLE`.
    fn add_local_table(&mut self, lo: u32, v6: bool) -> Result<(), NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(v6);
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Local;
        msg.header.scope = RouteScope::Host;
        msg.attributes.push(RouteAttribute::Table(REAL_ADDR_TABLE));
        msg.attributes.push(RouteAttribute::Oif(lo));
        let op = || format!("add local default route dev lo table {REAL_ADDR_TABLE}");
        or_exists(self.ack(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        ))
    }

    /// `ip rule add fwmark REAL_ADDR_MARK [to TO] lookup TABLE
    /// [suppress_prefixlength N] pref PREF`.
    fn add_mark_rule(
        &mut self,
        v6: bool,
        pref: u32,
        to: Option<IpAddr>,
        table: u32,
        suppress: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut msg = RuleMessage::default();
        msg.header.family = family(v6);
        msg.header.action = RuleAction::ToTable;
        if let Some(to) = to {
            msg.header.dst_len = if v6 { 128 } else { 32 };
            msg.attributes.push(RuleAttribute::Destination(to));
        }
        msg.attributes.push(RuleAttribute::Table(table));
        msg.attributes.push(RuleAttribute::FwMark(REAL_ADDR_MARK));
        msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
        if let Some(n) = suppress {
            msg.attributes.push(RuleAttribute::SuppressPrefixLen(n));
        }
        msg.attributes.push(RuleAttribute::Priority(pref));
        let op = || format!("add rule fwmark {REAL_ADDR_MARK:#x} lookup {table} pref {pref}");
        or_exists(self.ack(
            RouteNetlinkMessage::NewRule(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        ))
    }
}

/// In the current netns: `lo` up; then on `ifname`: MTU and queue length, MAC, IPv6
/// sysctls, link up,
/// IPv4 address and default route, IPv6 address (NODAD) and default route.
pub fn configure_link(setup: &LinkSetup) -> Result<(), NetlinkError> {
    Session::open()?.configure_link(setup)
}

/// One NETLINK_ROUTE socket for a series of requests in the current netns:
/// the TAP agent reads the new TAP's index and MAC and configures it
/// through one (three sockets before, each a socket, bind, getsockname,
/// connect and two setsockopt on the path to ready).
pub struct Session {
    nl: Rtnl,
    /// The last link [`Session::link`] found: (name, index).
    known: Option<(String, u32)>,
}

/// What [`Session::link`] reads of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFacts {
    pub index: u32,
    /// Its link-layer address, if it is 6 bytes long.
    pub mac: Option<[u8; 6]>,
}

impl Session {
    pub fn open() -> Result<Self, NetlinkError> {
        Ok(Self {
            nl: Rtnl::open()?,
            known: None,
        })
    }

    /// `name`'s index and MAC; None if it does not exist.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkFacts>, NetlinkError> {
        let Some(link) = self.nl.get_link(name)? else {
            return Ok(None);
        };
        let index = link.header.index;
        self.known = Some((name.to_string(), index));
        Ok(Some(LinkFacts {
            index,
            mac: mac_of(&link),
        }))
    }

    /// `name`'s index: the one [`Session::link`] read, else asked.
    fn index_of(&mut self, name: &str) -> Result<u32, NetlinkError> {
        match &self.known {
            Some((known, index)) if known == name && *index != 0 => Ok(*index),
            _ => self.nl.index_of(name),
        }
    }

    /// [`configure_link`] through this session.
    pub fn configure_link(&mut self, setup: &LinkSetup) -> Result<(), NetlinkError> {
        let name = setup.ifname;
        let index = self.index_of(name)?;
        let nl = &mut self.nl;
        let mtu = setup.mtu;
        // One request for both (each is a round trip through rtnl).
        let what = format!("set MTU {mtu} and txqueuelen {TAP_TXQUEUELEN}");
        nl.set_link(index, name, &what, |m| {
            m.attributes.push(LinkAttribute::Mtu(mtu));
            m.attributes.push(LinkAttribute::TxQueueLen(TAP_TXQUEUELEN));
        })?;
        if let Some(mac) = setup.mac {
            nl.set_mac(index, name, mac)?;
        }
        // Before link up, so the link-local address is never tentative and, without v6,
        // never created at all.
        let no_v6 = setup.v6.is_none();
        ipv6_sysctl(name, "accept_dad", "0", no_v6)?;
        // The link-local address from the MAC (EUI-64), whatever the namespace's
        // default: the switch of a named network lets a member use only that one.
        ipv6_sysctl(name, "addr_gen_mode", "0", no_v6)?;
        // Addresses and routes are static: no router solicitations, which would
        // also wake rlnet every few seconds for nothing.
        ipv6_sysctl(name, "accept_ra", "0", no_v6)?;
        ipv6_sysctl(name, "disable_ipv6", if no_v6 { "1" } else { "0" }, no_v6)?;
        // Up before the routes: the kernel rejects a gateway on a down link.
        nl.set_link(index, name, "set link up", link_up)?;
        let v4 = setup.v4.map(|(a, p, g)| (IpAddr::V4(a), p, IpAddr::V4(g)));
        let v6 = setup.v6.map(|(a, p, g)| (IpAddr::V6(a), p, IpAddr::V6(g)));
        for (addr, prefix, gw) in [v4, v6].into_iter().flatten() {
            nl.add_ip(index, name, addr, prefix, gw, setup.keep_default_route)?;
        }
        // `lo` last: the namespace's way out comes first (bringing `lo` up,
        // its addresses and local routes, took ~0.1 ms ahead of it).
        nl.set_link(0, "lo", "set link up", link_up)?;
        Ok(())
    }

    /// [`prepare`] through this session.
    pub fn prepare(
        &mut self,
        ifname: &str,
        mac: Option<[u8; 6]>,
        made: bool,
    ) -> Result<(), NetlinkError> {
        let nl = &mut self.nl;
        nl.set_link(0, "lo", "set link up", link_up)?;
        if made {
            let what = format!("set txqueuelen {TAP_TXQUEUELEN}");
            nl.set_link(0, ifname, &what, |m| {
                m.attributes.push(LinkAttribute::TxQueueLen(TAP_TXQUEUELEN))
            })?;
        }
        if let Some(mac) = mac {
            nl.set_mac(0, ifname, mac)?;
        }
        Ok(())
    }

    /// [`configure_copy`] through this session.
    pub fn configure_copy(&mut self, setup: &CopySetup) -> Result<(), NetlinkError> {
        let name = setup.ifname;
        let index = self.index_of(name)?;
        let nl = &mut self.nl;
        if let Some(mtu) = setup.mtu {
            nl.set_link(index, name, &format!("set MTU {mtu}"), |m| {
                m.attributes.push(LinkAttribute::Mtu(mtu))
            })?;
        }
        let no_v6 = !setup.ipv6;
        ipv6_sysctl(name, "accept_dad", "0", no_v6)?;
        ipv6_sysctl(name, "accept_ra", "0", no_v6)?;
        ipv6_sysctl(name, "disable_ipv6", if no_v6 { "1" } else { "0" }, no_v6)?;
        nl.set_link(index, name, "set link up", link_up)?;
        for &(addr, prefix) in setup.addrs {
            nl.add_addr(index, name, addr, prefix)?;
        }
        for &(dst, prefix, gateway) in setup.routes {
            let route = Route {
                dst,
                prefix,
                gateway,
                onlink: gateway.is_some_and(|g| off_link(g, setup.addrs)),
            };
            nl.add_route(index, name, &route, NLM_F_CREATE | NLM_F_REPLACE)?;
        }
        Ok(())
    }
}

/// pasta mode's interface in the current netns: what `--config-net` sets.
pub struct CopySetup<'a> {
    pub ifname: &'a str,
    /// None: leave the interface's MTU (`-m 0`).
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub addrs: &'a [(IpAddr, u8)],
    /// Routes out of the interface: (destination, prefix, gateway); prefix
    /// 0 is the default route.
    pub routes: &'a [(IpAddr, u8, Option<IpAddr>)],
    pub ipv6: bool,
}

/// `lo` up, and the interface's MAC if one is given: what pasta does in
/// the namespace even without `--config-net`. A TAP rlnet made (`made`)
/// also gets [`TAP_TXQUEUELEN`], as in slirp4netns mode: with the kernel's
/// 1,000 a burst of UDP from the namespace overflows the queue while rlnet
/// waits for the CPU (one made by the caller keeps its own).
pub fn prepare(ifname: &str, mac: Option<[u8; 6]>, made: bool) -> Result<(), NetlinkError> {
    Session::open()?.prepare(ifname, mac, made)
}

/// In the current netns, pasta's `--config-net`: MTU, IPv6 sysctls, link
/// up, every address, then every route (a gateway outside the link's
/// subnets is taken as on-link, as `-g` may name one).
pub fn configure_copy(setup: &CopySetup) -> Result<(), NetlinkError> {
    Session::open()?.configure_copy(setup)
}

/// An IPv4 gateway in none of the subnets of `addrs` (IPv6 gateways are
/// link-local or in the prefix, and the kernel takes link-local ones).
fn off_link(gw: IpAddr, addrs: &[(IpAddr, u8)]) -> bool {
    let IpAddr::V4(g) = gw else { return false };
    !addrs.iter().any(|&(a, prefix)| match a {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(g) & mask
        }
        IpAddr::V6(_) => false,
    })
}

/// The host's links, addresses and main-table routes, as rtnetlink lists
/// them (pasta mode's template, `config/pasta.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostDump {
    /// (index, name).
    pub links: Vec<(u32, String)>,
    pub addrs: Vec<HostAddr>,
    pub routes: Vec<HostRoute>,
}

/// An address of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A main-table unicast route of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    pub metric: u32,
    /// Made by the kernel for an address.
    pub kernel: bool,
}

/// The host's links, addresses and main-table unicast routes, in the
/// current netns (pasta's template, read before joining the namespace).
pub fn host_net() -> Result<HostDump, NetlinkError> {
    let mut nl = Rtnl::open()?;
    let mut net = HostDump::default();
    for m in nl.dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        "links",
    )? {
        if let RouteNetlinkMessage::NewLink(l) = m {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            net.links.extend(name.map(|n| (l.header.index, n)));
        }
    }
    for m in nl.dump(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        "addresses",
    )? {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            // IFA_LOCAL is the address itself (IFA_ADDRESS the peer's on
            // point-to-point links).
            let local = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = local.or_else(|| {
                a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            net.addrs.extend(addr.map(|addr| HostAddr {
                index: a.header.index,
                addr,
                prefix: a.header.prefix_len,
            }));
        }
    }
    for m in nl.dump(
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        "routes",
    )? {
        if let RouteNetlinkMessage::NewRoute(r) = m {
            net.routes.extend(host_route(&r));
        }
    }
    Ok(net)
}

/// A main-table unicast route as pasta's template needs it (the first
/// next hop of a multipath route).
fn host_route(r: &RouteMessage) -> Option<HostRoute> {
    let table = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Table(t) => Some(*t),
        _ => None,
    });
    let main = u32::from(RouteHeader::RT_TABLE_MAIN);
    if table.unwrap_or(u32::from(r.header.table)) != main || r.header.kind != RouteType::Unicast {
        return None;
    }
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let mut gateway = None;
    let mut oif = 0;
    let mut dst = None;
    let mut metric = 0;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip(d),
            RouteAttribute::Gateway(g) => gateway = ip(g),
            RouteAttribute::Oif(i) => oif = *i,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::MultiPath(hops) if oif == 0 => {
                if let Some(h) = hops.first() {
                    oif = h.interface_index;
                    gateway = h.attributes.iter().find_map(|x| match x {
                        RouteAttribute::Gateway(g) => ip(g),
                        _ => None,
                    });
                }
            }
            _ => {}
        }
    }
    let v6 = r.header.address_family == AddressFamily::Inet6;
    let dst = dst.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    if dst.is_ipv6() != v6 {
        return None;
    }
    Some(HostRoute {
        dst,
        prefix: r.header.destination_prefix_length,
        gateway,
        oif,
        metric,
        kernel: r.header.protocol == RouteProtocol::Kernel,
    })
}

/// Interface index by name in the current netns, `None` if it does not exist.
pub fn link_index(name: &str) -> Result<Option<u32>, NetlinkError> {
    Ok(Rtnl::open()?.get_link(name)?.map(|l| l.header.index))
}

/// The interface's MAC address.
pub fn link_mac(name: &str) -> Result<[u8; 6], NetlinkError> {
    let link = Rtnl::open()?
        .get_link(name)?
        .ok_or_else(|| NetlinkError::NoSuchLink(name.into()))?;
    mac_of(&link).ok_or_else(|| NetlinkError::Protocol {
        op: format!("read the MAC of {name}"),
        reason: "no 6-byte link-layer address".into(),
    })
}

/// A link's 6-byte link-layer address, if it has one.
fn mac_of(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_DUMP;
    use netlink_packet_route::address::AddressFlags;
    use netlink_packet_route::route::RouteAddress;
    use nix::sched::{CloneFlags, unshare};
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};
    use std::io::Write as _;
    use std::os::fd::AsRawFd;

    const TAP: &str = "tap0";
    const MAC: [u8; 6] = [0x02, 0x50, 0x00, 0x00, 0x00, 0x01];

    /// A TAP in the current netns; it exists as long as the returned file is open.
    fn create_tap() -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        // SAFETY: ifreq is plain old data for which all-zero bytes are a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(TAP.bytes()) {
            *d = libc::c_char::from_ne_bytes([s]);
        }
        #[allow(clippy::cast_possible_truncation)] // 0x1002 fits a short
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        ifr.ifr_ifru.ifru_flags = flags;
        // SAFETY: TUNSETIFF takes a pointer to an ifreq, valid for the whole call.
        if unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f)
    }

    /// Run `body` with a fresh netns holding `tap0`: in a thread that unshares the netns
    /// (root), else in a forked child in a new user+net namespace; else skip, unless
    /// RLNET_REQUIRE_USERNS=1.
    pub(in crate::sys) fn in_netns(test: &str, body: fn()) {
        let thread = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(NEWNET): {e}"))?;
            let _tap = create_tap().map_err(|e| format!("TAP: {e}"))?;
            body();
            Ok::<(), String>(())
        });
        let why = match thread.join() {
            Ok(Ok(())) => return,
            Ok(Err(why)) => why,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        let why = match in_userns_child(body) {
            Ok(()) => return,
            Err(e) => format!("{why}; {e}"),
        };
        let required = std::env::var("RLNET_REQUIRE_USERNS").is_ok_and(|v| v == "1");
        assert!(!required, "{test}: no private netns: {why}");
        eprintln!("skipped: {test}: no private netns: {why}");
    }

    fn in_userns_child(body: fn()) -> Result<(), String> {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        // SAFETY: the child runs only this test body (single-threaded, glibc keeps malloc
        // usable after fork) and leaves with _exit, never returning into the harness.
        match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                // The harness's output capture is lost in the child: report on fd 2.
                std::panic::set_hook(Box::new(|i| drop(writeln!(std::io::stderr(), "{i}"))));
                let setup = || -> Result<std::fs::File, String> {
                    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET;
                    unshare(flags).map_err(|e| format!("unshare(NEWUSER|NEWNET): {e}"))?;
                    let w =
                        |p: &str, v: String| std::fs::write(p, v).map_err(|e| format!("{p}: {e}"));
                    w("/proc/self/setgroups", "deny".into())?;
                    w("/proc/self/uid_map", format!("0 {uid} 1"))?;
                    w("/proc/self/gid_map", format!("0 {gid} 1"))?;
                    create_tap().map_err(|e| format!("TAP: {e}"))
                };
                let code = match setup() {
                    Err(e) => {
                        let _ = writeln!(std::io::stderr(), "{e}");
                        77
                    }
                    Ok(_tap) => i32::from(std::panic::catch_unwind(body).is_err()),
                };
                // SAFETY: _exit ends the child without running the parent's atexit/TLS state.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(WaitStatus::Exited(_, 77)) => Err("user namespace setup failed".into()),
                other => panic!("test failed in the user-namespace child: {other:?}"),
            },
        }
    }

    const V4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
    const GW4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
    const GW6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    fn setup() -> LinkSetup<'static> {
        let (v4, v6) = (Some((V4, 24, GW4)), Some((V6, 64, GW6)));
        LinkSetup {
            ifname: TAP,
            mtu: 65520,
            mac: Some(MAC),
            v4,
            v6,
            keep_default_route: false,
        }
    }

    /// What the kernel reports for `name`: (link, [(addr, prefix, flags)], [default gateway]).
    fn state(name: &str) -> (LinkMessage, Vec<(IpAddr, u8, AddressFlags)>, Vec<IpAddr>) {
        let mut nl = Rtnl::open().unwrap();
        let link = nl.get_link(name).unwrap().unwrap();
        let (idx, dump) = (link.header.index, || "dump".to_string());
        let (mut addrs, mut gws) = (Vec::new(), Vec::new());
        let req = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        for m in nl.request(req, NLM_F_DUMP, dump).unwrap() {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            let f = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Flags(f) => Some(*f),
                _ => None,
            });
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Address(ip) if a.header.index == idx => Some(*ip),
                _ => None,
            });
            addrs
                .extend(ip.map(|ip| (ip, a.header.prefix_len, f.unwrap_or(AddressFlags::empty()))));
        }
        let req = RouteNetlinkMessage::GetRoute(RouteMessage::default()); // all families
        for m in nl.request(req, NLM_F_DUMP, dump).unwrap() {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let main = r.header.table == RouteHeader::RT_TABLE_MAIN;
            if main
                && r.header.destination_prefix_length == 0
                && r.attributes.contains(&RouteAttribute::Oif(idx))
            {
                gws.extend(r.attributes.iter().filter_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
                    _ => None,
                }));
            }
        }
        (link, addrs, gws)
    }

    fn mtu(l: &LinkMessage) -> Option<u32> {
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
    }

    fn txqlen(l: &LinkMessage) -> Option<u32> {
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::TxQueueLen(n) => Some(*n),
            _ => None,
        })
    }

    fn sysctl(key: &str) -> String {
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{TAP}/{key}")).unwrap()
    }

    #[test]
    fn tunsetiff_says_whether_the_tap_existed() {
        in_netns("tunsetiff_says_whether_the_tap_existed", || {
            use crate::sys::tap::Tap;
            use std::os::fd::AsRawFd;
            let (tap, existed) = Tap::open_telling("tap9").unwrap();
            assert!(!existed);
            let fd = tap.into_fd();
            // SAFETY: TUNSETPERSIST takes its flag as the argument value.
            let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, 1) };
            assert_eq!(rc, 0);
            drop(fd);
            let (tap, existed) = Tap::open_telling("tap9").unwrap();
            assert!(existed, "a persistent TAP was taken as new");
            // Not a TAP: still refused, as before.
            assert!(Tap::open_telling("lo").is_err());
            drop(tap);
        });
    }

    #[test]
    fn real_address_routing_sets_lo_up_first() {
        in_netns("real_address_routing_sets_lo_up_first", || {
            // A fresh namespace: lo is down, as when the socket factory
            // runs before the TAP's set-up has raised it.
            assert!(!state("lo").0.header.flags.contains(LinkFlags::Up));
            let gateways = [Some(IpAddr::V4(GW4)), Some(IpAddr::V6(GW6))];
            assert_eq!(real_address_routing(gateways), [true, true]);
            assert!(state("lo").0.header.flags.contains(LinkFlags::Up));
        });
    }

    #[test]
    fn full_v4_v6() {
        in_netns("full_v4_v6", || {
            let t = std::time::Instant::now();
            configure_link(&setup()).unwrap();
            eprintln!("configure_link took {:?}", t.elapsed());
            let (tap, addrs, gws) = state(TAP);
            assert!(tap.header.flags.contains(LinkFlags::Up));
            assert!(state("lo").0.header.flags.contains(LinkFlags::Up));
            assert_eq!(mtu(&tap), Some(65520));
            assert_eq!(txqlen(&tap), Some(TAP_TXQUEUELEN));
            assert_eq!(link_mac(TAP).unwrap(), MAC);
            assert_eq!(link_index(TAP).unwrap(), Some(tap.header.index));
            // One session answers the same, and configures again through
            // the index it read.
            let mut session = Session::open().unwrap();
            let facts = session.link(TAP).unwrap().expect("the TAP");
            assert_eq!(facts.index, tap.header.index);
            assert_eq!(facts.mac, Some(MAC));
            assert_eq!(session.link("nosuch0").unwrap(), None);
            session.configure_link(&setup()).unwrap();
            assert!(addrs.iter().any(|a| a.0 == V4 && a.1 == 24), "{addrs:?}");
            let v6 = addrs.iter().find(|a| a.0 == V6).expect("v6 address");
            assert_eq!(v6.1, 64);
            assert!(v6.2.contains(AddressFlags::Nodad) && !v6.2.contains(AddressFlags::Tentative));
            assert_eq!(gws, [IpAddr::V4(GW4), IpAddr::V6(GW6)]);
            assert_eq!(sysctl("accept_dad"), "0\n");
            // The link-local address is the MAC's EUI-64 (named networks
            // hold members to it).
            assert_eq!(sysctl("addr_gen_mode"), "0\n");
            let [a, b, c, d, e, f] = MAC;
            let ll = Ipv6Addr::from([
                0xfe,
                0x80,
                0,
                0,
                0,
                0,
                0,
                0,
                a ^ 2,
                b,
                c,
                0xff,
                0xfe,
                d,
                e,
                f,
            ]);
            assert!(addrs.iter().any(|x| x.0 == IpAddr::V6(ll)), "{addrs:?}");

            // Re-running replaces rather than fails: new MTU, new (link-local) v6 gateway.
            let gw6 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
            configure_link(&LinkSetup {
                mtu: 1500,
                v6: Some((V6, 64, gw6)),
                ..setup()
            })
            .unwrap();
            let (tap, _, gws) = state(TAP);
            assert_eq!(mtu(&tap), Some(1500));
            assert_eq!(gws, [IpAddr::V4(GW4), IpAddr::V6(gw6)]);
        });
    }

    /// pasta mode: a TAP rlnet made gets the long queue (UDP bursts from
    /// the namespace), one the caller made keeps its length.
    #[test]
    fn prepare_sets_the_queue_only_on_a_tap_rlnet_made() {
        in_netns("prepare_sets_the_queue_only_on_a_tap_rlnet_made", || {
            let before = txqlen(&state(TAP).0);
            assert_ne!(before, Some(TAP_TXQUEUELEN));
            prepare(TAP, None, false).unwrap();
            assert_eq!(txqlen(&state(TAP).0), before);
            assert!(state("lo").0.header.flags.contains(LinkFlags::Up));
            prepare(TAP, Some(MAC), true).unwrap();
            assert_eq!(txqlen(&state(TAP).0), Some(TAP_TXQUEUELEN));
            assert_eq!(link_mac(TAP).unwrap(), MAC);
        });
    }

    #[test]
    fn without_v6() {
        in_netns("without_v6", || {
            configure_link(&LinkSetup {
                v6: None,
                mac: None,
                ..setup()
            })
            .unwrap();
            let (_, addrs, gws) = state(TAP);
            assert_eq!(addrs.iter().map(|a| a.0).collect::<Vec<_>>(), [V4]);
            assert_eq!(gws, [GW4]);
            assert_eq!(sysctl("disable_ipv6"), "1\n");
        });
    }

    #[test]
    fn errors() {
        in_netns("errors", || {
            let e = configure_link(&LinkSetup {
                mtu: 70000,
                ..setup()
            })
            .unwrap_err();
            assert!(
                matches!(
                    e,
                    NetlinkError::Kernel {
                        errno: Errno::EINVAL,
                        ..
                    }
                ),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.starts_with(
                    "cannot set MTU 70000 and txqueuelen 16384 on tap0: Invalid argument"
                ),
                "{msg}"
            );

            let e = configure_link(&LinkSetup {
                ifname: "nosuch0",
                ..setup()
            })
            .unwrap_err();
            assert_eq!(e.to_string(), "interface nosuch0 does not exist");
            assert!(matches!(
                link_mac("nosuch0"),
                Err(NetlinkError::NoSuchLink(_))
            ));
            assert_eq!(link_index("nosuch0").unwrap(), None);
            assert_eq!(link_index("lo").unwrap(), Some(1));

            // A gateway outside the on-link prefix: the kernel refuses the route.
            let bad_gw = Ipv4Addr::new(192, 0, 2, 1);
            let e = configure_link(&LinkSetup {
                v4: Some((V4, 24, bad_gw)),
                ..setup()
            })
            .unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("cannot add default route via 192.0.2.1 dev tap0: "),
                "{msg}"
            );
            eprintln!("{msg}");
        });
    }
}
