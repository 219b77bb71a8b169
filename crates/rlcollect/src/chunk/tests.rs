//! Chunks built on the producer's side and gathered into parts on the
//! worker's: schema growth, sealing, widening, `_seq` numbering.

use super::*;
use crate::buffer::StreamBuffer;
use crate::record::UserRecord;
use crate::value::{Extras, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_schema::DataType;

fn user(fields: &[(&str, Value)]) -> Record {
    let mut extra = Extras::new();
    for (k, v) in fields {
        extra.insert(*k, v.clone());
    }
    Record::User(UserRecord {
        stream: "s".into(),
        source: None,
        extra,
    })
}

/// Every row of `chunks` through one stream buffer, numbered from 0; the
/// sealed parts as (first seq, last seq, type of column `a`).
fn parts(chunks: Vec<Chunk>) -> (StreamBuffer, Vec<(u64, u64, DataType)>) {
    let mut buffer: Option<StreamBuffer> = None;
    let mut base = 0;
    for chunk in chunks {
        for (_, rows) in &chunk.streams {
            for r in rows {
                let b = buffer.get_or_insert_with(|| StreamBuffer::new(r));
                b.append(r, 0..r.rel.len(), base, Timestamp(0));
            }
        }
        base += u64::from(chunk.rows);
    }
    let mut b = buffer.unwrap();
    b.seal();
    let mut out = Vec::new();
    while let Some(p) = b.front() {
        let ty = p
            .schema
            .field_with_name("a")
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        out.push((p.first_seq, p.last_seq, ty));
        b.pop_published();
    }
    (b, out)
}

fn chunk_of(records: &[Record]) -> Chunk {
    let mut c = ChunkBuilder::new("t".into(), false, true);
    for r in records {
        c.push(r, None, true);
    }
    c.take(None)
}

#[test]
fn missing_fields_are_null_and_one_schema_stays_one_part() {
    let chunk = chunk_of(&[
        user(&[("a", Value::Int(1)), ("b", Value::Str("x".into()))]),
        user(&[("a", Value::Int(2))]),
    ]);
    let rows = &chunk.streams[0].1[0];
    assert_eq!(rows.rel, vec![0, 1]);
    assert_eq!(rows.columns[2].null_count(), 1, "b is null in the second row");
    let (_, parts) = parts(vec![chunk]);
    assert_eq!(parts, vec![(0, 1, DataType::Int64)]);
}

#[test]
fn a_new_or_wider_field_seals_a_part_within_a_chunk_and_across_chunks() {
    let first = chunk_of(&[user(&[("a", Value::Int(1))]), user(&[("a", Value::Float(2.5))])]);
    let second = chunk_of(&[
        user(&[("a", Value::Int(3)), ("n", Value::Null)]),
        user(&[("a", Value::Str("x".into()))]),
    ]);
    let third = chunk_of(&[user(&[("a", Value::Int(5))])]);
    let (_, parts) = parts(vec![first, second, third]);
    use DataType::*;
    assert_eq!(
        parts,
        vec![(0, 0, Int64), (1, 1, Float64), (2, 2, Float64), (3, 4, Utf8)]
    );
}

#[test]
fn a_narrower_chunk_from_another_producer_is_widened_not_split() {
    // Producer 1 already saw text in `a`; producer 2 sends integers and bools.
    let wide = chunk_of(&[user(&[("a", Value::Str("x".into()))])]);
    let narrow = chunk_of(&[user(&[("a", Value::Int(3))]), user(&[("a", Value::Int(4))])]);
    let flags = {
        let mut c = ChunkBuilder::new("t".into(), false, false);
        c.push(&user(&[("a", Value::Bool(true))]), None, true);
        c.take(None)
    };
    let mut buffer = StreamBuffer::new(&wide.streams[0].1[0]);
    buffer.append(&wide.streams[0].1[0], 0..1, 0, Timestamp(0));
    buffer.append(&narrow.streams[0].1[0], 0..2, 1, Timestamp(0));
    buffer.append(&flags.streams[0].1[0], 0..1, 3, Timestamp(0));
    buffer.seal();
    let part = buffer.front().unwrap();
    assert_eq!(part.rows, 4, "one part: the stream's schema did not change");
    let a: Vec<_> = part
        .batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("a")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        a,
        [Some("x"), Some("3"), Some("4"), Some("true")].map(|v| v.map(str::to_owned))
    );
}

