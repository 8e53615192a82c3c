//! The client side of the API socket against a fake API server: `rlnet port
//! add|rm|ls` as the built binary (the exact request bytes it sends, what it
//! prints and its exit status), and the library's `api::client::request`
//! that it and `rlnet network` use (replies, errors, deadline). No
//! namespaces needed: the server is a unix socket in a temporary directory.

mod common;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use rlnet::api::client::{self, ClientError};
use rlnet::api::{ClientRequest, encode};

use common::TempDir;
use common::cli::{rlnet, stderr, stdout};

/// A server for one connection: it reads the request to EOF, answers
/// `reply` and closes. Joining gives the request bytes, or `None` if no
/// client came within 10 s (so a test cannot hang on a client that failed).
struct FakeServer {
    thread: thread::JoinHandle<Option<Vec<u8>>>,
}

impl FakeServer {
    fn start(path: &Path, reply: &str) -> FakeServer {
        let listener = UnixListener::bind(path).expect("bind fake API socket");
        listener.set_nonblocking(true).unwrap();
        let reply = reply.as_bytes().to_vec();
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return None;
                        }
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut request = Vec::new();
            stream.read_to_end(&mut request).expect("read the request");
            stream.write_all(&reply).expect("write the reply");
            Some(request)
        });
        FakeServer { thread }
    }

    /// The request the client sent.
    fn request(self) -> String {
        let bytes = self
            .thread
            .join()
            .expect("fake server panicked")
            .expect("no client connected");
        String::from_utf8(bytes).expect("UTF-8 request")
    }
}

/// Runs `rlnet port ARGS` (with `-a SOCK` added) against a server answering
/// `reply`; returns the request it sent and its output.
fn exchange(args: &[&str], reply: &str) -> (String, Output) {
    let dir = TempDir::new("port-cli");
    let sock = dir.0.join("api.sock");
    let server = FakeServer::start(&sock, reply);
    let mut argv = vec!["port"];
    argv.extend_from_slice(args);
    argv.extend(["-a", sock.to_str().unwrap()]);
    let out = rlnet(&argv);
    (server.request(), out)
}

fn succeeds(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {:?}", stderr(o));
    assert_eq!(stderr(o), "");
    stdout(o)
}

/// Exit status 1, nothing on stdout, one stderr line `rlnet: ...`; returns it.
fn fails(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {:?}", stdout(o));
    assert_eq!(stdout(o), "");
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got {err:?}");
    assert!(lines[0].starts_with("rlnet: "), "{err:?}");
    lines[0].to_string()
}

