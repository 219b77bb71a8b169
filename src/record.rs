//! Records of the five core streams, user streams and control records, and
//! their decoding from one NDJSON line (SPEC §2).
//!
//! Each core stream is declared once, in a table (`core_stream!` below), which
//! gives its typed struct, its column list and its decoder, so the three
//! cannot drift apart.

use crate::column::{Column, ColumnType};
use crate::error::DecodeError;
use crate::json::{self, JsonValue};
use crate::timestamp::Timestamp;
use crate::value::{Extras, Value};
use std::borrow::Cow;

/// One core column of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreField {
    /// Column name, as on the wire.
    pub name: &'static str,
    /// Column type.
    pub ty: ColumnType,
    /// A record without it (or with null) is rejected.
    pub required: bool,
}

/// A Rust type that a core field can have, with its coercion from JSON.
pub(crate) trait CoreType: Sized {
    const TYPE: ColumnType;
    /// Converts a JSON value; `Ok(None)` is null. Numeric strings are coerced
    /// for numeric fields; NaN in an integer or timestamp field is null.
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError>;
    fn push(v: Option<&Self>, col: &mut Column);
    /// Appends the value as JSON (what `coerce` reads back to the same value).
    fn write_json(&self, out: &mut Vec<u8>);
}

fn wrong(v: &JsonValue<'_>, field: &str, expected: &'static str) -> DecodeError {
    let mut value = match v {
        JsonValue::Str(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
        other => to_value(other.clone()).to_json_text(),
    };
    if value.len() > 64 {
        let mut cut = 64;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    DecodeError::WrongType {
        field: field.to_owned(),
        value,
        expected,
    }
}

impl CoreType for String {
    const TYPE: ColumnType = ColumnType::String;
    fn coerce(v: JsonValue<'_>, _field: &str) -> Result<Option<Self>, DecodeError> {
        Ok(match v {
            JsonValue::Null => None,
            JsonValue::Str(s) => Some(s.into_owned()),
            other => Some(to_value(other).to_json_text()),
        })
    }
    fn push(v: Option<&Self>, col: &mut Column) {
        col.push_str(v.map(String::as_str))
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        write_json_str(self, out)
    }
}

impl CoreType for i64 {
    const TYPE: ColumnType = ColumnType::Int64;
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError> {
        let as_int = |f: f64| -> Result<Option<i64>, ()> {
            if !f.is_finite() {
                Ok(None)
            } else if f.fract() == 0.0 && f.abs() < 9.2e18 {
                Ok(Some(f as i64))
            } else {
                Err(())
            }
        };
        match &v {
            JsonValue::Null => Ok(None),
            JsonValue::Int(i) => Ok(Some(*i)),
            JsonValue::Float(f) => as_int(*f).map_err(|_| wrong(&v, field, "an integer")),
            JsonValue::Str(s) if s.trim().is_empty() => Ok(None),
            JsonValue::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(Some(i)),
                Err(_) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| ())
                    .and_then(as_int)
                    .map_err(|_| wrong(&v, field, "an integer")),
            },
            _ => Err(wrong(&v, field, "an integer")),
        }
    }
    fn push(v: Option<&Self>, col: &mut Column) {
        col.push_i64(v.copied())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{self}");
    }
}

impl CoreType for f64 {
    const TYPE: ColumnType = ColumnType::Float64;
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError> {
        match &v {
            JsonValue::Null => Ok(None),
            JsonValue::Int(i) => Ok(Some(*i as f64)),
            JsonValue::Float(f) => Ok(Some(*f)),
            JsonValue::Str(s) if s.trim().is_empty() => Ok(None),
            JsonValue::Str(s) => s
                .trim()
                .parse::<f64>()
                .map(Some)
                .map_err(|_| wrong(&v, field, "a number")),
            _ => Err(wrong(&v, field, "a number")),
        }
    }
    fn push(v: Option<&Self>, col: &mut Column) {
        col.push_f64(v.copied())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        crate::value::write_f64(*self, out)
    }
}

