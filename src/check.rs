//! `rlnet check`: whether this host lets rlnet work, one finding per line
//! with its fix. Pure: [`evaluate`] judges the [`Facts`] that
//! [`crate::sys::host::gather`] collects, so every verdict is unit-tested
//! with made-up hosts. The facts' types live with the code that gathers
//! them (sys may not import this part; docs/architecture.md).

use std::fmt;

pub use crate::sys::host::{AppArmor, Facts, Probe, Step, Tun};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    /// Worth knowing; nothing is wrong.
    Note,
    /// rlnet works, with a feature missing or a limit low.
    Warn,
    /// rlnet cannot work.
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Ok => "ok",
            Level::Note => "note",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub topic: &'static str,
    pub text: String,
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4} {}: {}", self.level, self.topic, self.text)?;
        if let Some(fix) = &self.fix {
            write!(f, "; fix: {fix}")?;
        }
        Ok(())
    }
}

/// Fewer descriptors than this and rlnet cannot even start: the TAP, the
/// event loop, signals, pidfds, the API socket and the DNS stub's sockets.
pub const MIN_NOFILE: u64 = 64;
/// Below this the number of connections rlnet can hold is low enough to
/// mention (each flow costs one descriptor, two in splice mode).
pub const LOW_NOFILE: u64 = 4096;
/// Descriptors rlnet holds besides its flows, roughly.
const OWN_FDS: u64 = 32;

/// Every finding, in a fixed order.
pub fn evaluate(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.euid == 0 {
        out.push(finding(
            Level::Note,
            "user",
            "running as root: the findings are root's, and root may do more than the user \
             who runs rlnet",
            Some("run 'rlnet check' as that user"),
        ));
    }
    out.push(userns(f));
    out.push(tun(f));
    out.push(apparmor(f));
    out.push(ping(f));
    out.push(ports(f));
    out.push(nofile(f));
    out
}

/// The report: one line per finding.
pub fn render(findings: &[Finding]) -> String {
    findings.iter().map(|x| format!("{x}\n")).collect()
}

/// 0 when rlnet can work here, 1 when some finding says it cannot.
pub fn exit_code(findings: &[Finding]) -> i32 {
    i32::from(findings.iter().any(|x| x.level == Level::Fail))
}

fn finding(
    level: Level,
    topic: &'static str,
    text: impl Into<String>,
    fix: Option<&str>,
) -> Finding {
    Finding {
        level,
        topic,
        text: text.into(),
        fix: fix.map(str::to_string),
    }
}

fn errno_text(errno: i32) -> &'static str {
    nix::errno::Errno::from_raw(errno).desc()
}

/// AppArmor's restriction is in force and rlnet runs under no profile.
fn apparmor_blocks(f: &Facts) -> bool {
    f.apparmor.restrict_userns == Some(1)
        && f.apparmor
            .label
            .as_deref()
            .is_none_or(|l| l == "unconfined")
}

const SYSCTL_HINT: &str = "put it in /etc/sysctl.d/ to keep it";

fn userns(f: &Facts) -> Finding {
    const TOPIC: &str = "user namespaces";
    let fail = |text: String, fix: String| Finding {
        level: Level::Fail,
        topic: TOPIC,
        text,
        fix: Some(fix),
    };
    match f.probe {
        // A failing TAP is /dev/net/tun's finding.
        Probe::Ok | Probe::Failed(Step::Tap, _) => finding(
            Level::Ok,
            TOPIC,
            "a user namespace with a network namespace in it can be created",
            None,
        ),
        Probe::NotRun(e) => finding(
            Level::Warn,
            TOPIC,
            format!(
                "not checked: no process could be started for the check ({})",
                errno_text(e)
            ),
            Some("free some memory or processes and run 'rlnet check' again"),
        ),
        Probe::Failed(Step::UserNs, e) if f.userns_clone == Some(0) && f.euid != 0 => fail(
            format!(
                "unprivileged user namespaces are switched off (kernel.unprivileged_userns_clone \
                 is 0; creating one: {})",
                errno_text(e)
            ),
            format!("as root, sysctl -w kernel.unprivileged_userns_clone=1 ({SYSCTL_HINT})"),
        ),
        Probe::Failed(Step::UserNs, e) if f.max_user_namespaces == Some(0) || e == libc::ENOSPC => {
            let limit = f
                .max_user_namespaces
                .map_or("its limit".to_string(), |n| format!("{n}"));
            fail(
                format!(
                    "no more user namespaces may be created (user.max_user_namespaces is {limit}; \
                     creating one: {})",
                    errno_text(e)
                ),
                format!("as root, sysctl -w user.max_user_namespaces=15000 ({SYSCTL_HINT})"),
            )
        }
        Probe::Failed(Step::UserNs, e) => fail(
            format!("cannot create a user namespace: {}", errno_text(e)),
            "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1, \
             user.max_user_namespaces > 0); in a container, one that allows them (a seccomp \
             profile that permits unshare and clone with CLONE_NEWUSER)"
                .to_string(),
        ),
        Probe::Failed(step, e) if apparmor_blocks(f) => fail(
            format!(
                "a user namespace can be created but gives no privilege in it ({}: {}): AppArmor \
                 restricts unprivileged user namespaces",
                step_text(step),
                errno_text(e)
            ),
            "see the AppArmor line".to_string(),
        ),
        Probe::Failed(step, e) => fail(
            format!("{}: {}", step_text(step), errno_text(e)),
            "run rlnet where unprivileged user and network namespaces may be created".to_string(),
        ),
    }
}

