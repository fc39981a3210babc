//! `ipipd status`: is this node healthy, and if not, why.
//!
//! The facts are gathered from what the daemon already publishes (the speaker's peer
//! table, the BFD keeper's sessions, the FIB's counters and routes, the node state, the
//! datastore's reachability) into [`Facts`]; [`assess`] turns them into the answer and is
//! a pure function, so each rule has a test of its own below.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use api::status::{
    BlockUseJson, DatastoreHealthJson, DeviceJson, DeviceState, EncapsulationJson, FibHealthJson,
    NatHealthJson, PeerHealthJson, StatusJson,
};

use super::node::Event;
use super::views::rfc3339;
use super::Daemon;
use api::protocol::Response;

/// The shortest first connect window: a session's first connect is immediate and a
/// refused one is retried within about a second, but a cluster that starts at once
/// needs a few rounds on a busy node.
const MIN_CONNECT_WINDOW: Duration = Duration::from_secs(10);

/// How long apart the FIB is looked at twice: a route that is missing both times while
/// writes fail is a failed write still outstanding, not one in flight.
const FIB_SECOND_LOOK: Duration = Duration::from_millis(300);

/// Most missing routes named in one reason line (the JSON lists them all).
const MISSING_NAMED: usize = 5;

/// How long after a peer is configured a session that is not Established counts
/// against health: two connect retries, at least [`MIN_CONNECT_WINDOW`].
pub fn connect_window(cfg: &config::Config) -> Duration {
    (2 * Duration::from_secs(cfg.bgp.connect_retry_time.into())).max(MIN_CONNECT_WINDOW)
}

/// One BGP session as the speaker reports it, with its BFD session.
pub struct PeerFacts {
    pub status: bgp::speaker::PeerStatus,
    pub name: Option<String>,
    /// Whether a BFD session is wanted for this peer.
    pub bfd_wanted: bool,
    /// The keeper's session, if it has one.
    pub bfd: Option<::bfd::State>,
}

/// The FIB as seen twice, [`FIB_SECOND_LOOK`] apart.
pub struct FibFacts {
    pub errors_before: u64,
    pub errors_after: u64,
    /// Routes wanted but not in the kernel, at the first and the second look.
    pub missing_before: BTreeSet<String>,
    pub missing_after: BTreeSet<String>,
}

pub enum DatastoreFacts {
    File,
    Etcd {
        reachable: bool,
        last_sync: SystemTime,
    },
}

/// Everything [`assess`] judges.
pub struct Facts {
    pub node: String,
    pub address: std::net::Ipv4Addr,
    pub window: Duration,
    pub peers: Vec<PeerFacts>,
    pub blocks: Vec<BlockUseJson>,
    pub allocated: u64,
    pub datastore: DatastoreFacts,
    /// None with `kernel.install = false`.
    pub fib: Option<FibFacts>,
    pub encapsulation: EncapsulationJson,
    /// The NAT keeper's view; None with `kernel.install = false`.
    pub nat: Option<nat::Status>,
    /// A task the daemon cannot work without has stopped.
    pub task_failure: Option<String>,
    /// Why a new pod would get no address (the owner's CNI STATUS answer), if it would not.
    pub no_address: Option<String>,
}

fn peer_label(p: &PeerFacts) -> String {
    let kind = kind_name(p.status.kind);
    match &p.name {
        Some(n) => format!("peer {} ({kind}, {n})", p.status.address),
        None => format!("peer {} ({kind})", p.status.address),
    }
}

