"""A reference reader of the ring format (SPEC §6), in plain Python: the
tests' cross-check of the format the writer produces, and a way to look into
a ring: ``python -m rlcollect.ring_reader RUN/rings/*.ring``.

It reads as the sidecar does: ``write`` first, then frame by frame up to it,
each frame's crc checked against its absolute offset, wrap markers followed
to the next lap. Nothing at or above ``write`` is read: it is not published.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Iterator, List, Tuple

from .ring import HEADER_SIZE, OFF_CLOSED, OFF_READ, OFF_SLEEPING, OFF_WRITE, STATIC, WRAP, frame_size


class Header:
    """A ring's header fields, read from a mapping or bytes."""

    def __init__(self, buf) -> None:
        (self.magic, self.version, self.header_size, self.capacity, self.pid, self.reserved,
         self.created_ms, n) = STATIC.unpack_from(buf, 0)
        self.source_len = n
        self.source = bytes(buf[42:42 + n]).decode()
        self.write, = struct.unpack_from("<Q", buf, OFF_WRITE)
        self.read, = struct.unpack_from("<Q", buf, OFF_READ)
        self.sleeping, = struct.unpack_from("<I", buf, OFF_SLEEPING)
        self.closed, = struct.unpack_from("<I", buf, OFF_CLOSED)


class CorruptFrame(Exception):
    """A frame below ``write`` that is not valid at its offset."""


def frames(buf, start: int, write: int) -> Iterator[Tuple[int, bytes]]:
    """``(offset, payload)`` of every frame from ``start`` up to ``write``."""
    capacity, = struct.unpack_from("<Q", buf, 16)
    o = start
    while o < write:
        pos = HEADER_SIZE + o % capacity
        n, crc = struct.unpack_from("<II", buf, pos)
        if n == WRAP:
            if crc != o & 0xFFFFFFFF:
                raise CorruptFrame(f"wrap marker at {o}: crc {crc:#x}, expected {o & 0xFFFFFFFF:#x}")
            o = (o // capacity + 1) * capacity
            continue
        if n > capacity // 4 or o % capacity + frame_size(n) > capacity or o + frame_size(n) > write:
            raise CorruptFrame(f"frame at {o}: length {n}")
        payload = bytes(buf[pos + 8:pos + 8 + n])
        if zlib.crc32(payload, o & 0xFFFFFFFF) != crc:
            raise CorruptFrame(f"frame at {o}: crc mismatch")
        yield o, payload
        o += frame_size(n)


def read_ring(path: Path, start: int = 0) -> Tuple[Header, List[bytes]]:
    """A ring file's header and the payloads of its frames from ``start``."""
    with open(path, "rb") as f:
        buf = f.read()
    head = Header(buf)
    return head, [p for _, p in frames(buf, start, head.write)]


def is_locked(path: Path) -> bool:
    """Whether a live producer holds the ring's lock."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return True
        raise
    finally:
        os.close(fd)


def main(argv: list) -> int:  # pragma: no cover - a debugging aid
    for name in argv:
        head, payloads = read_ring(Path(name))
        print(f"{name}: source={head.source!r} pid={head.pid} capacity={head.capacity} write={head.write} "
              f"read={head.read} sleeping={head.sleeping} closed={head.closed} locked={is_locked(Path(name))} "
              f"frames={len(payloads)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
