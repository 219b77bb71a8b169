//! The contract's exact wire-format cases (`tests/data/spec-cases`), through
//! `Record::from_json` and through the collector into Parquet.

use crate::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use rlcollect::*;

fn cases() -> (Vec<String>, serde_json::Value) {
    let lines = std::fs::read_to_string(data("spec-cases/decode.ndjson")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("spec-cases/decode.expected.json")).unwrap()).unwrap();
    (lines.lines().map(str::to_owned).collect(), expected)
}

#[test]
fn every_case_is_accepted_or_rejected_as_the_spec_says() {
    let (lines, expected) = cases();
    let expected = expected["lines"].as_array().unwrap();
    assert_eq!(lines.len(), expected.len());
    for (line, exp) in lines.iter().zip(expected) {
        let got = Record::from_json(line.as_bytes());
        let n = exp["line"].as_u64().unwrap();
        assert_eq!(
            got.is_ok(),
            exp["accept"].as_bool().unwrap(),
            "line {n}: {line} -> {got:?}"
        );
    }
}

#[test]
fn rejection_reasons_are_the_specs() {
    let (lines, _) = cases();
    let err = |n: usize| Record::from_json(lines[n - 1].as_bytes()).unwrap_err();
    assert_eq!(err(4).to_string(), "core field profit_abs: \"abc\" is not a number");
    assert_eq!(err(5), DecodeError::MissingField { field: "pair" });
    assert_eq!(err(5).to_string(), "required field pair is missing");
    assert_eq!(err(6), DecodeError::NotAnObject);
    assert!(matches!(err(7), DecodeError::InvalidStreamName(_)));
    assert!(err(8).to_string().contains("truncated"), "{}", err(8));
    assert_eq!(err(13), DecodeError::MissingStream);
}

#[test]
fn accepted_cases_have_the_expected_typed_values() {
    let (lines, _) = cases();
    let rec = |n: usize| Record::from_json(lines[n - 1].as_bytes()).unwrap();
    let Record::Trade(t) = rec(1) else {
        panic!("line 1 is a trade")
    };
    assert_eq!(t.pair, "TRX/BTC");
    assert_eq!(t.open_date, Some(Timestamp(1_515_568_500_000)));
    assert_eq!(t.close_date, Some(Timestamp(1_515_568_800_000)));
    assert_eq!(t.open_rate, Some(9.64e-05));
    assert_eq!(t.profit_abs, Some(4.5112781954887056e-05));
    assert_eq!(t.is_short, Some(false));
    assert_eq!(t.extra.get("open_timestamp"), Some(&Value::Float(1515568500000.0)));
    assert_eq!(t.extra.get("orders"), Some(&Value::Null));

    let Record::ModelDecision(d) = rec(2) else { panic!() };
    assert_eq!((d.ts, d.action), (Timestamp(1_515_568_500_000), Some(1)));
    assert!(d.reward.unwrap().is_nan());
    assert_eq!(d.total_reward, Some(f64::NEG_INFINITY));
    assert_eq!(d.extra.get("q"), Some(&Value::Float(f64::INFINITY)));

    let Record::Prediction(p) = rec(3) else { panic!() };
    assert_eq!(p.ts, Timestamp::parse("2024-10-01T00:05:00Z").unwrap());
    assert_eq!((p.prediction, p.do_predict), (Some(0.25), Some(1)));
    assert_eq!(p.extra.get("features"), Some(&Value::Json(r#"{"rsi":55.5}"#.into())));
    assert_eq!(p.extra.get("tags"), Some(&Value::Json(r#"["a","b"]"#.into())));

    assert!(matches!(rec(9), Record::Candle(_)));
    assert_eq!(rec(10), Record::Control(Control::Checkpoint));
    let Record::User(u) = rec(11) else { panic!() };
    assert_eq!(u.stream, "my_custom_stream");
    assert_eq!(u.extra.get("ts"), Some(&Value::Timestamp(Timestamp(1_515_568_500_000))));
    assert_eq!(u.extra.get("value"), Some(&Value::Int(3)));
    let Record::RlEpisode(e) = rec(12) else { panic!() };
    assert_eq!((e.episode, e.total_reward), (7, Some(12.5)));
}

#[test]
fn the_cases_through_the_collector_store_the_spec_totals() {
    let (lines, expected) = cases();
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    // Through the sidecar's own reader, as a pipe would deliver them.
    let input = std::fs::File::open(data("spec-cases/decode.ndjson")).unwrap();
    let readers = ingest::Readers::new(c.handle(), c.run(), Default::default(), ingest::StopGate::new());
    let (end, counts) = readers.read(input, "test", &mut ingest::OneWay);
    assert_eq!((end, counts.lines), (ingest::ReadEnd::Eof, lines.len() as u64));
    let s = c.close().unwrap();
    let totals = &expected["totals"];
    assert_eq!(s.rejected, totals["rejected"].as_u64().unwrap());
    assert_eq!(s.candles, 1);
    let run = dir.path().join("r");
    assert_gap_free(
        &stored_seqs(&run, None),
        totals["accepted_data_records"].as_u64().unwrap(),
    );
    assert_typed_columns(&run);
    assert_eq!(rejected_line_numbers(&run), [4, 5, 6, 7, 8, 13]);
}

/// The typed columns of the case files, as the spec lists them.
fn assert_typed_columns(run: &std::path::Path) {
    let md = read_parquet(&run.join("model_decisions/part-000001.parquet"));
    let b = &md[0];
    assert!(b
        .column_by_name("reward")
        .unwrap()
        .as_primitive::<Float64Type>()
        .value(0)
        .is_nan());
    assert_eq!(
        b.column_by_name("q").unwrap().as_primitive::<Float64Type>().value(0),
        f64::INFINITY
    );
    assert_eq!(
        b.column_by_name("action").unwrap().as_primitive::<Int64Type>().value(0),
        1
    );
    assert_eq!(
        b.column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>()
            .value(0),
        1_515_568_500_000
    );
    let tr = read_parquet(&run.join("trades/part-000001.parquet"));
    assert_eq!(
        tr[0].column_by_name("orders").unwrap().data_type(),
        &arrow_schema::DataType::Null
    );
    let pr = read_parquet(&run.join("predictions/part-000001.parquet"));
    assert_eq!(
        pr[0].column_by_name("features").unwrap().as_string::<i32>().value(0),
        r#"{"rsi":55.5}"#
    );
}
