//! `pasta [OPTION]... [PID | [--] COMMAND [ARG]...]`: rlnet started under
//! the name `pasta`, or `rlnet pasta ...` (docs/compat.md, "rlnet as
//! pasta"). pasta's command line as getopt_long reads it, with pasta's
//! optstring ("+..."): `-t 80`, `-t80`, bundled flags (`-fq`),
//! `--tcp-ports 80`, `--tcp-ports=80`, unique prefixes of long options
//! (`--no-map`), `--` ends the options, and so does the first word that is
//! not an option (the PID or COMMAND). Errors use getopt's words where
//! callers grep them: Podman retries without `--map-guest-addr` when the
//! output says `unrecognized option '--map-guest-addr`, so that text is
//! only ever printed for options rlnet lacks. Options pasta has and rlnet
//! does not implement are refused the same way (docs/compat.md lists them
//! with the reason).
//!
//! Pure: the result is [`PastaOptions`]; every value is checked here
//! (`config/pasta.rs`, `forward/ports.rs`), one line per error, without the
//! program name (main prefixes it).

use std::ffi::OsString;

use super::{CliExit, Command, Invocation, err, utf8};
use crate::config::pasta::{self as p, AddrMap, PastaError, PastaOptions, PastaTarget, Verbosity};
use crate::forward::ports::{PortForwards, Way};

/// What each option is, for [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Debug,
    Trace,
    Quiet,
    Foreground,
    Stderr,
    LogFile,
    Help,
    Version,
    NsIfname,
    PidFile,
    Mtu,
    Address,
    Netmask,
    MacAddr,
    Gateway,
    Interface,
    Outbound,
    OutboundIf4,
    OutboundIf6,
    Dns,
    Search,
    Ipv4Only,
    Ipv6Only,
    Tcp,
    Udp,
    TcpNs,
    UdpNs,
    Userns,
    Netns,
    NetnsOnly,
    NoNetnsQuit,
    ConfigNet,
    NsMacAddr,
    DnsForward,
    DnsHost,
    MapHostLoopback,
    MapGuestAddr,
    NoMapGw,
    MapGw,
    NoDhcp,
    NoDhcpv6,
    NoNdp,
    NoRa,
    NoSplice,
    HostLoToNsLo,
}

struct Opt {
    long: &'static str,
    short: Option<char>,
    takes_value: bool,
    id: Id,
}

const fn opt(long: &'static str, short: Option<char>, takes_value: bool, id: Id) -> Opt {
    Opt {
        long,
        short,
        takes_value,
        id,
    }
}

/// The options rlnet implements, in pasta's order (getopt lists ambiguous
/// candidates in table order).
const OPTIONS: &[Opt] = &[
    opt("debug", Some('d'), false, Id::Debug),
    opt("quiet", Some('q'), false, Id::Quiet),
    opt("foreground", Some('f'), false, Id::Foreground),
    opt("stderr", Some('e'), false, Id::Stderr),
    opt("log-file", Some('l'), true, Id::LogFile),
    opt("help", Some('h'), false, Id::Help),
    opt("ns-ifname", Some('I'), true, Id::NsIfname),
    opt("pid", Some('P'), true, Id::PidFile),
    opt("mtu", Some('m'), true, Id::Mtu),
    opt("address", Some('a'), true, Id::Address),
    opt("netmask", Some('n'), true, Id::Netmask),
    opt("mac-addr", Some('M'), true, Id::MacAddr),
    opt("gateway", Some('g'), true, Id::Gateway),
    opt("interface", Some('i'), true, Id::Interface),
    opt("outbound", Some('o'), true, Id::Outbound),
    opt("dns", Some('D'), true, Id::Dns),
    opt("search", Some('S'), true, Id::Search),
    opt("no-dhcp", None, false, Id::NoDhcp),
    opt("no-dhcpv6", None, false, Id::NoDhcpv6),
    opt("no-ndp", None, false, Id::NoNdp),
    opt("no-ra", None, false, Id::NoRa),
    opt("no-splice", None, false, Id::NoSplice),
    opt("host-lo-to-ns-lo", None, false, Id::HostLoToNsLo),
    opt("no-map-gw", None, false, Id::NoMapGw),
    // Podman's pseudo-option, which it normally strips: accepted here so a
    // direct caller can undo an earlier --no-map-gw.
    opt("map-gw", None, false, Id::MapGw),
    opt("ipv4-only", Some('4'), false, Id::Ipv4Only),
    opt("ipv6-only", Some('6'), false, Id::Ipv6Only),
    opt("tcp-ports", Some('t'), true, Id::Tcp),
    opt("udp-ports", Some('u'), true, Id::Udp),
    opt("tcp-ns", Some('T'), true, Id::TcpNs),
    opt("udp-ns", Some('U'), true, Id::UdpNs),
    opt("userns", None, true, Id::Userns),
    opt("netns", None, true, Id::Netns),
    opt("ns-mac-addr", None, true, Id::NsMacAddr),
    opt("dns-forward", None, true, Id::DnsForward),
    opt("no-netns-quit", None, false, Id::NoNetnsQuit),
    opt("trace", None, false, Id::Trace),
    opt("version", None, false, Id::Version),
    opt("outbound-if4", None, true, Id::OutboundIf4),
    opt("outbound-if6", None, true, Id::OutboundIf6),
    opt("config-net", None, false, Id::ConfigNet),
    opt("netns-only", None, false, Id::NetnsOnly),
    opt("map-host-loopback", None, true, Id::MapHostLoopback),
    opt("map-guest-addr", None, true, Id::MapGuestAddr),
    opt("dns-host", None, true, Id::DnsHost),
];

