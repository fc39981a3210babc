//! The releases DEL spooled while the daemon was not answering (see `api::spool`): the
//! daemon reads them at start and from time to time, releases each handle, then calls
//! [`done`]. A file goes only after its release is recorded, so a crash in between
//! releases the handle once more, which is harmless (releasing is idempotent).
//!
//! An ADD of a handle removes its pending release before it asks for addresses (the
//! handle is in use again). So that a release read here cannot hit such an ADD's fresh
//! allocation, check that the file still exists and release under the same lock that
//! serializes `IpamAssign`.

use std::path::{Path, PathBuf};

use api::spool::{PendingRelease, EXTENSION};

/// The pending releases of the daemon on `socket`: (handle, file), oldest name first.
/// A file that cannot be read or is not a pending release is logged and left alone.
pub fn pending(socket: &Path) -> Vec<(String, PathBuf)> {
    let dir = api::spool::dir(socket);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "reading the pending releases");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "reading the pending releases");
                continue;
            }
        };
        // Temporary files of a write in progress (or cut short by a crash) are not releases.
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "reading a pending release");
                continue;
            }
        };
        match serde_json::from_slice::<PendingRelease>(&text) {
            Ok(p) => out.push((p.handle, path)),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "not a pending release; left alone")
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

/// The release in `path` is recorded: the file goes, durably.
pub fn done(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        // Done already (two passes raced, or someone cleaned up).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "removing a pending release");
            return;
        }
    }
    if let Err(e) = api::durable::sync_dir(path) {
        tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "removing a pending release");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket_in_fresh_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ipipd-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d.join("ipipd.sock")
    }

    fn spool(socket: &Path, file: &str, handle: &str) -> PathBuf {
        let dir = api::spool::dir(socket);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let (container_id, ifname) = handle.split_once('.').unwrap_or((handle, "eth0"));
        let p = PendingRelease {
            handle: handle.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            network: Some("ipipd".into()),
        };
        let path = dir.join(file);
        let text = serde_json::to_vec(&p).unwrap_or_default();
        api::durable::write(&path, &text, 0o600).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn no_spool_directory_is_nothing_pending() {
        let socket = socket_in_fresh_dir("none");
        assert!(pending(&socket).is_empty());
    }

    #[test]
    fn pending_lists_each_release_once_and_done_removes_it() {
        let socket = socket_in_fresh_dir("list");
        let b = spool(&socket, "b.json", "c2.eth0");
        let a = spool(&socket, "a.json", "c1.net1");
        let dir = api::spool::dir(&socket);
        // A write cut short, and something that is no release: neither is pending.
        std::fs::write(dir.join("c.json.tmp"), b"{").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("d.json"), b"not json").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pending(&socket),
            vec![
                ("c1.net1".to_string(), a.clone()),
                ("c2.eth0".to_string(), b.clone())
            ]
        );
        done(&a);
        done(&a);
        assert!(!a.exists());
        assert_eq!(pending(&socket), vec![("c2.eth0".to_string(), b)]);
        let _ = std::fs::remove_dir_all(socket.parent().unwrap_or(&socket));
    }
}
