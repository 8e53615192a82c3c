//! Thin entry point: parse argv, set up logging, dispatch, and turn the one
//! error type into a line on stderr and an exit code.

#![cfg_attr(not(test), deny(clippy::too_many_lines))]

use std::ffi::OsString;
use std::io::Write;

use rlnet::Error;
use rlnet::api::client;
use rlnet::cli::{CliExit, Command, PortCommand, PortTarget};

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Errors are reported under the name rlnet runs as (pasta's callers
    // expect getopt's "ARGV0: ..." lines).
    let name = rlnet::cli::program_name(args.first().map(OsString::as_os_str));
    let code = match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{name}: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// Parses `args` and carries the command out; returns the exit code.
fn run(args: impl IntoIterator<Item = OsString>) -> Result<i32, Error> {
    let inv = match rlnet::cli::parse_args(args) {
        Ok(inv) => inv,
        Err(CliExit::Print(text)) => return Ok(print(&text)),
        Err(CliExit::Error(line)) => return Err(Error::Usage(line)),
    };
    rlnet::log::init(inv.log_level);
    for w in &inv.warnings {
        log::warn!("{w}");
    }
    match inv.command {
        Command::Serve(config) => Ok(rlnet::app::run(*config)?),
        Command::Network(cmd) => Ok(print(&rlnet::network::command::execute(&cmd)?)),
        Command::RunOnNetwork(nr) => Ok(rlnet::network::run::run(&nr)?),
        Command::Port(port) => Ok(print(&port_command(&port)?)),
        Command::Check => {
            let findings = rlnet::check::evaluate(&rlnet::sys::host::gather());
            print(&rlnet::check::render(&findings));
            Ok(rlnet::check::exit_code(&findings))
        }
        Command::Pasta(opts) => Ok(rlnet::app::pasta::run(*opts)?),
    }
}

/// One request to a running instance; returns the text for stdout.
fn port_command(port: &PortCommand) -> Result<String, Error> {
    let path = match &port.target {
        PortTarget::Socket(p) => p.clone(),
        PortTarget::Network(name) => rlnet::network::daemon::socket_of(name)?,
    };
    let reply = client::request(&path, &port.request(), client::TIMEOUT)?;
    Ok(port.render(&reply)?)
}

fn print(text: &str) -> i32 {
    // A closed stdout (`rlnet --help | head -1`) is not an error.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    // Flushed before exit(), whatever stdout is (Podman reads `pasta
    // --version` from a pipe).
    let _ = out.flush();
    0
}
