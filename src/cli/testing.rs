//! What the tests of every command form share: argv in, the parse's result
//! out, with one-line errors checked on the way.

use super::{CliExit, Command, Invocation, parse_args};
use crate::config::Config;

pub(super) fn parse(args: &[&str]) -> Result<Invocation, CliExit> {
    parse_args(std::iter::once("rlnet").chain(args.iter().copied()))
}

pub(super) fn ok(args: &[&str]) -> Invocation {
    match parse(args) {
        Ok(inv) => inv,
        Err(e) => panic!("{args:?} should parse, got {e:?}"),
    }
}

pub(super) fn cfg(args: &[&str]) -> Config {
    serve(&ok(args)).clone()
}

pub(super) fn serve(inv: &Invocation) -> &Config {
    match &inv.command {
        Command::Serve(config) => config,
        other => panic!("not a serve command: {other:?}"),
    }
}

/// The error line; asserts it is one line and mentions `needle`.
pub(super) fn fails(args: &[&str], needle: &str) -> String {
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

pub(super) fn printed(args: &[&str]) -> String {
    match parse(args) {
        Err(CliExit::Print(text)) => text,
        other => panic!("{args:?} should print, got {other:?}"),
    }
}
