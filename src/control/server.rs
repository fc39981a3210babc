//! The daemon side of the control socket. Each client connection is served
//! by its own task; a malformed request gets an error reply and nothing else
//! happens.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::protocol::{parse_request, Response, MAX_REQUEST_LEN};
use crate::daemon::Daemon;

/// Binds the socket (mode 0660, parent directory created) and serves it.
pub fn start(path: &Path, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        // A socket left by a previous run; if a daemon still answered there, we would
        // not have got this far with the same config (the BGP port would be taken).
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting mode of {}", path.display()))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream, daemon.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve(stream: UnixStream, daemon: Arc<Daemon>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most one byte past the limit so a huge line cannot exhaust memory.
        let limited = (&mut rd).take(MAX_REQUEST_LEN as u64 + 1);
        let mut limited = limited;
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = match std::str::from_utf8(&line) {
            Ok(text) if line.len() <= MAX_REQUEST_LEN => match parse_request(text.trim_end()) {
                Ok(req) => daemon.handle(req).await,
                Err(message) => Response::Error { message },
            },
            Ok(_) => Response::Error {
                message: format!("request longer than {MAX_REQUEST_LEN} bytes"),
            },
            Err(_) => Response::Error {
                message: "request is not UTF-8".into(),
            },
        };
        let too_long = line.len() > MAX_REQUEST_LEN;
        let mut out = serde_json::to_vec(&response)
            .unwrap_or_else(|_| b"{\"response\":\"error\",\"message\":\"internal\"}".to_vec());
        out.push(b'\n');
        if wr.write_all(&out).await.is_err() || too_long {
            return;
        }
    }
}

use tokio::io::AsyncReadExt;
