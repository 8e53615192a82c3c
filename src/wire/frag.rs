//! IP fragments. From the namespace: put back together (IPv4 and IPv6) with
//! the bounds libslirp's reassembly CVEs teach: memory and datagram count
//! per namespace and in total, a timeout, overlapping, inconsistent or
//! oversized fragments drop the whole datagram, nothing past 65,535 bytes,
//! a bounded number of fragments per datagram. Into the namespace: cut a
//! packet rlnet built (UDP, ICMP) to the link MTU.
//!
//! Pure: bytes in, datagram out; time is the caller's (micros, the engine's
//! clock); the caller arms one timer at [`Reassembler::next_deadline`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket};

use super::{IPV4_HDR_LEN, IPV6_HDR_LEN};

/// The IPv6 fragment header's length (RFC 8200 §4.5).
pub const FRAG_HDR_LEN: usize = 8;
/// Largest datagram rebuilt: an IPv4 total length, an IPv6 payload length.
pub const MAX_DATAGRAM: usize = 65535;

/// How much reassembly may hold. Memory is charged as fragment bytes plus a
/// fixed overhead per fragment and per datagram, so a flood of tiny
/// fragments costs what it really costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes held for one namespace (port).
    pub port_bytes: usize,
    /// Datagrams in progress for one namespace.
    pub port_datagrams: usize,
    /// Bytes held in total.
    pub total_bytes: usize,
    /// Datagrams in progress in total.
    pub total_datagrams: usize,
    /// Fragments one datagram may have (a 65,535-byte datagram at a
    /// 576-byte MTU needs 120).
    pub fragments: usize,
    /// An incomplete datagram is dropped this long after its first fragment
    /// (Linux: 30 s for IPv4, 60 s for IPv6).
    pub timeout_us: i64,
}

/// The limits rlnet runs with (documented in rlnet(1), LIMITS).
pub const LIMITS: Limits = Limits {
    port_bytes: 1 << 20,
    port_datagrams: 64,
    total_bytes: 8 << 20,
    total_datagrams: 1024,
    fragments: 256,
    timeout_us: 30_000_000,
};

/// Charged per datagram in progress and per fragment held, beyond its bytes.
pub const DATAGRAM_OVERHEAD: usize = 256;
pub const FRAGMENT_OVERHEAD: usize = 64;

/// What became of a packet handed to the reassembler.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Not a fragment: process it as it is.
    NotFragment,
    /// Held until the rest arrives.
    Held,
    /// The whole datagram, as one IP packet without fragmentation.
    Complete(Vec<u8>),
    /// Refused; with it, the datagram it belonged to (if any) is gone.
    Dropped(Drop),
}

/// Why a fragment (and its datagram) was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Not a well-formed fragment (bad header, checksum, length, or a
    /// non-last fragment whose length is not a multiple of 8).
    Malformed,
    /// It overlaps (or repeats) data already held.
    Overlap,
    /// It reaches past 65,535 bytes, or past the end a last fragment set,
    /// or it is a second, different, last fragment.
    Oversize,
    /// Too many fragments for one datagram.
    TooManyFragments,
    /// The datagram alone would exceed the per-namespace bound.
    Limit,
}

/// Identifies one datagram: the namespace (port) it came from, then RFC
/// 791's (src, dst, protocol, id) or RFC 8200's (src, dst, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    port: usize,
    src: IpAddr,
    dst: IpAddr,
    /// IPv4: the protocol; IPv6: 0 (the next header is the first fragment's).
    proto: u8,
    id: u32,
}

/// A datagram in progress.
struct Datagram {
    /// Creation order; with one timeout for all, also deadline order.
    seq: u64,
    deadline: i64,
    /// The first fragment's IP header (IPv4 with its options; the IPv6
    /// fixed header), once it came.
    head: Option<Box<[u8]>>,
    /// IPv6: the upper-layer protocol, from the first fragment.
    next_header: u8,
    /// (offset, bytes), sorted by offset, never overlapping.
    frags: Vec<(usize, Box<[u8]>)>,
    /// Payload bytes held.
    have: usize,
    /// Payload length, known once the last fragment came.
    end: Option<usize>,
    charged: usize,
}

/// One fragment, parsed.
struct Piece<'a> {
    key: Key,
    offset: usize,
    data: &'a [u8],
    last: bool,
    /// The header to rebuild with, if this is the first fragment.
    head: Option<&'a [u8]>,
    next_header: u8,
}

#[derive(Default)]
struct PortUse {
    bytes: usize,
    /// This port's datagrams, oldest first.
    order: BTreeMap<u64, Key>,
}

/// Datagrams being put back together, for every port of an engine.
pub struct Reassembler {
    limits: Limits,
    datagrams: HashMap<Key, Datagram>,
    /// Every datagram, oldest first (= earliest deadline first).
    order: BTreeMap<u64, Key>,
    ports: HashMap<usize, PortUse>,
    bytes: usize,
    seq: u64,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new(LIMITS)
    }
}

