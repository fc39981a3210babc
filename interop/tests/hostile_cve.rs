//! Regressions shaped after public BGP vulnerabilities: inputs that crashed or reset
//! sessions in other implementations (corrupted optional transitive attributes such as
//! Tunnel Encapsulation, attribute-only UPDATEs, End-of-RIB look-alikes, OPENs that stop
//! early, capabilities that overrun). ipipd must never crash, and must never reset a
//! session for an UPDATE that RFC 7606 says to withdraw or discard.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use bgp::wire::{AfiSafi, Capability, GracefulRestart, Message};
use interop::config::Peer;
use interop::harness::{require_root, wait_until};
use interop::ipipd::{Ipipd, RouteJson};
use interop::rawpeer::craft::*;
use interop::rawpeer::testbed::{log_tail, peer_status, route_from, Testbed};
use interop::rawpeer::want::Want;
use interop::rawpeer::{default_open, Event, RawPeer};
use ipnet::Ipv4Net;

const WAIT: Duration = Duration::from_secs(10);

fn net(a: u8, b: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(100, a, b, 0), 24).unwrap_or_default()
}

/// What a case builds its UPDATE from.
struct Env {
    /// Announced validly before the case; the case is about it.
    p: Ipv4Net,
    /// Also announced before; some cases withdraw it.
    q: Ipv4Net,
    nh: Ipv4Addr,
    four: bool,
    asns: Vec<u32>,
}

impl Env {
    fn plain(&self) -> Vec<u8> {
        base(&self.asns, self.nh, self.four)
    }
}

enum After {
    /// P is gone (treat-as-withdraw).
    Gone,
    /// P and Q are both gone.
    BothGone,
    /// P is there with these fields.
    Kept(Vec<Want>),
    /// Nothing to check about P beyond the session staying up.
    Untouched,
}

struct Cve {
    name: &'static str,
    /// Index of the session (see `SESSIONS`).
    session: usize,
    build: fn(&Env) -> Vec<u8>,
    after: After,
}

/// (AS, 4-octet AS capability) of each raw session.
const SESSIONS: [(u32, bool); 3] = [(64512, true), (64512, false), (65001, true)];

fn tunnel_encap_garbage() -> Vec<u8> {
    // Tunnel Encapsulation (type 23, RFC 9012): a TLV claiming 200 octets, a sub-TLV
    // running past it, then random bytes.
    vec![0, 1, 0, 200, 1, 50, 0xde, 0xad, 0xbe, 0xef, 7, 255, 0, 0]
}

