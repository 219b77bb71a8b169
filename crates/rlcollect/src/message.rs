//! What producers send the worker through its bounded channel.

use crate::active_run::RingMark;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::record::Record;
use crate::rejected_log::Rejected;
use crate::summary::RunSummary;
use crossbeam_channel::Sender;
use std::sync::Arc;

/// What a reader decoded from one line.
// Records are moved by value on purpose: boxing would add an allocation per
// record on the hot path, and batches are bounded (4096 items, 4 in flight).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Ingested {
    /// A decoded record.
    Record(Record),
    /// A rejected line.
    Rejected(Rejected),
}

/// Lines of one source, decoded, in input order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The source of records that name none.
    pub source: Arc<str>,
    /// The items, in order.
    pub items: Vec<Ingested>,
    /// The NDJSON lines of the records, back to back, as read. The
    /// write-ahead log stores these bytes instead of encoding each row again.
    pub raw: Vec<u8>,
    /// One range of `raw` per `Ingested::Record` item, in order.
    pub spans: Vec<std::ops::Range<usize>>,
    /// The ring the lines came from and the offset after the last of them.
    pub ring: Option<RingMark>,
}

/// A message to the worker.
#[allow(clippy::large_enum_variant)] // see `Ingested`
pub(crate) enum Msg {
    /// One record from [`Handle::send`](crate::Handle::send).
    Record(Record),
    /// Decoded lines from a reader.
    Batch(Batch),
    /// Checkpoint now; the answer goes to the sender, if any.
    Checkpoint(Option<Sender<Result<(), Error>>>),
    /// The producers connected now (listed in the manifest).
    Connected(Vec<String>),
    /// A reader drained a ring to this offset and its producer is gone.
    RingEnded { name: String, end: u64 },
    /// End the run with this status after everything queued before it.
    Shutdown {
        status: RunStatus,
        ack: Sender<Result<RunSummary, Error>>,
    },
}
