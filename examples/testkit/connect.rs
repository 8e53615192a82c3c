//! `connect ADDR [--expect R]`: one TCP connect and how it ended.

use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

use nix::poll::PollFlags;

use crate::Command;
use crate::args::Args;
use crate::fail::{Res, emit, ioerr, ms_since, status, usage};
use crate::net::{tcp_socket, wait_fd};

pub const COMMAND: Command =
    Command::new("connect", SYNTAX, HELP, 1..=1, run).options(&["--expect"], &[]);

const SYNTAX: &str =
    "connect ADDR [--expect ok|refused|netunreach|hostunreach|unreachable|timeout|error]";

const HELP: &str = "  connect ADDR [--expect R]         one connect; prints `result=R errno= ms=`
        R: ok|refused|netunreach|hostunreach|unreachable|timeout|error
        exit 0 iff the result matches --expect (default: ok)
";

const RESULTS: [&str; 7] = [
    "ok",
    "refused",
    "netunreach",
    "hostunreach",
    "unreachable",
    "timeout",
    "error",
];

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let expect = a.opt("--expect").unwrap_or("ok");
    if !RESULTS.contains(&expect) {
        return Err(usage(format!("bad --expect {expect:?}")));
    }
    let s = tcp_socket(addr).map_err(|e| ioerr("socket", e))?;
    let t0 = Instant::now();
    let r: Option<io::Error> = match s.connect(&addr.into()) {
        Ok(()) => None,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            if wait_fd(s.as_fd(), PollFlags::POLLOUT, a.timeout)? {
                s.take_error().unwrap_or_else(Some)
            } else {
                Some(io::Error::from_raw_os_error(libc::ETIMEDOUT))
            }
        }
        Err(e) => Some(e),
    };
    let ms = ms_since(t0);
    let errno = r.as_ref().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let result = match errno {
        0 if r.is_none() => "ok",
        libc::ECONNREFUSED => "refused",
        libc::ENETUNREACH => "netunreach",
        libc::EHOSTUNREACH => "hostunreach",
        libc::ETIMEDOUT => "timeout",
        _ => "error",
    };
    emit(&format!("result={result} errno={errno} ms={ms}"));
    Ok(status(
        expect == result || (expect == "unreachable" && result.ends_with("unreach")),
    ))
}
