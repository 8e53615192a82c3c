//! Where named networks live: one directory per user
//! (`$XDG_RUNTIME_DIR/rlnet`, mode 0700) holding, per network, its API
//! socket `NAME.sock` and a record `NAME.json` (subnet, flags, daemon PID).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::api::valid_member_name;
use crate::config::Ipv4Net;

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(
        "{0:?} is not a valid network name: use letters, digits, '-' and '.', up to 63 characters"
    )]
    Name(String),
    #[error("cannot use {path} for rlnet's runtime files: {err}")]
    Dir { path: String, err: io::Error },
    #[error(
        "{path} is not private to you (owner or mode): refusing to use it; remove it or fix its owner and mode (0700)"
    )]
    Unsafe { path: String },
}

/// What `NAME.json` says about a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub subnet: String,
    pub internal: bool,
    pub ipv6: bool,
    pub pid: u32,
}

impl Record {
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.subnet.parse().ok()
    }
}

pub fn check_name(name: &str) -> Result<(), RegistryError> {
    if valid_member_name(name) {
        Ok(())
    } else {
        Err(RegistryError::Name(name.to_string()))
    }
}

/// `$XDG_RUNTIME_DIR/rlnet`, or `/tmp/rlnet-UID` without one; created 0700
/// and checked to be ours and private.
pub fn runtime_dir() -> Result<PathBuf, RegistryError> {
    let uid = nix::unistd::geteuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("rlnet"),
        None => PathBuf::from(format!("/tmp/rlnet-{uid}")),
    };
    let err = |err| RegistryError::Dir {
        path: dir.display().to_string(),
        err,
    };
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(err(e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(err)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
        return Err(RegistryError::Unsafe {
            path: dir.display().to_string(),
        });
    }
    Ok(dir)
}

pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

pub fn record_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Write a record atomically (write a temporary file, rename over).
pub fn write(dir: &Path, rec: &Record) -> io::Result<()> {
    let tmp = dir.join(format!(".{}.json.tmp", rec.name));
    let text = serde_json::to_vec(rec).map_err(io::Error::other)?;
    fs::write(&tmp, text)?;
    fs::rename(&tmp, record_path(dir, &rec.name))
}

pub fn remove(dir: &Path, name: &str) {
    let _ = fs::remove_file(record_path(dir, name));
}

/// [`remove`] through a handle on the directory (a confined daemon may
/// only unlinkat).
pub fn remove_at(dir: &fs::File, name: &str) {
    let _ = nix::unistd::unlinkat(
        dir,
        format!("{name}.json").as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
}

/// Records of networks whose daemon is alive (stale ones are removed).
pub fn live(dir: &Path) -> Vec<Record> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let rec: Record = serde_json::from_slice(&fs::read(e.path()).ok()?).ok()?;
            if alive(dir, &rec) {
                Some(rec)
            } else {
                remove(dir, &rec.name);
                None
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A network's daemon answers on its socket.
pub fn alive(dir: &Path, rec: &Record) -> bool {
    std::os::unix::net::UnixStream::connect(socket_path(dir, &rec.name)).is_ok()
}

/// An exclusive lock on the directory for the duration of a `create`, so
/// two creates cannot pick the same subnet or name.
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

pub fn lock(dir: &Path) -> Result<Lock, RegistryError> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| RegistryError::Dir {
            path: path.display().to_string(),
            err,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(Lock)
        .map_err(|(_, e)| RegistryError::Dir {
            path: path.display().to_string(),
            err: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("second").is_ok());
        assert!(check_name("leafty-2").is_ok());
        for bad in ["", "a/b", "-x", "x y", "../etc", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_roundtrip_and_stale_ones_go() {
        let dir = std::env::temp_dir().join(format!("rlnet-reg-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let rec = Record {
            name: "n1".into(),
            subnet: "10.89.0.0/24".into(),
            internal: false,
            ipv6: true,
            pid: 1,
        };
        write(&dir, &rec).unwrap();
        assert!(record_path(&dir, "n1").exists());
        // No daemon answers on n1.sock: the record is stale and removed.
        assert!(live(&dir).is_empty());
        assert!(!record_path(&dir, "n1").exists());
        let _l = lock(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
