//! Taking in a chunk: its rows are numbered from the next `_seq` in the
//! order they were produced, logged (one frame for the whole chunk, before
//! anything else, so a checkpoint inside the chunk never publishes rows the
//! log does not hold), counted, and handed to the streams' buffers. Its events
//! (candles, checkpoint requests, rejected lines) run at their exact place
//! between the rows: a checkpoint after the N-th candle publishes exactly the
//! rows before it.

use super::{ActiveRun, RingMark};
use crate::buffer::StreamBuffer;
use crate::chunk::{Chunk, ChunkEvent, StreamRows};
use crate::schedule::Trigger;
use crate::timestamp::Timestamp;
use crate::wal::RingEnd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// Where the chunk's rows stand while its events run: how many are handed to
/// the buffers, and how far into each stream's rows that is.
struct Cursor {
    base: u64,
    done: u32,
    /// Per stream and per `StreamRows`: the next row to hand over.
    next: Vec<Vec<usize>>,
    /// The ring the chunk came from, and whether the chunk is in the log.
    ring: Option<RingMark>,
    logged: bool,
}

impl ActiveRun {
    /// Takes in a chunk from a producer (see the module docs).
    pub(crate) fn accept_chunk(&mut self, chunk: Chunk) {
        let base = self.next_seq;
        let logged = self.log_chunk(&chunk, base);
        self.take_chunk(chunk, base, logged);
    }

    /// Recovery: a chunk of rows read back from the log, whose first row had
    /// `_seq` `base` (its rows keep their `_seq`s).
    pub(crate) fn replay_chunk(&mut self, chunk: Chunk, base: u64) {
        self.next_seq = self.next_seq.max(base);
        self.take_chunk(chunk, base, false);
    }

    fn take_chunk(&mut self, chunk: Chunk, base: u64, logged: bool) {
        let Chunk {
            source: _,
            ingested_at,
            rows,
            streams,
            events,
            aggregates,
            lines: _,
            ring,
        } = chunk;
        self.agg.merge(aggregates);
        self.counted_through = self.counted_through.max(base + u64::from(rows));
        let mut cursor = Cursor {
            base,
            done: 0,
            next: streams.iter().map(|(_, parts)| vec![0; parts.len()]).collect(),
            ring,
            logged,
        };
        for event in events {
            match event {
                ChunkEvent::Candle { at, ring_end } => self.candle(at, ring_end, &streams, &mut cursor, ingested_at),
                ChunkEvent::Checkpoint { at, ring_end } => {
                    self.cut(at, ring_end, Trigger::Requested, &streams, &mut cursor, ingested_at)
                }
                ChunkEvent::Rejected(r) => self.reject(r),
            }
        }
        self.commit(rows, &streams, &mut cursor, ingested_at);
        if let Some(mark) = &cursor.ring {
            self.rings.batch(mark, self.next_seq, cursor.logged);
        }
        self.rejected.flush();
        self.maybe_checkpoint();
        self.publish_buffered_count();
    }

    /// A candle after `at` rows (itself row `at` when candles are kept):
    /// counted, and a checkpoint cut right there when it is the N-th.
    fn candle(
        &mut self,
        at: u32,
        ring_end: Option<u64>,
        streams: &[(Arc<str>, Vec<StreamRows>)],
        cursor: &mut Cursor,
        at_time: Timestamp,
    ) {
        self.schedule.candle();
        self.manifest.candles += 1;
        self.stats.candles.fetch_add(1, Relaxed);
        // Checked per candle, not per chunk: a chunk may hold many candles,
        // and each N-th one ends a checkpoint. Rows are handed over only
        // then, so a chunk stays in large slices.
        if let Some(trigger) = self.schedule.due(self.buffered_rows(), Instant::now()) {
            let upto = if self.settings.keep_candles { at + 1 } else { at };
            self.cut(upto, ring_end, trigger, streams, cursor, at_time);
        }
    }

