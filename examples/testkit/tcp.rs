//! `tcp ADDR MODE`: a TCP client that sends, receives, echoes or
//! half-closes a stream and prints the result with its throughput.

use std::net::TcpStream;
use std::time::Instant;

use crate::Command;
use crate::args::Args;
use crate::fail::{Fail, Res, die, ioerr, status};
use crate::mode::{Kind, Mode, parse_mode, report, report_sent};
use crate::net::{
    BUF, canon, connect_tcp, read_eof, read_size, recv_verify, send_all, send_stream,
    send_then_verify, shut_wr,
};
use crate::stream::{Digest, Verifier};

pub const COMMAND: Command =
    Command::new("tcp", SYNTAX, HELP, 2..=2, run).options(&["--sport", "--read"], &[]);

const SYNTAX: &str = "tcp ADDR MODE [--sport P] [--read BYTES]";

const HELP: &str =
    "  tcp ADDR MODE [--sport P]         client: send|recv|echo|halfclose-a|halfclose-b
        :BYTES:SEED; prints `ok=1 bytes= digest= [tx_digest=] secs= gbps= local=`;
        --sport: from that source port (SO_REUSEADDR); --read: at most BYTES
        per read(2) (a slow reader; default 256k)
";

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let m = parse_mode(&a.pos[1], false)?;
    let read = read_size(a)?;
    let s = connect_tcp(addr, a.opt_num("--sport")?, a.timeout)?;
    let local = s
        .local_addr()
        .map(canon)
        .map_err(|e| ioerr("getsockname", e))?;
    let t0 = Instant::now();
    let (v, tx) = exchange(&s, m, read)?;
    let secs = t0.elapsed().as_secs_f64();
    let gbps = m.bytes as f64 * 8.0 / secs.max(1e-9) / 1e9;
    let extra = format!("secs={secs:.3} gbps={gbps:.3} local={local}");
    let ok = match v {
        Some(v) => report(
            &v,
            if m.kind == Kind::Recv {
                None
            } else {
                tx.as_ref()
            },
            &extra,
        ),
        None => report_sent(m.bytes, &tx.expect("send digest"), &extra),
    };
    Ok(status(ok))
}

/// The client's side of mode `m`: what it received (checked) and sent.
fn exchange(s: &TcpStream, m: Mode, read: usize) -> Res<(Option<Verifier>, Option<Digest>)> {
    let mut buf = vec![0u8; read];
    Ok(match m.kind {
        Kind::Send => (None, Some(send_all(s, m.bytes, m.seed, &mut buf)?)),
        Kind::Recv => (Some(recv_verify(s, m.bytes, m.seed, &mut buf)?), None),
        Kind::Echo => {
            let w = s.try_clone().map_err(|e| ioerr("dup", e))?;
            let writer = std::thread::spawn(move || {
                let mut buf = vec![0u8; BUF];
                let d =
                    send_stream(&w, m.bytes, m.seed, &mut buf).and_then(|d| shut_wr(&w).map(|_| d));
                d.unwrap_or_else(|f| die(&f))
            });
            let v = recv_verify(s, m.bytes, m.seed, &mut buf)?;
            let d = writer
                .join()
                .map_err(|_| Fail::Io("writer thread panicked".into()))?;
            (Some(v), Some(d))
        }
        Kind::HalfA => {
            let (v, d) = send_then_verify(s, m.bytes, m.seed, &mut buf)?;
            (Some(v), Some(d))
        }
        Kind::HalfB => {
            let v = recv_verify(s, m.bytes, m.seed, &mut buf)?;
            let d = if v.bad().is_none() {
                send_stream(s, m.bytes, m.seed.wrapping_add(1), &mut buf)?
            } else {
                Digest::new()
            };
            shut_wr(s)?;
            read_eof(s, &mut buf, |_| {})?;
            (Some(v), Some(d))
        }
        Kind::Sink | Kind::Source | Kind::Hold => unreachable!("server-only mode"),
    })
}
