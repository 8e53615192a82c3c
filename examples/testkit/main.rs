//! `testkit`: the traffic helper rlnet's end-to-end tests run inside network
//! namespaces, in place of python/socat, so the tests are self-contained.
//!
//! Data streams are deterministic (splitmix64, little-endian, 8 bytes per
//! step): a receiver verifies every byte by regenerating the stream. Every
//! blocking operation is bounded by `--timeout SECS` (default 60). Results
//! are one stdout line of `key=value` pairs; errors one stderr line
//! `testkit: ...`. Exit status: 0 success, 1 failure, 2 usage, 3 timeout.
//!
//! One module per command (its synopsis, help, options and body, as a
//! [`Command`]); the shared parts: [`args`] and [`fail`] (command lines,
//! errors, results), [`net`] (sockets), [`stream`] and [`mode`] (checked
//! TCP streams), [`frame`] and [`packet`] (raw frames), [`dns`] (messages
//! and the test zone). A new command is a module plus a line in
//! [`COMMANDS`]. `cargo test` builds this example; the e2e tests run it
//! from `target/*/examples/testkit` (tests/common).

mod args;
mod dns;
mod fail;
mod frame;
mod mode;
mod net;
mod packet;
mod stream;

mod api;
mod connect;
mod crr;
mod dig;
mod dns_abuse;
mod frag_flood;
mod hold;
mod inject;
mod serve_dns;
mod serve_tcp;
mod serve_udp;
mod sniff;
mod spoof;
mod spoof_ndp;
mod tcp;
mod udp;

use std::ops::RangeInclusive;

use args::Args;
use fail::{Res, die, usage};

/// A command: its name, synopsis (for usage errors), help text, how many
/// positionals it takes, the options that take a value, its bare flags,
/// and its body.
pub struct Command {
    pub name: &'static str,
    pub syntax: &'static str,
    pub help: &'static str,
    pub positionals: RangeInclusive<usize>,
    pub valued: &'static [&'static str],
    pub flags: &'static [&'static str],
    pub run: fn(&Args) -> Res<i32>,
}

impl Command {
    /// A command without options (but `--timeout`).
    pub const fn new(
        name: &'static str,
        syntax: &'static str,
        help: &'static str,
        positionals: RangeInclusive<usize>,
        run: fn(&Args) -> Res<i32>,
    ) -> Command {
        Command {
            name,
            syntax,
            help,
            positionals,
            valued: &[],
            flags: &[],
            run,
        }
    }

    /// With options that take a value and bare flags.
    pub const fn options(
        self,
        valued: &'static [&'static str],
        flags: &'static [&'static str],
    ) -> Command {
        Command {
            valued,
            flags,
            ..self
        }
    }
}

/// In the order `--help` lists them.
const COMMANDS: [&Command; 16] = [
    &serve_tcp::COMMAND,
    &tcp::COMMAND,
    &connect::COMMAND,
    &serve_udp::COMMAND,
    &udp::COMMAND,
    &hold::COMMAND,
    &crr::COMMAND,
    &inject::COMMAND,
    &spoof::COMMAND,
    &spoof_ndp::COMMAND,
    &sniff::COMMAND,
    &frag_flood::COMMAND,
    &api::COMMAND,
    &serve_dns::COMMAND,
    &dig::COMMAND,
    &dns_abuse::COMMAND,
];

const USAGE_HEAD: &str = "\
testkit: traffic helper for rlnet's end-to-end tests

usage: testkit COMMAND ARGS... [--timeout SECS]

";

const USAGE_TAIL: &str = "
ADDR is IP:PORT or [IPv6]:PORT. BYTES accepts k/m/g suffixes (binary).
stream(SEED) is splitmix64 output, little-endian; `digest` is FNV-1a-64 over
the stream's 64-bit little-endian words (tail zero-padded, then the length).
";

fn run(argv: &[String]) -> Res<i32> {
    let Some(name) = argv.first() else {
        return Err(usage("no command"));
    };
    if matches!(name.as_str(), "-h" | "--help" | "help") {
        print!("{USAGE_HEAD}");
        for c in COMMANDS {
            print!("{}", c.help);
        }
        print!("{USAGE_TAIL}");
        return Ok(0);
    }
    let Some(cmd) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(usage(format!("unknown command {name:?}")));
    };
    net::raise_nofile();
    let a = Args::parse(&argv[1..], cmd.valued, cmd.flags)?.with_syntax(cmd.syntax);
    a.want(cmd.positionals.clone())?;
    (cmd.run)(&a)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(code) => std::process::exit(code),
        Err(f) => die(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(run(&v("nope")).unwrap_err().code(), 2);
        assert_eq!(run(&v("crr 127.0.0.1:9")).unwrap_err().code(), 2);
        // A bad --read is a usage error, before any connection is tried.
        for bad in ["0", "1m", "x"] {
            let argv = v(&format!("tcp 127.0.0.1:9 send:1:1 --read {bad}"));
            assert_eq!(run(&argv).unwrap_err().code(), 2, "{bad}");
        }
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(c.syntax.starts_with(c.name), "{}", c.syntax);
            assert!(c.help.starts_with(&format!("  {} ", c.name)), "{}", c.help);
            assert!(COMMANDS[..i].iter().all(|d| d.name != c.name), "{}", c.name);
        }
    }
}
