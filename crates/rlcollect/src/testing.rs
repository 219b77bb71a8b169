//! Helpers for tests that check what a run stored (feature `test-util`):
//! read part files back with the parquet crate, list `_seq`s, wait for a
//! condition. Used by this crate's and the CLI's integration tests, and
//! available to engines that embed the collector.

use crate::manifest::Manifest;
use crate::run_dir::RunDir;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A model decision for pair `pair` at step `i` (timestamp, action and
/// reward follow from `i`): the row tests send through `Handle`s.
pub fn decision(i: i64, pair: &str) -> crate::Record {
    crate::Record::ModelDecision(crate::ModelDecision {
        ts: crate::Timestamp(1_700_000_000_000 + i * 300_000),
        pair: pair.into(),
        action: Some(i % 3),
        reward: Some(i as f64 * 0.5),
        ..Default::default()
    })
}
/// Reads one Parquet file; panics with the path when it is not readable.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{} is not a readable parquet file: {e}", path.display()))
        .build()
        .expect("a reader over a valid file")
        .map(|b| b.expect("a readable row group"))
        .collect()
}

/// The manifest of the run at `run_dir`; panics when there is none.
pub fn manifest(run_dir: &Path) -> Manifest {
    RunDir::at(run_dir)
        .and_then(|r| r.load_manifest())
        .unwrap_or_else(|e| panic!("manifest of {}: {e}", run_dir.display()))
}

/// Every `_seq` stored in the run's Parquet files (as the manifest lists
/// them), of one stream or of all, sorted.
pub fn stored_seqs(run_dir: &Path, stream: Option<&str>) -> Vec<u64> {
    let m = manifest(run_dir);
    let mut out = Vec::new();
    for (name, s) in &m.streams {
        if stream.is_some_and(|want| want != name) {
            continue;
        }
        for f in s.files.iter().filter(|f| f.format == "parquet") {
            for b in read_parquet(&run_dir.join(m.file_rel_path(name, f))) {
                let col = b
                    .column_by_name("_seq")
                    .expect("a _seq column")
                    .as_primitive::<UInt64Type>();
                out.extend(col.values().iter().copied());
            }
        }
    }
    out.sort_unstable();
    out
}

/// Asserts `seqs` is exactly `0..n`: gap-free and unique.
pub fn assert_gap_free(seqs: &[u64], n: u64) {
    assert_eq!(seqs.len() as u64, n, "row count");
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as u64, "_seq must be gap-free and unique");
    }
}

/// Published Parquet parts in `dir` (no dot-temp names), sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            n.starts_with("part-") && n.ends_with(".parquet")
        })
        .collect();
    v.sort();
    v
}

