//! The core streams, each declared once (SPEC §2 "Core fields").

use super::coerce::CoreType;
use super::json_write::{write_key, write_tail};
use super::{CoreField, ParsedLine, Row, StreamDef};
use crate::column::Column;
use crate::timestamp::Timestamp;
use crate::value::{Extras, ValueRef};

macro_rules! core_stream {
    (
        $(#[$doc:meta])*
        $name:ident => $stream:literal, wire $wire:literal {
            required { $($(#[$rdoc:meta])* $rf:ident : $rt:ty),* $(,)? }
            optional { $($(#[$odoc:meta])* $of:ident : $ot:ty),* $(,)? }
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name {
            $($(#[$rdoc])* pub $rf: $rt,)*
            $($(#[$odoc])* pub $of: Option<$ot>,)*
            /// The producer's name; overrides the connection's source.
            pub source: Option<String>,
            /// Fields beyond the core ones, stored as inferred extra columns.
            pub extra: Extras,
        }

        impl $name {
            /// The stream's name on the wire and on disk.
            pub const STREAM: &'static str = $stream;
            /// The stream's core columns, in order.
            pub(crate) const FIELDS: &'static [CoreField] = &[
                $(CoreField { name: stringify!($rf), ty: <$rt as CoreType>::TYPE, required: true },)*
                $(CoreField { name: stringify!($of), ty: <$ot as CoreType>::TYPE, required: false },)*
            ];
            /// The stream's definition for the decoder.
            pub(crate) const DEF: StreamDef = StreamDef { name: $stream, wire: $wire, fields: Self::FIELDS };

            /// The record a decoded line of this stream holds.
            pub(crate) fn from_parsed(p: ParsedLine<'_>) -> Self {
                let mut core = p.core.into_iter();
                $name {
                    $($rf: <$rt as CoreType>::from_val(core.next().flatten().expect("a required field is present")),)*
                    $($of: core.next().flatten().map(<$ot as CoreType>::from_val),)*
                    source: p.source.map(|s| s.into_owned()),
                    extra: p.extras.into_iter().fold(Extras::new(), |e, (k, v)| e.with(k.into_owned(), v.into_owned())),
                }
            }
        }

        impl Row for $name {
            fn stream_name(&self) -> &str { $stream }
            fn core_fields(&self) -> &'static [CoreField] { Self::FIELDS }
            fn push_core(&self, cols: &mut [Column]) {
                let mut cols = cols.iter_mut();
                $(<$rt as CoreType>::push(Some(&self.$rf), cols.next().expect("a column per core field"));)*
                $(<$ot as CoreType>::push(self.$of.as_ref(), cols.next().expect("a column per core field"));)*
            }
            fn source(&self) -> Option<&str> { self.source.as_deref() }
            fn extras_len(&self) -> usize { self.extra.len() }
            fn extra_at(&self, i: usize) -> (&str, ValueRef<'_>) { self.extra.at(i) }
            fn write_json(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(concat!("{\"stream\":\"", $wire, "\"").as_bytes());
                $(write_key(stringify!($rf), out); <$rt as CoreType>::write_json(&self.$rf, out);)*
                $(if let Some(v) = &self.$of { write_key(stringify!($of), out); <$ot as CoreType>::write_json(v, out); })*
                write_tail(self.source.as_deref(), &self.extra, out);
            }
        }
    };
}

core_stream! {
    /// A closed trade (stream `trades`), with the fields of Freqtrade's backtest export.
    Trade => "trades", wire "trades" {
        required {
            /// Trading pair, e.g. `BTC/USDT`.
            pair: String,
        }
        optional {
            /// The engine's trade id.
            trade_id: i64,
            /// True for a short position.
            is_short: bool,
            /// Entry time.
            open_date: Timestamp,
            /// Exit time.
            close_date: Timestamp,
            /// Entry price.
            open_rate: f64,
            /// Exit price.
            close_rate: f64,
            /// Position size in base currency.
            amount: f64,
            /// Stake in quote currency.
            stake_amount: f64,
            /// Leverage.
            leverage: f64,
            /// Entry fee ratio.
            fee_open: f64,
            /// Exit fee ratio.
            fee_close: f64,
            /// Profit as a ratio of the stake.
            profit_ratio: f64,
            /// Profit in quote currency.
            profit_abs: f64,
            /// Why the trade was closed (`roi`, `stop_loss`, ...).
            exit_reason: String,
            /// The entry signal's tag.
            enter_tag: String,
            /// Duration in minutes.
            trade_duration: i64,
            /// Lowest price seen while open.
            min_rate: f64,
            /// Highest price seen while open.
            max_rate: f64,
        }
    }
}

core_stream! {
    /// The end of one RL training episode (stream `rl_episodes`).
    RlEpisode => "rl_episodes", wire "rl_episodes" {
        required {
            /// Episode number.
            episode: i64,
        }
        optional {
            /// Pair the episode ran on.
            pair: String,
            /// First candle of the episode.
            start_ts: Timestamp,
            /// Last candle of the episode.
            end_ts: Timestamp,
            /// Environment steps taken.
            steps: i64,
            /// Sum of rewards.
            total_reward: f64,
            /// Profit over the episode.
            total_profit: f64,
            /// Trades made.
            trades: i64,
            /// Model name.
            model: String,
        }
    }
}

core_stream! {
    /// One model prediction (stream `predictions`).
    Prediction => "predictions", wire "predictions" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Model name.
            model: String,
            /// Predicted value.
            prediction: f64,
            /// Predicted label.
            label: String,
            /// Confidence in [0, 1].
            confidence: f64,
            /// FreqAI's `do_predict` flag.
            do_predict: i64,
        }
    }
}

core_stream! {
    /// One stage a signal passed or failed (stream `signal_propagation`).
    SignalPropagation => "signal_propagation", wire "signal_propagation" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Pipeline stage, e.g. `model`, `filter`, `entry`.
            stage: String,
            /// Signal name.
            signal: String,
            /// Signal value.
            value: f64,
            /// Whether the stage let it through.
            accepted: bool,
            /// Why it was rejected.
            reason: String,
        }
    }
}

core_stream! {
    /// One agent step (stream `model_decisions`).
    ModelDecision => "model_decisions", wire "model_decisions" {
        required {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
        }
        optional {
            /// Episode number.
            episode: i64,
            /// Step within the episode.
            step: i64,
            /// Action index.
            action: i64,
            /// Action name (`Long_enter`, ...).
            action_name: String,
            /// Position after the step.
            position: f64,
            /// Reward of the step.
            reward: f64,
            /// Cumulative reward.
            total_reward: f64,
            /// Cumulative profit.
            total_profit: f64,
            /// Confidence of the action.
            confidence: f64,
        }
    }
}

core_stream! {
    /// A candle tick (wire stream `candle`): advances the candle counter; stored in
    /// the `candles` stream only with `keep_candles`.
    Candle => "candles", wire "candle" {
        required {}
        optional {
            /// Candle time.
            ts: Timestamp,
            /// Trading pair.
            pair: String,
            /// Open price.
            open: f64,
            /// High price.
            high: f64,
            /// Low price.
            low: f64,
            /// Close price.
            close: f64,
            /// Volume.
            volume: f64,
        }
    }
}
