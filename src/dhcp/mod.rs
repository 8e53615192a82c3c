//! DHCPv4 server for the namespace's link, serving what libslirp serves: 16
//! addresses from N+15 (the DHCP pool in man/rlnet.1, "Addresses"), leases
//! keyed by the client's MAC. Pure: the caller passes the UDP payload sent to
//! port 67, the frame's source MAC and the time; it gets back the UDP payload
//! to send from `gateway4`:[`SERVER_PORT`] to `dst_ip`:[`CLIENT_PORT`] at
//! `dst_mac`. The caller hands over every UDP datagram to port 67 addressed
//! to 255.255.255.255 or `gateway4` (clients send from 0.0.0.0 until bound).
//!
//! Untrusted input (anything in the namespace may send it): the fixed header
//! is read from a checked 240-byte prefix and options with bounds-checked
//! splits; any option running past the payload, a missing END or a bad
//! length for an option we interpret drops the whole message. Option 52
//! (overload) is ignored: `sname`/`file` are never read, so options cannot
//! hide there. The lease table is fixed at [`POOL_SIZE`] slots from
//! construction on; no input allocates anything but the (bounded) reply.

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
        // pasta's model: the namespace has the host's address, and only it.
        let size = if plan.shared.is_some() { 1 } else { POOL_SIZE };
        // Skip anything a hand-made plan might put out of range or on top of
        // the gateway or DNS addresses (never the case for AddrPlan::new).
        let slots = (0u32..)
            .take(size)
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
        self.options(&mut p, req, kind, answer);
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

    /// The reply's options, `kind` (the message type) first, END not
    /// included.
    fn options(&self, p: &mut Vec<u8>, req: &Request<'_>, kind: u8, answer: Answer) {
        let plan = &self.cfg.plan;
        let put = |p: &mut Vec<u8>, code: u8, data: &[u8]| {
            if let Ok(len) = u8::try_from(data.len()) {
                p.extend_from_slice(&[code, len]);
                p.extend_from_slice(data);
            }
        };
        put(p, opt::MSG_TYPE, &[kind]);
        put(p, opt::SERVER_ID, &plan.gateway4.octets());
        if let Answer::Nak = answer {
            put(p, opt::MESSAGE, NAK_TEXT);
        } else {
            if let Answer::Offer(_) | Answer::Ack(_) = answer {
                let lease = u64::from(self.cfg.lease_secs);
                let secs = |s: u64| u32::try_from(s).unwrap_or(u32::MAX).to_be_bytes();
                put(p, opt::LEASE_TIME, &secs(lease));
                put(p, opt::T1, &secs(lease / 2));
                put(p, opt::T2, &secs(lease * 7 / 8));
            }
            // The essentials go out whatever the client asked for.
            put(p, opt::SUBNET_MASK, &plan.net4.mask().to_be_bytes());
            put(p, opt::ROUTER, &plan.gateway4.octets());
            // pasta passes no DNS servers (it would need --dhcp-dns).
            if self.cfg.dns && plan.shared.is_none() {
                put(p, opt::DNS, &plan.dns4.octets());
            }
            if req.wants(opt::BROADCAST) {
                put(p, opt::BROADCAST, &plan.net4.broadcast().octets());
            }
            if req.wants(opt::MTU)
                && let Ok(mtu) = u16::try_from(self.cfg.mtu)
                && mtu >= 68
            {
                put(p, opt::MTU, &mtu.to_be_bytes());
            }
        }
        // RFC 6842: echo the client identifier.
        if let Some(id) = req.client_id {
            put(p, opt::CLIENT_ID, id);
        }
    }
}

#[cfg(test)]
mod tests;
