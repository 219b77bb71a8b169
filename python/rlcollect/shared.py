"""One ``Collector`` per process and run: :func:`shared_collector`.

Freqtrade makes several strategy objects per process (and pickles them in
hyperopt), and helpers of a strategy want the same collector: they ask here
instead of holding one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional

from .client import Collector, default_run_id

_SHARED: Dict[tuple, Collector] = {}
_SHARED_LOCK = threading.Lock()
_pid = os.getpid()  # os.getpid() is a system call on glibc >= 2.25: cached, refreshed at fork


def _after_fork_in_child() -> None:
    # A fork taken while another thread held the lock would leave it held.
    global _pid, _SHARED_LOCK
    _pid = os.getpid()
    _SHARED_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_collector(out: str = "analysis_data", run: Optional[str] = None, **kwargs: Any) -> Collector:
    """This process's ``Collector`` for ``out``/``run``, made on the first call.

    Every later call (another strategy instance, a thread, a helper) gets the
    same one, so a process joins the run's sidecar once. A forked child has
    another pid and makes its own. The registry lives here, not on the caller's
    object, so objects that get pickled (a hyperopt strategy) hold no collector.
    """
    run = run or os.environ.get("RLCOLLECT_RUN") or default_run_id()
    # Looked up as given first: callbacks call this once per candle, and
    # resolving the path costs tens of microseconds.
    given = (_pid, str(out), run)
    collector = _SHARED.get(given)
    if collector is not None and not collector._closed:
        return collector
    remote = "://" in str(out)  # s3://...: a URL, not a path to resolve
    key = (given[0], str(out) if remote else str(Path(out).resolve()), run)
    with _SHARED_LOCK:
        collector = _SHARED.get(key)
        if collector is None or collector._closed:
            collector = Collector(out, run, **kwargs)
        _SHARED[key] = _SHARED[given] = collector
        return collector
