//! DNS messages as the stub sees them: classify a query from the namespace,
//! build the few answers the stub gives itself, and check an upstream's
//! reply before it is passed on.
//!
//! Rules:
//! - A query is forwarded only if it parses as one: QR=0, opcode QUERY,
//!   exactly one question (uncompressed name, not of type OPT), no answer or
//!   authority records, additional records that are well formed with at most
//!   one OPT (owned by the root), nothing after the last record, at most
//!   [`MAX_QUERY`] bytes.
//! - Shorter than a header, or QR=1 (a response: answering it could start a
//!   reflection loop): dropped. Other opcodes: NOTIMP. Otherwise malformed:
//!   FORMERR. Zone transfers (AXFR, IXFR), classes other than IN and ANY, and
//!   oversized queries: REFUSED.
//! - Error replies echo the received header (ID, opcode, RD, CD) and, when it
//!   parsed, the received question, byte for byte; nothing else is copied, so
//!   no reply carries bytes that were not received.
//! - Names the stub owns ([`Records`]) are answered here: authoritative, TTL
//!   [`super::records::TTL`], A and AAAA records (NODATA for other types),
//!   NXDOMAIN for unknown names in `rlnet.internal`.
//!
//! Pure: no I/O. hickory-proto parses the question (labels, pointers, name
//! length); the rest of a message is walked record by record without
//! allocating.

use std::net::IpAddr;

use hickory_proto::op::Query;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::records::{Lookup, NetworkId, Records, TTL};

pub const HEADER_LEN: usize = 12;
/// [`HEADER_LEN`] as a decoder offset and a compression pointer.
#[allow(clippy::cast_possible_truncation)] // 12 fits in u16
const HEADER_LEN16: u16 = HEADER_LEN as u16;
/// Largest query the stub forwards (UDP or TCP). Real queries are a few
/// hundred bytes even with EDNS padding; bigger ones get REFUSED (UDP) or
/// close the connection (TCP, before the bytes are buffered).
pub const MAX_QUERY: usize = 4096;
/// Largest DNS message (TCP length prefix).
pub const MAX_MESSAGE: usize = 65535;
/// Without EDNS a UDP answer is at most 512 bytes (RFC 1035).
pub const PLAIN_UDP_SIZE: usize = 512;
/// The UDP payload size the stub advertises in its own answers (DNS flag day
/// 2020 value) and the cap on what it builds for EDNS clients.
pub const STUB_UDP_SIZE: u16 = 1232;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

// Header bits, byte 2 and byte 3.
const QR: u8 = 0x80;
const OPCODE_MASK: u8 = 0x78;
const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
const CD: u8 = 0x10;

/// Response codes the stub produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
    /// Extended (needs OPT): EDNS version not supported.
    BadVers = 16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The EDNS OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A query that passed every check.
#[derive(Debug, Clone)]
pub struct ParsedQuery {
    pub id: u16,
    pub query: Query,
    /// End of the question: bytes `12..question_end` are echoed in replies.
    pub question_end: usize,
    pub edns: Option<Edns>,
}

/// What to do with a message from the namespace.
#[derive(Debug)]
pub enum Action {
    /// A local answer.
    Answer(Vec<u8>),
    /// Ask an upstream.
    Forward(ParsedQuery),
    /// An error reply (FORMERR, NOTIMP, REFUSED).
    Reject(Vec<u8>),
    /// No reply at all.
    Drop,
}

/// Why an upstream's reply was not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadReply {
    Short,
    /// Not the ID the query was sent with.
    Id,
    NotResponse,
    Opcode,
    QuestionCount,
    Question,
    Malformed,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The length in a TCP message's 2-byte prefix, once it is there.
pub fn length_prefix(b: &[u8]) -> Option<usize> {
    u16_at(b, 0).map(usize::from)
}

/// The message ID, if there is a header.
pub fn id(msg: &[u8]) -> Option<u16> {
    (msg.len() >= HEADER_LEN).then(|| u16_at(msg, 0)).flatten()
}

