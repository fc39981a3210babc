//! One test per RFC 7606 rule of the table in `update.rs` (AS4 rules: `update_as4_tests.rs`).

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::super::attribute::*;
use super::super::*;

pub(super) const NLRI_26: &[u8] = &[26, 10, 0, 0, 64];

pub(super) fn ibgp() -> Context {
    Context {
        four_octet_as: true,
        ..Context::default()
    }
}

pub(super) fn ebgp() -> Context {
    Context {
        ebgp: true,
        ..ibgp()
    }
}

pub(super) fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code];
    if flags & EXTENDED_LENGTH != 0 {
        v.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    } else {
        v.push(u8::try_from(value.len()).unwrap());
    }
    v.extend_from_slice(value);
    v
}

pub(super) fn origin() -> Vec<u8> {
    attr(0x40, ORIGIN, &[0])
}
pub(super) fn as_path() -> Vec<u8> {
    attr(0x40, AS_PATH, &[2, 1, 0, 0, 0xfd, 0xe8])
}
pub(super) fn next_hop() -> Vec<u8> {
    attr(0x40, NEXT_HOP, &[10, 0, 0, 1])
}
pub(super) fn mandatory() -> Vec<u8> {
    [origin(), as_path(), next_hop()].concat()
}

pub(super) fn msg(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
    m.extend_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
    m.push(2);
    m.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    m.extend_from_slice(withdrawn);
    m.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    m.extend_from_slice(attrs);
    m.extend_from_slice(nlri);
    m
}

pub(super) fn update(m: &[u8], ctx: &Context) -> Update {
    match decode(m, ctx) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

pub(super) fn reset(m: &[u8], ctx: &Context) -> (u8, u8, Bytes) {
    let n = decode(m, ctx).expect_err("expected a session reset");
    (n.code, n.subcode, n.data)
}

pub(super) fn e(type_code: u8, reason: &'static str) -> AttrError {
    AttrError { type_code, reason }
}

/// Decodes mandatory attributes + `extra` with one /26 and returns the outcome.
pub(super) fn outcome_with(extra: &[u8], ctx: &Context) -> Outcome {
    update(
        &msg(&[], &[mandatory(), extra.to_vec()].concat(), NLRI_26),
        ctx,
    )
    .outcome
}

pub(super) fn withdraw(code: u8, reason: &'static str) -> Outcome {
    Outcome::TreatAsWithdraw(vec![e(code, reason)])
}

pub(super) fn discard(code: u8, reason: &'static str) -> Outcome {
    Outcome::Discarded(vec![e(code, reason)])
}

pub(super) fn net(s: &str) -> Nlri {
    Nlri::new(s.parse().unwrap())
}

#[test]
fn valid_update_is_accepted() {
    let u = update(&msg(&[], &mandatory(), NLRI_26), &ibgp());
    assert_eq!(u.outcome, Outcome::Accepted);
    assert_eq!(u.nlri, vec![net("10.0.0.64/26")]);
    assert_eq!(u.attributes.origin, Some(Origin::Igp));
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![65000])));
    assert_eq!(u.attributes.next_hop, Some(Ipv4Addr::new(10, 0, 0, 1)));
}

#[test]
fn withdrawn_length_past_message_is_3_1() {
    let mut m = msg(&[], &[], &[]);
    m[20] = 1; // withdrawn length 1, but the next two octets are the attribute length
    m[19] = 0;
    m[21..23].copy_from_slice(&[0, 0]);
    let mut m2 = m.clone();
    m2[20] = 5;
    assert_eq!(reset(&m2, &ibgp()), (3, 1, Bytes::new()));
}

#[test]
fn total_attribute_length_past_message_is_3_1() {
    let mut m = msg(&[], &mandatory(), &[]);
    let tal = u16::try_from(mandatory().len() + 1).unwrap().to_be_bytes();
    m[21..23].copy_from_slice(&tal);
    assert_eq!(reset(&m, &ibgp()), (3, 1, Bytes::new()));
}

