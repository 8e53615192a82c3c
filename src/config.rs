//! Validated, pure configuration: what the command line asked for, with
//! slirp4netns's defaults. No I/O here; everything is unit-tested directly.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;
use std::path::PathBuf;

use thiserror::Error;

use crate::forward::spec::{Mode, PublishSpec};

pub mod pasta;

/// Errors in option values. The texts that slirp4netns callers and tests grep
/// for are kept word for word (docs/compat.md, "Options").
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid CIDR: {0}")]
    InvalidCidr(String),
    #[error("invalid network address: {0}")]
    InvalidNetworkAddress(String),
    #[error("prefix length needs to be 1-25")]
    PrefixLength,
    #[error("CIDR needs to be a network address like 10.0.2.0/24, not like {0}")]
    HostBitsSet(String),
    #[error("MTU must be a positive integer (< 65522), not {0:?}")]
    MtuRange(String),
    #[error(
        "MTU {0} is too small: the minimum is 68 (1280 with IPv6; add --disable-ipv6 for less)"
    )]
    MtuTooSmall(u32),
    #[error(
        "{0:?} is an invalid MAC address: use six hex bytes separated by ':', like 0e:d4:18:d9:38:fb"
    )]
    Mac(String),
    #[error("outbound-addr has to be valid ipv4 address or interface name, not {0:?}")]
    OutboundAddr(String),
    #[error("outbound-addr6 has to be valid ipv6 address or interface name, not {0:?}")]
    OutboundAddr6(String),
    #[error("TAP name {0:?} is invalid: use 1-15 characters, no '/', ':' or whitespace")]
    TapName(String),
    #[error("PID must be a positive integer, not {0:?}")]
    Pid(String),
    #[error("{0} must be a non-negative integer, not {1:?}")]
    Fd(&'static str, String),
    #[error("the specified API socket path is too long (>= 108): {0}")]
    ApiSocketTooLong(String),
    #[error(
        "{0:?} is not a DNS server address: use IP or IP:PORT, IPv6 with a port in brackets, like 192.0.2.1, 127.0.0.53, ::1 or [::1]:5353"
    )]
    DnsUpstream(String),
    #[error(
        "{0:?} cannot be a DNS server: not an unspecified, multicast or broadcast address, not port 0, not the DNS stub itself"
    )]
    DnsUpstreamAddr(String),
    #[error(
        "{0:?} is not NAME:IP: use a host name and an address, like db:192.0.2.7, db=2001:db8::7 or host.docker.internal:host-gateway"
    )]
    AddHost(String),
    #[error(
        "invalid host name {0:?}: use letters, digits, '-' and '_' in dot-separated labels of 1-63 characters (253 in all)"
    )]
    HostName(String),
    #[error(
        "invalid address {0:?} for a host name: use an IPv4 or IPv6 unicast address or host-gateway"
    )]
    HostAddr(String),
}

/// Default MTU: the largest that still fits an Ethernet frame in 64 KiB, as
/// slirp4netns and pasta use. With offloads it costs nothing at 1500 either.
pub const DEFAULT_MTU: u32 = 65520;
/// slirp4netns accepts up to 65521.
pub const MAX_MTU: u32 = 65521;
pub const MIN_MTU: u32 = 68;
pub const MIN_MTU_IPV6: u32 = 1280;
/// Whether rlnet has seccomp filters for this architecture (on by default
/// there; elsewhere only an explicit `--enable-seccomp` asks, and fails).
pub const SECCOMP_ARCH: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
));

/// Which namespace to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `PID`: join /proc/PID/ns/{user,net}; exit when the process exits.
    Pid(u32),
    /// `--netns-type=path PATH [--userns-path P]`.
    Path {
        netns: PathBuf,
        userns: Option<PathBuf>,
    },
    /// `rlnet run -- COMMAND...`: a new user+net namespace for COMMAND.
    Run { argv: Vec<String> },
}

/// When to set addresses, routes, MTU and `lo` inside the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Configure {
    /// Configure when rlnet creates the TAP itself, not when the caller
    /// pre-created it (RootlessKit configures its own TAP).
    #[default]
    Auto,
    /// `-c/--configure`: always.
    Always,
    /// `--no-configure`: never.
    Never,
}

/// `--outbound-addr[6]`: an address, or an interface whose address is looked
/// up once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Addr(IpAddr),
    Interface(String),
}

