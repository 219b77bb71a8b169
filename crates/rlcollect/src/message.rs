//! What producers send the worker through its bounded channel.

use crate::chunk::Chunk;
use crate::error::Error;
use crate::manifest::RunStatus;
use crate::summary::RunSummary;
use crossbeam_channel::Sender;

/// A message to the worker.
// Chunks are moved by value on purpose: one per thousands of rows, and
// boxing would add an allocation to each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    /// Batch N of records sent one by one has chunks ready
    /// ([`DirectBatches`](crate::direct::DirectBatches)).
    BatchReady(usize),
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
