//! Command line → [`Invocation`]. Pure: no I/O, no environment, no filesystem.
//!
//! Three forms:
//! - `rlnet [OPTION]... PID|PATH [TAPNAME]`, slirp4netns-compatible (getopt-like:
//!   interleaved positionals, `--x=v` and `--x v`, unique long prefixes, last
//!   repeat wins);
//! - `rlnet run [OPTION]... [--] COMMAND [ARG]...`, with the same network
//!   options;
//! - `rlnet port add|rm|ls -a PATH ...`, one request to a running instance's
//!   API socket. Its output is rendered here too ([`PortCommand::render`]),
//!   from the reply the caller got with [`crate::api::client::request`].
//!
//! clap only tokenizes: option values arrive as strings and are converted here
//! with the `config` parsers, so every error is one line with our wording and
//! the exact slirp4netns texts where callers grep them.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser};

use crate::api::protocol::{ClientRequest, Entry, Reply, reply_entries, reply_ids};
use crate::config::{
    self, AddrPlan, Config, ConfigError, Configure, Ipv4Net, Target, default_net4,
};
use crate::forward::spec::{Mode, PublishSpec};
use crate::forward::table::{PortTable, RuleId};

mod network;
pub use network::{NetworkCommand, NetworkRun};

/// A successfully parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub log_level: log::LevelFilter,
    /// Non-fatal remarks (deprecated spellings, ignored arguments), for the
    /// caller to log once logging is set up.
    pub warnings: Vec<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Give a namespace a network (the slirp4netns form and `rlnet run`).
    Serve(Config),
    /// `rlnet port add|rm|ls`: one request to a running instance.
    Port(PortCommand),
    /// `rlnet network ...`, `rlnet attach`, `rlnet detach`.
    Network(NetworkCommand),
    /// `rlnet run --network NAME ... -- COMMAND`.
    RunOnNetwork(NetworkRun),
}

/// `rlnet port ...`: which API socket to ask, what, and how to print the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortCommand {
    /// Which running instance to ask.
    pub target: PortTarget,
    /// `--json`: print the API's answer instead of text for people.
    pub json: bool,
    pub action: PortAction,
}

/// Where `rlnet port` sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortTarget {
    /// `-a/--api-socket PATH`: the socket of a running instance.
    Socket(PathBuf),
    /// `--network NAME`: a named network's daemon.
    Network(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortAction {
    /// `add [--mode MODE] [--to N] SPEC...`; `mode: None` = the instance's
    /// default; `to`: the member of a named network.
    Add {
        specs: Vec<PublishSpec>,
        mode: Option<Mode>,
        to: Option<String>,
    },
    /// `rm ID...`
    Remove { ids: Vec<RuleId> },
    /// `ls`
    List,
}

/// Why parsing did not produce an [`Invocation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliExit {
    /// `--help` / `--version` text for stdout; exit status 0.
    Print(String),
    /// One line (no newline) for stderr; exit status 1.
    Error(String),
}

/// Options accepted by both forms.
#[derive(Debug, Args)]
struct NetOpts {
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
struct CompatCli {
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

/// `rlnet run [OPTION]... [--] COMMAND [ARG]...`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet run",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
struct RunCli {
    #[command(flatten)]
    net: NetOpts,
    #[arg(long = "network", value_name = "NAME", allow_hyphen_values = true)]
    network: Option<String>,
    #[arg(long = "name", value_name = "NAME", allow_hyphen_values = true)]
    name: Option<String>,
    #[arg(long = "alias", value_name = "NAME", allow_hyphen_values = true,
          action = ArgAction::Append)]
    alias: Vec<String>,
    // The first word that is not an option starts COMMAND; everything after it
    // belongs to COMMAND, options included.
    #[arg(value_name = "COMMAND", trailing_var_arg = true,
          value_parser = clap::value_parser!(OsString))]
    command: Vec<OsString>,
}

/// `rlnet port add|rm|ls [OPTION]... [ARG]...`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet port",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
struct PortCli {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(short = 'a', long = "api-socket", value_name = "PATH", allow_hyphen_values = true,
          value_parser = clap::value_parser!(OsString))]
    api_socket: Option<OsString>,
    #[arg(long = "mode", value_name = "MODE", allow_hyphen_values = true)]
    mode: Option<String>,
    #[arg(long = "network", value_name = "NAME", allow_hyphen_values = true)]
    network: Option<String>,
    #[arg(long = "to", value_name = "NAME", allow_hyphen_values = true)]
    to: Option<String>,
    #[arg(long = "json")]
    json: bool,
    #[arg(value_name = "add|rm|ls [ARG]...", value_parser = clap::value_parser!(OsString))]
    words: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Compat,
    Run,
    Port,
}

impl Form {
    fn help_hint(self) -> &'static str {
        match self {
            Form::Compat => "(see 'rlnet --help')",
            Form::Run => "(see 'rlnet run --help')",
            Form::Port => "(see 'rlnet port --help')",
        }
    }

    fn help(self) -> String {
        match self {
            Form::Compat => help_text(),
            Form::Run => run_help_text(),
            Form::Port => port_help_text(),
        }
    }

    fn command(self) -> clap::Command {
        match self {
            Form::Compat => CompatCli::command(),
            Form::Run => RunCli::command(),
            Form::Port => PortCli::command(),
        }
    }
}

/// Parses a whole argv, program name first.
pub fn parse_args<I, T>(args: I) -> Result<Invocation, CliExit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // Subcommands are recognised only as the very first word, so a TAPNAME
    // or a relative netns path called "run" keeps working in the compat form.
    let rest = |name: &str| std::iter::once(OsString::from(name)).chain(args[2..].iter().cloned());
    match args.get(1).and_then(|a| a.to_str()) {
        Some("run") => run_invocation(parse_with::<RunCli>(Form::Run, rest("rlnet run"))?),
        Some("port") => port_invocation(parse_with::<PortCli>(Form::Port, rest("rlnet port"))?),
        Some("network") => network::parse(network::Which::Network, rest("rlnet network").collect()),
        Some("attach") => network::parse(network::Which::Attach, rest("rlnet attach").collect()),
        Some("detach") => network::parse(network::Which::Detach, rest("rlnet detach").collect()),
        _ => compat_invocation(parse_with::<CompatCli>(Form::Compat, args)?),
    }
}

