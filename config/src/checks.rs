//! Checks of single values, shared by the sections that hold them.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use crate::error::Sink;

/// Linux's TCP_MD5SIG_MAXKEYLEN: the kernel refuses longer keys.
pub(crate) const MAX_PASSWORD_LEN: usize = 80;
/// RFC 6793: the 2-byte stand-in for 4-byte AS numbers.
const AS_TRANS: u32 = 23456;
/// `sun_path` holds 108 bytes including the terminating NUL.
pub(crate) const MAX_SOCKET_PATH: usize = 107;

pub(crate) fn ip(sink: &mut Sink<'_>, s: &Spanned<String>) -> Option<IpAddr> {
    let text = s.get_ref().trim();
    match text.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let hint = if text.contains('/') {
                " (an address here, without a prefix length)"
            } else {
                ""
            };
            sink.at(
                Some(&s.span()),
                format!("invalid IP address {:?}{hint}", s.get_ref()),
            );
            None
        }
    }
}

/// An address other routers can reach: not 0.0.0.0, multicast or broadcast.
pub(crate) fn unicast(sink: &mut Sink<'_>, s: &Spanned<String>, what: &str) -> Option<IpAddr> {
    let a = ip(sink, s)?;
    let bad =
        a.is_unspecified() || a.is_multicast() || matches!(a, IpAddr::V4(v4) if v4.is_broadcast());
    if bad {
        sink.at(
            Some(&s.span()),
            format!("{what} {a} is not a unicast address"),
        );
        return None;
    }
    Some(a)
}

pub(crate) fn ipv4(sink: &mut Sink<'_>, s: &Spanned<String>, key: &str) -> Option<Ipv4Addr> {
    match ip(sink, s)? {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => {
            sink.at(
                Some(&s.span()),
                format!("{key} must be an IPv4 address, got {a}"),
            );
            None
        }
    }
}

/// A pool or block in CIDR notation, with no host bits set.
pub(crate) fn cidr(sink: &mut Sink<'_>, s: &Spanned<String>, what: &str) -> Option<IpNet> {
    let text = s.get_ref().trim();
    let Ok(net) = text.parse::<IpNet>() else {
        let hint = if text.contains('/') {
            ""
        } else {
            " (ADDRESS/LENGTH, e.g. 10.0.0.0/26)"
        };
        sink.at(
            Some(&s.span()),
            format!("invalid {what} {:?}: not a CIDR prefix{hint}", s.get_ref()),
        );
        return None;
    };
    if net.trunc() != net {
        sink.at(
            Some(&s.span()),
            format!("{what} {net} is not aligned: did you mean {}?", net.trunc()),
        );
        return None;
    }
    Some(net)
}

/// Reports every pair of prefixes that overlap, at the later one in the file.
pub(crate) fn overlaps(sink: &mut Sink<'_>, nets: &[(IpNet, Range<usize>)], what: &str) {
    // CIDR prefixes are nested or disjoint, so after sorting by (network, length) a prefix
    // overlaps an earlier one exactly when the widest prefix seen so far contains it.
    let mut order: Vec<&(IpNet, Range<usize>)> = nets.iter().collect();
    order.sort_by_key(|(n, r)| (n.network(), n.prefix_len(), r.start));
    let mut widest: Option<&(IpNet, Range<usize>)> = None;
    for cur in order {
        match widest {
            Some(w) if w.0.contains(&cur.0) => {
                let (first, second) = if w.1.start <= cur.1.start {
                    (w, cur)
                } else {
                    (cur, w)
                };
                let line = sink.line_of(&first.1);
                let msg = if first.0 == second.0 {
                    format!("{what} {} is listed twice (first at line {line})", second.0)
                } else {
                    format!(
                        "{what} {} overlaps {what} {} (line {line})",
                        second.0, first.0
                    )
                };
                sink.at(Some(&second.1), msg);
            }
            _ => widest = Some(cur),
        }
    }
}

pub(crate) fn asn(sink: &mut Sink<'_>, s: &Spanned<u32>) -> Option<u32> {
    let why = match *s.get_ref() {
        0 => "asn 0 is reserved (RFC 7607)",
        AS_TRANS => "asn 23456 is AS_TRANS (RFC 6793), not a usable AS number",
        u32::MAX => "asn 4294967295 is reserved (RFC 7300)",
        a => return Some(a),
    };
    sink.at(Some(&s.span()), why);
    None
}

pub(crate) fn password(sink: &mut Sink<'_>, s: &Spanned<String>, key: &str) -> Option<String> {
    let len = s.get_ref().len();
    if len == 0 {
        sink.at(
            Some(&s.span()),
            format!("{key} must not be empty (remove the key to turn TCP-MD5 off)"),
        );
        return None;
    }
    if len > MAX_PASSWORD_LEN {
        sink.at(
            Some(&s.span()),
            format!(
                "{key} must be at most {MAX_PASSWORD_LEN} bytes (TCP_MD5SIG_MAXKEYLEN), got {len}"
            ),
        );
        return None;
    }
    Some(s.get_ref().clone())
}

pub(crate) fn not_empty(sink: &mut Sink<'_>, s: &Spanned<String>, key: &str) -> Option<String> {
    if s.get_ref().trim().is_empty() {
        sink.at(Some(&s.span()), format!("{key} must not be empty"));
        return None;
    }
    Some(s.get_ref().clone())
}

/// A value that must be at least `min`.
pub(crate) fn at_least<T>(sink: &mut Sink<'_>, s: &Spanned<T>, min: T, why: &str) -> Option<T>
where
    T: Copy + PartialOrd + std::fmt::Display,
{
    let v = *s.get_ref();
    if v < min {
        sink.at(Some(&s.span()), format!("{why}, got {v}"));
        return None;
    }
    Some(v)
}

/// Whether a node name can be a datastore key segment.
pub(crate) fn node_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}
