//! `crr ADDR N`: N connect/request/response/close cycles against an echo
//! server, one after another.

use std::io::{Read, Write};
use std::time::Instant;

use crate::Command;
use crate::args::Args;
use crate::fail::{Res, emit, ioerr};
use crate::net::connect_tcp;
use crate::stream::Stream;

pub const COMMAND: Command =
    Command::new("crr", SYNTAX, HELP, 2..=2, run).options(&["--max-secs"], &["--keep-going"]);

const SYNTAX: &str = "crr ADDR N [--keep-going] [--max-secs S]";

const HELP: &str = "  crr ADDR N [--keep-going]         N x (connect, 64-byte echo, close) against
        `serve-tcp ... echo --count N`; prints `ok=1 n= secs= per_s=`;
        --keep-going: a failed cycle (each bounded by --timeout) is counted
        and the next one tried; prints `ok= n= failed= secs= per_s=`;
        --max-secs S: stop after S seconds (n= says how many were made)
";

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let n: u64 = a.pos_num(1)?;
    let t0 = Instant::now();
    let (mut req, mut resp) = ([0u8; 64], [0u8; 64]);
    let keep_going = a.flag("--keep-going");
    let mut failed = 0u64;
    let max = a
        .opt_num::<u64>("--max-secs")?
        .map(std::time::Duration::from_secs);
    let mut n = n;
    for i in 0..n {
        if max.is_some_and(|m| t0.elapsed() >= m) {
            n = i;
            break;
        }
        Stream::new(i).fill(&mut req);
        let mut cycle = || -> Res<bool> {
            let mut s = connect_tcp(addr, None, a.timeout)?;
            s.set_nodelay(true).map_err(|e| ioerr("setsockopt", e))?;
            s.set_read_timeout(Some(a.timeout))
                .map_err(|e| ioerr("setsockopt", e))?;
            s.write_all(&req).map_err(|e| ioerr("write", e))?;
            s.read_exact(&mut resp)
                .map_err(|e| ioerr(format!("read (cycle {i})"), e))?;
            Ok(req == resp)
        };
        match cycle() {
            Ok(true) => {}
            Ok(false) if !keep_going => {
                emit(&format!("ok=0 n={i}"));
                return Ok(1);
            }
            Err(e) if !keep_going => return Err(e),
            Ok(false) | Err(_) => failed += 1,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if keep_going {
        emit(&format!(
            "ok={} n={n} failed={failed} secs={secs:.3} per_s={:.1}",
            u8::from(failed == 0),
            n as f64 / secs.max(1e-9)
        ));
        return Ok(0);
    }
    emit(&format!(
        "ok=1 n={n} secs={secs:.3} per_s={:.1}",
        n as f64 / secs.max(1e-9)
    ));
    Ok(0)
}
