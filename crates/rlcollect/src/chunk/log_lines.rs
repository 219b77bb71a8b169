//! [`LogLines`]: the stored rows' lines of one chunk, for the write-ahead
//! log, in buffers that go back to the builder that filled them.
//!
//! Why recycle: a chunk's lines are about a megabyte, allocated on a reader
//! thread and freed on the worker once logged. The sidecar's allocator
//! returns freed memory to the OS at once (to keep its RSS near its live
//! data, `alloc.rs`), so a fresh buffer per chunk cost a page fault per 4 KiB
//! written and, on freeing, a TLB shootdown across cores: `perf` showed the
//! copy of lines into a new buffer as half of the reader's page faults. A
//! buffer that comes back is still mapped. One pool serves all of a
//! collector's readers, so eight producers keep no more spares than one.

use crossbeam_channel::{Receiver, Sender};
use std::ops::Range;

/// Spent buffers waiting for a builder. One is enough for one reader in
/// steady state (the worker logs a chunk while the reader fills the next);
/// the others serve further readers; more would only hold memory.
const SPARE_BUFFERS: usize = 2;

/// The bytes of a chunk's lines, back to back, and each line's range.
type Buffers = (Vec<u8>, Vec<Range<usize>>);

/// The lines of a chunk's stored rows, in row order. Dropping it (the
/// worker, once the log has them) sends its buffers back to the
/// [`LinesPool`] it came from.
#[derive(Debug, Default)]
pub(crate) struct LogLines {
    bytes: Vec<u8>,
    spans: Vec<Range<usize>>,
    home: Option<Sender<Buffers>>,
}

impl LogLines {
    /// Appends one line.
    pub(crate) fn push(&mut self, line: &[u8]) {
        self.push_with(|bytes| bytes.extend_from_slice(line));
    }

    /// Appends one line that `write` writes.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        write(&mut self.bytes);
        self.spans.push(start..self.bytes.len());
    }

    /// Every line, in order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.spans.iter().map(|span| &self.bytes[span.clone()])
    }
}

impl Drop for LogLines {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            let (mut bytes, mut spans) = (std::mem::take(&mut self.bytes), std::mem::take(&mut self.spans));
            bytes.clear();
            spans.clear();
            // A full pool (or a builder gone) frees them here instead.
            let _ = home.try_send((bytes, spans));
        }
    }
}

/// Where spent [`LogLines`] buffers come back to; clones share the pool.
#[derive(Debug, Clone)]
pub(crate) struct LinesPool {
    home: Sender<Buffers>,
    spare: Receiver<Buffers>,
}

impl LinesPool {
    pub(crate) fn new() -> Self {
        let (home, spare) = crossbeam_channel::bounded(SPARE_BUFFERS);
        LinesPool { home, spare }
    }

    /// Empty lines for the next chunk: a spent buffer if one is back, else
    /// a new one; either with room for as much as `like` holds (growing
    /// from empty would copy every chunk's lines twice over).
    pub(crate) fn next(&self, like: &LogLines) -> LogLines {
        let (mut bytes, mut spans) = self.spare.try_recv().unwrap_or_default();
        bytes.reserve(like.bytes.len());
        spans.reserve(like.spans.len());
        LogLines {
            bytes,
            spans,
            home: Some(self.home.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_in_order() {
        let pool = LinesPool::new();
        let mut lines = pool.next(&LogLines::default());
        lines.push(b"{\"a\":1}");
        lines.push(b"");
        lines.push_with(|b| b.extend_from_slice(b"{\"b\":2}"));
        let all: Vec<&[u8]> = lines.iter().collect();
        assert_eq!(all, [&b"{\"a\":1}"[..], b"", b"{\"b\":2}"]);
    }

    #[test]
    fn a_dropped_chunks_buffer_comes_back_empty_with_its_capacity() {
        let pool = LinesPool::new();
        let mut lines = pool.next(&LogLines::default());
        lines.push(&[b'x'; 5000]);
        let ptr = lines.bytes.as_ptr();
        drop(lines);
        let again = pool.next(&LogLines::default());
        assert_eq!(again.iter().len(), 0);
        assert_eq!(again.bytes.as_ptr(), ptr, "the same allocation");
        assert!(again.bytes.capacity() >= 5000);
    }

    #[test]
    fn the_pool_holds_at_most_its_spares() {
        let pool = LinesPool::new();
        let all: Vec<LogLines> = (0..SPARE_BUFFERS + 3)
            .map(|_| pool.next(&LogLines::default()))
            .collect();
        drop(all);
        assert_eq!(pool.spare.len(), SPARE_BUFFERS);
    }
}
