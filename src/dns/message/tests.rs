use super::*;
use crate::config::{AddrPlan, default_net4};
use hickory_proto::op::{Edns as HEdns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

fn records() -> Records {
    Records::new(
        &AddrPlan::default(),
        &[("db.example".to_string(), "192.0.2.7".parse().unwrap())],
    )
    .unwrap()
}

fn msg(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.checking_disabled = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = HEdns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

fn q(name: &str, rtype: RecordType) -> Vec<u8> {
    msg(name, rtype, None).to_vec().unwrap()
}

fn classify_udp(bytes: &[u8]) -> Action {
    classify(bytes, &records(), None, Transport::Udp)
}

fn answer_of(bytes: &[u8]) -> Message {
    match classify_udp(bytes) {
        Action::Answer(a) => Message::from_vec(&a).expect("answer parses"),
        other => panic!("want an answer, got {other:?}"),
    }
}

fn rejected(bytes: &[u8]) -> Vec<u8> {
    match classify_udp(bytes) {
        Action::Reject(r) => r,
        other => panic!("want a rejection, got {other:?}"),
    }
}

fn rcode(reply: &[u8]) -> ResponseCode {
    Message::from_vec(reply)
        .expect("reply parses")
        .metadata
        .response_code
}

#[test]
fn host_alias_answers() {
    let query = q("HoSt.Containers.Internal.", RecordType::A);
    let m = answer_of(&query);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired);
    assert!(m.metadata.recursion_available);
    assert!(m.metadata.checking_disabled);
    assert!(!m.metadata.truncation);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.answers.len(), 1);
    let rec = &m.answers[0];
    assert_eq!(rec.ttl, TTL);
    assert_eq!(rec.dns_class, DNSClass::IN);
    assert_eq!(
        rec.name,
        Name::from_ascii("host.containers.internal.").unwrap()
    );
    assert_eq!(rec.data, RData::A(A("10.0.2.2".parse().unwrap())));
    // The question is echoed byte for byte (case included).
    let Action::Answer(raw) = classify_udp(&query) else {
        unreachable!()
    };
    assert_eq!(raw[12..query.len()], query[12..]);

    let m = answer_of(&q("host.rlnet.internal", RecordType::AAAA));
    assert_eq!(m.answers.len(), 1);
    assert_eq!(
        m.answers[0].data,
        RData::AAAA(AAAA("fd00::2".parse().unwrap()))
    );

    let m = answer_of(&q("host.rlnet.internal", RecordType::ANY));
    assert_eq!(m.answers.len(), 2);

    for t in [
        RecordType::MX,
        RecordType::TXT,
        RecordType::PTR,
        RecordType::Unknown(65535),
    ] {
        let m = answer_of(&q("host.rlnet.internal", t));
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t}");
        assert!(m.answers.is_empty(), "{t}");
        assert!(m.metadata.authoritative);
    }
    let m = answer_of(&q("db.example", RecordType::A));
    assert_eq!(m.answers[0].data, RData::A(A("192.0.2.7".parse().unwrap())));
}

