//! The sandbox, on by default (`--disable-sandbox` turns it off;
//! slirp4netns's `--enable-sandbox` is accepted): once set up, rlnet
//! confines itself, as slirp4netns does (and a little more):
//!
//! 1. Privilege over a new mount namespace without using any outside it:
//!    as root with CAP_SYS_ADMIN (Podman runs us as root in its rootless
//!    user namespace) nothing changes; otherwise rlnet creates a user
//!    namespace of its own, mapping its uid to root, or, where it may not
//!    create and map one, joins the target's, where it must be root.
//! 2. A private mount namespace whose root is a small read-only tmpfs
//!    holding only /etc and /run (read-only, nosuid, nodev, noexec) and the
//!    directory of the resolv.conf the DNS stub follows, when that lies
//!    elsewhere (the directory, not the file: the file is usually replaced
//!    by rename, and a bind of the old inode would never change).
//! 3. No new privileges, and no capability but CAP_NET_BIND_SERVICE (if
//!    rlnet had it) in any set.
//!
//! rlnet stays dumpable, as slirp4netns does, so its own user can inspect
//! it (slirp4netns's own sandbox test reads /proc/PID/root). The namespace's
//! root cannot: rlnet's user namespace is its own, a sibling of the
//! target's, over which the target's root has no capability. Only when
//! rlnet had to join the target's user namespace does it also make itself
//! not dumpable: there the target's root holds every capability over
//! rlnet's credentials, and the dumpable flag is what keeps it from
//! ptracing rlnet (docs/compat.md).
//!
//! Everything rlnet needs later is open before this runs: the TAP, sockets
//! in the host's namespace (created freely afterwards: a user namespace
//! changes nothing there), the API listener with a handle on its directory
//! (to remove the socket file at exit), pidfds and the signalfd.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, getegid, geteuid, pivot_root};
use thiserror::Error;

use super::os;

/// Where the new root is built: every distribution has /tmp, and the mount
/// only exists in rlnet's private mount namespace.
const BUILD_AT: &str = "/tmp";
/// The trees every sandbox shows (as slirp4netns): configuration and
/// runtime state, where resolv.conf and its usual symlink targets live.
const TREES: [&str; 2] = ["/etc", "/run"];
/// Symlinks followed when resolving a kept path (as the kernel's 40).
const MAX_LINKS: usize = 40;

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("sandbox: rlnet must be single-threaded to enter a user namespace (internal error)")]
    Threads,
    #[error(
        "sandbox: cannot join the target's user namespace: {0}; run rlnet as the user \
         that owns the namespace"
    )]
    JoinUserns(nix::Error),
    #[error(
        "sandbox: rlnet's uid is {seen} in the target's user namespace, not 0; run \
         rlnet as the user the namespace maps to root"
    )]
    NotRootThere { seen: u32 },
    #[error(
        "sandbox: cannot create a user namespace ({0}); give the target's with \
         --userns-path, run rlnet as root in the namespace's user namespace (as Podman does), or \
         allow unprivileged user namespaces (sysctl user.max_user_namespaces); --disable-sandbox \
         turns the sandbox off"
    )]
    NewUserns(String),
    #[error(
        "sandbox: the directory of --resolv-conf {path} does not exist; create it or \
         point --resolv-conf at an existing directory"
    )]
    ResolvDir { path: String },
    #[error("sandbox: {what}: {err}")]
    Sys { what: String, err: nix::Error },
    #[error("sandbox: {what}: {err}")]
    Caps {
        what: String,
        err: caps::errors::CapsError,
    },
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> SandboxError {
    let what = what.into();
    move |err| SandboxError::Sys { what, err }
}

/// A path that must resolve inside the sandbox as it does outside.
#[derive(Debug, Clone)]
pub struct Keep {
    pub path: PathBuf,
    /// The user named it (`--resolv-conf`): a missing directory is an
    /// error, not a warning.
    pub required: bool,
}

/// What to do.
#[derive(Debug)]
pub struct Plan<'a> {
    /// The target's user namespace, when it is not rlnet's own.
    pub userns: Option<BorrowedFd<'a>>,
    pub keep: Vec<Keep>,
}

