//! Thin entry point: parse argv, set up logging, dispatch, map the error to an exit code.

use std::io::Write;

use rlnet::api::client;
use rlnet::cli::{CliExit, Command, PortCommand, PortTarget};

fn main() {
    let code = match rlnet::cli::parse_args(std::env::args_os()) {
        Ok(inv) => {
            rlnet::log::init(inv.log_level);
            for w in &inv.warnings {
                log::warn!("{w}");
            }
            match inv.command {
                Command::Serve(config) => match rlnet::app::run(config) {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("rlnet: {e}");
                        e.exit_code()
                    }
                },
                Command::Network(cmd) => match rlnet::network::command::execute(&cmd) {
                    Ok(text) => print(&text),
                    Err(e) => {
                        eprintln!("rlnet: {e}");
                        1
                    }
                },
                Command::RunOnNetwork(nr) => match rlnet::network::run::run(&nr) {
                    Ok(code) => code,
                    Err(e) => {
                        eprintln!("rlnet: {e}");
                        1
                    }
                },
                Command::Port(port) => match port_command(&port) {
                    Ok(text) => print(&text),
                    Err(e) => {
                        eprintln!("rlnet: {e}");
                        1
                    }
                },
            }
        }
        Err(CliExit::Print(text)) => print(&text),
        Err(CliExit::Error(msg)) => {
            eprintln!("rlnet: {msg}");
            1
        }
    };
    std::process::exit(code);
}

/// One request to a running instance; returns the text for stdout.
fn port_command(port: &PortCommand) -> Result<String, String> {
    let path = match &port.target {
        PortTarget::Socket(p) => p.clone(),
        PortTarget::Network(name) => {
            rlnet::network::daemon::socket_of(name).map_err(|e| e.to_string())?
        }
    };
    let reply =
        client::request(&path, &port.request(), client::TIMEOUT).map_err(|e| e.to_string())?;
    port.render(&reply)
}

fn print(text: &str) -> i32 {
    // A closed stdout (`rlnet --help | head -1`) is not an error.
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
