//! The API socket's requests (docs/api.md), pure: bytes in, a validated
//! [`Request`] or the [`ApiError`] to answer with, so every bad input is
//! unit-tested without a socket.
//!
//! Requests are `{"execute": VERB, "arguments": {...}}`. Parsing is as
//! lenient as slirp4netns's parson (leading whitespace, a trailing newline,
//! trailing garbage after the first value) and its error texts are kept word
//! for word, because Podman and RootlessKit show them to users.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::reply::error_body;
use crate::config::AddrPlan;
use crate::forward::spec::{Mode, PortRange, Proto, PublishSpec};
use crate::forward::table::{RuleId, TableError};

/// slirp4netns answers "too large message" when its single 4096-byte read
/// comes back full, so a request must be at most 4095 bytes.
pub const MAX_REQUEST: usize = 4096;

/// The `execute` values rlnet knows; anything else is `unknown execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    AddHostfwd,
    ListHostfwd,
    RemoveHostfwd,
    AddPublish,
    RemovePublish,
    Status,
    Attach,
    Detach,
    ListAttached,
    Shutdown,
    NetworkUserns,
}

impl Verb {
    pub const ALL: [Verb; 11] = [
        Verb::AddHostfwd,
        Verb::ListHostfwd,
        Verb::RemoveHostfwd,
        Verb::AddPublish,
        Verb::RemovePublish,
        Verb::Status,
        Verb::Attach,
        Verb::Detach,
        Verb::ListAttached,
        Verb::Shutdown,
        Verb::NetworkUserns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::AddHostfwd => "add_hostfwd",
            Verb::ListHostfwd => "list_hostfwd",
            Verb::RemoveHostfwd => "remove_hostfwd",
            Verb::AddPublish => "add_publish",
            Verb::RemovePublish => "remove_publish",
            Verb::Status => "status",
            Verb::Attach => "attach",
            Verb::Detach => "detach",
            Verb::ListAttached => "list_attached",
            Verb::Shutdown => "shutdown",
            Verb::NetworkUserns => "network_userns",
        }
    }

    /// Case-sensitive, as slirp4netns compares with `strcmp`.
    pub fn from_execute(s: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// slirp4netns's verb: one port, `spec.host_ip` always `Some`
    /// (a missing `host_addr` means 0.0.0.0, as in slirp4netns).
    AddHostfwd {
        spec: PublishSpec,
        guest: Option<IpAddr>,
    },
    ListHostfwd,
    RemoveHostfwd {
        id: RuleId,
    },
    /// rlnet's verb: several specs (ranges, IPv6), bound all or nothing.
    /// `mode: None` = the instance's default; `to` names the target member
    /// on a named network.
    AddPublish {
        specs: Vec<PublishSpec>,
        mode: Option<Mode>,
        to: Option<String>,
    },
    /// Non-empty, no duplicates (checked here); unknown ids are the table's.
    RemovePublish {
        ids: Vec<RuleId>,
    },
    Status,
    /// Named networks: put a namespace on this network.
    Attach(AttachRequest),
    /// Named networks: take a member off, by name or by PID.
    Detach(Member),
    ListAttached,
    /// Stop the network daemon; with members only when `force`.
    Shutdown {
        force: bool,
    },
    /// Named networks: the user namespace that `rlnet run --network`
    /// creates its command's namespaces under, so the network's kernel
    /// switch can give it a veth (docs/kernel-switching.md). The answer
    /// carries the namespace's fd (SCM_RIGHTS).
    NetworkUserns,
}

/// Which namespace to attach, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachRequest {
    /// PID mode: the namespaces of this process; detached when it exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Path mode: a network namespace file (and its user namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
}

/// A member, as `detach` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Name(String),
    Pid(u32),
}

impl Request {
    pub fn verb(&self) -> Verb {
        match self {
            Request::AddHostfwd { .. } => Verb::AddHostfwd,
            Request::ListHostfwd => Verb::ListHostfwd,
            Request::RemoveHostfwd { .. } => Verb::RemoveHostfwd,
            Request::AddPublish { .. } => Verb::AddPublish,
            Request::RemovePublish { .. } => Verb::RemovePublish,
            Request::Status => Verb::Status,
            Request::Attach(_) => Verb::Attach,
            Request::Detach(_) => Verb::Detach,
            Request::ListAttached => Verb::ListAttached,
            Request::Shutdown { .. } => Verb::Shutdown,
            Request::NetworkUserns => Verb::NetworkUserns,
        }
    }
}

/// `add_hostfwd`'s arguments, in the order slirp4netns validates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostfwdField {
    Proto,
    HostAddr,
    HostPort,
    GuestAddr,
    GuestPort,
}

impl fmt::Display for HostfwdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostfwdField::Proto => "proto",
            HostfwdField::HostAddr => "host_addr",
            HostfwdField::HostPort => "host_port",
            HostfwdField::GuestAddr => "guest_addr",
            HostfwdField::GuestPort => "guest_port",
        })
    }
}

