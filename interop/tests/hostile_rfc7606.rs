//! The RFC 7606 matrix: malformed UPDATEs from raw peers against one ipipd, each case
//! checked the way a user would: `show routes --json`, `ip route show proto bgp`, and the
//! NOTIFICATION's code, subcode and data for the cases that reset the session.
//!
//! Every case owns a prefix P that is first announced validly. The malformed UPDATE is
//! about P; a valid sentinel announcement follows, and once it is visible the malformed
//! UPDATE has been handled (one session, one ordered stream). Then P must be gone
//! (treat-as-withdraw), present with exactly the expected attributes (attribute discard,
//! or accepted input), or the session must have been reset with the expected NOTIFICATION.
//!
//! Expected outcomes follow the table in the codec's documentation (bgp/src/wire/update.rs).
//! All mismatches are collected and reported together.

#[path = "hostile/rfc7606_cases.rs"]
mod cases;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use cases::{all_cases, Case, Env, Expect, Kind, Want};
use interop::config::Peer;
use interop::harness::{require_root, wait_until};
use interop::ipipd::{Ipipd, RouteJson};
use interop::rawpeer::testbed::{kernel_has, log_tail, route_from, Testbed};
use interop::rawpeer::{craft, default_open, RawPeer};
use ipnet::Ipv4Net;

const WAIT: Duration = Duration::from_secs(10);

fn case_prefix(i: usize) -> Ipv4Net {
    Ipv4Net::new(
        Ipv4Addr::new(100, 66 + (i / 256) as u8, (i % 256) as u8, 0),
        24,
    )
    .unwrap_or_default()
}

fn sentinel_prefix(i: usize) -> Ipv4Net {
    Ipv4Net::new(
        Ipv4Addr::new(100, 96 + (i / 256) as u8, (i % 256) as u8, 0),
        24,
    )
    .unwrap_or_default()
}

/// One raw session of a given kind, re-established after resets.
struct Session {
    kind: Kind,
    address: Ipv4Addr,
    peer: Option<RawPeer>,
}

impl Session {
    fn asn(&self) -> u32 {
        match self.kind {
            Kind::Ebgp => 65001,
            _ => 64512,
        }
    }

    fn env(&self, i: usize) -> Env {
        Env {
            p: case_prefix(i),
            nh: self.address,
            four: self.kind != Kind::TwoOctet,
            asns: if self.kind == Kind::Ebgp {
                vec![65001]
            } else {
                Vec::new()
            },
            marker: 1000 + i as u32,
        }
    }

    fn connect(&mut self, tb: &Testbed) -> Result<&mut RawPeer> {
        if self.peer.is_none() {
            let mut open = default_open(self.asn(), self.address, 0);
            if self.kind == Kind::TwoOctet {
                open.capabilities
                    .retain(|c| !matches!(c, bgp::wire::Capability::FourOctetAs(_)));
            }
            self.peer = Some(RawPeer::establish(&tb.dial(self.address), &open)?);
        }
        match self.peer.as_mut() {
            Some(p) => Ok(p),
            None => bail!("no session"),
        }
    }

    /// Valid announcement of `prefixes` with the session's plain attributes.
    fn announce(&mut self, tb: &Testbed, prefixes: &[Ipv4Net]) -> Result<()> {
        let e = self.env(0);
        let attrs = craft::base(&e.asns, e.nh, e.four);
        let msg = craft::update(&[], &attrs, &craft::prefixes(prefixes));
        self.connect(tb)?.send_raw(&msg)
    }
}

fn wait_present(d: &Ipipd<'_>, prefix: Ipv4Net, from: Ipv4Addr) -> Result<Vec<RouteJson>> {
    let p = prefix.to_string();
    wait_until(WAIT, &format!("{p} from {from} in show routes"), || {
        let routes = d.routes().ok()?;
        route_from(&routes, &p, from).map(|_| routes)
    })
}

