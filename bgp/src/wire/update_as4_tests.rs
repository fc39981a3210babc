//! RFC 6793 handling in UPDATEs: AS4_PATH / AS4_AGGREGATOR rules of RFC 7606 and the
//! merge and split between 2- and 4-octet sessions.

use std::net::Ipv4Addr;

use super::super::attribute::*;
use super::super::*;
use super::tests::{attr, discard, ibgp, mandatory, msg, net, next_hop, origin, update, NLRI_26};

fn two_octet(as_path: &[u8], extra: &[u8]) -> Update {
    let attrs = [
        origin(),
        attr(0x40, AS_PATH, as_path),
        next_hop(),
        extra.to_vec(),
    ]
    .concat();
    update(&msg(&[], &attrs, NLRI_26), &Context::default())
}

#[test]
fn as4_path_malformed_is_discard() {
    for (v, reason) in [
        (&[2, 2, 0, 0, 0, 1][..], "segment runs past the attribute"),
        (&[], "empty AS4_PATH"),
        (&[3, 1, 0, 1, 0, 0], "confederation segment in AS4_PATH"),
    ] {
        let u = two_octet(&[2, 1, 0x5b, 0xa0], &attr(0xc0, AS4_PATH, v));
        assert_eq!(u.outcome, discard(AS4_PATH, reason));
        assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![23456])));
    }
}

#[test]
fn as4_aggregator_malformed_is_discard() {
    let u = two_octet(
        &[2, 1, 0x5b, 0xa0],
        &[
            attr(0xc0, AGGREGATOR, &[0x5b, 0xa0, 10, 0, 0, 9]),
            attr(0xc0, AS4_AGGREGATOR, &[0, 1, 0, 0, 10, 0]),
        ]
        .concat(),
    );
    assert_eq!(
        u.outcome,
        discard(AS4_AGGREGATOR, "AS4_AGGREGATOR length is not 8")
    );
    assert_eq!(u.attributes.aggregator.map(|a| a.asn), Some(23456));
}

#[test]
fn as4_attributes_from_four_octet_peer_are_discarded() {
    let u = update(
        &msg(
            &[],
            &[mandatory(), attr(0xc0, AS4_PATH, &[2, 1, 0, 1, 0, 0])].concat(),
            NLRI_26,
        ),
        &ibgp(),
    );
    assert_eq!(
        u.outcome,
        discard(AS4_PATH, "AS4 attribute from a 4-octet AS speaker")
    );
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![65000])));
}

#[test]
fn as4_merge_on_decode() {
    // AS_PATH 65001 AS_TRANS, AS4_PATH 4200000000: a 2-octet speaker prepended 65001.
    let u = two_octet(
        &[2, 2, 0xfd, 0xe9, 0x5b, 0xa0],
        &attr(0xc0, AS4_PATH, &[2, 1, 0xfa, 0x56, 0xea, 0x00]),
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::sequence(vec![65001, 4_200_000_000]))
    );

    // AGGREGATOR AS_TRANS + AS4_AGGREGATOR: the real aggregator.
    let u = two_octet(
        &[2, 1, 0x5b, 0xa0],
        &[
            attr(0xc0, AGGREGATOR, &[0x5b, 0xa0, 10, 0, 0, 9]),
            attr(0xc0, AS4_PATH, &[2, 1, 0, 1, 0, 0]),
            attr(0xc0, AS4_AGGREGATOR, &[0, 1, 0, 1, 10, 0, 0, 9]),
        ]
        .concat(),
    );
    assert_eq!(
        u.attributes.aggregator,
        Some(Aggregator {
            asn: 65537,
            address: Ipv4Addr::new(10, 0, 0, 9)
        })
    );
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![65536])));

    // AGGREGATOR with a real 2-octet AS: AS4_AGGREGATOR and AS4_PATH are both ignored.
    let u = two_octet(
        &[2, 1, 0x5b, 0xa0],
        &[
            attr(0xc0, AGGREGATOR, &[0xfd, 0xe8, 10, 0, 0, 9]),
            attr(0xc0, AS4_PATH, &[2, 1, 0, 1, 0, 0]),
            attr(0xc0, AS4_AGGREGATOR, &[0, 1, 0, 1, 10, 0, 0, 9]),
        ]
        .concat(),
    );
    assert_eq!(u.attributes.aggregator.map(|a| a.asn), Some(65000));
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![23456])));

    // AS4_PATH longer than AS_PATH: ignored.
    let u = two_octet(
        &[2, 1, 0x5b, 0xa0],
        &attr(0xc0, AS4_PATH, &[2, 2, 0, 1, 0, 0, 0, 1, 0, 1]),
    );
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![23456])));
}

#[test]
fn as4_encode_for_two_octet_peer() {
    let ctx = Context::default();
    let u = Update {
        attributes: Attributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65001, 4_200_000_000])),
            next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
            aggregator: Some(Aggregator {
                asn: 4_200_000_000,
                address: Ipv4Addr::new(10, 0, 0, 9),
            }),
            ..Attributes::default()
        },
        nlri: vec![net("10.0.0.64/26")],
        ..Update::default()
    };
    let wire = encode_to_bytes(&Message::Update(u.clone()), &ctx);
    let expected_attrs = [
        origin(),
        attr(0x40, AS_PATH, &[2, 2, 0xfd, 0xe9, 0x5b, 0xa0]),
        next_hop(),
        attr(0xc0, AGGREGATOR, &[0x5b, 0xa0, 10, 0, 0, 9]),
        attr(
            0xc0,
            AS4_PATH,
            &[2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x00],
        ),
        attr(0xc0, AS4_AGGREGATOR, &[0xfa, 0x56, 0xea, 0x00, 10, 0, 0, 9]),
    ]
    .concat();
    assert_eq!(&wire[..], &msg(&[], &expected_attrs, NLRI_26)[..]);
    assert_eq!(update(&wire, &ctx), u);
    // Nothing extra when every AS fits.
    let small = Update {
        attributes: Attributes {
            as_path: Some(AsPath::sequence(vec![65001])),
            ..u.attributes.clone()
        },
        ..u.clone()
    };
    let wire = encode_to_bytes(&Message::Update(small), &Context::default());
    assert!(!wire.windows(2).any(|w| w == [0xc0, AS4_PATH]));
}
