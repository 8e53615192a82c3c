//! The TAP device: opened inside the target namespace with a virtio-net header
//! and checksum/segmentation offloads, so the namespace hands us 64 KB TCP
//! segments with a partial checksum even at MTU 1500: one read and one
//! checksum-free pass per 64 KB instead of per 1500 bytes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use thiserror::Error;

use crate::wire::VNET_HDR_LEN;

#[derive(Debug, Error)]
pub enum TapError {
    #[error(
        "cannot open /dev/net/tun: {0}; rlnet needs read/write access to it \
         (distributions ship it as mode 0666: run `chmod 0666 /dev/net/tun` as root)"
    )]
    TunAccess(nix::Error),
    #[error("cannot open /dev/net/tun: it does not exist; load the tun module (`modprobe tun`)")]
    TunMissing,
    #[error("cannot open /dev/net/tun: {0}")]
    TunOpen(nix::Error),
    #[error("TAP device {name} is busy: another process has it open ({err})")]
    Busy { name: String, err: nix::Error },
    #[error(
        "cannot create TAP device {name}: {err} (is there a non-TAP interface with that name?)"
    )]
    SetIff { name: String, err: nix::Error },
    #[error("cannot set the virtio-net header size on {name}: {err}")]
    VnetHdr { name: String, err: nix::Error },
    #[error("TAP name {0:?} is too long (15 characters at most)")]
    Name(String),
}

/// An open TAP queue. Frames carry a [`VNET_HDR_LEN`]-byte virtio-net header.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    offload: bool,
}

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// TUNSETIFF: make or attach the device `name` with `flags`.
fn set_iff(fd: &OwnedFd, name: &str, flags: libc::c_int) -> Result<(), nix::Error> {
    #[allow(clippy::cast_possible_truncation)] // the flags (0xd002 at most) fit a short
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: flags as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads a `struct ifreq` (name + flags); `req` has that
    // layout (40 bytes) and lives for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

impl Tap {
    /// Create (or attach to a persistent) TAP named `name` in the calling
    /// thread's network namespace.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        Self::open_telling(name).map(|(tap, _)| tap)
    }

    /// [`Tap::open`], and whether the TAP existed before: asked of
    /// TUNSETIFF itself (IFF_TUN_EXCL refuses an existing device, then it
    /// is attached), where a netlink look-up before cost a round trip on
    /// the way to ready.
    pub fn open_telling(name: &str) -> Result<(Tap, bool), TapError> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(TapError::Name(name.to_string()));
        }
        let path: &CStr = c"/dev/net/tun";
        let fd = open(
            path,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::Error::EACCES | nix::Error::EPERM => TapError::TunAccess(e),
            nix::Error::ENOENT | nix::Error::ENODEV | nix::Error::ENXIO => TapError::TunMissing,
            e => TapError::TunOpen(e),
        })?;

        let flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;
        let mut existed = false;
        let mut rc = set_iff(&fd, name, flags | libc::IFF_TUN_EXCL);
        if rc == Err(nix::Error::EBUSY) {
            existed = true;
            rc = set_iff(&fd, name, flags);
        }
        if let Err(err) = rc {
            return Err(if err == nix::Error::EBUSY {
                TapError::Busy {
                    name: name.to_string(),
                    err,
                }
            } else {
                TapError::SetIff {
                    name: name.to_string(),
                    err,
                }
            });
        }

        // A persistent TAP may have been left with another header size.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // 10 fits an int
        let hdr: libc::c_int = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one `int` through the pointer.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &hdr) };
        if rc < 0 {
            return Err(TapError::VnetHdr {
                name: name.to_string(),
                err: nix::Error::last(),
            });
        }

        // Tell the kernel we accept partial checksums and TCP GSO frames; the
        // namespace stack then sends 64 KB segments. Without it rlnet still
        // works, only slower, so a refusal is not fatal.
        let offload = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes the flags as the ioctl argument value.
        let rc = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                offload as libc::c_ulong,
            )
        };
        let offload = rc == 0;
        if !offload {
            log::warn!(
                "TAP {name}: offloads refused ({}); throughput will be lower",
                nix::Error::last()
            );
        }
        let tap = Tap {
            fd,
            name: name.to_string(),
            offload,
        };
        Ok((tap, existed))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Rebuild from an fd received from the namespace agent.
    pub fn from_fd(fd: OwnedFd, name: String, offload: bool) -> Tap {
        Tap { fd, name, offload }
    }

    /// Another handle on the same TAP queue, under `name`.
    pub fn try_clone(&self, name: &str) -> std::io::Result<Tap> {
        Ok(Tap {
            fd: self.fd.try_clone()?,
            name: name.to_string(),
            offload: self.offload,
        })
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Read one frame (virtio-net header first). `WouldBlock` when empty.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(self.fd.as_fd(), buf).map_err(io::Error::from)
    }

    /// Write one frame (virtio-net header first).
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        nix::unistd::write(self.fd.as_fd(), frame).map_err(io::Error::from)
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
