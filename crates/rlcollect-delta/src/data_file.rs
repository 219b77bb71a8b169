//! A run's Parquet file as a Delta data file: columns cast to the table's
//! types (SPEC §8 mapping, `schema.rs`), the partition column left out (its
//! value is in the path), written to a local temp file, then uploaded:
//! one PUT when small, a multipart upload above [`MULTIPART_ABOVE`].

use crate::schema::{file_type, DeltaSchema};
use crate::store::Destination;
use crate::PublishError;
use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{Field, Schema, SchemaRef};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Files larger than this go up in parts of this size.
pub(crate) const MULTIPART_ABOVE: usize = 8 << 20;

/// Rewrites `source` for the table with `schema` into `temp`; returns rows.
pub(crate) fn convert(source: &Path, schema: &DeltaSchema, temp: &Path) -> Result<u64, PublishError> {
    let io = |what: &str, e: &dyn std::fmt::Display| PublishError::Local(format!("{what} {}: {e}", source.display()));
    let file = std::fs::File::open(source).map_err(|e| io("open", &e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| io("read", &e))?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| io("read", &e))?;
    let target = target_schema(&reader.schema(), schema);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let out = std::fs::File::create(temp).map_err(|e| io("create a temp file for", &e))?;
    let mut writer = ArrowWriter::try_new(out, target.clone(), Some(props)).map_err(|e| io("write", &e))?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| io("read", &e))?;
        rows += batch.num_rows() as u64;
        writer.write(&cast(&batch, &target)?).map_err(|e| io("write", &e))?;
    }
    writer.close().map_err(|e| io("write", &e))?;
    Ok(rows)
}

/// The columns of the data file: those of `source` the table has, with the
/// table's types.
fn target_schema(source: &SchemaRef, schema: &DeltaSchema) -> SchemaRef {
    let fields: Vec<Field> = source
        .fields()
        .iter()
        .filter_map(|f| Some(Field::new(f.name(), file_type(schema, f.name())?, true)))
        .collect();
    Arc::new(Schema::new(fields))
}

fn cast(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, PublishError> {
    let columns = target
        .fields()
        .iter()
        .map(|f| {
            let column = batch.column_by_name(f.name()).expect("the target is a subset");
            arrow_cast::cast(column, f.data_type())
                .map_err(|e| PublishError::Local(format!("cast column {} to {}: {e}", f.name(), f.data_type())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(|e| PublishError::Local(e.to_string()))
}

/// Uploads the local file `path` to `to`; returns its size.
pub(crate) async fn upload(dest: &Destination, path: &Path, to: &ObjectPath) -> Result<u64, PublishError> {
    let io = |e: std::io::Error| PublishError::Local(format!("read {}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size as usize <= MULTIPART_ABOVE {
        let bytes = std::fs::read(path).map_err(io)?;
        dest.store.put(to, PutPayload::from(bytes)).await?;
        return Ok(size);
    }
    let upload = dest.store.put_multipart(to).await?;
    let mut parts = WriteMultipart::new_with_chunk_size(upload, MULTIPART_ABOVE);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        // At most two parts in flight: bounded memory on a slow link.
        parts.wait_for_capacity(2).await?;
        parts.write(&buf[..n]);
    }
    parts.finish().await?;
    Ok(size)
}
