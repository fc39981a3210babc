//! `--log-format json`: what a log collector reads — every line a JSON object with a
//! timestamp, a level and the message, structured fields kept as fields.

use std::time::Duration;

use interop::harness::{require_root, wait_until, Netns, Proc, TempDir};
use interop::ipipd::{binary, NodeConfig};

#[test]
fn json_logs_are_one_object_a_line() {
    require_root();
    let ns = Netns::new("log").expect("namespace");
    ns.add_standin_tunl0().expect("tunl0");
    ns.ip(&["addr", "add", "172.29.235.101/24", "dev", "lo"])
        .expect("address");
    let dir = TempDir::new("logs").expect("tmp");
    let config = NodeConfig::new("172.29.235.101", "101.76.9.128/26")
        .control(&dir.join("ipipd.sock"), &dir.join("state"))
        .toml();
    std::fs::write(dir.join("ipipd.toml"), config).expect("config");
    let log = dir.join("ipipd.log");
    let mut cmd = ns.command(binary());
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(dir.join("ipipd.toml"))
        .env("RUST_LOG", "info");
    let mut daemon = Proc::spawn(cmd, "ipipd", &log).expect("start");
    wait_until(Duration::from_secs(15), "the start-up log line", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("ipipd started")
            .then_some(())
    })
    .expect("started");
    daemon.signal("TERM").expect("stop");
    daemon.wait(Duration::from_secs(10)).expect("exit");
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let started = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "ipipd started")
        .expect("the start-up line");
    assert_eq!(started["level"], "INFO");
    assert_eq!(started["fields"]["address"], "172.29.235.101", "{started}");
}