#[test]
fn add_prints_the_new_ids() {
    let (req, out) = exchange(&["add", "8080:80"], r#"{"return":{"ids":[3]}}"#);
    assert_eq!(
        req,
        "{\"execute\":\"add_publish\",\"arguments\":{\"publish\":[\"8080:80/tcp\"]}}\n"
    );
    assert_eq!(succeeds(&out), "published 8080:80/tcp as id 3\n");

    let (req, out) = exchange(
        &[
            "add",
            "--mode",
            "splice",
            "127.0.0.1:5353:53/udp",
            "[::1]:8000-8010:9000-9010",
        ],
        r#"{"return":{"ids":[4,5]}}"#,
    );
    assert_eq!(
        req,
        "{\"execute\":\"add_publish\",\"arguments\":{\"publish\":[\"127.0.0.1:5353:53/udp\",\
         \"[::1]:8000-8010:9000-9010/tcp\"],\"mode\":\"splice\"}}\n"
    );
    assert_eq!(
        succeeds(&out),
        "published 127.0.0.1:5353:53/udp as id 4\npublished [::1]:8000-8010:9000-9010/tcp as id 5\n"
    );
}

#[test]
fn add_json_prints_the_return_value() {
    let (_, out) = exchange(
        &["add", "--json", "8080:80", "8081:81"],
        r#"{"return":{"ids":[3,4]}}"#,
    );
    assert_eq!(succeeds(&out), "{\"ids\":[3,4]}\n");
}

#[test]
fn rm_prints_the_removed_ids() {
    let (req, out) = exchange(&["rm", "3", "4"], r#"{"return":{}}"#);
    assert_eq!(
        req,
        "{\"execute\":\"remove_publish\",\"arguments\":{\"ids\":[3,4]}}\n"
    );
    assert_eq!(succeeds(&out), "removed 3\nremoved 4\n");
    let (_, out) = exchange(&["rm", "--json", "3"], r#"{"return":{}}"#);
    assert_eq!(succeeds(&out), "{}\n");
}

const ENTRIES: &str = r#"[{"id":1,"proto":"tcp","host_addr":"","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80},{"id":2,"proto":"udp","host_addr":"::1","host_port":8000,"guest_addr":"fd00::100","guest_port":9000,"host_port_end":8010,"guest_port_end":9010,"mode":"splice"}]"#;

#[test]
fn ls_prints_a_table() {
    let want = "\
ID  PROTO  HOST             NAMESPACE              MODE
1   tcp    *:8080           10.0.2.100:80          stack
2   udp    [::1]:8000-8010  [fd00::100]:9000-9010  splice
";
    // rlnet's answer carries the entries twice; slirp4netns's only at the top.
    for reply in [
        format!(r#"{{"return":{{"entries":{ENTRIES}}},"entries":{ENTRIES}}}"#),
        format!(r#"{{"entries":{ENTRIES}}}"#),
    ] {
        let (req, out) = exchange(&["ls"], &reply);
        assert_eq!(req, "{\"execute\":\"list_hostfwd\"}\n");
        assert_eq!(succeeds(&out), want);
    }
    let (_, out) = exchange(&["ls"], r#"{"return":{"entries":[]},"entries":[]}"#);
    assert_eq!(succeeds(&out), "ID  PROTO  HOST  NAMESPACE  MODE\n");
}

#[test]
fn ls_json_prints_the_entries() {
    let reply = format!(r#"{{"return":{{"entries":{ENTRIES}}},"entries":{ENTRIES}}}"#);
    let (_, out) = exchange(&["ls", "--json"], &reply);
    assert_eq!(succeeds(&out), format!("{ENTRIES}\n"));
}

#[test]
fn an_api_error_is_its_desc() {
    let desc = "bad request: add_publish: host port 8080/tcp (in 8080:80/tcp) is already \
                published by rule 1 (8080:80/tcp)";
    let (_, out) = exchange(
        &["add", "8080:80"],
        &format!(r#"{{"error":{{"desc":"{desc}"}}}}"#),
    );
    assert_eq!(fails(&out), format!("rlnet: {desc}"));
    let (_, out) = exchange(
        &["rm", "7"],
        r#"{"error":{"desc":"bad request: remove_publish: no rule with id 7"}}"#,
    );
    assert_eq!(
        fails(&out),
        "rlnet: bad request: remove_publish: no rule with id 7"
    );
    let (_, out) = exchange(&["ls"], "not json");
    assert!(fails(&out).starts_with("rlnet: unexpected reply"));
}

#[test]
fn no_server_is_one_line() {
    let dir = TempDir::new("port-cli");
    let sock = dir.0.join("api.sock");
    let path = sock.to_str().unwrap();
    let hint = format!("(is rlnet running with --api-socket {path}?)");
    // Missing, then a socket file nobody listens on.
    let line = fails(&rlnet(&["port", "ls", "-a", path]));
    assert!(
        line.starts_with(&format!("rlnet: cannot connect to the API socket {path}: ")),
        "{line}"
    );
    assert!(line.ends_with(&hint), "{line}");
    drop(UnixListener::bind(&sock).unwrap());
    let line = fails(&rlnet(&["port", "add", "-a", path, "8080:80"]));
    assert!(line.ends_with(&hint), "{line}");
}

#[test]
fn bad_arguments_fail_before_connecting() {
    // No server here: each case must fail in parsing.
    for (args, needle) in [
        (
            &["port", "add", "-a", "/nonexistent/s", "8080"][..],
            "\"8080\"",
        ),
        (&["port", "rm", "-a", "/nonexistent/s", "x"], "\"x\""),
        (&["port", "ls"], "--api-socket"),
        (
            &[
                "port",
                "add",
                "-a",
                "/nonexistent/s",
                "--mode",
                "fast",
                "1:1",
            ],
            "\"fast\"",
        ),
        (&["port", "frob", "-a", "/nonexistent/s"], "\"frob\""),
    ] {
        let line = fails(&rlnet(args));
        assert!(line.contains(needle), "{args:?}: {line}");
        assert!(!line.contains("cannot connect"), "{args:?}: {line}");
    }
}

// ------------------------------------------------- api::client::request

#[test]
fn client_round_trip() {
    let dir = TempDir::new("port-cli");
    let server = FakeServer::start(&dir.0.join("api.sock"), r#"{"return":{"ids":[3]}}"#);
    let req = ClientRequest::AddPublish {
        specs: vec!["8080:80".parse().unwrap()],
        mode: None,
        to: None,
    };
    let reply = client::request(&dir.0.join("api.sock"), &req, client::TIMEOUT).unwrap();
    assert_eq!(reply, serde_json::json!({"ids": [3]}));
    assert_eq!(server.request().into_bytes(), encode(&req));
}

#[test]
fn client_error_reply_is_its_desc() {
    let dir = TempDir::new("port-cli");
    let server = FakeServer::start(
        &dir.0.join("api.sock"),
        r#"{"error":{"desc":"bad request: unknown execute"}}"#,
    );
    let e = client::request(
        &dir.0.join("api.sock"),
        &ClientRequest::Status,
        client::TIMEOUT,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "bad request: unknown execute");
    server.request();
}

#[test]
fn client_missing_and_refused_sockets() {
    let dir = TempDir::new("port-cli");
    let path = dir.0.join("api.sock");
    let e = client::request(&path, &ClientRequest::ListHostfwd, client::TIMEOUT).unwrap_err();
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
    let e = client::request(&path, &ClientRequest::ListHostfwd, client::TIMEOUT).unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn client_silent_server_times_out() {
    let dir = TempDir::new("port-cli");
    let l = UnixListener::bind(dir.0.join("api.sock")).unwrap();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    // Holds the connection open, answering nothing, until the client gave up.
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let _ = wait.recv_timeout(Duration::from_secs(10));
        drop(s);
    });
    let start = Instant::now();
    let e = client::request(
        &dir.0.join("api.sock"),
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
            dir.0.join("api.sock").display()
        )
    );
    server.join().unwrap();
}

#[test]
fn client_closed_without_answer() {
    let dir = TempDir::new("port-cli");
    let server = FakeServer::start(&dir.0.join("api.sock"), "");
    let e = client::request(
        &dir.0.join("api.sock"),
        &ClientRequest::ListHostfwd,
        client::TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(e, ClientError::NoAnswer { .. }), "{e:?}");
    server.request();
    let junk = dir.0.join("b.sock");
    let server = FakeServer::start(&junk, "junk");
    let e = client::request(&junk, &ClientRequest::ListHostfwd, client::TIMEOUT).unwrap_err();
    assert!(e.to_string().starts_with("unexpected reply"), "{e}");
    server.request();
}
