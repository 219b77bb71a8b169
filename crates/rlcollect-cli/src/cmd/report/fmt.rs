//! Numbers, dates and durations as people read them.

/// A number with about 4 significant digits and thousands separators:
/// `1,234,567`, `12.35`, `0.001042`, `-3.5e-9`.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-6..1e15).contains(&a) {
        return format!("{x:.3e}");
    }
    if a >= 1000.0 {
        let s = crate::cmd::thousands(a.round() as u64);
        return if x < 0.0 { format!("-{s}") } else { s };
    }
    // Four significant digits, trailing zeros dropped.
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A share as a percentage: `94.97%`.
pub fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// Epoch milliseconds as a UTC date and time: `2024-01-01 00:05`.
pub fn date_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |d| d.format("%Y-%m-%d %H:%M").to_string())
}

/// A span of milliseconds: `850 ms`, `4.1 s`, `17.1 min`, `9.1 h`, `3.0 d`.
pub fn duration_ms(ms: f64) -> String {
    let units = [
        (86_400_000.0, "d"),
        (3_600_000.0, "h"),
        (60_000.0, "min"),
        (1000.0, "s"),
    ];
    for (size, unit) in units {
        if ms >= size {
            return format!("{:.1} {unit}", ms / size);
        }
    }
    format!("{ms:.0} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(1_234_567.0), "1,234,567");
        assert_eq!(num(-1_234.4), "-1,234");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(0.001_041_903), "0.001042");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(3.5e-9), "3.500e-9");
        assert_eq!(pct(0.949_72), "94.97%");
        assert_eq!(date_ms(1_704_067_500_000), "2024-01-01 00:05");
        assert_eq!(duration_ms(65_536.0), "1.1 min");
    }
}
