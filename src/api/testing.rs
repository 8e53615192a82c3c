//! What the API's unit tests share: the default link and terse parsers.

use std::net::IpAddr;

use crate::config::AddrPlan;
use crate::forward::spec::PublishSpec;

pub(super) fn plan() -> AddrPlan {
    AddrPlan::default()
}

pub(super) fn spec(s: &str) -> PublishSpec {
    s.parse().unwrap()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