fn wait_all_installed(d: &Ipipd<'_>, prefixes: &[Ipv4Net], from: Ipv4Addr) -> Result<()> {
    let names: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    wait_until(
        Duration::from_secs(30),
        &format!("{} prefixes from {from} installed", names.len()),
        || {
            let routes = d.routes().ok()?;
            names
                .iter()
                .all(|p| route_from(&routes, p, from).is_some_and(|r| r.installed))
                .then_some(())
        },
    )
}

/// Checks one non-reset case after its sentinel was seen.
fn check_kept(
    d: &Ipipd<'_>,
    routes: &[RouteJson],
    c: &Case,
    env: &Env,
    from: Ipv4Addr,
) -> Result<()> {
    let p = env.p.to_string();
    match &c.expect {
        Expect::Withdraw => {
            if let Some(r) = route_from(routes, &p, from) {
                bail!("expected {p} withdrawn, but show routes has {r:?}");
            }
            wait_until(
                Duration::from_secs(5),
                &format!("{p} gone from the kernel"),
                || (!kernel_has(&d.ns.bgp_routes(), &p)).then_some(()),
            )?;
        }
        Expect::Present(checks) => {
            let Some(r) = route_from(routes, &p, from) else {
                bail!("expected {p} present, but show routes lacks it")
            };
            let mut all = checks.clone();
            if c.marked {
                all.push(Want::Med(Some(env.marker)));
            }
            for want in &all {
                if let Err(e) = want.check(&r) {
                    bail!("{p}: {e} (route {r:?})");
                }
            }
            wait_until(
                Duration::from_secs(5),
                &format!("{p} in the kernel"),
                || kernel_has(&d.ns.bgp_routes(), &p).then_some(()),
            )?;
        }
        Expect::Reset(..) => bail!("not a kept-session case"),
    }
    Ok(())
}

/// Runs every non-reset case of one session on one connection.
fn run_kept(
    d: &Ipipd<'_>,
    tb: &Testbed,
    s: &mut Session,
    cases: &[(usize, &Case)],
    failures: &mut Vec<String>,
) -> Result<usize> {
    let prefixes: Vec<Ipv4Net> = cases.iter().map(|(i, _)| case_prefix(*i)).collect();
    for chunk in prefixes.chunks(200) {
        s.announce(tb, chunk)?;
    }
    wait_all_installed(d, &prefixes, s.address)?;
    let mut passed = 0;
    for (i, c) in cases {
        let env = s.env(*i);
        let msg = (c.build)(&env);
        let sentinel = sentinel_prefix(*i);
        let peer = s.connect(tb)?;
        peer.send_raw(&msg)?;
        let sent = craft::update(
            &[],
            &craft::base(&env.asns, env.nh, env.four),
            &craft::prefix(sentinel),
        );
        peer.send_raw(&sent)?;
        let result = wait_present(d, sentinel, s.address)
            .and_then(|routes| check_kept(d, &routes, c, &env, s.address));
        match result {
            Ok(()) => passed += 1,
            Err(e) => {
                let mut what = format!("{} [{:?}] #{i}: {e:#}", c.name, s.kind);
                // The session may have been reset: say so, and start a fresh one.
                if let Some(mut p) = s.peer.take() {
                    if let Ok(Some(n)) = p.expect_closed(Duration::from_millis(300)) {
                        what.push_str(&format!(
                            " (session reset with {}/{} data {:02x?})",
                            n.code,
                            n.subcode,
                            n.data.as_ref()
                        ));
                        s.peer = None;
                    } else {
                        s.peer = Some(p);
                    }
                }
                failures.push(what);
                if s.peer.is_none() {
                    let rest: Vec<Ipv4Net> = prefixes.clone();
                    s.announce(tb, &rest)?;
                    wait_all_installed(d, &rest, s.address)?;
                }
            }
        }
    }
    Ok(passed)
}

