//! Checkpoints on a disk slow to flush: a checkpoint's summary and manifest
//! are stored while the worker takes rows and the next checkpoint's parts
//! are written. What a reader of `manifest.json` sees never goes back, and a
//! requested checkpoint reports success only once its manifest is stored.

use crate::*;
use rlcollect::fs::{Fault, FaultyFs};
use rlcollect::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

fn event(i: i64) -> Record {
    Record::User(UserRecord {
        stream: "ev".into(),
        source: None,
        extra: Extras::new().with("i", Value::Int(i)),
    })
}

const SEGMENT_BYTES: u64 = 1 << 16;

/// A collector on `fs` with the log on and default checkpoints.
fn collector_on(dir: &Path, fs: &FaultyFs) -> Collector {
    logged_run_on(dir, fs, SEGMENT_BYTES).build().unwrap()
}

/// The `i` of every stored `ev` row, in `_seq` order.
fn stored_events(run: &Path) -> Vec<i64> {
    stored_int_rows(run, "ev", &["i"])
        .into_iter()
        .map(|(_, v)| v[0])
        .collect()
}

/// The `N` of the newest producer the manifest lists as connected
/// (`producer-N`; the test connects them in increasing order).
fn newest_connected(m: &Manifest) -> i64 {
    m.connected
        .iter()
        .filter_map(|s| s.strip_prefix("producer-")?.parse().ok())
        .max()
        .unwrap_or(-1)
}

/// Reads `manifest.json` over and over until `stop`, as `watch` or a
/// notebook would. Asserts that each one read is at least as new as the one
/// before, and that every file it lists is there. Returns how many
/// different manifests it saw.
fn watch_manifests(run: &Path, stop: &AtomicBool) -> usize {
    let dir = RunDir::at(run).unwrap();
    let mut last: Option<Manifest> = None;
    let mut seen = 0;
    while !stop.load(Relaxed) {
        let Ok(m) = dir.load_manifest() else {
            continue; // not written yet
        };
        if let Some(before) = &last {
            if m.updated_at == before.updated_at && m.connected == before.connected {
                continue;
            }
            assert!(
                m.updated_at >= before.updated_at,
                "{} after {}",
                m.updated_at,
                before.updated_at
            );
            assert!(m.published_seq >= before.published_seq, "published rows went back");
            assert!(m.checkpoints >= before.checkpoints, "checkpoints went back");
            let (now, then) = (newest_connected(&m), newest_connected(before));
            assert!(
                now >= then,
                "connected went back from producer-{then} to producer-{now}"
            );
            for (name, stream) in &before.streams {
                // Generation folders are numbered with leading zeros.
                assert!(m.streams[name].dir >= stream.dir, "{name}'s generation went back");
            }
        }
        for (name, stream) in &m.streams {
            for f in &stream.files {
                let path = run.join(m.file_rel_path(name, f));
                assert!(
                    path.exists(),
                    "the manifest lists {}, which is not there",
                    path.display()
                );
            }
        }
        seen += 1;
        last = Some(m);
    }
    seen
}

#[test]
fn manifests_never_go_back_while_checkpoints_overlap_on_a_slow_disk() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let fs = FaultyFs::new();
    fs.set(Some(Fault::SlowSync(Duration::from_millis(2))));
    let c = logged_run_on(dir.path(), &fs, SEGMENT_BYTES)
        .max_buffered_rows(100)
        // Merges are committed between checkpoints, and each stores a manifest too.
        .compaction(Some(CompactOptions {
            target_rows: 1000,
            target_bytes: 1 << 30,
            min_parts: 3,
            grace: Duration::from_secs(30),
            min_age: Duration::ZERO,
        }))
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_manifests(&run, &stop));
        for i in 0..5000 {
            c.send(event(i)).unwrap();
            if i % 250 == 0 {
                // Stored by the worker itself, between the store thread's.
                c.handle().set_connected(vec![format!("producer-{i}")]);
            }
            if i % 200 == 0 {
                // Now and then the worker catches up: merges then also
                // arrive with only a manifest in flight.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
        c.checkpoint().unwrap();
        stop.store(true, Relaxed);
        watcher.join().unwrap()
    });
    assert!(seen >= 10, "the watcher saw only {seen} manifests");
    // The requested checkpoint's manifest is the newest one stored.
    let m = manifest(&run);
    assert_eq!(m.published_seq, 5000);
    assert_eq!(m.connected, vec!["producer-4750".to_string()]);
    c.close().unwrap();
    assert_gap_free(&stored_seqs(&run, None), 5000);
    let stored = stored_events(&run);
    assert_eq!(stored, (0..5000).collect::<Vec<_>>());
}

