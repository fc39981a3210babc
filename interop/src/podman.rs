//! Debian's podman as the tests run it on this machine (see TESTING.md): a private store
//! under a temp dir (`vfs`), runc and cgroupfs, a cgroup parent of the test's own
//! (removed on drop), the nofile/nproc limits a process without CAP_SYS_RESOURCE may
//! set, and — for a node that is a network namespace — podman started with
//! `nsenter --net` (`ip netns exec` would hide the cgroup mounts runc needs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{netns_path, Netns};

/// The `[engine]` settings every store uses.
pub const ENGINE: &str =
    "[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"file\"\n";

pub struct Store {
    pub dir: PathBuf,
    cgroup: String,
    netns: Option<String>,
}

impl Store {
    /// A store in `dir` with `containers.conf` = `network` + [`ENGINE`], run inside
    /// `netns` when given; `tag` names its cgroup parent.
    pub fn new(dir: &Path, tag: &str, network: &str, netns: Option<&Netns>) -> Store {
        std::fs::create_dir_all(dir).expect("podman store directory");
        std::fs::write(dir.join("containers.conf"), format!("{network}\n{ENGINE}"))
            .expect("containers.conf");
        Store {
            dir: dir.to_path_buf(),
            cgroup: format!("ipipd-test-{}-{tag}", std::process::id()),
            netns: netns.map(|n| n.name.clone()),
        }
    }

    /// `podman ARGS` with this store.
    pub fn podman(&self, args: &[&str]) -> Output {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", netns_path(ns))).arg("podman");
                c
            }
            None => Command::new("podman"),
        };
        cmd.args(self.storage_args())
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .output()
            .expect("podman")
    }

    /// The global options that select this store (for scripts that call podman).
    pub fn storage_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.dir.join("root").display().to_string(),
            "--runroot".into(),
            self.dir.join("runroot").display().to_string(),
            "--storage-driver".into(),
            "vfs".into(),
        ]
    }

    /// The `podman run` options this machine needs.
    pub fn run_options(&self) -> Vec<String> {
        vec![
            "--cgroups=no-conmon".into(),
            format!("--cgroup-parent=/{}", self.cgroup),
            "--ulimit".into(),
            "nofile=1024:1024".into(),
            "--ulimit".into(),
            "nproc=1024:1024".into(),
        ]
    }
}

/// An image built from this tree by `deploy/build-image.sh` into a [`Store`];
/// removed on drop.
pub struct Image<'a> {
    store: &'a Store,
    pub tag: String,
}

impl Store {
    /// Builds the release binaries of this tree into image `tag` (offline).
    pub fn build_image(&self, tag: &str) -> anyhow::Result<Image<'_>> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let build = Command::new(repo.join("deploy/build-image.sh"))
            .args([tag, "--"])
            .args(self.storage_args())
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .output()?;
        let image = Image {
            store: self,
            tag: tag.to_owned(),
        };
        anyhow::ensure!(
            build.status.success(),
            "build-image.sh: {}{}",
            String::from_utf8_lossy(&build.stdout),
            String::from_utf8_lossy(&build.stderr)
        );
        Ok(image)
    }
}

impl Drop for Image<'_> {
    fn drop(&mut self) {
        let _ = self.store.podman(&["rmi", "-f", &self.tag]);
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        // The cgroup parent, in every hierarchy it landed in.
        let root = Path::new("/sys/fs/cgroup");
        if let Ok(entries) = std::fs::read_dir(root) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(&self.cgroup));
            }
        }
        let _ = std::fs::remove_dir(root.join(&self.cgroup));
    }
}
