//! Compaction in a live run: when to ask the compactor thread for a merge,
//! and committing what it merged between two checkpoints (`compact/`).
//!
//! The merge itself runs on the compactor thread; the worker only commits it
//! (links, manifest, swap: milliseconds), and only with no checkpoint in
//! flight, so a part is never written into a generation that is being
//! replaced, and ingestion never waits for a merge.

use super::ActiveRun;
use crate::compact::{apply, merge_all, Applied, Compactor, Merged};
use crate::error::Error;
use std::path::PathBuf;
use std::time::Duration;

/// The grace of generations replaced at the end of a run: the run is
/// closing, so it is shorter than the live one. A reader lists a folder and
/// opens its files within milliseconds (an opened file stays readable); the
/// end of every run that compacted waits this long, so it is kept short.
const FINAL_GRACE: Duration = Duration::from_millis(250);

impl ActiveRun {
    /// Compacts this run in the background with `compactor`. New streams
    /// start in a generation, so the first compaction is a plain swap.
    pub(crate) fn set_compactor(&mut self, compactor: Compactor) {
        self.publisher.start_new_streams_in_generations();
        self.compactor = Some(compactor);
    }

    /// Where merges arrive (for the driver's `select!`; hand them to
    /// [`compacted`](Self::compacted)). Never ready when compaction is off.
    pub(crate) fn compaction_results(&self) -> crossbeam_channel::Receiver<Result<Merged, Error>> {
        match &self.compactor {
            Some(c) => c.done(),
            None => crossbeam_channel::never(),
        }
    }

    /// The compactor finished a merge: commit it now, or after the
    /// checkpoint in flight.
    pub(crate) fn compacted(&mut self, result: Result<Merged, Error>) {
        let in_flight = self.checkpoint_in_flight();
        let Some(c) = self.compactor.as_mut() else { return };
        c.received();
        match result {
            Ok(merged) if in_flight => c.pending = Some(merged),
            Ok(merged) => self.commit_compaction(merged),
            Err(e) => tracing::warn!("compaction failed (the parts stay as they are): {e}"),
        }
        self.consider_compaction();
    }

    /// True when a merge waits for the checkpoint in flight to complete.
    pub(super) fn merge_pending(&self) -> bool {
        self.compactor.as_ref().is_some_and(|c| c.pending.is_some())
    }

    /// After a checkpoint completed: commit a merge that waited for it.
    pub(super) fn commit_pending_compaction(&mut self) {
        if let Some(merged) = self.compactor.as_mut().and_then(|c| c.pending.take()) {
            self.commit_compaction(merged);
        }
    }

    /// Asks the compactor to merge the first stream the policy picks, when
    /// it is idle.
    pub(super) fn consider_compaction(&mut self) {
        let Some(c) = self.compactor.as_mut() else { return };
        if !c.idle() {
            return;
        }
        let pick = self.manifest.streams.iter().find_map(|(name, entry)| {
            // Only the files old enough; they come first, so indices hold.
            let mut old = entry.clone();
            old.files.truncate(c.mergeable(name, entry));
            Some((name, c.opts.plan_tiered(&old)?, old))
        });
        if let Some((name, groups, old)) = pick {
            c.merge(name, old, groups);
        }
    }

    /// Parts were listed in the manifest: they become mergeable after the
    /// minimum age.
    pub(super) fn note_published(&mut self, parts: &[(std::sync::Arc<str>, u32)]) {
        if let Some(c) = self.compactor.as_mut() {
            c.published(parts);
        }
    }

    /// On the driver's tick: parts that came of age may be merged now.
    pub(super) fn compaction_tick(&mut self) {
        if self.compactor.as_mut().is_some_and(|c| c.aged()) {
            self.consider_compaction();
        }
    }

    fn commit_compaction(&mut self, merged: Merged) {
        let (stream, dir) = (merged.stream.clone(), merged.dir.clone());
        let result = apply(self.publisher.run(), self.publisher.fs(), &mut self.manifest, merged);
        let committed = self.manifest.streams.get(&stream).and_then(|s| s.dir.as_deref()) == Some(dir.as_str());
        if committed {
            // Even if the swap failed: parts go where the manifest says.
            self.publisher.set_dir(&stream, dir);
        }
        match result {
            Ok(Applied::Swapped(retired)) => {
                if let Some(c) = &self.compactor {
                    c.retire(retired);
                }
            }
            Ok(Applied::Stale) => {}
            Err(e) => tracing::error!(stream, "committing a compaction failed: {e}"),
        }
    }

    /// The end of the run: the background merge stops and every stream is
    /// merged fully; replaced generations go after a short grace. A failure
    /// is logged: the run is complete either way.
    pub(super) fn final_compaction(&mut self) {
        let Some(mut c) = self.compactor.take() else { return };
        let mut retired: Vec<PathBuf> = c.stop();
        match merge_all(self.publisher.run(), self.publisher.fs(), &c.opts, &mut self.manifest) {
            Ok(dirs) => retired.extend(dirs),
            Err(e) => tracing::warn!("the final compaction failed (the run is complete, with more files): {e}"),
        }
        if retired.is_empty() {
            return;
        }
        std::thread::sleep(c.opts.grace.min(FINAL_GRACE));
        for dir in retired {
            if let Err(e) = self.publisher.fs().remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), "cannot remove a replaced generation: {e}");
            }
        }
    }
}
