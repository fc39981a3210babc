//! Metrics as an operator meets them: a real Prometheus (Debian's `prometheus` package)
//! scrapes ipipd in a node's namespace; `promtool check metrics` accepts the exposition;
//! the values agree with `show peers`, `show blocks` and the kernel; counters never go
//! back, not even across a session reset.

use std::process::{Command, Stdio};
use std::time::Duration;

use interop::cni;
use interop::harness::{require_root, wait_until, Lan, Netns, Proc, TempDir};
use interop::ipipd::{Ipipd, NodeConfig};

const A: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const BLOCK_A: &str = "101.76.9.128/26";
const BLOCK_B: &str = "101.88.228.192/26";
const T: Duration = Duration::from_secs(20);

fn config(address: &str, block: &str) -> NodeConfig {
    NodeConfig::new(address, block).mesh(&[A, B])
}

fn curl(ns: &Netns, url: &str) -> String {
    let out = ns
        .run(&["curl", "-sf", "--max-time", "5", url])
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of the sample `name{labels}` (labels as written, or "" for none).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn prometheus_scrapes_ipipd_and_the_values_agree_with_show() {
    require_root();
    for p in ["prometheus", "promtool", "curl"] {
        assert!(
            interop::harness::have(p),
            "{p} missing (Debian packages prometheus, curl)"
        );
    }
    let mut lan = Lan::new().expect("lan");
    let na = lan.host(&format!("{A}/24")).expect("a");
    na.add_standin_tunl0().expect("tunl0");
    let nb = lan.host(&format!("{B}/24")).expect("b");
    nb.add_standin_tunl0().expect("tunl0");
    let listen = format!("{A}:9179");
    let a = Ipipd::start(&na, &config(A, BLOCK_A).metrics(&listen).toml()).expect("a");
    let mut b = Ipipd::start(&nb, &config(B, BLOCK_B).toml()).expect("b");
    a.wait_route(BLOCK_B, B, T).expect("a learns b");
    let conf = cni::conf(&a.socket, "1.0.0");
    let pods: Vec<Netns> = (0..2).map(|_| Netns::new("pod").expect("pod")).collect();
    for (i, p) in pods.iter().enumerate() {
        cni::add(&na, p, &format!("m{i}"), &conf).expect("ADD");
    }
    let url = format!("http://{listen}/metrics");
    // The workload routes are in the kernel once the installer saw the veths.
    wait_until(T, "2 workload routes", || {
        let t = curl(&na, &url);
        (sample(&t, "ipipd_fib_routes{kind=\"workload\"}") == Some(2.0)).then_some(())
    })
    .expect("workload routes");
    let text = curl(&na, &url);

    // promtool accepts the exposition.
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    if let Some(mut stdin) = check.stdin.take() {
        use std::io::Write;
        stdin.write_all(text.as_bytes()).expect("write");
    }
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The values are what `show` says.
    let peer = a.peer(B).expect("peer b");
    let s = |series: &str| sample(&text, series);
    assert_eq!(
        s(&format!("ipipd_bgp_peer_up{{kind=\"mesh\",peer=\"{B}\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        s(&format!("ipipd_bgp_prefixes_received{{peer=\"{B}\"}}")),
        Some(peer.received as f64)
    );
    assert_eq!(
        s(&format!("ipipd_bgp_prefixes_accepted{{peer=\"{B}\"}}")),
        Some(peer.accepted as f64)
    );
    assert_eq!(
        s(&format!("ipipd_bgp_updates_received_total{{peer=\"{B}\"}}")),
        Some(peer.updates_received as f64)
    );
    assert!(
        s(&format!("ipipd_bgp_updates_sent_total{{peer=\"{B}\"}}")).unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert_eq!(s("ipipd_ipam_addresses_allocated"), Some(2.0));
    assert_eq!(s("ipipd_fib_routes{kind=\"remote\"}"), Some(1.0));
    assert_eq!(s("ipipd_fib_routes{kind=\"blackhole\"}"), Some(1.0));
    assert_eq!(s("ipipd_fib_errors_total"), Some(0.0));
    assert_eq!(
        s("ipipd_rib_prefixes"),
        Some(2.0),
        "own block and b's: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ipipd_build_info{version=")),
        "{text}"
    );

    // A session reset: the peer is still exported (up 0), and counters never go back.
    let before = s(&format!("ipipd_bgp_updates_received_total{{peer=\"{B}\"}}")).unwrap_or(0.0);
    b.stop("KILL").expect("kill b");
    wait_until(T, "peer b down in the metrics", || {
        let t = curl(&na, &url);
        (sample(
            &t,
            &format!("ipipd_bgp_peer_up{{kind=\"mesh\",peer=\"{B}\"}}"),
        ) == Some(0.0))
        .then_some(())
    })
    .expect("b down");
    b.restart().expect("restart b");
    a.wait_established(B, T).expect("b back");
    wait_until(T, "updates counted after the reset", || {
        let t = curl(&na, &url);
        let after = sample(
            &t,
            &format!("ipipd_bgp_updates_received_total{{peer=\"{B}\"}}"),
        )?;
        (after > before).then_some(())
    })
    .expect("counter grew past its value before the reset");

    // A real Prometheus server scrapes it.
    let tmp = TempDir::new("prom").expect("tmp");
    let prom_conf = tmp.join("prometheus.yml");
    std::fs::write(
        &prom_conf,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: ipipd\n    static_configs:\n      - targets: [\"{listen}\"]\n"
        ),
    )
    .expect("prometheus.yml");
    let mut cmd = na.command("prometheus");
    cmd.arg(format!("--config.file={}", prom_conf.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            tmp.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:19090");
    let _prom = Proc::spawn(cmd, "prometheus", &tmp.join("prometheus.log")).expect("prometheus");
    let query = |q: &str| {
        let out = na
            .run(&[
                "curl",
                "-sf",
                "--max-time",
                "5",
                "--get",
                "--data-urlencode",
                &format!("query={q}"),
                "http://127.0.0.1:19090/api/v1/query",
            ])
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned)
    };
    wait_until(Duration::from_secs(30), "Prometheus scraped ipipd", || {
        (query("up{job=\"ipipd\"}").as_deref() == Some("1")).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}; log:\n{}",
            std::fs::read_to_string(tmp.join("prometheus.log")).unwrap_or_default()
        )
    });
    wait_until(T, "ipipd's series in Prometheus", || {
        (query(&format!("ipipd_bgp_peer_up{{peer=\"{B}\"}}")).as_deref() == Some("1")
            && query("ipipd_ipam_addresses_allocated").as_deref() == Some("2"))
        .then_some(())
    })
    .expect("series");
}
