//! When to checkpoint (SPEC §4). [`CheckpointPolicy::should_checkpoint`] is a
//! pure function of counters and the clock, so it is tested without any I/O;
//! [`Schedule`] keeps those counters and the retry backoff for the worker.

use std::time::{Duration, Instant};

/// The configured triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointPolicy {
    /// Checkpoint after this many candle records (0 = never by candles).
    pub every_candles: u64,
    /// Checkpoint when rows have waited this long (None = never by time).
    pub every: Option<Duration>,
    /// Checkpoint when this many rows are buffered (the memory bound).
    pub max_buffered_rows: usize,
}

/// What the worker knows when it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyState {
    /// Candles since the last checkpoint.
    pub candles_since: u64,
    /// Rows buffered, not yet published.
    pub buffered_rows: usize,
    /// When the last checkpoint ran (or the run started).
    pub last_checkpoint: Instant,
    /// After a failed checkpoint: no new attempt before this time.
    pub retry_not_before: Option<Instant>,
}

/// Why a checkpoint runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `every_candles` candles were seen.
    Candles,
    /// `every` elapsed with rows waiting.
    Time,
    /// The buffered rows reached `max_buffered_rows`.
    Rows,
    /// A producer or the API asked for one.
    Requested,
    /// The run is ending.
    Final,
}

impl CheckpointPolicy {
    /// The trigger that fires now, if any. After a failure nothing fires before
    /// `retry_not_before`, so a full disk is not hammered on every record.
    pub(crate) fn should_checkpoint(&self, s: &PolicyState, now: Instant) -> Option<Trigger> {
        if s.retry_not_before.is_some_and(|t| now < t) {
            return None;
        }
        if self.every_candles > 0 && s.candles_since >= self.every_candles {
            return Some(Trigger::Candles);
        }
        if s.buffered_rows >= self.max_buffered_rows.max(1) {
            return Some(Trigger::Rows);
        }
        if s.buffered_rows > 0
            && self
                .every
                .is_some_and(|every| now.duration_since(s.last_checkpoint) >= every)
        {
            return Some(Trigger::Time);
        }
        None
    }
}

/// The checkpoint counters of a run: candles and time since the last
/// checkpoint, and the backoff after failures.
#[derive(Debug)]
pub(crate) struct Schedule {
    policy: CheckpointPolicy,
    candles_since: u64,
    last_checkpoint: Instant,
    failures: u32,
    retry_not_before: Option<Instant>,
}

impl Schedule {
    pub(crate) fn new(policy: CheckpointPolicy) -> Self {
        Schedule {
            policy,
            candles_since: 0,
            last_checkpoint: Instant::now(),
            failures: 0,
            retry_not_before: None,
        }
    }

    /// How often the worker must wake up to notice a time trigger when
    /// nothing arrives.
    pub(crate) fn tick_every(&self) -> Duration {
        self.policy.every.map_or(Duration::from_secs(1), |e| {
            (e / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
        })
    }

    /// A candle record arrived.
    pub(crate) fn candle(&mut self) {
        self.candles_since += 1;
    }

    /// The trigger that fires now with `buffered_rows` waiting, if any.
    pub(crate) fn due(&self, buffered_rows: usize, now: Instant) -> Option<Trigger> {
        let state = PolicyState {
            candles_since: self.candles_since,
            buffered_rows,
            last_checkpoint: self.last_checkpoint,
            retry_not_before: self.retry_not_before,
        };
        self.policy.should_checkpoint(&state, now)
    }

    /// A checkpoint was cut: the counters start again.
    pub(crate) fn cut(&mut self, now: Instant) {
        self.candles_since = 0;
        self.last_checkpoint = now;
    }

    /// A checkpoint published everything: no backoff.
    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_not_before = None;
    }

    /// A checkpoint failed: no automatic retry before the returned delay.
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        self.failures += 1;
        let delay = retry_delay(self.failures);
        self.retry_not_before = Some(now + delay);
        delay
    }

    /// The final flush tries at once, whatever the backoff says.
    pub(crate) fn clear_backoff(&mut self) {
        self.retry_not_before = None;
    }
}

/// Delay before retrying a failed checkpoint: 1 s, doubling, at most 60 s.
fn retry_delay(consecutive_failures: u32) -> Duration {
    Duration::from_secs(1u64 << consecutive_failures.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: CheckpointPolicy = CheckpointPolicy {
        every_candles: 10,
        every: Some(Duration::from_secs(60)),
        max_buffered_rows: 100,
    };

    fn state(t0: Instant) -> PolicyState {
        PolicyState {
            candles_since: 0,
            buffered_rows: 0,
            last_checkpoint: t0,
            retry_not_before: None,
        }
    }

    #[test]
    fn candles_fire_at_the_threshold() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.candles_since = 9;
        assert_eq!(POLICY.should_checkpoint(&s, t0), None);
        s.candles_since = 10;
        assert_eq!(POLICY.should_checkpoint(&s, t0), Some(Trigger::Candles));
    }

    #[test]
    fn time_fires_only_with_rows_waiting() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(61);
        let mut s = state(t0);
        assert_eq!(POLICY.should_checkpoint(&s, later), None);
        s.buffered_rows = 1;
        assert_eq!(POLICY.should_checkpoint(&s, t0 + Duration::from_secs(59)), None);
        assert_eq!(POLICY.should_checkpoint(&s, later), Some(Trigger::Time));
    }

    #[test]
    fn rows_bound_fires() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.buffered_rows = 100;
        assert_eq!(POLICY.should_checkpoint(&s, t0), Some(Trigger::Rows));
    }

    #[test]
    fn disabled_triggers_never_fire() {
        let p = CheckpointPolicy {
            every_candles: 0,
            every: None,
            max_buffered_rows: usize::MAX,
        };
        let t0 = Instant::now();
        let mut s = state(t0);
        s.candles_since = 1_000_000;
        s.buffered_rows = 1_000_000;
        assert_eq!(p.should_checkpoint(&s, t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn backoff_suppresses_until_retry_time() {
        let t0 = Instant::now();
        let mut s = state(t0);
        s.buffered_rows = 1000;
        s.retry_not_before = Some(t0 + Duration::from_secs(2));
        assert_eq!(POLICY.should_checkpoint(&s, t0 + Duration::from_secs(1)), None);
        assert_eq!(
            POLICY.should_checkpoint(&s, t0 + Duration::from_secs(2)),
            Some(Trigger::Rows)
        );
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(4));
        assert_eq!(retry_delay(30), Duration::from_secs(60));
    }
}
