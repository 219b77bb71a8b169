//! Chunks: what a producer hands the worker. A reader (or a `Handle`'s
//! thread) decodes records straight into per-stream Arrow columns, counts them
//! into partial statistics, and keeps the lines of the stored rows for the
//! write-ahead log; the worker then only numbers the rows, logs them, and runs
//! the checkpoint policy (ARCHITECTURE.md "Where each byte goes").
//!
//! * `stream_rows.rs`: one stream's rows as columns.
//! * `log_lines.rs`: the stored rows' lines, in recycled buffers.

mod log_lines;
mod stream_rows;

pub(crate) use log_lines::{LinesPool, LogLines};
pub(crate) use stream_rows::StreamRows;

use crate::active_run::RingMark;
use crate::error::DecodeError;
use crate::record::{Control, Kind, LineScratch, ParsedLine, Record, Row};
use crate::rejected_log::Rejected;
use crate::summary::Aggregates;
use crate::timestamp::Timestamp;
use std::sync::Arc;
use stream_rows::StreamBuilder;

/// Something that happened between rows, in input order.
#[derive(Debug)]
pub(crate) enum ChunkEvent {
    /// A candle record after `at` of the chunk's rows (it may also be a
    /// stored row: then it is row `at`). `ring_end`: the ring offset after
    /// its frame, when it came from a ring.
    Candle { at: u32, ring_end: Option<u64> },
    /// A checkpoint request after `at` rows (`ring_end` as for a candle).
    Checkpoint { at: u32, ring_end: Option<u64> },
    /// A line that could not be decoded.
    Rejected(Rejected),
}

/// Decoded records of one producer, in input order.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The `_source` of rows that name none.
    pub source: Arc<str>,
    /// When the rows arrived.
    pub ingested_at: Timestamp,
    /// Rows stored (all streams); row `r` gets `_seq` = base + `r`.
    pub rows: u32,
    /// The rows, per stream.
    pub streams: Vec<(Arc<str>, Vec<StreamRows>)>,
    pub events: Vec<ChunkEvent>,
    /// Trades, episodes and decisions counted as they were appended.
    pub aggregates: Aggregates,
    /// The stored rows' lines, in row order: the write-ahead log stores
    /// these bytes as read.
    pub lines: LogLines,
    /// The ring the lines came from, and the offset after the last of them.
    pub ring: Option<RingMark>,
}

impl Chunk {
    /// Whether a checkpoint was requested among its records.
    pub(crate) fn requests_checkpoint(&self) -> bool {
        self.events.iter().any(|e| matches!(e, ChunkEvent::Checkpoint { .. }))
    }
}

/// Builds a [`Chunk`] record by record.
pub(crate) struct ChunkBuilder {
    source: Arc<str>,
    keep_candles: bool,
    /// Keep each stored row's line for the write-ahead log (encoding rows
    /// that come without one).
    keep_lines: bool,
    streams: std::collections::HashMap<Arc<str>, StreamBuilder, ahash::RandomState>,
    /// Streams in order of first appearance in this builder.
    order: Vec<Arc<str>>,
    rows: u32,
    events: Vec<ChunkEvent>,
    aggregates: Aggregates,
    lines: LogLines,
    pool: LinesPool,
    /// The ring offset after the frame being decoded, if it came from a ring.
    ring_offset: Option<u64>,
    /// Vectors the next line's decoding reuses.
    scratch: LineScratch,
}

impl ChunkBuilder {
    /// A builder for records of `source` (unless a record names its own).
    /// With `keep_candles`, candle records are stored rows too; with
    /// `keep_lines`, each stored row's line is kept for the write-ahead log.
    pub(crate) fn new(source: Arc<str>, keep_candles: bool, keep_lines: bool) -> Self {
        ChunkBuilder {
            source,
            keep_candles,
            keep_lines,
            streams: Default::default(),
            order: Vec::new(),
            rows: 0,
            events: Vec::new(),
            aggregates: Aggregates::default(),
            lines: LogLines::default(),
            pool: LinesPool::new(),
            ring_offset: None,
            scratch: LineScratch::default(),
        }
    }

    /// Takes buffers for the log's lines from `pool` (shared with other builders).
    pub(crate) fn with_pool(mut self, pool: LinesPool) -> Self {
        self.pool = pool;
        self
    }

    /// The next lines come from a ring frame that ends at offset `end`.
    /// Candles and checkpoint requests carry it: a checkpoint cut inside a
    /// chunk then knows how far into the ring its rows reach.
    pub(crate) fn at_ring_offset(&mut self, end: u64) {
        self.ring_offset = Some(end);
    }

