//! rlnet as pasta, start to finish (docs/compat.md, "rlnet as pasta"):
//!
//! 1. read the host's interfaces over rtnetlink, in rlnet's own namespace,
//!    and resolve pasta's address plan (`config/pasta.rs`);
//! 2. unless `-f` or the command form: fork. The parent waits for the
//!    daemon's word on a pipe and exits 0 once the namespace works (1, with
//!    the daemon's error, otherwise); the daemon starts a session of its
//!    own and keeps no descriptor of the caller's (Podman waits for EOF on
//!    the pipe it gave);
//! 3. the daemon joins (or creates) the namespace, makes or attaches the TAP
//!    and with `--config-net` copies the host's addresses and routes onto
//!    it, starts the engine with pasta's forwarding, the splice socket
//!    factory (confined) and the `--netns` file watch;
//! 4. writes the PID file, points stdio at /dev/null (or `-l`), confines
//!    itself (sandbox, seccomp), tells the parent;
//! 5. serves until the `--netns` file is deleted, the PID's process or the
//!    command ends, or SIGTERM/SIGINT.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use thiserror::Error;

use super::{SetupError, TapInfo, confine, confinement, dns_config, policy, resolve_outbound};
use crate::config::pasta::{self as cp, PastaOptions, PastaPlan, PastaTarget, TemplateError};
use crate::config::{Config, Configure, Target};
use crate::engine::{Engine, PastaSetup, Setup};
use crate::forward::ports::{PastaPorts, ephemeral_range};
use crate::forward::publish;
use crate::forward::spec::Mode;
use crate::nat;
use crate::sys::netlink::{self, CopySetup, NetlinkError};
use crate::sys::ns::{self, FactoryOptions, FactoryStart, NsError, NsHandles};
use crate::sys::os::{self, DaemonStdio};
use crate::sys::tap::Tap;
use crate::sys::watch::{FileWatch, WatchError};

/// pasta's MAC for its side of the link (locally administered).
pub const PASTA_MAC: [u8; 6] = [0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55];

#[derive(Debug, Error)]
pub enum PastaSetupError {
    #[error("cannot read the host's interfaces: {0}")]
    HostNet(NetlinkError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot open the PID file {path}: {err}")]
    PidFile { path: String, err: std::io::Error },
    #[error("cannot open the log file (or /dev/null): {0}")]
    Stdio(std::io::Error),
    #[error("cannot fork into the background: {0}")]
    Fork(nix::Error),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("the network namespace file {0} was deleted while rlnet started")]
    NetnsGone(String),
    #[error(
        "cannot open the network namespace {path}: {err}; give a namespace file (like \
         /run/netns/NAME, or /proc/PID/ns/net) or a name in /run/netns"
    )]
    Netns { path: String, err: nix::Error },
    #[error("cannot open the user namespace {path} given with --userns: {err}")]
    Userns { path: String, err: nix::Error },
    /// The daemon's own error, as it reported it.
    #[error("{0}")]
    Daemon(String),
    /// The steps rlnet as pasta shares with a plain run.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("the background rlnet ended before it was ready")]
    DaemonDied,
}

/// The errors of the steps shared with a plain run come through its
/// [`SetupError`].
macro_rules! through_setup {
    ($($t:ty),*) => {$(
        impl From<$t> for PastaSetupError {
            fn from(e: $t) -> Self {
                PastaSetupError::Setup(SetupError::from(e))
            }
        }
    )*};
}
through_setup!(
    NsError,
    crate::engine::EngineError,
    crate::config::ConfigError,
    crate::sys::sandbox::SandboxError,
    crate::sys::seccomp::SeccompError
);