fn step_text(step: Step) -> &'static str {
    match step {
        Step::UserNs => "creating a user namespace",
        Step::MapIds => "mapping the user into a new user namespace",
        Step::NetNs => "creating a network namespace in a new user namespace",
        Step::Tap => "creating a TAP in a new network namespace",
    }
}

const TUN_MODE_FIX: &str = "as root, chmod 0666 /dev/net/tun, the mode distributions ship \
                            (a udev rule KERNEL==\"tun\", MODE=\"0666\" keeps it)";

fn tun(f: &Facts) -> Finding {
    const TOPIC: &str = "/dev/net/tun";
    let t = f.tun;
    let fail = |text: String, fix: &str| finding(Level::Fail, TOPIC, text, Some(fix));
    if !t.exists {
        return fail(
            "does not exist".into(),
            "as root, modprobe tun; in a container, pass the device in (--device /dev/net/tun)",
        );
    }
    if !t.is_tun {
        return fail(
            "is not the TUN/TAP device (a character device 10:200): something else is there or \
             mounted over it"
                .into(),
            "as root, recreate it (mknod /dev/net/tun c 10 200; chmod 0666 /dev/net/tun) or \
             remove what is mounted over it",
        );
    }
    match t.open {
        Err(e) if e == libc::EACCES || e == libc::EPERM => {
            return fail(
                format!(
                    "not readable and writable by uid {} (mode {:04o}): {}",
                    f.euid,
                    t.mode,
                    errno_text(e)
                ),
                TUN_MODE_FIX,
            );
        }
        Err(e) => {
            return fail(
                format!("cannot be opened: {}", errno_text(e)),
                "as root, modprobe tun; in a container, pass the device in",
            );
        }
        Ok(()) => {}
    }
    match f.probe {
        Probe::Failed(Step::Tap, e) => fail(
            format!(
                "opens, but no TAP can be created in a new network namespace: {}",
                errno_text(e)
            ),
            "run rlnet where TAP devices may be created (in a container: --device /dev/net/tun \
             and no seccomp or LSM rule against TUNSETIFF)",
        ),
        Probe::Ok => finding(
            Level::Ok,
            TOPIC,
            format!(
                "readable and writable (mode {:04o}); a TAP can be created in a new namespace",
                t.mode
            ),
            None,
        ),
        _ => finding(
            Level::Ok,
            TOPIC,
            format!(
                "readable and writable (mode {:04o}); whether a TAP can be created was not \
                 checked (no namespace for it)",
                t.mode
            ),
            None,
        ),
    }
}

