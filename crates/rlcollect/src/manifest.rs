//! `manifest.json`: the index of a run's published files (SPEC §3). It is
//! replaced atomically after every checkpoint, so a reader that lists files
//! from it sees only complete ones.

use crate::atomic_file::publish_bytes;
use crate::error::Error;
use crate::fs::FileSystem;
use crate::run_dir::RunDir;
use crate::schema::ColumnType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The state of a run, as `manifest.json` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// A collector is (or was, if it crashed) writing the run.
    Running,
    /// Ended by EOF, `close` or drop; final flush done.
    Complete,
    /// Ended by SIGINT/SIGTERM/SIGHUP; final flush done.
    Interrupted,
    /// Rebuilt from the write-ahead log after a crash.
    Recovered,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// One published part file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the run directory, e.g. `trades/part-000001.parquet`.
    pub path: String,
    /// `parquet` or `csv`.
    pub format: String,
    /// Rows in the file.
    pub rows: u64,
    /// First `_seq` in the file.
    pub first_seq: u64,
    /// Last `_seq` in the file.
    pub last_seq: u64,
    /// File size.
    pub bytes: u64,
}

/// One column of a stream's schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaField {
    /// Column name.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// Everything published for one stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamEntry {
    /// Rows published (each counted once, whatever the formats).
    pub rows: u64,
    /// The generation folder that holds the stream's files, relative to the
    /// run (`.streams/STREAM/g000002`), once the stream was compacted; `RUN/STREAM`
    /// is then a symlink to it. `None`: the files are in the plain folder
    /// `RUN/STREAM` (SPEC §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Part files, oldest first.
    pub files: Vec<FileEntry>,
    /// The stream's current (widest) schema.
    pub schema: Vec<SchemaField>,
}

/// The contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of the collector that wrote it.
    pub collector_version: String,
    /// The run id (the run directory's name).
    pub run_id: String,
    /// Run state.
    pub status: RunStatus,
    /// When the run started (RFC 3339).
    pub started_at: String,
    /// When this manifest was written (RFC 3339).
    pub updated_at: String,
    /// When the last checkpoint published files (RFC 3339).
    pub last_checkpoint_at: Option<String>,
    /// Candle records seen.
    pub candles: u64,
    /// Checkpoints that published rows.
    pub checkpoints: u64,
    /// Data records accepted (= the next `_seq`).
    pub records: u64,
    /// Every `_seq` below this is published in a part file.
    pub published_seq: u64,
    /// Lines rejected (see `rejected.ndjson`).
    pub rejected: u64,
    /// The last error seen by the collector, if any.
    pub last_error: Option<String>,
    /// Rows received per producer (`_source`).
    pub sources: BTreeMap<String, u64>,
    /// Producers connected right now (sidecar inputs), updated as they come and go.
    #[serde(default)]
    pub connected: Vec<String>,
    /// Per-stream files and schema.
    pub streams: BTreeMap<String, StreamEntry>,
    /// For each ring (its path in the run directory), the absolute offset
    /// below which every frame's rows are published (SPEC §6).
    #[serde(default)]
    pub rings: BTreeMap<String, u64>,
}

impl Manifest {
    /// Reads a `manifest.json` file (see [`RunDir::load_manifest`]).
    pub(crate) fn load(path: &Path) -> Result<Manifest, Error> {
        let bytes = std::fs::read(path).map_err(Error::io(format!("read {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Replaces the run's `manifest.json` atomically.
    pub(crate) fn store(&self, fs: &dyn FileSystem, run: &RunDir) -> Result<(), Error> {
        publish_bytes(fs, &run.manifest_path(), &self.to_json()).map(|_| ())
    }

    /// The contents of `manifest.json`.
    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    /// The manifest of a run that starts now.
    pub(crate) fn new_run(run_id: &str, now: String) -> Manifest {
        Manifest {
            collector_version: env!("CARGO_PKG_VERSION").into(),
            run_id: run_id.into(),
            status: RunStatus::Running,
            started_at: now.clone(),
            updated_at: now,
            last_checkpoint_at: None,
            candles: 0,
            checkpoints: 0,
            records: 0,
            published_seq: 0,
            rejected: 0,
            last_error: None,
            sources: Default::default(),
            connected: Vec::new(),
            streams: Default::default(),
            rings: Default::default(),
        }
    }

    /// Where file `entry` of `stream` is on disk, relative to the run: in the
    /// stream's generation folder when it has one (a reader that holds this
    /// manifest keeps reading the files it names there even after a later
    /// compaction swapped `RUN/STREAM` to a newer generation), else its `path`.
    pub fn file_rel_path(&self, stream: &str, entry: &FileEntry) -> String {
        match self.streams.get(stream).and_then(|s| s.dir.as_deref()) {
            Some(dir) => format!("{dir}/{}", entry.path.rsplit('/').next().unwrap_or(&entry.path)),
            None => entry.path.clone(),
        }
    }

    /// Rows published across all streams.
    pub fn total_rows(&self) -> u64 {
        self.streams.values().map(|s| s.rows).sum()
    }
}
