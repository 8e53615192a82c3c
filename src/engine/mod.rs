//! The data plane: one thread, one epoll set, no busy polling. It owns the
//! TAP, the smoltcp interface and every flow; it sleeps in `epoll_wait`
//! until a frame, a host socket, a signal or a flow timer needs it.
//!
//! The rooms: this file is the loop (set-up, `run`, one `turn`, signals and
//! TAP reads); [`frame`] takes a frame from a namespace apart and hands it to
//! ARP/DHCP/NDP, the flows or the DNS stub; [`switch`] is the L2 switch of a
//! named network; [`control`] carries out API requests (publish, status,
//! attach, detach, shutdown) and [`attach`] the part of attaching and
//! detaching that happens beside the loop (namespace agents, TAPs closing);
//! [`dns`] connects the stub to the ports. The token encoding and the
//! flows' context live in [`crate::event`].

mod attach;
mod control;
mod dns;
mod frame;
mod kernel;
mod switch;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant as StdInstant};

use mio::event::Event;
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
use smoltcp::wire::EthernetAddress;
use thiserror::Error;

use crate::api::server::{ApiEvent, ApiServer};
use crate::dhcp::{DhcpConfig, DhcpServer};
use crate::dns::{DnsConfig, DnsError, DnsStub};
use crate::event::{
    API, CHILD, Ctx, EXIT_FD, Kind, SIGNALS, TARGET, WATCH, WORD, from_token, token,
};
use crate::forward::ports::PastaPorts;
use crate::forward::publish::{ForwardError, Forwarder};
use crate::forward::{Mode, PublishSpec};
use crate::model::ipam::Ipam;
use crate::model::spin::SpinWindow;
use crate::nat::policy::Policy;
use crate::nat::{Nat, Outbound, Ready};
use crate::stack::frames::{Current, Frames};
use crate::stack::{self, GATEWAY_MAC, Link, TapOut};
use crate::sys::ns::{FactoryStart, NsHandles};
use crate::sys::tap::Tap;
use crate::sys::watch::FileWatch;
use crate::wire::FRAME_BUF;
use crate::wire::frag::Reassembler;

use attach::Jobs;
use kernel::KernelPart;
pub use kernel::KernelSetup;
use switch::Switch;

/// Frames read per wake-up before other events get a turn.
const TAP_BATCH: usize = 256;
/// Receive buffers ([`Frames`]). Bulk data comes ~4 frames per wake-up on
/// the test VM; more buffers gave no fewer sends (4, 8, 16 measured alike).
const RX_FRAMES: usize = 4;

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
    /// pasta mode: the `--netns` file was deleted.
    NetnsGone,
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
    /// The bridge for members started under the network's user namespace;
    /// None when the kernel could not give one (they get TAPs instead).
    pub kernel: Option<KernelSetup>,
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
    /// The socket factory, if the caller forked it already (it sets itself
    /// up while the TAP is made; [`crate::forward::publish::factory_options`]).
    pub factory: Option<FactoryStart>,
    /// `net.ipv4.ip_unprivileged_port_start` (0 when rlnet may bind any port).
    pub unprivileged_start: u16,
    /// The API socket, already listening.
    pub api: Option<ApiServer>,
    /// The DNS stub's configuration; None with `--disable-dns`.
    pub dns: Option<DnsConfig>,
    /// pasta mode: exit when this file is deleted (`--netns`).
    pub watch: Option<FileWatch>,
    /// pasta mode's link and forwarding; None for slirp4netns's.
    pub pasta: Option<PastaSetup>,
}

/// pasta mode's side of the link (docs/compat.md, "rlnet as pasta").
pub struct PastaSetup {
    /// `-t/-u/-T/-U` and their defaults.
    pub ports: PastaPorts,
    /// rlnet's MAC on the link (`-M`; pasta's 9a:55:9a:55:9a:55).
    pub mac: [u8; 6],
    /// Answer DHCP, neighbour and router solicitations (`--no-dhcp`,
    /// `--no-ndp`, `--no-ra` turn them off).
    pub dhcp: bool,
    pub ndp: bool,
    pub ra: bool,
}

/// What rlnet's side of the link does at L2.
#[derive(Debug, Clone, Copy)]
struct LinkL2 {
    mac: EthernetAddress,
    dhcp: bool,
    ndp: bool,
    ra: bool,
}

