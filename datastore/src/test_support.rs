//! What the datastore's tests share: a pools record, node records, a runtime.

use std::collections::BTreeMap;

use crate::model::{NodeRecord, PoolsRecord};

/// One pool cut in blocks of `size`.
pub fn pools(pool: &str, size: u8) -> PoolsRecord {
    PoolsRecord {
        pools: vec![pool.parse().unwrap_or_else(|e| panic!("{e}"))],
        block_size_v4: size,
        block_size_v6: 122,
        block_sizes: BTreeMap::new(),
    }
}

pub fn node(i: usize) -> NodeRecord {
    NodeRecord {
        name: format!("node-{i}"),
        address: std::net::Ipv4Addr::new(10, 0, 0, i as u8 + 1),
        address_v6: None,
        asn: 64512,
        port: 179,
        rr_cluster_id: None,
        vxlan_mac: None,
        vxlan_mac_v6: None,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}
