//! pasta mode, pure (docs/compat.md, "rlnet as pasta"; man/rlnet.1, PASTA
//! MODE): what pasta's command line asked for ([`PastaOptions`], built by
//! `cli/pasta.rs` with the value parsers here), what the host's network
//! looks like ([`HostNet`], read by `sys/netlink.rs`), and the two resolved
//! into what the namespace gets ([`resolve`]): pasta's address model, a
//! copy of the host's default-route interface.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use thiserror::Error;

use super::{AddrPlan, DEFAULT_MTU, Ipv4Net, MAX_MTU, MIN_MTU, Outbound, Shared, V6Plan};
use crate::forward::ports::PortForwards;

/// Where a name without '/' given to `--netns` lives (as with ip-netns).
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// The namespace interface's name when the host has no template interface.
pub const DEFAULT_IFNAME: &str = "tap0";
/// pasta's "local mode" (no host interface to copy): 169.254.2.1/16 via
/// 169.254.2.2, and fe80::1 as the IPv6 gateway.
pub const LOCAL_GUEST4: Ipv4Addr = Ipv4Addr::new(169, 254, 2, 1);
pub const LOCAL_GATEWAY4: Ipv4Addr = Ipv4Addr::new(169, 254, 2, 2);
pub const LOCAL_PREFIX4: u8 = 16;
pub const LOCAL_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

/// A bad option value, in pasta's words where it has them; the command
/// line parser prefixes the program name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PastaError {
    #[error(
        "invalid address '{0}': use an IPv4 or IPv6 unicast address, optionally with /PREFIX, like 192.0.2.2/24 or 2001:db8::2"
    )]
    Address(String),
    #[error("invalid netmask '{0}': use a prefix length 1-32 or a dotted mask like 255.255.255.0")]
    Netmask(String),
    #[error("-a {0} already has a prefix length: give the netmask there or with -n, not both")]
    NetmaskTwice(String),
    #[error(
        "invalid gateway address '{0}': use an IPv4 or IPv6 unicast address that is not loopback"
    )]
    Gateway(String),
    #[error(
        "invalid or redundant outbound address '{0}': use a unicast IPv4 or IPv6 address of this host"
    )]
    Outbound(String),
    #[error("invalid interface name '{0}': use 1-15 characters, no '/', ':' or whitespace")]
    Ifname(String),
    #[error("invalid MTU '{0}': use 0 (do not assign) or 68-65521")]
    Mtu(String),
    #[error("MTU {0} is too small for IPv6 (at least 1280): raise it, or give -4 for IPv4 only")]
    MtuIpv6(u32),
    #[error(
        "invalid MAC address '{0}': use six hex bytes separated by ':', like 9a:55:9a:55:9a:55"
    )]
    Mac(String),
    #[error(
        "invalid address to remap to host '{0}': use none or a unicast address that is not loopback"
    )]
    Map(String),
    #[error(
        "invalid DNS forwarding address '{0}': use a unicast address that is not loopback, like 169.254.1.1"
    )]
    DnsForward(String),
    #[error("invalid host nameserver address '{0}': use a unicast address, like 127.0.0.53")]
    DnsHost(String),
    #[error("cannot use DNS address '{0}': use none or an IPv4 or IPv6 address")]
    Dns(String),
    #[error("cannot use DNS search domain '{0}': use none or space-separated domain names")]
    Search(String),
    #[error("invalid {what} '{path}': give a non-empty path")]
    Path { what: &'static str, path: String },
    #[error("invalid network namespace '{0}': give a path, or a name in /run/netns")]
    Netns(String),
    #[error("invalid PID '{0}': give the PID of a running process, like 1234")]
    Pid(String),
    #[error("both --netns and a PID or command given ({0}): give one of them")]
    NetnsAndTarget(String),
    #[error(
        "--userns needs --netns or a PID: it names the user namespace of that network namespace"
    )]
    UsernsAlone,
}

