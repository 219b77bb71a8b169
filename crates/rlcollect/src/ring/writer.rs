//! The producer's end of a ring: append a frame, publish it with one
//! `Release` store, and say whether the reader must be woken.

use super::layout::{frame_crc, frame_size, max_payload, placement, wrap_crc, Placement, FRAME_HEADER, WRAP};
use super::map::RingMap;

/// Appends frames to one ring. One writer per ring.
#[derive(Debug)]
pub(crate) struct RingWriter {
    map: RingMap,
    /// Bytes published so far (this is the only writer, so it is known).
    write: u64,
    /// `read` as last seen; reread only when a frame does not fit.
    read: u64,
}

/// Why a frame was not appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// No room until the reader releases more.
    Full,
    /// Longer than a quarter of the ring: never fits.
    TooLarge,
}

impl RingWriter {
    /// A writer for a ring just created (nothing written yet).
    pub(crate) fn new(map: RingMap) -> Self {
        RingWriter { map, write: 0, read: 0 }
    }

    /// The ring.
    #[cfg(test)]
    pub(crate) fn map(&self) -> &RingMap {
        &self.map
    }

    /// Appends one frame and publishes it. `Ok(true)` when the reader sleeps
    /// and wants a wake byte.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<bool, AppendError> {
        let capacity = self.map.capacity();
        let len = payload.len() as u64;
        if len > max_payload(capacity) {
            return Err(AppendError::TooLarge);
        }
        let start = match placement(self.write, len, capacity) {
            Placement::Here => self.write,
            Placement::NextLap { start } => start,
        };
        let end = start + frame_size(len);
        if end - self.read > capacity {
            self.read = self.map.read();
            if end - self.read > capacity {
                return Err(AppendError::Full);
            }
        }
        if start != self.write {
            let mut marker = [0u8; FRAME_HEADER as usize];
            marker[..4].copy_from_slice(&WRAP.to_le_bytes());
            marker[4..].copy_from_slice(&wrap_crc(self.write).to_le_bytes());
            self.map.copy_into_data(self.write % capacity, &marker);
        }
        let pos = start % capacity;
        let mut header = [0u8; FRAME_HEADER as usize];
        header[..4].copy_from_slice(&(len as u32).to_le_bytes());
        header[4..].copy_from_slice(&frame_crc(start, payload).to_le_bytes());
        self.map.copy_into_data(pos, &header);
        self.map.copy_into_data(pos + FRAME_HEADER, payload);
        self.map.publish_write(end);
        self.write = end;
        Ok(self.map.sleeping())
    }

    /// Marks the ring closed: the reader may delete it once it has drained it.
    pub(crate) fn close(&self) {
        self.map.set_closed();
    }
}
