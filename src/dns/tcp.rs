//! TCP clients (RFC 7766): the engine terminates the TCP connection and
//! relays its bytes over a unix stream; the stub reads 2-byte length
//! prefixed queries from it and writes length-prefixed answers back.
//!
//! - Pipelined queries are answered, in the order their answers arrive, up
//!   to [`super::MAX_TCP_INFLIGHT`] forwarded at once; further ones wait in
//!   the socket.
//! - Buffers grow with the bytes that arrived, never ahead of them: a 64 KiB
//!   length prefix costs nothing until the bytes come. A prefix over
//!   [`super::message::MAX_QUERY`] or under a header's 12 bytes closes the
//!   connection (no question could be echoed yet), as does a message that is
//!   not a query (QR=1, a short one).
//! - EOF from the client: the answers in flight are still written, then the
//!   connection closes. Any read or write error: closed at once. Every read
//!   either moves bytes or ends the connection, so a reset never spins.
//! - Idle: closed [`super::TCP_IDLE_US`] after the last complete query or
//!   answer when nothing is in flight.
//! - Cap: [`super::MAX_TCP_CLIENTS`]; see there.

use std::io::{self, Read, Write};

use mio::Interest;

use super::message::{self, Action, MAX_QUERY, Transport};
use super::records::NetworkId;
use super::{DnsIo, DnsStub, MAX_TCP_CLIENTS, MAX_TCP_INFLIGHT, Slot, TCP_IDLE_US, Timer};

/// Bytes read from a client at once.
const READ_CHUNK: usize = 4096;
/// Answers waiting to be written beyond this: no further queries are taken
/// from the client until they are.
const OUT_SOFT_CAP: usize = 64 * 1024;
/// Rounds of flush/answer/read per event before yielding to the loop.
const ROUNDS: usize = 16;

pub(super) struct TcpClient {
    pub serial: u32,
    stream: mio::net::UnixStream,
    network: Option<NetworkId>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    inflight: u8,
    eof: bool,
    last_active: i64,
    /// The deadline the client's timer is armed for.
    pub timer_at: i64,
}

/// What the front of a client's input holds.
enum Frame {
    Incomplete,
    /// A whole message of this length after the prefix.
    Complete(usize),
    /// A length no query can have.
    Bad,
}

impl TcpClient {
    fn frame(&self) -> Frame {
        match message::length_prefix(&self.inbuf) {
            None => Frame::Incomplete,
            Some(len) if !(message::HEADER_LEN..=MAX_QUERY).contains(&len) => Frame::Bad,
            Some(len) if self.inbuf.len() >= 2 + len => Frame::Complete(len),
            Some(_) => Frame::Incomplete,
        }
    }

    fn unsent(&self) -> usize {
        self.out.len().saturating_sub(self.out_pos)
    }

    fn queue(&mut self, reply: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        // MAX_MESSAGE is u16::MAX: the length prefix's limit.
        let len = u16::try_from(reply.len()).unwrap_or(u16::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out
            .extend_from_slice(reply.get(..usize::from(len)).unwrap_or_default());
    }

    /// Reads one chunk. Ok(true) if anything happened (bytes, EOF, an
    /// interrupted read worth retrying); Err on a read error.
    fn read_more(&mut self) -> Result<bool, ()> {
        let mut chunk = [0u8; READ_CHUNK];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(true)
            }
            Ok(n) => {
                self.inbuf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(_) => Err(()),
        }
    }

    /// Writes what it can. Ok(true) if bytes moved.
    fn flush(&mut self) -> Result<bool, ()> {
        let mut moved = false;
        while let Some(rest) = self.out.get(self.out_pos..).filter(|r| !r.is_empty()) {
            match self.stream.write(rest) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.out_pos += n;
                    moved = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > OUT_SOFT_CAP {
                self.out.shrink_to(1024);
            }
        }
        Ok(moved)
    }
}

/// What a client's query led to.
enum Outcome {
    Reply(Vec<u8>),
    Forwarded,
    Close,
}

