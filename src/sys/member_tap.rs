//! A member's TAP on a named network, made inside its namespace by an agent
//! (tap0, tap1 … — a namespace may be on several networks) and configured
//! with the member's addresses. [`start`] only forks the agent: the event
//! loop watches it and turns its answer into a [`Tap`] with [`tap_from`],
//! so no flow waits while the agent works.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use super::netlink::{self, LinkSetup};
use super::ns::{self, Agent, AgentAnswer, NsError, NsHandles};
use super::tap::Tap;

/// TAP names tried in a member namespace.
const MAX_TAPS: usize = 16;

/// The member's link: its MAC, its addresses as (address, prefix length,
/// gateway), and the MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TapSpec {
    pub mtu: u32,
    pub mac: [u8; 6],
    pub v4: (Ipv4Addr, u8, Ipv4Addr),
    pub v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

impl TapSpec {
    /// How `ifname` is configured with these addresses.
    pub fn link_setup<'a>(&self, ifname: &'a str, keep_default_route: bool) -> LinkSetup<'a> {
        LinkSetup {
            ifname,
            mtu: self.mtu,
            mac: Some(self.mac),
            v4: Some(self.v4),
            v6: self.v6,
            keep_default_route,
        }
    }
}

/// Fork the agent that creates and configures the TAP inside `handles`.
pub fn start(handles: &NsHandles, spec: TapSpec) -> Result<Agent, NsError> {
    ns::spawn_in(handles, move || {
        let name = (0..MAX_TAPS)
            .map(|i| format!("tap{i}"))
            .find(|n| matches!(netlink::link_index(n), Ok(None)))
            .ok_or_else(|| format!("the namespace already has {MAX_TAPS} TAPs"))?;
        let tap = Tap::open(&name).map_err(|e| e.to_string())?;
        netlink::configure_link(&spec.link_setup(&name, true)).map_err(|e| e.to_string())?;
        Ok(answer(tap))
    })
}

/// What an agent that made `tap` sends back ([`tap_from`] reads it).
pub fn answer(tap: Tap) -> (OwnedFd, Vec<u8>) {
    let info = encode(tap.offload(), tap.name());
    (tap.into_fd(), info)
}

/// The TAP an agent sent back.
pub fn tap_from(answer: AgentAnswer) -> Result<Tap, NsError> {
    let (fd, info): (OwnedFd, Vec<u8>) = answer?;
    let (offload, name) =
        decode(&info).ok_or_else(|| NsError::Agent("malformed agent reply".into()))?;
    Ok(Tap::from_fd(fd, name, offload))
}

/// The agent's bytes: the offload flag, then the TAP's name.
pub(super) fn encode(offload: bool, name: &str) -> Vec<u8> {
    let mut info = vec![u8::from(offload)];
    info.extend_from_slice(name.as_bytes());
    info
}

fn decode(info: &[u8]) -> Option<(bool, String)> {
    let (offload, name) = info.split_first()?;
    Some((*offload == 1, String::from_utf8_lossy(name).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_round_trips() {
        assert_eq!(
            decode(&encode(true, "tap3")),
            Some((true, "tap3".to_string()))
        );
        assert!(!decode(&encode(false, "tap0")).unwrap().0);
        assert_eq!(decode(&[]), None);
    }
}