#[test]
fn bad_nlri_field_is_3_10() {
    let ctx = ibgp();
    assert_eq!(
        reset(&msg(&[], &mandatory(), &[33, 1, 2, 3, 4, 5]), &ctx),
        (3, 10, Bytes::new())
    );
    assert_eq!(
        reset(&msg(&[], &mandatory(), &[24, 1, 2]), &ctx),
        (3, 10, Bytes::new())
    );
    assert_eq!(
        reset(&msg(&[40, 1, 2, 3, 4, 5], &[], &[]), &ctx),
        (3, 10, Bytes::new())
    );
}

#[test]
fn bad_mp_nlri_is_3_10() {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[0xfd; 16]);
    v.push(0);
    v.extend_from_slice(&[129; 18]);
    let m = msg(
        &[],
        &[origin(), as_path(), attr(0x90, MP_REACH_NLRI, &v)].concat(),
        &[],
    );
    assert_eq!(reset(&m, &ibgp()), (3, 10, Bytes::new()));
    let m = msg(&[], &attr(0x80, MP_UNREACH_NLRI, &[0, 2, 1, 64, 0xfd]), &[]);
    assert_eq!(reset(&m, &ibgp()), (3, 10, Bytes::new()));
}

#[test]
fn unparsable_mp_attribute_is_3_9_with_attribute() {
    // Next hop length 15 for IPv6: the NLRI cannot be located.
    let mut v = vec![0, 2, 1, 15];
    v.extend_from_slice(&[0xfd; 15]);
    v.push(0);
    let a = attr(0x80, MP_REACH_NLRI, &v);
    let m = msg(&[], &[origin(), as_path(), a.clone()].concat(), &[]);
    assert_eq!(reset(&m, &ibgp()), (3, 9, Bytes::from(a)));
    // Cut short before the reserved octet.
    let a = attr(0x80, MP_REACH_NLRI, &[0, 2, 1, 0]);
    assert_eq!(reset(&msg(&[], &a, &[]), &ibgp()), (3, 9, Bytes::from(a)));
    let a = attr(0x80, MP_UNREACH_NLRI, &[0, 2]);
    assert_eq!(reset(&msg(&[], &a, &[]), &ibgp()), (3, 9, Bytes::from(a)));
}

#[test]
fn repeated_mp_attribute_is_3_1() {
    let a = attr(0x80, MP_UNREACH_NLRI, &[0, 2, 1]);
    assert_eq!(
        reset(&msg(&[], &[a.clone(), a].concat(), &[]), &ibgp()),
        (3, 1, Bytes::new())
    );
    let mut v = vec![0, 1, 1, 4, 10, 0, 0, 1, 0];
    v.extend_from_slice(NLRI_26);
    let r = attr(0x80, MP_REACH_NLRI, &v);
    let m = msg(&[], &[origin(), as_path(), r.clone(), r].concat(), &[]);
    assert_eq!(reset(&m, &ibgp()), (3, 1, Bytes::new()));
}

#[test]
fn unrecognized_well_known_is_3_2_with_attribute() {
    let a = attr(0x40, 99, &[1, 2]);
    let m = msg(&[], &[mandatory(), a.clone()].concat(), NLRI_26);
    assert_eq!(reset(&m, &ibgp()), (3, 2, Bytes::from(a)));
}

#[test]
fn attribute_overrun_is_withdraw_and_nlri_still_found() {
    // MED claims 9 octets but only 4 remain in the attribute field.
    let mut attrs = mandatory();
    attrs.extend_from_slice(&[0x80, MULTI_EXIT_DISC, 9, 0, 0, 0, 1]);
    let u = update(&msg(&[], &attrs, NLRI_26), &ibgp());
    assert_eq!(
        u.outcome,
        withdraw(
            MULTI_EXIT_DISC,
            "attribute length runs past the total attribute length"
        )
    );
    assert_eq!(u.nlri, vec![net("10.0.0.64/26")]);
}

#[test]
fn attribute_header_cut_short_is_withdraw() {
    let mut attrs = mandatory();
    attrs.extend_from_slice(&[0x90, MULTI_EXIT_DISC, 0]); // extended length needs 4 octets
    let u = update(&msg(&[], &attrs, NLRI_26), &ibgp());
    assert_eq!(
        u.outcome,
        withdraw(
            MULTI_EXIT_DISC,
            "attribute header cut short by the total attribute length"
        )
    );
    assert_eq!(u.nlri.len(), 1);
}

