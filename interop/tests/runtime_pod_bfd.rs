//! BFD as the DaemonSet runs it: the keeper in a container of its own
//! (`ipipd bfd-keeper --config`, `[bfd] keeper = "external"`), the daemon in
//! another, both on the node's network and sharing its state directory, in
//! the image `deploy/build-image.sh` builds. A BIRD 2 peer with BFD on and
//! graceful restart keeps the node's block, and the node keeps BIRD's, while
//! the daemon's container restarts (SIGTERM, then SIGKILL and 2 s down, more
//! than twice the detection time): its BFD session stays Up throughout,
//! because the keeper's container is untouched. Stopping the keeper's
//! container (SIGTERM) signals AdminDown: BIRD's session leaves Up.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use interop::bird::{self, Bird};
use interop::config::NodeConfig;
use interop::harness::{require_root, wait_until, Lan, TempDir};
use interop::ipipd::BfdJson;
use interop::podman::Store;

const A: &str = "172.29.236.101";
const B: &str = "172.29.236.140";
const BLOCK_A: &str = "101.76.10.128/26";
const BLOCK_B: &str = "101.101.4.0/26";
const T: Duration = Duration::from_secs(30);
/// Longer than the test: only BFD or a BGP NOTIFICATION may end the session.
const HOLD: u16 = 90;
const IMAGE: &str = "ipipd:podbfd";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn podman(store: &Store, args: &[&str]) -> Result<String> {
    let o = store.podman(args);
    ensure!(o.status.success(), "podman {args:?}: {}", text(&o));
    Ok(text(&o))
}

/// `podman run -d` of one container of the pod: the node's network, the
/// configuration, the state and run directories, the identity the downward
/// API gives, and only the capabilities the DaemonSet grants.
fn run(store: &Store, dir: &Path, name: &str, caps: &str, args: &[&str]) -> Result<String> {
    let volumes = [
        format!(
            "{}:/etc/ipipd/ipipd.toml:ro",
            dir.join("ipipd.toml").display()
        ),
        format!("{}:/var/lib/ipipd", dir.join("state").display()),
        format!("{}:/run/ipipd", dir.join("run").display()),
    ];
    let options = store.run_options();
    let mut all = vec!["run", "-d", "--name", name, "--network", "host"];
    all.extend(options.iter().map(String::as_str));
    for v in &volumes {
        all.extend(["-v", v.as_str()]);
    }
    let node_name = format!("IPIPD_NODE_NAME=node-{}", A.replace('.', "-"));
    let node_address = format!("IPIPD_NODE_ADDRESS={A}");
    all.extend(["-e", &node_name, "-e", &node_address]);
    all.extend(["--cap-drop", "ALL", "--cap-add", caps, IMAGE]);
    all.extend_from_slice(args);
    podman(store, &all)
}

