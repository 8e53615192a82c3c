//! `serve-dns ADDR`: a fake authoritative DNS server for the test zone, on
//! UDP and TCP (one port), in one poll loop.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::Command;
use crate::args::Args;
use crate::dns;
use crate::fail::{Res, emit, ioerr};
use crate::net::{accept_ready, listen_tcp, poll_readable, set_nonblocking};

pub const COMMAND: Command = Command::new("serve-dns", SYNTAX, HELP, 1..=1, run)
    .options(&["--count", "--tag"], &["--silent", "--stdin"]);

const SYNTAX: &str = "serve-dns ADDR [--count N] [--tag T] [--silent] [--stdin]";

const HELP: &str = "  serve-dns ADDR [--count N] [--tag T] [--silent] [--stdin]   a fake
        authoritative DNS server on UDP and TCP (one port): `listening port=P`;
        a.test A 198.18.0.10, aaaa.test AAAA 2001:db8::10, txt.test TXT hello,
        srv.test SRV 10 5 5060 sip.test, mx.test MX 10 mail.test, big.test TXT
        ~2000 bytes (over UDP TC=1 and no records unless the EDNS size fits),
        tag.test TXT T (--tag), anything else NXDOMAIN; --silent: count, never
        answer. Stops after N queries, after --timeout without one, or on stdin
        EOF (--stdin); prints `queries=N`
";

/// A TCP connection to the server, read in the poll loop.
struct Conn {
    s: TcpStream,
    /// Bytes of queries not complete yet.
    buf: Vec<u8>,
}

struct Server<'a> {
    udp: UdpSocket,
    listener: TcpListener,
    conns: Vec<Conn>,
    tag: Option<&'a str>,
    silent: bool,
    count: Option<u64>,
    /// Queries received, and when the last one came.
    n: u64,
    last: Instant,
    timeout: Duration,
}

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let udp = UdpSocket::bind(addr).map_err(|e| ioerr(format!("bind {addr}"), e))?;
    let port = udp
        .local_addr()
        .map_err(|e| ioerr("getsockname", e))?
        .port();
    let listener = listen_tcp(SocketAddr::new(addr.ip(), port), 1024)?;
    set_nonblocking(&udp)?;
    set_nonblocking(&listener)?;
    emit(&format!("listening port={port}"));
    let mut srv = Server {
        udp,
        listener,
        conns: Vec::new(),
        tag: a.opt("--tag"),
        silent: a.flag("--silent"),
        count: a.opt_num("--count")?,
        n: 0,
        last: Instant::now(),
        timeout: a.timeout,
    };
    let stdin = io::stdin();
    let stop = a.flag("--stdin").then(|| stdin.as_fd());
    let mut buf = vec![0u8; 65536];
    while srv.count.is_none_or(|c| srv.n < c) && srv.turn(stop, &mut buf)? {}
    emit(&format!("queries={}", srv.n));
    Ok(0)
}

impl Server<'_> {
    /// One poll and what it found; false when the server should stop
    /// (quiet for --timeout, --count reached over UDP, `stop` at EOF).
    fn turn(&mut self, stop: Option<BorrowedFd<'_>>, buf: &mut [u8]) -> Res<bool> {
        let left = (self.last + self.timeout).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ready = {
            let mut fds = vec![self.udp.as_fd(), self.listener.as_fd()];
            fds.extend(self.conns.iter().map(|c| c.s.as_fd()));
            fds.extend(stop);
            match poll_readable(&fds, left)? {
                Some(r) => r,
                None => return Ok(true),
            }
        };
        if stop.is_some() && ready.last() == Some(&true) {
            let mut stdin = io::stdin().lock();
            if matches!(stdin.read(buf), Ok(0) | Err(_)) {
                return Ok(false);
            }
        }
        if ready[0] && !self.udp_queries(buf) {
            return Ok(false);
        }
        for i in (0..self.conns.len()).rev() {
            if ready.get(2 + i).copied().unwrap_or(false) && self.tcp_queries(i, buf)? {
                self.conns.swap_remove(i);
            }
        }
        if ready[1] {
            let conns = &mut self.conns;
            accept_ready(&self.listener, u64::MAX, |s| {
                conns.push(Conn { s, buf: Vec::new() })
            })?;
        }
        Ok(true)
    }

    fn got_query(&mut self, msg: &[u8], udp: bool) -> Option<Vec<u8>> {
        self.n += 1;
        self.last = Instant::now();
        if self.silent {
            return None;
        }
        dns::answer(msg, self.tag, udp)
    }

    /// Answer the datagrams waiting; false once --count is reached.
    fn udp_queries(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.udp.recv_from(buf) {
                Ok((len, peer)) => {
                    if let Some(ans) = self.got_query(&buf[..len], true) {
                        let _ = self.udp.send_to(&ans, peer);
                    }
                    if self.count.is_some_and(|c| self.n >= c) {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from earlier replies: not ours to report.
                Err(_) => return true,
            }
        }
    }

    /// Read connection `i` and answer its complete queries; whether the
    /// peer closed it.
    fn tcp_queries(&mut self, i: usize, buf: &mut [u8]) -> Res<bool> {
        let closed = match self.conns[i].s.read(buf) {
            Ok(0) => true,
            Ok(len) => {
                self.conns[i].buf.extend_from_slice(&buf[..len]);
                false
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                false
            }
            Err(_) => true,
        };
        while let Some(msg) = next_message(&mut self.conns[i].buf) {
            if let Some(ans) = self.got_query(&msg, false) {
                let s = &mut self.conns[i].s;
                s.set_nonblocking(false).map_err(|e| ioerr("fcntl", e))?;
                let _ = s.set_write_timeout(Some(self.timeout));
                let _ = s.write_all(&dns::tcp_frame(&ans));
                s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
            }
        }
        Ok(closed)
    }
}

/// The first complete length-prefixed message in `buf`, taken out.
fn next_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    if buf.len() < 2 + len {
        return None;
    }
    Some(buf.drain(..2 + len).skip(2).collect())
}
