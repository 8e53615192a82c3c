//! Bytes on the API socket: framing, request parsing and the error replies
//! (always JSON); and the same bytes as a reply read by `rlnet port`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlnet::api::client::{parse_reply, reply_entries, reply_ids, reply_status};
use rlnet::api::request::{Framing, MAX_REQUEST, framing, parse_request};
use rlnet::config::AddrPlan;

fuzz_target!(|data: &[u8]| {
    let plan = AddrPlan::default();
    let f = framing(data);
    assert_eq!(f == Framing::TooLarge, data.len() >= MAX_REQUEST);
    if let Err(e) = parse_request(data, &plan) {
        let body = e.body();
        let v: serde_json::Value = serde_json::from_slice(&body).expect("error body is JSON");
        assert!(v.get("error").is_some(), "error body without error: {v}");
    }
    if let Ok(reply) = parse_reply(data) {
        let _ = reply_ids(&reply);
        let _ = reply_entries(&reply);
        let _ = reply_status(&reply);
    }
});
