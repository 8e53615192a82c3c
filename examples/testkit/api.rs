//! `api PATH REQUEST`: one request on an API socket, the way clients send
//! them (or badly: oversized, trickled, never finished), and the reply as
//! received.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::Command;
use crate::args::Args;
use crate::fail::{Res, emit, ioerr, ms_since};

pub const COMMAND: Command = Command::new("api", SYNTAX, HELP, 2..=2, run)
    .options(&["--trickle", "--repeat", "--idle"], &["--no-shutdown"]);

const SYNTAX: &str = "api PATH REQUEST [--trickle MS] [--repeat N] [--no-shutdown] [--idle N]";

const HELP: &str = "  api PATH REQUEST [--trickle MS] [--repeat N] [--no-shutdown] [--idle N]
        send REQUEST to a unix socket (--repeat: that many copies; --trickle:
        one byte every MS ms), shut down the write side (unless
        --no-shutdown), print the reply verbatim (one line) and `ms=`;
        --idle: first open N connections that send nothing, held to the end
";

fn run(a: &Args) -> Res<i32> {
    let idle: usize = a.num("--idle", 0usize)?;
    let _idle: Vec<UnixStream> = (0..idle)
        .map(|i| UnixStream::connect(&a.pos[0]).map_err(|e| ioerr(format!("idle #{i}"), e)))
        .collect::<Res<_>>()?;
    let t0 = Instant::now();
    let mut s = UnixStream::connect(&a.pos[0]).map_err(|e| ioerr("connect", e))?;
    s.set_read_timeout(Some(a.timeout))
        .map_err(|e| ioerr("timeout", e))?;
    s.set_write_timeout(Some(a.timeout))
        .map_err(|e| ioerr("timeout", e))?;
    let req = a.pos[1].repeat(a.num("--repeat", 1usize)?);
    match a.opt_num::<u64>("--trickle")? {
        Some(ms) => {
            let pause = Duration::from_millis(ms);
            for b in req.as_bytes() {
                // The server may hang up on a slow client: that is the answer.
                if s.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
                std::thread::sleep(pause);
                if t0.elapsed() > a.timeout {
                    break;
                }
            }
        }
        None => {
            // A server that refuses early may close before we finish.
            let _ = s.write_all(req.as_bytes());
        }
    }
    if !a.flag("--no-shutdown") {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    emit(&String::from_utf8_lossy(&reply));
    emit(&format!("ms={}", ms_since(t0)));
    Ok(0)
}
