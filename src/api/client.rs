//! The client side of the API socket (docs/api.md, "Client side"): what
//! `rlnet port add|rm|ls` uses to talk to a running instance.
//!
//! One request per connection, blocking, with one deadline for the whole
//! exchange: connect, write the request, shut down the write side, read the
//! answer to EOF. The messages themselves are [`super::protocol`]'s.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::protocol::{ClientRequest, Reply, encode, parse_reply};

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
    /// The server's error `desc`, verbatim, or what is wrong with its answer.
    #[error("{0}")]
    Reply(String),
}

/// Sends `req` to the API socket at `path` and returns the success reply's
/// value; an error reply becomes [`ClientError::Reply`] with its `desc`.
/// The whole exchange is bounded by `timeout`.
pub fn request(path: &Path, req: &ClientRequest, timeout: Duration) -> Result<Reply, ClientError> {
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
    let answer = match read_to_eof(&mut stream, deadline) {
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
    parse_reply(&answer).map_err(ClientError::Reply)
}

fn send(stream: &mut UnixStream, bytes: &[u8], timeout: Duration) -> io::Result<()> {
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(bytes)?;
    stream.shutdown(Shutdown::Write)
}

/// Reads until EOF, giving up at `deadline` (not per read: a server that
/// trickles bytes cannot stretch it).
fn read_to_eof(stream: &mut UnixStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
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

/// A socket timeout shows up as EAGAIN (`WouldBlock`) on Linux.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::thread;

    /// A fresh directory for one test's socket, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("rlnet-client-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).expect("create temp dir");
            TempDir(dir)
        }

        fn sock(&self) -> PathBuf {
            self.0.join("api.sock")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Serves one connection: reads the request to EOF, answers `reply`,
    /// and returns what it read.
    fn serve_once(l: UnixListener, reply: &'static [u8]) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).expect("read request");
            s.write_all(reply).expect("write reply");
            req
        })
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("round-trip");
        let server = serve_once(
            UnixListener::bind(dir.sock()).unwrap(),
            br#"{"return":{"ids":[3]}}"#,
        );
        let req = ClientRequest::AddPublish {
            specs: vec!["8080:80".parse().unwrap()],
            mode: None,
            to: None,
        };
        let reply = request(&dir.sock(), &req, TIMEOUT).unwrap();
        assert_eq!(reply, serde_json::json!({"ids": [3]}));
        assert_eq!(server.join().unwrap(), encode(&req));
    }

    #[test]
    fn error_reply_is_its_desc() {
        let dir = TempDir::new("error-reply");
        let server = serve_once(
            UnixListener::bind(dir.sock()).unwrap(),
            br#"{"error":{"desc":"bad request: unknown execute"}}"#,
        );
        let e = request(&dir.sock(), &ClientRequest::Status, TIMEOUT).unwrap_err();
        assert_eq!(e.to_string(), "bad request: unknown execute");
        server.join().unwrap();
    }

    #[test]
    fn missing_and_refused_sockets() {
        let dir = TempDir::new("refused");
        let path = dir.sock();
        let e = request(&path, &ClientRequest::ListHostfwd, TIMEOUT).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
        assert!(
            text.starts_with(&format!(
                "cannot connect to the API socket {}: ",
                path.display()
            )),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                "(is rlnet running with --api-socket {}?)",
                path.display()
            )),
            "{text}"
        );
        // A socket file nobody listens on any more.
        drop(UnixListener::bind(&path).unwrap());
        let e = request(&path, &ClientRequest::ListHostfwd, TIMEOUT).unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn silent_server_times_out() {
        let dir = TempDir::new("silent");
        let l = UnixListener::bind(dir.sock()).unwrap();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        // Holds the connection open, answering nothing, until the client gave up.
        let server = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let _ = wait.recv_timeout(Duration::from_secs(10));
            drop(s);
        });
        let start = Instant::now();
        let e = request(
            &dir.sock(),
            &ClientRequest::ListHostfwd,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(200));
        done.send(()).unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "no answer from the API socket {} within 0.2 s",
                dir.sock().display()
            )
        );
        server.join().unwrap();
    }

    #[test]
    fn closed_without_answer() {
        let dir = TempDir::new("closed");
        let server = serve_once(UnixListener::bind(dir.sock()).unwrap(), b"");
        let e = request(&dir.sock(), &ClientRequest::ListHostfwd, TIMEOUT).unwrap_err();
        assert!(matches!(e, ClientError::NoAnswer { .. }), "{e:?}");
        server.join().unwrap();
        let server = serve_once(UnixListener::bind(dir.0.join("b.sock")).unwrap(), b"junk");
        let e = request(&dir.0.join("b.sock"), &ClientRequest::ListHostfwd, TIMEOUT).unwrap_err();
        assert!(e.to_string().starts_with("unexpected reply"), "{e}");
        server.join().unwrap();
    }
}
