//! Change notifications of the ruleset: the kernel multicasts every committed nf_tables
//! change (ours and everyone else's) to the `NFNLGRP_NFTABLES` group, so a table another
//! actor deletes is noticed at once rather than at the next periodic look.
//!
//! A thread of its own waits on the socket (a blocking read needs no unsafe registration
//! with tokio's reactor) and wakes the keeper; what changed is read from the kernel
//! afterwards, not from the notifications. The socket belongs to the network namespace
//! it was opened in, whichever thread reads it.

use std::io;
use std::sync::{Arc, Weak};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use tokio::sync::Notify;

use crate::NatError;

const NFNLGRP_NFTABLES: u32 = 7;
const RECV_BUF: usize = 64 * 1024;

/// Starts watching; the returned `Notify` is woken after each change (a burst of them
/// leaves one wake-up). The thread ends at the first change after the `Notify` is
/// dropped, or when the socket fails (the keeper then relies on its periodic look).
pub(crate) fn start() -> Result<Arc<Notify>, NatError> {
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(NatError::socket("open"))?;
    socket.bind_auto().map_err(NatError::socket("bind"))?;
    socket
        .add_membership(NFNLGRP_NFTABLES)
        .map_err(NatError::socket("join NFNLGRP_NFTABLES"))?;
    let notify = Arc::new(Notify::new());
    let weak = Arc::downgrade(&notify);
    std::thread::Builder::new()
        .name("nft-monitor".into())
        .spawn(move || watch(&socket, &weak))
        .map_err(NatError::socket("start the monitor thread"))?;
    Ok(notify)
}

fn watch(socket: &Socket, keeper: &Weak<Notify>) {
    let mut buf = Vec::with_capacity(RECV_BUF);
    loop {
        buf.clear();
        match socket.recv(&mut buf, 0) {
            // An overrun lost notifications: a change all the same.
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "nftables change notifications stopped: ipipd's table is checked periodically only");
                return;
            }
        }
        let Some(notify) = keeper.upgrade() else {
            return;
        };
        notify.notify_one();
    }
}
