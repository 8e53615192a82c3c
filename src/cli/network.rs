//! `rlnet network create|ls|inspect|rm`, `rlnet attach` and `rlnet detach`:
//! argv → [`NetworkCommand`]. Pure like the rest of `cli`; the commands are
//! carried out by [`crate::network::command`].

use std::ffi::OsString;

use clap::Parser;

use super::help::{ATTACH_HELP, DETACH_HELP, NETWORK_HELP};
use super::{CliExit, Command, Invocation, err, parse_specs, utf8};
use crate::api::{AttachRequest, MemberRef, valid_member_name};
use crate::config::Ipv4Net;
use crate::forward::spec::PublishSpec;
use crate::network::request::{CreateSpec, NetworkCommand};

/// A member name or alias, as other members resolve it.
pub(super) fn check_member_name(n: &str) -> Result<(), CliExit> {
    if valid_member_name(n) {
        Ok(())
    } else {
        err(format!(
            "{n:?} is not a valid member name: use letters, digits, '-' and '.' (a DNS name), up to 63 characters"
        ))
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "rlnet network",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub(super) struct NetworkCli {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(long = "subnet", value_name = "CIDR", allow_hyphen_values = true)]
    subnet: Option<String>,
    #[arg(long = "internal")]
    internal: bool,
    #[arg(long = "disable-ipv6")]
    disable_ipv6: bool,
    #[arg(short = 'f', long = "force")]
    force: bool,
    #[arg(long = "json")]
    json: bool,
    #[arg(value_name = "create|ls|inspect|rm [NAME]...",
          value_parser = clap::value_parser!(OsString))]
    words: Vec<OsString>,
}

/// `rlnet attach` and `rlnet detach` share their options.
#[derive(Debug, Parser)]
#[command(
    name = "rlnet attach",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true
)]
pub(super) struct MemberCli {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(
        long = "network",
        value_name = "NAME",
        allow_hyphen_values = true,
        overrides_with = "network"
    )]
    network: Option<String>,
    #[arg(
        long = "name",
        value_name = "NAME",
        allow_hyphen_values = true,
        overrides_with = "name"
    )]
    name: Option<String>,
    #[arg(long = "alias", value_name = "NAME", allow_hyphen_values = true,
          action = clap::ArgAction::Append)]
    alias: Vec<String>,
    #[arg(short = 'p', long = "publish", value_name = "SPEC", allow_hyphen_values = true,
          action = clap::ArgAction::Append)]
    publish: Vec<String>,
    #[arg(
        long = "userns-path",
        value_name = "PATH",
        allow_hyphen_values = true,
        overrides_with = "userns_path"
    )]
    userns_path: Option<String>,
    #[arg(long = "json")]
    json: bool,
    #[arg(value_name = "PID|PATH", value_parser = clap::value_parser!(OsString))]
    words: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Network,
    Attach,
    Detach,
}

impl Which {
    fn hint(self) -> &'static str {
        match self {
            Which::Network => "(see 'rlnet network --help')",
            Which::Attach => "(see 'rlnet attach --help')",
            Which::Detach => "(see 'rlnet detach --help')",
        }
    }
}

/// Parses `rlnet network ...`, `rlnet attach ...` or `rlnet detach ...`;
/// `args` starts with the command's name.
pub(super) fn parse(which: Which, args: Vec<OsString>) -> Result<Invocation, CliExit> {
    let command = match which {
        Which::Network => network(parse_clap::<NetworkCli>(which, args)?)?,
        Which::Attach | Which::Detach => member(which, parse_clap::<MemberCli>(which, args)?)?,
    };
    Ok(Invocation {
        command: Command::Network(command),
        log_level: log::LevelFilter::Warn,
        warnings: Vec::new(),
    })
}

fn parse_clap<C: clap::CommandFactory + clap::FromArgMatches>(
    which: Which,
    args: Vec<OsString>,
) -> Result<C, CliExit> {
    let line = |e: clap::Error| {
        let text = e.kind().to_string();
        let arg = e
            .get(clap::error::ContextKind::InvalidArg)
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        CliExit::Error(format!("{text}{arg} {}", which.hint()))
    };
    let m = C::command().try_get_matches_from(args).map_err(line)?;
    C::from_arg_matches(&m).map_err(line)
}

