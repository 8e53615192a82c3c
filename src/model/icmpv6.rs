//! ICMPv6 message and option types that the switch's source checks
//! (`wire/ndp.rs`) and the bridge's guard (`model/guard.rs`) both judge:
//! one list, so the two kinds of member are held to the same messages.

/// ICMPv6 types (RFC 4443, RFC 4861, RFC 2710, RFC 3810).
pub const RS: u8 = 133;
pub const RA: u8 = 134;
pub const NS: u8 = 135;
pub const NA: u8 = 136;
pub const REDIRECT: u8 = 137;
pub const MLD: [u8; 4] = [130, 131, 132, 143];
/// Source / target link-layer address options.
pub const OPT_SLLA: u8 = 1;
pub const OPT_TLLA: u8 = 2;
/// The nonce option (RFC 3971, used by DAD, RFC 7527).
pub const OPT_NONCE: u8 = 14;
