//! `testkit`: the traffic helper rlnet's end-to-end tests run inside network
//! namespaces, in place of python/socat, so the tests are self-contained.
//!
//! Data streams are deterministic (splitmix64, little-endian, 8 bytes per
//! step): a receiver verifies every byte by regenerating the stream. Every
//! blocking operation is bounded by `--timeout SECS` (default 60). Results
//! are one stdout line of `key=value` pairs; errors one stderr line
//! `testkit: ...`. Exit status: 0 success, 1 failure, 2 usage, 3 timeout.
#![allow(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

const BUF: usize = 256 * 1024;

const USAGE: &str = "\
testkit: traffic helper for rlnet's end-to-end tests

usage: testkit COMMAND ARGS... [--timeout SECS]

  serve-tcp ADDR MODE [--count N]   listen, print `listening port=P`, serve N
        connections (default 1) concurrently; one result line each:
        `ok=1 bytes= digest= [tx_digest=] peer=` (`ok=0 bytes= first_bad= peer=`)
        MODE: sink:BYTES:SEED | source:BYTES:SEED | echo | hold
              halfclose-a:BYTES:SEED  read to EOF, then send stream(SEED+1)
              halfclose-b:BYTES:SEED  send + SHUT_WR, then read stream(SEED+1)
        hold: accept N, keep them open until the peers close (poll loop);
              prints `ok=1 conns= closed= peak=`
  tcp ADDR MODE                     client: send|recv|echo|halfclose-a|halfclose-b
        :BYTES:SEED; prints `ok=1 bytes= digest= [tx_digest=] secs= gbps= local=`
  connect ADDR [--expect R]         one connect; prints `result=R errno= ms=`
        R: ok|refused|netunreach|hostunreach|unreachable|timeout|error
        exit 0 iff the result matches --expect (default: ok)
  serve-udp ADDR [--count N]        UDP echo; `listening port=P`, `peer=` for the
        first datagram, `ok=1 received=N` at the end (default: stop after
        --timeout without datagrams)
  udp ADDR [--count N] [--size S]   N (100) datagrams of S (1000) bytes, 1 s per
        echo, 3 retries; prints `ok=1 sent= received= retries= bad=`
  udp ADDR --expect-unreachable     expect ECONNREFUSED; prints `result= ms=`
  hold ADDR N [--stdin]             open N connections, print `open=N`, wait for
        stdin EOF (--stdin) or --timeout, close; prints `closed=N lost=L`
  crr ADDR N                        N x (connect, 64-byte echo, close) against
        `serve-tcp ... echo --count N`; prints `ok=1 n= secs= per_s=`
  inject IFNAME [--rounds R] [--dst-mac MAC]   malformed frames via AF_PACKET;
        prints `sent= errors= frames=`
  spoof IFNAME SRC_IP DST_IP [--dst-mac MAC] [--src-mac MAC] [--rst]
        [--sport P] [--dport P] [--count N] [--final OWN_IP]
        N (100) UDP datagrams (--rst: RST segments sweeping the sequence
        space) from a forged SRC_IP/--src-mac carrying a marker; --final: then
        one honest UDP datagram from OWN_IP marking the end; prints `sent=`
  sniff IFNAME                      print `listening`, count frames arriving on
        IFNAME carrying the spoof marker until an end marker arrives;
        prints `spoofed=N`
  api PATH REQUEST [--trickle MS] [--repeat N] [--no-shutdown]
        send REQUEST to a unix socket (--repeat: that many copies; --trickle:
        one byte every MS ms), shut down the write side (unless
        --no-shutdown), print the reply verbatim (one line) and `ms=`
  serve-dns ADDR [--count N] [--tag T] [--silent] [--stdin]   a fake
        authoritative DNS server on UDP and TCP (one port): `listening port=P`;
        a.test A 198.18.0.10, aaaa.test AAAA 2001:db8::10, txt.test TXT hello,
        srv.test SRV 10 5 5060 sip.test, mx.test MX 10 mail.test, big.test TXT
        ~2000 bytes (over UDP TC=1 and no records unless the EDNS size fits),
        tag.test TXT T (--tag), anything else NXDOMAIN; --silent: count, never
        answer. Stops after N queries, after --timeout without one, or on stdin
        EOF (--stdin); prints `queries=N`
  dig SERVER NAME TYPE [--tcp] [--edns SIZE] [--count N] [--rate QPS]   one
        query (UDP resent every second): `rcode= answers= tc=0|1 data= ms=`
        (data: the first answer); with --count: N queries (UDP: at QPS, or
        256 outstanding; TCP: one connection, in turn), prints `sent= received=
        p50_us= p99_us=`. SERVER is IP or IP:PORT (port 53)
  dns-abuse SERVER MODE [N]         malformed DNS input; MODE: truncated,
        lying-counts, compression-loop, qr1 (UDP; prints `sent= replies=
        noerror= formerr= servfail= nxdomain= notimp= refused= other=`),
        tcp-64k-eof (`result=closed|reset|timeout bytes= ms=`), tcp-cut-rst
        [N=1000] (half a query then RST, N times: `done= errors= ms=`),
        tcp-idle N (hold N connections: `open=N`, then `closed=C ms=` once the
        server closed them all or at --timeout)

ADDR is IP:PORT or [IPv6]:PORT. BYTES accepts k/m/g suffixes (binary).
stream(SEED) is splitmix64 output, little-endian; `digest` is FNV-1a-64 over
the stream's 64-bit little-endian words (tail zero-padded, then the length).
";

// ---------------------------------------------------------------- errors

#[derive(Debug)]
enum Fail {
    Usage(String),
    Io(String),
    Timeout(String),
}

impl Fail {
    fn code(&self) -> i32 {
        match self {
            Fail::Io(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Timeout(_) => 3,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Usage(m) => write!(f, "{m} (see --help)"),
            Fail::Io(m) | Fail::Timeout(m) => f.write_str(m),
        }
    }
}

type Res<T> = Result<T, Fail>;

fn usage(msg: impl Into<String>) -> Fail {
    Fail::Usage(msg.into())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn ioerr(what: impl fmt::Display, e: io::Error) -> Fail {
    if is_timeout(&e) {
        Fail::Timeout(format!("{what}: timed out"))
    } else {
        Fail::Io(format!("{what}: {e}"))
    }
}

fn die(f: &Fail) -> ! {
    eprintln!("testkit: {f}");
    std::process::exit(f.code())
}

fn emit(line: &str) {
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

// ---------------------------------------------------------------- arguments

#[derive(Debug)]
struct Args {
    pos: Vec<String>,
    opts: Vec<(String, String)>,
    flags: Vec<String>,
    timeout: Duration,
}

impl Args {
    /// Positionals plus `--name VALUE` / `--name=VALUE` for `valued`, bare
    /// `flags`, and `--timeout SECS` everywhere.
    fn parse(argv: &[String], valued: &[&str], flags: &[&str]) -> Res<Args> {
        let mut a = Args {
            pos: Vec::new(),
            opts: Vec::new(),
            flags: Vec::new(),
            timeout: Duration::from_secs(60),
        };
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.pos.extend(it.by_ref().cloned());
                break;
            }
            if !arg.starts_with("--") {
                a.pos.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            if name == "--timeout" || valued.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| usage(format!("{name} needs a value")))?
                        .clone(),
                };
                if name == "--timeout" {
                    a.timeout = parse_secs(&v)?;
                } else {
                    a.opts.push((name.to_string(), v));
                }
            } else if flags.contains(&name) && inline.is_none() {
                a.flags.push(name.to_string());
            } else {
                return Err(usage(format!("unknown option {arg}")));
            }
        }
        Ok(a)
    }

    fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn num<T: FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| usage(format!("{name}: bad number {v:?}"))),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn want(&self, n: usize, syntax: &str) -> Res<()> {
        if self.pos.len() == n {
            Ok(())
        } else {
            Err(usage(format!("usage: testkit {syntax}")))
        }
    }
}

fn parse_secs(s: &str) -> Res<Duration> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e7 => Ok(Duration::from_secs_f64(v)),
        _ => Err(usage(format!("bad --timeout {s:?}"))),
    }
}

fn parse_addr(s: &str) -> Res<SocketAddr> {
    s.parse()
        .map_err(|_| usage(format!("bad address {s:?} (want IP:PORT or [IPv6]:PORT)")))
}

/// A byte count with an optional binary k/m/g suffix.
fn parse_size(s: &str) -> Res<u64> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| usage(format!("bad byte count {s:?}")))
}

