//! pasta's port forwarding options, `-t/-u/-T/-U SPEC` (docs/compat.md,
//! "rlnet as pasta"; man/rlnet.1, PASTA MODE). Pure: parsing, how several
//! options combine, and which host ports a spec stands for.
//!
//! SPEC is `none`, `auto`, `all`, or `[ADDR[%IFNAME]/]LIST` (`%IFNAME/`
//! without an address), where LIST is a comma-separated list of
//! `FIRST[-LAST][:TOFIRST[-TOLAST]]` (forward these ports, to these ports in
//! the namespace), `~FIRST[-LAST]` (never these), `all` (every
//! non-ephemeral port not excluded; a list of exclusions alone means the
//! same) and `auto` (only the listed ports that are bound on the other
//! side). An address or interface is for `-t/-u` only: `-T/-U` listen on
//! the namespace's loopback.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use super::spec::{PortRange, Proto, PublishSpec};

/// An interface name: 1-15 bytes, no '/', ':', whitespace or NUL, not "."
/// or ".." (config::valid_ifname's rule; this pure file stands below
/// config, which imports it).
fn valid_ifname(s: &str) -> bool {
    (1..16).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// The shape every message points back to.
const SHAPE: &str = "none, auto, all or [ADDR[%IFNAME]/]PORTS, like 8080, 8080:80, 8000-8010,~8005 or 127.0.0.1/8080";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortSpecError {
    #[error("invalid port specifier '{0}': use {SHAPE}")]
    Invalid(String),
    #[error(
        "invalid port specifier '{0}': ports are 1-65535 (port 0 cannot be forwarded); use {SHAPE}"
    )]
    PortZero(String),
    #[error(
        "invalid port specifier '{spec}': {range} maps {from} ports to {to}; both ranges must be the same length"
    )]
    Length {
        spec: String,
        range: String,
        from: u32,
        to: u32,
    },
    #[error("invalid port specifier '{0}': a range is written FIRST-LAST with FIRST <= LAST")]
    Reversed(String),
    #[error("invalid port specifier '{0}': excluded ranges overlap")]
    OverlappingExclusions(String),
    #[error(
        "invalid port specifier '{0}': an address or interface is for -t and -u only; -T and -U listen on the namespace's loopback"
    )]
    AddressOnOutbound(String),
    #[error(
        "invalid port specifier '{spec}': {addr:?} is not an IP address; use one like 127.0.0.1 or ::1 (brackets allowed)"
    )]
    Address { spec: String, addr: String },
    #[error(
        "invalid port specifier '{spec}': {name:?} is not an interface name (1-15 characters, no '/', ':' or spaces)"
    )]
    Interface { spec: String, name: String },
    #[error(
        "port forwarding mode '{0}' conflicts with an earlier -t/-u/-T/-U of the same kind: give none, auto or all once, alone"
    )]
    ModeConflict(String),
    #[error(
        "port specifier '{0}' cannot be combined with none, auto or all given earlier for the same option"
    )]
    SpecAfterMode(String),
}

/// Which way an option forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// `-t/-u`: host ports into the namespace.
    In,
    /// `-T/-U`: ports of the namespace's loopback to the host's loopback.
    Out,
}

/// `FIRST[-LAST][:TOFIRST[-TOLAST]]`: these ports, to those (the same if
/// no target is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub ports: PortRange,
    /// The first target port; the range has the same length.
    pub to: u16,
}

impl Mapping {
    /// The target port of `port`, which must be in [`Mapping::ports`].
    pub fn target(&self, port: u16) -> u16 {
        // Both ranges are the same length and within 1..=65535 when parsed.
        self.to.wrapping_add(port.wrapping_sub(self.ports.start))
    }
}

/// One `[ADDR[%IFNAME]/]LIST`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortList {
    /// The host address to listen on (`-t/-u`); all addresses if None.
    pub addr: Option<IpAddr>,
    /// The host interface to listen on (SO_BINDTODEVICE).
    pub ifname: Option<String>,
    pub include: Vec<Mapping>,
    pub exclude: Vec<PortRange>,
    /// `all`, or exclusions only: every non-ephemeral port not excluded,
    /// best effort.
    pub all: bool,
    /// `auto` in the list: only the ports bound on the other side.
    pub auto: bool,
}

