//! What a TCP stream command does (`MODE`: sink, source, send, recv, echo,
//! halfclose-a/-b, hold) and the result line it prints.

use crate::args::parse_spec;
use crate::fail::{Res, emit, usage};
use crate::stream::{Digest, Verifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sink,
    Source,
    Send,
    Recv,
    Echo,
    HalfA,
    HalfB,
    Hold,
}

/// A mode: what to do, with (bytes, seed) for all but server `echo`/`hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub kind: Kind,
    pub bytes: u64,
    pub seed: u64,
}

pub fn parse_mode(s: &str, server: bool) -> Res<Mode> {
    let (name, p) = parse_spec(s)?;
    let kind = match (name, server) {
        ("sink", true) => Kind::Sink,
        ("source", true) => Kind::Source,
        ("send", false) => Kind::Send,
        ("recv", false) => Kind::Recv,
        ("echo", _) => Kind::Echo,
        ("halfclose-a", _) => Kind::HalfA,
        ("halfclose-b", _) => Kind::HalfB,
        ("hold", true) => Kind::Hold,
        _ => {
            let side = if server { "server" } else { "client" };
            return Err(usage(format!("unknown {side} mode {s:?}")));
        }
    };
    let bare = server && matches!(kind, Kind::Echo | Kind::Hold);
    match (p, bare) {
        (None, true) => Ok(Mode {
            kind,
            bytes: 0,
            seed: 0,
        }),
        (Some((bytes, seed)), false) => Ok(Mode { kind, bytes, seed }),
        (Some(_), true) => Err(usage(format!("mode {name} takes no BYTES:SEED"))),
        (None, false) => Err(usage(format!("mode {name} needs BYTES:SEED"))),
    }
}

/// The result line: `ok=1 bytes= digest= [tx_digest=] EXTRA` or
/// `ok=0 bytes= first_bad= EXTRA`.
pub fn report(v: &Verifier, tx: Option<&Digest>, extra: &str) -> bool {
    match v.bad() {
        None => {
            let tx = tx
                .map(|d| format!(" tx_digest={:016x}", d.finish()))
                .unwrap_or_default();
            emit(&format!(
                "ok=1 bytes={} digest={:016x}{tx} {extra}",
                v.total,
                v.digest.finish()
            ));
            true
        }
        Some(at) => {
            emit(&format!("ok=0 bytes={} first_bad={at} {extra}", v.total));
            false
        }
    }
}

/// The result line of a side that only sent (or echoed): `ok=1 bytes=
/// digest= EXTRA`.
pub fn report_sent(bytes: u64, d: &Digest, extra: &str) -> bool {
    emit(&format!(
        "ok=1 bytes={bytes} digest={:016x} {extra}",
        d.finish()
    ));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_addresses() {
        let m = parse_mode("sink:1073741824:7", true).unwrap();
        assert_eq!(
            m,
            Mode {
                kind: Kind::Sink,
                bytes: 1 << 30,
                seed: 7
            }
        );
        assert_eq!(parse_mode("send:1g:7", false).unwrap().bytes, 1 << 30);
        assert_eq!(parse_mode("recv:64k:0", false).unwrap().bytes, 65536);
        assert_eq!(parse_mode("echo", true).unwrap().kind, Kind::Echo);
        assert_eq!(parse_mode("echo:10:1", false).unwrap().kind, Kind::Echo);
        assert_eq!(
            parse_mode("halfclose-b:1m:5", true).unwrap(),
            Mode {
                kind: Kind::HalfB,
                bytes: 1 << 20,
                seed: 5
            }
        );
        for bad in [
            "sink",
            "sink:1",
            "sink:x:1",
            "echo:1:2",
            "echo",
            "send:1:2:3",
            "hold:1:1",
            "bogus:1:1",
        ] {
            let server = !matches!(bad, "echo" | "send:1:2:3");
            assert!(parse_mode(bad, server).is_err(), "{bad}");
        }
        assert!(parse_mode("send:1:1", true).is_err());
        assert!(parse_mode("sink:1:1", false).is_err());
        assert_eq!(
            crate::net::canon("[::ffff:10.0.2.2]:5".parse().unwrap()).to_string(),
            "10.0.2.2:5"
        );
    }
}
