//! Validation of the wave-2 sections: `[datastore]`, `[bfd]`, `[metrics]`.

use std::path::PathBuf;

use toml::Spanned;

use crate::checks::{self, at_least};
use crate::error::Sink;
use crate::model::*;
use crate::raw::*;
use crate::validate::get;

/// Below 10 ms the scheduler of a busy node decides more than the link does.
const MIN_BFD_INTERVAL_MS: u32 = 10;
/// Desired Min TX is carried in microseconds in 32 bits.
const MAX_BFD_INTERVAL_MS: u32 = 4_294_967;

/// A string key that names one of `choices`; `fallback` when it is absent, and
/// after an error.
fn one_of<T: Copy>(
    raw: &Opt<String>,
    choices: &[(&str, T)],
    fallback: T,
    what: &str,
    sink: &mut Sink<'_>,
) -> T {
    let Some(s) = raw else {
        return fallback;
    };
    if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s.get_ref()) {
        return *v;
    }
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    sink.at(
        Some(&s.span()),
        format!(
            "{what} must be {}, got {:?}",
            names.join(" or "),
            s.get_ref()
        ),
    );
    fallback
}

/// TLS files next to an `http://` endpoint: a typo in the scheme would mean plaintext
/// to etcd, the files silently unused. Refused at the endpoint (at the first TLS file
/// when the endpoint is the default one). `https://` without `ca_file` is fine: the
/// system's roots are trusted then.
fn plaintext_next_to_tls(raw: &RawDatastore, sink: &mut Sink<'_>) {
    let set: Vec<(&str, &Spanned<String>)> = [
        ("ca_file", &raw.ca_file),
        ("cert_file", &raw.cert_file),
        ("key_file", &raw.key_file),
    ]
    .into_iter()
    .filter_map(|(key, v)| v.as_ref().map(|v| (key, v)))
    .collect();
    let Some((_, first)) = set.first() else {
        return;
    };
    let keys: Vec<&str> = set.iter().map(|(k, _)| *k).collect();
    let files = match keys.split_last() {
        Some((last, [])) => format!("{last} is set"),
        Some((last, rest)) => format!("{} and {last} are set", rest.join(", ")),
        None => return,
    };
    match &raw.endpoints {
        Some(list) => {
            for e in list {
                if let Some(rest) = e.get_ref().strip_prefix("http://") {
                    sink.at(
                        Some(&e.span()),
                        format!(
                            "endpoint {:?} is plaintext, but {files}: TLS applies to https:// \
                             endpoints only; did you mean \"https://{rest}\"?",
                            e.get_ref()
                        ),
                    );
                }
            }
        }
        None if DEFAULT_ETCD_ENDPOINT.starts_with("http://") => sink.at(
            Some(&first.span()),
            format!(
                "the default endpoint {DEFAULT_ETCD_ENDPOINT:?} is plaintext, but {files}: TLS \
                 applies to https:// endpoints only; list the https:// endpoints in \
                 datastore.endpoints"
            ),
        ),
        None => {}
    }
}