#[test]
fn no_ipv6_gives_nodata_for_aaaa() {
    let r = Records::new(&AddrPlan::new(default_net4(), false), &[]).unwrap();
    let Action::Answer(a) = classify(
        &q("host.containers.internal", RecordType::AAAA),
        &r,
        None,
        Transport::Udp,
    ) else {
        panic!("want an answer")
    };
    let m = Message::from_vec(&a).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

#[test]
fn zone_nxdomain() {
    let m = answer_of(&q("nope.rlnet.internal", RecordType::A));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    let m = answer_of(&q("rlnet.internal", RecordType::SOA));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn others_are_forwarded() {
    for (name, t) in [
        ("example.com", RecordType::A),
        ("a.test", RecordType::AAAA),
        ("srv.test", RecordType::SRV),
        ("x.containers.internal", RecordType::A),
        (".", RecordType::NS),
        ("big.test", RecordType::Unknown(65535)),
        ("any.test", RecordType::ANY),
    ] {
        let bytes = q(name, t);
        match classify_udp(&bytes) {
            Action::Forward(pq) => {
                assert_eq!(pq.id, 0x1234);
                let mut want = Name::from_ascii(name).unwrap();
                want.set_fqdn(true);
                assert_eq!(pq.query.name(), &want);
                assert_eq!(pq.query.query_type(), t);
                assert_eq!(pq.question_end, bytes.len());
                assert_eq!(pq.edns, None);
            }
            other => panic!("{name}: want forward, got {other:?}"),
        }
    }
    let bytes = msg("example.com", RecordType::A, Some(4096))
        .to_vec()
        .unwrap();
    let Action::Forward(pq) = classify_udp(&bytes) else {
        panic!("want forward")
    };
    assert_eq!(
        pq.edns,
        Some(Edns {
            udp_size: 4096,
            version: 0,
            dnssec_ok: false
        })
    );
    assert!(pq.question_end < bytes.len());
}

#[test]
fn edns_in_local_answers() {
    let bytes = msg("host.rlnet.internal", RecordType::A, Some(4096))
        .to_vec()
        .unwrap();
    let m = answer_of(&bytes);
    let e = m.edns.expect("OPT in the answer");
    assert_eq!(e.max_payload(), STUB_UDP_SIZE);
    assert_eq!(m.answers.len(), 1);
    // EDNS version 1: BADVERS.
    let mut m = msg("host.rlnet.internal", RecordType::A, Some(4096));
    m.edns.as_mut().unwrap().set_version(1);
    let a = answer_of(&m.to_vec().unwrap());
    assert_eq!(u16::from(a.metadata.response_code), 16, "BADVERS");
    assert!(a.answers.is_empty());
}

#[test]
fn many_addresses_truncate_to_the_limit() {
    let mut r = Records::empty();
    for i in 0..64u32 {
        r.insert(
            None,
            "many.rlnet.internal",
            IpAddr::V6((0x2001_0db8u128 << 96 | u128::from(i)).into()),
        )
        .unwrap();
    }
    let check = |bytes: Vec<u8>, transport, limit: usize, want_tc: bool| {
        let Action::Answer(a) = classify(&bytes, &r, None, transport) else {
            panic!("want answer")
        };
        assert!(a.len() <= limit, "{} > {limit}", a.len());
        let m = Message::from_vec(&a).unwrap();
        assert_eq!(m.metadata.truncation, want_tc);
        m.answers.len()
    };
    let plain = q("many.rlnet.internal", RecordType::AAAA);
    let n = check(plain.clone(), Transport::Udp, 512, true);
    assert!(n >= 10, "{n}");
    assert_eq!(check(plain, Transport::Tcp, 65535, false), 64);
    let edns = msg("many.rlnet.internal", RecordType::AAAA, Some(65535))
        .to_vec()
        .unwrap();
    let n = check(edns.clone(), Transport::Udp, 1232, true);
    assert!(n > 30, "{n}");
    let small = msg("many.rlnet.internal", RecordType::AAAA, Some(0))
        .to_vec()
        .unwrap();
    check(small, Transport::Udp, 512, true);
    assert_eq!(check(edns, Transport::Tcp, 65535, false), 64);
}

#[test]
fn short_and_response_messages_are_dropped() {
    let good = q("example.com", RecordType::A);
    for n in 0..HEADER_LEN {
        assert!(matches!(classify_udp(&good[..n]), Action::Drop), "{n}");
    }
    let mut qr = good.clone();
    qr[2] |= 0x80;
    assert!(matches!(classify_udp(&qr), Action::Drop));
    // A whole response (as an upstream would send it) too.
    let resp = answer_of(&q("host.rlnet.internal", RecordType::A))
        .to_vec()
        .unwrap();
    assert!(matches!(classify_udp(&resp), Action::Drop));
}

#[test]
fn every_truncation_is_formerr_or_drop() {
    let full = msg("www.example.com", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    for n in 0..full.len() {
        match classify_udp(&full[..n]) {
            Action::Drop => assert!(n < HEADER_LEN),
            Action::Reject(r) => {
                assert!(n >= HEADER_LEN);
                assert_eq!(rcode(&r), ResponseCode::FormErr, "{n}");
                assert_eq!(r[..2], full[..2]);
                // Never longer than the query plus an OPT record.
                assert!(r.len() <= n + 11, "{n}");
            }
            other => panic!("{n}: {other:?}"),
        }
    }
}

#[test]
fn opcodes_other_than_query_are_notimp() {
    for opcode in [1u8, 2, 4, 5, 15] {
        let mut b = q("example.com", RecordType::A);
        b[2] = (b[2] & !0x78) | (opcode << 3);
        let r = rejected(&b);
        assert_eq!(rcode(&r), ResponseCode::NotImp, "{opcode}");
        // The question is echoed, the opcode kept.
        assert_eq!(r[12..], b[12..]);
        assert_eq!(r[2] & 0x78, opcode << 3);
        assert_eq!(&r[4..6], &[0, 1]);
    }
}

#[test]
fn question_counts() {
    let good = q("example.com", RecordType::A);
    for count in [0u16, 2, 65535] {
        let mut b = good.clone();
        b[4..6].copy_from_slice(&count.to_be_bytes());
        let r = rejected(&b);
        assert_eq!(rcode(&r), ResponseCode::FormErr);
        assert_eq!(r.len(), HEADER_LEN, "header only");
        assert_eq!(&r[4..12], &[0; 8]);
    }
}

#[test]
fn lying_record_counts() {
    let good = q("example.com", RecordType::A);
    for (at, count) in [(6, 1u16), (8, 1), (10, 5), (10, 65535), (6, 65535)] {
        let mut b = good.clone();
        b[at..at + 2].copy_from_slice(&count.to_be_bytes());
        let r = rejected(&b);
        assert_eq!(rcode(&r), ResponseCode::FormErr, "{at} {count}");
        // Header + the received question, nothing else.
        assert_eq!(r.len(), good.len());
        assert_eq!(r[12..], good[12..]);
    }
}

fn raw_query(name_bytes: &[u8], qtype: u16) -> Vec<u8> {
    let mut b = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(name_bytes);
    b.extend_from_slice(&qtype.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b
}

#[test]
fn bad_names_are_formerr() {
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.push(0);
    let mut labels128 = Vec::new();
    for _ in 0..128 {
        labels128.extend_from_slice(&[1, b'x']);
    }
    labels128.push(0);
    for (what, name) in [
        ("pointer to itself", vec![0xC0, 12]),
        ("pointer into the header", vec![0xC0, 2]),
        ("pointer past the end", vec![0xC0, 0xFF]),
        ("pointer loop", vec![1, b'a', 0xC0, 12]),
        ("label code 0x40", vec![0x40, b'a', 0]),
        ("label code 0x80", vec![0x80, 0]),
        ("label code 0xBF", vec![0xBF, 0]),
        ("label past the end", vec![10, b'a']),
        ("no terminator", vec![3, b'a', b'b', b'c']),
        ("name over 255", long),
        ("128 labels", labels128),
    ] {
        let b = raw_query(&name, 1);
        let r = rejected(&b);
        assert_eq!(rcode(&r), ResponseCode::FormErr, "{what}");
        assert_eq!(r.len(), HEADER_LEN, "{what}: header only");
    }
}

#[test]
fn refused_types_and_classes() {
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let b = q("example.com", t);
        let r = rejected(&b);
        assert_eq!(rcode(&r), ResponseCode::Refused, "{t}");
        assert_eq!(r[12..], b[12..]);
    }
    let mut m = msg("version.bind", RecordType::TXT, None);
    m.queries[0].set_query_class(DNSClass::CH);
    assert_eq!(
        rcode(&rejected(&m.to_vec().unwrap())),
        ResponseCode::Refused
    );
    let mut m = msg("example.com", RecordType::A, None);
    m.queries[0].set_query_class(DNSClass::ANY);
    assert!(matches!(
        classify_udp(&m.to_vec().unwrap()),
        Action::Forward(_)
    ));
    // OPT as the question type.
    let r = rejected(&raw_query(&[0], 41));
    assert_eq!(rcode(&r), ResponseCode::FormErr);
}

/// A query for example.com A with `additional` appended and ARCOUNT `ar`.
fn with_additional(additional: &[u8], ar: u16) -> Vec<u8> {
    let mut b = q("example.com", RecordType::A);
    b[10..12].copy_from_slice(&ar.to_be_bytes());
    b.extend_from_slice(additional);
    b
}

const OPT: [u8; 11] = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn edns_checks() {
    assert!(matches!(
        classify_udp(&with_additional(&OPT, 1)),
        Action::Forward(_)
    ));
    // UDP size 0 and 65535 are forwarded (the upstream copes).
    for size in [0u16, 65535] {
        let mut opt = OPT;
        opt[3..5].copy_from_slice(&size.to_be_bytes());
        let Action::Forward(pq) = classify_udp(&with_additional(&opt, 1)) else {
            panic!("{size}")
        };
        assert_eq!(pq.edns.unwrap().udp_size, size);
    }
    let two = [OPT, OPT].concat();
    assert_eq!(
        rcode(&rejected(&with_additional(&two, 2))),
        ResponseCode::FormErr
    );
    // OPT owned by a name.
    let mut named = vec![1, b'a', 0];
    named.extend_from_slice(&OPT[1..]);
    assert_eq!(
        rcode(&rejected(&with_additional(&named, 1))),
        ResponseCode::FormErr
    );
    // OPT in the answer section.
    let mut b = with_additional(&OPT, 0);
    b[6..8].copy_from_slice(&1u16.to_be_bytes());
    assert_eq!(rcode(&rejected(&b)), ResponseCode::FormErr);
    // An option whose length runs past the RDATA.
    let mut lying = OPT.to_vec();
    lying[9..11].copy_from_slice(&4u16.to_be_bytes());
    lying.extend_from_slice(&[0, 10, 0, 8]);
    assert_eq!(
        rcode(&rejected(&with_additional(&lying, 1))),
        ResponseCode::FormErr
    );
    // A well-formed cookie option is fine.
    let mut cookie = OPT.to_vec();
    cookie[9..11].copy_from_slice(&12u16.to_be_bytes());
    cookie.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(matches!(
        classify_udp(&with_additional(&cookie, 1)),
        Action::Forward(_)
    ));
}

#[test]
fn trailing_garbage_and_oversize() {
    let mut b = q("example.com", RecordType::A);
    b.push(0);
    let r = rejected(&b);
    assert_eq!(rcode(&r), ResponseCode::FormErr);
    assert_eq!(r.len(), b.len() - 1);
    // Padding to over MAX_QUERY bytes: REFUSED, the OPT echoed as ours.
    let pad = MAX_QUERY;
    let mut opt = OPT.to_vec();
    opt[9..11].copy_from_slice(&u16::try_from(pad + 4).unwrap().to_be_bytes());
    opt.extend_from_slice(&[0, 12]);
    opt.extend_from_slice(&u16::try_from(pad).unwrap().to_be_bytes());
    opt.extend_from_slice(&vec![0; pad]);
    let big = with_additional(&opt, 1);
    assert!(big.len() > MAX_QUERY);
    let r = rejected(&big);
    assert_eq!(rcode(&r), ResponseCode::Refused);
    assert!(r.len() < 64);
}

#[test]
fn error_replies_carry_only_received_bytes() {
    // Fill a query's would-be reply space with a canary: nothing of it may
    // come back.
    let b = with_additional(&OPT, 3);
    let r = rejected(&b);
    assert_eq!(r.len(), b.len() - OPT.len());
    assert_eq!(r[..2], b[..2]);
    assert_eq!(r[12..], b[12..b.len() - OPT.len()]);
    let e = error_reply(&b, 7, None, Rcode::ServFail, None);
    assert_eq!(e.len(), HEADER_LEN);
    assert_eq!(&e[..2], &[0, 7]);
    assert_eq!(e[2], 0x80 | 0x01);
    assert_eq!(e[3], 0x80 | 0x10 | 2);
}

#[test]
fn servfail_echoes_the_question() {
    let b = msg("example.com", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    let Action::Forward(pq) = classify_udp(&b) else {
        panic!()
    };
    let mut sent = b.clone();
    set_id(&mut sent, 0x9999);
    let r = servfail(&sent, &pq);
    let m = Message::from_vec(&r).unwrap();
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(m.queries[0], pq.query);
    assert!(m.edns.is_some());
    assert!(m.answers.is_empty());
}

fn reply_for(query: &[u8]) -> Vec<u8> {
    let mut m = Message::from_vec(query).unwrap();
    m.metadata.message_type = MessageType::Response;
    let name = m.queries[0].name().clone();
    m.add_answer(Record::from_rdata(
        name.clone(),
        60,
        RData::A(A("198.18.0.10".parse().unwrap())),
    ));
    m.add_answer(Record::from_rdata(
        name,
        60,
        RData::A(A("198.18.0.11".parse().unwrap())),
    ));
    m.to_vec().unwrap()
}

#[test]
fn upstream_reply_checks() {
    let query = q("a.test", RecordType::A);
    let Action::Forward(pq) = classify_udp(&query) else {
        panic!()
    };
    let good = reply_for(&query);
    assert_eq!(check_reply(&good, &pq.query), Ok(query.len()));
    // Case differences (0x20 randomisation) are fine.
    let upper = reply_for(&q("A.TEST", RecordType::A));
    assert!(check_reply(&upper, &pq.query).is_ok());
    // Trailing bytes are tolerated.
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"xyz");
    assert!(check_reply(&trailing, &pq.query).is_ok());
    for (what, bytes, want) in [
        (
            "other name",
            reply_for(&q("b.test", RecordType::A)),
            BadReply::Question,
        ),
        (
            "other type",
            reply_for(&q("a.test", RecordType::AAAA)),
            BadReply::Question,
        ),
        ("query", query.clone(), BadReply::NotResponse),
        ("short", good[..11].to_vec(), BadReply::Short),
        (
            "cut in a record",
            good[..good.len() - 2].to_vec(),
            BadReply::Malformed,
        ),
        (
            "cut in the question",
            good[..15].to_vec(),
            BadReply::Question,
        ),
    ] {
        assert_eq!(check_reply(&bytes, &pq.query), Err(want), "{what}");
    }
    let mut lying = good.clone();
    lying[7] = 9;
    assert_eq!(check_reply(&lying, &pq.query), Err(BadReply::Malformed));
    let mut no_q = good.clone();
    no_q[5] = 0;
    assert_eq!(check_reply(&no_q, &pq.query), Err(BadReply::QuestionCount));
    let mut notify = good.clone();
    notify[2] |= 4 << 3;
    assert_eq!(check_reply(&notify, &pq.query), Err(BadReply::Opcode));
    // A forward compression pointer in a record.
    let mut fwd = good.clone();
    let at = query.len();
    fwd[at..at + 2].copy_from_slice(&[0xC0, 0xFF]);
    assert_eq!(check_reply(&fwd, &pq.query), Err(BadReply::Malformed));
}

/// splitmix64, for deterministic mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    #[allow(clippy::cast_possible_truncation)] // the remainder is below n, a usize
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

#[test]
fn mutated_queries_never_panic_and_replies_parse() {
    let seeds = [
        q("host.containers.internal", RecordType::A),
        q("nope.rlnet.internal", RecordType::AAAA),
        msg("example.com", RecordType::A, Some(1232))
            .to_vec()
            .unwrap(),
        with_additional(&OPT, 1),
        raw_query(&[0xC0, 12], 1),
    ];
    let r = records();
    let mut rng = Rng(42);
    let (mut answers, mut rejects, mut forwards, mut drops) = (0, 0, 0, 0);
    for i in 0..200_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..(rng.next() % 4 + 1) {
            match rng.next() % 4 {
                0 if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b[at] = rng.byte();
                }
                1 => b.truncate(rng.below(b.len() + 1)),
                2 => b.push(rng.byte()),
                _ if b.len() > 12 => {
                    let at = 4 + rng.below(8);
                    b[at] = [0, 1, 2, 0xff][rng.below(4)];
                }
                _ => {}
            }
        }
        let t = if i % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        match classify(&b, &r, None, t) {
            Action::Answer(a) | Action::Reject(a) => {
                if a.len() > HEADER_LEN + 255 + 4 + 11 + 64 * 28 {
                    panic!("reply too long: {}", a.len());
                }
                let m = Message::from_vec(&a).unwrap_or_else(|e| panic!("{b:?} -> {a:?}: {e}"));
                assert_eq!(m.metadata.id, u16::from_be_bytes([b[0], b[1]]));
                assert_eq!(m.metadata.message_type, MessageType::Response);
                if matches!(classify(&b, &r, None, t), Action::Answer(_)) {
                    answers += 1;
                } else {
                    rejects += 1;
                }
            }
            Action::Forward(pq) => {
                assert!(b.len() <= MAX_QUERY);
                assert_eq!(pq.id, u16::from_be_bytes([b[0], b[1]]));
                forwards += 1;
            }
            Action::Drop => drops += 1,
        }
    }
    assert!(
        answers > 1000 && rejects > 1000 && forwards > 1000 && drops > 1000,
        "{answers} {rejects} {forwards} {drops}"
    );
}

#[test]
fn oversized_upstream_replies_are_cut_with_tc() {
    let query = msg("a.test", RecordType::A, Some(1232)).to_vec().unwrap();
    let Action::Forward(pq) = classify_udp(&query) else {
        panic!()
    };
    let reply = reply_for(&query);
    let end = check_reply(&reply, &pq.query).unwrap();
    let cut = truncated(&reply, end, pq.edns);
    let m = parse_ok(&cut);
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries[0], pq.query);
    assert!(m.edns.is_some());
    assert_eq!(cut[..2], reply[..2]);
    assert_eq!(cut[12..end], reply[12..end]);
    let plain = truncated(&reply, end, None);
    assert_eq!(plain.len(), end);
    assert_eq!(udp_limit(None), 512);
    assert_eq!(udp_limit(pq.edns), 1232);
    assert_eq!(
        udp_limit(Some(Edns {
            udp_size: 100,
            version: 0,
            dnssec_ok: false
        })),
        512
    );
}

fn parse_ok(b: &[u8]) -> Message {
    Message::from_vec(b).unwrap()
}
