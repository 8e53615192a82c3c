use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The lab's host: eth0 192.0.2.2/24 via 192.0.2.1, 2001:db8:1::2/64 via
/// 2001:db8:1::1 (and its link-local address), lo.
fn lab() -> HostNet {
    let route = |dst: &str, prefix, gw: Option<&str>, oif, kernel| HostRoute {
        dst: ip(dst),
        prefix,
        gateway: gw.map(ip),
        oif,
        metric: if kernel { 0 } else { 1024 },
        kernel,
    };
    HostNet {
        links: vec![(1, "lo".into()), (2, "eth0".into()), (3, "wg0".into())],
        addrs: vec![
            HostAddr {
                index: 1,
                addr: ip("127.0.0.1"),
                prefix: 8,
            },
            HostAddr {
                index: 2,
                addr: ip("192.0.2.2"),
                prefix: 24,
            },
            HostAddr {
                index: 2,
                addr: ip("fe80::1234"),
                prefix: 64,
            },
            HostAddr {
                index: 2,
                addr: ip("2001:db8:1::2"),
                prefix: 64,
            },
            HostAddr {
                index: 3,
                addr: ip("10.9.9.9"),
                prefix: 32,
            },
        ],
        routes: vec![
            route("192.0.2.0", 24, None, 2, true),
            route("0.0.0.0", 0, Some("192.0.2.1"), 2, false),
            route("198.51.100.0", 24, Some("192.0.2.254"), 2, false),
            route("10.9.0.0", 16, None, 3, false),
            route("2001:db8:1::", 64, None, 2, true),
            route("fe80::", 64, None, 2, true),
            route("::", 0, Some("2001:db8:1::1"), 2, false),
        ],
    }
}

fn podman() -> PastaOptions {
    let mut o = PastaOptions::new(PastaTarget::Netns("/run/user/1000/netns/x".into()));
    o.config_net = true;
    o.map_gw = false;
    o.dns_forward4 = Some(v4("169.254.1.1"));
    o.map_guest4 = AddrMap::To(v4("169.254.1.2"));
    o
}

fn templates(h: &HostNet, o: &PastaOptions) -> (Option<Template>, Option<Template>) {
    (
        h.template(false, o.interface.as_deref().map(|i| (i, "-i")))
            .unwrap(),
        h.template(true, o.interface.as_deref().map(|i| (i, "-i")))
            .unwrap(),
    )
}

#[test]
fn the_template_is_the_default_route_interface() {
    let h = lab();
    let t4 = h.template(false, None).unwrap().unwrap();
    assert_eq!(t4.name, "eth0");
    assert_eq!(t4.addrs, [(ip("192.0.2.2"), 24)]);
    assert_eq!(t4.gateway, Some(ip("192.0.2.1")));
    // The kernel's subnet route is not copied; a static one is.
    assert_eq!(
        t4.routes,
        [(ip("198.51.100.0"), 24, Some(ip("192.0.2.254")))]
    );
    let t6 = h.template(true, None).unwrap().unwrap();
    assert_eq!(t6.addrs, [(ip("2001:db8:1::2"), 64)], "no link-local");
    assert_eq!(t6.gateway, Some(ip("2001:db8:1::1")));
    assert!(t6.routes.is_empty());
    // Named: that interface, even without a default route.
    let wg = h.template(false, Some(("wg0", "-i"))).unwrap().unwrap();
    assert_eq!(wg.addrs, [(ip("10.9.9.9"), 32)]);
    assert_eq!(wg.gateway, None);
    assert_eq!(
        h.template(false, Some(("nope0", "-i"))).unwrap_err(),
        TemplateError::NoSuchInterface("nope0".into(), "-i")
    );
    let e = h
        .template(true, Some(("wg0", "--outbound-if6")))
        .unwrap_err();
    assert!(e.to_string().contains("no IPv6 address"), "{e}");
}

#[test]
fn without_default_routes_the_only_routed_interface_is_used() {
    let mut h = lab();
    h.routes.retain(|r| r.prefix != 0 || r.dst.is_ipv6());
    h.routes.retain(|r| r.oif != 3);
    let t4 = h.template(false, None).unwrap().unwrap();
    assert_eq!((t4.name.as_str(), t4.gateway), ("eth0", None));
    // Two interfaces with routes: none is chosen (local mode).
    let mut h = lab();
    h.routes.retain(|r| r.prefix != 0);
    assert_eq!(h.template(false, None).unwrap(), None);
    assert_eq!(HostNet::default().template(true, None).unwrap(), None);
}