/// Everything one of `-t/-u/-T/-U` was given, all its occurrences together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PortForwards {
    /// Not given: pasta's default, `auto`.
    #[default]
    Unset,
    None,
    /// `auto`: every port bound on the other side.
    Auto,
    /// `all`: every unbound non-ephemeral port.
    All,
    Lists(Vec<PortList>),
}

impl PortForwards {
    /// Add one occurrence of the option.
    pub fn add(&mut self, spec: &str, way: Way) -> Result<(), PortSpecError> {
        let keyword = match spec {
            "none" => Some(PortForwards::None),
            "auto" => Some(PortForwards::Auto),
            "all" => Some(PortForwards::All),
            _ => None,
        };
        match (keyword, &mut *self) {
            (Some(k), PortForwards::Unset) => *self = k,
            (Some(_), _) => return Err(PortSpecError::ModeConflict(spec.to_string())),
            (None, PortForwards::Unset) => {
                *self = PortForwards::Lists(vec![parse_list(spec, way)?])
            }
            (None, PortForwards::Lists(v)) => v.push(parse_list(spec, way)?),
            (None, _) => return Err(PortSpecError::SpecAfterMode(spec.to_string())),
        }
        Ok(())
    }

    /// The option as it takes effect: `Unset` is `auto`.
    pub fn effective(&self) -> PortForwards {
        match self {
            PortForwards::Unset => PortForwards::Auto,
            other => other.clone(),
        }
    }

    /// Does this scan the other side for bound ports?
    pub fn scans(&self) -> bool {
        match self.effective() {
            PortForwards::Auto => true,
            PortForwards::Lists(v) => v.iter().any(|l| l.auto),
            _ => false,
        }
    }
}

/// `FIRST[-LAST]`: decimal digits, 1..=65535, FIRST <= LAST.
fn parse_range(text: &str, spec: &str) -> Result<PortRange, PortSpecError> {
    let port = |s: &str| -> Result<u16, PortSpecError> {
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PortSpecError::Invalid(spec.to_string()));
        }
        match s.parse::<u32>() {
            Ok(0) => Err(PortSpecError::PortZero(spec.to_string())),
            Ok(p) => u16::try_from(p).map_err(|_| PortSpecError::Invalid(spec.to_string())),
            Err(_) => Err(PortSpecError::Invalid(spec.to_string())),
        }
    };
    let (start, end) = match text.split_once('-') {
        None => (port(text)?, port(text)?),
        Some((a, b)) => (port(a)?, port(b)?),
    };
    if end < start {
        return Err(PortSpecError::Reversed(spec.to_string()));
    }
    Ok(PortRange { start, end })
}

/// `[ADDR][%IFNAME]` before the '/'.
fn parse_bind(text: &str, spec: &str) -> Result<(Option<IpAddr>, Option<String>), PortSpecError> {
    let (addr, ifname) = match text.split_once('%') {
        Some((a, i)) => (a, Some(i)),
        None => (text, None),
    };
    let ifname = match ifname {
        Some(i) if valid_ifname(i) => Some(i.to_string()),
        Some(i) => {
            return Err(PortSpecError::Interface {
                spec: spec.to_string(),
                name: i.to_string(),
            });
        }
        None => None,
    };
    if addr.is_empty() {
        if ifname.is_none() {
            return Err(PortSpecError::Invalid(spec.to_string()));
        }
        return Ok((None, ifname));
    }
    // Brackets are allowed around either family, as pasta allows them.
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip = bare
        .parse::<IpAddr>()
        .ok()
        .filter(|ip| !ip.is_multicast() && ip.to_canonical() != IpAddr::V4(Ipv4Addr::BROADCAST))
        .ok_or_else(|| PortSpecError::Address {
            spec: spec.to_string(),
            addr: addr.to_string(),
        })?;
    Ok((Some(ip), ifname))
}

