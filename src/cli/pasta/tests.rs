use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::super::{CliExit, Command, parse_args};
use super::*;
use crate::forward::ports::PortForwards;

fn parse(args: &[&str]) -> Result<Invocation, CliExit> {
    parse_args(std::iter::once("/usr/libexec/podman/pasta").chain(args.iter().copied()))
}

fn opts(args: &[&str]) -> PastaOptions {
    match parse(args) {
        Ok(Invocation {
            command: Command::Pasta(o),
            ..
        }) => *o,
        other => panic!("{args:?} should parse as pasta, got {other:?}"),
    }
}

/// The error line; one line, containing `needle`.
fn fails(args: &[&str], needle: &str) -> String {
    match parse(args) {
        Err(CliExit::Error(line)) => {
            assert!(!line.contains('\n'), "{args:?}: {line:?}");
            assert!(line.contains(needle), "{args:?}: {line:?} lacks {needle:?}");
            line
        }
        other => panic!("{args:?} should fail, got {other:?}"),
    }
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn names_and_subcommand_select_pasta() {
    assert!(is_pasta_name("pasta".as_ref()));
    assert!(is_pasta_name("/usr/libexec/podman/pasta".as_ref()));
    assert!(is_pasta_name("pasta.avx2".as_ref()));
    assert!(!is_pasta_name("/usr/bin/rlnet".as_ref()));
    let inv = parse_args(["rlnet", "pasta", "--config-net", "1234"]).unwrap();
    assert!(matches!(inv.command, Command::Pasta(ref o) if o.target == PastaTarget::Pid(1234)));
    assert_eq!(
        super::super::program_name(Some("/x/pasta".as_ref())),
        "/x/pasta"
    );
    assert_eq!(super::super::program_name(Some("rlnet".as_ref())), "rlnet");
}

#[test]
fn what_podman_passes() {
    let o = opts(&[
        "--config-net",
        "-t",
        "18080-18080:80-80",
        "-t",
        "127.0.0.1/18081-18081:80-80",
        "-u",
        "5353-5353:53-53",
        "--dns-forward",
        "169.254.1.1",
        "-T",
        "none",
        "-U",
        "none",
        "--no-map-gw",
        "--quiet",
        "--netns",
        "/run/user/1000/netns/netns-x",
        "--map-guest-addr",
        "169.254.1.2",
    ]);
    assert!(o.config_net && !o.map_gw && !o.foreground);
    assert_eq!(o.verbosity, Verbosity::Quiet);
    assert_eq!(
        o.target,
        PastaTarget::Netns("/run/user/1000/netns/netns-x".into())
    );
    assert!(
        o.netns_only,
        "--netns without --userns joins the netns only"
    );
    assert!(o.netns_quit);
    assert_eq!(o.dns_forward4, Some(ip4("169.254.1.1")));
    assert_eq!(o.map_guest4, AddrMap::To(ip4("169.254.1.2")));
    assert!(matches!(&o.tcp, PortForwards::Lists(v) if v.len() == 2));
    assert!(matches!(&o.udp, PortForwards::Lists(v) if v.len() == 1));
    assert_eq!(
        (o.tcp_ns.clone(), o.udp_ns.clone()),
        (PortForwards::None, PortForwards::None)
    );
    let o = opts(&[
        "--config-net",
        "--pid",
        "/run/x.pid",
        "--netns",
        "/run/ns",
        "-t",
        "none",
    ]);
    assert_eq!(o.pid_file, Some(PathBuf::from("/run/x.pid")));
    assert_eq!(o.tcp, PortForwards::None);
    assert_eq!(o.udp, PortForwards::Unset);
}

#[test]
fn what_rootlesskit_passes() {
    let o = opts(&[
        "--foreground",
        "--stderr",
        "--ns-ifname=tap0",
        "--mtu=65520",
        "--no-dhcp",
        "--no-ra",
        "--address=10.0.2.100",
        "--netmask=24",
        "--gateway=10.0.2.2",
        "--dns-forward=10.0.2.3",
        "--ipv4-only",
        "--tcp-ports=auto",
        "--udp-ports=auto",
        "4321",
    ]);
    assert!(o.foreground && o.no_dhcp && o.no_ra && !o.ipv6 && o.ipv4);
    assert_eq!(o.target, PastaTarget::Pid(4321));
    assert!(!o.netns_only, "the PID form joins the user namespace too");
    assert_eq!(o.ns_ifname.as_deref(), Some("tap0"));
    assert_eq!(o.addr4, Some((ip4("10.0.2.100"), None)));
    assert_eq!(o.netmask, Some(24));
    assert_eq!(o.gateway4, Some(ip4("10.0.2.2")));
    assert_eq!(
        (o.tcp.clone(), o.udp.clone()),
        (PortForwards::Auto, PortForwards::Auto)
    );
    assert_eq!(o.mtu, Some(65520));
    // --detach-netns: --userns and --netns instead of the PID.
    let o = opts(&[
        "--userns=/proc/9/ns/user",
        "--netns=/run/rk/netns",
        "--no-map-gw",
    ]);
    assert_eq!(o.userns, Some(PathBuf::from("/proc/9/ns/user")));
    assert!(!o.netns_only);
}

#[test]
fn getopt_forms() {
    // -t80, -t 80, --tcp-ports=80, --tcp-ports 80, a unique prefix.
    for args in [
        &["-t80"][..],
        &["-t", "80"],
        &["--tcp-ports=80"],
        &["--tcp-ports", "80"],
        &["--tcp-p", "80"],
    ] {
        let o = opts(args);
        assert!(
            matches!(&o.tcp, PortForwards::Lists(v) if v.len() == 1),
            "{args:?}"
        );
    }
    // Bundled flags, and a value at the end of a bundle.
    let o = opts(&["-fq4t80"]);
    assert!(o.foreground && !o.ipv6);
    assert_eq!(o.verbosity, Verbosity::Quiet);
    assert!(matches!(&o.tcp, PortForwards::Lists(_)));
    // A value may start with '-'.
    fails(&["-a", "-x"], "invalid address '-x'");
    // `--no-map` is --no-map-gw; the last of -4/-6 wins.
    assert!(!opts(&["--no-map"]).map_gw);
    let o = opts(&["-4", "-6"]);
    assert!(o.ipv6 && !o.ipv4);
    assert!(opts(&["--no-map-gw", "--map-gw"]).map_gw);
    // `--` and the first operand end the options.
    assert_eq!(
        opts(&["-f", "--", "-q", "x"]).target,
        PastaTarget::Command(vec!["-q".into(), "x".into()])
    );
    let o = opts(&["ls", "-l"]);
    assert_eq!(
        o.target,
        PastaTarget::Command(vec!["ls".into(), "-l".into()])
    );
    assert_eq!(o.verbosity, Verbosity::Normal);
    assert_eq!(opts(&[]).target, PastaTarget::Command(vec![]));
    assert_eq!(
        opts(&["12", "x"]).target,
        PastaTarget::Command(vec!["12".into(), "x".into()])
    );
    assert_eq!(opts(&["-"]).target, PastaTarget::Command(vec!["-".into()]));
    assert_eq!(
        opts(&["--netns", "x"]).target,
        PastaTarget::Netns("/run/netns/x".into())
    );
    assert_eq!(opts(&["-d", "--trace"]).verbosity, Verbosity::Trace);
    assert_eq!(opts(&["--trace", "-q"]).verbosity, Verbosity::Quiet);
    assert!(!opts(&["--no-netns-quit", "1"]).netns_quit);
    assert!(!opts(&["--no-splice"]).splice);
    assert!(!opts(&[]).ns_lo);
    assert!(opts(&["--host-lo-to-ns-lo"]).ns_lo);
    fails(&["--host-lo-to-ns-lo=1"], "doesn't allow an argument");
    let o = opts(&[
        "-D",
        "192.0.2.53",
        "-D",
        "none",
        "-D",
        "::1",
        "-S",
        "a.example",
    ]);
    assert_eq!(o.dns, [IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)]);
    assert_eq!(o.search, ["a.example"]);
    let o = opts(&["--map-host-loopback", "none", "--map-guest-addr", "fd00::2"]);
    assert_eq!(
        (o.map_loopback4, o.map_loopback6),
        (AddrMap::Off, AddrMap::Off)
    );
    assert_eq!(o.map_guest6, AddrMap::To("fd00::2".parse().unwrap()));
}

