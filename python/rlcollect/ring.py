"""The producer's side of the shared-memory ring of SPEC §6: the file and the
writer. ``ring_reader`` has the reference reader.

Why a ring in a file: a record is in the ring when the call that wrote it
returns, and the kernel keeps a shared file mapping's pages after the process
that wrote them dies (SIGKILL, OOM, SIGTERM with Python's default handler),
so the sidecar still drains everything this process published.

Memory order. The sidecar must never see a published ``write`` before the
bytes of the frames below it. On x86-64 stores become visible in program
order (TSO), so writing the frame and then storing ``write`` is enough. On
aarch64 stores may be reordered and CPython has no release store; there the
sidecar treats a frame whose crc does not match as not yet visible and reads
it again (SPEC §6). The crc is seeded with the frame's absolute offset, so
stale bytes of an earlier lap never pass for a new frame.

The published ``write`` must be ONE aligned 8-byte store. ``struct.pack_into``
is not: CPython's ``s_pack_internal`` first ``memset``s the target to zero and
then packs, so a reader can see ``write == 0`` for a moment (measured: a C
reader spinning on the word saw 0 after almost every one of 3 million
``pack_into("Q", ...)`` calls). An item assignment on a ``memoryview`` cast
to ``"Q"`` is a single 8-byte ``memcpy`` (CPython's ``PACK_SINGLE``), one
store, and so is how ``write``, ``read``, ``sleeping`` and ``closed`` are
accessed here. Frame bytes above ``write`` are unpublished: there a
``pack_into`` (header, payload and zero padding in one call) is fine.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Optional

log = logging.getLogger("rlcollect")

MAGIC = b"RLCRING1"
VERSION = 1
HEADER_SIZE = 4096
MIN_CAPACITY = 64 * 1024
MAX_CAPACITY = 1 << 30
DEFAULT_CAPACITY = 16 << 20
WRAP = 0xFFFFFFFF  # the len of a wrap marker
SOURCE_MAX = 254

OFF_WRITE = 512
OFF_READ = 576
OFF_SLEEPING = 640
OFF_CLOSED = 704

# Creation-time header fields (offsets 0..42 of SPEC §6), little-endian.
STATIC = struct.Struct("<8sIIQIIQH")
_W_WRITE, _W_READ = OFF_WRITE >> 3, OFF_READ >> 3  # indexes into the "Q" view
_I_SLEEPING, _I_CLOSED = OFF_SLEEPING >> 2, OFF_CLOSED >> 2  # indexes into the "I" view
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)  # Linux 5.14+
_PACKERS = 1025  # frames up to 8 KiB get a cached packer


def frame_size(n: int) -> int:
    """Bytes a frame with an ``n``-byte payload takes: 8 of header, the
    payload, zero padding to a multiple of 8."""
    return (n + 15) & -8


def check_capacity(capacity: int) -> int:
    """The capacity if SPEC §6 allows it (a power of two, 64 KiB to 1 GiB)."""
    if capacity < MIN_CAPACITY or capacity > MAX_CAPACITY or capacity & (capacity - 1):
        raise ValueError(f"ring capacity must be a power of two from 64 KiB to 1 GiB, not {capacity}")
    return capacity


def _packer(size: int) -> Callable:
    """``pack_into(buffer, at, len, crc, payload)`` for a frame of ``size``
    bytes: header, payload and its zero padding (``s`` pads with NULs)."""
    return struct.Struct(f"<II{size - 8}s").pack_into


class RingFile:
    """``RUN/rings/p<pid>-<12 hex>.ring``, created, locked and mapped by this
    producer. The lock (``flock``, held for this process's life) tells the
    sidecar whether the producer lives."""

    def __init__(self, path: Path, fd: int, mm: mmap.mmap, capacity: int) -> None:
        self.path = path
        self.capacity = capacity
        self.fd = fd
        self.mm = mm
        self.words = memoryview(mm).cast("Q")  # single 8-byte loads and stores
        self.ints = memoryview(mm).cast("I")

    @classmethod
    def create(cls, rings_dir: Path, source: str, capacity: int = DEFAULT_CAPACITY) -> "RingFile":
        """Makes the file (``O_EXCL``, sparse), takes its lock, maps it and
        writes the header."""
        check_capacity(capacity)
        rings_dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = rings_dir / f"p{os.getpid()}-{os.urandom(6).hex()}.ring"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                break
            except FileExistsError:  # pragma: no cover - 48 random bits
                continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, HEADER_SIZE + capacity)
            mm = mmap.mmap(fd, HEADER_SIZE + capacity)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        src = source.encode()[:SOURCE_MAX].decode(errors="ignore").encode()  # cut at a character
        STATIC.pack_into(mm, 0, MAGIC, VERSION, HEADER_SIZE, capacity, os.getpid(), 0,
                         int(time.time() * 1000), len(src))
        mm[42:42 + len(src)] = src
        _populate(mm)
        return cls(path, fd, mm, capacity)

    def mark_closed(self) -> None:
        """``closed = 1``: this producer writes no more frames."""
        self.ints[_I_CLOSED] = 1

    def close(self) -> None:
        """Unmaps and releases the lock. The file stays: the sidecar deletes
        it once its frames are durable."""
        self._unmap()
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)

    def forget(self) -> None:
        """In a forked child: drops the inherited mapping and descriptor
        without unlocking. ``flock`` belongs to the open file description the
        parent shares with us; ``LOCK_UN`` here would release the parent's
        lock. Closing our descriptor leaves the lock to the parent's."""
        self._unmap()
        try:
            os.close(self.fd)
        except OSError:
            pass

    def discard(self) -> None:
        """Closes and deletes a ring no sidecar took (its hello failed)."""
        self.mark_closed()
        self.close()
        _unlink(self.path)

    def _unmap(self) -> None:
        self.words.release()
        self.ints.release()
        self.mm.close()


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _populate(mm: mmap.mmap) -> None:
    """Faults the whole ring in now, writable: otherwise the first lap takes a
    page fault (measured 4-8 µs) every few dozen records, in the calling
    thread. Costs about 1 ms per MiB, once. Best effort: kernels before 5.14
    do not have MADV_POPULATE_WRITE."""
    try:
        mm.madvise(_MADV_POPULATE_WRITE)
    except (OSError, ValueError, AttributeError):
        pass


class Writer:
    """The one writer of a ring (threads share it under the client's lock).

    The hot path is a closure (``push`` and the per-stream ``method``s): the
    state it touches on every call (``write``, the bound below which a frame
    fits without further checks, the data area's offset for this lap) lives
    in closure cells, not attributes, and encoding, framing and publishing
    are inlined. Each Python call or attribute load avoided is ~0.05 µs, and
    the ring's framing (crc, copy, two header words) has to be paid for
    somewhere (SPEC §6 and the bench: ``benches/client.sh``). Everything
    else (wrapping, waiting for room) is :class:`_Framer`'s.

    ``divert(payload, why)`` takes, under the lock, what the ring does not:
    ``why`` is None when the writer was stopped, else why it spills (full,
    or the sidecar gone).
    """

    def __init__(self, ring: RingFile, lock: Any, divert: Callable[[bytes, Optional[str]], None],
                 wake: Callable[[], None], alive: Callable[[], bool], wait_secs: float) -> None:
        self.ring = ring
        self.max_payload = ring.capacity // 4
        framer = _Framer(ring, wake, alive, wait_secs)
        self.push, self.put, self.stop = _build(framer, lock, divert)

    def method(self, stream: str) -> Callable[..., None]:
        """``decision(**fields)`` and its siblings: the stream, then ``push``."""
        push = self.push

        def record(**fields: Any) -> None:
            fields["stream"] = stream
            push(fields)

        record.__name__ = record.__qualname__ = stream
        return record

    def published(self) -> int:
        """``write``: bytes published (only this writer stores it)."""
        return self.ring.words[_W_WRITE]


def _build(framer: "_Framer", lock: Any, divert: Callable) -> tuple:
    """The writer's closures ``push``, ``put`` and ``stop``, sharing the
    cells of the writer's position (see :class:`Writer`)."""
    from .encoding import fast_parts

    first, default, options, nulls_are_nones, exact, careful = fast_parts()
    mm, words, ints, wake, packers = framer.mm, framer.words, framer.ints, framer.wake, framer.packers
    crc32, limit = zlib.crc32, framer.capacity // 4
    acquire, release = lock.acquire, lock.release  # bound once: "with lock" costs twice as much
    w, bound, off = framer.start()
    stopped = False

    def push(fields: Dict[str, Any]) -> None:
        """Encodes one record, frames it into the ring and publishes it."""
        nonlocal w
        try:
            data = first(fields, default, options)
            if data.find(b"null") >= 0 and not nulls_are_nones(data, fields):
                data = exact(fields)  # NaN/±inf: orjson wrote them as null (see encoding)
        except Exception:
            data = careful(fields)
            if data is None:
                return _undecodable(fields)
        n = len(data)
        size = (n + 15) & -8
        acquire()
        try:
            end = w + size
            try:
                pack = packers[size >> 3]
            except IndexError:
                pack = None
            if end > bound or pack is None:
                return slow(data)
            pack(mm, w + off, n, crc32(data, w), data)  # crc32 takes the seed mod 2^32 itself
            # ``w`` moves before the store that publishes it: a KeyboardInterrupt
            # between the two leaves a whole frame that the next one publishes,
            # never a published frame that the next one would overwrite.
            w = end
            words[_W_WRITE] = end  # publish: one aligned 8-byte store, after the frame
            if ints[_I_SLEEPING]:
                wake()
        finally:
            release()

    def slow(data: bytes) -> None:
        """Under the lock: everything the fast path does not do."""
        if stopped:
            divert(data, None)
        elif len(data) > limit:
            log.error("rlcollect: dropped a record of %d bytes: a ring of %d bytes takes at most %d "
                      "(capacity/4; raise ring_bytes=)", len(data), framer.capacity, limit)
        elif not put(data):
            stop()
            divert(data, framer.why_full())

    def put(data: bytes) -> bool:
        """Under the lock: frames and publishes ``data`` (wrapping, waiting
        for room). False when there is no room and waiting is over."""
        nonlocal w, bound, off
        placed = framer.place(w, data)
        if placed is None:
            return False
        w, bound, off = placed
        return True

    def stop() -> None:
        """Every later record goes to ``divert``."""
        nonlocal stopped, bound
        stopped = True
        bound = -1

    return push, put, stop


class _Framer:
    """The writer's slow path: where a frame goes (a wrap marker and the next
    lap when it does not fit before the end), waiting for room, and the
    cached packers the hot path uses too."""

    def __init__(self, ring: RingFile, wake: Callable[[], None], alive: Callable[[], bool],
                 wait_secs: float) -> None:
        self.mm, self.words, self.ints, self.capacity = ring.mm, ring.words, ring.ints, ring.capacity
        self.wake, self.alive, self.wait_secs = wake, alive, wait_secs
        self.packers: list = [None] * _PACKERS  # by frame size / 8
        self.read = 0  # the sidecar's read, as last seen (reread only when a frame does not fit)

    def start(self) -> tuple:
        """The position of a new ring: ``(write, bound, off)``."""
        return self._position(0)

    def _position(self, w: int) -> tuple:
        """``(w, bound, off)`` for the hot path: a frame ending at or below
        ``bound`` fits the room and ends before this lap does (one ending
        right at the lap's end comes here, which moves ``off`` to the next
        lap); a frame at ``w`` starts at ``w + off`` in the file."""
        mask = self.capacity - 1
        return w, min(w | mask, self.read + self.capacity), HEADER_SIZE - (w & ~mask)

    def place(self, w: int, data: bytes) -> Optional[tuple]:
        """Frames and publishes ``data`` at ``w`` or after a wrap marker; the
        new ``(w, bound, off)``, or None when there is no room in time."""
        cap, mask, words = self.capacity, self.capacity - 1, self.words
        n = len(data)
        size = (n + 15) & -8
        start = w if (w & mask) + size <= cap else (w | mask) + 1
        if not self._room(start + size):
            return None
        if start != w:
            words[(HEADER_SIZE + (w & mask)) >> 3] = WRAP | (w & 0xFFFFFFFF) << 32
        self._packer(size)(self.mm, HEADER_SIZE + (start & mask), n, zlib.crc32(data, start & 0xFFFFFFFF), data)
        w = start + size
        words[_W_WRITE] = w  # publishes the wrap marker and the frame together
        if self.ints[_I_SLEEPING]:
            self.wake()
        return self._position(w)

    def _packer(self, size: int) -> Callable:
        if size >> 3 >= _PACKERS:
            return _packer(size)
        pack = self.packers[size >> 3]
        if pack is None:
            pack = self.packers[size >> 3] = _packer(size)
        return pack

    def _room(self, end: int) -> bool:
        """Whether a frame ending at ``end`` fits: rereads ``read``, and while
        it does not fit, waits (bounded, while the sidecar lives)."""
        self.read = self.words[_W_READ]
        deadline = None
        pause = 0.0005
        while end - self.read > self.capacity:
            if deadline is None:
                deadline = time.monotonic() + self.wait_secs
            if not self.alive() or time.monotonic() > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
            self.read = self.words[_W_READ]
        return True

    def why_full(self) -> str:
        return "the ring is full" if self.alive() else "the sidecar is gone and the ring is full"


def _undecodable(fields: Dict[str, Any]) -> None:
    log.warning("rlcollect: dropped a record of %s that cannot be encoded", fields.get("stream"))