/// One `[ADDR[%IFNAME]/]LIST`.
fn parse_list(spec: &str, way: Way) -> Result<PortList, PortSpecError> {
    let mut list = PortList::default();
    let ports = match spec.split_once('/') {
        Some((bind, ports)) => {
            if way == Way::Out {
                return Err(PortSpecError::AddressOnOutbound(spec.to_string()));
            }
            (list.addr, list.ifname) = parse_bind(bind, spec)?;
            ports
        }
        None => spec,
    };
    for entry in ports.split(',') {
        match entry {
            "all" => list.all = true,
            "auto" => list.auto = true,
            _ => match entry.strip_prefix('~') {
                Some(r) => list.exclude.push(parse_range(r, spec)?),
                None => list.include.push(parse_mapping(entry, spec)?),
            },
        }
    }
    for (i, a) in list.exclude.iter().enumerate() {
        if list.exclude[..i]
            .iter()
            .any(|b| a.start <= b.end && b.start <= a.end)
        {
            return Err(PortSpecError::OverlappingExclusions(spec.to_string()));
        }
    }
    // Exclusions alone stand for every other port.
    if list.include.is_empty() && !list.exclude.is_empty() {
        list.all = true;
    }
    if list.include.is_empty() && !list.all {
        // `auto` alone after an address (`::1/auto`) still needs ports:
        // every one, as bare `auto` does.
        if list.auto {
            list.all = true;
        } else {
            return Err(PortSpecError::Invalid(spec.to_string()));
        }
    }
    Ok(list)
}

/// `FIRST[-LAST][:TOFIRST[-TOLAST]]`.
fn parse_mapping(entry: &str, spec: &str) -> Result<Mapping, PortSpecError> {
    let (from, to) = match entry.split_once(':') {
        Some((f, t)) => (f, Some(t)),
        None => (entry, None),
    };
    let ports = parse_range(from, spec)?;
    let Some(to) = to else {
        return Ok(Mapping {
            ports,
            to: ports.start,
        });
    };
    if to.contains('/') || to.contains(':') {
        // pasta 2025's target addresses (`:ADDR/PORT`) are not supported.
        return Err(PortSpecError::Invalid(spec.to_string()));
    }
    let target = parse_range(to, spec)?;
    if target.len() != ports.len() {
        return Err(PortSpecError::Length {
            spec: spec.to_string(),
            range: entry.to_string(),
            from: ports.len(),
            to: target.len(),
        });
    }
    Ok(Mapping {
        ports,
        to: target.start,
    })
}

/// A contiguous run of forwarded ports: host ports `ports` go to `to..`.
pub type Run = Mapping;

impl PortList {
    /// The host ports this list forwards, as contiguous runs in port order:
    /// its mappings minus its exclusions, or (`all`) every port outside
    /// `ephemeral` and the exclusions, to the same port.
    pub fn runs(&self, ephemeral: PortRange) -> Vec<Run> {
        let mut out = Vec::new();
        let excluded = |p: u16| self.exclude.iter().any(|r| r.contains(p));
        let mapped = |p: u16| self.include.iter().any(|m| m.ports.contains(p));
        if self.all {
            push_runs(&mut out, 1..=u16::MAX, |p| {
                (!(excluded(p) || mapped(p) || ephemeral.contains(p))).then_some(p)
            });
        }
        for m in &self.include {
            push_runs(&mut out, m.ports.iter(), |p| {
                (!excluded(p)).then(|| m.target(p))
            });
        }
        out.sort_by_key(|r| r.ports.start);
        out
    }

    /// Does this list forward `port` (and to which port)? Mappings come
    /// before `all` (a port listed explicitly keeps its target).
    pub fn target(&self, port: u16, ephemeral: PortRange) -> Option<u16> {
        if self.exclude.iter().any(|r| r.contains(port)) {
            return None;
        }
        if let Some(m) = self.include.iter().find(|m| m.ports.contains(port)) {
            return Some(m.target(port));
        }
        (self.all && !ephemeral.contains(port)).then_some(port)
    }
}

/// pasta's forwarding options, for the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaPorts {
    /// `-t`, `-u`: host ports into the namespace.
    pub tcp: PortForwards,
    pub udp: PortForwards,
    /// `-T`, `-U`: the namespace's loopback ports to the host's loopback.
    pub tcp_ns: PortForwards,
    pub udp_ns: PortForwards,
    /// `net.ipv4.ip_local_port_range`: never part of `all` or `auto`.
    pub ephemeral: PortRange,
    /// Loopback clients of `-t/-u` take the splice path (not with
    /// `--no-splice`).
    pub splice: bool,
    /// `--host-lo-to-ns-lo`: they reach the namespace's loopback.
    pub ns_lo: bool,
}

impl PastaPorts {
    /// Does `-t/-u auto` need the namespace's tables?
    pub fn scans_ns(&self) -> bool {
        self.tcp.scans() || self.udp.scans()
    }

