//! Sends an nf_tables batch (built by `wire/nft.rs`) on a NETLINK_NETFILTER
//! socket in the calling thread's network namespace and reads the kernel's
//! answers: no `nft` binary at run time. The kernel commits a batch whole
//! or not at all; this says which message it refused and why. Bytes in:
//! Sys knows nothing of the guard's model.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::{TimeVal, TimeValLike};

/// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_ACK: u16 = 0x4;
/// In an NLMSG_ERROR's flags: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
/// nfnetlink's batch delimiters and the nf_tables subsystem.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// How long one receive waits for the kernel (it answers a batch at once;
/// this only bounds a kernel or namespace gone wrong).
const RECV_TIMEOUT_S: i64 = 5;
/// Upper bounds so a confused peer cannot keep us looping.
const MAX_RECVS: usize = 4096;
const MAX_MESSAGES: usize = 65536;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("not an nf_tables batch: {0}")]
    Batch(String),
    #[error("cannot open a NETLINK_NETFILTER socket (no nf_tables?): {0}")]
    Socket(#[source] io::Error),
    #[error("cannot {op} on the NETLINK_NETFILTER socket: {source}")]
    Io { op: &'static str, source: io::Error },
    /// `index` is the message's place in the batch: 0 is BATCH_BEGIN (the
    /// kernel refused the batch itself, e.g. EPERM, or nf_tables missing),
    /// so the batch's first operation is 1.
    #[error("nf_tables refused message {index} of the batch ({what}): {}{}", .errno.desc(), .detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Kernel {
        index: usize,
        what: &'static str,
        errno: Errno,
        detail: Option<String>,
    },
    #[error("nf_tables acknowledged {got} of {want} messages, then nothing for {RECV_TIMEOUT_S} s")]
    Timeout { got: usize, want: usize },
    #[error("unexpected reply from nf_tables: {0}")]
    Protocol(String),
}

/// One message of the batch being sent.
struct Sent {
    seq: u32,
    ty: u16,
    ack: bool,
}

/// Applies `batch` in the calling thread's network namespace: sends it and
/// waits for the ACK of every message that asked for one. Returns the
/// first error the kernel reports (then nothing of the batch is applied).
pub fn apply(batch: &[u8]) -> Result<(), NftError> {
    let sent = messages(batch)?;
    let want = sent.iter().filter(|m| m.ack).count();
    let sock = open()?;
    let n = sock.send(batch, 0).map_err(|source| NftError::Io {
        op: "send the batch",
        source,
    })?;
    if n != batch.len() {
        return Err(NftError::Protocol(format!(
            "sent {n} of {} bytes",
            batch.len()
        )));
    }
    let mut rx = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut seen = 0;
    for _ in 0..MAX_RECVS {
        if got == want {
            return Ok(());
        }
        let n = match sock.recv(&mut &mut rx[..], libc::MSG_TRUNC) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(NftError::Timeout { got, want });
            }
            Err(source) => {
                return Err(NftError::Io {
                    op: "read the answers",
                    source,
                });
            }
        };
        let data = rx
            .get(..n)
            .ok_or_else(|| NftError::Protocol(format!("answer of {n} bytes truncated")))?;
        for m in split(data).map_err(NftError::Protocol)? {
            seen += 1;
            if seen > MAX_MESSAGES {
                return Err(NftError::Protocol("too many answers".into()));
            }
            if m.ty == NLMSG_ERROR {
                got += ack(&sent, m.flags, m.body)?;
            }
        }
    }
    Err(NftError::Timeout { got, want })
}

/// A NETLINK_NETFILTER socket talking to the kernel, with bounded reads.
fn open() -> Result<Socket, NftError> {
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NftError::Socket)?;
    sock.bind_auto().map_err(NftError::Socket)?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(NftError::Socket)?;
    // Capped ACKs keep answers small; extended ACKs add the kernel's
    // reason. Both optional: older kernels answer without them.
    let _ = sock.set_cap_ack(true);
    let _ = sock.set_ext_ack(true);
    setsockopt(&sock, ReceiveTimeout, &TimeVal::seconds(RECV_TIMEOUT_S))
        .map_err(|e| NftError::Socket(e.into()))?;
    Ok(sock)
}

/// One NLMSG_ERROR: 1 if it acknowledges a message of the batch, 0 if it
/// answers something else; the kernel's error if it reports one.
fn ack(sent: &[Sent], flags: u16, body: &[u8]) -> Result<usize, NftError> {
    let Some(&[c0, c1, c2, c3]) = body.get(..4) else {
        return Err(NftError::Protocol(format!(
            "error message of {} bytes",
            body.len()
        )));
    };
    let code = i32::from_ne_bytes([c0, c1, c2, c3]);
    // The header of the message it answers: its sequence number.
    let Some(&[s0, s1, s2, s3]) = body.get(12..16) else {
        return Err(NftError::Protocol(format!(
            "error message of {} bytes",
            body.len()
        )));
    };
    let seq = u32::from_ne_bytes([s0, s1, s2, s3]);
    let Some(index) = sent.iter().position(|m| m.seq == seq) else {
        return Ok(0); // not ours (a stale answer)
    };
    if code == 0 {
        return Ok(1);
    }
    // With capped ACKs the attributes follow the original header.
    let detail = if flags & NLM_F_ACK_TLVS != 0 {
        ext_ack_msg(body.get(4 + NLMSG_HDRLEN..).unwrap_or_default())
    } else {
        None
    };
    Err(NftError::Kernel {
        index,
        what: name(sent[index].ty),
        errno: Errno::from_raw(code.saturating_neg()),
        detail,
    })
}

