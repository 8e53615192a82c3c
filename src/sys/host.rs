//! `rlnet check`'s facts about the host (judged by check.rs):
//! sysctls, /dev/net/tun, AppArmor, limits, and a probe that creates what
//! `rlnet run` creates — a user namespace, a network namespace in it and a
//! TAP in that — in a short-lived child, so nothing of it stays.

use std::io::Read;
use std::os::fd::OwnedFd;

use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::stat::{SFlag, major, minor, stat};
use nix::sys::wait::waitpid;
use nix::unistd::{getegid, geteuid, getgid, getgroups};

use super::os;
use super::tap::{Tap, TapError};

/// What was found out about the host, for the user running `rlnet check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub euid: u32,
    /// The gid and the supplementary groups (ping sockets go by group).
    pub groups: Vec<u32>,
    /// kernel.unprivileged_userns_clone (Debian's and Ubuntu's kernels);
    /// None when the kernel has no such switch.
    pub userns_clone: Option<u64>,
    /// user.max_user_namespaces.
    pub max_user_namespaces: Option<u64>,
    /// Creating what `rlnet run` creates: a user namespace, a network
    /// namespace in it, and a TAP in that.
    pub probe: Probe,
    pub tun: Tun,
    pub apparmor: AppArmor,
    /// net.ipv4.ping_group_range.
    pub ping_group_range: Option<(u32, u32)>,
    /// net.ipv4.ip_unprivileged_port_start.
    pub unprivileged_port_start: Option<u32>,
    /// RLIMIT_NOFILE (soft, hard).
    pub nofile: Option<(u64, u64)>,
}

/// How the namespace probe went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Ok,
    /// The step that failed, with its errno.
    Failed(Step, i32),
    /// The probe itself could not run (no process for it); the errno.
    NotRun(i32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// unshare(CLONE_NEWUSER).
    UserNs,
    /// Writing the new namespace's uid and gid maps.
    MapIds,
    /// unshare(CLONE_NEWNET) in the new user namespace.
    NetNs,
    /// Opening /dev/net/tun and creating a TAP in the new namespace.
    Tap,
}

/// /dev/net/tun as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tun {
    pub exists: bool,
    /// A character device 10:200, the TUN/TAP device.
    pub is_tun: bool,
    /// Permission bits.
    pub mode: u32,
    /// Opening it for reading and writing: Ok, or the errno.
    pub open: Result<(), i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppArmor {
    /// Whether AppArmor is enabled; None when unknown.
    pub enabled: Option<bool>,
    /// kernel.apparmor_restrict_unprivileged_userns; None when absent.
    pub restrict_userns: Option<u64>,
    /// A loaded profile named `rlnet` or `.../rlnet`; None when the list of
    /// profiles cannot be read.
    pub rlnet_profile: Option<bool>,
    /// The AppArmor label `rlnet check` runs under ("unconfined" or a
    /// profile name).
    pub label: Option<String>,
}

/// The TUN/TAP device's numbers.
const TUN_MAJOR: u64 = 10;
const TUN_MINOR: u64 = 200;