/// Run as pasta; returns the exit code.
pub fn run(opts: PastaOptions) -> Result<i32, PastaSetupError> {
    let plan = discover(&opts)?;
    let command_form = matches!(opts.target, PastaTarget::Command(_));
    if opts.foreground || command_form {
        return serve(&opts, &plan, &mut None);
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(PastaSetupError::Fork)?;
    match os::fork().map_err(PastaSetupError::Fork)? {
        Some(_daemon) => {
            drop(w);
            await_daemon(r)
        }
        None => {
            drop(r);
            os::new_session();
            let mut report = Some(Report(w));
            match serve(&opts, &plan, &mut report) {
                Ok(code) => Ok(code),
                Err(e) => match report {
                    // The caller hears it from the parent.
                    Some(r) => {
                        r.failed(&e.to_string());
                        Ok(1)
                    }
                    // Ready was said: the caller is gone, the log has it.
                    None => Err(e),
                },
            }
        }
    }
}

/// The host's template interfaces and the plan they give.
fn discover(o: &PastaOptions) -> Result<PastaPlan, PastaSetupError> {
    let host = host_net(netlink::host_net().map_err(PastaSetupError::HostNet)?);
    fn named<'a>(
        i: &'a Option<String>,
        own: &'a Option<String>,
        opt: &'static str,
    ) -> Option<(&'a str, &'static str)> {
        i.as_deref()
            .map(|i| (i, "-i"))
            .or(own.as_deref().map(|i| (i, opt)))
    }
    let t4 = match o.ipv4 {
        true => host.template(
            false,
            named(&o.interface, &o.outbound_if4, "--outbound-if4"),
        )?,
        false => None,
    };
    let t6 = match o.ipv6 {
        true => host.template(true, named(&o.interface, &o.outbound_if6, "--outbound-if6"))?,
        false => None,
    };
    let plan = cp::resolve(o, t4.as_ref(), t6.as_ref());
    log::debug!("template: IPv4 {t4:?}, IPv6 {t6:?}; plan {plan:?}");
    Ok(plan)
}

/// rtnetlink's view of the host as pasta's template selection takes it.
fn host_net(d: netlink::HostDump) -> cp::HostNet {
    cp::HostNet {
        links: d.links,
        addrs: d
            .addrs
            .into_iter()
            .map(|a| cp::HostAddr {
                index: a.index,
                addr: a.addr,
                prefix: a.prefix,
            })
            .collect(),
        routes: d
            .routes
            .into_iter()
            .map(|r| cp::HostRoute {
                dst: r.dst,
                prefix: r.prefix,
                gateway: r.gateway,
                oif: r.oif,
                metric: r.metric,
                kernel: r.kernel,
            })
            .collect(),
    }
}

/// The daemon's word to the parent, which waits in the caller's process.
struct Report(OwnedFd);

impl Report {
    /// Ready: the parent exits 0; the pipe closes here.
    fn ready(self) {
        let _ = nix::unistd::write(&self.0, &[0]);
    }

    fn failed(self, text: &str) {
        let mut msg = vec![1u8];
        msg.extend_from_slice(text.as_bytes());
        let _ = nix::unistd::write(&self.0, &msg);
    }
}

/// The parent: the daemon's word, or EOF if it died first. (The daemon
/// closes the pipe after its word; its children never had it.)
fn await_daemon(r: OwnedFd) -> Result<i32, PastaSetupError> {
    let mut f = std::fs::File::from(r);
    let mut buf = Vec::new();
    let _ = std::io::Read::read_to_end(&mut f, &mut buf);
    match buf.split_first() {
        Some((0, _)) => Ok(0),
        Some((_, text)) => Err(PastaSetupError::Daemon(
            String::from_utf8_lossy(text).into_owned(),
        )),
        None => Err(PastaSetupError::DaemonDied),
    }
}

/// The user's shell for the command form without COMMAND.
fn shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".to_string())
}

/// rlnet's configuration for the plan. pasta confines itself by default:
/// so does rlnet as pasta (sandbox and seccomp).
fn config(o: &PastaOptions, plan: &PastaPlan) -> Config {
    let target = match &o.target {
        PastaTarget::Pid(pid) => Target::Pid(*pid),
        PastaTarget::Netns(netns) => Target::Path {
            netns: netns.clone(),
            userns: o.userns.clone().filter(|_| !o.netns_only),
        },
        PastaTarget::Command(argv) if argv.is_empty() => Target::Run {
            argv: vec![shell()],
        },
        PastaTarget::Command(argv) => Target::Run { argv: argv.clone() },
    };
    let mut c = Config::new(target);
    c.tap_name = plan.ifname.clone();
    // The agent configures (or not) as pasta does; see `pasta_tap`.
    c.configure = Configure::Never;
    c.mtu = plan.link_mtu;
    c.plan = plan.plan;
    c.host_loopback = false;
    c.dns = plan.plan.dns(false).is_some() || plan.plan.dns(true).is_some();
    c.outbound4 = plan.outbound4.clone();
    c.outbound6 = plan.outbound6.clone();
    c.enable_sandbox = true;
    c.enable_seccomp = true;
    c.publish_mode = Mode::Stack;
    c.dns_upstream = plan
        .dns_upstream
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, 53))
        .collect();
    c
}

