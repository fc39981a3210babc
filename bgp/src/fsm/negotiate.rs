//! What two OPENs agree on (RFC 4271 §4.2, RFC 5492 and each capability's RFC).

use std::time::Duration;

use crate::wire::{
    codes, AddPathMode, AfiSafi, Capability, Context, Families, GracefulRestart, Notification, Open,
};

use super::SessionConfig;

/// The parameters of an established session.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: std::net::Ipv4Addr,
    pub hold_time: Duration,
    pub keepalive: Duration,
    /// Codec context for this session (4-octet AS, ADD-PATH, extended message).
    pub context: Context,
    /// Address families both sides announced (IPv4 unicast when the peer sent no
    /// multiprotocol capability at all, RFC 4760 §1).
    pub families: Vec<AfiSafi>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful-restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// We also advertised graceful restart, so the RFC 4724 procedures apply.
    pub graceful_restart: bool,
    /// Both sides set the N bit (RFC 8538): NOTIFICATIONs other than Hard Reset keep routes.
    pub notification_gr: bool,
    pub peer_hostname: Option<String>,
}

fn has(caps: &[Capability], pred: impl Fn(&Capability) -> bool) -> bool {
    caps.iter().any(pred)
}

fn families_of(caps: &[Capability]) -> Vec<AfiSafi> {
    let mut v: Vec<AfiSafi> = caps
        .iter()
        .filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
        .collect();
    if v.is_empty() {
        v.push(AfiSafi::IPV4_UNICAST);
    }
    v
}

fn add_path_modes(caps: &[Capability], family: AfiSafi) -> Option<AddPathMode> {
    caps.iter().find_map(|c| match c {
        Capability::AddPath(list) => list.iter().find(|(f, _)| *f == family).map(|(_, m)| *m),
        _ => None,
    })
}

fn can_send(m: Option<AddPathMode>) -> bool {
    matches!(m, Some(AddPathMode::Send | AddPathMode::Both))
}

fn can_receive(m: Option<AddPathMode>) -> bool {
    matches!(m, Some(AddPathMode::Receive | AddPathMode::Both))
}

/// Checks the peer's OPEN against our configuration and works out the session
/// parameters, or the NOTIFICATION to refuse it with.
pub fn negotiate(cfg: &SessionConfig, open: &Open) -> Result<Negotiated, Notification> {
    let peer_as = open.asn();
    if peer_as != cfg.peer_as {
        // RFC 4271 §6.2: Bad Peer AS. The data is empty; RFC 4271 leaves it so.
        return Err(Notification::new(codes::OPEN_MESSAGE, 2, Vec::new()));
    }
    if peer_as == cfg.local_as && open.bgp_id == cfg.local_id {
        // RFC 6286 §2.1: within an AS the identifiers must differ.
        return Err(Notification::new(codes::OPEN_MESSAGE, 3, Vec::new()));
    }
    let peer_hold = open.hold_time;
    if peer_hold == 1 || peer_hold == 2 {
        return Err(Notification::new(codes::OPEN_MESSAGE, 6, Vec::new()));
    }
    let hold = cfg.hold_time.min(peer_hold);
    let keepalive = match (hold, cfg.keepalive_time) {
        (0, _) => 0,
        (h, Some(k)) => k.min(h / 3).max(1),
        (h, None) => (h / 3).max(1),
    };
    let ours = &cfg.capabilities;
    let theirs = &open.capabilities;
    let four_octet_as = has(ours, |c| matches!(c, Capability::FourOctetAs(_)))
        && has(theirs, |c| matches!(c, Capability::FourOctetAs(_)));
    let ext = has(ours, |c| matches!(c, Capability::ExtendedMessage))
        && has(theirs, |c| matches!(c, Capability::ExtendedMessage));
    let our_families = families_of(ours);
    let their_families = families_of(theirs);
    let families: Vec<AfiSafi> = our_families
        .iter()
        .copied()
        .filter(|f| their_families.contains(f))
        .collect();

    let mut add_path_rx = Families::default();
    let mut add_path_tx = Families::default();
    for (family, slot_rx, slot_tx) in [
        (
            AfiSafi::IPV4_UNICAST,
            &mut add_path_rx.ipv4,
            &mut add_path_tx.ipv4,
        ),
        (
            AfiSafi::IPV6_UNICAST,
            &mut add_path_rx.ipv6,
            &mut add_path_tx.ipv6,
        ),
    ] {
        let (o, t) = (add_path_modes(ours, family), add_path_modes(theirs, family));
        *slot_rx = can_receive(o) && can_send(t);
        *slot_tx = can_send(o) && can_receive(t);
    }
    let peer_gr = theirs.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    let our_gr = ours.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    let notification_gr =
        matches!((&our_gr, &peer_gr), (Some(a), Some(b)) if a.notification && b.notification);
    let route_refresh = has(theirs, |c| {
        matches!(
            c,
            Capability::RouteRefresh | Capability::EnhancedRouteRefresh
        )
    });
    let enhanced_route_refresh = has(theirs, |c| matches!(c, Capability::EnhancedRouteRefresh))
        && has(ours, |c| matches!(c, Capability::EnhancedRouteRefresh));
    let peer_hostname = theirs.iter().find_map(|c| match c {
        Capability::Fqdn { hostname, .. } => Some(hostname.clone()),
        _ => None,
    });
    Ok(Negotiated {
        peer_as,
        peer_id: open.bgp_id,
        hold_time: Duration::from_secs(hold.into()),
        keepalive: Duration::from_secs(keepalive.into()),
        context: Context {
            four_octet_as,
            extended_message: ext,
            add_path_rx,
            add_path_tx,
            ebgp: peer_as != cfg.local_as,
        },
        families,
        route_refresh,
        enhanced_route_refresh,
        graceful_restart: our_gr.is_some() && peer_gr.is_some(),
        peer_graceful_restart: peer_gr,
        notification_gr,
        peer_hostname,
    })
}
