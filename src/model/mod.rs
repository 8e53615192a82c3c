//! Pure values of named networks: the address plan and allocation (IPAM)
//! and what the switch knows about a member. No I/O and no fds here: the
//! engine and the network commands build on these, never the other way
//! round (nat's address policy takes the pool from here too).

pub mod guard;
pub mod icmpv6;
pub mod ipam;
pub mod member;
pub mod spin;
