//! Writing a record back as one NDJSON object, for the write-ahead log: what
//! [`Record::from_json`](super::Record::from_json) reads back to an equal record.

use crate::value::{Extras, Value};

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
