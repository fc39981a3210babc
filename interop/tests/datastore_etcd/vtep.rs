//! VXLAN on etcd: each node's VXLAN device carries the MAC its node record holds (a
//! random one, not the one derived from its address), the other nodes' neighbour and
//! FDB entries carry it, and it stays the same over a restart (not one echo lost) and
//! over a start without the device and the state directory (it comes from the record).
//! The nodes run without a mesh, under a route reflector: the tunnel endpoints known
//! are the registered nodes, so reflected routes go through the VXLAN device.

use super::*;

const POOL: &str = "10.251.0.0/24";
const DEV: &str = "vxlan.calico";

/// The cluster's file without a mesh; `reflector`: node-0's, with a cluster id.
fn config(endpoints: &[String], reflector: bool) -> String {
    let mut c = interop::etcd::cluster_node(endpoints, POOL);
    c.cluster.mesh = Some(false);
    if reflector {
        c.bgp.route_reflector_cluster_id = Some(node_address(0));
    }
    format!("{}\n[vxlan]\nmode = \"always\"\n", c.toml())
}

/// The MAC of `node`'s VXLAN device.
fn device_mac(node: &Node) -> Result<String> {
    let out = node.ns.ip(&["-j", "link", "show", "dev", DEV])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v[0]["address"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{}: no MAC in {out}", node.name))
}

/// The `vxlan_mac` of `name`'s record in etcd.
fn recorded_mac(c: &Cluster, name: &str) -> Result<String> {
    let key = format!("/ipipd/nodes/{name}");
    let (_, value) = c
        .etcd
        .get_prefix(&key)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .with_context(|| format!("no {key}"))?;
    let v: serde_json::Value = serde_json::from_str(&value)?;
    v["vxlan_mac"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no vxlan_mac in {value}"))
}

/// Whether `on` has the permanent neighbour and FDB entries for `to` with `mac`.
fn has_entries(on: &Node, to: &Node, mac: &str) -> bool {
    let neigh = on.ns.ip(&["neigh", "show", "dev", DEV]).unwrap_or_default();
    let fdb = on
        .ns
        .command("bridge")
        .args(["fdb", "show", "dev", DEV])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    neigh.lines().any(|l| {
        l.starts_with(&format!("{} ", to.address))
            && l.contains(&format!("lladdr {mac} "))
            && l.contains("PERMANENT")
    }) && fdb
        .lines()
        .any(|l| l.starts_with(&format!("{mac} dst {} ", to.address)) && l.contains("permanent"))
}

/// Each node's device has its record's MAC, not a derived one, and every other node
/// has the entries for it with that MAC; the MACs, by node.
fn check_macs(c: &Cluster) -> Result<Vec<String>> {
    let mut macs = Vec::new();
    for node in &c.nodes {
        let mac = device_mac(node)?;
        let recorded = recorded_mac(c, &node.name)?;
        ensure!(
            mac == recorded,
            "{}: device {mac}, record {recorded}",
            node.name
        );
        ensure!(
            !mac.starts_with("66:78:"),
            "{}: derived MAC {mac}",
            node.name
        );
        macs.push(mac);
    }
    for on in &c.nodes {
        for (to, mac) in c.nodes.iter().zip(&macs) {
            if to.name != on.name {
                wait_until(T, &format!("{}'s entries for {}", on.name, to.name), || {
                    has_entries(on, to, mac).then_some(())
                })?;
            }
        }
    }
    Ok(macs)
}

#[test]
fn vxlan_macs_come_from_the_node_records_under_a_route_reflector() -> Result<()> {
    let mut c = start_with(0, |e| config(e, false))?;
    let reflector = c._dir.join("reflector.toml");
    std::fs::write(&reflector, config(&c.etcd.endpoints(), true))?;
    let clients = c._dir.join("ipipd.toml");
    for i in 0..3 {
        let path = if i == 0 { &reflector } else { &clients };
        let n = Node::start(&mut c.lan, path, &format!("node-{i}"), &node_address(i))?;
        c.nodes.push(n);
    }
    let macs = check_macs(&c)?;

    // Two clients: node-2's block reaches node-1 through the reflector, and goes
    // through the VXLAN device.
    let (p1, out) = pod_on(&c, 1, "p1", &c.nodes[1].cni_conf())?;
    address(&out, "p1 on node-1")?;
    let (_p2, out) = pod_on(&c, 2, "p2", &c.nodes[2].cni_conf())?;
    let p2_ip = address(&out, "p2 on node-2")?;
    let via = format!("via {} dev {DEV} onlink", c.nodes[2].address);
    wait_until(
        T,
        "node-2's block on node-1 through the VXLAN device",
        || {
            c.nodes[1]
                .ns
                .ip(&["route", "show", "proto", "bgp"])
                .ok()?
                .contains(&via)
                .then_some(())
        },
    )
    .with_context(|| c.nodes[1].ns.ip(&["route"]).unwrap_or_default())?;
    ping(&p1, &p2_ip)?;

    // node-2 restarts while node-1's pod pings its pod: its device keeps its MAC, and
    // not one echo is lost.
    let pinger = p1
        .command("ping")
        .args(["-n", "-q", "-i", "0.2", "-c", "20", "-W", "1", &p2_ip])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    c.nodes[2].stop("TERM")?;
    c.nodes[2].restart()?;
    let out = pinger.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && text.contains(" 0% packet loss"),
        "pinging across node-2's restart: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(check_macs(&c)? == macs, "the MACs changed over a restart");

    // node-2 starts again without its device and its state directory (a reboot with
    // a wiped disk): the MAC is its record's.
    c.nodes[2].stop("TERM")?;
    c.nodes[2].ns.ip(&["link", "del", DEV])?;
    std::fs::remove_dir_all(c.nodes[2].dir.join("state"))?;
    c.nodes[2].restart()?;
    wait_until(T, "node-2's device back", || device_mac(&c.nodes[2]).ok())?;
    ensure!(
        check_macs(&c)? == macs,
        "the MACs changed over a start without device and state"
    );
    ping(&p1, &p2_ip)?;
    Ok(())
}