/// Every error the API answers with; `Display` is the exact `desc`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    #[error("bad request: cannot parse JSON")]
    Parse,
    #[error("bad request: json_object() failed")]
    NotObject,
    #[error("bad request: no execute found")]
    NoExecute,
    #[error("bad request: unknown execute")]
    UnknownExecute,
    #[error("bad request: too large message")]
    TooLarge,
    #[error("bad request: add_hostfwd: bad arguments.{0}")]
    AddHostfwdArg(HostfwdField),
    /// slirp4netns's text for a refused forward, with rlnet's reason after it.
    #[error("bad request: add_hostfwd: slirp_add_hostfwd failed: {0}")]
    AddHostfwdFailed(String),
    #[error("bad request: remove_hostfwd: bad arguments.id")]
    RemoveHostfwdId,
    /// A bad argument of an rlnet verb; these say what is wrong.
    #[error("bad request: {verb}: bad arguments.{field}: {detail}")]
    BadArg {
        verb: Verb,
        field: &'static str,
        detail: String,
    },
    /// A well-formed request of an rlnet verb that could not be carried out.
    #[error("bad request: {verb}: {reason}")]
    Failed { verb: Verb, reason: String },
}

impl ApiError {
    /// The reply body: `{"error":{"desc":"..."}}`.
    pub fn body(&self) -> Vec<u8> {
        error_body(&self.to_string())
    }

    /// A request that parsed but could not be carried out (a bind failed,
    /// say), worded the way `verb` words failures.
    pub fn failed(verb: Verb, reason: impl fmt::Display) -> ApiError {
        match verb {
            Verb::AddHostfwd => ApiError::AddHostfwdFailed(reason.to_string()),
            Verb::RemoveHostfwd => ApiError::RemoveHostfwdId,
            _ => ApiError::Failed {
                verb,
                reason: reason.to_string(),
            },
        }
    }

    /// The table refused `verb`'s request. `remove_hostfwd` keeps
    /// slirp4netns's one text for every refusal (unknown id included).
    pub fn from_table(verb: Verb, err: &TableError) -> ApiError {
        ApiError::failed(verb, err)
    }
}

/// Errors if a request of `len` bytes is too large; the server checks this
/// as bytes arrive, before parsing.
pub fn check_size(len: usize) -> Result<(), ApiError> {
    if len >= MAX_REQUEST {
        Err(ApiError::TooLarge)
    } else {
        Ok(())
    }
}

/// Whether a partly read request can be answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Keep reading (until EOF or the deadline, then answer anyway).
    NeedMore,
    /// The first JSON value is complete, or the bytes can never become
    /// valid JSON: answer now, even if the client has not shut down its
    /// write side (slirp4netns answers after one read).
    Ready,
    /// At or over [`MAX_REQUEST`]: answer `too large message`.
    TooLarge,
}

/// Decides, from the bytes read so far, whether to answer. Costs one parse
/// of at most [`MAX_REQUEST`] bytes per call.
pub fn framing(buf: &[u8]) -> Framing {
    if check_size(buf.len()).is_err() {
        return Framing::TooLarge;
    }
    let Some(start) = buf.iter().position(|b| !b" \t\r\n".contains(b)) else {
        return Framing::NeedMore;
    };
    let rest = &buf[start..];
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
    match values.next() {
        None => Framing::NeedMore,
        // A complete value. A bare number at the end may still grow ("42"
        // then "3"), but it is not an object either way: the answer
        // (`json_object() failed`) is the same, so it is given at once.
        Some(Ok(_)) => Framing::Ready,
        Some(Err(e)) if e.is_eof() => Framing::NeedMore,
        // serde_json calls an unfinished number ("-", "4.", "1e") invalid
        // rather than cut short; more bytes may complete it.
        Some(Err(_)) if rest.iter().all(|b| b"-+.eE0123456789".contains(b)) => Framing::NeedMore,
        Some(Err(_)) => Framing::Ready,
    }
}

/// Parses and validates one request. `plan` is the link's address plan:
/// explicit guest addresses must be usable namespace addresses in it.
pub fn parse_request(buf: &[u8], plan: &AddrPlan) -> Result<Request, ApiError> {
    check_size(buf.len())?;
    let value = first_value(buf).ok_or(ApiError::Parse)?;
    let Value::Object(obj) = value else {
        return Err(ApiError::NotObject);
    };
    let Some(Value::String(execute)) = obj.get("execute") else {
        return Err(ApiError::NoExecute);
    };
    let verb = Verb::from_execute(execute).ok_or(ApiError::UnknownExecute)?;
    // A non-object `arguments` is treated like a missing one, as parson's
    // dotted lookups do.
    let args = Args(obj.get("arguments").and_then(Value::as_object));
    match verb {
        Verb::AddHostfwd => parse_add_hostfwd(args, plan),
        Verb::ListHostfwd => Ok(Request::ListHostfwd),
        Verb::RemoveHostfwd => {
            let id = args.get("id").and_then(id_value);
            id.map(|id| Request::RemoveHostfwd { id })
                .ok_or(ApiError::RemoveHostfwdId)
        }
        Verb::AddPublish => parse_add_publish(args, plan),
        Verb::RemovePublish => parse_remove_publish(args),
        Verb::Status => Ok(Request::Status),
        Verb::Attach => parse_attach(args),
        Verb::Detach => parse_detach(args),
        Verb::ListAttached => Ok(Request::ListAttached),
        Verb::Shutdown => Ok(Request::Shutdown {
            force: args.get("force").and_then(Value::as_bool).unwrap_or(false),
        }),
        Verb::NetworkUserns => Ok(Request::NetworkUserns),
    }
}

