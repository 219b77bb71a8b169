//! Writing a record back as one NDJSON object, for the write-ahead log: what
//! [`Record::from_json`](super::Record::from_json) reads back to an equal record.

use super::{Control, Record, Row};
use crate::value::{Extras, Value};

impl Record {
    /// The record as one NDJSON object (no newline), as the wire format
    /// (SPEC §2) has it; [`Record::from_json`] reads it back to an equal record.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Record::Control(c) => c.write_json(out),
            Record::Candle(c) => c.write_json(out),
            other => {
                if let Some(row) = other.row() {
                    row.write_json(out)
                }
            }
        }
    }
}

impl Control {
    /// The control record as one NDJSON object (no newline).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"stream":"control","op":"#);
        match self {
            Control::Checkpoint => out.extend_from_slice(br#""checkpoint""#),
            Control::Bye => out.extend_from_slice(br#""bye""#),
            Control::Hello { source, ring } => {
                out.extend_from_slice(br#""hello""#);
                write_key("source", out);
                write_json_str(source, out);
                if let Some(ring) = ring {
                    write_key("ring", out);
                    write_json_str(ring, out);
                }
            }
        }
        out.push(b'}');
    }
}

pub(super) fn write_json_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail")
}

/// Appends `"key":` (with a leading comma) to an object being written.
pub(super) fn write_key(key: &str, out: &mut Vec<u8>) {
    out.push(b',');
    write_json_str(key, out);
    out.push(b':');
}

/// Appends the common tail of every record's JSON: source and extras, then `}`.
pub(super) fn write_tail(source: Option<&str>, extra: &Extras, out: &mut Vec<u8>) {
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
