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