/// Confine the calling process (see the module docs). On error the process
/// may be half-confined; the caller exits.
pub fn enter(plan: &Plan<'_>) -> Result<(), SandboxError> {
    // Resolved before any change, in the caller's view of the filesystem.
    let layout = Layout::new(&plan.keep)?;
    let userns = gain_mount_privilege(plan.userns)?;
    build_root(&layout)?;
    drop_privileges(userns)
}

/// Which user namespace rlnet ended up in for its mount privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Userns {
    /// The one it runs in (it was root with CAP_SYS_ADMIN there already).
    Kept,
    /// A new one of its own.
    Own,
    /// The target's: its root has every capability over rlnet.
    Target,
}

/// Step 1: CAP_SYS_ADMIN over a user namespace we may create a mount
/// namespace in.
fn gain_mount_privilege(userns: Option<BorrowedFd<'_>>) -> Result<Userns, SandboxError> {
    let admin = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN);
    if geteuid().is_root() && admin.unwrap_or(false) {
        return Ok(Userns::Kept);
    }
    // setns(CLONE_NEWUSER) and unshare(CLONE_NEWUSER) refuse threaded callers.
    if !os::single_threaded() {
        return Err(SandboxError::Threads);
    }
    // Where AppArmor restricts user namespaces, creating one may succeed
    // without giving any capability in it; and root of a user namespace
    // without CAP_SETFCAP may create one but not map itself into it (Linux
    // 5.12 and later). There is no way back from either: join the target's
    // instead.
    let can_map_self = !geteuid().is_root()
        || caps::has_cap(None, CapSet::Effective, Capability::CAP_SETFCAP).unwrap_or(false);
    let create = userns.is_none() || (can_map_self && !userns_creation_restricted());
    if create {
        let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
        match unshare(CloneFlags::CLONE_NEWUSER) {
            Ok(()) => {
                map_own_ids(uid, gid)?;
                return Ok(Userns::Own);
            }
            Err(e) if userns.is_none() => {
                return Err(SandboxError::NewUserns(e.desc().to_string()));
            }
            Err(e) => {
                log::debug!("sandbox: cannot create a user namespace ({e}); joining the target's")
            }
        }
    }
    let Some(fd) = userns else {
        return Err(SandboxError::NewUserns(
            "AppArmor restricts unprivileged user namespaces".into(),
        ));
    };
    setns(fd, CloneFlags::CLONE_NEWUSER).map_err(SandboxError::JoinUserns)?;
    // Joining gives every capability there. The uid does not change, only
    // how it is seen: it must be root (what callers map us to), or the API
    // socket's peer check could not tell our user from unmapped ones.
    let seen = geteuid().as_raw();
    if seen != 0 {
        return Err(SandboxError::NotRootThere { seen });
    }
    Ok(Userns::Target)
}

/// In a user namespace just created: our uid and gid as root.
fn map_own_ids(uid: u32, gid: u32) -> Result<(), SandboxError> {
    let w = |path: &str, text: String| {
        std::fs::write(path, text).map_err(|e| SandboxError::NewUserns(format!("{path}: {e}")))
    };
    w("/proc/self/uid_map", format!("0 {uid} 1"))?;
    // Required before an unprivileged process may write gid_map.
    w("/proc/self/setgroups", "deny".into())?;
    w("/proc/self/gid_map", format!("0 {gid} 1"))
}

/// kernel.apparmor_restrict_unprivileged_userns (Ubuntu 23.10 and later).
fn userns_creation_restricted() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .is_ok_and(|v| v.trim() == "1")
}

/// What the new root holds, worked out from the kept paths.
#[derive(Debug, Default, PartialEq, Eq)]
struct Layout {
    /// Bound read-only at the same path: directories (or, for a file in
    /// `/`, the file itself).
    binds: Vec<PathBuf>,
    /// Symlinks outside the bound trees that a kept path goes through,
    /// recreated as they are: (where, target).
    links: Vec<(PathBuf, PathBuf)>,
    /// A kept path was relative: keep the working directory too.
    cwd: Option<PathBuf>,
}

