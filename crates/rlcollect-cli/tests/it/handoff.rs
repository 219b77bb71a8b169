//! The crash-proof hand-off (SPEC §6) with the real binary: Rust producers
//! write shared-memory rings that the sidecar drains.

use crate::*;
use crossbeam_channel::{unbounded, Receiver};
use rlcollect::testing::TestRing;
use rlcollect::{Producer, Record, RunDir, RunStatus, UserRecord, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The child side of the kill tests, run as its own process (the test binary
/// started again with this one test): a Rust engine that sends events and,
/// after each `send` returns, reports the event's number on stdout.
#[test]
#[ignore = "a child process of the kill tests"]
fn producer_child() {
    let (Ok(out), Ok(run), Ok(k)) = (
        std::env::var("CHILD_OUT"),
        std::env::var("CHILD_RUN"),
        std::env::var("CHILD_K"),
    ) else {
        return;
    };
    let k: i64 = k.parse().unwrap();
    let limit: i64 = std::env::var("CHILD_COUNT").map_or(i64::MAX, |n| n.parse().unwrap());
    let p = producer(std::path::Path::new(&out), &run);
    let mut stdout = std::io::stdout().lock();
    for i in 0..limit {
        p.send(&event(i, k)).unwrap();
        writeln!(stdout, "sent {i}").unwrap();
        stdout.flush().unwrap();
    }
    p.close().unwrap();
}

/// Starts `producer_child` as a process; its reports arrive on the returned channel.
fn spawn_child(out: &Path, run: &str, k: i64, count: Option<i64>) -> (Child, Receiver<i64>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "handoff::producer_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CHILD_OUT", out)
    .env("CHILD_RUN", run)
    .env("CHILD_K", k.to_string())
    .env("RUST_LOG", "error")
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Some(n) = count {
        cmd.env("CHILD_COUNT", n.to_string());
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = unbounded();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("sent ").and_then(|n| n.parse().ok()) {
                let _ = tx.send(n);
            }
        }
    });
    (child, rx)
}

/// Waits until no sidecar holds the run and its manifest says it ended.
fn wait_until_ended(run: &RunDir) {
    assert!(
        wait_for(60.0, || !run.is_live()
            && manifest(run.path()).status != RunStatus::Running),
        "the run did not end"
    );
}

/// Every (k, i) stored once, and for each k an unbroken prefix 0..n that
/// holds every number its producer reported.
fn assert_exactly_once(run: &RunDir, reported: &[Option<i64>]) {
    let rows = stored_events(run.path());
    let mut seen = std::collections::HashSet::new();
    for r in &rows {
        assert!(seen.insert((r.2, r.1)), "stored twice: k {} i {}", r.2, r.1);
    }
    for (k, last) in reported.iter().enumerate() {
        let mut is: Vec<i64> = rows.iter().filter(|r| r.2 == k as i64).map(|r| r.1).collect();
        is.sort_unstable();
        assert_eq!(
            is,
            (0..is.len() as i64).collect::<Vec<_>>(),
            "producer {k}: an unbroken prefix"
        );
        let need = last.map_or(0, |l| l + 1);
        assert!(
            is.len() as i64 >= need,
            "producer {k} reported {need} sends, {} stored",
            is.len()
        );
    }
}

