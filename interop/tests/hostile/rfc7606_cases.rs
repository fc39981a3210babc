//! The cases of the RFC 7606 matrix: what to send and what must follow, per session kind.
//! Outcomes are those of the table in bgp/src/wire/update.rs.

use std::net::Ipv4Addr;

use interop::rawpeer::craft::*;
use ipnet::Ipv4Net;
use serde_json::{json, Value};

/// The three raw sessions of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// iBGP, 4-octet AS.
    Ibgp,
    /// eBGP (AS 65001), 4-octet AS.
    Ebgp,
    /// iBGP without the 4-octet AS capability (AS4_PATH / AS4_AGGREGATOR apply).
    TwoOctet,
}

use Kind::{Ebgp, Ibgp, TwoOctet};

/// What a case knows about its session and prefix.
pub struct Env {
    /// The case's prefix.
    pub p: Ipv4Net,
    /// The raw peer's address: the NEXT_HOP of valid announcements.
    pub nh: Ipv4Addr,
    pub four: bool,
    /// AS_PATH of valid announcements (empty on iBGP).
    pub asns: Vec<u32>,
    /// MED value that marks this case's UPDATE, so a kept route is known to be the new one.
    pub marker: u32,
}

impl Env {
    pub fn nlri(&self) -> Vec<u8> {
        prefix(self.p)
    }

    pub fn path(&self) -> Vec<u8> {
        as_path(&self.asns, self.four)
    }

    pub fn nh_attr(&self) -> Vec<u8> {
        next_hop(self.nh)
    }

    /// ORIGIN, AS_PATH, NEXT_HOP.
    pub fn plain(&self) -> Vec<u8> {
        base(&self.asns, self.nh, self.four)
    }

    /// `plain` and the MED marker.
    pub fn base(&self) -> Vec<u8> {
        [self.plain(), med(self.marker)].concat()
    }

    /// An UPDATE announcing the case prefix with `attrs`.
    pub fn upd(&self, attrs: &[u8]) -> Vec<u8> {
        update(&[], attrs, &self.nlri())
    }

    /// One AS in the session's AS_PATH encoding.
    pub fn asn(&self, a: u32) -> Vec<u8> {
        if self.four {
            a.to_be_bytes().to_vec()
        } else {
            u16::try_from(a).unwrap_or(23456).to_be_bytes().to_vec()
        }
    }
}

type Build = Box<dyn Fn(&Env) -> Vec<u8>>;