/// An IPv4 network given as `--cidr`, validated like slirp4netns does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The address `offset` hosts into the network (N+2 is the gateway).
    pub fn host(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(offset))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Net {
    type Err = ConfigError;

    /// Accepts exactly `d.d.d.d/N`; the checks and their order follow
    /// slirp4netns (`invalid CIDR`, `invalid network address`, prefix 1-25,
    /// host bits).
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::InvalidCidr(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let shape_ok = addr.split('.').count() == 4
            && addr
                .split('.')
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            && !prefix.is_empty()
            && prefix.len() <= 2
            && prefix.bytes().all(|b| b.is_ascii_digit());
        if !shape_ok {
            return Err(bad());
        }
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| ConfigError::InvalidNetworkAddress(addr.to_string()))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(1..=25).contains(&prefix) {
            return Err(ConfigError::PrefixLength);
        }
        let net = Ipv4Net { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(ConfigError::HostBitsSet(s.to_string()));
        }
        Ok(net)
    }
}

/// The address plan of one virtual link (man/rlnet.1, "Addresses"). IPv6
/// is fd00::/64 in the one-namespace form, a /64 of its own on each named
/// network. In pasta mode ([`Shared`]) the link is a copy of the host's:
/// the namespace has the host's address and gateway, and the DNS addresses
/// are `--dns-forward`'s (unspecified when not given: no DNS address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPlan {
    pub net4: Ipv4Net,
    pub gateway4: Ipv4Addr,
    pub dns4: Ipv4Addr,
    pub guest4: Ipv4Addr,
    pub dhcp_start4: Ipv4Addr,
    /// None with `--disable-ipv6`.
    pub v6: Option<V6Plan>,
    /// pasta's model; None for slirp4netns's (rlnet's own private subnet).
    pub shared: Option<Shared>,
}

/// pasta's address model (docs/compat.md, "rlnet as pasta"): the subnet is
/// the host's LAN, so its addresses are real hosts (reached through host
/// sockets, not dropped), and a few addresses are translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// IPv4 in use (`-6/--ipv6-only` turns it off; the v4 fields of the
    /// plan are then placeholders).
    pub ipv4: bool,
    /// `--map-host-loopback` (default: the gateway, unless `--no-map-gw`):
    /// this address reaches the host's 127.0.0.1 / ::1.
    pub loopback4: Option<Ipv4Addr>,
    pub loopback6: Option<Ipv6Addr>,
    /// `--map-guest-addr`: (this address, the host's own address it reaches).
    pub host4: Option<(Ipv4Addr, Ipv4Addr)>,
    pub host6: Option<(Ipv6Addr, Ipv6Addr)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Plan {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    pub gateway6: Ipv6Addr,
    pub dns6: Ipv6Addr,
    pub guest6: Ipv6Addr,
}

impl AddrPlan {
    /// slirp4netns's plan: `net4` and, with IPv6, fd00::/64.
    pub fn new(net4: Ipv4Net, ipv6: bool) -> Self {
        Self::with_v6(
            net4,
            ipv6.then_some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0)),
        )
    }

    /// The plan for `net4` and, if given, the /64 `prefix6`: gateway (the
    /// host) at host number 2, DNS at 3, the namespace at 100 (::100),
    /// DHCP leases from 15.
    pub fn with_v6(net4: Ipv4Net, prefix6: Option<Ipv6Addr>) -> Self {
        let v6 = prefix6.map(|prefix| {
            let host = |n: u16| {
                let mut s = prefix.segments();
                s[7] = n;
                Ipv6Addr::from(s)
            };
            V6Plan {
                prefix,
                prefix_len: 64,
                gateway6: host(2),
                dns6: host(3),
                guest6: host(0x100),
            }
        });
        AddrPlan {
            net4,
            gateway4: net4.host(2),
            dns4: net4.host(3),
            guest4: net4.host(100),
            dhcp_start4: net4.host(15),
            v6,
            shared: None,
        }
    }

    /// Is IPv4 in use on this link?
    pub fn ipv4(&self) -> bool {
        self.shared.is_none_or(|s| s.ipv4)
    }

    /// The DNS stub's address of a family, if the link has one (pasta mode
    /// has one only with `--dns-forward`).
    pub fn dns(&self, v6: bool) -> Option<IpAddr> {
        let ip = if v6 {
            IpAddr::V6(self.v6?.dns6)
        } else {
            IpAddr::V4(self.dns4)
        };
        (!ip.is_unspecified()).then_some(ip)
    }

    /// What the host's names (`host.containers.internal`, ...) stand for:
    /// the gateway, or in pasta mode the address that reaches the host's
    /// own address (else its loopback), if any.
    pub fn host_addr(&self, v6: bool) -> Option<IpAddr> {
        match (self.shared, v6) {
            (None, false) => Some(IpAddr::V4(self.gateway4)),
            (None, true) => self.v6.map(|v6| IpAddr::V6(v6.gateway6)),
            (Some(s), false) => s.host4.map(|h| h.0).or(s.loopback4).map(IpAddr::V4),
            (Some(s), true) => s.host6.map(|h| h.0).or(s.loopback6).map(IpAddr::V6),
        }
    }

    /// True for an address of this link's own subnets (IPv4 network or the
    /// IPv6 /64): outbound NAT never sends there.
    pub fn in_subnet(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.net4.contains(a),
            IpAddr::V6(a) => self.v6.is_some_and(|v6| {
                let p = u128::from(v6.prefix);
                let mask = u128::MAX << (128 - u32::from(v6.prefix_len));
                u128::from(a) & mask == p
            }),
        }
    }
}