/// The TAP is a port's wire.
impl Link for Tap {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Tap::read(self, buf)
    }
    fn write(&self, frame: &[u8]) -> io::Result<usize> {
        Tap::write(self, frame)
    }
    fn name(&self) -> &str {
        Tap::name(self)
    }
}

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
    /// IP fragments from the namespaces, being put back together.
    frag: Reassembler,
    /// SLAAC: the port that solicited a router, and when to advertise again.
    ra_port: Option<usize>,
    ra_due: Option<i64>,
    /// Named network: its members and their switch; None in the
    /// slirp4netns form.
    switch: Option<Switch>,
    /// Named network: its bridge, for members started under its user
    /// namespace.
    kernel: Option<KernelPart>,
    /// Fds to pass with an API client's answer (`network_userns`).
    answer_fds: Vec<(usize, OwnedFd)>,
    /// Attaches waiting for their namespace agent, TAPs being closed.
    jobs: Jobs,
    /// Answers to API clients, for the engine to send.
    answers: Vec<(usize, Vec<u8>)>,
    /// `shutdown` was accepted: the loop ends after the reply.
    shutdown: bool,
    now: Instant,
    mtu: u32,
    /// The frame being processed (shared with the engine's [`Frames`]).
    current: Rc<Current>,
    /// Frames and bytes read from the TAP.
    frames_in: u64,
    bytes_in: u64,
    /// rlnet's MAC and what it answers at L2.
    l2: LinkL2,
}

pub struct Engine {
    poll: Poll,
    /// Receive buffers: frames stay while flows hold payload of them.
    frames: Frames,
    dp: Dp,
    api: Option<ApiServer>,
    start: StdInstant,
    signals: Option<SignalFd>,
    target: Option<OwnedFd>,
    exit_fd: Option<OwnedFd>,
    child: Option<(Pid, OwnedFd)>,
    watch: Option<FileWatch>,
    /// Ports whose TAP has frames to read.
    readable_taps: Vec<usize>,
    /// The exit fd was not open at start: exit at once (slirp4netns POLLNVAL).
    exit_now: bool,
    /// How long to poll before sleeping, and the byte count it judges by.
    spin: SpinWindow,
    moved: u64,
    /// Start-up: the word waited for has come ([`Engine::finish_start`]).
    word: bool,
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

/// Watch the process-level fds of `s`: signals, the target, the command
/// and the exit fd. True when the exit fd says to exit at once.
fn watch_process(registry: &Registry, s: &Setup) -> Result<bool, EngineError> {
    let watched = [
        (
            s.signals.as_ref().map(AsRawFd::as_raw_fd),
            SIGNALS,
            "signals",
        ),
        (
            s.target.as_ref().map(AsRawFd::as_raw_fd),
            TARGET,
            "the target process",
        ),
        (
            s.child.as_ref().map(|(_, fd)| fd.as_raw_fd()),
            CHILD,
            "the command",
        ),
        (
            s.watch.as_ref().map(AsRawFd::as_raw_fd),
            WATCH,
            "the --netns file",
        ),
    ];
    for (fd, token, what) in watched {
        if let Some(fd) = fd {
            register(registry, fd, token, Interest::READABLE, what)?;
        }
    }
    let Some(exit_fd) = &s.exit_fd else {
        return Ok(false);
    };
    let Some(fd) = exit_fd.as_ref().map(AsRawFd::as_raw_fd) else {
        return Ok(true);
    };
    match registry.register(&mut SourceFd(&fd), EXIT_FD, Interest::READABLE) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(true),
        // A regular file never hangs up: nothing to watch.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            log::warn!("exit fd {fd} cannot be watched (not a pipe or socket); ignoring it");
            Ok(false)
        }
        Err(err) => Err(EngineError::Register {
            what: "the exit fd",
            err,
        }),
    }
}

/// The DNS stub, answering the named network's names if there is one.
fn dns_stub(
    config: Option<DnsConfig>,
    policy: &Policy,
    named: bool,
) -> Result<Option<DnsStub>, EngineError> {
    let mut dns = config.map(DnsStub::new).transpose()?;
    if let Some(stub) = dns.as_mut() {
        // --internal: nothing leaves, not even queries.
        stub.set_forwarding(!policy.internal);
        if named {
            dns::serve_network_names(stub, &policy.plan);
        }
    }
    Ok(dns)
}

