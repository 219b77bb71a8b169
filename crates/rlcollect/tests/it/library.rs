//! The linked library: `Collector`, `Handle`, checkpoints, formats, lock.

use crate::*;
use rlcollect::*;
use std::time::Duration;

fn candle() -> Record {
    Record::Candle(Candle::default())
}

#[test]
fn every_n_candles_gives_one_part_per_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path())
        .run_id("r")
        .every_candles(10)
        .build()
        .unwrap();
    for i in 0..100 {
        c.send(decision(i, "A")).unwrap();
        if i % 10 == 9 {
            for _ in 0..10 {
                c.send(candle()).unwrap();
            }
        }
    }
    let summary = c.close().unwrap();
    assert_eq!(summary.candles, 100);
    let run = dir.path().join("r");
    let m = manifest(&run);
    assert_eq!(m.streams["model_decisions"].files.len(), 10, "one part per 10 candles");
    assert_eq!(parquet_files(&run.join("model_decisions")).len(), 10);
    assert_eq!(m.checkpoints, 10);
    for (k, f) in m.streams["model_decisions"].files.iter().enumerate() {
        assert_eq!(f.path, format!("model_decisions/part-{:06}.parquet", k + 1));
        assert_eq!(
            (f.first_seq, f.last_seq, f.rows),
            (k as u64 * 10, k as u64 * 10 + 9, 10)
        );
    }
    assert_gap_free(&stored_seqs(&run, None), 100);
}

#[test]
fn time_based_checkpoint_happens_without_candles() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path())
        .run_id("r")
        .every(Duration::from_millis(200))
        .build()
        .unwrap();
    for i in 0..5 {
        c.send(decision(i, "A")).unwrap();
    }
    let parts = dir.path().join("r/model_decisions");
    assert!(
        wait_for(10.0, || !parquet_files(&parts).is_empty()),
        "a part must appear while the run goes on"
    );
    assert!(wait_for(5.0, || c.stats().rows_buffered == 0));
    c.close().unwrap();
}

#[test]
fn four_producer_threads_store_every_seq_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path())
        .run_id("r")
        .max_buffered_rows(50_000)
        .channel_capacity(1024)
        .build()
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = c.handle();
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    h.send(decision(i, &format!("T{t}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let summary = c.close().unwrap();
    assert_eq!(summary.rows["model_decisions"], 400_000);
    let run = dir.path().join("r");
    assert_gap_free(&stored_seqs(&run, None), 400_000);
    assert!(
        manifest(&run).streams["model_decisions"].files.len() >= 8,
        "the row bound must checkpoint along the way"
    );
}

#[test]
fn close_and_drop_both_flush() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Collector::builder(dir.path()).run_id("dropped").build().unwrap();
        for i in 0..10 {
            c.send(decision(i, "A")).unwrap();
        }
        // dropped without close()
    }
    let run = dir.path().join("dropped");
    let m = manifest(&run);
    assert_eq!(m.status, RunStatus::Complete);
    assert_gap_free(&stored_seqs(&run, None), 10);
    assert!(RunDir::at(&run).unwrap().summary_path().exists());

    let c = Collector::builder(dir.path()).run_id("closed").build().unwrap();
    c.send(decision(0, "A")).unwrap();
    let s = c.close().unwrap();
    assert_eq!(s.rows["model_decisions"], 1);
    assert_eq!(manifest(&dir.path().join("closed")).status, RunStatus::Complete);
    assert_eq!(
        std::fs::read_link(RunDir::latest(dir.path())).unwrap(),
        std::path::Path::new("closed")
    );
}

#[test]
fn second_collector_on_the_same_run_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Collector::builder(dir.path()).run_id("r").build().unwrap();
    let started = std::time::Instant::now();
    let err = Collector::builder(dir.path()).run_id("r").build().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, Error::RunLocked { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    first.close().unwrap();
    // Once closed, the run can be continued, and numbering goes on.
    let again = Collector::builder(dir.path()).run_id("r").build().unwrap();
    again.send(decision(1, "A")).unwrap();
    again.close().unwrap();
    assert_gap_free(&stored_seqs(&dir.path().join("r"), None), 1);
}

