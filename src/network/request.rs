//! What the named-network commands ask for: `rlnet network ...`, `rlnet
//! attach`, `rlnet detach` and `rlnet run --network`. `cli` builds these
//! values from argv; [`super::command`], [`super::daemon`] and [`super::run`]
//! carry them out. Plain values: no I/O here, and nothing from `cli`.

use crate::api::{AttachRequest, MemberRef};
use crate::config::Ipv4Net;

/// `rlnet network create NAME [--subnet CIDR] [--internal]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub subnet: Option<Ipv4Net>,
    pub internal: bool,
    pub ipv6: bool,
}

/// One named-network command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkCommand {
    Create(CreateSpec),
    List {
        json: bool,
    },
    Inspect {
        name: String,
        json: bool,
    },
    Remove {
        names: Vec<String>,
        force: bool,
    },
    Attach {
        network: String,
        request: AttachRequest,
        json: bool,
    },
    Detach {
        network: String,
        member: MemberRef,
    },
}

/// `rlnet run --network NAME [--name N] [--alias A]... [-p SPEC]... -- COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRun {
    pub network: String,
    pub argv: Vec<String>,
    /// The attachment (its `pid` is filled in once COMMAND's namespace exists).
    pub request: AttachRequest,
    /// Give COMMAND a resolv.conf pointing at the network's DNS stub.
    pub dns: bool,
}
