//! Golden vectors: messages captured from BIRD 2 and GoBGP (see tests/golden/README.md).
//!
//! Every message is framed, decoded, checked against what the daemon was configured to
//! send, and encoded again. The encoding is canonical (same bytes) for everything except
//! UPDATEs with MP_REACH_NLRI, where the senders make choices ipipd makes differently:
//! BIRD sets the Extended Length flag on MP_REACH_NLRI whatever its length (ipipd only
//! past 255 octets), GoBGP puts MP_REACH_NLRI after ORIGIN and AS_PATH (ipipd puts it
//! first, RFC 7606 §5.1). For those the re-encoding must decode to the same value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use bgp::wire::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Sent by the daemon under test.
    Rx,
    /// Sent by the recording listener.
    Tx,
}

struct Captured {
    dir: Dir,
    bytes: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load(text: &str) -> Vec<Captured> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let dir = match it.next() {
                Some("rx") => Dir::Rx,
                Some("tx") => Dir::Tx,
                other => panic!("bad direction {other:?}"),
            };
            let _kind = it.next().expect("kind");
            Captured {
                dir,
                bytes: unhex(it.next().expect("hex")),
            }
        })
        .collect()
}

fn open_of(msgs: &[Captured], dir: Dir) -> Open {
    let m = msgs.iter().find(|m| m.dir == dir).expect("an OPEN");
    match decode(&m.bytes, &Context::default()) {
        Ok(Message::Open(o)) => o,
        other => panic!("expected OPEN, got {other:?}"),
    }
}

fn add_path(o: &Open, f: AfiSafi) -> Option<AddPathMode> {
    o.capabilities.iter().find_map(|c| match c {
        Capability::AddPath(v) => v.iter().find(|(g, _)| *g == f).map(|(_, m)| *m),
        _ => None,
    })
}

/// What the recording listener ("ours") and the daemon ("theirs") negotiated, seen from
/// the listener: decoding the daemon's messages uses `add_path_rx`.
fn negotiate(ours: &Open, theirs: &Open) -> Context {
    let both = |code| ours.has_capability(code) && theirs.has_capability(code);
    let mut ctx = Context {
        four_octet_as: both(capability_code::FOUR_OCTET_AS),
        extended_message: both(capability_code::EXTENDED_MESSAGE),
        ebgp: ours.asn() != theirs.asn(),
        ..Context::default()
    };
    for f in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        let (o, t) = (add_path(ours, f), add_path(theirs, f));
        ctx.add_path_rx.set(
            f,
            o.is_some_and(|m| m.receives()) && t.is_some_and(|m| m.sends()),
        );
        ctx.add_path_tx.set(
            f,
            o.is_some_and(|m| m.sends()) && t.is_some_and(|m| m.receives()),
        );
    }
    ctx
}

/// The same session seen from the daemon: what it sends is encoded with its tx settings.
fn mirrored(ctx: &Context) -> Context {
    Context {
        add_path_rx: ctx.add_path_tx,
        add_path_tx: ctx.add_path_rx,
        ..*ctx
    }
}

fn has_mp_reach(m: &Message) -> bool {
    matches!(m, Message::Update(u) if u.attributes.mp_reach.is_some())
}

/// Frames, decodes and re-encodes every captured message; returns what the daemon sent.
fn replay(name: &str, text: &str) -> (Context, Vec<Message>) {
    let msgs = load(text);
    let ctx = negotiate(&open_of(&msgs, Dir::Tx), &open_of(&msgs, Dir::Rx));
    let mut received = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        // Messages are framed as one stream, as they arrived.
        assert_eq!(
            frame(&m.bytes, &ctx),
            Ok(Some(m.bytes.len())),
            "{name} #{i}"
        );
        let decode_ctx = if m.dir == Dir::Rx {
            ctx
        } else {
            mirrored(&ctx)
        };
        let msg = decode(&m.bytes, &decode_ctx).unwrap_or_else(|e| panic!("{name} #{i}: {e}"));
        if let Message::Update(u) = &msg {
            assert_eq!(u.outcome, Outcome::Accepted, "{name} #{i}");
        }
        let sender_ctx = mirrored(&decode_ctx);
        let again = encode_to_bytes(&msg, &sender_ctx);
        if has_mp_reach(&msg) {
            assert_eq!(
                decode(&again, &decode_ctx).as_ref(),
                Ok(&msg),
                "{name} #{i}"
            );
            assert_eq!(
                again.len() + usize::from(name.starts_with("bird")),
                m.bytes.len()
            );
        } else {
            assert_eq!(
                hex(&again),
                hex(&m.bytes),
                "{name} #{i} re-encoded differently"
            );
        }
        if m.dir == Dir::Rx {
            received.push(msg);
        }
    }
    (ctx, received)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn prefixes(nlri: &[Nlri]) -> BTreeSet<String> {
    nlri.iter().map(|n| n.prefix.to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const BIRD_AS: u32 = 4_200_000_001;
const GOBGP_AS: u32 = 4_200_000_002;
const COMMUNITY_65001_100: u32 = 65001 << 16 | 100;
const RT_65001_7: u64 = 0x0002 << 48 | 65001 << 32 | 7;

fn check_open(m: &Message, asn: u32) -> &Open {
    let Message::Open(o) = m else {
        panic!("first message is not an OPEN: {m:?}")
    };
    assert_eq!((o.version, o.my_as, o.hold_time), (4, 23456, 90));
    assert_eq!(o.asn(), asn);
    assert_eq!(o.bgp_id, Ipv4Addr::new(10, 255, 0, 2));
    for c in [
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ] {
        assert!(o.capabilities.contains(&c), "{c:?} missing from {o:?}");
    }
    let gr = o.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr),
        _ => None,
    });
    let gr = gr.expect("graceful restart capability");
    assert_eq!(gr.time, 120);
    assert_eq!(
        gr.families,
        vec![
            (AfiSafi::IPV4_UNICAST, false),
            (AfiSafi::IPV6_UNICAST, false)
        ]
    );
    o
}

