//! etcd v3's JSON gateway (grpc-gateway over the v3 protobufs, etcd 3.4): request
//! bodies and the decoding of answers. Keys and values are base64; 64-bit integers
//! arrive as strings (proto3 JSON), fields with default values are left out.
//! Decoding is a pure function of the bytes: everything here is untrusted input.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::kv::{prefix_end, Change, Compare, Counted, KeyValue, Op, Range, TxnResult};

/// proto3 JSON int64: a string of digits, or (leniently) a number.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(i64),
    }
    match Either::deserialize(d)? {
        Either::N(n) => Ok(n),
        Either::S(s) => s.parse().map_err(de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize)]
struct Header {
    #[serde(default, deserialize_with = "int64")]
    revision: i64,
}

#[derive(Debug, Deserialize)]
struct WireKv {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int64")]
    mod_revision: i64,
    #[serde(default, deserialize_with = "int64")]
    version: i64,
}

#[derive(Debug, Deserialize)]
struct RangeResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<WireKv>,
}

#[derive(Debug, Deserialize)]
struct TxnResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    succeeded: bool,
}

#[derive(Debug, Deserialize)]
struct WatchResult {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    compact_revision: i64,
    #[serde(default)]
    cancel_reason: String,
    #[serde(default)]
    events: Vec<WireEvent>,
}

#[derive(Debug, Deserialize)]
struct WireEvent {
    /// "PUT" (proto3 JSON leaves the default out) or "DELETE".
    #[serde(default, rename = "type")]
    kind: String,
    kv: WireKv,
}

#[derive(Debug, Deserialize)]
struct WatchLine {
    result: Option<WatchResult>,
    error: Option<Value>,
}

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    Created,
    /// Events up to this revision (or a progress notification without events).
    Changed {
        revision: i64,
        changes: Vec<Change>,
    },
    Compacted {
        compact_revision: i64,
    },
    Canceled {
        reason: String,
    },
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(s: &str, what: &str) -> Result<Vec<u8>, String> {
    B64.decode(s)
        .map_err(|e| format!("{what} is not base64: {e}"))
}

fn kv(w: WireKv) -> Result<KeyValue, String> {
    let key = String::from_utf8(unb64(&w.key, "key")?).map_err(|_| "key is not UTF-8")?;
    Ok(KeyValue {
        key,
        value: unb64(&w.value, "value")?,
        mod_revision: w.mod_revision,
        version: w.version,
    })
}

