//! A named network's kernel fast path (docs/kernel-switching.md): inside the
//! network's own user and network namespaces (U_net/N_br, made by
//! [`create_network_ns`]) a Linux bridge `br0` with the engine's uplink TAP
//! `up0` on it ([`setup_bridge`]), and one veth pair per kernel member, the
//! bridge side a port that neither learns nor floods unknown unicast and
//! knows the member's MAC statically ([`add_port`], [`port_up`],
//! [`del_port`]), the member side configured like a member's TAP
//! ([`configure_member`]). Every function but [`create_network_ns`] and
//! [`start_bridge`] runs inside an agent ([`super::ns::spawn_in`]) that is
//! already in U_net/N_br; none needs real root, only what the user who owns
//! U_net has there and over the members' child user namespaces.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    BridgeStpState, InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth,
    LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::sched::{CloneFlags, setns};
use thiserror::Error;

use super::netlink::{self, LinkSetup, NetlinkError, Rtnl, TAP_TXQUEUELEN};
pub use super::ns::create_network_ns;
use super::ns::{self, Agent, AgentAnswer, NsError, NsHandles};
use super::tap::{Tap, TapError};

/// The bridge in N_br.
pub const BRIDGE: &str = "br0";
/// The engine's TAP on the bridge.
pub const UPLINK: &str = "up0";
/// MTU of the bridge, the uplink and every veth (rlnet's links).
pub const MTU: u32 = 65520;

/// `bridge fdb … static`: NUD_NOARP | NUD_REACHABLE, what iproute2 sends.
/// (NUD_PERMANENT would make the entry "local": frames to the MAC would be
/// delivered to N_br's own stack instead of out of the port.)
const FDB_STATIC: u16 = 0x40 | 0x02;

#[derive(Debug, Error)]
pub enum BridgeError {
    #[error("{0}")]
    Netlink(#[from] NetlinkError),
    #[error("the uplink TAP {UPLINK}: {0}")]
    Tap(#[from] TapError),
    #[error(
        "interface name {0:?} is empty or too long (1 to 15 bytes, no '/' or whitespace); \
         pick a shorter port or peer name"
    )]
    Name(String),
    #[error(
        "cannot enter the member's network namespace: {0} (its user namespace must be a child \
         of the network's, as `rlnet run --network` makes it; an attached member's is not)"
    )]
    EnterMember(nix::Error),
}

fn check_name(name: &str) -> Result<(), BridgeError> {
    let bad = name.is_empty()
        || name.len() >= libc::IFNAMSIZ
        || name.contains('/')
        || name.chars().any(char::is_whitespace);
    if bad {
        return Err(BridgeError::Name(name.into()));
    }
    Ok(())
}

/// The index of `name` in the current netns.
fn index_of(nl: &mut Rtnl, name: &str) -> Result<u32, NetlinkError> {
    match nl.get_link(name)? {
        Some(l) if l.header.index != 0 => Ok(l.header.index),
        _ => Err(NetlinkError::NoSuchLink(name.into())),
    }
}

/// RTM_NEWLINK on an existing port: its bridge-port flags.
fn set_port_flags(
    nl: &mut Rtnl,
    index: u32,
    name: &str,
    learning: bool,
    unicast_flood: bool,
) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::PortData(
            InfoPortData::BridgePort(vec![
                InfoBridgePort::Learning(learning),
                InfoBridgePort::UnicastFlood(unicast_flood),
            ]),
        )]));
    let on = |b| if b { "on" } else { "off" };
    let op = || {
        format!(
            "set bridge port {name} learning {} flood {}",
            on(learning),
            on(unicast_flood)
        )
    };
    nl.ack(RouteNetlinkMessage::NewLink(msg), 0, op)
}

/// In U_net/N_br, before anything else: N_br's own IPv6 off (no link-local
/// on the bridge or its ports, so the members cannot reach N_br's stack),
/// `lo` up, the bridge `br0` (MTU 65520, STP off, no address, multicast
/// snooping as the kernel's default), the uplink TAP `up0` (virtio-net
/// header and offloads, as every rlnet TAP) enslaved with learning and
/// unicast flooding on (it is the way to the gateway and to userspace
/// members: frames for MACs the bridge has no port for go there), both up.
/// The TAP goes back to the daemon (see [`start_bridge`]).
pub fn setup_bridge() -> Result<Tap, BridgeError> {
    for scope in ["all", "default"] {
        netlink::ipv6_sysctl(scope, "disable_ipv6", "1", true)?;
    }
    let mut nl = Rtnl::open()?;
    nl.set_link(0, "lo", "set link up", netlink::link_up)?;
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(BRIDGE.into()));
    msg.attributes.push(LinkAttribute::Mtu(MTU));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::StpState(
            BridgeStpState::Disabled,
        )])),
    ]));
    let op = || format!("create bridge {BRIDGE} (the kernel needs bridge support, CONFIG_BRIDGE)");
    nl.ack(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        op,
    )?;
    let br = index_of(&mut nl, BRIDGE)?;
    let tap = Tap::open(UPLINK)?;
    let up = index_of(&mut nl, UPLINK)?;
    nl.set_link(up, UPLINK, &format!("set MTU {MTU}"), |m| {
        m.attributes.push(LinkAttribute::Mtu(MTU));
    })?;
    let what = format!("set txqueuelen {TAP_TXQUEUELEN}");
    nl.set_link(up, UPLINK, &what, |m| {
        m.attributes.push(LinkAttribute::TxQueueLen(TAP_TXQUEUELEN));
    })?;
    nl.set_link(up, UPLINK, &format!("enslave to {BRIDGE}"), |m| {
        m.attributes.push(LinkAttribute::Controller(br));
    })?;
    set_port_flags(&mut nl, up, UPLINK, true, true)?;
    nl.set_link(up, UPLINK, "set link up", netlink::link_up)?;
    nl.set_link(br, BRIDGE, "set link up", netlink::link_up)?;
    Ok(tap)
}

