//! Published ports (SPEC §4): `-p/--publish` specs and, later, the host-side
//! listeners that feed them into the namespace.

pub mod spec;

pub use spec::{PortRange, Proto, PublishSpec, SpecError};
