//! Message header, OPEN and FSM errors from a raw peer, in the state where each can
//! happen: the exact NOTIFICATION ipipd answers with (RFC 4271 §6.1, §6.2, RFC 6608,
//! RFC 7313, RFC 9072), or that the session comes up for input that is odd but valid.
//! One ipipd; a fresh connection per case; all mismatches reported together.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bgp::wire::Message;
use interop::config::Peer;
use interop::harness::{require_root, wait_until};
use interop::ipipd::Ipipd;
use interop::rawpeer::craft::*;
use interop::rawpeer::testbed::{peer_status, Testbed, NODE};
use interop::rawpeer::{Event, RawPeer};

const WAIT: Duration = Duration::from_secs(10);
const AS: u32 = 64512;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// ipipd sent its OPEN and waits for ours.
    OpenSent,
    /// OPENs exchanged, ipipd waits for our KEEPALIVE.
    OpenConfirm,
    Established,
}

enum Outcome {
    Notify(u8, u8, Vec<u8>),
    /// The bytes complete a valid OPEN exchange: the session must come up.
    Up,
    /// ipipd closes without a NOTIFICATION (it received one, or the peer stopped mid-message).
    Silent,
}

struct Case {
    name: &'static str,
    stage: Stage,
    send: Vec<u8>,
    /// Close our side after sending.
    then_close: bool,
    expect: Outcome,
}

fn c(name: &'static str, stage: Stage, send: Vec<u8>, expect: Outcome) -> Case {
    Case {
        name,
        stage,
        send,
        then_close: false,
        expect,
    }
}

fn id() -> Ipv4Addr {
    Testbed::addr(0)
}

/// OPEN with Opt Parm Len computed from `params`, from AS 64512.
fn open_p(params: &[u8]) -> Vec<u8> {
    open(4, AS as u16, 90, id(), params)
}

fn usual() -> Vec<u8> {
    caps_param(&usual_caps(AS))
}

/// RFC 9072 parameters: 255, 255, extended length, then (type, 2-octet length, value).
fn ext_params(non_ext_len: u8, ext_len: usize, params: &[u8]) -> Vec<u8> {
    let mut b = vec![non_ext_len, 255];
    b.extend_from_slice(&u16::try_from(ext_len).unwrap_or(0).to_be_bytes());
    b.extend_from_slice(params);
    b
}

fn ext_caps_param(caps: &[u8]) -> Vec<u8> {
    let mut p = vec![2];
    p.extend_from_slice(&u16::try_from(caps.len()).unwrap_or(0).to_be_bytes());
    p.extend_from_slice(caps);
    p
}

