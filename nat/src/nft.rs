//! Talking nf_tables to the kernel: a netfilter netlink socket, batches sent whole,
//! ipipd's table read back.
//!
//! The kernel runs a batch inside the `sendmsg` that carries it and a dump fills the
//! socket inside `recvmsg`, so every answer is queued by the time we read: reads never
//! wait (`MSG_DONTWAIT`), and nothing here blocks a task.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use crate::desired::{Desired, Element, Family, Table, ALL_SET, NAT_SET};
use crate::messages::{
    comment, query, Batch, Labels, Query, NFTA_DATA_VALUE, NFTA_LIST_ELEM, NFTA_RULE_USERDATA,
    NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_LIST_ELEMENTS, NFT_SET_ELEM_INTERVAL_END,
};
use crate::wire::{be32, frames, Attrs, Frame, NLMSG_DONE, NLMSG_ERROR};
use crate::NatError;

const RECV_BUF: usize = 64 * 1024;

/// What the kernel has of one family's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub table: bool,
    /// The user data of each rule of the chain (empty when the chain is gone).
    pub rules: Vec<Vec<u8>>,
    /// The sets' elements, sorted; `None` for a set that is not there.
    pub nat: Option<Vec<Element>>,
    pub all: Option<Vec<Element>>,
}

/// One change to the kernel's tables; [`Nft::write`] sends a list of them as one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Build the family's table whole, replacing whatever is there.
    Replace(Table),
    /// The table and its rule are right: give the sets that differ their elements.
    Refill { table: Table, nat: bool, all: bool },
    /// Remove the family's table if there is one.
    Remove(Family),
}

impl Found {
    /// What makes this `want` (`None`: no table), or nothing when it already is.
    pub fn change(&self, family: Family, want: Option<&Table>) -> Option<Change> {
        if self.is(want) {
            return None;
        }
        let Some(want) = want else {
            return Some(Change::Remove(family));
        };
        let sorted = |mut v: Vec<Element>| {
            v.sort();
            v
        };
        match (&self.nat, &self.all) {
            (Some(nat), Some(all)) if self.table && self.rules == [comment()] => {
                Some(Change::Refill {
                    table: want.clone(),
                    nat: *nat != sorted(want.nat_elements()),
                    all: *all != sorted(want.all_elements()),
                })
            }
            _ => Some(Change::Replace(want.clone())),
        }
    }

    /// Whether this is exactly `want` (`None`: no table at all).
    pub fn is(&self, want: Option<&Table>) -> bool {
        let Some(want) = want else {
            return !self.table;
        };
        let sorted = |mut v: Vec<Element>| {
            v.sort();
            Some(v)
        };
        self.table
            && self.rules == [comment()]
            && self.nat == sorted(want.nat_elements())
            && self.all == sorted(want.all_elements())
    }
}

/// A socket to nf_tables.
pub struct Nft {
    socket: Socket,
    seq: u32,
    rbuf: Vec<u8>,
}

impl Nft {
    pub fn open() -> Result<Nft, NatError> {
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(NatError::socket("open"))?;
        socket.bind_auto().map_err(NatError::socket("bind"))?;
        // Error answers without the request echoed inside.
        socket
            .set_cap_ack(true)
            .map_err(NatError::socket("NETLINK_CAP_ACK"))?;
        Ok(Nft {
            socket,
            // Answers come only to the socket that asked: sequence numbers need to be
            // distinct within one socket, which they are until they wrap.
            seq: 1,
            rbuf: Vec::with_capacity(RECV_BUF),
        })
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(n);
        seq
    }

    /// Makes the kernel's tables what `desired` says, in one batch: every family with a
    /// table gets it replaced whole; `remove` lists families whose table must go.
    pub fn apply(&mut self, desired: &Desired, remove: &[Family]) -> Result<(), NatError> {
        let changes: Vec<Change> = desired
            .tables
            .iter()
            .map(|t| Change::Replace(t.clone()))
            .chain(
                remove
                    .iter()
                    .filter(|f| desired.table(**f).is_none())
                    .map(|f| Change::Remove(*f)),
            )
            .collect();
        self.write(&changes)
    }

    /// Sends `changes` as one batch: the kernel applies all of them or none.
    pub fn write(&mut self, changes: &[Change]) -> Result<(), NatError> {
        let mut batch = Batch::new(self.next_seq(0));
        for c in changes {
            match c {
                Change::Replace(t) => batch.replace(t),
                Change::Remove(f) => batch.remove(*f),
                Change::Refill { table, nat, all } => {
                    if *nat {
                        batch.refill(table.family, NAT_SET, &table.nat_elements());
                    }
                    if *all {
                        batch.refill(table.family, ALL_SET, &table.all_elements());
                    }
                }
            }
        }
        if batch.labels.is_empty() {
            return Ok(());
        }
        let (bytes, labels, last) = batch.finish();
        self.next_seq(labels.len() as u32 + 2);
        self.drain();
        self.send(&bytes)?;
        self.acks(&labels, last)
    }