/// A network name (also the name of its socket and record files).
pub(super) fn check_network_name(n: &str) -> Result<(), CliExit> {
    if valid_member_name(n) {
        Ok(())
    } else {
        err(format!(
            "{n:?} is not a valid network name: use letters, digits, '-' and '.', up to 63 characters"
        ))
    }
}

fn network(mut cli: NetworkCli) -> Result<NetworkCommand, CliExit> {
    let hint = Which::Network.hint();
    if cli.help {
        return Err(CliExit::Print(NETWORK_HELP.to_string()));
    }
    let words = utf8(std::mem::take(&mut cli.words), "argument")?;
    let Some((verb, names)) = words.split_first() else {
        return err(format!(
            "missing the network command: use create, ls, inspect or rm {hint}"
        ));
    };
    check_network_options(&cli, verb)?;
    Ok(match verb.as_str() {
        "create" => create(&cli, names)?,
        "ls" | "list" => {
            if let Some(extra) = names.first() {
                return err(format!(
                    "unexpected argument {extra:?}: 'rlnet network ls' takes none {hint}"
                ));
            }
            NetworkCommand::List { json: cli.json }
        }
        "inspect" => NetworkCommand::Inspect {
            name: one_name(names, "rlnet network inspect [--json] NAME")?,
            json: cli.json,
        },
        "rm" | "remove" => {
            if names.is_empty() {
                return err(format!(
                    "missing NAME: usage: rlnet network rm [--force] NAME... {hint}"
                ));
            }
            for n in names {
                check_network_name(n)?;
            }
            NetworkCommand::Remove {
                names: names.to_vec(),
                force: cli.force,
            }
        }
        other => {
            return err(format!(
                "unknown network command {other:?}: use create, ls, inspect or rm {hint}"
            ));
        }
    })
}

/// Each option of `rlnet network` belongs to some of its commands only.
fn check_network_options(cli: &NetworkCli, verb: &str) -> Result<(), CliExit> {
    let only_for = |what: &str, set: bool, verbs: &[&str]| {
        if set && !verbs.contains(&verb) {
            err(format!(
                "{what} is for 'rlnet network {}' only {}",
                verbs.join("|"),
                Which::Network.hint()
            ))
        } else {
            Ok(())
        }
    };
    only_for("--subnet", cli.subnet.is_some(), &["create"])?;
    only_for("--internal", cli.internal, &["create"])?;
    only_for("--disable-ipv6", cli.disable_ipv6, &["create"])?;
    only_for("--force", cli.force, &["rm"])?;
    only_for("--json", cli.json, &["ls", "inspect"])
}

/// The one NAME of `create` and `inspect`.
fn one_name(names: &[String], usage: &str) -> Result<String, CliExit> {
    let hint = Which::Network.hint();
    match names {
        [n] => {
            check_network_name(n)?;
            Ok(n.clone())
        }
        [] => err(format!("missing NAME: usage: {usage} {hint}")),
        [_, extra, ..] => err(format!(
            "unexpected argument {extra:?}: usage: {usage} {hint}"
        )),
    }
}

/// `rlnet network create [--subnet CIDR] [--internal] [--disable-ipv6] NAME`.
fn create(cli: &NetworkCli, names: &[String]) -> Result<NetworkCommand, CliExit> {
    let name = one_name(
        names,
        "rlnet network create [--subnet CIDR] [--internal] NAME",
    )?;
    let subnet = match &cli.subnet {
        None => None,
        Some(s) => Some(
            s.parse::<Ipv4Net>()
                .map_err(|e| CliExit::Error(format!("invalid value for --subnet: {e}")))?,
        ),
    };
    Ok(NetworkCommand::Create(CreateSpec {
        name,
        subnet,
        internal: cli.internal,
        ipv6: !cli.disable_ipv6,
    }))
}

fn member(which: Which, mut cli: MemberCli) -> Result<NetworkCommand, CliExit> {
    let hint = which.hint();
    if cli.help {
        return Err(CliExit::Print(
            match which {
                Which::Detach => DETACH_HELP,
                _ => ATTACH_HELP,
            }
            .to_string(),
        ));
    }
    let Some(network) = cli.network.take() else {
        return err(format!(
            "missing --network NAME: the network (see 'rlnet network ls') {hint}"
        ));
    };
    check_network_name(&network)?;
    let target = member_target(which, std::mem::take(&mut cli.words))?;
    let pid = parse_pid(&target)?;
    if which == Which::Detach {
        return detach(&cli, network, target, pid);
    }
    attach(cli, network, target, pid)
}

