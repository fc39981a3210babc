//! The cases of the RFC 7606 matrix: what to send and what must follow, per session kind.
//! Outcomes are those of the table in bgp/src/wire/update.rs.

#[path = "rfc7606_as4_structure.rs"]
mod as4_structure;
#[path = "rfc7606_optional_mp.rs"]
mod optional_mp;
#[path = "rfc7606_path_attrs.rs"]
mod path_attrs;

use std::net::Ipv4Addr;

use interop::rawpeer::craft::*;
pub use interop::rawpeer::want::Want;
use ipnet::Ipv4Net;

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
    Present(Vec<Want>),
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
    checks: Vec<Want>,
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
    checks: Vec<Want>,
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

pub fn all_cases() -> Vec<Case> {
    use as4_structure::*;
    use optional_mp::*;
    use path_attrs::*;
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