/// The long options, for the help test and docs.
pub fn long_options() -> impl Iterator<Item = &'static str> {
    OPTIONS.iter().map(|o| o.long)
}

/// Is `argv0` a name under which rlnet is pasta? pasta itself checks for
/// "pasta" anywhere in its name (`pasta.avx2`, a `libexec/pasta`).
pub fn is_pasta_name(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("pasta"))
}

/// One getopt result.
enum Token {
    Opt(Id, Option<String>),
    /// What is left after the options: the PID or COMMAND.
    Rest(Vec<OsString>),
}

/// getopt_long over `args` (without the program name): the options in
/// order, then what is left. Errors are getopt's texts.
fn getopt(args: Vec<OsString>) -> Result<Vec<Token>, CliExit> {
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            if arg.as_encoded_bytes().first() == Some(&b'-') {
                return err(format!(
                    "an option is not valid UTF-8: {:?}",
                    arg.to_string_lossy()
                ));
            }
            out.push(Token::Rest(std::iter::once(arg).chain(it).collect()));
            return Ok(out);
        };
        if text == "--" {
            out.push(Token::Rest(it.collect()));
            return Ok(out);
        }
        if let Some(long) = text.strip_prefix("--") {
            out.push(long_option(long, &mut it)?);
        } else if text.len() > 1 && text.starts_with('-') {
            short_options(&text[1..], &mut it, &mut out)?;
        } else {
            // '+' in pasta's optstring: the first operand ends the options.
            out.push(Token::Rest(std::iter::once(arg).chain(it).collect()));
            return Ok(out);
        }
    }
    out.push(Token::Rest(Vec::new()));
    Ok(out)
}

/// The next word as an option's value.
fn next_value(
    it: &mut impl Iterator<Item = OsString>,
    name: &str,
) -> Option<Result<String, CliExit>> {
    it.next().map(|v| {
        v.into_string().map_err(|v| {
            CliExit::Error(format!(
                "the value of {name} is not valid UTF-8: {:?}",
                v.to_string_lossy()
            ))
        })
    })
}

/// `--name[=value]`: exact match, else a unique prefix.
fn long_option(long: &str, it: &mut impl Iterator<Item = OsString>) -> Result<Token, CliExit> {
    let (name, inline) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (long, None),
    };
    if name.is_empty() {
        return err(format!("unrecognized option '--{long}'"));
    }
    let cands: Vec<&'static Opt> = OPTIONS
        .iter()
        .filter(|o| o.long.starts_with(name))
        .collect();
    let o: &'static Opt = match OPTIONS.iter().find(|o| o.long == name) {
        Some(o) => o,
        None => match cands.as_slice() {
            [o] => o,
            [] => return err(format!("unrecognized option '--{long}'")),
            many => {
                let list: Vec<String> = many.iter().map(|o| format!("'--{}'", o.long)).collect();
                return err(format!(
                    "option '--{name}' is ambiguous; possibilities: {}",
                    list.join(" ")
                ));
            }
        },
    };
    let value = match (o.takes_value, inline) {
        (false, Some(_)) => {
            return err(format!("option '--{}' doesn't allow an argument", o.long));
        }
        (false, None) => None,
        (true, Some(v)) => Some(v),
        (true, None) => match next_value(it, &format!("--{}", o.long)) {
            Some(v) => Some(v?),
            None => return err(format!("option '--{}' requires an argument", o.long)),
        },
    };
    Ok(Token::Opt(o.id, value))
}

