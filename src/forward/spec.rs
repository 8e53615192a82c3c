//! `-p/--publish [HOST_IP:]HOST_PORT[-END]:NS_PORT[-END][/tcp|/udp]` (man/rlnet.1).
//!
//! Pure parsing and printing; binding the host ports happens elsewhere.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The shape every error message points back to.
const SHAPE: &str = "[HOST_IP:]HOST_PORT[-END]:NS_PORT[-END][/tcp|/udp]";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive port range; `start >= 1` and `end >= start` once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    /// Number of ports (at least 1 for a parsed range). `u32` because
    /// 1-65535 has 65535 ports and an empty range is not representable.
    pub fn len(&self) -> u32 {
        if self.is_empty() {
            0
        } else {
            u32::from(self.end) - u32::from(self.start) + 1
        }
    }

    /// Never true for a parsed range; present because `len` is.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn iter(&self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One published port or port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublishSpec {
    /// `None`: every IPv4 and IPv6 address of the host, like Docker.
    /// `0.0.0.0` / `::` mean all addresses of that family only.
    pub host_ip: Option<IpAddr>,
    pub host_ports: PortRange,
    pub ns_ports: PortRange,
    pub proto: Proto,
}

impl PublishSpec {
    /// The namespace port that `host_port` maps to, if it is in the range.
    pub fn ns_port_for(&self, host_port: u16) -> Option<u16> {
        if !self.host_ports.contains(host_port) {
            return None;
        }
        // Checked: a hand-built spec may have ranges of different lengths.
        let port = self
            .ns_ports
            .start
            .checked_add(host_port - self.host_ports.start)?;
        self.ns_ports.contains(port).then_some(port)
    }
}

/// Which side of the mapping a port belongs to, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Namespace,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Host => "host",
            Side::Namespace => "namespace",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("empty spec: use {SHAPE}, like 8080:80")]
    Empty,
    #[error("whitespace is not allowed: use {SHAPE}, like 8080:80")]
    Whitespace,
    #[error("unknown protocol {0:?}: use /tcp or /udp (lowercase), or leave it out for tcp")]
    Proto(String),
    #[error("missing the namespace port: use HOST_PORT:NS_PORT, like {0}:80")]
    MissingNsPort(String),
    #[error("empty {0} port: use {SHAPE}, like 8080:80")]
    EmptyPort(Side),
    #[error(
        "invalid {side} port {text:?}: use a port from 1 to 65535, or a range START-END like 8000-8010"
    )]
    Port { side: Side, text: String },
    #[error("{side} port range {start}-{end} is reversed: END must not be smaller than START")]
    Reversed { side: Side, start: u16, end: u16 },
    #[error(
        "host port range {host} has {host_len} ports but namespace port range {ns} has {ns_len}: both ranges must be the same length"
    )]
    LengthMismatch {
        host: PortRange,
        host_len: u32,
        ns: PortRange,
        ns_len: u32,
    },
    #[error(
        "empty host address before the ports: leave it out for all addresses, or use one like 127.0.0.1:8080:80"
    )]
    EmptyHostIp,
    #[error(
        "{0:?} is not an IP address: use an IPv4 address like 127.0.0.1, or an IPv6 address in brackets like [::1]"
    )]
    HostIp(String),
    #[error("IPv6 host address {0:?} must be in brackets, like [{0}]:8080:80")]
    Ipv6NeedsBrackets(String),
    #[error(
        "{0:?} in brackets is not an IPv6 address: brackets are only for IPv6 (like [::1]:8080:80); write IPv4 without them"
    )]
    BracketedNotIpv6(String),
    #[error("unclosed '[': write an IPv6 host address as [::1]:8080:80")]
    UnclosedBracket,
    #[error("expected ':' after ']', found {0:?}: write it like [::1]:8080:80")]
    AfterBracket(String),
    #[error("too many ':'-separated parts ({0}): use {SHAPE}, like 127.0.0.1:8080:80")]
    TooManyParts(usize),
}

