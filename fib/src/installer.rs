//! The installer task: owns the reconciler and one [`Fib`], and turns changes, events and
//! timers into writes.
//!
//! Remote routes arrive as changes (a prefix and its new next hops, or `None`), in
//! batches; each batch is taken in, then written in chunks, and the sender waits only
//! until the batch is taken, so changes that come while the kernel is being written
//! coalesce on the sender's side instead of queueing here.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use crate::fib::{Fib, TunnelSpec, VxlanDevice};
use crate::netlink::NetlinkFib;
use crate::reconcile::Reconciler;
use crate::vtep::{Macs, Vtep};
use crate::{FibError, Inputs, Mode, RemoteChange, Route, Settings};

/// Routes per write to the kernel: bounds the ops held at once (the netlink side sends
/// them in windows of its own).
const CHUNK: usize = 4096;
/// How long after a change made by someone else we look again: long enough to take a
/// burst of notifications in one pass, short enough to repair well within a second.
const DEBOUNCE: Duration = Duration::from_millis(75);
/// The backstop: a full comparison with the kernel this often, whatever the events said.
const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// The outer IPv4 header IPIP adds.
const IPIP_OVERHEAD: u32 = 20;
/// What VXLAN adds: outer IPv4 (20), UDP (8), VXLAN (8) and inner Ethernet (14) headers.
const VXLAN_OVERHEAD: u32 = 50;
/// The same over IPv6: the outer header is 40 bytes.
const VXLAN_V6_OVERHEAD: u32 = 70;

/// Routes of ours in the kernel by kind, as the installer last saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Through one or more gateways: remote blocks.
    pub remote: u64,
    /// Own blocks.
    pub blackhole: u64,
    /// Local workloads.
    pub workload: u64,
}

/// Counters for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub added: u64,
    pub replaced: u64,
    pub deleted: u64,
    /// Writes that put back what someone else changed or removed.
    pub drift_repairs: u64,
    pub errors: u64,
}

enum Command {
    Converged,
    Installed(oneshot::Sender<BTreeMap<IpNet, Route>>),
    Counts(oneshot::Sender<Counts>),
    Stop {
        flush: bool,
        done: oneshot::Sender<Result<(), FibError>>,
    },
}

/// Remote routes, as changes or whole.
enum Remote {
    /// Taken in when `taken` fires.
    Changes(Vec<RemoteChange>, oneshot::Sender<()>),
    All(BTreeMap<IpNet, Vec<IpAddr>>),
}

/// Own blocks and local workloads: few, so always sent whole.
#[derive(Debug, Default, Clone)]
struct Local {
    own_blocks: Vec<IpNet>,
    workloads: Vec<(IpAddr, String)>,
    tunnel_address: Option<Ipv4Addr>,
    /// VXLAN: the other nodes, whose tunnel endpoints are known, with their MACs.
    vteps: Option<Macs<Ipv4Addr>>,
    /// VXLAN over IPv6: the other nodes' IPv6 addresses, with their IPv6 MACs.
    vteps_v6: Option<Macs<Ipv6Addr>>,
}

/// The FIB installer task. Start it inside a tokio runtime, in the network namespace the
/// routes belong to.
pub struct Installer {
    remote: mpsc::UnboundedSender<Remote>,
    local: watch::Sender<Arc<Local>>,
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<ArcSwap<Stats>>,
    task: JoinHandle<()>,
}

impl Installer {
    /// Opens netlink, ensures the tunnel device (when the mode uses it and `manage_tunnel`
    /// is set) and adopts the kernel's routes of our protocol in our table: nothing is
    /// deleted until [`Installer::converged`].
    pub async fn start(settings: Settings) -> Result<Installer, FibError> {
        let fib = NetlinkFib::open(settings.protocol, settings.table)?;
        Self::start_with(fib, settings).await
    }

