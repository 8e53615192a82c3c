//! Command line → [`Invocation`]. Pure: no I/O, no environment, no filesystem.
//!
//! One file per command form; this one dispatches on the first word and
//! holds what the forms share (the result types, clap's errors in our
//! words, value helpers):
//! - `compat.rs`: `rlnet [OPTION]... PID|PATH [TAPNAME]`, slirp4netns-compatible
//!   (getopt-like: interleaved positionals, `--x=v` and `--x v`, unique long
//!   prefixes, last repeat wins), and the network options `run` shares;
//! - `run.rs`: `rlnet run [OPTION]... [--] COMMAND [ARG]...`, with the same
//!   network options, or on a named network with `--network NAME`;
//! - `port.rs`: `rlnet port add|rm|ls -a PATH ...`, one request to a running
//!   instance's API socket. Its output is rendered there too
//!   ([`PortCommand::render`]), from the reply the caller got with
//!   [`crate::api::client::request`];
//! - `network.rs`: `rlnet network|attach|detach`, as the request types of
//!   [`crate::network::request`];
//! - `check.rs`: `rlnet check`, which diagnoses the host ([`crate::check`]);
//! - `pasta.rs`: pasta's command line, when rlnet runs as `pasta` (or
//!   `rlnet pasta ...`);
//! - `completion.rs`: `rlnet completion bash|zsh|fish`, printed like help;
//! - `help.rs`: the hand-written help texts.
//!
//! clap only tokenizes: option values arrive as strings and are converted here
//! with the `config` parsers, so every error is one line with our wording and
//! the exact slirp4netns texts where callers grep them.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use crate::config::pasta::PastaOptions;
use crate::config::{self, Config, ConfigError};
use crate::forward::spec::PublishSpec;
use crate::forward::table::PortTable;
use crate::network::request::{NetworkCommand, NetworkRun};

mod check;
mod compat;
mod completion;
mod help;
mod network;
mod pasta;
mod port;
mod run;
#[cfg(test)]
mod testing;

pub use help::CALLER_OPTIONS;
pub use pasta::{is_pasta_name, long_options as pasta_long_options};
pub use port::{PortAction, PortCommand, PortTarget};

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
    Serve(Box<Config>),
    /// `rlnet port add|rm|ls`: one request to a running instance.
    Port(PortCommand),
    /// `rlnet network ...`, `rlnet attach`, `rlnet detach`.
    Network(NetworkCommand),
    /// `rlnet run --network NAME ... -- COMMAND`.
    RunOnNetwork(NetworkRun),
    /// `rlnet check`: what the host lets rlnet do.
    Check,
    /// rlnet as pasta (`pasta ...`, `rlnet pasta ...`).
    Pasta(Box<PastaOptions>),
}

/// Why parsing did not produce an [`Invocation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliExit {
    /// `--help` / `--version` text for stdout; exit status 0.
    Print(String),
    /// One line (no newline) for stderr; exit status 1.
    Error(String),
}

/// The forms parsed with clap errors in our words ([`clap_error_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Compat,
    Run,
    Port,
    Check,
}

impl Form {
    fn help_hint(self) -> &'static str {
        match self {
            Form::Compat => "(see 'rlnet --help')",
            Form::Run => "(see 'rlnet run --help')",
            Form::Port => "(see 'rlnet port --help')",
            Form::Check => "(see 'rlnet check --help')",
        }
    }

    fn help(self) -> String {
        match self {
            Form::Compat => help::help_text(),
            Form::Run => help::run_help_text(),
            Form::Port => help::port_help_text(),
            Form::Check => help::CHECK_HELP.to_string(),
        }
    }

    fn command(self) -> clap::Command {
        match self {
            Form::Compat => compat::CompatCli::command(),
            Form::Run => run::RunCli::command(),
            Form::Port => port::PortCli::command(),
            Form::Check => check::CheckCli::command(),
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
    if args.first().is_some_and(|a| is_pasta_name(a)) {
        return pasta::parse(args[1..].to_vec());
    }
    // Subcommands are recognised only as the very first word, so a TAPNAME
    // or a relative netns path called "run" keeps working in the compat form.
    let rest = |name: &str| std::iter::once(OsString::from(name)).chain(args[2..].iter().cloned());
    match args.get(1).and_then(|a| a.to_str()) {
        Some("run") => run::parse(rest("rlnet run")),
        Some("pasta") => pasta::parse(args[2..].to_vec()),
        Some("port") => port::parse(rest("rlnet port")),
        Some("check") => check::parse(rest("rlnet check")),
        Some("network") => network::parse(network::Which::Network, rest("rlnet network").collect()),
        Some("attach") => network::parse(network::Which::Attach, rest("rlnet attach").collect()),
        Some("detach") => network::parse(network::Which::Detach, rest("rlnet detach").collect()),
        Some("completion") => Err(completion::parse(&args[2..]).map_or_else(|e| e, CliExit::Print)),
        _ => compat::parse(args),
    }
}

/// The name errors are reported under: pasta's as getopt does (argv[0] as
/// given), rlnet's otherwise.
pub fn program_name(argv0: Option<&std::ffi::OsStr>) -> String {
    match argv0 {
        Some(a) if is_pasta_name(a) => a.to_string_lossy().into_owned(),
        _ => "rlnet".to_string(),
    }
}

/// Runs clap over `args` (command name first) for `form`.
fn parse_with<C: CommandFactory + FromArgMatches>(
    form: Form,
    args: impl IntoIterator<Item = OsString>,
) -> Result<C, CliExit> {
    let matches = C::command()
        .try_get_matches_from(args)
        .map_err(|e| CliExit::Error(clap_error_line(form, &e)))?;
    C::from_arg_matches(&matches).map_err(|e| CliExit::Error(clap_error_line(form, &e)))
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