    /// A checkpoint of the rows before the chunk's row `upto`. When the chunk
    /// came from a ring, the ring's consumed offset moves to `ring_end` with
    /// them: were it left at the chunk's start, a crash before the log's next
    /// sync would have the ring read again from there and store these
    /// published rows twice.
    fn cut(
        &mut self,
        upto: u32,
        ring_end: Option<u64>,
        trigger: Trigger,
        streams: &[(Arc<str>, Vec<StreamRows>)],
        cursor: &mut Cursor,
        at_time: Timestamp,
    ) {
        self.commit(upto, streams, cursor, at_time);
        if let (Some(mark), Some(end)) = (&cursor.ring, ring_end) {
            let through = RingMark { end, ..mark.clone() };
            self.rings.batch(&through, cursor.base + u64::from(upto), cursor.logged);
        }
        let _ = self.checkpoint(trigger);
    }

    /// Hands the chunk's rows below `upto` to the buffers, numbered.
    fn commit(&mut self, upto: u32, streams: &[(Arc<str>, Vec<StreamRows>)], cursor: &mut Cursor, at: Timestamp) {
        if upto <= cursor.done {
            return;
        }
        for ((name, parts), next) in streams.iter().zip(cursor.next.iter_mut()) {
            for (rows, next) in parts.iter().zip(next.iter_mut()) {
                let end = *next + rows.rel[*next..].partition_point(|r| *r < upto);
                if end == *next {
                    continue;
                }
                let buffer = match self.streams.get_mut(name) {
                    Some(b) => b,
                    None => self
                        .streams
                        .entry(name.clone())
                        .or_insert_with(|| StreamBuffer::new(rows)),
                };
                buffer.append(rows, *next..end, cursor.base, at);
                self.count_sources(rows, *next..end);
                *next = end;
            }
        }
        cursor.done = upto;
        self.next_seq = self.next_seq.max(cursor.base + u64::from(upto));
        self.manifest.records = self.next_seq;
        self.stats.records.store(self.next_seq, Relaxed);
    }

    /// Rows per `_source`, for the manifest.
    fn count_sources(&mut self, rows: &StreamRows, range: std::ops::Range<usize>) {
        use arrow_array::cast::AsArray;
        let sources = rows.columns[rows.core].as_string::<i32>();
        let mut last: Option<(&str, u64)> = None;
        for i in range {
            let s = sources.value(i);
            match &mut last {
                Some((name, n)) if *name == s => *n += 1,
                _ => {
                    if let Some((name, n)) = last.take() {
                        *self.manifest.sources.entry(name.to_owned()).or_default() += n;
                    }
                    last = Some((s, 1));
                }
            }
        }
        if let Some((name, n)) = last {
            *self.manifest.sources.entry(name.to_owned()).or_default() += n;
        }
    }

    /// Appends the chunk's rows (and where it ended in its ring) to the log as
    /// one frame, numbered from `base`. True when it is in the log.
    fn log_chunk(&mut self, chunk: &Chunk, base: u64) -> bool {
        let Some(log) = self.log.as_mut() else { return false };
        if chunk.rows == 0 && chunk.ring.is_none() {
            return true;
        }
        let end = chunk.ring.as_ref().map(|m| RingEnd {
            ring: &m.name,
            end: m.end,
        });
        let result = log
            .wal
            .append_batch(base, chunk.ingested_at, &chunk.source, end, chunk.lines.iter());
        let ok = result.is_ok();
        self.note_log_result(result);
        ok
    }
}

impl ActiveRun {
    /// Recovery: a logged chunk ended at `end` in ring `name`, and its rows
    /// are all below `seq_bound`.
    pub(crate) fn replay_ring(&mut self, name: &str, end: u64, seq_bound: u64) {
        let mark = super::RingMark {
            name: name.into(),
            map: None,
            end,
        };
        self.rings.batch(&mark, seq_bound, false);
    }
}
