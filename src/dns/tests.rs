//! The stub with real sockets: fake upstream servers on loopback (threads)
//! and a `mio::Poll` loop driven by the test, with a clock the test can move
//! forward so that timeouts need no sleeping.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixStream as StdUnix;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mio::{Events, Poll, Token};

const CLIENT: &str = "10.0.2.100:40000";
const SERVER: &str = "10.0.2.3:53";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ------------------------------------------------------------ fake upstream

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Answers the test zone.
    Zone,
    /// Before each real answer: a spoof from another port, a wrong ID, a
    /// wrong question, a query (QR=0) and junk.
    Noisy,
    /// Reads nothing, answers nothing.
    Silent,
    /// Answers UDP queries in full, whatever their size limit.
    Oversize,
}

struct Fake {
    addr: SocketAddr,
    /// Every real answer sent, in order.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    _keep: Option<UdpSocket>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the TCP accept.
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(100));
    }
}

fn zone_answer(query: &[u8], tag: &str, udp: bool) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.authoritative = true;
    m.add_query(question.clone());
    let name = question.name().clone();
    let limit = q
        .edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload().max(512)));
    if q.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    let lower = name.to_lowercase().to_ascii();
    let rec = |data| Record::from_rdata(name.clone(), 60, data);
    match (lower.as_str(), question.query_type()) {
        ("a.test.", RecordType::A) => {
            m.add_answer(rec(RData::A(A("198.18.0.10".parse().unwrap()))));
        }
        ("aaaa.test.", RecordType::AAAA) => {
            m.add_answer(rec(RData::AAAA(AAAA("2001:db8::10".parse().unwrap()))));
        }
        ("tag.test.", RecordType::TXT) => {
            m.add_answer(rec(RData::TXT(TXT::new(vec![tag.to_string()]))));
        }
        ("big.test.", RecordType::TXT) => {
            let strings = (0..20)
                .map(|i| format!("{i:02}{}", "x".repeat(98)))
                .collect();
            m.add_answer(rec(RData::TXT(TXT::new(strings))));
        }
        _ => m.metadata.response_code = ResponseCode::NXDomain,
    }
    let full = m.to_vec().ok()?;
    if udp && full.len() > limit {
        m.answers.clear();
        m.metadata.truncation = true;
        return m.to_vec().ok();
    }
    Some(full)
}

