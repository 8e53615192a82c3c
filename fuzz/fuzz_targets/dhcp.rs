//! DHCP messages from the namespace, in sequence, to one server; its
//! replies and its lease table are checked after each.
//!
//! Input: records of [MAC selector][seconds to wait][length u16 LE][payload].
//! The selector picks the frame's source MAC: the message's own chaddr (so
//! it passes the sender check) or one of four fixed ones.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use rlnet::config::AddrPlan;
use rlnet::dhcp::{DEFAULT_LEASE_SECS, DhcpConfig, DhcpServer, POOL_SIZE};

const MACS: [[u8; 6]; 4] = [
    [0x0e, 0, 0, 0, 0, 1],
    [0x0e, 0, 0, 0, 0, 2],
    [0x0e, 0, 0, 0, 0, 3],
    [0x02, 0x42, 0xac, 0x11, 0, 2],
];

fuzz_target!(|data: &[u8]| {
    let plan = AddrPlan::default();
    let mut server = DhcpServer::new(DhcpConfig {
        plan,
        dns: true,
        mtu: 1500,
        lease_secs: DEFAULT_LEASE_SECS,
    });
    let pool_start = u32::from(plan.dhcp_start4);
    let pool_end = pool_start + u32::try_from(POOL_SIZE).expect("16");
    let in_pool = |a: Ipv4Addr| (pool_start..pool_end).contains(&u32::from(a));
    let mut now = 0u64;
    let mut seen: Vec<[u8; 6]> = MACS.to_vec();
    let mut rest = data;
    for _ in 0..64 {
        let Some((&[sel, wait, l0, l1], tail)) = rest.split_first_chunk::<4>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes([l0, l1])).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        // Waits of up to ~3 days a step, so leases and holds expire.
        now += u64::from(wait) * u64::from(wait) * 4;
        let mac = match payload.get(28..34) {
            Some(m) if sel & 0x80 != 0 => m.try_into().expect("six bytes"),
            _ => MACS[usize::from(sel & 3)],
        };
        if !seen.contains(&mac) {
            seen.push(mac);
        }
        if let Some(r) = server.handle(payload, mac, now) {
            let p = &r.payload;
            assert!(
                (300..=1500).contains(&p.len()),
                "reply of {} bytes",
                p.len()
            );
            assert_eq!(p[0], 2, "not a BOOTREPLY");
            assert_eq!(p[4..8], payload[4..8], "xid not echoed");
            assert_eq!(p[28..44], payload[28..44], "chaddr not echoed");
            assert!(
                r.dst_mac == mac || r.dst_mac == [0xff; 6],
                "reply to another MAC"
            );
            let yiaddr = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            assert!(
                yiaddr.is_unspecified() || in_pool(yiaddr),
                "offered {yiaddr}"
            );
            assert_eq!(p[236..240], [99, 130, 83, 99], "magic cookie");
        }
        // No address is leased to two clients.
        let mut leased: Vec<Ipv4Addr> = seen.iter().filter_map(|&m| server.lease(m, now)).collect();
        assert!(leased.iter().all(|&a| in_pool(a)));
        let n = leased.len();
        leased.sort();
        leased.dedup();
        assert_eq!(leased.len(), n, "an address is leased twice");
    }
});
