//! [`Kv`] on a real etcd v3 cluster through its JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/watch`), over HTTP or HTTPS with client certificates.
//!
//! The gateway rather than gRPC: the build needs no `protoc` and no generated code,
//! and every answer goes through one small, tested decoder ([`wire`]).

pub mod wire;

#[cfg(test)]
mod resend_tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::kv::{Compare, Counted, Kv, Op, Range, TxnResult, Watch, WatchEvent};
use crate::Error;

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `http://host:port` or `https://host:port`, tried in turn.
    pub endpoints: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
}

/// Longest answer read (a full read of 10,000 nodes' keys fits easily).
const MAX_BODY: usize = 64 << 20;
/// Longest watch message.
const MAX_LINE: usize = 16 << 20;

#[derive(Clone)]
pub struct EtcdKv {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    /// Without an overall timeout: a watch lasts as long as it lasts.
    watch_client: reqwest::Client,
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first.
    current: AtomicUsize,
}

fn read(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn builder(s: &EtcdSettings) -> Result<reqwest::ClientBuilder, Error> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(s.dial_timeout)
        .tcp_nodelay(true)
        .no_proxy();
    if let Some(ca) = &s.ca_file {
        let cert = reqwest::Certificate::from_pem(&read(ca, "CA certificate")?)
            .map_err(|e| Error::Tls(format!("CA certificate {}: {e}", ca.display())))?;
        b = b.add_root_certificate(cert).tls_built_in_root_certs(false);
    }
    match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read(cert, "client certificate")?;
            pem.push(b'\n');
            pem.extend(read(key, "client key")?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| Error::Tls(format!("client certificate and key: {e}")))?;
            b = b.identity(id);
        }
        (None, None) => {}
        _ => {
            return Err(Error::Tls(
                "cert_file and key_file go together: set both or neither".into(),
            ))
        }
    }
    Ok(b)
}

impl EtcdKv {
    pub fn new(s: &EtcdSettings) -> Result<EtcdKv, Error> {
        if s.endpoints.is_empty() {
            return Err(Error::Tls("no etcd endpoint configured".into()));
        }
        let client = builder(s)?
            .timeout(s.request_timeout)
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        let watch_client = builder(s)?
            .http1_only()
            .tcp_keepalive(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(EtcdKv {
            inner: Arc::new(Inner {
                client,
                watch_client,
                endpoints: s
                    .endpoints
                    .iter()
                    .map(|e| e.trim_end_matches('/').to_owned())
                    .collect(),
                current: AtomicUsize::new(0),
            }),
        })
    }

    fn endpoints(&self) -> String {
        self.inner.endpoints.join(", ")
    }

    /// POSTs to each endpoint in turn, from the last one that answered.
    ///
    /// A request that may have reached etcd before failing (a timeout, a connection
    /// lost after sending, a 5xx) may have been applied there: the answer says so
    /// ([`Posted::after_unknown`]), and if no endpoint answers the error is
    /// [`Error::OutcomeUnknown`] rather than [`Error::Unreachable`].
    async fn post(&self, path: &'static str, body: serde_json::Value) -> Result<Posted, Error> {
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let mut last = String::new();
        let mut unknown: Option<String> = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let Some(ep) = self.inner.endpoints.get(idx) else {
                continue;
            };
            match self.post_one(ep, path, &body).await {
                Ok(bytes) => {
                    self.inner.current.store(idx, Ordering::Relaxed);
                    return Ok(Posted {
                        body: bytes,
                        after_unknown: unknown,
                    });
                }
                Err(f) => {
                    last = format!("{ep}: {}", f.reason);
                    if f.maybe_applied {
                        unknown = Some(last.clone());
                    }
                }
            }
        }
        let endpoints = self.endpoints();
        Err(match unknown {
            Some(reason) => Error::OutcomeUnknown { endpoints, reason },
            None => Error::Unreachable {
                endpoints,
                reason: last,
            },
        })
    }

