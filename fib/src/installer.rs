//! The installer task: owns the reconciler and one [`Fib`], and turns inputs, events and
//! timers into writes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};

use crate::fib::{Fib, TunnelSpec};
use crate::netlink::NetlinkFib;
use crate::reconcile::Reconciler;
use crate::{tunnel_address, FibError, Inputs, Mode, Route, Settings};

/// How long after a change made by someone else we look again: long enough to take a
/// burst of notifications in one pass, short enough to repair well within a second.
const DEBOUNCE: Duration = Duration::from_millis(75);
/// The backstop: a full comparison with the kernel this often, whatever the events said.
const RESYNC_EVERY: Duration = Duration::from_secs(60);
/// The outer IPv4 header IPIP adds.
const IPIP_OVERHEAD: u32 = 20;

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
    Stop {
        flush: bool,
        done: oneshot::Sender<Result<(), FibError>>,
    },
}

/// The FIB installer task. Start it inside a tokio runtime, in the network namespace the
/// routes belong to.
pub struct Installer {
    inputs: watch::Sender<Arc<Inputs>>,
    commands: mpsc::UnboundedSender<Command>,
    installed: Arc<ArcSwap<BTreeMap<IpNet, Route>>>,
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
        let underlay = fib.underlay(settings.node_address).await?;
        let manage = settings.manage_tunnel && settings.mode != Mode::Never;
        if manage {
            let spec = tunnel_spec(&settings, underlay.as_ref().map(|u| u.mtu), None);
            fib.ensure_tunnel(&spec).await?;
        }
        rec.set_links(fib.links().await?);
        rec.set_underlay(underlay);
        rec.set_kernel(fib.routes().await?);

        let (inputs_tx, inputs_rx) = watch::channel(Arc::new(Inputs::default()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let installed = Arc::new(ArcSwap::from_pointee(BTreeMap::new()));
        let stats = Arc::new(ArcSwap::from_pointee(Stats::default()));
        let driver = Driver {
            fib,
            rec,
            settings,
            manage,
            tunnel_address: None,
            tunnel_dirty: false,
            installed: installed.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(driver.run(inputs_rx, cmd_rx));
        Ok(Installer {
            inputs: inputs_tx,
            commands: cmd_tx,
            installed,
            stats,
            task,
        })
    }

    /// The latest inputs; the difference is applied promptly, bursts coalesce.
    pub fn set_inputs(&self, inputs: Inputs) {
        self.inputs.send_replace(Arc::new(inputs));
    }

    /// Initial convergence reached: routes of ours that are not desired may now go.
    pub fn converged(&self) {
        let _ = self.commands.send(Command::Converged);
    }

    /// The routes in the kernel right now exactly as ipipd wants them.
    pub fn installed(&self) -> Arc<BTreeMap<IpNet, Route>> {
        self.installed.load_full()
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
    TunnelSpec {
        name: settings.tunnel.clone(),
        mtu: settings
            .tunnel_mtu
            .or_else(|| underlay_mtu.map(|m| m.saturating_sub(IPIP_OVERHEAD))),
        address,
    }
}

struct Driver<F> {
    fib: F,
    rec: Reconciler,
    settings: Settings,
    manage: bool,
    /// The tunnel address last put in place.
    tunnel_address: Option<Ipv4Addr>,
    /// The device needs another look even if the address did not change.
    tunnel_dirty: bool,
    installed: Arc<ArcSwap<BTreeMap<IpNet, Route>>>,
    stats: Arc<ArcSwap<Stats>>,
}

impl<F: Fib> Driver<F> {
    async fn run(
        mut self,
        mut inputs: watch::Receiver<Arc<Inputs>>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut resync = tokio::time::interval_at(Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // When set: reconcile at that instant (debounced event-driven work).
        let mut due: Option<Instant> = None;
        // What is due then is a full read of the kernel, not just a comparison.
        let mut resync_due = false;
        let mut inputs_open = true;
        loop {
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::Converged) => {
                        // Inputs set before `converged()` must count: without them
                        // everything would look stale.
                        if inputs_open && inputs.has_changed().unwrap_or(false) {
                            self.take_inputs(&mut inputs).await;
                        }
                        self.rec.converge();
                        self.pass().await;
                    }
                    Some(Command::Stop { flush, done }) => {
                        let result = if flush { self.flush().await } else { Ok(()) };
                        let _ = done.send(result);
                        return;
                    }
                    // The handle was dropped without stop: keep the routes, as stop does.
                    None => return,
                },
                changed = inputs.changed(), if inputs_open => {
                    if changed.is_err() {
                        inputs_open = false;
                        continue;
                    }
                    self.take_inputs(&mut inputs).await;
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
                    resync_due |= reaction.resync;
                    if reaction.resync || reaction.reconcile || reaction.tunnel {
                        due.get_or_insert_with(|| Instant::now() + DEBOUNCE);
                    }
                }
            }
        }
    }

    async fn take_inputs(&mut self, inputs: &mut watch::Receiver<Arc<Inputs>>) {
        let latest = Arc::clone(&inputs.borrow_and_update());
        self.rec.set_inputs(latest);
        self.tunnel().await;
    }

    /// Compare and write once.
    async fn pass(&mut self) {
        let ops = self.rec.plan();
        if !ops.is_empty() {
            let results = self.fib.apply(&ops).await;
            if self.rec.record(&ops, results) {
                // Some outcomes are unknown: read the truth back and go again.
                self.resync_only().await;
                let ops = self.rec.plan();
                let results = self.fib.apply(&ops).await;
                self.rec.record(&ops, results);
            }
        }
        self.publish();
    }

    fn publish(&self) {
        self.installed.store(Arc::new(self.rec.installed()));
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

    async fn read_kernel(&mut self) -> Result<(), FibError> {
        let underlay = self.fib.underlay(self.settings.node_address).await?;
        self.rec.set_underlay(underlay);
        self.rec.set_links(self.fib.links().await?);
        self.rec.set_kernel(self.fib.routes().await?);
        Ok(())
    }

    /// The full comparison: read everything back, fix the tunnel, write the difference.
    async fn resync(&mut self) {
        self.resync_only().await;
        self.tunnel_dirty = true;
        self.tunnel().await;
        self.pass().await;
    }

    /// Keep the tunnel device right; its address follows the first own IPv4 block.
    async fn tunnel(&mut self) {
        if !self.manage {
            return;
        }
        let want = tunnel_address(self.rec.inputs());
        if !self.tunnel_dirty && (want.is_none() || want == self.tunnel_address) {
            return;
        }
        let mtu = self.rec.underlay().map(|u| u.mtu);
        let spec = tunnel_spec(&self.settings, mtu, want);
        match self.fib.ensure_tunnel(&spec).await {
            Ok(()) => {
                self.tunnel_address = want;
                self.tunnel_dirty = false;
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
    }

    async fn flush(&mut self) -> Result<(), FibError> {
        self.rec.set_links(self.fib.links().await?);
        self.rec.set_kernel(self.fib.routes().await?);
        let ops = self.rec.flush_plan();
        let results = self.fib.apply(&ops).await;
        self.rec.record(&ops, results);
        self.publish();
        Ok(())
    }
}

#[cfg(test)]
#[path = "installer_tests.rs"]
mod tests;