/// The one word after the options: the namespace to attach or the member
/// to detach.
fn member_target(which: Which, words: Vec<OsString>) -> Result<String, CliExit> {
    let hint = which.hint();
    let words = utf8(words, "argument")?;
    match words.as_slice() {
        [t] if !t.is_empty() => Ok(t.clone()),
        [] | [_] => {
            let (what, command, usage) = if which == Which::Detach {
                ("the member (NAME or PID)", "detach", "NAME|PID")
            } else {
                ("PID|PATH", "attach", "PID|PATH")
            };
            err(format!(
                "missing {what}: usage: rlnet {command} --network NAME ... {usage} {hint}"
            ))
        }
        [_, extra, ..] => err(format!("unexpected argument {extra:?} {hint}")),
    }
}

/// `rlnet detach --network NAME NAME|PID`.
fn detach(
    cli: &MemberCli,
    network: String,
    target: String,
    pid: Option<u32>,
) -> Result<NetworkCommand, CliExit> {
    let hint = Which::Detach.hint();
    if cli.name.is_some()
        || !cli.alias.is_empty()
        || !cli.publish.is_empty()
        || cli.userns_path.is_some()
        || cli.json
    {
        return err(format!(
            "'rlnet detach' takes only --network and the member {hint}"
        ));
    }
    let member = match pid {
        Some(p) => MemberRef::Pid(p),
        None if valid_member_name(&target) => MemberRef::Name(target),
        None => {
            return err(format!(
                "{target:?} is neither a member name nor a PID {hint}"
            ));
        }
    };
    Ok(NetworkCommand::Detach { network, member })
}

/// `rlnet attach --network NAME [--name N] [--alias A]... [-p SPEC]... PID|PATH`.
fn attach(
    cli: MemberCli,
    network: String,
    target: String,
    pid: Option<u32>,
) -> Result<NetworkCommand, CliExit> {
    let hint = Which::Attach.hint();
    for n in cli.name.iter().chain(cli.alias.iter()) {
        check_member_name(n)?;
    }
    // Checked here so a bad spec is reported before anything happens.
    let specs: Vec<PublishSpec> = parse_specs(&cli.publish, "--publish")?;
    if !specs.is_empty() && cli.name.is_none() {
        // Published ports are rules that name their member.
        return err(format!("--publish on a network needs --name {hint}"));
    }
    let (pid, netns) = match pid {
        Some(p) => (Some(p), None),
        None if target.starts_with('/') => (None, Some(target)),
        None => {
            return err(format!(
                "{target:?} is neither a PID nor an absolute path to a network namespace {hint}"
            ));
        }
    };
    if cli.userns_path.is_some() && pid.is_some() {
        return err(format!(
            "--userns-path goes with a PATH target, not a PID {hint}"
        ));
    }
    Ok(NetworkCommand::Attach {
        network,
        request: AttachRequest {
            pid,
            netns,
            userns: cli.userns_path,
            name: cli.name,
            aliases: cli.alias,
            publish: specs.iter().map(ToString::to_string).collect(),
        },
        json: cli.json,
    })
}

