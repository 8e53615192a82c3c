//! `dig SERVER NAME TYPE`: one DNS query and its answer, or with --count a
//! load of queries and their latency percentiles.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use nix::poll::PollFlags;

use crate::Command;
use crate::args::{Args, parse_server};
use crate::dns;
use crate::fail::{Fail, Res, emit, ioerr, is_timeout, ms_since, status, usage};
use crate::net::{connect_tcp, set_nonblocking, udp_connected, wait_fd};

pub const COMMAND: Command = Command::new("dig", SYNTAX, HELP, 3..=3, run)
    .options(&["--count", "--rate", "--edns"], &["--tcp"]);

const SYNTAX: &str = "dig SERVER NAME TYPE [--tcp] [--edns SIZE] [--count N] [--rate QPS]";

const HELP: &str = "  dig SERVER NAME TYPE [--tcp] [--edns SIZE] [--count N] [--rate QPS]   one
        query (UDP resent every second): `rcode= answers= tc=0|1 data= ms=
        tries=` (data: the first answer; tries: times sent); with --count: N
        queries (UDP: at QPS, or 256 outstanding; TCP: one connection, in
        turn), prints `sent= received= p50_us= p99_us=`. SERVER is IP or
        IP:PORT (port 53)
";

/// What to ask: the query with a given ID.
struct Ask<'a> {
    name: &'a str,
    rtype: RecordType,
    edns: Option<u16>,
}

impl Ask<'_> {
    fn query(&self, id: u16) -> Res<Vec<u8>> {
        dns::query(self.name, self.rtype, id, self.edns)
            .ok_or_else(|| usage(format!("bad name {:?}", self.name)))
    }
}

/// Counts and latencies of a load run.
#[derive(Default)]
struct Load {
    sent: u64,
    received: u64,
    lat_us: Vec<u64>,
}

fn run(a: &Args) -> Res<i32> {
    let server = parse_server(&a.pos[0])?;
    let rtype = dns::parse_type(&a.pos[2])
        .ok_or_else(|| usage(format!("bad record type {:?}", a.pos[2])))?;
    let ask = Ask {
        name: &a.pos[1],
        rtype,
        edns: a.opt_num("--edns")?,
    };
    let tcp = a.flag("--tcp");
    let deadline = Instant::now() + a.timeout;
    let Some(count) = a.opt_num::<u64>("--count")? else {
        return one(server, &ask, tcp, a, deadline);
    };
    let rate: f64 = a.num("--rate", 0.0)?;
    let mut load = if tcp {
        tcp_load(server, &ask, count, rate, a)?
    } else {
        udp_load(server, &ask, count, rate, deadline)?
    };
    load.lat_us.sort_unstable();
    emit(&format!(
        "sent={} received={} p50_us={} p99_us={}",
        load.sent,
        load.received,
        percentile(&load.lat_us, 0.5),
        percentile(&load.lat_us, 0.99)
    ));
    Ok(status(load.received == load.sent))
}

/// One query, resent every second over UDP; prints its summary, the time
/// to the answer and how many times the query was sent.
fn one(server: SocketAddr, ask: &Ask, tcp: bool, a: &Args, deadline: Instant) -> Res<i32> {
    let t0 = Instant::now();
    let query = ask.query(0x5eed)?;
    let (reply, tries) = if tcp {
        let mut s = connect_tcp(server, None, a.timeout)?;
        (dns::tcp_exchange(&mut s, &query)?, 1)
    } else {
        udp_answer(&udp_connected(server)?, server, &query, ask.name, deadline)?
    };
    emit(&format!(
        "{} ms={} tries={tries}",
        dns::summary(&reply),
        ms_since(t0)
    ));
    Ok(0)
}