fn parse_with<C: CommandFactory + FromArgMatches>(
    form: Form,
    args: impl IntoIterator<Item = OsString>,
) -> Result<C, CliExit> {
    let matches = C::command()
        .try_get_matches_from(args)
        .map_err(|e| CliExit::Error(clap_error_line(form, &e)))?;
    C::from_arg_matches(&matches).map_err(|e| CliExit::Error(clap_error_line(form, &e)))
}

fn compat_invocation(cli: CompatCli) -> Result<Invocation, CliExit> {
    if let Some(exit) = help_or_version(&cli.net, Form::Compat) {
        return Err(exit);
    }
    let mut warnings = Vec::new();
    match cli.target_type.as_deref() {
        None | Some("netns") => {}
        Some("bess") => return err("--target-type=bess is not supported by rlnet"),
        Some(other) => {
            return err(format!(
                "invalid value for --target-type: {other:?} (the only supported type is netns)"
            ));
        }
    }
    let path_mode = match cli.netns_type.as_deref() {
        None | Some("pid") => false,
        Some("path") => true,
        Some("tapfd") => return err("--netns-type=tapfd is not supported by rlnet"),
        Some(other) => {
            return err(format!(
                "invalid value for --netns-type: {other:?} (use pid or path)"
            ));
        }
    };

    let mut positionals = cli.positionals.into_iter();
    let Some(first) = positionals.next() else {
        return err(format!(
            "missing {}: usage: rlnet [OPTION]... PID|PATH [TAPNAME] {}",
            if path_mode { "PATH" } else { "PID" },
            Form::Compat.help_hint()
        ));
    };
    let target = if path_mode {
        if first.is_empty() {
            return err(
                "PATH must not be empty: give a network namespace file like /proc/PID/ns/net",
            );
        }
        let userns = match cli.userns_path {
            Some(p) if p.is_empty() => {
                return err("invalid value for --userns-path: the path is empty");
            }
            other => other.map(PathBuf::from),
        };
        Target::Path {
            netns: PathBuf::from(first),
            userns,
        }
    } else {
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
        if cli.userns_path.is_some() {
            // Target::Pid always joins /proc/PID/ns/user, which is what
            // callers pass here in practice (the upstream seccomp test).
            warnings.push(format!(
                "--userns-path is ignored with a PID: the user namespace of {pid} is joined"
            ));
        }
        Target::Pid(pid)
    };

    let tap_name = match positionals.next() {
        None => None,
        Some(name) => {
            let name = name.to_str().ok_or_else(|| {
                CliExit::Error(format!(
                    "TAP name {:?} is invalid: it must be valid UTF-8",
                    name.to_string_lossy()
                ))
            })?;
            Some(config::parse_tap_name(name).map_err(error)?)
        }
    };
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

fn run_invocation(cli: RunCli) -> Result<Invocation, CliExit> {
    if let Some(exit) = help_or_version(&cli.net, Form::Run) {
        return Err(exit);
    }
    if cli.command.is_empty() {
        return err(format!(
            "missing COMMAND: usage: rlnet run [OPTION]... -- COMMAND [ARG]... {}",
            Form::Run.help_hint()
        ));
    }
    let argv = utf8(cli.command, "COMMAND argument")?;
    let inv = finish(
        Form::Run,
        cli.net,
        Config::new(Target::Run { argv }),
        Vec::new(),
    )?;
    match cli.network {
        Some(net) => network::run_on_network(inv, net, cli.name, cli.alias),
        None if cli.name.is_some() || !cli.alias.is_empty() => err(format!(
            "--name and --alias need --network NAME: names are resolved on named networks {}",
            Form::Run.help_hint()
        )),
        None => Ok(inv),
    }
}

fn port_invocation(cli: PortCli) -> Result<Invocation, CliExit> {
    let hint = Form::Port.help_hint();
    if cli.help {
        return Err(CliExit::Print(Form::Port.help()));
    }
    let words = utf8(cli.words, "argument")?;
    let Some((verb, args)) = words.split_first() else {
        return err(format!(
            "missing the port command: use add, rm or ls {hint}"
        ));
    };
    if !["add", "rm", "ls"].contains(&verb.as_str()) {
        return err(format!(
            "unknown port command {verb:?}: use add, rm or ls {hint}"
        ));
    }
    let target = match (cli.api_socket, cli.network) {
        (Some(path), None) => PortTarget::Socket(api_socket_path(path)?),
        (None, Some(net)) => {
            if !crate::api::valid_member_name(&net) {
                return err(format!(
                    "invalid value for --network: {net:?} is not a network name {hint}"
                ));
            }
            PortTarget::Network(net)
        }
        (Some(_), Some(_)) => {
            return err(format!(
                "give either --api-socket or --network, not both {hint}"
            ));
        }
        (None, None) => {
            return err(format!(
                "missing --api-socket=PATH: the API socket of the running rlnet, as given to \
                 its --api-socket (or --network NAME for a named network) {hint}"
            ));
        }
    };
    if cli.mode.is_some() && verb != "add" {
        return err(format!("--mode is for 'rlnet port add' only {hint}"));
    }
    if cli.to.is_some() && verb != "add" {
        return err(format!("--to is for 'rlnet port add' only {hint}"));
    }
    if let Some(to) = &cli.to
        && !crate::api::valid_member_name(to)
    {
        return err(format!(
            "invalid value for --to: {to:?} is not a member name {hint}"
        ));
    }
    let action = match verb.as_str() {
        "add" => {
            if args.is_empty() {
                return err(format!(
                    "missing SPEC: usage: rlnet port add -a PATH [--mode=MODE] SPEC... {hint}"
                ));
            }
            let mode = match &cli.mode {
                None => None,
                Some(m) => Some(m.parse().map_err(invalid("--mode"))?),
            };
            PortAction::Add {
                specs: parse_specs(args, "SPEC")?,
                mode,
                to: cli.to,
            }
        }
        "rm" => {
            if args.is_empty() {
                return err(format!(
                    "missing ID: usage: rlnet port rm -a PATH ID... {hint}"
                ));
            }
            PortAction::Remove {
                ids: args
                    .iter()
                    .map(|a| parse_rule_id(a))
                    .collect::<Result<_, _>>()?,
            }
        }
        _ => {
            if let Some(extra) = args.first() {
                return err(format!(
                    "unexpected argument {extra:?}: 'rlnet port ls' takes none {hint}"
                ));
            }
            PortAction::List
        }
    };
    Ok(Invocation {
        command: Command::Port(PortCommand {
            target,
            json: cli.json,
            action,
        }),
        log_level: log::LevelFilter::Warn,
        warnings: Vec::new(),
    })
}

/// A rule id as `rlnet port ls` shows it: 1 to 2^53, like the API takes.
fn parse_rule_id(s: &str) -> Result<RuleId, CliExit> {
    match s.parse::<RuleId>() {
        Ok(id) if (1..=1 << 53).contains(&id) => Ok(id),
        _ => err(format!(
            "invalid rule id {s:?}: use a number from the ID column of 'rlnet port ls'"
        )),
    }
}

impl PortCommand {
    /// The API request this command sends.
    pub fn request(&self) -> ClientRequest {
        match &self.action {
            PortAction::Add { specs, mode, to } => ClientRequest::AddPublish {
                specs: specs.clone(),
                mode: *mode,
                to: to.clone(),
            },
            PortAction::Remove { ids } => ClientRequest::RemovePublish { ids: ids.clone() },
            PortAction::List => ClientRequest::ListHostfwd,
        }
    }

    /// The text for stdout, from the success reply's value; `Err` says
    /// what is wrong with a reply of the wrong shape.
    pub fn render(&self, reply: &Reply) -> Result<String, String> {
        match &self.action {
            PortAction::Add { specs, .. } => {
                let ids = reply_ids(reply)?;
                if ids.len() != specs.len() {
                    return Err(format!(
                        "unexpected reply: {} ids for {} specs in {reply}",
                        ids.len(),
                        specs.len()
                    ));
                }
                if self.json {
                    return Ok(format!("{reply}\n"));
                }
                Ok(specs
                    .iter()
                    .zip(ids)
                    .map(|(spec, id)| format!("published {spec} as id {id}\n"))
                    .collect())
            }
            PortAction::Remove { ids } => {
                if self.json {
                    return Ok(format!("{reply}\n"));
                }
                Ok(ids.iter().map(|id| format!("removed {id}\n")).collect())
            }
            PortAction::List => {
                let entries = reply_entries(reply)?;
                if self.json {
                    // Through `Entry`, so keys keep the API's documented
                    // order (serde_json's `Value` would sort them).
                    let json = serde_json::to_string(&entries)
                        .map_err(|e| format!("cannot print the entries: {e}"))?;
                    return Ok(format!("{json}\n"));
                }
                Ok(port_table(&entries))
            }
        }
    }
}

/// `rlnet port ls`'s table: left-aligned columns two spaces apart.
fn port_table(entries: &[Entry]) -> String {
    let mut rows: Vec<[String; 5]> = vec![[
        "ID".into(),
        "PROTO".into(),
        "HOST".into(),
        "NAMESPACE".into(),
        "MODE".into(),
    ]];
    for e in entries {
        rows.push([
            e.id.to_string(),
            e.proto.clone(),
            endpoint(&e.host_addr, e.host_port, e.host_port_end),
            endpoint(&e.guest_addr, e.guest_port, e.guest_port_end),
            e.mode.unwrap_or_default().to_string(),
        ]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `*:8080` (all addresses), `127.0.0.1:8080`, `[::1]:8000-8010`.
fn endpoint(addr: &str, port: u16, end: Option<u16>) -> String {
    let addr = if addr.is_empty() {
        "*".to_string()
    } else if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_string()
    };
    match end {
        Some(end) if end != port => format!("{addr}:{port}-{end}"),
        _ => format!("{addr}:{port}"),
    }
}

fn help_or_version(net: &NetOpts, form: Form) -> Option<CliExit> {
    if net.help {
        Some(CliExit::Print(form.help()))
    } else if net.version {
        Some(CliExit::Print(version_text()))
    } else {
        None
    }
}

/// Applies the shared options to `config` and checks the result.
fn finish(
    form: Form,
    o: NetOpts,
    mut config: Config,
    mut warnings: Vec<String>,
) -> Result<Invocation, CliExit> {
    let log_level = match o.log_level.as_deref() {
        None => log::LevelFilter::Warn,
        Some(level) => parse_log_level(level)?,
    };
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
    if let Some(path) = o.api_socket {
        config.api_socket = Some(api_socket_path(path)?);
    }
    if o.no_host_loopback {
        warnings.push("--no-host-loopback is deprecated, use --disable-host-loopback".into());
    }
    config.host_loopback = !(o.disable_host_loopback || o.no_host_loopback);
    if o.create_sandbox {
        warnings.push("--create-sandbox is deprecated, use --enable-sandbox".into());
    }
    config.enable_sandbox = o.enable_sandbox || o.create_sandbox;
    config.enable_seccomp = o.enable_seccomp;
    if let Some(a) = &o.outbound_addr {
        config.outbound4 =
            Some(config::parse_outbound(a, false).map_err(invalid("--outbound-addr"))?);
    }
    if let Some(a) = &o.outbound_addr6 {
        config.outbound6 =
            Some(config::parse_outbound(a, true).map_err(invalid("--outbound-addr6"))?);
    }
    config.dns = !o.disable_dns;
    for a in &o.dns_upstream {
        config
            .dns_upstream
            .push(config::parse_dns_upstream(a, &config.plan).map_err(invalid("--dns-upstream"))?);
    }
    if let Some(path) = o.resolv_conf {
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
    if let Some(mac) = &o.macaddress {
        match (form, config.configure) {
            // slirp4netns's text: only -c sets a MAC there.
            (Form::Compat, Configure::Auto | Configure::Never) => {
                return err(
                    "--macaddr cannot be specified when --configure or -c is not specified",
                );
            }
            (Form::Run, Configure::Never) => {
                return err("--macaddress cannot be used with --no-configure");
            }
            _ => {}
        }
        config.mac = Some(config::parse_mac(mac).map_err(invalid("--macaddress"))?);
    }
    config.publish = parse_specs(&o.publish, "value for --publish")?;
    if let Some(mode) = &o.publish_mode {
        config.publish_mode = mode.parse().map_err(invalid("--publish-mode"))?;
    }
    config.validate().map_err(error)?;
    Ok(Invocation {
        command: Command::Serve(config),
        log_level,
        warnings,
    })
}

/// `-a/--api-socket PATH`, for serving or for asking.
fn api_socket_path(path: OsString) -> Result<PathBuf, CliExit> {
    if path.is_empty() {
        return err("invalid value for --api-socket: the path is empty");
    }
    let path = PathBuf::from(path);
    config::check_api_socket_path(&path).map_err(invalid("--api-socket"))?;
    Ok(path)
}

/// Parses the specs of the `--publish` options or of one `port add`. `what`
/// names them in errors ("invalid {what} \"SPEC\": ...").
fn parse_specs(texts: &[String], what: &str) -> Result<Vec<PublishSpec>, CliExit> {
    let specs = texts
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|e| CliExit::Error(format!("invalid {what} {text:?}: {e}")))
        })
        .collect::<Result<Vec<PublishSpec>, CliExit>>()?;
    // A host port can be published once: say so now rather than fail
    // half-way through binding, with the table's own rule. The privileged
    // port limit (0 here) is the running instance's to check.
    PortTable::new()
        .check(&specs, 0)
        .map_err(|e| CliExit::Error(format!("invalid {what}: {e}")))?;
    Ok(specs)
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

/// Words as UTF-8 strings; `what` names them in the error.
fn utf8(words: Vec<OsString>, what: &str) -> Result<Vec<String>, CliExit> {
    words
        .into_iter()
        .map(|w| {
            w.into_string().map_err(|w| {
                CliExit::Error(format!(
                    "{what} {:?} is not valid UTF-8",
                    w.to_string_lossy()
                ))
            })
        })
        .collect()
}

fn err<T>(msg: impl Into<String>) -> Result<T, CliExit> {
    Err(CliExit::Error(msg.into()))
}

fn error(e: ConfigError) -> CliExit {
    CliExit::Error(e.to_string())
}

fn invalid<E: fmt::Display>(option: &'static str) -> impl Fn(E) -> CliExit {
    move |e| CliExit::Error(format!("invalid value for {option}: {e}"))
}

/// Turns any clap error into one line in rlnet's words. clap's own rendering
/// is multi-line and mentions its usage string, which callers must not see.
fn clap_error_line(form: Form, e: &clap::Error) -> String {
    let ctx = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    // clap names options like "--mtu <MTU>"; keep just the option.
    let arg = |kind| ctx(kind).map(|s| s.split(' ').next().unwrap_or_default().to_string());
    let hint = form.help_hint();
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let bad = ctx(ContextKind::InvalidArg).unwrap_or_default();
            if let Some(line) = ambiguous(form, &bad) {
                return line;
            }
            if !bad.starts_with('-') {
                return format!("unexpected argument {bad:?} {hint}");
            }
            match ctx(ContextKind::SuggestedArg) {
                Some(s) => format!("unrecognized option '{bad}', did you mean '{s}'? {hint}"),
                None => format!("unrecognized option '{bad}' {hint}"),
            }
        }
        ErrorKind::ArgumentConflict => {
            match (arg(ContextKind::InvalidArg), arg(ContextKind::PriorArg)) {
                (Some(a), Some(b)) if a != b => {
                    format!("option '{a}' cannot be used with '{b}': choose one {hint}")
                }
                (Some(a), _) => format!("option '{a}' was given twice {hint}"),
                _ => format!("conflicting options {hint}"),
            }
        }
        ErrorKind::InvalidValue | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            match arg(ContextKind::InvalidArg) {
                Some(a) => format!("option '{a}' needs a value {hint}"),
                None => format!("an option is missing its value {hint}"),
            }
        }
        ErrorKind::NoEquals => match arg(ContextKind::InvalidArg) {
            Some(a) => format!("option '{a}' needs a value, like {a}=VALUE {hint}"),
            None => format!("an option is missing its value {hint}"),
        },
        ErrorKind::TooManyValues => {
            match (ctx(ContextKind::InvalidValue), arg(ContextKind::InvalidArg)) {
                (Some(v), Some(a)) => format!("option '{a}' takes no value, but got {v:?} {hint}"),
                _ => format!("an option got a value it does not take {hint}"),
            }
        }
        ErrorKind::InvalidUtf8 => format!("an argument is not valid UTF-8 {hint}"),
        _ => {
            // Any other kind: clap's first line, without its "error: " prefix.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first).trim();
            format!("{first} {hint}")
        }
    }
}

