//! Replacing a file so that a crash or a power cut leaves the old content or the new,
//! never a mix nor an empty file: write a temporary file beside it, fsync it, rename
//! it over the old one, fsync the directory (the rename lives in the directory). One
//! helper for every file ipipd keeps in its state directory.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A step of [`write_atomic`] failed; the old content, if any, is intact.
#[derive(Debug, thiserror::Error)]
#[error("{step} {path}")]
pub struct WriteError {
    pub step: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// `path` + `.tmp`: in the same directory, so the rename does not cross file systems.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `bytes`; when this returns Ok, the new content survives a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let step = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { step, path, source }
    };
    let tmp = temporary(path);
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(step("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(step("renaming to", path))?;
    // `dir/file` has the parent `dir`; a bare `file` has the parent "".
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(step("syncing the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("durable-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let d = dir("replace");
        let path = d.join("state.json");
        assert!(write_atomic(&path, b"one").is_ok());
        assert!(write_atomic(&path, b"two").is_ok());
        assert_eq!(std::fs::read(&path).ok(), Some(b"two".to_vec()));
        let names: Vec<_> = std::fs::read_dir(&d)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["state.json"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_failure_names_its_step_and_path_and_keeps_the_old_content() {
        let d = dir("fail");
        let path = d.join("state.json");
        assert!(write_atomic(&path, b"old").is_ok());
        // The temporary file's place is taken by a directory: it cannot be created.
        let _ = std::fs::create_dir(d.join("state.json.tmp"));
        let e = write_atomic(&path, b"new").err().map(|e| e.to_string());
        assert_eq!(
            e,
            Some(format!("writing {}", d.join("state.json.tmp").display()))
        );
        assert_eq!(std::fs::read(&path).ok(), Some(b"old".to_vec()));
        let _ = std::fs::remove_dir_all(&d);
    }
}