impl DnsStub {
    pub(super) fn add_client(
        &mut self,
        mut stream: mio::net::UnixStream,
        network: Option<NetworkId>,
        io: &mut DnsIo<'_>,
    ) {
        let now = io.now_us;
        if self.clients >= MAX_TCP_CLIENTS {
            // Make room by closing the client idle longest, if any is idle.
            let oldest = self
                .slots
                .iter()
                .filter_map(|(i, s)| match s {
                    Slot::Client(c) if c.inflight == 0 => Some((c.last_active, c.serial, i)),
                    _ => None,
                })
                .min();
            match oldest {
                Some((_, _, idx)) => {
                    self.stats.tcp_closed_idle += 1;
                    self.close_client(idx, io);
                }
                None => {
                    crate::limited!(
                        Debug,
                        "DNS: {MAX_TCP_CLIENTS} TCP clients busy: closing a new one"
                    );
                    return;
                }
            }
        }
        let serial = self.new_serial();
        let entry = self.slots.vacant_entry();
        let idx = entry.key();
        if let Err(e) = io.registry.register(
            &mut stream,
            (io.token)(idx),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            crate::limited!(Warn, "DNS: cannot register a TCP client: {e}");
            return;
        }
        let timer_at = now.saturating_add(TCP_IDLE_US);
        entry.insert(Slot::Client(TcpClient {
            serial,
            stream,
            network,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            inflight: 0,
            eof: false,
            last_active: now,
            timer_at,
        }));
        self.clients += 1;
        self.arm(timer_at, Timer::Slot { idx, serial });
        self.service_client(idx, io);
    }

    pub(super) fn close_client(&mut self, idx: usize, io: &mut DnsIo<'_>) {
        if !matches!(self.slots.get(idx), Some(Slot::Client(_))) {
            return;
        }
        if let Slot::Client(mut c) = self.slots.remove(idx) {
            let _ = io.registry.deregister(&mut c.stream);
            self.clients = self.clients.saturating_sub(1);
            self.cancel_up_tcp((idx, c.serial), io);
        }
    }

    /// Flushes answers, answers complete queries, reads more; until nothing
    /// moves (or [`ROUNDS`], then the loop is asked to report the client
    /// again).
    pub(super) fn service_client(&mut self, idx: usize, io: &mut DnsIo<'_>) {
        for _ in 0..ROUNDS {
            let mut progress = false;
            let Some(Slot::Client(c)) = self.slots.get_mut(idx) else {
                return;
            };
            match c.flush() {
                Ok(moved) => progress |= moved,
                Err(()) => return self.close_client(idx, io),
            }
            match self.take_queries(idx, io) {
                Some(took) => progress |= took,
                None => return,
            }
            let Some(Slot::Client(c)) = self.slots.get_mut(idx) else {
                return;
            };
            if c.unsent() > 0 {
                match c.flush() {
                    Ok(moved) => progress |= moved,
                    Err(()) => return self.close_client(idx, io),
                }
            }
            // More input, when it can be used.
            if !c.eof && matches!(c.frame(), Frame::Incomplete) {
                match c.read_more() {
                    Ok(moved) => progress |= moved,
                    Err(()) => return self.close_client(idx, io),
                }
            }
            if c.eof
                && c.inflight == 0
                && c.unsent() == 0
                && !matches!(c.frame(), Frame::Complete(_))
            {
                return self.close_client(idx, io);
            }
            if !progress {
                return;
            }
        }
        if let Some(Slot::Client(c)) = self.slots.get_mut(idx) {
            let _ = io.registry.reregister(
                &mut c.stream,
                (io.token)(idx),
                Interest::READABLE | Interest::WRITABLE,
            );
        }
    }