    /// The same over any [`Fib`] (the in-memory one in tests).
    pub async fn start_with<F: Fib + 'static>(
        mut fib: F,
        settings: Settings,
    ) -> Result<Installer, FibError> {
        let mut rec = Reconciler::new(settings.mode, &settings.tunnel);
        if settings.vxlan.is_some() {
            // Until the daemon says which nodes there are, no next hop is known to be one.
            rec.set_vteps(Some(Macs::new()));
        }
        let v6 = settings.vxlan.and(settings.vxlan_v6.as_ref());
        if let Some(v6) = v6.filter(|_| settings.mode != Mode::Never) {
            rec.set_tunnel_v6(Some((v6.device.clone(), Macs::new())));
        }
        let underlay = fib.underlay(settings.node_address).await?;
        let manage = settings.manage_tunnel && settings.mode != Mode::Never;
        if manage {
            let spec = tunnel_spec(&settings, underlay.as_ref().map(|u| u.mtu), None);
            fib.ensure_tunnel(&spec).await?;
            if let Some(spec) = tunnel_spec_v6(&settings, underlay.as_ref().map(|u| u.mtu)) {
                fib.ensure_tunnel(&spec).await?;
            }
        }
        rec.set_links(fib.links().await?);
        rec.set_underlay(underlay);
        let read = fib.routes(&mut |p, k| rec.kernel_route(p, k)).await;
        rec.end_kernel(read.is_ok());
        read?;

        let (remote_tx, remote_rx) = mpsc::unbounded_channel();
        let (local_tx, local_rx) = watch::channel(Arc::new(Local::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ArcSwap::from_pointee(Stats::default()));
        let driver = Driver {
            fib,
            rec,
            settings,
            manage,
            tunnel_address: None,
            want_tunnel_address: None,
            tunnel_dirty: false,
            converged: false,
            vteps_dirty: true,
            vteps_changed: true,
            warned: HashSet::new(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(driver.run(remote_rx, local_rx, cmd_rx));
        Ok(Installer {
            remote: remote_tx,
            local: local_tx,
            commands: cmd_tx,
            stats,
            task,
        })
    }

    /// Everything at once: remote routes, own blocks and workloads replace what was set
    /// before. The difference is applied promptly.
    pub fn set_inputs(&self, inputs: Inputs) {
        let _ = self.remote.send(Remote::All(inputs.remote));
        self.local.send_replace(Arc::new(Local {
            own_blocks: inputs.own_blocks,
            workloads: inputs.workloads,
            tunnel_address: inputs.tunnel_address,
            vteps: inputs.vteps,
            vteps_v6: inputs.vxlan_v6.map(|(_, v)| v),
        }));
    }

    /// Own blocks, local workloads and the tunnel's address; bursts coalesce.
    pub fn set_local(
        &self,
        own_blocks: Vec<IpNet>,
        workloads: Vec<(IpAddr, String)>,
        tunnel_address: Option<Ipv4Addr>,
    ) {
        self.local.send_modify(|l| {
            *l = Arc::new(Local {
                own_blocks,
                workloads,
                tunnel_address,
                vteps: l.vteps.clone(),
                vteps_v6: l.vteps_v6.clone(),
            })
        });
    }

    /// VXLAN: the other nodes' addresses, whose tunnel endpoints are known, with their
    /// VTEP MACs (each gets a neighbour and an FDB entry with its MAC; next hops outside
    /// them are not encapsulated). Ignored with IPIP.
    pub fn set_vteps(&self, vteps: Macs<Ipv4Addr>) {
        self.local.send_if_modified(|l| {
            if l.vteps.as_ref() == Some(&vteps) {
                return false;
            }
            let mut next = Local::clone(l);
            next.vteps = Some(vteps);
            *l = Arc::new(next);
            true
        });
    }

    /// VXLAN over IPv6: the other nodes' IPv6 addresses with their IPv6 VTEP MACs (each
    /// gets a neighbour and an FDB entry on the IPv6 device; IPv6 next hops outside them
    /// are routed natively). Ignored without the IPv6 device.
    pub fn set_vteps_v6(&self, vteps: Macs<Ipv6Addr>) {
        self.local.send_if_modified(|l| {
            if l.vteps_v6.as_ref() == Some(&vteps) {
                return false;
            }
            let mut next = Local::clone(l);
            next.vteps_v6 = Some(vteps);
            *l = Arc::new(next);
            true
        });
    }

    /// A batch of changes to remote routes (`None`: the prefix has no route any more).
    /// Completes once the installer has taken the batch in; it is written right after.
    /// Later changes should wait for that, and coalesce meanwhile.
    pub fn update_remote(
        &self,
        changes: Vec<RemoteChange>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (taken, taken_rx) = oneshot::channel();
        let sent = self.remote.send(Remote::Changes(changes, taken)).is_ok();
        async move {
            if sent {
                let _ = taken_rx.await;
            }
        }
    }

    /// Initial convergence reached: routes of ours that are not desired may now go.
    pub fn converged(&self) {
        let _ = self.commands.send(Command::Converged);
    }

    /// The routes in the kernel right now exactly as ipipd wants them, built on request
    /// (empty once the task has stopped).
    pub fn installed(&self) -> impl Future<Output = BTreeMap<IpNet, Route>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Installed(tx)).is_ok();
        async move {
            if sent {
                rx.await.unwrap_or_default()
            } else {
                BTreeMap::new()
            }
        }
    }

    /// Routes of ours in the kernel by kind (a walk of the installer's state, no copy:
    /// for metrics scrapes at any table size).
    pub fn counts(&self) -> impl Future<Output = Counts> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.commands.send(Command::Counts(tx)).is_ok();
        async move {
            if sent {
                rx.await.unwrap_or_default()
            } else {
                Counts::default()
            }
        }
    }

    /// Whether the installer task still runs (it ends only by [`Installer::stop`],
    /// or by a panic).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub fn stats(&self) -> Stats {
        **self.stats.load()
    }

    /// Stop the task. Routes stay in the kernel unless `flush`, which deletes every route
    /// of ours.
    pub async fn stop(self, flush: bool) -> Result<(), FibError> {
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Stop {
                flush,
                done: done_tx,
            })
            .is_err()
        {
            return Err(FibError::Stopped);
        }
        let result = done_rx.await.unwrap_or(Err(FibError::Stopped));
        let _ = self.task.await;
        result
    }
}

