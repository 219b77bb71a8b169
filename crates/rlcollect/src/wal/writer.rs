//! The worker's end of the log: buffered appends, group commit, segment
//! roll, and release of segments whose rows are published.

use super::{encode_frame_with, BatchEntry, RingEnd, WalOptions, SEGMENT_MAGIC};
use crate::error::Error;
use crate::run_dir::RunDir;
use crate::timestamp::Timestamp;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

/// The worker's end of the log.
pub(crate) struct WalWriter {
    run: RunDir,
    opts: WalOptions,
    file: BufWriter<File>,
    /// First seq of every live segment, oldest first; the last one is open.
    segments: Vec<u64>,
    open_bytes: u64,
    dirty: bool,
    last_sync: Instant,
    frame: Vec<u8>,
}

impl WalWriter {
    /// Opens a new segment starting at `next_seq`. Older segments must have been
    /// replayed and removed (recovery does that) before a writer starts.
    pub(crate) fn open(run: &RunDir, next_seq: u64, opts: WalOptions) -> Result<Self, Error> {
        let dir = run.wal_dir();
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        let segments: Vec<u64> = run.wal_segments().into_iter().map(|(s, _)| s).collect();
        let mut w = WalWriter {
            file: Self::create_segment(run, next_seq)?,
            run: run.clone(),
            opts,
            segments,
            open_bytes: 0,
            dirty: false,
            last_sync: Instant::now(),
            frame: Vec::with_capacity(1024),
        };
        w.segments.retain(|s| *s != next_seq);
        w.segments.push(next_seq);
        Ok(w)
    }

    fn create_segment(run: &RunDir, first_seq: u64) -> Result<BufWriter<File>, Error> {
        let (dir, path) = (run.wal_dir(), run.wal_segment(first_seq));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::io(format!("create {}", path.display())))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(format!("fsync directory {}", dir.display())))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        out.write_all(SEGMENT_MAGIC)
            .map_err(Error::io(format!("write {}", path.display())))?;
        Ok(out)
    }

    /// Buffers one batch of rows `first_seq..` (one frame); rolls the
    /// segment at the size bound.
    pub(crate) fn append_batch<'l>(
        &mut self,
        first_seq: u64,
        ingested_at: Timestamp,
        source: &str,
        ring: Option<RingEnd<'_>>,
        lines: impl ExactSizeIterator<Item = &'l [u8]>,
    ) -> Result<(), Error> {
        // A segment is named by its first `_seq`; a batch without rows does
        // not start one (it would have the open segment's name).
        let roll = self.open_bytes >= self.opts.segment_bytes && self.segments.last() != Some(&first_seq);
        if roll {
            self.sync()?;
            self.file = Self::create_segment(&self.run, first_seq)?;
            self.segments.push(first_seq);
            self.open_bytes = 0;
        }
        self.frame.clear();
        encode_frame_with(&mut self.frame, |payload| {
            BatchEntry::encode(payload, first_seq, ingested_at, source, ring, lines)
        });
        self.file
            .write_all(&self.frame)
            .map_err(Error::io("append to the write-ahead log"))?;
        self.open_bytes += self.frame.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// The group commit interval.
    pub(crate) fn fsync_every(&self) -> Duration {
        self.opts.fsync_every
    }

    /// Group commit: fsyncs when the interval has passed since the last one.
    /// True when it did (everything appended so far is durable).
    pub(crate) fn sync_if_due(&mut self) -> Result<bool, Error> {
        if self.dirty && self.last_sync.elapsed() >= self.opts.fsync_every {
            self.sync()?;
            return Ok(true);
        }
        Ok(false)
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
            let path = self.run.wal_segment(self.segments[0]);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()))(e)),
            }
            self.segments.remove(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::read_segment;

    #[test]
    fn segments_roll_and_are_released_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            fsync_every: Duration::ZERO,
            segment_bytes: 100,
        };
        let run = RunDir::new(dir.path(), "r").unwrap();
        std::fs::create_dir(run.path()).unwrap();
        let mut w = WalWriter::open(&run, 0, opts).unwrap();
        for seq in 0..10 {
            let json = format!(r#"{{"stream":"x","i":{seq}}}"#);
            w.append_batch(seq, Timestamp(0), "s", None, [json.as_bytes()].into_iter())
                .unwrap();
        }
        w.sync().unwrap();
        let segs = run.wal_segments();
        assert!(segs.len() >= 3, "{segs:?}");
        w.release_through(segs[1].0).unwrap();
        assert_eq!(
            run.wal_segments().len(),
            segs.len() - 1,
            "only the first segment is fully published"
        );
        w.release_through(5).unwrap();
        let left = run.wal_segments();
        assert!(left[0].0 <= 5 && left.len() < segs.len());
        let total: usize = left
            .iter()
            .map(|(_, p)| read_segment(&std::fs::read(p).unwrap()).entries.len())
            .sum();
        assert!(total >= 5, "rows from 5 on are still logged");
        drop(w);
        run.remove_wal().unwrap();
        assert!(!run.wal_dir().exists());
    }
}
