//! Publishing runs into Delta tables in a local folder (the same code path
//! as S3 through `object_store`; tests/python/test_publish_s3.py runs it
//! against a real SeaweedFS and reads with `deltalake` and polars).

use rlcollect::{Collector, Record, RunStatus};
use rlcollect_delta::{publish, PublishOptions, StreamPublished};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A finished run `id` under `out` with `n` rows of stream `ev`, each line
/// built by `line(i)`.
fn run(out: &Path, id: &str, n: usize, line: impl Fn(usize) -> String) -> PathBuf {
    let c = Collector::builder(out).run_id(id).build().unwrap();
    for i in 0..n {
        c.send(Record::from_json(line(i).as_bytes()).unwrap()).unwrap();
        if i % 10 == 9 {
            c.send(Record::from_json(br#"{"stream":"candle"}"#).unwrap()).unwrap();
        }
    }
    c.close().unwrap();
    out.join(id)
}

fn opts(host: &str) -> PublishOptions {
    PublishOptions {
        endpoint: None,
        host: host.into(),
    }
}

/// Every action of the table's log, version by version.
fn log(table: &Path) -> Vec<Vec<Value>> {
    let mut versions = Vec::new();
    for v in 0.. {
        let Ok(text) = std::fs::read_to_string(table.join(format!("_delta_log/{v:020}.json"))) else {
            return versions;
        };
        versions.push(text.lines().map(|l| serde_json::from_str(l).unwrap()).collect());
    }
    unreachable!()
}

/// Rows the table's `add` actions hold, per run_id, and that every named
/// file exists and reads with that many rows.
fn rows_by_run(table: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut rows = std::collections::BTreeMap::new();
    for action in log(table).into_iter().flatten() {
        let Some(add) = action.get("add") else { continue };
        let file = std::fs::File::open(table.join(add["path"].as_str().unwrap())).unwrap();
        let meta = parquet::file::reader::SerializedFileReader::new(file).unwrap();
        let n = parquet::file::reader::FileReader::metadata(&meta)
            .file_metadata()
            .num_rows() as u64;
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"].as_u64(), Some(n));
        *rows
            .entry(add["partitionValues"]["run_id"].as_str().unwrap().to_owned())
            .or_default() += n;
    }
    rows
}

#[test]
fn runs_of_two_hosts_share_one_table_once_each_and_again_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("lake");
    let a = run(&tmp.path().join("a"), "r1", 50, |i| {
        format!(r#"{{"stream":"ev","i":{i}}}"#)
    });
    let b = run(&tmp.path().join("b"), "r2", 30, |i| {
        format!(r#"{{"stream":"ev","i":{i}}}"#)
    });
    let to = dest.to_str().unwrap();
    let first = publish(&a, to, &opts("hostA")).unwrap();
    assert!(
        matches!(
            first["ev"],
            StreamPublished::Committed {
                rows: 50,
                version: 0,
                ..
            }
        ),
        "{first:?}"
    );
    let second = publish(&b, to, &opts("hostB")).unwrap();
    assert!(
        matches!(
            second["ev"],
            StreamPublished::Committed {
                rows: 30,
                version: 1,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(
        publish(&a, to, &opts("hostA")).unwrap()["ev"],
        StreamPublished::UpToDate
    );
    let table = dest.join("ev");
    assert_eq!(log(&table).len(), 2, "the no-op committed nothing");
    let rows = rows_by_run(&table);
    assert_eq!(rows, [("r1".to_string(), 50), ("r2".to_string(), 30)].into());
    let v0 = &log(&table)[0];
    assert_eq!(v0[0]["protocol"]["minReaderVersion"], 1);
    assert_eq!(v0[1]["metaData"]["partitionColumns"][0], "run_id");
}

#[test]
fn a_new_column_grows_the_schema_and_a_wider_type_is_refused_without_a_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("lake");
    let to = dest.to_str().unwrap();
    let ints = run(&tmp.path().join("a"), "r1", 20, |i| {
        format!(r#"{{"stream":"ev","x":{i}}}"#)
    });
    publish(&ints, to, &opts("h")).unwrap();
    let more = run(&tmp.path().join("b"), "r2", 20, |i| {
        format!(r#"{{"stream":"ev","x":{i},"y":"t{i}"}}"#)
    });
    publish(&more, to, &opts("h")).unwrap();
    let versions = log(&dest.join("ev"));
    let schema = versions[1][0]["metaData"]["schemaString"].as_str().unwrap();
    assert!(schema.contains(r#""name":"y","type":"string""#), "{schema}");
    assert_eq!(versions[1][0]["metaData"]["id"], versions[0][1]["metaData"]["id"]);
    let floats = run(&tmp.path().join("c"), "r3", 20, |i| {
        format!(r#"{{"stream":"ev","x":{i}.5}}"#)
    });
    let err = publish(&floats, to, &opts("h")).unwrap_err().to_string();
    assert!(err.contains("column x is long in the table but double"), "{err}");
    assert_eq!(log(&dest.join("ev")).len(), 2, "nothing committed");
}

#[test]
fn concurrent_publishers_all_land_in_contiguous_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("lake");
    let runs: Vec<PathBuf> = (0..6)
        .map(|k| {
            run(&tmp.path().join(format!("o{k}")), &format!("r{k}"), 10 + k, |i| {
                format!(r#"{{"stream":"ev","i":{i}}}"#)
            })
        })
        .collect();
    std::thread::scope(|s| {
        for (k, r) in runs.iter().enumerate() {
            let to = dest.to_str().unwrap();
            s.spawn(move || publish(r, to, &opts(&format!("h{k}"))).unwrap());
        }
    });
    let table = dest.join("ev");
    assert_eq!(log(&table).len(), 6, "one version per run, none lost in a race");
    let rows = rows_by_run(&table);
    assert_eq!(rows.len(), 6);
    for k in 0..6 {
        assert_eq!(rows[&format!("r{k}")], 10 + k as u64);
    }
}

#[test]
fn a_run_that_did_not_end_or_a_bad_destination_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let r = run(&tmp.path().join("a"), "r1", 10, |i| {
        format!(r#"{{"stream":"ev","i":{i}}}"#)
    });
    let err = publish(&r, "gs://bucket/x", &opts("h")).unwrap_err().to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
    let err = publish(&r, "s3:///x", &opts("h")).unwrap_err().to_string();
    assert!(err.contains("no bucket"), "{err}");
    // A run marked running (a crash not recovered) is not published.
    let manifest = r.join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"complete\"", "\"running\"");
    std::fs::write(&manifest, text).unwrap();
    let err = publish(&r, tmp.path().join("lake").to_str().unwrap(), &opts("h"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rlcollect recover"), "{err}");
    let _ = RunStatus::Running;
}

#[test]
fn every_tenth_version_is_checkpointed_and_the_log_reads_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("lake");
    let to = dest.to_str().unwrap();
    let runs: Vec<PathBuf> = (0..12)
        .map(|k| {
            run(&tmp.path().join(format!("o{k}")), &format!("r{k}"), 5 + k, |i| {
                format!(r#"{{"stream":"ev","i":{i}}}"#)
            })
        })
        .collect();
    for (k, r) in runs.iter().enumerate().take(11) {
        publish(r, to, &opts("h")).unwrap();
        let _ = k;
    }
    let log_dir = dest.join("ev/_delta_log");
    let last: Value =
        serde_json::from_str(&std::fs::read_to_string(log_dir.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 10);
    assert_eq!(last["size"], 13, "protocol, metaData and 11 adds");
    assert!(log_dir.join("00000000000000000010.checkpoint.parquet").exists());
    // The commits up to the checkpoint are cleaned up, as a log retention would:
    // what the table holds is read from the checkpoint.
    for v in 0..=10 {
        std::fs::remove_file(log_dir.join(format!("{v:020}.json"))).unwrap();
    }
    assert_eq!(
        publish(&runs[3], to, &opts("h")).unwrap()["ev"],
        StreamPublished::UpToDate
    );
    let last_run = publish(&runs[11], to, &opts("h")).unwrap();
    assert!(
        matches!(
            last_run["ev"],
            StreamPublished::Committed {
                version: 11,
                rows: 16,
                ..
            }
        ),
        "{last_run:?}"
    );
}
