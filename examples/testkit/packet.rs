//! AF_PACKET sockets on an interface: raw frames out (inject, spoof) and
//! in (sniff), and the interface's MAC address and MTU.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use socket2::SockRef;

use crate::fail::{Fail, Res, ioerr, usage};

pub fn packet_socket(ifname: &str, t: Duration) -> Res<OwnedFd> {
    packet_socket_proto(ifname, t, 0)
}

/// A packet socket bound to `ifname`; `proto` 0 sends only, ETH_P_ALL
/// (in host order) also receives every frame.
pub fn packet_socket_proto(ifname: &str, t: Duration, proto: u16) -> Res<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|e| Fail::Io(format!("interface {ifname}: {e}")))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Fail::Io(format!("AF_PACKET socket: {e}")))?;
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| Fail::Io(format!("interface {ifname}: index {ifindex} out of range")))?;
    #[allow(clippy::cast_possible_truncation)] // AF_PACKET (17) fits a u16
    let family = libc::AF_PACKET as u16;
    #[allow(clippy::cast_possible_truncation)] // a sockaddr_ll's size fits a socklen_t
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let sll = libc::sockaddr_ll {
        sll_family: family,
        sll_protocol: proto.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: `sll` is a fully initialised sockaddr_ll that outlives the call,
    // the length passed is exactly its size, and `fd` is an open socket we own.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc != 0 {
        return Err(Fail::Io(format!(
            "bind AF_PACKET to {ifname}: {}",
            io::Error::last_os_error()
        )));
    }
    SockRef::from(&fd)
        .set_write_timeout(Some(t))
        .map_err(|e| ioerr("setsockopt", e))?;
    Ok(fd)
}

/// The interface's MAC address and MTU (ioctl: /sys may belong to another
/// network namespace).
pub fn if_info(fd: &OwnedFd, ifname: &str) -> Res<([u8; 6], usize)> {
    let err = |what: &str| Fail::Io(format!("{what} {ifname}: {}", io::Error::last_os_error()));
    if ifname.len() >= libc::IFNAMSIZ {
        return Err(usage(format!("interface name too long: {ifname:?}")));
    }
    // SAFETY: ifreq is plain old data (a name and a union of plain old data);
    // all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *d = libc::c_char::from_ne_bytes([*s]);
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated ifr_name and writes
    // ifr_hwaddr, both inside `req`, which is ours and outlives the call.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return Err(err("SIOCGIFHWADDR"));
    }
    // SAFETY: the ioctl succeeded, so the kernel initialised ifru_hwaddr.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mac: [u8; 6] = std::array::from_fn(|i| hw.sa_data[i].to_ne_bytes()[0]);
    // SAFETY: as above; SIOCGIFMTU writes ifru_mtu inside `req`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } != 0 {
        return Err(err("SIOCGIFMTU"));
    }
    // SAFETY: the ioctl succeeded, so the kernel initialised ifru_mtu.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok((mac, usize::try_from(mtu.max(68)).unwrap_or(68)))
}

/// Send one frame. Ok(None) when sent, Ok(Some(errno)) when the kernel
/// refused it; a full socket (the send timeout) fails.
pub fn send_frame(fd: &OwnedFd, f: &[u8], what: &str) -> Res<Option<nix::errno::Errno>> {
    match nix::sys::socket::send(fd.as_raw_fd(), f, nix::sys::socket::MsgFlags::empty()) {
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::EAGAIN) => Err(Fail::Timeout(format!("{what}: send timed out"))),
        Err(e) => Ok(Some(e)),
    }
}