/// The namespace to serve, and in the command form its command (started,
/// waiting). pasta keeps the host's resolv.conf for the command.
fn open_target(
    o: &PastaOptions,
    cfg: &Config,
) -> Result<(NsHandles, Option<ns::RunChild>), PastaSetupError> {
    // pasta's words for the namespace files it was given (ns.rs speaks
    // slirp4netns's).
    let pasta_words = |e: NsError| -> PastaSetupError {
        match e {
            NsError::NetnsPath { path, err } => PastaSetupError::Netns { path, err },
            NsError::UsernsPath { path, err } => PastaSetupError::Userns { path, err },
            other => other.into(),
        }
    };
    open_target_ns(o, cfg).map_err(pasta_words)
}

fn open_target_ns(
    o: &PastaOptions,
    cfg: &Config,
) -> Result<(NsHandles, Option<ns::RunChild>), NsError> {
    Ok(match (&o.target, &cfg.target) {
        (PastaTarget::Pid(pid), _) => {
            let mut h = ns::open_pid(*pid)?;
            if o.netns_only {
                h.user = None;
            } else if let Some(userns) = &o.userns {
                let net = format!("/proc/{pid}/ns/net");
                h.user = ns::open_path(Path::new(&net), Some(userns))?.user;
            }
            (h, None)
        }
        (_, Target::Path { netns, userns }) => {
            let mut h = ns::open_path(netns, userns.as_deref())?;
            // /proc/PID/ns/net: procfs tells no deletion; the PID's exit
            // is the end (as with the PID form).
            if let Some(pid) = proc_pid(netns) {
                h.pidfd = Some(os::pidfd_open(pid).map_err(|e| NsError::Sys {
                    what: "pidfd_open",
                    err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::ESRCH)),
                })?);
            }
            (h, None)
        }
        (_, Target::Run { argv }) => {
            let c = ns::spawn_run(argv, None, None)?;
            (c.handles()?, Some(c))
        }
        (_, Target::Pid(_)) => unreachable!("a PID target comes from the PID form"),
    })
}

/// What the agent does inside the namespace: what pasta does there.
struct PastaTap<'a> {
    name: &'a str,
    ns_mac: Option<[u8; 6]>,
    config_net: bool,
    copy: CopySetup<'a>,
}

/// In the agent: make or attach the TAP, `lo` up (always, as pasta), the
/// MAC if given; with `--config-net`, the copy of the host's interface;
/// then send the TAP (configured first, as in slirp4netns mode: the route
/// exists sooner, while rlnet confines itself).
fn pasta_tap(req: &PastaTap<'_>, early: ns::Early) -> Result<(), String> {
    let text = |e: netlink::NetlinkError| e.to_string();
    let mut nl = netlink::Session::open().map_err(text)?;
    let (tap, existed) = Tap::open_telling(req.name).map_err(|e| e.to_string())?;
    nl.prepare(req.name, req.ns_mac, !existed).map_err(text)?;
    let info = TapInfo {
        existed,
        configured: req.config_net,
        offload: tap.offload(),
        // Its MAC now (set above if given), and its index for the copy.
        mac: nl.link(req.name).ok().flatten().and_then(|l| l.mac),
    };
    if req.config_net {
        nl.configure_copy(&req.copy).map_err(text)?;
    }
    early(tap.into_fd(), info.encode())
}