fn cves() -> Vec<Cve> {
    vec![
        Cve {
            name: "corrupted Tunnel Encapsulation (type 23) is passed on, not a reset",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[e.plain(), attr(OT, 23, &tunnel_encap_garbage())].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![23])]),
        },
        Cve {
            name: "type 23 with Partial and an extended length",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &[
                        e.plain(),
                        attr(OT | PARTIAL | EXTENDED, 23, &tunnel_encap_garbage()),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![23])]),
        },
        Cve {
            name: "type 23 whose length runs past the attribute field",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[e.plain(), vec![OT, 23, 40, 0, 1]].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Gone,
        },
        Cve {
            name: "empty type 23",
            session: 1,
            build: |e| update(&[], &[e.plain(), attr(OT, 23, &[])].concat(), &prefix(e.p)),
            after: After::Kept(vec![Want::UnknownAttributes(vec![23])]),
        },
        Cve {
            name: "corrupted Prefix-SID (type 40), BGP-LS (29) and ATTR_SET (128) are passed on",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[
                        e.plain(),
                        attr(OT, 29, &[0, 1, 255]),
                        attr(OT, 40, &[1, 0, 9]),
                        attr(OT, 128, &[0, 0]),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![29, 40, 128])]),
        },
        Cve {
            name: "Only-to-Customer (type 35) of 3 octets is passed on",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &[e.plain(), attr(OT, 35, &[0, 0, 1])].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![35])]),
        },
        Cve {
            name: "UPDATE with only an unknown transitive attribute",
            session: 0,
            build: |_| update(&[], &attr(OT, 23, &tunnel_encap_garbage()), &[]),
            after: After::Untouched,
        },
        Cve {
            name: "UPDATE with only a malformed known attribute",
            session: 1,
            build: |_| update(&[], &attr(WK, ORIGIN, &[9, 9]), &[]),
            after: After::Untouched,
        },
        Cve {
            name: "MP_UNREACH_NLRI plus NLRI without mandatory attributes",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &attr(ONT, MP_UNREACH, &mp_unreach_value(1, 1, &prefix(e.q))),
                    &prefix(e.p),
                )
            },
            after: After::BothGone,
        },
        Cve {
            name: "MP_UNREACH_NLRI plus NLRI without mandatory attributes, eBGP",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &attr(ONT, MP_UNREACH, &mp_unreach_value(1, 1, &prefix(e.q))),
                    &prefix(e.p),
                )
            },
            after: After::BothGone,
        },
        Cve {
            name: "NLRI with total attribute length 0",
            session: 0,
            build: |e| update(&[], &[], &prefix(e.p)),
            after: After::Gone,
        },
        Cve {
            name: "NLRI with total attribute length 0 on a 2-octet session",
            session: 1,
            build: |e| update(&[], &[], &prefix(e.p)),
            after: After::Gone,
        },
        Cve {
            name: "AS4_PATH before AS_PATH (2-octet session: merged)",
            session: 1,
            build: |e| {
                update(
                    &[],
                    &[
                        attr(OT, AS4_PATH, &segment(2, &[4200000001], true)),
                        origin(0),
                        as_path(&[65001, 23456], false),
                        next_hop(e.nh),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::as_path("65001 4200000001")]),
        },
        Cve {
            name: "AS4_PATH before AS_PATH (4-octet session: discarded)",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[
                        attr(OT, AS4_PATH, &segment(2, &[4200000001], true)),
                        origin(0),
                        as_path(&[65001], true),
                        next_hop(e.nh),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::as_path("65001")]),
        },
        Cve {
            name: "zero-length AS_PATH on iBGP",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[origin(0), attr(WK, AS_PATH, &[]), next_hop(e.nh)].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::as_path("")]),
        },
        Cve {
            name: "zero-length AS_PATH on eBGP",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &[origin(0), attr(WK, AS_PATH, &[]), next_hop(e.nh)].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Untouched,
        },
        Cve {
            name: "AS_PATH segment of zero ASNs",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &[origin(0), attr(WK, AS_PATH, &[2, 0]), next_hop(e.nh)].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Gone,
        },
        Cve {
            name: "ORIGIN without the transitive flag",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[
                        attr(0, ORIGIN, &[0]),
                        as_path(&e.asns, e.four),
                        next_hop(e.nh),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Gone,
        },
        Cve {
            name: "ORIGIN without the transitive flag, eBGP",
            session: 2,
            build: |e| {
                update(
                    &[],
                    &[
                        attr(0, ORIGIN, &[0]),
                        as_path(&e.asns, e.four),
                        next_hop(e.nh),
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Gone,
        },
        Cve {
            name: "COMMUNITIES claiming 65535 octets",
            session: 0,
            build: |e| {
                update(
                    &[],
                    &[
                        e.plain(),
                        vec![OT | EXTENDED, COMMUNITIES, 0xff, 0xff, 0, 0, 0, 1],
                    ]
                    .concat(),
                    &prefix(e.p),
                )
            },
            after: After::Gone,
        },
        Cve {
            name: "a thousand unknown optional attributes",
            session: 0,
            build: |e| {
                let many: Vec<u8> = (0..1000u32)
                    .flat_map(|i| attr(ONT, 100 + (i % 100) as u8, &[]))
                    .collect();
                update(&[], &[e.plain(), many].concat(), &prefix(e.p))
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![])]),
        },
        Cve {
            name: "UPDATE of exactly 4096 octets",
            session: 0,
            build: |e| {
                let attrs = e.plain();
                // Header, the two length fields, the attributes, the padding attribute's header, one /24.
                let room = 4096 - 19 - 4 - attrs.len() - 4 - 4;
                update(
                    &[],
                    &[attrs, attr(OT, 99, &vec![0; room])].concat(),
                    &prefix(e.p),
                )
            },
            after: After::Kept(vec![Want::UnknownAttributes(vec![99])]),
        },
        Cve {
            name: "ROUTE-REFRESH for an unknown family",
            session: 0,
            build: |_| message(ROUTE_REFRESH, &[0, 99, 0, 7]),
            after: After::Untouched,
        },
        Cve {
            name: "End-of-RIB with a malformed attribute (treat-as-withdraw, not End-of-RIB)",
            session: 0,
            build: |_| update(&[], &attr(WK, ORIGIN, &[1, 2]), &[]),
            after: After::Untouched,
        },
    ]
}

