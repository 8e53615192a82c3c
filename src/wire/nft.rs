//! nf_tables netlink messages for the guard's operations (`model/guard.rs`):
//! one batch, BATCH_BEGIN … BATCH_END, that the kernel commits atomically.
//! The layout is the one `nft` 1.0.6 sends for the same rules (the tests
//! hold its bytes), plus NLM_F_ACK on every operation so the sender learns
//! which one failed. Pure: no I/O; `sys/nft.rs` sends the bytes.

use crate::model::guard::{CmpOp, Expr, MetaKey, Op, PayloadBase, TABLE, Verdict};

/// linux/netlink.h
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
pub const NLMSG_HDRLEN: usize = 16;
/// linux/netfilter/nfnetlink.h
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// linux/netfilter.h: NFPROTO_UNSPEC, NFPROTO_BRIDGE.
const NFPROTO_UNSPEC: u8 = 0;
pub const NFPROTO_BRIDGE: u8 = 7;

/// enum nf_tables_msg_types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
/// Attributes (each enum starts at 1 after its UNSPEC).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// enum nft_registers
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
/// enum nft_meta_keys
const NFT_META_PROTOCOL: u32 = 1;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_L4PROTO: u32 = 16;
/// Verdict codes: NF_DROP, NF_ACCEPT (netfilter.h), NFT_JUMP, NFT_GOTO.
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
/// NF_BR_PRE_ROUTING, and the priority nft calls "filter" in the bridge
/// family: before the bridge's own filtering and forwarding.
const NF_BR_PRE_ROUTING: u32 = 0;
const GUARD_PRIORITY: i32 = -200;

/// The whole batch for `ops`: BATCH_BEGIN with sequence number `seq`, one
/// message per op (`seq + 1` …, each asking for an ACK), BATCH_END.
pub fn batch(ops: &[Op], seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + ops.len() * 256);
    let subsys = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        subsys,
        |_| {},
    );
    let mut n = seq;
    for op in ops {
        n = n.wrapping_add(1);
        let (ty, flags) = kind(op);
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | ty;
        message(
            &mut out,
            ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            n,
            [0; 2],
            |b| {
                op_attrs(b, op);
            },
        );
    }
    message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        n.wrapping_add(1),
        subsys,
        |_| {},
    );
    out
}

/// The message type and the flags besides REQUEST|ACK that nft sets.
fn kind(op: &Op) -> (u16, u16) {
    match op {
        Op::NewTable => (NFT_MSG_NEWTABLE, 0),
        Op::NewChain { .. } => (NFT_MSG_NEWCHAIN, NLM_F_CREATE),
        Op::NewRule { .. } => (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND),
        Op::FlushChain { .. } => (NFT_MSG_DELRULE, 0),
        Op::DelChain { .. } => (NFT_MSG_DELCHAIN, 0),
    }
}

fn op_attrs(b: &mut Vec<u8>, op: &Op) {
    match op {
        Op::NewTable => {
            string(b, NFTA_TABLE_NAME, TABLE);
            u32_attr(b, NFTA_TABLE_FLAGS, 0);
        }
        Op::NewChain { name, base } => {
            string(b, NFTA_CHAIN_TABLE, TABLE);
            string(b, NFTA_CHAIN_NAME, name);
            if *base {
                string(b, NFTA_CHAIN_TYPE, "filter");
                u32_attr(b, NFTA_CHAIN_POLICY, NF_ACCEPT.cast_unsigned());
                nested(b, NFTA_CHAIN_HOOK, |b| {
                    u32_attr(b, NFTA_HOOK_HOOKNUM, NF_BR_PRE_ROUTING);
                    u32_attr(b, NFTA_HOOK_PRIORITY, GUARD_PRIORITY.cast_unsigned());
                });
            }
        }
        Op::NewRule { chain, exprs } => {
            string(b, NFTA_RULE_TABLE, TABLE);
            string(b, NFTA_RULE_CHAIN, chain);
            nested(b, NFTA_RULE_EXPRESSIONS, |b| {
                for e in exprs {
                    nested(b, NFTA_LIST_ELEM, |b| expr(b, e));
                }
            });
        }
        Op::FlushChain { name } => {
            string(b, NFTA_RULE_TABLE, TABLE);
            string(b, NFTA_RULE_CHAIN, name);
        }
        Op::DelChain { name } => {
            string(b, NFTA_CHAIN_TABLE, TABLE);
            string(b, NFTA_CHAIN_NAME, name);
        }
    }
}

