//! `hold ADDR N [--stdin]`: N TCP connections opened at once and held until
//! stdin closes (or --timeout), counting those the far side closed.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::Command;
use crate::args::Args;
use crate::fail::{Fail, Res, emit, ioerr, status, usage};
use crate::net::{Held, bind_source, poll_for, tcp_socket};
use nix::poll::{PollFd, PollFlags};

pub const COMMAND: Command =
    Command::new("hold", SYNTAX, HELP, 2..=2, run).options(&["--sport"], &["--stdin"]);

const SYNTAX: &str = "hold ADDR N [--stdin] [--sport P]";

const HELP: &str =
    "  hold ADDR N [--stdin] [--sport P] open N connections, print `open=N`, wait for
        stdin EOF (--stdin) or --timeout, close; prints `closed=N lost=L`;
        --sport (N=1): from that source port (SO_REUSEADDR)
";

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let n: usize = a.pos_num(1)?;
    let sport: Option<u16> = a.opt_num("--sport")?;
    if sport.is_some() && n != 1 {
        return Err(usage("hold: --sport needs N = 1"));
    }
    let conns = open(addr, n, sport, Instant::now() + a.timeout)?;
    emit(&format!("open={n}"));
    let use_stdin = a.flag("--stdin");
    let stdin = io::stdin();
    let hold_until = Instant::now() + a.timeout;
    let mut held = Held::new(conns);
    loop {
        let left = hold_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if use_stdin {
                return Err(Fail::Timeout("hold: no EOF on stdin".into()));
            }
            break;
        }
        let watch = use_stdin.then(|| stdin.as_fd());
        let stdin_ready = held.poll(watch, left)?.unwrap_or(false);
        let mut buf = [0u8; 512];
        if stdin_ready && matches!(stdin.lock().read(&mut buf), Ok(0) | Err(_)) {
            break;
        }
    }
    let lost = held.closed;
    drop(held);
    emit(&format!("closed={n} lost={lost}"));
    Ok(status(lost == 0))
}

/// `n` connections to `addr`, at most 256 connecting at a time.
fn open(addr: SocketAddr, n: usize, sport: Option<u16>, deadline: Instant) -> Res<Vec<Socket>> {
    let mut conns: Vec<Socket> = Vec::with_capacity(n);
    while conns.len() < n {
        let mut pending = Vec::new();
        for _ in 0..(n - conns.len()).min(256) {
            let s = tcp_socket(addr)
                .map_err(|e| ioerr(format!("socket #{}", conns.len() + pending.len()), e))?;
            if let Some(p) = sport {
                bind_source(&s, addr, p).map_err(|e| ioerr(format!("bind source port {p}"), e))?;
            }
            match s.connect(&addr.into()) {
                Ok(()) => conns.push(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => pending.push(s),
                Err(e) => return Err(ioerr(format!("connect {addr}"), e)),
            }
        }
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            for s in connected(&mut pending, left, n, conns.len())? {
                if let Some(e) = s.take_error().unwrap_or_else(Some) {
                    return Err(ioerr(format!("connect {addr} ({} open)", conns.len()), e));
                }
                conns.push(s);
            }
        }
    }
    Ok(conns)
}

/// Take from `pending` the sockets whose connect finished (within `left`).
fn connected(pending: &mut Vec<Socket>, left: Duration, n: usize, open: usize) -> Res<Vec<Socket>> {
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd> = pending
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLOUT))
            .collect();
        if poll_for(&mut fds, left)? == 0 {
            return Err(Fail::Timeout(format!(
                "hold: connect timed out ({open} of {n} open)"
            )));
        }
        fds.iter().map(|f| f.any().unwrap_or(true)).collect()
    };
    let mut done = Vec::new();
    for (i, r) in ready.iter().enumerate().rev() {
        if *r {
            done.push(pending.swap_remove(i));
        }
    }
    Ok(done)
}
