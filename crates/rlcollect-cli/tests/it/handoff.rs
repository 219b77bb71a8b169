//! The crash-proof hand-off (SPEC §6) with the real binary: Rust producers
//! write shared-memory rings that the sidecar drains.

use crate::*;
use rlcollect::{Producer, Record, RunDir, RunStatus, UserRecord, Value};

fn event(i: i64, k: i64) -> Record {
    Record::User(UserRecord {
        stream: "ev".into(),
        source: None,
        extra: rlcollect::Extras::new()
            .with("i", Value::Int(i))
            .with("k", Value::Int(k)),
    })
}

fn producer(out: &std::path::Path, run: &str) -> Producer {
    Producer::builder(out)
        .run_id(run)
        .binary(env!("CARGO_BIN_EXE_rlcollect"))
        .sidecar_args(["--min-free-mb", "0"])
        .join()
        .unwrap()
}

#[test]
fn a_producer_spawns_its_sidecar_and_every_record_arrives_through_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let p = producer(dir.path(), "r");
    for i in 0..20_000 {
        p.send(&event(i, 0)).unwrap();
    }
    let summary = p.close().unwrap().expect("the last producer sees the final flush");
    assert_eq!(summary.rows["ev"], 20_000);
    let run = RunDir::new(dir.path(), "r").unwrap();
    let m = manifest(run.path());
    assert_eq!(m.status, RunStatus::Complete);
    assert_gap_free(&stored_seqs(run.path(), None), 20_000);
    let is: Vec<i64> = stored_events(run.path()).iter().map(|r| r.1).collect();
    assert_eq!(is, (0..20_000).collect::<Vec<_>>());
    assert!(run.rings().is_empty(), "a drained ring of a closed producer is removed");
}