fn kind_name(kind: bgp::speaker::NeighborKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Seconds from `t` to `now`, for "… 42 s ago" (0 when `t` is in the future).
fn age(now: SystemTime, t: SystemTime) -> u64 {
    now.duration_since(t).map_or(0, |d| d.as_secs())
}

/// The answer: healthy, the reasons, and what goes with them.
pub fn assess(f: &Facts, now: SystemTime) -> StatusJson {
    let mut reasons = Vec::new();
    if let Some(why) = &f.task_failure {
        reasons.push(format!("daemon: {why}"));
    }
    if let Some(why) = &f.no_address {
        reasons.push(format!("ipam: a new pod gets no address: {why}"));
    }
    let mut peers = Vec::new();
    for p in &f.peers {
        let s = &p.status;
        let established = s.state == bgp::fsm::State::Established;
        // A session that was up once and is not is down now, whatever the window.
        let starting = !established
            && s.established_count == 0
            && now
                .duration_since(s.configured)
                .map_or(true, |d| d < f.window);
        if !s.admin_down && !established && !starting {
            let mut line = format!(
                "{}: session {} since {}, not Established",
                peer_label(p),
                s.state.name(),
                rfc3339(s.since)
            );
            if !s.info.is_empty() {
                line.push_str(&format!(" ({})", s.info));
            }
            reasons.push(line);
        }
        if p.bfd_wanted && !s.admin_down && !starting && p.bfd != Some(::bfd::State::Up) {
            let state = p.bfd.map_or("no session in the BFD keeper", |b| b.name());
            reasons.push(format!("bfd {}: {state}, should be Up", p.status.address));
        }
        peers.push(PeerHealthJson {
            address: s.address,
            name: p.name.clone().or_else(|| s.hostname.clone()),
            kind: kind_name(s.kind),
            state: s.state.name().to_owned(),
            since: rfc3339(s.since),
            admin_down: s.admin_down,
            starting,
            bfd: p.bfd.map(|b| b.name().to_owned()),
            info: s.info.clone(),
        });
    }
    let fib = f.fib.as_ref().map(|fib| {
        let missing: Vec<String> = fib
            .missing_before
            .intersection(&fib.missing_after)
            .cloned()
            .collect();
        if fib.errors_after > fib.errors_before {
            reasons.push(format!(
                "fib: {} kernel writes failed in the last {} ms ({} since the start)",
                fib.errors_after - fib.errors_before,
                FIB_SECOND_LOOK.as_millis(),
                fib.errors_after
            ));
        }
        // Routes missing with no failed write are in flight or wait for their device.
        let missing = if fib.errors_after > 0 {
            missing
        } else {
            Vec::new()
        };
        if !missing.is_empty() {
            let named: Vec<&str> = missing
                .iter()
                .take(MISSING_NAMED)
                .map(String::as_str)
                .collect();
            let more = missing.len().saturating_sub(MISSING_NAMED);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            reasons.push(format!(
                "fib: {} routes not in the kernel after {} failed writes: {}{more}",
                missing.len(),
                fib.errors_after,
                named.join(", ")
            ));
        }
        FibHealthJson {
            errors: fib.errors_after,
            missing,
        }
    });
    let datastore = match f.datastore {
        DatastoreFacts::File => DatastoreHealthJson {
            kind: "file".into(),
            reachable: None,
            last_sync: None,
        },
        DatastoreFacts::Etcd {
            reachable,
            last_sync,
        } => {
            if !reachable {
                reasons.push(format!(
                    "datastore: etcd unreachable; last successful read {} ({} s ago)",
                    rfc3339(last_sync),
                    age(now, last_sync)
                ));
            }
            DatastoreHealthJson {
                kind: "etcd".into(),
                reachable: Some(reachable),
                last_sync: Some(rfc3339(last_sync)),
            }
        }
    };
    let nat = f.nat.as_ref().map(|n| {
        if let Some(e) = &n.last_error {
            reasons.push(format!("nat: nftables table ipipd not as wanted: {e}"));
        }
        NatHealthJson {
            tables: n.tables.iter().map(|t| t.name().to_owned()).collect(),
            pools: n.nat_pools.iter().map(ToString::to_string).collect(),
            in_sync: n.in_sync,
            repairs: n.repairs,
            last_error: n.last_error.clone(),
        }
    });
    StatusJson {
        healthy: reasons.is_empty(),
        reasons,
        node: f.node.clone(),
        address: f.address,
        connect_window_s: f.window.as_secs(),
        peers,
        blocks: f.blocks.clone(),
        allocated: f.allocated,
        datastore,
        fib,
        encapsulation: f.encapsulation.clone(),
        nat,
    }
}

/// The encapsulation in use, and its device as the kernel has it. The device is read
/// with a blocking netlink request: the kernel answers a single `RTM_GETLINK` inside the
/// send, so the read never waits for anything but that call.
fn encapsulation(cfg: &config::Config, address: Option<Ipv4Addr>) -> EncapsulationJson {
    let vxlan = cfg.vxlan.mode != config::IpipMode::Never;
    let (kind, mode, device) = if vxlan {
        ("vxlan", cfg.vxlan.mode, &cfg.vxlan.device)
    } else {
        ("ipip", cfg.ipip.mode, &cfg.ipip.device)
    };
    let link = if mode == config::IpipMode::Never {
        None
    } else {
        match fib::PodNetlink::open() {
            Ok(mut nl) => nl.link(device).ok(),
            Err(_) => None,
        }
    };
    let v6 = match cfg.vxlan_v6_device() {
        Some((name, _)) => match fib::PodNetlink::open() {
            Ok(mut nl) => nl.link(name).ok().map(|l| DeviceJson {
                device: name.to_owned(),
                state: match &l {
                    Some(l) if l.up => DeviceState::Up,
                    Some(_) => DeviceState::Down,
                    None => DeviceState::Missing,
                },
                mtu: l.map(|l| l.mtu),
            }),
            Err(_) => None,
        },
        None => None,
    };
    EncapsulationJson {
        kind: kind.into(),
        mode: mode.to_string(),
        device: device.clone(),
        address,
        state: link.as_ref().map(|l| match l {
            Some(l) if l.up => DeviceState::Up,
            Some(_) => DeviceState::Down,
            None => DeviceState::Missing,
        }),
        mtu: link.flatten().map(|l| l.mtu),
        v6,
    }
}

impl Daemon {
    /// `ipipd status`.
    pub(super) async fn status(&self) -> StatusJson {
        let state = self.state.load_full();
        let cfg = &state.config;
        let wanted: BTreeSet<IpAddr> = state.bfd.iter().map(|s| s.peer).collect();
        let bfd: BTreeMap<IpAddr, ::bfd::State> = self
            .bfd_sessions()
            .into_iter()
            .map(|s| (s.peer, s.state))
            .collect();
        let name = |address: IpAddr| {
            cfg.peers
                .iter()
                .find(|p| p.address == address)
                .and_then(|p| p.name.clone())
        };
        let peers = self
            .speaker
            .peers()
            .into_iter()
            .map(|status| PeerFacts {
                name: name(status.address),
                bfd_wanted: wanted.contains(&status.address),
                bfd: bfd.get(&status.address).copied(),
                status,
            })
            .collect();
        let fib = match self.with_fib(|f| f.stats().errors) {
            Some(errors_before) => {
                let missing_before = self.missing_routes().await;
                tokio::time::sleep(FIB_SECOND_LOOK).await;
                let missing_after = self.missing_routes().await;
                Some(FibFacts {
                    errors_before,
                    errors_after: self.with_fib(|f| f.stats().errors).unwrap_or(errors_before),
                    missing_before,
                    missing_after,
                })
            }
            None => None,
        };
        let datastore = match &self.cluster {
            Some(c) => DatastoreFacts::Etcd {
                reachable: c.reachable(),
                last_sync: c.last_sync(),
            },
            None => DatastoreFacts::File,
        };
        let blocks = state
            .own_blocks()
            .iter()
            .map(|b| {
                let (allocated, capacity) = state.block_use.get(b).copied().unwrap_or((0, 0));
                BlockUseJson {
                    block: b.to_string(),
                    allocated,
                    capacity,
                }
            })
            .collect();
        let facts = Facts {
            node: cfg.node.name.clone(),
            address: cfg.node.address,
            window: connect_window(cfg),
            peers,
            blocks,
            allocated: state.allocated,
            datastore,
            fib,
            encapsulation: encapsulation(cfg, state.tunnel),
            nat: self.nat.as_ref().map(nat::Keeper::status),
            task_failure: self.health().err().map(|e| e.to_string()),
            no_address: match self.ask(Event::Status).await {
                Response::IpamError { message, .. } | Response::Error { message } => Some(message),
                _ => None,
            },
        };
        assess(&facts, SystemTime::now())
    }

    /// Routes ipipd wants in the kernel that are not there.
    async fn missing_routes(&self) -> BTreeSet<String> {
        self.routes()
            .await
            .into_iter()
            .filter(|r| r.best && !r.installed)
            .map(|r| r.prefix)
            .collect()
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
