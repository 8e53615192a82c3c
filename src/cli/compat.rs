//! `rlnet [OPTION]... PID|PATH [TAPNAME]`: the slirp4netns-compatible form,
//! and the network options (`NetOpts`) that `rlnet run` shares with it.
//! slirp4netns's wording is kept where callers grep it (`--macaddr cannot be
//! specified ...`, the CIDR texts).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser};

use super::help::version_text;
use super::{
    CliExit, Command, Form, Invocation, api_socket_path, err, error, invalid, parse_specs,
    parse_with,
};
use crate::config::{self, AddrPlan, Config, Configure, Ipv4Net, Target, default_net4};

/// Options accepted by both forms.
#[derive(Debug, Args)]
pub(super) struct NetOpts {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[arg(short = 'c', long = "configure")]
    configure: bool,
    #[arg(long = "no-configure", conflicts_with = "configure")]
    no_configure: bool,
    // Values are taken verbatim even if they start with '-', as getopt does,
    // so `--mtu -1` reports a bad MTU instead of a missing one.
    #[arg(
        short = 'e',
        long = "exit-fd",
        value_name = "FD",
        allow_hyphen_values = true
    )]
    exit_fd: Option<String>,
    #[arg(
        short = 'r',
        long = "ready-fd",
        value_name = "FD",
        allow_hyphen_values = true
    )]
    ready_fd: Option<String>,
    #[arg(
        short = 'm',
        long = "mtu",
        value_name = "MTU",
        allow_hyphen_values = true
    )]
    mtu: Option<String>,
    #[arg(short = '6', long = "enable-ipv6")]
    enable_ipv6: bool,
    #[arg(long = "disable-ipv6", conflicts_with = "enable_ipv6")]
    disable_ipv6: bool,
    #[arg(short = 'a', long = "api-socket", value_name = "PATH", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    api_socket: Option<OsString>,
    #[arg(long = "cidr", value_name = "CIDR", allow_hyphen_values = true)]
    cidr: Option<String>,
    #[arg(long = "disable-host-loopback")]
    disable_host_loopback: bool,
    #[arg(long = "no-host-loopback")]
    no_host_loopback: bool,
    #[arg(long = "enable-sandbox")]
    enable_sandbox: bool,
    #[arg(long = "create-sandbox")]
    create_sandbox: bool,
    #[arg(long = "enable-seccomp")]
    enable_seccomp: bool,
    #[arg(long = "disable-sandbox")]
    disable_sandbox: bool,
    #[arg(long = "disable-seccomp")]
    disable_seccomp: bool,
    #[arg(
        long = "outbound-addr",
        value_name = "ADDR",
        allow_hyphen_values = true
    )]
    outbound_addr: Option<String>,
    #[arg(
        long = "outbound-addr6",
        value_name = "ADDR",
        allow_hyphen_values = true
    )]
    outbound_addr6: Option<String>,
    #[arg(long = "disable-dns")]
    disable_dns: bool,
    #[arg(long = "dns-upstream", value_name = "ADDR", action = ArgAction::Append,
          allow_hyphen_values = true)]
    dns_upstream: Vec<String>,
    #[arg(long = "resolv-conf", value_name = "PATH", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    resolv_conf: Option<OsString>,
    #[arg(long = "add-host", value_name = "NAME:IP", action = ArgAction::Append,
          allow_hyphen_values = true)]
    add_host: Vec<String>,
    #[arg(long = "macaddress", value_name = "MAC", allow_hyphen_values = true)]
    macaddress: Option<String>,
    #[arg(short = 'p', long = "publish", value_name = "SPEC", action = ArgAction::Append,
          allow_hyphen_values = true)]
    publish: Vec<String>,
    #[arg(long = "publish-mode", value_name = "MODE", allow_hyphen_values = true)]
    publish_mode: Option<String>,
    #[arg(long = "log-level", value_name = "LEVEL", allow_hyphen_values = true)]
    log_level: Option<String>,
}

/// `rlnet [OPTION]... PID|PATH [TAPNAME]`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub(super) struct CompatCli {
    #[command(flatten)]
    net: NetOpts,
    #[arg(long = "netns-type", value_name = "TYPE", allow_hyphen_values = true)]
    netns_type: Option<String>,
    #[arg(long = "userns-path", value_name = "PATH", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    userns_path: Option<OsString>,
    #[arg(long = "target-type", value_name = "TYPE", allow_hyphen_values = true)]
    target_type: Option<String>,
    #[arg(value_name = "PID|PATH [TAPNAME]", value_parser = clap::value_parser!(OsString))]
    positionals: Vec<OsString>,
}

/// Parses the compat form; `args` is the whole argv.
pub(super) fn parse(args: Vec<OsString>) -> Result<Invocation, CliExit> {
    invocation(parse_with::<CompatCli>(Form::Compat, args)?)
}