    /// The option of a direction and protocol.
    pub fn get(&self, way: Way, proto: Proto) -> &PortForwards {
        match (way, proto) {
            (Way::In, Proto::Tcp) => &self.tcp,
            (Way::In, Proto::Udp) => &self.udp,
            (Way::Out, Proto::Tcp) => &self.tcp_ns,
            (Way::Out, Proto::Udp) => &self.udp_ns,
        }
    }
}

impl PortList {
    /// This list as published-port specs, with the interface to bind to.
    pub fn specs(&self, proto: Proto, ephemeral: PortRange) -> Vec<(PublishSpec, Option<String>)> {
        self.runs(ephemeral)
            .into_iter()
            .map(|r| {
                let spec = PublishSpec {
                    host_ip: self.addr,
                    host_ports: r.ports,
                    ns_ports: PortRange {
                        start: r.to,
                        end: r.target(r.ports.end),
                    },
                    proto,
                };
                (spec, self.ifname.clone())
            })
            .collect()
    }
}

/// Append the runs of consecutive ports in `ports` that `target` maps to
/// consecutive targets.
fn push_runs(
    out: &mut Vec<Run>,
    ports: impl Iterator<Item = u16>,
    target: impl Fn(u16) -> Option<u16>,
) {
    let mut cur: Option<Run> = None;
    for p in ports {
        let Some(t) = target(p) else {
            out.extend(cur.take());
            continue;
        };
        match cur.as_mut() {
            Some(r)
                if r.ports.end.checked_add(1) == Some(p)
                    && r.target(r.ports.end).checked_add(1) == Some(t) =>
            {
                r.ports.end = p
            }
            _ => {
                out.extend(cur.take());
                cur = Some(Run {
                    ports: PortRange::single(p),
                    to: t,
                });
            }
        }
    }
    out.extend(cur);
}

impl fmt::Display for PortForwards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortForwards::Unset | PortForwards::Auto => f.write_str("auto"),
            PortForwards::None => f.write_str("none"),
            PortForwards::All => f.write_str("all"),
            PortForwards::Lists(v) => write!(f, "{} list(s)", v.len()),
        }
    }
}

/// `net.ipv4.ip_local_port_range` as text ("32768\t60999"), or Linux's
/// default when it cannot be parsed.
pub fn ephemeral_range(text: &str) -> PortRange {
    let mut it = text.split_whitespace().map(|w| w.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(start)), Some(Ok(end))) if start <= end && start > 0 => PortRange { start, end },
        _ => PortRange {
            start: 32768,
            end: 60999,
        },
    }
}

/// The unspecified address of a family.
pub fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