/// Fork the TAP agent (first: the TAP is on the path to ready).
fn start_tap(
    o: &PastaOptions,
    plan: &PastaPlan,
    handles: &NsHandles,
    factory: FactoryOptions,
) -> Result<(ns::EarlyStart, FactoryStart), NsError> {
    let req = PastaTap {
        name: &plan.ifname,
        ns_mac: o.ns_mac,
        config_net: o.config_net,
        copy: CopySetup {
            ifname: &plan.ifname,
            mtu: plan.mtu,
            mac: None,
            addrs: &plan.addrs,
            routes: &plan.routes,
            ipv6: plan.plan.v6.is_some(),
        },
    };
    ns::spawn_in_early_with_factory(handles, |early| pasta_tap(&req, early), factory)
}

/// The `--netns` file's watch: exit when it is deleted (not with
/// `--no-netns-quit`; the PID form and the command form end with their
/// process instead).
fn netns_watch(o: &PastaOptions) -> Result<Option<FileWatch>, PastaSetupError> {
    let path = match &o.target {
        PastaTarget::Netns(path) if o.netns_quit && proc_pid(path).is_none() => path,
        _ => return Ok(None),
    };
    let w = FileWatch::new(path)?;
    if w.gone() {
        return Err(PastaSetupError::NetnsGone(path.display().to_string()));
    }
    Ok(Some(w))
}

/// The PID of a `/proc/PID/ns/...` path.
fn proc_pid(path: &Path) -> Option<i32> {
    let rest = path.strip_prefix("/proc").ok()?;
    let mut parts = rest.components();
    let pid = parts.next()?.as_os_str().to_str()?.parse().ok()?;
    let ns_dir = parts.next()?.as_os_str() == "ns";
    (ns_dir && parts.next().is_some()).then_some(pid)
}

/// The PID file, opened (and truncated) while its path still resolves.
fn open_pid_file(path: &Path) -> Result<std::fs::File, PastaSetupError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|err| PastaSetupError::PidFile {
            path: path.display().to_string(),
            err,
        })
}

/// The files the running daemon needs, opened while paths still resolve
/// (before the sandbox): the PID file, /dev/null and the log file.
struct Files {
    pid: Option<std::fs::File>,
    stdio: DaemonStdio,
}

impl Files {
    fn open(o: &PastaOptions) -> Result<Files, PastaSetupError> {
        Ok(Files {
            pid: o.pid_file.as_deref().map(open_pid_file).transpose()?,
            stdio: DaemonStdio::open(o.log_file.as_deref()).map_err(PastaSetupError::Stdio)?,
        })
    }

    /// The PID file gets the daemon's PID (before the parent exits, as
    /// pasta's); stdio leaves the caller's descriptors (a daemon) or just
    /// goes to the log file (in the foreground).
    fn finish(self, daemon: bool) {
        if let Some(mut f) = self.pid {
            let _ = writeln!(f, "{}", std::process::id());
        }
        if daemon {
            self.stdio.apply();
        } else {
            self.stdio.apply_log();
        }
    }
}

/// pasta's side of the link for the engine.
fn pasta_setup(o: &PastaOptions) -> PastaSetup {
    let ephemeral = ephemeral_range(
        &std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default(),
    );
    PastaSetup {
        ports: PastaPorts {
            tcp: o.tcp.clone(),
            udp: o.udp.clone(),
            tcp_ns: o.tcp_ns.clone(),
            udp_ns: o.udp_ns.clone(),
            ephemeral,
            splice: o.splice,
            ns_lo: o.ns_lo,
        },
        mac: o.our_mac.unwrap_or(PASTA_MAC),
        dhcp: !o.no_dhcp,
        ndp: !o.no_ndp,
        // With --config-net the namespace is configured: pasta sends no
        // router advertisements then.
        ra: !(o.no_ra || o.config_net),
    }
}