#[test]
fn a_resumed_run_continues_seq_parts_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
        for i in 0..5 {
            c.send(decision(i, "A")).unwrap();
        }
        let s = c.close().unwrap();
        assert_eq!(s.model_decisions.count, 5 * (round + 1));
    }
    let run = dir.path().join("r");
    let m = manifest(&run);
    assert_eq!(
        m.streams["model_decisions"].files[1].path,
        "model_decisions/part-000002.parquet"
    );
    assert_gap_free(&stored_seqs(&run, None), 10);
}

#[test]
fn csv_and_both_formats_write_the_same_rows() {
    for (format, want_parquet) in [(Format::Csv, false), (Format::Both, true)] {
        let dir = tempfile::tempdir().unwrap();
        let c = Collector::builder(dir.path())
            .run_id("r")
            .format(format)
            .build()
            .unwrap();
        for i in 0..3 {
            c.send(decision(i, "A,B")).unwrap();
        }
        c.close().unwrap();
        let run = dir.path().join("r");
        let files = &manifest(&run).streams["model_decisions"].files;
        assert_eq!(files.iter().any(|f| f.format == "parquet"), want_parquet);
        let csv = files.iter().find(|f| f.format == "csv").expect("a csv part");
        let text = std::fs::read_to_string(run.join(&csv.path)).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("ts,pair,episode,step,action"), "{header}");
        assert!(header.ends_with("_seq,_source,_ingested_at"), "{header}");
        let rows: Vec<_> = lines.collect();
        assert_eq!(rows.len(), 3);
        assert!(
            rows[0].starts_with("2023-11-14T22:13:20.000+00:00,\"A,B\""),
            "{}",
            rows[0]
        );
    }
}

#[test]
fn schema_change_mid_run_starts_a_new_part_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    let user = |i: i64, extra: Extras| {
        Record::User(UserRecord {
            stream: "metrics".into(),
            source: None,
            extra: extra.with("i", Value::Int(i)),
        })
    };
    c.send(user(0, Extras::new().with("loss", Value::Float(0.5)))).unwrap();
    c.send(user(1, Extras::new().with("loss", Value::Float(0.4)))).unwrap();
    c.send(user(
        2,
        Extras::new()
            .with("loss", Value::Float(0.3))
            .with("lr", Value::Float(1e-3)),
    ))
    .unwrap();
    c.send(user(3, Extras::new().with("lr", Value::Str("auto".into()))))
        .unwrap();
    c.close().unwrap();
    let run = dir.path().join("r");
    let m = manifest(&run);
    let files = &m.streams["metrics"].files;
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!((files[0].rows, files[1].rows, files[2].rows), (2, 1, 1));
    let first = read_parquet(&run.join(&files[0].path));
    assert!(first[0].column_by_name("lr").is_none());
    let last = read_parquet(&run.join(&files[2].path));
    assert_eq!(
        last[0].column_by_name("lr").unwrap().data_type(),
        &arrow_schema::DataType::Utf8
    );
    let schema: Vec<_> = m.streams["metrics"]
        .schema
        .iter()
        .map(|f| (f.name.as_str(), f.ty))
        .collect();
    assert!(schema.contains(&("lr", ColumnType::String)) && schema.contains(&("loss", ColumnType::Float64)));
    assert_gap_free(&stored_seqs(&run, None), 4);
}

#[test]
fn footer_records_the_seq_range() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    for i in 0..7 {
        c.send(decision(i, "A")).unwrap();
    }
    c.close().unwrap();
    let path = dir.path().join("r/model_decisions/part-000001.parquet");
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    use parquet::file::reader::FileReader;
    let kv = reader.metadata().file_metadata().key_value_metadata().unwrap().clone();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(get(META_FIRST_SEQ).as_deref(), Some("0"));
    assert_eq!(get(META_LAST_SEQ).as_deref(), Some("6"));
    assert_eq!(get(META_RUN_ID).as_deref(), Some("r"));
}

#[test]
fn try_send_reports_a_full_channel_and_send_applies_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path())
        .run_id("r")
        .channel_capacity(1)
        .build()
        .unwrap();
    let h = c.handle();
    let mut full = false;
    for i in 0..10_000 {
        if let Err(crossbeam_channel::TrySendError::Full(r)) = h.try_send(decision(i, "A")) {
            h.send(r).unwrap(); // blocks until there is room, loses nothing
            full = true;
        }
    }
    assert!(full, "a channel of capacity 1 must fill under a tight loop");
    assert_eq!(c.close().unwrap().rows["model_decisions"], 10_000);
}
