//! The API socket: slirp4netns's JSON protocol plus rlnet's verbs.
//!
//! [`protocol`] is pure (bytes in, bytes out) so every bad input is unit-tested
//! without a socket; the server around it owns I/O, deadlines and the table.
//! The contract is written down in `docs/api.md`.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{
    AddressStatus, Addresses, ApiError, AttachRequest, ClientRequest, Counters, Entry, Framing,
    HostfwdField, MAX_REQUEST, Member as MemberRef, MemberInfo, Reply, Request, Status, Verb,
    attach_body, check_size, encode, error_body, framing, list_body, members_body, ok_empty, ok_id,
    ok_ids, parse_reply, parse_request, reply_entries, reply_ids, reply_status, status_body,
    valid_member_name,
};
