//! The DNS stub on the loop: queries from the ports go in, its answers go
//! out of the port that asked (or the one that owns the client's address),
//! its sockets get `Kind::Dns` tokens, and a named network's member names
//! are kept in its table.

use std::net::{IpAddr, SocketAddr};

use mio::{Registry, Token};

use super::Dp;
use crate::config::AddrPlan;
use crate::dns::{DnsIo, DnsStub, NetworkId};
use crate::event::{Kind, token};
use crate::model::member::Member;
use crate::nat::FlowKey;
use crate::wire;

/// The named network's scope in the stub's name table (one network per
/// engine).
const NET_SCOPE: NetworkId = NetworkId(0);

/// A named network's stub answers its members' names to queries sent to
/// its own addresses.
pub(super) fn serve_network_names(stub: &mut DnsStub, plan: &AddrPlan) {
    let records = stub.records_mut();
    records.set_stub_network(IpAddr::V4(plan.dns4), Some(NET_SCOPE));
    if let Some(v6) = plan.v6 {
        records.set_stub_network(IpAddr::V6(v6.dns6), Some(NET_SCOPE));
    }
}

/// The stub's view of the loop: its sockets get `Kind::Dns` tokens.
fn dns_io(registry: &Registry, now_us: i64) -> DnsIo<'_> {
    DnsIo {
        registry,
        now_us,
        token: &dns_token,
    }
}

fn dns_token(idx: usize) -> Token {
    token(Kind::Dns, idx)
}

impl Dp {
    /// A TCP connection to the stub, relayed by a local flow.
    pub(super) fn dns_tcp_connection(
        &mut self,
        stream: mio::net::UnixStream,
        server: SocketAddr,
        registry: &Registry,
    ) {
        let now_us = self.now.total_micros();
        if let Some(stub) = self.dns.as_mut() {
            stub.tcp_connection_from(stream, server, &mut dns_io(registry, now_us));
        }
    }

    /// A UDP query from `port`; answered at once when the stub can.
    pub(super) fn dns_udp_query(
        &mut self,
        port: usize,
        key: FlowKey,
        payload: &[u8],
        registry: &Registry,
    ) {
        let now_us = self.now.total_micros();
        let mut io = dns_io(registry, now_us);
        let answer = self
            .dns
            .as_mut()
            .and_then(|stub| stub.udp_query(key.src, key.dst, payload, &mut io));
        if let Some(bytes) = answer {
            self.dns_reply(Some(port), key.src, key.dst, &bytes);
        }
    }

    /// A UDP answer of the stub from `server` to `client` (on `port`, else
    /// the port that has `client`'s address).
    fn dns_reply(
        &mut self,
        port: Option<usize>,
        client: SocketAddr,
        server: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(port) = port
            .or_else(|| self.ports_by_ip.get(&client.ip()).copied())
            .or(self.default_port)
        else {
            return;
        };
        let Some(out) = self.outs.get_mut(port) else {
            return;
        };
        let v6 = client.is_ipv6();
        let off = wire::udp_payload_offset(v6);
        if bytes.len() > wire::max_udp_payload(v6) {
            return;
        }
        let Some(room) = out.ip_buf().get_mut(off..off + bytes.len()) else {
            return;
        };
        room.copy_from_slice(bytes);
        if let Some(len) = wire::udp_headers(out.ip_buf(), server, client, bytes.len()) {
            out.send_ip(len);
        }
    }

    pub(super) fn dns_event(
        &mut self,
        idx: usize,
        readable: bool,
        writable: bool,
        registry: &Registry,
    ) {
        let now_us = self.now.total_micros();
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        let replies = stub.event(idx, readable, writable, &mut dns_io(registry, now_us));
        for r in replies {
            self.dns_reply(None, r.client, r.server, &r.bytes);
        }
    }

    pub(super) fn dns_timers(&mut self, registry: &Registry) {
        let now_us = self.now.total_micros();
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        if stub.next_deadline().is_none_or(|t| t > now_us) {
            return;
        }
        for r in stub.run_timers(&mut dns_io(registry, now_us)) {
            self.dns_reply(None, r.client, r.server, &r.bytes);
        }
    }

    /// The member's names, answered to this network's members.
    pub(super) fn publish_names(&mut self, m: &Member, add: bool) {
        let Some(stub) = self.dns.as_mut() else {
            return;
        };
        let records = stub.records_mut();
        for name in m.names() {
            if add {
                for ip in std::iter::once(IpAddr::V4(m.ip4)).chain(m.ip6.map(IpAddr::V6)) {
                    if let Err(e) = records.insert(Some(NET_SCOPE), name, ip) {
                        log::warn!("DNS: cannot add {name}: {e}");
                    }
                }
            } else {
                records.remove(Some(NET_SCOPE), name);
            }
        }
    }
}
