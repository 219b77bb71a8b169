//! rlcollect: a crash-safe analytics data collector for reinforcement-learning
//! trading strategies.
//!
//! A backtest or training engine hands records (trades, RL episodes,
//! predictions, signal propagation steps, model decisions, and any user
//! stream) to a [`Collector`]. Its worker thread buffers them as Arrow columns
//! and checkpoints them into incremental, atomically published Parquet/CSV part
//! files plus a `manifest.json`, every N candles, every T seconds, when the
//! buffer is full, on request, and at the final flush on [`Collector::close`]
//! or drop. See `SPEC.md` and `ARCHITECTURE.md` in the repository.
//!
//! ```no_run
//! use rlcollect::{Collector, Record, Trade, Timestamp};
//! # fn main() -> Result<(), rlcollect::Error> {
//! let collector = Collector::builder("analysis_data").every_candles(1000).build()?;
//! let handle = collector.handle(); // clone one per engine thread
//! handle
//!     .send(Record::Trade(Trade {
//!         pair: "BTC/USDT".into(),
//!         profit_abs: Some(1.25),
//!         close_date: Some(Timestamp::now()),
//!         ..Trade::default()
//!     }))
//!     .expect("collector running");
//! let summary = collector.close()?; // everything fsynced when this returns
//! println!("{} trades", summary.trades.count);
//! # Ok(()) }
//! ```
//!
//! The library installs no signal handler and never writes to stdout; it
//! logs through `tracing`.

#![warn(missing_docs)]

mod buffer;
mod collector;
mod column;
mod error;
pub mod fs;
pub mod ingest;
mod json;
mod lock;
mod manifest;
mod policy;
mod record;
mod recover;
mod sink;
mod stats;
mod summary;
mod timestamp;
mod value;
pub mod wal;
mod worker;

pub use buffer::META_COLUMNS;
pub use collector::{Closed, Collector, CollectorBuilder, Handle, LATEST_LINK};
pub use column::ColumnType;
pub use error::{DecodeError, Error};
pub use lock::{RunLock, LOCK_FILE};
pub use manifest::{FileEntry, Manifest, RunStatus, SchemaField, StreamEntry, MANIFEST_FILE};
pub use policy::{CheckpointPolicy, PolicyState, Trigger};
pub use record::{
    is_valid_user_stream, Candle, Control, CoreField, ModelDecision, Prediction, Record, RlEpisode, SignalPropagation,
    Trade, UserRecord,
};
pub use recover::{recover, RecoveryReport};
pub use sink::{Format, META_FIRST_SEQ, META_LAST_SEQ, META_RUN_ID};
pub use stats::StatsSnapshot;
pub use summary::{DecisionStats, EpisodeStats, Group, RunSummary, TradeStats, SUMMARY_FILE};
pub use timestamp::Timestamp;
pub use value::{Extras, Value};
pub use worker::{Batch, Ingested, Rejected, REJECTED_FILE};
