//! Command lines: the input's NUL-separated words after the program name,
//! through every form (slirp4netns-compatible, run, port, network, attach,
//! detach, pasta) and a valid invocation's config checks. The same words
//! go to rlnet started as `pasta` (argv0), which must read them exactly as
//! `rlnet pasta WORDS` does; a pasta command line that parses is planned
//! against no host interface (pasta's local mode) and against a typical
//! one.
#![no_main]

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use rlnet::cli::{Command, parse_args};
use rlnet::config::pasta::{Template, resolve};

fuzz_target!(|data: &[u8]| {
    let words: Vec<OsString> = rlnet_fuzz::words(data, 64)
        .into_iter()
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();
    let argv = |argv0: &[&str]| {
        argv0
            .iter()
            .map(OsString::from)
            .chain(words.iter().cloned())
            .collect::<Vec<_>>()
    };
    let as_rlnet = parse_args(argv(&["rlnet"]));
    if let Ok(inv) = &as_rlnet
        && let Command::Serve(config) = &inv.command
    {
        let _ = config.validate();
    }
    let as_pasta = parse_args(argv(&["/usr/libexec/rlnet/pasta"]));
    let as_subcommand = parse_args(argv(&["rlnet", "pasta"]));
    assert_eq!(as_pasta, as_subcommand, "pasta WORDS vs rlnet pasta WORDS");
    if words.first().is_some_and(|w| w == "pasta") {
        // `rlnet pasta REST` was the first parse: the same as `pasta REST`.
        let rest = std::iter::once(OsString::from("pasta")).chain(words[1..].iter().cloned());
        assert_eq!(as_rlnet, parse_args(rest), "rlnet pasta REST vs pasta REST");
    }
    if let Ok(inv) = &as_pasta {
        let Command::Pasta(o) = &inv.command else {
            panic!("pasta's command line gave {:?}", inv.command);
        };
        let (t4, t6) = templates();
        let _ = resolve(o, None, None);
        let _ = resolve(o, Some(&t4), Some(&t6));
    }
});

/// A host interface as pasta finds it on a typical machine: one address of
/// each family, a default gateway, one more route.
fn templates() -> (Template, Template) {
    let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    let v6 = |a, b| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, a, b));
    (
        Template {
            name: "eth0".into(),
            index: 2,
            addrs: vec![(v4(192, 168, 1, 10), 24)],
            gateway: Some(v4(192, 168, 1, 1)),
            routes: vec![(v4(10, 8, 0, 0), 16, Some(v4(192, 168, 1, 254)))],
        },
        Template {
            name: "eth0".into(),
            index: 2,
            addrs: vec![(v6(0, 10), 64)],
            gateway: Some(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))),
            routes: vec![],
        },
    )
}
