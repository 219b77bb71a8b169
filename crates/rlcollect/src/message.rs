//! What producers send the worker through its bounded channel.

use crate::chunk::Chunk;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::record::Record;
use crate::summary::RunSummary;
use crossbeam_channel::Sender;

/// A message to the worker.
// Records are moved by value on purpose: boxing would add an allocation per
// record on the hot path of `Handle::send`.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// One record from [`Handle::send`](crate::Handle::send).
    Record(Record),
    /// Decoded records from a producer (a reader).
    Chunk(Chunk),
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
