//! RFC 7606 matrix cases: ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF, ATOMIC_AGGREGATE and AGGREGATOR.

use super::*;

pub(super) fn origin_cases(v: &mut Vec<Case>) {
    let rest = |e: &Env| [e.path(), e.nh_attr()].concat();
    tw(v, "ORIGIN length 0", ALL, move |e| {
        e.upd(&[attr(WK, ORIGIN, &[]), rest(e)].concat())
    });
    tw(v, "ORIGIN length 2", ALL, move |e| {
        e.upd(&[attr(WK, ORIGIN, &[0, 0]), rest(e)].concat())
    });
    tw(v, "ORIGIN value 3", ALL, move |e| {
        e.upd(&[attr(WK, ORIGIN, &[3]), rest(e)].concat())
    });
    tw(v, "ORIGIN value 255", FOUR, move |e| {
        e.upd(&[attr(WK, ORIGIN, &[255]), rest(e)].concat())
    });
    tw(v, "ORIGIN flagged optional transitive", FOUR, move |e| {
        e.upd(&[attr(OT, ORIGIN, &[0]), rest(e)].concat())
    });
    tw(
        v,
        "ORIGIN flagged optional non-transitive",
        &[Ibgp],
        move |e| e.upd(&[attr(ONT, ORIGIN, &[0]), rest(e)].concat()),
    );
    tw(v, "ORIGIN without the transitive flag", ALL, move |e| {
        e.upd(&[attr(0, ORIGIN, &[0]), rest(e)].concat())
    });
    tw(v, "ORIGIN missing", ALL, move |e| e.upd(&rest(e)));
    let m = |e: &Env| med(e.marker);
    keep(
        v,
        "ORIGIN with the Partial bit",
        &[Ibgp],
        vec![Want::BgpOrigin("igp")],
        move |e| e.upd(&[attr(WK | PARTIAL, ORIGIN, &[0]), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN with an extended length",
        &[Ibgp],
        vec![Want::BgpOrigin("egp")],
        move |e| e.upd(&[attr(WK | EXTENDED, ORIGIN, &[1]), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN incomplete",
        &[Ebgp],
        vec![Want::BgpOrigin("incomplete")],
        move |e| e.upd(&[origin(2), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN repeated: the first is kept",
        FOUR,
        vec![Want::BgpOrigin("egp")],
        move |e| e.upd(&[origin(1), origin(2), rest(e), m(e)].concat()),
    );
}

pub(super) fn as_path_cases(v: &mut Vec<Case>) {
    let around = |e: &Env, path: Vec<u8>| e.upd(&[origin(0), path, e.nh_attr()].concat());
    tw(v, "AS_PATH segment type 0", ALL, move |e| {
        around(
            e,
            attr(WK, AS_PATH, &[[0, 1].to_vec(), e.asn(65001)].concat()),
        )
    });
    tw(v, "AS_PATH segment type 5", FOUR, move |e| {
        around(
            e,
            attr(WK, AS_PATH, &[[5, 1].to_vec(), e.asn(65001)].concat()),
        )
    });
    tw(v, "AS_PATH segment length 0", ALL, move |e| {
        around(e, attr(WK, AS_PATH, &[2, 0]))
    });
    tw(v, "AS_PATH segment overrun", ALL, move |e| {
        around(
            e,
            attr(
                WK,
                AS_PATH,
                &[[2, 3].to_vec(), e.asn(65001), e.asn(65002)].concat(),
            ),
        )
    });
    tw(v, "AS_PATH one stray octet", ALL, move |e| {
        around(
            e,
            attr(
                WK,
                AS_PATH,
                &[[2, 1].to_vec(), e.asn(65001), vec![2]].concat(),
            ),
        )
    });
    tw(v, "AS_PATH flagged optional", FOUR, move |e| {
        around(e, attr(OT, AS_PATH, &segment(2, &[65001], e.four)))
    });
    tw(v, "AS_PATH missing", ALL, move |e| {
        e.upd(&[origin(0), e.nh_attr()].concat())
    });
    tw(
        v,
        "AS_PATH in 2-octet encoding on a 4-octet session",
        FOUR,
        move |e| around(e, attr(WK, AS_PATH, &[2, 1, 0xfd, 0xe9])),
    );
    tw(
        v,
        "AS_PATH with a confederation sequence from eBGP",
        &[Ebgp],
        move |e| {
            around(
                e,
                attr(
                    WK,
                    AS_PATH,
                    &[segment(3, &[65010], true), segment(2, &[65001], true)].concat(),
                ),
            )
        },
    );
    tw(
        v,
        "AS_PATH with a confederation set from eBGP",
        &[Ebgp],
        move |e| {
            around(
                e,
                attr(
                    WK,
                    AS_PATH,
                    &[segment(4, &[65010], true), segment(2, &[65001], true)].concat(),
                ),
            )
        },
    );
    tw(
        v,
        "AS_PATH with our own AS from eBGP (loop)",
        &[Ebgp],
        move |e| around(e, as_path(&[65001, 64512], true)),
    );
    let m = |e: &Env| med(e.marker);
    keep(
        v,
        "AS_PATH of zero length on iBGP",
        IBGP,
        vec![Want::as_path("")],
        move |e| e.upd(&[origin(0), attr(WK, AS_PATH, &[]), e.nh_attr(), m(e)].concat()),
    );
    keep(
        v,
        "AS_PATH with an AS_SET",
        FOUR,
        vec![Want::as_path("65001 {65002,65003}")],
        move |e| {
            e.upd(
                &[
                    origin(0),
                    attr(
                        WK,
                        AS_PATH,
                        &[
                            segment(2, &[65001], true),
                            segment(1, &[65002, 65003], true),
                        ]
                        .concat(),
                    ),
                    e.nh_attr(),
                    m(e),
                ]
                .concat(),
            )
        },
    );
    keep(
        v,
        "AS_PATH with a confederation sequence on iBGP",
        &[Ibgp],
        vec![Want::as_path("(65010) 65001")],
        move |e| {
            e.upd(
                &[
                    origin(0),
                    attr(
                        WK,
                        AS_PATH,
                        &[segment(3, &[65010], true), segment(2, &[65001], true)].concat(),
                    ),
                    e.nh_attr(),
                    m(e),
                ]
                .concat(),
            )
        },
    );
    keep(
        v,
        "AS_PATH of 255 ASNs",
        &[Ibgp],
        vec![Want::AsPath(vec!["65001"; 255].join(" "))],
        move |e| e.upd(&[origin(0), as_path(&[65001; 255], true), e.nh_attr(), m(e)].concat()),
    );
    keep(
        v,
        "AS_PATH repeated: the first is kept",
        FOUR,
        vec![Want::as_path("65001")],
        move |e| {
            e.upd(
                &[
                    origin(0),
                    as_path(&[65001], true),
                    as_path(&[65009], true),
                    e.nh_attr(),
                    m(e),
                ]
                .concat(),
            )
        },
    );
}

pub(super) fn next_hop_cases(v: &mut Vec<Case>) {
    let around = |e: &Env, nh: Vec<u8>| e.upd(&[origin(0), e.path(), nh].concat());
    for len in [0usize, 3, 5, 8] {
        tw(
            v,
            &format!("NEXT_HOP length {len}"),
            if len == 3 { ALL } else { FOUR },
            move |e| around(e, attr(WK, NEXT_HOP, &vec![172; len])),
        );
    }
    for (what, a) in [
        ("0.0.0.0", [0, 0, 0, 0]),
        ("255.255.255.255", [255; 4]),
        ("224.0.0.5", [224, 0, 0, 5]),
        ("239.1.1.1", [239, 1, 1, 1]),
    ] {
        tw(v, &format!("NEXT_HOP {what}"), FOUR, move |e| {
            around(e, attr(WK, NEXT_HOP, &a))
        });
    }
    tw(v, "NEXT_HOP flagged optional", ALL, move |e| {
        around(e, attr(OT, NEXT_HOP, &e.nh.octets()))
    });
    tw(v, "NEXT_HOP missing with NLRI", ALL, move |e| {
        e.upd(&[origin(0), e.path()].concat())
    });
    tw(v, "NEXT_HOP is ipipd's own address", &[Ibgp], move |e| {
        around(e, next_hop(Ipv4Addr::new(172, 30, 0, 1)))
    });
    let m = |e: &Env| med(e.marker);
    keep(
        v,
        "NEXT_HOP of a third router on the link",
        &[Ibgp],
        vec![Want::next_hop("172.30.0.99")],
        move |e| {
            e.upd(
                &[
                    origin(0),
                    e.path(),
                    next_hop(Ipv4Addr::new(172, 30, 0, 99)),
                    m(e),
                ]
                .concat(),
            )
        },
    );
    keep(
        v,
        "NEXT_HOP repeated: the first is kept",
        &[Ibgp],
        vec![Want::next_hop("172.30.0.98")],
        move |e| {
            e.upd(
                &[
                    origin(0),
                    e.path(),
                    next_hop(Ipv4Addr::new(172, 30, 0, 98)),
                    next_hop(Ipv4Addr::new(172, 30, 0, 97)),
                    m(e),
                ]
                .concat(),
            )
        },
    );
}

pub(super) fn med_local_pref_cases(v: &mut Vec<Case>) {
    for len in [0usize, 2, 3, 5, 8] {
        tw_attr(
            v,
            &format!("MULTI_EXIT_DISC length {len}"),
            if len == 3 { ALL } else { FOUR },
            move |_| attr(ONT, MED, &vec![1; len]),
        );
    }
    tw_attr(v, "MULTI_EXIT_DISC flagged well-known", FOUR, |_| {
        attr(WK, MED, &[0, 0, 0, 1])
    });
    tw_attr(v, "MULTI_EXIT_DISC flagged transitive", &[Ibgp], |_| {
        attr(OT, MED, &[0, 0, 0, 1])
    });
    keep(
        v,
        "MULTI_EXIT_DISC repeated: the first is kept",
        FOUR,
        vec![],
        |e| e.upd(&[e.base(), med(7)].concat()),
    );

    for len in [0usize, 3, 5, 8] {
        tw_attr(v, &format!("LOCAL_PREF length {len}"), IBGP, move |_| {
            attr(WK, LOCAL_PREF, &vec![1; len])
        });
    }
    tw_attr(v, "LOCAL_PREF flagged optional", IBGP, |_| {
        attr(OT, LOCAL_PREF, &200u32.to_be_bytes())
    });
    tw_attr(
        v,
        "LOCAL_PREF flagged optional from eBGP (flags win)",
        &[Ebgp],
        |_| attr(ONT, LOCAL_PREF, &200u32.to_be_bytes()),
    );
    keep_attr(
        v,
        "LOCAL_PREF valid on iBGP",
        &[Ibgp],
        vec![Want::LocalPref(Some(300))],
        |_| local_pref(300),
    );
    keep_attr(
        v,
        "LOCAL_PREF repeated: the first is kept",
        &[Ibgp],
        vec![Want::LocalPref(Some(200))],
        |_| [local_pref(200), local_pref(50)].concat(),
    );
    keep_attr(
        v,
        "LOCAL_PREF from eBGP is discarded",
        &[Ebgp],
        vec![Want::LocalPref(None)],
        |_| local_pref(300),
    );
    keep_attr(
        v,
        "LOCAL_PREF of length 3 from eBGP is discarded",
        &[Ebgp],
        vec![Want::LocalPref(None)],
        |_| attr(WK, LOCAL_PREF, &[1, 2, 3]),
    );
}

pub(super) fn aggregate_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "ATOMIC_AGGREGATE valid",
        ALL,
        vec![Want::AtomicAggregate(true)],
        |_| attr(WK, ATOMIC_AGGREGATE, &[]),
    );
    for len in [1usize, 4] {
        keep_attr(
            v,
            &format!("ATOMIC_AGGREGATE length {len} is discarded"),
            ALL,
            vec![Want::AtomicAggregate(false)],
            move |_| attr(WK, ATOMIC_AGGREGATE, &vec![0; len]),
        );
    }
    tw_attr(v, "ATOMIC_AGGREGATE flagged optional", FOUR, |_| {
        attr(OT, ATOMIC_AGGREGATE, &[])
    });

    let agg4 = |asn: u32| [asn.to_be_bytes().to_vec(), vec![10, 0, 0, 1]].concat();
    keep_attr(
        v,
        "AGGREGATOR valid (4-octet)",
        FOUR,
        vec![Want::Aggregator(Some((
            4200000001,
            Ipv4Addr::new(10, 0, 0, 1),
        )))],
        move |_| attr(OT, AGGREGATOR, &agg4(4200000001)),
    );
    keep_attr(
        v,
        "AGGREGATOR valid (2-octet)",
        &[TwoOctet],
        vec![Want::Aggregator(Some((65001, Ipv4Addr::new(10, 0, 0, 1))))],
        |_| attr(OT, AGGREGATOR, &[0xfd, 0xe9, 10, 0, 0, 1]),
    );
    for len in [0usize, 5, 6, 7, 9] {
        keep_attr(
            v,
            &format!("AGGREGATOR length {len} on a 4-octet session is discarded"),
            if len == 6 { FOUR } else { &[Ibgp] },
            vec![Want::Aggregator(None)],
            move |_| attr(OT, AGGREGATOR, &vec![1; len]),
        );
    }
    for len in [7usize, 8] {
        keep_attr(
            v,
            &format!("AGGREGATOR length {len} on a 2-octet session is discarded"),
            &[TwoOctet],
            vec![Want::Aggregator(None)],
            move |_| attr(OT, AGGREGATOR, &vec![1; len]),
        );
    }
    tw_attr(v, "AGGREGATOR flagged well-known", FOUR, move |_| {
        attr(WK, AGGREGATOR, &agg4(65001))
    });
}
