//! rlcollect: a crash-safe analytics data collector for reinforcement-learning
//! trading strategies.
//!
//! A backtest or training engine hands records (trades, RL episodes,
//! predictions, signal propagation steps, model decisions, and any user
//! stream) to a [`Collector`]. Its worker thread buffers them as Arrow columns
//! and checkpoints them into incremental, atomically published Parquet/CSV part
//! files plus a `manifest.json`, every N candles, every T seconds, when the
//! buffer is full, on request, and at the final flush on [`Collector::close`]
//! or drop. See `docs/SPEC.md` and `ARCHITECTURE.md` in the repository.
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
//! logs through `tracing`. The `rlcollect` binary (crate `rlcollect-cli`) runs
//! the same engine as a sidecar process fed NDJSON and shared-memory rings
//! ([`ingest`]); an engine that must survive its own crash hands records to
//! that sidecar with a [`Producer`] instead of linking a `Collector`.

#![warn(missing_docs)]

mod active_run;
mod atomic_file;
mod buffer;
mod builder;
mod chunk;
mod collector;
mod column;
mod compact;
mod direct;
mod error;
#[cfg(feature = "test-util")]
pub mod fs;
#[cfg(not(feature = "test-util"))]
mod fs;
pub mod ingest;
mod job_thread;
mod json;
mod manifest;
mod message;
mod part_commit;
mod part_file;
mod part_writer;
mod producer;
mod publisher;
mod record;
mod recover;
mod rejected_log;
mod ring;
mod run_dir;
mod schedule;
mod schema;
mod stats;
mod summary;
#[cfg(feature = "test-util")]
pub mod testing;
mod timestamp;
mod value;
mod wal;
mod worker;

pub use builder::CollectorBuilder;
pub use collector::{Closed, Collector, Handle};
pub use compact::{compact_run, compact_run_with, CompactOptions, CompactReport};
pub use error::{DecodeError, Error};
pub use manifest::{FileEntry, Manifest, RunStatus, SchemaField, StreamEntry};
pub use part_file::{Format, META_FIRST_SEQ, META_LAST_SEQ, META_RUN_ID};
pub use producer::{Producer, ProducerBuilder};
pub use record::{
    is_valid_user_stream, Candle, Control, ModelDecision, Prediction, Record, RlEpisode, SignalPropagation, Trade,
    UserRecord,
};
pub use recover::{recover, RecoveryReport};
pub use run_dir::RunDir;
pub use schema::ColumnType;
pub use stats::StatsSnapshot;
pub use summary::{CompensatedSum, DecisionStats, EpisodeStats, Group, RunSummary, TradeStats};
pub use timestamp::Timestamp;
pub use value::{Extras, Value};
pub use wal::WalOptions;
