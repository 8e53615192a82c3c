//! Socket helpers shared by the commands: bounded polls, connects and
//! listens, non-blocking accepts, and sets of held connections.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::fail::{Fail, Res, ioerr, usage};
use crate::stream::{Digest, Stream, Verifier};

/// Copy size of the stream commands.
pub const BUF: usize = 256 * 1024;

/// `--read BYTES`: the buffer size of a stream's reads (and writes), 1 to
/// [`BUF`]; [`BUF`] when not given.
pub fn read_size(a: &crate::args::Args) -> Res<usize> {
    match a.opt("--read") {
        None => Ok(BUF),
        Some(v) => crate::args::parse_size(v)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=BUF).contains(n))
            .ok_or_else(|| usage(format!("--read: {v:?} is not 1 to {BUF} bytes"))),
    }
}

/// An IPv4-mapped IPv6 peer shown as IPv4.
pub fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128);
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// poll(2) until something is ready or `left` passes; Ok(0) on timeout.
pub fn poll_for(fds: &mut [PollFd], left: Duration) -> Res<usize> {
    let deadline = Instant::now() + left;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll(fds, poll_timeout(left)) {
            Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Fail::Io(format!("poll: {e}"))),
        }
    }
}

/// Poll `fds` for reading (at most `left`); which are ready. None when
/// nothing became ready in time.
pub fn poll_readable(fds: &[BorrowedFd<'_>], left: Duration) -> Res<Option<Vec<bool>>> {
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    if poll_for(&mut pfds, left)? == 0 {
        return Ok(None);
    }
    Ok(Some(pfds.iter().map(|f| f.any().unwrap_or(true)).collect()))
}

pub fn wait_fd(fd: BorrowedFd<'_>, flags: PollFlags, left: Duration) -> Res<bool> {
    Ok(poll_for(&mut [PollFd::new(fd, flags)], left)? > 0)
}

pub fn set_nonblocking(fd: impl AsFd) -> Res<()> {
    SockRef::from(&fd)
        .set_nonblocking(true)
        .map_err(|e| ioerr("fcntl", e))
}

pub fn set_timeouts(s: &TcpStream, t: Duration) -> Res<()> {
    s.set_read_timeout(Some(t))
        .and_then(|_| s.set_write_timeout(Some(t)))
        .map_err(|e| ioerr("setsockopt", e))
}

/// A connection to `addr`, from source port `sport` if given.
pub fn connect_tcp(addr: SocketAddr, sport: Option<u16>, t: Duration) -> Res<TcpStream> {
    let fail = |e| ioerr(format!("connect {addr}"), e);
    let s: TcpStream = match sport {
        None => TcpStream::connect_timeout(&addr, t).map_err(fail)?,
        Some(p) => {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .map_err(fail)?;
            bind_source(&s, addr, p).map_err(|e| ioerr(format!("bind source port {p}"), e))?;
            s.connect_timeout(&addr.into(), t).map_err(fail)?;
            s.into()
        }
    };
    set_timeouts(&s, t)?;
    Ok(s)
}

/// Bind `s` to source port `port` of the unspecified address of `to`'s
/// family, beside other sockets on that port (SO_REUSEADDR).
pub fn bind_source(s: &Socket, to: SocketAddr, port: u16) -> io::Result<()> {
    s.set_reuse_address(true)?;
    s.bind(&any_of(to, port).into())
}

/// Port `port` of the unspecified address of `to`'s family.
fn any_of(to: SocketAddr, port: u16) -> SocketAddr {
    if to.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, port).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, port).into()
    }
}

/// A non-blocking TCP socket for `addr`'s family, not yet connected.
pub fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A TCP listener on `addr` (SO_REUSEADDR) with room for `backlog`.
pub fn listen_tcp(addr: SocketAddr, backlog: i32) -> Res<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .and_then(|s| s.set_reuse_address(true).map(|_| s))
        .and_then(|s| s.bind(&addr.into()).map(|_| s))
        .and_then(|s| s.listen(backlog).map(|_| s))
        .map_err(|e| ioerr(format!("listen {addr}"), e))?;
    Ok(s.into())
}

/// A UDP socket on an ephemeral port, connected to `server`.
pub fn udp_connected(server: SocketAddr) -> Res<UdpSocket> {
    UdpSocket::bind(any_of(server, 0))
        .and_then(|s| s.connect(server).map(|_| s))
        .map_err(|e| ioerr(format!("udp {server}"), e))
}

