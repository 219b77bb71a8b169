//! The write-ahead log (durability mode `wal`, SPEC §4): every accepted row
//! is appended here, by the worker, before it counts as received. It is the
//! only protection against SIGKILL, the OOM killer or a power cut, because
//! those cannot be caught.
//!
//! ```text
//! RUN/wal/seg-00000000000000001234.wal     name = first _seq in the segment (RunDir)
//!
//! frame   := len: u32 LE | crc32c(len bytes): u32 LE | payload | crc32c(payload): u32 LE
//! payload := seq: u64 LE | ingested_at ms: i64 LE | source len: u16 LE | source | record as one JSON object
//! ```
//!
//! The length has its own checksum (TensorBoard's framing), so a torn or
//! flipped length is detected and never causes a huge read.
//!
//! * `writer.rs`: the worker's end (append, group commit, release).
//! * `reader.rs`: recovery's end (scan, torn tails, corrupt frames).
//!
//! Guarantees:
//! * `append` only buffers. Group commit fsyncs at most every `fsync_every`
//!   (and when a segment rolls), so a crash loses at most that window.
//! * A segment is deleted only once every row in it is published in part
//!   files **and** the manifest naming them is fsynced (the caller's order).
//!   Deleting before syncing the index is the bug that made Vector's disk
//!   buffer loop on restart.
//! * Reading stops at the first frame whose length does not check out (a
//!   torn tail), and reports that offset so the tail can be truncated. A frame
//!   whose length checks out but whose payload does not is skipped and
//!   counted. Every step moves forward, so reading cannot loop.

mod reader;
mod writer;

pub(crate) use reader::{scan_segment, truncate_torn_tail};
pub(crate) use writer::WalWriter;

use crate::timestamp::Timestamp;
use std::time::Duration;

/// Bytes of framing around a payload.
pub(crate) const FRAME_OVERHEAD: usize = 12;
/// Largest payload accepted when reading: bigger lengths are corruption.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one frame around `payload` to `out`.
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32c::crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
}

/// One logged row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WalEntry<'a> {
    /// The row's `_seq`.
    pub seq: u64,
    /// Its `_ingested_at`.
    pub ingested_at: Timestamp,
    /// Its `_source`.
    pub source: &'a str,
    /// The record as one JSON object.
    pub json: &'a [u8],
}

impl<'a> WalEntry<'a> {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.ingested_at.0.to_le_bytes());
        let src = &self.source.as_bytes()[..self.source.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(src.len() as u16).to_le_bytes());
        out.extend_from_slice(src);
        out.extend_from_slice(self.json);
    }

    /// Decodes a payload; `None` if it is too short or the source is not UTF-8.
    pub(crate) fn decode(p: &'a [u8]) -> Option<Self> {
        let seq = u64::from_le_bytes(p.get(0..8)?.try_into().ok()?);
        let ingested_at = Timestamp(i64::from_le_bytes(p.get(8..16)?.try_into().ok()?));
        let n = u16::from_le_bytes(p.get(16..18)?.try_into().ok()?) as usize;
        let source = std::str::from_utf8(p.get(18..18 + n)?).ok()?;
        Some(WalEntry {
            seq,
            ingested_at,
            source,
            json: p.get(18 + n..)?,
        })
    }
}

/// Settings of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Group commit interval: the most a crash can lose.
    pub fsync_every: Duration,
    /// A segment rolls once it holds this many bytes.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            fsync_every: Duration::from_millis(200),
            segment_bytes: 64 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_test_vectors() {
        // RFC 3720 (iSCSI) B.4 and the common check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c::crc32c(&ascending), 0x46DD_794E);
    }

    #[test]
    fn entries_round_trip() {
        let e = WalEntry {
            seq: 42,
            ingested_at: Timestamp(-5),
            source: "wörker",
            json: br#"{"stream":"x"}"#,
        };
        let mut p = Vec::new();
        e.encode(&mut p);
        assert_eq!(WalEntry::decode(&p), Some(e));
        assert_eq!(WalEntry::decode(&p[..10]), None);
    }
}
