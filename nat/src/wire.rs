//! nf_tables netlink messages: building a batch, reading the kernel's answers.
//!
//! Each message is a netlink header, a `struct nfgenmsg` (family, version, resource id)
//! and attributes (`include/uapi/linux/netfilter/nf_tables.h`). Integers in nf_tables
//! attributes are big-endian; netlink headers and attribute headers are host order.
//!
//! ```text
//!  0               1               2               3
//! +---------------------------------------------------------------+
//! |                        nlmsg_len (u32)                        |
//! +-------------------------------+-------------------------------+
//! | type: subsys 10 << 8 | msg    |          nlmsg_flags          |
//! +-------------------------------+-------------------------------+
//! |                         nlmsg_seq                             |
//! |                         nlmsg_pid                             |
//! +---------------+---------------+-------------------------------+
//! | nfgen_family  | version (0)   |  res_id (be16)                |
//! +---------------+---------------+-------------------------------+
//! | attributes: nla_len (u16) | nla_type (u16) | value, padded to 4 ...
//! ```

pub(crate) const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;

pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(crate) const AF_UNSPEC: u8 = 0;

/// `enum nf_tables_msg_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    NewTable = 0,
    GetTable = 1,
    DelTable = 2,
    NewChain = 3,
    NewRule = 6,
    GetRule = 7,
    NewSet = 9,
    NewSetElem = 12,
    DelSetElem = 14,
    GetSetElem = 13,
}

impl Msg {
    pub fn kind(self) -> u16 {
        (NFNL_SUBSYS_NFTABLES << 8) | self as u16
    }
}

/// Messages laid end to end, as one `sendmsg` carries them.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    pub bytes: Vec<u8>,
    /// Offsets of the open message and nests; true for the message.
    open: Vec<(usize, bool)>,
}

impl Buf {
    /// Starts a message; close it with [`Buf::end`].
    pub fn begin(&mut self, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.open.push((self.bytes.len(), true));
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.push(family);
        self.bytes.push(0);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
    }

    /// A message with no attributes that opens (`begin = true`) or closes a batch.
    pub fn batch(&mut self, begin: bool, seq: u32) {
        let kind = if begin {
            NFNL_MSG_BATCH_BEGIN
        } else {
            NFNL_MSG_BATCH_END
        };
        self.begin(kind, NLM_F_REQUEST, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
        self.end();
    }

    /// Closes the innermost open message or nest: writes its length (32 bits in a
    /// message header, 16 in an attribute header).
    pub fn end(&mut self) {
        let Some((start, message)) = self.open.pop() else {
            return;
        };
        let len = self.bytes.len() - start;
        if message {
            if let Some(slot) = self.bytes.get_mut(start..start + 4) {
                slot.copy_from_slice(&(len as u32).to_ne_bytes());
            }
        } else if let Some(slot) = self.bytes.get_mut(start..start + 2) {
            slot.copy_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_ne_bytes());
        }
    }

    /// One attribute.
    pub fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.bytes
            .extend_from_slice(&(len.min(usize::from(u16::MAX)) as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    pub fn str(&mut self, kind: u16, value: &str) {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.attr(kind, &v);
    }

    pub fn be32(&mut self, kind: u16, value: u32) {
        self.attr(kind, &value.to_be_bytes());
    }

    /// Opens a nested attribute; close it with [`Buf::end`].
    pub fn nest(&mut self, kind: u16) {
        self.open.push((self.bytes.len(), false));
        self.bytes.extend_from_slice(&0u16.to_ne_bytes());
        self.bytes
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.bytes.len() & 3 != 0 {
            self.bytes.push(0);
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
pub(crate) fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// One netlink message of a datagram the kernel sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub kind: u16,
    pub seq: u32,
    /// After the netlink header (the nfgenmsg comes first for nf_tables messages).
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The errno of an `NLMSG_ERROR` (0: an acknowledgement).
    pub fn errno(&self) -> i32 {
        u32_at(self.payload, 0).map_or(0, |v| (v as i32).saturating_neg())
    }

    /// The attributes of an nf_tables message (after its nfgenmsg).
    pub fn attributes(&self) -> Attrs<'a> {
        Attrs(self.payload.get(NFGENMSG_LEN..).unwrap_or(&[]))
    }
}

/// The messages of a datagram, stopping at the first malformed header.
pub(crate) fn frames(mut buf: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    std::iter::from_fn(move || {
        let len = u32_at(buf, 0)? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let frame = Frame {
            kind: u16_at(buf, 4)?,
            seq: u32_at(buf, 8)?,
            payload: buf.get(NLMSG_HDRLEN..len)?,
        };
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(frame)
    })
}

/// Attributes: (type without the nested/byte-order flags, value).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs<'a>(pub &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let len = usize::from(u16_at(self.0, 0)?);
        let kind = u16_at(self.0, 2)? & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = self.0.get(4..len)?;
        self.0 = self.0.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, value))
    }
}

impl<'a> Attrs<'a> {
    /// The value of the first attribute of this type.
    pub fn get(self, kind: u16) -> Option<&'a [u8]> {
        self.into_iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_nest_lengths_are_written() {
        let mut b = Buf::default();
        b.begin(Msg::NewTable.kind(), NLM_F_REQUEST, 7, 2, 0);
        b.str(1, "ipipd");
        b.nest(4);
        b.be32(1, 4);
        b.end();
        b.end();
        let frame = frames(&b.bytes).next().expect("one message");
        assert_eq!(frame.kind, 0x0a00);
        assert_eq!(frame.seq, 7);
        assert_eq!(b.bytes.len(), 16 + 4 + 12 + 12);
        let attrs: Vec<_> = frame.attributes().collect();
        assert_eq!(attrs.first(), Some(&(1, &b"ipipd\0"[..])));
        let nested = attrs.get(1).expect("nest").1;
        assert_eq!(Attrs(nested).get(1), Some(&[0, 0, 0, 4][..]));
    }

    #[test]
    fn truncated_input_ends_the_walk() {
        assert_eq!(frames(&[20, 0, 0, 0, 1]).count(), 0);
        assert_eq!(Attrs(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(Attrs(&[2, 0, 1, 0]).count(), 0);
    }
}
