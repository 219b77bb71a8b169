//! How a JSON value becomes the value of a core field (SPEC §2): numeric
//! strings are coerced for numeric fields, NaN in an integer or timestamp field
//! is null, and anything else that does not fit is a `WrongType` rejection.

use super::json_write::write_json_str;
use crate::column::Column;
use crate::error::DecodeError;
use crate::json::{self, JsonValue};
use crate::schema::ColumnType;
use crate::timestamp::Timestamp;
use crate::value::ValueRef;
use std::borrow::Cow;

/// A core field's value after coercion, borrowed from the line where it can be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CoreVal<'a> {
    Str(Cow<'a, str>),
    I64(i64),
    F64(f64),
    Bool(bool),
    Ts(Timestamp),
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
    /// The value `coerce_val` made for a field of this type.
    fn from_val(v: CoreVal<'_>) -> Self;
}

/// Coerces a JSON value for a core field of type `ty` (see [`CoreType::coerce`]).
pub(crate) fn coerce_val<'a>(
    ty: ColumnType,
    v: JsonValue<'a>,
    field: &str,
) -> Result<Option<CoreVal<'a>>, DecodeError> {
    Ok(match ty {
        ColumnType::String => match v {
            JsonValue::Null => None,
            JsonValue::Str(s) => Some(CoreVal::Str(s)),
            other => Some(CoreVal::Str(Cow::Owned(to_value_ref(other).to_json_text()))),
        },
        ColumnType::Int64 => i64::coerce(v, field)?.map(CoreVal::I64),
        ColumnType::Float64 => f64::coerce(v, field)?.map(CoreVal::F64),
        ColumnType::Bool => bool::coerce(v, field)?.map(CoreVal::Bool),
        ColumnType::Timestamp => Timestamp::coerce(v, field)?.map(CoreVal::Ts),
        ColumnType::Null | ColumnType::UInt64 => unreachable!("no core field has type {ty:?}"),
    })
}

fn wrong(v: &JsonValue<'_>, field: &str, expected: &'static str) -> DecodeError {
    let mut value = match v {
        JsonValue::Str(s) => serde_json::to_string(s.as_ref()).unwrap_or_default(),
        other => to_value_ref(other.clone()).to_json_text(),
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
    fn coerce(v: JsonValue<'_>, field: &str) -> Result<Option<Self>, DecodeError> {
        Ok(coerce_val(Self::TYPE, v, field)?.map(Self::from_val))
    }
    fn from_val(v: CoreVal<'_>) -> Self {
        match v {
            CoreVal::Str(s) => s.into_owned(),
            other => unreachable!("a string field holds {other:?}"),
        }
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
    fn from_val(v: CoreVal<'_>) -> Self {
        match v {
            CoreVal::I64(x) => x,
            other => unreachable!("a i64 field holds {other:?}"),
        }
    }
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
    fn from_val(v: CoreVal<'_>) -> Self {
        match v {
            CoreVal::F64(x) => x,
            other => unreachable!("a f64 field holds {other:?}"),
        }
    }
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
    fn from_val(v: CoreVal<'_>) -> Self {
        match v {
            CoreVal::Bool(x) => x,
            other => unreachable!("a bool field holds {other:?}"),
        }
    }
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
    fn from_val(v: CoreVal<'_>) -> Self {
        match v {
            CoreVal::Ts(x) => x,
            other => unreachable!("a Timestamp field holds {other:?}"),
        }
    }
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

/// Converts a JSON value into an extra field's value.
pub(crate) fn to_value_ref(v: JsonValue<'_>) -> ValueRef<'_> {
    match v {
        JsonValue::Null => ValueRef::Null,
        JsonValue::Bool(b) => ValueRef::Bool(b),
        JsonValue::Int(i) => ValueRef::Int(i),
        JsonValue::Float(f) => ValueRef::Float(f),
        JsonValue::Str(s) => ValueRef::Str(s),
        JsonValue::Nested(raw) => ValueRef::Json(json::compact(raw)),
    }
}
