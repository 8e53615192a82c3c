//! `serve-tcp ADDR MODE [--count N]`: a TCP server for N connections,
//! served concurrently, one result line each (`hold`: one poll loop).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::Duration;

use nix::poll::PollFlags;

use crate::Command;
use crate::args::Args;
use crate::fail::{Fail, Res, die, emit, ioerr, status};
use crate::mode::{Kind, Mode, parse_mode, report, report_sent};
use crate::net::{
    Held, accept_ready, canon, listen_tcp, read_eof, read_size, recv_verify, send_all, send_stream,
    send_then_verify, set_nonblocking, set_timeouts, shut_wr, wait_fd,
};
use crate::stream::Digest;

pub const COMMAND: Command =
    Command::new("serve-tcp", SYNTAX, HELP, 2..=2, run).options(&["--count", "--read"], &[]);

const SYNTAX: &str = "serve-tcp ADDR MODE [--count N] [--read BYTES]";

const HELP: &str = "  serve-tcp ADDR MODE [--count N] [--read BYTES]
        listen, print `listening port=P`, serve N
        connections (default 1) concurrently; one result line each:
        `ok=1 bytes= digest= [tx_digest=] peer=` (`ok=0 bytes= first_bad= peer=`)
        MODE: sink:BYTES:SEED | source:BYTES:SEED | echo | hold
              halfclose-a:BYTES:SEED  read to EOF, then send stream(SEED+1)
              halfclose-b:BYTES:SEED  send + SHUT_WR, then read stream(SEED+1)
        hold: accept N, keep them open until the peers close (poll loop);
              prints `ok=1 conns= closed= peak=`
        --read: at most BYTES per read(2) (a slow reader; default 256k)
";

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let mode = parse_mode(&a.pos[1], true)?;
    let count: u64 = a.num("--count", 1)?;
    let read = read_size(a)?;
    let l = listen_tcp(addr, 4096)?;
    let port = l.local_addr().map_err(|e| ioerr("getsockname", e))?.port();
    emit(&format!("listening port={port}"));
    if mode.kind == Kind::Hold {
        return hold(l, count, a.timeout);
    }
    let (tx, rx) = mpsc::channel();
    let mut accepted = 0;
    while accepted < count {
        if !wait_fd(l.as_fd(), PollFlags::POLLIN, a.timeout)? {
            return Err(Fail::Timeout("accept: timed out".into()));
        }
        let (s, peer) = match l.accept() {
            Ok(c) => c,
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => return Err(ioerr("accept", e)),
        };
        accepted += 1;
        let (tx, t) = (tx.clone(), a.timeout);
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let ok = serve_conn(s, canon(peer), mode, t, read).unwrap_or_else(|f| die(&f));
                let _ = tx.send(ok);
            })
            .map_err(|e| ioerr("spawn", e))?;
    }
    drop(tx);
    let all_ok = rx.iter().fold(true, |acc, ok| acc & ok);
    Ok(status(all_ok))
}

fn serve_conn(s: TcpStream, peer: SocketAddr, m: Mode, t: Duration, read: usize) -> Res<bool> {
    set_timeouts(&s, t)?;
    let mut buf = vec![0u8; read];
    let extra = format!("peer={peer}");
    match m.kind {
        Kind::Sink => {
            let v = recv_verify(&s, m.bytes, m.seed, &mut buf)?;
            Ok(report(&v, None, &extra))
        }
        Kind::Source => {
            let d = send_all(&s, m.bytes, m.seed, &mut buf)?;
            Ok(report_sent(m.bytes, &d, &extra))
        }
        Kind::Echo => {
            let mut d = Digest::new();
            let mut w = &s;
            let mut werr = None;
            let n = read_eof(&s, &mut buf, |data| {
                d.update(data);
                if werr.is_none() {
                    werr = std::io::Write::write_all(&mut w, data).err();
                }
            })?;
            if let Some(e) = werr {
                return Err(ioerr("write", e));
            }
            Ok(report_sent(n, &d, &extra))
        }
        Kind::HalfA => {
            let v = recv_verify(&s, m.bytes, m.seed, &mut buf)?;
            if v.bad().is_some() {
                return Ok(report(&v, None, &extra));
            }
            let d = send_stream(&s, m.bytes, m.seed.wrapping_add(1), &mut buf)?;
            shut_wr(&s)?;
            Ok(report(&v, Some(&d), &extra))
        }
        Kind::HalfB => {
            let (v, d) = send_then_verify(&s, m.bytes, m.seed, &mut buf)?;
            Ok(report(&v, Some(&d), &extra))
        }
        Kind::Send | Kind::Recv | Kind::Hold => unreachable!("not a per-connection server mode"),
    }
}

/// `hold`: one poll loop; accept `count` connections, read and discard until
/// each peer closes.
fn hold(l: TcpListener, count: u64, t: Duration) -> Res<i32> {
    set_nonblocking(&l)?;
    let mut held: Held<TcpStream> = Held::new(Vec::new());
    let mut peak = 0;
    while (held.len() as u64) < count || held.open() > 0 {
        let accepted = held.len() as u64;
        let listen = (accepted < count).then(|| l.as_fd());
        let Some(ready) = held.poll(listen, t)? else {
            return Err(Fail::Timeout(format!(
                "hold: nothing happened for {t:?} (accepted={accepted} open={})",
                held.open()
            )));
        };
        if ready {
            accept_ready(&l, count - accepted, |s| held.push(s))?;
        }
        peak = peak.max(held.open());
    }
    emit(&format!(
        "ok=1 conns={} closed={} peak={peak}",
        held.len(),
        held.closed
    ));
    Ok(0)
}
