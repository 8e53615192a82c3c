//! The host's resolv.conf: which servers to forward to, and noticing when
//! the file changes.
//!
//! - Every `nameserver` line, in order, on port 53 (not only the first three
//!   as libc does), duplicates removed, at most [`MAX_UPSTREAMS`].
//! - Parsed with the `resolv-conf` crate in best-effort mode: an unknown
//!   option or a bad line (Solaris `options retrans:3`, aardvark-dns #418)
//!   costs that line only.
//! - IPv6 link-local servers need their interface: `fe80::1%eth0` is used
//!   with eth0's index (looked up in the host's namespace, where rlnet
//!   runs); without a usable scope the entry is skipped.
//! - Missing, unreadable, empty or junk: no servers. The stub then answers
//!   SERVFAIL at once instead of hanging. Only the first [`MAX_FILE`] bytes
//!   are read.
//! - Change detection: the path is stat'ed (following symlinks: the file is
//!   usually a link into /run, replaced by rename) at most once per
//!   [`CHECK_INTERVAL_US`], when a query needs the servers, never on a
//!   timer. Device, inode, size, mtime and ctime are compared; any
//!   difference re-reads the file. If the file cannot be stat'ed or read any
//!   more after it was read once (deleted for a moment, or no longer visible
//!   from a sandbox), the last servers are kept.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::AddrPlan;

/// Most upstream servers used.
pub const MAX_UPSTREAMS: usize = 16;
/// Most bytes of resolv.conf read.
pub const MAX_FILE: u64 = 64 * 1024;
/// How often the file may be stat'ed, at most.
pub const CHECK_INTERVAL_US: i64 = 1_000_000;

/// Servers named in resolv.conf text `bytes`, in order, as port-53 socket
/// addresses, with `ifindex` resolving IPv6 scope names. Unusable entries
/// are left out (see [`usable_upstream`] for the rest of the rules).
pub fn parse(bytes: &[u8], ifindex: impl Fn(&str) -> Option<u32>) -> Vec<SocketAddr> {
    let (cfg, _errors) = resolv_conf::Config::parse_with_errors(bytes);
    let mut out: Vec<SocketAddr> = Vec::new();
    for ns in &cfg.nameservers {
        let addr = match ns {
            resolv_conf::ScopedIp::V4(a) => SocketAddr::new(IpAddr::V4(*a), 53),
            resolv_conf::ScopedIp::V6(a, scope) => {
                let scope_id = match scope.as_deref() {
                    None => 0,
                    Some(s) => match s.parse::<u32>().ok().or_else(|| ifindex(s)) {
                        Some(i) => i,
                        None => continue,
                    },
                };
                if is_link_local6(a) && scope_id == 0 {
                    continue;
                }
                SocketAddr::V6(SocketAddrV6::new(*a, 53, 0, scope_id))
            }
        };
        if !out.contains(&addr) {
            out.push(addr);
        }
        if out.len() == MAX_UPSTREAMS {
            break;
        }
    }
    out
}

