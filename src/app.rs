//! One run of rlnet, start to finish: find or create the namespace, get its
//! TAP from an agent inside it, start the data plane, signal readiness, and
//! turn the way the loop ended into an exit code. rlnet as pasta has its
//! own process model ([`pasta`]) built from the same steps.

pub mod pasta;

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use thiserror::Error;

use crate::api::server::{ApiServer, ApiSocketError};
use crate::config::{Config, ConfigError, Configure, Outbound, Target};
use crate::dns::DnsConfig;
use crate::engine::{Engine, EngineError, Exit, Setup};
use crate::forward::publish;
use crate::forward::spec::Mode;
use crate::nat::{self, policy::Policy};
use crate::sys::netlink::{self, LinkSetup};
use crate::sys::ns::{self, FactoryOptions, FactoryStart, NsError, NsHandles};
use crate::sys::os;
use crate::sys::sandbox::{self, Keep, SandboxError};
use crate::sys::seccomp::{self, SeccompError};
use crate::sys::tap::Tap;

#[derive(Debug, Error)]
pub enum SetupError {
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("outbound-addr{v6}: interface {name} has no {family} address", v6 = if *.v6 { "6" } else { "" }, family = if *.v6 { "IPv6" } else { "IPv4" })]
    OutboundIface { name: String, v6: bool },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    // The steps of a run that other parts carry out, with their own texts.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error(transparent)]
    ApiSocket(#[from] ApiSocketError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the agent needs to prepare the TAP inside the namespace.
struct TapRequest<'a> {
    cfg: &'a Config,
}

/// What the agent reports back besides the TAP fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TapInfo {
    existed: bool,
    configured: bool,
    offload: bool,
    mac: Option<[u8; 6]>,
}

impl TapInfo {
    fn encode(&self) -> Vec<u8> {
        let mut v = vec![
            u8::from(self.existed),
            u8::from(self.configured),
            u8::from(self.offload),
            u8::from(self.mac.is_some()),
        ];
        v.extend_from_slice(&self.mac.unwrap_or_default());
        v
    }

    fn decode(b: &[u8]) -> Option<TapInfo> {
        let b: &[u8; 10] = b.try_into().ok()?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[4..]);
        Some(TapInfo {
            existed: b[0] == 1,
            configured: b[1] == 1,
            offload: b[2] == 1,
            mac: (b[3] == 1).then_some(mac),
        })
    }
}

/// Runs inside the target namespaces (in the agent): open the TAP,
/// configure the link when rlnet created it (or `-c` asks for it), and
/// send the TAP. Configured first: the namespace's route to the gateway,
/// which a client waiting for the network needs first, exists that much
/// sooner; rlnet, which confines itself meanwhile, takes the TAP after.
fn setup_tap(req: &TapRequest<'_>, early: ns::Early) -> Result<(), String> {
    let cfg = req.cfg;
    let name = cfg.tap_name.as_str();
    let text = |e: netlink::NetlinkError| e.to_string();
    let mut nl = netlink::Session::open().map_err(text)?;
    let (tap, existed) = Tap::open_telling(name).map_err(|e| e.to_string())?;
    // Its index (kept for the configuration) and MAC; as before, a MAC
    // that cannot be read is left to the namespace.
    let link = nl.link(name).ok().flatten();
    let configure = match cfg.configure {
        Configure::Always => true,
        Configure::Never => false,
        // A TAP the caller made is the caller's to configure (RootlessKit).
        Configure::Auto => !existed,
    };
    let info = TapInfo {
        existed,
        configured: configure,
        offload: tap.offload(),
        // `-c` sets `--mac` if given, else the link keeps this one.
        mac: cfg.mac.or(link.and_then(|l| l.mac)),
    };
    if configure {
        let plan = &cfg.plan;
        nl.configure_link(&LinkSetup {
            ifname: name,
            mtu: cfg.mtu,
            mac: cfg.mac,
            v4: Some((plan.guest4, plan.net4.prefix, plan.gateway4)),
            v6: plan.v6.map(|v6| (v6.guest6, v6.prefix_len, v6.gateway6)),
            keep_default_route: false,
        })
        .map_err(|e| e.to_string())?;
    }
    early(tap.into_fd(), info.encode())
}

