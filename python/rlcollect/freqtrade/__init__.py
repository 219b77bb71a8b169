"""Freqtrade helpers: a strategy mixin and plain functions, with no import-time
dependency on freqtrade (or pandas).

    class MyStrategy(RLCollectMixin, IStrategy):          # the mixin first
        def populate_indicators(self, dataframe, metadata):
            dataframe = self.freqai.start(dataframe, metadata, self)
            self.rlcollect_predictions(dataframe, metadata)
            return dataframe

What the mixin records, from which callback, in which run mode:

===========  ======================  ===============================  =========================
record       callback                backtesting                      dry-run / live
===========  ======================  ===============================  =========================
predictions  populate_indicators     every candle FreqAI predicted    each new candle once:
             (rlcollect_predictions) (the --timerange, all windows),  the rows after the last
                                     each once                        date sent for the pair
candle tick  bot_loop_start          one per candle                   one per new candle
trades       order_filled            every closed trade, as the       every closed trade
             (the closing exit)      export holds it (force_exit,
                                     partial exits, shorts)
===========  ======================  ===============================  =========================

Hyperopt records the predictions only: ``populate_indicators`` (and FreqAI
training) runs once, in the main process. Its epochs (``bot_loop_start``,
``order_filled``) are trial runs with changing parameters in worker processes;
Freqtrade keeps their results itself. Other run modes (plotting, utilities,
``list-strategies``) record nothing and start no collector. Dry-run/live starts
with the newest candle when the bot starts, and records what FreqAI hands the
strategy: until its first model is trained that is FreqAI's placeholder (zeros,
``do_predict`` 0), and a candle the bot skipped gets FreqAI's zero row too.

Why these callbacks, and not the obvious ones:

* Backtesting calls ``populate_indicators`` once per pair over the whole range.
  FreqAI trains every backtest window inside it and hands back all windows'
  predictions at once, zero-filled for the candles it did not predict (the
  training period before ``--timerange``, and the candle at its end). So the
  rows dated inside ``--timerange`` are the predicted ones, not "the last row".
* The trade closed at the end of a backtest (``force_exit``) never passes
  ``confirm_trade_exit``, and at ``confirm_trade_exit`` no trade is closed yet
  (no profit, no close rate). ``order_filled`` sees every fill: live calls it
  after Freqtrade closed the trade, backtesting just before (see
  :func:`trade_record`).
* ``bot_loop_start`` runs once per candle in backtesting (and every few seconds
  live), so it is the candle clock; ``populate_indicators`` is not.
* Hyperopt pickles the strategy into its workers: the mixin keeps its
  ``Collector`` out of the strategy object (one per process, from
  :func:`rlcollect.shared.shared_collector`), and inside Freqtrade it is a
  subclass of ``IStrategy`` (see :func:`_build_mixin`).
"""

from __future__ import annotations

from typing import Any

from .records import (TRADE_FIELDS, candle_record, closes_trade, prediction_columns, prediction_records,
                      send_trades, trade_record)
from .runmode import RECORDING_MODES, candle_open, run_mode, timerange_bounds

__all__ = ["RLCollectMixin", "TRADE_FIELDS", "RECORDING_MODES", "candle_open", "candle_record", "closes_trade",
           "prediction_columns", "prediction_records", "run_mode", "send_trades", "timerange_bounds",
           "trade_record"]


def __getattr__(name: str) -> Any:
    """``RLCollectMixin`` is built on first use, on ``IStrategy`` when freqtrade
    is importable (importing this module imports no freqtrade)."""
    if name != "RLCollectMixin":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from freqtrade.strategy import IStrategy as base
    except ImportError:
        base = object
    from .mixin import _build_mixin

    mixin = globals()["RLCollectMixin"] = _build_mixin(base)
    return mixin