fn tunnel_spec(
    settings: &Settings,
    underlay_mtu: Option<u32>,
    address: Option<Ipv4Addr>,
) -> TunnelSpec {
    let overhead = match settings.vxlan {
        Some(_) => VXLAN_OVERHEAD,
        None => IPIP_OVERHEAD,
    };
    TunnelSpec {
        name: settings.tunnel.clone(),
        mtu: settings
            .tunnel_mtu
            .or_else(|| underlay_mtu.map(|m| m.saturating_sub(overhead))),
        address,
        vxlan: settings.vxlan.map(|v| VxlanDevice {
            vni: v.vni,
            port: v.port,
            local: IpAddr::V4(settings.node_address),
            mac: v
                .mac
                .unwrap_or_else(|| crate::vtep::vtep_mac(settings.node_address)),
        }),
    }
}

/// The IPv6 VXLAN device as it should be, when there is one.
fn tunnel_spec_v6(settings: &Settings, underlay_mtu: Option<u32>) -> Option<TunnelSpec> {
    let (vxlan, v6) = (settings.vxlan?, settings.vxlan_v6.as_ref()?);
    Some(TunnelSpec {
        name: v6.device.clone(),
        mtu: v6
            .mtu
            .or_else(|| underlay_mtu.map(|m| m.saturating_sub(VXLAN_V6_OVERHEAD))),
        address: None,
        vxlan: Some(VxlanDevice {
            vni: vxlan.vni,
            port: vxlan.port,
            local: IpAddr::V6(v6.local),
            mac: v6.mac.unwrap_or_else(|| crate::vtep::vtep_mac_v6(v6.local)),
        }),
    })
}

