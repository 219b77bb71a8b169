//! The ring's two ends against each other, through two mappings of one file.

use super::layout::{at, frame_size, HEADER_BYTES, MIN_CAPACITY};
use super::map::{RingIdentity, RingMap};
use super::reader::{RingReader, Scan};
use super::writer::{AppendError, RingWriter};
use std::sync::Arc;

fn pair(dir: &std::path::Path, capacity: u64) -> (RingWriter, RingReader) {
    let path = dir.join("p1-test.ring");
    let id = RingIdentity {
        pid: 4242,
        source: "worker-ä".into(),
    };
    let writer = RingWriter::new(RingMap::create(&path, capacity, &id).unwrap());
    let reader = RingReader::new(Arc::new(RingMap::open(&path).unwrap()), 0);
    (writer, reader)
}

fn drain(reader: &mut RingReader) -> (Vec<Vec<u8>>, Scan) {
    let mut got = Vec::new();
    let scan = reader.scan(usize::MAX, |p, _| got.push(p.to_vec()));
    (got, scan)
}

#[test]
fn the_header_is_laid_out_as_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let (_w, r) = pair(dir.path(), MIN_CAPACITY);
    let bytes = std::fs::read(dir.path().join("p1-test.ring")).unwrap();
    assert_eq!(bytes.len() as u64, HEADER_BYTES + MIN_CAPACITY);
    assert_eq!(&bytes[0..8], b"RLCRING1");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(bytes[12..16].try_into().unwrap()), 4096);
    assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), MIN_CAPACITY);
    assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 4242);
    assert_eq!(
        u16::from_le_bytes(bytes[40..42].try_into().unwrap()),
        "worker-ä".len() as u16
    );
    assert_eq!(r.map().identity().source, "worker-ä");
    assert_eq!((at::WRITE, at::READ, at::SLEEPING, at::CLOSED), (512, 576, 640, 704));
    assert!(r.map().producer_alive(), "the writer holds the lock");
}

#[test]
fn frames_round_trip_in_order_with_their_end_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = pair(dir.path(), MIN_CAPACITY);
    for p in [&b"{\"a\":1}"[..], b"", b"12345678", b"x"] {
        assert_eq!(w.append(p), Ok(false));
    }
    let mut ends = Vec::new();
    let mut got = Vec::new();
    assert_eq!(
        r.scan(usize::MAX, |p, end| {
            got.push(p.to_vec());
            ends.push(end)
        }),
        Scan::CaughtUp
    );
    assert_eq!(
        got,
        vec![b"{\"a\":1}".to_vec(), vec![], b"12345678".to_vec(), b"x".to_vec()]
    );
    assert_eq!(ends, vec![16, 24, 40, 56]);
    assert_eq!(r.position(), w.map().write());
}

#[test]
fn a_full_ring_refuses_until_the_reader_releases_and_then_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = pair(dir.path(), MIN_CAPACITY);
    let payload = vec![b'z'; 1000];
    let mut sent = 0;
    while w.append(&payload).is_ok() {
        sent += 1;
    }
    assert_eq!(w.append(&payload), Err(AppendError::Full));
    assert_eq!(sent, MIN_CAPACITY / frame_size(1000));
    let (got, _) = drain(&mut r);
    assert_eq!(got.len() as u64, sent);
    r.map().publish_read(r.position());
    // The next frames wrap past the end of the data area.
    for i in 0..100u8 {
        w.append(&vec![i; 1000]).unwrap();
        let (got, scan) = drain(&mut r);
        assert_eq!((got, scan), (vec![vec![i; 1000]], Scan::CaughtUp));
        r.map().publish_read(r.position());
    }
    assert!(r.position() > 2 * MIN_CAPACITY, "several laps");
    assert_eq!(
        w.append(&vec![0; (MIN_CAPACITY / 4 + 1) as usize]),
        Err(AppendError::TooLarge)
    );
}

#[test]
fn bytes_past_the_published_offset_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = pair(dir.path(), MIN_CAPACITY);
    w.append(b"published").unwrap();
    // A producer killed mid-frame: a frame's bytes written, `write` not moved.
    let write = w.map().write();
    w.map()
        .copy_into_data(write, &[9, 0, 0, 0, 1, 2, 3, 4, b'g', b'a', b'r', b'b']);
    let (got, scan) = drain(&mut r);
    assert_eq!((got, scan), (vec![b"published".to_vec()], Scan::CaughtUp));
}

#[test]
fn a_stale_frame_of_an_earlier_lap_or_a_flipped_bit_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = pair(dir.path(), MIN_CAPACITY);
    w.append(b"first lap").unwrap();
    drain(&mut r);
    // Publish one lap ahead without writing: the old frame sits at the same
    // position, valid for its own offset only.
    w.map().publish_write(MIN_CAPACITY + 24);
    let mut stale = RingReader::new(r.map().clone(), MIN_CAPACITY);
    assert_eq!(drain(&mut stale), (vec![], Scan::Invalid { at: MIN_CAPACITY }));
    // A flipped payload bit at the right offset.
    w.map().publish_write(24);
    w.map().copy_into_data(8, b"X");
    let mut flipped = RingReader::new(r.map().clone(), 0);
    assert_eq!(drain(&mut flipped), (vec![], Scan::Invalid { at: 0 }));
}

#[test]
fn a_dropped_writer_leaves_the_ring_to_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = pair(dir.path(), MIN_CAPACITY);
    w.append(b"last words").unwrap();
    w.close();
    drop(w);
    assert!(!r.map().producer_alive());
    assert!(r.map().closed());
    assert_eq!(drain(&mut r).0, vec![b"last words".to_vec()]);
}
