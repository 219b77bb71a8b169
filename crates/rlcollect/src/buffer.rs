//! The rows of one stream received since the last checkpoint, on the worker:
//! chunks of finished Arrow columns, numbered and gathered into parts.
//!
//! A stream's schema is its core columns, the collector's `_seq`, `_source`,
//! `_ingested_at`, then extra columns in order of first appearance. The schema
//! only grows (null → any, int → float, otherwise text, SPEC §2). A chunk whose
//! schema widens the stream's *seals* the rows gathered so far into their own
//! part, because a Parquet file has one schema; a chunk that lacks some of the
//! stream's columns gets them as nulls, and narrower columns are widened.

use crate::chunk::StreamRows;
use crate::column::widen;
use crate::schema::ColumnType;
use crate::timestamp::Timestamp;
use arrow_array::{new_null_array, ArrayRef, RecordBatch, TimestampMillisecondArray, UInt64Array};
use arrow_schema::{Field, Schema};
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

/// Names of the columns the collector adds to every row.
pub(crate) const META_COLUMNS: [&str; 3] = ["_seq", "_source", "_ingested_at"];

/// Rows that will become one part file: batches of one schema.
#[derive(Debug, Clone)]
pub(crate) struct SealedBatch {
    pub batches: Vec<RecordBatch>,
    pub schema: Arc<Schema>,
    pub rows: usize,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// One stream's unpublished rows (see the module docs).
pub(crate) struct StreamBuffer {
    /// Core columns at the front of `fields`.
    core: usize,
    fields: Vec<(String, ColumnType)>,
    schema: Arc<Schema>,
    open: Option<SealedBatch>,
    sealed: VecDeque<SealedBatch>,
    /// Rows in `open` and `sealed`.
    pending: usize,
}

impl StreamBuffer {
    /// An empty buffer for a stream whose chunks look like `first`.
    pub(crate) fn new(first: &StreamRows) -> Self {
        let mut fields: Vec<(String, ColumnType)> = first.fields[..first.core].to_vec();
        let [seq, source, ingested_at] = META_COLUMNS;
        fields.push((seq.into(), ColumnType::UInt64));
        fields.push((source.into(), ColumnType::String));
        fields.push((ingested_at.into(), ColumnType::Timestamp));
        StreamBuffer {
            core: first.core,
            schema: arrow_schema(&fields),
            fields,
            open: None,
            sealed: VecDeque::new(),
            pending: 0,
        }
    }

    /// The current schema: name and type of every column.
    pub(crate) fn schema(&self) -> &[(String, ColumnType)] {
        &self.fields
    }

    /// Rows buffered and not yet published (sealed or not).
    pub(crate) fn pending_rows(&self) -> usize {
        self.pending
    }

    /// Appends rows `range` of `rows`; row `i` gets `_seq` = `base + rel[i]`.
    pub(crate) fn append(&mut self, rows: &StreamRows, range: Range<usize>, base: u64, ingested_at: Timestamp) {
        if range.is_empty() {
            return;
        }
        let before = self.schema.clone();
        if self.widen_schema(rows) {
            // The rows so far keep the schema they were built with.
            if let Some(open) = self.open.as_mut() {
                open.schema = before;
            }
            self.seal();
        }
        let len = range.len();
        let rel = &rows.rel[range.clone()];
        let (first_seq, last_seq) = (base + u64::from(rel[0]), base + u64::from(rel[len - 1]));
        let slice = |a: &ArrayRef| a.slice(range.start, len);
        let mut columns: Vec<ArrayRef> = rows.columns[..rows.core].iter().map(slice).collect();
        columns.push(Arc::new(UInt64Array::from_iter_values(
            rel.iter().map(|r| base + u64::from(*r)),
        )));
        columns.push(slice(&rows.columns[rows.core]));
        let at = TimestampMillisecondArray::from_value(ingested_at.0, len).with_timezone("UTC");
        columns.push(Arc::new(at));
        for (name, ty) in &self.fields[self.core + 3..] {
            let found = rows.fields[rows.core + 1..].iter().position(|(n, _)| n == name);
            columns.push(match found {
                Some(i) => {
                    let i = rows.core + 1 + i;
                    widen(&slice(&rows.columns[i]), rows.fields[i].1, *ty)
                }
                None => new_null_array(&ty.arrow(), len),
            });
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).expect("columns are built to the schema");
        let open = self.open.get_or_insert_with(|| SealedBatch {
            batches: Vec::new(),
            schema: self.schema.clone(),
            rows: 0,
            first_seq,
            last_seq,
        });
        open.batches.push(batch);
        open.rows += len;
        open.last_seq = last_seq;
        self.pending += len;
    }

    /// Merges the chunk's schema into the stream's; true when it changed (the
    /// rows so far must then be sealed first).
    fn widen_schema(&mut self, rows: &StreamRows) -> bool {
        let mut merged = self.fields.clone();
        for (name, ty) in &rows.fields[rows.core + 1..] {
            match merged[self.core + 3..].iter_mut().find(|(n, _)| n == name) {
                Some((_, have)) => *have = have.merge(*ty),
                None => merged.push((name.clone(), *ty)),
            }
        }
        if merged == self.fields {
            return false;
        }
        self.fields = merged;
        self.schema = arrow_schema(&self.fields);
        true
    }

    /// Closes the rows gathered so far into a part of their own.
    pub(crate) fn seal(&mut self) {
        if let Some(open) = self.open.take() {
            self.sealed.push_back(open);
        }
    }

    /// The smallest `_seq` not yet published, if any row waits.
    pub(crate) fn first_pending_seq(&self) -> Option<u64> {
        self.sealed.front().or(self.open.as_ref()).map(|b| b.first_seq)
    }

    /// The finished parts, oldest first.
    pub(crate) fn sealed(&self) -> impl Iterator<Item = &SealedBatch> {
        self.sealed.iter()
    }

    /// The oldest finished part, to be published.
    pub(crate) fn front(&self) -> Option<&SealedBatch> {
        self.sealed.front()
    }

    /// Drops the oldest finished part once it is safely published.
    pub(crate) fn pop_published(&mut self) {
        if let Some(b) = self.sealed.pop_front() {
            self.pending -= b.rows;
        }
    }
}

fn arrow_schema(fields: &[(String, ColumnType)]) -> Arc<Schema> {
    Arc::new(Schema::new(
        fields
            .iter()
            .map(|(name, ty)| Field::new(name, ty.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}
