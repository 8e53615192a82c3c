//! Thin entry point: parse argv, set up logging, run, map the error to an exit code.

use std::io::Write;

fn main() {
    let code = match rlnet::cli::parse_args(std::env::args_os()) {
        Ok(inv) => {
            rlnet::log::init(inv.log_level);
            for w in &inv.warnings {
                log::warn!("{w}");
            }
            match rlnet::app::run(inv.config) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("rlnet: {e}");
                    e.exit_code()
                }
            }
        }
        Err(rlnet::cli::CliExit::Print(text)) => {
            // A closed stdout (`rlnet --help | head -1`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            0
        }
        Err(rlnet::cli::CliExit::Error(msg)) => {
            eprintln!("rlnet: {msg}");
            1
        }
    };
    std::process::exit(code);
}