/// `NAME` or `NAME:BYTES:SEED`.
fn parse_spec(s: &str) -> Res<(&str, Option<(u64, u64)>)> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [name] => Ok((name, None)),
        [name, bytes, seed] => {
            let seed = seed
                .parse()
                .map_err(|_| usage(format!("bad seed in {s:?}")))?;
            Ok((name, Some((parse_size(bytes)?, seed))))
        }
        _ => Err(usage(format!(
            "bad mode {s:?}: want NAME or NAME:BYTES:SEED"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sink,
    Source,
    Send,
    Recv,
    Echo,
    HalfA,
    HalfB,
    Hold,
}

/// A mode: what to do, with (bytes, seed) for all but server `echo`/`hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    kind: Kind,
    bytes: u64,
    seed: u64,
}

fn parse_mode(s: &str, server: bool) -> Res<Mode> {
    let (name, p) = parse_spec(s)?;
    let kind = match (name, server) {
        ("sink", true) => Kind::Sink,
        ("source", true) => Kind::Source,
        ("send", false) => Kind::Send,
        ("recv", false) => Kind::Recv,
        ("echo", _) => Kind::Echo,
        ("halfclose-a", _) => Kind::HalfA,
        ("halfclose-b", _) => Kind::HalfB,
        ("hold", true) => Kind::Hold,
        _ => {
            let side = if server { "server" } else { "client" };
            return Err(usage(format!("unknown {side} mode {s:?}")));
        }
    };
    let bare = server && matches!(kind, Kind::Echo | Kind::Hold);
    match (p, bare) {
        (None, true) => Ok(Mode {
            kind,
            bytes: 0,
            seed: 0,
        }),
        (Some((bytes, seed)), false) => Ok(Mode { kind, bytes, seed }),
        (Some(_), true) => Err(usage(format!("mode {name} takes no BYTES:SEED"))),
        (None, false) => Err(usage(format!("mode {name} needs BYTES:SEED"))),
    }
}

// ---------------------------------------------------------------- streams

/// stream(seed): splitmix64 outputs, little-endian, at any byte granularity.
#[derive(Clone)]
struct Stream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    fn new(seed: u64) -> Stream {
        Stream {
            state: seed,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let lead = (8 - self.used).min(buf.len());
        buf[..lead].copy_from_slice(&self.word[self.used..self.used + lead]);
        self.used += lead;
        let (words, tail) = buf[lead..].as_chunks_mut::<8>();
        for w in words {
            *w = self.next_word().to_le_bytes();
        }
        if !tail.is_empty() {
            self.word = self.next_word().to_le_bytes();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.used = tail.len();
        }
    }
}

/// FNV-1a-64 over 64-bit little-endian words (byte-wise FNV runs at well
/// under 1 GB/s; this keeps up with the data path). Tail zero-padded, then
/// the length is folded in.
#[derive(Clone)]
struct Digest {
    h: u64,
    pend: [u8; 8],
    npend: usize,
    len: u64,
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

impl Digest {
    fn new() -> Digest {
        Digest {
            h: 0xCBF2_9CE4_8422_2325,
            pend: [0; 8],
            npend: 0,
            len: 0,
        }
    }

    fn fold(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(FNV_PRIME);
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npend > 0 {
            let n = (8 - self.npend).min(data.len());
            self.pend[self.npend..self.npend + n].copy_from_slice(&data[..n]);
            self.npend += n;
            data = &data[n..];
            if self.npend < 8 {
                return;
            }
            self.fold(u64::from_le_bytes(self.pend));
            self.npend = 0;
        }
        let (words, rest) = data.as_chunks::<8>();
        for w in words {
            self.fold(u64::from_le_bytes(*w));
        }
        self.pend[..rest.len()].copy_from_slice(rest);
        self.npend = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut d = self.clone();
        if d.npend > 0 {
            d.pend[d.npend..].fill(0);
            d.fold(u64::from_le_bytes(d.pend));
        }
        d.fold(d.len);
        d.h
    }
}

/// Checks received bytes against stream(seed), `want` bytes long.
struct Verifier {
    expect: Stream,
    scratch: Vec<u8>,
    want: u64,
    total: u64,
    first_bad: Option<u64>,
    digest: Digest,
}

impl Verifier {
    fn new(want: u64, seed: u64) -> Verifier {
        Verifier {
            expect: Stream::new(seed),
            scratch: Vec::new(),
            want,
            total: 0,
            first_bad: None,
            digest: Digest::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        self.digest.update(data);
        if self.first_bad.is_none() {
            let n = (self.want.saturating_sub(self.total)).min(data.len() as u64) as usize;
            if self.scratch.len() < n {
                self.scratch.resize(n, 0);
            }
            self.expect.fill(&mut self.scratch[..n]);
            if data[..n] != self.scratch[..n] {
                let at = data
                    .iter()
                    .zip(&self.scratch[..n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.first_bad = Some(self.total + at as u64);
            } else if n < data.len() {
                self.first_bad = Some(self.total + n as u64);
            }
        }
        self.total += data.len() as u64;
    }

    /// The first offset that differs from the expectation (a short stream
    /// fails at its end), or None when it matched exactly.
    fn bad(&self) -> Option<u64> {
        self.first_bad
            .or((self.total < self.want).then_some(self.total))
    }
}

// ---------------------------------------------------------------- socket helpers

fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// poll(2) until something is ready or `left` passes; Ok(0) on timeout.
fn poll_for(fds: &mut [PollFd], left: Duration) -> Res<usize> {
    let deadline = Instant::now() + left;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(fds, poll_timeout(left)) {
            Ok(n) => return Ok(n as usize),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Fail::Io(format!("poll: {e}"))),
        }
    }
}

fn wait_fd(fd: BorrowedFd<'_>, flags: PollFlags, left: Duration) -> Res<bool> {
    Ok(poll_for(&mut [PollFd::new(fd, flags)], left)? > 0)
}

fn set_timeouts(s: &TcpStream, t: Duration) -> Res<()> {
    s.set_read_timeout(Some(t))
        .and_then(|_| s.set_write_timeout(Some(t)))
        .map_err(|e| ioerr("setsockopt", e))
}

fn connect_tcp(addr: SocketAddr, t: Duration) -> Res<TcpStream> {
    let s =
        TcpStream::connect_timeout(&addr, t).map_err(|e| ioerr(format!("connect {addr}"), e))?;
    set_timeouts(&s, t)?;
    Ok(s)
}

fn send_stream(mut w: impl Write, bytes: u64, seed: u64, buf: &mut [u8]) -> Res<Digest> {
    let (mut st, mut d, mut left) = (Stream::new(seed), Digest::new(), bytes);
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        st.fill(&mut buf[..n]);
        d.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| ioerr("write", e))?;
        left -= n as u64;
    }
    Ok(d)
}

/// Read until EOF, feeding `f`; returns the byte count.
fn read_eof(mut r: impl Read, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> Res<u64> {
    let mut total = 0;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                f(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ioerr("read", e)),
        }
    }
}

fn recv_verify(r: impl Read, v: &mut Verifier, buf: &mut [u8]) -> Res<()> {
    read_eof(r, buf, |d| v.feed(d)).map(drop)
}

fn shut_wr(s: &TcpStream) -> Res<()> {
    s.shutdown(Shutdown::Write)
        .map_err(|e| ioerr("shutdown", e))
}

/// The result line: `ok=1 bytes= digest= [tx_digest=] EXTRA` or
/// `ok=0 bytes= first_bad= EXTRA`.
fn report(v: &Verifier, tx: Option<&Digest>, extra: &str) -> bool {
    match v.bad() {
        None => {
            let tx = tx
                .map(|d| format!(" tx_digest={:016x}", d.finish()))
                .unwrap_or_default();
            emit(&format!(
                "ok=1 bytes={} digest={:016x}{tx} {extra}",
                v.total,
                v.digest.finish()
            ));
            true
        }
        Some(at) => {
            emit(&format!("ok=0 bytes={} first_bad={at} {extra}", v.total));
            false
        }
    }
}

fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

// ---------------------------------------------------------------- TCP server

fn serve_tcp(a: &Args) -> Res<i32> {
    a.want(2, "serve-tcp ADDR MODE [--count N]")?;
    let addr = parse_addr(&a.pos[0])?;
    let mode = parse_mode(&a.pos[1], true)?;
    let count: u64 = a.num("--count", 1)?;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .and_then(|s| s.set_reuse_address(true).map(|_| s))
        .and_then(|s| s.bind(&addr.into()).map(|_| s))
        .and_then(|s| s.listen(4096).map(|_| s))
        .map_err(|e| ioerr(format!("listen {addr}"), e))?;
    let l: TcpListener = sock.into();
    let port = l.local_addr().map_err(|e| ioerr("getsockname", e))?.port();
    emit(&format!("listening port={port}"));
    if mode.kind == Kind::Hold {
        return serve_hold(l, count, a.timeout);
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
                let ok = serve_conn(s, canon(peer), mode, t).unwrap_or_else(|f| die(&f));
                let _ = tx.send(ok);
            })
            .map_err(|e| ioerr("spawn", e))?;
    }
    drop(tx);
    let all_ok = rx.iter().fold(true, |acc, ok| acc & ok);
    Ok(if all_ok { 0 } else { 1 })
}

fn serve_conn(s: TcpStream, peer: SocketAddr, m: Mode, t: Duration) -> Res<bool> {
    set_timeouts(&s, t)?;
    let mut buf = vec![0u8; BUF];
    let extra = format!("peer={peer}");
    match m.kind {
        Kind::Sink => {
            let mut v = Verifier::new(m.bytes, m.seed);
            recv_verify(&s, &mut v, &mut buf)?;
            Ok(report(&v, None, &extra))
        }
        Kind::Source => {
            let d = send_stream(&s, m.bytes, m.seed, &mut buf)?;
            shut_wr(&s)?;
            read_eof(&s, &mut buf, |_| {})?;
            emit(&format!(
                "ok=1 bytes={} digest={:016x} {extra}",
                m.bytes,
                d.finish()
            ));
            Ok(true)
        }
        Kind::Echo => {
            let mut d = Digest::new();
            let mut w = &s;
            let mut werr = None;
            let n = read_eof(&s, &mut buf, |data| {
                d.update(data);
                if werr.is_none() {
                    werr = w.write_all(data).err();
                }
            })?;
            if let Some(e) = werr {
                return Err(ioerr("write", e));
            }
            emit(&format!(
                "ok=1 bytes={n} digest={:016x} {extra}",
                d.finish()
            ));
            Ok(true)
        }
        Kind::HalfA => {
            let mut v = Verifier::new(m.bytes, m.seed);
            recv_verify(&s, &mut v, &mut buf)?;
            if v.bad().is_some() {
                return Ok(report(&v, None, &extra));
            }
            let d = send_stream(&s, m.bytes, m.seed.wrapping_add(1), &mut buf)?;
            shut_wr(&s)?;
            Ok(report(&v, Some(&d), &extra))
        }
        Kind::HalfB => {
            let d = send_stream(&s, m.bytes, m.seed, &mut buf)?;
            shut_wr(&s)?;
            let mut v = Verifier::new(m.bytes, m.seed.wrapping_add(1));
            recv_verify(&s, &mut v, &mut buf)?;
            Ok(report(&v, Some(&d), &extra))
        }
        Kind::Send | Kind::Recv | Kind::Hold => unreachable!("not a per-connection server mode"),
    }
}

/// `hold`: one poll loop; accept `count` connections, read and discard until
/// each peer closes.
fn serve_hold(l: TcpListener, count: u64, t: Duration) -> Res<i32> {
    l.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
    let mut conns: Vec<TcpStream> = Vec::new();
    let (mut accepted, mut closed, mut peak) = (0u64, 0u64, 0usize);
    let mut buf = vec![0u8; 64 * 1024];
    while accepted < count || !conns.is_empty() {
        let ready: Vec<bool> = {
            let lflags = if accepted < count {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            };
            let mut fds = vec![PollFd::new(l.as_fd(), lflags)];
            fds.extend(
                conns
                    .iter()
                    .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)),
            );
            if poll_for(&mut fds, t)? == 0 {
                return Err(Fail::Timeout(format!(
                    "hold: nothing happened for {t:?} (accepted={accepted} open={})",
                    conns.len()
                )));
            }
            fds.iter().map(|f| f.any().unwrap_or(true)).collect()
        };
        let old = conns.len();
        for i in (0..old).rev() {
            if !ready[i + 1] {
                continue;
            }
            match (&conns[i]).read(&mut buf) {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Ok(n) if n > 0 => {}
                _ => {
                    conns.swap_remove(i);
                    closed += 1;
                }
            }
        }
        while ready[0] && accepted < count {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
                    conns.push(s);
                    accepted += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
                Err(e) => return Err(ioerr("accept", e)),
            }
        }
        peak = peak.max(conns.len());
    }
    emit(&format!(
        "ok=1 conns={accepted} closed={closed} peak={peak}"
    ));
    Ok(0)
}

// ---------------------------------------------------------------- TCP clients

fn tcp_client(a: &Args) -> Res<i32> {
    a.want(2, "tcp ADDR MODE")?;
    let addr = parse_addr(&a.pos[0])?;
    let m = parse_mode(&a.pos[1], false)?;
    let s = connect_tcp(addr, a.timeout)?;
    let local = s
        .local_addr()
        .map(canon)
        .map_err(|e| ioerr("getsockname", e))?;
    let mut buf = vec![0u8; BUF];
    let t0 = Instant::now();
    let (v, tx) = match m.kind {
        Kind::Send => {
            let d = send_stream(&s, m.bytes, m.seed, &mut buf)?;
            shut_wr(&s)?;
            read_eof(&s, &mut buf, |_| {})?;
            (None, Some(d))
        }
        Kind::Recv => {
            let mut v = Verifier::new(m.bytes, m.seed);
            recv_verify(&s, &mut v, &mut buf)?;
            (Some(v), None)
        }
        Kind::Echo => {
            let w = s.try_clone().map_err(|e| ioerr("dup", e))?;
            let writer = std::thread::spawn(move || {
                let mut buf = vec![0u8; BUF];
                let d =
                    send_stream(&w, m.bytes, m.seed, &mut buf).and_then(|d| shut_wr(&w).map(|_| d));
                d.unwrap_or_else(|f| die(&f))
            });
            let mut v = Verifier::new(m.bytes, m.seed);
            recv_verify(&s, &mut v, &mut buf)?;
            let d = writer
                .join()
                .map_err(|_| Fail::Io("writer thread panicked".into()))?;
            (Some(v), Some(d))
        }
        Kind::HalfA => {
            let d = send_stream(&s, m.bytes, m.seed, &mut buf)?;
            shut_wr(&s)?;
            let mut v = Verifier::new(m.bytes, m.seed.wrapping_add(1));
            recv_verify(&s, &mut v, &mut buf)?;
            (Some(v), Some(d))
        }
        Kind::HalfB => {
            let mut v = Verifier::new(m.bytes, m.seed);
            recv_verify(&s, &mut v, &mut buf)?;
            let d = if v.bad().is_none() {
                send_stream(&s, m.bytes, m.seed.wrapping_add(1), &mut buf)?
            } else {
                Digest::new()
            };
            shut_wr(&s)?;
            read_eof(&s, &mut buf, |_| {})?;
            (Some(v), Some(d))
        }
        Kind::Sink | Kind::Source | Kind::Hold => unreachable!("server-only mode"),
    };
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
        None => {
            let d = tx.expect("send digest");
            emit(&format!(
                "ok=1 bytes={} digest={:016x} {extra}",
                m.bytes,
                d.finish()
            ));
            true
        }
    };
    Ok(if ok { 0 } else { 1 })
}