/// Runs one reset case on a fresh session.
fn run_reset(d: &Ipipd<'_>, tb: &Testbed, s: &mut Session, i: usize, c: &Case) -> Result<()> {
    let Expect::Reset(code, subcode, data) = &c.expect else {
        bail!("not a reset case")
    };
    let env = s.env(i);
    let p = env.p;
    s.announce(tb, &[p])?;
    wait_present(d, p, s.address)?;
    let msg = (c.build)(&env);
    let want_data = data(&env);
    let mut peer = match s.peer.take() {
        Some(p) => p,
        None => bail!("no session"),
    };
    peer.send_raw(&msg)?;
    let n = peer.expect_notification(WAIT)?;
    let closed = peer.expect_closed(WAIT);
    if (n.code, n.subcode, n.data.as_ref()) != (*code, *subcode, want_data.as_slice()) {
        bail!(
            "NOTIFICATION {}/{} data {:02x?}, expected {code}/{subcode} data {:02x?}",
            n.code,
            n.subcode,
            n.data.as_ref(),
            want_data
        );
    }
    if let Err(e) = closed {
        bail!("the connection stayed open after the NOTIFICATION: {e:#}");
    }
    // The reset session's routes go with it.
    let ps = p.to_string();
    wait_until(WAIT, &format!("{ps} removed after the reset"), || {
        let routes = d.routes().ok()?;
        route_from(&routes, &ps, s.address).is_none().then_some(())
    })?;
    Ok(())
}

#[test]
fn rfc7606_matrix() -> Result<()> {
    require_root();
    let tb = Testbed::new(3)?;
    let kinds = [
        (Kind::Ibgp, Testbed::addr(0)),
        (Kind::Ebgp, Testbed::addr(1)),
        (Kind::TwoOctet, Testbed::addr(2)),
    ];
    let specs: Vec<Peer> = kinds
        .iter()
        .map(|(k, a)| Peer::new(*a).asn(if *k == Kind::Ebgp { 65001 } else { 64512 }))
        .collect();
    let d = tb.start(&tb.config(&specs))?;
    let cases = all_cases();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut passed = 0;
    let mut per_outcome = [0usize; 3];
    for (kind, address) in kinds {
        let mut s = Session {
            kind,
            address,
            peer: None,
        };
        s.connect(&tb)?;
        d.wait_established(&address.to_string(), WAIT)?;
        let mine: Vec<(usize, &Case)> = cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == kind)
            .collect();
        let kept: Vec<(usize, &Case)> = mine
            .iter()
            .filter(|(_, c)| !matches!(c.expect, Expect::Reset(..)))
            .copied()
            .collect();
        for (_, c) in &mine {
            per_outcome[match c.expect {
                Expect::Withdraw => 0,
                Expect::Present(_) => 1,
                Expect::Reset(..) => 2,
            }] += 1;
        }
        passed += run_kept(&d, &tb, &mut s, &kept, &mut failures)?;
        for (i, c) in mine
            .iter()
            .filter(|(_, c)| matches!(c.expect, Expect::Reset(..)))
        {
            match run_reset(&d, &tb, &mut s, *i, c) {
                Ok(()) => passed += 1,
                Err(e) => failures.push(format!("{} [{kind:?}] #{i}: {e:#}", c.name)),
            }
            s.peer = None;
        }
        // The session must still come up after everything it was sent.
        s.connect(&tb)?;
        d.wait_established(&address.to_string(), WAIT)?;
    }
    println!(
        "RFC 7606 matrix: {} cases ({} treat-as-withdraw, {} route kept, {} session reset), {passed} passed in {:.1?}",
        cases.len(),
        per_outcome[0],
        per_outcome[1],
        per_outcome[2],
        started.elapsed()
    );
    assert!(
        cases.len() >= 100,
        "the matrix should have at least 100 cases"
    );
    assert!(d.proc.as_ref().is_some(), "ipipd handle lost");
    if !failures.is_empty() {
        bail!(
            "{} of {} cases failed:\n{}\nipipd log tail:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n"),
            log_tail(&d, 40)
        );
    }
    Ok(())
}
