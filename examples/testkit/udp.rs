//! `udp ADDR`: N datagrams echoed back one by one (retried), or
//! `--expect-unreachable`: the ICMP error a closed port draws.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::Command;
use crate::args::Args;
use crate::fail::{Fail, Res, emit, ioerr, is_timeout, ms_since, status, usage};
use crate::net::udp_connected;
use crate::stream::Stream;

pub const COMMAND: Command = Command::new("udp", SYNTAX, HELP, 1..=1, run)
    .options(&["--count", "--size", "--burst"], &["--expect-unreachable"]);

const SYNTAX: &str = "udp ADDR [--count N] [--size S] [--burst B] [--expect-unreachable]";

const HELP: &str =
    "  udp ADDR [--count N] [--size S]   N (100) datagrams of S (1000) bytes, 1 s per
        echo, 3 retries; prints `ok=1 sent= received= retries= bad=`
  udp ADDR --burst B [--count N] [--size S]   the N datagrams back to back, B
        at a time, each B-th half as long (a helper may send a burst as one
        segmented send: each echo must come back whole, its own length);
        rounds resend what was not echoed; prints the same line
  udp ADDR --expect-unreachable     expect ECONNREFUSED; prints `result= ms=`
";

/// Tries per datagram, and how long each waits for the echo.
const ATTEMPTS: u64 = 4;
const ECHO_WAIT: Duration = Duration::from_secs(1);

fn run(a: &Args) -> Res<i32> {
    let addr = a.addr(0)?;
    let s = udp_connected(addr)?;
    let deadline = Instant::now() + a.timeout;
    if a.flag("--expect-unreachable") {
        return expect_unreachable(&s, deadline);
    }
    let count: u64 = a.num("--count", 100)?;
    let size: usize = a.num("--size", 1000)?;
    if !(4..=65507).contains(&size) {
        return Err(usage("--size must be 4..=65507"));
    }
    if let Some(burst) = a.opt_num::<usize>("--burst")? {
        if burst == 0 {
            return Err(usage("--burst must be at least 1"));
        }
        return bursts(&s, count, size, burst, deadline);
    }
    let mut out = vec![0u8; size];
    let mut inb = vec![0u8; 65536];
    let (mut received, mut retries, mut bad) = (0u64, 0u64, 0u64);
    for seq in 0..count {
        if Instant::now() > deadline {
            return Err(Fail::Timeout(format!("udp: {received} of {count} echoed")));
        }
        datagram(seq, size, &mut out);
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                retries += 1;
            }
            s.send(&out)
                .map_err(|e| ioerr(format!("udp send #{seq}"), e))?;
            match echo(&s, &out, &mut inb, seq)? {
                Some(true) => received += 1,
                Some(false) => bad += 1,
                None => continue,
            }
            break;
        }
    }
    report(count, count, received, retries, bad)
}

/// The result line of both forms; ok when all `count` came back whole.
fn report(count: u64, sent: u64, received: u64, retries: u64, bad: u64) -> Res<i32> {
    let ok = received == count && bad == 0;
    emit(&format!(
        "ok={} sent={sent} received={received} retries={retries} bad={bad}",
        ok as u8
    ));
    Ok(status(ok))
}

/// Datagram `seq` of `len` bytes: its number, then stream(seq).
fn datagram(seq: u64, len: usize, out: &mut [u8]) -> &[u8] {
    let out = &mut out[..len];
    out[..4].copy_from_slice(&((seq & 0xFFFF_FFFF) as u32).to_be_bytes());
    Stream::new(seq).fill(&mut out[4..]);
    out
}

/// `--burst`: rounds of back-to-back bursts of the datagrams not yet echoed,
/// each burst's last one half as long; an echo counts when it is exactly a
/// datagram that was sent (its length one of the two, its bytes its own).
fn bursts(s: &UdpSocket, count: u64, size: usize, burst: usize, deadline: Instant) -> Res<i32> {
    let short = (size / 2).max(4);
    let mut echoed = vec![false; usize::try_from(count).unwrap_or(0)];
    let mut out = vec![0u8; size];
    let mut want = vec![0u8; size];
    let mut inb = vec![0u8; 65536];
    let (mut sent, mut received, mut bad, mut rounds) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let missing: Vec<u64> = (0..count)
            .filter(|&i| !echoed[usize::try_from(i).unwrap_or(0)])
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        rounds += 1;
        for chunk in missing.chunks(burst) {
            for (k, &seq) in chunk.iter().enumerate() {
                let len = if k + 1 == burst { short } else { size };
                s.send(datagram(seq, len, &mut out))
                    .map_err(|e| ioerr(format!("udp send #{seq}"), e))?;
                sent += 1;
            }
        }
        // Echoes until a quiet second.
        loop {
            s.set_read_timeout(Some(ECHO_WAIT))
                .map_err(|e| ioerr("setsockopt", e))?;
            let n = match s.recv(&mut inb) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ioerr("udp recv", e)),
            };
            let seq = inb
                .get(..4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(|b| u64::from(u32::from_be_bytes(b)));
            let whole = seq.filter(|&q| {
                q < count && (n == size || n == short) && inb[..n] == *datagram(q, n, &mut want)
            });
            match whole {
                Some(q) => {
                    let slot = &mut echoed[usize::try_from(q).unwrap_or(0)];
                    received += u64::from(!*slot);
                    *slot = true;
                }
                None => bad += 1,
            }
        }
    }
    report(count, sent, received, rounds.saturating_sub(1), bad)
}

/// Wait (at most [`ECHO_WAIT`]) for the echo of `out`, skipping late echoes
/// of earlier datagrams: whether it came back intact, None if it did not
/// come.
fn echo(s: &UdpSocket, out: &[u8], inb: &mut [u8], seq: u64) -> Res<Option<bool>> {
    let until = Instant::now() + ECHO_WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| ioerr("setsockopt", e))?;
        match s.recv(inb) {
            Ok(n) if n >= 4 && inb[..4] == out[..4] => return Ok(Some(inb[..n] == *out)),
            Ok(_) => {} // a late echo of an earlier datagram
            Err(e) if is_timeout(&e) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ioerr(format!("udp recv #{seq}"), e)),
        }
    }
}

/// Send until the port's ICMP error (ECONNREFUSED) arrives, resending each
/// second, until `deadline`.
fn expect_unreachable(s: &UdpSocket, deadline: Instant) -> Res<i32> {
    let t0 = Instant::now();
    let mut inb = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let r = s.send(b"testkit").and_then(|_| {
            s.set_read_timeout(Some(left.clamp(Duration::from_millis(1), ECHO_WAIT)))?;
            s.recv(&mut inb)
        });
        let result = match r {
            Ok(_) => "reply",
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => "refused",
            Err(e) if is_timeout(&e) && !left.is_zero() => continue,
            Err(e) if is_timeout(&e) => "timeout",
            Err(_) => "error",
        };
        emit(&format!("result={result} ms={}", ms_since(t0)));
        return Ok(status(result == "refused"));
    }
}
