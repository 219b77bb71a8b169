//! Live runs into Delta tables (`RemoteCollector`, `LiveSync`) in a local
//! folder, through the same object_store code as S3
//! (tests/python/test_live_s3.py runs real sidecars against SeaweedFS).

use arrow_array::{Array, Int64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rlcollect::testing::wait_for;
use rlcollect::{Collector, CompactOptions, Record};
use rlcollect_delta::{publish, LiveSync, PublishOptions, RemoteCollector, StreamPublished};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn opts(host: &str) -> PublishOptions {
    PublishOptions {
        endpoint: None,
        host: host.into(),
    }
}

/// The actions of version `v` of the table, if it exists.
fn commit(table: &Path, v: u64) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json"))).ok()?;
    Some(text.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

/// Column `i` of a data file.
fn values_of(file: &Path) -> Vec<i64> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column_by_name("i").unwrap();
        let ints = col.as_any().downcast_ref::<Int64Array>().unwrap();
        out.extend((0..ints.len()).map(|k| ints.value(k)));
    }
    out
}

/// Rows an action's stats record.
fn rows_of(add: &Value) -> u64 {
    let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
    stats["numRecords"].as_u64().unwrap()
}

/// Replays the log version by version and checks that at every version the
/// live files hold each `i` at most once, and that a commit that removes
/// files says whether it changed data (an optimize that only moved rows
/// does not); returns the values of the last version and how many commits
/// removed files (merges).
fn replay_each_row_once(table: &Path) -> (Vec<i64>, usize) {
    let mut live = std::collections::BTreeMap::new();
    let mut merges = 0;
    let mut values = Vec::new();
    for v in 0.. {
        let Some(actions) = commit(table, v) else { break };
        let (mut rows_in, mut rows_out) = (0, 0);
        for a in &actions {
            if let Some(add) = a.get("add") {
                rows_in += rows_of(add);
                live.insert(add["path"].as_str().unwrap().to_owned(), rows_of(add));
            }
            if let Some(p) = a.pointer("/remove/path") {
                let rows = live.remove(p.as_str().unwrap());
                rows_out += rows.expect("a remove names a live file");
            }
        }
        if rows_out > 0 {
            merges += 1;
            let rewrite = rows_in == rows_out;
            let info = actions.iter().find_map(|a| a.get("commitInfo")).unwrap();
            assert_eq!(info["operation"], if rewrite { "OPTIMIZE" } else { "WRITE" });
            for a in actions.iter().filter_map(|a| a.get("add").or_else(|| a.get("remove"))) {
                assert_eq!(a["dataChange"], !rewrite, "version {v}");
            }
        }
        values = live.keys().flat_map(|p| values_of(&table.join(p))).collect();
        let distinct: BTreeSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), values.len(), "version {v} holds a row twice");
    }
    values.sort_unstable();
    (values, merges)
}

fn send_rows(c: &Collector, from: i64, to: i64) {
    for i in from..to {
        c.send(Record::from_json(format!(r#"{{"stream":"ev","i":{i}}}"#).as_bytes()).unwrap())
            .unwrap();
        if i % 10 == 9 {
            c.send(Record::from_json(br#"{"stream":"candle"}"#).unwrap()).unwrap();
        }
    }
}

#[test]
fn a_live_run_lands_during_the_run_and_merges_replace_files_in_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let compaction = CompactOptions {
        min_parts: 3,
        min_age: Duration::ZERO,
        grace: Duration::from_millis(100),
        ..CompactOptions::default()
    };
    let c = RemoteCollector::builder(lake.to_str().unwrap())
        .state_dir(tmp.path().join("state"))
        .host("h1")
        .sync_every(Duration::from_millis(50))
        .collector(move |b| b.run_id("r1").every_candles(1).compaction(Some(compaction)))
        .build()
        .unwrap();
    let table = lake.join("ev");
    for round in 0..12 {
        send_rows(&c, round * 50, round * 50 + 50);
        c.checkpoint().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        wait_for(20.0, || commit(&table, 2).is_some()),
        "parts land in the table while the run goes on"
    );
    let (summary, shipped) = c.close_within(Duration::from_secs(30)).unwrap();
    assert_eq!(summary.rows["ev"], 600);
    assert!(shipped
        .values()
        .all(|s| matches!(s, StreamPublished::Committed { .. } | StreamPublished::UpToDate)));
    let (values, merges) = replay_each_row_once(&table);
    assert_eq!(values, (0..600).collect::<Vec<_>>(), "every row once");
    assert!(merges >= 1, "the local merges reached the table as remove+add commits");
}

#[test]
fn a_sync_cut_short_is_finished_exactly_once_by_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let to = lake.to_str().unwrap();
    let c = Collector::builder(tmp.path().join("state"))
        .run_id("r2")
        .every_candles(2)
        .build()
        .unwrap();
    let sync = LiveSync::start(c.run_dir(), to, &opts("h2"), Duration::from_millis(20)).unwrap();
    send_rows(&c, 0, 200);
    let table = lake.join("ev");
    assert!(wait_for(20.0, || commit(&table, 0).is_some()));
    drop(sync); // as if killed: no final round
    send_rows(&c, 200, 300);
    let run_dir = c.run_dir().to_owned();
    c.close().unwrap();
    // An upload whose commit never happened: the next sync overwrites it.
    let manifest = rlcollect::RunDir::at(&run_dir).unwrap().load_manifest().unwrap();
    let last = manifest.streams["ev"]
        .files
        .last()
        .unwrap()
        .path
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    std::fs::create_dir_all(table.join("run_id=r2")).unwrap();
    std::fs::write(table.join(format!("run_id=r2/h2-{last}")), b"half an upload").unwrap();

    let done = publish(&run_dir, to, &opts("h2")).unwrap();
    assert!(matches!(done["ev"], StreamPublished::Committed { .. }), "{done:?}");
    assert_eq!(
        publish(&run_dir, to, &opts("h2")).unwrap()["ev"],
        StreamPublished::UpToDate
    );
    let (values, _) = replay_each_row_once(&table);
    assert_eq!(values, (0..300).collect::<Vec<_>>());
}

#[test]
fn the_core_collector_refuses_an_object_store_and_names_the_way() {
    let err = Collector::builder("s3://bucket/prefix").build().unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("RemoteCollector"), "{err}");
}
