//! Bringing one stream's table in line with what a run's manifest lists:
//! the one operation behind both `rlcollect publish` (an ended run, once)
//! and the live upload of `rlcollect run --out s3://...` (after every
//! checkpoint and compaction).
//!
//! The table's log is the only record of what is uploaded: each `add` is
//! tagged with its origin (`HOST/RUN`) and named `run_id=RUN/HOST-FILE`
//! after the local file, whose name never changes its rows (parts are
//! numbered, a merge is named after the parts it holds). So a sync is a
//! difference: files the manifest lists and the log lacks are uploaded and
//! added; files of this origin the log holds and the manifest no longer
//! lists (merged away by compaction) are removed, in the same commit as the
//! merged file that holds their rows. Readers of the log see each row once
//! at every version, and a sync killed anywhere is repeated to exactly once:
//! uploads nobody names are overwritten, a commit either landed or not.

use crate::log::{self, Snapshot, ORIGIN_TAG};
use crate::store::Destination;
use crate::{checkpoint, data_file, schema, PublishError, StreamPublished};
use object_store::path::Path as ObjectPath;
use rlcollect::StreamEntry;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

/// How commits that lose a race are retried before giving up.
const COMMIT_ATTEMPTS: usize = 50;

/// A local Parquet file of the run and its name in the table.
pub(crate) struct LocalFile {
    /// Where it is on disk now.
    pub(crate) path: PathBuf,
    /// `run_id=RUN/HOST-FILE`: its path in the table.
    pub(crate) table_path: String,
}

/// One stream of one run, to be made equal to its manifest entry.
pub(crate) struct StreamSync<'a> {
    pub(crate) dest: &'a Destination,
    pub(crate) stream: &'a str,
    pub(crate) entry: &'a StreamEntry,
    pub(crate) files: Vec<LocalFile>,
    pub(crate) run_id: &'a str,
    /// `HOST/RUN`, the tag of every file this run added.
    pub(crate) origin: &'a str,
}

/// What one commit changes.
struct Plan<'a> {
    upload: Vec<&'a LocalFile>,
    /// The `add`s (as in the log) of the files to take out.
    remove: Vec<Value>,
}

