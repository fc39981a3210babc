//! Everything ipipd decodes from etcd: the JSON gateway's range, txn, watch and error
//! answers, and the node, block, affinity and pools values under the prefix. Nothing
//! panics; what a full read keeps is valid (node names, block network addresses) and
//! each kept record encodes and decodes back to itself.
#![no_main]

use datastore::etcd::wire;
use datastore::kv::{KeyValue, Range};
use datastore::model::{block_id, parse_block_id, valid_name, Keys, Snapshot};
use datastore::{BlockRecord, NodeRecord, PoolsRecord};
use libfuzzer_sys::fuzz_target;

/// Keys a value is tried under, so that value decoders are reached without the fuzzer
/// having to find base64 first.
const KEYS: [&str; 5] = [
    "/ipipd/nodes/node-1",
    "/ipipd/blocks/10.64.0.0-26",
    "/ipipd/affinity/node-1/10.64.0.0-26",
    "/ipipd/config/pools",
    "/ipipd/other",
];

fn check(keys: &Keys, range: &Range) {
    let s = Snapshot::decode(keys, range);
    assert_eq!(s.revision, range.revision);
    assert!(s.invalid.len() <= range.kvs.len());
    for (name, n) in &s.nodes {
        assert!(valid_name(name) && n.name == *name, "kept node {name:?}");
        let back: NodeRecord = serde_json::from_slice(
            &serde_json::to_vec(n).unwrap_or_else(|e| panic!("encoding {n:?}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{n:?} does not decode back: {e}"));
        assert_eq!(&back, n);
    }
    for (net, b) in &s.blocks {
        assert_eq!(net.trunc(), *net, "kept block {net} with host bits");
        assert_eq!(parse_block_id(&block_id(net)), Some(*net));
        assert!(valid_name(&b.record.node));
        let back: BlockRecord = serde_json::from_slice(
            &serde_json::to_vec(&b.record).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{:?} does not decode back: {e}", b.record));
        assert_eq!(back, b.record);
    }
    for (node, net) in s.affinities.keys() {
        assert!(valid_name(node) && net.trunc() == *net);
    }
    if let Some(p) = &s.pools {
        let back: PoolsRecord =
            serde_json::from_slice(&serde_json::to_vec(p).unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{p:?} does not decode back: {e}"));
        assert_eq!(&back, p);
    }
}

fuzz_target!(|data: &[u8]| {
    let keys = Keys::new("/ipipd");
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Gateway answers, as bytes off the wire.
    if let Ok(range) = wire::decode_range(rest) {
        check(&keys, &range);
    }
    let _ = wire::decode_txn(rest);
    if let Ok(wire::WatchMessage::Compacted { compact_revision }) = wire::decode_watch(rest) {
        assert!(compact_revision > 0);
    }
    let _ = wire::error_message(rest);
    // Values (and key suffixes) as a range would carry them after base64.
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Some(net) = parse_block_id(text) {
            assert_eq!(block_id(&net), text, "a second spelling of {net}");
        }
        let odd_key = format!("/ipipd/nodes/{text}");
        let block_key = format!("/ipipd/blocks/{text}");
        let aff_key = format!("/ipipd/affinity/{text}");
        let range = Range {
            revision: 1,
            kvs: [odd_key, block_key, aff_key]
                .into_iter()
                .map(|key| KeyValue {
                    key,
                    value: br#"{"node":"n","state":"confirmed","name":"n","address":"10.0.0.1","asn":1}"#.to_vec(),
                    mod_revision: 1,
                    version: 1,
                })
                .collect(),
        };
        check(&keys, &range);
    }
    let key = KEYS[usize::from(selector) % KEYS.len()];
    let range = Range {
        revision: i64::from(selector),
        kvs: vec![KeyValue {
            key: key.to_owned(),
            value: rest.to_vec(),
            mod_revision: 1,
            version: 1,
        }],
    };
    check(&keys, &range);
});
