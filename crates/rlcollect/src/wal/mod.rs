//! The write-ahead log (durability mode `wal`, SPEC §4): every accepted row
//! is appended here, by the worker, before it counts as received. It is the
//! only protection against SIGKILL, the OOM killer or a power cut, because
//! those cannot be caught.
//!
//! ```text
//! RUN/wal/seg-00000000000000001234.wal     name = first _seq in the segment (RunDir)
//!
//! segment := "RLCWAL02" | frame*           (a segment without the magic is version 1)
//! frame   := len: u32 LE | crc32c(len bytes): u32 LE | payload | crc32c(payload): u32 LE
//! payload := kind 1: a batch, the stored rows of one reader batch, one frame:
//!            first_seq: u64 | ingested_at ms: i64 | source len: u16 | source |
//!            ring len: u16 | ring path | ring end: u64 | rows: u32 | (line len: u32 | line)*
//! version 1 payload (read only): seq: u64 | ingested_at: i64 | source len: u16 | source | line
//! ```
//!
//! A batch frame holds the lines of rows `first_seq .. first_seq + rows`, as
//! read. When they came from a ring (SPEC §6) it names the ring and the offset
//! after the batch's last frame, so recovery knows how far the ring was
//! consumed: one frame, so a torn tail never keeps half a batch.
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

mod entry;
mod reader;
mod writer;

pub(crate) use entry::{BatchEntry, RingEnd, RowEntry};
pub(crate) use reader::{read_segment, truncate_torn_tail, Logged};
pub(crate) use writer::WalWriter;

use std::time::Duration;

/// The first bytes of a segment in the current format.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"RLCWAL02";

/// Bytes of framing around a payload.
pub(crate) const FRAME_OVERHEAD: usize = 12;
/// Largest payload accepted when reading: bigger lengths are corruption.
pub(crate) const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one frame around `payload` to `out`.
#[cfg(test)]
pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    encode_frame_with(out, |out| out.extend_from_slice(payload));
}

/// Appends one frame to `out` whose payload `write_payload` appends in
/// place: the payload is written once, where the frame needs it (a batch's
/// lines are the largest thing the worker copies).
pub(crate) fn encode_frame_with(out: &mut Vec<u8>, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    write_payload(out);
    let payload_len = out.len() - start - 8;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out.extend_from_slice(&crc.to_le_bytes());
    let len = (payload_len as u32).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc32c::crc32c(&len).to_le_bytes());
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
    #[test]
    fn crc32c_test_vectors() {
        // RFC 3720 (iSCSI) B.4 and the common check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c::crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c::crc32c(&ascending), 0x46DD_794E);
    }
}
