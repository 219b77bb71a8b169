//! Delta checkpoints, so a table's log stays quick to read however many runs
//! it holds: every [`EVERY`] versions, the publisher that committed the
//! version writes the table's state (protocol, metaData, every live `add`)
//! as `_delta_log/NNNNNNNNNNNNNNNNNNNN.checkpoint.parquet` in the checkpoint
//! schema of the Delta protocol, then `_delta_log/_last_checkpoint`. Readers
//! (and [`log::load`](crate::log::load)) start from it and read only the JSON
//! commits after it.
//!
//! Actions go through JSON both ways (arrow-json): a checkpoint row is the
//! same object as a log line, so one code path reads both. A failed
//! checkpoint costs nothing but speed: the JSON commits stay.

use crate::store::Destination;
use crate::PublishError;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde_json::{json, Value};
use std::sync::Arc;

/// A checkpoint every this many versions (as delta-rs and Spark do).
pub(crate) const EVERY: u64 = 10;

fn map() -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]);
    DataType::Map(
        Arc::new(Field::new("key_value", DataType::Struct(entries), false)),
        false,
    )
}

fn strukt(fields: Vec<Field>) -> DataType {
    DataType::Struct(Fields::from(fields))
}

/// The checkpoint schema of the Delta protocol (the actions we write or read).
fn schema() -> SchemaRef {
    use DataType::{Boolean, Int32, Int64, Utf8};
    let f = |name: &str, ty: DataType| Field::new(name, ty, true);
    Arc::new(Schema::new(vec![
        f(
            "txn",
            strukt(vec![f("appId", Utf8), f("version", Int64), f("lastUpdated", Int64)]),
        ),
        f(
            "add",
            strukt(vec![
                f("path", Utf8),
                f("partitionValues", map()),
                f("size", Int64),
                f("modificationTime", Int64),
                f("dataChange", Boolean),
                f("stats", Utf8),
                f("tags", map()),
            ]),
        ),
        f(
            "remove",
            strukt(vec![
                f("path", Utf8),
                f("deletionTimestamp", Int64),
                f("dataChange", Boolean),
                f("extendedFileMetadata", Boolean),
                f("partitionValues", map()),
                f("size", Int64),
                f("tags", map()),
            ]),
        ),
        f(
            "metaData",
            strukt(vec![
                f("id", Utf8),
                f("name", Utf8),
                f("description", Utf8),
                f("format", strukt(vec![f("provider", Utf8), f("options", map())])),
                f("schemaString", Utf8),
                f(
                    "partitionColumns",
                    DataType::List(Arc::new(Field::new("element", Utf8, true))),
                ),
                f("configuration", map()),
                f("createdTime", Int64),
            ]),
        ),
        f(
            "protocol",
            strukt(vec![f("minReaderVersion", Int32), f("minWriterVersion", Int32)]),
        ),
    ]))
}

fn log_path(dest: &Destination, table: &str, name: &str) -> ObjectPath {
    dest.prefix.clone().join(table).join("_delta_log").join(name)
}

/// Writes the checkpoint of `version` holding `actions` (one object each:
/// `{"protocol": …}`, `{"metaData": …}`, `{"add": …}`).
pub(crate) async fn write(
    dest: &Destination,
    table: &str,
    version: u64,
    actions: &[Value],
) -> Result<(), PublishError> {
    let text: String = actions.iter().map(|a| format!("{a}\n")).collect();
    let schema = schema();
    let bad = |e: &dyn std::fmt::Display| PublishError::Table(format!("checkpoint of {table}: {e}"));
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .build(std::io::Cursor::new(text))
        .map_err(|e| bad(&e))?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).map_err(|e| bad(&e))?;
    for batch in reader {
        writer.write(&batch.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    writer.close().map_err(|e| bad(&e))?;
    let name = format!("{version:020}.checkpoint.parquet");
    dest.store
        .put(&log_path(dest, table, &name), PutPayload::from(bytes))
        .await?;
    let last = json!({"version": version, "size": actions.len()}).to_string();
    dest.store
        .put(&log_path(dest, table, "_last_checkpoint"), PutPayload::from(last))
        .await?;
    Ok(())
}

/// The latest checkpoint, if any: its version and its actions as JSON.
pub(crate) async fn read_latest(dest: &Destination, table: &str) -> Result<Option<(u64, Vec<u8>)>, PublishError> {
    let last = match dest.store.get(&log_path(dest, table, "_last_checkpoint")).await {
        Ok(found) => found.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |e: &dyn std::fmt::Display| PublishError::Table(format!("checkpoint of {table}: {e}"));
    let last: Value = serde_json::from_slice(&last).map_err(|e| bad(&e))?;
    let version = last["version"]
        .as_u64()
        .ok_or_else(|| bad(&"_last_checkpoint without a version"))?;
    let name = format!("{version:020}.checkpoint.parquet");
    let bytes = dest.store.get(&log_path(dest, table, &name)).await?.bytes().await?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?;
    let mut lines = arrow_json::LineDelimitedWriter::new(Vec::new());
    for batch in reader {
        lines.write(&batch.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    lines.finish().map_err(|e| bad(&e))?;
    Ok(Some((version, lines.into_inner())))
}
