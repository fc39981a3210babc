//! Re-sending a transaction to the next endpoint, against stand-in gateways on
//! loopback: one that takes the request and never answers (as an etcd member whose
//! commit outlives the client's timeout), one that refuses connections, and one that
//! answers that the comparisons failed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{EtcdKv, EtcdSettings};
use crate::kv::{Compare, Kv, Op};
use crate::Error;

/// Takes connections and reads requests, never answering.
async fn silent() -> String {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            held.push(s);
        }
    });
    format!("http://{addr}")
}

/// An address nothing listens on.
async fn refusing() -> String {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(l);
    format!("http://{addr}")
}

/// Answers every request with a transaction whose comparisons failed.
async fn compare_fails() -> String {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then as much body as Content-Length says.
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(buf.get(..n).unwrap_or_default());
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let body = br#"{"header":{"revision":"9"}}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
            });
        }
    });
    format!("http://{addr}")
}

fn kv(endpoints: Vec<String>) -> EtcdKv {
    EtcdKv::new(&EtcdSettings {
        endpoints,
        ca_file: None,
        cert_file: None,
        key_file: None,
        dial_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(300),
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn create(kv: &EtcdKv) -> Result<bool, Error> {
    let key = "/t/blocks/10.64.0.0-28".to_owned();
    kv.txn(
        vec![Compare::Version(key.clone(), 0)],
        vec![Op::Put(key, b"{}".to_vec())],
        vec![],
    )
    .await
    .map(|r| r.succeeded)
}

/// The first member may have committed the create: the second one's "compare failed"
/// may be about that very create, so it is no answer.
#[tokio::test]
async fn a_failed_compare_after_a_timeout_is_an_unknown_outcome() {
    let kv = kv(vec![silent().await, compare_fails().await]);
    let r = create(&kv).await;
    assert!(matches!(r, Err(Error::OutcomeUnknown { .. })), "{r:?}");
}

/// A refused connection sent nothing: the second member's answer stands.
#[tokio::test]
async fn a_failed_compare_after_a_refused_connection_is_an_answer() {
    let kv = kv(vec![refusing().await, compare_fails().await]);
    let r = create(&kv).await;
    assert!(matches!(r, Ok(false)), "{r:?}");
}

#[tokio::test]
async fn no_answer_at_all_is_an_unknown_outcome_unless_nothing_was_sent() {
    let r = create(&kv(vec![refusing().await, silent().await])).await;
    assert!(matches!(r, Err(Error::OutcomeUnknown { .. })), "{r:?}");
    let r = create(&kv(vec![refusing().await, refusing().await])).await;
    assert!(matches!(r, Err(Error::Unreachable { .. })), "{r:?}");
    // Reads change nothing: out of reach is all they can be.
    let r = kv(vec![silent().await]).range("/t/").await;
    assert!(matches!(r, Err(Error::Unreachable { .. })), "{r:?}");
}
