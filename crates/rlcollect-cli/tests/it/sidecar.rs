//! The `rlcollect` binary: stdin, sockets, signals, status, demo.

use crate::*;
use rlcollect::RunStatus;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn run_cmd(out: &Path, run: &str, extra: &[&str]) -> Command {
    let mut c = rlcollect();
    c.arg("run").arg("--out").arg(out).arg("--run").arg(run).args(extra);
    c
}

fn decision_line(i: u64) -> String {
    format!(
        r#"{{"stream": "model_decisions", "ts": {}, "pair": "BTC/USDT", "action": {}, "reward": 0.5}}"#,
        1_700_000_000_000 + i,
        i % 3
    )
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {sig}");
}

#[test]
fn eof_with_good_and_bad_lines_stores_every_good_row_and_logs_every_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(data("spec-cases/decode.ndjson")).unwrap();
    let mut child = run_cmd(dir.path(), "r", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "stdout stays silent");
    let run = dir.path().join("r");
    let m = manifest(&run);
    assert_eq!(m.status, RunStatus::Complete);
    assert_eq!(m.rejected, 6);
    assert_gap_free(&stored_seqs(&run, None), 5);
    let rejected: Vec<serde_json::Value> = std::fs::read_to_string(run.join("rejected.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<u64> = rejected.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [4, 5, 6, 7, 8, 13]);
    assert_eq!(rejected[0]["source"], "stdin");
    assert_eq!(
        rejected[0]["raw"],
        r#"{"stream":"trades","pair":"X/Y","profit_abs":"abc"}"#
    );
    assert!(rejected[0]["error"].as_str().unwrap().contains("profit_abs"));
}

#[test]
fn over_long_and_non_utf8_lines_are_rejected_without_losing_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    input.extend(decision_line(0).as_bytes());
    input.extend(b"\n{\"stream\":\"x\",\"junk\":\"");
    input.extend(std::iter::repeat_n(b'a', 300_000));
    input.extend(b"\"}\n");
    input.extend(b"{\"stream\":\"x\",\"s\":\"\xff\"}\r\n");
    input.extend(decision_line(1).as_bytes()); // no final newline: accepted at EOF
    let mut child = run_cmd(dir.path(), "r", &["--max-line-bytes", "100000"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    assert!(child.wait().unwrap().success());
    let run = dir.path().join("r");
    assert_gap_free(&stored_seqs(&run, None), 2);
    let rej = std::fs::read_to_string(run.join("rejected.ndjson")).unwrap();
    let rej: Vec<serde_json::Value> = rej.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rej.len(), 2);
    assert_eq!(rej[0]["line"], 2);
    assert!(
        rej[0]["error"].as_str().unwrap().contains("over the limit"),
        "{}",
        rej[0]
    );
    assert!(rej[0]["raw"].as_str().unwrap().len() <= 4096);
    assert_eq!(rej[1]["line"], 3);
    assert!(rej[1]["error"].as_str().unwrap().contains("UTF-8"));
}

fn interrupted_by(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = run_cmd(dir.path(), "r", &[]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let sent = 5_000;
    for i in 0..sent {
        writeln!(stdin, "{}", decision_line(i)).unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, sig);
    let status = wait_exit(&mut child, 30);
    drop(stdin);
    assert!(status.success(), "exit 0 after {sig}: {status:?}");
    let run = dir.path().join("r");
    assert_eq!(manifest(&run).status, RunStatus::Interrupted);
    // Everything read before the signal is stored, as a gap-free prefix.
    assert_gap_free(&stored_seqs(&run, None), sent);
}

#[test]
fn sigterm_mid_stream_flushes_and_marks_interrupted() {
    interrupted_by("TERM");
}

#[test]
fn sigint_mid_stream_flushes_and_marks_interrupted() {
    interrupted_by("INT");
}

#[test]
fn a_sigkilled_producer_loses_nothing_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.ndjson");
    let n = 2_000;
    let text: String = (0..n).map(|i| decision_line(i) + "\n").collect();
    std::fs::write(&file, text).unwrap();
    // `exec` so the killed process is the pipe's only writer.
    let mut producer = Command::new("sh")
        .arg("-c")
        .arg(format!("cat '{}'; exec sleep 60", file.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut collector = run_cmd(dir.path(), "r", &[])
        .stdin(producer.stdout.take().unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    producer.kill().unwrap(); // SIGKILL
    producer.wait().unwrap();
    assert!(wait_exit(&mut collector, 30).success());
    let run = dir.path().join("r");
    assert_eq!(manifest(&run).status, RunStatus::Complete);
    assert_gap_free(&stored_seqs(&run, None), n);
}

#[test]
fn parts_appear_during_the_run_by_candles_and_by_time() {
    let dir = tempfile::tempdir().unwrap();
    // By candles.
    let mut child = run_cmd(dir.path(), "c", &["--every-candles", "10"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..30 {
        writeln!(stdin, "{}", decision_line(i)).unwrap();
        writeln!(stdin, r#"{{"stream":"candle"}}"#).unwrap();
    }
    stdin.flush().unwrap();
    let parts = dir.path().join("c/model_decisions");
    assert!(
        wait_for(10.0, || parquet_files(&parts).len() == 3),
        "3 parts while stdin is open"
    );
    drop(stdin);
    assert!(wait_exit(&mut child, 30).success());

    // By time, with no candle at all.
    let mut child = run_cmd(dir.path(), "t", &["--every-secs", "0.3"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(stdin, "{}", decision_line(i)).unwrap();
    }
    stdin.flush().unwrap();
    let parts = dir.path().join("t/model_decisions");
    assert!(
        wait_for(10.0, || !parquet_files(&parts).is_empty()),
        "a time-based part while stdin is open"
    );
    drop(stdin);
    assert!(wait_exit(&mut child, 30).success());
}

#[test]
fn a_second_run_on_the_same_run_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = run_cmd(dir.path(), "r", &[]).stdin(Stdio::piped()).spawn().unwrap();
    assert!(wait_for(10.0, || dir.path().join("r/manifest.json").exists()));
    let started = std::time::Instant::now();
    let second = run_cmd(dir.path(), "r", &[]).stdin(Stdio::null()).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already in use") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    drop(first.stdin.take());
    assert!(wait_exit(&mut first, 30).success());
}

#[test]
fn two_socket_producers_and_stdin_store_every_row_once_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("collector.sock");
    let mut child = run_cmd(
        dir.path(),
        "r",
        &["--listen", sock.to_str().unwrap(), "--exit-when-idle"],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(wait_for(10.0, || sock.exists()), "socket is listening");
    let mut a = UnixStream::connect(&sock).unwrap();
    let mut b = UnixStream::connect(&sock).unwrap();
    writeln!(a, r#"{{"stream":"control","op":"hello","source":"alpha"}}"#).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..300 {
        writeln!(a, "{}", decision_line(i)).unwrap();
        writeln!(b, "{}", decision_line(i)).unwrap();
        writeln!(stdin, "{}", decision_line(i)).unwrap();
    }
    drop(stdin);
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "one producer is still connected");
    drop(b);
    assert!(wait_exit(&mut child, 30).success());
    assert!(!sock.exists(), "the socket file is removed on exit");
    let run = dir.path().join("r");
    let m = manifest(&run);
    assert_gap_free(&stored_seqs(&run, None), 900);
    assert_eq!(m.sources.get("alpha"), Some(&300));
    assert_eq!(m.sources.get("stdin"), Some(&300));
    assert_eq!(
        m.sources
            .iter()
            .filter(|(k, _)| k.starts_with("conn-"))
            .map(|(_, v)| *v)
            .sum::<u64>(),
        300
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_never_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap()); // stale: nobody accepts
    let mut live = run_cmd(dir.path(), "a", &["--listen", sock.to_str().unwrap()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(10.0, || UnixStream::connect(&sock).is_ok()),
        "stale socket replaced"
    );
    let thief = run_cmd(dir.path(), "b", &["--listen", sock.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(thief.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&thief.stderr).contains("live collector"));
    assert!(UnixStream::connect(&sock).is_ok(), "the live socket still works");
    signal(&live, "TERM");
    assert!(wait_exit(&mut live, 30).success());
}

#[test]
fn python_json_dumps_output_with_nan_is_accepted() {
    let Ok(py) = Command::new("python3")
        .arg("-c")
        .arg(
            "import json,math\n\
             for i in range(3):\n\
             \x20   print(json.dumps({'stream':'model_decisions','ts':'2024-10-01 00:0%d:00+00:00' % i,'pair':'BTC/USDT','reward':float('nan'),'q':[math.inf, -math.inf],'total_reward':-math.inf}))",
        )
        .output()
    else {
        panic!("python3 is needed for this test");
    };
    assert!(py.status.success());
    assert!(String::from_utf8_lossy(&py.stdout).contains("NaN"));
    let dir = tempfile::tempdir().unwrap();
    let mut child = run_cmd(dir.path(), "r", &[]).stdin(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(&py.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    let run = dir.path().join("r");
    assert_eq!(manifest(&run).rejected, 0);
    assert_gap_free(&stored_seqs(&run, None), 3);
}

#[test]
fn status_and_summary_read_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = run_cmd(dir.path(), "r", &[]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"stream":"trades","pair":"A/B","profit_abs":1.5,"exit_reason":"roi"}}"#
    )
    .unwrap();
    writeln!(stdin, "{}", decision_line(0)).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let run = dir.path().join("r");
    let st = rlcollect().arg("status").arg(&run).arg("--json").output().unwrap();
    assert!(st.status.success());
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["streams"]["trades"]["rows"], 1);
    assert_eq!(v["sources"]["stdin"], 2);
    let human = rlcollect().arg("status").arg(&run).output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("model_decisions"));
    let sum = rlcollect().arg("summary").arg(&run).output().unwrap();
    let text = String::from_utf8_lossy(&sum.stdout);
    assert!(
        sum.status.success() && text.contains("A/B") && text.contains("1.50000000"),
        "{text}"
    );
    let missing = rlcollect().arg("status").arg(dir.path().join("nope")).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn bad_configuration_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cmd(dir.path(), "r", &["--every-secs", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = rlcollect().args(["run", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn demo_runs_in_process_and_checkpoints_along_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let out = rlcollect()
        .args(["demo", "--candles", "3000", "--every-candles", "1000", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("model_decisions") && text.contains("read_parquet"),
        "{text}"
    );
    let run = dir.path().join("latest");
    let m = manifest(&run);
    assert_eq!(m.status, RunStatus::Complete);
    assert_eq!(m.candles, 9000);
    assert_eq!(m.streams["model_decisions"].rows, 9000);
    assert!(m.streams["model_decisions"].files.len() >= 9);
    for stream in [
        "trades",
        "rl_episodes",
        "predictions",
        "signal_propagation",
        "model_decisions",
    ] {
        assert!(m.streams.contains_key(stream), "{stream}");
    }
    assert_gap_free(&stored_seqs(&run, None), m.records);
}