impl Layout {
    fn new(keep: &[Keep]) -> Result<Layout, SandboxError> {
        let mut l = Layout::default();
        for t in TREES {
            if Path::new(t).is_dir() {
                l.binds.push(PathBuf::from(t));
            }
        }
        for k in keep {
            let abs = if k.path.is_absolute() {
                k.path.clone()
            } else {
                let cwd = std::env::current_dir().map_err(|e| SandboxError::Sys {
                    what: "the working directory".into(),
                    err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
                })?;
                l.cwd = Some(cwd.clone());
                cwd.join(&k.path)
            };
            let (file, links) = resolve(&abs);
            let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
            if !l.covered(&file) {
                if dir == Path::new("/") {
                    // Binding / would undo the sandbox: bind the file. A
                    // replacement by rename is then not seen.
                    if file.exists() {
                        log::warn!(
                            "sandbox: {} is in /: later replacements of it are not seen",
                            file.display()
                        );
                        l.binds.push(file.clone());
                    }
                } else if dir.is_dir() {
                    l.binds.push(dir);
                } else if k.required {
                    return Err(SandboxError::ResolvDir {
                        path: k.path.display().to_string(),
                    });
                } else {
                    log::warn!(
                        "sandbox: {} does not exist; DNS keeps the servers it has",
                        dir.display()
                    );
                }
            }
            for link in links {
                if !l.links.contains(&link) {
                    l.links.push(link);
                }
            }
        }
        l.binds = outermost(std::mem::take(&mut l.binds));
        let links = std::mem::take(&mut l.links);
        l.links = links.into_iter().filter(|(at, _)| !l.covered(at)).collect();
        Ok(l)
    }

    /// True when `p` is visible through a bind.
    fn covered(&self, p: &Path) -> bool {
        self.binds.iter().any(|b| p.starts_with(b))
    }
}

/// Binds with nested ones removed (the outer one shows them).
fn outermost(mut binds: Vec<PathBuf>) -> Vec<PathBuf> {
    binds.sort_by_key(|p| p.components().count());
    let mut out: Vec<PathBuf> = Vec::new();
    for b in binds {
        if !out.iter().any(|o| b.starts_with(o)) {
            out.push(b);
        }
    }
    out
}

/// Resolve an absolute path like the kernel does, returning the final path
/// (free of symlinks; a missing tail is kept as written) and every symlink
/// passed on the way, as (where, target).
fn resolve(path: &Path) -> (PathBuf, Vec<(PathBuf, PathBuf)>) {
    fn push_rev(stack: &mut Vec<OsString>, p: &Path) {
        let parts: Vec<OsString> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect();
        stack.extend(parts.into_iter().rev());
    }
    let mut todo = Vec::new();
    push_rev(&mut todo, path);
    let mut cur = PathBuf::from("/");
    let mut links = Vec::new();
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&part);
        let is_link = std::fs::symlink_metadata(&next).is_ok_and(|m| m.file_type().is_symlink());
        match (is_link, std::fs::read_link(&next)) {
            (true, Ok(target)) if links.len() < MAX_LINKS => {
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push_rev(&mut todo, &target);
                links.push((next, target));
            }
            _ => cur = next,
        }
    }
    (cur, links)
}

/// Where `p` (absolute) appears while the new root is built.
fn staged(p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    Path::new(BUILD_AT).join(rel)
}

fn mkdir_all(p: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(p).map_err(|e| SandboxError::Sys {
        what: format!("create {}", p.display()),
        err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })
}

/// Enter a new mount namespace whose mounts never propagate back to the
/// caller's. On failure, the step that failed and its error.
pub(super) fn private_mount_namespace() -> Result<(), (&'static str, nix::Error)> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| ("new mount namespace", e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| ("make / private", e))
}

