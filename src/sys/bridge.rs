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
    let br = nl.index_of(BRIDGE)?;
    let tap = Tap::open(UPLINK)?;
    let up = nl.index_of(UPLINK)?;
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
pub fn start_bridge(net: &NsHandles, guard_table: Vec<u8>) -> Result<Agent, NsError> {
    ns::spawn_in(net, move || {
        let tap = setup_bridge().map_err(|e| e.to_string())?;
        super::nft::apply(&guard_table)
            .map_err(|e| format!("cannot create the guard's nftables table: {e}"))?;
        Ok(super::member_tap::answer(tap))
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
    let br = nl.index_of(BRIDGE)?;
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
    let index = nl.index_of(port)?;
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
    let index = nl.index_of(port)?;
    Ok(nl.set_link(index, port, "set link up", netlink::link_up)?)
}

/// In N_br: delete a member's veth pair (the peer in the member's
/// namespace and the port's FDB entries go with it).
pub fn del_port(port: &str) -> Result<(), BridgeError> {
    check_name(port)?;
    let mut nl = Rtnl::open()?;
    nl.index_of(port)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_DUMP;
    use netlink_packet_route::address::AddressMessage;
    use netlink_packet_route::link::LinkFlags;
    use nix::sys::signal::{Signal, kill};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};
    use std::io::Write as _;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::os::fd::{AsFd, OwnedFd};
    use std::time::{Duration, Instant};

    /// The uid (and gid) the tests drop to when run as root: 65534
    /// ("nobody") exists everywhere, and production runs unprivileged.
    const UNPRIVILEGED: u32 = 65534;
    /// A test body's exit code when this machine cannot make user namespaces.
    const UNAVAILABLE: i32 = 77;
    const MAC_A: [u8; 6] = [0x02, 0x89, 0x0a, 0x59, 0x00, 0x02];
    const MAC_B: [u8; 6] = [0x02, 0x89, 0x0a, 0x59, 0x00, 0x03];

    fn s(e: impl std::fmt::Display) -> String {
        e.to_string()
    }

    /// Run `body` in a forked child: single-threaded, as rlnet's daemon
    /// (the test harness is not), and, when the tests run as root, as uid
    /// and gid 65534 first, as in production; as the current user if that
    /// cannot make user namespaces (a hardened CI kernel); skipped if
    /// neither can, unless RLNET_REQUIRE_USERNS=1. Bounded in time.
    fn in_child(test: &str, body: fn() -> Result<(), String>) {
        let root = nix::unistd::geteuid().is_root();
        let tries: &[Option<u32>] = if root {
            &[Some(UNPRIVILEGED), None]
        } else {
            &[None]
        };
        let mut why = Vec::new();
        for &uid in tries {
            match fork_body(uid, body) {
                Ok(()) => {
                    let who = uid
                        .map_or_else(|| format!("uid {}", Uid::current()), |u| format!("uid {u}"));
                    eprintln!("{test}: passed as {who}");
                    return;
                }
                Err(e) => why.push(e),
            }
        }
        let why = why.join("; ");
        let required = std::env::var("RLNET_REQUIRE_USERNS").is_ok_and(|v| v == "1");
        assert!(!required, "{test}: no user namespaces: {why}");
        eprintln!("skipped: {test}: no user namespaces: {why}");
    }

    /// One try of [`in_child`]: Err when user namespaces are unavailable;
    /// panics when the body fails or takes over 60 s.
    fn fork_body(uid: Option<u32>, body: fn() -> Result<(), String>) -> Result<(), String> {
        // SAFETY: the child runs only the test body (glibc keeps malloc
        // usable after fork) and leaves with _exit, never returning into
        // the harness.
        match unsafe { fork() }.map_err(s)? {
            ForkResult::Child => {
                std::panic::set_hook(Box::new(|i| drop(writeln!(std::io::stderr(), "{i}"))));
                let code = match std::panic::catch_unwind(|| drop_to(uid).and_then(|()| body())) {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) if e.starts_with("unavailable") => {
                        let _ = writeln!(std::io::stderr(), "{e}");
                        UNAVAILABLE
                    }
                    Ok(Err(e)) => {
                        let _ = writeln!(std::io::stderr(), "test failed: {e}");
                        1
                    }
                    Err(_) => 1,
                };
                // SAFETY: _exit ends the child without running the
                // harness's atexit or TLS destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let who = uid.map_or_else(|| "the current user".into(), |u| format!("uid {u}"));
                match wait_bounded(child, Duration::from_secs(60)) {
                    WaitStatus::Exited(_, 0) => Ok(()),
                    WaitStatus::Exited(_, UNAVAILABLE) => Err(format!("as {who}: unavailable")),
                    other => panic!("the test body failed as {who}: {other:?}"),
                }
            }
        }
    }

    fn wait_bounded(child: Pid, limit: Duration) -> WaitStatus {
        let end = Instant::now() + limit;
        loop {
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    panic!("the test body took over {limit:?}: killed");
                }
                Ok(st) => return st,
                Err(nix::Error::EINTR) => {}
                Err(e) => panic!("waitpid: {e}"),
            }
        }
    }

    /// Become `uid`/`gid` (no groups), dumpable again (a credential change
    /// clears it, and /proc/self would then belong to root).
    fn drop_to(uid: Option<u32>) -> Result<(), String> {
        let Some(id) = uid else { return Ok(()) };
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        let g = Gid::from_raw(id);
        nix::unistd::setresgid(g, g, g).map_err(|e| format!("setresgid: {e}"))?;
        let u = Uid::from_raw(id);
        nix::unistd::setresuid(u, u, u).map_err(|e| format!("setresuid: {e}"))?;
        nix::sys::prctl::set_dumpable(true).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))
    }

    /// U_net/N_br, or "unavailable" when user namespaces are off here.
    fn network() -> Result<NsHandles, String> {
        create_network_ns().map_err(|e| match e {
            NsError::Unshare(_) => format!("unavailable: {e}"),
            e => format!("create_network_ns: {e}"),
        })
    }

    fn bridge(net: &NsHandles) -> Result<Tap, String> {
        let table = crate::wire::nft::batch(&crate::model::guard::table(), 1);
        let agent = start_bridge(net, table).map_err(s)?;
        uplink_from(agent.wait()).map_err(|e| format!("setup_bridge: {e}"))
    }

    /// `job` in an agent in `handles` (and, with `member`, in that
    /// network namespace too); its fd (or /dev/null's) and bytes.
    fn agent<F>(handles: &NsHandles, job: F) -> Result<(OwnedFd, Vec<u8>), String>
    where
        F: FnOnce() -> Result<(Option<OwnedFd>, Vec<u8>), String>,
    {
        ns::run_in(handles, || {
            let (fd, data) = job()?;
            let fd = match fd {
                Some(fd) => fd,
                None => std::fs::File::open("/dev/null").map_err(s)?.into(),
            };
            Ok((fd, data))
        })
        .map_err(s)
    }

    /// Members started as `rlnet run --network` starts them, killed on drop.
    struct Members(Vec<ns::RunChild>);

    impl Members {
        fn start(&mut self, parent: Option<&OwnedFd>) -> Result<NsHandles, String> {
            let argv = ["sleep".to_string(), "30".to_string()];
            let mut child =
                ns::spawn_run(&argv, None, parent).map_err(|e| format!("spawn_run: {e}"))?;
            let handles = child.handles().map_err(s)?;
            child.go().map_err(s)?;
            self.0.push(child);
            Ok(handles)
        }
    }

    impl Drop for Members {
        fn drop(&mut self) {
            for c in &self.0 {
                let _ = kill(c.pid, Signal::SIGKILL);
                let _ = waitpid(c.pid, None);
            }
        }
    }

    fn link_setup(host: u8, mac: [u8; 6]) -> LinkSetup<'static> {
        LinkSetup {
            ifname: "tap0",
            mtu: MTU,
            mac: Some(mac),
            v4: Some((
                Ipv4Addr::new(10, 89, 0, host),
                24,
                Ipv4Addr::new(10, 89, 0, 1),
            )),
            v6: Some((
                Ipv6Addr::new(0xfd00, 0x89, 0, 0, 0, 0, 0, host.into()),
                64,
                Ipv6Addr::new(0xfd00, 0x89, 0, 0, 0, 0, 0, 1),
            )),
            keep_default_route: false,
        }
    }

    /// add_port, port_up, configure_member: a kernel member wired in.
    fn wire(
        net: &NsHandles,
        m: &NsHandles,
        port: &str,
        host: u8,
        mac: [u8; 6],
    ) -> Result<(), String> {
        agent(net, || {
            add_port(m.net.as_fd(), port, "tap0", mac).map_err(|e| format!("add_port: {e}"))?;
            port_up(port).map_err(|e| format!("port_up: {e}"))?;
            configure_member(m.net.as_fd(), &link_setup(host, mac))
                .map_err(|e| format!("configure_member: {e}"))?;
            Ok((None, vec![]))
        })
        .map(drop)
    }

    /// A UDP socket bound to `addr` inside the member's network namespace.
    fn member_socket(
        net: &NsHandles,
        m: &NsHandles,
        addr: SocketAddr,
    ) -> Result<UdpSocket, String> {
        let (fd, _) = agent(net, || {
            setns(m.net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
            let sock = UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
            Ok((Some(sock.into()), vec![]))
        })?;
        Ok(UdpSocket::from(fd))
    }

    /// A datagram from `from` reaches `to` (a few tries: the first waits
    /// for ARP or neighbour discovery), with `from`'s address as source.
    fn crosses(from: &UdpSocket, to: &UdpSocket) -> Result<(), String> {
        let (src, dst) = (from.local_addr().map_err(s)?, to.local_addr().map_err(s)?);
        to.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(s)?;
        let mut buf = [0u8; 16];
        for _ in 0..10 {
            from.send_to(b"kernel", dst)
                .map_err(|e| format!("send {src} -> {dst}: {e}"))?;
            match to.recv_from(&mut buf) {
                Ok((6, peer)) if &buf[..6] == b"kernel" && peer == src => return Ok(()),
                Ok((n, peer)) => {
                    return Err(format!("{dst} got {n} bytes from {peer}, not from {src}"));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("recv on {dst}: {e}")),
            }
        }
        Err(format!("no datagram from {src} reached {dst} in 5 s"))
    }

    fn port_flags(l: &LinkMessage) -> Vec<InfoBridgePort> {
        l.attributes
            .iter()
            .filter_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => Some(infos),
                _ => None,
            })
            .flatten()
            .filter_map(|i| match i {
                LinkInfo::PortData(InfoPortData::BridgePort(v)) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn controller(l: &LinkMessage) -> Option<u32> {
        l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Controller(i) => Some(*i),
            _ => None,
        })
    }

    fn link(name: &str) -> Result<LinkMessage, String> {
        Rtnl::open()
            .map_err(s)?
            .get_link(name)
            .map_err(s)?
            .ok_or_else(|| format!("no link {name}"))
    }

    fn expect(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
        if ok { Ok(()) } else { Err(what()) }
    }

    /// In N_br: br0 and up0 as setup_bridge leaves them, IPv6 off, no
    /// IPv6 address anywhere.
    fn check_bridge() -> Result<(), String> {
        let (br, up) = (link(BRIDGE)?, link(UPLINK)?);
        expect(br.header.flags.contains(LinkFlags::Up), || {
            "br0 is down".into()
        })?;
        expect(up.header.flags.contains(LinkFlags::Up), || {
            "up0 is down".into()
        })?;
        expect(controller(&up) == Some(br.header.index), || {
            format!("up0's master: {:?}", controller(&up))
        })?;
        let flags = port_flags(&up);
        expect(
            flags.contains(&InfoBridgePort::Learning(true))
                && flags.contains(&InfoBridgePort::UnicastFlood(true)),
            || format!("up0's port flags: {flags:?}"),
        )?;
        for l in [&br, &up] {
            let mtu = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            });
            expect(mtu == Some(MTU), || format!("MTU {mtu:?}"))?;
        }
        for scope in ["all", "default", BRIDGE, UPLINK] {
            let path = format!("/proc/sys/net/ipv6/conf/{scope}/disable_ipv6");
            let v = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            expect(v == "1\n", || format!("{path} is {v:?}"))?;
        }
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        let dump = Rtnl::open()
            .map_err(s)?
            .request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP, || {
                "dump".into()
            })
            .map_err(s)?;
        expect(dump.is_empty(), || {
            format!("N_br has IPv6 addresses: {dump:?}")
        })
    }

    /// `ns::spawn_in_early` (rlnet's TAP agent): the early answer comes
    /// first, what the job does after it comes with `finish`, and a job
    /// that fails before answering fails the spawn.
    #[test]
    fn an_early_agent_answers_first_and_reports_the_rest_on_finish() {
        in_child("early_agent", || {
            let net = network()?;
            let null = || {
                std::fs::File::open("/dev/null")
                    .map(OwnedFd::from)
                    .map_err(s)
            };
            let (_, data, agent) =
                ns::spawn_in_early(&net, |early| early(null()?, b"tap0".to_vec()))
                    .and_then(ns::EarlyStart::answer)
                    .map_err(s)?;
            if data != b"tap0" {
                return Err(format!("early answer {data:?}"));
            }
            agent
                .finish()
                .map_err(|e| format!("finish after success: {e}"))?;
            let (_, _, agent) = ns::spawn_in_early(&net, |early| {
                early(null()?, Vec::new())?;
                Err("configure failed".into())
            })
            .and_then(ns::EarlyStart::answer)
            .map_err(s)?;
            match agent.finish() {
                Err(NsError::Agent(t)) if t == "configure failed" => {}
                other => return Err(format!("finish after a late failure: {other:?}")),
            }
            match ns::spawn_in_early(&net, |_| Err("no TAP".into()))
                .and_then(ns::EarlyStart::answer)
            {
                Err(NsError::Agent(t)) if t == "no TAP" => Ok(()),
                Err(e) => Err(format!("an early failure: {e}")),
                Ok(_) => Err("an early failure was taken for an answer".into()),
            }
        });
    }

    #[test]
    fn network_namespaces_get_a_bridge_and_an_uplink_tap() {
        in_child("network_namespaces_get_a_bridge_and_an_uplink_tap", || {
            let net = network()?;
            expect(net.user.is_some(), || "no user namespace handle".into())?;
            let tap = bridge(&net)?;
            expect(tap.name() == UPLINK, || {
                format!("the TAP is {}", tap.name())
            })?;
            agent(&net, || check_bridge().map(|()| (None, vec![])))?;
            // A second bridge in the same namespace is refused, not merged.
            match agent(&net, || setup_bridge().map(|_| (None, vec![])).map_err(s)) {
                Err(e) if e.contains("create bridge br0") => Ok(()),
                other => Err(format!("second setup_bridge: {other:?}")),
            }
        });
    }

    #[test]
    fn kernel_members_reach_each_other_through_the_bridge() {
        in_child("kernel_members_reach_each_other_through_the_bridge", || {
            let net = network()?;
            let _uplink = bridge(&net)?;
            let mut members = Members(Vec::new());
            let user = net.user.as_ref().ok_or("no U_net")?;
            let (a, b) = (members.start(Some(user))?, members.start(Some(user))?);
            wire(&net, &a, "v0", 2, MAC_A)?;
            wire(&net, &b, "v1", 3, MAC_B)?;
            for (ipa, ipb) in [
                (IpAddr::from([10, 89, 0, 2]), IpAddr::from([10, 89, 0, 3])),
                (
                    "fd00:89::2".parse().map_err(s)?,
                    "fd00:89::3".parse().map_err(s)?,
                ),
            ] {
                let sa = member_socket(&net, &a, SocketAddr::new(ipa, 0))?;
                let sb = member_socket(&net, &b, SocketAddr::new(ipb, 9999))?;
                crosses(&sa, &sb)?;
                crosses(&sb, &sa)?;
            }
            Ok(())
        });
    }

    #[test]
    fn run_members_are_children_of_the_network_user_namespace() {
        in_child(
            "run_members_are_children_of_the_network_user_namespace",
            || {
                let net = network()?;
                let sibling = network()?;
                let mut members = Members(Vec::new());
                let u_net = net.user.as_ref().ok_or("no U_net")?;
                // A copy without FD_CLOEXEC: spawn_run must not leak it.
                let inheritable = nix::unistd::dup(u_net).map_err(s)?;
                let kernel = members.start(Some(&inheritable))?;
                let plain = members.start(None)?;
                let is_child = |h: &NsHandles| -> Result<bool, String> {
                    let user = h.user.as_ref().ok_or("no user namespace handle")?;
                    ns::userns_is_child_of(user.as_fd(), u_net.as_fd()).map_err(s)
                };
                expect(is_child(&kernel)?, || {
                    "a run member with U_net: not a child".into()
                })?;
                expect(!is_child(&plain)?, || {
                    "a plain run member: a child of U_net".into()
                })?;
                expect(!is_child(&sibling)?, || {
                    "a sibling network: a child of U_net".into()
                })?;
                // Both map 0 to the caller (through U_net for the kernel member).
                let me = Uid::effective();
                for c in &members.0 {
                    let path = format!("/proc/{}/uid_map", c.pid);
                    let map = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                    let fields: Vec<&str> = map.split_whitespace().collect();
                    let want = ["0".to_string(), me.to_string(), "1".into()];
                    expect(fields == want, || format!("{path}: {map:?}"))?;
                }
                no_fd_on(members.0[0].pid, u_net)
            },
        );
    }

    /// Once `pid` runs `sleep`, none of its fds is `userns`.
    fn no_fd_on(pid: Pid, userns: &OwnedFd) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).map_err(s)? != "sleep\n" {
            expect(Instant::now() < end, || format!("{pid} did not exec sleep"))?;
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = nix::sys::stat::fstat(userns.as_fd()).map_err(s)?;
        let dir = format!("/proc/{pid}/fd");
        for e in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
            let p = e.map_err(s)?.path();
            let Ok(x) = nix::sys::stat::stat(&p) else {
                continue;
            };
            expect((x.st_dev, x.st_ino) != (st.st_dev, st.st_ino), || {
                format!("COMMAND holds U_net as {}", p.display())
            })?;
        }
        Ok(())
    }

    #[test]
    fn ports_do_not_learn_or_flood_and_go_with_del_port() {
        in_child("ports_do_not_learn_or_flood_and_go_with_del_port", || {
            let net = network()?;
            let _uplink = bridge(&net)?;
            let mut members = Members(Vec::new());
            let m = members.start(Some(net.user.as_ref().ok_or("no U_net")?))?;
            let peer_exists = |want: bool| {
                agent(&net, || {
                    setns(m.net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(s)?;
                    let l = Rtnl::open().map_err(s)?.get_link("tap0").map_err(s)?;
                    let mac = l.and_then(|l| {
                        l.attributes.iter().find_map(|a| match a {
                            LinkAttribute::Address(m) => Some(m.clone()),
                            _ => None,
                        })
                    });
                    expect(mac.is_some() == want, || {
                        format!("tap0 in the member: {mac:?}")
                    })?;
                    expect(mac.as_ref().is_none_or(|m| m == &MAC_A), || {
                        format!("tap0's MAC {mac:?}")
                    })?;
                    Ok((None, vec![]))
                })
            };
            agent(&net, || {
                add_port(m.net.as_fd(), "v7", "tap0", MAC_A).map_err(s)?;
                let (br, port) = (link(BRIDGE)?, link("v7")?);
                expect(!port.header.flags.contains(LinkFlags::Up), || {
                    "v7 is up".into()
                })?;
                expect(controller(&port) == Some(br.header.index), || {
                    "v7 not on br0".into()
                })?;
                let flags = port_flags(&port);
                expect(
                    flags.contains(&InfoBridgePort::Learning(false))
                        && flags.contains(&InfoBridgePort::UnicastFlood(false)),
                    || format!("v7's port flags: {flags:?}"),
                )?;
                check_fdb(port.header.index)?;
                Ok((None, vec![]))
            })?;
            peer_exists(true)?;
            agent(&net, || {
                del_port("v7").map_err(s)?;
                expect(
                    Rtnl::open()
                        .map_err(s)?
                        .get_link("v7")
                        .map_err(s)?
                        .is_none(),
                    || "v7 left".into(),
                )?;
                match del_port("v7") {
                    Err(BridgeError::Netlink(NetlinkError::NoSuchLink(_))) => Ok((None, vec![])),
                    other => Err(format!("deleting v7 twice: {other:?}")),
                }
            })?;
            peer_exists(false).map(drop)
        });
    }

    /// A MAC no port has: frames to it must reach the uplink only.
    const UNKNOWN: [u8; 6] = [0x02, 0x89, 0x0a, 0x59, 0x00, 0xc8];

    /// In the member's netns: 10.89.0.200 resolves to [`UNKNOWN`].
    fn unknown_neighbour(m: &NsHandles) -> Result<(), String> {
        setns(m.net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(s)?;
        let mut nl = Rtnl::open().map_err(s)?;
        let index = nl.index_of("tap0").map_err(s)?;
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes.extend([
            NeighbourAttribute::Destination(Ipv4Addr::new(10, 89, 0, 200).into()),
            NeighbourAttribute::LinkLayerAddress(UNKNOWN.to_vec()),
        ]);
        let op = || "add neighbour 10.89.0.200".into();
        nl.ack(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            op,
        )
        .map_err(s)
    }

    /// A packet socket seeing every frame of the member's netns.
    fn sniffer(net: &NsHandles, m: &NsHandles) -> Result<socket2::Socket, String> {
        let (fd, _) = agent(net, || {
            setns(m.net.as_fd(), CloneFlags::CLONE_NEWNET).map_err(s)?;
            let all = u16::try_from(libc::ETH_P_ALL).map_err(s)?.to_be();
            let proto = Some(socket2::Protocol::from(i32::from(all)));
            let sock = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, proto)
                .map_err(|e| format!("packet socket: {e}"))?;
            Ok((Some(sock.into()), vec![]))
        })?;
        Ok(socket2::Socket::from(fd))
    }

    /// Frames to [`UNKNOWN`] on the sniffer before it stays quiet for 300 ms.
    fn frames_to_unknown(sniff: &socket2::Socket) -> Result<usize, String> {
        sniff
            .set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(s)?;
        let mut buf = [0u8; 2048];
        let (mut n, end) = (0, Instant::now() + Duration::from_secs(3));
        while Instant::now() < end {
            match std::io::Read::read(&mut &*sniff, &mut buf) {
                Ok(len) => n += usize::from(len >= 6 && buf[..6] == UNKNOWN),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// The uplink TAP gets a frame to [`UNKNOWN`] within 3 s.
    fn uplink_sees_unknown(up: &Tap) -> Result<(), String> {
        let mut buf = vec![0u8; 70000];
        let hdr = crate::wire::VNET_HDR_LEN;
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            match up.read(&mut buf) {
                Ok(len) if len >= hdr + 6 && buf[hdr..hdr + 6] == UNKNOWN => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(format!("read up0: {e}")),
            }
        }
        Err("no frame to the unknown MAC reached the uplink".into())
    }

    #[test]
    fn unknown_unicast_reaches_the_uplink_and_no_member() {
        in_child("unknown_unicast_reaches_the_uplink_and_no_member", || {
            let net = network()?;
            let up = bridge(&net)?;
            let mut members = Members(Vec::new());
            let user = net.user.as_ref().ok_or("no U_net")?;
            let (a, b) = (members.start(Some(user))?, members.start(Some(user))?);
            wire(&net, &a, "v0", 2, MAC_A)?;
            wire(&net, &b, "v1", 3, MAC_B)?;
            agent(&net, || unknown_neighbour(&a).map(|()| (None, vec![])))?;
            let sniff = sniffer(&net, &b)?;
            let sa = member_socket(&net, &a, SocketAddr::from(([10, 89, 0, 2], 0)))?;
            for _ in 0..3 {
                sa.send_to(b"lost", "10.89.0.200:9")
                    .map_err(|e| format!("send: {e}"))?;
            }
            uplink_sees_unknown(&up)?;
            let seen = frames_to_unknown(&sniff)?;
            expect(seen == 0, || {
                format!("member b saw {seen} frames to the unknown MAC")
            })?;
            // The control: b still gets what is sent to it.
            let sb = member_socket(&net, &b, SocketAddr::from(([10, 89, 0, 3], 9999)))?;
            crosses(&sa, &sb)
        });
    }

    /// The port's static FDB entry for MAC_A, as `bridge fdb show` lists it.
    fn check_fdb(index: u32) -> Result<(), String> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        let dump = Rtnl::open()
            .map_err(s)?
            .request(RouteNetlinkMessage::GetNeighbour(msg), NLM_F_DUMP, || {
                "dump the FDB".into()
            })
            .map_err(s)?;
        let found = dump.iter().any(|r| match r {
            RouteNetlinkMessage::NewNeighbour(n) => {
                n.header.ifindex == index
                    && n.header.state == NeighbourState::Noarp
                    && n.attributes
                        .contains(&NeighbourAttribute::LinkLayerAddress(MAC_A.to_vec()))
            }
            _ => false,
        });
        expect(found, || {
            format!("no static FDB entry for MAC_A on {index}: {dump:?}")
        })
    }
}
