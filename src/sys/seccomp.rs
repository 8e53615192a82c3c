//! The seccomp filter, on by default (`--disable-seccomp` turns it off;
//! slirp4netns's `--enable-seccomp` is accepted): an allowlist of the system
//! calls the running engine makes, applied last, right before the ready fd
//! is written. Anything
//! else kills the whole process (SECCOMP_RET_KILL_PROCESS), as does a call
//! made through another ABI (the filter checks the architecture; on x86_64
//! x32 numbers never match). Never allowed, whatever the engine may grow
//! into: execve/execveat, ptrace, mount and friends, pivot_root, chroot,
//! setns/unshare, module loading, kexec, reboot, bpf, process_vm_*,
//! open_by_handle_at, prctl.
//!
//! The list was taken from `strace -f` of the e2e suites with both flags
//! on (tests/e2e_sandbox.rs), then narrowed where arguments tell safe uses
//! apart: sockets only of the families rlnet uses, files opened read-only
//! (resolv.conf), no executable memory, signals only to COMMAND (`rlnet
//! run`) and ourselves, unlink only in the API socket's directory, ioctls
//! only those std/socket2/glibc make on sockets.
//!
//! fork/clone are answered EPERM instead of killing: a code path that
//! forks late (the splice-mode socket factory, started on first use) then
//! fails cleanly rather than taking every flow with it.
//!
//! Each list is one BPF program laid out as a binary search over the call
//! numbers ([`layout`]: the kernel runs a filter for every number when it
//! loads it, and a linear list made that 0.3 ms on the path to ready).
//!
//! Two other lists: the socket factory's ([`compile_factory`]: sockets and
//! little else) and a named network's daemon's ([`compile_network`]), which
//! must still attach members: it may fork (never with a CLONE_NEW* flag),
//! setns into the member's namespaces (the forked agent), open
//! /dev/net/tun read-write, use netlink sockets and the TUN ioctls, set
//! PR_SET_PDEATHSIG and SIGKILL an agent past its deadline. Everything else
//! above stays forbidden there too.

use std::os::fd::RawFd;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error(
        "seccomp: not supported on {0} (x86_64, aarch64 and riscv64 only); give \
         --disable-seccomp"
    )]
    Arch(&'static str),
    #[error("seccomp: cannot build the filter: {0}")]
    Build(String),
    #[error("seccomp: cannot load the filter: {0}")]
    Load(String),
}

/// What the filter is narrowed to.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// rlnet's own PID (abort() signals itself).
    pub own_pid: i32,
    /// COMMAND of `rlnet run`: signals are forwarded to it.
    pub child: Option<i32>,
    /// The API socket's directory: the socket file is removed with
    /// unlinkat(dir, name) at exit.
    pub api_dir: Option<RawFd>,
    /// Another directory files are removed from at exit (a named
    /// network's record).
    pub other_dir: Option<RawFd>,
}

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
mod layout;