fn is_link_local6(a: &std::net::Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// An address the stub may forward to: not unspecified, multicast or
/// broadcast, not port 0, and not one of the stub's own addresses (a loop).
/// Host loopback is fine: the stub runs in the host's namespace, which is
/// how 127.0.0.53 (systemd-resolved) or a dnsmasq on 127.0.0.1 work.
pub fn usable_upstream(addr: &SocketAddr, plan: &AddrPlan) -> bool {
    let ip = addr.ip().to_canonical();
    let own = match ip {
        IpAddr::V4(a) => a == plan.dns4 || a.is_broadcast(),
        IpAddr::V6(a) => plan.v6.is_some_and(|v6| a == v6.dns6),
    };
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !own
}

/// The interface index of `name` in this process's network namespace.
pub fn if_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok().filter(|&i| i != 0)
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// resolv.conf, followed.
#[derive(Debug)]
pub struct Watch {
    path: PathBuf,
    stamp: Option<Stamp>,
    next_check: Option<i64>,
    servers: Vec<SocketAddr>,
    /// True once the file was read successfully.
    loaded: bool,
    reloads: u64,
}

impl Watch {
    /// Reads `path` now (missing is fine: no servers until it appears).
    pub fn new(path: &Path) -> Watch {
        let mut w = Watch {
            path: path.to_path_buf(),
            stamp: None,
            next_check: None,
            servers: Vec::new(),
            loaded: false,
            reloads: 0,
        };
        w.reload();
        w
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// How often the server list was (re)read with a different result.
    pub fn reloads(&self) -> u64 {
        self.reloads
    }

    /// Re-checks the file if the last check is at least a second old.
    /// Returns true when the server list changed.
    pub fn poll(&mut self, now_us: i64) -> bool {
        if self.next_check.is_some_and(|t| now_us < t) {
            return false;
        }
        self.next_check = Some(now_us.saturating_add(CHECK_INTERVAL_US));
        match std::fs::metadata(&self.path) {
            Ok(m) if Some(Stamp::of(&m)) == self.stamp => false,
            Ok(_) => self.reload(),
            // Missing or not visible: keep what we have.
            Err(_) => false,
        }
    }

    /// Reads the file; true when the server list changed.
    fn reload(&mut self) -> bool {
        let read = std::fs::File::open(&self.path).and_then(|f| {
            let stamp = Stamp::of(&f.metadata()?);
            let mut bytes = Vec::new();
            f.take(MAX_FILE).read_to_end(&mut bytes)?;
            Ok((stamp, bytes))
        });
        let (stamp, bytes) = match read {
            Ok(r) => r,
            Err(e) => {
                if !self.loaded {
                    crate::limited!(
                        Info,
                        "DNS: cannot read {}: {e}; no upstream servers until it can be read",
                        self.path.display()
                    );
                }
                return false;
            }
        };
        self.stamp = Some(stamp);
        self.loaded = true;
        let servers = parse(&bytes, if_index);
        if servers == self.servers {
            return false;
        }
        log::info!(
            "DNS: upstream servers from {}: {}",
            self.path.display(),
            if servers.is_empty() {
                "none".to_string()
            } else {
                servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        self.servers = servers;
        self.reloads += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_net4;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn no_if(_: &str) -> Option<u32> {
        None
    }

    #[test]
    fn all_nameservers_in_order() {
        let text = "# comment\nnameserver 127.0.0.53\nsearch example.com\n\
                    nameserver 192.0.2.1 \n; another\nnameserver ::1\nnameserver 192.0.2.2\n\
                    nameserver 192.0.2.3\noptions edns0 trust-ad\nnameserver 127.0.0.53\n";
        assert_eq!(
            parse(text.as_bytes(), no_if),
            [
                sa("127.0.0.53:53"),
                sa("192.0.2.1:53"),
                sa("[::1]:53"),
                sa("192.0.2.2:53"),
                sa("192.0.2.3:53")
            ]
        );
    }

    #[test]
    fn bad_lines_cost_only_themselves() {
        // aardvark-dns #418: a Solaris option made the whole file unusable.
        let text = b"options retrans:3 rotate\nnameserver 10.1.1.1\nnameserver bogus\n\
                    nameserver 10.1.1.2 extra\nfrobnicate\nnameserver\n\xff\xfe\nnameserver 10.1.1.3";
        assert_eq!(
            parse(text, no_if),
            [sa("10.1.1.1:53"), sa("10.1.1.2:53"), sa("10.1.1.3:53")]
        );
    }

    #[test]
    fn empty_and_junk_give_none() {
        for text in [
            &b""[..],
            b"# only a comment\n; and another",
            b"\x00\x01\x02garbage\n\n\n",
            b"search a.b\ndomain c\n",
        ] {
            assert!(parse(text, no_if).is_empty(), "{text:?}");
        }
        let junk: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(parse(&junk, no_if).len() <= MAX_UPSTREAMS);
    }

    #[test]
    fn link_local_needs_a_scope() {
        let text = "nameserver fe80::1%eth0\nnameserver fe80::2%7\nnameserver fe80::3\n\
                    nameserver fe80::4%nope\nnameserver fd00::53%eth0\n";
        let ifindex = |n: &str| (n == "eth0").then_some(4);
        let got = parse(text.as_bytes(), ifindex);
        assert_eq!(
            got,
            [
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 4)),
                SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 53, 0, 7)),
                SocketAddr::V6(SocketAddrV6::new("fd00::53".parse().unwrap(), 53, 0, 4)),
            ]
        );
        // The real lookup: lo exists everywhere.
        assert_eq!(if_index("lo"), Some(1));
        assert_eq!(if_index("no-such-if0"), None);
    }

    #[test]
    fn many_servers_are_capped() {
        let text: String = (1..=40)
            .map(|i| format!("nameserver 192.0.2.{i}\n"))
            .collect();
        let got = parse(text.as_bytes(), no_if);
        assert_eq!(got.len(), MAX_UPSTREAMS);
        assert_eq!(got[0], sa("192.0.2.1:53"));
        assert_eq!(got[15], sa("192.0.2.16:53"));
    }

    #[test]
    fn usable_upstreams() {
        let plan = AddrPlan::default();
        for ok in [
            "127.0.0.53:53",
            "127.0.0.1:5353",
            "[::1]:53",
            "192.0.2.1:53",
            "10.0.2.2:53",
        ] {
            assert!(usable_upstream(&sa(ok), &plan), "{ok}");
        }
        for bad in [
            "0.0.0.0:53",
            "[::]:53",
            "10.0.2.3:53",
            "[fd00::3]:53",
            "[::ffff:10.0.2.3]:53",
            "255.255.255.255:53",
            "224.0.0.251:53",
            "[ff02::fb]:53",
            "192.0.2.1:0",
        ] {
            assert!(!usable_upstream(&sa(bad), &plan), "{bad}");
        }
        let no6 = AddrPlan::new(default_net4(), false);
        assert!(usable_upstream(&sa("[fd00::3]:53"), &no6));
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rlnet-resolv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn watch_follows_replacement_at_most_once_a_second() {
        let dir = temp_dir("watch");
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let mut w = Watch::new(&path);
        assert_eq!(w.servers(), [sa("192.0.2.1:53")]);
        assert!(!w.poll(0));
        // Replaced by rename, as resolvconf and NetworkManager do.
        let tmp = dir.join("resolv.conf.tmp");
        std::fs::write(&tmp, "nameserver 192.0.2.2\nnameserver 192.0.2.3\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        // Within a second of the last check: not looked at.
        assert!(!w.poll(999_999));
        assert_eq!(w.servers(), [sa("192.0.2.1:53")]);
        assert!(w.poll(1_000_000));
        assert_eq!(w.servers(), [sa("192.0.2.2:53"), sa("192.0.2.3:53")]);
        // Unchanged: no re-read.
        assert!(!w.poll(2_000_000));
        // Edited in place (size changes).
        std::fs::write(&path, "nameserver 192.0.2.4\n").unwrap();
        assert!(w.poll(3_000_000));
        assert_eq!(w.servers(), [sa("192.0.2.4:53")]);
        // Gone: the last servers stay.
        std::fs::remove_file(&path).unwrap();
        assert!(!w.poll(4_000_000));
        assert_eq!(w.servers(), [sa("192.0.2.4:53")]);
        // Back, through a symlink.
        let target = dir.join("real.conf");
        std::fs::write(&target, "nameserver 127.0.0.53\n").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(w.poll(5_000_000));
        assert_eq!(w.servers(), [sa("127.0.0.53:53")]);
        // Emptied: no servers.
        std::fs::write(&target, "").unwrap();
        assert!(w.poll(6_000_000));
        assert!(w.servers().is_empty());
        assert_eq!(w.reloads(), 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn watch_of_a_missing_file_picks_it_up_later() {
        let dir = temp_dir("missing");
        let path = dir.join("resolv.conf");
        let mut w = Watch::new(&path);
        assert!(w.servers().is_empty());
        assert!(!w.poll(0));
        // A dangling symlink is missing too.
        std::os::unix::fs::symlink(dir.join("nowhere"), &path).unwrap();
        assert!(!w.poll(1_000_000));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "nameserver 192.0.2.9\n").unwrap();
        assert!(w.poll(2_000_000));
        assert_eq!(w.servers(), [sa("192.0.2.9:53")]);
        assert_eq!(w.path(), path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn watch_reads_a_bounded_prefix() {
        let dir = temp_dir("big");
        let path = dir.join("resolv.conf");
        let mut text = String::from("nameserver 192.0.2.1\n");
        while text.len() < 10 << 20 {
            text.push_str("# padding padding padding padding padding padding padding\n");
        }
        text.push_str("nameserver 192.0.2.2\n");
        std::fs::write(&path, &text).unwrap();
        let w = Watch::new(&path);
        assert_eq!(w.servers(), [sa("192.0.2.1:53")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
