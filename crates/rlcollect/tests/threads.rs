//! Many threads sending through `Handle`s at once: each thread's rows keep
//! their order, and checkpoint requests take every thread's rows.
//!
//! A test binary of its own: these tests load both cores, and the timed
//! compaction tests in `it` must not share the machine with them.

use rlcollect::testing::*;
use rlcollect::*;
use std::time::Duration;

#[test]
fn each_threads_rows_keep_the_order_it_sent_them_in() {
    // 12 threads (more than the 8 batches, so some share one), checkpoints
    // requested in the stream and from another thread, and a row bound: a
    // thread's rows must still be numbered in the order it sent them.
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path())
        .run_id("r")
        .max_buffered_rows(20_000)
        .channel_capacity(256)
        .build()
        .unwrap();
    let (threads, per_thread) = (12_i64, 10_000_i64);
    let senders: Vec<_> = (0..threads)
        .map(|t| {
            let h = c.handle();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let mut r = decision(i, "A");
                    if let Record::ModelDecision(d) = &mut r {
                        (d.episode, d.step) = (Some(t), Some(i));
                    }
                    h.send(r).unwrap();
                    if i % 2_500 == 1_000 {
                        h.send(Record::Control(Control::Checkpoint)).unwrap();
                    }
                }
            })
        })
        .collect();
    let checkpointer = {
        let h = c.handle();
        std::thread::spawn(move || {
            for _ in 0..3 {
                h.checkpoint().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    for t in senders {
        t.join().unwrap();
    }
    checkpointer.join().unwrap();
    c.close().unwrap();
    let run = dir.path().join("r");
    let rows = stored_int_rows(&run, "model_decisions", &["episode", "step"]);
    assert_gap_free(
        &rows.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (threads * per_thread) as u64,
    );
    for t in 0..threads {
        let steps: Vec<i64> = rows.iter().filter(|(_, v)| v[0] == t).map(|(_, v)| v[1]).collect();
        let first_wrong = steps.iter().enumerate().position(|(i, s)| *s != i as i64);
        assert_eq!(
            (steps.len(), first_wrong),
            (per_thread as usize, None),
            "thread {t}'s rows: count, and the first out of order"
        );
    }
}

#[test]
fn a_checkpoint_record_from_one_thread_publishes_what_other_threads_sent_before() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::builder(dir.path()).run_id("r").build().unwrap();
    let h = c.handle();
    std::thread::spawn(move || {
        for i in 0..10 {
            h.send(decision(i, "A")).unwrap(); // a partial batch of its own
        }
    })
    .join()
    .unwrap();
    c.send(Record::Control(Control::Checkpoint)).unwrap();
    // No other trigger is due (no candles, 60 s period, 250k rows): only the
    // request can publish the other thread's rows before the close.
    let run = dir.path().join("r");
    assert!(
        wait_for(10.0, || stored_seqs(&run, Some("model_decisions")).len() == 10),
        "the request must take the other thread's rows"
    );
    c.close().unwrap();
}
