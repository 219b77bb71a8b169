//! Records of the five core streams, user streams and control records, and
//! their decoding from one NDJSON line (SPEC §2).
//!
//! Each core stream is declared once, in a table (`core_stream!` in
//! `streams.rs`), which gives its typed struct, its column list, its decoder
//! and its JSON writer, so they cannot drift apart.
//!
//! * `coerce.rs`: how a JSON value becomes a core field's Rust value.
//! * `decode.rs`: one NDJSON line into a [`Record`].
//! * `json_write.rs`: a record back into one NDJSON line (the write-ahead log).

mod coerce;
mod decode;
mod json_write;
mod parsed;
mod streams;
#[cfg(test)]
mod tests;

use crate::column::Column;
use crate::error::DecodeError;
use crate::schema::ColumnType;
use crate::value::{Extras, ValueRef};
use json_write::{write_json_str, write_tail};

pub(crate) use coerce::CoreVal;
pub(crate) use parsed::{Kind, LineScratch, ParsedLine};
pub use streams::{Candle, ModelDecision, Prediction, RlEpisode, SignalPropagation, Trade};

/// A core stream: its names and its core columns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamDef {
    /// The stream's name on disk.
    pub name: &'static str,
    /// Its name on the wire (`candle` is stored as `candles`).
    pub wire: &'static str,
    pub fields: &'static [CoreField],
}

/// The core streams, and the candle tick.
pub(crate) const CORE_STREAMS: [&StreamDef; 6] = [
    &Trade::DEF,
    &RlEpisode::DEF,
    &Prediction::DEF,
    &SignalPropagation::DEF,
    &ModelDecision::DEF,
    &Candle::DEF,
];

/// One core column of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CoreField {
    /// Column name, as on the wire.
    pub name: &'static str,
    /// Column type.
    pub ty: ColumnType,
    /// A record without it (or with null) is rejected.
    pub required: bool,
}

/// What the buffers need of any stored record, whatever its stream.
pub(crate) trait Row {
    /// The stream it is stored in.
    fn stream_name(&self) -> &str;
    /// The stream's core columns, in order.
    fn core_fields(&self) -> &'static [CoreField];
    /// Appends one value to each core column, in order.
    fn push_core(&self, cols: &mut [Column]);
    /// The producer named in the record, if any.
    fn source(&self) -> Option<&str>;
    /// How many extra fields it has.
    fn extras_len(&self) -> usize;
    /// Extra field `i`: its name and value.
    fn extra_at(&self, i: usize) -> (&str, ValueRef<'_>);
    /// Appends the record as one NDJSON object (no newline) that
    /// [`Record::from_json`] reads back to an equal record.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// The extra fields of a stored record, as `Row::extra_at` gives them.
pub(crate) fn extras_of(row: &dyn Row) -> impl Iterator<Item = (&str, ValueRef<'_>)> {
    (0..row.extras_len()).map(move |i| row.extra_at(i))
}

/// A record of a user-named stream: every field is an extra field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserRecord {
    /// Stream name, matching `[a-z][a-z0-9_]{0,63}`.
    pub stream: String,
    /// The producer's name; overrides the connection's source.
    pub source: Option<String>,
    /// All fields (`ts` as a timestamp).
    pub extra: Extras,
}

impl Row for UserRecord {
    fn stream_name(&self) -> &str {
        &self.stream
    }
    fn core_fields(&self) -> &'static [CoreField] {
        &[]
    }
    fn push_core(&self, _cols: &mut [Column]) {}
    fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    fn extras_len(&self) -> usize {
        self.extra.len()
    }
    fn extra_at(&self, i: usize) -> (&str, ValueRef<'_>) {
        self.extra.at(i)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"stream\":");
        write_json_str(&self.stream, out);
        write_tail(self.source.as_deref(), &self.extra, out);
    }
}

/// Control records: instructions to the collector, not data.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// `{"stream":"control","op":"checkpoint"}`: checkpoint now.
    Checkpoint,
    /// `{"stream":"control","op":"hello","source":"NAME"}`: names the
    /// connection's producer; with `"ring":"rings/..."` it hands over through
    /// that shared-memory ring from then on (SPEC §6).
    Hello {
        /// The producer's name.
        source: String,
        /// The ring's path in the run directory, if the producer has one.
        ring: Option<String>,
    },
    /// `{"stream":"control","op":"bye"}`: the producer leaves (SPEC §6).
    Bye,
}

/// One record on its way to the collector.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Stream `trades`.
    Trade(Trade),
    /// Stream `rl_episodes`.
    RlEpisode(RlEpisode),
    /// Stream `predictions`.
    Prediction(Prediction),
    /// Stream `signal_propagation`.
    SignalPropagation(SignalPropagation),
    /// Stream `model_decisions`.
    ModelDecision(ModelDecision),
    /// A user stream.
    User(UserRecord),
    /// A candle tick (control: advances the candle counter).
    Candle(Candle),
    /// A control record.
    Control(Control),
}

/// True when `name` is acceptable as a user stream name: `[a-z][a-z0-9_]{0,63}`
/// and not one of the reserved names.
pub fn is_valid_user_stream(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !matches!(name, "candle" | "candles" | "control" | "wal")
}

impl Record {
    /// Decodes one NDJSON line (a trailing `\n` or `\r\n` is allowed) as SPEC §2 says.
    pub fn from_json(line: &[u8]) -> Result<Record, DecodeError> {
        ParsedLine::parse(line).map(decode::into_record)
    }

    /// The stream the record belongs to (`candle` and `control` for control records).
    pub fn stream(&self) -> &str {
        match self {
            Record::Control(_) => "control",
            Record::Candle(_) => "candle",
            other => other.row().map(Row::stream_name).unwrap_or_default(),
        }
    }

    /// The stored part of a data record; `None` for candles and control records.
    pub(crate) fn row(&self) -> Option<&dyn Row> {
        match self {
            Record::Trade(r) => Some(r),
            Record::RlEpisode(r) => Some(r),
            Record::Prediction(r) => Some(r),
            Record::SignalPropagation(r) => Some(r),
            Record::ModelDecision(r) => Some(r),
            Record::User(r) => Some(r),
            Record::Candle(_) | Record::Control(_) => None,
        }
    }
}
