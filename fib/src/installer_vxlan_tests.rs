//! The installer in VXLAN mode over the in-memory FIB: the device, the neighbour and
//! FDB entries, adoption, repair, and next hops with no known endpoint.

use std::time::Duration;

use super::tests::eventually;
use super::*;
use crate::vtep::{vtep_mac, FdbEntry, NeighEntry, VtepOp, VtepTable};
use crate::{MemFib, MemHandle, NextHop, RouteKind, Underlay, Vxlan};

const NODE: &str = "172.29.235.101";
const B: &str = "172.29.235.130";
const C: &str = "172.29.235.140";
const DEV: &str = "vxlan.calico";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

fn settings() -> Settings {
    let mut s = Settings::new(Mode::Always, ip(NODE));
    s.tunnel = DEV.into();
    s.vxlan = Some(Vxlan {
        vni: 4096,
        port: 4789,
        mac: None,
    });
    s
}

fn fib() -> (MemFib, MemHandle) {
    let (fib, handle) = MemFib::new();
    handle.set_underlay(Some(Underlay {
        subnet: "172.29.235.0/24".parse().expect("subnet"),
        device: "eth0".into(),
        mtu: 1500,
    }));
    handle.set_link("eth0", true);
    (fib, handle)
}

fn inputs(vteps: &[&str]) -> Inputs {
    let mut i = Inputs::default();
    i.remote.insert(
        "101.88.228.192/26".parse().expect("prefix"),
        vec![IpAddr::V4(ip(B))],
    );
    i.remote.insert(
        "101.99.1.0/26".parse().expect("prefix"),
        vec![IpAddr::V4(ip("192.0.2.1"))],
    );
    i.vteps = Some(crate::vtep::derived(vteps.iter().map(|s| ip(s))));
    i
}

fn entries(nodes: &[&str]) -> VtepTable {
    VtepTable {
        neigh: nodes
            .iter()
            .map(|n| NeighEntry {
                ip: ip(n).into(),
                mac: Some(vtep_mac(ip(n))),
                permanent: true,
            })
            .collect(),
        fdb: nodes
            .iter()
            .map(|n| FdbEntry {
                mac: vtep_mac(ip(n)),
                dst: Some(ip(n).into()),
                permanent: true,
            })
            .collect(),
    }
}

#[tokio::test]
async fn the_device_is_vxlan_with_the_derived_mac_and_mtu_minus_50() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings()).await.expect("start");
    let spec = handle.tunnel().expect("device made");
    assert_eq!(spec.name, DEV);
    assert_eq!(spec.mtu, Some(1450));
    assert_eq!(
        spec.vxlan,
        Some(crate::VxlanDevice {
            vni: 4096,
            port: 4789,
            local: ip(NODE).into(),
            mac: vtep_mac(ip(NODE)),
        })
    );
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn known_nodes_get_entries_and_tunnelled_routes_others_plain_routes() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings()).await.expect("start");
    installer.set_inputs(inputs(&[B, C, NODE]));
    installer.converged();
    eventually("an entry pair per other node", || {
        handle.vteps().neigh.len() == 2 && handle.vteps().fdb.len() == 2
    })
    .await;
    let routes = handle.routes();
    assert_eq!(
        routes.get(&"101.88.228.192/26".parse().expect("p")),
        Some(&RouteKind::Via(vec![NextHop {
            gateway: IpAddr::V4(ip(B)),
            device: Some(DEV.into()),
            onlink: true,
        }]))
    );
    assert_eq!(
        routes.get(&"101.99.1.0/26".parse().expect("p")),
        Some(&RouteKind::Via(vec![NextHop {
            gateway: IpAddr::V4(ip("192.0.2.1")),
            device: None,
            onlink: false,
        }])),
        "no endpoint known for this next hop: no encapsulation"
    );
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn entries_in_place_are_adopted_and_stale_ones_wait_for_convergence() {
    let (fib, handle) = fib();
    handle.preload_vteps(entries(&[B, "172.29.235.199"]));
    let installer = Installer::start_with(fib, settings()).await.expect("start");
    installer.set_inputs(inputs(&[B]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        handle.vtep_log().is_empty(),
        "before convergence nothing is written or deleted: {:?}",
        handle.vtep_log()
    );
    installer.converged();
    eventually("the stale pair removed", || handle.vteps() == entries(&[B])).await;
    assert!(
        handle.vtep_log().iter().all(|op| !op.is_write()),
        "the wanted pair was never rewritten: {:?}",
        handle.vtep_log()
    );
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn a_neighbour_entry_deleted_by_hand_is_put_back_and_counted() {
    let (fib, handle) = fib();
    let installer = Installer::start_with(fib, settings()).await.expect("start");
    installer.set_inputs(inputs(&[B]));
    installer.converged();
    eventually("the pair", || handle.vteps() == entries(&[B])).await;
    let repairs = installer.stats().drift_repairs;
    handle.delete_neigh(ip(B));
    eventually("put back", || handle.vteps().neigh == entries(&[B]).neigh).await;
    assert!(handle.vtep_log().contains(&VtepOp::SetNeigh {
        ip: ip(B).into(),
        mac: vtep_mac(ip(B))
    }));
    eventually("counted as a repair", || {
        installer.stats().drift_repairs > repairs
    })
    .await;
    installer.stop(false).await.expect("stop");
}

#[tokio::test]
async fn a_chosen_mac_goes_on_the_device_and_known_macs_into_the_entries() {
    let (fib, handle) = fib();
    let own = [0x0a, 1, 2, 3, 4, 5];
    let theirs = [0x0e, 9, 8, 7, 6, 5];
    let mut s = settings();
    s.vxlan = s.vxlan.map(|v| Vxlan {
        mac: Some(own),
        ..v
    });
    let installer = Installer::start_with(fib, s).await.expect("start");
    assert_eq!(
        handle.tunnel().and_then(|t| t.vxlan).map(|v| v.mac),
        Some(own)
    );
    let mut i = inputs(&[]);
    i.vteps = Some([(ip(B), theirs)].into());
    installer.set_inputs(i);
    installer.converged();
    let want = VtepTable {
        neigh: vec![NeighEntry {
            ip: ip(B).into(),
            mac: Some(theirs),
            permanent: true,
        }],
        fdb: vec![FdbEntry {
            mac: theirs,
            dst: Some(ip(B).into()),
            permanent: true,
        }],
    };
    eventually("the pair with the known MAC", || handle.vteps() == want).await;
    // The MAC changes (the node chose another): the pair follows.
    let mut i = inputs(&[]);
    i.vteps = Some(crate::vtep::derived([ip(B)]));
    installer.set_inputs(i);
    eventually("the pair with the new MAC", || {
        handle.vteps() == entries(&[B])
    })
    .await;
    installer.stop(false).await.expect("stop");
}
