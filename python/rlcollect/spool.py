"""The spool file a client falls back to when the sidecar cannot take its
records (SPEC §7: ``RUN/spool-<pid>.ndjson``)."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from .encoding import encode

log = logging.getLogger("rlcollect")


class Spool:
    """``RUN/spool-<pid>.ndjson``: where records go once the sidecar cannot
    take them. Unbuffered (each record is in the kernel when the call
    returns) and locked while open: ``rlcollect`` ingests only unlocked spools."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self._source = source
        self._f = None

    def write(self, data: bytes) -> None:
        try:
            if self._f is None:
                self._open()
            self._f.write(data)
        except OSError as e:  # pragma: no cover - a full disk under the strategy
            log.error("rlcollect: cannot spool records to %s (%s); they are lost", self.path, e)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab", buffering=0)
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass
        # Names the producer of the records ingested from the spool.
        self._f.write(encode({"stream": "control", "op": "hello", "source": self._source}))

    def close(self) -> None:
        """fsync and close (which releases the lock)."""
        if self._f is not None:
            try:
                os.fsync(self._f.fileno())
            except OSError:
                pass
            self._f.close()
            self._f = None

    def forget(self) -> None:
        """In a forked child: close our descriptor. The file is unbuffered (no
        parent's bytes are written twice) and the lock stays the parent's."""
        if self._f is not None:
            self._f.close()
            self._f = None