#[test]
fn wrong_flags_are_withdraw() {
    // ORIGIN without the Transitive bit.
    let attrs = [attr(0x00, ORIGIN, &[0]), as_path(), next_hop()].concat();
    let u = update(&msg(&[], &attrs, NLRI_26), &ibgp());
    assert_eq!(
        u.outcome,
        Outcome::TreatAsWithdraw(vec![e(
            ORIGIN,
            "attribute flags conflict with the attribute type"
        ),])
    );
    // MED marked transitive.
    assert_eq!(
        outcome_with(&attr(0xc0, MULTI_EXIT_DISC, &[0, 0, 0, 1]), &ibgp()),
        withdraw(
            MULTI_EXIT_DISC,
            "attribute flags conflict with the attribute type"
        )
    );
    // COMMUNITIES without Optional.
    assert_eq!(
        outcome_with(&attr(0x40, COMMUNITIES, &[0, 0, 0, 1]), &ibgp()),
        withdraw(
            COMMUNITIES,
            "attribute flags conflict with the attribute type"
        )
    );
}

#[test]
fn wrong_flags_on_mp_reach_still_find_its_nlri() {
    let mut v = vec![0, 1, 1, 4, 10, 0, 0, 1, 0];
    v.extend_from_slice(NLRI_26);
    let m = msg(
        &[],
        &[origin(), as_path(), attr(0xc0, MP_REACH_NLRI, &v)].concat(),
        &[],
    );
    let u = update(&m, &ibgp());
    assert!(u.treat_as_withdraw());
    assert_eq!(
        u.attributes.mp_reach.unwrap().nlri,
        vec![net("10.0.0.64/26")]
    );
}

#[test]
fn wrong_flags_on_as4_attributes_are_discard() {
    let ctx = Context::default();
    let attrs = [
        origin(),
        attr(0x40, AS_PATH, &[2, 1, 0x5b, 0xa0]),
        next_hop(),
        attr(0x80, AS4_PATH, &[2, 1, 0, 1, 0, 0]),
    ]
    .concat();
    let u = update(&msg(&[], &attrs, NLRI_26), &ctx);
    assert_eq!(
        u.outcome,
        discard(AS4_PATH, "attribute flags conflict with the attribute type")
    );
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence(vec![23456])));
}

#[test]
fn repeated_attribute_keeps_first() {
    let extra = [
        attr(0x80, MULTI_EXIT_DISC, &[0, 0, 0, 1]),
        attr(0x80, MULTI_EXIT_DISC, &[0, 0, 0, 2]),
    ]
    .concat();
    let u = update(&msg(&[], &[mandatory(), extra].concat(), NLRI_26), &ibgp());
    assert_eq!(u.outcome, discard(MULTI_EXIT_DISC, "repeated attribute"));
    assert_eq!(u.attributes.med, Some(1));
    // Unknown transitive attributes too.
    let extra = [attr(0xc0, 200, &[1]), attr(0xe0, 200, &[2])].concat();
    let u = update(&msg(&[], &[mandatory(), extra].concat(), NLRI_26), &ibgp());
    assert_eq!(u.outcome, discard(200, "repeated attribute"));
    assert_eq!(u.attributes.unknown.len(), 1);
}

#[test]
fn origin_rules() {
    let m = |v: &[u8]| {
        msg(
            &[],
            &[attr(0x40, ORIGIN, v), as_path(), next_hop()].concat(),
            NLRI_26,
        )
    };
    assert_eq!(
        update(&m(&[0, 0]), &ibgp()).outcome,
        withdraw(ORIGIN, "ORIGIN length is not 1")
    );
    assert_eq!(
        update(&m(&[]), &ibgp()).outcome,
        withdraw(ORIGIN, "ORIGIN length is not 1")
    );
    assert_eq!(
        update(&m(&[3]), &ibgp()).outcome,
        withdraw(ORIGIN, "undefined ORIGIN value")
    );
    assert_eq!(
        update(&m(&[2]), &ibgp()).attributes.origin,
        Some(Origin::Incomplete)
    );
}