#[test]
fn rows_of_several_streams_are_numbered_in_the_order_they_came() {
    let mut c = ChunkBuilder::new("t".into(), false, true);
    let other = |i: i64| {
        Record::User(UserRecord {
            stream: "other".into(),
            source: Some("w2".into()),
            extra: Extras::new().with("i", Value::Int(i)),
        })
    };
    c.push(&user(&[("a", Value::Int(0))]), Some(b"{\"line\":0}"), true);
    c.push(&other(1), None, true);
    c.push(&Record::Candle(Default::default()), None, true);
    c.push(&user(&[("a", Value::Int(2))]), None, true);
    let chunk = c.take(None);
    assert_eq!(chunk.rows, 3);
    assert!(matches!(chunk.events[..], [ChunkEvent::Candle { at: 2, .. }]));
    assert_eq!(chunk.streams[0].1[0].rel, vec![0, 2]);
    assert_eq!(chunk.streams[1].1[0].rel, vec![1]);
    assert_eq!(chunk.lines.iter().len(), 3, "a line per stored row for the log");
    assert_eq!(chunk.lines.iter().next(), Some(&b"{\"line\":0}"[..]));
    let rows = &chunk.streams[1].1[0];
    let mut b = StreamBuffer::new(rows);
    b.append(rows, 0..1, 100, Timestamp(7));
    b.seal();
    let batch = &b.front().unwrap().batches[0];
    assert_eq!(
        batch
            .column_by_name("_seq")
            .unwrap()
            .as_primitive::<UInt64Type>()
            .value(0),
        101
    );
    assert_eq!(
        batch.column_by_name("_source").unwrap().as_string::<i32>().value(0),
        "w2"
    );
}

mod same_rows_both_ways {
    //! The readers append a decoded line in place (`push_line`); `Handle::send`
    //! appends an owned record (`push`). Both must give the same columns and
    //! the same statistics, for any line.
    use super::*;
    use crate::manifest::RunStatus;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("NaN".to_owned()),
            Just("-Infinity".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<i32>().prop_map(|i| i.to_string()),
            (-1e6f64..1e6).prop_map(|f| format!("{f:?}")),
            "[a-z ]{0,6}".prop_map(|s| format!("\"{s}\"")),
            Just("\"12.5\"".to_owned()),
            Just("\"2024-10-01T00:05:00Z\"".to_owned()),
            Just("[1, {\"a\": 2}]".to_owned()),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        let stream = prop_oneof![
            Just("trades"),
            Just("rl_episodes"),
            Just("model_decisions"),
            Just("predictions"),
            Just("my_stream"),
            Just("candle"),
        ];
        let keys = prop_oneof![
            Just("pair"),
            Just("ts"),
            Just("episode"),
            Just("action"),
            Just("profit_abs"),
            Just("exit_reason"),
            Just("reward"),
            Just("total_reward"),
            Just("source"),
            Just("x"),
            Just("y"),
        ];
        (stream, proptest::collection::vec((keys, value()), 0..8)).prop_map(|(stream, fields)| {
            let mut parts: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            parts.push(format!("\"stream\": \"{stream}\""));
            format!("{{{}}}", parts.join(", "))
        })
    }

    /// Each stream's rows as text: name, fields with their types, columns.
    fn columns(chunk: &Chunk) -> Vec<String> {
        chunk
            .streams
            .iter()
            .flat_map(|(name, rows)| rows.iter().map(move |r| (name, r)))
            .map(|(name, r)| {
                let data: Vec<String> = r.columns.iter().map(|c| format!("{c:?}")).collect();
                format!("{name} {:?} {data:?}", r.fields)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn a_line_appended_in_place_equals_its_record(lines in proptest::collection::vec(line(), 1..30)) {
            let mut direct = ChunkBuilder::new("t".into(), true, true);
            let mut owned = ChunkBuilder::new("t".into(), true, true);
            for l in &lines {
                let a = direct.push_line(l.as_bytes()).map(|_| ());
                let b = Record::from_json(l.as_bytes()).map(|r| owned.push(&r, Some(l.as_bytes()), true));
                prop_assert_eq!(a.is_ok(), b.is_ok(), "{}", l);
            }
            let (d, o) = (direct.take(None), owned.take(None));
            prop_assert_eq!(d.rows, o.rows);
            prop_assert_eq!(columns(&d), columns(&o));
            let summary = |a: Aggregates| a.summary("r", RunStatus::Complete, BTreeMap::new(), 0, 0);
            prop_assert_eq!(format!("{:?}", summary(d.aggregates)), format!("{:?}", summary(o.aggregates)));
        }
    }
}