fn apparmor(f: &Facts) -> Finding {
    const TOPIC: &str = "AppArmor";
    let a = &f.apparmor;
    if a.enabled == Some(false) {
        return finding(Level::Ok, TOPIC, "not enabled", None);
    }
    match a.restrict_userns {
        None | Some(0) => finding(
            Level::Ok,
            TOPIC,
            "does not restrict unprivileged user namespaces",
            None,
        ),
        Some(_) => {
            let label = a.label.as_deref().unwrap_or("unconfined");
            let probe_ok = !matches!(f.probe, Probe::Failed(s, _) if s != Step::Tap);
            if probe_ok {
                let how = if label == "unconfined" {
                    "rlnet may still create them".to_string()
                } else {
                    format!("rlnet runs under profile {label}, which allows them")
                };
                return finding(
                    Level::Ok,
                    TOPIC,
                    format!(
                        "restricts unprivileged user namespaces \
                         (kernel.apparmor_restrict_unprivileged_userns=1); {how}"
                    ),
                    None,
                );
            }
            let profile = match a.rlnet_profile {
                Some(true) => {
                    "a profile for rlnet is loaded, but this rlnet does not run under \
                               it (is it at the profile's path?)"
                }
                Some(false) => "no profile for rlnet is loaded",
                None => "whether a profile for rlnet is loaded is unknown",
            };
            finding(
                Level::Fail,
                TOPIC,
                format!(
                    "restricts unprivileged user namespaces \
                     (kernel.apparmor_restrict_unprivileged_userns=1) and {profile}"
                ),
                Some(
                    "load a profile for rlnet that allows them (see 'man rlnet', NOTES), or as \
                     root, sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
                ),
            )
        }
    }
}

fn ping(f: &Facts) -> Finding {
    const TOPIC: &str = "ping";
    let fix = "as root, sysctl -w net.ipv4.ping_group_range=\"0 2147483647\" (or a range with \
               your group)";
    let Some((lo, hi)) = f.ping_group_range else {
        return finding(
            Level::Warn,
            TOPIC,
            "net.ipv4.ping_group_range cannot be read: ping from the namespace to outside \
             addresses may fail",
            Some(fix),
        );
    };
    match f.groups.iter().find(|g| (lo..=hi).contains(*g)) {
        Some(g) => finding(
            Level::Ok,
            TOPIC,
            format!(
                "group {g} may use ping sockets (net.ipv4.ping_group_range {lo} {hi}): ping \
                 from the namespace reaches outside addresses"
            ),
            None,
        ),
        None => finding(
            Level::Warn,
            TOPIC,
            format!(
                "no group of uid {} is in net.ipv4.ping_group_range ({lo} {hi}): ping from the \
                 namespace reaches only the gateway and DNS addresses",
                f.euid
            ),
            Some(fix),
        ),
    }
}

fn ports(f: &Facts) -> Finding {
    const TOPIC: &str = "published ports";
    if f.euid == 0 {
        return finding(Level::Ok, TOPIC, "root may publish any host port", None);
    }
    match f.unprivileged_port_start {
        Some(0) => finding(
            Level::Ok,
            TOPIC,
            "any host port may be published (net.ipv4.ip_unprivileged_port_start is 0)",
            None,
        ),
        Some(n) => Finding {
            level: Level::Note,
            topic: TOPIC,
            text: format!(
                "host ports below {n} cannot be published (net.ipv4.ip_unprivileged_port_start \
                 is {n})"
            ),
            fix: Some(format!(
                "publish host ports from {n} up, or as root, sysctl -w \
                 net.ipv4.ip_unprivileged_port_start=LOWEST_PORT ({SYSCTL_HINT})"
            )),
        },
        None => finding(
            Level::Note,
            TOPIC,
            "net.ipv4.ip_unprivileged_port_start cannot be read: host ports below 1024 may \
             not be publishable",
            None,
        ),
    }
}

fn nofile(f: &Facts) -> Finding {
    const TOPIC: &str = "open files";
    let fix = "raise the hard limit of open files (ulimit -Hn as root, LimitNOFILE= for a \
               systemd service, nofile in /etc/security/limits.conf)";
    let Some((soft, hard)) = f.nofile else {
        return finding(Level::Warn, TOPIC, "RLIMIT_NOFILE cannot be read", None);
    };
    if hard < MIN_NOFILE {
        return finding(
            Level::Fail,
            TOPIC,
            format!("the hard limit is {hard}: rlnet needs at least {MIN_NOFILE} descriptors"),
            Some(fix),
        );
    }
    let text = format!(
        "rlnet raises its limit from {soft} to the hard limit, {hard}: about {} connections \
         at once (one descriptor each, two in splice mode)",
        hard - OWN_FDS
    );
    if hard < LOW_NOFILE {
        finding(Level::Warn, TOPIC, text, Some(fix))
    } else {
        finding(Level::Ok, TOPIC, text, None)
    }
}

#[cfg(test)]
mod tests;
