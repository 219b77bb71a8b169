//! Shared-memory rings (SPEC §6): the hand-off that survives the producer.
//!
//! A producer appends length-prefixed, CRC-checked frames to a file that it
//! and the sidecar both map, and publishes how far it wrote with one `Release`
//! store; the sidecar reads up to there and publishes back how far its
//! reading is durable. Because the kernel keeps a shared file mapping's pages
//! after the writer dies, everything a producer published reaches the run,
//! whatever ends the producer.
//!
//! ```text
//! RUN/rings/p<pid>-<hex>.ring
//! [0, 4096)        header: magic, version, capacity, pid, source;
//!                  write @512, read @576, sleeping @640, closed @704 (own cache lines)
//! [4096, +cap)     data: frames at 8-aligned absolute offsets o (position o mod cap)
//! frame            len u32 | crc32(payload, seed = o mod 2^32) u32 | payload | pad to 8
//! wrap marker      len = 0xFFFFFFFF, crc = o mod 2^32: the rest of the lap is empty
//! ```
//!
//! * `layout.rs`: the byte layout and the frame rules.
//! * `map.rs`: the mapped file and its atomic fields.
//! * `reader.rs`: the sidecar's end. `writer.rs`: the producer's end.

pub(crate) mod layout;
pub(crate) mod map;
pub(crate) mod reader;
pub(crate) mod writer;

#[cfg(test)]
mod tests;
