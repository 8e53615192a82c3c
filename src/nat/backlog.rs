//! The handshake backlog: outbound TCP flows whose namespace side has not
//! completed the handshake, oldest first, per port (namespace).
//!
//! Each such flow holds a host connection from its SYN on. A SYN flood from
//! the namespace (forged source ports, nobody to answer the SYN-ACKs) would
//! otherwise hold one host fd per SYN until rlnet runs out of them, which
//! starves every other flow, published port and namespace. As a kernel's SYN
//! backlog does, at most [`MAX_HALF_OPEN`] per port are kept; a new SYN
//! beyond that gives up the oldest (the caller closes it silently, as a
//! kernel drops a request sock: a real client's SYN is retransmitted).
//!
//! Pure bookkeeping, no I/O: the caller owns the flows and tells this which
//! of them are still in their handshake.

use std::collections::{HashMap, VecDeque};

/// Half-open flows one namespace may hold. Above any burst a client makes
/// on its own (10,000 parallel connects complete here with a backlog of a
/// few hundred, as SYN-ACKs go out after each batch of frames), far below
/// the fd limit.
pub const MAX_HALF_OPEN: usize = 1024;

/// One port's half-open flows: (flow index, serial) oldest first. Entries
/// of flows that finished their handshake or went away stay until popped
/// or compacted; `live` counts the others.
#[derive(Debug, Default)]
struct Queue {
    fifo: VecDeque<(usize, u64)>,
    live: usize,
}

#[derive(Debug, Default)]
pub struct Backlog {
    ports: HashMap<usize, Queue>,
    /// Serials tell a flow from a later one that reuses its index.
    next: u64,
}

impl Backlog {
    /// Half-open flows of `port`.
    pub fn len(&self, port: usize) -> usize {
        self.ports.get(&port).map_or(0, |q| q.live)
    }

    /// `port` holds its maximum: the next SYN must give up the oldest.
    pub fn full(&self, port: usize) -> bool {
        self.len(port) >= MAX_HALF_OPEN
    }

    /// Record flow `idx` of `port` as half-open; returns the serial the
    /// flow keeps while it is. `is_live(idx, serial)`: that entry's flow is
    /// still half-open (used to drop stale entries now and then).
    pub fn push(&mut self, port: usize, idx: usize, is_live: impl Fn(usize, u64) -> bool) -> u64 {
        let serial = self.next;
        self.next += 1;
        let q = self.ports.entry(port).or_default();
        // Handshakes that completed leave entries behind; keep the queue
        // within a small multiple of what it holds.
        if q.fifo.len() >= 2 * q.live + 64 {
            q.fifo.retain(|&(i, s)| is_live(i, s));
        }
        q.fifo.push_back((idx, serial));
        q.live += 1;
        serial
    }

    /// A flow of `port` left the backlog (handshake done, or removed).
    pub fn done(&mut self, port: usize) {
        if let Some(q) = self.ports.get_mut(&port) {
            q.live = q.live.saturating_sub(1);
            if q.live == 0 {
                self.ports.remove(&port);
            }
        }
    }

    /// The oldest flow of `port` still half-open, taken off the queue (the
    /// caller removes it and calls [`Self::done`]).
    pub fn oldest(&mut self, port: usize, is_live: impl Fn(usize, u64) -> bool) -> Option<usize> {
        let q = self.ports.get_mut(&port)?;
        while let Some((idx, serial)) = q.fifo.pop_front() {
            if is_live(idx, serial) {
                return Some(idx);
            }
        }
        None
    }

    /// Forget a port (its namespace is gone; its flows are removed).
    pub fn drop_port(&mut self, port: usize) {
        self.ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Flows by index: the serial of those still half-open.
    type Live = RefCell<HashMap<usize, u64>>;

    fn push(b: &mut Backlog, live: &Live, port: usize, idx: usize) {
        let s = b.push(port, idx, |i, s| live.borrow().get(&i) == Some(&s));
        live.borrow_mut().insert(idx, s);
    }

    #[test]
    fn the_oldest_still_half_open_goes_first() {
        let (mut b, live) = (Backlog::default(), Live::default());
        for idx in 0..4 {
            push(&mut b, &live, 1, idx);
        }
        push(&mut b, &live, 2, 9);
        assert_eq!((b.len(1), b.len(2)), (4, 1));
        // Flow 0 completes its handshake, flow 1 goes away and its index
        // is reused by a new half-open flow: neither counts as the oldest.
        live.borrow_mut().remove(&0);
        b.done(1);
        live.borrow_mut().remove(&1);
        b.done(1);
        push(&mut b, &live, 1, 1);
        let is_live = |i, s| live.borrow().get(&i) == Some(&s);
        assert_eq!(b.oldest(1, is_live), Some(2));
        assert_eq!(b.oldest(1, is_live), Some(3));
        assert_eq!(b.oldest(1, is_live), Some(1));
        assert_eq!(b.oldest(1, is_live), None);
        // Other ports are untouched.
        assert_eq!(b.oldest(2, is_live), Some(9));
    }

    #[test]
    fn full_at_the_maximum_and_stale_entries_are_compacted() {
        let (mut b, live) = (Backlog::default(), Live::default());
        for idx in 0..MAX_HALF_OPEN {
            assert!(!b.full(7));
            push(&mut b, &live, 7, idx);
        }
        assert!(b.full(7) && !b.full(8));
        // Handshakes complete one after another, forever: the queue does
        // not grow without bound.
        for idx in MAX_HALF_OPEN..MAX_HALF_OPEN * 20 {
            let old = idx - MAX_HALF_OPEN;
            live.borrow_mut().remove(&old);
            b.done(7);
            push(&mut b, &live, 7, idx);
            assert!(b.ports[&7].fifo.len() <= 3 * MAX_HALF_OPEN + 64);
        }
        assert_eq!(b.len(7), MAX_HALF_OPEN);
        b.drop_port(7);
        assert_eq!(b.len(7), 0);
        // `done` on an unknown port is harmless.
        b.done(3);
        assert_eq!(b.len(3), 0);
    }
}
