//! Putting a namespace on a named network: open its namespaces, create its
//! TAP (tap0, tap1 … — a namespace may be on several networks) inside them
//! through an agent, and configure the member's addresses.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::api::AttachRequest;
use crate::config::AddrPlan;
use crate::sys::netlink::{self, LinkSetup};
use crate::sys::ns;
use crate::sys::tap::Tap;

use super::ipam::Lease;

/// TAP names tried in a member namespace.
const MAX_TAPS: usize = 16;

pub struct MemberTap {
    pub tap: Tap,
    /// PID mode: readable when the process exits (the attachment ends).
    pub pidfd: Option<OwnedFd>,
    /// Identity of the network namespace, to refuse attaching it twice.
    pub netns: (u64, u64),
}

/// Create and configure the member's TAP inside its namespace.
pub fn create_tap(
    req: &AttachRequest,
    lease: &Lease,
    plan: &AddrPlan,
    mtu: u32,
) -> Result<MemberTap, String> {
    let mut handles = match (req.pid, &req.netns) {
        (Some(pid), _) => ns::open_pid(pid),
        (None, Some(path)) => ns::open_path(Path::new(path), req.userns.as_deref().map(Path::new)),
        (None, None) => return Err("give the pid (or netns) of the namespace to attach".into()),
    }
    .map_err(|e| e.to_string())?;
    let st = nix::sys::stat::fstat(handles.net.as_fd()).map_err(|e| e.to_string())?;
    let netns = (st.st_dev, st.st_ino);
    let job = || {
        let name = (0..MAX_TAPS)
            .map(|i| format!("tap{i}"))
            .find(|n| matches!(netlink::link_index(n), Ok(None)))
            .ok_or_else(|| format!("the namespace already has {MAX_TAPS} TAPs"))?;
        let tap = Tap::open(&name).map_err(|e| e.to_string())?;
        netlink::configure_link(&LinkSetup {
            ifname: &name,
            mtu,
            mac: Some(lease.mac),
            v4: Some((lease.ip4, plan.net4.prefix, plan.gateway4)),
            v6: match (lease.ip6, plan.v6) {
                (Some(ip6), Some(v6)) => Some((ip6, v6.prefix_len, v6.gateway6)),
                _ => None,
            },
            keep_default_route: true,
        })
        .map_err(|e| e.to_string())?;
        let mut info = vec![u8::from(tap.offload())];
        info.extend_from_slice(name.as_bytes());
        Ok((tap.into_fd(), info))
    };
    let (fd, info) = ns::run_in(&handles, job).map_err(|e| e.to_string())?;
    let (offload, name) = info.split_first().ok_or("malformed agent reply")?;
    let name = String::from_utf8_lossy(name).into_owned();
    Ok(MemberTap {
        tap: Tap::from_fd(fd, name, *offload == 1),
        pidfd: handles.pidfd.take(),
        netns,
    })
}
