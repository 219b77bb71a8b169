//! Lines into decoded batches: a [`Pump`] decodes each complete line, keeps
//! the line's bytes for the write-ahead log, turns bad lines into rejections,
//! and sends a batch when it is full or the reader is about to block.

use super::{ReadCounts, ReadEnd, ReaderOptions, RAW_CUT};
use crate::collector::Handle;
use crate::error::DecodeError;
use crate::message::{Batch, Ingested};
use crate::record::{Control, Record};
use crate::rejected_log::Rejected;
use std::sync::Arc;

/// The decoding state of one reader.
pub(super) struct Pump<'a> {
    handle: &'a Handle,
    on_hello: &'a mut dyn FnMut(&str),
    opts: ReaderOptions,
    source: Arc<str>,
    batch: Vec<Ingested>,
    /// The lines of the records in `batch`, back to back, and each one's range.
    raw: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
    counts: ReadCounts,
    /// Set while skipping the rest of an over-long line: its length so far and its head.
    overlong: Option<(usize, Vec<u8>)>,
}

impl<'a> Pump<'a> {
    pub(super) fn new(
        handle: &'a Handle,
        on_hello: &'a mut dyn FnMut(&str),
        opts: ReaderOptions,
        source: &str,
    ) -> Self {
        Pump {
            handle,
            on_hello,
            opts,
            source: source.into(),
            batch: Vec::with_capacity(opts.batch_records),
            raw: Vec::new(),
            spans: Vec::new(),
            counts: ReadCounts::default(),
            overlong: None,
        }
    }

    pub(super) fn counts(&self) -> ReadCounts {
        self.counts
    }

    /// Handles every complete line in `data`; returns how many bytes it used.
    pub(super) fn lines(&mut self, data: &[u8]) -> Result<usize, ReadEnd> {
        let mut used = 0;
        while let Some(nl) = data[used..].iter().position(|&b| b == b'\n') {
            let line = &data[used..used + nl];
            match self.overlong.take() {
                Some((len, head)) => self.reject_overlong(len + line.len(), head),
                None => self.line(line),
            }
            used += nl + 1;
            if self.batch.len() >= self.opts.batch_records && !self.flush() {
                return Err(ReadEnd::CollectorGone);
            }
        }
        Ok(used)
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

    /// At end of input: the last line without `\n` is accepted (SPEC §2),
    /// then everything is sent.
    pub(super) fn finish(&mut self, rest: &[u8]) -> (ReadEnd, ReadCounts) {
        if let Some((len, head)) = self.overlong.take() {
            self.reject_overlong(len + rest.len(), head);
        } else if !rest.is_empty() {
            self.line(rest);
        }
        let end = match self.flush() {
            true => ReadEnd::Eof,
            false => ReadEnd::CollectorGone,
        };
        (end, self.counts)
    }

    /// Sends the batch; false when the collector is gone.
    pub(super) fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(self.opts.batch_records));
        let raw = std::mem::replace(&mut self.raw, Vec::with_capacity(self.opts.batch_records * 256));
        let spans = std::mem::replace(&mut self.spans, Vec::with_capacity(self.opts.batch_records));
        self.handle
            .send_batch(Batch {
                source: self.source.clone(),
                items,
                raw,
                spans,
            })
            .is_ok()
    }

    fn line(&mut self, raw: &[u8]) {
        self.counts.lines += 1;
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if line.len() > self.opts.max_line_bytes {
            let err = DecodeError::LineTooLong {
                len: line.len(),
                max: self.opts.max_line_bytes,
            };
            return self.reject(line, err);
        }
        match Record::from_json(line) {
            Ok(Record::Control(Control::Hello { source })) => {
                self.flush();
                (self.on_hello)(&source);
                self.source = source.into();
            }
            Ok(record) => {
                self.counts.records += 1;
                self.batch.push(Ingested::Record(record));
                let start = self.raw.len();
                self.raw.extend_from_slice(line);
                self.spans.push(start..self.raw.len());
            }
            Err(err) => self.reject(line, err),
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
        self.batch.push(Ingested::Rejected(Rejected {
            line: self.counts.lines,
            source: self.source.to_string(),
            error: err.to_string(),
            raw: String::from_utf8_lossy(cut).into_owned(),
        }));
    }
}