#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
mod imp {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
        TargetArch,
    };

    use super::layout::{self, Entry};
    use super::{Scope, SeccompError};

    /// The compiled filter, ready to load without allocating.
    pub struct Filters {
        prog: BpfProgram,
    }

    fn build(e: impl std::fmt::Display) -> SeccompError {
        SeccompError::Build(e.to_string())
    }

    fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(build)
    }

    /// One rule per value: argument `arg` equals one of `values`.
    fn one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
        values
            .iter()
            .map(|&v| SeccompRule::new(vec![cond(arg, SeccompCmpOp::Eq, v)?]).map_err(build))
            .collect()
    }

    /// Argument `arg` has none of the bits of `mask`.
    fn none_of(arg: u8, mask: u64) -> Result<Vec<SeccompRule>, SeccompError> {
        Ok(vec![
            SeccompRule::new(vec![cond(arg, SeccompCmpOp::MaskedEq(mask), 0)?]).map_err(build)?,
        ])
    }

    /// The system calls the engine makes after start-up, unconditionally.
    fn plain() -> Vec<libc::c_long> {
        let mut v = vec![
            // The event loop and its fds.
            libc::SYS_epoll_pwait,
            libc::SYS_epoll_ctl,
            libc::SYS_ppoll,
            libc::SYS_read,
            libc::SYS_readv,
            libc::SYS_write,
            libc::SYS_writev,
            libc::SYS_pread64,
            libc::SYS_close,
            libc::SYS_fcntl,
            libc::SYS_lseek,
            // Sockets (socket/socketpair are narrowed below).
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_listen,
            libc::SYS_accept4,
            libc::SYS_getsockopt,
            libc::SYS_setsockopt,
            libc::SYS_getsockname,
            libc::SYS_getpeername,
            libc::SYS_shutdown,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_recvmsg,
            libc::SYS_sendmsg,
            libc::SYS_recvmmsg,
            libc::SYS_sendmmsg,
            // Splice-mode published ports.
            libc::SYS_splice,
            libc::SYS_pipe2,
            // resolv.conf: stat and read (openat is narrowed below).
            libc::SYS_newfstatat,
            libc::SYS_fstat,
            libc::SYS_statx,
            libc::SYS_getdents64,
            // Memory (mmap/mprotect are narrowed below).
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_madvise,
            libc::SYS_brk,
            // Time, locks, randomness, identity.
            libc::SYS_clock_gettime,
            libc::SYS_clock_getres,
            libc::SYS_gettimeofday,
            libc::SYS_clock_nanosleep,
            libc::SYS_nanosleep,
            libc::SYS_futex,
            libc::SYS_getrandom,
            libc::SYS_sched_yield,
            libc::SYS_getpid,
            libc::SYS_gettid,
            libc::SYS_getuid,
            libc::SYS_geteuid,
            libc::SYS_getgid,
            libc::SYS_getegid,
            // Signals: the signalfd is read; masks and handlers for abort().
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigaction,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_restart_syscall,
            // COMMAND of `rlnet run` is reaped.
            libc::SYS_wait4,
            libc::SYS_waitid,
            // The end.
            libc::SYS_exit,
            libc::SYS_exit_group,
            // Answered EPERM (`finish_with`), which only a listed call
            // gets: one not listed is a kill.
            libc::SYS_clone,
            libc::SYS_clone3,
        ];
        // x86_64 keeps the older calls glibc still uses there.
        #[cfg(target_arch = "x86_64")]
        v.extend([
            libc::SYS_epoll_wait,
            libc::SYS_poll,
            libc::SYS_stat,
            libc::SYS_lstat,
            libc::SYS_time,
            libc::SYS_fork,
            libc::SYS_vfork,
        ]);
        v
    }

    /// The ioctl rule: what every filter allows, and `extra`. std sets
    /// O_NONBLOCK/FD_CLOEXEC with ioctls on some sockets; if_nametoindex
    /// (scoped IPv6 servers in resolv.conf) asks a socket; the logger may
    /// ask whether stderr is a terminal.
    fn ioctls(extra: &[libc::Ioctl]) -> Result<Vec<SeccompRule>, SeccompError> {
        let base = [
            libc::FIONBIO,
            libc::FIOCLEX,
            libc::FIONCLEX,
            libc::FIONREAD,
            libc::SIOCGIFINDEX as libc::Ioctl,
            libc::TCGETS,
        ];
        let all: Vec<u64> = base
            .iter()
            .chain(extra)
            // The request's type differs between libcs (c_ulong, c_int).
            .map(|&c| {
                #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
                let c = c as u64;
                c
            })
            .collect();
        one_of(1, &all)
    }

    fn allowlist(scope: &Scope) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
            plain().into_iter().map(|n| (n, vec![])).collect();
        let families =
            [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6].map(|f| u64::from(f.cast_unsigned()));
        rules.insert(libc::SYS_socket, one_of(0, &families)?);
        rules.insert(libc::SYS_socketpair, one_of(0, &[libc::AF_UNIX as u64])?);
        // Read-only opens: nothing is ever written or created after start.
        let writes = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC) as u64;
        rules.insert(libc::SYS_openat, none_of(2, writes)?);
        // No executable memory: nothing is loaded after start.
        let exec = libc::PROT_EXEC as u64;
        rules.insert(libc::SYS_mmap, none_of(2, exec)?);
        rules.insert(libc::SYS_mprotect, none_of(2, exec)?);
        rules.insert(libc::SYS_ioctl, ioctls(&[])?);
        // abort() signals its own process. The kernel compares an int
        // argument as its 32-bit pattern, zero-extended.
        let me = u64::from(scope.own_pid.cast_unsigned());
        rules.insert(libc::SYS_tgkill, one_of(0, &[me])?);
        rules.insert(libc::SYS_tkill, one_of(0, &[me])?);
        rules.insert(libc::SYS_kill, {
            let mut pids = vec![me];
            pids.extend(scope.child.map(|c| u64::from(c.cast_unsigned())));
            one_of(0, &pids)?
        });
        let dirs: Vec<u64> = [scope.api_dir, scope.other_dir]
            .into_iter()
            .flatten()
            .map(|d| u64::from(d.cast_unsigned()))
            .collect();
        if !dirs.is_empty() {
            rules.insert(libc::SYS_unlinkat, one_of(0, &dirs)?);
        }
        Ok(rules)
    }

    /// A named network's daemon: the engine's list, plus what attaching a
    /// member takes. The daemon forks the namespace agent (it joins the
    /// member's user and network namespaces, opens /dev/net/tun, makes and
    /// configures the TAP over rtnetlink) and the helper that closes a
    /// member's TAP; both inherit this filter. Forks may not create
    /// namespaces (clone's CLONE_NEW* flags; clone3, whose flags a filter
    /// cannot see, fails with ENOSYS so glibc falls back to clone).
    pub fn compile_network(scope: &Scope) -> Result<Filters, SeccompError> {
        finish_with(network_rules(scope)?, Forks::Allowed)
    }

    fn network_rules(scope: &Scope) -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
        let mut rules = allowlist(scope)?;
        for n in [
            libc::SYS_pidfd_open,
            libc::SYS_setns,
            libc::SYS_set_robust_list,
            libc::SYS_rseq,
            libc::SYS_getppid,
        ] {
            rules.insert(n, vec![]);
        }
        let new_ns = libc::CLONE_NEWNS
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWCGROUP;
        rules.insert(
            libc::SYS_clone,
            none_of(0, u64::from(new_ns.cast_unsigned()))?,
        );
        // The agent dies with the daemon (PR_SET_PDEATHSIG), nothing else.
        rules.insert(
            libc::SYS_prctl,
            one_of(0, &[u64::from(libc::PR_SET_PDEATHSIG.cast_unsigned())])?,
        );
        let families = [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
        ]
        .map(|f| u64::from(f.cast_unsigned()));
        rules.insert(libc::SYS_socket, one_of(0, &families)?);
        // The agent opens /dev/net/tun read-write and the TAP's IPv6
        // sysctls write-only (a path in the member's namespace, so it
        // cannot be opened before): files may be opened for writing, but
        // nothing is created, truncated or appended to. (Narrower would
        // take a process apart that forks the agents; see docs/compat.md,
        // "Confinement".)
        let writes = libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND;
        rules.insert(
            libc::SYS_openat,
            none_of(2, u64::from(writes.cast_unsigned()))?,
        );
        rules.insert(
            libc::SYS_ioctl,
            ioctls(&[
                libc::TUNSETIFF,
                libc::TUNSETVNETHDRSZ,
                libc::TUNSETOFFLOAD,
                libc::SIOCGIFHWADDR as libc::Ioctl,
                // Attaching by a netns path checks what the files are.
                super::super::ns::NS_GET_NSTYPE,
                // Is a member's user namespace a child of the network's
                // (a member for the kernel bridge)?
                super::super::ns::NS_GET_PARENT,
            ])?,
        );
        // An agent past its deadline is killed (SIGKILL to any pid: the
        // daemon's own user's processes are all it may signal anyway).
        let sigkill = u64::from(libc::SIGKILL.cast_unsigned());
        rules
            .entry(libc::SYS_kill)
            .or_default()
            .push(SeccompRule::new(vec![cond(1, SeccompCmpOp::Eq, sigkill)?]).map_err(build)?);
        Ok(rules)
    }

    fn arch() -> Result<TargetArch, SeccompError> {
        TargetArch::try_from(std::env::consts::ARCH).map_err(build)
    }

    pub fn compile(scope: &Scope) -> Result<Filters, SeccompError> {
        finish(allowlist(scope)?)
    }

    /// What the filter does with forks.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Forks {
        /// They fail with EPERM.
        Denied,
        /// Allowed (the first filter narrows clone); clone3 fails with
        /// ENOSYS.
        Allowed,
    }

    /// The socket factory's filter: make sockets, pass them on, nothing
    /// else (and what the allocator and an abort need).
    pub fn compile_factory() -> Result<Filters, SeccompError> {
        finish(factory_rules()?)
    }

    fn factory_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_sendmsg,
            libc::SYS_close,
            libc::SYS_munmap,
            libc::SYS_mremap,
            libc::SYS_madvise,
            libc::SYS_brk,
            libc::SYS_futex,
            libc::SYS_getpid,
            libc::SYS_gettid,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigaction,
            libc::SYS_rt_sigreturn,
            libc::SYS_sigaltstack,
            libc::SYS_restart_syscall,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_clone,
            libc::SYS_clone3,
        ]
        .into_iter()
        .map(|n| (n, vec![]))
        .collect();
        let families = [libc::AF_INET, libc::AF_INET6].map(|f| u64::from(f.cast_unsigned()));
        // TCP and UDP sockets of those families: no raw socket, though it
        // may keep CAP_NET_RAW (for the options below).
        let types = [libc::SOCK_STREAM, libc::SOCK_DGRAM];
        let mut socket = Vec::new();
        for &f in &families {
            for t in types {
                socket.push(
                    SeccompRule::new(vec![
                        cond(0, SeccompCmpOp::Eq, f)?,
                        cond(1, SeccompCmpOp::MaskedEq(0xf), u64::from(t.cast_unsigned()))?,
                    ])
                    .map_err(build)?,
                );
            }
        }
        rules.insert(libc::SYS_socket, socket);
        // The options it sets on the sockets it makes, nothing else:
        // TCP_NODELAY, TCP_CONGESTION and SO_REUSEADDR, and for
        // real-address sockets IP(V6)_TRANSPARENT and SO_MARK.
        let options = [
            (libc::IPPROTO_TCP, libc::TCP_NODELAY),
            (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
            (libc::SOL_SOCKET, libc::SO_REUSEADDR),
            (libc::SOL_IP, libc::IP_TRANSPARENT),
            (libc::SOL_IPV6, libc::IPV6_TRANSPARENT),
            (libc::SOL_SOCKET, libc::SO_MARK),
        ];
        let mut setsockopt = Vec::new();
        for (level, name) in options {
            setsockopt.push(
                SeccompRule::new(vec![
                    cond(1, SeccompCmpOp::Eq, u64::from(level.cast_unsigned()))?,
                    cond(2, SeccompCmpOp::Eq, u64::from(name.cast_unsigned()))?,
                ])
                .map_err(build)?,
            );
        }
        rules.insert(libc::SYS_setsockopt, setsockopt);
        let exec = libc::PROT_EXEC as u64;
        rules.insert(libc::SYS_mmap, none_of(2, exec)?);
        rules.insert(libc::SYS_mprotect, none_of(2, exec)?);
        // std checks that an fd it closes is open (debug builds).
        rules.insert(
            libc::SYS_fcntl,
            one_of(1, &[u64::from(libc::F_GETFD.cast_unsigned())])?,
        );
        let me = std::process::id() as u64;
        rules.insert(libc::SYS_tgkill, one_of(0, &[me])?);
        rules.insert(libc::SYS_kill, one_of(0, &[me])?);
        Ok(rules)
    }

    /// The filter: `rules` allowed, anything else kills; forks fail.
    fn finish(rules: BTreeMap<i64, Vec<SeccompRule>>) -> Result<Filters, SeccompError> {
        finish_with(rules, Forks::Denied)
    }

    /// One program: a listed call whose rules match is allowed, anything
    /// else kills, and the forks `forks_are` names get an errno instead
    /// (when their own rules match). Until 2026-12-05 these were two
    /// filters (seccompiler's linear allowlist, and one for the forks);
    /// `equivalence::one_program_decides_as_the_two_filters_did` checks the
    /// program against them.
    fn finish_with(
        rules: BTreeMap<i64, Vec<SeccompRule>>,
        forks_are: Forks,
    ) -> Result<Filters, SeccompError> {
        let mut entries: BTreeMap<i64, Entry> = rules
            .into_iter()
            .map(|(nr, rules)| (nr, Entry::allow(rules)))
            .collect();
        if forks_are == Forks::Allowed {
            // clone3 fails (below), whatever its flags: glibc falls back to
            // clone, whose flags the rules can see.
            entries.insert(libc::SYS_clone3, Entry::allow(vec![]));
        }
        let (forks, errno) = forks(forks_are);
        for nr in forks {
            // Listed calls only: one not listed stays a kill.
            if let Some(e) = entries.get_mut(&nr) {
                e.verdict = SeccompAction::Errno(errno.cast_unsigned());
            }
        }
        Ok(Filters {
            prog: layout::program(entries, arch()?).map_err(build)?,
        })
    }

    /// The calls that fork, and the errno they get.
    fn forks(forks_are: Forks) -> (Vec<libc::c_long>, i32) {
        match forks_are {
            Forks::Denied => {
                let mut v = vec![libc::SYS_clone, libc::SYS_clone3];
                #[cfg(target_arch = "x86_64")]
                v.extend([libc::SYS_fork, libc::SYS_vfork]);
                (v, libc::EPERM)
            }
            Forks::Allowed => (vec![libc::SYS_clone3], libc::ENOSYS),
        }
    }

    impl Filters {
        /// Load it (sets no_new_privs first). Allocates nothing, so a
        /// forked child of a threaded test may call it.
        pub fn apply(&self) -> Result<(), SeccompError> {
            seccompiler::apply_filter(&self.prog).map_err(|e| SeccompError::Load(e.to_string()))
        }
    }

    #[cfg(test)]
    mod equivalence {
        use std::collections::{BTreeMap, BTreeSet};

        use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule};

        use super::super::layout::interp::{self, Data};
        use super::*;

        /// The filters as they were until 2026-12-05: seccompiler's linear
        /// allowlist (forks listed, so not killed there) and a second
        /// filter answering the forks with an errno.
        fn reference(
            mut rules: BTreeMap<i64, Vec<SeccompRule>>,
            forks_are: Forks,
        ) -> [BpfProgram; 2] {
            if forks_are == Forks::Allowed {
                rules.insert(libc::SYS_clone3, vec![]);
            }
            let allow = SeccompFilter::new(
                rules,
                SeccompAction::KillProcess,
                SeccompAction::Allow,
                arch().unwrap(),
            )
            .unwrap();
            let (forks, errno) = forks(forks_are);
            let deny = SeccompFilter::new(
                forks.into_iter().map(|n| (n, vec![])).collect(),
                SeccompAction::Allow,
                SeccompAction::Errno(errno.cast_unsigned()),
                arch().unwrap(),
            )
            .unwrap();
            [allow.try_into().unwrap(), deny.try_into().unwrap()]
        }

        /// Every value either program compares with, and its neighbours.
        fn pool(progs: &[&BpfProgram]) -> Vec<u64> {
            let mut set = BTreeSet::from([0u64, 1, u64::from(u32::MAX), 1 << 32]);
            for p in progs {
                for i in p.iter().filter(|i| interp::COMPARE.contains(&i.code)) {
                    let k = u64::from(i.k);
                    set.extend([
                        k,
                        k.wrapping_add(1),
                        k.wrapping_sub(1) & 0xffff_ffff,
                        k | 1 << 40,
                    ]);
                }
            }
            set.into_iter().collect()
        }

        /// Same verdict from the one program as from the two filters,
        /// for every number up to past the last listed, x32 numbers,
        /// another arch, and (for the calls with rules) arguments drawn
        /// from the values the programs compare with.
        fn same(rules: BTreeMap<i64, Vec<SeccompRule>>, forks_are: Forks) {
            let [allow, deny] = reference(rules.clone(), forks_are);
            let ours = finish_with(rules.clone(), forks_are).unwrap().prog;
            interp::check_jumps(&ours);
            let values = pool(&[&allow, &ours]);
            let native = allow[1].k;
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = |n: usize| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                usize::try_from(seed % n as u64).unwrap()
            };
            let last = u32::try_from(*rules.keys().last().unwrap()).unwrap();
            let mut checked = 0;
            for nr in (0..last + 40).chain([0x4000_0000, 0x4000_0001, 0x4000_0000 | last]) {
                let ruled = rules.get(&i64::from(nr)).is_some_and(|r| !r.is_empty());
                let tries = if ruled { 3000 } else { 4 };
                for t in 0..tries {
                    let mut args = [0u64; 6];
                    for a in &mut args {
                        *a = values[next(values.len())];
                    }
                    let arch = if t == 1 { native ^ 0x40 } else { native };
                    let d = Data { nr, arch, args };
                    let want =
                        interp::strictest(&[interp::run(&allow, &d), interp::run(&deny, &d)]);
                    assert_eq!(
                        interp::run(&ours, &d),
                        want,
                        "nr {nr} arch {arch:#x} args {args:?}"
                    );
                    checked += 1;
                }
            }
            assert!(checked > 1000);
        }

        #[test]
        fn one_program_decides_as_the_two_filters_did() {
            let scope = Scope {
                own_pid: 4242,
                child: Some(4343),
                api_dir: Some(7),
                other_dir: Some(9),
            };
            same(allowlist(&scope).unwrap(), Forks::Denied);
            same(factory_rules().unwrap(), Forks::Denied);
            same(network_rules(&scope).unwrap(), Forks::Allowed);
        }
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
mod imp {
    use super::{Scope, SeccompError};

