//! A FIB in memory that behaves like the kernel where the reconciler can tell: routes need
//! their devices up, a device going away silently takes its routes with it, and changes
//! made "by someone else" through the [`MemHandle`] arrive as events.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use tokio::sync::mpsc;

use crate::fib::{Fib, FibEvent, Link, Op, TunnelSpec, Underlay};
use crate::vtep::{FdbEntry, NeighEntry, VtepOp, VtepTable};
use crate::{FibError, Route, RouteKind};

#[derive(Debug, Default)]
struct State {
    routes: BTreeMap<IpNet, RouteKind>,
    links: BTreeMap<String, Link>,
    underlay: Option<Underlay>,
    tunnel: Option<TunnelSpec>,
    /// Every op the installer applied, in order.
    log: Vec<Op>,
    no_tunnel_support: bool,
    /// The tunnel device's neighbour and FDB entries.
    vteps: VtepTable,
    /// Every neighbour or FDB op applied, in order.
    vtep_log: Vec<VtepOp>,
}

/// The in-memory FIB the installer drives.
#[derive(Debug)]
pub struct MemFib {
    state: Arc<Mutex<State>>,
    events: mpsc::UnboundedReceiver<FibEvent>,
}

/// The test's side of a [`MemFib`]: look at it and change it behind the installer's back.
#[derive(Debug, Clone)]
pub struct MemHandle {
    state: Arc<Mutex<State>>,
    events: mpsc::UnboundedSender<FibEvent>,
}

