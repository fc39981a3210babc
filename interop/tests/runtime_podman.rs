//! A real container runtime brings pods up: Debian's podman 4.3 with its CNI network
//! backend runs busybox containers (rootfs from busybox-static, no registry) on the
//! `ipipd` network of two nodes, each a network namespace with its ipipd. The containers
//! get addresses from their node's block (or the one `--ip` asks for), ping each other
//! on one node and across nodes, and `podman rm` gives the addresses back.
//!
//! podman runs with `nsenter --net` (not `ip netns exec`, whose private /sys hides the
//! cgroup mounts runc needs), storage under a temp dir, runc and cgroupfs, as
//! TESTING.md describes for this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interop::cni;
use interop::harness::{require_root, Lan, Netns, TempDir};
use interop::ipipd::{Ipipd, NodeConfig};
use interop::podman::Store;

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";

fn config(address: &str, name: &str, block: &str) -> String {
    NodeConfig::new(address, block)
        .name(name)
        .mesh(&[A, B])
        .toml()
}

/// One node's podman: its own store, CNI configuration and plugin directory.
struct Podman {
    store: Store,
    network: String,
}

impl Podman {
    fn new(ns: &Netns, tmp: &TempDir, name: &str, socket: &Path) -> Podman {
        let dir = tmp.join(name);
        let network = format!("ipipd-{}", std::process::id());
        let out = Command::new(interop::ipipd::binary())
            .args(["install-cni", "--bin-dir"])
            .arg(dir.join("bin"))
            .arg("--conf-dir")
            .arg(dir.join("net.d"))
            .arg("--socket")
            .arg(socket)
            .args(["--name", &network])
            // Debian's podman 4.3 (libcni 1.1) refuses CNI 1.1.0 results.
            .args(["--cni-version", "1.0.0"])
            .output()
            .expect("install-cni");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::copy("/usr/lib/cni/loopback", dir.join("bin/loopback")).expect("loopback plugin");
        let cni = format!(
            "[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{}\"\ncni_plugin_dirs = [\"{}\"]\n",
            dir.join("net.d").display(),
            dir.join("bin").display()
        );
        Podman {
            store: Store::new(&dir, name, &cni, Some(ns)),
            network,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.store.podman(args)
    }

    fn start(&self, name: &str, rootfs: &Path) {
        let out = self.try_start(name, rootfs, &[]);
        assert!(
            out.status.success(),
            "podman run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `podman run` with `extra` options (`--ip ADDRESS`); its outcome.
    fn try_start(&self, name: &str, rootfs: &Path, extra: &[&str]) -> std::process::Output {
        let network = format!("--network={}", self.network);
        let root = rootfs.display().to_string();
        let options = self.store.run_options();
        let mut args = vec!["run", "-d", "--name", name, &network];
        args.extend(options.iter().map(String::as_str));
        args.extend(extra);
        args.extend(["--rootfs", &root, "/bin/sleep", "300"]);
        self.run(&args)
    }

    /// The container's IPv4 address on eth0, as the container sees it.
    fn address(&self, name: &str) -> String {
        let out = self.run(&["exec", name, "/bin/ip", "-4", "-o", "addr", "show", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("no address in {name}: {text}"))
            .to_string()
    }

    fn ping(&self, from: &str, to: &str) -> bool {
        self.run(&["exec", from, "/bin/ping", "-c", "2", "-W", "2", to])
            .status
            .success()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // The containers first (their CNI DEL reads the cache), then podman's libcni
        // cache for this network.
        let _ = self.run(&["rm", "-a", "-f", "-t", "0"]);
        if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.network) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

fn busybox_rootfs(tmp: &TempDir) -> PathBuf {
    let root = tmp.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).expect("rootfs");
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox-static");
    for cmd in ["sh", "ip", "ping", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(cmd)).expect("symlink");
    }
    root
}

fn allocated(d: &Ipipd, block: &str) -> Option<u64> {
    d.blocks()
        .ok()?
        .into_iter()
        .find(|b| b.block == block)?
        .allocated
}

fn in_block(ip: &str, block: &str) -> bool {
    let (ip, block): (std::net::Ipv4Addr, ipnet::Ipv4Net) =
        (ip.parse().expect("ip"), block.parse().expect("block"));
    block.contains(&ip)
}

#[test]
fn podman_containers_get_block_addresses_ping_and_give_them_back() {
    require_root();
    for program in ["podman", "runc", "nsenter"] {
        assert!(
            interop::harness::have(program),
            "{program} missing (Debian packages podman, runc)"
        );
    }
    assert!(
        Path::new("/usr/lib/cni/loopback").exists(),
        "containernetworking-plugins missing"
    );
    assert!(
        cni::plugin().exists(),
        "{} missing: cargo build --release",
        cni::plugin().display()
    );
    let tmp = TempDir::new("podman").expect("tmp");
    let rootfs = busybox_rootfs(&tmp);
    let mut lan = Lan::new().expect("lan");
    let na = lan.host(&format!("{A}/24")).expect("node a");
    lan.add_bridged_tunl0(&na).expect("tunl0 a");
    let nb = lan.host(&format!("{B}/24")).expect("node b");
    lan.add_bridged_tunl0(&nb).expect("tunl0 b");
    let a = Ipipd::start(&na, &config(A, "node-a", BLOCK_A)).expect("ipipd a");
    let b = Ipipd::start(&nb, &config(B, "node-b", BLOCK_B)).expect("ipipd b");
    a.wait_route(BLOCK_B, B, Duration::from_secs(20))
        .expect("a learns b");
    b.wait_route(BLOCK_A, A, Duration::from_secs(20))
        .expect("b learns a");

    let pa = Podman::new(&na, &tmp, "a", &a.socket);
    let pb = Podman::new(&nb, &tmp, "b", &b.socket);
    pa.start("web-1", &rootfs);
    pa.start("web-2", &rootfs);
    pb.start("db-1", &rootfs);
    let (w1, w2, d1) = (pa.address("web-1"), pa.address("web-2"), pb.address("db-1"));
    assert!(
        in_block(&w1, BLOCK_A) && in_block(&w2, BLOCK_A),
        "{w1} {w2}"
    );
    assert!(in_block(&d1, BLOCK_B), "{d1}");
    assert_ne!(w1, w2);
    assert_eq!(allocated(&a, BLOCK_A), Some(2));
    assert_eq!(allocated(&b, BLOCK_B), Some(1));
    assert!(pa.ping("web-1", &w2), "container to container on one node");
    assert!(pa.ping("web-1", &d1), "container on a to container on b");
    assert!(pb.ping("db-1", &w2), "container on b to container on a");
    // The workload list names podman's container ids as handles.
    let list = a.workloads().expect("list");
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list[0]
            .handle
            .as_deref()
            .is_some_and(|h| h.ends_with(".eth0")),
        "{list:?}"
    );

    // `podman run --ip`: the requested address is the container's; asked for again,
    // it is refused with a message naming the holder, and nothing is left behind.
    let out = pa.try_start("fixed", &rootfs, &["--ip", "101.76.9.150"]);
    assert!(
        out.status.success(),
        "podman run --ip: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pa.address("fixed"), "101.76.9.150");
    let links = cni::cali_links(&na);
    let out = pa.try_start("twin", &rootfs, &["--ip", "101.76.9.150"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the same --ip twice was accepted");
    assert!(err.contains("101.76.9.150 is in use by"), "{err}");
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(3),
        "the refused run kept an address"
    );
    assert_eq!(cni::cali_links(&na), links, "the refused run left a veth");
    let _ = pa.run(&["rm", "-f", "-t", "0", "twin"]);

    for (p, names) in [(&pa, vec!["web-1", "web-2", "fixed"]), (&pb, vec!["db-1"])] {
        for n in names {
            let out = p.run(&["rm", "-f", "-t", "0", n]);
            assert!(
                out.status.success(),
                "podman rm {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(
        allocated(&a, BLOCK_A),
        Some(0),
        "podman rm released the addresses"
    );
    assert_eq!(allocated(&b, BLOCK_B), Some(0));
    assert!(cni::cali_links(&na).is_empty() && cni::cali_links(&nb).is_empty());
}
