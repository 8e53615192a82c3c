//! Named networks: several namespaces on one userspace L2 segment, each
//! network a daemon of its own, isolated from every other network.

pub mod command;
pub mod daemon;
pub mod registry;
pub mod request;
pub mod run;
