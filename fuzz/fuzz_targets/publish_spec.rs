//! Publish specs (`-p`, `port add`, the API's `add_publish`): each line of
//! the input is one; a spec that parses prints back to itself, and the set
//! goes through the port table's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rlnet::forward::spec::{Mode, PublishSpec};
use rlnet::forward::table::PortTable;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut specs = Vec::new();
    for line in text.split('\n').take(16) {
        let _ = line.parse::<Mode>();
        let Ok(spec) = line.parse::<PublishSpec>() else {
            continue;
        };
        let printed = spec.to_string();
        assert_eq!(
            printed.parse::<PublishSpec>(),
            Ok(spec),
            "{line:?} printed as {printed:?}"
        );
        assert_eq!(spec.host_ports.len(), spec.ns_ports.len());
        for p in [spec.host_ports.start, spec.host_ports.end] {
            let ns = spec.ns_port_for(p).expect("a host port of the spec maps");
            assert!(spec.ns_ports.contains(ns));
        }
        specs.push(spec);
    }
    for start in [0, 1024] {
        let _ = PortTable::new().check(&specs, start);
    }
});
