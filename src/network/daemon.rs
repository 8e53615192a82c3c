//! `rlnet network create`: a named network is a background rlnet with no
//! TAP of its own; members are attached through its API socket. The daemon
//! survives any member leaving and ends on `rlnet network rm` or a signal.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use caps::Capability;
use thiserror::Error;

use super::registry::{self, Record, RegistryError};
use super::request::CreateSpec;
use crate::api::ReplyError;
use crate::api::server::{ApiServer, ApiSocketError};
use crate::config::{DEFAULT_MTU, Ipv4Net};
use crate::dns::DnsConfig;
use crate::engine::{Engine, EngineError, KernelSetup, NetworkSetup, Setup};
use crate::forward::publish;
use crate::forward::spec::Mode;
use crate::model::guard;
use crate::model::ipam::{self, Ipam};
use crate::nat::{Outbound, policy::Policy};
use crate::sys::{bridge, ns, os, sandbox, seccomp};
use crate::wire::nft as nft_wire;

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("network {0:?} already exists")]
    Exists(String),
    #[error("subnet {subnet} overlaps network {other:?} ({other_subnet}): choose another --subnet")]
    Overlap {
        subnet: Ipv4Net,
        other: String,
        other_subnet: String,
    },
    #[error("no free subnet left in {pool}: give one with --subnet", pool = ipam::POOL4)]
    NoSubnet,
    #[error("subnet {0} is too small for a network: use a prefix of /24 or shorter")]
    SubnetSize(Ipv4Net),
    #[error("cannot start the network daemon: {0}")]
    Start(String),
    #[error(
        "no network named {0:?} (see 'rlnet network ls', or create it with 'rlnet network create {0}')"
    )]
    Missing(String),
    #[error("network {network:?} does not answer: {reason}")]
    Unreachable { network: String, reason: String },
    #[error("network {network}: {reason}")]
    Refused { network: String, reason: String },
    /// A daemon's answer that makes no sense.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    #[error("bad subnet in the record of {0}")]
    BadRecord(String),
}

/// Why a daemon could not start, or stopped with an error. It never leaves
/// the daemon: its text goes to `rlnet network create` over the start-up
/// pipe, which reports it as [`NetworkError::Start`].
#[derive(Debug, Error)]
enum DaemonError {
    #[error(transparent)]
    Api(#[from] ApiSocketError),
    #[error(transparent)]
    Signals(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot write {dir}: {err}")]
    Record { dir: String, err: std::io::Error },
    #[error("cannot confine the daemon: {0}")]
    Confine(String),
}

/// Create the network and start its daemon; returns once its API socket
/// listens (or with the daemon's error).
pub fn create(spec: &CreateSpec) -> Result<Record, NetworkError> {
    registry::check_name(&spec.name)?;
    let dir = registry::runtime_dir()?;
    let _lock = registry::lock(&dir)?;
    let others = registry::live(&dir);
    if others.iter().any(|r| r.name == spec.name) {
        return Err(NetworkError::Exists(spec.name.clone()));
    }
    let used: Vec<(Ipv4Net, &Record)> = others
        .iter()
        .filter_map(|r| Some((r.subnet()?, r)))
        .collect();
    let subnet = match spec.subnet {
        Some(s) => {
            if s.prefix > 24 {
                return Err(NetworkError::SubnetSize(s));
            }
            if let Some((_, r)) = used.iter().find(|(u, _)| ipam::overlaps(*u, s)) {
                return Err(NetworkError::Overlap {
                    subnet: s,
                    other: r.name.clone(),
                    other_subnet: r.subnet.clone(),
                });
            }
            s
        }
        None => {
            let taken: Vec<Ipv4Net> = used.iter().map(|(u, _)| *u).collect();
            ipam::free_subnet(&taken).ok_or(NetworkError::NoSubnet)?
        }
    };
    let record = Record {
        name: spec.name.clone(),
        subnet: subnet.to_string(),
        internal: spec.internal,
        ipv6: spec.ipv6,
        pid: 0,
    };
    spawn(&dir, record, subnet)
}

/// Double-fork the daemon (no controlling terminal, not our child) and
/// wait for its "ready" or its error on a pipe.
fn spawn(dir: &Path, mut record: Record, subnet: Ipv4Net) -> Result<Record, NetworkError> {
    let start = |e: &dyn std::fmt::Display| NetworkError::Start(e.to_string());
    if !os::single_threaded() {
        return Err(NetworkError::Start(
            "rlnet must be single-threaded to fork".into(),
        ));
    }
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| start(&e))?;
    match os::fork().map_err(|e| start(&e))? {
        None => {
            drop(r);
            let _ = nix::unistd::setsid();
            match os::fork() {
                Ok(None) => {
                    let code = match daemon_main(dir, &mut record, subnet, &w) {
                        Ok(()) => 0,
                        Err(e) => {
                            let _ = nix::unistd::write(&w, e.to_string().as_bytes());
                            1
                        }
                    };
                    os::exit_now(code)
                }
                _ => os::exit_now(0),
            }
        }
        Some(child) => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut buf = [0u8; 1024];
            let n = read_with_timeout(&r, &mut buf, Duration::from_secs(10));
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(pid) = reply.strip_prefix("ok ") {
                record.pid = pid.trim().parse().unwrap_or(0);
                Ok(record)
            } else if reply.is_empty() {
                Err(NetworkError::Start(
                    "the daemon died during start-up".into(),
                ))
            } else {
                Err(NetworkError::Start(reply))
            }
        }
    }
}

