//! What a log frame holds: a batch of rows (the current format), or one row
//! (version 1, still read so that a run crashed under an older version
//! recovers).

use crate::timestamp::Timestamp;

const KIND_BATCH: u8 = 1;

/// Where a batch ended in the ring it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingEnd<'a> {
    /// The ring's path relative to the run directory.
    pub ring: &'a str,
    /// The absolute offset after the batch's last frame.
    pub end: u64,
}

/// The stored rows of one reader batch, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BatchEntry<'a> {
    /// `_seq` of the first line; the rest follow one by one.
    pub first_seq: u64,
    /// Their `_ingested_at`.
    pub ingested_at: Timestamp,
    /// The source of rows that name none.
    pub source: &'a str,
    /// The ring the lines came from, if any.
    pub ring: Option<RingEnd<'a>>,
    /// The lines, back to back, and each one's length.
    pub lines: Lines<'a>,
}

/// The lines of a batch: `(len u32 | bytes)*`, `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lines<'a> {
    bytes: &'a [u8],
    count: u32,
}

impl<'a> Lines<'a> {
    /// The number of lines.
    pub(crate) fn len(&self) -> u32 {
        self.count
    }

    /// The lines in order; `None` for a line whose length runs past the frame.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let mut rest = self.bytes;
        (0..self.count).map(move |_| {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let line = rest.get(4..4 + len)?;
            rest = &rest[4 + len..];
            Some(line)
        })
    }
}

impl<'a> BatchEntry<'a> {
    /// Encodes a batch of `lines` into `out` (a frame's payload).
    pub(crate) fn encode<'l>(
        out: &mut Vec<u8>,
        first_seq: u64,
        ingested_at: Timestamp,
        source: &str,
        ring: Option<RingEnd<'_>>,
        lines: impl ExactSizeIterator<Item = &'l [u8]>,
    ) {
        out.push(KIND_BATCH);
        out.extend_from_slice(&first_seq.to_le_bytes());
        out.extend_from_slice(&ingested_at.0.to_le_bytes());
        put_str(out, source);
        put_str(out, ring.map_or("", |r| r.ring));
        out.extend_from_slice(&ring.map_or(0, |r| r.end).to_le_bytes());
        out.extend_from_slice(&(lines.len() as u32).to_le_bytes());
        for line in lines {
            out.extend_from_slice(&(line.len() as u32).to_le_bytes());
            out.extend_from_slice(line);
        }
    }

    /// Decodes a payload; `None` if it is not a well-formed batch.
    pub(crate) fn decode(p: &'a [u8]) -> Option<Self> {
        if *p.first()? != KIND_BATCH {
            return None;
        }
        let first_seq = u64::from_le_bytes(p.get(1..9)?.try_into().ok()?);
        let ingested_at = Timestamp(i64::from_le_bytes(p.get(9..17)?.try_into().ok()?));
        let (source, rest) = take_str(&p[17..])?;
        let (ring, rest) = take_str(rest)?;
        let end = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let count = u32::from_le_bytes(rest.get(8..12)?.try_into().ok()?);
        Some(BatchEntry {
            first_seq,
            ingested_at,
            source,
            ring: (!ring.is_empty()).then_some(RingEnd { ring, end }),
            lines: Lines {
                bytes: &rest[12..],
                count,
            },
        })
    }
}

/// One logged row (version 1 of the format: read, never written).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowEntry<'a> {
    pub seq: u64,
    pub ingested_at: Timestamp,
    pub source: &'a str,
    pub json: &'a [u8],
}

impl<'a> RowEntry<'a> {
    /// Decodes a version 1 payload; `None` if it is too short or the source
    /// is not UTF-8.
    pub(crate) fn decode(p: &'a [u8]) -> Option<Self> {
        let seq = u64::from_le_bytes(p.get(0..8)?.try_into().ok()?);
        let ingested_at = Timestamp(i64::from_le_bytes(p.get(8..16)?.try_into().ok()?));
        let n = u16::from_le_bytes(p.get(16..18)?.try_into().ok()?) as usize;
        let source = std::str::from_utf8(p.get(18..18 + n)?).ok()?;
        Some(RowEntry {
            seq,
            ingested_at,
            source,
            json: p.get(18 + n..)?,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

fn take_str(p: &[u8]) -> Option<(&str, &[u8])> {
    let n = u16::from_le_bytes(p.get(..2)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(p.get(2..2 + n)?).ok()?;
    Some((s, &p[2 + n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_with_and_without_a_ring() {
        for ring in [
            None,
            Some(RingEnd {
                ring: "rings/p1-ab.ring",
                end: 4096,
            }),
        ] {
            let lines: [&[u8]; 3] = [b"{\"stream\":\"x\"}", b"", b"{\"a\":\"w\xc3\xb6rker\"}"];
            let mut p = Vec::new();
            BatchEntry::encode(&mut p, 42, Timestamp(-5), "wörker", ring, lines.iter().copied());
            let b = BatchEntry::decode(&p).unwrap();
            assert_eq!(
                (b.first_seq, b.ingested_at, b.source, b.ring),
                (42, Timestamp(-5), "wörker", ring)
            );
            assert_eq!(b.lines.len(), 3);
            assert_eq!(b.lines.iter().collect::<Option<Vec<_>>>().unwrap(), lines);
            assert!(BatchEntry::decode(&p[..20]).is_none());
        }
    }

    #[test]
    fn version_1_rows_still_decode() {
        let mut p = Vec::new();
        p.extend_from_slice(&42u64.to_le_bytes());
        p.extend_from_slice(&(-5i64).to_le_bytes());
        p.extend_from_slice(&7u16.to_le_bytes());
        p.extend_from_slice("wörker".as_bytes());
        p.extend_from_slice(br#"{"stream":"x"}"#);
        let e = RowEntry::decode(&p).unwrap();
        assert_eq!((e.seq, e.source, e.json), (42, "wörker", &br#"{"stream":"x"}"#[..]));
        assert_eq!(RowEntry::decode(&p[..10]), None);
    }
}
