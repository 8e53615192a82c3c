//! Published ports (man/rlnet.1, `-p/--publish`; docs/api.md for the API
//! verbs): the specs ([`spec`]), the rule table ([`table`]), and the
//! host-side listeners that feed connections and datagrams into the
//! namespace ([`publish`], with [`splice`] for splice mode).

pub mod auto;
pub mod ports;
pub mod publish;
pub mod spec;
pub mod splice;
pub mod table;

pub use spec::{Mode, PortRange, Proto, PublishSpec, SpecError};
pub use table::{PortTable, Rule, RuleId, TableError};
