//! Batches of records sent one by one: order per thread, backpressure,
//! closing, and when the worker is told.

use super::*;
use crate::chunk::{ChunkEvent, LinesPool};
use std::sync::Arc;
use std::time::Duration;

fn event(i: usize) -> Record {
    Record::from_json(format!(r#"{{"stream":"ev","i":{i}}}"#).as_bytes()).unwrap()
}

fn batches(batch_rows: usize) -> DirectBatches {
    let pool = LinesPool::new();
    DirectBatches::new(
        || ChunkBuilder::new("t".into(), false, true).with_pool(pool.clone()),
        Backlog::new(batch_rows, batch_rows * MAX_READY),
    )
}

/// The `i` of every row of `chunks`, in order (read back from the log lines).
fn numbers(chunks: &[Chunk]) -> Vec<usize> {
    chunks
        .iter()
        .flat_map(|c| c.lines.iter())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            v["i"].as_u64().unwrap() as usize
        })
        .collect()
}

#[test]
fn a_threads_rows_come_out_in_the_order_sent_across_ready_and_partial_takes() {
    let b = batches(10);
    let mut taken = Vec::new();
    for i in 0..95 {
        if let Some(shard) = b.push(event(i), false).unwrap() {
            taken.extend(b.take_ready(shard));
        }
        if i == 42 {
            // A tick in the middle of a batch takes the partial one.
            taken.extend(b.take_all());
        }
    }
    taken.extend(b.take_all());
    assert_eq!(numbers(&taken), (0..95).collect::<Vec<_>>());
    assert_eq!(b.pending_rows(), 0);
}

#[test]
fn the_worker_is_told_once_until_it_takes_the_ready_chunks() {
    let b = batches(2);
    let mut told = Vec::new();
    for i in 0..6 {
        told.push(b.push(event(i), false).unwrap());
    }
    let shard = told[1].expect("the first full batch is announced");
    assert_eq!(told.iter().flatten().count(), 1, "{told:?}");
    assert_eq!(b.pending_rows(), 6);
    assert_eq!(b.take_ready(shard).len(), 3);
    assert_eq!(b.push(event(6), false).unwrap(), None);
    assert_eq!(b.push(event(7), false).unwrap(), Some(shard));
}

#[test]
fn a_full_batch_hands_the_record_back_to_try_send_and_holds_send_until_taken() {
    let b = Arc::new(batches(1));
    for i in 0..MAX_READY {
        b.push(event(i), false).unwrap();
    }
    match b.push(event(99), false) {
        Err(Refused::Full(Record::User(u))) => assert_eq!(u.stream, "ev"),
        other => panic!("expected the record back, got {other:?}"),
    }
    // The same thread's batch is full: a waiting push returns once the
    // worker (here, another thread) takes the ready chunks.
    let taker = {
        let b = b.clone();
        let shard = thread_slot() % SHARDS;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            b.take_ready(shard)
        })
    };
    b.push(event(MAX_READY), true).unwrap();
    let mut taken = taker.join().unwrap();
    taken.extend(b.take_all());
    assert_eq!(numbers(&taken), (0..=MAX_READY).collect::<Vec<_>>());
}

#[test]
fn after_close_every_push_hands_its_record_back_and_waiting_pushes_wake() {
    let b = Arc::new(batches(1));
    for i in 0..MAX_READY {
        b.push(event(i), false).unwrap();
    }
    let closer = {
        let b = b.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            b.close();
        })
    };
    assert!(matches!(b.push(event(50), true), Err(Refused::Closed(_))));
    closer.join().unwrap();
    assert!(matches!(b.push(event(51), false), Err(Refused::Closed(_))));
    // What was pushed before the close is still there to take.
    assert_eq!(numbers(&b.take_all()), (0..MAX_READY).collect::<Vec<_>>());
}

#[test]
fn a_checkpoint_request_makes_the_batch_ready_at_once() {
    let b = batches(1000);
    b.push(event(0), false).unwrap();
    let shard = b
        .push(
            Record::from_json(br#"{"stream":"control","op":"checkpoint"}"#).unwrap(),
            false,
        )
        .unwrap()
        .expect("announced");
    let chunks = b.take_ready(shard);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].rows, 1);
    assert!(matches!(chunks[0].events[..], [ChunkEvent::Checkpoint { at: 1, .. }]));
}

#[test]
fn the_backlog_follows_the_channel_capacity() {
    let b = Backlog::new(4096, 65_536);
    assert_eq!((b.batch_rows, b.max_ready), (4096, MAX_READY));
    let b = Backlog::new(4096, 10_000);
    assert_eq!((b.batch_rows, b.max_ready), (4096, 2));
    // A channel of one: each record is a chunk, and the second waits.
    let b = Backlog::new(4096, 1);
    assert_eq!((b.batch_rows, b.max_ready), (1, 1));
}