#[test]
fn podman_gets_a_copy_of_the_host() {
    let h = lab();
    let o = podman();
    let (t4, t6) = templates(&h, &o);
    let p = resolve(&o, t4.as_ref(), t6.as_ref());
    assert_eq!(p.ifname, "eth0");
    assert_eq!(p.addrs, [(ip("192.0.2.2"), 24), (ip("2001:db8:1::2"), 64)]);
    assert_eq!(
        p.routes,
        [
            (ip("198.51.100.0"), 24, Some(ip("192.0.2.254"))),
            (ip("0.0.0.0"), 0, Some(ip("192.0.2.1"))),
            (ip("::"), 0, Some(ip("2001:db8:1::1"))),
        ]
    );
    assert_eq!((p.mtu, p.link_mtu), (Some(65520), 65520));
    let plan = p.plan;
    assert_eq!(plan.guest4, v4("192.0.2.2"));
    assert_eq!(plan.net4.to_string(), "192.0.2.0/24");
    assert_eq!(plan.gateway4, v4("192.0.2.1"));
    assert_eq!(plan.dns(false), Some(ip("169.254.1.1")));
    assert_eq!(plan.dns(true), None);
    let v6p = plan.v6.unwrap();
    assert_eq!(
        (v6p.guest6, v6p.gateway6),
        (v6("2001:db8:1::2"), v6("2001:db8:1::1"))
    );
    assert_eq!(v6p.prefix, v6("2001:db8:1::"));
    let s = plan.shared.unwrap();
    assert_eq!((s.loopback4, s.loopback6), (None, None), "--no-map-gw");
    assert_eq!(s.host4, Some((v4("169.254.1.2"), v4("192.0.2.2"))));
    assert_eq!(s.host6, None);
    assert!(s.ipv4);
    assert_eq!(plan.host_addr(false), Some(ip("169.254.1.2")));
    assert_eq!(plan.host_addr(true), None);
}

#[test]
fn rootlesskit_gets_its_own_addresses() {
    let h = lab();
    let mut o = PastaOptions::new(PastaTarget::Pid(1234));
    o.ns_ifname = Some("tap0".into());
    o.addr4 = Some((v4("10.0.2.100"), None));
    o.netmask = Some(24);
    o.gateway4 = Some(v4("10.0.2.2"));
    o.dns_forward4 = Some(v4("10.0.2.3"));
    o.ipv6 = false;
    o.mtu = Some(65520);
    let (t4, t6) = templates(&h, &o);
    let p = resolve(&o, t4.as_ref(), t6.as_ref());
    assert_eq!(p.ifname, "tap0");
    assert_eq!(p.addrs, [(ip("10.0.2.100"), 24)]);
    assert_eq!(p.routes, [(ip("0.0.0.0"), 0, Some(ip("10.0.2.2")))]);
    assert_eq!(p.plan.v6, None);
    assert_eq!(p.plan.net4.to_string(), "10.0.2.0/24");
    let s = p.plan.shared.unwrap();
    assert_eq!(s.loopback4, Some(v4("10.0.2.2")), "the gateway is the host");
    assert_eq!(p.plan.host_addr(false), Some(ip("10.0.2.2")));
}

#[test]
fn local_mode_and_families() {
    let o = PastaOptions::new(PastaTarget::Command(vec![]));
    let p = resolve(&o, None, None);
    assert_eq!(p.ifname, "tap0");
    assert_eq!(p.addrs, [(ip("169.254.2.1"), 16)]);
    assert_eq!(p.routes, [(ip("0.0.0.0"), 0, Some(ip("169.254.2.2")))]);
    assert_eq!(p.plan.v6, None);
    assert_eq!(p.plan.shared.unwrap().loopback4, Some(v4("169.254.2.2")));
    // -6: no IPv4 at all.
    let h = lab();
    let mut o = PastaOptions::new(PastaTarget::Command(vec![]));
    o.ipv4 = false;
    let (t4, t6) = templates(&h, &o);
    let p = resolve(&o, t4.as_ref(), t6.as_ref());
    assert!(!p.plan.ipv4());
    assert!(p.addrs.iter().all(|(a, _)| a.is_ipv6()), "{:?}", p.addrs);
    assert_eq!(p.plan.shared.unwrap().loopback6, Some(v6("2001:db8:1::1")));
    // A template without a gateway: no route, no mapping.
    let mut h = lab();
    h.routes.retain(|r| r.prefix != 0 || r.dst.is_ipv6());
    let o = PastaOptions::new(PastaTarget::Pid(1));
    let p = resolve(
        &o,
        h.template(false, Some(("eth0", "-i"))).unwrap().as_ref(),
        None,
    );
    assert_eq!(p.plan.shared.unwrap().loopback4, None);
    assert!(p.routes.iter().all(|r| r.1 != 0), "{:?}", p.routes);
}