fn read_with_timeout(fd: &OwnedFd, buf: &mut [u8], timeout: Duration) -> usize {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(
        &mut fds,
        nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
    ) {
        Ok(n) if n > 0 => nix::unistd::read(fd.as_fd(), buf).unwrap_or(0),
        _ => 0,
    }
}

/// The daemon itself: bind the API socket, write the record, report ready,
/// serve until told to stop.
fn daemon_main(
    dir: &Path,
    record: &mut Record,
    subnet: Ipv4Net,
    ready: &OwnedFd,
) -> Result<(), DaemonError> {
    let log = registry::record_path(dir, &record.name).with_extension("log");
    os::redirect_stdio(&log);
    let sock = registry::socket_path(dir, &record.name);
    let api = ApiServer::bind(&sock)?;
    let api_dir = api.dir_fd();
    // The record is removed at exit through this handle (unlinkat: the
    // filter allows no other way to remove a file).
    let record_dir = std::fs::File::open(dir).map_err(|err| DaemonError::Record {
        dir: dir.display().to_string(),
        err,
    })?;
    let plan = ipam::plan_for(subnet, record.ipv6);
    let signals = os::signal_fd().map_err(DaemonError::Signals)?;
    let mut engine = Engine::new(Setup {
        tap: None,
        network: Some(NetworkSetup {
            name: record.name.clone(),
            ipam: Ipam::new(plan),
            kernel: kernel_switch(),
        }),
        ns_mac: None,
        mtu: DEFAULT_MTU,
        policy: Policy {
            plan,
            host_loopback: true,
            dns: true,
            internal: record.internal,
        },
        outbound: Outbound::default(),
        signals: Some(signals),
        target: None,
        exit_fd: None,
        child: None,
        publish: Vec::new(),
        publish_mode: Mode::Stack,
        ns: None,
        factory: None,
        unprivileged_start: publish::unprivileged_port_start(),
        api: Some(api),
        dns: Some(DnsConfig::new(plan)),
        watch: None,
        pasta: None,
    })?;
    record.pid = std::process::id();
    registry::write(dir, record).map_err(|err| DaemonError::Record {
        dir: dir.display().to_string(),
        err,
    })?;
    let smaps = os::own_smaps();
    confine(api_dir, record_dir.as_raw_fd())?;
    let _ = nix::unistd::write(ready, format!("ok {}", record.pid).as_bytes());
    // Set-up's code is done with: dropped a moment after ready, off the
    // path of the first requests.
    let exit = engine.run_then(os::DROP_START_UP_AFTER, || os::drop_start_up(smaps));
    registry::remove_at(&record_dir, &record.name);
    let _ = std::io::stderr().flush();
    drop(engine); // removes the socket file
    exit?;
    Ok(())
}