/// Send `query`, resending every second, until its answer (the same ID)
/// comes or `deadline` passes: the answer and how many times it was sent.
fn udp_answer(
    s: &UdpSocket,
    server: SocketAddr,
    query: &[u8],
    name: &str,
    deadline: Instant,
) -> Res<(Vec<u8>, u32)> {
    let mut inb = vec![0u8; 65536];
    let mut tries = 0;
    loop {
        s.send(query)
            .map_err(|e| ioerr(format!("send {server}"), e))?;
        tries += 1;
        let resend = Instant::now() + Duration::from_secs(1);
        loop {
            let left = resend
                .min(deadline)
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                if Instant::now() >= deadline {
                    return Err(Fail::Timeout(format!("dig {name}: no answer")));
                }
                break;
            }
            s.set_read_timeout(Some(left))
                .map_err(|e| ioerr("setsockopt", e))?;
            match s.recv(&mut inb) {
                Ok(n) if n >= 2 && inb[..2] == query[..2] => return Ok((inb[..n].to_vec(), tries)),
                Ok(_) => {}
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ioerr(format!("recv {server}"), e)),
            }
        }
    }
}

/// `count` queries over one TCP connection, in turn (at `rate` per second
/// if given).
fn tcp_load(server: SocketAddr, ask: &Ask, count: u64, rate: f64, a: &Args) -> Res<Load> {
    let mut load = Load::default();
    let mut s = connect_tcp(server, None, a.timeout)?;
    let t0 = Instant::now();
    for i in 0..count {
        if rate > 0.0 {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let t = Instant::now();
        // Query ids wrap at 16 bits.
        let id = (i & 0xFFFF) as u16;
        let r = dns::tcp_exchange(&mut s, &ask.query(id)?)?;
        load.sent += 1;
        if r.get(..2) == Some(&id.to_be_bytes()[..]) {
            load.received += 1;
            load.lat_us.push(micros(t.elapsed()));
        }
    }
    Ok(load)
}

/// `count` queries over UDP at `rate` per second, or with at most 256
/// outstanding; answers are collected until 2 s after the last was sent.
fn udp_load(server: SocketAddr, ask: &Ask, count: u64, rate: f64, deadline: Instant) -> Res<Load> {
    let mut load = Load::default();
    let s = udp_connected(server)?;
    set_nonblocking(&s)?;
    let queries: Vec<Vec<u8>> = (0..256u16).map(|id| ask.query(id)).collect::<Res<_>>()?;
    let mut out_at: Vec<Option<Instant>> = vec![None; 65536];
    let mut inb = vec![0u8; 65536];
    let t0 = Instant::now();
    let mut stop_at = deadline;
    loop {
        let now = Instant::now();
        while load.sent < count {
            let due = if rate > 0.0 {
                t0 + Duration::from_secs_f64(load.sent as f64 / rate)
            } else {
                now
            };
            // Without a rate: at most 256 outstanding.
            if due > now || (rate <= 0.0 && load.sent - load.received >= 256) {
                break;
            }
            let id = (load.sent & 0xFFFF) as u16;
            let mut msg = queries[usize::from(id % 256)].clone();
            msg[..2].copy_from_slice(&id.to_be_bytes());
            match s.send(&msg) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error from an earlier datagram: keep going.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(ioerr("send", e)),
            }
            out_at[usize::from(id)] = Some(Instant::now());
            load.sent += 1;
            if load.sent == count {
                stop_at = stop_at.min(Instant::now() + Duration::from_secs(2));
            }
        }
        collect(&s, &mut inb, &mut out_at, &mut load);
        if load.received >= count || Instant::now() >= stop_at {
            return Ok(load);
        }
        let wait = if load.sent < count && rate > 0.0 {
            Duration::from_micros(200)
        } else {
            Duration::from_millis(10)
        };
        let _ = wait_fd(s.as_fd(), PollFlags::POLLIN, wait)?;
    }
}

/// Take the answers waiting on `s`, matching them to the queries sent.
fn collect(s: &UdpSocket, inb: &mut [u8], out_at: &mut [Option<Instant>], load: &mut Load) {
    loop {
        match s.recv(inb) {
            Ok(n) if n >= 12 => {
                let id = usize::from(u16::from_be_bytes([inb[0], inb[1]]));
                if let Some(t) = out_at[id].take() {
                    load.received += 1;
                    load.lat_us.push(micros(t.elapsed()));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {}
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

// p is in 0..=1, so the rounded index is in 0..len.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(percentile(&[1, 2, 3, 4, 100], 0.5), 3);
        assert_eq!(percentile(&[], 0.99), 0);
    }
}
