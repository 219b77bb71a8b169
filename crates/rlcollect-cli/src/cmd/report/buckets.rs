//! Adaptive fixed-width buckets for histograms and time series, built in one
//! pass over data of unknown range and order, in bounded memory.
//!
//! Bucket `k` holds the values in `[k·w, (k+1)·w)` with `w = 2^log2`. The
//! buckets are contiguous keys `base..base+len`; when a value would make the
//! span longer than `max`, the width doubles and each pair of neighbours
//! merges (`k → floor(k/2)`). Because widths are powers of two and keys
//! floor exactly, merging loses nothing: a histogram made fine then merged
//! equals one made coarse from the start, and two histograms of different
//! widths can be brought to the same width and added (several runs, several
//! streams).

/// What a bucket holds: a count, a sum and count, counts per category, ...
pub trait Merge: Default {
    /// Adds `other` (the neighbour merged into this bucket) to `self`.
    fn merge(&mut self, other: Self);
}

impl Merge for u64 {
    fn merge(&mut self, other: Self) {
        *self += other;
    }
}

/// Counts per category slot (action, stream, source, ...).
impl Merge for Vec<u64> {
    fn merge(&mut self, other: Self) {
        if self.len() < other.len() {
            self.resize(other.len(), 0);
        }
        for (a, b) in self.iter_mut().zip(other) {
            *a += b;
        }
    }
}

/// The sum and count of the values in a bucket (a mean).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct MeanAcc {
    pub sum: f64,
    pub n: u64,
}

impl MeanAcc {
    pub fn add(&mut self, x: f64) {
        self.sum += x;
        self.n += 1;
    }
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

impl Merge for MeanAcc {
    fn merge(&mut self, other: Self) {
        self.sum += other.sum;
        self.n += other.n;
    }
}

/// Contiguous power-of-two-wide buckets over a number line.
#[derive(Debug, Clone)]
pub struct Buckets<A> {
    log2: i32,
    /// `2^-log2`, kept so the per-value key costs a multiply, not a `powi`.
    scale: f64,
    max: usize,
    base: i64,
    cells: Vec<A>,
}

/// Keys stay well inside i64, so `k - base` and `k / 2` never overflow.
const KEY_LIMIT: f64 = 4.611_686_018_427_388e18; // 2^62

impl<A: Merge> Buckets<A> {
    /// Buckets starting `2^log2` wide, at most `max` (≥ 2) of them.
    pub fn new(log2: i32, max: usize) -> Self {
        Buckets {
            log2,
            scale: 2f64.powi(-log2),
            max: max.max(2),
            base: 0,
            cells: Vec::new(),
        }
    }

    /// The bucket width.
    pub fn width(&self) -> f64 {
        2f64.powi(self.log2)
    }