/// The MAC of the guard's probe member (locally administered, unused).
const PROBE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

/// Set this to 0 in the daemon's environment to give every member a TAP
/// on the userspace switch (no bridge is made).
pub const KERNEL_SWITCH_ENV: &str = "RLNET_KERNEL_SWITCH";

/// The network's bridge (docs/kernel-switching.md): its own user and
/// network namespaces, the bridge with its uplink TAP and the guard's
/// table. Without it (an old kernel, no nf_tables, disabled) members
/// started with `rlnet run --network` get TAPs as attached ones do; the
/// log says why, once.
fn kernel_switch() -> Option<KernelSetup> {
    if std::env::var_os(KERNEL_SWITCH_ENV).is_some_and(|v| v == "0") {
        log::info!("kernel switch disabled ({KERNEL_SWITCH_ENV}=0): every member gets a TAP");
        return None;
    }
    match build_kernel_switch() {
        Ok(k) => Some(k),
        Err(e) => {
            log::warn!("no kernel switch, every member gets a TAP: {e}");
            None
        }
    }
}

fn build_kernel_switch() -> Result<KernelSetup, String> {
    let ns = ns::create_network_ns().map_err(|e| e.to_string())?;
    // The table, and once the whole guard of a member that never exists
    // (port v0, never handed out), removed in the same batch: a kernel that
    // refuses any of the guard's expressions refuses it here, and the
    // network falls back to TAPs rather than failing every attach.
    let probe = guard::GuardMember::new(
        "v0",
        PROBE_MAC,
        Ipv4Addr::new(192, 0, 2, 1),
        Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    );
    let mut ops = guard::table();
    ops.extend(guard::add_member(&probe));
    ops.extend(guard::remove_member(&probe.port));
    let table = nft_wire::batch(&ops, 1);
    let agent = bridge::start_bridge(&ns, table).map_err(|e| e.to_string())?;
    let uplink = bridge::uplink_from(agent.wait()).map_err(|e| e.to_string())?;
    Ok(KernelSetup { ns, uplink })
}

/// The daemon after setup (issue 13 finding 2): no new privileges, no
/// capability but those attaching a member takes when the daemon runs as
/// root (joining the member's namespaces, reading them under /proc, making
/// its TAP, publishing low ports), and [`seccomp::compile_network`]'s
/// filter. No private root or user namespace of its own, unlike `rlnet`
/// serving one namespace: every attach opens the member's /proc/PID/ns
/// files and the agent it forks joins the member's user namespace, which a
/// process inside a user namespace of its own can never do.
fn confine(api_dir: RawFd, record_dir: RawFd) -> Result<(), DaemonError> {
    let confine_err = |e: &dyn std::fmt::Display| DaemonError::Confine(e.to_string());
    // Where rlnet has no filter for the architecture, the rest only.
    let filters = if crate::config::SECCOMP_ARCH {
        Some(
            seccomp::compile_network(&seccomp::Scope {
                own_pid: nix::unistd::getpid().as_raw(),
                child: None,
                api_dir: Some(api_dir),
                other_dir: Some(record_dir),
            })
            .map_err(|e| confine_err(&e))?,
        )
    } else {
        None
    };
    nix::sys::prctl::set_no_new_privs().map_err(|e| confine_err(&e))?;
    sandbox::drop_capabilities_except(&[
        Capability::CAP_SYS_ADMIN,
        Capability::CAP_SYS_PTRACE,
        Capability::CAP_NET_ADMIN,
        Capability::CAP_NET_BIND_SERVICE,
    ])
    .map_err(|e| confine_err(&e))?;
    match filters {
        Some(f) => f.apply().map_err(|e| confine_err(&e)),
        None => Ok(()),
    }
}

/// The API socket of network `name`, if it exists.
pub fn socket_of(name: &str) -> Result<PathBuf, NetworkError> {
    registry::check_name(name)?;
    let dir = registry::runtime_dir()?;
    let sock = registry::socket_path(&dir, name);
    Ok(sock)
}
