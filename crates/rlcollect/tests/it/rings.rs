//! The hand-off's exactly-once rule (SPEC §6) against crashes: a ring read
//! by a collector with a write-ahead log, the disk dying at any filesystem
//! operation, recovery, and the ring adopted again from where it is durable.

use crate::*;
use proptest::prelude::*;
use rlcollect::fs::{Fault, FaultyFs};
use rlcollect::ingest::{ReadEnd, Readers, StopGate};
use rlcollect::*;
use std::sync::Arc;
use std::time::Duration;

/// `i` of every stored `ev` row, in `_seq` order.
fn stored_is(run: &std::path::Path) -> Vec<i64> {
    stored_int_rows(run, "ev", &["i"])
        .into_iter()
        .map(|(_, v)| v[0])
        .collect()
}

#[derive(Debug, Clone)]
struct Session {
    /// Frames appended to the ring before the collector reads it.
    frames: u16,
    /// A checkpoint request follows every this many frames (None: never):
    /// a checkpoint then publishes part of a chunk the reader took in.
    checkpoint_every: Option<u16>,
    /// The disk dies after this many filesystem operations (None: a clean close).
    crash_after: Option<u64>,
}

fn session() -> impl Strategy<Value = Session> {
    (
        0u16..200,
        proptest::option::weighted(0.5, 1u16..80),
        proptest::option::weighted(0.7, 0u64..30),
    )
        .prop_map(|(frames, checkpoint_every, crash_after)| Session {
            frames,
            checkpoint_every,
            crash_after,
        })
}

/// One collector's life: it adopts the ring (reading every published frame)
/// and ends cleanly or with a dead disk, then recovery.
fn live(dir: &std::path::Path, fs: &FaultyFs, ring: &str, crash_after: Option<u64>) {
    fs.set(None);
    let c = Collector::builder(dir)
        .run_id("r")
        .filesystem(Arc::new(fs.clone()))
        .wal(WalOptions {
            fsync_every: Duration::from_millis(2),
            segment_bytes: 4096,
        })
        .max_buffered_rows(37)
        .drop_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    if let Some(n) = crash_after {
        fs.set(Some(Fault::CrashAfter(n)));
    }
    let readers = Readers::new(c.handle(), c.run(), Default::default(), StopGate::new());
    let (end, _) = readers.adopt(ring, false).unwrap();
    assert_eq!(
        end,
        ReadEnd::Stopped,
        "the producer lives on: the ring is left, not ended"
    );
    match crash_after {
        None => {
            c.close().unwrap();
        }
        Some(_) => {
            drop(c); // the final flush fails on the dead disk
            fs.set(None);
            recover(&dir.join("r")).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever dies when, every frame the producer published is stored
    /// exactly once, in order.
    #[test]
    fn every_published_frame_is_stored_exactly_once_across_crashes(sessions in proptest::collection::vec(session(), 1..6)) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path(), "r").unwrap();
        std::fs::create_dir_all(run.path()).unwrap();
        let mut ring = TestRing::create(&run, 64 << 10, "engine");
        let fs = FaultyFs::new();
        let mut next_i = 0i64;
        for s in &sessions {
            for n in 1..=s.frames {
                let line = format!(r#"{{"stream":"ev","i":{next_i},"k":0}}"#);
                if !ring.append(line.as_bytes()) {
                    break; // full: the next collector makes room
                }
                next_i += 1;
                if s.checkpoint_every.is_some_and(|k| n % k == 0)
                    && !ring.append(br#"{"stream":"control","op":"checkpoint"}"#)
                {
                    break;
                }
            }
            live(dir.path(), &fs, ring.name(), s.crash_after);
        }
        live(dir.path(), &fs, ring.name(), None);
        prop_assert_eq!(stored_is(run.path()), (0..next_i).collect::<Vec<_>>());
        assert_gap_free(&stored_seqs(run.path(), None), next_i as u64);
        if next_i > 0 {
            let m = manifest(run.path());
            prop_assert!(m.rings.contains_key(ring.name()), "a ring read from is in the manifest: {:?}", m.rings);
        }
    }
}

#[test]
fn a_closed_ring_whose_rows_are_published_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path(), "r").unwrap();
    std::fs::create_dir_all(run.path()).unwrap();
    let mut ring = TestRing::create(&run, 64 << 10, "engine");
    for i in 0..100 {
        assert!(ring.append(format!(r#"{{"stream":"ev","i":{i},"k":0}}"#).as_bytes()));
    }
    ring.close();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    let readers = Readers::new(c.handle(), c.run(), Default::default(), StopGate::new());
    let (end, counts) = readers.adopt(ring.name(), true).unwrap();
    assert_eq!((end, counts.records), (ReadEnd::Eof, 100));
    c.close().unwrap();
    assert!(run.rings().is_empty(), "ended and published: the file is gone");
    assert!(!manifest(run.path()).rings.contains_key(ring.name()));
    assert_eq!(stored_is(run.path()), (0..100).collect::<Vec<_>>());
}