impl Reassembler {
    pub fn new(limits: Limits) -> Reassembler {
        Reassembler {
            limits,
            datagrams: HashMap::new(),
            order: BTreeMap::new(),
            ports: HashMap::new(),
            bytes: 0,
            seq: 0,
        }
    }

    /// Bytes charged now (all ports).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams in progress (all ports).
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Bytes charged to one port.
    pub fn port_bytes(&self, port: usize) -> usize {
        self.ports.get(&port).map_or(0, |p| p.bytes)
    }

    /// When the oldest incomplete datagram expires; None when nothing is
    /// held (no timer, no wake-up).
    pub fn next_deadline(&self) -> Option<i64> {
        let key = self.order.values().next()?;
        self.datagrams.get(key).map(|d| d.deadline)
    }

    /// Drop every datagram whose time is up; returns how many.
    pub fn expire(&mut self, now: i64) -> usize {
        let mut n = 0;
        while let Some((_, key)) = self.order.first_key_value() {
            let key = *key;
            if self.datagrams.get(&key).is_some_and(|d| d.deadline > now) {
                break;
            }
            self.remove(&key);
            n += 1;
        }
        n
    }

    /// Forget a port's datagrams (its namespace left).
    pub fn drop_port(&mut self, port: usize) {
        let keys: Vec<Key> = self
            .ports
            .get(&port)
            .map(|p| p.order.values().copied().collect())
            .unwrap_or_default();
        for k in keys {
            self.remove(&k);
        }
    }

    /// An IPv4 packet from `port`: a fragment is held or completes its
    /// datagram. The header checksum is checked here.
    pub fn ipv4(&mut self, port: usize, pkt: &[u8], now: i64) -> Push {
        match parse_v4(port, pkt) {
            Ok(Some(piece)) => self.insert(piece, now),
            Ok(None) => Push::NotFragment,
            Err(d) => Push::Dropped(d),
        }
    }

    /// An IPv6 packet from `port` whose fixed header's next header is the
    /// fragment header. An atomic fragment (offset 0, no more fragments;
    /// RFC 6946) comes back at once without it and touches no state.
    pub fn ipv6(&mut self, port: usize, pkt: &[u8], now: i64) -> Push {
        match parse_v6(port, pkt) {
            Ok(V6::Piece(piece)) => self.insert(piece, now),
            Ok(V6::Atomic(whole)) => Push::Complete(whole),
            Ok(V6::NotFragment) => Push::NotFragment,
            Err(d) => Push::Dropped(d),
        }
    }

    fn insert(&mut self, p: Piece<'_>, now: i64) -> Push {
        let key = p.key;
        if !self.datagrams.contains_key(&key) {
            self.make_room_for_datagram(key.port);
            self.seq += 1;
            let d = Datagram {
                seq: self.seq,
                deadline: now.saturating_add(self.limits.timeout_us),
                head: None,
                next_header: 0,
                frags: Vec::new(),
                have: 0,
                end: None,
                charged: 0,
            };
            self.order.insert(d.seq, key);
            self.ports
                .entry(key.port)
                .or_default()
                .order
                .insert(d.seq, key);
            self.datagrams.insert(key, d);
            self.charge(&key, DATAGRAM_OVERHEAD);
        }
        if let Err(why) = self.check(&key, &p) {
            self.remove(&key);
            return Push::Dropped(why);
        }
        let cost = p.data.len() + FRAGMENT_OVERHEAD + p.head.map_or(0, <[u8]>::len);
        if !self.make_room(&key, cost) {
            self.remove(&key);
            return Push::Dropped(Drop::Limit);
        }
        let Some(d) = self.datagrams.get_mut(&key) else {
            return Push::Dropped(Drop::Limit);
        };
        let at = d.frags.partition_point(|(o, _)| *o < p.offset);
        d.frags.insert(at, (p.offset, p.data.into()));
        d.have += p.data.len();
        if p.last {
            d.end = Some(p.offset + p.data.len());
        }
        if let Some(h) = p.head {
            d.head = Some(h.into());
            d.next_header = p.next_header;
        }
        self.charge(&key, cost);
        let Some(d) = self.datagrams.get(&key) else {
            return Push::Held;
        };
        if d.end != Some(d.have) {
            return Push::Held;
        }
        let whole = assemble(&key, d);
        self.remove(&key);
        match whole {
            Some(w) => Push::Complete(w),
            None => Push::Dropped(Drop::Oversize),
        }
    }