#[test]
fn addresses_netmasks_and_maps() {
    let h = lab();
    let mut o = PastaOptions::new(PastaTarget::Pid(1));
    o.addr4 = Some((v4("10.1.2.3"), None));
    o.map_loopback4 = AddrMap::To(v4("10.1.2.254"));
    o.map_gw = false;
    o.mtu = Some(0);
    let (t4, t6) = templates(&h, &o);
    let p = resolve(&o, t4.as_ref(), t6.as_ref());
    assert_eq!(p.plan.net4.to_string(), "10.0.0.0/8", "classful");
    assert_eq!(p.plan.gateway4, v4("192.0.2.1"), "the host's gateway");
    assert_eq!(p.plan.shared.unwrap().loopback4, Some(v4("10.1.2.254")));
    assert_eq!((p.mtu, p.link_mtu), (None, 1500));
    o.addr4 = Some((v4("172.16.1.1"), Some(20)));
    assert_eq!(
        resolve(&o, t4.as_ref(), t6.as_ref()).plan.net4.to_string(),
        "172.16.0.0/20"
    );
    // -n alone: the host's address with another prefix.
    let mut o = PastaOptions::new(PastaTarget::Pid(1));
    o.netmask = Some(16);
    o.map_loopback4 = AddrMap::Off;
    let p = resolve(&o, t4.as_ref(), t6.as_ref());
    assert_eq!(p.addrs[0], (ip("192.0.2.2"), 16));
    assert_eq!(p.plan.shared.unwrap().loopback4, None);
    assert_eq!(p.plan.shared.unwrap().loopback6, Some(v6("2001:db8:1::1")));
}

#[test]
fn value_parsers_accept_pasta_forms() {
    assert_eq!(
        parse_address_cidr("192.0.2.2").unwrap(),
        (ip("192.0.2.2"), None)
    );
    assert_eq!(
        parse_address_cidr("192.0.2.2/24").unwrap(),
        (ip("192.0.2.2"), Some(24))
    );
    assert_eq!(parse_address_cidr("2001:db8::2/64").unwrap().1, Some(64));
    assert_eq!(parse_netmask("24"), Ok(24));
    assert_eq!(parse_netmask("255.255.255.0"), Ok(24));
    assert_eq!(parse_netmask("255.255.255.255"), Ok(32));
    assert_eq!(parse_gateway("fe80::1"), Ok(ip("fe80::1")));
    assert_eq!(parse_outbound("127.0.0.1"), Ok(ip("127.0.0.1")));
    assert_eq!(parse_mtu("0"), Ok(0));
    assert_eq!(parse_mtu("65521"), Ok(65521));
    assert_eq!(
        parse_mac("9a:55:9a:55:9a:55"),
        Ok([0x9a, 0x55, 0x9a, 0x55, 0x9a, 0x55])
    );
    assert_eq!(parse_map("none"), Ok(None));
    assert_eq!(parse_map("169.254.1.2"), Ok(Some(ip("169.254.1.2"))));
    assert_eq!(parse_dns_host("127.0.0.53"), Ok(ip("127.0.0.53")));
    assert_eq!(parse_dns_host("::1"), Ok(ip("::1")));
    assert_eq!(parse_dns("none"), Ok(None));
    assert_eq!(parse_search("a.example b.example").unwrap().len(), 2);
    assert_eq!(parse_search("none"), Ok(vec![]));
    assert_eq!(parse_netns("x"), Ok(PathBuf::from("/run/netns/x")));
    assert_eq!(parse_netns("./x"), Ok(PathBuf::from("./x")));
    assert_eq!(parse_pid_word("1234"), Some(Ok(1234)));
    assert_eq!(parse_pid_word("+7"), Some(Ok(7)));
    assert_eq!(parse_pid_word("sh"), None);
    assert_eq!(parse_pid_word("12a"), None);
    assert!(matches!(
        parse_pid_word("-5"),
        Some(Err(PastaError::Pid(_)))
    ));
    assert!(matches!(parse_pid_word("0"), Some(Err(PastaError::Pid(_)))));
    assert!(matches!(parse_pid_word("99999999999"), Some(Err(_))));
}

