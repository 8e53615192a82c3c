//! A DNS message from the namespace: the stub's parse and local answers
//! (both transports, global and network-scoped requesters), its UDP entry
//! point with forwarding off, and the same bytes as an upstream's reply.
#![no_main]

use std::cell::RefCell;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use hickory_proto::op::Query;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use libfuzzer_sys::fuzz_target;
use rlnet::config::AddrPlan;
use rlnet::dns::message::{self, Transport};
use rlnet::dns::{DnsConfig, DnsIo, DnsStub, Records};
use rlnet_fuzz::dns::{NET, check_reply, classify, records};

struct State {
    records: Records,
    stub: DnsStub,
    poll: mio::Poll,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new({
        let plan = AddrPlan::default();
        let mut stub = DnsStub::new(DnsConfig {
            plan,
            resolv_conf: PathBuf::from("/nonexistent/resolv.conf"),
            // Never asked: forwarding is off below.
            upstream: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))],
            hosts: vec![],
        })
        .expect("stub");
        stub.set_forwarding(false);
        State { records: records(), stub, poll: mio::Poll::new().expect("poll") }
    });
}

fuzz_target!(|data: &[u8]| {
    STATE.with_borrow_mut(|s| {
        for transport in [Transport::Udp, Transport::Tcp] {
            classify(data, &s.records, None, transport);
            classify(data, &s.records, Some(NET), transport);
        }
        // The stub's own entry point: with forwarding off it answers at
        // once or not at all, and opens no socket.
        let client = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 100), 5353));
        let server = SocketAddr::from((Ipv4Addr::new(10, 0, 2, 3), 53));
        let mut io = DnsIo {
            registry: s.poll.registry(),
            now_us: 0,
            token: &mio::Token,
        };
        if let Some(reply) = s.stub.udp_query(client, server, data, &mut io) {
            check_reply(data, &reply, Transport::Udp, true);
        }
        assert_eq!(s.stub.pending(), 0, "a query went upstream");

        // The same bytes as an upstream's reply to the question they carry.
        if data.len() >= message::HEADER_LEN {
            // The question starts after the 12-byte header.
            let mut q = BinDecoder::new(data).clone(12);
            if let Ok(question) = Query::read(&mut q)
                && let Ok(end) = message::check_reply(data, &question)
            {
                assert!(end <= data.len());
                let edns = message::parse_query(data).ok().and_then(|pq| pq.edns);
                let cut = message::truncated(data, end, edns);
                assert!(cut.len() <= data.len() + 11 + 12);
            }
        }
    });
});
