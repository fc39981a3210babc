//! The CLI side of the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::protocol::{Request, Response};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no ipipd daemon answering on {path}")]
    NoDaemon {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The socket exists but this user may not open it (mode 0660: root and its group).
    #[error("permission denied on the control socket {path}: run as root or as a member of the socket's group")]
    PermissionDenied { path: String },
    #[error("the daemon on {path} closed the connection without answering")]
    NoAnswer { path: String },
    #[error("unreadable answer from the daemon")]
    BadAnswer(#[source] serde_json::Error),
}

/// Sends one request and waits for its response.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let no_daemon = |source| ClientError::NoDaemon {
        path: path.clone(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            ClientError::PermissionDenied { path: path.clone() }
        }
        _ => no_daemon(e),
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(no_daemon)?;
    let mut line = serde_json::to_string(request).map_err(ClientError::BadAnswer)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(no_daemon)?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .map_err(no_daemon)?;
    if answer.is_empty() {
        return Err(ClientError::NoAnswer { path });
    }
    serde_json::from_str(&answer).map_err(ClientError::BadAnswer)
}