/// The namespace to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PastaTarget {
    /// `pasta [OPTIONS] [COMMAND [ARG]...]`: a new user and network
    /// namespace running COMMAND (the user's shell when empty).
    Command(Vec<String>),
    /// `pasta [OPTIONS] PID`: the network (and user) namespace of PID.
    Pid(u32),
    /// `--netns PATH|NAME`.
    Netns(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// `-q`: warnings and errors only.
    Quiet,
    #[default]
    Normal,
    /// `-d`.
    Debug,
    /// `--trace`.
    Trace,
}

/// `--map-host-loopback` / `--map-guest-addr` for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddrMap<T> {
    /// Not given.
    #[default]
    Default,
    /// `none`.
    Off,
    To(T),
}

/// The command line, as given (defaults are applied by [`resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaOptions {
    pub target: PastaTarget,
    /// `--userns PATH`.
    pub userns: Option<PathBuf>,
    /// `--netns-only`.
    pub netns_only: bool,
    /// Exit when the `--netns` file is deleted (`--no-netns-quit`: don't).
    pub netns_quit: bool,
    /// `--config-net`.
    pub config_net: bool,
    /// `-f`.
    pub foreground: bool,
    /// `-P/--pid FILE`.
    pub pid_file: Option<PathBuf>,
    /// `-l/--log-file FILE`.
    pub log_file: Option<PathBuf>,
    pub verbosity: Verbosity,
    /// `-4` / `-6` (the last one given wins).
    pub ipv4: bool,
    pub ipv6: bool,
    /// `-a` (with a prefix length if given as CIDR).
    pub addr4: Option<(Ipv4Addr, Option<u8>)>,
    pub addr6: Option<Ipv6Addr>,
    /// `-n`.
    pub netmask: Option<u8>,
    /// `-g`.
    pub gateway4: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// `-i`.
    pub interface: Option<String>,
    /// `-o`.
    pub outbound4: Option<Ipv4Addr>,
    pub outbound6: Option<Ipv6Addr>,
    /// `--outbound-if4/6`.
    pub outbound_if4: Option<String>,
    pub outbound_if6: Option<String>,
    /// `-m`: None = 65520; Some(0) = leave the interface's own.
    pub mtu: Option<u32>,
    /// `-I/--ns-ifname`.
    pub ns_ifname: Option<String>,
    /// `-M/--mac-addr`: rlnet's side of the link.
    pub our_mac: Option<[u8; 6]>,
    /// `--ns-mac-addr`: the namespace's interface.
    pub ns_mac: Option<[u8; 6]>,
    pub tcp: PortForwards,
    pub udp: PortForwards,
    pub tcp_ns: PortForwards,
    pub udp_ns: PortForwards,
    /// `--no-map-gw` clears it, `--map-gw` (Podman's spelling) sets it.
    pub map_gw: bool,
    pub map_loopback4: AddrMap<Ipv4Addr>,
    pub map_loopback6: AddrMap<Ipv6Addr>,
    pub map_guest4: AddrMap<Ipv4Addr>,
    pub map_guest6: AddrMap<Ipv6Addr>,
    /// `--dns-forward`.
    pub dns_forward4: Option<Ipv4Addr>,
    pub dns_forward6: Option<Ipv6Addr>,
    /// `--dns-host`: where forwarded queries go (else resolv.conf's servers).
    pub dns_host4: Option<Ipv4Addr>,
    pub dns_host6: Option<Ipv6Addr>,
    /// `-D` (validated; see docs/compat.md for its effect).
    pub dns: Vec<IpAddr>,
    /// `-S` (validated; see docs/compat.md for its effect).
    pub search: Vec<String>,
    pub no_dhcp: bool,
    pub no_ndp: bool,
    pub no_dhcpv6: bool,
    pub no_ra: bool,
    /// `--no-splice`: loopback clients of published ports go through the
    /// stack too.
    pub splice: bool,
    /// `--host-lo-to-ns-lo`: spliced loopback clients reach the namespace's
    /// loopback (127.0.0.1, ::1) instead of its address.
    pub ns_lo: bool,
}