impl CoreType for bool {
    const TYPE: ColumnType = ColumnType::Bool;
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError> {
        match &v {
            JsonValue::Null => Ok(None),
            JsonValue::Bool(b) => Ok(Some(*b)),
            JsonValue::Int(0) => Ok(Some(false)),
            JsonValue::Int(1) => Ok(Some(true)),
            JsonValue::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                "" => Ok(None),
                _ => Err(wrong(&v, field, "a boolean")),
            },
            _ => Err(wrong(&v, field, "a boolean")),
        }
    }
    fn push(v: Option<&Self>, col: &mut Column) {
        col.push_bool(v.copied())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" })
    }
}

impl CoreType for Timestamp {
    const TYPE: ColumnType = ColumnType::Timestamp;
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError> {
        match &v {
            JsonValue::Null => Ok(None),
            JsonValue::Int(ms) => Ok(Some(Timestamp(*ms))),
            JsonValue::Float(ms) => Ok(Timestamp::from_float_millis(*ms)),
            JsonValue::Str(s) if s.trim().is_empty() => Ok(None),
            JsonValue::Str(s) => {
                if let Some(t) = Timestamp::parse(s) {
                    return Ok(Some(t));
                }
                match s.trim().parse::<f64>() {
                    Ok(ms) => Ok(Timestamp::from_float_millis(ms)),
                    Err(_) => Err(wrong(&v, field, "a timestamp")),
                }
            }
            _ => Err(wrong(&v, field, "a timestamp")),
        }
    }
    fn push(v: Option<&Self>, col: &mut Column) {
        col.push_ts(v.copied())
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "{}", self.0);
    }
}

fn write_json_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail")
}

/// Appends `"key":` (with a leading comma) to an object being written.
fn write_key(key: &str, out: &mut Vec<u8>) {
    out.push(b',');
    write_json_str(key, out);
    out.push(b':');
}

/// Appends the common tail of every record's JSON: source and extras, then `}`.
fn write_tail(source: Option<&str>, extra: &Extras, out: &mut Vec<u8>) {
    if let Some(src) = source {
        write_key("source", out);
        write_json_str(src, out);
    }
    for (k, v) in extra.iter() {
        write_key(k, out);
        match v {
            // A timestamp extra is written as epoch ms, which reads back as a
            // timestamp for `ts` (the only place decoding makes one).
            Value::Timestamp(t) => {
                use std::io::Write;
                let _ = write!(out, "{}", t.0);
            }
            other => other.write_json(out),
        }
    }
    out.push(b'}');
}

fn required<T>(v: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { field })
}

/// Converts a JSON value into an extra field's value.
fn to_value(v: JsonValue<'_>) -> Value {
    match v {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(b) => Value::Bool(b),
        JsonValue::Int(i) => Value::Int(i),
        JsonValue::Float(f) => Value::Float(f),
        JsonValue::Str(s) => Value::Str(s.into_owned()),
        JsonValue::Nested(raw) => Value::Json(json::compact(raw)),
    }
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
    /// The extra fields.
    fn extra(&self) -> &Extras;
    /// Appends the record as one NDJSON object (no newline) that
    /// [`Record::from_json`] reads back to an equal record.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Implemented by the structs of the core streams, for the shared decoder.
pub(crate) trait CoreRecord: Default + Row {
    const FIELDS: &'static [CoreField];
    /// Sets core field `key`; gives the value back when `key` is not a core field.
    fn set_core<'a>(&mut self, key: &str, v: JsonValue<'a>) -> Result<Option<JsonValue<'a>>, DecodeError>;
    fn source_mut(&mut self) -> &mut Option<String>;
    fn extra_mut(&mut self) -> &mut Extras;
}