    /// What the kernel has of `family`'s table.
    pub fn read(&mut self, family: Family) -> Result<Found, NatError> {
        let table = !self.dump(&Query::Table, family)?.is_empty();
        if !table {
            return Ok(Found::default());
        }
        let rules = self
            .dump(&Query::Rules, family)?
            .iter()
            .map(|m| Attrs(m).get(NFTA_RULE_USERDATA).unwrap_or(&[]).to_vec())
            .collect();
        let mut elements = |set| -> Result<Option<Vec<Element>>, NatError> {
            match self.dump(&Query::Elements(set), family) {
                Ok(msgs) => {
                    let mut v: Vec<Element> = msgs.iter().flat_map(|m| parse_elements(m)).collect();
                    v.sort();
                    Ok(Some(v))
                }
                Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let nat = elements(NAT_SET)?;
        let all = elements(ALL_SET)?;
        Ok(Found {
            table,
            rules,
            nat,
            all,
        })
    }

    /// The payloads of the kernel's answer to one query; a table that is not there
    /// answers nothing.
    fn dump(&mut self, q: &Query<'_>, family: Family) -> Result<Vec<Vec<u8>>, NatError> {
        let seq = self.next_seq(1);
        self.drain();
        self.send(&query(q, family, seq))?;
        let mut out = Vec::new();
        loop {
            let data = self.recv()?;
            for f in frames(data) {
                if f.seq != seq {
                    continue;
                }
                match f.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        return match f.errno() {
                            0 => Ok(out),
                            libc::ENOENT if !matches!(q, Query::Elements(_)) => Ok(Vec::new()),
                            errno => Err(NatError::Kernel {
                                what: match q {
                                    Query::Table => "list the table".into(),
                                    Query::Rules => "list the rules".into(),
                                    Query::Elements(s) => format!("list set {s}"),
                                },
                                source: io::Error::from_raw_os_error(errno),
                            }),
                        }
                    }
                    _ => out.push(f.attributes().0.to_vec()),
                }
            }
        }
    }

    fn acks(&mut self, labels: &Labels, last: u32) -> Result<(), NatError> {
        loop {
            let data = self.recv()?;
            for f in frames(data) {
                if f.kind != NLMSG_ERROR {
                    continue;
                }
                match f.errno() {
                    0 if f.seq == last => return Ok(()),
                    0 => {}
                    errno => return Err(refused(&f, labels, errno)),
                }
            }
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NatError> {
        self.socket
            .send(bytes, 0)
            .map_err(NatError::socket("send"))?;
        Ok(())
    }

    /// The next datagram, which must already be there.
    fn recv(&mut self) -> Result<&[u8], NatError> {
        self.rbuf.clear();
        let n = loop {
            match self.socket.recv(&mut self.rbuf, libc::MSG_DONTWAIT) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NatError::Socket {
                        context: "the kernel did not answer",
                        source: e,
                    })
                }
                Err(e) => return Err(NatError::socket("recv")(e)),
            }
        };
        Ok(self.rbuf.get(..n).unwrap_or(&[]))
    }

    /// Drops answers left from a request that failed half-way.
    fn drain(&mut self) {
        while self.recv().is_ok() {}
    }
}

fn refused(f: &Frame<'_>, labels: &Labels, errno: i32) -> NatError {
    let what = labels.iter().find(|(s, _)| *s == f.seq).map_or_else(
        || "start the nftables batch".to_string(),
        |(_, l)| l.clone(),
    );
    NatError::Kernel {
        what,
        source: io::Error::from_raw_os_error(errno),
    }
}

/// The elements in the attributes of one `NFT_MSG_NEWSETELEM`.
fn parse_elements(attrs: &[u8]) -> Vec<Element> {
    let attrs = Attrs(attrs);
    let Some(list) = attrs.get(NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    Attrs(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .filter_map(|(_, elem)| {
            let key = Attrs(Attrs(elem).get(NFTA_SET_ELEM_KEY)?).get(NFTA_DATA_VALUE)?;
            let flags = Attrs(elem)
                .get(NFTA_SET_ELEM_FLAGS)
                .and_then(be32)
                .unwrap_or(0);
            Some(Element {
                key: key.to_vec(),
                end: flags & NFT_SET_ELEM_INTERVAL_END != 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::desired;
    use crate::wire::Msg;
    use proptest::prelude::*;

    /// The elements of the set messages in a batch, as the kernel would read them.
    fn elements_in(bytes: &[u8]) -> Vec<Element> {
        frames(bytes)
            .filter(|f| f.kind == Msg::NewSetElem.kind())
            .flat_map(|f| parse_elements(f.attributes().0))
            .collect()
    }

    proptest! {
        #[test]
        fn elements_written_read_back_equal(
            pools in proptest::collection::vec((any::<u32>(), 8u8..=32, any::<bool>()), 1..12),
        ) {
            let nets = pools.iter().map(|(a, len, nat)| {
                let net = ipnet::Ipv4Net::new((*a).into(), *len).map(|n| n.trunc());
                (ipnet::IpNet::V4(net.unwrap_or_default()), *nat)
            });
            let d = desired(nets);
            let Some(t) = d.table(Family::V4) else { return Ok(()) };
            let mut batch = Batch::new(1);
            batch.refill(Family::V4, NAT_SET, &t.nat_elements());
            let (bytes, _, _) = batch.finish();
            prop_assert_eq!(elements_in(&bytes), t.nat_elements());
        }

        #[test]
        fn any_answer_parses_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for f in frames(&bytes) {
                let _ = f.errno();
                let _ = parse_elements(f.attributes().0);
                let _ = Attrs(f.payload).get(NFTA_RULE_USERDATA);
            }
            let _ = parse_elements(&bytes);
        }
    }
}