/// The messages of a batch: BATCH_BEGIN, nf_tables messages, BATCH_END.
fn messages(batch: &[u8]) -> Result<Vec<Sent>, NftError> {
    let out: Vec<Sent> = split(batch)
        .map_err(NftError::Batch)?
        .into_iter()
        .map(|m| Sent {
            seq: m.seq,
            ty: m.ty,
            ack: m.flags & NLM_F_ACK != 0,
        })
        .collect();
    let framed = out.len() >= 2
        && out[0].ty == NFNL_MSG_BATCH_BEGIN
        && out[out.len() - 1].ty == NFNL_MSG_BATCH_END
        && out[1..out.len() - 1]
            .iter()
            .all(|m| m.ty >> 8 == NFNL_SUBSYS_NFTABLES);
    if !framed {
        return Err(NftError::Batch(
            "not BATCH_BEGIN, nf_tables messages, BATCH_END".into(),
        ));
    }
    Ok(out)
}

/// A netlink message's header fields and its payload.
struct Msg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    body: &'a [u8],
}

/// The netlink messages in `data`.
fn split(mut data: &[u8]) -> Result<Vec<Msg<'_>>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let h = data
            .get(..NLMSG_HDRLEN)
            .ok_or_else(|| format!("{} bytes left, no header", data.len()))?;
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
        let len = usize::try_from(len).map_err(|e| e.to_string())?;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(format!("message length {len} of {} bytes", data.len()));
        }
        out.push(Msg {
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            body: &data[NLMSG_HDRLEN..len],
        });
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(out)
}

/// What a message of the batch was, for the error text.
fn name(ty: u16) -> &'static str {
    match ty {
        NFNL_MSG_BATCH_BEGIN => "the batch",
        NFNL_MSG_BATCH_END => "batch end",
        _ => match ty & 0xff {
            0 => "new table",
            3 => "new chain",
            5 => "delete chain",
            6 => "new rule",
            8 => "delete rules",
            _ => "nf_tables message",
        },
    }
}