#[test]
fn a_requested_checkpoint_succeeds_only_once_its_manifest_is_stored() {
    let (mut ok, mut failed) = (0, 0);
    for after_ops in 0..48 {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let fs = FaultyFs::new();
        let c = collector_on(dir.path(), &fs);
        for i in 0..50 {
            c.send(event(i)).unwrap();
        }
        // The disk dies after `after_ops` more operations: in the parts, the
        // summary, the manifest, or after them.
        fs.set(Some(Fault::CrashAfter(after_ops)));
        match c.checkpoint() {
            Ok(()) => {
                ok += 1;
                let m = manifest(&run);
                assert_eq!(
                    m.published_seq, 50,
                    "ok after {after_ops} ops, but the manifest is behind"
                );
                assert_gap_free(&stored_seqs(&run, None), 50);
            }
            Err(_) => failed += 1,
        }
        drop(c); // the final flush fails on the dead disk, or has nothing left to do
        fs.set(None);
        recover(&run).unwrap();
        let stored = stored_events(&run);
        assert_eq!(stored, (0..50).collect::<Vec<_>>(), "after {after_ops} ops");
    }
    assert!(ok > 0 && failed > 0, "{ok} checkpoints succeeded, {failed} failed");
}

#[test]
fn a_panic_in_a_publisher_thread_fails_the_checkpoint_and_loses_nothing() {
    for thread in ["rlcollect-parts", "rlcollect-store"] {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let fs = FaultyFs::new();
        let c = collector_on(dir.path(), &fs);
        for i in 0..100 {
            c.send(event(i)).unwrap();
        }
        // A bug in the thread: the checkpoint fails (it does not hang).
        fs.set(Some(Fault::PanicIn(thread)));
        let err = c.checkpoint().unwrap_err();
        assert!(err.to_string().contains("panicked"), "{thread}: {err}");
        assert!(fs.injected() > 0);
        // The next checkpoint retries, on new helpers, with every row.
        fs.set(None);
        for i in 100..200 {
            c.send(event(i)).unwrap();
        }
        c.close().unwrap();
        let stored = stored_events(&run);
        assert_eq!(stored, (0..200).collect::<Vec<_>>(), "{thread}");
        assert_gap_free(&stored_seqs(&run, None), 200);
    }
}

#[test]
fn a_disk_dying_while_checkpoints_overlap_loses_no_logged_row() {
    for after_ops in (0..400).step_by(13) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let fs = FaultyFs::new();
        // Small segments: the log is released many times during the run.
        let c = logged_run_on(dir.path(), &fs, 4096)
            .max_buffered_rows(50)
            .build()
            .unwrap();
        // The disk dies somewhere among 20 checkpoints' parts, summaries and
        // manifests; the log (not behind the seam) keeps every row.
        fs.set(Some(Fault::CrashAfter(after_ops)));
        for i in 0..1000 {
            c.send(event(i)).unwrap();
        }
        drop(c); // the final flush fails on the dead disk, unless it came late
        fs.set(None);
        recover(&run).unwrap();
        let stored = stored_events(&run);
        assert_eq!(
            stored,
            (0..1000).collect::<Vec<_>>(),
            "the disk died after {after_ops} ops"
        );
        assert_gap_free(&stored_seqs(&run, None), 1000);
    }
}