impl Dp {
    /// The packet state for `s`, with the slirp4netns form's one port (the
    /// TAP) if there is one.
    fn new(s: &mut Setup, registry: &Registry) -> Result<Dp, EngineError> {
        let now = Instant::from_micros(0);
        let caps = stack::capabilities();
        let iface = stack::interface(&s.policy.plan, &caps, now);
        let dhcp = DhcpServer::new(DhcpConfig {
            plan: s.policy.plan,
            dns: s.policy.dns,
            mtu: s.mtu,
            lease_secs: crate::dhcp::DEFAULT_LEASE_SECS,
        });
        let mut fwd = Forwarder::new(
            s.policy.plan,
            s.unprivileged_start,
            s.publish_mode,
            s.ns.take(),
        );
        fwd.adopt_factory(s.factory.take());
        let dns = dns_stub(s.dns.take(), &s.policy, s.network.is_some())?;
        let kernel = s.network.as_mut().and_then(|n| n.kernel.take());
        let mut dp = Dp {
            outs: Slab::new(),
            ports_by_ip: HashMap::new(),
            default_port: None,
            iface,
            caps,
            policy: s.policy.clone(),
            outbound: s.outbound,
            nat: Nat::new(),
            fwd,
            dhcp,
            dns,
            frag: Reassembler::default(),
            ra_port: None,
            ra_due: None,
            switch: s.network.take().map(Switch::new),
            kernel: None,
            answer_fds: Vec::new(),
            jobs: Jobs::default(),
            answers: Vec::new(),
            shutdown: false,
            now,
            mtu: s.mtu,
            frames_in: 0,
            current: Rc::default(),
            bytes_in: 0,
            l2: match &s.pasta {
                Some(p) => LinkL2 {
                    mac: EthernetAddress(p.mac),
                    dhcp: p.dhcp,
                    ndp: p.ndp,
                    ra: p.ra,
                },
                None => LinkL2 {
                    mac: GATEWAY_MAC,
                    dhcp: true,
                    ndp: true,
                    ra: true,
                },
            },
        };
        if let Some(tap) = s.tap.take() {
            dp.single_port(tap, s.ns_mac.map(EthernetAddress), registry)?;
        }
        if let Some(k) = kernel {
            dp.uplink(k, registry)?;
        }
        Ok(dp)
    }

    /// The slirp4netns form: one namespace gets everything.
    fn single_port(
        &mut self,
        tap: Tap,
        ns_mac: Option<EthernetAddress>,
        registry: &Registry,
    ) -> Result<(), EngineError> {
        let port = self.read_port(tap, ns_mac, registry, "the TAP device")?;
        let plan = &self.policy.plan;
        self.ports_by_ip.insert(IpAddr::V4(plan.guest4), port);
        if let Some(v6) = plan.v6 {
            self.ports_by_ip.insert(IpAddr::V6(v6.guest6), port);
        }
        self.default_port = Some(port);
        Ok(())
    }

    /// A port whose TAP the loop reads, rlnet's side answering as the
    /// gateway.
    fn read_port(
        &mut self,
        tap: Tap,
        ns_mac: Option<EthernetAddress>,
        registry: &Registry,
        what: &'static str,
    ) -> Result<usize, EngineError> {
        let port = self
            .outs
            .insert(TapOut::new(Box::new(tap), ns_mac, self.mtu));
        self.outs[port].gw_mac = self.l2.mac;
        register(
            registry,
            self.outs[port].link().as_raw_fd(),
            token(Kind::Tap, port),
            Interest::READABLE | Interest::WRITABLE,
            what,
        )?;
        Ok(port)
    }

