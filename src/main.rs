//! Thin entry point: parse argv, set up logging, run, map the error to an exit code.

fn main() {
    let code = match rlnet::cli::parse_args(std::env::args_os()) {
        Ok(inv) => {
            rlnet::log::init(inv.log_level);
            match rlnet::app::run(inv.config) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("rlnet: {e}");
                    e.exit_code()
                }
            }
        }
        Err(rlnet::cli::CliExit::Print(text)) => {
            print!("{text}");
            0
        }
        Err(rlnet::cli::CliExit::Error(msg)) => {
            eprintln!("rlnet: {msg}");
            1
        }
    };
    std::process::exit(code);
}
