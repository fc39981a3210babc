//! `ipipd check-config` as an operator runs it: exit 0 on a valid file,
//! exit 2 with every error as PATH:LINE:COL: message otherwise.

use std::process::Command;

use interop::harness::TempDir;
use interop::ipipd::binary;

fn check(text: &str) -> (i32, String, String) {
    let dir = TempDir::new("cc").expect("temp dir");
    let path = dir.join("ipipd.toml");
    std::fs::write(&path, text).expect("write");
    let out = Command::new(binary())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run ipipd");
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

const GOOD: &str = r#"
[node]
address = "172.29.235.101"
blocks = ["101.76.9.128/26"]

[cluster]
pools = ["101.64.0.0/10"]
nodes = ["172.29.235.101", "172.29.235.130"]
"#;

#[test]
fn valid_file_exits_0() {
    let (code, stdout, stderr) = check(GOOD);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn bad_files_report_every_error_with_position() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.128/26\"]\n[cluster]\npools = [\"101.64.0.0/10\"]\n[bgp]\nhold_tme = 90\n",
            &["FILE:7:1: unknown key `hold_tme` in [bgp]; did you mean `hold_time`?"],
        ),
        (
            "[node]\naddress = \"172.29.235.3OO\"\n",
            &["FILE:2:11: invalid IP address \"172.29.235.3OO\""],
        ),
        (
            "[node]\naddress = \"172.29.235.101\"\nblocks = [\"10.0.0.0/26\"]\n[cluster]\npools = [\"101.64.0.0/10\"]\n",
            &["FILE:3:11: block 10.0.0.0/26 is outside every cluster pool (101.64.0.0/10)"],
        ),
        (
            "[node]\naddress = \"172.29.235.101\"\nblocks = [\"101.76.9.130/26\"]\n[cluster]\npools = [\"101.64.0.0/10\"]\n",
            &["FILE:3:11: block 101.76.9.130/26 is not aligned: did you mean 101.76.9.128/26?"],
        ),
        (
            "[node]\naddress = \"172.29.235.101\"\n[bgp]\nhold_time = 2\n",
            &["FILE:4:13: hold_time must be 0 or at least 3 seconds (RFC 4271), got 2"],
        ),
        (
            "[node]\naddress = \"172.29.235.101\"\n[[peer]]\naddress = \"10.0.0.1\"\n[[peer]]\naddress = \"10.0.0.1\"\n",
            &["FILE:6:11: peer 10.0.0.1 is listed twice (first at line 4)"],
        ),
        (
            // Several errors at once, in file order.
            "[node]\naddress = \"172.29.235.3OO\"\n[bgp]\nhold_time = 1\nkeepalive = 3\n",
            &[
                "FILE:2:11: invalid IP address \"172.29.235.3OO\"",
                "FILE:4:13: hold_time must be 0 or at least 3 seconds (RFC 4271), got 1",
                "FILE:5:1: unknown key `keepalive` in [bgp]; did you mean `keepalive_time`?",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let (code, _, stderr) = check(text);
        let got: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        if code != 2 || got != *want {
            failures.push(format!(
                "config:\n{text}\nexpected exit 2 and {want:#?}\ngot exit {code} and {got:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(binary())
        .args(["check-config", "--config", "/nonexistent/ipipd.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("/nonexistent/ipipd.toml:1:1: cannot read"),
        "{err}"
    );
}

/// The shipped examples and the DaemonSet's per-node configs are valid.
#[test]
fn deploy_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        let out = Command::new(binary())
            .arg("check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    // Each `name.toml: |` block of the ConfigMap, de-indented.
    let yaml = std::fs::read_to_string(root.join("kubernetes/ipipd.yaml")).expect("yaml");
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in yaml.lines() {
        if line.trim_end().ends_with(".toml: |") {
            blocks.extend(current.take());
            current = Some(String::new());
        } else if let Some(text) = current.as_mut() {
            match line.strip_prefix("    ") {
                Some(rest) => {
                    text.push_str(rest);
                    text.push('\n');
                }
                None => blocks.extend(current.take()),
            }
        }
    }
    blocks.extend(current);
    assert_eq!(
        blocks.len(),
        1,
        "one config for every node in the ConfigMap"
    );
    for text in &blocks {
        // Identity from the downward API, as the DaemonSet passes it.
        let dir = TempDir::new("cc").expect("temp dir");
        let path = dir.join("ipipd.toml");
        std::fs::write(&path, text).expect("write");
        let out = Command::new(binary())
            .args(["check-config", "--config"])
            .arg(&path)
            .env("IPIPD_NODE_NAME", "node-a")
            .env("IPIPD_NODE_ADDRESS", "172.29.235.101")
            .output()
            .expect("run ipipd");
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 4);
}

/// The DaemonSet's probes are commands that exist, readiness being `ipipd status`.
#[test]
fn daemonset_probes_are_ipipd_commands() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let yaml = std::fs::read_to_string(root.join("kubernetes/ipipd.yaml")).expect("yaml");
    let probe = |kind: &str| -> Vec<String> {
        let at = yaml
            .find(&format!("{kind}:"))
            .unwrap_or_else(|| panic!("no {kind} in the DaemonSet"));
        let line = yaml[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("command:"))
            .unwrap_or_else(|| panic!("{kind} has no command"));
        let list = line.split_once('[').and_then(|(_, r)| r.split_once(']'));
        list.map(|(l, _)| {
            l.split(',')
                .map(|w| w.trim().trim_matches('"').to_owned())
                .collect()
        })
        .unwrap_or_default()
    };
    assert_eq!(probe("readinessProbe"), ["/usr/bin/ipipd", "status"]);
    assert_eq!(probe("livenessProbe"), ["/usr/bin/ipipd", "show", "peers"]);
    // Both run against the default socket, as the probes do.
    for args in [vec!["status"], vec!["show", "peers"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ipipd"))
            .args(&args)
            .args(["--socket", "/nonexistent/ipipd.sock"])
            .output()
            .expect("run ipipd");
        assert_eq!(out.status.code(), Some(1), "{args:?} with no daemon");
    }
}
