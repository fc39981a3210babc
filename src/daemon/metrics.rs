//! Prometheus metrics: `GET /metrics` on `metrics.listen` (off unless set).
//!
//! Each scrape reads the daemon's published state into a [`Snapshot`] and renders it; no
//! metric is kept on the hot path. Counters come from counters the speaker and the FIB
//! installer keep anyway, which never go back (not even across a session reset).
//! Names follow bird_exporter and kube-router where an operator knows them.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use super::Daemon;

/// What one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub peers: Vec<PeerSample>,
    pub rib_prefixes: u64,
    pub fib_remote: u64,
    pub fib_blackhole: u64,
    pub fib_workload: u64,
    pub fib_errors: u64,
    pub ipam_allocated: u64,
    /// BFD sessions: peer address and whether the session is Up.
    pub bfd: Vec<(String, bool)>,
    /// Outbound NAT: the table as wanted at the last look, and the repairs so far; None
    /// with `kernel.install = false`.
    pub nat: Option<(bool, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerSample {
    pub peer: String,
    pub kind: String,
    pub up: bool,
    pub received: u64,
    pub accepted: u64,
    pub updates_received: u64,
    pub updates_sent: u64,
}

/// Registers one metric; a name clash is a programming error caught by the unit test.
fn add<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: &M) {
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metrics: registering a family failed");
    }
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    add(r, &g);
    Ok(g)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    add(r, &c);
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str, v: u64) -> Result<(), prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    add(r, &g);
    Ok(())
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The text exposition (format 0.0.4) of a snapshot.
pub fn render(s: &Snapshot) -> Result<String, prometheus::Error> {
    let r = Registry::new();
    let up = gauge_vec(
        &r,
        "ipipd_bgp_peer_up",
        "BGP session Established (1) or not (0)",
        &["peer", "kind"],
    )?;
    let received = gauge_vec(
        &r,
        "ipipd_bgp_prefixes_received",
        "Prefixes the peer announced (Adj-RIB-In, before policy)",
        &["peer"],
    )?;
    let accepted = gauge_vec(
        &r,
        "ipipd_bgp_prefixes_accepted",
        "Prefixes of the peer accepted by policy",
        &["peer"],
    )?;
    let updates_in = counter_vec(
        &r,
        "ipipd_bgp_updates_received_total",
        "UPDATE messages received from the peer",
        &["peer"],
    )?;
    let updates_out = counter_vec(
        &r,
        "ipipd_bgp_updates_sent_total",
        "UPDATE messages sent to the peer",
        &["peer"],
    )?;
    for p in &s.peers {
        up.with_label_values(&[&p.peer, &p.kind])
            .set(i64::from(p.up));
        received.with_label_values(&[&p.peer]).set(int(p.received));
        accepted.with_label_values(&[&p.peer]).set(int(p.accepted));
        updates_in
            .with_label_values(&[&p.peer])
            .inc_by(p.updates_received);
        updates_out
            .with_label_values(&[&p.peer])
            .inc_by(p.updates_sent);
    }
    gauge(
        &r,
        "ipipd_rib_prefixes",
        "Prefixes in the Loc-RIB",
        s.rib_prefixes,
    )?;
    let fib = gauge_vec(
        &r,
        "ipipd_fib_routes",
        "Routes ipipd has in the kernel, by kind",
        &["kind"],
    )?;
    for (kind, n) in [
        ("remote", s.fib_remote),
        ("blackhole", s.fib_blackhole),
        ("workload", s.fib_workload),
    ] {
        fib.with_label_values(&[kind]).set(int(n));
    }
    let errors = IntCounter::new("ipipd_fib_errors_total", "Kernel route writes that failed")?;
    errors.inc_by(s.fib_errors);
    add(&r, &errors);
    gauge(
        &r,
        "ipipd_ipam_addresses_allocated",
        "Pod addresses allocated on this node",
        s.ipam_allocated,
    )?;
    let bfd = gauge_vec(
        &r,
        "ipipd_bfd_session_up",
        "BFD session Up (1) or not (0)",
        &["peer"],
    )?;
    for (peer, is_up) in &s.bfd {
        bfd.with_label_values(&[peer]).set(i64::from(*is_up));
    }
    if let Some((ok, repairs)) = s.nat {
        gauge(
            &r,
            "ipipd_nat_table_ok",
            "ipipd's nftables table as wanted at the last look (1) or not (0)",
            u64::from(ok),
        )?;
        let c = IntCounter::new(
            "ipipd_nat_repairs_total",
            "Times ipipd's nftables table was put back after something else changed it",
        )?;
        c.inc_by(repairs);
        add(&r, &c);
    }
    let info = gauge_vec(
        &r,
        "ipipd_build_info",
        "The running ipipd's version",
        &["version"],
    )?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn answer(daemon: Arc<Daemon>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, kind: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => match render(&daemon.metrics_snapshot().await) {
            Ok(text) => reply(StatusCode::OK, text, CONTENT_TYPE),
            Err(_) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding failed\n".into(),
                "text/plain",
            ),
        },
        (&Method::GET, "/") => reply(
            StatusCode::OK,
            "ipipd: metrics at /metrics\n".into(),
            "text/plain",
        ),
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

/// Binds `addr` and serves it for as long as the daemon runs.
pub async fn start(addr: SocketAddr, daemon: Arc<Daemon>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let daemon = daemon.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let daemon = daemon.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(daemon, req).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection");
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_values() {
        let s = Snapshot {
            peers: vec![PeerSample {
                peer: "10.0.0.2".into(),
                kind: "mesh".into(),
                up: true,
                received: 3,
                accepted: 2,
                updates_received: 7,
                updates_sent: 5,
            }],
            rib_prefixes: 4,
            fib_remote: 2,
            fib_blackhole: 1,
            fib_workload: 6,
            fib_errors: 0,
            ipam_allocated: 6,
            bfd: vec![],
            nat: Some((true, 2)),
        };
        let text = render(&s).unwrap_or_default();
        for line in [
            "ipipd_bgp_peer_up{kind=\"mesh\",peer=\"10.0.0.2\"} 1",
            "ipipd_bgp_prefixes_received{peer=\"10.0.0.2\"} 3",
            "ipipd_bgp_prefixes_accepted{peer=\"10.0.0.2\"} 2",
            "ipipd_bgp_updates_received_total{peer=\"10.0.0.2\"} 7",
            "ipipd_bgp_updates_sent_total{peer=\"10.0.0.2\"} 5",
            "ipipd_rib_prefixes 4",
            "ipipd_fib_routes{kind=\"remote\"} 2",
            "ipipd_fib_routes{kind=\"blackhole\"} 1",
            "ipipd_fib_routes{kind=\"workload\"} 6",
            "ipipd_fib_errors_total 0",
            "ipipd_ipam_addresses_allocated 6",
            "ipipd_nat_table_ok 1",
            "ipipd_nat_repairs_total 2",
            "# TYPE ipipd_bgp_updates_received_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("ipipd_build_info{version=\"")),
            "{text}"
        );
    }
}
