//! Published ports (SPEC §4): `-p/--publish` specs and, later, the host-side
//! listeners that feed them into the namespace.

pub mod publish;
pub mod spec;
pub mod splice;
pub mod table;

pub use spec::{Mode, PortRange, Proto, PublishSpec, SpecError};
pub use table::{PortTable, Rule, RuleId, TableError};