    async fn post_one(
        &self,
        ep: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, Failed> {
        let resp = self
            .inner
            .client
            .post(format!("{ep}{path}"))
            .json(body)
            .send()
            .await
            // Only a connection never made is sure to have sent nothing.
            .map_err(|e| Failed::new(error_chain(&e), !e.is_connect()))?;
        let status = resp.status();
        let bytes = read_body(resp).await.map_err(|r| Failed::new(r, true))?;
        if !status.is_success() {
            // etcd's own timeouts ("request timed out", leader changes) come back as
            // 5xx and may still commit; a 4xx is a refusal.
            return Err(Failed::new(
                format!("{status}: {}", wire::error_message(&bytes)),
                status.is_server_error(),
            ));
        }
        Ok(bytes)
    }

    fn decode<T>(path: &'static str, r: Result<T, String>) -> Result<T, Error> {
        r.map_err(|reason| Error::Decode { path, reason })
    }
}

/// An answer, and whether an earlier attempt at it may have been applied (its failure).
struct Posted {
    body: Vec<u8>,
    after_unknown: Option<String>,
}

/// Why one attempt failed, and whether the request may have reached etcd.
struct Failed {
    reason: String,
    maybe_applied: bool,
}

impl Failed {
    fn new(reason: String, maybe_applied: bool) -> Failed {
        Failed {
            reason,
            maybe_applied,
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer longer than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl Kv for EtcdKv {
    async fn range(&self, prefix: &str) -> Result<Range, Error> {
        const PATH: &str = "/v3/kv/range";
        // A read changes nothing: whatever became of it, etcd is out of reach.
        let posted = self
            .post(PATH, wire::range_request(prefix))
            .await
            .map_err(Error::not_applied)?;
        Self::decode(PATH, wire::decode_range(&posted.body))
    }

    async fn count(&self, prefix: &str) -> Result<Counted, Error> {
        const PATH: &str = "/v3/kv/range";
        let posted = self
            .post(PATH, wire::count_request(prefix))
            .await
            .map_err(Error::not_applied)?;
        Self::decode(PATH, wire::decode_count(&posted.body))
    }

    async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<Op>,
        failure: Vec<Op>,
    ) -> Result<TxnResult, Error> {
        const PATH: &str = "/v3/kv/txn";
        let posted = self
            .post(PATH, wire::txn_request(&compare, &success, &failure))
            .await?;
        let r = Self::decode(PATH, wire::decode_txn(&posted.body))?;
        match posted.after_unknown {
            // The comparisons may have failed because of the earlier attempt itself
            // (a created key exists, a compared revision moved): no answer either way.
            Some(earlier) if !r.succeeded => Err(Error::OutcomeUnknown {
                endpoints: self.endpoints(),
                reason: format!(
                    "{earlier}; re-sent, and the comparisons failed at the next endpoint"
                ),
            }),
            // Applied now; an earlier application would have failed these comparisons
            // (every one ipipd makes is on a key the transaction writes), or, without
            // comparisons, wrote the same.
            _ => Ok(r),
        }
    }

    async fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch, Error> {
        let n = self.inner.endpoints.len();
        let start = self.inner.current.load(Ordering::Relaxed);
        let body = wire::watch_request(prefix, start_revision);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let Some(ep) = self.inner.endpoints.get(idx) else {
                continue;
            };
            let sent = self
                .inner
                .watch_client
                .post(format!("{ep}/v3/watch"))
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    self.inner.current.store(idx, Ordering::Relaxed);
                    let (tx, rx) = mpsc::channel(64);
                    let ep = ep.clone();
                    tokio::spawn(async move {
                        let why = stream(resp, tx).await;
                        tracing::info!(endpoint = %ep, reason = %why, "etcd watch ended");
                    });
                    return Ok(rx);
                }
                Ok(resp) => last = format!("{ep}: {}", resp.status()),
                Err(e) => last = format!("{ep}: {}", error_chain(&e)),
            }
        }
        Err(Error::Unreachable {
            endpoints: self.endpoints(),
            reason: last,
        })
    }
}

/// Passes a watch stream's messages on until it ends; returns why it ended.
async fn stream(mut resp: reqwest::Response, tx: mpsc::Sender<WatchEvent>) -> String {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = tokio::select! {
            c = resp.chunk() => c,
            _ = tx.closed() => return "watcher gone".into(),
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Ok(None) => return "stream closed by etcd".into(),
            Err(e) => return error_chain(&e),
        };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let event = match wire::decode_watch(line) {
                Ok(wire::WatchMessage::Created) => continue,
                Ok(wire::WatchMessage::Changed { revision, changes }) => {
                    WatchEvent::Changed { revision, changes }
                }
                Ok(wire::WatchMessage::Compacted { compact_revision }) => {
                    WatchEvent::Compacted { compact_revision }
                }
                Ok(wire::WatchMessage::Canceled { reason }) => {
                    return format!("canceled by etcd: {reason}")
                }
                Err(e) => return format!("undecodable watch message: {e}"),
            };
            if tx.send(event).await.is_err() {
                return "watcher gone".into();
            }
        }
        if buf.len() > MAX_LINE {
            return format!("watch message longer than {MAX_LINE} bytes");
        }
    }
}