/// Polls `cond` every 20 ms for up to `secs` seconds; its last answer.
pub fn wait_for(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// `_seq` and the values of the integer `columns` of every stored row of
/// `stream` (Parquet parts, as the manifest lists them), sorted by `_seq`.
pub fn stored_int_rows(run_dir: &Path, stream: &str, columns: &[&str]) -> Vec<(u64, Vec<i64>)> {
    use arrow_array::types::Int64Type;
    let m = manifest(run_dir);
    let files = m.streams.get(stream).map(|s| s.files.as_slice()).unwrap_or_default();
    let mut rows = Vec::new();
    for f in files.iter().filter(|f| f.format == "parquet") {
        for b in read_parquet(&run_dir.join(m.file_rel_path(stream, f))) {
            let seq = b
                .column_by_name("_seq")
                .expect("a _seq column")
                .as_primitive::<UInt64Type>();
            let cols: Vec<_> = columns
                .iter()
                .map(|c| {
                    b.column_by_name(c)
                        .unwrap_or_else(|| panic!("no column {c}"))
                        .as_primitive::<Int64Type>()
                })
                .collect();
            for r in 0..b.num_rows() {
                rows.push((seq.value(r), cols.iter().map(|c| c.value(r)).collect()));
            }
        }
    }
    rows.sort_unstable();
    rows
}

/// A real, small tmpfs mounted for a test, unmounted on drop: a disk that
/// really fills up.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (such as `"3m"`) at `path` (created). `None`,
    /// with a line saying why, where mounting is not permitted (not root).
    pub fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("create the mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { path: path.to_owned() }),
            Ok(o) => {
                println!(
                    "SKIPPED: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("SKIPPED: no mount command: {e}");
                None
            }
        }
    }

    /// Fills the filesystem with a ballast file until only `leave` bytes are
    /// free (0: to the last byte). Returns the ballast's path.
    pub fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path.join("ballast");
        let mut ballast = std::fs::File::create(&path).expect("create the ballast");
        let chunk = vec![0u8; 4096];
        while ballast.write_all(&chunk).is_ok() {}
        while ballast.write_all(&chunk[..1]).is_ok() {}
        let len = ballast.metadata().expect("ballast metadata").len();
        ballast.set_len(len.saturating_sub(leave)).expect("shrink the ballast");
        ballast.sync_all().expect("fsync the ballast");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

/// A ring written the way a producer writes it, for tests of the sidecar's
/// side of the hand-off (SPEC §6). The test process is its live producer.
#[derive(Debug)]
pub struct TestRing {
    writer: crate::ring::writer::RingWriter,
    name: String,
}

impl TestRing {
    /// Creates a ring of `capacity` data bytes in `run` for producer `source`.
    pub fn create(run: &RunDir, capacity: u64, source: &str) -> TestRing {
        std::fs::create_dir_all(run.rings_dir()).expect("create the rings folder");
        let name = run.new_ring_name(std::process::id());
        let path = run.ring_path(&name).expect("a valid ring name");
        let identity = crate::ring::map::RingIdentity {
            pid: std::process::id(),
            source: source.to_owned(),
        };
        let map = crate::ring::map::RingMap::create(&path, capacity, &identity).expect("create the ring");
        TestRing {
            writer: crate::ring::writer::RingWriter::new(map),
            name,
        }
    }

    /// The ring's name in the run (`rings/...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends one NDJSON record; false when the ring is full.
    pub fn append(&mut self, line: &[u8]) -> bool {
        self.writer.append(line).is_ok()
    }

    /// Marks the ring closed: no frame follows.
    pub fn close(&self) {
        self.writer.close()
    }
}

/// Decodes NDJSON `input` as one sidecar reader does: each line into its
/// stream's columns and, with `keep_lines`, into the log's lines, taking a
/// chunk every `batch_records` records. Returns the rows stored and the
/// lines rejected. For the decode benchmark (`cargo bench --bench decode`):
/// a reader's work alone, on one thread, with nothing else running.
pub fn decode_like_a_reader(input: &[u8], batch_records: usize, keep_lines: bool) -> (u64, u64) {
    let mut chunk = crate::chunk::ChunkBuilder::new("bench".into(), false, keep_lines);
    let (mut rows, mut rejected) = (0, 0);
    let mut start = 0;
    while start < input.len() {
        // Split as the reader does (memchr), not byte by byte.
        let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |n| start + n);
        let line = &input[start..end];
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        if chunk.push_line(line).is_err() {
            rejected += 1;
        }
        if chunk.len() >= batch_records {
            rows += u64::from(chunk.take(None).rows);
        }
    }
    rows += u64::from(chunk.take(None).rows);
    (rows, rejected)
}

/// The rows of each frame in the write-ahead log of the run at `run_dir`, in
/// log order (what is on disk now: appends wait for the group commit). One
/// frame is one chunk a reader or a `Handle` thread handed the worker.
pub fn wal_frame_rows(run_dir: &Path) -> Vec<u32> {
    let run = RunDir::at(run_dir).expect("a run directory");
    let mut rows = Vec::new();
    for (_, path) in run.wal_segments() {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for (_, entry) in crate::wal::read_segment(&bytes).entries {
            if let crate::wal::Logged::Batch(batch) = entry {
                rows.push(batch.lines.len());
            }
        }
    }
    rows
}

/// The line numbers in the `rejected.ndjson` of the run at `run_dir`, in
/// order; empty when nothing was rejected.
pub fn rejected_line_numbers(run_dir: &Path) -> Vec<u64> {
    let path = RunDir::at(run_dir).expect("a run directory").rejected_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let record: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: a bad line {l:?}: {e}", path.display()));
            record["line"].as_u64().expect("every rejected line has a number")
        })
        .collect()
}
