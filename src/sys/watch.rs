//! pasta mode's lifetime: exit when the `--netns` file goes away (Podman
//! unmounts and deletes it when the container stops, and never signals the
//! helper). An inotify watch on the file's directory, read by the event
//! loop when it turns readable: no polling. Set up before rlnet confines
//! itself (afterwards the path no longer resolves).

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WatchError {
    #[error(
        "cannot watch {path} for deletion: {err} (give --no-netns-quit to run without the watch)"
    )]
    Inotify { path: String, err: nix::Error },
    #[error("{0} has no directory to watch: give a path like /run/netns/NAME")]
    NoDirectory(String),
}

/// A watch on one file's directory, for that file's deletion.
#[derive(Debug)]
pub struct FileWatch {
    inotify: Inotify,
    name: OsString,
    /// Deleted (or renamed away) before the watch was in place.
    gone_already: bool,
}

impl FileWatch {
    /// Watch `path`'s directory for the deletion of `path`.
    pub fn new(path: &Path) -> Result<FileWatch, WatchError> {
        let show = || path.display().to_string();
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(WatchError::NoDirectory(show()));
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let err = |err| WatchError::Inotify { path: show(), err };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(err)?;
        let mask = AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        inotify.add_watch(dir, mask).map_err(err)?;
        // Checked after the watch exists, so a deletion in between is seen
        // one way or the other.
        let gone_already = std::fs::symlink_metadata(path).is_err();
        Ok(FileWatch {
            inotify,
            name: name.to_os_string(),
            gone_already,
        })
    }

    /// Drain the events: true once the file (or its directory) is gone.
    pub fn gone(&self) -> bool {
        if self.gone_already {
            return true;
        }
        let mut gone = false;
        // Bounded: each read returns what is queued; the queue is finite.
        for _ in 0..64 {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    gone |= events.iter().any(|e| {
                        let dir_gone = e.mask.intersects(
                            AddWatchFlags::IN_DELETE_SELF
                                | AddWatchFlags::IN_MOVE_SELF
                                | AddWatchFlags::IN_IGNORED,
                        );
                        dir_gone || e.name.as_deref() == Some(self.name.as_os_str())
                    })
                }
                _ => break,
            }
        }
        gone
    }
}

impl AsFd for FileWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

impl AsRawFd for FileWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_the_deletion_of_its_file_only() {
        let dir = std::env::temp_dir().join(format!("rlnet-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("netns-a");
        std::fs::write(&f, "").unwrap();
        std::fs::write(dir.join("other"), "").unwrap();
        let w = FileWatch::new(&f).unwrap();
        assert!(!w.gone());
        std::fs::remove_file(dir.join("other")).unwrap();
        assert!(!w.gone(), "another file");
        std::fs::remove_file(&f).unwrap();
        assert!(w.gone());
        // Already gone when the watch starts.
        assert!(FileWatch::new(&f).unwrap().gone());
        // Renamed away counts.
        std::fs::write(&f, "").unwrap();
        let w = FileWatch::new(&f).unwrap();
        std::fs::rename(&f, dir.join("moved")).unwrap();
        assert!(w.gone());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            FileWatch::new(Path::new("/nonexistent-dir-rlnet/x")),
            Err(WatchError::Inotify { .. })
        ));
    }
}
