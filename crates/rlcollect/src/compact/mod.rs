//! Compaction: a stream's small part files merged into files of a target
//! size, while the run goes on and fully at its end, with every reader seeing
//! each row exactly once at every moment (SPEC §3).
//!
//! * `mod.rs` (this file): the settings and the policy (which parts to merge).
//! * `merge.rs`: reading parts and writing merged files into a new generation.
//! * `commit.rs`: the serialised part: surviving parts linked into the new
//!   generation, the manifest (the commit point), the symlink swap.
//! * `compactor.rs`: the background thread of a live run.
//! * `offline.rs`: `compact_run`, the full merge of a run nobody writes.
//!
//! The commit order of one compaction of stream S:
//!
//! ```text
//! merge.rs  (outside any lock)  1. merged files: temp name in .streams/S/gN+1, fsync, rename, fsync dir
//! commit.rs (on the worker,     2. hard links of every surviving part into gN+1, fsync dir
//!  no checkpoint in flight)     3. manifest.json names gN+1            <- the commit point
//!                               4. RUN/S -> gN+1: temp symlink renamed over RUN/S, fsync RUN
//! compactor.rs (after a grace)  5. gN removed
//! ```
//!
//! A crash before 3 leaves an unnamed generation that recovery removes; after
//! 3, recovery points `RUN/S` at the manifest's generation and removes the old.

mod commit;
mod compactor;
mod merge;
mod offline;

pub(crate) use commit::{apply, Applied};
pub(crate) use compactor::Compactor;
pub(crate) use merge::{merge_stream, Merged};
pub(crate) use offline::merge_all;
pub use offline::{compact_run, compact_run_with, CompactReport};

use crate::manifest::{FileEntry, StreamEntry};
use std::time::Duration;

/// How compaction merges a stream's parts (builder option
/// [`CollectorBuilder::compaction`](crate::CollectorBuilder::compaction), CLI
/// `--compact`, `--compact-target-mb`, `--compact-target-rows`).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactOptions {
    /// A merged file holds at most about this many bytes (sum of its parts). Default 128 MiB.
    pub target_bytes: u64,
    /// A merged file holds at most this many rows. Default 1 048 576.
    pub target_rows: u64,
    /// Merge when this many consecutive parts of one size tier exist (the
    /// fan-in F of the size-tiered policy). Default 10.
    pub min_parts: usize,
    /// How long a replaced generation stays readable after the swap, for
    /// readers that listed it but have not opened its files yet. Default 30 s.
    pub grace: Duration,
    /// A live run merges a part only once it is this old, so a burst (a
    /// bulk load, a backtest piped in) is merged once when it ends, not again
    /// and again while it arrives. The end of a run merges regardless.
    /// Default 30 s.
    pub min_age: Duration,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_bytes: 128 << 20,
            target_rows: 1 << 20,
            min_parts: 10,
            grace: Duration::from_secs(30),
            min_age: Duration::from_secs(30),
        }
    }
}

/// Rows in a merged file's row groups.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows in a merged file's data pages (the parquet crate's default is
/// 20,000); a page that spans two parts' rows can hold up to twice that, less
/// one, as the crate checks the limit between slices of each write. Every column of the row group being written holds a zstd context
/// until the row group closes, and zstd sizes each context's window and
/// tables by the pages it compresses: with a dozen columns that was most of
/// a merge's memory. Measured on the 1 M-record bulk load (`rlcollect
/// compact`, 2 merge threads): peak RSS 43–45 → 37–38 MiB, files 0.3%
/// larger, no slower.
pub(crate) const PAGE_ROWS: usize = 8 * 1024;

/// Indices (into a stream's `files`) of consecutive Parquet files merged into one.
pub(crate) type Group = Vec<usize>;

impl CompactOptions {
    /// How full a file is, as a fraction of the target (1.0 or more: full).
    fn weight(&self, f: &FileEntry) -> f64 {
        let rows = f.rows as f64 / self.target_rows.max(1) as f64;
        let bytes = f.bytes as f64 / self.target_bytes.max(1) as f64;
        rows.max(bytes)
    }

    /// A file's size tier: 0 for files within a factor F of the target, 1 for
    /// within F², …; `None` for a full file (never merged again).
    fn tier(&self, f: &FileEntry) -> Option<u32> {
        let w = self.weight(f);
        if w >= 1.0 {
            return None;
        }
        let fan = self.min_parts.max(2) as f64;
        // The epsilon keeps exact powers of F (a tenth, a hundredth) in their tier.
        Some(((1.0 / w.max(1e-12)).ln() / fan.ln() + 1e-9).floor().max(0.0) as u32)
    }