impl StreamSync<'_> {
    /// Uploads what is missing and commits; `UpToDate` when the table
    /// already matches the manifest.
    pub(crate) async fn run(&self) -> Result<StreamPublished, PublishError> {
        let started = Instant::now();
        let mut snapshot = log::load(self.dest, self.stream).await?;
        let loaded = started.elapsed();
        let plan = self.plan(&snapshot);
        if plan.upload.is_empty() && plan.remove.is_empty() {
            return Ok(StreamPublished::UpToDate);
        }
        let table_schema = schema::evolve(snapshot.schema()?.as_ref(), &self.entry.schema)?;
        let mut adds = self.upload(&plan.upload, &table_schema).await?;
        let uploaded = started.elapsed();
        let mut remove = plan.remove;
        for _ in 0..COMMIT_ATTEMPTS {
            let version = snapshot.version.map_or(0, |v| v + 1);
            let actions = self.actions(&snapshot, &adds, &remove)?;
            let committing = Instant::now();
            if log::try_commit(self.dest, self.stream, version, &actions).await? {
                let rows = adds.iter().map(|a| rows_of(&a["add"])).sum();
                tracing::info!(stream = self.stream, version, rows, removed = remove.len(), "committed");
                // benches/s3.sh reads these: where a sync's time goes.
                tracing::debug!(
                    stream = self.stream,
                    load_ms = loaded.as_secs_f64() * 1e3,
                    upload_ms = (uploaded - loaded).as_secs_f64() * 1e3,
                    commit_ms = committing.elapsed().as_secs_f64() * 1e3,
                    bytes = adds.iter().filter_map(|a| a["add"]["size"].as_u64()).sum::<u64>(),
                    "sync timing"
                );
                if version > 0 && version % checkpoint::EVERY == 0 {
                    self.checkpoint(version).await;
                }
                return Ok(StreamPublished::Committed {
                    added: adds.len(),
                    removed: remove.len(),
                    rows,
                    version,
                });
            }
            // Another writer took that version: read what it did, retry
            // with what is still to do (a zombie of this run may have done
            // part of it).
            snapshot = log::load(self.dest, self.stream).await?;
            adds.retain(|a| {
                !snapshot
                    .adds
                    .contains_key(a["add"]["path"].as_str().unwrap_or_default())
            });
            remove.retain(|r| snapshot.adds.contains_key(r["path"].as_str().unwrap_or_default()));
            if adds.is_empty() && remove.is_empty() {
                return Ok(StreamPublished::UpToDate);
            }
        }
        Err(PublishError::Table(format!(
            "{}: gave up after {COMMIT_ATTEMPTS} lost commit races",
            self.stream
        )))
    }

    /// The files to upload (listed locally, not in the table) and the
    /// table's files of this run to remove (no longer listed locally).
    fn plan<'s>(&'s self, snapshot: &Snapshot) -> Plan<'s> {
        let listed: HashSet<&str> = self.files.iter().map(|f| f.table_path.as_str()).collect();
        let upload = self
            .files
            .iter()
            .filter(|f| !snapshot.adds.contains_key(&f.table_path))
            .collect();
        let remove = snapshot
            .files_of(self.origin)
            .filter(|(path, _)| !listed.contains(path))
            .map(|(_, add)| add.clone())
            .collect();
        Plan { upload, remove }
    }

    /// Writes the checkpoint of `version` (just committed). A failure is
    /// logged: the JSON commits are all still there.
    async fn checkpoint(&self, version: u64) {
        let result = async {
            let snapshot = log::load(self.dest, self.stream).await?;
            if snapshot.version != Some(version) {
                return Ok(()); // others committed meanwhile; one of them checkpoints later
            }
            checkpoint::write(self.dest, self.stream, version, &snapshot.state()).await
        };
        if let Err(e) = result.await {
            tracing::warn!(stream = self.stream, version, "no checkpoint written: {e}");
        }
    }

    /// Converts and uploads `files`; returns their `add` actions.
    async fn upload(&self, files: &[&LocalFile], schema: &schema::DeltaSchema) -> Result<Vec<Value>, PublishError> {
        let table = self.dest.prefix.clone().join(self.stream);
        let temp = tempfile::Builder::new()
            .prefix("rlcollect-publish-")
            .suffix(".parquet")
            .tempfile()
            .map_err(|e| PublishError::Local(format!("cannot make a temp file: {e}")))?;
        let mut adds = Vec::with_capacity(files.len());
        for file in files {
            let rows = data_file::convert(&file.path, schema, temp.path())?;
            let to = file.table_path.split('/').fold(table.clone(), ObjectPath::join);
            let size = data_file::upload(self.dest, temp.path(), &to).await?;
            adds.push(json!({"add": {
                "path": file.table_path,
                "partitionValues": {schema::PARTITION: self.run_id},
                "size": size,
                "modificationTime": chrono::Utc::now().timestamp_millis(),
                "dataChange": true,
                "stats": json!({"numRecords": rows}).to_string(),
                "tags": {ORIGIN_TAG: self.origin},
            }}));
        }
        Ok(adds)
    }

    /// The actions of the commit: the table's creation or a schema change
    /// when needed, the adds and removes, and `commitInfo`.
    fn actions(&self, snapshot: &Snapshot, adds: &[Value], removed: &[Value]) -> Result<Vec<Value>, PublishError> {
        let now = chrono::Utc::now().timestamp_millis();
        // The schema again: a commit that won the race may have grown it.
        let schema = schema::evolve(snapshot.schema()?.as_ref(), &self.entry.schema)?;
        let mut actions = match (&snapshot.metadata, snapshot.schema()?) {
            (None, _) => log::create_actions(&schema, now),
            (Some(meta), Some(old)) if old != schema => {
                vec![log::metadata_action(
                    meta["id"].as_str().unwrap_or_default(),
                    &schema,
                    now,
                )]
            }
            _ => vec![],
        };
        // A commit that only rewrites rows already in the table (a merge)
        // changes no data: streaming readers skip it instead of reading
        // those rows again.
        let rows_in: u64 = adds.iter().map(|a| rows_of(&a["add"])).sum();
        let rows_out: u64 = removed.iter().map(rows_of).sum();
        let rewrite = !removed.is_empty() && rows_in == rows_out;
        for add in adds {
            let mut add = add.clone();
            add["add"]["dataChange"] = json!(!rewrite);
            actions.push(add);
        }
        actions.extend(removed.iter().map(|add| remove_action(add, now, !rewrite)));
        let operation = if rewrite { "OPTIMIZE" } else { "WRITE" };
        actions.push(json!({"commitInfo": {
            "timestamp": now,
            "operation": operation,
            "operationParameters": {"mode": "Append", "partitionBy": format!("[\"{}\"]", schema::PARTITION)},
            "clientVersion": concat!("rlcollect-", env!("CARGO_PKG_VERSION")),
            "rlcollect.origin": self.origin,
        }}));
        Ok(actions)
    }
}

/// The `remove` action that takes out the file `add` added.
fn remove_action(add: &Value, now_ms: i64, data_change: bool) -> Value {
    json!({"remove": {
        "path": add["path"],
        "deletionTimestamp": now_ms,
        "dataChange": data_change,
        "extendedFileMetadata": true,
        "partitionValues": add["partitionValues"],
        "size": add["size"],
    }})
}

/// The row count an `add` records in its stats.
fn rows_of(add: &Value) -> u64 {
    add["stats"]
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|stats| stats["numRecords"].as_u64())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remove_names_the_file_and_rows_come_from_the_stats() {
        let add = json!({"path": "run_id=r/h-part-000001.parquet", "partitionValues": {"run_id": "r"},
                         "size": 10, "stats": "{\"numRecords\":7}"});
        assert_eq!(rows_of(&add), 7);
        assert_eq!(rows_of(&json!({})), 0);
        let remove = remove_action(&add, 5, false);
        assert_eq!(remove["remove"]["path"], add["path"]);
        assert_eq!(remove["remove"]["dataChange"], json!(false));
        assert_eq!(remove["remove"]["partitionValues"]["run_id"], "r");
    }
}