/// Overwrites the ID (no-op without a header).
pub fn set_id(msg: &mut [u8], id: u16) {
    if let Some(b) = msg.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

/// True for a response header (QR=1).
pub fn is_response(msg: &[u8]) -> bool {
    msg.len() >= HEADER_LEN && msg.get(2).is_some_and(|b| b & QR != 0)
}

/// What to do with `msg`, a message sent to the stub by a requester on
/// `requester`'s network.
pub fn classify(
    msg: &[u8],
    records: &Records,
    requester: Option<NetworkId>,
    transport: Transport,
) -> Action {
    let pq = match parse_query(msg) {
        Ok(pq) => pq,
        Err(action) => return action,
    };
    let lookup = records.lookup(requester, pq.query.name());
    let (rcode, addrs) = match lookup {
        Lookup::NotOurs => return Action::Forward(pq),
        Lookup::NxDomain => (Rcode::NxDomain, None),
        Lookup::Found(addrs) => (Rcode::NoError, Some(addrs)),
    };
    if pq.edns.is_some_and(|e| e.version != 0) {
        return Action::Answer(error_reply(
            msg,
            pq.id,
            Some(pq.question_end),
            Rcode::BadVers,
            pq.edns,
        ));
    }
    let qtype = u16::from(pq.query.query_type());
    let wanted = addrs.into_iter().flatten().filter(|a| match a {
        IpAddr::V4(_) => qtype == TYPE_A || qtype == TYPE_ANY,
        IpAddr::V6(_) => qtype == TYPE_AAAA || qtype == TYPE_ANY,
    });
    Action::Answer(answer(msg, &pq, rcode, wanted, transport))
}

/// Checks that `msg` is a query the stub may forward; `Err` is the reply (or
/// the drop) for one it may not.
pub fn parse_query(msg: &[u8]) -> Result<ParsedQuery, Action> {
    let (Some(id), Some(&flags), Some(qdcount), Some(ancount), Some(nscount), Some(arcount)) = (
        id(msg),
        msg.get(2),
        u16_at(msg, 4),
        u16_at(msg, 6),
        u16_at(msg, 8),
        u16_at(msg, 10),
    ) else {
        return Err(Action::Drop);
    };
    if flags & QR != 0 {
        return Err(Action::Drop);
    }
    let question_end = || {
        if qdcount == 1 {
            question_at(msg).ok().map(|(_, end)| end)
        } else {
            None
        }
    };
    let reject =
        |end: Option<usize>, rcode| Err(Action::Reject(error_reply(msg, id, end, rcode, None)));
    if flags & OPCODE_MASK != 0 {
        return reject(question_end(), Rcode::NotImp);
    }
    if qdcount != 1 {
        return reject(None, Rcode::FormErr);
    }
    let Ok((query, question_end)) = question_at(msg) else {
        return reject(None, Rcode::FormErr);
    };
    let q = Some(question_end);
    let qtype = u16::from(query.query_type());
    let qclass = u16::from(query.query_class());
    if qtype == TYPE_OPT {
        return reject(q, Rcode::FormErr);
    }
    if ancount != 0 || nscount != 0 {
        return reject(q, Rcode::FormErr);
    }
    let Ok(edns) = additional(msg, question_end, arcount) else {
        return reject(q, Rcode::FormErr);
    };
    let refuse = || {
        Err(Action::Reject(error_reply(
            msg,
            id,
            Some(question_end),
            Rcode::Refused,
            edns,
        )))
    };
    if qtype == TYPE_AXFR || qtype == TYPE_IXFR {
        return refuse();
    }
    if qclass != CLASS_IN && qclass != CLASS_ANY {
        return refuse();
    }
    if msg.len() > MAX_QUERY {
        return refuse();
    }
    Ok(ParsedQuery {
        id,
        query,
        question_end,
        edns,
    })
}

/// The additional section of a query, `arcount` records from `from`: its
/// EDNS options, if any. `Err` if it is malformed, has more than one OPT, or
/// bytes follow it.
fn additional(msg: &[u8], from: usize, arcount: u16) -> Result<Option<Edns>, ()> {
    let (end, opt) = walk_records(msg, from, 0, 0, arcount).ok_or(())?;
    if end != msg.len() {
        // Trailing bytes: not a message we understand.
        return Err(());
    }
    match opt {
        Opt::None => Ok(None),
        Opt::One(at) => read_opt(msg, at).map(Some).ok_or(()),
        Opt::Bad => Err(()),
    }
}

/// The question at offset 12 and where it ends. The name must not be
/// compressed: a query has nothing earlier to point to but its own header,
/// and an echoed pointer would then name something else in the reply.
fn question_at(msg: &[u8]) -> Result<(Query, usize), ()> {
    let mut pos = HEADER_LEN;
    for _ in 0..128 {
        match *msg.get(pos).ok_or(())? {
            0 => break,
            n if n & 0xC0 == 0 => pos += 1 + usize::from(n),
            _ => return Err(()),
        }
    }
    let mut decoder = BinDecoder::new(msg).clone(HEADER_LEN16);
    let query = Query::read(&mut decoder).map_err(|_| ())?;
    let end = decoder.index();
    if end > msg.len() {
        return Err(());
    }
    Ok((query, end))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    None,
    /// Offset of the one OPT record.
    One(usize),
    /// More than one, or one outside the additional section.
    Bad,
}

/// Skips a (possibly compressed) name at `pos` without following pointers;
/// a pointer must point backwards, past the header. Returns where it ends.
fn skip_name(msg: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    let mut len = 0usize;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xC0 {
            0x00 if b == 0 => return Some(pos + 1),
            0x00 => {
                len += 1 + usize::from(b);
                if len > 254 {
                    return None;
                }
                pos += 1 + usize::from(b);
            }
            0xC0 => {
                let target = usize::from(b & 0x3F) << 8 | usize::from(*msg.get(pos + 1)?);
                if target < HEADER_LEN || target >= start {
                    return None;
                }
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Walks `an + ns + ar` records from `pos`; returns the end of the last one
/// and where the OPT record is. Each step advances, so this ends.
fn walk_records(msg: &[u8], mut pos: usize, an: u16, ns: u16, ar: u16) -> Option<(usize, Opt)> {
    let mut opt = Opt::None;
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    let additional_from = u32::from(an) + u32::from(ns);
    for i in 0..total {
        let owner = pos;
        pos = skip_name(msg, pos)?;
        let rtype = u16_at(msg, pos)?;
        let rdlen = usize::from(u16_at(msg, pos + 8)?);
        pos = pos.checked_add(10 + rdlen)?;
        if pos > msg.len() {
            return None;
        }
        if rtype == TYPE_OPT {
            opt = match (opt, i >= additional_from && msg.get(owner) == Some(&0)) {
                (Opt::None, true) => Opt::One(owner),
                _ => Opt::Bad,
            };
        }
    }
    Some((pos, opt))
}

/// The OPT record at `at` (owner: root). None if its options do not fill
/// its RDATA exactly.
fn read_opt(msg: &[u8], at: usize) -> Option<Edns> {
    let udp_size = u16_at(msg, at + 3)?;
    let version = *msg.get(at + 6)?;
    let dnssec_ok = msg.get(at + 7)? & 0x80 != 0;
    let rdlen = usize::from(u16_at(msg, at + 9)?);
    let rdata = msg.get(at + 11..at + 11 + rdlen)?;
    let mut p = 0usize;
    while p < rdata.len() {
        let olen = usize::from(u16_at(rdata, p + 2)?);
        p += 4 + olen;
    }
    (p == rdata.len()).then_some(Edns {
        udp_size,
        version,
        dnssec_ok,
    })
}

fn push16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Header of a reply to `msg`: ID `id`, QR=1, the query's opcode, RD and CD,
/// RA=1, `aa`, `rcode` (low 4 bits), the given counts.
fn reply_header(out: &mut Vec<u8>, msg: &[u8], id: u16, aa: bool, rcode: Rcode, counts: [u16; 4]) {
    let b2 = msg.get(2).copied().unwrap_or(0);
    let b3 = msg.get(3).copied().unwrap_or(0);
    push16(out, id);
    out.push(QR | (b2 & (OPCODE_MASK | RD)) | if aa { AA } else { 0 });
    out.push(RA | (b3 & CD) | (rcode as u16 & 0x0F) as u8);
    for c in counts {
        push16(out, c);
    }
}

/// An OPT record for the stub's replies (extended rcode from `rcode`).
fn push_opt(out: &mut Vec<u8>, rcode: Rcode) {
    out.push(0);
    push16(out, TYPE_OPT);
    push16(out, STUB_UDP_SIZE);
    out.push((((rcode as u16) >> 4) & 0xFF) as u8);
    out.extend_from_slice(&[0, 0, 0]);
    push16(out, 0);
}

const OPT_LEN: usize = 11;

/// An error reply to `msg` with ID `id`: the received header's opcode, RD
/// and CD, the received question bytes if `question_end` is given, an OPT
/// record if the query had one (or `rcode` needs one).
pub fn error_reply(
    msg: &[u8],
    id: u16,
    question_end: Option<usize>,
    rcode: Rcode,
    edns: Option<Edns>,
) -> Vec<u8> {
    let question = question_end
        .and_then(|end| msg.get(HEADER_LEN..end))
        .unwrap_or_default();
    let opt = edns.is_some() || rcode as u16 > 15;
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + OPT_LEN);
    reply_header(
        &mut out,
        msg,
        id,
        false,
        rcode,
        [u16::from(!question.is_empty()), 0, 0, u16::from(opt)],
    );
    out.extend_from_slice(question);
    if opt {
        push_opt(&mut out, rcode);
    }
    out
}

/// SERVFAIL for a forwarded query that no upstream answered. `msg` is the
/// query as received (any ID), `id` the requester's.
pub fn servfail(msg: &[u8], pq: &ParsedQuery) -> Vec<u8> {
    error_reply(msg, pq.id, Some(pq.question_end), Rcode::ServFail, pq.edns)
}

/// REFUSED for a query the stub may not forward (no egress).
pub fn refused(msg: &[u8], pq: &ParsedQuery) -> Vec<u8> {
    error_reply(msg, pq.id, Some(pq.question_end), Rcode::Refused, pq.edns)
}

/// Largest reply the requester accepts.
fn reply_limit(transport: Transport, edns: Option<Edns>) -> usize {
    match (transport, edns) {
        (Transport::Tcp, _) => MAX_MESSAGE,
        (Transport::Udp, None) => PLAIN_UDP_SIZE,
        (Transport::Udp, Some(e)) => usize::from(e.udp_size.clamp(512, STUB_UDP_SIZE)),
    }
}

/// A local, authoritative answer: the received question, then one record
/// per address (owner: a pointer to the question name), TTL [`TTL`]. If the
/// records do not fit the requester's limit, as many as fit and TC=1.
pub fn answer(
    msg: &[u8],
    pq: &ParsedQuery,
    rcode: Rcode,
    addrs: impl Iterator<Item = IpAddr>,
    transport: Transport,
) -> Vec<u8> {
    let question = msg.get(HEADER_LEN..pq.question_end).unwrap_or_default();
    let limit = reply_limit(transport, pq.edns);
    let opt_len = if pq.edns.is_some() { OPT_LEN } else { 0 };
    let mut out = Vec::with_capacity(128);
    reply_header(&mut out, msg, pq.id, true, rcode, [1, 0, 0, 0]);
    out.extend_from_slice(question);
    let mut count = 0u16;
    let mut truncated = false;
    for addr in addrs {
        let mut buf = [0u8; 16];
        let (rtype, len): (u16, u16) = match addr {
            IpAddr::V4(a) => {
                buf[..4].copy_from_slice(&a.octets());
                (TYPE_A, 4)
            }
            IpAddr::V6(a) => {
                buf[..].copy_from_slice(&a.octets());
                (TYPE_AAAA, 16)
            }
        };
        let data = buf.get(..usize::from(len)).unwrap_or_default();
        if out.len() + 12 + data.len() + opt_len > limit || count == u16::MAX {
            truncated = true;
            break;
        }
        push16(&mut out, 0xC000 | HEADER_LEN16);
        push16(&mut out, rtype);
        push16(&mut out, CLASS_IN);
        out.extend_from_slice(&TTL.to_be_bytes());
        push16(&mut out, len);
        out.extend_from_slice(data);
        count += 1;
    }
    if let Some(b) = out.get_mut(6..8) {
        b.copy_from_slice(&count.to_be_bytes());
    }
    if truncated && let Some(b) = out.get_mut(2) {
        *b |= TC;
    }
    if pq.edns.is_some() {
        push_opt(&mut out, rcode);
        if let Some(b) = out.get_mut(10..12) {
            b.copy_from_slice(&1u16.to_be_bytes());
        }
    }
    out
}

/// Checks an upstream's reply to `question` (sent with the ID the reply
/// carries): a response to a standard query with the same question (name
/// case-insensitive, type, class) whose records are well formed. Trailing
/// bytes after the last record are tolerated, as resolvers do. Returns where
/// the reply's question ends.
pub fn check_reply(reply: &[u8], question: &Query) -> Result<usize, BadReply> {
    let (Some(&flags), Some(qd), Some(an), Some(ns), Some(ar)) = (
        reply.get(2),
        u16_at(reply, 4),
        u16_at(reply, 6),
        u16_at(reply, 8),
        u16_at(reply, 10),
    ) else {
        return Err(BadReply::Short);
    };
    if flags & QR == 0 {
        return Err(BadReply::NotResponse);
    }
    if flags & OPCODE_MASK != 0 {
        return Err(BadReply::Opcode);
    }
    if qd != 1 {
        return Err(BadReply::QuestionCount);
    }
    let mut decoder = BinDecoder::new(reply).clone(HEADER_LEN16);
    let q = Query::read(&mut decoder).map_err(|_| BadReply::Question)?;
    if q.name() != question.name()
        || q.query_type() != question.query_type()
        || q.query_class() != question.query_class()
    {
        return Err(BadReply::Question);
    }
    let question_end = decoder.index();
    walk_records(reply, question_end, an, ns, ar).ok_or(BadReply::Malformed)?;
    Ok(question_end)
}

/// The largest UDP reply a requester with `edns` accepts.
pub fn udp_limit(edns: Option<Edns>) -> usize {
    edns.map_or(PLAIN_UDP_SIZE, |e| {
        usize::from(e.udp_size).max(PLAIN_UDP_SIZE)
    })
}

/// An upstream's UDP reply that is larger than the requester accepts (the
/// upstream ignored the query's size), cut to its header and question with
/// TC=1, so the requester retries over TCP. Only received bytes are copied;
/// an OPT record is added if the query had one.
pub fn truncated(reply: &[u8], question_end: usize, edns: Option<Edns>) -> Vec<u8> {
    let head = reply.get(..4).unwrap_or_default();
    let question = reply.get(HEADER_LEN..question_end).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + question.len() + OPT_LEN);
    out.extend_from_slice(head);
    if let Some(b) = out.get_mut(2) {
        *b |= TC;
    }
    if let Some(b) = out.get_mut(3) {
        // The low RCODE bits; an extended RCODE lived in the OPT dropped here.
        *b &= !0x40;
    }
    for c in [
        u16::from(!question.is_empty()),
        0,
        0,
        u16::from(edns.is_some()),
    ] {
        push16(&mut out, c);
    }
    out.extend_from_slice(question);
    if edns.is_some() {
        push_opt(&mut out, Rcode::NoError);
    }
    out
}

#[cfg(test)]
mod tests;