/// `--outbound-addr[6]=IFNAME`: the interface's first address of the family,
/// looked up once in rlnet's own namespace. (slirp4netns looks up the IPv4
/// option's value for `--outbound-addr6`; rlnet uses the IPv6 one.)
fn resolve_outbound(o: &Option<Outbound>, v6: bool) -> Result<Option<IpAddr>, SetupError> {
    match o {
        None => Ok(None),
        Some(Outbound::Addr(a)) => Ok(Some(*a)),
        Some(Outbound::Interface(name)) => {
            let found = nix::ifaddrs::getifaddrs().ok().and_then(|addrs| {
                addrs
                    .filter(|a| a.interface_name == *name)
                    .filter_map(|a| a.address)
                    .find_map(|s| match (v6, s.as_sockaddr_in(), s.as_sockaddr_in6()) {
                        (false, Some(sin), _) => Some(IpAddr::V4(sin.ip())),
                        (true, _, Some(sin6)) => Some(IpAddr::V6(sin6.ip())),
                        _ => None,
                    })
            });
            found.map(Some).ok_or(SetupError::OutboundIface {
                name: name.clone(),
                v6,
            })
        }
    }
}

/// The resolv.conf `rlnet run` gives COMMAND: the DNS stub's addresses.
fn stub_resolv_conf(cfg: &Config) -> String {
    let mut text = format!(
        "# written by rlnet: the DNS stub\nnameserver {}\n",
        cfg.plan.dns4
    );
    if let Some(v6) = cfg.plan.v6 {
        text.push_str(&format!("nameserver {}\n", v6.dns6));
    }
    text
}

/// What the sandbox and the seccomp filter need to know, gathered
/// before the parts move into the engine.
struct Confinement {
    /// A handle of its own on the target's user namespace (the engine keeps
    /// the original).
    userns: Option<OwnedFd>,
    child: Option<i32>,
    api_dir: Option<RawFd>,
}

/// Sandbox, then seccomp (last: the sandbox needs mount, pivot_root and
/// prctl). Everything the engine uses later is open by now.
fn confine(cfg: &Config, c: Confinement) -> Result<(), SetupError> {
    // Built before the sandbox: compiling allocates, and errors are better
    // reported before anything changes.
    let filters = if cfg.enable_seccomp {
        Some(seccomp::compile(&seccomp::Scope {
            own_pid: nix::unistd::getpid().as_raw(),
            child: c.child,
            api_dir: c.api_dir,
            other_dir: None,
        })?)
    } else {
        None
    };
    if cfg.enable_sandbox {
        // The DNS stub re-reads resolv.conf while running (unless
        // --dns-upstream replaces it): its path must keep resolving.
        let mut keep = Vec::new();
        if cfg.dns && cfg.dns_upstream.is_empty() {
            keep.push(Keep {
                path: cfg
                    .resolv_conf
                    .clone()
                    .unwrap_or_else(|| DnsConfig::new(cfg.plan).resolv_conf),
                required: cfg.resolv_conf.is_some(),
            });
        }
        sandbox::enter(&sandbox::Plan {
            userns: c.userns.as_ref().map(|f| f.as_fd()),
            keep,
        })?;
        log::debug!("sandbox in force");
    }
    if let Some(f) = filters {
        f.apply()?;
        log::debug!("seccomp filter loaded");
    }
    Ok(())
}

/// The namespace to serve, and for `rlnet run` the child that lives in it
/// (started, but waiting for [`ns::RunChild::go`]).
fn open_target(cfg: &Config) -> Result<(NsHandles, Option<ns::RunChild>), NsError> {
    Ok(match &cfg.target {
        Target::Pid(pid) => (ns::open_pid(*pid)?, None),
        Target::Path { netns, userns } => (ns::open_path(netns, userns.as_deref())?, None),
        Target::Run { argv } => {
            let resolv = cfg.dns.then(|| stub_resolv_conf(cfg));
            let c = ns::spawn_run(argv, resolv.as_deref(), None)?;
            (c.handles()?, Some(c))
        }
    })
}