/// A fake upstream on `ip` (port chosen here), UDP and TCP on one port.
fn fake(ip: &str, mode: Mode, tag: &str) -> Fake {
    let (udp, tcp) = (0..50)
        .find_map(|_| {
            let udp = UdpSocket::bind((ip, 0)).ok()?;
            let port = udp.local_addr().ok()?.port();
            let tcp = TcpListener::bind((ip, port)).ok()?;
            Some((udp, tcp))
        })
        .expect("a free port");
    let addr = udp.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let queries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let keep = if mode == Mode::Silent {
        Some(udp.try_clone().unwrap())
    } else {
        None
    };
    if mode != Mode::Silent {
        let (sent, queries, stop, tag) =
            (sent.clone(), queries.clone(), stop.clone(), tag.to_string());
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let spoofer = UdpSocket::bind((ip, 0)).unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, peer)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                queries.fetch_add(1, Ordering::SeqCst);
                let query = &buf[..n];
                let Some(answer) = zone_answer(query, &tag, mode != Mode::Oversize) else {
                    continue;
                };
                if mode == Mode::Noisy {
                    let mut spoof = answer.clone();
                    let last = spoof.len() - 1;
                    spoof[last] ^= 1; // another address
                    let _ = spoofer.send_to(&spoof, peer);
                    let mut wrong_id = answer.clone();
                    wrong_id[0] ^= 0x55;
                    let _ = udp.send_to(&wrong_id, peer);
                    let other_q = zone_answer(
                        &{
                            let mut m = Message::from_vec(query).unwrap();
                            m.queries[0].set_name(Name::from_ascii("other.test.").unwrap());
                            m.to_vec().unwrap()
                        },
                        &tag,
                        true,
                    )
                    .unwrap();
                    let _ = udp.send_to(&other_q, peer);
                    let _ = udp.send_to(query, peer);
                    let _ = udp.send_to(&answer[..7], peer);
                    let mut lying = answer.clone();
                    lying[7] = lying[7].wrapping_add(3);
                    let _ = udp.send_to(&lying, peer);
                }
                sent.lock().unwrap().push(answer.clone());
                let _ = udp.send_to(&answer, peer);
            }
        });
    }
    {
        let (sent, queries, stop, tag) =
            (sent.clone(), queries.clone(), stop.clone(), tag.to_string());
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                if mode == Mode::Silent {
                    std::mem::forget(conn);
                    continue;
                }
                let (sent, queries, tag) = (sent.clone(), queries.clone(), tag.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    loop {
                        let mut len = [0u8; 2];
                        if conn.read_exact(&mut len).is_err() {
                            return;
                        }
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if conn.read_exact(&mut q).is_err() {
                            return;
                        }
                        queries.fetch_add(1, Ordering::SeqCst);
                        let Some(a) = zone_answer(&q, &tag, false) else {
                            return;
                        };
                        sent.lock().unwrap().push(a.clone());
                        let mut out = u16::try_from(a.len()).unwrap().to_be_bytes().to_vec();
                        out.extend_from_slice(&a);
                        if conn.write_all(&out).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    Fake {
        addr,
        sent,
        queries,
        stop,
        _keep: keep,
    }
}

/// A loopback UDP port with nothing behind it (ICMP port unreachable).
fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

// ------------------------------------------------------------ harness

struct H {
    poll: Poll,
    events: Events,
    stub: DnsStub,
    t0: Instant,
    skew: i64,
    replies: Vec<Reply>,
}

impl H {
    fn new(cfg: DnsConfig) -> H {
        H {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(256),
            stub: DnsStub::new(cfg).unwrap(),
            t0: Instant::now(),
            skew: 0,
            replies: Vec::new(),
        }
    }

    fn with_upstreams(up: &[SocketAddr]) -> H {
        let mut cfg = DnsConfig::new(AddrPlan::default());
        cfg.upstream = up.to_vec();
        H::new(cfg)
    }

    fn now(&self) -> i64 {
        i64::try_from(self.t0.elapsed().as_micros()).unwrap() + self.skew
    }

    /// Moves the clock forward and runs what became due.
    fn advance(&mut self, us: i64) {
        self.skew += us;
        self.turn(Duration::ZERO);
    }

    fn udp(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.udp_from(sa(CLIENT), bytes)
    }

    fn udp_from(&mut self, client: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
        let now = self.now();
        let mut io = DnsIo {
            registry: self.poll.registry(),
            now_us: now,
            token: &Token,
        };
        self.stub.udp_query(client, sa(SERVER), bytes, &mut io)
    }

    fn tcp(&mut self) -> StdUnix {
        let (ours, theirs) = StdUnix::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        ours.set_nonblocking(true).unwrap();
        let now = self.now();
        let mut io = DnsIo {
            registry: self.poll.registry(),
            now_us: now,
            token: &Token,
        };
        self.stub
            .tcp_connection(mio::net::UnixStream::from_std(theirs), &mut io);
        ours
    }

    /// One loop turn: wait up to `max` (or the stub's deadline), dispatch.
    fn turn(&mut self, max: Duration) {
        let now = self.now();
        let timeout = match self.stub.next_deadline() {
            Some(d) => max.min(Duration::from_micros(
                u64::try_from((d - now).max(0)).unwrap(),
            )),
            None => max,
        };
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        let now = self.now();
        let mut io = DnsIo {
            registry: self.poll.registry(),
            now_us: now,
            token: &Token,
        };
        for ev in self.events.iter() {
            let r = self
                .stub
                .event(ev.token().0, ev.is_readable(), ev.is_writable(), &mut io);
            self.replies.extend(r);
        }
        if self.stub.next_deadline().is_some_and(|d| d <= now) {
            self.replies.extend(self.stub.run_timers(&mut io));
        }
    }

    /// Turns until `n` replies are in (real time, bounded).
    fn wait(&mut self, n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while self.replies.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.turn(left.min(Duration::from_millis(50)));
        }
        true
    }

    fn one_reply(&mut self) -> Reply {
        assert!(self.wait(1, Duration::from_secs(5)), "no reply");
        self.replies.remove(0)
    }

    /// Reads one length-prefixed answer from a TCP client socket, turning
    /// the loop meanwhile. None on EOF.
    fn tcp_read(&mut self, s: &mut StdUnix, buf: &mut Vec<u8>, limit: Duration) -> Option<Vec<u8>> {
        let end = Instant::now() + limit;
        loop {
            if buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                if buf.len() >= 2 + len {
                    let msg = buf[2..2 + len].to_vec();
                    buf.drain(..2 + len);
                    return Some(msg);
                }
            }
            let mut chunk = [0u8; 8192];
            match s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < end, "TCP answer timed out");
                    self.turn(Duration::from_millis(20));
                }
                Err(_) => return None,
            }
        }
    }

    /// True once the stub closed TCP client `s` (EOF on our end).
    fn tcp_closed(&mut self, s: &mut StdUnix, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            self.turn(Duration::from_millis(5));
            let mut b = [0u8; 1024];
            match s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return true,
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }
}

