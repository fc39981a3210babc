//! `ipipd run`: config → speaker → RIB → FIB, the control socket, reload and
//! signals.

pub(crate) mod bfd;
mod cluster;
mod datastore_ops;
mod ipam_check;
mod marker;
mod metrics;
mod node;
mod owner;
mod pods;
mod pools;
mod reload;
pub mod settings;
// What DEL spooled while the daemon was down (the node-state owner applies it).
mod spool;
mod status;
mod views;
// VXLAN in etcd mode: the MAC each node chooses and records.
mod vtep;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use bgp::speaker::Speaker;
use config::Config;
use ipnet::IpNet;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::control::protocol::{Request, Response};
use marker::{restarting, touch_marker};
use node::{Event, Inbox, NodeState};
use workloads::Workloads;

pub use workloads::check_interface;

/// The running daemon, shared by the control socket, reload and the FIB feeder.
pub struct Daemon {
    config_path: PathBuf,
    /// The node's state as its owner last published it (read-only here).
    state: ArcSwap<NodeState>,
    /// Where events that change the node's state go.
    owner: Inbox,
    speaker: Speaker,
    /// The kernel installer; None with `kernel.install = false`, and after stop.
    fib: std::sync::Mutex<Option<fib::Installer>>,
    /// Outbound NAT's nftables table; None with `kernel.install = false`. Left in the
    /// kernel on stop, so masquerading has no gap over a restart.
    nat: Option<nat::Keeper>,
    /// Wakes the FIB feeder when workloads, own blocks or the tunnel address change.
    inputs_changed: Notify,
    /// Tasks the daemon cannot work without, by name: when one ends, the daemon stops.
    tasks: std::sync::Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    /// Set once stopping: the kernel is left as it is (routes survive the restart).
    stopping: AtomicBool,
    /// Node identity, socket and state directory from the environment or flags.
    overrides: config::Overrides,
    /// `datastore.kind = "etcd"`: the cluster datastore.
    cluster: Option<Arc<cluster::Cluster>>,
    /// The BFD keeper, once some session wants BFD.
    bfd: std::sync::Mutex<Option<::bfd::keeper::KeeperClient>>,
    /// Where the keeper's state changes go ([`bfd::couple`] reads them).
    bfd_events: tokio::sync::mpsc::UnboundedSender<::bfd::Event>,
}

/// The answer to `ipam check` and `ipam release` without a datastore.
const NEEDS_DATASTORE: &str = "ipam check and ipam release need datastore.kind = \"etcd\": with the file datastore every allocation is in this node's own record";

/// Name of the marker that tells the next start it is a restart (RFC 4724 R bit).
const RUNNING_MARKER: &str = "running";