/// Fork the TAP agent (first: the TAP is on the path to ready), which
/// stays on as the socket factory when one is needed at start
/// ([`early_factory`]).
fn start_tap(
    cfg: &Config,
    handles: &NsHandles,
) -> Result<(ns::EarlyStart, Option<FactoryStart>), NsError> {
    let req = TapRequest { cfg };
    let job = |early: ns::Early| setup_tap(&req, early);
    match early_factory(cfg) {
        Some(opts) => ns::spawn_in_early_with_factory(handles, job, opts)
            .map(|(start, factory)| (start, Some(factory))),
        None => ns::spawn_in_early(handles, job).map(|start| (start, None)),
    }
}

/// The TAP, as soon as the agent has made it (and configured the link);
/// the agent's outcome is collected with [`ns::EarlyAgent::finish`] before
/// ready. Both forms' TAP agent answers with [`TapInfo`].
fn open_tap(name: &str, start: ns::EarlyStart) -> Result<(Tap, TapInfo, ns::EarlyAgent), NsError> {
    let (fd, info, agent) = start.answer()?;
    let info =
        TapInfo::decode(&info).ok_or_else(|| NsError::AgentDied("malformed reply".into()))?;
    log::debug!("TAP {name}: {info:?}");
    Ok((
        Tap::from_fd(fd, name.to_string(), info.offload),
        info,
        agent,
    ))
}

/// What [`confine`] will need, taken while the parts are still ours.
fn confinement(
    cfg: &Config,
    handles: &NsHandles,
    child: Option<&ns::RunChild>,
    api: Option<&ApiServer>,
) -> Result<Confinement, NsError> {
    Ok(Confinement {
        userns: match &handles.user {
            Some(fd) if cfg.enable_sandbox => Some(
                sandbox::dup_above(fd.as_fd(), cfg.ready_fd.max(cfg.exit_fd).unwrap_or(2))
                    .map_err(|err| NsError::Sys { what: "dup", err })?,
            ),
            _ => None,
        },
        child: child.map(|c| c.pid.as_raw()),
        api_dir: api.map(ApiServer::dir_fd),
    })
}

/// The namespace's policy: its addresses and what it may reach.
fn policy(cfg: &Config) -> Policy {
    Policy {
        plan: cfg.plan,
        host_loopback: cfg.host_loopback,
        dns: cfg.dns,
        internal: false,
    }
}

/// The DNS stub's configuration; None with `--disable-dns`.
fn dns_config(cfg: &Config) -> Option<DnsConfig> {
    cfg.dns.then(|| DnsConfig {
        plan: cfg.plan,
        resolv_conf: cfg
            .resolv_conf
            .clone()
            .unwrap_or_else(|| DnsConfig::new(cfg.plan).resolv_conf),
        upstream: cfg.dns_upstream.clone(),
        hosts: cfg.add_hosts.clone(),
    })
}

