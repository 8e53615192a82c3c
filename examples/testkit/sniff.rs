//! `sniff IFNAME`: count frames arriving on an interface that carry the
//! spoof marker, until the end marker arrives.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Instant;

use socket2::SockRef;

use crate::Command;
use crate::args::Args;
use crate::fail::{Fail, Res, emit, ioerr};
use crate::packet::packet_socket_proto;
use crate::spoof::{SPOOF_END, SPOOF_MARK};

pub const COMMAND: Command = Command::new("sniff", SYNTAX, HELP, 1..=1, run);

const SYNTAX: &str = "sniff IFNAME";

const HELP: &str = "  sniff IFNAME                      print `listening`, count frames arriving on
        IFNAME carrying the spoof marker until an end marker arrives;
        prints `spoofed=N`
";

#[derive(Clone, Copy)]
struct IgnoreOutgoing;

impl nix::sys::socket::SetSockOpt for IgnoreOutgoing {
    type Val = bool;
    fn set<F: AsFd>(&self, fd: &F, val: &bool) -> nix::Result<()> {
        let v: libc::c_int = (*val).into();
        #[allow(clippy::cast_possible_truncation)] // an int's size fits a socklen_t
        let len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` is a c_int that outlives the call; its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_fd().as_raw_fd(),
                libc::SOL_PACKET,
                23, // PACKET_IGNORE_OUTGOING
                (&raw const v).cast(),
                len,
            )
        };
        nix::errno::Errno::result(rc).map(drop)
    }
}

/// Markers travel in small frames; a bulk stream on the same link must not
/// overflow the socket and hide them, so the kernel keeps only frames of at
/// most 256 bytes (classic BPF: A = len; A > 256 ? drop : accept).
fn small_frames_only(fd: &OwnedFd) -> Res<()> {
    use socket2::SockFilter;
    let prog = [
        SockFilter::new(0x80, 0, 0, 0),      // ld #len
        SockFilter::new(0x25, 1, 0, 256),    // jgt #256
        SockFilter::new(0x06, 0, 0, 0xffff), // ret #0xffff
        SockFilter::new(0x06, 0, 0, 0),      // ret #0
    ];
    SockRef::from(fd)
        .attach_filter(&prog)
        .map_err(|e| Fail::Io(format!("SO_ATTACH_FILTER: {e}")))
}

fn run(a: &Args) -> Res<i32> {
    #[allow(clippy::cast_possible_truncation)] // ETH_P_ALL (3) fits a u16
    let proto = libc::ETH_P_ALL as u16;
    let fd = packet_socket_proto(&a.pos[0], a.timeout, proto)?;
    SockRef::from(&fd)
        .set_read_timeout(Some(a.timeout))
        .map_err(|e| ioerr("setsockopt", e))?;
    // Only what arrives: the victim's own replies (ICMP errors quoting a
    // marker) are not evidence.
    nix::sys::socket::setsockopt(&fd, IgnoreOutgoing, &true)
        .map_err(|e| Fail::Io(format!("PACKET_IGNORE_OUTGOING: {e}")))?;
    small_frames_only(&fd)?;
    emit("listening");
    let contains = |f: &[u8], m: &[u8]| f.windows(m.len()).any(|w| w == m);
    let t0 = Instant::now();
    let (mut spoofed, mut buf) = (0u64, vec![0u8; 65536]);
    loop {
        if t0.elapsed() > a.timeout {
            return Err(Fail::Timeout(format!(
                "sniff: no end marker (spoofed={spoofed})"
            )));
        }
        let n = match nix::sys::socket::recv(
            fd.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(Fail::Timeout(format!(
                    "sniff: no end marker (spoofed={spoofed})"
                )));
            }
            Err(e) => return Err(Fail::Io(format!("sniff: recv: {e}"))),
        };
        let f = &buf[..n];
        if contains(f, SPOOF_END) {
            break;
        }
        if contains(f, SPOOF_MARK) {
            spoofed += 1;
        }
    }
    emit(&format!("spoofed={spoofed}"));
    Ok(0)
}

// ---------------------------------------------------------------- DNS