pub fn range_request(prefix: &str) -> Value {
    json!({ "key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes())) })
}

/// A range over `prefix` that sends one key, the one written last, without its value,
/// and the number of keys under the prefix.
pub fn count_request(prefix: &str) -> Value {
    json!({ "key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes())),
            "keys_only": true, "limit": "1", "sort_order": "DESCEND", "sort_target": "MOD" })
}

fn op(o: &Op) -> Value {
    match o {
        Op::Put(k, v) => json!({ "request_put": { "key": b64(k.as_bytes()), "value": b64(v) } }),
        Op::Delete(k) => json!({ "request_delete_range": { "key": b64(k.as_bytes()) } }),
        Op::DeletePrefix(p) => json!({ "request_delete_range": {
            "key": b64(p.as_bytes()), "range_end": b64(&prefix_end(p.as_bytes())) } }),
    }
}

pub fn txn_request(compare: &[Compare], success: &[Op], failure: &[Op]) -> Value {
    let compare: Vec<Value> = compare
        .iter()
        .map(|c| match c {
            Compare::Version(k, v) => json!({ "key": b64(k.as_bytes()), "result": "EQUAL",
                "target": "VERSION", "version": v.to_string() }),
            Compare::ModRevision(k, r) => json!({ "key": b64(k.as_bytes()), "result": "EQUAL",
                "target": "MOD", "mod_revision": r.to_string() }),
        })
        .collect();
    json!({
        "compare": compare,
        "success": success.iter().map(op).collect::<Vec<_>>(),
        "failure": failure.iter().map(op).collect::<Vec<_>>(),
    })
}

pub fn watch_request(prefix: &str, start_revision: i64) -> Value {
    json!({ "create_request": {
        "key": b64(prefix.as_bytes()),
        "range_end": b64(&prefix_end(prefix.as_bytes())),
        "start_revision": start_revision.to_string(),
    } })
}

pub fn decode_range(body: &[u8]) -> Result<Range, String> {
    let r: RangeResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(Range {
        revision: r.header.revision,
        kvs: r.kvs.into_iter().map(kv).collect::<Result<_, _>>()?,
    })
}

#[derive(Debug, Deserialize)]
struct CountResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<CountKv>,
    #[serde(default, deserialize_with = "int64")]
    count: i64,
}

#[derive(Debug, Deserialize)]
struct CountKv {
    #[serde(default, deserialize_with = "int64")]
    mod_revision: i64,
}

/// The answer to [`count_request`].
pub fn decode_count(body: &[u8]) -> Result<Counted, String> {
    let r: CountResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(Counted {
        revision: r.header.revision,
        keys: u64::try_from(r.count).map_err(|_| format!("negative count {}", r.count))?,
        last_written: r.kvs.first().map_or(0, |kv| kv.mod_revision),
    })
}

pub fn decode_txn(body: &[u8]) -> Result<TxnResult, String> {
    let r: TxnResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(TxnResult {
        succeeded: r.succeeded,
        revision: r.header.revision,
    })
}

pub fn decode_watch(line: &[u8]) -> Result<WatchMessage, String> {
    let l: WatchLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if let Some(e) = l.error {
        return Err(format!("watch error: {e}"));
    }
    let r = l.result.ok_or("watch message without result")?;
    Ok(if r.compact_revision > 0 {
        WatchMessage::Compacted {
            compact_revision: r.compact_revision,
        }
    } else if r.canceled {
        WatchMessage::Canceled {
            reason: r.cancel_reason,
        }
    } else if r.created {
        WatchMessage::Created
    } else {
        let changes = r
            .events
            .into_iter()
            .map(|e| {
                let deleted = match e.kind.as_str() {
                    "" | "PUT" => false,
                    "DELETE" => true,
                    other => return Err(format!("watch event of type {other:?}")),
                };
                let kv = kv(e.kv)?;
                Ok(if deleted {
                    Change::Delete(kv.key)
                } else {
                    Change::Put(kv)
                })
            })
            .collect::<Result<_, String>>()?;
        WatchMessage::Changed {
            revision: r.header.revision,
            changes,
        }
    })
}

/// The gateway's error body, for messages: `{"error": ..., "message": ..., "code": n}`.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        message: Option<String>,
        error: Option<String>,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(E {
            message: Some(m), ..
        })
        | Ok(E { error: Some(m), .. }) => m,
        _ => String::from_utf8_lossy(body.get(..200).unwrap_or(body)).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_answer_of_etcd_3_4_decodes() {
        // As etcd 3.4.23's gateway answers (key "/k", value "v").
        let body = br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"5","raft_term":"2"},"kvs":[{"key":"L2s=","create_revision":"5","mod_revision":"5","version":"1","value":"dg=="}],"count":"1"}"#;
        let r = decode_range(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.revision, 5);
        assert_eq!(r.kvs[0].key, "/k");
        assert_eq!(r.kvs[0].value, b"v");
        assert_eq!((r.kvs[0].mod_revision, r.kvs[0].version), (5, 1));
        // An empty range leaves `kvs` out.
        let empty = decode_range(br#"{"header":{"revision":"7"}}"#).unwrap_or_default();
        assert_eq!((empty.revision, empty.kvs.len()), (7, 0));
    }

    #[test]
    fn txn_failure_leaves_succeeded_out() {
        let r = decode_txn(br#"{"header":{"revision":"9"}}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(!r.succeeded);
        let r = decode_txn(br#"{"header":{"revision":"10"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"10"}}}]}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(r.succeeded && r.revision == 10);
    }

    #[test]
    fn watch_messages() {
        assert_eq!(
            decode_watch(br#"{"result":{"header":{"revision":"3"},"created":true}}"#),
            Ok(WatchMessage::Created)
        );
        assert_eq!(
            decode_watch(br#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"L2s=","value":"dg==","mod_revision":"4","version":"1"}},{"type":"DELETE","kv":{"key":"L2s=","mod_revision":"4"}}]}}"#),
            Ok(WatchMessage::Changed {
                revision: 4,
                changes: vec![
                    Change::Put(KeyValue {
                        key: "/k".into(),
                        value: b"v".to_vec(),
                        mod_revision: 4,
                        version: 1
                    }),
                    Change::Delete("/k".into()),
                ]
            })
        );
        assert_eq!(
            decode_watch(br#"{"result":{"header":{"revision":"40"},"canceled":true,"compact_revision":"20"}}"#),
            Ok(WatchMessage::Compacted { compact_revision: 20 })
        );
        assert!(decode_watch(br#"{"error":{"grpc_code":14}}"#).is_err());
    }

    #[test]
    fn hostile_answers_are_errors() {
        assert!(decode_range(br#"{"kvs":[{"key":"!!!"}]}"#).is_err());
        assert!(decode_range(br#"{"header":{"revision":"x"}}"#).is_err());
        assert!(decode_range(br#"{"kvs":[{"key":"/w=="}]}"#).is_err());
        assert!(decode_txn(b"[").is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_range(&bytes);
            let _ = decode_txn(&bytes);
            let _ = decode_watch(&bytes);
            let _ = error_message(&bytes);
        }

        #[test]
        fn encoded_kvs_decode_back(key in "[ -~]{1,40}", value in proptest::collection::vec(proptest::num::u8::ANY, 0..64), rev in 1i64..i64::MAX) {
            let body = json!({"header": {"revision": rev.to_string()}, "kvs": [{
                "key": b64(key.as_bytes()), "value": b64(&value),
                "mod_revision": rev.to_string(), "version": "1"}]});
            let r = decode_range(body.to_string().as_bytes()).map_err(proptest::test_runner::TestCaseError::fail)?;
            proptest::prop_assert_eq!(r.kvs.len(), 1);
            proptest::prop_assert_eq!(&r.kvs[0].key, &key);
            proptest::prop_assert_eq!(&r.kvs[0].value, &value);
            proptest::prop_assert_eq!(r.kvs[0].mod_revision, rev);
        }
    }

    #[test]
    fn a_count_answer_gives_the_count_and_the_last_write() {
        // etcd 3.4's answer to `count_request` (keys_only, limit 1, by mod_revision).
        let body = br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"5","raft_term":"2"},"kvs":[{"key":"L3cvYQ==","create_revision":"2","mod_revision":"4","version":"2"}],"more":true,"count":"2"}"#;
        assert_eq!(
            decode_count(body),
            Ok(Counted {
                revision: 5,
                keys: 2,
                last_written: 4
            })
        );
        // No key under the prefix: proto3 JSON leaves count and kvs out.
        let empty = br#"{"header":{"revision":"5"}}"#;
        assert_eq!(
            decode_count(empty),
            Ok(Counted {
                revision: 5,
                keys: 0,
                last_written: 0
            })
        );
        assert!(decode_count(br#"{"count":"-1"}"#).is_err());
    }
}
