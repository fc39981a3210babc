//! A quiet watch is checked with one small read on a real etcd: the key count and the
//! latest write under the prefix, against the view (no values sent).

use std::time::Duration;

use anyhow::{ensure, Result};
use datastore::{Datastore, EtcdKv, EtcdSettings, NodeRecord};
use interop::etcd::EtcdCluster;
use interop::harness::{require_root, Lan};

const ETCD: [&str; 3] = ["172.29.241.11", "172.29.241.12", "172.29.241.13"];

fn store(endpoints: &[String]) -> Result<Datastore<EtcdKv>> {
    Ok(Datastore::new(
        EtcdKv::new(&EtcdSettings {
            endpoints: endpoints.to_vec(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(3),
        })?,
        "/cur",
    ))
}

/// Runs `f` on a runtime whose threads are in the namespace `ns`.
fn in_ns<T: Send>(ns: &str, f: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    interop::rawpeer::netns::in_netns(ns, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)
    })
}

fn record(name: &str, last: u8) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        address: std::net::Ipv4Addr::new(10, 9, 0, last),
        address_v6: None,
        asn: 64512,
        port: 179,
        rr_cluster_id: None,
        vxlan_mac: None,
        vxlan_mac_v6: None,
    }
}

#[test]
fn a_view_is_checked_against_etcd_without_a_full_read() -> Result<()> {
    require_root();
    interop::etcd::require_etcd();
    let mut lan = Lan::new()?;
    let mut etcd = EtcdCluster::start(&mut lan, &ETCD)?;
    let host = lan.host("172.29.241.100/24")?;
    let all = etcd.endpoints();
    let before_deletion = in_ns(&host.name, async {
        let ds = store(&all)?;
        ds.register(&record("a", 1)).await?;
        let view = ds.snapshot().await?;
        ensure!(
            ds.is_current(&view).await?,
            "a fresh read counts as current"
        );
        ds.register(&record("b", 2)).await?;
        ensure!(
            !ds.is_current(&view).await?,
            "a missed creation went unnoticed"
        );
        let view = ds.snapshot().await?;
        ds.register(&record("b", 3)).await?;
        ensure!(
            !ds.is_current(&view).await?,
            "a missed rewrite went unnoticed"
        );
        Ok(ds.snapshot().await?)
    })?;
    // A deletion from outside: no later write, one key fewer.
    etcd.etcdctl(&["del", "/cur/nodes/b"])?;
    in_ns(&host.name, async {
        let ds = store(&all)?;
        ensure!(
            !ds.is_current(&before_deletion).await?,
            "a missed deletion went unnoticed"
        );
        let fresh = ds.snapshot().await?;
        ensure!(
            ds.is_current(&fresh).await?,
            "a read after the deletion counts as current"
        );
        Ok(())
    })?;
    // A member without quorum refuses the check instead of answering for its view.
    etcd.kill(1)?;
    etcd.kill(2)?;
    let refused = in_ns(&host.name, async {
        Ok(store(&all[..1])?
            .is_current(&before_deletion)
            .await
            .is_err())
    })?;
    ensure!(refused, "a member without quorum answered the check");
    Ok(())
}