    /// A named network's bridge: its uplink TAP is read like a member's,
    /// and each frame is the frame of the kernel member it comes from.
    fn uplink(&mut self, k: KernelSetup, registry: &Registry) -> Result<(), EngineError> {
        let writer =
            k.uplink
                .try_clone(kernel::MEMBER_LINK)
                .map_err(|err| EngineError::Register {
                    what: "the bridge's uplink TAP",
                    err,
                })?;
        let port = self.read_port(k.uplink, None, registry, "the bridge's uplink TAP")?;
        self.kernel = Some(KernelPart::new(k.ns, port, writer));
        Ok(())
    }

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
                current: &self.current,
            },
            &mut self.nat,
            &mut self.fwd,
        )
    }

    /// Bytes moved since start: frames read and written, bytes spliced.
    fn moved(&self) -> u64 {
        let written: u64 = self.outs.iter().map(|(_, o)| o.stats.bytes).sum();
        self.bytes_in + written + self.fwd.spliced_bytes()
    }

    /// Earliest deadline of anything the loop must wake for.
    fn next_deadline(&self) -> Option<i64> {
        [
            self.nat.next_deadline(),
            self.fwd.next_deadline(),
            self.dns.as_ref().and_then(DnsStub::next_deadline),
            self.frag.next_deadline(),
            self.ra_due,
            self.jobs.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Engine {
    pub fn new(mut s: Setup) -> Result<Engine, EngineError> {
        let poll = Poll::new().map_err(EngineError::Poll)?;
        let start = StdInstant::now();
        let registry = poll.registry();
        let exit_now = watch_process(registry, &s)?;
        let mut api = s.api.take();
        if let Some(a) = api.as_mut() {
            a.register(registry, API)
                .map_err(|err| EngineError::Register {
                    what: "the API socket",
                    err,
                })?;
        }
        let mut dp = Dp::new(&mut s, registry)?;
        let frames = Frames::new(RX_FRAMES, FRAME_BUF);
        dp.current = Rc::clone(frames.current());
        let mut engine = Engine {
            poll,
            frames,
            readable_taps: dp.default_port.into_iter().collect(),
            dp,
            api,
            start,
            signals: s.signals,
            target: s.target,
            exit_fd: s.exit_fd.flatten(),
            child: s.child,
            watch: s.watch,
            exit_now,
            spin: SpinWindow::default(),
            moved: 0,
            word: false,
        };
        let (ctx, _, fwd) = engine.dp.split(engine.poll.registry());
        if !s.publish.is_empty() {
            fwd.publish(&s.publish, s.publish_mode, None, &ctx)?;
        }
        if let Some(p) = s.pasta {
            fwd.start_pasta(p.ports, &ctx)?;
        }
        Ok(engine)
    }

    /// The namespace's TAP, when it came after [`Engine::new`] (which then
    /// had none): start-up builds the engine while the agent makes it.
    pub fn attach_tap(&mut self, tap: Tap, ns_mac: Option<[u8; 6]>) -> Result<(), EngineError> {
        let registry = self.poll.registry();
        self.dp
            .single_port(tap, ns_mac.map(EthernetAddress), registry)?;
        self.readable_taps.extend(self.dp.default_port);
        Ok(())
    }

    /// Wait for the socket factory forked during start-up (its word:
    /// running, or why not). Called after rlnet confined itself, so the
    /// factory's own start and confinement overlap rlnet's instead of
    /// delaying it; waiting needs nothing confinement takes away. The
    /// namespace is served meanwhile: a client that sends before anyone
    /// heard the network is ready (one waiting for it, polling) is
    /// answered while the factory sets itself up; what needs the factory
    /// (a published port's connection) waits for its word. Some(exit) if
    /// the loop ended meanwhile (a signal, the target gone).
    pub fn finish_start(&mut self) -> Result<Option<Exit>, EngineError> {
        if let Some(fd) = self.dp.fwd.factory_word_fd()
            && let Some(exit) = self.serve_until_word(fd)?
        {
            return Ok(Some(exit));
        }
        self.dp.fwd.start_factory()?;
        Ok(None)
    }

    /// Turn the loop until `fd` (the pending factory's channel) is
    /// readable or the factory was started by what the loop served.
    fn serve_until_word(&mut self, fd: RawFd) -> Result<Option<Exit>, EngineError> {
        register(
            self.poll.registry(),
            fd,
            WORD,
            Interest::READABLE,
            "factory",
        )?;
        self.word = false;
        let mut events = Events::with_capacity(256);
        let out = loop {
            if self.word || self.dp.fwd.factory_word_fd() != Some(fd) {
                break Ok(None);
            }
            match self.turn(&mut events, None) {
                Ok(None) => {}
                other => break other,
            }
        };
        // Still open (it is the factory's channel from now on): not ours to
        // watch any more.
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        out
    }

    /// The socket factory's process, if one runs.
    pub fn factory_pid(&self) -> Option<u32> {
        self.dp.fwd.factory_pid()
    }

    fn now(&self) -> Instant {
        Instant::from_micros(i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX))
    }

    /// Run until a signal, the target's exit or the exit fd ends it.
    pub fn run(&mut self) -> Result<Exit, EngineError> {
        self.run_then(Duration::ZERO, || {})
    }

    /// [`run`](Self::run), and `job` once, `after` into it: work kept off
    /// the path of the first requests that follow the ready word.
    pub fn run_then(&mut self, after: Duration, job: impl FnOnce()) -> Result<Exit, EngineError> {
        if self.exit_now {
            return Ok(Exit::ExitFd);
        }
        let at = StdInstant::now() + after;
        let mut job = Some(job);
        let mut events = Events::with_capacity(256);
        loop {
            let left = at.saturating_duration_since(StdInstant::now());
            if left.is_zero()
                && let Some(job) = job.take()
            {
                job();
            }
            let max_wait = job.is_some().then_some(left);
            if let Some(exit) = self.turn(&mut events, max_wait)? {
                return Ok(exit);
            }
        }
    }

    /// One round of the loop: wait (at most `max_wait`, or until the next
    /// timer), handle what arrived, fire due timers.
    pub fn turn(
        &mut self,
        events: &mut Events,
        max_wait: Option<Duration>,
    ) -> Result<Option<Exit>, EngineError> {
        let timeout = self.timeout(max_wait);
        let idle_from = StdInstant::now();
        let caught = match self.wait(events, timeout) {
            Ok(caught) => caught,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(EngineError::Poll(e)),
        };
        self.spin.after_wait(timeout, idle_from.elapsed(), caught);
        self.dp.now = self.now();
        for ev in events.iter() {
            if let Some(exit) = self.dispatch(ev) {
                return Ok(Some(exit));
            }
        }
        if !self.readable_taps.is_empty() {
            self.read_taps();
        }
        self.run_timers();
        let moved = self.dp.moved();
        // Saturating: a port that goes takes its count with it.
        self.spin.after_turn(moved.saturating_sub(self.moved));
        self.moved = moved;
        Ok(None)
    }

    /// Wait for events: poll for the spin window's budget first (see
    /// [`SpinWindow`]), then sleep for what is left of `timeout`. True if
    /// polling caught them.
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        let spin = self.spin.budget(timeout);
        if spin.is_zero() {
            return self.poll.poll(events, timeout).map(|()| false);
        }
        let until = StdInstant::now() + spin;
        loop {
            self.poll.poll(events, Some(Duration::ZERO))?;
            if !events.is_empty() {
                return Ok(true);
            }
            if StdInstant::now() >= until {
                break;
            }
            // Whatever else is runnable on this CPU (often the peer being
            // waited for) goes first.
            std::thread::yield_now();
        }
        self.poll
            .poll(events, timeout.map(|t| t.saturating_sub(spin)))
            .map(|()| false)
    }

    /// How long the next wait may last: not at all with work left over,
    /// else until the next deadline (capped by `max_wait`).
    fn timeout(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let timeout = if !self.readable_taps.is_empty()
            || self.dp.nat.has_backlog()
            || self.dp.fwd.has_backlog()
            || self.api.as_ref().is_some_and(ApiServer::has_backlog)
        {
            Some(Duration::ZERO)
        } else {
            let api_deadline = self.api.as_ref().and_then(|a| a.next_deadline());
            let next = self
                .dp
                .next_deadline()
                .into_iter()
                .chain(api_deadline)
                .min();
            next.map(|t| {
                let now = self.now().total_micros();
                Duration::from_micros(u64::try_from(t.saturating_sub(now)).unwrap_or(0))
            })
        };
        match max_wait {
            Some(max) => Some(timeout.map_or(max, |t| t.min(max))),
            None => timeout,
        }
    }

    /// One event; Some when it ends the loop.
    fn dispatch(&mut self, ev: &Event) -> Option<Exit> {
        match ev.token() {
            SIGNALS => self.read_signals(),
            TARGET => Some(Exit::TargetGone),
            WORD => {
                self.word = true;
                None
            }
            WATCH => self
                .watch
                .as_ref()
                .is_some_and(FileWatch::gone)
                .then_some(Exit::NetnsGone),
            CHILD => self.reap_child().map(Exit::Child),
            API => {
                if let Some(api) = self.api.as_mut() {
                    let now = self.dp.now.total_micros();
                    api.accept(self.poll.registry(), |i| token(Kind::ApiClient, i), now);
                }
                None
            }
            // Only a hang-up or error ends us; data written into the pipe
            // does not (slirp4netns polls POLLHUP only).
            EXIT_FD => (ev.is_read_closed() || ev.is_error() || ev.is_write_closed())
                .then_some(Exit::ExitFd),
            t => self.indexed(t, ev),
        }
    }

    /// An event of something the engine holds many of (TAPs, flows,
    /// clients, helper processes).
    fn indexed(&mut self, t: Token, ev: &Event) -> Option<Exit> {
        let registry = self.poll.registry();
        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
        let writable = ev.is_writable() || ev.is_error();
        let (mut ctx, nat, fwd) = self.dp.split(registry);
        match from_token(t)? {
            (Kind::Tap, port) => {
                if ev.is_readable() && !self.readable_taps.contains(&port) {
                    self.readable_taps.push(port);
                }
                if ev.is_writable() && ctx.out(port).is_some_and(|o| o.flush()) {
                    nat.tap_drained(&mut ctx);
                }
            }
            (Kind::Tcp | Kind::Udp | Kind::Icmp, _) => {
                let ready = Ready {
                    readable,
                    writable,
                    hup: ev.is_read_closed() || ev.is_error(),
                };
                nat.host_event(t, ready, &mut ctx)
            }
            (Kind::ApiClient, idx) => {
                self.api_event(idx);
                if self.dp.shutdown {
                    return Some(Exit::Shutdown);
                }
            }
            (Kind::Member, port) => self.dp.detach(port, registry),
            (Kind::Job, idx) => {
                self.dp.job_done(idx, registry);
                self.send_answers();
            }
            (Kind::Dns, idx) => self.dp.dns_event(idx, readable, writable, registry),
            (kind, idx) => {
                let closed = ev.is_read_closed() || ev.is_error();
                fwd.event(kind, idx, (readable, writable, closed), nat, &mut ctx)
            }
        }
        None
    }

    /// Fire what is due: flows' timers, the DNS stub's, incomplete
    /// datagrams, router advertisements, slow API clients, late agents.
    fn run_timers(&mut self) {
        let registry = self.poll.registry();
        let (mut ctx, nat, fwd) = self.dp.split(registry);
        nat.run_backlog(&mut ctx);
        fwd.run_backlog(nat, &mut ctx);
        nat.run_timers(&mut ctx);
        fwd.run_timers(&ctx);
        self.dp.dns_timers(registry);
        self.dp.frag.expire(self.dp.now.total_micros());
        self.dp.ra_timer();
        self.dp.attach_timers();
        self.send_answers();
        if let Some(api) = self.api.as_mut() {
            let now = self.dp.now.total_micros();
            api.expire(now, self.poll.registry());
            if api.has_backlog() {
                api.accept(self.poll.registry(), |i| token(Kind::ApiClient, i), now);
            }
        }
    }

    fn api_event(&mut self, idx: usize) {
        let Some(api) = self.api.as_mut() else { return };
        let registry = self.poll.registry();
        if let ApiEvent::Request(client, req) =
            api.client_event(idx, registry, &self.dp.policy.plan)
        {
            // Held until its answer is ready (at once, mostly).
            api.hold(client);
            self.dp.execute(client, req, registry);
        }
        self.send_answers();
    }

    /// Answer the clients whose requests finished after the fact.
    fn send_answers(&mut self) {
        let answers = std::mem::take(&mut self.dp.answers);
        if let Some(api) = self.api.as_mut() {
            for (client, body) in answers {
                let fd = self
                    .dp
                    .answer_fds
                    .iter()
                    .position(|(c, _)| *c == client)
                    .map(|i| self.dp.answer_fds.swap_remove(i).1);
                api.reply_with(client, body, fd, self.poll.registry());
            }
        }
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
            if !self.frames.has_free() {
                // Flows hold payload of every buffer: they send it now.
                let (mut ctx, nat, _) = self.dp.split(self.poll.registry());
                nat.flush_dirty(&mut ctx);
            }
            let Some(out) = self.dp.outs.get(port) else {
                return false;
            };
            let (i, buf) = self.frames.free_or_new();
            match out.link().read(buf) {
                Ok(n) => {
                    self.dp.frames_in += 1;
                    self.dp.bytes_in += n as u64;
                    let registry = self.poll.registry();
                    let dp = &mut self.dp;
                    self.frames
                        .process(i, n, |frame| dp.frame(port, frame, registry));
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
            let signo = info.ssi_signo.cast_signed();
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

    /// Bytes of buffer storage the TCP flows hold (tests).
    pub fn tcp_buffer_bytes(&mut self) -> usize {
        self.dp.nat.tcp_buffer_bytes()
    }

    /// Write calls on host sockets for the open TCP flows' payload (tests).
    pub fn tcp_host_writes(&self) -> u64 {
        self.dp.nat.tcp_host_writes()
    }

    pub fn exit_fd(&self) -> Option<RawFd> {
        self.exit_fd.as_ref().map(AsRawFd::as_raw_fd)
    }

    pub fn target(&self) -> Option<&OwnedFd> {
        self.target.as_ref()
    }
}
