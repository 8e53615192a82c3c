//! rlnet gives an unprivileged network namespace a real network.
//!
//! Layers, from the outside in:
//! - [`cli`] turns argv (slirp4netns-compatible or native) into a pure [`config::Config`].
//! - [`app`] orchestrates one run: find or create the namespace, obtain its TAP
//!   through a short-lived agent inside it ([`sys::ns`]), then hand everything to
//!   the event loop.
//! - [`engine`] is the single-threaded data plane: it reads frames from the TAP
//!   ([`sys::tap`]), answers L2 itself ([`wire`]), terminates TCP in smoltcp with
//!   one socket set per flow ([`stack`], [`nat`]) and relays to host sockets.
//! - [`dns`] is the DNS stub at N+3; [`network`] runs named networks (one
//!   engine per network, members switched at L2).
//! - [`sys`] is the only module with `unsafe`: raw syscalls, ioctls, namespaces.
//! - [`check`] judges what `rlnet check` finds out about the host.
//!
//! docs/architecture.md has the parts, their import rules (checked by
//! tests/architecture.rs) and one packet's path through them.
#![deny(unsafe_code)]
// Functions stay short (clippy.toml: 80 lines of code); tests/architecture.rs
// checks the same with comments counted, test code excepted.
#![cfg_attr(not(test), deny(clippy::too_many_lines))]

pub mod api;
pub mod app;
pub mod check;
pub mod cli;
pub mod config;
pub mod dhcp;
pub mod dns;
pub mod engine;
pub mod error;
pub mod event;
pub mod forward;
pub mod log;
pub mod model;
pub mod nat;
pub mod network;
pub mod stack;
pub mod sys;
pub mod wire;

pub use error::Error;
