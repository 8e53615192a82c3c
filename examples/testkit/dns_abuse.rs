//! `dns-abuse SERVER MODE [N]`: malformed input for a DNS server, over UDP
//! (counted by reply RCODE) and TCP (how the server ends the connection).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::SockRef;

use crate::Command;
use crate::args::{Args, parse_server};
use crate::dns;
use crate::fail::{Fail, Res, emit, ioerr, is_timeout, ms_since, usage};
use crate::net::{Held, connect_tcp, udp_connected};

const SYNTAX: &str = "dns-abuse SERVER truncated|lying-counts|compression-loop|qr1|\
                      tcp-64k-eof|tcp-cut-rst [N]|tcp-idle N";

pub const COMMAND: Command = Command::new("dns-abuse", SYNTAX, HELP, 2..=3, run);

const HELP: &str = "  dns-abuse SERVER MODE [N]         malformed DNS input; MODE: truncated,
        lying-counts, compression-loop, qr1 (UDP, then a good query whose
        answer ends the count; prints `sent= replies= noerror= formerr=
        servfail= nxdomain= notimp= refused= other=`),
        tcp-64k-eof (`result=closed|reset|timeout bytes= ms=`), tcp-cut-rst
        [N=1000] (half a query then RST, N times: `done= errors= ms=`),
        tcp-idle N (hold N connections: `open=N`, then `closed=C ms=` once the
        server closed them all or at --timeout)
";

/// The ID of the good query that closes a UDP batch.
const CLOSING_ID: u16 = 0xc105;

fn run(a: &Args) -> Res<i32> {
    let server = parse_server(&a.pos[0])?;
    let n = || {
        if a.pos.len() > 2 {
            a.pos_num(2)
        } else {
            Ok(1000)
        }
    };
    let t0 = Instant::now();
    let good = dns::query(
        "a.test",
        hickory_proto::rr::RecordType::A,
        0x0bad,
        Some(1232),
    )
    .expect("literal query");
    let mode = a.pos[1].as_str();
    let line = if let Some(msgs) = udp_messages(mode, &good) {
        udp_batch(server, &msgs, &good, a.timeout)?
    } else {
        let line = match mode {
            "tcp-64k-eof" => tcp_64k_eof(server, a.timeout)?,
            "tcp-cut-rst" => tcp_cut_rst(server, &good, n()?, a.timeout),
            "tcp-idle" => tcp_idle(server, n()?, t0 + a.timeout, a.timeout)?,
            other => return Err(usage(format!("unknown dns-abuse mode {other:?}: {SYNTAX}"))),
        };
        format!("{line} ms={}", ms_since(t0))
    };
    emit(&line);
    Ok(0)
}

/// A header with these counts, then `rest`.
fn raw(id: u16, flags: u16, counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(rest);
    v
}