impl PastaOptions {
    pub fn new(target: PastaTarget) -> PastaOptions {
        PastaOptions {
            target,
            userns: None,
            netns_only: false,
            netns_quit: true,
            config_net: false,
            foreground: false,
            pid_file: None,
            log_file: None,
            verbosity: Verbosity::Normal,
            ipv4: true,
            ipv6: true,
            addr4: None,
            addr6: None,
            netmask: None,
            gateway4: None,
            gateway6: None,
            interface: None,
            outbound4: None,
            outbound6: None,
            outbound_if4: None,
            outbound_if6: None,
            mtu: None,
            ns_ifname: None,
            our_mac: None,
            ns_mac: None,
            tcp: PortForwards::Unset,
            udp: PortForwards::Unset,
            tcp_ns: PortForwards::Unset,
            udp_ns: PortForwards::Unset,
            map_gw: true,
            map_loopback4: AddrMap::Default,
            map_loopback6: AddrMap::Default,
            map_guest4: AddrMap::Default,
            map_guest6: AddrMap::Default,
            dns_forward4: None,
            dns_forward6: None,
            dns_host4: None,
            dns_host6: None,
            dns: Vec::new(),
            search: Vec::new(),
            no_dhcp: false,
            no_ndp: false,
            no_dhcpv6: false,
            no_ra: false,
            splice: true,
            ns_lo: false,
        }
    }

    /// Cross-option checks, once every option is in.
    pub fn validate(&self) -> Result<(), PastaError> {
        if let (Some((a, Some(_))), Some(_)) = (self.addr4, self.netmask) {
            return Err(PastaError::NetmaskTwice(a.to_string()));
        }
        if self.userns.is_some() && matches!(self.target, PastaTarget::Command(_)) {
            return Err(PastaError::UsernsAlone);
        }
        if let Some(m) = self.mtu
            && self.ipv6
            && m != 0
            && m < super::MIN_MTU_IPV6
        {
            return Err(PastaError::MtuIpv6(m));
        }
        Ok(())
    }
}

fn unicast4(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

fn unicast6(a: Ipv6Addr) -> bool {
    !(a.is_unspecified()
        || a.is_multicast()
        || a.to_ipv4_mapped().is_some()
        || a.segments()[..6] == [0; 6])
}

/// `-a ADDR[/PREFIX]`.
pub fn parse_address(s: &str) -> Result<IpAddr, PastaError> {
    let bad = || PastaError::Address(s.to_string());
    match s.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) if unicast4(a) && !a.is_loopback() => Ok(IpAddr::V4(a)),
        IpAddr::V6(a) if unicast6(a) && !a.is_loopback() => Ok(IpAddr::V6(a)),
        _ => Err(bad()),
    }
}

/// `-a`: the address and, with CIDR notation, its prefix length.
pub fn parse_address_cidr(s: &str) -> Result<(IpAddr, Option<u8>), PastaError> {
    let bad = || PastaError::Address(s.to_string());
    let Some((addr, len)) = s.split_once('/') else {
        return Ok((parse_address(s).map_err(|_| bad())?, None));
    };
    let ip = parse_address(addr).map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match decimal(len)
        .filter(|&n| (1..=max).contains(&n))
        .and_then(|n| u8::try_from(n).ok())
    {
        Some(n) => Ok((ip, Some(n))),
        None => Err(bad()),
    }
}

/// Decimal digits only.
fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `-n`: a prefix length or a contiguous dotted mask.
pub fn parse_netmask(s: &str) -> Result<u8, PastaError> {
    let bad = || PastaError::Netmask(s.to_string());
    if let Ok(mask) = s.parse::<Ipv4Addr>() {
        let m = u32::from(mask);
        let len = m.count_ones();
        if len == 0 || m.checked_shl(len).unwrap_or(0) != 0 {
            return Err(bad());
        }
        return u8::try_from(len).map_err(|_| bad());
    }
    match decimal(s) {
        Some(n @ 1..=32) => u8::try_from(n).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `-g`.
pub fn parse_gateway(s: &str) -> Result<IpAddr, PastaError> {
    parse_address(s).map_err(|_| PastaError::Gateway(s.to_string()))
}

/// `-o`: loopback is allowed (pasta allows it for IPv4).
pub fn parse_outbound(s: &str) -> Result<IpAddr, PastaError> {
    let bad = || PastaError::Outbound(s.to_string());
    match s.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) if unicast4(a) => Ok(IpAddr::V4(a)),
        IpAddr::V6(a) if unicast6(a) && !a.is_loopback() => Ok(IpAddr::V6(a)),
        _ => Err(bad()),
    }
}