    /// Records (rows, candles, controls, rejections) since the last chunk.
    pub(crate) fn len(&self) -> usize {
        self.rows as usize + self.events.len()
    }

    /// Rows appended since the last chunk.
    pub(crate) fn rows(&self) -> u32 {
        self.rows
    }

    /// The source of records that name none, from now on.
    pub(crate) fn set_source(&mut self, source: Arc<str>) {
        self.source = source;
    }

    pub(crate) fn source(&self) -> &Arc<str> {
        &self.source
    }

    /// Appends one decoded record; `line` is its NDJSON text when there is
    /// one (kept for the log). `counted`: whether it goes into the statistics
    /// (replayed rows that the summary holds already do not).
    pub(crate) fn push(&mut self, record: &Record, line: Option<&[u8]>, counted: bool) {
        let row: &dyn Row = match record {
            Record::Control(Control::Checkpoint) => {
                self.events.push(ChunkEvent::Checkpoint {
                    at: self.rows,
                    ring_end: self.ring_offset,
                });
                return;
            }
            // A reader consumes `hello` and `bye` itself.
            Record::Control(_) => return,
            Record::Candle(c) => {
                self.events.push(ChunkEvent::Candle {
                    at: self.rows,
                    ring_end: self.ring_offset,
                });
                if !self.keep_candles {
                    return;
                }
                c
            }
            other => match other.row() {
                Some(row) => row,
                None => return,
            },
        };
        if counted {
            self.aggregates.account(record);
        }
        self.append_row(row, line);
    }

    /// Decodes one NDJSON line and appends it (no copy of its strings but
    /// into the columns and the log's lines). A `hello` or `bye` is handed
    /// back: the reader acts on those.
    pub(crate) fn push_line(&mut self, line: &[u8]) -> Result<Option<Control>, DecodeError> {
        let mut parsed = ParsedLine::parse_with(line, &mut self.scratch)?;
        match &parsed.kind {
            Kind::Control(Control::Checkpoint) => {
                self.events.push(ChunkEvent::Checkpoint {
                    at: self.rows,
                    ring_end: self.ring_offset,
                });
                return Ok(None);
            }
            Kind::Control(other) => return Ok(Some(other.clone())),
            Kind::Core(def) if def.wire == "candle" => {
                self.events.push(ChunkEvent::Candle {
                    at: self.rows,
                    ring_end: self.ring_offset,
                });
                if !self.keep_candles {
                    return Ok(None);
                }
            }
            _ => self.aggregates.account_parsed(&parsed),
        }
        self.append_row(&parsed, Some(line));
        self.scratch.recycle(&mut parsed);
        Ok(None)
    }

    fn append_row(&mut self, row: &dyn Row, line: Option<&[u8]>) {
        let name = row.stream_name();
        let builder = match self.streams.get_mut(name) {
            Some(b) => b,
            None => {
                let key: Arc<str> = name.into();
                self.order.push(key.clone());
                self.streams
                    .entry(key)
                    .or_insert_with(|| StreamBuilder::new(row.core_fields()))
            }
        };
        builder.append(row, &self.source, self.rows);
        if self.keep_lines {
            match line {
                Some(line) => self.lines.push(line),
                None => self.lines.push_with(|out| row.write_json(out)),
            }
        }
        self.rows += 1;
    }

    /// A line that could not be decoded.
    pub(crate) fn reject(&mut self, rejected: Rejected) {
        self.events.push(ChunkEvent::Rejected(rejected));
    }

    /// Everything since the last chunk, as a chunk; the builder starts over
    /// (keeping each stream's schema, with lines from its pool).
    pub(crate) fn take(&mut self, ring: Option<RingMark>) -> Chunk {
        let streams = self
            .order
            .iter()
            .filter_map(|name| {
                let rows = self.streams.get_mut(name)?.take();
                (!rows.is_empty()).then(|| (name.clone(), rows))
            })
            .collect();
        let lines = self.pool.next(&self.lines);
        let chunk = Chunk {
            source: self.source.clone(),
            ingested_at: Timestamp::now(),
            rows: self.rows,
            streams,
            events: std::mem::take(&mut self.events),
            aggregates: std::mem::take(&mut self.aggregates),
            lines: std::mem::replace(&mut self.lines, lines),
            ring,
        };
        self.rows = 0;
        chunk
    }
}

#[cfg(test)]
mod tests;