/// The datagrams of a UDP mode (None for the others).
fn udp_messages(mode: &str, good: &[u8]) -> Option<Vec<Vec<u8>>> {
    // a.test A IN, uncompressed.
    let mut question = vec![1, b'a', 4, b't', b'e', b's', b't', 0];
    question.extend_from_slice(&[0, 1, 0, 1]);
    Some(match mode {
        "truncated" => (0..good.len()).map(|n| good[..n].to_vec()).collect(),
        "lying-counts" => [
            [0, 0, 0, 0],
            [2, 0, 0, 0],
            [65535, 0, 0, 0],
            [1, 1, 0, 0],
            [1, 0, 5, 0],
            [1, 0, 0, 65535],
            [1, 65535, 65535, 65535],
        ]
        .into_iter()
        .map(|counts| raw(0x1000, 0x0100, counts, &question))
        .collect(),
        "compression-loop" => {
            let mut msgs: Vec<Vec<u8>> = [
                &[0xC0u8, 12][..],
                &[1, b'a', 0xC0, 12],
                &[0xC0, 14, 0xC0, 12],
                &[0xC0, 0xFF],
                &[0xFF, 0xFF],
                &[0x40, b'a', 0],
            ]
            .into_iter()
            .map(|name| {
                raw(
                    0x2000,
                    0x0100,
                    [1, 0, 0, 0],
                    &[name, &[0, 1, 0, 1]].concat(),
                )
            })
            .collect();
            // A record (in the additional section) with a pointer loop.
            let mut rest = question;
            rest.extend_from_slice(&[0xC0, 24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
            msgs.push(raw(0x2001, 0x0100, [1, 0, 0, 1], &rest));
            msgs
        }
        "qr1" => {
            let mut resp = good.to_vec();
            resp[2] |= 0x80;
            vec![resp.clone(), resp.clone(), resp]
        }
        _ => return None,
    })
}

/// Sends each datagram, then a good query (ID [`CLOSING_ID`]) that only the
/// upstream can answer: the server takes the datagrams in order, so once
/// that answer is in, so is every reply to the others. Counts those replies
/// by RCODE.
fn udp_batch(server: SocketAddr, msgs: &[Vec<u8>], good: &[u8], t: Duration) -> Res<String> {
    let s = udp_connected(server)?;
    for m in msgs {
        let _ = s.send(m);
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut closing = good.to_vec();
    closing[..2].copy_from_slice(&CLOSING_ID.to_be_bytes());
    s.send(&closing).map_err(|e| ioerr("send", e))?;
    s.set_read_timeout(Some(t))
        .map_err(|e| ioerr("setsockopt", e))?;
    let mut counts = [0u64; 7];
    let mut replies = 0u64;
    let mut inb = vec![0u8; 65536];
    loop {
        match s.recv(&mut inb) {
            Ok(n) if inb[..n].starts_with(&CLOSING_ID.to_be_bytes()) => break,
            Ok(n) => {
                replies += 1;
                let slot = match dns::rcode_of(&inb[..n]) {
                    Some(rc @ 0..=5) => usize::from(rc),
                    _ => 6,
                };
                counts[slot] += 1;
            }
            Err(e) if is_timeout(&e) => {
                return Err(Fail::Timeout(
                    "dns-abuse: no answer to the closing query".into(),
                ));
            }
            // An ICMP error for an earlier datagram.
            Err(_) => {}
        }
    }
    Ok(format!(
        "sent={} replies={replies} noerror={} formerr={} servfail={} nxdomain={} notimp={} refused={} other={}",
        msgs.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        counts[5],
        counts[6]
    ))
}

/// A 64 KiB length prefix, a few bytes, then EOF: how the server ends it.
fn tcp_64k_eof(server: SocketAddr, t: Duration) -> Res<String> {
    let mut s = connect_tcp(server, None, t)?;
    let _ = s.write_all(&[0xff, 0xff, 0x12, 0x34, 0x01]);
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let result = match s.read_to_end(&mut got) {
        Ok(_) => "closed",
        Err(e) if is_timeout(&e) => "timeout",
        Err(_) => "reset",
    };
    Ok(format!("result={result} bytes={}", got.len()))
}

/// `n` connections that send half a query and close with RST.
fn tcp_cut_rst(server: SocketAddr, good: &[u8], n: usize, t: Duration) -> String {
    let half = dns::tcp_frame(good);
    let half = &half[..half.len() / 2];
    let mut errors = 0;
    for _ in 0..n {
        let Ok(s) = connect_tcp(server, None, t) else {
            errors += 1;
            continue;
        };
        let _ = (&s).write_all(half);
        // Close with RST.
        let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
        drop(s);
    }
    format!("done={n} errors={errors}")
}

/// `n` idle connections (`open=` once made), held until the server closed
/// them all or `deadline`.
fn tcp_idle(server: SocketAddr, n: usize, deadline: Instant, t: Duration) -> Res<String> {
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    for _ in 0..n {
        match connect_tcp(server, None, t) {
            Ok(s) => {
                let _ = s.set_nonblocking(true);
                conns.push(s);
            }
            Err(_) => break,
        }
    }
    emit(&format!("open={}", conns.len()));
    let mut held = Held::new(conns);
    while held.open() > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        held.poll(None, left)?;
    }
    Ok(format!("closed={}", held.closed))
}