fn connect_cmd(a: &Args) -> Res<i32> {
    a.want(
        1,
        "connect ADDR [--expect ok|refused|netunreach|hostunreach|unreachable|timeout|error]",
    )?;
    let addr = parse_addr(&a.pos[0])?;
    let expect = a.opt("--expect").unwrap_or("ok");
    let known = [
        "ok",
        "refused",
        "netunreach",
        "hostunreach",
        "unreachable",
        "timeout",
        "error",
    ];
    if !known.contains(&expect) {
        return Err(usage(format!("bad --expect {expect:?}")));
    }
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .and_then(|s| s.set_nonblocking(true).map(|_| s))
        .map_err(|e| ioerr("socket", e))?;
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
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let errno = r.as_ref().and_then(|e| e.raw_os_error()).unwrap_or(0);
    let result = match errno {
        0 if r.is_none() => "ok",
        libc::ECONNREFUSED => "refused",
        libc::ENETUNREACH => "netunreach",
        libc::EHOSTUNREACH => "hostunreach",
        libc::ETIMEDOUT => "timeout",
        _ => "error",
    };
    emit(&format!("result={result} errno={errno} ms={ms:.3}"));
    let hit = expect == result || (expect == "unreachable" && result.ends_with("unreach"));
    Ok(if hit { 0 } else { 1 })
}

fn hold_client(a: &Args) -> Res<i32> {
    a.want(2, "hold ADDR N [--stdin]")?;
    let addr = parse_addr(&a.pos[0])?;
    let n: usize = a.pos[1]
        .parse()
        .map_err(|_| usage(format!("bad count {:?}", a.pos[1])))?;
    let deadline = Instant::now() + a.timeout;
    let mut conns: Vec<Socket> = Vec::with_capacity(n);
    while conns.len() < n {
        let mut pending = Vec::new();
        for _ in 0..(n - conns.len()).min(256) {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
                .map_err(|e| ioerr(format!("socket #{}", conns.len() + pending.len()), e))?;
            match s.connect(&addr.into()) {
                Ok(()) => conns.push(s),
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => pending.push(s),
                Err(e) => return Err(ioerr(format!("connect {addr}"), e)),
            }
        }
        while !pending.is_empty() {
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd> = pending
                    .iter()
                    .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLOUT))
                    .collect();
                if poll_for(&mut fds, deadline.saturating_duration_since(Instant::now()))? == 0 {
                    return Err(Fail::Timeout(format!(
                        "hold: connect timed out ({} of {n} open)",
                        conns.len()
                    )));
                }
                fds.iter().map(|f| f.any().unwrap_or(true)).collect()
            };
            for (i, r) in ready.iter().enumerate().rev() {
                if *r {
                    let s = pending.swap_remove(i);
                    if let Some(e) = s.take_error().unwrap_or_else(Some) {
                        return Err(ioerr(format!("connect {addr} ({} open)", conns.len()), e));
                    }
                    conns.push(s);
                }
            }
        }
    }
    emit(&format!("open={n}"));
    let use_stdin = a.flag("--stdin");
    let stdin = io::stdin();
    let hold_until = Instant::now() + a.timeout;
    let mut live: Vec<bool> = vec![true; n];
    let mut lost = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = hold_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if use_stdin {
                return Err(Fail::Timeout("hold: no EOF on stdin".into()));
            }
            break;
        }
        let idx: Vec<usize> = (0..n).filter(|&i| live[i]).collect();
        let (stdin_ready, ready): (bool, Vec<bool>) = {
            let mut fds: Vec<PollFd> = idx
                .iter()
                .map(|&i| PollFd::new(conns[i].as_fd(), PollFlags::POLLIN))
                .collect();
            if use_stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            poll_for(&mut fds, left)?;
            let r: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
            (use_stdin && r[idx.len()], r)
        };
        for (k, &i) in idx.iter().enumerate() {
            if ready[k] {
                match (&conns[i]).read(&mut buf) {
                    Ok(n) if n > 0 => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    _ => {
                        live[i] = false;
                        lost += 1;
                    }
                }
            }
        }
        if stdin_ready && matches!(stdin.lock().read(&mut buf), Ok(0) | Err(_)) {
            break;
        }
    }
    drop(conns);
    emit(&format!("closed={n} lost={lost}"));
    Ok(if lost == 0 { 0 } else { 1 })
}

fn crr(a: &Args) -> Res<i32> {
    a.want(2, "crr ADDR N")?;
    let addr = parse_addr(&a.pos[0])?;
    let n: u64 = a.pos[1]
        .parse()
        .map_err(|_| usage(format!("bad count {:?}", a.pos[1])))?;
    let t0 = Instant::now();
    let (mut req, mut resp) = ([0u8; 64], [0u8; 64]);
    for i in 0..n {
        Stream::new(i).fill(&mut req);
        let mut s = connect_tcp(addr, a.timeout)?;
        s.set_nodelay(true).map_err(|e| ioerr("setsockopt", e))?;
        s.write_all(&req).map_err(|e| ioerr("write", e))?;
        s.read_exact(&mut resp)
            .map_err(|e| ioerr(format!("read (cycle {i})"), e))?;
        if req != resp {
            emit(&format!("ok=0 n={i}"));
            return Ok(1);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    emit(&format!(
        "ok=1 n={n} secs={secs:.3} per_s={:.1}",
        n as f64 / secs.max(1e-9)
    ));
    Ok(0)
}

// ---------------------------------------------------------------- UDP

fn serve_udp(a: &Args) -> Res<i32> {
    a.want(1, "serve-udp ADDR [--count N]")?;
    let addr = parse_addr(&a.pos[0])?;
    let count: Option<u64> = a.opt("--count").map(|_| a.num("--count", 0)).transpose()?;
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

fn udp_client(a: &Args) -> Res<i32> {
    a.want(1, "udp ADDR [--count N] [--size S] [--expect-unreachable]")?;
    let addr = parse_addr(&a.pos[0])?;
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let s = UdpSocket::bind(any)
        .and_then(|s| s.connect(addr).map(|_| s))
        .map_err(|e| ioerr(format!("udp {addr}"), e))?;
    let mut inb = vec![0u8; 65536];
    let t0 = Instant::now();
    let deadline = t0 + a.timeout;
    if a.flag("--expect-unreachable") {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = s.send(b"testkit").and_then(|_| {
                s.set_read_timeout(Some(
                    left.clamp(Duration::from_millis(1), Duration::from_secs(1)),
                ))?;
                s.recv(&mut inb)
            });
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            let result = match r {
                Ok(_) => "reply",
                Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => "refused",
                Err(e) if is_timeout(&e) && !left.is_zero() => continue,
                Err(e) if is_timeout(&e) => "timeout",
                Err(_) => "error",
            };
            emit(&format!("result={result} ms={ms:.3}"));
            return Ok(if result == "refused" { 0 } else { 1 });
        }
    }
    let count: u64 = a.num("--count", 100)?;
    let size: usize = a.num("--size", 1000)?;
    if !(4..=65507).contains(&size) {
        return Err(usage("--size must be 4..=65507"));
    }
    let mut out = vec![0u8; size];
    let (mut received, mut retries, mut bad) = (0u64, 0u64, 0u64);
    for seq in 0..count {
        if Instant::now() > deadline {
            return Err(Fail::Timeout(format!("udp: {received} of {count} echoed")));
        }
        out[..4].copy_from_slice(&(seq as u32).to_be_bytes());
        Stream::new(seq).fill(&mut out[4..]);
        'attempts: for attempt in 0..4 {
            if attempt > 0 {
                retries += 1;
            }
            s.send(&out)
                .map_err(|e| ioerr(format!("udp send #{seq}"), e))?;
            let until = Instant::now() + Duration::from_secs(1);
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s.set_read_timeout(Some(left))
                    .map_err(|e| ioerr("setsockopt", e))?;
                match s.recv(&mut inb) {
                    Ok(n) if n >= 4 && inb[..4] == out[..4] => {
                        if inb[..n] == out[..] {
                            received += 1;
                        } else {
                            bad += 1;
                        }
                        break 'attempts;
                    }
                    Ok(_) => {} // a late echo of an earlier datagram
                    Err(e) if is_timeout(&e) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ioerr(format!("udp recv #{seq}"), e)),
                }
            }
        }
    }
    let ok = received == count && bad == 0;
    emit(&format!(
        "ok={} sent={count} received={received} retries={retries} bad={bad}",
        ok as u8
    ));
    Ok(if ok { 0 } else { 1 })
}

// ---------------------------------------------------------------- inject

const ETH: usize = 14;
const V4L4: usize = ETH + 20;
const V6L4: usize = ETH + 40;
const GW4: [u8; 4] = [10, 0, 2, 2];
const ME4: [u8; 4] = [10, 0, 2, 100];
const BCAST: [u8; 6] = [0xff; 6];

fn v6(last: u16) -> [u8; 16] {
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last).octets()
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    if at + 2 <= f.len() {
        f[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
}

fn sum16(data: &[u8]) -> u64 {
    let mut c = data.chunks_exact(2);
    let mut s: u64 = (&mut c)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u64)
        .sum();
    if let [b] = c.remainder() {
        s += (*b as u64) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Offset of the checksum inside an L4 header, and whether it covers a
/// pseudo header.
fn l4_csum(proto: u8) -> Option<(usize, bool)> {
    match proto {
        6 => Some((16, true)),
        17 => Some((6, true)),
        1 => Some((2, false)),
        58 => Some((2, true)),
        _ => None,
    }
}

/// Recompute the IPv4 header checksum and the L4 checksum over the bytes
/// actually present, whatever the (possibly lying) length fields say.
fn fix_checksums(f: &mut [u8]) {
    if f.len() < ETH {
        return;
    }
    let (l4, proto, pseudo) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f.len() >= V4L4 => {
            let ihl = (f[ETH] & 0x0f) as usize * 4;
            let hl = if ihl >= 20 && ETH + ihl <= f.len() {
                ihl
            } else {
                20
            };
            put16(f, ETH + 10, 0);
            let c = fold(sum16(&f[ETH..ETH + hl]));
            put16(f, ETH + 10, c);
            if ihl != 20 {
                return;
            }
            let len = (f.len() - V4L4) as u64;
            (
                V4L4,
                f[ETH + 9],
                sum16(&f[ETH + 12..V4L4]) + f[ETH + 9] as u64 + len,
            )
        }
        0x86dd if f.len() >= V6L4 => {
            let len = (f.len() - V6L4) as u64;
            (
                V6L4,
                f[ETH + 6],
                sum16(&f[ETH + 8..V6L4]) + f[ETH + 6] as u64 + (len >> 16) + (len & 0xffff),
            )
        }
        _ => return,
    };
    let Some((pos, with_pseudo)) = l4_csum(proto) else {
        return;
    };
    if f.len() < l4 + pos + 2 {
        return;
    }
    put16(f, l4 + pos, 0);
    let mut c = fold(sum16(&f[l4..]) + if with_pseudo { pseudo } else { 0 });
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    put16(f, l4 + pos, c);
}

/// Make the IP length field match the frame.
fn set_ip_len(f: &mut [u8]) {
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => put16(f, ETH + 2, (f.len() - ETH).min(65535) as u16),
        0x86dd => put16(f, ETH + 4, (f.len() - V6L4).min(65535) as u16),
        _ => {}
    }
}

