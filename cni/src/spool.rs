//! DEL's pending releases (`api::spool`): when the daemon is not answering, the release is
//! written to disk and the daemon does it when it is back, so that a DEL the runtime does
//! not retry still frees the address.

use std::path::{Path, PathBuf};

use api::spool::{PendingRelease, EXTENSION};
use sha1::{Digest, Sha1};

use crate::conf::{Env, NetConf};
use crate::error::{CniError, Code};

/// The daemon's allocation key: `container_id.ifname`.
pub fn handle(env: &Env) -> String {
    format!("{}.{}", env.container_id, env.ifname)
}

/// One file per handle, named by the handle's SHA-1: a handle can be longer than a file
/// name may be, and a repeated DEL must find (and overwrite) the same file.
fn file(socket: &Path, handle: &str) -> PathBuf {
    let digest = Sha1::digest(handle.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    api::spool::dir(socket).join(format!("{hex}.{EXTENSION}"))
}

fn failed(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::new(
        Code::TryAgain,
        format!("ipipd is not answering and {what} failed: {e}"),
    )
}

/// Records the release of this DEL's handle durably; returns the file.
pub fn record(conf: &NetConf, env: &Env) -> Result<PathBuf, CniError> {
    let socket = conf.socket();
    let dir = api::spool::dir(&socket);
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| failed(&format!("creating {}", dir.display()), e))?;
        // The new directory's own entry must survive a crash too.
        api::durable::sync_dir(&dir).map_err(|e| failed("recording the release", e))?;
    }
    let pending = PendingRelease {
        handle: handle(env),
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        network: Some(conf.name.clone()),
    };
    let path = file(&socket, &pending.handle);
    let text = serde_json::to_vec(&pending).map_err(|e| failed("recording the release", e))?;
    api::durable::write(&path, &text, 0o600).map_err(|e| failed("recording the release", e))?;
    Ok(path)
}

/// ADD of a handle with a pending release: the release is void (the handle is in use
/// again), so the daemon must not do it later.
pub fn forget(conf: &NetConf, env: &Env) -> Result<(), CniError> {
    let path = file(&conf.socket(), &handle(env));
    match std::fs::remove_file(&path) {
        Ok(()) => api::durable::sync_dir(&path)
            .map_err(|e| CniError::new(Code::Kernel, format!("cancelling a pending release: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::new(
            Code::Kernel,
            format!("cancelling the pending release {}: {e}", path.display()),
        )),
    }
}
