//! RFC 7606 matrix cases: AS4_PATH/AS4_AGGREGATOR and the structure of the attribute field.

use super::*;

pub(super) fn as4_cases(v: &mut Vec<Case>) {
    // On a 2-octet session: AS_PATH "65001 23456", AS4_PATH carries the real second AS.
    let two = |e: &Env, extra: Vec<u8>| {
        e.upd(
            &[
                origin(0),
                as_path(&[65001, 23456], false),
                e.nh_attr(),
                med(e.marker),
                extra,
            ]
            .concat(),
        )
    };
    let merged = vec![Want::as_path("65001 4200000001")];
    let unmerged = vec![Want::as_path("65001 23456")];
    keep(
        v,
        "AS4_PATH merged into AS_PATH",
        &[TwoOctet],
        merged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &segment(2, &[4200000001], true))),
    );
    keep(
        v,
        "AS4_PATH before AS_PATH is merged the same",
        &[TwoOctet],
        merged,
        move |e| {
            e.upd(
                &[
                    attr(OT, AS4_PATH, &segment(2, &[4200000001], true)),
                    origin(0),
                    as_path(&[65001, 23456], false),
                    e.nh_attr(),
                    med(e.marker),
                ]
                .concat(),
            )
        },
    );
    keep(
        v,
        "AS4_PATH with segment type 0 is discarded",
        &[TwoOctet],
        unmerged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &[0, 1, 0, 0, 0, 1])),
    );
    keep(
        v,
        "AS4_PATH with segment length 0 is discarded",
        &[TwoOctet],
        unmerged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &[2, 0])),
    );
    keep(
        v,
        "AS4_PATH with an overrun is discarded",
        &[TwoOctet],
        unmerged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &[2, 2, 0, 0, 0, 1])),
    );
    keep(
        v,
        "AS4_PATH empty is discarded",
        &[TwoOctet],
        unmerged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &[])),
    );
    keep(
        v,
        "AS4_PATH with a confederation segment is discarded",
        &[TwoOctet],
        unmerged.clone(),
        move |e| two(e, attr(OT, AS4_PATH, &segment(3, &[4200000001], true))),
    );
    keep(
        v,
        "AS4_PATH flagged well-known is discarded",
        &[TwoOctet],
        unmerged,
        move |e| two(e, attr(WK, AS4_PATH, &segment(2, &[4200000001], true))),
    );
    keep(
        v,
        "AS4_PATH from a 4-octet speaker is discarded",
        FOUR,
        vec![Want::as_path("65001 65002")],
        |e| {
            e.upd(
                &[
                    origin(0),
                    as_path(&[65001, 65002], true),
                    e.nh_attr(),
                    med(e.marker),
                    attr(OT, AS4_PATH, &segment(2, &[4200000001], true)),
                ]
                .concat(),
            )
        },
    );

    let agg_trans = |_: &Env| attr(OT, AGGREGATOR, &[0x5b, 0xa0, 10, 0, 0, 1]);
    keep_attr(
        v,
        "AS4_AGGREGATOR replaces an AS_TRANS aggregator",
        &[TwoOctet],
        vec![Want::Aggregator(Some((
            4200000001,
            Ipv4Addr::new(10, 0, 0, 1),
        )))],
        move |e| {
            [
                agg_trans(e),
                attr(
                    OT,
                    AS4_AGGREGATOR,
                    &[4200000001u32.to_be_bytes().to_vec(), vec![10, 0, 0, 1]].concat(),
                ),
            ]
            .concat()
        },
    );
    let trans = vec![Want::Aggregator(Some((23456, Ipv4Addr::new(10, 0, 0, 1))))];
    keep_attr(
        v,
        "AS4_AGGREGATOR of length 7 is discarded",
        &[TwoOctet],
        trans.clone(),
        move |e| [agg_trans(e), attr(OT, AS4_AGGREGATOR, &[1; 7])].concat(),
    );
    keep_attr(
        v,
        "AS4_AGGREGATOR flagged non-transitive is discarded",
        &[TwoOctet],
        trans,
        move |e| {
            [
                agg_trans(e),
                attr(
                    ONT,
                    AS4_AGGREGATOR,
                    &[4200000001u32.to_be_bytes().to_vec(), vec![10, 0, 0, 1]].concat(),
                ),
            ]
            .concat()
        },
    );
    keep_attr(
        v,
        "AS4_AGGREGATOR from a 4-octet speaker is discarded",
        &[Ibgp],
        vec![Want::Aggregator(None)],
        |_| attr(OT, AS4_AGGREGATOR, &[0, 0, 0, 1, 10, 0, 0, 1]),
    );
}

