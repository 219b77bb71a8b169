//! The sidecar's end of a ring: frames below the published `write`, in order,
//! each checked against its CRC.

use super::layout::{frame_crc, frame_size, max_payload, wrap_crc, FRAME_HEADER, WRAP};
use super::map::RingMap;
use std::sync::Arc;

/// Reads one ring from a given absolute offset.
#[derive(Debug)]
pub(crate) struct RingReader {
    map: Arc<RingMap>,
    /// Absolute offset of the next frame.
    next: u64,
    payload: Vec<u8>,
}

/// What one look at the ring found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Every published frame was handed over (maybe none).
    CaughtUp,
    /// The frame at this offset is published but does not check out yet: its
    /// bytes may still be on their way (weakly ordered memory), or the ring is
    /// corrupt if it stays so.
    Invalid { at: u64 },
    /// `limit` frames were handed over; more may be waiting.
    Limit,
}

impl RingReader {
    /// A reader starting at absolute offset `from` (a frame boundary).
    pub(crate) fn new(map: Arc<RingMap>, from: u64) -> Self {
        RingReader {
            map,
            next: from,
            payload: Vec::with_capacity(4096),
        }
    }

    /// The ring.
    pub(crate) fn map(&self) -> &Arc<RingMap> {
        &self.map
    }

    /// Absolute offset of the next frame: everything below it was handed over.
    pub(crate) fn position(&self) -> u64 {
        self.next
    }

    /// Hands every published frame's payload, with the offset after it, to
    /// `frame`, up to `limit` frames.
    pub(crate) fn scan(&mut self, limit: usize, mut frame: impl FnMut(&[u8], u64)) -> Scan {
        let write = self.map.write();
        let capacity = self.map.capacity();
        let mut handed = 0;
        while self.next < write {
            if handed == limit {
                return Scan::Limit;
            }
            let pos = self.next % capacity;
            let mut header = [0u8; FRAME_HEADER as usize];
            self.map.copy_out(pos, &mut header);
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            if len == WRAP {
                if crc != wrap_crc(self.next) {
                    return Scan::Invalid { at: self.next };
                }
                self.next += capacity - pos;
                continue;
            }
            let size = frame_size(len as u64);
            if len as u64 > max_payload(capacity) || self.next + size > write || pos + size > capacity {
                return Scan::Invalid { at: self.next };
            }
            self.payload.resize(len as usize, 0);
            self.map.copy_out(pos + FRAME_HEADER, &mut self.payload);
            if frame_crc(self.next, &self.payload) != crc {
                return Scan::Invalid { at: self.next };
            }
            self.next += size;
            handed += 1;
            frame(&self.payload, self.next);
        }
        Scan::CaughtUp
    }
}