    /// The size-tiered choice for a live run: the smallest tier t that has a
    /// run of at least F consecutive files all of tier t or smaller-sized,
    /// merged from its oldest file on, up to the target. Each row is then
    /// rewritten about log_F(target / part size) times, and a stream keeps
    /// fewer than F files per tier. `None`: nothing to merge now.
    pub(crate) fn plan_tiered(&self, entry: &StreamEntry) -> Option<Vec<Group>> {
        let parquet = parquet_files(entry);
        let tiers: Vec<Option<u32>> = parquet.iter().map(|&i| self.tier(&entry.files[i])).collect();
        let deepest = tiers.iter().flatten().copied().max()?;
        for t in (0..=deepest).rev() {
            let mut start = 0;
            while start < parquet.len() {
                let len = tiers[start..].iter().take_while(|x| x.is_some_and(|x| x >= t)).count();
                if len >= self.min_parts.max(2) {
                    let group = self.fill(entry, &parquet[start..start + len]);
                    return (group.len() >= 2).then(|| vec![group]);
                }
                start += len.max(1);
            }
        }
        None
    }

    /// The full merge (end of a run, `rlcollect compact`): consecutive files
    /// grouped up to the target; groups of one file are left as they are.
    pub(crate) fn plan_full(&self, entry: &StreamEntry) -> Vec<Group> {
        let parquet = parquet_files(entry);
        let mut groups = Vec::new();
        let mut start = 0;
        while start < parquet.len() {
            let group = self.fill(entry, &parquet[start..]);
            start += group.len().max(1);
            if group.len() >= 2 {
                groups.push(group);
            }
        }
        groups
    }

    /// The longest prefix of `candidates` whose files together stay within the
    /// target (at least the first file).
    fn fill(&self, entry: &StreamEntry, candidates: &[usize]) -> Group {
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut group = Vec::new();
        for &i in candidates {
            let f = &entry.files[i];
            let fits = rows + f.rows <= self.target_rows && bytes + f.bytes <= self.target_bytes;
            if !group.is_empty() && !fits {
                break;
            }
            rows += f.rows;
            bytes += f.bytes;
            group.push(i);
        }
        group
    }
}

/// Indices of a stream's Parquet files (CSV output is never merged).
fn parquet_files(entry: &StreamEntry) -> Vec<usize> {
    (0..entry.files.len())
        .filter(|&i| entry.files[i].format == "parquet")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, rows: u64) -> FileEntry {
        FileEntry {
            path: format!("ev/part-{n:06}.parquet"),
            format: "parquet".into(),
            rows,
            first_seq: u64::from(n) * 1000,
            last_seq: u64::from(n) * 1000 + rows - 1,
            bytes: rows * 10,
        }
    }

    fn stream(sizes: &[u64]) -> StreamEntry {
        StreamEntry {
            rows: sizes.iter().sum(),
            files: sizes.iter().enumerate().map(|(i, &r)| part(i as u32 + 1, r)).collect(),
            ..StreamEntry::default()
        }
    }

    fn opts() -> CompactOptions {
        CompactOptions {
            target_rows: 10_000,
            ..CompactOptions::default()
        }
    }

    #[test]
    fn fewer_than_f_small_parts_are_left_alone_and_f_are_merged() {
        assert_eq!(opts().plan_tiered(&stream(&[100; 9])), None);
        assert_eq!(opts().plan_tiered(&stream(&[100; 10])), Some(vec![(0..10).collect()]));
    }

    #[test]
    fn merged_files_of_one_tier_are_merged_again_and_full_files_never() {
        // Nine merged files of 1000 rows (tier 1) and ten new parts of 100 (tier 2):
        // the new parts go first; then the ten files of tier 1 together.
        let mut sizes = vec![1000; 9];
        sizes.extend([100; 10]);
        assert_eq!(opts().plan_tiered(&stream(&sizes)), Some(vec![(9..19).collect()]));
        assert_eq!(opts().plan_tiered(&stream(&[1000; 10])), Some(vec![(0..10).collect()]));
        let mut full = vec![10_000; 3];
        full.extend([100; 9]);
        assert_eq!(opts().plan_tiered(&stream(&full)), None, "full files are never merged");
    }

    #[test]
    fn parts_straddling_a_tier_boundary_still_merge() {
        let sizes: Vec<u64> = (0..10).map(|i| if i % 2 == 0 { 90 } else { 110 }).collect();
        assert_eq!(opts().plan_tiered(&stream(&sizes)), Some(vec![(0..10).collect()]));
    }

    #[test]
    fn a_merge_stops_at_the_target() {
        let plan = opts().plan_tiered(&stream(&[600; 30])).unwrap();
        assert_eq!(plan, vec![(0..16).collect::<Vec<_>>()], "16 × 600 ≤ 10 000 < 17 × 600");
    }

    #[test]
    fn the_full_merge_groups_up_to_the_target_and_skips_csv() {
        let mut s = stream(&[4000, 4000, 4000, 100, 20_000, 5]);
        s.files.insert(
            1,
            FileEntry {
                format: "csv".into(),
                ..part(1, 4000)
            },
        );
        // indices: 0 p1, 1 csv, 2 p2, 3 p3, 4 p4, 5 p5 (full), 6 p6
        assert_eq!(opts().plan_full(&s), vec![vec![0, 2], vec![3, 4]]);
        assert!(opts().plan_full(&stream(&[20_000, 5])).is_empty(), "nothing to pair");
    }
}