#[test]
fn as_path_rules() {
    let m = |v: &[u8]| {
        msg(
            &[],
            &[origin(), attr(0x40, AS_PATH, v), next_hop()].concat(),
            NLRI_26,
        )
    };
    for (v, reason) in [
        (&[2, 2, 0, 0, 0, 1][..], "segment runs past the attribute"),
        (&[2, 0], "empty segment"),
        (&[9, 1, 0, 0, 0, 1], "unknown segment type"),
        (&[2, 1, 0, 0, 0, 1, 2], "segment header cut short"),
    ] {
        assert_eq!(
            update(&m(v), &ibgp()).outcome,
            withdraw(AS_PATH, reason),
            "{v:?}"
        );
    }
    // Confederation segments: fine on iBGP, not from an external peer.
    let confed = [3, 1, 0, 0, 0xfc, 0, 2, 1, 0, 0, 0xfd, 0xe8];
    assert_eq!(update(&m(&confed), &ibgp()).outcome, Outcome::Accepted);
    assert_eq!(
        update(&m(&confed), &ebgp()).outcome,
        withdraw(AS_PATH, "confederation segment from an external peer")
    );
    // An empty AS_PATH (iBGP, locally originated) is valid.
    assert_eq!(
        update(&m(&[]), &ibgp()).attributes.as_path,
        Some(AsPath::default())
    );
}

#[test]
fn next_hop_rules() {
    let m = |v: &[u8], nlri: &[u8]| {
        msg(
            &[],
            &[origin(), as_path(), attr(0x40, NEXT_HOP, v)].concat(),
            nlri,
        )
    };
    assert_eq!(
        update(&m(&[10, 0, 0, 1, 0], NLRI_26), &ibgp()).outcome,
        withdraw(NEXT_HOP, "NEXT_HOP length is not 4")
    );
    for bad in [[0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 1]] {
        assert_eq!(
            update(&m(&bad, NLRI_26), &ibgp()).outcome,
            withdraw(NEXT_HOP, "NEXT_HOP is not a unicast address")
        );
        // Without IPv4 NLRI the NEXT_HOP is not used.
        assert_eq!(update(&m(&bad, &[]), &ibgp()).outcome, Outcome::Accepted);
    }
}

#[test]
fn med_length_rule() {
    assert_eq!(
        outcome_with(&attr(0x80, MULTI_EXIT_DISC, &[0, 0, 1]), &ibgp()),
        withdraw(MULTI_EXIT_DISC, "MULTI_EXIT_DISC length is not 4")
    );
}

#[test]
fn local_pref_rules() {
    assert_eq!(
        outcome_with(&attr(0x40, LOCAL_PREF, &[0, 0, 0, 100]), &ebgp()),
        discard(LOCAL_PREF, "LOCAL_PREF from an external peer")
    );
    assert_eq!(
        outcome_with(&attr(0x40, LOCAL_PREF, &[0, 0, 100]), &ibgp()),
        withdraw(LOCAL_PREF, "LOCAL_PREF length is not 4")
    );
    // From eBGP even a malformed one is only discarded.
    assert_eq!(
        outcome_with(&attr(0x40, LOCAL_PREF, &[0, 0, 100]), &ebgp()),
        discard(LOCAL_PREF, "LOCAL_PREF from an external peer")
    );
}

#[test]
fn atomic_aggregate_length_rule() {
    let u = update(
        &msg(
            &[],
            &[mandatory(), attr(0x40, ATOMIC_AGGREGATE, &[1])].concat(),
            NLRI_26,
        ),
        &ibgp(),
    );
    assert_eq!(
        u.outcome,
        discard(ATOMIC_AGGREGATE, "ATOMIC_AGGREGATE length is not 0")
    );
    assert!(!u.attributes.atomic_aggregate);
}

#[test]
fn aggregator_length_rule() {
    assert_eq!(
        outcome_with(
            &attr(0xc0, AGGREGATOR, &[0, 0, 0xfd, 0xe8, 10, 0, 0]),
            &ibgp()
        ),
        discard(AGGREGATOR, "AGGREGATOR length is wrong")
    );
    // A 2-octet session expects 6 octets.
    let two = Context::default();
    let attrs = [
        origin(),
        attr(0x40, AS_PATH, &[2, 1, 0xfd, 0xe8]),
        next_hop(),
    ]
    .concat();
    let extra = attr(0xc0, AGGREGATOR, &[0, 0, 0xfd, 0xe8, 10, 0, 0, 1]);
    let u = update(&msg(&[], &[attrs, extra].concat(), NLRI_26), &two);
    assert_eq!(u.outcome, discard(AGGREGATOR, "AGGREGATOR length is wrong"));
}

