//! Compaction: merges while the run goes on and at its end, readers that
//! glob the stream folder, old-layout runs, idempotence, and the crash model
//! with every step of a compaction.

use crate::*;
use proptest::prelude::*;
use rlcollect::fs::{Fault, FaultyFs};
use rlcollect::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn event(i: i64) -> Record {
    Record::User(UserRecord {
        stream: "ev".into(),
        source: None,
        extra: Extras::new().with("i", Value::Int(i)),
    })
}

/// Small targets, so a few dozen rows already merge.
fn small(grace_ms: u64) -> CompactOptions {
    CompactOptions {
        target_rows: 200,
        target_bytes: 1 << 30,
        min_parts: 3,
        grace: Duration::from_millis(grace_ms),
        min_age: Duration::ZERO,
    }
}

/// Every `_seq` in `RUN/ev/*.parquet`, read the way DuckDB or polars glob it
/// (through the stream's symlink, no manifest), sorted.
/// A listed file that is gone when opened (a swap came between the listing
/// and the open) is the one failure allowed, as a reader sees it: retry.
fn globbed_seqs(run: &Path) -> Vec<u64> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::UInt64Type;
    'retry: loop {
        let mut seqs = Vec::new();
        for file in parquet_files(&run.join("ev")) {
            // Opened once: an open file stays readable whatever happens to its name.
            let Ok(file) = std::fs::File::open(&file) else {
                continue 'retry;
            };
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for b in reader.map(Result::unwrap) {
                seqs.extend(
                    b.column_by_name("_seq")
                        .unwrap()
                        .as_primitive::<UInt64Type>()
                        .values()
                        .iter(),
                );
            }
        }
        seqs.sort_unstable();
        return seqs;
    }
}

/// The `i` of every stored `ev` row, in `_seq` order.
fn stored_i(run: &Path) -> Vec<i64> {
    stored_int_rows(run, "ev", &["i"])
        .into_iter()
        .map(|(_, v)| v[0])
        .collect()
}

#[test]
fn parts_merge_while_the_run_goes_on_and_fully_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let c = Collector::builder(dir.path())
        .run_id("r")
        // Readers below load the manifest, then open its files: a replaced
        // generation must outlive that (the grace), or a swap in between
        // removes what they were about to open.
        .compaction(Some(small(5_000)))
        .build()
        .unwrap();
    let mut merged_seen = false;
    for i in 0..600 {
        c.send(event(i)).unwrap();
        if i % 10 == 9 {
            c.checkpoint().unwrap();
            let published = manifest(&run).published_seq;
            // The manifest and the glob both hold every published row once,
            // whenever a merge was committed.
            assert_gap_free(&stored_seqs(&run, None), published);
            let globbed = globbed_seqs(&run);
            assert!(globbed.windows(2).all(|w| w[0] < w[1]), "no row twice in the glob");
            assert!(globbed.len() as u64 <= published);
            merged_seen |= manifest(&run).streams["ev"].dir.is_some();
        }
    }
    assert!(merged_seen, "the background compactor merged during the run");
    c.close().unwrap();
    let m = manifest(&run);
    let files = &m.streams["ev"].files;
    // How many parts each live merge took depends on how fast the loop ran
    // against the compactor (a merge of 19 parts leaves 190 rows, which no
    // neighbour joins), so the layout is checked, not a file count: files
    // within the target, and no two neighbours that would fit it together.
    assert!(
        files.iter().all(|f| f.path.starts_with("ev/part-") && f.rows <= 200),
        "{files:?}"
    );
    assert!(
        files.windows(2).all(|w| w[0].rows + w[1].rows > 200),
        "the final merge packs neighbours: {files:?}"
    );
    assert!(files.len() <= 5, "{files:?}");
    assert_eq!(stored_i(&run), (0..600).collect::<Vec<_>>());
    assert_gap_free(&globbed_seqs(&run), 600);
    let link = std::fs::read_link(run.join("ev")).unwrap();
    assert_eq!(Some(link.to_str().unwrap()), m.streams["ev"].dir.as_deref());
    let gens: Vec<_> = std::fs::read_dir(run.join(".streams/ev")).unwrap().flatten().collect();
    assert_eq!(gens.len(), 1, "replaced generations are gone after the final grace");
}

#[test]
fn merged_files_keep_seq_order_and_widen_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    // `v` is an int, then a float, then text: three schemas, three parts.
    for (i, v) in [Value::Int(1), Value::Float(2.5), Value::Str("x".into())]
        .into_iter()
        .enumerate()
    {
        c.send(Record::User(UserRecord {
            stream: "ev".into(),
            source: None,
            extra: Extras::new().with("i", Value::Int(i as i64)).with("v", v),
        }))
        .unwrap();
        c.checkpoint().unwrap();
    }
    c.close().unwrap();
    compact_run(&run, &small(0)).unwrap();
    let m = manifest(&run);
    assert_eq!(m.streams["ev"].files.len(), 1);
    assert_eq!(m.streams["ev"].files[0].path, "ev/part-000001-000003.parquet");
    let batches = read_parquet(&run.join("ev/part-000001-000003.parquet"));
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("v").unwrap().data_type(),
        &arrow_schema::DataType::Utf8
    );
    assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() == 3);
    assert_eq!(stored_i(&run), vec![0, 1, 2]);
}

