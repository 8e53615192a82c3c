//! The API socket's replies (docs/api.md), pure. Replies are compact JSON
//! without a trailing newline, built from structs so key order is fixed;
//! Podman reads at most 2048 bytes in one `read()`, so every reply except
//! `list_hostfwd` stays far below that.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::config::AddrPlan;
use crate::forward::spec::Mode;
use crate::forward::table::{Rule, RuleId};

/// Longest error `desc` sent, in bytes. Descs echo user text (a bad spec);
/// capping them keeps an error reply inside Podman's single 2048-byte read
/// even after JSON escaping.
pub const MAX_DESC: usize = 512;

/// What a reply is built from when serialisation fails, which serde_json
/// cannot do for these plain structs; present so no path panics.
const FALLBACK_BODY: &[u8] = br#"{"error":{"desc":"internal error: cannot encode the reply"}}"#;

/// What `attach` answers and `list_attached` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub mac: String,
    pub tap: String,
    pub pid: Option<u32>,
    /// A kernel member's port on the network's bridge (its `tap` is then
    /// a veth); absent for a member on a TAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_port: Option<String>,
}

/// `{"return":{"member":…}}` for attach.
pub fn attach_body(m: &MemberInfo) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        member: &'a MemberInfo,
    }
    to_body(&Return {
        ret: Body { member: m },
    })
}

/// `{"return":{"members":[…]}}` for list_attached.
pub fn members_body(ms: &[MemberInfo]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        members: &'a [MemberInfo],
    }
    to_body(&Return {
        ret: Body { members: ms },
    })
}

pub(super) fn to_body<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| FALLBACK_BODY.to_vec())
}

#[derive(Serialize)]
struct Return<T> {
    #[serde(rename = "return")]
    ret: T,
}

/// `{"error":{"desc":DESC}}`, with `desc` cut to [`MAX_DESC`] bytes.
pub fn error_body(desc: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        error: Desc<'a>,
    }
    #[derive(Serialize)]
    struct Desc<'a> {
        desc: &'a str,
    }
    let cut;
    let desc = if desc.len() > MAX_DESC {
        let mut end = MAX_DESC - 3;
        while !desc.is_char_boundary(end) {
            end -= 1;
        }
        cut = format!("{}...", &desc[..end]);
        &cut
    } else {
        desc
    };
    to_body(&Body {
        error: Desc { desc },
    })
}

/// `{"return":{"id":N}}`: RootlessKit needs `id` as a JSON number.
pub fn ok_id(id: RuleId) -> Vec<u8> {
    #[derive(Serialize)]
    struct Id {
        id: RuleId,
    }
    to_body(&Return { ret: Id { id } })
}

/// `{"return":{"ids":[...]}}`, for `add_publish`.
pub fn ok_ids(ids: &[RuleId]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Ids<'a> {
        ids: &'a [RuleId],
    }
    to_body(&Return { ret: Ids { ids } })
}

/// `{"return":{}}`.
pub fn ok_empty() -> Vec<u8> {
    #[derive(Serialize)]
    struct Empty {}
    to_body(&Return { ret: Empty {} })
}

/// One `list_hostfwd` entry, keys in slirp4netns's order. Ranges add
/// `host_port_end`/`guest_port_end`; splice rules add `"mode":"splice"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: RuleId,
    pub proto: String,
    /// `""` for a rule on all IPv4 and IPv6 addresses (a `-p 8080:80`
    /// without address), which slirp4netns cannot express.
    pub host_addr: String,
    pub host_port: u16,
    /// The explicit guest, else the namespace's address of the host
    /// address's family (IPv4 for `""`).
    pub guest_addr: String,
    pub guest_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_port_end: Option<u16>,
    /// Absent = stack, the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

