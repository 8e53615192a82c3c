//! The data plane: one thread, one epoll set, no busy polling. It owns the
//! TAP, the smoltcp interface and every flow; it sleeps in `epoll_wait`
//! until a frame, a host socket, a signal or a flow timer needs it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant as StdInstant;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use slab::Slab;
use smoltcp::iface::Interface;
use smoltcp::phy::DeviceCapabilities;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet,
    Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket,
    UdpPacket,
};
use thiserror::Error;

use crate::api::server::{ApiEvent, ApiServer};
use crate::api::{self, ApiError, Request};
use crate::dhcp::{DhcpConfig, DhcpServer};
use crate::dns::{DnsConfig, DnsError, DnsIo, DnsStub, NetworkId};
use crate::forward::PublishSpec;
use crate::forward::publish::{ForwardError, Forwarder};
use crate::forward::spec::Mode;
use crate::nat::icmp::EchoRequest;
use crate::nat::policy::{Decision, Policy};
use crate::nat::{Ctx, FlowKey, Kind, Nat, Outbound, from_token, token};
use crate::network::attach;
use crate::network::ipam::Ipam;
use crate::network::member::Member;
use crate::stack::{self, GATEWAY_MAC, TapOut};
use crate::sys::ns::NsHandles;
use crate::sys::tap::Tap;
use crate::wire::{self, FRAME_BUF, VNET_HDR_LEN, VnetHdr};

const SIGNALS: Token = Token(1);
const TARGET: Token = Token(2);
const EXIT_FD: Token = Token(3);
const CHILD: Token = Token(4);
const API: Token = Token(5);

/// Router advertisements: the default route's lifetime, and how often it
/// is renewed once the namespace asked for a router (as radvd: a third).
const RA_ROUTER_LIFETIME_S: u64 = 1800;
const RA_INTERVAL_US: i64 = 600_000_000;

