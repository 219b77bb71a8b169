//! Small streaming statistics: an exact sum, moments, a rolling mean, and a
//! bounded set of category slots.

/// The library's compensated sum: the report adds the same values in the
/// same (`_seq`) order, so its totals equal `summary.json` to the last bit.
pub use rlcollect::CompensatedSum as Sum;

/// Count, mean, spread and range of a numeric column (Welford's update, so
/// no catastrophic cancellation over millions of rows).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub n: u64,
    mean: f64,
    m2: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Moments {
    /// Adds a finite value (callers skip NaN and infinities).
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        self.min = Some(self.min.map_or(x, |m| m.min(x)));
        self.max = Some(self.max.map_or(x, |m| m.max(x)));
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// Sample standard deviation.
    pub fn std(&self) -> Option<f64> {
        (self.n > 1).then(|| (self.m2 / (self.n - 1) as f64).sqrt())
    }
}

/// The mean of the last `window` values.
#[derive(Debug)]
pub struct Rolling {
    window: Vec<f64>,
    at: usize,
    full: bool,
    sum: f64,
    /// Values since the sum was last recomputed from the window: a running
    /// sum drifts over millions of updates.
    since_exact: usize,
}

impl Rolling {
    pub fn new(window: usize) -> Self {
        Rolling {
            window: vec![0.0; window.max(1)],
            at: 0,
            full: false,
            sum: 0.0,
            since_exact: 0,
        }
    }

    /// Adds `x` and returns the mean of the window so far.
    pub fn push(&mut self, x: f64) -> f64 {
        let w = self.window.len();
        self.sum += x - self.window[self.at];
        self.window[self.at] = x;
        self.at = (self.at + 1) % w;
        self.full |= self.at == 0;
        self.since_exact += 1;
        if self.since_exact >= 4 * w {
            self.sum = self.window.iter().sum();
            self.since_exact = 0;
        }
        let n = if self.full { w } else { self.at };
        self.sum / n as f64
    }
}

/// Up to `max` named categories in order of first appearance; the rest share
/// one "other" slot. Lookups of the same name as last time are free, which
/// is the common case in sorted columns.
#[derive(Debug, Clone)]
pub struct Slots {
    names: Vec<String>,
    max: usize,
    last: usize,
    pub other: bool,
}

pub const OTHER: &str = "(other)";

impl Slots {
    pub fn new(max: usize) -> Self {
        Slots {
            names: Vec::new(),
            max,
            last: 0,
            other: false,
        }
    }

    /// The slot of `name`; names past `max` share slot `max` ("other").
    pub fn slot(&mut self, name: &str) -> usize {
        if self.names.get(self.last).is_some_and(|n| n == name) {
            return self.last;
        }
        let i = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None if self.names.len() < self.max => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
            None => {
                self.other = true;
                self.max
            }
        };
        self.last = i;
        i
    }

    /// The names of the slots in use, "other" last when used.
    pub fn names(&self) -> Vec<String> {
        let mut v = self.names.clone();
        if self.other {
            v.push(OTHER.to_owned());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_rolling_mean() {
        let mut m = Moments::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            m.add(x);
        }
        assert_eq!((m.n, m.mean(), m.min, m.max), (8, Some(5.0), Some(2.0), Some(9.0)));
        assert!((m.std().unwrap() - 2.138_089_935_299_395).abs() < 1e-12);
        let mut r = Rolling::new(3);
        let got: Vec<f64> = [3.0, 6.0, 9.0, 12.0].iter().map(|&x| r.push(x)).collect();
        assert_eq!(got, [3.0, 4.5, 6.0, 9.0]);
    }

    #[test]
    fn slots_keep_order_and_overflow_to_other() {
        let mut s = Slots::new(2);
        assert_eq!([s.slot("b"), s.slot("a"), s.slot("b"), s.slot("c")], [0, 1, 0, 2]);
        assert_eq!(s.names(), ["b", "a", OTHER]);
    }
}