/// `--dis` matches several long options; getopt calls that ambiguous, and
/// listing the candidates is the useful answer.
fn ambiguous(form: Form, bad: &str) -> Option<String> {
    let name = bad.strip_prefix("--")?.split('=').next()?;
    if name.is_empty() {
        return None;
    }
    let cmd = form.command();
    let mut candidates: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| l.starts_with(name))
        .map(|l| format!("--{l}"))
        .collect();
    if candidates.len() < 2 {
        return None;
    }
    candidates.sort();
    Some(format!(
        "ambiguous option '--{name}': could be {} {}",
        candidates.join(", "),
        form.help_hint()
    ))
}

pub fn version_text() -> String {
    format!(
        "rlnet version {}\nslirp4netns-compatible: 1.2.0\nSLIRP_CONFIG_VERSION_MAX: 4\n",
        env!("CARGO_PKG_VERSION")
    )
}

// The help texts are written by hand: callers grep them for option names,
// and a fixed text is easier to keep exact than clap's generated one. A unit
// test checks them against the parser. (No `\` line continuations here: they
// would eat the indentation.)

/// Options shared by both forms.
const NET_OPTIONS_HELP: &str =
    "  -c, --configure            configure the interface (addresses, routes, MTU,
                             lo up) even if the caller created it
      --no-configure         never configure the interface
  -e, --exit-fd=FD           exit cleanly on any event on FD, such as the
                             other end of a pipe being closed
  -r, --ready-fd=FD          write \"1\" to FD and close it once ready
  -m, --mtu=MTU              MTU, up to 65521; at least 1280 with IPv6 and 68
                             without [65520]
  -6, --enable-ipv6          enable IPv6 (accepted: it is on by default)
      --disable-ipv6         IPv4 only
  -a, --api-socket=PATH      serve the slirp4netns JSON API on unix socket PATH
                             (also what 'rlnet port' talks to)
      --cidr=CIDR            IPv4 network, prefix length 1-25 [10.0.2.0/24]
      --disable-host-loopback
                             refuse connections to the gateway address, which
                             otherwise reach the host's 127.0.0.1 and ::1
      --no-host-loopback     deprecated spelling of --disable-host-loopback
      --enable-sandbox       once set up, confine rlnet: a private read-only
                             root with only /etc, /run and resolv.conf's
                             directory, no capability but
                             CAP_NET_BIND_SERVICE, not dumpable (off by
                             default)
      --create-sandbox       deprecated spelling of --enable-sandbox
      --enable-seccomp       once set up, allow only the system calls rlnet
                             needs; any other kills it (off by default)
      --outbound-addr=ADDR   send outbound IPv4 from ADDR (an IPv4 address or
                             an interface name)
      --outbound-addr6=ADDR  send outbound IPv6 from ADDR (an IPv6 address or
                             an interface name)
      --disable-dns          turn off the DNS stub (10.0.2.3, fd00::3)
      --dns-upstream=ADDR    the DNS stub forwards to ADDR (IP or IP:PORT,
                             IPv6 with a port as [::1]:5353) instead of the
                             servers in the host's resolv.conf; repeatable,
                             tried in order
      --resolv-conf=PATH     where the host's DNS servers are listed; changes
                             are followed [/etc/resolv.conf]
      --add-host=NAME:IP     the DNS stub answers NAME with IP; repeatable. IP
                             may be host-gateway: the gateway addresses
      --macaddress=MAC       MAC address of the interface, like
                             0e:d4:18:d9:38:fb; needs -c, except with
                             rlnet run (which configures by default)
  -p, --publish=SPEC         publish a host port in the namespace; repeatable.
                             SPEC is [HOST_IP:]HOST_PORT[-END]:NS_PORT[-END]
                             [/tcp|/udp], like 8080:80, 127.0.0.1:5353:53/udp
                             or [::1]:8443:443; without HOST_IP: all IPv4 and
                             IPv6 addresses
      --publish-mode=MODE    how published connections enter the namespace:
                             stack: through rlnet's stack, from the client's
                             real address (host loopback clients appear as
                             the gateway, 10.0.2.2 / fd00::2); splice: a
                             socket inside the namespace plus splice(2),
                             fastest, but the service sees the namespace's
                             own address as the client [stack]