#[test]
fn communities_length_rule() {
    for v in [&[0, 0, 0, 1, 2][..], &[]] {
        assert_eq!(
            outcome_with(&attr(0xc0, COMMUNITIES, v), &ibgp()),
            withdraw(
                COMMUNITIES,
                "COMMUNITIES length is not a non-zero multiple of 4"
            )
        );
    }
}

#[test]
fn originator_id_rules() {
    assert_eq!(
        outcome_with(&attr(0x80, ORIGINATOR_ID, &[1, 1, 1, 1]), &ebgp()),
        discard(ORIGINATOR_ID, "ORIGINATOR_ID from an external peer")
    );
    assert_eq!(
        outcome_with(&attr(0x80, ORIGINATOR_ID, &[1, 1, 1]), &ibgp()),
        withdraw(ORIGINATOR_ID, "ORIGINATOR_ID length is not 4")
    );
}

#[test]
fn cluster_list_rules() {
    assert_eq!(
        outcome_with(&attr(0x80, CLUSTER_LIST, &[1, 1, 1, 1]), &ebgp()),
        discard(CLUSTER_LIST, "CLUSTER_LIST from an external peer")
    );
    assert_eq!(
        outcome_with(&attr(0x80, CLUSTER_LIST, &[1, 1, 1, 1, 2, 2]), &ibgp()),
        withdraw(
            CLUSTER_LIST,
            "CLUSTER_LIST length is not a non-zero multiple of 4"
        )
    );
}

#[test]
fn mp_attributes_of_other_families_are_discarded() {
    let a = attr(0x80, MP_UNREACH_NLRI, &[0, 1, 128, 1, 2, 3]);
    let u = update(&msg(&[], &a, &[]), &ibgp());
    assert_eq!(
        u.outcome,
        discard(
            MP_UNREACH_NLRI,
            "MP_UNREACH_NLRI of an unsupported AFI/SAFI"
        )
    );
    assert_eq!(u.attributes.mp_unreach, None);
    let a = attr(0x80, MP_REACH_NLRI, &[0, 25, 65, 0, 0]);
    let u = update(&msg(&[], &a, &[]), &ibgp());
    assert_eq!(
        u.outcome,
        discard(MP_REACH_NLRI, "MP_REACH_NLRI of an unsupported AFI/SAFI")
    );
}

#[test]
fn extended_communities_length_rule() {
    assert_eq!(
        outcome_with(&attr(0xc0, EXTENDED_COMMUNITIES, &[0; 12]), &ibgp()),
        withdraw(
            EXTENDED_COMMUNITIES,
            "EXTENDED_COMMUNITIES length is not a non-zero multiple of 8"
        )
    );
}

#[test]
fn large_community_length_rule() {
    assert_eq!(
        outcome_with(&attr(0xc0, LARGE_COMMUNITY, &[0; 13]), &ibgp()),
        withdraw(
            LARGE_COMMUNITY,
            "LARGE_COMMUNITY length is not a non-zero multiple of 12"
        )
    );
}

#[test]
fn unknown_optional_transitive_is_kept_with_partial() {
    let u = update(
        &msg(
            &[],
            &[mandatory(), attr(0xc0, 99, &[1, 2, 3])].concat(),
            NLRI_26,
        ),
        &ibgp(),
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert_eq!(
        u.attributes.unknown,
        vec![RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: Bytes::from_static(&[1, 2, 3])
        }]
    );
    let wire = encode_to_bytes(&Message::Update(u), &ibgp());
    assert!(wire.windows(6).any(|w| w == [0xe0, 99, 3, 1, 2, 3]));
}

#[test]
fn unknown_attributes_decode_in_type_code_order() {
    let extra = [attr(0xc0, 97, &[]), attr(0xc0, 58, &[1])].concat();
    let u = update(&msg(&[], &[mandatory(), extra].concat(), NLRI_26), &ibgp());
    let codes: Vec<u8> = u.attributes.unknown.iter().map(|a| a.type_code).collect();
    assert_eq!(codes, vec![58, 97]);
}