    pub struct Filters;

    pub fn compile(_: &Scope) -> Result<Filters, SeccompError> {
        Err(SeccompError::Arch(std::env::consts::ARCH))
    }

    pub fn compile_factory() -> Result<Filters, SeccompError> {
        Err(SeccompError::Arch(std::env::consts::ARCH))
    }

    pub fn compile_network(_: &Scope) -> Result<Filters, SeccompError> {
        Err(SeccompError::Arch(std::env::consts::ARCH))
    }

    impl Filters {
        pub fn apply(&self) -> Result<(), SeccompError> {
            Err(SeccompError::Arch(std::env::consts::ARCH))
        }
    }
}

pub use imp::{Filters, compile, compile_factory, compile_network};

#[cfg(all(
    test,
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
))]
mod tests {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, fork};

    use super::*;

    /// Fork, load the filters in the child, run `then` there (its return
    /// value is the exit status), and report how the child ended. The
    /// child only makes raw system calls after fork (the test harness is
    /// threaded).
    fn in_filtered_child(then: fn() -> i32) -> WaitStatus {
        let scope = Scope {
            own_pid: 0,
            child: None,
            api_dir: None,
            other_dir: None,
        };
        let filters = compile(&scope).expect("compile");
        // SAFETY: the child calls only async-signal-safe functions (prctl,
        // seccomp, raw syscalls, _exit): no locks, no allocation.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let code = match filters.apply() {
                    Ok(()) => then(),
                    Err(_) => 100,
                };
                // SAFETY: _exit has no preconditions and never returns.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
        }
    }

    fn sigsys(st: WaitStatus) -> bool {
        matches!(st, WaitStatus::Signaled(_, Signal::SIGSYS, _))
    }

    #[test]
    fn allowed_calls_work() {
        let st = in_filtered_child(|| {
            // SAFETY: plain syscalls with integer arguments.
            unsafe {
                let pid = libc::getpid();
                let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                if pid <= 0 || s < 0 || libc::close(s) != 0 {
                    return 1;
                }
            }
            0
        });
        assert_eq!(st, WaitStatus::Exited(st.pid().unwrap(), 0));
    }

    #[test]
    fn execve_kills_the_process() {
        let st = in_filtered_child(|| {
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            let envp = [std::ptr::null()];
            // SAFETY: valid NUL-terminated path and NULL-terminated arrays.
            unsafe { libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            2
        });
        assert!(sigsys(st), "execve was not killed: {st:?}");
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // syscall returns -1 or 0 here
    fn forbidden_calls_kill_the_process() {
        // Each makes one raw call with integer or NULL arguments; the
        // filter stops it before the kernel acts.
        let cases: [fn() -> i32; 5] = [
            // SAFETY: see above.
            || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS) as i32 },
            // SAFETY: see above.
            || unsafe { libc::syscall(libc::SYS_setns, 0, 0) as i32 },
            // SAFETY: see above.
            || unsafe { libc::syscall(libc::SYS_ptrace, 0, 0, 0, 0) as i32 },
            // SAFETY: see above.
            || unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) },
            // SAFETY: see above.
            || unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0) },
        ];
        for (i, f) in cases.into_iter().enumerate() {
            let st = in_filtered_child(f);
            assert!(sigsys(st), "case {i} was not killed: {st:?}");
        }
    }

    #[test]
    fn opening_for_writing_kills_the_process() {
        let st = in_filtered_child(|| {
            // SAFETY: valid NUL-terminated path.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY) }
        });
        assert!(sigsys(st), "open for writing was not killed: {st:?}");
        let st = in_filtered_child(|| {
            // SAFETY: valid NUL-terminated path.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            i32::from(fd < 0)
        });
        assert_eq!(st, WaitStatus::Exited(st.pid().unwrap(), 0));
    }

    #[test]
    fn fork_fails_with_eperm() {
        let st = in_filtered_child(|| {
            // SAFETY: raw clone(SIGCHLD) = fork; the filter answers it.
            let rc = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
            if rc == -1 && nix::Error::last() == nix::Error::EPERM {
                0
            } else {
                3
            }
        });
        assert_eq!(st, WaitStatus::Exited(st.pid().unwrap(), 0));
    }
}
