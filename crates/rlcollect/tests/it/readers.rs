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

/// A large input (many reads, many batches): every row is stored once and in
/// input order, bad lines are rejected under their own line numbers, blank
/// and `\r\n` lines are handled, and a `hello` in the middle renames the
/// source from that line on.
#[test]
fn a_large_input_keeps_order_line_numbers_and_hello() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    let (mut expected_is, mut bad_lines) = (Vec::new(), Vec::new());
    let total = 30_000u64;
    for n in 1..=total {
        match n {
            _ if n % 997 == 0 => {
                writeln!(f, r#"{{"stream":"ev","i":{n},"broken""#).unwrap();
                bad_lines.push(n);
            }
            _ if n % 1009 == 0 => writeln!(f).unwrap(),
            _ if n % 1013 == 0 => write!(f, "{{\"stream\":\"ev\",\"i\":{n}}}\r\n")
                .map(|_| expected_is.push(n as i64))
                .unwrap(),
            20_000 => writeln!(f, r#"{{"stream":"control","op":"hello","source":"renamed"}}"#).unwrap(),
            _ => {
                writeln!(
                    f,
                    r#"{{"stream":"ev","i":{n},"pad":"{}"}}"#,
                    "p".repeat((n % 200) as usize)
                )
                .unwrap();
                expected_is.push(n as i64);
            }
        }
    }
    drop(f);
    let c = Collector::builder(tmp.path()).run_id("r").build().unwrap();
    let readers = Readers::new(c.handle(), c.run(), ReaderOptions::default(), StopGate::new());
    let (_, counts) = readers.read(std::fs::File::open(&input).unwrap(), "src", &mut OneWay);
    c.close().unwrap();
    assert_eq!(counts.lines, total);
    assert_eq!(counts.rejected, bad_lines.len() as u64);
    assert_eq!(counts.records, expected_is.len() as u64);

    let run = tmp.path().join("r");
    let stored: Vec<i64> = rlcollect::testing::stored_int_rows(&run, "ev", &["i"])
        .into_iter()
        .map(|(_, v)| v[0])
        .collect();
    assert!(stored == expected_is, "rows out of input order or missing");
    assert_eq!(rlcollect::testing::rejected_line_numbers(&run), bad_lines);
    let sources = rlcollect::testing::manifest(&run).sources;
    let after_hello = expected_is.iter().filter(|&&i| i > 20_000).count() as u64;
    assert_eq!(sources.get("renamed"), Some(&after_hello), "{sources:?}");
    assert_eq!(
        sources.get("src"),
        Some(&(expected_is.len() as u64 - after_hello)),
        "{sources:?}"
    );
}