/// The kernel's extended-ACK text (NLMSGERR_ATTR_MSG), if any.
fn ext_ack_msg(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([tlvs[0], tlvs[1]]));
        let ty = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        let value = tlvs.get(4..len)?;
        if ty == NLMSGERR_ATTR_MSG {
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::model::guard::{self, GuardMember, Op};
    use crate::sys::netlink::tests::in_netns;
    use crate::wire::nft::batch;

    fn member() -> GuardMember {
        GuardMember {
            port: "v7".into(),
            mac: [0x02, 0x89, 0x0a, 0x59, 0x00, 0x64],
            ip4: "10.89.0.100".parse().unwrap(),
            ip6: Some("fd00:89::100".parse().unwrap()),
            link_local: "fe80::89:aff:fe59:64".parse().unwrap(),
        }
    }

    /// Runs a command (iproute2, nft) in the calling thread's netns.
    fn run(cmd: &[&str]) -> String {
        let out = Command::new(cmd[0])
            .args(&cmd[1..])
            .output()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd:?}: {err}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply_ops(ops: &[Op]) -> Result<(), NftError> {
        apply(&batch(ops, 1))
    }

    /// `nft list table bridge rlnet`, if nft is installed.
    fn listing() -> Option<String> {
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        Some(run(&[nft, "list", "table", "bridge", guard::TABLE]))
    }

    #[test]
    fn the_guard_loads_on_a_bridge_and_goes_again() {
        in_netns("the_guard_loads_on_a_bridge_and_goes_again", || {
            run(&["ip", "link", "add", "br0", "type", "bridge"]);
            run(&[
                "ip", "link", "add", "v7", "type", "veth", "peer", "name", "m7",
            ]);
            run(&["ip", "link", "set", "v7", "master", "br0"]);
            let mut ops = guard::table();
            ops.extend(guard::add_member(&member()));
            apply_ops(&ops).unwrap();
            if let Some(text) = listing() {
                assert_eq!(text, EXPECTED, "nft reads back:\n{text}");
            }
            apply_ops(&guard::remove_member("v7")).unwrap();
            if let Some(text) = listing() {
                assert_eq!(text, "table bridge rlnet {\n}\n");
            }
            // The chains are gone: deleting them again is refused, at the
            // first flush (message 1), for a chain that does not exist.
            let again = apply_ops(&guard::remove_member("v7")).unwrap_err();
            assert!(
                matches!(
                    again,
                    NftError::Kernel {
                        index: 1,
                        errno: Errno::ENOENT,
                        ..
                    }
                ),
                "{again}"
            );
            // And the member can be guarded again.
            apply_ops(&guard::add_member(&member())).unwrap();
            apply_ops(&guard::remove_member("v7")).unwrap();
        });
    }

    #[test]
    fn a_refused_batch_names_its_message_and_leaves_nothing() {
        in_netns(
            "a_refused_batch_names_its_message_and_leaves_nothing",
            || {
                let mut ops = guard::table();
                ops.extend(guard::add_member(&member()));
                // A rule for a chain nobody made: the batch's last message.
                ops.push(Op::NewRule {
                    chain: "nope".into(),
                    exprs: Vec::new(),
                });
                let err = apply_ops(&ops).unwrap_err();
                let NftError::Kernel { index, errno, .. } = &err else {
                    panic!("{err}");
                };
                assert_eq!((*index, *errno), (ops.len(), Errno::ENOENT), "{err}");
                assert!(err.to_string().contains("new rule"), "{err}");
                // All or nothing: not even the table was made.
                let gone = apply_ops(&guard::remove_member("v7")).unwrap_err();
                assert!(
                    matches!(
                        gone,
                        NftError::Kernel {
                            errno: Errno::ENOENT,
                            ..
                        }
                    ),
                    "{gone}"
                );
            },
        );
    }

    #[test]
    fn what_is_not_a_batch_is_refused_before_sending() {
        // In a private netns all the same: nothing may reach the host's.
        in_netns("what_is_not_a_batch_is_refused_before_sending", || {
            assert!(matches!(apply(&[1, 2, 3]), Err(NftError::Batch(_))));
            assert!(matches!(apply(&[]), Err(NftError::Batch(_))));
            // Framed, but a message of another subsystem inside.
            let mut b = batch(&guard::table(), 1);
            b[20 + 5] = 0; // the table message's subsystem (type's high byte)
            assert!(matches!(apply(&b), Err(NftError::Batch(_))));
            // Unframed: the table message alone.
            let b = batch(&guard::table(), 1);
            assert!(matches!(
                apply(&b[20..b.len() - 20]),
                Err(NftError::Batch(_))
            ));
        });
    }

    /// What nft 1.0.6 reads back of `table()` + `add_member(member())`:
    /// the ruleset of docs/kernel-switching.md with its sets expanded (nft
    /// leaves out the `ether type` it infers, and calls MLD's type 132
    /// mld-listener-done).
    const EXPECTED: &str = r#"table bridge rlnet {
	chain v7 {
		type filter hook prerouting priority filter; policy accept;
		iifname != "v7" accept
		ether saddr != 02:89:0a:59:00:64 drop
		arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp saddr ether 02:89:0a:59:00:64 arp saddr ip 10.89.0.100 accept
		ip saddr 10.89.0.100 accept
		ether type ip6 goto v7_6
		drop
	}

	chain v7_6 {
		icmpv6 type nd-router-advert drop
		icmpv6 type nd-redirect drop
		ip6 saddr :: ip6 length 24 ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 0xfd000089000000000000000000000100 accept
		ip6 saddr :: ip6 length 24 ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 0xfe8000000000000000890afffe590064 accept
		ip6 saddr :: ip6 length 32 ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 0xfd000089000000000000000000000100 @th,192,8 0xe accept
		ip6 saddr :: ip6 length 32 ip6 nexthdr ipv6-icmp icmpv6 type nd-neighbor-solicit @th,64,128 0xfe8000000000000000890afffe590064 @th,192,8 0xe accept
		ip6 saddr :: ip6 length 8 ip6 nexthdr ipv6-icmp icmpv6 type nd-router-solicit accept
		ip6 saddr :: icmpv6 type mld-listener-query accept
		ip6 saddr :: icmpv6 type mld-listener-report accept
		ip6 saddr :: icmpv6 type mld-listener-done accept
		ip6 saddr :: icmpv6 type mld2-listener-report accept
		ip6 saddr fd00:89::100 goto v7_6s
		ip6 saddr fe80::89:aff:fe59:64 goto v7_6s
		drop
	}

	chain v7_6s {
		icmpv6 type nd-neighbor-advert @th,64,128 0xfd000089000000000000000000000100 goto v7_nd
		icmpv6 type nd-neighbor-advert @th,64,128 0xfe8000000000000000890afffe590064 goto v7_nd
		icmpv6 type nd-neighbor-advert drop
		icmpv6 type nd-neighbor-solicit goto v7_nd
		icmpv6 type nd-router-solicit goto v7_rs
		accept
	}

	chain v7_nd {
		ip6 length 24 ip6 nexthdr ipv6-icmp accept
		ip6 length 32 ip6 nexthdr ipv6-icmp @th,192,64 0x10102890a590064 accept
		ip6 length 32 ip6 nexthdr ipv6-icmp @th,192,64 0x20102890a590064 accept
		drop
	}

	chain v7_rs {
		ip6 length 8 ip6 nexthdr ipv6-icmp accept
		ip6 length 16 ip6 nexthdr ipv6-icmp @th,64,64 0x10102890a590064 accept
		drop
	}
}
"#;
}