#[test]
fn unknown_optional_non_transitive_is_dropped_silently() {
    let u = update(
        &msg(&[], &[mandatory(), attr(0x80, 99, &[1])].concat(), NLRI_26),
        &ibgp(),
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert!(u.attributes.unknown.is_empty());
}

#[test]
fn missing_mandatory_attributes_are_withdraw() {
    let missing = "missing well-known mandatory attribute";
    let u = update(
        &msg(&[], &[as_path(), next_hop()].concat(), NLRI_26),
        &ibgp(),
    );
    assert_eq!(u.outcome, withdraw(ORIGIN, missing));
    let u = update(
        &msg(&[], &[origin(), next_hop()].concat(), NLRI_26),
        &ibgp(),
    );
    assert_eq!(u.outcome, withdraw(AS_PATH, missing));
    let u = update(&msg(&[], &[origin(), as_path()].concat(), NLRI_26), &ibgp());
    assert_eq!(u.outcome, withdraw(NEXT_HOP, missing));
    // IPv6 in MP_REACH_NLRI needs no NEXT_HOP, but ORIGIN and AS_PATH.
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v.extend_from_slice(&[0, 122, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40]);
    let mp = attr(0x90, MP_REACH_NLRI, &v);
    let u = update(
        &msg(&[], &[origin(), as_path(), mp.clone()].concat(), &[]),
        &ibgp(),
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert_eq!(
        u.attributes.mp_reach.as_ref().map(|m| m.nlri.len()),
        Some(1)
    );
    let u = update(&msg(&[], &[as_path(), mp].concat(), &[]), &ibgp());
    assert_eq!(u.outcome, withdraw(ORIGIN, missing));
}

#[test]
fn missing_local_pref_on_ibgp_is_fine() {
    let u = update(&msg(&[], &mandatory(), NLRI_26), &ibgp());
    assert_eq!(
        (u.outcome, u.attributes.local_pref),
        (Outcome::Accepted, None)
    );
}

#[test]
fn attributes_without_nlri_are_accepted() {
    let u = update(
        &msg(
            &[],
            &[origin(), attr(0xc0, COMMUNITIES, &[0, 0, 0, 1])].concat(),
            &[],
        ),
        &ibgp(),
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert!(u.nlri.is_empty() && u.withdrawn.is_empty() && u.attributes.mp_reach.is_none());
}

#[test]
fn extended_length_flag_both_ways() {
    // Received with E set although the value is short.
    let u = update(
        &msg(
            &[],
            &[mandatory(), attr(0xd0, COMMUNITIES, &[0, 0, 0, 7])].concat(),
            NLRI_26,
        ),
        &ibgp(),
    );
    assert_eq!(u.attributes.communities, vec![7]);
    // Sent with E only past 255 octets.
    let mut u2 = u.clone();
    u2.attributes.communities = (0..64).collect();
    let wire = encode_to_bytes(&Message::Update(u2.clone()), &ibgp());
    assert!(wire.windows(4).any(|w| w == [0xd0, COMMUNITIES, 1, 0]));
    assert_eq!(update(&wire, &ibgp()), u2);
    let wire = encode_to_bytes(&Message::Update(u.clone()), &ibgp());
    assert!(wire.windows(3).any(|w| w == [0xc0, COMMUNITIES, 4]));
}

#[test]
fn end_of_rib_both_families() {
    let ctx = ibgp();
    let v4 = encode_to_bytes(
        &Message::Update(Update::end_of_rib(AfiSafi::IPV4_UNICAST)),
        &ctx,
    );
    assert_eq!(v4.len(), 23);
    assert_eq!(
        update(&v4, &ctx).end_of_rib_family(),
        Some(AfiSafi::IPV4_UNICAST)
    );
    let v6 = encode_to_bytes(
        &Message::Update(Update::end_of_rib(AfiSafi::IPV6_UNICAST)),
        &ctx,
    );
    assert_eq!(&v6[19..], &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1]);
    assert_eq!(
        update(&v6, &ctx).end_of_rib_family(),
        Some(AfiSafi::IPV6_UNICAST)
    );
    let not = update(&msg(&[], &mandatory(), NLRI_26), &ctx);
    assert_eq!(not.end_of_rib_family(), None);
}

#[test]
fn malformed_attribute_only_update_is_not_end_of_rib() {
    // A bad ORIGIN alone decodes to empty attributes; it still carried attributes.
    let ctx = ibgp();
    let u = update(&msg(&[], &[0x40, 1, 1, 7], &[]), &ctx);
    assert!(u.treat_as_withdraw());
    assert_eq!(u.end_of_rib_family(), None);
    let u = update(&msg(&[], &[0x40, 6, 1, 0], &[]), &ctx);
    assert!(matches!(u.outcome, Outcome::Discarded(_)));
    assert_eq!(u.end_of_rib_family(), None);
}

#[test]
fn ignored_attribute_only_update_is_not_end_of_rib() {
    // An unknown optional non-transitive attribute is ignored; the UPDATE that
    // carried only it (alone, or beside an empty MP_UNREACH_NLRI) is no End-of-RIB.
    let ctx = ibgp();
    let u = update(&msg(&[], &attr(0x80, 99, &[1]), &[]), &ctx);
    assert!(u.attributes.unknown.is_empty());
    assert_eq!(u.end_of_rib_family(), None);
    let mp_eor = attr(0x80, 15, &[0, 2, 1]);
    let u = update(
        &msg(&[], &[mp_eor.clone(), attr(0x80, 99, &[1])].concat(), &[]),
        &ctx,
    );
    assert_eq!(u.end_of_rib_family(), None);
    // With routes in it, ignoring the attribute changes nothing.
    let u = update(
        &msg(&[], &[mandatory(), attr(0x80, 99, &[1])].concat(), NLRI_26),
        &ctx,
    );
    assert_eq!(u.outcome, Outcome::Accepted);
    assert_eq!(
        update(&msg(&[], &mp_eor, &[]), &ctx).end_of_rib_family(),
        Some(AfiSafi::IPV6_UNICAST)
    );
}

#[test]
fn full_update_round_trip_with_add_path() {
    let ctx = Context {
        four_octet_as: true,
        add_path_rx: Families {
            ipv4: true,
            ipv6: true,
        },
        add_path_tx: Families {
            ipv4: true,
            ipv6: true,
        },
        ..Context::default()
    };
    let u = Update {
        withdrawn: vec![Nlri::with_path_id("10.9.0.0/26".parse().unwrap(), 3)],
        attributes: Attributes {
            origin: Some(Origin::Egp),
            as_path: Some(AsPath {
                segments: vec![
                    AsSegment {
                        kind: SegmentKind::ConfedSet,
                        asns: vec![64512, 64513],
                    },
                    AsSegment {
                        kind: SegmentKind::Sequence,
                        asns: vec![65001, 4_200_000_000],
                    },
                    AsSegment {
                        kind: SegmentKind::Set,
                        asns: vec![1, 2],
                    },
                ],
            }),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: Some(5),
            local_pref: Some(200),
            atomic_aggregate: true,
            aggregator: Some(Aggregator {
                asn: 65001,
                address: Ipv4Addr::new(192, 0, 2, 9),
            }),
            communities: vec![0xfde8_0001],
            originator_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
            cluster_list: vec![Ipv4Addr::new(2, 2, 2, 2)],
            mp_reach: Some(MpReach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                next_hops: vec!["fd00::1".parse().unwrap(), "fe80::1".parse().unwrap()],
                nlri: vec![Nlri::with_path_id("fd00:1::40/122".parse().unwrap(), 9)],
            }),
            mp_unreach: Some(MpUnreach {
                afi_safi: AfiSafi::IPV6_UNICAST,
                withdrawn: vec![Nlri::with_path_id("fd00:2::/64".parse().unwrap(), 1)],
            }),
            extended_communities: vec![0x0002_fde8_0000_0001],
            large_communities: vec![LargeCommunity {
                global: 1,
                local1: 2,
                local2: 3,
            }],
            unknown: vec![RawAttribute {
                flags: 0xe0,
                type_code: 99,
                value: Bytes::from_static(b"x"),
            }],
        },
        nlri: vec![Nlri::with_path_id("10.0.0.64/26".parse().unwrap(), 7)],
        outcome: Outcome::Accepted,
    };
    let wire = encode_to_bytes(&Message::Update(u.clone()), &ctx);
    assert_eq!(frame(&wire, &ctx), Ok(Some(wire.len())));
    assert_eq!(update(&wire, &ctx), u);
}
