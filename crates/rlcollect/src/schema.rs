//! Column types and the rule by which a stream's schema only grows (SPEC §2):
//! null takes any type, int widens to float, and any other disagreement is
//! stored as text.

use arrow_schema::{DataType, TimeUnit};
use serde::{Deserialize, Serialize};

/// The type of a stored column, as listed in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Only nulls seen so far.
    Null,
    /// Boolean.
    Bool,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 64-bit integer (`_seq`).
    UInt64,
    /// 64-bit float (NaN and ±inf kept).
    Float64,
    /// UTF-8 text (also JSON text of nested or conflicting values).
    String,
    /// Timestamp, milliseconds, UTC.
    Timestamp,
}

impl ColumnType {
    /// The Arrow type of the column.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Null => DataType::Null,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::UInt64 => DataType::UInt64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        }
    }

    /// The type an extra column needs to hold values of both `self` and
    /// `incoming` (SPEC §2): null takes any type, int widens to float, and any
    /// other disagreement is stored as text.
    pub fn merge(self, incoming: ColumnType) -> ColumnType {
        use ColumnType::*;
        match (self, incoming) {
            (a, b) if a == b => a,
            (Null, b) => b,
            (a, Null) => a,
            (Int64, Float64) | (Float64, Int64) => Float64,
            _ => String,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnType::*;

    #[test]
    fn merge_follows_the_spec_lattice() {
        assert_eq!(Null.merge(Int64), Int64);
        assert_eq!(Int64.merge(Null), Int64);
        assert_eq!(Int64.merge(Float64), Float64);
        assert_eq!(Float64.merge(Int64), Float64);
        assert_eq!(Int64.merge(String), String);
        assert_eq!(Bool.merge(Int64), String);
        assert_eq!(Timestamp.merge(Float64), String);
        assert_eq!(String.merge(Bool), String);
        assert_eq!(Bool.merge(Bool), Bool);
    }
}
