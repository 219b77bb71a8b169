//! The Arrow builders that buffer one column of a part, row by row.

use crate::schema::ColumnType;
use crate::timestamp::Timestamp;
use crate::value::{Value, ValueRef};
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
    UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, Float64Array, NullArray, StringArray};
use std::sync::Arc;

/// One column being filled, row by row.
pub(crate) enum Column {
    Null(usize),
    Bool(BooleanBuilder),
    Int64(Int64Builder),
    UInt64(UInt64Builder),
    Float64(Float64Builder),
    String(StringBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

impl Column {
    pub(crate) fn new(ty: ColumnType) -> Column {
        match ty {
            ColumnType::Null => Column::Null(0),
            ColumnType::Bool => Column::Bool(BooleanBuilder::new()),
            ColumnType::Int64 => Column::Int64(Int64Builder::new()),
            ColumnType::UInt64 => Column::UInt64(UInt64Builder::new()),
            ColumnType::Float64 => Column::Float64(Float64Builder::new()),
            ColumnType::String => Column::String(StringBuilder::new()),
            ColumnType::Timestamp => Column::Timestamp(TimestampMillisecondBuilder::new().with_timezone("UTC")),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Column::Null(n) => *n,
            Column::Bool(b) => b.len(),
            Column::Int64(b) => b.len(),
            Column::UInt64(b) => b.len(),
            Column::Float64(b) => b.len(),
            Column::String(b) => b.len(),
            Column::Timestamp(b) => b.len(),
        }
    }

    pub(crate) fn push_null(&mut self) {
        match self {
            Column::Null(n) => *n += 1,
            Column::Bool(b) => b.append_null(),
            Column::Int64(b) => b.append_null(),
            Column::UInt64(b) => b.append_null(),
            Column::Float64(b) => b.append_null(),
            Column::String(b) => b.append_null(),
            Column::Timestamp(b) => b.append_null(),
        }
    }

    /// Appends `value`, converted to this column's type. The caller chose the
    /// type with [`ColumnType::merge`], so every conversion here is lossless or
    /// to JSON text.
    pub(crate) fn push_value(&mut self, value: ValueRef<'_>) {
        match (self, value) {
            (col, ValueRef::Null) => col.push_null(),
            (Column::Bool(b), ValueRef::Bool(v)) => b.append_value(v),
            (Column::Int64(b), ValueRef::Int(v)) => b.append_value(v),
            (Column::Float64(b), ValueRef::Float(v)) => b.append_value(v),
            (Column::Float64(b), ValueRef::Int(v)) => b.append_value(v as f64),
            (Column::Timestamp(b), ValueRef::Timestamp(v)) => b.append_value(v.0),
            (Column::String(b), ValueRef::Str(v)) => b.append_value(v),
            (Column::String(b), other) => b.append_value(other.to_json_text()),
            (col, _) => {
                debug_assert!(false, "value does not fit its column; schema merge is wrong");
                col.push_null()
            }
        }
    }

    pub(crate) fn push_str(&mut self, v: Option<&str>) {
        match (self, v) {
            (Column::String(b), Some(v)) => b.append_value(v),
            (col, _) => col.push_null(),
        }
    }

    pub(crate) fn push_i64(&mut self, v: Option<i64>) {
        match (self, v) {
            (Column::Int64(b), Some(v)) => b.append_value(v),
            (col, _) => col.push_null(),
        }
    }

    pub(crate) fn push_f64(&mut self, v: Option<f64>) {
        match (self, v) {
            (Column::Float64(b), Some(v)) => b.append_value(v),
            (col, _) => col.push_null(),
        }
    }

    pub(crate) fn push_bool(&mut self, v: Option<bool>) {
        match (self, v) {
            (Column::Bool(b), Some(v)) => b.append_value(v),
            (col, _) => col.push_null(),
        }
    }

    pub(crate) fn push_ts(&mut self, v: Option<Timestamp>) {
        match (self, v) {
            (Column::Timestamp(b), Some(v)) => b.append_value(v.0),
            (col, _) => col.push_null(),
        }
    }

    /// Takes the buffered values as an Arrow array and leaves the column empty.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Null(n) => {
                let a = Arc::new(NullArray::new(*n));
                *n = 0;
                a
            }
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int64(b) => Arc::new(b.finish()),
            Column::UInt64(b) => Arc::new(b.finish()),
            Column::Float64(b) => Arc::new(b.finish()),
            Column::String(b) => Arc::new(b.finish()),
            Column::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// `array`, of type `from`, as a column of the wider type `to` (`from.merge(to)
/// == to`): nulls take any type, integers become floats, and anything else
/// becomes text as [`Column::push_value`] writes it (strings as they are,
/// other values as their JSON text).
pub(crate) fn widen(array: &ArrayRef, from: ColumnType, to: ColumnType) -> ArrayRef {
    if from == to {
        return array.clone();
    }
    match (from, to) {
        (ColumnType::Null, _) => arrow_array::new_null_array(&to.arrow(), array.len()),
        (ColumnType::Int64, ColumnType::Float64) => {
            let ints = array.as_primitive::<Int64Type>();
            Arc::new(ints.iter().map(|v| v.map(|i| i as f64)).collect::<Float64Array>())
        }
        (_, ColumnType::String) => Arc::new(as_text(array, from)),
        _ => {
            debug_assert!(false, "{from:?} does not widen to {to:?}");
            arrow_array::new_null_array(&to.arrow(), array.len())
        }
    }
}

/// Each value's JSON text, as a conflicting value is stored (SPEC §7).
fn as_text(array: &ArrayRef, from: ColumnType) -> StringArray {
    (0..array.len())
        .map(|i| {
            if array.is_null(i) {
                return None;
            }
            let value = match from {
                ColumnType::Bool => Value::Bool(array.as_boolean().value(i)),
                ColumnType::Int64 => Value::Int(array.as_primitive::<Int64Type>().value(i)),
                ColumnType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(i)),
                ColumnType::Timestamp => {
                    Value::Timestamp(Timestamp(array.as_primitive::<TimestampMillisecondType>().value(i)))
                }
                ColumnType::String => return Some(array.as_string::<i32>().value(i).to_owned()),
                ColumnType::Null | ColumnType::UInt64 => return None,
            };
            Some(value.to_json_text())
        })
        .collect()
}
