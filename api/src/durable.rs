//! Replacing a file so that a crash leaves the old contents or the new, never a mix, and
//! the new contents survive a crash once the call returns: write a temporary file beside
//! it, fsync it, rename it over, fsync the directory. The one helper for every file
//! ipipd keeps (the IPAM record, workloads, the CNI spool, install-cni's files).

use std::ffi::OsString;
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct WriteError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The temporary name of `path` while it is written: `path` + `.tmp`, an extension no
/// reader of these directories takes (runtimes read `.conf`, `.conflist`, `.json`).
pub fn temporary(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

/// Replaces `path` with `contents`, file mode `mode`, durably.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    put(path, contents, mode, true)
}

/// Replaces `path` with `contents` atomically (a crash of the process leaves the old
/// contents or the new), without waiting for the disk: for a cache whose truth is kept
/// durably elsewhere (the IPAM record with the etcd datastore). A crash of the machine
/// may leave the old contents.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    put(path, contents, mode, false)
}

/// Writes a temporary file and renames it over `path`; `durable`: both reach the disk
/// before this returns.
fn put(path: &Path, contents: &[u8], mode: u32, durable: bool) -> Result<(), WriteError> {
    let tmp = temporary(path);
    let err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { what, path, source }
    };
    let mut f = File::create(&tmp).map_err(err("creating", &tmp))?;
    f.write_all(contents)
        .and_then(|()| f.set_permissions(Permissions::from_mode(mode)))
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
        .map_err(err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(err("renaming into place", path))?;
    if durable {
        sync_dir(path)
    } else {
        Ok(())
    }
}

/// Makes the latest rename or removal in `path`'s directory durable.
pub fn sync_dir(path: &Path) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| WriteError {
            what: "syncing the directory",
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_the_mode_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("api-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join("x.json");
        assert!(write(&path, b"one", 0o600).is_ok());
        assert!(write(&path, b"two", 0o644).is_ok());
        assert_eq!(std::fs::read(&path).ok(), Some(b"two".to_vec()));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o644));
        assert!(!temporary(&path).exists());
        let missing = write(&dir.join("no/such/dir"), b"", 0o644);
        assert!(missing.is_err_and(|e| e.to_string().starts_with("creating ")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failure_names_its_step_and_path_and_keeps_the_old_content() {
        let d = std::env::temp_dir().join(format!("api-durable-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let path = d.join("state.json");
        assert!(write(&path, b"old", 0o644).is_ok());
        // The temporary file's place is taken by a directory: it cannot be created.
        let _ = std::fs::create_dir(temporary(&path));
        let e = write(&path, b"new", 0o644).err().map(|e| e.to_string());
        assert_eq!(e, Some(format!("creating {}", temporary(&path).display())));
        assert_eq!(std::fs::read(&path).ok(), Some(b"old".to_vec()));
        let _ = std::fs::remove_dir_all(&d);
    }
}
