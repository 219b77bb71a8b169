//! What the page draws: charts and tables as plain data, serialised into the
//! page as compact JSON that `assets/report/report.js` turns into uPlot
//! charts and HTML bars. Each chart belongs to a panel; the charts of
//! several runs with the same id are drawn as one, a series per run.

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

/// How a chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Lines over a numeric or time x axis.
    Line,
    /// A line that holds its value until the next point (counts over time).
    Step,
    /// Bars over bins `[x, x + w)`.
    Hist,
    /// Horizontal bars per category (pairs, reasons), drawn as HTML.
    Hbars,
    /// Stacked shares over x (one series per category), per run.
    Stacked,
}

/// How values on an axis (and in legends) are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fmt {
    /// A number with its significant digits.
    #[default]
    Num,
    /// A whole count with thousands separators.
    Int,
    /// A share in [0, 1], printed as a percentage.
    Pct,
    /// Epoch seconds, printed as a UTC date and time.
    Time,
}

/// One axis: its label (with the unit) and its number format.
#[derive(Debug, Clone, Serialize)]
pub struct Axis {
    pub label: String,
    pub fmt: Fmt,
}

impl Axis {
    pub fn new(label: impl Into<String>, fmt: Fmt) -> Axis {
        Axis {
            label: label.into(),
            fmt,
        }
    }
    /// A UTC time axis (values in epoch seconds).
    pub fn time(label: impl Into<String>) -> Axis {
        Axis::new(label, Fmt::Time)
    }
}

/// How a series is styled relative to its run's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The series itself.
    #[default]
    Main,
    /// Raw values under a smoother line: thin and faint.
    Faint,
    /// A summary line (rolling mean): thick.
    Mean,
}

/// One series of a chart.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Series {
    /// Index of the run it belongs to.
    pub run: usize,
    pub name: String,
    #[serde(skip_serializing_if = "is_main")]
    pub role: Role,
    /// x values (line, step, stacked: the points; hist: bin left edges).
    #[serde(serialize_with = "exact", skip_serializing_if = "Vec::is_empty")]
    pub x: Vec<f64>,
    /// Categories (hbars).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cats: Vec<String>,
    /// y values, rounded to 6 significant digits (drawing needs no more).
    #[serde(serialize_with = "rounded")]
    pub y: Vec<f64>,
    /// A note per value shown beside a bar (hbars), e.g. a count.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub text: Vec<String>,
    /// Bin width (hist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<f64>,
}

impl Series {
    /// A series of (x, y) points.
    pub fn xy(run: usize, name: impl Into<String>, points: &[(f64, f64)]) -> Series {
        Series {
            run,
            name: name.into(),
            x: points.iter().map(|p| p.0).collect(),
            y: points.iter().map(|p| p.1).collect(),
            ..Series::default()
        }
    }

    pub fn role(mut self, role: Role) -> Series {
        self.role = role;
        self
    }

    /// The number of values (points, bins or categories).
    pub fn len(&self) -> usize {
        self.y.len()
    }
}

fn is_main(r: &Role) -> bool {
    *r == Role::Main
}

/// A shaded x range (the max-drawdown window).
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    pub run: usize,
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// One chart.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// Stable across runs, e.g. `trades.equity`.
    pub id: String,
    /// The panel it belongs to (`trades`, `rl`, ..., `user:STREAM`, `health`).
    pub panel: String,
    pub title: String,
    pub kind: Kind,
    pub x: Axis,
    pub y: Axis,
    /// Draw one chart per run (stacked shares, health) instead of overlaying.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_run: bool,
    pub series: Vec<Series>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<Mark>,
    /// A line of explanation under the title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Chart {
    pub fn new(panel: &str, id: &str, title: impl Into<String>, kind: Kind, x: Axis, y: Axis) -> Chart {
        Chart {
            id: format!("{panel}.{id}"),
            panel: panel.to_owned(),
            title: title.into(),
            kind,
            x,
            y,
            per_run: false,
            series: Vec::new(),
            marks: Vec::new(),
            note: None,
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Chart {
        self.note = Some(note.into());
        self
    }

    pub fn per_run(mut self) -> Chart {
        self.per_run = true;
        self
    }

    /// Adds a series unless it is empty: the report never draws an empty chart.
    pub fn with(mut self, s: Series) -> Chart {
        if s.len() > 0 {
            self.series.push(s);
        }
        self
    }

    /// True when the chart has something to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| s.y.iter().any(|v| v.is_finite()))
    }
}

/// A table (rejected lines, unreadable files, column summaries).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub id: String,
    pub panel: String,
    pub title: String,
    pub columns: Vec<String>,
    /// Cells as text, already formatted; the first column names the run
    /// when the report has several.
    pub rows: Vec<Vec<String>>,
}

/// Counts per bucket as points of a step line: each bucket's left edge, then
/// one closing point at the last bucket's right edge so it is drawn as wide
/// as the others. `scale` converts the bucket axis (1e-3: ms to seconds).
pub fn bucket_steps(b: super::buckets::Buckets<u64>, scale: f64) -> Vec<(f64, f64)> {
    let w = b.width();
    let mut points: Vec<(f64, f64)> = b.into_cells().map(|(x, n)| (x * scale, n as f64)).collect();
    if let Some(&(x, y)) = points.last() {
        points.push((x + w * scale, y));
    }
    points
}

/// Epoch milliseconds as the epoch seconds uPlot's time axes use.
pub fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Numbers in full (times, bin edges): the shortest text that reads back exactly.
fn exact<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for x in v {
        seq.serialize_element(&Compact(finite(*x)))?;
    }
    seq.end()
}

/// Numbers to 6 significant digits: about half the bytes of full precision.
fn rounded<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for x in v {
        seq.serialize_element(&Compact(finite(*x).map(round6)))?;
    }
    seq.end()
}

/// A number as JSON: whole numbers without `.0`, null for NaN and infinities.
struct Compact(Option<f64>);

impl Serialize for Compact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(x) if x.fract() == 0.0 && x.abs() < 9e15 => s.serialize_i64(x as i64),
            Some(x) => s.serialize_f64(x),
        }
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `x` rounded to 6 significant digits. Parsing the rounded decimal gives the
/// double nearest to it, whose shortest form is that decimal.
pub fn round6(x: f64) -> f64 {
    if x == 0.0 || x.fract() == 0.0 && x.abs() < 1e6 {
        return x;
    }
    format!("{x:.5e}").parse().unwrap_or(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_serialise_compactly() {
        let s = Series::xy(0, "a", &[(1_700_000_000.5, 0.123_456_789), (2.0, f64::NAN)]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"run":0,"name":"a","x":[1700000000.5,2],"y":[0.123457,null]}"#);
        assert_eq!(round6(123_456_789.0), 123_457_000.0);
        assert_eq!(round6(-0.000_012_345_678), -0.000_012_345_7);
        assert_eq!(round6(42.0), 42.0);
    }
}
