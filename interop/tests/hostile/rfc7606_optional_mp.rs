//! RFC 7606 matrix cases: communities, route-reflection attributes and MP_REACH/MP_UNREACH_NLRI.

use super::*;

pub(super) fn community_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "COMMUNITIES valid",
        ALL,
        vec![Want::Communities(vec!["65000:1", "65000:2"])],
        |_| attr(OT, COMMUNITIES, &[0xfd, 0xe8, 0, 1, 0xfd, 0xe8, 0, 2]),
    );
    for len in [0usize, 3, 5, 6] {
        tw_attr(
            v,
            &format!("COMMUNITIES length {len}"),
            if len == 0 { ALL } else { FOUR },
            move |_| attr(OT, COMMUNITIES, &vec![1; len]),
        );
    }
    tw_attr(v, "COMMUNITIES flagged non-transitive", FOUR, |_| {
        attr(ONT, COMMUNITIES, &[0, 0, 0, 1])
    });
    keep_attr(
        v,
        "COMMUNITIES repeated: the first is kept",
        &[Ibgp],
        vec![Want::Communities(vec!["1:1"])],
        |_| {
            [
                attr(OT, COMMUNITIES, &[0, 1, 0, 1]),
                attr(OT, COMMUNITIES, &[0, 2, 0, 2]),
            ]
            .concat()
        },
    );

    keep_attr(
        v,
        "EXTENDED_COMMUNITIES valid",
        FOUR,
        vec![Want::ExtendedCommunities(vec!["0002fde800000001"])],
        |_| attr(OT, EXT_COMMUNITIES, &[0, 2, 0xfd, 0xe8, 0, 0, 0, 1]),
    );
    for len in [0usize, 4, 7, 9, 12] {
        tw_attr(
            v,
            &format!("EXTENDED_COMMUNITIES length {len}"),
            if len == 7 { ALL } else { FOUR },
            move |_| attr(OT, EXT_COMMUNITIES, &vec![1; len]),
        );
    }
    tw_attr(
        v,
        "EXTENDED_COMMUNITIES flagged non-transitive",
        &[Ibgp],
        |_| attr(ONT, EXT_COMMUNITIES, &[0; 8]),
    );

    keep_attr(
        v,
        "LARGE_COMMUNITY valid",
        FOUR,
        vec![Want::LargeCommunities(vec!["4200000001:1:2"])],
        |_| {
            attr(
                OT,
                LARGE_COMMUNITY,
                &[
                    4200000001u32.to_be_bytes(),
                    1u32.to_be_bytes(),
                    2u32.to_be_bytes(),
                ]
                .concat(),
            )
        },
    );
    for len in [0usize, 4, 11, 13, 25] {
        tw_attr(
            v,
            &format!("LARGE_COMMUNITY length {len}"),
            if len == 11 { ALL } else { FOUR },
            move |_| attr(OT, LARGE_COMMUNITY, &vec![1; len]),
        );
    }
    tw_attr(v, "LARGE_COMMUNITY flagged well-known", &[Ibgp], |_| {
        attr(WK, LARGE_COMMUNITY, &[0; 12])
    });

    keep_attr(
        v,
        "unknown optional transitive attribute is kept",
        ALL,
        vec![Want::UnknownAttributes(vec![99])],
        |_| attr(OT, 99, &[1, 2, 3]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute with Partial",
        &[Ibgp],
        vec![Want::UnknownAttributes(vec![99])],
        |_| attr(OT | PARTIAL, 99, &[1]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute, extended length, 300 octets",
        &[Ibgp],
        vec![Want::UnknownAttributes(vec![200])],
        |_| attr(OT, 200, &[7; 300]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute repeated",
        FOUR,
        vec![Want::UnknownAttributes(vec![99])],
        |_| [attr(OT, 99, &[1]), attr(OT, 99, &[2])].concat(),
    );
    keep_attr(
        v,
        "unknown optional non-transitive attribute is dropped",
        ALL,
        vec![Want::UnknownAttributes(vec![])],
        |_| attr(ONT, 98, &[1, 2]),
    );
    keep_attr(
        v,
        "IPv6 address-specific extended community (type 25, unknown) of odd length",
        &[Ibgp],
        vec![Want::UnknownAttributes(vec![25])],
        |_| attr(OT, 25, &[1; 7]),
    );
}

pub(super) fn reflection_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "ORIGINATOR_ID valid on iBGP",
        IBGP,
        vec![Want::OriginatorId(Some(Ipv4Addr::new(10, 9, 9, 9)))],
        |_| attr(ONT, ORIGINATOR_ID, &[10, 9, 9, 9]),
    );
    for len in [0usize, 3, 5, 8] {
        tw_attr(
            v,
            &format!("ORIGINATOR_ID length {len}"),
            if len == 3 { IBGP } else { &[Ibgp] },
            move |_| attr(ONT, ORIGINATOR_ID, &vec![10; len]),
        );
    }
    tw_attr(v, "ORIGINATOR_ID flagged transitive", &[Ibgp], |_| {
        attr(OT, ORIGINATOR_ID, &[10, 9, 9, 9])
    });
    tw_attr(
        v,
        "ORIGINATOR_ID is ipipd's router id (loop)",
        &[Ibgp],
        |_| attr(ONT, ORIGINATOR_ID, &[172, 30, 0, 1]),
    );
    keep_attr(
        v,
        "ORIGINATOR_ID from eBGP is discarded",
        &[Ebgp],
        vec![Want::OriginatorId(None)],
        |_| attr(ONT, ORIGINATOR_ID, &[10, 9, 9, 9]),
    );
    keep_attr(
        v,
        "ORIGINATOR_ID of length 3 from eBGP is discarded",
        &[Ebgp],
        vec![Want::OriginatorId(None)],
        |_| attr(ONT, ORIGINATOR_ID, &[10, 9, 9]),
    );

    keep_attr(
        v,
        "CLUSTER_LIST valid on iBGP",
        IBGP,
        vec![Want::ClusterList(vec![
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
        ])],
        |_| attr(ONT, CLUSTER_LIST, &[1, 1, 1, 1, 2, 2, 2, 2]),
    );
    for len in [0usize, 3, 5, 6] {
        tw_attr(
            v,
            &format!("CLUSTER_LIST length {len}"),
            if len == 0 { IBGP } else { &[Ibgp] },
            move |_| attr(ONT, CLUSTER_LIST, &vec![1; len]),
        );
    }
    tw_attr(v, "CLUSTER_LIST flagged transitive", &[Ibgp], |_| {
        attr(OT, CLUSTER_LIST, &[1, 1, 1, 1])
    });
    keep_attr(
        v,
        "CLUSTER_LIST from eBGP is discarded",
        &[Ebgp],
        vec![Want::ClusterList(vec![])],
        |_| attr(ONT, CLUSTER_LIST, &[1, 1, 1, 1]),
    );
    keep_attr(
        v,
        "CLUSTER_LIST of length 5 from eBGP is discarded",
        &[Ebgp],
        vec![Want::ClusterList(vec![])],
        |_| attr(ONT, CLUSTER_LIST, &[1; 5]),
    );
}