/// What the BIRD configuration in capture.sh announces, in any of its sessions.
fn check_bird_routes(msgs: &[Message], path_ids: bool) {
    let ups = updates(msgs);
    let v4 = ups
        .iter()
        .find(|u| !u.nlri.is_empty())
        .expect("IPv4 UPDATE");
    assert_eq!(
        prefixes(&v4.nlri),
        set(&["101.76.9.128/26", "101.76.9.192/26", "101.76.10.0/26"])
    );
    assert!(v4.nlri.iter().all(|n| n.path_id.is_some() == path_ids));
    let a = &v4.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![BIRD_AS])));
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 255, 0, 2)));
    assert_eq!(a.med, Some(50));
    assert_eq!(a.local_pref, None);
    assert_eq!(a.communities, vec![COMMUNITY_65001_100]);
    assert_eq!(a.extended_communities, vec![RT_65001_7]);
    assert_eq!(
        a.large_communities,
        vec![LargeCommunity {
            global: BIRD_AS,
            local1: 1,
            local2: 2
        }]
    );

    let v6 = ups
        .iter()
        .find_map(|u| u.attributes.mp_reach.as_ref())
        .expect("IPv6 UPDATE");
    assert_eq!(v6.afi_safi, AfiSafi::IPV6_UNICAST);
    assert_eq!(
        prefixes(&v6.nlri),
        set(&["fd00:101:76::40/122", "fd00:101:76::80/122"])
    );
    assert!(v6.nlri.iter().all(|n| n.path_id.is_some() == path_ids));
    assert_eq!(v6.next_hops.len(), 2, "global and link-local next hop");
    assert_eq!(v6.next_hops[0], "fd00:255::2".parse::<IpAddr>().unwrap());
    assert!(matches!(v6.next_hops[1], IpAddr::V6(a) if a.segments()[0] == 0xfe80));

    let eors: Vec<_> = ups.iter().filter_map(|u| u.end_of_rib_family()).collect();
    assert!(eors.contains(&AfiSafi::IPV4_UNICAST) && eors.contains(&AfiSafi::IPV6_UNICAST));
}

fn check_shutdown(msgs: &[Message]) {
    let Some(Message::Notification(n)) = msgs.last() else {
        panic!("last message is not a NOTIFICATION")
    };
    assert_eq!(
        (n.code, n.subcode),
        (codes::CEASE, codes::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
    assert_eq!(
        n.to_string(),
        "Cease/Administrative Shutdown (6/2): \"maintenance\""
    );
}

fn refreshes(msgs: &[Message]) -> Vec<RouteRefresh> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::RouteRefresh(r) => Some(*r),
            _ => None,
        })
        .collect()
}

#[test]
fn bird_ebgp() {
    let (ctx, msgs) = replay("bird_ebgp", include_str!("golden/bird_ebgp.txt"));
    assert!(ctx.four_octet_as && ctx.ebgp && !ctx.extended_message);
    let o = check_open(&msgs[0], BIRD_AS);
    assert!(o.capabilities.contains(&Capability::EnhancedRouteRefresh));
    assert!(o.capabilities.contains(&Capability::ExtendedMessage));
    assert_eq!(msgs[1], Message::Keepalive);
    check_bird_routes(&msgs, false);
    check_shutdown(&msgs);
    // Our ROUTE-REFRESH was answered with BoRR, the routes again, EoRR (RFC 7313); then
    // `birdc reload in` made BIRD ask for both families.
    let rr = |f, subtype| RouteRefresh {
        afi_safi: f,
        subtype,
    };
    assert_eq!(
        refreshes(&msgs),
        vec![
            rr(AfiSafi::IPV4_UNICAST, 1),
            rr(AfiSafi::IPV4_UNICAST, 2),
            rr(AfiSafi::IPV4_UNICAST, 0),
            rr(AfiSafi::IPV6_UNICAST, 0),
        ]
    );
}

