//! `rlnet run [OPTION]... [--] COMMAND [ARG]...`: COMMAND in a new user and
//! network namespace with a network of its own (the compat form's network
//! options), or on a named network with `--network NAME`.

use std::ffi::OsString;

use clap::{ArgAction, Parser};

use super::compat::{NetOpts, finish, help_or_version};
use super::network::{check_member_name, check_network_name};
use super::{CliExit, Command, Form, Invocation, err, parse_with, utf8};
use crate::api::AttachRequest;
use crate::config::{Config, Target};
use crate::network::request::NetworkRun;

/// `rlnet run [OPTION]... [--] COMMAND [ARG]...`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet run",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true,
    args_override_self = true
)]
pub(super) struct RunCli {
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

/// Parses `rlnet run ...`; `args` starts with the command's name.
pub(super) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, CliExit> {
    invocation(parse_with::<RunCli>(Form::Run, args)?)
}

fn invocation(cli: RunCli) -> Result<Invocation, CliExit> {
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
        Some(net) => on_network(inv, net, cli.name, cli.alias),
        None if cli.name.is_some() || !cli.alias.is_empty() => err(format!(
            "--name and --alias need --network NAME: names are resolved on named networks {}",
            Form::Run.help_hint()
        )),
        None => Ok(inv),
    }
}

/// Turns a parsed `rlnet run` into its named-network form. The namespace's
/// addresses, MTU and policies are the network's, so options that set them
/// here are refused rather than silently ignored.
fn on_network(
    inv: Invocation,
    network: String,
    name: Option<String>,
    aliases: Vec<String>,
) -> Result<Invocation, CliExit> {
    let hint = Form::Run.help_hint();
    let Command::Serve(cfg) = inv.command else {
        return err("internal error: rlnet run did not parse as a run");
    };
    let Target::Run { argv } = cfg.target.clone() else {
        return err("internal error: rlnet run without COMMAND");
    };
    check_network_name(&network)?;
    for n in name.iter().chain(aliases.iter()) {
        check_member_name(n)?;
    }
    let base = Config::new(cfg.target.clone());
    let differs = [
        ("--cidr/--disable-ipv6", cfg.plan != base.plan),
        ("--mtu", cfg.mtu != base.mtu),
        ("--macaddress", cfg.mac != base.mac),
        ("--api-socket", cfg.api_socket.is_some()),
        ("--outbound-addr", cfg.outbound4.is_some()),
        ("--outbound-addr6", cfg.outbound6.is_some()),
        (
            "--disable-host-loopback",
            cfg.host_loopback != base.host_loopback,
        ),
        ("--publish-mode", cfg.publish_mode != base.publish_mode),
        ("--ready-fd", cfg.ready_fd.is_some()),
        ("--exit-fd", cfg.exit_fd.is_some()),
        ("-c/--no-configure", cfg.configure != base.configure),
    ];
    if let Some((opt, _)) = differs.iter().find(|(_, d)| *d) {
        return err(format!(
            "{opt} does not apply with --network: the network sets it (see 'rlnet network create --help') {hint}"
        ));
    }
    if !cfg.publish.is_empty() && name.is_none() {
        return err(format!("--publish on a network needs --name {hint}"));
    }
    Ok(Invocation {
        command: Command::RunOnNetwork(NetworkRun {
            network,
            argv,
            request: AttachRequest {
                pid: None,
                netns: None,
                userns: None,
                name,
                aliases,
                publish: cfg.publish.iter().map(ToString::to_string).collect(),
            },
            dns: cfg.dns,
        }),
        ..inv
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{cfg, fails};
    use crate::config::{Config, Configure, Target};

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
}