/// Everything `rlnet check` judges. Call while single-threaded
/// (the probe forks).
pub fn gather() -> Facts {
    let mut groups = vec![getgid().as_raw()];
    groups.extend(
        getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_raw()),
    );
    groups.dedup();
    Facts {
        euid: geteuid().as_raw(),
        groups,
        userns_clone: sysctl("kernel/unprivileged_userns_clone"),
        max_user_namespaces: sysctl("user/max_user_namespaces"),
        probe: probe(),
        tun: tun(),
        apparmor: apparmor(),
        ping_group_range: ping_group_range(),
        unprivileged_port_start: sysctl("net/ipv4/ip_unprivileged_port_start"),
        nofile: getrlimit(Resource::RLIMIT_NOFILE).ok(),
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A numeric sysctl under /proc/sys.
fn sysctl<T: std::str::FromStr>(name: &str) -> Option<T> {
    read(&format!("/proc/sys/{name}"))?.trim().parse().ok()
}

fn ping_group_range() -> Option<(u32, u32)> {
    let text = read("/proc/sys/net/ipv4/ping_group_range")?;
    let mut it = text.split_whitespace().map(str::parse::<u32>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Some((lo, hi)),
        _ => None,
    }
}

fn tun() -> Tun {
    let path = "/dev/net/tun";
    let Ok(st) = stat(path) else {
        return Tun {
            exists: false,
            is_tun: false,
            mode: 0,
            open: Err(libc::ENOENT),
        };
    };
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    let open = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(drop)
    .map_err(|e| e as i32);
    Tun {
        exists: true,
        is_tun: is_char && major(st.st_rdev) == TUN_MAJOR && minor(st.st_rdev) == TUN_MINOR,
        mode: st.st_mode & 0o7777,
        open,
    }
}

fn apparmor() -> AppArmor {
    let enabled = read("/sys/module/apparmor/parameters/enabled").map(|v| v.trim() == "Y");
    let rlnet_profile = read("/sys/kernel/security/apparmor/profiles").map(|list| {
        list.lines()
            .filter_map(|l| l.rsplit_once(" (").map(|(name, _)| name))
            .any(|name| name == "rlnet" || name.ends_with("/rlnet"))
    });
    // Only AppArmor's own file: /proc/self/attr/current may be another LSM's.
    let label = if enabled == Some(true) {
        read("/proc/self/attr/apparmor/current")
            .or_else(|| read("/proc/self/attr/current"))
            .map(|l| l.trim_end_matches(['\n', '\0']).trim().to_string())
            // "NAME (MODE)": the name is what matters.
            .map(|l| match l.rsplit_once(" (") {
                Some((name, _)) => name.to_string(),
                None => l,
            })
    } else {
        None
    };
    AppArmor {
        enabled,
        restrict_userns: sysctl("kernel/apparmor_restrict_unprivileged_userns"),
        rlnet_profile,
        label,
    }
}

/// Runs [`probe_child`] in a child and reads its verdict: 0 = success, or
/// the failed step (1-4) and its errno.
fn probe() -> Probe {
    let (rd, wr) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Probe::NotRun(e as i32),
    };
    let child = match os::fork() {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            drop(rd);
            let verdict = probe_child();
            let mut msg = [0u8; 5];
            if let Err((step, errno)) = verdict {
                msg[0] = step_code(step);
                msg[1..].copy_from_slice(&errno.to_le_bytes());
            }
            let _ = nix::unistd::write(&wr, &msg);
            os::exit_now(0);
        }
        Err(e) => return Probe::NotRun(e as i32),
    };
    drop(wr);
    let mut msg = Vec::new();
    let _ = std::fs::File::from(rd).read_to_end(&mut msg);
    let _ = waitpid(child, None);
    let Ok(msg) = <[u8; 5]>::try_from(msg.as_slice()) else {
        // The child died before it could say (a seccomp kill, say).
        return Probe::Failed(Step::UserNs, libc::EPERM);
    };
    let errno = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
    match msg[0] {
        0 => Probe::Ok,
        1 => Probe::Failed(Step::UserNs, errno),
        2 => Probe::Failed(Step::MapIds, errno),
        3 => Probe::Failed(Step::NetNs, errno),
        _ => Probe::Failed(Step::Tap, errno),
    }
}

fn step_code(step: Step) -> u8 {
    match step {
        Step::UserNs => 1,
        Step::MapIds => 2,
        Step::NetNs => 3,
        Step::Tap => 4,
    }
}

/// In the child: what `rlnet run` does first. The namespaces and the TAP
/// go away with the child.
fn probe_child() -> Result<(), (Step, i32)> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| (Step::UserNs, e as i32))?;
    let map = |path: &str, text: String| {
        std::fs::write(path, text)
            .map_err(|e| (Step::MapIds, e.raw_os_error().unwrap_or(libc::EPERM)))
    };
    map("/proc/self/uid_map", format!("0 {uid} 1"))?;
    map("/proc/self/setgroups", "deny".into())?;
    map("/proc/self/gid_map", format!("0 {gid} 1"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| (Step::NetNs, e as i32))?;
    let tap: Result<OwnedFd, TapError> = Tap::open("rlnetcheck0").map(Tap::into_fd);
    tap.map(drop).map_err(|e| (Step::Tap, tap_errno(&e)))
}

fn tap_errno(e: &TapError) -> i32 {
    match e {
        TapError::TunAccess(e) | TapError::TunOpen(e) => *e as i32,
        TapError::TunMissing => libc::ENOENT,
        TapError::Busy { err, .. }
        | TapError::SetIff { err, .. }
        | TapError::VnetHdr { err, .. } => *err as i32,
        TapError::Name(_) => libc::EINVAL,
    }
}