fn cases() -> Vec<Case> {
    use Outcome::{Notify, Silent, Up};
    use Stage::{Established, OpenConfirm, OpenSent};
    let ka = message(KEEPALIVE, &[]);
    let mut bad_marker = ka.clone();
    bad_marker[0] = 0xfe;
    let mut zero_marker = ka.clone();
    zero_marker[..16].fill(0);
    let big_update = {
        // 4097 octets: one more than a session without Extended Message may carry.
        let pad = attr(OT, 99, &[0; 4097 - 19 - 4 - 4]);
        update(&[], &pad, &[])
    };
    let caps = usual_caps(AS);
    let ext_body = open_body(4, AS as u16, 90, id(), 0, &[]);
    let open_with = |opt: Vec<u8>| -> Vec<u8> {
        let mut b = ext_body.clone();
        b.pop();
        b.extend_from_slice(&opt);
        message(OPEN, &b)
    };
    let good_ext = ext_params(255, 3 + caps.len(), &ext_caps_param(&caps));
    vec![
        // Message header (RFC 4271 §6.1).
        c(
            "marker not all ones",
            Established,
            bad_marker.clone(),
            Notify(1, 1, vec![]),
        ),
        c(
            "marker all zero",
            Established,
            zero_marker,
            Notify(1, 1, vec![]),
        ),
        c(
            "marker wrong in OpenSent",
            OpenSent,
            bad_marker,
            Notify(1, 1, vec![]),
        ),
        c(
            "length 18",
            Established,
            message_with_len(KEEPALIVE, &[], 18),
            Notify(1, 2, vec![0, 18]),
        ),
        c(
            "length 0",
            Established,
            message_with_len(UPDATE, &[], 0),
            Notify(1, 2, vec![0, 0]),
        ),
        c(
            "length 4097 without Extended Message",
            Established,
            big_update,
            Notify(1, 2, vec![0x10, 0x01]),
        ),
        c(
            "KEEPALIVE of 20 octets",
            Established,
            message(KEEPALIVE, &[0]),
            Notify(1, 2, vec![0, 20]),
        ),
        c(
            "NOTIFICATION of 20 octets",
            Established,
            message(NOTIFICATION, &[6]),
            Notify(1, 2, vec![0, 20]),
        ),
        c(
            "UPDATE of 21 octets",
            Established,
            message(UPDATE, &[0, 0]),
            Notify(1, 2, vec![0, 21]),
        ),
        c(
            "OPEN of 28 octets",
            OpenSent,
            message(OPEN, &[4, 0xfc, 0, 0, 90, 172, 30, 0, 2]),
            Notify(1, 2, vec![0, 28]),
        ),
        c(
            "OPEN longer than 4096",
            OpenSent,
            message(OPEN, &[0; 4097 - 19]),
            Notify(1, 2, vec![0x10, 0x01]),
        ),
        c(
            "ROUTE-REFRESH of 22 octets",
            Established,
            message(ROUTE_REFRESH, &[0, 1, 0]),
            Notify(1, 2, vec![0, 22]),
        ),
        c(
            "message type 0",
            Established,
            message(0, &[]),
            Notify(1, 3, vec![0]),
        ),
        c(
            "message type 6",
            Established,
            message(6, &[]),
            Notify(1, 3, vec![6]),
        ),
        c(
            "message type 255 in OpenSent",
            OpenSent,
            message(255, &[]),
            Notify(1, 3, vec![255]),
        ),
        // ROUTE-REFRESH (RFC 7313 §5; longer normal requests are a length error).
        c(
            "BoRR of 5 octets",
            Established,
            message(ROUTE_REFRESH, &[0, 1, 1, 1, 0]),
            Notify(7, 1, message(ROUTE_REFRESH, &[0, 1, 1, 1, 0])),
        ),
        c(
            "EoRR of 5 octets",
            Established,
            message(ROUTE_REFRESH, &[0, 1, 2, 1, 9]),
            Notify(7, 1, message(ROUTE_REFRESH, &[0, 1, 2, 1, 9])),
        ),
        c(
            "ROUTE-REFRESH of 5 octets",
            Established,
            message(ROUTE_REFRESH, &[0, 1, 0, 1, 0]),
            Notify(1, 2, vec![0, 24]),
        ),
        // OPEN (RFC 4271 §6.2, RFC 5492, RFC 6286).
        c(
            "version 3",
            OpenSent,
            open(3, AS as u16, 90, id(), &usual()),
            Notify(2, 1, vec![0, 4]),
        ),
        c(
            "version 5",
            OpenSent,
            open(5, AS as u16, 90, id(), &usual()),
            Notify(2, 1, vec![0, 4]),
        ),
        c(
            "wrong AS",
            OpenSent,
            open(
                4,
                64999,
                90,
                id(),
                &caps_param(&capability(1, &[0, 1, 0, 1])),
            ),
            Notify(2, 2, vec![]),
        ),
        c(
            "wrong AS in the 4-octet capability",
            OpenSent,
            open(4, 23456, 90, id(), &caps_param(&usual_caps(4200000001))),
            Notify(2, 2, vec![]),
        ),
        c(
            "hold time 1",
            OpenSent,
            open(4, AS as u16, 1, id(), &usual()),
            Notify(2, 6, vec![]),
        ),
        c(
            "hold time 2",
            OpenSent,
            open(4, AS as u16, 2, id(), &usual()),
            Notify(2, 6, vec![]),
        ),
        c(
            "BGP identifier 0.0.0.0",
            OpenSent,
            open(4, AS as u16, 90, Ipv4Addr::UNSPECIFIED, &usual()),
            Notify(2, 3, vec![]),
        ),
        c(
            "BGP identifier 255.255.255.255",
            OpenSent,
            open(4, AS as u16, 90, Ipv4Addr::BROADCAST, &usual()),
            Notify(2, 3, vec![]),
        ),
        c(
            "BGP identifier equal to ipipd's on iBGP",
            OpenSent,
            open(4, AS as u16, 90, NODE, &usual()),
            Notify(2, 3, vec![]),
        ),
        c(
            "OPEN ending right after the parameter length",
            OpenSent,
            message(OPEN, &open_body(4, AS as u16, 90, id(), 10, &[])),
            Notify(2, 0, vec![]),
        ),
        c(
            "parameter length past the message",
            OpenSent,
            message(OPEN, &open_body(4, AS as u16, 90, id(), 8, &[2, 2, 1, 4])),
            Notify(2, 0, vec![]),
        ),
        c(
            "parameter length short of the message",
            OpenSent,
            message(OPEN, &open_body(4, AS as u16, 90, id(), 2, &[2, 0, 1, 4])),
            Notify(2, 0, vec![]),
        ),
        c(
            "parameter runs past Opt Parm Len",
            OpenSent,
            open_p(&[2, 6, 1, 4, 0, 1]),
            Notify(2, 0, vec![]),
        ),
        c(
            "parameter type 1 (authentication)",
            OpenSent,
            open_p(&[1, 1, 0]),
            Notify(2, 4, vec![]),
        ),
        c(
            "capability length overruns its parameter",
            OpenSent,
            open_p(&caps_param(&[65, 8, 0, 0, 0xfc, 0])),
            Notify(2, 0, vec![]),
        ),
        c(
            "capability header cut short",
            OpenSent,
            open_p(&caps_param(&[65])),
            Notify(2, 0, vec![]),
        ),
        c(
            "4-octet AS capability of 2 octets",
            OpenSent,
            open_p(&caps_param(&capability(65, &[0xfc, 0]))),
            Notify(2, 0, vec![]),
        ),
        c(
            "multiprotocol capability of 3 octets",
            OpenSent,
            open_p(&caps_param(&capability(1, &[0, 1, 1]))),
            Notify(2, 0, vec![]),
        ),
        // RFC 9072 extended optional parameters.
        c(
            "RFC 9072 extended parameters",
            OpenSent,
            open_with(good_ext),
            Up,
        ),
        c(
            "RFC 9072 extended length past the message",
            OpenSent,
            open_with(ext_params(255, 3 + caps.len() + 5, &ext_caps_param(&caps))),
            Notify(2, 0, vec![]),
        ),
        c(
            "RFC 9072 extended length short of the message",
            OpenSent,
            open_with(ext_params(255, 2, &ext_caps_param(&caps))),
            Notify(2, 0, vec![]),
        ),
        c(
            "RFC 9072 marker without the extended length",
            OpenSent,
            open_with(vec![255, 255]),
            Notify(2, 0, vec![]),
        ),
        c(
            "RFC 9072 parameter with a one-octet length",
            OpenSent,
            open_with(ext_params(
                255,
                2 + caps.len(),
                &[vec![2, u8::try_from(caps.len()).unwrap_or(0)], caps.clone()].concat(),
            )),
            Notify(2, 0, vec![]),
        ),
        // Odd but valid OPENs.
        c("no optional parameters", OpenSent, open_p(&[]), Up),
        c(
            "hold time 0",
            OpenSent,
            open(4, AS as u16, 0, id(), &usual()),
            Up,
        ),
        c(
            "hold time 3",
            OpenSent,
            open(4, AS as u16, 3, id(), &usual()),
            Up,
        ),
        c(
            "unknown capability 200",
            OpenSent,
            open_p(&caps_param(
                &[usual_caps(AS), capability(200, &[1, 2, 3])].concat(),
            )),
            Up,
        ),
        c(
            "each capability in its own parameter",
            OpenSent,
            open_p(
                &[
                    caps_param(&capability(1, &[0, 1, 0, 1])),
                    caps_param(&capability(65, &AS.to_be_bytes())),
                ]
                .concat(),
            ),
            Up,
        ),
        c(
            "empty Capabilities parameter",
            OpenSent,
            open_p(&[usual(), caps_param(&[])].concat()),
            Up,
        ),
        // FSM errors (RFC 6608 subcodes).
        c(
            "KEEPALIVE in OpenSent",
            OpenSent,
            ka.clone(),
            Notify(5, 1, vec![]),
        ),
        c(
            "UPDATE in OpenSent",
            OpenSent,
            update(&[], &[], &[]),
            Notify(5, 1, vec![]),
        ),
        c(
            "UPDATE in OpenConfirm",
            OpenConfirm,
            update(&[], &[], &[]),
            Notify(5, 2, vec![]),
        ),
        c(
            "OPEN in OpenConfirm",
            OpenConfirm,
            open_p(&usual()),
            Notify(5, 2, vec![]),
        ),
        c(
            "OPEN in Established",
            Established,
            open_p(&usual()),
            Notify(5, 3, vec![]),
        ),
        // Endings without a NOTIFICATION from ipipd.
        c(
            "NOTIFICATION from the peer",
            Established,
            message(NOTIFICATION, &[6, 2]),
            Silent,
        ),
        c(
            "NOTIFICATION in OpenSent",
            OpenSent,
            message(NOTIFICATION, &[2, 0]),
            Silent,
        ),
        Case {
            name: "half a message, then FIN",
            stage: Established,
            send: update(&[], &[], &[]).get(..15).unwrap_or_default().to_vec(),
            then_close: true,
            expect: Silent,
        },
        Case {
            name: "OPEN cut short, then FIN",
            stage: OpenSent,
            send: open_p(&usual()).get(..25).unwrap_or_default().to_vec(),
            then_close: true,
            expect: Silent,
        },
    ]
}