#[test]
fn bird_two_octet_peer_gets_as4_path() {
    let text = include_str!("golden/bird_two_octet.txt");
    let (ctx, msgs) = replay("bird_two_octet", text);
    assert!(!ctx.four_octet_as);
    check_open(&msgs[0], BIRD_AS);
    // On the wire: AS_PATH [AS_TRANS] and AS4_PATH [4200000001]; decoded: merged.
    let raw = load(text);
    let v4 = raw
        .iter()
        .find(|m| m.dir == Dir::Rx && m.bytes.len() > 23 && m.bytes[18] == 2)
        .expect("UPDATE");
    let h = hex(&v4.bytes);
    assert!(h.contains("40020402015ba0"), "AS_PATH with AS_TRANS in {h}");
    assert!(h.contains("c011060201fa56ea01"), "AS4_PATH in {h}");
    check_bird_routes(&msgs, false);
    check_shutdown(&msgs);
}

#[test]
fn bird_add_path() {
    let (ctx, msgs) = replay("bird_add_path", include_str!("golden/bird_add_path.txt"));
    assert_eq!(
        ctx.add_path_rx,
        Families {
            ipv4: true,
            ipv6: true
        }
    );
    assert_eq!(ctx.add_path_tx, Families::default());
    let o = check_open(&msgs[0], BIRD_AS);
    assert!(o.capabilities.contains(&Capability::AddPath(vec![
        (AfiSafi::IPV4_UNICAST, AddPathMode::Send),
        (AfiSafi::IPV6_UNICAST, AddPathMode::Send),
    ])));
    check_bird_routes(&msgs, true);
    check_shutdown(&msgs);
}

#[test]
fn gobgp_ebgp() {
    let (ctx, msgs) = replay("gobgp_ebgp", include_str!("golden/gobgp_ebgp.txt"));
    assert!(ctx.four_octet_as && ctx.ebgp);
    let o = check_open(&msgs[0], GOBGP_AS);
    assert!(o
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::Fqdn { .. })));
    assert_eq!(msgs[1], Message::Keepalive);

    let ups = updates(&msgs);
    let v4 = ups
        .iter()
        .find(|u| !u.nlri.is_empty())
        .expect("IPv4 UPDATE");
    assert_eq!(
        prefixes(&v4.nlri),
        set(&["101.88.228.192/26", "101.88.229.0/26"])
    );
    let a = &v4.attributes;
    assert_eq!(a.origin, Some(Origin::Incomplete));
    assert_eq!(a.as_path, Some(AsPath::sequence(vec![GOBGP_AS])));
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 255, 0, 2)));
    assert_eq!(a.med, Some(50));
    assert_eq!(a.communities, vec![COMMUNITY_65001_100]);

    let v6 = ups
        .iter()
        .find_map(|u| u.attributes.mp_reach.as_ref())
        .expect("IPv6 UPDATE");
    assert_eq!(prefixes(&v6.nlri), set(&["fd00:101:88::40/122"]));
    assert_eq!(v6.next_hops, vec!["fd00:255::2".parse::<IpAddr>().unwrap()]);

    let eors: Vec<_> = ups.iter().filter_map(|u| u.end_of_rib_family()).collect();
    assert_eq!(eors, vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]);
    check_shutdown(&msgs);
}

/// All captured messages concatenated frame one by one, as they would off a socket.
#[test]
fn stream_framing() {
    for text in [
        include_str!("golden/bird_ebgp.txt"),
        include_str!("golden/gobgp_ebgp.txt"),
    ] {
        let msgs = load(text);
        let stream: Vec<u8> = msgs.iter().flat_map(|m| m.bytes.clone()).collect();
        let ctx = Context::default();
        let mut at = 0;
        let mut n = 0;
        while at < stream.len() {
            // Byte by byte first, to check that partial input waits.
            let rest = &stream[at..];
            let len = frame(rest, &ctx).unwrap().unwrap();
            assert_eq!(frame(&rest[..len - 1], &ctx), Ok(None));
            at += len;
            n += 1;
        }
        assert_eq!(n, msgs.len());
    }
}
