//! The write-ahead log (durability mode `wal`, SPEC §4): every accepted row
//! is appended here, by the worker, before it counts as received. It is the
//! only protection against SIGKILL, the OOM killer or a power cut, because
//! those cannot be caught.
//!
//! ```text
//! RUN/wal/seg-00000000000000001234.wal     name = first _seq in the segment
//!
//! frame   := len: u32 LE | crc32c(len bytes): u32 LE | payload | crc32c(payload): u32 LE
//! payload := seq: u64 LE | ingested_at ms: i64 LE | source len: u16 LE | source | record as one JSON object
//! ```
//!
//! The length has its own checksum (TensorBoard's framing), so a torn or
//! flipped length is detected and never causes a huge read.
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

use crate::error::Error;
use crate::timestamp::Timestamp;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Folder of the log inside a run directory.
pub const WAL_DIR: &str = "wal";

/// Bytes of framing around a payload.
const FRAME_OVERHEAD: usize = 12;
/// Largest payload accepted when reading: bigger lengths are corruption.
const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one frame around `payload` to `out`.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc32c::crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SegmentScan {
    /// (offset, payload range) of every intact frame, in order.
    pub frames: Vec<(usize, std::ops::Range<usize>)>,
    /// Frames skipped because their payload checksum failed.
    pub corrupt: usize,
    /// Bytes that hold whole frames; anything after is a torn tail.
    pub valid_len: usize,
}

/// Reads the frames of one segment's bytes.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
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

/// One logged row.
#[derive(Debug, Clone, PartialEq)]
pub struct WalEntry<'a> {
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
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.ingested_at.0.to_le_bytes());
        let src = &self.source.as_bytes()[..self.source.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(src.len() as u16).to_le_bytes());
        out.extend_from_slice(src);
        out.extend_from_slice(self.json);
    }

    /// Decodes a payload; `None` if it is too short or the source is not UTF-8.
    pub fn decode(p: &'a [u8]) -> Option<Self> {
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

/// Segment files of `wal_dir` as (first seq, path), oldest first.
pub fn list_segments(wal_dir: &Path) -> Vec<(u64, PathBuf)> {
    crate::fs::numbered_files(wal_dir, "seg-", ".wal")
}

fn segment_path(wal_dir: &Path, first_seq: u64) -> PathBuf {
    wal_dir.join(format!("seg-{first_seq:020}.wal"))
}

/// The worker's end of the log.
pub(crate) struct WalWriter {
    dir: PathBuf,
    opts: WalOptions,
    file: BufWriter<File>,
    /// First seq of every live segment, oldest first; the last one is open.
    segments: Vec<u64>,
    open_bytes: u64,
    dirty: bool,
    last_sync: Instant,
    frame: Vec<u8>,
    payload: Vec<u8>,
}

impl WalWriter {
    /// Opens a new segment starting at `next_seq`. Older segments must have been
    /// replayed and removed (recovery does that) before a writer starts.
    pub(crate) fn open(run_dir: &Path, next_seq: u64, opts: WalOptions) -> Result<Self, Error> {
        let dir = run_dir.join(WAL_DIR);
        fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let segments: Vec<u64> = list_segments(&dir).into_iter().map(|(s, _)| s).collect();
        let mut w = WalWriter {
            file: Self::create_segment(&dir, next_seq)?,
            dir,
            opts,
            segments,
            open_bytes: 0,
            dirty: false,
            last_sync: Instant::now(),
            frame: Vec::with_capacity(1024),
            payload: Vec::with_capacity(1024),
        };
        w.segments.retain(|s| *s != next_seq);
        w.segments.push(next_seq);
        Ok(w)
    }

    fn create_segment(dir: &Path, first_seq: u64) -> Result<BufWriter<File>, Error> {
        let path = segment_path(dir, first_seq);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::io(format!("create {}", path.display())))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(format!("fsync directory {}", dir.display())))?;
        Ok(BufWriter::with_capacity(256 * 1024, file))
    }

    /// Buffers one row; rolls the segment at the size bound.
    pub(crate) fn append(&mut self, entry: &WalEntry<'_>) -> Result<(), Error> {
        if self.open_bytes >= self.opts.segment_bytes {
            self.sync()?;
            self.file = Self::create_segment(&self.dir, entry.seq)?;
            self.segments.push(entry.seq);
            self.open_bytes = 0;
        }
        self.payload.clear();
        entry.encode(&mut self.payload);
        self.frame.clear();
        encode_frame(&self.payload, &mut self.frame);
        self.file
            .write_all(&self.frame)
            .map_err(Error::io("append to the write-ahead log"))?;
        self.open_bytes += self.frame.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Group commit: fsyncs when the interval has passed since the last one.
    pub(crate) fn sync_if_due(&mut self) -> Result<(), Error> {
        if self.dirty && self.last_sync.elapsed() >= self.opts.fsync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes out and fsyncs everything appended so far.
    pub(crate) fn sync(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(Error::io("write the write-ahead log"))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(Error::io("fsync the write-ahead log"))?;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Deletes the segments whose every row has `_seq < published_seq`. Call it
    /// only after the manifest saying so is fsynced. The open segment stays.
    pub(crate) fn release_through(&mut self, published_seq: u64) -> Result<(), Error> {
        while self.segments.len() > 1 && self.segments[1] <= published_seq {
            let path = segment_path(&self.dir, self.segments[0]);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()))(e)),
            }
            self.segments.remove(0);
        }
        Ok(())
    }

    /// After the final flush published every row: removes the whole log.
    pub(crate) fn remove_all(self) -> Result<(), Error> {
        drop(self.file);
        for (_, path) in list_segments(&self.dir) {
            fs::remove_file(&path).map_err(Error::io(format!("remove {}", path.display())))?;
        }
        let _ = fs::remove_dir(&self.dir);
        Ok(())
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

    #[test]
    fn segments_roll_and_are_released_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            fsync_every: Duration::ZERO,
            segment_bytes: 100,
        };
        let mut w = WalWriter::open(dir.path(), 0, opts).unwrap();
        for seq in 0..10 {
            let json = format!(r#"{{"stream":"x","i":{seq}}}"#);
            w.append(&WalEntry {
                seq,
                ingested_at: Timestamp(0),
                source: "s",
                json: json.as_bytes(),
            })
            .unwrap();
        }
        w.sync().unwrap();
        let wal = dir.path().join(WAL_DIR);
        let segs = list_segments(&wal);
        assert!(segs.len() >= 3, "{segs:?}");
        w.release_through(segs[1].0).unwrap();
        assert_eq!(
            list_segments(&wal).len(),
            segs.len() - 1,
            "only the first segment is fully published"
        );
        w.release_through(5).unwrap();
        let left = list_segments(&wal);
        assert!(left[0].0 <= 5 && left.len() < segs.len());
        let total: usize = left
            .iter()
            .map(|(_, p)| scan_segment(&fs::read(p).unwrap()).frames.len())
            .sum();
        assert!(total >= 5, "rows from 5 on are still logged");
        w.remove_all().unwrap();
        assert!(!wal.exists());
    }
}