macro_rules! core_stream {
    (
        $(#[$doc:meta])*
        $name:ident => $stream:literal, wire $wire:literal {
            required { $($(#[$rdoc:meta])* $rf:ident : $rt:ty),* $(,)? }
            optional { $($(#[$odoc:meta])* $of:ident : $ot:ty),* $(,)? }
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $($(#[$rdoc])* pub $rf: $rt,)*
            $($(#[$odoc])* pub $of: Option<$ot>,)*
            /// The producer's name; overrides the connection's source.
            pub source: Option<String>,
            /// Fields beyond the core ones, stored as inferred extra columns.
            pub extra: Extras,
        }

        impl $name {
            /// The stream's name on the wire and on disk.
            pub const STREAM: &'static str = $stream;
            /// The stream's core columns, in order.
            pub const FIELDS: &'static [CoreField] = &[
                $(CoreField { name: stringify!($rf), ty: <$rt as CoreType>::TYPE, required: true },)*
                $(CoreField { name: stringify!($of), ty: <$ot as CoreType>::TYPE, required: false },)*
            ];
        }

        impl Row for $name {
            fn stream_name(&self) -> &str { $stream }
            fn core_fields(&self) -> &'static [CoreField] { Self::FIELDS }
            fn push_core(&self, cols: &mut [Column]) {
                let mut cols = cols.iter_mut();
                $(<$rt as CoreType>::push(Some(&self.$rf), cols.next().expect("a column per core field"));)*
                $(<$ot as CoreType>::push(self.$of.as_ref(), cols.next().expect("a column per core field"));)*
            }
            fn source(&self) -> Option<&str> { self.source.as_deref() }
            fn extra(&self) -> &Extras { &self.extra }
            fn write_json(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(concat!("{\"stream\":\"", $wire, "\"").as_bytes());
                $(write_key(stringify!($rf), out); <$rt as CoreType>::write_json(&self.$rf, out);)*
                $(if let Some(v) = &self.$of { write_key(stringify!($of), out); <$ot as CoreType>::write_json(v, out); })*
                write_tail(self.source.as_deref(), &self.extra, out);
            }
        }

        impl CoreRecord for $name {
            const FIELDS: &'static [CoreField] = $name::FIELDS;
            fn set_core<'a>(&mut self, key: &str, v: JsonValue<'a>) -> Result<Option<JsonValue<'a>>, DecodeError> {
                match key {
                    $(stringify!($rf) => self.$rf = required(<$rt as CoreType>::coerce(v, key)?, stringify!($rf))?,)*
                    $(stringify!($of) => self.$of = <$ot as CoreType>::coerce(v, key)?,)*
                    _ => return Ok(Some(v)),
                }
                Ok(None)
            }
            fn source_mut(&mut self) -> &mut Option<String> { &mut self.source }
            fn extra_mut(&mut self) -> &mut Extras { &mut self.extra }
        }
    };
}

core_stream! {
    /// A closed trade (stream `trades`), with the fields of Freqtrade's backtest export.
    Trade => "trades", wire "trades" {
        required {
            /// Trading pair, e.g. `BTC/USDT`.
            pair: String,
        }
        optional {
            /// The engine's trade id.
            trade_id: i64,
            /// True for a short position.
            is_short: bool,
            /// Entry time.
            open_date: Timestamp,
            /// Exit time.
            close_date: Timestamp,
            /// Entry price.
            open_rate: f64,
            /// Exit price.
            close_rate: f64,
            /// Position size in base currency.
            amount: f64,
            /// Stake in quote currency.
            stake_amount: f64,
            /// Leverage.
            leverage: f64,
            /// Entry fee ratio.
            fee_open: f64,
            /// Exit fee ratio.
            fee_close: f64,
            /// Profit as a ratio of the stake.
            profit_ratio: f64,
            /// Profit in quote currency.
            profit_abs: f64,
            /// Why the trade was closed (`roi`, `stop_loss`, ...).
            exit_reason: String,
            /// The entry signal's tag.
            enter_tag: String,
            /// Duration in minutes.
            trade_duration: i64,
            /// Lowest price seen while open.
            min_rate: f64,
            /// Highest price seen while open.
            max_rate: f64,
        }
    }
}

core_stream! {
    /// The end of one RL training episode (stream `rl_episodes`).
    RlEpisode => "rl_episodes", wire "rl_episodes" {
        required {
            /// Episode number.
            episode: i64,
        }
        optional {
            /// Pair the episode ran on.
            pair: String,
            /// First candle of the episode.
            start_ts: Timestamp,
            /// Last candle of the episode.
            end_ts: Timestamp,
            /// Environment steps taken.
            steps: i64,
            /// Sum of rewards.
            total_reward: f64,
            /// Profit over the episode.
            total_profit: f64,
            /// Trades made.
            trades: i64,
            /// Model name.
            model: String,
        }
    }
}

core_stream! {
    /// One model prediction (stream `predictions`).
    Prediction => "predictions", wire "predictions" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Model name.
            model: String,
            /// Predicted value.
            prediction: f64,
            /// Predicted label.
            label: String,
            /// Confidence in [0, 1].
            confidence: f64,
            /// FreqAI's `do_predict` flag.
            do_predict: i64,
        }
    }
}

core_stream! {
    /// One stage a signal passed or failed (stream `signal_propagation`).
    SignalPropagation => "signal_propagation", wire "signal_propagation" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Pipeline stage, e.g. `model`, `filter`, `entry`.
            stage: String,
            /// Signal name.
            signal: String,
            /// Signal value.
            value: f64,
            /// Whether the stage let it through.
            accepted: bool,
            /// Why it was rejected.
            reason: String,
        }
    }
}

core_stream! {
    /// One agent step (stream `model_decisions`).
    ModelDecision => "model_decisions", wire "model_decisions" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Episode number.
            episode: i64,
            /// Step within the episode.
            step: i64,
            /// Action index.
            action: i64,
            /// Action name (`Long_enter`, ...).
            action_name: String,
            /// Position after the step.
            position: f64,
            /// Reward of the step.
            reward: f64,
            /// Cumulative reward.
            total_reward: f64,
            /// Cumulative profit.
            total_profit: f64,
            /// Confidence of the action.
            confidence: f64,
        }
    }
}

core_stream! {
    /// A candle tick (wire stream `candle`): advances the candle counter; stored in
    /// the `candles` stream only with `keep_candles`.
    Candle => "candles", wire "candle" {
        required {}
        optional {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
            /// Open price.
            open: f64,
            /// High price.
            high: f64,
            /// Low price.
            low: f64,
            /// Close price.
            close: f64,
            /// Volume.
            volume: f64,
        }
    }
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
    fn extra(&self) -> &Extras {
        &self.extra
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
    /// `{"stream":"control","op":"hello","source":"NAME"}`: names the connection's producer.
    Hello {
        /// The producer's name.
        source: String,
    },
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
        let text = std::str::from_utf8(line).map_err(|e| DecodeError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let members = json::parse_object(text).map_err(|e| match e {
            json::JsonError::NotAnObject => DecodeError::NotAnObject,
            json::JsonError::Syntax { offset, message } => DecodeError::InvalidJson { offset, message },
        })?;
        let stream = match members.iter().find(|(k, _)| k == "stream") {
            None => return Err(DecodeError::MissingStream),
            Some((_, JsonValue::Str(s))) => s.clone(),
            Some((_, other)) => return Err(DecodeError::InvalidStreamName(to_value(other.clone()).to_json_text())),
        };
        match stream.as_ref() {
            Trade::STREAM => decode_core(members).map(Record::Trade),
            RlEpisode::STREAM => decode_core(members).map(Record::RlEpisode),
            Prediction::STREAM => decode_core(members).map(Record::Prediction),
            SignalPropagation::STREAM => decode_core(members).map(Record::SignalPropagation),
            ModelDecision::STREAM => decode_core(members).map(Record::ModelDecision),
            "candle" => decode_core(members).map(Record::Candle),
            "control" => decode_control(members).map(Record::Control),
            name if is_valid_user_stream(name) => {
                let mut rec = UserRecord {
                    stream: name.to_owned(),
                    ..UserRecord::default()
                };
                for (key, v) in members {
                    decode_common(&key, v, &mut rec.source, &mut rec.extra)?;
                }
                Ok(Record::User(rec))
            }
            name => Err(DecodeError::InvalidStreamName(name.to_owned())),
        }
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

/// Handles the fields every record may carry: `stream` (skipped), `source`,
/// `ts` (a timestamp wherever it is not a core field), reserved `_` names, and
/// everything else as an extra field.
fn decode_common(
    key: &str,
    v: JsonValue<'_>,
    source: &mut Option<String>,
    extra: &mut Extras,
) -> Result<(), DecodeError> {
    match key {
        "stream" => {}
        "source" => *source = String::coerce(v, key)?,
        "ts" => {
            let ts = Timestamp::coerce(v, key)?;
            extra.insert(key, ts.map_or(Value::Null, Value::Timestamp));
        }
        k if k.starts_with('_') && matches!(k, "_seq" | "_source" | "_ingested_at") => {
            return Err(DecodeError::ReservedField(k.to_owned()))
        }
        k => extra.insert(k, to_value(v)),
    }
    Ok(())
}

fn decode_core<T: CoreRecord>(members: Vec<(Cow<'_, str>, JsonValue<'_>)>) -> Result<T, DecodeError> {
    for field in T::FIELDS.iter().filter(|f| f.required) {
        if !members.iter().any(|(k, v)| k == field.name && *v != JsonValue::Null) {
            return Err(DecodeError::MissingField { field: field.name });
        }
    }
    let mut rec = T::default();
    for (key, v) in members {
        if let Some(v) = rec.set_core(&key, v)? {
            let mut source = rec.source_mut().take();
            let result = decode_common(&key, v, &mut source, rec.extra_mut());
            *rec.source_mut() = source;
            result?;
        }
    }
    Ok(rec)
}

fn decode_control(members: Vec<(Cow<'_, str>, JsonValue<'_>)>) -> Result<Control, DecodeError> {
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    match get("op") {
        Some(JsonValue::Str(op)) if op == "checkpoint" => Ok(Control::Checkpoint),
        Some(JsonValue::Str(op)) if op == "hello" => match get("source") {
            Some(JsonValue::Str(s)) if !s.trim().is_empty() => Ok(Control::Hello {
                source: s.trim().to_owned(),
            }),
            _ => Err(DecodeError::MissingField { field: "source" }),
        },
        Some(JsonValue::Str(op)) => Err(DecodeError::UnknownControl(op.to_string())),
        Some(other) => Err(DecodeError::UnknownControl(to_value(other.clone()).to_json_text())),
        None => Err(DecodeError::UnknownControl(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> Result<Record, DecodeError> {
        Record::from_json(line.as_bytes())
    }

    #[test]
    fn core_field_tables_match_the_spec() {
        let names = |f: &[CoreField]| f.iter().map(|f| f.name).collect::<Vec<_>>().join(",");
        assert_eq!(
            names(Trade::FIELDS),
            "pair,trade_id,is_short,open_date,close_date,open_rate,close_rate,amount,stake_amount,leverage,fee_open,fee_close,profit_ratio,profit_abs,exit_reason,enter_tag,trade_duration,min_rate,max_rate"
        );
        assert_eq!(
            names(RlEpisode::FIELDS),
            "episode,pair,start_ts,end_ts,steps,total_reward,total_profit,trades,model"
        );
        assert_eq!(
            names(Prediction::FIELDS),
            "ts,pair,model,prediction,label,confidence,do_predict"
        );
        assert_eq!(
            names(SignalPropagation::FIELDS),
            "ts,pair,stage,signal,value,accepted,reason"
        );
        assert_eq!(
            names(ModelDecision::FIELDS),
            "ts,pair,episode,step,action,action_name,position,reward,total_reward,total_profit,confidence"
        );
        let required = |f: &[CoreField]| f.iter().filter(|f| f.required).map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(required(Trade::FIELDS), ["pair"]);
        assert_eq!(required(RlEpisode::FIELDS), ["episode"]);
        assert_eq!(required(Prediction::FIELDS), ["ts", "pair"]);
        assert_eq!(required(ModelDecision::FIELDS), ["ts", "pair"]);
    }

    #[test]
    fn coerces_numeric_strings_and_integral_floats() {
        let Record::RlEpisode(e) =
            decode(r#"{"stream":"rl_episodes","episode":"7","steps":12.0,"total_reward":"1e1"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((e.episode, e.steps, e.total_reward), (7, Some(12), Some(10.0)));
        assert!(matches!(
            decode(r#"{"stream":"rl_episodes","episode":7.5}"#),
            Err(DecodeError::WrongType { .. })
        ));
    }

    #[test]
    fn nan_in_integer_or_timestamp_fields_is_null_not_rejected() {
        let Record::ModelDecision(d) =
            decode(r#"{"stream":"model_decisions","ts":1,"pair":"A","action":NaN,"reward":NaN}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.action, None);
        assert!(d.reward.unwrap().is_nan());
        let Record::Trade(t) = decode(r#"{"stream":"trades","pair":"A","open_date":NaN}"#).unwrap() else {
            panic!()
        };
        assert_eq!(t.open_date, None);
    }

    #[test]
    fn reserved_collector_columns_are_rejected() {
        assert_eq!(
            decode(r#"{"stream":"foo","_seq":1}"#),
            Err(DecodeError::ReservedField("_seq".into()))
        );
        assert!(decode(r#"{"stream":"foo","_private":1}"#).is_ok());
    }

    #[test]
    fn control_records() {
        assert_eq!(
            decode(r#"{"stream":"control","op":"checkpoint"}"#),
            Ok(Record::Control(Control::Checkpoint))
        );
        assert_eq!(
            decode(r#"{"stream":"control","op":"hello","source":"worker-1"}"#),
            Ok(Record::Control(Control::Hello {
                source: "worker-1".into()
            }))
        );
        assert!(matches!(
            decode(r#"{"stream":"control","op":"nap"}"#),
            Err(DecodeError::UnknownControl(_))
        ));
        assert!(decode(r#"{"stream":"control","op":"hello"}"#).is_err());
    }

    #[test]
    fn source_field_overrides_and_is_not_an_extra() {
        let Record::Trade(t) = decode(r#"{"stream":"trades","pair":"A","source":"w2","x":1}"#).unwrap() else {
            panic!()
        };
        assert_eq!(t.source.as_deref(), Some("w2"));
        assert_eq!(t.extra.len(), 1);
    }

    #[test]
    fn stream_names() {
        assert!(is_valid_user_stream("my_custom_stream"));
        assert!(is_valid_user_stream(&format!("a{}", "b".repeat(63))));
        assert!(!is_valid_user_stream(&format!("a{}", "b".repeat(64))));
        for bad in ["", "Bad-Name!", "1abc", "_x", "candles", "control", "café"] {
            assert!(!is_valid_user_stream(bad), "{bad}");
        }
        assert!(matches!(
            decode(r#"{"stream":5}"#),
            Err(DecodeError::InvalidStreamName(_))
        ));
    }

    fn round_trip(r: &Record) {
        let mut out = Vec::new();
        r.row().expect("a data record").write_json(&mut out);
        assert_eq!(
            &Record::from_json(&out).unwrap(),
            r,
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn records_written_as_json_read_back_equal() {
        round_trip(&Record::Trade(Trade {
            pair: "A/\"B".into(),
            trade_id: Some(-3),
            is_short: Some(true),
            open_date: Some(Timestamp(1)),
            profit_abs: Some(f64::INFINITY),
            exit_reason: Some("roi".into()),
            source: Some("w1".into()),
            extra: Extras::new()
                .with("ts", Value::Timestamp(Timestamp(5)))
                .with("n", Value::Null)
                .with("j", Value::Json("[1,{\"a\":2}]".into()))
                .with("f", Value::Float(0.1))
                .with("s", Value::Str("x\ny".into())),
            ..Trade::default()
        }));
        round_trip(&Record::User(UserRecord {
            stream: "metrics".into(),
            source: None,
            extra: Extras::new()
                .with("i", Value::Int(i64::MIN))
                .with("b", Value::Bool(false)),
        }));
        let Record::ModelDecision(d) =
            decode(r#"{"stream":"model_decisions","ts":1,"pair":"A","reward":NaN}"#).unwrap()
        else {
            panic!()
        };
        let mut out = Vec::new();
        d.write_json(&mut out);
        let Record::ModelDecision(back) = Record::from_json(&out).unwrap() else {
            panic!()
        };
        assert!(back.reward.unwrap().is_nan());
    }

    #[test]
    fn invalid_utf8_is_rejected_with_offset() {
        assert_eq!(
            Record::from_json(b"{\"stream\":\"x\xff\"}"),
            Err(DecodeError::NotUtf8 { offset: 12 })
        );
    }
}