/// Frames read per wake-up before other events get a turn.
const TAP_BATCH: usize = 256;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("event loop: {0}")]
    Poll(io::Error),
    #[error("cannot watch {what}: {err}")]
    Register { what: &'static str, err: io::Error },
    #[error(transparent)]
    Publish(#[from] ForwardError),
    #[error(transparent)]
    Dns(#[from] DnsError),
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// The target process (PID mode) exited.
    TargetGone,
    /// The exit fd hung up (or was not open).
    ExitFd,
    /// `rlnet run`: COMMAND ended with this exit code.
    Child(i32),
    /// A named network was told to stop (`rlnet network rm`).
    Shutdown,
}

/// A named network's state: its name and address allocation.
pub struct NetworkSetup {
    pub name: String,
    pub ipam: Ipam,
}

/// What the engine serves and watches.
pub struct Setup {
    /// The namespace's TAP (the slirp4netns form); None for a named
    /// network, whose members come and go through the API.
    pub tap: Option<Tap>,
    pub network: Option<NetworkSetup>,
    pub ns_mac: Option<[u8; 6]>,
    pub mtu: u32,
    pub policy: Policy,
    pub outbound: Outbound,
    /// Signals to handle; None in in-process tests.
    pub signals: Option<SignalFd>,
    /// PID mode: exit when it becomes readable.
    pub target: Option<OwnedFd>,
    /// `-e`: the exit fd as it was when rlnet started; `Some(None)` when
    /// the caller gave a number that was not open (exit at once).
    pub exit_fd: Option<Option<OwnedFd>>,
    /// `rlnet run`: the command's pid and pidfd.
    pub child: Option<(Pid, OwnedFd)>,
    /// Ports to publish at start, and the default mode for them.
    pub publish: Vec<PublishSpec>,
    pub publish_mode: Mode,
    /// The namespace, for the socket factory (splice mode); None in tests.
    pub ns: Option<NsHandles>,
    /// `net.ipv4.ip_unprivileged_port_start` (0 when rlnet may bind any port).
    pub unprivileged_start: u16,
    /// The API socket, already listening.
    pub api: Option<ApiServer>,
    /// The DNS stub's configuration; None with `--disable-dns`.
    pub dns: Option<DnsConfig>,
}

/// The named network's scope in the stub's name table (one network per
/// engine).
const NET_SCOPE: NetworkId = NetworkId(0);

/// Packet-processing state, split from the receive buffer so a frame can be
/// borrowed while everything else is mutated.
struct Dp {
    /// One TAP per namespace served ("ports"); port 0 in the slirp4netns form.
    outs: Slab<TapOut>,
    /// Namespace-side addresses → their port.
    ports_by_ip: HashMap<IpAddr, usize>,
    /// Where frames for unknown namespace addresses go (the one namespace).
    default_port: Option<usize>,
    iface: Interface,
    caps: DeviceCapabilities,
    policy: Policy,
    outbound: Outbound,
    nat: Nat,
    fwd: Forwarder,
    /// DHCPv4 for the namespace (slirp4netns serves one; callers without
    /// `-c` rely on it).
    dhcp: DhcpServer,
    dns: Option<DnsStub>,
    /// SLAAC: the port that solicited a router, and when to advertise again.
    ra_port: Option<usize>,
    ra_due: Option<i64>,
    /// Named network: members by port, the switch's MAC table, IPAM.
    members: HashMap<usize, Member>,
    mac_to_port: HashMap<EthernetAddress, usize>,
    net: Option<NetworkSetup>,
    /// `shutdown` was accepted: the loop ends after the reply.
    shutdown: bool,
    now: Instant,
    mtu: u32,
    /// Frames and bytes read from the TAP.
    frames_in: u64,
    bytes_in: u64,
}

pub struct Engine {
    poll: Poll,
    rx: Box<[u8]>,
    dp: Dp,
    api: Option<ApiServer>,
    start: StdInstant,
    signals: Option<SignalFd>,
    target: Option<OwnedFd>,
    exit_fd: Option<OwnedFd>,
    child: Option<(Pid, OwnedFd)>,
    /// Ports whose TAP has frames to read.
    readable_taps: Vec<usize>,
    /// The exit fd was not open at start: exit at once (slirp4netns POLLNVAL).
    exit_now: bool,
}

fn register(
    registry: &Registry,
    fd: RawFd,
    token: Token,
    interest: Interest,
    what: &'static str,
) -> Result<(), EngineError> {
    registry
        .register(&mut SourceFd(&fd), token, interest)
        .map_err(|err| EngineError::Register { what, err })
}

impl Engine {
    pub fn new(s: Setup) -> Result<Engine, EngineError> {
        let poll = Poll::new().map_err(EngineError::Poll)?;
        let start = StdInstant::now();
        let now = Instant::from_micros(0);
        let caps = stack::capabilities();
        let iface = stack::interface(&s.policy.plan, &caps, now);
        let registry = poll.registry();
        let mut outs = Slab::new();
        let mut ports_by_ip = HashMap::new();
        let mut default_port = None;
        if let Some(tap) = s.tap {
            let port = outs.insert(TapOut::new(tap, s.ns_mac.map(EthernetAddress), s.mtu));
            register(
                registry,
                outs[port].tap().as_raw_fd(),
                token(Kind::Tap, port),
                Interest::READABLE | Interest::WRITABLE,
                "the TAP device",
            )?;
            // The slirp4netns form: one namespace gets everything.
            ports_by_ip.insert(IpAddr::V4(s.policy.plan.guest4), port);
            if let Some(v6) = s.policy.plan.v6 {
                ports_by_ip.insert(IpAddr::V6(v6.guest6), port);
            }
            default_port = Some(port);
        }
        if let Some(sig) = &s.signals {
            register(
                registry,
                sig.as_raw_fd(),
                SIGNALS,
                Interest::READABLE,
                "signals",
            )?;
        }
        if let Some(fd) = &s.target {
            register(
                registry,
                fd.as_raw_fd(),
                TARGET,
                Interest::READABLE,
                "the target process",
            )?;
        }
        if let Some((_, fd)) = &s.child {
            register(
                registry,
                fd.as_raw_fd(),
                CHILD,
                Interest::READABLE,
                "the command",
            )?;
        }
        let mut exit_now = matches!(s.exit_fd, Some(None));
        let exit_fd = s.exit_fd.flatten();
        if let Some(fd) = exit_fd.as_ref().map(AsRawFd::as_raw_fd) {
            match registry.register(&mut SourceFd(&fd), EXIT_FD, Interest::READABLE) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBADF) => exit_now = true,
                // A regular file never hangs up: nothing to watch.
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    log::warn!("exit fd {fd} cannot be watched (not a pipe or socket); ignoring it")
                }
                Err(err) => {
                    return Err(EngineError::Register {
                        what: "the exit fd",
                        err,
                    });
                }
            }
        }
        let mut api = s.api;
        if let Some(a) = api.as_mut() {
            a.register(registry, API)
                .map_err(|err| EngineError::Register {
                    what: "the API socket",
                    err,
                })?;
        }
        let dhcp = DhcpServer::new(DhcpConfig {
            plan: s.policy.plan,
            dns: s.policy.dns,
            mtu: s.mtu,
            lease_secs: crate::dhcp::DEFAULT_LEASE_SECS,
        });
        let fwd = Forwarder::new(s.policy.plan, s.unprivileged_start, s.publish_mode, s.ns);
        let mut dns = s.dns.map(DnsStub::new).transpose()?;
        if let Some(stub) = dns.as_mut() {
            // --internal: nothing leaves, not even queries.
            stub.set_forwarding(!s.policy.internal);
            if s.network.is_some() {
                let plan = &s.policy.plan;
                let records = stub.records_mut();
                records.set_stub_network(IpAddr::V4(plan.dns4), Some(NET_SCOPE));
                if let Some(v6) = plan.v6 {
                    records.set_stub_network(IpAddr::V6(v6.dns6), Some(NET_SCOPE));
                }
            }
        }
        let mut engine = Engine {
            poll,
            rx: vec![0u8; FRAME_BUF].into_boxed_slice(),
            dp: Dp {
                outs,
                ports_by_ip,
                default_port,
                iface,
                caps,
                policy: s.policy,
                outbound: s.outbound,
                nat: Nat::new(),
                fwd,
                dhcp,
                dns,
                ra_port: None,
                ra_due: None,
                members: HashMap::new(),
                mac_to_port: HashMap::new(),
                net: s.network,
                shutdown: false,
                now,
                mtu: s.mtu,
                frames_in: 0,
                bytes_in: 0,
            },
            api,
            start,
            signals: s.signals,
            target: s.target,
            exit_fd,
            child: s.child,
            readable_taps: default_port.into_iter().collect(),
            exit_now,
        };
        if !s.publish.is_empty() {
            let (ctx, _, fwd) = engine.dp.split(engine.poll.registry());
            fwd.publish(&s.publish, s.publish_mode, None, &ctx)?;
        }
        Ok(engine)
    }

    /// Start now what is otherwise started on first use by entering the
    /// namespace (the splice-mode socket factory): call before confining
    /// rlnet.
    pub fn prepare_confinement(&mut self) -> Result<(), EngineError> {
        Ok(self.dp.fwd.start_factory()?)
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as i64)
    }

    /// Run until a signal, the target's exit or the exit fd ends it.
    pub fn run(&mut self) -> Result<Exit, EngineError> {
        if self.exit_now {
            return Ok(Exit::ExitFd);
        }
        let mut events = Events::with_capacity(256);
        loop {
            if let Some(exit) = self.turn(&mut events, None)? {
                return Ok(exit);
            }
        }
    }

    /// One round of the loop: wait (at most `max_wait`, or until the next
    /// timer), handle what arrived, fire due timers.
    pub fn turn(
        &mut self,
        events: &mut Events,
        max_wait: Option<std::time::Duration>,
    ) -> Result<Option<Exit>, EngineError> {
        let mut timeout = if !self.readable_taps.is_empty()
            || self.dp.nat.has_backlog()
            || self.dp.fwd.has_backlog()
        {
            Some(std::time::Duration::ZERO)
        } else {
            let api_deadline = self.api.as_ref().and_then(|a| a.next_deadline());
            let next = [
                self.dp.nat.next_deadline(),
                self.dp.fwd.next_deadline(),
                self.dp.dns.as_ref().and_then(DnsStub::next_deadline),
                self.dp.ra_due,
                api_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            next.map(|t| {
                let now = self.now().total_micros();
                std::time::Duration::from_micros(t.saturating_sub(now).max(0) as u64)
            })
        };
        if let Some(max) = max_wait {
            timeout = Some(timeout.map_or(max, |t| t.min(max)));
        }
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(EngineError::Poll(e)),
        }
        self.dp.now = self.now();
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    if let Some(exit) = self.read_signals() {
                        return Ok(Some(exit));
                    }
                }
                TARGET => return Ok(Some(Exit::TargetGone)),
                CHILD => {
                    if let Some(code) = self.reap_child() {
                        return Ok(Some(Exit::Child(code)));
                    }
                }
                API => {
                    if let Some(api) = self.api.as_mut() {
                        let now = self.dp.now.total_micros();
                        api.accept(self.poll.registry(), |i| token(Kind::ApiClient, i), now);
                    }
                }
                EXIT_FD => {
                    // Only a hang-up or error ends us; data written into
                    // the pipe does not (slirp4netns polls POLLHUP only).
                    if ev.is_read_closed() || ev.is_error() || ev.is_write_closed() {
                        return Ok(Some(Exit::ExitFd));
                    }
                }
                t => {
                    let (mut ctx, nat, fwd) = self.dp.split(self.poll.registry());
                    let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                    let writable = ev.is_writable() || ev.is_error();
                    match from_token(t) {
                        Some((Kind::Tap, port)) => {
                            if ev.is_readable() && !self.readable_taps.contains(&port) {
                                self.readable_taps.push(port);
                            }
                            if ev.is_writable() && ctx.out(port).is_some_and(|o| o.flush()) {
                                nat.tap_drained(&mut ctx);
                            }
                        }
                        Some((Kind::Tcp | Kind::Udp | Kind::Icmp, _)) => {
                            nat.host_event(t, readable, writable, &mut ctx)
                        }
                        Some((Kind::ApiClient, idx)) => {
                            self.api_event(idx);
                            if self.dp.shutdown {
                                return Ok(Some(Exit::Shutdown));
                            }
                        }
                        Some((Kind::Member, port)) => self.member_gone(port),
                        Some((Kind::Dns, idx)) => {
                            let registry = self.poll.registry();
                            self.dp.dns_event(idx, readable, writable, registry);
                        }
                        Some((kind, idx)) => {
                            fwd.event(kind, idx, readable, writable, nat, &mut ctx)
                        }
                        None => {}
                    }
                }
            }
        }
        if !self.readable_taps.is_empty() {
            self.read_taps();
        }
        let (mut ctx, nat, fwd) = self.dp.split(self.poll.registry());
        nat.run_backlog(&mut ctx);
        fwd.run_backlog(nat, &mut ctx);
        nat.run_timers(&mut ctx);
        fwd.run_timers(&ctx);
        self.dp.dns_timers(self.poll.registry());
        self.dp.ra_timer();
        if let Some(api) = self.api.as_mut() {
            api.expire(self.dp.now.total_micros(), self.poll.registry());
        }
        Ok(None)
    }

    fn api_event(&mut self, idx: usize) {
        let Some(api) = self.api.as_mut() else { return };
        let registry = self.poll.registry();
        if let ApiEvent::Request(client, req) =
            api.client_event(idx, registry, &self.dp.policy.plan)
        {
            let body = self.dp.execute(req, registry);
            api.reply(client, body, registry);
        }
    }

    /// A member's process exited: its attachment ends.
    fn member_gone(&mut self, port: usize) {
        let registry = self.poll.registry();
        self.dp.detach(port, registry);
    }

    /// Read a batch of frames from every TAP that has some.
    fn read_taps(&mut self) {
        let ports = std::mem::take(&mut self.readable_taps);
        for port in ports {
            if self.read_tap(port) {
                self.readable_taps.push(port);
            }
        }
        let (mut ctx, nat, _) = self.dp.split(self.poll.registry());
        nat.flush_dirty(&mut ctx);
    }

    /// True if frames may be left (the batch limit was reached).
    fn read_tap(&mut self, port: usize) -> bool {
        for _ in 0..TAP_BATCH {
            let Some(out) = self.dp.outs.get(port) else {
                return false;
            };
            match out.tap().read(&mut self.rx) {
                Ok(n) => {
                    self.dp.frames_in += 1;
                    self.dp.bytes_in += n as u64;
                    let registry = self.poll.registry();
                    self.dp.frame(port, &self.rx[..n], registry);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EIO/EBADFD: the device went away with its namespace.
                    crate::limited!(Debug, "TAP read: {e}");
                    return false;
                }
            }
        }
        true
    }

    fn read_signals(&mut self) -> Option<Exit> {
        while let Some(Ok(Some(info))) = self.signals.as_ref().map(|s| s.read_signal()) {
            let signo = info.ssi_signo as i32;
            match Signal::try_from(signo) {
                Ok(Signal::SIGCHLD) => {
                    if let Some(code) = self.reap_child() {
                        return Some(Exit::Child(code));
                    }
                }
                Ok(sig) => {
                    if let Some((pid, _)) = &self.child {
                        // `rlnet run` behaves like a shell: the command decides.
                        let _ = nix::sys::signal::kill(*pid, sig);
                    } else {
                        return Some(Exit::Signal(signo));
                    }
                }
                Err(_) => {}
            }
        }
        None
    }

    /// The exit code of COMMAND once it has ended (128+signal if killed).
    fn reap_child(&self) -> Option<i32> {
        let (pid, _) = self.child.as_ref()?;
        match waitpid(*pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(128 + sig as i32),
            _ => None,
        }
    }

    /// Counters for tests and `status`.
    pub fn flows(&self) -> (usize, usize) {
        (self.dp.nat.tcp_flows(), self.dp.nat.udp_flows())
    }

    pub fn exit_fd(&self) -> Option<RawFd> {
        self.exit_fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    pub fn target(&self) -> Option<&OwnedFd> {
        self.target.as_ref()
    }
}