struct Session {
    address: Ipv4Addr,
    asn: u32,
    four: bool,
    peer: RawPeer,
}

fn open_of(asn: u32, four: bool, id: Ipv4Addr, gr: Option<bool>) -> bgp::wire::Open {
    let mut o = default_open(asn, id, 0);
    if !four {
        o.capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    }
    if let Some(restart) = gr {
        o.capabilities
            .push(Capability::GracefulRestart(GracefulRestart {
                restart,
                notification: false,
                time: 120,
                families: vec![(AfiSafi::IPV4_UNICAST, true)],
            }));
    }
    o
}

fn routes_has(d: &Ipipd<'_>, p: Ipv4Net, from: Ipv4Addr) -> Option<RouteJson> {
    route_from(&d.routes().ok()?, &p.to_string(), from)
}

fn established_count(d: &Ipipd<'_>, a: Ipv4Addr) -> u64 {
    peer_status(d, a).map(|p| p.established_count).unwrap_or(0)
}

fn run_update_case(d: &Ipipd<'_>, s: &Session, i: u8, c: &Cve) -> Result<()> {
    let e = Env {
        p: net(70, i),
        q: net(71, i),
        nh: s.address,
        four: s.four,
        asns: if s.asn == 65001 {
            vec![65001]
        } else {
            Vec::new()
        },
    };
    s.peer
        .send_raw(&update(&[], &e.plain(), &prefixes(&[e.p, e.q])))?;
    wait_until(WAIT, "P and Q announced", || {
        (routes_has(d, e.p, s.address).is_some() && routes_has(d, e.q, s.address).is_some())
            .then_some(())
    })?;
    let ups = established_count(d, s.address);
    s.peer.send_raw(&(c.build)(&e))?;
    let sentinel = net(72, i);
    s.peer
        .send_raw(&update(&[], &e.plain(), &prefix(sentinel)))?;
    wait_until(WAIT, "the sentinel", || routes_has(d, sentinel, s.address))
        .context("the session did not process the UPDATE after the case (reset?)")?;
    if established_count(d, s.address) != ups {
        bail!("the session was re-established: it had been reset");
    }
    match &c.after {
        After::Gone | After::BothGone => {
            if let Some(r) = routes_has(d, e.p, s.address) {
                bail!("P should be withdrawn: {r:?}");
            }
            if matches!(c.after, After::BothGone) && routes_has(d, e.q, s.address).is_some() {
                bail!("Q should be withdrawn by MP_UNREACH_NLRI");
            }
        }
        After::Kept(checks) => {
            let Some(r) = routes_has(d, e.p, s.address) else {
                bail!("P should still be there")
            };
            for want in checks {
                if let Err(e) = want.check(&r) {
                    bail!("{e}: {r:?}");
                }
            }
        }
        After::Untouched => {
            if routes_has(d, e.p, s.address).is_none() {
                bail!("P vanished");
            }
        }
    }
    Ok(())
}

