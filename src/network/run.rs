//! `rlnet run --network NAME -- COMMAND`: COMMAND in a new user+network
//! namespace that the network's daemon attaches before COMMAND starts.
//! This process only waits: it forwards signals to COMMAND and exits with
//! its status; the attachment ends with COMMAND (the daemon holds a pidfd).
//! Once COMMAND runs it waits confined (issue 13 finding 2): no new
//! privileges, no capability, the engine's seccomp filter (it may signal
//! COMMAND and no one else).

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};

use super::command::{ATTACH_TIMEOUT, api_error, existing_record};
use super::daemon::NetworkError;
use super::registry::Record;
use super::request::NetworkRun;
use crate::api::ClientRequest;
use crate::api::client;
use crate::model::ipam;
use crate::sys::{ns, os, sandbox, seccomp};

/// Runs COMMAND on the network; returns its exit status (128+N if killed by
/// signal N).
pub fn run(nr: &NetworkRun) -> Result<i32, NetworkError> {
    let (sock, rec) = existing_record(&nr.network)?;
    let start = |e: &dyn std::fmt::Display| NetworkError::Start(e.to_string());
    let resolv = resolv_conf(nr, &rec);
    // Blocked before the fork; the child unblocks them before exec.
    let signals = os::signal_fd().map_err(|e| start(&e))?;
    // Under the network's user namespace when it has a kernel switch, so
    // its bridge can reach COMMAND's namespace; otherwise (an older daemon,
    // no bridge) the namespaces are made as before and get a TAP.
    let userns = client::request_fd(&sock, &ClientRequest::NetworkUserns, ATTACH_TIMEOUT)
        .ok()
        .and_then(|(_, fd)| fd);
    let mut child =
        ns::spawn_run(&nr.argv, resolv.as_deref(), userns.as_ref()).map_err(|e| start(&e))?;
    drop(userns);
    // Compiled while an error still stops COMMAND before it starts.
    let filters = if crate::config::SECCOMP_ARCH {
        let scope = seccomp::Scope {
            own_pid: nix::unistd::getpid().as_raw(),
            child: Some(child.pid.as_raw()),
            api_dir: None,
            other_dir: None,
        };
        Some(seccomp::compile(&scope).map_err(|e| start(&e))?)
    } else {
        None
    };
    let mut request = nr.request.clone();
    request.pid = Some(child.pid.as_raw().cast_unsigned());
    // On failure `child` is dropped unstarted: it exits without running COMMAND.
    client::request(&sock, &ClientRequest::Attach(request), ATTACH_TIMEOUT)
        .map_err(|e| api_error(&nr.network, e))?;
    child.go().map_err(|e| start(&e))?;
    if let Err(e) = confine(filters.as_ref()) {
        let _ = nix::sys::signal::kill(child.pid, Signal::SIGKILL);
        let _ = waitpid(child.pid, None);
        return Err(NetworkError::Start(format!("cannot confine rlnet: {e}")));
    }
    let pidfd = child
        .take_pidfd()
        .ok_or_else(|| NetworkError::Start("no pidfd for COMMAND".into()))?;
    loop {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(start(&e)),
        }
        while let Ok(Some(info)) = signals.read_signal() {
            // Like a shell: COMMAND decides what a signal means.
            if let Ok(sig) = Signal::try_from(info.ssi_signo.cast_signed())
                && sig != Signal::SIGCHLD
            {
                let _ = nix::sys::signal::kill(child.pid, sig);
            }
        }
        if fds[1].any().unwrap_or(false) {
            return Ok(match waitpid(child.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => code,
                Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
                _ => 1,
            });
        }
    }
}

/// COMMAND's resolv.conf, pointing at the network's DNS stub (None
/// without `--dns`, or for a record without a subnet).
fn resolv_conf(nr: &NetworkRun, rec: &Record) -> Option<String> {
    match (nr.dns, rec.subnet()) {
        (true, Some(s)) => {
            let plan = ipam::plan_for(s, rec.ipv6);
            let mut text = format!(
                "# written by rlnet: the DNS stub of network {}\nnameserver {}\n",
                rec.name, plan.dns4
            );
            if let Some(v6) = plan.v6 {
                text.push_str(&format!("nameserver {}\n", v6.dns6));
            }
            Some(text)
        }
        _ => None,
    }
}

/// No new privileges, no capability, then the filter (where there is one).
fn confine(filters: Option<&seccomp::Filters>) -> Result<(), String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    sandbox::drop_capabilities_but(None).map_err(|e| e.to_string())?;
    filters.map_or(Ok(()), |f| f.apply().map_err(|e| e.to_string()))
}
