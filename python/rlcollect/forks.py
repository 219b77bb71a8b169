"""Fork safety: every live ``Collector`` of this process is locked across a
``fork()``, so that the child inherits its lock free and no half-written
frame or buffer, and the child's copy then drops what belongs to the parent
(``Collector._after_fork_in_child``).
"""

from __future__ import annotations

import os
import weakref
from typing import Any

# Collectors alive in this process (weak: a dropped collector is not kept
# alive by the registry).
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()
_FORKING: list = []


def register(collector: Any) -> None:
    """Locks ``collector`` (its ``_lock``) across every later fork."""
    _LIVE.add(collector)


def _before_fork() -> None:
    """Takes every collector's lock, so that the child inherits them free and
    no half-written frame or buffer (as ``logging`` does with its handlers).
    A fork waits for a call that is waiting for room in a full ring. The
    client itself never forks under its lock (``subprocess`` runs no fork
    hooks without ``preexec_fn``)."""
    global _FORKING
    _FORKING = list(_LIVE)
    for c in _FORKING:
        c._lock.acquire()


def _after_fork_in_parent() -> None:
    for c in _FORKING:
        c._lock.release()
    _FORKING.clear()


def _after_fork_in_child() -> None:
    for c in _FORKING:
        c._after_fork_in_child()
        c._lock.release()
    _FORKING.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