pub(super) fn mp_cases(v: &mut Vec<Case>) {
    // Announcements through MP_REACH_NLRI only: the NLRI field is empty.
    let via_mp = |e: &Env, nh: &[u8], extra: Vec<u8>| {
        update(
            &[],
            &[
                origin(0),
                e.path(),
                attr(ONT, MP_REACH, &mp_reach_value(1, 1, nh, &e.nlri())),
                med(e.marker),
                extra,
            ]
            .concat(),
            &[],
        )
    };
    keep(
        v,
        "MP_REACH_NLRI IPv4 unicast",
        ALL,
        vec![Want::next_hop("172.30.0.96")],
        move |e| via_mp(e, &[172, 30, 0, 96], Vec::new()),
    );
    keep(
        v,
        "MP_REACH_NLRI only: NEXT_HOP 0.0.0.0 is ignored",
        FOUR,
        vec![Want::next_hop("172.30.0.95")],
        move |e| via_mp(e, &[172, 30, 0, 95], next_hop(Ipv4Addr::UNSPECIFIED)),
    );
    tw(v, "MP_REACH_NLRI without ORIGIN", &[Ibgp], move |e| {
        update(
            &[],
            &[
                e.path(),
                attr(
                    ONT,
                    MP_REACH,
                    &mp_reach_value(1, 1, &e.nh.octets(), &e.nlri()),
                ),
            ]
            .concat(),
            &[],
        )
    });
    tw(v, "MP_REACH_NLRI flagged transitive", FOUR, move |e| {
        update(
            &[],
            &[
                origin(0),
                e.path(),
                attr(
                    OT,
                    MP_REACH,
                    &mp_reach_value(1, 1, &e.nh.octets(), &e.nlri()),
                ),
            ]
            .concat(),
            &[],
        )
    });
    keep_attr(
        v,
        "MP_REACH_NLRI of AFI 3 is discarded",
        FOUR,
        vec![],
        |_| attr(ONT, MP_REACH, &mp_reach_value(3, 1, &[1, 2, 3, 4], &[])),
    );
    keep_attr(
        v,
        "MP_REACH_NLRI of IPv4 multicast is discarded",
        &[Ibgp],
        vec![],
        |_| {
            attr(
                ONT,
                MP_REACH,
                &mp_reach_value(1, 2, &[1, 2, 3, 4], &[8, 10]),
            )
        },
    );
    keep_attr(
        v,
        "MP_UNREACH_NLRI of AFI 3 is discarded",
        &[Ibgp],
        vec![],
        |_| attr(ONT, MP_UNREACH, &mp_unreach_value(3, 1, &[8, 10])),
    );
    tw(v, "MP_UNREACH_NLRI withdraws the prefix", ALL, |e| {
        update(
            &[],
            &attr(ONT, MP_UNREACH, &mp_unreach_value(1, 1, &e.nlri())),
            &[],
        )
    });
    tw(
        v,
        "MP_UNREACH_NLRI flagged transitive, with NLRI",
        &[Ibgp],
        |e| {
            e.upd(
                &[
                    e.plain(),
                    attr(OT, MP_UNREACH, &mp_unreach_value(1, 1, &[])),
                ]
                .concat(),
            )
        },
    );

    let bad_nh = |len: usize| {
        move |_: &Env| attr(ONT, MP_REACH, &mp_reach_value(1, 1, &vec![172; len], &[]))
    };
    for len in [0usize, 5, 15] {
        reset(
            v,
            &format!("MP_REACH_NLRI IPv4 next hop length {len}"),
            if len == 5 { FOUR } else { &[Ibgp] },
            3,
            9,
            bad_nh(len),
            move |e| e.upd(&[e.plain(), bad_nh(len)(e)].concat()),
        );
    }
    let v6_nh4 = |_: &Env| attr(ONT, MP_REACH, &mp_reach_value(2, 1, &[1, 2, 3, 4], &[]));
    reset(
        v,
        "MP_REACH_NLRI IPv6 next hop length 4",
        &[Ibgp],
        3,
        9,
        v6_nh4,
        move |e| e.upd(&[e.plain(), v6_nh4(e)].concat()),
    );
    let short = |_: &Env| attr(ONT, MP_REACH, &[0, 1, 1]);
    reset(
        v,
        "MP_REACH_NLRI cut before the next hop length",
        FOUR,
        3,
        9,
        short,
        move |e| e.upd(&[e.plain(), short(e)].concat()),
    );
    let nh_past = |_: &Env| attr(ONT, MP_REACH, &[0, 1, 1, 16, 1, 2, 3]);
    reset(
        v,
        "MP_REACH_NLRI next hop running past the attribute",
        &[Ibgp],
        3,
        9,
        nh_past,
        move |e| e.upd(&[e.plain(), nh_past(e)].concat()),
    );
    reset(
        v,
        "MP_REACH_NLRI prefix length 33",
        FOUR,
        3,
        10,
        none,
        |e| {
            update(
                &[],
                &[
                    origin(0),
                    e.path(),
                    attr(
                        ONT,
                        MP_REACH,
                        &mp_reach_value(1, 1, &e.nh.octets(), &[33, 100, 66, 0, 0, 0]),
                    ),
                ]
                .concat(),
                &[],
            )
        },
    );
    reset(
        v,
        "MP_REACH_NLRI prefix cut short",
        &[Ibgp],
        3,
        10,
        none,
        |e| {
            update(
                &[],
                &[
                    origin(0),
                    e.path(),
                    attr(
                        ONT,
                        MP_REACH,
                        &mp_reach_value(1, 1, &e.nh.octets(), &[24, 100]),
                    ),
                ]
                .concat(),
                &[],
            )
        },
    );
    let unreach_short = |_: &Env| attr(ONT, MP_UNREACH, &[0, 1]);
    reset(
        v,
        "MP_UNREACH_NLRI of 2 octets",
        FOUR,
        3,
        9,
        unreach_short,
        move |e| update(&[], &unreach_short(e), &[]),
    );
    reset(
        v,
        "MP_UNREACH_NLRI prefix length 33",
        &[Ibgp],
        3,
        10,
        none,
        |_| {
            update(
                &[],
                &attr(
                    ONT,
                    MP_UNREACH,
                    &mp_unreach_value(1, 1, &[33, 1, 2, 3, 4, 5]),
                ),
                &[],
            )
        },
    );
    reset(v, "MP_REACH_NLRI repeated", FOUR, 3, 1, none, |e| {
        let mp = attr(
            ONT,
            MP_REACH,
            &mp_reach_value(1, 1, &e.nh.octets(), &e.nlri()),
        );
        update(&[], &[origin(0), e.path(), mp.clone(), mp].concat(), &[])
    });
    reset(v, "MP_UNREACH_NLRI repeated", &[Ibgp], 3, 1, none, |_| {
        let mp = attr(ONT, MP_UNREACH, &mp_unreach_value(1, 1, &[]));
        update(&[], &[mp.clone(), mp].concat(), &[])
    });
}