/// Rows in each data page of each column of `path`, row group by row group.
fn page_rows(path: &Path) -> Vec<Vec<usize>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut groups = Vec::new();
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).unwrap();
        let mut pages = Vec::new();
        for c in 0..group.num_columns() {
            let mut column = group.get_column_page_reader(c).unwrap();
            while let Some(page) = column.get_next_page().unwrap() {
                if !matches!(page, parquet::column::page::Page::DictionaryPage { .. }) {
                    pages.push(page.num_values() as usize);
                }
            }
        }
        groups.push(pages);
    }
    groups
}

#[test]
fn merged_files_have_row_groups_of_131072_rows_and_pages_of_fewer_than_16384() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    finished_run(dir.path(), 140_000, 35_000);
    let opts = CompactOptions {
        grace: Duration::ZERO,
        ..CompactOptions::default()
    };
    compact_run(&run, &opts).unwrap();
    let m = manifest(&run);
    assert_eq!(m.streams["ev"].files.len(), 1);
    let groups = page_rows(&run.join(&m.streams["ev"].files[0].path));
    assert_eq!(groups.len(), 2, "131,072 rows, then the rest");
    // Pages of 8,192 rows; one that starts in one part's rows and ends in the
    // next can hold up to twice that, less one (the parquet crate checks the
    // limit between slices of each write). Its default would be 20,000.
    for pages in &groups {
        assert!(pages.iter().all(|&n| n < 16_384), "{pages:?}");
    }
    let columns = read_parquet(&run.join(&m.streams["ev"].files[0].path))[0].num_columns();
    let rows: usize = groups.iter().flatten().sum();
    assert_eq!(rows, 140_000 * columns, "every row of every column is in a page");
}

#[test]
fn an_old_layout_run_is_compacted_and_compacting_twice_changes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    for i in 0..500 {
        c.send(event(i)).unwrap();
        if i % 7 == 6 {
            c.checkpoint().unwrap();
        }
    }
    c.close().unwrap();
    assert!(
        run.join("ev").symlink_metadata().unwrap().is_dir(),
        "compaction off: a plain folder"
    );
    let before = manifest(&run).streams["ev"].files.len();
    let report = compact_run(&run, &small(0)).unwrap();
    assert_eq!(report.files["ev"].0, before);
    assert!(report.files["ev"].1 <= 3, "{report:?}");
    assert!(run.join("ev").symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(stored_i(&run), (0..500).collect::<Vec<_>>());
    assert_gap_free(&globbed_seqs(&run), 500);
    for _ in 0..2 {
        compact_run(&run, &small(0)).unwrap();
        assert_eq!(stored_i(&run), (0..500).collect::<Vec<_>>());
        assert_gap_free(&globbed_seqs(&run), 500);
    }
    // The run goes on after compaction: new parts land in the generation.
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    for i in 500..520 {
        c.send(event(i)).unwrap();
    }
    c.close().unwrap();
    assert_eq!(stored_i(&run), (0..520).collect::<Vec<_>>());
    assert_gap_free(&globbed_seqs(&run), 520);
}

#[test]
fn a_live_run_refuses_offline_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    let err = compact_run(&dir.path().join("r"), &small(0)).unwrap_err();
    assert!(matches!(err, Error::RunLocked { .. }), "{err}");
    c.close().unwrap();
}

/// A finished run of `n` rows in parts of `every` rows, compaction off.
fn finished_run(dir: &Path, n: i64, every: i64) {
    let c = Collector::builder(dir).run_id("r").build().unwrap();
    for i in 0..n {
        c.send(event(i)).unwrap();
        if i % every == every - 1 {
            c.checkpoint().unwrap();
        }
    }
    c.close().unwrap();
}