/// One expression: its name and its data, attributes in nft's order.
fn expr(b: &mut Vec<u8>, e: &Expr) {
    let name = match e {
        Expr::Meta { .. } => "meta",
        Expr::Payload { .. } => "payload",
        Expr::Cmp { .. } => "cmp",
        Expr::Verdict(_) => "immediate",
    };
    string(b, NFTA_EXPR_NAME, name);
    nested(b, NFTA_EXPR_DATA, |b| match e {
        Expr::Meta { key } => {
            let key = match key {
                MetaKey::Protocol => NFT_META_PROTOCOL,
                MetaKey::IifName => NFT_META_IIFNAME,
                MetaKey::L4Proto => NFT_META_L4PROTO,
            };
            u32_attr(b, NFTA_META_KEY, key);
            u32_attr(b, NFTA_META_DREG, NFT_REG_1);
        }
        Expr::Payload { base, offset, len } => {
            let base = match base {
                PayloadBase::Link => 0,
                PayloadBase::Network => 1,
                PayloadBase::Transport => 2,
            };
            u32_attr(b, NFTA_PAYLOAD_DREG, NFT_REG_1);
            u32_attr(b, NFTA_PAYLOAD_BASE, base);
            u32_attr(b, NFTA_PAYLOAD_OFFSET, *offset);
            u32_attr(b, NFTA_PAYLOAD_LEN, *len);
        }
        Expr::Cmp { op, data } => {
            u32_attr(b, NFTA_CMP_SREG, NFT_REG_1);
            u32_attr(b, NFTA_CMP_OP, u32::from(*op == CmpOp::Neq));
            nested(b, NFTA_CMP_DATA, |b| attr(b, NFTA_DATA_VALUE, data));
        }
        Expr::Verdict(v) => {
            u32_attr(b, NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
            nested(b, NFTA_IMMEDIATE_DATA, |b| {
                nested(b, NFTA_DATA_VERDICT, |b| verdict(b, v));
            });
        }
    });
}

fn verdict(b: &mut Vec<u8>, v: &Verdict) {
    let (code, chain) = match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
    };
    u32_attr(b, NFTA_VERDICT_CODE, code.cast_unsigned());
    if let Some(c) = chain {
        string(b, NFTA_VERDICT_CHAIN, c);
    }
}