    /// Would `p` fit datagram `key` as it stands?
    fn check(&self, key: &Key, p: &Piece<'_>) -> Result<(), Drop> {
        let d = self.datagrams.get(key).ok_or(Drop::Limit)?;
        let start = p.offset;
        let stop = start + p.data.len();
        if let Some(end) = d.end {
            // Past the end, or a second last fragment ending elsewhere.
            if stop > end || (p.last && stop != end) {
                return Err(Drop::Oversize);
            }
        }
        if p.last && d.frags.last().is_some_and(|(o, b)| o + b.len() > stop) {
            return Err(Drop::Oversize);
        }
        if d.frags.len() >= self.limits.fragments {
            return Err(Drop::TooManyFragments);
        }
        let at = d.frags.partition_point(|(o, _)| *o < start);
        let prev_overlaps = at
            .checked_sub(1)
            .and_then(|i| d.frags.get(i))
            .is_some_and(|(o, b)| o + b.len() > start);
        let next_overlaps = d.frags.get(at).is_some_and(|(o, _)| *o < stop);
        if prev_overlaps || next_overlaps {
            return Err(Drop::Overlap);
        }
        Ok(())
    }

    /// Make room for a new datagram of `port`: evict that port's oldest
    /// when it is at its count, and the heaviest port's oldest when all
    /// are at theirs.
    fn make_room_for_datagram(&mut self, port: usize) {
        while self
            .ports
            .get(&port)
            .is_some_and(|p| p.order.len() >= self.limits.port_datagrams)
        {
            if !self.evict_oldest_of(port, None) {
                break;
            }
        }
        while self.datagrams.len() >= self.limits.total_datagrams {
            let Some(heavy) = self.heaviest_port(None) else {
                break;
            };
            if !self.evict_oldest_of(heavy, None) {
                break;
            }
        }
    }

    /// Make room to charge `cost` more to datagram `key`, evicting other
    /// datagrams (the port's own first, then the heaviest port's). False if
    /// even then it would not fit.
    fn make_room(&mut self, key: &Key, cost: usize) -> bool {
        let port = key.port;
        while self.port_bytes(port) + cost > self.limits.port_bytes {
            if !self.evict_oldest_of(port, Some(key)) {
                return false;
            }
        }
        while self.bytes + cost > self.limits.total_bytes {
            let Some(heavy) = self.heaviest_port(Some(key)) else {
                return false;
            };
            if !self.evict_oldest_of(heavy, Some(key)) {
                return false;
            }
        }
        true
    }

    /// The port holding the most bytes in datagrams other than `keep`.
    fn heaviest_port(&self, keep: Option<&Key>) -> Option<usize> {
        self.ports
            .iter()
            .filter(|(_, u)| u.order.values().any(|k| Some(k) != keep))
            .max_by_key(|(_, u)| u.bytes)
            .map(|(p, _)| *p)
    }

    /// Evict `port`'s oldest datagram other than `keep`; false if none.
    fn evict_oldest_of(&mut self, port: usize, keep: Option<&Key>) -> bool {
        let victim = self
            .ports
            .get(&port)
            .and_then(|u| u.order.values().find(|k| Some(*k) != keep).copied());
        match victim {
            Some(k) => {
                self.remove(&k);
                true
            }
            None => false,
        }
    }

    fn charge(&mut self, key: &Key, cost: usize) {
        if let Some(d) = self.datagrams.get_mut(key) {
            d.charged += cost;
        }
        if let Some(u) = self.ports.get_mut(&key.port) {
            u.bytes += cost;
        }
        self.bytes += cost;
    }

    fn remove(&mut self, key: &Key) {
        let Some(d) = self.datagrams.remove(key) else {
            return;
        };
        self.order.remove(&d.seq);
        self.bytes = self.bytes.saturating_sub(d.charged);
        if let Some(u) = self.ports.get_mut(&key.port) {
            u.order.remove(&d.seq);
            u.bytes = u.bytes.saturating_sub(d.charged);
            if u.order.is_empty() {
                self.ports.remove(&key.port);
            }
        }
    }
}

/// The datagram as one packet: the first fragment's header, lengths set,
/// no fragmentation left. None past 65,535 bytes.
fn assemble(key: &Key, d: &Datagram) -> Option<Vec<u8>> {
    let head = d.head.as_deref()?;
    let end = d.end?;
    let mut out = Vec::with_capacity(head.len() + end);
    out.extend_from_slice(head);
    for (_, b) in &d.frags {
        out.extend_from_slice(b);
    }
    match key.src {
        IpAddr::V4(_) => {
            let total = u16::try_from(out.len()).ok()?;
            let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
            p.set_total_len(total);
            p.clear_flags();
            p.set_frag_offset(0);
            p.fill_checksum();
        }
        IpAddr::V6(_) => {
            let len = u16::try_from(end).ok()?;
            let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
            p.set_payload_len(len);
            p.set_next_header(IpProtocol::from(d.next_header));
        }
    }
    Some(out)
}

