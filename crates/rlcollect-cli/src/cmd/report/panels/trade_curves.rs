//! The arithmetic behind the trades panel: the equity curve by close time,
//! Freqtrade's max drawdown, how long each number of trades was open at once,
//! and the timeframe of trade durations.

/// The cumulative profit after each distinct close time. Trades that close
/// at the same time count together: their order within that time is
/// arbitrary, and the account is only ever seen with all of them closed
/// (Freqtrade's drawdown agrees).
pub fn equity_by_close_time(closes: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut equity: Vec<(i64, f64)> = Vec::new();
    let mut cum = 0.0;
    for &(t, p) in closes {
        cum += p; // a plain running sum, as pandas' cumsum
        match equity.last_mut() {
            Some(last) if last.0 == t => last.1 = cum,
            _ => equity.push((t, cum)),
        }
    }
    equity
}

/// The equity curve's drawdown, as Freqtrade's `calculate_max_drawdown`:
/// cumulative profit by close date, its running high from the first trade,
/// the deepest fall below it, and the high it fell from.
pub struct Drawdown {
    pub abs: f64,
    pub start: usize,
    pub end: usize,
}

pub fn max_drawdown(equity: &[(i64, f64)]) -> Option<Drawdown> {
    let (mut high, mut high_at) = (f64::NEG_INFINITY, 0);
    let mut best: Option<Drawdown> = None;
    for (i, &(_, e)) in equity.iter().enumerate() {
        if e > high {
            (high, high_at) = (e, i);
        }
        let dd = high - e;
        if dd > best.as_ref().map_or(0.0, |b| b.abs) {
            best = Some(Drawdown {
                abs: dd,
                start: high_at,
                end: i,
            });
        }
    }
    best
}

/// How long each number of trades was open at once (ms per count, from the
/// first open to the last close), and the most at once. Closes come before
/// opens at equal times, as a slot is freed before it is taken.
pub fn open_at_once(spans: &mut [(i64, i64)]) -> (Vec<f64>, u64) {
    let mut opens: Vec<i64> = spans.iter().map(|s| s.0).collect();
    spans.sort_unstable_by_key(|s| s.1);
    opens.sort_unstable();
    let mut time: Vec<f64> = vec![0.0];
    let (mut open, mut most, mut prev) = (0usize, 0usize, None::<i64>);
    let (mut i, mut j) = (0, 0);
    while i < opens.len() || j < spans.len() {
        let close_first = j < spans.len() && (i >= opens.len() || spans[j].1 <= opens[i]);
        let t = if close_first { spans[j].1 } else { opens[i] };
        if let Some(p) = prev {
            time[open] += (t - p).max(0) as f64;
        }
        prev = Some(t);
        if close_first {
            open = open.saturating_sub(1);
            j += 1;
        } else {
            open += 1;
            i += 1;
            if time.len() <= open {
                time.resize(open + 1, 0.0);
            }
        }
        most = most.max(open);
    }
    (time, most as u64)
}

/// The common step of whole-minute durations (their greatest common
/// divisor), when there is one above a minute.
pub fn timeframe(durations: &[f64]) -> Option<f64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let mut g = 0u64;
    for &d in durations {
        if d.fract() != 0.0 || !(0.0..1e12).contains(&d) {
            return None;
        }
        g = gcd(g, d as u64);
    }
    (g > 1).then_some(g as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_is_measured_from_the_first_trade_as_freqtrade_does() {
        let curve = |v: &[f64]| v.iter().enumerate().map(|(i, e)| (i as i64, *e)).collect::<Vec<_>>();
        let d = max_drawdown(&curve(&[1.0, 3.0, 2.0, 5.0, 1.5, 4.0])).unwrap();
        assert_eq!((d.abs, d.start, d.end), (3.5, 3, 4));
        // A first losing trade is not a drawdown from zero.
        assert!(max_drawdown(&curve(&[-1.0, 0.0, 2.0])).is_none());
        // Trades closing at the same time count together, whatever their order.
        let equity = equity_by_close_time(&[(1, 2.0), (2, -3.0), (2, 2.5), (3, 1.0)]);
        assert_eq!(equity, [(1, 2.0), (2, 1.5), (3, 2.5)]);
    }

    #[test]
    fn open_trades_close_before_new_ones_open_at_the_same_time() {
        // 0-5: one open, 5-10: two, 10 closes one and opens one: still two, 15-20: one.
        let mut spans = vec![(0, 10), (10, 20), (5, 15)];
        let (time, most) = open_at_once(&mut spans);
        assert_eq!(most, 2);
        assert_eq!(time, [0.0, 10.0, 10.0]);
    }
}
