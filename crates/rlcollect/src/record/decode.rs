//! A decoded line into an owned [`Record`](super::Record).

use super::parsed::{Kind, ParsedLine};
use super::{Candle, ModelDecision, Prediction, Record, RlEpisode, SignalPropagation, Trade, UserRecord};
use crate::value::Extras;

/// The owned record a decoded line holds.
pub(super) fn into_record(p: ParsedLine<'_>) -> Record {
    match &p.kind {
        Kind::Control(c) => Record::Control(c.clone()),
        Kind::User(name) => Record::User(UserRecord {
            stream: name.to_string(),
            source: p.source.clone().map(|s| s.into_owned()),
            extra: p
                .extras
                .iter()
                .fold(Extras::new(), |e, (k, v)| e.with(k.to_string(), v.clone().into_owned())),
        }),
        Kind::Core(def) => match def.wire {
            Trade::STREAM => Record::Trade(Trade::from_parsed(p)),
            RlEpisode::STREAM => Record::RlEpisode(RlEpisode::from_parsed(p)),
            Prediction::STREAM => Record::Prediction(Prediction::from_parsed(p)),
            SignalPropagation::STREAM => Record::SignalPropagation(SignalPropagation::from_parsed(p)),
            ModelDecision::STREAM => Record::ModelDecision(ModelDecision::from_parsed(p)),
            _ => Record::Candle(Candle::from_parsed(p)),
        },
    }
}