fn invocation(cli: CompatCli) -> Result<Invocation, CliExit> {
    if let Some(exit) = help_or_version(&cli.net, Form::Compat) {
        return Err(exit);
    }
    let mut warnings = Vec::new();
    check_target_type(cli.target_type.as_deref())?;
    let path_mode = path_mode(cli.netns_type.as_deref())?;
    let mut positionals = cli.positionals.into_iter();
    let Some(first) = positionals.next() else {
        return err(format!(
            "missing {}: usage: rlnet [OPTION]... PID|PATH [TAPNAME] {}",
            if path_mode { "PATH" } else { "PID" },
            Form::Compat.help_hint()
        ));
    };
    let target = if path_mode {
        path_target(first, cli.userns_path)?
    } else {
        pid_target(&first, cli.userns_path.is_some(), &mut warnings)?
    };
    let tap_name = positionals.next().map(tap_name).transpose()?;
    let extra: Vec<String> = positionals
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if !extra.is_empty() {
        warnings.push(format!("too many arguments: ignoring {extra:?}"));
    }

    let mut config = Config::new(target);
    if let Some(name) = tap_name {
        config.tap_name = name;
    }
    finish(Form::Compat, cli.net, config, warnings)
}

/// `--target-type`: netns is the only type rlnet serves.
fn check_target_type(target_type: Option<&str>) -> Result<(), CliExit> {
    match target_type {
        None | Some("netns") => Ok(()),
        Some("bess") => err("--target-type=bess is not supported by rlnet"),
        Some(other) => err(format!(
            "invalid value for --target-type: {other:?} (the only supported type is netns)"
        )),
    }
}

/// `--netns-type`: whether the first argument is a path (or a PID).
fn path_mode(netns_type: Option<&str>) -> Result<bool, CliExit> {
    match netns_type {
        None | Some("pid") => Ok(false),
        Some("path") => Ok(true),
        Some("tapfd") => err("--netns-type=tapfd is not supported by rlnet"),
        Some(other) => err(format!(
            "invalid value for --netns-type: {other:?} (use pid or path)"
        )),
    }
}

/// `--netns-type=path PATH [--userns-path=PATH]`.
fn path_target(netns: OsString, userns: Option<OsString>) -> Result<Target, CliExit> {
    if netns.is_empty() {
        return err("PATH must not be empty: give a network namespace file like /proc/PID/ns/net");
    }
    let userns = match userns {
        Some(p) if p.is_empty() => {
            return err("invalid value for --userns-path: the path is empty");
        }
        other => other.map(PathBuf::from),
    };
    Ok(Target::Path {
        netns: PathBuf::from(netns),
        userns,
    })
}

/// `PID`; the error hints at the forms a caller may have meant.
fn pid_target(
    first: &OsString,
    userns_path: bool,
    warnings: &mut Vec<String>,
) -> Result<Target, CliExit> {
    let text = first.to_string_lossy();
    let pid = config::parse_pid(&text).map_err(|e| {
        let hint = if text == "run" {
            " ('run' must be the first argument: rlnet run [OPTION]... -- COMMAND [ARG]...)"
        } else if text.contains('/') {
            " (for a namespace path add --netns-type=path)"
        } else {
            ""
        };
        CliExit::Error(format!("{e}{hint}"))
    })?;
    if userns_path {
        // Target::Pid always joins /proc/PID/ns/user, which is what
        // callers pass here in practice (the upstream seccomp test).
        warnings.push(format!(
            "--userns-path is ignored with a PID: the user namespace of {pid} is joined"
        ));
    }
    Ok(Target::Pid(pid))
}

/// `TAPNAME`, the interface inside the namespace.
fn tap_name(name: OsString) -> Result<String, CliExit> {
    let name = name.to_str().ok_or_else(|| {
        CliExit::Error(format!(
            "TAP name {:?} is invalid: it must be valid UTF-8",
            name.to_string_lossy()
        ))
    })?;
    config::parse_tap_name(name).map_err(error)
}

/// `-h`/`-v` of the forms that take [`NetOpts`]: the text to print instead.
pub(super) fn help_or_version(net: &NetOpts, form: Form) -> Option<CliExit> {
    if net.help {
        Some(CliExit::Print(form.help()))
    } else if net.version {
        Some(CliExit::Print(version_text()))
    } else {
        None
    }
}

/// Applies the shared options to `config` and checks the result. The
/// options are read in a fixed order, so the first bad one is reported.
pub(super) fn finish(
    form: Form,
    o: NetOpts,
    mut config: Config,
    mut warnings: Vec<String>,
) -> Result<Invocation, CliExit> {
    let log_level = match o.log_level.as_deref() {
        None => log::LevelFilter::Warn,
        Some(level) => parse_log_level(level)?,
    };
    link_options(&o, &mut config, &mut warnings)?;
    host_options(&o, &mut config, &mut warnings)?;
    dns_options(&o, &mut config, &mut warnings)?;
    if let Some(mac) = &o.macaddress {
        mac_option(form, mac, &mut config)?;
    }
    config.publish = parse_specs(&o.publish, "value for --publish")?;
    if let Some(mode) = &o.publish_mode {
        config.publish_mode = mode.parse().map_err(invalid("--publish-mode"))?;
    }
    config.validate().map_err(error)?;
    Ok(Invocation {
        command: Command::Serve(Box::new(config)),
        log_level,
        warnings,
    })
}