/// `-i`, `-I`, `--outbound-if4/6`.
pub fn parse_ifname(s: &str) -> Result<String, PastaError> {
    if super::valid_ifname(s) {
        Ok(s.to_string())
    } else {
        Err(PastaError::Ifname(s.to_string()))
    }
}

/// `-m`: 0, or MIN_MTU..=MAX_MTU.
pub fn parse_mtu(s: &str) -> Result<u32, PastaError> {
    match decimal(s) {
        Some(m) if m == 0 || (MIN_MTU..=MAX_MTU).contains(&m) => Ok(m),
        _ => Err(PastaError::Mtu(s.to_string())),
    }
}

/// `-M`, `--ns-mac-addr`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], PastaError> {
    super::parse_mac(s).map_err(|_| PastaError::Mac(s.to_string()))
}

/// `--map-host-loopback` / `--map-guest-addr`: `none` or an address.
pub fn parse_map(s: &str) -> Result<Option<IpAddr>, PastaError> {
    if s == "none" {
        return Ok(None);
    }
    parse_address(s)
        .map(Some)
        .map_err(|_| PastaError::Map(s.to_string()))
}

/// `--dns-forward`.
pub fn parse_dns_forward(s: &str) -> Result<IpAddr, PastaError> {
    parse_address(s).map_err(|_| PastaError::DnsForward(s.to_string()))
}

/// `--dns-host`: loopback resolvers are fine (rlnet asks them from the host).
pub fn parse_dns_host(s: &str) -> Result<IpAddr, PastaError> {
    let bad = || PastaError::DnsHost(s.to_string());
    match s.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) if unicast4(a) => Ok(IpAddr::V4(a)),
        IpAddr::V6(a) if unicast6(a) || a.is_loopback() => Ok(IpAddr::V6(a)),
        _ => Err(bad()),
    }
}

/// `-D`: `none` (an empty list) or an address.
pub fn parse_dns(s: &str) -> Result<Option<IpAddr>, PastaError> {
    if s == "none" {
        return Ok(None);
    }
    s.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| PastaError::Dns(s.to_string()))
}

/// `-S`: `none` (an empty list) or space-separated domains.
pub fn parse_search(s: &str) -> Result<Vec<String>, PastaError> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let words: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    if words.is_empty() || !words.iter().all(|w| super::valid_host_name(w)) {
        return Err(PastaError::Search(s.to_string()));
    }
    Ok(words)
}

/// `-P`, `-l`, `--userns`: a non-empty path.
pub fn parse_path(what: &'static str, s: &str) -> Result<PathBuf, PastaError> {
    if s.is_empty() || s.contains('\0') {
        return Err(PastaError::Path {
            what,
            path: s.to_string(),
        });
    }
    Ok(PathBuf::from(s))
}

/// `--netns PATH|NAME`: a name (no '/') is in /run/netns.
pub fn parse_netns(s: &str) -> Result<PathBuf, PastaError> {
    if s.is_empty() || s == "." || s == ".." || s.contains('\0') {
        return Err(PastaError::Netns(s.to_string()));
    }
    if s.contains('/') {
        Ok(PathBuf::from(s))
    } else {
        Ok(PathBuf::from(NETNS_RUN_DIR).join(s))
    }
}

/// The PID of the PID form: what is left after the options, if it is one
/// word of digits (pasta takes it as a PID then, and refuses a bad one).
pub fn parse_pid_word(s: &str) -> Option<Result<u32, PastaError>> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(super::parse_pid(s).map_err(|_| PastaError::Pid(s.to_string())))
}

// ------------------------------------------------------------ the host

/// One route of the host's main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRoute {
    pub dst: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub oif: u32,
    /// Lower is preferred.
    pub metric: u32,
    /// Made by the kernel for an address (not copied: the address makes it).
    pub kernel: bool,
}

