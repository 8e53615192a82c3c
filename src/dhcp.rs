//! DHCPv4 server for the namespace's link, serving what libslirp serves: 16
//! addresses from N+15 (research/slirp4netns.md §1.3, §6), leases keyed by
//! the client's MAC. Pure: the caller passes the UDP payload sent to port 67,
//! the frame's source MAC and the time; it gets back the UDP payload to send
//! from `gateway4`:[`SERVER_PORT`] to `dst_ip`:[`CLIENT_PORT`] at `dst_mac`.
//! The caller hands over every UDP datagram to port 67 addressed to
//! 255.255.255.255 or `gateway4` (clients send from 0.0.0.0 until bound).
//!
//! Untrusted input (research/security.md §5.1): the fixed header is read from
//! a checked 240-byte prefix and options with bounds-checked splits; any
//! option running past the payload, a missing END or a bad length for an
//! option we interpret drops the whole message. Option 52 (overload) is
//! ignored: `sname`/`file` are never read, so options cannot hide there. The
//! lease table is fixed at [`POOL_SIZE`] slots from construction on; no input
//! allocates anything but the (bounded) reply.

use std::net::Ipv4Addr;

use crate::config::{AddrPlan, Config};

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// libslirp hard-codes 16 leases.
pub const POOL_SIZE: usize = 16;
/// libslirp's lease time.
pub const DEFAULT_LEASE_SECS: u32 = 86400;
/// How long an OFFER keeps its address from other clients' DISCOVERs. Short,
/// and an offer is only tentative anyway (see [`DhcpServer`]).
pub const OFFER_HOLD_SECS: u64 = 10;
/// How long a DECLINEd address (in use by someone else, per the client's
/// ARP probe) stays out of the pool.
pub const DECLINE_HOLD_SECS: u64 = 300;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
const HLEN_ETHERNET: u8 = 6;
/// op .. file (RFC 2131 §2), then the magic cookie, then options.
const FIXED_LEN: usize = 236;
const OPTIONS_START: usize = FIXED_LEN + 4;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Replies are zero-padded to BOOTP's 300 bytes: some clients and relays
/// discard shorter messages (RFC 1542 §2.1).
const MIN_REPLY_LEN: usize = 300;
const FLAG_BROADCAST: u16 = 0x8000;
const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const NAK_TEXT: &[u8] = b"address not available";

/// Option codes (RFC 2132).
mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const MTU: u8 = 26;
    pub const BROADCAST: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MSG_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const T1: u8 = 58;
    pub const T2: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// Message types (option 53).
mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpConfig {
    pub plan: AddrPlan,
    /// Offer option 6 (DNS = `plan.dns4`) only when the DNS stub is on.
    pub dns: bool,
    /// Option 26; left out unless 68..=65535.
    pub mtu: u32,
    pub lease_secs: u32,
}

impl From<&Config> for DhcpConfig {
    fn from(c: &Config) -> Self {
        DhcpConfig {
            plan: c.plan,
            dns: c.dns,
            mtu: c.mtu,
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }
}

/// A UDP payload to send from `gateway4`:67 to `dst_ip`:68.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReply {
    pub payload: Vec<u8>,
    /// The client's (future) address, or 255.255.255.255 (RFC 2131 §4.1).
    pub dst_ip: Ipv4Addr,
    /// The client's MAC, or ff:ff:ff:ff:ff:ff with a broadcast `dst_ip`.
    pub dst_mac: [u8; 6],
}

/// One pool address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Offered and held against other DISCOVERs until `until`. Tentative: a
    /// REQUEST from any client may take it, and when the pool is full a new
    /// DISCOVER takes the oldest one. Clients that only DISCOVER (a storm of
    /// random MACs) therefore just rotate through the offers and can never
    /// keep a real client from getting an address.
    Offered {
        mac: [u8; 6],
        until: u64,
        seq: u64,
    },
    /// Leased; only its owner can have it until it expires.
    Bound {
        mac: [u8; 6],
        until: u64,
    },
    Declined {
        until: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    addr: Ipv4Addr,
    state: State,
    /// For a free slot: the client whose lease here ended, and when. It gets
    /// the address back (as libslirp would: same MAC, same address), and new
    /// clients take never-leased addresses first.
    last: Option<([u8; 6], u64)>,
}

impl Slot {
    fn held_by(&self, mac: [u8; 6]) -> bool {
        matches!(self.state, State::Offered { mac: m, .. } | State::Bound { mac: m, .. } if m == mac)
    }

    /// Whether `mac` may lease this address now: offers never block a REQUEST.
    fn bindable_by(&self, mac: [u8; 6]) -> bool {
        match self.state {
            State::Free | State::Offered { .. } => true,
            State::Bound { mac: m, .. } => m == mac,
            State::Declined { .. } => false,
        }
    }
}

/// A client message, validated.
struct Request<'a> {
    kind: u8,
    xid: [u8; 4],
    broadcast: bool,
    ciaddr: Ipv4Addr,
    /// All 16 bytes, echoed in the reply; the first 6 are `mac`.
    chaddr: [u8; 16],
    mac: [u8; 6],
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    param_list: Option<&'a [u8]>,
    client_id: Option<&'a [u8]>,
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl<'a> Request<'a> {
    fn parse(payload: &'a [u8], src_mac: [u8; 6]) -> Option<Self> {
        let (fixed, mut opts) = payload.split_first_chunk::<OPTIONS_START>()?;
        let [op, htype, hlen, _hops] = array(fixed, 0)?;
        if op != BOOTREQUEST || htype != HTYPE_ETHERNET || hlen != HLEN_ETHERNET {
            return None;
        }
        if array(fixed, FIXED_LEN)? != MAGIC {
            return None;
        }
        // A relay cannot sit on a point-to-point TAP: giaddr set is forged.
        if array::<4>(fixed, 24)? != [0; 4] {
            return None;
        }
        let chaddr: [u8; 16] = array(fixed, 28)?;
        let mac: [u8; 6] = array(&chaddr, 0)?;
        // The lease belongs to the sender: no asking for (or releasing)
        // another client's address, and no group or null MACs.
        if mac != src_mac || mac[0] & 1 != 0 || mac == [0; 6] {
            return None;
        }
        let mut req = Request {
            kind: 0,
            xid: array(fixed, 4)?,
            broadcast: u16::from_be_bytes(array(fixed, 10)?) & FLAG_BROADCAST != 0,
            ciaddr: Ipv4Addr::from(array::<4>(fixed, 12)?),
            chaddr,
            mac,
            requested: None,
            server_id: None,
            param_list: None,
            client_id: None,
        };
        let ip = |d: &[u8]| <[u8; 4]>::try_from(d).ok().map(Ipv4Addr::from);
        let mut kind = None;
        // Options up to END, which must be there; bytes after it are padding.
        loop {
            let (&code, rest) = opts.split_first()?;
            match code {
                opt::PAD => {
                    opts = rest;
                    continue;
                }
                opt::END => break,
                _ => {}
            }
            let (&len, rest) = rest.split_first()?;
            let (data, rest) = rest.split_at_checked(usize::from(len))?;
            opts = rest;
            // The first instance of an option wins, but every instance of one
            // we read must be well-formed; two message types are ambiguous.
            match code {
                opt::MSG_TYPE => match (kind, data) {
                    (None, &[k]) => kind = Some(k),
                    _ => return None,
                },
                opt::REQUESTED_IP => req.requested = req.requested.or(Some(ip(data)?)),
                opt::SERVER_ID => req.server_id = req.server_id.or(Some(ip(data)?)),
                opt::PARAM_LIST => req.param_list = req.param_list.or(Some(data)),
                // RFC 2132 §9.14: type plus at least one byte.
                opt::CLIENT_ID if data.len() < 2 => return None,
                opt::CLIENT_ID => req.client_id = req.client_id.or(Some(data)),
                // Everything else, overload (52) included, is not ours to read.
                _ => {}
            }
        }
        // No type: plain BOOTP, which libslirp answers and rlnet does not.
        req.kind = kind?;
        Some(req)
    }

    fn wants(&self, code: u8) -> bool {
        self.param_list.is_none_or(|l| l.contains(&code))
    }
}