/// Fork the agent that runs [`setup_bridge`] in the network's namespaces;
/// [`uplink_from`] turns its answer into the uplink [`Tap`].
pub fn start_bridge(net: &NsHandles) -> Result<Agent, NsError> {
    ns::spawn_in(net, || {
        let tap = setup_bridge().map_err(|e| e.to_string())?;
        let info = super::member_tap::encode(tap.offload(), tap.name());
        Ok((tap.into_fd(), info))
    })
}

/// The uplink TAP a [`start_bridge`] agent sent back.
pub fn uplink_from(answer: AgentAnswer) -> Result<Tap, NsError> {
    super::member_tap::tap_from(answer)
}

/// In U_net/N_br: the veth pair of a kernel member. `port` (the bridge
/// side) stays in N_br, enslaved to `br0` with learning and unicast
/// flooding off and a static FDB entry `mac` → `port` (`bridge fdb replace
/// MAC dev PORT master static`), and is left DOWN: the caller loads the
/// member's guard, then calls [`port_up`]. `peer` is created directly in
/// `member_netns` with MAC `mac`, down and unconfigured
/// ([`configure_member`]). Both ends get MTU 65520. Needs
/// CAP_NET_ADMIN over the member's user namespace: it must be a child of
/// U_net.
pub fn add_port(
    member_netns: BorrowedFd,
    port: &str,
    peer: &str,
    mac: [u8; 6],
) -> Result<(), BridgeError> {
    check_name(port)?;
    check_name(peer)?;
    let mut nl = Rtnl::open()?;
    let br = index_of(&mut nl, BRIDGE)?;
    let mut peer_msg = LinkMessage::default();
    peer_msg.attributes.extend([
        LinkAttribute::IfName(peer.into()),
        LinkAttribute::Mtu(MTU),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::NetNsFd(member_netns.as_raw_fd()),
    ]);
    let mut msg = LinkMessage::default();
    msg.attributes.extend([
        LinkAttribute::IfName(port.into()),
        LinkAttribute::Mtu(MTU),
        LinkAttribute::Controller(br),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]),
    ]);
    let op = || {
        format!(
            "create veth {port} on {BRIDGE} with peer {peer} in the member's namespace (the \
             member's user namespace must be a child of the network's)"
        )
    };
    nl.ack(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        op,
    )?;
    let index = index_of(&mut nl, port)?;
    let flags_and_fdb = set_port_flags(&mut nl, index, port, false, false)
        .and_then(|()| static_fdb(&mut nl, index, port, mac));
    if let Err(e) = flags_and_fdb {
        // Never leave a port that floods or learns behind.
        let _ = delete_link(&mut nl, port);
        return Err(e.into());
    }
    Ok(())
}

/// `bridge fdb replace MAC dev PORT master static`.
fn static_fdb(nl: &mut Rtnl, index: u32, port: &str, mac: [u8; 6]) -> Result<(), NetlinkError> {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Other(FDB_STATIC);
    msg.header.flags = NeighbourFlags::Controller;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    let [a, b, c, d, e, f] = mac;
    let op = || {
        format!("add static FDB entry {a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x} on {port}")
    };
    nl.ack(
        RouteNetlinkMessage::NewNeighbour(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        op,
    )
}

fn delete_link(nl: &mut Rtnl, name: &str) -> Result<(), NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    nl.ack(RouteNetlinkMessage::DelLink(msg), 0, || {
        format!("delete interface {name}")
    })
}

/// In N_br: set the bridge side of a member's veth up (after its guard is
/// loaded).
pub fn port_up(port: &str) -> Result<(), BridgeError> {
    check_name(port)?;
    let mut nl = Rtnl::open()?;
    let index = index_of(&mut nl, port)?;
    Ok(nl.set_link(index, port, "set link up", netlink::link_up)?)
}

/// In N_br: delete a member's veth pair (the peer in the member's
/// namespace and the port's FDB entries go with it).
pub fn del_port(port: &str) -> Result<(), BridgeError> {
    check_name(port)?;
    let mut nl = Rtnl::open()?;
    index_of(&mut nl, port)?;
    Ok(delete_link(&mut nl, port)?)
}

/// In an agent in U_net: enter `member_netns` (allowed: U_net's root owns
/// the member's child user namespace) and configure the peer there as a
/// member's TAP is configured ([`netlink::configure_link`]: `lo` up, MTU,
/// MAC, `addr_gen_mode` 0, `accept_ra` 0, up, addresses, routes). The
/// calling thread STAYS in the member's network namespace: call it last in
/// the agent (after [`port_up`], which works on N_br).
pub fn configure_member(member_netns: BorrowedFd, setup: &LinkSetup) -> Result<(), BridgeError> {
    setns(member_netns, CloneFlags::CLONE_NEWNET).map_err(BridgeError::EnterMember)?;
    Ok(netlink::configure_link(setup)?)
}