impl MemFib {
    /// A new in-memory FIB and its handle.
    pub fn new() -> (MemFib, MemHandle) {
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        (
            MemFib {
                state: state.clone(),
                events: rx,
            },
            MemHandle { state, events: tx },
        )
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic elsewhere in a test must not hide the state from the assertions that follow.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn refused(what: String, errno: i32) -> FibError {
    FibError::Kernel {
        what,
        source: io::Error::from_raw_os_error(errno),
    }
}

impl State {
    fn write(&mut self, route: &Route) -> Result<(), FibError> {
        for dev in route.kind.devices() {
            match self.links.get(dev) {
                None => return Err(FibError::NoSuchDevice(dev.to_string())),
                Some(l) if !l.up => {
                    return Err(refused(format!("write {}", route.prefix), libc::ENETDOWN))
                }
                Some(_) => {}
            }
        }
        self.routes.insert(route.prefix, route.kind.clone());
        Ok(())
    }
}

impl Fib for MemFib {
    async fn routes(
        &mut self,
        each: &mut (dyn FnMut(IpNet, Option<RouteKind>) + Send),
    ) -> Result<(), FibError> {
        let st = lock(&self.state);
        for (p, k) in &st.routes {
            each(*p, Some(k.clone()));
        }
        Ok(())
    }

    async fn links(&mut self) -> Result<Vec<Link>, FibError> {
        Ok(lock(&self.state).links.values().cloned().collect())
    }

    async fn underlay(&mut self, _node: Ipv4Addr) -> Result<Option<Underlay>, FibError> {
        Ok(lock(&self.state).underlay.clone())
    }

    async fn apply(&mut self, ops: &[Op]) -> Vec<Result<(), FibError>> {
        let mut st = lock(&self.state);
        ops.iter()
            .map(|op| {
                st.log.push(op.clone());
                match op {
                    Op::Write(route) => st.write(route),
                    Op::Delete(prefix) => {
                        st.routes.remove(prefix);
                        Ok(())
                    }
                }
            })
            .collect()
    }

    async fn next_event(&mut self) -> FibEvent {
        match self.events.recv().await {
            Some(ev) => ev,
            // The handle is gone: nobody else will ever change anything.
            None => std::future::pending().await,
        }
    }

    async fn ensure_tunnel(&mut self, spec: &TunnelSpec) -> Result<(), FibError> {
        let mut st = lock(&self.state);
        if !st.links.contains_key(&spec.name) {
            if st.no_tunnel_support {
                return Err(FibError::TunnelUnsupported {
                    device: spec.name.clone(),
                });
            }
            let index = st.links.len() as u32 + 100;
            st.links.insert(
                spec.name.clone(),
                Link {
                    name: spec.name.clone(),
                    index,
                    up: true,
                    mtu: 1480,
                },
            );
        }
        if let Some(link) = st.links.get_mut(&spec.name) {
            link.up = true;
            if let Some(mtu) = spec.mtu {
                link.mtu = mtu;
            }
        }
        let mut kept = spec.clone();
        if kept.address.is_none() {
            kept.address = st.tunnel.as_ref().and_then(|t| t.address);
        }
        st.tunnel = Some(kept);
        Ok(())
    }

    async fn vteps(&mut self, _device: &str) -> Result<VtepTable, FibError> {
        Ok(lock(&self.state).vteps.clone())
    }

    async fn apply_vteps(&mut self, _device: &str, ops: &[VtepOp]) -> Vec<Result<(), FibError>> {
        let mut st = lock(&self.state);
        ops.iter()
            .map(|op| {
                st.vtep_log.push(*op);
                let t = &mut st.vteps;
                match *op {
                    VtepOp::SetNeigh { ip, mac } => {
                        t.neigh.retain(|n| n.ip != ip);
                        t.neigh.push(NeighEntry {
                            ip,
                            mac: Some(mac),
                            permanent: true,
                        });
                    }
                    VtepOp::DelNeigh { ip } => t.neigh.retain(|n| n.ip != ip),
                    VtepOp::SetFdb { mac, dst } => {
                        t.fdb.retain(|f| f.mac != mac);
                        t.fdb.push(FdbEntry {
                            mac,
                            dst: Some(dst),
                            permanent: true,
                        });
                    }
                    VtepOp::DelFdb { mac, dst } => {
                        t.fdb.retain(|f| !(f.mac == mac && f.dst == Some(dst)))
                    }
                }
                Ok(())
            })
            .collect()
    }
}

impl MemHandle {
    /// The tunnel device's neighbour and FDB entries now.
    pub fn vteps(&self) -> VtepTable {
        lock(&self.state).vteps.clone()
    }

    /// The neighbour and FDB ops applied so far.
    pub fn vtep_log(&self) -> Vec<VtepOp> {
        lock(&self.state).vtep_log.clone()
    }

    /// Someone deletes the neighbour entry of `ip` on the tunnel device.
    pub fn delete_neigh(&self, ip: Ipv4Addr) {
        let device = {
            let mut st = lock(&self.state);
            st.vteps.neigh.retain(|n| n.ip != std::net::IpAddr::V4(ip));
            st.tunnel
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default()
        };
        self.send(FibEvent::NeighChanged { device });
    }

    /// Entries found in place at start (a previous run's).
    pub fn preload_vteps(&self, table: VtepTable) {
        lock(&self.state).vteps = table;
    }

    /// Our routes in this FIB now.
    pub fn routes(&self) -> BTreeMap<IpNet, RouteKind> {
        lock(&self.state).routes.clone()
    }

    /// Every op the installer applied so far, in order.
    pub fn log(&self) -> Vec<Op> {
        lock(&self.state).log.clone()
    }

    pub fn clear_log(&self) {
        lock(&self.state).log.clear();
    }

    /// The tunnel as last ensured.
    pub fn tunnel(&self) -> Option<TunnelSpec> {
        lock(&self.state).tunnel.clone()
    }

    /// The MTU and up state of a device.
    pub fn link(&self, name: &str) -> Option<Link> {
        lock(&self.state).links.get(name).cloned()
    }

    /// Make tunnel creation fail as on a kernel without IPIP.
    pub fn without_tunnel_support(&self) {
        lock(&self.state).no_tunnel_support = true;
    }

    pub fn set_underlay(&self, underlay: Option<Underlay>) {
        lock(&self.state).underlay = underlay;
    }

    /// A route that was there before the installer started (no event).
    pub fn preload(&self, route: Route) {
        lock(&self.state).routes.insert(route.prefix, route.kind);
    }

    /// Someone else deletes one of our routes.
    pub fn delete_route(&self, prefix: IpNet) {
        if lock(&self.state).routes.remove(&prefix).is_some() {
            self.send(FibEvent::RouteGone { prefix });
        }
    }

    /// Someone else writes a route with our protocol.
    pub fn set_route(&self, route: Route) {
        lock(&self.state)
            .routes
            .insert(route.prefix, route.kind.clone());
        self.send(FibEvent::RouteSet {
            prefix: route.prefix,
            kind: Some(route.kind),
        });
    }

    /// A device appears (or changes).
    pub fn set_link(&self, name: &str, up: bool) {
        let link = {
            let mut st = lock(&self.state);
            let index = st
                .links
                .get(name)
                .map_or(st.links.len() as u32 + 1, |l| l.index);
            let link = Link {
                name: name.to_string(),
                index,
                up,
                mtu: 1500,
            };
            st.links.insert(name.to_string(), link.clone());
            if !up {
                st.routes
                    .retain(|_, kind| kind.devices().all(|d| d != name));
            }
            link
        };
        self.send(FibEvent::LinkSet(link));
    }

    /// A device goes away, silently taking its routes along as the kernel does.
    pub fn remove_link(&self, name: &str) {
        {
            let mut st = lock(&self.state);
            st.links.remove(name);
            st.routes
                .retain(|_, kind| kind.devices().all(|d| d != name));
        }
        self.send(FibEvent::LinkGone {
            name: name.to_string(),
        });
    }

    /// Pretend notifications were lost.
    pub fn lose_events(&self) {
        self.send(FibEvent::Lost);
    }

    fn send(&self, ev: FibEvent) {
        // The installer may have stopped; then there is nobody to tell.
        let _ = self.events.send(ev);
    }
}
