use super::*;

/// A host where everything works, as a distribution ships it.
fn good() -> Facts {
    Facts {
        euid: 1000,
        groups: vec![1000, 27],
        userns_clone: Some(1),
        max_user_namespaces: Some(63_000),
        probe: Probe::Ok,
        tun: Tun {
            exists: true,
            is_tun: true,
            mode: 0o666,
            open: Ok(()),
        },
        apparmor: AppArmor {
            enabled: Some(true),
            restrict_userns: Some(0),
            rlnet_profile: Some(false),
            label: Some("unconfined".into()),
        },
        ping_group_range: Some((0, 2_147_483_647)),
        unprivileged_port_start: Some(1024),
        nofile: Some((1024, 524_288)),
    }
}

fn line(f: &Facts, topic: &str) -> Finding {
    evaluate(f)
        .into_iter()
        .find(|x| x.topic == topic)
        .unwrap_or_else(|| panic!("no {topic} finding"))
}

fn fails(f: &Facts, topic: &str, text: &str, fix: &str) {
    let x = line(f, topic);
    assert_eq!(x.level, Level::Fail, "{x}");
    assert!(x.text.contains(text), "{x}");
    assert!(x.fix.as_deref().is_some_and(|s| s.contains(fix)), "{x}");
    assert_eq!(exit_code(&evaluate(f)), 1);
}

#[test]
fn a_good_host_passes_with_one_line_per_finding() {
    let f = good();
    let all = evaluate(&f);
    let topics: Vec<&str> = all.iter().map(|x| x.topic).collect();
    assert_eq!(
        topics,
        [
            "user namespaces",
            "/dev/net/tun",
            "AppArmor",
            "ping",
            "published ports",
            "open files"
        ]
    );
    assert_eq!(exit_code(&all), 0);
    assert!(all.iter().all(|x| x.level <= Level::Note), "{all:?}");
    let text = render(&all);
    assert_eq!(text.lines().count(), all.len());
    assert!(text.starts_with("ok   user namespaces: "), "{text}");
    assert!(
        text.contains(
            "note published ports: host ports below 1024 cannot be published \
             (net.ipv4.ip_unprivileged_port_start is 1024); fix: publish host ports from 1024 up"
        ),
        "{text}"
    );
    assert!(text.contains("about 524256 connections"), "{text}");
}

#[test]
fn root_gets_a_note_first() {
    let mut f = good();
    f.euid = 0;
    f.groups = vec![0];
    let all = evaluate(&f);
    assert_eq!(all[0].topic, "user");
    assert_eq!(all[0].level, Level::Note);
    assert_eq!(line(&f, "published ports").level, Level::Ok);
    assert_eq!(exit_code(&all), 0);
}

#[test]
fn user_namespaces_switched_off_or_exhausted() {
    let mut f = good();
    f.userns_clone = Some(0);
    f.probe = Probe::Failed(Step::UserNs, libc::EPERM);
    fails(
        &f,
        "user namespaces",
        "kernel.unprivileged_userns_clone is 0",
        "sysctl -w kernel.unprivileged_userns_clone=1",
    );
    let mut f = good();
    f.max_user_namespaces = Some(0);
    f.probe = Probe::Failed(Step::UserNs, libc::ENOSPC);
    fails(
        &f,
        "user namespaces",
        "user.max_user_namespaces is 0",
        "sysctl -w user.max_user_namespaces=15000",
    );
    // Some other reason (a container's seccomp profile, say).
    let mut f = good();
    f.probe = Probe::Failed(Step::UserNs, libc::EPERM);
    fails(
        &f,
        "user namespaces",
        "cannot create a user namespace: Operation not permitted",
        "allow unprivileged user namespaces",
    );
    // A probe that could not run is not a verdict.
    let mut f = good();
    f.probe = Probe::NotRun(libc::EAGAIN);
    assert_eq!(line(&f, "user namespaces").level, Level::Warn);
}

