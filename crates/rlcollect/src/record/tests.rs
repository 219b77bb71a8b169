//! Unit tests of decoding, coercion and the JSON round trip.

use super::*;
use crate::timestamp::Timestamp;
use crate::value::Value;

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
            source: "worker-1".into(),
            ring: None
        }))
    );
    assert_eq!(
        decode(r#"{"stream":"control","op":"hello","source":"w","ring":"rings/p1-ab.ring"}"#),
        Ok(Record::Control(Control::Hello {
            source: "w".into(),
            ring: Some("rings/p1-ab.ring".into())
        }))
    );
    assert!(decode(r#"{"stream":"control","op":"hello","source":"w","ring":5}"#).is_err());
    assert_eq!(
        decode(r#"{"stream":"control","op":"bye"}"#),
        Ok(Record::Control(Control::Bye))
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
    let Record::ModelDecision(d) = decode(r#"{"stream":"model_decisions","ts":1,"pair":"A","reward":NaN}"#).unwrap()
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

#[test]
fn control_records_written_as_json_read_back_equal() {
    for c in [
        Control::Checkpoint,
        Control::Bye,
        Control::Hello {
            source: "w\"1".into(),
            ring: Some("rings/p1-a.ring".into()),
        },
        Control::Hello {
            source: "w".into(),
            ring: None,
        },
    ] {
        let mut out = Vec::new();
        Record::Control(c.clone()).write_json(&mut out);
        assert_eq!(
            Record::from_json(&out),
            Ok(Record::Control(c)),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn a_scratch_shared_by_many_lines_decodes_each_as_a_fresh_one_would() {
    let lines = [
        r#"{"stream":"model_decisions","ts":1,"pair":"A/B","action":2,"q":[1,2],"eps":0.25}"#,
        r#"{"stream":"my_stream","a":"x","b":1.5,"a":"y"}"#,
        r#"{"stream":"trades","pair":"A/B","open_date":"bad"}"#,
        r#"{"stream":"my_stream","c":null,"#,
        r#"{"stream":"control","op":"checkpoint"}"#,
        r#"{"stream":"predictions","ts":2,"pair":"A/B","prediction":0.125,"DI_values":0.5}"#,
        r#"{"stream":"my_stream"}"#,
    ];
    let mut scratch = LineScratch::default();
    for line in lines {
        let shared = ParsedLine::parse_with(line.as_bytes(), &mut scratch);
        assert_eq!(shared, ParsedLine::parse(line.as_bytes()), "{line}");
        if let Ok(mut parsed) = shared {
            scratch.recycle(&mut parsed);
        }
    }
}

#[test]
fn a_scratch_keeps_its_allocations_from_line_to_line() {
    let mut scratch = LineScratch::default();
    let mut first = ParsedLine::parse_with(br#"{"stream":"s","a":1,"b":2}"#, &mut scratch).unwrap();
    let extras = first.extras.as_ptr() as usize;
    scratch.recycle(&mut first);
    let second = ParsedLine::parse_with(br#"{"stream":"s","c":3}"#, &mut scratch).unwrap();
    assert_eq!(second.extras.as_ptr() as usize, extras);
    assert_eq!(second.extras.len(), 1);
}

/// The same members with `stream` first (decoded as they are read) and with
/// `stream` last (the general path, all members first) decode alike, errors
/// included: a JSON error anywhere in the line comes before any field error.
#[test]
fn stream_first_and_stream_last_decode_alike() {
    let bodies = [
        r#""ts":1,"pair":"A/B","action":2,"q":[1,2],"eps":0.25"#,
        r#""pair":5,"trade_id":"x","#,
        r#""pair":"A/B","_seq":1"#,
        r#""pair":"A/B","trade_id":1,"open_date":"bad","_seq":2"#,
        r#""pair":"A/B","trade_id":1,"open_date":1,"close_date":null,"x":Infinity"#,
        r#""ts":null,"pair":"A/B""#,
        r#""a":"x","b":1.5,"a":"y","source":"s1""#,
        r#""_seq":1,"a":"#,
        r#""_seq":1,"source":3"#,
    ];
    for stream in ["model_decisions", "trades", "my_stream"] {
        for body in bodies {
            let first = format!(r#"{{"stream":"{stream}",{body}}}"#);
            let last = format!(r#"{{{body},"stream":"{stream}"}}"#);
            let (a, b) = (ParsedLine::parse(first.as_bytes()), ParsedLine::parse(last.as_bytes()));
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(
                        (&a.kind, &a.core, &a.source, &a.extras),
                        (&b.kind, &b.core, &b.source, &b.extras),
                        "{first}"
                    )
                }
                (
                    Err(DecodeError::InvalidJson { message: a, .. }),
                    Err(DecodeError::InvalidJson { message: b, .. }),
                ) => {
                    assert_eq!(a, b, "{first}")
                }
                (a, b) => assert_eq!(a.map(|_| ()), b.map(|_| ()), "{first}"),
            }
        }
    }
}
