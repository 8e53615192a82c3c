//! The only module with `unsafe`: raw syscalls, ioctls and namespace entry.
//! Everything here is wrapped in safe functions; every `unsafe` block says
//! why it is sound in a `// SAFETY:` comment.
#![allow(unsafe_code)]

pub mod bridge;
pub mod helper;
pub mod host;
pub mod member_tap;
pub mod netlink;
pub mod nft;
pub mod ns;
pub mod os;
pub mod sandbox;
pub mod seccomp;
pub mod tap;
pub mod watch;