/// `ipipd show bfd --json` from the host, through the socket the daemon's
/// container shares.
fn show_bfd(dir: &Path) -> Option<Vec<BfdJson>> {
    let socket = dir.join("run/ipipd.sock");
    let out = std::process::Command::new(interop::ipipd::binary())
        .args(["show", "bfd", "--json", "--socket"])
        .arg(&socket)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn bird_bfd_up(bird: &Bird<'_>) -> bool {
    bird.birdc(&["show", "bfd", "sessions"])
        .is_ok_and(|s| s.lines().any(|l| l.contains(A) && l.contains("Up")))
}

#[test]
fn the_keeper_container_keeps_bfd_up_while_the_daemon_container_restarts() -> Result<()> {
    require_root();
    ensure!(
        interop::harness::have("podman"),
        "podman missing (Debian package podman)"
    );
    let mut lan = Lan::new()?;
    let na = lan.host(&format!("{A}/24"))?;
    let nb = lan.host(&format!("{B}/24"))?;
    na.add_standin_tunl0()?;
    let conf = format!(
        "{}{}{}",
        bird::conf_base(B, &[BLOCK_B]),
        bird::conf_bfd("eth0", 300, 3),
        bird::conf_peer("n1", B, A, "bfd on;")
            .replace("hold time 9;", &format!("hold time {HOLD};"))
    );
    let bird = Bird::start(&nb, &conf)?;

    let tmp = TempDir::new("podbfd")?;
    for d in ["state", "run"] {
        std::fs::create_dir_all(tmp.join(d))?;
    }
    let mut node = NodeConfig::new(A, BLOCK_A)
        .mesh(&[A, B])
        .bfd(300, 3)
        .external_bfd_keeper();
    node.bgp.hold_time = Some(HOLD);
    std::fs::write(tmp.join("ipipd.toml"), node.toml())?;
    let store = Store::new(&tmp.join("podman"), "podbfd", "", Some(&na));
    let _image = store.build_image(IMAGE)?;

    let dir = tmp.join("");
    run(
        &store,
        &dir,
        "keeper",
        "NET_BIND_SERVICE",
        &["bfd-keeper", "--config", "/etc/ipipd/ipipd.toml"],
    )?;
    run(
        &store,
        &dir,
        "ipipd",
        "NET_ADMIN,NET_BIND_SERVICE",
        &["run", "--config", "/etc/ipipd/ipipd.toml"],
    )?;
    let logs = |name: &str| podman(&store, &["logs", name]).unwrap_or_else(|e| e.to_string());

    wait_until(T, "BFD with BIRD Up at ipipd", || {
        show_bfd(&dir)?
            .into_iter()
            .find(|s| s.peer.to_string() == B && s.state == "Up")
    })
    .with_context(|| format!("ipipd:\n{}\nkeeper:\n{}", logs("ipipd"), logs("keeper")))?;
    bird.wait_established("n1", T)?;
    bird.wait_route(BLOCK_A, A, T)?;
    na.wait_bgp_route_line(&format!("{BLOCK_B} via {B} dev tunl0 onlink"), T)?;
    wait_until(T, "BIRD's BFD session Up", || {
        bird_bfd_up(&bird).then_some(())
    })?;

    for sig in ["TERM", "KILL"] {
        let t0 = Instant::now();
        let (mut bird_lost, mut kernel_lost, mut bfd_left_up) = (false, false, false);
        let mut watch = || {
            bird_lost |= bird.best(BLOCK_A).is_none();
            kernel_lost |= !na.bgp_routes().contains(BLOCK_B);
            bfd_left_up |= !bird_bfd_up(&bird);
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::scope(|s| -> Result<()> {
            let op = s.spawn(|| -> Result<()> {
                if sig == "TERM" {
                    podman(&store, &["restart", "-t", "10", "ipipd"])?;
                } else {
                    podman(&store, &["kill", "-s", "KILL", "ipipd"])?;
                    std::thread::sleep(Duration::from_secs(2));
                    podman(&store, &["start", "ipipd"])?;
                }
                Ok(())
            });
            while !op.is_finished() {
                watch();
            }
            op.join()
                .map_err(|_| anyhow::anyhow!("podman thread panicked"))?
        })?;
        wait_until(T, "ipipd's session with BIRD Established again", || {
            bird.protocol_state("n1")
                .filter(|s| s.contains("Established"))
                .and_then(|_| show_bfd(&dir))
        })?;
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(2) {
            watch();
        }
        println!(
            "SIG{sig} restart of the daemon's container: back after {:.1} s; BIRD's BFD session left Up: {bfd_left_up}; BIRD lost {BLOCK_A}: {bird_lost}; the node's kernel lost {BLOCK_B}: {kernel_lost}",
            t0.elapsed().as_secs_f64()
        );
        let sessions = bird.birdc(&["show", "bfd", "sessions"])?;
        ensure!(
            !bfd_left_up,
            "BIRD's BFD session left Up during the SIG{sig} restart:\n{sessions}\nkeeper:\n{}",
            logs("keeper")
        );
        ensure!(
            !bird_lost,
            "BIRD dropped {BLOCK_A} during the SIG{sig} restart:\n{}",
            bird.log()
        );
        ensure!(
            !kernel_lost,
            "the node's kernel lost {BLOCK_B} during the SIG{sig} restart"
        );
    }

    // The keeper's container stopped (SIGTERM): AdminDown, BIRD's session leaves Up.
    let t0 = Instant::now();
    podman(&store, &["stop", "-t", "10", "keeper"])?;
    wait_until(
        Duration::from_secs(5),
        "BIRD's BFD session to leave Up",
        || (!bird_bfd_up(&bird)).then_some(()),
    )
    .with_context(|| format!("keeper:\n{}", logs("keeper")))?;
    let keeper_log = logs("keeper");
    ensure!(
        keeper_log.contains("SIGTERM"),
        "the keeper did not say why it signalled AdminDown:\n{keeper_log}"
    );
    println!(
        "keeper container stopped: BIRD's BFD session left Up after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
