//! `serve-udp ADDR [--count N]`: a UDP echo server.

use std::io;
use std::net::UdpSocket;

use crate::Command;
use crate::args::Args;
use crate::fail::{Res, emit, ioerr, is_timeout};
use crate::net::canon;

pub const COMMAND: Command =
    Command::new("serve-udp", SYNTAX, HELP, 1..=1, run).options(&["--count"], &[]);

const SYNTAX: &str = "serve-udp ADDR [--count N]";

const HELP: &str =
    "  serve-udp ADDR [--count N]        UDP echo; `listening port=P`, `peer=` for the
        first datagram, `ok=1 received=N` at the end (default: stop after
        --timeout without datagrams)
";

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let count: Option<u64> = a.opt_num("--count")?;
    let s = UdpSocket::bind(addr).map_err(|e| ioerr(format!("bind {addr}"), e))?;
    let port = s.local_addr().map_err(|e| ioerr("getsockname", e))?.port();
    s.set_read_timeout(Some(a.timeout))
        .map_err(|e| ioerr("setsockopt", e))?;
    emit(&format!("listening port={port}"));
    let mut buf = vec![0u8; 65536];
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        match s.recv_from(&mut buf) {
            Ok((len, peer)) => {
                if n == 0 {
                    emit(&format!("peer={}", canon(peer)));
                }
                s.send_to(&buf[..len], peer)
                    .map_err(|e| ioerr("sendto", e))?;
                n += 1;
            }
            Err(e) if is_timeout(&e) && count.is_none() => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ioerr(format!("recvfrom ({n} echoed)"), e)),
        }
    }
    emit(&format!("ok=1 received={n}"));
    Ok(0)
}
