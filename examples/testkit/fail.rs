//! Failures, exit codes and the one-line results every command prints.

use std::fmt;
use std::io::{self, Write};
use std::time::Instant;

#[derive(Debug)]
pub enum Fail {
    Usage(String),
    Io(String),
    Timeout(String),
}

impl Fail {
    /// The exit status: 1 failure, 2 usage, 3 timeout.
    pub fn code(&self) -> i32 {
        match self {
            Fail::Io(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Timeout(_) => 3,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Usage(m) => write!(f, "{m} (see --help)"),
            Fail::Io(m) | Fail::Timeout(m) => f.write_str(m),
        }
    }
}

pub type Res<T> = Result<T, Fail>;

pub fn usage(msg: impl Into<String>) -> Fail {
    Fail::Usage(msg.into())
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub fn ioerr(what: impl fmt::Display, e: io::Error) -> Fail {
    if is_timeout(&e) {
        Fail::Timeout(format!("{what}: timed out"))
    } else {
        Fail::Io(format!("{what}: {e}"))
    }
}

pub fn die(f: &Fail) -> ! {
    eprintln!("testkit: {f}");
    std::process::exit(f.code())
}

/// One result line on stdout, flushed at once (tests wait for it).
pub fn emit(line: &str) {
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Milliseconds since `t0`, as results print them (`ms=`).
pub fn ms_since(t0: Instant) -> String {
    format!("{:.3}", t0.elapsed().as_secs_f64() * 1e3)
}

/// Exit status 0 if `ok`, else 1.
pub fn status(ok: bool) -> i32 {
    if ok { 0 } else { 1 }
}
