//! Extra fields: values a producer sent beyond a stream's core fields. They are
//! never dropped; each becomes a column of the stream with an inferred type.

use crate::schema::ColumnType;
use crate::timestamp::Timestamp;
use std::borrow::Cow;

/// The value of one extra field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// Any other number, NaN and ±inf included.
    Float(f64),
    /// A string.
    Str(String),
    /// A timestamp (the `ts` field on streams where it is not a core field).
    Timestamp(Timestamp),
    /// A nested object or array, as compact JSON text.
    Json(String),
}

impl Value {
    /// The column type this value alone would need.
    pub fn column_type(&self) -> ColumnType {
        self.as_ref().column_type()
    }

    /// The value as JSON text, as stored in a text column when types conflict.
    /// Non-finite floats are written as Python writes them (`NaN`, `Infinity`).
    pub fn to_json_text(&self) -> String {
        let mut out = Vec::with_capacity(16);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON text is UTF-8")
    }

    /// Appends the value's JSON text to `out` (no allocation on the way).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.as_ref().write_json(out)
    }
}

/// An extra field's value, borrowed from the line it was read from where it
/// can be (the readers' path; [`Value`] is the owned twin).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Timestamp(Timestamp),
    /// A nested object or array, as compact JSON text.
    Json(Cow<'a, str>),
}

impl<'a> ValueRef<'a> {
    /// The column type this value alone would need.
    pub(crate) fn column_type(&self) -> ColumnType {
        match self {
            ValueRef::Null => ColumnType::Null,
            ValueRef::Bool(_) => ColumnType::Bool,
            ValueRef::Int(_) => ColumnType::Int64,
            ValueRef::Float(_) => ColumnType::Float64,
            ValueRef::Str(_) | ValueRef::Json(_) => ColumnType::String,
            ValueRef::Timestamp(_) => ColumnType::Timestamp,
        }
    }

    /// The same value, borrowing from this one.
    pub(crate) fn reborrow(&self) -> ValueRef<'_> {
        match self {
            ValueRef::Null => ValueRef::Null,
            ValueRef::Bool(b) => ValueRef::Bool(*b),
            ValueRef::Int(i) => ValueRef::Int(*i),
            ValueRef::Float(f) => ValueRef::Float(*f),
            ValueRef::Str(s) => ValueRef::Str(Cow::Borrowed(s)),
            ValueRef::Timestamp(t) => ValueRef::Timestamp(*t),
            ValueRef::Json(j) => ValueRef::Json(Cow::Borrowed(j)),
        }
    }

    /// The owned value.
    pub(crate) fn into_owned(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.into_owned()),
            ValueRef::Timestamp(t) => Value::Timestamp(t),
            ValueRef::Json(j) => Value::Json(j.into_owned()),
        }
    }

    /// The value as JSON text (see [`Value::to_json_text`]).
    pub(crate) fn to_json_text(&self) -> String {
        let mut out = Vec::with_capacity(16);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON text is UTF-8")
    }

    /// Appends the value's JSON text to `out`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        match self {
            ValueRef::Null => out.extend_from_slice(b"null"),
            ValueRef::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            ValueRef::Int(i) => {
                let _ = write!(out, "{i}");
            }
            ValueRef::Float(f) => write_f64(*f, out),
            ValueRef::Str(s) => serde_json::to_writer(&mut *out, s.as_ref()).expect("writing to a Vec cannot fail"),
            ValueRef::Timestamp(t) => {
                let _ = write!(out, "\"{}\"", t.to_rfc3339());
            }
            ValueRef::Json(j) => out.extend_from_slice(j.as_bytes()),
        }
    }
}

impl Value {
    /// The value, borrowed.
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(Cow::Borrowed(s)),
            Value::Timestamp(t) => ValueRef::Timestamp(*t),
            Value::Json(j) => ValueRef::Json(Cow::Borrowed(j)),
        }
    }
}

/// Appends a float as JSON, with Python's tokens for the non-finite ones.
pub(crate) fn write_f64(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        serde_json::to_writer(&mut *out, &f).expect("writing to a Vec cannot fail");
    }
}

/// The extra fields of a record, in the order they were sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extras(Vec<(String, Value)>);

impl Extras {
    /// No extra fields.
    pub fn new() -> Self {
        Extras(Vec::new())
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        let name = name.into();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// Builder-style [`insert`](Self::insert).
    pub fn with(mut self, name: impl Into<String>, value: Value) -> Self {
        self.insert(name, value);
        self
    }

    /// Field `i`: its name and value, borrowed.
    pub(crate) fn at(&self, i: usize) -> (&str, ValueRef<'_>) {
        let (k, v) = &self.0[i];
        (k, v.as_ref())
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Self {
        Value::Timestamp(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_keeps_python_tokens() {
        assert_eq!(Value::Float(f64::NAN).to_json_text(), "NaN");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_json_text(), "-Infinity");
        assert_eq!(Value::Float(0.5).to_json_text(), "0.5");
        assert_eq!(Value::Str("a\"b".into()).to_json_text(), "\"a\\\"b\"");
    }

    #[test]
    fn insert_replaces_same_name() {
        let mut e = Extras::new();
        e.insert("a", 1i64.into());
        e.insert("b", 2i64.into());
        e.insert("a", 3i64.into());
        assert_eq!(e.len(), 2);
        assert_eq!(e.get("a"), Some(&Value::Int(3)));
    }
}
