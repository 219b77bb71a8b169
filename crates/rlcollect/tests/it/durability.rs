//! Durability: the write-ahead log, crash recovery, faults through the
//! filesystem seam, real SIGKILLs, and a really full filesystem.

use crate::*;
use proptest::prelude::*;
use rlcollect::fs::{Fault, FaultyFs};
use rlcollect::*;
use std::path::Path;
use std::time::Duration;

fn event(i: i64, k: i64) -> Record {
    Record::User(UserRecord {
        stream: "ev".into(),
        source: None,
        extra: Extras::new().with("i", Value::Int(i)).with("k", Value::Int(k)),
    })
}

/// (_seq, i, k) of every stored `ev` row, sorted by `_seq`.
fn stored_events(run_dir: &Path) -> Vec<(u64, i64, i64)> {
    stored_int_rows(run_dir, "ev", &["i", "k"])
        .into_iter()
        .map(|(seq, v)| (seq, v[0], v[1]))
        .collect()
}

/// Log segments this small make every test here cross segment boundaries.
const SEGMENT_BYTES: u64 = 4096;

/// A collector of run `r` under `dir` writing through `fs`, with the log on.
fn collector_on(dir: &Path, fs: &FaultyFs) -> Collector {
    logged_run_on(dir, fs, SEGMENT_BYTES).build().unwrap()
}

#[test]
fn enospc_during_a_checkpoint_keeps_the_rows_and_space_coming_back_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let c = collector_on(dir.path(), &fs);
    for i in 0..100 {
        c.send(event(i, 0)).unwrap();
    }
    fs.set(Some(Fault::DiskFull));
    let err = c.checkpoint().unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(c.stats().rows_buffered, 100, "rows stay in memory");
    let ev = dir.path().join("r/ev");
    let leftovers: Vec<_> = std::fs::read_dir(&ev)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no half-published file: {leftovers:?}");
    fs.set(None);
    for i in 100..150 {
        c.send(event(i, 0)).unwrap();
    }
    c.close().unwrap();
    let rows = stored_events(&dir.path().join("r"));
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        (0..150).collect::<Vec<_>>()
    );
    assert_gap_free(&stored_seqs(&dir.path().join("r"), None), 150);
}

#[test]
fn a_final_flush_on_a_full_disk_fails_with_the_log_intact_and_recover_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let c = collector_on(dir.path(), &fs);
    for i in 0..500 {
        c.send(event(i, 0)).unwrap();
    }
    fs.set(Some(Fault::DiskFull));
    assert!(c.close().is_err(), "the final flush cannot succeed on a full disk");
    let run = dir.path().join("r");
    assert_eq!(manifest(&run).status, RunStatus::Running, "left for recovery");
    assert!(
        !RunDir::at(&run).unwrap().wal_segments().is_empty(),
        "the log is intact"
    );
    let report = recover(&run).unwrap();
    assert_eq!(report.replayed, 500);
    assert_eq!(manifest(&run).status, RunStatus::Recovered);
    assert_gap_free(&stored_seqs(&run, None), 500);
    // Recovering twice changes nothing.
    let manifest_file = RunDir::at(&run).unwrap().manifest_path();
    let before = std::fs::read(&manifest_file).unwrap();
    let again = recover(&run).unwrap();
    assert!(!again.recovered);
    assert_eq!(std::fs::read(&manifest_file).unwrap(), before);
}

/// Regression: recovery once counted rows the summary already held a second time.
#[test]
fn recovery_counts_each_trade_once_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let c = collector_on(dir.path(), &fs);
    let trade = |i: i64| {
        Record::Trade(Trade {
            pair: "A/B".into(),
            profit_abs: Some(1.0),
            trade_id: Some(i),
            ..Trade::default()
        })
    };
    for i in 0..100 {
        c.send(trade(i)).unwrap();
    }
    c.checkpoint().unwrap(); // summary.json now covers 100 trades
    for i in 100..150 {
        c.send(trade(i)).unwrap();
    }
    fs.set(Some(Fault::CrashAfter(0)));
    drop(c); // the disk dies: 50 trades only in the log
    let report = recover(&dir.path().join("r")).unwrap();
    assert_eq!(report.replayed, 50);
    let s = report.summary.unwrap();
    assert_eq!((s.trades.count, s.trades.wins, s.records), (150, 150, 150));
    assert_eq!(s.trades.profit_abs_total, 150.0);
}

#[test]
fn low_free_space_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let err = Collector::builder(dir.path())
        .run_id("r")
        .min_free_bytes(u64::MAX / 2)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::LowDiskSpace { .. }), "{err}");
    assert!(!err.is_config(), "a full disk is not the caller's configuration");
}

/// One session of the model test: how many records, where to checkpoint,
/// and how it ends.
#[derive(Debug, Clone)]
struct Session {
    records: Vec<bool>, // true = force a checkpoint after this record
    end: End,
    /// Background compaction on (merging after every 2 parts), so a crash
    /// can also hit a merge, a link, a swap or a removal.
    compact: bool,
}

#[derive(Debug, Clone)]
enum End {
    Close,
    /// The disk dies after this many more filesystem operations; then the
    /// collector is dropped (its final flush fails) and, if set, the log's
    /// last segment is torn at this fraction of its length.
    Crash {
        after_ops: u64,
        tear: Option<f64>,
    },
}