/// Runs until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf, overrides: config::Overrides) -> anyhow::Result<()> {
    let cfg = Config::load_with(&config_path, &overrides).context("invalid configuration")?;
    let cluster = if cfg.datastore.kind == config::DatastoreKind::Etcd {
        // Before registering: a restarting node's VXLAN devices keep their MACs.
        let kernel = vtep::kernel(&cfg).await;
        let c = Arc::new(cluster::Cluster::connect(&cfg, kernel).await?);
        let snap = c.view.load_full();
        Some((c, snap))
    } else {
        None
    };
    std::fs::create_dir_all(&cfg.control.state_dir).with_context(|| {
        format!(
            "creating state directory {}",
            cfg.control.state_dir.display()
        )
    })?;
    let restart = cfg.bgp.graceful_restart_time > 0
        && restarting(&cfg.control.state_dir, cfg.bgp.graceful_restart_time);
    if let Err(e) = touch_marker(&cfg.control.state_dir) {
        tracing::error!(error = %e, "writing the restart marker: the next start will not be a graceful restart");
    }
    let workloads = Workloads::load(&cfg.control.state_dir)?;
    enable_forwarding(&cfg);
    let sync_with = cluster.as_ref().map(|(c, _)| c.clone());
    let own_macs = sync_with.as_ref().map(|c| c.own_macs()).unwrap_or_default();
    let publisher = Arc::new(Publisher::default());
    let mut owner = owner::Owner::new(publisher.clone(), cfg.clone(), cluster, workloads)?;
    // Before anything reads the state: the allocations etcd records as this node's are
    // taken up, so a lost `state_dir` neither hands out nor routes away a live address.
    owner.rebuild_from_datastore().await;
    let state = owner.state();
    let cfg = state.config.clone();
    let fib = if cfg.kernel.install {
        Some(
            fib::Installer::start(settings::fib(&cfg, own_macs))
                .await
                .context("starting the FIB installer")?,
        )
    } else {
        tracing::warn!(
            "kernel.install = false: routes are computed but never written to the kernel"
        );
        None
    };
    // Before the control socket serves a CNI ADD: a pod's first packet to the outside
    // finds the table in place.
    // A failure is logged by the keeper, retried, and shown by `ipipd status`.
    let nat = if cfg.kernel.install {
        Some(nat::Keeper::start(settings::nat(&cfg), settings::NAT_CHECK_EVERY).await)
    } else {
        None
    };
    let mut speaker_settings = settings::speaker(&cfg, restart);
    // Borrowed addresses taken up from the datastore are announced from the start.
    speaker_settings.own_blocks = state.announced();
    let speaker = Speaker::start(speaker_settings, state.neighbors.clone())
        .await
        .context("starting the BGP speaker")?;
    tracing::info!(node = %cfg.node.name, address = %cfg.node.address, blocks = ?cfg.node.blocks, tunnel = ?state.tunnel, restart, "ipipd started");
    let socket = cfg.control.socket.clone();
    let (bfd_events, bfd_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let (inbox, events) = Inbox::new();
    let daemon = Arc::new(Daemon {
        config_path,
        state: ArcSwap::new(state.clone()),
        owner: inbox.clone(),
        speaker,
        fib: std::sync::Mutex::new(fib),
        nat,
        inputs_changed: Notify::new(),
        tasks: std::sync::Mutex::new(Vec::new()),
        stopping: AtomicBool::new(false),
        overrides,
        cluster: sync_with.clone(),
        bfd: std::sync::Mutex::new(None),
        bfd_events,
    });
    publisher.attach(&daemon);
    daemon.set_bfd(&state);
    daemon.supervised("node-state owner", owner.run(events));
    if let Some(c) = sync_with {
        daemon.supervised("datastore sync", cluster::sync(c, inbox));
    }
    tokio::spawn(bfd::couple(daemon.clone(), bfd_events_rx));
    if daemon.with_fib(|_| ()).is_some() {
        tokio::spawn(feed_fib(daemon.clone()));
    }
    crate::control::server::start(&socket, daemon.clone())?;
    if let Some(addr) = cfg.metrics.listen {
        metrics::start(addr, daemon.clone()).await?;
    }
    tokio::spawn(reload::watch_file(daemon.clone()));
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let result = tokio::select! {
        r = reload::signals(daemon.clone()) => r,
        e = supervise(daemon.clone()) => Err(e),
    };
    daemon.stop().await;
    let _ = std::fs::remove_file(&socket);
    result
}

/// The owner's outputs: the daemon's published state, the speaker, BFD and the FIB
/// feeder. Attached once the daemon exists (the owner is made before it).
#[derive(Default)]
struct Publisher {
    daemon: std::sync::OnceLock<std::sync::Weak<Daemon>>,
}

impl Publisher {
    fn attach(&self, daemon: &Arc<Daemon>) {
        let _ = self.daemon.set(Arc::downgrade(daemon));
    }
}

impl owner::Outputs for Publisher {
    async fn publish(&self, old: &NodeState, new: Arc<NodeState>) {
        let Some(daemon) = self.daemon.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        daemon.state.store(new.clone());
        if old.neighbors != new.neighbors {
            daemon.speaker.set_neighbors(new.neighbors.clone()).await;
        }
        if old.announced() != new.announced() {
            daemon.speaker.set_own_blocks(new.announced()).await;
        }
        if old.bfd != new.bfd {
            daemon.set_bfd(&new);
        }
        if old.config.pools != new.config.pools {
            if let Some(n) = &daemon.nat {
                n.set(settings::nat(&new.config));
            }
        }
        daemon.inputs_changed.notify_one();
    }
}

/// Pods reach other nodes through this one: forwarding on (IPv4, and IPv6 with IPv6 pools).
fn enable_forwarding(cfg: &Config) {
    let mut knobs = vec!["/proc/sys/net/ipv4/ip_forward"];
    if cfg.cluster.pools.iter().any(|p| matches!(p, IpNet::V6(_))) {
        knobs.push("/proc/sys/net/ipv6/conf/all/forwarding");
    }
    for knob in knobs {
        if let Err(e) = std::fs::write(knob, "1") {
            tracing::warn!(%knob, error = %e, "cannot turn on forwarding; pods will not reach other nodes");
        }
    }
}