/// A malformed UPDATE that reduces to an empty attribute set must not count as
/// End-of-RIB: a restarting peer's stale routes stay until the real one.
fn eor_lookalike(d: &Ipipd<'_>, tb: &Testbed, address: Ipv4Addr) -> Result<()> {
    let p = net(73, 1);
    let peer = RawPeer::establish(
        &tb.dial(address),
        &open_of(64512, true, address, Some(false)),
    )?;
    peer.send_raw(&update(&[], &base(&[], address, true), &prefix(p)))?;
    wait_until(WAIT, "P from the restarting peer", || {
        routes_has(d, p, address)
    })?;
    peer.reset();
    wait_until(WAIT, "P kept as stale", || {
        routes_has(d, p, address).filter(|r| r.stale)
    })
    .context("graceful restart did not keep the route")?;
    let peer = RawPeer::establish(
        &tb.dial(address),
        &open_of(64512, true, address, Some(true)),
    )?;
    peer.send_raw(&update(&[], &attr(WK, ORIGIN, &[7]), &[]))?;
    let sentinel = net(73, 2);
    peer.send_raw(&update(&[], &base(&[], address, true), &prefix(sentinel)))?;
    wait_until(WAIT, "the sentinel", || routes_has(d, sentinel, address))?;
    if routes_has(d, p, address).is_none() {
        bail!("a malformed UPDATE was taken for End-of-RIB: the stale route was flushed");
    }
    peer.send(&Message::Update(bgp::wire::Update::end_of_rib(
        AfiSafi::IPV4_UNICAST,
    )))?;
    wait_until(
        WAIT,
        "the stale route gone after the real End-of-RIB",
        || routes_has(d, p, address).is_none().then_some(()),
    )?;
    Ok(())
}

/// A NOTIFICATION's code, subcode and data.
type Expected = (u8, u8, Vec<u8>);

