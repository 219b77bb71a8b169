//! One NDJSON line into a [`Record`](super::Record).

use super::coerce::{to_value, CoreType};
use super::{is_valid_user_stream, Control, CoreRecord, Record, UserRecord};
use super::{ModelDecision, Prediction, RlEpisode, SignalPropagation, Trade};
use crate::buffer::META_COLUMNS;
use crate::error::DecodeError;
use crate::json::{self, JsonValue};
use crate::timestamp::Timestamp;
use crate::value::{Extras, Value};
use std::borrow::Cow;

/// Decodes one NDJSON line (SPEC §2).
pub(super) fn decode_line(line: &[u8]) -> Result<Record, DecodeError> {
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
        k if META_COLUMNS.contains(&k) => return Err(DecodeError::ReservedField(k.to_owned())),
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
        Some(JsonValue::Str(op)) if op == "bye" => Ok(Control::Bye),
        Some(JsonValue::Str(op)) if op == "hello" => {
            let ring = match get("ring") {
                None | Some(JsonValue::Null) => None,
                Some(JsonValue::Str(r)) => Some(r.to_string()),
                Some(other) => return Err(wrong_ring(other)),
            };
            match get("source") {
                Some(JsonValue::Str(s)) if !s.trim().is_empty() => Ok(Control::Hello {
                    source: s.trim().to_owned(),
                    ring,
                }),
                _ => Err(DecodeError::MissingField { field: "source" }),
            }
        }
        Some(JsonValue::Str(op)) => Err(DecodeError::UnknownControl(op.to_string())),
        Some(other) => Err(DecodeError::UnknownControl(to_value(other.clone()).to_json_text())),
        None => Err(DecodeError::UnknownControl(String::new())),
    }
}

fn wrong_ring(v: &JsonValue<'_>) -> DecodeError {
    DecodeError::WrongType {
        field: "ring".into(),
        value: to_value(v.clone()).to_json_text(),
        expected: "a ring path",
    }
}
