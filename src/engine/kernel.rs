//! A named network's kernel part (docs/kernel-switching.md): the members
//! that `rlnet run --network` starts under the network's own user namespace
//! get a veth on a Linux bridge in the network's namespace instead of a TAP
//! read by the loop, so frames between them never leave the kernel. An
//! nftables guard on the bridge holds them to what the switch holds every
//! member to (their MAC, their addresses); the engine reaches them, and
//! they reach the gateway and the members attached from outside, through
//! one uplink TAP on the bridge.
//!
//! The agents that change the bridge run beside the loop, as the TAP agents
//! of [`super::attach`] do; the guard's netlink bytes are built here, before
//! the fork, so the agent only sends them.

use std::os::fd::AsFd;

use crate::model::guard::{self, GuardMember};
use crate::sys::member_tap::TapSpec;
use crate::sys::ns::{self, Agent, NsError, NsHandles};
use crate::sys::tap::Tap;
use crate::sys::{bridge, nft};
use crate::wire::nft as nft_wire;

/// The member's interface inside its namespace: a fresh namespace made by
/// `rlnet run --network`, so the first name, as its TAP was called before.
pub const MEMBER_LINK: &str = "tap0";

/// What the daemon built before the loop started: the network's user and
/// network namespaces and the uplink TAP on its bridge.
pub struct KernelSetup {
    pub ns: NsHandles,
    pub uplink: Tap,
}

/// The kernel part while the loop runs.
pub(super) struct KernelPart {
    pub ns: NsHandles,
    /// The uplink's port (in `Dp::outs`): read, never a member.
    pub uplink: usize,
    /// Another handle on the uplink TAP, cloned for each kernel member's
    /// writer.
    uplink_tap: Tap,
    /// Bridge ports are named v1, v2 … and never reused, so a late cleanup
    /// never removes a newer member's port or guard (v0 is the name of the
    /// daemon's probe of the guard, network/daemon.rs).
    next: u64,
}

impl KernelPart {
    pub fn new(ns: NsHandles, uplink: usize, uplink_tap: Tap) -> KernelPart {
        KernelPart {
            ns,
            uplink,
            uplink_tap,
            next: 0,
        }
    }

    /// Is the user namespace of `target` a child of the network's? Only
    /// then can the network's root move a veth end into it.
    pub fn owns(&self, target: &NsHandles) -> bool {
        match (&target.user, &self.ns.user) {
            (Some(child), Some(parent)) => {
                ns::userns_is_child_of(child.as_fd(), parent.as_fd()).unwrap_or(false)
            }
            _ => false,
        }
    }

    /// Another fd on the network's user namespace, for `network_userns`.
    pub fn userns(&self) -> Result<std::os::fd::OwnedFd, String> {
        let user = self
            .ns
            .user
            .as_ref()
            .ok_or("the network has no user namespace")?;
        user.try_clone()
            .map_err(|e| format!("cannot duplicate the user namespace's fd: {e}"))
    }

    pub fn next_port(&mut self) -> String {
        self.next += 1;
        format!("v{}", self.next)
    }

    /// A writer for a kernel member: a second fd on the uplink TAP (the
    /// bridge delivers by the destination MAC).
    pub fn member_link(&self) -> std::io::Result<Tap> {
        self.uplink_tap.try_clone(MEMBER_LINK)
    }

    /// Fork the agent that puts a member on the bridge as `port`: its veth
    /// (the peer, [`MEMBER_LINK`], made inside the member's namespace
    /// `net`), its guard, then the link's addresses, as a TAP member's.
    /// Answers with the member's netns fd.
    pub fn start_attach(
        &self,
        net: std::os::fd::OwnedFd,
        port: String,
        spec: TapSpec,
    ) -> Result<Agent, NsError> {
        let guard = GuardMember::new(&port, spec.mac, spec.v4.0, spec.v6.map(|v| v.0));
        let rules = nft_wire::batch(&guard::add_member(&guard), 1);
        let mac = spec.mac;
        ns::spawn_in(&self.ns, move || {
            let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
            bridge::add_port(net.as_fd(), &port, MEMBER_LINK, mac)
                .map_err(|e| err("cannot add the bridge port", &e))?;
            nft::apply(&rules).map_err(|e| err("cannot load the member's guard", &e))?;
            bridge::port_up(&port).map_err(|e| err("cannot raise the bridge port", &e))?;
            // A fresh namespace (`rlnet run`): no default route to keep.
            bridge::configure_member(net.as_fd(), &spec.link_setup(MEMBER_LINK, false))
                .map_err(|e| err("cannot configure the member's link", &e))?;
            Ok((net, port.into_bytes()))
        })
    }

    /// Fork the agent that takes member `port` off the bridge: its port
    /// (gone already if its namespace died) and its guard.
    pub fn start_cleanup(&self, port: &str) -> Result<Agent, NsError> {
        let rules = nft_wire::batch(&guard::remove_member(port), 1);
        let port = port.to_string();
        // The agent must answer with an fd: the bridge namespace's own.
        let answer = self.ns.net.try_clone().map_err(ns::sys_io("dup"))?;
        ns::spawn_in(&self.ns, move || {
            // A member whose namespace ended took its veth pair with it.
            let _ = bridge::del_port(&port);
            nft::apply(&rules).map_err(|e| format!("cannot remove the guard of {port}: {e}"))?;
            Ok((answer, Vec::new()))
        })
    }
}