impl Default for AddrPlan {
    fn default() -> Self {
        AddrPlan::new(default_net4(), true)
    }
}

pub fn default_net4() -> Ipv4Net {
    Ipv4Net {
        addr: Ipv4Addr::new(10, 0, 2, 0),
        prefix: 24,
    }
}

/// Everything rlnet needs to serve one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub target: Target,
    pub tap_name: String,
    pub configure: Configure,
    pub mtu: u32,
    pub plan: AddrPlan,
    /// Gateway address reaches the host's loopback (slirp4netns default).
    pub host_loopback: bool,
    /// DNS stub at N+3.
    pub dns: bool,
    pub outbound4: Option<Outbound>,
    pub outbound6: Option<Outbound>,
    pub mac: Option<[u8; 6]>,
    pub ready_fd: Option<RawFd>,
    pub exit_fd: Option<RawFd>,
    pub api_socket: Option<PathBuf>,
    /// Sandbox (mount namespace, capabilities) after setup; on unless
    /// `--disable-sandbox`.
    pub enable_sandbox: bool,
    /// Seccomp filter after setup; on unless `--disable-seccomp`.
    pub enable_seccomp: bool,
    /// `-p/--publish`: host ports forwarded into the namespace at start-up.
    pub publish: Vec<PublishSpec>,
    /// `--publish-mode`: how published connections enter the namespace.
    pub publish_mode: Mode,
    /// `--dns-upstream`: the DNS stub forwards to these, in order, instead
    /// of the servers of the host's resolv.conf.
    pub dns_upstream: Vec<SocketAddr>,
    /// `--add-host NAME:IP`: names the DNS stub answers itself.
    pub add_hosts: Vec<(String, IpAddr)>,
    /// `--resolv-conf PATH`: where the host's resolvers are listed
    /// (default /etc/resolv.conf).
    pub resolv_conf: Option<PathBuf>,
}

impl Config {
    pub fn new(target: Target) -> Self {
        Config {
            target,
            tap_name: "tap0".to_string(),
            configure: Configure::Auto,
            mtu: DEFAULT_MTU,
            plan: AddrPlan::default(),
            host_loopback: true,
            dns: true,
            outbound4: None,
            outbound6: None,
            mac: None,
            ready_fd: None,
            exit_fd: None,
            api_socket: None,
            // Confined by default (issue 13 finding 2); the filter where
            // rlnet has one (sys/seccomp.rs).
            enable_sandbox: true,
            enable_seccomp: SECCOMP_ARCH,
            publish: Vec::new(),
            publish_mode: Mode::Stack,
            dns_upstream: Vec::new(),
            add_hosts: Vec::new(),
            resolv_conf: None,
        }
    }

    /// Cross-field checks that single-option parsing cannot do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = if self.plan.v6.is_some() {
            MIN_MTU_IPV6
        } else {
            MIN_MTU
        };
        if self.mtu < min {
            return Err(ConfigError::MtuTooSmall(self.mtu));
        }
        Ok(())
    }
}

/// `--mtu`: 1..=65521 parses (slirp4netns's range); the lower bound that the
/// link needs is checked by [`Config::validate`].
pub fn parse_mtu(s: &str) -> Result<u32, ConfigError> {
    match s.trim().parse::<u32>() {
        Ok(m) if (1..=MAX_MTU).contains(&m) => Ok(m),
        _ => Err(ConfigError::MtuRange(s.to_string())),
    }
}