#[test]
fn apparmor_restriction_without_a_profile_fails() {
    let mut f = good();
    f.apparmor.restrict_userns = Some(1);
    f.probe = Probe::Failed(Step::NetNs, libc::EPERM);
    fails(
        &f,
        "user namespaces",
        "gives no privilege in it",
        "see the AppArmor line",
    );
    fails(
        &f,
        "AppArmor",
        "no profile for rlnet is loaded",
        "kernel.apparmor_restrict_unprivileged_userns=0",
    );
    // A profile that is loaded but not in force (another path).
    f.apparmor.rlnet_profile = Some(true);
    fails(&f, "AppArmor", "does not run under it", "load a profile");
    // Under a profile that allows user namespaces: fine.
    let mut f = good();
    f.apparmor.restrict_userns = Some(1);
    f.apparmor.label = Some("rlnet".into());
    let x = line(&f, "AppArmor");
    assert_eq!(x.level, Level::Ok, "{x}");
    assert!(x.text.contains("profile rlnet"), "{x}");
    // Not enabled at all.
    let mut f = good();
    f.apparmor = AppArmor {
        enabled: Some(false),
        restrict_userns: None,
        rlnet_profile: None,
        label: None,
    };
    assert_eq!(line(&f, "AppArmor").text, "not enabled");
}

#[test]
fn tun_missing_wrong_or_closed() {
    let mut f = good();
    f.tun.exists = false;
    fails(&f, "/dev/net/tun", "does not exist", "modprobe tun");
    let mut f = good();
    f.tun.is_tun = false;
    fails(&f, "/dev/net/tun", "not the TUN/TAP device", "mknod");
    let mut f = good();
    f.tun.mode = 0o600;
    f.tun.open = Err(libc::EACCES);
    f.probe = Probe::Failed(Step::Tap, libc::EACCES);
    fails(
        &f,
        "/dev/net/tun",
        "not readable and writable by uid 1000 (mode 0600)",
        "chmod 0666 /dev/net/tun",
    );
    // The TAP itself is /dev/net/tun's finding, not the namespaces'.
    assert_eq!(line(&f, "user namespaces").level, Level::Ok);
    let mut f = good();
    f.probe = Probe::Failed(Step::Tap, libc::EPERM);
    fails(
        &f,
        "/dev/net/tun",
        "no TAP can be created in a new network namespace",
        "TUNSETIFF",
    );
    // No namespace to try a TAP in: said so, not guessed.
    let mut f = good();
    f.probe = Probe::Failed(Step::UserNs, libc::EPERM);
    let x = line(&f, "/dev/net/tun");
    assert_eq!(x.level, Level::Ok);
    assert!(x.text.contains("not checked"), "{x}");
}

#[test]
fn ping_group_range() {
    let mut f = good();
    f.ping_group_range = Some((1, 0));
    let x = line(&f, "ping");
    assert_eq!(x.level, Level::Warn, "{x}");
    assert!(x.text.contains("(1 0)"), "{x}");
    assert!(
        x.fix
            .as_deref()
            .is_some_and(|s| s.contains("net.ipv4.ping_group_range=\"0 2147483647\"")),
        "{x}"
    );
    assert_eq!(exit_code(&evaluate(&f)), 0, "ping is not fatal");
    // A supplementary group in the range is enough.
    f.ping_group_range = Some((27, 27));
    let x = line(&f, "ping");
    assert_eq!(x.level, Level::Ok, "{x}");
    assert!(x.text.contains("group 27"), "{x}");
}

#[test]
fn privileged_ports() {
    let mut f = good();
    f.unprivileged_port_start = Some(0);
    assert_eq!(line(&f, "published ports").level, Level::Ok);
    f.unprivileged_port_start = Some(80);
    let x = line(&f, "published ports");
    assert_eq!(x.level, Level::Note);
    assert!(x.text.contains("below 80"), "{x}");
}

#[test]
fn open_file_limits() {
    let mut f = good();
    f.nofile = Some((16, 32));
    fails(&f, "open files", "the hard limit is 32", "LimitNOFILE=");
    f.nofile = Some((256, 256));
    let x = line(&f, "open files");
    assert_eq!(x.level, Level::Warn, "{x}");
    assert!(x.text.contains("about 224 connections"), "{x}");
    assert_eq!(exit_code(&evaluate(&f)), 0);
}
