//! [`RingMap`]: a ring file mapped into this process, with the header's
//! shared fields as atomics.
//!
//! Two processes map the same file. The fields they both touch (`write`,
//! `read`, `sleeping`, `closed`) are 8- or 4-byte aligned words accessed only
//! through atomics: `write` is stored with `Release` by the producer and
//! loaded with `Acquire` by the reader, so the frame bytes below a published
//! `write` are visible to the reader (SPEC §6 "Memory order"). The data area is
//! read and written with plain copies: the producer writes only above `write`,
//! into space the reader has released, and the reader reads only below it.

use super::layout::{at, valid_capacity, HEADER_BYTES, MAGIC, MAX_SOURCE, VERSION};
use crate::error::Error;
use memmap2::MmapRaw;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A mapped ring file.
#[derive(Debug)]
pub(crate) struct RingMap {
    map: MmapRaw,
    file: File,
    capacity: u64,
}

/// What the header says about the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingIdentity {
    pub pid: u32,
    pub source: String,
}

impl RingMap {
    /// Creates a new ring file (it must not exist), sized and locked for the
    /// producer, and writes its header.
    pub(crate) fn create(path: &Path, capacity: u64, identity: &RingIdentity) -> Result<RingMap, Error> {
        if !valid_capacity(capacity) {
            return Err(Error::Config(format!(
                "ring capacity {capacity} must be a power of two from 64 KiB to 1 GiB"
            )));
        }
        let io = |what: &str| Error::io(format!("{what} {}", path.display()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io("create"))?;
        // Held for the producer's life: a ring whose lock can be taken has no
        // live producer. The kernel drops it when the process dies.
        file.lock().map_err(io("lock"))?;
        file.set_len(HEADER_BYTES + capacity).map_err(io("size"))?;
        let ring = Self::map(file, path, capacity)?;
        ring.write_header(capacity, identity);
        Ok(ring)
    }

    /// Maps an existing ring file, checking its header.
    pub(crate) fn open(path: &Path) -> Result<RingMap, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io(format!("open ring {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(Error::io(format!("stat ring {}", path.display())))?
            .len();
        let corrupt = |message: String| Error::Corrupt {
            path: path.to_owned(),
            message,
        };
        if len < HEADER_BYTES {
            return Err(corrupt(format!("{len} bytes is too short for a ring")));
        }
        let head = Self::map(file.try_clone().map_err(Error::io("dup ring fd"))?, path, 0)?;
        let capacity = head.u64_at(at::CAPACITY);
        if head.bytes(at::MAGIC, 8) != MAGIC {
            return Err(corrupt("not a ring (bad magic)".into()));
        }
        if head.u32_at(at::VERSION) != VERSION || head.u32_at(at::HEADER_BYTES) as u64 != HEADER_BYTES {
            return Err(corrupt(format!(
                "unsupported ring version {}",
                head.u32_at(at::VERSION)
            )));
        }
        if !valid_capacity(capacity) || len != HEADER_BYTES + capacity {
            return Err(corrupt(format!(
                "capacity {capacity} does not match the file's {len} bytes"
            )));
        }
        drop(head);
        Self::map(file, path, capacity)
    }

    fn map(file: File, path: &Path, capacity: u64) -> Result<RingMap, Error> {
        let map = memmap2::MmapOptions::new()
            .len((HEADER_BYTES + capacity) as usize)
            .map_raw(&file)
            .map_err(Error::io(format!("map ring {}", path.display())))?;
        Ok(RingMap { map, file, capacity })
    }

    fn write_header(&self, capacity: u64, identity: &RingIdentity) {
        let source = truncate_utf8(&identity.source, MAX_SOURCE);
        self.copy_in(at::MAGIC, MAGIC);
        self.copy_in(at::VERSION, &VERSION.to_le_bytes());
        self.copy_in(at::HEADER_BYTES, &(HEADER_BYTES as u32).to_le_bytes());
        self.copy_in(at::CAPACITY, &capacity.to_le_bytes());
        self.copy_in(at::PID, &identity.pid.to_le_bytes());
        self.copy_in(at::CREATED_MS, &chrono::Utc::now().timestamp_millis().to_le_bytes());
        self.copy_in(at::SOURCE_LEN, &(source.len() as u16).to_le_bytes());
        self.copy_in(at::SOURCE, source.as_bytes());
    }

    /// Bytes in the data area.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The producer named in the header.
    pub(crate) fn identity(&self) -> RingIdentity {
        let len =
            (u16::from_le_bytes(self.bytes(at::SOURCE_LEN, 2).try_into().expect("2 bytes")) as usize).min(MAX_SOURCE);
        RingIdentity {
            pid: self.u32_at(at::PID),
            source: String::from_utf8_lossy(self.bytes(at::SOURCE, len)).into_owned(),
        }
    }

    /// True while the producer process lives (it holds the file's lock).
    pub(crate) fn producer_alive(&self) -> bool {
        match self.file.try_lock() {
            Ok(()) => {
                let _ = self.file.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => false,
        }
    }

    /// Bytes the producer has published.
    pub(crate) fn write(&self) -> u64 {
        self.atomic64(at::WRITE).load(Ordering::Acquire)
    }

    /// Publishes frames up to `offset` (producer).
    pub(crate) fn publish_write(&self, offset: u64) {
        self.atomic64(at::WRITE).store(offset, Ordering::Release)
    }

    /// Bytes consumed and durable.
    pub(crate) fn read(&self) -> u64 {
        self.atomic64(at::READ).load(Ordering::Acquire)
    }

    /// Releases everything below `offset` to the producer (sidecar).
    pub(crate) fn publish_read(&self, offset: u64) {
        self.atomic64(at::READ).store(offset, Ordering::Release)
    }

    /// Whether the reader waits on the socket.
    pub(crate) fn sleeping(&self) -> bool {
        self.atomic32(at::SLEEPING).load(Ordering::SeqCst) != 0
    }

    /// The reader announces (or ends) a wait on the socket. `SeqCst`: the
    /// reader reads `write` once more after setting it (a Dekker handshake
    /// with the producer's store of `write` and load of this flag).
    pub(crate) fn set_sleeping(&self, sleeping: bool) {
        self.atomic32(at::SLEEPING).store(u32::from(sleeping), Ordering::SeqCst)
    }

    /// Whether the producer closed the ring.
    pub(crate) fn closed(&self) -> bool {
        self.atomic32(at::CLOSED).load(Ordering::Acquire) != 0
    }

    /// The producer closes the ring: no frame follows.
    pub(crate) fn set_closed(&self) {
        self.atomic32(at::CLOSED).store(1, Ordering::Release)
    }

    /// Copies `out.len()` bytes of the data area from position `pos`.
    pub(crate) fn copy_out(&self, pos: u64, out: &mut [u8]) {
        let start = HEADER_BYTES as usize + pos as usize;
        assert!(start + out.len() <= self.map.len(), "read inside the data area");
        // SAFETY: in bounds (checked); the producer does not write below the
        // published `write`, which the caller read with Acquire first.
        unsafe { std::ptr::copy_nonoverlapping(self.map.as_ptr().add(start), out.as_mut_ptr(), out.len()) }
    }

    /// Copies `data` into the data area at position `pos` (producer).
    pub(crate) fn copy_into_data(&self, pos: u64, data: &[u8]) {
        self.copy_in(HEADER_BYTES as usize + pos as usize, data)
    }

    fn copy_in(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.map.len(), "write inside the mapping");
        // SAFETY: in bounds (checked); the reader does not read this region
        // until a later `publish_write` covers it.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.as_mut_ptr().add(offset), data.len()) }
    }

    fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset + len <= self.map.len());
        // SAFETY: in bounds; header fields written once at creation.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset), len) }
    }

    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.bytes(offset, 4).try_into().expect("4 bytes"))
    }

    fn u64_at(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.bytes(offset, 8).try_into().expect("8 bytes"))
    }

    fn atomic64(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= at::CLOSED + 4);
        // SAFETY: the mapping is page-aligned and lives as long as `self`;
        // the field is 8-aligned and only ever accessed atomically (both
        // processes), so a shared reference to an atomic is sound.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU64) }
    }

    fn atomic32(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4));
        // SAFETY: as `atomic64`, for a 4-aligned 4-byte field.
        unsafe { &*(self.map.as_ptr().add(offset) as *const AtomicU32) }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