impl FromStr for PublishSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        if s.is_empty() {
            return Err(SpecError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(SpecError::Whitespace);
        }
        // A '/' can only start the protocol: neither addresses nor ports contain one.
        let (rest, proto) = match s.split_once('/') {
            None => (s, Proto::Tcp),
            Some((rest, "tcp")) => (rest, Proto::Tcp),
            Some((rest, "udp")) => (rest, Proto::Udp),
            Some((_, other)) => return Err(SpecError::Proto(other.to_string())),
        };
        let (host_ip, ports) = split_host_ip(rest)?;
        let (host, ns) = match ports.split(':').collect::<Vec<_>>()[..] {
            [only] => return Err(SpecError::MissingNsPort(only.to_string())),
            [host, ns] => (host, ns),
            ref parts => {
                // Only reachable after a bracketed address, like [::1]:1:2:3.
                return Err(SpecError::TooManyParts(parts.len() + 1));
            }
        };
        let host_ports = parse_range(Side::Host, host)?;
        let ns_ports = parse_range(Side::Namespace, ns)?;
        if host_ports.len() != ns_ports.len() {
            return Err(SpecError::LengthMismatch {
                host: host_ports,
                host_len: host_ports.len(),
                ns: ns_ports,
                ns_len: ns_ports.len(),
            });
        }
        Ok(PublishSpec {
            host_ip,
            host_ports,
            ns_ports,
            proto,
        })
    }
}

/// Splits off `HOST_IP:` (bracketed for IPv6), returning the address and
/// `HOST_PORTS:NS_PORTS`.
fn split_host_ip(s: &str) -> Result<(Option<IpAddr>, &str), SpecError> {
    if let Some(inner) = s.strip_prefix('[') {
        let (addr, after) = inner.split_once(']').ok_or(SpecError::UnclosedBracket)?;
        let ports = after
            .strip_prefix(':')
            .ok_or_else(|| SpecError::AfterBracket(after.to_string()))?;
        return match addr.parse::<Ipv6Addr>() {
            Ok(a) => Ok((Some(IpAddr::V6(a)), ports)),
            Err(_) => Err(SpecError::BracketedNotIpv6(addr.to_string())),
        };
    }
    let parts: Vec<&str> = s.split(':').collect();
    match parts.len() {
        1 | 2 => Ok((None, s)),
        3 => {
            let (ip, ports) = s.split_at(parts[0].len());
            if ip.is_empty() {
                return Err(SpecError::EmptyHostIp);
            }
            let ip: Ipv4Addr = ip.parse().map_err(|_| SpecError::HostIp(ip.to_string()))?;
            Ok((Some(IpAddr::V4(ip)), &ports[1..]))
        }
        n => {
            // Everything before the two port fields: an unbracketed IPv6
            // address deserves a better hint than "too many parts".
            let candidate = parts[..n - 2].join(":");
            if candidate.parse::<Ipv6Addr>().is_ok() {
                Err(SpecError::Ipv6NeedsBrackets(candidate))
            } else {
                Err(SpecError::TooManyParts(n))
            }
        }
    }
}

fn parse_range(side: Side, s: &str) -> Result<PortRange, SpecError> {
    if s.is_empty() {
        return Err(SpecError::EmptyPort(side));
    }
    let bad = || SpecError::Port {
        side,
        text: s.to_string(),
    };
    let (start, end) = match s.split_once('-') {
        None => {
            let p = parse_port(s).ok_or_else(bad)?;
            (p, p)
        }
        Some((a, b)) => (
            parse_port(a).ok_or_else(bad)?,
            parse_port(b).ok_or_else(bad)?,
        ),
    };
    if end < start {
        return Err(SpecError::Reversed { side, start, end });
    }
    Ok(PortRange { start, end })
}

/// Decimal digits only (no sign, no spaces, no fraction), 1..=65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

impl fmt::Display for PublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            None => {}
        }
        write!(f, "{}:{}/{}", self.host_ports, self.ns_ports, self.proto)
    }
}

/// How a published connection reaches the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The connection enters through the userspace stack from the client's
    /// real address, so the service sees who is calling.
    #[default]
    Stack,
    /// A socket created inside the namespace, relayed with splice(2): fastest,
    /// but the service sees the namespace's own address as the client.
    Splice,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stack => "stack",
            Mode::Splice => "splice",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown publish mode {0:?}: use stack or splice")]
pub struct ModeError(pub String);

impl FromStr for Mode {
    type Err = ModeError;