#[test]
fn offline_compaction_cut_at_every_filesystem_operation_loses_and_doubles_nothing() {
    let mut op = 0;
    loop {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        finished_run(dir.path(), 300, 20);
        // Two passes: the first converts the plain folder, the second moves
        // from one generation to the next.
        if op % 2 == 1 {
            compact_run(
                &run,
                &CompactOptions {
                    target_rows: 100,
                    ..small(0)
                },
            )
            .unwrap();
        }
        let fs = FaultyFs::new();
        fs.set(Some(Fault::CrashAfter(op / 2)));
        let result = compact_run_with(&run, &small(0), &fs);
        fs.set(None);
        // Between the crash and recovery, globbing readers never see a row twice.
        let globbed = globbed_seqs(&run);
        assert!(globbed.windows(2).all(|w| w[0] < w[1]), "op {op}: a row twice");
        assert!(globbed.len() <= 300, "op {op}");
        recover(&run).unwrap();
        assert_eq!(stored_i(&run), (0..300).collect::<Vec<_>>(), "op {op}");
        assert_gap_free(&globbed_seqs(&run), 300);
        // Only the manifest's generation is left.
        if let Some(gen) = manifest(&run).streams["ev"].dir.clone() {
            let gens: Vec<_> = std::fs::read_dir(run.join(".streams/ev")).unwrap().flatten().collect();
            assert_eq!(gens.len(), 1, "op {op}: {gen}");
        }
        if result.is_ok() && op % 2 == 1 {
            break;
        }
        op += 1;
        assert!(op < 400, "compaction never finished");
    }
}

/// One session of the crash model: records (true = checkpoint after it),
/// and the filesystem operation after which the disk dies (`None`: a clean close).
#[derive(Debug, Clone)]
struct Session {
    records: Vec<bool>,
    crash_after: Option<u64>,
    /// Run `compact_run` after the session, the disk dying after this many operations.
    offline_crash: Option<u64>,
}

fn session() -> impl Strategy<Value = Session> {
    (
        proptest::collection::vec(proptest::bool::weighted(0.15), 0..150),
        proptest::option::weighted(0.7, 0u64..120),
        proptest::option::weighted(0.3, 0u64..60),
    )
        .prop_map(|(records, crash_after, offline_crash)| Session {
            records,
            crash_after,
            offline_crash,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Sessions with background compaction on, the disk dying at any
    /// filesystem operation (a part, a merge, a link, the manifest, the
    /// swap, a removal), offline compactions dying too, then recovery: every
    /// row sent is stored exactly once, through the manifest and through a glob.
    #[test]
    fn crash_model_with_compaction(sessions in proptest::collection::vec(session(), 1..5)) {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        let fs = FaultyFs::new();
        let mut next = 0i64;
        for s in &sessions {
            fs.set(None);
            let c = Collector::builder(dir.path())
                .run_id("r")
                .filesystem(Arc::new(fs.clone()))
                .wal(WalOptions { fsync_every: Duration::ZERO, segment_bytes: 4096 })
                .compaction(Some(CompactOptions { target_rows: 40, min_parts: 2, ..small(0) }))
                .max_buffered_rows(23)
                .drop_timeout(Duration::from_secs(20))
                .build()
                .unwrap();
            prop_assert_eq!(stored_i(&run), (0..next).collect::<Vec<_>>());
            fs.set(s.crash_after.map(Fault::CrashAfter));
            for checkpoint in &s.records {
                c.send(event(next)).unwrap();
                next += 1;
                if *checkpoint {
                    let _ = c.checkpoint();
                    // Give the compactor a moment, so commits land between checkpoints.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            drop(c);
            fs.set(None);
            let globbed = globbed_seqs(&run);
            prop_assert!(globbed.windows(2).all(|w| w[0] < w[1]), "a row twice in the glob");
            recover(&run).unwrap();
            if let Some(after) = s.offline_crash {
                fs.set(Some(Fault::CrashAfter(after)));
                let _ = compact_run_with(&run, &small(0), &fs);
                fs.set(None);
                recover(&run).unwrap();
            }
            // With an fsync per record, every sent row survives any crash.
            prop_assert_eq!(stored_i(&run), (0..next).collect::<Vec<_>>());
            assert_gap_free(&globbed_seqs(&run), next as u64);
        }
    }
}

#[test]
fn csv_output_is_never_merged_and_survives_every_swap() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let c = Collector::builder(dir.path())
        .run_id("r")
        .format(Format::Both)
        .compaction(Some(small(0)))
        .build()
        .unwrap();
    for i in 0..300 {
        c.send(event(i)).unwrap();
        if i % 10 == 9 {
            c.checkpoint().unwrap();
        }
    }
    c.close().unwrap();
    let m = manifest(&run);
    let files = &m.streams["ev"].files;
    let csv: Vec<_> = files.iter().filter(|f| f.format == "csv").collect();
    assert_eq!(csv.len(), 30, "one CSV per checkpoint, as written");
    assert!(files.iter().filter(|f| f.format == "parquet").count() <= 2);
    // Every CSV is in the current generation, through the symlink, with its rows.
    let mut lines = 0;
    for f in &csv {
        let text = std::fs::read_to_string(run.join(&f.path)).unwrap();
        lines += text.lines().count() - 1;
    }
    assert_eq!(lines, 300);
    assert_eq!(stored_i(&run), (0..300).collect::<Vec<_>>());
}
