//! The nf_tables requests ipipd sends: its table built whole, removed, and read back.
//!
//! Attribute numbers are those of `include/uapi/linux/netfilter/nf_tables.h`.

use crate::desired::{Element, Family, Table, ALL_SET, CHAIN, NAT_SET, RULE_COMMENT, TABLE};
use crate::wire::{Buf, Msg, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};

const NFTA_TABLE_NAME: u16 = 1;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_POST_ROUTING: u32 = 4;
/// `srcnat`, where masquerading belongs.
const NF_IP_PRI_NAT_SRC: i32 = 100;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_INTERVAL: u32 = 0x4;
/// nft's data types `ipv4_addr` and `ipv6_addr`: only `nft list` reads them.
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;

pub(crate) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(crate) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(crate) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_LIST_SET_ID: u16 = 4;
pub(crate) const NFTA_LIST_ELEM: u16 = 1;
pub(crate) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(crate) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(crate) const NFTA_DATA_VALUE: u16 = 1;
pub(crate) const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;

pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(crate) const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFT_LOOKUP_F_INV: u32 = 0x1;
/// The first 16-byte register: room for an IPv6 address.
const NFT_REG_1: u32 = 1;
/// libnftnl's rule user data: type-length-value, type 0 a comment (NUL included).
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

const NAT_SET_ID: u32 = 1;
const ALL_SET_ID: u32 = 2;

impl Family {
    /// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
    pub(crate) fn nfproto(self) -> u8 {
        match self {
            Family::V4 => 2,
            Family::V6 => 10,
        }
    }

    /// Where the source and destination addresses sit in the network header.
    fn addr_offsets(self) -> (u32, u32) {
        match self {
            Family::V4 => (12, 16),
            Family::V6 => (8, 24),
        }
    }

    fn key_type(self) -> u32 {
        match self {
            Family::V4 => TYPE_IPADDR,
            Family::V6 => TYPE_IP6ADDR,
        }
    }
}

/// What each message of a batch asks, for error messages.
pub(crate) type Labels = Vec<(u32, String)>;

/// A batch under construction: every message asks for an acknowledgement, so each one's
/// outcome is known.
pub(crate) struct Batch {
    pub buf: Buf,
    pub labels: Labels,
    seq: u32,
}

impl Batch {
    pub fn new(seq: u32) -> Batch {
        let mut buf = Buf::default();
        buf.batch(true, seq);
        Batch {
            buf,
            labels: Vec::new(),
            seq: seq.wrapping_add(1),
        }
    }

    /// Closes the batch; returns the sequence number of its last acknowledged message.
    pub fn finish(mut self) -> (Vec<u8>, Labels, u32) {
        let last = self.seq.wrapping_sub(1);
        self.buf.batch(false, self.seq);
        (self.buf.bytes, self.labels, last)
    }

    fn msg(&mut self, msg: Msg, flags: u16, family: Family, label: String) {
        self.buf.begin(
            msg.kind(),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            self.seq,
            family.nfproto(),
            0,
        );
        self.labels.push((self.seq, label));
        self.seq = self.seq.wrapping_add(1);
    }

    /// Deletes the family's table if there is one: an add (a no-op when it exists)
    /// then a delete, so the batch never fails for a table already gone.
    pub fn remove(&mut self, family: Family) {
        self.table(family);
        self.msg(
            Msg::DelTable,
            0,
            family,
            format!("delete table {family} {TABLE}"),
        );
        self.buf.str(NFTA_TABLE_NAME, TABLE);
        self.buf.end();
    }

    fn table(&mut self, family: Family) {
        self.msg(
            Msg::NewTable,
            NLM_F_CREATE,
            family,
            format!("add table {family} {TABLE}"),
        );
        self.buf.str(NFTA_TABLE_NAME, TABLE);
        self.buf.end();
    }

    /// Replaces the family's table, whatever it holds now, with `want`: in the same
    /// batch as the removal, so the kernel switches from the old to the new at once.
    pub fn replace(&mut self, want: &Table) {
        let family = want.family;
        self.remove(family);
        self.table(family);

        self.msg(
            Msg::NewChain,
            NLM_F_CREATE,
            family,
            format!("add chain {family} {TABLE} {CHAIN}"),
        );
        self.buf.str(NFTA_CHAIN_TABLE, TABLE);
        self.buf.str(NFTA_CHAIN_NAME, CHAIN);
        self.buf.nest(NFTA_CHAIN_HOOK);
        self.buf.be32(NFTA_HOOK_HOOKNUM, NF_INET_POST_ROUTING);
        self.buf
            .attr(NFTA_HOOK_PRIORITY, &NF_IP_PRI_NAT_SRC.to_be_bytes());
        self.buf.end();
        self.buf.str(NFTA_CHAIN_TYPE, "nat");
        self.buf.end();

        for (name, id, elements) in [
            (NAT_SET, NAT_SET_ID, want.nat_elements()),
            (ALL_SET, ALL_SET_ID, want.all_elements()),
        ] {
            self.set(family, name, id, &elements);
        }
        self.rule(family);
    }

    /// Replaces the elements of one of the table's sets: a flush (a delete naming no
    /// element) and the new elements, which the batch applies together.
    pub fn refill(&mut self, family: Family, name: &str, elements: &[Element]) {
        self.msg(
            Msg::DelSetElem,
            0,
            family,
            format!("flush set {family} {TABLE} {name}"),
        );
        self.buf.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.buf.str(NFTA_SET_ELEM_LIST_SET, name);
        self.buf.end();
        self.elements(family, name, None, elements);
    }