pub(super) fn structure_cases(v: &mut Vec<Case>) {
    tw(
        v,
        "attribute length runs past the attribute field",
        ALL,
        |e| e.upd(&[e.plain(), vec![OT, 99, 10, 1, 2]].concat()),
    );
    tw(v, "attribute header of one octet at the end", FOUR, |e| {
        e.upd(&[e.plain(), vec![OT]].concat())
    });
    tw(
        v,
        "attribute header of two octets at the end",
        &[Ibgp],
        |e| e.upd(&[e.plain(), vec![OT, 99]].concat()),
    );
    tw(v, "extended-length attribute header cut short", FOUR, |e| {
        e.upd(&[e.plain(), vec![OT | EXTENDED, 99, 0]].concat())
    });
    tw(v, "first attribute claims 255 octets", &[Ibgp], |e| {
        e.upd(&[vec![WK, ORIGIN, 255, 0], e.path(), e.nh_attr()].concat())
    });
    tw(v, "NLRI with no path attributes at all", ALL, |e| {
        update(&[], &[], &e.nlri())
    });
    tw(
        v,
        "NLRI with only an unknown transitive attribute",
        FOUR,
        |e| e.upd(&attr(OT, 99, &[0, 0])),
    );
    keep(
        v,
        "all attributes with extended lengths",
        &[Ibgp],
        vec![Want::BgpOrigin("igp")],
        |e| {
            e.upd(
                &[
                    attr(WK | EXTENDED, ORIGIN, &[0]),
                    attr(WK | EXTENDED, AS_PATH, &[]),
                    attr(WK | EXTENDED, NEXT_HOP, &e.nh.octets()),
                    attr(ONT | EXTENDED, MED, &e.marker.to_be_bytes()),
                ]
                .concat(),
            )
        },
    );
    keep(
        v,
        "withdrawal and announcement of the same prefix: the announcement wins",
        &[Ibgp],
        vec![],
        |e| update(&e.nlri(), &e.base(), &e.nlri()),
    );

    reset(
        v,
        "Withdrawn Routes Length past the message",
        ALL,
        3,
        1,
        none,
        |_| message(UPDATE, &[0, 200, 0, 0]),
    );
    reset(
        v,
        "Total Path Attribute Length past the message",
        ALL,
        3,
        1,
        none,
        |e| {
            let attrs = e.plain();
            let mut body = vec![0, 0];
            body.extend_from_slice(&u16::try_from(attrs.len() + 50).unwrap_or(0).to_be_bytes());
            body.extend_from_slice(&attrs);
            message(UPDATE, &body)
        },
    );
    reset(
        v,
        "Withdrawn Routes Length of 1 with nothing else",
        &[Ibgp],
        3,
        1,
        none,
        |_| message(UPDATE, &[0, 1, 0, 0]),
    );
    reset(v, "NLRI prefix length 33", ALL, 3, 10, none, |e| {
        update(&[], &e.plain(), &[33, 100, 66, 0, 0, 0])
    });
    reset(v, "NLRI prefix length 255", &[Ibgp], 3, 10, none, |e| {
        update(&[], &e.plain(), &[255, 100])
    });
    reset(v, "NLRI prefix cut short", FOUR, 3, 10, none, |e| {
        update(&[], &e.plain(), &[24, 100, 66])
    });
    reset(v, "withdrawn prefix length 33", FOUR, 3, 10, none, |_| {
        update(&[33, 1, 2, 3, 4, 5], &[], &[])
    });
    reset(
        v,
        "withdrawn prefix cut short",
        &[Ibgp],
        3,
        10,
        none,
        |_| update(&[32, 100, 66], &[], &[]),
    );
    let unknown_wk = |_: &Env| attr(WK, 99, &[1, 2]);
    reset(
        v,
        "unrecognized well-known attribute",
        ALL,
        3,
        2,
        unknown_wk,
        move |e| e.upd(&[e.plain(), unknown_wk(e)].concat()),
    );
    let unknown_wk_ext = |_: &Env| attr(WK | EXTENDED, 200, &[9; 3]);
    reset(
        v,
        "unrecognized well-known attribute, extended length",
        &[Ibgp],
        3,
        2,
        unknown_wk_ext,
        move |e| e.upd(&[e.plain(), unknown_wk_ext(e)].concat()),
    );
    let unknown_wk_partial = |_: &Env| attr(WK | PARTIAL, 23, &[0; 4]);
    reset(
        v,
        "unrecognized well-known attribute type 23 with Partial",
        &[Ebgp],
        3,
        2,
        unknown_wk_partial,
        move |e| e.upd(&[e.plain(), unknown_wk_partial(e)].concat()),
    );
    reset(
        v,
        "UPDATE of 22 octets",
        FOUR,
        1,
        2,
        |_| vec![0, 22],
        |_| message(UPDATE, &[0, 0, 0]),
    );
}
