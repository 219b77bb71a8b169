//! The rows of one stream received since the last checkpoint, as Arrow columns.
//!
//! A stream's schema is its core columns, the collector's `_seq`, `_source`,
//! `_ingested_at`, then extra columns in order of first appearance. The schema
//! only grows: a new extra field adds a column, a conflicting value widens one
//! (null → any, int → float, otherwise text). Any such change *seals* the
//! rows buffered so far into a finished batch (their own part file) and starts
//! a new batch with the wider schema, because a Parquet file has one schema.

use crate::column::Column;
use crate::record::{CoreField, Row};
use crate::schema::ColumnType;
use crate::timestamp::Timestamp;
use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Names of the columns the collector adds to every row.
pub(crate) const META_COLUMNS: [&str; 3] = ["_seq", "_source", "_ingested_at"];

/// Rows that will become one part file.
#[derive(Debug, Clone)]
pub(crate) struct SealedBatch {
    pub batch: RecordBatch,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// What the collector stamps on a row.
pub(crate) struct RowMeta<'a> {
    pub seq: u64,
    pub source: &'a str,
    pub ingested_at: Timestamp,
}

pub(crate) struct StreamBuffer {
    fields: Vec<(String, ColumnType)>,
    index: HashMap<String, usize>,
    /// Columns before the extras: core + meta.
    fixed: usize,
    columns: Vec<Column>,
    rows: usize,
    first_seq: u64,
    last_seq: u64,
    sealed: VecDeque<SealedBatch>,
    /// Rows in `sealed`.
    sealed_rows: usize,
}

impl StreamBuffer {
    pub(crate) fn new(core: &'static [CoreField]) -> Self {
        let mut fields: Vec<(String, ColumnType)> = core.iter().map(|f| (f.name.to_owned(), f.ty)).collect();
        let [seq, source, ingested_at] = META_COLUMNS;
        fields.push((seq.into(), ColumnType::UInt64));
        fields.push((source.into(), ColumnType::String));
        fields.push((ingested_at.into(), ColumnType::Timestamp));
        let index = fields.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        let columns = fields.iter().map(|(_, t)| Column::new(*t)).collect();
        StreamBuffer {
            fixed: fields.len(),
            fields,
            index,
            columns,
            rows: 0,
            first_seq: 0,
            last_seq: 0,
            sealed: VecDeque::new(),
            sealed_rows: 0,
        }
    }

    /// The current schema: name and type of every column.
    pub(crate) fn schema(&self) -> &[(String, ColumnType)] {
        &self.fields
    }

    /// Rows buffered and not yet published (sealed or not).
    pub(crate) fn pending_rows(&self) -> usize {
        self.rows + self.sealed_rows
    }

    pub(crate) fn append(&mut self, row: &dyn Row, meta: RowMeta<'_>) {
        if self.needs_schema_change(row) {
            self.seal();
            self.widen_schema(row);
        }
        let (fixed, extras) = self.columns.split_at_mut(self.fixed);
        let core = row.core_fields().len();
        row.push_core(&mut fixed[..core]);
        fixed[core].push_u64(Some(meta.seq));
        fixed[core + 1].push_str(Some(meta.source));
        fixed[core + 2].push_ts(Some(meta.ingested_at));
        for (name, value) in row.extra().iter() {
            let i = self.index[name] - self.fixed;
            // A name sent twice in one record is kept once (last value wins,
            // as in `Extras::insert`); guard against double pushes anyway.
            if extras[i].len() == self.rows {
                extras[i].push_value(value);
            }
        }
        for col in extras.iter_mut().filter(|c| c.len() == self.rows) {
            col.push_null();
        }
        if self.rows == 0 {
            self.first_seq = meta.seq;
        }
        self.last_seq = meta.seq;
        self.rows += 1;
    }

    fn needs_schema_change(&self, row: &dyn Row) -> bool {
        row.extra().iter().any(|(name, value)| match self.index.get(name) {
            None => true,
            Some(&i) => {
                let have = self.fields[i].1;
                have.merge(value.column_type()) != have
            }
        })
    }

    fn widen_schema(&mut self, row: &dyn Row) {
        for (name, value) in row.extra().iter() {
            match self.index.get(name) {
                None => {
                    self.index.insert(name.to_owned(), self.fields.len());
                    self.fields.push((name.to_owned(), value.column_type()));
                }
                Some(&i) => self.fields[i].1 = self.fields[i].1.merge(value.column_type()),
            }
        }
        // Sealing emptied every column; rebuild them with the new types.
        self.columns = self.fields.iter().map(|(_, t)| Column::new(*t)).collect();
    }