fn parse_attach(args: Args<'_>) -> Result<Request, ApiError> {
    let bad = |field, detail: &str| ApiError::BadArg {
        verb: Verb::Attach,
        field,
        detail: detail.to_string(),
    };
    let obj = args
        .0
        .ok_or_else(|| bad("pid", "give the pid (or netns) of the namespace to attach"))?;
    let req: AttachRequest = serde_json::from_value(Value::Object(obj.clone()))
        .map_err(|e| bad("arguments", &e.to_string()))?;
    match (&req.pid, &req.netns) {
        (Some(0), _) => return Err(bad("pid", "must be a positive integer")),
        (None, None) => {
            return Err(bad(
                "pid",
                "give the pid (or netns) of the namespace to attach",
            ));
        }
        (Some(_), Some(_)) => return Err(bad("netns", "give either pid or netns, not both")),
        _ => {}
    }
    for n in req.name.iter().chain(req.aliases.iter()) {
        if !valid_member_name(n) {
            return Err(bad(
                "name",
                &format!(
                    "{n:?} is not a valid name: use letters, digits, '-' and '.', up to 63 characters"
                ),
            ));
        }
    }
    for spec in &req.publish {
        spec.parse::<PublishSpec>()
            .map_err(|e| bad("publish", &format!("{spec:?}: {e}")))?;
    }
    Ok(Request::Attach(req))
}

fn parse_detach(args: Args<'_>) -> Result<Request, ApiError> {
    match (
        args.get("name").and_then(Value::as_str),
        args.get("pid")
            .and_then(Value::as_u64)
            .map(|p| u32::try_from(p).ok().filter(|&p| p > 0)),
    ) {
        (Some(n), None) => Ok(Request::Detach(Member::Name(n.to_string()))),
        (None, Some(Some(p))) => Ok(Request::Detach(Member::Pid(p))),
        _ => Err(ApiError::BadArg {
            verb: Verb::Detach,
            field: "name",
            detail: "give the member's name or its pid".into(),
        }),
    }
}

/// A member name or alias: a DNS label, or several joined by dots.
pub fn valid_member_name(n: &str) -> bool {
    (1..=63).contains(&n.len())
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[derive(Clone, Copy)]
struct Args<'a>(Option<&'a Map<String, Value>>);

impl<'a> Args<'a> {
    /// The argument, with JSON `null` treated as absent.
    fn get(self, key: &str) -> Option<&'a Value> {
        self.0?.get(key).filter(|v| !v.is_null())
    }
}

fn parse_add_hostfwd(args: Args<'_>, plan: &AddrPlan) -> Result<Request, ApiError> {
    use HostfwdField as F;
    let bad = ApiError::AddHostfwdArg;
    let proto = match args.get("proto").and_then(Value::as_str) {
        Some("tcp") => Proto::Tcp,
        Some("udp") => Proto::Udp,
        _ => return Err(bad(F::Proto)),
    };
    let host = optional_addr(args.get("host_addr"))
        .map_err(|()| bad(F::HostAddr))?
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if host.to_canonical().is_ipv6() && plan.v6.is_none() {
        return Err(bad(F::HostAddr));
    }
    let host_port = args.get("host_port").and_then(port_value);
    let host_port = host_port.ok_or(bad(F::HostPort))?;
    let guest = optional_addr(args.get("guest_addr")).map_err(|()| bad(F::GuestAddr))?;
    if guest.is_some_and(|g| !usable_guest(g, host, plan)) {
        return Err(bad(F::GuestAddr));
    }
    let guest_port = args.get("guest_port").and_then(port_value);
    let guest_port = guest_port.ok_or(bad(F::GuestPort))?;
    Ok(Request::AddHostfwd {
        spec: PublishSpec {
            host_ip: Some(host),
            host_ports: PortRange::single(host_port),
            ns_ports: PortRange::single(guest_port),
            proto,
        },
        guest,
    })
}

fn parse_add_publish(args: Args<'_>, plan: &AddrPlan) -> Result<Request, ApiError> {
    let bad = |field, detail: String| ApiError::BadArg {
        verb: Verb::AddPublish,
        field,
        detail,
    };
    let shape = || {
        bad(
            "publish",
            r#"expected a non-empty list of specs like ["8080:80", "[::1]:9000-9009:9000-9009/udp"]"#
                .to_string(),
        )
    };
    let list = args
        .get("publish")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(shape)?;
    let mut specs = Vec::with_capacity(list.len());
    for item in list {
        let text = item.as_str().ok_or_else(shape)?;
        let spec: PublishSpec = text
            .parse()
            .map_err(|e| bad("publish", format!("{text:?}: {e}")))?;
        if spec.host_ip.is_some_and(|ip| ip.to_canonical().is_ipv6()) && plan.v6.is_none() {
            return Err(bad(
                "publish",
                format!("{text:?}: IPv6 is disabled on this network (--disable-ipv6)"),
            ));
        }
        specs.push(spec);
    }
    let mode = match args.get("mode") {
        None => None,
        Some(v) => {
            let mode = v.as_str().and_then(|s| s.parse::<Mode>().ok());
            Some(mode.ok_or_else(|| bad("mode", r#"use "stack" or "splice""#.to_string()))?)
        }
    };
    let to = match args.get("to") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(bad("to", "expected the name of a member".to_string())),
    };
    Ok(Request::AddPublish { specs, mode, to })
}

fn parse_remove_publish(args: Args<'_>) -> Result<Request, ApiError> {
    let shape = || ApiError::BadArg {
        verb: Verb::RemovePublish,
        field: "ids",
        detail: "expected a non-empty list of rule ids like [1, 2]".to_string(),
    };
    let list = args
        .get("ids")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(shape)?;
    let mut ids: Vec<RuleId> = Vec::with_capacity(list.len());
    for item in list {
        let id = id_value(item).ok_or_else(shape)?;
        if ids.contains(&id) {
            return Err(ApiError::from_table(
                Verb::RemovePublish,
                &TableError::DuplicateId(id),
            ));
        }
        ids.push(id);
    }
    Ok(Request::RemovePublish { ids })
}

/// The first JSON value in `buf`, ignoring whatever follows it (parson
/// does); `None` for empty or malformed input.
pub(super) fn first_value(buf: &[u8]) -> Option<Value> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Strict>();
    match values.next() {
        Some(Ok(Strict(v))) => Some(v),
        _ => None,
    }
}

/// Missing, `null` or `""` → `Ok(None)` (slirp4netns's default); a string
/// that is not an IP address, or any other type → `Err`.
fn optional_addr(v: Option<&Value>) -> Result<Option<IpAddr>, ()> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// A JSON number with an integral value in `1..=max`. slirp4netns truncates
/// floats and wraps out-of-range values; rlnet refuses them instead.
// The float is checked integral and within 1..=max before it is cast.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn integral(v: &Value, max: u64) -> Option<u64> {
    let Value::Number(n) = v else {
        return None;
    };
    let n = match n.as_u64() {
        Some(u) => u,
        None => {
            // Negative integers fall through to here and fail the range check.
            let f = n.as_f64()?;
            if f.fract() != 0.0 || !(1.0..=max as f64).contains(&f) {
                return None;
            }
            f as u64
        }
    };
    (1..=max).contains(&n).then_some(n)
}