/// `-abc`, `-t80`, `-t 80`.
fn short_options(
    cluster: &str,
    it: &mut impl Iterator<Item = OsString>,
    out: &mut Vec<Token>,
) -> Result<(), CliExit> {
    for (i, c) in cluster.char_indices() {
        let Some(o) = OPTIONS.iter().find(|o| o.short == Some(c)) else {
            return err(format!("invalid option -- '{c}'"));
        };
        if !o.takes_value {
            out.push(Token::Opt(o.id, None));
            continue;
        }
        let rest = &cluster[i + c.len_utf8()..];
        let value = if !rest.is_empty() {
            rest.to_string()
        } else {
            match next_value(it, &format!("-{c}")) {
                Some(v) => v?,
                None => return err(format!("option requires an argument -- '{c}'")),
            }
        };
        out.push(Token::Opt(o.id, Some(value)));
        return Ok(());
    }
    Ok(())
}

fn bad(e: PastaError) -> CliExit {
    CliExit::Error(e.to_string())
}

/// Parses pasta's command line; `args` excludes the program name.
pub(super) fn parse(args: Vec<OsString>) -> Result<Invocation, CliExit> {
    let mut o = PastaOptions::new(PastaTarget::Command(Vec::new()));
    let mut netns = None;
    let mut rest = Vec::new();
    for t in getopt(args)? {
        match t {
            Token::Opt(Id::Help, _) => return Err(CliExit::Print(super::help::pasta_help_text())),
            Token::Opt(Id::Version, _) => {
                return Err(CliExit::Print(super::help::pasta_version_text()));
            }
            Token::Opt(Id::Netns, Some(v)) => netns = Some(p::parse_netns(&v).map_err(bad)?),
            Token::Opt(id, v) => apply(&mut o, id, v.unwrap_or_default())?,
            Token::Rest(r) => rest = r,
        }
    }
    o.target = target(netns, rest)?;
    // `--netns` (or a PID) without `--userns`: only the network namespace
    // is joined when it is a path (pasta: --netns-only is implied).
    if matches!(o.target, PastaTarget::Netns(_)) && o.userns.is_none() {
        o.netns_only = true;
    }
    o.validate().map_err(bad)?;
    let log_level = match o.verbosity {
        Verbosity::Quiet => log::LevelFilter::Warn,
        Verbosity::Normal => log::LevelFilter::Info,
        Verbosity::Debug => log::LevelFilter::Debug,
        Verbosity::Trace => log::LevelFilter::Trace,
    };
    Ok(Invocation {
        command: Command::Pasta(Box::new(o)),
        log_level,
        warnings: Vec::new(),
    })
}

/// PID, COMMAND or `--netns` (exactly one of them).
fn target(netns: Option<std::path::PathBuf>, rest: Vec<OsString>) -> Result<PastaTarget, CliExit> {
    if let Some(path) = netns {
        if let Some(first) = rest.first() {
            return Err(bad(PastaError::NetnsAndTarget(
                first.to_string_lossy().into_owned(),
            )));
        }
        return Ok(PastaTarget::Netns(path));
    }
    if let [one] = rest.as_slice()
        && let Some(pid) = one.to_str().and_then(p::parse_pid_word)
    {
        return Ok(PastaTarget::Pid(pid.map_err(bad)?));
    }
    Ok(PastaTarget::Command(utf8(rest, "COMMAND argument")?))
}

/// Port options: `-t/-u/-T/-U`.
fn ports(f: &mut PortForwards, way: Way, v: &str) -> Result<(), CliExit> {
    f.add(v, way).map_err(|e| CliExit::Error(e.to_string()))
}

