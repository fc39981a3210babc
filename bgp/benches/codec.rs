//! Codec throughput on full-size UPDATEs (4096 octets) packed with pod-block prefixes.
//! Criterion reports the throughput in prefixes per second ("elem/s").
//!
//! cargo bench -p bgp --bench codec

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::wire::*;
use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

fn v4_blocks(n: u32) -> Vec<Nlri> {
    (0..n)
        .filter_map(|i| Ipv4Net::new(Ipv4Addr::from(0x6500_0000 + i * 64), 26).ok())
        .map(|n| Nlri::new(IpNet::V4(n)))
        .collect()
}

fn v6_blocks(n: u32) -> Vec<Nlri> {
    (0..n)
        .filter_map(|i| {
            Ipv6Net::new(Ipv6Addr::from(0xfd00_u128 << 112 | u128::from(i) << 6), 122).ok()
        })
        .map(|n| Nlri::new(IpNet::V6(n)))
        .collect()
}

/// Attributes of an iBGP route from a node, as ipipd sends them.
fn attrs() -> Attributes {
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        local_pref: Some(100),
        ..Attributes::default()
    }
}

/// The first (full) message of a pack, and the number of prefixes in it.
fn full_update(family: AfiSafi, ctx: &Context) -> (Bytes, Update, u64) {
    let (nlri, nh): (_, IpAddr) = if family == AfiSafi::IPV4_UNICAST {
        (v4_blocks(2000), Ipv4Addr::new(172, 29, 235, 101).into())
    } else {
        (
            v6_blocks(2000),
            "fd00::101"
                .parse()
                .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        )
    };
    let msgs = pack_announce(&attrs(), nh, family, &nlri, ctx);
    let Some(first) = msgs.into_iter().next() else {
        panic!("nothing packed")
    };
    let Ok(Message::Update(u)) = decode(&first, ctx) else {
        panic!("packed message does not decode")
    };
    let count = u.nlri.len() + u.attributes.mp_reach.as_ref().map_or(0, |m| m.nlri.len());
    (first, u, count as u64)
}

fn codec(c: &mut Criterion) {
    let ibgp = Context {
        four_octet_as: true,
        ..Context::default()
    };
    let add_path = Context {
        add_path_rx: Families {
            ipv4: true,
            ipv6: true,
        },
        add_path_tx: Families {
            ipv4: true,
            ipv6: true,
        },
        ..ibgp
    };
    for (name, family, ctx) in [
        ("ipv4_26", AfiSafi::IPV4_UNICAST, ibgp),
        ("ipv4_26_add_path", AfiSafi::IPV4_UNICAST, add_path),
        ("ipv6_122", AfiSafi::IPV6_UNICAST, ibgp),
    ] {
        let (wire, update, count) = full_update(family, &ctx);
        let mut g = c.benchmark_group(format!("update_{name}"));
        g.throughput(Throughput::Elements(count));
        g.bench_function(
            format!("decode_{}_octets_{count}_prefixes", wire.len()),
            |b| b.iter(|| decode(black_box(&wire), &ctx)),
        );
        let msg = Message::Update(update);
        let mut out = BytesMut::with_capacity(4096);
        g.bench_function(
            format!("encode_{}_octets_{count}_prefixes", wire.len()),
            |b| {
                b.iter(|| {
                    out.clear();
                    encode(black_box(&msg), &ctx, &mut out);
                })
            },
        );
        g.finish();
    }

    let nlri = v4_blocks(10_000);
    let mut g = c.benchmark_group("pack");
    g.throughput(Throughput::Elements(nlri.len() as u64));
    g.bench_function("announce_10000_ipv4_26", |b| {
        b.iter(|| {
            pack_announce(
                &attrs(),
                Ipv4Addr::new(172, 29, 235, 101).into(),
                AfiSafi::IPV4_UNICAST,
                black_box(&nlri),
                &ibgp,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