/// One address of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// The host's links, addresses and main-table routes, as rtnetlink lists
/// them (`sys/netlink.rs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostNet {
    pub links: Vec<(u32, String)>,
    pub addrs: Vec<HostAddr>,
    pub routes: Vec<HostRoute>,
}

/// The interface a family is copied from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    pub index: u32,
    /// Its addresses of the family (IPv6: no link-local ones), in the
    /// kernel's order.
    pub addrs: Vec<(IpAddr, u8)>,
    pub gateway: Option<IpAddr>,
    /// Other routes through it (not the default, not the kernel's own).
    pub routes: Vec<(IpAddr, u8, Option<IpAddr>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("interface {0} given with {1} does not exist on the host")]
    NoSuchInterface(String, &'static str),
    #[error(
        "interface {0} given with {1} has no {2} address; pick another with -i or --outbound-if4/6, or give -a"
    )]
    NoAddress(String, &'static str, &'static str),
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    }
}

impl HostNet {
    fn name(&self, index: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, n)| n.as_str())
    }

    fn index(&self, name: &str) -> Option<u32> {
        self.links.iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }

    /// The interface to copy for a family: the one named (`-i`, else
    /// `--outbound-if4/6`), else the one of the best default route, else
    /// the only interface with any route of the family. None: pasta's
    /// local mode.
    pub fn template(
        &self,
        v6: bool,
        named: Option<(&str, &'static str)>,
    ) -> Result<Option<Template>, TemplateError> {
        let fam = |ip: &IpAddr| ip.is_ipv6() == v6;
        let index = match named {
            Some((name, opt)) => Some(
                self.index(name)
                    .ok_or_else(|| TemplateError::NoSuchInterface(name.into(), opt))?,
            ),
            None => self.default_route(v6).map(|r| r.oif).or_else(|| {
                let mut with_routes: Vec<u32> = self
                    .routes
                    .iter()
                    .filter(|r| fam(&r.dst) && self.name(r.oif) != Some("lo"))
                    .map(|r| r.oif)
                    .collect();
                with_routes.dedup();
                (with_routes.len() == 1).then(|| with_routes[0])
            }),
        };
        let Some(index) = index else { return Ok(None) };
        let name = self.name(index).unwrap_or(DEFAULT_IFNAME).to_string();
        let addrs: Vec<(IpAddr, u8)> = self
            .addrs
            .iter()
            .filter(|a| a.index == index && fam(&a.addr) && !(v6 && is_link_local(a.addr)))
            .map(|a| (a.addr, a.prefix))
            .collect();
        if addrs.is_empty() {
            return match named {
                Some((_, opt)) => Err(TemplateError::NoAddress(
                    name,
                    opt,
                    if v6 { "IPv6" } else { "IPv4" },
                )),
                // A default route on an interface without an address of
                // the family: nothing to copy.
                None => Ok(None),
            };
        }
        let gateway = self
            .routes
            .iter()
            .filter(|r| r.oif == index && r.prefix == 0 && fam(&r.dst))
            .min_by_key(|r| r.metric)
            .and_then(|r| r.gateway);
        let routes = self
            .routes
            .iter()
            .filter(|r| r.oif == index && r.prefix != 0 && fam(&r.dst) && !r.kernel)
            .filter(|r| !(v6 && is_link_local(r.dst)))
            .map(|r| (r.dst, r.prefix, r.gateway))
            .collect();
        Ok(Some(Template {
            name,
            index,
            addrs,
            gateway,
            routes,
        }))
    }

    /// The default route of a family with the lowest metric (the first
    /// listed among equals).
    fn default_route(&self, v6: bool) -> Option<&HostRoute> {
        self.routes
            .iter()
            .filter(|r| r.prefix == 0 && r.dst.is_ipv6() == v6 && r.oif != 0)
            .min_by_key(|r| r.metric)
    }
}

// ------------------------------------------------------------ resolution

/// A route to set in the namespace: destination/prefix via a gateway (none:
/// on-link).
pub type NsRoute = (IpAddr, u8, Option<IpAddr>);

