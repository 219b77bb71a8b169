//! Lines into decoded batches: a [`Pump`] decodes each complete line (or ring
//! frame), keeps the line's bytes for the write-ahead log, turns bad lines
//! into rejections, and sends a batch when it is full or the reader is about to
//! block.

use super::{ReadCounts, ReaderOptions, Readers, Session, MIN_BATCH_BYTES, RAW_CUT};
use crate::active_run::RingMark;
use crate::chunk::ChunkBuilder;
use crate::collector::Handle;
use crate::error::DecodeError;
use crate::record::Control;
use crate::rejected_log::Rejected;
use crate::ring::map::RingMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a line asks of the reader beyond being decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// A `hello` that names a ring: read that ring from now on.
    Ring(String),
    /// A `bye`: the producer leaves.
    Bye,
}

/// The decoding state of one reader.
pub(super) struct Pump<'a> {
    handle: &'a Handle,
    /// The answer to a `hello` that names no ring.
    hello_no_ring: &'a str,
    session: &'a mut dyn Session,
    opts: ReaderOptions,
    chunk: ChunkBuilder,
    counts: ReadCounts,
    /// Input bytes decoded into the chunk being built.
    chunk_bytes: usize,
    /// Counts this reader among those sharing the batch budget.
    active: Active<'a>,
    /// This reader's share of the budget, as of its last batch.
    share: usize,
    /// Set while skipping the rest of an over-long line: its length so far and its head.
    overlong: Option<(usize, Vec<u8>)>,
    /// The ring being read, if any.
    ring: Option<RingCursor>,
}

/// One reader counted among those building batches while it lives.
struct Active<'a>(&'a AtomicUsize);

impl<'a> Active<'a> {
    fn new(readers: &'a AtomicUsize) -> Self {
        readers.fetch_add(1, Ordering::Relaxed);
        Active(readers)
    }