";

/// Options about rlnet itself, last in both texts.
const GENERAL_OPTIONS_HELP: &str =
    "      --log-level=LEVEL      error, warn, info, debug or trace [warn]
  -h, --help                 print this help and exit
  -v, --version              print the version and exit
";

/// Options of the slirp4netns form only.
const COMPAT_OPTIONS_HELP: &str =
    "      --netns-type=TYPE      the first argument is a pid or a path [pid]
      --userns-path=PATH     user namespace to join before the network
                             namespace (with --netns-type=path; with a PID,
                             the user namespace of PID is used)
      --target-type=TYPE     accepted: netns is the only type [netns]
";

const DEFAULTS_HELP: &str = "Defaults (--cidr moves the IPv4 addresses; IPv6 is fixed):
  network                    10.0.2.0/24     fd00::/64
  gateway = host loopback    10.0.2.2        fd00::2
  DNS stub                   10.0.2.3        fd00::3
  namespace address          10.0.2.100      fd00::100
  DHCP from                  10.0.2.15
  MTU                        65520
  interface                  tap0
";

const USAGE_HELP: &str = "Usage: rlnet [OPTION]... PID|PATH [TAPNAME]
       rlnet run [OPTION]... -- COMMAND [ARG]...
       rlnet port add|rm|ls -a PATH [ARG]...