/// Does a frame from member `m` carry only its own addresses?
fn source_ok(m: &Member, ethertype: EthernetProtocol, payload: &[u8]) -> bool {
    match ethertype {
        EthernetProtocol::Ipv4 => {
            Ipv4Packet::new_checked(payload).is_ok_and(|p| m.owns(IpAddr::V4(p.src_addr())))
        }
        EthernetProtocol::Ipv6 => {
            Ipv6Packet::new_checked(payload).is_ok_and(|p| m.owns(IpAddr::V6(p.src_addr())))
        }
        EthernetProtocol::Arp => smoltcp::wire::ArpPacket::new_checked(payload).is_ok_and(|p| {
            p.source_hardware_addr() == m.mac.as_bytes()
                && p.source_protocol_addr() == m.ip4.octets()
        }),
        _ => false,
    }
}

fn describe_member(m: &api::MemberInfo) -> String {
    m.name.clone().unwrap_or_else(|| m.ipv4.to_string())
}

impl Dp {
    fn split<'a>(
        &'a mut self,
        registry: &'a Registry,
    ) -> (Ctx<'a>, &'a mut Nat, &'a mut Forwarder) {
        (
            Ctx {
                iface: &mut self.iface,
                outs: &mut self.outs,
                caps: &self.caps,
                registry,
                policy: &self.policy,
                outbound: self.outbound,
                now: self.now,
                ports_by_ip: &self.ports_by_ip,
                default_port: self.default_port,
            },
            &mut self.nat,
            &mut self.fwd,
        )
    }

    /// Carry out an API request; returns the reply body.
    fn execute(&mut self, req: Result<Request, ApiError>, registry: &Registry) -> Vec<u8> {
        let req = match req {
            Ok(r) => r,
            Err(e) => return e.body(),
        };
        let verb = req.verb();
        let fail = |e: ForwardError| match e {
            ForwardError::Table(t) => ApiError::from_table(verb, &t).body(),
            other => ApiError::failed(verb, other).body(),
        };
        let status = self.status();
        let plan = self.policy.plan;
        // On a named network: every member name and alias, with its address.
        let named: Option<Vec<(String, IpAddr)>> = self.net.as_ref().map(|_| {
            self.members
                .values()
                .flat_map(|m| m.names().map(|n| (n.to_string(), IpAddr::V4(m.ip4))))
                .collect()
        });
        let (ctx, _, fwd) = self.split(registry);
        match req {
            Request::AddHostfwd { spec, guest } => {
                let mode = fwd.default_mode();
                match fwd.publish(std::slice::from_ref(&spec), mode, guest, &ctx) {
                    Ok(ids) => api::ok_id(ids.first().copied().unwrap_or(0)),
                    Err(e) => fail(e),
                }
            }
            Request::ListHostfwd => api::list_body(fwd.table.rules(), &plan),
            Request::RemoveHostfwd { id } => match fwd.unpublish(&[id], &ctx) {
                Ok(()) => api::ok_empty(),
                Err(_) => ApiError::RemoveHostfwdId.body(),
            },
            Request::AddPublish { specs, mode, to } => {
                let guest = match (to, named) {
                    (None, None) => None,
                    (Some(name), None) => {
                        let reason = format!(
                            "no member named {name:?}: this namespace is not on a named network"
                        );
                        return ApiError::failed(verb, reason).body();
                    }
                    (None, Some(_)) => {
                        let reason = "on a named network, say which member the ports go to (\"to\": NAME, or --to NAME)";
                        return ApiError::failed(verb, reason).body();
                    }
                    (Some(name), Some(members)) => match members.iter().find(|(n, _)| *n == name) {
                        Some(&(_, ip)) => Some(ip),
                        None => {
                            let reason = format!("no member named {name:?} on this network");
                            return ApiError::failed(verb, reason).body();
                        }
                    },
                };
                let mode = mode.unwrap_or(fwd.default_mode());
                match fwd.publish(&specs, mode, guest, &ctx) {
                    Ok(ids) => api::ok_ids(&ids),
                    Err(e) => fail(e),
                }
            }
            Request::RemovePublish { ids } => match fwd.unpublish(&ids, &ctx) {
                Ok(()) => api::ok_empty(),
                Err(e) => fail(e),
            },
            Request::Status => api::status_body(&status),
            Request::Attach(req) => match self.attach(req, registry) {
                Ok(info) => api::attach_body(&info),
                Err(e) => ApiError::failed(verb, e).body(),
            },
            Request::Detach(who) => {
                let port = self.members.iter().find_map(|(&p, m)| {
                    let hit = match &who {
                        api::MemberRef::Name(n) => m.name.as_deref() == Some(n.as_str()),
                        api::MemberRef::Pid(pid) => m.pid == Some(*pid),
                    };
                    hit.then_some(p)
                });
                match port {
                    Some(p) => {
                        self.detach(p, registry);
                        api::ok_empty()
                    }
                    None => ApiError::failed(verb, format!("no such member: {who:?}")).body(),
                }
            }
            Request::ListAttached => api::members_body(&self.member_infos()),
            Request::Shutdown { force } => {
                if !self.members.is_empty() && !force {
                    let names: Vec<String> =
                        self.member_infos().iter().map(describe_member).collect();
                    let reason = format!(
                        "the network has {} member(s) ({}): detach them first, or force it",
                        names.len(),
                        names.join(", ")
                    );
                    return ApiError::failed(verb, reason).body();
                }
                let ports: Vec<usize> = self.members.keys().copied().collect();
                for p in ports {
                    self.detach(p, registry);
                }
                self.shutdown = true;
                api::ok_empty()
            }
        }
    }

    fn member_infos(&self) -> Vec<api::MemberInfo> {
        let mut v: Vec<api::MemberInfo> = self
            .members
            .values()
            .map(|m| api::MemberInfo {
                name: m.name.clone(),
                aliases: m.aliases.clone(),
                ipv4: m.ip4,
                ipv6: m.ip6,
                mac: wire::mac_text(m.mac),
                tap: m.tap.clone(),
                pid: m.pid,
            })
            .collect();
        v.sort_by_key(|m| m.ipv4);
        v
    }

    /// Put a namespace on this named network.
    fn attach(
        &mut self,
        req: api::AttachRequest,
        registry: &Registry,
    ) -> Result<api::MemberInfo, String> {
        let Some(net) = self.net.as_mut() else {
            return Err("this rlnet serves one namespace; attach works on named networks (rlnet network create)".into());
        };
        let taken = |n: &String| self.members.values().any(|m| m.names().any(|x| x == n));
        if let Some(n) = req.name.iter().chain(req.aliases.iter()).find(|n| taken(n)) {
            return Err(format!(
                "the name {n:?} is already taken on network {}",
                net.name
            ));
        }
        let specs = req
            .publish
            .iter()
            .map(|t| t.parse::<PublishSpec>().map_err(|e| format!("{t:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let lease = net
            .ipam
            .allocate()
            .ok_or_else(|| format!("network {} is full", net.name))?;
        let created = attach::create_tap(&req, &lease, &self.policy.plan, self.mtu);
        let mt = match created {
            Ok(t) if self.members.values().any(|m| m.netns == t.netns) => {
                net.ipam.release(lease.ip4);
                return Err(format!("that namespace is already on network {}", net.name));
            }
            Ok(t) => t,
            Err(e) => {
                net.ipam.release(lease.ip4);
                return Err(e);
            }
        };
        let mac = EthernetAddress(lease.mac);
        let member = Member {
            name: req.name.clone(),
            aliases: req.aliases.clone(),
            mac,
            ip4: lease.ip4,
            ip6: lease.ip6,
            tap: mt.tap.name().to_string(),
            pid: req.pid,
            pidfd: mt.pidfd,
            netns: mt.netns,
        };
        let port = self.outs.insert(TapOut::new(mt.tap, Some(mac), self.mtu));
        let tapfd = self.outs[port].tap().as_raw_fd();
        let _ = registry.register(
            &mut SourceFd(&tapfd),
            token(Kind::Tap, port),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Some(fd) = &member.pidfd {
            let _ = registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                token(Kind::Member, port),
                Interest::READABLE,
            );
        }
        self.ports_by_ip.insert(IpAddr::V4(member.ip4), port);
        if let Some(ip6) = member.ip6 {
            self.ports_by_ip.insert(IpAddr::V6(ip6), port);
        }
        self.mac_to_port.insert(mac, port);
        self.publish_names(&member, true);
        let info = api::MemberInfo {
            name: member.name.clone(),
            aliases: member.aliases.clone(),
            ipv4: member.ip4,
            ipv6: member.ip6,
            mac: wire::mac_text(mac),
            tap: member.tap.clone(),
            pid: member.pid,
        };
        self.members.insert(port, member);
        if !specs.is_empty() {
            let mode = self.fwd.default_mode();
            let (ctx, _, fwd) = self.split(registry);
            if let Err(e) = fwd.publish(&specs, mode, Some(IpAddr::V4(lease.ip4)), &ctx) {
                self.detach(port, registry);
                return Err(e.to_string());
            }
        }
        log::info!(
            "attached {} as {} on {}",
            info.name.as_deref().unwrap_or("(unnamed)"),
            info.ipv4,
            info.tap
        );
        Ok(info)
    }

    /// Take a member off: its TAP closes (and vanishes from its namespace),
    /// its flows and published ports go, its addresses are free again.
    fn detach(&mut self, port: usize, registry: &Registry) {
        let Some(member) = self.members.remove(&port) else {
            return;
        };
        self.publish_names(&member, false);
        if let Some(out) = self.outs.try_remove(port) {
            let _ = registry.deregister(&mut SourceFd(&out.tap().as_raw_fd()));
        }
        if let Some(fd) = &member.pidfd {
            let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        self.nat.drop_port(port, registry);
        let (ctx, _, fwd) = self.split(registry);
        fwd.unpublish_guest(IpAddr::V4(member.ip4), &ctx);
        self.ports_by_ip.retain(|_, p| *p != port);
        self.mac_to_port.remove(&member.mac);
        if let Some(net) = self.net.as_mut() {
            net.ipam.release(member.ip4);
        }
        log::info!(
            "detached {} ({})",
            member.name.as_deref().unwrap_or("(unnamed)"),
            member.ip4
        );
    }

    fn status(&self) -> api::Status {
        let tx = self
            .outs
            .iter()
            .fold(crate::stack::TxStats::default(), |mut t, (_, o)| {
                t.frames += o.stats.frames;
                t.bytes += o.stats.bytes;
                t.dropped += o.stats.dropped;
                t
            });
        api::Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            tap: self
                .outs
                .iter()
                .next()
                .map(|(_, o)| o.tap().name().to_string())
                .unwrap_or_default(),
            mtu: self.mtu,
            addresses: api::Addresses::from_plan(&self.policy.plan),
            counters: api::Counters {
                tcp_flows: self.nat.tcp_flows() as u64,
                udp_flows: self.nat.udp_flows() as u64,
                frames_in: self.frames_in,
                frames_out: tx.frames,
                bytes_in: self.bytes_in,
                bytes_out: tx.bytes,
                drops: tx.dropped,
            },
            published: self.fwd.table.len() as u64,
        }
    }

    /// Build a packet in `port`'s frame buffer and send it.
    fn send_built(&mut self, port: usize, build: impl FnOnce(&mut [u8]) -> Option<usize>) {
        if let Some(out) = self.outs.get_mut(port)
            && let Some(len) = build(out.ip_buf())
        {
            out.send_ip(len);
        }
    }

    /// One frame from the namespace on `port`. Anything malformed is
    /// dropped here, before it can reach smoltcp or a host socket.
    fn frame(&mut self, port: usize, frame: &[u8], registry: &Registry) {
        let Some(vnet) = VnetHdr::parse(frame) else {
            return;
        };
        let Ok(eth) = EthernetFrame::new_checked(&frame[VNET_HDR_LEN..]) else {
            return;
        };
        let src_mac = eth.src_addr();
        let dst_mac = eth.dst_addr();
        if !src_mac.is_unicast() || src_mac == GATEWAY_MAC {
            return;
        }
        if let Some(m) = self.members.get(&port) {
            // A named network: the switch. Members send only as themselves.
            if src_mac != m.mac || !source_ok(m, eth.ethertype(), eth.payload()) {
                return;
            }
            if dst_mac != GATEWAY_MAC {
                if dst_mac.is_unicast() {
                    if let Some(&to) = self.mac_to_port.get(&dst_mac)
                        && to != port
                        && let Some(out) = self.outs.get_mut(to)
                    {
                        out.send_raw(frame);
                    }
                    return;
                }
                // Broadcast/multicast: every other member, and us below
                // (ARP and neighbour solicitations for the gateway).
                for (&p, _) in self.members.iter().filter(|(p, _)| **p != port) {
                    if let Some(out) = self.outs.get_mut(p) {
                        out.send_raw(frame);
                    }
                }
            }
        } else {
            if dst_mac.is_unicast() && dst_mac != GATEWAY_MAC {
                return;
            }
            let Some(out) = self.outs.get_mut(port) else {
                return;
            };
            if out.ns_mac != Some(src_mac) {
                out.ns_mac = Some(src_mac);
            }
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.arp(port, eth.payload()),
            EthernetProtocol::Ipv4 if dst_mac == GATEWAY_MAC => {
                self.ipv4(port, eth.payload(), vnet, registry)
            }
            // DHCP discovers/requests are broadcast before the client has
            // an address; nothing else broadcast is for us. (Members of a
            // named network have static addresses.)
            EthernetProtocol::Ipv4 if self.net.is_none() => self.dhcp(port, eth.payload(), src_mac),
            EthernetProtocol::Ipv6 => self.ipv6(port, eth.payload(), vnet, dst_mac, registry),
            _ => {}
        }
    }

    fn dhcp(&mut self, port: usize, payload: &[u8], src_mac: EthernetAddress) {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return;
        };
        let Ok(repr) = Ipv4Repr::parse(&ip, &wire::verify_caps()) else {
            return;
        };
        let to_us =
            repr.dst_addr == Ipv4Addr::BROADCAST || repr.dst_addr == self.policy.plan.gateway4;
        if repr.next_header != IpProtocol::Udp || !to_us {
            return;
        }
        let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
            return;
        };
        if udp.dst_port() != crate::dhcp::SERVER_PORT || udp.src_port() != crate::dhcp::CLIENT_PORT
        {
            return;
        }
        let now = (self.now.total_micros() / 1_000_000).max(0) as u64;
        let Some(reply) = self.dhcp.handle(udp.payload(), src_mac.0, now) else {
            return;
        };
        let server = SocketAddr::new(
            IpAddr::V4(self.policy.plan.gateway4),
            crate::dhcp::SERVER_PORT,
        );
        let client = SocketAddr::new(IpAddr::V4(reply.dst_ip), crate::dhcp::CLIENT_PORT);
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        let off = wire::udp_payload_offset(false);
        let buf = out.ip_buf();
        let Some(room) = buf.get_mut(off..off + reply.payload.len()) else {
            return;
        };
        room.copy_from_slice(&reply.payload);
        if let Some(len) = wire::udp_headers(buf, server, client, reply.payload.len()) {
            out.send_ip_to(len, EthernetAddress(reply.dst_mac));
        }
    }

    fn arp(&mut self, port: usize, arp: &[u8]) {
        let plan = self.policy.plan;
        let dns = self.policy.dns;
        let ours = |ip| ip == plan.gateway4 || (dns && ip == plan.dns4);
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        if let Some((len, to)) = wire::arp_reply(arp, ours, GATEWAY_MAC, out.ip_buf()) {
            out.send_l2(len, EthernetProtocol::Arp, to);
        }
    }

    fn ipv4(&mut self, port: usize, payload: &[u8], vnet: VnetHdr, registry: &Registry) {
        let Ok(ip) = Ipv4Packet::new_checked(payload) else {
            return;
        };
        // Header checksum checked; fragments refused (we never reassemble).
        let Ok(repr) = Ipv4Repr::parse(&ip, &wire::verify_caps()) else {
            return;
        };
        let Some(pkt) = payload.get(..usize::from(ip.total_len())) else {
            return;
        };
        let (src, dst) = (repr.src_addr.into(), repr.dst_addr.into());
        if !self.policy.valid_source(src) {
            return;
        }
        let body = ip.payload();
        match repr.next_header {
            IpProtocol::Tcp => self.tcp(port, pkt, body, src, dst, vnet, registry),
            IpProtocol::Udp => self.udp(port, pkt, body, src, dst, vnet, registry),
            IpProtocol::Icmp => {
                let Ok(icmp) = Icmpv4Packet::new_checked(body) else {
                    return;
                };
                let Ok(Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }) = Icmpv4Repr::parse(&icmp, &wire::verify_caps())
                else {
                    return;
                };
                let plan = self.policy.plan;
                if repr.dst_addr == plan.gateway4 || repr.dst_addr == plan.dns4 {
                    // The gateway and DNS addresses always answer ping.
                    let reply = Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    };
                    self.send_built(port, |b| {
                        wire::icmpv4(b, repr.dst_addr, repr.src_addr, &reply)
                    });
                } else {
                    let req = EchoRequest {
                        src,
                        dst,
                        ident,
                        seq: seq_no,
                        data,
                    };
                    let (mut ctx, nat, _) = self.split(registry);
                    nat.ping(port, req, &mut ctx);
                }
            }
            _ => {}
        }
    }

    fn ipv6(
        &mut self,
        port: usize,
        payload: &[u8],
        vnet: VnetHdr,
        dst_mac: EthernetAddress,
        registry: &Registry,
    ) {
        let Some(v6) = self.policy.plan.v6 else {
            return;
        };
        let Ok(ip) = Ipv6Packet::new_checked(payload) else {
            return;
        };
        let Ok(repr) = Ipv6Repr::parse(&ip) else {
            return;
        };
        let Some(pkt) = payload.get(..wire::IPV6_HDR_LEN + repr.payload_len) else {
            return;
        };
        let body = ip.payload();
        if repr.next_header == IpProtocol::Icmpv6
            && let Some(target) =
                wire::neighbor_solicit_target(body, repr.src_addr, repr.dst_addr, repr.hop_limit)
        {
            // Answer only for our own addresses; real neighbours answer for themselves.
            if target == v6.gateway6
                || target == wire::ROUTER_LL
                || (self.policy.dns && target == v6.dns6)
            {
                self.send_built(port, |b| {
                    wire::neighbor_advert(b, target, repr.src_addr, GATEWAY_MAC)
                });
            }
            return;
        }
        // SLAAC (RootlessKit --ipv6 leaves tap0 to it), in the one-namespace
        // form: members of named networks have fixed addresses.
        if repr.next_header == IpProtocol::Icmpv6
            && self.net.is_none()
            && wire::is_router_solicit(body, repr.src_addr, repr.dst_addr, repr.hop_limit)
        {
            let to = if repr.src_addr.is_unspecified() {
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
            } else {
                repr.src_addr
            };
            self.router_advert(port, to);
            // From now on the namespace relies on our advertisements:
            // renew them well before the router lifetime runs out.
            self.ra_port = Some(port);
            self.ra_due = Some(self.now.total_micros() + RA_INTERVAL_US);
            return;
        }
        if dst_mac != GATEWAY_MAC {
            return;
        }
        let (src, dst) = (repr.src_addr.into(), repr.dst_addr.into());
        if !self.policy.valid_source(src) {
            return;
        }
        match repr.next_header {
            IpProtocol::Tcp => self.tcp(port, pkt, body, src, dst, vnet, registry),
            IpProtocol::Udp => self.udp(port, pkt, body, src, dst, vnet, registry),
            IpProtocol::Icmpv6 => {
                let Ok(icmp) = Icmpv6Packet::new_checked(body) else {
                    return;
                };
                let Ok(Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                }) = Icmpv6Repr::parse(&repr.src_addr, &repr.dst_addr, &icmp, &wire::verify_caps())
                else {
                    return;
                };
                if repr.dst_addr == v6.gateway6 || repr.dst_addr == v6.dns6 {
                    let reply = Icmpv6Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    };
                    self.send_built(port, |b| {
                        wire::icmpv6(b, repr.dst_addr, repr.src_addr, &reply, wire::HOP_LIMIT)
                    });
                } else {
                    let req = EchoRequest {
                        src,
                        dst,
                        ident,
                        seq: seq_no,
                        data,
                    };
                    let (mut ctx, nat, _) = self.split(registry);
                    nat.ping(port, req, &mut ctx);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        port: usize,
        pkt: &[u8],
        body: &[u8],
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        vnet: VnetHdr,
        registry: &Registry,
    ) {
        let Ok(tcp) = TcpPacket::new_checked(body) else {
            return;
        };
        if !vnet.partial_csum()
            && !tcp.verify_checksum(&IpAddress::from(src), &IpAddress::from(dst))
        {
            return;
        }
        if tcp.src_port() == 0 || tcp.dst_port() == 0 {
            return;
        }
        let key = FlowKey {
            src: (src, tcp.src_port()).into(),
            dst: (dst, tcp.dst_port()).into(),
        };
        let syn_only = tcp.syn() && !tcp.ack() && !tcp.rst() && !tcp.fin();
        let rst = tcp.rst();
        if syn_only && self.dns.is_some() && self.policy.outbound(key.dst) == Decision::DnsStub {
            let (mut ctx, nat, _) = self.split(registry);
            if let Some(stream) = nat.open_local_tcp(port, pkt, key, &mut ctx)
                && let Some(stub) = self.dns.as_mut()
            {
                let now_us = self.now.total_micros();
                let mut io = dns_io(registry, now_us);
                stub.tcp_connection_from(stream, key.dst, &mut io);
            }
            return;
        }
        let (mut ctx, nat, _) = self.split(registry);
        nat.tcp_segment(port, pkt, key, syn_only, rst, &mut ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn udp(
        &mut self,
        port: usize,
        pkt: &[u8],
        body: &[u8],
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        vnet: VnetHdr,
        registry: &Registry,
    ) {
        let Ok(udp) = UdpPacket::new_checked(body) else {
            return;
        };
        if !vnet.partial_csum() {
            let zero_ok = src.is_ipv4() && udp.checksum() == 0;
            if !zero_ok && !udp.verify_checksum(&IpAddress::from(src), &IpAddress::from(dst)) {
                return;
            }
        }
        if udp.src_port() == 0 || udp.dst_port() == 0 {
            return;
        }
        let key = FlowKey {
            src: (src, udp.src_port()).into(),
            dst: (dst, udp.dst_port()).into(),
        };
        // Answers to published-port clients go back out the listener.
        if self
            .fwd
            .udp_reply(&key, udp.payload(), self.now.total_micros())
        {
            return;
        }
        if self.dns.is_some() && self.policy.outbound(key.dst) == Decision::DnsStub {
            let now_us = self.now.total_micros();
            let mut io = dns_io(registry, now_us);
            let answer = self
                .dns
                .as_mut()
                .and_then(|stub| stub.udp_query(key.src, key.dst, udp.payload(), &mut io));
            if let Some(bytes) = answer {
                self.dns_reply(Some(port), key.src, key.dst, &bytes);
            }
            return;
        }
        let (mut ctx, nat, _) = self.split(registry);
        nat.udp_datagram(port, pkt, key, udp.payload(), &mut ctx);
    }

    /// A UDP answer of the stub from `server` to `client` (on `port`, else
    /// the port that has `client`'s address).
    fn dns_reply(
        &mut self,
        port: Option<usize>,
        client: SocketAddr,
        server: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(port) = port
            .or_else(|| self.ports_by_ip.get(&client.ip()).copied())
            .or(self.default_port)
        else {
            return;
        };
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        let v6 = client.is_ipv6();
        let off = wire::udp_payload_offset(v6);
        if bytes.len() > wire::max_udp_payload(v6) {
            return;
        }
        let Some(room) = out.ip_buf().get_mut(off..off + bytes.len()) else {
            return;
        };
        room.copy_from_slice(bytes);
        if let Some(len) = wire::udp_headers(out.ip_buf(), server, client, bytes.len()) {
            out.send_ip(len);
        }
    }

    fn dns_event(&mut self, idx: usize, readable: bool, writable: bool, registry: &Registry) {
        let now_us = self.now.total_micros();
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        let replies = stub.event(idx, readable, writable, &mut dns_io(registry, now_us));
        for r in replies {
            self.dns_reply(None, r.client, r.server, &r.bytes);
        }
    }

    fn dns_timers(&mut self, registry: &Registry) {
        let now_us = self.now.total_micros();
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        if stub.next_deadline().is_none_or(|t| t > now_us) {
            return;
        }
        for r in stub.run_timers(&mut dns_io(registry, now_us)) {
            self.dns_reply(None, r.client, r.server, &r.bytes);
        }
    }

    fn router_advert(&mut self, port: usize, to: Ipv6Addr) {
        let Some(v6) = self.policy.plan.v6 else {
            return;
        };
        let mtu = self.mtu;
        self.send_built(port, |b| {
            wire::router_advert(b, to, GATEWAY_MAC, v6.prefix, mtu, RA_ROUTER_LIFETIME_S)
        });
    }

    /// The periodic unsolicited advertisement, once SLAAC is in use.
    fn ra_timer(&mut self) {
        let now = self.now.total_micros();
        if let (Some(due), Some(port)) = (self.ra_due, self.ra_port)
            && due <= now
        {
            self.router_advert(port, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
            self.ra_due = Some(now + RA_INTERVAL_US);
        }
    }

    /// The member's names, answered to this network's members.
    fn publish_names(&mut self, m: &Member, add: bool) {
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        let records = stub.records_mut();
        for name in m.names() {
            if add {
                for ip in std::iter::once(IpAddr::V4(m.ip4)).chain(m.ip6.map(IpAddr::V6)) {
                    if let Err(e) = records.insert(Some(NET_SCOPE), name, ip) {
                        log::warn!("DNS: cannot add {name}: {e}");
                    }
                }
            } else {
                records.remove(Some(NET_SCOPE), name);
            }
        }
    }
}

/// The stub's view of the loop: its sockets get `Kind::Dns` tokens.
fn dns_io(registry: &Registry, now_us: i64) -> DnsIo<'_> {
    DnsIo {
        registry,
        now_us,
        token: &dns_token,
    }
}

fn dns_token(idx: usize) -> Token {
    token(Kind::Dns, idx)
}
