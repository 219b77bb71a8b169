"""Freqtrade's run mode and time, read at run time (inside Freqtrade only)."""

from __future__ import annotations

import logging
from typing import Any, Optional, Tuple

log = logging.getLogger("rlcollect")

#: Run modes (Freqtrade's ``config["runmode"]``) in which the mixin records.
RECORDING_MODES = ("backtest", "hyperopt", "dry_run", "live")
OPTIMIZE_MODES = ("backtest", "hyperopt")


def run_mode(config: Any) -> str:
    """Freqtrade's run mode as a string (``backtest``, ``hyperopt``, ``dry_run``,
    ``live``, ...), or ``""`` when unknown."""
    mode = (config or {}).get("runmode") if isinstance(config, dict) else None
    return str(getattr(mode, "value", mode) or "")


def timerange_bounds(config: Any) -> Tuple[Any, Any]:
    """``(start, stop)`` of the configured ``--timerange`` as UTC datetimes
    (either may be None). FreqAI predicts exactly ``[start, stop)`` in
    backtesting: its first window starts at ``start``, its last ends at ``stop``."""
    text = (config or {}).get("timerange") if isinstance(config, dict) else None
    if not text:
        return None, None
    try:
        from freqtrade.configuration import TimeRange  # at run time only: inside Freqtrade
    except ImportError:
        log.warning("rlcollect: cannot parse --timerange %r without freqtrade; predictions are not limited to it",
                    text)
        return None, None
    tr = TimeRange.parse_timerange(text)
    return (tr.startdt if tr.starttype else None), (tr.stopdt if tr.stoptype else None)


def candle_open(current_time: Any, timeframe: Optional[str]) -> Any:
    """The open time of the candle ``current_time`` falls in. Backtesting hands
    candle times already; live hands the wall clock."""
    if current_time is None or not timeframe:
        return current_time
    try:
        from freqtrade.exchange import timeframe_to_prev_date
    except ImportError:
        return current_time
    return timeframe_to_prev_date(timeframe, current_time)
