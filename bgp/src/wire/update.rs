//! UPDATE message (RFC 4271 §4.3) and its error handling (RFC 7606).
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//!
//! # RFC 7606 handling
//!
//! Three outcomes: **reset** (decode returns the NOTIFICATION to send), **withdraw**
//! ("treat-as-withdraw": [`Outcome::TreatAsWithdraw`], every NLRI of the UPDATE — NLRI
//! field and MP_REACH_NLRI — is to be withdrawn, besides the withdrawals it carries),
//! **discard** ("attribute discard": [`Outcome::Discarded`], the attribute is left out
//! and the UPDATE is used). When several findings apply the strongest wins; all findings
//! are listed in the outcome.
//!
//! | what | where | outcome |
//! |---|---|---|
//! | Withdrawn Routes Length or Total Path Attribute Length past the message | RFC 7606 §3 (RFC 4271 §6.3) | reset 3/1 |
//! | Withdrawn Routes or NLRI field syntactically incorrect (prefix length > 32, or the last prefix cut short) | RFC 7606 §5.3 | reset 3/10 |
//! | MP_REACH_NLRI / MP_UNREACH_NLRI NLRI syntactically incorrect (> 32 / > 128, cut short) | RFC 7606 §5.3 | reset 3/10 |
//! | MP_REACH_NLRI / MP_UNREACH_NLRI too short for its fixed fields, or a next hop length that does not fit the AFI (IPv4: 4, 16, 32; IPv6: 16, 32) | RFC 7606 §7.11, §5.3 | reset 3/9, data = the attribute (RFC 4760 §7) |
//! | MP_REACH_NLRI or MP_UNREACH_NLRI appears twice | RFC 7606 §3 | reset 3/1 |
//! | unrecognized attribute without the Optional bit | RFC 4271 §6.3 | reset 3/2, data = the attribute |
//! | attribute header or value running past the Total Path Attribute Length | RFC 7606 §4 | withdraw; the NLRI field is found from the Total Path Attribute Length; attributes after the error are not read |
//! | Optional/Transitive flags wrong for a known attribute | RFC 7606 §3 | withdraw (AS4_PATH, AS4_AGGREGATOR: discard, RFC 6793 §6) |
//! | any other attribute repeated | RFC 7606 §3 | the first is kept, the others discarded |
//! | ORIGIN length ≠ 1 or value > 2 | RFC 7606 §7.1 | withdraw |
//! | AS_PATH malformed: unknown segment type, segment length 0, overrun, one stray octet | RFC 7606 §7.2 | withdraw |
//! | AS_PATH with confederation segments from an eBGP peer (`ctx.ebgp`) | RFC 7606 §7.2, RFC 5065 §5 | withdraw |
//! | NEXT_HOP length ≠ 4 | RFC 7606 §7.3 | withdraw |
//! | NEXT_HOP 0.0.0.0, 255.255.255.255 or multicast, with IPv4 NLRI present | RFC 7606 §7.3 ("semantically incorrect") | withdraw |
//! | MULTI_EXIT_DISC length ≠ 4 | RFC 7606 §7.4 | withdraw |
//! | LOCAL_PREF from an eBGP peer | RFC 7606 §7.5 | discard |
//! | LOCAL_PREF length ≠ 4 (iBGP) | RFC 7606 §7.5 | withdraw |
//! | ATOMIC_AGGREGATE length ≠ 0 | RFC 7606 §7.6 | discard |
//! | AGGREGATOR length ≠ 6 (2-octet session) or 8 (4-octet session) | RFC 7606 §7.7 | discard |
//! | COMMUNITIES length not a non-zero multiple of 4 | RFC 7606 §7.8 | withdraw |
//! | ORIGINATOR_ID from an eBGP peer | RFC 7606 §7.9 | discard |
//! | ORIGINATOR_ID length ≠ 4 | RFC 7606 §7.9 | withdraw |
//! | CLUSTER_LIST from an eBGP peer | RFC 7606 §7.10 | discard |
//! | CLUSTER_LIST length not a non-zero multiple of 4 | RFC 7606 §7.10 | withdraw |
//! | MP_REACH_NLRI / MP_UNREACH_NLRI of an AFI/SAFI other than IPv4/IPv6 unicast | RFC 4760 §7 (not negotiated) | discard |
//! | EXTENDED_COMMUNITIES length not a non-zero multiple of 8 | RFC 7606 §7.14 | withdraw |
//! | AS4_PATH malformed (as AS_PATH, or empty, or with confederation segments) | RFC 6793 §6 | discard |
//! | AS4_AGGREGATOR length ≠ 8 | RFC 6793 §6 | discard |
//! | AS4_PATH / AS4_AGGREGATOR from a 4-octet AS peer | RFC 6793 §6 | discard |
//! | LARGE_COMMUNITY length not a non-zero multiple of 12 | RFC 8092 (RFC 7606 style) | withdraw |
//! | unknown optional transitive attribute | RFC 4271 §5 | kept in [`Attributes::unknown`] with Partial set, passed on |
//! | unknown optional non-transitive attribute | RFC 4271 §5 | dropped silently; in an UPDATE with nothing else, recorded as discarded so it is not taken for End-of-RIB |
//! | ORIGIN or AS_PATH missing while the UPDATE carries NLRI (field or MP_REACH_NLRI) | RFC 7606 §3 | withdraw |
//! | NEXT_HOP missing while the NLRI field is not empty | RFC 7606 §3, RFC 4760 §3 | withdraw |
//! | LOCAL_PREF missing on iBGP | RFC 7606 §3 | nothing: treated as absent (best path uses the default) |
//! | attributes but no NLRI, no MP_REACH_NLRI, no MP_UNREACH_NLRI | RFC 7606 §3 | accepted, nothing to do |
//!
//! Choices where RFC 7606 leaves room:
//!
//! - *Resets for NLRI and MP attributes use 3/10 and 3/9.* RFC 7606 §5.3 allows "session
//!   reset" or "AFI/SAFI disable"; ipipd has one or two families per session, so disabling a
//!   family is hardly milder than a reset and needs state the codec does not have. Bad
//!   prefixes are "Invalid Network Field" wherever they are (RFC 4271 §6.3); an MP
//!   attribute whose fixed part or next hop is broken is "Optional Attribute Error" with
//!   the attribute as data (RFC 4760 §7).
//! - *NEXT_HOP semantics.* Only addresses that can never be a next hop (unspecified,
//!   broadcast, multicast) are rejected here; "is it one of my addresses" and "is it on a
//!   connected network" are questions for the session, which knows. The check applies only
//!   when the NLRI field is used, since an UPDATE with only MP_REACH_NLRI ignores NEXT_HOP
//!   (RFC 4760 §3).
//! - *Attribute overrun.* RFC 7606 §4 mandates treat-as-withdraw. An MP_REACH_NLRI that
//!   would have come after the broken attribute cannot be found; its routes stay as they
//!   were, which is what the RFC accepts by choosing treat-as-withdraw for this case.
//!   Senders that follow RFC 7606 §5.1 (ipipd, BIRD) put MP_REACH_NLRI first, so with them
//!   it is always found.
//! - *Confederation segments from eBGP.* ipipd is not a confederation member, so such a
//!   path cannot be valid from an external peer.

