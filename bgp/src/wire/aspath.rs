//! AS_PATH (RFC 4271 §4.3 type code 2, confederation segments RFC 5065 §3) and AS4_PATH
//! (RFC 6793 §3), with the merge of RFC 6793 §4.2.3.
//!
//! Each path segment:
//!
//! ```text
//! +-----------------+-----------------+------------------------------+
//! | segment type    | segment length  | segment value                |
//! | (1 octet)       | (1 octet, ASes) | (2 or 4 octets per AS)       |
//! +-----------------+-----------------+------------------------------+
//! ```
//!
//! Segment types: 1 AS_SET, 2 AS_SEQUENCE, 3 AS_CONFED_SEQUENCE, 4 AS_CONFED_SET.
//! ASNs are 4 octets in AS_PATH between 4-octet speakers and always in AS4_PATH.

use bytes::{BufMut, BytesMut};
use nom::number::complete::{be_u16, be_u32, be_u8};

/// The 2-octet stand-in for an AS number that does not fit (RFC 6793 §9).
pub const AS_TRANS: u16 = 23456;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

impl SegmentKind {
    fn from_u8(v: u8) -> Option<SegmentKind> {
        Some(match v {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return None,
        })
    }

    fn to_u8(self) -> u8 {
        match self {
            SegmentKind::Set => 1,
            SegmentKind::Sequence => 2,
            SegmentKind::ConfedSequence => 3,
            SegmentKind::ConfedSet => 4,
        }
    }

    pub fn is_confed(self) -> bool {
        matches!(self, SegmentKind::ConfedSequence | SegmentKind::ConfedSet)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

impl AsSegment {
    /// Contribution to the path length (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3).
    fn path_len(&self) -> usize {
        match self.kind {
            SegmentKind::Sequence => self.asns.len(),
            SegmentKind::Set => usize::from(!self.asns.is_empty()),
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (no segment at all when `asns` is empty).
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }],
        }
    }

    /// RFC 4271 9.1.2.2 a: SET counts 1, confed segments 0
    pub fn path_len(&self) -> usize {
        self.segments.iter().map(AsSegment::path_len).sum()
    }