/// The link and how rlnet is reached: -c/--no-configure, the fds, --mtu,
/// --cidr, IPv6 and --api-socket.
fn link_options(
    o: &NetOpts,
    config: &mut Config,
    warnings: &mut Vec<String>,
) -> Result<(), CliExit> {
    config.configure = if o.configure {
        Configure::Always
    } else if o.no_configure {
        Configure::Never
    } else {
        Configure::Auto
    };
    if let Some(fd) = &o.exit_fd {
        config.exit_fd = Some(config::parse_fd("exit-fd", fd).map_err(invalid("--exit-fd"))?);
    }
    if let Some(fd) = &o.ready_fd {
        config.ready_fd = Some(config::parse_fd("ready-fd", fd).map_err(invalid("--ready-fd"))?);
    }
    if let Some(mtu) = &o.mtu {
        config.mtu = config::parse_mtu(mtu).map_err(invalid("--mtu"))?;
    }
    // Callers grep the CIDR texts, so they stand alone on the line.
    let net4 = match &o.cidr {
        Some(c) => c.parse::<Ipv4Net>().map_err(error)?,
        None => default_net4(),
    };
    // IPv6 needs a link MTU of 1280. Callers that ask for less (Podman's
    // mtu=1000, even with --enable-ipv6) get a working IPv4 link, as
    // slirp4netns gives them (the kernel keeps IPv6 off such a link).
    let small_mtu = config.mtu < config::MIN_MTU_IPV6;
    if small_mtu && !o.disable_ipv6 {
        warnings.push(format!(
            "IPv6 is off: it needs an MTU of at least {} (--mtu={})",
            config::MIN_MTU_IPV6,
            config.mtu
        ));
    }
    config.plan = AddrPlan::new(net4, !o.disable_ipv6 && !small_mtu);
    if let Some(path) = &o.api_socket {
        config.api_socket = Some(api_socket_path(path.clone())?);
    }
    Ok(())
}

/// What rlnet may do on the host: loopback, confinement, outbound addresses.
fn host_options(
    o: &NetOpts,
    config: &mut Config,
    warnings: &mut Vec<String>,
) -> Result<(), CliExit> {
    if o.no_host_loopback {
        warnings.push("--no-host-loopback is deprecated, use --disable-host-loopback".into());
    }
    config.host_loopback = !(o.disable_host_loopback || o.no_host_loopback);
    if o.create_sandbox {
        warnings.push("--create-sandbox is deprecated, use --enable-sandbox".into());
    }
    // Confinement is on by default (issue 13 finding 2); slirp4netns's
    // --enable-* flags are accepted (--enable-seccomp insists where rlnet
    // has no filter, and fails there); --disable-* wins.
    config.enable_sandbox = !o.disable_sandbox;
    config.enable_seccomp = !o.disable_seccomp && (o.enable_seccomp || config.enable_seccomp);
    let _ = o.enable_sandbox;
    if let Some(a) = &o.outbound_addr {
        config.outbound4 =
            Some(config::parse_outbound(a, false).map_err(invalid("--outbound-addr"))?);
    }
    if let Some(a) = &o.outbound_addr6 {
        config.outbound6 =
            Some(config::parse_outbound(a, true).map_err(invalid("--outbound-addr6"))?);
    }
    Ok(())
}

/// The DNS stub: on or off, its upstreams and its own names.
fn dns_options(
    o: &NetOpts,
    config: &mut Config,
    warnings: &mut Vec<String>,
) -> Result<(), CliExit> {
    config.dns = !o.disable_dns;
    for a in &o.dns_upstream {
        config
            .dns_upstream
            .push(config::parse_dns_upstream(a, &config.plan).map_err(invalid("--dns-upstream"))?);
    }
    if let Some(path) = &o.resolv_conf {
        if path.is_empty() {
            return err("invalid value for --resolv-conf: the path is empty");
        }
        config.resolv_conf = Some(PathBuf::from(path));
    }
    for h in &o.add_host {
        config
            .add_hosts
            .extend(config::parse_add_host(h, &config.plan).map_err(invalid("--add-host"))?);
    }
    if o.disable_dns
        && (!config.dns_upstream.is_empty()
            || !config.add_hosts.is_empty()
            || config.resolv_conf.is_some())
    {
        warnings.push(
            "--dns-upstream, --resolv-conf and --add-host have no effect with --disable-dns".into(),
        );
    }
    Ok(())
}