pub fn parse_mac(s: &str) -> Result<[u8; 6], ConfigError> {
    let bad = || ConfigError::Mac(s.to_string());
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.is_empty() || part.len() > 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        // A multicast or all-zero MAC cannot be an interface address.
        return Err(bad());
    }
    Ok(mac)
}

pub fn parse_outbound(s: &str, v6: bool) -> Result<Outbound, ConfigError> {
    let err = || {
        if v6 {
            ConfigError::OutboundAddr6(s.to_string())
        } else {
            ConfigError::OutboundAddr(s.to_string())
        }
    };
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if !v6 => Ok(Outbound::Addr(IpAddr::V4(a))),
        Ok(IpAddr::V6(a)) if v6 => Ok(Outbound::Addr(IpAddr::V6(a))),
        Ok(_) => Err(err()),
        Err(_) if valid_ifname(s) => Ok(Outbound::Interface(s.to_string())),
        Err(_) => Err(err()),
    }
}

pub fn valid_ifname(s: &str) -> bool {
    (1..16).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

pub fn parse_tap_name(s: &str) -> Result<String, ConfigError> {
    if valid_ifname(s) {
        Ok(s.to_string())
    } else {
        Err(ConfigError::TapName(s.to_string()))
    }
}

pub fn parse_pid(s: &str) -> Result<u32, ConfigError> {
    match s.parse::<u32>() {
        Ok(p) if p > 0 && p <= i32::MAX as u32 => Ok(p),
        _ => Err(ConfigError::Pid(s.to_string())),
    }
}

pub fn parse_fd(what: &'static str, s: &str) -> Result<RawFd, ConfigError> {
    match s.parse::<RawFd>() {
        Ok(fd) if fd >= 0 => Ok(fd),
        _ => Err(ConfigError::Fd(what, s.to_string())),
    }
}

/// Unix socket paths must fit `sun_path` (108 bytes including the NUL).
pub fn check_api_socket_path(p: &std::path::Path) -> Result<(), ConfigError> {
    if p.as_os_str().len() >= 108 {
        return Err(ConfigError::ApiSocketTooLong(p.display().to_string()));
    }
    Ok(())
}

/// `--dns-upstream IP[:PORT]`: `192.0.2.1`, `127.0.0.53:53`, `::1`,
/// `[::1]`, `[::1]:5353` (port 53 if none). Refuses what the DNS stub
/// cannot forward to: unspecified, multicast and broadcast addresses, port
/// 0, and the stub's own addresses in `plan` (a loop).
pub fn parse_dns_upstream(s: &str, plan: &AddrPlan) -> Result<SocketAddr, ConfigError> {
    let addr = if let Ok(a) = s.parse::<SocketAddr>() {
        a
    } else {
        let bare = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        match bare.parse::<IpAddr>() {
            // Brackets are for IPv6 only.
            Ok(IpAddr::V4(_)) if bare != s => {
                return Err(ConfigError::DnsUpstream(s.to_string()));
            }
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => return Err(ConfigError::DnsUpstream(s.to_string())),
        }
    };
    let ip = addr.ip().to_canonical();
    let own = match ip {
        IpAddr::V4(a) => a == plan.dns4 || a.is_broadcast(),
        IpAddr::V6(a) => plan.v6.is_some_and(|v6| a == v6.dns6),
    };
    if addr.port() == 0 || ip.is_unspecified() || ip.is_multicast() || own {
        return Err(ConfigError::DnsUpstreamAddr(s.to_string()));
    }
    Ok(addr)
}

/// A host name as `--add-host` takes it: dot-separated labels of letters,
/// digits, '-' and '_' (1-63 characters each, not starting or ending with
/// '-'), 253 characters at most, an optional trailing dot.
pub fn valid_host_name(text: &str) -> bool {
    let t = text.strip_suffix('.').unwrap_or(text);
    !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `--add-host NAME:IP` (also `NAME=IP`, IPv6 with or without brackets, as
/// Docker takes it). IP `host-gateway` means the gateway: one entry per
/// address family of `plan`.
pub fn parse_add_host(s: &str, plan: &AddrPlan) -> Result<Vec<(String, IpAddr)>, ConfigError> {
    let Some(at) = s.find([':', '=']) else {
        return Err(ConfigError::AddHost(s.to_string()));
    };
    let (name, ip) = (&s[..at], &s[at + 1..]);
    if name.is_empty() || ip.is_empty() {
        return Err(ConfigError::AddHost(s.to_string()));
    }
    if !valid_host_name(name) {
        return Err(ConfigError::HostName(name.to_string()));
    }
    if ip == "host-gateway" {
        let mut v = vec![(name.to_string(), IpAddr::V4(plan.gateway4))];
        if let Some(v6) = plan.v6 {
            v.push((name.to_string(), IpAddr::V6(v6.gateway6)));
        }
        return Ok(v);
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(ip);
    match bare.parse::<IpAddr>() {
        Ok(a @ IpAddr::V6(_)) | Ok(a @ IpAddr::V4(_))
            if !(a.is_unspecified() || a.is_multicast() || (a.is_ipv4() && bare != ip)) =>
        {
            Ok(vec![(name.to_string(), a)])
        }
        _ => Err(ConfigError::HostAddr(ip.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_upstream_forms() {
        let plan = AddrPlan::default();
        for (s, want) in [
            ("192.0.2.1", "192.0.2.1:53"),
            ("127.0.0.53:53", "127.0.0.53:53"),
            ("127.0.0.1:5353", "127.0.0.1:5353"),
            ("::1", "[::1]:53"),
            ("[::1]", "[::1]:53"),
            ("[::1]:5353", "[::1]:5353"),
            ("2001:db8::53", "[2001:db8::53]:53"),
            ("10.0.2.2", "10.0.2.2:53"),
        ] {
            assert_eq!(
                parse_dns_upstream(s, &plan).unwrap().to_string(),
                want,
                "{s}"
            );
        }
        for bad in [
            "",
            "x",
            "1.2.3",
            "192.0.2.1:",
            "192.0.2.1:99999",
            "[192.0.2.1]",
            "::1:53:",
            "dns.example",
        ] {
            assert_eq!(
                parse_dns_upstream(bad, &plan),
                Err(ConfigError::DnsUpstream(bad.into())),
                "{bad}"
            );
        }
        for bad in [
            "0.0.0.0",
            "::",
            "10.0.2.3",
            "[fd00::3]:53",
            "255.255.255.255",
            "224.0.0.251",
            "192.0.2.1:0",
        ] {
            assert_eq!(
                parse_dns_upstream(bad, &plan),
                Err(ConfigError::DnsUpstreamAddr(bad.into())),
                "{bad}"
            );
        }
        // fd00::3 is the stub only with IPv6 on.
        assert!(parse_dns_upstream("fd00::3", &AddrPlan::new(default_net4(), false)).is_ok());
    }

    #[test]
    fn add_host_forms() {
        let plan = AddrPlan::default();
        let one = |s: &str| parse_add_host(s, &plan).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(one("db:192.0.2.7"), [("db".into(), ip("192.0.2.7"))]);
        assert_eq!(one("db=192.0.2.7"), [("db".into(), ip("192.0.2.7"))]);
        assert_eq!(
            one("db.example.com.:2001:db8::7"),
            [("db.example.com.".into(), ip("2001:db8::7"))]
        );
        assert_eq!(
            one("my_host=[2001:db8::7]"),
            [("my_host".into(), ip("2001:db8::7"))]
        );
        assert_eq!(
            one("host.docker.internal:host-gateway"),
            [
                ("host.docker.internal".into(), ip("10.0.2.2")),
                ("host.docker.internal".into(), ip("fd00::2"))
            ]
        );
        let no6 = AddrPlan::new(default_net4(), false);
        assert_eq!(parse_add_host("gw:host-gateway", &no6).unwrap().len(), 1);
        for bad in ["db", "db:", ":192.0.2.7", ""] {
            assert_eq!(
                parse_add_host(bad, &plan),
                Err(ConfigError::AddHost(bad.into())),
                "{bad}"
            );
        }
        for (bad, name) in [
            ("-db:192.0.2.7", "-db"),
            ("a b:192.0.2.7", "a b"),
            ("a..b=::1", "a..b"),
        ] {
            assert_eq!(
                parse_add_host(bad, &plan),
                Err(ConfigError::HostName(name.into())),
                "{bad}"
            );
        }
        for (bad, addr) in [
            ("db:999.1.1.1", "999.1.1.1"),
            ("db:0.0.0.0", "0.0.0.0"),
            ("db=ff02::1", "ff02::1"),
            ("db=[192.0.2.1]", "[192.0.2.1]"),
            ("db:gateway", "gateway"),
        ] {
            assert_eq!(
                parse_add_host(bad, &plan),
                Err(ConfigError::HostAddr(addr.into())),
                "{bad}"
            );
        }
        assert!(valid_host_name(&"a".repeat(63)));
        assert!(!valid_host_name(&"a".repeat(64)));
        assert!(!valid_host_name(&["a"; 128].join(".")));
        assert!(!valid_host_name("."));
    }

    #[test]
    fn cidr_texts_match_slirp4netns() {
        for (input, want) in [
            ("24", "invalid CIDR: 24"),
            ("foo", "invalid CIDR: foo"),
            ("10.0.2.0", "invalid CIDR: 10.0.2.0"),
            ("300.0.0.0/24", "invalid network address: 300.0.0.0"),
            ("10.0.2.0/26", "prefix length needs to be 1-25"),
            ("10.0.2.0/0", "prefix length needs to be 1-25"),
            (
                "10.0.2.100/24",
                "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24",
            ),
        ] {
            let err = input.parse::<Ipv4Net>().unwrap_err();
            assert_eq!(err.to_string(), want, "input {input}");
        }
    }

    #[test]
    fn cidr_moves_the_plan() {
        let net: Ipv4Net = "10.0.135.128/25".parse().unwrap();
        let plan = AddrPlan::new(net, true);
        assert_eq!(plan.guest4, Ipv4Addr::new(10, 0, 135, 228));
        assert_eq!(plan.gateway4, Ipv4Addr::new(10, 0, 135, 130));
        assert_eq!(plan.dns4, Ipv4Addr::new(10, 0, 135, 131));
        assert!(plan.in_subnet("10.0.135.200".parse().unwrap()));
        assert!(!plan.in_subnet("10.0.135.1".parse().unwrap()));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 0, 135, 255));
    }

    #[test]
    fn default_plan() {
        let plan = AddrPlan::default();
        assert_eq!(plan.gateway4.to_string(), "10.0.2.2");
        assert_eq!(plan.dns4.to_string(), "10.0.2.3");
        assert_eq!(plan.guest4.to_string(), "10.0.2.100");
        let v6 = plan.v6.unwrap();
        assert_eq!(v6.gateway6.to_string(), "fd00::2");
        assert_eq!(v6.guest6.to_string(), "fd00::100");
        assert!(plan.in_subnet("fd00::1234".parse().unwrap()));
        assert!(!plan.in_subnet("fd01::1".parse().unwrap()));
    }

    #[test]
    fn mtu_bounds() {
        assert_eq!(parse_mtu("65520"), Ok(65520));
        assert_eq!(parse_mtu("1500"), Ok(1500));
        for bad in ["0", "65522", "70000", "-1", "abc", ""] {
            assert!(parse_mtu(bad).is_err(), "{bad}");
        }
        let mut c = Config::new(Target::Pid(1));
        c.mtu = 1000;
        assert_eq!(c.validate(), Err(ConfigError::MtuTooSmall(1000)));
        c.plan = AddrPlan::new(default_net4(), false);
        assert_eq!(c.validate(), Ok(()));
        c.mtu = 67;
        assert!(c.validate().is_err());
    }

    #[test]
    fn mac_and_names() {
        assert_eq!(
            parse_mac("0e:d4:18:d9:38:fb"),
            Ok([0x0e, 0xd4, 0x18, 0xd9, 0x38, 0xfb])
        );
        for bad in [
            "0e:d4:18:d9:38",
            "zz:d4:18:d9:38:fb",
            "01:00:5e:00:00:01",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        assert!(parse_tap_name("tap0").is_ok());
        assert!(parse_tap_name("abcdefghijklmnop").is_err());
        assert!(parse_tap_name("a/b").is_err());
        assert_eq!(parse_pid("42"), Ok(42));
        for bad in ["0", "-1", "abc", "4294967296", "2147483648"] {
            assert!(parse_pid(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_outbound("127.0.0.1", false),
            Ok(Outbound::Addr("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse_outbound("eth0", true),
            Ok(Outbound::Interface("eth0".into()))
        );
        assert!(parse_outbound("::1", false).is_err());
        assert!(parse_outbound("1.2.3.4", true).is_err());
    }
}
