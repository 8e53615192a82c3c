//! The API socket (docs/api.md): slirp4netns's JSON protocol plus rlnet's
//! verbs.
//!
//! [`request`] and [`reply`] are pure (bytes in, bytes out) so every bad
//! input is unit-tested without a socket; the [`server`] around them owns
//! I/O, deadlines and the table. [`client`] is the other end: what rlnet's
//! own commands send and how they read the answer.

pub mod client;
pub mod reply;
pub mod request;
pub mod server;
#[cfg(test)]
mod testing;

pub use client::{
    ClientRequest, Reply, ReplyError, encode, parse_reply, reply_entries, reply_ids, reply_status,
};
pub use reply::{
    AddressStatus, Addresses, Counters, Entry, MemberInfo, Status, attach_body, error_body,
    list_body, members_body, ok_empty, ok_id, ok_ids, status_body,
};
pub use request::{
    ApiError, AttachRequest, Framing, HostfwdField, MAX_REQUEST, Member as MemberRef, Request,
    Verb, check_size, framing, parse_request, valid_member_name,
};
