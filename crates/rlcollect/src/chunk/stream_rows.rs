//! [`StreamBuilder`]: one stream's rows of a chunk, appended as Arrow columns
//! on the producer's side (a reader thread, a `Handle`'s thread).
//!
//! Its schema is the stream's core columns, `_source`, then extra columns in
//! order of first appearance. It only grows (null → any, int → float,
//! otherwise text, SPEC §2); any change *seals* the rows so far into their own
//! [`StreamRows`], because the worker starts a new part at a schema change.
//! The builder keeps its widened schema for later chunks, so a producer's
//! chunks of one stream stay alike.

use crate::column::Column;
use crate::record::{extras_of, CoreField, Row};
use crate::schema::ColumnType;
use arrow_array::ArrayRef;

/// The column `_source`: the producer of each row.
pub(crate) const SOURCE_COLUMN: &str = "_source";

/// Finished rows of one stream, in input order.
#[derive(Debug, Clone)]
pub(crate) struct StreamRows {
    /// Name and type of every column of `columns`: core, `_source`, extras.
    pub fields: Vec<(String, ColumnType)>,
    /// How many of `fields` are core columns (then `_source`, then extras).
    pub core: usize,
    pub columns: Vec<ArrayRef>,
    /// Each row's position among the chunk's rows (all streams), increasing.
    pub rel: Vec<u32>,
}

/// Appends one stream's rows (see the module docs).
pub(crate) struct StreamBuilder {
    core: &'static [CoreField],
    fields: Vec<(String, ColumnType)>,
    /// Column by name (ahash: two lookups per extra field per row).
    index: std::collections::HashMap<String, usize, ahash::RandomState>,
    columns: Vec<Column>,
    rel: Vec<u32>,
    sealed: Vec<StreamRows>,
}

impl StreamBuilder {
    pub(crate) fn new(core: &'static [CoreField]) -> Self {
        let mut fields: Vec<(String, ColumnType)> = core.iter().map(|f| (f.name.to_owned(), f.ty)).collect();
        fields.push((SOURCE_COLUMN.into(), ColumnType::String));
        let index = fields.iter().enumerate().map(|(i, (n, _))| (n.clone(), i)).collect();
        let columns = fields.iter().map(|(_, t)| Column::new(*t)).collect();
        StreamBuilder {
            core,
            fields,
            index,
            columns,
            rel: Vec::new(),
            sealed: Vec::new(),
        }
    }

    /// Appends `row` (produced by `source` unless it names its own) as the
    /// chunk's row number `rel`.
    pub(crate) fn append(&mut self, row: &dyn Row, source: &str, rel: u32) {
        if self.needs_schema_change(row) {
            self.seal();
            self.widen_schema(row);
        }
        let fixed = self.core.len() + 1;
        let n = self.rel.len();
        let (head, extras) = self.columns.split_at_mut(fixed);
        row.push_core(&mut head[..self.core.len()]);
        head[self.core.len()].push_str(Some(row.source().unwrap_or(source)));
        for (name, value) in extras_of(row) {
            let i = self.index[name] - fixed;
            // A name sent twice in one record is kept once (last value wins,
            // as in `Extras::insert`); guard against double pushes anyway.
            if extras[i].len() == n {
                extras[i].push_value(value);
            }
        }
        for col in extras.iter_mut().filter(|c| c.len() == n) {
            col.push_null();
        }
        self.rel.push(rel);
    }

    fn needs_schema_change(&self, row: &dyn Row) -> bool {
        extras_of(row).any(|(name, value)| match self.index.get(name) {
            None => true,
            Some(&i) => {
                let have = self.fields[i].1;
                have.merge(value.column_type()) != have
            }
        })
    }

    fn widen_schema(&mut self, row: &dyn Row) {
        for (name, value) in extras_of(row) {
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

    /// Closes the rows appended so far into a finished [`StreamRows`].
    fn seal(&mut self) {
        if self.rel.is_empty() {
            return;
        }
        self.sealed.push(StreamRows {
            fields: self.fields.clone(),
            core: self.core.len(),
            columns: self.columns.iter_mut().map(Column::finish).collect(),
            rel: std::mem::take(&mut self.rel),
        });
    }

    /// Every row appended so far, as one or more [`StreamRows`] (more when
    /// the schema changed), oldest first. The schema stays for what follows.
    pub(crate) fn take(&mut self) -> Vec<StreamRows> {
        self.seal();
        std::mem::take(&mut self.sealed)
    }
}
