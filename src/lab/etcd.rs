//! `ipipd lab --datastore etcd`: a one-member etcd on the underlay bridge, its data
//! under the lab's run directory (removed with it), and the one configuration file
//! every node runs from.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::netns::{ip, Guard};

/// etcd's address on the underlay bridge (nodes are .101 and up).
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(172, 29, 235, 2);

pub fn endpoint() -> String {
    format!("http://{ADDRESS}:2379")
}

/// Starts etcd in the underlay namespace and waits until it answers its health check.
pub fn start(guard: &mut Guard, underlay: &str, dir: &Path) -> anyhow::Result<u32> {
    ip(&[
        "-n",
        underlay,
        "addr",
        "add",
        &format!("{ADDRESS}/24"),
        "dev",
        "br0",
    ])?;
    let data = dir.join("etcd");
    let data_s = data.display().to_string();
    let client = endpoint();
    let peer = format!("http://{ADDRESS}:2380");
    let log = dir.join("etcd.log");
    let pid = guard.spawn_env(
        underlay,
        &[
            "etcd",
            "--name",
            "lab",
            "--data-dir",
            &data_s,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("lab={peer}"),
        ],
        &[],
        &log,
    )?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let ns = ::netns::Netns::existing(underlay);
        if ns.in_netns(healthy).unwrap_or(false) {
            return Ok(pid);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    bail!("etcd did not become healthy within 20 s; its log:\n{text}")
}

/// etcd's `/health` says `"health":"true"` once it has a leader.
fn healthy() -> bool {
    let addr = SocketAddr::from((ADDRESS, 2379));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.0\r\nHost: {ADDRESS}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

/// The one file every node runs from: identity, socket and state directory come from
/// IPIPD_NODE_NAME, IPIPD_NODE_ADDRESS, IPIPD_SOCKET and IPIPD_STATE_DIR.
pub fn config(pool: &str) -> String {
    format!(
        "[node]\nasn = 64512\n\n[cluster]\npools = [\"{pool}\"]\nblock_size = 26\nmesh = true\n\n\
         [bgp]\nhold_time = 9\ngraceful_restart_time = 30\nconnect_retry_time = 1\n\n\
         [datastore]\nkind = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/ipipd\"\n",
        endpoint()
    )
}
