//! One flow table for every protocol: a slab whose index is also the flow's
//! epoll token, a hash index by key, and each port's (namespace's) share of
//! the table. TCP, UDP and ICMP keep their flows here, so lookup, quota and
//! teardown are written once.

use std::collections::HashMap;
use std::hash::Hash;

use mio::Registry;
use mio::event::Source;
use slab::Slab;

/// What a table needs to know about a flow.
pub trait Flow {
    type Key: Copy + Eq + Hash;
    fn key(&self) -> Self::Key;
    /// The namespace TAP ("port") the flow lives on.
    fn port(&self) -> usize;
    /// The host socket, deregistered when the table drops the flow.
    fn source(&mut self) -> &mut dyn Source;
}

/// Flows per port (namespace). With several namespaces (a named network) no
/// one of them may hold more than half of a table, so a member that opens
/// flows without end cannot starve the others.
#[derive(Debug, Default)]
pub(crate) struct PortCount(HashMap<usize, usize>);

impl PortCount {
    /// `port` has its share of a table of `max` when `ports` share it.
    pub(crate) fn full(&self, port: usize, max: usize, ports: usize) -> bool {
        let cap = if ports > 1 { max / 2 } else { max };
        self.0.get(&port).is_some_and(|&n| n >= cap)
    }

    pub(crate) fn add(&mut self, port: usize) {
        *self.0.entry(port).or_default() += 1;
    }

    pub(crate) fn sub(&mut self, port: usize) {
        if let Some(n) = self.0.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&port);
            }
        }
    }
}

pub struct FlowTable<F: Flow> {
    flows: Slab<F>,
    index: HashMap<F::Key, usize>,
    per_port: PortCount,
    max: usize,
}

impl<F: Flow> FlowTable<F> {
    /// A table of at most `max` flows.
    pub fn new(max: usize) -> Self {
        FlowTable {
            flows: Slab::new(),
            index: HashMap::new(),
            per_port: PortCount::default(),
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The table holds its maximum.
    pub fn at_max(&self) -> bool {
        self.flows.len() >= self.max
    }

    /// No room for another flow of `port` when `ports` share the table.
    pub fn full(&self, port: usize, ports: usize) -> bool {
        self.at_max() || self.per_port.full(port, self.max, ports)
    }

    pub fn find(&self, key: &F::Key) -> Option<usize> {
        self.index.get(key).copied()
    }

    pub fn contains(&self, key: &F::Key) -> bool {
        self.index.contains_key(key)
    }

    pub fn get(&self, idx: usize) -> Option<&F> {
        self.flows.get(idx)
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut F> {
        self.flows.get_mut(idx)
    }

    /// The index the next [`Self::insert`] will use (register the host
    /// socket with its token first).
    pub fn next_index(&self) -> usize {
        self.flows.vacant_key()
    }

    /// Add a flow; returns its index (the one [`Self::next_index`] said).
    pub fn insert(&mut self, flow: F) -> usize {
        let (key, port) = (flow.key(), flow.port());
        let idx = self.flows.insert(flow);
        self.per_port.add(port);
        self.index.insert(key, idx);
        idx
    }

    /// Take flow `idx` out (its slot, its key, its share of the port's
    /// quota); the caller deregisters and closes what it holds.
    pub fn take(&mut self, idx: usize) -> Option<F> {
        let flow = self.flows.try_remove(idx)?;
        self.per_port.sub(flow.port());
        self.index.remove(&flow.key());
        Some(flow)
    }

    /// Forget flow `idx` and deregister its socket (which closes on drop).
    pub fn remove(&mut self, idx: usize, registry: &Registry) {
        if let Some(mut flow) = self.take(idx) {
            let _ = registry.deregister(flow.source());
        }
    }

    /// The flows of `port`.
    pub fn of_port(&self, port: usize) -> Vec<usize> {
        self.flows
            .iter()
            .filter(|(_, f)| f.port() == port)
            .map(|(i, _)| i)
            .collect()
    }

    /// Close every flow of a port (its namespace is gone).
    pub fn drop_port(&mut self, port: usize, registry: &Registry) {
        for idx in self.of_port(port) {
            self.remove(idx, registry);
        }
    }

    /// Every flow.
    pub fn iter(&self) -> impl Iterator<Item = &F> {
        self.flows.iter().map(|(_, f)| f)
    }

    /// Every flow.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut F> {
        self.flows.iter_mut().map(|(_, f)| f)
    }

    /// After a burst, give the memory back.
    pub fn shrink_to_fit(&mut self) {
        self.flows.shrink_to_fit();
        self.index.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::net::UdpSocket;
    use mio::{Interest, Poll, Token};

    #[test]
    fn port_shares() {
        let mut c = PortCount::default();
        for _ in 0..4 {
            c.add(1);
        }
        // Alone, a namespace may fill the table; with others, half of it.
        assert!(!c.full(1, 8, 1));
        assert!(c.full(1, 8, 2));
        assert!(!c.full(2, 8, 2));
        c.sub(1);
        assert!(!c.full(1, 8, 3));
        for _ in 0..3 {
            c.sub(1);
        }
        assert!(c.0.is_empty());
    }

    struct Test {
        key: u32,
        port: usize,
        sock: UdpSocket,
    }

    impl Flow for Test {
        type Key = u32;
        fn key(&self) -> u32 {
            self.key
        }
        fn port(&self) -> usize {
            self.port
        }
        fn source(&mut self) -> &mut dyn Source {
            &mut self.sock
        }
    }

    fn flow(poll: &Poll, table: &FlowTable<Test>, key: u32, port: usize) -> Test {
        let mut sock = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry()
            .register(&mut sock, Token(table.next_index()), Interest::READABLE)
            .unwrap();
        Test { key, port, sock }
    }

    #[test]
    fn quota_index_and_teardown() {
        let poll = Poll::new().unwrap();
        let mut t = FlowTable::new(4);
        for (key, port) in [(10, 1), (11, 1), (20, 2)] {
            let f = flow(&poll, &t, key, port);
            let want = t.next_index();
            assert_eq!(t.insert(f), want);
        }
        assert_eq!(t.len(), 3);
        // Port 1 holds half of a table of 4 shared by two ports.
        assert!(t.full(1, 2) && !t.full(2, 2) && !t.full(1, 1));
        let idx = t.find(&20).unwrap();
        assert_eq!(t.get(idx).unwrap().port, 2);
        t.drop_port(1, poll.registry());
        assert_eq!(t.len(), 1);
        assert!(!t.contains(&10) && !t.contains(&11) && t.contains(&20));
        assert!(!t.full(1, 2));
        t.remove(idx, poll.registry());
        assert!(t.is_empty() && t.find(&20).is_none());
        // A second removal is a no-op.
        t.remove(idx, poll.registry());
        assert!(t.take(idx).is_none());
    }
}