/// What the namespace gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastaPlan {
    /// The interface in the namespace.
    pub ifname: String,
    pub plan: AddrPlan,
    /// With `--config-net`: addresses and routes to set.
    pub addrs: Vec<(IpAddr, u8)>,
    pub routes: Vec<NsRoute>,
    /// None: leave the interface's MTU (`-m 0`).
    pub mtu: Option<u32>,
    /// The MTU rlnet's side assumes (the interface's when not set).
    pub link_mtu: u32,
    pub outbound4: Option<Outbound>,
    pub outbound6: Option<Outbound>,
    /// `--dns-host`: the DNS stub's upstreams instead of resolv.conf's.
    pub dns_upstream: Vec<IpAddr>,
}

/// The default prefix length of an address given without one: its class
/// (pasta's rule).
fn classful(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

fn network4(a: Ipv4Addr, prefix: u8) -> Ipv4Net {
    let net = Ipv4Net { addr: a, prefix };
    Ipv4Net {
        addr: Ipv4Addr::from(u32::from(a) & net.mask()),
        prefix,
    }
}

fn net64(a: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(a) & (u128::MAX << 64))
}

/// One family's part of the plan.
struct Side<T> {
    guest: T,
    prefix: u8,
    gateway: T,
    /// The gateway is real (given, or the host's): it may map to the
    /// host's loopback. pasta: no gateway on the template, no mapping.
    real_gateway: bool,
    addrs: Vec<(IpAddr, u8)>,
    routes: Vec<NsRoute>,
}

/// The IPv4 side.
fn resolve4(o: &PastaOptions, t: Option<&Template>) -> Side<Ipv4Addr> {
    let v4 = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    };
    let first = t.and_then(|t| t.addrs.first().map(|(a, p)| (v4(a), *p)));
    let (guest, prefix) = match (o.addr4, first) {
        (Some((a, len)), _) => (a, len.or(o.netmask).unwrap_or_else(|| classful(a))),
        (None, Some((Some(a), p))) => (a, o.netmask.unwrap_or(p)),
        _ => (LOCAL_GUEST4, o.netmask.unwrap_or(LOCAL_PREFIX4)),
    };
    let host_gw = t.and_then(|t| t.gateway.as_ref().and_then(v4));
    let local = t.is_none() && o.addr4.is_none();
    let gateway = match (o.gateway4.or(host_gw), local) {
        (Some(g), _) => g,
        (None, true) => LOCAL_GATEWAY4,
        // The plan needs a gateway even when the host's interface has
        // none: the subnet's first address stands in (not mapped, no route).
        (None, false) => Ipv4Addr::from(u32::from(network4(guest, prefix).addr).wrapping_add(1)),
    };
    let real_gateway = o.gateway4.is_some() || host_gw.is_some() || local;
    let addrs = match (o.addr4, t) {
        (None, Some(t)) if o.netmask.is_none() => t.addrs.clone(),
        _ => vec![(IpAddr::V4(guest), prefix)],
    };
    let mut routes = Vec::new();
    if o.gateway4.is_none()
        && let Some(t) = t
    {
        routes.extend(t.routes.iter().copied());
    }
    if real_gateway {
        routes.push((
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            0,
            Some(IpAddr::V4(gateway)),
        ));
    }
    Side {
        guest,
        prefix,
        gateway,
        real_gateway,
        addrs,
        routes,
    }
}

/// The IPv6 side, if there is an address to use.
fn resolve6(o: &PastaOptions, t: Option<&Template>) -> Option<Side<Ipv6Addr>> {
    let v6 = |ip: &IpAddr| match ip {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    };
    let guest = o
        .addr6
        .or_else(|| t.and_then(|t| t.addrs.first().and_then(|(a, _)| v6(a))))?;
    let host_gw = t.and_then(|t| t.gateway.as_ref().and_then(v6));
    let given = o.gateway6.or(host_gw);
    let gateway = given.unwrap_or(LOCAL_GATEWAY6);
    let addrs = match (o.addr6, t) {
        (None, Some(t)) => t.addrs.clone(),
        _ => vec![(IpAddr::V6(guest), 64)],
    };
    let mut routes = Vec::new();
    if o.gateway6.is_none()
        && let Some(t) = t
    {
        routes.extend(t.routes.iter().copied());
    }
    routes.push((
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        0,
        Some(IpAddr::V6(gateway)),
    ));
    Some(Side {
        guest,
        prefix: 64,
        gateway,
        real_gateway: given.is_some() || t.is_none(),
        addrs,
        routes,
    })
}