use bytes::{BufMut, BytesMut};
use nom::number::complete::be_u16;

use super::attr_decode::{self, Findings};
use super::attribute::{AS_PATH, NEXT_HOP, ORIGIN};
use super::error::UpdateError;
use super::nlri::{self, Ip};
use super::{AfiSafi, Attributes, Context, MpUnreach, Nlri};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 unicast withdrawals (the Withdrawn Routes field).
    pub withdrawn: Vec<Nlri>,
    pub attributes: Attributes,
    /// IPv4 unicast announcements (the NLRI field).
    pub nlri: Vec<Nlri>,
    /// What decode did under RFC 7606; Outcome::Accepted when built locally. Ignored by encode.
    pub outcome: Outcome,
}

/// The RFC 7606 verdict on a decoded UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Accepted,
    /// Use the UPDATE; the listed attributes were left out of [`Update::attributes`].
    Discarded(Vec<AttrError>),
    /// Withdraw every NLRI the UPDATE announces ([`Update::nlri`] and the MP_REACH_NLRI
    /// ones), as well as what it withdraws. Lists every finding, discards included.
    TreatAsWithdraw(Vec<AttrError>),
}

/// One RFC 7606 finding: which attribute type code and why (a short static reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrError {
    pub type_code: u8,
    pub reason: &'static str,
}

impl std::fmt::Display for AttrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "attribute {}: {}", self.type_code, self.reason)
    }
}

impl Findings {
    fn into_outcome(self) -> Outcome {
        if self.withdraw {
            Outcome::TreatAsWithdraw(self.errors)
        } else if self.errors.is_empty() {
            Outcome::Accepted
        } else {
            Outcome::Discarded(self.errors)
        }
    }
}

