//! The client side of the API socket (docs/api.md, "Client side"): what
//! `rlnet port`, `rlnet network` and `rlnet attach|detach` use to talk to a
//! running instance.
//!
//! One request per connection, blocking, with one deadline for the whole
//! exchange: connect, write the request, shut down the write side, read the
//! answer to EOF. The messages are built and read here too, purely
//! ([`encode`], [`parse_reply`]), so they are unit-tested without a socket;
//! the exchange itself is tested against a fake server in tests/port_cli.rs.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::socket::MsgFlags;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::reply::{Entry, Status, to_body};
use super::request::{AttachRequest, Member, Verb, first_value};
use crate::forward::spec::Mode;
use crate::forward::spec::PublishSpec;
use crate::forward::table::RuleId;
use crate::sys::os;

/// How long a command waits for its answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer accepted. Only `list_hostfwd` grows (about 240 bytes per
/// rule, sent twice); this is far beyond any real table.
const MAX_REPLY: usize = 64 << 20;

/// Why a request got no usable answer. Every `Display` is one line.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the API socket {path}: {source} (is rlnet running with --api-socket {path}?)"
    )]
    Connect { path: String, source: io::Error },
    #[error("cannot send the request to the API socket {path}: {source}")]
    Send { path: String, source: io::Error },
    #[error("cannot read the answer from the API socket {path}: {source}")]
    Receive { path: String, source: io::Error },
    #[error("no answer from the API socket {path} within {secs} s")]
    Timeout { path: String, secs: f64 },
    #[error("the API socket {path} closed the connection without an answer")]
    NoAnswer { path: String },
    /// The server's refusal, or what is wrong with its answer.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// Sends `req` to the API socket at `path` and returns the success reply's
/// value; an error reply becomes [`ClientError::Reply`] with its `desc`
/// ([`ReplyError::Refused`]).
/// The whole exchange is bounded by `timeout`.
pub fn request(path: &Path, req: &ClientRequest, timeout: Duration) -> Result<Reply, ClientError> {
    request_fd(path, req, timeout).map(|(reply, _)| reply)
}

/// [`request`], also returning the first fd the answer carried
/// (SCM_RIGHTS; `network_userns` answers with one).
pub fn request_fd(
    path: &Path,
    req: &ClientRequest,
    timeout: Duration,
) -> Result<(Reply, Option<OwnedFd>), ClientError> {
    let show = || path.display().to_string();
    let timed_out = || ClientError::Timeout {
        path: show(),
        secs: timeout.as_secs_f64(),
    };
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: show(),
        source,
    })?;
    let sent = send(&mut stream, &encode(req), timeout);
    if sent.as_ref().is_err_and(is_timeout) {
        return Err(timed_out());
    }
    // A server may answer and close before it has read everything (a
    // request it refuses as too large): a failed write still has an answer
    // worth reading, so the write error is reported only if none comes.
    let mut fd = None;
    let answer = match read_to_eof(&mut stream, deadline, &mut fd) {
        Ok(bytes) => bytes,
        Err(e) if is_timeout(&e) => return Err(timed_out()),
        Err(source) => {
            return Err(match sent {
                Err(source) => ClientError::Send {
                    path: show(),
                    source,
                },
                Ok(()) => ClientError::Receive {
                    path: show(),
                    source,
                },
            });
        }
    };
    if answer.is_empty() {
        return Err(match sent {
            Err(source) => ClientError::Send {
                path: show(),
                source,
            },
            Ok(()) => ClientError::NoAnswer { path: show() },
        });
    }
    Ok((parse_reply(&answer)?, fd))
}

fn send(stream: &mut UnixStream, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(bytes)?;
    stream.shutdown(Shutdown::Write)
}