/// Accept from a non-blocking listener until it has nothing more or `max`
/// were taken; each new connection (non-blocking) goes to `take`.
pub fn accept_ready(l: &TcpListener, max: u64, mut take: impl FnMut(TcpStream)) -> Res<u64> {
    let mut n = 0;
    while n < max {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(true).map_err(|e| ioerr("fcntl", e))?;
                take(s);
                n += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED | libc::EINTR)) => {}
            Err(e) => return Err(ioerr("accept", e)),
        }
    }
    Ok(n)
}

/// Read and discard what a readable non-blocking connection has; false
/// once the peer closed it (EOF or an error).
pub fn drain(mut s: impl Read, buf: &mut [u8]) -> bool {
    match s.read(buf) {
        Ok(n) => n > 0,
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    }
}

/// Connections held open until their peers close them, watched in one
/// poll loop; what arrives on them is discarded.
pub struct Held<S> {
    /// None once the peer closed it (and we did too).
    conns: Vec<Option<S>>,
    pub closed: usize,
}

impl<S: AsFd> Held<S>
where
    for<'a> &'a S: Read,
{
    pub fn new(conns: Vec<S>) -> Held<S> {
        Held {
            conns: conns.into_iter().map(Some).collect(),
            closed: 0,
        }
    }

    pub fn push(&mut self, s: S) {
        self.conns.push(Some(s));
    }

    /// Connections taken so far.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.conns.len() - self.closed
    }

    /// One poll (at most `left`) over the open connections and `extra`:
    /// discard what arrived, close those whose peers closed. None if
    /// nothing happened in time, else whether `extra` became readable.
    pub fn poll(&mut self, extra: Option<BorrowedFd<'_>>, left: Duration) -> Res<Option<bool>> {
        let idx: Vec<usize> = (0..self.conns.len())
            .filter(|&i| self.conns[i].is_some())
            .collect();
        let ready = {
            let mut fds: Vec<BorrowedFd<'_>> = idx
                .iter()
                .filter_map(|&i| self.conns[i].as_ref().map(AsFd::as_fd))
                .collect();
            fds.extend(extra);
            match poll_readable(&fds, left)? {
                Some(r) => r,
                None => return Ok(None),
            }
        };
        let mut buf = [0u8; 64 * 1024];
        for (k, &i) in idx.iter().enumerate() {
            if ready[k] && self.conns[i].as_ref().is_some_and(|c| !drain(c, &mut buf)) {
                self.conns[i] = None;
                self.closed += 1;
            }
        }
        Ok(Some(extra.is_some() && ready[idx.len()]))
    }
}

pub fn send_stream(mut w: impl Write, bytes: u64, seed: u64, buf: &mut [u8]) -> Res<Digest> {
    let (mut st, mut d, mut left) = (Stream::new(seed), Digest::new(), bytes);
    while left > 0 {
        let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        st.fill(&mut buf[..n]);
        d.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| ioerr("write", e))?;
        left -= n as u64;
    }
    Ok(d)
}

/// Read until EOF, feeding `f`; returns the byte count.
pub fn read_eof(mut r: impl Read, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> Res<u64> {
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

/// stream(`seed`), `bytes` long, checked to EOF.
pub fn recv_verify(r: impl Read, bytes: u64, seed: u64, buf: &mut [u8]) -> Res<Verifier> {
    let mut v = Verifier::new(bytes, seed);
    read_eof(r, buf, |d| v.feed(d))?;
    Ok(v)
}

pub fn shut_wr(s: &TcpStream) -> Res<()> {
    s.shutdown(Shutdown::Write)
        .map_err(|e| ioerr("shutdown", e))
}

/// Send stream(`seed`), shut down the write side, then verify
/// stream(`seed`+1) to EOF (half-close, the side that sends first).
pub fn send_then_verify(
    s: &TcpStream,
    bytes: u64,
    seed: u64,
    buf: &mut [u8],
) -> Res<(Verifier, Digest)> {
    let d = send_stream(s, bytes, seed, buf)?;
    shut_wr(s)?;
    let v = recv_verify(s, bytes, seed.wrapping_add(1), buf)?;
    Ok((v, d))
}

/// Send stream(`seed`), shut down the write side, and read (discarding) to EOF.
pub fn send_all(s: &TcpStream, bytes: u64, seed: u64, buf: &mut [u8]) -> Res<Digest> {
    let d = send_stream(s, bytes, seed, buf)?;
    shut_wr(s)?;
    read_eof(s, buf, |_| {})?;
    Ok(d)
}

pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