    /// This reader's share of `budget` bytes, now.
    fn share(&self, budget: usize) -> usize {
        (budget / self.0.load(Ordering::Relaxed).max(1)).max(MIN_BATCH_BYTES)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where a pump is in the ring it reads.
struct RingCursor {
    name: Arc<str>,
    map: Arc<RingMap>,
    /// The offset after the last frame decoded.
    end: u64,
    /// The offset the last batch sent carried.
    sent: u64,
}

impl<'a> Pump<'a> {
    pub(super) fn new(readers: &'a Readers, session: &'a mut dyn Session, source: &str) -> Self {
        let (keep_candles, keep_lines) = readers.handle.chunk_settings();
        let active = Active::new(&readers.active);
        let share = active.share(readers.opts.batch_budget);
        Pump {
            handle: &readers.handle,
            hello_no_ring: &readers.answers.no_ring,
            session,
            opts: readers.opts,
            chunk: ChunkBuilder::new(source.into(), keep_candles, keep_lines)
                .with_pool(readers.handle.lines_pool().clone()),
            counts: ReadCounts::default(),
            chunk_bytes: 0,
            active,
            share,
            overlong: None,
            ring: None,
        }
    }

    pub(super) fn counts(&self) -> ReadCounts {
        self.counts
    }

    pub(super) fn session(&mut self) -> &mut dyn Session {
        &mut *self.session
    }

    /// From now on frames come from this ring, starting after `from`.
    pub(super) fn read_ring(&mut self, name: Arc<str>, map: Arc<RingMap>, from: u64) {
        self.ring = Some(RingCursor {
            name,
            map,
            end: from,
            sent: from,
        });
    }

    /// Handles every complete line in `data`, stopping after a line that asks
    /// for an [`Action`]; returns how many bytes it used, and the action.
    pub(super) fn lines(&mut self, data: &[u8]) -> Result<(usize, Option<Action>), ()> {
        let mut used = 0;
        while let Some(nl) = memchr::memchr(b'\n', &data[used..]) {
            let line = &data[used..used + nl];
            used += nl + 1;
            let action = match self.overlong.take() {
                Some((len, head)) => {
                    self.reject_overlong(len + line.len(), head);
                    None
                }
                None => self.line(line),
            };
            if self.chunk_full() && !self.flush() {
                return Err(());
            }
            if action.is_some() {
                return Ok((used, action));
            }
        }
        Ok((used, None))
    }

    /// One ring frame, whose end is at absolute offset `end`. A `bye` or a
    /// ring-naming `hello` inside a ring means nothing: the socket carries those.
    pub(super) fn frame(&mut self, payload: &[u8], end: u64) -> Result<(), ()> {
        self.chunk.at_ring_offset(end);
        let _ = self.line(payload);
        if let Some(ring) = self.ring.as_mut() {
            ring.end = end;
        }
        if self.chunk_full() && !self.flush() {
            return Err(());
        }
        Ok(())
    }

    /// True while the rest of an over-long line is being skipped.
    pub(super) fn skipping_overlong(&self) -> bool {
        self.overlong.is_some()
    }

    /// `chunk` is (more of) a line longer than the limit, with no newline
    /// yet: keeps its head for the report and counts the rest.
    pub(super) fn skip_overlong(&mut self, chunk: &[u8]) {
        let (len, head) = self
            .overlong
            .take()
            .unwrap_or_else(|| (0, chunk[..RAW_CUT.min(chunk.len())].to_vec()));
        self.overlong = Some((len + chunk.len(), head));
    }

    /// At end of input: the last line without `\n` is accepted (SPEC §2).
    pub(super) fn last_line(&mut self, rest: &[u8]) -> Option<Action> {
        if let Some((len, head)) = self.overlong.take() {
            self.reject_overlong(len + rest.len(), head);
            None
        } else if !rest.is_empty() {
            self.line(rest)
        } else {
            None
        }
    }

    /// Whether the chunk being built holds a batch (records or bytes).
    fn chunk_full(&self) -> bool {
        self.chunk.len() >= self.opts.batch_records || self.chunk_bytes >= self.share
    }

    /// Sends what was decoded as a chunk; false when the collector is gone.
    /// A ring's chunk carries where it ended, even with no line in it.
    pub(super) fn flush(&mut self) -> bool {
        // Blank lines count bytes but no records: they start no batch either.
        self.chunk_bytes = 0;
        let moved = self.ring.as_ref().is_some_and(|r| r.end > r.sent);
        if self.chunk.len() == 0 && !moved {
            return true;
        }
        let ring = self.ring.as_mut().map(|r| {
            r.sent = r.end;
            RingMark {
                name: r.name.clone(),
                map: Some(r.map.clone()),
                end: r.end,
            }
        });
        self.share = self.active.share(self.opts.batch_budget);
        self.handle.send_chunk(self.chunk.take(ring)).is_ok()
    }

    /// Decodes one line; returns the action it asks for, if any.
    fn line(&mut self, raw: &[u8]) -> Option<Action> {
        self.counts.lines += 1;
        self.chunk_bytes += raw.len() + 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if line.len() > self.opts.max_line_bytes {
            let err = DecodeError::LineTooLong {
                len: line.len(),
                max: self.opts.max_line_bytes,
            };
            self.reject(line, err);
            return None;
        }
        match self.chunk.push_line(line) {
            Ok(None) => {
                self.counts.records += 1;
                None
            }
            Ok(Some(Control::Hello { source, ring })) => {
                self.flush();
                self.session.hello(&source);
                self.chunk.set_source(source.into());
                if ring.is_none() {
                    self.session.answer(self.hello_no_ring);
                }
                ring.map(Action::Ring)
            }
            Ok(Some(Control::Bye)) => Some(Action::Bye),
            Ok(Some(Control::Checkpoint)) => None,
            Err(err) => {
                self.reject(line, err);
                None
            }
        }
    }

    fn reject_overlong(&mut self, len: usize, head: Vec<u8>) {
        self.counts.lines += 1;
        let err = DecodeError::LineTooLong {
            len,
            max: self.opts.max_line_bytes,
        };
        self.reject(&head, err);
    }

    fn reject(&mut self, line: &[u8], err: DecodeError) {
        self.counts.rejected += 1;
        let cut = &line[..line.len().min(RAW_CUT)];
        let rejected = Rejected {
            line: self.counts.lines,
            source: self.chunk.source().to_string(),
            error: err.to_string(),
            raw: String::from_utf8_lossy(cut).into_owned(),
        };
        self.chunk.reject(rejected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_the_batch_budget_while_they_read() {
        let readers = AtomicUsize::new(0);
        let one = Active::new(&readers);
        assert_eq!(one.share(4 << 20), 4 << 20);
        let two = Active::new(&readers);
        assert_eq!(one.share(4 << 20), 2 << 20);
        assert_eq!(two.share(96 << 10), MIN_BATCH_BYTES, "never below the smallest share");
        drop(two);
        assert_eq!(one.share(4 << 20), 4 << 20);
    }
}
