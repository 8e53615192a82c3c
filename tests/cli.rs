//! The command line as callers see it: the built binary, its exit status and
//! its output. No namespaces or privileges needed: every case here exits
//! during argument parsing.

mod common;

use std::process::{Command, Output};

use common::cli::{rlnet, stderr, stdout};
use rlnet::cli::{CALLER_OPTIONS, pasta_long_options};

/// Asserts exit status 1 and exactly one stderr line containing `needle`.
fn fails_with(args: &[&str], needle: &str) {
    let o = rlnet(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: stderr {err:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one stderr line, got {err:?}"
    );
    assert!(
        lines[0].contains(needle),
        "{args:?}: {:?} should contain {needle:?}",
        lines[0]
    );
}

#[test]
fn help_exits_0_with_every_probed_string() {
    for flag in ["--help", "-h"] {
        let o = rlnet(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}");
        let out = stdout(&o);
        assert!(out.starts_with("Usage: rlnet [OPTION]... PID|PATH [TAPNAME]"));
        assert!(out.contains("rlnet run [OPTION]... -- COMMAND [ARG]..."));
        for s in CALLER_OPTIONS {
            assert!(out.contains(s), "{flag} lacks {s}");
        }
    }
    let o = rlnet(&["run", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("Usage: rlnet run "));
    for args in [&["port", "--help"][..], &["port", "add", "-h"]] {
        let o = rlnet(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(stdout(&o).starts_with("Usage: rlnet port add "), "{args:?}");
    }
}

#[test]
fn version_has_the_slirp_config_line() {
    for flag in ["-v", "--version"] {
        let o = rlnet(&[flag]);
        assert_eq!(o.status.code(), Some(0), "{flag}");
        let out = stdout(&o);
        assert!(out.starts_with("rlnet version "), "{out:?}");
        // What the upstream tests grep: `SLIRP_CONFIG_VERSION_MAX: N`, N >= 3.
        let n: u32 = out
            .lines()
            .find_map(|l| l.strip_prefix("SLIRP_CONFIG_VERSION_MAX: "))
            .expect("SLIRP_CONFIG_VERSION_MAX line")
            .trim()
            .parse()
            .expect("a number");
        assert!(n >= 3, "{n}");
    }
}

#[test]
fn unknown_option_is_one_line_exit_1() {
    fails_with(
        &["--bogus", "1234", "tap0"],
        "unrecognized option '--bogus'",
    );
    fails_with(&["-V", "1234"], "'-V'");
    fails_with(&["run", "--bogus", "true"], "'--bogus'");
}

#[test]
fn cidr_errors_use_slirp4netns_texts() {
    for (cidr, text) in [
        ("24", "invalid CIDR"),
        ("foo", "invalid CIDR"),
        ("10.0.2.0", "invalid CIDR"),
        (
            "10.0.2.100/24",
            "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24",
        ),
        ("10.0.2.100/26", "prefix length needs to be 1-25"),
    ] {
        fails_with(&["-c", "--cidr", cidr, "1234", "tun11"], text);
    }
}

#[test]
fn bad_mtu_is_one_line_exit_1() {
    fails_with(&["--mtu", "0", "1234", "tap0"], "\"0\"");
    fails_with(&["--mtu", "70000", "1234", "tap0"], "\"70000\"");
    fails_with(&["--mtu=70000", "1234", "tap0"], "\"70000\"");
}

#[test]
fn other_errors_are_one_line_exit_1() {
    fails_with(&["abc", "tap0"], "PID must be a positive integer");
    fails_with(&[], "PID");
    fails_with(&["run"], "COMMAND");
    fails_with(
        &["--netns-type=tapfd", "3"],
        "--netns-type=tapfd is not supported",
    );
    fails_with(
        &["--macaddress=0e:d4:18:d9:38:fb", "1"],
        "--macaddr cannot be specified",
    );
    fails_with(&["-p", "8080", "1"], "\"8080\"");
    fails_with(
        &["--publish-mode=fast", "1"],
        "invalid value for --publish-mode: unknown publish mode \"fast\"",
    );
    fails_with(&["port"], "missing the port command");
    fails_with(&["port", "ls"], "missing --api-socket");
}

/// Reads the man page source as plain text: roff writes '-' as "\-".
fn man_page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/rlnet.1"))
        .expect("man/rlnet.1")
        .replace("\\-", "-")
}

fn long_options(help: &str) -> Vec<String> {
    let mut opts: Vec<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.len() > 2 && w.starts_with("--"))
        .map(str::to_string)
        .collect();
    opts.sort();
    opts.dedup();
    opts
}

#[test]
fn man_page_documents_every_long_option_of_help() {
    let man = man_page();
    let mut checked = 0;
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["port", "--help"],
        &["network", "--help"],
        &["attach", "--help"],
        &["detach", "--help"],
        &["check", "--help"],
        &["pasta", "--help"],
    ] {
        let help = stdout(&rlnet(args));
        for opt in long_options(&help) {
            // Options are the start of a word in the page (".B --mtu", "--mtu=").
            assert!(
                man.contains(&opt),
                "man/rlnet.1 does not document {opt} (from {args:?})"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= CALLER_OPTIONS.len(),
        "found only {checked} options"
    );
}

#[test]
fn dns_options_are_documented_and_checked() {
    for args in [&["--help"][..], &["run", "--help"]] {
        let help = stdout(&rlnet(args));
        for opt in [
            "--dns-upstream",
            "--resolv-conf",
            "--add-host",
            "host-gateway",
        ] {
            assert!(help.contains(opt), "{args:?} lacks {opt}");
        }
    }
    let man = man_page();
    for s in [
        "host.containers.internal",
        "host.rlnet.internal",
        "rlnet.internal",
        "SERVFAIL",
        "resolv.conf",
    ] {
        assert!(man.contains(s), "man page lacks {s}");
    }
    fails_with(
        &["--dns-upstream=dns.example", "1"],
        "invalid value for --dns-upstream: \"dns.example\"",
    );
    fails_with(
        &["run", "--dns-upstream", "10.0.2.3", "true"],
        "\"10.0.2.3\" cannot be a DNS server",
    );
    fails_with(&["--add-host", "db", "1"], "invalid value for --add-host");
    fails_with(&["--add-host=db:nowhere", "1"], "\"nowhere\"");
    fails_with(&["--resolv-conf=", "1"], "--resolv-conf");
}

/// rlnet as `pasta` (a symlink named so, in a private directory), run with
/// `args` to completion; the link's path too.
fn pasta(args: &[&str]) -> (Output, String) {
    let dir = std::env::temp_dir().join(format!("rlnet-cli-pasta-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let link = dir.join("pasta");
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_rlnet"), &link).expect("symlink");
    }
    let o = Command::new(&link).args(args).output().expect("run pasta");
    (o, link.display().to_string())
}

/// pasta's command line through the binary: help and version on stdout
/// (exit 0; Podman reads `pasta --version` from a pipe), every error one
/// line on stderr under the name as invoked (getopt's texts), exit 1.
#[test]
fn pasta_command_line() {
    let (o, _) = pasta(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    assert!(help.starts_with("Usage: pasta [OPTION]..."), "{help}");
    for opt in pasta_long_options() {
        assert!(
            help.contains(&format!("--{opt}")),
            "pasta --help lacks --{opt}"
        );
    }
    let (o, _) = pasta(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let first = stdout(&o).lines().next().unwrap_or("").to_string();
    assert_eq!(
        first,
        format!("pasta (rlnet) {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        stdout(&rlnet(&["pasta", "--version"])).lines().next(),
        Some(first.as_str())
    );
    for (args, text) in [
        (&["--bogus"][..], "unrecognized option '--bogus'"),
        (
            &["--map-guest-addr=1.2.3.4", "--stats=1"],
            "unrecognized option '--stats=1'",
        ),
        (&["--netns"], "option '--netns' requires an argument"),
        (&["-t"], "option requires an argument -- 't'"),
        (&["-fX"], "invalid option -- 'X'"),
        (&["-m", "70000"], "invalid MTU '70000'"),
        (&["-t", "80-70"], "invalid port specifier '80-70'"),
        (
            &["--netns", "/x", "1234"],
            "both --netns and a PID or command given",
        ),
    ] {
        let (o, link) = pasta(args);
        let one_line = |o: &Output, start: &str| {
            let err = stderr(o);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
            assert!(
                err.starts_with(start),
                "{args:?}: {err:?} should start with {start:?}"
            );
            assert!(stdout(o).is_empty(), "{args:?}");
        };
        one_line(&o, &format!("{link}: {text}"));
        let mut sub = vec!["pasta"];
        sub.extend_from_slice(args);
        one_line(&rlnet(&sub), &format!("rlnet: {text}"));
    }
}

/// build.rs links gcc's static unwinder where the C compiler has one: the
/// binary must not load libgcc_s.so.1 (whose constructor costs every start
/// 0.13 ms of CPUID traps on a VM), and a panic must still unwind with it.
#[test]
fn the_unwinder_is_linked_in_and_still_unwinds() {
    let eh = Command::new("cc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .expect("cc");
    let eh = String::from_utf8_lossy(&eh.stdout).trim().to_string();
    if std::path::Path::new(&eh).is_absolute() {
        let elf = std::fs::read(env!("CARGO_BIN_EXE_rlnet")).expect("read the binary");
        let needle = b"libgcc_s.so";
        assert!(
            !elf.windows(needle.len()).any(|w| w == needle),
            "rlnet names libgcc_s.so: the static unwinder ({eh}) was not linked"
        );
    }
    let caught = std::panic::catch_unwind(|| panic!("unwinds"));
    assert!(caught.is_err());
}