pub(crate) fn datastore(raw: &RawDatastore, sink: &mut Sink<'_>) -> Datastore {
    let kind = one_of(
        &raw.kind,
        &[("file", DatastoreKind::File), ("etcd", DatastoreKind::Etcd)],
        DatastoreKind::File,
        "datastore kind",
        sink,
    );
    let mut endpoints = Vec::new();
    for e in raw.endpoints.iter().flatten() {
        let v = e.get_ref();
        let ok = (v.starts_with("http://") || v.starts_with("https://"))
            && v.split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty());
        if ok {
            endpoints.push(v.clone());
        } else {
            sink.at(
                Some(&e.span()),
                format!("endpoint {v:?} must be a URL like http://10.0.0.1:2379 or https://..."),
            );
        }
    }
    if endpoints.is_empty() && raw.endpoints.is_none() {
        endpoints.push(DEFAULT_ETCD_ENDPOINT.to_owned());
    }
    if endpoints.is_empty() && raw.endpoints.as_ref().is_some_and(|e| e.is_empty()) {
        sink.at(None, "datastore.endpoints is empty");
    }
    let prefix = match &raw.prefix {
        Some(s) => {
            let p = s.get_ref();
            if !p.starts_with('/')
                || p.len() < 2
                || p.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                sink.at(
                    Some(&s.span()),
                    format!("prefix {p:?} must start with '/' and name something, without spaces"),
                );
            }
            p.trim_end_matches('/').to_owned()
        }
        None => DEFAULT_PREFIX.to_owned(),
    };
    let path = |s: &Opt<String>, what: &str, sink: &mut Sink<'_>| {
        s.as_ref()
            .and_then(|s| checks::not_empty(sink, s, what))
            .map(PathBuf::from)
    };
    let ca_file = path(&raw.ca_file, "ca_file", sink);
    let cert_file = path(&raw.cert_file, "cert_file", sink);
    let key_file = path(&raw.key_file, "key_file", sink);
    if cert_file.is_some() != key_file.is_some() {
        let at = raw
            .cert_file
            .as_ref()
            .or(raw.key_file.as_ref())
            .map(Spanned::span);
        sink.at(
            at.as_ref(),
            "cert_file and key_file go together: set both or neither",
        );
    }
    plaintext_next_to_tls(raw, sink);
    let ms = |s: &Opt<u64>, default: u64, what: &str, sink: &mut Sink<'_>| match s {
        Some(s) if *s.get_ref() == 0 => {
            sink.at(Some(&s.span()), format!("{what} must be at least 1"));
            default
        }
        Some(s) => *s.get_ref(),
        None => default,
    };
    Datastore {
        kind,
        endpoints,
        prefix,
        ca_file,
        cert_file,
        key_file,
        dial_timeout_ms: ms(
            &raw.dial_timeout_ms,
            DEFAULT_DIAL_TIMEOUT_MS,
            "dial_timeout_ms",
            sink,
        ),
        request_timeout_ms: ms(
            &raw.request_timeout_ms,
            DEFAULT_REQUEST_TIMEOUT_MS,
            "request_timeout_ms",
            sink,
        ),
        block_release_grace: get(&raw.block_release_grace).unwrap_or(DEFAULT_BLOCK_RELEASE_GRACE),
        resync: raw
            .resync
            .as_ref()
            .and_then(|s| at_least(sink, s, 1, "resync must be at least 1 second"))
            .unwrap_or(DEFAULT_RESYNC),
    }
}

pub(crate) fn bfd(raw: &RawBfd, sink: &mut Sink<'_>) -> Bfd {
    let interval_ms = match &raw.interval_ms {
        Some(s) if !(MIN_BFD_INTERVAL_MS..=MAX_BFD_INTERVAL_MS).contains(s.get_ref()) => {
            sink.at(
                Some(&s.span()),
                format!(
                    "interval_ms must be from {MIN_BFD_INTERVAL_MS} to {MAX_BFD_INTERVAL_MS}, got {}",
                    s.get_ref()
                ),
            );
            DEFAULT_BFD_INTERVAL_MS
        }
        Some(s) => *s.get_ref(),
        None => DEFAULT_BFD_INTERVAL_MS,
    };
    let multiplier = raw
        .multiplier
        .as_ref()
        .and_then(|s| {
            at_least(
                sink,
                s,
                1,
                "multiplier must be at least 1 (RFC 5880: detect multiplier 0 is invalid)",
            )
        })
        .unwrap_or(DEFAULT_BFD_MULTIPLIER);
    let keeper = one_of(
        &raw.keeper,
        &[("spawn", Keeper::Spawn), ("external", Keeper::External)],
        Keeper::Spawn,
        "bfd keeper",
        sink,
    );
    Bfd {
        enabled: get(&raw.enabled).unwrap_or(false),
        interval_ms,
        multiplier,
        keeper,
    }
}

pub(crate) fn metrics(raw: &RawMetrics, sink: &mut Sink<'_>) -> Metrics {
    let listen = raw.listen.as_ref().and_then(|s| {
        match s.get_ref().parse::<std::net::SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                sink.at(
                    Some(&s.span()),
                    format!(
                        "listen: expected ADDRESS:PORT (e.g. \"127.0.0.1:9179\" or \"[::1]:9179\"), found {:?}",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    });
    Metrics { listen }
}
