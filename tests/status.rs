//! `ipipd status` as a readiness probe meets it: exit 0 on a healthy mesh, exit 1 naming
//! the peer that is gone, exit 1 with no daemon — ipipd in network namespaces on the
//! host kernel (stand-in tunl0), through the real command line.

use std::process::Command;
use std::time::Duration;

use interop::config::NodeConfig;
use interop::harness::{require_root, wait_until, Lan, Netns};
use interop::ipipd::{binary, Ipipd};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const C: &str = "172.29.235.140";
const NODES: [&str; 3] = [A, B, C];
const T: Duration = Duration::from_secs(20);

fn config(address: &str, block: &str) -> NodeConfig {
    let mut c = NodeConfig::bare(address, &[block])
        .pools(&["101.64.0.0/10"])
        .timers(9, 30, Some(1));
    c.cluster.nodes = Some(NODES.iter().map(|n| (*n).to_owned()).collect());
    c
}

fn node(lan: &mut Lan, address: &str) -> Netns {
    let ns = lan.host(&format!("{address}/24")).expect("host");
    ns.add_standin_tunl0().expect("tunl0");
    ns
}

/// `ipipd status [--json]`: exit code, stdout, stderr.
fn status(d: &Ipipd, json: bool) -> (Option<i32>, String, String) {
    let args: &[&str] = if json {
        &["status", "--json"]
    } else {
        &["status"]
    };
    let out = d.cli(args).expect("run ipipd status");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("status --json: {e}:\n{text}"))
}

#[test]
fn healthy_mesh_then_a_peer_gone() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let (na, nb, nc) = (node(&mut lan, A), node(&mut lan, B), node(&mut lan, C));
    let a = Ipipd::start(&na, &config(A, "101.76.9.128/26").toml()).expect("start a");
    let _b = Ipipd::start(&nb, &config(B, "101.88.228.192/26").toml()).expect("start b");
    let mut c = Ipipd::start(&nc, &config(C, "101.99.1.0/26").toml()).expect("start c");
    for peer in [B, C] {
        a.wait_established(peer, T).expect("a's sessions up");
    }
    a.wait_route("101.99.1.0/26", C, T).expect("c's block at a");

    let (code, out, err) = status(&a, false);
    assert_eq!(code, Some(0), "healthy mesh:\n{out}{err}");
    assert!(
        out.lines().next().is_some_and(|l| l.ends_with(": healthy")),
        "{out}"
    );
    assert!(out.contains("sessions: 2 of 2 Established"), "{out}");
    assert!(out.contains("101.76.9.128/26"), "own block listed:\n{out}");
    let (code, out, _) = status(&a, true);
    assert_eq!(code, Some(0));
    let v = json(&out);
    assert_eq!(v["healthy"], true, "{v}");
    assert_eq!(v["reasons"], serde_json::json!([]), "{v}");

    // Node c dies (its sessions close with it): a names it, and only it.
    c.stop("KILL").expect("kill c");
    let reasons = wait_until(T, "a's status to name c", || {
        let (code, out, _) = status(&a, true);
        let v = json(&out);
        (code == Some(1) && v["healthy"] == false).then(|| v["reasons"].clone())
    })
    .expect("a unhealthy");
    let reasons: Vec<String> = reasons
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].starts_with(&format!("peer {C} (mesh): session ")),
        "{reasons:?}"
    );
    let (code, out, _) = status(&a, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.contains("NOT healthy, 1 reason")),
        "{out}"
    );
    assert!(out.contains(&format!("  reason: peer {C} (mesh)")), "{out}");
}

#[test]
fn a_configured_peer_counts_after_its_first_connect_window() {
    require_root();
    let mut lan = Lan::new().expect("lan");
    let na = node(&mut lan, A);
    // Nobody answers at 172.29.235.200.
    let text = format!(
        "{}\n[[peer]]\naddress = \"172.29.235.200\"\nname = \"tor-1\"\n",
        NodeConfig::bare(A, &["101.76.9.128/26"])
            .pools(&["101.64.0.0/10"])
            .timers(9, 30, Some(1))
            .toml()
    );
    let a = Ipipd::start(&na, &text).expect("start a");
    let (code, out, _) = status(&a, false);
    assert_eq!(code, Some(0), "within the window:\n{out}");
    assert!(out.contains("(starting)"), "{out}");
    let out = wait_until(Duration::from_secs(30), "the window to pass", || {
        let (code, out, _) = status(&a, false);
        (code == Some(1)).then_some(out)
    })
    .expect("unhealthy after the window");
    assert!(
        out.contains("reason: peer 172.29.235.200 (peer, tor-1): session "),
        "{out}"
    );
}

#[test]
fn no_daemon_is_unhealthy() {
    let sock = "/nonexistent/ipipd.sock";
    let out = Command::new(binary())
        .args(["status", "--socket", sock])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("no ipipd daemon answering on {sock}")),
        "{err}"
    );

    let out = Command::new(binary())
        .args(["status", "--json", "--socket", sock])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["healthy"], false, "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("no ipipd daemon answering")),
        "{v}"
    );
}