/// A PID is all digits; 0 and overflow are errors, not paths.
fn parse_pid(s: &str) -> Result<Option<u32>, CliExit> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(p) if p > 0 && p <= i32::MAX as u32 => Ok(Some(p)),
        _ => err(format!("invalid PID {s:?}: PID must be a positive integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(which: Which, args: &[&str]) -> NetworkCommand {
        let argv = std::iter::once("rlnet x").chain(args.iter().copied());
        match parse(which, argv.map(OsString::from).collect()) {
            Ok(Invocation {
                command: Command::Network(c),
                ..
            }) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn parse_err(which: Which, args: &[&str]) -> String {
        let argv = std::iter::once("rlnet x").chain(args.iter().copied());
        match parse(which, argv.map(OsString::from).collect()) {
            Err(CliExit::Error(e)) => e,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn network_commands() {
        assert_eq!(
            parse_ok(Which::Network, &["create", "second"]),
            NetworkCommand::Create(CreateSpec {
                name: "second".into(),
                subnet: None,
                internal: false,
                ipv6: true,
            })
        );
        assert_eq!(
            parse_ok(
                Which::Network,
                &["create", "--subnet", "10.90.0.0/24", "--internal", "leafty"]
            ),
            NetworkCommand::Create(CreateSpec {
                name: "leafty".into(),
                subnet: Some("10.90.0.0/24".parse().unwrap()),
                internal: true,
                ipv6: true,
            })
        );
        assert_eq!(
            parse_ok(Which::Network, &["ls", "--json"]),
            NetworkCommand::List { json: true }
        );
        assert_eq!(
            parse_ok(Which::Network, &["rm", "-f", "a", "b"]),
            NetworkCommand::Remove {
                names: vec!["a".into(), "b".into()],
                force: true
            }
        );
        for (args, needle) in [
            (&[][..], "missing the network command"),
            (&["make", "x"], "unknown network command \"make\""),
            (&["create"], "missing NAME"),
            (&["create", "a", "b"], "unexpected argument \"b\""),
            (&["create", "a/b"], "not a valid network name"),
            (&["create", "--subnet", "10.1.2.3", "x"], "--subnet"),
            (&["ls", "--force"], "--force is for 'rlnet network rm' only"),
            (&["rm", "--subnet=10.0.0.0/24", "x"], "--subnet is for"),
            (&["rm"], "missing NAME"),
            (&["ls", "x"], "takes none"),
            (&["--bogus", "ls"], "--bogus"),
        ] {
            let e = parse_err(Which::Network, args);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn attach_and_detach() {
        let c = parse_ok(
            Which::Attach,
            &[
                "--network",
                "second",
                "--name",
                "a",
                "--alias",
                "web",
                "--alias",
                "www",
                "-p",
                "8080:80",
                "1234",
            ],
        );
        let NetworkCommand::Attach {
            network, request, ..
        } = c
        else {
            panic!("{c:?}")
        };
        assert_eq!(network, "second");
        assert_eq!(request.pid, Some(1234));
        assert_eq!(request.name.as_deref(), Some("a"));
        assert_eq!(request.aliases, ["web", "www"]);
        assert_eq!(request.publish.len(), 1);
        let c = parse_ok(
            Which::Attach,
            &[
                "--network=n",
                "/run/netns/x",
                "--userns-path=/proc/1/ns/user",
            ],
        );
        assert!(matches!(
            c,
            NetworkCommand::Attach {
                request: AttachRequest {
                    pid: None,
                    netns: Some(_),
                    userns: Some(_),
                    ..
                },
                ..
            }
        ));
        assert_eq!(
            parse_ok(Which::Detach, &["--network", "n", "a"]),
            NetworkCommand::Detach {
                network: "n".into(),
                member: MemberRef::Name("a".into())
            }
        );
        assert_eq!(
            parse_ok(Which::Detach, &["--network", "n", "42"]),
            NetworkCommand::Detach {
                network: "n".into(),
                member: MemberRef::Pid(42)
            }
        );
        for (w, args, needle) in [
            (Which::Attach, &["1"][..], "missing --network"),
            (Which::Attach, &["--network", "n"], "missing PID|PATH"),
            (
                Which::Attach,
                &["--network", "n", "0"],
                "PID must be a positive integer",
            ),
            (
                Which::Attach,
                &["--network", "n", "x/y"],
                "neither a PID nor an absolute path",
            ),
            (
                Which::Attach,
                &["--network", "n", "--name", "a b", "1"],
                "not a valid member name",
            ),
            (
                Which::Attach,
                &["--network", "n", "-p", "8080", "--name=a", "1"],
                "--publish",
            ),
            (
                Which::Attach,
                &["--network", "n", "-p", "8080:80", "1"],
                "needs --name",
            ),
            (
                Which::Attach,
                &["--network", "n", "1", "2"],
                "unexpected argument \"2\"",
            ),
            (
                Which::Attach,
                &["--network", "n", "--userns-path=/u", "1"],
                "--userns-path goes with a PATH",
            ),
            (Which::Detach, &["--network", "n"], "missing the member"),
            (
                Which::Detach,
                &["--network", "n", "--name=x", "a"],
                "takes only",
            ),
            (
                Which::Detach,
                &["--network", "n", "a_b"],
                "neither a member name nor a PID",
            ),
        ] {
            let e = parse_err(w, args);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }
}