/// A netlink message: header, nfgenmsg (family, version 0, `res_id` as
/// given, network order), then what `body` writes. The length is filled
/// in afterwards.
fn message(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    res_id: [u8; 2],
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    let family = if ty >> 8 == NFNL_SUBSYS_NFTABLES {
        NFPROTO_BRIDGE
    } else {
        NFPROTO_UNSPEC
    };
    out.extend_from_slice(&[family, 0, res_id[0], res_id[1]]);
    body(out);
    // Guard batches are a few KiB; a length that does not fit saturates
    // and the kernel refuses the message rather than misreading it.
    let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// An attribute: length (header included, padding not), type, value, then
/// zeros to the next 4-byte boundary.
fn attr(b: &mut Vec<u8>, ty: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(value);
    pad(b);
}

fn nested(b: &mut Vec<u8>, ty: u16, inner: impl FnOnce(&mut Vec<u8>)) {
    let start = b.len();
    b.extend_from_slice(&[0; 2]);
    b.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    inner(b);
    let len = u16::try_from(b.len() - start).unwrap_or(u16::MAX);
    b[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    pad(b);
}

/// nf_tables reads its u32 attributes in network order.
fn u32_attr(b: &mut Vec<u8>, ty: u16, v: u32) {
    attr(b, ty, &v.to_be_bytes());
}

/// A NUL-terminated string, as nft sends names.
fn string(b: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    attr(b, ty, &v);
}

fn pad(b: &mut Vec<u8>) {
    b.resize(b.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::guard::{self, GuardMember};

    /// What `nft -f` (nftables 1.0.6) sent for `table bridge rlnet { chain
    /// v7 { type filter hook prerouting priority -200; policy accept;
    /// iifname != "v7" accept } }`, captured with `strace -e
    /// trace=sendmsg -e write=3` in a fresh netns.
    const NFT_SMALL: &str = concat!(
        "140000001000010000000000000000000000000a28000000000a01000100000000000000070000000a000100",
        "726c6e6574000000080002000000000050000000030a01040200000000000000070000000a000100726c6e65",
        "7400000007000300763700000b00070066696c74657200000800050000000001140004800800010000000000",
        "08000200ffffff38b8000000060a010c0300000000000000070000000a000100726c6e657400000007000200",
        "763700009000048024000180090001006d657461000000001400028008000200000000060800010000000001",
        "3800018008000100636d70002c00028008000100000000010800020000000001180003801400010076370000",
        "000000000000000000000000300001800e000100696d6d6564696174650000001c0002800800010000000000",
        "100002800c0002800800010000000001140000001100010004000000000000000000000a",
    );
    /// Then `add chain bridge rlnet v7_6; add rule bridge rlnet v7 ether
    /// type ip6 goto v7_6; add rule bridge rlnet v7_6 ip6 saddr :: meta
    /// l4proto ipv6-icmp drop`.
    const NFT_RULES: &str = concat!(
        "140000001000010000000000000000000000000a2c000000030a01040100000000000000070000000a000100",
        "726c6e65740000000900030076375f3600000000c8000000060a010c0200000000000000070000000a000100",
        "726c6e65740000000700020076370000a0000480340001800c0001007061796c6f6164002400028008000100",
        "000000010800020000000000080003000000000c08000400000000022c00018008000100636d700020000280",
        "080001000000000108000200000000000c0003800600010086dd00003c0001800e000100696d6d6564696174",
        "650000002800028008000100000000001c0002801800028008000100fffffffc0900020076375f3600000000",
        "6c010000060a010c0300000000000000070000000a000100726c6e65740000000900020076375f3600000000",
        "4001048024000180090001006d6574610000000014000280080002000000000108000100000000012c000180",
        "08000100636d700020000280080001000000000108000200000000000c0003800600010086dd000034000180",
        "0c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000808000400",
        "000000103800018008000100636d70002c000280080001000000000108000200000000001800038014000100",
        "0000000000000000000000000000000024000180090001006d65746100000000140002800800020000000010",
        "08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380",
        "050001003a000000300001800e000100696d6d6564696174650000001c000280080001000000000010000280",
        "0c0002800800010000000000140000001100010004000000000000000000000a",
    );
    /// Then `flush chain bridge rlnet v7; flush chain bridge rlnet v7_6;
    /// delete chain bridge rlnet v7; delete chain bridge rlnet v7_6`.
    const NFT_DELETE: &str = concat!(
        "140000001000010000000000000000000000000a28000000080a01000100000000000000070000000a000100",
        "726c6e657400000007000200763700002c000000080a01000200000000000000070000000a000100726c6e65",
        "740000000900020076375f360000000028000000050a01000300000000000000070000000a000100726c6e65",
        "7400000007000300763700002c000000050a01000400000000000000070000000a000100726c6e6574000000",
        "0900030076375f3600000000140000001100010005000000000000000000000a",
    );

    /// nft's bytes with NLM_F_ACK added to every message between the batch
    /// delimiters (nft 1.0.6 asks for none; rlnet asks for each).
    fn with_ack(hex: &str) -> Vec<u8> {
        let mut b: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let mut at = 0;
        while at < b.len() {
            let len = u32::from_ne_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes([b[at + 4], b[at + 5]]);
            if ty != NFNL_MSG_BATCH_BEGIN && ty != NFNL_MSG_BATCH_END {
                b[at + 6] |= 0x04;
            }
            at += len;
        }
        b
    }

    fn small_ops() -> Vec<Op> {
        let mut ifname = b"v7".to_vec();
        ifname.resize(guard::IFNAMSIZ, 0);
        vec![
            Op::NewTable,
            Op::NewChain {
                name: "v7".into(),
                base: true,
            },
            Op::NewRule {
                chain: "v7".into(),
                exprs: vec![
                    Expr::Meta {
                        key: MetaKey::IifName,
                    },
                    Expr::Cmp {
                        op: CmpOp::Neq,
                        data: ifname,
                    },
                    Expr::Verdict(Verdict::Accept),
                ],
            },
        ]
    }

    #[test]
    fn a_table_a_base_chain_and_a_rule_are_the_bytes_nft_sends() {
        assert_eq!(batch(&small_ops(), 0), with_ack(NFT_SMALL));
    }

    #[test]
    fn payload_meta_and_goto_are_the_bytes_nft_sends() {
        let cmp = |data: &[u8]| Expr::Cmp {
            op: CmpOp::Eq,
            data: data.to_vec(),
        };
        let ops = [
            Op::NewChain {
                name: "v7_6".into(),
                base: false,
            },
            Op::NewRule {
                chain: "v7".into(),
                exprs: vec![
                    Expr::Payload {
                        base: PayloadBase::Link,
                        offset: 12,
                        len: 2,
                    },
                    cmp(&[0x86, 0xdd]),
                    Expr::Verdict(Verdict::Goto("v7_6".into())),
                ],
            },
            Op::NewRule {
                chain: "v7_6".into(),
                exprs: vec![
                    Expr::Meta {
                        key: MetaKey::Protocol,
                    },
                    cmp(&[0x86, 0xdd]),
                    Expr::Payload {
                        base: PayloadBase::Network,
                        offset: 8,
                        len: 16,
                    },
                    cmp(&[0; 16]),
                    Expr::Meta {
                        key: MetaKey::L4Proto,
                    },
                    cmp(&[58]),
                    Expr::Verdict(Verdict::Drop),
                ],
            },
        ];
        assert_eq!(batch(&ops, 0), with_ack(NFT_RULES));
    }

    #[test]
    fn flush_and_delete_are_the_bytes_nft_sends() {
        let names = ["v7", "v7_6"];
        let ops: Vec<Op> = names
            .iter()
            .map(|n| Op::FlushChain { name: (*n).into() })
            .chain(names.iter().map(|n| Op::DelChain { name: (*n).into() }))
            .collect();
        assert_eq!(batch(&ops, 0), with_ack(NFT_DELETE));
    }

    /// (type, flags, seq) of each message; panics on a malformed batch.
    fn headers(b: &[u8]) -> Vec<(u16, u16, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let len = u32::from_ne_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            assert!(len >= NLMSG_HDRLEN + 4 && len.is_multiple_of(4) && at + len <= b.len());
            let ty = u16::from_ne_bytes([b[at + 4], b[at + 5]]);
            let flags = u16::from_ne_bytes([b[at + 6], b[at + 7]]);
            let seq = u32::from_ne_bytes(b[at + 8..at + 12].try_into().unwrap());
            out.push((ty, flags, seq));
            at += len;
        }
        out
    }

    #[test]
    fn a_member_batch_is_framed_with_consecutive_sequence_numbers() {
        let m = GuardMember {
            port: "v7".into(),
            mac: [2, 0x89, 10, 89, 0, 100],
            ip4: "10.89.0.100".parse().unwrap(),
            ip6: Some("fd00:89::100".parse().unwrap()),
            link_local: "fe80::89:aff:fe59:64".parse().unwrap(),
        };
        let mut ops = guard::table();
        ops.extend(guard::add_member(&m));
        let h = headers(&batch(&ops, u32::MAX - 2));
        assert_eq!(h.len(), ops.len() + 2);
        assert_eq!(h[0], (NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, u32::MAX - 2));
        assert_eq!(h[h.len() - 1].0, NFNL_MSG_BATCH_END);
        for (i, (ty, flags, seq)) in h.iter().enumerate() {
            // Sequence numbers wrap, never repeat within a batch.
            assert_eq!(*seq, (u32::MAX - 2).wrapping_add(u32::try_from(i).unwrap()));
            if i > 0 && i < h.len() - 1 {
                assert_eq!(ty >> 8, NFNL_SUBSYS_NFTABLES);
                assert_eq!(
                    flags & (NLM_F_REQUEST | NLM_F_ACK),
                    NLM_F_REQUEST | NLM_F_ACK
                );
            }
        }
        // An empty batch is just its delimiters.
        assert_eq!(headers(&batch(&[], 5)).len(), 2);
    }
}
