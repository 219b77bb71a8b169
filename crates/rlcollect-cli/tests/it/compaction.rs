//! Compaction and retention through the binary: SIGKILLs during compaction,
//! `rlcollect compact` (old layout, twice), `rlcollect gc` on a mix of runs.

use crate::*;
use rlcollect::RunStatus;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `rlcollect run` of run `id` under `out` with `args`, stdin piped.
fn spawn(out: &Path, id: &str, args: &[&str]) -> Child {
    rlcollect()
        .args(["run", "--run", id, "--min-free-mb", "0", "--out"])
        .arg(out)
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Writes `ev` lines `i = 0..` tagged `k` until the pipe breaks; returns how many were written.
fn feed_until_broken(mut stdin: std::process::ChildStdin, k: i64) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut i = 0i64;
        loop {
            let mut chunk = String::new();
            for _ in 0..50 {
                chunk.push_str(&format!("{{\"stream\":\"ev\",\"i\":{i},\"k\":{k}}}\n"));
                i += 1;
            }
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return i;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    })
}

/// (k, i) of every stored `ev` row, in `_seq` order; and the glob's `_seq`s.
fn stored_k_i(run: &Path) -> Vec<(i64, i64)> {
    stored_int_rows(run, "ev", &["k", "i"])
        .into_iter()
        .map(|(_, v)| (v[0], v[1]))
        .collect()
}

/// `_seq`s of `RUN/ev/*.parquet` read as a globbing reader does; a file
/// gone between the listing and the open (a swap) means: list again.
fn globbed_seqs(run: &Path) -> Vec<u64> {
    'retry: loop {
        let mut seqs = Vec::new();
        for file in parquet_files(&run.join("ev")) {
            let Ok(batches) = std::panic::catch_unwind(|| read_parquet(&file)) else {
                continue 'retry;
            };
            for b in batches {
                let col = b.column_by_name("_seq").unwrap();
                seqs.extend(
                    col.as_any()
                        .downcast_ref::<arrow_array::UInt64Array>()
                        .unwrap()
                        .values()
                        .iter(),
                );
            }
        }
        seqs.sort_unstable();
        return seqs;
    }
}

/// Every row once, and each producer's rows a prefix of what it sent, in order.
fn assert_each_row_once(run: &Path) -> usize {
    let rows = stored_k_i(run);
    assert_gap_free(&stored_seqs(run, None), rows.len() as u64);
    assert_gap_free(&globbed_seqs(run), rows.len() as u64);
    let mut per_k: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (k, i) in &rows {
        per_k.entry(*k).or_default().push(*i);
    }
    for (k, is) in per_k {
        assert_eq!(
            is,
            (0..is.len() as i64).collect::<Vec<_>>(),
            "producer {k}: a prefix, once each"
        );
    }
    rows.len()
}

#[test]
fn sigkill_again_and_again_during_compaction_then_recover_keeps_every_row_once() {
    let _serial = heavy();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let mut rng = fastrand::Rng::with_seed(0xc0_4ac7);
    let args = [
        "--every-candles",
        "0",
        "--every-secs",
        "0.02",
        "--fsync-ms",
        "5",
        "--compact-target-rows",
        "20000",
        "--compact-min-parts",
        "2",
        "--compact-grace-secs",
        "0.1",
        "--compact-min-age-secs",
        "0",
    ];
    let mut compacted = false;
    for k in 0..12 {
        let mut child = spawn(dir.path(), "r", &args);
        let feeder = feed_until_broken(child.stdin.take().unwrap(), k);
        std::thread::sleep(Duration::from_millis(rng.u64(400..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        feeder.join().unwrap();
        compacted |= run
            .join("ev")
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink());
        let globbed = globbed_seqs(&run);
        assert!(
            globbed.windows(2).all(|w| w[0] < w[1]),
            "kill {k}: a row twice in the glob"
        );
    }
    let out = rlcollect().arg("recover").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(compacted, "compaction committed during the kills");
    assert!(assert_each_row_once(&run) > 0);
    // No generation but the manifest's is left.
    let gens = std::fs::read_dir(run.join(".streams/ev")).unwrap().count();
    assert_eq!(gens, 1);
}

/// Writes a finished run `id` of `n` rows with a candle (a checkpoint) every `every` rows.
fn finished_run(out: &Path, id: &str, n: i64, every: i64, extra: &[&str]) {
    let mut child = spawn(out, id, &[&["--every-candles", "1"], extra].concat());
    let mut stdin = child.stdin.take().unwrap();
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("{{\"stream\":\"ev\",\"i\":{i},\"k\":0}}\n"));
        if i % every == every - 1 {
            text.push_str("{\"stream\":\"candle\"}\n");
        }
    }
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    assert!(wait_exit(&mut child, 60).success());
}

