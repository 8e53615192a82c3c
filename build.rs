//! Links the unwinder statically (gcc's `libgcc_eh.a`) on Linux/glibc
//! targets, so that rlnet does not load the shared `libgcc_s.so.1`. That
//! library runs a constructor at load (`__cpu_indicator_init`) that issues
//! a string of CPUID instructions, each a trap to the hypervisor in a VM:
//! 0.13 ms of every start on the test VM (a trivial C program forced to
//! load it: 0.76 -> 0.91 ms from fork to exit), on the path to ready. Rust
//! uses the unwinder only for backtraces and (tests) panics; the static one
//! is what `gcc -static-libgcc` links. Where the C compiler has no
//! `libgcc_eh.a` (clang-only systems), the build keeps the shared library.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    else {
        return;
    };
    // gcc prints the bare name back when it has no such file.
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if let (true, Some(dir)) = (path.is_absolute() && path.is_file(), path.parent()) {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=static=gcc_eh");
    }
}