impl Entry {
    pub fn from_rule(rule: &Rule, plan: &AddrPlan) -> Entry {
        let spec = &rule.spec;
        let listener = spec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let range = spec.host_ports.start != spec.host_ports.end;
        Entry {
            id: rule.id,
            proto: spec.proto.to_string(),
            host_addr: spec.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_port: spec.host_ports.start,
            guest_addr: rule
                .target(listener, plan)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            guest_port: spec.ns_ports.start,
            host_port_end: range.then_some(spec.host_ports.end),
            guest_port_end: range.then_some(spec.ns_ports.end),
            mode: (rule.mode != Mode::Stack).then_some(rule.mode),
        }
    }
}

/// `{"return":{"entries":[...]},"entries":[...]}`: the bare `entries` is
/// what slirp4netns really sends, `return.entries` what its man page and
/// tests expect; both satisfy either kind of client.
pub fn list_body(rules: &[Rule], plan: &AddrPlan) -> Vec<u8> {
    #[derive(Serialize)]
    struct Entries<'a> {
        entries: &'a [Entry],
    }
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "return")]
        ret: Entries<'a>,
        entries: &'a [Entry],
    }
    let entries: Vec<Entry> = rules.iter().map(|r| Entry::from_rule(r, plan)).collect();
    to_body(&Body {
        ret: Entries { entries: &entries },
        entries: &entries,
    })
}

/// rlnet's `status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub tap: String,
    pub mtu: u32,
    pub addresses: Addresses,
    pub counters: Counters,
    /// Number of published-port rules.
    pub published: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub ipv4: AddressStatus,
    /// `null` with `--disable-ipv6`.
    pub ipv6: Option<AddressStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressStatus {
    /// CIDR, like `10.0.2.0/24`.
    pub network: String,
    pub gateway: IpAddr,
    pub dns: IpAddr,
    pub guest: IpAddr,
}

impl Addresses {
    pub fn from_plan(plan: &AddrPlan) -> Addresses {
        Addresses {
            ipv4: AddressStatus {
                network: plan.net4.to_string(),
                gateway: IpAddr::V4(plan.gateway4),
                dns: IpAddr::V4(plan.dns4),
                guest: IpAddr::V4(plan.guest4),
            },
            ipv6: plan.v6.map(|v6| AddressStatus {
                network: format!("{}/{}", v6.prefix, v6.prefix_len),
                gateway: IpAddr::V6(v6.gateway6),
                dns: IpAddr::V6(v6.dns6),
                guest: IpAddr::V6(v6.guest6),
            }),
        }
    }
}

/// Totals since start. "in" is what the namespace sent (read from the
/// TAP), "out" what rlnet wrote to the TAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Currently open flows.
    pub tcp_flows: u64,
    pub udp_flows: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames dropped for any reason (malformed, policy, limits).
    pub drops: u64,
    /// IP fragments from the namespace held now for reassembly: bytes
    /// (with per-fragment overhead, as the limits count them) and datagrams.
    #[serde(default)]
    pub reassembly_bytes: u64,
    #[serde(default)]
    pub reassembly_datagrams: u64,
    /// Published-port TCP connections that reached their service through
    /// the real-address splice, and those that took the userspace stack
    /// after its answer left the namespace (`escaped`), since start.
    #[serde(default)]
    pub real_address_splices: u64,
    #[serde(default)]
    pub real_address_fallbacks: u64,
    /// Times rlnet stopped reading a connection's host socket (or one end
    /// of a spliced connection) because the other side took no more
    /// (back-pressure), since start.
    #[serde(default)]
    pub read_pauses: u64,
}