/// What to send back.
enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    /// DHCPACK to a DHCPINFORM: configuration, no address, no lease.
    InformAck,
    Nak,
}

enum Outcome {
    Reply(Answer),
    /// Valid, but nothing to say (RELEASE, DECLINE, pool exhausted, the
    /// client chose another server).
    Silent,
    /// Malformed or not for a server.
    Drop,
}

/// Leases for one link. With one namespace per link the pool is never tight;
/// the rules below keep it working when a client misbehaves:
/// - a client keeps its address across DISCOVERs, reboots (INIT-REBOOT) and
///   expiry, unless someone else leased it meanwhile;
/// - an offer holds its address for [`OFFER_HOLD_SECS`] at most, and a full
///   pool lends out the oldest offer rather than staying silent, so
///   DISCOVERs alone (any number, any MACs) can never starve a client;
/// - only bound leases block others; an exhausted pool of live leases
///   answers no DISCOVER until one expires or is released.
#[derive(Debug, Clone)]
pub struct DhcpServer {
    cfg: DhcpConfig,
    /// At most [`POOL_SIZE`], fixed at construction.
    slots: Vec<Slot>,
    /// Orders offers (the clock has only seconds), for taking the oldest.
    offer_seq: u64,
    dropped: u64,
}

impl DhcpServer {
    pub fn new(cfg: DhcpConfig) -> Self {
        let plan = &cfg.plan;
        let start = u32::from(plan.dhcp_start4);
        // Skip anything a hand-made plan might put out of range or on top of
        // the gateway or DNS addresses (never the case for AddrPlan::new).
        let slots = (0..POOL_SIZE as u32)
            .filter_map(|i| start.checked_add(i).map(Ipv4Addr::from))
            .filter(|&a| {
                plan.net4.contains(a)
                    && a != plan.net4.addr
                    && a != plan.net4.broadcast()
                    && a != plan.gateway4
                    && a != plan.dns4
            })
            .map(|addr| Slot {
                addr,
                state: State::Free,
                last: None,
            })
            .collect();
        DhcpServer {
            cfg,
            slots,
            offer_seq: 0,
            dropped: 0,
        }
    }

    /// One client message (UDP payload to port 67) from MAC `src_mac`;
    /// `now` = seconds (monotonic). Never panics; `None` when there is
    /// nothing to send (see [`DhcpServer::dropped`] for the bad ones).
    pub fn handle(&mut self, payload: &[u8], src_mac: [u8; 6], now: u64) -> Option<DhcpReply> {
        self.expire(now);
        let Some(req) = Request::parse(payload, src_mac) else {
            self.dropped = self.dropped.saturating_add(1);
            return None;
        };
        let outcome = match req.kind {
            msg::DISCOVER => self.discover(&req, now),
            msg::REQUEST => self.request(&req, now),
            msg::DECLINE => self.decline(&req, now),
            msg::RELEASE => self.release(&req, now),
            msg::INFORM => Outcome::Reply(Answer::InformAck),
            _ => Outcome::Drop,
        };
        match outcome {
            Outcome::Reply(answer) => Some(self.reply(&req, answer)),
            Outcome::Silent => None,
            Outcome::Drop => {
                self.dropped = self.dropped.saturating_add(1);
                None
            }
        }
    }

    /// The address leased to `mac`, if any.
    pub fn lease(&self, mac: [u8; 6], now: u64) -> Option<Ipv4Addr> {
        self.slots.iter().find_map(|s| match s.state {
            State::Bound { mac: m, until } if m == mac && until > now => Some(s.addr),
            _ => None,
        })
    }

