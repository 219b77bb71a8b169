//! Reading the log back (recovery): whole frames in order, a torn tail cut
//! off, corrupt frames skipped and counted.

use super::{BatchEntry, RowEntry, FRAME_OVERHEAD, MAX_PAYLOAD, SEGMENT_MAGIC};
use crate::error::Error;
use std::path::Path;

/// A segment read back: its frames, decoded by the segment's format version.
#[derive(Debug)]
pub(crate) struct SegmentRead<'a> {
    /// Every intact frame, in order, with its byte offset.
    pub entries: Vec<(usize, Logged<'a>)>,
    /// Frames skipped because their payload checksum failed.
    pub corrupt: usize,
    /// Bytes that hold the magic and whole frames; anything after is a torn tail.
    pub valid_len: usize,
}

/// One intact frame.
#[derive(Debug)]
pub(crate) enum Logged<'a> {
    /// A batch (the current format).
    Batch(BatchEntry<'a>),
    /// A row (version 1).
    Row(RowEntry<'a>),
    /// The checksum holds but the payload does not decode.
    Undecodable,
}

/// Reads a segment's bytes: the current format after its magic, version 1
/// without one.
pub(crate) fn read_segment(bytes: &[u8]) -> SegmentRead<'_> {
    let current = bytes.starts_with(SEGMENT_MAGIC);
    let skip = if current { SEGMENT_MAGIC.len() } else { 0 };
    let scan = scan_segment(&bytes[skip..]);
    let entries = scan
        .frames
        .into_iter()
        .map(|(at, range)| {
            let payload = &bytes[skip + range.start..skip + range.end];
            let logged = match current {
                true => BatchEntry::decode(payload).map(Logged::Batch),
                false => RowEntry::decode(payload).map(Logged::Row),
            };
            (skip + at, logged.unwrap_or(Logged::Undecodable))
        })
        .collect();
    SegmentRead {
        entries,
        corrupt: scan.corrupt,
        // A segment torn inside its magic holds nothing: keep the magic whole.
        valid_len: if current || bytes.len() >= SEGMENT_MAGIC.len() {
            skip + scan.valid_len
        } else {
            0
        },
    }
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
struct SegmentScan {
    /// (offset, payload range) of every intact frame, in order.
    pub frames: Vec<(usize, std::ops::Range<usize>)>,
    /// Frames skipped because their payload checksum failed.
    pub corrupt: usize,
    /// Bytes that hold whole frames; anything after is a torn tail.
    pub valid_len: usize,
}

/// Reads the frames of one segment's bytes.
fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let mut scan = SegmentScan::default();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len_bytes: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        let len_crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(len_bytes) as usize;
        if crc32c::crc32c(&len_bytes) != len_crc || len > MAX_PAYLOAD {
            break; // a torn or corrupt length: nothing after it can be trusted
        }
        let end = at + FRAME_OVERHEAD + len;
        if end > bytes.len() {
            break; // torn: the frame was not written whole
        }
        let payload = at + 8..at + 8 + len;
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[payload.clone()]) == crc {
            scan.frames.push((at, payload));
        } else {
            scan.corrupt += 1;
        }
        at = end;
        scan.valid_len = at;
    }
    scan
}

/// Cuts a segment file back to `valid_len` bytes (its whole frames) and
/// fsyncs it, so the next writer appends after the last intact frame.
pub(crate) fn truncate_torn_tail(path: &Path, valid_len: usize) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(valid_len as u64).and_then(|_| f.sync_all()))
        .map_err(Error::io(format!("truncate {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::encode_frame;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(p, &mut out);
        }
        out
    }

    #[test]
    fn frames_round_trip() {
        let bytes = frames(&[b"a", b"", b"hello world"]);
        let scan = scan_segment(&bytes);
        let got: Vec<&[u8]> = scan.frames.iter().map(|(_, r)| &bytes[r.clone()]).collect();
        assert_eq!(got, vec![&b"a"[..], b"", b"hello world"]);
        assert_eq!((scan.corrupt, scan.valid_len), (0, bytes.len()));
    }

    #[test]
    fn a_torn_tail_at_every_byte_offset_keeps_the_whole_frames() {
        let bytes = frames(&[b"first", b"second frame", b"third"]);
        let whole = scan_segment(&bytes);
        let last_start = whole.frames[2].0;
        for cut in last_start..bytes.len() {
            let scan = scan_segment(&bytes[..cut]);
            assert_eq!(scan.frames.len(), 2, "cut at {cut}");
            assert_eq!(scan.valid_len, last_start, "cut at {cut}");
            assert_eq!(scan.corrupt, 0);
        }
    }

    #[test]
    fn bit_flips_are_detected_never_misread() {
        let bytes = frames(&[b"first", b"second frame", b"third"]);
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[byte] ^= 1 << bit;
                let scan = scan_segment(&b);
                // Whatever survives is byte-for-byte an original payload.
                for (_, r) in &scan.frames {
                    let p = &b[r.clone()];
                    assert!(
                        p == b"first" || p == b"second frame" || p == b"third",
                        "flip {byte}:{bit}"
                    );
                }
                assert!(
                    scan.frames.len() < 3 || scan.corrupt > 0 || b == bytes,
                    "flip {byte}:{bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_middle_payload_is_skipped_and_counted() {
        let mut bytes = frames(&[b"first", b"second", b"third"]);
        let mid = scan_segment(&bytes).frames[1].1.start;
        bytes[mid] ^= 0xFF;
        let scan = scan_segment(&bytes);
        assert_eq!(scan.frames.len(), 2);
        assert_eq!(scan.corrupt, 1);
        assert_eq!(scan.valid_len, bytes.len());
    }
}