/// `{"return":{STATUS}}`.
pub fn status_body(status: &Status) -> Vec<u8> {
    to_body(&Return { ret: status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::{parse_reply, reply_entries, reply_status};
    use crate::api::testing::{ip, plan, spec};
    use crate::config::default_net4;
    use serde_json::Value;

    fn rule(id: RuleId, s: &str, mode: Mode, guest: Option<&str>) -> Rule {
        Rule {
            id,
            spec: spec(s),
            mode,
            guest: guest.map(ip),
        }
    }

    #[test]
    fn list_body_single_entry_is_byte_exact() {
        let rules = [rule(1, "0.0.0.0:8080:80", Mode::Stack, None)];
        let entry = r#"{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}"#;
        assert_eq!(
            String::from_utf8(list_body(&rules, &plan())).unwrap(),
            format!("{{\"return\":{{\"entries\":[{entry}]}},\"entries\":[{entry}]}}")
        );
        assert_eq!(
            list_body(&[], &plan()),
            br#"{"return":{"entries":[]},"entries":[]}"#
        );
    }

    #[test]
    fn list_body_shapes() {
        let rules = [
            rule(1, "0.0.0.0:8080:80", Mode::Stack, Some("10.0.2.101")),
            rule(2, "8000-8009:9000-9009/udp", Mode::Splice, None),
            rule(5, "[::1]:443:8443", Mode::Stack, None),
        ];
        let body = list_body(&rules, &plan());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["entries"], v["return"]["entries"]);
        let e = &v["entries"];
        assert_eq!(e.as_array().unwrap().len(), 3);
        assert_eq!(e[0]["guest_addr"], "10.0.2.101");
        assert!(e[0].get("host_port_end").is_none());
        assert!(e[0].get("mode").is_none());
        assert_eq!(e[1]["host_addr"], "");
        assert_eq!(e[1]["proto"], "udp");
        assert_eq!(e[1]["host_port"], 8000);
        assert_eq!(e[1]["host_port_end"], 8009);
        assert_eq!(e[1]["guest_port"], 9000);
        assert_eq!(e[1]["guest_port_end"], 9009);
        assert_eq!(e[1]["guest_addr"], "10.0.2.100");
        assert_eq!(e[1]["mode"], "splice");
        assert_eq!(e[2]["id"], 5);
        assert_eq!(e[2]["host_addr"], "::1");
        assert_eq!(e[2]["guest_addr"], "fd00::100");
        // The client reads both shapes back.
        let entries = reply_entries(&parse_reply(&body).unwrap()).unwrap();
        assert_eq!(entries[1].host_port_end, Some(8009));
        assert_eq!(entries[1].mode, Some(Mode::Splice));
        assert_eq!(entries[2].mode, None);
        let slirp = br#"{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}"#;
        let entries = reply_entries(&parse_reply(slirp).unwrap()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].guest_port, 80);
        assert_eq!(entries[0].host_port_end, None);
    }

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 4242,
            tap: "tap0".into(),
            mtu: 65520,
            addresses: Addresses::from_plan(&plan()),
            counters: Counters {
                tcp_flows: 3,
                bytes_in: u64::MAX,
                ..Counters::default()
            },
            published: 2,
        }
    }

    #[test]
    fn status_reply() {
        let body = status_body(&status());
        assert!(body.len() < 2048);
        assert!(!body.contains(&b' ') && !body.ends_with(b"\n"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        let ret = &v["return"];
        assert_eq!(ret["pid"], 4242);
        assert_eq!(ret["addresses"]["ipv4"]["network"], "10.0.2.0/24");
        assert_eq!(ret["addresses"]["ipv4"]["guest"], "10.0.2.100");
        assert_eq!(ret["addresses"]["ipv6"]["network"], "fd00::/64");
        assert_eq!(ret["addresses"]["ipv6"]["dns"], "fd00::3");
        assert_eq!(ret["counters"]["tcp_flows"], 3);
        assert_eq!(reply_status(&parse_reply(&body).unwrap()), Ok(status()));
        let mut s = status();
        s.addresses = Addresses::from_plan(&AddrPlan::new(default_net4(), false));
        let body = status_body(&s);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["return"]["addresses"]["ipv6"].is_null());
        assert_eq!(reply_status(&parse_reply(&body).unwrap()), Ok(s));
    }
}