    /// The neighbouring AS: the first AS of the path when, past any confederation segments,
    /// it starts with an AS_SEQUENCE (RFC 4271 §9.1.2.2 c, RFC 5065 §5.3).
    pub fn first_as(&self) -> Option<u32> {
        let seg = self.segments.iter().find(|s| !s.kind.is_confed())?;
        match seg.kind {
            SegmentKind::Sequence => seg.asns.first().copied(),
            _ => None,
        }
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Puts `asn` in front, as an eBGP speaker does when it sends a route (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentKind::Sequence => s.asns.insert(0, asn),
            _ => self.segments.insert(
                0,
                AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![asn],
                },
            ),
        }
    }

    /// Whether any segment is a confederation segment.
    pub fn has_confed(&self) -> bool {
        self.segments.iter().any(|s| s.kind.is_confed())
    }

    /// The AS4_PATH to send a 2-octet peer along with this AS_PATH, if it needs one
    /// (RFC 6793 §4.2.2: only when some AS does not fit two octets, and never with
    /// confederation segments).
    ///
    /// It starts after the last confederation segment that comes before the first 4-octet
    /// AS: the receiver rebuilds the part in front from AS_PATH (RFC 6793 §4.2.3, the
    /// same as when a 2-octet speaker has prepended), so confederation segments stay where
    /// they were instead of being lost.
    pub(super) fn as4_path(&self) -> Option<AsPath> {
        let big =
            |s: &AsSegment| !s.kind.is_confed() && s.asns.iter().any(|a| *a > u32::from(u16::MAX));
        let first_big = self.segments.iter().position(big)?;
        let start = self
            .segments
            .iter()
            .take(first_big)
            .rposition(|s| s.kind.is_confed())
            .map_or(0, |i| i + 1);
        Some(AsPath {
            segments: self
                .segments
                .iter()
                .skip(start)
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        })
    }

    /// Segments of more than 255 ASes are split; empty segments are left out (a zero
    /// segment length is malformed, RFC 7606 §7.2). ASNs that do not fit two octets become
    /// AS_TRANS when `four_octet` is false.
    pub(super) fn encode(&self, four_octet: bool, out: &mut BytesMut) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(usize::from(u8::MAX)) {
                out.put_u8(seg.kind.to_u8());
                out.put_u8(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                for asn in chunk {
                    if four_octet {
                        out.put_u32(*asn);
                    } else {
                        out.put_u16(u16::try_from(*asn).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// Parses an AS_PATH or AS4_PATH value. Malformed (RFC 7606 §7.2): unknown segment
    /// type, zero segment length, a segment running past the value, or one stray octet.
    pub(super) fn decode(mut i: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
        let mut segments = Vec::new();
        while !i.is_empty() {
            let (r, kind) = be_u8::<_, ()>(i).map_err(|_| "segment header cut short")?;
            let (r, count) = be_u8::<_, ()>(r).map_err(|_| "segment header cut short")?;
            let kind = SegmentKind::from_u8(kind).ok_or("unknown segment type")?;
            if count == 0 {
                return Err("empty segment");
            }
            let width = if four_octet { 4 } else { 2 };
            let (value, rest) = r
                .split_at_checked(usize::from(count) * width)
                .ok_or("segment runs past the attribute")?;
            let asns = value
                .chunks_exact(width)
                .map(|c| {
                    if four_octet {
                        be_u32::<_, ()>(c).map(|(_, a)| a).unwrap_or(0)
                    } else {
                        be_u16::<_, ()>(c).map(|(_, a)| u32::from(a)).unwrap_or(0)
                    }
                })
                .collect();
            segments.push(AsSegment { kind, asns });
            i = rest;
        }
        Ok(AsPath { segments })
    }

    /// RFC 6793 §4.2.3: rebuild the 4-octet path from a 2-octet AS_PATH and an AS4_PATH.
    /// If AS_PATH holds fewer ASes than AS4_PATH, AS4_PATH is ignored. Otherwise the
    /// leading ASes of AS_PATH that AS4_PATH does not cover (and confederation segments
    /// in front of them) are kept, followed by AS4_PATH.
    pub(super) fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let (len, len4) = (self.path_len(), as4.path_len());
        if len < len4 {
            return self.clone();
        }
        let mut need = len - len4;
        let mut segments: Vec<AsSegment> = Vec::new();
        let mut cut = false;
        for seg in &self.segments {
            if need == 0 && !seg.kind.is_confed() {
                break;
            }
            match seg.kind {
                SegmentKind::Sequence if seg.asns.len() > need => {
                    segments.push(AsSegment {
                        kind: SegmentKind::Sequence,
                        asns: seg.asns.iter().take(need).copied().collect(),
                    });
                    need = 0;
                    cut = true;
                }
                _ => {
                    need = need.saturating_sub(seg.path_len());
                    segments.push(seg.clone());
                }
            }
        }
        let mut rest = as4.segments.iter();
        // Only a sequence cut in the middle continues into AS4_PATH's first sequence;
        // segment boundaries the sender made are kept.
        if cut {
            if let (Some(last), Some(first)) = (segments.last_mut(), as4.segments.first()) {
                if first.kind == SegmentKind::Sequence {
                    last.asns.extend_from_slice(&first.asns);
                    rest.next();
                }
            }
        }
        segments.extend(rest.cloned());
        AsPath { segments }
    }
}

impl std::fmt::Display for AsPath {
    /// `65001 65002 {65003,65004} (64512 64513) [64514]`: sets in braces, confederation
    /// sequences in parentheses, confederation sets in brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for seg in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, sep, close) = match seg.kind {
                SegmentKind::Sequence => ("", " ", ""),
                SegmentKind::Set => ("{", ",", "}"),
                SegmentKind::ConfedSequence => ("(", " ", ")"),
                SegmentKind::ConfedSet => ("[", ",", "]"),
            };
            f.write_str(open)?;
            for (n, asn) in seg.asns.iter().enumerate() {
                if n > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn seg(kind: SegmentKind, asns: &[u32]) -> AsSegment {
        AsSegment {
            kind,
            asns: asns.to_vec(),
        }
    }

    #[test]
    fn helpers() {
        let mut p = AsPath {
            segments: vec![
                seg(SegmentKind::ConfedSequence, &[64512]),
                seg(SegmentKind::Sequence, &[65001, 65002]),
                seg(SegmentKind::Set, &[1, 2, 3]),
            ],
        };
        assert_eq!(p.path_len(), 3);
        assert_eq!(p.first_as(), Some(65001));
        assert!(p.contains(2) && !p.contains(4));
        assert_eq!(p.to_string(), "(64512) 65001 65002 {1,2,3}");
        p.prepend(65000);
        assert_eq!(
            p.segments.first(),
            Some(&seg(SegmentKind::Sequence, &[65000]))
        );
        let mut s = AsPath::sequence(vec![2]);
        s.prepend(1);
        assert_eq!(s, AsPath::sequence(vec![1, 2]));
        assert_eq!(AsPath::sequence(vec![]).first_as(), None);
        assert_eq!(AsPath::sequence(vec![]).path_len(), 0);
    }

    #[test]
    fn long_segments_split_on_encode() {
        let p = AsPath::sequence((0..300).collect());
        let mut b = BytesMut::new();
        p.encode(true, &mut b);
        assert_eq!(b.len(), 2 + 255 * 4 + 2 + 45 * 4);
        let d = AsPath::decode(&b, true).unwrap();
        assert_eq!(d.path_len(), 300);
        assert_eq!(d.segments.len(), 2);
    }

    #[test]
    fn malformed_paths() {
        assert!(AsPath::decode(&[2], true).is_err());
        assert!(AsPath::decode(&[2, 0], true).is_err());
        assert!(AsPath::decode(&[5, 1, 0, 1], false).is_err());
        assert!(AsPath::decode(&[2, 2, 0, 1], false).is_err());
        assert!(AsPath::decode(&[2, 1, 0, 1, 0], false).is_err());
        assert_eq!(AsPath::decode(&[], false), Ok(AsPath::default()));
    }

    #[test]
    fn as4_merge_rfc6793() {
        // AS_PATH 65001 AS_TRANS AS_TRANS 65002, AS4_PATH 200000 300000 65002.
        let two = AsPath::sequence(vec![65001, 23456, 23456, 65002]);
        let four = AsPath::sequence(vec![200000, 300000, 65002]);
        assert_eq!(
            two.merge_as4(&four),
            AsPath::sequence(vec![65001, 200000, 300000, 65002])
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let short = AsPath::sequence(vec![23456]);
        assert_eq!(short.merge_as4(&four), short);
        // Confederation segments in front are kept; a set counts as one.
        let two = AsPath {
            segments: vec![
                seg(SegmentKind::ConfedSequence, &[64512]),
                seg(SegmentKind::Sequence, &[65001, 23456]),
                seg(SegmentKind::Set, &[23456, 7]),
            ],
        };
        let four = AsPath {
            segments: vec![
                seg(SegmentKind::Sequence, &[400000]),
                seg(SegmentKind::Set, &[400001, 7]),
            ],
        };
        assert_eq!(
            two.merge_as4(&four),
            AsPath {
                segments: vec![
                    seg(SegmentKind::ConfedSequence, &[64512]),
                    seg(SegmentKind::Sequence, &[65001, 400000]),
                    seg(SegmentKind::Set, &[400001, 7]),
                ]
            }
        );
    }

    #[test]
    fn as4_path_for_two_octet_peers() {
        assert_eq!(AsPath::sequence(vec![65001, 65002]).as4_path(), None);
        let p = AsPath {
            segments: vec![
                seg(SegmentKind::ConfedSequence, &[64512]),
                seg(SegmentKind::Sequence, &[65001, 4_200_000_000]),
            ],
        };
        assert_eq!(
            p.as4_path(),
            Some(AsPath::sequence(vec![65001, 4_200_000_000]))
        );
        let mut b = BytesMut::new();
        p.encode(false, &mut b);
        assert_eq!(&b[..], &[3, 1, 0xfc, 0x00, 2, 2, 0xfd, 0xe9, 0x5b, 0xa0]);
    }
}
