//! [`RingLedger`]: how far each ring is consumed, and when its producer may
//! reuse the space (SPEC §6 "Exactly once").
//!
//! For every ring the run reads from, three offsets only ever grow:
//! * `logged`: the end of the last batch appended to the write-ahead log;
//! * `published`: below it every frame's rows are in parts (`manifest.rings`);
//! * `acked`: what the producer was told (the ring's `read`). It never passes
//!   what is durable: `logged` once an fsync covered it, or `published` once
//!   the manifest naming it is stored.

use crate::ring::map::RingMap;
use crate::run_dir::RunDir;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Where a batch ended in the ring it came from (see `message::Batch`).
#[derive(Debug, Clone)]
pub(crate) struct RingMark {
    /// The ring's path relative to the run directory (its name in the log
    /// and the manifest).
    pub name: Arc<str>,
    /// The mapped ring, to tell the producer what is durable; `None` when
    /// replaying the log.
    pub map: Option<Arc<RingMap>>,
    /// The absolute offset after the batch's last frame.
    pub end: u64,
}

#[derive(Debug, Default)]
struct RingState {
    map: Option<Arc<RingMap>>,
    logged: u64,
    published: u64,
    acked: u64,
    /// Batches not yet published: (every row of the batch is below this
    /// `_seq`, the ring offset after the batch).
    pending: VecDeque<(u64, u64)>,
    /// The reader drained the ring to this offset and its producer is gone.
    ended: Option<u64>,
}

/// The consumption state of every ring of a run.
#[derive(Debug, Default)]
pub(crate) struct RingLedger {
    rings: BTreeMap<Arc<str>, RingState>,
}

impl RingLedger {
    /// The ledger of a run whose manifest lists these published offsets.
    pub(crate) fn resume(published: &BTreeMap<String, u64>) -> Self {
        let rings = published
            .iter()
            .map(|(name, &offset)| {
                let state = RingState {
                    logged: offset,
                    published: offset,
                    acked: offset,
                    ..RingState::default()
                };
                (Arc::from(name.as_str()), state)
            })
            .collect();
        RingLedger { rings }
    }

    /// A batch of `mark`'s ring was accepted; its rows are all below
    /// `seq_bound`. `logged`: it went into the write-ahead log.
    pub(crate) fn batch(&mut self, mark: &RingMark, seq_bound: u64, logged: bool) {
        let state = self.rings.entry(mark.name.clone()).or_default();
        if state.map.is_none() {
            state.map = mark.map.clone();
        }
        if logged {
            state.logged = state.logged.max(mark.end);
        }
        state.pending.push_back((seq_bound, mark.end));
    }

    /// Every `_seq` below `published_seq` is now in parts: moves the rings'
    /// published offsets along. Returns them, for the manifest.
    pub(crate) fn published(&mut self, published_seq: u64) -> BTreeMap<String, u64> {
        for state in self.rings.values_mut() {
            while let Some(&(bound, end)) = state.pending.front() {
                if bound > published_seq {
                    break;
                }
                state.published = state.published.max(end);
                state.pending.pop_front();
            }
        }
        self.rings
            .iter()
            .map(|(name, s)| (name.to_string(), s.published))
            .collect()
    }

    /// An fsync of the log covered everything logged so far.
    pub(crate) fn log_synced(&mut self) {
        for state in self.rings.values_mut() {
            state.acked = state.acked.max(state.logged);
            Self::tell(state);
        }
    }

    /// The manifest naming the published offsets is stored.
    pub(crate) fn manifest_stored(&mut self) {
        for state in self.rings.values_mut() {
            state.acked = state.acked.max(state.published);
            Self::tell(state);
        }
    }

    fn tell(state: &RingState) {
        if let Some(map) = &state.map {
            if map.read() < state.acked {
                map.publish_read(state.acked);
            }
        }
    }

    /// The reader drained `name` to `end` and its producer is gone.
    pub(crate) fn ended(&mut self, name: &str, end: u64) {
        if let Some(state) = self.rings.get_mut(name) {
            state.ended = Some(end);
        } else {
            // Nothing was ever read from it: it is done as soon as it is seen.
            let state = RingState {
                ended: Some(end),
                acked: end,
                logged: end,
                published: end,
                ..RingState::default()
            };
            self.rings.insert(Arc::from(name), state);
        }
    }

    /// Deletes the files of ended rings whose every frame is durable and whose
    /// rows are published. Returns the names it forgot (they leave the manifest).
    pub(crate) fn retire(&mut self, run: &RunDir) -> Vec<String> {
        let done: Vec<Arc<str>> = self
            .rings
            .iter()
            .filter(|(_, s)| s.ended.is_some_and(|end| s.published >= end && s.pending.is_empty()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &done {
            self.rings.remove(name);
            match std::fs::remove_file(run.path().join(&**name)) {
                Ok(()) => tracing::debug!(ring = %name, "ring drained and durable: removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(ring = %name, "cannot remove a drained ring: {e}"),
            }
        }
        done.iter().map(|n| n.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(end: u64) -> RingMark {
        RingMark {
            name: "rings/p1-a.ring".into(),
            map: None,
            end,
        }
    }

    #[test]
    fn published_offsets_follow_the_published_seq() {
        let mut l = RingLedger::default();
        l.batch(&mark(100), 10, true); // rows 0..10
        l.batch(&mark(200), 10, true); // control records only
        l.batch(&mark(300), 25, true); // rows 10..25
        assert_eq!(l.published(9)["rings/p1-a.ring"], 0);
        assert_eq!(l.published(10)["rings/p1-a.ring"], 200);
        assert_eq!(l.published(24)["rings/p1-a.ring"], 200);
        assert_eq!(l.published(25)["rings/p1-a.ring"], 300);
    }

    #[test]
    fn a_ring_is_retired_only_once_ended_and_published() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path(), "r").unwrap();
        std::fs::create_dir_all(run.path().join("rings")).unwrap();
        std::fs::write(run.path().join("rings/p1-a.ring"), b"x").unwrap();
        let mut l = RingLedger::resume(&BTreeMap::new());
        l.batch(&mark(100), 5, true);
        l.ended("rings/p1-a.ring", 100);
        assert!(l.retire(&run).is_empty(), "rows not yet published");
        l.published(5);
        assert_eq!(l.retire(&run), vec!["rings/p1-a.ring".to_string()]);
        assert!(!run.path().join("rings/p1-a.ring").exists());
    }
}
