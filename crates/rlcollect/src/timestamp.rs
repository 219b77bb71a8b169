//! Timestamps as the wire format gives them (SPEC §2): RFC 3339 / ISO 8601 text
//! (a space may replace the `T`; no offset means UTC) or epoch milliseconds.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use std::fmt;

/// A point in time, stored as milliseconds since the Unix epoch, UTC
/// (Arrow `Timestamp(Millisecond, "UTC")` in the files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Epoch milliseconds.
    pub fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// Epoch milliseconds.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 / ISO 8601 text: `2024-10-01T00:05:00Z`,
    /// `2018-01-10 07:15:00+00:00`, `2024-10-01T00:05:00.123` (naive = UTC) or a
    /// bare date `2024-10-01`. Returns `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp(dt.timestamp_millis()));
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%z",
            "%Y-%m-%dT%H:%M:%S%.f%z",
        ] {
            if let Ok(dt) = DateTime::parse_from_str(text, fmt) {
                return Some(Timestamp(dt.timestamp_millis()));
            }
        }
        let naive = text.strip_suffix('Z').unwrap_or(text);
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(naive, fmt) {
                return Some(Timestamp(dt.and_utc().timestamp_millis()));
            }
        }
        NaiveDate::parse_from_str(naive, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|dt| Timestamp(dt.and_utc().timestamp_millis()))
    }

    /// Converts a float number of epoch milliseconds, as Freqtrade writes
    /// `open_timestamp`. Non-finite values have no time: `None`.
    pub fn from_float_millis(ms: f64) -> Option<Self> {
        (ms.is_finite() && ms.abs() < 9.0e18).then(|| Timestamp(ms.round() as i64))
    }

    /// RFC 3339 text in UTC with millisecond precision.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .map(|dt| dt.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_millis())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T_0715: i64 = 1_515_568_500_000; // 2018-01-10T07:15:00Z

    #[test]
    fn parses_the_forms_of_the_spec() {
        for text in [
            "2018-01-10T07:15:00Z",
            "2018-01-10 07:15:00+00:00",
            "2018-01-10T07:15:00+00:00",
            "2018-01-10T08:15:00+01:00",
            "2018-01-10T07:15:00",
            "2018-01-10 07:15:00",
            "2018-01-10T07:15:00.000Z",
            "2018-01-10 07:15",
        ] {
            assert_eq!(Timestamp::parse(text), Some(Timestamp(T_0715)), "{text}");
        }
        assert_eq!(Timestamp::parse("2018-01-10"), Some(Timestamp(1_515_542_400_000)));
        assert_eq!(Timestamp::parse("yesterday"), None);
        assert_eq!(Timestamp::parse(""), None);
    }

    #[test]
    fn float_millis_round_and_refuse_non_finite() {
        assert_eq!(Timestamp::from_float_millis(1515568500000.0), Some(Timestamp(T_0715)));
        assert_eq!(Timestamp::from_float_millis(f64::NAN), None);
        assert_eq!(Timestamp::from_float_millis(f64::INFINITY), None);
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        assert_eq!(Timestamp(T_0715).to_rfc3339(), "2018-01-10T07:15:00.000Z");
    }
}