/// How often the restart marker is touched.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Watches the tasks the daemon cannot work without: the RIB task and the FIB
/// installer. While both live, it touches the restart marker and pings the
/// systemd watchdog (if enabled); when one dies it returns why, and the daemon
/// stops with an error, so systemd (or the kubelet) restarts it.
async fn supervise(daemon: Arc<Daemon>) -> anyhow::Error {
    let mut usec = 0;
    let watchdog = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
        .then(|| Duration::from_micros(usec / 2));
    let tick = watchdog.map_or(HEARTBEAT, |w| w.min(HEARTBEAT));
    let mut marker_due = tokio::time::Instant::now();
    loop {
        if let Err(e) = daemon.health() {
            tracing::error!(error = %e, "stopping: a task ipipd needs has died");
            return e;
        }
        if watchdog.is_some() {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
        if tokio::time::Instant::now() >= marker_due {
            if let Err(e) = touch_marker(&daemon.state.load().config.control.state_dir) {
                tracing::error!(error = %e, "refreshing the restart marker: the next start may not be a graceful restart");
            }
            marker_due += HEARTBEAT;
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            // No need to wait for the next tick to notice this one.
            _ = daemon.speaker.rib_stopped() => {}
        }
    }
}

/// Route changes handed to the installer at once.
const FIB_CHUNK: usize = 4096;

/// Hands the installer the RIB's changes as they come (waiting while it takes a batch in,
/// so later changes coalesce in the feed), own blocks and workloads when they change, and
/// initial convergence only after the changes of that moment, so a restart never deletes
/// a route that is about to be re-learned.
async fn feed_fib(daemon: Arc<Daemon>) {
    let feed = daemon.speaker.fib();
    let mut conv_rx = daemon.speaker.converged();
    let mut converged_sent = false;
    let mut local_changed = true;
    loop {
        // The RIB adds its changes before it says converged, so reading convergence
        // first and taking the changes second never pairs "converged" with older ones.
        let converged = *conv_rx.borrow_and_update();
        let changes = feed.take();
        if daemon.stopping.load(Ordering::SeqCst) {
            return;
        }
        if std::mem::take(&mut local_changed) {
            let state = daemon.state.load_full();
            let snap = state.datastore.as_deref();
            daemon.with_fib(|f| {
                f.set_vteps(settings::vteps(&state.config, snap));
                f.set_vteps_v6(settings::vteps_v6(&state.config, snap));
                f.set_local(
                    state.own_blocks().to_vec(),
                    state.workloads.clone(),
                    state.tunnel,
                )
            });
        }
        // In chunks: the changes wait compact in the batch and are expanded a chunk at
        // a time, the next while the installer writes the last.
        let mut changes = changes;
        loop {
            let chunk: Vec<fib::RemoteChange> = changes.by_ref().take(FIB_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            let Some(taken) = daemon.with_fib(|f| f.update_remote(chunk)) else {
                break;
            };
            taken.await;
        }
        if converged && !converged_sent {
            converged_sent = true;
            tracing::info!(
                "initial convergence reached: kernel routes no longer wanted may now be removed"
            );
            daemon.with_fib(|f| f.converged());
        }
        tokio::select! {
            () = feed.ready() => {}
            r = conv_rx.changed(), if !converged_sent => if r.is_err() { return },
            () = daemon.inputs_changed.notified() => local_changed = true,
        }
    }
}

impl Daemon {
    /// Runs `task` as one the daemon cannot work without (see [`Daemon::health`]).
    fn supervised(
        &self,
        name: &'static str,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = tokio::spawn(task);
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name, handle));
    }

    /// Whether the RIB task, the FIB installer (when there is one), the node-state owner
    /// and the datastore sync still run.
    fn health(&self) -> anyhow::Result<()> {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((name, _)) = tasks.iter().find(|(_, h)| h.is_finished()) {
            anyhow::bail!("the {name} task has stopped");
        }
        drop(tasks);
        if !self.speaker.rib_running() {
            anyhow::bail!("the RIB task has stopped");
        }
        if self.with_fib(|f| f.is_running()) == Some(false) {
            anyhow::bail!("the FIB installer has stopped");
        }
        Ok(())
    }

    async fn stop(&self) {
        let flush = self.state.load().config.kernel.flush_on_stop;
        // Freeze the FIB first: sessions closing below must not withdraw kernel routes.
        self.stopping.store(true, Ordering::SeqCst);
        // Without flush, this is a graceful restart: peers keep our routes and
        // the kernel keeps theirs. With flush, we leave for good.
        self.speaker.shutdown(!flush).await;
        // Leaving for good, BFD says AdminDown after the Cease, so the peers
        // see an orderly stop. A restart leaves the keeper running: the peers
        // see BFD Up and a BGP graceful restart, not a dead node.
        let keeper = self.bfd_lock().take();
        if let Some(k) = keeper {
            if flush {
                k.stop().await;
            }
        }
        if flush {
            let _ = std::fs::remove_file(
                self.state
                    .load()
                    .config
                    .control
                    .state_dir
                    .join(RUNNING_MARKER),
            );
        }
        let installer = self.fib.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = installer {
            if let Err(e) = f.stop(flush).await {
                tracing::error!(error = %e, "stopping the FIB installer");
            }
        }
        tracing::info!(flush, "ipipd stopped");
    }

    pub async fn handle(&self, req: Request) -> Response {
        match req {
            Request::ShowPeers => Response::Peers {
                peers: self.peers(),
            },
            Request::ShowRoutes => Response::Routes {
                routes: self.routes().await,
            },
            Request::WorkloadList => Response::Workloads {
                workloads: self.state.load().workload_list.clone(),
            },
            Request::ShowBfd => Response::Bfd {
                sessions: self.bfd_sessions().into_iter().map(bfd::json).collect(),
            },
            Request::ShowBlocks => Response::Blocks {
                blocks: match &self.cluster {
                    Some(c) => self.cluster_blocks(c),
                    None => self.blocks().await,
                },
            },
            Request::ShowNodes => self.show_nodes(),
            Request::PoolList => self.pool_list(),
            Request::IpamCheck => match &self.cluster {
                Some(c) => ipam_check::run_check(c.as_ref()).await,
                None => Response::Error {
                    message: NEEDS_DATASTORE.into(),
                },
            },
            Request::IpamReleaseReport { report } => match &self.cluster {
                Some(c) => ipam_check::run_release(c.as_ref(), &report).await,
                None => Response::Error {
                    message: NEEDS_DATASTORE.into(),
                },
            },
            Request::Status => Response::Status(Box::new(self.status().await)),
            Request::NodeRemove { name } => self.node_remove(&name).await,
            Request::IpamAssign {
                container_id,
                ifname,
                interface,
                pod_namespace,
                pod_name,
                network,
                ips,
            } => {
                let request = ipam::Request {
                    requested: ips,
                    container_id,
                    ifname,
                    interface,
                    pod: pod_namespace
                        .zip(pod_name)
                        .map(|(namespace, name)| ipam::PodRef { namespace, name }),
                    network,
                };
                self.ask(|r| Event::Assign(request, r)).await
            }
            Request::IpamGet {
                container_id,
                ifname,
            } => {
                let handle = ipam::handle(&container_id, &ifname);
                self.ask(|r| Event::Get(handle, r)).await
            }
            Request::IpamGc { keep, network } => self.ask(|r| Event::Gc(keep, network, r)).await,
            Request::IpamRelease {
                container_id,
                ifname,
            } => {
                let handle = ipam::handle(&container_id, &ifname);
                self.ask(|r| Event::Release(handle, r)).await
            }
            Request::IpamStatus => self.ask(Event::Status).await,
            Request::WorkloadAdd { ip, interface } => {
                self.ask(|r| Event::WorkloadAdd(ip, interface, r)).await
            }
            Request::WorkloadDel { ip } => self.ask(|r| Event::WorkloadDel(ip, r)).await,
            Request::Reload => match self.reload().await {
                Ok(msg) => Response::Ok { message: msg },
                Err(message) => Response::Error { message },
            },
        }
    }

    /// Asks the node-state owner, and waits for its answer.
    async fn ask(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Response>) -> Event,
    ) -> Response {
        self.owner.ask(make).await.unwrap_or_else(node::gone)
    }

    fn bfd_lock(&self) -> std::sync::MutexGuard<'_, Option<::bfd::keeper::KeeperClient>> {
        self.bfd
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bfd_sessions(&self) -> Vec<::bfd::Status> {
        self.bfd_lock()
            .as_ref()
            .map(|k| k.sessions())
            .unwrap_or_default()
    }

    /// Starts the keeper client once some session wants BFD, or updates its sessions;
    /// called at start and whenever the published sessions change.
    fn set_bfd(&self, state: &NodeState) {
        let mut keeper = self.bfd_lock();
        match keeper.as_ref() {
            Some(k) => k.set_sessions(state.bfd.clone()),
            None if !state.bfd.is_empty() => {
                *keeper = Some(bfd::start(
                    &state.config,
                    state.bfd.clone(),
                    self.bfd_events.clone(),
                ))
            }
            None => {}
        }
    }

    /// The routes in the kernel as ipipd wants them (built on request; empty without
    /// an installer).
    async fn installed(&self) -> BTreeMap<IpNet, fib::Route> {
        match self.with_fib(|f| f.installed()) {
            Some(installed) => installed.await,
            None => BTreeMap::new(),
        }
    }

    fn with_fib<T>(&self, f: impl FnOnce(&fib::Installer) -> T) -> Option<T> {
        self.fib.lock().ok()?.as_ref().map(f)
    }

    /// Re-reads the configuration; on error the running one stays. The node-state
    /// owner applies it (or refuses it) in order with every other change.
    pub async fn reload(&self) -> Result<String, String> {
        let new = Config::load_with(&self.config_path, &self.overrides).map_err(|e| {
            let text = e.to_string();
            tracing::error!(
                "configuration reload refused; the running configuration stays:\n{text}"
            );
            format!("configuration refused; the running configuration stays:\n{text}")
        })?;
        self.owner
            .ask(|r| Event::Reload(Box::new(new), r))
            .await
            .unwrap_or_else(|| Err("ipipd is stopping".into()))
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
}
