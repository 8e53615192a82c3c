//! `rlnet check`: no arguments but `--help`. What it does is
//! [`crate::check`] (the verdicts) and [`crate::sys::host`] (the facts).

use std::ffi::OsString;

use clap::Parser;

use super::{CliExit, Command, Form, Invocation, parse_with};

/// `rlnet check [-h]`
#[derive(Debug, Parser)]
#[command(
    name = "rlnet check",
    disable_help_flag = true,
    disable_version_flag = true,
    infer_long_args = true
)]
pub(super) struct CheckCli {
    #[arg(short = 'h', long = "help")]
    help: bool,
}

/// Parses `rlnet check ...`; `args` starts with the command's name.
pub(super) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation, CliExit> {
    let cli = parse_with::<CheckCli>(Form::Check, args)?;
    if cli.help {
        return Err(CliExit::Print(Form::Check.help()));
    }
    Ok(Invocation {
        command: Command::Check,
        log_level: log::LevelFilter::Warn,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fails, ok, printed};
    use super::*;

    #[test]
    fn check_takes_no_arguments() {
        assert_eq!(ok(&["check"]).command, Command::Check);
        assert!(printed(&["check", "--help"]).starts_with("Usage: rlnet check\n"));
        assert_eq!(printed(&["check", "-h"]), printed(&["check", "--help"]));
        fails(&["check", "now"], "unexpected argument \"now\"");
        fails(&["check", "--bogus"], "unrecognized option '--bogus'");
        // Only as the first word: a TAP called "check" still works.
        assert!(matches!(ok(&["1234", "check"]).command, Command::Serve(_)));
    }
}