Give an unprivileged network namespace a network: outbound NAT through a
userspace TCP/IP stack, published ports and a DNS stub. A drop-in for
slirp4netns.

PID is a process whose network namespace gets the network; rlnet exits when
it exits. With --netns-type=path, PATH is a network namespace file such as
/proc/PID/ns/net. TAPNAME is the interface inside it [tap0]. 'rlnet run'
starts COMMAND in a new user and network namespace (see 'rlnet run --help').
'rlnet port' publishes ports of a running rlnet (see 'rlnet port --help').
";

const RUN_USAGE_HELP: &str = "Usage: rlnet run [OPTION]... [--] COMMAND [ARG]...
       rlnet run --network NAME [--name N] [--alias A]... [-p SPEC]...
                 [--] COMMAND [ARG]...
Run COMMAND in a new user and network namespace with a network, and exit
with its status. Options end at '--' or at the first word that is not an
option; the rest is COMMAND and its arguments, passed on verbatim.

With --network NAME, the namespace joins the named network NAME (see
'rlnet network --help') instead of getting a network of its own; it leaves
the network when COMMAND exits. The network sets the addresses, MTU and
policies, so only -p/--publish (which needs --name), --disable-dns and
these apply:
      --network=NAME         the named network to join
      --name=N               the member's name, resolved by other members
      --alias=A              another name; repeatable
";

pub fn help_text() -> String {
    format!(
        "{USAGE_HELP}\nOptions:\n{NET_OPTIONS_HELP}{COMPAT_OPTIONS_HELP}{GENERAL_OPTIONS_HELP}\n{DEFAULTS_HELP}\nErrors exit with status 1.\n"
    )
}