struct Driver<F> {
    fib: F,
    rec: Reconciler,
    settings: Settings,
    manage: bool,
    /// The tunnel address last put in place.
    tunnel_address: Option<Ipv4Addr>,
    /// The tunnel address the daemon asks for.
    want_tunnel_address: Option<Ipv4Addr>,
    /// The device needs another look even if the address did not change.
    tunnel_dirty: bool,
    /// Initial convergence reached: stale neighbour and FDB entries may go.
    converged: bool,
    /// VXLAN: compare the neighbour and FDB entries with the kernel's at the next pass.
    vteps_dirty: bool,
    /// The wanted entries changed since the last comparison (writes then are no repairs).
    vteps_changed: bool,
    /// Next hops with no known VTEP already logged.
    warned: HashSet<IpAddr>,
    stats: Arc<ArcSwap<Stats>>,
}

impl<F: Fib> Driver<F> {
    async fn run(
        mut self,
        mut remote: mpsc::UnboundedReceiver<Remote>,
        mut local: watch::Receiver<Arc<Local>>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When set: reconcile at that instant (debounced event-driven work).
        let mut due: Option<Instant> = None;
        // What is due then is a full read of the kernel, not just a comparison.
        let mut resync_due = false;
        let mut remote_open = true;
        let mut local_open = true;
        loop {
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Converged) => {
                        // Changes sent before `converged()` must count: without them
                        // everything would look stale.
                        while let Ok(msg) = remote.try_recv() {
                            self.take_remote(msg);
                        }
                        if local_open && local.has_changed().unwrap_or(false) {
                            self.take_local(&mut local).await;
                        }
                        self.rec.converge();
                        self.converged = true;
                        self.vteps_dirty = true;
                        self.pass().await;
                    }
                    Some(Command::Installed(reply)) => {
                        let _ = reply.send(self.rec.installed());
                    }
                    Some(Command::Counts(reply)) => {
                        let _ = reply.send(self.rec.counts());
                    }
                    Some(Command::Stop { flush, done }) => {
                        let result = if flush { self.flush().await } else { Ok(()) };
                        let _ = done.send(result);
                        return;
                    }
                    // The handle was dropped without stop: keep the routes, as stop does.
                    None => return,
                },
                changed = local.changed(), if local_open => {
                    if changed.is_err() {
                        local_open = false;
                        continue;
                    }
                    self.take_local(&mut local).await;
                    self.pass().await;
                }
                msg = remote.recv(), if remote_open => {
                    let Some(msg) = msg else {
                        remote_open = false;
                        continue;
                    };
                    self.take_remote(msg);
                    // Whatever else waits goes into the same pass.
                    while let Ok(msg) = remote.try_recv() {
                        self.take_remote(msg);
                    }
                    self.pass().await;
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    due = None;
                    if std::mem::take(&mut resync_due) {
                        self.resync().await;
                    } else {
                        self.tunnel().await;
                        self.pass().await;
                    }
                }
                _ = resync.tick() => self.resync().await,
                event = self.fib.next_event() => {
                    let reaction = self.rec.event(event);
                    self.tunnel_dirty |= reaction.tunnel;
                    self.vteps_dirty |= reaction.vteps || reaction.tunnel;
                    resync_due |= reaction.resync;
                    if reaction.resync || reaction.reconcile || reaction.tunnel || reaction.vteps {
                        due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                }
            }
        }
    }

    fn take_remote(&mut self, msg: Remote) {
        match msg {
            Remote::Changes(changes, taken) => {
                for (prefix, gateways) in &changes {
                    self.rec.remote_changed(*prefix, gateways.as_deref());
                    self.warn_unknown(gateways.as_deref().unwrap_or_default());
                }
                let _ = taken.send(());
            }
            Remote::All(all) => {
                self.rec.set_remote(&all);
                for gateways in all.values() {
                    self.warn_unknown(gateways);
                }
            }
        }
    }

    /// VXLAN: say once per next hop that it is no known node, so its routes are not
    /// encapsulated (a BIRD, GoBGP or FRR peer's own next hop).
    fn warn_unknown(&mut self, gateways: &[IpAddr]) {
        for gw in gateways {
            let (known, device) = match gw {
                IpAddr::V4(v4) => match self.rec.vteps() {
                    Some(known) => (known.contains_key(v4), self.settings.tunnel.as_str()),
                    None => continue,
                },
                IpAddr::V6(v6) => match self.rec.tunnel_v6() {
                    Some((device, known)) => (known.contains_key(v6), device.as_str()),
                    None => continue,
                },
            };
            if !known && self.warned.insert(*gw) {
                tracing::warn!(next_hop = %gw, %device, "no VXLAN endpoint is known for this next hop (it is no node of the cluster): its routes are installed without encapsulation");
            }
        }
    }

    async fn take_local(&mut self, local: &mut watch::Receiver<Arc<Local>>) {
        let latest = Arc::clone(&local.borrow_and_update());
        self.rec
            .set_local(latest.own_blocks.clone(), &latest.workloads);
        self.want_tunnel_address = latest.tunnel_address;
        if self.settings.vxlan.is_some() {
            let own = self.settings.node_address;
            let vteps: Macs<Ipv4Addr> = latest
                .vteps
                .iter()
                .flatten()
                .map(|(a, mac)| (*a, *mac))
                .filter(|(a, _)| *a != own)
                .collect();
            if self.rec.vteps() != Some(&vteps) {
                // Next hops that become known are logged again if they go.
                self.warned
                    .retain(|a| !matches!(a, IpAddr::V4(v4) if vteps.contains_key(v4)));
                self.rec.set_vteps(Some(vteps));
                self.vteps_dirty = true;
                self.vteps_changed = true;
            }
        }
        if let Some((device, before)) = self.rec.tunnel_v6().cloned() {
            let own = self.settings.vxlan_v6.as_ref().map(|v| v.local);
            let vteps: Macs<Ipv6Addr> = latest
                .vteps_v6
                .iter()
                .flatten()
                .map(|(a, mac)| (*a, *mac))
                .filter(|(a, _)| Some(*a) != own)
                .collect();
            if before != vteps {
                self.warned
                    .retain(|a| !matches!(a, IpAddr::V6(v6) if vteps.contains_key(v6)));
                self.rec.set_tunnel_v6(Some((device, vteps)));
                self.vteps_dirty = true;
                self.vteps_changed = true;
            }
        }
        self.tunnel().await;
    }

    /// Write what the queue holds, a chunk at a time.
    async fn pass(&mut self) {
        if std::mem::take(&mut self.vteps_dirty) {
            self.vteps().await;
        }
        let mut rereads = 0;
        loop {
            let ops = self.rec.plan(CHUNK);
            if ops.is_empty() {
                break;
            }
            let results = self.fib.apply(&ops).await;
            if self.rec.record(&ops, results) && rereads == 0 {
                // Some outcomes are unknown: read the truth back and go on from there.
                rereads += 1;
                self.resync_only().await;
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.stats.store(Arc::new(self.rec.stats));
    }

    async fn resync_only(&mut self) {
        match self.read_kernel().await {
            Ok(()) => {}
            Err(e) => {
                self.rec.stats.errors += 1;
                tracing::warn!(error = %e, "reading the kernel FIB failed");
            }
        }
    }

    /// Links, underlay, and our routes streamed from the dump into the reconciler.
    async fn read_kernel(&mut self) -> Result<(), FibError> {
        let underlay = self.fib.underlay(self.settings.node_address).await?;
        self.rec.set_underlay(underlay);
        self.rec.set_links(self.fib.links().await?);
        let Driver { fib, rec, .. } = self;
        let read = fib.routes(&mut |p, k| rec.kernel_route(p, k)).await;
        rec.end_kernel(read.is_ok());
        read
    }

    /// VXLAN: make the device's neighbour and FDB entries one pair per known node, keeping
    /// what is in place (a restart loses nothing) and putting back what someone deleted.
    async fn vteps(&mut self) {
        if !self.manage || self.settings.vxlan.is_none() {
            return;
        }
        let want: Vec<Vtep> = self
            .rec
            .vteps()
            .into_iter()
            .flatten()
            .map(|(a, mac)| Vtep::v4(*a, *mac))
            .collect();
        let device = self.settings.tunnel.clone();
        let mut changed = self.vteps_changed;
        self.device_vteps(device, want, false, &mut changed).await;
        if let Some((device, known)) = self.rec.tunnel_v6().cloned() {
            let want = known.iter().map(|(a, mac)| Vtep::v6(*a, *mac)).collect();
            self.device_vteps(device, want, true, &mut changed).await;
        }
        self.vteps_changed = false;
    }

    /// One device's entries (of its family only: `v6`).
    async fn device_vteps(
        &mut self,
        device: String,
        want: Vec<Vtep>,
        v6: bool,
        changed: &mut bool,
    ) {
        let have = match self.fib.vteps(&device).await {
            Ok(have) => have,
            Err(e) => {
                self.rec.stats.errors += 1;
                self.vteps_dirty = true;
                tracing::warn!(%device, error = %e, "reading neighbour and FDB entries failed");
                return;
            }
        };
        let have = have.of_family(v6);
        let ops = crate::vtep::plan(&want, &have, self.converged);
        if ops.is_empty() {
            return;
        }
        let results = self.fib.apply_vteps(&device, &ops).await;
        let repair = !*changed;
        for (op, result) in ops.iter().zip(results) {
            match result {
                Ok(()) if op.is_write() && repair => {
                    self.rec.stats.drift_repairs += 1;
                    tracing::info!(%device, ?op, "put back a neighbour or FDB entry someone removed or changed");
                }
                Ok(()) => {}
                Err(e) => {
                    self.rec.stats.errors += 1;
                    self.vteps_dirty = true;
                    *changed = true;
                    tracing::warn!(%device, ?op, error = %e, "neighbour or FDB write failed");
                }
            }
        }
    }

    /// The full comparison: read everything back, fix the tunnel, write the difference.
    async fn resync(&mut self) {
        self.resync_only().await;
        self.tunnel_dirty = true;
        self.vteps_dirty = true;
        self.tunnel().await;
        self.pass().await;
    }

    /// Keep the tunnel device right; its address is the one the daemon allocated.
    async fn tunnel(&mut self) {
        if !self.manage {
            return;
        }
        let want = self.want_tunnel_address;
        if !self.tunnel_dirty && (want.is_none() || want == self.tunnel_address) {
            return;
        }
        let mtu = self.rec.underlay().map(|u| u.mtu);
        let dirty_v6 = self.tunnel_dirty;
        let spec = tunnel_spec(&self.settings, mtu, want);
        match self.fib.ensure_tunnel(&spec).await {
            Ok(()) => {
                self.tunnel_address = want;
                self.tunnel_dirty = false;
                // The device may be new: its entries need a look.
                self.vteps_dirty = true;
                // Ensuring may have brought the device up: re-read so routes through it go in.
                match self.fib.links().await {
                    Ok(links) => self.rec.set_links(links),
                    Err(e) => tracing::warn!(error = %e, "reading links failed"),
                }
            }
            Err(e) => {
                self.rec.stats.errors += 1;
                tracing::warn!(device = %spec.name, error = %e, "tunnel device setup failed");
            }
        }
        if let Some(spec) = dirty_v6
            .then(|| tunnel_spec_v6(&self.settings, mtu))
            .flatten()
        {
            match self.fib.ensure_tunnel(&spec).await {
                Ok(()) => match self.fib.links().await {
                    Ok(links) => self.rec.set_links(links),
                    Err(e) => tracing::warn!(error = %e, "reading links failed"),
                },
                Err(e) => {
                    self.rec.stats.errors += 1;
                    self.tunnel_dirty = true;
                    tracing::warn!(device = %spec.name, error = %e, "tunnel device setup failed");
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), FibError> {
        self.rec.set_links(self.fib.links().await?);
        let Driver { fib, rec, .. } = self;
        let read = fib.routes(&mut |p, k| rec.kernel_route(p, k)).await;
        rec.end_kernel(read.is_ok());
        read?;
        loop {
            let ops = self.rec.flush_plan(CHUNK);
            if ops.is_empty() {
                break;
            }
            let results = self.fib.apply(&ops).await;
            self.rec.record(&ops, results);
        }
        self.publish();
        Ok(())
    }
}

#[cfg(test)]
#[path = "installer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "installer_vxlan_tests.rs"]
mod vxlan_tests;
