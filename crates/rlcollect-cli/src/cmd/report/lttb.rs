//! Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013), streamed:
//! a series of known length is reduced to about `threshold` points that keep
//! its visual shape (peaks and troughs survive, unlike with averaging), while
//! holding only two buckets of points in memory (`2·n/threshold`), never the
//! whole series.
//!
//! The buckets are exactly those of the classic algorithm for a series of
//! `expected` points. A series that turns out shorter (rows without a value)
//! just ends early; its last point is always kept.

/// A streaming LTTB downsampler. Feed points in x order with [`Lttb::push`].
#[derive(Debug)]
pub struct Lttb {
    /// Bucket width in points; `None`: the series is short, keep every point.
    every: Option<f64>,
    threshold: usize,
    seen: usize,
    /// The bucket being chosen from, and the one after it (its average is
    /// the third corner of the triangles).
    cur: Vec<(f64, f64)>,
    next: Vec<(f64, f64)>,
    /// Index of the first point after `next`'s bucket.
    next_end: usize,
    bucket: usize,
    out: Vec<(f64, f64)>,
}

impl Lttb {
    /// A downsampler for a series of `expected` points to `threshold` points.
    pub fn new(expected: u64, threshold: usize) -> Self {
        let threshold = threshold.max(3);
        let every = (expected as usize > threshold).then(|| (expected as f64 - 2.0) / (threshold as f64 - 2.0));
        let mut l = Lttb {
            every,
            threshold,
            seen: 0,
            cur: Vec::new(),
            next: Vec::new(),
            next_end: 1,
            bucket: 0,
            out: Vec::new(),
        };
        l.next_end = l.bucket_end(0);
        l
    }

    /// One past the last index of bucket `i` (indices count from the first point).
    fn bucket_end(&self, i: usize) -> usize {
        self.every
            .map_or(usize::MAX, |e| ((i + 1) as f64 * e).floor() as usize + 1)
    }

    /// Adds the next point of the series.
    pub fn push(&mut self, x: f64, y: f64) {
        let index = self.seen;
        self.seen += 1;
        if index == 0 || self.every.is_none() {
            self.out.push((x, y));
            return;
        }
        if index >= self.next_end {
            // The bucket filling in `next` is complete: choose from the one
            // before it, which now has its neighbour's average.
            if !self.cur.is_empty() {
                let avg = mean(&self.next);
                self.choose(avg);
            }
            self.cur = std::mem::take(&mut self.next);
            self.bucket += 1;
            self.next_end = self.bucket_end(self.bucket);
        }
        self.next.push((x, y));
    }

    /// Picks from `cur` the point making the largest triangle with the last
    /// kept point and `avg`.
    fn choose(&mut self, avg: (f64, f64)) {
        let a = *self.out.last().expect("the first point is always kept");
        let best = self
            .cur
            .iter()
            .copied()
            .max_by(|p, q| area(a, *p, avg).total_cmp(&area(a, *q, avg)));
        if let Some(p) = best {
            self.out.push(p);
        }
        self.cur.clear();
    }

    /// The downsampled series: the first and last points and one per bucket.
    pub fn finish(mut self) -> Vec<(f64, f64)> {
        if self.every.is_none() {
            return self.out;
        }
        let last = self.next.pop().or_else(|| self.cur.pop());
        let Some(last) = last else {
            return self.out; // one point or none
        };
        if !self.cur.is_empty() {
            let avg = if self.next.is_empty() { last } else { mean(&self.next) };
            self.choose(avg);
        }
        if !self.next.is_empty() {
            self.cur = std::mem::take(&mut self.next);
            self.choose(last);
        }
        self.out.push(last);
        debug_assert!(self.out.len() <= self.threshold + 1);
        self.out
    }
}

fn mean(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    (sx / n, sy / n)
}

/// Twice the area of the triangle a, b, c.
fn area(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
    ((a.0 - c.0) * (b.1 - a.1) - (a.0 - b.0) * (c.1 - a.1)).abs()
}

/// Downsamples a series held in memory (the same algorithm).
pub fn downsample(points: impl ExactSizeIterator<Item = (f64, f64)>, threshold: usize) -> Vec<(f64, f64)> {
    let mut l = Lttb::new(points.len() as u64, threshold);
    for (x, y) in points {
        l.push(x, y);
    }
    l.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic, whole-series LTTB, as published, for comparison.
    fn reference(data: &[(f64, f64)], threshold: usize) -> Vec<(f64, f64)> {
        let n = data.len();
        if threshold >= n {
            return data.to_vec();
        }
        let every = (n - 2) as f64 / (threshold - 2) as f64;
        let mut out = vec![data[0]];
        let mut a = 0;
        for i in 0..threshold - 2 {
            let start = ((i + 1) as f64 * every).floor() as usize + 1;
            let end = (((i + 2) as f64 * every).floor() as usize + 1).min(n);
            let avg = mean(&data[start..end]);
            let (lo, hi) = ((i as f64 * every).floor() as usize + 1, start);
            let best = (lo..hi)
                .max_by(|&p, &q| area(data[a], data[p], avg).total_cmp(&area(data[a], data[q], avg)))
                .unwrap();
            out.push(data[best]);
            a = best;
        }
        out.push(data[n - 1]);
        out
    }

    fn series(n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| (i as f64, ((i * 7919) % 1013) as f64 + (i as f64 / 50.0).sin() * 300.0))
            .collect()
    }

    #[test]
    fn streaming_equals_the_published_algorithm() {
        for (n, t) in [(10_000, 100), (1_001, 50), (5_000, 2_000), (2_003, 7)] {
            let data = series(n);
            let got = downsample(data.iter().copied(), t);
            assert_eq!(got, reference(&data, t), "n={n} t={t}");
        }
    }

    #[test]
    fn short_series_are_kept_whole_and_short_streams_end_with_their_last_point() {
        let data = series(50);
        assert_eq!(downsample(data.iter().copied(), 100), data);
        let mut l = Lttb::new(10_000, 100);
        for &(x, y) in &data {
            l.push(x, y);
        }
        let got = l.finish();
        assert_eq!(got.first(), data.first());
        assert_eq!(got.last(), data.last());
        assert!(Lttb::new(10, 5).finish().is_empty());
    }
}