/// The namespace, its TAP and the engine, with the socket factory started
/// (it serves splice, -T/-U and `auto`; once confined, rlnet can no longer
/// enter the namespace to start it). Returns what confinement needs and
/// the command of the command form ([`Started`]).
fn start(o: &PastaOptions, plan: &PastaPlan, cfg: &Config) -> Result<Started, PastaSetupError> {
    let outbound = nat::Outbound {
        v4: resolve_outbound(&cfg.outbound4, false)?,
        v6: resolve_outbound(&cfg.outbound6, true)?,
    };
    let signals = os::signal_fd().map_err(SetupError::Signals)?;
    let (mut handles, mut child) = open_target(o, cfg)?;
    let watch = netns_watch(o)?;
    // The TAP agent first (the TAP is on the path to ready); it stays on
    // as the socket factory once the link is configured.
    let pasta = pasta_setup(o);
    let options = publish::factory_options(&cfg.plan, pasta.ports.scans_ns());
    let (tap_start, factory) = start_tap(o, plan, &handles, options)?;
    let confinement = confinement(cfg, &handles, child.as_ref(), None)?;
    let child_parts = match child.as_mut() {
        Some(c) => c.take_pidfd().map(|fd| (c.pid, fd)),
        None => None,
    };
    // Built while the agent makes the TAP (on another CPU), which comes
    // after.
    let engine = Engine::new(Setup {
        tap: None,
        network: None,
        ns_mac: None,
        mtu: cfg.mtu,
        policy: policy(cfg),
        outbound,
        signals: Some(signals),
        target: handles.pidfd.take(),
        exit_fd: None,
        child: child_parts,
        publish: Vec::new(),
        publish_mode: cfg.publish_mode,
        ns: Some(NsHandles {
            user: handles.user,
            net: handles.net,
            pidfd: None,
        }),
        factory: Some(factory),
        unprivileged_start: publish::unprivileged_port_start(),
        api: None,
        dns: dns_config(cfg),
        watch,
        pasta: Some(pasta),
    })?;
    Ok(Started {
        engine,
        confinement,
        child,
        tap_start,
    })
}

/// What [`start`] set up: the engine, what confinement needs, the command
/// of the command form, and the TAP agent still making the TAP.
struct Started {
    engine: Engine,
    confinement: super::Confinement,
    child: Option<ns::RunChild>,
    tap_start: ns::EarlyStart,
}

/// Everything from the namespace to a running loop; `report` tells a
/// waiting parent (None in the foreground).
fn serve(
    o: &PastaOptions,
    plan: &PastaPlan,
    report: &mut Option<Report>,
) -> Result<i32, PastaSetupError> {
    let cfg = config(o, plan);
    cfg.validate()?;
    // Nothing of the caller's but stdio (and our report pipe) stays open.
    os::close_all_except(&[report.as_ref().map_or(-1, |r| r.0.as_raw_fd())]);
    let files = Files::open(o)?;
    os::raise_nofile_limit();
    os::tune_allocator();
    let Started {
        mut engine,
        confinement,
        mut child,
        tap_start,
    } = start(o, plan, &cfg)?;
    files.finish(report.is_some());
    // Confined while the agent makes the TAP: what follows only takes it
    // and talks to the agent and the factory over their sockets.
    let smaps = os::own_smaps();
    confine(&cfg, confinement)?;
    let (tap, info, tap_agent) = super::open_tap(&plan.ifname, tap_start)?;
    engine.attach_tap(tap, info.mac)?;
    // The agent's outcome before anyone hears it is ready. First: the
    // agent stays on as the factory, which is the factory's to reap after.
    tap_agent.finish()?;
    if let Some(exit) = engine.finish_start()? {
        return Ok(super::exit_code(exit));
    }
    if let Some(c) = child.as_mut() {
        c.go()?;
    }
    if let Some(r) = report.take() {
        r.ready();
    }
    super::serve(engine, smaps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_name_their_process() {
        assert_eq!(proc_pid(Path::new("/proc/123/ns/net")), Some(123));
        assert_eq!(proc_pid(Path::new("/proc/123/ns")), None);
        assert_eq!(proc_pid(Path::new("/proc/self/ns/net")), None);
        assert_eq!(proc_pid(Path::new("/run/netns/x")), None);
        assert_eq!(proc_pid(Path::new("/proc/1/net")), None);
    }

    #[test]
    fn report_bytes() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        Report(w).failed("no such interface");
        assert_eq!(
            await_daemon(r).unwrap_err().to_string(),
            "no such interface"
        );
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        Report(w).ready();
        assert_eq!(await_daemon(r).unwrap(), 0);
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(w);
        assert!(matches!(await_daemon(r), Err(PastaSetupError::DaemonDied)));
    }
}