/// The loopback address of a family, for `-T/-U` (both ends).
pub fn loopback(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPH: PortRange = PortRange {
        start: 32768,
        end: 60999,
    };

    fn one(spec: &str) -> PortList {
        let mut f = PortForwards::Unset;
        f.add(spec, Way::In).unwrap();
        match f {
            PortForwards::Lists(mut v) => v.remove(0),
            other => panic!("{spec}: {other:?}"),
        }
    }

    fn r(start: u16, end: u16) -> PortRange {
        PortRange { start, end }
    }

    fn runs(spec: &str) -> Vec<(u16, u16, u16)> {
        one(spec)
            .runs(EPH)
            .iter()
            .map(|r| (r.ports.start, r.ports.end, r.to))
            .collect()
    }

    #[test]
    fn keywords_and_their_conflicts() {
        for (spec, want) in [
            ("none", PortForwards::None),
            ("auto", PortForwards::Auto),
            ("all", PortForwards::All),
        ] {
            let mut f = PortForwards::Unset;
            f.add(spec, Way::In).unwrap();
            assert_eq!(f, want);
            let e = f.add("none", Way::In).unwrap_err();
            assert!(matches!(e, PortSpecError::ModeConflict(_)), "{e}");
            let e = f.add("80", Way::In).unwrap_err();
            assert!(matches!(e, PortSpecError::SpecAfterMode(_)), "{e}");
        }
        let mut f = PortForwards::Unset;
        f.add("80", Way::In).unwrap();
        f.add("81", Way::In).unwrap();
        assert!(matches!(&f, PortForwards::Lists(v) if v.len() == 2));
        assert!(f.add("auto", Way::In).is_err());
        assert_eq!(PortForwards::Unset.effective(), PortForwards::Auto);
        assert!(PortForwards::Unset.scans());
        assert!(!PortForwards::None.scans());
    }

    #[test]
    fn what_podman_and_rootlesskit_pass() {
        assert_eq!(runs("18080-18080:80-80"), [(18080, 18080, 80)]);
        let l = one("127.0.0.1/18081-18081:80-80");
        assert_eq!(l.addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(l.runs(EPH)[0].to, 80);
        assert_eq!(runs("8000-8002:9000-9002"), [(8000, 8002, 9000)]);
        let mut f = PortForwards::Unset;
        f.add("auto", Way::Out).unwrap();
        assert!(f.scans());
    }

    #[test]
    fn lists_exclusions_and_all() {
        assert_eq!(runs("22,25"), [(22, 22, 22), (25, 25, 25)]);
        assert_eq!(runs("22-80"), [(22, 80, 22)]);
        assert_eq!(runs("22:23"), [(22, 22, 23)]);
        assert_eq!(
            runs("2000-5000,~3000-3010"),
            [(2000, 2999, 2000), (3011, 5000, 3011)]
        );
        assert_eq!(
            runs("192.0.2.1/20-30:120-130,~25"),
            [(20, 24, 120), (26, 30, 126)]
        );
        // Exclusions alone: everything else that is not ephemeral.
        assert_eq!(
            runs("~20000-20010"),
            [(1, 19999, 1), (20011, 32767, 20011), (61000, 65535, 61000)]
        );
        assert_eq!(runs("::1/all"), runs("1-32767,61000-65535"));
        // A mapped port keeps its target, `all` covers the rest.
        assert_eq!(runs("80:8080,all")[..2], [(1, 79, 1), (80, 80, 8080)]);
        let l = one("::1/all");
        assert_eq!(l.addr, Some("::1".parse().unwrap()));
        assert!(l.all);
        let l = one("8000-8010,auto");
        assert!(l.auto && !l.all);
        assert_eq!(l.target(8005, EPH), Some(8005));
        assert_eq!(l.target(7999, EPH), None);
        let l = one("::1/auto");
        assert!(l.auto && l.all);
        assert_eq!(l.target(40000, EPH), None, "ephemeral");
    }

    #[test]
    fn addresses_and_interfaces() {
        let l = one("192.0.2.1%eth0/22");
        assert_eq!(l.addr, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(l.ifname.as_deref(), Some("eth0"));
        let l = one("%eth0/22");
        assert_eq!((l.addr, l.ifname.as_deref()), (None, Some("eth0")));
        let l = one("[::1]/22");
        assert_eq!(l.addr, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let l = one("[127.0.0.1]/22");
        assert_eq!(l.addr, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let l = one("0.0.0.0/5000");
        assert_eq!(l.addr, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    }

    #[test]
    fn bad_forms_each_name_the_spec() {
        for bad in [
            "",
            "bogus",
            "0",
            "70000",
            "80-70",
            "80-",
            "-80",
            "80-81:90",
            "80:",
            ":80",
            "80,,81",
            "80,",
            "a/80",
            "1.2.3/80",
            "/80",
            "%/80",
            "%abcdefghijklmnop/80",
            "224.0.0.1/80",
            "80:90/tcp",
            "0.0.0.0/5000:192.0.2.5/6000",
            "~80-70",
            "~25,~20-30",
            "80 ",
            " 80",
            "+80",
            "0x50",
            "~",
            "80~81",
        ] {
            let mut f = PortForwards::Unset;
            let e = f.add(bad, Way::In).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains(&format!("'{bad}'")), "{bad:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let e = PortForwards::Unset.add("0", Way::In).unwrap_err();
        assert!(matches!(e, PortSpecError::PortZero(_)));
        let e = PortForwards::Unset.add("20-30:1-2", Way::In).unwrap_err();
        assert!(e.to_string().contains("same length"), "{e}");
        let e = PortForwards::Unset
            .add("127.0.0.1/80", Way::Out)
            .unwrap_err();
        assert!(matches!(e, PortSpecError::AddressOnOutbound(_)));
    }

    #[test]
    fn ephemeral_range_text() {
        assert_eq!(ephemeral_range("32768\t60999\n"), r(32768, 60999));
        assert_eq!(ephemeral_range("1024 65535"), r(1024, 65535));
        assert_eq!(ephemeral_range("junk"), r(32768, 60999));
        assert_eq!(ephemeral_range("5 4"), r(32768, 60999));
    }
}