struct Inj {
    dst: [u8; 6],
    src: [u8; 6],
    mtu: usize,
}

impl Inj {
    fn eth(&self, dst: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn v4(&self, src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = self.eth(self.dst, 0x0800);
        f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(l4);
        set_ip_len(&mut f);
        fix_checksums(&mut f);
        f
    }

    fn v6(
        &self,
        mac: [u8; 6],
        src: [u8; 16],
        dst: [u8; 16],
        next: u8,
        hop: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut f = self.eth(mac, 0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, next, hop]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(l4);
        set_ip_len(&mut f);
        fix_checksums(&mut f);
        f
    }

    fn arp(&self, op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = self.eth(BCAST, 0x0806);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        f.extend_from_slice(&op.to_be_bytes());
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }
}

fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut s = Vec::with_capacity(32);
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&[
        0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0x80, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    // MSS 1460, NOP NOP SACK-permitted, NOP wscale 7.
    s.extend_from_slice(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]);
    s
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = sport.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

fn icmp(ty: u8, rest: &[u8]) -> Vec<u8> {
    let mut s = vec![ty, 0, 0, 0];
    s.extend_from_slice(rest);
    s
}

const PAYLOAD: &[u8] = b"testkit inject!!";

fn templates(inj: &Inj) -> Vec<Vec<u8>> {
    let echo: Vec<u8> = [&[0x12, 0x34, 0, 1][..], PAYLOAD].concat();
    let (me6, gw6) = (v6(0x100), v6(2));
    let mut ns = vec![0; 4];
    ns.extend_from_slice(&gw6);
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&inj.src);
    let sn_mac = [0x33, 0x33, 0xff, 0, 0, 2];
    let sn_ip = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2).octets();
    vec![
        inj.arp(1, ME4, GW4),
        inj.v4(ME4, GW4, 6, &tcp_syn(40000, 9)),
        inj.v4(ME4, GW4, 17, &udp(40000, 9, PAYLOAD)),
        inj.v4(ME4, GW4, 1, &icmp(8, &echo)),
        inj.v6(inj.dst, me6, gw6, 6, 64, &tcp_syn(40000, 9)),
        inj.v6(inj.dst, me6, gw6, 17, 64, &udp(40000, 9, PAYLOAD)),
        inj.v6(inj.dst, me6, gw6, 58, 64, &icmp(128, &echo)),
        inj.v6(sn_mac, me6, sn_ip, 58, 255, &icmp(135, &ns)),
    ]
}

/// Push a copy of `base` edited by `edit`, checksums fixed afterwards if `fix`.
fn variant(out: &mut Vec<Vec<u8>>, base: &[u8], fix: bool, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut m = base.to_vec();
    edit(&mut m);
    if fix {
        fix_checksums(&mut m);
    }
    out.push(m);
}

fn l4_mutations(f: &[u8], off: usize, proto: u8, out: &mut Vec<Vec<u8>>) {
    let real = f.len() - off;
    // A broken L4 checksum (everything else valid).
    if let Some((pos, _)) = l4_csum(proto) {
        variant(out, f, false, |m| m[off + pos] ^= 0x5a);
    }
    if matches!(proto, 6 | 17) {
        for (sp, dp) in [(0, 9), (40000, 0), (0, 0)] {
            variant(out, f, true, |m| {
                put16(m, off, sp);
                put16(m, off + 2, dp);
            });
        }
    }
    match proto {
        6 => {
            for doff in [0u8, 4, 15] {
                variant(out, f, true, |m| m[off + 12] = doff << 4);
            }
            for flags in [
                0x03u8, 0x06, 0xff, 0x00, 0x10, 0x04, 0x01, 0x12, 0x22, 0xc2, 0x29,
            ] {
                variant(out, f, true, |m| m[off + 13] = flags);
            }
            variant(out, f, true, |m| {
                m[off + 12] |= 1;
                m[off + 13] = 0xff;
            });
            // Option lengths: MSS (len at 21), SACK-permitted (27), wscale (30).
            for at in [21, 27, 30] {
                for len in [0u8, 1, 255] {
                    variant(out, f, true, |m| m[off + at] = len);
                }
            }
            variant(out, f, true, |m| m[off + 20] = 0xfe);
            variant(out, f, true, |m| put16(m, off + 14, 0));
            variant(out, f, true, |m| {
                m.extend_from_slice(&[0xab; 100]);
                set_ip_len(m);
            });
        }
        17 => {
            for len in [0, 7, 8, real - 1, real + 1, 65535] {
                variant(out, f, true, |m| put16(m, off + 4, len as u16));
            }
            variant(out, f, false, |m| {
                fix_checksums(m);
                put16(m, off + 6, 0);
            });
        }
        1 | 58 => {
            let types: &[(u8, u8)] = if proto == 1 {
                &[
                    (0, 0),
                    (3, 3),
                    (3, 4),
                    (5, 0),
                    (11, 0),
                    (13, 0),
                    (255, 255),
                    (8, 255),
                ]
            } else {
                &[
                    (129, 0),
                    (1, 4),
                    (2, 0),
                    (3, 0),
                    (133, 0),
                    (134, 0),
                    (136, 0),
                    (137, 0),
                    (255, 255),
                    (128, 1),
                ]
            };
            for &(ty, code) in types {
                variant(out, f, true, |m| {
                    m[off] = ty;
                    m[off + 1] = code;
                });
            }
        }
        _ => {}
    }
}

fn v4_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let real = f.len() - ETH;
    let proto = f[ETH + 9];
    for tl in [0, 1, 19, real - 1, real + 1, 65535] {
        variant(out, f, true, |m| put16(m, ETH + 2, tl as u16));
    }
    for b in [0x40u8, 0x44, 0x4f, 0x05, 0x65, 0xf5] {
        variant(out, f, true, |m| m[ETH] = b); // IHL 0/4/15; version 0/6/15
    }
    variant(out, f, true, |m| m[ETH + 8] = 0); // TTL 0
    variant(out, f, false, |m| m[ETH + 10] ^= 0xff); // bad header checksum
    // Fragments: MF at offset 0, MF at 8, last fragment at 8, max offset,
    // DF+MF, the reserved bit.
    for fo in [0x2000u16, 0x2001, 0x0001, 0x1fff, 0x3fff, 0x6000, 0x8000] {
        variant(out, f, true, |m| put16(m, ETH + 6, fo));
    }
    for src in [[0u8; 4], [255; 4], [127, 0, 0, 1], GW4, [224, 0, 0, 1], ME4] {
        variant(out, f, true, |m| {
            m[ETH + 12..ETH + 16].copy_from_slice(&src)
        });
    }
    for dst in [
        [0u8; 4],
        [255; 4],
        [224, 0, 0, 1],
        [10, 0, 2, 255],
        [127, 0, 0, 1],
        ME4,
    ] {
        variant(out, f, true, |m| {
            m[ETH + 16..ETH + 20].copy_from_slice(&dst)
        });
    }
    for p in [0u8, 1, 6, 17, 58, 253, 255] {
        if p != proto {
            variant(out, f, true, |m| m[ETH + 9] = p);
        }
    }
    l4_mutations(f, V4L4, proto, out);
}

fn v6_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let real = f.len() - V6L4;
    let next = f[ETH + 6];
    for pl in [0, real - 1, real + 1, 65535] {
        variant(out, f, true, |m| put16(m, ETH + 4, pl as u16));
    }
    for b in [0x40u8, 0x00, 0xf0] {
        variant(out, f, true, |m| m[ETH] = b);
    }
    variant(out, f, true, |m| m[ETH + 7] = 0); // hop limit 0
    let ll1 = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets();
    let all = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    for a in [
        [0u8; 16],
        Ipv6Addr::LOCALHOST.octets(),
        all,
        ll1,
        v6(2),
        v6(0x100),
    ] {
        variant(out, f, true, |m| m[ETH + 8..ETH + 24].copy_from_slice(&a));
        variant(out, f, true, |m| m[ETH + 24..V6L4].copy_from_slice(&a));
    }
    for p in [0u8, 43, 44, 59, 60, 253, 6, 17, 58] {
        if p != next {
            variant(out, f, true, |m| m[ETH + 6] = p);
        }
    }
    // Extension headers spliced in front of the (valid) L4 segment:
    // fragments (first with MF, middle, last, atomic), hop-by-hop (valid
    // PadN, length past the frame, unknown option with a huge length),
    // two hop-by-hops in a row, routing type 0.
    let ext: [(u8, Vec<u8>); 9] = [
        (44, vec![next, 0, 0x00, 0x01, 0, 0, 0, 1]),
        (44, vec![next, 0, 0x00, 0x09, 0, 0, 0, 2]),
        (44, vec![next, 0, 0x00, 0x08, 0, 0, 0, 3]),
        (44, vec![next, 0, 0x00, 0x00, 0, 0, 0, 4]),
        (0, vec![next, 0, 1, 4, 0, 0, 0, 0]),
        (0, vec![next, 255, 1, 4, 0, 0, 0, 0]),
        (0, vec![next, 0, 0xfe, 255, 0, 0, 0, 0]),
        (0, vec![0, 0, 1, 4, 0, 0, 0, 0, next, 0, 1, 4, 0, 0, 0, 0]),
        (
            43,
            vec![
                next, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        ),
    ];
    for (nh, hdr) in ext {
        variant(out, f, false, |m| {
            m.splice(V6L4..V6L4, hdr);
            m[ETH + 6] = nh;
            set_ip_len(m);
        });
    }
    l4_mutations(f, V6L4, next, out);
    if next == 58 && f[V6L4] == 135 {
        // NS: option length 0 (the classic parser loop) and 255, hop limit
        // not 255, multicast target, DAD source with an SLLA option.
        variant(out, f, true, |m| m[V6L4 + 25] = 0);
        variant(out, f, true, |m| m[V6L4 + 25] = 255);
        variant(out, f, true, |m| m[ETH + 7] = 64);
        variant(out, f, true, |m| {
            m[V6L4 + 8..V6L4 + 24].copy_from_slice(&all)
        });
        variant(out, f, true, |m| m[ETH + 8..ETH + 24].fill(0));
    }
}

fn arp_mutations(f: &[u8], out: &mut Vec<Vec<u8>>) {
    let a = ETH;
    let edits: [(usize, &[u8]); 20] = [
        (a, &[0, 0]),
        (a, &[0xff, 0xff]),
        (a + 2, &[0x86, 0xdd]),
        (a + 2, &[0, 0]),
        (a + 4, &[0]),
        (a + 4, &[255]),
        (a + 4, &[16]),
        (a + 5, &[0]),
        (a + 5, &[255]),
        (a + 5, &[16]),
        (a + 6, &[0, 0]),
        (a + 6, &[0, 2]),
        (a + 6, &[0, 3]),
        (a + 6, &[0xff, 0xff]),
        (a + 24, &ME4),
        (a + 24, &[0, 0, 0, 0]),
        (a + 24, &[255, 255, 255, 255]),
        (a + 14, &[0, 0, 0, 0]),
        (a + 14, &GW4),
        (a + 8, &BCAST),
    ];
    for (at, bytes) in edits {
        variant(out, f, false, |m| {
            m[at..at + bytes.len()].copy_from_slice(bytes)
        });
    }
    variant(out, f, false, |m| m[a + 14..a + 18].copy_from_slice(&ME4)); // gratuitous
    variant(out, f, false, |m| m.truncate(ETH + 8)); // header only
}

