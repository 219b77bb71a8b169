//! The Delta transaction log of one table: reading what it holds (latest
//! version, schema, the live files and where they came from) and committing one version with
//! put-if-absent, so concurrent publishers from many hosts need no lock
//! service: the loser of a race reads the log again and retries.

use crate::schema::{DeltaSchema, PARTITION};
use crate::store::Destination;
use crate::PublishError;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The `add` tag naming the host and run a file came from.
pub(crate) const ORIGIN_TAG: &str = "rlcollect.origin";

/// What a table's log says now.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The latest version (`None`: no table yet).
    pub(crate) version: Option<u64>,
    /// The `metaData` action in force.
    pub(crate) metadata: Option<Value>,
    /// The `protocol` action in force.
    pub(crate) protocol: Option<Value>,
    /// The live `add` actions by path (a `remove` takes one out).
    pub(crate) adds: BTreeMap<String, Value>,
}

impl Snapshot {
    /// The table's state as checkpoint actions: protocol, metaData, adds.
    pub(crate) fn state(&self) -> Vec<Value> {
        let mut actions = Vec::with_capacity(self.adds.len() + 2);
        actions.extend(self.protocol.iter().map(|p| json!({ "protocol": p })));
        actions.extend(self.metadata.iter().map(|m| json!({ "metaData": m })));
        actions.extend(self.adds.values().map(|a| json!({ "add": a })));
        actions
    }

    /// The live files that came from `origin` (`host/run`), by path.
    pub(crate) fn files_of<'a>(&'a self, origin: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.adds
            .iter()
            .filter(move |(_, add)| add.pointer(&origin_pointer()).and_then(Value::as_str) == Some(origin))
            .map(|(path, add)| (path.as_str(), add))
    }

    /// The table's schema, if it exists.
    pub(crate) fn schema(&self) -> Result<Option<DeltaSchema>, PublishError> {
        let Some(meta) = &self.metadata else { return Ok(None) };
        let text = meta["schemaString"]
            .as_str()
            .ok_or_else(|| PublishError::Table("metaData without schemaString".into()))?;
        DeltaSchema::parse(text).map(Some)
    }
}

/// Where the origin tag is in an `add` (a JSON pointer).
fn origin_pointer() -> String {
    format!("/tags/{}", ORIGIN_TAG.replace('~', "~0").replace('/', "~1"))
}

fn log_dir(dest: &Destination, table: &str) -> ObjectPath {
    dest.prefix.clone().join(table).join("_delta_log")
}

