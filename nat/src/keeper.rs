//! The task that keeps ipipd's table as desired: applies each new desired state, and
//! reads the kernel back and repairs what another actor changed whenever the ruleset
//! changes (its change notifications) and every `interval` besides.
//!
//! The table is never removed on exit: a restarted ipipd finds it, and either adopts it
//! as it is or replaces it in one batch, so masquerading has no gap.

use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::desired::{Desired, Family};
use crate::monitor;
use crate::nft::Nft;
use crate::NatError;

/// What the keeper last saw and did, for `status` and `show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Families whose `ipipd` table is in the kernel.
    pub tables: Vec<Family>,
    /// The pools whose traffic is masqueraded (as desired).
    pub nat_pools: Vec<IpNet>,
    /// The kernel matches the desired state as of the last look.
    pub in_sync: bool,
    /// The last failure to read or write the table, cleared by the next success.
    pub last_error: Option<String>,
    /// Times the table was put back after something else changed it.
    pub repairs: u64,
}

/// The handle of the keeper task; dropping it stops the task and leaves the table.
pub struct Keeper {
    desired: watch::Sender<Desired>,
    status: watch::Receiver<Status>,
    task: JoinHandle<()>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long after a change notification the table is read: a burst of changes (one
/// batch of someone else's is several notifications) is looked at once, and a fight
/// with another actor rewriting the ruleset cannot spin faster than this.
const SETTLE: Duration = Duration::from_millis(50);
/// After a failure the keeper tries again this soon, then twice as late each time up
/// to the periodic interval: a transient error does not wait for the next look.
const FIRST_RETRY: Duration = Duration::from_secs(1);

struct Worker {
    nft: Option<Nft>,
    /// Woken after each change of the ruleset; None without notifications.
    monitor: Option<std::sync::Arc<tokio::sync::Notify>>,
    status: watch::Sender<Status>,
}

impl Keeper {
    /// Puts `desired` in place (returning once it is, or once that failed: the status
    /// says which), then keeps it so, looking every `interval`.
    pub async fn start(desired: Desired, interval: Duration) -> Keeper {
        let (status_tx, status) = watch::channel(Status::default());
        // Joined before the first look, so no change after it goes unnoticed.
        let monitor = monitor::start()
            .inspect_err(|e| {
                tracing::warn!(error = %error_text(e), ?interval, "no nftables change notifications: ipipd's table is checked periodically only");
            })
            .ok();
        let mut worker = Worker {
            nft: None,
            monitor,
            status: status_tx,
        };
        worker.reconcile(&desired, false);
        let (tx, rx) = watch::channel(desired);
        let task = tokio::spawn(worker.run(rx, interval));
        Keeper {
            desired: tx,
            status,
            task,
        }
    }

    /// A new desired state (a reload changed the pools); applied at once if it differs.
    pub fn set(&self, desired: Desired) {
        self.desired.send_if_modified(|d| {
            let changed = *d != desired;
            *d = desired;
            changed
        });
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }
}

impl Worker {
    async fn run(mut self, mut desired: watch::Receiver<Desired>, interval: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut retry = FIRST_RETRY;
        loop {
            let failing = self.status.borrow().last_error.is_some();
            if !failing {
                retry = FIRST_RETRY;
            }
            let repair = tokio::select! {
                r = desired.changed() => {
                    if r.is_err() {
                        return;
                    }
                    false
                }
                _ = tick.tick() => true,
                () = changed(self.monitor.as_deref()) => {
                    tokio::time::sleep(SETTLE).await;
                    true
                }
                () = tokio::time::sleep(retry), if failing => {
                    retry = (retry * 2).min(interval);
                    false
                }
            };
            let want = desired.borrow_and_update().clone();
            self.reconcile(&want, repair);
        }
    }

    /// Reads the kernel and writes what differs from `want`, in one batch.
    fn reconcile(&mut self, want: &Desired, repair: bool) {
        let result = self.try_reconcile(want);
        self.status.send_modify(|s| {
            s.nat_pools = want.nat_pools().copied().collect();
            match result {
                Ok((tables, wrote)) => {
                    if wrote && repair {
                        s.repairs += 1;
                        tracing::warn!(
                            tables = ?tables,
                            "ipipd's nftables table was changed by something else: put back"
                        );
                    }
                    if s.last_error.is_some() {
                        tracing::info!("ipipd's nftables table is in place again");
                    }
                    s.tables = tables;
                    s.in_sync = true;
                    s.last_error = None;
                }
                Err(e) => {
                    let text = error_text(&e);
                    if s.last_error.as_deref() != Some(&text) {
                        tracing::error!(error = %text, "programming outbound NAT (nftables table ipipd)");
                    }
                    s.in_sync = false;
                    s.last_error = Some(text);
                    // A socket left half-read is not reused.
                    self.nft = None;
                }
            }
        });
    }

    /// The families whose table is there afterwards, and whether anything was written.
    fn try_reconcile(&mut self, want: &Desired) -> Result<(Vec<Family>, bool), NatError> {
        let nft = match self.nft.take() {
            Some(n) => self.nft.insert(n),
            None => match Nft::open() {
                Ok(n) => self.nft.insert(n),
                // Without nf_tables there is no table to remove.
                Err(e) if want.tables.is_empty() && unsupported(&e) => return Ok((vec![], false)),
                Err(e) => return Err(e),
            },
        };
        let mut changes = Vec::new();
        let mut present = Vec::new();
        for family in Family::ALL {
            let table = want.table(family);
            let found = match nft.read(family) {
                Ok(found) => found,
                // A kernel without nf_tables (or without its ip6 family) has no table
                // of that family: nothing to do unless one is wanted.
                Err(e) if table.is_none() && unsupported(&e) => continue,
                Err(e) => return Err(e),
            };
            changes.extend(found.change(family, table));
            if table.is_some() {
                present.push(family);
            }
        }
        let wrote = !changes.is_empty();
        if wrote {
            nft.write(&changes)?;
        }
        Ok((present, wrote))
    }
}

/// Whether `e` says the kernel has no nf_tables (or not for this family).
fn unsupported(e: &NatError) -> bool {
    let errno = match e {
        NatError::Kernel { source, .. } | NatError::Socket { source, .. } => source.raw_os_error(),
        _ => None,
    };
    matches!(
        errno,
        Some(libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::EOPNOTSUPP | libc::EINVAL)
    )
}

/// The next ruleset change; never, without notifications.
async fn changed(monitor: Option<&tokio::sync::Notify>) {
    match monitor {
        Some(m) => m.notified().await,
        None => std::future::pending().await,
    }
}

/// The error with its causes, on one line.
fn error_text(e: &NatError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
