//! Forked helpers the event loop does not wait for. A [`Helper`] is watched
//! through its pidfd, which turns readable once the child has exited, and
//! reaped then without blocking. One still running when it is dropped is
//! killed and reaped on the spot (after the loop: at exit, or on an error
//! path).
//!
//! [`drop_aside`] uses one to let the kernel's teardown of a closed file
//! happen in a child: closing the last fd of a TAP deletes the device, which
//! waits for the network stack (milliseconds to tens of milliseconds, during
//! which no frame would be forwarded).

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::os;

#[derive(Debug)]
pub struct Helper {
    pid: Pid,
    pidfd: OwnedFd,
    reaped: bool,
}

impl Helper {
    /// Watch the child `pid` the caller just forked; if its pidfd cannot be
    /// had, the child is killed and reaped.
    pub(super) fn watch(pid: Pid) -> std::io::Result<Helper> {
        match os::pidfd_open(pid.as_raw()) {
            Ok(pidfd) => Ok(Helper {
                pid,
                pidfd,
                reaped: false,
            }),
            Err(e) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
                Err(e)
            }
        }
    }

    /// Readable once the helper has exited.
    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    /// Reap the helper if it has exited; None while it still runs. Never
    /// blocks.
    pub fn try_reap(&mut self) -> Option<nix::Result<WaitStatus>> {
        if self.reaped {
            return None;
        }
        match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            other => {
                self.reaped = true;
                Some(other)
            }
        }
    }

    /// Wait for the helper to exit.
    pub fn wait(&mut self) -> nix::Result<WaitStatus> {
        let status = waitpid(self.pid, None);
        self.reaped = true;
        status
    }

    /// Its process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Stop watching it, and leave it running: someone else reaps it.
    pub fn release(mut self) {
        self.reaped = true;
    }

    /// Give up on it: SIGKILL. Its pidfd turns readable when it is gone.
    pub fn kill(&self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Drop `owner`, whose fds this process holds the last references to, so
/// that the kernel's work on closing them happens in a forked helper: the
/// child keeps copies until this process has dropped its own, then exits,
/// which closes the last ones. Returns the helper to watch, or None when no
/// child could be forked (then `owner` was dropped here, the slow way).
pub fn drop_aside<T>(owner: T) -> Option<Helper> {
    let Ok((hold_r, hold_w)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        drop(owner);
        return None;
    };
    match os::fork() {
        Ok(None) => {
            // The child: wait until the parent has let go (EOF), then exit.
            drop(hold_w);
            let mut b = [0u8; 1];
            while let Err(nix::Error::EINTR) = nix::unistd::read(hold_r.as_fd(), &mut b) {}
            os::exit_now(0)
        }
        Ok(Some(child)) => {
            drop(hold_r);
            drop(owner);
            drop(hold_w);
            Helper::watch(child).ok()
        }
        Err(_) => {
            drop(owner);
            None
        }
    }
}