/// The version of a commit file name (`00000000000000000042.json`).
fn commit_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Reads table `table` (a folder under the destination's prefix): its
/// latest checkpoint, if any, then every JSON commit after it.
pub(crate) async fn load(dest: &Destination, table: &str) -> Result<Snapshot, PublishError> {
    let dir = log_dir(dest, table);
    let mut snapshot = Snapshot::default();
    let start = match crate::checkpoint::read_latest(dest, table).await? {
        Some((version, lines)) => {
            apply_commit(&mut snapshot, &lines)?;
            snapshot.version = Some(version);
            version + 1
        }
        None => 0,
    };
    let listed: Vec<_> = dest.store.list(Some(&dir)).try_collect().await?;
    let mut versions: Vec<u64> = listed
        .iter()
        .filter_map(|m| commit_version(m.location.filename()?))
        .filter(|&v| v >= start)
        .collect();
    versions.sort_unstable();
    let contiguous = versions.iter().zip(start..).all(|(&v, want)| v == want);
    if !contiguous {
        return Err(PublishError::Table(format!(
            "{}/{table}: the log misses a commit after version {start} (cleaned up without a checkpoint?)",
            dest.url
        )));
    }
    for v in versions {
        let bytes = dest
            .store
            .get(&dir.clone().join(format!("{v:020}.json")))
            .await?
            .bytes()
            .await?;
        apply_commit(&mut snapshot, &bytes)?;
        snapshot.version = Some(v);
    }
    Ok(snapshot)
}

fn apply_commit(snapshot: &mut Snapshot, bytes: &[u8]) -> Result<(), PublishError> {
    for line in bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
    {
        let action: Value =
            serde_json::from_slice(line).map_err(|e| PublishError::Table(format!("unreadable log line: {e}")))?;
        if let Some(meta) = action.get("metaData") {
            snapshot.metadata = Some(meta.clone());
        }
        if let Some(protocol) = action.get("protocol") {
            snapshot.protocol = Some(protocol.clone());
        }
        if let Some(add) = action.get("add") {
            let path = add["path"].as_str().unwrap_or_default().to_owned();
            snapshot.adds.insert(path, add.clone());
        }
        if let Some(path) = action.pointer("/remove/path").and_then(Value::as_str) {
            snapshot.adds.remove(path);
        }
    }
    Ok(())
}

/// The tables directly under the destination's prefix, sorted.
pub(crate) async fn tables(dest: &Destination) -> Result<Vec<String>, PublishError> {
    let mut names = Vec::new();
    let folders = dest.store.list_with_delimiter(Some(&dest.prefix)).await?;
    for folder in folders.common_prefixes {
        let Some(name) = folder.filename().map(str::to_owned) else {
            continue;
        };
        let log = folder.join("_delta_log");
        if !dest.store.list_with_delimiter(Some(&log)).await?.objects.is_empty() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The actions that create a table (version 0) with `schema`.
pub(crate) fn create_actions(schema: &DeltaSchema, now_ms: i64) -> Vec<Value> {
    vec![
        json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
        metadata_action(&new_table_id(now_ms), schema, now_ms),
    ]
}

/// A `metaData` action (also for a schema change: same `id`).
pub(crate) fn metadata_action(id: &str, schema: &DeltaSchema, now_ms: i64) -> Value {
    json!({"metaData": {
        "id": id,
        "format": {"provider": "parquet", "options": {}},
        "schemaString": schema.to_text(),
        "partitionColumns": [PARTITION],
        "configuration": {},
        "createdTime": now_ms,
    }})
}

/// A table id in UUID form, unique enough across hosts: time, process and
/// the std hasher's per-process random keys.
fn new_table_id(now_ms: i64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms);
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    let x = (u128::from(a) << 64) | u128::from(b);
    // Version 4, variant 1 bits, as a random UUID.
    let x = (x & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let s = format!("{x:032x}");
    format!("{}-{}-{}-{}-{}", &s[..8], &s[8..12], &s[12..16], &s[16..20], &s[20..])
}

/// Stores `actions` as version `version` of `table` if nobody did first.
/// `Ok(false)`: another writer took that version; read the log again.
pub(crate) async fn try_commit(
    dest: &Destination,
    table: &str,
    version: u64,
    actions: &[Value],
) -> Result<bool, PublishError> {
    let mut text = String::new();
    for a in actions {
        text.push_str(&a.to_string());
        text.push('\n');
    }
    let path = log_dir(dest, table).join(format!("{version:020}.json"));
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match dest.store.put_opts(&path, PutPayload::from(text), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_names_and_table_ids() {
        assert_eq!(commit_version("00000000000000000042.json"), Some(42));
        assert_eq!(commit_version("00000000000000000042.checkpoint.parquet"), None);
        assert_eq!(commit_version("42.json"), None);
        let id = new_table_id(1);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_table_id(1));
    }

    #[test]
    fn a_snapshot_follows_metadata_files_and_their_origins() {
        let mut s = Snapshot::default();
        let schema = crate::schema::evolve(None, &[]).unwrap();
        let mut text = String::new();
        for a in create_actions(&schema, 5) {
            text.push_str(&format!("{a}\n"));
        }
        text.push_str(&format!(
            "{}\n",
            json!({"add": {"path": "x", "tags": {ORIGIN_TAG: "h/r1"}}})
        ));
        text.push_str(&format!(
            "{}\n{}\n",
            json!({"add": {"path": "y", "tags": {ORIGIN_TAG: "h/r1"}}}),
            json!({"remove": {"path": "x"}})
        ));
        apply_commit(&mut s, text.as_bytes()).unwrap();
        let paths: Vec<&str> = s.files_of("h/r1").map(|(p, _)| p).collect();
        assert_eq!(paths, ["y"]);
        assert_eq!(s.files_of("h/r2").count(), 0);
        assert_eq!(s.schema().unwrap(), Some(schema));
    }
}