/// Serve the configured namespace until it ends; returns the exit code.
pub fn run(cfg: Config) -> Result<i32, SetupError> {
    cfg.validate()?;
    // Whether the fds we were told about are open is decided now, before
    // rlnet opens anything: later, a closed number may be one of our own.
    let ready_fd = cfg.ready_fd.and_then(os::take_inherited_fd);
    let exit_fd = cfg.exit_fd.map(os::take_inherited_fd);
    if cfg.enable_sandbox {
        // Before anything is opened: only stdio and the fds we were told
        // about survive.
        os::close_all_except(&[cfg.ready_fd, cfg.exit_fd].map(|fd| fd.unwrap_or(-1)));
    }
    os::raise_nofile_limit();
    os::tune_allocator();
    let outbound = nat::Outbound {
        v4: resolve_outbound(&cfg.outbound4, false)?,
        v6: resolve_outbound(&cfg.outbound6, true)?,
    };
    // Block the handled signals before any fork; children unblock before exec.
    let signals = os::signal_fd().map_err(SetupError::Signals)?;
    let (mut handles, mut child) = open_target(&cfg)?;
    let (tap_start, factory) = start_tap(&cfg, &handles)?;
    let factory_now = factory.is_some();
    // The API socket listens before the ready fd is written (callers
    // connect right after ready).
    let api = match &cfg.api_socket {
        Some(path) => Some(ApiServer::bind(path)?),
        None => None,
    };
    let confinement = confinement(&cfg, &handles, child.as_ref(), api.as_ref())?;
    let child_parts = match child.as_mut() {
        Some(c) => c.take_pidfd().map(|fd| (c.pid, fd)),
        None => None,
    };
    // Built while the agent makes the TAP (on another CPU), which comes
    // after.
    let mut engine = Engine::new(Setup {
        tap: None,
        network: None,
        ns_mac: None,
        mtu: cfg.mtu,
        policy: policy(&cfg),
        outbound,
        signals: Some(signals),
        target: handles.pidfd.take(),
        exit_fd,
        child: child_parts,
        publish: cfg.publish.clone(),
        publish_mode: cfg.publish_mode,
        ns: Some(NsHandles {
            user: handles.user,
            net: handles.net,
            pidfd: None,
        }),
        factory,
        unprivileged_start: publish::unprivileged_port_start(),
        api,
        dns: dns_config(&cfg),
        watch: None,
        pasta: None,
    })?;
    // Confined while the agent makes the TAP: what follows only takes it
    // and talks to the agent and the factory over their sockets.
    let smaps = os::own_smaps();
    confine(&cfg, confinement)?;
    let (tap, info, tap_agent) = open_tap(&cfg.tap_name, tap_start)?;
    engine.attach_tap(tap, cfg.mac.or(info.mac))?;
    // The agent's outcome before anyone hears it is ready. First: an
    // agent that stays on as the factory is the factory's to reap after.
    tap_agent.finish()?;
    if factory_now && let Some(exit) = engine.finish_start()? {
        return Ok(exit_code(exit));
    }
    if let Some(c) = child.as_mut() {
        c.go()?;
    }
    if let Some(fd) = ready_fd {
        os::signal_ready(fd);
    }
    serve(engine, smaps)
}

/// The socket factory makes the namespace's sockets of splice mode and of
/// stack mode's real-address splice. Once confined, rlnet cannot enter the
/// namespace any more: the factory must exist before, if ports may be
/// published at all (at start, or later through the API); then the TAP
/// agent becomes it once the link is configured, and sets itself up while
/// rlnet confines itself ([`Engine::finish_start`] waits for it after).
/// Otherwise, or unconfined, it starts on first use (None).
fn early_factory(cfg: &Config) -> Option<FactoryOptions> {
    let ports_possible =
        cfg.publish_mode == Mode::Splice || !cfg.publish.is_empty() || cfg.api_socket.is_some();
    ((cfg.enable_sandbox || cfg.enable_seccomp) && ports_possible)
        .then(|| publish::factory_options(&cfg.plan, false))
}

/// Run the loop until the namespace's helper ends; its exit code.
fn serve<E: From<EngineError>>(mut engine: Engine, smaps: Option<File>) -> Result<i32, E> {
    // Set-up's code is done with: dropped a moment after ready, off the
    // path to ready and of the first connections.
    let exit = engine.run_then(os::DROP_START_UP_AFTER, || os::drop_start_up(smaps))?;
    Ok(exit_code(exit))
}

/// rlnet's exit status once the loop ended so.
fn exit_code(exit: Exit) -> i32 {
    log::debug!("exiting: {exit:?}");
    match exit {
        Exit::Child(code) => code,
        Exit::Signal(_) | Exit::TargetGone | Exit::NetnsGone | Exit::ExitFd | Exit::Shutdown => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_info_roundtrip() {
        for info in [
            TapInfo {
                existed: true,
                configured: false,
                offload: true,
                mac: None,
            },
            TapInfo {
                existed: false,
                configured: true,
                offload: false,
                mac: Some([2, 0, 0, 0, 0, 1]),
            },
        ] {
            assert_eq!(TapInfo::decode(&info.encode()), Some(info));
        }
        assert_eq!(TapInfo::decode(&[1, 2, 3]), None);
    }
}
