//! The container image as a cluster runs it: `deploy/build-image.sh` builds it offline
//! with Debian's podman (private storage in a temp dir), and in it `ipipd --version`
//! answers, the packaged example and the DaemonSet's ConfigMap pass `check-config` (node
//! identity from the environment, as the downward API gives it), and the init
//! container's `install-cni` puts the plugin and the conflist into host directories.

use std::process::Output;

use interop::config::shipped_configmap_toml;
use interop::harness::{require_root, TempDir};
use interop::podman::Store;

/// `podman run --rm` of the test image with this machine's options.
fn run(store: &Store, extra: &[&str], args: &[&str]) -> Output {
    let options = store.run_options();
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend(options.iter().map(String::as_str));
    all.extend_from_slice(extra);
    all.push("ipipd:test");
    all.extend_from_slice(args);
    store.podman(&all)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn image_builds_offline_and_runs_the_daemonset_commands() {
    require_root();
    assert!(
        interop::harness::have("podman"),
        "podman missing (Debian package podman)"
    );
    let tmp = TempDir::new("image").expect("tmp");
    let store = Store::new(&tmp.join("podman"), "image", "", None);
    let _image = store.build_image("ipipd:test").expect("image");

    let version = run(&store, &[], &["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("ipipd {}", env!("CARGO_PKG_VERSION"))
    );
    let example = run(
        &store,
        &[],
        &["check-config", "--config", "/etc/ipipd/ipipd.toml"],
    );
    assert!(example.status.success(), "{}", text(&example));

    let cm = tmp.join("ipipd.toml");
    std::fs::write(&cm, shipped_configmap_toml().expect("the ConfigMap")).expect("configmap toml");
    let mount = format!("{}:/etc/ipipd/ipipd.toml:ro", cm.display());
    let check = run(
        &store,
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
    let anonymous = run(
        &store,
        &["-v", &mount],
        &["check-config", "--config", "/etc/ipipd/ipipd.toml"],
    );
    assert_eq!(anonymous.status.code(), Some(2), "{}", text(&anonymous));

    // The init container: install-cni into host directories.
    std::fs::create_dir_all(tmp.join("bin")).expect("bin");
    std::fs::create_dir_all(tmp.join("net.d")).expect("net.d");
    let bin = format!("{}:/host/opt/cni/bin", tmp.join("bin").display());
    let conf = format!("{}:/host/etc/cni/net.d", tmp.join("net.d").display());
    let install = run(
        &store,
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