fn build_frames(inj: &Inj) -> Vec<Vec<u8>> {
    let t = templates(inj);
    let mut out = Vec::new();
    for f in &t {
        out.extend((0..=f.len()).map(|len| f[..len].to_vec()));
    }
    for f in &t {
        variant(&mut out, f, false, |m| {
            m[6..12].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1])
        });
        match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => v4_mutations(f, &mut out),
            0x86dd => v6_mutations(f, &mut out),
            _ => arp_mutations(f, &mut out),
        }
    }
    let syn = &t[1];
    // Unknown / odd EtherTypes (802.3 length, VLAN, QinQ, MPLS) over a SYN.
    for et in [
        0x88b5u16, 0xffff, 0x0000, 0x05dc, 0x0600, 0x8100, 0x88a8, 0x8847,
    ] {
        variant(&mut out, syn, false, |m| put16(m, 12, et));
    }
    variant(&mut out, syn, false, |m| {
        m.splice(12..12, [0x81, 0x00, 0x00, 0x01]);
    });
    for dst in [
        BCAST,
        [0; 6],
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 1],
        inj.src,
    ] {
        variant(&mut out, syn, false, |m| m[..6].copy_from_slice(&dst));
    }
    variant(&mut out, syn, false, |m| m[6..12].fill(0));
    // ICMP errors from the namespace quoting a segment rlnet could have sent
    // (gateway:9 -> us:40000): frag-needed / packet-too-big with odd MTUs,
    // port unreachable.
    let quote = |f: &[u8], l4: usize, alen: usize| {
        let mut q = f[ETH..l4 + 8].to_vec();
        let (s, d) = (l4 - ETH - 2 * alen, l4 - ETH - alen);
        let src: Vec<u8> = q[s..d].to_vec();
        q.copy_within(d..d + alen, s);
        q[d..d + alen].copy_from_slice(&src);
        let h = l4 - ETH;
        q.copy_within(h..h + 2, h + 2);
        q[h..h + 2].copy_from_slice(&9u16.to_be_bytes());
        q[h + 2..h + 4].copy_from_slice(&40000u16.to_be_bytes());
        q
    };
    for (code, mtu) in [(4u8, 0u16), (4, 68), (4, 65535), (3, 0)] {
        let mut msg = vec![3, code, 0, 0, 0, 0];
        msg.extend_from_slice(&mtu.to_be_bytes());
        msg.extend_from_slice(&quote(syn, V4L4, 4));
        out.push(inj.v4(ME4, GW4, 1, &msg));
    }
    for mtu in [0u32, 1280, u32::MAX] {
        let mut msg = vec![2, 0, 0, 0];
        msg.extend_from_slice(&mtu.to_be_bytes());
        msg.extend_from_slice(&quote(&t[4], V6L4, 16));
        out.push(inj.v6(inj.dst, v6(0x100), v6(2), 58, 64, &msg));
    }
    // Oversize: IPv4/UDP and IPv6/UDP at and beyond what the link allows.
    for size in [
        inj.mtu + ETH,
        inj.mtu + ETH + 1,
        inj.mtu + ETH + 4,
        inj.mtu + ETH + 18,
        65535 + ETH,
        65535 + ETH + 1000,
    ] {
        for base in [&t[2], &t[5]] {
            variant(&mut out, base, true, |m| {
                let l4 = if base[12] == 0x08 { V4L4 } else { V6L4 };
                m.resize(size, 0xcd);
                put16(m, l4 + 4, (size - l4).min(65535) as u16);
                set_ip_len(m);
            });
        }
    }
    out
}

fn packet_socket(ifname: &str, t: Duration) -> Res<std::os::fd::OwnedFd> {
    packet_socket_proto(ifname, t, 0)
}

/// A packet socket bound to `ifname`; `proto` 0 sends only, ETH_P_ALL
/// (in host order) also receives every frame.
fn packet_socket_proto(ifname: &str, t: Duration, proto: u16) -> Res<std::os::fd::OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| Fail::Io(format!("interface {ifname}: {e}")))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Fail::Io(format!("AF_PACKET socket: {e}")))?;
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: proto.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `sll` is a fully initialised sockaddr_ll that outlives the call,
    // the length passed is exactly its size, and `fd` is an open socket we own.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Fail::Io(format!(
            "bind AF_PACKET to {ifname}: {}",
            io::Error::last_os_error()
        )));
    }
    SockRef::from(&fd)
        .set_write_timeout(Some(t))
        .map_err(|e| ioerr("setsockopt", e))?;
    Ok(fd)
}

/// The interface's MAC address and MTU (ioctl: /sys may belong to another
/// network namespace).
fn if_info(fd: &std::os::fd::OwnedFd, ifname: &str) -> Res<([u8; 6], usize)> {
    let err = |what: &str| Fail::Io(format!("{what} {ifname}: {}", io::Error::last_os_error()));
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(usage(format!("interface name too long: {ifname:?}")));
    }
    // SAFETY: ifreq is plain old data (a name and a union of plain old data);
    // all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated ifr_name and writes
    // ifr_hwaddr, both inside `req`, which is ours and outlives the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(err("SIOCGIFHWADDR"));
    }
    // SAFETY: the ioctl succeeded, so the kernel initialised ifru_hwaddr.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mac: [u8; 6] = std::array::from_fn(|i| hw.sa_data[i] as u8);
    // SAFETY: as above; SIOCGIFMTU writes ifru_mtu inside `req`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } != 0 {
        return Err(err("SIOCGIFMTU"));
    }
    // SAFETY: the ioctl succeeded, so the kernel initialised ifru_mtu.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((mac, mtu.max(68) as usize))
}

fn inject(a: &Args) -> Res<i32> {
    a.want(1, "inject IFNAME [--rounds R] [--dst-mac MAC]")?;
    let ifname = &a.pos[0];
    let rounds: u64 = a.num("--rounds", 1)?;
    let dst_s = a.opt("--dst-mac").unwrap_or("52:55:0a:00:02:02");
    let dst = parse_mac(dst_s).ok_or_else(|| usage(format!("bad --dst-mac {dst_s:?}")))?;
    let fd = packet_socket(ifname, a.timeout)?;
    let (src, mtu) = if_info(&fd, ifname)?;
    let frames = build_frames(&Inj { dst, src, mtu });
    let (mut sent, mut errors, mut last_err) = (0u64, 0u64, None);
    for _ in 0..rounds {
        for f in &frames {
            match nix::sys::socket::send(fd.as_raw_fd(), f, nix::sys::socket::MsgFlags::empty()) {
                Ok(_) => sent += 1,
                Err(nix::errno::Errno::EAGAIN) => {
                    return Err(Fail::Timeout("inject: send timed out".into()));
                }
                Err(e) => {
                    errors += 1;
                    last_err = Some(e);
                }
            }
        }
    }
    if sent == 0 {
        eprintln!("testkit: inject: no frame could be sent (last error: {last_err:?})");
    }
    emit(&format!(
        "sent={sent} errors={errors} frames={}",
        frames.len()
    ));
    Ok(if sent > 0 { 0 } else { 1 })
}

// ---------------------------------------------------------------- api

/// One request on an API socket, the way clients send them (or badly:
/// oversized, trickled, never finished), and the reply as received.
fn api(a: &Args) -> Res<i32> {
    use std::os::unix::net::UnixStream;
    a.want(
        2,
        "api PATH REQUEST [--trickle MS] [--repeat N] [--no-shutdown]",
    )?;
    let t0 = Instant::now();
    let mut s = UnixStream::connect(&a.pos[0]).map_err(|e| ioerr("connect", e))?;
    s.set_read_timeout(Some(a.timeout))
        .map_err(|e| ioerr("timeout", e))?;
    s.set_write_timeout(Some(a.timeout))
        .map_err(|e| ioerr("timeout", e))?;
    let req = a.pos[1].repeat(a.num("--repeat", 1usize)?);
    match a.opt("--trickle") {
        Some(_) => {
            let pause = Duration::from_millis(a.num("--trickle", 1000u64)?);
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
    emit(&format!("ms={:.3}", t0.elapsed().as_secs_f64() * 1e3));
    Ok(0)
}

// ---------------------------------------------------------------- spoof

const SPOOF_MARK: &[u8] = b"rlnet-spoofed-frame";
const SPOOF_END: &[u8] = b"rlnet-spoof-end";

fn parse_ip(s: &str) -> Res<std::net::IpAddr> {
    s.parse()
        .map_err(|_| usage(format!("bad IP address {s:?}")))
}

fn mac_opt(a: &Args, name: &str, default: [u8; 6]) -> Res<[u8; 6]> {
    match a.opt(name) {
        None => Ok(default),
        Some(v) => parse_mac(v).ok_or_else(|| usage(format!("bad {name} {v:?}"))),
    }
}

/// An Ethernet frame carrying `l4` from `src` to `dst` (same family).
fn ip_frame(
    inj: &Inj,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    proto: u8,
    l4: &[u8],
) -> Res<Vec<u8>> {
    use std::net::IpAddr::{V4, V6};
    match (src, dst) {
        (V4(s), V4(d)) => Ok(inj.v4(s.octets(), d.octets(), proto, l4)),
        (V6(s), V6(d)) => Ok(inj.v6(inj.dst, s.octets(), d.octets(), proto, 64, l4)),
        _ => Err(usage("source and destination must be the same family")),
    }
}

/// A RST|ACK segment with `seq`, carrying the marker as (diagnostic) data.
fn tcp_rst(sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    let mut s = sport.to_be_bytes().to_vec();
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x14, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(SPOOF_MARK);
    s
}

/// Frames with a forged source (another member's MAC and/or IP), then one
/// honest frame marking the end (`--final`, for `sniff` on the victim's
/// side).
fn spoof(a: &Args) -> Res<i32> {
    a.want(
        3,
        "spoof IFNAME SRC_IP DST_IP [--dst-mac MAC] [--src-mac MAC] [--rst] [--sport P] [--dport P] [--count N] [--final OWN_IP]",
    )?;
    let ifname = &a.pos[0];
    let (src, dst) = (parse_ip(&a.pos[1])?, parse_ip(&a.pos[2])?);
    let own = a.opt("--final").map(parse_ip).transpose()?;
    let fd = packet_socket(ifname, a.timeout)?;
    let (mac, mtu) = if_info(&fd, ifname)?;
    let dst_mac = mac_opt(a, "--dst-mac", BCAST)?;
    let src_mac = mac_opt(a, "--src-mac", mac)?;
    let (sport, dport): (u16, u16) = (a.num("--sport", 40000)?, a.num("--dport", 9)?);
    let count: u32 = a.num("--count", 100)?;
    let forged = Inj {
        dst: dst_mac,
        src: src_mac,
        mtu,
    };
    let mut frames = Vec::new();
    for i in 0..count {
        frames.push(if a.flag("--rst") {
            // Sweep the sequence space: a switch that let these through
            // would hand the victim in-window resets.
            let seq = (u64::from(i) * (1u64 << 32) / u64::from(count.max(1))) as u32;
            ip_frame(&forged, src, dst, 6, &tcp_rst(sport, dport, seq))?
        } else {
            ip_frame(&forged, src, dst, 17, &udp(sport, dport, SPOOF_MARK))?
        });
    }
    let honest = Inj {
        dst: dst_mac,
        src: mac,
        mtu,
    };
    if let Some(own) = own {
        frames.push(ip_frame(
            &honest,
            own,
            dst,
            17,
            &udp(sport, dport, SPOOF_END),
        )?);
    }
    let mut sent = 0u64;
    for f in &frames {
        match nix::sys::socket::send(fd.as_raw_fd(), f, nix::sys::socket::MsgFlags::empty()) {
            Ok(_) => sent += 1,
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(Fail::Timeout("spoof: send timed out".into()));
            }
            Err(e) => return Err(Fail::Io(format!("spoof: send: {e}"))),
        }
    }
    emit(&format!("sent={sent}"));
    Ok(0)
}

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20), which nix does not name.
#[derive(Clone, Copy)]
struct IgnoreOutgoing;