/// `--map-host-loopback`: explicit, off, or the gateway unless `--no-map-gw`.
fn loopback_map<T: Copy>(m: AddrMap<T>, map_gw: bool, gateway: T) -> Option<T> {
    match m {
        AddrMap::To(a) => Some(a),
        AddrMap::Off => None,
        AddrMap::Default => map_gw.then_some(gateway),
    }
}

fn guest_map<T: Copy>(m: AddrMap<T>, host: T) -> Option<(T, T)> {
    match m {
        AddrMap::To(a) => Some((a, host)),
        _ => None,
    }
}

/// The namespace's plan from the options and the host's templates (`t4`,
/// `t6`: the interfaces found for each family, None in local mode).
pub fn resolve(o: &PastaOptions, t4: Option<&Template>, t6: Option<&Template>) -> PastaPlan {
    let (t4, t6) = (t4.filter(|_| o.ipv4), t6.filter(|_| o.ipv6));
    let v4 = resolve4(o, t4);
    let v6 = if o.ipv6 { resolve6(o, t6) } else { None };
    let shared = Shared {
        ipv4: o.ipv4,
        loopback4: loopback_map(o.map_loopback4, o.map_gw && v4.real_gateway, v4.gateway),
        loopback6: v6
            .as_ref()
            .and_then(|s| loopback_map(o.map_loopback6, o.map_gw && s.real_gateway, s.gateway)),
        host4: guest_map(o.map_guest4, v4.guest),
        host6: v6.as_ref().and_then(|s| guest_map(o.map_guest6, s.guest)),
    };
    let plan6 = v6.as_ref().map(|s| V6Plan {
        prefix: net64(s.guest),
        prefix_len: s.prefix,
        gateway6: s.gateway,
        dns6: o.dns_forward6.unwrap_or(Ipv6Addr::UNSPECIFIED),
        guest6: s.guest,
    });
    let (mut addrs, mut routes) = if o.ipv4 {
        (v4.addrs, v4.routes)
    } else {
        (Vec::new(), Vec::new())
    };
    if let Some(s) = v6 {
        addrs.extend(s.addrs);
        routes.extend(s.routes);
    }
    let plan = AddrPlan {
        net4: network4(v4.guest, v4.prefix),
        gateway4: v4.gateway,
        dns4: o.dns_forward4.unwrap_or(Ipv4Addr::UNSPECIFIED),
        guest4: v4.guest,
        dhcp_start4: v4.guest,
        v6: plan6,
        shared: Some(shared),
    };
    let ifname = o
        .ns_ifname
        .clone()
        .or_else(|| t4.or(t6).map(|t| t.name.clone()))
        .unwrap_or_else(|| DEFAULT_IFNAME.to_string());
    let outbound = |addr: Option<IpAddr>, ifname: &Option<String>| {
        addr.map(Outbound::Addr)
            .or_else(|| ifname.clone().map(Outbound::Interface))
    };
    let mtu = match o.mtu {
        Some(0) => None,
        Some(m) => Some(m),
        None => Some(DEFAULT_MTU),
    };
    PastaPlan {
        ifname,
        plan,
        addrs,
        routes,
        mtu,
        link_mtu: mtu.unwrap_or(1500),
        outbound4: outbound(o.outbound4.map(IpAddr::V4), &o.outbound_if4),
        outbound6: outbound(o.outbound6.map(IpAddr::V6), &o.outbound_if6),
        dns_upstream: o
            .dns_host4
            .map(IpAddr::V4)
            .into_iter()
            .chain(o.dns_host6.map(IpAddr::V6))
            .collect(),
    }
}

#[cfg(test)]
mod tests;
