//! Signals and configuration-file watching.
//!
//! A Kubernetes ConfigMap update arrives as a symlink swap (`..data` points at
//! a new directory), so the file is watched by the identity of what the path
//! resolves to (device, inode, size, mtime), polled every second.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use super::Daemon;

/// Waits for SIGTERM/SIGINT (returns) and handles SIGHUP (reload) meanwhile.
pub async fn signals(daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()) }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()) }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading configuration");
                let _ = daemon.reload().await;
            }
        }
    }
}

type Identity = (u64, u64, u64, i64, i64);

fn identity(path: &std::path::Path) -> Option<Identity> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

pub async fn watch_file(daemon: Arc<Daemon>) {
    let path = daemon.config_path().to_path_buf();
    let mut last = identity(&path);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = identity(&path);
        if now != last && now.is_some() {
            // Let a writer finish before reading.
            tokio::time::sleep(Duration::from_millis(100)).await;
            last = identity(&path);
            tracing::info!(path = %path.display(), "configuration file changed: reloading");
            let _ = daemon.reload().await;
        } else if now.is_none() && last.is_some() {
            last = None;
        }
    }
}
