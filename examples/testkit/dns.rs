//! DNS messages for the DNS commands: queries, the fixed test zone's
//! answers (`serve-dns`), one-line summaries of replies (`dig`), and
//! DNS over TCP framing.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::TcpStream;

use crate::fail::{Res, ioerr};

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

/// A message with its two-byte length prefix, as DNS over TCP sends it.
pub fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(msg.len())
        .expect("DNS message over 64 KiB")
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(msg);
    v
}

/// One DNS query over TCP on `s`; the reply.
pub fn tcp_exchange(s: &mut TcpStream, q: &[u8]) -> Res<Vec<u8>> {
    s.write_all(&tcp_frame(q))
        .map_err(|e| ioerr("tcp write", e))?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).map_err(|e| ioerr("tcp read", e))?;
    let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut r).map_err(|e| ioerr("tcp read", e))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_zone() {
        use hickory_proto::rr::RecordType as T;
        let ask = |name: &str, t, edns, udp| {
            let q = query(name, t, 7, edns).unwrap();
            summary(&answer(&q, Some("tagged"), udp).unwrap())
        };
        for (name, t, edns, want) in [
            (
                "a.test",
                T::A,
                None,
                "rcode=NOERROR answers=1 tc=0 data=198.18.0.10",
            ),
            (
                "AAAA.test.",
                T::AAAA,
                None,
                "rcode=NOERROR answers=1 tc=0 data=2001:db8::10",
            ),
            (
                "txt.test",
                T::TXT,
                None,
                "rcode=NOERROR answers=1 tc=0 data=hello",
            ),
            (
                "srv.test",
                T::SRV,
                None,
                "rcode=NOERROR answers=1 tc=0 data=10 5 5060 sip.test.",
            ),
            (
                "mx.test",
                T::MX,
                None,
                "rcode=NOERROR answers=1 tc=0 data=10 mail.test.",
            ),
            (
                "tag.test",
                T::TXT,
                None,
                "rcode=NOERROR answers=1 tc=0 data=tagged",
            ),
            ("a.test", T::MX, None, "rcode=NOERROR answers=0 tc=0 data="),
            (
                "nope.test",
                T::A,
                None,
                "rcode=NXDOMAIN answers=0 tc=0 data=",
            ),
            (
                "big.test",
                T::TXT,
                None,
                "rcode=NOERROR answers=0 tc=1 data=",
            ),
            (
                "big.test",
                T::TXT,
                Some(1232),
                "rcode=NOERROR answers=0 tc=1 data=",
            ),
        ] {
            assert_eq!(ask(name, t, edns, true), want, "{name} {t}");
        }
        assert!(
            ask("big.test", T::TXT, Some(4096), true)
                .starts_with("rcode=NOERROR answers=1 tc=0 data=00xxx")
        );
        let full = answer(&query("big.test", T::TXT, 7, None).unwrap(), None, false).unwrap();
        assert!(full.len() > 2000, "{}", full.len());
        assert!(answer(b"junk", None, true).is_none());
        assert_eq!(parse_type("srv"), Some(T::SRV));
        assert_eq!(parse_type("65535"), Some(T::Unknown(65535)));
    }
}
