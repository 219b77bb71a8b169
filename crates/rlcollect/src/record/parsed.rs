//! One NDJSON line decoded as SPEC §2 says, borrowing from the line wherever it
//! can: a [`ParsedLine`]. It is the one decoder: `Record::from_json` turns it
//! into an owned record, and the sidecar's readers append it to Arrow
//! builders straight away, so no string of a line is copied twice.

use super::coerce::{coerce_val, to_value_ref, CoreVal};
use super::{is_valid_user_stream, Control, CoreField, Row, StreamDef, CORE_STREAMS};
use crate::buffer::META_COLUMNS;
use crate::column::Column;
use crate::error::DecodeError;
use crate::json::{self, JsonValue, Member};
use crate::value::ValueRef;
use std::borrow::Cow;

/// The most core fields a stream has (trades: 19); at most 32, the bits of
/// the presence mask in `core_members`.
pub(crate) const MAX_CORE: usize = 20;
const _: () = assert!(MAX_CORE <= 32);

/// What a line is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind<'a> {
    /// A core stream, or a candle tick.
    Core(&'static StreamDef),
    /// A user stream.
    User(Cow<'a, str>),
    /// A control record.
    Control(Control),
}

/// A decoded line (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedLine<'a> {
    pub kind: Kind<'a>,
    /// The core fields, in the stream's order (`None`: absent or null).
    pub core: [Option<CoreVal<'a>>; MAX_CORE],
    /// The producer named in the record, if any.
    pub source: Option<Cow<'a, str>>,
    /// The other fields, in the order they were sent (a name sent twice keeps
    /// its first place and its last value).
    pub extras: Vec<(Cow<'a, str>, ValueRef<'a>)>,
    /// The line itself.
    pub line: &'a [u8],
}

/// The vectors decoding a line needs, kept from one line to the next by a
/// reader: a fresh vector of members and one of extras per line were about a
/// tenth of the reader's decoding (`Vec::with_capacity`, `grow_one` and the
/// line's drop in `perf`).
#[derive(Debug, Default)]
pub(crate) struct LineScratch {
    members: Vec<Member<'static>>,
    extras: Vec<(Cow<'static, str>, ValueRef<'static>)>,
}

impl LineScratch {
    /// Takes back the vector of extras of a line that has been appended
    /// (by reference: a line is most of a kilobyte, too much to move).
    pub(crate) fn recycle(&mut self, line: &mut ParsedLine<'_>) {
        self.extras = reuse(std::mem::take(&mut line.extras));
    }
}

/// `v`'s allocation, emptied, as a vector of a type that differs from its
/// own only in lifetimes. The standard library collects a `vec::IntoIter`
/// into a vector of a type of the same size and alignment in place, so this
/// allocates nothing, and lets a vector that held one line's borrows serve
/// the next line without `unsafe`.
fn reuse<T, U>(v: Vec<T>) -> Vec<U> {
    v.into_iter().filter_map(|_| None).collect()
}

impl<'a> ParsedLine<'a> {
    /// Decodes one line (a trailing `\n` or `\r\n` is allowed).
    pub(crate) fn parse(line: &'a [u8]) -> Result<ParsedLine<'a>, DecodeError> {
        Self::parse_with(line, &mut LineScratch::default())
    }

    /// [`ParsedLine::parse`] with vectors kept in `scratch` (give the line
    /// back with [`LineScratch::recycle`] once it is appended).
    pub(crate) fn parse_with(line: &'a [u8], scratch: &mut LineScratch) -> Result<ParsedLine<'a>, DecodeError> {
        let mut members = reuse(std::mem::take(&mut scratch.members));
        let extras = reuse(std::mem::take(&mut scratch.extras));
        let parsed = Self::decode(line, &mut members, extras);
        scratch.members = reuse(members);
        parsed
    }

    // Inlined so the line is built where the caller keeps it, not moved.
    #[inline(always)]
    fn decode(
        line: &'a [u8],
        members: &mut Vec<Member<'a>>,
        extras: Vec<(Cow<'a, str>, ValueRef<'a>)>,
    ) -> Result<ParsedLine<'a>, DecodeError> {
        let text = std::str::from_utf8(line).map_err(|e| DecodeError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        json::parse_object_into(text, members).map_err(|e| match e {
            json::JsonError::NotAnObject => DecodeError::NotAnObject,
            json::JsonError::Syntax { offset, message } => DecodeError::InvalidJson { offset, message },
        })?;
        let stream = match members.iter().find(|(k, _)| k == "stream") {
            None => return Err(DecodeError::MissingStream),
            Some((_, JsonValue::Str(s))) => s.clone(),
            Some((_, other)) => {
                return Err(DecodeError::InvalidStreamName(
                    to_value_ref(other.clone()).to_json_text(),
                ))
            }
        };
        let mut parsed = ParsedLine {
            kind: Kind::Control(Control::Checkpoint),
            core: Default::default(),
            source: None,
            extras,
            line,
        };
        if let Some(def) = CORE_STREAMS.iter().find(|d| d.wire == stream) {
            parsed.kind = Kind::Core(def);
            parsed.core_members(def.fields, members)?;
        } else if stream == "control" {
            parsed.kind = Kind::Control(control(members)?);
        } else if is_valid_user_stream(&stream) {
            for (key, v) in members.drain(..) {
                parsed.common(key, v)?;
            }
            parsed.kind = Kind::User(stream);
        } else {
            return Err(DecodeError::InvalidStreamName(stream.into_owned()));
        }
        Ok(parsed)
    }

    /// A core stream's members, in one pass. The errors are as if required
    /// fields were checked first (the first one missing or null, in field
    /// order), then each member in order.
    fn core_members(&mut self, fields: &'static [CoreField], members: &mut Vec<Member<'a>>) -> Result<(), DecodeError> {
        // Bit i: field i was sent, not null.
        let mut present: u32 = 0;
        let mut first_error = None;
        let mut next = 0;
        for (key, v) in members.drain(..) {
            let Some(i) = field_index(fields, &key, next) else {
                if first_error.is_none() {
                    first_error = self.common(key, v).err();
                }
                continue;
            };
            next = i + 1;
            if v != JsonValue::Null {
                present |= 1 << i;
            }
            if first_error.is_some() {
                continue;
            }
            let field = &fields[i];
            match coerce_val(field.ty, v, &key) {
                Ok(None) if field.required => first_error = Some(DecodeError::MissingField { field: field.name }),
                Ok(val) => self.core[i] = val,
                Err(e) => first_error = Some(e),
            }
        }
        if let Some((_, field)) = (fields.iter().enumerate()).find(|(i, f)| f.required && present & (1 << i) == 0) {
            return Err(DecodeError::MissingField { field: field.name });
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The fields every record may carry: `stream` (skipped), `source`, `ts`
    /// (a timestamp wherever it is not a core field), reserved `_` names, and
    /// everything else as an extra field.
    fn common(&mut self, key: Cow<'a, str>, v: JsonValue<'a>) -> Result<(), DecodeError> {
        match key.as_ref() {
            "stream" => {}
            "source" => {
                self.source = match coerce_val(crate::schema::ColumnType::String, v, "source")? {
                    Some(CoreVal::Str(s)) => Some(s),
                    _ => None,
                }
            }
            "ts" => {
                let ts = coerce_val(crate::schema::ColumnType::Timestamp, v, "ts")?;
                let value = match ts {
                    Some(CoreVal::Ts(t)) => ValueRef::Timestamp(t),
                    _ => ValueRef::Null,
                };
                self.extra(key, value);
            }
            k if META_COLUMNS.contains(&k) => return Err(DecodeError::ReservedField(k.to_owned())),
            _ => self.extra(key, to_value_ref(v)),
        }
        Ok(())
    }

    fn extra(&mut self, key: Cow<'a, str>, value: ValueRef<'a>) {
        match self.extras.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.extras.push((key, value)),
        }
    }

    /// The stream the line is stored in (`None` for control records).
    pub(crate) fn stream(&self) -> Option<&str> {
        match &self.kind {
            Kind::Core(def) => Some(def.name),
            Kind::User(name) => Some(name),
            Kind::Control(_) => None,
        }
    }

    /// A core field's value, by name.
    pub(crate) fn core(&self, name: &str) -> Option<&CoreVal<'a>> {
        let Kind::Core(def) = &self.kind else { return None };
        let i = def.fields.iter().position(|f| f.name == name)?;
        self.core[i].as_ref()
    }
}

/// The index of field `key`, looked for from `from` on and then from the
/// start: producers send a stream's fields in the same order line after
/// line, mostly in the stream's own order, so the first comparison usually
/// hits (a search from the start compared every name before it, which was
/// most of the reader's `memcmp`).
fn field_index(fields: &[CoreField], key: &str, from: usize) -> Option<usize> {
    let from = from.min(fields.len());
    let (head, tail) = fields.split_at(from);
    tail.iter()
        .position(|f| f.name == key)
        .map(|i| from + i)
        .or_else(|| head.iter().position(|f| f.name == key))
}

/// A control record's members.
fn control(members: &[(Cow<'_, str>, JsonValue<'_>)]) -> Result<Control, DecodeError> {
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    match get("op") {
        Some(JsonValue::Str(op)) if op == "checkpoint" => Ok(Control::Checkpoint),
        Some(JsonValue::Str(op)) if op == "bye" => Ok(Control::Bye),
        Some(JsonValue::Str(op)) if op == "hello" => {
            let ring = match get("ring") {
                None | Some(JsonValue::Null) => None,
                Some(JsonValue::Str(r)) => Some(r.to_string()),
                Some(other) => {
                    return Err(DecodeError::WrongType {
                        field: "ring".into(),
                        value: to_value_ref(other.clone()).to_json_text(),
                        expected: "a ring path",
                    })
                }
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
        Some(other) => Err(DecodeError::UnknownControl(to_value_ref(other.clone()).to_json_text())),
        None => Err(DecodeError::UnknownControl(String::new())),
    }
}

impl Row for ParsedLine<'_> {
    fn stream_name(&self) -> &str {
        self.stream().unwrap_or("control")
    }

    fn core_fields(&self) -> &'static [CoreField] {
        match &self.kind {
            Kind::Core(def) => def.fields,
            _ => &[],
        }
    }

    fn push_core(&self, cols: &mut [Column]) {
        for (col, val) in cols.iter_mut().zip(&self.core) {
            match val {
                None => col.push_null(),
                Some(CoreVal::Str(s)) => col.push_str(Some(s)),
                Some(CoreVal::I64(i)) => col.push_i64(Some(*i)),
                Some(CoreVal::F64(f)) => col.push_f64(Some(*f)),
                Some(CoreVal::Bool(b)) => col.push_bool(Some(*b)),
                Some(CoreVal::Ts(t)) => col.push_ts(Some(*t)),
            }
        }
    }

    fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    fn extras_len(&self) -> usize {
        self.extras.len()
    }

    fn extra_at(&self, i: usize) -> (&str, ValueRef<'_>) {
        let (k, v) = &self.extras[i];
        (k, v.reborrow())
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        let line = self.line.strip_suffix(b"\n").unwrap_or(self.line);
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
}