/// Step 2: the new mount namespace and root.
fn build_root(layout: &Layout) -> Result<(), SandboxError> {
    // Unmounting the old root later must not unmount anything outside.
    private_mount_namespace().map_err(|(what, err)| sys(what)(err))?;
    // Sources are opened first: the tmpfs hides whatever is under /tmp.
    let mut sources = Vec::new();
    for b in &layout.binds {
        let fd = open(b.as_path(), OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys(format!("open {}", b.display())))?;
        sources.push((b, fd, b.is_dir()));
    }
    mount(
        Some("tmpfs"),
        BUILD_AT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64k,nr_inodes=128,mode=0755"),
    )
    .map_err(sys(format!("mount a tmpfs on {BUILD_AT}")))?;
    for (path, fd, is_dir) in &sources {
        bind_read_only(path, fd, *is_dir)?;
    }
    for (at, target) in &layout.links {
        let s = staged(at);
        if let Some(parent) = s.parent() {
            mkdir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, &s).map_err(|e| SandboxError::Sys {
            what: format!("recreate the symlink {}", at.display()),
            err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    }
    if let Some(cwd) = &layout.cwd {
        mkdir_all(&staged(cwd))?;
    }
    drop(sources);
    // pivot_root(".", "."): the old root ends up stacked on the new one and
    // is detached at once; no directory for it is needed.
    chdir(BUILD_AT).map_err(sys(format!("chdir {BUILD_AT}")))?;
    pivot_root(".", ".").map_err(sys("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach the old root"))?;
    chdir("/").map_err(sys("chdir /"))?;
    // Best effort, as slirp4netns: the tmpfs holds nothing worth writing.
    let _ = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    if let Some(cwd) = &layout.cwd {
        // Relative paths (a relative --resolv-conf) keep resolving.
        let _ = chdir(cwd.as_path());
    }
    Ok(())
}

/// Bind `src` (open as `fd`) at its own path in the new root, read-only,
/// nosuid, nodev and noexec, submounts included.
fn bind_read_only(src: &Path, fd: &OwnedFd, is_dir: bool) -> Result<(), SandboxError> {
    let target = staged(src);
    if is_dir {
        mkdir_all(&target)?;
    } else {
        if let Some(parent) = target.parent() {
            mkdir_all(parent)?;
        }
        std::fs::File::create(&target).map_err(|e| SandboxError::Sys {
            what: format!("create {}", target.display()),
            err: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    }
    let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(via.as_str()),
        target.as_path(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("bind {}", src.display())))?;
    let flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if mount_setattr_recursive(&target, flags).is_ok() {
        return Ok(());
    }
    // Kernels before 5.12: the top mount only (what slirp4netns does).
    // Flags the kernel locked (atime) are kept by MS_REMOUNT on its own.
    mount(
        None::<&str>,
        target.as_path(),
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(sys(format!("make {} read-only", src.display())))
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn mount_setattr_recursive(path: &Path, set: u64) -> nix::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| nix::Error::EINVAL)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: 0,
    };
    // SAFETY: `c` is a valid NUL-terminated path and `attr` a properly laid
    // out struct mount_attr whose size is passed; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Step 3: no new privileges, no capabilities but CAP_NET_BIND_SERVICE,
/// and not dumpable in the target's user namespace (see the module docs).
fn drop_privileges(userns: Userns) -> Result<(), SandboxError> {
    nix::sys::prctl::set_no_new_privs().map_err(sys("PR_SET_NO_NEW_PRIVS"))?;
    if userns == Userns::Target {
        nix::sys::prctl::set_dumpable(false).map_err(sys("PR_SET_DUMPABLE"))?;
    }
    drop_capabilities()
}

/// Clears the ambient set, drops every capability but
/// CAP_NET_BIND_SERVICE from the bounding set, and sets effective =
/// permitted = inheritable = {CAP_NET_BIND_SERVICE} (if it was permitted).
/// That one is kept so that published ports below
/// net.ipv4.ip_unprivileged_port_start still work for a root caller.
pub fn drop_capabilities() -> Result<(), SandboxError> {
    drop_capabilities_but(Some(Capability::CAP_NET_BIND_SERVICE))
}

/// Clears the ambient set, drops every capability but `keep` from the
/// bounding set, and sets effective = permitted = inheritable = {`keep`}
/// (if it was permitted; with None, nothing).
pub fn drop_capabilities_but(keep_cap: Option<Capability>) -> Result<(), SandboxError> {
    drop_capabilities_except(keep_cap.as_slice())
}

/// [`drop_capabilities_but`] for several: every set holds at most `keeps`
/// (those that were permitted).
pub fn drop_capabilities_except(keeps: &[Capability]) -> Result<(), SandboxError> {
    let caps_err = |what: String| move |err| SandboxError::Caps { what, err };
    // A kernel without ambient capabilities (< 4.3) has nothing to clear.
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient)
            .map_err(caps_err("clear the ambient capabilities".into()))?;
    }
    // Every capability this kernel knows (the crate's list reaches
    // CAP_CHECKPOINT_RESTORE, the last one as of Linux 6.x). Anything newer
    // would stay in the bounding set only, which grants nothing: permitted is
    // set whole below, and no_new_privs stops exec from adding to it.
    // Shrinking it takes CAP_SETPCAP; a process without it (an ordinary
    // user's named-network daemon) keeps its bounding set, which grants
    // nothing either.
    let may_shrink = caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)
        .map_err(caps_err("capget".into()))?;
    for cap in caps::runtime::thread_all_supported() {
        if may_shrink && !keeps.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err(format!("drop {cap} from the bounding set")))?;
        }
    }
    let mut keep = CapsHashSet::new();
    for &cap in keeps {
        if caps::has_cap(None, CapSet::Permitted, cap).map_err(caps_err("capget".into()))? {
            keep.insert(cap);
        }
    }
    // Effective first: it must stay within permitted at every step.
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        caps::set(None, set, &keep).map_err(caps_err(format!("capset {set:?}")))?;
    }
    Ok(())
}