/// Reads until EOF, giving up at `deadline` (not per read: a server that
/// trickles bytes cannot stretch it).
/// The first fd passed with the answer goes to `fd`; any more are closed.
fn read_to_eof(
    stream: &mut UnixStream,
    deadline: Instant,
    fd: &mut Option<OwnedFd>,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match recv_with_fds(stream, &mut chunk, fd) {
            Ok(0) => return Ok(buf),
            Ok(n) if buf.len() + n > MAX_REPLY => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the answer is larger than {MAX_REPLY} bytes"),
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One read that also takes the fd a message carries.
fn recv_with_fds(
    stream: &UnixStream,
    chunk: &mut [u8],
    fd: &mut Option<OwnedFd>,
) -> io::Result<usize> {
    let (n, got) = os::recv_fd(stream.as_fd(), chunk, MsgFlags::empty())?;
    if fd.is_none() {
        *fd = got;
    }
    Ok(n)
}

/// A socket timeout shows up as EAGAIN (`WouldBlock`) on Linux.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What `rlnet port add|rm|ls` and `rlnet status` send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequest {
    AddPublish {
        specs: Vec<PublishSpec>,
        mode: Option<Mode>,
        to: Option<String>,
    },
    RemovePublish {
        ids: Vec<RuleId>,
    },
    ListHostfwd,
    Status,
    Attach(AttachRequest),
    Detach(Member),
    ListAttached,
    Shutdown {
        force: bool,
    },
    NetworkUserns,
}

/// The request as JSON plus a trailing newline (as Go's `json.Encoder`
/// writes, so the server sees what real clients send).
pub fn encode(req: &ClientRequest) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        execute: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        arguments: Option<Arguments<'a>>,
    }
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Arguments<'a> {
        Publish {
            publish: Vec<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            mode: Option<Mode>,
            #[serde(skip_serializing_if = "Option::is_none")]
            to: Option<&'a str>,
        },
        Ids {
            ids: &'a [RuleId],
        },
        Attach(&'a AttachRequest),
        Detach {
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pid: Option<u32>,
        },
        Force {
            force: bool,
        },
    }
    let (verb, arguments) = match req {
        ClientRequest::AddPublish { specs, mode, to } => (
            Verb::AddPublish,
            Some(Arguments::Publish {
                // Display round-trips through the spec parser.
                publish: specs.iter().map(PublishSpec::to_string).collect(),
                mode: *mode,
                to: to.as_deref(),
            }),
        ),
        ClientRequest::RemovePublish { ids } => (Verb::RemovePublish, Some(Arguments::Ids { ids })),
        ClientRequest::ListHostfwd => (Verb::ListHostfwd, None),
        ClientRequest::Status => (Verb::Status, None),
        ClientRequest::Attach(req) => (Verb::Attach, Some(Arguments::Attach(req))),
        ClientRequest::Detach(who) => (
            Verb::Detach,
            Some(match who {
                Member::Name(n) => Arguments::Detach {
                    name: Some(n),
                    pid: None,
                },
                Member::Pid(p) => Arguments::Detach {
                    name: None,
                    pid: Some(*p),
                },
            }),
        ),
        ClientRequest::ListAttached => (Verb::ListAttached, None),
        ClientRequest::Shutdown { force } => {
            (Verb::Shutdown, Some(Arguments::Force { force: *force }))
        }
        ClientRequest::NetworkUserns => (Verb::NetworkUserns, None),
    };
    let mut out = to_body(&Envelope {
        execute: verb.as_str(),
        arguments,
    });
    out.push(b'\n');
    out
}

/// A success reply's `return` value (for slirp4netns's unwrapped
/// `list_hostfwd` answer, the whole object).
pub type Reply = Value;

/// Why a reply is not the answer asked for: the server's refusal, or an
/// answer of the wrong shape. Every `Display` is one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// The server's error `desc`, verbatim.
    #[error("{0}")]
    Refused(String),
    /// Not a reply at all (the start of what came).
    #[error("unexpected reply: {0}")]
    Malformed(String),
    /// An error reply without a `desc`.
    #[error("unexpected error reply: {0}")]
    NoDesc(String),
    #[error("unexpected reply: no ids in {0}")]
    NoIds(String),
    #[error("unexpected reply: {got} ids for {want} specs in {reply}")]
    IdCount {
        got: usize,
        want: usize,
        reply: String,
    },
    #[error("unexpected reply: no entries in {0}")]
    NoEntries(String),
    /// serde's words for the entry that does not fit [`Entry`].
    #[error("unexpected list entry: {0}")]
    Entry(String),
    #[error("unexpected status reply: {0}")]
    Status(String),
    /// The entries could not be printed as JSON again.
    #[error("cannot print the entries: {0}")]
    Print(String),
}

/// Reads a reply: `{"error":{"desc":D}}` → [`ReplyError::Refused`] with D;
/// success → the value.
pub fn parse_reply(bytes: &[u8]) -> Result<Reply, ReplyError> {
    let Some(Value::Object(mut obj)) = first_value(bytes) else {
        return Err(ReplyError::Malformed(snippet(bytes)));
    };
    if let Some(err) = obj.get("error") {
        return Err(match err.get("desc").and_then(Value::as_str) {
            Some(desc) => ReplyError::Refused(desc.to_string()),
            None => ReplyError::NoDesc(snippet(bytes)),
        });
    }
    if let Some(ret) = obj.remove("return") {
        return Ok(ret);
    }
    if obj.contains_key("entries") {
        return Ok(Value::Object(obj));
    }
    Err(ReplyError::Malformed(snippet(bytes)))
}

/// The ids of an `add_publish` (`ids`) or `add_hostfwd` (`id`) reply.
pub fn reply_ids(reply: &Reply) -> Result<Vec<RuleId>, ReplyError> {
    let bad = || ReplyError::NoIds(reply.to_string());
    if let Some(id) = reply.get("id") {
        return id.as_u64().map(|id| vec![id]).ok_or_else(bad);
    }
    let list = reply.get("ids").and_then(Value::as_array).ok_or_else(bad)?;
    list.iter().map(|v| v.as_u64().ok_or_else(bad)).collect()
}

