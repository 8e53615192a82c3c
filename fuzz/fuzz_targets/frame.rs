//! Frames from the namespace through the engine's loop (see
//! `rlnet_fuzz::frame` for the input format and why nothing leaves).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlnet_fuzz::frame::Harness;

fuzz_target!(|data: &[u8]| {
    // A fresh engine per input: a crash reproduces from its input alone.
    Harness::new().run(data);
});