#[test]
fn help_and_version_print() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["--he"],
        &["-fh"],
        &["-t", "80", "--help"],
    ] {
        match parse(args) {
            Err(CliExit::Print(t)) => assert!(t.starts_with("Usage: pasta "), "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    match parse(&["--version"]) {
        Err(CliExit::Print(t)) => {
            let first = t.lines().next().unwrap();
            assert!(first.contains("rlnet") && first.contains(env!("CARGO_PKG_VERSION")));
        }
        other => panic!("{other:?}"),
    }
    fails(
        &["--version=1"],
        "option '--version' doesn't allow an argument",
    );
}

/// getopt's own words, which callers grep.
#[test]
fn getopt_errors() {
    fails(&["--bogus"], "unrecognized option '--bogus'");
    assert_eq!(fails(&["--bogus=1"], ""), "unrecognized option '--bogus=1'");
    assert_eq!(
        fails(&["--netns"], ""),
        "option '--netns' requires an argument"
    );
    assert_eq!(fails(&["-t"], ""), "option requires an argument -- 't'");
    assert_eq!(fails(&["-fX"], ""), "invalid option -- 'X'");
    assert_eq!(
        fails(&["--quiet=1"], ""),
        "option '--quiet' doesn't allow an argument"
    );
    assert_eq!(
        fails(&["--net", "x"], ""),
        "option '--net' is ambiguous; possibilities: '--netmask' '--netns' '--netns-only'"
    );
    fails(&["--=x"], "unrecognized option '--=x'");
    // Every option's getopt forms: a value option without its value (last
    // word), a flag given a value.
    for o in OPTIONS {
        let long = format!("--{}", o.long);
        if o.takes_value {
            assert_eq!(
                fails(&[&long], ""),
                format!("option '{long}' requires an argument")
            );
            if let Some(c) = o.short {
                assert_eq!(
                    fails(&["-f", &format!("-{c}")], ""),
                    format!("option requires an argument -- '{c}'")
                );
            }
        } else {
            assert_eq!(
                fails(&[&format!("{long}=1")], ""),
                format!("option '{long}' doesn't allow an argument")
            );
        }
    }
    // Options of pasta that rlnet does not implement: refused, never
    // silently taken.
    for o in [
        "--stats=1",
        "--log-size=1",
        "--runas=1",
        "--fd=3",
        "--pcap=x",
        "--hostname=x",
        "--fqdn=x",
        "--no-tcp",
        "--no-udp",
        "--no-icmp",
        "--freebind",
        "--chroot-fallback",
        "--no-copy-routes",
        "--no-copy-addrs",
        "--no-pidns",
        "--splice-only",
        "--dhcp-dns",
        "--dhcp-search",
        "--conf-path=x",
        "--socket=x",
        "--vhost-user",
        "--one-off",
    ] {
        fails(&[o], &format!("unrecognized option '{o}'"));
    }
    for c in ["F", "p", "H", "c", "s", "1", "x"] {
        fails(&[&format!("-{c}")], &format!("invalid option -- '{c}'"));
    }
}

/// Every option that takes a value, with its bad forms: one line naming
/// the value.
#[test]
fn every_option_refuses_its_bad_values() {
    let cases: &[(&str, &[&str])] = &[
        ("-l", &[""]),
        ("-P", &[""]),
        ("--userns", &[""]),
        ("--netns", &["", ".", ".."]),
        ("-I", &["", "a/b", "abcdefghijklmnop", "a b"]),
        ("-i", &["", "a:b", "abcdefghijklmnop"]),
        ("--outbound-if4", &["", "a/b"]),
        ("--outbound-if6", &["", "a b"]),
        ("-m", &["", "x", "67", "65522", "-1", "0x10"]),
        (
            "-a",
            &[
                "",
                "x",
                "1.2.3",
                "0.0.0.0",
                "127.0.0.1",
                "::1",
                "1.2.3.4/33",
                "::/64",
            ],
        ),
        ("-n", &["", "0", "33", "255.0.255.0", "x"]),
        (
            "-M",
            &["", "9a:55", "01:00:5e:00:00:01", "9a:55:9a:55:9a:5g"],
        ),
        ("--ns-mac-addr", &["", "x"]),
        ("-g", &["", "x", "0.0.0.0", "127.0.0.1", "::"]),
        ("-o", &["", "x", "0.0.0.0", "::1"]),
        ("-D", &["", "x", "1.2.3"]),
        ("-S", &["", "-bad", "a..b"]),
        (
            "-t",
            &[
                "",
                "bogus",
                "0",
                "70000",
                "80-70",
                "80-81:90",
                "1.2.3/80",
                "~25,~20-30",
            ],
        ),
        ("-u", &["", "x", "65536", "53:"]),
        ("-T", &["", "127.0.0.1/80", "0", "x"]),
        ("-U", &["", "::1/53", "53-52"]),
        ("--dns-forward", &["", "x", "127.0.0.1", "0.0.0.0", "::"]),
        ("--dns-host", &["", "x", "0.0.0.0"]),
        ("--map-host-loopback", &["", "x", "127.0.0.1", "::1"]),
        ("--map-guest-addr", &["", "x", "0.0.0.0"]),
    ];
    for (opt, bads) in cases {
        for bad in *bads {
            let line = fails(&[opt, bad], &format!("'{bad}'"));
            assert!(!line.is_empty(), "{opt} {bad:?}");
        }
    }
    // Each listed option is one rlnet implements, and every option that
    // takes a value is listed.
    for o in OPTIONS.iter().filter(|o| o.takes_value) {
        let listed = cases.iter().any(|(name, _)| {
            *name == format!("--{}", o.long) || o.short.is_some_and(|c| *name == format!("-{c}"))
        });
        assert!(listed, "--{} has no bad-value case", o.long);
    }
}

#[test]
fn combinations_and_targets() {
    fails(&["-t", "auto", "-t", "80"], "cannot be combined");
    fails(&["-t", "80", "-t", "none"], "conflicts");
    fails(&["-u", "none", "-u", "all"], "conflicts");
    fails(
        &["-a", "10.0.0.1/24", "-n", "16"],
        "-a 10.0.0.1 already has a prefix length",
    );
    fails(
        &["--userns", "/proc/1/ns/user", "sh"],
        "--userns needs --netns or a PID",
    );
    fails(
        &["--netns", "/x", "1234"],
        "both --netns and a PID or command given (1234)",
    );
    fails(&["--netns", "/x", "sh"], "both --netns");
    fails(&["-1"], "invalid option -- '1'");
    fails(&["--", "-5"], "invalid PID '-5'");
    fails(&["0"], "invalid PID '0'");
    fails(&["99999999999"], "invalid PID '99999999999'");
    fails(&["-m", "1000"], "too small for IPv6");
    assert_eq!(opts(&["-4", "-m", "1000"]).mtu, Some(1000));
    assert_eq!(opts(&["-m", "0"]).mtu, Some(0));
}