    /// log2 of the bucket width.
    pub fn log2(&self) -> i32 {
        self.log2
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    fn key(&self, x: f64) -> Option<i64> {
        // Scaling by a power of two is exact, so the floor is the true bucket.
        let k = x * self.scale;
        if k.abs() >= KEY_LIMIT {
            return None;
        }
        // floor() by truncation: `f64::floor` is a libm call on baseline x86-64.
        let t = k as i64;
        Some(if (t as f64) > k { t - 1 } else { t })
    }

    /// The bucket that holds `x`, for the caller to update; `None` for NaN
    /// and infinities, which have no place on the line.
    pub fn at(&mut self, x: f64) -> Option<&mut A> {
        if !x.is_finite() {
            return None;
        }
        loop {
            let Some(k) = self.key(x) else {
                self.collapse();
                continue;
            };
            if self.cells.is_empty() {
                self.base = k;
                self.cells.push(A::default());
                return self.cells.first_mut();
            }
            let end = self.base + self.cells.len() as i64; // exclusive
            let (lo, hi) = (self.base.min(k), end.max(k + 1));
            if hi - lo > self.max as i64 {
                self.collapse();
                continue;
            }
            if k < self.base {
                let mut front: Vec<A> = (k..self.base).map(|_| A::default()).collect();
                front.append(&mut self.cells);
                self.cells = front;
                self.base = k;
            } else if k >= end {
                self.cells.resize_with((k - self.base + 1) as usize, A::default);
            }
            return self.cells.get_mut((k - self.base) as usize);
        }
    }

    /// Doubles the width, merging each pair of neighbours.
    fn collapse(&mut self) {
        self.log2 += 1;
        self.scale = 2f64.powi(-self.log2);
        if self.cells.is_empty() {
            return;
        }
        let base = self.base.div_euclid(2);
        let mut cells: Vec<A> = Vec::with_capacity(self.cells.len() / 2 + 1);
        for (i, a) in std::mem::take(&mut self.cells).into_iter().enumerate() {
            let k = (self.base + i as i64).div_euclid(2);
            let at = (k - base) as usize;
            if at == cells.len() {
                cells.push(A::default());
            }
            cells[at].merge(a);
        }
        self.base = base;
        self.cells = cells;
    }

    /// Widens the buckets to `2^log2` (no-op when already that wide or wider).
    pub fn coarsen_to(&mut self, log2: i32) {
        while self.log2 < log2 {
            self.collapse();
        }
    }

    /// Adds `other`'s buckets into these, at the wider of the two widths.
    pub fn absorb(&mut self, mut other: Buckets<A>) {
        let log2 = self.log2.max(other.log2);
        self.coarsen_to(log2);
        other.coarsen_to(log2);
        let w = self.width();
        for (left, a) in other.into_cells() {
            // The left edge of an equal-width bucket lands in the same key.
            if let Some(cell) = self.at(left + w / 2.0) {
                cell.merge(a);
            }
        }
    }

    /// (left edge, value) of every bucket from the first to the last, empty
    /// ones included (as `A::default()`).
    pub fn into_cells(self) -> impl Iterator<Item = (f64, A)> {
        let (base, w) = (self.base, self.width());
        self.cells
            .into_iter()
            .enumerate()
            .map(move |(i, a)| ((base + i as i64) as f64 * w, a))
    }

    /// (left edge, value) of every bucket, by reference.
    pub fn cells(&self) -> impl Iterator<Item = (f64, &A)> {
        let (base, w) = (self.base, self.width());
        self.cells
            .iter()
            .enumerate()
            .map(move |(i, a)| ((base + i as i64) as f64 * w, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(b: &Buckets<u64>) -> Vec<(f64, u64)> {
        b.cells().map(|(x, n)| (x, *n)).collect()
    }

    #[test]
    fn values_land_in_their_power_of_two_bucket() {
        let mut b = Buckets::<u64>::new(0, 100);
        for x in [0.5, 1.0, 1.5, 3.0, -0.5] {
            *b.at(x).unwrap() += 1;
        }
        assert_eq!(counts(&b), [(-1.0, 1), (0.0, 1), (1.0, 2), (2.0, 0), (3.0, 1)]);
        assert!(b.at(f64::NAN).is_none() && b.at(f64::INFINITY).is_none());
    }

    #[test]
    fn the_span_stays_bounded_and_merging_is_exact() {
        let mut fine = Buckets::<u64>::new(-10, 16);
        let mut coarse = Buckets::<u64>::new(6, 16);
        let xs: Vec<f64> = (0..10_000).map(|i| ((i * 7919) % 1000) as f64 * 0.37).collect();
        for &x in &xs {
            *fine.at(x).unwrap() += 1;
            *coarse.at(x).unwrap() += 1;
        }
        assert!(fine.cells().count() <= 16);
        let log2 = fine.log2().max(coarse.log2());
        fine.coarsen_to(log2);
        coarse.coarsen_to(log2);
        assert_eq!(counts(&fine), counts(&coarse));
        assert_eq!(fine.cells().map(|(_, n)| *n).sum::<u64>(), 10_000);
    }

    #[test]
    fn absorb_adds_at_the_wider_width() {
        let mut a = Buckets::<u64>::new(0, 64);
        let mut b = Buckets::<u64>::new(2, 64);
        for x in 0..8 {
            *a.at(x as f64).unwrap() += 1;
            *b.at(x as f64 + 8.0).unwrap() += 1;
        }
        a.absorb(b);
        assert_eq!(a.log2(), 2);
        assert_eq!(counts(&a), [(0.0, 4), (4.0, 4), (8.0, 4), (12.0, 4)]);
    }

    #[test]
    fn huge_values_widen_instead_of_overflowing() {
        let mut b = Buckets::<u64>::new(-20, 8);
        *b.at(1e300).unwrap() += 1;
        *b.at(-1e300).unwrap() += 1;
        assert_eq!(b.cells().map(|(_, n)| *n).sum::<u64>(), 2);
    }
}
