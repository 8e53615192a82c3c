//! `rlnet completion bash|zsh|fish`: the shell completion script, printed
//! like `--help` (pure: a string built from the parsers' own clap
//! definitions, so every option a form accepts is offered).
//!
//! The command forms are separate parsers (the first word picks one), so the
//! tree the generator sees is assembled here: the slirp4netns form's options
//! at the top, one subcommand per form, and the verbs of `port` and
//! `network` as their subcommands.

use std::ffi::OsString;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{CliExit, compat, network, port, run};

const SHELLS: &str = "bash, zsh or fish";

/// Parses `rlnet completion SHELL`; `args` starts after "completion".
pub(super) fn parse(args: &[OsString]) -> Result<String, CliExit> {
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    match words.as_slice() {
        ["-h" | "--help"] => Err(CliExit::Print(super::help::completion_help_text())),
        [shell] => match shell_named(shell) {
            Some(s) => Ok(script(s)),
            None => Err(CliExit::Error(format!(
                "unknown shell {shell:?}: use {SHELLS} (see 'rlnet completion --help')"
            ))),
        },
        [] => Err(CliExit::Error(format!(
            "missing the shell: use {SHELLS} (see 'rlnet completion --help')"
        ))),
        [_, extra, ..] => Err(CliExit::Error(format!(
            "unexpected argument {extra:?}: give one shell, {SHELLS} (see 'rlnet completion --help')"
        ))),
    }
}

fn shell_named(name: &str) -> Option<Shell> {
    match name {
        "bash" => Some(Shell::Bash),
        "zsh" => Some(Shell::Zsh),
        "fish" => Some(Shell::Fish),
        _ => None,
    }
}

/// The completion script for `shell`.
pub(super) fn script(shell: Shell) -> String {
    let mut cmd = tree();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "rlnet", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Every form as one clap command tree, for the generator only.
fn tree() -> clap::Command {
    let verbs = |cmd: clap::Command, names: &[&'static str]| {
        // The verb is the form's first positional word: offer it as a
        // subcommand that takes the form's options.
        let base = cmd.clone();
        names.iter().fold(cmd, |c, name| {
            c.subcommand(base.clone().name(*name).bin_name(*name))
        })
    };
    compat::CompatCli::command()
        .name("rlnet")
        .bin_name("rlnet")
        .subcommand(run::RunCli::command().name("run"))
        .subcommand(verbs(
            port::PortCli::command().name("port"),
            &["add", "rm", "ls"],
        ))
        .subcommand(verbs(
            network::NetworkCli::command().name("network"),
            &["create", "ls", "inspect", "rm"],
        ))
        .subcommand(network::MemberCli::command().name("attach"))
        .subcommand(network::MemberCli::command().name("detach"))
        .subcommand(
            clap::Command::new("completion").arg(
                clap::Arg::new("shell")
                    .value_parser(["bash", "zsh", "fish"])
                    .required(true),
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_args;

    fn printed(args: &[&str]) -> Result<String, CliExit> {
        let argv = std::iter::once("rlnet").chain(args.iter().copied());
        match parse_args(argv) {
            Err(CliExit::Print(text)) => Ok(text),
            Err(e) => Err(e),
            Ok(inv) => panic!("completion parsed as a command: {inv:?}"),
        }
    }

    #[test]
    fn each_shell_gets_a_script_naming_every_form() {
        for shell in ["bash", "zsh", "fish"] {
            let text = printed(&["completion", shell]).unwrap();
            for word in [
                "network", "attach", "detach", "port", "run", "publish", "mtu",
            ] {
                assert!(text.contains(word), "{shell} script lacks {word}");
            }
        }
    }

    #[test]
    fn bad_shell_and_arity_are_one_line_errors() {
        for args in [
            &["completion"][..],
            &["completion", "tcsh"],
            &["completion", "bash", "zsh"],
        ] {
            match printed(args) {
                Err(CliExit::Error(line)) => {
                    assert!(!line.contains('\n'), "{line}");
                    assert!(line.contains("bash, zsh or fish"), "{line}");
                }
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn help_names_the_shells() {
        let text = printed(&["completion", "--help"]).unwrap();
        assert!(text.contains("bash") && text.contains("fish"));
    }
}