const PORT_HELP: &str = "Usage: rlnet port add -a PATH [--mode=MODE] [--json] SPEC...
       rlnet port rm -a PATH [--json] ID...
       rlnet port ls -a PATH [--json]
       rlnet port add --network NAME --to MEMBER [--mode=MODE] SPEC...
Publish, unpublish and list host ports of a running rlnet, through the API
socket it was started with (its -a PATH), or of a named network (--network
NAME, with --to naming the member the ports go to).

Commands:
  add SPEC...                publish each SPEC, all or nothing, and print the
                             new rule ids. SPEC is as for -p:
                             [HOST_IP:]HOST_PORT[-END]:NS_PORT[-END][/tcp|/udp]
                             like 8080:80, 127.0.0.1:5353:53/udp or
                             [::1]:8000-8010:8000-8010
  rm ID...                   unpublish the rules with these ids
  ls                         list the rules: ID, PROTO, HOST (*: all
                             addresses), NAMESPACE and MODE

Options:
  -a, --api-socket=PATH      the API socket of the running rlnet
      --network=NAME         instead of -a: the named network NAME
      --to=MEMBER            add: the member of the network (by name or
                             alias) the ports go to
      --mode=MODE            add: stack (the service sees the client's
                             address) or splice (fastest) [the instance's
                             default]
      --json                 print the API's answer as JSON
  -h, --help                 print this help and exit

Errors exit with status 1.
";

pub fn port_help_text() -> String {
    PORT_HELP.to_string()
}