/// Brings a fresh connection to `stage`.
fn reach(tb: &Testbed, stage: Stage) -> Result<RawPeer> {
    let mut p = RawPeer::connect(&tb.dial(id()))?;
    match p.recv(WAIT)? {
        Event::Message(Message::Open(_)) => {}
        other => bail!("expected ipipd's OPEN, got {other:?}"),
    }
    if stage == Stage::OpenSent {
        return Ok(p);
    }
    p.send_raw(&open_p(&usual()))?;
    match p.recv(WAIT)? {
        Event::Message(Message::Keepalive) => {}
        other => bail!("expected KEEPALIVE, got {other:?}"),
    }
    p.ctx = bgp::wire::Context {
        four_octet_as: true,
        ..Default::default()
    };
    if stage == Stage::Established {
        p.send_raw(&message(KEEPALIVE, &[]))?;
    }
    Ok(p)
}

fn established_count(d: &Ipipd<'_>) -> u64 {
    peer_status(d, id())
        .map(|p| p.established_count)
        .unwrap_or(0)
}

fn run(d: &Ipipd<'_>, tb: &Testbed, case: &Case) -> Result<()> {
    let before = established_count(d);
    let mut p = reach(tb, case.stage)?;
    if case.stage == Stage::Established {
        wait_until(WAIT, "Established", || {
            (established_count(d) > before).then_some(())
        })?;
    }
    p.send_raw(&case.send)?;
    if case.then_close {
        p.close();
        // ipipd sees the end of the stream; it must not be up with this peer afterwards.
        return wait_until(WAIT, "the session to leave Established", || {
            let s = peer_status(d, id())?;
            (s.state != "Established").then_some(())
        });
    }
    match &case.expect {
        Outcome::Notify(code, sub, data) => {
            let n = p.expect_notification(WAIT)?;
            let closed = p.expect_closed(WAIT);
            if (n.code, n.subcode, n.data.as_ref()) != (*code, *sub, data.as_slice()) {
                bail!(
                    "NOTIFICATION {}/{} data {:02x?}, expected {code}/{sub} data {:02x?}",
                    n.code,
                    n.subcode,
                    n.data.as_ref(),
                    data
                );
            }
            if let Err(e) = closed {
                bail!("connection still open after the NOTIFICATION: {e:#}");
            }
        }
        Outcome::Up => {
            match p.recv(WAIT)? {
                Event::Message(Message::Keepalive) => {}
                other => bail!("expected KEEPALIVE after our OPEN, got {other:?}"),
            }
            p.send_raw(&message(KEEPALIVE, &[]))?;
            wait_until(WAIT, "Established", || {
                (established_count(d) > before).then_some(())
            })?;
            p.close();
        }
        Outcome::Silent => match p.expect_closed(WAIT)? {
            None => {}
            Some(n) => bail!(
                "expected no NOTIFICATION, got {}/{} data {:02x?}",
                n.code,
                n.subcode,
                n.data.as_ref()
            ),
        },
    }
    Ok(())
}

#[test]
fn header_open_and_fsm_errors() -> Result<()> {
    require_root();
    let tb = Testbed::new(1)?;
    let d = tb.start(&tb.config(&[Peer::new(id()).asn(AS)]))?;
    let cases = cases();
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        // A previous connection may still be winding down inside ipipd.
        let _ = wait_until(WAIT, "the previous session to end", || {
            let s = peer_status(&d, id())?;
            (s.state != "Established" && s.state != "OpenSent" && s.state != "OpenConfirm")
                .then_some(())
        });
        if let Err(e) = run(&d, &tb, case) {
            failures.push(format!("{} [{:?}]: {e:#}", case.name, case.stage));
        }
    }
    println!(
        "header/OPEN/FSM: {} cases, {} passed in {:.1?}",
        cases.len(),
        cases.len() - failures.len(),
        started.elapsed()
    );
    // After all that, a normal session still comes up.
    let p = RawPeer::establish(
        &tb.dial(id()),
        &interop::rawpeer::default_open(AS, id(), 90),
    )?;
    d.wait_established(&id().to_string(), WAIT)?;
    p.send(&Message::Keepalive)?;
    if !failures.is_empty() {
        bail!(
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
    Ok(())
}