#[test]
fn compact_converts_an_old_layout_run_and_twice_changes_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    finished_run(dir.path(), "r", 3000, 10, &["--compact", "off"]);
    assert_eq!(manifest(&run).streams["ev"].files.len(), 300);
    assert!(run.join("ev").symlink_metadata().unwrap().is_dir());
    for pass in 0..2 {
        let out = rlcollect()
            .args(["compact", "--grace-secs", "0", "--target-rows", "1000"])
            .arg(&run)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pass {pass}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(manifest(&run).streams["ev"].files.len(), 3, "pass {pass}");
        assert_eq!(assert_each_row_once(&run), 3000, "pass {pass}");
    }
    assert!(run.join("ev").symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(parquet_files(&run.join("ev")).len(), 3, "ls shows the merged files");
}

#[test]
fn a_run_with_compaction_on_ends_with_few_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    finished_run(dir.path(), "r", 5000, 10, &["--compact-target-rows", "2000"]);
    let m = manifest(&run);
    assert_eq!(m.status, RunStatus::Complete);
    // Files cannot be split, so greedy groups of whole files: any two
    // neighbours hold more than the target together.
    let files = &m.streams["ev"].files;
    assert!((3..=4).contains(&files.len()), "{files:?}");
    assert!(files.iter().all(|f| f.rows <= 2000), "{files:?}");
    assert_eq!(assert_each_row_once(&run), 5000);
}

#[test]
fn with_compaction_on_a_stream_is_a_generation_behind_its_link_from_the_first_part() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    // One part: nothing to merge, the stream stays in its first generation.
    finished_run(dir.path(), "r", 10, 10, &[]);
    let m = manifest(&run);
    assert_eq!(m.streams["ev"].dir.as_deref(), Some(".streams/ev/g000000"));
    assert_eq!(
        std::fs::read_link(run.join("ev")).unwrap(),
        Path::new(".streams/ev/g000000")
    );
    assert_eq!(parquet_files(&run.join("ev")).len(), 1);
    assert_eq!(assert_each_row_once(&run), 10);
}

#[test]
fn compact_refuses_a_live_run_and_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r");
    let mut child = spawn(dir.path(), "r", &[]);
    assert!(wait_for(10.0, || run.join("manifest.json").exists()));
    let out = rlcollect().arg("compact").arg(&run).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("live"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(child.stdin.take());
    assert!(wait_exit(&mut child, 30).success());
    let out = rlcollect()
        .args(["compact", "--target-rows", "0"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn gc_removes_only_finished_runs_fixes_latest_and_dry_run_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path();
    finished_run(out_dir, "r1", 100, 10, &[]);
    finished_run(out_dir, "r2", 100, 10, &[]);
    // r3 crashed: SIGKILLed, never recovered.
    let mut crashed = spawn(out_dir, "r3", &[]);
    assert!(wait_for(10.0, || out_dir.join("r3/manifest.json").exists()));
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    // r4 is live, and the newest.
    let mut live = spawn(out_dir, "r4", &[]);
    assert!(wait_for(10.0, || out_dir.join("r4/manifest.json").exists()));
    std::fs::remove_file(out_dir.join("latest")).unwrap();
    std::os::unix::fs::symlink("r1", out_dir.join("latest")).unwrap();
    let gc = |args: &[&str]| rlcollect().arg("gc").arg(out_dir).args(args).output().unwrap();

    let dry = gc(&["--keep-last", "1", "--dry-run"]);
    assert!(dry.status.success());
    let listed = String::from_utf8_lossy(&dry.stdout).into_owned();
    assert!(
        listed.contains("r1") && listed.contains("r2") && !listed.contains("r3"),
        "{listed}"
    );
    for id in ["r1", "r2", "r3", "r4"] {
        assert!(out_dir.join(id).is_dir(), "--dry-run removed {id}");
    }
    assert!(gc(&["--older-than", "7d"]).status.success());
    assert!(out_dir.join("r1").is_dir(), "younger than 7 days");

    let real = gc(&["--keep-last", "1"]);
    assert!(real.status.success(), "{}", String::from_utf8_lossy(&real.stderr));
    assert!(!out_dir.join("r1").exists() && !out_dir.join("r2").exists());
    assert!(out_dir.join("r3").is_dir(), "a crashed, unrecovered run stays");
    assert!(out_dir.join("r4").is_dir(), "a live run stays");
    assert_eq!(std::fs::read_link(out_dir.join("latest")).unwrap(), Path::new("r4"));
    // --keep-last 0 still never takes the live or crashed run.
    assert!(gc(&["--keep-last", "0"]).status.success());
    assert!(out_dir.join("r3").is_dir() && out_dir.join("r4").is_dir());

    for bad in [
        &[][..],
        &["--older-than", "7x"],
        &["--keep-last", "1", "--older-than", "1d"],
    ] {
        assert_eq!(gc(bad).status.code(), Some(2), "{bad:?}");
    }
    drop(live.stdin.take());
    assert!(wait_exit(&mut live, 30).success());
    let started = Instant::now();
    assert!(gc(&["--older-than", "0s"]).status.success());
    assert!(!out_dir.join("r4").exists(), "finished now, and older than 0 s");
    assert!(started.elapsed() < Duration::from_secs(10));
}