/// A duplicate of `fd` numbered above `floor`: fds the caller names by
/// number (the ready and exit fds) are looked up later, and a duplicate
/// must not take a number one of them would have had if it was closed.
pub fn dup_above(fd: BorrowedFd<'_>, floor: i32) -> nix::Result<OwnedFd> {
    let new = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(floor.max(2) + 1))?;
    // SAFETY: `new` was just created and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rlnet-sbx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn resolve_follows_chains_and_keeps_missing_tails() {
        let d = tmpdir("resolve");
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/file"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("abs")).unwrap();
        std::os::unix::fs::symlink("abs/file", d.join("rel")).unwrap();
        let (end, links) = resolve(&d.join("rel"));
        assert_eq!(end, d.join("real/file"));
        assert_eq!(
            links,
            vec![
                (d.join("rel"), PathBuf::from("abs/file")),
                (d.join("abs"), d.join("real")),
            ]
        );
        let (end, links) = resolve(&d.join("real/missing/x"));
        assert_eq!(end, d.join("real/missing/x"));
        assert!(links.is_empty());
        // A loop ends instead of spinning.
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let (_, links) = resolve(&d.join("loop"));
        assert_eq!(links.len(), MAX_LINKS);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn layout_binds_the_directory_and_recreates_links() {
        let d = tmpdir("layout");
        std::fs::create_dir(d.join("dns")).unwrap();
        std::fs::write(d.join("dns/resolv.conf"), "nameserver 192.0.2.1\n").unwrap();
        std::os::unix::fs::symlink(d.join("dns/resolv.conf"), d.join("link.conf")).unwrap();
        let l = Layout::new(&[Keep {
            path: d.join("link.conf"),
            required: true,
        }])
        .unwrap();
        assert!(l.binds.contains(&d.join("dns")), "{l:?}");
        assert!(l.binds.contains(&PathBuf::from("/etc")), "{l:?}");
        assert_eq!(
            l.links,
            vec![(d.join("link.conf"), d.join("dns/resolv.conf"))]
        );
        assert_eq!(l.cwd, None);
        // Under /etc: nothing extra.
        let l = Layout::new(&[Keep {
            path: PathBuf::from("/etc/hostname-does-not-matter"),
            required: false,
        }])
        .unwrap();
        assert!(
            l.binds
                .iter()
                .all(|b| TREES.iter().any(|t| b == Path::new(t))),
            "{l:?}"
        );
        // A missing directory the user named is an error.
        let e = Layout::new(&[Keep {
            path: d.join("nope/resolv.conf"),
            required: true,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn nested_binds_collapse() {
        let b = outermost(vec![
            PathBuf::from("/a/b/c"),
            PathBuf::from("/a"),
            PathBuf::from("/ab"),
            PathBuf::from("/a/b"),
        ]);
        assert_eq!(b, vec![PathBuf::from("/a"), PathBuf::from("/ab")]);
    }
}