pub enum Expect {
    /// The prefix is gone from `show routes` and the kernel.
    Withdraw,
    /// The prefix is there with these `show routes --json` fields.
    Present(Vec<(&'static str, Value)>),
    /// The session is reset with this code, subcode and data.
    Reset(u8, u8, Build),
}

pub struct Case {
    pub name: String,
    pub kind: Kind,
    /// Present cases whose UPDATE carries the MED marker (checked automatically).
    pub marked: bool,
    pub build: Build,
    pub expect: Expect,
}

fn tw(
    out: &mut Vec<Case>,
    name: &str,
    kinds: &[Kind],
    f: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
) {
    for k in kinds {
        out.push(Case {
            name: name.into(),
            kind: *k,
            marked: false,
            build: Box::new(f.clone()),
            expect: Expect::Withdraw,
        });
    }
}

/// Treat-as-withdraw of an UPDATE with ORIGIN, AS_PATH, NEXT_HOP and `bad`.
fn tw_attr(
    out: &mut Vec<Case>,
    name: &str,
    kinds: &[Kind],
    bad: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
) {
    tw(out, name, kinds, move |e| {
        e.upd(&[e.plain(), bad(e)].concat())
    });
}

fn keep(
    out: &mut Vec<Case>,
    name: &str,
    kinds: &[Kind],
    checks: Vec<(&'static str, Value)>,
    f: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
) {
    for k in kinds {
        out.push(Case {
            name: name.into(),
            kind: *k,
            marked: true,
            build: Box::new(f.clone()),
            expect: Expect::Present(checks.clone()),
        });
    }
}

/// Kept route from an UPDATE with the marked base attributes and `extra`.
fn keep_attr(
    out: &mut Vec<Case>,
    name: &str,
    kinds: &[Kind],
    checks: Vec<(&'static str, Value)>,
    extra: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
) {
    keep(out, name, kinds, checks, move |e| {
        e.upd(&[e.base(), extra(e)].concat())
    });
}

fn reset(
    out: &mut Vec<Case>,
    name: &str,
    kinds: &[Kind],
    code: u8,
    subcode: u8,
    data: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
    f: impl Fn(&Env) -> Vec<u8> + Clone + 'static,
) {
    for k in kinds {
        out.push(Case {
            name: name.into(),
            kind: *k,
            marked: false,
            build: Box::new(f.clone()),
            expect: Expect::Reset(code, subcode, Box::new(data.clone())),
        });
    }
}

fn none(_: &Env) -> Vec<u8> {
    Vec::new()
}

const ALL: &[Kind] = &[Ibgp, Ebgp, TwoOctet];
const FOUR: &[Kind] = &[Ibgp, Ebgp];
const IBGP: &[Kind] = &[Ibgp, TwoOctet];

fn n(v: u64) -> Value {
    Value::from(v)
}

pub fn all_cases() -> Vec<Case> {
    let mut v = Vec::new();
    origin_cases(&mut v);
    as_path_cases(&mut v);
    next_hop_cases(&mut v);
    med_local_pref_cases(&mut v);
    aggregate_cases(&mut v);
    community_cases(&mut v);
    reflection_cases(&mut v);
    mp_cases(&mut v);
    as4_cases(&mut v);
    structure_cases(&mut v);
    v
}

fn origin_cases(v: &mut Vec<Case>) {
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
        vec![("bgp_origin", json!("igp"))],
        move |e| e.upd(&[attr(WK | PARTIAL, ORIGIN, &[0]), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN with an extended length",
        &[Ibgp],
        vec![("bgp_origin", json!("egp"))],
        move |e| e.upd(&[attr(WK | EXTENDED, ORIGIN, &[1]), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN incomplete",
        &[Ebgp],
        vec![("bgp_origin", json!("incomplete"))],
        move |e| e.upd(&[origin(2), rest(e), m(e)].concat()),
    );
    keep(
        v,
        "ORIGIN repeated: the first is kept",
        FOUR,
        vec![("bgp_origin", json!("egp"))],
        move |e| e.upd(&[origin(1), origin(2), rest(e), m(e)].concat()),
    );
}

fn as_path_cases(v: &mut Vec<Case>) {
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
        vec![("as_path", json!(""))],
        move |e| e.upd(&[origin(0), attr(WK, AS_PATH, &[]), e.nh_attr(), m(e)].concat()),
    );
    keep(
        v,
        "AS_PATH with an AS_SET",
        FOUR,
        vec![("as_path", json!("65001 {65002,65003}"))],
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
        vec![("as_path", json!("(65010) 65001"))],
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
        vec![("as_path", json!(vec!["65001"; 255].join(" ")))],
        move |e| e.upd(&[origin(0), as_path(&[65001; 255], true), e.nh_attr(), m(e)].concat()),
    );
    keep(
        v,
        "AS_PATH repeated: the first is kept",
        FOUR,
        vec![("as_path", json!("65001"))],
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

fn next_hop_cases(v: &mut Vec<Case>) {
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
        vec![("next_hop", json!("172.30.0.99"))],
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
        vec![("next_hop", json!("172.30.0.98"))],
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

fn med_local_pref_cases(v: &mut Vec<Case>) {
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
        vec![("local_pref", n(300))],
        |_| local_pref(300),
    );
    keep_attr(
        v,
        "LOCAL_PREF repeated: the first is kept",
        &[Ibgp],
        vec![("local_pref", n(200))],
        |_| [local_pref(200), local_pref(50)].concat(),
    );
    keep_attr(
        v,
        "LOCAL_PREF from eBGP is discarded",
        &[Ebgp],
        vec![("local_pref", Value::Null)],
        |_| local_pref(300),
    );
    keep_attr(
        v,
        "LOCAL_PREF of length 3 from eBGP is discarded",
        &[Ebgp],
        vec![("local_pref", Value::Null)],
        |_| attr(WK, LOCAL_PREF, &[1, 2, 3]),
    );
}

fn aggregate_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "ATOMIC_AGGREGATE valid",
        ALL,
        vec![("atomic_aggregate", json!(true))],
        |_| attr(WK, ATOMIC_AGGREGATE, &[]),
    );
    for len in [1usize, 4] {
        keep_attr(
            v,
            &format!("ATOMIC_AGGREGATE length {len} is discarded"),
            ALL,
            vec![("atomic_aggregate", json!(false))],
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
        vec![(
            "aggregator",
            json!({"asn": 4200000001u32, "address": "10.0.0.1"}),
        )],
        move |_| attr(OT, AGGREGATOR, &agg4(4200000001)),
    );
    keep_attr(
        v,
        "AGGREGATOR valid (2-octet)",
        &[TwoOctet],
        vec![("aggregator", json!({"asn": 65001, "address": "10.0.0.1"}))],
        |_| attr(OT, AGGREGATOR, &[0xfd, 0xe9, 10, 0, 0, 1]),
    );
    for len in [0usize, 5, 6, 7, 9] {
        keep_attr(
            v,
            &format!("AGGREGATOR length {len} on a 4-octet session is discarded"),
            if len == 6 { FOUR } else { &[Ibgp] },
            vec![("aggregator", Value::Null)],
            move |_| attr(OT, AGGREGATOR, &vec![1; len]),
        );
    }
    for len in [7usize, 8] {
        keep_attr(
            v,
            &format!("AGGREGATOR length {len} on a 2-octet session is discarded"),
            &[TwoOctet],
            vec![("aggregator", Value::Null)],
            move |_| attr(OT, AGGREGATOR, &vec![1; len]),
        );
    }
    tw_attr(v, "AGGREGATOR flagged well-known", FOUR, move |_| {
        attr(WK, AGGREGATOR, &agg4(65001))
    });
}

fn community_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "COMMUNITIES valid",
        ALL,
        vec![("communities", json!(["65000:1", "65000:2"]))],
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
        vec![("communities", json!(["1:1"]))],
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
        vec![("extended_communities", json!(["0002fde800000001"]))],
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
        vec![("large_communities", json!(["4200000001:1:2"]))],
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
        vec![("unknown_attributes", json!([99]))],
        |_| attr(OT, 99, &[1, 2, 3]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute with Partial",
        &[Ibgp],
        vec![("unknown_attributes", json!([99]))],
        |_| attr(OT | PARTIAL, 99, &[1]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute, extended length, 300 octets",
        &[Ibgp],
        vec![("unknown_attributes", json!([200]))],
        |_| attr(OT, 200, &[7; 300]),
    );
    keep_attr(
        v,
        "unknown optional transitive attribute repeated",
        FOUR,
        vec![("unknown_attributes", json!([99]))],
        |_| [attr(OT, 99, &[1]), attr(OT, 99, &[2])].concat(),
    );
    keep_attr(
        v,
        "unknown optional non-transitive attribute is dropped",
        ALL,
        vec![("unknown_attributes", json!([]))],
        |_| attr(ONT, 98, &[1, 2]),
    );
    keep_attr(
        v,
        "IPv6 address-specific extended community (type 25, unknown) of odd length",
        &[Ibgp],
        vec![("unknown_attributes", json!([25]))],
        |_| attr(OT, 25, &[1; 7]),
    );
}

fn reflection_cases(v: &mut Vec<Case>) {
    keep_attr(
        v,
        "ORIGINATOR_ID valid on iBGP",
        IBGP,
        vec![("originator_id", json!("10.9.9.9"))],
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
        vec![("originator_id", Value::Null)],
        |_| attr(ONT, ORIGINATOR_ID, &[10, 9, 9, 9]),
    );
    keep_attr(
        v,
        "ORIGINATOR_ID of length 3 from eBGP is discarded",
        &[Ebgp],
        vec![("originator_id", Value::Null)],
        |_| attr(ONT, ORIGINATOR_ID, &[10, 9, 9]),
    );

    keep_attr(
        v,
        "CLUSTER_LIST valid on iBGP",
        IBGP,
        vec![("cluster_list", json!(["1.1.1.1", "2.2.2.2"]))],
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
        vec![("cluster_list", json!([]))],
        |_| attr(ONT, CLUSTER_LIST, &[1, 1, 1, 1]),
    );
    keep_attr(
        v,
        "CLUSTER_LIST of length 5 from eBGP is discarded",
        &[Ebgp],
        vec![("cluster_list", json!([]))],
        |_| attr(ONT, CLUSTER_LIST, &[1; 5]),
    );
}

fn mp_cases(v: &mut Vec<Case>) {
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
        vec![("next_hop", json!("172.30.0.96"))],
        move |e| via_mp(e, &[172, 30, 0, 96], Vec::new()),
    );
    keep(
        v,
        "MP_REACH_NLRI only: NEXT_HOP 0.0.0.0 is ignored",
        FOUR,
        vec![("next_hop", json!("172.30.0.95"))],
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

fn as4_cases(v: &mut Vec<Case>) {
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
    let merged = vec![("as_path", json!("65001 4200000001"))];
    let unmerged = vec![("as_path", json!("65001 23456"))];
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
        vec![("as_path", json!("65001 65002"))],
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
        vec![(
            "aggregator",
            json!({"asn": 4200000001u32, "address": "10.0.0.1"}),
        )],
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
    let trans = vec![("aggregator", json!({"asn": 23456, "address": "10.0.0.1"}))];
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
        vec![("aggregator", Value::Null)],
        |_| attr(OT, AS4_AGGREGATOR, &[0, 0, 0, 1, 10, 0, 0, 1]),
    );
}

fn structure_cases(v: &mut Vec<Case>) {
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
        vec![("bgp_origin", json!("igp"))],
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