/// Every bad value names itself in one line.
#[test]
fn value_parsers_refuse_bad_forms() {
    type P = fn(&str) -> Result<(), PastaError>;
    let cases: &[(P, &[&str])] = &[
        (
            |s| parse_address_cidr(s).map(drop),
            &[
                "",
                "1.2.3",
                "300.1.1.1",
                "0.0.0.0",
                "127.0.0.1",
                "255.255.255.255",
                "224.0.0.1",
                "::",
                "::1",
                "ff02::1",
                "::ffff:1.2.3.4",
                "1.2.3.4/0",
                "1.2.3.4/33",
                "2001:db8::1/129",
                "1.2.3.4/",
                "1.2.3.4/x",
                "host",
            ],
        ),
        (
            |s| parse_netmask(s).map(drop),
            &["", "0", "33", "255.0.255.0", "0.0.0.0", "x", "-1", "24 "],
        ),
        (
            |s| parse_gateway(s).map(drop),
            &["", "0.0.0.0", "127.0.0.1", "::1", "x"],
        ),
        (
            |s| parse_outbound(s).map(drop),
            &["", "0.0.0.0", "::", "::1", "224.0.0.1", "eth0"],
        ),
        (
            |s| parse_ifname(s).map(drop),
            &["", "a/b", "a b", "abcdefghijklmnop", ".", ".."],
        ),
        (
            |s| parse_mtu(s).map(drop),
            &["", "67", "65522", "70000", "-1", "0x5dc", "1500 "],
        ),
        (
            |s| parse_mac(s).map(drop),
            &[
                "",
                "9a:55:9a:55:9a",
                "01:00:5e:00:00:01",
                "zz:55:9a:55:9a:55",
            ],
        ),
        (
            |s| parse_map(s).map(drop),
            &["", "127.0.0.1", "::1", "0.0.0.0", "nope"],
        ),
        (
            |s| parse_dns_forward(s).map(drop),
            &["", "127.0.0.1", "::", "255.255.255.255", "x"],
        ),
        (|s| parse_dns_host(s).map(drop), &["", "0.0.0.0", "::", "x"]),
        (|s| parse_dns(s).map(drop), &["", "dns.example", "1.2.3"]),
        (
            |s| parse_search(s).map(drop),
            &["", " ", "-bad.example", "a..b"],
        ),
        (|s| parse_netns(s).map(drop), &["", ".", ".."]),
        (|s| parse_path("PID file", s).map(drop), &[""]),
    ];
    for (parse, bads) in cases {
        for bad in *bads {
            let e = parse(bad).expect_err(bad);
            let msg = e.to_string();
            assert!(msg.contains(&format!("'{bad}'")), "{bad:?}: {msg}");
            assert!(!msg.contains('\n'));
        }
    }
}

#[test]
fn cross_option_checks() {
    let mut o = PastaOptions::new(PastaTarget::Pid(1));
    o.addr4 = Some((v4("10.0.0.1"), Some(24)));
    o.netmask = Some(16);
    assert!(matches!(o.validate(), Err(PastaError::NetmaskTwice(_))));
    let mut o = PastaOptions::new(PastaTarget::Command(vec![]));
    o.userns = Some("/proc/1/ns/user".into());
    assert_eq!(o.validate(), Err(PastaError::UsernsAlone));
    let mut o = PastaOptions::new(PastaTarget::Pid(1));
    o.mtu = Some(1000);
    assert_eq!(o.validate(), Err(PastaError::MtuIpv6(1000)));
    o.ipv6 = false;
    assert_eq!(o.validate(), Ok(()));
}
