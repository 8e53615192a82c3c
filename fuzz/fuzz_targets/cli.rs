//! Command lines: the input's NUL-separated words after the program name,
//! through every form (slirp4netns-compatible, run, port, network, attach,
//! detach) and a valid invocation's config checks.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use rlnet::cli::{Command, parse_args};

fuzz_target!(|data: &[u8]| {
    let argv = std::iter::once(OsString::from("rlnet")).chain(
        rlnet_fuzz::words(data, 64)
            .into_iter()
            .map(|w| OsString::from_vec(w.to_vec())),
    );
    if let Ok(inv) = parse_args(argv)
        && let Command::Serve(config) = &inv.command
    {
        let _ = config.validate();
    }
});