    /// Messages dropped as malformed, spoofed or not meant for a server.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn expire(&mut self, now: u64) {
        for s in &mut self.slots {
            match s.state {
                State::Offered { until, .. } | State::Declined { until } if until <= now => {
                    s.state = State::Free;
                }
                State::Bound { mac, until } if until <= now => {
                    s.state = State::Free;
                    s.last = Some((mac, until));
                }
                _ => {}
            }
        }
    }

    fn slot_of(&self, addr: Ipv4Addr) -> Option<usize> {
        self.slots.iter().position(|s| s.addr == addr)
    }

    fn held_by(&self, mac: [u8; 6]) -> Option<usize> {
        self.slots.iter().position(|s| s.held_by(mac))
    }

    fn remembered(&self, mac: [u8; 6]) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.state == State::Free && s.last.is_some_and(|(m, _)| m == mac))
    }

    /// A free address: never leased first, then the longest free.
    fn pick_free(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].state == State::Free)
            .min_by_key(|&i| {
                let last = self.slots[i].last;
                (last.is_some(), last.map_or(0, |(_, at)| at), i)
            })
    }

    fn oldest_offer(&self) -> Option<usize> {
        (0..self.slots.len())
            .filter_map(|i| match self.slots[i].state {
                State::Offered { seq, .. } => Some((seq, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i)
    }

    /// Give slot `i` to `mac`; a client holds one address at a time.
    fn assign(&mut self, i: usize, mac: [u8; 6], state: State) {
        for (j, s) in self.slots.iter_mut().enumerate() {
            if j != i && s.held_by(mac) {
                s.state = State::Free;
            }
            if s.last.is_some_and(|(m, _)| m == mac) {
                s.last = None;
            }
        }
        if let Some(s) = self.slots.get_mut(i) {
            s.state = state;
        }
    }

    fn discover(&mut self, req: &Request<'_>, now: u64) -> Outcome {
        let mac = req.mac;
        // RFC 2131 §4.3.1 order: current binding, previous one, the
        // requested address if free, a new one.
        let i = self
            .held_by(mac)
            .or_else(|| self.remembered(mac))
            .or_else(|| {
                let i = self.slot_of(req.requested?)?;
                (self.slots.get(i)?.state == State::Free).then_some(i)
            })
            .or_else(|| self.pick_free())
            .or_else(|| self.oldest_offer());
        let Some((i, slot)) = i.and_then(|i| Some((i, *self.slots.get(i)?))) else {
            return Outcome::Silent;
        };
        let addr = slot.addr;
        // A bound client re-discovering keeps its lease as it is.
        if !matches!(slot.state, State::Bound { .. }) {
            let until = now.saturating_add(OFFER_HOLD_SECS);
            self.offer_seq = self.offer_seq.wrapping_add(1);
            let seq = self.offer_seq;
            self.assign(i, mac, State::Offered { mac, until, seq });
        }
        Outcome::Reply(Answer::Offer(addr))
    }

    fn request(&mut self, req: &Request<'_>, now: u64) -> Outcome {
        let ours = self.cfg.plan.gateway4;
        // RFC 2131 §4.3.2: the client state shows in which fields are set.
        let addr = match (req.server_id, req.requested) {
            // SELECTING another server's offer: withdraw ours.
            (Some(sid), _) if sid != ours => {
                if let Some(i) = self.held_by(req.mac)
                    && let Some(s) = self.slots.get_mut(i)
                    && let State::Offered { .. } = s.state
                {
                    s.state = State::Free;
                }
                return Outcome::Silent;
            }
            // SELECTING ours, or INIT-REBOOT.
            (_, Some(a)) => a,
            (Some(_), None) => return Outcome::Drop,
            // RENEWING or REBINDING.
            (None, None) if !req.ciaddr.is_unspecified() => req.ciaddr,
            (None, None) => return Outcome::Drop,
        };
        // The only server on the link: anything it cannot give is wrong.
        let i = self
            .slot_of(addr)
            .filter(|&i| self.slots.get(i).is_some_and(|s| s.bindable_by(req.mac)));
        match i {
            Some(i) => {
                let until = now.saturating_add(u64::from(self.cfg.lease_secs));
                self.assign(
                    i,
                    req.mac,
                    State::Bound {
                        mac: req.mac,
                        until,
                    },
                );
                Outcome::Reply(Answer::Ack(addr))
            }
            None => Outcome::Reply(Answer::Nak),
        }
    }

    fn decline(&mut self, req: &Request<'_>, now: u64) -> Outcome {
        if req.server_id.is_some_and(|s| s != self.cfg.plan.gateway4) {
            return Outcome::Silent;
        }
        let Some(addr) = req.requested else {
            return Outcome::Drop;
        };
        // Only the holder can take an address out of the pool.
        if let Some(i) = self.slot_of(addr)
            && let Some(s) = self.slots.get_mut(i)
            && s.held_by(req.mac)
        {
            s.state = State::Declined {
                until: now.saturating_add(DECLINE_HOLD_SECS),
            };
            s.last = None;
        }
        Outcome::Silent
    }

    fn release(&mut self, req: &Request<'_>, now: u64) -> Outcome {
        if req.server_id.is_some_and(|s| s != self.cfg.plan.gateway4) {
            return Outcome::Silent;
        }
        if let Some(i) = self.slot_of(req.ciaddr)
            && let Some(s) = self.slots.get_mut(i)
            && s.held_by(req.mac)
        {
            if let State::Bound { mac, .. } = s.state {
                s.last = Some((mac, now));
            }
            s.state = State::Free;
        }
        Outcome::Silent
    }

    /// Build the reply (RFC 2131 table 3). Every byte is a constant, from the
    /// configuration, or copied from the request.
    fn reply(&self, req: &Request<'_>, answer: Answer) -> DhcpReply {
        let plan = &self.cfg.plan;
        let (kind, yiaddr) = match answer {
            Answer::Offer(a) => (msg::OFFER, a),
            Answer::Ack(a) => (msg::ACK, a),
            Answer::InformAck => (msg::ACK, Ipv4Addr::UNSPECIFIED),
            Answer::Nak => (msg::NAK, Ipv4Addr::UNSPECIFIED),
        };
        let ciaddr = match answer {
            Answer::Ack(_) | Answer::InformAck => req.ciaddr,
            Answer::Offer(_) | Answer::Nak => Ipv4Addr::UNSPECIFIED,
        };
        let flags = if req.broadcast { FLAG_BROADCAST } else { 0 };

        let mut p = Vec::with_capacity(576);
        p.extend_from_slice(&[BOOTREPLY, HTYPE_ETHERNET, HLEN_ETHERNET, 0]);
        p.extend_from_slice(&req.xid);
        p.extend_from_slice(&[0, 0]); // secs
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&ciaddr.octets());
        p.extend_from_slice(&yiaddr.octets());
        p.extend_from_slice(&[0; 8]); // siaddr (no TFTP), giaddr
        p.extend_from_slice(&req.chaddr);
        p.resize(FIXED_LEN, 0); // sname, file
        p.extend_from_slice(&MAGIC);

        let put = |p: &mut Vec<u8>, code: u8, data: &[u8]| {
            if let Ok(len) = u8::try_from(data.len()) {
                p.extend_from_slice(&[code, len]);
                p.extend_from_slice(data);
            }
        };
        put(&mut p, opt::MSG_TYPE, &[kind]);
        put(&mut p, opt::SERVER_ID, &plan.gateway4.octets());
        if let Answer::Nak = answer {
            put(&mut p, opt::MESSAGE, NAK_TEXT);
        } else {
            if let Answer::Offer(_) | Answer::Ack(_) = answer {
                let lease = u64::from(self.cfg.lease_secs);
                let secs = |s: u64| u32::try_from(s).unwrap_or(u32::MAX).to_be_bytes();
                put(&mut p, opt::LEASE_TIME, &secs(lease));
                put(&mut p, opt::T1, &secs(lease / 2));
                put(&mut p, opt::T2, &secs(lease * 7 / 8));
            }
            // The essentials go out whatever the client asked for.
            put(&mut p, opt::SUBNET_MASK, &plan.net4.mask().to_be_bytes());
            put(&mut p, opt::ROUTER, &plan.gateway4.octets());
            if self.cfg.dns {
                put(&mut p, opt::DNS, &plan.dns4.octets());
            }
            if req.wants(opt::BROADCAST) {
                put(&mut p, opt::BROADCAST, &plan.net4.broadcast().octets());
            }
            if req.wants(opt::MTU)
                && let Ok(mtu) = u16::try_from(self.cfg.mtu)
                && mtu >= 68
            {
                put(&mut p, opt::MTU, &mtu.to_be_bytes());
            }
        }
        // RFC 6842: echo the client identifier.
        if let Some(id) = req.client_id {
            put(&mut p, opt::CLIENT_ID, id);
        }
        p.push(opt::END);
        if p.len() < MIN_REPLY_LEN {
            p.resize(MIN_REPLY_LEN, 0);
        }

        // RFC 2131 §4.1 (giaddr is always zero here): NAKs are broadcast; a
        // configured client (ciaddr) gets unicast; a client that cannot
        // receive unicast yet asked for broadcast; else unicast to yiaddr.
        let bcast = (Ipv4Addr::BROADCAST, BROADCAST_MAC);
        let (dst_ip, dst_mac) = if kind == msg::NAK {
            bcast
        } else if !req.ciaddr.is_unspecified() {
            (req.ciaddr, req.mac)
        } else if req.broadcast || yiaddr.is_unspecified() {
            bcast
        } else {
            (yiaddr, req.mac)
        };
        DhcpReply {
            payload: p,
            dst_ip,
            dst_mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::Ipv4Net;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xaa];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xbb];
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    /// busybox udhcpc's default parameter request list.
    const UDHCPC_PRL: &[u8] = &[1, 3, 6, 12, 15, 28, 42];

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 2, d)
    }

    fn cfg() -> DhcpConfig {
        DhcpConfig {
            plan: AddrPlan::default(),
            dns: true,
            mtu: 65520,
            lease_secs: DEFAULT_LEASE_SECS,
        }
    }

    fn server() -> DhcpServer {
        DhcpServer::new(cfg())
    }

    /// A client message, laid out like udhcpc's.
    #[derive(Clone)]
    struct Msg {
        op: u8,
        kind: Option<u8>,
        mac: [u8; 6],
        xid: [u8; 4],
        broadcast: bool,
        ciaddr: Ipv4Addr,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
        prl: Option<Vec<u8>>,
        /// Raw option bytes inserted before END.
        extra: Vec<u8>,
    }

    fn msg(kind: u8, mac: [u8; 6]) -> Msg {
        Msg {
            op: BOOTREQUEST,
            kind: Some(kind),
            mac,
            xid: [0x12, 0x34, 0x56, mac[5]],
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server: None,
            prl: Some(UDHCPC_PRL.to_vec()),
            extra: Vec::new(),
        }
    }

    impl Msg {
        fn header(&self) -> Vec<u8> {
            let mut b = vec![self.op, 1, 6, 0];
            b.extend_from_slice(&self.xid);
            b.extend_from_slice(&[0, 3]); // secs
            b.extend_from_slice(&if self.broadcast { [0x80, 0] } else { [0, 0] });
            b.extend_from_slice(&self.ciaddr.octets());
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(&self.mac);
            b.resize(FIXED_LEN, 0);
            b.extend_from_slice(&MAGIC);
            b
        }

        fn build(&self) -> Vec<u8> {
            let mut b = self.header();
            if let Some(k) = self.kind {
                b.extend_from_slice(&[53, 1, k]);
            }
            b.extend_from_slice(&[61, 7, 1]);
            b.extend_from_slice(&self.mac);
            if let Some(a) = self.requested {
                b.extend_from_slice(&[50, 4]);
                b.extend_from_slice(&a.octets());
            }
            if let Some(a) = self.server {
                b.extend_from_slice(&[54, 4]);
                b.extend_from_slice(&a.octets());
            }
            b.extend_from_slice(&[57, 2, 0x02, 0x40]);
            b.extend_from_slice(&[60, 12]);
            b.extend_from_slice(b"udhcp 1.36.1");
            if let Some(prl) = &self.prl {
                b.extend_from_slice(&[55, prl.len() as u8]);
                b.extend_from_slice(prl);
            }
            b.extend_from_slice(&self.extra);
            b.push(255);
            b
        }
    }

    /// A reply read back by an independent (test-only) parser.
    #[derive(Debug)]
    struct Parsed {
        op: u8,
        xid: [u8; 4],
        flags: u16,
        ciaddr: Ipv4Addr,
        yiaddr: Ipv4Addr,
        siaddr: Ipv4Addr,
        giaddr: Ipv4Addr,
        chaddr: Vec<u8>,
        opts: BTreeMap<u8, Vec<u8>>,
    }

    impl Parsed {
        fn kind(&self) -> u8 {
            self.opts[&53][0]
        }
        fn ip(&self, code: u8) -> Option<Ipv4Addr> {
            let d = self.opts.get(&code)?;
            Some(Ipv4Addr::from(<[u8; 4]>::try_from(&d[..]).unwrap()))
        }
        fn u32(&self, code: u8) -> Option<u32> {
            let d = self.opts.get(&code)?;
            Some(u32::from_be_bytes(d[..].try_into().unwrap()))
        }
    }

    fn parse_reply(b: &[u8]) -> Parsed {
        assert!(b.len() >= 300, "short reply: {}", b.len());
        assert!(b.len() <= 576, "reply over 576 bytes: {}", b.len());
        assert_eq!((b[1], b[2], b[3]), (1, 6, 0));
        assert_eq!(&b[236..240], &MAGIC);
        assert!(b[44..236].iter().all(|&x| x == 0), "sname/file not zero");
        let a = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        let mut opts = BTreeMap::new();
        let mut i = 240;
        loop {
            match b[i] {
                0 => i += 1,
                255 => break,
                code => {
                    let len = usize::from(b[i + 1]);
                    let old = opts.insert(code, b[i + 2..i + 2 + len].to_vec());
                    assert!(old.is_none(), "option {code} twice");
                    i += 2 + len;
                }
            }
        }
        assert!(b[i + 1..].iter().all(|&x| x == 0), "junk after END");
        Parsed {
            op: b[0],
            xid: b[4..8].try_into().unwrap(),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: a(12),
            yiaddr: a(16),
            siaddr: a(20),
            giaddr: a(24),
            chaddr: b[28..44].to_vec(),
            opts,
        }
    }

    fn send(s: &mut DhcpServer, m: &Msg, now: u64) -> Option<(DhcpReply, Parsed)> {
        let r = s.handle(&m.build(), m.mac, now)?;
        let p = parse_reply(&r.payload);
        assert_eq!(p.op, BOOTREPLY);
        assert_eq!(p.xid, m.xid);
        assert_eq!(&p.chaddr[..6], &m.mac);
        assert_eq!(p.giaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.siaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.ip(54), Some(s.cfg.plan.gateway4));
        Some((r, p))
    }

    /// DISCOVER + REQUEST the way udhcpc does; returns the leased address.
    fn lease(s: &mut DhcpServer, mac: [u8; 6], now: u64) -> Option<Ipv4Addr> {
        let (_, offer) = send(s, &msg(msg::DISCOVER, mac), now)?;
        assert_eq!(offer.kind(), msg::OFFER);
        let mut req = msg(msg::REQUEST, mac);
        req.requested = Some(offer.yiaddr);
        req.server = Some(s.cfg.plan.gateway4);
        let (_, ack) = send(s, &req, now)?;
        assert_eq!(ack.kind(), msg::ACK);
        assert_eq!(ack.yiaddr, offer.yiaddr);
        Some(ack.yiaddr)
    }

    fn renew(s: &mut DhcpServer, mac: [u8; 6], addr: Ipv4Addr, now: u64) -> Parsed {
        let mut m = msg(msg::REQUEST, mac);
        m.ciaddr = addr;
        send(s, &m, now).unwrap().1
    }

    /// Deterministic xorshift64*.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn mac(&mut self) -> [u8; 6] {
            let b = self.next().to_be_bytes();
            // Locally administered unicast, never MAC_A/MAC_B.
            [b[0] & 0xfc | 0x02, b[1], b[2], b[3], b[4], b[5] | 1]
        }
    }

    fn assert_bounded(s: &DhcpServer) {
        assert_eq!(s.slots.len(), POOL_SIZE);
        assert!(s.slots.capacity() <= POOL_SIZE);
        for (i, slot) in s.slots.iter().enumerate() {
            assert_eq!(slot.addr, ip(15 + i as u8));
        }
    }

    #[test]
    fn udhcpc_sequence_leases_n_plus_15_with_all_options() {
        let mut s = server();
        let (r, offer) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 100).unwrap();
        assert_eq!(offer.kind(), msg::OFFER);
        assert_eq!(offer.yiaddr, ip(15));
        assert_eq!(offer.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(offer.flags, 0);
        // No broadcast flag: unicast to the offered address at the client's MAC.
        assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
        assert_eq!(s.lease(MAC_A, 100), None, "an offer is not a lease");

        let mut req = msg(msg::REQUEST, MAC_A);
        req.requested = Some(ip(15));
        req.server = Some(GW);
        let (r, ack) = send(&mut s, &req, 101).unwrap();
        assert_eq!(ack.kind(), msg::ACK);
        assert_eq!(ack.yiaddr, ip(15));
        assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
        for p in [&offer, &ack] {
            assert_eq!(p.u32(51), Some(86400));
            assert_eq!(p.u32(58), Some(43200));
            assert_eq!(p.u32(59), Some(75600));
            assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 0)));
            assert_eq!(p.ip(3), Some(GW));
            assert_eq!(p.ip(6), Some(ip(3)));
            assert_eq!(p.ip(28), Some(ip(255)));
            // Not in udhcpc's list: left out.
            assert!(!p.opts.contains_key(&26));
            // RFC 6842 echo.
            assert_eq!(p.opts[&61], [&[1u8][..], &MAC_A].concat());
            let keys: Vec<u8> = p.opts.keys().copied().collect();
            assert_eq!(keys, [1, 3, 6, 28, 51, 53, 54, 58, 59, 61]);
        }
        assert_eq!(s.lease(MAC_A, 101), Some(ip(15)));
        assert_eq!(s.lease(MAC_A, 101 + 86400), None);
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn options_follow_config_and_request_list() {
        let mut s = DhcpServer::new(DhcpConfig {
            dns: false,
            mtu: 1500,
            lease_secs: 3600,
            ..cfg()
        });
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.prl = None;
        let (_, p) = send(&mut s, &m, 0).unwrap();
        assert!(!p.opts.contains_key(&6), "no DNS without the stub");
        assert_eq!(p.opts[&26], 1500u16.to_be_bytes());
        assert_eq!(p.ip(28), Some(ip(255)));
        assert_eq!(p.u32(51), Some(3600));
        assert_eq!(p.u32(58), Some(1800));
        assert_eq!(p.u32(59), Some(3150));

        // Asked for the MTU only: the essentials come anyway.
        m.prl = Some(vec![26]);
        let (_, p) = send(&mut s, &m, 0).unwrap();
        let keys: Vec<u8> = p.opts.keys().copied().collect();
        assert_eq!(keys, [1, 3, 26, 51, 53, 54, 58, 59, 61]);

        // An MTU that option 26 cannot carry is left out.
        for mtu in [0, 67, 65536, u32::MAX] {
            let mut s = DhcpServer::new(DhcpConfig { mtu, ..cfg() });
            m.prl = None;
            let (_, p) = send(&mut s, &m, 0).unwrap();
            assert!(!p.opts.contains_key(&26), "mtu {mtu}");
        }
    }

    #[test]
    fn broadcast_flag_gets_broadcast_replies() {
        let mut s = server();
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.broadcast = true;
        let (r, p) = send(&mut s, &m, 0).unwrap();
        assert_eq!((r.dst_ip, r.dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
        assert_eq!(p.flags, 0x8000);
        m.kind = Some(msg::REQUEST);
        m.requested = Some(p.yiaddr);
        m.server = Some(GW);
        let (r, p) = send(&mut s, &m, 0).unwrap();
        assert_eq!(p.kind(), msg::ACK);
        assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST);
    }

    #[test]
    fn second_client_gets_next_address_and_pool_has_16() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(16)));
        for i in 2..16u8 {
            assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 0), Some(ip(15 + i)));
        }
        // Pool exhausted: silence, and nothing grows.
        assert!(send(&mut s, &msg(msg::DISCOVER, [2, 0, 0, 0, 2, 0]), 0).is_none());
        assert_bounded(&s);
        // Existing clients still renew.
        assert_eq!(renew(&mut s, MAC_B, ip(16), 10).kind(), msg::ACK);
        // A discover from a bound client offers its address and keeps the lease.
        let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 20).unwrap();
        assert_eq!(p.yiaddr, ip(16));
        assert_eq!(s.lease(MAC_B, 1000), Some(ip(16)));
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn renew_and_rebind_extend_the_lease() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        // RENEWING at T1: unicast, ciaddr echoed, no option 50.
        let mut m = msg(msg::REQUEST, MAC_A);
        m.ciaddr = ip(15);
        let (r, p) = send(&mut s, &m, 43200).unwrap();
        assert_eq!(p.kind(), msg::ACK);
        assert_eq!((p.yiaddr, p.ciaddr), (ip(15), ip(15)));
        assert_eq!((r.dst_ip, r.dst_mac), (ip(15), MAC_A));
        assert_eq!(s.lease(MAC_A, 86400 + 1), Some(ip(15)));
        // REBINDING (broadcast flag): ciaddr still wins (RFC 2131 §4.1).
        m.broadcast = true;
        let (r, p) = send(&mut s, &m, 80000).unwrap();
        assert_eq!(p.kind(), msg::ACK);
        assert_eq!(r.dst_ip, ip(15));
        assert_eq!(s.lease(MAC_A, 80000 + 86399), Some(ip(15)));
        assert_eq!(s.lease(MAC_A, 80000 + 86400), None);
    }

    #[test]
    fn expired_client_regains_its_address() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        let later = 86400 + 5;
        assert_eq!(s.lease(MAC_A, later), None);
        // A new client takes a never-leased address, not A's old one.
        assert_eq!(lease(&mut s, MAC_B, later), Some(ip(16)));
        assert_eq!(lease(&mut s, MAC_A, later + 1), Some(ip(15)));
        // Renewing after expiry (nobody took it) is fine too.
        let p = renew(&mut s, MAC_A, ip(15), later + 2 * 86400);
        assert_eq!(p.kind(), msg::ACK);
    }

    #[test]
    fn release_frees_and_address_is_reused() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        let mut rel = msg(msg::RELEASE, MAC_A);
        rel.ciaddr = ip(15);
        rel.server = Some(GW);
        assert!(send(&mut s, &rel, 10).is_none());
        assert_eq!(s.lease(MAC_A, 10), None);
        // Same client again: same address.
        assert_eq!(lease(&mut s, MAC_A, 20), Some(ip(15)));
        assert!(send(&mut s, &rel, 30).is_none());
        // Fill every other address; the released one is reused by another client.
        for i in 1..16u8 {
            assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 40), Some(ip(15 + i)));
        }
        assert_eq!(lease(&mut s, MAC_B, 50), Some(ip(15)));
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn release_of_someone_elses_address_is_ignored() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        let mut rel = msg(msg::RELEASE, MAC_B);
        rel.ciaddr = ip(15);
        assert!(send(&mut s, &rel, 1).is_none());
        // Same with a spoofed chaddr from B's frame: dropped before that.
        let mut spoof = msg(msg::RELEASE, MAC_A);
        spoof.ciaddr = ip(15);
        assert!(s.handle(&spoof.build(), MAC_B, 2).is_none());
        assert_eq!(s.lease(MAC_A, 3), Some(ip(15)));
        // Release naming another server: not for us.
        let mut other = msg(msg::RELEASE, MAC_A);
        other.ciaddr = ip(15);
        other.server = Some(ip(99));
        assert!(send(&mut s, &other, 4).is_none());
        assert_eq!(s.lease(MAC_A, 5), Some(ip(15)));
    }

    #[test]
    fn nak_for_addresses_we_cannot_give() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
        for (want, selecting) in [
            (ip(100), false),                       // in the subnet, not in the pool
            (Ipv4Addr::new(192, 168, 1, 5), false), // another network
            (ip(15), false),                        // B's lease (INIT-REBOOT)
            (ip(15), true),                         // B's lease (SELECTING)
            (ip(31), true),                         // just past the pool
            (ip(2), false),                         // the gateway
        ] {
            let mut m = msg(msg::REQUEST, MAC_A);
            m.requested = Some(want);
            m.server = selecting.then_some(GW);
            let (r, p) = send(&mut s, &m, 1).unwrap();
            assert_eq!(p.kind(), msg::NAK, "{want}");
            assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
            assert_eq!(p.ciaddr, Ipv4Addr::UNSPECIFIED);
            assert_eq!((r.dst_ip, r.dst_mac), (Ipv4Addr::BROADCAST, [0xff; 6]));
            let keys: Vec<u8> = p.opts.keys().copied().collect();
            assert_eq!(keys, [53, 54, 56, 61]);
        }
        // A renewal of an address that is someone else's.
        let mut m = msg(msg::REQUEST, MAC_A);
        m.ciaddr = ip(15);
        assert_eq!(send(&mut s, &m, 2).unwrap().1.kind(), msg::NAK);
        assert_eq!(s.lease(MAC_B, 3), Some(ip(15)));
        assert_eq!(s.lease(MAC_A, 3), None);
        // INIT-REBOOT for a free pool address is simply granted.
        let mut m = msg(msg::REQUEST, MAC_A);
        m.requested = Some(ip(20));
        assert_eq!(send(&mut s, &m, 4).unwrap().1.kind(), msg::ACK);
        assert_eq!(s.lease(MAC_A, 5), Some(ip(20)));
    }

    #[test]
    fn request_naming_another_server_withdraws_our_offer() {
        let mut s = server();
        let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
        assert_eq!(p.yiaddr, ip(15));
        let mut m = msg(msg::REQUEST, MAC_A);
        m.requested = Some(ip(15));
        m.server = Some(Ipv4Addr::new(10, 0, 2, 254));
        assert!(send(&mut s, &m, 1).is_none());
        assert_eq!(s.slots[0].state, State::Free);
        // The address goes straight to the next client.
        let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 2).unwrap();
        assert_eq!(p.yiaddr, ip(15));
    }

    #[test]
    fn requests_without_an_address_are_dropped() {
        let mut s = server();
        let mut m = msg(msg::REQUEST, MAC_A);
        assert!(send(&mut s, &m, 0).is_none());
        m.server = Some(GW);
        assert!(send(&mut s, &m, 0).is_none());
        assert_eq!(s.dropped(), 2);
        // DECLINE without option 50 as well.
        assert!(send(&mut s, &msg(msg::DECLINE, MAC_A), 0).is_none());
        assert_eq!(s.dropped(), 3);
    }

    #[test]
    fn offers_are_held_briefly_then_reused() {
        let mut s = server();
        let (_, a) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
        let (_, b) = send(&mut s, &msg(msg::DISCOVER, MAC_B), 1).unwrap();
        assert_eq!((a.yiaddr, b.yiaddr), (ip(15), ip(16)));
        // A repeats its DISCOVER: same offer.
        let (_, a2) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 2).unwrap();
        assert_eq!(a2.yiaddr, ip(15));
        // A's offer lapses; a third client gets .15.
        let c = [2, 0, 0, 0, 0, 0xcc];
        assert_eq!(lease(&mut s, c, 2 + OFFER_HOLD_SECS), Some(ip(15)));
        // A's late REQUEST for .15 is NAKed (now leased); B's offer has
        // lapsed too, so a new round gives A .16.
        let mut m = msg(msg::REQUEST, MAC_A);
        m.requested = Some(ip(15));
        m.server = Some(GW);
        assert_eq!(send(&mut s, &m, 13).unwrap().1.kind(), msg::NAK);
        assert_eq!(lease(&mut s, MAC_A, 14), Some(ip(16)));
    }

    #[test]
    fn discover_honours_a_free_requested_address() {
        let mut s = server();
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.requested = Some(ip(22));
        assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(22));
        // Taken or outside the pool: the usual choice.
        let mut m = msg(msg::DISCOVER, MAC_B);
        m.requested = Some(ip(22));
        assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(15));
        let mut m = msg(msg::DISCOVER, [2, 0, 0, 0, 0, 0xcc]);
        m.requested = Some(ip(100));
        assert_eq!(send(&mut s, &m, 0).unwrap().1.yiaddr, ip(16));
    }

    #[test]
    fn client_moving_to_another_address_frees_the_old_one() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        let mut m = msg(msg::REQUEST, MAC_A);
        m.requested = Some(ip(20));
        assert_eq!(send(&mut s, &m, 1).unwrap().1.kind(), msg::ACK);
        assert_eq!(s.lease(MAC_A, 2), Some(ip(20)));
        let held = s.slots.iter().filter(|x| x.held_by(MAC_A)).count();
        assert_eq!(held, 1);
        assert_eq!(lease(&mut s, MAC_B, 3), Some(ip(15)));
    }

    #[test]
    fn decline_takes_the_address_out_for_a_while() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        let mut d = msg(msg::DECLINE, MAC_A);
        d.requested = Some(ip(15));
        d.server = Some(GW);
        assert!(send(&mut s, &d, 1).is_none());
        assert_eq!(s.lease(MAC_A, 1), None);
        assert_eq!(lease(&mut s, MAC_A, 2), Some(ip(16)));
        // Nobody gets .15, not even by asking.
        let mut m = msg(msg::REQUEST, MAC_B);
        m.requested = Some(ip(15));
        assert_eq!(send(&mut s, &m, 3).unwrap().1.kind(), msg::NAK);
        assert_eq!(lease(&mut s, MAC_B, 4), Some(ip(17)));
        // Back in the pool afterwards.
        let c = [2, 0, 0, 0, 0, 0xcc];
        assert_eq!(lease(&mut s, c, 1 + DECLINE_HOLD_SECS), Some(ip(15)));
        // Declining an address one does not hold changes nothing.
        let mut d = msg(msg::DECLINE, MAC_B);
        d.requested = Some(ip(16));
        assert!(send(&mut s, &d, 400).is_none());
        assert_eq!(s.lease(MAC_A, 400), Some(ip(16)));
    }

    #[test]
    fn inform_gets_configuration_without_lease() {
        let mut s = server();
        let mut m = msg(msg::INFORM, MAC_A);
        m.ciaddr = ip(100);
        let (r, p) = send(&mut s, &m, 0).unwrap();
        assert_eq!(p.kind(), msg::ACK);
        assert_eq!(p.yiaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(p.ciaddr, ip(100));
        assert_eq!((r.dst_ip, r.dst_mac), (ip(100), MAC_A));
        for code in [51, 58, 59] {
            assert!(!p.opts.contains_key(&code));
        }
        assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(p.ip(3), Some(GW));
        assert_eq!(p.ip(6), Some(ip(3)));
        assert!(s.slots.iter().all(|x| x.state == State::Free));
        // Without ciaddr: broadcast.
        m.ciaddr = Ipv4Addr::UNSPECIFIED;
        let (r, _) = send(&mut s, &m, 0).unwrap();
        assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST);
    }

    #[test]
    fn cidr_plan_leases_from_network_plus_15() {
        let net4 = Ipv4Net {
            addr: Ipv4Addr::new(10, 0, 135, 128),
            prefix: 25,
        };
        let mut s = DhcpServer::new(DhcpConfig {
            plan: AddrPlan::new(net4, false),
            ..cfg()
        });
        let a = |d: u8| Ipv4Addr::new(10, 0, 135, d);
        let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).unwrap();
        assert_eq!(p.yiaddr, a(143));
        assert_eq!(p.ip(1), Some(Ipv4Addr::new(255, 255, 255, 128)));
        assert_eq!(p.ip(3), Some(a(130)));
        assert_eq!(p.ip(54), Some(a(130)));
        assert_eq!(p.ip(6), Some(a(131)));
        assert_eq!(p.ip(28), Some(a(255)));
        assert_eq!(lease(&mut s, MAC_A, 0), Some(a(143)));
        for i in 1..16u8 {
            assert_eq!(lease(&mut s, [2, 0, 0, 0, 1, i], 0), Some(a(143 + i)));
        }
        assert!(send(&mut s, &msg(msg::DISCOVER, MAC_B), 0).is_none());
        // The old default network's addresses are someone else's.
        let mut m = msg(msg::REQUEST, MAC_B);
        m.requested = Some(ip(15));
        assert_eq!(send(&mut s, &m, 0).unwrap().1.kind(), msg::NAK);
    }

    #[test]
    fn odd_plans_never_lease_network_broadcast_gateway_or_dns() {
        // A pool start too close to the end of the network.
        let mut plan = AddrPlan {
            dhcp_start4: ip(250),
            dns4: ip(252),
            ..AddrPlan::default()
        };
        let mut s = DhcpServer::new(DhcpConfig { plan, ..cfg() });
        let addrs: Vec<Ipv4Addr> = s.slots.iter().map(|x| x.addr).collect();
        assert_eq!(addrs, [ip(250), ip(251), ip(253), ip(254)]);
        for i in 0..4u8 {
            assert!(lease(&mut s, [2, 0, 0, 0, 1, i], 0).is_some());
        }
        assert!(send(&mut s, &msg(msg::DISCOVER, MAC_A), 0).is_none());
        // Pool start at the top of the address space: no overflow.
        plan.dhcp_start4 = Ipv4Addr::new(255, 255, 255, 250);
        let s = DhcpServer::new(DhcpConfig { plan, ..cfg() });
        assert!(s.slots.is_empty());
    }

    #[test]
    fn spoofed_or_bad_senders_are_dropped() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        // B sends A's chaddr: renewing A's lease, stealing its offer, anything.
        for kind in [msg::DISCOVER, msg::REQUEST, msg::INFORM] {
            let mut m = msg(kind, MAC_A);
            m.ciaddr = ip(15);
            assert!(s.handle(&m.build(), MAC_B, 1).is_none());
        }
        // Group and null source MACs, even when chaddr agrees.
        for mac in [[0xff; 6], [0x01, 0, 0x5e, 0, 0, 1], [0; 6]] {
            assert!(s.handle(&msg(msg::DISCOVER, mac).build(), mac, 1).is_none());
        }
        assert_eq!(s.dropped(), 6);
        assert_eq!(s.lease(MAC_A, 1), Some(ip(15)));
    }

    #[test]
    fn wrong_header_fields_are_dropped() {
        let mut s = server();
        let good = msg(msg::DISCOVER, MAC_A).build();
        let cases: [(usize, u8); 7] = [
            (0, BOOTREPLY), // op
            (0, 0),
            (1, 6),      // htype: IEEE 802
            (2, 16),     // hlen
            (236, 0x64), // magic
            (24, 10),    // giaddr: a relay
            (27, 1),
        ];
        for (at, v) in cases {
            let mut b = good.clone();
            b[at] = v;
            assert!(s.handle(&b, MAC_A, 0).is_none(), "byte {at} = {v}");
        }
        // Server-side and unknown message types.
        for kind in [msg::OFFER, msg::ACK, msg::NAK, 0, 9, 200] {
            assert!(send(&mut s, &msg(kind, MAC_A), 0).is_none(), "type {kind}");
        }
        // No message type: BOOTP.
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.kind = None;
        assert!(send(&mut s, &m, 0).is_none());
        assert_eq!(s.dropped(), 14);
        assert!(s.slots.iter().all(|x| x.state == State::Free));
        // The untouched message still works.
        assert!(s.handle(&good, MAC_A, 0).is_some());
    }

    #[test]
    fn every_truncation_is_dropped_without_effect() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
        let mut req = msg(msg::REQUEST, MAC_A);
        req.requested = Some(ip(16));
        req.server = Some(GW);
        let mut rel = msg(msg::RELEASE, MAC_B);
        rel.ciaddr = ip(15);
        let mut inform = msg(msg::INFORM, MAC_A);
        inform.ciaddr = ip(100);
        for m in [msg(msg::DISCOVER, MAC_A), req, rel, inform] {
            let full = m.build();
            for len in 0..full.len() {
                let before = s.slots.clone();
                assert!(s.handle(&full[..len], m.mac, 1).is_none(), "len {len}");
                assert_eq!(s.slots, before, "len {len}");
            }
        }
        assert_eq!(s.lease(MAC_B, 1), Some(ip(15)));
        assert!(s.slots[1..].iter().all(|x| x.state == State::Free));
    }

    #[test]
    fn malformed_and_overflowing_options() {
        let mut s = server();
        let with_extra = |extra: &[u8]| {
            let mut m = msg(msg::DISCOVER, MAC_A);
            m.extra = extra.to_vec();
            m.build()
        };
        let base = msg(msg::DISCOVER, MAC_A).build();
        let end = base.len() - 1;
        let bad: Vec<Vec<u8>> = vec![
            // An option whose length runs past the payload (with and without END).
            [&base[..end], &[43, 200, 1, 2, 3, 255][..]].concat(),
            [&base[..end], &[43, 255][..]].concat(),
            // An option code as the very last byte, no length.
            [&base[..end], &[43][..]].concat(),
            // No END at all, with and without trailing PADs.
            base[..end].to_vec(),
            [&base[..end], &[0; 100][..]].concat(),
            // Bad lengths for options we read.
            with_extra(&[53, 2, 1, 1]),
            with_extra(&[53, 0]),
            with_extra(&[53, 1, 3]), // a second, conflicting type
            with_extra(&[53, 1, 1]), // even the same type twice
            with_extra(&[50, 3, 10, 0, 2]),
            with_extra(&[50, 5, 10, 0, 2, 20, 0]),
            with_extra(&[54, 0]),
            with_extra(&[61, 1, 1]),
        ];
        for b in &bad {
            assert!(s.handle(b, MAC_A, 0).is_none(), "{:?}", &b[240..]);
        }
        assert_eq!(s.dropped(), bad.len() as u64);
        assert!(s.slots.iter().all(|x| x.state == State::Free));

        // Well-formed options beyond the 312-byte field (RFC 2131 §2 sizes
        // the field for replies, not requests): served, the extra ignored.
        let mut big = Vec::new();
        for _ in 0..4 {
            big.extend_from_slice(&[43, 255]);
            big.extend_from_slice(&[0xa5; 255]);
        }
        let b = with_extra(&big);
        assert!(b.len() - 240 > 312 * 3);
        let r = s.handle(&b, MAC_A, 0).unwrap();
        parse_reply(&r.payload);
        // Bytes after END (dhclient pads to 300; here junk) are not read.
        let b = [&base[..], &[53, 1, 7, 43, 200][..]].concat();
        assert_eq!(
            parse_reply(&s.handle(&b, MAC_A, 0).unwrap().payload).kind(),
            msg::OFFER
        );
        // A second requested address or parameter list: the first wins.
        let mut m = msg(msg::DISCOVER, MAC_B);
        m.requested = Some(ip(25));
        m.prl = None;
        m.extra = vec![50, 4, 10, 0, 2, 26, 55, 1, 26];
        let p = send(&mut s, &m, 0).unwrap().1;
        assert_eq!(p.yiaddr, ip(25));
        assert!(p.opts.contains_key(&26));
        // A maximal client identifier is echoed and the reply stays in 576 bytes.
        let mut m = msg(msg::DISCOVER, [2, 0, 0, 0, 0, 0xcc]);
        let mut id = vec![61, 255, 0xff];
        id.extend_from_slice(&[0x5a; 254]);
        m.extra = id.clone();
        // (the builder's own option 61 comes first and wins; drop it)
        let mut b = m.build();
        let at = 243;
        assert_eq!(&b[at..at + 2], &[61, 7]);
        b.drain(at..at + 9);
        let p = parse_reply(&s.handle(&b, m.mac, 0).unwrap().payload);
        assert_eq!(p.opts[&61], id[2..]);
    }

    #[test]
    fn option_overload_is_not_followed() {
        let mut s = server();
        // Message type only inside `file`, announced by option 52: dropped.
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.kind = None;
        m.extra = vec![52, 1, 3];
        let mut b = m.build();
        b[108..111].copy_from_slice(&[53, 1, 1]);
        b[111] = 255;
        b[44..47].copy_from_slice(&[53, 1, 1]);
        b[47] = 255;
        assert!(s.handle(&b, MAC_A, 0).is_none());
        // Overload announced, sname/file full of junk and bogus options: the
        // real options are served and the reply's sname/file stay empty.
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.extra = vec![52, 1, 3];
        let mut b = m.build();
        for (i, x) in b[44..236].iter_mut().enumerate() {
            *x = if i % 2 == 0 { 50 } else { 255 };
        }
        let r = s.handle(&b, MAC_A, 0).unwrap();
        let p = parse_reply(&r.payload);
        assert_eq!((p.kind(), p.yiaddr), (msg::OFFER, ip(15)));
        // Overload with a bad length is malformed like any other option.
        let mut m = msg(msg::DISCOVER, MAC_A);
        m.extra = vec![52, 9];
        assert!(send(&mut s, &m, 0).is_none());
    }

    #[test]
    fn random_inputs_never_panic_and_state_stays_bounded() {
        let mut s = server();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let templates: Vec<Vec<u8>> = {
            let mut req = msg(msg::REQUEST, MAC_A);
            req.requested = Some(ip(15));
            req.server = Some(GW);
            let mut renew = msg(msg::REQUEST, MAC_A);
            renew.ciaddr = ip(15);
            let mut rel = msg(msg::RELEASE, MAC_A);
            rel.ciaddr = ip(15);
            let mut dec = msg(msg::DECLINE, MAC_A);
            dec.requested = Some(ip(15));
            vec![
                msg(msg::DISCOVER, MAC_A).build(),
                req.build(),
                renew.build(),
                rel.build(),
                dec.build(),
                msg(msg::INFORM, MAC_A).build(),
            ]
        };
        let mut replies = 0;
        for round in 0..30_000u64 {
            let now = round / 100;
            let b = match rng.below(3) {
                // Pure noise.
                0 => {
                    let len = rng.below(700);
                    (0..len).map(|_| rng.next() as u8).collect()
                }
                // A valid header, random options.
                1 => {
                    let mut b = templates[0][..240].to_vec();
                    let len = rng.below(400);
                    b.extend((0..len).map(|_| match rng.below(8) {
                        0 => 255,
                        1 => 53,
                        2 => 1 + rng.below(8) as u8,
                        3 => 4,
                        _ => rng.next() as u8,
                    }));
                    b
                }
                // A valid message with a few bytes mutated or cut.
                _ => {
                    let mut b = templates[rng.below(templates.len())].clone();
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(b.len());
                        b[i] = rng.next() as u8;
                    }
                    if rng.below(4) == 0 {
                        b.truncate(rng.below(b.len() + 1));
                    }
                    b
                }
            };
            if let Some(r) = s.handle(&b, MAC_A, now) {
                replies += 1;
                let p = parse_reply(&r.payload);
                assert!(matches!(p.kind(), msg::OFFER | msg::ACK | msg::NAK));
                assert_eq!(&p.chaddr[..6], &MAC_A);
            }
            assert_bounded(&s);
            assert!(s.slots.iter().filter(|x| x.held_by(MAC_A)).count() <= 1);
        }
        // Mutations of valid messages do get through sometimes.
        assert!(replies > 100, "{replies}");
        // And the client still gets its lease afterwards.
        let later = 30_000 / 100 + DECLINE_HOLD_SECS + 86400;
        assert!(lease(&mut s, MAC_A, later).is_some());
        assert!(lease(&mut s, MAC_B, later).is_some());
    }

    #[test]
    fn discover_storm_cannot_starve_a_client() {
        let mut s = server();
        // A client leased before the storm.
        assert_eq!(lease(&mut s, MAC_B, 0), Some(ip(15)));
        let mut rng = Rng(42);
        let mut answered = 0;
        for i in 0..10_000u64 {
            let mac = rng.mac();
            let now = i / 1000; // ten seconds of 1000 DISCOVERs/s
            if send(&mut s, &msg(msg::DISCOVER, mac), now).is_some() {
                answered += 1;
            }
            assert_bounded(&s);
            // The real client's interleaved DISCOVER/REQUEST: the storm keeps
            // taking its offer away, its REQUEST succeeds anyway.
            if i == 5000 {
                let (_, p) = send(&mut s, &msg(msg::DISCOVER, MAC_A), now).unwrap();
                for _ in 0..100 {
                    send(&mut s, &msg(msg::DISCOVER, rng.mac()), now).unwrap();
                }
                assert!(!s.slots.iter().any(|x| x.held_by(MAC_A)));
                let mut m = msg(msg::REQUEST, MAC_A);
                m.requested = Some(p.yiaddr);
                m.server = Some(GW);
                assert_eq!(send(&mut s, &m, now).unwrap().1.kind(), msg::ACK);
            }
        }
        // Every DISCOVER got an offer (the oldest one rotates).
        assert_eq!(answered, 10_000);
        let bound = |s: &DhcpServer| {
            s.slots
                .iter()
                .filter(|x| matches!(x.state, State::Bound { .. }))
                .count()
        };
        assert_eq!(bound(&s), 2);
        // The leases survived the storm and renew.
        let a = s.lease(MAC_A, 10).unwrap();
        assert_eq!(renew(&mut s, MAC_A, a, 10).kind(), msg::ACK);
        assert_eq!(renew(&mut s, MAC_B, ip(15), 10).kind(), msg::ACK);
        // A client arriving right after the storm gets a lease at once.
        let c = [2, 0, 0, 0, 0, 0xcc];
        assert!(lease(&mut s, c, 10).is_some());
    }

    #[test]
    fn bound_storm_keeps_known_client_and_recovers_after_expiry() {
        let mut s = server();
        assert_eq!(lease(&mut s, MAC_A, 0), Some(ip(15)));
        // 10k clients completing DISCOVER + REQUEST: the 15 free addresses
        // go, the rest hear nothing (or a NAK).
        let mut rng = Rng(7);
        let mut leased = 0;
        for i in 0..10_000u64 {
            let now = 1 + i / 1000;
            if lease(&mut s, rng.mac(), now).is_some() {
                leased += 1;
            }
            assert_bounded(&s);
        }
        assert_eq!(leased, 15);
        // The known client keeps renewing through it.
        assert_eq!(renew(&mut s, MAC_A, ip(15), 20).kind(), msg::ACK);
        // A newcomer waits for leases to expire, then gets one.
        assert!(lease(&mut s, MAC_B, 30).is_none());
        assert_eq!(s.lease(MAC_B, 30), None);
        assert!(lease(&mut s, MAC_B, 11 + 86400).is_some());
        assert_eq!(s.lease(MAC_A, 11 + 86400), Some(ip(15)));
        // A's lease lapses too (no renewal); it regains .15.
        assert_eq!(lease(&mut s, MAC_A, 20 + 2 * 86400), Some(ip(15)));
    }
}