/// `--macaddress`: the compat form takes it with -c only, as slirp4netns.
fn mac_option(form: Form, mac: &str, config: &mut Config) -> Result<(), CliExit> {
    match (form, config.configure) {
        // slirp4netns's text: only -c sets a MAC there.
        (Form::Compat, Configure::Auto | Configure::Never) => {
            return err("--macaddr cannot be specified when --configure or -c is not specified");
        }
        (Form::Run, Configure::Never) => {
            return err("--macaddress cannot be used with --no-configure");
        }
        _ => {}
    }
    config.mac = Some(config::parse_mac(mac).map_err(invalid("--macaddress"))?);
    Ok(())
}

fn parse_log_level(s: &str) -> Result<log::LevelFilter, CliExit> {
    Ok(match s {
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        _ => {
            return err(format!(
                "invalid value for --log-level: {s:?} (use error, warn, info, debug or trace)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::Command;
    use super::super::testing::{cfg, fails, ok, serve};
    use crate::config::{Config, Configure, Outbound, Target};
    use crate::forward::spec::Mode;
    use crate::forward::spec::{PortRange, Proto};
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    #[test]
    fn minimal_pid_form_has_slirp4netns_defaults() {
        let inv = ok(&["1234"]);
        assert_eq!(*serve(&inv), Config::new(Target::Pid(1234)));
        assert_eq!(serve(&inv).tap_name, "tap0");
        assert_eq!(inv.log_level, log::LevelFilter::Warn);
        assert!(inv.warnings.is_empty());
        assert_eq!(cfg(&["1234", "tap7"]).tap_name, "tap7");
    }

    #[test]
    fn every_value_option_form() {
        for args in [
            &["--mtu=1500", "1"][..],
            &["--mtu", "1500", "1"],
            &["-m", "1500", "1"],
            &["-m1500", "1"],
            &["--mt", "1500", "1"],
            &["--mt=1500", "1"],
            &["1", "--mtu", "1500"],
        ] {
            assert_eq!(cfg(args).mtu, 1500, "{args:?}");
        }
        for args in [
            &["-e", "3", "-r", "4", "1"][..],
            &["-e3", "-r4", "1"],
            &["--exit-fd=3", "--ready-fd=4", "1"],
            &["--exit-fd", "3", "--ready-fd", "4", "1"],
            &["--exit", "3", "--ready", "4", "1"],
        ] {
            let c = cfg(args);
            assert_eq!((c.exit_fd, c.ready_fd), (Some(3), Some(4)), "{args:?}");
        }
        for args in [
            &["-a", "/run/x.sock", "1"][..],
            &["-a/run/x.sock", "1"],
            &["--api-socket=/run/x.sock", "1"],
            &["--api-socket", "/run/x.sock", "1"],
            &["--api", "/run/x.sock", "1"],
        ] {
            assert_eq!(
                cfg(args).api_socket,
                Some(PathBuf::from("/run/x.sock")),
                "{args:?}"
            );
        }
        for args in [
            &["--cidr=10.0.135.128/25", "1"][..],
            &["--cidr", "10.0.135.128/25", "1"],
            &["--ci", "10.0.135.128/25", "1"],
        ] {
            assert_eq!(
                cfg(args).plan.guest4,
                Ipv4Addr::new(10, 0, 135, 228),
                "{args:?}"
            );
        }
        let c = cfg(&["--outbound-addr=127.0.0.1", "--outbound-addr6", "eth0", "1"]);
        assert_eq!(
            c.outbound4,
            Some(Outbound::Addr(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        );
        assert_eq!(c.outbound6, Some(Outbound::Interface("eth0".into())));
        // An exact long name wins over a longer one it prefixes.
        assert!(cfg(&["--outbound-addr", "lo", "1"]).outbound6.is_none());
        let c = cfg(&["-c", "--macaddress=0e:d4:18:d9:38:fb", "1"]);
        assert_eq!(c.mac, Some([0x0e, 0xd4, 0x18, 0xd9, 0x38, 0xfb]));
        assert_eq!(
            cfg(&["-c", "--macaddress", "0e:d4:18:d9:38:fb", "1"]).mac,
            c.mac
        );
        assert_eq!(cfg(&["-c", "--mac", "0e:d4:18:d9:38:fb", "1"]).mac, c.mac);
        for (args, level) in [
            (&["--log-level=debug", "1"][..], log::LevelFilter::Debug),
            (&["--log-level", "trace", "1"], log::LevelFilter::Trace),
            (&["--log", "error", "1"], log::LevelFilter::Error),
            (&["--log-level=info", "1"], log::LevelFilter::Info),
            (&["--log-level=warn", "1"], log::LevelFilter::Warn),
        ] {
            assert_eq!(ok(args).log_level, level, "{args:?}");
        }
    }

    #[test]
    fn every_flag_form() {
        assert_eq!(cfg(&["-c", "1"]).configure, Configure::Always);
        assert_eq!(cfg(&["--configure", "1"]).configure, Configure::Always);
        assert_eq!(cfg(&["--conf", "1"]).configure, Configure::Always);
        assert_eq!(cfg(&["--no-configure", "1"]).configure, Configure::Never);
        assert_eq!(cfg(&["--no-c", "1"]).configure, Configure::Never);
        assert_eq!(cfg(&["1"]).configure, Configure::Auto);
        assert!(cfg(&["-6", "1"]).plan.v6.is_some());
        assert!(cfg(&["--enable-ipv6", "1"]).plan.v6.is_some());
        assert!(cfg(&["--disable-ipv6", "1"]).plan.v6.is_none());
        assert!(cfg(&["1"]).plan.v6.is_some());
        for flag in ["--disable-host-loopback", "--disable-host-l", "--disable-h"] {
            let inv = ok(&[flag, "1"]);
            assert!(!serve(&inv).host_loopback, "{flag}");
            assert!(inv.warnings.is_empty());
        }
        let inv = ok(&["--no-host-loopback", "1"]);
        assert!(!serve(&inv).host_loopback);
        assert_eq!(
            inv.warnings,
            ["--no-host-loopback is deprecated, use --disable-host-loopback"]
        );
        assert!(cfg(&["--enable-sandbox", "1"]).enable_sandbox);
        let inv = ok(&["--create-sandbox", "1"]);
        assert!(serve(&inv).enable_sandbox);
        assert_eq!(inv.warnings.len(), 1);
        assert!(inv.warnings[0].contains("--create-sandbox is deprecated"));
        assert!(cfg(&["--enable-seccomp", "1"]).enable_seccomp);
        // On by default; the opt-outs, each on its own.
        let c = cfg(&["1"]);
        assert!(c.enable_sandbox && c.enable_seccomp);
        let c = cfg(&["--disable-sandbox", "1"]);
        assert!(!c.enable_sandbox && c.enable_seccomp);
        let c = cfg(&["--disable-seccomp", "--enable-seccomp", "1"]);
        assert!(c.enable_sandbox && !c.enable_seccomp);
        assert!(!cfg(&["--disable-dns", "1"]).dns);
        assert!(cfg(&["1"]).dns);
        let c = cfg(&["-c6", "1"]);
        assert_eq!(c.configure, Configure::Always);
        // Repeats are fine, the last value wins (getopt).
        assert_eq!(cfg(&["--mtu=1400", "-m", "1500", "1"]).mtu, 1500);
        assert_eq!(cfg(&["-c", "-c", "1"]).configure, Configure::Always);
        assert_eq!(
            cfg(&["--target-type=netns", "1"]),
            Config::new(Target::Pid(1))
        );
    }

    #[test]
    fn dns_options() {
        use std::net::SocketAddr;
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = cfg(&["1"]);
        assert!(c.dns_upstream.is_empty() && c.add_hosts.is_empty());
        assert_eq!(c.resolv_conf, None);
        for args in [
            &[
                "--dns-upstream=127.0.0.53",
                "--dns-upstream",
                "[::1]:5353",
                "1",
            ][..],
            &[
                "--dns-up",
                "127.0.0.53:53",
                "1",
                "--dns-upstream=[::1]:5353",
            ],
            &[
                "run",
                "--dns-upstream=127.0.0.53",
                "--dns-upstream=[::1]:5353",
                "true",
            ],
        ] {
            assert_eq!(
                cfg(args).dns_upstream,
                [sa("127.0.0.53:53"), sa("[::1]:5353")],
                "{args:?}"
            );
        }
        let c = cfg(&["--resolv-conf", "/run/systemd/resolve/resolv.conf", "1"]);
        assert_eq!(
            c.resolv_conf,
            Some(PathBuf::from("/run/systemd/resolve/resolv.conf"))
        );
        assert_eq!(
            cfg(&["--resolv=/x", "1"]).resolv_conf,
            Some(PathBuf::from("/x"))
        );
        let c = cfg(&[
            "--add-host",
            "db:192.0.2.7",
            "--add-host=db=2001:db8::7",
            "--add-host",
            "gw:host-gateway",
            "1",
        ]);
        assert_eq!(
            c.add_hosts,
            [
                ("db".to_string(), ip("192.0.2.7")),
                ("db".to_string(), ip("2001:db8::7")),
                ("gw".to_string(), ip("10.0.2.2")),
                ("gw".to_string(), ip("fd00::2")),
            ]
        );
        // host-gateway follows --cidr and --disable-ipv6, wherever they are.
        let c = cfg(&[
            "--add-host=gw:host-gateway",
            "--cidr=10.9.0.0/24",
            "--disable-ipv6",
            "1",
        ]);
        assert_eq!(c.add_hosts, [("gw".to_string(), ip("10.9.0.2"))]);
        // The stub address moves with --cidr too.
        assert!(
            cfg(&["--cidr=10.9.0.0/24", "--dns-upstream=10.0.2.3", "1"])
                .dns_upstream
                .contains(&sa("10.0.2.3:53"))
        );
        let inv = ok(&["--disable-dns", "--dns-upstream=192.0.2.1", "1"]);
        assert_eq!(inv.warnings.len(), 1);
        assert!(inv.warnings[0].contains("no effect with --disable-dns"));
        for (args, needle) in [
            (
                &["--dns-upstream=dns.example", "1"][..],
                "invalid value for --dns-upstream: \"dns.example\" is not a DNS server address",
            ),
            (
                &["--dns-upstream", "10.0.2.3", "1"],
                "\"10.0.2.3\" cannot be a DNS server",
            ),
            (&["--dns-upstream=0.0.0.0", "1"], "cannot be a DNS server"),
            (
                &["--dns-upstream=[192.0.2.1]:53", "1"],
                "\"[192.0.2.1]:53\"",
            ),
            (
                &["--dns-upstream", "1", "2"],
                "\"1\" is not a DNS server address",
            ),
            (&["1", "--dns-upstream"], "'--dns-upstream' needs a value"),
            (
                &["--add-host=db", "1"],
                "invalid value for --add-host: \"db\" is not NAME:IP",
            ),
            (
                &["--add-host", "-db:192.0.2.1", "1"],
                "invalid host name \"-db\"",
            ),
            (
                &["--add-host=db:192.0.2.300", "1"],
                "invalid address \"192.0.2.300\"",
            ),
            (
                &["--resolv-conf=", "1"],
                "invalid value for --resolv-conf: the path is empty",
            ),
            (&["run", "--add-host=x", "true"], "--add-host"),
        ] {
            fails(args, needle);
        }
    }

    #[test]
    fn interleaved_positionals_like_getopt() {
        let c = cfg(&["-c", "1234", "--mtu", "1500", "tap9"]);
        assert_eq!(c.target, Target::Pid(1234));
        assert_eq!(c.tap_name, "tap9");
        assert_eq!(c.mtu, 1500);
        assert_eq!(c.configure, Configure::Always);
        let c = cfg(&["1234", "--cidr", "10.0.3.0/24", "tap1", "--disable-dns"]);
        assert_eq!(c.plan.gateway4, Ipv4Addr::new(10, 0, 3, 2));
        assert_eq!(c.tap_name, "tap1");
        assert!(!c.dns);
        // After "--" everything is positional.
        let c = cfg(&["--", "1234", "tap1"]);
        assert_eq!(c.target, Target::Pid(1234));
        // A TAPNAME called "run" is not the run form.
        assert_eq!(cfg(&["1234", "run"]).tap_name, "run");
    }

    #[test]
    fn the_callers_argv() {
        // Podman 4 container network.
        let inv = ok(&[
            "--disable-host-loopback",
            "--mtu=65520",
            "--enable-sandbox",
            "--enable-seccomp",
            "--enable-ipv6",
            "-c",
            "-e",
            "3",
            "-r",
            "4",
            "--netns-type=path",
            "/run/user/1000/netns/netns-abc",
            "tap0",
        ]);
        let c = serve(&inv);
        assert_eq!(
            c.target,
            Target::Path {
                netns: "/run/user/1000/netns/netns-abc".into(),
                userns: None
            }
        );
        assert_eq!((c.exit_fd, c.ready_fd, c.mtu), (Some(3), Some(4), 65520));
        assert!(c.enable_sandbox && c.enable_seccomp && !c.host_loopback);
        // RootlessKit.
        let c = cfg(&[
            "--mtu",
            "65520",
            "-r",
            "3",
            "--disable-host-loopback",
            "--cidr",
            "10.0.2.0/24",
            "--api-socket",
            "/tmp/state/.s4nn.sock",
            "--enable-ipv6",
            "4242",
            "tap0",
        ]);
        assert_eq!(c.target, Target::Pid(4242));
        assert_eq!(c.configure, Configure::Auto);
        // RootlessKit v2 --detach-netns.
        let c = cfg(&[
            "--mtu",
            "65520",
            "-r",
            "3",
            "--userns-path=/proc/42/ns/user",
            "--netns-type=path",
            "/run/user/1000/rk/netns",
            "tap0",
        ]);
        assert_eq!(
            c.target,
            Target::Path {
                netns: "/run/user/1000/rk/netns".into(),
                userns: Some("/proc/42/ns/user".into())
            }
        );
        // Buildah.
        assert_eq!(
            cfg(&["--mtu", "65520", "-r", "3", "-c", "77", "tap0"]).target,
            Target::Pid(77)
        );
        // Upstream seccomp test: --userns-path in PID mode is accepted.
        let inv = ok(&[
            "-c",
            "--enable-seccomp",
            "--userns-path=/proc/9/ns/user",
            "9",
            "tap11",
        ]);
        assert_eq!(serve(&inv).target, Target::Pid(9));
        assert!(inv.warnings[0].contains("--userns-path is ignored"));
    }

    #[test]
    fn path_mode() {
        let c = cfg(&["--netns-type", "path", "/proc/5/ns/net"]);
        assert_eq!(
            c.target,
            Target::Path {
                netns: "/proc/5/ns/net".into(),
                userns: None
            }
        );
        assert_eq!(c.tap_name, "tap0");
        // No filesystem check here: a missing path is the runtime's error.
        let c = cfg(&[
            "--netns-type=path",
            "relative/ns",
            "--userns-path",
            "u",
            "tap3",
        ]);
        assert_eq!(
            c.target,
            Target::Path {
                netns: "relative/ns".into(),
                userns: Some("u".into())
            }
        );
        assert_eq!(c.tap_name, "tap3");
        assert_eq!(cfg(&["--netns-type=pid", "12"]).target, Target::Pid(12));
        fails(&["--netns-type=path", ""], "PATH must not be empty");
        fails(
            &["--netns-type=path", "/x", "--userns-path="],
            "--userns-path",
        );
        fails(&["--netns-type=path"], "missing PATH");
    }

    #[test]
    fn too_many_arguments_is_a_warning() {
        let inv = ok(&["-e", "10", "1234", "tap11", "10/dev/fd/63"]);
        assert_eq!(serve(&inv).tap_name, "tap11");
        assert_eq!(inv.warnings.len(), 1);
        assert!(inv.warnings[0].contains("too many arguments"));
        assert!(inv.warnings[0].contains("10/dev/fd/63"));
    }

    #[test]
    fn publish() {
        let c = cfg(&[
            "-p",
            "8080:80",
            "--publish=127.0.0.1:53:53/udp",
            "--publish",
            "[::1]:1-2:3-4",
            "1",
        ]);
        assert_eq!(c.publish.len(), 3);
        assert_eq!(c.publish[0].host_ports, PortRange::single(8080));
        assert_eq!(c.publish[1].proto, Proto::Udp);
        assert_eq!(c.publish[2].to_string(), "[::1]:1-2:3-4/tcp");
        assert!(cfg(&["1"]).publish.is_empty());
        // Same number different protocol, or different families: fine.
        assert_eq!(
            cfg(&["-p", "53:53/udp", "-p", "53:53", "1"]).publish.len(),
            2
        );
        assert_eq!(
            cfg(&[
                "-p",
                "127.0.0.1:80:80",
                "-p",
                "[::1]:80:80",
                "-p",
                "10.0.0.1:80:80",
                "1"
            ])
            .publish
            .len(),
            3
        );
        fails(&["-p", "8080", "1"], "\"8080\"");
        fails(&["-p", "8080:80/sctp", "1"], "sctp");
        fails(&["-p", "-1:80", "1"], "\"-1\"");
        // A host port can be published once: the table's rule and words.
        assert_eq!(
            fails(&["-p", "8000-8010:9000-9010", "-p", "8005:90", "1"], "8005"),
            "invalid value for --publish: host port 8005/tcp is published twice in this \
             request: 8000-8010:9000-9010/tcp and 8005:90/tcp"
        );
        for args in [
            &["-p", "0.0.0.0:80:80", "-p", "127.0.0.1:80:81", "1"][..],
            &["-p", "80:80", "-p", "[::1]:80:81", "1"],
            &[
                "-p",
                "[::ffff:127.0.0.1]:80:80",
                "-p",
                "127.0.0.1:80:81",
                "1",
            ],
            &["run", "-p", "80:80", "-p", "80:80/tcp", "true"],
        ] {
            fails(args, "published twice");
        }
        // Privileged ports are the running instance's to refuse.
        assert_eq!(cfg(&["-p", "80:80", "1"]).publish.len(), 1);
        // --publish-mode shares the prefix: --pub is ambiguous now.
        fails(
            &["--pub", "80:80", "1"],
            "ambiguous option '--pub': could be --publish, --publish-mode",
        );
    }

    #[test]
    fn publish_mode() {
        assert_eq!(cfg(&["1"]).publish_mode, Mode::Stack);
        for args in [
            &["--publish-mode=splice", "1"][..],
            &["--publish-mode", "splice", "1"],
            &["1", "--publish-m", "splice"],
            &["--publish-mode=stack", "--publish-mode=splice", "1"],
            &["run", "--publish-mode=splice", "true"],
            &["run", "--publish-mode", "splice", "--", "true"],
        ] {
            assert_eq!(cfg(args).publish_mode, Mode::Splice, "{args:?}");
        }
        assert_eq!(
            cfg(&["--publish-mode", "stack", "1"]).publish_mode,
            Mode::Stack
        );
        assert_eq!(
            fails(&["--publish-mode=fast", "1"], "\"fast\""),
            "invalid value for --publish-mode: unknown publish mode \"fast\": use stack or splice"
        );
        fails(&["run", "--publish-mode", "Splice", "true"], "\"Splice\"");
        fails(&["--publish-mode=", "1"], "--publish-mode");
        fails(&["1", "--publish-mode"], "'--publish-mode' needs a value");
    }

    #[test]
    fn errors_are_one_line_and_name_the_value() {
        for (args, needle) in [
            (
                &["--bogus", "1"][..],
                "unrecognized option '--bogus' (see 'rlnet --help')",
            ),
            (&["-x", "1"], "unrecognized option '-x'"),
            (
                &["--publsh", "1:1", "1"],
                "unrecognized option '--publsh', did you mean '--publish'? (see 'rlnet --help')",
            ),
            (
                &["--mtu=70000", "1"],
                "invalid value for --mtu: MTU must be a positive integer (< 65522), not \"70000\"",
            ),
            (&["--mtu", "0", "1"], "\"0\""),
            (&["--mtu", "-1", "1"], "\"-1\""),
            (&["--mtu", "abc", "1"], "\"abc\""),
            (&["--mtu=", "1"], "--mtu"),
            (&["1", "--mtu"], "'--mtu' needs a value"),
            (&["--mtu=67", "1"], "MTU 67 is too small"),
            (
                &["-e", "x", "1"],
                "exit-fd must be a non-negative integer, not \"x\"",
            ),
            (
                &["-r", "-4", "1"],
                "ready-fd must be a non-negative integer, not \"-4\"",
            ),
            (&["--cidr", "24", "1"], "invalid CIDR: 24"),
            (&["--cidr", "foo", "1"], "invalid CIDR: foo"),
            (&["--cidr", "10.0.2.0", "1"], "invalid CIDR: 10.0.2.0"),
            (
                &["--cidr", "10.0.2.100/26", "1"],
                "prefix length needs to be 1-25",
            ),
            (
                &["--cidr", "300.0.0.0/24", "1"],
                "invalid network address: 300.0.0.0",
            ),
            (
                &["--cidr", "10.0.2.100/24", "1"],
                "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24",
            ),
            (&["--outbound-addr", "::1", "1"], "\"::1\""),
            (&["--outbound-addr6", "1.2.3.4", "1"], "\"1.2.3.4\""),
            (
                &["--macaddress", "0e:d4:18:d9:38:fb", "1"],
                "--macaddr cannot be specified when --configure or -c is not specified",
            ),
            (&["-c", "--macaddress", "zz", "1"], "\"zz\""),
            (
                &["--netns-type=tapfd", "3"],
                "--netns-type=tapfd is not supported by rlnet",
            ),
            (&["--netns-type=foo", "3"], "\"foo\""),
            (
                &["--target-type=bess", "/x"],
                "--target-type=bess is not supported by rlnet",
            ),
            (&["--target-type=vm", "1"], "\"vm\""),
            (&["--log-level=loud", "1"], "\"loud\""),
            (&["--log-level=WARN", "1"], "\"WARN\""),
            (&["abc"], "PID must be a positive integer, not \"abc\""),
            (&["0"], "\"0\""),
            (&["-5"], "'-5'"),
            (&["/proc/1/ns/net"], "--netns-type=path"),
            (&["1", "a/b"], "\"a/b\""),
            (&["1", "abcdefghijklmnopq"], "abcdefghijklmnopq"),
            (&[], "missing PID"),
            (&["-c", "--no-configure", "1"], "cannot be used with"),
            (&["--no-configure", "-c", "1"], "--no-configure"),
            (&["-6", "--disable-ipv6", "1"], "--disable-ipv6"),
            (&["--configure=yes", "1"], "\"yes\""),
            (
                &["--dis", "1"],
                "ambiguous option '--dis': could be --disable-dns, --disable-host-loopback, --disable-ipv6",
            ),
            (&["--enable-s", "1"], "--enable-sandbox, --enable-seccomp"),
            (&["--outbound", "x", "1"], "ambiguous"),
            (&["-a", "", "1"], "--api-socket"),
            (&["-a", &"/x".repeat(60), "1"], "too long"),
        ] {
            fails(args, needle);
        }
    }

    /// Podman's `mtu=1000`: the link works, IPv4 only, with a warning (also
    /// with `-6`, as slirp4netns starts then too).
    #[test]
    fn small_mtu_turns_ipv6_off() {
        let inv = ok(&["--mtu=1000", "1"]);
        let Command::Serve(c) = &inv.command else {
            panic!("{inv:?}")
        };
        assert!(c.plan.v6.is_none());
        assert_eq!(c.mtu, 1000);
        assert!(
            inv.warnings.iter().any(|w| w.contains("IPv6 is off")),
            "{inv:?}"
        );
        assert!(cfg(&["--mtu=1280", "1"]).plan.v6.is_some());
        assert!(
            ok(&["--mtu=1000", "--disable-ipv6", "1"])
                .warnings
                .is_empty()
        );
        assert!(cfg(&["--mtu=1000", "-6", "1"]).plan.v6.is_none());
        fails(&["--mtu=67", "1"], "too small");
    }
}