impl nix::sys::socket::SetSockOpt for IgnoreOutgoing {
    type Val = bool;
    fn set<F: AsFd>(&self, fd: &F, val: &bool) -> nix::Result<()> {
        let v: libc::c_int = (*val).into();
        // SAFETY: `v` is a c_int that outlives the call; its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_fd().as_raw_fd(),
                libc::SOL_PACKET,
                23, // PACKET_IGNORE_OUTGOING
                (&raw const v).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        nix::errno::Errno::result(rc).map(drop)
    }
}

/// Markers travel in small frames; a bulk stream on the same link must not
/// overflow the socket and hide them, so the kernel keeps only frames of at
/// most 256 bytes (classic BPF: A = len; A > 256 ? drop : accept).
fn small_frames_only(fd: &std::os::fd::OwnedFd) -> Res<()> {
    let prog = [
        libc::sock_filter {
            code: 0x80,
            jt: 0,
            jf: 0,
            k: 0,
        }, // ld #len
        libc::sock_filter {
            code: 0x25,
            jt: 1,
            jf: 0,
            k: 256,
        }, // jgt #256
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0xffff,
        }, // ret #0xffff
        libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0,
        }, // ret #0
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Fail::Io(format!(
            "SO_ATTACH_FILTER: {}",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Count frames arriving on IFNAME that carry the spoof marker, until N
/// end markers arrived; prints `listening` first and `spoofed=N` at the end.
fn sniff(a: &Args) -> Res<i32> {
    a.want(1, "sniff IFNAME")?;
    let fd = packet_socket_proto(&a.pos[0], a.timeout, libc::ETH_P_ALL as u16)?;
    SockRef::from(&fd)
        .set_read_timeout(Some(a.timeout))
        .map_err(|e| ioerr("setsockopt", e))?;
    // Only what arrives: the victim's own replies (ICMP errors quoting a
    // marker) are not evidence.
    nix::sys::socket::setsockopt(&fd, IgnoreOutgoing, &true)
        .map_err(|e| Fail::Io(format!("PACKET_IGNORE_OUTGOING: {e}")))?;
    small_frames_only(&fd)?;
    emit("listening");
    let contains = |f: &[u8], m: &[u8]| f.windows(m.len()).any(|w| w == m);
    let t0 = Instant::now();
    let (mut spoofed, mut buf) = (0u64, vec![0u8; 65536]);
    loop {
        if t0.elapsed() > a.timeout {
            return Err(Fail::Timeout(format!(
                "sniff: no end marker (spoofed={spoofed})"
            )));
        }
        let n = match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(Fail::Timeout(format!(
                    "sniff: no end marker (spoofed={spoofed})"
                )));
            }
            Err(e) => return Err(Fail::Io(format!("sniff: recv: {e}"))),
        };
        let f = &buf[..n];
        if contains(f, SPOOF_END) {
            break;
        }
        if contains(f, SPOOF_MARK) {
            spoofed += 1;
        }
    }
    emit(&format!("spoofed={spoofed}"));
    Ok(0)
}

// ---------------------------------------------------------------- DNS

mod dns {
    //! A fake authoritative server for a fixed test zone, a query client and
    //! a sender of malformed messages, for the DNS stub's tests.

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, AAAA, MX, SRV, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    /// A query for `name`/`rtype` with ID `id` and RD=1; EDNS with `edns`
    /// as the UDP size, if given.
    pub fn query(name: &str, rtype: RecordType, id: u16, edns: Option<u16>) -> Option<Vec<u8>> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).ok()?, rtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().ok()
    }

    /// 20 strings of 100 bytes: about 2000 bytes of answer.
    fn big() -> Vec<String> {
        (0..20)
            .map(|i| format!("{i:02}{}", "x".repeat(98)))
            .collect()
    }

    /// The test zone's answer to `query`, or None if it is not a query.
    /// Over UDP an answer larger than the query's EDNS size (512 without
    /// EDNS) is sent with TC=1 and no records.
    pub fn answer(query: &[u8], tag: Option<&str>, udp: bool) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        if q.metadata.message_type != MessageType::Query || q.queries.len() != 1 {
            return None;
        }
        let question = q.queries[0].clone();
        let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
        m.metadata.recursion_desired = q.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.authoritative = true;
        m.add_query(question.clone());
        let limit = q
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload().max(512)));
        if q.edns.is_some() {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        let name = question.name().clone();
        let owner = name.to_lowercase().to_ascii();
        let rec = |data| Record::from_rdata(name.clone(), 60, data);
        let host = |s: &str| Name::from_ascii(s).ok();
        let data = match (owner.trim_end_matches('.'), question.query_type()) {
            ("a.test", RecordType::A) => Some(RData::A(A([198, 18, 0, 10].into()))),
            ("aaaa.test", RecordType::AAAA) => Some(RData::AAAA(AAAA(
                [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10].into(),
            ))),
            ("txt.test", RecordType::TXT) => Some(RData::TXT(TXT::new(vec!["hello".into()]))),
            ("srv.test", RecordType::SRV) => {
                Some(RData::SRV(SRV::new(10, 5, 5060, host("sip.test.")?)))
            }
            ("mx.test", RecordType::MX) => Some(RData::MX(MX::new(10, host("mail.test.")?))),
            ("big.test", RecordType::TXT) => Some(RData::TXT(TXT::new(big()))),
            ("tag.test", RecordType::TXT) if tag.is_some() => {
                Some(RData::TXT(TXT::new(vec![tag?.to_string()])))
            }
            ("a.test" | "aaaa.test" | "txt.test" | "srv.test" | "mx.test" | "big.test", _) => None,
            ("tag.test", _) if tag.is_some() => None,
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                None
            }
        };
        if let Some(d) = data {
            m.add_answer(rec(d));
        }
        let full = m.to_vec().ok()?;
        if udp && full.len() > limit {
            m.answers.clear();
            m.metadata.truncation = true;
            return m.to_vec().ok();
        }
        Some(full)
    }

    /// `rcode=... answers=N tc=0|1 data=...` for a reply; data is the first
    /// answer's value (text strings joined, names with their dot).
    pub fn summary(reply: &[u8]) -> String {
        let Ok(m) = Message::from_vec(reply) else {
            return format!("rcode=unparsable bytes={}", reply.len());
        };
        let data = m.answers.first().map_or(String::new(), |r| match &r.data {
            RData::TXT(t) => t
                .txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(""),
            other => other.to_string(),
        });
        format!(
            "rcode={} answers={} tc={} data={}",
            rcode_name(m.metadata.response_code),
            m.answers.len(),
            u8::from(m.metadata.truncation),
            data
        )
    }

    pub fn rcode_name(rc: ResponseCode) -> String {
        match u16::from(rc) {
            0 => "NOERROR".into(),
            1 => "FORMERR".into(),
            2 => "SERVFAIL".into(),
            3 => "NXDOMAIN".into(),
            4 => "NOTIMP".into(),
            5 => "REFUSED".into(),
            n => format!("RCODE{n}"),
        }
    }

    /// The reply's RCODE (header bits only), or None without a header.
    pub fn rcode_of(reply: &[u8]) -> Option<u8> {
        reply.get(3).map(|b| b & 0x0f).filter(|_| reply.len() >= 12)
    }

    pub fn parse_type(s: &str) -> Option<RecordType> {
        s.to_ascii_uppercase()
            .parse::<RecordType>()
            .ok()
            .or_else(|| s.parse::<u16>().ok().map(RecordType::from))
    }
}

fn dns_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

/// A TCP connection to serve-dns, read in a poll loop.
struct DnsConn {
    s: TcpStream,
    buf: Vec<u8>,
}

/// `serve-dns ADDR [--count N] [--tag T] [--silent] [--stdin]`: UDP and TCP
/// on one port; stops after N queries, after --timeout without any, or on
/// stdin EOF (--stdin); prints `queries=N`.
fn serve_dns(a: &Args) -> Res<i32> {
    a.want(
        1,
        "serve-dns ADDR [--count N] [--tag T] [--silent] [--stdin]",
    )?;
    let addr = parse_addr(&a.pos[0])?;
    let count: Option<u64> = a.opt("--count").map(|_| a.num("--count", 0)).transpose()?;
    let tag = a.opt("--tag");
    let silent = a.flag("--silent");
    let use_stdin = a.flag("--stdin");
    let udp = UdpSocket::bind(addr).map_err(|e| ioerr(format!("bind {addr}"), e))?;
    let port = udp
        .local_addr()
        .map_err(|e| ioerr("getsockname", e))?
        .port();
    let taddr = SocketAddr::new(addr.ip(), port);
    let l = Socket::new(
        Domain::for_address(taddr),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .and_then(|s| s.set_reuse_address(true).map(|_| s))
    .and_then(|s| s.bind(&taddr.into()).map(|_| s))
    .and_then(|s| s.listen(1024).map(|_| s))
    .map_err(|e| ioerr(format!("listen {taddr}"), e))?;
    let l: TcpListener = l.into();
    udp.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
    l.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
    emit(&format!("listening port={port}"));
    let stdin = io::stdin();
    let mut conns: Vec<DnsConn> = Vec::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 65536];
    let mut last = Instant::now();
    'serve: while count.is_none_or(|c| n < c) {
        let left = (last + a.timeout).saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ready: Vec<bool> = {
            let mut fds = vec![
                PollFd::new(udp.as_fd(), PollFlags::POLLIN),
                PollFd::new(l.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                conns
                    .iter()
                    .map(|c| PollFd::new(c.s.as_fd(), PollFlags::POLLIN)),
            );
            if use_stdin {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            poll_for(&mut fds, left)?;
            fds.iter().map(|f| f.any().unwrap_or(true)).collect()
        };
        if use_stdin
            && ready.last() == Some(&true)
            && matches!(stdin.lock().read(&mut buf), Ok(0) | Err(_))
        {
            break;
        }
        if ready[0] {
            loop {
                match udp.recv_from(&mut buf) {
                    Ok((len, peer)) => {
                        n += 1;
                        last = Instant::now();
                        if !silent && let Some(ans) = dns::answer(&buf[..len], tag, true) {
                            let _ = udp.send_to(&ans, peer);
                        }
                        if count.is_some_and(|c| n >= c) {
                            break 'serve;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // ICMP errors from earlier replies: not ours to report.
                    Err(_) => break,
                }
            }
        }
        for i in (0..conns.len()).rev() {
            if !ready.get(2 + i).copied().unwrap_or(false) {
                continue;
            }
            let c = &mut conns[i];
            let closed = match c.s.read(&mut buf) {
                Ok(0) => true,
                Ok(len) => {
                    c.buf.extend_from_slice(&buf[..len]);
                    false
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    false
                }
                Err(_) => true,
            };
            while c.buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([c.buf[0], c.buf[1]]));
                if c.buf.len() < 2 + len {
                    break;
                }
                let msg: Vec<u8> = c.buf.drain(..2 + len).skip(2).collect();
                n += 1;
                last = Instant::now();
                if !silent && let Some(ans) = dns::answer(&msg, tag, false) {
                    c.s.set_nonblocking(false).map_err(|e| ioerr("fcntl", e))?;
                    let _ = c.s.set_write_timeout(Some(a.timeout));
                    let _ = c.s.write_all(&dns_frame(&ans));
                    c.s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
                }
            }
            if closed {
                conns.swap_remove(i);
            }
        }
        if ready[1] {
            loop {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
                        conns.push(DnsConn { s, buf: Vec::new() });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
                    Err(e) => return Err(ioerr("accept", e)),
                }
            }
        }
    }
    emit(&format!("queries={n}"));
    Ok(0)
}

