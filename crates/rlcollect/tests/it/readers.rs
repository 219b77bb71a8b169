//! A sidecar reader's batches (`ingest::Readers`): how much input one chunk
//! holds, seen in the write-ahead log, where each chunk is one frame.

use rlcollect::ingest::{OneWay, ReaderOptions, Readers, StopGate};
use rlcollect::testing::{stored_seqs, wait_for, wal_frame_rows};
use rlcollect::*;
use std::io::Write;
use std::time::Duration;

const LINES: u32 = 400;

/// Reads `LINES` lines of about 8 KB each (3.2 MB, many reads)
/// with `opts`, and returns the rows of each log frame once all are logged.
fn frames_after_reading(opts: ReaderOptions) -> Vec<u32> {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    let mut f = std::fs::File::create(&input).unwrap();
    let pad = "x".repeat(8000);
    for i in 0..LINES {
        writeln!(f, r#"{{"stream":"ev","i":{i},"pad":"{pad}"}}"#).unwrap();
    }
    drop(f);
    let c = Collector::builder(tmp.path())
        .run_id("r")
        .wal(WalOptions {
            fsync_every: Duration::from_millis(5),
            ..WalOptions::default()
        })
        .build()
        .unwrap();
    let readers = Readers::new(c.handle(), c.run(), opts, StopGate::new());
    let (_, counts) = readers.read(std::fs::File::open(&input).unwrap(), "src", &mut OneWay);
    assert_eq!(counts.records, u64::from(LINES));
    let run = tmp.path().join("r");
    let mut frames = Vec::new();
    let logged = wait_for(10.0, || {
        frames = wal_frame_rows(&run);
        frames.iter().sum::<u32>() == LINES
    });
    assert!(logged, "every line logged: {frames:?}");
    c.close().unwrap();
    assert_eq!(stored_seqs(&run, Some("ev")).len(), LINES as usize);
    frames
}

#[test]
fn a_reader_hands_over_a_batch_once_it_holds_its_share_of_the_budget() {
    // A budget below the smallest share: one reader's batches are full at
    // MIN_BATCH_BYTES.
    let small = frames_after_reading(ReaderOptions {
        batch_budget: 16 * 1024,
        ..ReaderOptions::default()
    });
    // Lines of 8,03x bytes: the bound is checked after each line, and the
    // 9th reaches 64 KiB.
    assert_eq!(rlcollect::ingest::MIN_BATCH_BYTES, 64 * 1024);
    assert!(small.iter().all(|&rows| rows <= 9), "{small:?}");
    // With the default budget the same input goes over in larger batches,
    // so the bound is what cut them.
    let default = frames_after_reading(ReaderOptions::default());
    assert!(default.iter().any(|&rows| rows > 9), "{default:?}");
}
