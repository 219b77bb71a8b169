//! The binary's allocator settings (the library leaves the allocator to its
//! users).

/// mimalloc's `mi_option_purge_delay`: its index in the C enum of the bundled
/// mimalloc (libmimalloc-sys names no constant for it). Checked by running with
/// `MIMALLOC_PURGE_DELAY=77`, which shows up at this index.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once instead of after 1 s, which keeps the
/// sidecar's peak RSS near its live data. Only done when the option at that
/// index holds the bundled mimalloc's default (1000 ms), so a renumbered enum
/// changes nothing.
///
/// Also turns transparent huge pages off for this process: mimalloc asks for
/// them, and with memory returned at once each page touched again is a fresh
/// 2 MiB page the kernel zeroes whole. Measured on the 1 M-record bulk load
/// (`benches/ingest.sh`): peak RSS about 62 → 41 MiB at the same speed.
pub fn tune() {
    // SAFETY: reading and setting a mimalloc option has no preconditions.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == 1000 {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only; failing (an
    // old kernel) changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
