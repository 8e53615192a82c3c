//! The built binary run directly, for tests that need no namespaces (its
//! argument parsing, its API client against a fake server).

use std::process::{Command, Output};

/// Run rlnet with `args` to completion.
pub fn rlnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlnet"))
        .args(args)
        .output()
        .expect("run rlnet")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