fn query(name: &str, t: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn parse(b: &[u8]) -> Message {
    Message::from_vec(b).unwrap()
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(msg.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

// ------------------------------------------------------------ tests

#[test]
fn forwards_and_passes_the_answer_through_byte_for_byte() {
    let up = fake("127.0.0.53", Mode::Zone, "one");
    let mut h = H::with_upstreams(&[up.addr]);
    assert_eq!(h.stub.next_deadline(), None);
    for (name, t, edns) in [
        ("a.test", RecordType::A, true),
        ("A.Test", RecordType::A, false),
        ("aaaa.test", RecordType::AAAA, true),
        ("nothing.test", RecordType::A, false),
    ] {
        let q = query(name, t, 0xBEEF, edns);
        assert_eq!(h.udp(&q), None, "forwarded, no immediate answer");
        assert!(h.stub.next_deadline().is_some());
        let r = h.one_reply();
        assert_eq!(r.client, sa(CLIENT));
        assert_eq!(r.server, sa(SERVER));
        let sent = up.sent.lock().unwrap().last().unwrap().clone();
        assert_eq!(&r.bytes[..2], &[0xBE, 0xEF], "the requester's ID");
        assert_eq!(r.bytes[2..], sent[2..], "every other byte unchanged");
        // The upstream saw another ID.
        assert_ne!(sent[..2], r.bytes[..2]);
        // Nothing pending: no timer, the loop may sleep forever.
        assert_eq!(h.stub.next_deadline(), None);
        assert_eq!(h.stub.pending(), 0);
        let want = if name == "nothing.test" {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(parse(&r.bytes).metadata.response_code, want);
    }
    let s = h.stub.stats();
    assert_eq!(s.forwarded, 4);
    assert_eq!(s.answers, 4);
    assert_eq!(up.queries.load(Ordering::SeqCst), 4);
}

#[test]
fn local_answers_and_errors_are_immediate() {
    let mut h = H::with_upstreams(&[closed_port()]);
    let a = h
        .udp(&query("host.containers.internal", RecordType::A, 7, false))
        .unwrap();
    let m = parse(&a);
    assert_eq!(m.answers[0].data, RData::A(A("10.0.2.2".parse().unwrap())));
    let a = h
        .udp(&query("x.rlnet.internal", RecordType::A, 7, false))
        .unwrap();
    assert_eq!(parse(&a).metadata.response_code, ResponseCode::NXDomain);
    // Junk: FORMERR; a response: nothing.
    let mut junk = query("a.test", RecordType::A, 9, false);
    junk[11] = 3;
    assert_eq!(
        parse(&h.udp(&junk).unwrap()).metadata.response_code,
        ResponseCode::FormErr
    );
    assert_eq!(h.udp(&a), None);
    assert_eq!(h.udp(b"\x01\x02"), None);
    assert_eq!(h.stub.next_deadline(), None, "nothing went upstream");
    let s = h.stub.stats();
    assert_eq!((s.local, s.rejected, s.dropped, s.forwarded), (2, 1, 2, 0));
}

#[test]
fn mismatched_replies_and_spoofs_are_dropped() {
    let up = fake("127.0.0.1", Mode::Noisy, "real");
    let mut h = H::with_upstreams(&[up.addr]);
    for i in 0..20u16 {
        h.udp(&query("a.test", RecordType::A, i, false));
    }
    assert!(h.wait(20, Duration::from_secs(5)));
    // Let any stray datagram arrive.
    h.turn(Duration::from_millis(50));
    assert_eq!(h.replies.len(), 20, "exactly one answer per query");
    let sent = up.sent.lock().unwrap().clone();
    for r in &h.replies {
        let m = parse(&r.bytes);
        assert_eq!(
            m.answers[0].data,
            RData::A(A("198.18.0.10".parse().unwrap()))
        );
        assert!(sent.iter().any(|s| s[2..] == r.bytes[2..]));
    }
    let mut ids: Vec<u16> = h
        .replies
        .iter()
        .map(|r| u16::from_be_bytes([r.bytes[0], r.bytes[1]]))
        .collect();
    ids.sort();
    assert_eq!(ids, (0..20).collect::<Vec<_>>());
    // wrong ID, other question, QR=0, short, lying count: 5 per query (the
    // spoof from another port never reaches the connected socket).
    assert_eq!(h.stub.stats().bad_replies, 100);
}

#[test]
fn refused_upstream_fails_over_at_once() {
    let good = fake("127.0.0.1", Mode::Zone, "second");
    let mut h = H::with_upstreams(&[closed_port(), good.addr]);
    let t = Instant::now();
    h.udp(&query("tag.test", RecordType::TXT, 1, false));
    let r = h.one_reply();
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(
        parse(&r.bytes).answers[0]
            .data
            .to_string()
            .contains("second")
    );
    assert!(h.stub.stats().refused >= 1);
    assert_eq!(h.stub.stats().timeouts, 0);
    // Penalised: the next query goes to the second server directly.
    h.udp(&query("a.test", RecordType::A, 2, false));
    h.one_reply();
    assert_eq!(good.queries.load(Ordering::SeqCst), 2);
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn silent_upstream_fails_over_after_the_attempt_timeout() {
    let silent = fake("127.0.0.1", Mode::Silent, "");
    let good = fake("127.0.0.1", Mode::Zone, "second");
    let mut h = H::with_upstreams(&[silent.addr, good.addr]);
    let t = Instant::now();
    h.udp(&query("tag.test", RecordType::TXT, 1, false));
    // Real time: answered within 2 s.
    let r = h.one_reply();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(
        parse(&r.bytes).answers[0]
            .data
            .to_string()
            .contains("second")
    );
    assert_eq!(h.stub.stats().timeouts, 1);
    // The silent one is now tried last.
    let t = Instant::now();
    h.udp(&query("a.test", RecordType::A, 2, false));
    h.one_reply();
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn all_refused_gives_servfail_at_once() {
    let mut h = H::with_upstreams(&[closed_port(), closed_port()]);
    let q = query("a.test", RecordType::A, 0x4242, true);
    h.udp(&q);
    let r = h.one_reply();
    let m = parse(&r.bytes);
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(m.queries[0].name().to_ascii(), "a.test.");
    // The question bytes are the requester's.
    assert_eq!(r.bytes[12..12 + 12], q[12..12 + 12]);
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn silent_upstreams_give_servfail_after_the_lifetime() {
    let silent = fake("127.0.0.1", Mode::Silent, "");
    let mut h = H::with_upstreams(&[silent.addr]);
    h.udp(&query("a.test", RecordType::A, 5, false));
    for _ in 0..3 {
        h.advance(ATTEMPT_TIMEOUT_US);
        assert!(h.replies.is_empty());
    }
    h.advance(ATTEMPT_TIMEOUT_US);
    assert_eq!(h.replies.len(), 1);
    let m = parse(&h.replies[0].bytes);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(h.stub.stats().timeouts, 4);
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn no_upstream_gives_servfail() {
    let dir = std::env::temp_dir().join(format!("rlnet-dns-none-{}", std::process::id()));
    let mut cfg = DnsConfig::new(AddrPlan::default());
    cfg.resolv_conf = dir.join("missing.conf");
    let mut h = H::new(cfg);
    let a = h.udp(&query("a.test", RecordType::A, 3, false)).unwrap();
    assert_eq!(parse(&a).metadata.response_code, ResponseCode::ServFail);
    // Local names still work.
    assert!(
        h.udp(&query("host.rlnet.internal", RecordType::A, 3, false))
            .is_some()
    );
}

#[test]
fn resolv_conf_replaced_is_picked_up() {
    // resolv.conf can only name port 53: this checks the list; the next test
    // checks that queries follow a changed list.
    let dir = std::env::temp_dir().join(format!("rlnet-dns-resolv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("resolv.conf");
    std::fs::write(&path, "nameserver 192.0.2.1\nnameserver 10.0.2.3\n").unwrap();
    let mut cfg = DnsConfig::new(AddrPlan::default());
    cfg.resolv_conf = path.clone();
    let mut h = H::new(cfg);
    // The stub's own address is never an upstream.
    assert_eq!(h.stub.upstreams(), [sa("192.0.2.1:53")]);
    h.udp(&query("host.rlnet.internal", RecordType::A, 1, false));
    let tmp = dir.join("new");
    std::fs::write(&tmp, "nameserver 127.0.0.1\nnameserver ::1\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // Within the check interval: not looked at.
    h.udp(&query("host.rlnet.internal", RecordType::A, 1, false));
    assert_eq!(h.stub.upstreams(), [sa("192.0.2.1:53")]);
    h.skew += resolv::CHECK_INTERVAL_US;
    h.udp(&query("host.rlnet.internal", RecordType::A, 1, false));
    assert_eq!(h.stub.upstreams(), [sa("127.0.0.1:53"), sa("[::1]:53")]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn upstream_change_moves_the_next_query() {
    let one = fake("127.0.0.1", Mode::Zone, "one");
    let two = fake("127.0.0.53", Mode::Zone, "two");
    let mut h = H::with_upstreams(&[one.addr]);
    h.udp(&query("tag.test", RecordType::TXT, 1, false));
    assert!(
        parse(&h.one_reply().bytes).answers[0]
            .data
            .to_string()
            .contains("one")
    );
    let registry = h.poll.registry().try_clone().unwrap();
    h.stub.set_upstreams(vec![two.addr], Some(&registry));
    h.udp(&query("tag.test", RecordType::TXT, 2, false));
    assert!(
        parse(&h.one_reply().bytes).answers[0]
            .data
            .to_string()
            .contains("two")
    );
    assert_eq!(one.queries.load(Ordering::SeqCst), 1);
}

#[test]
fn truncated_udp_answer_then_tcp_retry() {
    let up = fake("127.0.0.1", Mode::Zone, "");
    let mut h = H::with_upstreams(&[up.addr]);
    let q = query("big.test", RecordType::TXT, 0x5151, false);
    h.udp(&q);
    let r = h.one_reply();
    let m = parse(&r.bytes);
    assert!(m.metadata.truncation, "TC passed through");
    assert!(m.answers.is_empty());
    assert!(r.bytes.len() <= 512);
    // The client retries over TCP; the stub asks upstream over TCP.
    let mut s = h.tcp();
    s.write_all(&framed(&q)).unwrap();
    let mut buf = Vec::new();
    let a = h
        .tcp_read(&mut s, &mut buf, Duration::from_secs(5))
        .unwrap();
    assert!(a.len() > 2000, "{}", a.len());
    let sent = up.sent.lock().unwrap().last().unwrap().clone();
    assert_eq!(&a[..2], &[0x51, 0x51]);
    assert_eq!(a[2..], sent[2..]);
    let m = parse(&a);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 1);
    // EOF from the client: closed once answered.
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(h.tcp_closed(&mut s, Duration::from_secs(2)));
    assert_eq!(h.stub.stats().tcp_clients, 0);
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn oversized_udp_answers_are_truncated() {
    let up = fake("127.0.0.1", Mode::Oversize, "");
    let mut h = H::with_upstreams(&[up.addr]);
    let q = query("big.test", RecordType::TXT, 0x7777, false);
    h.udp(&q);
    let r = h.one_reply();
    assert!(r.bytes.len() <= 512, "{}", r.bytes.len());
    let m = parse(&r.bytes);
    assert!(m.metadata.truncation);
    assert_eq!(m.metadata.id, 0x7777);
    assert_eq!(r.bytes[12..], q[12..]);
    // With a large enough EDNS size it passes whole.
    let q = query("big.test", RecordType::TXT, 0x7778, false);
    let mut m = parse(&q);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    m.set_edns(e);
    h.udp(&m.to_vec().unwrap());
    let r = h.one_reply();
    assert!(r.bytes.len() > 2000);
    assert_eq!(r.bytes[2..], up.sent.lock().unwrap().last().unwrap()[2..]);
}

#[test]
fn tcp_pipelined_local_and_forwarded() {
    let up = fake("127.0.0.1", Mode::Zone, "");
    let mut h = H::with_upstreams(&[up.addr]);
    let mut s = h.tcp();
    let mut all = Vec::new();
    for (i, name) in [
        "a.test",
        "host.rlnet.internal",
        "aaaa.test",
        "nope.test",
        "x.rlnet.internal",
    ]
    .iter()
    .enumerate()
    {
        let t = if name.starts_with("aaaa") {
            RecordType::AAAA
        } else {
            RecordType::A
        };
        all.extend(framed(&query(
            name,
            t,
            100 + u16::try_from(i).unwrap(),
            false,
        )));
    }
    // Written in awkward pieces.
    for chunk in all.chunks(7) {
        s.write_all(chunk).unwrap();
        h.turn(Duration::ZERO);
    }
    let mut buf = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let a = h
            .tcp_read(&mut s, &mut buf, Duration::from_secs(5))
            .unwrap();
        let m = parse(&a);
        ids.push(m.metadata.id);
        match m.metadata.id {
            100..=102 => assert_eq!(m.answers.len(), 1),
            _ => assert_eq!(m.metadata.response_code, ResponseCode::NXDomain),
        }
    }
    ids.sort();
    assert_eq!(ids, [100, 101, 102, 103, 104]);
}

#[test]
fn tcp_bad_input_closes_without_answers() {
    let up = fake("127.0.0.1", Mode::Zone, "");
    let mut h = H::with_upstreams(&[up.addr]);
    // 64 KiB length prefix, a few bytes, EOF.
    let mut s = h.tcp();
    s.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(h.tcp_closed(&mut s, Duration::from_secs(1)));
    // Length 0 and length 5 (no header).
    for prefix in [[0u8, 0], [0, 5]] {
        let mut s = h.tcp();
        s.write_all(&prefix).unwrap();
        s.write_all(&[0; 5]).unwrap();
        assert!(h.tcp_closed(&mut s, Duration::from_secs(1)));
    }
    // A response sent as a query.
    let mut s = h.tcp();
    let mut resp = query("a.test", RecordType::A, 1, false);
    resp[2] |= 0x80;
    s.write_all(&framed(&resp)).unwrap();
    assert!(h.tcp_closed(&mut s, Duration::from_secs(1)));
    // A query cut short, then the peer goes away: 1000 times.
    let q = framed(&query("a.test", RecordType::A, 1, false));
    for _ in 0..1000 {
        let mut s = h.tcp();
        s.write_all(&q[..q.len() / 2]).unwrap();
        drop(s);
        h.turn(Duration::ZERO);
    }
    for _ in 0..10 {
        h.turn(Duration::from_millis(1));
    }
    assert_eq!(h.stub.stats().tcp_clients, 0);
    assert_eq!(h.stub.next_deadline(), None, "nothing left armed");
    // Still answering.
    let mut s = h.tcp();
    s.write_all(&q).unwrap();
    let mut buf = Vec::new();
    assert!(
        h.tcp_read(&mut s, &mut buf, Duration::from_secs(5))
            .is_some()
    );
    // Malformed but framed: FORMERR, the connection stays.
    let mut junk = query("a.test", RecordType::A, 77, false);
    junk[5] = 2;
    s.write_all(&framed(&junk)).unwrap();
    let a = h
        .tcp_read(&mut s, &mut buf, Duration::from_secs(5))
        .unwrap();
    assert_eq!(parse(&a).metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn tcp_idle_clients_are_closed_and_capped() {
    let mut h = H::with_upstreams(&[closed_port()]);
    let mut held: Vec<StdUnix> = (0..MAX_TCP_CLIENTS + 10).map(|_| h.tcp()).collect();
    assert_eq!(h.stub.stats().tcp_clients, MAX_TCP_CLIENTS as u64);
    // The oldest ten made room for the newest.
    for s in held.iter_mut().take(10) {
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0)));
    }
    // A client that sends a partial query is idle all the same.
    held[20].write_all(&[0, 40, 1, 2, 3]).unwrap();
    h.turn(Duration::ZERO);
    h.advance(TCP_IDLE_US - 1_000_000);
    assert_eq!(h.stub.stats().tcp_clients, MAX_TCP_CLIENTS as u64);
    h.advance(2_000_000);
    assert_eq!(h.stub.stats().tcp_clients, 0);
    for s in held.iter_mut().skip(10) {
        let mut b = [0u8; 1];
        assert!(matches!(s.read(&mut b), Ok(0)));
    }
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn tcp_upstream_refused_fails_over_then_servfail() {
    let good = fake("127.0.0.1", Mode::Zone, "tcp");
    // A TCP port nobody listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut h = H::with_upstreams(&[dead, good.addr]);
    let mut s = h.tcp();
    s.write_all(&framed(&query("tag.test", RecordType::TXT, 9, false)))
        .unwrap();
    let mut buf = Vec::new();
    let a = h
        .tcp_read(&mut s, &mut buf, Duration::from_secs(5))
        .unwrap();
    assert!(parse(&a).answers[0].data.to_string().contains("tcp"));
    let mut h = H::with_upstreams(&[dead]);
    let mut s = h.tcp();
    s.write_all(&framed(&query("tag.test", RecordType::TXT, 9, false)))
        .unwrap();
    let a = h
        .tcp_read(&mut s, &mut buf, Duration::from_secs(5))
        .unwrap();
    assert_eq!(parse(&a).metadata.response_code, ResponseCode::ServFail);
}

#[test]
fn pending_table_is_bounded() {
    let silent = fake("127.0.0.1", Mode::Silent, "");
    let mut h = H::with_upstreams(&[silent.addr]);
    for i in 0..MAX_PENDING + 100 {
        assert_eq!(
            h.udp(&query(
                "a.test",
                RecordType::A,
                u16::try_from(i).unwrap(),
                false
            )),
            None
        );
    }
    assert_eq!(h.stub.pending(), MAX_PENDING);
    assert_eq!(h.stub.stats().dropped, 100);
    h.advance(QUERY_LIFETIME_US);
    assert_eq!(h.replies.len(), MAX_PENDING);
    assert_eq!(h.stub.pending(), 0);
    assert_eq!(h.stub.next_deadline(), None);
}

#[test]
fn scoped_names_follow_the_stub_address() {
    let mut h = H::with_upstreams(&[closed_port()]);
    let net = NetworkId(7);
    h.stub
        .records_mut()
        .insert(Some(net), "db", "10.89.7.10".parse().unwrap())
        .unwrap();
    h.stub
        .records_mut()
        .set_stub_network("10.89.7.3".parse().unwrap(), Some(net));
    let q = query("db", RecordType::A, 1, false);
    let now = h.now();
    let mut io = DnsIo {
        registry: h.poll.registry(),
        now_us: now,
        token: &Token,
    };
    let a = h
        .stub
        .udp_query(sa("10.89.7.100:1000"), sa("10.89.7.3:53"), &q, &mut io)
        .unwrap();
    assert_eq!(parse(&a).answers.len(), 1);
    // From the unnamed network: forwarded (to a dead upstream: SERVFAIL).
    assert_eq!(h.udp(&q), None);
    let r = h.one_reply();
    assert_eq!(
        parse(&r.bytes).metadata.response_code,
        ResponseCode::ServFail
    );
}

#[test]
fn without_forwarding_nothing_goes_upstream() {
    let up = fake("127.0.0.1", Mode::Zone, "");
    let mut h = H::with_upstreams(&[up.addr]);
    h.stub.set_forwarding(false);
    let a = h.udp(&query("a.test", RecordType::A, 4, true)).unwrap();
    let m = parse(&a);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(m.edns.is_some());
    assert!(
        h.udp(&query("host.rlnet.internal", RecordType::A, 4, false))
            .is_some()
    );
    let mut s = h.tcp();
    s.write_all(&framed(&query("a.test", RecordType::A, 5, false)))
        .unwrap();
    let mut buf = Vec::new();
    let a = h
        .tcp_read(&mut s, &mut buf, Duration::from_secs(2))
        .unwrap();
    assert_eq!(parse(&a).metadata.response_code, ResponseCode::Refused);
    assert_eq!(up.queries.load(Ordering::SeqCst), 0);
}

#[test]
fn bad_config_is_an_error() {
    let mut cfg = DnsConfig::new(AddrPlan::default());
    cfg.upstream = vec![sa("10.0.2.3:53")];
    assert_eq!(
        DnsStub::new(cfg).err(),
        Some(DnsError::Upstream(sa("10.0.2.3:53")))
    );
    let mut cfg = DnsConfig::new(AddrPlan::default());
    cfg.hosts = vec![("bad name".into(), "192.0.2.1".parse().unwrap())];
    assert!(matches!(DnsStub::new(cfg), Err(DnsError::Host(_))));
}

/// Cost of the forwarding path: the stub's own CPU time per query (query in,
/// answer out), against a fast upstream thread. Printed; run it with
/// `cargo test --release dns::tests::forwarding_cost -- --nocapture`.
#[test]
fn forwarding_cost() {
    let up = fake("127.0.0.1", Mode::Zone, "");
    let mut h = H::with_upstreams(&[up.addr]);
    let queries: Vec<Vec<u8>> = (0..256u16)
        .map(|i| query("a.test", RecordType::A, i, true))
        .collect();
    let n = 20_000usize;
    let window = 64;
    let mut in_stub = Duration::ZERO;
    let (mut sent, mut got) = (0usize, 0usize);
    let end = Instant::now() + Duration::from_secs(60);
    while got < n && Instant::now() < end {
        while sent < n && sent - got < window {
            let q = &queries[sent % queries.len()];
            let client = SocketAddr::new(
                [10, 0, 2, 100].into(),
                1024 + u16::try_from(sent / 256).unwrap(),
            );
            let t = Instant::now();
            assert_eq!(h.udp_from(client, q), None);
            in_stub += t.elapsed();
            sent += 1;
        }
        let now = h.now();
        h.poll
            .poll(&mut h.events, Some(Duration::from_millis(100)))
            .unwrap();
        let mut io = DnsIo {
            registry: h.poll.registry(),
            now_us: now,
            token: &Token,
        };
        for ev in h.events.iter() {
            let t = Instant::now();
            let r = h.stub.event(ev.token().0, true, false, &mut io);
            in_stub += t.elapsed();
            got += r.len();
        }
    }
    assert_eq!(got, n, "every query answered");
    let per_query = in_stub.as_secs_f64() * 1e6 / n as f64;
    eprintln!("DNS forwarding cost: {per_query:.2} us of stub CPU per query ({n} queries)");
    assert!(per_query < 200.0, "{per_query}");
    // The parsing part alone.
    let records = h.stub.records().clone();
    let t = Instant::now();
    for q in queries.iter().cycle().take(100_000) {
        assert!(matches!(
            message::classify(q, &records, None, Transport::Udp),
            message::Action::Forward(_)
        ));
    }
    eprintln!(
        "DNS classify: {:.3} us per query",
        t.elapsed().as_secs_f64() * 1e6 / 100_000.0
    );
    assert_eq!(h.stub.next_deadline(), None);
}