    fn set(&mut self, family: Family, name: &str, id: u32, elements: &[Element]) {
        self.msg(
            Msg::NewSet,
            NLM_F_CREATE,
            family,
            format!("add set {family} {TABLE} {name}"),
        );
        self.buf.str(NFTA_SET_TABLE, TABLE);
        self.buf.str(NFTA_SET_NAME, name);
        self.buf.be32(NFTA_SET_FLAGS, NFT_SET_INTERVAL);
        self.buf.be32(NFTA_SET_KEY_TYPE, family.key_type());
        self.buf.be32(NFTA_SET_KEY_LEN, family.addr_len() as u32);
        self.buf.be32(NFTA_SET_ID, id);
        self.buf.end();
        self.elements(family, name, Some(id), elements);
    }

    /// Adds elements to a set; `id` names a set made in the same batch.
    fn elements(&mut self, family: Family, name: &str, id: Option<u32>, elements: &[Element]) {
        if elements.is_empty() {
            return;
        }
        self.msg(
            Msg::NewSetElem,
            NLM_F_CREATE,
            family,
            format!("add element {family} {TABLE} {name}"),
        );
        self.buf.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.buf.str(NFTA_SET_ELEM_LIST_SET, name);
        if let Some(id) = id {
            self.buf.be32(NFTA_SET_ELEM_LIST_SET_ID, id);
        }
        self.buf.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        for e in elements {
            self.buf.nest(NFTA_LIST_ELEM);
            self.buf.nest(NFTA_SET_ELEM_KEY);
            self.buf.attr(NFTA_DATA_VALUE, &e.key);
            self.buf.end();
            if e.end {
                self.buf
                    .be32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
            }
            self.buf.end();
        }
        self.buf.end();
        self.buf.end();
    }

    /// `ip saddr @nat-pools ip daddr != @all-pools masquerade`
    fn rule(&mut self, family: Family) {
        self.msg(
            Msg::NewRule,
            NLM_F_CREATE | NLM_F_APPEND,
            family,
            format!("add rule {family} {TABLE} {CHAIN} masquerade"),
        );
        self.buf.str(NFTA_RULE_TABLE, TABLE);
        self.buf.str(NFTA_RULE_CHAIN, CHAIN);
        self.buf.nest(NFTA_RULE_EXPRESSIONS);
        let (saddr, daddr) = family.addr_offsets();
        let len = family.addr_len() as u32;
        self.payload(saddr, len);
        self.lookup(NAT_SET, NAT_SET_ID, false);
        self.payload(daddr, len);
        self.lookup(ALL_SET, ALL_SET_ID, true);
        self.expr("masq");
        self.buf.end();
        self.buf.end();
        self.buf.attr(NFTA_RULE_USERDATA, &comment());
        self.buf.end();
    }

    fn expr(&mut self, name: &str) {
        self.buf.nest(NFTA_LIST_ELEM);
        self.buf.str(NFTA_EXPR_NAME, name);
    }

    fn payload(&mut self, offset: u32, len: u32) {
        self.expr("payload");
        self.buf.nest(NFTA_EXPR_DATA);
        self.buf.be32(NFTA_PAYLOAD_DREG, NFT_REG_1);
        self.buf.be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
        self.buf.be32(NFTA_PAYLOAD_OFFSET, offset);
        self.buf.be32(NFTA_PAYLOAD_LEN, len);
        self.buf.end();
        self.buf.end();
    }

    fn lookup(&mut self, set: &str, id: u32, invert: bool) {
        self.expr("lookup");
        self.buf.nest(NFTA_EXPR_DATA);
        self.buf.str(NFTA_LOOKUP_SET, set);
        self.buf.be32(NFTA_LOOKUP_SET_ID, id);
        self.buf.be32(NFTA_LOOKUP_SREG, NFT_REG_1);
        if invert {
            self.buf.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
        }
        self.buf.end();
        self.buf.end();
    }
}

/// The rule's user data: its comment as libnftnl encodes one.
pub(crate) fn comment() -> Vec<u8> {
    let mut v = vec![NFTNL_UDATA_RULE_COMMENT, (RULE_COMMENT.len() + 1) as u8];
    v.extend_from_slice(RULE_COMMENT.as_bytes());
    v.push(0);
    v
}

/// A request outside a batch: get the table, dump the chain's rules, dump a set.
pub(crate) enum Query<'a> {
    Table,
    Rules,
    Elements(&'a str),
}

pub(crate) fn query(q: &Query<'_>, family: Family, seq: u32) -> Vec<u8> {
    let mut buf = Buf::default();
    let (msg, flags) = match q {
        Query::Table => (Msg::GetTable, 0),
        Query::Rules => (Msg::GetRule, NLM_F_DUMP),
        Query::Elements(_) => (Msg::GetSetElem, NLM_F_DUMP),
    };
    buf.begin(
        msg.kind(),
        NLM_F_REQUEST | NLM_F_ACK | flags,
        seq,
        family.nfproto(),
        0,
    );
    match q {
        Query::Table => buf.str(NFTA_TABLE_NAME, TABLE),
        Query::Rules => {
            buf.str(NFTA_RULE_TABLE, TABLE);
            buf.str(NFTA_RULE_CHAIN, CHAIN);
        }
        Query::Elements(set) => {
            buf.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
            buf.str(NFTA_SET_ELEM_LIST_SET, set);
        }
    }
    buf.end();
    buf.bytes
}
