//! The marker file that tells the next start it is a restart (RFC 4724 R bit): its
//! modification time, refreshed while the daemon runs, says how long ago it ran.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::RUNNING_MARKER;

/// Whether a daemon ran here less than the graceful-restart time ago.
pub(super) fn restarting(state_dir: &Path, gr_time: u16) -> bool {
    let Ok(meta) = std::fs::metadata(state_dir.join(RUNNING_MARKER)) else {
        return false;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::MAX);
    age < Duration::from_secs(gr_time.into())
}

/// Writes the marker. A failure matters: without a fresh marker the next start is
/// not a graceful restart, and the peers drop this node's routes meanwhile.
pub(super) fn touch_marker(state_dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        state_dir.join(RUNNING_MARKER),
        std::process::id().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_marker_means_restarting_and_a_failed_write_is_an_error() {
        let d = std::env::temp_dir().join(format!("ipipd-marker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert!(touch_marker(&d).is_err(), "no state directory, yet written");
        assert!(!restarting(&d, 120));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        assert!(touch_marker(&d).is_ok());
        assert!(restarting(&d, 120));
        assert!(
            !restarting(&d, 0),
            "older than a graceful-restart time of 0"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
