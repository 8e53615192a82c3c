//! The DNS target's fixed name table and its oracle: every reply the stub
//! gives is a DNS response to the query it answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::Message;

use rlnet::config::AddrPlan;
use rlnet::dns::message::{self, Action, PLAIN_UDP_SIZE, STUB_UDP_SIZE, Transport};
use rlnet::dns::{NetworkId, Records};

/// The scope of the named-network names.
pub const NET: NetworkId = NetworkId(0);

/// Host aliases, two `--add-host` names, a name with so many addresses
/// that a UDP answer must be truncated, and names visible on one network.
pub fn records() -> Records {
    let plan = AddrPlan::default();
    let hosts = vec![
        (
            "db.example".to_string(),
            IpAddr::V4(Ipv4Addr::new(10, 0, 2, 50)),
        ),
        (
            "db.example".to_string(),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x50)),
        ),
    ];
    let mut r = Records::new(&plan, &hosts).expect("records");
    for i in 0..64u16 {
        let a = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1);
        r.insert(None, "many.example", IpAddr::V6(a)).expect("many");
    }
    for (name, last) in [("web", 10u8), ("web.rlnet.internal", 10), ("cache", 11)] {
        let a = IpAddr::V4(Ipv4Addr::new(10, 89, 0, last));
        r.insert(Some(NET), name, a).expect("network name");
    }
    r.set_stub_network(IpAddr::V4(Ipv4Addr::new(10, 89, 0, 3)), Some(NET));
    r
}

/// Checks a reply the stub built for `query` over `transport`.
pub fn check_reply(query: &[u8], reply: &[u8], transport: Transport, local: bool) {
    assert!(
        reply.len() >= message::HEADER_LEN,
        "reply shorter than a header"
    );
    assert_eq!(reply[..2], query[..2], "reply ID differs from the query's");
    assert_ne!(reply[2] & 0x80, 0, "reply without QR");
    let limit = match (transport, message::parse_query(query)) {
        (Transport::Tcp, _) => message::MAX_MESSAGE,
        (Transport::Udp, Ok(pq)) if local => pq.edns.map_or(PLAIN_UDP_SIZE, |e| {
            usize::from(e.udp_size.clamp(512, STUB_UDP_SIZE))
        }),
        // Error replies: header, the echoed question, an OPT record.
        (Transport::Udp, _) => PLAIN_UDP_SIZE,
    };
    assert!(
        reply.len() <= limit,
        "reply of {} bytes over {limit}",
        reply.len()
    );
    if let Err(e) = Message::from_vec(reply) {
        panic!("reply does not parse: {e}; query {query:02x?}; reply {reply:02x?}");
    }
}

/// Runs one message through `classify` and checks what comes back.
pub fn classify(query: &[u8], records: &Records, net: Option<NetworkId>, transport: Transport) {
    match message::classify(query, records, net, transport) {
        Action::Answer(b) => check_reply(query, &b, transport, true),
        Action::Reject(b) => check_reply(query, &b, transport, false),
        Action::Forward(pq) => {
            assert_eq!(Some(pq.id), message::id(query));
            assert!(pq.question_end <= query.len());
            // What the stub says when it may not forward, and after a timeout.
            check_reply(query, &message::refused(query, &pq), transport, false);
            check_reply(query, &message::servfail(query, &pq), transport, false);
        }
        Action::Drop => {}
    }
}