/// OPENs that stop early or whose capabilities overrun: the exact NOTIFICATION, then a
/// normal session still comes up.
fn bad_opens(d: &Ipipd<'_>, tb: &Testbed, address: Ipv4Addr) -> Result<Vec<String>> {
    let id = address;
    // `None`: the OPEN is acceptable (an unreadable hostname is informational only).
    let cases: Vec<(&str, Vec<u8>, Option<Expected>)> = vec![
        (
            "OPEN ending right after the optional parameter length",
            message(OPEN, &open_body(4, 0xfc00, 90, id, 20, &[])),
            Some((2, 0, vec![])),
        ),
        (
            "OPEN ending inside the fixed part",
            message(
                OPEN,
                open_body(4, 0xfc00, 90, id, 0, &[])
                    .get(..9)
                    .unwrap_or_default(),
            ),
            Some((1, 2, vec![0, 28])),
        ),
        (
            "capability length 255 in a parameter of 4",
            open(4, 0xfc00, 90, id, &caps_param(&[65, 255, 0, 0])),
            Some((2, 0, vec![])),
        ),
        (
            "capability length overrunning by one",
            open(4, 0xfc00, 90, id, &caps_param(&[1, 5, 0, 1, 0, 1])),
            Some((2, 0, vec![])),
        ),
        (
            "graceful restart capability of 1 octet",
            open(4, 0xfc00, 90, id, &caps_param(&capability(64, &[0]))),
            Some((2, 0, vec![])),
        ),
        (
            "ADD-PATH capability of 5 octets",
            open(
                4,
                0xfc00,
                90,
                id,
                &caps_param(&capability(69, &[0, 1, 1, 3, 0])),
            ),
            Some((2, 0, vec![])),
        ),
        (
            "hostname capability whose hostname length overruns",
            open(
                4,
                0xfc00,
                90,
                id,
                &caps_param(&capability(73, &[200, b'a', b'b'])),
            ),
            None,
        ),
        (
            "parameter length 255 with 2 octets of parameters",
            message(OPEN, &open_body(4, 0xfc00, 90, id, 255, &[2, 0])),
            Some((2, 0, vec![])),
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, want) in cases {
        let r = (|| -> Result<()> {
            let mut p = RawPeer::connect(&tb.dial(address))?;
            p.send_raw(&bytes)?;
            let Some(want) = want else {
                // Accepted: ipipd's OPEN, then its KEEPALIVE for ours.
                let got: Vec<Event> = (0..2).map(|_| p.recv(WAIT)).collect::<Result<_>>()?;
                if !matches!(
                    got.as_slice(),
                    [
                        Event::Message(Message::Open(_)),
                        Event::Message(Message::Keepalive)
                    ]
                ) {
                    bail!("expected OPEN and KEEPALIVE, got {got:?}");
                }
                p.close();
                return wait_until(WAIT, "the session to end", || {
                    (peer_status(d, address)?.state != "OpenConfirm").then_some(())
                });
            };
            let n = p.expect_notification(WAIT)?;
            if (n.code, n.subcode, n.data.to_vec()) != want {
                bail!(
                    "got {}/{} data {:02x?}, expected {want:?}",
                    n.code,
                    n.subcode,
                    n.data.as_ref()
                );
            }
            Ok(())
        })();
        if let Err(e) = r {
            failures.push(format!("{name}: {e:#}"));
        }
    }
    let p = RawPeer::establish(&tb.dial(address), &open_of(64512, true, address, None))?;
    d.wait_established(&address.to_string(), WAIT)?;
    p.close();
    Ok(failures)
}

#[test]
fn cve_shaped_inputs() -> Result<()> {
    require_root();
    let tb = Testbed::new(5)?;
    let mut specs: Vec<Peer> = (0..3u8)
        .map(|i| Peer::new(Testbed::addr(i)).asn(SESSIONS[usize::from(i)].0))
        .collect();
    specs.push(Peer::new(Testbed::addr(3)).asn(64512));
    specs.push(Peer::new(Testbed::addr(4)).asn(64512));
    let mut config = tb.config(&specs);
    config.bgp.graceful_restart_time = Some(120);
    let d = tb.start(&config)?;
    let mut sessions = Vec::new();
    for (i, (asn, four)) in SESSIONS.iter().enumerate() {
        let address = Testbed::addr(i as u8);
        let peer = RawPeer::establish(&tb.dial(address), &open_of(*asn, *four, address, None))?;
        d.wait_established(&address.to_string(), WAIT)?;
        sessions.push(Session {
            address,
            asn: *asn,
            four: *four,
            peer,
        });
    }
    let mut failures = Vec::new();
    let cases = cves();
    for (i, c) in cases.iter().enumerate() {
        let s = &sessions[c.session];
        if let Err(e) = run_update_case(&d, s, i as u8, c) {
            failures.push(format!("{}: {e:#}", c.name));
        }
    }
    // No NOTIFICATION came on any session, and ipipd is alive.
    for s in &mut sessions {
        match s.peer.recv(Duration::from_millis(200)) {
            Ok(Event::Message(Message::Notification(n))) => failures.push(format!(
                "session {} got NOTIFICATION {}/{}",
                s.address, n.code, n.subcode
            )),
            Ok(Event::Closed) => failures.push(format!("session {} was closed", s.address)),
            _ => {}
        }
    }
    if let Err(e) = eor_lookalike(&d, &tb, Testbed::addr(3)) {
        failures.push(format!("End-of-RIB look-alike: {e:#}"));
    }
    failures.extend(bad_opens(&d, &tb, Testbed::addr(4))?);
    d.peers().context("ipipd no longer answers")?;
    println!(
        "CVE-shaped: {} UPDATE cases, 1 End-of-RIB look-alike, 8 OPEN cases; {} failures",
        cases.len(),
        failures.len()
    );
    if !failures.is_empty() {
        bail!(
            "{} failures:\n{}\nlog:\n{}",
            failures.len(),
            failures.join("\n"),
            log_tail(&d, 30)
        );
    }
    Ok(())
}