    /// Closes the rows buffered so far into a finished batch.
    pub(crate) fn seal(&mut self) {
        if self.rows == 0 {
            return;
        }
        let schema = Arc::new(Schema::new(
            self.fields
                .iter()
                .map(|(name, ty)| Field::new(name, ty.arrow(), true))
                .collect::<Vec<_>>(),
        ));
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        let batch = RecordBatch::try_new(schema, arrays).expect("columns are built to the schema, row by row");
        self.sealed.push_back(SealedBatch {
            batch,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
        });
        self.sealed_rows += self.rows;
        self.rows = 0;
    }

    /// The smallest `_seq` not yet published, if any row waits.
    pub(crate) fn first_pending_seq(&self) -> Option<u64> {
        match self.sealed.front() {
            Some(b) => Some(b.first_seq),
            None => (self.rows > 0).then_some(self.first_seq),
        }
    }

    /// The oldest finished batch, to be published.
    pub(crate) fn front(&self) -> Option<&SealedBatch> {
        self.sealed.front()
    }

    /// Drops the oldest finished batch once it is safely published.
    pub(crate) fn pop_published(&mut self) {
        if let Some(b) = self.sealed.pop_front() {
            self.sealed_rows -= b.batch.num_rows();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::UserRecord;
    use crate::value::{Extras, Value};
    use arrow_array::cast::AsArray;

    fn user(fields: &[(&str, Value)]) -> UserRecord {
        let mut extra = Extras::new();
        for (k, v) in fields {
            extra.insert(*k, v.clone());
        }
        UserRecord {
            stream: "s".into(),
            source: None,
            extra,
        }
    }

    fn push(buf: &mut StreamBuffer, seq: u64, fields: &[(&str, Value)]) {
        buf.append(
            &user(fields),
            RowMeta {
                seq,
                source: "t",
                ingested_at: Timestamp(0),
            },
        );
    }

    #[test]
    fn same_schema_stays_in_one_batch_and_missing_fields_are_null() {
        let mut b = StreamBuffer::new(&[]);
        push(&mut b, 0, &[("a", Value::Int(1)), ("b", Value::Str("x".into()))]);
        push(&mut b, 1, &[("a", Value::Int(2))]);
        b.seal();
        assert!(b.front().is_some());
        let batch = &b.front().unwrap().batch;
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column_by_name("b").unwrap().null_count(), 1);
        b.pop_published();
        assert!(b.front().is_none());
        assert_eq!(b.pending_rows(), 0);
    }

    #[test]
    fn new_field_seals_a_part_and_widens() {
        let mut b = StreamBuffer::new(&[]);
        push(&mut b, 0, &[("a", Value::Int(1))]);
        push(&mut b, 1, &[("a", Value::Float(2.5))]);
        push(&mut b, 2, &[("a", Value::Int(3)), ("n", Value::Null)]);
        push(&mut b, 3, &[("a", Value::Str("x".into()))]);
        push(&mut b, 4, &[("a", Value::Int(5))]);
        b.seal();
        let types: Vec<_> = std::iter::from_fn(|| {
            let f = b.front()?.clone();
            b.pop_published();
            Some((
                f.first_seq,
                f.last_seq,
                f.batch.schema().field_with_name("a").unwrap().data_type().clone(),
            ))
        })
        .collect();
        use arrow_schema::DataType::*;
        assert_eq!(
            types,
            vec![(0, 0, Int64), (1, 1, Float64), (2, 2, Float64), (3, 4, Utf8)]
        );
    }

    #[test]
    fn conflicting_values_are_json_text_in_a_string_column() {
        let mut b = StreamBuffer::new(&[]);
        push(&mut b, 0, &[("a", Value::Str("x".into()))]);
        push(&mut b, 1, &[("a", Value::Int(3))]);
        push(&mut b, 2, &[("a", Value::Bool(true))]);
        b.seal();
        let col = b
            .front()
            .unwrap()
            .batch
            .column_by_name("a")
            .unwrap()
            .as_string::<i32>()
            .clone();
        assert_eq!(col.iter().collect::<Vec<_>>(), vec![Some("x"), Some("3"), Some("true")]);
        assert_eq!(b.schema().last().unwrap().1, ColumnType::String);
    }
}