/// An IPv4 fragment, or None if the packet is not one.
fn parse_v4(port: usize, pkt: &[u8]) -> Result<Option<Piece<'_>>, Drop> {
    let p = Ipv4Packet::new_checked(pkt).map_err(|_| Drop::Malformed)?;
    if !p.more_frags() && p.frag_offset() == 0 {
        return Ok(None);
    }
    if p.version() != 4 || !p.verify_checksum() {
        return Err(Drop::Malformed);
    }
    let hl = usize::from(p.header_len());
    let total = usize::from(p.total_len());
    let head = pkt.get(..hl).ok_or(Drop::Malformed)?;
    let data = pkt.get(hl..total).ok_or(Drop::Malformed)?;
    piece(
        Key {
            port,
            src: IpAddr::V4(p.src_addr()),
            dst: IpAddr::V4(p.dst_addr()),
            proto: u8::from(p.next_header()),
            id: u32::from(p.ident()),
        },
        usize::from(p.frag_offset()),
        data,
        !p.more_frags(),
        head,
        0,
    )
    .map(Some)
}

enum V6<'a> {
    NotFragment,
    Atomic(Vec<u8>),
    Piece(Piece<'a>),
}

/// An IPv6 fragment: the fragment header right after the fixed header
/// (rlnet handles no other extension headers).
fn parse_v6(port: usize, pkt: &[u8]) -> Result<V6<'_>, Drop> {
    let p = Ipv6Packet::new_checked(pkt).map_err(|_| Drop::Malformed)?;
    if p.next_header() != IpProtocol::Ipv6Frag {
        return Ok(V6::NotFragment);
    }
    let end = IPV6_HDR_LEN + usize::from(p.payload_len());
    let pkt = pkt.get(..end).ok_or(Drop::Malformed)?;
    let fh = pkt
        .get(IPV6_HDR_LEN..IPV6_HDR_LEN + FRAG_HDR_LEN)
        .ok_or(Drop::Malformed)?;
    let next = fh[0];
    let off_m = u16::from_be_bytes([fh[2], fh[3]]);
    let offset = usize::from(off_m & !7);
    let more = off_m & 1 != 0;
    let id = u32::from_be_bytes([fh[4], fh[5], fh[6], fh[7]]);
    let data = &pkt[IPV6_HDR_LEN + FRAG_HDR_LEN..];
    let head = &pkt[..IPV6_HDR_LEN];
    if offset == 0 && !more {
        // RFC 6946: process as if unfragmented.
        let len = u16::try_from(data.len()).map_err(|_| Drop::Malformed)?;
        let mut whole = Vec::with_capacity(IPV6_HDR_LEN + data.len());
        whole.extend_from_slice(head);
        whole.extend_from_slice(data);
        let mut w = Ipv6Packet::new_unchecked(&mut whole[..]);
        w.set_payload_len(len);
        w.set_next_header(IpProtocol::from(next));
        return Ok(V6::Atomic(whole));
    }
    piece(
        Key {
            port,
            src: IpAddr::V6(p.src_addr()),
            dst: IpAddr::V6(p.dst_addr()),
            proto: 0,
            id,
        },
        offset,
        data,
        !more,
        head,
        next,
    )
    .map(V6::Piece)
}

/// The checks every fragment passes, whatever the family.
fn piece<'a>(
    key: Key,
    offset: usize,
    data: &'a [u8],
    last: bool,
    head: &'a [u8],
    next_header: u8,
) -> Result<Piece<'a>, Drop> {
    // Empty fragments carry nothing; non-last ones must be multiples of 8
    // (RFC 791, RFC 8200), or the next offset could not follow them.
    if data.is_empty() || (!last && !data.len().is_multiple_of(8)) {
        return Err(Drop::Malformed);
    }
    // Nothing may end past 65,535 bytes once the header is in front
    // (IPv4's total length; IPv6's payload length counts no fixed header).
    let front = if key.src.is_ipv4() { head.len() } else { 0 };
    if front + offset + data.len() > MAX_DATAGRAM {
        return Err(Drop::Oversize);
    }
    Ok(Piece {
        key,
        offset,
        data,
        last,
        head: (offset == 0).then_some(head),
        next_header,
    })
}

/// Does this packet rlnet built need cutting for a link of `mtu` bytes?
/// Never TCP: rlnet's TCP segments follow the MSS and go out as GSO.
pub fn needs_fragments(pkt: &[u8], mtu: usize) -> bool {
    if pkt.len() <= mtu {
        return false;
    }
    let proto = match pkt.first().map(|b| b >> 4) {
        Some(4) => pkt.get(9),
        Some(6) => pkt.get(6),
        _ => None,
    };
    proto.is_some_and(|&p| IpProtocol::from(p) != IpProtocol::Tcp)
}

/// Complete a UDP checksum rlnet left to the kernel (fragments cannot
/// carry a partial one). Other protocols are complete already.
pub fn complete_checksum(pkt: &mut [u8]) -> Option<()> {
    let (hl, proto, src, dst) = match pkt.first()? >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(&*pkt).ok()?;
            (
                usize::from(p.header_len()),
                p.next_header(),
                IpAddress::Ipv4(p.src_addr()),
                IpAddress::Ipv4(p.dst_addr()),
            )
        }
        6 => {
            let p = Ipv6Packet::new_checked(&*pkt).ok()?;
            (
                IPV6_HDR_LEN,
                p.next_header(),
                IpAddress::Ipv6(p.src_addr()),
                IpAddress::Ipv6(p.dst_addr()),
            )
        }
        _ => return None,
    };
    if proto == IpProtocol::Udp {
        let mut udp = UdpPacket::new_checked(pkt.get_mut(hl..)?).ok()?;
        udp.fill_checksum(&src, &dst);
    }
    Some(())
}

