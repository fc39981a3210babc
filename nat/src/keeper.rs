//! The task that keeps ipipd's table as desired: applies each new desired state, and
//! every `interval` reads the kernel back and repairs what another actor changed.
//!
//! The table is never removed on exit: a restarted ipipd finds it, and either adopts it
//! as it is or replaces it in one batch, so masquerading has no gap.

use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::desired::{Desired, Family};
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

struct Worker {
    nft: Option<Nft>,
    status: watch::Sender<Status>,
}

impl Keeper {
    /// Puts `desired` in place (returning once it is, or once that failed: the status
    /// says which), then keeps it so, looking every `interval`.
    pub async fn start(desired: Desired, interval: Duration) -> Keeper {
        let (status_tx, status) = watch::channel(Status::default());
        let mut worker = Worker {
            nft: None,
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

    /// Waits until the status satisfies `f` (for tests and the daemon's start).
    pub async fn wait_for(&self, f: impl FnMut(&Status) -> bool) {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(f).await;
    }
}

impl Worker {
    async fn run(mut self, mut desired: watch::Receiver<Desired>, interval: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let repair = tokio::select! {
                r = desired.changed() => {
                    if r.is_err() {
                        return;
                    }
                    false
                }
                _ = tick.tick() => true,
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
        let nft = match &mut self.nft {
            Some(n) => n,
            None => self.nft.insert(Nft::open()?),
        };
        let mut stale = Desired::default();
        let mut remove = Vec::new();
        let mut present = Vec::new();
        for family in Family::ALL {
            let found = nft.read(family)?;
            let table = want.table(family);
            if !found.is(table) {
                match table {
                    Some(t) => stale.tables.push(t.clone()),
                    None => remove.push(family),
                }
            }
            if table.is_some() {
                present.push(family);
            }
        }
        let wrote = !stale.tables.is_empty() || !remove.is_empty();
        if wrote {
            nft.apply(&stale, &remove)?;
        }
        Ok((present, wrote))
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