/// One option with its value ("" for flags).
fn apply(o: &mut PastaOptions, id: Id, v: String) -> Result<(), CliExit> {
    match id {
        Id::Debug => o.verbosity = Verbosity::Debug,
        Id::Trace => o.verbosity = Verbosity::Trace,
        Id::Quiet => o.verbosity = Verbosity::Quiet,
        Id::Foreground => o.foreground = true,
        // No effect in pasta either (deprecated): messages go to stderr
        // until rlnet is ready, then to the log file if any.
        Id::Stderr => {}
        Id::LogFile => o.log_file = Some(p::parse_path("log file", &v).map_err(bad)?),
        Id::PidFile => o.pid_file = Some(p::parse_path("PID file", &v).map_err(bad)?),
        Id::Userns => o.userns = Some(p::parse_path("user namespace", &v).map_err(bad)?),
        Id::NsIfname => o.ns_ifname = Some(p::parse_ifname(&v).map_err(bad)?),
        Id::Interface => o.interface = Some(p::parse_ifname(&v).map_err(bad)?),
        Id::OutboundIf4 => o.outbound_if4 = Some(p::parse_ifname(&v).map_err(bad)?),
        Id::OutboundIf6 => o.outbound_if6 = Some(p::parse_ifname(&v).map_err(bad)?),
        Id::Mtu => o.mtu = Some(p::parse_mtu(&v).map_err(bad)?),
        Id::MacAddr => o.our_mac = Some(p::parse_mac(&v).map_err(bad)?),
        Id::NsMacAddr => o.ns_mac = Some(p::parse_mac(&v).map_err(bad)?),
        Id::Netmask => o.netmask = Some(p::parse_netmask(&v).map_err(bad)?),
        Id::Ipv4Only => (o.ipv4, o.ipv6) = (true, false),
        Id::Ipv6Only => (o.ipv4, o.ipv6) = (false, true),
        Id::Tcp => ports(&mut o.tcp, Way::In, &v)?,
        Id::Udp => ports(&mut o.udp, Way::In, &v)?,
        Id::TcpNs => ports(&mut o.tcp_ns, Way::Out, &v)?,
        Id::UdpNs => ports(&mut o.udp_ns, Way::Out, &v)?,
        Id::NetnsOnly => o.netns_only = true,
        Id::NoNetnsQuit => o.netns_quit = false,
        Id::ConfigNet => o.config_net = true,
        Id::NoMapGw => o.map_gw = false,
        Id::MapGw => o.map_gw = true,
        Id::NoDhcp => o.no_dhcp = true,
        Id::NoDhcpv6 => o.no_dhcpv6 = true,
        Id::NoNdp => o.no_ndp = true,
        Id::NoRa => o.no_ra = true,
        Id::NoSplice => o.splice = false,
        Id::HostLoToNsLo => o.ns_lo = true,
        Id::Search => o.search = p::parse_search(&v).map_err(bad)?,
        Id::Dns => match p::parse_dns(&v).map_err(bad)? {
            Some(a) => o.dns.push(a),
            None => o.dns.clear(),
        },
        _ => addresses(o, id, &v)?,
    }
    Ok(())
}

/// The options that take an address of either family.
fn addresses(o: &mut PastaOptions, id: Id, v: &str) -> Result<(), CliExit> {
    use std::net::IpAddr::{V4, V6};
    match id {
        Id::Address => match p::parse_address_cidr(v).map_err(bad)? {
            (V4(a), len) => o.addr4 = Some((a, len)),
            (V6(a), _) => o.addr6 = Some(a),
        },
        Id::Gateway => match p::parse_gateway(v).map_err(bad)? {
            V4(a) => o.gateway4 = Some(a),
            V6(a) => o.gateway6 = Some(a),
        },
        Id::Outbound => match p::parse_outbound(v).map_err(bad)? {
            V4(a) => o.outbound4 = Some(a),
            V6(a) => o.outbound6 = Some(a),
        },
        Id::DnsForward => match p::parse_dns_forward(v).map_err(bad)? {
            V4(a) => o.dns_forward4 = Some(a),
            V6(a) => o.dns_forward6 = Some(a),
        },
        Id::DnsHost => match p::parse_dns_host(v).map_err(bad)? {
            V4(a) => o.dns_host4 = Some(a),
            V6(a) => o.dns_host6 = Some(a),
        },
        Id::MapHostLoopback => match p::parse_map(v).map_err(bad)? {
            Some(V4(a)) => o.map_loopback4 = AddrMap::To(a),
            Some(V6(a)) => o.map_loopback6 = AddrMap::To(a),
            // `none` unmaps both families (and implies --no-map-gw).
            None => (o.map_loopback4, o.map_loopback6) = (AddrMap::Off, AddrMap::Off),
        },
        Id::MapGuestAddr => match p::parse_map(v).map_err(bad)? {
            Some(V4(a)) => o.map_guest4 = AddrMap::To(a),
            Some(V6(a)) => o.map_guest6 = AddrMap::To(a),
            None => (o.map_guest4, o.map_guest6) = (AddrMap::Off, AddrMap::Off),
        },
        other => return err(format!("internal error: option {other:?} has no handler")),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