/// Cut `pkt` (a whole IPv4 or IPv6 packet rlnet built, without IPv4
/// options or IPv6 extension headers, its checksums complete) into
/// fragments of at most `mtu` bytes, handing each to `emit`. `id` is the
/// datagram's identification (IPv4 uses its low 16 bits). Returns the
/// number of fragments, or None if the packet cannot be cut.
pub fn fragment(pkt: &[u8], mtu: usize, id: u32, mut emit: impl FnMut(&[u8])) -> Option<usize> {
    let v6 = match pkt.first()? >> 4 {
        4 => false,
        6 => true,
        _ => return None,
    };
    let (hl, payload) = if v6 {
        let p = Ipv6Packet::new_checked(pkt).ok()?;
        let next = p.next_header();
        if matches!(
            next,
            IpProtocol::HopByHop
                | IpProtocol::Ipv6Route
                | IpProtocol::Ipv6Frag
                | IpProtocol::Ipv6Opts
        ) {
            return None;
        }
        let end = IPV6_HDR_LEN + usize::from(p.payload_len());
        (IPV6_HDR_LEN, pkt.get(IPV6_HDR_LEN..end)?)
    } else {
        let p = Ipv4Packet::new_checked(pkt).ok()?;
        if usize::from(p.header_len()) != IPV4_HDR_LEN {
            return None;
        }
        (
            IPV4_HDR_LEN,
            pkt.get(IPV4_HDR_LEN..usize::from(p.total_len()))?,
        )
    };
    let room = mtu.checked_sub(hl + if v6 { FRAG_HDR_LEN } else { 0 })?;
    let chunk = room / 8 * 8;
    if chunk == 0 {
        return None;
    }
    let mut buf = vec![0u8; mtu];
    let mut n = 0;
    for (i, data) in payload.chunks(chunk).enumerate() {
        let offset = u16::try_from(i * chunk).ok()?;
        let more = (i + 1) * chunk < payload.len();
        let len = if v6 {
            let body = FRAG_HDR_LEN + data.len();
            let out = buf.get_mut(..hl + body)?;
            out[..hl].copy_from_slice(&pkt[..hl]);
            let mut p = Ipv6Packet::new_unchecked(&mut out[..]);
            p.set_payload_len(u16::try_from(body).ok()?);
            p.set_next_header(IpProtocol::Ipv6Frag);
            let fh = &mut out[hl..hl + FRAG_HDR_LEN];
            fh[0] = pkt[6];
            fh[1] = 0;
            fh[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
            fh[4..8].copy_from_slice(&id.to_be_bytes());
            out[hl + FRAG_HDR_LEN..].copy_from_slice(data);
            hl + body
        } else {
            let len = hl + data.len();
            let out = buf.get_mut(..len)?;
            out[..hl].copy_from_slice(&pkt[..hl]);
            out[hl..].copy_from_slice(data);
            let mut p = Ipv4Packet::new_unchecked(&mut out[..]);
            p.set_total_len(u16::try_from(len).ok()?);
            p.set_ident(u16::try_from(id & 0xffff).ok()?);
            p.clear_flags();
            p.set_more_frags(more);
            p.set_frag_offset(offset);
            p.fill_checksum();
            len
        };
        emit(&buf[..len]);
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    use smoltcp::wire::{Ipv4Repr, Ipv6Repr};

    use super::*;
    use crate::wire::{udp_headers, udp_payload_offset};

    const SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
    const DST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
    const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    /// A pattern no two offsets of a short datagram share.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 7 + i / 251) % 256).to_le_bytes()[0])
            .collect()
    }

    /// One IPv4 fragment by hand: `data` at byte `offset`.
    fn v4(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: SRC4,
            dst_addr: DST4,
            next_header: IpProtocol::Udp,
            payload_len: data.len(),
            hop_limit: 64,
        };
        let mut b = vec![0u8; IPV4_HDR_LEN + data.len()];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        repr.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
        p.set_ident(id);
        p.clear_flags();
        p.set_more_frags(more);
        p.set_frag_offset(u16::try_from(offset).unwrap());
        p.fill_checksum();
        b[IPV4_HDR_LEN..].copy_from_slice(data);
        b
    }

    /// One IPv6 fragment by hand.
    fn v6(id: u32, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let repr = Ipv6Repr {
            src_addr: SRC6,
            dst_addr: DST6,
            next_header: IpProtocol::Ipv6Frag,
            payload_len: FRAG_HDR_LEN + data.len(),
            hop_limit: 64,
        };
        let mut b = vec![0u8; IPV6_HDR_LEN + FRAG_HDR_LEN + data.len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        let off = u16::try_from(offset).unwrap() | u16::from(more);
        b[IPV6_HDR_LEN] = u8::from(IpProtocol::Udp);
        b[IPV6_HDR_LEN + 2..IPV6_HDR_LEN + 4].copy_from_slice(&off.to_be_bytes());
        b[IPV6_HDR_LEN + 4..IPV6_HDR_LEN + 8].copy_from_slice(&id.to_be_bytes());
        b[IPV6_HDR_LEN + FRAG_HDR_LEN..].copy_from_slice(data);
        b
    }

    /// A whole UDP datagram with `n` payload bytes, checksum complete.
    fn udp_packet(v6: bool, n: usize) -> Vec<u8> {
        let (src, dst): (SocketAddr, SocketAddr) = if v6 {
            ((SRC6, 4000).into(), (DST6, 53).into())
        } else {
            ((SRC4, 4000).into(), (DST4, 53).into())
        };
        let off = udp_payload_offset(v6);
        let mut b = vec![0u8; off + n];
        b[off..].copy_from_slice(&pattern(n));
        let len = udp_headers(&mut b, src, dst, n).unwrap();
        b.truncate(len);
        complete_checksum(&mut b).unwrap();
        b
    }

    fn cut(pkt: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let n = fragment(pkt, mtu, 0x1234_5678, |f| out.push(f.to_vec())).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn push(r: &mut Reassembler, port: usize, pkt: &[u8], now: i64) -> Push {
        if pkt.first().is_some_and(|b| b >> 4 == 4) {
            r.ipv4(port, pkt, now)
        } else {
            r.ipv6(port, pkt, now)
        }
    }

    /// The rebuilt packet equals the original in what the namespace sent:
    /// addresses, protocol, length and every payload byte (the UDP
    /// checksum still verifies).
    fn same_datagram(got: &[u8], want: &[u8]) {
        assert_eq!(got.len(), want.len());
        let hl = if want[0] >> 4 == 4 {
            let (g, w) = (
                Ipv4Packet::new_checked(got).unwrap(),
                Ipv4Packet::new_checked(want).unwrap(),
            );
            assert!(g.verify_checksum());
            assert!(!g.more_frags() && g.frag_offset() == 0);
            assert_eq!(
                (g.src_addr(), g.dst_addr(), g.next_header(), g.total_len()),
                (w.src_addr(), w.dst_addr(), w.next_header(), w.total_len())
            );
            IPV4_HDR_LEN
        } else {
            assert_eq!(got[..IPV6_HDR_LEN], want[..IPV6_HDR_LEN]);
            IPV6_HDR_LEN
        };
        assert_eq!(got[hl..], want[hl..]);
        let (s, d) = match want[0] >> 4 {
            4 => {
                let p = Ipv4Packet::new_checked(got).unwrap();
                (IpAddress::Ipv4(p.src_addr()), IpAddress::Ipv4(p.dst_addr()))
            }
            _ => {
                let p = Ipv6Packet::new_checked(got).unwrap();
                (IpAddress::Ipv6(p.src_addr()), IpAddress::Ipv6(p.dst_addr()))
            }
        };
        let udp = UdpPacket::new_checked(&got[hl..]).unwrap();
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum(&s, &d));
    }

    #[test]
    fn cut_and_rebuilt_byte_exact_both_families_any_order() {
        for v6 in [false, true] {
            for size in [3000, 60000, wire_max(v6)] {
                let pkt = udp_packet(v6, size);
                let frags = cut(&pkt, 1500);
                assert!(frags.len() > 1);
                for (i, f) in frags.iter().enumerate() {
                    assert!(f.len() <= 1500, "fragment {i} is {} bytes", f.len());
                }
                for order in [false, true] {
                    let mut r = Reassembler::default();
                    let mut list = frags.clone();
                    if order {
                        list.reverse();
                    }
                    let (last, rest) = list.split_last().unwrap();
                    for f in rest {
                        assert_eq!(push(&mut r, 1, f, 0), Push::Held);
                    }
                    let Push::Complete(got) = push(&mut r, 1, last, 0) else {
                        panic!("v6={v6} size={size}: not complete");
                    };
                    same_datagram(&got, &pkt);
                    assert!(r.is_empty() && r.bytes() == 0 && r.next_deadline().is_none());
                }
            }
        }
    }

    fn wire_max(v6: bool) -> usize {
        crate::wire::max_udp_payload(v6)
    }

    #[test]
    fn cutting_follows_the_rules() {
        let pkt = udp_packet(false, 3000);
        let frags = cut(&pkt, 1500);
        assert_eq!(frags.len(), 3);
        for (i, f) in frags.iter().enumerate() {
            let p = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(p.verify_checksum());
            assert!(!p.dont_frag());
            assert_eq!(p.ident(), 0x5678);
            assert_eq!(usize::from(p.frag_offset()), i * 1480);
            assert_eq!(p.more_frags(), i < 2);
        }
        let pkt = udp_packet(true, 3000);
        for (i, f) in cut(&pkt, 1500).iter().enumerate() {
            let p = Ipv6Packet::new_checked(&f[..]).unwrap();
            assert_eq!(p.next_header(), IpProtocol::Ipv6Frag);
            let fh = &f[IPV6_HDR_LEN..IPV6_HDR_LEN + 8];
            assert_eq!(fh[0], u8::from(IpProtocol::Udp));
            assert_eq!(
                usize::from(u16::from_be_bytes([fh[2], fh[3]]) & !7),
                i * 1448
            );
            assert_eq!(fh[4..8], 0x1234_5678u32.to_be_bytes());
        }
        // Small packets and TCP are never cut; an MTU with no room is refused.
        assert!(!needs_fragments(&pkt, 4000));
        assert!(needs_fragments(&pkt, 1500));
        let mut tcp = pkt.clone();
        tcp[6] = u8::from(IpProtocol::Tcp);
        assert!(!needs_fragments(&tcp, 1500));
        assert!(fragment(&pkt, 47, 1, |_| ()).is_none());
    }

    #[test]
    fn not_fragments_and_atomic_fragments() {
        let mut r = Reassembler::default();
        let whole = udp_packet(false, 100);
        assert_eq!(r.ipv4(0, &whole, 0), Push::NotFragment);
        assert_eq!(r.ipv6(0, &udp_packet(true, 100), 0), Push::NotFragment);
        // RFC 6946: offset 0, no more fragments: the packet, unfragmented.
        let data = pattern(64);
        let Push::Complete(got) = r.ipv6(0, &v6(9, 0, false, &data), 0) else {
            panic!("atomic fragment not passed through");
        };
        let p = Ipv6Packet::new_checked(&got[..]).unwrap();
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.payload(), &data[..]);
        assert!(r.is_empty());
    }

    #[test]
    fn overlaps_and_duplicates_drop_the_datagram() {
        for v6 in [false, true] {
            let f = |off, more, n| {
                if v6 {
                    super::tests::v6(7, off, more, &pattern(n))
                } else {
                    v4(7, off, more, &pattern(n))
                }
            };
            let mut r = Reassembler::default();
            assert_eq!(push(&mut r, 0, &f(0, true, 800), 0), Push::Held);
            // Starts inside the first.
            assert_eq!(
                push(&mut r, 0, &f(400, false, 800), 0),
                Push::Dropped(Drop::Overlap)
            );
            assert!(r.is_empty() && r.bytes() == 0);
            // Ends inside the next; an exact duplicate.
            assert_eq!(push(&mut r, 0, &f(800, false, 800), 0), Push::Held);
            assert_eq!(
                push(&mut r, 0, &f(0, true, 808), 0),
                Push::Dropped(Drop::Overlap)
            );
            assert_eq!(push(&mut r, 0, &f(0, true, 800), 0), Push::Held);
            assert_eq!(
                push(&mut r, 0, &f(0, true, 800), 0),
                Push::Dropped(Drop::Overlap)
            );
            assert!(r.is_empty() && r.bytes() == 0, "v6={v6}");
        }
    }

    #[test]
    fn oversized_and_inconsistent_fragments_drop_the_datagram() {
        let mut r = Reassembler::default();
        // Ends past 65,535 (IPv4: with its header).
        let at = 65528;
        assert_eq!(
            r.ipv4(0, &v4(1, at, false, &pattern(8)), 0),
            Push::Dropped(Drop::Oversize)
        );
        assert_eq!(
            r.ipv6(0, &v6(1, at, false, &pattern(16)), 0),
            Push::Dropped(Drop::Oversize)
        );
        // IPv6 may reach 65,535 of payload exactly (a full-size datagram
        // rebuilt in the test above); one byte more may not.
        assert_eq!(r.ipv6(0, &v6(2, at, false, &pattern(7)), 0), Push::Held);
        assert_eq!(
            r.ipv6(0, &v6(3, at, false, &pattern(8)), 0),
            Push::Dropped(Drop::Oversize)
        );
        r.drop_port(0);
        assert!(r.is_empty());
        // A last fragment, then data past its end; a second, different
        // last fragment; a last fragment ending before data already held.
        for (first, second) in [
            (
                v4(4, 800, false, &pattern(80)),
                v4(4, 880, true, &pattern(80)),
            ),
            (
                v4(5, 800, false, &pattern(80)),
                v4(5, 800, false, &pattern(88)),
            ),
            (
                v4(6, 1600, true, &pattern(80)),
                v4(6, 800, false, &pattern(80)),
            ),
        ] {
            assert_eq!(r.ipv4(0, &first, 0), Push::Held);
            assert_eq!(r.ipv4(0, &second, 0), Push::Dropped(Drop::Oversize));
            assert!(r.is_empty() && r.bytes() == 0);
        }
        // Not a multiple of 8 before the end; empty; bad header checksum.
        assert_eq!(
            r.ipv4(0, &v4(7, 0, true, &pattern(801)), 0),
            Push::Dropped(Drop::Malformed)
        );
        assert_eq!(
            r.ipv6(0, &v6(7, 8, true, &[]), 0),
            Push::Dropped(Drop::Malformed)
        );
        let mut bad = v4(8, 0, true, &pattern(800));
        bad[10] ^= 1;
        assert_eq!(r.ipv4(0, &bad, 0), Push::Dropped(Drop::Malformed));
        assert!(r.is_empty());
    }

    #[test]
    fn truncations_never_panic() {
        let pkt = udp_packet(true, 3000);
        let frags = [cut(&pkt, 1500), cut(&udp_packet(false, 3000), 1500)].concat();
        let mut r = Reassembler::default();
        for f in &frags {
            for n in 0..f.len().min(80) {
                let _ = push(&mut r, 0, &f[..n], 0);
            }
            let mut lying = f.clone();
            lying[4] = 0xff; // IPv6 payload length / IPv4 ident
            lying[2] = 0xff; // IPv4 total length
            let _ = push(&mut r, 0, &lying, 0);
        }
        assert!(r.bytes() <= LIMITS.port_bytes);
    }

    #[test]
    fn incomplete_datagrams_expire_at_their_deadline() {
        let mut r = Reassembler::default();
        let t0 = 5_000_000;
        assert_eq!(r.ipv4(0, &v4(1, 0, true, &pattern(800)), t0), Push::Held);
        assert_eq!(
            r.ipv6(1, &v6(1, 0, true, &pattern(800)), t0 + 10),
            Push::Held
        );
        assert_eq!(r.next_deadline(), Some(t0 + LIMITS.timeout_us));
        assert_eq!(r.expire(t0 + LIMITS.timeout_us - 1), 0);
        assert_eq!(r.expire(t0 + LIMITS.timeout_us), 1);
        assert_eq!(r.next_deadline(), Some(t0 + 10 + LIMITS.timeout_us));
        assert_eq!(r.expire(i64::MAX), 1);
        assert!(r.is_empty() && r.bytes() == 0 && r.next_deadline().is_none());
        // A late fragment of an expired datagram starts afresh.
        assert_eq!(
            r.ipv4(0, &v4(1, 800, false, &pattern(80)), t0 + LIMITS.timeout_us),
            Push::Held
        );
    }

    #[test]
    fn too_many_fragments() {
        let limits = Limits {
            fragments: 4,
            ..LIMITS
        };
        let mut r = Reassembler::new(limits);
        for i in 0..4 {
            assert_eq!(r.ipv4(0, &v4(1, i * 16, true, &pattern(8)), 0), Push::Held);
        }
        assert_eq!(
            r.ipv4(0, &v4(1, 64, false, &pattern(8)), 0),
            Push::Dropped(Drop::TooManyFragments)
        );
        assert!(r.is_empty());
    }

    /// A flood of incomplete datagrams: memory and counts never pass their
    /// bounds, per port and in total; the flooder's own new datagrams and
    /// other ports' datagrams still complete.
    #[test]
    fn a_flood_stays_within_bounds_and_others_complete() {
        let mut r = Reassembler::default();
        let whole4 = udp_packet(false, 3000);
        let whole6 = udp_packet(true, 3000);
        // 400 datagrams of 40 fragments each, never the last one.
        for d in 0..400u32 {
            let port = usize::try_from(d % 40).unwrap();
            for k in 0..40 {
                let data = pattern(1400);
                let f = if d % 2 == 0 {
                    v4(u16::try_from(d).unwrap(), k * 1400, true, &data)
                } else {
                    v6(d, k * 1400, true, &data)
                };
                assert_eq!(push(&mut r, port, &f, i64::from(d)), Push::Held);
                assert!(r.bytes() <= LIMITS.total_bytes, "{} bytes", r.bytes());
                assert!(r.len() <= LIMITS.total_datagrams);
                assert!(r.port_bytes(port) <= LIMITS.port_bytes);
            }
            if d % 50 == 49 {
                // A port that is not flooding, and a flooding one.
                for (port, whole) in [(100, &whole4), (port, &whole6)] {
                    let mut done = None;
                    for f in cut(whole, 1500) {
                        done = Some(push(&mut r, port, &f, i64::from(d)));
                    }
                    let Some(Push::Complete(got)) = done else {
                        panic!("port {port}: not rebuilt during the flood");
                    };
                    same_datagram(&got, whole);
                }
            }
        }
        assert!(r.bytes() > LIMITS.total_bytes / 2, "the flood did not fill");
        // One port alone stays within its own bound.
        let mut r = Reassembler::default();
        for i in 0..5_000u16 {
            let _ = r.ipv4(3, &v4(i, 0, true, &pattern(1400)), 0);
            assert!(r.port_bytes(3) <= LIMITS.port_bytes);
            assert!(r.len() <= LIMITS.port_datagrams);
        }
        r.drop_port(3);
        assert!(r.is_empty() && r.bytes() == 0 && r.next_deadline().is_none());
    }
}