    /// Answers or forwards the complete queries at the front of client
    /// `idx`'s input, while it may have more in flight. `Some(true)` if one
    /// was taken; `None` when the client is gone (closed here if it had to
    /// be).
    fn take_queries(&mut self, idx: usize, io: &mut DnsIo<'_>) -> Option<bool> {
        let mut took = false;
        loop {
            let Some(Slot::Client(c)) = self.slots.get_mut(idx) else {
                return None;
            };
            if c.inflight >= MAX_TCP_INFLIGHT || c.unsent() > OUT_SOFT_CAP {
                return Some(took);
            }
            let len = match c.frame() {
                Frame::Incomplete => return Some(took),
                Frame::Bad => {
                    crate::limited!(Debug, "DNS: TCP client sent a bad length: closing");
                    self.close_client(idx, io);
                    return None;
                }
                Frame::Complete(len) => len,
            };
            let msg: Vec<u8> = c.inbuf.drain(..2 + len).skip(2).collect();
            c.last_active = io.now_us;
            let (serial, net) = (c.serial, c.network);
            took = true;
            match self.tcp_message(idx, serial, net, &msg, io) {
                Outcome::Reply(bytes) => {
                    if let Some(Slot::Client(c)) = self.slots.get_mut(idx) {
                        c.queue(&bytes);
                    }
                }
                Outcome::Forwarded => {
                    if let Some(Slot::Client(c)) = self.slots.get_mut(idx) {
                        c.inflight += 1;
                    }
                }
                Outcome::Close => {
                    self.close_client(idx, io);
                    return None;
                }
            }
        }
    }

    fn tcp_message(
        &mut self,
        idx: usize,
        serial: u32,
        net: Option<NetworkId>,
        msg: &[u8],
        io: &mut DnsIo<'_>,
    ) -> Outcome {
        self.stats.tcp_queries += 1;
        self.refresh_upstreams(io);
        match message::classify(msg, &self.records, net, Transport::Tcp) {
            Action::Answer(b) => {
                self.stats.local += 1;
                Outcome::Reply(b)
            }
            Action::Reject(b) => {
                self.stats.rejected += 1;
                crate::limited!(Debug, "DNS: rejected a malformed or refused TCP query");
                Outcome::Reply(b)
            }
            Action::Drop => {
                self.stats.dropped += 1;
                crate::limited!(Debug, "DNS: TCP client sent a non-query: closing");
                Outcome::Close
            }
            Action::Forward(pq) if !self.forward => {
                self.stats.rejected += 1;
                Outcome::Reply(message::refused(msg, &pq))
            }
            Action::Forward(pq) => match self.start_up_tcp((idx, serial), msg, pq, io) {
                Ok(()) => Outcome::Forwarded,
                Err(b) => Outcome::Reply(b),
            },
        }
    }

    /// An upstream's answer (or SERVFAIL) for TCP client `client`.
    pub(super) fn deliver_tcp(&mut self, client: (usize, u32), bytes: Vec<u8>, io: &mut DnsIo<'_>) {
        let (idx, serial) = client;
        match self.slots.get_mut(idx) {
            Some(Slot::Client(c)) if c.serial == serial => {
                c.queue(&bytes);
                c.inflight = c.inflight.saturating_sub(1);
                c.last_active = io.now_us;
            }
            _ => return,
        }
        self.service_client(idx, io);
    }

    /// The idle timer of client `idx` fired.
    pub(super) fn client_timer(&mut self, idx: usize, io: &mut DnsIo<'_>) {
        let now = io.now_us;
        let Some(Slot::Client(c)) = self.slots.get_mut(idx) else {
            return;
        };
        let idle_until = c.last_active.saturating_add(TCP_IDLE_US);
        if c.inflight == 0 && now >= idle_until {
            self.stats.tcp_closed_idle += 1;
            crate::limited!(Debug, "DNS: closing an idle TCP client");
            return self.close_client(idx, io);
        }
        let at = if c.inflight > 0 {
            now.saturating_add(TCP_IDLE_US)
        } else {
            idle_until
        };
        c.timer_at = at;
        let serial = c.serial;
        self.arm(at, Timer::Slot { idx, serial });
    }
}
