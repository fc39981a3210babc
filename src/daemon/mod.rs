//! `ipipd run`: config → speaker → RIB → FIB, the control socket, reload and
//! signals.

pub(crate) mod bfd;
mod cluster;
mod cni_status;
mod datastore_ops;
mod metrics;
mod pods;
mod reload;
pub mod settings;
// Not called yet: the daemon's start and its periodic work are to release what DEL
// spooled while the daemon was down.
#[allow(dead_code)]
mod spool;
mod views;
mod workloads;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use bgp::speaker::Speaker;
use config::Config;
use ipnet::IpNet;
use tokio::sync::{Mutex, Notify};

use crate::control::protocol::{Request, Response};
use workloads::Workloads;

use workloads::check_in_pools;
pub use workloads::check_interface;

/// The running daemon, shared by the control socket, reload and the FIB feeder.
pub struct Daemon {
    config_path: PathBuf,
    config: ArcSwap<Config>,
    speaker: Speaker,
    /// The kernel installer; None with `kernel.install = false`, and after stop.
    fib: std::sync::Mutex<Option<fib::Installer>>,
    workloads: Mutex<Workloads>,
    /// Pods made by the CNI plugin: IPAM and their workload routes.
    pods: Mutex<pods::Pods>,
    /// Wakes the FIB feeder when workloads or own blocks change.
    inputs_changed: Notify,
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

/// Name of the marker that tells the next start it is a restart (RFC 4724 R bit).
const RUNNING_MARKER: &str = "running";

fn restarting(state_dir: &Path, gr_time: u16) -> bool {
    let Ok(meta) = std::fs::metadata(state_dir.join(RUNNING_MARKER)) else {
        return false;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::MAX);
    age < Duration::from_secs(gr_time.into())
}

fn touch_marker(state_dir: &Path) {
    let _ = std::fs::write(
        state_dir.join(RUNNING_MARKER),
        std::process::id().to_string(),
    );
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf, overrides: config::Overrides) -> anyhow::Result<()> {
    let cfg = Config::load_with(&config_path, &overrides).context("invalid configuration")?;
    let (cfg, cluster) = if cfg.datastore.kind == config::DatastoreKind::Etcd {
        let c = cluster::Cluster::connect(&cfg).await?;
        let snap = c.view.load_full();
        let own = snap.confirmed_blocks_of(&c.name);
        let cfg = c.effective(cfg, own, &snap);
        (cfg, Some(Arc::new(c)))
    } else {
        (cfg, None)
    };
    std::fs::create_dir_all(&cfg.control.state_dir).with_context(|| {
        format!(
            "creating state directory {}",
            cfg.control.state_dir.display()
        )
    })?;
    let restart = cfg.bgp.graceful_restart_time > 0
        && restarting(&cfg.control.state_dir, cfg.bgp.graceful_restart_time);
    touch_marker(&cfg.control.state_dir);
    let workloads = Workloads::load(&cfg.control.state_dir)?;
    let pods = pods::Pods::load(&cfg)?;
    enable_forwarding(&cfg);
    let fib = if cfg.kernel.install {
        Some(
            fib::Installer::start(settings::fib(&cfg))
                .await
                .context("starting the FIB installer")?,
        )
    } else {
        tracing::warn!(
            "kernel.install = false: routes are computed but never written to the kernel"
        );
        None
    };
    let neighbors = match &cluster {
        Some(c) => c.neighbors(&cfg),
        None => settings::neighbors(&cfg),
    };
    let speaker = Speaker::start(settings::speaker(&cfg, restart), neighbors)
        .await
        .context("starting the BGP speaker")?;
    tracing::info!(node = %cfg.node.name, address = %cfg.node.address, blocks = ?cfg.node.blocks, restart, "ipipd started");
    let socket = cfg.control.socket.clone();
    let (bfd_events, bfd_events_rx) = tokio::sync::mpsc::unbounded_channel();
    let daemon = Arc::new(Daemon {
        config_path,
        config: ArcSwap::from_pointee(cfg),
        speaker,
        fib: std::sync::Mutex::new(fib),
        workloads: Mutex::new(workloads),
        pods: Mutex::new(pods),
        inputs_changed: Notify::new(),
        stopping: AtomicBool::new(false),
        overrides,
        cluster: cluster.clone(),
        bfd: std::sync::Mutex::new(None),
        bfd_events,
    });
    if let Some(c) = cluster {
        tokio::spawn(cluster::sync(c, daemon.clone()));
        tokio::spawn(datastore_ops::release_empty_blocks(daemon.clone()));
    }
    tokio::spawn(bfd::couple(daemon.clone(), bfd_events_rx));
    daemon.start_bfd();
    if daemon.with_fib(|_| ()).is_some() {
        tokio::spawn(feed_fib(daemon.clone()));
    }
    crate::control::server::start(&socket, daemon.clone())?;
    if let Some(addr) = daemon.config.load().metrics.listen {
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
            touch_marker(&daemon.config.load().control.state_dir);
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
            let own_blocks = daemon.config.load().node.blocks.clone();
            let workloads = daemon.all_workloads().await;
            daemon.with_fib(|f| f.set_local(own_blocks, workloads));
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
    /// Whether the RIB task and the FIB installer (when there is one) still run.
    fn health(&self) -> anyhow::Result<()> {
        if !self.speaker.rib_running() {
            anyhow::bail!("the RIB task has stopped");
        }
        if self.with_fib(|f| f.is_running()) == Some(false) {
            anyhow::bail!("the FIB installer has stopped");
        }
        Ok(())
    }

    async fn stop(&self) {
        let flush = self.config.load().kernel.flush_on_stop;
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
            let _ = std::fs::remove_file(self.config.load().control.state_dir.join(RUNNING_MARKER));
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
            Request::WorkloadList => {
                let mut workloads = self.workloads.lock().await.list();
                workloads.extend(self.pods.lock().await.list());
                Response::Workloads { workloads }
            }
            Request::ShowBfd => Response::Bfd {
                sessions: self.bfd_sessions().into_iter().map(bfd::json).collect(),
            },
            Request::ShowBlocks => Response::Blocks {
                blocks: match &self.cluster {
                    Some(c) => self.cluster_blocks(c).await,
                    None => self.blocks().await,
                },
            },
            Request::ShowNodes => self.show_nodes(),
            Request::NodeRemove { name } => self.node_remove(&name).await,
            Request::IpamAssign {
                container_id,
                ifname,
                interface,
                pod_namespace,
                pod_name,
                network,
            } => {
                let request = ipam::Request {
                    container_id,
                    ifname,
                    interface,
                    pod: pod_namespace
                        .zip(pod_name)
                        .map(|(namespace, name)| ipam::PodRef { namespace, name }),
                    network,
                };
                if let Some(c) = &self.cluster {
                    if let Err(message) = self.ensure_room(c, &request.handle()).await {
                        return Response::IpamError {
                            kind: api::protocol::IpamErrorKind::Exhausted,
                            message,
                        };
                    }
                }
                let cfg = self.config.load();
                let r = self.pods.lock().await.assign(&cfg, request);
                self.inputs_changed.notify_one();
                r
            }
            Request::IpamGet {
                container_id,
                ifname,
            } => {
                let cfg = self.config.load();
                let handle = ipam::handle(&container_id, &ifname);
                self.pods.lock().await.get(&cfg, &handle)
            }
            Request::IpamGc { keep, network } => {
                let r = self.pods.lock().await.collect(&keep, network.as_deref());
                self.inputs_changed.notify_one();
                r
            }
            Request::IpamRelease {
                container_id,
                ifname,
            } => {
                let handle = ipam::handle(&container_id, &ifname);
                let r = self.pods.lock().await.release(&handle);
                self.inputs_changed.notify_one();
                r
            }
            Request::IpamStatus => self.ipam_status().await,
            Request::WorkloadAdd { ip, interface } => {
                if let Err(message) = check_interface(&interface) {
                    return Response::Error { message };
                }
                if let Err(message) = check_in_pools(ip, &self.config.load().cluster.pools) {
                    return Response::Error { message };
                }
                let r = self.workloads.lock().await.add(ip, interface.clone());
                self.inputs_changed.notify_one();
                match r {
                    Ok(()) => Response::Ok {
                        message: format!("workload {ip} on {interface} added"),
                    },
                    Err(e) => Response::Error {
                        message: format!("workload added but not persisted: {e}"),
                    },
                }
            }
            Request::WorkloadDel { ip } => {
                let r = self.workloads.lock().await.del(ip);
                self.inputs_changed.notify_one();
                match r {
                    Ok(true) => Response::Ok {
                        message: format!("workload {ip} removed"),
                    },
                    Ok(false) => Response::Error {
                        message: format!("no workload {ip}"),
                    },
                    Err(e) => Response::Error {
                        message: format!("workload removed but not persisted: {e}"),
                    },
                }
            }
            Request::Reload => match self.reload().await {
                Ok(msg) => Response::Ok { message: msg },
                Err(message) => Response::Error { message },
            },
        }
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

    /// Starts the keeper client once some session wants BFD, or updates its
    /// sessions; called at start and after each reload.
    fn start_bfd(&self) {
        let cfg = self.config.load_full();
        let specs = bfd::specs(&cfg);
        let mut keeper = self.bfd_lock();
        match keeper.as_ref() {
            Some(k) => k.set_sessions(specs),
            None if !specs.is_empty() => *keeper = Some(bfd::start(&cfg, self.bfd_events.clone())),
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

    /// Workloads added by hand and pods made by the CNI plugin: address → host interface.
    async fn all_workloads(&self) -> Vec<(IpAddr, String)> {
        let mut all = self.workloads.lock().await.pairs();
        all.extend(self.pods.lock().await.workloads());
        all
    }

    /// Re-reads the configuration; on error the running one stays.
    pub async fn reload(&self) -> Result<String, String> {
        let new = Config::load_with(&self.config_path, &self.overrides).map_err(|e| {
            let text = e.to_string();
            tracing::error!(
                "configuration reload refused; the running configuration stays:\n{text}"
            );
            format!("configuration refused; the running configuration stays:\n{text}")
        })?;
        let old = self.config.load_full();
        let new = match &self.cluster {
            // Blocks and nodes come from the datastore, not from the file.
            Some(c) => c.effective(new, old.node.blocks.clone(), &c.view.load()),
            None => new,
        };
        let fixed = settings::restart_only_changes(&old, &new);
        if !fixed.is_empty() {
            let msg = format!(
                "configuration refused; the running configuration stays: {} \
                 change only at restart",
                fixed.join(", ")
            );
            tracing::error!("{msg}");
            return Err(msg);
        }
        // Every restart-only key is as it runs, so sessions built from the new
        // file have the running port, AS and own addresses.
        let neighbors = match &self.cluster {
            Some(c) => c.neighbors(&new),
            None => settings::neighbors(&new),
        };
        self.speaker.set_neighbors(neighbors).await;
        if old.node.blocks != new.node.blocks {
            self.speaker.set_own_blocks(new.node.blocks.clone()).await;
        }
        self.pods.lock().await.reconfigure(&new);
        self.config.store(Arc::new(new));
        self.start_bfd();
        self.inputs_changed.notify_one();
        let msg = "configuration reloaded".to_string();
        tracing::info!("{msg}");
        Ok(msg)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }
}