pub fn run_help_text() -> String {
    format!(
        "{RUN_USAGE_HELP}\nOptions:\n{NET_OPTIONS_HELP}{GENERAL_OPTIONS_HELP}\n{DEFAULTS_HELP}\nErrors exit with status 1; otherwise rlnet exits with COMMAND's status.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Outbound;
    use crate::forward::spec::Mode;
    use crate::forward::spec::{PortRange, Proto};
    use std::net::{IpAddr, Ipv4Addr};

    fn parse(args: &[&str]) -> Result<Invocation, CliExit> {
        parse_args(std::iter::once("rlnet").chain(args.iter().copied()))
    }

    fn ok(args: &[&str]) -> Invocation {
        match parse(args) {
            Ok(inv) => inv,
            Err(e) => panic!("{args:?} should parse, got {e:?}"),
        }
    }

    fn cfg(args: &[&str]) -> Config {
        serve(&ok(args)).clone()
    }

    fn serve(inv: &Invocation) -> &Config {
        match &inv.command {
            Command::Serve(config) => config,
            other => panic!("not a serve command: {other:?}"),
        }
    }

    fn port(args: &[&str]) -> PortCommand {
        let mut argv = vec!["port"];
        argv.extend_from_slice(args);
        let inv = ok(&argv);
        assert_eq!(inv.log_level, log::LevelFilter::Warn);
        assert!(inv.warnings.is_empty());
        match inv.command {
            Command::Port(p) => p,
            other => panic!("not a port command: {other:?}"),
        }
    }

    /// The error line; asserts it is one line and mentions `needle`.
    fn fails(args: &[&str], needle: &str) -> String {
        match parse(args) {
            Err(CliExit::Error(line)) => {
                assert!(!line.contains('\n'), "{args:?}: multi-line error {line:?}");
                assert!(!line.is_empty(), "{args:?}: empty error");
                assert!(
                    line.contains(needle),
                    "{args:?}: {line:?} should contain {needle:?}"
                );
                line
            }
            other => panic!("{args:?} should fail, got {other:?}"),
        }
    }

    fn printed(args: &[&str]) -> String {
        match parse(args) {
            Err(CliExit::Print(text)) => text,
            other => panic!("{args:?} should print, got {other:?}"),
        }
    }

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
    fn run_form() {
        let argv = |c: Config| match c.target {
            Target::Run { argv } => argv,
            other => panic!("not run: {other:?}"),
        };
        assert_eq!(
            argv(cfg(&["run", "--", "ip", "-a", "addr"])),
            ["ip", "-a", "addr"]
        );
        assert_eq!(
            argv(cfg(&["run", "ip", "-a", "addr"])),
            ["ip", "-a", "addr"]
        );
        assert_eq!(argv(cfg(&["run", "--", "--weird"])), ["--weird"]);
        let c = cfg(&[
            "run", "--mtu", "1500", "-p", "8080:80", "-c", "sh", "-c", "--mtu 9",
        ]);
        assert_eq!(c.mtu, 1500);
        assert_eq!(c.configure, Configure::Always);
        assert_eq!(c.publish.len(), 1);
        assert_eq!(c.tap_name, "tap0");
        assert_eq!(argv(c), ["sh", "-c", "--mtu 9"]);
        // Options after COMMAND belong to COMMAND, --help included.
        assert_eq!(argv(cfg(&["run", "ls", "--help"])), ["ls", "--help"]);
        assert_eq!(argv(cfg(&["run", "--", "run"])), ["run"]);
        fails(&["run"], "missing COMMAND");
        fails(&["run", "--mtu", "1500"], "missing COMMAND");
        fails(&["run", "--"], "missing COMMAND");
        // Compat-only options do not exist in run.
        fails(&["run", "--netns-type=path", "ls"], "'--netns-type'");
        fails(&["run", "--userns-path=/x", "ls"], "'--userns-path'");
        let line = fails(&["run", "--bogus", "ls"], "'--bogus'");
        assert!(line.contains("rlnet run --help"));
        // "run" anywhere else is not the run form.
        fails(&["-c", "run", "ls"], "'run' must be the first argument");
        let c = cfg(&["run", "--macaddress=0e:d4:18:d9:38:fb", "true"]);
        assert!(c.mac.is_some());
        fails(
            &[
                "run",
                "--no-configure",
                "--macaddress=0e:d4:18:d9:38:fb",
                "true",
            ],
            "--no-configure",
        );
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

    fn spec(s: &str) -> PublishSpec {
        s.parse().unwrap()
    }

    #[test]
    fn port_forms() {
        for args in [
            &["add", "-a", "/run/x.sock", "8080:80"][..],
            &["add", "--api-socket=/run/x.sock", "8080:80"],
            &["-a/run/x.sock", "add", "8080:80"],
            &["add", "8080:80", "--api", "/run/x.sock"],
            &["add", "-a", "/run/x.sock", "--", "8080:80"],
        ] {
            assert_eq!(
                port(args),
                PortCommand {
                    target: PortTarget::Socket("/run/x.sock".into()),
                    json: false,
                    action: PortAction::Add {
                        specs: vec![spec("8080:80")],
                        mode: None,
                        to: None,
                    },
                },
                "{args:?}"
            );
        }
        let p = port(&[
            "add",
            "-a",
            "/s",
            "--mode=splice",
            "--json",
            "127.0.0.1:53:53/udp",
            "[::1]:8000-8010:9000-9010",
        ]);
        assert!(p.json);
        assert_eq!(
            p.action,
            PortAction::Add {
                specs: vec![
                    spec("127.0.0.1:53:53/udp"),
                    spec("[::1]:8000-8010:9000-9010")
                ],
                mode: Some(Mode::Splice),
                to: None,
            }
        );
        assert_eq!(
            p.request(),
            ClientRequest::AddPublish {
                specs: vec![
                    spec("127.0.0.1:53:53/udp"),
                    spec("[::1]:8000-8010:9000-9010")
                ],
                mode: Some(Mode::Splice),
                to: None,
            }
        );
        let p = port(&["add", "-a", "/s", "--mode", "stack", "80:80"]);
        assert_eq!(
            p.action,
            PortAction::Add {
                specs: vec![spec("80:80")],
                mode: Some(Mode::Stack),
                to: None,
            }
        );
        let p = port(&["rm", "-a", "/s", "3", "1", "--json"]);
        assert!(p.json);
        assert_eq!(p.action, PortAction::Remove { ids: vec![3, 1] });
        assert_eq!(
            p.request(),
            ClientRequest::RemovePublish { ids: vec![3, 1] }
        );
        let p = port(&["ls", "-a", "/s"]);
        assert_eq!(p.action, PortAction::List);
        assert_eq!(p.request(), ClientRequest::ListHostfwd);
        // "port" is a subcommand only as the first word.
        fails(&["-c", "port", "ls"], "PID must be a positive integer");
    }

    #[test]
    fn port_errors_are_one_line() {
        for (args, needle) in [
            (&["port"][..], "missing the port command: use add, rm or ls"),
            (&["port", "-a", "/s"], "missing the port command"),
            (
                &["port", "list", "-a", "/s"],
                "unknown port command \"list\"",
            ),
            (&["port", "ls"], "missing --api-socket=PATH"),
            (&["port", "add", "80:80"], "missing --api-socket=PATH"),
            (&["port", "ls", "-a", ""], "--api-socket"),
            (&["port", "ls", "-a", &"/x".repeat(60)], "too long"),
            (&["port", "add", "-a", "/s"], "missing SPEC"),
            (&["port", "rm", "-a", "/s"], "missing ID"),
            (
                &["port", "ls", "-a", "/s", "3"],
                "unexpected argument \"3\"",
            ),
            (
                &["port", "add", "-a", "/s", "8080"],
                "invalid SPEC \"8080\": missing the namespace port",
            ),
            (&["port", "add", "-a", "/s", "80:80/sctp"], "sctp"),
            (
                &["port", "add", "-a", "/s", "80:80", "[::]:80:81"],
                "invalid SPEC: host port 80/tcp is published twice in this request",
            ),
            (
                &["port", "add", "-a", "/s", "--mode=fast", "80:80"],
                "invalid value for --mode: unknown publish mode \"fast\"",
            ),
            (
                &["port", "rm", "-a", "/s", "--mode=splice", "1"],
                "--mode is for 'rlnet port add' only",
            ),
            (&["port", "ls", "-a", "/s", "--mode=stack"], "--mode"),
            (&["port", "rm", "-a", "/s", "x"], "invalid rule id \"x\""),
            (&["port", "rm", "-a", "/s", "0"], "invalid rule id \"0\""),
            (&["port", "rm", "-a", "/s", "1", "-2"], "'-2'"),
            (
                &["port", "rm", "-a", "/s", "9007199254740993"],
                "invalid rule id",
            ),
            (
                &["port", "ls", "-a", "/s", "--bogus"],
                "unrecognized option '--bogus' (see 'rlnet port --help')",
            ),
            (&["port", "ls", "--json=yes", "-a", "/s"], "\"yes\""),
            (&["port", "ls", "-a"], "'--api-socket' needs a value"),
            // Network options belong to the serving forms.
            (&["port", "ls", "-a", "/s", "--mtu=1500"], "'--mtu'"),
        ] {
            // Never sent to the other forms' help.
            let line = fails(args, needle);
            assert!(!line.contains("'rlnet --help'"), "{line}");
        }
        assert_eq!(
            port(&["rm", "-a", "/s", "9007199254740992"]).request(),
            ClientRequest::RemovePublish { ids: vec![1 << 53] }
        );
    }

    #[test]
    fn port_help() {
        for args in [
            &["port", "--help"][..],
            &["port", "-h"],
            &["port", "add", "--help"],
            &["port", "ls", "-a", "/s", "-h"],
            &["port", "bogus", "--he"],
        ] {
            assert_eq!(printed(args), port_help_text(), "{args:?}");
        }
        assert!(port_help_text().starts_with("Usage: rlnet port add -a PATH"));
        assert!(help_text().contains("rlnet port add|rm|ls -a PATH"));
    }

    fn render(args: &[&str], reply: serde_json::Value) -> Result<String, String> {
        port(args).render(&reply)
    }

    #[test]
    fn port_output() {
        use serde_json::json;
        let add = ["add", "-a", "/s", "8080:80", "127.0.0.1:5353:53/udp"];
        assert_eq!(
            render(&add, json!({"ids": [3, 4]})).unwrap(),
            "published 8080:80/tcp as id 3\npublished 127.0.0.1:5353:53/udp as id 4\n"
        );
        let mut add_json = add.to_vec();
        add_json.push("--json");
        assert_eq!(
            render(&add_json, json!({"ids": [3, 4]})).unwrap(),
            "{\"ids\":[3,4]}\n"
        );
        let e = render(&add, json!({"ids": [3]})).unwrap_err();
        assert!(e.starts_with("unexpected reply: 1 ids for 2 specs"), "{e}");
        assert!(render(&add, json!({})).is_err());
        assert_eq!(
            render(&["rm", "-a", "/s", "3", "1"], json!({})).unwrap(),
            "removed 3\nremoved 1\n"
        );
        assert_eq!(
            render(&["rm", "-a", "/s", "3", "--json"], json!({})).unwrap(),
            "{}\n"
        );
    }

    #[test]
    fn port_ls_table() {
        use serde_json::json;
        let entries = json!([
            {"id":1,"proto":"tcp","host_addr":"","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},
            {"id":2,"proto":"udp","host_addr":"127.0.0.1","host_port":5353,"guest_addr":"10.0.2.100","guest_port":53},
            {"id":12,"proto":"tcp","host_addr":"::1","host_port":8000,"guest_addr":"fd00::100","guest_port":9000,
             "host_port_end":8010,"guest_port_end":9010,"mode":"splice"},
            {"id":13,"proto":"tcp","host_addr":"0.0.0.0","host_port":443,"guest_addr":"10.0.2.101","guest_port":8443}
        ]);
        let ls = ["ls", "-a", "/s"];
        let want = "\
ID  PROTO  HOST             NAMESPACE              MODE
1   tcp    *:8080           10.0.2.100:80          stack
2   udp    127.0.0.1:5353   10.0.2.100:53          stack
12  tcp    [::1]:8000-8010  [fd00::100]:9000-9010  splice
13  tcp    0.0.0.0:443      10.0.2.101:8443        stack
";
        let reply = json!({"entries": entries});
        assert_eq!(render(&ls, reply.clone()).unwrap(), want);
        assert_eq!(
            render(&ls, json!({"entries": []})).unwrap(),
            "ID  PROTO  HOST  NAMESPACE  MODE\n"
        );
        let json_out = render(&["ls", "-a", "/s", "--json"], reply).unwrap();
        let printed: serde_json::Value = serde_json::from_str(&json_out).unwrap();
        assert_eq!(printed, entries);
        // One line, keys in the API's order.
        assert_eq!(json_out.lines().count(), 1);
        assert!(json_out.starts_with(r#"[{"id":1,"proto":"tcp","host_addr":"","#));
        assert!(render(&ls, json!({"ids": [1]})).is_err());
        assert!(render(&ls, json!({"entries": [{"id": "x"}]})).is_err());
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

    #[test]
    fn help_and_version() {
        for args in [
            &["--help"][..],
            &["-h"],
            &["--he"],
            &["1234", "-h"],
            &["-c", "--help"],
        ] {
            let help = printed(args);
            assert!(help.starts_with("Usage: rlnet [OPTION]... PID|PATH [TAPNAME]\n"));
        }
        let help = printed(&["--help"]);
        assert!(help.contains("rlnet run [OPTION]... -- COMMAND [ARG]..."));
        for s in [
            "--netns-type",
            "--mtu",
            "--cidr",
            "--disable-host-loopback",
            "--api-socket",
            "--enable-ipv6",
            "--enable-sandbox",
            "--enable-seccomp",
            "--outbound-addr",
            "--configure",
            "--ready-fd",
            "--exit-fd",
            "--userns-path",
            "--disable-dns",
            "--macaddress",
            "--publish",
            "10.0.2.0/24",
            "10.0.2.2",
            "10.0.2.3",
            "10.0.2.100",
            "fd00::/64",
            "65520",
        ] {
            assert!(help.contains(s), "help lacks {s}");
        }
        let run_help = printed(&["run", "--help"]);
        assert!(run_help.starts_with("Usage: rlnet run [OPTION]... [--] COMMAND [ARG]...\n"));
        assert_eq!(printed(&["run", "-h", "ls"]), run_help);
        for args in [&["-v"][..], &["--version"], &["--vers"], &["run", "-v"]] {
            let v = printed(args);
            let lines: Vec<&str> = v.lines().collect();
            assert_eq!(
                lines,
                [
                    format!("rlnet version {}", env!("CARGO_PKG_VERSION")).as_str(),
                    "slirp4netns-compatible: 1.2.0",
                    "SLIRP_CONFIG_VERSION_MAX: 4"
                ]
            );
        }
        // clap's -V is not ours.
        fails(&["-V"], "'-V'");
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

    /// The hand-written help must document every option clap accepts, and
    /// mention nothing clap does not accept.
    #[test]
    fn help_matches_the_parser() {
        for (cmd, help) in [
            (CompatCli::command(), help_text()),
            (RunCli::command(), run_help_text()),
            (PortCli::command(), port_help_text()),
            (
                network::NetworkCli::command(),
                network::NETWORK_HELP.to_string(),
            ),
            (
                network::MemberCli::command(),
                network::ATTACH_HELP.to_string(),
            ),
        ] {
            let mut longs = Vec::new();
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long() {
                    let long = format!("--{long}");
                    assert!(help.contains(&long), "{} help lacks {long}", cmd.get_name());
                    longs.push(long);
                }
                if let Some(short) = arg.get_short() {
                    let pair = format!("-{short}, --{}", arg.get_long().unwrap_or_default());
                    assert!(help.contains(&pair), "{} help lacks {pair}", cmd.get_name());
                }
            }
            for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
                if let Some(name) = word.strip_prefix("--").filter(|n| !n.is_empty()) {
                    let name = format!("--{name}");
                    assert!(
                        longs.contains(&name),
                        "{} help mentions unknown {name}",
                        cmd.get_name()
                    );
                }
            }
            for line in help.lines() {
                assert!(line.len() <= 80, "help line too long: {line:?}");
                if line.trim_start().starts_with('-') {
                    assert!(
                        line.starts_with("  -") && line.as_bytes()[3] != b'-'
                            || line.starts_with("      --"),
                        "misaligned help line: {line:?}"
                    );
                }
            }
        }
        assert!(!run_help_text().contains("--netns-type"));
    }
}
