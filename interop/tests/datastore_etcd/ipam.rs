//! Allocations in etcd, with pods made through `ipipd-cni`: a node whose `state_dir` is
//! wiped hands out no live address; a requested address is given once; pods that leak
//! (their namespace gone without DEL, their node removed) are found by `ipam check` and
//! freed by `ipam release --from-report` only after a later check confirms them.

use super::*;

/// `ipipd ipam check --json` on `node`: the report and whether it exited 0.
fn ipam_check(node: &Node) -> Result<(serde_json::Value, bool)> {
    let out = node.cli(&["ipam", "check", "--json"])?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "ipam check: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    ensure!(
        matches!(out.status.code(), Some(0 | 1)),
        "ipam check exited {:?}",
        out.status
    );
    Ok((report, out.status.success()))
}

fn leaked(report: &serde_json::Value) -> BTreeSet<String> {
    report["leaked"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|x| x["address"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every address etcd records as held, with its handle.
fn etcd_allocations(c: &Cluster) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in c.etcd.get_prefix("/ipipd/ipam/")? {
        let v: serde_json::Value = serde_json::from_str(&v).with_context(|| k.clone())?;
        let cidr: ipnet::Ipv4Net = v["cidr"].as_str().unwrap_or_default().parse()?;
        let attrs = v["attributes"].as_array().cloned().unwrap_or_default();
        for (ordinal, a) in v["allocations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if let Some(i) = a.as_u64() {
                let ip = std::net::Ipv4Addr::from(u32::from(cidr.network()) + ordinal as u32);
                let handle = attrs
                    .get(i as usize)
                    .and_then(|x| x["handle"].as_str())
                    .unwrap_or_default();
                out.insert(ip.to_string(), handle.to_owned());
            }
        }
    }
    Ok(out)
}

fn release(node: &Node, report: &std::path::Path) -> Result<std::process::Output> {
    node.cli(&[
        "ipam",
        "release",
        "--from-report",
        &report.display().to_string(),
    ])
}

#[test]
fn allocations_live_in_etcd_wipes_requests_and_leaks() -> Result<()> {
    let mut c = start(2, "10.249.0.0/16")?;
    c.wait_full_mesh()?;
    let conf0 = c.nodes[0].cni_conf();
    let mut pods = BTreeMap::new();
    let mut given = BTreeSet::new();
    for i in 0..3 {
        let id = format!("w{i}");
        let (p, out) = pod_on(&c, 0, &id, &conf0)?;
        ensure!(out.ok(), "{id}: {}", out.stdout);
        given.insert(out.address().context("no address")?);
        pods.insert(id, p);
    }
    ensure!(
        given
            .iter()
            .all(|ip| etcd_allocations(&c).is_ok_and(|a| a.contains_key(ip))),
        "ADD answered before etcd held {given:?}: {:?}",
        etcd_allocations(&c)?
    );

    // Wiped state: node-0 loses its state_dir and restarts; its pods keep their
    // addresses and routes, and new pods get other addresses.
    c.nodes[0].stop("KILL")?;
    std::fs::remove_dir_all(c.nodes[0].dir.join("state"))?;
    c.nodes[0].restart()?;
    let routed: BTreeSet<String> = c.nodes[0]
        .workloads()?
        .iter()
        .map(|w| w.ip.to_string())
        .collect();
    ensure!(
        given.is_subset(&routed),
        "after the wipe node-0 routes {routed:?}, not all of {given:?}"
    );
    for i in 3..6 {
        let id = format!("w{i}");
        let (p, out) = pod_on(&c, 0, &id, &conf0)?;
        ensure!(out.ok(), "{id}: {}", out.stdout);
        let ip = out.address().context("no address")?;
        ensure!(
            given.insert(ip.clone()),
            "{ip} handed out again after the wipe"
        );
        pods.insert(id, p);
    }

    // A requested address, in a block no node holds: node-1 claims the block for it.
    let conf1 = c.nodes[1].cni_conf();
    let mut asked: serde_json::Value = serde_json::from_str(&conf1)?;
    asked["runtimeConfig"] = serde_json::json!({"ips": ["10.249.3.77/32"]});
    let asked = asked.to_string();
    let (p, out) = pod_on(&c, 1, "asks", &asked)?;
    ensure!(out.ok(), "requested: {}", out.stdout);
    ensure!(
        out.address().as_deref() == Some("10.249.3.77"),
        "{}",
        out.stdout
    );
    pods.insert("asks".into(), p);
    let before = etcd_allocations(&c)?;
    let links = interop::cni::cali_links(&c.nodes[1].ns);
    let (_p, out) = pod_on(&c, 1, "again", &asked)?;
    ensure!(out.code() == Some(102), "the same address twice: {out:?}");
    ensure!(
        out.json()["msg"]
            .as_str()
            .is_some_and(|m| m.contains("10.249.3.77 is in use by asks.eth0")),
        "{}",
        out.stdout
    );
    ensure!(
        etcd_allocations(&c)? == before,
        "the refused ADD changed etcd"
    );
    ensure!(
        interop::cni::cali_links(&c.nodes[1].ns) == links,
        "the refused ADD left a veth"
    );

    // Leaks: two pods of node-0 lose their namespace without DEL.
    let mut gone = BTreeSet::new();
    for id in ["w0", "w4"] {
        let p = pods.remove(id).context("pod")?;
        let ip = c.nodes[0]
            .workloads()?
            .into_iter()
            .find(|w| w.handle.as_deref() == Some(&format!("{id}.eth0")))
            .map(|w| w.ip.to_string())
            .context("workload")?;
        gone.insert(ip);
        drop(p);
    }
    let report = wait_until(T, "ipam check reports the two leaks", || {
        let (r, clean) = ipam_check(&c.nodes[1]).ok()?;
        (leaked(&r) == gone && !clean).then_some(r)
    })?;
    let dir = TempDir::new("ipamrep")?;
    let file = dir.join("report.json");
    std::fs::write(&file, serde_json::to_string(&report)?)?;
    let out = release(&c.nodes[1], &file)?;
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("run `ipipd ipam check` again"),
        "a release before a confirming check: {out:?}"
    );
    for ip in &gone {
        ensure!(
            etcd_allocations(&c)?.contains_key(ip),
            "{ip} freed without confirmation"
        );
    }
    let (again, _) = ipam_check(&c.nodes[0])?;
    ensure!(leaked(&again) == gone, "the confirming check: {again}");
    let out = release(&c.nodes[1], &file)?;
    ensure!(out.status.success(), "release: {out:?}");
    let held = etcd_allocations(&c)?;
    for ip in &gone {
        ensure!(!held.contains_key(ip), "{ip} still allocated: {held:?}");
    }
    let (r, clean) = ipam_check(&c.nodes[1])?;
    ensure!(clean, "after the release: {r}");

    // A node removed without DEL of its pods: its allocations (four pods and its
    // tunnel address) leak and its block records are orphans, until a confirmed release.
    c.power_off_and_remove(0, 1)?;
    let (r, clean) = ipam_check(&c.nodes[1])?;
    ensure!(
        !clean
            && r["leaked"]
                .as_array()
                .is_some_and(|l| l.len() == 5 && l.iter().all(|x| x["reason"] == "node removed"))
            && r["orphan_blocks"].as_array().is_some_and(|o| !o.is_empty()),
        "after node-0's removal: {r}"
    );
    std::fs::write(&file, serde_json::to_string(&r)?)?;
    ipam_check(&c.nodes[1])?;
    let out = release(&c.nodes[1], &file)?;
    ensure!(out.status.success(), "release: {out:?}");
    let (r, clean) = ipam_check(&c.nodes[1])?;
    ensure!(clean, "after releasing node-0's pods: {r}");
    Ok(())
}
