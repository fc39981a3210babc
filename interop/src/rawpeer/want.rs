//! What a hostile-peer case expects of a route that was kept: one typed field of
//! `show routes --json` each, compared against [`api::protocol::RouteJson`].

use std::net::Ipv4Addr;

use api::protocol::{AggregatorJson, RouteJson};

/// One field of a kept route and the value it must have.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    AsPath(String),
    NextHop(String),
    LocalPref(Option<u32>),
    Med(Option<u32>),
    /// ORIGIN: `igp`, `egp` or `incomplete`.
    BgpOrigin(&'static str),
    AtomicAggregate(bool),
    Aggregator(Option<(u32, Ipv4Addr)>),
    Communities(Vec<&'static str>),
    ExtendedCommunities(Vec<&'static str>),
    LargeCommunities(Vec<&'static str>),
    UnknownAttributes(Vec<u8>),
    OriginatorId(Option<Ipv4Addr>),
    ClusterList(Vec<Ipv4Addr>),
}

impl Want {
    /// `AS_PATH` as `show routes` writes it.
    pub fn as_path(path: &str) -> Want {
        Want::AsPath(path.to_owned())
    }

    pub fn next_hop(address: &str) -> Want {
        Want::NextHop(address.to_owned())
    }

    /// Ok, or what the route has instead.
    pub fn check(&self, r: &RouteJson) -> Result<(), String> {
        let a = &r.attributes;
        let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (ok, got) = match self {
            Want::AsPath(p) => (r.as_path == *p, format!("{:?}", r.as_path)),
            Want::NextHop(n) => (
                r.next_hop.as_deref() == Some(n.as_str()),
                format!("{:?}", r.next_hop),
            ),
            Want::LocalPref(l) => (r.local_pref == *l, format!("{:?}", r.local_pref)),
            Want::Med(m) => (a.med == *m, format!("{:?}", a.med)),
            Want::BgpOrigin(o) => (
                a.bgp_origin.as_deref() == Some(*o),
                format!("{:?}", a.bgp_origin),
            ),
            Want::AtomicAggregate(b) => {
                (a.atomic_aggregate == *b, format!("{}", a.atomic_aggregate))
            }
            Want::Aggregator(g) => (
                a.aggregator == g.map(|(asn, address)| AggregatorJson { asn, address }),
                format!("{:?}", a.aggregator),
            ),
            Want::Communities(c) => (a.communities == strs(c), format!("{:?}", a.communities)),
            Want::ExtendedCommunities(c) => (
                a.extended_communities == strs(c),
                format!("{:?}", a.extended_communities),
            ),
            Want::LargeCommunities(c) => (
                a.large_communities == strs(c),
                format!("{:?}", a.large_communities),
            ),
            Want::UnknownAttributes(u) => (
                a.unknown_attributes == *u,
                format!("{:?}", a.unknown_attributes),
            ),
            Want::OriginatorId(o) => (r.originator_id == *o, format!("{:?}", r.originator_id)),
            Want::ClusterList(c) => (r.cluster_list == *c, format!("{:?}", r.cluster_list)),
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{got} where {self:?} was expected"))
        }
    }
}
