//! Releases that DEL could not hand to the daemon (it was not answering), kept on disk
//! until the daemon is back: a runtime that does not retry a failed DEL drops the
//! container, and the address would stay allocated forever.
//!
//! The plugin writes one file per handle in `<directory of the socket>/pending-release/`
//! (durably: the DEL has succeeded once it returns); the daemon releases each handle and
//! removes its file. The file name is the plugin's choice (handles can be longer than a
//! file name may be); the handle is inside.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The directory beside the control socket.
pub const DIR: &str = "pending-release";
/// Pending releases end in this; anything else in the directory (a temporary file) is not one.
pub const EXTENSION: &str = "json";

/// The spool of the daemon listening on `socket`.
pub fn dir(socket: &Path) -> PathBuf {
    match socket.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(DIR),
        _ => PathBuf::from(DIR),
    }
}

/// One DEL whose release is still to be done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRelease {
    /// `container_id.ifname`, as the daemon keys the allocation.
    pub handle: String,
    pub container_id: String,
    pub ifname: String,
    /// The CNI network of the DEL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_is_beside_the_socket() {
        assert_eq!(
            dir(Path::new("/run/ipipd/ipipd.sock")),
            PathBuf::from("/run/ipipd/pending-release")
        );
        assert_eq!(dir(Path::new("ipipd.sock")), PathBuf::from(DIR));
    }
}