fn port_value(v: &Value) -> Option<u16> {
    integral(v, u64::from(u16::MAX)).and_then(|p| u16::try_from(p).ok())
}

/// Ids beyond 2^53 cannot round-trip through JSON numbers in every client.
fn id_value(v: &Value) -> Option<RuleId> {
    integral(v, 1 << 53)
}

/// An explicit `guest_addr` must be a namespace address of the link: inside
/// its subnet, not the network, broadcast, gateway or DNS address, and of
/// the host address's family (rlnet does not translate between families).
fn usable_guest(guest: IpAddr, host: IpAddr, plan: &AddrPlan) -> bool {
    if guest.is_ipv4() != host.to_canonical().is_ipv4() {
        return false;
    }
    match guest {
        IpAddr::V4(a) => {
            plan.net4.contains(a)
                && a != plan.net4.addr
                && a != plan.net4.broadcast()
                && a != plan.gateway4
                && a != plan.dns4
        }
        IpAddr::V6(a) => plan.v6.is_some_and(|v6| {
            plan.in_subnet(guest) && a != v6.prefix && a != v6.gateway6 && a != v6.dns6
        }),
    }
}

/// A JSON value that refuses duplicate object keys, as parson does (it fails
/// the whole parse), so `{"id":1,"id":2}` has one meaning: none.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::parse_reply;
    use crate::api::reply::{MAX_DESC, error_body, ok_empty, ok_id};
    use crate::api::testing::{ip, plan, spec};
    use crate::config::default_net4;

    const PODMAN: &str = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"tcp\",\"host_addr\":\"0.0.0.0\",\"host_port\":8080,\"guest_addr\":\"\",\"guest_port\":80}}\n";
    const ROOTLESSKIT: &str = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"tcp\",\"host_addr\":\"127.0.0.1\",\"host_port\":8080,\"guest_addr\":\"10.0.2.100\",\"guest_port\":80}}\n";

    fn req(s: &str) -> Result<Request, ApiError> {
        parse_request(s.as_bytes(), &plan())
    }

    fn err(s: &str) -> ApiError {
        match req(s) {
            Ok(r) => panic!("{s:?} should fail, got {r:?}"),
            Err(e) => e,
        }
    }

    fn desc(s: &str) -> String {
        err(s).to_string()
    }

    /// An add_hostfwd request with `field` replaced by raw JSON `value`
    /// (or removed when `value` is None).
    fn hostfwd_with(field: &str, value: Option<&str>) -> String {
        let mut args = vec![
            ("proto", "\"tcp\""),
            ("host_addr", "\"0.0.0.0\""),
            ("host_port", "8080"),
            ("guest_addr", "\"\""),
            ("guest_port", "80"),
        ];
        match value {
            Some(v) => args
                .iter_mut()
                .filter(|(k, _)| *k == field)
                .for_each(|a| a.1 = v),
            None => args.retain(|(k, _)| *k != field),
        }
        let args: Vec<String> = args.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!(
            "{{\"execute\":\"add_hostfwd\",\"arguments\":{{{}}}}}",
            args.join(",")
        )
    }

    fn hostfwd(r: Result<Request, ApiError>) -> (PublishSpec, Option<IpAddr>) {
        match r {
            Ok(Request::AddHostfwd { spec, guest }) => (spec, guest),
            other => panic!("expected add_hostfwd, got {other:?}"),
        }
    }

    #[test]
    fn common_error_bodies_are_byte_exact() {
        for (e, body) in [
            (
                ApiError::Parse,
                r#"{"error":{"desc":"bad request: cannot parse JSON"}}"#,
            ),
            (
                ApiError::NotObject,
                r#"{"error":{"desc":"bad request: json_object() failed"}}"#,
            ),
            (
                ApiError::NoExecute,
                r#"{"error":{"desc":"bad request: no execute found"}}"#,
            ),
            (
                ApiError::UnknownExecute,
                r#"{"error":{"desc":"bad request: unknown execute"}}"#,
            ),
            (
                ApiError::TooLarge,
                r#"{"error":{"desc":"bad request: too large message"}}"#,
            ),
            (
                ApiError::AddHostfwdArg(HostfwdField::Proto),
                r#"{"error":{"desc":"bad request: add_hostfwd: bad arguments.proto"}}"#,
            ),
            (
                ApiError::RemoveHostfwdId,
                r#"{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}"#,
            ),
        ] {
            assert_eq!(String::from_utf8(e.body()).unwrap(), body);
        }
    }

    #[test]
    fn not_json() {
        for s in [
            "",
            " ",
            "\n",
            "{\"execute\":\"add_hos",
            "{\"execute\":\"list_hostfwd\"",
            "badjson",
            "{'execute':'list_hostfwd'}",
            "\0{\"execute\":\"list_hostfwd\"}",
            // parson rejects numbers that overflow a double too.
            "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":1e309}}",
            // Duplicate keys fail the parse, as in parson: no "last one wins".
            "{\"execute\":\"list_hostfwd\",\"execute\":\"status\"}",
            "{\"execute\":\"remove_hostfwd\",\"arguments\":{\"id\":1,\"id\":2}}",
        ] {
            assert_eq!(err(s), ApiError::Parse, "{s:?}");
        }
        let bad_utf8 = b"{\"execute\":\"list_\xff\"}";
        assert_eq!(parse_request(bad_utf8, &plan()), Err(ApiError::Parse));
        // Deep nesting is refused by the parser's recursion limit, no stack overflow.
        let deep = "[".repeat(3000);
        assert_eq!(err(&deep), ApiError::Parse);
        let deep = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
        assert_eq!(err(&deep), ApiError::Parse);
    }

    #[test]
    fn not_an_object() {
        for s in ["\"str\"", "[1]", "[]", "42", "null", "true", "  \"x\"\n"] {
            assert_eq!(err(s), ApiError::NotObject, "{s:?}");
        }
    }

    #[test]
    fn no_or_unknown_execute() {
        for s in [
            "{}",
            "{\"unexpectedjson\":42}",
            "{\"execute\":42}",
            "{\"execute\":null}",
            "{\"execute\":[\"list_hostfwd\"]}",
            "{\"Execute\":\"list_hostfwd\"}",
        ] {
            assert_eq!(err(s), ApiError::NoExecute, "{s:?}");
        }
        for s in [
            "{\"execute\":\"bad\"}",
            "{\"execute\":\"ADD_HOSTFWD\"}",
            "{\"execute\":\"\"}",
            "{\"execute\":\"list_hostfwd \"}",
            "{\"execute\":\"attach_all\"}",
        ] {
            assert_eq!(err(s), ApiError::UnknownExecute, "{s:?}");
        }
    }

    #[test]
    fn size_limit() {
        assert_eq!(check_size(0), Ok(()));
        assert_eq!(check_size(MAX_REQUEST - 1), Ok(()));
        assert_eq!(check_size(MAX_REQUEST), Err(ApiError::TooLarge));
        let mib = format!(
            "{{\"execute\":\"list_hostfwd\",\"x\":\"{}\"}}",
            "a".repeat(1 << 20)
        );
        assert_eq!(err(&mib), ApiError::TooLarge);
        assert_eq!(framing(mib.as_bytes()), Framing::TooLarge);
        // 4095 bytes is still fine (slirp4netns's read of 4096 came back short).
        let body = "{\"execute\":\"list_hostfwd\"}";
        let padded = format!("{body}{}", " ".repeat(MAX_REQUEST - 1 - body.len()));
        assert_eq!(padded.len(), MAX_REQUEST - 1);
        assert_eq!(req(&padded), Ok(Request::ListHostfwd));
        assert_eq!(err(&format!("{padded} ")), ApiError::TooLarge);
    }

    #[test]
    fn lenient_like_parson() {
        for s in [
            "{\"execute\":\"list_hostfwd\"}",
            "{\"execute\":\"list_hostfwd\"}\n",
            " \t\r\n{\"execute\":\"list_hostfwd\"}",
            "{\"execute\":\"list_hostfwd\"} trailing",
            "{\"execute\":\"list_hostfwd\"}}}garbage\0",
            "{\"execute\":\"list_hostfwd\",\"arguments\":42}",
            "{\"execute\":\"list_hostfwd\",\"arguments\":{\"x\":1},\"extra\":[]}",
        ] {
            assert_eq!(req(s), Ok(Request::ListHostfwd), "{s:?}");
        }
        assert_eq!(req("{\"execute\":\"status\"}"), Ok(Request::Status));
    }

    #[test]
    fn podman_request_and_reply() {
        let (spec, guest) = hostfwd(req(PODMAN));
        assert_eq!(spec, "0.0.0.0:8080:80/tcp".parse().unwrap());
        assert_eq!(guest, None);
        assert_eq!(ok_id(1), br#"{"return":{"id":1}}"#);
        assert_eq!(ok_id(42), br#"{"return":{"id":42}}"#);
    }

    #[test]
    fn rootlesskit_request_and_reply() {
        let (spec, guest) = hostfwd(req(ROOTLESSKIT));
        assert_eq!(spec, "127.0.0.1:8080:80/tcp".parse().unwrap());
        assert_eq!(guest, Some(ip("10.0.2.100")));
        let udp = ROOTLESSKIT
            .replace("\"tcp\"", "\"udp\"")
            .replace("127.0.0.1", "");
        let (spec, _) = hostfwd(req(&udp));
        assert_eq!(spec, "0.0.0.0:8080:80/udp".parse().unwrap());
        // RootlessKit unmarshals return.id as a number.
        let reply = parse_reply(&ok_id(7)).unwrap();
        assert!(reply["id"].is_u64());
        assert_eq!(ok_empty(), br#"{"return":{}}"#);
    }

    #[test]
    fn add_hostfwd_proto() {
        let proto = ApiError::AddHostfwdArg(HostfwdField::Proto);
        for s in [
            "{\"execute\":\"add_hostfwd\"}".to_string(),
            "{\"execute\":\"add_hostfwd\",\"arguments\":5}".to_string(),
            "{\"execute\":\"add_hostfwd\",\"arguments\":{}}".to_string(),
            hostfwd_with("proto", None),
            hostfwd_with("proto", Some("\"sctp\"")),
            hostfwd_with("proto", Some("\"TCP\"")),
            hostfwd_with("proto", Some("\"tcp6\"")),
            hostfwd_with("proto", Some("\"\"")),
            hostfwd_with("proto", Some("null")),
            hostfwd_with("proto", Some("42")),
            hostfwd_with("proto", Some("[\"tcp\"]")),
        ] {
            assert_eq!(err(&s), proto, "{s}");
        }
        assert_eq!(
            desc("{\"execute\":\"add_hostfwd\"}"),
            "bad request: add_hostfwd: bad arguments.proto"
        );
    }

    #[test]
    fn add_hostfwd_host_addr() {
        let bad = ApiError::AddHostfwdArg(HostfwdField::HostAddr);
        for v in [
            "\"bogus\"",
            "\"999.1.1.1\"",
            "\"localhost\"",
            "\" 0.0.0.0\"",
            "\"0.0.0.0 \"",
            "\"fe80::1%eth0\"",
            "\"[::1]\"",
            "5",
            "true",
        ] {
            assert_eq!(err(&hostfwd_with("host_addr", Some(v))), bad, "{v}");
        }
        assert_eq!(
            bad.to_string(),
            "bad request: add_hostfwd: bad arguments.host_addr"
        );
        for default in [None, Some("\"\""), Some("null")] {
            let (spec, _) = hostfwd(req(&hostfwd_with("host_addr", default)));
            assert_eq!(spec.host_ip, Some(ip("0.0.0.0")), "{default:?}");
        }
        // A superset of slirp4netns: IPv6 host addresses.
        let (spec, guest) = hostfwd(req(&hostfwd_with("host_addr", Some("\"::1\""))));
        assert_eq!(spec.host_ip, Some(ip("::1")));
        assert_eq!(guest, None);
        // ...unless the link has no IPv6.
        let no_v6 = AddrPlan::new(default_net4(), false);
        let s = hostfwd_with("host_addr", Some("\"::\""));
        assert_eq!(parse_request(s.as_bytes(), &no_v6), Err(bad.clone()));
        // A v4-mapped address is IPv4 traffic.
        let s = hostfwd_with("host_addr", Some("\"::ffff:127.0.0.1\""));
        assert!(parse_request(s.as_bytes(), &no_v6).is_ok());
    }

    #[test]
    fn add_hostfwd_ports() {
        for (field, f) in [
            ("host_port", HostfwdField::HostPort),
            ("guest_port", HostfwdField::GuestPort),
        ] {
            let bad = ApiError::AddHostfwdArg(f);
            for v in [
                None,
                Some("0"),
                Some("65536"),
                Some("70000"),
                Some("-1"),
                Some("-0.0"),
                Some("8080.5"),
                Some("0.5"),
                Some("1e10"),
                Some("18446744073709551617"),
                Some("\"80\""),
                Some("\"\""),
                Some("null"),
                Some("true"),
                Some("[80]"),
            ] {
                assert_eq!(err(&hostfwd_with(field, v)), bad, "{field} {v:?}");
            }
            assert_eq!(
                bad.to_string(),
                format!("bad request: add_hostfwd: bad arguments.{field}")
            );
            for (v, want) in [("1", 1), ("65535", 65535), ("8080.0", 8080), ("1e3", 1000)] {
                let (spec, _) = hostfwd(req(&hostfwd_with(field, Some(v))));
                let got = if field == "host_port" {
                    spec.host_ports
                } else {
                    spec.ns_ports
                };
                assert_eq!(got, PortRange::single(want), "{field} {v}");
            }
        }
    }

    #[test]
    fn add_hostfwd_guest_addr() {
        let bad = ApiError::AddHostfwdArg(HostfwdField::GuestAddr);
        for v in [
            "\"bogus\"",
            "\"10.0.2.2\"",
            "\"10.0.2.3\"",
            "\"10.0.2.0\"",
            "\"10.0.2.255\"",
            "\"192.168.1.1\"",
            "\"127.0.0.1\"",
            "\"fd00::100\"",
            "\"::ffff:10.0.2.100\"",
            "42",
        ] {
            assert_eq!(err(&hostfwd_with("guest_addr", Some(v))), bad, "{v}");
        }
        for (v, want) in [
            (None, None),
            (Some("\"\""), None),
            (Some("null"), None),
            (Some("\"10.0.2.100\""), Some(ip("10.0.2.100"))),
            (Some("\"10.0.2.15\""), Some(ip("10.0.2.15"))),
        ] {
            let (_, guest) = hostfwd(req(&hostfwd_with("guest_addr", v)));
            assert_eq!(guest, want, "{v:?}");
        }
        // IPv6 host address: the guest must be IPv6 in fd00::/64 too.
        let v6 = |guest: &str| {
            let s = hostfwd_with("host_addr", Some("\"::1\"")).replace(
                "\"guest_addr\":\"\"",
                &format!("\"guest_addr\":\"{guest}\""),
            );
            req(&s)
        };
        assert_eq!(hostfwd(v6("fd00::100")).1, Some(ip("fd00::100")));
        assert_eq!(hostfwd(v6("fd00::1234")).1, Some(ip("fd00::1234")));
        for g in ["fd00::2", "fd00::3", "fd00::", "fd01::100", "10.0.2.100"] {
            assert_eq!(v6(g), Err(bad.clone()), "{g}");
        }
        // --cidr moves the plan, and the check with it.
        let moved = AddrPlan::new("10.0.135.128/25".parse().unwrap(), true);
        let s = hostfwd_with("guest_addr", Some("\"10.0.135.228\""));
        assert!(parse_request(s.as_bytes(), &moved).is_ok());
        assert_eq!(req(&s), Err(bad));
    }

    #[test]
    fn add_hostfwd_fields_are_checked_in_slirp4netns_order() {
        let all_bad = "{\"execute\":\"add_hostfwd\",\"arguments\":{\"proto\":\"sctp\",\"host_addr\":\"x\",\"host_port\":0,\"guest_addr\":\"y\",\"guest_port\":0}}";
        let mut s = all_bad.to_string();
        for (fix_from, fix_to, next) in [
            ("", "", HostfwdField::Proto),
            ("\"sctp\"", "\"tcp\"", HostfwdField::HostAddr),
            ("\"x\"", "\"\"", HostfwdField::HostPort),
            (
                "\"host_port\":0",
                "\"host_port\":1",
                HostfwdField::GuestAddr,
            ),
            ("\"y\"", "\"\"", HostfwdField::GuestPort),
        ] {
            s = s.replacen(fix_from, fix_to, 1);
            assert_eq!(err(&s), ApiError::AddHostfwdArg(next), "{s}");
        }
        assert!(req(&s.replace("\"guest_port\":0", "\"guest_port\":2")).is_ok());
    }

    #[test]
    fn add_hostfwd_failures_keep_the_slirp4netns_prefix() {
        let e = ApiError::from_table(Verb::AddHostfwd, &TableError::UnknownId(1));
        assert!(matches!(e, ApiError::AddHostfwdFailed(_)));
        let e = ApiError::failed(Verb::AddHostfwd, "host port 8080/tcp is already in use");
        assert_eq!(
            e.to_string(),
            "bad request: add_hostfwd: slirp_add_hostfwd failed: host port 8080/tcp is already in use"
        );
    }

    #[test]
    fn remove_hostfwd() {
        let r = |args: &str| req(&format!("{{\"execute\":\"remove_hostfwd\"{args}}}"));
        assert_eq!(
            r(",\"arguments\":{\"id\":3}"),
            Ok(Request::RemoveHostfwd { id: 3 })
        );
        assert_eq!(
            r(",\"arguments\":{\"id\":3.0}"),
            Ok(Request::RemoveHostfwd { id: 3 })
        );
        for args in [
            "",
            ",\"arguments\":5",
            ",\"arguments\":{}",
            ",\"arguments\":{\"id\":\"1\"}",
            ",\"arguments\":{\"id\":0}",
            ",\"arguments\":{\"id\":-1}",
            ",\"arguments\":{\"id\":1.5}",
            ",\"arguments\":{\"id\":null}",
            ",\"arguments\":{\"id\":true}",
            ",\"arguments\":{\"id\":[1]}",
            ",\"arguments\":{\"id\":1e300}",
        ] {
            assert_eq!(r(args), Err(ApiError::RemoveHostfwdId), "{args}");
        }
        // Unknown ids are found by the table; the text stays slirp4netns's.
        let e = ApiError::from_table(Verb::RemoveHostfwd, &TableError::UnknownId(9));
        assert_eq!(
            e.to_string(),
            "bad request: remove_hostfwd: bad arguments.id"
        );
    }

    #[test]
    fn remove_publish() {
        let r = |ids: &str| {
            req(&format!(
                "{{\"execute\":\"remove_publish\",\"arguments\":{{\"ids\":{ids}}}}}"
            ))
        };
        assert_eq!(r("[2,1]"), Ok(Request::RemovePublish { ids: vec![2, 1] }));
        assert_eq!(
            r("[1,2,1]").unwrap_err().to_string(),
            "bad request: remove_publish: duplicate id 1"
        );
        for ids in ["[]", "1", "[\"1\"]", "[0]", "[1,-2]", "null", "{}"] {
            let e = r(ids).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("bad request: remove_publish: bad arguments.ids: "),
                "{ids}: {e}"
            );
        }
        assert!(req("{\"execute\":\"remove_publish\"}").is_err());
        let e = ApiError::from_table(Verb::RemovePublish, &TableError::UnknownId(9));
        assert_eq!(
            e.to_string(),
            "bad request: remove_publish: no rule with id 9"
        );
        let e = ApiError::from_table(Verb::RemovePublish, &TableError::DuplicateId(1));
        assert_eq!(e.to_string(), "bad request: remove_publish: duplicate id 1");
    }

    #[test]
    fn add_publish() {
        let r = |args: &str| {
            req(&format!(
                "{{\"execute\":\"add_publish\",\"arguments\":{args}}}"
            ))
        };
        assert_eq!(
            r(r#"{"publish":["8080:80","[::1]:9000-9009:9000-9009/udp"]}"#),
            Ok(Request::AddPublish {
                specs: vec![spec("8080:80"), spec("[::1]:9000-9009:9000-9009/udp")],
                mode: None,
                to: None,
            })
        );
        assert_eq!(
            r(r#"{"publish":["8080:80"],"mode":"splice","to":"db"}"#),
            Ok(Request::AddPublish {
                specs: vec![spec("8080:80")],
                mode: Some(Mode::Splice),
                to: Some("db".into()),
            })
        );
        assert_eq!(
            r(r#"{"publish":["8080:80"],"mode":null,"to":null}"#),
            Ok(Request::AddPublish {
                specs: vec![spec("8080:80")],
                mode: None,
                to: None,
            })
        );
        assert_eq!(
            r(r#"{"publish":["8080"]}"#).unwrap_err().to_string(),
            "bad request: add_publish: bad arguments.publish: \"8080\": missing the namespace port: \
             use HOST_PORT:NS_PORT, like 8080:80"
        );
        assert_eq!(
            r(r#"{"publish":["8080:80","0:80"]}"#)
                .unwrap_err()
                .to_string(),
            "bad request: add_publish: bad arguments.publish: \"0:80\": invalid host port \"0\": \
             use a port from 1 to 65535, or a range START-END like 8000-8010"
        );
        for (args, field) in [
            ("{}", "publish"),
            ("5", "publish"),
            (r#"{"publish":[]}"#, "publish"),
            (r#"{"publish":"8080:80"}"#, "publish"),
            (r#"{"publish":[8080]}"#, "publish"),
            (r#"{"publish":["8080:80"],"mode":"fast"}"#, "mode"),
            (r#"{"publish":["8080:80"],"mode":"Splice"}"#, "mode"),
            (r#"{"publish":["8080:80"],"mode":1}"#, "mode"),
            (r#"{"publish":["8080:80"],"to":""}"#, "to"),
            (r#"{"publish":["8080:80"],"to":5}"#, "to"),
        ] {
            let e = r(args).unwrap_err().to_string();
            let want = format!("bad request: add_publish: bad arguments.{field}: ");
            assert!(e.starts_with(&want), "{args}: {e}");
        }
        assert!(req("{\"execute\":\"add_publish\"}").is_err());
        let no_v6 = AddrPlan::new(default_net4(), false);
        let s = r#"{"execute":"add_publish","arguments":{"publish":["[::]:80:80"]}}"#;
        let e = parse_request(s.as_bytes(), &no_v6).unwrap_err().to_string();
        assert!(e.contains("IPv6 is disabled"), "{e}");
        let s = r#"{"execute":"add_publish","arguments":{"publish":["80:80"]}}"#;
        assert!(parse_request(s.as_bytes(), &no_v6).is_ok());
        let e = ApiError::failed(Verb::AddPublish, "host port 80/tcp is already in use");
        assert_eq!(
            e.to_string(),
            "bad request: add_publish: host port 80/tcp is already in use"
        );
    }

    #[test]
    fn error_replies_stay_small() {
        // A spec made of quotes and backslashes escapes twice (Debug, then JSON).
        let nasty = "\\\"".repeat(900);
        let s = format!(
            "{{\"execute\":\"add_publish\",\"arguments\":{{\"publish\":[\"8080:{}\"]}}}}",
            nasty.replace('\\', "\\\\").replace('"', "\\\"")
        );
        assert!(s.len() < MAX_REQUEST);
        let e = err(&s);
        let body = e.body();
        assert!(body.len() <= 2048, "{}", body.len());
        let desc = parse_reply(&body).unwrap_err().to_string();
        assert!(desc.ends_with("..."), "{desc}");
        assert!(desc.len() <= MAX_DESC);
        let long = "é".repeat(600);
        let body = error_body(&long);
        assert!(body.len() <= 2048);
        assert!(
            parse_reply(&body)
                .unwrap_err()
                .to_string()
                .starts_with("éé")
        );
    }

    #[test]
    fn framing_decides_when_to_answer() {
        for (s, want) in [
            ("", Framing::NeedMore),
            ("  \n", Framing::NeedMore),
            ("{", Framing::NeedMore),
            ("{\"execute\":\"add_hos", Framing::NeedMore),
            ("{\"execute\":\"list_hostfwd\"", Framing::NeedMore),
            ("{\"execute\":\"list_hostfwd\"}", Framing::Ready),
            (PODMAN, Framing::Ready),
            (ROOTLESSKIT, Framing::Ready),
            ("{\"execute\":\"list_hostfwd\"} trailing", Framing::Ready),
            ("\"str\"", Framing::Ready),
            ("[1]", Framing::Ready),
            // Complete values that are not objects: answered at once, even
            // when the client keeps its write side open.
            ("42", Framing::Ready),
            ("42\n", Framing::Ready),
            ("null", Framing::Ready),
            ("true", Framing::Ready),
            ("-", Framing::NeedMore),
            ("4.", Framing::NeedMore),
            ("tru", Framing::NeedMore),
            ("garbage", Framing::Ready),
            ("}", Framing::Ready),
        ] {
            assert_eq!(framing(s.as_bytes()), want, "{s:?}");
        }
        assert_eq!(framing(&vec![b' '; MAX_REQUEST]), Framing::TooLarge);
        // Byte by byte, Podman's request is ready exactly at its closing brace.
        let closing = PODMAN.trim_end().len();
        for n in 0..PODMAN.len() {
            let want = if n >= closing {
                Framing::Ready
            } else {
                Framing::NeedMore
            };
            assert_eq!(framing(&PODMAN.as_bytes()[..n]), want, "{n}");
        }
    }

    #[test]
    fn verbs() {
        for v in Verb::ALL {
            assert_eq!(Verb::from_execute(v.as_str()), Some(v));
        }
        assert_eq!(Verb::from_execute("Status"), None);
        assert_eq!(
            req("{\"execute\":\"status\"}").unwrap().verb(),
            Verb::Status
        );
        assert_eq!(hostfwd_verb(), Verb::AddHostfwd);
    }

    fn hostfwd_verb() -> Verb {
        req(PODMAN).unwrap().verb()
    }
}