    fn from_str(s: &str) -> Result<Self, ModeError> {
        match s {
            "stack" => Ok(Mode::Stack),
            "splice" => Ok(Mode::Splice),
            _ => Err(ModeError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PublishSpec {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &str) -> SpecError {
        match s.parse::<PublishSpec>() {
            Ok(spec) => panic!("{s:?} should fail, got {spec:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn simple_forms() {
        assert_eq!(
            p("8080:80"),
            PublishSpec {
                host_ip: None,
                host_ports: PortRange::single(8080),
                ns_ports: PortRange::single(80),
                proto: Proto::Tcp,
            }
        );
        assert_eq!(p("8080:80/tcp"), p("8080:80"));
        assert_eq!(p("53:53/udp").proto, Proto::Udp);
        assert_eq!(p("1:65535").ns_ports, PortRange::single(65535));
        let s = p("127.0.0.1:8080:80");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        let s = p("[::1]:8080:80/udp");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(s.proto, Proto::Udp);
        let s = p("[::ffff:10.1.2.3]:8080:80");
        assert_eq!(s.host_ip, Some("::ffff:10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn unspecified_addresses_are_one_family() {
        assert_eq!(
            p("0.0.0.0:8080:80").host_ip,
            Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        );
        assert_eq!(
            p("[::]:8080:80").host_ip,
            Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        );
    }

    #[test]
    fn ranges() {
        let s = p("8000-8010:9000-9010/udp");
        assert_eq!(
            s.host_ports,
            PortRange {
                start: 8000,
                end: 8010
            }
        );
        assert_eq!(
            s.ns_ports,
            PortRange {
                start: 9000,
                end: 9010
            }
        );
        assert_eq!(s.host_ports.len(), 11);
        assert_eq!(s.ns_port_for(8005), Some(9005));
        assert_eq!(s.ns_port_for(8011), None);
        assert_eq!(p("8080-8080:80").host_ports, PortRange::single(8080));
        let odd = PublishSpec {
            ns_ports: PortRange::single(65535),
            ..s
        };
        assert_eq!(odd.ns_port_for(8000), Some(65535));
        assert_eq!(odd.ns_port_for(8001), None);
        assert!(PortRange { start: 2, end: 1 }.is_empty());
        assert_eq!(PortRange { start: 2, end: 1 }.len(), 0);
        assert_eq!(p("1-65535:1-65535").host_ports.len(), 65535);
    }

    #[test]
    fn bad_ports() {
        for (spec, side, text) in [
            ("0:80", Side::Host, "0"),
            ("8080:0", Side::Namespace, "0"),
            ("65536:80", Side::Host, "65536"),
            ("70000:80", Side::Host, "70000"),
            ("8080:70000", Side::Namespace, "70000"),
            ("-1:80", Side::Host, "-1"),
            ("8080:-1", Side::Namespace, "-1"),
            ("8080.5:80", Side::Host, "8080.5"),
            ("+8080:80", Side::Host, "+8080"),
            ("8080:+80", Side::Namespace, "+80"),
            ("a:b", Side::Host, "a"),
            ("8080:b", Side::Namespace, "b"),
            ("8000-:80", Side::Host, "8000-"),
            ("8000-8010-8020:80", Side::Host, "8000-8010-8020"),
            ("0x50:80", Side::Host, "0x50"),
            (
                "999999999999999999999:80",
                Side::Host,
                "999999999999999999999",
            ),
        ] {
            assert_eq!(
                err(spec),
                SpecError::Port {
                    side,
                    text: text.to_string()
                },
                "{spec}"
            );
            let msg = err(spec).to_string();
            assert!(msg.contains(&format!("{text:?}")), "{msg}");
            assert!(msg.contains("1 to 65535"), "{msg}");
        }
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(err(""), SpecError::Empty);
        assert_eq!(err(":80"), SpecError::EmptyPort(Side::Host));
        assert_eq!(err("8080:"), SpecError::EmptyPort(Side::Namespace));
        assert_eq!(err(":8080:80"), SpecError::EmptyHostIp);
        for s in [
            " 8080:80",
            "8080 :80",
            "8080:80 ",
            "8080:\t80",
            "8080:80/ tcp",
        ] {
            assert_eq!(err(s), SpecError::Whitespace, "{s:?}");
        }
    }

    #[test]
    fn reversed_and_mismatched_ranges() {
        assert_eq!(
            err("8010-8000:80-90"),
            SpecError::Reversed {
                side: Side::Host,
                start: 8010,
                end: 8000
            }
        );
        assert_eq!(
            err("8000-8010:90-80").to_string(),
            "namespace port range 90-80 is reversed: END must not be smaller than START"
        );
        let e = err("8000-8010:80-85");
        assert_eq!(
            e.to_string(),
            "host port range 8000-8010 has 11 ports but namespace port range 80-85 has 6: \
             both ranges must be the same length"
        );
        assert!(matches!(
            err("8000-8001:80"),
            SpecError::LengthMismatch { .. }
        ));
    }

    #[test]
    fn protocols() {
        assert_eq!(err("8080:80/sctp"), SpecError::Proto("sctp".into()));
        assert_eq!(err("8080:80/TCP"), SpecError::Proto("TCP".into()));
        assert_eq!(err("8080:80/Udp"), SpecError::Proto("Udp".into()));
        assert_eq!(err("8080:80/"), SpecError::Proto(String::new()));
        assert_eq!(err("8080:80/tcp/udp"), SpecError::Proto("tcp/udp".into()));
        assert!(err("8080:80/TCP").to_string().contains("lowercase"));
    }

    #[test]
    fn malformed_shapes() {
        assert_eq!(err("8080"), SpecError::MissingNsPort("8080".into()));
        assert!(err("8080").to_string().contains("8080:80"));
        assert_eq!(err("1.2.3.4:8080:80:90"), SpecError::TooManyParts(4));
        assert_eq!(err("[::1:8080:80"), SpecError::UnclosedBracket);
        assert_eq!(
            err("::1:8080:80"),
            SpecError::Ipv6NeedsBrackets("::1".into())
        );
        assert!(err("::1:8080:80").to_string().contains("[::1]:8080:80"));
        assert_eq!(
            err("fd00::5:8080:80"),
            SpecError::Ipv6NeedsBrackets("fd00::5".into())
        );
        assert_eq!(
            err("[::1]8080:80"),
            SpecError::AfterBracket("8080:80".into())
        );
        assert_eq!(err("[::1]"), SpecError::AfterBracket(String::new()));
        assert_eq!(err("[::1]:8080"), SpecError::MissingNsPort("8080".into()));
        assert_eq!(err("[::1]:1:2:3"), SpecError::TooManyParts(4));
        assert_eq!(
            err("[]:8080:80"),
            SpecError::BracketedNotIpv6(String::new())
        );
        assert_eq!(
            err("[1.2.3.4]:8080:80"),
            SpecError::BracketedNotIpv6("1.2.3.4".into())
        );
        assert_eq!(
            err("localhost:8080:80"),
            SpecError::HostIp("localhost".into())
        );
        assert_eq!(err("1.2.3:8080:80"), SpecError::HostIp("1.2.3".into()));
        assert_eq!(
            err("[fe80::1%eth0]:8080:80"),
            SpecError::BracketedNotIpv6("fe80::1%eth0".into())
        );
    }

    #[test]
    fn every_error_is_one_line() {
        for s in [
            "",
            " ",
            "8080",
            ":80",
            "8080:",
            "a:b",
            "0:80",
            "8080:80/sctp",
            "[::1:8080:80",
            "::1:8080:80",
            "1.2.3.4:8080:80:90",
            "8000-8010:80-85",
            "9-1:9-1",
            "[x]:1:1",
        ] {
            let msg = err(s).to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn display_round_trips() {
        for (input, shown) in [
            ("8080:80", "8080:80/tcp"),
            ("8080:80/udp", "8080:80/udp"),
            ("127.0.0.1:8080:80", "127.0.0.1:8080:80/tcp"),
            ("0.0.0.0:1-10:11-20/udp", "0.0.0.0:1-10:11-20/udp"),
            ("[::1]:8080:80", "[::1]:8080:80/tcp"),
            ("[::]:443:8443", "[::]:443:8443/tcp"),
            ("[::ffff:1.2.3.4]:1:1", "[::ffff:1.2.3.4]:1:1/tcp"),
            (
                "[FD00:0::5]:8000-8001:80-81",
                "[fd00::5]:8000-8001:80-81/tcp",
            ),
            ("7-7:9", "7:9/tcp"),
        ] {
            let spec = p(input);
            assert_eq!(spec.to_string(), shown, "{input}");
            assert_eq!(p(&spec.to_string()), spec, "{input}");
        }
    }

    #[test]
    fn mode_text() {
        assert_eq!("splice".parse::<Mode>(), Ok(Mode::Splice));
        assert_eq!("stack".parse::<Mode>(), Ok(Mode::Stack));
        assert!("Splice".parse::<Mode>().is_err());
        assert_eq!(Mode::default(), Mode::Stack);
        assert_eq!(Mode::Splice.to_string(), "splice");
        assert_eq!(serde_json::to_string(&Mode::Splice).unwrap(), "\"splice\"");
        assert_eq!(
            "x".parse::<Mode>().unwrap_err().to_string(),
            "unknown publish mode \"x\": use stack or splice"
        );
    }
}