/// The entries of a `list_hostfwd` reply.
pub fn reply_entries(reply: &Reply) -> Result<Vec<Entry>, ReplyError> {
    let entries = reply
        .get("entries")
        .ok_or_else(|| ReplyError::NoEntries(reply.to_string()))?;
    Vec::<Entry>::deserialize(entries).map_err(|e| ReplyError::Entry(e.to_string()))
}

/// The status of a `status` reply.
pub fn reply_status(reply: &Reply) -> Result<Status, ReplyError> {
    Status::deserialize(reply).map_err(|e| ReplyError::Status(e.to_string()))
}

/// The start of a reply for an error message, readable whatever it holds.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    if text.trim().is_empty() {
        "(empty)".to_string()
    } else {
        format!("{:?}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reply::{ok_empty, ok_id, ok_ids};
    use crate::api::request::{ApiError, Framing, Request, framing, parse_request};
    use crate::api::testing::{plan, spec};

    #[test]
    fn client_encoding_is_exact_and_round_trips() {
        let add = ClientRequest::AddPublish {
            specs: vec![spec("8080:80"), spec("[::1]:9000-9009:9000-9009/udp")],
            mode: Some(Mode::Splice),
            to: Some("db".into()),
        };
        assert_eq!(
            String::from_utf8(encode(&add)).unwrap(),
            "{\"execute\":\"add_publish\",\"arguments\":{\"publish\":[\"8080:80/tcp\",\
             \"[::1]:9000-9009:9000-9009/udp\"],\"mode\":\"splice\",\"to\":\"db\"}}\n"
        );
        let plain = ClientRequest::AddPublish {
            specs: vec![spec("127.0.0.1:1:2")],
            mode: None,
            to: None,
        };
        assert_eq!(
            encode(&plain),
            b"{\"execute\":\"add_publish\",\"arguments\":{\"publish\":[\"127.0.0.1:1:2/tcp\"]}}\n"
        );
        let rm = ClientRequest::RemovePublish { ids: vec![1, 2] };
        assert_eq!(
            encode(&rm),
            b"{\"execute\":\"remove_publish\",\"arguments\":{\"ids\":[1,2]}}\n"
        );
        assert_eq!(
            encode(&ClientRequest::ListHostfwd),
            b"{\"execute\":\"list_hostfwd\"}\n"
        );
        assert_eq!(
            encode(&ClientRequest::Status),
            b"{\"execute\":\"status\"}\n"
        );
        for (c, want) in [
            (
                add,
                Request::AddPublish {
                    specs: vec![spec("8080:80"), spec("[::1]:9000-9009:9000-9009/udp")],
                    mode: Some(Mode::Splice),
                    to: Some("db".into()),
                },
            ),
            (rm, Request::RemovePublish { ids: vec![1, 2] }),
            (ClientRequest::ListHostfwd, Request::ListHostfwd),
            (ClientRequest::Status, Request::Status),
            (ClientRequest::NetworkUserns, Request::NetworkUserns),
        ] {
            let bytes = encode(&c);
            assert_eq!(framing(&bytes), Framing::Ready);
            assert_eq!(parse_request(&bytes, &plan()), Ok(want));
        }
    }

    #[test]
    fn client_reads_replies() {
        assert_eq!(
            reply_ids(&parse_reply(&ok_ids(&[3, 4])).unwrap()),
            Ok(vec![3, 4])
        );
        assert_eq!(reply_ids(&parse_reply(&ok_id(7)).unwrap()), Ok(vec![7]));
        assert_eq!(ok_ids(&[3, 4]), br#"{"return":{"ids":[3,4]}}"#);
        assert_eq!(parse_reply(&ok_empty()), Ok(serde_json::json!({})));
        assert_eq!(
            parse_reply(&ApiError::UnknownExecute.body()),
            Err(ReplyError::Refused(
                "bad request: unknown execute".to_string()
            ))
        );
        assert!(reply_ids(&serde_json::json!({})).is_err());
        assert!(reply_ids(&serde_json::json!({"ids": ["1"]})).is_err());
        assert!(reply_entries(&serde_json::json!({})).is_err());
        assert!(reply_status(&serde_json::json!({"pid": 1})).is_err());
        for bad in [&b""[..], b"garbage", b"[1]", b"{}", b"{\"error\":42}"] {
            let e = parse_reply(bad).unwrap_err().to_string();
            assert!(e.starts_with("unexpected"), "{e}");
        }
        // Replies from slirp4netns itself (no trailing newline, one object).
        assert_eq!(
            parse_reply(
                br#"{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}"#
            ),
            Err(ReplyError::Refused(
                "bad request: add_hostfwd: slirp_add_hostfwd failed".to_string()
            ))
        );
    }
}
