//! A stream's columns as a Delta table schema, and how a run's schema joins
//! the table's (Delta schema evolution under our widening rules, SPEC §2).
//!
//! | rlcollect | Delta       | data file (Arrow)        |
//! |-----------|-------------|--------------------------|
//! | bool      | `boolean`   | Boolean                  |
//! | int64     | `long`      | Int64                    |
//! | uint64    | `long`      | Int64 (`_seq` < 2^63)    |
//! | float64   | `double`    | Float64                  |
//! | string    | `string`    | Utf8                     |
//! | timestamp | `timestamp` | Timestamp(µs, UTC)       |
//! | null      | (left out)  | (left out: reads as null)|
//!
//! A column new to the table is added (a `metaData` action, as Delta's
//! `mergeSchema`). A run whose column is narrower than the table's is cast
//! up when its files are written (int into a `double` column, anything into
//! a `string` one). A run that would widen an existing column (a `double`
//! into a `long` column) is refused: Delta's files keep their physical type,
//! and widening them needs the `typeWidening` table feature that common
//! readers lack.

use crate::PublishError;
use arrow_schema::{DataType, TimeUnit};
use rlcollect::{ColumnType, SchemaField};
use serde::{Deserialize, Serialize};

/// The partition column: one table holds every run.
pub(crate) const PARTITION: &str = "run_id";

/// One field of a Delta schema (`schemaString`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeltaField {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) ty: String,
    pub(crate) nullable: bool,
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
}

/// A Delta struct schema, as it is stored (JSON text) in `metaData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeltaSchema {
    #[serde(rename = "type")]
    pub(crate) ty: String,
    pub(crate) fields: Vec<DeltaField>,
}

impl DeltaSchema {
    pub(crate) fn parse(text: &str) -> Result<DeltaSchema, PublishError> {
        serde_json::from_str(text).map_err(|e| PublishError::Table(format!("unreadable schemaString: {e}")))
    }

    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a schema serializes")
    }

    fn get(&self, name: &str) -> Option<&DeltaField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

fn field(name: &str, ty: &str) -> DeltaField {
    DeltaField {
        name: name.to_owned(),
        ty: ty.to_owned(),
        nullable: true,
        metadata: serde_json::Map::new(),
    }
}

/// The Delta type of one of our column types (`None`: only nulls seen).
fn delta_type(ty: ColumnType) -> Option<&'static str> {
    Some(match ty {
        ColumnType::Null => return None,
        ColumnType::Bool => "boolean",
        ColumnType::Int64 | ColumnType::UInt64 => "long",
        ColumnType::Float64 => "double",
        ColumnType::String => "string",
        ColumnType::Timestamp => "timestamp",
    })
}

/// Our column type of a Delta type this crate writes.
fn column_type(delta: &str) -> Option<ColumnType> {
    Some(match delta {
        "boolean" => ColumnType::Bool,
        "long" => ColumnType::Int64,
        "double" => ColumnType::Float64,
        "string" => ColumnType::String,
        "timestamp" => ColumnType::Timestamp,
        _ => return None,
    })
}

/// The Arrow type a data file holds for a Delta type.
pub(crate) fn arrow_type(delta: &str) -> DataType {
    match delta {
        "boolean" => DataType::Boolean,
        "long" => DataType::Int64,
        "double" => DataType::Float64,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => DataType::Utf8,
    }
}

/// The table's schema after adding a run with `columns`: the table's fields
/// in their order, then the run's new ones. `table` is `None` for a new table.
pub(crate) fn evolve(table: Option<&DeltaSchema>, columns: &[SchemaField]) -> Result<DeltaSchema, PublishError> {
    let mut schema = table.cloned().unwrap_or_else(|| DeltaSchema {
        ty: "struct".into(),
        fields: vec![field(PARTITION, "string")],
    });
    for column in columns {
        if column.name == PARTITION {
            return Err(PublishError::Table(format!(
                "the stream has a column named {PARTITION}, which is the table's partition column"
            )));
        }
        let Some(ty) = delta_type(column.ty) else { continue };
        match schema.get(&column.name) {
            None => schema.fields.push(field(&column.name, ty)),
            Some(existing) if existing.ty == ty => {}
            Some(existing) => {
                let known = column_type(&existing.ty);
                let widened = known.map(|t| t.merge(column.ty));
                if widened.is_none() || widened != known {
                    return Err(PublishError::Table(format!(
                        "column {} is {} in the table but {} in this run: a Delta table cannot \
                         widen a column without rewriting its files (publish to another table)",
                        column.name, existing.ty, ty
                    )));
                }
            }
        }
    }
    Ok(schema)
}

/// The Arrow type each of a run's columns is written as in `schema`
/// (`None`: the column is left out of the data file).
pub(crate) fn file_type(schema: &DeltaSchema, name: &str) -> Option<DataType> {
    schema.get(name).map(|f| arrow_type(&f.ty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: ColumnType) -> SchemaField {
        SchemaField { name: name.into(), ty }
    }

    #[test]
    fn a_new_table_has_the_partition_column_and_no_null_columns() {
        let s = evolve(
            None,
            &[col("_seq", ColumnType::UInt64), col("orders", ColumnType::Null)],
        )
        .unwrap();
        let names: Vec<_> = s.fields.iter().map(|f| (f.name.as_str(), f.ty.as_str())).collect();
        assert_eq!(names, [("run_id", "string"), ("_seq", "long")]);
    }

    #[test]
    fn new_columns_join_narrower_ones_are_cast_wider_ones_are_refused() {
        let table = evolve(None, &[col("x", ColumnType::Float64), col("s", ColumnType::String)]).unwrap();
        let s = evolve(
            Some(&table),
            &[
                col("x", ColumnType::Int64),
                col("s", ColumnType::Bool),
                col("n", ColumnType::Bool),
            ],
        )
        .unwrap();
        assert_eq!(s.fields.len(), 4);
        assert_eq!(file_type(&s, "x"), Some(DataType::Float64));
        assert_eq!(file_type(&s, "s"), Some(DataType::Utf8));
        let narrow = evolve(None, &[col("x", ColumnType::Int64)]).unwrap();
        let err = evolve(Some(&narrow), &[col("x", ColumnType::Float64)]).unwrap_err();
        assert!(
            err.to_string().contains("column x is long in the table but double"),
            "{err}"
        );
        assert!(evolve(None, &[col("run_id", ColumnType::String)]).is_err());
    }
}