fn session() -> impl Strategy<Value = Session> {
    let end = prop_oneof![
        1 => Just(End::Close),
        3 => (0u64..40, proptest::option::of(0.0f64..1.0)).prop_map(|(after_ops, tear)| End::Crash { after_ops, tear }),
    ];
    (
        proptest::collection::vec(proptest::bool::weighted(0.05), 0..120),
        end,
        proptest::bool::ANY,
    )
        .prop_map(|(records, end, compact)| Session { records, end, compact })
}

/// Sends a session's records, checkpointing where it says; returns the `i` of each.
fn send_session(c: &Collector, s: &Session, k: i64, next_i: &mut i64) -> Vec<i64> {
    let mut sent = Vec::with_capacity(s.records.len());
    for checkpoint_after in &s.records {
        c.send(event(*next_i, k)).unwrap();
        sent.push(*next_i);
        *next_i += 1;
        if *checkpoint_after {
            let _ = c.checkpoint();
        }
    }
    sent
}

/// Cuts the newest log segment to `frac` of its length, as a crash mid-write would.
fn tear_last_segment(run: &Path, frac: f64) {
    if let Some((_, last)) = RunDir::at(run).unwrap().wal_segments().pop() {
        let len = std::fs::metadata(&last).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        f.set_len((len as f64 * frac) as u64).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random appends, checkpoints, crashes at any filesystem operation, torn
    /// log tails and recoveries, against a model: the stored rows are always a
    /// gap-free `_seq` prefix with the payloads sent, nothing published is ever
    /// lost, nothing logged is lost unless its log was torn, and every file reads.
    #[test]
    fn crash_recover_model(sessions in proptest::collection::vec(session(), 1..5)) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let fs = FaultyFs::new();
        let mut model: Vec<i64> = Vec::new(); // `i` of each stored seq, in order
        let mut next_i = 0i64;
        for (k, s) in sessions.iter().enumerate() {
            fs.set(None);
            let c = logged_run_on(dir.path(), &fs, SEGMENT_BYTES)
                .max_buffered_rows(37)
                .drop_timeout(Duration::from_secs(20))
                .compaction(s.compact.then(|| CompactOptions {
                    target_rows: 60,
                    min_parts: 2,
                    grace: Duration::ZERO,
                    min_age: Duration::ZERO,
                    ..CompactOptions::default()
                }))
                .build()
                .unwrap();
            // Whatever recovery kept is the model's truth from here on.
            let kept = stored_events(&run);
            prop_assert!(kept.len() <= model.len());
            model.truncate(kept.len());
            for (seq, (row, want)) in kept.iter().zip(&model).enumerate() {
                prop_assert_eq!((row.0, row.1), (seq as u64, *want));
            }
            match s.end {
                End::Close => {
                    model.extend(send_session(&c, s, k as i64, &mut next_i));
                    c.close().unwrap();
                }
                End::Crash { after_ops, tear } => {
                    fs.set(Some(Fault::CrashAfter(after_ops)));
                    model.extend(send_session(&c, s, k as i64, &mut next_i));
                    drop(c); // final flush fails on the dead disk
                    let published = manifest(&run).published_seq;
                    if let Some(frac) = tear {
                        tear_last_segment(&run, frac);
                    }
                    fs.set(None);
                    let report = recover(&run).unwrap();
                    let rows = stored_events(&run);
                    prop_assert!(rows.len() as u64 >= published, "published rows are never lost");
                    if tear.is_none() {
                        prop_assert_eq!(rows.len(), model.len(), "every logged row is recovered: {:?}", report);
                    }
                }
            }
        }
        let rows = stored_events(&run);
        model.truncate(rows.len());
        prop_assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), model);
        assert_gap_free(&stored_seqs(&run, None), rows.len() as u64);
    }
}

#[test]
fn a_really_full_small_filesystem_keeps_every_row_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    let Some(disk) = Tmpfs::mount(&mnt, "3m") else { return };
    // The log shares the small disk with the parts.
    let c = Collector::builder(&mnt)
        .run_id("r")
        .wal(WalOptions {
            fsync_every: Duration::ZERO,
            segment_bytes: 1 << 20,
        })
        .build()
        .unwrap();
    for i in 0..2000 {
        c.send(event(i, 0)).unwrap();
    }
    c.handle().checkpoint().unwrap();
    // Fill the disk to the last byte.
    let ballast = disk.fill(0);
    assert_eq!(rlcollect::fs::available_bytes(&mnt).unwrap(), 0);
    for i in 2000..2500 {
        c.send(event(i, 0)).unwrap();
    }
    // The parts cannot be written: a clear error, no half file, rows kept.
    let err = c.handle().checkpoint();
    assert!(err.is_err(), "a checkpoint on a full disk must fail");
    let leftovers: Vec<_> = std::fs::read_dir(mnt.join("r/ev"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(manifest(&mnt.join("r")).last_error.is_some() || c.stats().rows_buffered == 500);
    // Space returns: nothing is lost.
    std::fs::remove_file(ballast).unwrap();
    c.close().unwrap();
    let rows = stored_events(&mnt.join("r"));
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        (0..2500).collect::<Vec<_>>()
    );
}
