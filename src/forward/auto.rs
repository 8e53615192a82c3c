//! pasta's `auto` port forwarding (`-t/-u/-T/-U auto`): every second, the
//! ports bound on the other side are read from /proc/net/{tcp,tcp6,udp,udp6}
//! (the namespace's through files the socket factory opened inside it, the
//! host's through files rlnet opened before confining itself; both kept
//! open and re-read with pread), and forwarded while they stay bound.
//!
//! The parsing and the choice of what to forward are pure and tested here;
//! [`super::publish::Forwarder`] binds and unbinds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;

use super::ports::{PastaPorts, PortForwards, PortList};
use super::spec::{PortRange, Proto};
use super::table::RuleId;
use crate::sys::ns::{Tables, open_tables};

/// How often the tables are read (pasta's period).
pub const SCAN_INTERVAL_US: i64 = 1_000_000;
/// Bound on one table (about 100k sockets): a larger one is cut there.
const MAX_TABLE: usize = 16 << 20;

/// TCP_LISTEN in /proc/net/tcp{,6}.
pub const TCP_LISTEN: u8 = 0x0a;
/// An unconnected UDP socket shows as TCP_CLOSE in /proc/net/udp{,6}.
pub const UDP_UNCONNECTED: u8 = 0x07;

/// The local ports of the sockets in state `state` in the text of a
/// /proc/net/{tcp,udp}[6] table, sorted, without duplicates. Lines that do
/// not parse are skipped.
pub fn bound_ports(text: &str, state: u8) -> Vec<u16> {
    let mut ports: Vec<u16> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let local = f.nth(1)?;
            let st = f.nth(1)?;
            if u8::from_str_radix(st, 16).ok()? != state {
                return None;
            }
            let (_, port) = local.rsplit_once(':')?;
            u16::from_str_radix(port, 16).ok().filter(|&p| p != 0)
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Read a whole /proc table from offset 0 (the file stays open between
/// scans; its network namespace is the one it was opened in).
pub fn read_table(f: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    let mut chunk = [0u8; 16384];
    loop {
        let n = f.read_at(&mut chunk, buf.len() as u64)?;
        if n == 0 || buf.len() + n > MAX_TABLE {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One forward `auto` wants: a host port (or, for `-T/-U`, a namespace
/// port) to the target port on the other side, with where to listen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Want {
    pub port: u16,
    pub to: u16,
    pub addr: Option<IpAddr>,
    pub ifname: Option<String>,
}

/// What `f` (one of -t/-u/-T/-U) forwards given the ports bound on the
/// other side: for bare `auto` every bound port outside `ephemeral`, to the
/// same port; for lists with `auto`, the listed ports whose target is
/// bound. `skip` are target ports never to forward (those rlnet itself
/// listens on for the other direction).
pub fn wanted(
    f: &PortForwards,
    bound: &[u16],
    ephemeral: PortRange,
    skip: &[u16],
) -> BTreeMap<u16, Want> {
    let mut out = BTreeMap::new();
    let bound: Vec<u16> = bound
        .iter()
        .copied()
        .filter(|p| !skip.contains(p))
        .collect();
    match f.effective() {
        PortForwards::Auto => {
            for &p in bound.iter().filter(|p| !ephemeral.contains(**p)) {
                out.insert(
                    p,
                    Want {
                        port: p,
                        to: p,
                        addr: None,
                        ifname: None,
                    },
                );
            }
        }
        PortForwards::Lists(lists) => {
            for l in lists.iter().filter(|l| l.auto) {
                for &t in &bound {
                    for port in sources(l, t, ephemeral) {
                        out.entry(port).or_insert(Want {
                            port,
                            to: t,
                            addr: l.addr,
                            ifname: l.ifname.clone(),
                        });
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The ports of list `l` that forward to target `t`.
fn sources(l: &PortList, t: u16, ephemeral: PortRange) -> Vec<u16> {
    let mut v: Vec<u16> = l
        .include
        .iter()
        .filter(|m| t >= m.to && u32::from(t - m.to) < m.ports.len())
        .map(|m| m.ports.start + (t - m.to))
        .collect();
    if l.all && !v.contains(&t) {
        v.push(t);
    }
    v.retain(|&p| l.target(p, ephemeral) == Some(t));
    v
}

/// pasta mode's state in the forwarder: its options, the open tables and
/// what `auto` forwards now.
pub struct PastaState {
    pub opts: PastaPorts,
    /// The namespace's tables (from the socket factory) and the host's.
    ns_tables: [Option<File>; 4],
    host_tables: [Option<File>; 4],
    /// `-t/-u auto`: host port → its rule.
    pub(super) auto_in: [BTreeMap<u16, RuleId>; 2],
    /// `-T/-U auto`: namespace ports with a listener.
    pub(super) auto_out: [BTreeMap<u16, Want>; 2],
    /// Next scan, micros; None when nothing scans.
    due: Option<i64>,
    buf: Vec<u8>,
}

fn files(t: Tables) -> [Option<File>; 4] {
    t.map(|f| f.map(File::from))
}

/// Index of a protocol in the per-protocol arrays.
pub(super) fn slot(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
    }
}

impl PastaState {
    /// The host's tables are opened now, while /proc is still visible.
    pub fn new(opts: PastaPorts) -> PastaState {
        let scans_host = opts.tcp_ns.scans() || opts.udp_ns.scans();
        let scans = scans_host || opts.tcp.scans() || opts.udp.scans();
        PastaState {
            host_tables: if scans_host {
                files(open_tables())
            } else {
                Default::default()
            },
            opts,
            ns_tables: Default::default(),
            auto_in: Default::default(),
            auto_out: Default::default(),
            due: scans.then_some(0),
            buf: Vec::new(),
        }
    }

    /// Does `-t/-u auto` need the namespace's tables?
    pub fn scans_ns(&self) -> bool {
        self.opts.scans_ns()
    }

    pub fn set_ns_tables(&mut self, t: Tables) {
        self.ns_tables = files(t);
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.due
    }

    /// Is a scan due at `now`? Then the next one is a period later.
    pub fn take_due(&mut self, now: i64) -> bool {
        match self.due {
            Some(t) if t <= now => {
                self.due = Some(now + SCAN_INTERVAL_US);
                true
            }
            _ => false,
        }
    }

    /// The ports bound on one side (the namespace's or the host's) for one
    /// protocol, both families together.
    pub fn bound(&mut self, ns: bool, proto: Proto) -> Vec<u16> {
        let (tables, state) = match proto {
            Proto::Tcp => ([0, 1], TCP_LISTEN),
            Proto::Udp => ([2, 3], UDP_UNCONNECTED),
        };
        let mut out = Vec::new();
        for i in tables {
            let f = if ns {
                &self.ns_tables[i]
            } else {
                &self.host_tables[i]
            };
            if let Some(f) = f
                && read_table(f, &mut self.buf).is_ok()
            {
                out.extend(bound_ports(&String::from_utf8_lossy(&self.buf), state));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::ports::Way;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 102 1 0 100 0 0 10 0
   2: 0202000A:9C40 0102000A:0050 01 00000000:00000000 00:00000000 00000000  1000        0 103 1 0 100 0 0 10 0
   3: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 104 1 0 100 0 0 10 0
   junk
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 201 1 0 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 301 2 0000000000000000 0
  11: 0202000A:A000 0102000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 302 2 0000000000000000 0
";

    #[test]
    fn tables_parse() {
        assert_eq!(bound_ports(TCP, TCP_LISTEN), [53, 8080]);
        assert_eq!(bound_ports(TCP6, TCP_LISTEN), [22]);
        assert_eq!(bound_ports(UDP, UDP_UNCONNECTED), [5353]);
        assert_eq!(bound_ports("", TCP_LISTEN), Vec::<u16>::new());
        assert_eq!(
            bound_ports("header\n0: zz:zz 0:0 0A", TCP_LISTEN),
            Vec::<u16>::new()
        );
    }

    const EPH: PortRange = PortRange {
        start: 32768,
        end: 60999,
    };

    fn opt(specs: &[&str]) -> PortForwards {
        let mut f = PortForwards::Unset;
        for s in specs {
            f.add(s, Way::In).unwrap();
        }
        f
    }

    fn ports(w: &BTreeMap<u16, Want>) -> Vec<(u16, u16)> {
        w.values().map(|w| (w.port, w.to)).collect()
    }

    #[test]
    fn bare_auto_forwards_what_is_bound() {
        let bound = [22, 80, 40000, 61000];
        let w = wanted(&PortForwards::Unset, &bound, EPH, &[]);
        assert_eq!(ports(&w), [(22, 22), (80, 80), (61000, 61000)]);
        let w = wanted(&opt(&["auto"]), &bound, EPH, &[80]);
        assert_eq!(ports(&w), [(22, 22), (61000, 61000)], "skipped");
        assert!(wanted(&opt(&["none"]), &bound, EPH, &[]).is_empty());
        assert!(wanted(&opt(&["80"]), &bound, EPH, &[]).is_empty(), "fixed");
    }

    #[test]
    fn lists_with_auto_forward_listed_ports_when_their_target_is_bound() {
        let f = opt(&["8000-8010:9000-9010,auto"]);
        let w = wanted(&f, &[80, 9005, 9011], EPH, &[]);
        assert_eq!(ports(&w), [(8005, 9005)]);
        let f = opt(&["127.0.0.1/auto"]);
        let w = wanted(&f, &[22, 40000], EPH, &[]);
        assert_eq!(ports(&w), [(22, 22)]);
        assert_eq!(w[&22].addr, Some("127.0.0.1".parse().unwrap()));
        let f = opt(&["~22,auto"]);
        assert_eq!(ports(&wanted(&f, &[22, 23], EPH, &[])), [(23, 23)]);
    }
}
