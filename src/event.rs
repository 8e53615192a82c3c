//! The event loop's shared vocabulary: how an epoll token names what became
//! ready ([`Kind`] and an index), and the context ([`Ctx`]) a flow is
//! serviced with. The engine owns the loop; the flows (`nat/`, `forward/`)
//! register their sockets with these tokens and get a `Ctx` when the engine
//! hands them an event. Both import this module, and it imports neither,
//! so the flows never depend on the engine.

use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use mio::{Interest, Registry, Token};
use slab::Slab;
use smoltcp::iface::Interface;
use smoltcp::phy::DeviceCapabilities;
use smoltcp::time::Instant;

use crate::nat::policy::{Outbound, Policy};
use crate::stack::TapOut;
use crate::stack::frames::Current;

/// The engine's own sources, one each; everything indexed starts at
/// [`FLOW_TOKEN_BASE`].
pub const SIGNALS: Token = Token(1);
pub const TARGET: Token = Token(2);
pub const EXIT_FD: Token = Token(3);
pub const CHILD: Token = Token(4);
pub const API: Token = Token(5);
/// pasta mode: the `--netns` file's directory changed.
pub const WATCH: Token = Token(6);
/// Start-up: the socket factory's word, which the engine waits for while
/// it already serves the namespace.
pub const WORD: Token = Token(7);

/// Tokens below this belong to the engine (TAP, signals, ...).
pub const FLOW_TOKEN_BASE: usize = 16;
/// Room for this many kinds; the kind is the token modulo this.
const KINDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Host socket of a TCP flow (either direction).
    Tcp = 0,
    /// Host socket of an outbound UDP flow.
    Udp = 1,
    /// Ping socket.
    Icmp = 2,
    /// Published-port listener (TCP or UDP).
    Listener = 3,
    /// Spliced connection, host side / namespace side.
    SpliceHost = 4,
    SpliceNs = 5,
    /// Splice-mode UDP socket inside the namespace.
    UdpNs = 6,
    /// A client of the API socket.
    ApiClient = 7,
    /// A socket of the DNS stub.
    Dns = 8,
    /// A namespace's TAP ("port").
    Tap = 9,
    /// A named-network member's pidfd (its process exited).
    Member = 10,
    /// A helper process's pidfd (a namespace agent, a TAP being closed):
    /// it has exited.
    Job = 11,
}

const ALL: [Kind; 12] = [
    Kind::Tcp,
    Kind::Udp,
    Kind::Icmp,
    Kind::Listener,
    Kind::SpliceHost,
    Kind::SpliceNs,
    Kind::UdpNs,
    Kind::ApiClient,
    Kind::Dns,
    Kind::Tap,
    Kind::Member,
    Kind::Job,
];

pub fn token(kind: Kind, idx: usize) -> Token {
    Token(FLOW_TOKEN_BASE + idx * KINDS + kind as usize)
}

/// Re-register a connection's socket `src` under `t`: for writing always,
/// for reading only if `read` (back-pressure: a socket whose bytes the
/// other side cannot take yet is not read). 1 if reading stopped, for the
/// `read_pauses` counter.
pub fn rewatch(
    registry: &Registry,
    src: &mut impl mio::event::Source,
    t: Token,
    read: bool,
) -> u64 {
    let interest = if read {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::WRITABLE
    };
    let _ = registry.reregister(src, t, interest);
    u64::from(!read)
}

pub fn from_token(t: Token) -> Option<(Kind, usize)> {
    let v = t.0.checked_sub(FLOW_TOKEN_BASE)?;
    let kind = *ALL.get(v % KINDS)?;
    Some((kind, v / KINDS))
}

/// Everything a flow needs from the engine while it is being serviced.
pub struct Ctx<'a> {
    pub iface: &'a mut Interface,
    /// One TAP per namespace on this link ("port"); flows know theirs.
    pub outs: &'a mut Slab<TapOut>,
    pub caps: &'a DeviceCapabilities,
    pub registry: &'a Registry,
    pub policy: &'a Policy,
    pub outbound: Outbound,
    pub now: Instant,
    /// Which port owns a namespace-side address (members of a network).
    pub ports_by_ip: &'a HashMap<IpAddr, usize>,
    /// The port for everything else (the one namespace of the slirp4netns
    /// form); None on a named network.
    pub default_port: Option<usize>,
    /// The TAP frame being processed, for flows to hold payload of
    /// ([`crate::stack::frames`]).
    pub current: &'a Rc<Current>,
}

impl Ctx<'_> {
    pub fn out(&mut self, port: usize) -> Option<&mut TapOut> {
        self.outs.get_mut(port)
    }

    /// The port of the namespace that owns `ip`.
    pub fn port_for(&self, ip: IpAddr) -> Option<usize> {
        self.ports_by_ip.get(&ip).copied().or(self.default_port)
    }

    /// True when `port`'s TAP refuses writes for now.
    pub fn blocked(&self, port: usize) -> bool {
        self.outs.get(port).is_some_and(|o| o.blocked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_clear_of_the_engines_own() {
        for (i, kind) in ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "ALL is in discriminant order");
            for idx in [0, 1, 7, 65535, 1 << 40] {
                let t = token(*kind, idx);
                assert!(t.0 >= FLOW_TOKEN_BASE);
                assert_eq!(from_token(t), Some((*kind, idx)));
            }
        }
        for own in [SIGNALS, TARGET, EXIT_FD, CHILD, API] {
            assert_eq!(from_token(own), None);
        }
        // Unused kinds decode to nothing.
        assert_eq!(from_token(Token(FLOW_TOKEN_BASE + ALL.len())), None);
    }
}