#[test]
fn producers_killed_at_random_moments_lose_nothing_they_handed_over() {
    let _serial = heavy();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path(), "r").unwrap();
    let mut rng = fastrand::Rng::with_seed(0x51c);
    let mut reported = Vec::new();
    for k in 0..30i64 {
        let (mut child, reports) = spawn_child(dir.path(), "r", k, None);
        // Wait for the first report, then a random moment of the loop.
        let first = reports.recv_timeout(Duration::from_secs(60)).ok();
        std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
        let sig = if k < 20 { "KILL" } else { "TERM" };
        let ok = Command::new("kill")
            .args(["-s", sig, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        child.wait().unwrap();
        let last = reports.iter().last().or(first);
        assert!(last.is_some(), "producer {k} never reported a send");
        reported.push(last);
    }
    wait_until_ended(&run);
    assert_exactly_once(&run, &reported);
    let total: i64 = reported.iter().map(|l| l.unwrap() + 1).sum();
    assert!(total > 10_000, "the producers must really have sent ({total})");
    assert!(
        run.rings().is_empty(),
        "every ring drained and removed: {:?}",
        run.rings()
    );
}

#[test]
fn a_sidecar_killed_while_producers_write_is_restarted_and_nothing_is_lost_or_doubled() {
    let _serial = heavy();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path(), "r").unwrap();
    std::fs::create_dir_all(run.path()).unwrap();
    let socket = run.socket_path();
    let sidecar = || {
        rlcollect()
            .args([
                "run",
                "--run",
                "r",
                "--exit-when-idle",
                "--min-free-mb",
                "0",
                "--listen",
            ])
            .arg(&socket)
            .arg("--out")
            .arg(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = sidecar();
    assert!(wait_for(30.0, || socket.exists()), "the sidecar listens");
    // Enough that no producer is done when the sidecar dies: one that is
    // done leaves nothing for the second sidecar, which then (rightly) waits
    // for a producer that never comes.
    let count = 150_000;
    let mut children: Vec<_> = (0..3).map(|k| spawn_child(dir.path(), "r", k, Some(count))).collect();
    for (_, reports) in &children {
        reports.recv_timeout(Duration::from_secs(60)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    first.kill().unwrap(); // SIGKILL, mid-stream
    first.wait().unwrap();
    assert!(
        children
            .iter_mut()
            .all(|(child, _)| child.try_wait().unwrap().is_none()),
        "every producer is still writing when the sidecar dies"
    );
    let _ = std::fs::remove_file(&socket);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = sidecar(); // recovers the run and adopts the live rings
    let mut reported = Vec::new();
    for (mut child, reports) in children {
        assert!(child.wait().unwrap().success(), "a producer failed");
        reported.push(reports.iter().last());
    }
    assert!(wait_exit(&mut second, 60).success());
    wait_until_ended(&run);
    assert_eq!(reported, vec![Some(count - 1); 3], "every producer sent everything");
    assert_exactly_once(&run, &reported);
    assert_eq!(stored_events(run.path()).len() as i64, 3 * count);
}

/// A checkpoint cut inside a batch of ring frames, then SIGKILL before the
/// log's next fsync: the manifest must already say how far into the ring the
/// published rows reach, or recovery reads them from the ring again.
#[test]
fn a_sidecar_killed_right_after_a_requested_checkpoint_stores_each_row_once() {
    let _serial = heavy();
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path(), "r").unwrap();
    std::fs::create_dir_all(run.path()).unwrap();
    let socket = run.socket_path();
    let mut sidecar = rlcollect()
        .args(["run", "--run", "r", "--min-free-mb", "0", "--fsync-ms", "60000"])
        .arg("--listen")
        .arg(&socket)
        .arg("--out")
        .arg(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(30.0, || socket.exists()), "the sidecar listens");
    let p = producer(dir.path(), "r");
    for i in 0..100 {
        p.send(&event(i, 0)).unwrap();
    }
    p.send_line(br#"{"stream":"control","op":"checkpoint"}"#).unwrap();
    let published = || manifest(run.path()).published_seq;
    assert!(
        wait_for(30.0, || published() == 100),
        "the checkpoint published the rows"
    );
    sidecar.kill().unwrap(); // SIGKILL: the log's unsynced tail is gone
    sidecar.wait().unwrap();
    let _ = std::fs::remove_file(&socket);
    let _ = p.close(); // no sidecar answers its bye
    let status = rlcollect().arg("recover").arg(run.path()).status().unwrap();
    assert!(status.success());
    assert_exactly_once(&run, &[Some(99)]);
    assert_eq!(stored_events(run.path()).len(), 100);
}

/// A producer that died left its ring; the sidecar the next producer spawns
/// drains it and may end (`--exit-when-idle`) before its spawner connected:
/// the spawner then starts it again, and both producers' rows are stored.
#[test]
fn a_producer_whose_sidecar_only_finished_a_dead_ring_joins_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path(), "r").unwrap();
    std::fs::create_dir_all(run.path()).unwrap();
    {
        let mut ring = TestRing::create(&run, 64 << 10, "gone");
        for i in 0..10 {
            assert!(ring.append(format!(r#"{{"stream":"ev","i":{i},"k":0}}"#).as_bytes()));
        }
    } // its producer is gone: the lock is released, the ring not closed
    let p = producer(dir.path(), "r");
    for i in 0..10 {
        p.send(&event(i, 1)).unwrap();
    }
    p.close().unwrap();
    wait_until_ended(&run);
    assert_exactly_once(&run, &[Some(9), Some(9)]);
    assert_eq!(stored_events(run.path()).len(), 20);
}
