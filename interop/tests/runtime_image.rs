//! The container image as a cluster runs it: `deploy/build-image.sh` builds it offline
//! with Debian's podman (private storage in a temp dir), and in it `ipipd --version`
//! answers, the packaged example and the DaemonSet's ConfigMap pass `check-config` (node
//! identity from the environment, as the downward API gives it), and the init
//! container's `install-cni` puts the plugin and the conflist into host directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use interop::harness::{require_root, TempDir};

struct Store {
    dir: PathBuf,
    cgroup: String,
}

impl Store {
    fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .output()
            .expect("podman")
    }

    /// `podman run --rm` of the image with this machine's limits (see TESTING.md).
    fn run(&self, extra: &[&str], args: &[&str]) -> Output {
        let parent = format!("--cgroup-parent=/{}", self.cgroup);
        let mut all = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroups=no-conmon",
            &parent,
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        all.extend_from_slice(extra);
        all.push("ipipd:test");
        all.extend_from_slice(args);
        self.podman(&all)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.podman(&["rmi", "-f", "ipipd:test"]);
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(&self.cgroup));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup));
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `ipipd.toml: |` block of the DaemonSet's ConfigMap, de-indented.
fn configmap_toml(yaml: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in yaml.lines() {
        if line.trim_start().starts_with("ipipd.toml: |") {
            inside = true;
            continue;
        }
        if inside {
            if line.starts_with("---") || (!line.is_empty() && !line.starts_with("    ")) {
                break;
            }
            out.push_str(line.strip_prefix("    ").unwrap_or(line));
            out.push('\n');
        }
    }
    out
}

#[test]
fn image_builds_offline_and_runs_the_daemonset_commands() {
    require_root();
    assert!(
        interop::harness::have("podman"),
        "podman missing (Debian package podman)"
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = TempDir::new("image").expect("tmp");
    let store = Store {
        dir: tmp.join("podman"),
        cgroup: format!("ipipd-image-{}", std::process::id()),
    };
    std::fs::create_dir_all(&store.dir).expect("store dir");
    std::fs::write(
        store.dir.join("containers.conf"),
        "[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"file\"\n",
    )
    .expect("containers.conf");
    let root = store.dir.join("root").display().to_string();
    let runroot = store.dir.join("runroot").display().to_string();
    let build = Command::new(repo.join("deploy/build-image.sh"))
        .args(["ipipd:test", "--", "--root", &root, "--runroot", &runroot])
        .args(["--storage-driver", "vfs"])
        .env("CONTAINERS_CONF", store.dir.join("containers.conf"))
        .output()
        .expect("build-image.sh");
    assert!(build.status.success(), "build-image.sh: {}", text(&build));

    let version = store.run(&[], &["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("ipipd {}", env!("CARGO_PKG_VERSION"))
    );
    let example = store.run(&[], &["check-config", "--config", "/etc/ipipd/ipipd.toml"]);
    assert!(example.status.success(), "{}", text(&example));

    let yaml = std::fs::read_to_string(repo.join("deploy/kubernetes/ipipd.yaml")).expect("yaml");
    let cm = tmp.join("ipipd.toml");
    std::fs::write(&cm, configmap_toml(&yaml)).expect("configmap toml");
    let mount = format!("{}:/etc/ipipd/ipipd.toml:ro", cm.display());
    let check = store.run(
        &[
            "-v",
            &mount,
            "-e",
            "IPIPD_NODE_NAME=node-1",
            "-e",
            "IPIPD_NODE_ADDRESS=10.0.0.21",
        ],
        &["check-config", "--config", "/etc/ipipd/ipipd.toml"],
    );
    assert!(
        check.status.success(),
        "the ConfigMap in the image: {}",
        text(&check)
    );
    // Without the identity the downward API gives, the same file is refused.
    let anonymous = store.run(
        &["-v", &mount],
        &["check-config", "--config", "/etc/ipipd/ipipd.toml"],
    );
    assert_eq!(anonymous.status.code(), Some(2), "{}", text(&anonymous));

    // The init container: install-cni into host directories.
    std::fs::create_dir_all(tmp.join("bin")).expect("bin");
    std::fs::create_dir_all(tmp.join("net.d")).expect("net.d");
    let bin = format!("{}:/host/opt/cni/bin", tmp.join("bin").display());
    let conf = format!("{}:/host/etc/cni/net.d", tmp.join("net.d").display());
    let install = store.run(
        &["-v", &bin, "-v", &conf],
        &[
            "install-cni",
            "--bin-dir",
            "/host/opt/cni/bin",
            "--conf-dir",
            "/host/etc/cni/net.d",
        ],
    );
    assert!(install.status.success(), "{}", text(&install));
    assert!(tmp.join("bin/ipipd-cni").exists());
    let list: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.join("net.d/10-ipipd.conflist")).expect("conflist"),
    )
    .expect("conflist JSON");
    assert_eq!(list["plugins"][0]["type"], "ipipd-cni");
}