fn bind_any(server: SocketAddr) -> Res<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    UdpSocket::bind(any)
        .and_then(|s| s.connect(server).map(|_| s))
        .map_err(|e| ioerr(format!("udp {server}"), e))
}

/// One DNS query over TCP on `s`; the reply.
fn dns_tcp_exchange(s: &mut TcpStream, q: &[u8]) -> Res<Vec<u8>> {
    s.write_all(&dns_frame(q))
        .map_err(|e| ioerr("tcp write", e))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| ioerr("tcp read", e))?;
    let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut r).map_err(|e| ioerr("tcp read", e))?;
    Ok(r)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// `dig SERVER NAME TYPE [--tcp] [--edns SIZE] [--count N] [--rate QPS]`
fn dig(a: &Args) -> Res<i32> {
    a.want(
        3,
        "dig SERVER NAME TYPE [--tcp] [--edns SIZE] [--count N] [--rate QPS]",
    )?;
    let server = parse_addr(&a.pos[0]).or_else(|_| {
        a.pos[0]
            .parse::<std::net::IpAddr>()
            .map(|ip| SocketAddr::new(ip, 53))
            .map_err(|_| usage(format!("bad server {:?}", a.pos[0])))
    })?;
    let rtype = dns::parse_type(&a.pos[2])
        .ok_or_else(|| usage(format!("bad record type {:?}", a.pos[2])))?;
    let edns: Option<u16> = a.opt("--edns").map(|_| a.num("--edns", 1232)).transpose()?;
    let name = &a.pos[1];
    let q =
        |id| dns::query(name, rtype, id, edns).ok_or_else(|| usage(format!("bad name {name:?}")));
    let tcp = a.flag("--tcp");
    let deadline = Instant::now() + a.timeout;
    let Some(_) = a.opt("--count") else {
        // One query, resent every second over UDP.
        let t0 = Instant::now();
        let query = q(0x5eed)?;
        let reply = if tcp {
            let mut s = connect_tcp(server, a.timeout)?;
            dns_tcp_exchange(&mut s, &query)?
        } else {
            let s = bind_any(server)?;
            let mut inb = vec![0u8; 65536];
            'answer: loop {
                s.send(&query)
                    .map_err(|e| ioerr(format!("send {server}"), e))?;
                let resend = Instant::now() + Duration::from_secs(1);
                loop {
                    let left = resend
                        .min(deadline)
                        .saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        if Instant::now() >= deadline {
                            return Err(Fail::Timeout(format!("dig {name}: no answer")));
                        }
                        continue 'answer;
                    }
                    s.set_read_timeout(Some(left))
                        .map_err(|e| ioerr("setsockopt", e))?;
                    match s.recv(&mut inb) {
                        Ok(n) if n >= 2 && inb[..2] == query[..2] => {
                            break 'answer inb[..n].to_vec();
                        }
                        Ok(_) => {}
                        Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(ioerr(format!("recv {server}"), e)),
                    }
                }
            }
        };
        emit(&format!(
            "{} ms={:.3}",
            dns::summary(&reply),
            t0.elapsed().as_secs_f64() * 1e3
        ));
        return Ok(0);
    };
    let count: u64 = a.num("--count", 1)?;
    let rate: f64 = a.num("--rate", 0.0)?;
    let mut lat: Vec<u64> = Vec::with_capacity(count as usize);
    let (mut sent, mut received) = (0u64, 0u64);
    if tcp {
        let mut s = connect_tcp(server, a.timeout)?;
        let t0 = Instant::now();
        for i in 0..count {
            if rate > 0.0 {
                let due = t0 + Duration::from_secs_f64(i as f64 / rate);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            let t = Instant::now();
            let r = dns_tcp_exchange(&mut s, &q(i as u16)?)?;
            sent += 1;
            if r.get(..2) == Some(&(i as u16).to_be_bytes()[..]) {
                received += 1;
                lat.push(t.elapsed().as_micros() as u64);
            }
        }
    } else {
        let s = bind_any(server)?;
        s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
        let queries: Vec<Vec<u8>> = (0..256u16).map(q).collect::<Res<_>>()?;
        let mut out_at: Vec<Option<Instant>> = vec![None; 65536];
        let mut inb = vec![0u8; 65536];
        let t0 = Instant::now();
        let mut stop_at = deadline;
        loop {
            let now = Instant::now();
            while sent < count {
                let due = if rate > 0.0 {
                    t0 + Duration::from_secs_f64(sent as f64 / rate)
                } else {
                    now
                };
                // Without a rate: at most 256 outstanding.
                if due > now || (rate <= 0.0 && sent - received >= 256) {
                    break;
                }
                let id = (sent % 65536) as u16;
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
                sent += 1;
                if sent == count {
                    stop_at = stop_at.min(Instant::now() + Duration::from_secs(2));
                }
            }
            loop {
                match s.recv(&mut inb) {
                    Ok(n) if n >= 12 => {
                        let id = usize::from(u16::from_be_bytes([inb[0], inb[1]]));
                        if let Some(t) = out_at[id].take() {
                            received += 1;
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {}
                }
            }
            if received >= count || Instant::now() >= stop_at {
                break;
            }
            let wait = if sent < count && rate > 0.0 {
                Duration::from_micros(200)
            } else {
                Duration::from_millis(10)
            };
            let _ = wait_fd(s.as_fd(), PollFlags::POLLIN, wait)?;
        }
    }
    lat.sort_unstable();
    emit(&format!(
        "sent={sent} received={received} p50_us={} p99_us={}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    ));
    Ok(if received == sent { 0 } else { 1 })
}

/// Sends each datagram and collects what comes back within 300 ms of the
/// last; prints counts by RCODE.
fn dns_udp_batch(server: SocketAddr, msgs: &[Vec<u8>], wait: Duration) -> Res<String> {
    let s = bind_any(server)?;
    s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
    for m in msgs {
        let _ = s.send(m);
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut counts = [0u64; 7];
    let mut replies = 0u64;
    let mut inb = vec![0u8; 65536];
    let end = Instant::now() + wait;
    loop {
        match s.recv(&mut inb) {
            Ok(n) => {
                replies += 1;
                let slot = match dns::rcode_of(&inb[..n]) {
                    Some(rc @ 0..=5) => usize::from(rc),
                    _ => 6,
                };
                counts[slot] += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() || !wait_fd(s.as_fd(), PollFlags::POLLIN, left)? {
                    break;
                }
            }
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

/// A header with these counts, then `rest`.
fn dns_raw(id: u16, flags: u16, counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v.extend_from_slice(rest);
    v
}

/// `dns-abuse SERVER MODE [N]`: malformed input for a DNS server.
fn dns_abuse(a: &Args) -> Res<i32> {
    const SYNTAX: &str = "dns-abuse SERVER truncated|lying-counts|compression-loop|qr1|\
                          tcp-64k-eof|tcp-cut-rst [N]|tcp-idle N";
    if !(2..=3).contains(&a.pos.len()) {
        return Err(usage(format!("usage: testkit {SYNTAX}")));
    }
    let server = parse_addr(&a.pos[0]).or_else(|_| {
        a.pos[0]
            .parse::<std::net::IpAddr>()
            .map(|ip| SocketAddr::new(ip, 53))
            .map_err(|_| usage(format!("bad server {:?}", a.pos[0])))
    })?;
    let n_arg = |default: usize| -> Res<usize> {
        a.pos.get(2).map_or(Ok(default), |s| {
            s.parse().map_err(|_| usage(format!("bad count {s:?}")))
        })
    };
    let good = dns::query(
        "a.test",
        hickory_proto::rr::RecordType::A,
        0x0bad,
        Some(1232),
    )
    .expect("literal query");
    let question: Vec<u8> = {
        // a.test A IN, uncompressed.
        let mut q = vec![1, b'a', 4, b't', b'e', b's', b't', 0];
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    };
    let t0 = Instant::now();
    let wait = Duration::from_millis(300);
    let line = match a.pos[1].as_str() {
        "truncated" => {
            let msgs: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
            dns_udp_batch(server, &msgs, wait)?
        }
        "lying-counts" => {
            let mut msgs = Vec::new();
            for counts in [
                [0, 0, 0, 0],
                [2, 0, 0, 0],
                [65535, 0, 0, 0],
                [1, 1, 0, 0],
                [1, 0, 5, 0],
                [1, 0, 0, 65535],
                [1, 65535, 65535, 65535],
            ] {
                msgs.push(dns_raw(0x1000, 0x0100, counts, &question));
            }
            dns_udp_batch(server, &msgs, wait)?
        }
        "compression-loop" => {
            let mut msgs = Vec::new();
            for name in [
                &[0xC0u8, 12][..],
                &[1, b'a', 0xC0, 12],
                &[0xC0, 14, 0xC0, 12],
                &[0xC0, 0xFF],
                &[0xFF, 0xFF],
                &[0x40, b'a', 0],
            ] {
                let mut rest = name.to_vec();
                rest.extend_from_slice(&[0, 1, 0, 1]);
                msgs.push(dns_raw(0x2000, 0x0100, [1, 0, 0, 0], &rest));
            }
            // A record (in the additional section) with a pointer loop.
            let mut rest = question.clone();
            rest.extend_from_slice(&[0xC0, 24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
            msgs.push(dns_raw(0x2001, 0x0100, [1, 0, 0, 1], &rest));
            dns_udp_batch(server, &msgs, wait)?
        }
        "qr1" => {
            let mut resp = good.clone();
            resp[2] |= 0x80;
            let msgs = vec![resp.clone(), resp.clone(), resp];
            dns_udp_batch(server, &msgs, wait)?
        }
        "tcp-64k-eof" => {
            let mut s = connect_tcp(server, a.timeout)?;
            let _ = s.write_all(&[0xff, 0xff, 0x12, 0x34, 0x01]);
            let _ = s.shutdown(Shutdown::Write);
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got);
            let result = match r {
                Ok(_) => "closed",
                Err(e) if is_timeout(&e) => "timeout",
                Err(_) => "reset",
            };
            format!(
                "result={result} bytes={} ms={:.3}",
                got.len(),
                t0.elapsed().as_secs_f64() * 1e3
            )
        }
        "tcp-cut-rst" => {
            let n = n_arg(1000)?;
            let half = dns_frame(&good);
            let half = &half[..half.len() / 2];
            let mut errors = 0;
            for _ in 0..n {
                let s = match connect_tcp(server, a.timeout) {
                    Ok(s) => s,
                    Err(_) => {
                        errors += 1;
                        continue;
                    }
                };
                let _ = (&s).write_all(half);
                // Close with RST.
                let _ = SockRef::from(&s).set_linger(Some(Duration::ZERO));
                drop(s);
            }
            format!(
                "done={n} errors={errors} ms={:.3}",
                t0.elapsed().as_secs_f64() * 1e3
            )
        }
        "tcp-idle" => {
            let n = n_arg(1000)?;
            let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
            for _ in 0..n {
                match connect_tcp(server, a.timeout) {
                    Ok(s) => {
                        let _ = s.set_nonblocking(true);
                        conns.push(s);
                    }
                    Err(_) => break,
                }
            }
            emit(&format!("open={}", conns.len()));
            let mut live = vec![true; conns.len()];
            let mut closed = 0usize;
            let deadline = t0 + a.timeout;
            let mut buf = [0u8; 512];
            while closed < conns.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let idx: Vec<usize> = (0..conns.len()).filter(|&i| live[i]).collect();
                let ready: Vec<bool> = {
                    let mut fds: Vec<PollFd> = idx
                        .iter()
                        .map(|&i| PollFd::new(conns[i].as_fd(), PollFlags::POLLIN))
                        .collect();
                    poll_for(&mut fds, left)?;
                    fds.iter().map(|f| f.any().unwrap_or(true)).collect()
                };
                for (k, &i) in idx.iter().enumerate() {
                    if ready[k] {
                        match (&conns[i]).read(&mut buf) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Ok(n) if n > 0 => {}
                            _ => {
                                live[i] = false;
                                closed += 1;
                            }
                        }
                    }
                }
            }
            format!("closed={closed} ms={:.3}", t0.elapsed().as_secs_f64() * 1e3)
        }
        other => return Err(usage(format!("unknown dns-abuse mode {other:?}: {SYNTAX}"))),
    };
    emit(&line);
    Ok(0)
}

// ---------------------------------------------------------------- main

fn run(argv: &[String]) -> Res<i32> {
    let Some(cmd) = argv.first() else {
        return Err(usage("no command"));
    };
    let rest = &argv[1..];
    raise_nofile();
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(0)
        }
        "serve-tcp" => serve_tcp(&Args::parse(rest, &["--count"], &[])?),
        "tcp" => tcp_client(&Args::parse(rest, &[], &[])?),
        "connect" => connect_cmd(&Args::parse(rest, &["--expect"], &[])?),
        "serve-udp" => serve_udp(&Args::parse(rest, &["--count"], &[])?),
        "udp" => udp_client(&Args::parse(
            rest,
            &["--count", "--size"],
            &["--expect-unreachable"],
        )?),
        "hold" => hold_client(&Args::parse(rest, &[], &["--stdin"])?),
        "crr" => crr(&Args::parse(rest, &[], &[])?),
        "inject" => inject(&Args::parse(rest, &["--rounds", "--dst-mac"], &[])?),
        "spoof" => spoof(&Args::parse(
            rest,
            &[
                "--dst-mac",
                "--src-mac",
                "--final",
                "--sport",
                "--dport",
                "--count",
            ],
            &["--rst"],
        )?),
        "sniff" => sniff(&Args::parse(rest, &[], &[])?),
        "api" => api(&Args::parse(
            rest,
            &["--trickle", "--repeat"],
            &["--no-shutdown"],
        )?),
        "serve-dns" => serve_dns(&Args::parse(
            rest,
            &["--count", "--tag"],
            &["--silent", "--stdin"],
        )?),
        "dig" => dig(&Args::parse(
            rest,
            &["--count", "--rate", "--edns"],
            &["--tcp"],
        )?),
        "dns-abuse" => dns_abuse(&Args::parse(rest, &[], &[])?),
        other => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(&argv) {
        Ok(code) => std::process::exit(code),
        Err(f) => die(&f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        Stream::new(seed).fill(&mut v);
        v
    }

    #[test]
    fn stream_is_chunking_independent() {
        let whole = stream(7, 10_000);
        for step in [1usize, 3, 7, 8, 9, 4095] {
            let mut st = Stream::new(7);
            let mut got = Vec::new();
            while got.len() < whole.len() {
                let mut c = vec![0; step.min(whole.len() - got.len())];
                st.fill(&mut c);
                got.extend_from_slice(&c);
            }
            assert_eq!(got, whole, "step {step}");
        }
        let mut w = Stream::new(7);
        assert_eq!(&whole[..8], &w.next_word().to_le_bytes());
        assert_ne!(stream(7, 64), stream(8, 64));
        assert_ne!(stream(0, 64), vec![0; 64]);
    }

    #[test]
    fn verifier() {
        let data = stream(3, 100_000);
        let feed = |d: &[u8], want: u64, step: usize| {
            let mut v = Verifier::new(want, 3);
            d.chunks(step).for_each(|c| v.feed(c));
            (v.bad(), v.total, v.digest.finish())
        };
        let (bad, total, dg) = feed(&data, 100_000, 4097);
        assert_eq!((bad, total), (None, 100_000));
        assert_eq!(feed(&data, 100_000, 1).2, dg);
        assert_eq!(feed(&data[..500], 100_000, 64).0, Some(500));
        assert_eq!(feed(&data, 99_999, 1000).0, Some(99_999));
        let mut bent = data.clone();
        bent[77_777] ^= 1;
        assert_eq!(feed(&bent, 100_000, 1000).0, Some(77_777));
        assert_eq!(feed(&stream(4, 1000), 1000, 1000).0, Some(0));
        assert_eq!(feed(&[], 0, 1).0, None);
    }

    #[test]
    fn digest_properties() {
        let data = stream(1, 1000);
        let mut a = Digest::new();
        a.update(&data);
        let mut b = Digest::new();
        for c in data.chunks(3) {
            b.update(c);
        }
        assert_eq!(a.finish(), b.finish());
        let (mut z1, mut z2) = (Digest::new(), Digest::new());
        z1.update(&[0; 5]);
        z2.update(&[0; 6]);
        assert_ne!(z1.finish(), z2.finish());
        assert_ne!(Digest::new().finish(), z1.finish());
    }

    #[test]
    fn modes_and_addresses() {
        let m = parse_mode("sink:1073741824:7", true).unwrap();
        assert_eq!(
            m,
            Mode {
                kind: Kind::Sink,
                bytes: 1 << 30,
                seed: 7
            }
        );
        assert_eq!(parse_mode("send:1g:7", false).unwrap().bytes, 1 << 30);
        assert_eq!(parse_mode("recv:64k:0", false).unwrap().bytes, 65536);
        assert_eq!(parse_mode("echo", true).unwrap().kind, Kind::Echo);
        assert_eq!(parse_mode("echo:10:1", false).unwrap().kind, Kind::Echo);
        assert_eq!(
            parse_mode("halfclose-b:1m:5", true).unwrap(),
            Mode {
                kind: Kind::HalfB,
                bytes: 1 << 20,
                seed: 5
            }
        );
        for bad in [
            "sink",
            "sink:1",
            "sink:x:1",
            "echo:1:2",
            "echo",
            "send:1:2:3",
            "hold:1:1",
            "bogus:1:1",
        ] {
            let server = !matches!(bad, "echo" | "send:1:2:3");
            assert!(parse_mode(bad, server).is_err(), "{bad}");
        }
        assert!(parse_mode("send:1:1", true).is_err());
        assert!(parse_mode("sink:1:1", false).is_err());
        assert_eq!(parse_addr("127.0.0.1:80").unwrap().port(), 80);
        assert!(parse_addr("[fd00::2]:9").unwrap().is_ipv6());
        assert!(parse_addr("fd00::2:9").is_err());
        assert!(parse_addr("localhost:9").is_err());
        assert_eq!(
            canon("[::ffff:10.0.2.2]:5".parse().unwrap()).to_string(),
            "10.0.2.2:5"
        );
    }

    #[test]
    fn args() {
        let v = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let a = Args::parse(
            &v("x --count 5 y --timeout=2.5 --stdin"),
            &["--count"],
            &["--stdin"],
        )
        .unwrap();
        assert_eq!(a.pos, ["x", "y"]);
        assert_eq!(a.num::<u64>("--count", 1).unwrap(), 5);
        assert_eq!(a.num::<u64>("--size", 9).unwrap(), 9);
        assert!(a.flag("--stdin"));
        assert_eq!(a.timeout, Duration::from_millis(2500));
        assert_eq!(
            Args::parse(&v("--count"), &["--count"], &[])
                .unwrap_err()
                .code(),
            2
        );
        assert!(Args::parse(&v("--bogus"), &[], &[]).is_err());
        assert!(Args::parse(&v("--timeout 0"), &[], &[]).is_err());
        assert!(
            Args::parse(&v("--count x"), &["--count"], &[])
                .unwrap()
                .num::<u64>("--count", 0)
                .is_err()
        );
        assert_eq!(run(&v("nope")).unwrap_err().code(), 2);
    }

    #[test]
    fn dns_zone() {
        use hickory_proto::rr::RecordType as T;
        let ask = |name: &str, t, edns, udp| {
            let q = dns::query(name, t, 7, edns).unwrap();
            dns::summary(&dns::answer(&q, Some("tagged"), udp).unwrap())
        };
        assert_eq!(
            ask("a.test", T::A, None, true),
            "rcode=NOERROR answers=1 tc=0 data=198.18.0.10"
        );
        assert_eq!(
            ask("AAAA.test.", T::AAAA, None, true),
            "rcode=NOERROR answers=1 tc=0 data=2001:db8::10"
        );
        assert_eq!(
            ask("txt.test", T::TXT, None, true),
            "rcode=NOERROR answers=1 tc=0 data=hello"
        );
        assert_eq!(
            ask("srv.test", T::SRV, None, true),
            "rcode=NOERROR answers=1 tc=0 data=10 5 5060 sip.test."
        );
        assert_eq!(
            ask("mx.test", T::MX, None, true),
            "rcode=NOERROR answers=1 tc=0 data=10 mail.test."
        );
        assert_eq!(
            ask("tag.test", T::TXT, None, true),
            "rcode=NOERROR answers=1 tc=0 data=tagged"
        );
        assert_eq!(
            ask("a.test", T::MX, None, true),
            "rcode=NOERROR answers=0 tc=0 data="
        );
        assert_eq!(
            ask("nope.test", T::A, None, true),
            "rcode=NXDOMAIN answers=0 tc=0 data="
        );
        assert_eq!(
            ask("big.test", T::TXT, None, true),
            "rcode=NOERROR answers=0 tc=1 data="
        );
        assert_eq!(
            ask("big.test", T::TXT, Some(1232), true),
            "rcode=NOERROR answers=0 tc=1 data="
        );
        assert!(
            ask("big.test", T::TXT, Some(4096), true)
                .starts_with("rcode=NOERROR answers=1 tc=0 data=00xxx")
        );
        let full = dns::answer(
            &dns::query("big.test", T::TXT, 7, None).unwrap(),
            None,
            false,
        )
        .unwrap();
        assert!(full.len() > 2000, "{}", full.len());
        assert!(dns::answer(b"junk", None, true).is_none());
        assert_eq!(dns::parse_type("srv"), Some(T::SRV));
        assert_eq!(dns::parse_type("65535"), Some(T::Unknown(65535)));
        assert_eq!(percentile(&[1, 2, 3, 4, 100], 0.5), 3);
        assert_eq!(percentile(&[], 0.99), 0);
    }

    #[test]
    fn inject_templates_have_valid_checksums() {
        let inj = Inj {
            dst: [0x52, 0x55, 10, 0, 2, 2],
            src: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
        };
        for f in templates(&inj) {
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0800 => {
                    assert_eq!(fold(sum16(&f[ETH..V4L4])), 0);
                    assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, f.len() - ETH);
                    let len = (f.len() - V4L4) as u64;
                    let pseudo = if f[ETH + 9] == 1 {
                        0
                    } else {
                        sum16(&f[26..34]) + f[ETH + 9] as u64 + len
                    };
                    assert_eq!(fold(sum16(&f[V4L4..]) + pseudo), 0);
                }
                0x86dd => {
                    let len = (f.len() - V6L4) as u64;
                    assert_eq!(
                        fold(sum16(&f[V6L4..]) + sum16(&f[22..54]) + f[20] as u64 + len),
                        0
                    );
                }
                et => assert_eq!(et, 0x0806),
            }
        }
        let frames = build_frames(&inj);
        assert!(frames.len() > 500, "{}", frames.len());
        assert!(frames.iter().any(|f| f.len() > 65535));
    }
}