impl Update {
    /// The End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an
    /// MP_UNREACH_NLRI without withdrawals for other families.
    pub fn end_of_rib(f: AfiSafi) -> Update {
        if f == AfiSafi::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: Attributes {
                mp_unreach: Some(MpUnreach {
                    afi_safi: f,
                    withdrawn: Vec::new(),
                }),
                ..Attributes::default()
            },
            ..Update::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    ///
    /// An UPDATE whose attributes were malformed is never one, even when nothing is left
    /// of them: taking it for End-of-RIB would flush a restarting peer's stale routes.
    pub fn end_of_rib_family(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.outcome != Outcome::Accepted
        {
            return None;
        }
        match &self.attributes.mp_unreach {
            None if self.attributes == Attributes::default() => Some(AfiSafi::IPV4_UNICAST),
            Some(mp) if mp.withdrawn.is_empty() => {
                let rest = Attributes {
                    mp_unreach: None,
                    ..self.attributes.clone()
                };
                (rest == Attributes::default()).then_some(mp.afi_safi)
            }
            _ => None,
        }
    }

    /// Whether decode decided this UPDATE's announcements are to be withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        matches!(self.outcome, Outcome::TreatAsWithdraw(_))
    }
}

fn split_field(i: &[u8]) -> Result<(&[u8], &[u8]), UpdateError> {
    let (i, len) = be_u16::<_, ()>(i)
        .map_err(|_| UpdateError::MalformedAttributeList("length field cut short"))?;
    i.split_at_checked(usize::from(len))
        .ok_or(UpdateError::MalformedAttributeList(
            "length runs past the message",
        ))
}

pub(super) fn decode(body: &[u8], ctx: &Context) -> Result<Update, UpdateError> {
    let (withdrawn_field, rest) = split_field(body)?;
    let (attr_field, nlri_field) = split_field(rest)?;
    let add_path = ctx.add_path_rx.ipv4;
    let withdrawn = nlri::decode_list(withdrawn_field, Ip::V4, add_path)
        .map_err(|_| UpdateError::InvalidNetworkField)?;
    let nlri = nlri::decode_list(nlri_field, Ip::V4, add_path)
        .map_err(|_| UpdateError::InvalidNetworkField)?;

    let mut f = Findings::default();
    let (attributes, seen) = attr_decode::decode_all(attr_field, ctx, &mut f)?;
    if let Some(code) = seen.ignored {
        // Nothing else left: without a note the UPDATE would read as End-of-RIB, which
        // it is not (that one has no attributes, or MP_UNREACH_NLRI alone).
        let bare = Update {
            attributes: attributes.clone(),
            ..Update::default()
        };
        if withdrawn.is_empty() && nlri.is_empty() && bare.end_of_rib_family().is_some() {
            f.discard(code, "unknown optional non-transitive attribute ignored");
        }
    }

    let mp_nlri = attributes
        .mp_reach
        .as_ref()
        .is_some_and(|mp| !mp.nlri.is_empty());
    if !nlri.is_empty() || mp_nlri {
        for code in [ORIGIN, AS_PATH] {
            if !seen.has(code) {
                f.withdraw(code, "missing well-known mandatory attribute");
            }
        }
    }
    if !nlri.is_empty() {
        if !seen.has(NEXT_HOP) {
            f.withdraw(NEXT_HOP, "missing well-known mandatory attribute");
        } else if let Some(nh) = attributes.next_hop {
            if nh.is_unspecified() || nh.is_broadcast() || nh.is_multicast() {
                f.withdraw(NEXT_HOP, "NEXT_HOP is not a unicast address");
            }
        }
    }

    Ok(Update {
        withdrawn,
        attributes,
        nlri,
        outcome: f.into_outcome(),
    })
}

/// Writes a two-octet length placeholder and returns its position.
fn begin_len(out: &mut BytesMut) -> usize {
    out.put_u16(0);
    out.len()
}

fn end_len(out: &mut BytesMut, at: usize) {
    let len = u16::try_from(out.len().saturating_sub(at)).unwrap_or(u16::MAX);
    if let Some(field) = out.get_mut(at.saturating_sub(2)..at) {
        field.copy_from_slice(&len.to_be_bytes());
    }
}

/// Only IPv4 prefixes can be written in the Withdrawn Routes and NLRI fields; other
/// prefixes there are left out.
pub(super) fn encode(u: &Update, ctx: &Context, out: &mut BytesMut) {
    let add_path = ctx.add_path_tx.ipv4;
    let at = begin_len(out);
    nlri::encode_list(&u.withdrawn, Ip::V4, add_path, out);
    end_len(out, at);
    let at = begin_len(out);
    u.attributes.encode(ctx, out);
    end_len(out, at);
    nlri::encode_list(&u.nlri, Ip::V4, add_path, out);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#[path = "update_tests.rs"]
mod tests;

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#[path = "update_as4_tests.rs"]
mod as4_tests;
