//! The ring file's layout, byte by byte (SPEC §6), and the frame rules both
//! ends share: where a frame goes, how big it is, and when it is valid.

/// The header's first 8 bytes.
pub(crate) const MAGIC: &[u8; 8] = b"RLCRING1";
/// The format version this code reads and writes.
pub(crate) const VERSION: u32 = 1;
/// Bytes before the data area.
pub(crate) const HEADER_BYTES: u64 = 4096;
/// Smallest and largest data area (a power of two in between).
pub(crate) const MIN_CAPACITY: u64 = 64 << 10;
pub(crate) const MAX_CAPACITY: u64 = 1 << 30;
/// The longest source name the header holds.
pub(crate) const MAX_SOURCE: usize = 254;

/// Header field offsets.
pub(crate) mod at {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_BYTES: usize = 12;
    pub const CAPACITY: usize = 16;
    pub const PID: usize = 24;
    pub const CREATED_MS: usize = 32;
    pub const SOURCE_LEN: usize = 40;
    pub const SOURCE: usize = 42;
    /// Each hot field on its own 64-byte line, so the two processes do not
    /// fight over one cache line.
    pub const WRITE: usize = 512;
    pub const READ: usize = 576;
    pub const SLEEPING: usize = 640;
    pub const CLOSED: usize = 704;
}

/// Bytes of a frame header: `len u32 | crc u32`.
pub(crate) const FRAME_HEADER: u64 = 8;
/// The `len` of a wrap marker.
pub(crate) const WRAP: u32 = u32::MAX;

/// The largest payload a ring of `capacity` takes.
pub(crate) fn max_payload(capacity: u64) -> u64 {
    capacity / 4
}

/// Bytes a frame of `len` payload bytes takes, padding included.
pub(crate) fn frame_size(len: u64) -> u64 {
    FRAME_HEADER + len.div_ceil(8) * 8
}

/// The CRC of a frame written at absolute offset `at`: CRC-32 (as zlib's
/// `crc32(payload, at & 0xFFFFFFFF)`), so the same bytes at another offset fail.
pub(crate) fn frame_crc(at: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(at as u32);
    h.update(payload);
    h.finalize()
}

/// The CRC of a wrap marker at `at`: the seed itself (the CRC of no bytes).
pub(crate) fn wrap_crc(at: u64) -> u32 {
    at as u32
}

/// Where the next frame of `len` bytes starts when the producer is at
/// `write`: `write` itself, or the next lap when it would run past the end
/// (then a wrap marker goes at `write`).
pub(crate) fn placement(write: u64, len: u64, capacity: u64) -> Placement {
    let pos = write % capacity;
    if pos + frame_size(len) <= capacity {
        Placement::Here
    } else {
        Placement::NextLap {
            start: write + (capacity - pos),
        }
    }
}

/// See [`placement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    Here,
    NextLap { start: u64 },
}

/// A checked capacity: a power of two within the limits.
pub(crate) fn valid_capacity(capacity: u64) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_eight_byte_aligned_and_wrap_before_the_end() {
        assert_eq!(frame_size(0), 8);
        assert_eq!(frame_size(1), 16);
        assert_eq!(frame_size(8), 16);
        assert_eq!(frame_size(9), 24);
        let cap = 64 << 10;
        assert_eq!(placement(0, 100, cap), Placement::Here);
        assert_eq!(placement(cap - 16, 8, cap), Placement::Here);
        assert_eq!(placement(cap - 16, 9, cap), Placement::NextLap { start: cap });
        assert_eq!(placement(3 * cap - 8, 0, cap), Placement::Here);
    }

    #[test]
    fn the_crc_is_zlibs_seeded_with_the_offset() {
        // zlib.crc32(b"hello") == 0x3610a686; seeding with 0 is the plain CRC.
        assert_eq!(frame_crc(0, b"hello"), 0x3610_a686);
        // zlib.crc32(b"hello", 4096) == 0x6609f119 (Python's zlib).
        assert_eq!(frame_crc(4096, b"hello"), 0x6609_f119);
        // The same bytes one lap later are another frame.
        assert_ne!(frame_crc(8, b"hello"), frame_crc(8 + (64 << 10), b"hello"));
        assert_eq!(wrap_crc((1 << 32) + 24), 24);
    }

    #[test]
    fn capacities_are_powers_of_two_in_range() {
        assert!(valid_capacity(64 << 10) && valid_capacity(16 << 20) && valid_capacity(1 << 30));
        assert!(
            !valid_capacity(0) && !valid_capacity(100_000) && !valid_capacity(32 << 10) && !valid_capacity(2 << 30)
        );
    }
}
